//! The public error types: what went wrong and what to do about it.

use std::time::Duration;

use thiserror::Error;

use crate::supervisor::ChildId;

/// An invalid child spec or supervisor flags.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
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
        /// Its start error.
        reason: String,
    },
    /// ractor refused to spawn the supervisor actor (e.g. its registry name is taken).
    #[error("could not spawn the supervisor actor: {0}")]
    Spawn(String),
}

/// The error of a run-time call to a supervisor.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SupervisorError {
    /// `start_child` with an id whose child is running.
    #[error("child `{0}` is already started")]
    AlreadyStarted(ChildId),
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
        /// Its start error.
        reason: String,
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
