//! The shared store: PostgreSQL through `tokio-postgres`, for several processes or machines
//! working one queue. Same [`Store`] contract, same state machine, same test suite as the
//! embedded [`SqliteStore`](crate::jobs::SqliteStore).
//!
//! # How it shares safely
//! - Every [`Store`] method is one transaction (`READ COMMITTED`) on a pooled connection
//!   (`deadpool-postgres`). Rows a transaction changes are locked first (`FOR UPDATE`), so a
//!   finish, a reclaim and a cancel of the same job are serialized.
//! - A claim scans due jobs with `FOR UPDATE SKIP LOCKED`: runners in other processes never
//!   wait on each other's candidates and never claim the same job twice.
//! - A resource key is counted under a transaction-scoped advisory lock on the key
//!   (`pg_try_advisory_xact_lock`), so two claims in different processes cannot both see a
//!   free place and overrun the capacity. A claim that finds the key locked leaves its job for
//!   the next look (never blocks, never deadlocks).
//! - A deadlock or serialization failure rolls the transaction back; it is retried (up to
//!   [`CONFLICT_RETRIES`] times) before [`StoreError::Conflict`] is returned.
//! - Durability is the server's: a commit returns after the WAL flush. The store refuses to
//!   open on a server with `fsync` or `synchronous_commit` off ([`StoreError::Settings`]).
//!   Concurrent commits share WAL flushes (PostgreSQL's own group commit).
//!
//! # Fewer round trips
//! - Enqueues without idempotency keys that arrive together share one multi-row `INSERT`
//!   (one round trip, one commit): while [`COMBINED_IN_FLIGHT`] such inserts are in flight,
//!   new enqueues wait and ride the next one. Each caller still gets its own ids, and a
//!   combined insert that fails is run again caller by caller, so one bad enqueue fails alone.
//! - A runner's turn ([`Store::finish_and_claim`]) records its plain completions in one
//!   `UPDATE … FROM unnest(…)`, fenced per row, and claims in the same transaction.
//!
//! # Wake-ups
//! A transaction that makes a job claimable (an enqueue, a retry, a collector whose children
//! are done, …) sends `NOTIFY` on the store's channel, delivered at commit. Each store keeps
//! one listening connection (reconnecting with backoff) and turns notifications into
//! [`Store::wakeups`], so a runner in another process starts the job at once instead of at
//! its next poll.
//!
//! # Layout
//! One table, `otp_jobs` (plus `otp_jobs_meta` for the schema version), in the schema given by
//! [`PostgresOptions::schema`] or the connection's default. Times are the callers' UTC
//! milliseconds, as everywhere in this crate: the store never reads the server's clock, so the
//! machines sharing a queue should keep their clocks in sync (NTP).

use std::time::Duration;

use deadpool_postgres::{
    Manager, ManagerConfig, Pool, PoolError, RecyclingMethod, Runtime, TimeoutType,
};
use futures::future::BoxFuture;
use futures::{FutureExt, StreamExt};
use tokio::sync::{mpsc, oneshot, watch, Semaphore};
use tokio::task::JoinHandle;
use tokio_postgres::error::SqlState;
use tokio_postgres::tls::{MakeTlsConnect, TlsConnect};
use tokio_postgres::types::ToSql;
use tokio_postgres::{AsyncMessage, NoTls, Row, Socket};

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

/// How often an operation that hit a deadlock or serialization failure is run again before
/// [`StoreError::Conflict`] is returned.
pub const CONFLICT_RETRIES: u32 = 5;

/// How to connect a [`PostgresStore`].
///
/// ```no_run
/// use ractor_otp::jobs::{Jobs, PostgresStore};
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let store = PostgresStore::options()
///     .schema("billing_jobs")
///     .max_connections(16)
///     .connect("postgres://jobs@db.internal/app")
///     .await?;
/// let jobs = Jobs::new(store);
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct PostgresOptions {
    schema: Option<String>,
    max_connections: usize,
    wait_timeout: Duration,
    connect_timeout: Duration,
}

impl Default for PostgresOptions {
    fn default() -> Self {
        PostgresOptions {
            schema: None,
            max_connections: 10,
            wait_timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(10),
        }
    }
}

impl PostgresOptions {
    /// Keep the queue's tables in this schema (created if missing): one database can hold
    /// several independent queues. A lowercase SQL identifier (`[a-z_][a-z0-9_]*`, at most
    /// 40 characters). Default: the connection's `search_path`, usually `public`.
    pub fn schema(mut self, schema: impl Into<String>) -> Self {
        self.schema = Some(schema.into());
        self
    }

    /// At most this many pooled connections (default 10), plus one that listens for
    /// wake-ups. Operations beyond it wait for a free connection.
    pub fn max_connections(mut self, n: usize) -> Self {
        self.max_connections = n.max(1);
        self
    }

    /// How long an operation waits for a pooled connection before failing (default 30 s).
    pub fn wait_timeout(mut self, timeout: Duration) -> Self {
        self.wait_timeout = timeout;
        self
    }

    /// How long opening one connection may take, from the TCP connect through the server's
    /// answer to the startup and authentication (default 10 s): a server that accepts the
    /// connection and never answers fails [`connect`](Self::connect) with
    /// [`StoreError::Connect`] instead of hanging. A connection that goes silent later is
    /// found by TCP keepalives, which `tokio-postgres` turns on with a 2 h idle time: set a
    /// shorter one in the URL (`postgres://…?keepalives_idle=30`) where a dead peer must be
    /// noticed sooner.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Connects without TLS (a local server or a private network), creates the tables if
    /// they are missing, and checks the server's durability settings.
    pub async fn connect(self, url: &str) -> Result<PostgresStore, StoreError> {
        self.connect_with_tls(url, NoTls).await
    }

    /// Connects through `tls` (e.g. `postgres-native-tls` or `tokio-postgres-rustls`'s
    /// connector), creates the tables if they are missing, and checks the server's
    /// durability settings.
    pub async fn connect_with_tls<T>(self, url: &str, tls: T) -> Result<PostgresStore, StoreError>
    where
        T: MakeTlsConnect<Socket> + Clone + Sync + Send + 'static,
        T::Stream: Sync + Send,
        T::TlsConnect: Sync + Send,
        <T::TlsConnect as TlsConnect<Socket>>::Future: Send,
    {
        let mut config: tokio_postgres::Config = url
            .parse()
            .map_err(|e| StoreError::Invalid(format!("not a PostgreSQL connection string: {e}")))?;
        // Every statement is planned once per connection (its prepared statement is cached):
        // a custom plan per execution made the planner probe the ends of the `run_at` and
        // `lease_expires_at` indexes for each claim, and with a backlog those ends are full of
        // dead row versions (a queue updates every row two or three times), so planning a
        // claim took 20-40 ms. The statements are simple index scans; a generic plan suits.
        let mut options = "-c plan_cache_mode=force_generic_plan".to_owned();
        let channel = match &self.schema {
            Some(schema) => {
                check_identifier(schema)?;
                options.push_str(&format!(" -c search_path={schema}"));
                format!("otp_jobs.{schema}")
            }
            None => "otp_jobs".to_owned(),
        };
        if let Some(given) = config.get_options() {
            options = format!("{given} {options}");
        }
        config.options(options);
        // The socket's own timeout; the pool's create timeout (below) bounds the whole opening
        // (startup, authentication), and the listener bounds its own.
        config.connect_timeout(self.connect_timeout);
        let manager = Manager::from_config(
            config.clone(),
            tls.clone(),
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(self.max_connections)
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(self.wait_timeout))
            .create_timeout(Some(self.connect_timeout))
            .build()
            .map_err(|e| StoreError::Invalid(format!("cannot build the connection pool: {e}")))?;
        let (wake, _) = watch::channel(0u64);
        let (outgoing, outgoing_rx) = watch::channel(0u64);
        let (combiner, combined) = mpsc::unbounded_channel();
        let store = PostgresStore {
            inner: std::sync::Arc::new(Inner {
                pool,
                key_prefix: self.schema.clone().unwrap_or_default(),
                channel: channel.clone(),
                wake: wake.clone(),
                outgoing,
                listener: std::sync::Mutex::new(None),
                combiner,
            }),
        };
        // Ends when the store's last handle drops its sender.
        tokio::spawn(combine_enqueues(
            std::sync::Arc::downgrade(&store.inner),
            combined,
        ));
        store.prepare(self.schema.as_deref()).await?;
        let listener = tokio::spawn(listen(config, tls, channel, wake, outgoing_rx));
        if let Ok(mut slot) = store.inner.listener.lock() {
            *slot = Some(listener);
        }
        Ok(store)
    }
}

fn check_identifier(name: &str) -> Result<(), StoreError> {
    let mut chars = name.chars();
    let first_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c == '_');
    let rest_ok = chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if first_ok && rest_ok && name.len() <= 40 {
        Ok(())
    } else {
        Err(StoreError::Invalid(format!(
            "schema `{name}` is not a lowercase SQL identifier ([a-z_][a-z0-9_]*, at most 40 characters)"
        )))
    }
}

/// The PostgreSQL store. Cheap to clone: clones share the connection pool and the listener.
///
/// Connect with [`PostgresStore::connect`] or [`PostgresStore::options`]; hand it to
/// [`Jobs::new`](crate::jobs::Jobs::new) in every process that shares the queue.
#[derive(Clone)]
pub struct PostgresStore {
    inner: std::sync::Arc<Inner>,
}

struct Inner {
    pool: Pool,
    /// Prefixed to resource keys in advisory locks, so queues in other schemas do not
    /// contend.
    key_prefix: String,
    channel: String,
    /// Bumped by notifications from other processes (and this one's).
    wake: watch::Sender<u64>,
    /// Bumped after a commit that made something claimable: the listener sends one `NOTIFY`
    /// for any number of bumps since its last.
    outgoing: watch::Sender<u64>,
    listener: std::sync::Mutex<Option<JoinHandle<()>>>,
    /// Enqueues waiting to share an `INSERT` ([`combine_enqueues`]).
    combiner: mpsc::UnboundedSender<Combined>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        if let Ok(mut slot) = self.listener.lock() {
            if let Some(listener) = slot.take() {
                listener.abort();
            }
        }
    }
}

impl std::fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let status = self.inner.pool.status();
        f.debug_struct("PostgresStore")
            .field("channel", &self.inner.channel)
            .field("connections", &status.size)
            .field("max_connections", &status.max_size)
            .finish()
    }
}

