//! Crash tests for the durable job queue: a child process runs a runner over a SQLite file and
//! is killed with SIGKILL (or aborts itself inside the store), then restarted; the parent
//! checks what the child logged and what the database holds.
//!
//! The child is this test binary, re-executed with `--exact child_process` and environment
//! variables naming its scenario, database, log and run number (see [`child_process`]). It
//! appends one line per event to a log file (`<run> <event> <fields…>`, one `write` each, so a
//! line is never torn; SIGKILL keeps the page cache, so no fsync is needed). The parent reads
//! the log while the child runs, and opens the database itself once the child is dead.
//!
//! Every wait in the parent is bounded ([`DEADLINE`]) and polls an observable condition: a log
//! line (when the child must wait for its own store to show something, it logs what it saw),
//! or the child's exit. The one wall-clock wait is the downtime of `not_before_survives_downtime`,
//! which is the thing under test. Children are killed and reaped even when an assertion fails
//! ([`Proc`]'s `Drop`), and exit on their own if the parent goes away.
//!
//! Kill points are random: set `JOBS_CRASH_SEED` to replay a run (each test prints its seed).

#![cfg(feature = "sqlite")]

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{File, OpenOptions};
use std::future::Future;
use std::io::Write;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use futures::future::BoxFuture;
use ractor_otp::jobs::{
    ClaimRequest, ClaimedJob, Enqueued, Finish, Group, GroupIds, Job, JobContext, JobError, JobId,
    JobOptions, JobRecord, JobState, Jobs, Lease, ListFilter, NewGroup, NewJob, RetryBackoff,
    RunnerBuilder, SqliteStore, Store, StoreError, Timestamp,
};
use serde::{Deserialize, Serialize};

// ---------------------------------------------------------------------------------------------
// Settings.
// ---------------------------------------------------------------------------------------------

/// The longest any wait in the parent lasts before the test fails.
const DEADLINE: Duration = Duration::from_secs(60);
/// How often the parent looks at the child's log or the database.
const POLL_EVERY: Duration = Duration::from_millis(20);
/// The child runner's lease: short, so a killed run's job is recovered quickly.
const LEASE: Duration = Duration::from_secs(1);
const HEARTBEAT: Duration = Duration::from_millis(200);
const RUNNER_POLL: Duration = Duration::from_millis(100);
/// A child whose parent is gone, or that lives longer than this, exits on its own.
const CHILD_LIFETIME: Duration = Duration::from_secs(180);

const ENV_SCENARIO: &str = "JOBS_CRASH_SCENARIO";
const ENV_DB: &str = "JOBS_CRASH_DB";
const ENV_LOG: &str = "JOBS_CRASH_LOG";
const ENV_RUN: &str = "JOBS_CRASH_RUN";
const ENV_MODE: &str = "JOBS_CRASH_MODE";
const ENV_DIR: &str = "JOBS_CRASH_DIR";
const ENV_SEED: &str = "JOBS_CRASH_SEED";

fn now_ms() -> i64 {
    Timestamp::from(SystemTime::now()).as_millis()
}

fn lease_ms() -> i64 {
    LEASE.as_millis() as i64
}

// ---------------------------------------------------------------------------------------------
// Job types.
// ---------------------------------------------------------------------------------------------

/// Sleeps `ms`, returns `n * 2`.
#[derive(Serialize, Deserialize)]
struct Work {
    n: u32,
    ms: u64,
}

impl Job for Work {
    const NAME: &'static str = "work";
    type Output = u32;
}

/// Enqueued in a loop, never run.
#[derive(Serialize, Deserialize)]
struct Item {
    round: u32,
    n: u32,
}

impl Job for Item {
    const NAME: &'static str = "item";
    type Output = ();
}

/// Fails attempts 1 and 2, succeeds on 3.
#[derive(Serialize, Deserialize)]
struct Flaky;

impl Job for Flaky {
    const NAME: &'static str = "flaky";
    type Output = u32;
}

/// Job A: enqueues a [`Second`] with its completion.
#[derive(Serialize, Deserialize)]
struct First;

impl Job for First {
    const NAME: &'static str = "first";
    type Output = ();
}

/// Job B: the follow-up.
#[derive(Serialize, Deserialize)]
struct Second;

impl Job for Second {
    const NAME: &'static str = "second";
    type Output = ();
}

/// A fan-out child; fails its first attempt when `n % 7 == 0`.
#[derive(Serialize, Deserialize)]
struct Piece {
    n: u32,
}

impl Job for Piece {
    const NAME: &'static str = "piece";
    type Output = u32;
}

/// The fan-in collector: how many children completed.
#[derive(Serialize, Deserialize)]
struct Gather;

impl Job for Gather {
    const NAME: &'static str = "gather";
    type Output = u32;
}

const FAN_OUT: u32 = 1000;
const PIECE_FAILURE: &str = "first attempt fails";

// ---------------------------------------------------------------------------------------------
// The child side.
// ---------------------------------------------------------------------------------------------

/// The child's append-only event log.
struct Log {
    file: Mutex<File>,
    run: u32,
}

impl Log {
    fn line(&self, event: impl std::fmt::Display) {
        let line = format!("{} {event}\n", self.run);
        let mut file = self.file.lock().unwrap_or_else(|e| e.into_inner());
        file.write_all(line.as_bytes())
            .expect("writing the crash log");
    }
}

struct ChildEnv {
    db: PathBuf,
    dir: PathBuf,
    mode: String,
    log: Arc<Log>,
}

/// The child role. Run normally (no [`ENV_SCENARIO`]) it does nothing; re-executed by a test,
/// it plays that test's scenario until it is killed.
#[test]
fn child_process() {
    let Ok(scenario) = std::env::var(ENV_SCENARIO) else {
        return;
    };
    let var = |name: &str| std::env::var(name).unwrap_or_else(|_| panic!("{name} is not set"));
    let run: u32 = var(ENV_RUN).parse().expect("run number");
    let file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(var(ENV_LOG))
        .expect("opening the crash log");
    let env = ChildEnv {
        db: PathBuf::from(var(ENV_DB)),
        dir: PathBuf::from(var(ENV_DIR)),
        mode: var(ENV_MODE),
        log: Arc::new(Log {
            file: Mutex::new(file),
            run,
        }),
    };
    watchdog();
    env.log
        .line(format_args!("boot {} {}", std::process::id(), now_ms()));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("child runtime");
    runtime.block_on(async move {
        match scenario.as_str() {
            "kill_mid_job" => child_kill_mid_job(env).await,
            "acked_enqueues" => child_acked_enqueues(env).await,
            "not_before" => child_not_before(env).await,
            "resource" => child_resource(env).await,
            "retry_backoff" => child_retry_backoff(env).await,
            "follow_up" => child_follow_up(env).await,
            "fan_in" => child_fan_in(env).await,
            "rescue" => child_rescue(env).await,
            "schedule" => child_schedule(env).await,
            other => panic!("unknown crash scenario `{other}`"),
        }
        // Keep running (the runner, the monitor) until the parent kills us.
        std::future::pending::<()>().await;
    });
}

/// Exits the child if its parent goes away (it would otherwise run forever) or it lives too
/// long.
fn watchdog() {
    let parent = std::os::unix::process::parent_id();
    let born = Instant::now();
    std::thread::spawn(move || loop {
        std::thread::sleep(Duration::from_millis(200));
        if std::os::unix::process::parent_id() != parent || born.elapsed() > CHILD_LIFETIME {
            std::process::exit(3);
        }
    });
}

async fn open_jobs(env: &ChildEnv) -> Jobs {
    Jobs::new(
        SqliteStore::open(&env.db)
            .await
            .expect("child: opening the store"),
    )
}

fn runner(jobs: &Jobs) -> RunnerBuilder {
    jobs.runner()
        .lease(LEASE)
        .heartbeat(HEARTBEAT)
        .poll_interval(RUNNER_POLL)
}

/// A runner with the [`Work`] handler: logs `start <id> <attempt> <ms>`, sleeps, logs
/// `end <id> <attempt> <ms>`.
fn work_runner(jobs: &Jobs, log: &Arc<Log>) -> RunnerBuilder {
    let log = log.clone();
    runner(jobs).handler(move |job: Work, ctx: JobContext| {
        let log = log.clone();
        async move {
            log.line(format_args!(
                "start {} {} {}",
                ctx.id().0,
                ctx.attempt(),
                now_ms()
            ));
            tokio::time::sleep(Duration::from_millis(job.ms)).await;
            log.line(format_args!(
                "end {} {} {}",
                ctx.id().0,
                ctx.attempt(),
                now_ms()
            ));
            Ok(job.n * 2)
        }
    })
}

