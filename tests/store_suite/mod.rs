//! The store test suite: what every [`Store`] backend must do, written once against the trait.
//!
//! A backend's test file says `mod store_suite;` and then, per store to test,
//!
//! ```ignore
//! store_suite!(sqlite_memory, async { Some(ractor_otp::jobs::SqliteStore::in_memory().unwrap()) });
//! ```
//!
//! which expands to `mod sqlite_memory { ... }` with one `#[tokio::test]` per case below. The
//! factory expression is evaluated afresh for every test; when it yields `None` (a backend
//! whose server is not configured) the test returns at once, so the factory should say why
//! with an `eprintln!`.
//!
//! Time is always passed in explicitly ([`t`]): stores never read a clock, so no case sleeps.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::time::Duration;

use futures::future::BoxFuture;
use ractor_otp::jobs::{
    ChildFailure, ChildOutcome, ClaimRequest, ClaimedJob, Enqueued, Finish, Fired, Firing,
    GroupIds, GroupPolicy, Job, JobId, JobOptions, JobRecord, JobState, Lease, ListFilter,
    NewGroup, NewJob, Overlap, Prune, Pruned, Resource, RetryBackoff, ScheduleDecl, ScheduleMark,
    ScheduleRecord, Store, StoreError, Timestamp, Turn, TurnOutcome,
};
use serde::{Deserialize, Serialize};

/// Instantiates the suite: `store_suite!(module_name, async { Some(store) /* or None */ })`,
/// optionally followed by one attribute every generated test gets (e.g. `#[ignore = "why"]`).
#[macro_export]
macro_rules! store_suite {
    ($module:ident, $factory:expr $(,)?) => {
        $crate::store_suite!($module, $factory, #[cfg(all())]);
    };
    ($module:ident, $factory:expr, #[$attr:meta] $(,)?) => {
        mod $module {
            #[allow(unused_imports)]
            use super::*;

            $crate::store_suite!(@cases #[$attr] $factory;
                enqueue_then_get,
                scheduled_job_waits_for_its_time,
                idempotency_key_returns_the_existing_job,
                claim_orders_by_priority_then_run_at_then_id,
                claim_takes_only_requested_queues_and_names,
                claim_over_several_queues_keeps_one_claim_order,
                lease_fences_stale_runs_and_expiry_reclaims,
                expired_lease_on_last_attempt_discards,
                heartbeat_extends_leases_and_reports_lost_ones,
                finish_completed_stores_result_and_follow_ups,
                lost_lease_finish_writes_nothing,
                failed_job_retries_with_backoff_then_discards,
                failed_without_retry_discards_at_once,
                snooze_and_give_back_do_not_count_the_attempt,
                parked_job_waits_for_complete_or_release,
                cancel_stops_jobs_and_fences_running_ones,
                retry_revives_final_jobs,
                resource_capacity_one_runs_one_at_a_time,
                resource_capacity_two_runs_two,
                expired_holder_frees_its_resource,
                expired_holder_behind_busy_resource_records_lost_run_once,
                resource_is_shared_across_job_names,
                fan_in_collector_runs_once_after_all_children,
                fan_in_empty_group_runs_collector_at_once,
                fan_in_fail_fast_cancels_siblings,
                fan_in_retried_child_is_waited_for_again,
                fan_in_counts_every_way_a_child_ends,
                fan_in_fail_fast_on_a_cancelled_child,
                fan_in_fail_fast_on_lost_last_attempt_during_claim,
                cancelling_a_collector_cancels_its_children,
                fan_in_children_cannot_carry_idempotency_keys,
                fan_in_duplicate_collector_key_returns_same_group,
                counts_list_every_state,
                list_filters_and_pages,
                next_due_reports_earliest_instant,
                finish_and_claim_is_one_turn,
                unhandled_counts_due_jobs_of_other_types,
                schedule_slots_fire_once_by_compare_and_set,
                schedule_overlap_holds_back_or_replaces,
                prune_deletes_old_finished_jobs_by_state_in_batches,
                pruning_keeps_uniqueness_and_what_a_fan_in_needs,
                unique_for_expires_a_key,
                delete_takes_only_finished_jobs_no_fan_in_needs,
            );
        }
    };
    (@cases #[$attr:meta] $factory:expr; $($case:ident),* $(,)?) => {
        $(
            #[$attr]
            #[::tokio::test]
            async fn $case() {
                let Some(store) = $factory.await else {
                    return;
                };
                $crate::store_suite::$case(store).await;
            }
        )*
    };
}

// ---------------------------------------------------------------------------------------------
// A store with something to clean up after it.
// ---------------------------------------------------------------------------------------------

/// A store and a guard dropped after it (a temporary directory, a schema to drop). Every
/// method goes straight to the store.
pub struct Guarded<S, G> {
    // Declared first: dropped before the guard.
    pub store: S,
    #[allow(dead_code)] // held for its `Drop`
    pub guard: G,
}

impl<S: Store, G: Send + Sync + 'static> Store for Guarded<S, G> {
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

    fn finish_and_claim(
        &self,
        turn: Turn,
        now: Timestamp,
    ) -> BoxFuture<'_, Result<TurnOutcome, StoreError>> {
        self.store.finish_and_claim(turn, now)
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

    fn unhandled(
        &self,
        queues: Vec<String>,
        names: Vec<String>,
        now: Timestamp,
    ) -> BoxFuture<'_, Result<Vec<(String, u64)>, StoreError>> {
        self.store.unhandled(queues, names, now)
    }

    fn prune(&self, prune: Prune, now: Timestamp) -> BoxFuture<'_, Result<Pruned, StoreError>> {
        self.store.prune(prune, now)
    }

    fn delete(&self, id: JobId, now: Timestamp) -> BoxFuture<'_, Result<(), StoreError>> {
        self.store.delete(id, now)
    }

    fn declare_schedules(
        &self,
        schedules: Vec<ScheduleDecl>,
        now: Timestamp,
    ) -> BoxFuture<'_, Result<Vec<ScheduleMark>, StoreError>> {
        self.store.declare_schedules(schedules, now)
    }

    fn fire_schedule(
        &self,
        firing: Firing,
        now: Timestamp,
    ) -> BoxFuture<'_, Result<Fired, StoreError>> {
        self.store.fire_schedule(firing, now)
    }

    fn schedules(&self) -> BoxFuture<'_, Result<Vec<ScheduleRecord>, StoreError>> {
        self.store.schedules()
    }

    fn wakeups(&self) -> Option<tokio::sync::watch::Receiver<u64>> {
        self.store.wakeups()
    }
}

// ---------------------------------------------------------------------------------------------
// Jobs and helpers.
// ---------------------------------------------------------------------------------------------

/// Milliseconds in a second.
pub const SEC: i64 = 1_000;
/// The lease every claim asks for.
pub const LEASE: Duration = Duration::from_secs(30);
pub const LEASE_MS: i64 = 30_000;
const T0: i64 = 1_700_000_000_000;

/// The instant `ms` milliseconds after the suite's epoch.
pub fn t(ms: i64) -> Timestamp {
    Timestamp::from_millis(T0 + ms)
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Email {
    pub to: String,
}

impl Job for Email {
    const NAME: &'static str = "email";
    type Output = String;
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    pub n: u32,
}

impl Job for Report {
    const NAME: &'static str = "report";
    const VERSION: u32 = 3;
    type Output = u64;
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Collect {
    pub label: String,
}

impl Job for Collect {
    const NAME: &'static str = "collect";
    type Output = Vec<String>;
}

pub const EMAIL: &str = Email::NAME;
pub const REPORT: &str = Report::NAME;
pub const COLLECT: &str = Collect::NAME;

pub fn email(to: &str) -> NewJob {
    email_with(to, JobOptions::new())
}

pub fn email_with(to: &str, options: JobOptions) -> NewJob {
    NewJob::new(&Email { to: to.into() }, options).unwrap()
}

pub fn report_with(n: u32, options: JobOptions) -> NewJob {
    NewJob::new(&Report { n }, options).unwrap()
}

pub fn collector(label: &str) -> NewJob {
    collector_with(label, JobOptions::new())
}

pub fn collector_with(label: &str, options: JobOptions) -> NewJob {
    NewJob::new(
        &Collect {
            label: label.into(),
        },
        options,
    )
    .unwrap()
}

fn group(children: Vec<NewJob>, collector: NewJob, policy: GroupPolicy) -> NewGroup {
    NewGroup {
        children,
        collector,
        policy,
    }
}

/// Enqueues one job that must be new; its id.
pub async fn add<S: Store>(store: &S, job: NewJob, now: Timestamp) -> JobId {
    let out = store.enqueue(vec![job], now).await.unwrap();
    assert_eq!(out.len(), 1, "one enqueued entry per job");
    assert!(!out[0].duplicate, "a job without a stored key is new");
    out[0].id
}

pub fn request(owner: &str, queues: &[&str], names: &[&str], limit: u32) -> ClaimRequest {
    ClaimRequest {
        owner: owner.into(),
        queues: queues.iter().map(|q| q.to_string()).collect(),
        names: names.iter().map(|n| n.to_string()).collect(),
        limit,
        lease: LEASE,
    }
}

/// Claims from queue `default` as `runner-1`.
pub async fn claim<S: Store>(
    store: &S,
    names: &[&str],
    limit: u32,
    now: Timestamp,
) -> Vec<ClaimedJob> {
    claim_as(store, "runner-1", names, limit, now).await
}

pub async fn claim_as<S: Store>(
    store: &S,
    owner: &str,
    names: &[&str],
    limit: u32,
    now: Timestamp,
) -> Vec<ClaimedJob> {
    store
        .claim(request(owner, &["default"], names, limit), now)
        .await
        .unwrap()
}

/// Claims exactly one job (asserting its id).
pub async fn claim_one<S: Store>(
    store: &S,
    names: &[&str],
    id: JobId,
    now: Timestamp,
) -> ClaimedJob {
    let mut got = claim(store, names, 10, now).await;
    assert_eq!(ids(&got), vec![id], "claim at {now:?}");
    got.pop().unwrap()
}

pub fn ids(claimed: &[ClaimedJob]) -> Vec<JobId> {
    claimed.iter().map(|c| c.id).collect()
}

pub fn record_ids(records: &[JobRecord]) -> Vec<JobId> {
    records.iter().map(|r| r.id).collect()
}

pub fn lease(c: &ClaimedJob) -> Lease {
    Lease {
        id: c.id,
        token: c.token,
    }
}

pub fn completed(result: &str) -> Finish {
    Finish::Completed {
        result: result.into(),
        follow_ups: Vec::new(),
        groups: Vec::new(),
    }
}

pub fn failed(error: &str, retry: bool) -> Finish {
    Finish::Failed {
        error: error.into(),
        retry,
    }
}

pub async fn get<S: Store>(store: &S, id: JobId, now: Timestamp) -> JobRecord {
    store
        .get(id, now)
        .await
        .unwrap()
        .unwrap_or_else(|| panic!("{id} should exist"))
}

pub async fn state<S: Store>(store: &S, id: JobId, now: Timestamp) -> JobState {
    get(store, id, now).await.state
}

pub async fn list<S: Store>(store: &S, filter: ListFilter, now: Timestamp) -> Vec<JobId> {
    record_ids(&store.list(filter, now).await.unwrap())
}

pub async fn all_ids<S: Store>(store: &S, now: Timestamp) -> Vec<JobId> {
    list(
        store,
        ListFilter {
            limit: Some(10_000),
            ..ListFilter::default()
        },
        now,
    )
    .await
}

/// The counts, checked to list every state exactly once.
pub async fn counts<S: Store>(store: &S, now: Timestamp) -> BTreeMap<JobState, u64> {
    let raw = store.counts(now).await.unwrap();
    assert_eq!(
        raw.len(),
        JobState::ALL.len(),
        "every state listed: {raw:?}"
    );
    let map: BTreeMap<JobState, u64> = raw.iter().copied().collect();
    assert_eq!(map.len(), JobState::ALL.len(), "no state twice: {raw:?}");
    map
}

/// Counts with these non-zero entries, every other state zero.
pub fn expect_counts(nonzero: &[(JobState, u64)]) -> BTreeMap<JobState, u64> {
    let mut map: BTreeMap<JobState, u64> = JobState::ALL.iter().map(|s| (*s, 0)).collect();
    for (s, n) in nonzero {
        map.insert(*s, *n);
    }
    map
}

pub fn assert_invalid_state<T: Debug>(result: Result<T, StoreError>, id: JobId, state: JobState) {
    match result {
        Err(StoreError::InvalidState {
            id: got_id,
            state: got_state,
            ..
        }) => {
            assert_eq!((got_id, got_state), (id, state), "InvalidState fields");
        }
        other => panic!("expected InvalidState({id}, {state}), got {other:?}"),
    }
}

fn lost<T: Debug + PartialEq>(result: Result<T, StoreError>, id: JobId) {
    assert_eq!(result, Err(StoreError::LeaseLost(id)));
}

/// The (attempt, at, error) triples of a job's history.
fn history(record: &JobRecord) -> Vec<(u32, Timestamp, String)> {
    record
        .errors
        .iter()
        .map(|e| (e.attempt, e.at, e.error.clone()))
        .collect()
}

fn payload<J: Serialize>(job: &J) -> String {
    serde_json::to_string(job).unwrap()
}

// ---------------------------------------------------------------------------------------------
// Enqueue, get, schedule, idempotency.
// ---------------------------------------------------------------------------------------------

pub async fn enqueue_then_get<S: Store>(store: S) {
    let options = JobOptions::new()
        .priority(5)
        .max_attempts(3)
        .timeout(Duration::from_secs(45))
        .resource("printer", 2)
        .idempotency_key("report-7");
    let id = add(&store, report_with(7, options), t(0)).await;
    let plain = add(&store, email("ann@example.com"), t(0)).await;
    assert!(plain > id, "ids grow");

    let r = get(&store, id, t(0)).await;
    assert_eq!(r.id, id);
    assert_eq!(r.state, JobState::Available);
    assert_eq!(r.attempt, 0);
    assert_eq!(r.name, "report");
    assert_eq!(r.version, 3);
    assert_eq!(r.payload, payload(&Report { n: 7 }));
    assert_eq!(
        serde_json::from_str::<Report>(&r.payload).unwrap(),
        Report { n: 7 }
    );
    assert_eq!(r.queue, "default");
    assert_eq!(r.priority, 5);
    assert_eq!(r.run_at, t(0));
    assert_eq!(r.max_attempts, 3);
    assert_eq!(r.timeout, Some(Duration::from_secs(45)));
    assert_eq!(
        r.resource,
        Some(Resource {
            key: "printer".into(),
            capacity: 2
        })
    );
    assert_eq!(r.idempotency_key.as_deref(), Some("report-7"));
    assert_eq!(r.lease_owner, None);
    assert_eq!(r.lease_expires_at, None);
    assert_eq!(r.parent, None);
    assert_eq!(r.pending_children, 0);
    assert_eq!(r.result, None);
    assert!(r.errors.is_empty());
    assert_eq!(r.inserted_at, t(0));
    assert_eq!(r.finished_at, None);

    let p = get(&store, plain, t(0)).await;
    assert_eq!(p.name, "email");
    assert_eq!(p.version, 1);
    assert_eq!(p.priority, 0);
    assert_eq!(p.max_attempts, 10, "the default");
    assert_eq!(p.timeout, None);
    assert_eq!(p.resource, None);
    assert_eq!(p.idempotency_key, None);

    // Another queue is stored as given.
    let other = add(
        &store,
        email_with("b", JobOptions::new().queue("mail")),
        t(0),
    )
    .await;
    assert_eq!(get(&store, other, t(0)).await.queue, "mail");

    // No such job.
    assert_eq!(store.get(JobId(9_999_999), t(0)).await.unwrap(), None);
}

pub async fn scheduled_job_waits_for_its_time<S: Store>(store: S) {
    let id = add(
        &store,
        email_with("later", JobOptions::new().not_before(t(10 * SEC))),
        t(0),
    )
    .await;
    let r = get(&store, id, t(0)).await;
    assert_eq!(r.state, JobState::Scheduled);
    assert_eq!(r.run_at, t(10 * SEC));
    assert_eq!(
        state(&store, id, t(10 * SEC - 1)).await,
        JobState::Scheduled
    );
    assert_eq!(
        counts(&store, t(0)).await,
        expect_counts(&[(JobState::Scheduled, 1)])
    );
    let scheduled = ListFilter {
        state: Some(JobState::Scheduled),
        ..ListFilter::default()
    };
    let available = ListFilter {
        state: Some(JobState::Available),
        ..ListFilter::default()
    };
    assert_eq!(list(&store, scheduled.clone(), t(0)).await, vec![id]);
    assert_eq!(list(&store, available.clone(), t(0)).await, vec![]);

    // Never claimed early.
    assert!(claim(&store, &[EMAIL], 10, t(0)).await.is_empty());
    assert!(claim(&store, &[EMAIL], 10, t(10 * SEC - 1))
        .await
        .is_empty());

    // Once its time has come it reads as available everywhere.
    let due = t(10 * SEC);
    assert_eq!(state(&store, id, due).await, JobState::Available);
    assert_eq!(
        counts(&store, due).await,
        expect_counts(&[(JobState::Available, 1)])
    );
    assert_eq!(list(&store, scheduled, due).await, vec![]);
    assert_eq!(list(&store, available, due).await, vec![id]);
    let all = store.list(ListFilter::default(), due).await.unwrap();
    assert_eq!(all.len(), 1);
    assert_eq!(all[0].state, JobState::Available);

    // And is claimed exactly at its run_at.
    let c = claim_one(&store, &[EMAIL], id, due).await;
    assert_eq!(c.attempt, 1);

    // A not_before already past is simply available, due now.
    let past = add(
        &store,
        email_with("past", JobOptions::new().not_before(t(-5 * SEC))),
        t(20 * SEC),
    )
    .await;
    let r = get(&store, past, t(20 * SEC)).await;
    assert_eq!(r.state, JobState::Available);
    assert_eq!(r.run_at, t(20 * SEC));
}

pub async fn idempotency_key_returns_the_existing_job<S: Store>(store: S) {
    let first = store
        .enqueue(
            vec![email_with("a", JobOptions::new().idempotency_key("k-a"))],
            t(0),
        )
        .await
        .unwrap();
    assert_eq!(first.len(), 1);
    assert!(!first[0].duplicate);
    let id = first[0].id;

    let again = store
        .enqueue(
            vec![email_with(
                "other",
                JobOptions::new().idempotency_key("k-a"),
            )],
            t(SEC),
        )
        .await
        .unwrap();
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].id, id);
    assert!(again[0].duplicate);
    assert_eq!(
        get(&store, id, t(SEC)).await.payload,
        payload(&Email { to: "a".into() }),
        "the first job is kept"
    );

    // Within one call.
    let batch = store
        .enqueue(
            vec![
                email_with("b1", JobOptions::new().idempotency_key("k-b")),
                email_with("b2", JobOptions::new().idempotency_key("k-b")),
                email("free"),
                email_with("a2", JobOptions::new().idempotency_key("k-a")),
            ],
            t(2 * SEC),
        )
        .await
        .unwrap();
    assert_eq!(batch.len(), 4);
    assert!(!batch[0].duplicate);
    assert_eq!(batch[1].id, batch[0].id);
    assert!(batch[1].duplicate);
    assert!(!batch[2].duplicate);
    assert_ne!(batch[2].id, batch[0].id);
    assert_eq!(batch[3].id, id);
    assert!(batch[3].duplicate);
    assert_eq!(
        get(&store, batch[0].id, t(2 * SEC)).await.payload,
        payload(&Email { to: "b1".into() })
    );

    assert_eq!(
        all_ids(&store, t(2 * SEC)).await,
        vec![id, batch[0].id, batch[2].id],
        "three jobs in all"
    );
}