impl PostgresStore {
    /// Connects to `url` (e.g. `postgres://user:password@host:5432/db`) with the default
    /// options: no TLS, 10 connections, the connection's default schema.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        PostgresOptions::default().connect(url).await
    }

    /// Options for [`PostgresOptions::connect`].
    pub fn options() -> PostgresOptions {
        PostgresOptions::default()
    }

    /// Creates the tables (once, under an advisory lock, so processes starting together do
    /// not race) and checks the server's durability settings.
    async fn prepare(&self, schema: Option<&str>) -> Result<(), StoreError> {
        let mut client = self.client().await?;
        for setting in ["fsync", "synchronous_commit"] {
            let row = client.query_one(&format!("SHOW {setting}"), &[]).await?;
            let value: String = row.try_get(0)?;
            if value == "off" {
                return Err(StoreError::Settings(format!(
                    "the server runs with {setting}=off: an acknowledged job could be lost in a crash; turn it on"
                )));
            }
        }
        let tx = client.transaction().await?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&SCHEMA_LOCK])
            .await?;
        if let Some(schema) = schema {
            tx.batch_execute(&format!("CREATE SCHEMA IF NOT EXISTS {schema}"))
                .await?;
        }
        tx.batch_execute("CREATE TABLE IF NOT EXISTS otp_jobs_meta (version BIGINT NOT NULL)")
            .await?;
        let version: Option<i64> = tx
            .query_opt("SELECT MAX(version) FROM otp_jobs_meta", &[])
            .await?
            .and_then(|row| row.try_get(0).ok().flatten());
        match version {
            Some(v) if v > SCHEMA_VERSION => {
                return Err(StoreError::Settings(format!(
                    "the store's schema is version {v}, newer than this library's {SCHEMA_VERSION}; upgrade ractor-otp"
                )));
            }
            Some(v) if v < 2 => {
                // Version 2 moved idempotency keys out of job rows: the keys come along once.
                tx.batch_execute(SCHEMA_2).await?;
                tx.batch_execute(
                    "INSERT INTO otp_keys (key, job_id, expires_at)
                        SELECT idem_key, id, NULL FROM otp_jobs WHERE idem_key IS NOT NULL
                        ON CONFLICT DO NOTHING;
                     DROP INDEX IF EXISTS otp_jobs_idem;",
                )
                .await?;
                tx.execute("UPDATE otp_jobs_meta SET version = $1", &[&SCHEMA_VERSION])
                    .await?;
            }
            Some(_) => {}
            None => {
                tx.batch_execute(SCHEMA).await?;
                tx.batch_execute(SCHEMA_2).await?;
                tx.execute(
                    "INSERT INTO otp_jobs_meta (version) VALUES ($1)",
                    &[&SCHEMA_VERSION],
                )
                .await?;
            }
        }
        // Added after version 1 shipped; tables of their own, so no version change.
        tx.batch_execute(RUNNERS_TABLE).await?;
        tx.batch_execute(SCHEDULES_TABLE).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Tells the other processes (through the listener's connection) that something became
    /// claimable. Not sent from the transaction itself: a `NOTIFY` holds a database-wide lock
    /// through its commit, which would make concurrent commits queue behind each other
    /// instead of sharing WAL flushes.
    fn notify_others(&self) {
        self.inner.outgoing.send_modify(|n| *n = n.wrapping_add(1));
    }

    async fn client(&self) -> Result<deadpool_postgres::Object, StoreError> {
        self.inner.pool.get().await.map_err(|e| match e {
            PoolError::Backend(e) => StoreError::Connect(describe(&e)),
            PoolError::Closed => StoreError::Closed,
            PoolError::Timeout(TimeoutType::Create) => StoreError::Connect(
                "the server did not finish opening a connection within the connect timeout \
                 (it accepted and never answered, or is overloaded); see \
                 `PostgresOptions::connect_timeout`"
                    .into(),
            ),
            PoolError::Timeout(TimeoutType::Wait) => StoreError::Connect(
                "every pooled connection stayed busy for the wait timeout; see \
                 `PostgresOptions::max_connections` and `wait_timeout`"
                    .into(),
            ),
            other => StoreError::Connect(other.to_string()),
        })
    }
}

/// Runs `$body` (which uses `$tx: &mut Tx`) on a pooled connection and runs it again after a
/// deadlock or serialization failure. `transaction`: inside `BEGIN … COMMIT`, committed on
/// `Ok`, rolled back on `Err`. `autocommit`: each statement its own transaction, two round
/// trips fewer: only for operations that are one writing statement, or only read.
macro_rules! operation {
    ($store:expr, $mode:ident, |$tx:ident| $body:expr) => {{
        let store: &PostgresStore = $store;
        let mut conflicts = 0;
        loop {
            #[allow(unused_mut)] // only a transaction borrows the connection mutably
            let mut client = store.client().await?;
            let outcome = async {
                #[allow(unused_mut)] // read-only operations take `&tx`
                let mut $tx = Tx {
                    conn: operation!(@conn $mode, client),
                    wake: false,
                    key_prefix: &store.inner.key_prefix,
                };
                // Rolled back here on an error, before the connection goes back to the pool
                // (not left to the transaction's drop, which only queues the rollback).
                let value: Result<_, StoreError> = async { Ok($body) }.await;
                match value {
                    Ok(value) => {
                        if $tx.commit().await? {
                            store.notify_others();
                        }
                        Ok(value)
                    }
                    Err(e) => {
                        $tx.rollback().await;
                        Err(e)
                    }
                }
            }
            .await;
            match outcome {
                Err(StoreError::Conflict(e)) if conflicts < CONFLICT_RETRIES => {
                    conflicts += 1;
                    tracing::debug!(error = %e, conflicts, "job store transaction conflicted; running it again");
                }
                outcome => break outcome,
            }
        }
    }};
    (@conn transaction, $client:ident) => {
        Conn::Tx($client.transaction().await?)
    };
    (@conn autocommit, $client:ident) => {
        Conn::Auto(&$client)
    };
}

const SCHEMA_VERSION: i64 = 2;

/// The advisory lock key (one `bigint`) taken while creating the tables.
const SCHEMA_LOCK: i64 = 0x6f74_705f_6a6f_6273; // "otp_jobs"

/// The advisory lock class (the first `int4` of the two-key form) of resource keys.
const RESOURCE_LOCK_CLASS: i32 = 0x6f74_7072; // "otpr"
/// The advisory lock class of runners' signs of life (a session lock per runner).
const OWNER_LOCK_CLASS: i32 = 0x6f74_706f; // "otpo"

/// Takes runner `key`'s sign-of-life lock for this session, if no session holds it.
async fn try_owner_lock(
    client: &deadpool_postgres::ClientWrapper,
    key: &str,
) -> Result<bool, StoreError> {
    Ok(client
        .query_one(
            "SELECT pg_try_advisory_lock($1, hashtext($2))",
            &[&OWNER_LOCK_CLASS, &key],
        )
        .await?
        .try_get(0)?)
}

/// The runners that hold a sign of life (a session advisory lock on a connection of their
/// own): a row is written once the lock is held, and removed by the rescue that finds the
/// lock free.
const RUNNERS_TABLE: &str = "CREATE TABLE IF NOT EXISTS otp_runners (owner TEXT PRIMARY KEY)";

/// What version 2 added: idempotency keys apart from the jobs (pruning a job keeps its key),
/// each with the job that holds it and when it expires (never, without `unique_for`); and the
/// index the pruner scans.
const SCHEMA_2: &str = "
    CREATE TABLE IF NOT EXISTS otp_keys (
        key TEXT PRIMARY KEY,
        job_id BIGINT NOT NULL,
        expires_at BIGINT
    );
    CREATE INDEX IF NOT EXISTS otp_keys_expiry ON otp_keys(expires_at)
        WHERE expires_at IS NOT NULL;
    CREATE INDEX IF NOT EXISTS otp_jobs_finished ON otp_jobs(finished_at)
        WHERE finished_at IS NOT NULL;";

/// Schedules' slot markers and counters.
const SCHEDULES_TABLE: &str = "CREATE TABLE IF NOT EXISTS otp_schedules (
    name TEXT PRIMARY KEY,
    spec TEXT NOT NULL,
    declared_at BIGINT NOT NULL,
    seen_at BIGINT NOT NULL,
    last_slot BIGINT,
    next_slot BIGINT,
    last_job BIGINT,
    fired BIGINT NOT NULL DEFAULT 0,
    missed BIGINT NOT NULL DEFAULT 0
)";

const SCHEMA: &str = "
    CREATE TABLE IF NOT EXISTS otp_jobs (
        id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
        queue TEXT NOT NULL,
        name TEXT NOT NULL,
        version BIGINT NOT NULL,
        payload TEXT NOT NULL,
        state TEXT NOT NULL,
        priority BIGINT NOT NULL,
        run_at BIGINT NOT NULL,
        attempt BIGINT NOT NULL DEFAULT 0,
        max_attempts BIGINT NOT NULL,
        backoff_base_ms BIGINT NOT NULL,
        backoff_factor DOUBLE PRECISION NOT NULL,
        backoff_max_ms BIGINT NOT NULL,
        timeout_ms BIGINT,
        resource_key TEXT,
        resource_capacity BIGINT,
        idem_key TEXT,
        token BIGINT NOT NULL DEFAULT 0,
        lease_owner TEXT,
        lease_expires_at BIGINT,
        parent_id BIGINT,
        counted BOOLEAN NOT NULL DEFAULT FALSE,
        pending_children BIGINT NOT NULL DEFAULT 0,
        group_policy TEXT,
        result TEXT,
        error TEXT,
        errors JSONB NOT NULL DEFAULT '[]',
        inserted_at BIGINT NOT NULL,
        finished_at BIGINT
    );
    CREATE INDEX IF NOT EXISTS otp_jobs_ready ON otp_jobs(queue, priority DESC, run_at, id)
        WHERE state IN ('scheduled','available','retryable');
    CREATE INDEX IF NOT EXISTS otp_jobs_next ON otp_jobs(run_at)
        WHERE state IN ('scheduled','available','retryable');
    CREATE INDEX IF NOT EXISTS otp_jobs_leased ON otp_jobs(lease_expires_at)
        WHERE state = 'executing';
    CREATE INDEX IF NOT EXISTS otp_jobs_resource ON otp_jobs(resource_key, state)
        WHERE resource_key IS NOT NULL;
    CREATE INDEX IF NOT EXISTS otp_jobs_parent ON otp_jobs(parent_id)
        WHERE parent_id IS NOT NULL;";

/// What PostgreSQL (or the connection to it) said, once, without our own prefixes: the
/// server's severity, code, message and detail, or the client's error and its cause.
fn describe(e: &tokio_postgres::Error) -> String {
    let Some(db) = e.as_db_error() else {
        let cause = std::error::Error::source(e)
            .map(|s| format!(": {s}"))
            .unwrap_or_default();
        return format!("PostgreSQL: {e}{cause}");
    };
    format!(
        "PostgreSQL {} {}: {}{}",
        db.severity(),
        db.code().code(),
        db.message(),
        db.detail().map(|d| format!(" ({d})")).unwrap_or_default()
    )
}

impl From<tokio_postgres::Error> for StoreError {
    fn from(e: tokio_postgres::Error) -> Self {
        let conflict = e.as_db_error().is_some_and(|db| {
            let code = db.code();
            *code == SqlState::T_R_DEADLOCK_DETECTED || *code == SqlState::T_R_SERIALIZATION_FAILURE
        });
        if conflict {
            StoreError::Conflict(describe(&e))
        } else {
            StoreError::Database(describe(&e))
        }
    }
}

