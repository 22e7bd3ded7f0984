//! Retention in a runner: a task of the runner's own prunes what its [`Retention`] lets go of,
//! every [`Retention::every`], batch after batch (each one short transaction) until a batch
//! comes back short, so pruning never holds the queue up. Any number of runners may prune the
//! same store at once; no leader is needed.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use super::Counters;
use crate::jobs::{Jobs, Retention, StoreError};

/// Prunes until the runner stops (the task is aborted then).
pub(super) async fn keep_pruning(jobs: Jobs, retention: Retention, stats: Arc<Counters>) {
    let every = retention.interval();
    let mut interval = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        interval.tick().await;
        let request = retention.request(jobs.now());
        loop {
            match jobs.store().prune(request, jobs.now()).await {
                Ok(pruned) => {
                    stats.pruned.fetch_add(pruned.jobs, Ordering::Relaxed);
                    crate::observe::metrics::jobs_pruned(pruned.jobs);
                    if pruned.jobs + pruned.keys > 0 {
                        tracing::debug!(
                            jobs = pruned.jobs,
                            keys = pruned.keys,
                            "pruned finished jobs and expired keys"
                        );
                    }
                    if !pruned.full(request.limit) {
                        break;
                    }
                    // Let the queue's own work in between batches.
                    tokio::task::yield_now().await;
                }
                Err(StoreError::Invalid(reason)) => {
                    tracing::debug!(%reason, "the job store does not prune; finished jobs are kept");
                    return;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "pruning finished jobs failed; trying again at the next pass");
                    break;
                }
            }
        }
    }
}
