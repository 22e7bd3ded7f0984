//! The dynamic supervisor: OTP's `simple_one_for_one`.
//!
//! One [`ChildTemplate`], children added at run time with per-child arguments, an optional
//! `max_children`. It is the same supervisor as [`Supervisor`](super::Supervisor), one-for-one:
//! the same intensity window, backoff, events, significant children and auto-shutdown. What
//! differs is what OTP guards with `?is_simple`: each child is started from the template with
//! its own arguments (and restarted with them), is addressed by its cell, is forgotten when it
//! ends without a restart (a transient child's normal exit, any temporary exit), and all
//! children are stopped **in parallel** at shutdown.
//!
//! **Starting a child costs what spawning it does** (a departure from OTP, whose
//! `start_child` is a call to the supervisor, which starts children one at a time): the
//! caller of [`DynamicSupervisorRef::start_child`] runs the template's start itself, the child
//! linked to the supervisor from its first moment, then hands it over with a message
//! ([`Core::adopt`](super::core::Core::adopt)) and answers at once. [`Admission`] keeps what
//! must hold across callers: `max_children`, the ids (`#1`, `#2`, … in the order starts
//! began) and how many starts are under way, so that a child that ends before it is handed
//! over is still restarted or forgotten as its restart type says. Whatever is asked of the
//! supervisor after `start_child` answered (`which_children`, `terminate_child`, …) finds the
//! child, since its hand-over was sent first. A start whose caller stops waiting runs to its
//! end on its own task, so no child is left unsupervised; a child handed over once shutdown
//! has begun is stopped with the others. At most [`ROOM`] starts are under way at once:
//! beyond that `start_child` waits until the supervisor has caught up.

use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};

use ractor::{
    Actor, ActorCell, ActorProcessingErr, ActorRef, ActorStatus, RpcReplyPort, SupervisionEvent,
};
use tracing::Instrument;

use super::children::Key;
use super::core::{self, Adoption, ChildRef, Core, Dynamic, Request};
use super::lifecycle::{Started, Starting};
use super::spec::{ChildId, ChildSpec, ChildTemplate};
use super::Settings;
use crate::actors::spawn_actor;
use crate::error::{SpecError, StartError, SupervisorError};
use crate::observe::{Probe, TreeLink};

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
        let admission = Arc::new(Admission::new(self.max_children));
        let dynamic = Dynamic {
            admission: admission.clone(),
        };
        let (core, name) = self.settings.into_core("dynamic_supervisor", Some(dynamic));
        let intake = Arc::new(Intake {
            template: self.template,
            admission,
            tree: core.tree_link().clone(),
            span: core.span(),
        });
        let state = DynState {
            core,
            intake: intake.clone(),
        };
        let actor = DynActor::<Args>(PhantomData);
        let actor = spawn_actor(actor, state, name, parent).await?;
        Ok(DynamicSupervisorRef {
            actor,
            intake: OnceLock::from(intake),
        })
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
    /// A child a caller started, handed over.
    Adopt(Adoption),
    /// What a handle made from a cell needs to start children itself.
    Intake(RpcReplyPort<Arc<Intake<Args>>>),
    /// Anything a static supervisor serves too.
    Core(Request),
}

/// How many starts may be under way (begun, or handed over and not yet read by the
/// supervisor) before `start_child` waits for room: callers that start children faster than
/// the supervisor records them are held back rather than fill its mailbox.
pub(crate) const ROOM: usize = 1024;

/// What a dynamic supervisor shares with the callers that start its children: its maximum,
/// the keys it hands out, and the starts under way. Every count is exact under concurrent
/// starts: a start is admitted (or refused) before it begins.
#[derive(Debug)]
pub(crate) struct Admission {
    max_children: Option<usize>,
    /// With a maximum: children in the table plus starts under way.
    held: AtomicUsize,
    /// Starts admitted and not yet handed over to the supervisor.
    starting: AtomicUsize,
    /// The last key handed out.
    last_key: AtomicU64,
    /// Wakes the callers waiting for [`ROOM`].
    room: tokio::sync::Notify,
}

impl Admission {
    pub(crate) fn new(max_children: Option<usize>) -> Admission {
        Admission {
            max_children,
            held: AtomicUsize::new(0),
            starting: AtomicUsize::new(0),
            last_key: AtomicU64::new(0),
            room: tokio::sync::Notify::new(),
        }
    }

