//! What a supervisor is told: child specs and supervisor flags, with their validation.
//!
//! A [`ChildSpec`] says how to start a child and what to do when it ends; [`SupervisorFlags`]
//! say how the supervisor reacts to ends (strategy, restart intensity, auto-shutdown). Both
//! follow OTP's `supervisor` child spec and `sup_flags`, with the same defaults. A
//! [`ChildTemplate`] is the spec of a dynamic supervisor's children, short of their arguments.

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use futures::FutureExt;
use ractor::{Actor, ActorCell, ActorProcessingErr};

use super::backoff::Backoff;
use crate::error::SpecError;

/// A child's id: unique among the children of one supervisor (not a global name).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ChildId(Arc<str>);

impl ChildId {
    /// The id as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl From<&str> for ChildId {
    fn from(s: &str) -> Self {
        ChildId(Arc::from(s))
    }
}

impl From<String> for ChildId {
    fn from(s: String) -> Self {
        ChildId(Arc::from(s))
    }
}

impl From<&ChildId> for ChildId {
    fn from(id: &ChildId) -> Self {
        id.clone()
    }
}

impl fmt::Display for ChildId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for ChildId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

impl PartialEq<str> for ChildId {
    fn eq(&self, other: &str) -> bool {
        &*self.0 == other
    }
}

impl PartialEq<&str> for ChildId {
    fn eq(&self, other: &&str) -> bool {
        &*self.0 == *other
    }
}

/// When a child that ended by itself is restarted (OTP's restart type).
///
/// | restart | normal exit | shutdown exit | abnormal exit |
/// |---|---|---|---|
/// | `Permanent` | restart | restart | restart |
/// | `Transient` | keep spec, not running | keep spec, not running | restart |
/// | `Temporary` | delete spec | delete spec | delete spec |
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Restart {
    /// Always restarted.
    #[default]
    Permanent,
    /// Restarted only after an abnormal exit.
    Transient,
    /// Never restarted; its spec is deleted when it ends.
    Temporary,
}

/// How a supervisor stops a child: OTP's `shutdown` field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Shutdown {
    /// Kill at once (ractor's `kill`); the child's `post_stop` does not run.
    BrutalKill,
    /// Ask the child to stop (reason `"shutdown"`), wait up to this long, then kill it.
    Timeout(Duration),
    /// Ask the child to stop and wait as long as it takes (the default for supervisors).
    Infinity,
}

/// The default shutdown of a worker child, as in OTP (5 s).
pub const DEFAULT_WORKER_SHUTDOWN: Shutdown = Shutdown::Timeout(Duration::from_secs(5));

/// Whether a child is a worker or a supervisor; decides the default [`Shutdown`] and the
/// counts of [`ChildCounts`](crate::supervisor::ChildCounts).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum ChildKind {
    /// A worker (default shutdown: 5 s, then kill).
    #[default]
    Worker,
    /// A supervisor (default shutdown: `Infinity`, so its own children stop in order).
    Supervisor,
}

impl ChildKind {
    /// The shutdown a child of this kind gets unless its spec sets one (OTP's defaults).
    pub fn default_shutdown(self) -> Shutdown {
        match self {
            ChildKind::Worker => DEFAULT_WORKER_SHUTDOWN,
            ChildKind::Supervisor => Shutdown::Infinity,
        }
    }
}

/// Which children are restarted when one of them must be restarted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Strategy {
    /// Only the child that ended.
    #[default]
    OneForOne,
    /// Every child: the others are stopped in reverse start order, then all start in order.
    OneForAll,
    /// The child that ended and those started after it.
    RestForOne,
}

/// When the end of a *significant* child stops the whole supervisor (OTP 24's
/// `auto_shutdown`). Only exits that are not restarted count; API stops and bystanders of a
/// sibling's restart never do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum AutoShutdown {
    /// Never (default); `significant` children are then invalid.
    #[default]
    Never,
    /// When any significant child ends and is not restarted.
    AnySignificant,
    /// When no significant child is left running.
    AllSignificant,
}

/// Supervisor flags: strategy, restart intensity and auto-shutdown.
///
/// Defaults as in OTP: one-for-one, at most 1 restart in 5 s, no auto-shutdown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SupervisorFlags {
    /// Which children a restart touches.
    pub strategy: Strategy,
    /// At most this many restarts within `period`; one more and the supervisor gives up.
    pub intensity: u32,
    /// The sliding window of the intensity limit; must not be zero.
    pub period: Duration,
    /// When significant children stop the supervisor.
    pub auto_shutdown: AutoShutdown,
}

