//! # ractor-otp
//!
//! Erlang/OTP-grade supervision for Rust, on [`ractor`](mod@ractor) and tokio: supervision
//! trees with one-for-one, one-for-all and rest-for-one strategies, restart intensity with
//! escalation, ordered shutdown, dynamic supervisors and supervised tasks. Any `ractor` actor
//! can be a child. The ractor this crate is built on is re-exported as [`ractor`](mod@ractor):
//! use it, and one version of ractor is in your build.
//!
//! Modules: [`supervisor`](mod@supervisor) (trees), [`pool`] (a router over supervised
//! [`worker`](mod@worker)s with backpressure, timeouts and stats), [`jobs`] (durable jobs that
//! survive crashes and reboots, on an embedded SQLite queue or a PostgreSQL one shared by many
//! machines: leases, retries, not-before times, resources, fan-in), [`exit`] (how an actor's
//! end is classified), [`error`]. Macros: [`#[worker]`](macro@worker) turns an impl block of async
//! methods into a worker, a supervised actor and a typed client; [`supervisor!`](macro@supervisor)
//! writes a tree as the tree. Both expand
//! to the public API above (their docs show the expansion) and are in the [`prelude`].
//!
//! ```
//! use ractor_otp::ractor::{Actor, ActorProcessingErr, ActorRef};
//! use ractor_otp::prelude::*;
//!
//! #[derive(Clone)]
//! struct Counter;
//! # #[cfg_attr(feature = "async-trait", ractor_otp::ractor::async_trait)]
//! impl Actor for Counter {
//!     type Msg = u64;
//!     type State = u64;
//!     type Arguments = ();
//!     async fn pre_start(&self, _: ActorRef<u64>, _: ()) -> Result<u64, ActorProcessingErr> {
//!         Ok(0)
//!     }
//!     async fn handle(&self, _: ActorRef<u64>, n: u64, total: &mut u64) -> Result<(), ActorProcessingErr> {
//!         *total += n;
//!         Ok(())
//!     }
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let sup = Supervisor::builder()
//!     .strategy(Strategy::OneForAll)
//!     .child(ChildSpec::from_actor("counter", Counter, ()))
//!     .spawn()
//!     .await?;
//! let counter = sup.child_ref::<u64>("counter").await?;
//! counter.cast(5)?;
//! sup.stop().await;
//! # Ok(())
//! # }
//! ```
//!
//! ## OTP → ractor-otp
//!
//! | Erlang/OTP | ractor-otp |
//! |---|---|
//! | `supervisor:start_link(M, Args)` with `init/1` | [`Supervisor::builder()`](supervisor::Supervisor::builder)`...spawn()` / `spawn_linked(parent)` |
//! | `sup_flags` `#{strategy, intensity, period, auto_shutdown}` | [`SupervisorFlags`](supervisor::SupervisorFlags), builder methods |
//! | `one_for_one` / `one_for_all` / `rest_for_one` | [`Strategy`](supervisor::Strategy) |
//! | `simple_one_for_one` | [`DynamicSupervisor`](supervisor::DynamicSupervisor) |
//! | child spec `#{id, start, restart, shutdown, type, significant}` | [`ChildSpec`](supervisor::ChildSpec) |
//! | `permanent` / `transient` / `temporary` | [`Restart`](supervisor::Restart) |
//! | `brutal_kill` / `Timeout` / `infinity` | [`Shutdown`](supervisor::Shutdown) |
//! | `start_child`, `terminate_child`, `restart_child`, `delete_child` | [`SupervisorRef`](supervisor::SupervisorRef) methods of the same names |
//! | `which_children`, `count_children` | [`SupervisorRef::which_children`](supervisor::SupervisorRef::which_children), [`count_children`](supervisor::SupervisorRef::count_children) |
//! | `ignore` from a start function | [`ChildStart::Ignore`](supervisor::ChildStart) |
//! | `reached_max_restart_intensity`, exit `shutdown` | exit **abnormally** with [`IntensityExceeded`](error::IntensityExceeded) |
//!
//! ## Choices that differ from OTP
//!
//! * **Giving up is a failure.** OTP's supervisor exits with `shutdown` when the restart
//!   intensity is exceeded, so a *transient* parent entry would not restart it. Here it exits
//!   abnormally (ractor's `ActorFailed` carrying [`IntensityExceeded`](error::IntensityExceeded)),
//!   so escalation never depends on the parent's restart type.
//! * **Time** is tokio's clock with full precision, not whole seconds: a window of `period`
//!   means exactly `period` (inclusive), and tests drive it with a paused clock.
//! * **`which_children`** lists children in start order (OTP lists newest first).
//! * **A dynamic supervisor's `start_child` runs on the caller's side**
//!   ([`DynamicSupervisorRef::start_child`](supervisor::DynamicSupervisorRef::start_child)):
//!   the caller starts the child, linked to the supervisor, and hands it over; OTP's
//!   `start_child` is a call the supervisor serves, one start at a time. Starts from many
//!   callers run at once and cost what spawning does; `max_children`, the restart type and the
//!   events hold as in OTP, and anything asked of the supervisor afterwards finds the child.
//! * **Backoff**: a child may delay its restarts ([`Backoff`](supervisor::Backoff)).
//!
//! ## How exits are classified
//!
//! See [`exit`]: no reason or `"normal"` is *normal*; `"shutdown"`, `"shutdown:…"` or a drain is
//! *shutdown*; a panic, an `Err` from a handler, a kill, or any other reason is *abnormal*.
//!
//! ## Features
//!
//! * `sqlite` (on by default): durable jobs ([`jobs`], feature `jobs`) with the embedded
//!   SQLite store. Supervision and pools need neither: with `default-features = false` no
//!   database client is compiled.
//! * `postgres`: the PostgreSQL job store, `jobs::PostgresStore` (turns on `jobs`).
//! * `cluster`: turns on `ractor/cluster` and implements `ractor::Message` for our message
//!   types. Enable it whenever anything in your build enables `ractor/cluster`.
//! * `async-trait`: turns on `ractor/async-trait` (under which `ractor::Actor` is an
//!   `#[async_trait]` trait) and writes every actor of this crate and of its macros that way.
//!   Enable it whenever anything in your build enables `ractor/async-trait`; your own `impl
//!   Actor` blocks then carry `#[ractor_otp::ractor::async_trait]`.

