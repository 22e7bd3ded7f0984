//! Supervision trees: a [`Supervisor`] holds an ordered list of children and restarts them by
//! its [`Strategy`] (OTP's `one_for_one`, `one_for_all`, `rest_for_one`); a
//! [`DynamicSupervisor`] holds any number of children made from one [`ChildTemplate`], each
//! with its own arguments (OTP's `simple_one_for_one`). Both are the same supervisor underneath:
//! the same restart decision, intensity limit, backoff, events and shutdown protocol.
//!
//! * **Say what a child is** with a [`ChildSpec`]: [`ChildSpec::from_actor`] for any ractor
//!   actor, [`ChildSpec::new`] for an async start function, [`ChildSpec::task`] for a plain
//!   async function, or a nested supervisor or pool builder's `into_child_spec`. Its
//!   [`Restart`] type, [`Shutdown`], [`ChildKind`], `significant` flag and [`Backoff`] say what
//!   happens when it ends and how it is stopped.
//! * **Build and spawn** with [`Supervisor::builder()`] or [`DynamicSupervisor::builder`]:
//!   strategy, intensity and period, [`AutoShutdown`], a label, a registry name; `spawn` or
//!   `spawn_linked(parent)`. A child that fails at startup unwinds the ones started before it
//!   and the spawn fails with a [`StartError`] that says which child and why
//!   ([`StartFailure`](crate::error::StartFailure)).
//! * **Run-time calls** on the cheap, cloneable handle ([`SupervisorRef`],
//!   [`DynamicSupervisorRef`]): start, terminate, restart and delete children, list and count
//!   them ([`ChildInfo`], [`ChildCounts`]), look up a child's live `ActorRef`, stop the
//!   supervisor in order.
//! * **Watch** a supervisor's [`SupervisorEvent`]s through an [`EventStream`]: children started,
//!   exited (with their [`ExitReason`](crate::exit::ExitReason)), stopped (with a
//!   [`StopOutcome`]), restarts scheduled with the budget left, giving up, auto-shutdown.
//!
//! A supervisor that exceeds its restart intensity stops its children and exits abnormally with
//! [`IntensityExceeded`](crate::error::IntensityExceeded), so its parent's strategy decides what
//! follows.

/// The settings both supervisor builders take, written once: intensity, period,
/// auto-shutdown, label, registry name, an early subscription, and turning the builder into a
/// child spec. `$default_label` is the label used when none is given and it is not nested.
macro_rules! common_settings {
    ($default_label:literal) => {
        /// At most `intensity` restarts within [`period`](Self::period) (default 1); one more
        /// and the supervisor gives up.
        pub fn intensity(mut self, intensity: u32) -> Self {
            self.settings.flags.intensity = intensity;
            self
        }

        /// The sliding window of the intensity limit (default 5 s; must not be zero).
        pub fn period(mut self, period: std::time::Duration) -> Self {
            self.settings.flags.period = period;
            self
        }

        /// When significant children stop the supervisor (default never).
        pub fn auto_shutdown(mut self, auto_shutdown: $crate::supervisor::AutoShutdown) -> Self {
            self.settings.flags.auto_shutdown = auto_shutdown;
            self
        }

        #[doc = concat!(
                    "A human name for logs, tracing spans and errors (default: the child id when ",
                    "nested, else the registry name if one is given, else `\"", $default_label, "\"`). ",
            "Not a registry name."
                )]
        pub fn label(mut self, label: impl Into<String>) -> Self {
            self.settings.label = Some(label.into());
            self
        }

        /// Registers the supervisor actor under a ractor registry name (global; off by
        /// default).
        pub fn registered_name(mut self, name: impl Into<String>) -> Self {
            self.settings.registered_name = Some(name.into());
            self
        }

        /// Subscribes to the supervisor's events from its start on. When the builder is used
        /// as a child spec, the stream receives the events of every incarnation.
        pub fn subscribe(&mut self) -> $crate::supervisor::EventStream {
            self.settings.subscribers.subscribe()
        }

        /// Subscribes to the events of the whole tree under this supervisor from its start
        /// on, for every incarnation it makes ([`TreeEventStream`](crate::observe::TreeEventStream)).
        pub fn subscribe_tree(&mut self) -> $crate::observe::TreeEventStream {
            self.settings.tree_sink.subscribe()
        }

        /// Turns this supervisor into a child spec (kind `Supervisor`, shutdown `Infinity`),
        /// so trees nest to any depth. Each start spawns a fresh supervisor from this builder.
        pub fn into_child_spec(
            self,
            id: impl Into<$crate::supervisor::ChildId>,
        ) -> $crate::supervisor::ChildSpec {
            $crate::supervisor::nested_spec(
                id,
                self,
                |b| &mut b.settings,
                |b, parent| async move {
                    let handle = b.spawn_linked(parent).await?;
                    Ok((handle.get_cell(), handle.probe()))
                },
            )
        }
    };
}

