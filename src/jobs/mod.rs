//! Durable jobs: an on-disk queue whose jobs survive crashes and reboots, run by supervised
//! runners.
//!
//! A job is a serializable command ([`Job`]) stored under a stable name. [`Jobs`] enqueues,
//! inspects and steers jobs in a [`Store`]; a [`Runner`] claims due jobs under a lease and runs
//! them with the handlers registered for their names.
//!
//! * **Stores**: [`SqliteStore`] (feature `sqlite`, on by default; embedded: WAL,
//!   `synchronous=FULL`, group commit; [`SqliteStore::in_memory`] for tests) and `PostgresStore`
//!   (feature `postgres`: one queue shared by several processes or machines, `FOR UPDATE SKIP
//!   LOCKED` claims, `LISTEN/NOTIFY` wake-ups). Every [`Store`] call is one transaction; both
//!   stores pass the same test suite.
//! * **Guarantees**: an enqueue returns once durable; execution is at least once. A claimed job
//!   carries a lease (owner, expiry renewed by heartbeat) and a fencing token; a result whose
//!   token is stale is refused, an expired lease makes the job claimable again. Completion and
//!   the follow-up jobs a handler enqueued commit together.
//! * **Prompt rescue**: each runner holds a sign of life the operating system or the database
//!   lets go of when its process dies (a locked file beside a SQLite store; a session advisory
//!   lock on PostgreSQL). Runners look every second (and at start) for dead runners and rerun
//!   their jobs at once, instead of after the lease; the lease stays the fallback.
//! * **Options** ([`JobOptions`]): queue, priority, `not_before`, attempts and retry backoff,
//!   timeout, an exclusive [`Resource`] with a capacity, an idempotency key (kept apart from
//!   the job, for ever or [`unique_for`](JobOptions::unique_for) a period).
//! * **Recurring schedules** ([`Schedule`], [`RunnerBuilder::schedule`]): cron in a time zone
//!   or an interval; exactly one job per slot across every process and machine sharing the
//!   store (a compare-and-set on the schedule's last slot commits with the job's insert; no
//!   leader); [`Missed`] slots after downtime, a starting deadline, [`Overlap`], jitter.
//! * **Retention** ([`Retention`]): runners prune finished jobs in short batches (completed and
//!   cancelled after 24 h, discarded after 7 days by default); uniqueness, fan-in and
//!   schedules keep their guarantees in rows of their own, so pruning never weakens them.
//!   [`Jobs::delete`] removes one finished job at once.
//! * **Fan-out / fan-in** ([`Group`]): children and a collector that runs once, after all of
//!   them, with every outcome ([`GroupPolicy`]).
//! * **States** ([`JobState`]): scheduled → available → executing → completed | retryable → … |
//!   discarded (dead letter, with the attempt history) | cancelled; plus waiting (a collector)
//!   and parked (waiting for [`Jobs::complete`] or [`Jobs::release`]).
//!
//! * **Errors**: [`JobsError`] from this API, [`StoreError`] from a store; a handler fails a
//!   run with a [`JobError`] (retried by the job's backoff, or discarded when attempts run out).
//! * **Time** comes from a [`Clock`] ([`SystemClock`]; [`TokioClock`] for tests under a paused
//!   clock).

mod breaker;
mod clock;
mod error;
mod handler;
mod job;
#[cfg(feature = "sqlite")]
mod owner_files;
#[cfg(feature = "postgres")]
mod postgres;
mod record;
mod retention;
mod runner;
mod schedule;
#[cfg(feature = "sqlite")]
mod sqlite;
mod store;
// Used by the stores: unused in a build with `jobs` and no store.
#[cfg_attr(not(any(feature = "sqlite", feature = "postgres")), allow(dead_code))]
mod transition;

use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde::Serialize;

pub use clock::{Clock, SystemClock, TokioClock};
pub use error::{JobsError, StoreError};
pub use handler::{ChildOutput, JobContext, JobError, JobResult};
pub use job::{Job, JobId, JobOptions, NewJob, Resource, RetryBackoff, Timestamp};
#[cfg(feature = "postgres")]
#[cfg_attr(docsrs, doc(cfg(feature = "postgres")))]
pub use postgres::{PostgresOptions, PostgresStore, CONFLICT_RETRIES};
pub use ractor_otp_macros::Job;
pub use record::{AttemptError, ChildFailure, ChildOutcome, JobRecord, JobState, ListFilter};
pub use retention::{Prune, Pruned, Retention};
pub use runner::{Runner, RunnerBuilder, RunnerStats, ShutdownReport};
pub use schedule::{Missed, Overlap, Schedule, ScheduleRecord, Slot, SKIP_THRESHOLD};
#[cfg(feature = "sqlite")]
#[cfg_attr(docsrs, doc(cfg(feature = "sqlite")))]
pub use sqlite::{Durability, JournalStats, SqliteOptions, SqliteStore};
pub use store::{
    ClaimRequest, ClaimedJob, Enqueued, Finish, Fired, Firing, GroupIds, GroupPolicy, Lease,
    Liveness, NewGroup, ScheduleDecl, ScheduleMark, Store, Turn, TurnOutcome,
};

