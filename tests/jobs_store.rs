//! The store suite against `SqliteStore` (in memory and on a file), plus what only the SQLite
//! store has: a file that survives reopening, and group commit.

mod store_suite;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use futures::future::BoxFuture;
use ractor_otp::jobs::{
    ClaimRequest, ClaimedJob, Enqueued, Finish, GroupIds, JobId, JobOptions, JobRecord, JobState,
    Lease, ListFilter, NewGroup, NewJob, SqliteStore, Store, StoreError, Timestamp,
};
use store_suite::{claim, email, email_with, get, t, EMAIL, LEASE_MS, SEC};

store_suite!(sqlite_memory, async {
    Some(ractor_otp::jobs::SqliteStore::in_memory().unwrap())
});

store_suite!(sqlite_file, async { Some(TempStore::open().await) });

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

/// `SqliteStore::open(<fresh dir>/jobs.sqlite3)`, deleting its directory when dropped. Every
/// method goes straight to the store.
struct TempStore {
    // Declared first: dropped (its journal thread told to stop) before the directory goes.
    store: SqliteStore,
    _dir: TempDir,
}

impl TempStore {
    async fn open() -> Self {
        let dir = TempDir::new();
        let store = SqliteStore::open(dir.db()).await.unwrap();
        TempStore { store, _dir: dir }
    }
}

impl Store for TempStore {
    fn enqueue(
        &self,
        jobs: Vec<NewJob>,
        now: Timestamp,
    ) -> BoxFuture<'_, Result<Vec<Enqueued>, StoreError>> {
        self.store.enqueue(jobs, now)
    }

    fn enqueue_group(
        &self,
        group: NewGroup,
        now: Timestamp,
    ) -> BoxFuture<'_, Result<GroupIds, StoreError>> {
        self.store.enqueue_group(group, now)
    }

    fn claim(
        &self,
        request: ClaimRequest,
        now: Timestamp,
    ) -> BoxFuture<'_, Result<Vec<ClaimedJob>, StoreError>> {
        self.store.claim(request, now)
    }

    fn heartbeat(
        &self,
        leases: Vec<Lease>,
        expires_at: Timestamp,
        now: Timestamp,
    ) -> BoxFuture<'_, Result<Vec<JobId>, StoreError>> {
        self.store.heartbeat(leases, expires_at, now)
    }

    fn finish(
        &self,
        lease: Lease,
        finish: Finish,
        now: Timestamp,
    ) -> BoxFuture<'_, Result<(), StoreError>> {
        self.store.finish(lease, finish, now)
    }

    fn give_back(&self, lease: Lease, now: Timestamp) -> BoxFuture<'_, Result<(), StoreError>> {
        self.store.give_back(lease, now)
    }

    fn complete_parked(
        &self,
        id: JobId,
        result: String,
        now: Timestamp,
    ) -> BoxFuture<'_, Result<(), StoreError>> {
        self.store.complete_parked(id, result, now)
    }

    fn release(&self, id: JobId, now: Timestamp) -> BoxFuture<'_, Result<(), StoreError>> {
        self.store.release(id, now)
    }

    fn cancel(&self, id: JobId, now: Timestamp) -> BoxFuture<'_, Result<(), StoreError>> {
        self.store.cancel(id, now)
    }

    fn retry(&self, id: JobId, now: Timestamp) -> BoxFuture<'_, Result<(), StoreError>> {
        self.store.retry(id, now)
    }

    fn get(
        &self,
        id: JobId,
        now: Timestamp,
    ) -> BoxFuture<'_, Result<Option<JobRecord>, StoreError>> {
        self.store.get(id, now)
    }

    fn list(
        &self,
        filter: ListFilter,
        now: Timestamp,
    ) -> BoxFuture<'_, Result<Vec<JobRecord>, StoreError>> {
        self.store.list(filter, now)
    }

    fn counts(&self, now: Timestamp) -> BoxFuture<'_, Result<Vec<(JobState, u64)>, StoreError>> {
        self.store.counts(now)
    }

    fn next_due(
        &self,
        queues: Vec<String>,
        names: Vec<String>,
    ) -> BoxFuture<'_, Result<Option<Timestamp>, StoreError>> {
        self.store.next_due(queues, names)
    }
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
