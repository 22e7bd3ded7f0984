//! Metrics through the [`metrics`](https://docs.rs/metrics) facade (feature `metrics`).
//!
//! The library records; it never installs a recorder nor opens a port. Install one in your
//! executable (e.g. `metrics-exporter-prometheus`) **before** starting supervisors, pools and
//! runners: a pool caches its handles when it starts, and what is recorded before a recorder
//! is installed is lost. Every metric is described (help text and unit) once, when the first
//! of them is recorded. Labels are bounded: supervisor paths, child ids of static
//! supervisors (a dynamic supervisor's children are counted under `child="*"`), pool labels,
//! job types and queues, schedule names; never job ids, arguments or error text.
//!
//! | name | type | labels |
//! |---|---|---|
//! | `ractor_otp_supervisor_restarts_total` | counter | `supervisor`, `child` |
//! | `ractor_otp_supervisor_give_ups_total` | counter | `supervisor` |
//! | `ractor_otp_supervisor_children_running` | gauge | `supervisor` |
//! | `ractor_otp_pool_tasks_total` | counter | `pool`, `outcome` (`completed`, `failed`, `crashed`, `timed_out`, `rejected`, `dropped`) |
//! | `ractor_otp_pool_task_duration_seconds` | histogram | `pool` |
//! | `ractor_otp_pool_queue_wait_seconds` | histogram | `pool` |
//! | `ractor_otp_pool_queue_depth` | gauge | `pool` |
//! | `ractor_otp_pool_in_flight` | gauge | `pool` |
//! | `ractor_otp_jobs_finished_total` | counter | `queue`, `kind`, `outcome` (`completed`, `failed`, `timed_out`, `deferred`) |
//! | `ractor_otp_job_duration_seconds` | histogram | `queue`, `kind` |
//! | `ractor_otp_job_queue_latency_seconds` | histogram | `queue`, `kind` (due → started) |
//! | `ractor_otp_jobs` | gauge | `state` (sampled by each runner every minute) |
//! | `ractor_otp_jobs_oldest_due_age_seconds` | gauge | — (how long the oldest due job of a runner's queues has waited) |
//! | `ractor_otp_jobs_rescued_total` | counter | — |
//! | `ractor_otp_jobs_fencing_rejections_total` | counter | — |
//! | `ractor_otp_schedule_slots_total` | counter | `schedule`, `result` (`fired`, `missed`) |
//! | `ractor_otp_jobs_pruned_total` | counter | — |
//!
//! With Prometheus, give the `_seconds` histograms buckets
//! (`PrometheusBuilder::set_buckets_for_metric(Matcher::Suffix("_seconds".into()), …)`):
//! without them the exporter renders summaries, which cannot be summed across processes.

#[cfg(feature = "metrics")]
mod on {
    use std::sync::Once;
    use std::time::Duration;

    use metrics::{describe_counter, describe_gauge, describe_histogram, Unit};

    use crate::supervisor::SupervisorEvent;

    pub(crate) fn describe() {
        static ONCE: Once = Once::new();
        ONCE.call_once(|| {
            describe_counter!(
                "ractor_otp_supervisor_restarts_total",
                Unit::Count,
                "Restarts a supervisor decided, by the child whose exit caused them"
            );
            describe_counter!(
                "ractor_otp_supervisor_give_ups_total",
                Unit::Count,
                "Times a supervisor exceeded its restart intensity and gave up"
            );
            describe_gauge!(
                "ractor_otp_supervisor_children_running",
                Unit::Count,
                "Children with a live incarnation"
            );
            describe_counter!(
                "ractor_otp_pool_tasks_total",
                Unit::Count,
                "Pool tasks by how they ended"
            );
            describe_histogram!(
                "ractor_otp_pool_task_duration_seconds",
                Unit::Seconds,
                "Time a worker spent on a task"
            );
            describe_histogram!(
                "ractor_otp_pool_queue_wait_seconds",
                Unit::Seconds,
                "Time from a task's submission to a worker starting it"
            );
            describe_gauge!(
                "ractor_otp_pool_queue_depth",
                Unit::Count,
                "Tasks waiting in a pool's queue"
            );
            describe_gauge!(
                "ractor_otp_pool_in_flight",
                Unit::Count,
                "Tasks running on a pool's workers"
            );
            describe_counter!(
                "ractor_otp_jobs_finished_total",
                Unit::Count,
                "Job runs by how they ended"
            );
            describe_histogram!(
                "ractor_otp_job_duration_seconds",
                Unit::Seconds,
                "Time a job's run took"
            );
            describe_histogram!(
                "ractor_otp_job_queue_latency_seconds",
                Unit::Seconds,
                "Time from a job being due to its run starting"
            );
            describe_gauge!("ractor_otp_jobs", Unit::Count, "Jobs in each state");
            describe_gauge!(
                "ractor_otp_jobs_oldest_due_age_seconds",
                Unit::Seconds,
                "How long the oldest due job of a runner's queues has waited"
            );
            describe_counter!(
                "ractor_otp_jobs_rescued_total",
                Unit::Count,
                "Jobs of dead runners made claimable at once"
            );
            describe_counter!(
                "ractor_otp_jobs_fencing_rejections_total",
                Unit::Count,
                "Job results refused because their lease was lost"
            );
            describe_counter!(
                "ractor_otp_schedule_slots_total",
                Unit::Count,
                "Schedule slots fired or missed"
            );
            describe_counter!(
                "ractor_otp_jobs_pruned_total",
                Unit::Count,
                "Finished jobs deleted by retention"
            );
        });
    }

