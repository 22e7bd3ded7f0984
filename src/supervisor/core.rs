//! The restart algorithm, written once for static and dynamic supervisors: OTP's
//! `supervisor.erl`, read top to bottom.
//!
//! [`Core`] is a supervisor's whole state and behaviour; the two actors
//! ([`Supervisor`](super::Supervisor) and [`DynamicSupervisor`](super::DynamicSupervisor)) only
//! feed it ractor's messages and events. As OTP does for `simple_one_for_one`, a dynamic
//! supervisor is the same core over the same child table, differing only where OTP guards with
//! `?is_simple`: its children are started from a template with their own arguments, are
//! forgotten when they end without a restart, are counted as one spec, and are stopped in
//! parallel at shutdown.
//!
//! * **Startup** ([`Core::start_all`]): children start in order, each awaited; the first failure
//!   stops the started ones in reverse order and fails the spawn with the failing id.
//! * **A child ends** ([`Core::handle_exit`]): the exit is classified ([`crate::exit`]) and the
//!   restart type decides ([`exit_action`]): restart, keep, or delete. A child that is not
//!   restarted may trigger auto-shutdown.
//! * **Restart** (`schedule_restart`): record the attempt in the intensity window (over the
//!   limit: give up), stop the siblings the strategy names in reverse order, mark the child
//!   `Restarting`, then start at once or after its backoff delay (`run_restart`). A failed
//!   start schedules a retry through the mailbox, so API calls are served in between; each
//!   retry counts toward intensity.
//! * **Give up**: stop every child, exit abnormally with [`IntensityExceeded`] so the parent's
//!   strategy handles it.
//! * **Abandon** (crate-internal, used by pools): a child whose task never yields cannot be
//!   stopped; it is unlinked, sent a kill it acts on whenever it yields, and handled as an
//!   abnormal exit at once, so its replacement starts without waiting for it.
//! * **Shutdown** ([`Core::shutdown`], from `post_stop`): every child stopped by its
//!   [`Shutdown`](super::Shutdown) policy (static: one by one in reverse start order; dynamic:
//!   all at once), before ractor tears the actor down.
//!
//! * **Adoption** ([`Core::adopt`], dynamic only): a caller of `start_child` starts the child
//!   itself, linked to the supervisor, and hands it over by message; the core records it as if
//!   it had started it. A child that ends before it is handed over has its exit kept until then
//!   (see [`Admission`]).
//!
//! Exits are matched to children by the actor id of the live incarnation; a pending restart
//! carries a token that `terminate_child`, `delete_child` and shutdown invalidate.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use ractor::{ActorCell, ActorId, ActorProcessingErr, ActorRef, RpcReplyPort, SupervisionEvent};
use tokio::time::Instant;
use tracing::Instrument;

use super::children::{ChildCounts, ChildInfo, Children, Key, Slot, SlotState};
use super::dynamic::Admission;
use super::event::{EventStream, StopCause, Subscribers, SupervisorEvent};
use super::intensity::{IntensityDecision, RestartIntensity};
use super::lifecycle::{self, Started, Starting};
use super::spec::SupervisorFlags;
use super::spec::{AutoShutdown, ChildId, ChildSpec, Restart, Strategy};
use super::strategy::{exit_action, restart_plan, ExitAction};
use crate::error::{IntensityExceeded, StartError, SupervisorError};
use crate::exit::{ExitClass, ExitReason, SHUTDOWN_REASON};
use crate::observe::{
    observe_children, ChildView, NodeKind, Observed, Probe, SupervisorSummary, TreeEventStream,
    TreeLink,
};

type Reply<T> = RpcReplyPort<T>;

