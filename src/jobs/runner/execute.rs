//! One job's run: its handler under its timeout (a panic is a failed attempt), the outcome
//! turned into the store's [`Finish`] ([`to_finish`]) and handed to the runner, whose next
//! store turn writes it (fenced by the lease's token); then it is counted and feeds the job
//! type's circuit breaker.

use std::sync::atomic::Ordering;

use futures::FutureExt;
use ractor::ActorRef;
use tokio::time::Instant;
use tracing::Instrument;

use super::actor::{Ended, RunnerMsg, RunnerState, Running};
use crate::jobs::handler::{JobErrorKind, RunOutcome};
use crate::jobs::{ClaimedJob, Finish, JobContext, JobId, Lease, StoreError, Timestamp};

/// How a run ended, as the runner counts it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    Completed,
    Failed { timed_out: bool },
    Deferred,
}

impl Verdict {
    /// Its name as a metric's `outcome` label.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Verdict::Completed => "completed",
            Verdict::Failed { timed_out: false } => "failed",
            Verdict::Failed { timed_out: true } => "timed_out",
            Verdict::Deferred => "deferred",
        }
    }
}

impl RunnerState {
    pub(super) fn start(&mut self, myself: &ActorRef<RunnerMsg>, job: ClaimedJob) {
        super::bump(&self.stats.claimed);
        self.stats.running.fetch_add(1, Ordering::Relaxed);
        let lease = Lease {
            id: job.id,
            token: job.token,
        };
        let timeout = job.timeout.unwrap_or(self.config.timeout);
        let span =
            tracing::info_span!("job", id = job.id.0, name = %job.name, attempt = job.attempt);
        let ctx = JobContext::new(&job);
        let run = match self.config.handlers.get(&job.name) {
            Some(handler) => handler.run(&job, ctx.clone()),
            // Claims name only registered types; a store that ignores that gets the job back.
            None => futures::future::ready(RunOutcome::Failed(JobErrorKind::Snooze(
                self.config.poll_interval,
            )))
            .boxed(),
        };
        let jobs = self.jobs().clone();
        let runner = myself.clone();
        let (queue, kind) = (job.queue.clone(), job.name.clone());
        crate::observe::metrics::job_started(&queue, &kind, jobs.now().since(job.due_at));
        let task = tokio::spawn(
            async move {
                let began = Instant::now();
                let outcome = match tokio::time::timeout(
                    timeout,
                    std::panic::AssertUnwindSafe(run).catch_unwind(),
                )
                .await
                {
                    Ok(Ok(outcome)) => outcome,
                    Ok(Err(panic)) => RunOutcome::Failed(JobErrorKind::Retry(
                        crate::actors::panic_message("the handler", panic.as_ref()),
                    )),
                    Err(_) => RunOutcome::TimedOut(timeout),
                };
                let (finish, verdict) = to_finish(outcome, &ctx, jobs.now());
                crate::observe::metrics::job_finished(
                    &queue,
                    &kind,
                    verdict.as_str(),
                    began.elapsed(),
                );
                let _ = runner.cast(RunnerMsg::Ended(Ended {
                    lease,
                    finish,
                    verdict,
                }));
            }
            .instrument(span),
        );
        self.running.insert(
            job.id,
            Running {
                token: job.token,
                name: job.name,
                abort: task.abort_handle(),
                deadline: Instant::now() + timeout,
                timeout,
            },
        );
    }

    /// A run of type `name` ended with `verdict`: its type's breaker learns it at once, so the
    /// turn that records it already claims by the breaker's new state.
    pub(super) fn judge(&mut self, name: &str, verdict: Verdict) {
        let now = self.jobs().now();
        let Some(breaker) = self.breakers.get_mut(name) else {
            return;
        };
        match verdict {
            Verdict::Completed => breaker.on_success(),
            Verdict::Failed { .. } => {
                let was = breaker.is_tripped();
                breaker.on_failure(now);
                if !was && breaker.is_tripped() {
                    tracing::warn!(
                        job_type = name,
                        "circuit breaker tripped: holding this job type back"
                    );
                }
            }
            // A deferred probe proves nothing: let the next one be tried.
            Verdict::Deferred => breaker.probe_not_found(now),
        }
    }