impl Default for SupervisorFlags {
    fn default() -> Self {
        SupervisorFlags {
            strategy: Strategy::OneForOne,
            intensity: 1,
            period: Duration::from_secs(5),
            auto_shutdown: AutoShutdown::Never,
        }
    }
}

impl SupervisorFlags {
    /// Checks the flags: the period must not be zero.
    pub fn validate(&self) -> Result<(), SpecError> {
        if self.period.is_zero() {
            return Err(SpecError::ZeroPeriod);
        }
        Ok(())
    }
}

/// What a child's start function hands to it: the supervisor to link to and the child's
/// identity.
#[derive(Debug, Clone)]
pub struct ChildContext {
    pub(crate) supervisor: ActorCell,
    pub(crate) id: ChildId,
    pub(crate) generation: u64,
    pub(crate) name: Option<String>,
    /// For an observable child: where it leaves its probe.
    pub(crate) probe: Option<crate::observe::ProbeSlot>,
    /// For an observable child: its place in the tree's event stream (if it is a supervisor).
    pub(crate) tree: Option<crate::observe::TreePlace>,
}

impl ChildContext {
    /// Leaves the starting child's probe for its supervisor (an observable child's start
    /// function calls it once it has spawned).
    pub(crate) fn offer_probe(&self, probe: crate::observe::Probe) {
        if let Some(slot) = &self.probe {
            let _ = slot.set(probe);
        }
    }

    /// The supervisor's cell: spawn the child linked to it
    /// (`Actor::spawn_linked(name, actor, args, ctx.supervisor().clone())`).
    pub fn supervisor(&self) -> &ActorCell {
        &self.supervisor
    }

    /// The child's id within its supervisor.
    pub fn id(&self) -> &ChildId {
        &self.id
    }

    /// Which incarnation this start makes (1 for the first start, +1 per start after).
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// The ractor registry name the spec asked for, if any.
    pub fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }

    /// Spawns `actor` linked to the supervisor under the spec's registry name and returns the
    /// started child: what most start functions do.
    pub async fn spawn_linked<A: Actor>(
        &self,
        actor: A,
        args: A::Arguments,
    ) -> Result<ChildStart, ActorProcessingErr> {
        let (actor_ref, _join) =
            Actor::spawn_linked(self.name.clone(), actor, args, self.supervisor.clone()).await?;
        Ok(ChildStart::Started(actor_ref.get_cell()))
    }
}

/// What a start function returns on success (OTP's `{ok, Pid}` or `ignore`).
#[derive(Debug, Clone)]
pub enum ChildStart {
    /// The child runs; its cell should be linked to the supervisor (it is linked if not).
    Started(ActorCell),
    /// Nothing to run now; the spec is kept as not running (a temporary spec is dropped).
    Ignore,
}

/// The result of a start function; an `Err` (or a panic) is a failed start.
pub type StartResult = Result<ChildStart, ActorProcessingErr>;

pub(crate) type StartFn =
    Arc<dyn Fn(ChildContext) -> BoxFuture<'static, StartResult> + Send + Sync>;

/// How to start one child and what to do when it ends.
///
/// ```
/// use std::time::Duration;
/// use ractor::{Actor, ActorProcessingErr, ActorRef};
/// use ractor_otp::prelude::*;
///
/// #[derive(Clone)]
/// struct Echo;
/// # #[cfg_attr(feature = "async-trait", ractor_otp::ractor::async_trait)]
/// impl Actor for Echo {
///     type Msg = String;
///     type State = ();
///     type Arguments = ();
///     async fn pre_start(&self, _: ActorRef<String>, _: ()) -> Result<(), ActorProcessingErr> {
///         Ok(())
///     }
/// }
///
/// // From an actor value and cloneable arguments:
/// let echo = ChildSpec::from_actor("echo", Echo, ())
///     .restart(Restart::Transient)
///     .shutdown(Shutdown::Timeout(Duration::from_secs(1)));
///
/// // Or from any async start function:
/// let custom = ChildSpec::new("custom", |ctx: ChildContext| async move {
///     ctx.spawn_linked(Echo, ()).await
/// });
/// # let _ = (echo, custom);
/// ```
#[derive(Clone)]
pub struct ChildSpec {
    pub(crate) id: ChildId,
    pub(crate) start: StartFn,
    /// Shared, so the specs of a dynamic supervisor's children cost one pointer each.
    pub(crate) policy: Arc<ChildPolicy>,
}

