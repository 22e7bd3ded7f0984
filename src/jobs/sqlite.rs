//! The embedded store: SQLite through `rusqlite` (SQLite compiled in, nothing to install).
//!
//! # Durability
//! The file runs in WAL mode with `synchronous=FULL` ([`Durability::Power`], the default):
//! every commit is fsynced before any caller hears `Ok`. [`Durability::Process`] uses
//! `synchronous=NORMAL`: survives `kill -9` and clean reboots, but a power cut may roll back
//! the last commits. Both settings are read back at open; a store that cannot get them refuses
//! to open ([`StoreError::Settings`]).
//!
//! # Group commit
//! One journal thread owns the connection. It takes the next operation from its queue, then
//! every operation already waiting (up to [`SqliteOptions::max_batch`]), and runs them all in
//! one transaction, each inside its own savepoint (one failing operation rolls back alone), with
//! one fsync; then it answers every caller. An operation alone in its transaction needs no
//! savepoint: if it fails, the transaction is rolled back. Under low load that is one commit
//! per operation, under high load one commit per batch. [`SqliteStore::in_memory`] runs
//! operations inline on the caller's thread instead (no file, no fsync, no thread: for tests).
//!
//! # The state machine in SQL
//! Each [`Store`] method is one function below (`enqueue_tx`, `claim_tx`, `finish_tx`, …) over
//! one table, `otp_jobs`. Fan-in is counted in the same transaction that finishes a child
//! (`child_done`), so the collector becomes available exactly once.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

use futures::future::BoxFuture;
use futures::FutureExt;
use rusqlite::config::DbConfig;
use rusqlite::types::Value;
use rusqlite::{params, params_from_iter, Connection, OptionalExtension, Row};
use tokio::sync::oneshot;

use crate::jobs::owner_files;
use crate::jobs::schedule::{self, FiringStep};
use crate::jobs::store::{
    ClaimRequest, ClaimedJob, Enqueued, Finish, Fired, Firing, GroupIds, GroupPolicy, Lease,
    Liveness, NewGroup, ScheduleDecl, ScheduleMark, Store, Turn, TurnOutcome,
};
use crate::jobs::transition::{
    self, Action, AfterFailure, Candidate, ClaimStep, Collector, GroupStep,
};
use crate::jobs::{
    AttemptError, ChildOutcome, JobId, JobRecord, JobState, ListFilter, NewJob, Prune, Pruned,
    Resource, RetryBackoff, ScheduleRecord, StoreError, Timestamp,
};

/// How much a commit survives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Durability {
    /// `synchronous=FULL`: every acknowledged commit survives a power cut.
    #[default]
    Power,
    /// `synchronous=NORMAL`: survives a killed process and a clean reboot; a power cut may
    /// roll back the last commits (never corrupts the file).
    Process,
}

/// How to open a [`SqliteStore`] file.
#[derive(Debug, Clone)]
pub struct SqliteOptions {
    durability: Durability,
    max_batch: usize,
}

impl Default for SqliteOptions {
    fn default() -> Self {
        SqliteOptions {
            durability: Durability::Power,
            max_batch: 512,
        }
    }
}

impl SqliteOptions {
    /// The durability level (default [`Durability::Power`]).
    pub fn durability(mut self, durability: Durability) -> Self {
        self.durability = durability;
        self
    }

    /// At most this many operations share one commit (default 512; 1 turns group commit
    /// off).
    pub fn max_batch(mut self, max_batch: usize) -> Self {
        self.max_batch = max_batch.max(1);
        self
    }

    /// Opens (creating if needed) the store at `path`. The parent directory must exist
    /// ([`StoreError::Invalid`] says so when it does not).
    ///
    /// No integrity check runs at open: `PRAGMA quick_check` reads every page, which on a
    /// large queue adds seconds to every start. SQLite checks each page it reads, so damage
    /// surfaces as an error of the operation that meets it; run `PRAGMA integrity_check` on
    /// the file (e.g. with the `sqlite3` shell) after a disk or filesystem fault.
    pub async fn open(self, path: impl AsRef<Path>) -> Result<SqliteStore, StoreError> {
        let path = path.as_ref().to_path_buf();
        let owners_of = path.clone();
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            if !dir.is_dir() {
                return Err(StoreError::Invalid(format!(
                    "directory {} does not exist: create it before opening {}",
                    dir.display(),
                    path.display()
                )));
            }
        }
        let (ready_tx, ready_rx) = oneshot::channel();
        let (tx, rx) = mpsc::channel::<Command>();
        let stats = Arc::new(Counters::default());
        let journal_stats = stats.clone();
        let max_batch = self.max_batch;
        let durability = self.durability;
        let owners = owner_files::owners_dir(&owners_of);
        std::thread::Builder::new()
            .name("ractor-otp-journal".into())
            .spawn(move || {
                let conn = match owner_files::opening(&owners, OPENING_PATIENCE)
                    .and_then(|_turn| open_file(&path, durability))
                {
                    Ok(conn) => {
                        let _ = ready_tx.send(Ok(()));
                        conn
                    }
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        return;
                    }
                };
                journal(conn, rx, max_batch, &journal_stats);
            })
            .map_err(|e| StoreError::Database(format!("cannot start the journal thread: {e}")))?;
        ready_rx.await.map_err(|_| StoreError::Closed)??;
        Ok(SqliteStore {
            exec: Arc::new(Exec::Journal(tx)),
            stats,
            owners: Some(Arc::new(owner_files::owners_dir(&owners_of))),
        })
    }
}

/// The embedded SQLite store. Cheap to clone: clones share one connection.
///
/// Beside the database file `jobs.sqlite3`, SQLite keeps its write-ahead log
/// (`jobs.sqlite3-wal`, `-shm`) and each running runner a locked file in
/// `jobs.sqlite3.owners/`, its sign of life (see [`Store::hold_liveness`]): keep them together.
///
/// ```
/// use ractor_otp::jobs::{SqliteStore, Store, Timestamp};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let dir = std::env::temp_dir().join(format!("otp-doc-{}", std::process::id()));
/// std::fs::create_dir_all(&dir)?;
/// let store = SqliteStore::open(dir.join("jobs.sqlite3")).await?;
/// let counts = store.counts(Timestamp::from_millis(0)).await?;
/// assert!(counts.iter().all(|(_, n)| *n == 0));
/// # drop(store);
/// # std::fs::remove_dir_all(&dir)?;
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct SqliteStore {
    exec: Arc<Exec>,
    stats: Arc<Counters>,
    /// Where runners' signs of life live (a file store only).
    owners: Option<Arc<PathBuf>>,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match &*self.exec {
            Exec::Inline(_) => "in-memory",
            Exec::Journal(_) => "file",
        };
        f.debug_struct("SqliteStore")
            .field("kind", &kind)
            .field("stats", &self.journal_stats())
            .finish()
    }
}

/// How many transactions the store committed and how many operations they carried.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct JournalStats {
    /// Transactions committed (one fsync each on a file store).
    pub commits: u64,
    /// Operations carried by them.
    pub operations: u64,
}

#[derive(Default)]
struct Counters {
    commits: AtomicU64,
    operations: AtomicU64,
}

impl SqliteStore {
    /// Opens (creating if needed) the store at `path` with the default options (WAL,
    /// `synchronous=FULL`, group commit).
    pub async fn open(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        SqliteOptions::default().open(path).await
    }

    /// Options for [`SqliteOptions::open`].
    pub fn options() -> SqliteOptions {
        SqliteOptions::default()
    }

    /// A store in memory, gone when the last clone is dropped: the same SQL, for tests.
    pub fn in_memory() -> Result<Self, StoreError> {
        let conn = Connection::open_in_memory()?;
        configure(&conn)?;
        create_schema(&conn)?;
        Ok(SqliteStore {
            exec: Arc::new(Exec::Inline(Mutex::new(conn))),
            stats: Arc::new(Counters::default()),
            owners: None,
        })
    }

    /// Commits and operations so far.
    pub fn journal_stats(&self) -> JournalStats {
        JournalStats {
            commits: self.stats.commits.load(Ordering::Relaxed),
            operations: self.stats.operations.load(Ordering::Relaxed),
        }
    }

    /// Runs `op` in a transaction (shared with other operations on a file store) and returns
    /// its result once committed.
    async fn run<T, F>(&self, op: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        let command = command(op, tx);
        match &*self.exec {
            Exec::Inline(conn) => {
                let conn = conn.lock().map_err(|_| StoreError::Closed)?;
                run_batch(&conn, vec![command], &self.stats);
            }
            Exec::Journal(queue) => queue.send(command).map_err(|_| StoreError::Closed)?,
        }
        rx.await.map_err(|_| StoreError::Closed)?
    }
}

