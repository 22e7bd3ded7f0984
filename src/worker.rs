//! The `Worker` trait (what a pool runs and what `#[worker]` generates), the [`TaskError`] a
//! caller gets instead of an output, how one worker runs alone as a ractor actor ([`Call`]),
//! and [`WorkerHandle`], what a typed client calls through: a pool or a single worker actor.
//!
//! A worker is a plain value that handles one task at a time. The pool makes one with its
//! factory for every incarnation, so a restarted worker starts from fresh state, as in OTP.

use std::fmt;
use std::future::Future;

use ractor::{ActorProcessingErr, ActorRef, RpcReplyPort};

use crate::pool::{PoolRef, TaskOptions};

/// What happened to a task that did not produce an output: the answer a pool (or a single
/// worker) gives instead of one. Every task gets exactly one answer, this or its output.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TaskError<E = std::convert::Infallible> {
    /// The worker ran the task and returned this error (the worker keeps running).
    #[error("the worker returned an error: {0}")]
    Failed(E),
    /// The worker crashed (panicked, or was killed as stuck) while running this task; it is
    /// being restarted. The task had started. (Tasks that had not started when their worker
    /// ended are sent to another worker instead.)
    #[error("the worker crashed while running the task; it is being restarted")]
    Crashed,
    /// The task did not finish within its timeout.
    #[error("the task did not finish within its timeout")]
    TimedOut,
    /// The queue was full (overflow policy `Reject`, or `try_submit`).
    #[error("the pool's queue is full; retry later, or raise its capacity")]
    QueueFull,
    /// The task was dropped from the full queue to make room (overflow policy `DropOldest`).
    #[error("the task was dropped from the full queue to make room for a newer one")]
    Dropped,
    /// The pool is draining or stopped and takes no new task (or stopped before running it).
    #[error("the pool is draining or stopped")]
    Stopped,
    /// No worker is running (all are restarting) and the pool is set to fail fast.
    #[error("no worker is running and the pool fails fast instead of queueing")]
    NoWorker,
}

impl<E> TaskError<E> {
    /// Maps the worker's error in [`TaskError::Failed`]; every other case stays as it is.
    ///
    /// ```
    /// use ractor_otp::worker::TaskError;
    /// let e: TaskError<u8> = TaskError::Failed(7);
    /// assert_eq!(e.map_failed(|n| n.to_string()), TaskError::Failed("7".to_string()));
    /// ```
    pub fn map_failed<F>(self, f: impl FnOnce(E) -> F) -> TaskError<F> {
        match self {
            TaskError::Failed(e) => TaskError::Failed(f(e)),
            TaskError::Crashed => TaskError::Crashed,
            TaskError::TimedOut => TaskError::TimedOut,
            TaskError::QueueFull => TaskError::QueueFull,
            TaskError::Dropped => TaskError::Dropped,
            TaskError::Stopped => TaskError::Stopped,
            TaskError::NoWorker => TaskError::NoWorker,
        }
    }
}

/// Who a worker incarnation is: its place in the pool and how many times it has started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WorkerContext {
    /// The worker's index in its pool (0-based; stable across restarts).
    pub index: usize,
    /// 1 for the first incarnation, +1 per restart.
    pub generation: u64,
}

/// A task handler a pool runs on each of its workers. Its failures are all `Self::Error`: an
/// `Err` from `handle` answers that task, one from `init` or `on_restart` fails the start.
///
/// ```
/// use ractor_otp::worker::{Worker, WorkerContext};
///
/// struct Doubler {
///     limit: u64,
/// }
/// impl Worker for Doubler {
///     type Task = u64;
///     type Output = u64;
///     type Error = String;
///     async fn init(&mut self, _: WorkerContext) -> Result<(), String> {
///         if self.limit == 0 {
///             return Err("a limit of 0 doubles nothing".into());
///         }
///         Ok(())
///     }
///     async fn handle(&mut self, n: u64) -> Result<u64, String> {
///         n.checked_mul(2)
///             .filter(|&d| d <= self.limit)
///             .ok_or_else(|| format!("{n} doubled is over {}", self.limit))
///     }
/// }
/// ```
pub trait Worker: Send + 'static {
    /// What the worker is given to do.
    type Task: Send + 'static;
    /// What it answers when the task succeeds.
    type Output: Send + 'static;
    /// What it answers when the task fails (the worker keeps running).
    type Error: fmt::Display + Send + 'static;

    /// Prepares a new incarnation before it takes tasks. An `Err` is a failed start, reported
    /// with the error's `Display` (the supervisor retries it under the pool's restart
    /// intensity): a worker's failures are all `Self::Error`, in its hooks as in `handle`.
    fn init(&mut self, ctx: WorkerContext) -> impl Future<Output = Result<(), Self::Error>> + Send {
        let _ = ctx;
        async { Ok(()) }
    }

    /// Handles one task. An `Err` answers the caller with [`TaskError::Failed`] and the worker
    /// keeps running; a panic crashes this incarnation: the caller of the task gets
    /// [`TaskError::Crashed`] and the worker is restarted.
    fn handle(
        &mut self,
        task: Self::Task,
    ) -> impl Future<Output = Result<Self::Output, Self::Error>> + Send;

    /// Called after `init` on every incarnation after the first (generation ≥ 2); an `Err`
    /// fails the start, as in `init`.
    fn on_restart(
        &mut self,
        ctx: WorkerContext,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send {
        let _ = ctx;
        async { Ok(()) }
    }
}