// ---------------------------------------------------------------------------------------------
// Claims.
// ---------------------------------------------------------------------------------------------

pub async fn claim_orders_by_priority_then_run_at_then_id<S: Store>(store: S) {
    // run_at is the enqueue instant: enqueue out of time order to separate run_at from id.
    let j1 = add(&store, email("j1"), t(2 * SEC)).await;
    let j2 = add(&store, email("j2"), t(SEC)).await;
    let j3 = add(
        &store,
        email_with("j3", JobOptions::new().priority(5)),
        t(3 * SEC),
    )
    .await;
    let j4 = add(&store, email("j4"), t(SEC)).await;
    let j5 = add(
        &store,
        email_with("j5", JobOptions::new().priority(-1)),
        t(0),
    )
    .await;
    let j6 = add(
        &store,
        email_with("j6", JobOptions::new().priority(5)),
        t(3 * SEC),
    )
    .await;

    let now = t(10 * SEC);
    assert_eq!(ids(&claim(&store, &[EMAIL], 2, now).await), vec![j3, j6]);
    assert_eq!(ids(&claim(&store, &[EMAIL], 1, now).await), vec![j2]);
    assert_eq!(
        ids(&claim(&store, &[EMAIL], 10, now).await),
        vec![j4, j1, j5]
    );
    assert!(claim(&store, &[EMAIL], 10, now).await.is_empty());
    assert_eq!(
        counts(&store, now).await,
        expect_counts(&[(JobState::Executing, 6)])
    );
}

pub async fn claim_takes_only_requested_queues_and_names<S: Store>(store: S) {
    let e_default = add(&store, email("d"), t(0)).await;
    let r_default = add(&store, report_with(1, JobOptions::new()), t(0)).await;
    let e_other = add(
        &store,
        email_with("o", JobOptions::new().queue("other")),
        t(0),
    )
    .await;
    let now = t(SEC);

    // Nothing for empty requests.
    let mut empty_queues = request("r", &[], &[EMAIL, REPORT], 10);
    assert!(store
        .claim(empty_queues.clone(), now)
        .await
        .unwrap()
        .is_empty());
    empty_queues.queues = vec!["default".into()];
    empty_queues.names = Vec::new();
    assert!(store.claim(empty_queues, now).await.unwrap().is_empty());
    assert!(claim(&store, &[EMAIL, REPORT], 0, now).await.is_empty());
    assert!(claim(&store, &["unknown"], 10, now).await.is_empty());
    assert_eq!(
        counts(&store, now).await,
        expect_counts(&[(JobState::Available, 3)])
    );

    // Only the requested name in the requested queue.
    let got = claim(&store, &[EMAIL], 10, now).await;
    assert_eq!(ids(&got), vec![e_default]);
    assert_eq!(got[0].queue, "default");
    assert_eq!(state(&store, e_other, now).await, JobState::Available);
    assert_eq!(state(&store, r_default, now).await, JobState::Available);

    let got = store
        .claim(request("r", &["other"], &[EMAIL, REPORT], 10), now)
        .await
        .unwrap();
    assert_eq!(ids(&got), vec![e_other]);
    assert_eq!(got[0].queue, "other");
    assert_eq!(state(&store, r_default, now).await, JobState::Available);

    let got = store
        .claim(request("r", &["other", "default"], &[REPORT], 10), now)
        .await
        .unwrap();
    assert_eq!(ids(&got), vec![r_default]);
    assert!(claim(&store, &[EMAIL, REPORT], 10, now).await.is_empty());
}

pub async fn claim_over_several_queues_keeps_one_claim_order<S: Store>(store: S) {
    // Each queue is scanned on its own; the claim merges them by priority, then time, then
    // id, and takes no more than the limit in all.
    let in_queue = |queue: &str, priority: i32| JobOptions::new().queue(queue).priority(priority);
    let a_low = add(&store, email_with("a-low", in_queue("a", 0)), t(0)).await;
    let b_high = add(&store, email_with("b-high", in_queue("b", 5)), t(SEC)).await;
    let a_high = add(&store, email_with("a-high", in_queue("a", 5)), t(2 * SEC)).await;
    let b_low = add(&store, email_with("b-low", in_queue("b", 0)), t(3 * SEC)).await;
    let c = add(&store, email_with("c", in_queue("c", 9)), t(0)).await;
    let now = t(10 * SEC);
    let first = store
        .claim(request("r", &["a", "b"], &[EMAIL], 3), now)
        .await
        .unwrap();
    assert_eq!(ids(&first), vec![b_high, a_high, a_low]);
    let rest = store
        .claim(request("r", &["b", "a"], &[EMAIL], 10), now)
        .await
        .unwrap();
    assert_eq!(ids(&rest), vec![b_low]);
    assert_eq!(state(&store, c, now).await, JobState::Available);
}

pub async fn lease_fences_stale_runs_and_expiry_reclaims<S: Store>(store: S) {
    let id = add(
        &store,
        report_with(
            9,
            JobOptions::new()
                .max_attempts(3)
                .timeout(Duration::from_secs(5)),
        ),
        t(0),
    )
    .await;

    let first = claim_as(&store, "runner-a", &[REPORT], 10, t(SEC)).await;
    assert_eq!(ids(&first), vec![id]);
    let c1 = first[0].clone();
    assert_eq!(c1.name, "report");
    assert_eq!(c1.version, 3);
    assert_eq!(c1.payload, payload(&Report { n: 9 }));
    assert_eq!(c1.queue, "default");
    assert_eq!(c1.attempt, 1);
    assert_eq!(c1.max_attempts, 3);
    assert_eq!(c1.timeout, Some(Duration::from_secs(5)));
    assert_eq!(c1.lease_expires_at, t(SEC + LEASE_MS));
    assert!(c1.children.is_empty());

    let r = get(&store, id, t(SEC)).await;
    assert_eq!(r.state, JobState::Executing);
    assert_eq!(r.attempt, 1);
    assert_eq!(r.lease_owner.as_deref(), Some("runner-a"));
    assert_eq!(r.lease_expires_at, Some(t(SEC + LEASE_MS)));

    // A wrong token is refused and changes nothing.
    let forged = Lease {
        id,
        token: c1.token + 1,
    };
    lost(store.finish(forged, completed("1"), t(2 * SEC)).await, id);
    lost(store.give_back(forged, t(2 * SEC)).await, id);
    let r = get(&store, id, t(2 * SEC)).await;
    assert_eq!(r.state, JobState::Executing);
    assert_eq!(r.result, None);

    // Not reclaimed before the lease ends.
    assert!(claim(&store, &[REPORT], 10, t(SEC + LEASE_MS - 1))
        .await
        .is_empty());

    // Reclaimed at expiry: new token, next attempt, lost run in the history.
    let expiry = t(SEC + LEASE_MS);
    let second = claim_as(&store, "runner-b", &[REPORT], 10, expiry).await;
    assert_eq!(ids(&second), vec![id]);
    let c2 = second[0].clone();
    assert_ne!(c2.token, c1.token);
    assert_eq!(c2.attempt, 2);
    assert_eq!(c2.lease_expires_at, expiry.after(LEASE));
    let r = get(&store, id, expiry).await;
    assert_eq!(r.lease_owner.as_deref(), Some("runner-b"));
    assert_eq!(r.attempt, 2);
    assert_eq!(
        r.errors.len(),
        1,
        "the lost run is recorded: {:?}",
        r.errors
    );
    assert_eq!(r.errors[0].attempt, 1);
    assert_eq!(r.errors[0].at, expiry);
    assert!(!r.errors[0].error.is_empty());

    // The stale run is fenced off; the current one finishes.
    lost(
        store.finish(lease(&c1), completed("\"old\""), expiry).await,
        id,
    );
    lost(
        store
            .finish(lease(&c1), failed("old failed", true), expiry)
            .await,
        id,
    );
    assert_eq!(get(&store, id, expiry).await.errors.len(), 1);
    store
        .finish(lease(&c2), completed("\"new\""), t(40 * SEC))
        .await
        .unwrap();
    let r = get(&store, id, t(40 * SEC)).await;
    assert_eq!(r.state, JobState::Completed);
    assert_eq!(r.result.as_deref(), Some("\"new\""));
    lost(
        store
            .finish(lease(&c2), completed("\"again\""), t(41 * SEC))
            .await,
        id,
    );
    assert_eq!(
        get(&store, id, t(41 * SEC)).await.result.as_deref(),
        Some("\"new\"")
    );
}