/// What a spec says beyond its id and start function.
#[derive(Debug, Clone)]
pub(crate) struct ChildPolicy {
    pub(crate) restart: Restart,
    pub(crate) shutdown: Option<Shutdown>,
    pub(crate) kind: ChildKind,
    pub(crate) significant: bool,
    pub(crate) backoff: Option<Backoff>,
    pub(crate) name: Option<String>,
    /// The child hands its supervisor a probe when it starts (a nested supervisor, a pool, a
    /// job runner), so tree snapshots look into it.
    pub(crate) observable: bool,
}

/// Something that becomes a child spec once given an id: the builder of a nested supervisor,
/// a pool or a dynamic supervisor. The [`supervisor!`](crate::supervisor!) macro turns a child
/// given as an expression into a spec through it.
#[diagnostic::on_unimplemented(
    message = "`{Self}` can't be a child: it does not turn into a child spec",
    label = "not a child",
    note = "a child is `actor(MyActor, args)`, `start(|ctx| async move {{ .. }})`, a nested \
            `supervisor! {{ .. }}`, or a builder with `into_child_spec` (`Pool::builder(..)`, \
            `DynamicSupervisor::builder(..)`, `Supervisor::builder()`)"
)]
pub trait IntoChildSpec {
    /// The child spec with this id.
    fn into_child_spec(self, id: ChildId) -> ChildSpec;
}

/// A spec given where an id is given too (a `supervisor!` child): the given id wins, so the
/// tree shows one id per child.
impl IntoChildSpec for ChildSpec {
    fn into_child_spec(mut self, id: ChildId) -> ChildSpec {
        self.id = id;
        self
    }
}

impl fmt::Debug for ChildSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChildSpec")
            .field("id", &self.id)
            .field("restart", &self.policy.restart)
            .field("shutdown", &self.shutdown_policy())
            .field("kind", &self.policy.kind)
            .field("significant", &self.policy.significant)
            .field("backoff", &self.policy.backoff)
            .field("name", &self.policy.name)
            .finish()
    }
}

impl ChildSpec {
    /// A child started by an async function. The function must spawn the child linked to
    /// `ctx.supervisor()` (an unlinked child is linked by the supervisor) and return
    /// [`ChildStart::Started`], or [`ChildStart::Ignore`]; an `Err` or a panic is a failed start.
    pub fn new<F, Fut>(id: impl Into<ChildId>, start: F) -> Self
    where
        F: Fn(ChildContext) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = StartResult> + Send + 'static,
    {
        ChildSpec {
            id: id.into(),
            start: Arc::new(move |ctx| start(ctx).boxed()),
            policy: Arc::new(ChildPolicy {
                restart: Restart::default(),
                shutdown: None,
                kind: ChildKind::default(),
                significant: false,
                backoff: None,
                name: None,
                observable: false,
            }),
        }
    }

    /// Marks the child as one that hands its supervisor a probe when it starts
    /// ([`ChildContext::offer_probe`]).
    pub(crate) fn observable(mut self) -> Self {
        Arc::make_mut(&mut self.policy).observable = true;
        self
    }

    /// A child that runs `actor` with a clone of `args` at every start.
    pub fn from_actor<A>(id: impl Into<ChildId>, actor: A, args: A::Arguments) -> Self
    where
        A: Actor + Clone,
        A::Arguments: Clone + Sync,
    {
        ChildSpec::new(id, move |ctx: ChildContext| {
            let actor = actor.clone();
            let args = args.clone();
            async move { ctx.spawn_linked(actor, args).await }
        })
    }

    /// Sets the restart type (default [`Restart::Permanent`]).
    pub fn restart(mut self, restart: Restart) -> Self {
        Arc::make_mut(&mut self.policy).restart = restart;
        self
    }

    /// Sets how the child is stopped (default: 5 s for workers, `Infinity` for supervisors).
    pub fn shutdown(mut self, shutdown: Shutdown) -> Self {
        Arc::make_mut(&mut self.policy).shutdown = Some(shutdown);
        self
    }