/// The file [`Jobs::open_default`] uses, in the working directory.
#[cfg(feature = "sqlite")]
pub const DEFAULT_PATH: &str = "ractor-otp-jobs.sqlite3";

/// A handle to a job queue: enqueue, inspect, cancel, retry, complete. Cheap to clone.
///
/// ```
/// use ractor_otp::jobs::{Job, Jobs, JobState, SqliteStore};
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Serialize, Deserialize)]
/// struct Resize { image: String, width: u32 }
/// impl Job for Resize {
///     const NAME: &'static str = "resize";
///     type Output = ();
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let jobs = Jobs::new(SqliteStore::in_memory()?);
/// let queued = jobs.enqueue(Resize { image: "cat.png".into(), width: 200 }).await?;
/// assert_eq!(jobs.get(queued.id).await?.map(|j| j.state), Some(JobState::Available));
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct Jobs {
    inner: Arc<JobsInner>,
}

struct JobsInner {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    /// Bumped at every enqueue through this handle: local runners wake without polling.
    wake: tokio::sync::watch::Sender<u64>,
    /// Bumped whenever a local runner records a run's end: `wait_for` looks again.
    finished: tokio::sync::watch::Sender<u64>,
    /// The job types the running runners of this handle take, each with how many take it.
    handled: std::sync::Mutex<std::collections::HashMap<String, usize>>,
}

impl std::fmt::Debug for Jobs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Jobs").finish_non_exhaustive()
    }
}

impl Jobs {
    /// A queue on `store`, on the system clock.
    pub fn new(store: impl Store) -> Self {
        Self::with_clock(store, SystemClock)
    }

    /// A queue on `store`, reading time from `clock` (e.g. [`TokioClock`] in tests).
    pub fn with_clock(store: impl Store, clock: impl Clock) -> Self {
        Jobs {
            inner: Arc::new(JobsInner {
                store: Arc::new(store),
                clock: Arc::new(clock),
                wake: tokio::sync::watch::Sender::new(0),
                finished: tokio::sync::watch::Sender::new(0),
                handled: std::sync::Mutex::default(),
            }),
        }
    }

    /// The zero-set-up queue: a SQLite file named [`DEFAULT_PATH`] in the working directory.
    #[cfg(feature = "sqlite")]
    #[cfg_attr(docsrs, doc(cfg(feature = "sqlite")))]
    pub async fn open_default() -> Result<Self, JobsError> {
        Ok(Jobs::new(SqliteStore::open(DEFAULT_PATH).await?))
    }

    /// The store underneath.
    pub fn store(&self) -> &dyn Store {
        &*self.inner.store
    }

    /// The queue's current time.
    pub fn now(&self) -> Timestamp {
        self.inner.clock.now()
    }

    pub(crate) fn wake_receiver(&self) -> tokio::sync::watch::Receiver<u64> {
        self.inner.wake.subscribe()
    }

    pub(crate) fn wake_runners(&self) {
        self.inner.wake.send_modify(|n| *n = n.wrapping_add(1));
    }