/// `op` as a [`Command`] whose answer goes to `answer`.
fn command<T, F>(op: F, answer: oneshot::Sender<Result<T, StoreError>>) -> Command
where
    T: Send + 'static,
    F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
{
    Box::new(move |slot: Slot<'_>| {
        // Refused: the transaction could not begin, and the commit's error (which `and` keeps)
        // is the answer.
        let result = match slot {
            Slot::Shared(conn) => in_savepoint(conn, op),
            Slot::Alone(conn) => guarded(conn, op),
            Slot::Refused => Err(StoreError::Closed),
        };
        let ran = if result.is_ok() { Ran::Ok } else { Ran::Failed };
        let reply = Box::new(move |commit: Result<(), StoreError>| {
            let _ = answer.send(commit.and(result));
        }) as Reply;
        (reply, ran)
    })
}

/// What runs an operation: inline (in memory) or the journal thread (file).
enum Exec {
    Inline(Mutex<Connection>),
    Journal(mpsc::Sender<Command>),
}

/// An operation: runs inside the batch's transaction (or not at all, given [`Slot::Refused`],
/// when the transaction could not begin) and returns how to answer its caller once the
/// commit's outcome is known, and whether it failed.
type Command = Box<dyn FnOnce(Slot<'_>) -> (Reply, Ran) + Send>;
type Reply = Box<dyn FnOnce(Result<(), StoreError>) + Send>;

/// Where an operation runs.
enum Slot<'c> {
    /// Beside other operations in one transaction: in a savepoint of its own, so that its
    /// failure rolls back its writes alone.
    Shared(&'c Connection),
    /// Alone in its transaction: no savepoint (its statements and the copy of every page it
    /// changes into the savepoint journal cost a sixth of a lone operation's time); if it
    /// fails, the whole transaction is rolled back instead of committed.
    Alone(&'c Connection),
    /// The transaction could not begin.
    Refused,
}

/// Whether an operation's writes may be committed.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Ran {
    Ok,
    Failed,
}

/// How long opening a store waits for other processes opening it at the same time.
const OPENING_PATIENCE: Duration = Duration::from_secs(30);

/// Opens the database file; the caller holds the turn to open it (see
/// [`owner_files::opening`]).
fn open_file(path: &Path, durability: Durability) -> Result<Connection, StoreError> {
    let conn = Connection::open(path)?;
    conn.busy_timeout(Duration::from_secs(5))?;
    configure(&conn)?;
    let mode: String = conn.query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(StoreError::Settings(format!(
            "journal_mode is `{mode}` after asking for WAL (is {} on a filesystem without shared memory?)",
            path.display()
        )));
    }
    let (level, name) = match durability {
        Durability::Power => (2, "FULL"),
        Durability::Process => (1, "NORMAL"),
    };
    conn.execute_batch(&format!("PRAGMA synchronous={name}"))?;
    let got: i64 = conn.query_row("PRAGMA synchronous", [], |r| r.get(0))?;
    if got != level {
        return Err(StoreError::Settings(format!(
            "synchronous is {got} after asking for {name} ({level})"
        )));
    }
    create_schema(&conn)?;
    Ok(conn)
}

/// What every connection of the store gets: the statement cache, and the query planner's
/// stability guarantee. Without it, a statement over the partial indexes of due jobs is marked
/// to be planned again whenever a parameter is bound, so every claim re-prepared its scan (a
/// sixth of the writer's time); the plans the store relies on use no bound value.
fn configure(conn: &Connection) -> Result<(), StoreError> {
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    conn.set_db_config(DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG, true)?;
    Ok(())
}

/// Prepared statements kept per connection: every statement the store runs (rusqlite's
/// default of 16 is fewer, and re-parsing showed in profiles).
const STATEMENT_CACHE: usize = 64;

/// 2: partial indexes for due and leased jobs (version 1's full indexes are dropped).
/// 3: the due-job indexes' condition is spelled with `OR` (see [`DUE`]); version 2's are
/// dropped and rebuilt under new names.
const SCHEMA_VERSION: i64 = 4;

fn create_schema(conn: &Connection) -> Result<(), StoreError> {
    let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if version > SCHEMA_VERSION {
        return Err(StoreError::Settings(format!(
            "the store's schema is version {version}, newer than this library's {SCHEMA_VERSION}; upgrade ractor-otp"
        )));
    }
    // IMMEDIATE: take the write lock first (waiting out the busy timeout while another
    // process writes); a read transaction upgraded later would fail at once instead.
    conn.execute_batch(&format!(
        "BEGIN IMMEDIATE;
        CREATE TABLE IF NOT EXISTS otp_jobs (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            queue TEXT NOT NULL,
            name TEXT NOT NULL,
            version INTEGER NOT NULL,
            payload TEXT NOT NULL,
            state TEXT NOT NULL,
            priority INTEGER NOT NULL,
            run_at INTEGER NOT NULL,
            attempt INTEGER NOT NULL DEFAULT 0,
            max_attempts INTEGER NOT NULL,
            backoff_base_ms INTEGER NOT NULL,
            backoff_factor REAL NOT NULL,
            backoff_max_ms INTEGER NOT NULL,
            timeout_ms INTEGER,
            resource_key TEXT,
            resource_capacity INTEGER,
            idem_key TEXT,
            token INTEGER NOT NULL DEFAULT 0,
            lease_owner TEXT,
            lease_expires_at INTEGER,
            parent_id INTEGER,
            counted INTEGER NOT NULL DEFAULT 0,
            pending_children INTEGER NOT NULL DEFAULT 0,
            group_policy TEXT,
            result TEXT,
            error TEXT,
            errors TEXT NOT NULL DEFAULT '[]',
            inserted_at INTEGER NOT NULL,
            finished_at INTEGER
        );
        DROP INDEX IF EXISTS otp_jobs_due;
        DROP INDEX IF EXISTS otp_jobs_lease;
        DROP INDEX IF EXISTS otp_jobs_ready;
        DROP INDEX IF EXISTS otp_jobs_next;
        CREATE INDEX IF NOT EXISTS otp_jobs_due_order
            ON otp_jobs(queue, priority DESC, run_at, id) WHERE {DUE};
        CREATE INDEX IF NOT EXISTS otp_jobs_due_time ON otp_jobs(run_at) WHERE {DUE};
        CREATE INDEX IF NOT EXISTS otp_jobs_leased ON otp_jobs(lease_expires_at)
            WHERE state = 'executing';
        CREATE INDEX IF NOT EXISTS otp_jobs_resource ON otp_jobs(resource_key, state)
            WHERE resource_key IS NOT NULL;
        CREATE INDEX IF NOT EXISTS otp_jobs_parent ON otp_jobs(parent_id)
            WHERE parent_id IS NOT NULL;
        -- The pruner's: conditioned on the column alone, so that only the writes that set it
        -- (a job's end, a retry) touch the index, not every change of state.
        CREATE INDEX IF NOT EXISTS otp_jobs_finished ON otp_jobs(finished_at)
            WHERE finished_at IS NOT NULL;
        {SCHEDULES_TABLE}
        {KEYS_TABLE}
        {keys_from_jobs}
        DROP INDEX IF EXISTS otp_jobs_idem;
        PRAGMA user_version = {SCHEMA_VERSION};
        COMMIT;",
        // Version 4 moved idempotency keys out of job rows: a store written by an earlier
        // version brings its keys along once.
        keys_from_jobs = if version < 4 { KEYS_FROM_JOBS } else { "" },
    ))?;
    Ok(())
}

/// Idempotency keys, apart from the jobs (pruning a job keeps its key): the job that holds
/// each, and when it expires (never, without `unique_for`).
const KEYS_TABLE: &str = "CREATE TABLE IF NOT EXISTS otp_keys (
    key TEXT PRIMARY KEY,
    job_id INTEGER NOT NULL,
    expires_at INTEGER
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS otp_keys_expiry ON otp_keys(expires_at) WHERE expires_at IS NOT NULL;";

/// The keys of a store from before version 4, which lived in job rows.
const KEYS_FROM_JOBS: &str = "INSERT OR IGNORE INTO otp_keys (key, job_id, expires_at)
    SELECT idem_key, id, NULL FROM otp_jobs WHERE idem_key IS NOT NULL;";

/// Schedules' slot markers and counters (added after version 3: a table of its own, which an
/// older library ignores, so no version change).
const SCHEDULES_TABLE: &str = "CREATE TABLE IF NOT EXISTS otp_schedules (
    name TEXT PRIMARY KEY,
    spec TEXT NOT NULL,
    declared_at INTEGER NOT NULL,
    seen_at INTEGER NOT NULL,
    last_slot INTEGER,
    next_slot INTEGER,
    last_job INTEGER,
    fired INTEGER NOT NULL DEFAULT 0,
    missed INTEGER NOT NULL DEFAULT 0
);";