/// Keeps a connection listening on the store's channel: bumps `wake` at every notification,
/// and after every (re)connect (notifications may have been missed); sends a `NOTIFY` when
/// `outgoing` changes (coalescing the bumps that came meanwhile).
async fn listen<T>(
    config: tokio_postgres::Config,
    tls: T,
    channel: String,
    wake: watch::Sender<u64>,
    mut outgoing: watch::Receiver<u64>,
) where
    T: MakeTlsConnect<Socket> + Clone + Sync + Send + 'static,
    T::Stream: Sync + Send,
    T::TlsConnect: Sync + Send,
    <T::TlsConnect as TlsConnect<Socket>>::Future: Send,
{
    let bump = |wake: &watch::Sender<u64>| wake.send_modify(|n| *n = n.wrapping_add(1));
    let listen_sql = format!("LISTEN \"{channel}\"");
    let mut backoff = Duration::from_millis(100);
    let opening = config
        .get_connect_timeout()
        .copied()
        .unwrap_or(Duration::from_secs(10));
    loop {
        let opened = match tokio::time::timeout(opening, config.connect(tls.clone())).await {
            Ok(opened) => opened.map_err(StoreError::from),
            Err(_) => Err(StoreError::Connect(format!(
                "no answer within the connect timeout ({opening:?})"
            ))),
        };
        match opened {
            Ok((client, mut connection)) => {
                let mut messages = futures::stream::poll_fn(move |cx| connection.poll_message(cx));
                let drive = async {
                    while let Some(message) = messages.next().await {
                        match message {
                            Ok(AsyncMessage::Notification(_)) => bump(&wake),
                            Ok(_) => {}
                            Err(e) => return e.to_string(),
                        }
                    }
                    "the server closed the connection".to_owned()
                };
                tokio::pin!(drive);
                let listening = tokio::select! {
                    listened = client.batch_execute(&listen_sql) => listened.map_err(|e| StoreError::from(e).to_string()),
                    lost = &mut drive => Err(lost),
                };
                match listening {
                    Ok(()) => {
                        tracing::debug!(%channel, "job store listening for wake-ups");
                        backoff = Duration::from_millis(100);
                        bump(&wake);
                        let notify = async {
                            loop {
                                if outgoing.changed().await.is_err() {
                                    // The store is gone (its drop also stops this task).
                                    std::future::pending::<()>().await;
                                }
                                if let Err(e) = client
                                    .execute("SELECT pg_notify($1, '')", &[&channel])
                                    .await
                                {
                                    return StoreError::from(e).to_string();
                                }
                            }
                        };
                        let lost = tokio::select! {
                            lost = &mut drive => lost,
                            lost = notify => lost,
                        };
                        tracing::warn!(%channel, error = %lost, "job store wake-up connection lost; reconnecting (runners poll meanwhile)");
                    }
                    Err(e) => {
                        tracing::warn!(%channel, error = %e, "job store cannot listen for wake-ups; retrying (runners poll meanwhile)");
                    }
                }
                drop(client);
            }
            Err(e) => {
                tracing::warn!(%channel, error = %e, "job store cannot open its wake-up connection; retrying (runners poll meanwhile)");
            }
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(30));
    }
}

// ---------------------------------------------------------------------------------------------
// Enqueues that arrive together share one INSERT.
// ---------------------------------------------------------------------------------------------

/// Combined inserts in flight at once; enqueues arriving while they all are wait for the next.
pub const COMBINED_IN_FLIGHT: usize = 4;
/// The most jobs one combined insert carries.
const COMBINED_ROWS: usize = 1024;

/// One caller's enqueue, waiting for a combined insert.
struct Combined {
    jobs: Vec<NewJob>,
    now: Timestamp,
    reply: oneshot::Sender<Result<Vec<Enqueued>, StoreError>>,
}

/// Collects the enqueues waiting when a combined insert may start (at once when fewer than
/// [`COMBINED_IN_FLIGHT`] are in flight), and runs them as one.
async fn combine_enqueues(
    store: std::sync::Weak<Inner>,
    mut queue: mpsc::UnboundedReceiver<Combined>,
) {
    let permits = std::sync::Arc::new(Semaphore::new(COMBINED_IN_FLIGHT));
    while let Some(first) = queue.recv().await {
        let Ok(permit) = permits.clone().acquire_owned().await else {
            return;
        };
        let mut rows = first.jobs.len();
        let mut batch = vec![first];
        while rows < COMBINED_ROWS {
            match queue.try_recv() {
                Ok(next) => {
                    rows += next.jobs.len();
                    batch.push(next);
                }
                Err(_) => break,
            }
        }
        let Some(inner) = store.upgrade() else {
            for waiting in batch {
                let _ = waiting.reply.send(Err(StoreError::Closed));
            }
            return;
        };
        tokio::spawn(async move {
            let store = PostgresStore { inner };
            store.insert_combined(batch).await;
            drop(permit);
        });
    }
}

impl PostgresStore {
    /// One enqueue in its own transaction (one job without an idempotency key: a single
    /// `INSERT`, atomic on its own; a key is taken in its own table, then the job inserted,
    /// which needs a transaction).
    async fn enqueue_alone(
        &self,
        jobs: &[NewJob],
        now: Timestamp,
    ) -> Result<Vec<Enqueued>, StoreError> {
        if matches!(jobs, [job] if job.options.idempotency_key.is_none()) {
            operation!(self, autocommit, |tx| enqueue_tx(&mut tx, jobs, now)
                .await?)
        } else {
            operation!(self, transaction, |tx| enqueue_tx(&mut tx, jobs, now)
                .await?)
        }
    }

    /// Inserts the jobs of several enqueues with one statement and answers each caller; if
    /// that fails, runs each enqueue on its own so that only a bad one fails.
    async fn insert_combined(&self, batch: Vec<Combined>) {
        let all: Vec<(&NewJob, Timestamp)> = batch
            .iter()
            .flat_map(|c| c.jobs.iter().map(move |job| (job, c.now)))
            .collect();
        let combined: Result<Vec<JobId>, StoreError> =
            async { operation!(self, autocommit, |tx| insert_many(&mut tx, &all).await?) }.await;
        match combined {
            Ok(ids) => {
                let mut ids = ids.into_iter();
                for waiting in batch {
                    let enqueued = ids
                        .by_ref()
                        .take(waiting.jobs.len())
                        .map(|id| Enqueued {
                            id,
                            duplicate: false,
                        })
                        .collect();
                    let _ = waiting.reply.send(Ok(enqueued));
                }
            }
            Err(e) if batch.len() == 1 => {
                for waiting in batch {
                    let _ = waiting.reply.send(Err(e.clone()));
                }
            }
            Err(e) => {
                tracing::debug!(error = %e, enqueues = batch.len(), "a combined insert failed; inserting each enqueue on its own");
                for waiting in batch {
                    let alone = self.enqueue_alone(&waiting.jobs, waiting.now).await;
                    let _ = waiting.reply.send(alone);
                }
            }
        }
    }
}

/// Inserts new jobs (no idempotency keys, no parents) with one statement; their ids in order.
async fn insert_many(
    tx: &mut Tx<'_>,
    jobs: &[(&NewJob, Timestamp)],
) -> Result<Vec<JobId>, StoreError> {
    let n = jobs.len();
    let mut queue = Vec::with_capacity(n);
    let mut name = Vec::with_capacity(n);
    let mut version = Vec::with_capacity(n);
    let mut payload = Vec::with_capacity(n);
    let mut state = Vec::with_capacity(n);
    let mut priority = Vec::with_capacity(n);
    let mut run_at = Vec::with_capacity(n);
    let mut max_attempts = Vec::with_capacity(n);
    let mut backoff_base = Vec::with_capacity(n);
    let mut backoff_factor = Vec::with_capacity(n);
    let mut backoff_max = Vec::with_capacity(n);
    let mut timeout = Vec::with_capacity(n);
    let mut resource_key = Vec::with_capacity(n);
    let mut resource_capacity = Vec::with_capacity(n);
    let mut inserted_at = Vec::with_capacity(n);
    for (job, now) in jobs {
        let o = &job.options;
        let start = transition::initial(job, *now, None);
        queue.push(o.queue.as_str());
        name.push(job.name.as_str());
        version.push(i64::from(job.version));
        payload.push(job.payload.as_str());
        state.push(start.state.as_str());
        priority.push(i64::from(o.priority));
        run_at.push(start.run_at.as_millis());
        max_attempts.push(i64::from(o.max_attempts));
        backoff_base.push(ms(o.backoff.base));
        backoff_factor.push(o.backoff.factor);
        backoff_max.push(ms(o.backoff.max));
        timeout.push(o.timeout.map(ms));
        resource_key.push(o.resource.as_ref().map(|r| r.key.as_str()));
        resource_capacity.push(o.resource.as_ref().map(|r| i64::from(r.capacity)));
        inserted_at.push(now.as_millis());
    }
    // Rows are inserted in the arrays' order, each taking the next id, and returned in it.
    let rows = tx
        .query(
            "INSERT INTO otp_jobs (queue, name, version, payload, state, priority, run_at,
                max_attempts, backoff_base_ms, backoff_factor, backoff_max_ms, timeout_ms,
                resource_key, resource_capacity, inserted_at)
             SELECT * FROM unnest($1::TEXT[], $2::TEXT[], $3::BIGINT[], $4::TEXT[], $5::TEXT[],
                $6::BIGINT[], $7::BIGINT[], $8::BIGINT[], $9::BIGINT[], $10::FLOAT8[],
                $11::BIGINT[], $12::BIGINT[], $13::TEXT[], $14::BIGINT[], $15::BIGINT[])
             RETURNING id",
            &[
                &queue,
                &name,
                &version,
                &payload,
                &state,
                &priority,
                &run_at,
                &max_attempts,
                &backoff_base,
                &backoff_factor,
                &backoff_max,
                &timeout,
                &resource_key,
                &resource_capacity,
                &inserted_at,
            ],
        )
        .await?;
    if rows.len() != n {
        return Err(StoreError::Database(format!(
            "a combined insert of {n} jobs returned {} ids",
            rows.len()
        )));
    }
    tx.wake = true;
    rows.iter().map(|r| Ok(JobId(r.try_get(0)?))).collect()
}

// ---------------------------------------------------------------------------------------------
// One transaction and the queries the operations run in it.
// ---------------------------------------------------------------------------------------------

type Param<'a> = &'a (dyn ToSql + Sync);

/// Where an operation's statements go.
enum Conn<'c> {
    /// Inside a transaction.
    Tx(deadpool_postgres::Transaction<'c>),
    /// Straight on the connection: each statement is its own transaction.
    Auto(&'c deadpool_postgres::ClientWrapper),
}

struct Tx<'c> {
    conn: Conn<'c>,
    /// Something became claimable: notify listeners at commit.
    wake: bool,
    key_prefix: &'c str,
}

