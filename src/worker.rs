//! The `Worker` trait: what a pool runs (and what the derive macros will generate).
//!
//! A worker is a plain value that handles one task at a time. The pool makes one with its
//! factory for every incarnation, so a restarted worker starts from fresh state, as in OTP.

use std::fmt;
use std::future::Future;

use ractor::ActorProcessingErr;

/// Who a worker incarnation is: its place in the pool and how many times it has started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WorkerContext {
    /// The worker's index in its pool (0-based; stable across restarts).
    pub index: usize,
    /// 1 for the first incarnation, +1 per restart.
    pub generation: u64,
}

/// A task handler a pool runs on each of its workers.
///
/// ```
/// use ractor_otp::worker::Worker;
///
/// struct Doubler;
/// impl Worker for Doubler {
///     type Task = u64;
///     type Output = u64;
///     type Error = String;
///     async fn handle(&mut self, n: u64) -> Result<u64, String> {
///         n.checked_mul(2).ok_or_else(|| format!("{n} is too big to double"))
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

    /// Prepares a new incarnation before it takes tasks; an `Err` is a failed start (the
    /// supervisor retries it under the pool's restart intensity).
    fn init(
        &mut self,
        ctx: WorkerContext,
    ) -> impl Future<Output = Result<(), ActorProcessingErr>> + Send {
        let _ = ctx;
        async { Ok(()) }
    }

    /// Handles one task. A panic crashes this incarnation: the caller of the task gets
    /// [`TaskError::Crashed`](crate::pool::TaskError::Crashed) and the worker is restarted.
    fn handle(
        &mut self,
        task: Self::Task,
    ) -> impl Future<Output = Result<Self::Output, Self::Error>> + Send;

    /// Called after `init` on every incarnation after the first (generation ≥ 2).
    fn on_restart(
        &mut self,
        ctx: WorkerContext,
    ) -> impl Future<Output = Result<(), ActorProcessingErr>> + Send {
        let _ = ctx;
        async { Ok(()) }
    }
}