pub async fn expired_lease_on_last_attempt_discards<S: Store>(store: S) {
    let last = add(
        &store,
        email_with("last", JobOptions::new().max_attempts(1)),
        t(0),
    )
    .await;
    let c = claim_one(&store, &[EMAIL], last, t(0)).await;
    assert_eq!((c.attempt, c.max_attempts), (1, 1));
    let other = add(&store, email("other"), t(SEC)).await;

    // At expiry the lost run used the last attempt: discarded, not returned, and it does not
    // take the place of the other job under the limit.
    let expiry = t(LEASE_MS);
    let got = claim(&store, &[EMAIL], 1, expiry).await;
    assert_eq!(ids(&got), vec![other]);
    let r = get(&store, last, expiry).await;
    assert_eq!(r.state, JobState::Discarded);
    assert_eq!(r.attempt, 1);
    assert_eq!(r.finished_at, Some(expiry));
    assert_eq!(r.lease_owner, None);
    assert_eq!(r.errors.len(), 1);
    assert_eq!(r.errors[0].attempt, 1);
    assert_eq!(r.errors[0].at, expiry);

    lost(store.finish(lease(&c), completed("1"), expiry).await, last);
    store
        .finish(lease(&got[0]), completed("2"), expiry)
        .await
        .unwrap();
    assert!(claim(&store, &[EMAIL], 10, t(100 * SEC)).await.is_empty());
    assert_eq!(state(&store, last, t(100 * SEC)).await, JobState::Discarded);
}

pub async fn heartbeat_extends_leases_and_reports_lost_ones<S: Store>(store: S) {
    let a = add(&store, email("a"), t(0)).await;
    let b = add(&store, email("b"), t(0)).await;
    let got = claim(&store, &[EMAIL], 10, t(0)).await;
    assert_eq!(ids(&got), vec![a, b]);
    let (la, lb) = (lease(&got[0]), lease(&got[1]));

    let renewed = store
        .heartbeat(vec![la, lb], t(60 * SEC), t(20 * SEC))
        .await
        .unwrap();
    assert!(renewed.is_empty(), "both still held: {renewed:?}");
    assert_eq!(
        get(&store, a, t(20 * SEC)).await.lease_expires_at,
        Some(t(60 * SEC))
    );
    // The old expiry no longer reclaims.
    assert!(claim(&store, &[EMAIL], 10, t(LEASE_MS)).await.is_empty());
    assert_eq!(get(&store, a, t(LEASE_MS)).await.attempt, 1);

    // A stale token is reported lost and extends nothing.
    let stale = Lease {
        id: a,
        token: la.token + 7,
    };
    let lost_ids = store
        .heartbeat(vec![stale], t(500 * SEC), t(31 * SEC))
        .await
        .unwrap();
    assert_eq!(lost_ids, vec![a]);
    assert_eq!(
        get(&store, a, t(31 * SEC)).await.lease_expires_at,
        Some(t(60 * SEC))
    );

    // A finished job's lease is lost; the other is extended.
    store
        .finish(lb, completed("null"), t(40 * SEC))
        .await
        .unwrap();
    let lost_ids = store
        .heartbeat(vec![la, lb], t(90 * SEC), t(45 * SEC))
        .await
        .unwrap();
    assert_eq!(lost_ids, vec![b]);
    assert!(claim(&store, &[EMAIL], 10, t(60 * SEC)).await.is_empty());

    // Reclaimed at the renewed expiry; the old lease is lost from then on.
    let again = claim_one(&store, &[EMAIL], a, t(90 * SEC)).await;
    assert_eq!(again.attempt, 2);
    let lost_ids = store
        .heartbeat(vec![la, lease(&again)], t(200 * SEC), t(91 * SEC))
        .await
        .unwrap();
    assert_eq!(lost_ids, vec![a]);
    assert_eq!(
        get(&store, a, t(91 * SEC)).await.lease_expires_at,
        Some(t(200 * SEC))
    );
}

// ---------------------------------------------------------------------------------------------
// Finishing.
// ---------------------------------------------------------------------------------------------

pub async fn finish_completed_stores_result_and_follow_ups<S: Store>(store: S) {
    let id = add(&store, email("x"), t(0)).await;
    let c = claim_one(&store, &[EMAIL], id, t(0)).await;
    let finish = Finish::Completed {
        result: "\"sent\"".into(),
        follow_ups: vec![report_with(1, JobOptions::new()), email("follow")],
        groups: vec![group(
            vec![email("child")],
            collector("g"),
            GroupPolicy::Partial,
        )],
    };
    store.finish(lease(&c), finish, t(5 * SEC)).await.unwrap();

    let r = get(&store, id, t(5 * SEC)).await;
    assert_eq!(r.state, JobState::Completed);
    assert_eq!(r.result.as_deref(), Some("\"sent\""));
    assert_eq!(r.finished_at, Some(t(5 * SEC)));
    assert_eq!(r.lease_owner, None);
    assert_eq!(r.lease_expires_at, None);
    assert_eq!(r.attempt, 1);

    let now = t(5 * SEC);
    let all = store.list(ListFilter::default(), now).await.unwrap();
    assert_eq!(all.len(), 5, "original, two follow-ups, collector, child");
    let reports: Vec<&JobRecord> = all.iter().filter(|j| j.name == REPORT).collect();
    assert_eq!(reports.len(), 1);
    assert_eq!(reports[0].payload, payload(&Report { n: 1 }));
    assert_eq!(reports[0].state, JobState::Available);
    assert_eq!(reports[0].inserted_at, now);
    let follow = all
        .iter()
        .find(|j| {
            j.payload
                == payload(&Email {
                    to: "follow".into(),
                })
        })
        .expect("the follow-up email");
    assert_eq!(follow.state, JobState::Available);
    let coll = all
        .iter()
        .find(|j| j.name == COLLECT)
        .expect("the collector");
    assert_eq!(coll.state, JobState::Waiting);
    assert_eq!(coll.pending_children, 1);
    let child = all
        .iter()
        .find(|j| j.payload == payload(&Email { to: "child".into() }))
        .expect("the child");
    assert_eq!(child.parent, Some(coll.id));
    assert_eq!(
        counts(&store, now).await,
        expect_counts(&[
            (JobState::Completed, 1),
            (JobState::Available, 3),
            (JobState::Waiting, 1),
        ])
    );
}

pub async fn lost_lease_finish_writes_nothing<S: Store>(store: S) {
    let id = add(&store, email("x"), t(0)).await;
    let old = claim_one(&store, &[EMAIL], id, t(0)).await;
    let new = claim_one(&store, &[EMAIL], id, t(LEASE_MS)).await;
    let now = t(LEASE_MS + SEC);

    let finish = Finish::Completed {
        result: "\"ghost\"".into(),
        follow_ups: vec![email("ghost follow-up"), report_with(2, JobOptions::new())],
        groups: vec![group(
            vec![email("ghost child")],
            collector("ghost"),
            GroupPolicy::Partial,
        )],
    };
    lost(store.finish(lease(&old), finish, now).await, id);
    lost(store.finish(lease(&old), Finish::Parked, now).await, id);
    lost(
        store
            .finish(lease(&old), Finish::Snoozed { until: t(0) }, now)
            .await,
        id,
    );

    assert_eq!(
        all_ids(&store, now).await,
        vec![id],
        "no follow-up was added"
    );
    let r = get(&store, id, now).await;
    assert_eq!(r.state, JobState::Executing);
    assert_eq!(r.result, None);
    assert_eq!(r.attempt, 2);
    assert_eq!(r.errors.len(), 1, "only the lost run: {:?}", r.errors);
    assert_eq!(
        counts(&store, now).await,
        expect_counts(&[(JobState::Executing, 1)])
    );

    // The holder's finish goes through, with its follow-ups.
    let finish = Finish::Completed {
        result: "\"real\"".into(),
        follow_ups: vec![email("real follow-up")],
        groups: Vec::new(),
    };
    store.finish(lease(&new), finish, now).await.unwrap();
    assert_eq!(all_ids(&store, now).await.len(), 2);
    assert_eq!(
        get(&store, id, now).await.result.as_deref(),
        Some("\"real\"")
    );
}

pub async fn failed_job_retries_with_backoff_then_discards<S: Store>(store: S) {
    let options = JobOptions::new()
        .max_attempts(4)
        .backoff(RetryBackoff::exponential(
            Duration::from_secs(1),
            Duration::from_secs(3600),
        ));
    let id = add(&store, email_with("flaky", options), t(0)).await;

    // Attempt 1 fails at 100 ms: retry after 1 s.
    let c = claim_one(&store, &[EMAIL], id, t(0)).await;
    assert_eq!(c.attempt, 1);
    store
        .finish(lease(&c), failed("boom 1", true), t(100))
        .await
        .unwrap();
    let r = get(&store, id, t(100)).await;
    assert_eq!(r.state, JobState::Retryable);
    assert_eq!(r.run_at, t(1_100));
    assert_eq!(r.lease_owner, None);
    assert_eq!(r.finished_at, None);
    assert_eq!(
        counts(&store, t(100)).await,
        expect_counts(&[(JobState::Retryable, 1)])
    );
    assert!(claim(&store, &[EMAIL], 10, t(1_099)).await.is_empty());

    // Attempt 2 fails at 2 s: retry after 2 s.
    let c = claim_one(&store, &[EMAIL], id, t(1_100)).await;
    assert_eq!(c.attempt, 2);
    store
        .finish(lease(&c), failed("boom 2", true), t(2_000))
        .await
        .unwrap();
    assert_eq!(get(&store, id, t(2_000)).await.run_at, t(4_000));
    assert!(claim(&store, &[EMAIL], 10, t(3_999)).await.is_empty());

    // Attempt 3 fails at 5 s: retry after 4 s.
    let c = claim_one(&store, &[EMAIL], id, t(4_000)).await;
    assert_eq!(c.attempt, 3);
    store
        .finish(lease(&c), failed("boom 3", true), t(5_000))
        .await
        .unwrap();
    assert_eq!(get(&store, id, t(5_000)).await.run_at, t(9_000));
    assert!(claim(&store, &[EMAIL], 10, t(8_999)).await.is_empty());

    // Attempt 4, the last, fails: discarded with the whole history.
    let c = claim_one(&store, &[EMAIL], id, t(9_000)).await;
    assert_eq!((c.attempt, c.max_attempts), (4, 4));
    store
        .finish(lease(&c), failed("boom 4", true), t(9_500))
        .await
        .unwrap();
    let r = get(&store, id, t(9_500)).await;
    assert_eq!(r.state, JobState::Discarded);
    assert_eq!(r.finished_at, Some(t(9_500)));
    assert_eq!(r.attempt, 4);
    assert_eq!(
        history(&r),
        vec![
            (1, t(100), "boom 1".to_owned()),
            (2, t(2_000), "boom 2".to_owned()),
            (3, t(5_000), "boom 3".to_owned()),
            (4, t(9_500), "boom 4".to_owned()),
        ]
    );
    assert!(claim(&store, &[EMAIL], 10, t(1_000 * SEC)).await.is_empty());
    assert_eq!(
        counts(&store, t(9_500)).await,
        expect_counts(&[(JobState::Discarded, 1)])
    );
}

pub async fn failed_without_retry_discards_at_once<S: Store>(store: S) {
    let id = add(
        &store,
        email_with("bad", JobOptions::new().max_attempts(5)),
        t(0),
    )
    .await;
    let c = claim_one(&store, &[EMAIL], id, t(0)).await;
    store
        .finish(lease(&c), failed("invalid address", false), t(SEC))
        .await
        .unwrap();
    let r = get(&store, id, t(SEC)).await;
    assert_eq!(r.state, JobState::Discarded);
    assert_eq!(r.finished_at, Some(t(SEC)));
    assert_eq!(history(&r), vec![(1, t(SEC), "invalid address".to_owned())]);
    assert!(claim(&store, &[EMAIL], 10, t(3_600 * SEC)).await.is_empty());
    assert_eq!(
        store
            .next_due(vec!["default".into()], vec![EMAIL.into()])
            .await
            .unwrap(),
        None
    );
}