    /// A supervisor at `path` emitted `event`; `running` children are live now.
    pub(crate) fn supervisor_event(
        path: &str,
        dynamic: bool,
        running: usize,
        event: &SupervisorEvent,
    ) {
        describe();
        let supervisor = path.to_owned();
        match event {
            SupervisorEvent::RestartScheduled { id, .. } => {
                let child = if dynamic {
                    "*".to_owned()
                } else {
                    id.to_string()
                };
                metrics::counter!(
                    "ractor_otp_supervisor_restarts_total",
                    "supervisor" => supervisor.clone(),
                    "child" => child
                )
                .increment(1);
            }
            SupervisorEvent::GaveUp { .. } => {
                metrics::counter!(
                    "ractor_otp_supervisor_give_ups_total",
                    "supervisor" => supervisor.clone()
                )
                .increment(1);
            }
            _ => {}
        }
        metrics::gauge!(
            "ractor_otp_supervisor_children_running",
            "supervisor" => supervisor
        )
        .set(running as f64);
    }

    /// A pool's handles, made once when it starts.
    pub(crate) struct PoolMetrics {
        completed: metrics::Counter,
        failed: metrics::Counter,
        crashed: metrics::Counter,
        timed_out: metrics::Counter,
        rejected: metrics::Counter,
        dropped: metrics::Counter,
        duration: metrics::Histogram,
        wait: metrics::Histogram,
        queue_depth: metrics::Gauge,
        in_flight: metrics::Gauge,
    }

    impl PoolMetrics {
        pub(crate) fn new(pool: &str) -> Self {
            describe();
            let outcome = |outcome: &'static str| {
                metrics::counter!(
                    "ractor_otp_pool_tasks_total",
                    "pool" => pool.to_owned(),
                    "outcome" => outcome
                )
            };
            PoolMetrics {
                completed: outcome("completed"),
                failed: outcome("failed"),
                crashed: outcome("crashed"),
                timed_out: outcome("timed_out"),
                rejected: outcome("rejected"),
                dropped: outcome("dropped"),
                duration: metrics::histogram!(
                    "ractor_otp_pool_task_duration_seconds",
                    "pool" => pool.to_owned()
                ),
                wait: metrics::histogram!(
                    "ractor_otp_pool_queue_wait_seconds",
                    "pool" => pool.to_owned()
                ),
                queue_depth: metrics::gauge!(
                    "ractor_otp_pool_queue_depth",
                    "pool" => pool.to_owned()
                ),
                in_flight: metrics::gauge!(
                    "ractor_otp_pool_in_flight",
                    "pool" => pool.to_owned()
                ),
            }
        }

        pub(crate) fn finished(&self, ok: bool, took: Duration) {
            if ok {
                self.completed.increment(1);
            } else {
                self.failed.increment(1);
            }
            self.duration.record(took.as_secs_f64());
        }

        pub(crate) fn waited(&self, wait: Duration) {
            self.wait.record(wait.as_secs_f64());
        }

        pub(crate) fn crashed(&self) {
            self.crashed.increment(1);
        }

        pub(crate) fn timed_out(&self) {
            self.timed_out.increment(1);
        }

        pub(crate) fn rejected(&self) {
            self.rejected.increment(1);
        }

        pub(crate) fn dropped(&self) {
            self.dropped.increment(1);
        }