impl Tx<'_> {
    async fn query(&self, sql: &str, params: &[Param<'_>]) -> Result<Vec<Row>, StoreError> {
        Ok(match &self.conn {
            Conn::Tx(tx) => tx.query(&tx.prepare_cached(sql).await?, params).await?,
            Conn::Auto(c) => c.query(&c.prepare_cached(sql).await?, params).await?,
        })
    }

    async fn query_opt(&self, sql: &str, params: &[Param<'_>]) -> Result<Option<Row>, StoreError> {
        Ok(match &self.conn {
            Conn::Tx(tx) => tx.query_opt(&tx.prepare_cached(sql).await?, params).await?,
            Conn::Auto(c) => c.query_opt(&c.prepare_cached(sql).await?, params).await?,
        })
    }

    async fn query_one(&self, sql: &str, params: &[Param<'_>]) -> Result<Row, StoreError> {
        Ok(match &self.conn {
            Conn::Tx(tx) => tx.query_one(&tx.prepare_cached(sql).await?, params).await?,
            Conn::Auto(c) => c.query_one(&c.prepare_cached(sql).await?, params).await?,
        })
    }

    async fn execute(&self, sql: &str, params: &[Param<'_>]) -> Result<u64, StoreError> {
        Ok(match &self.conn {
            Conn::Tx(tx) => tx.execute(&tx.prepare_cached(sql).await?, params).await?,
            Conn::Auto(c) => c.execute(&c.prepare_cached(sql).await?, params).await?,
        })
    }

    /// Runs statements with no parameters (savepoints) in the simple protocol.
    async fn batch(&self, sql: &str) -> Result<(), StoreError> {
        match &self.conn {
            Conn::Tx(tx) => tx.batch_execute(sql).await?,
            Conn::Auto(c) => c.batch_execute(sql).await?,
        }
        Ok(())
    }

    /// Commits; returns whether something became claimable.
    async fn commit(self) -> Result<bool, StoreError> {
        if let Conn::Tx(tx) = self.conn {
            tx.commit().await?;
        }
        Ok(self.wake)
    }

    async fn rollback(self) {
        if let Conn::Tx(tx) = self.conn {
            let _ = tx.rollback().await;
        }
    }
}

fn u32_of(value: i64, what: &str) -> Result<u32, StoreError> {
    u32::try_from(value).map_err(|_| StoreError::Corrupt(format!("{what} is {value}")))
}

fn millis(value: Option<i64>) -> Option<Duration> {
    value.map(|t| Duration::from_millis(t.max(0) as u64))
}

fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

const FINAL_STATES: &str = "('completed','discarded','cancelled')";

// ---------------------------------------------------------------------------------------------
// The operations, one function per Store method (the same steps as the SQLite store's).
// ---------------------------------------------------------------------------------------------

async fn insert_job(
    tx: &mut Tx<'_>,
    job: &NewJob,
    now: Timestamp,
    parent: Option<JobId>,
    waiting_for: Option<(u32, GroupPolicy)>,
) -> Result<Enqueued, StoreError> {
    let o = &job.options;
    if let Some(key) = &o.idempotency_key {
        // Takes the key unless it is held (and not expired): then the holder is the answer. A
        // concurrent enqueue of the same key waits here for this one's commit, then finds
        // the key held.
        let taken = tx
            .query_opt(
                "INSERT INTO otp_keys (key, job_id, expires_at) VALUES ($1, 0, $2)
                 ON CONFLICT (key) DO UPDATE SET job_id = 0, expires_at = excluded.expires_at
                    WHERE otp_keys.expires_at IS NOT NULL AND otp_keys.expires_at <= $3
                 RETURNING 1",
                &[
                    key,
                    &o.unique_for.map(|d| now.after(d).as_millis()),
                    &now.as_millis(),
                ],
            )
            .await?
            .is_some();
        if !taken {
            let existing = tx
                .query_one("SELECT job_id FROM otp_keys WHERE key = $1", &[key])
                .await?;
            return Ok(Enqueued {
                id: JobId(existing.try_get(0)?),
                duplicate: true,
            });
        }
    }
    let start = transition::initial(job, now, waiting_for);
    let row = tx
        .query_one(
            "INSERT INTO otp_jobs (queue, name, version, payload, state, priority, run_at,
                max_attempts, backoff_base_ms, backoff_factor, backoff_max_ms, timeout_ms,
                resource_key, resource_capacity, idem_key, parent_id, pending_children,
                group_policy, inserted_at)
             VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,$15,$16,$17,$18,$19)
             RETURNING id",
            &[
                &o.queue,
                &job.name,
                &i64::from(job.version),
                &job.payload,
                &start.state.as_str(),
                &i64::from(o.priority),
                &start.run_at.as_millis(),
                &i64::from(o.max_attempts),
                &ms(o.backoff.base),
                &o.backoff.factor,
                &ms(o.backoff.max),
                &o.timeout.map(ms),
                &o.resource.as_ref().map(|r| r.key.as_str()),
                &o.resource.as_ref().map(|r| i64::from(r.capacity)),
                &o.idempotency_key,
                &parent.map(|p| p.0),
                &i64::from(start.pending),
                &start.policy.map(transition::policy_name),
                &now.as_millis(),
            ],
        )
        .await?;
    let id: i64 = row.try_get(0)?;
    if let Some(key) = &o.idempotency_key {
        tx.execute(
            "UPDATE otp_keys SET job_id = $1 WHERE key = $2",
            &[&id, key],
        )
        .await?;
    }
    tx.wake = true;
    Ok(Enqueued {
        id: JobId(id),
        duplicate: false,
    })
}

async fn enqueue_tx(
    tx: &mut Tx<'_>,
    jobs: &[NewJob],
    now: Timestamp,
) -> Result<Vec<Enqueued>, StoreError> {
    let mut out = Vec::with_capacity(jobs.len());
    for job in jobs {
        out.push(insert_job(tx, job, now, None, None).await?);
    }
    Ok(out)
}

async fn enqueue_group_tx(
    tx: &mut Tx<'_>,
    group: &NewGroup,
    now: Timestamp,
) -> Result<GroupIds, StoreError> {
    let n = transition::check_group(group)?;
    let collector = insert_job(tx, &group.collector, now, None, Some((n, group.policy))).await?;
    if collector.duplicate {
        let rows = tx
            .query(
                "SELECT id FROM otp_jobs WHERE parent_id = $1 ORDER BY id",
                &[&collector.id.0],
            )
            .await?;
        let children = rows
            .iter()
            .map(|r| r.try_get(0).map(JobId))
            .collect::<Result<_, _>>()?;
        return Ok(GroupIds {
            collector: collector.id,
            children,
        });
    }
    let mut children = Vec::with_capacity(group.children.len());
    for child in &group.children {
        children.push(
            insert_job(tx, child, now, Some(collector.id), None)
                .await?
                .id,
        );
    }
    Ok(GroupIds {
        collector: collector.id,
        children,
    })
}

const CLAIMED_COLUMNS: &str = "id, token, name, version, payload, queue, attempt, max_attempts,
    timeout_ms, lease_expires_at, group_policy IS NOT NULL, run_at";

async fn claim_tx(
    tx: &mut Tx<'_>,
    request: &ClaimRequest,
    now: Timestamp,
) -> Result<Vec<ClaimedJob>, StoreError> {
    if request.limit == 0 || request.queues.is_empty() || request.names.is_empty() {
        return Ok(Vec::new());
    }
    let now_ms = now.as_millis();
    // Scans along the partial indexes: the due jobs of each queue (one scan per queue:
    // `queue = $1` lets the scan follow the index in claim order and stop at the limit, where
    // `queue = ANY($1)` made PostgreSQL fetch and sort every due job of the queues on every
    // claim), then the expired leases. Resources at capacity are filtered here; places are
    // re-checked under the key's lock below. Candidates another claim holds are skipped, not
    // waited for.
    let scan = i64::from(request.limit) * 4 + 32;
    let select = |due: &str, queue: &str| {
        format!(
            "SELECT id, state, attempt, max_attempts, resource_key, resource_capacity,
                    lease_owner, lease_expires_at, priority, run_at
             FROM otp_jobs j
             WHERE {due} AND {queue} AND name = ANY($2)
               AND (resource_key IS NULL OR resource_capacity > (
                    SELECT COUNT(*) FROM otp_jobs e
                    WHERE e.resource_key = j.resource_key AND e.state = 'executing'
                      AND e.lease_expires_at > $3))
             ORDER BY priority DESC, run_at, id
             LIMIT $4
             FOR UPDATE SKIP LOCKED"
        )
    };
    let due = select(
        "state IN ('scheduled','available','retryable') AND run_at <= $3",
        "queue = $1",
    );
    let expired = select(
        "state = 'executing' AND lease_expires_at <= $3",
        "queue = ANY($1)",
    );
    let mut found = Vec::new();
    for queue in &request.queues {
        found.extend(
            tx.query(&due, &[queue, &request.names, &now_ms, &scan])
                .await?,
        );
    }
    found.extend(
        tx.query(&expired, &[&request.queues, &request.names, &now_ms, &scan])
            .await?,
    );
    let mut candidates = Vec::new();
    for row in found {
        let order = (
            std::cmp::Reverse(row.try_get::<_, i64>(8)?),
            row.try_get::<_, i64>(9)?,
            row.try_get::<_, i64>(0)?,
        );
        candidates.push((order, row));
    }
    candidates.sort_by_key(|(order, _)| *order);
    let lease_end = now.after(request.lease).as_millis();
    let mut rows = Vec::new();
    // Due jobs that need no resource: claimed together by one statement at the end.
    let mut plain = Vec::new();
    let mut taken = 0u32;
    let mut order = std::collections::HashMap::new();
    for (rank, c) in candidates {
        if taken >= request.limit {
            break;
        }
        let id: i64 = c.try_get(0)?;
        let state: String = c.try_get(1)?;
        let attempt: i64 = c.try_get(2)?;
        let max_attempts: i64 = c.try_get(3)?;
        let key: Option<String> = c.try_get(4)?;
        let capacity: Option<i64> = c.try_get(5)?;
        order.insert(id, rank);
        let owner: Option<String> = c.try_get(6)?;
        let step = transition::claim_step(&Candidate {
            state: JobState::from_column(&state, id)?,
            attempt: u32_of(attempt, "an attempt")?,
            max_attempts: u32_of(max_attempts, "max_attempts")?,
            lease_owner: owner.as_deref(),
            lease_expires_at: c.try_get(7)?,
        });
        let lost_run = match step {
            ClaimStep::Claim if key.is_none() => {
                plain.push(id);
                taken += 1;
                continue;
            }
            ClaimStep::Claim => None,
            ClaimStep::ClaimAfterLostRun { error } => Some(error),
            ClaimStep::Discard { error } => {
                push_error(tx, id, attempt, now, &error).await?;
                discard(tx, id, &error, now).await?;
                continue;
            }
        };
        if let (Some(key), Some(capacity)) = (&key, capacity) {
            // Serializes counting this key's holders with claims in other transactions; a
            // key another claim is counting right now is left for the next look.
            let lock_key = format!("{}/{key}", tx.key_prefix);
            let locked: bool = tx
                .query_one(
                    "SELECT pg_try_advisory_xact_lock($1, hashtext($2))",
                    &[&RESOURCE_LOCK_CLASS, &lock_key],
                )
                .await?
                .try_get(0)?;
            if !locked {
                continue;
            }
            let holders: i64 = tx
                .query_one(
                    "SELECT COUNT(*) FROM otp_jobs WHERE resource_key = $1
                     AND state = 'executing' AND lease_expires_at > $2 AND id != $3",
                    &[key, &now_ms, &id],
                )
                .await?
                .try_get(0)?;
            if holders >= capacity {
                // Left as it is: a lost run is recorded when the job is actually reclaimed.
                continue;
            }
        }
        // Still as selected? (A fail-fast discard above may have cancelled it meanwhile.)
        let row = tx
            .query_opt(
                &format!(
                    "UPDATE otp_jobs SET state = 'executing', attempt = attempt + 1,
                        token = token + 1, lease_owner = $1, lease_expires_at = $2
                     WHERE id = $3 AND state = $4 AND attempt = $5
                     RETURNING {CLAIMED_COLUMNS}"
                ),
                &[&request.owner, &lease_end, &id, &state, &attempt],
            )
            .await?;
        let Some(row) = row else {
            continue;
        };
        if let Some(error) = &lost_run {
            push_error(tx, id, attempt, now, error).await?;
        }
        taken += 1;
        rows.push(row);
    }
    if !plain.is_empty() {
        // Still due? (A fail-fast discard above may have cancelled some meanwhile.)
        rows.extend(
            tx.query(
                &format!(
                    "UPDATE otp_jobs SET state = 'executing', attempt = attempt + 1,
                        token = token + 1, lease_owner = $1, lease_expires_at = $2
                     WHERE id = ANY($3) AND state IN ('scheduled','available','retryable')
                     RETURNING {CLAIMED_COLUMNS}"
                ),
                &[&request.owner, &lease_end, &plain],
            )
            .await?,
        );
    }
    let mut claimed = Vec::with_capacity(rows.len());
    for row in rows {
        let id: i64 = row.try_get(0)?;
        let mut job = ClaimedJob {
            id: JobId(row.try_get(0)?),
            token: row.try_get(1)?,
            name: row.try_get(2)?,
            version: u32_of(row.try_get(3)?, "a version")?,
            payload: row.try_get(4)?,
            queue: row.try_get(5)?,
            attempt: u32_of(row.try_get(6)?, "an attempt")?,
            max_attempts: u32_of(row.try_get(7)?, "max_attempts")?,
            timeout: millis(row.try_get(8)?),
            lease_expires_at: Timestamp::from_millis(row.try_get(9)?),
            due_at: Timestamp::from_millis(row.try_get(11)?),
            children: Vec::new(),
        };
        if row.try_get::<_, bool>(10)? {
            job.children = children_of(tx, id).await?;
        }
        claimed.push(job);
    }
    claimed.sort_by_key(|job| order.get(&job.id.0).copied());
    Ok(claimed)
}

async fn children_of(tx: &Tx<'_>, parent: i64) -> Result<Vec<ChildOutcome>, StoreError> {
    let rows = tx
        .query(
            "SELECT id, name, state, result, error FROM otp_jobs WHERE parent_id = $1 ORDER BY id",
            &[&parent],
        )
        .await?;
    rows.iter()
        .map(|r| {
            let id: i64 = r.try_get(0)?;
            let state: String = r.try_get(2)?;
            Ok(transition::child_outcome(
                JobId(id),
                r.try_get(1)?,
                JobState::from_column(&state, id)?,
                r.try_get(3)?,
                r.try_get(4)?,
            ))
        })
        .collect()
}

async fn push_error(
    tx: &Tx<'_>,
    id: i64,
    attempt: i64,
    now: Timestamp,
    error: &str,
) -> Result<(), StoreError> {
    let entry = serde_json::to_string(&[AttemptError {
        attempt: u32_of(attempt, "an attempt")?,
        at: now,
        error: error.to_owned(),
    }])
    .map_err(|e| StoreError::Corrupt(format!("errors of job#{id}: {e}")))?;
    tx.execute(
        "UPDATE otp_jobs SET errors = errors || ($1::text)::jsonb, error = $2 WHERE id = $3",
        &[&entry, &error, &id],
    )
    .await?;
    Ok(())
}

/// Moves a job to `discarded` (dead letter) and tells its collector.
async fn discard(tx: &mut Tx<'_>, id: i64, error: &str, now: Timestamp) -> Result<(), StoreError> {
    tx.execute(
        "UPDATE otp_jobs SET state = 'discarded', error = $1, finished_at = $2,
            lease_owner = NULL, lease_expires_at = NULL WHERE id = $3",
        &[&error, &now.as_millis(), &id],
    )
    .await?;
    child_done(tx, id, false, now).await
}

/// A job reached a final state: count it towards its collector, exactly once. The last child
/// (or, fail-fast, the first failed one) makes the collector available.
async fn child_done(tx: &mut Tx<'_>, id: i64, ok: bool, now: Timestamp) -> Result<(), StoreError> {
    let row = tx
        .query_opt(
            "SELECT parent_id, counted FROM otp_jobs WHERE id = $1",
            &[&id],
        )
        .await?;
    let Some(row) = row else {
        return Ok(());
    };
    count_child(tx, id, row.try_get(0)?, row.try_get(1)?, ok, now).await
}

/// [`child_done`] for a job whose `parent_id` and `counted` are known.
async fn count_child(
    tx: &mut Tx<'_>,
    id: i64,
    parent: Option<i64>,
    counted: bool,
    ok: bool,
    now: Timestamp,
) -> Result<(), StoreError> {
    let Some(parent) = transition::counts_toward(parent, counted) else {
        return Ok(());
    };
    tx.execute("UPDATE otp_jobs SET counted = TRUE WHERE id = $1", &[&id])
        .await?;
    // Locked: children finishing in other transactions count one after the other.
    let collector = tx
        .query_opt(
            "SELECT state, pending_children, group_policy FROM otp_jobs WHERE id = $1 FOR UPDATE",
            &[&parent],
        )
        .await?;
    let Some(collector) = collector else {
        return Ok(());
    };
    let state: String = collector.try_get(0)?;
    let policy: Option<String> = collector.try_get(2)?;
    let collector = Collector {
        state: JobState::from_column(&state, parent)?,
        pending: u32_of(collector.try_get(1)?, "pending_children")?,
        policy: transition::parse_policy(policy.as_deref()),
    };
    let step = transition::after_child(collector, ok);
    let Some((state, pending)) = step.collector() else {
        return Ok(());
    };
    tx.wake |= state == JobState::Available;
    tx.execute(
        "UPDATE otp_jobs SET pending_children = $1, state = $2, run_at = $3 WHERE id = $4",
        &[
            &i64::from(pending),
            &state.as_str(),
            &now.as_millis(),
            &parent,
        ],
    )
    .await?;
    if step == GroupStep::ReadyCancelSiblings {
        cancel_children(tx, parent, now).await?;
    }
    Ok(())
}

/// Cancels the unfinished descendants of `parent` (its children, theirs, …).
async fn cancel_children(tx: &Tx<'_>, parent: i64, now: Timestamp) -> Result<(), StoreError> {
    tx.execute(
        &format!(
            "WITH RECURSIVE doomed(id) AS (
                SELECT id FROM otp_jobs WHERE parent_id = $1 AND state NOT IN {FINAL_STATES}
                UNION
                SELECT j.id FROM otp_jobs j JOIN doomed d ON j.parent_id = d.id
                WHERE j.state NOT IN {FINAL_STATES})
             UPDATE otp_jobs SET state = 'cancelled', finished_at = $2, lease_owner = NULL,
                lease_expires_at = NULL, counted = TRUE
             WHERE id IN (SELECT id FROM doomed)"
        ),
        &[&parent, &now.as_millis()],
    )
    .await?;
    Ok(())
}

