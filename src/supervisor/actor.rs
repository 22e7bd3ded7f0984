//! The supervisor actor: OTP's `supervisor.erl` on ractor, read top to bottom.
//!
//! * **Startup** (`pre_start`): children start in order, each awaited; the first failure stops
//!   the started ones in reverse order and fails the spawn with the failing id.
//! * **A child ends** (`handle_supervisor_evt`): the exit is classified ([`crate::exit`]) and
//!   the restart type decides ([`exit_action`]): restart, keep, or delete. A child that is not
//!   restarted may trigger auto-shutdown.
//! * **Restart** ([`SupervisorState::schedule_restart`]): record the attempt in the intensity
//!   window (over the limit: give up), stop the siblings the strategy names in reverse order,
//!   mark the child `Restarting`, then start at once or after its backoff delay
//!   ([`SupervisorState::run_restart`]). A failed start schedules a retry through the mailbox, so
//!   API calls are served in between; each retry counts toward intensity.
//! * **Give up**: stop every child in reverse order, exit abnormally with
//!   [`IntensityExceeded`] so the parent's strategy handles it.
//! * **Abandon** (crate-internal, used by pools): a child whose task never yields cannot be
//!   stopped; it is unlinked, sent a kill it acts on whenever it yields, and handled as an
//!   abnormal exit at once, so its replacement starts without waiting for it.
//! * **Shutdown** (`post_stop`): every child stopped in reverse start order by its
//!   [`Shutdown`](super::Shutdown) policy, before ractor tears the actor down.
//!
//! Events are matched to children by the actor id of the live incarnation; a pending restart
//! carries a token that `terminate_child`, `delete_child` and shutdown invalidate.

use std::time::Duration;

use ractor::{Actor, ActorCell, ActorProcessingErr, ActorRef, RpcReplyPort, SupervisionEvent};
use tokio::time::Instant;
use tracing::Instrument;

use super::children::{ChildCounts, ChildInfo, Children, SlotState};
use super::event::{EventStream, StopCause, Subscribers, SupervisorEvent};
use super::intensity::{IntensityDecision, RestartIntensity};
use super::lifecycle::{self, Started};
use super::spec::SupervisorFlags;
use super::spec::{
    validate_children, AutoShutdown, ChildContext, ChildId, ChildSpec, Restart, Strategy,
};
use super::strategy::{exit_action, restart_plan, ExitAction};
use crate::error::{IntensityExceeded, StartError, SupervisorError};
use crate::exit::{ExitReason, SHUTDOWN_REASON};

/// A message to a supervisor actor. Opaque: talk to a supervisor through
/// [`SupervisorRef`](super::SupervisorRef).
pub struct SupervisorMsg(pub(crate) Request);

#[cfg(feature = "cluster")]
impl ractor::Message for SupervisorMsg {}

type Reply<T> = RpcReplyPort<T>;

pub(crate) enum Request {
    StartChild(ChildSpec, Reply<Result<Option<ActorCell>, SupervisorError>>),
    TerminateChild(ChildId, Reply<Result<(), SupervisorError>>),
    RestartChild(ChildId, Reply<Result<Option<ActorCell>, SupervisorError>>),
    DeleteChild(ChildId, Reply<Result<(), SupervisorError>>),
    WhichChildren(Reply<Vec<ChildInfo>>),
    CountChildren(Reply<ChildCounts>),
    LookupChild(ChildId, Reply<Result<ActorCell, SupervisorError>>),
    Subscribe(Reply<EventStream>),
    /// A scheduled restart (after a backoff delay, or the retry of a failed start).
    Restart {
        id: ChildId,
        token: u64,
    },
    /// Give up on a child's incarnation that cannot be stopped (its task never yields, e.g. a
    /// handler spinning on the CPU): unlink it, send it a kill it will act on when it next
    /// yields, and handle it as an abnormal exit now, so its replacement starts at once.
    Abandon {
        actor: ractor::ActorId,
        reason: String,
    },
}

pub(crate) struct SupervisorActor;

pub(crate) struct SupervisorArgs {
    pub(crate) flags: SupervisorFlags,
    pub(crate) specs: Vec<ChildSpec>,
    pub(crate) label: String,
    pub(crate) subscribers: Subscribers,
}

pub(crate) struct SupervisorState {
    flags: SupervisorFlags,
    label: String,
    children: Children,
    intensity: RestartIntensity,
    subscribers: Subscribers,
    rng: fastrand::Rng,
    next_token: u64,
    span: tracing::Span,
    /// Set once every child has been stopped for good (gave up); `post_stop` then has nothing to do.
    finished: bool,
}