        pub(crate) fn load(&self, queued: usize, in_flight: usize) {
            self.queue_depth.set(queued as f64);
            self.in_flight.set(in_flight as f64);
        }
    }

    /// A job's run ended.
    #[cfg(feature = "jobs")]
    pub(crate) fn job_finished(queue: &str, kind: &str, outcome: &'static str, took: Duration) {
        describe();
        let (queue, kind) = (queue.to_owned(), kind.to_owned());
        metrics::counter!(
            "ractor_otp_jobs_finished_total",
            "queue" => queue.clone(),
            "kind" => kind.clone(),
            "outcome" => outcome
        )
        .increment(1);
        metrics::histogram!(
            "ractor_otp_job_duration_seconds",
            "queue" => queue,
            "kind" => kind
        )
        .record(took.as_secs_f64());
    }

    /// A job's run started `late` after it was due.
    #[cfg(feature = "jobs")]
    pub(crate) fn job_started(queue: &str, kind: &str, late: Duration) {
        describe();
        metrics::histogram!(
            "ractor_otp_job_queue_latency_seconds",
            "queue" => queue.to_owned(),
            "kind" => kind.to_owned()
        )
        .record(late.as_secs_f64());
    }

    /// The store's jobs by state, and how long the oldest due one has waited.
    #[cfg(feature = "jobs")]
    pub(crate) fn job_counts(counts: &[(crate::jobs::JobState, u64)], oldest_due: Duration) {
        describe();
        for (state, n) in counts {
            metrics::gauge!("ractor_otp_jobs", "state" => state.as_str()).set(*n as f64);
        }
        metrics::gauge!("ractor_otp_jobs_oldest_due_age_seconds").set(oldest_due.as_secs_f64());
    }

    #[cfg(feature = "jobs")]
    pub(crate) fn jobs_rescued(n: usize) {
        describe();
        metrics::counter!("ractor_otp_jobs_rescued_total").increment(n as u64);
    }

    #[cfg(feature = "jobs")]
    pub(crate) fn fencing_rejection() {
        describe();
        metrics::counter!("ractor_otp_jobs_fencing_rejections_total").increment(1);
    }

    #[cfg(feature = "jobs")]
    pub(crate) fn schedule_slots(schedule: &str, fired: u64, missed: u64) {
        describe();
        for (result, n) in [("fired", fired), ("missed", missed)] {
            if n > 0 {
                metrics::counter!(
                    "ractor_otp_schedule_slots_total",
                    "schedule" => schedule.to_owned(),
                    "result" => result
                )
                .increment(n);
            }
        }
    }

    #[cfg(feature = "jobs")]
    pub(crate) fn jobs_pruned(n: u64) {
        describe();
        if n > 0 {
            metrics::counter!("ractor_otp_jobs_pruned_total").increment(n);
        }
    }
}

#[cfg(feature = "metrics")]
pub(crate) use on::*;

/// Without the feature: the same calls, doing nothing.
#[cfg(not(feature = "metrics"))]
#[allow(dead_code)]
mod off {
    use std::time::Duration;

    use crate::supervisor::SupervisorEvent;

    pub(crate) fn supervisor_event(_: &str, _: bool, _: usize, _: &SupervisorEvent) {}

    pub(crate) struct PoolMetrics;

    impl PoolMetrics {
        pub(crate) fn new(_: &str) -> Self {
            PoolMetrics
        }
        pub(crate) fn finished(&self, _: bool, _: Duration) {}
        pub(crate) fn waited(&self, _: Duration) {}
        pub(crate) fn crashed(&self) {}
        pub(crate) fn timed_out(&self) {}
        pub(crate) fn rejected(&self) {}
        pub(crate) fn dropped(&self) {}
        pub(crate) fn load(&self, _: usize, _: usize) {}
    }

    #[cfg(feature = "jobs")]
    pub(crate) fn job_finished(_: &str, _: &str, _: &'static str, _: Duration) {}
    #[cfg(feature = "jobs")]
    pub(crate) fn job_started(_: &str, _: &str, _: Duration) {}
    #[cfg(feature = "jobs")]
    pub(crate) fn job_counts(_: &[(crate::jobs::JobState, u64)], _: Duration) {}
    pub(crate) fn jobs_rescued(_: usize) {}
    pub(crate) fn fencing_rejection() {}
    pub(crate) fn schedule_slots(_: &str, _: u64, _: u64) {}
    pub(crate) fn jobs_pruned(_: u64) {}
}

#[cfg(not(feature = "metrics"))]
pub(crate) use off::*;