/// The row behind a lease, locked, if the lease is still held.
struct Held {
    attempt: i64,
    max_attempts: i64,
    backoff: RetryBackoff,
}

async fn held(tx: &Tx<'_>, lease: Lease) -> Result<Held, StoreError> {
    let row = tx
        .query_opt(
            "SELECT state, token, attempt, max_attempts, backoff_base_ms, backoff_factor,
                    backoff_max_ms FROM otp_jobs WHERE id = $1 FOR UPDATE",
            &[&lease.id.0],
        )
        .await?
        .ok_or(StoreError::NotFound(lease.id))?;
    let state: String = row.try_get(0)?;
    let found = (JobState::from_column(&state, lease.id.0)?, row.try_get(1)?);
    transition::check_lease(lease, Some(found))?;
    Ok(Held {
        attempt: row.try_get(2)?,
        max_attempts: row.try_get(3)?,
        backoff: RetryBackoff {
            base: millis(row.try_get(4)?).unwrap_or_default(),
            factor: row.try_get(5)?,
            max: millis(row.try_get(6)?).unwrap_or_default(),
        },
    })
}

async fn finish_tx(
    tx: &mut Tx<'_>,
    lease: Lease,
    finish: &Finish,
    now: Timestamp,
) -> Result<(), StoreError> {
    let id = lease.id.0;
    match finish {
        Finish::Completed {
            result,
            follow_ups,
            groups,
        } => {
            // The common end in one statement: fenced by the token, and telling the
            // collector (if any) what it needs.
            let row = tx
                .query_opt(
                    "UPDATE otp_jobs SET state = 'completed', result = $1, finished_at = $2,
                        lease_owner = NULL, lease_expires_at = NULL
                     WHERE id = $3 AND token = $4 AND state = 'executing'
                     RETURNING parent_id, counted",
                    &[result, &now.as_millis(), &id, &lease.token],
                )
                .await?;
            let Some(row) = row else {
                // Not held: say why (no such job, or the lease was lost).
                held(tx, lease).await?;
                return Err(StoreError::LeaseLost(lease.id));
            };
            count_child(tx, id, row.try_get(0)?, row.try_get(1)?, true, now).await?;
            enqueue_tx(tx, follow_ups, now).await?;
            for group in groups {
                enqueue_group_tx(tx, group, now).await?;
            }
        }
        Finish::Failed { error, retry } => {
            let job = held(tx, lease).await?;
            push_error(tx, id, job.attempt, now, error).await?;
            let (attempt, max_attempts) = (
                u32_of(job.attempt, "an attempt")?,
                u32_of(job.max_attempts, "max_attempts")?,
            );
            match transition::after_failure(attempt, max_attempts, &job.backoff, *retry, now) {
                AfterFailure::Retry { at } => {
                    tx.execute(
                        "UPDATE otp_jobs SET state = 'retryable', run_at = $1, lease_owner = NULL,
                            lease_expires_at = NULL WHERE id = $2",
                        &[&at.as_millis(), &id],
                    )
                    .await?;
                    tx.wake = true;
                }
                AfterFailure::Discard => discard(tx, id, error, now).await?,
            }
        }
        Finish::Snoozed { until } => {
            held(tx, lease).await?;
            put_back(tx, id, *until, now).await?;
        }
        Finish::Parked => {
            held(tx, lease).await?;
            tx.execute(
                "UPDATE otp_jobs SET state = 'parked', lease_owner = NULL, lease_expires_at = NULL
                 WHERE id = $1",
                &[&id],
            )
            .await?;
        }
    }
    Ok(())
}

