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
//! Per job type, a [`CircuitBreaker`] holds jobs back after consecutive failures: they stay in
//! the store, unclaimed, until a probe succeeds.
//!
//! Shutdown ([`Runner::shutdown`]): stop claiming, let running jobs finish within the drain
//! timeout, then cancel the rest and give them back to the store without consuming an attempt.
//! A runner stopped any other way (its supervisor, a crash) gives back what it can in
//! `post_stop`; what it cannot is recovered by lease expiry.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt;
use ractor::{Actor, ActorCell, ActorProcessingErr, ActorRef, RpcReplyPort};
use tokio::sync::watch;
use tokio::task::AbortHandle;
use tokio::time::Instant;
use tracing::Instrument;

use crate::jobs::breaker::{Admission, CircuitBreaker};
use crate::jobs::handler::{ErasedHandler, FnHandler, JobErrorKind, PoolHandler, RunOutcome};
use crate::jobs::{
    ClaimRequest, ClaimedJob, Finish, Job, JobContext, JobId, JobResult, Jobs, JobsError, Lease,
    StoreError, Timestamp,
};
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
    jobs: Jobs,
    handlers: HashMap<String, Arc<dyn ErasedHandler>>,
    error: Option<JobsError>,
    queues: Vec<String>,
    concurrency: u32,
    lease: Duration,
    heartbeat: Option<Duration>,
    poll_interval: Duration,
    timeout: Duration,
    hang_grace: Duration,
    breaker: Option<(u32, Duration)>,
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
        Ok(())
    }

    fn heartbeat_every(&self) -> Duration {
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
                Ok(ChildStart::Started(runner.actor.get_cell()))
            }
        })
        .kind(ChildKind::Worker)
    }
}

impl crate::supervisor::IntoChildSpec for RunnerBuilder {
    fn into_child_spec(self, id: ChildId) -> ChildSpec {
        RunnerBuilder::into_child_spec(self, id)
    }
}

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
        }
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

// ---------------------------------------------------------------------------------------------
// The actor.
// ---------------------------------------------------------------------------------------------

struct RunnerActor;

struct RunnerArgs {
    config: Arc<RunnerBuilder>,
    stats: Arc<Counters>,
}

/// How a run ended, as the runner counts it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    Completed,
    Failed { timed_out: bool },
    Deferred,
}

pub(crate) enum RunnerMsg {
    Tick,
    Heartbeat,
    Finished {
        id: JobId,
        token: i64,
        verdict: Verdict,
        stored: Result<(), StoreError>,
    },
    Shutdown {
        drain: Duration,
        reply: RpcReplyPort<ShutdownReport>,
    },
    DrainDeadline,
    Claimed {
        claimed: Vec<ClaimedJob>,
        probed: Vec<(String, bool)>,
        full: bool,
        next_due: Option<Timestamp>,
    },
}

#[cfg(feature = "cluster")]
impl ractor::Message for RunnerMsg {}

struct Running {
    token: i64,
    name: String,
    abort: AbortHandle,
    /// The attempt's timeout instant; past it plus the grace, the run is hung.
    deadline: Instant,
    timeout: Duration,
}

struct Drain {
    reply: RpcReplyPort<ShutdownReport>,
    finished: usize,
}

