//! Procedural macros for `ractor-otp`: [`macro@worker`] turns an impl block of async methods into
//! a worker with a typed client, [`supervisor!`] writes a supervision tree as the tree, and
//! [`derive@Job`] registers a serializable command as a durable job.
//!
//! This crate is re-exported by `ractor_otp` (`ractor_otp::worker`, `ractor_otp::supervisor!`,
//! both in its prelude, and `ractor_otp::jobs::Job`); depend on that instead. Generated code names `::ractor_otp` (or what
//! your `Cargo.toml` renames it to), never a path you must import.

use proc_macro::TokenStream;

mod crate_path;
mod job;
mod naming;
mod tree;
mod worker;

/// Turns an inherent impl block of `async` methods into a worker: a pool can run it, it can
/// run alone as a supervised ractor actor, and a typed client calls its methods like methods.
///
/// ```
/// use ractor_otp::prelude::*;
///
/// #[derive(Clone)]
/// struct Thumbnailer { quality: u8 }
///
/// #[derive(Debug, PartialEq)]
/// struct TooSmall(u32);
/// impl std::fmt::Display for TooSmall {
///     fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
///         write!(f, "width {} is too small", self.0)
///     }
/// }
///
/// #[ractor_otp::worker]
/// impl Thumbnailer {
///     /// Shrinks an image to `width` pixels.
///     pub async fn resize(&mut self, image: Vec<u8>, width: u32) -> Result<Vec<u8>, TooSmall> {
///         if width < 8 {
///             return Err(TooSmall(width));
///         }
///         Ok(image.into_iter().take(width as usize).collect())
///     }
///
///     pub async fn quality(&self) -> u8 {
///         self.quality
///     }
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let proto = Thumbnailer { quality: 80 };
/// let pool = Pool::builder(move |_| proto.clone()).size(2).spawn().await?;
/// let thumbs = ThumbnailerClient(pool.clone());
/// assert_eq!(thumbs.resize(vec![1; 100], 10).await?.len(), 10);
/// assert_eq!(thumbs.resize(vec![1; 100], 2).await, Err(TaskError::Failed(TooSmall(2))));
/// assert_eq!(thumbs.quality().await?, 80);
/// // Per-call options: a timeout, a priority, a routing key.
/// let urgent = thumbs.with(TaskOptions::new().priority(Priority::High));
/// assert_eq!(urgent.resize(vec![1; 100], 20).await?.len(), 20);
/// thumbs.cast_resize(vec![1; 100], 20).await?; // fire and forget, output dropped
/// pool.stop().await;
/// # Ok(())
/// # }
/// ```
///
/// # What it generates
///
/// For `impl Thumbnailer` (written next to the impl block, in the same module):
///
/// ```text
/// pub enum ThumbnailerTask   { Resize { image: Vec<u8>, width: u32 }, Quality {} }
/// pub enum ThumbnailerOutput { Resize(Vec<u8>), Quality(u8) }
/// pub enum ThumbnailerError  { Resize(TooSmall) }      // one variant per `Result` method
///                                                      // (hooks too); Display, Debug and
///                                                      // Error delegate
/// impl ractor_otp::worker::Worker for Thumbnailer {    // handle(): match the task, call the
///     type Task = ThumbnailerTask; ..                   // method, wrap its answer
/// }
/// impl ractor::Actor for Thumbnailer {                 // not with `pool_only`
///     type Msg = ractor_otp::worker::Call<Self>;        // pre_start: a clone of the value,
///     type State = Self; type Arguments = (); ..        // then `init`
/// }
/// pub struct ThumbnailerClient<C>(pub C);              // C: a PoolRef<Thumbnailer> or an
/// impl<C: WorkerHandle<Worker = Thumbnailer>> ThumbnailerClient<C> {   // ActorRef<Call<..>>
///     pub fn with(&self, options: TaskOptions) -> ThumbnailerClient<WithOptions<C>>;
///     pub async fn resize(&self, image: Vec<u8>, width: u32)
///         -> Result<Vec<u8>, TaskError<TooSmall>>;
///     pub async fn cast_resize(&self, image: Vec<u8>, width: u32)
///         -> Result<(), TaskError<TooSmall>>;
///     pub async fn quality(&self) -> Result<u8, TaskError>;
///     pub async fn cast_quality(&self) -> Result<(), TaskError>;
/// }
/// ```
///
/// Each client method keeps its method's visibility and docs. Every method also gets
/// `cast_<name>`, which hands the task over without waiting and drops its output.
/// `client.with(TaskOptions..)` is the same client with per-call options (priority, timeout,
/// routing key) on every call through it; a single worker actor honours the timeout only. The
/// client derefs to the handle inside, so `client.stop()` reaches the pool; where a method of
/// yours shadows one of the pool's (say `stats`), write `client.0.stats()`.
///
/// # Rules
///
/// Every method in the block is a task and must be an `async fn` taking `&self` or
/// `&mut self`, with no generic parameters, and with owned arguments and return type (no
/// borrow but `&'static`, no lifetime, no `impl Trait`). A return type named `Result` (or an
/// alias like `io::Result<T>`) is success or failure: `Err` reaches the caller as
/// `TaskError::Failed` and the worker keeps running; the error type must implement `Display`.
/// Anything else is a plain answer. The worker struct may be generic (`impl<T> Cache<T>`).
/// Put constructors and helpers in another impl block.
///
/// # Hooks
///
/// `init` and `on_restart`, by name or marked `#[init]` / `#[on_restart]`: `async`, taking
/// `&mut self` and optionally the `WorkerContext`, returning `()` or `Result<(), E>`. An `Err`
/// fails the start, which the supervisor retries under its restart intensity, and is reported
/// by its `Display`. Like a task method's, the hook's `E` gets a variant of the error enum,
/// named after the method (`#[init] async fn connect(..) -> Result<(), Down>` gives
/// `ThumbnailerError::Connect(Down)`): a worker has one error type, as `Worker` requires. In a pool,
/// `init` runs for every incarnation and `on_restart` after it from the second one on; alone as
/// an actor, `init` runs at every start (from a fresh clone) and `on_restart` never.
///
/// # Options
///
/// - `#[worker(pool_only)]`: no `Actor` impl, so the struct need not be `Clone + Sync`.
/// - `#[worker(crate = "path")]`: where `ractor_otp` is, when neither its name nor a rename in
///   `Cargo.toml` is visible (e.g. re-exported from another crate of yours).
///
/// With ractor's `cluster` feature (through ours), the actor's message type `Call<Self>`
/// implements `ractor::Message`.
#[proc_macro_attribute]
pub fn worker(args: TokenStream, input: TokenStream) -> TokenStream {
    worker::expand(args.into(), input.into()).into()
}

