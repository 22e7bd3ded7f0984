//! The store suite against `PostgresStore` on a real server, plus what only a shared store
//! has: several stores (processes) on one queue, and wake-ups by `LISTEN/NOTIFY`.
//!
//! The file needs the `postgres` feature. The tests that need a server are `#[ignore]`d with
//! the reason, so `cargo test --features postgres` lists them as ignored, never as passed. Run
//! them with `-- --include-ignored` and a server in `OTP_PG_URL`: `bash .ci/with-postgres cargo
//! test --workspace --features postgres --tests -- --include-ignored` starts a throwaway
//! cluster and sets it (as `.ci/run` does). Run without a server, they say once why
//! they did not run; with `OTP_PG_REQUIRED=1` (CI) a missing server fails them instead. Every
//! test works in a fresh schema, dropped afterwards.

#![cfg(feature = "postgres")]

mod store_suite;

use std::collections::HashSet;
use std::io::Write;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Once};
use std::time::Duration;

use ractor_otp::jobs::{
    Finish, Job, JobContext, JobOptions, JobResult, Jobs, JobsError, Lease, PostgresStore, Store,
    StoreError,
};
use serde::{Deserialize, Serialize};
use store_suite::{add, claim_as, email, email_with, t, Guarded, EMAIL, SEC};

store_suite!(
    postgres,
    async { pg_store().await },
    #[ignore = "needs a PostgreSQL server: run `bash .ci/with-postgres cargo test --workspace --features postgres --tests -- --include-ignored`"]
);

/// A real-time bound for a test against the server.
const WAIT: Duration = Duration::from_secs(20);

/// The server's URL, or `None` after saying (once per run, past the test harness's output
/// capture) why the PostgreSQL tests are skipped.
fn server_url() -> Option<String> {
    static SAID: Once = Once::new();
    match std::env::var("OTP_PG_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            if std::env::var("OTP_PG_REQUIRED").is_ok_and(|v| v == "1") {
                panic!("OTP_PG_REQUIRED=1 but OTP_PG_URL is not set: no PostgreSQL server to test against");
            }
            SAID.call_once(|| {
                let _ = writeln!(
                    std::io::stderr(),
                    "\nSKIPPED: the PostgreSQL store tests (tests/jobs_postgres.rs) did not run: \
                     OTP_PG_URL is not set. Run them with a throwaway server: \
                     `bash .ci/with-postgres cargo test --features postgres --test jobs_postgres -- --include-ignored`, or set \
                     OTP_PG_URL=postgres://user@host:port/db.\n"
                );
            });
            None
        }
    }
}

/// Drops its schema (and everything in it) when dropped.
struct DropSchema {
    url: String,
    schema: String,
}

impl Drop for DropSchema {
    fn drop(&mut self) {
        let url = self.url.clone();
        // Bounded: a lock left behind fails the drop with a message instead of hanging.
        let sql = format!(
            "SET lock_timeout = '10s'; DROP SCHEMA IF EXISTS {} CASCADE",
            self.schema
        );
        // A thread of its own: `drop` may run inside the test's runtime, which cannot block.
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| e.to_string())?;
            runtime.block_on(async {
                let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
                    .await
                    .map_err(|e| e.to_string())?;
                let driver = tokio::spawn(connection);
                let done = client.batch_execute(&sql).await.map_err(|e| e.to_string());
                drop(client);
                let _ = driver.await;
                done
            })
        })
        .join();
        if let Ok(Err(e)) = dropped {
            eprintln!("could not drop test schema {}: {e}", self.schema);
        }
    }
}

/// A fresh schema name, unique in this run and across concurrent runs.
fn fresh_schema() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!(
        "otp_test_{}_{}_{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed),
        fastrand::u32(..)
    )
}

async fn connect(url: &str, schema: &str) -> PostgresStore {
    PostgresStore::options()
        .schema(schema)
        .max_connections(4)
        .connect(url)
        .await
        .unwrap_or_else(|e| panic!("connecting to OTP_PG_URL: {e}"))
}