    /// Marks the child as a worker or a supervisor (default worker).
    pub fn kind(mut self, kind: ChildKind) -> Self {
        Arc::make_mut(&mut self.policy).kind = kind;
        self
    }

    /// Marks the child as significant for [`AutoShutdown`] (default false). A significant child
    /// must not be `Permanent`, and the supervisor's auto-shutdown must not be `Never`.
    pub fn significant(mut self, significant: bool) -> Self {
        Arc::make_mut(&mut self.policy).significant = significant;
        self
    }

    /// Delays restarts of this child by a [`Backoff`] policy (default: restart at once).
    pub fn backoff(mut self, backoff: Backoff) -> Self {
        Arc::make_mut(&mut self.policy).backoff = Some(backoff);
        self
    }

    /// Registers each incarnation under this ractor registry name (a global name; off by
    /// default). A restart starts the next incarnation only after the old one is gone.
    pub fn registered_name(mut self, name: impl Into<String>) -> Self {
        Arc::make_mut(&mut self.policy).name = Some(name.into());
        self
    }

    /// The child's id.
    pub fn id(&self) -> &ChildId {
        &self.id
    }

    /// The restart type.
    pub fn restart_type(&self) -> Restart {
        self.policy.restart
    }

    /// The child kind.
    pub fn child_kind(&self) -> ChildKind {
        self.policy.kind
    }

    /// Whether the child is significant.
    pub fn is_significant(&self) -> bool {
        self.policy.significant
    }

    /// The shutdown in force: the one set, or the default for the child's kind.
    pub fn shutdown_policy(&self) -> Shutdown {
        let policy = &self.policy;
        policy.shutdown.unwrap_or(policy.kind.default_shutdown())
    }

    /// Checks this spec against the supervisor's auto-shutdown setting (OTP's `bad_combination`).
    pub fn validate(&self, auto_shutdown: AutoShutdown) -> Result<(), SpecError> {
        if self.id.as_str().is_empty() {
            return Err(SpecError::EmptyId);
        }
        let policy = &self.policy;
        if policy.significant && policy.restart == Restart::Permanent {
            return Err(SpecError::SignificantPermanent(self.id.clone()));
        }
        if policy.significant && auto_shutdown == AutoShutdown::Never {
            return Err(SpecError::SignificantWithoutAutoShutdown(self.id.clone()));
        }
        if let Some(b) = &policy.backoff {
            b.validate().map_err(|reason| SpecError::InvalidBackoff {
                id: self.id.clone(),
                reason,
            })?;
        }
        Ok(())
    }
}

/// Checks a whole child list: each spec, and that no id appears twice.
pub(crate) fn validate_children(
    specs: &[ChildSpec],
    flags: &SupervisorFlags,
) -> Result<(), SpecError> {
    flags.validate()?;
    let mut seen = std::collections::HashSet::new();
    for spec in specs {
        spec.validate(flags.auto_shutdown)?;
        if !seen.insert(spec.id.clone()) {
            return Err(SpecError::DuplicateId(spec.id.clone()));
        }
    }
    Ok(())
}

type TemplateFn<Args> =
    Arc<dyn Fn(ChildContext, Args) -> BoxFuture<'static, StartResult> + Send + Sync>;

/// How every child of a [`DynamicSupervisor`](super::DynamicSupervisor) is started (with its own arguments) and what to
/// do when one ends.
///
/// ```
/// use ractor::{Actor, ActorProcessingErr, ActorRef};
/// use ractor_otp::prelude::*;
///
/// #[derive(Clone)]
/// struct Session;
/// # #[cfg_attr(feature = "async-trait", ractor_otp::ractor::async_trait)]
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
    /// Everything but the start function: each child's spec is a copy with its id and its
    /// arguments bound.
    settings: ChildSpec,
}

impl<Args> Clone for ChildTemplate<Args> {
    fn clone(&self) -> Self {
        ChildTemplate {
            start: self.start.clone(),
            settings: self.settings.clone(),
        }
    }
}