pub async fn snooze_and_give_back_do_not_count_the_attempt<S: Store>(store: S) {
    let id = add(
        &store,
        email_with("s", JobOptions::new().max_attempts(5)),
        t(0),
    )
    .await;
    let c = claim_one(&store, &[EMAIL], id, t(0)).await;
    store
        .finish(lease(&c), failed("first", true), t(0))
        .await
        .unwrap();
    let c = claim_one(&store, &[EMAIL], id, t(SEC)).await;
    assert_eq!(c.attempt, 2);

    // Snoozed: back to attempt 1, due at `until`.
    store
        .finish(
            lease(&c),
            Finish::Snoozed { until: t(10 * SEC) },
            t(2 * SEC),
        )
        .await
        .unwrap();
    let r = get(&store, id, t(2 * SEC)).await;
    assert_eq!(r.state, JobState::Scheduled);
    assert_eq!(r.attempt, 1);
    assert_eq!(r.run_at, t(10 * SEC));
    assert_eq!(r.lease_owner, None);
    assert_eq!(r.errors.len(), 1, "a snooze is no failure");
    lost(store.give_back(lease(&c), t(2 * SEC)).await, id);
    assert!(claim(&store, &[EMAIL], 10, t(10 * SEC - 1))
        .await
        .is_empty());
    let c = claim_one(&store, &[EMAIL], id, t(10 * SEC)).await;
    assert_eq!(c.attempt, 2);

    // Given back: available at once, attempt not counted.
    store.give_back(lease(&c), t(11 * SEC)).await.unwrap();
    let r = get(&store, id, t(11 * SEC)).await;
    assert_eq!(r.state, JobState::Available);
    assert_eq!(r.attempt, 1);
    assert_eq!(r.run_at, t(11 * SEC));
    assert_eq!(r.lease_owner, None);
    assert_eq!(r.lease_expires_at, None);
    lost(store.give_back(lease(&c), t(11 * SEC)).await, id);
    let c = claim_one(&store, &[EMAIL], id, t(11 * SEC)).await;
    assert_eq!(c.attempt, 2);

    // A snooze into the past is due now.
    store
        .finish(lease(&c), Finish::Snoozed { until: t(SEC) }, t(12 * SEC))
        .await
        .unwrap();
    let r = get(&store, id, t(12 * SEC)).await;
    assert_eq!(r.state, JobState::Available);
    assert_eq!(r.attempt, 1);
    let c = claim_one(&store, &[EMAIL], id, t(12 * SEC)).await;
    assert_eq!(c.attempt, 2);
}

pub async fn parked_job_waits_for_complete_or_release<S: Store>(store: S) {
    let p1 = add(&store, email("p1"), t(0)).await;
    let p2 = add(&store, email("p2"), t(0)).await;
    let idle = add(&store, report_with(1, JobOptions::new()), t(0)).await;
    let got = claim(&store, &[EMAIL], 10, t(0)).await;
    assert_eq!(ids(&got), vec![p1, p2]);
    for c in &got {
        store
            .finish(lease(c), Finish::Parked, t(SEC))
            .await
            .unwrap();
    }
    let r = get(&store, p1, t(SEC)).await;
    assert_eq!(r.state, JobState::Parked);
    assert_eq!(r.lease_owner, None);
    assert_eq!(r.finished_at, None);
    assert_eq!(
        counts(&store, t(SEC)).await,
        expect_counts(&[(JobState::Parked, 2), (JobState::Available, 1)])
    );
    assert!(claim(&store, &[EMAIL], 10, t(3_600 * SEC)).await.is_empty());

    // Completed from outside.
    store
        .complete_parked(p1, "42".into(), t(2 * SEC))
        .await
        .unwrap();
    let r = get(&store, p1, t(2 * SEC)).await;
    assert_eq!(r.state, JobState::Completed);
    assert_eq!(r.result.as_deref(), Some("42"));
    assert_eq!(r.finished_at, Some(t(2 * SEC)));
    assert_invalid_state(
        store.complete_parked(p1, "43".into(), t(3 * SEC)).await,
        p1,
        JobState::Completed,
    );
    assert_invalid_state(store.release(p1, t(3 * SEC)).await, p1, JobState::Completed);
    assert_eq!(
        get(&store, p1, t(3 * SEC)).await.result.as_deref(),
        Some("42")
    );

    // Released: runs again, as a new attempt.
    store.release(p2, t(3 * SEC)).await.unwrap();
    assert_eq!(state(&store, p2, t(3 * SEC)).await, JobState::Available);
    let c = claim_one(&store, &[EMAIL], p2, t(3 * SEC)).await;
    assert_eq!(c.attempt, 2);
    assert_invalid_state(store.release(p2, t(4 * SEC)).await, p2, JobState::Executing);
    assert_invalid_state(
        store.complete_parked(p2, "1".into(), t(4 * SEC)).await,
        p2,
        JobState::Executing,
    );

    // Jobs that are not parked are refused.
    assert_invalid_state(
        store.complete_parked(idle, "1".into(), t(4 * SEC)).await,
        idle,
        JobState::Available,
    );
    assert_invalid_state(
        store.release(idle, t(4 * SEC)).await,
        idle,
        JobState::Available,
    );
    assert_eq!(state(&store, idle, t(4 * SEC)).await, JobState::Available);
    let unknown = JobId(9_999_999);
    assert_eq!(
        store.release(unknown, t(0)).await,
        Err(StoreError::NotFound(unknown))
    );
    assert_eq!(
        store.complete_parked(unknown, "1".into(), t(0)).await,
        Err(StoreError::NotFound(unknown))
    );
}

// ---------------------------------------------------------------------------------------------
// Cancel and retry.
// ---------------------------------------------------------------------------------------------

pub async fn cancel_stops_jobs_and_fences_running_ones<S: Store>(store: S) {
    let available = add(&store, email("available"), t(0)).await;
    let scheduled = add(
        &store,
        email_with("scheduled", JobOptions::new().not_before(t(60 * SEC))),
        t(0),
    )
    .await;
    let running = add(&store, report_with(1, JobOptions::new()), t(0)).await;
    let done = add(&store, report_with(2, JobOptions::new()), t(0)).await;

    let got = claim(&store, &[REPORT], 10, t(0)).await;
    assert_eq!(ids(&got), vec![running, done]);
    let (l_running, l_done) = (lease(&got[0]), lease(&got[1]));
    store.finish(l_done, completed("2"), t(SEC)).await.unwrap();

    store.cancel(available, t(2 * SEC)).await.unwrap();
    let r = get(&store, available, t(2 * SEC)).await;
    assert_eq!(r.state, JobState::Cancelled);
    assert_eq!(r.finished_at, Some(t(2 * SEC)));
    store.cancel(scheduled, t(2 * SEC)).await.unwrap();
    assert_eq!(
        state(&store, scheduled, t(2 * SEC)).await,
        JobState::Cancelled
    );
    assert!(claim(&store, &[EMAIL], 10, t(3_600 * SEC)).await.is_empty());
    assert_eq!(
        store
            .next_due(vec!["default".into()], vec![EMAIL.into()])
            .await
            .unwrap(),
        None
    );

    // A running job: cancelled; its run's finish, heartbeat and give-back are refused.
    store.cancel(running, t(3 * SEC)).await.unwrap();
    let r = get(&store, running, t(3 * SEC)).await;
    assert_eq!(r.state, JobState::Cancelled);
    assert_eq!(r.lease_owner, None);
    lost(
        store.finish(l_running, completed("1"), t(4 * SEC)).await,
        running,
    );
    lost(store.give_back(l_running, t(4 * SEC)).await, running);
    assert_eq!(
        store
            .heartbeat(vec![l_running], t(100 * SEC), t(4 * SEC))
            .await
            .unwrap(),
        vec![running]
    );
    assert_eq!(
        state(&store, running, t(4 * SEC)).await,
        JobState::Cancelled
    );
    assert!(claim(&store, &[REPORT], 10, t(3_600 * SEC))
        .await
        .is_empty());

    // Final jobs cannot be cancelled.
    assert_invalid_state(
        store.cancel(done, t(5 * SEC)).await,
        done,
        JobState::Completed,
    );
    assert_invalid_state(
        store.cancel(available, t(5 * SEC)).await,
        available,
        JobState::Cancelled,
    );
    assert_eq!(
        get(&store, done, t(5 * SEC)).await.result.as_deref(),
        Some("2")
    );

    // Retryable and parked jobs can.
    let retryable = add(&store, email("retryable"), t(10 * SEC)).await;
    let c = claim_one(&store, &[EMAIL], retryable, t(10 * SEC)).await;
    store
        .finish(lease(&c), failed("x", true), t(10 * SEC))
        .await
        .unwrap();
    store.cancel(retryable, t(10 * SEC)).await.unwrap();
    assert_eq!(
        state(&store, retryable, t(10 * SEC)).await,
        JobState::Cancelled
    );
    let parked = add(&store, email("parked"), t(10 * SEC)).await;
    let c = claim_one(&store, &[EMAIL], parked, t(10 * SEC)).await;
    store
        .finish(lease(&c), Finish::Parked, t(10 * SEC))
        .await
        .unwrap();
    store.cancel(parked, t(11 * SEC)).await.unwrap();
    assert_eq!(
        state(&store, parked, t(11 * SEC)).await,
        JobState::Cancelled
    );
    assert!(claim(&store, &[EMAIL], 10, t(3_600 * SEC)).await.is_empty());

    let unknown = JobId(9_999_999);
    assert_eq!(
        store.cancel(unknown, t(0)).await,
        Err(StoreError::NotFound(unknown))
    );
    assert_eq!(
        counts(&store, t(11 * SEC)).await,
        expect_counts(&[(JobState::Cancelled, 5), (JobState::Completed, 1)])
    );
}

pub async fn retry_revives_final_jobs<S: Store>(store: S) {
    // A discarded job gets one more attempt.
    let dead = add(
        &store,
        email_with("dead", JobOptions::new().max_attempts(1)),
        t(0),
    )
    .await;
    let c = claim_one(&store, &[EMAIL], dead, t(0)).await;
    store
        .finish(lease(&c), failed("nope", true), t(SEC))
        .await
        .unwrap();
    assert_eq!(state(&store, dead, t(SEC)).await, JobState::Discarded);
    store.retry(dead, t(10 * SEC)).await.unwrap();
    let r = get(&store, dead, t(10 * SEC)).await;
    assert_eq!(r.state, JobState::Available);
    assert_eq!(r.run_at, t(10 * SEC));
    assert_eq!(r.attempt, 1);
    assert_eq!(r.max_attempts, 2);
    assert_eq!(r.finished_at, None);
    assert_eq!(r.errors.len(), 1, "the history is kept");
    let c = claim_one(&store, &[EMAIL], dead, t(10 * SEC)).await;
    assert_eq!((c.attempt, c.max_attempts), (2, 2));
    assert_invalid_state(
        store.retry(dead, t(11 * SEC)).await,
        dead,
        JobState::Executing,
    );
    store
        .finish(lease(&c), completed("\"ok\""), t(11 * SEC))
        .await
        .unwrap();
    assert_invalid_state(
        store.retry(dead, t(12 * SEC)).await,
        dead,
        JobState::Completed,
    );

    // An available job is not retried.
    let fresh = add(&store, email("fresh"), t(20 * SEC)).await;
    assert_invalid_state(
        store.retry(fresh, t(20 * SEC)).await,
        fresh,
        JobState::Available,
    );
    assert_eq!(state(&store, fresh, t(20 * SEC)).await, JobState::Available);

    // A cancelled job runs again.
    store.cancel(fresh, t(21 * SEC)).await.unwrap();
    store.retry(fresh, t(22 * SEC)).await.unwrap();
    assert_eq!(state(&store, fresh, t(22 * SEC)).await, JobState::Available);
    let c = claim_one(&store, &[EMAIL], fresh, t(22 * SEC)).await;
    assert_eq!((c.attempt, c.max_attempts), (1, 10));
    store
        .finish(lease(&c), completed("1"), t(22 * SEC))
        .await
        .unwrap();

    // A retryable job runs now instead of after its backoff; attempts left are unchanged.
    let slow = add(
        &store,
        email_with(
            "slow",
            JobOptions::new()
                .max_attempts(5)
                .backoff(RetryBackoff::fixed(Duration::from_secs(3_600))),
        ),
        t(30 * SEC),
    )
    .await;
    let c = claim_one(&store, &[EMAIL], slow, t(30 * SEC)).await;
    store
        .finish(lease(&c), failed("later", true), t(30 * SEC))
        .await
        .unwrap();
    assert!(claim(&store, &[EMAIL], 10, t(31 * SEC)).await.is_empty());
    store.retry(slow, t(31 * SEC)).await.unwrap();
    let r = get(&store, slow, t(31 * SEC)).await;
    assert_eq!(r.state, JobState::Available);
    assert_eq!(r.max_attempts, 5);
    let c = claim_one(&store, &[EMAIL], slow, t(31 * SEC)).await;
    assert_eq!(c.attempt, 2);

    let unknown = JobId(9_999_999);
    assert_eq!(
        store.retry(unknown, t(0)).await,
        Err(StoreError::NotFound(unknown))
    );
}

// ---------------------------------------------------------------------------------------------
// Resources.
// ---------------------------------------------------------------------------------------------

pub async fn resource_capacity_one_runs_one_at_a_time<S: Store>(store: S) {
    let r = || JobOptions::new().resource("r", 1);
    let a = add(&store, email_with("a", r()), t(0)).await;
    let b = add(&store, email_with("b", r()), t(0)).await;
    let free = add(&store, email("free"), t(0)).await;

    let got = claim(&store, &[EMAIL], 10, t(0)).await;
    assert_eq!(
        ids(&got),
        vec![a, free],
        "one holder of r, plus the free job"
    );
    assert!(claim(&store, &[EMAIL], 10, t(SEC)).await.is_empty());
    assert_eq!(state(&store, b, t(SEC)).await, JobState::Available);

    store
        .finish(lease(&got[0]), completed("1"), t(2 * SEC))
        .await
        .unwrap();
    let c = claim_one(&store, &[EMAIL], b, t(2 * SEC)).await;
    assert_eq!(c.attempt, 1);
}

