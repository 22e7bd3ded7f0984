//! Durable jobs: no-op jobs, enqueue → completed, on a SQLite file (WAL, `synchronous=FULL`,
//! so every commit is fsynced), on a multi-thread tokio runtime with 2 workers.
//!
//! * **`single-commit`**: the store runs one operation per commit (`max_batch(1)`); one
//!   producer enqueues `N` jobs one after another (each enqueue awaited, so each is durable
//!   before the next); one runner (concurrency 16) claims and completes them. Target ≥ 2 000
//!   jobs/s.
//! * **`group-commit, 8 producers`**: the default store (group commit); 8 producers enqueue
//!   `N / 8` jobs each, concurrently; one runner (concurrency 64). Target ≥ 20 000 jobs/s.
//! * **anchor `raw rusqlite`**: the least a durable queue can do per job on this disk, with no
//!   queue logic: one `INSERT` commit and one `UPDATE … SET state='completed'` commit per job on
//!   a WAL + `synchronous=FULL` file. The ratio says what the queue's logic costs over the
//!   fsyncs it needs.
//! * **anchor `raw rusqlite, store's indexes`**: the same two commits per job, written as the
//!   store writes them with nothing else: a table with the store's `AUTOINCREMENT` key and
//!   partial indexes, each job inserted due, then one `UPDATE` that completes the previous job
//!   and claims this one (as a busy runner's turn does). No reads, savepoints, threads or
//!   serialization. Between the two anchors is what the pages of those indexes cost (a fifth
//!   to a third here: each commit writes about 4.6 WAL frames instead of 1); between this one
//!   and `single-commit` is what the queue's logic costs. Target: `single-commit` >= 0.9x this
//!   anchor (the plain anchor's ratio is bounded by the indexes' pages, whatever the logic).
//!
//! `single-commit` and both anchors run in interleaved rounds (`JOBS_BENCH_ROUNDS`, default
//! 3: anchor, schema anchor, queue, anchor, …) and report medians, because this machine's
//! fsync time moves by a third between runs a few seconds apart.
//!
//! * **`group-commit, 8 x 32 in flight`**: as above, but each producer keeps 32 enqueues in
//!   flight (a producer serving many requests at once): bigger batches, fewer commits per job.
//! * **`postgres, …`** (hand-timed pass only, when `OTP_PG_URL` is set, e.g. under
//!   `bash .ci/with-postgres`): the same two producer shapes on `PostgresStore` (16
//!   connections), where concurrent transactions share WAL flushes. Each is compared with
//!   **anchor `raw tokio-postgres`** of its shape: 16 connections, the same producers and
//!   jobs in flight, each job one `INSERT` commit and one `UPDATE` commit, pipelined. Target
//!   >= 10 000 jobs/s and >= 1x the anchor.
//!
//! An iteration ends when the `N`-th handler has run *and* its completion is committed (the
//! handler counts; the counter's waiter then waits for the store to report `N` completed).
//! After the criterion groups, a hand-timed pass prints jobs/s and the enqueue → start latency
//! (p50/p99: from the moment `enqueue` is called to the handler's first line).
//!
//! `JOBS_BENCH_N` sets `N` (default 4 000); `JOBS_BENCH_ONLY` keeps the hand-timed queue
//! contenders whose name contains it (e.g. `x 32` for the pipelined one, to profile it).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use criterion::{criterion_group, Criterion, SamplingMode, Throughput};
use futures::StreamExt;
use ractor_otp::jobs::{Job, JobContext, JobResult, JobState, Jobs, JournalStats, SqliteOptions};
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;

#[derive(Serialize, Deserialize)]
struct Noop {
    /// When `enqueue` was called, µs since the epoch.
    enqueued_us: u64,
}

impl Job for Noop {
    const NAME: &'static str = "noop";
    type Output = ();
}

fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