/// The journal thread: batches whatever is waiting into one transaction.
fn journal(conn: Connection, queue: mpsc::Receiver<Command>, max_batch: usize, stats: &Counters) {
    while let Ok(first) = queue.recv() {
        let mut batch = vec![first];
        while batch.len() < max_batch {
            match queue.try_recv() {
                Ok(command) => batch.push(command),
                Err(_) => break,
            }
        }
        run_batch(&conn, batch, stats);
    }
}

/// Runs operations in one transaction, then answers each with the commit's outcome. An
/// operation alone in its transaction runs without a savepoint: if it fails, the transaction
/// is rolled back, and its answer is its own error.
fn run_batch(conn: &Connection, batch: Vec<Command>, stats: &Counters) {
    if let Err(e) = transaction_statement(conn, "BEGIN IMMEDIATE") {
        for command in batch {
            command(Slot::Refused).0(Err(e.clone()));
        }
        return;
    }
    let count = batch.len() as u64;
    let alone = batch.len() == 1;
    let mut failed_alone = false;
    let replies: Vec<Reply> = batch
        .into_iter()
        .map(|command| {
            if alone {
                let (reply, ran) = command(Slot::Alone(conn));
                failed_alone = ran == Ran::Failed;
                reply
            } else {
                command(Slot::Shared(conn)).0
            }
        })
        .collect();
    let outcome = if failed_alone {
        // Nothing to keep: the failed operation's error is its answer.
        let _ = transaction_statement(conn, "ROLLBACK");
        Ok(())
    } else {
        let commit = transaction_statement(conn, "COMMIT");
        if commit.is_err() {
            let _ = transaction_statement(conn, "ROLLBACK");
        } else {
            stats.commits.fetch_add(1, Ordering::Relaxed);
            stats.operations.fetch_add(count, Ordering::Relaxed);
        }
        commit
    };
    for reply in replies {
        reply(outcome.clone());
    }
}

/// `BEGIN IMMEDIATE`, `COMMIT` or `ROLLBACK`, prepared once per connection (parsing them on
/// every transaction showed in profiles).
fn transaction_statement(conn: &Connection, sql: &str) -> Result<(), StoreError> {
    conn.prepare_cached(sql)?.execute([])?;
    Ok(())
}

/// Runs `op` inside a savepoint: rolled back alone if it fails or panics.
fn in_savepoint<T>(
    conn: &Connection,
    op: impl FnOnce(&Connection) -> Result<T, StoreError>,
) -> Result<T, StoreError> {
    conn.prepare_cached("SAVEPOINT op")?.execute([])?;
    let result = guarded(conn, op);
    if result.is_err() {
        conn.prepare_cached("ROLLBACK TO op")?.execute([])?;
    }
    conn.prepare_cached("RELEASE op")?.execute([])?;
    result
}

/// Runs `op`, a panic turned into an error (the caller rolls back what it wrote).
fn guarded<T>(
    conn: &Connection,
    op: impl FnOnce(&Connection) -> Result<T, StoreError>,
) -> Result<T, StoreError> {
    match catch_unwind(AssertUnwindSafe(|| op(conn))) {
        Ok(result) => result,
        Err(_) => Err(StoreError::Database(
            "a store operation panicked; it was rolled back".into(),
        )),
    }
}

// ---------------------------------------------------------------------------------------------
// The operations, one function per Store method.
// ---------------------------------------------------------------------------------------------

/// A job in a final state. Spelled with `OR`, not `IN (…)`: SQLite evaluates an `IN` over
/// more than two values through a temporary b-tree built on every execution, and in an
/// index's condition on every row written (it showed as a fifth of the writer's time).
const FINAL: &str = "(state = 'completed' OR state = 'discarded' OR state = 'cancelled')";
/// A job waiting for its time to run (spelled as [`FINAL`] is). The partial indexes of due
/// jobs use this exact text, which is what lets SQLite's planner use them for a query that
/// contains it.
const DUE: &str = "(state = 'scheduled' OR state = 'available' OR state = 'retryable')";

fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

fn placeholders(n: usize) -> String {
    vec!["?"; n].join(",")
}

fn insert_job(
    conn: &Connection,
    job: &NewJob,
    now: Timestamp,
    parent: Option<JobId>,
    waiting_for: Option<(u32, GroupPolicy)>,
) -> Result<Enqueued, StoreError> {
    let o = &job.options;
    if let Some(key) = &o.idempotency_key {
        // Takes the key unless it is held (and not expired): then the holder is the answer.
        let taken = conn
            .prepare_cached(
                "INSERT INTO otp_keys (key, job_id, expires_at) VALUES (?1, 0, ?2)
                 ON CONFLICT (key) DO UPDATE SET job_id = 0, expires_at = excluded.expires_at
                    WHERE otp_keys.expires_at IS NOT NULL AND otp_keys.expires_at <= ?3
                 RETURNING 1",
            )?
            .query_row(
                params![
                    key,
                    o.unique_for.map(|d| now.after(d).as_millis()),
                    now.as_millis()
                ],
                |_| Ok(()),
            )
            .optional()?
            .is_some();
        if !taken {
            let id: i64 = conn
                .prepare_cached("SELECT job_id FROM otp_keys WHERE key = ?")?
                .query_row([key], |r| r.get(0))?;
            return Ok(Enqueued {
                id: JobId(id),
                duplicate: true,
            });
        }
    }
    let start = transition::initial(job, now, waiting_for);
    conn.prepare_cached(
        "INSERT INTO otp_jobs (queue, name, version, payload, state, priority, run_at,
            max_attempts, backoff_base_ms, backoff_factor, backoff_max_ms, timeout_ms,
            resource_key, resource_capacity, idem_key, parent_id, pending_children,
            group_policy, inserted_at)
         VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
    )?
    .execute(params![
        o.queue,
        job.name,
        job.version,
        job.payload,
        start.state.as_str(),
        o.priority,
        start.run_at.as_millis(),
        o.max_attempts,
        ms(o.backoff.base),
        o.backoff.factor,
        ms(o.backoff.max),
        o.timeout.map(ms),
        o.resource.as_ref().map(|r| r.key.as_str()),
        o.resource.as_ref().map(|r| r.capacity),
        o.idempotency_key,
        parent.map(|p| p.0),
        start.pending,
        start.policy.map(transition::policy_name),
        now.as_millis(),
    ])?;
    let id = conn.last_insert_rowid();
    if let Some(key) = &o.idempotency_key {
        conn.prepare_cached("UPDATE otp_keys SET job_id = ? WHERE key = ?")?
            .execute(params![id, key])?;
    }
    Ok(Enqueued {
        id: JobId(id),
        duplicate: false,
    })
}

fn enqueue_tx(
    conn: &Connection,
    jobs: &[NewJob],
    now: Timestamp,
) -> Result<Vec<Enqueued>, StoreError> {
    jobs.iter()
        .map(|job| insert_job(conn, job, now, None, None))
        .collect()
}

fn enqueue_group_tx(
    conn: &Connection,
    group: &NewGroup,
    now: Timestamp,
) -> Result<GroupIds, StoreError> {
    let n = transition::check_group(group)?;
    let collector = insert_job(conn, &group.collector, now, None, Some((n, group.policy)))?;
    if collector.duplicate {
        let mut stmt =
            conn.prepare_cached("SELECT id FROM otp_jobs WHERE parent_id = ? ORDER BY id")?;
        let children = stmt
            .query_map([collector.id.0], |r| r.get(0).map(JobId))?
            .collect::<Result<_, _>>()?;
        return Ok(GroupIds {
            collector: collector.id,
            children,
        });
    }
    let children = group
        .children
        .iter()
        .map(|child| insert_job(conn, child, now, Some(collector.id), None).map(|e| e.id))
        .collect::<Result<_, _>>()?;
    Ok(GroupIds {
        collector: collector.id,
        children,
    })
}

/// A due candidate for a claim, as read.
struct Found {
    id: i64,
    state: String,
    attempt: u32,
    max_attempts: u32,
    resource: Option<(String, u32)>,
    lease_owner: Option<String>,
    lease_expires_at: Option<i64>,
    /// Claim order: priority (highest first), then run_at, then id.
    order: (std::cmp::Reverse<i64>, i64, i64),
}

