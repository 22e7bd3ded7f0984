//! The dynamic supervisor: OTP's `simple_one_for_one`.
//!
//! One [`ChildTemplate`], children added at run time with per-child arguments, an optional
//! `max_children`. Each child is restarted on its own (one-for-one) with its stored arguments,
//! under the same intensity window and backoff rules as [`Supervisor`](super::Supervisor); a
//! failed restart is retried through the mailbox. Children are addressed by their cell, have no
//! start order, and are stopped **in parallel** at shutdown. A dynamic child that ends without
//! being restarted (a transient child's normal exit, any temporary exit) is removed, as in OTP.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use futures::FutureExt;
use ractor::{
    Actor, ActorCell, ActorId, ActorProcessingErr, ActorRef, RpcReplyPort, SupervisionEvent,
};
use tokio::time::Instant;
use tracing::Instrument;

use super::backoff::{Backoff, BackoffState};
use super::event::{EventStream, StopCause, Subscribers, SupervisorEvent};
use super::intensity::{IntensityDecision, RestartIntensity};
use super::lifecycle::{self, Started};
use super::spec::{ChildContext, ChildId, ChildKind, ChildStart, Restart, Shutdown, StartResult};
use super::strategy::{exit_action, ExitAction};
use crate::error::{IntensityExceeded, SpecError, StartError, SupervisorError};
use crate::exit::ExitReason;

type TemplateFn<Args> =
    Arc<dyn Fn(ChildContext, Args) -> BoxFuture<'static, StartResult> + Send + Sync>;

/// How every child of a [`DynamicSupervisor`] is started (with its own arguments) and what to
/// do when one ends.
///
/// ```
/// use ractor::{Actor, ActorProcessingErr, ActorRef};
/// use ractor_otp::prelude::*;
///
/// #[derive(Clone)]
/// struct Session;
/// impl Actor for Session {
///     type Msg = ();
///     type State = u64;
///     type Arguments = u64; // a per-child argument: the session id
///     async fn pre_start(&self, _: ActorRef<()>, id: u64) -> Result<u64, ActorProcessingErr> {
///         Ok(id)
///     }
/// }
///
/// let template = ChildTemplate::from_actor(Session).restart(Restart::Transient);
/// # let _ = template;
/// ```
pub struct ChildTemplate<Args> {
    start: TemplateFn<Args>,
    restart: Restart,
    shutdown: Option<Shutdown>,
    kind: ChildKind,
    backoff: Option<Backoff>,
}

impl<Args> Clone for ChildTemplate<Args> {
    fn clone(&self) -> Self {
        ChildTemplate {
            start: self.start.clone(),
            restart: self.restart,
            shutdown: self.shutdown,
            kind: self.kind,
            backoff: self.backoff.clone(),
        }
    }
}

impl<Args> fmt::Debug for ChildTemplate<Args> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChildTemplate")
            .field("restart", &self.restart)
            .field("shutdown", &self.shutdown_policy())
            .field("kind", &self.kind)
            .field("backoff", &self.backoff)
            .finish()
    }
}

impl<Args: Clone + Send + Sync + 'static> ChildTemplate<Args> {
    /// Children started by an async function of the context and the child's arguments.
    pub fn new<F, Fut>(start: F) -> Self
    where
        F: Fn(ChildContext, Args) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = StartResult> + Send + 'static,
    {
        ChildTemplate {
            start: Arc::new(move |ctx, args| start(ctx, args).boxed()),
            restart: Restart::Permanent,
            shutdown: None,
            kind: ChildKind::Worker,
            backoff: None,
        }
    }

    /// Sets the restart type of every child (default permanent).
    pub fn restart(mut self, restart: Restart) -> Self {
        self.restart = restart;
        self
    }

    /// Sets how children are stopped (default 5 s for workers, `Infinity` for supervisors).
    pub fn shutdown(mut self, shutdown: Shutdown) -> Self {
        self.shutdown = Some(shutdown);
        self
    }

    /// Marks the children as workers or supervisors (default workers).
    pub fn kind(mut self, kind: ChildKind) -> Self {
        self.kind = kind;
        self
    }

    /// Delays each child's restarts by a backoff policy.
    pub fn backoff(mut self, backoff: Backoff) -> Self {
        self.backoff = Some(backoff);
        self
    }
}

