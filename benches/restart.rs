//! Restart latency: a one-for-one child panics; how long until its next incarnation has
//! answered a call?
//!
//! One iteration: send the child `Panic`, wait for the next incarnation's `pre_start` to hand
//! its `ActorRef` over a channel, then make one call (`Ping`) to it; the iteration ends when
//! the call returns. Both contenders use the same child actor and the same channel:
//!
//! * `ractor-otp` — a [`Supervisor`] (one-for-one, intensity `u32::MAX`) with one child;
//! * `hand-written` — a plain ractor actor whose `handle_supervisor_evt` re-spawns the child
//!   with `Actor::spawn_linked` on `ActorFailed`: the floor a supervisor can reach on ractor.
//!
//! A third, informational line (`ractor-otp child_ref poll`) finds the new incarnation the way
//! an application would, by polling `SupervisorRef::child_ref` until a call succeeds.
//!
//! The timing loop runs as a task on a runtime worker (as an application's code would), on a
//! multi-thread runtime with 2 workers. After criterion's group, a separate pass times every
//! iteration on its own (contenders interleaved in blocks, to share any drift) and prints mean,
//! p50, p99 and max in µs, and the ratio ractor-otp / hand-written; then the same on a
//! current-thread runtime for reference (no cross-thread wake-ups: the supervisors' CPU cost). Panics are silenced (an empty panic hook) for every
//! contender alike, so the figures measure supervision, not stderr.

use std::time::{Duration, Instant};

use criterion::{criterion_group, Criterion};
use ractor::{Actor, ActorCell, ActorProcessingErr, ActorRef, RpcReplyPort, SupervisionEvent};
use ractor_otp::prelude::*;
use tokio::runtime::Runtime;
use tokio::sync::mpsc;

/// The panic payload of a commanded crash (the panic hook keeps quiet about this one only).
const BOOM: &str = "boom (restart bench)";

/// What the child obeys.
enum WorkerMsg {
    /// Panic in the handler.
    Panic,
    /// Answer (proves this incarnation is up and serving).
    Ping(RpcReplyPort<()>),
}

#[cfg(feature = "cluster")]
impl ractor::Message for WorkerMsg {}

/// Where each incarnation announces itself from `pre_start`.
type Announce = mpsc::UnboundedSender<ActorRef<WorkerMsg>>;

/// The supervised child: announces every incarnation, panics on command.
#[derive(Clone)]
struct Worker;

#[cfg_attr(feature = "async-trait", ractor::async_trait)]
impl Actor for Worker {
    type Msg = WorkerMsg;
    type State = ();
    type Arguments = Announce;

    async fn pre_start(
        &self,
        myself: ActorRef<WorkerMsg>,
        announce: Announce,
    ) -> Result<(), ActorProcessingErr> {
        let _ = announce.send(myself);
        Ok(())
    }

    async fn handle(
        &self,
        _myself: ActorRef<WorkerMsg>,
        msg: WorkerMsg,
        _state: &mut (),
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            WorkerMsg::Panic => std::panic::panic_any(BOOM),
            WorkerMsg::Ping(reply) => {
                let _ = reply.send(());
            }
        }
        Ok(())
    }
}

/// The hand-written ractor supervisor: re-spawns its one child whenever it fails.
struct HandSupervisor;

struct HandState {
    child: ActorCell,
    announce: Announce,
}

#[cfg_attr(feature = "async-trait", ractor::async_trait)]
impl Actor for HandSupervisor {
    type Msg = ();
    type State = HandState;
    type Arguments = Announce;

    async fn pre_start(
        &self,
        myself: ActorRef<()>,
        announce: Announce,
    ) -> Result<HandState, ActorProcessingErr> {
        let (child, _) =
            Actor::spawn_linked(None, Worker, announce.clone(), myself.get_cell()).await?;
        Ok(HandState {
            child: child.get_cell(),
            announce,
        })
    }

    async fn handle_supervisor_evt(
        &self,
        myself: ActorRef<()>,
        event: SupervisionEvent,
        state: &mut HandState,
    ) -> Result<(), ActorProcessingErr> {
        if let SupervisionEvent::ActorFailed(cell, _) = event {
            if cell.get_id() == state.child.get_id() {
                let (child, _) =
                    Actor::spawn_linked(None, Worker, state.announce.clone(), myself.get_cell())
                        .await?;
                state.child = child.get_cell();
            }
        }
        Ok(())
    }
}

