//! Starting and stopping one child: the start call and OTP's shutdown protocol.
//!
//! Shared by [`Supervisor`](super::Supervisor) and
//! [`DynamicSupervisor`](super::DynamicSupervisor). A start function's panic is caught and
//! becomes a failed start; a started child that is not linked to the supervisor is linked.
//! Stopping follows the child's [`Shutdown`]: ask, wait up to the timeout, then kill; every
//! wait ends when the child's actor has fully ended, so a restarted child never overlaps its
//! previous incarnation (and a registry name is free again).

use std::panic::AssertUnwindSafe;

use futures::FutureExt;
use ractor::{ActorCell, ActorStatus, RactorErr};

use super::event::StopOutcome;
use futures::future::BoxFuture;

use super::spec::{ChildStart, Shutdown, StartResult};
use crate::exit::SHUTDOWN_REASON;

/// What a start attempt gave.
pub(crate) enum Started {
    Running(ActorCell),
    Ignored,
    Failed(String),
}

/// Runs a start function's future, turning a panic or an `Err` into [`Started::Failed`].
pub(crate) async fn start_child(
    start: BoxFuture<'static, StartResult>,
    supervisor: &ActorCell,
) -> Started {
    let outcome = AssertUnwindSafe(start).catch_unwind().await;
    match outcome {
        Ok(Ok(ChildStart::Started(cell))) => {
            let linked = cell
                .try_get_supervisor()
                .is_some_and(|s| s.get_id() == supervisor.get_id());
            if !linked {
                cell.link(supervisor.clone());
            }
            if cell.get_status() >= ActorStatus::Stopping {
                return Started::Failed("the child ended before its start completed".into());
            }
            Started::Running(cell)
        }
        Ok(Ok(ChildStart::Ignore)) => Started::Ignored,
        Ok(Err(err)) => Started::Failed(err.to_string()),
        Err(panic) => Started::Failed(panic_message("start function", panic.as_ref())),
    }
}

/// "`what` panicked: <payload>", for a caught panic.
pub(crate) fn panic_message(what: &str, panic: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = panic.downcast_ref::<&str>() {
        format!("{what} panicked: {s}")
    } else if let Some(s) = panic.downcast_ref::<String>() {
        format!("{what} panicked: {s}")
    } else {
        format!("{what} panicked")
    }
}

/// Stops a supervisor actor (its `post_stop` stops its children in order) and returns once it
/// has ended; a supervisor that has already ended returns at once.
pub(crate) async fn stop_supervisor(cell: &ActorCell) {
    stop_child(cell, Shutdown::Infinity).await;
}

/// Stops `cell` by its shutdown policy and returns once its actor has ended.
pub(crate) async fn stop_child(cell: &ActorCell, shutdown: Shutdown) -> StopOutcome {
    match shutdown {
        Shutdown::BrutalKill => {
            let _ = cell.kill_and_wait(None).await;
            StopOutcome::Killed
        }
        Shutdown::Timeout(timeout) => {
            match cell
                .stop_and_wait(Some(SHUTDOWN_REASON.to_string()), Some(timeout))
                .await
            {
                Err(RactorErr::Timeout) => {
                    let _ = cell.kill_and_wait(None).await;
                    StopOutcome::KilledAfterTimeout
                }
                Ok(()) => StopOutcome::Stopped,
                // The actor was already ending: wait for the end to complete.
                Err(_) => {
                    let _ = cell.wait(None).await;
                    StopOutcome::Stopped
                }
            }
        }
        Shutdown::Infinity => {
            if cell
                .stop_and_wait(Some(SHUTDOWN_REASON.to_string()), None)
                .await
                .is_err()
            {
                let _ = cell.wait(None).await;
            }
            StopOutcome::Stopped
        }
    }
}
