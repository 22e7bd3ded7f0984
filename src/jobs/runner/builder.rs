//! Configuring a runner: handlers, queues, concurrency, leases, timeouts, breakers; checked
//! before it starts.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use ractor::{Actor, ActorCell};

use super::actor::{RunnerActor, RunnerArgs};
use super::schedule::Scheduled;
use super::{Counters, Runner};
use crate::jobs::handler::{ErasedHandler, FnHandler, PoolHandler};
use crate::jobs::{Job, JobContext, JobResult, Jobs, JobsError, NewJob, Retention, Schedule, Slot};
use crate::supervisor::{ChildContext, ChildId, ChildKind, ChildSpec, ChildStart};
use crate::worker::{Worker, WorkerHandle};

/// Configures and starts a [`Runner`]; from [`Jobs::runner`].
///
/// ```
/// use std::time::Duration;
/// use ractor_otp::jobs::{Job, JobContext, JobResult, Jobs, SqliteStore};
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Serialize, Deserialize)]
/// struct Greet { name: String }
/// impl Job for Greet {
///     const NAME: &'static str = "greet";
///     type Output = String;
/// }
///
/// async fn greet(job: Greet, _ctx: JobContext) -> JobResult<String> {
///     Ok(format!("hello, {}", job.name))
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let jobs = Jobs::new(SqliteStore::in_memory()?);
/// let runner = jobs.runner().handler(greet).concurrency(4).spawn().await?;
/// let id = jobs.enqueue(Greet { name: "Ada".into() }).await?.id;
/// let output = jobs.wait_for::<Greet>(id, Duration::from_secs(5)).await?;
/// assert_eq!(output, "hello, Ada");
/// runner.shutdown(Duration::from_secs(5)).await?;
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct RunnerBuilder {
    pub(super) jobs: Jobs,
    pub(super) handlers: HashMap<String, Arc<dyn ErasedHandler>>,
    pub(super) error: Option<JobsError>,
    pub(super) queues: Vec<String>,
    pub(super) concurrency: u32,
    pub(super) lease: Duration,
    pub(super) heartbeat: Option<Duration>,
    pub(super) poll_interval: Duration,
    pub(super) timeout: Duration,
    pub(super) hang_grace: Duration,
    pub(super) breaker: Option<(u32, Duration)>,
    pub(super) schedules: Vec<Scheduled>,
    pub(super) retention: Retention,
}