    /// Counts a run once the store has its result (or refused it: the lease was lost).
    pub(super) fn record(&mut self, id: JobId, verdict: Verdict, stored: Result<(), StoreError>) {
        if let Err(e) = stored {
            super::bump(&self.stats.lost);
            if matches!(e, StoreError::LeaseLost(_)) {
                crate::observe::metrics::fencing_rejection();
            }
            tracing::warn!(%id, error = %e, "a run's result was not recorded");
            return;
        }
        match verdict {
            Verdict::Completed => super::bump(&self.stats.completed),
            Verdict::Failed { timed_out } => {
                super::bump(&self.stats.failed);
                if timed_out {
                    super::bump(&self.stats.timed_out);
                }
            }
            Verdict::Deferred => super::bump(&self.stats.deferred),
        }
    }
}

/// Turns a run's outcome into the store's `Finish` and the runner's verdict.
pub(super) fn to_finish(
    outcome: RunOutcome,
    ctx: &JobContext,
    now: Timestamp,
) -> (Finish, Verdict) {
    match outcome {
        RunOutcome::Completed(result) => {
            let follow_ups = ctx.take_follow_ups();
            (
                Finish::Completed {
                    result,
                    follow_ups: follow_ups.jobs,
                    groups: follow_ups.groups,
                },
                Verdict::Completed,
            )
        }
        RunOutcome::TimedOut(timeout) => (
            Finish::Failed {
                error: format!("timed out after {timeout:?}"),
                retry: true,
            },
            Verdict::Failed { timed_out: true },
        ),
        RunOutcome::Failed(kind) => match kind {
            JobErrorKind::Retry(error) => (
                Finish::Failed { error, retry: true },
                Verdict::Failed { timed_out: false },
            ),
            JobErrorKind::Discard(error) => (
                Finish::Failed {
                    error,
                    retry: false,
                },
                Verdict::Failed { timed_out: false },
            ),
            JobErrorKind::Snooze(delay) => (
                Finish::Snoozed {
                    until: now.after(delay),
                },
                Verdict::Deferred,
            ),
            JobErrorKind::Park => (Finish::Parked, Verdict::Deferred),
        },
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::jobs::{JobOptions, NewJob};

    fn ctx() -> JobContext {
        JobContext::new(&ClaimedJob {
            id: JobId(1),
            token: 1,
            name: "j".into(),
            version: 1,
            payload: "null".into(),
            queue: "default".into(),
            attempt: 1,
            max_attempts: 3,
            timeout: None,
            lease_expires_at: Timestamp::from_millis(0),
            due_at: Timestamp::from_millis(0),
            children: Vec::new(),
        })
    }

    const NOW: Timestamp = Timestamp::from_millis(1_000);

    #[test]
    fn a_completed_run_carries_its_follow_ups() {
        #[derive(serde::Serialize, serde::Deserialize)]
        struct Next;
        impl crate::jobs::Job for Next {
            const NAME: &'static str = "next";
            type Output = ();
        }
        let ctx = ctx();
        ctx.enqueue(Next).expect("a valid follow-up");
        let follow_up = NewJob::new(&Next, JobOptions::default()).expect("a valid job");
        let (finish, verdict) = to_finish(RunOutcome::Completed("7".into()), &ctx, NOW);
        assert_eq!(verdict, Verdict::Completed);
        assert_eq!(
            finish,
            Finish::Completed {
                result: "7".into(),
                follow_ups: vec![follow_up],
                groups: Vec::new(),
            }
        );
    }

    #[test]
    fn failures_retry_or_discard_and_deferrals_do_not_count() {
        let ctx = ctx();
        let failed = |kind| to_finish(RunOutcome::Failed(kind), &ctx, NOW);
        assert_eq!(
            failed(JobErrorKind::Retry("e".into())),
            (
                Finish::Failed {
                    error: "e".into(),
                    retry: true
                },
                Verdict::Failed { timed_out: false }
            )
        );
        assert_eq!(
            failed(JobErrorKind::Discard("e".into())),
            (
                Finish::Failed {
                    error: "e".into(),
                    retry: false
                },
                Verdict::Failed { timed_out: false }
            )
        );
        assert_eq!(
            failed(JobErrorKind::Snooze(Duration::from_secs(2))),
            (
                Finish::Snoozed {
                    until: NOW.after(Duration::from_secs(2))
                },
                Verdict::Deferred
            )
        );
        assert_eq!(
            failed(JobErrorKind::Park),
            (Finish::Parked, Verdict::Deferred)
        );
        assert_eq!(
            to_finish(RunOutcome::TimedOut(Duration::from_secs(3)), &ctx, NOW),
            (
                Finish::Failed {
                    error: "timed out after 3s".into(),
                    retry: true
                },
                Verdict::Failed { timed_out: true }
            )
        );
    }
}
