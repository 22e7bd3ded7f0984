//! Due jobs no handler takes: a runner claims only the types it has handlers for, so a job of
//! another type waits, unclaimed, until some runner has one. The runner looks at start and
//! then every minute, logs each such type once with a warning, and counts those jobs in
//! [`RunnerStats::unhandled`](super::RunnerStats::unhandled). With the `metrics` feature, the
//! same look samples the job-state gauges.

use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::time::Instant;

use super::actor::RunnerState;

/// How often the runner looks for due jobs it has no handler for.
pub(super) const UNHANDLED_EVERY: Duration = Duration::from_secs(60);

impl RunnerState {
    /// Sets the job-state gauges and the oldest due job's age (with the `metrics` feature,
    /// at each look).
    #[cfg(feature = "metrics")]
    async fn sample_job_metrics(&self) {
        let store = self.jobs().store();
        let now = self.jobs().now();
        let counts = store.counts(now).await;
        let due = store
            .next_due(self.config.queues.clone(), self.names.clone())
            .await;
        if let (Ok(counts), Ok(due)) = (counts, due) {
            let oldest = due.map_or(Duration::ZERO, |at| now.since(at));
            crate::observe::metrics::job_counts(&counts, oldest);
        }
    }

    /// Looks for due jobs of types this runner has no handler for, if the last look is at
    /// least [`UNHANDLED_EVERY`] old (or there was none).
    pub(super) async fn check_unhandled(&mut self) {
        if self
            .unhandled_checked
            .is_some_and(|at| at.elapsed() < UNHANDLED_EVERY)
        {
            return;
        }
        self.unhandled_checked = Some(Instant::now());
        #[cfg(feature = "metrics")]
        self.sample_job_metrics().await;
        let found = self
            .jobs()
            .store()
            .unhandled(
                self.config.queues.clone(),
                self.names.clone(),
                self.jobs().now(),
            )
            .await;
        let found = match found {
            Ok(found) => found,
            Err(e) => {
                tracing::debug!(error = %e, "looking for jobs without a handler failed");
                return;
            }
        };
        let waiting: u64 = found.iter().map(|(_, n)| n).sum();
        self.stats.unhandled.store(waiting, Ordering::Relaxed);
        for (name, n) in found {
            if self.warned.insert(name.clone()) {
                tracing::warn!(
                    job_type = %name,
                    waiting = n,
                    queues = ?self.config.queues,
                    handlers = ?self.names,
                    "due jobs of a type this runner has no handler for: they wait until a runner \
                     with one takes them (register it with `.handler(..)` or `.pool(..)`)"
                );
            }
        }
    }
}