pub async fn resource_capacity_two_runs_two<S: Store>(store: S) {
    let r = || JobOptions::new().resource("db", 2);
    let j1 = add(&store, email_with("1", r()), t(0)).await;
    let j2 = add(&store, email_with("2", r()), t(0)).await;
    let j3 = add(&store, email_with("3", r()), t(0)).await;

    let got = claim(&store, &[EMAIL], 10, t(0)).await;
    assert_eq!(ids(&got), vec![j1, j2]);
    assert!(claim(&store, &[EMAIL], 10, t(SEC)).await.is_empty());
    store
        .finish(lease(&got[1]), failed("x", false), t(2 * SEC))
        .await
        .unwrap();
    claim_one(&store, &[EMAIL], j3, t(2 * SEC)).await;
    assert!(claim(&store, &[EMAIL], 10, t(3 * SEC)).await.is_empty());
}

pub async fn expired_holder_frees_its_resource<S: Store>(store: S) {
    let r = || JobOptions::new().resource("r", 1).max_attempts(5);
    let j1 = add(&store, email_with("1", r()), t(0)).await;
    let j2 = add(&store, email_with("2", r()), t(0)).await;
    claim_one(&store, &[EMAIL], j1, t(0)).await;
    assert!(claim(&store, &[EMAIL], 10, t(LEASE_MS - 1))
        .await
        .is_empty());

    // At expiry the place is free again: one job of the resource runs (the expired one
    // itself, reclaimed, or the other).
    let expiry = t(LEASE_MS);
    let got = claim(&store, &[EMAIL], 10, expiry).await;
    assert_eq!(got.len(), 1, "capacity 1: {got:?}");
    assert!(got[0].id == j1 || got[0].id == j2);
    let live = store
        .list(
            ListFilter {
                state: Some(JobState::Executing),
                ..ListFilter::default()
            },
            expiry,
        )
        .await
        .unwrap()
        .into_iter()
        .filter(|j| j.lease_expires_at.is_some_and(|e| e > expiry))
        .count();
    assert_eq!(live, 1, "one live holder");
    assert!(claim(&store, &[EMAIL], 10, t(LEASE_MS + SEC))
        .await
        .is_empty());
}

pub async fn expired_holder_behind_busy_resource_records_lost_run_once<S: Store>(store: S) {
    let r = |p: i32| {
        JobOptions::new()
            .resource("r", 1)
            .priority(p)
            .max_attempts(5)
    };
    let low = add(&store, email_with("low", r(0)), t(0)).await;
    claim_one(&store, &[EMAIL], low, t(0)).await;
    let high = add(&store, email_with("high", r(10)), t(SEC)).await;
    assert!(claim(&store, &[EMAIL], 10, t(SEC)).await.is_empty());

    // At the expiry of `low`'s lease, `high` (higher priority) takes the resource.
    let expiry = t(LEASE_MS);
    let got = claim(&store, &[EMAIL], 10, expiry).await;
    assert_eq!(ids(&got), vec![high], "capacity 1");
    store
        .finish(lease(&got[0]), completed("1"), t(40 * SEC))
        .await
        .unwrap();

    // Then `low` is reclaimed: its single lost run is in its history once.
    let c = claim_one(&store, &[EMAIL], low, t(40 * SEC)).await;
    assert_eq!(c.attempt, 2);
    let rec = get(&store, low, t(40 * SEC)).await;
    assert_eq!(
        rec.errors.iter().map(|e| e.attempt).collect::<Vec<_>>(),
        vec![1],
        "one lost run, recorded once: {:?}",
        rec.errors
    );
}

pub async fn resource_is_shared_across_job_names<S: Store>(store: S) {
    let e = add(
        &store,
        email_with("e", JobOptions::new().resource("smtp", 1)),
        t(0),
    )
    .await;
    let r = add(
        &store,
        report_with(1, JobOptions::new().resource("smtp", 1)),
        t(0),
    )
    .await;
    let got = claim(&store, &[EMAIL, REPORT], 10, t(0)).await;
    assert_eq!(ids(&got), vec![e]);
    assert!(claim(&store, &[REPORT], 10, t(SEC)).await.is_empty());
    store
        .finish(lease(&got[0]), completed("\"e\""), t(2 * SEC))
        .await
        .unwrap();
    claim_one(&store, &[REPORT], r, t(2 * SEC)).await;
}

// ---------------------------------------------------------------------------------------------
// Fan-out / fan-in.
// ---------------------------------------------------------------------------------------------

pub async fn fan_in_collector_runs_once_after_all_children<S: Store>(store: S) {
    let failing = JobOptions::new()
        .max_attempts(2)
        .backoff(RetryBackoff::fixed(Duration::from_secs(1)));
    let ids_ = store
        .enqueue_group(
            group(
                vec![email("a"), email("b"), report_with(3, failing)],
                collector("sum"),
                GroupPolicy::Partial,
            ),
            t(0),
        )
        .await
        .unwrap();
    assert_eq!(ids_.children.len(), 3);
    let (a, b, c) = (ids_.children[0], ids_.children[1], ids_.children[2]);
    let coll = ids_.collector;
    assert!(a < b && b < c, "children in the order given");
    assert_eq!(
        get(&store, a, t(0)).await.payload,
        payload(&Email { to: "a".into() })
    );
    assert_eq!(get(&store, c, t(0)).await.name, REPORT);

    let r = get(&store, coll, t(0)).await;
    assert_eq!(r.state, JobState::Waiting);
    assert_eq!(r.pending_children, 3);
    assert_eq!(r.name, COLLECT);
    for child in [a, b, c] {
        let r = get(&store, child, t(0)).await;
        assert_eq!(r.parent, Some(coll));
        assert_eq!(r.state, JobState::Available);
    }
    assert!(claim(&store, &[COLLECT], 10, t(3_600 * SEC))
        .await
        .is_empty());
    assert_eq!(
        counts(&store, t(0)).await,
        expect_counts(&[(JobState::Waiting, 1), (JobState::Available, 3)])
    );

    let got = claim(&store, &[EMAIL, REPORT], 10, t(0)).await;
    assert_eq!(ids(&got), vec![a, b, c]);
    let (la, lb, lc) = (lease(&got[0]), lease(&got[1]), lease(&got[2]));

    store.finish(la, completed("\"A\""), t(SEC)).await.unwrap();
    store
        .finish(lc, failed("c broke 1", true), t(SEC))
        .await
        .unwrap();
    store.finish(lb, completed("\"B\""), t(SEC)).await.unwrap();
    let r = get(&store, coll, t(SEC)).await;
    assert_eq!(r.state, JobState::Waiting, "c is retrying");
    assert_eq!(r.pending_children, 1);
    assert!(claim(&store, &[COLLECT], 10, t(SEC)).await.is_empty());

    let c2 = claim_one(&store, &[REPORT], c, t(2 * SEC)).await;
    assert_eq!(c2.attempt, 2);
    assert!(claim(&store, &[COLLECT], 10, t(2 * SEC)).await.is_empty());
    store
        .finish(lease(&c2), failed("c broke 2", true), t(3 * SEC))
        .await
        .unwrap();
    assert_eq!(state(&store, c, t(3 * SEC)).await, JobState::Discarded);
    let r = get(&store, coll, t(3 * SEC)).await;
    assert_eq!(r.state, JobState::Available);
    assert_eq!(r.pending_children, 0);

    // A child cannot be finished twice.
    lost(
        store.finish(lease(&c2), completed("3"), t(3 * SEC)).await,
        c,
    );
    lost(store.finish(lb, completed("\"B2\""), t(3 * SEC)).await, b);
    assert_eq!(get(&store, coll, t(3 * SEC)).await.pending_children, 0);

    let got = claim(&store, &[COLLECT], 10, t(3 * SEC)).await;
    assert_eq!(ids(&got), vec![coll]);
    assert_eq!(
        got[0].children,
        vec![
            ChildOutcome {
                id: a,
                name: EMAIL.into(),
                result: Ok("\"A\"".into()),
            },
            ChildOutcome {
                id: b,
                name: EMAIL.into(),
                result: Ok("\"B\"".into()),
            },
            ChildOutcome {
                id: c,
                name: REPORT.into(),
                result: Err(ChildFailure::Discarded("c broke 2".into())),
            },
        ]
    );
    assert!(claim(&store, &[COLLECT], 10, t(4 * SEC)).await.is_empty());
    store
        .finish(lease(&got[0]), completed("[\"A\",\"B\"]"), t(4 * SEC))
        .await
        .unwrap();
    assert!(claim(&store, &[COLLECT, EMAIL, REPORT], 10, t(3_600 * SEC))
        .await
        .is_empty());
    assert_eq!(
        counts(&store, t(4 * SEC)).await,
        expect_counts(&[(JobState::Completed, 3), (JobState::Discarded, 1)])
    );
}

pub async fn fan_in_empty_group_runs_collector_at_once<S: Store>(store: S) {
    let ids_ = store
        .enqueue_group(
            group(Vec::new(), collector("nothing"), GroupPolicy::Partial),
            t(0),
        )
        .await
        .unwrap();
    assert!(ids_.children.is_empty());
    let r = get(&store, ids_.collector, t(0)).await;
    assert_eq!(r.state, JobState::Available);
    assert_eq!(r.pending_children, 0);
    let c = claim_one(&store, &[COLLECT], ids_.collector, t(0)).await;
    assert!(c.children.is_empty());
    assert_eq!(
        c.payload,
        payload(&Collect {
            label: "nothing".into()
        })
    );
}

pub async fn fan_in_fail_fast_cancels_siblings<S: Store>(store: S) {
    let once = || JobOptions::new().max_attempts(1);
    let ids_ = store
        .enqueue_group(
            group(
                vec![
                    email_with("x", once()),
                    email_with("y", once()),
                    email_with("z", once()),
                ],
                collector("ff"),
                GroupPolicy::FailFast,
            ),
            t(0),
        )
        .await
        .unwrap();
    let (x, y, z) = (ids_.children[0], ids_.children[1], ids_.children[2]);
    let coll = ids_.collector;
    let got = claim(&store, &[EMAIL], 2, t(0)).await;
    assert_eq!(ids(&got), vec![x, y]);

    store
        .finish(lease(&got[0]), failed("x failed", false), t(SEC))
        .await
        .unwrap();
    assert_eq!(state(&store, x, t(SEC)).await, JobState::Discarded);
    assert_eq!(state(&store, coll, t(SEC)).await, JobState::Available);
    assert_eq!(state(&store, y, t(SEC)).await, JobState::Cancelled);
    assert_eq!(state(&store, z, t(SEC)).await, JobState::Cancelled);

    // The running sibling's result is refused; the waiting one never runs.
    lost(
        store
            .finish(lease(&got[1]), completed("\"y\""), t(2 * SEC))
            .await,
        y,
    );
    assert!(claim(&store, &[EMAIL], 10, t(3_600 * SEC)).await.is_empty());

    let got = claim(&store, &[COLLECT], 10, t(2 * SEC)).await;
    assert_eq!(ids(&got), vec![coll]);
    assert_eq!(
        got[0].children,
        vec![
            ChildOutcome {
                id: x,
                name: EMAIL.into(),
                result: Err(ChildFailure::Discarded("x failed".into())),
            },
            ChildOutcome {
                id: y,
                name: EMAIL.into(),
                result: Err(ChildFailure::Cancelled),
            },
            ChildOutcome {
                id: z,
                name: EMAIL.into(),
                result: Err(ChildFailure::Cancelled),
            },
        ]
    );
    assert!(claim(&store, &[COLLECT], 10, t(3 * SEC)).await.is_empty());
}

pub async fn fan_in_retried_child_is_waited_for_again<S: Store>(store: S) {
    let once = || JobOptions::new().max_attempts(1);
    let ids_ = store
        .enqueue_group(
            group(
                vec![email_with("a", once()), email_with("b", once())],
                collector("again"),
                GroupPolicy::Partial,
            ),
            t(0),
        )
        .await
        .unwrap();
    let (a, b) = (ids_.children[0], ids_.children[1]);
    let coll = ids_.collector;
    let got = claim(&store, &[EMAIL], 10, t(0)).await;
    assert_eq!(ids(&got), vec![a, b]);

    store
        .finish(lease(&got[0]), failed("a failed", false), t(SEC))
        .await
        .unwrap();
    assert_eq!(get(&store, coll, t(SEC)).await.pending_children, 1);

    // Retried while the collector waits: counted again.
    store.retry(a, t(2 * SEC)).await.unwrap();
    assert_eq!(get(&store, coll, t(2 * SEC)).await.pending_children, 2);
    store
        .finish(lease(&got[1]), completed("\"B\""), t(3 * SEC))
        .await
        .unwrap();
    let r = get(&store, coll, t(3 * SEC)).await;
    assert_eq!(r.state, JobState::Waiting, "waiting for a's new run");
    assert_eq!(r.pending_children, 1);
    assert!(claim(&store, &[COLLECT], 10, t(3 * SEC)).await.is_empty());

    let a2 = claim_one(&store, &[EMAIL], a, t(4 * SEC)).await;
    assert_eq!(a2.attempt, 2);
    store
        .finish(lease(&a2), completed("\"A2\""), t(5 * SEC))
        .await
        .unwrap();
    let got = claim(&store, &[COLLECT], 10, t(5 * SEC)).await;
    assert_eq!(ids(&got), vec![coll]);
    assert_eq!(
        got[0].children,
        vec![
            ChildOutcome {
                id: a,
                name: EMAIL.into(),
                result: Ok("\"A2\"".into()),
            },
            ChildOutcome {
                id: b,
                name: EMAIL.into(),
                result: Ok("\"B\"".into()),
            },
        ]
    );
}