/// The calls both supervisor handles answer alike, written once. `$stop_doc` says how the
/// supervisor stops its children.
macro_rules! common_handle {
    ($stop_doc:literal) => {
        /// The supervisor's actor cell (link to it, watch it, use it as a parent).
        pub fn get_cell(&self) -> ractor::ActorCell {
            self.actor.get_cell()
        }

        async fn request<T: Send + 'static>(
            &self,
            make: impl FnOnce(ractor::RpcReplyPort<T>) -> $crate::supervisor::core::Request,
        ) -> Result<T, $crate::error::SupervisorError> {
            $crate::supervisor::core::call(&self.actor, |reply| make(reply).into()).await
        }

        /// Every child in start order (oldest first), with its state.
        pub async fn which_children(
            &self,
        ) -> Result<Vec<$crate::supervisor::ChildInfo>, $crate::error::SupervisorError> {
            self.request($crate::supervisor::core::Request::WhichChildren)
                .await
        }

        /// OTP's `count_children`: specs held (a dynamic supervisor holds one, its template),
        /// children running, and children by kind.
        pub async fn count_children(
            &self,
        ) -> Result<$crate::supervisor::ChildCounts, $crate::error::SupervisorError> {
            self.request($crate::supervisor::core::Request::CountChildren)
                .await
        }

        /// A snapshot of the whole tree under this supervisor: every nested supervisor, pool,
        /// job runner and child, with its state, incarnation and restarts, and each
        /// supervisor's intensity budget left (see [`TreeNode`](crate::observe::TreeNode);
        /// `Display` draws it). The walk asks the nested nodes at once, each bounded by
        /// [`PROBE_TIMEOUT`](crate::observe::PROBE_TIMEOUT).
        pub async fn tree(
            &self,
        ) -> Result<$crate::observe::TreeNode, $crate::error::SupervisorError> {
            let view = self
                .request($crate::supervisor::core::Request::Snapshot)
                .await?;
            let name = view.label.clone();
            let observed = view.observe(&name).await;
            Ok($crate::observe::TreeNode::root(name, observed))
        }

        /// A probe into this supervisor, for its parent's tree walks.
        pub(crate) fn probe(&self) -> $crate::observe::Probe {
            $crate::supervisor::core::probe(self.actor.clone())
        }

        /// Subscribes to the events of every supervisor in the tree under this one, from now
        /// on: each a [`TreeEvent`](crate::observe::TreeEvent) with the emitting supervisor's
        /// path, incarnation and time. Nested supervisors restarted or started later report
        /// to it too.
        pub async fn subscribe_tree(
            &self,
        ) -> Result<$crate::observe::TreeEventStream, $crate::error::SupervisorError> {
            self.request($crate::supervisor::core::Request::SubscribeTree)
                .await
        }

        /// Subscribes to the supervisor's events from now on.
        pub async fn subscribe(
            &self,
        ) -> Result<$crate::supervisor::EventStream, $crate::error::SupervisorError> {
            self.request($crate::supervisor::core::Request::Subscribe)
                .await
        }

        #[doc = $stop_doc]
        ///
        /// Returns once the supervisor has ended (exit reason `"shutdown"`); stopping a
        /// stopped supervisor returns at once.
        pub async fn stop(&self) {
            $crate::actors::stop_actor(&self.actor.get_cell()).await;
        }

        /// Waits until the supervisor has ended (stopped, auto-shut-down or gave up).
        pub async fn wait(&self) {
            let _ = self.actor.get_cell().wait(None).await;
        }

        /// Whether the supervisor actor is still running.
        pub fn is_alive(&self) -> bool {
            self.actor.get_status() < ractor::ActorStatus::Stopping
        }
    };
}