impl<Args> fmt::Debug for ChildTemplate<Args> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChildTemplate")
            .field("restart", &self.settings.policy.restart)
            .field("shutdown", &self.settings.shutdown_policy())
            .field("kind", &self.settings.policy.kind)
            .field("significant", &self.settings.policy.significant)
            .field("backoff", &self.settings.policy.backoff)
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
            settings: ChildSpec::new("template", |_| async { Ok(ChildStart::Ignore) }),
        }
    }

    /// Sets the restart type of every child (default permanent).
    pub fn restart(mut self, restart: Restart) -> Self {
        Arc::make_mut(&mut self.settings.policy).restart = restart;
        self
    }

    /// Sets how children are stopped (default 5 s for workers, `Infinity` for supervisors).
    pub fn shutdown(mut self, shutdown: Shutdown) -> Self {
        Arc::make_mut(&mut self.settings.policy).shutdown = Some(shutdown);
        self
    }

    /// Marks the children as workers or supervisors (default workers).
    pub fn kind(mut self, kind: ChildKind) -> Self {
        Arc::make_mut(&mut self.settings.policy).kind = kind;
        self
    }

    /// Delays each child's restarts by a backoff policy.
    pub fn backoff(mut self, backoff: Backoff) -> Self {
        Arc::make_mut(&mut self.settings.policy).backoff = Some(backoff);
        self
    }

    /// Marks every child as significant for the supervisor's
    /// [`auto_shutdown`](super::DynamicSupervisorBuilder::auto_shutdown) (default false). Significant
    /// children must not be `Permanent`.
    pub fn significant(mut self, significant: bool) -> Self {
        Arc::make_mut(&mut self.settings.policy).significant = significant;
        self
    }

    /// Checks the template against the supervisor's auto-shutdown setting; errors name the
    /// child `template`.
    pub(crate) fn validate(&self, auto_shutdown: AutoShutdown) -> Result<(), SpecError> {
        self.settings.validate(auto_shutdown)
    }

    /// How the template's children are stopped.
    pub(crate) fn shutdown_policy(&self) -> Shutdown {
        self.settings.shutdown_policy()
    }

    /// The spec of one child: the template's settings, this id, these arguments.
    pub(crate) fn spec_for(&self, id: ChildId, args: Args) -> ChildSpec {
        let start = self.start.clone();
        ChildSpec {
            id,
            start: Arc::new(move |ctx| start(ctx, args.clone())),
            policy: self.settings.policy.clone(),
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(id: &str) -> ChildSpec {
        ChildSpec::new(id, |_ctx| async { Ok(ChildStart::Ignore) })
    }

    #[test]
    fn defaults_follow_otp() {
        let s = spec("a");
        assert_eq!(s.restart_type(), Restart::Permanent);
        assert_eq!(
            s.shutdown_policy(),
            Shutdown::Timeout(Duration::from_secs(5))
        );
        let sup = spec("s").kind(ChildKind::Supervisor);
        assert_eq!(sup.shutdown_policy(), Shutdown::Infinity);
        let f = SupervisorFlags::default();
        assert_eq!(f.strategy, Strategy::OneForOne);
        assert_eq!(f.intensity, 1);
        assert_eq!(f.period, Duration::from_secs(5));
        assert_eq!(f.auto_shutdown, AutoShutdown::Never);
    }

    #[test]
    fn bad_combinations_are_typed_errors() {
        let any = AutoShutdown::AnySignificant;
        assert_eq!(
            spec("a").significant(true).validate(any),
            Err(SpecError::SignificantPermanent("a".into()))
        );
        assert_eq!(
            spec("a")
                .significant(true)
                .restart(Restart::Transient)
                .validate(AutoShutdown::Never),
            Err(SpecError::SignificantWithoutAutoShutdown("a".into()))
        );
        assert!(spec("a")
            .significant(true)
            .restart(Restart::Temporary)
            .validate(any)
            .is_ok());
        assert_eq!(spec("").validate(any), Err(SpecError::EmptyId));
    }

    #[test]
    fn duplicate_ids_and_zero_period_are_rejected() {
        let flags = SupervisorFlags::default();
        assert_eq!(
            validate_children(&[spec("a"), spec("b"), spec("a")], &flags),
            Err(SpecError::DuplicateId("a".into()))
        );
        let zero = SupervisorFlags {
            period: Duration::ZERO,
            ..flags
        };
        assert_eq!(validate_children(&[], &zero), Err(SpecError::ZeroPeriod));
    }
}
