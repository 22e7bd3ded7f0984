//! The dynamic supervisor: OTP's `simple_one_for_one`.
//!
//! One [`ChildTemplate`], children added at run time with per-child arguments, an optional
//! `max_children`. It is the same supervisor as [`Supervisor`](super::Supervisor), one-for-one:
//! the same intensity window, backoff, events, significant children and auto-shutdown. What
//! differs is what OTP guards with `?is_simple`: each child is started from the template with
//! its own arguments (and restarted with them), is addressed by its cell, is forgotten when it
//! ends without a restart (a transient child's normal exit, any temporary exit), and all
//! children are stopped **in parallel** at shutdown.

use std::fmt;
use std::marker::PhantomData;

use ractor::{Actor, ActorCell, ActorProcessingErr, ActorRef, RpcReplyPort, SupervisionEvent};
use tracing::Instrument;

use super::core::{self, ChildRef, Core, Dynamic, Request};
use super::spec::{ChildId, ChildSpec, ChildTemplate};
use super::Settings;
use crate::actors::spawn_actor;
use crate::error::{SpecError, StartError, SupervisorError};

/// Entry point: `DynamicSupervisor::builder(template)`.
///
/// ```
/// # use ractor::{Actor, ActorProcessingErr, ActorRef};
/// # use ractor_otp::prelude::*;
/// # #[derive(Clone)] struct Session;
/// # #[cfg_attr(feature = "async-trait", ractor_otp::ractor::async_trait)]
/// # impl Actor for Session {
/// #     type Msg = (); type State = (); type Arguments = u64;
/// #     async fn pre_start(&self, _: ActorRef<()>, _: u64) -> Result<(), ActorProcessingErr> { Ok(()) }
/// # }
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let sessions = DynamicSupervisor::builder(ChildTemplate::from_actor(Session))
///     .max_children(10_000)
///     .spawn()
///     .await?;
/// let cell = sessions.start_child(42).await?.expect("started");
/// sessions.terminate_child(&cell).await?;
/// sessions.stop().await;
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone, Copy)]
pub struct DynamicSupervisor;

impl DynamicSupervisor {
    /// A builder for children made from `template`.
    pub fn builder<Args: Clone + Send + Sync + 'static>(
        template: ChildTemplate<Args>,
    ) -> DynamicSupervisorBuilder<Args> {
        DynamicSupervisorBuilder {
            template,
            settings: Settings::default(),
            max_children: None,
        }
    }
}

/// Configures and spawns a [`DynamicSupervisor`].
#[derive(Debug, Clone)]
pub struct DynamicSupervisorBuilder<Args> {
    template: ChildTemplate<Args>,
    settings: Settings,
    max_children: Option<usize>,
}

impl<Args: Clone + Send + Sync + 'static> DynamicSupervisorBuilder<Args> {
    common_settings!("dynamic_supervisor");

    /// At most this many children (running or restarting); `start_child` beyond it fails with
    /// [`SupervisorError::MaxChildren`]. Default: no limit.
    pub fn max_children(mut self, max: usize) -> Self {
        self.max_children = Some(max);
        self
    }

    /// Checks the configuration: the period, `max_children`, and the template against the
    /// auto-shutdown setting (errors name the child `template`).
    pub fn validate(&self) -> Result<(), SpecError> {
        self.settings.flags.validate()?;
        if self.max_children == Some(0) {
            return Err(SpecError::ZeroMaxChildren);
        }
        self.template.validate(self.settings.flags.auto_shutdown)
    }

    /// Spawns the supervisor, unlinked, with no children.
    pub async fn spawn(self) -> Result<DynamicSupervisorRef<Args>, StartError> {
        self.spawn_inner(None).await
    }

    /// Spawns the supervisor linked to `parent`.
    pub async fn spawn_linked(
        self,
        parent: ActorCell,
    ) -> Result<DynamicSupervisorRef<Args>, StartError> {
        self.spawn_inner(Some(parent)).await
    }

    async fn spawn_inner(
        self,
        parent: Option<ActorCell>,
    ) -> Result<DynamicSupervisorRef<Args>, StartError> {
        self.validate()?;
        let dynamic = Dynamic {
            max_children: self.max_children,
        };
        let (core, name) = self.settings.into_core("dynamic_supervisor", Some(dynamic));
        let state = DynState {
            core,
            template: self.template,
        };
        let actor = DynActor::<Args>(PhantomData);
        let actor = spawn_actor(actor, state, name, parent).await?;
        Ok(DynamicSupervisorRef { actor })
    }
}

