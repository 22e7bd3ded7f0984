//! Pools: a router in front of supervised workers (DESIGN §3).
//!
//! ```
//! use ractor_otp::pool::{Pool, RoundRobin};
//! use ractor_otp::worker::Worker;
//!
//! struct Doubler;
//! impl Worker for Doubler {
//!     type Task = u64;
//!     type Output = u64;
//!     type Error = String;
//!     async fn handle(&mut self, n: u64) -> Result<u64, String> {
//!         Ok(n * 2)
//!     }
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let pool = Pool::builder(|_index| Doubler)
//!     .size(4)
//!     .routing(RoundRobin::new())
//!     .spawn()
//!     .await?;
//! assert_eq!(pool.submit(21).await?, 42);
//! pool.stop().await;
//! # Ok(())
//! # }
//! ```
//!
//! What a pool is made of:
//! * **Routing** on the caller's side: [`RoundRobin`], [`LeastBusy`], [`Weighted`],
//!   [`PowerOfTwo`], [`KeyHash`], or your own [`Routing`] strategy.
//! * **Backpressure**: a bounded queue with three [`Priority`] levels and an [`Overflow`] policy
//!   for when it is full; per-task timeouts and priorities in [`TaskOptions`].
//! * **Answers**: every task gets exactly one, a value or a [`TaskError`] that says what
//!   happened (the worker failed, timed out, the queue was full, the pool stopped).
//! * **Workers** are children of a one-for-one [`Supervisor`](crate::supervisor::Supervisor)
//!   the pool owns: restarted with the pool's intensity and backoff, replaced when stuck, and
//!   resized by hand ([`PoolRef::resize`]) or by a [`Resizer`].
//! * **Stats** per worker and for the pool ([`PoolStats`]), drain and stop on the
//!   [`PoolRef`] handle.
//!
//! # CPU-bound work
//!
//! A worker's `handle` runs on the async runtime, so it must yield (`.await`) regularly. A
//! handler that computes for long without yielding blocks a runtime thread, and nothing can
//! cancel it: its caller still gets [`TaskError::TimedOut`] at the task's timeout, and the pool
//! replaces the worker once the task is past its timeout plus the grace period (or the worker
//! fails a [health check](PoolBuilder::health_check)), but the thread stays blocked until the
//! computation ends, and tasks already in that worker's mailbox (with
//! [`worker_concurrency`](PoolBuilder::worker_concurrency) above 1) wait for it too. Run such
//! work off the runtime instead, and await it:
//!
//! ```
//! use ractor_otp::worker::Worker;
//!
//! struct Hasher;
//! impl Worker for Hasher {
//!     type Task = Vec<u8>;
//!     type Output = u64;
//!     type Error = String;
//!     async fn handle(&mut self, data: Vec<u8>) -> Result<u64, String> {
//!         // The computation runs on tokio's blocking pool; this worker awaits it.
//!         tokio::task::spawn_blocking(move || data.iter().map(|&b| u64::from(b)).sum())
//!             .await
//!             .map_err(|e| e.to_string())
//!     }
//! }
//! ```
//!
//! (or hand it to a dedicated thread pool such as rayon's, awaiting a oneshot channel).
//!
//! # Every task is answered
//!
//! Every accepted task gets exactly one answer, whatever ends: a worker that crashes answers
//! `Crashed` for the task it was running and sends the tasks waiting in its mailbox to other
//! workers; a pool that ends — stopped, drained, killed, panicked, or taken down with a
//! supervisor above it — answers every queued task `Stopped`, and every handle answers
//! `Stopped` at once from then on.
//!
//! A task crosses one mailbox: it is routed on the caller's side and sent to the worker. Worker
//! crashes are handled by the supervision core: the pool's workers are the children of a
//! one-for-one [`Supervisor`](crate::supervisor::Supervisor) with the pool's intensity and
//! backoff; a crash loop makes it give up, and the pool fails with it.

mod control;
mod queue;
mod resizer;
mod shared;
mod strategy;
mod timing;
mod worker_actor;

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use ractor::{ActorCell, ActorRef};
use thiserror::Error;
use tokio::sync::oneshot;
use tokio::time::Instant;

