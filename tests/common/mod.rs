//! The scripted probe child the behaviour tests are written with.
//!
//! A [`Probe`] is a ractor actor whose start and behaviour a test scripts:
//! * per start attempt of a child id: succeed, fail (`pre_start` returns `Err`), panic in
//!   `pre_start`, return `Ignore`, or start slowly ([`StartStep`]);
//! * on command ([`ProbeMsg`]): exit normally, exit with `"shutdown"`, panic, return an error,
//!   hang in a handler (ignoring stop), clean up slowly in `post_stop`.
//!
//! Everything a probe does is written to one ordered [`Log`] (`start a`, `start_failed a`,
//! `ignore a`, `crash a`, `exit a`, `stop a`), which tests await with a bounded wait.
#![allow(dead_code)]

pub mod kinds;

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use ractor_otp::prelude::*;
use ractor_otp::supervisor::{EventStream, StartResult, SupervisorEvent};
use tokio::sync::watch;

/// Every wait in a test is bounded by this (tokio time: virtual under a paused clock).
pub const WAIT: Duration = Duration::from_secs(30);

/// How one start attempt goes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum StartStep {
    Ok,
    Fail,
    Panic,
    Ignore,
    Slow(Duration),
}

/// Commands a running probe obeys.
pub enum ProbeMsg {
    /// Stop with no reason (normal exit).
    ExitNormal,
    /// Stop with reason "shutdown".
    ExitShutdown,
    /// Panic in the handler.
    Panic,
    /// Return `Err` from the handler.
    Fail,
    /// Block in the handler for this long (a stop request waits behind it).
    Hang(Duration),
    /// Make `post_stop` take this long.
    SlowCleanup(Duration),
    /// Exit normally, then spend this long in `post_stop`, logging `cleaning <id>` first.
    ExitSlowly(Duration),
    /// Answer with this incarnation's generation.
    Ping(RpcReplyPort<u64>),
}

#[cfg(feature = "cluster")]
impl ractor::Message for ProbeMsg {}

/// The ordered log all probes write to.
#[derive(Clone)]
pub struct Log {
    tx: Arc<watch::Sender<Vec<String>>>,
}

impl Default for Log {
    fn default() -> Self {
        Log {
            tx: Arc::new(watch::channel(Vec::new()).0),
        }
    }
}

impl Log {
    pub fn push(&self, entry: impl Into<String>) {
        let entry = entry.into();
        self.tx.send_modify(|v| v.push(entry));
    }

    pub fn snapshot(&self) -> Vec<String> {
        self.tx.borrow().clone()
    }

    pub fn clear(&self) {
        self.tx.send_modify(|v| v.clear());
    }

    /// Waits (bounded) until the log holds at least `n` entries; returns the log.
    pub async fn wait_len(&self, n: usize) -> Vec<String> {
        let mut rx = self.tx.subscribe();
        let got = tokio::time::timeout(WAIT, rx.wait_for(|v| v.len() >= n)).await;
        match got {
            Ok(Ok(v)) => v.clone(),
            _ => panic!(
                "timed out waiting for {n} log entries; log = {:?}",
                self.snapshot()
            ),
        }
    }

    /// Waits (bounded) until the log contains `entry`; returns the log.
    pub async fn wait_for(&self, entry: &str) -> Vec<String> {
        let mut rx = self.tx.subscribe();
        let got = tokio::time::timeout(WAIT, rx.wait_for(|v| v.iter().any(|e| e == entry))).await;
        match got {
            Ok(Ok(v)) => v.clone(),
            _ => panic!(
                "timed out waiting for {entry:?}; log = {:?}",
                self.snapshot()
            ),
        }
    }
}

/// How a child under test is made to end (the restart-decision table's columns).
#[derive(Debug, Clone, Copy)]
pub enum How {
    Normal,
    Shutdown,
    Panic,
    Error,
    Killed,
}

/// What became of a child that ended by itself.
#[derive(Debug, PartialEq)]
pub enum Outcome {
    Restarted,
    Kept,
    Deleted,
}

/// Shared script and log of a test's probes.
#[derive(Clone, Default)]
pub struct Probes {
    pub log: Log,
    steps: Arc<Mutex<HashMap<String, VecDeque<StartStep>>>>,
}