impl<Args: Clone + Send + Sync + 'static> super::IntoChildSpec for DynamicSupervisorBuilder<Args> {
    fn into_child_spec(self, id: ChildId) -> ChildSpec {
        DynamicSupervisorBuilder::into_child_spec(self, id)
    }
}

/// A message to a dynamic supervisor. Opaque: use [`DynamicSupervisorRef`].
pub struct DynamicSupervisorMsg<Args>(DynRequest<Args>);

#[cfg(feature = "cluster")]
impl<Args: Send + 'static> ractor::Message for DynamicSupervisorMsg<Args> {}

impl<Args> From<Request> for DynamicSupervisorMsg<Args> {
    fn from(request: Request) -> Self {
        DynamicSupervisorMsg(DynRequest::Core(request))
    }
}

enum DynRequest<Args> {
    /// Start a child from the template with these arguments.
    StartChild(
        Args,
        RpcReplyPort<Result<Option<ActorCell>, SupervisorError>>,
    ),
    /// Anything a static supervisor serves too.
    Core(Request),
}

struct DynActor<Args>(PhantomData<fn() -> Args>);

struct DynState<Args> {
    core: Core,
    template: ChildTemplate<Args>,
}

#[cfg_attr(feature = "async-trait", ractor::async_trait)]
impl<Args: Clone + Send + Sync + 'static> Actor for DynActor<Args> {
    type Msg = DynamicSupervisorMsg<Args>;
    type State = DynState<Args>;
    type Arguments = DynState<Args>;

    async fn pre_start(
        &self,
        _myself: ActorRef<Self::Msg>,
        state: DynState<Args>,
    ) -> Result<DynState<Args>, ActorProcessingErr> {
        Ok(state)
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<Self::Msg>,
        state: &mut DynState<Args>,
    ) -> Result<(), ActorProcessingErr> {
        let span = state.core.span();
        state.core.shutdown().instrument(span).await;
        Ok(())
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        DynamicSupervisorMsg(request): Self::Msg,
        state: &mut DynState<Args>,
    ) -> Result<(), ActorProcessingErr> {
        let request = match request {
            DynRequest::StartChild(args, reply) => {
                let spec = state.template.spec_for(state.core.next_dynamic_id(), args);
                Request::StartChild(spec, reply)
            }
            DynRequest::Core(request) => request,
        };
        state.core.handle_request(&myself, request).await
    }

    async fn handle_supervisor_evt(
        &self,
        myself: ActorRef<Self::Msg>,
        event: SupervisionEvent,
        state: &mut DynState<Args>,
    ) -> Result<(), ActorProcessingErr> {
        state.core.handle_exit(&myself, event).await
    }
}

/// A handle to a running [`DynamicSupervisor`]: cheap to clone.
pub struct DynamicSupervisorRef<Args> {
    actor: ActorRef<DynamicSupervisorMsg<Args>>,
}

impl<Args> Clone for DynamicSupervisorRef<Args> {
    fn clone(&self) -> Self {
        DynamicSupervisorRef {
            actor: self.actor.clone(),
        }
    }
}

impl<Args> fmt::Debug for DynamicSupervisorRef<Args> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DynamicSupervisorRef")
            .field("actor", &self.actor.get_id())
            .finish()
    }
}

impl<Args: Clone + Send + Sync + 'static> DynamicSupervisorRef<Args> {
    common_handle!(
        "Stops every child in parallel, each by the template's shutdown policy, then the \
         supervisor."
    );

    /// Wraps a cell if it is a dynamic supervisor whose children take `Args` (e.g. one nested
    /// in a tree: see [`SupervisorRef::child_dynamic`](super::SupervisorRef::child_dynamic)).
    pub fn from_cell(cell: ActorCell) -> Option<Self> {
        if cell.is_message_type_of::<DynamicSupervisorMsg<Args>>() == Some(true) {
            Some(DynamicSupervisorRef { actor: cell.into() })
        } else {
            None
        }
    }

    /// Starts a child with these arguments. `Ok(None)` if its start said `Ignore` (nothing is
    /// kept); `MaxChildren` when full.
    pub async fn start_child(&self, args: Args) -> Result<Option<ActorCell>, SupervisorError> {
        core::call(&self.actor, |r| {
            DynamicSupervisorMsg(DynRequest::StartChild(args, r))
        })
        .await?
    }

    /// Stops a child by the template's shutdown policy and forgets it. A cell that already
    /// ended is `Ok`; a live actor that is not a child is `NotFound`.
    pub async fn terminate_child(&self, cell: &ActorCell) -> Result<(), SupervisorError> {
        let child = ChildRef::Cell(cell.clone());
        self.request(|r| Request::TerminateChild(child, r)).await?
    }
}
