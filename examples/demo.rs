//! A small application tree under fire: `cargo run --example demo`.
//!
//! ```text
//! app (one-for-one)
//! ├─ metrics                      a worker that prints a heartbeat
//! ├─ storage (one-for-all)        wal, index, cache: they share state, so they restart together
//! ├─ ingest  (rest-for-one)       source → parser → writer: a crash restarts it and what follows
//! └─ sessions (dynamic)           one transient child per logged-in user
//! ```
//!
//! Records flow source → parser → writer → storage/wal while users log in and out. A chaos
//! monkey injects failures (a panic, an `Err` from a handler, or a kill) on a randomized
//! schedule, and a couple of malformed records make the parser fail on its own. Every line you
//! see comes from the supervisors' event streams: who crashed and how, which siblings the
//! strategy stopped and restarted, and how much restart budget is left. Around 5 s the storage
//! subsystem crashes more often than its intensity allows, gives up, and escalates to `app`,
//! which restarts it. After ~8 s the demo prints a summary and the final tree, stops the tree in
//! order, and prints the shutdown order.
//!
//! Reproducible-ish: the schedule, failure modes and data come from a seeded RNG
//! (`DEMO_SEED=7 cargo run --example demo`, or pass the seed as the first argument); thread
//! timing does the rest. `RUST_LOG=ractor_otp=debug` shows the library's own tracing.
//! `cargo run --example demo --features observer -- --observe` also serves the live web
//! observer on http://127.0.0.1:9800/ while the chaos runs, and keeps the app up afterwards
//! until Ctrl-C.

use std::collections::HashMap;
use std::fmt::Display;
use std::io::IsTerminal;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use ractor_otp::prelude::*;
use ractor_otp::ractor::{Actor, ActorCell, ActorId, ActorProcessingErr, ActorRef};
use ractor_otp::supervisor::{EventStream, StopCause, StopOutcome, SupervisorBuilder};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// How long the chaos goes on before the summary.
const RUN_FOR: Duration = Duration::from_millis(8_000);

// ---------------------------------------------------------------------------------------------
// Shared bits: counters, the shutdown log, output
// ---------------------------------------------------------------------------------------------

#[derive(Default)]
struct Stats {
    read: AtomicU64,
    parsed: AtomicU64,
    in_wal: AtomicU64,
    dropped: AtomicU64,
    indexed: AtomicU64,
    online: AtomicI64,
}

/// What every actor of the demo shares.
#[derive(Clone)]
struct Shared {
    t0: Instant,
    paint: Paint,
    stats: Arc<Stats>,
    /// Sequence numbers of the records the source will emit malformed.
    malformed: Arc<[u64]>,
    /// Batch sizes of the source (seeded, shared by every incarnation).
    batch_rng: Arc<Mutex<fastrand::Rng>>,
    /// Which user each session actor serves.
    users: Arc<Mutex<HashMap<ActorId, u64>>>,
    /// Workers append their path here in `post_stop`: the shutdown order.
    stop_log: Arc<Mutex<Vec<String>>>,
}

impl Shared {
    fn line(&self, who: &str, text: impl Display) {
        let t = self.t0.elapsed().as_secs_f64();
        println!("{t:>6.2}s  {who:<9}{text}");
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// ANSI colours when stdout is a terminal (and `NO_COLOR` is unset).
#[derive(Clone, Copy)]
struct Paint(bool);

impl Paint {
    fn detect() -> Paint {
        Paint(std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none())
    }
    fn code(self, code: &str, s: impl Display) -> String {
        if self.0 {
            format!("\x1b[{code}m{s}\x1b[0m")
        } else {
            s.to_string()
        }
    }
    fn red(self, s: impl Display) -> String {
        self.code("31", s)
    }
    fn green(self, s: impl Display) -> String {
        self.code("32", s)
    }
    fn yellow(self, s: impl Display) -> String {
        self.code("33", s)
    }
    fn magenta(self, s: impl Display) -> String {
        self.code("1;35", s)
    }
    fn dim(self, s: impl Display) -> String {
        self.code("2", s)
    }
    fn bold(self, s: impl Display) -> String {
        self.code("1", s)
    }
}

// ---------------------------------------------------------------------------------------------
// The workers
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq)]
enum Role {
    Metrics,
    Wal,
    Index,
    Cache,
    Source,
    Parser,
    Writer,
}

impl Role {
    fn tick(self) -> Option<Duration> {
        match self {
            Role::Metrics => Some(Duration::from_secs(2)),
            Role::Index => Some(Duration::from_millis(250)),
            Role::Cache => Some(Duration::from_millis(500)),
            Role::Source => Some(Duration::from_millis(100)),
            _ => None,
        }
    }

