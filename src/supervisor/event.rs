//! Supervisor events: what a supervisor tells its subscribers.
//!
//! Subscribe with [`SupervisorBuilder::subscribe`](super::SupervisorBuilder::subscribe) (from the
//! first child start on) or [`SupervisorRef::subscribe`](super::SupervisorRef::subscribe). Every
//! subscriber gets every event, in order; nothing is dropped (the stream is unbounded, so read it).

use std::time::Duration;

use ractor::ActorId;
use tokio::sync::mpsc;

use super::spec::ChildId;
use crate::error::StartFailure;
use crate::exit::ExitReason;

/// How a child stopped by its supervisor went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum StopOutcome {
    /// It stopped when asked (its `post_stop` ran).
    Stopped,
    /// It was killed at once (`Shutdown::BrutalKill`).
    Killed,
    /// It did not stop within its shutdown timeout and was killed.
    KilledAfterTimeout,
    /// It did not end even when killed, within 5 s: a task that never yields (a handler
    /// spinning on the CPU) cannot be stopped by anyone. The supervisor went on without it; its
    /// task ends whenever it next yields, and a registry name it holds stays taken until then.
    Abandoned,
}

/// Why the supervisor stopped a child.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopCause {
    /// `terminate_child` through the API.
    Terminated,
    /// A bystander of a sibling's restart (one-for-all / rest-for-one).
    Restart,
    /// The supervisor is shutting down (stop, auto-shutdown, giving up, failed startup).
    Shutdown,
}

/// Something a supervisor did or saw.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SupervisorEvent {
    /// A child incarnation started. A generation above 1 means a restart (automatic, or
    /// `restart_child`).
    ChildStarted {
        /// The child.
        id: ChildId,
        /// Its incarnation (1, 2, ...).
        generation: u64,
        /// Its actor.
        actor: ActorId,
    },
    /// A child's start function returned `Ignore`.
    ChildIgnored {
        /// The child.
        id: ChildId,
    },
    /// A child's start failed.
    ChildStartFailed {
        /// The child.
        id: ChildId,
        /// The incarnation that failed to start.
        generation: u64,
        /// What happened.
        reason: StartFailure,
    },
    /// A child ended by itself.
    ChildExited {
        /// The child.
        id: ChildId,
        /// The incarnation that ended.
        generation: u64,
        /// How it ended.
        reason: ExitReason,
    },
    /// The supervisor stopped a child.
    ChildStopped {
        /// The child.
        id: ChildId,
        /// The incarnation stopped.
        generation: u64,
        /// Why.
        cause: StopCause,
        /// How it went.
        outcome: StopOutcome,
    },
    /// A restart was decided: it runs after `delay`. `restarts_left` is the intensity budget
    /// left in the current window.
    RestartScheduled {
        /// The child whose exit (or failed start) caused the restart.
        id: ChildId,
        /// The backoff delay (zero: at once).
        delay: Duration,
        /// Restarts left before the supervisor gives up.
        restarts_left: u32,
    },
    /// A child spec was deleted (a temporary child ended, or `delete_child`).
    ChildDeleted {
        /// The child.
        id: ChildId,
    },
    /// The intensity limit was exceeded: the supervisor stops its children and exits abnormally.
    GaveUp {
        /// The child whose restart broke the limit.
        id: ChildId,
        /// Restarts counted in the window.
        restarts: u32,
    },
    /// A significant child's exit stopped the supervisor.
    AutoShutdown {
        /// The significant child.
        id: ChildId,
    },
    /// The supervisor has stopped all its children and is ending.
    Stopped,
}

impl SupervisorEvent {
    /// The child the event is about; `None` for the supervisor's own `Stopped`.
    pub fn child(&self) -> Option<&ChildId> {
        match self {
            SupervisorEvent::ChildStarted { id, .. }
            | SupervisorEvent::ChildIgnored { id }
            | SupervisorEvent::ChildStartFailed { id, .. }
            | SupervisorEvent::ChildExited { id, .. }
            | SupervisorEvent::ChildStopped { id, .. }
            | SupervisorEvent::RestartScheduled { id, .. }
            | SupervisorEvent::ChildDeleted { id }
            | SupervisorEvent::GaveUp { id, .. }
            | SupervisorEvent::AutoShutdown { id } => Some(id),
            SupervisorEvent::Stopped => None,
        }
    }
}