/// A runner's turn in one transaction: plain completions (no follow-ups) in one statement,
/// fenced per row; every other finish in its own savepoint (a refused one rolls back alone);
/// then the claim and, if it took fewer than asked, the next due time.
async fn turn_tx(tx: &mut Tx<'_>, turn: &Turn, now: Timestamp) -> Result<TurnOutcome, StoreError> {
    let mut finished: Vec<Option<Result<(), StoreError>>> = vec![None; turn.finished.len()];
    let plain: Vec<(usize, Lease, &String)> = turn
        .finished
        .iter()
        .enumerate()
        .filter_map(|(i, (lease, finish))| match finish {
            Finish::Completed {
                result,
                follow_ups,
                groups,
            } if follow_ups.is_empty() && groups.is_empty() => Some((i, *lease, result)),
            _ => None,
        })
        .collect();
    if !plain.is_empty() {
        let ids: Vec<i64> = plain.iter().map(|(_, l, _)| l.id.0).collect();
        let tokens: Vec<i64> = plain.iter().map(|(_, l, _)| l.token).collect();
        let results: Vec<&str> = plain.iter().map(|(_, _, r)| r.as_str()).collect();
        let rows = tx
            .query(
                "UPDATE otp_jobs j SET state = 'completed', result = l.result, finished_at = $1,
                    lease_owner = NULL, lease_expires_at = NULL
                 FROM unnest($2::BIGINT[], $3::BIGINT[], $4::TEXT[]) AS l(id, token, result)
                 WHERE j.id = l.id AND j.token = l.token AND j.state = 'executing'
                 RETURNING j.id, j.parent_id, j.counted",
                &[&now.as_millis(), &ids, &tokens, &results],
            )
            .await?;
        let mut done = std::collections::HashMap::with_capacity(rows.len());
        for row in rows {
            let id: i64 = row.try_get(0)?;
            done.insert(id, (row.try_get::<_, Option<i64>>(1)?, row.try_get(2)?));
        }
        for (i, lease, _) in &plain {
            finished[*i] = Some(match done.get(&lease.id.0) {
                Some(&(parent, counted)) => {
                    count_child(tx, lease.id.0, parent, counted, true, now).await?;
                    Ok(())
                }
                // Not held: say why (no such job, or the lease was lost).
                None => held(tx, *lease)
                    .await
                    .and(Err(StoreError::LeaseLost(lease.id))),
            });
        }
    }
    for (i, (lease, finish)) in turn.finished.iter().enumerate() {
        if finished[i].is_some() {
            continue;
        }
        tx.batch("SAVEPOINT finish").await?;
        let result = finish_tx(tx, *lease, finish, now).await;
        match &result {
            // The whole transaction runs again.
            Err(StoreError::Conflict(e)) => return Err(StoreError::Conflict(e.clone())),
            Err(_) => tx.batch("ROLLBACK TO SAVEPOINT finish").await?,
            Ok(()) => tx.batch("RELEASE SAVEPOINT finish").await?,
        }
        finished[i] = Some(result);
    }
    let finished = finished
        .into_iter()
        .map(|r| r.unwrap_or(Err(StoreError::Closed)))
        .collect();
    let Some(request) = &turn.claim else {
        return Ok(TurnOutcome {
            finished,
            claimed: Ok(Vec::new()),
            next_due: None,
        });
    };
    // A claim's errors are SQL errors, which abort the transaction: they fail the turn.
    let claimed = claim_tx(tx, request, now).await?;
    let next_due = if (claimed.len() as u32) < request.limit {
        next_due_tx(tx, &request.queues, &request.names).await?
    } else {
        None
    };
    Ok(TurnOutcome {
        finished,
        claimed: Ok(claimed),
        next_due,
    })
}

/// Back to waiting for `until`, the attempt not counted.
async fn put_back(
    tx: &mut Tx<'_>,
    id: i64,
    until: Timestamp,
    now: Timestamp,
) -> Result<(), StoreError> {
    let (state, run_at) = transition::put_back(until, now);
    tx.execute(
        "UPDATE otp_jobs SET state = $1, run_at = $2, attempt = GREATEST(attempt - 1, 0),
            lease_owner = NULL, lease_expires_at = NULL WHERE id = $3",
        &[&state.as_str(), &run_at.as_millis(), &id],
    )
    .await?;
    tx.wake = true;
    Ok(())
}

async fn heartbeat_tx(
    tx: &Tx<'_>,
    leases: &[Lease],
    expires_at: Timestamp,
) -> Result<Vec<JobId>, StoreError> {
    let ids: Vec<i64> = leases.iter().map(|l| l.id.0).collect();
    let tokens: Vec<i64> = leases.iter().map(|l| l.token).collect();
    let rows = tx
        .query(
            "UPDATE otp_jobs j SET lease_expires_at = $1
             FROM unnest($2::BIGINT[], $3::BIGINT[]) AS l(id, token)
             WHERE j.id = l.id AND j.token = l.token AND j.state = 'executing'
             RETURNING j.id, j.token",
            &[&expires_at.as_millis(), &ids, &tokens],
        )
        .await?;
    let kept = rows
        .iter()
        .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
        .collect::<Result<std::collections::HashSet<(i64, i64)>, StoreError>>()?;
    Ok(leases
        .iter()
        .filter(|l| !kept.contains(&(l.id.0, l.token)))
        .map(|l| l.id)
        .collect())
}

async fn state_of(tx: &Tx<'_>, id: JobId) -> Result<JobState, StoreError> {
    let row = tx
        .query_opt(
            "SELECT state FROM otp_jobs WHERE id = $1 FOR UPDATE",
            &[&id.0],
        )
        .await?
        .ok_or(StoreError::NotFound(id))?;
    let state: String = row.try_get(0)?;
    JobState::from_column(&state, id.0)
}

async fn complete_parked_tx(
    tx: &mut Tx<'_>,
    id: JobId,
    result: &str,
    now: Timestamp,
) -> Result<(), StoreError> {
    transition::check_action(Action::CompleteParked, id, state_of(tx, id).await?)?;
    tx.execute(
        "UPDATE otp_jobs SET state = 'completed', result = $1, finished_at = $2 WHERE id = $3",
        &[&result, &now.as_millis(), &id.0],
    )
    .await?;
    child_done(tx, id.0, true, now).await
}

async fn release_tx(tx: &mut Tx<'_>, id: JobId, now: Timestamp) -> Result<(), StoreError> {
    transition::check_action(Action::Release, id, state_of(tx, id).await?)?;
    tx.execute(
        "UPDATE otp_jobs SET state = 'available', run_at = $1 WHERE id = $2",
        &[&now.as_millis(), &id.0],
    )
    .await?;
    tx.wake = true;
    Ok(())
}

async fn cancel_tx(tx: &mut Tx<'_>, id: JobId, now: Timestamp) -> Result<(), StoreError> {
    transition::check_action(Action::Cancel, id, state_of(tx, id).await?)?;
    tx.execute(
        "UPDATE otp_jobs SET state = 'cancelled', finished_at = $1, lease_owner = NULL,
            lease_expires_at = NULL WHERE id = $2",
        &[&now.as_millis(), &id.0],
    )
    .await?;
    cancel_children(tx, id.0, now).await?;
    child_done(tx, id.0, false, now).await
}

async fn retry_tx(tx: &mut Tx<'_>, id: JobId, now: Timestamp) -> Result<(), StoreError> {
    transition::check_action(Action::Retry, id, state_of(tx, id).await?)?;
    let row = tx
        .query_one(
            "SELECT parent_id, counted, attempt, max_attempts FROM otp_jobs WHERE id = $1",
            &[&id.0],
        )
        .await?;
    if let Some(parent) = row.try_get::<_, Option<i64>>(0)? {
        // Locked: children finishing in other transactions count one after the other.
        let collector = tx
            .query_opt(
                "SELECT state FROM otp_jobs WHERE id = $1 FOR UPDATE",
                &[&parent],
            )
            .await?;
        let collector = match collector {
            Some(c) => Some(JobState::from_column(&c.try_get::<_, String>(0)?, parent)?),
            None => None,
        };
        if transition::retried_child_uncounts(row.try_get(1)?, collector) {
            tx.execute(
                "UPDATE otp_jobs SET pending_children = pending_children + 1 WHERE id = $1",
                &[&parent],
            )
            .await?;
            tx.execute(
                "UPDATE otp_jobs SET counted = FALSE WHERE id = $1",
                &[&id.0],
            )
            .await?;
        }
    }
    let attempts = transition::attempts_after_retry(
        u32_of(row.try_get(2)?, "an attempt")?,
        u32_of(row.try_get(3)?, "max_attempts")?,
    );
    tx.execute(
        "UPDATE otp_jobs SET state = 'available', run_at = $1, finished_at = NULL,
            max_attempts = $2 WHERE id = $3",
        &[&now.as_millis(), &i64::from(attempts), &id.0],
    )
    .await?;
    tx.wake = true;
    Ok(())
}

const RECORD_COLUMNS: &str = "id, queue, name, version, payload, state, priority, run_at,
    attempt, max_attempts, timeout_ms, resource_key, resource_capacity, idem_key, lease_owner,
    lease_expires_at, parent_id, pending_children, result, errors::text, inserted_at,
    finished_at";

fn record(row: &Row, now: Timestamp) -> Result<JobRecord, StoreError> {
    let id = JobId(row.try_get(0)?);
    let state: String = row.try_get(5)?;
    let run_at = Timestamp::from_millis(row.try_get(7)?);
    let state = transition::shown(JobState::from_column(&state, id.0)?, run_at, now);
    let errors: String = row.try_get(19)?;
    let errors = serde_json::from_str(&errors)
        .map_err(|e| StoreError::Corrupt(format!("errors of {id}: {e}")))?;
    let key: Option<String> = row.try_get(11)?;
    let capacity: Option<i64> = row.try_get(12)?;
    let resource = match key.zip(capacity) {
        Some((key, capacity)) => Some(Resource {
            key,
            capacity: u32_of(capacity, "a resource capacity")?,
        }),
        None => None,
    };
    let priority: i64 = row.try_get(6)?;
    Ok(JobRecord {
        id,
        queue: row.try_get(1)?,
        name: row.try_get(2)?,
        version: u32_of(row.try_get(3)?, "a version")?,
        payload: row.try_get(4)?,
        state,
        priority: i32::try_from(priority)
            .map_err(|_| StoreError::Corrupt(format!("{id} has priority {priority}")))?,
        run_at,
        attempt: u32_of(row.try_get(8)?, "an attempt")?,
        max_attempts: u32_of(row.try_get(9)?, "max_attempts")?,
        timeout: millis(row.try_get(10)?),
        resource,
        idempotency_key: row.try_get(13)?,
        lease_owner: row.try_get(14)?,
        lease_expires_at: row
            .try_get::<_, Option<i64>>(15)?
            .map(Timestamp::from_millis),
        parent: row.try_get::<_, Option<i64>>(16)?.map(JobId),
        pending_children: u32_of(row.try_get(17)?, "pending_children")?,
        result: row.try_get(18)?,
        errors,
        inserted_at: Timestamp::from_millis(row.try_get(20)?),
        finished_at: row
            .try_get::<_, Option<i64>>(21)?
            .map(Timestamp::from_millis),
    })
}