/// A failed [`Worker::init`] / [`Worker::on_restart`] as the actor's start error: the worker's
/// error, by its `Display`.
pub(crate) fn start_failed<E: fmt::Display>(error: E) -> ActorProcessingErr {
    error.to_string().into()
}

/// The answer to one task: the worker's output or its error.
pub type Answer<W> = Result<<W as Worker>::Output, <W as Worker>::Error>;

/// What a handle's call answers: the worker's output, or what happened instead.
pub type Outcome<W> = Result<<W as Worker>::Output, TaskError<<W as Worker>::Error>>;

/// A message to a worker that runs alone as a ractor actor (the `Msg` of the `Actor` impl that
/// `#[worker]` generates): one task and, for a request, where to send the answer.
///
/// Build one with [`Call::request`] or [`Call::cast`], or let a typed client do it; an actor
/// handles one with [`Call::run`].
pub struct Call<W: Worker> {
    task: W::Task,
    reply: Option<RpcReplyPort<Answer<W>>>,
}

#[cfg(feature = "cluster")]
impl<W: Worker> ractor::Message for Call<W> {}

impl<W: Worker> fmt::Debug for Call<W> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Call")
            .field("reply", &self.reply.is_some())
            .finish_non_exhaustive()
    }
}

impl<W: Worker> Call<W> {
    /// A task whose answer goes to `reply`.
    pub fn request(task: W::Task, reply: RpcReplyPort<Answer<W>>) -> Self {
        Call {
            task,
            reply: Some(reply),
        }
    }

    /// A task nobody waits for.
    pub fn cast(task: W::Task) -> Self {
        Call { task, reply: None }
    }

    /// Runs the task on `worker` and sends the answer (a caller that went away is ignored).
    /// An `Err` from a cast task has nobody to go to: it is logged and the actor keeps running,
    /// as a pool's worker does. A panic in the handler is the actor's crash: the caller's reply
    /// port drops with it.
    pub async fn run(self, worker: &mut W) -> Result<(), ActorProcessingErr> {
        let answer = worker.handle(self.task).await;
        match (self.reply, answer) {
            (Some(reply), answer) => {
                let _ = reply.send(answer);
            }
            (None, Err(error)) => tracing::warn!(%error, "a cast task failed"),
            (None, Ok(_)) => {}
        }
        Ok(())
    }
}

/// Prepares a worker that runs alone as an actor (the `pre_start` of the generated `Actor`
/// impl): a clone of the actor's value, after its `init` with index 0, generation 1.
///
/// A supervisor restarts such an actor by starting it again from the same value, so every
/// incarnation begins from that value; [`Worker::on_restart`] runs only in pools, which count
/// generations.
pub async fn start_alone<W: Worker + Clone + Sync>(prototype: &W) -> Result<W, ActorProcessingErr> {
    crate::__private::start_alone(prototype.clone()).await
}