/// One line a person can read: `wal exited (incarnation 2): panicked: disk full`.
impl std::fmt::Display for SupervisorEvent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SupervisorEvent::ChildStarted { id, generation, .. } => {
                write!(f, "{id} started (incarnation {generation})")
            }
            SupervisorEvent::ChildIgnored { id } => write!(f, "{id}'s start said Ignore"),
            SupervisorEvent::ChildStartFailed {
                id,
                generation,
                reason,
            } => write!(
                f,
                "{id} failed to start (incarnation {generation}): {reason}"
            ),
            SupervisorEvent::ChildExited {
                id,
                generation,
                reason,
            } => write!(f, "{id} exited (incarnation {generation}): {reason}"),
            SupervisorEvent::ChildStopped {
                id,
                generation,
                cause,
                outcome,
            } => {
                let why = match cause {
                    StopCause::Terminated => "terminated",
                    StopCause::Restart => "stopped for a sibling's restart",
                    StopCause::Shutdown => "stopped for shutdown",
                };
                let how = match outcome {
                    StopOutcome::Stopped => "",
                    StopOutcome::Killed => ", killed",
                    StopOutcome::KilledAfterTimeout => ", killed after its shutdown timeout",
                    StopOutcome::Abandoned => ", abandoned (it never yielded)",
                };
                write!(f, "{id} {why} (incarnation {generation}){how}")
            }
            SupervisorEvent::RestartScheduled {
                id,
                delay,
                restarts_left,
            } => {
                if delay.is_zero() {
                    write!(f, "restarting for {id}")?;
                } else {
                    write!(f, "restarting for {id} in {delay:?}")?;
                }
                write!(f, "; {restarts_left} more allowed in the window")
            }
            SupervisorEvent::ChildDeleted { id } => write!(f, "{id} deleted"),
            SupervisorEvent::GaveUp { id, restarts } => write!(
                f,
                "gave up: {id}'s restart made {restarts} in the window, over the limit"
            ),
            SupervisorEvent::AutoShutdown { id } => {
                write!(f, "significant child {id} ended: shutting down")
            }
            SupervisorEvent::Stopped => write!(f, "stopped"),
        }
    }
}

/// A subscription to a supervisor's events.
#[derive(Debug)]
pub struct EventStream {
    rx: mpsc::UnboundedReceiver<SupervisorEvent>,
}

impl EventStream {
    /// The next event; `None` once the supervisor has ended and every event was read.
    pub async fn recv(&mut self) -> Option<SupervisorEvent> {
        self.rx.recv().await
    }

    /// The next event if one is ready, without waiting.
    pub fn try_recv(&mut self) -> Option<SupervisorEvent> {
        self.rx.try_recv().ok()
    }
}

impl futures::Stream for EventStream {
    type Item = SupervisorEvent;

    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        self.rx.poll_recv(cx)
    }
}

/// The senders of all subscriptions; sending to none costs nothing.
#[derive(Debug, Clone, Default)]
pub(crate) struct Subscribers {
    senders: Vec<mpsc::UnboundedSender<SupervisorEvent>>,
}

impl Subscribers {
    pub(crate) fn is_empty(&self) -> bool {
        self.senders.is_empty()
    }

    pub(crate) fn subscribe(&mut self) -> EventStream {
        let (tx, rx) = mpsc::unbounded_channel();
        self.senders.push(tx);
        EventStream { rx }
    }

    /// Sends the event built by `make` to every live subscriber; builds nothing if there are none.
    pub(crate) fn emit(&mut self, make: impl FnOnce() -> SupervisorEvent) {
        if self.senders.is_empty() {
            return;
        }
        let event = make();
        self.senders.retain(|tx| tx.send(event.clone()).is_ok());
    }
}