impl Actor for SupervisorActor {
    type Msg = SupervisorMsg;
    type State = SupervisorState;
    type Arguments = SupervisorArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<SupervisorMsg>,
        args: SupervisorArgs,
    ) -> Result<SupervisorState, ActorProcessingErr> {
        validate_children(&args.specs, &args.flags).map_err(StartError::from)?;
        let span = tracing::info_span!("supervisor", name = %args.label);
        let mut state = SupervisorState {
            intensity: RestartIntensity::new(args.flags.intensity, args.flags.period),
            flags: args.flags,
            label: args.label,
            children: Children::default(),
            subscribers: args.subscribers,
            rng: fastrand::Rng::new(),
            next_token: 0,
            span: span.clone(),
            finished: false,
        };
        for spec in args.specs {
            state.children.push(spec);
        }
        state.start_all(&myself).instrument(span).await?;
        Ok(state)
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<SupervisorMsg>,
        state: &mut SupervisorState,
    ) -> Result<(), ActorProcessingErr> {
        if !state.finished {
            let span = state.span.clone();
            state.shutdown().instrument(span).await;
        }
        Ok(())
    }

    async fn handle(
        &self,
        myself: ActorRef<SupervisorMsg>,
        SupervisorMsg(request): SupervisorMsg,
        state: &mut SupervisorState,
    ) -> Result<(), ActorProcessingErr> {
        let span = state.span.clone();
        state
            .handle_request(&myself, request)
            .instrument(span)
            .await
    }

    async fn handle_supervisor_evt(
        &self,
        myself: ActorRef<SupervisorMsg>,
        event: SupervisionEvent,
        state: &mut SupervisorState,
    ) -> Result<(), ActorProcessingErr> {
        let Some((actor, reason)) = ExitReason::from_event(&event) else {
            return Ok(()); // started, process groups, cluster events: nothing to do
        };
        let Some(i) = state.children.index_of_actor(actor) else {
            // An incarnation we already stopped or replaced: stale, ignore.
            return Ok(());
        };
        let span = state.span.clone();
        state
            .child_exited(&myself, i, reason)
            .instrument(span)
            .await
    }
}

impl SupervisorState {
    // ---- startup and shutdown -------------------------------------------------------------

    async fn start_all(&mut self, myself: &ActorRef<SupervisorMsg>) -> Result<(), StartError> {
        let mut i = 0;
        while i < self.children.len() {
            match self.start_slot(myself, i).await {
                Started::Running(_) => i += 1,
                Started::Ignored if self.children.get(i).spec.restart == Restart::Temporary => {
                    self.delete_slot(i);
                }
                Started::Ignored => i += 1,
                Started::Failed(reason) => {
                    let id = self.children.get(i).spec.id.clone();
                    tracing::error!(child = %id, %reason, "child failed to start; unwinding startup");
                    self.stop_all(StopCause::Shutdown).await;
                    self.finished = true;
                    return Err(StartError::ChildFailed { id, reason });
                }
            }
        }
        Ok(())
    }

    /// Stops every child in reverse start order and announces the end.
    async fn shutdown(&mut self) {
        self.stop_all(StopCause::Shutdown).await;
        self.finished = true;
        tracing::debug!("supervisor stopped");
        self.subscribers.emit(|| SupervisorEvent::Stopped);
    }

    async fn stop_all(&mut self, cause: StopCause) {
        for i in (0..self.children.len()).rev() {
            self.stop_slot(i, cause).await;
        }
    }

    // ---- one child ------------------------------------------------------------------------

    async fn start_slot(&mut self, myself: &ActorRef<SupervisorMsg>, i: usize) -> Started {
        let slot = self.children.get_mut(i);
        slot.generation += 1;
        let id = slot.spec.id.clone();
        let generation = slot.generation;
        let ctx = ChildContext {
            supervisor: myself.get_cell(),
            id: id.clone(),
            generation,
            name: slot.spec.name.clone(),
        };
        let start = (slot.spec.start)(ctx);
        let span = tracing::info_span!("child", id = %id, generation);
        let started = lifecycle::start_child(start, &myself.get_cell())
            .instrument(span)
            .await;
        let slot = self.children.get_mut(i);
        match &started {
            Started::Running(cell) => {
                slot.state = SlotState::Running(cell.clone());
                slot.started_at = Some(Instant::now());
                tracing::debug!(child = %id, generation, actor = %cell.get_id(), "child started");
                let actor = cell.get_id();
                self.subscribers.emit(|| SupervisorEvent::ChildStarted {
                    id,
                    generation,
                    actor,
                });
            }
            Started::Ignored => {
                slot.state = SlotState::NotRunning;
                tracing::debug!(child = %id, "child start returned Ignore");
                self.subscribers
                    .emit(|| SupervisorEvent::ChildIgnored { id });
            }
            Started::Failed(reason) => {
                slot.state = SlotState::NotRunning;
                tracing::warn!(child = %id, generation, %reason, "child failed to start");
                let reason = reason.clone();
                self.subscribers.emit(|| SupervisorEvent::ChildStartFailed {
                    id,
                    generation,
                    reason,
                });
            }
        }
        started
    }