pub use self::control::PoolMsg;
pub use self::queue::{Overflow, Priority};
pub use self::resizer::Resizer;
pub use self::strategy::{
    KeyHash, LeastBusy, PowerOfTwo, RoundRobin, Routing, Target, Weighted, WorkerView, WorkerViews,
};

use self::control::{Control, PoolActor, PoolArgs};
use self::shared::{Envelope, Shared};
use self::worker_actor::Factory;
pub use crate::error::PoolConfigError;
use crate::error::{StartError, SupervisorError};
use crate::supervisor::{Backoff, ChildContext, ChildId, ChildKind, ChildSpec, ChildStart};
pub use crate::worker::TaskError;
use crate::worker::Worker;

/// An error of a pool management call.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum PoolError {
    /// A pool needs at least one worker.
    #[error("a pool needs at least one worker")]
    ZeroSize,
    /// No worker with this index.
    #[error("the pool has no worker {0}")]
    NoSuchWorker(usize),
    /// The pool has stopped.
    #[error("the pool has stopped")]
    Stopped,
    /// The workers' supervisor refused a change.
    #[error("the workers' supervisor refused: {0}")]
    Workers(SupervisorError),
}

/// Per-task options: priority, timeout, routing key.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TaskOptions {
    priority: Priority,
    timeout: Option<Duration>,
    key: Option<u64>,
}

impl TaskOptions {
    /// Normal priority, the pool's default timeout, no key.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the priority the task waits in the queue with.
    pub fn priority(mut self, priority: Priority) -> Self {
        self.priority = priority;
        self
    }

    /// Sets the task's timeout (instead of the pool's default).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Sets the routing key ([`KeyHash`] sends equal keys to the same worker).
    pub fn key(mut self, key: u64) -> Self {
        self.key = Some(key);
        self
    }

    /// The timeout set, if any.
    pub(crate) fn timeout_value(&self) -> Option<Duration> {
        self.timeout
    }
}

/// A snapshot of a pool's counters.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct PoolStats {
    /// Tasks waiting in the queue.
    pub queued: usize,
    /// Tasks dispatched to workers and not finished.
    pub in_flight: usize,
    /// Tasks accepted by `submit`, `cast`, `try_submit`.
    pub submitted: u64,
    /// Tasks the workers finished with an output.
    pub completed: u64,
    /// Tasks the workers finished with an error.
    pub failed: u64,
    /// Tasks whose worker crashed while holding them (seen by waiting callers).
    pub crashed: u64,
    /// Tasks whose callers gave up waiting.
    pub timed_out: u64,
    /// Tasks refused (full queue, stopped pool, no worker).
    pub rejected: u64,
    /// Tasks dropped from a full queue.
    pub dropped: u64,
    /// Tasks run again after their worker crashed while running them (`retry_crashed`).
    pub retried: u64,
    /// Tasks that had not started when their worker ended, sent to another worker.
    pub redispatched: u64,
    /// Workers found stuck and replaced: still running a task past its timeout plus the grace
    /// period without yielding, or not answering a health check.
    pub stuck: u64,
    /// Worker restarts.
    pub restarts: u64,
    /// Each worker, by index.
    pub workers: Vec<WorkerStats>,
}

/// One worker's counters.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct WorkerStats {
    /// Its index.
    pub index: usize,
    /// Whether an incarnation is running.
    pub live: bool,
    /// Tasks in flight on it.
    pub in_flight: usize,
    /// Its routing weight.
    pub weight: u32,
    /// Tasks it finished with an output.
    pub completed: u64,
    /// Tasks it finished with an error.
    pub failed: u64,
    /// Mean time a finished task took in its handler on it: over every task while it works
    /// back to back, and (to spare two clock reads per task) over a random sample of about one
    /// in 16 of those it takes up after waiting, once it has timed 16 of them; over every task
    /// with a deadline, and every task under the `metrics` feature.
    pub mean_latency: Duration,
}

/// Entry point: `Pool::builder(factory)`; `factory(index)` makes a worker for each incarnation.
#[derive(Debug, Clone, Copy)]
pub struct Pool;

