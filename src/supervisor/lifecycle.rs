//! Starting and stopping one child: the start call and OTP's shutdown protocol.
//!
//! Shared by [`Supervisor`](super::Supervisor) and
//! [`DynamicSupervisor`](super::DynamicSupervisor). A start function's panic is caught and
//! becomes a failed start; a started child that is not linked to the supervisor is linked.
//! Stopping follows the child's [`Shutdown`]: ask, wait up to the timeout, then kill; every
//! wait ends when the child's actor has fully ended, so a restarted child never overlaps its
//! previous incarnation (and a registry name is free again), except for a child that does not
//! end even when killed (a task that never yields): after [`KILL_WAIT`] the supervisor stops
//! waiting for it rather than hang.

use std::panic::AssertUnwindSafe;
use std::time::Duration;

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures::future::CatchUnwind;
use futures::FutureExt;
use ractor::{ActorCell, ActorStatus, RactorErr};

use super::event::StopOutcome;
use futures::future::BoxFuture;

use super::spec::{ChildContext, ChildSpec, ChildStart, Shutdown, StartResult};
use crate::actors::{panic_text, stop_actor};
use crate::error::StartFailure;
use crate::exit::SHUTDOWN_REASON;
use crate::observe::{Probe, ProbeSlot, TreeLink};

/// What a start attempt gave.
pub(crate) enum Started {
    Running(ActorCell),
    Ignored,
    Failed(StartFailure),
}

/// Runs a start function's future, turning a panic or an `Err` into [`Started::Failed`] with
/// what happened.
/// One start of a child, begun: its start function called with its context (the supervisor
/// to link to, its id, incarnation and name, and for an observable child where to leave its
/// probe and its place in the tree). The supervisor runs it when it starts or restarts a
/// child; a caller of a dynamic supervisor's `start_child` polls it on its own side.
pub(crate) struct Starting {
    start: CatchUnwind<AssertUnwindSafe<BoxFuture<'static, StartResult>>>,
    supervisor: ActorCell,
    probe: Option<ProbeSlot>,
    span: tracing::Span,
}

impl Starting {
    /// Calls `spec`'s start function for its incarnation `generation`; the start runs in a
    /// `child` span under the current one.
    pub(crate) fn new(
        spec: &ChildSpec,
        generation: u64,
        supervisor: ActorCell,
        tree: &TreeLink,
    ) -> Starting {
        let probe = spec.policy.observable.then(ProbeSlot::default);
        let ctx = ChildContext {
            supervisor: supervisor.clone(),
            id: spec.id.clone(),
            generation,
            name: spec.policy.name.clone(),
            probe: probe.clone(),
            tree: probe
                .is_some()
                .then(|| tree.place_for(&spec.id, generation)),
        };
        // A start function that panics before it returns its future fails like one whose
        // future panics.
        let start = std::panic::catch_unwind(AssertUnwindSafe(|| (spec.start)(ctx)))
            .unwrap_or_else(|panic| Box::pin(async move { std::panic::resume_unwind(panic) }));
        Starting {
            start: AssertUnwindSafe(start).catch_unwind(),
            supervisor,
            probe,
            span: tracing::info_span!("child", id = %spec.id, generation),
        }
    }

    /// Drives the start; once it has ended: how (a start function's panic is a failed start;
    /// a started child not linked to the supervisor is linked), and the probe an observable
    /// child left. Not to be polled again after that.
    pub(crate) fn poll_start(&mut self, cx: &mut Context<'_>) -> Poll<(Started, Option<Probe>)> {
        let outcome = {
            let _in_span = self.span.enter();
            std::task::ready!(Pin::new(&mut self.start).poll(cx))
        };
        let started = settle(outcome, &self.supervisor);
        Poll::Ready((
            started,
            self.probe.take().and_then(|slot| slot.get().cloned()),
        ))
    }

    /// Runs the start to its end (see [`poll_start`](Self::poll_start)).
    pub(crate) async fn run(mut self) -> (Started, Option<Probe>) {
        std::future::poll_fn(|cx| self.poll_start(cx)).await
    }
}

/// What a start function's outcome means for the supervisor.
fn settle(outcome: std::thread::Result<StartResult>, supervisor: &ActorCell) -> Started {
    match outcome {
        Ok(Ok(ChildStart::Started(cell))) => {
            let linked = cell
                .try_get_supervisor()
                .is_some_and(|s| s.get_id() == supervisor.get_id());
            if !linked {
                cell.link(supervisor.clone());
            }
            if cell.get_status() >= ActorStatus::Stopping {
                return Started::Failed(StartFailure::EndedDuringStart);
            }
            Started::Running(cell)
        }
        Ok(Ok(ChildStart::Ignore)) => Started::Ignored,
        Ok(Err(err)) => Started::Failed(StartFailure::from_error(err)),
        Err(panic) => Started::Failed(StartFailure::Panicked(panic_text(panic.as_ref()))),
    }
}

/// How long the supervisor waits for a killed child to end. A kill takes effect at the child's
/// next `.await`, at once for any actor that yields; only a task that never yields (a handler
/// spinning on the CPU) takes longer, and nothing can stop it sooner.
pub(crate) const KILL_WAIT: Duration = Duration::from_secs(5);

/// Stops `cell` by its shutdown policy and returns once its actor has ended, or, if it does not
/// end even when killed, once [`KILL_WAIT`] has passed ([`StopOutcome::Abandoned`]).
pub(crate) async fn stop_child(cell: &ActorCell, shutdown: Shutdown) -> StopOutcome {
    match shutdown {
        Shutdown::BrutalKill => kill(cell, StopOutcome::Killed).await,
        Shutdown::Timeout(timeout) => {
            match cell
                .stop_and_wait(Some(SHUTDOWN_REASON.to_string()), Some(timeout))
                .await
            {
                Err(RactorErr::Timeout) => kill(cell, StopOutcome::KilledAfterTimeout).await,
                Ok(()) => StopOutcome::Stopped,
                // The actor was already ending: wait for the end to complete.
                Err(_) => {
                    let _ = cell.wait(None).await;
                    StopOutcome::Stopped
                }
            }
        }
        Shutdown::Infinity => {
            stop_actor(cell).await;
            StopOutcome::Stopped
        }
    }
}

/// Kills `cell` and waits up to [`KILL_WAIT`] for it to end: `killed` if it did.
async fn kill(cell: &ActorCell, killed: StopOutcome) -> StopOutcome {
    match cell.kill_and_wait(Some(KILL_WAIT)).await {
        Err(RactorErr::Timeout) => {
            tracing::error!(
                actor = %cell.get_id(),
                "child did not end within {KILL_WAIT:?} of being killed (a task that never \
                 yields?); no longer waiting for it"
            );
            StopOutcome::Abandoned
        }
        _ => killed,
    }
}