    /// Stops the child's live incarnation (if any) and cancels a pending restart.
    async fn stop_slot(&mut self, i: usize, cause: StopCause) {
        let slot = self.children.get_mut(i);
        let previous = std::mem::replace(&mut slot.state, SlotState::NotRunning);
        let SlotState::Running(cell) = previous else {
            return;
        };
        let (id, generation, shutdown) = (
            slot.spec.id.clone(),
            slot.generation,
            slot.spec.shutdown_policy(),
        );
        let outcome = lifecycle::stop_child(&cell, shutdown).await;
        tracing::debug!(child = %id, generation, ?cause, ?outcome, "child stopped");
        self.subscribers.emit(|| SupervisorEvent::ChildStopped {
            id,
            generation,
            cause,
            outcome,
        });
    }

    fn delete_slot(&mut self, i: usize) {
        let slot = self.children.remove(i);
        let id = slot.spec.id;
        self.subscribers
            .emit(|| SupervisorEvent::ChildDeleted { id });
    }

    fn delete_by_id(&mut self, id: &ChildId) {
        if let Some(i) = self.children.index_of(id) {
            self.delete_slot(i);
        }
    }

    // ---- a child ended by itself ----------------------------------------------------------

    async fn child_exited(
        &mut self,
        myself: &ActorRef<SupervisorMsg>,
        i: usize,
        reason: ExitReason,
    ) -> Result<(), ActorProcessingErr> {
        let slot = self.children.get_mut(i);
        slot.state = SlotState::NotRunning;
        let uptime = slot.started_at.map(|t| t.elapsed());
        let (id, generation) = (slot.spec.id.clone(), slot.generation);
        let (restart, significant) = (slot.spec.restart, slot.spec.significant);
        match reason.class {
            crate::exit::ExitClass::Abnormal => {
                tracing::warn!(child = %id, generation, %reason, "child exited")
            }
            _ => tracing::info!(child = %id, generation, %reason, "child exited"),
        }
        self.subscribers.emit(|| SupervisorEvent::ChildExited {
            id: id.clone(),
            generation,
            reason: reason.clone(),
        });
        match exit_action(restart, reason.class) {
            ExitAction::Restart => {
                if self.schedule_restart(myself, &id, uptime, true).await? {
                    self.run_restart(myself, &id).await?;
                }
                Ok(())
            }
            ExitAction::Keep => {
                self.maybe_auto_shutdown(myself, &id, significant);
                Ok(())
            }
            ExitAction::Delete => {
                self.delete_slot(i);
                self.maybe_auto_shutdown(myself, &id, significant);
                Ok(())
            }
        }
    }

    fn maybe_auto_shutdown(
        &mut self,
        myself: &ActorRef<SupervisorMsg>,
        id: &ChildId,
        significant: bool,
    ) {
        if !significant {
            return;
        }
        let stop = match self.flags.auto_shutdown {
            AutoShutdown::Never => false,
            AutoShutdown::AnySignificant => true,
            AutoShutdown::AllSignificant => !self.children.any_significant_alive(),
        };
        if stop {
            tracing::info!(child = %id, "significant child ended: auto-shutdown");
            let id = id.clone();
            self.subscribers
                .emit(|| SupervisorEvent::AutoShutdown { id });
            // The stop signal overtakes queued messages; post_stop stops the children in order.
            myself.stop(Some(SHUTDOWN_REASON.to_string()));
        }
    }

    // ---- the restart algorithm ------------------------------------------------------------