    /// Waits until fewer than [`ROOM`] starts are under way; `SupervisorStopped` if the
    /// supervisor ends first.
    pub(crate) async fn room(&self, supervisor: &ActorCell) -> Result<(), SupervisorError> {
        loop {
            let freed = self.room.notified();
            let mut freed = std::pin::pin!(freed);
            freed.as_mut().enable();
            if self.starting.load(Ordering::Acquire) < ROOM {
                return Ok(());
            }
            tokio::select! {
                _ = freed => {}
                _ = supervisor.wait(None) => return Err(SupervisorError::SupervisorStopped),
            }
        }
    }

    /// Admits one start: its key, or `MaxChildren` when the table and the starts under way
    /// already fill the maximum.
    pub(crate) fn admit(&self) -> Result<Key, SupervisorError> {
        if let Some(max) = self.max_children {
            self.held
                .fetch_update(Ordering::AcqRel, Ordering::Acquire, |held| {
                    (held < max).then_some(held + 1)
                })
                .map_err(|_| SupervisorError::MaxChildren(max))?;
        }
        self.starting.fetch_add(1, Ordering::AcqRel);
        Ok(self.last_key.fetch_add(1, Ordering::Relaxed) + 1)
    }

    /// One admitted start has been handed over; how many are still under way.
    pub(crate) fn handed_over(&self) -> usize {
        let before = self.starting.fetch_sub(1, Ordering::AcqRel);
        if before >= ROOM {
            self.room.notify_waiters();
        }
        before - 1
    }

    /// Starts admitted and not yet handed over.
    pub(crate) fn starting(&self) -> usize {
        self.starting.load(Ordering::Acquire)
    }

    /// A child has left the table (or its start did not keep it): its place is free.
    pub(crate) fn release(&self) {
        if self.max_children.is_some() {
            self.held.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

/// What a caller needs to start a child itself: the template, the admission, and the
/// supervisor's place in the tree and span (a child's start runs in a `child` span under it).
pub(crate) struct Intake<Args> {
    template: ChildTemplate<Args>,
    admission: Arc<Admission>,
    tree: TreeLink,
    span: tracing::Span,
}

impl<Args: Clone + Send + Sync + 'static> Intake<Args> {
    /// Begins a child of `supervisor` with `args` on the caller's side; the future ends once it
    /// has started and been handed over.
    fn start(
        &self,
        supervisor: &ActorRef<DynamicSupervisorMsg<Args>>,
        args: Args,
    ) -> Result<Handover<Args>, SupervisorError> {
        if supervisor.get_status() >= ActorStatus::Draining {
            return Err(SupervisorError::SupervisorStopped);
        }
        let key = self.admission.admit()?;
        let spec = self.template.spec_for(numbered(key), args);
        let starting = self
            .span
            .in_scope(|| Starting::new(&spec, 1, supervisor.get_cell(), &self.tree));
        Ok(Handover(Some(Begun {
            starting,
            supervisor: supervisor.clone(),
            admission: self.admission.clone(),
            key,
            spec,
        })))
    }
}

/// A dynamic child's id: `#` and its key.
fn numbered(key: Key) -> ChildId {
    let mut digits = [0u8; 24];
    let mut at = digits.len();
    let mut rest = key;
    loop {
        at -= 1;
        digits[at] = b'0' + (rest % 10) as u8;
        rest /= 10;
        if rest == 0 {
            break;
        }
    }
    at -= 1;
    digits[at] = b'#';
    ChildId::from(std::str::from_utf8(&digits[at..]).unwrap_or("#?"))
}

/// A caller-side start under way, and what its hand-over needs.
struct Begun<Args> {
    starting: Starting,
    supervisor: ActorRef<DynamicSupervisorMsg<Args>>,
    admission: Arc<Admission>,
    key: Key,
    spec: ChildSpec,
}

impl<Args: Clone + Send + Sync + 'static> Begun<Args> {
    /// Hands the child over once its start has ended, and answers the caller as
    /// `start_child` does.
    fn hand_over(self, started: Started, probe: Option<Probe>) -> StartAnswer {
        let answer = match &started {
            Started::Running(cell) => Ok(Some(cell.clone())),
            Started::Ignored => Ok(None),
            Started::Failed(reason) => Err(SupervisorError::StartFailed {
                id: self.spec.id.clone(),
                reason: reason.clone(),
            }),
        };
        // Nothing of an ignored or failed start is kept: its place is free before its caller
        // hears the outcome.
        if !matches!(started, Started::Running(_)) {
            self.admission.release();
        }
        let adoption = Adoption {
            key: self.key,
            spec: self.spec,
            started,
            probe,
        };
        // A supervisor gone meanwhile: its end stopped a child linked to it.
        let sent = self
            .supervisor
            .send_message(DynamicSupervisorMsg(DynRequest::Adopt(adoption)));
        sent.map_err(|_| SupervisorError::SupervisorStopped)
            .and(answer)
    }

    /// Drives the start in `slot`; once it has ended, hands the child over (see
    /// [`hand_over`](Self::hand_over)) and empties `slot`.
    fn poll_to_end(slot: &mut Option<Self>, cx: &mut Context<'_>) -> Poll<StartAnswer> {
        let Some(begun) = slot.as_mut() else {
            return Poll::Ready(Err(SupervisorError::SupervisorStopped)); // polled after its end
        };
        let (started, probe) = std::task::ready!(begun.starting.poll_start(cx));
        Poll::Ready(
            slot.take()
                .map_or(Err(SupervisorError::SupervisorStopped), |begun| {
                    begun.hand_over(started, probe)
                }),
        )
    }
}

type StartAnswer = Result<Option<ActorCell>, SupervisorError>;

/// The future of [`DynamicSupervisorRef::start_child`]. It runs to its end even if its caller
/// stops waiting: dropped early, it finishes on a task of its own, so a child it may already
/// have spawned is handed over.
struct Handover<Args: Clone + Send + Sync + 'static>(Option<Begun<Args>>);

impl<Args: Clone + Send + Sync + 'static> Future for Handover<Args> {
    type Output = StartAnswer;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<StartAnswer> {
        Begun::poll_to_end(&mut self.0, cx)
    }
}