fn claim_tx(
    conn: &Connection,
    request: &ClaimRequest,
    now: Timestamp,
) -> Result<Vec<ClaimedJob>, StoreError> {
    if request.limit == 0 || request.queues.is_empty() || request.names.is_empty() {
        return Ok(Vec::new());
    }
    let now_ms = now.as_millis();
    // Scans along the partial indexes: the due jobs of each queue (one scan per queue:
    // `queue = ?` lets the scan follow the index in claim order and stop at the limit, where
    // `queue IN (…)` over several queues sorts every due job of those queues first), then the
    // expired leases. Resources at capacity are filtered here; claims within this batch are
    // re-checked below.
    let scan = i64::from(request.limit) * 4 + 32;
    let select = |due: &str, queues: usize| {
        format!(
            "SELECT id, state, attempt, max_attempts, resource_key, resource_capacity,
                    lease_owner, lease_expires_at, priority, run_at
             FROM otp_jobs j
             WHERE {due} AND queue IN ({q}) AND name IN ({n})
               AND (resource_key IS NULL OR resource_capacity > (
                    SELECT COUNT(*) FROM otp_jobs e
                    WHERE e.resource_key = j.resource_key AND e.state = 'executing'
                      AND e.lease_expires_at > ?))
             ORDER BY priority DESC, run_at, id
             LIMIT ?",
            q = placeholders(queues),
            n = placeholders(request.names.len()),
        )
    };
    let due = select(&format!("{DUE} AND run_at <= ?"), 1);
    let expired = select(
        "state = 'executing' AND lease_expires_at <= ?",
        request.queues.len(),
    );
    let mut scans: Vec<(&str, &[String])> = request
        .queues
        .iter()
        .map(|q| (due.as_str(), std::slice::from_ref(q)))
        .collect();
    scans.push((expired.as_str(), &request.queues));
    let mut candidates = Vec::new();
    for (sql, queues) in scans {
        let mut args: Vec<Value> = vec![Value::Integer(now_ms)];
        args.extend(queues.iter().cloned().map(Value::Text));
        args.extend(request.names.iter().cloned().map(Value::Text));
        args.push(Value::Integer(now_ms));
        args.push(Value::Integer(scan));
        let mut stmt = conn.prepare_cached(sql)?;
        let rows = stmt.query_map(params_from_iter(args.iter()), |r| {
            let key: Option<String> = r.get(4)?;
            let capacity: Option<u32> = r.get(5)?;
            Ok(Found {
                id: r.get(0)?,
                state: r.get(1)?,
                attempt: r.get(2)?,
                max_attempts: r.get(3)?,
                resource: key.zip(capacity),
                lease_owner: r.get(6)?,
                lease_expires_at: r.get(7)?,
                order: (std::cmp::Reverse(r.get(8)?), r.get(9)?, r.get(0)?),
            })
        })?;
        for row in rows {
            candidates.push(row?);
        }
    }
    candidates.sort_by_key(|c| c.order);

    let lease_end = now.after(request.lease);
    let mut claimed = Vec::new();
    for c in candidates {
        if claimed.len() as u32 >= request.limit {
            break;
        }
        let step = transition::claim_step(&Candidate {
            state: JobState::from_column(&c.state, c.id)?,
            attempt: c.attempt,
            max_attempts: c.max_attempts,
            lease_owner: c.lease_owner.as_deref(),
            lease_expires_at: c.lease_expires_at,
        });
        let lost_run = match step {
            ClaimStep::Claim => None,
            ClaimStep::ClaimAfterLostRun { error } => Some(error),
            ClaimStep::Discard { error } => {
                push_error(conn, c.id, c.attempt, now, &error)?;
                discard(conn, c.id, &error, now)?;
                continue;
            }
        };
        if let Some((key, capacity)) = &c.resource {
            let holders: u32 = conn
                .prepare_cached(
                    "SELECT COUNT(*) FROM otp_jobs WHERE resource_key = ? AND state = 'executing'
                     AND lease_expires_at > ? AND id != ?",
                )?
                .query_row(params![key, now_ms, c.id], |r| r.get(0))?;
            if holders >= *capacity {
                // Left as it is: a lost run is recorded when the job is actually reclaimed.
                continue;
            }
        }
        // The candidate list may be stale within this claim (a fail-fast group cancels
        // siblings when a child is discarded above): claim only what is still as selected.
        let updated = conn
            .prepare_cached(
                "UPDATE otp_jobs SET state = 'executing', attempt = attempt + 1,
                    token = token + 1, lease_owner = ?, lease_expires_at = ?
                 WHERE id = ? AND state = ? AND attempt = ?",
            )?
            .execute(params![
                request.owner,
                lease_end.as_millis(),
                c.id,
                c.state,
                c.attempt
            ])?;
        if updated == 0 {
            continue;
        }
        if let Some(error) = &lost_run {
            push_error(conn, c.id, c.attempt, now, error)?;
        }
        claimed.push(load_claimed(conn, c.id)?);
    }
    Ok(claimed)
}

fn load_claimed(conn: &Connection, id: i64) -> Result<ClaimedJob, StoreError> {
    let (mut job, is_collector) = conn
        .prepare_cached(
            "SELECT id, token, name, version, payload, queue, attempt, max_attempts, timeout_ms,
                    lease_expires_at, group_policy IS NOT NULL, run_at
             FROM otp_jobs WHERE id = ?",
        )?
        .query_row([id], |r| {
            let timeout: Option<i64> = r.get(8)?;
            Ok((
                ClaimedJob {
                    id: JobId(r.get(0)?),
                    token: r.get(1)?,
                    name: r.get(2)?,
                    version: r.get(3)?,
                    payload: r.get(4)?,
                    queue: r.get(5)?,
                    attempt: r.get(6)?,
                    max_attempts: r.get(7)?,
                    timeout: timeout.map(|t| Duration::from_millis(t.max(0) as u64)),
                    lease_expires_at: Timestamp::from_millis(r.get(9)?),
                    due_at: Timestamp::from_millis(r.get(11)?),
                    children: Vec::new(),
                },
                r.get::<_, bool>(10)?,
            ))
        })?;
    if is_collector {
        job.children = children_of(conn, id)?;
    }
    Ok(job)
}

fn children_of(conn: &Connection, parent: i64) -> Result<Vec<ChildOutcome>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT id, name, state, result, error FROM otp_jobs WHERE parent_id = ? ORDER BY id",
    )?;
    let rows = stmt.query_map([parent], |r| {
        Ok((
            r.get::<_, i64>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, String>(2)?,
            r.get::<_, Option<String>>(3)?,
            r.get::<_, Option<String>>(4)?,
        ))
    })?;
    let mut out = Vec::new();
    for row in rows {
        let (id, name, state, result, error) = row?;
        let state = JobState::from_column(&state, id)?;
        out.push(transition::child_outcome(
            JobId(id),
            name,
            state,
            result,
            error,
        ));
    }
    Ok(out)
}

fn push_error(
    conn: &Connection,
    id: i64,
    attempt: u32,
    now: Timestamp,
    error: &str,
) -> Result<(), StoreError> {
    let errors: String = conn
        .prepare_cached("SELECT errors FROM otp_jobs WHERE id = ?")?
        .query_row([id], |r| r.get(0))?;
    let mut errors: Vec<AttemptError> = serde_json::from_str(&errors)
        .map_err(|e| StoreError::Corrupt(format!("errors of job#{id}: {e}")))?;
    errors.push(AttemptError {
        attempt,
        at: now,
        error: error.to_owned(),
    });
    let errors = serde_json::to_string(&errors)
        .map_err(|e| StoreError::Corrupt(format!("errors of job#{id}: {e}")))?;
    conn.prepare_cached("UPDATE otp_jobs SET errors = ?, error = ? WHERE id = ?")?
        .execute(params![errors, error, id])?;
    Ok(())
}

/// Moves a job to `discarded` (dead letter) and tells its collector.
fn discard(conn: &Connection, id: i64, error: &str, now: Timestamp) -> Result<(), StoreError> {
    conn.prepare_cached(
        "UPDATE otp_jobs SET state = 'discarded', error = ?, finished_at = ?,
            lease_owner = NULL, lease_expires_at = NULL WHERE id = ?",
    )?
    .execute(params![error, now.as_millis(), id])?;
    child_done(conn, id, false, now)
}