/// A supervision tree written as the tree. Expands to the
/// `Supervisor::builder()` calls you would write by hand and evaluates to that
/// `SupervisorBuilder` (call `.spawn().await`, or nest it).
///
/// ```
/// use ractor::{Actor, ActorProcessingErr, ActorRef};
/// use ractor_otp::prelude::*;
///
/// #[derive(Clone)]
/// struct Echo;
/// impl Actor for Echo {
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
/// let app = supervisor! {
///     strategy: one_for_one,
///     intensity: 3,
///     period: 10s,
///     children: [
///         "config" => actor(Echo, ()),
///         "storage" => supervisor! {
///             strategy: one_for_all,
///             children: [
///                 "db" => actor(Echo, ()) { shutdown: 2s },
///                 "cache" => actor(Echo, ()) { restart: transient, shutdown: brutal_kill },
///             ],
///         },
///     ],
/// }
/// .spawn()
/// .await?;
/// let storage = app.child_supervisor("storage").await?;
/// assert_eq!(storage.count_children().await?.active, 2);
/// app.stop().await;
/// # Ok(())
/// # }
/// ```
///
/// The tree above is exactly:
///
/// ```text
/// Supervisor::builder()
///     .strategy(Strategy::OneForOne)
///     .intensity(3)
///     .period(Duration::from_millis(10000))
///     .child(ChildSpec::from_actor("config", Echo, ()))
///     .child(IntoChildSpec::into_child_spec(
///         Supervisor::builder()
///             .strategy(Strategy::OneForAll)
///             .child(ChildSpec::from_actor("db", Echo, ())
///                 .shutdown(Shutdown::Timeout(Duration::from_millis(2000))))
///             .child(ChildSpec::from_actor("cache", Echo, ())
///                 .restart(Restart::Transient)
///                 .shutdown(Shutdown::BrutalKill)),
///         ChildId::from("storage"),
///     ))
/// ```
///
/// # Syntax
///
/// ```text
/// supervisor! {
///     strategy: one_for_all,          // one_for_one | one_for_all | rest_for_one | <expr>
///     intensity: 3,                   // <expr: u32>                       (default 1)
///     period: 5s,                     // 500ms | 5s | 2m | <expr: Duration> (default 5s)
///     auto_shutdown: any_significant, // never | any_significant | all_significant | <expr>
///     label: "storage",               // a name for logs
///     name: "storage_sup",            // a ractor registry name
///     children: [
///         <id> => actor(<actor>, <args>) { <options> },   // ChildSpec::from_actor
///         <id> => start(<start fn>) { <options> },        // ChildSpec::new
///         <id> => <expr> { <options> },                   // IntoChildSpec: supervisor! { .. },
///     ],                                                  //   Pool::builder(..), ...
/// }
/// options (each optional, in any order):
///     restart: permanent | transient | temporary | <expr>
///     shutdown: brutal_kill | infinity | <duration>
///     significant                     // or `significant: <expr: bool>`
///     backoff: <expr: Backoff>
///     name: <expr>                    // a ractor registry name
/// ```
///
/// Keys and options appear once each. At compile time: child ids written as string literals
/// are unique, a significant child is transient or temporary and its tree has an
/// `auto_shutdown` that is not `never`, a literal period is not zero. The run-time checks of
/// `spawn` still apply to everything else.
#[proc_macro]
pub fn supervisor(input: TokenStream) -> TokenStream {
    tree::expand(input.into()).into()
}