impl<Args: Clone + Send + Sync + 'static> Drop for Handover<Args> {
    fn drop(&mut self) {
        let mut rest = self.0.take();
        if rest.is_some() {
            if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                runtime.spawn(std::future::poll_fn(move |cx| {
                    Begun::poll_to_end(&mut rest, cx)
                }));
            }
        }
    }
}

struct DynActor<Args>(PhantomData<fn() -> Args>);

struct DynState<Args> {
    core: Core,
    intake: Arc<Intake<Args>>,
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
        myself: ActorRef<Self::Msg>,
        state: &mut DynState<Args>,
    ) -> Result<(), ActorProcessingErr> {
        let span = state.core.span();
        state.core.shutdown().instrument(span).await;
        // A child handed over once the supervisor had stopped taking messages is linked to it
        // but not in its table (its start still counts as under way): stop it too, by the
        // template's policy, rather than leave it to ractor's kill.
        if state.intake.admission.starting() == 0 {
            return Ok(());
        }
        let shutdown = state.intake.template.shutdown_policy();
        let late = myself.get_children();
        futures::future::join_all(
            late.iter()
                .map(|cell| super::lifecycle::stop_child(cell, shutdown)),
        )
        .await;
        Ok(())
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        DynamicSupervisorMsg(request): Self::Msg,
        state: &mut DynState<Args>,
    ) -> Result<(), ActorProcessingErr> {
        match request {
            DynRequest::Adopt(adoption) => {
                let span = state.core.span();
                state.core.adopt(&myself, adoption).instrument(span).await
            }
            DynRequest::Intake(reply) => {
                let _ = reply.send(state.intake.clone());
                Ok(())
            }
            DynRequest::Core(request) => state.core.handle_request(&myself, request).await,
        }
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
    /// Asked of the supervisor once by a handle made from a cell.
    intake: OnceLock<Arc<Intake<Args>>>,
}

impl<Args> Clone for DynamicSupervisorRef<Args> {
    fn clone(&self) -> Self {
        DynamicSupervisorRef {
            actor: self.actor.clone(),
            intake: self.intake.clone(),
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
            Some(DynamicSupervisorRef {
                actor: cell.into(),
                intake: OnceLock::new(),
            })
        } else {
            None
        }
    }