async fn list_tx(
    tx: &Tx<'_>,
    filter: &ListFilter,
    now: Timestamp,
) -> Result<Vec<JobRecord>, StoreError> {
    // Every filter is a parameter; an absent one is NULL and matches everything, so one
    // prepared statement serves all filters.
    let (state, due_split): (Option<&str>, i64) = match filter.state {
        // A scheduled job that is due reads as available.
        Some(JobState::Available) => (None, 1),
        Some(JobState::Scheduled) => (None, 2),
        Some(state) => (Some(state.as_str()), 0),
        None => (None, 0),
    };
    let limit = i64::from(filter.limit.unwrap_or(100));
    let rows = tx
        .query(
            &format!(
                "SELECT {RECORD_COLUMNS} FROM otp_jobs
                 WHERE ($1::TEXT IS NULL OR state = $1)
                   AND ($2::BIGINT <> 1 OR state = 'available' OR (state = 'scheduled' AND run_at <= $3))
                   AND ($2::BIGINT <> 2 OR (state = 'scheduled' AND run_at > $3))
                   AND ($4::TEXT IS NULL OR name = $4)
                   AND ($5::TEXT IS NULL OR queue = $5)
                   AND ($6::BIGINT IS NULL OR id > $6)
                 ORDER BY id LIMIT $7"
            ),
            &[
                &state,
                &due_split,
                &now.as_millis(),
                &filter.name,
                &filter.queue,
                &filter.after.map(|a| a.0),
                &limit,
            ],
        )
        .await?;
    rows.iter().map(|r| record(r, now)).collect()
}

async fn get_tx(tx: &Tx<'_>, id: JobId, now: Timestamp) -> Result<Option<JobRecord>, StoreError> {
    let row = tx
        .query_opt(
            &format!("SELECT {RECORD_COLUMNS} FROM otp_jobs WHERE id = $1"),
            &[&id.0],
        )
        .await?;
    row.map(|r| record(&r, now)).transpose()
}

async fn counts_tx(tx: &Tx<'_>, now: Timestamp) -> Result<Vec<(JobState, u64)>, StoreError> {
    let rows = tx
        .query(
            "SELECT CASE WHEN state = 'scheduled' AND run_at <= $1 THEN 'available' ELSE state END AS s,
                    COUNT(*) FROM otp_jobs GROUP BY s",
            &[&now.as_millis()],
        )
        .await?;
    let mut counts: Vec<(JobState, u64)> = JobState::ALL.iter().map(|s| (*s, 0)).collect();
    for row in rows {
        let state: String = row.try_get(0)?;
        let n: i64 = row.try_get(1)?;
        let state = JobState::parse(&state)
            .ok_or_else(|| StoreError::Corrupt(format!("a job has state `{state}`")))?;
        if let Some(entry) = counts.iter_mut().find(|(s, _)| *s == state) {
            entry.1 = n.max(0) as u64;
        }
    }
    Ok(counts)
}

async fn prune_tx(tx: &Tx<'_>, prune: &Prune) -> Result<Pruned, StoreError> {
    let limit = i64::from(prune.limit);
    let cutoffs = [
        prune.completed_before,
        prune.cancelled_before,
        prune.discarded_before,
    ];
    let mut pruned = Pruned::default();
    if let Some(latest) = cutoffs.iter().flatten().max() {
        // A child while its collector waits, a collector while a child is unfinished: kept.
        // Rows another transaction holds (a retry, another pruner) are left for later.
        pruned.jobs = tx
            .execute(
                "DELETE FROM otp_jobs WHERE id IN (
                    SELECT id FROM otp_jobs j
                    WHERE j.state IN ('completed','discarded','cancelled')
                        AND j.finished_at < $4
                        AND j.finished_at < CASE j.state WHEN 'completed' THEN $1::BIGINT
                            WHEN 'cancelled' THEN $2::BIGINT ELSE $3::BIGINT END
                        AND (j.parent_id IS NULL OR NOT EXISTS (
                            SELECT 1 FROM otp_jobs p WHERE p.id = j.parent_id
                                AND p.state NOT IN ('completed','discarded','cancelled')))
                        AND NOT EXISTS (
                            SELECT 1 FROM otp_jobs c WHERE c.parent_id = j.id
                                AND c.state NOT IN ('completed','discarded','cancelled'))
                    ORDER BY j.finished_at LIMIT $5
                    FOR UPDATE SKIP LOCKED)",
                &[
                    &cutoffs[0].map(Timestamp::as_millis),
                    &cutoffs[1].map(Timestamp::as_millis),
                    &cutoffs[2].map(Timestamp::as_millis),
                    &latest.as_millis(),
                    &limit,
                ],
            )
            .await?;
    }
    pruned.keys = tx
        .execute(
            "DELETE FROM otp_keys WHERE key IN (
                SELECT key FROM otp_keys WHERE expires_at <= $1 LIMIT $2 FOR UPDATE SKIP LOCKED)",
            &[&prune.keys_expired_by.as_millis(), &limit],
        )
        .await?;
    Ok(pruned)
}

async fn delete_tx(tx: &Tx<'_>, id: JobId) -> Result<(), StoreError> {
    let row = tx
        .query_opt(
            "SELECT state, parent_id FROM otp_jobs WHERE id = $1 FOR UPDATE",
            &[&id.0],
        )
        .await?
        .ok_or(StoreError::NotFound(id))?;
    let state = JobState::from_column(&row.try_get::<_, String>(0)?, id.0)?;
    let collector_waits = match row.try_get::<_, Option<i64>>(1)? {
        Some(parent) => match state_of(tx, JobId(parent)).await {
            Ok(parent_state) => !parent_state.is_final(),
            Err(StoreError::NotFound(_)) => false,
            Err(e) => return Err(e),
        },
        None => false,
    };
    let children_unfinished: bool = tx
        .query_one(
            &format!(
                "SELECT EXISTS (SELECT 1 FROM otp_jobs WHERE parent_id = $1
                    AND state NOT IN {FINAL_STATES})"
            ),
            &[&id.0],
        )
        .await?
        .try_get(0)?;
    transition::check_delete(id, state, collector_waits, children_unfinished)?;
    tx.execute("DELETE FROM otp_jobs WHERE id = $1", &[&id.0])
        .await?;
    Ok(())
}

async fn declare_schedules_tx(
    tx: &Tx<'_>,
    schedules: &[ScheduleDecl],
    now: Timestamp,
) -> Result<Vec<ScheduleMark>, StoreError> {
    let mut marks = Vec::with_capacity(schedules.len());
    for d in schedules {
        let row = tx
            .query_one(
                "INSERT INTO otp_schedules (name, spec, next_slot, declared_at, seen_at)
                    VALUES ($1, $2, $3, $4, $4)
                 ON CONFLICT (name) DO UPDATE SET spec = excluded.spec,
                    next_slot = excluded.next_slot, seen_at = excluded.seen_at
                 RETURNING last_slot, declared_at",
                &[
                    &d.name,
                    &d.spec,
                    &d.next_slot.map(Timestamp::as_millis),
                    &now.as_millis(),
                ],
            )
            .await?;
        marks.push(ScheduleMark {
            name: d.name.clone(),
            last_slot: row
                .try_get::<_, Option<i64>>(0)?
                .map(Timestamp::from_millis),
            declared_at: Timestamp::from_millis(row.try_get(1)?),
        });
    }
    Ok(marks)
}

async fn fire_schedule_tx(
    tx: &mut Tx<'_>,
    firing: &Firing,
    now: Timestamp,
) -> Result<Fired, StoreError> {
    // The row lock orders concurrent firings: the second reads the marker the first moved.
    let Some(row) = tx
        .query_opt(
            "SELECT last_slot, last_job FROM otp_schedules WHERE name = $1 FOR UPDATE",
            &[&firing.schedule],
        )
        .await?
    else {
        return Err(StoreError::Invalid(format!(
            "schedule `{}` was never declared",
            firing.schedule
        )));
    };
    let last_slot = row
        .try_get::<_, Option<i64>>(0)?
        .map(Timestamp::from_millis);
    let last_job: Option<i64> = row.try_get(1)?;
    let previous = match last_job {
        Some(id) if !firing.runs.is_empty() => match state_of(tx, JobId(id)).await {
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
        cancel_tx(tx, JobId(id), now).await?;
    }
    let mut jobs = Vec::with_capacity(firing.runs.len());
    if insert {
        for (_, job) in &firing.runs {
            jobs.push(insert_job(tx, job, now, None, None).await?.id);
        }
    }
    tx.execute(
        "UPDATE otp_schedules SET last_slot = $1, last_job = COALESCE($2, last_job),
            fired = fired + $3, missed = missed + $4, next_slot = $6 WHERE name = $5",
        &[
            &firing.through.as_millis(),
            &jobs.last().map(|id| id.0),
            &(jobs.len() as i64),
            &i64::try_from(firing.missed + held_back).unwrap_or(i64::MAX),
            &firing.schedule,
            &firing.next_slot.map(Timestamp::as_millis),
        ],
    )
    .await?;
    Ok(Fired::Done { jobs, held_back })
}

async fn schedules_tx(tx: &Tx<'_>) -> Result<Vec<ScheduleRecord>, StoreError> {
    let rows = tx
        .query(
            "SELECT name, spec, declared_at, seen_at, last_slot, last_job, fired, missed,
                next_slot
             FROM otp_schedules ORDER BY name",
            &[],
        )
        .await?;
    rows.iter()
        .map(|r| {
            Ok(ScheduleRecord {
                name: r.try_get(0)?,
                spec: r.try_get(1)?,
                declared_at: Timestamp::from_millis(r.try_get(2)?),
                seen_at: Timestamp::from_millis(r.try_get(3)?),
                last_slot: r.try_get::<_, Option<i64>>(4)?.map(Timestamp::from_millis),
                last_job: r.try_get::<_, Option<i64>>(5)?.map(JobId),
                fired: r.try_get::<_, i64>(6)?.max(0) as u64,
                missed: r.try_get::<_, i64>(7)?.max(0) as u64,
                next_slot: r.try_get::<_, Option<i64>>(8)?.map(Timestamp::from_millis),
            })
        })
        .collect()
}

async fn unhandled_tx(
    tx: &Tx<'_>,
    queues: &[String],
    names: &[String],
    now: Timestamp,
) -> Result<Vec<(String, u64)>, StoreError> {
    let rows = tx
        .query(
            "SELECT name, COUNT(*) FROM (
                SELECT name FROM otp_jobs WHERE state IN ('scheduled','available','retryable')
                    AND run_at <= $1 AND queue = ANY($2) AND NOT (name = ANY($3)) LIMIT 10000) AS due
             GROUP BY name ORDER BY name",
            &[&now.as_millis(), &queues, &names],
        )
        .await?;
    rows.iter()
        .map(|r| Ok((r.try_get(0)?, r.try_get::<_, i64>(1)?.max(0) as u64)))
        .collect()
}