pub async fn fan_in_counts_every_way_a_child_ends<S: Store>(store: S) {
    let ids_ = store
        .enqueue_group(
            group(
                vec![
                    email_with("lost", JobOptions::new().max_attempts(1)),
                    email("parked"),
                    email("cancelled"),
                    email("done"),
                ],
                collector("ways"),
                GroupPolicy::Partial,
            ),
            t(0),
        )
        .await
        .unwrap();
    let (a, b, c, d) = (
        ids_.children[0],
        ids_.children[1],
        ids_.children[2],
        ids_.children[3],
    );
    let coll = ids_.collector;
    let got = claim(&store, &[EMAIL], 10, t(0)).await;
    assert_eq!(ids(&got), vec![a, b, c, d]);
    let held: Vec<Lease> = got[1..].iter().map(lease).collect();
    assert!(store
        .heartbeat(held.clone(), t(1_000 * SEC), t(SEC))
        .await
        .unwrap()
        .is_empty());

    // a: its lease expires on its last attempt.
    assert!(claim(&store, &[EMAIL], 10, t(LEASE_MS)).await.is_empty());
    assert_eq!(state(&store, a, t(LEASE_MS)).await, JobState::Discarded);
    assert_eq!(get(&store, coll, t(LEASE_MS)).await.pending_children, 3);
    // b: parked, then completed from outside.
    store
        .finish(held[0], Finish::Parked, t(31 * SEC))
        .await
        .unwrap();
    assert_eq!(get(&store, coll, t(31 * SEC)).await.pending_children, 3);
    store
        .complete_parked(b, "\"B\"".into(), t(32 * SEC))
        .await
        .unwrap();
    assert_eq!(get(&store, coll, t(32 * SEC)).await.pending_children, 2);
    // c: cancelled while running.
    store.cancel(c, t(33 * SEC)).await.unwrap();
    let r = get(&store, coll, t(33 * SEC)).await;
    assert_eq!((r.state, r.pending_children), (JobState::Waiting, 1));
    // d: completes, the last one.
    store
        .finish(held[2], completed("\"D\""), t(34 * SEC))
        .await
        .unwrap();
    let r = get(&store, coll, t(34 * SEC)).await;
    assert_eq!((r.state, r.pending_children), (JobState::Available, 0));

    let got = claim(&store, &[COLLECT], 10, t(34 * SEC)).await;
    assert_eq!(ids(&got), vec![coll]);
    let children = &got[0].children;
    assert_eq!(
        children.iter().map(|o| o.id).collect::<Vec<_>>(),
        vec![a, b, c, d]
    );
    assert!(
        matches!(&children[0].result, Err(ChildFailure::Discarded(msg)) if !msg.is_empty()),
        "{:?}",
        children[0]
    );
    assert_eq!(children[1].result, Ok("\"B\"".to_owned()));
    assert_eq!(children[2].result, Err(ChildFailure::Cancelled));
    assert_eq!(children[3].result, Ok("\"D\"".to_owned()));
}

pub async fn fan_in_fail_fast_on_a_cancelled_child<S: Store>(store: S) {
    let ids_ = store
        .enqueue_group(
            group(
                vec![email("x"), email("y")],
                collector("ff"),
                GroupPolicy::FailFast,
            ),
            t(0),
        )
        .await
        .unwrap();
    let (x, y) = (ids_.children[0], ids_.children[1]);
    store.cancel(x, t(SEC)).await.unwrap();
    assert_eq!(
        state(&store, ids_.collector, t(SEC)).await,
        JobState::Available
    );
    assert_eq!(state(&store, y, t(SEC)).await, JobState::Cancelled);
    let got = claim(&store, &[EMAIL, COLLECT], 10, t(SEC)).await;
    assert_eq!(ids(&got), vec![ids_.collector]);
    assert_eq!(
        got[0]
            .children
            .iter()
            .map(|o| (o.id, o.result.clone()))
            .collect::<Vec<_>>(),
        vec![
            (x, Err(ChildFailure::Cancelled)),
            (y, Err(ChildFailure::Cancelled))
        ]
    );
}

pub async fn fan_in_fail_fast_on_lost_last_attempt_during_claim<S: Store>(store: S) {
    let ids_ = store
        .enqueue_group(
            group(
                vec![
                    email_with("x", JobOptions::new().max_attempts(1)),
                    email("y"),
                    email("z"),
                ],
                collector("ff"),
                GroupPolicy::FailFast,
            ),
            t(0),
        )
        .await
        .unwrap();
    let (x, y, z) = (ids_.children[0], ids_.children[1], ids_.children[2]);
    let coll = ids_.collector;
    assert_eq!(ids(&claim(&store, &[EMAIL], 1, t(0)).await), vec![x]);

    // x's lease expires on its last attempt: the claim discards it, which fails the group
    // fast, cancelling y and z. The same claim must not then hand out y or z.
    let expiry = t(LEASE_MS);
    let got = claim(&store, &[EMAIL], 10, expiry).await;
    assert_eq!(state(&store, x, expiry).await, JobState::Discarded);
    assert_eq!(state(&store, coll, expiry).await, JobState::Available);
    assert_eq!(
        (
            ids(&got),
            state(&store, y, expiry).await,
            state(&store, z, expiry).await
        ),
        (vec![], JobState::Cancelled, JobState::Cancelled),
        "cancelled siblings must not be claimed"
    );
}

pub async fn cancelling_a_collector_cancels_its_children<S: Store>(store: S) {
    let ids_ = store
        .enqueue_group(
            group(
                vec![email("a"), email("b"), email("c")],
                collector("all"),
                GroupPolicy::Partial,
            ),
            t(0),
        )
        .await
        .unwrap();
    let (a, b, c) = (ids_.children[0], ids_.children[1], ids_.children[2]);
    let got = claim(&store, &[EMAIL], 2, t(0)).await;
    assert_eq!(ids(&got), vec![a, b]);
    store
        .finish(lease(&got[0]), completed("\"A\""), t(SEC))
        .await
        .unwrap();

    store.cancel(ids_.collector, t(2 * SEC)).await.unwrap();
    assert_eq!(
        state(&store, ids_.collector, t(2 * SEC)).await,
        JobState::Cancelled
    );
    assert_eq!(state(&store, a, t(2 * SEC)).await, JobState::Completed);
    assert_eq!(state(&store, b, t(2 * SEC)).await, JobState::Cancelled);
    assert_eq!(state(&store, c, t(2 * SEC)).await, JobState::Cancelled);
    lost(
        store
            .finish(lease(&got[1]), completed("\"B\""), t(3 * SEC))
            .await,
        b,
    );
    assert!(claim(&store, &[EMAIL, COLLECT], 10, t(3_600 * SEC))
        .await
        .is_empty());
}

pub async fn fan_in_children_cannot_carry_idempotency_keys<S: Store>(store: S) {
    let result = store
        .enqueue_group(
            group(
                vec![
                    email("fine"),
                    email_with("keyed", JobOptions::new().idempotency_key("child-key")),
                ],
                collector("c"),
                GroupPolicy::Partial,
            ),
            t(0),
        )
        .await;
    assert!(
        matches!(result, Err(StoreError::Invalid(_))),
        "expected Invalid, got {result:?}"
    );
    assert!(all_ids(&store, t(0)).await.is_empty(), "nothing written");
    // The key was not taken either.
    add(
        &store,
        email_with("keyed", JobOptions::new().idempotency_key("child-key")),
        t(0),
    )
    .await;
}

pub async fn fan_in_duplicate_collector_key_returns_same_group<S: Store>(store: S) {
    let keyed = || JobOptions::new().idempotency_key("batch-1");
    let first = store
        .enqueue_group(
            group(
                vec![email("a"), email("b")],
                collector_with("g", keyed()),
                GroupPolicy::Partial,
            ),
            t(0),
        )
        .await
        .unwrap();
    assert_eq!(first.children.len(), 2);
    let again = store
        .enqueue_group(
            group(
                vec![email("a"), email("b"), email("c")],
                collector_with("g", keyed()),
                GroupPolicy::FailFast,
            ),
            t(SEC),
        )
        .await
        .unwrap();
    assert_eq!(again, first);
    assert_eq!(all_ids(&store, t(SEC)).await.len(), 3, "nothing added");
    assert_eq!(
        get(&store, first.collector, t(SEC)).await.pending_children,
        2
    );
}

// ---------------------------------------------------------------------------------------------
// Inspection.
// ---------------------------------------------------------------------------------------------

pub async fn counts_list_every_state<S: Store>(store: S) {
    assert_eq!(counts(&store, t(0)).await, expect_counts(&[]));

    let now = t(0);
    let s = &store;
    let one = |to: &'static str| async move {
        let id = add(s, email(to), now).await;
        (id, claim_one(s, &[EMAIL], id, now).await)
    };
    let (_, c) = one("completed").await;
    store.finish(lease(&c), completed("1"), now).await.unwrap();
    let (_, c) = one("discarded").await;
    store
        .finish(lease(&c), failed("x", false), now)
        .await
        .unwrap();
    let (_, c) = one("retryable").await;
    store
        .finish(lease(&c), failed("x", true), now)
        .await
        .unwrap();
    let (_, c) = one("parked").await;
    store.finish(lease(&c), Finish::Parked, now).await.unwrap();
    let (executing, _) = one("executing").await;
    let cancelled = add(&store, email("cancelled"), now).await;
    store.cancel(cancelled, now).await.unwrap();
    let available = add(&store, email("available"), now).await;
    let scheduled = add(
        &store,
        email_with("scheduled", JobOptions::new().not_before(t(3_600 * SEC))),
        now,
    )
    .await;
    let g = store
        .enqueue_group(
            group(
                vec![report_with(1, JobOptions::new())],
                collector("w"),
                GroupPolicy::Partial,
            ),
            now,
        )
        .await
        .unwrap();

    assert_eq!(
        counts(&store, now).await,
        expect_counts(&[
            (JobState::Scheduled, 1),
            (JobState::Available, 2),
            (JobState::Executing, 1),
            (JobState::Retryable, 1),
            (JobState::Completed, 1),
            (JobState::Discarded, 1),
            (JobState::Cancelled, 1),
            (JobState::Waiting, 1),
            (JobState::Parked, 1),
        ])
    );
    assert_eq!(state(&store, executing, now).await, JobState::Executing);
    assert_eq!(
        list(
            &store,
            ListFilter {
                state: Some(JobState::Available),
                ..ListFilter::default()
            },
            now
        )
        .await,
        vec![available, g.children[0]]
    );
    assert_eq!(
        list(
            &store,
            ListFilter {
                state: Some(JobState::Waiting),
                ..ListFilter::default()
            },
            now
        )
        .await,
        vec![g.collector]
    );

    // Later, the scheduled job counts as available.
    let later = t(3_600 * SEC);
    let mut expected = counts(&store, now).await;
    expected.insert(JobState::Scheduled, 0);
    expected.insert(JobState::Available, 3);
    assert_eq!(counts(&store, later).await, expected);
    assert_eq!(state(&store, scheduled, later).await, JobState::Available);
}

pub async fn list_filters_and_pages<S: Store>(store: S) {
    let now = t(0);
    let e1 = add(&store, email("e1"), now).await;
    let r1 = add(&store, report_with(1, JobOptions::new()), now).await;
    let e2 = add(
        &store,
        email_with("e2", JobOptions::new().queue("other")),
        now,
    )
    .await;
    let e3 = add(&store, email("e3"), now).await;
    let r2 = add(
        &store,
        report_with(2, JobOptions::new().queue("other")),
        now,
    )
    .await;
    assert_eq!(ids(&claim(&store, &[EMAIL], 1, now).await), vec![e1]);
    let base = ListFilter::default();

    assert_eq!(
        list(&store, base.clone(), now).await,
        vec![e1, r1, e2, e3, r2]
    );
    assert_eq!(
        list(
            &store,
            ListFilter {
                state: Some(JobState::Executing),
                ..base.clone()
            },
            now
        )
        .await,
        vec![e1]
    );
    assert_eq!(
        list(
            &store,
            ListFilter {
                state: Some(JobState::Available),
                ..base.clone()
            },
            now
        )
        .await,
        vec![r1, e2, e3, r2]
    );
    assert_eq!(
        list(
            &store,
            ListFilter {
                state: Some(JobState::Scheduled),
                ..base.clone()
            },
            now
        )
        .await,
        vec![]
    );
    assert_eq!(
        list(
            &store,
            ListFilter {
                name: Some(EMAIL.into()),
                ..base.clone()
            },
            now
        )
        .await,
        vec![e1, e2, e3]
    );
    assert_eq!(
        list(
            &store,
            ListFilter {
                queue: Some("other".into()),
                ..base.clone()
            },
            now
        )
        .await,
        vec![e2, r2]
    );
    assert_eq!(
        list(
            &store,
            ListFilter {
                name: Some(EMAIL.into()),
                queue: Some("default".into()),
                ..base.clone()
            },
            now
        )
        .await,
        vec![e1, e3]
    );
    assert_eq!(
        list(
            &store,
            ListFilter {
                state: Some(JobState::Available),
                name: Some(REPORT.into()),
                ..base.clone()
            },
            now
        )
        .await,
        vec![r1, r2]
    );
    assert_eq!(
        list(
            &store,
            ListFilter {
                after: Some(e2),
                ..base.clone()
            },
            now
        )
        .await,
        vec![e3, r2]
    );
    assert_eq!(
        list(
            &store,
            ListFilter {
                limit: Some(2),
                ..base.clone()
            },
            now
        )
        .await,
        vec![e1, r1]
    );
    assert_eq!(
        list(
            &store,
            ListFilter {
                after: Some(r1),
                limit: Some(2),
                ..base.clone()
            },
            now
        )
        .await,
        vec![e2, e3]
    );
    assert_eq!(
        list(
            &store,
            ListFilter {
                after: Some(r2),
                ..base.clone()
            },
            now
        )
        .await,
        vec![]
    );
    assert_eq!(
        list(
            &store,
            ListFilter {
                name: Some("unknown".into()),
                ..base.clone()
            },
            now
        )
        .await,
        vec![]
    );

    // A scheduled job lists as scheduled until its time, then as available.
    let s = add(
        &store,
        email_with("s", JobOptions::new().not_before(t(60 * SEC))),
        now,
    )
    .await;
    let scheduled = ListFilter {
        state: Some(JobState::Scheduled),
        ..base.clone()
    };
    let available = ListFilter {
        state: Some(JobState::Available),
        name: Some(EMAIL.into()),
        ..base.clone()
    };
    assert_eq!(list(&store, scheduled.clone(), now).await, vec![s]);
    assert_eq!(list(&store, available.clone(), now).await, vec![e2, e3]);
    assert_eq!(list(&store, scheduled, t(60 * SEC)).await, vec![]);
    assert_eq!(list(&store, available, t(60 * SEC)).await, vec![e2, e3, s]);

    // The default limit is 100.
    let many: Vec<NewJob> = (0..120)
        .map(|n| report_with(n, JobOptions::new()))
        .collect();
    assert_eq!(store.enqueue(many, now).await.unwrap().len(), 120);
    assert_eq!(list(&store, base.clone(), now).await.len(), 100);
    assert_eq!(all_ids(&store, now).await.len(), 126);
}

