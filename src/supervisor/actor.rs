//! The static supervisor's actor: ractor's callbacks handed to the [`Core`].
//!
//! `pre_start` starts the children in order (the builder has validated them); `handle` serves the API;
//! `handle_supervisor_evt` hands children's exits to the restart algorithm; `post_stop` stops
//! every child in reverse start order before ractor tears the actor down.

use ractor::{Actor, ActorProcessingErr, ActorRef, SupervisionEvent};
use tracing::Instrument;

use super::core::{Core, Request};
use super::spec::ChildSpec;

/// A message to a supervisor actor. Opaque: talk to a supervisor through
/// [`SupervisorRef`](super::SupervisorRef).
pub struct SupervisorMsg(pub(crate) Request);

#[cfg(feature = "cluster")]
impl ractor::Message for SupervisorMsg {}

impl From<Request> for SupervisorMsg {
    fn from(request: Request) -> Self {
        SupervisorMsg(request)
    }
}

pub(crate) struct SupervisorActor;

pub(crate) struct SupervisorArgs {
    pub(crate) core: Core,
    pub(crate) specs: Vec<ChildSpec>,
}

#[cfg_attr(feature = "async-trait", ractor::async_trait)]
impl Actor for SupervisorActor {
    type Msg = SupervisorMsg;
    type State = Core;
    type Arguments = SupervisorArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<SupervisorMsg>,
        args: SupervisorArgs,
    ) -> Result<Core, ActorProcessingErr> {
        let SupervisorArgs { mut core, specs } = args;
        let span = core.span();
        core.start_all(&myself, specs).instrument(span).await?;
        Ok(core)
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<SupervisorMsg>,
        core: &mut Core,
    ) -> Result<(), ActorProcessingErr> {
        let span = core.span();
        core.shutdown().instrument(span).await;
        Ok(())
    }

    async fn handle(
        &self,
        myself: ActorRef<SupervisorMsg>,
        SupervisorMsg(request): SupervisorMsg,
        core: &mut Core,
    ) -> Result<(), ActorProcessingErr> {
        core.handle_request(&myself, request).await
    }

    async fn handle_supervisor_evt(
        &self,
        myself: ActorRef<SupervisorMsg>,
        event: SupervisionEvent,
        core: &mut Core,
    ) -> Result<(), ActorProcessingErr> {
        core.handle_exit(&myself, event).await
    }
}