    pub(crate) fn job_finished(&self) {
        self.inner.finished.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// A runner of this handle started (`+1`) or stopped (`-1`) taking these job types.
    pub(crate) fn count_handlers(&self, names: &[String], started: bool) {
        let mut handled = match self.inner.handled.lock() {
            Ok(handled) => handled,
            Err(poisoned) => poisoned.into_inner(),
        };
        for name in names {
            if started {
                *handled.entry(name.clone()).or_default() += 1;
            } else if let Some(n) = handled.get_mut(name) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    handled.remove(name);
                }
            }
        }
    }

    /// Whether a running runner of this handle takes job type `name`.
    fn handles(&self, name: &str) -> bool {
        match self.inner.handled.lock() {
            Ok(handled) => handled.contains_key(name),
            Err(poisoned) => poisoned.into_inner().contains_key(name),
        }
    }

    /// Waits until job `id` has finished and returns its output: completed → the output,
    /// discarded or cancelled → [`JobsError::JobFailed`], still running after `timeout` →
    /// [`JobsError::WaitTimedOut`]. Wakes when a runner of this handle finishes a run, and
    /// looks at least every 100 ms for runners elsewhere.
    pub async fn wait_for<J: Job>(
        &self,
        id: JobId,
        timeout: std::time::Duration,
    ) -> Result<J::Output, JobsError> {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut finished = self.inner.finished.subscribe();
        loop {
            finished.borrow_and_update();
            let record = self.get(id).await?.ok_or(StoreError::NotFound(id))?;
            match record.state {
                JobState::Completed => {
                    return decode_output(id, record.result.as_deref().unwrap_or("null"));
                }
                JobState::Discarded | JobState::Cancelled => {
                    return Err(JobsError::JobFailed {
                        id,
                        state: record.state,
                        error: record.errors.last().map(|e| e.error.clone()),
                    });
                }
                _ => {}
            }
            let next =
                (tokio::time::Instant::now() + std::time::Duration::from_millis(100)).min(deadline);
            tokio::select! {
                _ = finished.changed() => {}
                _ = tokio::time::sleep_until(next) => {}
            }
            if tokio::time::Instant::now() >= deadline {
                let waiting = matches!(
                    record.state,
                    JobState::Scheduled | JobState::Available | JobState::Retryable
                );
                let no_handler =
                    (waiting && !self.handles(&record.name)).then(|| record.name.clone());
                return Err(JobsError::WaitTimedOut {
                    id,
                    state: record.state,
                    no_handler,
                });
            }
        }
    }

    /// Enqueues `job` with the default [`JobOptions`]; returns once it is durable.
    pub async fn enqueue<J: Job>(&self, job: J) -> Result<Enqueued, JobsError> {
        self.enqueue_with(job, JobOptions::default()).await
    }

    /// Enqueues `job` with `options`; returns once it is durable. With an idempotency key that
    /// is already stored, nothing is added and the existing job's id comes back as a
    /// duplicate.
    pub async fn enqueue_with<J: Job>(
        &self,
        job: J,
        options: JobOptions,
    ) -> Result<Enqueued, JobsError> {
        let new = NewJob::new(&job, options)?;
        let mut done = self.inner.store.enqueue(vec![new], self.now()).await?;
        self.wake_runners();
        done.pop()
            .ok_or_else(|| StoreError::Database("enqueue returned no id".into()).into())
    }

    /// Enqueues a fan-out: its children and its collector, in one transaction.
    pub async fn enqueue_group(&self, group: Group) -> Result<GroupIds, JobsError> {
        let group = group.build()?;
        let ids = self.inner.store.enqueue_group(group, self.now()).await?;
        self.wake_runners();
        Ok(ids)
    }

    /// One job's record, `None` if there is no such job.
    pub async fn get(&self, id: JobId) -> Result<Option<JobRecord>, JobsError> {
        Ok(self.inner.store.get(id, self.now()).await?)
    }

    /// A completed job's output, read as `J::Output`; `None` while it has none.
    pub async fn output<J: Job>(&self, id: JobId) -> Result<Option<J::Output>, JobsError> {
        let Some(record) = self.get(id).await? else {
            return Err(StoreError::NotFound(id).into());
        };
        match (record.state, record.result) {
            (JobState::Completed, Some(json)) => {
                serde_json::from_str(&json)
                    .map(Some)
                    .map_err(|e| JobsError::Decode {
                        id,
                        reason: e.to_string(),
                    })
            }
            _ => Ok(None),
        }
    }

    /// Jobs matching `filter`, oldest first.
    pub async fn list(&self, filter: ListFilter) -> Result<Vec<JobRecord>, JobsError> {
        Ok(self.inner.store.list(filter, self.now()).await?)
    }

    /// How many jobs are in each state.
    pub async fn counts(&self) -> Result<Vec<(JobState, u64)>, JobsError> {
        Ok(self.inner.store.counts(self.now()).await?)
    }

    /// How many jobs are in `state`.
    pub async fn count(&self, state: JobState) -> Result<u64, JobsError> {
        let counts = self.counts().await?;
        Ok(counts
            .into_iter()
            .find(|(s, _)| *s == state)
            .map_or(0, |(_, n)| n))
    }

    /// Cancels a job that has not finished (a running one's result will be refused; a
    /// collector's unfinished children are cancelled too).
    pub async fn cancel(&self, id: JobId) -> Result<(), JobsError> {
        Ok(self.inner.store.cancel(id, self.now()).await?)
    }

    /// Runs a retryable, discarded or cancelled job again now.
    pub async fn retry(&self, id: JobId) -> Result<(), JobsError> {
        self.inner.store.retry(id, self.now()).await?;
        self.wake_runners();
        Ok(())
    }

    /// Deletes a finished job now, without waiting for retention; its idempotency key stays
    /// until it expires. A job not finished, a child whose collector has not run yet, and a
    /// collector with unfinished children are refused ([`StoreError::InvalidState`]).
    pub async fn delete(&self, id: JobId) -> Result<(), JobsError> {
        Ok(self.inner.store.delete(id, self.now()).await?)
    }

    /// Every schedule a runner ever declared in this store, by name: its definition, last
    /// slot, last job and how many slots fired and were missed.
    pub async fn schedules(&self) -> Result<Vec<ScheduleRecord>, JobsError> {
        Ok(self.inner.store.schedules().await?)
    }

    /// Completes a parked job with `output` (what a person or an external event decided).
    pub async fn complete<T: Serialize>(&self, id: JobId, output: &T) -> Result<(), JobsError> {
        let json = serde_json::to_string(output).map_err(|e| JobsError::Encode {
            name: "parked job output",
            reason: e.to_string(),
        })?;
        self.inner
            .store
            .complete_parked(id, json, self.now())
            .await?;
        self.wake_runners();
        Ok(())
    }

    /// Makes a parked job available to run again.
    pub async fn release(&self, id: JobId) -> Result<(), JobsError> {
        self.inner.store.release(id, self.now()).await?;
        self.wake_runners();
        Ok(())
    }
}