impl std::fmt::Debug for RunnerBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut names: Vec<&String> = self.handlers.keys().collect();
        names.sort();
        f.debug_struct("RunnerBuilder")
            .field("handlers", &names)
            .field("queues", &self.queues)
            .field("concurrency", &self.concurrency)
            .field("lease", &self.lease)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl RunnerBuilder {
    pub(crate) fn new(jobs: Jobs) -> Self {
        RunnerBuilder {
            jobs,
            handlers: HashMap::new(),
            error: None,
            queues: vec!["default".to_owned()],
            concurrency: 10,
            lease: Duration::from_secs(30),
            heartbeat: None,
            poll_interval: Duration::from_secs(1),
            timeout: Duration::from_secs(300),
            hang_grace: Duration::from_secs(5),
            breaker: None,
            schedules: Vec::new(),
            retention: Retention::default(),
        }
    }

    fn register(mut self, name: &'static str, handler: Arc<dyn ErasedHandler>) -> Self {
        if self.handlers.insert(name.to_owned(), handler).is_some() {
            self.error.get_or_insert(JobsError::InvalidRunner(format!(
                "two handlers for job type `{name}`; register one"
            )));
        }
        self
    }

    /// Runs jobs of type `J` with an async function of the job and its [`JobContext`].
    pub fn handler<J, F, Fut>(self, f: F) -> Self
    where
        J: Job,
        F: Fn(J, JobContext) -> Fut + Send + Sync + 'static,
        Fut: std::future::Future<Output = JobResult<J::Output>> + Send + 'static,
    {
        self.register(J::NAME, Arc::new(FnHandler::<J, F>::new(f)))
    }

    /// Runs jobs of type `J` on a worker pool (or a single worker actor) whose task is `J`.
    /// The worker's `Err` is a retryable failure, a crash or a pool timeout too; a pool that
    /// refuses the task (full, stopped, no worker) defers the job by 1 s without counting an
    /// attempt. Pool handlers cannot enqueue follow-ups; use a function handler for that.
    pub fn pool<J, H>(self, handle: H) -> Self
    where
        J: Job,
        H: WorkerHandle,
        H::Worker: Worker<Task = J, Output = J::Output>,
    {
        self.register(J::NAME, Arc::new(PoolHandler::<J, H>::new(handle)))
    }

    /// Claims from these queues (default `["default"]`).
    pub fn queues<I, S>(mut self, queues: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.queues = queues.into_iter().map(Into::into).collect();
        self
    }

    /// Runs at most this many jobs at once (default 10).
    pub fn concurrency(mut self, n: u32) -> Self {
        self.concurrency = n;
        self
    }

    /// The lease a claim takes (default 30 s): a runner that dies loses its jobs to other
    /// runners this long after its last heartbeat.
    pub fn lease(mut self, lease: Duration) -> Self {
        self.lease = lease;
        self
    }

    /// How often leases are renewed (default a third of the lease).
    pub fn heartbeat(mut self, every: Duration) -> Self {
        self.heartbeat = Some(every);
        self
    }

    /// The longest the runner waits before looking at the store again when nothing told it
    /// to (default 1 s).
    pub fn poll_interval(mut self, every: Duration) -> Self {
        self.poll_interval = every;
        self
    }

    /// The timeout of an attempt whose job sets none (default 5 min).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// How long past its timeout a handler that ignores cancellation may keep its slot
    /// before the runner reports it hung and frees the slot (default 5 s).
    pub fn hang_grace(mut self, grace: Duration) -> Self {
        self.hang_grace = grace;
        self
    }

    /// After `threshold` consecutive failures of a job type, hold its jobs back for
    /// `cooldown`, then let one probe run; its success resumes the type.
    pub fn circuit_breaker(mut self, threshold: u32, cooldown: Duration) -> Self {
        self.breaker = Some((threshold, cooldown));
        self
    }

    /// How long finished jobs are kept before this runner prunes them (default
    /// [`Retention::default`]: completed and cancelled 24 h, discarded 7 days;
    /// [`Retention::never`] keeps them all).
    pub fn retention(mut self, retention: Retention) -> Self {
        self.retention = retention;
        self
    }

    /// Enqueues a job made by `make` at each slot of `schedule`, exactly once per slot across
    /// every runner (in this process or another, on the same store) that declares a schedule
    /// of that name. The runner declares its schedules in the store when it starts and fires
    /// them while it runs; a schedule no runner declares any more stops firing (its record
    /// stays, with its last slot, in [`Jobs::schedules`]). The job need not be one this runner
    /// handles. See [`Schedule`] for missed and overlapping slots.
    ///
    /// ```
    /// use std::time::Duration;
    /// use ractor_otp::jobs::{Job, JobContext, JobResult, Jobs, Schedule, SqliteStore};
    /// use serde::{Deserialize, Serialize};
    ///
    /// #[derive(Serialize, Deserialize)]
    /// struct Report { day: i64 }
    /// impl Job for Report {
    ///     const NAME: &'static str = "report";
    ///     type Output = ();
    /// }
    ///
    /// async fn report(_job: Report, _ctx: JobContext) -> JobResult<()> {
    ///     Ok(())
    /// }
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let jobs = Jobs::new(SqliteStore::in_memory()?);
    /// let runner = jobs
    ///     .runner()
    ///     .handler(report)
    ///     .schedule(Schedule::cron("daily-report", "0 6 * * *")?, |slot| Report {
    ///         day: slot.at.as_millis() / 86_400_000,
    ///     })
    ///     .spawn()
    ///     .await?;
    /// # runner.shutdown(Duration::from_secs(1)).await?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn schedule<J, F>(mut self, schedule: Schedule, make: F) -> Self
    where
        J: Job,
        F: Fn(&Slot) -> J + Send + Sync + 'static,
    {
        self.schedules.push(Scheduled {
            schedule,
            make: Arc::new(move |slot: &Slot, options| NewJob::new(&make(slot), options)),
        });
        self
    }

    fn validate(&self) -> Result<(), JobsError> {
        let invalid = |m: &str| Err(JobsError::InvalidRunner(m.to_owned()));
        if let Some(e) = &self.error {
            return Err(e.clone());
        }
        if self.handlers.is_empty() {
            return invalid("no handlers: register one with `.handler(f)` or `.pool(pool)`");
        }
        if self.queues.is_empty() || self.queues.iter().any(String::is_empty) {
            return invalid("give at least one non-empty queue name");
        }
        if self.concurrency == 0 {
            return invalid("concurrency must be at least 1");
        }
        if self.lease < Duration::from_millis(10) {
            return invalid("the lease must be at least 10 ms");
        }
        if self.heartbeat_every() >= self.lease || self.heartbeat_every().is_zero() {
            return invalid("the heartbeat must be shorter than the lease (and not zero)");
        }
        if self.poll_interval.is_zero() || self.timeout.is_zero() {
            return invalid("poll_interval and timeout must be greater than zero");
        }
        if let Some((threshold, _)) = self.breaker {
            if threshold == 0 {
                return invalid("a circuit breaker's threshold must be at least 1");
            }
        }
        self.retention.validate()?;
        let mut names = std::collections::HashSet::new();
        for s in &self.schedules {
            s.schedule.validate()?;
            if !names.insert(s.schedule.name()) {
                return Err(JobsError::InvalidSchedule {
                    name: s.schedule.name().to_owned(),
                    reason: "two schedules of this name in one runner; give each its own".into(),
                });
            }
        }
        Ok(())
    }

    pub(super) fn heartbeat_every(&self) -> Duration {
        self.heartbeat.unwrap_or(self.lease / 3)
    }

    /// Starts the runner.
    pub async fn spawn(self) -> Result<Runner, JobsError> {
        self.spawn_inner(None).await
    }

    /// Starts the runner linked to `parent` (a supervisor), which sees it fail.
    pub async fn spawn_linked(self, parent: ActorCell) -> Result<Runner, JobsError> {
        self.spawn_inner(Some(parent)).await
    }

    async fn spawn_inner(self, parent: Option<ActorCell>) -> Result<Runner, JobsError> {
        self.validate()?;
        let stats = Arc::new(Counters::default());
        let args = RunnerArgs {
            config: Arc::new(self),
            stats: stats.clone(),
        };
        let spawned = match parent {
            None => Actor::spawn(None, RunnerActor, args).await,
            Some(p) => Actor::spawn_linked(None, RunnerActor, args, p).await,
        };
        match spawned {
            Ok((actor, _)) => Ok(Runner { actor, stats }),
            Err(e) => Err(JobsError::InvalidRunner(format!(
                "the runner could not start: {e}"
            ))),
        }
    }

    /// The runner as a supervised child (kind `Worker`, shutdown as the spec says: its
    /// `post_stop` gives its running jobs back).
    pub fn into_child_spec(self, id: impl Into<ChildId>) -> ChildSpec {
        ChildSpec::new(id, move |ctx: ChildContext| {
            let builder = self.clone();
            async move {
                let runner = builder.spawn_linked(ctx.supervisor().clone()).await?;
                ctx.offer_probe(runner.probe());
                Ok(ChildStart::Started(runner.actor.get_cell()))
            }
        })
        .kind(ChildKind::Worker)
        .observable()
    }
}

impl crate::supervisor::IntoChildSpec for RunnerBuilder {
    fn into_child_spec(self, id: ChildId) -> ChildSpec {
        RunnerBuilder::into_child_spec(self, id)
    }
}