/// One running contender: its current child and the channel its incarnations announce on.
struct Contender {
    child: ActorRef<WorkerMsg>,
    announced: mpsc::UnboundedReceiver<ActorRef<WorkerMsg>>,
    stop: Stopper,
}

enum Stopper {
    Ours(SupervisorRef),
    Hand(ActorRef<()>),
}

impl Contender {
    async fn ours() -> Contender {
        let (tx, mut rx) = mpsc::unbounded_channel();
        let sup = Supervisor::builder()
            .strategy(Strategy::OneForOne)
            .intensity(u32::MAX)
            .period(Duration::from_millis(1))
            .child(ChildSpec::from_actor("w", Worker, tx))
            .spawn()
            .await
            .expect("spawn the ractor-otp supervisor");
        let child = rx.recv().await.expect("first incarnation");
        Contender {
            child,
            announced: rx,
            stop: Stopper::Ours(sup),
        }
    }

    async fn hand() -> Contender {
        let (tx, mut rx) = mpsc::unbounded_channel();
        let (sup, _) = Actor::spawn(None, HandSupervisor, tx)
            .await
            .expect("spawn the hand-written supervisor");
        let child = rx.recv().await.expect("first incarnation");
        Contender {
            child,
            announced: rx,
            stop: Stopper::Hand(sup),
        }
    }

    /// One restart: panic the child, await the next incarnation, call it.
    async fn restart_once(&mut self) {
        let _ = self.child.cast(WorkerMsg::Panic);
        self.child = self.announced.recv().await.expect("next incarnation");
        ractor::call!(self.child, WorkerMsg::Ping).expect("the new incarnation answers");
    }

    /// One restart, finding the new incarnation through `child_ref` (ractor-otp only).
    async fn restart_once_polling(&mut self) {
        let Stopper::Ours(sup) = &self.stop else {
            unreachable!("polling is for ractor-otp")
        };
        let old = self.child.get_id();
        let _ = self.child.cast(WorkerMsg::Panic);
        loop {
            if let Ok(child) = sup.child_ref::<WorkerMsg>("w").await {
                if child.get_id() != old && ractor::call!(child, WorkerMsg::Ping).is_ok() {
                    self.child = child;
                    break;
                }
            }
            tokio::task::yield_now().await;
        }
        // Keep the announce channel from growing.
        while self.announced.try_recv().is_ok() {}
    }

    async fn stop(self) {
        match self.stop {
            Stopper::Ours(sup) => sup.stop().await,
            Stopper::Hand(sup) => {
                let _ = sup.stop_and_wait(None, None).await;
            }
        }
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Ours,
    OursPolling,
    Hand,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Ours => "ractor-otp",
            Kind::OursPolling => "ractor-otp child_ref poll",
            Kind::Hand => "hand-written ractor",
        }
    }

    async fn spawn(self) -> Contender {
        match self {
            Kind::Ours | Kind::OursPolling => Contender::ours().await,
            Kind::Hand => Contender::hand().await,
        }
    }

    async fn restart(self, c: &mut Contender) {
        match self {
            Kind::OursPolling => c.restart_once_polling().await,
            _ => c.restart_once().await,
        }
    }
}

fn runtime() -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime")
}

fn bench_restart(c: &mut Criterion) {
    let rt = runtime();
    let mut group = c.benchmark_group("restart_latency");
    group
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    for kind in [Kind::Ours, Kind::Hand, Kind::OursPolling] {
        group.bench_function(kind.name(), |b| {
            b.to_async(&rt).iter_custom(|iters| async move {
                // The timing loop runs as a task on a runtime worker, as an application's
                // own code would (not on the thread blocked in `block_on`).
                let task = tokio::spawn(async move {
                    let mut contender = kind.spawn().await;
                    let mut total = Duration::ZERO;
                    for _ in 0..iters {
                        let t = Instant::now();
                        kind.restart(&mut contender).await;
                        total += t.elapsed();
                    }
                    contender.stop().await;
                    total
                });
                task.await.expect("the timing task")
            });
        });
    }
    group.finish();
    drop(rt);
}

struct Stats {
    mean: f64,
    p50: f64,
    p99: f64,
    max: f64,
    n: usize,
}