/// A store in a fresh schema, dropped with it; `None` without a server.
async fn pg_store() -> Option<Guarded<PostgresStore, DropSchema>> {
    let url = server_url()?;
    let schema = fresh_schema();
    let store = connect(&url, &schema).await;
    Some(Guarded {
        store,
        guard: DropSchema { url, schema },
    })
}

/// Two stores on one fresh schema, as two processes would have: separate pools, separate
/// listeners.
async fn two_processes() -> Option<(PostgresStore, PostgresStore, DropSchema)> {
    let url = server_url()?;
    let schema = fresh_schema();
    let a = connect(&url, &schema).await;
    let b = connect(&url, &schema).await;
    Some((a, b, DropSchema { url, schema }))
}

// ---------------------------------------------------------------------------------------------
// Without a server.
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn bad_settings_are_rejected_before_connecting() {
    let e = PostgresStore::connect("not a url at all")
        .await
        .unwrap_err();
    assert!(matches!(e, StoreError::Invalid(_)), "{e}");
    for schema in ["Upper", "1st", "drop table", "a-b", ""] {
        let e = PostgresStore::options()
            .schema(schema)
            .connect("postgres://nobody@127.0.0.1:1/db")
            .await
            .unwrap_err();
        assert!(
            matches!(&e, StoreError::Invalid(m) if m.contains("schema")),
            "{schema:?}: {e}"
        );
    }
}

#[tokio::test]
async fn unreachable_server_is_a_clear_error() {
    // Port 1 on loopback: nothing listens there.
    let e = PostgresStore::options()
        .wait_timeout(WAIT)
        .connect("postgres://nobody@127.0.0.1:1/db")
        .await
        .unwrap_err();
    assert!(matches!(&e, StoreError::Connect(_)), "{e:?}");
    // Said once: no prefix doubled on its way up (through JobsError too).
    let text = JobsError::from(e).to_string();
    assert!(
        text.starts_with("cannot connect to the job store's database: PostgreSQL: "),
        "{text}"
    );
    assert_eq!(text.matches("cannot connect").count(), 1, "{text}");
    assert!(!text.contains("job store failed"), "{text}");
}

/// A server that accepts the connection and never answers: `connect` fails within its
/// connect timeout instead of hanging.
#[tokio::test]
async fn a_server_that_never_answers_fails_the_connect_within_its_timeout() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let silent = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    let url = format!("postgres://nobody@127.0.0.1:{port}/db");
    let started = std::time::Instant::now();
    let connecting = PostgresStore::options()
        .connect_timeout(Duration::from_millis(300))
        .connect(&url);
    let e = tokio::time::timeout(WAIT, connecting)
        .await
        .expect("connect gives up by itself")
        .unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert!(
        matches!(&e, StoreError::Connect(m) if m.contains("connect timeout")),
        "{e:?}"
    );
    silent.abort();
}

// ---------------------------------------------------------------------------------------------
// Several processes on one queue.
// ---------------------------------------------------------------------------------------------

#[ignore = "needs a PostgreSQL server: run `bash .ci/with-postgres cargo test --workspace --features postgres --tests -- --include-ignored`"]
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_claims_from_two_stores_never_share_a_job() {
    let Some((a, b, _schema)) = two_processes().await else {
        return;
    };
    let jobs: Vec<_> = (0..200).map(|i| email(&format!("to-{i}"))).collect();
    let enqueued = a.enqueue(jobs, t(0)).await.unwrap();
    let all: HashSet<_> = enqueued.iter().map(|e| e.id).collect();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let mut claimers = Vec::new();
    for i in 0..8 {
        let store = if i % 2 == 0 { a.clone() } else { b.clone() };
        let seen = seen.clone();
        claimers.push(tokio::spawn(async move {
            let owner = format!("claimer-{i}");
            loop {
                let got = claim_as(&store, &owner, &[EMAIL], 5, t(0)).await;
                if got.is_empty() {
                    return;
                }
                seen.lock().unwrap().extend(got.iter().map(|c| c.id));
            }
        }));
    }
    for claimer in claimers {
        tokio::time::timeout(WAIT, claimer).await.unwrap().unwrap();
    }
    let seen = seen.lock().unwrap().clone();
    let unique: HashSet<_> = seen.iter().copied().collect();
    assert_eq!(seen.len(), unique.len(), "a job was claimed twice");
    assert_eq!(unique, all, "every job was claimed");
}