    /// Records a restart attempt for `id`, stops the siblings the strategy names, and marks
    /// the child `Restarting`. Returns `true` if the caller should run the restart now (`inline`
    /// and no delay); otherwise it was sent through the mailbox, after the backoff delay if any.
    async fn schedule_restart(
        &mut self,
        myself: &ActorRef<SupervisorMsg>,
        id: &ChildId,
        uptime: Option<Duration>,
        inline: bool,
    ) -> Result<bool, ActorProcessingErr> {
        let restarts_left = match self.intensity.record(Instant::now()) {
            IntensityDecision::Restart { remaining } => remaining,
            IntensityDecision::GiveUp { restarts } => {
                return Err(self.give_up(id, restarts).await.into());
            }
        };
        self.stop_bystanders(id).await;
        let Some(i) = self.children.index_of(id) else {
            return Ok(false);
        };
        self.next_token += 1;
        let token = self.next_token;
        let slot = self.children.get_mut(i);
        slot.state = SlotState::Restarting { token };
        let delay = match &slot.spec.backoff {
            Some(policy) => slot.backoff.next_delay(policy, uptime, &mut self.rng),
            None => Duration::ZERO,
        };
        tracing::info!(child = %id, ?delay, restarts_left, "restart scheduled");
        self.subscribers.emit(|| SupervisorEvent::RestartScheduled {
            id: id.clone(),
            delay,
            restarts_left,
        });
        let msg = {
            let id = id.clone();
            move || SupervisorMsg(Request::Restart { id, token })
        };
        if delay.is_zero() {
            if inline {
                return Ok(true);
            }
            // Through the mailbox, so API calls queued meanwhile are served first.
            let _ = myself.send_message(msg());
        } else {
            myself.send_after(delay, msg);
        }
        Ok(false)
    }

    /// Stops (reverse start order) the running siblings that a restart of `id` touches and
    /// deletes the temporary ones.
    async fn stop_bystanders(&mut self, id: &ChildId) {
        if self.flags.strategy == Strategy::OneForOne {
            return; // one-for-one has no bystanders
        }
        let Some(i) = self.children.index_of(id) else {
            return;
        };
        let plan = restart_plan(self.flags.strategy, &self.children.plan_view(), i);
        let delete: Vec<ChildId> = plan
            .delete
            .iter()
            .map(|&j| self.children.get(j).spec.id.clone())
            .collect();
        for j in plan.stop {
            self.stop_slot(j, StopCause::Restart).await;
        }
        for d in &delete {
            self.delete_by_id(d);
        }
    }

    /// Runs the start phase of a restart of `id`: starts, in start order, every spec the
    /// strategy names. A failed start marks that child `Restarting` and schedules a retry.
    async fn run_restart(
        &mut self,
        myself: &ActorRef<SupervisorMsg>,
        id: &ChildId,
    ) -> Result<(), ActorProcessingErr> {
        self.stop_bystanders(id).await;
        let Some(i) = self.children.index_of(id) else {
            return Ok(());
        };
        let plan = restart_plan(self.flags.strategy, &self.children.plan_view(), i);
        let to_start: Vec<ChildId> = plan
            .start
            .iter()
            .map(|&j| self.children.get(j).spec.id.clone())
            .collect();
        for sid in to_start {
            let Some(j) = self.children.index_of(&sid) else {
                continue;
            };
            if self.children.get(j).cell().is_some() {
                continue;
            }
            if let Started::Failed(_) = self.start_slot(myself, j).await {
                self.schedule_restart(myself, &sid, None, false).await?;
                return Ok(());
            }
        }
        Ok(())
    }

    async fn give_up(&mut self, id: &ChildId, restarts: u32) -> IntensityExceeded {
        let reason = IntensityExceeded {
            supervisor: self.label.clone(),
            child: id.clone(),
            restarts,
            intensity: self.flags.intensity,
            period: self.flags.period,
        };
        tracing::error!(child = %id, restarts, "restart intensity exceeded: giving up");
        self.subscribers.emit(|| SupervisorEvent::GaveUp {
            id: id.clone(),
            restarts,
        });
        self.shutdown().await;
        reason
    }

    // ---- the run-time API -----------------------------------------------------------------