async fn next_due_tx(
    tx: &Tx<'_>,
    queues: &[String],
    names: &[String],
) -> Result<Option<Timestamp>, StoreError> {
    if queues.is_empty() || names.is_empty() {
        return Ok(None);
    }
    let row = tx
        .query_one(
            "SELECT LEAST(
                (SELECT MIN(run_at) FROM otp_jobs WHERE state IN ('scheduled','available','retryable')
                    AND queue = ANY($1) AND name = ANY($2)),
                (SELECT MIN(lease_expires_at) FROM otp_jobs WHERE state = 'executing'
                    AND queue = ANY($1) AND name = ANY($2)))",
            &[&queues, &names],
        )
        .await?;
    Ok(row
        .try_get::<_, Option<i64>>(0)?
        .map(Timestamp::from_millis))
}

impl Store for PostgresStore {
    fn enqueue(
        &self,
        jobs: Vec<NewJob>,
        now: Timestamp,
    ) -> BoxFuture<'_, Result<Vec<Enqueued>, StoreError>> {
        async move {
            if !jobs.is_empty() && jobs.iter().all(|j| j.options.idempotency_key.is_none()) {
                // Shares an INSERT with the enqueues arriving meanwhile.
                let (reply, answer) = oneshot::channel();
                self.inner
                    .combiner
                    .send(Combined { jobs, now, reply })
                    .map_err(|_| StoreError::Closed)?;
                return answer.await.map_err(|_| StoreError::Closed)?;
            }
            self.enqueue_alone(&jobs, now).await
        }
        .boxed()
    }

    fn enqueue_group(
        &self,
        group: NewGroup,
        now: Timestamp,
    ) -> BoxFuture<'_, Result<GroupIds, StoreError>> {
        async move {
            operation!(self, transaction, |tx| enqueue_group_tx(
                &mut tx, &group, now
            )
            .await?)
        }
        .boxed()
    }

    fn claim(
        &self,
        request: ClaimRequest,
        now: Timestamp,
    ) -> BoxFuture<'_, Result<Vec<ClaimedJob>, StoreError>> {
        async move {
            operation!(self, transaction, |tx| claim_tx(&mut tx, &request, now)
                .await?)
        }
        .boxed()
    }

    fn heartbeat(
        &self,
        leases: Vec<Lease>,
        expires_at: Timestamp,
        _now: Timestamp,
    ) -> BoxFuture<'_, Result<Vec<JobId>, StoreError>> {
        async move {
            operation!(self, autocommit, |tx| heartbeat_tx(
                &tx, &leases, expires_at
            )
            .await?)
        }
        .boxed()
    }

    fn finish(
        &self,
        lease: Lease,
        finish: Finish,
        now: Timestamp,
    ) -> BoxFuture<'_, Result<(), StoreError>> {
        async move {
            operation!(self, transaction, |tx| finish_tx(
                &mut tx, lease, &finish, now
            )
            .await?)
        }
        .boxed()
    }

    fn finish_and_claim(
        &self,
        turn: Turn,
        now: Timestamp,
    ) -> BoxFuture<'_, Result<TurnOutcome, StoreError>> {
        async move { operation!(self, transaction, |tx| turn_tx(&mut tx, &turn, now).await?) }
            .boxed()
    }

    fn give_back(&self, lease: Lease, now: Timestamp) -> BoxFuture<'_, Result<(), StoreError>> {
        async move {
            operation!(self, transaction, |tx| {
                held(&tx, lease).await?;
                put_back(&mut tx, lease.id.0, now, now).await?
            })
        }
        .boxed()
    }

    fn complete_parked(
        &self,
        id: JobId,
        result: String,
        now: Timestamp,
    ) -> BoxFuture<'_, Result<(), StoreError>> {
        async move {
            operation!(self, transaction, |tx| complete_parked_tx(
                &mut tx, id, &result, now
            )
            .await?)
        }
        .boxed()
    }

    fn release(&self, id: JobId, now: Timestamp) -> BoxFuture<'_, Result<(), StoreError>> {
        async move { operation!(self, transaction, |tx| release_tx(&mut tx, id, now).await?) }
            .boxed()
    }

    fn cancel(&self, id: JobId, now: Timestamp) -> BoxFuture<'_, Result<(), StoreError>> {
        async move { operation!(self, transaction, |tx| cancel_tx(&mut tx, id, now).await?) }
            .boxed()
    }

    fn retry(&self, id: JobId, now: Timestamp) -> BoxFuture<'_, Result<(), StoreError>> {
        async move { operation!(self, transaction, |tx| retry_tx(&mut tx, id, now).await?) }.boxed()
    }

    fn get(
        &self,
        id: JobId,
        now: Timestamp,
    ) -> BoxFuture<'_, Result<Option<JobRecord>, StoreError>> {
        async move { operation!(self, autocommit, |tx| get_tx(&tx, id, now).await?) }.boxed()
    }

    fn list(
        &self,
        filter: ListFilter,
        now: Timestamp,
    ) -> BoxFuture<'_, Result<Vec<JobRecord>, StoreError>> {
        async move { operation!(self, autocommit, |tx| list_tx(&tx, &filter, now).await?) }.boxed()
    }

    fn counts(&self, now: Timestamp) -> BoxFuture<'_, Result<Vec<(JobState, u64)>, StoreError>> {
        async move { operation!(self, autocommit, |tx| counts_tx(&tx, now).await?) }.boxed()
    }

    fn next_due(
        &self,
        queues: Vec<String>,
        names: Vec<String>,
    ) -> BoxFuture<'_, Result<Option<Timestamp>, StoreError>> {
        async move {
            operation!(self, autocommit, |tx| next_due_tx(&tx, &queues, &names)
                .await?)
        }
        .boxed()
    }

    fn unhandled(
        &self,
        queues: Vec<String>,
        names: Vec<String>,
        now: Timestamp,
    ) -> BoxFuture<'_, Result<Vec<(String, u64)>, StoreError>> {
        async move {
            operation!(self, autocommit, |tx| unhandled_tx(
                &tx, &queues, &names, now
            )
            .await?)
        }
        .boxed()
    }

    /// A session advisory lock on a connection of the runner's own (taken out of the pool),
    /// then a row in `otp_runners`: the server lets go of the lock when the session ends (the
    /// process died, or its connection broke; then the runner's jobs may run twice, which
    /// fencing keeps safe).
    fn hold_liveness(&self, owner: String) -> BoxFuture<'_, Result<Option<Liveness>, StoreError>> {
        async move {
            let client = self.client().await?;
            let key = format!("{}/{owner}", self.inner.key_prefix);
            if !try_owner_lock(&client, &key).await? {
                return Err(StoreError::Database(format!(
                    "the sign of life of runner `{owner}` is held by another session"
                )));
            }
            client
                .execute(
                    "INSERT INTO otp_runners (owner) VALUES ($1) ON CONFLICT (owner) DO NOTHING",
                    &[&owner],
                )
                .await?;
            // Out of the pool for good: the session lives as long as the runner.
            let session = deadpool_postgres::Object::take(client);
            Ok(Some(Liveness::new(session)))
        }
        .boxed()
    }

    fn prune(&self, prune: Prune, _now: Timestamp) -> BoxFuture<'_, Result<Pruned, StoreError>> {
        async move { operation!(self, transaction, |tx| prune_tx(&tx, &prune).await?) }.boxed()
    }

    fn delete(&self, id: JobId, _now: Timestamp) -> BoxFuture<'_, Result<(), StoreError>> {
        async move { operation!(self, transaction, |tx| delete_tx(&tx, id).await?) }.boxed()
    }

    fn declare_schedules(
        &self,
        schedules: Vec<ScheduleDecl>,
        now: Timestamp,
    ) -> BoxFuture<'_, Result<Vec<ScheduleMark>, StoreError>> {
        async move {
            operation!(self, transaction, |tx| declare_schedules_tx(
                &tx, &schedules, now
            )
            .await?)
        }
        .boxed()
    }

    fn fire_schedule(
        &self,
        firing: Firing,
        now: Timestamp,
    ) -> BoxFuture<'_, Result<Fired, StoreError>> {
        async move {
            operation!(self, transaction, |tx| fire_schedule_tx(
                &mut tx, &firing, now
            )
            .await?)
        }
        .boxed()
    }

    fn schedules(&self) -> BoxFuture<'_, Result<Vec<ScheduleRecord>, StoreError>> {
        async move { operation!(self, autocommit, |tx| schedules_tx(&tx).await?) }.boxed()
    }

    fn rescue(&self, now: Timestamp) -> BoxFuture<'_, Result<Vec<JobId>, StoreError>> {
        async move {
            let client = self.client().await?;
            let owners: Vec<String> = client
                .query("SELECT owner FROM otp_runners", &[])
                .await?
                .iter()
                .map(|r| r.try_get(0))
                .collect::<Result<_, _>>()?;
            let mut rescued = Vec::new();
            for owner in owners {
                let key = format!("{}/{owner}", self.inner.key_prefix);
                // Taken: its owner's session is gone (it died).
                if !try_owner_lock(&client, &key).await? {
                    continue;
                }
                // Held by us until unlocked below: no other rescuer acts on this owner at once.
                let ended = async {
                    let rows = client
                        .query(
                            "UPDATE otp_jobs SET lease_expires_at = $1
                             WHERE state = 'executing' AND lease_owner = $2 AND lease_expires_at > $1
                             RETURNING id",
                            &[&now.as_millis(), &owner],
                        )
                        .await?;
                    client
                        .execute("DELETE FROM otp_runners WHERE owner = $1", &[&owner])
                        .await?;
                    rows.iter()
                        .map(|r| Ok(JobId(r.try_get(0)?)))
                        .collect::<Result<Vec<_>, StoreError>>()
                }
                .await;
                let unlocked = client
                    .execute(
                        "SELECT pg_advisory_unlock($1, hashtext($2))",
                        &[&OWNER_LOCK_CLASS, &key],
                    )
                    .await;
                let ended = ended?;
                unlocked?;
                if !ended.is_empty() {
                    self.notify_others();
                }
                rescued.extend(ended);
            }
            Ok(rescued)
        }
        .boxed()
    }

    fn wakeups(&self) -> Option<watch::Receiver<u64>> {
        Some(self.inner.wake.subscribe())
    }
}
