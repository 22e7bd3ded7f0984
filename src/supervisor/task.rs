//! Supervised tasks: a plain async function as a child, without writing an actor (Elixir's
//! `Task.Supervisor`).
//!
//! [`ChildSpec::task`] and [`ChildTemplate::task`] wrap the function in a small actor that runs
//! one call of it as a tokio task. The child ends when the call does: `Ok(())` is a normal exit,
//! an `Err` or a panic an abnormal one (its text is the exit's detail), so the child's restart
//! type decides what follows, as for any child. Stopping the child (shutdown, `terminate_child`,
//! a sibling's restart) cancels the call at its next `.await` and waits until it has ended; a
//! call that never yields is killed when the shutdown timeout runs out, and a killed child's
//! call is cancelled too.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use futures::future::BoxFuture;
use futures::FutureExt;
use ractor::{Actor, ActorProcessingErr, ActorRef};
use tokio::task::JoinHandle;

use super::spec::{ChildContext, ChildId, ChildSpec, ChildTemplate};
use crate::actors::panic_message;

/// One call of a task function, boxed.
type Call = BoxFuture<'static, Result<(), ActorProcessingErr>>;

/// What the running call tells its actor: how it ended.
struct Ended(Result<(), ActorProcessingErr>);

#[cfg(feature = "cluster")]
impl ractor::Message for Ended {}

/// The call's tokio task; cancelled when dropped, so a killed child's call ends too.
struct Running(Option<JoinHandle<()>>);

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(handle) = &self.0 {
            handle.abort();
        }
    }
}

/// The actor a task child runs as.
struct TaskActor;

#[cfg_attr(feature = "async-trait", ractor::async_trait)]
impl Actor for TaskActor {
    type Msg = Ended;
    type State = Running;
    type Arguments = Call;

    async fn pre_start(
        &self,
        myself: ActorRef<Ended>,
        call: Call,
    ) -> Result<Running, ActorProcessingErr> {
        let handle = tokio::spawn(async move {
            let ended = match AssertUnwindSafe(call).catch_unwind().await {
                Ok(result) => result,
                Err(panic) => Err(panic_message("the task", panic.as_ref()).into()),
            };
            let _ = myself.cast(Ended(ended));
        });
        Ok(Running(Some(handle)))
    }

    async fn handle(
        &self,
        myself: ActorRef<Ended>,
        Ended(result): Ended,
        running: &mut Running,
    ) -> Result<(), ActorProcessingErr> {
        running.0 = None; // it has ended: nothing to cancel
        result?;
        myself.stop(None);
        Ok(())
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<Ended>,
        running: &mut Running,
    ) -> Result<(), ActorProcessingErr> {
        if let Some(handle) = running.0.take() {
            handle.abort();
            let _ = handle.await; // returns once the call has been dropped
        }
        Ok(())
    }
}

fn call<Fut, E>(fut: Fut) -> Call
where
    Fut: Future<Output = Result<(), E>> + Send + 'static,
    E: Into<ActorProcessingErr>,
{
    fut.map(|result| result.map_err(Into::into)).boxed()
}

impl ChildSpec {
    /// A child that runs `task()`: one call per incarnation, restarted by its restart type
    /// (default permanent) when the call ends. `Ok(())` is a normal exit, an `Err` or a panic
    /// an abnormal one. Stopping the child cancels the call at its next `.await`.
    ///
    /// ```
    /// use std::time::Duration;
    /// use ractor_otp::prelude::*;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let sup = Supervisor::builder()
    ///     .child(ChildSpec::task("flush", || async {
    ///         loop {
    ///             tokio::time::sleep(Duration::from_secs(1)).await;
    ///             // flush buffers; an Err or a panic restarts the task
    ///         }
    ///         #[allow(unreachable_code)]
    ///         Ok::<(), std::io::Error>(())
    ///     }))
    ///     .spawn()
    ///     .await?;
    /// assert_eq!(sup.count_children().await?.active, 1);
    /// sup.stop().await; // cancels the loop at its sleep
    /// # Ok(())
    /// # }
    /// ```
    pub fn task<F, Fut, E>(id: impl Into<ChildId>, task: F) -> ChildSpec
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), E>> + Send + 'static,
        E: Into<ActorProcessingErr>,
    {
        let task = Arc::new(task);
        ChildSpec::new(id, move |ctx: ChildContext| {
            let run = call(task());
            async move { ctx.spawn_linked(TaskActor, run).await }
        })
    }
}

impl<Args: Clone + Send + Sync + 'static> ChildTemplate<Args> {
    /// Children of a dynamic supervisor that each run `task(args)` with their own arguments,
    /// as [`ChildSpec::task`] does (Elixir's `Task.Supervisor`).
    ///
    /// ```
    /// use ractor_otp::prelude::*;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let uploads = DynamicSupervisor::builder(
    ///     ChildTemplate::task(|path: String| async move {
    ///         // upload `path`; an Err retries it
    ///         Ok::<(), String>(())
    ///     })
    ///     .restart(Restart::Transient),
    /// )
    /// .spawn()
    /// .await?;
    /// uploads.start_child("a.log".to_string()).await?;
    /// uploads.stop().await;
    /// # Ok(())
    /// # }
    /// ```
    pub fn task<F, Fut, E>(task: F) -> ChildTemplate<Args>
    where
        F: Fn(Args) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), E>> + Send + 'static,
        E: Into<ActorProcessingErr>,
    {
        let task = Arc::new(task);
        ChildTemplate::new(move |ctx: ChildContext, args: Args| {
            let run = call(task(args));
            async move { ctx.spawn_linked(TaskActor, run).await }
        })
    }
}