impl Pool {
    /// A builder for a pool whose workers `factory` makes (called for every incarnation, with
    /// the worker's index).
    pub fn builder<W, F>(factory: F) -> PoolBuilder<W>
    where
        W: Worker,
        F: Fn(usize) -> W + Send + Sync + 'static,
    {
        PoolBuilder {
            factory: Arc::new(factory),
            size: std::thread::available_parallelism().map_or(4, |n| n.get()),
            weights: Vec::new(),
            routing: Arc::new(RoundRobin::new()),
            capacity: 10_000,
            overflow: Overflow::Wait,
            limit: 1,
            timeout: None,
            grace: Duration::from_secs(1),
            intensity: 3,
            period: Duration::from_secs(5),
            backoff: None,
            fail_fast_without_workers: false,
            retry: None,
            resizer: None,
            health: None,
            label: "pool".to_string(),
            tree_place: None,
        }
    }
}

/// Configures and spawns a pool.
pub struct PoolBuilder<W: Worker> {
    factory: Factory<W>,
    size: usize,
    weights: Vec<u32>,
    routing: Arc<dyn Routing>,
    capacity: usize,
    overflow: Overflow,
    limit: usize,
    timeout: Option<Duration>,
    grace: Duration,
    intensity: u32,
    period: Duration,
    backoff: Option<Backoff>,
    fail_fast_without_workers: bool,
    retry: Option<shared::RetryPolicy<W>>,
    resizer: Option<Resizer>,
    health: Option<control::HealthCheck>,
    label: String,
    /// The place its parent gave it in the tree's event stream (as a child).
    tree_place: Option<crate::observe::TreePlace>,
}

impl<W: Worker> Clone for PoolBuilder<W> {
    fn clone(&self) -> Self {
        PoolBuilder {
            factory: self.factory.clone(),
            size: self.size,
            weights: self.weights.clone(),
            routing: self.routing.clone(),
            capacity: self.capacity,
            overflow: self.overflow,
            limit: self.limit,
            timeout: self.timeout,
            grace: self.grace,
            intensity: self.intensity,
            period: self.period,
            backoff: self.backoff.clone(),
            fail_fast_without_workers: self.fail_fast_without_workers,
            retry: self.retry.clone(),
            resizer: self.resizer,
            health: self.health,
            label: self.label.clone(),
            tree_place: self.tree_place.clone(),
        }
    }
}

impl<W: Worker> PoolBuilder<W> {
    /// Number of workers (default: the number of CPUs).
    pub fn size(mut self, size: usize) -> Self {
        self.size = size;
        self
    }

    /// Initial weights for [`Weighted`] routing: one per worker, in worker order (default: all
    /// 1). A worker of weight 0 never takes a task, queued or not; if every weight is 0, tasks
    /// wait in the queue until a weight changes ([`PoolRef::set_weight`]), or fail with
    /// [`TaskError::NoWorker`] under [`fail_fast_without_workers`](Self::fail_fast_without_workers).
    /// A list that is not one weight per worker is refused at spawn
    /// ([`PoolConfigError::WeightsLength`]); workers added later by a resize get weight 1.
    pub fn weights(mut self, weights: impl IntoIterator<Item = u32>) -> Self {
        self.weights = weights.into_iter().collect();
        self
    }

    /// The routing strategy (default [`RoundRobin`]).
    pub fn routing(mut self, routing: impl Routing) -> Self {
        self.routing = Arc::new(routing);
        self
    }

    /// Queue capacity (default 10 000) and what a full queue does (default: submitters wait).
    pub fn queue(mut self, capacity: usize, overflow: Overflow) -> Self {
        self.capacity = capacity;
        self.overflow = overflow;
        self
    }