mod actor;
mod backoff;
mod children;
mod core;
mod dynamic;
mod event;
mod intensity;
mod lifecycle;
mod spec;
mod strategy;
mod task;

use ractor::{ActorCell, ActorRef, Message};

pub use self::actor::SupervisorMsg;
pub use self::backoff::Backoff;
pub use self::children::{ChildCounts, ChildInfo, ChildStatus};
pub use self::dynamic::{
    DynamicSupervisor, DynamicSupervisorBuilder, DynamicSupervisorMsg, DynamicSupervisorRef,
};
pub use self::event::{EventStream, StopCause, StopOutcome, SupervisorEvent};
pub use self::spec::{
    AutoShutdown, ChildContext, ChildId, ChildKind, ChildSpec, ChildStart, ChildTemplate,
    IntoChildSpec, Restart, Shutdown, StartResult, Strategy, SupervisorFlags,
    DEFAULT_WORKER_SHUTDOWN,
};

use self::actor::{SupervisorActor, SupervisorArgs};
use self::core::{ChildRef, Core, Request};
use self::event::Subscribers;
use self::spec::validate_children;
use crate::actors::spawn_actor;
use crate::error::{StartError, SupervisorError};

/// Entry point for building a supervisor: `Supervisor::builder()`.
///
/// ```
/// use std::time::Duration;
/// use ractor::{Actor, ActorProcessingErr, ActorRef};
/// use ractor_otp::prelude::*;
///
/// #[derive(Clone)]
/// struct Worker;
/// # #[cfg_attr(feature = "async-trait", ractor_otp::ractor::async_trait)]
/// impl Actor for Worker {
///     type Msg = ();
///     type State = ();
///     type Arguments = ();
///     async fn pre_start(&self, _: ActorRef<()>, _: ()) -> Result<(), ActorProcessingErr> {
///         Ok(())
///     }
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let sup = Supervisor::builder()
///     .strategy(Strategy::RestForOne)
///     .intensity(3)
///     .period(Duration::from_secs(10))
///     .child(ChildSpec::from_actor("db", Worker, ()))
///     .child(ChildSpec::from_actor("api", Worker, ()))
///     .spawn()
///     .await?;
/// assert_eq!(sup.count_children().await?.active, 2);
/// sup.stop().await; // stops api, then db
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone, Copy)]
pub struct Supervisor;

impl Supervisor {
    /// A builder with OTP's default flags and no children.
    pub fn builder() -> SupervisorBuilder {
        SupervisorBuilder::default()
    }
}

/// Configures and spawns a [`Supervisor`]. Cloneable: a builder turned into a child spec
/// ([`into_child_spec`](Self::into_child_spec)) spawns a fresh supervisor at every restart.
#[derive(Debug, Clone, Default)]
pub struct SupervisorBuilder {
    settings: Settings,
    specs: Vec<ChildSpec>,
}

impl SupervisorBuilder {
    common_settings!("supervisor");

    /// Places the supervisor in a tree's event stream (a pool's workers, at the pool's place).
    pub(crate) fn tree_place(mut self, place: Option<crate::observe::TreePlace>) -> Self {
        self.settings.tree_place = place;
        self
    }

    /// Sets the restart strategy (default one-for-one).
    pub fn strategy(mut self, strategy: Strategy) -> Self {
        self.settings.flags.strategy = strategy;
        self
    }

    /// Sets all flags at once.
    pub fn flags(mut self, flags: SupervisorFlags) -> Self {
        self.settings.flags = flags;
        self
    }

    /// Appends a child; children start in the order they are added.
    pub fn child(mut self, spec: ChildSpec) -> Self {
        self.specs.push(spec);
        self
    }

    /// Appends several children, in order.
    pub fn children(mut self, specs: impl IntoIterator<Item = ChildSpec>) -> Self {
        self.specs.extend(specs);
        self
    }

    /// Checks flags and child specs without spawning anything.
    pub fn validate(&self) -> Result<(), crate::error::SpecError> {
        validate_children(&self.specs, &self.settings.flags)
    }

    /// Spawns the supervisor (unlinked) and starts its children in order. Returns once every
    /// child has started, or the first failure after unwinding the started ones.
    pub async fn spawn(self) -> Result<SupervisorRef, StartError> {
        self.spawn_inner(None).await
    }

