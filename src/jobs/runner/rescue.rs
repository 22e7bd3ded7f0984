//! Prompt rescue: a runner holds a sign of life in the store ([`Store::hold_liveness`]) for as
//! long as it lives, and looks every [`RESCUE_EVERY`] (and at start) for runners whose sign is
//! gone: their jobs become claimable at once ([`Store::rescue`]) instead of after their
//! leases, and the next claim records the lost run and fences it with a new token. The lease
//! stays the fallback (a store without signs of life, a hung host).
//!
//! [`Store::hold_liveness`]: crate::jobs::Store::hold_liveness
//! [`Store::rescue`]: crate::jobs::Store::rescue

use std::sync::atomic::Ordering;
use std::time::Duration;

use ractor::ActorRef;

use super::actor::{RunnerMsg, RunnerState};
use crate::jobs::{Jobs, Liveness};

/// How often a runner looks for dead runners' jobs.
pub(super) const RESCUE_EVERY: Duration = Duration::from_secs(1);

/// Takes `owner`'s sign of life; a store that cannot give one (or fails to) leaves the runner
/// to leases alone.
pub(super) async fn hold(jobs: &Jobs, owner: &str) -> Option<Liveness> {
    match jobs.store().hold_liveness(owner.to_owned()).await {
        Ok(liveness) => liveness,
        Err(e) => {
            tracing::warn!(%owner, error = %e, "cannot hold a sign of life in the job store: if this process dies, its jobs wait for their leases");
            None
        }
    }
}

impl RunnerState {
    /// Frees the jobs of dead runners, in a task of its own (a store busy or slow to answer
    /// does not hold the runner up); a rescue that freed some wakes the runner to claim them.
    pub(super) fn rescue(&mut self, myself: &ActorRef<RunnerMsg>) {
        if self.drain.is_some() || self.rescuing.load(Ordering::Acquire) {
            return;
        }
        self.rescuing.store(true, Ordering::Release);
        let (jobs, runner, rescuing) = (self.jobs().clone(), myself.clone(), self.rescuing.clone());
        tokio::spawn(async move {
            match jobs.store().rescue(jobs.now()).await {
                Ok(rescued) if rescued.is_empty() => {}
                Ok(rescued) => {
                    tracing::info!(jobs = ?rescued, "rescued the jobs of a runner that died");
                    crate::observe::metrics::jobs_rescued(rescued.len());
                    let _ = runner.cast(RunnerMsg::Tick);
                }
                Err(e) => tracing::debug!(error = %e, "looking for dead runners' jobs failed"),
            }
            rescuing.store(false, Ordering::Release);
        });
    }
}