/// A fan-out under construction: children, a collector, a failure policy. Errors (a job that
/// does not serialize, bad options) are reported when it is enqueued.
///
/// ```
/// # use ractor_otp::jobs::{Group, Job, JobOptions};
/// # use serde::{Deserialize, Serialize};
/// # #[derive(Serialize, Deserialize)] struct Page(u32);
/// # impl Job for Page { const NAME: &'static str = "page"; type Output = u64; }
/// # #[derive(Serialize, Deserialize)] struct Total;
/// # impl Job for Total { const NAME: &'static str = "total"; type Output = u64; }
/// let group = (1..=10)
///     .fold(Group::new(), |g, n| g.child(Page(n)))
///     .collector(Total)
///     .fail_fast();
/// ```
#[derive(Debug, Default)]
pub struct Group {
    children: Vec<NewJob>,
    collector: Option<NewJob>,
    policy: GroupPolicy,
    error: Option<JobsError>,
}

impl Group {
    /// An empty group with [`GroupPolicy::Partial`].
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a child with the default options.
    pub fn child<J: Job>(self, job: J) -> Self {
        self.child_with(job, JobOptions::default())
    }

    /// Adds a child with `options` (which must not carry an idempotency key: put it on the
    /// collector).
    pub fn child_with<J: Job>(mut self, job: J, options: JobOptions) -> Self {
        match NewJob::new(&job, options) {
            Ok(new) => self.children.push(new),
            Err(e) => {
                self.error.get_or_insert(e);
            }
        }
        self
    }

    /// Sets the collector with the default options.
    pub fn collector<J: Job>(self, job: J) -> Self {
        self.collector_with(job, JobOptions::default())
    }

    /// Sets the collector with `options`.
    pub fn collector_with<J: Job>(mut self, job: J, options: JobOptions) -> Self {
        match NewJob::new(&job, options) {
            Ok(new) => self.collector = Some(new),
            Err(e) => {
                self.error.get_or_insert(e);
            }
        }
        self
    }

    /// At the first child that fails for good, cancel the others and run the collector.
    pub fn fail_fast(mut self) -> Self {
        self.policy = GroupPolicy::FailFast;
        self
    }

    pub(crate) fn build(self) -> Result<NewGroup, JobsError> {
        if let Some(e) = self.error {
            return Err(e);
        }
        let collector = self.collector.ok_or_else(|| {
            JobsError::InvalidOptions("a group needs a collector: call `.collector(job)`".into())
        })?;
        if self
            .children
            .iter()
            .any(|c| c.options.idempotency_key.is_some())
        {
            return Err(JobsError::InvalidOptions(
                "a group's children cannot carry idempotency keys; put the key on the collector"
                    .into(),
            ));
        }
        Ok(NewGroup {
            children: self.children,
            collector,
            policy: self.policy,
        })
    }
}

/// Reads a collector's child output as `T`.
pub(crate) fn decode_output<T: DeserializeOwned>(id: JobId, json: &str) -> Result<T, JobsError> {
    serde_json::from_str(json).map_err(|e| JobsError::Decode {
        id,
        reason: e.to_string(),
    })
}

/// What code generated by `#[derive(Job)]` names; not a public API.
#[doc(hidden)]
pub mod __private {
    pub use serde_json;
}