/// A request either kind of supervisor serves (a dynamic one adds start-by-arguments).
pub(crate) enum Request {
    StartChild(ChildSpec, Reply<Result<Option<ActorCell>, SupervisorError>>),
    TerminateChild(ChildRef, Reply<Result<(), SupervisorError>>),
    RestartChild(ChildId, Reply<Result<Option<ActorCell>, SupervisorError>>),
    DeleteChild(ChildId, Reply<Result<(), SupervisorError>>),
    WhichChildren(Reply<Vec<ChildInfo>>),
    CountChildren(Reply<ChildCounts>),
    LookupChild(ChildId, Reply<Result<ActorCell, SupervisorError>>),
    Subscribe(Reply<EventStream>),
    SubscribeTree(Reply<TreeEventStream>),
    /// What a tree walk needs of this supervisor.
    Snapshot(Reply<CoreView>),
    /// A scheduled restart (after a backoff delay, or the retry of a failed start).
    Restart {
        key: Key,
        token: u64,
    },
    /// Give up on a child's incarnation that cannot be stopped (its task never yields, e.g. a
    /// handler spinning on the CPU): unlink it, send it a kill it will act on when it next
    /// yields, and handle it as an abnormal exit now, so its replacement starts at once.
    Abandon {
        actor: ActorId,
        reason: String,
    },
}

/// The message type of a supervisor actor: anything a [`Request`] converts into.
pub(crate) trait CoreMsg: ractor::Message + From<Request> {}

impl<M: ractor::Message + From<Request>> CoreMsg for M {}

/// How a request names a child: by id (static) or by its live cell (dynamic, as OTP's
/// `terminate_child(Sup, Pid)`).
pub(crate) enum ChildRef {
    Id(ChildId),
    Cell(ActorCell),
}

/// Sends a request to a supervisor actor and waits for the answer; a supervisor that has
/// stopped answers [`SupervisorError::SupervisorStopped`].
pub(crate) async fn call<M: ractor::Message, T: Send + 'static>(
    actor: &ActorRef<M>,
    make: impl FnOnce(Reply<T>) -> M,
) -> Result<T, SupervisorError> {
    match actor.call(make, None).await {
        Ok(ractor::rpc::CallResult::Success(value)) => Ok(value),
        _ => Err(SupervisorError::SupervisorStopped),
    }
}

/// A supervisor as a tree walk sees it ([`Request::Snapshot`]).
pub(crate) struct CoreView {
    pub(crate) label: String,
    pub(crate) summary: SupervisorSummary,
    pub(crate) children: Vec<ChildView>,
}

impl CoreView {
    /// This supervisor's part of the picture at `path`, its children's asked for at once.
    pub(crate) async fn observe(self, path: &str) -> Observed {
        Observed {
            kind: NodeKind::Supervisor(self.summary),
            children: observe_children(self.children, path).await,
        }
    }
}

/// A probe into the supervisor `actor` (static or dynamic): its view, observed.
pub(crate) fn probe<M: CoreMsg>(actor: ActorRef<M>) -> Probe {
    Probe::new(move |path: String| {
        let actor = actor.clone();
        Box::pin(async move {
            let view = call(&actor, |reply| Request::Snapshot(reply).into())
                .await
                .ok()?;
            Some(view.observe(&path).await)
        })
    })
}

/// What sets a dynamic supervisor apart (OTP's `?is_simple`): what it shares with the callers
/// that start its children.
#[derive(Debug, Clone)]
pub(crate) struct Dynamic {
    pub(crate) admission: Arc<Admission>,
}

/// A dynamic child a caller started itself, handed over to its supervisor ([`Core::adopt`]).
pub(crate) struct Adoption {
    /// The key [`Admission::admit`] gave the start (the child's id is `#key`).
    pub(crate) key: Key,
    pub(crate) spec: ChildSpec,
    pub(crate) started: Started,
    /// The probe an observable child left.
    pub(crate) probe: Option<Probe>,
}

/// A supervisor: its flags, children, restart window and subscribers.
pub(crate) struct Core {
    flags: SupervisorFlags,
    label: String,
    children: Children,
    dynamic: Option<Dynamic>,
    intensity: RestartIntensity,
    subscribers: Subscribers,
    /// Where its events go in its tree (its path, its incarnation, the tree's sinks).
    tree: TreeLink,
    rng: fastrand::Rng,
    next_token: u64,
    span: tracing::Span,
    /// Set once every child has been stopped for good; `shutdown` then has nothing to do.
    finished: bool,
    /// Dynamic: the exits of actors unknown here while callers' starts are under way: a child
    /// a caller started may end before it is handed over ([`Core::adopt`] takes its exit).
    /// Emptied whenever no start is under way.
    early_exits: HashMap<ActorId, ExitReason, foldhash::fast::RandomState>,
}