/// Enqueues arriving together share one `INSERT`: each caller still gets the ids of its own
/// jobs, in order, and one that the server refuses (a NUL byte in its payload) fails alone.
#[ignore = "needs a PostgreSQL server: run `bash .ci/with-postgres cargo test --workspace --features postgres --tests -- --include-ignored`"]
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_enqueues_share_inserts_and_each_gets_its_own_jobs() {
    let Some(guarded) = pg_store().await else {
        return;
    };
    let store = Arc::new(guarded);
    let mut tasks = Vec::new();
    for i in 0..64u32 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let mut jobs = vec![email(&format!("a{i}"))];
            if i % 3 == 0 {
                jobs.push(email(&format!("b{i}")));
            }
            if i == 17 {
                jobs[0].payload = "\u{0}".into();
            }
            (i, store.enqueue(jobs, t(0)).await)
        }));
    }
    let mut ids = HashSet::new();
    for task in tasks {
        let (i, result) = tokio::time::timeout(WAIT, task)
            .await
            .expect("bounded")
            .expect("task");
        if i == 17 {
            assert!(
                matches!(result, Err(StoreError::Database(_))),
                "the bad enqueue fails: {result:?}"
            );
            continue;
        }
        let enqueued = result.expect("a good enqueue succeeds");
        assert_eq!(enqueued.len(), if i % 3 == 0 { 2 } else { 1 });
        for (k, e) in enqueued.iter().enumerate() {
            assert!(!e.duplicate);
            assert!(ids.insert(e.id), "ids are unique");
            let record = store.get(e.id, t(0)).await.unwrap().expect("stored");
            let to = if k == 0 {
                format!("a{i}")
            } else {
                format!("b{i}")
            };
            assert_eq!(record.payload, email(&to).payload, "job {k} of enqueue {i}");
        }
    }
    // 64 enqueues, 22 of them with two jobs, less the one refused.
    assert_eq!(ids.len(), 64 + 22 - 1);
}

#[ignore = "needs a PostgreSQL server: run `bash .ci/with-postgres cargo test --workspace --features postgres --tests -- --include-ignored`"]
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn resource_capacity_holds_across_stores() {
    let Some((a, b, _schema)) = two_processes().await else {
        return;
    };
    const CAPACITY: u32 = 2;
    // More jobs than one claim scans, one job per claim: concurrent claims lock different
    // candidates, so only the resource's own lock keeps them from overrunning it.
    const N: usize = 200;
    let jobs: Vec<_> = (0..N)
        .map(|i| {
            email_with(
                &format!("to-{i}"),
                JobOptions::new().resource("smtp", CAPACITY),
            )
        })
        .collect();
    a.enqueue(jobs, t(0)).await.unwrap();
    // Counted up after a claim commits and down before the finish commits: never more than
    // the store's holders, so never more than the capacity if the store keeps it.
    let holding = Arc::new(AtomicUsize::new(0));
    let peak = Arc::new(AtomicUsize::new(0));
    let done = Arc::new(AtomicUsize::new(0));
    let mut claimers = Vec::new();
    for i in 0..8 {
        let store = if i % 2 == 0 { a.clone() } else { b.clone() };
        let (holding, peak, done) = (holding.clone(), peak.clone(), done.clone());
        claimers.push(tokio::spawn(async move {
            let owner = format!("claimer-{i}");
            while done.load(Ordering::SeqCst) < N {
                let got = claim_as(&store, &owner, &[EMAIL], 1, t(0)).await;
                let now = holding.fetch_add(got.len(), Ordering::SeqCst) + got.len();
                peak.fetch_max(now, Ordering::SeqCst);
                tokio::task::yield_now().await;
                for job in got {
                    holding.fetch_sub(1, Ordering::SeqCst);
                    let lease = Lease {
                        id: job.id,
                        token: job.token,
                    };
                    let finish = Finish::Completed {
                        result: "null".into(),
                        follow_ups: Vec::new(),
                        groups: Vec::new(),
                    };
                    store.finish(lease, finish, t(0)).await.unwrap();
                    done.fetch_add(1, Ordering::SeqCst);
                }
            }
        }));
    }
    for claimer in claimers {
        tokio::time::timeout(WAIT, claimer).await.unwrap().unwrap();
    }
    assert_eq!(done.load(Ordering::SeqCst), N);
    let peak = peak.load(Ordering::SeqCst);
    assert!(
        (1..=CAPACITY as usize).contains(&peak),
        "peak holders {peak}, capacity {CAPACITY}"
    );
}