#![warn(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]

/// The README's example, compiled and run as a doctest. It writes its actor for native async
/// traits, as a user would, so it is left out when the `async-trait` feature is on.
#[cfg(all(doctest, feature = "sqlite", not(feature = "async-trait")))]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;

// Lets the macros' `::ractor_otp::...` paths resolve inside this crate too.
extern crate self as ractor_otp;

mod actors;
pub mod error;
pub mod exit;
#[cfg(feature = "jobs")]
#[cfg_attr(docsrs, doc(cfg(feature = "jobs")))]
pub mod jobs;
pub mod observe;
pub mod pool;
pub mod supervisor;
pub mod worker;

/// The ractor this crate is built on, so that your code and generated code name the same one.
pub use ractor;

pub use ractor_otp_macros::{supervisor, worker};

/// The names most programs need: `use ractor_otp::prelude::*;`.
pub mod prelude {
    pub use crate::error::{
        IntensityExceeded, PoolConfigError, SpecError, StartError, StartFailure, SupervisorError,
    };
    pub use crate::exit::{ExitClass, ExitReason};
    pub use crate::pool::{
        KeyHash, LeastBusy, Overflow, Pool, PoolRef, PoolStats, PowerOfTwo, Priority, RoundRobin,
        TaskOptions, Weighted,
    };
    pub use crate::supervisor::{
        AutoShutdown, Backoff, ChildContext, ChildId, ChildInfo, ChildKind, ChildSpec, ChildStart,
        ChildStatus, ChildTemplate, DynamicSupervisor, DynamicSupervisorRef, EventStream, Restart,
        Shutdown, Strategy, Supervisor, SupervisorEvent, SupervisorRef,
    };
    pub use crate::worker::{Call, TaskError, Worker, WorkerContext, WorkerHandle};
    pub use crate::{supervisor, worker};
    pub use ractor::ActorProcessingErr;
}

/// Support for the code the macros generate. Not part of the public API.
#[doc(hidden)]
pub mod __private {
    pub use ractor;

    /// A `Result`-like return type of a worker method: its success and error types.
    #[diagnostic::on_unimplemented(
        message = "`{Self}` is named `Result` but is not a `Result<T, E>`",
        note = "`#[worker]` treats a return type named `Result` as success or failure; \
                return `core::result::Result<T, E>` (or an alias of it)"
    )]
    pub trait Fallible {
        /// The success type.
        type Ok;
        /// The error type.
        type Err;
        /// As a plain `Result`.
        fn into_result(self) -> Result<Self::Ok, Self::Err>;
    }

    impl<T, E> Fallible for Result<T, E> {
        type Ok = T;
        type Err = E;
        fn into_result(self) -> Result<T, E> {
            self
        }
    }

    /// The error type of a worker method: callers get it as `TaskError::Failed(e)`.
    #[diagnostic::on_unimplemented(
        message = "`{Self}` is returned as a worker method's error, so it must implement `Display`",
        label = "callers get this error as `TaskError::Failed(e)`, which displays it",
        note = "implement `std::fmt::Display` for it (e.g. with `#[derive(thiserror::Error)]`)"
    )]
    pub trait MethodError: core::fmt::Display {}
    impl<T: core::fmt::Display + ?Sized> MethodError for T {}

    /// Displays a method's error (the `Display` of the generated error enum).
    pub fn display_method_error<E: MethodError + ?Sized>(
        error: &E,
        f: &mut core::fmt::Formatter<'_>,
    ) -> core::fmt::Result {
        core::fmt::Display::fmt(error, f)
    }

    /// What a worker needs to run alone as a ractor actor: every start clones it.
    #[diagnostic::on_unimplemented(
        message = "`{Self}` must be `Clone + Sync` to run as a ractor actor",
        label = "every start of the actor clones this value as its fresh state",
        note = "derive `Clone` (and keep the fields `Sync`), or write `#[worker(pool_only)]` \
                to run it in pools only"
    )]
    pub trait ActorPrototype {
        /// A fresh copy for a new incarnation.
        fn fresh(&self) -> Self
        where
            Self: Sized;
    }

    impl<T: Clone + Send + Sync + 'static> ActorPrototype for T {
        fn fresh(&self) -> T {
            self.clone()
        }
    }

    /// Prepares a worker running alone as an actor (see [`crate::worker::start_alone`]) from
    /// its fresh copy.
    pub async fn start_alone<W: crate::worker::Worker>(
        mut worker: W,
    ) -> Result<W, ractor::ActorProcessingErr> {
        worker
            .init(crate::worker::WorkerContext {
                index: 0,
                generation: 1,
            })
            .await
            .map_err(crate::worker::start_failed)?;
        Ok(worker)
    }

    /// A worker answered a task with another method's variant: the generated dispatch makes
    /// this impossible, so reaching it is a bug in `#[worker]`.
    #[cold]
    pub fn mismatched_reply(worker: &str, method: &str) -> ! {
        unreachable!(
            "ractor-otp bug: worker `{worker}` answered `{method}` with another method's reply"
        )
    }
}