/// Implements `ractor_otp::jobs::Job` for a serializable struct or enum: the stable name it
/// is stored under, and optionally what it produces, its payload version and how older
/// payloads are read.
///
/// ```
/// use ractor_otp::jobs::Job;
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Serialize, Deserialize, Job)]
/// #[job(name = "send_invoice", output = String)]
/// struct SendInvoice {
///     customer: u64,
/// }
///
/// assert_eq!(SendInvoice::NAME, "send_invoice");
/// assert_eq!(SendInvoice::VERSION, 1);
/// ```
///
/// # Options of `#[job(...)]`
///
/// - `name = "..."` (required): what the store records with every job of this type and what a
///   runner finds the handler by. Keep it when you rename the type: jobs already stored carry
///   it.
/// - `output = Type` (default `()`): what a successful run produces; stored with the job and
///   handed to a fan-in collector.
/// - `version = N` (default 1): the payload's schema version, stored with every job. Raise it
///   when the payload's shape changes, and give `decode`.
/// - `decode = path`: a `fn(u32, serde_json::Value) -> Result<Self, serde_json::Error>` that
///   reads a payload written with the given version (by default the current shape is read
///   whatever the version).
/// - `crate = "path"`: where `ractor_otp` is, when neither its name nor a rename in
///   `Cargo.toml` is visible.
///
/// ```
/// # use ractor_otp::jobs::Job;
/// # use serde::{Deserialize, Serialize};
/// #[derive(Serialize, Deserialize, Job)]
/// #[job(name = "resize", version = 2, decode = Resize::upgrade)]
/// struct Resize {
///     width: u32,
///     height: u32,
/// }
///
/// impl Resize {
///     /// Version 1 stored a square's side.
///     fn upgrade(version: u32, payload: serde_json::Value) -> Result<Self, serde_json::Error> {
///         if version == 1 {
///             let side: u32 = serde_json::from_value(payload["side"].clone())?;
///             return Ok(Resize { width: side, height: side });
///         }
///         serde_json::from_value(payload)
///     }
/// }
///
/// let old = Resize::decode(1, serde_json::json!({ "side": 8 })).unwrap();
/// assert_eq!((old.width, old.height), (8, 8));
/// ```
///
/// The type may not be generic: every job stored under one name must decode the same way.
#[proc_macro_derive(Job, attributes(job))]
pub fn derive_job(input: TokenStream) -> TokenStream {
    job::expand(input.into()).into()
}