impl Core {
    pub(crate) fn new(
        flags: SupervisorFlags,
        label: String,
        subscribers: Subscribers,
        tree: TreeLink,
        dynamic: Option<Dynamic>,
    ) -> Core {
        let span = match dynamic {
            None => tracing::info_span!("supervisor", name = %label),
            Some(_) => tracing::info_span!("dynamic_supervisor", name = %label),
        };
        Core {
            intensity: RestartIntensity::new(flags.intensity, flags.period),
            flags,
            label,
            children: Children::new(dynamic.is_none()),
            dynamic,
            subscribers,
            tree,
            rng: fastrand::Rng::new(),
            next_token: 0,
            span,
            finished: false,
            early_exits: HashMap::default(),
        }
    }

    /// Where this supervisor is in its tree (its children's places are made from it).
    pub(crate) fn tree_link(&self) -> &TreeLink {
        &self.tree
    }

    /// The supervisor's span: every request and exit is handled inside it.
    pub(crate) fn span(&self) -> tracing::Span {
        self.span.clone()
    }

    /// Sends the event `make` builds to this supervisor's subscribers and to its tree's;
    /// builds nothing when nobody listens.
    fn emit(&mut self, make: impl FnOnce() -> SupervisorEvent) {
        let tree = self.tree.listening();
        if !tree && self.subscribers.is_empty() && !cfg!(feature = "metrics") {
            return;
        }
        let event = make();
        crate::observe::metrics::supervisor_event(
            self.tree.path(),
            self.dynamic.is_some(),
            self.children.running(),
            &event,
        );
        if tree {
            self.tree.send(&event);
        }
        self.subscribers.emit(|| event);
    }

    /// What a tree walk needs: this supervisor's summary and its children (with the probes of
    /// the running ones that gave one).
    fn view(&self) -> CoreView {
        CoreView {
            label: self.label.clone(),
            summary: SupervisorSummary {
                strategy: self.flags.strategy,
                dynamic: self.dynamic.is_some(),
                intensity: self.flags.intensity,
                period: self.flags.period,
                restarts_in_window: self.intensity.in_window(Instant::now()),
            },
            children: self.children.views(),
        }
    }

    // ---- startup and shutdown -------------------------------------------------------------

    /// Adds `specs` and starts them in order; the first failure stops the started ones in
    /// reverse order.
    pub(crate) async fn start_all<M: CoreMsg>(
        &mut self,
        myself: &ActorRef<M>,
        specs: Vec<ChildSpec>,
    ) -> Result<(), StartError> {
        let keys: Vec<Key> = specs.into_iter().map(|s| self.children.push(s)).collect();
        for key in keys {
            match self.start_slot(myself, key).await {
                Started::Running(_) => {}
                Started::Ignored => self.forget_ignored(key),
                Started::Failed(reason) => {
                    let id = self.id_of(key);
                    tracing::error!(child = %id, %reason, "child failed to start; unwinding startup");
                    self.stop_all(StopCause::Shutdown).await;
                    self.finished = true;
                    return Err(StartError::ChildFailed { id, reason });
                }
            }
        }
        Ok(())
    }

    /// Stops every child and announces the end; does nothing the second time.
    pub(crate) async fn shutdown(&mut self) {
        if self.finished {
            return;
        }
        self.stop_all(StopCause::Shutdown).await;
        self.finished = true;
        tracing::debug!("supervisor stopped");
        self.emit(|| SupervisorEvent::Stopped);
    }

    /// Static: one by one in reverse start order. Dynamic: all at once (OTP stops
    /// `simple_one_for_one` children in parallel), each still by its shutdown policy.
    async fn stop_all(&mut self, cause: StopCause) {
        if self.dynamic.is_none() {
            for key in self.children.keys().into_iter().rev() {
                self.stop_slot(key, cause).await;
            }
            return;
        }
        let running = self.children.take_running();
        let stops = running
            .iter()
            .map(|(key, cell)| lifecycle::stop_child(cell, self.shutdown_of(*key)));
        let outcomes = futures::future::join_all(stops).await;
        for ((key, _), outcome) in running.into_iter().zip(outcomes) {
            self.stopped(key, cause, outcome);
        }
    }