/// A job reached a final state: count it towards its collector, exactly once. The last child
/// (or, fail-fast, the first failed one) makes the collector available.
fn child_done(conn: &Connection, id: i64, ok: bool, now: Timestamp) -> Result<(), StoreError> {
    let row: Option<(Option<i64>, bool)> = conn
        .prepare_cached("SELECT parent_id, counted FROM otp_jobs WHERE id = ?")?
        .query_row([id], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    match row {
        Some((parent, counted)) => count_child(conn, id, parent, counted, ok, now),
        None => Ok(()),
    }
}

/// [`child_done`] for a job whose `parent_id` and `counted` the caller read in this
/// transaction (as `postgres.rs`'s function of the same name).
fn count_child(
    conn: &Connection,
    id: i64,
    parent: Option<i64>,
    counted: bool,
    ok: bool,
    now: Timestamp,
) -> Result<(), StoreError> {
    let Some(parent) = transition::counts_toward(parent, counted) else {
        return Ok(());
    };
    conn.prepare_cached("UPDATE otp_jobs SET counted = 1 WHERE id = ?")?
        .execute([id])?;
    let collector: Option<(String, u32, Option<String>)> = conn
        .prepare_cached("SELECT state, pending_children, group_policy FROM otp_jobs WHERE id = ?")?
        .query_row([parent], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .optional()?;
    let Some((state, pending, policy)) = collector else {
        return Ok(());
    };
    let collector = Collector {
        state: JobState::from_column(&state, parent)?,
        pending,
        policy: transition::parse_policy(policy.as_deref()),
    };
    let step = transition::after_child(collector, ok);
    let Some((state, pending)) = step.collector() else {
        return Ok(());
    };
    conn.prepare_cached(
        "UPDATE otp_jobs SET pending_children = ?, state = ?, run_at = ? WHERE id = ?",
    )?
    .execute(params![pending, state.as_str(), now.as_millis(), parent])?;
    if step == GroupStep::ReadyCancelSiblings {
        cancel_children(conn, parent, now)?;
    }
    Ok(())
}

/// Cancels the unfinished children of `parent` (and theirs).
fn cancel_children(conn: &Connection, parent: i64, now: Timestamp) -> Result<(), StoreError> {
    let ids: Vec<i64> = conn
        .prepare_cached(&format!(
            "SELECT id FROM otp_jobs WHERE parent_id = ? AND NOT {FINAL}"
        ))?
        .query_map([parent], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    for id in ids {
        mark_cancelled(conn, id, now)?;
        cancel_children(conn, id, now)?;
    }
    Ok(())
}

fn mark_cancelled(conn: &Connection, id: i64, now: Timestamp) -> Result<(), StoreError> {
    conn.prepare_cached(
        "UPDATE otp_jobs SET state = 'cancelled', finished_at = ?, lease_owner = NULL,
            lease_expires_at = NULL, counted = CASE WHEN parent_id IS NULL THEN counted ELSE 1 END
         WHERE id = ?",
    )?
    .execute(params![now.as_millis(), id])?;
    Ok(())
}

/// The row behind a lease, if the lease is still held.
struct Held {
    attempt: u32,
    max_attempts: u32,
    backoff: RetryBackoff,
    /// Its collector, if it is a child (see [`count_child`]).
    parent: Option<i64>,
    /// Whether its end has been counted toward the collector.
    counted: bool,
}

fn held(conn: &Connection, lease: Lease) -> Result<Held, StoreError> {
    type HeldRow = (String, i64, u32, u32, i64, f64, i64, Option<i64>, bool);
    let row: Option<HeldRow> = conn
        .prepare_cached(
            "SELECT state, token, attempt, max_attempts, backoff_base_ms, backoff_factor,
                    backoff_max_ms, parent_id, counted FROM otp_jobs WHERE id = ?",
        )?
        .query_row([lease.id.0], |r| {
            Ok((
                r.get(0)?,
                r.get(1)?,
                r.get(2)?,
                r.get(3)?,
                r.get(4)?,
                r.get(5)?,
                r.get(6)?,
                r.get(7)?,
                r.get(8)?,
            ))
        })
        .optional()?;
    let found = match &row {
        Some((state, token, ..)) => Some((JobState::from_column(state, lease.id.0)?, *token)),
        None => None,
    };
    transition::check_lease(lease, found)?;
    let Some((_, _, attempt, max_attempts, base, factor, max, parent, counted)) = row else {
        return Err(StoreError::NotFound(lease.id));
    };
    Ok(Held {
        attempt,
        max_attempts,
        backoff: RetryBackoff {
            base: Duration::from_millis(base.max(0) as u64),
            factor,
            max: Duration::from_millis(max.max(0) as u64),
        },
        parent,
        counted,
    })
}

fn finish_tx(
    conn: &Connection,
    lease: Lease,
    finish: &Finish,
    now: Timestamp,
) -> Result<(), StoreError> {
    let job = held(conn, lease)?;
    let id = lease.id.0;
    let now_ms = now.as_millis();
    match finish {
        Finish::Completed {
            result,
            follow_ups,
            groups,
        } => {
            conn.prepare_cached(
                "UPDATE otp_jobs SET state = 'completed', result = ?, finished_at = ?,
                    lease_owner = NULL, lease_expires_at = NULL WHERE id = ?",
            )?
            .execute(params![result, now_ms, id])?;
            count_child(conn, id, job.parent, job.counted, true, now)?;
            enqueue_tx(conn, follow_ups, now)?;
            for group in groups {
                enqueue_group_tx(conn, group, now)?;
            }
        }
        Finish::Failed { error, retry } => {
            push_error(conn, id, job.attempt, now, error)?;
            match transition::after_failure(
                job.attempt,
                job.max_attempts,
                &job.backoff,
                *retry,
                now,
            ) {
                AfterFailure::Retry { at } => {
                    conn.prepare_cached(
                        "UPDATE otp_jobs SET state = 'retryable', run_at = ?, lease_owner = NULL,
                            lease_expires_at = NULL WHERE id = ?",
                    )?
                    .execute(params![at.as_millis(), id])?;
                }
                AfterFailure::Discard => discard(conn, id, error, now)?,
            }
        }
        Finish::Snoozed { until } => put_back(conn, id, *until, now)?,
        Finish::Parked => {
            conn.prepare_cached(
                "UPDATE otp_jobs SET state = 'parked', lease_owner = NULL, lease_expires_at = NULL
                 WHERE id = ?",
            )?
            .execute([id])?;
        }
    }
    Ok(())
}

/// A runner's turn in one transaction: each finish in its own savepoint (a refused one rolls
/// back alone), then the claim, then, if it took fewer than asked, the next due time.
fn turn_tx(conn: &Connection, turn: &Turn, now: Timestamp) -> Result<TurnOutcome, StoreError> {
    let finished = turn
        .finished
        .iter()
        .map(|(lease, finish)| in_savepoint(conn, |c| finish_tx(c, *lease, finish, now)))
        .collect();
    let Some(request) = &turn.claim else {
        return Ok(TurnOutcome {
            finished,
            claimed: Ok(Vec::new()),
            next_due: None,
        });
    };
    let claimed = in_savepoint(conn, |c| claim_tx(c, request, now));
    let next_due = match &claimed {
        Ok(jobs) if (jobs.len() as u32) < request.limit => {
            next_due_tx(conn, &request.queues, &request.names)?
        }
        _ => None,
    };
    Ok(TurnOutcome {
        finished,
        claimed,
        next_due,
    })
}

/// Back to waiting for `until`, the attempt not counted.
fn put_back(
    conn: &Connection,
    id: i64,
    until: Timestamp,
    now: Timestamp,
) -> Result<(), StoreError> {
    let (state, run_at) = transition::put_back(until, now);
    conn.prepare_cached(
        "UPDATE otp_jobs SET state = ?, run_at = ?, attempt = MAX(attempt - 1, 0),
            lease_owner = NULL, lease_expires_at = NULL WHERE id = ?",
    )?
    .execute(params![state.as_str(), run_at.as_millis(), id])?;
    Ok(())
}

fn heartbeat_tx(
    conn: &Connection,
    leases: &[Lease],
    expires_at: Timestamp,
) -> Result<Vec<JobId>, StoreError> {
    let mut lost = Vec::new();
    let mut stmt = conn.prepare_cached(
        "UPDATE otp_jobs SET lease_expires_at = ? WHERE id = ? AND token = ? AND state = 'executing'",
    )?;
    for lease in leases {
        if stmt.execute(params![expires_at.as_millis(), lease.id.0, lease.token])? == 0 {
            lost.push(lease.id);
        }
    }
    Ok(lost)
}

fn state_of(conn: &Connection, id: JobId) -> Result<JobState, StoreError> {
    let state: Option<String> = conn
        .prepare_cached("SELECT state FROM otp_jobs WHERE id = ?")?
        .query_row([id.0], |r| r.get(0))
        .optional()?;
    let state = state.ok_or(StoreError::NotFound(id))?;
    JobState::from_column(&state, id.0)
}

fn complete_parked_tx(
    conn: &Connection,
    id: JobId,
    result: &str,
    now: Timestamp,
) -> Result<(), StoreError> {
    transition::check_action(Action::CompleteParked, id, state_of(conn, id)?)?;
    conn.prepare_cached(
        "UPDATE otp_jobs SET state = 'completed', result = ?, finished_at = ? WHERE id = ?",
    )?
    .execute(params![result, now.as_millis(), id.0])?;
    child_done(conn, id.0, true, now)
}

fn release_tx(conn: &Connection, id: JobId, now: Timestamp) -> Result<(), StoreError> {
    transition::check_action(Action::Release, id, state_of(conn, id)?)?;
    conn.prepare_cached("UPDATE otp_jobs SET state = 'available', run_at = ? WHERE id = ?")?
        .execute(params![now.as_millis(), id.0])?;
    Ok(())
}

fn cancel_tx(conn: &Connection, id: JobId, now: Timestamp) -> Result<(), StoreError> {
    transition::check_action(Action::Cancel, id, state_of(conn, id)?)?;
    conn.prepare_cached(
        "UPDATE otp_jobs SET state = 'cancelled', finished_at = ?, lease_owner = NULL,
            lease_expires_at = NULL WHERE id = ?",
    )?
    .execute(params![now.as_millis(), id.0])?;
    cancel_children(conn, id.0, now)?;
    child_done(conn, id.0, false, now)
}

fn retry_tx(conn: &Connection, id: JobId, now: Timestamp) -> Result<(), StoreError> {
    transition::check_action(Action::Retry, id, state_of(conn, id)?)?;
    let (parent, counted, attempt, max_attempts): (Option<i64>, bool, u32, u32) = conn
        .prepare_cached(
            "SELECT parent_id, counted, attempt, max_attempts FROM otp_jobs WHERE id = ?",
        )?
        .query_row([id.0], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?;
    if let Some(parent) = parent {
        let collector: Option<String> = conn
            .prepare_cached("SELECT state FROM otp_jobs WHERE id = ?")?
            .query_row([parent], |r| r.get(0))
            .optional()?;
        let collector = collector
            .map(|state| JobState::from_column(&state, parent))
            .transpose()?;
        if transition::retried_child_uncounts(counted, collector) {
            conn.prepare_cached(
                "UPDATE otp_jobs SET pending_children = pending_children + 1 WHERE id = ?",
            )?
            .execute([parent])?;
            conn.prepare_cached("UPDATE otp_jobs SET counted = 0 WHERE id = ?")?
                .execute([id.0])?;
        }
    }
    conn.prepare_cached(
        "UPDATE otp_jobs SET state = 'available', run_at = ?, finished_at = NULL,
            max_attempts = ? WHERE id = ?",
    )?
    .execute(params![
        now.as_millis(),
        transition::attempts_after_retry(attempt, max_attempts),
        id.0
    ])?;
    Ok(())
}

const RECORD_COLUMNS: &str = "id, queue, name, version, payload, state, priority, run_at,
    attempt, max_attempts, timeout_ms, resource_key, resource_capacity, idem_key, lease_owner,
    lease_expires_at, parent_id, pending_children, result, errors, inserted_at, finished_at";

fn record(row: &Row<'_>, now: Timestamp) -> rusqlite::Result<Result<JobRecord, StoreError>> {
    let id = JobId(row.get(0)?);
    let state: String = row.get(5)?;
    let run_at = Timestamp::from_millis(row.get(7)?);
    let state = match JobState::from_column(&state, id.0) {
        Ok(state) => transition::shown(state, run_at, now),
        Err(e) => return Ok(Err(e)),
    };
    let errors: String = row.get(19)?;
    let errors = match serde_json::from_str(&errors) {
        Ok(errors) => errors,
        Err(e) => return Ok(Err(StoreError::Corrupt(format!("errors of {id}: {e}")))),
    };
    let key: Option<String> = row.get(11)?;
    let capacity: Option<u32> = row.get(12)?;
    let timeout: Option<i64> = row.get(10)?;
    Ok(Ok(JobRecord {
        id,
        queue: row.get(1)?,
        name: row.get(2)?,
        version: row.get(3)?,
        payload: row.get(4)?,
        state,
        priority: row.get(6)?,
        run_at,
        attempt: row.get(8)?,
        max_attempts: row.get(9)?,
        timeout: timeout.map(|t| Duration::from_millis(t.max(0) as u64)),
        resource: key
            .zip(capacity)
            .map(|(key, capacity)| Resource { key, capacity }),
        idempotency_key: row.get(13)?,
        lease_owner: row.get(14)?,
        lease_expires_at: row.get::<_, Option<i64>>(15)?.map(Timestamp::from_millis),
        parent: row.get::<_, Option<i64>>(16)?.map(JobId),
        pending_children: row.get(17)?,
        result: row.get(18)?,
        errors,
        inserted_at: Timestamp::from_millis(row.get(20)?),
        finished_at: row.get::<_, Option<i64>>(21)?.map(Timestamp::from_millis),
    }))
}

fn list_tx(
    conn: &Connection,
    filter: &ListFilter,
    now: Timestamp,
) -> Result<Vec<JobRecord>, StoreError> {
    let mut clauses = Vec::new();
    let mut args: Vec<Value> = Vec::new();
    match filter.state {
        // A scheduled job that is due reads as available.
        Some(JobState::Available) => {
            clauses.push("(state = 'available' OR (state = 'scheduled' AND run_at <= ?))");
            args.push(Value::Integer(now.as_millis()));
        }
        Some(JobState::Scheduled) => {
            clauses.push("(state = 'scheduled' AND run_at > ?)");
            args.push(Value::Integer(now.as_millis()));
        }
        Some(state) => {
            clauses.push("state = ?");
            args.push(Value::Text(state.as_str().to_owned()));
        }
        None => {}
    }
    if let Some(name) = &filter.name {
        clauses.push("name = ?");
        args.push(Value::Text(name.clone()));
    }
    if let Some(queue) = &filter.queue {
        clauses.push("queue = ?");
        args.push(Value::Text(queue.clone()));
    }
    if let Some(after) = filter.after {
        clauses.push("id > ?");
        args.push(Value::Integer(after.0));
    }
    let filter_sql = if clauses.is_empty() {
        String::new()
    } else {
        format!("WHERE {}", clauses.join(" AND "))
    };
    args.push(Value::Integer(i64::from(filter.limit.unwrap_or(100))));
    let sql = format!("SELECT {RECORD_COLUMNS} FROM otp_jobs {filter_sql} ORDER BY id LIMIT ?");
    let mut stmt = conn.prepare_cached(&sql)?;
    let rows = stmt.query_map(params_from_iter(args.iter()), |r| record(r, now))?;
    let mut out = Vec::new();
    for row in rows {
        out.push(row??);
    }
    Ok(out)
}

fn get_tx(conn: &Connection, id: JobId, now: Timestamp) -> Result<Option<JobRecord>, StoreError> {
    let sql = format!("SELECT {RECORD_COLUMNS} FROM otp_jobs WHERE id = ?");
    conn.prepare_cached(&sql)?
        .query_row([id.0], |r| record(r, now))
        .optional()?
        .transpose()
}

fn counts_tx(conn: &Connection, now: Timestamp) -> Result<Vec<(JobState, u64)>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT CASE WHEN state = 'scheduled' AND run_at <= ? THEN 'available' ELSE state END AS s,
                COUNT(*) FROM otp_jobs GROUP BY s",
    )?;
    let rows = stmt.query_map([now.as_millis()], |r| {
        Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?))
    })?;
    let mut counts: Vec<(JobState, u64)> = JobState::ALL.iter().map(|s| (*s, 0)).collect();
    for row in rows {
        let (state, n) = row?;
        let state = JobState::parse(&state)
            .ok_or_else(|| StoreError::Corrupt(format!("a job has state `{state}`")))?;
        if let Some(entry) = counts.iter_mut().find(|(s, _)| *s == state) {
            entry.1 = n.max(0) as u64;
        }
    }
    Ok(counts)
}