impl Probes {
    pub fn new() -> Self {
        Self::default()
    }

    /// Scripts the next start attempts of `id` (after the script runs out: `Ok`).
    pub fn script(&self, id: &str, steps: impl IntoIterator<Item = StartStep>) {
        self.steps
            .lock()
            .unwrap()
            .entry(id.to_string())
            .or_default()
            .extend(steps);
    }

    fn next_step(&self, id: &str) -> StartStep {
        self.steps
            .lock()
            .unwrap()
            .get_mut(id)
            .and_then(|q| q.pop_front())
            .unwrap_or(StartStep::Ok)
    }

    /// Starts one probe incarnation named `id`, following the script.
    pub async fn start(self, ctx: ChildContext, id: String) -> StartResult {
        let step = self.next_step(&id);
        if step == StartStep::Ignore {
            self.log.push(format!("ignore {id}"));
            return Ok(ChildStart::Ignore);
        }
        let probe = Probe {
            id,
            log: self.log.clone(),
        };
        ctx.spawn_linked(probe, (step, ctx.generation())).await
    }

    /// A child spec whose incarnations are probes following this script.
    pub fn spec(&self, id: &str) -> ChildSpec {
        let (probes, id_owned) = (self.clone(), id.to_string());
        ChildSpec::new(id, move |ctx: ChildContext| {
            probes.clone().start(ctx, id_owned.clone())
        })
    }

    /// A dynamic-supervisor template: each child is a probe named by its argument.
    pub fn template(&self) -> ChildTemplate<String> {
        let probes = self.clone();
        ChildTemplate::new(move |ctx: ChildContext, id: String| probes.clone().start(ctx, id))
    }
}

pub struct Probe {
    id: String,
    log: Log,
}

pub struct ProbeState {
    generation: u64,
    cleanup: Duration,
    announce_cleanup: bool,
}

#[cfg_attr(feature = "async-trait", ractor::async_trait)]
impl Actor for Probe {
    type Msg = ProbeMsg;
    type State = ProbeState;
    type Arguments = (StartStep, u64);

    async fn pre_start(
        &self,
        _myself: ActorRef<ProbeMsg>,
        (step, generation): (StartStep, u64),
    ) -> Result<ProbeState, ActorProcessingErr> {
        match step {
            StartStep::Fail => {
                self.log.push(format!("start_failed {}", self.id));
                return Err(format!("{} refused to start", self.id).into());
            }
            StartStep::Panic => {
                self.log.push(format!("start_failed {}", self.id));
                panic!("{} panicked while starting", self.id);
            }
            StartStep::Slow(d) => tokio::time::sleep(d).await,
            StartStep::Ok | StartStep::Ignore => {}
        }
        self.log.push(format!("start {}", self.id));
        Ok(ProbeState {
            generation,
            cleanup: Duration::ZERO,
            announce_cleanup: false,
        })
    }

    async fn handle(
        &self,
        myself: ActorRef<ProbeMsg>,
        msg: ProbeMsg,
        state: &mut ProbeState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            ProbeMsg::ExitNormal => {
                self.log.push(format!("exit {}", self.id));
                myself.stop(None);
            }
            ProbeMsg::ExitShutdown => {
                self.log.push(format!("exit {}", self.id));
                myself.stop(Some("shutdown".into()));
            }
            ProbeMsg::Panic => {
                self.log.push(format!("crash {}", self.id));
                panic!("{} was told to panic", self.id);
            }
            ProbeMsg::Fail => {
                self.log.push(format!("crash {}", self.id));
                return Err(format!("{} was told to fail", self.id).into());
            }
            ProbeMsg::Hang(d) => tokio::time::sleep(d).await,
            ProbeMsg::SlowCleanup(d) => state.cleanup = d,
            ProbeMsg::ExitSlowly(d) => {
                state.cleanup = d;
                state.announce_cleanup = true;
                self.log.push(format!("exit {}", self.id));
                myself.stop(None);
            }
            ProbeMsg::Ping(reply) => {
                let _ = reply.send(state.generation);
            }
        }
        Ok(())
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<ProbeMsg>,
        state: &mut ProbeState,
    ) -> Result<(), ActorProcessingErr> {
        if state.announce_cleanup {
            self.log.push(format!("cleaning {}", self.id));
        }
        if !state.cleanup.is_zero() {
            tokio::time::sleep(state.cleanup).await;
        }
        self.log.push(format!("stop {}", self.id));
        Ok(())
    }
}