    /// Starts a child with these arguments. `Ok(None)` if its start said `Ignore` (nothing is
    /// kept); `MaxChildren` when full; `StartFailed` if its start failed.
    ///
    /// The start runs on the caller's side, the child linked to the supervisor from its first
    /// moment, and is then handed over to it by message: a start costs about what spawning the
    /// actor does, and starts from many callers run at once (OTP's supervisor starts them one
    /// at a time). Once this returns, anything asked of the supervisor finds the child; a
    /// child that ends even before it is handed over is restarted or forgotten as its restart
    /// type says. If the returned future is dropped before it ends, the start still runs to
    /// its end and the child, if it started, is supervised. While 1 024 starts wait for the
    /// supervisor to record them, further calls wait for room, so callers faster than the
    /// supervisor cannot fill its mailbox.
    pub async fn start_child(&self, args: Args) -> Result<Option<ActorCell>, SupervisorError> {
        let intake = match self.intake.get() {
            Some(intake) => intake,
            None => {
                let intake =
                    core::call(&self.actor, |r| DynamicSupervisorMsg(DynRequest::Intake(r)))
                        .await?;
                self.intake.get_or_init(|| intake)
            }
        };
        if intake.admission.starting() >= ROOM {
            intake.admission.room(&self.actor.get_cell()).await?;
        }
        intake.start(&self.actor, args)?.await
    }

    /// Stops a child by the template's shutdown policy and forgets it. A cell that already
    /// ended is `Ok`; a live actor that is not a child is `NotFound`.
    pub async fn terminate_child(&self, cell: &ActorCell) -> Result<(), SupervisorError> {
        let child = ChildRef::Cell(cell.clone());
        self.request(|r| Request::TerminateChild(child, r)).await?
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_hash_and_key() {
        assert_eq!(numbered(1).as_str(), "#1");
        assert_eq!(numbered(10).as_str(), "#10");
        assert_eq!(numbered(907).as_str(), "#907");
        assert_eq!(numbered(u64::MAX).as_str(), format!("#{}", u64::MAX));
    }

    #[test]
    fn admission_counts_starts_under_way_toward_the_maximum() {
        let admission = Admission::new(Some(2));
        assert_eq!(admission.admit(), Ok(1));
        assert_eq!(admission.admit(), Ok(2));
        assert_eq!(admission.admit(), Err(SupervisorError::MaxChildren(2)));
        assert_eq!(admission.starting(), 2);
        // Handed over, both still hold their place until they leave the table.
        assert_eq!(admission.handed_over(), 1);
        assert_eq!(admission.handed_over(), 0);
        assert_eq!(admission.admit(), Err(SupervisorError::MaxChildren(2)));
        admission.release();
        assert_eq!(admission.admit(), Ok(3), "keys never repeat");
    }

    /// An actor that does nothing: a supervisor's cell for `room` to watch.
    struct Idle;

    #[cfg_attr(feature = "async-trait", ractor::async_trait)]
    impl Actor for Idle {
        type Msg = ();
        type State = ();
        type Arguments = ();

        async fn pre_start(&self, _: ActorRef<()>, _: ()) -> Result<(), ActorProcessingErr> {
            Ok(())
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_caller_waits_for_room_while_the_supervisor_is_behind() {
        let (supervisor, _) = Actor::spawn(None, Idle, ()).await.expect("spawn");
        let admission = Admission::new(None);
        for _ in 0..ROOM {
            admission.admit().expect("no maximum");
        }
        let cell = supervisor.get_cell();
        let mut waiting = std::pin::pin!(admission.room(&cell));
        assert!(
            futures::poll!(waiting.as_mut()).is_pending(),
            "{ROOM} under way: full"
        );
        admission.handed_over();
        let freed = tokio::time::timeout(std::time::Duration::from_secs(1), waiting).await;
        assert_eq!(freed.ok(), Some(Ok(())), "one handed over: room again");

        admission.admit().expect("no maximum");
        let mut waiting = std::pin::pin!(admission.room(&cell));
        assert!(futures::poll!(waiting.as_mut()).is_pending());
        supervisor.stop(None);
        let ended = tokio::time::timeout(std::time::Duration::from_secs(1), waiting).await;
        assert_eq!(
            ended.ok(),
            Some(Err(SupervisorError::SupervisorStopped)),
            "a supervisor that ends releases its waiting callers"
        );
    }

    #[test]
    fn without_a_maximum_every_start_is_admitted() {
        let admission = Admission::new(None);
        for key in 1..=1000 {
            assert_eq!(admission.admit(), Ok(key));
        }
        assert_eq!(admission.starting(), 1000);
        admission.release(); // nothing held to count
    }
}