    fn panic_text(self) -> &'static str {
        match self {
            Role::Metrics => "counter overflow in histogram `latency`",
            Role::Wal => "torn write detected at offset 0x3f20",
            Role::Index => "checksum mismatch in page 17",
            Role::Cache => "eviction list corrupted",
            Role::Source => "socket buffer overrun",
            Role::Parser => "grammar table out of bounds",
            Role::Writer => "batch invariant violated",
        }
    }

    fn error_text(self) -> &'static str {
        match self {
            Role::Metrics => "exporter timed out",
            Role::Wal => "fsync failed: EIO",
            Role::Index => "index file locked by another process",
            Role::Cache => "memory budget exceeded",
            Role::Source => "connection reset by peer",
            Role::Parser => "unsupported encoding",
            Role::Writer => "wal rejected the batch",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Crash {
    Panic,
    Error,
    Kill,
}

struct Record {
    seq: u64,
    malformed: bool,
}

enum WorkerMsg {
    Tick,
    /// source → parser
    Batch(Vec<Record>),
    /// parser → writer: this many parsed records
    Parsed(u64),
    /// writer → wal
    Append(u64),
    /// Fail now, this way (sent by the chaos monkey).
    Crash(Crash),
}

#[cfg(feature = "cluster")]
impl ractor_otp::ractor::Message for WorkerMsg {}

/// Registry names, so a worker finds the live incarnation of the next stage.
const PARSER: &str = "ingest.parser";
const WRITER: &str = "ingest.writer";
const WAL: &str = "storage.wal";

#[derive(Clone)]
struct WorkerArgs {
    /// `storage/wal`, or just `metrics` under the root.
    path: Arc<str>,
    role: Role,
    shared: Shared,
}

#[derive(Clone)]
struct Worker;

struct WorkerState {
    args: WorkerArgs,
    ticker: Option<JoinHandle<()>>,
}

fn forward(name: &str, msg: WorkerMsg) -> bool {
    match ActorRef::<WorkerMsg>::where_is(name) {
        Some(next) => next.send_message(msg).is_ok(),
        None => false,
    }
}

#[cfg_attr(feature = "async-trait", ractor_otp::ractor::async_trait)]
impl Actor for Worker {
    type Msg = WorkerMsg;
    type State = WorkerState;
    type Arguments = WorkerArgs;

    async fn pre_start(
        &self,
        _myself: ActorRef<WorkerMsg>,
        args: WorkerArgs,
    ) -> Result<WorkerState, ActorProcessingErr> {
        Ok(WorkerState { args, ticker: None })
    }

    async fn post_start(
        &self,
        myself: ActorRef<WorkerMsg>,
        state: &mut WorkerState,
    ) -> Result<(), ActorProcessingErr> {
        if let Some(period) = state.args.role.tick() {
            state.ticker = Some(myself.send_interval(period, || WorkerMsg::Tick));
        }
        Ok(())
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<WorkerMsg>,
        state: &mut WorkerState,
    ) -> Result<(), ActorProcessingErr> {
        if let Some(ticker) = state.ticker.take() {
            ticker.abort();
        }
        lock(&state.args.shared.stop_log).push(state.args.path.to_string());
        Ok(())
    }

    async fn handle(
        &self,
        myself: ActorRef<WorkerMsg>,
        msg: WorkerMsg,
        state: &mut WorkerState,
    ) -> Result<(), ActorProcessingErr> {
        let WorkerArgs { role, shared, .. } = &state.args;
        let stats = &shared.stats;
        match msg {
            WorkerMsg::Tick => match role {
                Role::Source => {
                    let n = lock(&shared.batch_rng).u64(2..=6);
                    let first = stats.read.fetch_add(n, Ordering::Relaxed) + 1;
                    let batch = (first..first + n)
                        .map(|seq| Record {
                            seq,
                            malformed: shared.malformed.contains(&seq),
                        })
                        .collect();
                    if !forward(PARSER, WorkerMsg::Batch(batch)) {
                        stats.dropped.fetch_add(n, Ordering::Relaxed);
                    }
                }
                Role::Index => {
                    let wal = stats.in_wal.load(Ordering::Relaxed);
                    stats.indexed.store(wal, Ordering::Relaxed);
                }
                Role::Metrics => {
                    let p = shared.paint;
                    shared.line(
                        "metrics",
                        p.dim(format!(
                            "♥ {} records read · {} parsed · {} in the wal · {} dropped · {} users online",
                            stats.read.load(Ordering::Relaxed),
                            stats.parsed.load(Ordering::Relaxed),
                            stats.in_wal.load(Ordering::Relaxed),
                            stats.dropped.load(Ordering::Relaxed),
                            stats.online.load(Ordering::Relaxed),
                        )),
                    );
                }
                _ => {}
            },
            WorkerMsg::Batch(records) => {
                let total = records.len() as u64;
                for (i, r) in records.iter().enumerate() {
                    if r.malformed {
                        stats.parsed.fetch_add(i as u64, Ordering::Relaxed);
                        stats.dropped.fetch_add(total - i as u64, Ordering::Relaxed);
                        return Err(format!(
                            "malformed record #{}: unexpected byte 0x{:02x}",
                            r.seq,
                            (r.seq * 37) % 256
                        )
                        .into());
                    }
                }
                stats.parsed.fetch_add(total, Ordering::Relaxed);
                if !forward(WRITER, WorkerMsg::Parsed(total)) {
                    stats.dropped.fetch_add(total, Ordering::Relaxed);
                }
            }
            WorkerMsg::Parsed(n) => {
                if !forward(WAL, WorkerMsg::Append(n)) {
                    stats.dropped.fetch_add(n, Ordering::Relaxed);
                }
            }
            WorkerMsg::Append(n) => {
                stats.in_wal.fetch_add(n, Ordering::Relaxed);
            }
            WorkerMsg::Crash(Crash::Panic) => panic!("panic: {}", role.panic_text()),
            WorkerMsg::Crash(Crash::Error) => {
                return Err(format!("error: {}", role.error_text()).into())
            }
            WorkerMsg::Crash(Crash::Kill) => myself.kill(),
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// Sessions: one transient child per user, under a dynamic supervisor
// ---------------------------------------------------------------------------------------------

#[derive(Clone)]
struct SessionArgs {
    user: u64,
    shared: Shared,
}

enum SessionMsg {
    Logout,
}

#[cfg(feature = "cluster")]
impl ractor_otp::ractor::Message for SessionMsg {}

#[derive(Clone)]
struct Session;

#[cfg_attr(feature = "async-trait", ractor_otp::ractor::async_trait)]
impl Actor for Session {
    type Msg = SessionMsg;
    type State = SessionArgs;
    type Arguments = SessionArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<SessionMsg>,
        args: SessionArgs,
    ) -> Result<SessionArgs, ActorProcessingErr> {
        lock(&args.shared.users).insert(myself.get_id(), args.user);
        args.shared.stats.online.fetch_add(1, Ordering::Relaxed);
        // Each user stays a while (seeded by the user id), then logs out: a normal exit.
        let stay = fastrand::Rng::with_seed(args.user).u64(800..3_000);
        myself.send_after(Duration::from_millis(stay), || SessionMsg::Logout);
        Ok(args)
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<SessionMsg>,
        state: &mut SessionArgs,
    ) -> Result<(), ActorProcessingErr> {
        state.shared.stats.online.fetch_sub(1, Ordering::Relaxed);
        lock(&state.shared.stop_log).push(format!("sessions/user-{}", state.user));
        Ok(())
    }

    async fn handle(
        &self,
        myself: ActorRef<SessionMsg>,
        SessionMsg::Logout: SessionMsg,
        _state: &mut SessionArgs,
    ) -> Result<(), ActorProcessingErr> {
        myself.stop(None);
        Ok(())
    }
}

/// The live `sessions` supervisor, looked up in the tree (it may have been restarted).
async fn sessions(root: &SupervisorRef) -> Option<DynamicSupervisorRef<SessionArgs>> {
    root.child_dynamic::<SessionArgs>("sessions").await.ok()
}

// ---------------------------------------------------------------------------------------------
// The tree, as data: built from it and drawn from it, so the picture is the program
// ---------------------------------------------------------------------------------------------

struct SupModel {
    label: &'static str,
    strategy: Strategy,
    intensity: u32,
    period: Duration,
    children: Vec<ChildModel>,
}

struct ChildModel {
    id: &'static str,
    restart: Restart,
    what: What,
}

enum What {
    Worker {
        role: Role,
        shutdown: Shutdown,
        name: Option<&'static str>,
        about: &'static str,
    },
    Supervisor(SupModel),
    Sessions {
        intensity: u32,
        period: Duration,
    },
}

fn worker(
    id: &'static str,
    role: Role,
    restart: Restart,
    shutdown: Shutdown,
    name: Option<&'static str>,
    about: &'static str,
) -> ChildModel {
    ChildModel {
        id,
        restart,
        what: What::Worker {
            role,
            shutdown,
            name,
            about,
        },
    }
}

fn model() -> SupModel {
    let secs = Duration::from_secs;
    let ms = Duration::from_millis;
    use Restart::*;
    SupModel {
        label: "app",
        strategy: Strategy::OneForOne,
        intensity: 3,
        period: secs(10),
        children: vec![
            worker(
                "metrics",
                Role::Metrics,
                Permanent,
                Shutdown::Timeout(secs(5)),
                None,
                "prints a heartbeat every 2 s",
            ),
            ChildModel {
                id: "storage",
                restart: Permanent,
                what: What::Supervisor(SupModel {
                    label: "storage",
                    strategy: Strategy::OneForAll,
                    intensity: 2,
                    period: secs(2),
                    children: vec![
                        worker(
                            "wal",
                            Role::Wal,
                            Permanent,
                            Shutdown::Timeout(secs(2)),
                            Some(WAL),
                            "write-ahead log",
                        ),
                        worker(
                            "index",
                            Role::Index,
                            Permanent,
                            Shutdown::Timeout(secs(5)),
                            None,
                            "indexes what the wal holds",
                        ),
                        worker(
                            "cache",
                            Role::Cache,
                            Transient,
                            Shutdown::Timeout(ms(500)),
                            None,
                            "read cache",
                        ),
                    ],
                }),
            },
            ChildModel {
                id: "ingest",
                restart: Permanent,
                what: What::Supervisor(SupModel {
                    label: "ingest",
                    strategy: Strategy::RestForOne,
                    intensity: 5,
                    period: secs(5),
                    children: vec![
                        worker(
                            "source",
                            Role::Source,
                            Permanent,
                            Shutdown::Timeout(secs(1)),
                            None,
                            "reads records every 100 ms",
                        ),
                        worker(
                            "parser",
                            Role::Parser,
                            Permanent,
                            Shutdown::Timeout(secs(1)),
                            Some(PARSER),
                            "fails on malformed records",
                        ),
                        worker(
                            "writer",
                            Role::Writer,
                            Permanent,
                            Shutdown::Timeout(secs(1)),
                            Some(WRITER),
                            "appends to storage/wal",
                        ),
                    ],
                }),
            },
            ChildModel {
                id: "sessions",
                restart: Permanent,
                what: What::Sessions {
                    intensity: 5,
                    period: secs(5),
                },
            },
        ],
    }
}

fn strategy_name(s: Strategy) -> &'static str {
    match s {
        Strategy::OneForOne => "one-for-one",
        Strategy::OneForAll => "one-for-all",
        Strategy::RestForOne => "rest-for-one",
    }
}

fn restart_name(r: Restart) -> &'static str {
    match r {
        Restart::Permanent => "permanent",
        Restart::Transient => "transient",
        Restart::Temporary => "temporary",
    }
}

fn shutdown_name(s: Shutdown) -> String {
    match s {
        Shutdown::BrutalKill => "brutal kill".into(),
        Shutdown::Timeout(d) => format!("{d:?}"),
        Shutdown::Infinity => "infinity".into(),
    }
}

/// What the event printer needs to know about each supervisor.
struct SupInfo {
    strategy: Option<Strategy>, // None: the dynamic supervisor
    intensity: u32,
    period: Duration,
    children: Vec<(&'static str, Restart)>,
    parent: &'static str,
}

/// Builds the supervisor of `m`, subscribing to its events (and its sub-supervisors') before
/// it becomes a child spec, so the streams see every incarnation.
fn build(
    m: &SupModel,
    parent: &'static str,
    shared: &Shared,
    streams: &mut Vec<(&'static str, EventStream)>,
    infos: &mut HashMap<&'static str, SupInfo>,
) -> SupervisorBuilder {
    let mut b = Supervisor::builder()
        .label(m.label)
        .strategy(m.strategy)
        .intensity(m.intensity)
        .period(m.period);
    streams.push((m.label, b.subscribe()));
    infos.insert(
        m.label,
        SupInfo {
            strategy: Some(m.strategy),
            intensity: m.intensity,
            period: m.period,
            children: m.children.iter().map(|c| (c.id, c.restart)).collect(),
            parent,
        },
    );
    for c in &m.children {
        let spec = match &c.what {
            What::Worker {
                role,
                shutdown,
                name,
                ..
            } => {
                let args = WorkerArgs {
                    path: if parent == "main" {
                        c.id.into()
                    } else {
                        format!("{}/{}", m.label, c.id).into()
                    },
                    role: *role,
                    shared: shared.clone(),
                };
                let spec = ChildSpec::from_actor(c.id, Worker, args).shutdown(*shutdown);
                match name {
                    Some(n) => spec.registered_name(*n),
                    None => spec,
                }
            }
            What::Supervisor(sub) => {
                build(sub, m.label, shared, streams, infos).into_child_spec(c.id)
            }
            What::Sessions { intensity, period } => {
                let template = ChildTemplate::from_actor(Session)
                    .restart(Restart::Transient)
                    .shutdown(Shutdown::Timeout(Duration::from_secs(1)));
                let mut dynamic = DynamicSupervisor::builder(template)
                    .label(c.id)
                    .intensity(*intensity)
                    .period(*period);
                streams.push(("sessions", dynamic.subscribe()));
                infos.insert(
                    "sessions",
                    SupInfo {
                        strategy: None,
                        intensity: *intensity,
                        period: *period,
                        children: Vec::new(),
                        parent: m.label,
                    },
                );
                dynamic.into_child_spec(c.id)
            }
        };
        b = b.child(spec.restart(c.restart));
    }
    b
}

fn draw(m: &SupModel, p: Paint) {
    let flags = |s: &str, i: u32, per: Duration| p.bold(format!("{s}, intensity {i} per {per:?}"));
    println!(
        "{:<22}{}",
        p.bold(m.label),
        flags(strategy_name(m.strategy), m.intensity, m.period)
    );
    draw_children(m, "", p);
}

fn draw_children(m: &SupModel, indent: &str, p: Paint) {
    for (i, c) in m.children.iter().enumerate() {
        let last = i + 1 == m.children.len();
        let branch = format!("{indent}{}{}", if last { "└─ " } else { "├─ " }, c.id);
        let restart = restart_name(c.restart);
        match &c.what {
            What::Worker {
                shutdown,
                name,
                about,
                ..
            } => {
                let name = name
                    .map(|n| format!(", registered as {n}"))
                    .unwrap_or_default();
                println!(
                    "{branch:<22}{:<11}{restart:<10} shutdown {:<8} {}",
                    "worker",
                    shutdown_name(*shutdown),
                    p.dim(format!("{about}{name}"))
                );
            }
            What::Supervisor(sub) => {
                println!(
                    "{branch:<22}{:<11}{restart:<10} shutdown {:<8} {}",
                    "supervisor",
                    "infinity",
                    p.bold(format!(
                        "{}, intensity {} per {:?}",
                        strategy_name(sub.strategy),
                        sub.intensity,
                        sub.period
                    ))
                );
                let deeper = format!("{indent}{}", if last { "   " } else { "│  " });
                draw_children(sub, &deeper, p);
            }
            What::Sessions { intensity, period } => {
                println!(
                    "{branch:<22}{:<11}{restart:<10} shutdown {:<8} {}",
                    "dynamic",
                    "infinity",
                    p.bold(format!(
                        "one child per user, intensity {intensity} per {period:?}"
                    ))
                );
                let deeper = format!("{indent}{}", if last { "   " } else { "│  " });
                println!(
                    "{:<22}{:<11}{:<10} shutdown {:<8} {}",
                    format!("{deeper}└─ user-*"),
                    "worker",
                    "transient",
                    "1s",
                    p.dim("added at login; logs out by itself (a normal exit)")
                );
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The event printer: turns SupervisorEvents into a story
// ---------------------------------------------------------------------------------------------

#[derive(Default)]
struct Tally {
    restarts: HashMap<&'static str, u32>,
    crashes: HashMap<String, u32>,
    escalations: Vec<(f64, &'static str, &'static str)>,
    malformed: u32,
    logins: u32,
    logouts: u32,
}

struct Printer {
    shared: Shared,
    infos: HashMap<&'static str, SupInfo>,
    /// `#key` of a session → its actor (to name the user).
    session_actors: HashMap<String, ActorId>,
    tally: Tally,
}

impl Printer {
    fn session_name(&self, id: &ChildId) -> String {
        let user = self
            .session_actors
            .get(id.as_str())
            .and_then(|a| lock(&self.shared.users).get(a).copied());
        match user {
            Some(u) => format!("session {id} of user-{u}"),
            None => format!("session {id}"),
        }
    }

    fn handle(&mut self, label: &'static str, event: SupervisorEvent) {
        let p = self.shared.paint;
        let Some(info) = self.infos.get(label) else {
            return;
        };
        let dynamic = info.strategy.is_none();
        let say = |text: String| self.shared.line(label, text);
        match event {
            SupervisorEvent::ChildStarted {
                id,
                generation,
                actor,
            } => {
                if dynamic {
                    self.session_actors.insert(id.to_string(), actor);
                    if generation == 1 {
                        self.tally.logins += 1;
                        return; // a login: routine
                    }
                    say(p.green(format!(
                        "  ▲ {} is back (incarnation {generation})",
                        self.session_name(&id)
                    )));
                } else if generation == 1 {
                    // A fresh incarnation of this supervisor starting its children: the
                    // parent's line ("storage is back ... with wal, index, cache") says it.
                } else if let Some(sub) = self.infos.get(id.as_str()) {
                    let kids: Vec<&str> = sub.children.iter().map(|c| c.0).collect();
                    let with = if kids.is_empty() {
                        "empty, ready for new children".to_string()
                    } else {
                        format!("with fresh {}", kids.join(", "))
                    };
                    say(p.green(format!(
                        "  ▲ {id} is back (incarnation {generation}), {with}"
                    )));
                } else {
                    say(p.green(format!("  ▲ {id} is back (incarnation {generation})")));
                }
            }
            SupervisorEvent::ChildExited { id, reason, .. } => {
                if reason.class != ExitClass::Abnormal {
                    if dynamic {
                        self.tally.logouts += 1;
                        return; // a logout: routine (transient + normal exit: not restarted)
                    }
                    say(format!("• {id} exited: {reason}"));
                    return;
                }
                *self
                    .tally
                    .crashes
                    .entry(format!("{label}/{id}"))
                    .or_default() += 1;
                if reason
                    .detail
                    .as_deref()
                    .is_some_and(|d| d.contains("malformed"))
                {
                    self.tally.malformed += 1;
                }
                let is_sup = self
                    .infos
                    .get(id.as_str())
                    .is_some_and(|child| child.parent == label);
                if is_sup {
                    say(p.magenta(format!("⇑ {id} escalated to {label}: {reason}")));
                } else if dynamic {
                    say(p.red(format!("✗ {} crashed: {reason}", self.session_name(&id))));
                } else {
                    say(p.red(format!("✗ {id} crashed: {reason}")));
                }
            }
            SupervisorEvent::ChildStopped {
                id, cause, outcome, ..
            } => {
                let why = match cause {
                    StopCause::Restart => "sibling of the crashed child",
                    StopCause::Shutdown => "supervisor shutting down",
                    StopCause::Terminated => "terminated",
                };
                let how = match outcome {
                    StopOutcome::Stopped => "stopped",
                    StopOutcome::Killed => "killed",
                    StopOutcome::KilledAfterTimeout => "killed after its shutdown timeout",
                    _ => "abandoned: it did not end even when killed",
                };
                say(p.yellow(format!("  ■ {id} {how} ({why})")));
            }
            SupervisorEvent::RestartScheduled {
                id, restarts_left, ..
            } => {
                *self.tally.restarts.entry(label).or_default() += 1;
                let what = match info.strategy {
                    None => format!("one-for-one: restarting {}", self.session_name(&id)),
                    Some(strategy) => {
                        let failed = info
                            .children
                            .iter()
                            .position(|(c, _)| *c == id.as_str())
                            .unwrap_or(0);
                        // One-for-all restarts every child, rest-for-one the failed one and
                        // those after it; temporary bystanders are not started again.
                        let from = if strategy == Strategy::OneForAll {
                            0
                        } else {
                            failed
                        };
                        let names: Vec<&str> = info.children[from..]
                            .iter()
                            .enumerate()
                            .filter(|(j, (_, r))| from + j == failed || *r != Restart::Temporary)
                            .map(|(_, (c, _))| *c)
                            .collect();
                        format!(
                            "{}: restarting {}",
                            strategy_name(strategy),
                            names.join(", ")
                        )
                    }
                };
                let budget = format!(
                    "{restarts_left} of {} restarts left in {:?}",
                    info.intensity, info.period
                );
                let budget = if restarts_left == 0 {
                    p.red(format!("{budget}: one more crash and {label} gives up"))
                } else {
                    budget
                };
                say(format!("  {} ({budget})", p.yellow(format!("↻ {what}"))));
            }
            SupervisorEvent::GaveUp { id, restarts } => {
                self.tally.escalations.push((
                    self.shared.t0.elapsed().as_secs_f64(),
                    label,
                    info.parent,
                ));
                say(p.magenta(format!(
                    "✗✗ {label} GIVES UP: {restarts} restarts within {:?} exceed its intensity of {} \
                     (last: {id}); it stops its children and fails, so {} decides",
                    info.period, info.intensity, info.parent
                )));
            }
            SupervisorEvent::ChildStartFailed { id, reason, .. } => {
                say(p.red(format!("✗ {id} failed to start: {reason}")));
            }
            SupervisorEvent::ChildDeleted { id } if !dynamic => {
                say(format!("• {id} removed"));
            }
            SupervisorEvent::AutoShutdown { id } => {
                say(format!("• {id} ended: auto-shutdown"));
            }
            SupervisorEvent::Stopped => say(p.yellow(format!("  ■ {label} has stopped"))),
            _ => {}
        }
    }
}

/// Prints every supervisor's events until told to stop; returns the tally.
///
/// Events carry no timestamp, and each supervisor has its own stream, so the merge decides the
/// order: every few milliseconds it drains what is ready, nested supervisors first. A nested
/// supervisor's events (it gave up, it stopped) come before what its parent did about them.
async fn print_events(
    mut streams: Vec<(&'static str, EventStream)>,
    mut printer: Printer,
    mut stop: oneshot::Receiver<()>,
) -> Tally {
    // Deepest first: `app` (the root, pushed first by `build`) goes last.
    streams.reverse();
    let drain = |streams: &mut Vec<(&'static str, EventStream)>, printer: &mut Printer| loop {
        let next = streams
            .iter_mut()
            .find_map(|(label, s)| s.try_recv().map(|e| (*label, e)));
        match next {
            Some((label, event)) => printer.handle(label, event),
            None => break,
        }
    };
    loop {
        drain(&mut streams, &mut printer);
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(3)) => {}
            _ = &mut stop => {
                drain(&mut streams, &mut printer);
                break;
            }
        }
    }
    printer.tally
}

// ---------------------------------------------------------------------------------------------
// The chaos monkey
// ---------------------------------------------------------------------------------------------

enum Step {
    Strike(&'static str),
    KillSession,
    Meltdown,
}

fn pick_crash(rng: &mut fastrand::Rng) -> Crash {
    [Crash::Panic, Crash::Error, Crash::Kill][rng.usize(0..3)]
}

/// The live cell of `path` (`metrics` or `storage/wal`), waiting briefly if it is restarting.
async fn find(root: &SupervisorRef, path: &str) -> Option<ActorCell> {
    for _ in 0..20 {
        let cell = match path.split_once('/') {
            Some((sub, child)) => match root.child_supervisor(sub).await {
                Ok(sup) => sup.child(child).await.ok(),
                Err(_) => None,
            },
            None => root.child(path).await.ok(),
        };
        if cell.is_some() {
            return cell;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    None
}

async fn strike(root: &SupervisorRef, shared: &Shared, path: &str, crash: Crash) -> bool {
    let p = shared.paint;
    let Some(cell) = find(root, path).await else {
        shared.line("chaos", p.dim(format!("({path} is not running; skipped)")));
        return false;
    };
    let what = match crash {
        Crash::Panic => format!("makes {path} panic"),
        Crash::Error => format!("makes {path} return an Err"),
        Crash::Kill => format!("kills {path}"),
    };
    shared.line("chaos", p.bold(format!("☠ {what}")));
    match crash {
        Crash::Kill => cell.kill(),
        _ => {
            let _ = cell.send_message(WorkerMsg::Crash(crash));
        }
    }
    true
}

async fn kill_a_session(root: &SupervisorRef, shared: &Shared, rng: &mut fastrand::Rng) -> bool {
    let p = shared.paint;
    let sup = sessions(root).await;
    let cells: Vec<ActorCell> = match sup {
        Some(sup) => match sup.which_children().await {
            Ok(children) => children.iter().filter_map(|c| c.cell().cloned()).collect(),
            Err(_) => Vec::new(),
        },
        None => Vec::new(),
    };
    if cells.is_empty() {
        shared.line("chaos", p.dim("(no session to kill; skipped)"));
        return false;
    }
    let cell = &cells[rng.usize(0..cells.len())];
    let user = lock(&shared.users)
        .get(&cell.get_id())
        .copied()
        .unwrap_or(0);
    shared.line(
        "chaos",
        p.bold(format!("☠ kills the session of user-{user}")),
    );
    cell.kill();
    true
}

/// Sleeps until `at` (± `jitter`) after the start.
async fn at(shared: &Shared, rng: &mut fastrand::Rng, at_ms: u64, jitter_ms: u64) {
    let t = at_ms - jitter_ms + rng.u64(0..=2 * jitter_ms);
    tokio::time::sleep_until((shared.t0 + Duration::from_millis(t)).into()).await;
}

// ---------------------------------------------------------------------------------------------
// main
// ---------------------------------------------------------------------------------------------

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("off")),
        )
        .try_init();
    // The chaos monkey's panics are caught by ractor and reported to the supervisor (you will
    // see them as exits); keep the default hook from printing them, but not other panics.
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let msg = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| info.payload().downcast_ref::<&str>().copied());
        if !msg.is_some_and(|m| m.starts_with("panic: ")) {
            default_hook(info);
        }
    }));

    let seed = std::env::args()
        .nth(1)
        .or_else(|| std::env::var("DEMO_SEED").ok())
        .and_then(|s| s.parse::<u64>().ok())
        .unwrap_or(7);
    let mut rng = fastrand::Rng::with_seed(seed);
    let paint = Paint::detect();
    let shared = Shared {
        t0: Instant::now(),
        paint,
        stats: Arc::default(),
        // About 40 records a second: one malformed around 2 s, one around 6 s.
        malformed: vec![rng.u64(70..90), rng.u64(235..255)].into(),
        batch_rng: Arc::new(Mutex::new(fastrand::Rng::with_seed(seed ^ 0xba7c4))),
        users: Arc::default(),
        stop_log: Arc::default(),
    };

    // Build the tree from the model and start it.
    let tree = model();
    let mut streams = Vec::new();
    let mut infos = HashMap::new();
    let builder = build(&tree, "main", &shared, &mut streams, &mut infos);
    let root = match builder.spawn().await {
        Ok(root) => root,
        Err(e) => {
            eprintln!("the application failed to start: {e}");
            return Err(e.into());
        }
    };

    println!(
        "{}",
        paint.bold(format!(
            "ractor-otp demo: a supervision tree under a chaos monkey (seed {seed})"
        ))
    );
    let observe = std::env::args().any(|a| a == "--observe");
    if observe {
        serve_observer(&root);
    }
    println!();
    draw(&tree, paint);
    println!();
    println!(
        "{}",
        paint.dim("time     who      what happened (from the supervisors' event streams)")
    );

    // The startup's events were the tree you just saw: skip them, then narrate from here on.
    for (_, s) in &mut streams {
        while s.try_recv().is_some() {}
    }
    let (stop_printer, stop_rx) = oneshot::channel();
    let printer = Printer {
        shared: shared.clone(),
        infos,
        session_actors: HashMap::new(),
        tally: Tally::default(),
    };
    let printing = tokio::spawn(print_events(streams, printer, stop_rx));

    // Users come and go.
    let logins = {
        let (root, shared) = (root.clone(), shared.clone());
        let mut rng = fastrand::Rng::with_seed(seed ^ 0x5e55);
        tokio::spawn(async move {
            while shared.t0.elapsed() < RUN_FOR - Duration::from_millis(400) {
                tokio::time::sleep(Duration::from_millis(rng.u64(250..500))).await;
                let user = rng.u64(1_000..10_000);
                if let Some(sup) = sessions(&root).await {
                    let args = SessionArgs {
                        user,
                        shared: shared.clone(),
                    };
                    let _ = sup.start_child(args).await;
                }
            }
        })
    };

    // The chaos monkey's plan: when (± jitter), and whom; the failure modes are drawn at random.
    let plan = [
        (800, 150, Step::Strike("ingest/writer")),
        (1_500, 150, Step::KillSession),
        (2_600, 100, Step::Strike("storage/index")),
        (3_400, 150, Step::Strike("ingest/source")),
        (4_200, 150, Step::Strike("metrics")),
        (5_200, 100, Step::Meltdown),
        (6_500, 150, Step::KillSession),
        (7_100, 150, Step::Strike("storage/cache")),
    ];
    let mut injected: HashMap<Crash, u32> = HashMap::new();
    for (t, jitter, step) in plan {
        at(&shared, &mut rng, t, jitter).await;
        match step {
            Step::Strike(path) => {
                let c = pick_crash(&mut rng);
                if strike(&root, &shared, path, c).await {
                    *injected.entry(c).or_default() += 1;
                }
            }
            Step::KillSession => {
                if kill_a_session(&root, &shared, &mut rng).await {
                    *injected.entry(Crash::Kill).or_default() += 1;
                }
            }
            Step::Meltdown => {
                shared.line(
                    "chaos",
                    paint.bold(
                        "☠ storage/wal is about to crash 3 times in a row \
                         (storage allows 2 restarts per 2s)",
                    ),
                );
                for _ in 0..3 {
                    let c = pick_crash(&mut rng);
                    if strike(&root, &shared, "storage/wal", c).await {
                        *injected.entry(c).or_default() += 1;
                    }
                    tokio::time::sleep(Duration::from_millis(150)).await;
                }
            }
        }
    }

    tokio::time::sleep_until((shared.t0 + RUN_FOR).into()).await;
    let _ = logins.await;
    let _ = stop_printer.send(());
    let tally = printing.await.unwrap_or_default();

    // ---- summary ----
    let elapsed = shared.t0.elapsed().as_secs_f64();
    println!();
    println!(
        "{}",
        paint.bold(format!("── summary after {elapsed:.1}s ──"))
    );
    let n = |c: Crash| injected.get(&c).copied().unwrap_or(0);
    println!(
        "chaos injected: {} panics, {} Errs, {} kills",
        n(Crash::Panic),
        n(Crash::Error),
        n(Crash::Kill),
    );
    let crashed: u32 = tally.crashes.values().sum();
    println!(
        "abnormal exits handled by supervisors: {crashed} (malformed records: {}, escalations: {})",
        tally.malformed,
        tally.escalations.len()
    );
    println!("restarts per supervisor (intensity budget used):");
    for label in ["app", "storage", "ingest", "sessions"] {
        let r = tally.restarts.get(label).copied().unwrap_or(0);
        let mut who: Vec<(&String, &u32)> = tally
            .crashes
            .iter()
            .filter(|(k, _)| k.split_once('/').is_some_and(|(l, _)| l == label))
            .collect();
        who.sort();
        let who: Vec<String> = who
            .iter()
            .map(|(k, v)| format!("{} ×{v}", k.split_once('/').map_or(k.as_str(), |x| x.1)))
            .collect();
        println!("  {label:<9} {r:>2}   {}", paint.dim(who.join(", ")));
    }
    if tally.escalations.is_empty() {
        println!("escalations: none");
    }
    for (t, who, parent) in &tally.escalations {
        println!(
            "escalation at {t:.2}s: {} exceeded its restart intensity and failed; {parent} restarted it",
            paint.magenta(who)
        );
    }
    let s = &shared.stats;
    println!(
        "work: {} records read, {} parsed, {} in the wal, {} dropped during restarts; {} logins, {} logouts",
        s.read.load(Ordering::Relaxed),
        s.parsed.load(Ordering::Relaxed),
        s.in_wal.load(Ordering::Relaxed),
        s.dropped.load(Ordering::Relaxed),
        tally.logins,
        tally.logouts,
    );

    println!();
    println!("{}", paint.bold("final tree (root.tree()):"));
    match root.tree().await {
        Ok(tree) => print!("{tree}"),
        Err(e) => println!("(no tree: {e})"),
    }

    if observe {
        println!();
        println!("the observer keeps showing the tree: press Ctrl-C to stop the app");
        let _ = tokio::signal::ctrl_c().await;
    }

    // ---- orderly shutdown ----
    println!();
    println!(
        "{}",
        paint.bold("stopping app: children in reverse start order, each subsystem drained first")
    );
    lock(&shared.stop_log).clear();
    let t = Instant::now();
    root.stop().await;
    let order = std::mem::take(&mut *lock(&shared.stop_log));
    print_stop_order(&order);
    println!(
        "app stopped in {:.0} ms; demo over after {:.1}s",
        t.elapsed().as_secs_f64() * 1e3,
        shared.t0.elapsed().as_secs_f64()
    );
    Ok(())
}

/// `--observe`: the web observer on loopback while the demo runs.
#[cfg(feature = "observer")]
fn serve_observer(root: &SupervisorRef) {
    let observer = ractor_otp::observe::web::Observer::new().supervisor(root.clone());
    println!("observer: http://127.0.0.1:9800/ (watch the restarts flash)");
    tokio::spawn(async move {
        if let Err(e) = observer.serve_local(9800).await {
            eprintln!("the observer could not serve on 127.0.0.1:9800: {e}");
        }
    });
}

#[cfg(not(feature = "observer"))]
fn serve_observer(_root: &SupervisorRef) {
    println!(
        "--observe needs the web observer: cargo run --example demo --features observer -- --observe"
    );
}

/// Groups the `post_stop` log by subsystem: `ingest: writer → parser → source`.
fn print_stop_order(order: &[String]) {
    let mut groups: Vec<(String, Vec<String>)> = Vec::new();
    for path in order {
        let (group, leaf) = match path.split_once('/') {
            Some((g, l)) => (g.to_string(), l.to_string()),
            None => (path.clone(), String::new()),
        };
        match groups.last_mut() {
            Some((g, leaves)) if *g == group && !leaf.is_empty() => leaves.push(leaf),
            _ => groups.push((group, if leaf.is_empty() { vec![] } else { vec![leaf] })),
        }
    }
    for (i, (group, leaves)) in groups.iter().enumerate() {
        let detail = if group == "sessions" {
            format!("{} (in parallel)", leaves.join(", "))
        } else {
            leaves.join(" → ")
        };
        println!("  {}. {}", i + 1, format!("{group:<9} {detail}").trim_end());
    }
}
