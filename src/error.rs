//! The public error types: what went wrong and what to do about it.

use std::time::Duration;

use thiserror::Error;

use crate::supervisor::ChildId;

/// An invalid child spec or supervisor flags.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum SpecError {
    /// Two children of one supervisor share an id.
    #[error("child id `{0}` appears twice; give every child of a supervisor its own id")]
    DuplicateId(ChildId),
    /// A child id is the empty string.
    #[error("a child id must not be empty")]
    EmptyId,
    /// `significant` with a permanent child (OTP's `bad_combination`).
    #[error("child `{0}` is significant and permanent; a significant child must be transient or temporary")]
    SignificantPermanent(ChildId),
    /// `significant` under `AutoShutdown::Never` (OTP's `bad_combination`).
    #[error("child `{0}` is significant but the supervisor's auto_shutdown is Never; set AnySignificant or AllSignificant, or drop `significant`")]
    SignificantWithoutAutoShutdown(ChildId),
    /// The intensity period is zero.
    #[error("the restart intensity period must be greater than zero")]
    ZeroPeriod,
    /// A backoff policy that cannot work.
    #[error("child `{id}` has an invalid backoff: {reason}")]
    InvalidBackoff {
        /// The child.
        id: ChildId,
        /// What is wrong.
        reason: String,
    },
    /// `max_children` of a dynamic supervisor set to zero.
    #[error("max_children must be at least 1 (or unset for no limit)")]
    ZeroMaxChildren,
}

/// A pool setting that cannot work, refused when the pool is spawned (nothing was started).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum PoolConfigError {
    /// `size(0)`.
    #[error("size is 0; a pool needs at least one worker: set size(n) with n >= 1")]
    ZeroSize,
    /// `queue(0, ..)`.
    #[error("queue capacity is 0; give the queue room for at least one task (or use Overflow::Reject to refuse tasks when every worker is busy)")]
    ZeroQueueCapacity,
    /// `worker_concurrency(0)`.
    #[error("worker concurrency is 0, so no worker could take a task: set worker_concurrency(n) with n >= 1")]
    ZeroConcurrency,
    /// `task_timeout(0, ..)`: every task would time out before it starts.
    #[error("task timeout is 0, which would time out every task; give a timeout above zero, or do not call task_timeout for no timeout")]
    ZeroTaskTimeout,
    /// `weights(..)` with not one weight per worker.
    #[error("{given} weights given for a pool of {size} workers; give exactly one weight per worker, in worker order (0 = the worker gets no task)")]
    WeightsLength {
        /// How many weights were given.
        given: usize,
        /// The pool's size.
        size: usize,
    },
    /// `restart_intensity(_, 0)`.
    #[error("the restart intensity period is 0; give a window above zero (default 5 s)")]
    ZeroRestartPeriod,
    /// `health_check` with a zero interval or timeout.
    #[error("health check interval and timeout must both be above zero")]
    ZeroHealthCheck,
    /// An autoscaler whose settings cannot work.
    #[error("invalid autoscaler: {0}")]
    InvalidResizer(String),
}

/// Why a supervisor could not be spawned.
#[derive(Debug, Clone, Error)]
#[non_exhaustive]
pub enum StartError {
    /// Its flags or a child spec are invalid; nothing was started.
    #[error("invalid supervisor configuration: {0}")]
    InvalidSpec(#[from] SpecError),
    /// A pool's settings are invalid; nothing was started.
    #[error("invalid pool settings: {0}")]
    InvalidPool(#[from] PoolConfigError),
    /// A child failed to start; the children started before it were stopped in reverse order.
    #[error("child `{id}` failed to start: {reason}")]
    ChildFailed {
        /// The child that failed.
        id: ChildId,
        /// What happened.
        reason: StartFailure,
    },
    /// ractor could not spawn the supervisor's (or pool's) own actor, e.g. its registry name is
    /// taken.
    #[error("could not spawn the actor: {0}")]
    Spawn(StartFailure),
}

/// What went wrong when a child was started: the answer to "why did it not start?", as a value
/// a program can match on.
///
/// ractor reports an `Err` returned from an actor's `pre_start` and a panic inside it the same
/// way (both arrive as the failure's text), so both are [`Failed`](Self::Failed), never called a
/// panic. A panic in the start function itself, which the supervisor catches, is
/// [`Panicked`](Self::Panicked). A nested supervisor (or pool) whose own child failed reports
/// that child's id and failure ([`Child`](Self::Child)), to any depth.
///
/// ```
/// use ractor_otp::error::StartFailure;
/// let failure = StartFailure::Child {
///     id: "db".into(),
///     failure: Box::new(StartFailure::Failed("port 5432 in use".into())),
/// };
/// assert_eq!(failure.to_string(), "its child `db` failed to start: port 5432 in use");
/// assert_eq!(failure.root_cause(), &StartFailure::Failed("port 5432 in use".into()));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum StartFailure {
    /// The start function or the actor's `pre_start` returned an error, or `pre_start`
    /// panicked: the error's (or the panic's) text.
    #[error("{0}")]
    Failed(String),
    /// The start function itself panicked (outside any actor): the panic's message.
    #[error("the start function panicked: {0}")]
    Panicked(String),
    /// A nested supervisor or pool could not start because one of its own children failed.
    #[error("its child `{id}` failed to start: {failure}")]
    Child {
        /// The nested child that failed.
        id: ChildId,
        /// Its own failure.
        failure: Box<StartFailure>,
    },
    /// A nested supervisor's settings are invalid.
    #[error("invalid supervisor configuration: {0}")]
    InvalidSpec(SpecError),
    /// A nested pool's settings are invalid.
    #[error("invalid pool settings: {0}")]
    InvalidPool(PoolConfigError),
    /// The registry name asked for is held by another actor.
    #[error("the registry name `{0}` is taken by another actor; give each actor its own name")]
    NameTaken(String),
    /// The child's actor ended before its start function returned.
    #[error("the child ended before its start completed")]
    EndedDuringStart,
}

impl StartFailure {
    /// The innermost failure: for a nested child's failure, that child's own (recursively).
    pub fn root_cause(&self) -> &StartFailure {
        match self {
            StartFailure::Child { failure, .. } => failure.root_cause(),
            other => other,
        }
    }