impl<Args> ChildTemplate<Args> {
    fn shutdown_policy(&self) -> Shutdown {
        self.shutdown.unwrap_or(self.kind.default_shutdown())
    }
}

impl<A> ChildTemplate<A>
where
    A: Clone + Send + Sync + 'static,
{
    /// Children that run `actor`, each with the arguments given to `start_child`.
    pub fn from_actor<T>(actor: T) -> ChildTemplate<T::Arguments>
    where
        T: Actor<Arguments = A> + Clone,
    {
        ChildTemplate::new(move |ctx: ChildContext, args: A| {
            let actor = actor.clone();
            async move { ctx.spawn_linked(actor, args).await }
        })
    }
}

/// Entry point: `DynamicSupervisor::builder(template)`.
///
/// ```
/// # use ractor::{Actor, ActorProcessingErr, ActorRef};
/// # use ractor_otp::prelude::*;
/// # #[derive(Clone)] struct Session;
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
            intensity: 1,
            period: Duration::from_secs(5),
            max_children: None,
            label: None,
            registered_name: None,
            subscribers: Subscribers::default(),
        }
    }
}

/// Configures and spawns a [`DynamicSupervisor`].
#[derive(Debug, Clone)]
pub struct DynamicSupervisorBuilder<Args> {
    template: ChildTemplate<Args>,
    intensity: u32,
    period: Duration,
    max_children: Option<usize>,
    label: Option<String>,
    registered_name: Option<String>,
    subscribers: Subscribers,
}

impl<Args: Clone + Send + Sync + 'static> DynamicSupervisorBuilder<Args> {
    /// At most `intensity` restarts within the period (default 1).
    pub fn intensity(mut self, intensity: u32) -> Self {
        self.intensity = intensity;
        self
    }

    /// The intensity window (default 5 s; must not be zero).
    pub fn period(mut self, period: Duration) -> Self {
        self.period = period;
        self
    }

    /// At most this many children (running or restarting); `start_child` beyond it fails with
    /// [`SupervisorError::MaxChildren`]. Default: no limit.
    pub fn max_children(mut self, max: usize) -> Self {
        self.max_children = Some(max);
        self
    }

    /// A human name for logs and errors (not a registry name).
    pub fn label(mut self, label: impl Into<String>) -> Self {
        self.label = Some(label.into());
        self
    }

    /// Registers the supervisor actor under a ractor registry name (global).
    pub fn registered_name(mut self, name: impl Into<String>) -> Self {
        self.registered_name = Some(name.into());
        self
    }

    /// Subscribes to the supervisor's events from the start.
    pub fn subscribe(&mut self) -> EventStream {
        self.subscribers.subscribe()
    }

    /// Checks the configuration.
    pub fn validate(&self) -> Result<(), SpecError> {
        if self.period.is_zero() {
            return Err(SpecError::ZeroPeriod);
        }
        if self.max_children == Some(0) {
            return Err(SpecError::ZeroMaxChildren);
        }
        if let Some(b) = &self.template.backoff {
            b.validate().map_err(|reason| SpecError::InvalidBackoff {
                id: ChildId::from("template"),
                reason,
            })?;
        }
        Ok(())
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

    /// Turns this dynamic supervisor into a child spec of kind `Supervisor`.
    pub fn into_child_spec(self, id: impl Into<ChildId>) -> super::ChildSpec {
        super::ChildSpec::new(id, move |ctx: ChildContext| {
            let mut builder = self.clone();
            if builder.label.is_none() {
                builder.label = Some(ctx.id().to_string());
            }
            if let Some(name) = ctx.name() {
                builder.registered_name = Some(name.to_string());
            }
            async move {
                let sup = builder.spawn_linked(ctx.supervisor().clone()).await?;
                Ok(ChildStart::Started(sup.get_cell()))
            }
        })
        .kind(ChildKind::Supervisor)
    }

    async fn spawn_inner(
        self,
        parent: Option<ActorCell>,
    ) -> Result<DynamicSupervisorRef<Args>, StartError> {
        self.validate()?;
        let label = self
            .label
            .unwrap_or_else(|| "dynamic_supervisor".to_string());
        let state = DynState {
            span: tracing::info_span!("dynamic_supervisor", name = %label),
            label,
            template: self.template,
            max_children: self.max_children,
            intensity: RestartIntensity::new(self.intensity, self.period),
            subscribers: self.subscribers,
            slots: BTreeMap::new(),
            by_actor: HashMap::new(),
            next_key: 0,
            next_token: 0,
            rng: fastrand::Rng::new(),
            finished: false,
        };
        let actor = DynActor::<Args>(PhantomData);
        let spawned = match parent {
            None => Actor::spawn(self.registered_name, actor, state).await,
            Some(p) => Actor::spawn_linked(self.registered_name, actor, state, p).await,
        };
        match spawned {
            Ok((actor, _join)) => Ok(DynamicSupervisorRef { actor }),
            Err(err) => Err(super::start_error(err)),
        }
    }
}