#[ignore = "needs a PostgreSQL server: run `bash .ci/with-postgres cargo test --workspace --features postgres --tests -- --include-ignored`"]
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_idempotent_enqueues_from_two_stores_make_one_job() {
    let Some((a, b, _schema)) = two_processes().await else {
        return;
    };
    let mut tasks = Vec::new();
    for i in 0..50 {
        let store = if i % 2 == 0 { a.clone() } else { b.clone() };
        tasks.push(tokio::spawn(async move {
            let job = email_with("once", JobOptions::new().idempotency_key("invoice-7"));
            store.enqueue(vec![job], t(0)).await.unwrap()[0]
        }));
    }
    let mut ids = HashSet::new();
    let mut fresh = 0;
    for task in tasks {
        let e = tokio::time::timeout(WAIT, task).await.unwrap().unwrap();
        ids.insert(e.id);
        fresh += usize::from(!e.duplicate);
    }
    assert_eq!(ids.len(), 1, "one job for one key");
    assert_eq!(fresh, 1, "exactly one enqueue added it");
}

/// Waits for the next change of a store's wake-ups.
async fn next_wakeup(rx: &mut tokio::sync::watch::Receiver<u64>) {
    tokio::time::timeout(WAIT, rx.changed())
        .await
        .expect("no wake-up in time")
        .expect("the store stopped reporting wake-ups");
}

#[ignore = "needs a PostgreSQL server: run `bash .ci/with-postgres cargo test --workspace --features postgres --tests -- --include-ignored`"]
#[tokio::test]
async fn an_enqueue_in_one_store_wakes_the_other() {
    let Some((a, b, _schema)) = two_processes().await else {
        return;
    };
    let mut rx = b.wakeups().expect("a shared store reports wake-ups");
    // The first wake-up says the listener is up (it is also sent after a reconnect).
    if *rx.borrow_and_update() == 0 {
        next_wakeup(&mut rx).await;
    }
    add(&a, email("hello"), t(0)).await;
    next_wakeup(&mut rx).await;
    assert!(
        !rx.has_changed().unwrap(),
        "one commit, one wake-up at most"
    );
}

#[derive(Serialize, Deserialize)]
struct Greet(String);

impl Job for Greet {
    const NAME: &'static str = "greet";
    type Output = String;
}

#[ignore = "needs a PostgreSQL server: run `bash .ci/with-postgres cargo test --workspace --features postgres --tests -- --include-ignored`"]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_runner_starts_a_job_another_process_enqueued_without_polling() {
    let Some((a, b, _schema)) = two_processes().await else {
        return;
    };
    let producer = Jobs::new(a);
    let consumer = Jobs::new(b);
    // It would poll only after an hour: a prompt start can only come from the notification.
    let runner = consumer
        .runner()
        .handler(|job: Greet, _ctx: JobContext| async move {
            JobResult::Ok(format!("hello, {}", job.0))
        })
        .poll_interval(Duration::from_secs(3600))
        .spawn()
        .await
        .unwrap();
    // A first job through the consumer's own handle: when it is done the runner is idle.
    let first = consumer.enqueue(Greet("local".into())).await.unwrap().id;
    let out = consumer.wait_for::<Greet>(first, WAIT).await.unwrap();
    assert_eq!(out, "hello, local");

    let remote = producer.enqueue(Greet("remote".into())).await.unwrap().id;
    let out = consumer.wait_for::<Greet>(remote, WAIT).await.unwrap();
    assert_eq!(out, "hello, remote");
    let report = runner.shutdown(WAIT).await.unwrap();
    assert_eq!(report.released, 0);
}