/// Ends now the leases `owner` still holds (it died): the next claim takes those jobs.
fn end_leases_of(conn: &Connection, owner: &str, now: Timestamp) -> Result<Vec<JobId>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "UPDATE otp_jobs SET lease_expires_at = ?
         WHERE state = 'executing' AND lease_owner = ? AND lease_expires_at > ?
         RETURNING id",
    )?;
    let rows = stmt.query_map(params![now.as_millis(), owner, now.as_millis()], |r| {
        r.get(0).map(JobId)
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

fn prune_tx(conn: &Connection, prune: &Prune) -> Result<Pruned, StoreError> {
    let limit = i64::from(prune.limit);
    let cutoffs = [
        prune.completed_before,
        prune.cancelled_before,
        prune.discarded_before,
    ];
    let mut pruned = Pruned::default();
    if let Some(latest) = cutoffs.iter().flatten().max() {
        // A child while its collector waits, a collector while a child is unfinished: kept.
        pruned.jobs = conn
            .prepare_cached(&format!(
                "DELETE FROM otp_jobs WHERE id IN (
                    SELECT id FROM otp_jobs WHERE {FINAL} AND finished_at < ?4
                        AND finished_at < CASE state WHEN 'completed' THEN ?1
                            WHEN 'cancelled' THEN ?2 ELSE ?3 END
                        AND (parent_id IS NULL OR NOT EXISTS (
                            SELECT 1 FROM otp_jobs p WHERE p.id = otp_jobs.parent_id
                                AND p.state NOT IN ('completed', 'discarded', 'cancelled')))
                        AND NOT EXISTS (
                            SELECT 1 FROM otp_jobs c WHERE c.parent_id = otp_jobs.id
                                AND c.state NOT IN ('completed', 'discarded', 'cancelled'))
                    ORDER BY finished_at LIMIT ?5)"
            ))?
            .execute(params![
                cutoffs[0].map(Timestamp::as_millis),
                cutoffs[1].map(Timestamp::as_millis),
                cutoffs[2].map(Timestamp::as_millis),
                latest.as_millis(),
                limit,
            ])? as u64;
    }
    pruned.keys = conn
        .prepare_cached(
            "DELETE FROM otp_keys WHERE key IN (
                SELECT key FROM otp_keys WHERE expires_at <= ? LIMIT ?)",
        )?
        .execute(params![prune.keys_expired_by.as_millis(), limit])? as u64;
    Ok(pruned)
}

