//! The store suite against `SqliteStore` (in memory and on a file), plus what only the SQLite
//! store has: a file that survives reopening, and group commit.

#![cfg(feature = "sqlite")]

mod store_suite;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use ractor_otp::jobs::{
    ClaimRequest, Finish, JobId, JobOptions, JobState, Lease, ListFilter, SqliteStore, Store, Turn,
};
use store_suite::{claim, email, email_with, get, ids, t, Guarded, EMAIL, LEASE_MS, SEC};

store_suite!(sqlite_memory, async {
    Some(ractor_otp::jobs::SqliteStore::in_memory().unwrap())
});

store_suite!(sqlite_file, async { Some(temp_store().await) });

// ---------------------------------------------------------------------------------------------
// A file store in a fresh directory, removed with the store.
// ---------------------------------------------------------------------------------------------

/// A fresh, empty directory under the system temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> Self {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let path =
            std::env::temp_dir().join(format!("ractor-otp-jobs-store-{}-{n}", std::process::id()));
        // A leftover of an earlier process with the same id.
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).unwrap();
        TempDir(path)
    }

    fn db(&self) -> PathBuf {
        self.0.join("jobs.sqlite3")
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `SqliteStore::open(<fresh dir>/jobs.sqlite3)`, deleting its directory when dropped (after
/// the store: its journal thread is told to stop first).
async fn temp_store() -> Guarded<SqliteStore, TempDir> {
    let dir = TempDir::new();
    let store = SqliteStore::open(dir.db()).await.unwrap();
    Guarded { store, guard: dir }
}

// ---------------------------------------------------------------------------------------------
// SQLite only.
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn reopened_file_store_keeps_its_jobs() {
    let dir = TempDir::new();
    let store = SqliteStore::open(dir.db()).await.unwrap();
    let kept = store.enqueue(vec![email("kept")], t(0)).await.unwrap()[0].id;
    let running = store
        .enqueue(
            vec![email_with("running", JobOptions::new().priority(9))],
            t(0),
        )
        .await
        .unwrap()[0]
        .id;
    let got = claim(&store, &[EMAIL], 1, t(0)).await;
    assert_eq!(got.iter().map(|c| c.id).collect::<Vec<_>>(), vec![running]);

    // A clone shares the journal: dropping the original leaves it working.
    let clone = store.clone();
    drop(store);
    let late = clone
        .enqueue(vec![email("via clone")], t(SEC))
        .await
        .unwrap()[0]
        .id;
    drop(clone);

    let store = SqliteStore::open(dir.db()).await.unwrap();
    assert!(dir.path().join("jobs.sqlite3").exists());
    let r = get(&store, kept, t(2 * SEC)).await;
    assert_eq!(r.state, JobState::Available);
    assert_eq!(r.payload, r#"{"to":"kept"}"#);
    assert_eq!(r.name, EMAIL);
    assert_eq!(
        get(&store, late, t(2 * SEC)).await.state,
        JobState::Available
    );
    let r = get(&store, running, t(2 * SEC)).await;
    assert_eq!(r.state, JobState::Executing);
    assert_eq!(r.attempt, 1);
    assert_eq!(r.lease_expires_at, Some(t(LEASE_MS)));

    // The lease carries on across the restart: reclaimed at its expiry.
    let got = claim(&store, &[EMAIL], 1, t(LEASE_MS)).await;
    assert_eq!(got.len(), 1);
    assert_eq!((got[0].id, got[0].attempt), (running, 2));

    // Ids keep growing.
    let next = store
        .enqueue(vec![email("new")], t(LEASE_MS))
        .await
        .unwrap()[0]
        .id;
    assert!(next > late && late > running && running > kept);
    drop(store);
}

async fn concurrent_enqueues(store: &SqliteStore, n: usize) {
    let barrier = Arc::new(tokio::sync::Barrier::new(n));
    let tasks: Vec<_> = (0..n)
        .map(|i| {
            let store = store.clone();
            let barrier = barrier.clone();
            tokio::spawn(async move {
                barrier.wait().await;
                store
                    .enqueue(vec![email(&format!("to-{i}"))], t(0))
                    .await
                    .unwrap()
            })
        })
        .collect();
    let mut ids = Vec::new();
    for task in tasks {
        let done = task.await.unwrap();
        assert_eq!(done.len(), 1);
        assert!(!done[0].duplicate);
        ids.push(done[0].id);
    }
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), n, "every enqueue got its own job");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_enqueues_share_commits() {
    let dir = TempDir::new();
    let store = SqliteStore::open(dir.db()).await.unwrap();
    let before = store.journal_stats();
    concurrent_enqueues(&store, 200).await;
    let after = store.journal_stats();
    let commits = after.commits - before.commits;
    let operations = after.operations - before.operations;
    assert!(operations >= 200, "operations: {operations}");
    assert!(
        commits < 200,
        "group commit: {commits} commits for {operations} operations"
    );
    assert!(commits >= 1);
    let all = store
        .list(
            ListFilter {
                limit: Some(1_000),
                ..ListFilter::default()
            },
            t(0),
        )
        .await
        .unwrap();
    assert_eq!(all.len(), 200);
    drop(store);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn max_batch_one_commits_every_operation() {
    let dir = TempDir::new();
    let store = SqliteStore::options()
        .max_batch(1)
        .open(dir.db())
        .await
        .unwrap();
    let before = store.journal_stats();
    concurrent_enqueues(&store, 50).await;
    let after = store.journal_stats();
    let commits = after.commits - before.commits;
    let operations = after.operations - before.operations;
    assert_eq!(operations, 50);
    assert_eq!(commits, operations, "one commit per operation");
    drop(store);
}

#[tokio::test]
async fn a_missing_directory_is_named() {
    let dir = TempDir::new();
    let path = dir.path().join("not-there").join("jobs.sqlite3");
    match SqliteStore::open(&path).await {
        Err(ractor_otp::jobs::StoreError::Invalid(message)) => {
            assert!(message.contains("does not exist"), "{message}");
            assert!(message.contains("not-there"), "{message}");
        }
        other => panic!("expected Invalid, got {other:?}"),
    }
}

/// A runner's turn (finishes, a claim, the next due time) is one commit even with group
/// commit off: what lets a busy runner pay one commit per job for finishing and claiming.
#[tokio::test]
async fn a_turn_is_one_commit() {
    let dir = TempDir::new();
    let store = SqliteStore::options()
        .max_batch(1)
        .open(dir.db())
        .await
        .unwrap();
    for to in ["a", "b", "c", "d"] {
        store.enqueue(vec![email(to)], t(0)).await.unwrap();
    }
    let running = claim(&store, &[EMAIL], 2, t(0)).await;
    let before = store.journal_stats();
    let turn = Turn {
        finished: running
            .iter()
            .map(|c| {
                let lease = Lease {
                    id: c.id,
                    token: c.token,
                };
                let done = Finish::Completed {
                    result: "null".into(),
                    follow_ups: Vec::new(),
                    groups: Vec::new(),
                };
                (lease, done)
            })
            .collect(),
        claim: Some(ClaimRequest {
            owner: "runner-1".into(),
            queues: vec!["default".into()],
            names: vec![EMAIL.into()],
            limit: 4,
            lease: std::time::Duration::from_millis(LEASE_MS as u64),
        }),
    };
    let out = store.finish_and_claim(turn, t(SEC)).await.unwrap();
    assert!(out.finished.iter().all(Result::is_ok));
    assert_eq!(ids(&out.claimed.unwrap()).len(), 2);
    let after = store.journal_stats();
    assert_eq!(
        (
            after.commits - before.commits,
            after.operations - before.operations
        ),
        (1, 1)
    );
    drop(store);
}

/// A file holding one available job, rewritten by `older` (SQL that makes it look like an
/// older schema's file), then opened by this release and the job claimed. Returns the job
/// and a connection to the file, for the test to look at what opening it did.
async fn open_older_file(dir: &TempDir, older: &str) -> (JobId, rusqlite::Connection) {
    let store = SqliteStore::open(dir.db()).await.unwrap();
    let kept = store.enqueue(vec![email("kept")], t(0)).await.unwrap()[0].id;
    drop(store);
    rusqlite::Connection::open(dir.db())
        .unwrap()
        .execute_batch(older)
        .unwrap();
    let store = SqliteStore::open(dir.db()).await.unwrap();
    assert_eq!(get(&store, kept, t(SEC)).await.state, JobState::Available);
    assert_eq!(ids(&claim(&store, &[EMAIL], 5, t(SEC)).await), vec![kept]);
    drop(store);
    let conn = rusqlite::Connection::open(dir.db()).unwrap();
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(version, 4);
    (kept, conn)
}

#[tokio::test]
async fn version_one_file_is_upgraded_in_place() {
    let dir = TempDir::new();
    // A file written by schema version 1: its full-table indexes.
    let (_, conn) = open_older_file(
        &dir,
        "DROP INDEX otp_jobs_due_order; DROP INDEX otp_jobs_due_time; DROP INDEX otp_jobs_leased;
         CREATE INDEX otp_jobs_due ON otp_jobs(state, queue, name, priority DESC, run_at, id);
         CREATE INDEX otp_jobs_lease ON otp_jobs(state, lease_expires_at);
         PRAGMA user_version = 1;",
    )
    .await;
    let mut indexes: Vec<String> = conn
        .prepare("SELECT name FROM sqlite_master WHERE type = 'index' AND name LIKE 'otp_jobs_%'")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    indexes.sort();
    assert_eq!(
        indexes,
        [
            "otp_jobs_due_order",
            "otp_jobs_due_time",
            "otp_jobs_finished",
            "otp_jobs_leased",
            "otp_jobs_parent",
            "otp_jobs_resource"
        ]
    );
}

/// Version 3 kept idempotency keys in job rows (a unique index): the upgrade brings them to
/// their own table, so a job pruned or deleted later still holds its key.
#[tokio::test]
async fn version_three_file_keeps_its_idempotency_keys_after_the_upgrade() {
    let dir = TempDir::new();
    let store = SqliteStore::open(dir.db()).await.unwrap();
    let keyed = store
        .enqueue(
            vec![email_with("once", JobOptions::new().idempotency_key("k-1"))],
            t(0),
        )
        .await
        .unwrap()[0]
        .id;
    drop(store);
    rusqlite::Connection::open(dir.db())
        .unwrap()
        .execute_batch(
            "DROP TABLE otp_keys;
             CREATE UNIQUE INDEX otp_jobs_idem ON otp_jobs(idem_key) WHERE idem_key IS NOT NULL;
             PRAGMA user_version = 3;",
        )
        .unwrap();
    let store = SqliteStore::open(dir.db()).await.unwrap();
    let again = store
        .enqueue(
            vec![email_with(
                "twice",
                JobOptions::new().idempotency_key("k-1"),
            )],
            t(SEC),
        )
        .await
        .unwrap();
    assert_eq!((again[0].id, again[0].duplicate), (keyed, true));
    drop(store);
    let conn = rusqlite::Connection::open(dir.db()).unwrap();
    let unique_index: i64 = conn
        .query_row(
            "SELECT COUNT(*) FROM sqlite_master WHERE name = 'otp_jobs_idem'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(unique_index, 0);
}

#[tokio::test]
async fn version_two_file_gets_the_due_indexes_spelled_for_cheap_writes() {
    let dir = TempDir::new();
    // Version 2's due indexes had their condition spelled `state IN (…)`.
    let (kept, conn) = open_older_file(
        &dir,
        "DROP INDEX otp_jobs_due_order; DROP INDEX otp_jobs_due_time;
         CREATE INDEX otp_jobs_ready ON otp_jobs(queue, priority DESC, run_at, id)
             WHERE state IN ('scheduled','available','retryable');
         CREATE INDEX otp_jobs_next ON otp_jobs(run_at)
             WHERE state IN ('scheduled','available','retryable');
         PRAGMA user_version = 2;",
    )
    .await;
    let conditions: Vec<(String, String)> = conn
        .prepare(
            "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = 'otp_jobs'
             AND sql IS NOT NULL ORDER BY name",
        )
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert!(!conditions.iter().any(|(name, _)| name == "otp_jobs_ready"));
    // No index condition makes a write build a temporary b-tree (an `IN` over three or more
    // values does, on every row written): a change of state, as every claim and finish
    // makes, runs without one.
    let program: Vec<String> = conn
        .prepare("EXPLAIN UPDATE otp_jobs SET state = 'executing' WHERE id = ?")
        .unwrap()
        .query_map([kept.0], |r| r.get(1))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert!(
        !program.iter().any(|op| op == "OpenEphemeral"),
        "a state change builds a temporary b-tree; index conditions: {conditions:?}"
    );
}

#[tokio::test]
async fn newer_schema_is_refused() {
    let dir = TempDir::new();
    drop(SqliteStore::open(dir.db()).await.unwrap());
    rusqlite::Connection::open(dir.db())
        .unwrap()
        .execute_batch("PRAGMA user_version = 99")
        .unwrap();
    let e = SqliteStore::open(dir.db()).await.unwrap_err();
    assert!(
        matches!(&e, ractor_otp::jobs::StoreError::Settings(m) if m.contains("newer")),
        "{e}"
    );
}