struct RunnerState {
    config: Arc<RunnerBuilder>,
    stats: Arc<Counters>,
    owner: String,
    names: Vec<String>,
    running: HashMap<JobId, Running>,
    breakers: HashMap<String, CircuitBreaker>,
    drain: Option<Drain>,
    /// A claim is in flight (at most one).
    claiming: bool,
    /// Slots freed or a wake came during the claim in flight: claim again when it is back.
    claim_again: bool,
    tick_pending: Arc<AtomicBool>,
    deadline: watch::Sender<Instant>,
    timers: Vec<AbortHandle>,
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
        // The first look at the store.
        myself.cast(RunnerMsg::Tick)?;
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
            breakers,
            drain: None,
            claiming: false,
            claim_again: false,
            tick_pending,
            deadline,
            timers: vec![pacer.abort_handle(), heartbeat.abort_handle()],
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
                state.claim(&myself);
            }
            RunnerMsg::Claimed {
                claimed,
                probed,
                full,
                next_due,
            } => {
                state
                    .claimed(&myself, claimed, probed, full, next_due)
                    .await;
            }
            RunnerMsg::Heartbeat => state.heartbeat().await,
            RunnerMsg::Finished {
                id,
                token,
                verdict,
                stored,
            } => {
                // A run already given up on (hung, lease lost) was counted then.
                if state.running.get(&id).map(|r| r.token) != Some(token) {
                    return Ok(());
                }
                let name = state.running.remove(&id).map(|r| r.name);
                state.stats.running.fetch_sub(1, Ordering::Relaxed);
                state.record(id, name.as_deref(), verdict, stored);
                if let Some(drain) = &mut state.drain {
                    drain.finished += 1;
                    if state.running.is_empty() {
                        state.stop_drained(&myself);
                    }
                    return Ok(());
                }
                state.claim(&myself);
            }
            RunnerMsg::Shutdown { drain, reply } => {
                tracing::info!(owner = %state.owner, running = state.running.len(), ?drain, "job runner draining");
                state.drain = Some(Drain { reply, finished: 0 });
                if state.running.is_empty() {
                    state.stop_drained(&myself);
                } else {
                    myself.send_after(drain, || RunnerMsg::DrainDeadline);
                }
            }
            RunnerMsg::DrainDeadline => {
                let released = state.give_back_all().await;
                if let Some(drain) = state.drain.take() {
                    let _ = drain.reply.send(ShutdownReport {
                        finished: drain.finished,
                        released,
                    });
                }
                myself.stop(Some("shutdown".into()));
            }
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
        let released = state.give_back_all().await;
        tracing::info!(owner = %state.owner, released, "job runner stopped");
        Ok(())
    }
}

/// Sends `Tick` when a job is enqueued through the same handle, when the store reports one
/// from another process, or at the deadline the runner set last; at most one `Tick` waits in
/// the mailbox.
async fn pace(
    runner: ActorRef<RunnerMsg>,
    mut wake: watch::Receiver<u64>,
    mut remote: Option<watch::Receiver<u64>>,
    mut deadline: watch::Receiver<Instant>,
    pending: Arc<AtomicBool>,
) {
    let mut armed = true;
    loop {
        let at = *deadline.borrow_and_update();
        tokio::select! {
            changed = wake.changed() => {
                if changed.is_err() {
                    return;
                }
            }
            changed = async { remote.as_mut()?.changed().await.ok() }, if remote.is_some() => {
                if changed.is_none() {
                    // The store stopped reporting: polling goes on.
                    remote = None;
                    continue;
                }
            }
            changed = deadline.changed() => {
                if changed.is_err() {
                    return;
                }
                armed = true;
                continue;
            }
            _ = tokio::time::sleep_until(at), if armed => armed = false,
        }
        if !pending.swap(true, Ordering::AcqRel) && runner.cast(RunnerMsg::Tick).is_err() {
            return;
        }
    }
}

impl RunnerState {
    fn jobs(&self) -> &Jobs {
        &self.config.jobs
    }