impl<Args: Clone + Send + Sync + 'static> super::IntoChildSpec for DynamicSupervisorBuilder<Args> {
    fn into_child_spec(self, id: ChildId) -> super::ChildSpec {
        DynamicSupervisorBuilder::into_child_spec(self, id)
    }
}

/// A message to a dynamic supervisor. Opaque: use [`DynamicSupervisorRef`].
pub struct DynamicSupervisorMsg<Args>(DynRequest<Args>);

#[cfg(feature = "cluster")]
impl<Args: Send + 'static> ractor::Message for DynamicSupervisorMsg<Args> {}

enum DynRequest<Args> {
    StartChild(
        Args,
        RpcReplyPort<Result<Option<ActorCell>, SupervisorError>>,
    ),
    TerminateChild(ActorCell, RpcReplyPort<Result<(), SupervisorError>>),
    WhichChildren(RpcReplyPort<Vec<DynamicChildInfo>>),
    CountChildren(RpcReplyPort<DynamicCounts>),
    Subscribe(RpcReplyPort<EventStream>),
    Restart {
        key: u64,
        token: u64,
    },
}

/// One dynamic child as `which_children` reports it.
#[derive(Debug, Clone)]
pub struct DynamicChildInfo {
    /// The child's id in this supervisor's events (`#1`, `#2`, ... in start order); stable
    /// across its restarts.
    pub id: ChildId,
    /// The live incarnation's cell, or `None` while it waits for a restart.
    pub cell: Option<ActorCell>,
    /// Start attempts so far.
    pub generation: u64,
}

/// Counts of a dynamic supervisor's children (OTP's `count_children` for `simple_one_for_one`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DynamicCounts {
    /// Always 1: the template.
    pub specs: usize,
    /// Children with a live incarnation.
    pub active: usize,
    /// Children of kind supervisor (restarting ones included).
    pub supervisors: usize,
    /// Children of kind worker (restarting ones included).
    pub workers: usize,
}

enum DynSlotState {
    Running(ActorCell),
    Restarting { token: u64 },
}

struct DynSlot<Args> {
    /// Kept for restarts; `None` for temporary children, which are never restarted.
    args: Option<Args>,
    state: DynSlotState,
    generation: u64,
    started_at: Option<Instant>,
    backoff: BackoffState,
}

struct DynActor<Args>(PhantomData<fn() -> Args>);

struct DynState<Args> {
    label: String,
    template: ChildTemplate<Args>,
    max_children: Option<usize>,
    intensity: RestartIntensity,
    subscribers: Subscribers,
    slots: BTreeMap<u64, DynSlot<Args>>,
    by_actor: HashMap<ActorId, u64>,
    next_key: u64,
    next_token: u64,
    rng: fastrand::Rng,
    span: tracing::Span,
    finished: bool,
}