    // ---- one child ------------------------------------------------------------------------

    fn id_of(&self, key: Key) -> ChildId {
        self.children
            .get(key)
            .map_or_else(|| ChildId::from("?"), |s| s.spec.id.clone())
    }

    async fn start_slot<M: CoreMsg>(&mut self, myself: &ActorRef<M>, key: Key) -> Started {
        let Some(slot) = self.children.get_mut(key) else {
            return Started::Ignored;
        };
        slot.generation += 1;
        let starting = Starting::new(&slot.spec, slot.generation, myself.get_cell(), &self.tree);
        let (started, probe) = starting.run().await;
        self.record_start(key, &started, probe);
        started
    }

    /// Records how the start of `key`'s current incarnation ended, and tells the subscribers.
    fn record_start(&mut self, key: Key, started: &Started, probe: Option<Probe>) {
        let Some(slot) = self.children.get(key) else {
            return;
        };
        let (id, generation, observable) = (
            slot.spec.id.clone(),
            slot.generation,
            slot.spec.policy.observable,
        );
        match started {
            Started::Running(cell) => {
                self.children
                    .set_state(key, SlotState::Running(cell.clone()));
                if let Some(slot) = self.children.get_mut(key) {
                    slot.started_at = Some(Instant::now());
                }
                if observable {
                    self.children.set_probe(key, probe);
                }
            }
            Started::Ignored | Started::Failed(_) => {
                self.children.set_state(key, SlotState::NotRunning);
            }
        }
        self.announce_start(id, generation, started);
    }

    /// Tells the log and the subscribers how the start of `id`'s incarnation `generation`
    /// ended.
    fn announce_start(&mut self, id: ChildId, generation: u64, started: &Started) {
        match started {
            Started::Running(cell) => {
                let actor = cell.get_id();
                tracing::debug!(child = %id, generation, %actor, "child started");
                self.emit(|| SupervisorEvent::ChildStarted {
                    id,
                    generation,
                    actor,
                });
            }
            Started::Ignored => {
                tracing::debug!(child = %id, "child start returned Ignore");
                self.emit(|| SupervisorEvent::ChildIgnored { id });
            }
            Started::Failed(reason) => {
                tracing::warn!(child = %id, generation, %reason, "child failed to start");
                let reason = reason.clone();
                self.emit(|| SupervisorEvent::ChildStartFailed {
                    id,
                    generation,
                    reason,
                });
            }
        }
    }

    /// A child whose start said `Ignore` keeps its spec as not running, unless nothing is worth
    /// keeping: a temporary child, or any dynamic child (its arguments are the spec).
    fn forget_ignored(&mut self, key: Key) {
        if !self.keeps_spec(key) {
            self.delete_slot(key);
        }
    }

    /// Whether a child that is not running keeps its spec: not if it is temporary, nor if it
    /// is a dynamic child (OTP's `simple_one_for_one` keeps nothing for a child that is gone).
    fn keeps_spec(&self, key: Key) -> bool {
        let temporary = self
            .children
            .get(key)
            .is_some_and(|s| s.spec.policy.restart == Restart::Temporary);
        !temporary && self.dynamic.is_none()
    }

    /// Stops the child's live incarnation (if any) and cancels a pending restart.
    async fn stop_slot(&mut self, key: Key, cause: StopCause) {
        let Some(SlotState::Running(cell)) = self.children.set_state(key, SlotState::NotRunning)
        else {
            return;
        };
        let outcome = lifecycle::stop_child(&cell, self.shutdown_of(key)).await;
        self.stopped(key, cause, outcome);
    }

    /// How the child is stopped: its spec's shutdown policy.
    fn shutdown_of(&self, key: Key) -> super::Shutdown {
        self.children
            .get(key)
            .map_or(super::DEFAULT_WORKER_SHUTDOWN, |s| s.spec.shutdown_policy())
    }

