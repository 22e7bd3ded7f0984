//! What runs a job: a handler registered for a job type (an async function or a worker pool),
//! the [`JobContext`] it gets, and the [`JobError`] it answers with when it does not succeed.

use std::fmt;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::BoxFuture;
use futures::FutureExt;
use serde::de::DeserializeOwned;

use crate::jobs::{
    decode_output, ChildFailure, ChildOutcome, ClaimedJob, Group, Job, JobId, JobOptions,
    JobsError, NewGroup, NewJob,
};
use crate::pool::TaskError;
use crate::worker::{Worker, WorkerHandle};

/// Why a run did not produce an output, and what to do about it.
///
/// `?` turns any `std::error::Error` into a retryable failure. Snoozing and parking are not
/// failures but take the same path, so a handler says them with `return Err(..)`.
///
/// ```
/// use std::time::Duration;
/// use ractor_otp::jobs::JobError;
///
/// let e = JobError::retry("the mail server said 451");
/// assert_eq!(e.to_string(), "the mail server said 451");
/// let _later = JobError::snooze(Duration::from_secs(60));
/// let _dead = JobError::discard("customer does not exist");
/// let _wait = JobError::park();
/// ```
pub struct JobError {
    kind: JobErrorKind,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum JobErrorKind {
    /// Failed: retried after backoff while attempts remain, then discarded.
    Retry(String),
    /// Failed for good: discarded now.
    Discard(String),
    /// Not now: runs again after the delay, this attempt not counted.
    Snooze(Duration),
    /// Waits for `Jobs::complete` or `Jobs::release`.
    Park,
}

impl JobError {
    /// A failure worth retrying (after the job's backoff, while attempts remain).
    pub fn retry(message: impl fmt::Display) -> Self {
        JobError {
            kind: JobErrorKind::Retry(message.to_string()),
        }
    }

    /// A failure no retry will fix: the job goes to the dead letter state now.
    pub fn discard(message: impl fmt::Display) -> Self {
        JobError {
            kind: JobErrorKind::Discard(message.to_string()),
        }
    }

    /// Not a failure: run the job again after `delay`; this attempt is not counted.
    pub fn snooze(delay: Duration) -> Self {
        JobError {
            kind: JobErrorKind::Snooze(delay),
        }
    }

    /// Not a failure: the job waits, parked, for a person or an external event to
    /// [`complete`](crate::jobs::Jobs::complete) or [`release`](crate::jobs::Jobs::release) it.
    pub fn park() -> Self {
        JobError {
            kind: JobErrorKind::Park,
        }
    }

    pub(crate) fn into_kind(self) -> JobErrorKind {
        self.kind
    }
}

impl<E: std::error::Error + Send + Sync + 'static> From<E> for JobError {
    /// A retryable failure whose message is the error and its sources.
    fn from(e: E) -> Self {
        let mut message = e.to_string();
        let mut source = e.source();
        while let Some(s) = source {
            message.push_str(": ");
            message.push_str(&s.to_string());
            source = s.source();
        }
        JobError::retry(message)
    }
}

impl fmt::Display for JobError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            JobErrorKind::Retry(m) | JobErrorKind::Discard(m) => f.write_str(m),
            JobErrorKind::Snooze(d) => write!(f, "snoozed for {d:?}"),
            JobErrorKind::Park => f.write_str("parked"),
        }
    }
}

impl fmt::Debug for JobError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.kind, f)
    }
}

/// What a job's handler answers.
pub type JobResult<T> = Result<T, JobError>;

/// What a handler knows about its run, and where it puts the follow-up jobs that must commit
/// with its completion. Cheap to clone.
#[derive(Clone)]
pub struct JobContext {
    id: JobId,
    attempt: u32,
    max_attempts: u32,
    children: Arc<[ChildOutcome]>,
    pending: Arc<Mutex<FollowUps>>,
}

/// Follow-ups collected during a run: enqueued only with a successful completion.
#[derive(Default)]
pub(crate) struct FollowUps {
    pub(crate) jobs: Vec<NewJob>,
    pub(crate) groups: Vec<NewGroup>,
}

impl fmt::Debug for JobContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JobContext")
            .field("id", &self.id)
            .field("attempt", &self.attempt)
            .field("max_attempts", &self.max_attempts)
            .field("children", &self.children.len())
            .finish()
    }
}

impl JobContext {
    pub(crate) fn new(job: &ClaimedJob) -> Self {
        JobContext {
            id: job.id,
            attempt: job.attempt,
            max_attempts: job.max_attempts,
            children: job.children.clone().into(),
            pending: Arc::default(),
        }
    }

    pub(crate) fn take_follow_ups(&self) -> FollowUps {
        match self.pending.lock() {
            Ok(mut pending) => std::mem::take(&mut *pending),
            Err(poisoned) => std::mem::take(&mut *poisoned.into_inner()),
        }
    }

    /// This job's id.
    pub fn id(&self) -> JobId {
        self.id
    }

    /// This attempt (1-based).
    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    /// Attempts allowed.
    pub fn max_attempts(&self) -> u32 {
        self.max_attempts
    }

    /// Enqueues `job` when, and only when, this run completes successfully: in the same
    /// transaction as the completion.
    pub fn enqueue<J: Job>(&self, job: J) -> Result<(), JobsError> {
        self.enqueue_with(job, JobOptions::default())
    }

    /// [`enqueue`](Self::enqueue) with options.
    pub fn enqueue_with<J: Job>(&self, job: J, options: JobOptions) -> Result<(), JobsError> {
        let new = NewJob::new(&job, options)?;
        self.with_pending(|p| p.jobs.push(new));
        Ok(())
    }

