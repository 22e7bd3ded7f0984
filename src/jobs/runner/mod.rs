//! The runner: an actor that claims due jobs from a store and runs them with their handlers.
//!
//! One runner holds up to `concurrency` leases. It claims when a slot frees, when a job is
//! enqueued through the same [`Jobs`] handle, when the store says the next job is due (a
//! schedule, a backoff, an expired lease), and at least every `poll_interval` (other processes
//! enqueue too). Each claimed job runs in its own task under its timeout; the task writes the
//! result to the store (fenced by the lease's token) and tells the runner. A heartbeat renews
//! the leases of running jobs; a lease found lost cancels its run. A handler that does not stop
//! when its timeout cancels it (it blocks its thread) is given up on after a grace period and
//! reported as hung.
//!
//! Per job type, a [`CircuitBreaker`](crate::jobs::breaker::CircuitBreaker) holds jobs back after consecutive failures: they stay in
//! the store, unclaimed, until a probe succeeds.
//!
//! Shutdown ([`Runner::shutdown`]): stop claiming, let running jobs finish within the drain
//! timeout, then cancel the rest and give them back to the store without consuming an attempt.
//! A runner stopped any other way (its supervisor, a crash) gives back what it can in
//! `post_stop`; what it cannot is recovered by lease expiry.
//!
//! The runner by role, one file each: `builder` (configuration and validation), `actor`
//! (the actor and its state, and the one way a run leaves it), `pace` (when to look at the
//! store next), `claim` (what to claim, admitted by the breakers), `execute` (one job's run and
//! how its outcome is recorded), `lease` (renewing leases, giving up on hung runs), `rescue`
//! (a sign of life, and freeing dead runners' jobs at once), `schedule` (firing recurring
//! schedules' slots), `prune` (retention), `drain` (shutdown) and
//! `unhandled` (saying which due jobs no handler takes). The decisions are plain functions, unit-tested in their files.

mod actor;
mod builder;
mod claim;
mod drain;
mod execute;
mod lease;
mod pace;
mod prune;
mod rescue;
mod schedule;
mod unhandled;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use ractor::{ActorCell, ActorRef};

use crate::jobs::{Jobs, JobsError};
use actor::RunnerMsg;
pub use builder::RunnerBuilder;

/// A running runner. Cheap to clone.
#[derive(Clone)]
pub struct Runner {
    actor: ActorRef<RunnerMsg>,
    stats: Arc<Counters>,
}

impl std::fmt::Debug for Runner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runner")
            .field("actor", &self.actor.get_id())
            .field("stats", &self.stats())
            .finish()
    }
}

/// What happened to the jobs running when a runner shut down.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct ShutdownReport {
    /// Finished within the drain timeout.
    pub finished: usize,
    /// Cancelled at the drain timeout and given back to the store, attempt not counted.
    pub released: usize,
}

/// A runner's counters since it started.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct RunnerStats {
    /// Jobs claimed.
    pub claimed: u64,
    /// Runs that completed.
    pub completed: u64,
    /// Runs that failed (an error, a panic, a timeout, a hang).
    pub failed: u64,
    /// Of those, timed out.
    pub timed_out: u64,
    /// Of those, hung: did not stop when cancelled at their timeout.
    pub hung: u64,
    /// Runs that snoozed or parked.
    pub deferred: u64,
    /// Runs whose lease was lost (their result was not recorded).
    pub lost: u64,
    /// Jobs running now.
    pub running: u64,
    /// Due jobs in this runner's queues whose type it has no handler for, at its last look
    /// (at start, then every minute): they wait for a runner that has one. Each such type is
    /// also logged once, with a warning.
    pub unhandled: u64,
    /// Finished jobs this runner pruned ([`Retention`](crate::jobs::Retention)).
    pub pruned: u64,
    /// Schedule slots this runner fired (a job enqueued).
    pub slots_fired: u64,
    /// Schedule slots this runner counted missed (downtime, a starting deadline, an overlap
    /// held back).
    pub slots_missed: u64,
}

#[derive(Default)]
struct Counters {
    claimed: AtomicU64,
    completed: AtomicU64,
    failed: AtomicU64,
    timed_out: AtomicU64,
    hung: AtomicU64,
    deferred: AtomicU64,
    lost: AtomicU64,
    running: AtomicU64,
    unhandled: AtomicU64,
    slots_fired: AtomicU64,
    slots_missed: AtomicU64,
    pruned: AtomicU64,
}

fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

impl Runner {
    /// Stops claiming, lets running jobs finish for up to `drain`, then cancels the rest and
    /// gives them back to the store (attempt not counted). Returns once the runner has stopped.
    pub async fn shutdown(&self, drain: Duration) -> Result<ShutdownReport, JobsError> {
        let report = ractor::call!(self.actor, |reply| RunnerMsg::Shutdown { drain, reply });
        match report {
            Ok(report) => Ok(report),
            // Already stopped.
            Err(_) => Ok(ShutdownReport::default()),
        }
    }

    /// The runner's counters.
    pub fn stats(&self) -> RunnerStats {
        let s = &self.stats;
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        RunnerStats {
            claimed: get(&s.claimed),
            completed: get(&s.completed),
            failed: get(&s.failed),
            timed_out: get(&s.timed_out),
            hung: get(&s.hung),
            deferred: get(&s.deferred),
            lost: get(&s.lost),
            running: get(&s.running),
            unhandled: get(&s.unhandled),
            pruned: get(&s.pruned),
            slots_fired: get(&s.slots_fired),
            slots_missed: get(&s.slots_missed),
        }
    }

    /// A probe for tree walks: the runner's counters.
    pub(crate) fn probe(&self) -> crate::observe::Probe {
        let runner = self.clone();
        crate::observe::Probe::new(move |_path: String| {
            let stats = runner.stats();
            Box::pin(async move {
                Some(crate::observe::Observed {
                    kind: crate::observe::NodeKind::Runner(stats),
                    children: Vec::new(),
                })
            })
        })
    }

    /// The runner's actor (to link or monitor it).
    pub fn get_cell(&self) -> ActorCell {
        self.actor.get_cell()
    }
}

impl Jobs {
    /// A runner for this queue: register handlers, then `spawn()`.
    pub fn runner(&self) -> RunnerBuilder {
        RunnerBuilder::new(self.clone())
    }
}