    /// At most this many tasks in flight per worker (default 1).
    ///
    /// With 1, a task that finds every worker busy waits in the pool's queue and the next worker
    /// to finish takes it (work-pulling, so no task waits behind a long one); routing then only
    /// chooses among idle workers, so weights and key affinity shape the load only while some
    /// worker is idle. Raise it to let routing place tasks into workers' mailboxes: weights and
    /// keys then decide where every task goes, at the price of tasks waiting behind long ones.
    /// A worker's crash never loses the tasks waiting in its mailbox: they go to another worker.
    pub fn worker_concurrency(mut self, limit: usize) -> Self {
        self.limit = limit;
        self
    }

    /// Default task timeout (default none; a zero timeout is refused at spawn). The caller
    /// gets [`TaskError::TimedOut`] at the timeout; a worker still running the task `grace`
    /// later is replaced (default grace 1 s): one whose handler yields fails at that moment and
    /// is restarted; one whose handler never yields (a CPU spin, which tokio cannot cancel) is
    /// taken out of rotation, counted in [`PoolStats::stuck`], and a new incarnation starts in
    /// its slot without waiting for the old one to return. See the module docs on CPU-bound
    /// work.
    pub fn task_timeout(mut self, timeout: Duration, grace: Duration) -> Self {
        self.timeout = Some(timeout);
        self.grace = grace;
        self
    }

    /// Worker restart limit: at most `intensity` restarts within `period` (default 3 in 5 s);
    /// past it the pool gives up and fails.
    pub fn restart_intensity(mut self, intensity: u32, period: Duration) -> Self {
        self.intensity = intensity;
        self.period = period;
        self
    }

    /// Delays worker restarts by a backoff policy.
    pub fn backoff(mut self, backoff: Backoff) -> Self {
        self.backoff = Some(backoff);
        self
    }

    /// With no worker running (all restarting), fail tasks with [`TaskError::NoWorker`]
    /// instead of queueing them (default: queue).
    pub fn fail_fast_without_workers(mut self, fail_fast: bool) -> Self {
        self.fail_fast_without_workers = fail_fast;
        self
    }

    /// Grows and shrinks the pool with the load, between the resizer's bounds (Akka's
    /// `DefaultResizer`): checked every `messages_per_resize` tasks.
    pub fn autoscale(mut self, resizer: Resizer) -> Self {
        self.resizer = Some(resizer);
        self
    }

    /// Stuck-worker detection: every `interval`, each worker must answer a ping within
    /// `timeout` (the ping waits behind the task it is running); one that does not is killed,
    /// restarted by the supervisor, and counted in [`PoolStats::stuck`]. Each check also
    /// publishes the pool's counters as a `tracing` event.
    pub fn health_check(mut self, interval: Duration, timeout: Duration) -> Self {
        self.health = Some(control::HealthCheck { interval, timeout });
        self
    }

    /// A name for logs and the workers' supervisor.
    pub fn label(mut self, label: impl Into<String>) -> Self {
        self.label = label.into();
        self
    }

    fn validate(&self) -> Result<(), PoolConfigError> {
        if self.size == 0 {
            return Err(PoolConfigError::ZeroSize);
        }
        if self.capacity == 0 {
            return Err(PoolConfigError::ZeroQueueCapacity);
        }
        if self.limit == 0 {
            return Err(PoolConfigError::ZeroConcurrency);
        }
        if self.timeout.is_some_and(|t| t.is_zero()) {
            return Err(PoolConfigError::ZeroTaskTimeout);
        }
        if !self.weights.is_empty() && self.weights.len() != self.size {
            return Err(PoolConfigError::WeightsLength {
                given: self.weights.len(),
                size: self.size,
            });
        }
        if self.period.is_zero() {
            return Err(PoolConfigError::ZeroRestartPeriod);
        }
        if let Some(r) = &self.resizer {
            r.validate()?;
        }
        if self
            .health
            .is_some_and(|h| h.interval.is_zero() || h.timeout.is_zero())
        {
            return Err(PoolConfigError::ZeroHealthCheck);
        }
        Ok(())
    }

    fn args(self) -> PoolArgs<W> {
        let shared = Shared::new(
            self.size,
            &self.weights,
            self.routing,
            self.capacity,
            self.overflow,
            self.limit,
            self.timeout,
            self.grace,
            self.fail_fast_without_workers,
            self.retry,
            self.resizer,
            &self.label,
        );
        PoolArgs {
            shared: Arc::new(shared),
            factory: self.factory,
            intensity: self.intensity,
            period: self.period,
            backoff: self.backoff,
            health: self.health,
            label: self.label,
            tree_place: self.tree_place,
        }
    }