    /// Spawns the supervisor linked to `parent` (any ractor actor), which then gets its
    /// supervision events: an abnormal exit carries [`IntensityExceeded`](crate::error::IntensityExceeded)
    /// when it gave up.
    pub async fn spawn_linked(self, parent: ActorCell) -> Result<SupervisorRef, StartError> {
        self.spawn_inner(Some(parent)).await
    }

    async fn spawn_inner(self, parent: Option<ActorCell>) -> Result<SupervisorRef, StartError> {
        self.validate()?;
        let (core, name) = self.settings.into_core("supervisor", None);
        let args = SupervisorArgs {
            core,
            specs: self.specs,
        };
        let actor = spawn_actor(SupervisorActor, args, name, parent).await?;
        Ok(SupervisorRef { actor })
    }
}

impl IntoChildSpec for SupervisorBuilder {
    fn into_child_spec(self, id: ChildId) -> ChildSpec {
        SupervisorBuilder::into_child_spec(self, id)
    }
}

/// What both supervisor builders configure alike.
#[derive(Debug, Clone, Default)]
pub(crate) struct Settings {
    pub(crate) flags: SupervisorFlags,
    pub(crate) label: Option<String>,
    pub(crate) registered_name: Option<String>,
    pub(crate) subscribers: Subscribers,
    /// The tree subscriptions of every incarnation this builder makes.
    pub(crate) tree_sink: std::sync::Arc<crate::observe::TreeSink>,
    /// The place its parent gave it in the tree (nested), or none (a root).
    pub(crate) tree_place: Option<crate::observe::TreePlace>,
}

impl Settings {
    /// The supervisor these settings make, and the registry name to spawn it under. Its label
    /// is the one given, else its registry name, else `default_label`.
    fn into_core(
        self,
        default_label: &str,
        dynamic: Option<self::core::Dynamic>,
    ) -> (Core, Option<String>) {
        let label = self
            .label
            .or_else(|| self.registered_name.clone())
            .unwrap_or_else(|| default_label.to_string());
        let tree = match self.tree_place {
            Some(place) => crate::observe::TreeLink::at(place, self.tree_sink),
            None => crate::observe::TreeLink::root(label.clone(), self.tree_sink),
        };
        let core = Core::new(self.flags, label, self.subscribers, tree, dynamic);
        (core, self.registered_name)
    }
}

/// A child spec of kind `Supervisor` that spawns a fresh supervisor from `builder` at every
/// start, labelled by the child's id unless the builder has a label, and registered under the
/// spec's name if it has one.
pub(crate) fn nested_spec<B, F, Fut>(
    id: impl Into<ChildId>,
    builder: B,
    settings: fn(&mut B) -> &mut Settings,
    spawn: F,
) -> ChildSpec
where
    B: Clone + Send + Sync + 'static,
    F: Fn(B, ActorCell) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = Result<(ActorCell, crate::observe::Probe), StartError>>
        + Send
        + 'static,
{
    ChildSpec::new(id, move |ctx: ChildContext| {
        let mut builder = builder.clone();
        let s = settings(&mut builder);
        if s.label.is_none() {
            s.label = Some(ctx.id().to_string());
        }
        if let Some(name) = ctx.name() {
            s.registered_name = Some(name.to_string());
        }
        s.tree_place = ctx.tree.clone();
        let started = spawn(builder, ctx.supervisor().clone());
        async move {
            let (cell, probe) = started.await?;
            ctx.offer_probe(probe);
            Ok(ChildStart::Started(cell))
        }
    })
    .kind(ChildKind::Supervisor)
    .observable()
}

/// A handle to a running [`Supervisor`]: cheap to clone, like ractor's `ActorRef`.
///
/// Every call is a request to the supervisor actor; a call to a supervisor that has stopped
/// returns [`SupervisorError::SupervisorStopped`] rather than hanging.
#[derive(Debug, Clone)]
pub struct SupervisorRef {
    actor: ActorRef<SupervisorMsg>,
}

impl SupervisorRef {
    common_handle!(
        "Stops the supervisor in order: children in reverse start order, each by its shutdown \
         policy, then the supervisor itself."
    );