    /// Fills free slots with due jobs. The claim runs in its own task (one at a time), so
    /// the runner keeps taking finishes meanwhile; what frees up during a claim is claimed by
    /// the next one, right after.
    fn claim(&mut self, myself: &ActorRef<RunnerMsg>) {
        if self.drain.is_some() {
            return;
        }
        if self.claiming {
            self.claim_again = true;
            return;
        }
        let free = self.free();
        if free == 0 {
            // The next finish claims.
            self.deadline
                .send_replace(Instant::now() + self.config.poll_interval);
            return;
        }
        let now = self.jobs().now();
        let mut open = Vec::new();
        let mut probes = Vec::new();
        for name in &self.names {
            match self.breakers.get(name).map(|b| b.admission(now)) {
                None | Some(Admission::Open) => open.push(name.clone()),
                Some(Admission::Probe) => probes.push(name.clone()),
                Some(Admission::Closed) => {}
            }
        }
        self.claiming = true;
        self.claim_again = false;
        let jobs = self.jobs().clone();
        let base = ClaimRequest {
            owner: self.owner.clone(),
            queues: self.config.queues.clone(),
            names: Vec::new(),
            limit: free,
            lease: self.config.lease,
        };
        let runner = myself.clone();
        tokio::spawn(async move {
            let claim = |names: Vec<String>, limit: u32| {
                let request = ClaimRequest {
                    names,
                    limit,
                    ..base.clone()
                };
                let jobs = jobs.clone();
                async move {
                    match jobs.store().claim(request, jobs.now()).await {
                        Ok(claimed) => claimed,
                        Err(e) => {
                            tracing::warn!(error = %e, "claiming jobs failed; trying again at the next poll");
                            Vec::new()
                        }
                    }
                }
            };
            let mut claimed = Vec::new();
            if !open.is_empty() {
                claimed = claim(open.clone(), free).await;
            }
            let mut probed = Vec::new();
            for name in probes {
                if claimed.len() as u32 >= free {
                    break;
                }
                let probe = claim(vec![name.clone()], 1).await;
                probed.push((name, !probe.is_empty()));
                claimed.extend(probe);
            }
            let full = claimed.len() as u32 >= free;
            let next_due = if full || open.is_empty() {
                None
            } else {
                match jobs.store().next_due(base.queues.clone(), open).await {
                    Ok(next) => next,
                    Err(e) => {
                        tracing::warn!(error = %e, "reading the next due job failed");
                        None
                    }
                }
            };
            let _ = runner.cast(RunnerMsg::Claimed {
                claimed,
                probed,
                full,
                next_due,
            });
        });
    }

    /// A claim came back: start its jobs, feed the breakers, plan the next look.
    async fn claimed(
        &mut self,
        myself: &ActorRef<RunnerMsg>,
        claimed: Vec<ClaimedJob>,
        probed: Vec<(String, bool)>,
        full: bool,
        next_due: Option<Timestamp>,
    ) {
        self.claiming = false;
        let now = self.jobs().now();
        for (name, found) in probed {
            if let Some(breaker) = self.breakers.get_mut(&name) {
                if found {
                    tracing::info!(job_type = %name, "circuit breaker: probing");
                    breaker.probe_started();
                } else {
                    breaker.probe_not_found(now);
                }
            }
        }
        if self.drain.is_some() {
            // Claimed as the runner began to drain: back to the store, unrun.
            for job in claimed {
                let lease = Lease {
                    id: job.id,
                    token: job.token,
                };
                if let Err(e) = self.jobs().store().give_back(lease, now).await {
                    tracing::warn!(id = %job.id, error = %e, "giving a job back failed; its lease will expire");
                }
            }
            return;
        }
        for job in claimed {
            self.start(myself, job);
        }
        // The next look: the next due job, a breaker reopening, or the poll interval. A due
        // job that was not claimed is held back by its resource: wait for the poll.
        let mut at = Instant::now() + self.config.poll_interval;
        if !full {
            let reopen = self.breakers.values().filter_map(|b| b.reopens_at()).min();
            if let Some(t) = next_due.into_iter().chain(reopen).min() {
                if t > now {
                    at = at.min(Instant::now() + t.since(now));
                }
            }
        }
        self.deadline.send_replace(at);
        if (full || self.claim_again) && self.free() > 0 {
            self.claim(myself);
        }
    }

    fn free(&self) -> u32 {
        self.config
            .concurrency
            .saturating_sub(self.running.len() as u32)
    }