    /// Spawns the pool and its workers; returns once every worker has started.
    pub async fn spawn(self) -> Result<PoolRef<W>, StartError> {
        self.spawn_inner(None).await
    }

    /// Spawns the pool linked to `parent`, which sees it fail when its workers' restarts exceed
    /// the intensity limit.
    pub async fn spawn_linked(self, parent: ActorCell) -> Result<PoolRef<W>, StartError> {
        self.spawn_inner(Some(parent)).await
    }

    /// Turns the pool into a child spec (kind `Supervisor`), so it lives in a supervision tree.
    /// Find it again with [`PoolRef::from_cell`].
    pub fn into_child_spec(self, id: impl Into<ChildId>) -> ChildSpec {
        ChildSpec::new(id, move |ctx: ChildContext| {
            let mut builder = self.clone();
            // Its workers' supervisor reports to the tree at the pool's place.
            builder.tree_place = ctx.tree.clone();
            async move {
                let pool = builder.spawn_linked(ctx.supervisor().clone()).await?;
                ctx.offer_probe(pool.probe());
                Ok(ChildStart::Started(pool.get_cell()))
            }
        })
        .kind(ChildKind::Supervisor)
        .observable()
    }

    async fn spawn_inner(self, parent: Option<ActorCell>) -> Result<PoolRef<W>, StartError> {
        self.validate()?;
        let args = self.args();
        let shared = args.shared.clone();
        let actor = PoolActor::<W>::new(shared.clone());
        let control = crate::actors::spawn_actor(actor, args, None, parent).await?;
        Ok(PoolRef { shared, control })
    }
}

impl<W: Worker> PoolBuilder<W>
where
    W::Task: Clone,
{
    /// When a worker crashes while running a task, run the task again on another worker, up
    /// to `attempts` more times, before its caller gets [`TaskError::Crashed`] (default: no
    /// retry). The task must be safe to run more than once.
    pub fn retry_crashed(mut self, attempts: u32) -> Self {
        self.retry = Some(shared::RetryPolicy {
            attempts,
            copy: <W::Task as Clone>::clone,
        });
        self
    }
}

impl<W: Worker> crate::supervisor::IntoChildSpec for PoolBuilder<W> {
    fn into_child_spec(self, id: ChildId) -> ChildSpec {
        PoolBuilder::into_child_spec(self, id)
    }
}

/// How long after a worker's own overrun timer (deadline + grace) the pool looks for workers
/// that did not act on it: a yielding handler fails itself first, so only one that never
/// yields is counted as stuck.
const OVERRUN_SLACK: Duration = Duration::from_millis(10);

/// A handle to a pool: cheap to clone; tasks go from here straight to a worker.
pub struct PoolRef<W: Worker> {
    pub(crate) shared: Arc<Shared<W>>,
    pub(crate) control: ActorRef<PoolMsg<W>>,
}

impl<W: Worker> Clone for PoolRef<W> {
    fn clone(&self) -> Self {
        PoolRef {
            shared: self.shared.clone(),
            control: self.control.clone(),
        }
    }
}

impl<W: Worker> std::fmt::Debug for PoolRef<W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PoolRef")
            .field("control", &self.control.get_id())
            .finish()
    }
}

impl<W: Worker> PoolRef<W> {
    /// The handle of a pool found in a supervision tree (e.g. `sup.child("pool")`), or `None`
    /// if the cell is not a pool of `W` (or has stopped).
    pub async fn from_cell(cell: ActorCell) -> Option<PoolRef<W>> {
        if cell.is_message_type_of::<PoolMsg<W>>() != Some(true) {
            return None;
        }
        let control: ActorRef<PoolMsg<W>> = cell.into();
        match control.call(|r| PoolMsg(Control::Handle(r)), None).await {
            Ok(ractor::rpc::CallResult::Success(pool)) => Some(pool),
            _ => None,
        }
    }