/// Logs `done` once `check` holds (checked every 50 ms through the child's own handle).
fn done_when<F, Fut>(jobs: &Jobs, log: &Arc<Log>, check: F)
where
    F: Fn(Jobs) -> Fut + Send + 'static,
    Fut: Future<Output = bool> + Send,
{
    let jobs = jobs.clone();
    let log = log.clone();
    tokio::spawn(async move {
        loop {
            if check(jobs.clone()).await {
                log.line("done");
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    });
}

async fn completed(jobs: &Jobs) -> u64 {
    jobs.count(JobState::Completed)
        .await
        .expect("child: counts")
}

async fn is_completed(jobs: &Jobs, id: JobId) -> bool {
    let record = jobs.get(id).await.expect("child: get");
    record.is_some_and(|r| r.state == JobState::Completed)
}

/// Enqueues `jobs` in one transaction (each with an idempotency key, so a restart adds
/// nothing) and logs `enqueued <new> <duplicates>`.
async fn enqueue_once(jobs: &Jobs, log: &Log, batch: Vec<NewJob>) {
    let done = jobs
        .store()
        .enqueue(batch, jobs.now())
        .await
        .expect("child: enqueue");
    let dup = done.iter().filter(|e| e.duplicate).count();
    log.line(format_args!("enqueued {} {dup}", done.len() - dup));
}

/// 200 [`Work`] jobs of 5–20 ms, 8 at a time.
async fn child_kill_mid_job(env: ChildEnv) {
    let jobs = open_jobs(&env).await;
    let batch = (0..200u32)
        .map(|n| {
            let work = Work {
                n,
                ms: 5 + u64::from(n * 7 % 16),
            };
            NewJob::new(
                &work,
                JobOptions::new().idempotency_key(format!("work-{n}")),
            )
        })
        .collect::<Result<Vec<_>, _>>()
        .expect("child: jobs");
    enqueue_once(&jobs, &env.log, batch).await;
    work_runner(&jobs, &env.log)
        .concurrency(8)
        .spawn()
        .await
        .expect("child: runner");
    done_when(&jobs, &env.log, |jobs| async move {
        completed(&jobs).await == 200
    });
}

/// The lease of the rescue scenario: long, so a rerun soon after a restart can only be the
/// rescue's doing.
const RESCUE_LEASE: Duration = Duration::from_secs(30);

/// The schema a PostgreSQL scenario works in: named after its test directory.
#[cfg_attr(not(feature = "postgres"), allow(dead_code))]
fn pg_schema(dir: &Path) -> String {
    let name: String = dir
        .file_name()
        .map(|n| n.to_string_lossy().to_lowercase())
        .unwrap_or_default()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    format!("c{}", &name[name.len().saturating_sub(38)..])
}

/// One long [`Work`] job under a 30 s lease, on SQLite or (mode `postgres`) PostgreSQL.
async fn child_rescue(env: ChildEnv) {
    let jobs = if env.mode == "postgres" {
        #[cfg(feature = "postgres")]
        {
            let url = std::env::var("OTP_PG_URL").expect("child: OTP_PG_URL");
            let store = ractor_otp::jobs::PostgresStore::options()
                .schema(pg_schema(&env.dir))
                .connect(&url)
                .await
                .expect("child: connecting");
            Jobs::new(store)
        }
        #[cfg(not(feature = "postgres"))]
        unreachable!("the PostgreSQL scenario runs with the `postgres` feature")
    } else {
        open_jobs(&env).await
    };
    let job = NewJob::new(
        &Work { n: 1, ms: 600_000 },
        JobOptions::new().idempotency_key("long"),
    )
    .expect("child: job");
    enqueue_once(&jobs, &env.log, vec![job]).await;
    work_runner(&jobs, &env.log)
        .lease(RESCUE_LEASE)
        .heartbeat(Duration::from_secs(5))
        .spawn()
        .await
        .expect("child: runner");
}

/// A schedule's job: its slot.
#[derive(Serialize, Deserialize)]
struct Beat {
    at: i64,
}

impl Job for Beat {
    const NAME: &'static str = "beat";
    type Output = ();
}

/// A schedule every second whose jobs log `beat <id> <attempt> <slot> <ms>` and take 300 ms.
async fn child_schedule(env: ChildEnv) {
    let jobs = open_jobs(&env).await;
    let log = env.log.clone();
    runner(&jobs)
        .handler(move |job: Beat, ctx: JobContext| {
            let log = log.clone();
            async move {
                log.line(format_args!(
                    "beat {} {} {} {}",
                    ctx.id().0,
                    ctx.attempt(),
                    job.at,
                    now_ms()
                ));
                tokio::time::sleep(Duration::from_millis(300)).await;
                log.line(format_args!(
                    "end {} {} {}",
                    ctx.id().0,
                    ctx.attempt(),
                    now_ms()
                ));
                Ok(())
            }
        })
        .schedule(
            ractor_otp::jobs::Schedule::every("beat", Duration::from_secs(1))
                .expect("child: schedule"),
            |slot| Beat {
                at: slot.at.as_millis(),
            },
        )
        .spawn()
        .await
        .expect("child: runner");
}

/// Enqueues forever (default durability), logging `acked <id> <n>` after each enqueue returns.
async fn child_acked_enqueues(env: ChildEnv) {
    let jobs = open_jobs(&env).await;
    for n in 0.. {
        let queued = jobs
            .enqueue(Item {
                round: env.log.run,
                n,
            })
            .await
            .expect("child: enqueue");
        env.log.line(format_args!("acked {} {n}", queued.id.0));
    }
}

/// One [`Work`] job not before now + 1.5 s (first run only), and a runner.
async fn child_not_before(env: ChildEnv) {
    let jobs = open_jobs(&env).await;
    let at = jobs.now().after(Duration::from_millis(1500));
    let options = JobOptions::new()
        .not_before(at)
        .idempotency_key("not-before");
    let queued = jobs
        .enqueue_with(Work { n: 7, ms: 5 }, options)
        .await
        .expect("child: enqueue");
    env.log.line(format_args!(
        "enqueued {} {} {}",
        queued.id.0,
        at.as_millis(),
        queued.duplicate
    ));
    work_runner(&jobs, &env.log)
        .spawn()
        .await
        .expect("child: runner");
    let id = queued.id;
    done_when(&jobs, &env.log, move |jobs| async move {
        is_completed(&jobs, id).await
    });
}

/// 30 [`Work`] jobs of 20 ms holding `printer` (capacity from the mode), 4 runner slots.
async fn child_resource(env: ChildEnv) {
    let capacity: u32 = env.mode.parse().expect("capacity");
    let jobs = open_jobs(&env).await;
    let batch = (0..30u32)
        .map(|n| {
            let options = JobOptions::new()
                .resource("printer", capacity)
                .idempotency_key(format!("printer-{n}"));
            NewJob::new(&Work { n, ms: 20 }, options)
        })
        .collect::<Result<Vec<_>, _>>()
        .expect("child: jobs");
    enqueue_once(&jobs, &env.log, batch).await;
    // The dead run's place is freed here (its runner's sign of life is gone): logged, so the
    // parent knows when the store let go of it. The runner's own rescue finds nothing more.
    jobs.store()
        .rescue(jobs.now())
        .await
        .expect("child: rescue");
    env.log.line(format_args!("rescued {}", now_ms()));
    work_runner(&jobs, &env.log)
        .concurrency(4)
        .spawn()
        .await
        .expect("child: runner");
    done_when(&jobs, &env.log, |jobs| async move {
        completed(&jobs).await == 30
    });
}

/// A [`Flaky`] job (3 attempts, 1 s fixed backoff) logging `start`, `fail` and `end`.
async fn child_retry_backoff(env: ChildEnv) {
    let jobs = open_jobs(&env).await;
    let options = JobOptions::new()
        .max_attempts(3)
        .backoff(RetryBackoff::fixed(Duration::from_secs(1)))
        .idempotency_key("flaky");
    let queued = jobs
        .enqueue_with(Flaky, options)
        .await
        .expect("child: enqueue");
    env.log.line(format_args!("enqueued {}", queued.id.0));
    let log = env.log.clone();
    runner(&jobs)
        .handler(move |_: Flaky, ctx: JobContext| {
            let log = log.clone();
            async move {
                let (id, attempt) = (ctx.id().0, ctx.attempt());
                log.line(format_args!("start {id} {attempt} {}", now_ms()));
                if attempt < 3 {
                    log.line(format_args!("fail {id} {attempt} {}", now_ms()));
                    return Err(JobError::retry(format!("attempt {attempt} fails")));
                }
                log.line(format_args!("end {id} {attempt} {}", now_ms()));
                Ok(attempt)
            }
        })
        .spawn()
        .await
        .expect("child: runner");
    let id = queued.id;
    // Tells the parent when a failure is committed: `retryable <id> <attempt>`.
    let (watched, log) = (jobs.clone(), env.log.clone());
    tokio::spawn(async move {
        let mut seen = 0;
        loop {
            let record = watched.get(id).await.expect("child: get").expect("the job");
            if record.state == JobState::Retryable && record.attempt > seen {
                seen = record.attempt;
                log.line(format_args!("retryable {} {seen}", id.0));
            }
            if record.state.is_final() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    });
    done_when(&jobs, &env.log, move |jobs| async move {
        is_completed(&jobs, id).await
    });
}

/// A store that aborts the process in the `finish` that completes a [`First`] (recognised by
/// its [`Second`] follow-up): before the inner store is called, or after it committed.
struct CrashStore {
    inner: SqliteStore,
    /// `Some("before" | "after")` while armed.
    abort: Option<&'static str>,
    log: Arc<Log>,
}

impl Store for CrashStore {
    fn enqueue(
        &self,
        jobs: Vec<NewJob>,
        now: Timestamp,
    ) -> BoxFuture<'_, Result<Vec<Enqueued>, StoreError>> {
        self.inner.enqueue(jobs, now)
    }

    fn enqueue_group(
        &self,
        group: NewGroup,
        now: Timestamp,
    ) -> BoxFuture<'_, Result<GroupIds, StoreError>> {
        self.inner.enqueue_group(group, now)
    }

    fn claim(
        &self,
        request: ClaimRequest,
        now: Timestamp,
    ) -> BoxFuture<'_, Result<Vec<ClaimedJob>, StoreError>> {
        self.inner.claim(request, now)
    }

    fn heartbeat(
        &self,
        leases: Vec<Lease>,
        expires_at: Timestamp,
        now: Timestamp,
    ) -> BoxFuture<'_, Result<Vec<JobId>, StoreError>> {
        self.inner.heartbeat(leases, expires_at, now)
    }

    fn finish(
        &self,
        lease: Lease,
        finish: Finish,
        now: Timestamp,
    ) -> BoxFuture<'_, Result<(), StoreError>> {
        let target = matches!(
            &finish,
            Finish::Completed { follow_ups, .. }
                if follow_ups.iter().any(|job| job.name == Second::NAME)
        );
        let abort = if target { self.abort } else { None };
        Box::pin(async move {
            if abort == Some("before") {
                self.log.line(format_args!("abort before {}", lease.id.0));
                std::process::abort();
            }
            let result = self.inner.finish(lease, finish, now).await;
            if abort == Some("after") {
                self.log.line(format_args!(
                    "abort after {} {}",
                    lease.id.0,
                    result.is_ok()
                ));
                std::process::abort();
            }
            result
        })
    }

    fn give_back(&self, lease: Lease, now: Timestamp) -> BoxFuture<'_, Result<(), StoreError>> {
        self.inner.give_back(lease, now)
    }

    fn complete_parked(
        &self,
        id: JobId,
        result: String,
        now: Timestamp,
    ) -> BoxFuture<'_, Result<(), StoreError>> {
        self.inner.complete_parked(id, result, now)
    }

    fn release(&self, id: JobId, now: Timestamp) -> BoxFuture<'_, Result<(), StoreError>> {
        self.inner.release(id, now)
    }

    fn cancel(&self, id: JobId, now: Timestamp) -> BoxFuture<'_, Result<(), StoreError>> {
        self.inner.cancel(id, now)
    }

    fn retry(&self, id: JobId, now: Timestamp) -> BoxFuture<'_, Result<(), StoreError>> {
        self.inner.retry(id, now)
    }

    fn get(
        &self,
        id: JobId,
        now: Timestamp,
    ) -> BoxFuture<'_, Result<Option<JobRecord>, StoreError>> {
        self.inner.get(id, now)
    }

    fn list(
        &self,
        filter: ListFilter,
        now: Timestamp,
    ) -> BoxFuture<'_, Result<Vec<JobRecord>, StoreError>> {
        self.inner.list(filter, now)
    }

    fn counts(&self, now: Timestamp) -> BoxFuture<'_, Result<Vec<(JobState, u64)>, StoreError>> {
        self.inner.counts(now)
    }

    fn next_due(
        &self,
        queues: Vec<String>,
        names: Vec<String>,
    ) -> BoxFuture<'_, Result<Option<Timestamp>, StoreError>> {
        self.inner.next_due(queues, names)
    }
}