    async fn handle_request(
        &mut self,
        myself: &ActorRef<SupervisorMsg>,
        request: Request,
    ) -> Result<(), ActorProcessingErr> {
        match request {
            Request::StartChild(spec, reply) => {
                let result = self.api_start_child(myself, spec).await;
                let _ = reply.send(result);
            }
            Request::TerminateChild(id, reply) => {
                let result = self.api_terminate_child(&id).await;
                let _ = reply.send(result);
            }
            Request::RestartChild(id, reply) => {
                let result = self.api_restart_child(myself, &id).await;
                let _ = reply.send(result);
            }
            Request::DeleteChild(id, reply) => {
                let result = self.api_delete_child(&id);
                let _ = reply.send(result);
            }
            Request::WhichChildren(reply) => {
                let _ = reply.send(self.children.infos());
            }
            Request::CountChildren(reply) => {
                let _ = reply.send(self.children.counts());
            }
            Request::LookupChild(id, reply) => {
                let result = match self.children.index_of(&id).map(|i| self.children.get(i)) {
                    None => Err(SupervisorError::NotFound(id)),
                    Some(slot) => match &slot.state {
                        // Ended, exit not handled yet: not the live incarnation any more.
                        SlotState::Running(cell)
                            if cell.get_status() >= ractor::ActorStatus::Stopping =>
                        {
                            Err(SupervisorError::NotRunning(id))
                        }
                        SlotState::Running(cell) => Ok(cell.clone()),
                        SlotState::Restarting { .. } => Err(SupervisorError::Restarting(id)),
                        SlotState::NotRunning => Err(SupervisorError::NotRunning(id)),
                    },
                };
                let _ = reply.send(result);
            }
            Request::Subscribe(reply) => {
                let _ = reply.send(self.subscribers.subscribe());
            }
            Request::Abandon { actor, reason } => {
                let Some(i) = self.children.index_of_actor(actor) else {
                    return Ok(()); // it ended meanwhile, or was replaced
                };
                if let Some(cell) = self.children.get(i).cell() {
                    cell.unlink(myself.get_cell());
                    cell.kill();
                }
                return self
                    .child_exited(myself, i, ExitReason::abnormal(reason))
                    .await;
            }
            Request::Restart { id, token } => {
                let current = self
                    .children
                    .index_of(&id)
                    .map(|i| &self.children.get(i).state);
                if matches!(current, Some(SlotState::Restarting { token: t }) if *t == token) {
                    return self.run_restart(myself, &id).await;
                }
                // Cancelled by terminate/delete, or superseded: nothing to do.
            }
        }
        Ok(())
    }

    async fn api_start_child(
        &mut self,
        myself: &ActorRef<SupervisorMsg>,
        spec: ChildSpec,
    ) -> Result<Option<ActorCell>, SupervisorError> {
        spec.validate(self.flags.auto_shutdown)
            .map_err(SupervisorError::InvalidSpec)?;
        if let Some(i) = self.children.index_of(&spec.id) {
            return Err(match self.children.get(i).state {
                SlotState::Running(_) => SupervisorError::AlreadyStarted(spec.id),
                _ => SupervisorError::AlreadyPresent(spec.id),
            });
        }
        let temporary = spec.restart == Restart::Temporary;
        let i = self.children.push(spec);
        match self.start_slot(myself, i).await {
            Started::Running(cell) => Ok(Some(cell)),
            Started::Ignored => {
                if temporary {
                    self.children.remove(i);
                }
                Ok(None)
            }
            Started::Failed(reason) => {
                let id = self.children.remove(i).spec.id;
                Err(SupervisorError::StartFailed { id, reason })
            }
        }
    }

    async fn api_terminate_child(&mut self, id: &ChildId) -> Result<(), SupervisorError> {
        let i = self
            .children
            .index_of(id)
            .ok_or_else(|| SupervisorError::NotFound(id.clone()))?;
        self.stop_slot(i, StopCause::Terminated).await;
        if self.children.get(i).spec.restart == Restart::Temporary {
            self.delete_slot(i);
        }
        Ok(())
    }

    async fn api_restart_child(
        &mut self,
        myself: &ActorRef<SupervisorMsg>,
        id: &ChildId,
    ) -> Result<Option<ActorCell>, SupervisorError> {
        let i = self
            .children
            .index_of(id)
            .ok_or_else(|| SupervisorError::NotFound(id.clone()))?;
        match self.children.get(i).state {
            SlotState::Running(_) => return Err(SupervisorError::Running(id.clone())),
            SlotState::Restarting { .. } => return Err(SupervisorError::Restarting(id.clone())),
            SlotState::NotRunning => {}
        }
        match self.start_slot(myself, i).await {
            Started::Running(cell) => Ok(Some(cell)),
            Started::Ignored => Ok(None),
            Started::Failed(reason) => Err(SupervisorError::StartFailed {
                id: id.clone(),
                reason,
            }),
        }
    }

    fn api_delete_child(&mut self, id: &ChildId) -> Result<(), SupervisorError> {
        let i = self
            .children
            .index_of(id)
            .ok_or_else(|| SupervisorError::NotFound(id.clone()))?;
        match self.children.get(i).state {
            SlotState::Running(_) => Err(SupervisorError::Running(id.clone())),
            SlotState::Restarting { .. } => Err(SupervisorError::Restarting(id.clone())),
            SlotState::NotRunning => {
                self.delete_slot(i);
                Ok(())
            }
        }
    }
}