fn child_id(key: u64) -> ChildId {
    ChildId::from(format!("#{key}"))
}

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
        if !state.finished {
            let span = state.span.clone();
            state.shutdown().instrument(span).await;
        }
        Ok(())
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        DynamicSupervisorMsg(request): Self::Msg,
        state: &mut DynState<Args>,
    ) -> Result<(), ActorProcessingErr> {
        match request {
            DynRequest::StartChild(args, reply) => {
                let result = state.api_start_child(&myself, args).await;
                let _ = reply.send(result);
            }
            DynRequest::TerminateChild(cell, reply) => {
                let result = state.api_terminate_child(&cell).await;
                let _ = reply.send(result);
            }
            DynRequest::WhichChildren(reply) => {
                let infos = state
                    .slots
                    .iter()
                    .map(|(&key, s)| DynamicChildInfo {
                        id: child_id(key),
                        cell: match &s.state {
                            DynSlotState::Running(c) => Some(c.clone()),
                            DynSlotState::Restarting { .. } => None,
                        },
                        generation: s.generation,
                    })
                    .collect();
                let _ = reply.send(infos);
            }
            DynRequest::CountChildren(reply) => {
                let n = state.slots.len();
                let (supervisors, workers) = match state.template.kind {
                    ChildKind::Supervisor => (n, 0),
                    ChildKind::Worker => (0, n),
                };
                let _ = reply.send(DynamicCounts {
                    specs: 1,
                    active: state.by_actor.len(),
                    supervisors,
                    workers,
                });
            }
            DynRequest::Subscribe(reply) => {
                let _ = reply.send(state.subscribers.subscribe());
            }
            DynRequest::Restart { key, token } => {
                let pending = state.slots.get(&key).is_some_and(
                    |s| matches!(s.state, DynSlotState::Restarting { token: t } if t == token),
                );
                if pending {
                    let span = state.span.clone();
                    return state.restart(&myself, key).instrument(span).await;
                }
            }
        }
        Ok(())
    }

    async fn handle_supervisor_evt(
        &self,
        myself: ActorRef<Self::Msg>,
        event: SupervisionEvent,
        state: &mut DynState<Args>,
    ) -> Result<(), ActorProcessingErr> {
        let Some((actor, reason)) = ExitReason::from_event(&event) else {
            return Ok(());
        };
        let Some(key) = state.by_actor.remove(&actor) else {
            return Ok(()); // stale: already stopped or replaced
        };
        let span = state.span.clone();
        state
            .child_exited(&myself, key, reason)
            .instrument(span)
            .await
    }
}