    /// What a start function's error says happened. Our own errors (a nested supervisor's or
    /// pool's [`StartError`], ractor's `SpawnErr`) are unwrapped into their cases instead of
    /// being printed, so no prefix is doubled.
    pub(crate) fn from_error(err: ractor::ActorProcessingErr) -> StartFailure {
        let err = match err.downcast::<ractor::SpawnErr>() {
            Ok(spawn) => return StartFailure::from_spawn(*spawn),
            Err(err) => err,
        };
        match err.downcast::<StartError>() {
            Ok(start) => StartFailure::from(*start),
            Err(err) => StartFailure::Failed(err.to_string()),
        }
    }

    /// What ractor's refusal to spawn an actor says happened.
    pub(crate) fn from_spawn(err: ractor::SpawnErr) -> StartFailure {
        match err {
            ractor::SpawnErr::StartupFailed(inner) => StartFailure::from_error(inner),
            ractor::SpawnErr::ActorAlreadyRegistered(name) => StartFailure::NameTaken(name),
            other => StartFailure::Failed(other.to_string()),
        }
    }
}

/// A nested supervisor's or pool's failure to start, seen from its parent.
impl From<StartError> for StartFailure {
    fn from(err: StartError) -> Self {
        match err {
            StartError::ChildFailed { id, reason } => StartFailure::Child {
                id,
                failure: Box::new(reason),
            },
            StartError::InvalidSpec(e) => StartFailure::InvalidSpec(e),
            StartError::InvalidPool(e) => StartFailure::InvalidPool(e),
            StartError::Spawn(failure) => failure,
        }
    }
}

/// The error of a run-time call to a supervisor.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum SupervisorError {
    /// `start_child` with an id whose child is running (OTP's `{error, {already_started, Pid}}`).
    #[error("child `{id}` is already started")]
    AlreadyStarted {
        /// The child.
        id: ChildId,
        /// Its running incarnation.
        cell: ractor::ActorCell,
    },
    /// `start_child` with an id whose spec exists but is not running; use `restart_child`, or
    /// `delete_child` first.
    #[error("child `{0}` already exists (not running); restart or delete it instead")]
    AlreadyPresent(ChildId),
    /// No child with this id (or this actor is not a child).
    #[error("no child `{0}` under this supervisor")]
    NotFound(ChildId),
    /// `restart_child` / `delete_child` on a running child; terminate it first.
    #[error("child `{0}` is running; terminate it first")]
    Running(ChildId),
    /// The child is waiting for a restart (backoff or a failed start).
    #[error("child `{0}` is being restarted")]
    Restarting(ChildId),
    /// The child exists but has no live incarnation.
    #[error("child `{0}` is not running")]
    NotRunning(ChildId),
    /// The child's actor does not take the message type asked for.
    #[error("child `{id}` does not take messages of type `{expected}`")]
    WrongType {
        /// The child.
        id: ChildId,
        /// The message type asked for.
        expected: &'static str,
    },
    /// The spec given to `start_child` is invalid.
    #[error("invalid child spec: {0}")]
    InvalidSpec(SpecError),
    /// The child's start function failed; nothing was kept (`start_child`) or the spec stays
    /// not running (`restart_child`).
    #[error("child `{id}` failed to start: {reason}")]
    StartFailed {
        /// The child.
        id: ChildId,
        /// What happened.
        reason: StartFailure,
    },
    /// A dynamic supervisor already has `max_children` children.
    #[error("the dynamic supervisor is full ({0} children); raise max_children or stop some")]
    MaxChildren(usize),
    /// The supervisor has stopped (or is stopping); the call was not served.
    #[error("the supervisor is not running")]
    SupervisorStopped,
}

/// The abnormal exit reason of a supervisor that gave up: more than `intensity` restarts
/// within `period`. Its parent sees it as `ActorFailed` and can downcast to this type.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("supervisor `{supervisor}` gave up: {restarts} restarts within {period:?} exceed its intensity of {intensity} (last failing child: `{child}`)")]
#[non_exhaustive]
pub struct IntensityExceeded {
    /// The supervisor's label.
    pub supervisor: String,
    /// The child whose restart broke the limit.
    pub child: ChildId,
    /// Restarts counted in the window.
    pub restarts: u32,
    /// The configured limit.
    pub intensity: u32,
    /// The configured window.
    pub period: Duration,
}