/// Sends a command to child `id` of `sup`.
pub async fn tell(sup: &SupervisorRef, id: &str, msg: ProbeMsg) {
    let probe = sup
        .child_ref::<ProbeMsg>(id)
        .await
        .unwrap_or_else(|e| panic!("child {id}: {e}"));
    probe.cast(msg).expect("probe is alive");
}

/// Asks child `id` of `sup` for its generation (a round trip: it is up and serving).
pub async fn ping(sup: &SupervisorRef, id: &str) -> u64 {
    let probe = sup
        .child_ref::<ProbeMsg>(id)
        .await
        .unwrap_or_else(|e| panic!("child {id}: {e}"));
    bounded(async { ractor::call!(probe, ProbeMsg::Ping) })
        .await
        .expect("ping")
}

/// Awaits `fut` within [`WAIT`], failing the test otherwise.
pub async fn bounded<F: std::future::Future>(fut: F) -> F::Output {
    tokio::time::timeout(WAIT, fut)
        .await
        .expect("bounded wait timed out")
}

/// A round trip to the supervisor: everything it was doing before is finished.
pub async fn barrier(sup: &SupervisorRef) {
    bounded(sup.count_children())
        .await
        .expect("supervisor alive");
}

/// Waits (bounded) for the first event matching `pred`, returning it; earlier events are
/// returned too, in order, as the first element.
pub async fn next_matching(
    events: &mut EventStream,
    pred: impl Fn(&SupervisorEvent) -> bool,
) -> (Vec<SupervisorEvent>, SupervisorEvent) {
    let mut before = Vec::new();
    loop {
        match bounded(events.recv()).await {
            Some(e) if pred(&e) => return (before, e),
            Some(e) => before.push(e),
            None => panic!("event stream ended; saw {before:?}"),
        }
    }
}

/// Waits (bounded) for the next `RestartScheduled` event; returns its delay.
pub async fn restart_scheduled(events: &mut EventStream) -> Duration {
    let (_, e) = next_matching(events, |e| {
        matches!(e, SupervisorEvent::RestartScheduled { .. })
    })
    .await;
    match e {
        SupervisorEvent::RestartScheduled { delay, .. } => delay,
        _ => unreachable!("next_matching returned the matching event"),
    }
}

/// A parent that records the supervision events of what is linked to it.
pub struct Parent;

pub enum ParentMsg {}

#[cfg(feature = "cluster")]
impl ractor::Message for ParentMsg {}

#[cfg_attr(feature = "async-trait", ractor::async_trait)]
impl Actor for Parent {
    type Msg = ParentMsg;
    type State = tokio::sync::mpsc::UnboundedSender<String>;
    type Arguments = tokio::sync::mpsc::UnboundedSender<String>;

    async fn pre_start(
        &self,
        _: ActorRef<ParentMsg>,
        tx: Self::Arguments,
    ) -> Result<Self::State, ActorProcessingErr> {
        Ok(tx)
    }

    async fn handle_supervisor_evt(
        &self,
        _: ActorRef<ParentMsg>,
        event: ractor::SupervisionEvent,
        tx: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match event {
            ractor::SupervisionEvent::ActorFailed(_, err) => {
                let typed = err
                    .downcast_ref::<IntensityExceeded>()
                    .map(|e| format!("intensity_exceeded {}", e.child))
                    .unwrap_or_else(|| format!("failed {err}"));
                let _ = tx.send(typed);
            }
            ractor::SupervisionEvent::ActorTerminated(_, _, reason) => {
                let _ = tx.send(format!("terminated {reason:?}"));
            }
            _ => {}
        }
        Ok(())
    }
}

/// Spawns a [`Parent`] and returns it with the receiver of what it saw.
pub async fn parent() -> (
    ActorRef<ParentMsg>,
    tokio::sync::mpsc::UnboundedReceiver<String>,
) {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let (actor, _) = Actor::spawn(None, Parent, tx).await.expect("parent spawns");
    (actor, rx)
}

pub fn s(v: &[&str]) -> Vec<String> {
    v.iter().map(|x| x.to_string()).collect()
}