    fn stopped(&mut self, key: Key, cause: StopCause, outcome: super::StopOutcome) {
        let Some(slot) = self.children.get(key) else {
            return;
        };
        let (id, generation) = (slot.spec.id.clone(), slot.generation);
        tracing::debug!(child = %id, generation, ?cause, ?outcome, "child stopped");
        self.emit(|| SupervisorEvent::ChildStopped {
            id,
            generation,
            cause,
            outcome,
        });
    }

    fn delete_slot(&mut self, key: Key) {
        if let Some(slot) = self.remove_slot(key) {
            let id = slot.spec.id;
            self.emit(|| SupervisorEvent::ChildDeleted { id });
        }
    }

    /// Takes `key` out of the table; a dynamic supervisor's place is free again.
    fn remove_slot(&mut self, key: Key) -> Option<Slot> {
        let slot = self.children.remove(key)?;
        if let Some(dynamic) = &self.dynamic {
            dynamic.admission.release();
        }
        Some(slot)
    }

    // ---- a child ended by itself ----------------------------------------------------------

    /// Handles ractor's supervision event: a child's end is classified and acted on; an event
    /// from an incarnation already stopped or replaced is ignored.
    pub(crate) async fn handle_exit<M: CoreMsg>(
        &mut self,
        myself: &ActorRef<M>,
        event: SupervisionEvent,
    ) -> Result<(), ActorProcessingErr> {
        let Some((actor, reason)) = ExitReason::from_event(&event) else {
            return Ok(()); // started, process groups, cluster events: nothing to do
        };
        let Some(key) = self.children.key_of_actor(actor) else {
            // A child a caller started may end before it is handed over: keep its exit for
            // `adopt` while any start is under way. Otherwise: stale.
            if self
                .dynamic
                .as_ref()
                .is_some_and(|d| d.admission.starting() > 0)
            {
                self.early_exits.insert(actor, reason);
            }
            return Ok(());
        };
        let span = self.span();
        self.child_exited(myself, key, reason)
            .instrument(span)
            .await
    }

    async fn child_exited<M: CoreMsg>(
        &mut self,
        myself: &ActorRef<M>,
        key: Key,
        reason: ExitReason,
    ) -> Result<(), ActorProcessingErr> {
        self.children.set_state(key, SlotState::NotRunning);
        let Some(slot) = self.children.get(key) else {
            return Ok(());
        };
        let uptime = slot.started_at.map(|t| t.elapsed());
        let (id, generation) = (slot.spec.id.clone(), slot.generation);
        let (restart, significant) = (slot.spec.policy.restart, slot.spec.policy.significant);
        match reason.class {
            ExitClass::Abnormal => tracing::warn!(child = %id, generation, %reason, "child exited"),
            _ => tracing::info!(child = %id, generation, %reason, "child exited"),
        }
        self.emit(|| SupervisorEvent::ChildExited {
            id: id.clone(),
            generation,
            reason: reason.clone(),
        });
        match exit_action(restart, reason.class) {
            ExitAction::Restart => {
                if self.schedule_restart(myself, key, uptime, true).await? {
                    self.run_restart(myself, key).await?;
                }
            }
            // A dynamic child's spec is its arguments: once it is not restarted, it is gone.
            ExitAction::Keep if self.dynamic.is_none() => {
                self.maybe_auto_shutdown(myself, &id, significant);
            }
            ExitAction::Keep | ExitAction::Delete => {
                self.delete_slot(key);
                self.maybe_auto_shutdown(myself, &id, significant);
            }
        }
        Ok(())
    }