pub async fn next_due_reports_earliest_instant<S: Store>(store: S) {
    let next = |queues: &[&str], names: &[&str]| {
        store.next_due(
            queues.iter().map(|q| q.to_string()).collect(),
            names.iter().map(|n| n.to_string()).collect(),
        )
    };
    assert_eq!(next(&["default"], &[EMAIL]).await.unwrap(), None);

    // A schedule.
    let later = add(
        &store,
        email_with("later", JobOptions::new().not_before(t(50 * SEC))),
        t(0),
    )
    .await;
    assert_eq!(
        next(&["default"], &[EMAIL]).await.unwrap(),
        Some(t(50 * SEC))
    );

    // A lease expiry.
    let running = add(&store, email("running"), t(0)).await;
    let c = claim_one(&store, &[EMAIL], running, t(0)).await;
    assert_eq!(
        next(&["default"], &[EMAIL]).await.unwrap(),
        Some(t(LEASE_MS))
    );
    store
        .heartbeat(vec![lease(&c)], t(70 * SEC), t(10 * SEC))
        .await
        .unwrap();
    assert_eq!(
        next(&["default"], &[EMAIL]).await.unwrap(),
        Some(t(50 * SEC))
    );

    // A retry backoff (1 s by default).
    store
        .finish(lease(&c), failed("again", true), t(10 * SEC))
        .await
        .unwrap();
    assert_eq!(
        next(&["default"], &[EMAIL]).await.unwrap(),
        Some(t(11 * SEC))
    );

    // Only the given queues and names.
    let report = add(
        &store,
        report_with(1, JobOptions::new().not_before(t(5 * SEC))),
        t(0),
    )
    .await;
    assert_eq!(
        next(&["default"], &[REPORT]).await.unwrap(),
        Some(t(5 * SEC))
    );
    assert_eq!(
        next(&["default"], &[EMAIL, REPORT]).await.unwrap(),
        Some(t(5 * SEC))
    );
    assert_eq!(next(&["other"], &[EMAIL, REPORT]).await.unwrap(), None);
    assert_eq!(next(&[], &[EMAIL, REPORT]).await.unwrap(), None);
    assert_eq!(next(&["default"], &[]).await.unwrap(), None);

    // A waiting collector is not due.
    store
        .enqueue_group(
            group(
                vec![email_with("child", JobOptions::new().queue("other"))],
                collector("w"),
                GroupPolicy::Partial,
            ),
            t(0),
        )
        .await
        .unwrap();
    assert_eq!(next(&["default"], &[COLLECT]).await.unwrap(), None);

    // Nothing left once they are all final.
    for id in [later, running, report] {
        store.cancel(id, t(12 * SEC)).await.unwrap();
    }
    assert_eq!(next(&["default"], &[EMAIL, REPORT]).await.unwrap(), None);
}

/// A runner's turn: every finish answered on its own (a stale lease refuses only its own),
/// plain completions, completions with follow-ups, failures and a fan-in child's end all
/// recorded, then a claim that already sees what they released (the collector, the
/// follow-up), and the next due time when it took fewer than asked.
pub async fn finish_and_claim_is_one_turn<S: Store>(store: S) {
    let retry_in_1s = JobOptions::new()
        .max_attempts(3)
        .backoff(RetryBackoff::fixed(Duration::from_secs(1)));
    let plain = add(&store, email("plain"), t(0)).await;
    let parent = add(&store, email("parent"), t(0)).await;
    let failing = add(&store, email_with("failing", retry_in_1s), t(0)).await;
    let stale = add(&store, email("stale"), t(0)).await;
    let fan = store
        .enqueue_group(
            group(vec![email("child")], collector("c"), GroupPolicy::Partial),
            t(0),
        )
        .await
        .unwrap();
    let child = fan.children[0];
    let running = claim(&store, &[EMAIL], 10, t(0)).await;
    assert_eq!(ids(&running), vec![plain, parent, failing, stale, child]);
    let old_stale = lease(&running[3]);
    // `stale`'s lease expires and another runner takes it over.
    let now = t(LEASE_MS);
    let _renewed = store
        .heartbeat(
            [0, 1, 2, 4].iter().map(|&i| lease(&running[i])).collect(),
            now.after(LEASE),
            now,
        )
        .await
        .unwrap();
    let taken = claim_as(&store, "runner-2", &[EMAIL], 10, now).await;
    assert_eq!(ids(&taken), vec![stale]);
    let later = add(&store, email("later"), now).await;

    let turn = Turn {
        finished: vec![
            (lease(&running[0]), completed("1")),
            (old_stale, completed("ghost")),
            (
                lease(&running[1]),
                Finish::Completed {
                    result: "2".into(),
                    follow_ups: vec![email("follow-up")],
                    groups: Vec::new(),
                },
            ),
            (lease(&running[2]), failed("boom", true)),
            (lease(&running[4]), completed("3")),
        ],
        claim: Some(request("runner-1", &["default"], &[EMAIL, COLLECT], 10)),
    };
    let out = store.finish_and_claim(turn, now).await.unwrap();
    assert_eq!(out.finished.len(), 5);
    assert!(out.finished[0].is_ok(), "{:?}", out.finished[0]);
    lost(out.finished[1].clone(), stale);
    for i in [2, 3, 4] {
        assert!(out.finished[i].is_ok(), "{i}: {:?}", out.finished[i]);
    }
    let claimed = out.claimed.unwrap();
    let follow_up = all_ids(&store, now).await.into_iter().max().unwrap();
    assert_eq!(
        ids(&claimed),
        vec![fan.collector, later, follow_up],
        "the collector released by its child, the job enqueued meanwhile, the follow-up"
    );
    let collector = &claimed[0];
    assert_eq!(collector.children.len(), 1);
    assert_eq!(collector.children[0].result, Ok("3".to_owned()));
    // Fewer than asked: the next due job is the failed one's retry (1 s after its failure).
    assert_eq!(out.next_due, Some(now.after(Duration::from_secs(1))));

    assert_eq!(get(&store, plain, now).await.result.as_deref(), Some("1"));
    assert_eq!(get(&store, parent, now).await.state, JobState::Completed);
    assert_eq!(get(&store, failing, now).await.state, JobState::Retryable);
    let r = get(&store, stale, now).await;
    assert_eq!((r.state, r.result), (JobState::Executing, None));
    assert_eq!(r.lease_owner.as_deref(), Some("runner-2"));

    // A turn without a claim only finishes; one with nothing to finish only claims.
    let out = store
        .finish_and_claim(
            Turn {
                finished: vec![(lease(&taken[0]), completed("4"))],
                claim: None,
            },
            now,
        )
        .await
        .unwrap();
    assert!(out.finished[0].is_ok());
    assert!(out.claimed.unwrap().is_empty());
    assert_eq!(out.next_due, None);
    assert_eq!(get(&store, stale, now).await.result.as_deref(), Some("4"));
}

/// Due jobs of the given queues whose type is not among the names, by type: not the handled
/// ones, not those still scheduled, not those of other queues.
pub async fn unhandled_counts_due_jobs_of_other_types<S: Store>(store: S) {
    add(&store, email("a"), t(0)).await;
    add(&store, report_with(1, JobOptions::new()), t(0)).await;
    add(&store, report_with(2, JobOptions::new()), t(0)).await;
    add(
        &store,
        report_with(3, JobOptions::new().not_before(t(60 * SEC))),
        t(0),
    )
    .await;
    add(
        &store,
        collector_with("elsewhere", JobOptions::new().queue("other")),
        t(0),
    )
    .await;
    let unhandled = |names: &[&str], at| {
        store.unhandled(
            vec!["default".into()],
            names.iter().map(|n| n.to_string()).collect(),
            at,
        )
    };
    assert_eq!(
        unhandled(&[EMAIL], t(SEC)).await.unwrap(),
        vec![(REPORT.to_owned(), 2)]
    );
    assert_eq!(unhandled(&[EMAIL, REPORT], t(SEC)).await.unwrap(), vec![]);
    // Once due, the scheduled one counts too; with no names, every type does.
    assert_eq!(
        unhandled(&[], t(60 * SEC)).await.unwrap(),
        vec![(EMAIL.to_owned(), 1), (REPORT.to_owned(), 3)]
    );
}

/// A declaration of schedule `name`, next due a minute after the suite's epoch.
fn decl(name: &str, spec: &str) -> ScheduleDecl {
    ScheduleDecl {
        name: name.to_owned(),
        spec: spec.to_owned(),
        next_slot: Some(t(60 * SEC)),
    }
}

/// A firing of schedule `name` from marker `expected` to `through`, running `runs` (each
/// slot's job an email keyed by the slot, as a runner makes it).
fn firing(
    name: &str,
    expected: Option<Timestamp>,
    through: Timestamp,
    runs: &[Timestamp],
    missed: u64,
    overlap: Overlap,
) -> Firing {
    Firing {
        schedule: name.to_owned(),
        expected,
        through,
        runs: runs
            .iter()
            .map(|at| {
                let key = format!("schedule:{name}:{}", at.as_millis());
                (
                    *at,
                    email_with(&key, JobOptions::new().idempotency_key(key.clone())),
                )
            })
            .collect(),
        missed,
        overlap,
        next_slot: Some(through.after(Duration::from_secs(60))),
    }
}

fn done(fired: Fired) -> Vec<JobId> {
    match fired {
        Fired::Done { jobs, held_back } => {
            assert_eq!(held_back, 0, "nothing was held back");
            jobs
        }
        other => panic!("expected the firing to happen, got {other:?}"),
    }
}

pub async fn schedule_slots_fire_once_by_compare_and_set<S: Store>(store: S) {
    let declare = |names: &[(&str, &str)], at| {
        store.declare_schedules(names.iter().map(|(n, s)| decl(n, s)).collect(), at)
    };
    let marks = declare(&[("a", "every 60s"), ("b", "every 1h")], t(0))
        .await
        .unwrap();
    assert_eq!(
        marks,
        vec![
            ScheduleMark {
                name: "a".into(),
                last_slot: None,
                declared_at: t(0)
            },
            ScheduleMark {
                name: "b".into(),
                last_slot: None,
                declared_at: t(0)
            },
        ]
    );

    // The first slot: the marker moves from none to 60 s, the job is enqueued with it.
    let first = done(
        store
            .fire_schedule(
                firing("a", None, t(60 * SEC), &[t(60 * SEC)], 0, Overlap::Allow),
                t(60 * SEC),
            )
            .await
            .unwrap(),
    );
    assert_eq!(first.len(), 1);
    assert_eq!(
        state(&store, first[0], t(60 * SEC)).await,
        JobState::Available
    );
    // A second runner that planned from the same marker finds it moved: nothing written.
    assert_eq!(
        store
            .fire_schedule(
                firing("a", None, t(60 * SEC), &[t(60 * SEC)], 0, Overlap::Allow),
                t(61 * SEC),
            )
            .await
            .unwrap(),
        Fired::Moved {
            last_slot: Some(t(60 * SEC))
        }
    );
    assert_eq!(all_ids(&store, t(61 * SEC)).await, first);

    // Downtime: three slots due, the newest runs, two missed.
    let second = done(
        store
            .fire_schedule(
                firing(
                    "a",
                    Some(t(60 * SEC)),
                    t(240 * SEC),
                    &[t(240 * SEC)],
                    2,
                    Overlap::Allow,
                ),
                t(250 * SEC),
            )
            .await
            .unwrap(),
    );
    // A marker moved with no run (every due slot missed).
    assert_eq!(
        done(
            store
                .fire_schedule(
                    firing(
                        "a",
                        Some(t(240 * SEC)),
                        t(300 * SEC),
                        &[],
                        1,
                        Overlap::Allow
                    ),
                    t(400 * SEC),
                )
                .await
                .unwrap()
        ),
        vec![]
    );

    // Declared again (a restart, a new definition): the marker and first declaration stay.
    let marks = declare(&[("a", "every 2m")], t(500 * SEC)).await.unwrap();
    assert_eq!(marks[0].last_slot, Some(t(300 * SEC)));
    assert_eq!(marks[0].declared_at, t(0));

    let records = store.schedules().await.unwrap();
    assert_eq!(
        records.iter().map(|r| r.name.as_str()).collect::<Vec<_>>(),
        vec!["a", "b"]
    );
    let a = &records[0];
    assert_eq!(a.spec, "every 2m");
    assert_eq!((a.declared_at, a.seen_at), (t(0), t(500 * SEC)));
    assert_eq!(a.last_slot, Some(t(300 * SEC)));
    // The next slot as the last declaration said (a firing's next slot is a minute on).
    assert_eq!(a.next_slot, Some(t(60 * SEC)));
    assert_eq!(a.last_job, Some(second[0]));
    assert_eq!((a.fired, a.missed), (2, 3));
    assert_eq!((records[1].last_slot, records[1].fired), (None, 0));

    // A schedule no runner declared is refused.
    match store
        .fire_schedule(
            firing("nope", None, t(60 * SEC), &[t(60 * SEC)], 0, Overlap::Allow),
            t(60 * SEC),
        )
        .await
    {
        Err(StoreError::Invalid(reason)) => assert!(reason.contains("never declared"), "{reason}"),
        other => panic!("expected Invalid, got {other:?}"),
    }
}