    /// The control actor's cell (link to it, or use it as a child).
    pub fn get_cell(&self) -> ActorCell {
        self.control.get_cell()
    }

    /// A snapshot of the pool as a tree: its load and counters ([`PoolStats`]) and its
    /// workers (state, incarnation, restarts). `None` once the pool has stopped.
    pub async fn tree(&self) -> Option<crate::observe::TreeNode> {
        let (label, workers) = self.observe_parts().await?;
        let observed = self.observed(workers, &label).await?;
        Some(crate::observe::TreeNode::root(label, observed))
    }

    async fn observe_parts(&self) -> Option<(String, crate::supervisor::SupervisorRef)> {
        match self
            .control
            .call(|r| PoolMsg(Control::Observe(r)), None)
            .await
        {
            Ok(ractor::rpc::CallResult::Success(parts)) => Some(parts),
            _ => None,
        }
    }

    /// The pool's part of a tree at `path`: its stats, and its workers as its children.
    async fn observed(
        &self,
        workers: crate::supervisor::SupervisorRef,
        path: &str,
    ) -> Option<crate::observe::Observed> {
        let mut observed = workers.observe(path).await?;
        observed.kind = crate::observe::NodeKind::Pool(self.stats());
        Some(observed)
    }

    /// A probe into this pool, for its parent's tree walks.
    pub(crate) fn probe(&self) -> crate::observe::Probe {
        let pool = self.clone();
        crate::observe::Probe::new(move |path: String| {
            let pool = pool.clone();
            Box::pin(async move {
                let (_, workers) = pool.observe_parts().await?;
                pool.observed(workers, &path).await
            })
        })
    }

    fn envelope(
        &self,
        task: W::Task,
        options: TaskOptions,
        reply: Option<oneshot::Sender<shared::Answer<W>>>,
    ) -> (Envelope<W>, Option<Duration>) {
        let timeout = options.timeout.or(self.shared.default_timeout);
        let deadline = timeout.map(|t| Instant::now() + t);
        let env = Envelope::new(
            task,
            reply,
            deadline,
            options.priority,
            options.key,
            self.shared.clone(),
        );
        (env, timeout)
    }

    async fn run(
        &self,
        task: W::Task,
        options: TaskOptions,
        wait: bool,
    ) -> Result<W::Output, TaskError<W::Error>> {
        let (tx, rx) = oneshot::channel();
        let (env, timeout) = self.envelope(task, options, Some(tx));
        if let Some(waiting) = self.hand_over(env, wait)? {
            waiting.await?;
        }
        self.accepted();
        let answer = match timeout {
            // Boxed: only tasks with a timeout carry its timer (and every `submit` future
            // stays small; it is moved as a whole at every `.await`).
            Some(t) => match Box::pin(tokio::time::timeout(t, rx)).await {
                Ok(answer) => answer,
                Err(_) => {
                    self.shared
                        .counters
                        .timed_out
                        .fetch_add(1, Ordering::Relaxed);
                    self.shared.metrics.timed_out();
                    // A worker that does not yield never sees its own timer fire: have the
                    // control actor look for it once the grace period is over.
                    self.control
                        .send_after(self.shared.grace + OVERRUN_SLACK, || {
                            PoolMsg(Control::CheckOverruns)
                        });
                    return Err(TaskError::TimedOut);
                }
            },
            None => rx.await,
        };
        // Every envelope answers, even when dropped (see `shared::Envelope`); a channel closed
        // without an answer can only mean the worker's task was torn down with it.
        answer.unwrap_or(Err(TaskError::Crashed))
    }

    /// Counts an accepted task and, every `messages_per_resize` tasks, asks the control actor
    /// to apply the autoscaler (one check at a time).
    fn accepted(&self) {
        self.shared.counters.submitted.add(1);
        let Some(resizer) = &self.shared.resizer else {
            return;
        };
        let n = self
            .shared
            .counters
            .toward_resize
            .fetch_add(1, Ordering::Relaxed);
        if resizer.is_time_for_resize(n)
            && !self.shared.resizing.swap(true, Ordering::AcqRel)
            && self.control.cast(PoolMsg(Control::Autoscale)).is_err()
        {
            self.shared.resizing.store(false, Ordering::Release);
        }
    }