    /// Wraps a cell if it is a ractor-otp supervisor (e.g. a nested supervisor's cell).
    pub fn from_cell(cell: ActorCell) -> Option<SupervisorRef> {
        if cell.is_message_type_of::<SupervisorMsg>() == Some(true) {
            Some(SupervisorRef { actor: cell.into() })
        } else {
            None
        }
    }

    /// The supervisor's typed actor ref.
    pub fn actor_ref(&self) -> &ActorRef<SupervisorMsg> {
        &self.actor
    }

    /// This supervisor's part of a tree walk at `path`; `None` once it has stopped.
    pub(crate) async fn observe(&self, path: &str) -> Option<crate::observe::Observed> {
        let view = self.request(self::core::Request::Snapshot).await.ok()?;
        Some(view.observe(path).await)
    }

    /// Gives up on the running incarnation `actor` of a child that cannot be stopped (a task
    /// that never yields): it is unlinked and killed without waiting, and handled as an
    /// abnormal exit (restart, intensity) at once. Ignored if `actor` is no longer a child.
    pub(crate) fn abandon_child(&self, actor: ractor::ActorId, reason: String) {
        let _ = self
            .actor
            .cast(SupervisorMsg(Request::Abandon { actor, reason }));
    }

    /// Adds a child at the end of the start order and starts it. `Ok(None)` if its start said
    /// `Ignore` (the spec is kept unless temporary).
    pub async fn start_child(&self, spec: ChildSpec) -> Result<Option<ActorCell>, SupervisorError> {
        self.request(|r| Request::StartChild(spec, r)).await?
    }

    /// Stops a child by its shutdown policy and keeps its spec (a temporary spec is deleted).
    /// Idempotent; cancels a pending restart; never triggers a restart or auto-shutdown.
    pub async fn terminate_child(&self, id: impl Into<ChildId>) -> Result<(), SupervisorError> {
        let id = id.into();
        self.request(|r| Request::TerminateChild(ChildRef::Id(id), r))
            .await?
    }

    /// Starts a child that is not running from its kept spec (not counted toward intensity).
    pub async fn restart_child(
        &self,
        id: impl Into<ChildId>,
    ) -> Result<Option<ActorCell>, SupervisorError> {
        let id = id.into();
        self.request(|r| Request::RestartChild(id, r)).await?
    }

    /// Deletes the spec of a child that is not running.
    pub async fn delete_child(&self, id: impl Into<ChildId>) -> Result<(), SupervisorError> {
        let id = id.into();
        self.request(|r| Request::DeleteChild(id, r)).await?
    }

    /// The cell of a child's live incarnation, looked up at each call. A child that has just
    /// ended, before the supervisor has handled its exit, is reported `NotRunning` (not its
    /// dead cell); ask again to get the next incarnation.
    pub async fn child(&self, id: impl Into<ChildId>) -> Result<ActorCell, SupervisorError> {
        let id = id.into();
        self.request(|r| Request::LookupChild(id, r)).await?
    }

    /// The typed `ActorRef` of a child's live incarnation; `WrongType` if the child's actor
    /// takes another message type.
    pub async fn child_ref<M: Message>(
        &self,
        id: impl Into<ChildId>,
    ) -> Result<ActorRef<M>, SupervisorError> {
        let id = id.into();
        let cell = self.child(id.clone()).await?;
        if cell.is_message_type_of::<M>() == Some(false) {
            return Err(SupervisorError::WrongType {
                id,
                expected: std::any::type_name::<M>(),
            });
        }
        Ok(cell.into())
    }

    /// The handle of a nested supervisor child.
    pub async fn child_supervisor(
        &self,
        id: impl Into<ChildId>,
    ) -> Result<SupervisorRef, SupervisorError> {
        let actor = self.child_ref::<SupervisorMsg>(id).await?;
        Ok(SupervisorRef { actor })
    }

    /// The handle of a nested dynamic supervisor child whose children take `Args`.
    pub async fn child_dynamic<Args: Clone + Send + Sync + 'static>(
        &self,
        id: impl Into<ChildId>,
    ) -> Result<DynamicSupervisorRef<Args>, SupervisorError> {
        let id = id.into();
        let cell = self.child(id.clone()).await?;
        DynamicSupervisorRef::from_cell(cell).ok_or(SupervisorError::WrongType {
            id,
            expected: std::any::type_name::<DynamicSupervisorMsg<Args>>(),
        })
    }
}