/// A [`First`] job enqueueing a [`Second`]; the store aborts in `First`'s completion on the
/// first run (no marker file yet).
async fn child_follow_up(env: ChildEnv) {
    let marker = env.dir.join("armed");
    let armed = !marker.exists();
    if armed {
        File::create(&marker).expect("child: marker");
    }
    let abort = match (armed, env.mode.as_str()) {
        (false, _) => None,
        (true, "before") => Some("before"),
        (true, "after") => Some("after"),
        (true, other) => panic!("unknown mode `{other}`"),
    };
    let inner = SqliteStore::open(&env.db)
        .await
        .expect("child: opening the store");
    let jobs = Jobs::new(CrashStore {
        inner,
        abort,
        log: env.log.clone(),
    });
    let queued = jobs
        .enqueue_with(First, JobOptions::new().idempotency_key("first"))
        .await
        .expect("child: enqueue");
    env.log.line(format_args!(
        "enqueued {} {} {armed}",
        queued.id.0, queued.duplicate
    ));
    let (first_log, second_log) = (env.log.clone(), env.log.clone());
    runner(&jobs)
        .handler(move |_: First, ctx: JobContext| {
            let log = first_log.clone();
            async move {
                log.line(format_args!("start {} {}", ctx.id().0, ctx.attempt()));
                ctx.enqueue(Second)?;
                log.line(format_args!("end {} {}", ctx.id().0, ctx.attempt()));
                Ok(())
            }
        })
        .handler(move |_: Second, ctx: JobContext| {
            let log = second_log.clone();
            async move {
                log.line(format_args!("start {} {}", ctx.id().0, ctx.attempt()));
                log.line(format_args!("end {} {}", ctx.id().0, ctx.attempt()));
                Ok(())
            }
        })
        .spawn()
        .await
        .expect("child: runner");
    let first = queued.id;
    done_when(&jobs, &env.log, move |jobs| async move {
        let seconds = jobs
            .list(ListFilter {
                name: Some(Second::NAME.into()),
                ..ListFilter::default()
            })
            .await
            .expect("child: list");
        is_completed(&jobs, first).await
            && !seconds.is_empty()
            && seconds.iter().all(|r| r.state == JobState::Completed)
    });
}

/// A fan-out of [`FAN_OUT`] pieces (every seventh fails its first attempt; 100 ms backoff)
/// and a [`Gather`] collector logging `collect <children> <ok>`.
async fn child_fan_in(env: ChildEnv) {
    let jobs = open_jobs(&env).await;
    let piece = JobOptions::new()
        .max_attempts(5)
        .backoff(RetryBackoff::fixed(Duration::from_millis(100)));
    let group = (0..FAN_OUT)
        .fold(Group::new(), |g, n| {
            g.child_with(Piece { n }, piece.clone())
        })
        .collector_with(Gather, JobOptions::new().idempotency_key("gather"));
    let ids = jobs.enqueue_group(group).await.expect("child: enqueue");
    env.log.line(format_args!(
        "enqueued {} {}",
        ids.collector.0,
        ids.children.len()
    ));
    let (piece_log, gather_log) = (env.log.clone(), env.log.clone());
    runner(&jobs)
        .concurrency(16)
        .handler(move |job: Piece, ctx: JobContext| {
            let log = piece_log.clone();
            async move {
                let (id, attempt) = (ctx.id().0, ctx.attempt());
                log.line(format_args!("start {id} {attempt} {}", now_ms()));
                tokio::time::sleep(Duration::from_millis(1 + u64::from(job.n % 4))).await;
                if job.n.is_multiple_of(7) && attempt == 1 {
                    log.line(format_args!("fail {id} {attempt} {}", now_ms()));
                    return Err(JobError::retry(PIECE_FAILURE));
                }
                log.line(format_args!("end {id} {attempt} {}", now_ms()));
                Ok(job.n)
            }
        })
        .handler(move |_: Gather, ctx: JobContext| {
            let log = gather_log.clone();
            async move {
                let ok = ctx.children().iter().filter(|c| c.result.is_ok()).count();
                log.line(format_args!("collect {} {ok}", ctx.children().len()));
                Ok(ok as u32)
            }
        })
        .spawn()
        .await
        .expect("child: runner");
    let collector = ids.collector;
    done_when(&jobs, &env.log, move |jobs| async move {
        is_completed(&jobs, collector).await
    });
}