    /// Enqueues a fan-out with this run's completion.
    pub fn enqueue_group(&self, group: Group) -> Result<(), JobsError> {
        let group = group.build()?;
        self.with_pending(|p| p.groups.push(group));
        Ok(())
    }

    fn with_pending(&self, f: impl FnOnce(&mut FollowUps)) {
        match self.pending.lock() {
            Ok(mut pending) => f(&mut pending),
            Err(poisoned) => f(&mut poisoned.into_inner()),
        }
    }

    /// For a fan-in collector: how each child ended, in the order they were enqueued.
    pub fn children(&self) -> &[ChildOutcome] {
        &self.children
    }

    /// For a fan-in collector: each child's output read as `T`, or why it has none. A child
    /// output that does not read as `T` is an error.
    pub fn child_outputs<T: DeserializeOwned>(&self) -> Result<Vec<ChildOutput<T>>, JobsError> {
        self.children
            .iter()
            .map(|child| match &child.result {
                Ok(json) => decode_output(child.id, json).map(|t| (child.id, Ok(t))),
                Err(failure) => Ok((child.id, Err(failure.clone()))),
            })
            .collect()
    }
}

/// A fan-in child's id and its output read as `T`, or why it has none.
pub type ChildOutput<T> = (JobId, Result<T, ChildFailure>);

/// How a run ended, before it is written to the store.
#[derive(Debug)]
pub(crate) enum RunOutcome {
    /// The output, as JSON.
    Completed(String),
    Failed(JobErrorKind),
    /// The attempt's timeout passed (the handler was cancelled).
    TimedOut(Duration),
}

/// A handler with its job type erased: decodes the payload, runs, encodes the output.
pub(crate) trait ErasedHandler: Send + Sync + 'static {
    fn run(&self, job: &ClaimedJob, ctx: JobContext) -> BoxFuture<'static, RunOutcome>;
}

fn decode<J: Job>(job: &ClaimedJob) -> Result<J, RunOutcome> {
    let value = serde_json::from_str(&job.payload).and_then(|v| J::decode(job.version, v));
    value.map_err(|e| {
        RunOutcome::Failed(JobErrorKind::Discard(format!(
            "the payload of `{}` (version {}, this release reads version {}) could not be decoded: {e}",
            J::NAME,
            job.version,
            J::VERSION
        )))
    })
}

fn encode<J: Job>(output: &J::Output) -> RunOutcome {
    match serde_json::to_string(output) {
        Ok(json) => RunOutcome::Completed(json),
        Err(e) => RunOutcome::Failed(JobErrorKind::Retry(format!(
            "the output of `{}` could not be serialized: {e}",
            J::NAME
        ))),
    }
}

/// An async function as a handler.
pub(crate) struct FnHandler<J, F> {
    f: F,
    _job: std::marker::PhantomData<fn(J)>,
}

impl<J, F> FnHandler<J, F> {
    pub(crate) fn new(f: F) -> Self {
        FnHandler {
            f,
            _job: std::marker::PhantomData,
        }
    }
}

impl<J, F, Fut> ErasedHandler for FnHandler<J, F>
where
    J: Job,
    F: Fn(J, JobContext) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = JobResult<J::Output>> + Send + 'static,
{
    fn run(&self, job: &ClaimedJob, ctx: JobContext) -> BoxFuture<'static, RunOutcome> {
        match decode::<J>(job) {
            Ok(value) => {
                let fut = (self.f)(value, ctx);
                async move {
                    match fut.await {
                        Ok(output) => encode::<J>(&output),
                        Err(e) => RunOutcome::Failed(e.into_kind()),
                    }
                }
                .boxed()
            }
            Err(outcome) => futures::future::ready(outcome).boxed(),
        }
    }
}

/// A worker pool (or a single worker actor) as a handler: the job is the worker's task.
pub(crate) struct PoolHandler<J, H> {
    handle: H,
    _job: std::marker::PhantomData<fn(J)>,
}

impl<J, H> PoolHandler<J, H> {
    pub(crate) fn new(handle: H) -> Self {
        PoolHandler {
            handle,
            _job: std::marker::PhantomData,
        }
    }
}

/// How long a job whose pool refused it (full, stopped, no worker) waits before trying again;
/// not counted as an attempt.
const POOL_BUSY_SNOOZE: Duration = Duration::from_secs(1);

impl<J, H> ErasedHandler for PoolHandler<J, H>
where
    J: Job,
    H: WorkerHandle + Clone + Send + Sync + 'static,
    H::Worker: Worker<Task = J, Output = J::Output>,
{
    fn run(&self, job: &ClaimedJob, _ctx: JobContext) -> BoxFuture<'static, RunOutcome> {
        let value = match decode::<J>(job) {
            Ok(value) => value,
            Err(outcome) => return futures::future::ready(outcome).boxed(),
        };
        let handle = self.handle.clone();
        async move {
            match handle.submit_task(value).await {
                Ok(output) => encode::<J>(&output),
                Err(TaskError::Failed(e)) => RunOutcome::Failed(JobErrorKind::Retry(e.to_string())),
                Err(e @ (TaskError::Crashed | TaskError::TimedOut)) => {
                    RunOutcome::Failed(JobErrorKind::Retry(e.to_string()))
                }
                Err(
                    TaskError::QueueFull
                    | TaskError::Dropped
                    | TaskError::Stopped
                    | TaskError::NoWorker,
                ) => RunOutcome::Failed(JobErrorKind::Snooze(POOL_BUSY_SNOOZE)),
            }
        }
        .boxed()
    }
}