fn delete_tx(conn: &Connection, id: JobId) -> Result<(), StoreError> {
    let row: Option<(String, Option<i64>)> = conn
        .prepare_cached("SELECT state, parent_id FROM otp_jobs WHERE id = ?")?
        .query_row([id.0], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    let (state, parent) = row.ok_or(StoreError::NotFound(id))?;
    let state = JobState::from_column(&state, id.0)?;
    let collector_waits = match parent {
        Some(parent) => match state_of(conn, JobId(parent)) {
            Ok(parent_state) => !parent_state.is_final(),
            Err(StoreError::NotFound(_)) => false,
            Err(e) => return Err(e),
        },
        None => false,
    };
    let children_unfinished: bool = conn
        .prepare_cached(&format!(
            "SELECT EXISTS (SELECT 1 FROM otp_jobs WHERE parent_id = ? AND NOT {FINAL})"
        ))?
        .query_row([id.0], |r| r.get(0))?;
    transition::check_delete(id, state, collector_waits, children_unfinished)?;
    conn.prepare_cached("DELETE FROM otp_jobs WHERE id = ?")?
        .execute([id.0])?;
    Ok(())
}

fn declare_schedules_tx(
    conn: &Connection,
    schedules: &[ScheduleDecl],
    now: Timestamp,
) -> Result<Vec<ScheduleMark>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "INSERT INTO otp_schedules (name, spec, next_slot, declared_at, seen_at)
            VALUES (?1, ?2, ?3, ?4, ?4)
         ON CONFLICT (name) DO UPDATE SET spec = excluded.spec,
            next_slot = excluded.next_slot, seen_at = excluded.seen_at
         RETURNING last_slot, declared_at",
    )?;
    schedules
        .iter()
        .map(|d| {
            let next = d.next_slot.map(Timestamp::as_millis);
            let (last_slot, declared_at) = stmt
                .query_row(params![d.name, d.spec, next, now.as_millis()], |r| {
                    Ok((r.get::<_, Option<i64>>(0)?, r.get::<_, i64>(1)?))
                })?;
            Ok(ScheduleMark {
                name: d.name.clone(),
                last_slot: last_slot.map(Timestamp::from_millis),
                declared_at: Timestamp::from_millis(declared_at),
            })
        })
        .collect()
}