// ---------------------------------------------------------------------------------------------
// The parent side.
// ---------------------------------------------------------------------------------------------

/// One line of a child's log.
#[derive(Debug, Clone)]
struct Entry {
    run: u32,
    kind: String,
    args: Vec<String>,
}

impl Entry {
    fn is(&self, kind: &str) -> bool {
        self.kind == kind
    }

    fn int(&self, i: usize) -> i64 {
        self.args
            .get(i)
            .and_then(|a| a.parse().ok())
            .unwrap_or_else(|| panic!("log line {self:?} has no number at {i}"))
    }

    fn key(&self) -> (i64, u32) {
        (self.int(0), self.int(1) as u32)
    }
}

/// Reads the complete lines of a log (a last line without its newline is being written).
fn read_log(path: &Path) -> Vec<Entry> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Vec::new(),
        Err(e) => panic!("reading {}: {e}", path.display()),
    };
    let complete = match text.rfind('\n') {
        Some(end) => &text[..end],
        None => return Vec::new(),
    };
    complete
        .lines()
        .map(|line| {
            let mut words = line.split_whitespace();
            let run = words
                .next()
                .and_then(|w| w.parse().ok())
                .unwrap_or_else(|| panic!("bad log line `{line}`"));
            let kind = words.next().unwrap_or_default().to_owned();
            Entry {
                run,
                kind,
                args: words.map(str::to_owned).collect(),
            }
        })
        .collect()
}

/// A child process; killed and reaped when dropped.
struct Proc {
    child: Option<Child>,
    run: u32,
    output: PathBuf,
}

impl Proc {
    fn exited(&mut self) -> Option<ExitStatus> {
        self.child
            .as_mut()
            .and_then(|c| c.try_wait().ok().flatten())
    }

    /// SIGKILL, reap; returns the time it was dead by.
    fn kill(&mut self) -> i64 {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        now_ms()
    }

    fn output_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.output).unwrap_or_default();
        let start = text.len().saturating_sub(4000);
        let start = (start..text.len())
            .find(|i| text.is_char_boundary(*i))
            .unwrap_or(text.len());
        text[start..].to_owned()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

/// What the parent saw at one kill: the run killed, when it was dead by, and every job in the
/// database afterwards.
struct Kill {
    run: u32,
    at: i64,
    jobs: Vec<JobRecord>,
}

impl Kill {
    /// The runs that were executing when the child died: (id, attempt) → lease expiry.
    fn executing(&self) -> BTreeMap<(i64, u32), i64> {
        executing(&self.jobs)
    }
}

fn executing(jobs: &[JobRecord]) -> BTreeMap<(i64, u32), i64> {
    jobs.iter()
        .filter(|r| r.state == JobState::Executing)
        .map(|r| {
            let expiry = r.lease_expires_at.expect("an executing job has a lease");
            ((r.id.0, r.attempt), expiry.as_millis())
        })
        .collect()
}

/// One test's directory, database, log and child runs.
struct Case {
    name: String,
    dir: PathBuf,
    db: PathBuf,
    log: PathBuf,
    next_run: u32,
    seed: u64,
}