    fn start(&mut self, myself: &ActorRef<RunnerMsg>, job: ClaimedJob) {
        bump(&self.stats.claimed);
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
        let task = tokio::spawn(
            async move {
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
                let stored = jobs.store().finish(lease, finish, jobs.now()).await;
                jobs.job_finished();
                let _ = runner.cast(RunnerMsg::Finished {
                    id: lease.id,
                    token: lease.token,
                    verdict,
                    stored,
                });
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

    /// Counts a finished run and feeds its type's breaker.
    fn record(
        &mut self,
        id: JobId,
        name: Option<&str>,
        verdict: Verdict,
        stored: Result<(), StoreError>,
    ) {
        if let Err(e) = stored {
            bump(&self.stats.lost);
            tracing::warn!(%id, error = %e, "a run's result was not recorded");
            return;
        }
        let now = self.jobs().now();
        let breaker = name.and_then(|n| self.breakers.get_mut(n));
        match verdict {
            Verdict::Completed => {
                bump(&self.stats.completed);
                if let Some(b) = breaker {
                    b.on_success();
                }
            }
            Verdict::Failed { timed_out } => {
                bump(&self.stats.failed);
                if timed_out {
                    bump(&self.stats.timed_out);
                }
                if let Some(b) = breaker {
                    let was = b.is_tripped();
                    b.on_failure(now);
                    if !was && b.is_tripped() {
                        tracing::warn!(
                            job_type = name.unwrap_or("?"),
                            "circuit breaker tripped: holding this job type back"
                        );
                    }
                }
            }
            Verdict::Deferred => {
                bump(&self.stats.deferred);
                // A deferred probe proves nothing: let the next one be tried.
                if let Some(b) = breaker {
                    b.probe_not_found(now);
                }
            }
        }
    }

    /// Renews the leases of running jobs; cancels runs whose lease was lost and gives up on
    /// runs hung past their timeout.
    async fn heartbeat(&mut self) {
        let now = Instant::now();
        let hung: Vec<JobId> = self
            .running
            .iter()
            .filter(|(_, r)| now >= r.deadline + self.config.hang_grace)
            .map(|(id, _)| *id)
            .collect();
        for id in hung {
            if let Some(run) = self.running.remove(&id) {
                run.abort.abort();
                self.stats.running.fetch_sub(1, Ordering::Relaxed);
                bump(&self.stats.hung);
                let error = format!(
                    "timed out after {:?} and did not stop when cancelled (hung); its slot was freed",
                    run.timeout
                );
                tracing::error!(%id, name = %run.name, "{error}");
                let lease = Lease {
                    id,
                    token: run.token,
                };
                let stored = self
                    .jobs()
                    .store()
                    .finish(
                        lease,
                        Finish::Failed { error, retry: true },
                        self.jobs().now(),
                    )
                    .await;
                self.jobs().job_finished();
                self.record(
                    id,
                    Some(&run.name),
                    Verdict::Failed { timed_out: true },
                    stored,
                );
            }
        }
        if self.running.is_empty() {
            return;
        }
        let leases: Vec<Lease> = self
            .running
            .iter()
            .map(|(id, r)| Lease {
                id: *id,
                token: r.token,
            })
            .collect();
        let expires = self.jobs().now().after(self.config.lease);
        match self
            .jobs()
            .store()
            .heartbeat(leases, expires, self.jobs().now())
            .await
        {
            Ok(lost) => {
                for id in lost {
                    if let Some(run) = self.running.remove(&id) {
                        run.abort.abort();
                        self.stats.running.fetch_sub(1, Ordering::Relaxed);
                        bump(&self.stats.lost);
                        tracing::warn!(%id, name = %run.name, "lease lost (expired and reclaimed, or cancelled); run cancelled");
                    }
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "renewing leases failed; retrying at the next heartbeat")
            }
        }
    }

    /// Cancels every running job and gives it back to the store; returns how many.
    async fn give_back_all(&mut self) -> usize {
        let mut released = 0;
        for (id, run) in std::mem::take(&mut self.running) {
            run.abort.abort();
            self.stats.running.fetch_sub(1, Ordering::Relaxed);
            let lease = Lease {
                id,
                token: run.token,
            };
            match self
                .jobs()
                .store()
                .give_back(lease, self.jobs().now())
                .await
            {
                Ok(()) => released += 1,
                // It finished (or was reclaimed) as it was being cancelled.
                Err(StoreError::LeaseLost(_)) => {}
                Err(e) => {
                    tracing::warn!(%id, error = %e, "giving a job back failed; its lease will expire")
                }
            }
        }
        released
    }

    fn stop_drained(&mut self, myself: &ActorRef<RunnerMsg>) {
        if let Some(drain) = self.drain.take() {
            let _ = drain.reply.send(ShutdownReport {
                finished: drain.finished,
                released: 0,
            });
        }
        myself.stop(Some("shutdown".into()));
    }
}

/// Turns a run's outcome into the store's `Finish` and the runner's verdict.
fn to_finish(outcome: RunOutcome, ctx: &JobContext, now: Timestamp) -> (Finish, Verdict) {
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