/// Something that runs tasks of one worker type: a pool ([`PoolRef<W>`]) or a worker running
/// alone as an actor (`ActorRef<Call<W>>`). The typed clients that `#[worker]` generates call
/// through it, so the same client reads the same over both.
///
/// Errors over an actor: [`TaskError::Failed`] (the method returned `Err`),
/// [`TaskError::Crashed`] (the actor ended while running the task, e.g. it panicked),
/// [`TaskError::Stopped`] (the actor was not running).
pub trait WorkerHandle: Clone + Send + Sync + 'static {
    /// The worker whose tasks this runs.
    type Worker: Worker;

    /// Runs a task and returns its answer.
    fn submit_task(
        &self,
        task: <Self::Worker as Worker>::Task,
    ) -> impl Future<Output = Outcome<Self::Worker>> + Send;

    /// Hands a task over without waiting for its answer.
    fn cast_task(
        &self,
        task: <Self::Worker as Worker>::Task,
    ) -> impl Future<Output = Result<(), TaskError<<Self::Worker as Worker>::Error>>> + Send;

    /// Runs a task with per-call options. A pool honours them all; a single worker actor
    /// honours the timeout (the caller gets [`TaskError::TimedOut`]; the actor still finishes
    /// the task) and has no queue or workers for a priority or a key to matter.
    fn submit_task_with(
        &self,
        task: <Self::Worker as Worker>::Task,
        options: TaskOptions,
    ) -> impl Future<Output = Outcome<Self::Worker>> + Send;

    /// Hands a task over with per-call options, without waiting for its answer.
    fn cast_task_with(
        &self,
        task: <Self::Worker as Worker>::Task,
        options: TaskOptions,
    ) -> impl Future<Output = Result<(), TaskError<<Self::Worker as Worker>::Error>>> + Send;
}

impl<W: Worker> WorkerHandle for PoolRef<W> {
    type Worker = W;

    async fn submit_task(&self, task: W::Task) -> Result<W::Output, TaskError<W::Error>> {
        self.submit(task).await
    }

    async fn cast_task(&self, task: W::Task) -> Result<(), TaskError<W::Error>> {
        self.cast(task).await
    }

    async fn submit_task_with(
        &self,
        task: W::Task,
        options: TaskOptions,
    ) -> Result<W::Output, TaskError<W::Error>> {
        self.submit_with(task, options).await
    }

    async fn cast_task_with(
        &self,
        task: W::Task,
        options: TaskOptions,
    ) -> Result<(), TaskError<W::Error>> {
        self.cast_with(task, options).await
    }
}

impl<W: Worker> WorkerHandle for ActorRef<Call<W>> {
    type Worker = W;

    async fn submit_task(&self, task: W::Task) -> Result<W::Output, TaskError<W::Error>> {
        self.submit_task_with(task, TaskOptions::new()).await
    }

    async fn cast_task(&self, task: W::Task) -> Result<(), TaskError<W::Error>> {
        self.cast(Call::cast(task)).map_err(|_| TaskError::Stopped)
    }

    async fn submit_task_with(
        &self,
        task: W::Task,
        options: TaskOptions,
    ) -> Result<W::Output, TaskError<W::Error>> {
        let (tx, rx) = ractor::concurrency::oneshot();
        self.cast(Call::request(task, tx.into()))
            .map_err(|_| TaskError::Stopped)?;
        let answer = match options.timeout_value() {
            Some(limit) => tokio::time::timeout(limit, rx)
                .await
                .map_err(|_| TaskError::TimedOut)?,
            None => rx.await,
        };
        match answer {
            Ok(answer) => answer.map_err(TaskError::Failed),
            Err(_) => Err(TaskError::Crashed),
        }
    }

    async fn cast_task_with(
        &self,
        task: W::Task,
        _options: TaskOptions,
    ) -> Result<(), TaskError<W::Error>> {
        self.cast_task(task).await
    }
}

/// A handle whose every call carries the same [`TaskOptions`]: what a `#[worker]` client's
/// `with(options)` wraps its handle in. Options given to a `*_with` call replace these.
#[derive(Debug, Clone)]
pub struct WithOptions<H> {
    handle: H,
    options: TaskOptions,
}

impl<H> WithOptions<H> {
    /// `handle`, with `options` on every call.
    pub fn new(handle: H, options: TaskOptions) -> Self {
        WithOptions { handle, options }
    }
}

impl<H: WorkerHandle> WorkerHandle for WithOptions<H> {
    type Worker = H::Worker;

    fn submit_task(
        &self,
        task: <Self::Worker as Worker>::Task,
    ) -> impl Future<Output = Outcome<Self::Worker>> + Send {
        self.handle.submit_task_with(task, self.options)
    }

    fn cast_task(
        &self,
        task: <Self::Worker as Worker>::Task,
    ) -> impl Future<Output = Result<(), TaskError<<Self::Worker as Worker>::Error>>> + Send {
        self.handle.cast_task_with(task, self.options)
    }

    fn submit_task_with(
        &self,
        task: <Self::Worker as Worker>::Task,
        options: TaskOptions,
    ) -> impl Future<Output = Outcome<Self::Worker>> + Send {
        self.handle.submit_task_with(task, options)
    }

    fn cast_task_with(
        &self,
        task: <Self::Worker as Worker>::Task,
        options: TaskOptions,
    ) -> impl Future<Output = Result<(), TaskError<<Self::Worker as Worker>::Error>>> + Send {
        self.handle.cast_task_with(task, options)
    }
}