/// A schedule's job in the two-runner case.
#[derive(Serialize, Deserialize)]
struct Beat {
    at: i64,
}

impl Job for Beat {
    const NAME: &'static str = "beat";
    type Output = ();
}

/// Two processes on one schema, each with a runner declaring the same schedule (every
/// second): each slot is enqueued once, whichever fires first.
#[ignore = "needs a PostgreSQL server: run `bash .ci/with-postgres cargo test --workspace --features postgres --tests -- --include-ignored`"]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_runners_on_one_schema_fire_each_slot_once() {
    let Some((a, b, _schema)) = two_processes().await else {
        return;
    };
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<i64>();
    let start = |jobs: &Jobs| {
        let tx = tx.clone();
        jobs.runner()
            .handler(move |job: Beat, _ctx: JobContext| {
                let _ = tx.send(job.at);
                async { JobResult::Ok(()) }
            })
            .schedule(
                ractor_otp::jobs::Schedule::every("beat", Duration::from_secs(1)).unwrap(),
                |slot| Beat {
                    at: slot.at.as_millis(),
                },
            )
            .spawn()
    };
    let (one, two) = (Jobs::new(a), Jobs::new(b));
    let ra = start(&one).await.unwrap();
    let rb = start(&two).await.unwrap();
    let mut seen = std::collections::BTreeMap::<i64, u32>::new();
    while seen.len() < 4 {
        let at = tokio::time::timeout(WAIT, rx.recv())
            .await
            .expect("four slots did not run in time")
            .expect("runs");
        *seen.entry(at).or_default() += 1;
    }
    ra.shutdown(WAIT).await.unwrap();
    rb.shutdown(WAIT).await.unwrap();
    let record = one
        .schedules()
        .await
        .unwrap()
        .into_iter()
        .find(|r| r.name == "beat")
        .expect("the schedule's record");
    let made = one
        .list(ractor_otp::jobs::ListFilter {
            name: Some("beat".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(record.fired, made.len() as u64);
    assert_eq!(
        ra.stats().slots_fired + rb.stats().slots_fired,
        record.fired
    );
    assert!(seen.values().all(|n| *n == 1), "a slot ran twice: {seen:?}");
}

/// A schema of version 1 kept idempotency keys in job rows (a unique index): connecting
/// upgrades it, bringing the keys to their own table.
#[ignore = "needs a PostgreSQL server: run `bash .ci/with-postgres cargo test --workspace --features postgres --tests -- --include-ignored`"]
#[tokio::test]
async fn a_version_one_schema_keeps_its_idempotency_keys_after_the_upgrade() {
    let Some(url) = server_url() else {
        return;
    };
    let schema = fresh_schema();
    let _drop = DropSchema {
        url: url.clone(),
        schema: schema.clone(),
    };
    let store = connect(&url, &schema).await;
    let keyed = email_with("once", JobOptions::new().idempotency_key("k-1"));
    let first = store.enqueue(vec![keyed.clone()], t(0)).await.unwrap()[0].id;
    drop(store);
    // Back to how version 1 wrote it.
    let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .unwrap();
    let driver = tokio::spawn(connection);
    client
        .batch_execute(&format!(
            "SET search_path TO {schema};
             DROP TABLE otp_keys;
             CREATE UNIQUE INDEX otp_jobs_idem ON otp_jobs(idem_key) WHERE idem_key IS NOT NULL;
             UPDATE otp_jobs_meta SET version = 1;"
        ))
        .await
        .unwrap();
    let store = connect(&url, &schema).await;
    let again = store.enqueue(vec![keyed], t(SEC)).await.unwrap();
    assert_eq!((again[0].id, again[0].duplicate), (first, true));
    let version: i64 = client
        .query_one(
            &format!("SELECT MAX(version) FROM {schema}.otp_jobs_meta"),
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(version, 2);
    drop(store);
    drop(client);
    let _ = driver.await;
}