    fn maybe_auto_shutdown<M: CoreMsg>(
        &mut self,
        myself: &ActorRef<M>,
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
            self.emit(|| SupervisorEvent::AutoShutdown { id });
            // The stop signal overtakes queued messages; post_stop stops the children in order.
            myself.stop(Some(SHUTDOWN_REASON.to_string()));
        }
    }

    // ---- the restart algorithm ------------------------------------------------------------

    /// Records a restart attempt for `key`, stops the siblings the strategy names, and marks
    /// the child `Restarting`. Returns `true` if the caller should run the restart now (`inline`
    /// and no delay); otherwise it was sent through the mailbox, after the backoff delay if any.
    async fn schedule_restart<M: CoreMsg>(
        &mut self,
        myself: &ActorRef<M>,
        key: Key,
        uptime: Option<Duration>,
        inline: bool,
    ) -> Result<bool, ActorProcessingErr> {
        let restarts_left = match self.intensity.record(Instant::now()) {
            IntensityDecision::Restart { remaining } => remaining,
            IntensityDecision::GiveUp { restarts } => {
                return Err(self.give_up(key, restarts).await.into());
            }
        };
        self.stop_bystanders(key).await;
        self.next_token += 1;
        let token = self.next_token;
        if self
            .children
            .set_state(key, SlotState::Restarting { token })
            .is_none()
        {
            return Ok(false);
        }
        let Some(slot) = self.children.get_mut(key) else {
            return Ok(false);
        };
        let delay = match &slot.spec.policy.backoff {
            Some(policy) => slot.backoff.next_delay(policy, uptime, &mut self.rng),
            None => Duration::ZERO,
        };
        let id = slot.spec.id.clone();
        tracing::info!(child = %id, ?delay, restarts_left, "restart scheduled");
        self.emit(|| SupervisorEvent::RestartScheduled {
            id,
            delay,
            restarts_left,
        });
        let msg = move || M::from(Request::Restart { key, token });
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

    /// Which children a restart of `key` touches, by key: those to stop (reverse start order),
    /// those to delete (temporary bystanders) and those to start (start order). Not asked
    /// under one-for-one (every dynamic supervisor), which touches only `key`: its callers
    /// skip it, so that a restart reads no other child and allocates nothing.
    fn plan(&self, key: Key) -> (Vec<Key>, Vec<Key>, Vec<Key>) {
        let (keys, view) = self.children.plan_view();
        let Some(failed) = keys.iter().position(|&k| k == key) else {
            return (Vec::new(), Vec::new(), Vec::new());
        };
        let plan = restart_plan(self.flags.strategy, &view, failed);
        let by_key = |positions: Vec<usize>| positions.into_iter().map(|i| keys[i]).collect();
        (by_key(plan.stop), by_key(plan.delete), by_key(plan.start))
    }

    /// Stops (reverse start order) the running siblings that a restart of `key` touches and
    /// deletes the temporary ones. One-for-one touches none.
    async fn stop_bystanders(&mut self, key: Key) {
        if self.flags.strategy == Strategy::OneForOne {
            return;
        }
        let (stop, delete, _) = self.plan(key);
        for k in stop {
            self.stop_slot(k, StopCause::Restart).await;
        }
        for k in delete {
            self.delete_slot(k);
        }
    }

    /// Runs the start phase of a restart of `key`: starts, in start order, every child the
    /// strategy names. A failed start marks that child `Restarting` and schedules a retry.
    async fn run_restart<M: CoreMsg>(
        &mut self,
        myself: &ActorRef<M>,
        key: Key,
    ) -> Result<(), ActorProcessingErr> {
        self.stop_bystanders(key).await;
        // One-for-one (every dynamic supervisor) starts `key` alone and reads no other child.
        let planned;
        let start = if self.flags.strategy == Strategy::OneForOne {
            std::slice::from_ref(&key)
        } else {
            planned = self.plan(key).2;
            &planned[..]
        };
        for &k in start {
            if self.children.get(k).is_none_or(|s| s.cell().is_some()) {
                continue;
            }
            match self.start_slot(myself, k).await {
                Started::Running(_) => {}
                Started::Ignored => self.forget_ignored(k),
                Started::Failed(_) => {
                    self.schedule_restart(myself, k, None, false).await?;
                    return Ok(());
                }
            }
        }
        Ok(())
    }

    async fn give_up(&mut self, key: Key, restarts: u32) -> IntensityExceeded {
        let child = self.id_of(key);
        tracing::error!(child = %child, restarts, "restart intensity exceeded: giving up");
        self.emit(|| SupervisorEvent::GaveUp {
            id: child.clone(),
            restarts,
        });
        self.shutdown().await;
        IntensityExceeded {
            supervisor: self.label.clone(),
            child,
            restarts,
            intensity: self.flags.intensity,
            period: self.flags.period,
        }
    }

    // ---- the run-time API -----------------------------------------------------------------

    /// Serves one request, inside the supervisor's span.
    pub(crate) async fn handle_request<M: CoreMsg>(
        &mut self,
        myself: &ActorRef<M>,
        request: Request,
    ) -> Result<(), ActorProcessingErr> {
        let span = self.span();
        self.serve(myself, request).instrument(span).await
    }

    async fn serve<M: CoreMsg>(
        &mut self,
        myself: &ActorRef<M>,
        request: Request,
    ) -> Result<(), ActorProcessingErr> {
        match request {
            Request::StartChild(spec, reply) => {
                let result = self.add_child(myself, spec).await;
                let _ = reply.send(result);
            }
            Request::TerminateChild(child, reply) => {
                let result = self.terminate_child(child).await;
                let _ = reply.send(result);
            }
            Request::RestartChild(id, reply) => {
                let result = self.restart_child(myself, &id).await;
                let _ = reply.send(result);
            }
            Request::DeleteChild(id, reply) => {
                let result = self.delete_child(&id);
                let _ = reply.send(result);
            }
            Request::WhichChildren(reply) => {
                let _ = reply.send(self.children.infos());
            }
            Request::SubscribeTree(reply) => {
                let _ = reply.send(self.tree.own().subscribe());
            }
            Request::Snapshot(reply) => {
                let _ = reply.send(self.view());
            }
            Request::CountChildren(reply) => {
                let _ = reply.send(self.children.counts(self.dynamic.is_some()));
            }
            Request::LookupChild(id, reply) => {
                let _ = reply.send(self.lookup_child(id));
            }
            Request::Subscribe(reply) => {
                let _ = reply.send(self.subscribers.subscribe());
            }
            Request::Abandon { actor, reason } => {
                let Some(key) = self.children.key_of_actor(actor) else {
                    return Ok(()); // it ended meanwhile, or was replaced
                };
                if let Some(cell) = self.children.get(key).and_then(|s| s.cell()) {
                    cell.unlink(myself.get_cell());
                    cell.kill();
                }
                return self
                    .child_exited(myself, key, ExitReason::abnormal(reason))
                    .await;
            }
            Request::Restart { key, token } => {
                let pending = self.children.get(key).is_some_and(
                    |s| matches!(s.state(), SlotState::Restarting { token: t } if *t == token),
                );
                if pending {
                    return self.run_restart(myself, key).await;
                }
                // Cancelled by terminate/delete, or superseded: nothing to do.
            }
        }
        Ok(())
    }

    /// Adds a child at the end of the start order and starts it.
    pub(crate) async fn add_child<M: CoreMsg>(
        &mut self,
        myself: &ActorRef<M>,
        spec: ChildSpec,
    ) -> Result<Option<ActorCell>, SupervisorError> {
        spec.validate(self.flags.auto_shutdown)
            .map_err(SupervisorError::InvalidSpec)?;
        if let Some(key) = self.children.key_of(&spec.id) {
            return Err(match self.children.get(key).map(|s| s.state()) {
                Some(SlotState::Running(cell)) => SupervisorError::AlreadyStarted {
                    id: spec.id,
                    cell: cell.clone(),
                },
                _ => SupervisorError::AlreadyPresent(spec.id),
            });
        }
        let key = self.children.push(spec);
        match self.start_slot(myself, key).await {
            Started::Running(cell) => Ok(Some(cell)),
            Started::Ignored => {
                self.forget_ignored(key);
                Ok(None)
            }
            Started::Failed(reason) => {
                let id = self.id_of(key);
                self.remove_slot(key);
                Err(SupervisorError::StartFailed { id, reason })
            }
        }
    }

    /// Records a dynamic child a caller started itself (`DynamicSupervisorRef::start_child`)
    /// as if this supervisor had started it: the same table entry and events. A child that
    /// ended before it was handed over is then handled as ending now. An ignored or failed
    /// start is only announced (its caller has freed its place and heard the outcome). (A
    /// hand-over the supervisor never reads, its stop having overtaken it, is stopped by the
    /// dynamic supervisor's `post_stop`.)
    pub(crate) async fn adopt<M: CoreMsg>(
        &mut self,
        myself: &ActorRef<M>,
        adoption: Adoption,
    ) -> Result<(), ActorProcessingErr> {
        let Some(still_starting) = self.dynamic.as_ref().map(|d| d.admission.handed_over()) else {
            return Ok(());
        };
        let Adoption {
            key,
            spec,
            started,
            probe,
        } = adoption;
        let result = match &started {
            Started::Running(cell) => {
                let (id, observable) = (spec.id.clone(), spec.policy.observable);
                let key = self
                    .children
                    .push_running(key, spec, cell.clone(), Instant::now());
                if observable {
                    self.children.set_probe(key, probe);
                }
                self.announce_start(id, 1, &started);
                let early = Some(cell.get_id())
                    .filter(|_| !self.early_exits.is_empty())
                    .and_then(|actor| self.early_exits.remove(&actor));
                match early {
                    Some(reason) => self.child_exited(myself, key, reason).await,
                    None => Ok(()),
                }
            }
            Started::Ignored => {
                self.announce_start(spec.id.clone(), 1, &started);
                let id = spec.id;
                self.emit(|| SupervisorEvent::ChildDeleted { id });
                Ok(())
            }
            Started::Failed(_) => {
                self.announce_start(spec.id, 1, &started);
                Ok(())
            }
        };
        if still_starting == 0 {
            self.early_exits.clear();
        }
        result
    }

    async fn terminate_child(&mut self, child: ChildRef) -> Result<(), SupervisorError> {
        let key = match child {
            ChildRef::Id(id) => self
                .children
                .key_of(&id)
                .ok_or(SupervisorError::NotFound(id))?,
            ChildRef::Cell(cell) => match self.children.key_of_actor(cell.get_id()) {
                Some(key) => key,
                // A child that already ended (OTP: ok).
                None if cell.get_status() >= ractor::ActorStatus::Stopping => return Ok(()),
                None => {
                    return Err(SupervisorError::NotFound(ChildId::from(
                        cell.get_id().to_string(),
                    )))
                }
            },
        };
        self.stop_slot(key, StopCause::Terminated).await;
        if !self.keeps_spec(key) {
            self.delete_slot(key);
        }
        Ok(())
    }

    async fn restart_child<M: CoreMsg>(
        &mut self,
        myself: &ActorRef<M>,
        id: &ChildId,
    ) -> Result<Option<ActorCell>, SupervisorError> {
        let key = self.not_running(id)?;
        match self.start_slot(myself, key).await {
            Started::Running(cell) => Ok(Some(cell)),
            Started::Ignored => Ok(None),
            Started::Failed(reason) => Err(SupervisorError::StartFailed {
                id: id.clone(),
                reason,
            }),
        }
    }

    fn delete_child(&mut self, id: &ChildId) -> Result<(), SupervisorError> {
        let key = self.not_running(id)?;
        self.delete_slot(key);
        Ok(())
    }

    /// The key of a child that exists and is neither running nor restarting.
    fn not_running(&self, id: &ChildId) -> Result<Key, SupervisorError> {
        let key = self
            .children
            .key_of(id)
            .ok_or_else(|| SupervisorError::NotFound(id.clone()))?;
        match self.children.get(key).map(|s| s.state()) {
            Some(SlotState::Running(_)) => Err(SupervisorError::Running(id.clone())),
            Some(SlotState::Restarting { .. }) => Err(SupervisorError::Restarting(id.clone())),
            _ => Ok(key),
        }
    }

    fn lookup_child(&self, id: ChildId) -> Result<ActorCell, SupervisorError> {
        let Some(slot) = self.children.key_of(&id).and_then(|k| self.children.get(k)) else {
            return Err(SupervisorError::NotFound(id));
        };
        match slot.state() {
            // Ended, exit not handled yet: not the live incarnation any more.
            SlotState::Running(cell) if cell.get_status() >= ractor::ActorStatus::Stopping => {
                Err(SupervisorError::NotRunning(id))
            }
            SlotState::Running(cell) => Ok(cell.clone()),
            SlotState::Restarting { .. } => Err(SupervisorError::Restarting(id)),
            SlotState::NotRunning => Err(SupervisorError::NotRunning(id)),
        }
    }
}
