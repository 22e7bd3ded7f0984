//! The runner's actor: its messages, its state, and the loop that wires them to the roles
//! (claim, execute, lease, drain). [`RunnerState::forget`] is the one way a run leaves the
//! runner, whatever ended it; a run that ended waits as [`Ended`] for the next store turn,
//! which records it and claims in one transaction.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use tokio::sync::watch;
use tokio::task::AbortHandle;
use tokio::time::Instant;

use super::builder::RunnerBuilder;
use super::claim::TurnDone;
use super::drain::Drain;
use super::execute::Verdict;
use super::pace::pace;
use super::prune;
use super::rescue;
use super::schedule;
use super::{Counters, ShutdownReport};
use crate::jobs::breaker::CircuitBreaker;
use crate::jobs::{Finish, JobId, Jobs, Lease, Liveness};

pub(super) struct RunnerActor;

pub(super) struct RunnerArgs {
    pub(super) config: Arc<RunnerBuilder>,
    pub(super) stats: Arc<Counters>,
}

pub(crate) enum RunnerMsg {
    /// Look at the store (from the pacer).
    Tick,
    /// Renew leases, give up on hung runs.
    Heartbeat,
    /// Look for due jobs no handler of this runner takes.
    CheckUnhandled,
    /// Look for dead runners' jobs.
    Rescue,
    /// A run ended (from its task): recorded at the next turn.
    Ended(Ended),
    Shutdown {
        drain: Duration,
        reply: RpcReplyPort<ShutdownReport>,
    },
    DrainDeadline,
    /// A store turn came back.
    TurnDone(TurnDone),
}

/// A run that ended, waiting for the store turn that records it.
pub(crate) struct Ended {
    pub(super) lease: Lease,
    pub(super) finish: Finish,
    pub(super) verdict: Verdict,
}

#[cfg(feature = "cluster")]
impl ractor::Message for RunnerMsg {}

/// A job running now.
pub(super) struct Running {
    pub(super) token: i64,
    pub(super) name: String,
    pub(super) abort: AbortHandle,
    /// The attempt's timeout instant; past it plus the grace, the run is hung.
    pub(super) deadline: Instant,
    pub(super) timeout: Duration,
}

pub(super) struct RunnerState {
    pub(super) config: Arc<RunnerBuilder>,
    pub(super) stats: Arc<Counters>,
    pub(super) owner: String,
    pub(super) names: Vec<String>,
    pub(super) running: HashMap<JobId, Running>,
    /// Runs that ended, for the next turn.
    pub(super) ended: Vec<Ended>,
    pub(super) breakers: HashMap<String, CircuitBreaker>,
    pub(super) drain: Option<Drain>,
    /// A store turn is in flight (at most one).
    pub(super) turning: bool,
    /// A wake came, or a claim filled every slot, during the turn in flight: claim again.
    pub(super) claim_again: bool,
    pub(super) tick_pending: Arc<AtomicBool>,
    pub(super) deadline: watch::Sender<Instant>,
    pub(super) timers: Vec<AbortHandle>,
    /// When the runner last looked for due jobs it has no handler for.
    pub(super) unhandled_checked: Option<Instant>,
    /// The job types without a handler already logged.
    pub(super) warned: HashSet<String>,
    /// This runner's sign of life in the store, held until it stops.
    pub(super) liveness: Option<Liveness>,
    /// A rescue is in flight (at most one).
    pub(super) rescuing: Arc<AtomicBool>,
}