fn jobs_n() -> u64 {
    std::env::var("JOBS_BENCH_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(4_000)
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

fn fresh_path(tag: &str) -> std::path::PathBuf {
    static RUN: AtomicU64 = AtomicU64::new(0);
    let dir = std::env::temp_dir().join(format!(
        "otp-jobs-bench-{}-{}-{}",
        std::process::id(),
        tag,
        RUN.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir.join("jobs.sqlite3")
}

#[derive(Clone, Copy, PartialEq)]
enum Backend {
    Sqlite,
    /// The server at `OTP_PG_URL`, a fresh schema per run.
    #[cfg_attr(not(feature = "postgres"), allow(dead_code))]
    Postgres,
}

#[derive(Clone, Copy)]
struct Setup {
    name: &'static str,
    backend: Backend,
    max_batch: usize,
    producers: u64,
    /// Enqueues each producer keeps in flight (1: each awaited before the next).
    in_flight: usize,
    concurrency: u32,
}

const SINGLE: Setup = Setup {
    name: "single-commit",
    backend: Backend::Sqlite,
    max_batch: 1,
    producers: 1,
    in_flight: 1,
    concurrency: 16,
};

const GROUP: Setup = Setup {
    name: "group-commit, 8 producers",
    backend: Backend::Sqlite,
    max_batch: 512,
    producers: 8,
    in_flight: 1,
    concurrency: 64,
};

#[cfg_attr(not(feature = "postgres"), allow(dead_code))]
const PG_GROUP: Setup = Setup {
    name: "postgres, 8 producers",
    backend: Backend::Postgres,
    max_batch: 0,
    producers: 8,
    in_flight: 1,
    concurrency: 64,
};

#[cfg_attr(not(feature = "postgres"), allow(dead_code))]
const PG_PIPELINED: Setup = Setup {
    name: "postgres, 8 x 32 in flight",
    backend: Backend::Postgres,
    max_batch: 0,
    producers: 8,
    in_flight: 32,
    concurrency: 64,
};

const PIPELINED: Setup = Setup {
    name: "group-commit, 8 x 32 in flight",
    backend: Backend::Sqlite,
    max_batch: 512,
    producers: 8,
    in_flight: 32,
    concurrency: 256,
};

/// One run: `n` jobs enqueued and completed. Returns the elapsed time, the enqueue → start
/// latencies (µs) and the store's commits and operations.
async fn run_queue(setup: Setup, n: u64) -> (Duration, Vec<u64>, Option<JournalStats>) {
    let path = fresh_path("queue");
    let mut sqlite = None;
    let mut schema = None;
    let jobs = match setup.backend {
        Backend::Sqlite => {
            let store = SqliteOptions::default()
                .max_batch(setup.max_batch)
                .open(&path)
                .await
                .expect("open store");
            sqlite = Some(store.clone());
            Jobs::new(store)
        }
        Backend::Postgres => {
            let (jobs, url_and_schema) = open_postgres().await;
            schema = Some(url_and_schema);
            jobs
        }
    };
    let started = Arc::new(AtomicU64::new(0));
    let all_started = Arc::new(Notify::new());
    let latencies = Arc::new(Mutex::new(Vec::with_capacity(n as usize)));
    let (count, done, lat) = (started.clone(), all_started.clone(), latencies.clone());
    let runner = jobs
        .runner()
        .concurrency(setup.concurrency)
        .poll_interval(Duration::from_millis(50))
        .handler(move |job: Noop, _ctx: JobContext| {
            let latency = now_us().saturating_sub(job.enqueued_us);
            if let Ok(mut l) = lat.lock() {
                l.push(latency);
            }
            if count.fetch_add(1, Ordering::Relaxed) + 1 == n {
                done.notify_one();
            }
            async move { JobResult::Ok(()) }
        })
        .spawn()
        .await
        .expect("runner");
    let t0 = Instant::now();
    let mut producers = Vec::new();
    for p in 0..setup.producers {
        let jobs = jobs.clone();
        let share = n / setup.producers + u64::from(p < n % setup.producers);
        let in_flight = setup.in_flight;
        producers.push(tokio::spawn(async move {
            futures::stream::iter(0..share)
                .for_each_concurrent(in_flight, |_| async {
                    jobs.enqueue(Noop {
                        enqueued_us: now_us(),
                    })
                    .await
                    .expect("enqueue");
                })
                .await;
        }));
    }
    for p in producers {
        p.await.expect("producer");
    }
    tokio::time::timeout(Duration::from_secs(600), all_started.notified())
        .await
        .expect("every job started");
    // The last completions commit right after their handlers: wait for the store to say so.
    let committed = async {
        while jobs.count(JobState::Completed).await.expect("count") < n {
            tokio::task::yield_now().await;
        }
    };
    tokio::time::timeout(Duration::from_secs(60), committed)
        .await
        .expect("every completion committed");
    let elapsed = t0.elapsed();
    runner
        .shutdown(Duration::from_secs(5))
        .await
        .expect("shutdown");
    drop(jobs);
    let _ = std::fs::remove_dir_all(path.parent().expect("dir"));
    if let Some((url, name)) = schema {
        drop_schema(&url, &name).await;
    }
    let latencies = std::mem::take(&mut *latencies.lock().expect("latencies"));
    (elapsed, latencies, sqlite.map(|s| s.journal_stats()))
}

/// A queue in a fresh schema on the server at `OTP_PG_URL`.
#[cfg(feature = "postgres")]
async fn open_postgres() -> (Jobs, (String, String)) {
    let url = std::env::var("OTP_PG_URL").expect("OTP_PG_URL");
    let name = format!("otp_bench_{}_{}", std::process::id(), fastrand::u32(..));
    let store = ractor_otp::jobs::PostgresStore::options()
        .schema(&name)
        .max_connections(16)
        .connect(&url)
        .await
        .expect("connect");
    (Jobs::new(store), (url, name))
}

#[cfg(not(feature = "postgres"))]
async fn open_postgres() -> (Jobs, (String, String)) {
    unreachable!("PostgreSQL contenders only run with the `postgres` feature")
}

#[cfg(not(feature = "postgres"))]
async fn drop_schema(_url: &str, _name: &str) {}

#[cfg(feature = "postgres")]
async fn drop_schema(url: &str, name: &str) {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .expect("connect");
    let driver = tokio::spawn(connection);
    client
        .batch_execute(&format!("DROP SCHEMA {name} CASCADE"))
        .await
        .expect("drop schema");
    drop(client);
    let _ = driver.await;
}

/// The anchor: one INSERT commit and one UPDATE commit per job, nothing else.
fn run_raw(n: u64) -> Duration {
    let path = fresh_path("raw");
    let conn = rusqlite_open(&path);
    let t0 = Instant::now();
    for i in 0..n {
        conn.execute(
            "INSERT INTO q (id, payload, state) VALUES (?1, '{}', 'available')",
            [i as i64],
        )
        .expect("insert");
        conn.execute("UPDATE q SET state = 'completed' WHERE id = ?1", [i as i64])
            .expect("update");
    }
    let elapsed = t0.elapsed();
    drop(conn);
    let _ = std::fs::remove_dir_all(path.parent().expect("dir"));
    elapsed
}

/// The PostgreSQL anchor: the same shapes as the queue's contenders (`producers` x
/// `in_flight` jobs at once over 16 connections, pipelined), each job one `INSERT` commit and
/// one `UPDATE ... SET state = 'completed'` commit, nothing else.
#[cfg(feature = "postgres")]
async fn run_raw_postgres(n: u64, producers: u64, in_flight: usize) -> Duration {
    let url = std::env::var("OTP_PG_URL").expect("OTP_PG_URL");
    let name = format!("otp_raw_{}_{}", std::process::id(), fastrand::u32(..));
    let mut clients = Vec::new();
    for _ in 0..16 {
        let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
            .await
            .expect("connect");
        tokio::spawn(connection);
        clients.push(Arc::new(client));
    }
    clients[0]
        .batch_execute(&format!(
            "CREATE SCHEMA {name};
             CREATE TABLE {name}.q (id BIGSERIAL PRIMARY KEY, payload TEXT NOT NULL, state TEXT NOT NULL);"
        ))
        .await
        .expect("schema");
    let insert =
        format!("INSERT INTO {name}.q (payload, state) VALUES ('{{}}', 'available') RETURNING id");
    let update = format!("UPDATE {name}.q SET state = 'completed' WHERE id = $1");
    let t0 = Instant::now();
    let mut tasks = Vec::new();
    for p in 0..producers {
        let share = n / producers + u64::from(p < n % producers);
        let clients = clients.clone();
        let (insert, update) = (insert.clone(), update.clone());
        tasks.push(tokio::spawn(async move {
            futures::stream::iter(0..share)
                .for_each_concurrent(in_flight, |i| {
                    let client = clients[((p * 31 + i) % 16) as usize].clone();
                    let (insert, update) = (insert.clone(), update.clone());
                    async move {
                        let row = client.query_one(&insert, &[]).await.expect("insert");
                        let id: i64 = row.get(0);
                        client.execute(&update, &[&id]).await.expect("update");
                    }
                })
                .await;
        }));
    }
    for task in tasks {
        task.await.expect("producer");
    }
    let elapsed = t0.elapsed();
    clients[0]
        .batch_execute(&format!("DROP SCHEMA {name} CASCADE"))
        .await
        .expect("drop schema");
    elapsed
}

/// The schema anchor: the store's key and partial indexes (as `src/jobs/sqlite.rs` creates
/// them), each job one `INSERT` commit, then one `UPDATE` commit that completes the previous
/// job and claims this one.
fn run_raw_indexed(n: u64) -> Duration {
    let path = fresh_path("raw-indexed");
    let conn = rusqlite::Connection::open(&path).expect("open");
    let due = "(state = 'scheduled' OR state = 'available' OR state = 'retryable')";
    conn.execute_batch(&format!(
        "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;
         CREATE TABLE q (id INTEGER PRIMARY KEY AUTOINCREMENT, queue TEXT NOT NULL,
            payload TEXT NOT NULL, state TEXT NOT NULL, priority INTEGER NOT NULL,
            run_at INTEGER NOT NULL, resource_key TEXT, lease_expires_at INTEGER,
            parent_id INTEGER, finished_at INTEGER);
         CREATE INDEX q_due_order ON q(queue, priority DESC, run_at, id) WHERE {due};
         CREATE INDEX q_due_time ON q(run_at) WHERE {due};
         CREATE INDEX q_leased ON q(lease_expires_at) WHERE state = 'executing';
         CREATE INDEX q_resource ON q(resource_key, state) WHERE resource_key IS NOT NULL;
         CREATE INDEX q_parent ON q(parent_id) WHERE parent_id IS NOT NULL;
         CREATE INDEX q_finished ON q(finished_at) WHERE finished_at IS NOT NULL;"
    ))
    .expect("schema");
    let t0 = Instant::now();
    for i in 1..=n as i64 {
        conn.execute(
            "INSERT INTO q (queue, payload, state, priority, run_at)
             VALUES ('default', '{}', 'available', 0, ?1)",
            [i],
        )
        .expect("insert");
        conn.execute(
            "UPDATE q SET
                state = CASE WHEN id = ?1 THEN 'executing' ELSE 'completed' END,
                lease_expires_at = CASE WHEN id = ?1 THEN ?1 + 60000 END,
                finished_at = CASE WHEN id = ?1 THEN NULL ELSE ?1 END
             WHERE id = ?1 OR id = ?1 - 1",
            [i],
        )
        .expect("update");
    }
    let elapsed = t0.elapsed();
    drop(conn);
    let _ = std::fs::remove_dir_all(path.parent().expect("dir"));
    elapsed
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(f64::NAN)
}

fn rounds() -> usize {
    std::env::var("JOBS_BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3)
        .max(1)
}

fn rusqlite_open(path: &std::path::Path) -> rusqlite::Connection {
    let conn = rusqlite::Connection::open(path).expect("open");
    conn.execute_batch(
        "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;
         CREATE TABLE q (id INTEGER PRIMARY KEY, payload TEXT, state TEXT);",
    )
    .expect("schema");
    conn
}

fn throughput(c: &mut Criterion) {
    let n = jobs_n();
    let rt = runtime();
    let mut group = c.benchmark_group("jobs_throughput");
    group
        .sample_size(10)
        .sampling_mode(SamplingMode::Flat)
        .measurement_time(Duration::from_secs(20))
        .throughput(Throughput::Elements(n));
    for setup in [SINGLE, GROUP, PIPELINED] {
        group.bench_function(setup.name, |b| {
            b.iter_custom(|iters| (0..iters).map(|_| rt.block_on(run_queue(setup, n)).0).sum())
        });
    }
    group.bench_function("raw rusqlite (anchor)", |b| {
        b.iter_custom(|iters| (0..iters).map(|_| run_raw(n)).sum())
    });
    group.bench_function("raw rusqlite, store's indexes (anchor)", |b| {
        b.iter_custom(|iters| (0..iters).map(|_| run_raw_indexed(n)).sum())
    });
    group.finish();
}

fn percentile(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i] as f64 / 1000.0
}

fn report() {
    let n = jobs_n();
    let rt = runtime();
    println!("\n== durable jobs: {n} no-op jobs, enqueue -> completed, WAL + synchronous=FULL ==");
    println!(
        "{:<28} {:>10} {:>14} {:>14}",
        "contender", "jobs/s", "start p50 ms", "start p99 ms"
    );
    let only = std::env::var("JOBS_BENCH_ONLY").unwrap_or_default();
    // The single-commit queue and both anchors, interleaved: medians of each, and the median
    // of the rounds' ratios.
    let (mut raws, mut indexed, mut singles) = (Vec::new(), Vec::new(), Vec::new());
    let mut single_run = None;
    for _ in 0..rounds() {
        raws.push(n as f64 / run_raw(n).as_secs_f64());
        indexed.push(n as f64 / run_raw_indexed(n).as_secs_f64());
        if SINGLE.name.contains(only.as_str()) {
            let run = rt.block_on(run_queue(SINGLE, n));
            singles.push(n as f64 / run.0.as_secs_f64());
            single_run = Some(run);
        }
    }
    let ratios =
        |anchors: &[f64]| median(singles.iter().zip(anchors).map(|(s, a)| s / a).collect());
    let raw = median(raws.clone());
    println!(
        "{:<28} {:>10.0} {:>14} {:>14}   (median of {} rounds)",
        "raw rusqlite (anchor)",
        raw,
        "-",
        "-",
        raws.len()
    );
    println!(
        "{:<28} {:>10.0} {:>14} {:>14}   ({:.2}x the anchor: what the store's indexes cost)",
        "raw rusqlite, store's indexes",
        median(indexed.clone()),
        "-",
        "-",
        median(indexed.iter().zip(&raws).map(|(i, r)| i / r).collect()),
    );
    if let Some((_, mut lat, journal)) = single_run {
        lat.sort_unstable();
        let rate = median(singles.clone());
        let to_indexed = ratios(&indexed);
        println!(
            "{:<28} {:>10.0} {:>14.2} {:>14.2}   ({:.2}x anchor, {:.2}x the indexed anchor; median of the rounds' ratios; target >= 2000: {}; >= 0.9x the indexed anchor: {})",
            SINGLE.name,
            rate,
            percentile(&lat, 0.50),
            percentile(&lat, 0.99),
            ratios(&raws),
            to_indexed,
            if rate >= 2_000.0 { "met" } else { "MISSED" },
            if to_indexed >= 0.9 { "met" } else { "MISSED" }
        );
        print_journal(journal, n);
    }
    let mut setups = vec![(GROUP, 20_000.0, raw), (PIPELINED, 20_000.0, raw)];
    #[cfg(feature = "postgres")]
    if std::env::var("OTP_PG_URL").is_ok() {
        // Each PostgreSQL contender against the raw loop of its own shape.
        for setup in [PG_GROUP, PG_PIPELINED] {
            let anchor = rt.block_on(run_raw_postgres(n, setup.producers, setup.in_flight));
            let anchor = n as f64 / anchor.as_secs_f64();
            println!(
                "{:<28} {:>10.0} {:>14} {:>14}",
                format!("raw tokio-postgres, {}", &setup.name[10..]),
                anchor,
                "-",
                "-"
            );
            setups.push((setup, 10_000.0, anchor));
        }
    }
    if !(cfg!(feature = "postgres") && std::env::var("OTP_PG_URL").is_ok()) {
        println!(
            "(PostgreSQL contenders skipped: they need the `postgres` feature and OTP_PG_URL; run under .ci/with-postgres)"
        );
    }
    setups.retain(|(setup, _, _)| setup.name.contains(only.as_str()));
    for (setup, target, anchor) in setups {
        let (elapsed, mut lat, journal) = rt.block_on(run_queue(setup, n));
        lat.sort_unstable();
        let rate = n as f64 / elapsed.as_secs_f64();
        println!(
            "{:<28} {:>10.0} {:>14.2} {:>14.2}   ({:.2}x anchor; target >= {target:.0}: {})",
            setup.name,
            rate,
            percentile(&lat, 0.50),
            percentile(&lat, 0.99),
            rate / anchor,
            if rate >= target { "met" } else { "MISSED" }
        );
        print_journal(journal, n);
    }
}

fn print_journal(journal: Option<JournalStats>, n: u64) {
    if let Some(journal) = journal {
        println!(
            "{:<28} {:.2} commits/job, {:.2} operations/job, {:.1} operations/commit",
            "",
            journal.commits as f64 / n as f64,
            journal.operations as f64 / n as f64,
            journal.operations as f64 / journal.commits.max(1) as f64
        );
    }
}

criterion_group!(benches, throughput);

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
    report();
}
