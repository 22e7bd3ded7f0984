//! How this crate's own actors (supervisors, pools, runners, workers) are spawned and stopped,
//! shared by every layer: spawning with a typed [`StartError`], stopping and waiting for the
//! end, and the text of a caught panic.

use ractor::{Actor, ActorCell, ActorRef, SpawnErr};

use crate::error::{StartError, StartFailure};
use crate::exit::SHUTDOWN_REASON;

/// Spawns one of our actors, linked to `parent` if given, and turns ractor's spawn error back
/// into our typed [`StartError`].
pub(crate) async fn spawn_actor<A: Actor>(
    actor: A,
    args: A::Arguments,
    name: Option<String>,
    parent: Option<ActorCell>,
) -> Result<ActorRef<A::Msg>, StartError> {
    let spawned = match parent {
        None => Actor::spawn(name, actor, args).await,
        Some(p) => Actor::spawn_linked(name, actor, args, p).await,
    };
    spawned.map(|(actor, _join)| actor).map_err(start_error)
}

/// Recovers our typed startup error from ractor's `SpawnErr`: the error our `pre_start`
/// returned, else what ractor said.
fn start_error(err: SpawnErr) -> StartError {
    match err {
        SpawnErr::StartupFailed(inner) => match inner.downcast::<StartError>() {
            Ok(e) => *e,
            Err(other) => StartError::Spawn(StartFailure::from_error(other)),
        },
        other => StartError::Spawn(StartFailure::from_spawn(other)),
    }
}

/// Asks an actor to stop (reason `"shutdown"`) and waits, as long as it takes, until it has
/// ended; an actor that has already ended returns at once. A supervisor stops its children in
/// order before it ends.
pub(crate) async fn stop_actor(cell: &ActorCell) {
    if cell
        .stop_and_wait(Some(SHUTDOWN_REASON.to_string()), None)
        .await
        .is_err()
    {
        let _ = cell.wait(None).await;
    }
}

/// "`what` panicked: <payload>", for a caught panic.
pub(crate) fn panic_message(what: &str, panic: &(dyn std::any::Any + Send)) -> String {
    format!("{what} panicked: {}", panic_text(panic))
}

/// A caught panic's message (its `&str` or `String` payload).
pub(crate) fn panic_text(panic: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = panic.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s.clone()
    } else {
        "(a payload that is not a string)".to_string()
    }
}