fn fire_schedule_tx(
    conn: &Connection,
    firing: &Firing,
    now: Timestamp,
) -> Result<Fired, StoreError> {
    let row: Option<(Option<i64>, Option<i64>)> = conn
        .prepare_cached("SELECT last_slot, last_job FROM otp_schedules WHERE name = ?")?
        .query_row([&firing.schedule], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    let Some((last_slot, last_job)) = row else {
        return Err(StoreError::Invalid(format!(
            "schedule `{}` was never declared",
            firing.schedule
        )));
    };
    let last_slot = last_slot.map(Timestamp::from_millis);
    let previous = match last_job {
        Some(id) if !firing.runs.is_empty() => match state_of(conn, JobId(id)) {
            Ok(state) => Some(state),
            Err(StoreError::NotFound(_)) => None,
            Err(e) => return Err(e),
        },
        _ => None,
    };
    let (cancel_previous, insert, held_back) =
        match schedule::firing_step(firing, last_slot, previous) {
            FiringStep::Moved { last_slot } => return Ok(Fired::Moved { last_slot }),
            FiringStep::Fire {
                cancel_previous,
                insert,
                held_back,
            } => (cancel_previous, insert, held_back),
        };
    if let (true, Some(id)) = (cancel_previous, last_job) {
        cancel_tx(conn, JobId(id), now)?;
    }
    let mut jobs = Vec::with_capacity(firing.runs.len());
    if insert {
        for (_, job) in &firing.runs {
            jobs.push(insert_job(conn, job, now, None, None)?.id);
        }
    }
    conn.prepare_cached(
        "UPDATE otp_schedules SET last_slot = ?, last_job = COALESCE(?, last_job),
            fired = fired + ?, missed = missed + ?, next_slot = ? WHERE name = ?",
    )?
    .execute(params![
        firing.through.as_millis(),
        jobs.last().map(|id| id.0),
        jobs.len() as i64,
        i64::try_from(firing.missed + held_back).unwrap_or(i64::MAX),
        firing.next_slot.map(Timestamp::as_millis),
        firing.schedule,
    ])?;
    Ok(Fired::Done { jobs, held_back })
}

fn schedules_tx(conn: &Connection) -> Result<Vec<ScheduleRecord>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT name, spec, declared_at, seen_at, last_slot, last_job, fired, missed, next_slot
         FROM otp_schedules ORDER BY name",
    )?;
    let rows = stmt.query_map([], |r| {
        Ok(ScheduleRecord {
            name: r.get(0)?,
            spec: r.get(1)?,
            declared_at: Timestamp::from_millis(r.get(2)?),
            seen_at: Timestamp::from_millis(r.get(3)?),
            last_slot: r.get::<_, Option<i64>>(4)?.map(Timestamp::from_millis),
            last_job: r.get::<_, Option<i64>>(5)?.map(JobId),
            fired: r.get::<_, i64>(6)?.max(0) as u64,
            missed: r.get::<_, i64>(7)?.max(0) as u64,
            next_slot: r.get::<_, Option<i64>>(8)?.map(Timestamp::from_millis),
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// The most due jobs [`unhandled_tx`] looks at.
const UNHANDLED_SCAN: i64 = 10_000;

fn unhandled_tx(
    conn: &Connection,
    queues: &[String],
    names: &[String],
    now: Timestamp,
) -> Result<Vec<(String, u64)>, StoreError> {
    if queues.is_empty() {
        return Ok(Vec::new());
    }
    let others = if names.is_empty() {
        String::new()
    } else {
        format!("AND name NOT IN ({})", placeholders(names.len()))
    };
    let sql = format!(
        "SELECT name, COUNT(*) FROM (
            SELECT name FROM otp_jobs WHERE {DUE} AND run_at <= ? AND queue IN ({q}) {others}
                LIMIT ?)
         GROUP BY name ORDER BY name",
        q = placeholders(queues.len()),
    );
    let mut args: Vec<Value> = vec![Value::Integer(now.as_millis())];
    args.extend(queues.iter().cloned().map(Value::Text));
    args.extend(names.iter().cloned().map(Value::Text));
    args.push(Value::Integer(UNHANDLED_SCAN));
    let mut stmt = conn.prepare_cached(&sql)?;
    let rows = stmt.query_map(params_from_iter(args.iter()), |r| {
        Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?.max(0) as u64))
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

fn next_due_tx(
    conn: &Connection,
    queues: &[String],
    names: &[String],
) -> Result<Option<Timestamp>, StoreError> {
    if queues.is_empty() || names.is_empty() {
        return Ok(None);
    }
    let filter = format!(
        "queue IN ({}) AND name IN ({})",
        placeholders(queues.len()),
        placeholders(names.len())
    );
    let sql = format!(
        "SELECT MIN(t) FROM (
            SELECT MIN(run_at) AS t FROM otp_jobs WHERE {DUE} AND {filter}
            UNION ALL
            SELECT MIN(lease_expires_at) AS t FROM otp_jobs WHERE state = 'executing' AND {filter})"
    );
    let mut args: Vec<Value> = Vec::new();
    for _ in 0..2 {
        args.extend(queues.iter().cloned().map(Value::Text));
        args.extend(names.iter().cloned().map(Value::Text));
    }
    let t: Option<i64> = conn
        .prepare_cached(&sql)?
        .query_row(params_from_iter(args.iter()), |r| r.get(0))?;
    Ok(t.map(Timestamp::from_millis))
}

impl Store for SqliteStore {
    fn enqueue(
        &self,
        jobs: Vec<NewJob>,
        now: Timestamp,
    ) -> BoxFuture<'_, Result<Vec<Enqueued>, StoreError>> {
        self.run(move |c| enqueue_tx(c, &jobs, now)).boxed()
    }

    fn enqueue_group(
        &self,
        group: NewGroup,
        now: Timestamp,
    ) -> BoxFuture<'_, Result<GroupIds, StoreError>> {
        self.run(move |c| enqueue_group_tx(c, &group, now)).boxed()
    }

    fn claim(
        &self,
        request: ClaimRequest,
        now: Timestamp,
    ) -> BoxFuture<'_, Result<Vec<ClaimedJob>, StoreError>> {
        self.run(move |c| claim_tx(c, &request, now)).boxed()
    }

    fn heartbeat(
        &self,
        leases: Vec<Lease>,
        expires_at: Timestamp,
        _now: Timestamp,
    ) -> BoxFuture<'_, Result<Vec<JobId>, StoreError>> {
        self.run(move |c| heartbeat_tx(c, &leases, expires_at))
            .boxed()
    }

    fn finish(
        &self,
        lease: Lease,
        finish: Finish,
        now: Timestamp,
    ) -> BoxFuture<'_, Result<(), StoreError>> {
        self.run(move |c| finish_tx(c, lease, &finish, now)).boxed()
    }

    fn finish_and_claim(
        &self,
        turn: Turn,
        now: Timestamp,
    ) -> BoxFuture<'_, Result<TurnOutcome, StoreError>> {
        self.run(move |c| turn_tx(c, &turn, now)).boxed()
    }

    fn give_back(&self, lease: Lease, now: Timestamp) -> BoxFuture<'_, Result<(), StoreError>> {
        self.run(move |c| {
            held(c, lease)?;
            put_back(c, lease.id.0, now, now)
        })
        .boxed()
    }

    fn complete_parked(
        &self,
        id: JobId,
        result: String,
        now: Timestamp,
    ) -> BoxFuture<'_, Result<(), StoreError>> {
        self.run(move |c| complete_parked_tx(c, id, &result, now))
            .boxed()
    }

    fn release(&self, id: JobId, now: Timestamp) -> BoxFuture<'_, Result<(), StoreError>> {
        self.run(move |c| release_tx(c, id, now)).boxed()
    }

    fn cancel(&self, id: JobId, now: Timestamp) -> BoxFuture<'_, Result<(), StoreError>> {
        self.run(move |c| cancel_tx(c, id, now)).boxed()
    }

    fn retry(&self, id: JobId, now: Timestamp) -> BoxFuture<'_, Result<(), StoreError>> {
        self.run(move |c| retry_tx(c, id, now)).boxed()
    }

    fn get(
        &self,
        id: JobId,
        now: Timestamp,
    ) -> BoxFuture<'_, Result<Option<JobRecord>, StoreError>> {
        self.run(move |c| get_tx(c, id, now)).boxed()
    }

    fn list(
        &self,
        filter: ListFilter,
        now: Timestamp,
    ) -> BoxFuture<'_, Result<Vec<JobRecord>, StoreError>> {
        self.run(move |c| list_tx(c, &filter, now)).boxed()
    }

    fn counts(&self, now: Timestamp) -> BoxFuture<'_, Result<Vec<(JobState, u64)>, StoreError>> {
        self.run(move |c| counts_tx(c, now)).boxed()
    }

    fn next_due(
        &self,
        queues: Vec<String>,
        names: Vec<String>,
    ) -> BoxFuture<'_, Result<Option<Timestamp>, StoreError>> {
        self.run(move |c| next_due_tx(c, &queues, &names)).boxed()
    }

    fn unhandled(
        &self,
        queues: Vec<String>,
        names: Vec<String>,
        now: Timestamp,
    ) -> BoxFuture<'_, Result<Vec<(String, u64)>, StoreError>> {
        self.run(move |c| unhandled_tx(c, &queues, &names, now))
            .boxed()
    }

    fn prune(&self, prune: Prune, _now: Timestamp) -> BoxFuture<'_, Result<Pruned, StoreError>> {
        self.run(move |c| prune_tx(c, &prune)).boxed()
    }

    fn delete(&self, id: JobId, _now: Timestamp) -> BoxFuture<'_, Result<(), StoreError>> {
        self.run(move |c| delete_tx(c, id)).boxed()
    }

    fn declare_schedules(
        &self,
        schedules: Vec<ScheduleDecl>,
        now: Timestamp,
    ) -> BoxFuture<'_, Result<Vec<ScheduleMark>, StoreError>> {
        self.run(move |c| declare_schedules_tx(c, &schedules, now))
            .boxed()
    }

    fn fire_schedule(
        &self,
        firing: Firing,
        now: Timestamp,
    ) -> BoxFuture<'_, Result<Fired, StoreError>> {
        self.run(move |c| fire_schedule_tx(c, &firing, now)).boxed()
    }

    fn schedules(&self) -> BoxFuture<'_, Result<Vec<ScheduleRecord>, StoreError>> {
        self.run(schedules_tx).boxed()
    }

    /// A file store: a locked file per runner beside the database (see `owner_files`). In
    /// memory: none (one process, nothing to rescue).
    fn hold_liveness(&self, owner: String) -> BoxFuture<'_, Result<Option<Liveness>, StoreError>> {
        let Some(dir) = self.owners.clone() else {
            return Box::pin(async { Ok(None) });
        };
        async move {
            let held = tokio::task::spawn_blocking(move || owner_files::hold(&dir, &owner))
                .await
                .map_err(|e| StoreError::Database(format!("holding a sign of life: {e}")))??;
            Ok(Some(Liveness::new(held)))
        }
        .boxed()
    }

    fn rescue(&self, now: Timestamp) -> BoxFuture<'_, Result<Vec<JobId>, StoreError>> {
        let Some(dir) = self.owners.clone() else {
            return Box::pin(async { Ok(Vec::new()) });
        };
        async move {
            let dead = tokio::task::spawn_blocking(move || owner_files::dead(&dir))
                .await
                .map_err(|e| StoreError::Database(format!("looking for dead runners: {e}")))??;
            let mut rescued = Vec::new();
            // Each file stays locked (and is removed) once its owner's leases have ended.
            for (owner, _file) in dead {
                if owner.is_empty() {
                    continue;
                }
                rescued.extend(self.run(move |c| end_leases_of(c, &owner, now)).await?);
            }
            Ok(rescued)
        }
        .boxed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type Answer = oneshot::Receiver<Result<(), StoreError>>;

    /// A command that inserts `value`, then fails as `fail` says (after writing).
    fn insert_then(value: i64, fail: Option<&'static str>) -> (Command, Answer) {
        let (tx, rx) = oneshot::channel();
        let op = move |c: &Connection| -> Result<(), StoreError> {
            c.execute("INSERT INTO t (v) VALUES (?)", [value])?;
            match fail {
                Some("panic") => panic!("an operation that panics"),
                Some(_) => Err(StoreError::Invalid("fails after writing".into())),
                None => Ok(()),
            }
        };
        (command(op, tx), rx)
    }

    fn answer(mut rx: Answer) -> Result<(), StoreError> {
        rx.try_recv().expect("answered")
    }

    fn table() -> Connection {
        let conn = Connection::open_in_memory().expect("memory");
        conn.execute_batch("CREATE TABLE t (v INTEGER)")
            .expect("table");
        conn
    }

    fn values(conn: &Connection) -> Vec<i64> {
        let mut stmt = conn.prepare("SELECT v FROM t ORDER BY v").expect("select");
        let rows = stmt.query_map([], |r| r.get(0)).expect("rows");
        rows.collect::<Result<_, _>>().expect("values")
    }

    #[test]
    fn a_lone_operation_that_fails_after_writing_leaves_nothing_and_hears_its_error() {
        for how in ["error", "panic"] {
            let conn = table();
            let stats = Counters::default();
            let (failing, failed) = insert_then(1, Some(how));
            run_batch(&conn, vec![failing], &stats);
            assert!(answer(failed).is_err(), "{how}");
            assert_eq!(values(&conn), Vec::<i64>::new(), "{how}");
            assert_eq!(stats.commits.load(Ordering::Relaxed), 0, "{how}");
            // The connection is usable: the next lone operation commits.
            let (next, answered) = insert_then(2, None);
            run_batch(&conn, vec![next], &stats);
            assert!(answer(answered).is_ok(), "{how}");
            assert_eq!(values(&conn), vec![2], "{how}");
            assert_eq!(stats.commits.load(Ordering::Relaxed), 1, "{how}");
        }
    }

    #[test]
    fn in_a_shared_transaction_a_failing_operation_rolls_back_alone() {
        let conn = table();
        let stats = Counters::default();
        let (batch, answers): (Vec<_>, Vec<_>) = [
            insert_then(1, None),
            insert_then(2, Some("error")),
            insert_then(3, Some("panic")),
            insert_then(4, None),
        ]
        .into_iter()
        .unzip();
        run_batch(&conn, batch, &stats);
        let answers: Vec<bool> = answers.into_iter().map(|a| answer(a).is_ok()).collect();
        assert_eq!(answers, vec![true, false, false, true]);
        assert_eq!(values(&conn), vec![1, 4]);
        assert_eq!(stats.commits.load(Ordering::Relaxed), 1);
        assert_eq!(stats.operations.load(Ordering::Relaxed), 4);
    }
}