pub async fn schedule_overlap_holds_back_or_replaces<S: Store>(store: S) {
    store
        .declare_schedules(
            vec![decl("forbid", "every 60s"), decl("replace", "every 60s")],
            t(0),
        )
        .await
        .unwrap();
    let m = |n: i64| t(n * 60 * SEC);

    // Forbid: the first slot's job has not run yet, so the second is held back (missed).
    let first = done(
        store
            .fire_schedule(
                firing("forbid", None, m(1), &[m(1)], 0, Overlap::Forbid),
                m(1),
            )
            .await
            .unwrap(),
    )[0];
    assert_eq!(
        store
            .fire_schedule(
                firing("forbid", Some(m(1)), m(2), &[m(2)], 0, Overlap::Forbid),
                m(2)
            )
            .await
            .unwrap(),
        Fired::Done {
            jobs: vec![],
            held_back: 1
        }
    );
    // Once it has finished, the next slot runs.
    let got = claim(&store, &[EMAIL], 10, m(2)).await;
    assert_eq!(ids(&got), vec![first]);
    store
        .finish(lease(&got[0]), completed("ok"), m(2))
        .await
        .unwrap();
    let third = done(
        store
            .fire_schedule(
                firing("forbid", Some(m(2)), m(3), &[m(3)], 0, Overlap::Forbid),
                m(3),
            )
            .await
            .unwrap(),
    );
    assert_eq!(third.len(), 1);
    let forbid = store.schedules().await.unwrap().remove(0);
    assert_eq!((forbid.fired, forbid.missed), (2, 1));
    assert_eq!(forbid.last_job, Some(third[0]));
    // Its last job finished and pruned: the schedule's marker is its own, the next slot runs.
    let got = claim(&store, &[EMAIL], 10, m(3)).await;
    assert_eq!(ids(&got), vec![third[0]]);
    store
        .finish(lease(&got[0]), completed("ok"), m(3))
        .await
        .unwrap();
    let pruned = store.prune(prune_all(m(10), 100), m(10)).await.unwrap();
    assert_eq!(pruned.jobs, 2);
    assert_eq!(
        done(
            store
                .fire_schedule(
                    firing("forbid", Some(m(3)), m(10), &[m(10)], 6, Overlap::Forbid),
                    m(10),
                )
                .await
                .unwrap()
        )
        .len(),
        1
    );

    // Replace: the first slot's job is running; the second slot cancels it (its run's
    // result is refused) and runs.
    let old = done(
        store
            .fire_schedule(
                firing("replace", None, m(1), &[m(1)], 0, Overlap::Replace),
                m(1),
            )
            .await
            .unwrap(),
    )[0];
    let got = claim(&store, &[EMAIL], 10, m(3)).await;
    let running = got
        .iter()
        .find(|c| c.id == old)
        .expect("the first slot's job");
    let new = done(
        store
            .fire_schedule(
                firing("replace", Some(m(1)), m(4), &[m(4)], 0, Overlap::Replace),
                m(4),
            )
            .await
            .unwrap(),
    )[0];
    assert_eq!(state(&store, old, m(4)).await, JobState::Cancelled);
    assert_eq!(state(&store, new, m(4)).await, JobState::Available);
    assert!(matches!(
        store.finish(lease(running), completed("late"), m(4)).await,
        Err(StoreError::LeaseLost(id)) if id == old
    ));
}

/// A batch pruning every final state finished before `before`, and keys expired by it.
fn prune_all(before: Timestamp, limit: u32) -> Prune {
    Prune {
        completed_before: Some(before),
        cancelled_before: Some(before),
        discarded_before: Some(before),
        keys_expired_by: before,
        limit,
    }
}

/// Runs job `id` (claimed alone) to `finish` at `at`.
async fn run_to<S: Store>(store: &S, id: JobId, finish: Finish, at: Timestamp) {
    let got = claim(store, &[EMAIL, REPORT, COLLECT], 1, at).await;
    assert_eq!(ids(&got), vec![id], "the job to run next");
    store.finish(lease(&got[0]), finish, at).await.unwrap();
}

pub async fn prune_deletes_old_finished_jobs_by_state_in_batches<S: Store>(store: S) {
    let mut done = Vec::new();
    for n in 0..3 {
        let id = add(&store, email(&format!("done-{n}")), t(0)).await;
        run_to(&store, id, completed("ok"), t(SEC)).await;
        done.push(id);
    }
    let dead = add(&store, email("dead"), t(0)).await;
    run_to(&store, dead, failed("no", false), t(SEC)).await;
    let gone = add(&store, email("gone"), t(0)).await;
    store.cancel(gone, t(SEC)).await.unwrap();
    let late = add(&store, email("late"), t(0)).await;
    run_to(&store, late, completed("ok"), t(100 * SEC)).await;
    let waiting = add(&store, email("waiting"), t(0)).await;
    let running = add(&store, report_with(1, JobOptions::new()), t(0)).await;
    claim(&store, &[REPORT], 1, t(0)).await;

    // Completed and discarded before 10 s go, two at a time; cancelled jobs are kept.
    let batch = Prune {
        completed_before: Some(t(10 * SEC)),
        cancelled_before: None,
        discarded_before: Some(t(10 * SEC)),
        keys_expired_by: t(10 * SEC),
        limit: 2,
    };
    let mut pruned = Vec::new();
    loop {
        let p = store.prune(batch, t(10 * SEC)).await.unwrap();
        assert_eq!(p.keys, 0);
        pruned.push(p.jobs);
        if p.jobs < 2 {
            break;
        }
    }
    assert_eq!(pruned, vec![2, 2, 0]);
    let left = all_ids(&store, t(10 * SEC)).await;
    assert_eq!(left, vec![gone, late, waiting, running]);
    assert_eq!(
        store.get(done[0], t(10 * SEC)).await.unwrap(),
        None,
        "a pruned job is gone"
    );
    // Later, with every state's cutoff passed: only unfinished jobs stay.
    let p = store
        .prune(prune_all(t(200 * SEC), 100), t(200 * SEC))
        .await
        .unwrap();
    assert_eq!(p.jobs, 2);
    assert_eq!(all_ids(&store, t(200 * SEC)).await, vec![waiting, running]);
}

pub async fn pruning_keeps_uniqueness_and_what_a_fan_in_needs<S: Store>(store: S) {
    // A keyed job, completed and pruned: its key still answers.
    let keyed = email_with("once", JobOptions::new().idempotency_key("report-2026-12"));
    let first = add(&store, keyed.clone(), t(0)).await;
    run_to(&store, first, completed("ok"), t(SEC)).await;
    let p = store
        .prune(prune_all(t(10 * SEC), 100), t(10 * SEC))
        .await
        .unwrap();
    assert_eq!(p, Pruned { jobs: 1, keys: 0 });
    let again = store.enqueue(vec![keyed], t(20 * SEC)).await.unwrap();
    assert_eq!((again[0].id, again[0].duplicate), (first, true));

    // A fan-in: a child that finished is kept while its collector waits, and after the
    // collector is ready (its outcome is what the collector reads).
    let group_ids = store
        .enqueue_group(
            group(
                vec![email("a"), email("b")],
                collector("sum"),
                GroupPolicy::Partial,
            ),
            t(20 * SEC),
        )
        .await
        .unwrap();
    let (a, b, coll) = (
        group_ids.children[0],
        group_ids.children[1],
        group_ids.collector,
    );
    run_to(&store, a, completed("1"), t(21 * SEC)).await;
    assert_eq!(
        store
            .prune(prune_all(t(100 * SEC), 100), t(100 * SEC))
            .await
            .unwrap()
            .jobs,
        0
    );
    run_to(&store, b, completed("2"), t(101 * SEC)).await;
    assert_eq!(
        store
            .prune(prune_all(t(200 * SEC), 100), t(200 * SEC))
            .await
            .unwrap()
            .jobs,
        0
    );
    let got = claim(&store, &[COLLECT], 1, t(201 * SEC)).await;
    assert_eq!(
        got[0].children.len(),
        2,
        "the collector reads both outcomes"
    );
    store
        .finish(lease(&got[0]), completed("3"), t(201 * SEC))
        .await
        .unwrap();
    // The group is finished: all three go.
    assert_eq!(
        store
            .prune(prune_all(t(300 * SEC), 100), t(300 * SEC))
            .await
            .unwrap()
            .jobs,
        3
    );
    assert!(store.get(coll, t(300 * SEC)).await.unwrap().is_none());
}

pub async fn unique_for_expires_a_key<S: Store>(store: S) {
    let options = || {
        JobOptions::new()
            .idempotency_key("digest:42")
            .unique_for(Duration::from_secs(60))
    };
    let first = add(&store, email_with("1", options()), t(0)).await;
    // Within the period: the first job, even once it has finished.
    let dup = store
        .enqueue(vec![email_with("2", options())], t(30 * SEC))
        .await
        .unwrap();
    assert_eq!((dup[0].id, dup[0].duplicate), (first, true));
    // Past it: a new job, holding the key for its own period.
    let second = store
        .enqueue(vec![email_with("3", options())], t(60 * SEC))
        .await
        .unwrap();
    assert!(!second[0].duplicate);
    assert_ne!(second[0].id, first);
    let dup = store
        .enqueue(vec![email_with("4", options())], t(119 * SEC))
        .await
        .unwrap();
    assert_eq!((dup[0].id, dup[0].duplicate), (second[0].id, true));
    // The pruner reclaims expired keys, and only those.
    let keys = |at| Prune {
        completed_before: None,
        cancelled_before: None,
        discarded_before: None,
        keys_expired_by: at,
        limit: 100,
    };
    assert_eq!(
        store
            .prune(keys(t(119 * SEC)), t(119 * SEC))
            .await
            .unwrap()
            .keys,
        0
    );
    assert_eq!(
        store
            .prune(keys(t(120 * SEC)), t(120 * SEC))
            .await
            .unwrap()
            .keys,
        1
    );
    let third = store
        .enqueue(vec![email_with("5", options())], t(121 * SEC))
        .await
        .unwrap();
    assert!(!third[0].duplicate);
    assert_eq!(all_ids(&store, t(121 * SEC)).await.len(), 3);
}

pub async fn delete_takes_only_finished_jobs_no_fan_in_needs<S: Store>(store: S) {
    let refused = |r: Result<(), StoreError>, why: &str| match r {
        Err(StoreError::InvalidState { action, .. }) => {
            assert!(action.contains(why), "{action}")
        }
        other => panic!("expected InvalidState ({why}), got {other:?}"),
    };
    let waiting = add(&store, email("waiting"), t(0)).await;
    refused(store.delete(waiting, t(0)).await, "cancel it first");
    run_to(&store, waiting, completed("ok"), t(SEC)).await;
    store.delete(waiting, t(2 * SEC)).await.unwrap();
    assert!(store.get(waiting, t(2 * SEC)).await.unwrap().is_none());
    assert_eq!(
        store.delete(waiting, t(2 * SEC)).await,
        Err(StoreError::NotFound(waiting))
    );

    // A child the collector still waits for; then a collector whose child runs again.
    let ids_ = store
        .enqueue_group(
            group(
                vec![email("a"), email("b")],
                collector("sum"),
                GroupPolicy::Partial,
            ),
            t(0),
        )
        .await
        .unwrap();
    let (a, b, coll) = (ids_.children[0], ids_.children[1], ids_.collector);
    run_to(&store, a, failed("no", false), t(3 * SEC)).await;
    refused(store.delete(a, t(3 * SEC)).await, "collector has not run");
    run_to(&store, b, completed("2"), t(4 * SEC)).await;
    run_to(&store, coll, completed("sum"), t(5 * SEC)).await;
    store.retry(a, t(6 * SEC)).await.unwrap();
    refused(
        store.delete(coll, t(6 * SEC)).await,
        "children have not all finished",
    );
    // The finished child may go now that its collector has run.
    store.delete(b, t(6 * SEC)).await.unwrap();
}