impl<Args: Clone + Send + Sync + 'static> DynState<Args> {
    async fn start(
        &mut self,
        myself: &ActorRef<DynamicSupervisorMsg<Args>>,
        key: u64,
        args: Args,
    ) -> Started {
        let generation = self.slots.get(&key).map_or(0, |s| s.generation) + 1;
        let ctx = ChildContext {
            supervisor: myself.get_cell(),
            id: child_id(key),
            generation,
            name: None,
        };
        let start = (self.template.start)(ctx, args);
        lifecycle::start_child(start, &myself.get_cell()).await
    }

    fn record_started(&mut self, key: u64, cell: &ActorCell, generation: u64) {
        self.by_actor.insert(cell.get_id(), key);
        let actor = cell.get_id();
        self.subscribers.emit(|| SupervisorEvent::ChildStarted {
            id: child_id(key),
            generation,
            actor,
        });
    }

    async fn api_start_child(
        &mut self,
        myself: &ActorRef<DynamicSupervisorMsg<Args>>,
        args: Args,
    ) -> Result<Option<ActorCell>, SupervisorError> {
        if let Some(max) = self.max_children {
            if self.slots.len() >= max {
                return Err(SupervisorError::MaxChildren(max));
            }
        }
        self.next_key += 1;
        let key = self.next_key;
        let keep = (self.template.restart != Restart::Temporary).then(|| args.clone());
        match self.start(myself, key, args).await {
            Started::Running(cell) => {
                self.slots.insert(
                    key,
                    DynSlot {
                        args: keep,
                        state: DynSlotState::Running(cell.clone()),
                        generation: 1,
                        started_at: Some(Instant::now()),
                        backoff: BackoffState::default(),
                    },
                );
                self.record_started(key, &cell, 1);
                Ok(Some(cell))
            }
            Started::Ignored => Ok(None),
            Started::Failed(reason) => Err(SupervisorError::StartFailed {
                id: child_id(key),
                reason,
            }),
        }
    }

    async fn api_terminate_child(&mut self, cell: &ActorCell) -> Result<(), SupervisorError> {
        let Some(key) = self.by_actor.remove(&cell.get_id()) else {
            if cell.get_status() >= ractor::ActorStatus::Stopping {
                return Ok(()); // a child that already ended (OTP: ok)
            }
            return Err(SupervisorError::NotFound(ChildId::from(
                cell.get_id().to_string(),
            )));
        };
        if let Some(slot) = self.slots.remove(&key) {
            let outcome = lifecycle::stop_child(cell, self.template.shutdown_policy()).await;
            let generation = slot.generation;
            self.subscribers.emit(|| SupervisorEvent::ChildStopped {
                id: child_id(key),
                generation,
                cause: StopCause::Terminated,
                outcome,
            });
        }
        Ok(())
    }

    async fn child_exited(
        &mut self,
        myself: &ActorRef<DynamicSupervisorMsg<Args>>,
        key: u64,
        reason: ExitReason,
    ) -> Result<(), ActorProcessingErr> {
        let Some(slot) = self.slots.get(&key) else {
            return Ok(());
        };
        let generation = slot.generation;
        let uptime = slot.started_at.map(|t| t.elapsed());
        tracing::debug!(child = key, generation, %reason, "dynamic child exited");
        self.subscribers.emit(|| SupervisorEvent::ChildExited {
            id: child_id(key),
            generation,
            reason: reason.clone(),
        });
        match exit_action(self.template.restart, reason.class) {
            ExitAction::Restart => {
                if self.schedule_restart(myself, key, uptime, true).await? {
                    self.restart(myself, key).await?;
                }
                Ok(())
            }
            ExitAction::Keep | ExitAction::Delete => {
                self.slots.remove(&key);
                self.subscribers
                    .emit(|| SupervisorEvent::ChildDeleted { id: child_id(key) });
                Ok(())
            }
        }
    }

    async fn schedule_restart(
        &mut self,
        myself: &ActorRef<DynamicSupervisorMsg<Args>>,
        key: u64,
        uptime: Option<Duration>,
        inline: bool,
    ) -> Result<bool, ActorProcessingErr> {
        let restarts_left = match self.intensity.record(Instant::now()) {
            IntensityDecision::Restart { remaining } => remaining,
            IntensityDecision::GiveUp { restarts } => {
                return Err(self.give_up(key, restarts).await.into());
            }
        };
        self.next_token += 1;
        let token = self.next_token;
        let Some(slot) = self.slots.get_mut(&key) else {
            return Ok(false);
        };
        slot.state = DynSlotState::Restarting { token };
        let delay = match &self.template.backoff {
            Some(policy) => slot.backoff.next_delay(policy, uptime, &mut self.rng),
            None => Duration::ZERO,
        };
        self.subscribers.emit(|| SupervisorEvent::RestartScheduled {
            id: child_id(key),
            delay,
            restarts_left,
        });
        let msg = move || DynamicSupervisorMsg(DynRequest::Restart { key, token });
        if delay.is_zero() {
            if inline {
                return Ok(true);
            }
            let _ = myself.send_message(msg());
        } else {
            myself.send_after(delay, msg);
        }
        Ok(false)
    }

    async fn restart(
        &mut self,
        myself: &ActorRef<DynamicSupervisorMsg<Args>>,
        key: u64,
    ) -> Result<(), ActorProcessingErr> {
        let Some(args) = self.slots.get(&key).and_then(|s| s.args.clone()) else {
            self.slots.remove(&key);
            return Ok(());
        };
        match self.start(myself, key, args).await {
            Started::Running(cell) => {
                let Some(slot) = self.slots.get_mut(&key) else {
                    return Ok(());
                };
                slot.generation += 1;
                slot.state = DynSlotState::Running(cell.clone());
                slot.started_at = Some(Instant::now());
                let generation = slot.generation;
                self.record_started(key, &cell, generation);
                Ok(())
            }
            Started::Ignored => {
                self.slots.remove(&key);
                self.subscribers
                    .emit(|| SupervisorEvent::ChildIgnored { id: child_id(key) });
                Ok(())
            }
            Started::Failed(reason) => {
                let generation = self.slots.get_mut(&key).map_or(0, |s| {
                    s.generation += 1;
                    s.generation
                });
                tracing::warn!(child = key, %reason, "dynamic child failed to restart");
                self.subscribers.emit(|| SupervisorEvent::ChildStartFailed {
                    id: child_id(key),
                    generation,
                    reason,
                });
                self.schedule_restart(myself, key, None, false).await?;
                Ok(())
            }
        }
    }

    async fn give_up(&mut self, key: u64, restarts: u32) -> IntensityExceeded {
        tracing::error!(
            child = key,
            restarts,
            "restart intensity exceeded: giving up"
        );
        self.subscribers.emit(|| SupervisorEvent::GaveUp {
            id: child_id(key),
            restarts,
        });
        self.shutdown().await;
        IntensityExceeded {
            supervisor: self.label.clone(),
            child: child_id(key),
            restarts,
            intensity: self.intensity.intensity(),
            period: self.intensity.period(),
        }
    }

    /// Stops every child in parallel, each by the template's shutdown policy.
    async fn shutdown(&mut self) {
        let shutdown = self.template.shutdown_policy();
        let running: Vec<ActorCell> = std::mem::take(&mut self.slots)
            .into_values()
            .filter_map(|s| match s.state {
                DynSlotState::Running(cell) => Some(cell),
                DynSlotState::Restarting { .. } => None,
            })
            .collect();
        self.by_actor.clear();
        futures::future::join_all(running.iter().map(|c| lifecycle::stop_child(c, shutdown))).await;
        self.finished = true;
        self.subscribers.emit(|| SupervisorEvent::Stopped);
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
    /// Wraps a cell if it is a dynamic supervisor whose children take `Args` (e.g. one nested
    /// in a tree: see [`SupervisorRef::child_dynamic`](super::SupervisorRef::child_dynamic)).
    pub fn from_cell(cell: ActorCell) -> Option<Self> {
        if cell.is_message_type_of::<DynamicSupervisorMsg<Args>>() == Some(true) {
            Some(DynamicSupervisorRef { actor: cell.into() })
        } else {
            None
        }
    }

    /// The supervisor's actor cell.
    pub fn get_cell(&self) -> ActorCell {
        self.actor.get_cell()
    }

    async fn request<T: Send + 'static>(
        &self,
        make: impl FnOnce(RpcReplyPort<T>) -> DynRequest<Args>,
    ) -> Result<T, SupervisorError> {
        match self
            .actor
            .call(|reply| DynamicSupervisorMsg(make(reply)), None)
            .await
        {
            Ok(ractor::rpc::CallResult::Success(value)) => Ok(value),
            _ => Err(SupervisorError::SupervisorStopped),
        }
    }

    /// Starts a child with these arguments. `Ok(None)` if its start said `Ignore` (nothing is
    /// kept); `MaxChildren` when full.
    pub async fn start_child(&self, args: Args) -> Result<Option<ActorCell>, SupervisorError> {
        self.request(|r| DynRequest::StartChild(args, r)).await?
    }

    /// Stops a child by the template's shutdown policy and forgets it. A cell that already
    /// ended is `Ok`; a live actor that is not a child is `NotFound`.
    pub async fn terminate_child(&self, cell: &ActorCell) -> Result<(), SupervisorError> {
        let cell = cell.clone();
        self.request(|r| DynRequest::TerminateChild(cell, r))
            .await?
    }

    /// Every child, oldest first.
    pub async fn which_children(&self) -> Result<Vec<DynamicChildInfo>, SupervisorError> {
        self.request(DynRequest::WhichChildren).await
    }

    /// Child counts.
    pub async fn count_children(&self) -> Result<DynamicCounts, SupervisorError> {
        self.request(DynRequest::CountChildren).await
    }

    /// Subscribes to the supervisor's events from now on.
    pub async fn subscribe(&self) -> Result<EventStream, SupervisorError> {
        self.request(DynRequest::Subscribe).await
    }

    /// Stops every child in parallel, then the supervisor; returns once it has ended.
    pub async fn stop(&self) {
        lifecycle::stop_supervisor(&self.actor.get_cell()).await;
    }

    /// Waits until the supervisor has ended.
    pub async fn wait(&self) {
        let _ = self.actor.get_cell().wait(None).await;
    }
}