#[cfg_attr(feature = "async-trait", ractor::async_trait)]
impl Actor for RunnerActor {
    type Msg = RunnerMsg;
    type State = RunnerState;
    type Arguments = RunnerArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<RunnerMsg>,
        args: RunnerArgs,
    ) -> Result<RunnerState, ActorProcessingErr> {
        let config = args.config;
        let mut names: Vec<String> = config.handlers.keys().cloned().collect();
        names.sort();
        let owner = format!(
            "{}-{}-{:016x}",
            std::process::id(),
            myself.get_id(),
            fastrand::u64(..)
        );
        let liveness = rescue::hold(&config.jobs, &owner).await;
        let tick_pending = Arc::new(AtomicBool::new(true));
        let (deadline, deadline_rx) = watch::channel(Instant::now() + config.poll_interval);
        let pacer = tokio::spawn(pace(
            myself.clone(),
            config.jobs.wake_receiver(),
            config.jobs.store().wakeups(),
            deadline_rx,
            tick_pending.clone(),
        ));
        let every = config.heartbeat_every();
        let heart = myself.clone();
        let heartbeat = tokio::spawn(async move {
            let mut interval = tokio::time::interval_at(Instant::now() + every, every);
            interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                interval.tick().await;
                if heart.cast(RunnerMsg::Heartbeat).is_err() {
                    return;
                }
            }
        });
        let rescuer = myself.clone();
        let rescues = tokio::spawn(async move {
            let mut interval = tokio::time::interval(rescue::RESCUE_EVERY);
            interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                // The first tick is at once: a runner rescues before its first claim.
                interval.tick().await;
                if rescuer.cast(RunnerMsg::Rescue).is_err() {
                    return;
                }
            }
        });
        let mut timers = vec![
            pacer.abort_handle(),
            heartbeat.abort_handle(),
            rescues.abort_handle(),
        ];
        let pruner = tokio::spawn(prune::keep_pruning(
            config.jobs.clone(),
            config.retention,
            args.stats.clone(),
        ));
        timers.push(pruner.abort_handle());
        if !config.schedules.is_empty() {
            let keeper = tokio::spawn(schedule::keep(
                config.jobs.clone(),
                config.schedules.clone(),
                args.stats.clone(),
            ));
            timers.push(keeper.abort_handle());
        }
        // The first look at the store.
        myself.cast(RunnerMsg::Tick)?;
        myself.cast(RunnerMsg::CheckUnhandled)?;
        config.jobs.count_handlers(&names, true);
        let breakers = match config.breaker {
            Some((threshold, cooldown)) => names
                .iter()
                .map(|n| (n.clone(), CircuitBreaker::new(threshold, cooldown)))
                .collect(),
            None => HashMap::new(),
        };
        tracing::info!(%owner, handlers = ?names, queues = ?config.queues, "job runner started");
        Ok(RunnerState {
            config,
            stats: args.stats,
            owner,
            names,
            running: HashMap::new(),
            ended: Vec::new(),
            breakers,
            drain: None,
            turning: false,
            claim_again: false,
            tick_pending,
            deadline,
            timers,
            unhandled_checked: None,
            warned: HashSet::new(),
            liveness,
            rescuing: Arc::new(AtomicBool::new(false)),
        })
    }

    async fn handle(
        &self,
        myself: ActorRef<RunnerMsg>,
        msg: RunnerMsg,
        state: &mut RunnerState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            RunnerMsg::Tick => {
                state.tick_pending.store(false, Ordering::Release);
                state.claim_again = true;
                state.turn(&myself);
            }
            RunnerMsg::TurnDone(done) => state.turn_done(&myself, done).await,
            RunnerMsg::Heartbeat => {
                state.heartbeat(&myself).await;
                state.check_unhandled().await;
            }
            RunnerMsg::CheckUnhandled => state.check_unhandled().await,
            RunnerMsg::Rescue => state.rescue(&myself),
            RunnerMsg::Ended(ended) => {
                let Lease { id, token } = ended.lease;
                // A run already given up on (hung, lease lost) was counted then.
                if state.running.get(&id).map(|r| r.token) != Some(token) {
                    return Ok(());
                }
                if let Some(run) = state.forget(id) {
                    state.judge(&run.name, ended.verdict);
                    state.ended.push(ended);
                }
                state.turn(&myself);
            }
            RunnerMsg::Shutdown { drain, reply } => state.begin_drain(&myself, drain, reply),
            RunnerMsg::DrainDeadline => state.drain_deadline(&myself).await,
        }
        Ok(())
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<RunnerMsg>,
        state: &mut RunnerState,
    ) -> Result<(), ActorProcessingErr> {
        for timer in &state.timers {
            timer.abort();
        }
        state.config.jobs.count_handlers(&state.names, false);
        state.flush_ended().await;
        let released = state.give_back_all().await;
        // Its leases are given back: let go of the sign of life.
        state.liveness.take();
        tracing::info!(owner = %state.owner, released, "job runner stopped");
        Ok(())
    }
}

impl RunnerState {
    pub(super) fn jobs(&self) -> &Jobs {
        &self.config.jobs
    }

    /// Slots free for new claims.
    pub(super) fn free(&self) -> u32 {
        self.config
            .concurrency
            .saturating_sub(self.running.len() as u32)
    }

    /// Forgets a running job, however its run ended (finished, hung, lease lost, given back
    /// at shutdown): its task is cancelled (a no-op once it has ended) and its slot freed.
    pub(super) fn forget(&mut self, id: JobId) -> Option<Running> {
        let run = self.running.remove(&id)?;
        run.abort.abort();
        self.stats.running.fetch_sub(1, Ordering::Relaxed);
        Some(run)
    }
}