fn stats(samples: &mut [Duration]) -> Stats {
    samples.sort_unstable();
    let us = |d: Duration| d.as_secs_f64() * 1e6;
    let n = samples.len();
    let at = |q: f64| us(samples[((n as f64 * q).ceil() as usize).clamp(1, n) - 1]);
    Stats {
        mean: samples.iter().map(|&d| us(d)).sum::<f64>() / n as f64,
        p50: at(0.50),
        p99: at(0.99),
        max: us(samples[n - 1]),
        n,
    }
}

/// Per-iteration timing for mean and p99: contenders interleaved in blocks.
fn latency_report(rt: &Runtime, title: &str, with_targets: bool) {
    const WARMUP: usize = 2_000;
    const BLOCK: usize = 2_000;
    const ROUNDS: usize = 10;
    let kinds = [Kind::Ours, Kind::Hand, Kind::OursPolling];
    let mut samples = rt
        .block_on(async {
            tokio::spawn(async move {
                let mut samples: Vec<Vec<Duration>> =
                    vec![Vec::with_capacity(BLOCK * ROUNDS); kinds.len()];
                let mut contenders = Vec::new();
                for kind in kinds {
                    let mut c = kind.spawn().await;
                    for _ in 0..WARMUP {
                        kind.restart(&mut c).await;
                    }
                    contenders.push(c);
                }
                for _ in 0..ROUNDS {
                    for (i, kind) in kinds.iter().enumerate() {
                        for _ in 0..BLOCK {
                            let t = Instant::now();
                            kind.restart(&mut contenders[i]).await;
                            samples[i].push(t.elapsed());
                        }
                    }
                }
                for c in contenders {
                    c.stop().await;
                }
                samples
            })
            .await
        })
        .expect("the timing task");
    let results: Vec<Stats> = samples.iter_mut().map(|s| stats(s)).collect();
    println!();
    println!("restart latency: panic -> next incarnation answered a call ({title})");
    println!(
        "{:<28} {:>8} {:>9} {:>9} {:>9} {:>9}",
        "contender", "n", "mean µs", "p50 µs", "p99 µs", "max µs"
    );
    for (kind, s) in kinds.iter().zip(&results) {
        println!(
            "{:<28} {:>8} {:>9.2} {:>9.2} {:>9.2} {:>9.1}",
            kind.name(),
            s.n,
            s.mean,
            s.p50,
            s.p99,
            s.max
        );
    }
    let (ours, hand) = (&results[0], &results[1]);
    println!(
        "ratio ractor-otp / hand-written: mean {:.2}x, p99 {:.2}x",
        ours.mean / hand.mean,
        ours.p99 / hand.p99
    );
    if with_targets {
        println!(
            "targets: mean <= 15 µs [{}], p99 <= 50 µs [{}], <= 1.05x hand-written in mean [{}] \
             and p99 [{}]",
            verdict(ours.mean <= 15.0),
            verdict(ours.p99 <= 50.0),
            verdict(ours.mean / hand.mean <= 1.05),
            verdict(ours.p99 / hand.p99 <= 1.05)
        );
    }
}

fn verdict(ok: bool) -> &'static str {
    if ok {
        "met"
    } else {
        "MISSED"
    }
}

criterion_group!(benches, bench_restart);

fn main() {
    // Every contender panics its child once per iteration: keep stderr (and the default
    // hook's cost) out of the measurement.
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if info.payload().downcast_ref::<&str>() != Some(&BOOM) {
            default_hook(info);
        }
    }));
    benches();
    Criterion::default().configure_from_args().final_summary();
    if bench_mode() {
        latency_report(&runtime(), "multi-thread runtime, 2 workers", true);
        // For reference: the same on one thread, without cross-thread wake-ups, which on a
        // small VM dominate the figures above. Shows the supervisors' own CPU cost.
        let single = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("tokio runtime");
        latency_report(&single, "current-thread runtime, for reference", false);
    }
}

/// Whether this is a real benchmark run (`cargo bench`), not `cargo test --benches` or `--list`.
fn bench_mode() -> bool {
    let args: Vec<String> = std::env::args().collect();
    let has = |flag: &str| args.iter().any(|a| a == flag);
    has("--bench") && !has("--test") && !has("--list")
}