impl Case {
    fn new(name: &str) -> Case {
        let dir = std::env::temp_dir().join(format!(
            "ractor-otp-jobs-crash-{}-{name}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("creating the test directory");
        let seed = std::env::var(ENV_SEED)
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| fastrand::u64(..));
        eprintln!(
            "{name}: seed {seed} ({ENV_SEED} to replay), dir {}",
            dir.display()
        );
        Case {
            name: name.to_owned(),
            db: dir.join("jobs.sqlite3"),
            log: dir.join("events.log"),
            dir,
            next_run: 0,
            seed,
        }
    }

    fn rng(&self) -> fastrand::Rng {
        fastrand::Rng::with_seed(self.seed)
    }

    /// Starts the next run of the child for `scenario`.
    fn spawn(&mut self, scenario: &str, mode: &str) -> Proc {
        let run = self.next_run;
        self.next_run += 1;
        let output = self.dir.join(format!("child-{run}.out"));
        let out = File::create(&output).expect("child output file");
        let err = out.try_clone().expect("child output file");
        let child = Command::new(std::env::current_exe().expect("current_exe"))
            .args([
                "--exact",
                "child_process",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(ENV_SCENARIO, scenario)
            .env(ENV_DB, &self.db)
            .env(ENV_LOG, &self.log)
            .env(ENV_RUN, run.to_string())
            .env(ENV_MODE, mode)
            .env(ENV_DIR, &self.dir)
            .current_dir(&self.dir)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .expect("spawning the child");
        Proc {
            child: Some(child),
            run,
            output,
        }
    }

    fn log(&self) -> Vec<Entry> {
        read_log(&self.log)
    }

    /// The end of the log and the child's output, for failure messages.
    fn report(&self, proc: &Proc) -> String {
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        let tail: Vec<&str> = log.lines().rev().take(30).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        format!(
            "--- last log lines ({}):\n{}\n--- child run {} output:\n{}",
            self.log.display(),
            tail.join("\n"),
            proc.run,
            proc.output_tail()
        )
    }

    /// Polls the log until `ready` answers; fails if the child exits or [`DEADLINE`] passes.
    fn wait_log<T>(
        &self,
        proc: &mut Proc,
        what: &str,
        mut ready: impl FnMut(&[Entry]) -> Option<T>,
    ) -> T {
        let deadline = Instant::now() + DEADLINE;
        loop {
            if let Some(t) = ready(&self.log()) {
                return t;
            }
            if let Some(status) = proc.exited() {
                panic!(
                    "{}: child run {} exited ({status}) while the parent waited for {what}\n{}",
                    self.name,
                    proc.run,
                    self.report(proc)
                );
            }
            if Instant::now() >= deadline {
                panic!(
                    "{}: no {what} within {DEADLINE:?}\n{}",
                    self.name,
                    self.report(proc)
                );
            }
            std::thread::sleep(POLL_EVERY);
        }
    }

    /// Waits for the child's `done` line (its own view of the database says it is finished).
    fn wait_done(&self, proc: &mut Proc) {
        let run = proc.run;
        self.wait_log(proc, "`done`", |log| {
            log.iter()
                .any(|e| e.run == run && e.is("done"))
                .then_some(())
        });
    }

    /// Waits for the child to exit on its own (it aborts itself).
    fn wait_exit(&self, proc: &mut Proc, what: &str) -> ExitStatus {
        let deadline = Instant::now() + DEADLINE;
        loop {
            if let Some(status) = proc.exited() {
                proc.child = None;
                return status;
            }
            if Instant::now() >= deadline {
                panic!(
                    "{}: the child did not exit ({what}) within {DEADLINE:?}\n{}",
                    self.name,
                    self.report(proc)
                );
            }
            std::thread::sleep(POLL_EVERY);
        }
    }

    /// Opens the database in this process and runs `f` on it.
    fn db<T, F, Fut>(&self, f: F) -> T
    where
        F: FnOnce(Jobs) -> Fut,
        Fut: Future<Output = T>,
    {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("parent runtime");
        runtime.block_on(async {
            let store = SqliteStore::open(&self.db)
                .await
                .expect("parent: opening the store");
            f(Jobs::new(store)).await
        })
    }

    /// Every job in the database.
    fn all_jobs(&self) -> Vec<JobRecord> {
        self.db(|jobs| async move { all_jobs(&jobs).await })
    }

    /// Kills the child and reads the database it left.
    fn kill(&self, mut proc: Proc) -> Kill {
        let at = proc.kill();
        Kill {
            run: proc.run,
            at,
            jobs: self.all_jobs(),
        }
    }
}

impl Drop for Case {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("{}: kept {} for inspection", self.name, self.dir.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

async fn all_jobs(jobs: &Jobs) -> Vec<JobRecord> {
    jobs.list(ListFilter {
        limit: Some(1_000_000),
        ..ListFilter::default()
    })
    .await
    .expect("parent: list")
}

/// Starts and ends of runs in a log, by (job id, attempt): (run, unix ms).
#[derive(Default)]
struct Runs {
    starts: BTreeMap<(i64, u32), (u32, i64)>,
    ends: BTreeMap<(i64, u32), (u32, i64)>,
}

impl Runs {
    fn of(log: &[Entry], end_kinds: &[&str]) -> Runs {
        let mut runs = Runs::default();
        for e in log {
            let slot = if e.is("start") {
                &mut runs.starts
            } else if end_kinds.iter().any(|k| e.is(k)) {
                &mut runs.ends
            } else {
                continue;
            };
            let previous = slot.insert(e.key(), (e.run, e.int(2)));
            assert!(
                previous.is_none(),
                "job {} attempt {} logged `{}` twice: a claim handed out the same attempt twice",
                e.int(0),
                e.int(1),
                e.kind
            );
        }
        runs
    }

    fn attempts_of(&self, id: i64) -> Vec<u32> {
        self.starts
            .range((id, 0)..=(id, u32::MAX))
            .map(|((_, a), _)| *a)
            .collect()
    }
}

fn ended_ids(log: &[Entry]) -> BTreeSet<i64> {
    log.iter()
        .filter(|e| e.is("end"))
        .map(|e| e.int(0))
        .collect()
}

fn payload<T: serde::de::DeserializeOwned>(record: &JobRecord) -> T {
    serde_json::from_str(&record.payload).expect("payload")
}

// ---------------------------------------------------------------------------------------------
// 1. Killed mid-job: only the runs that were in flight run again.
// ---------------------------------------------------------------------------------------------

#[test]
fn kill_mid_job_only_running_jobs_run_twice() {
    let mut case = Case::new("kill_mid_job");
    let mut rng = case.rng();
    let thresholds = [rng.usize(20..50), rng.usize(80..110), rng.usize(140..170)];
    let mut kills = Vec::new();
    for threshold in thresholds {
        let mut proc = case.spawn("kill_mid_job", "");
        case.wait_log(&mut proc, &format!("{threshold} finished jobs"), |log| {
            (ended_ids(log).len() >= threshold).then_some(())
        });
        kills.push(case.kill(proc));
    }
    let mut proc = case.spawn("kill_mid_job", "");
    case.wait_done(&mut proc);
    let last = case.kill(proc);
    let log = case.log();
    let runs = Runs::of(&log, &["end"]);

    let enqueued: Vec<(u32, i64, i64)> = log
        .iter()
        .filter(|e| e.is("enqueued"))
        .map(|e| (e.run, e.int(0), e.int(1)))
        .collect();
    assert_eq!(
        enqueued,
        [(0, 200, 0), (1, 0, 200), (2, 0, 200), (3, 0, 200)],
        "the jobs are enqueued once; restarts find them by idempotency key"
    );

    // Every run in flight at a kill: claimed, its result not committed.
    let mut lost: BTreeSet<(i64, u32)> = BTreeSet::new();
    let mut ended_not_committed = 0;
    for kill in &kills {
        let executing = kill.executing();
        for (key, (run, _)) in &runs.starts {
            if *run == kill.run && !runs.ends.contains_key(key) {
                assert!(
                    executing.contains_key(key),
                    "job {key:?} started in run {run} and never ended, yet the database after \
                     the kill does not show it executing"
                );
            }
        }
        ended_not_committed += executing
            .keys()
            .filter(|k| runs.ends.contains_key(k))
            .count();
        // What the database had completed at the kill never runs again.
        for record in kill.jobs.iter().filter(|r| r.state == JobState::Completed) {
            for attempt in runs.attempts_of(record.id.0) {
                let (run, _) = runs.starts[&(record.id.0, attempt)];
                assert!(
                    run <= kill.run,
                    "{} was completed when run {} was killed, yet started again (attempt \
                     {attempt}) in run {run}",
                    record.id,
                    kill.run
                );
            }
        }
        lost.extend(executing.into_keys());
    }

    let records = &last.jobs;
    assert_eq!(records.len(), 200, "exactly the 200 enqueued jobs exist");
    let mut ran_again = 0;
    for record in records {
        let id = record.id.0;
        let work: Work = payload(record);
        assert_eq!(record.state, JobState::Completed, "{record:?}");
        assert_eq!(
            record.result.as_deref(),
            Some((work.n * 2).to_string().as_str())
        );
        let final_attempt = record.attempt;
        assert!(
            runs.ends.contains_key(&(id, final_attempt)),
            "{}: the completing attempt {final_attempt} was never logged",
            record.id
        );
        // Every earlier attempt was a run in flight at a kill (lost with its lease).
        for attempt in 1..final_attempt {
            assert!(
                lost.contains(&(id, attempt)),
                "{} attempt {attempt} was not in flight at any kill, yet the job ran again \
                 (attempts {:?}, errors {:?})",
                record.id,
                runs.attempts_of(id),
                record.errors
            );
        }
        let errors: Vec<u32> = record.errors.iter().map(|e| e.attempt).collect();
        assert_eq!(errors, (1..final_attempt).collect::<Vec<_>>(), "{record:?}");
        assert!(
            record.errors.iter().all(|e| e.error.contains("lease")),
            "only lost leases fail these jobs: {:?}",
            record.errors
        );
        if final_attempt > 1 {
            ran_again += 1;
        }
    }
    assert!(
        ran_again > 0,
        "no kill caught a job in flight: the scenario tested nothing"
    );
    eprintln!(
        "kill_mid_job: {ran_again} jobs ran again, {} runs lost at kills ({ended_not_committed} \
         of them had logged `end` but not committed)",
        lost.len()
    );
}

// ---------------------------------------------------------------------------------------------
// 2. Acknowledged enqueues survive kill -9.
// ---------------------------------------------------------------------------------------------

#[test]
fn acknowledged_enqueues_survive_kill_9() {
    const ROUNDS: u32 = 12;
    let mut case = Case::new("acked_enqueues");
    let mut rng = case.rng();
    let mut acked_total = 0;
    for round in 0..ROUNDS {
        let mut proc = case.spawn("acked_enqueues", "");
        assert_eq!(proc.run, round);
        let target = rng.usize(1..=40);
        case.wait_log(&mut proc, &format!("{target} acks"), |log| {
            let acks = log.iter().filter(|e| e.run == round && e.is("acked"));
            (acks.count() >= target).then_some(())
        });
        let kill = case.kill(proc);
        let log = case.log();
        let acked: Vec<(u32, i64, i64)> = log
            .iter()
            .filter(|e| e.is("acked"))
            .map(|e| (e.run, e.int(0), e.int(1)))
            .collect();
        let stored: BTreeMap<i64, Item> = kill
            .jobs
            .iter()
            .map(|r| (r.id.0, payload::<Item>(r)))
            .collect();
        for (run, id, n) in &acked {
            let item = stored.get(id).unwrap_or_else(|| {
                panic!(
                    "round {round}: job#{id} (run {run}, item {n}) was acknowledged but is not \
                     in the database after kill -9"
                )
            });
            assert_eq!((item.round, i64::from(item.n)), (*run, *n), "job#{id}");
        }
        // Each round's rows are items 0..k: the acked ones and at most one whose ack the kill
        // cut off.
        for r in 0..=round {
            let acks = acked.iter().filter(|(run, ..)| *run == r).count();
            let mut rows: Vec<u32> = stored
                .values()
                .filter(|i| i.round == r)
                .map(|i| i.n)
                .collect();
            rows.sort_unstable();
            assert_eq!(
                rows,
                (0..rows.len() as u32).collect::<Vec<_>>(),
                "round {r}: items must be stored without gaps"
            );
            assert!(
                rows.len() == acks || rows.len() == acks + 1,
                "round {r}: {acks} acked, {} stored",
                rows.len()
            );
        }
        acked_total = acked.len();
    }
    eprintln!("acked_enqueues: {acked_total} acknowledged enqueues over {ROUNDS} kills, all kept");
}

// ---------------------------------------------------------------------------------------------
// Extra: a second process opens the store while the first one writes.
// ---------------------------------------------------------------------------------------------

/// Stores are shared between processes ("at most `capacity` jobs … across every process
/// sharing the store", runners "elsewhere"): opening one while another process commits must
/// wait for the lock like every other operation, not fail.
#[test]
fn the_store_opens_while_another_process_writes() {
    const OPENS: usize = 20;
    let mut case = Case::new("open_while_writing");
    let mut proc = case.spawn("acked_enqueues", "");
    case.wait_log(&mut proc, "5 acks", |log| {
        (log.iter().filter(|e| e.is("acked")).count() >= 5).then_some(())
    });
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("parent runtime");
    let mut failures = Vec::new();
    for _ in 0..OPENS {
        match runtime.block_on(SqliteStore::open(&case.db)) {
            Ok(store) => drop(store),
            Err(e) => failures.push(e.to_string()),
        }
    }
    assert!(
        proc.exited().is_none(),
        "the writer died\n{}",
        case.report(&proc)
    );
    proc.kill();
    assert!(
        failures.is_empty(),
        "{} of {OPENS} opens failed while another process was enqueueing, e.g. `{}`",
        failures.len(),
        failures[0]
    );
}

// ---------------------------------------------------------------------------------------------
// 3. A schedule survives downtime.
// ---------------------------------------------------------------------------------------------

#[test]
fn not_before_survives_downtime() {
    let mut case = Case::new("not_before");
    let mut proc = case.spawn("not_before", "");
    let (id, not_before) = case.wait_log(&mut proc, "`enqueued`", |log| {
        log.iter()
            .find(|e| e.is("enqueued"))
            .map(|e| (e.int(0), e.int(1)))
    });
    let kill = case.kill(proc);
    assert_eq!(kill.jobs.len(), 1, "one job enqueued: {:?}", kill.jobs);
    let record = &kill.jobs[0];
    assert_eq!(record.id.0, id);
    assert_eq!(record.run_at.as_millis(), not_before);
    assert_eq!(record.attempt, 0);
    assert!(
        matches!(record.state, JobState::Scheduled | JobState::Available),
        "{record:?}"
    );
    // The downtime: wait (wall time, the thing under test) until the job is past due.
    let wait = not_before + 200 - now_ms();
    assert!(
        wait <= 1800,
        "not_before is {wait} ms away, more than it was set to"
    );
    if wait > 0 {
        std::thread::sleep(Duration::from_millis(wait as u64));
    }
    let restarted = now_ms();
    let mut proc = case.spawn("not_before", "");
    case.wait_done(&mut proc);
    let last = case.kill(proc);
    let log = case.log();
    let again: Vec<(u32, i64, String)> = log
        .iter()
        .filter(|e| e.is("enqueued"))
        .map(|e| (e.run, e.int(0), e.args[2].clone()))
        .collect();
    assert_eq!(
        again,
        [(0, id, "false".to_owned()), (1, id, "true".to_owned())],
        "the restart finds the job by its idempotency key"
    );
    let starts: Vec<&Entry> = log.iter().filter(|e| e.is("start")).collect();
    assert_eq!(starts.len(), 1, "the job ran exactly once: {starts:?}");
    let start = starts[0];
    assert_eq!((start.run, start.int(0), start.int(1)), (1, id, 1));
    assert!(
        start.int(2) >= not_before,
        "started at {} before not_before {not_before}",
        start.int(2)
    );
    assert!(
        start.int(2) - restarted < 5000,
        "a job past due at restart started {} ms after it",
        start.int(2) - restarted
    );
    let record = &last.jobs[0];
    assert_eq!(record.state, JobState::Completed);
    assert_eq!(record.attempt, 1);
    assert!(record.errors.is_empty(), "{:?}", record.errors);
    assert_eq!(record.result.as_deref(), Some("14"));
}

// ---------------------------------------------------------------------------------------------
// 4. An exclusive resource is never over-used, across kills.
// ---------------------------------------------------------------------------------------------

#[test]
fn exclusive_resource_never_exceeded_across_kills() {
    resource_case(1);
    resource_case(2);
}

fn resource_case(capacity: u32) {
    let mut case = Case::new(&format!("resource_{capacity}"));
    let mut kills = Vec::new();
    let mut hits = 0;
    let mut finished = None;
    // Kill while a job holds the resource, until two kills caught a holder.
    while hits < 2 && kills.len() < 6 {
        let mut proc = case.spawn("resource", &capacity.to_string());
        let run = proc.run;
        let all_done = case.wait_log(&mut proc, "a job holding the resource", |log| {
            if log.iter().any(|e| e.run == run && e.is("done")) {
                return Some(true);
            }
            let runs = Runs::of(log, &["end"]);
            let ended_here = runs.ends.values().filter(|(r, _)| *r == run).count();
            let open = runs
                .starts
                .iter()
                .any(|(k, (r, _))| *r == run && !runs.ends.contains_key(k));
            (ended_here >= 2 && open).then_some(false)
        });
        let kill = case.kill(proc);
        if all_done {
            finished = Some(kill);
            break;
        }
        if !kill.executing().is_empty() {
            hits += 1;
        }
        kills.push(kill);
    }
    let last = match finished {
        Some(kill) => kill,
        None => {
            let mut proc = case.spawn("resource", &capacity.to_string());
            case.wait_done(&mut proc);
            case.kill(proc)
        }
    };
    assert!(
        hits >= 1,
        "capacity {capacity}: no kill caught a job holding the resource: the scenario tested \
         nothing"
    );

    // Each run's hold on the resource: from its start to its end, or, for a run the kill cut
    // off (still executing in the database afterwards), to its lease expiry or the next
    // child's rescue of its dead runner's jobs, whichever came first: the store frees a dead
    // holder's place only then. A run claimed but killed before it logged its start holds
    // from the kill at the latest.
    let log = case.log();
    let rescued_at: BTreeMap<u32, i64> = log
        .iter()
        .filter(|e| e.is("rescued"))
        .map(|e| (e.run, e.int(0)))
        .collect();
    let runs = Runs::of(&log, &["end"]);
    let mut holds: BTreeMap<(i64, u32), (i64, i64)> = BTreeMap::new();
    let mut cut_off: BTreeMap<(i64, u32), (i64, i64)> = BTreeMap::new();
    for kill in kills.iter().chain(std::iter::once(&last)) {
        for (key, expiry) in kill.executing() {
            assert!(
                expiry <= kill.at + lease_ms(),
                "{key:?}: lease expiry {expiry} more than a lease after the kill at {}",
                kill.at
            );
            let freed = rescued_at
                .get(&(kill.run + 1))
                .map_or(expiry, |rescued| expiry.min(*rescued));
            let entry = cut_off.entry(key).or_insert((kill.at, freed));
            assert_eq!(entry.1, freed, "{key:?}: a dead run's lease was renewed");
        }
    }
    for (key, (_, start)) in &runs.starts {
        let end = match (cut_off.get(key), runs.ends.get(key)) {
            (Some((_, expiry)), _) => *expiry,
            (None, Some((_, end))) => *end,
            (None, None) => {
                panic!("{key:?} started, never ended, and was not executing at any kill")
            }
        };
        holds.insert(*key, (*start, end));
    }
    for (key, (killed_at, expiry)) in &cut_off {
        holds.entry(*key).or_insert((*killed_at, *expiry));
    }
    let mut events: Vec<(i64, i32, (i64, u32))> = Vec::new();
    for (key, (start, end)) in &holds {
        assert!(start <= end, "{key:?}: hold {start}..{end}");
        events.push((*start, 1, *key));
        events.push((*end, -1, *key));
    }
    // At equal instants, releases come first: a hold is [start, end).
    events.sort();
    let mut active: BTreeSet<(i64, u32)> = BTreeSet::new();
    let mut most = 0;
    for (at, delta, key) in events {
        if delta < 0 {
            active.remove(&key);
            continue;
        }
        active.insert(key);
        most = most.max(active.len());
        assert!(
            active.len() <= capacity as usize,
            "capacity {capacity}: {} runs held `printer` at {at}: {:?}",
            active.len(),
            active.iter().map(|k| (k, holds[k])).collect::<Vec<_>>()
        );
    }

    assert_eq!(last.jobs.len(), 30);
    for record in &last.jobs {
        assert_eq!(record.state, JobState::Completed, "{record:?}");
    }
    eprintln!(
        "resource_{capacity}: {} kills ({hits} caught a holder), {} runs, at most {most} at once",
        kills.len(),
        holds.len()
    );
}

// ---------------------------------------------------------------------------------------------
// 5. Retry backoff across a restart.
// ---------------------------------------------------------------------------------------------

#[test]
fn retry_backoff_across_restart() {
    let mut case = Case::new("retry_backoff");
    let mut proc = case.spawn("retry_backoff", "");
    let (id, failed_at) = case.wait_log(&mut proc, "attempt 1's failure", |log| {
        log.iter()
            .find(|e| e.is("fail") && e.int(1) == 1)
            .map(|e| (e.int(0), e.int(2)))
    });
    // Kill once the failure is committed (the child saw the job retryable in its store), so
    // the kill lands in the backoff, not between the handler's return and the commit.
    case.wait_log(&mut proc, "attempt 1 committed as retryable", |log| {
        log.iter()
            .any(|e| e.is("retryable") && e.int(0) == id && e.int(1) == 1)
            .then_some(())
    });
    let killed = case.kill(proc).jobs;
    let record = &killed[0];
    assert_eq!(record.state, JobState::Retryable, "{record:?}");
    assert_eq!(record.attempt, 1);
    let history: Vec<(u32, &str)> = record
        .errors
        .iter()
        .map(|e| (e.attempt, e.error.as_str()))
        .collect();
    assert_eq!(history, [(1, "attempt 1 fails")]);
    assert!(
        record.run_at.as_millis() >= failed_at + 1000,
        "run_at {} is not a second after the failure at {failed_at}",
        record.run_at.as_millis()
    );

    let mut proc = case.spawn("retry_backoff", "");
    case.wait_done(&mut proc);
    let last = case.kill(proc);
    let log = case.log();
    let runs = Runs::of(&log, &["fail", "end"]);
    let started: Vec<(u32, u32)> = runs
        .starts
        .iter()
        .map(|((_, attempt), (run, _))| (*attempt, *run))
        .collect();
    assert_eq!(
        started,
        [(1, 0), (2, 1), (3, 1)],
        "attempt 1 before the kill, 2 and 3 after it, each once"
    );
    let at = |kind: &str, attempt: i64| {
        log.iter()
            .find(|e| e.is(kind) && e.int(1) == attempt)
            .map(|e| e.int(2))
            .unwrap_or_else(|| panic!("no `{kind}` for attempt {attempt}"))
    };
    assert!(
        at("start", 2) >= failed_at + 1000,
        "attempt 2 started {} ms after attempt 1 failed: the backoff is 1 s",
        at("start", 2) - failed_at
    );
    assert!(
        at("start", 3) >= at("fail", 2) + 1000,
        "attempt 3 started {} ms after attempt 2 failed",
        at("start", 3) - at("fail", 2)
    );
    let record = &last.jobs[0];
    assert_eq!(record.state, JobState::Completed, "{record:?}");
    assert_eq!(record.attempt, 3);
    assert_eq!(record.result.as_deref(), Some("3"));
    let history: Vec<(u32, &str)> = record
        .errors
        .iter()
        .map(|e| (e.attempt, e.error.as_str()))
        .collect();
    assert_eq!(history, [(1, "attempt 1 fails"), (2, "attempt 2 fails")]);
}

// ---------------------------------------------------------------------------------------------
// 6. A follow-up commits with its parent's completion, or not at all.
// ---------------------------------------------------------------------------------------------

#[test]
fn follow_up_is_atomic_with_completion() {
    follow_up_case("before");
    follow_up_case("after");
}

fn follow_up_case(mode: &str) {
    let mut case = Case::new(&format!("follow_up_{mode}"));
    let mut proc = case.spawn("follow_up", mode);
    let status = case.wait_exit(&mut proc, &format!("abort {mode} finish"));
    assert_eq!(
        status.signal(),
        Some(6),
        "{mode}: the child should have aborted (SIGABRT), got {status}\n{}",
        case.report(&proc)
    );
    let log = case.log();
    let first = log
        .iter()
        .find(|e| e.is("enqueued"))
        .map(|e| e.int(0))
        .expect("`enqueued`");
    assert!(
        log.iter()
            .any(|e| e.is("abort") && e.args[0] == mode && e.int(1) == first),
        "{mode}: the abort was not in the completion of job#{first}"
    );
    let crashed = case.all_jobs();
    let seconds = |jobs: &[JobRecord]| -> Vec<JobRecord> {
        jobs.iter()
            .filter(|r| r.name == Second::NAME)
            .cloned()
            .collect()
    };
    let a = crashed
        .iter()
        .find(|r| r.id.0 == first)
        .expect("job A")
        .clone();
    match mode {
        "before" => {
            assert_eq!(a.state, JobState::Executing, "{a:?}");
            assert!(
                seconds(&crashed).is_empty(),
                "B exists without A's completion: {:?}",
                seconds(&crashed)
            );
        }
        _ => {
            assert_eq!(a.state, JobState::Completed, "{a:?}");
            assert_eq!(
                seconds(&crashed).len(),
                1,
                "A completed: B must exist once: {:?}",
                seconds(&crashed)
            );
        }
    }

    let mut proc = case.spawn("follow_up", mode);
    case.wait_done(&mut proc);
    let last = case.kill(proc);
    let firsts: Vec<&JobRecord> = last.jobs.iter().filter(|r| r.name == First::NAME).collect();
    assert_eq!(firsts.len(), 1, "{mode}: one A: {firsts:?}");
    assert_eq!(firsts[0].state, JobState::Completed, "{:?}", firsts[0]);
    let b = seconds(&last.jobs);
    assert_eq!(
        b.len(),
        1,
        "{mode}: exactly one B (never zero, never two): {b:?}"
    );
    assert_eq!(b[0].state, JobState::Completed, "{:?}", b[0]);
    let log = case.log();
    let a_starts: Vec<u32> = log
        .iter()
        .filter(|e| e.is("start") && e.int(0) == first)
        .map(|e| e.run)
        .collect();
    let expected_a = if mode == "before" {
        // A's first run never committed: it ran again (after its lease expired).
        assert_eq!(firsts[0].attempt, 2, "{:?}", firsts[0]);
        vec![0, 1]
    } else {
        assert_eq!(firsts[0].attempt, 1, "{:?}", firsts[0]);
        vec![0]
    };
    assert_eq!(a_starts, expected_a, "{mode}: the runs of A");
}

// ---------------------------------------------------------------------------------------------
// 7. A fan-in collector runs once, across kills.
// ---------------------------------------------------------------------------------------------

#[test]
fn fan_in_collector_runs_exactly_once_across_kills() {
    let mut case = Case::new("fan_in");
    let mut rng = case.rng();
    let thresholds = [
        rng.usize(100..200),
        rng.usize(350..450),
        rng.usize(600..700),
    ];
    let mut collector = None;
    let mut kills = Vec::new();
    for threshold in thresholds {
        let mut proc = case.spawn("fan_in", "");
        // Only while children are pending: the collector cannot have started.
        case.wait_log(&mut proc, &format!("{threshold} finished pieces"), |log| {
            (ended_ids(log).len() >= threshold).then_some(())
        });
        let kill = case.kill(proc);
        let log = case.log();
        assert!(ended_ids(&log).len() < FAN_OUT as usize);
        let id = log
            .iter()
            .find(|e| e.is("enqueued"))
            .map(|e| e.int(0))
            .expect("`enqueued`");
        collector = Some(id);
        let gather = kill
            .jobs
            .iter()
            .find(|r| r.id.0 == id)
            .expect("the collector");
        let unfinished = kill
            .jobs
            .iter()
            .filter(|r| r.parent == Some(JobId(id)) && !r.state.is_final())
            .count();
        assert_eq!(gather.state, JobState::Waiting, "{gather:?}");
        assert_eq!(
            gather.pending_children as usize, unfinished,
            "the collector waits for exactly the unfinished children"
        );
        kills.push(kill);
    }
    let collector = collector.expect("collector id");
    let mut proc = case.spawn("fan_in", "");
    case.wait_done(&mut proc);
    let last = case.kill(proc);
    let log = case.log();

    let enqueued: Vec<(i64, i64)> = log
        .iter()
        .filter(|e| e.is("enqueued"))
        .map(|e| (e.int(0), e.int(1)))
        .collect();
    assert_eq!(
        enqueued,
        vec![(collector, i64::from(FAN_OUT)); 4],
        "one group, found again by its key"
    );
    let collects: Vec<(u32, i64, i64)> = log
        .iter()
        .filter(|e| e.is("collect"))
        .map(|e| (e.run, e.int(0), e.int(1)))
        .collect();
    assert_eq!(
        collects,
        [(3, i64::from(FAN_OUT), i64::from(FAN_OUT))],
        "the collector ran once, after the last kill, with every child completed"
    );
    assert_eq!(last.jobs.len(), FAN_OUT as usize + 1);
    let gather = last
        .jobs
        .iter()
        .find(|r| r.id.0 == collector)
        .expect("the collector");
    assert_eq!(gather.state, JobState::Completed, "{gather:?}");
    assert_eq!(gather.attempt, 1);
    assert_eq!(gather.pending_children, 0);
    assert_eq!(gather.result.as_deref(), Some(FAN_OUT.to_string().as_str()));
    let mut retried = 0;
    let mut lost = 0;
    for record in last.jobs.iter().filter(|r| r.id.0 != collector) {
        let piece: Piece = payload(record);
        assert_eq!(record.parent, Some(JobId(collector)));
        assert_eq!(record.state, JobState::Completed, "{record:?}");
        assert_eq!(record.result, Some(piece.n.to_string()));
        let attempts: Vec<u32> = record.errors.iter().map(|e| e.attempt).collect();
        assert_eq!(
            attempts,
            (1..record.attempt).collect::<Vec<_>>(),
            "{record:?}"
        );
        for e in &record.errors {
            if e.error == PIECE_FAILURE {
                assert!(piece.n.is_multiple_of(7) && e.attempt == 1, "{record:?}");
                retried += 1;
            } else {
                assert!(e.error.contains("lease"), "{record:?}");
                lost += 1;
            }
        }
        if piece.n.is_multiple_of(7) {
            assert!(record.attempt >= 2, "{record:?}");
        }
    }
    eprintln!("fan_in: {retried} pieces failed once, {lost} runs lost at kills");
}

/// kill -9 in the middle of a job under a 30 s lease: the restarted runner finds the dead
/// runner's sign of life gone and reruns the job within 2 s of starting, not after the lease.
fn rescue_case(mode: &str) {
    let mut case = Case::new(&format!("rescue_{mode}"));
    let mut proc = case.spawn("rescue", mode);
    case.wait_log(&mut proc, "the first attempt's start", |log| {
        log.iter()
            .any(|e| e.is("start") && e.int(1) == 1)
            .then_some(())
    });
    let killed_at = proc.kill();
    drop(proc);
    let mut proc = case.spawn("rescue", mode);
    let (booted, rerun) = case.wait_log(&mut proc, "the rerun's start", |log| {
        let booted = log.iter().find(|e| e.run == 1 && e.is("boot"))?.int(1);
        let rerun = log.iter().find(|e| e.is("start") && e.int(1) == 2)?.int(2);
        Some((booted, rerun))
    });
    assert!(
        rerun - booted <= 2_000,
        "the rerun started {} ms after the restart (killed at {killed_at}, lease {RESCUE_LEASE:?})",
        rerun - booted
    );
    assert!(
        rerun - killed_at < RESCUE_LEASE.as_millis() as i64,
        "the rerun waited for the lease"
    );
    drop(proc);
}

/// The `beat` schedule's record and its jobs, read from the database the children left.
fn beat_schedule(case: &Case) -> (ractor_otp::jobs::ScheduleRecord, Vec<JobRecord>) {
    case.db(|jobs| async move {
        let record = jobs
            .schedules()
            .await
            .expect("schedules")
            .into_iter()
            .find(|r| r.name == "beat")
            .expect("the schedule's record");
        let made = all_jobs(&jobs).await;
        (
            record,
            made.into_iter().filter(|j| j.name == "beat").collect(),
        )
    })
}

/// kill -9 right after a slot commits (its job has just started), again and again, with
/// random downtime between runs: no slot is enqueued twice, every slot from the first to the last is either run or counted missed
/// (never both, never neither), and every job enqueued runs to completion.
#[test]
fn a_schedule_fires_each_slot_once_across_kill_9() {
    let mut case = Case::new("schedule");
    let mut rng = case.rng();
    const KILLS: u32 = 4;
    for _ in 0..KILLS {
        let mut proc = case.spawn("schedule", "sqlite");
        let run = proc.run;
        // A new slot's job (its first attempt, not a rerun of the last run's).
        case.wait_log(&mut proc, "a new slot's job starting", |log| {
            log.iter()
                .any(|e| e.run == run && e.is("beat") && e.int(1) == 1)
                .then_some(())
        });
        // The kill point: right after the slot's commit, or a little into its run.
        std::thread::sleep(Duration::from_millis(rng.u64(0..250)));
        drop(proc);
        // Downtime (the thing under test): slots fall while no process runs.
        std::thread::sleep(Duration::from_millis(rng.u64(0..2_500)));
    }
    // A last run that is let be until every job enqueued so far has completed and a slot
    // after the restart has run.
    let mut proc = case.spawn("schedule", "sqlite");
    let run = proc.run;
    case.wait_log(&mut proc, "two slots of the last run ending", |log| {
        (log.iter().filter(|e| e.run == run && e.is("end")).count() >= 2).then_some(())
    });
    let beats: Vec<Entry> = case.log().into_iter().filter(|e| e.is("beat")).collect();
    drop(proc);

    let (record, made) = beat_schedule(&case);
    let slots: Vec<i64> = made.iter().map(|j| payload::<Beat>(j).at).collect();
    // One job per slot, in slot order, and the store's count agrees (a slot fired twice would
    // count twice on one job).
    assert!(
        slots.windows(2).all(|w| w[0] < w[1]),
        "slots out of order or repeated: {slots:?}"
    );
    assert_eq!(record.fired, made.len() as u64, "{record:?}");
    // Every slot from the first to the last is run or missed.
    let (first, last) = (slots[0], record.last_slot.expect("a last slot").as_millis());
    assert_eq!(
        record.fired + record.missed,
        ((last - first) / 1000 + 1) as u64,
        "slots unaccounted for: {record:?}, first {first}"
    );
    // Every job that started ran to completion, even those killed mid-run.
    let started: BTreeSet<i64> = beats.iter().map(|e| e.int(0)).collect();
    for job in &made {
        if started.contains(&job.id.0) && job.state != JobState::Completed {
            // Only the last run's jobs may be in flight at its kill.
            let last_start = beats.iter().rfind(|e| e.int(0) == job.id.0);
            assert_eq!(
                last_start.map(|e| e.run),
                Some(run),
                "job {} ({:?}) started in an earlier run and never completed",
                job.id.0,
                job.state
            );
        }
    }
    eprintln!(
        "schedule: {KILLS} kills, {} slots run, {} missed",
        record.fired, record.missed
    );
}

/// Two processes on one SQLite file, both declaring the schedule (every second): each slot
/// is enqueued once, whichever process fires first.
#[test]
fn two_processes_on_one_file_fire_each_slot_once() {
    let mut case = Case::new("schedule_two_processes");
    let mut one = case.spawn("schedule", "sqlite");
    let mut two = case.spawn("schedule", "sqlite");
    // Both are up, and four slots have ended.
    case.wait_log(&mut one, "four slots' runs ending", |log| {
        let booted = log.iter().filter(|e| e.is("boot")).count();
        (booted == 2 && log.iter().filter(|e| e.is("end")).count() >= 4).then_some(())
    });
    assert!(two.exited().is_none(), "the second process exited");
    drop((one, two));
    let (record, made) = beat_schedule(&case);
    let slots: Vec<i64> = made.iter().map(|j| payload::<Beat>(j).at).collect();
    assert!(
        slots.windows(2).all(|w| w[0] < w[1]),
        "a slot enqueued twice: {slots:?}"
    );
    assert_eq!(record.fired, slots.len() as u64, "{record:?}");
    // Each slot's job started once (no process died, so no rerun).
    let starts: Vec<i64> = case
        .log()
        .iter()
        .filter(|e| e.is("beat"))
        .map(|e| e.int(0))
        .collect();
    let distinct: BTreeSet<i64> = starts.iter().copied().collect();
    assert_eq!(starts.len(), distinct.len(), "a job ran twice: {starts:?}");
}

#[test]
fn a_killed_runners_job_reruns_at_once_on_sqlite() {
    rescue_case("sqlite");
}

#[cfg(feature = "postgres")]
#[ignore = "needs a PostgreSQL server: run `bash .ci/with-postgres cargo test --workspace --features postgres --tests -- --include-ignored`"]
#[test]
fn a_killed_runners_job_reruns_at_once_on_postgres() {
    let url = match std::env::var("OTP_PG_URL") {
        Ok(url) if !url.is_empty() => url,
        _ if std::env::var("OTP_PG_REQUIRED").is_ok_and(|v| v == "1") => {
            panic!("OTP_PG_REQUIRED=1 but OTP_PG_URL is not set")
        }
        _ => return,
    };
    rescue_case("postgres");
    // The scenario's schema, dropped.
    let schema = pg_schema(&std::env::temp_dir().join(format!(
        "ractor-otp-jobs-crash-{}-rescue_postgres",
        std::process::id()
    )));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
            .await
            .expect("connect");
        let driver = tokio::spawn(connection);
        let _ = client
            .batch_execute(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
            .await;
        drop(client);
        let _ = driver.await;
    });
}