    // `submit`, `submit_with` and `try_submit` return `run`'s future itself rather than
    // awaiting it in a future of their own, which would hold a second copy of the task and
    // its options. Like any future, it does nothing until polled.

    /// Runs a task and returns its output. Waits for queue space under [`Overflow::Wait`].
    pub fn submit(
        &self,
        task: W::Task,
    ) -> impl Future<Output = Result<W::Output, TaskError<W::Error>>> + Send + '_ {
        self.run(task, TaskOptions::default(), true)
    }

    /// Runs a task with options (priority, timeout, routing key).
    pub fn submit_with(
        &self,
        task: W::Task,
        options: TaskOptions,
    ) -> impl Future<Output = Result<W::Output, TaskError<W::Error>>> + Send + '_ {
        self.run(task, options, true)
    }

    /// Like [`submit`](Self::submit), but a full queue rejects the task at once
    /// ([`TaskError::QueueFull`]) instead of waiting for space.
    pub fn try_submit(
        &self,
        task: W::Task,
    ) -> impl Future<Output = Result<W::Output, TaskError<W::Error>>> + Send + '_ {
        self.run(task, TaskOptions::default(), false)
    }

    /// Hands a task over without waiting for its output (it is still counted). Returns once
    /// the task is with a worker or queued; waits for queue space under [`Overflow::Wait`].
    pub async fn cast(&self, task: W::Task) -> Result<(), TaskError<W::Error>> {
        self.cast_with(task, TaskOptions::default()).await
    }

    /// [`cast`](Self::cast) with options.
    pub async fn cast_with(
        &self,
        task: W::Task,
        options: TaskOptions,
    ) -> Result<(), TaskError<W::Error>> {
        let (env, _) = self.envelope(task, options, None);
        if let Some(waiting) = self.hand_over(env, true)? {
            waiting.await?;
        }
        self.accepted();
        Ok(())
    }

    /// Places a task with a worker or in the queue, at once; or, when the queue is full under
    /// [`Overflow::Wait`] and `wait`, gives the boxed wait for room (the caller awaits it,
    /// then counts the task as accepted). `Err`: refused.
    ///
    /// A plain function, so that no `.await` in the callers holds what placing returned: the
    /// future of every `cast` and `submit` stays small (it is moved as a whole at every
    /// `.await`).
    #[allow(clippy::type_complexity)]
    fn hand_over(
        &self,
        env: Envelope<W>,
        wait: bool,
    ) -> Result<
        Option<Pin<Box<impl Future<Output = Result<(), TaskError<W::Error>>> + Send + '_>>>,
        TaskError<W::Error>,
    > {
        Ok(match self.shared.place(env, wait) {
            shared::Placed::Done => None,
            shared::Placed::Refused(error) => return Err(error),
            shared::Placed::Full(env) => Some(Box::pin(self.shared.dispatch(env, wait))),
        })
    }

    /// Sends a copy of `task` to every running worker, whatever the routing and concurrency
    /// limits (like Akka's `Broadcast` envelope), and returns their answers in worker order.
    /// `Stopped` if the pool is not running, `NoWorker` if no worker is running.
    pub async fn broadcast(
        &self,
        task: W::Task,
    ) -> Result<Vec<Result<W::Output, TaskError<W::Error>>>, TaskError<W::Error>>
    where
        W::Task: Clone,
    {
        if self.shared.phase() != shared::Phase::Running {
            return Err(TaskError::Stopped);
        }
        let roster = self.shared.roster.load_full();
        let mut answers = Vec::new();
        for inc in roster.iter().filter_map(|s| s.inc.clone()) {
            if !inc.alive() {
                continue;
            }
            let (tx, rx) = oneshot::channel();
            let (env, _) = self.envelope(task.clone(), TaskOptions::default(), Some(tx));
            inc.in_flight.fetch_add(1, Ordering::AcqRel);
            if inc.actor.send_message(shared::WorkerMsg::Run(env)).is_err() {
                inc.release();
                continue;
            }
            self.shared.counters.submitted.add(1);
            answers.push(rx);
        }
        if answers.is_empty() {
            return Err(TaskError::NoWorker);
        }
        let answers = futures::future::join_all(answers).await;
        Ok(answers
            .into_iter()
            .map(|a| a.unwrap_or(Err(TaskError::Crashed)))
            .collect())
    }

    /// Sets a worker's weight for [`Weighted`] routing (0: it gets no task).
    pub fn set_weight(&self, index: usize, weight: u32) -> Result<(), PoolError> {
        if self.shared.set_weight(index, weight) {
            Ok(())
        } else {
            Err(PoolError::NoSuchWorker(index))
        }
    }

    /// A snapshot of the counters (read without a round trip).
    pub fn stats(&self) -> PoolStats {
        let c = &self.shared.counters;
        let workers: Vec<WorkerStats> = self
            .shared
            .roster
            .load()
            .iter()
            .map(|seat| {
                let s = &seat.slot;
                let completed = s.tally.completed.load(Ordering::Relaxed);
                let failed = s.tally.failed.load(Ordering::Relaxed);
                let busy = s.tally.busy_nanos.load(Ordering::Relaxed);
                let timed = s.tally.timed.load(Ordering::Relaxed);
                WorkerStats {
                    index: s.index,
                    live: seat
                        .inc
                        .as_ref()
                        .is_some_and(|i| i.actor.get_status() < ractor::ActorStatus::Stopping),
                    in_flight: seat.in_flight(),
                    weight: s.weight.load(Ordering::Relaxed),
                    completed,
                    failed,
                    mean_latency: Duration::from_nanos(busy.checked_div(timed).unwrap_or(0)),
                }
            })
            .collect();
        let (completed, failed) = self.shared.finished();
        PoolStats {
            queued: self.shared.queued(),
            in_flight: workers.iter().map(|w| w.in_flight).sum(),
            submitted: c.submitted.sum(),
            completed,
            failed,
            crashed: c.crashed.load(Ordering::Relaxed),
            timed_out: c.timed_out.load(Ordering::Relaxed),
            rejected: c.rejected.load(Ordering::Relaxed),
            dropped: c.dropped.load(Ordering::Relaxed),
            retried: c.retried.load(Ordering::Relaxed),
            redispatched: c.redispatched.load(Ordering::Relaxed),
            stuck: c.stuck.load(Ordering::Relaxed),
            restarts: c.restarts.load(Ordering::Relaxed),
            workers,
        }
    }

    async fn control<T: Send + 'static>(
        &self,
        make: impl FnOnce(ractor::RpcReplyPort<T>) -> Control<W>,
    ) -> Result<T, PoolError> {
        match self.control.call(|r| PoolMsg(make(r)), None).await {
            Ok(ractor::rpc::CallResult::Success(value)) => Ok(value),
            _ => Err(PoolError::Stopped),
        }
    }

    /// Grows or shrinks the pool to `size` workers. Shrinking removes the highest indices after
    /// their accepted tasks have finished; no accepted task is lost.
    pub async fn resize(&self, size: usize) -> Result<(), PoolError> {
        self.control(|r| Control::Resize(size, r)).await?
    }

    /// Stops taking tasks, lets queued and in-flight tasks finish (up to `timeout`), then stops
    /// the pool. Returns whether everything finished in time (tasks still queued then fail with
    /// [`TaskError::Stopped`]).
    pub async fn drain(&self, timeout: Duration) -> Result<bool, PoolError> {
        let drained = self.control(|r| Control::Drain(timeout, r)).await?;
        self.wait().await;
        Ok(drained)
    }

    /// Stops the pool now: queued tasks fail with [`TaskError::Stopped`], workers stop in order
    /// after their current task.
    pub async fn stop(&self) {
        crate::actors::stop_actor(&self.control.get_cell()).await;
    }

    /// Waits until the pool has ended.
    pub async fn wait(&self) {
        let _ = self.control.get_cell().wait(None).await;
    }
}
