//! The job state machine, written once: every decision about a job's next state, as pure
//! functions over plain values.
//!
//! A store reads what a decision needs inside its transaction, calls the function here, and
//! writes what it answers in its own SQL. What stays in a store is what is truly its own: SQL
//! text and schema, how rows are locked (SQLite's single writer, PostgreSQL's `FOR UPDATE` /
//! `SKIP LOCKED`), batching and wake-ups. The decisions, in the order a job meets them:
//!
//! * [`initial`]: a new job's state (scheduled, available, or waiting for its children) and
//!   when it first runs; [`check_group`] refuses a fan-out a store must not write.
//! * [`claim_step`]: what a claim does with a due candidate — claim it, claim it and record the
//!   run a dead runner lost, or discard it when that lost run was its last attempt.
//! * [`check_lease`]: whether a result (or a renewal) still belongs to the run that holds the
//!   job (the fencing rule).
//! * [`after_failure`]: a failed run is retried after its backoff or discarded.
//! * [`put_back`]: a run given back unrun (snoozed, shutdown) waits for its time again.
//! * [`counts_toward`] and [`after_child`]: a child's end, counted once, moves its collector
//!   on (fan-in, partial or fail-fast).
//! * [`check_action`]: which outside action (complete, release, cancel, retry) a state allows;
//!   [`retried_child_uncounts`]: a retried child is awaited again by a collector still waiting.
//! * [`shown`]: the state a reader sees.

use crate::jobs::{
    ChildFailure, ChildOutcome, GroupPolicy, JobId, JobState, Lease, NewGroup, NewJob,
    RetryBackoff, StoreError, Timestamp,
};

/// How a new job starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Initial {
    /// Its first state.
    pub state: JobState,
    /// When it may first run: its `not_before`, never earlier than now.
    pub run_at: Timestamp,
    /// For a collector: the children it waits for.
    pub pending: u32,
    /// For a collector: its group policy.
    pub policy: Option<GroupPolicy>,
}

/// How `job` starts when enqueued at `now`; `waiting_for` is a collector's child count and
/// policy.
pub(crate) fn initial(
    job: &NewJob,
    now: Timestamp,
    waiting_for: Option<(u32, GroupPolicy)>,
) -> Initial {
    let run_at = job.options.not_before.map_or(now, |t| t.max(now));
    let (state, pending, policy) = match waiting_for {
        Some((n, policy)) if n > 0 => (JobState::Waiting, n, Some(policy)),
        Some((_, policy)) => (JobState::Available, 0, Some(policy)),
        None if run_at > now => (JobState::Scheduled, 0, None),
        None => (JobState::Available, 0, None),
    };
    Initial {
        state,
        run_at,
        pending,
        policy,
    }
}

/// A fan-out a store may write: its children carry no idempotency keys (the collector's key
/// covers the group). Answers the number of children.
pub(crate) fn check_group(group: &NewGroup) -> Result<u32, StoreError> {
    if let Some(child) = group
        .children
        .iter()
        .find(|c| c.options.idempotency_key.is_some())
    {
        return Err(StoreError::Invalid(format!(
            "a fan-out child (`{}`) carries an idempotency key; put the key on the collector",
            child.name
        )));
    }
    u32::try_from(group.children.len())
        .map_err(|_| StoreError::Invalid("too many children in one group".into()))
}

/// The `group_policy` column's value.
pub(crate) fn policy_name(policy: GroupPolicy) -> &'static str {
    match policy {
        GroupPolicy::Partial => "partial",
        GroupPolicy::FailFast => "fail_fast",
    }
}

/// The group policy a `group_policy` column holds (`None`: not a collector).
pub(crate) fn parse_policy(value: Option<&str>) -> Option<GroupPolicy> {
    match value? {
        "fail_fast" => Some(GroupPolicy::FailFast),
        _ => Some(GroupPolicy::Partial),
    }
}

/// A due job a claim found: what [`claim_step`] looks at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Candidate<'a> {
    /// Its state: due (scheduled, available, retryable) or `executing` with an expired lease.
    pub state: JobState,
    /// Attempts started so far.
    pub attempt: u32,
    /// Attempts allowed.
    pub max_attempts: u32,
    /// For an expired lease: who held it.
    pub lease_owner: Option<&'a str>,
    /// For an expired lease: when it expired (ms).
    pub lease_expires_at: Option<i64>,
}

/// What a claim does with a candidate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ClaimStep {
    /// Claim it: a new attempt under a fresh lease and token.
    Claim,
    /// Claim it and record the run whose lease expired as a failed attempt (`error`).
    ClaimAfterLostRun {
        /// What the lost run's attempt records.
        error: String,
    },
    /// The lost run was its last attempt: record it and discard the job (no resource needed).
    Discard {
        /// What the lost run's attempt records, and the job's final error.
        error: String,
    },
}

/// What a claim does with `candidate`: a job whose lease expired lost a run, which counts as
/// an attempt; with none left it goes to the dead letter state instead of running again.
pub(crate) fn claim_step(candidate: &Candidate<'_>) -> ClaimStep {
    if candidate.state != JobState::Executing {
        return ClaimStep::Claim;
    }
    let error = lost_run_error(candidate.lease_owner, candidate.lease_expires_at);
    if candidate.attempt >= candidate.max_attempts {
        ClaimStep::Discard { error }
    } else {
        ClaimStep::ClaimAfterLostRun { error }
    }
}

/// The error recorded for a run whose lease expired without a result.
fn lost_run_error(owner: Option<&str>, expired_at: Option<i64>) -> String {
    format!(
        "lease of `{}` expired at {} without a result (the runner died or stalled)",
        owner.unwrap_or("?"),
        expired_at.unwrap_or(0)
    )
}

/// Whether `lease` still holds its job, given the job's row (`None`: no such job): the job
/// must be executing under the lease's token. A result from a run that lost its lease (it was
/// reclaimed, cancelled, or finished by someone else) is refused.
pub(crate) fn check_lease(lease: Lease, row: Option<(JobState, i64)>) -> Result<(), StoreError> {
    match row {
        None => Err(StoreError::NotFound(lease.id)),
        Some((JobState::Executing, token)) if token == lease.token => Ok(()),
        Some(_) => Err(StoreError::LeaseLost(lease.id)),
    }
}

/// What a failed run does to its job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AfterFailure {
    /// Retryable, due again at `at`.
    Retry {
        /// When the next attempt may start.
        at: Timestamp,
    },
    /// Discarded (dead letter).
    Discard,
}

/// A failed run of attempt `attempt` (1-based) of `max_attempts`: retried after its backoff
/// while attempts remain and the handler allowed it (`retry`), else discarded.
pub(crate) fn after_failure(
    attempt: u32,
    max_attempts: u32,
    backoff: &RetryBackoff,
    retry: bool,
    now: Timestamp,
) -> AfterFailure {
    if retry && attempt < max_attempts {
        AfterFailure::Retry {
            at: now.after(backoff.delay_after(attempt)),
        }
    } else {
        AfterFailure::Discard
    }
}

/// A run given back unrun, to wait until `until` (the attempt is not counted): its state and
/// its next `run_at`.
pub(crate) fn put_back(until: Timestamp, now: Timestamp) -> (JobState, Timestamp) {
    if until > now {
        (JobState::Scheduled, until)
    } else {
        (JobState::Available, now)
    }
}

/// The collector a job that just reached a final state counts toward: its parent, unless it
/// has none or was counted already (each child is counted exactly once).
pub(crate) fn counts_toward(parent: Option<i64>, counted: bool) -> Option<i64> {
    parent.filter(|_| !counted)
}

/// A collector as a child's end finds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Collector {
    /// Its state.
    pub state: JobState,
    /// Children not yet counted.
    pub pending: u32,
    /// Its group policy.
    pub policy: Option<GroupPolicy>,
}

/// What a child's end does to its collector.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum GroupStep {
    /// Nothing: the collector no longer waits (it was cancelled, or already released).
    Unchanged,
    /// It waits for `pending` more children.
    Waiting {
        /// Children still to end.
        pending: u32,
    },
    /// Every child has ended: the collector is available now.
    Ready,
    /// Fail-fast and a child failed: the collector is available now (its pending count
    /// zeroed) and its unfinished children are cancelled.
    ReadyCancelSiblings,
}

impl GroupStep {
    /// The collector's new state and pending count, or `None` when it is left as it is.
    pub(crate) fn collector(self) -> Option<(JobState, u32)> {
        match self {
            GroupStep::Unchanged => None,
            GroupStep::Waiting { pending } => Some((JobState::Waiting, pending)),
            GroupStep::Ready | GroupStep::ReadyCancelSiblings => Some((JobState::Available, 0)),
        }
    }
}

/// A child ended (`ok`: completed; else discarded or cancelled): what its collector does.
pub(crate) fn after_child(collector: Collector, ok: bool) -> GroupStep {
    if collector.state != JobState::Waiting {
        return GroupStep::Unchanged;
    }
    if !ok && collector.policy == Some(GroupPolicy::FailFast) {
        return GroupStep::ReadyCancelSiblings;
    }
    match collector.pending.saturating_sub(1) {
        0 => GroupStep::Ready,
        pending => GroupStep::Waiting { pending },
    }
}

/// An action on a job from outside its run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Action {
    /// Complete a parked job with an output.
    CompleteParked,
    /// Make a parked job available again.
    Release,
    /// Cancel a job that has not finished.
    Cancel,
    /// Run a retryable, discarded or cancelled job again now.
    Retry,
}

/// Whether `action` is allowed on job `id` in `state`; the error says which states allow it.
pub(crate) fn check_action(action: Action, id: JobId, state: JobState) -> Result<(), StoreError> {
    let (allowed, what) = match action {
        Action::CompleteParked => (
            state == JobState::Parked,
            "complete (only parked jobs are completed from outside)",
        ),
        Action::Release => (
            state == JobState::Parked,
            "release (only parked jobs are released)",
        ),
        Action::Cancel => (!state.is_final(), "cancel"),
        Action::Retry => (
            matches!(
                state,
                JobState::Retryable | JobState::Discarded | JobState::Cancelled
            ),
            "retry (only retryable, discarded or cancelled jobs are retried)",
        ),
    };
    if allowed {
        Ok(())
    } else {
        Err(StoreError::InvalidState {
            id,
            state,
            action: what,
        })
    }
}

/// Whether job `id` in `state` may be deleted: only finished, and not while a fan-in needs
/// it (`collector_waits`: it is a child whose collector has not run; `children_unfinished`:
/// it is a collector with a child still to finish).
pub(crate) fn check_delete(
    id: JobId,
    state: JobState,
    collector_waits: bool,
    children_unfinished: bool,
) -> Result<(), StoreError> {
    let refused = |action| Err(StoreError::InvalidState { id, state, action });
    if !state.is_final() {
        refused("delete (only finished jobs are deleted; cancel it first)")
    } else if collector_waits {
        refused("delete (its collector has not run yet and needs its outcome)")
    } else if children_unfinished {
        refused("delete (it is a collector whose children have not all finished)")
    } else {
        Ok(())
    }
}

/// A retried child that its collector already counted is awaited again (uncounted, the
/// collector's pending count up by one) while that collector still waits; a collector that
/// already ran is left alone.
pub(crate) fn retried_child_uncounts(counted: bool, collector: Option<JobState>) -> bool {
    counted && collector == Some(JobState::Waiting)
}

/// The attempts a retried job is allowed: one more than it used, at least.
pub(crate) fn attempts_after_retry(attempt: u32, max_attempts: u32) -> u32 {
    max_attempts.max(attempt.saturating_add(1))
}

/// The state a reader sees: a scheduled job whose time has come reads as available.
pub(crate) fn shown(state: JobState, run_at: Timestamp, now: Timestamp) -> JobState {
    if state == JobState::Scheduled && run_at <= now {
        JobState::Available
    } else {
        state
    }
}

/// How a child of a fan-in ended, from its stored state, result and last error, as its
/// collector sees it.
pub(crate) fn child_outcome(
    id: JobId,
    name: String,
    state: JobState,
    result: Option<String>,
    error: Option<String>,
) -> ChildOutcome {
    let result = match state {
        JobState::Completed => Ok(result.unwrap_or_else(|| "null".to_owned())),
        JobState::Discarded => Err(ChildFailure::Discarded(error.unwrap_or_default())),
        // Cancelled, or not finished (a fail-fast group ran its collector early): reported
        // cancelled, which it is about to be.
        _ => Err(ChildFailure::Cancelled),
    };
    ChildOutcome { id, name, result }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::jobs::JobOptions;

    const NOW: Timestamp = Timestamp::from_millis(1_000_000);

    fn job(options: JobOptions) -> NewJob {
        NewJob {
            name: "j".into(),
            version: 1,
            payload: "null".into(),
            options,
        }
    }

    #[test]
    fn a_new_job_is_scheduled_available_or_waiting() {
        let later = NOW.after(Duration::from_secs(5));
        let plain = initial(&job(JobOptions::default()), NOW, None);
        assert_eq!((plain.state, plain.run_at), (JobState::Available, NOW));
        let scheduled = initial(&job(JobOptions::default().not_before(later)), NOW, None);
        assert_eq!(
            (scheduled.state, scheduled.run_at),
            (JobState::Scheduled, later)
        );
        // A `not_before` in the past runs now, not in the past.
        let past = Timestamp::from_millis(5);
        let overdue = initial(&job(JobOptions::default().not_before(past)), NOW, None);
        assert_eq!((overdue.state, overdue.run_at), (JobState::Available, NOW));
        let collector = initial(
            &job(JobOptions::default()),
            NOW,
            Some((3, GroupPolicy::FailFast)),
        );
        assert_eq!(
            collector,
            Initial {
                state: JobState::Waiting,
                run_at: NOW,
                pending: 3,
                policy: Some(GroupPolicy::FailFast)
            }
        );
        // A collector of no children runs at once.
        let empty = initial(
            &job(JobOptions::default()),
            NOW,
            Some((0, GroupPolicy::Partial)),
        );
        assert_eq!((empty.state, empty.pending), (JobState::Available, 0));
    }

    #[test]
    fn a_group_child_with_an_idempotency_key_is_refused() {
        let keyed = job(JobOptions::default().idempotency_key("k"));
        let group = NewGroup {
            children: vec![job(JobOptions::default()), keyed],
            collector: job(JobOptions::default()),
            policy: GroupPolicy::Partial,
        };
        assert!(matches!(check_group(&group), Err(StoreError::Invalid(_))));
        let group = NewGroup {
            children: vec![job(JobOptions::default()); 2],
            ..group
        };
        assert_eq!(check_group(&group).ok(), Some(2));
    }

    #[test]
    fn policies_round_trip_through_their_column() {
        for policy in [GroupPolicy::Partial, GroupPolicy::FailFast] {
            assert_eq!(parse_policy(Some(policy_name(policy))), Some(policy));
        }
        assert_eq!(parse_policy(None), None);
    }

    fn candidate(state: JobState, attempt: u32, max_attempts: u32) -> Candidate<'static> {
        Candidate {
            state,
            attempt,
            max_attempts,
            lease_owner: Some("runner-1"),
            lease_expires_at: Some(42),
        }
    }

    #[test]
    fn a_claim_takes_due_jobs_and_records_or_discards_a_lost_run() {
        for due in [
            JobState::Scheduled,
            JobState::Available,
            JobState::Retryable,
        ] {
            assert_eq!(claim_step(&candidate(due, 2, 3)), ClaimStep::Claim);
            // Attempts are checked when a run fails, not when a due job is claimed.
            assert_eq!(claim_step(&candidate(due, 3, 3)), ClaimStep::Claim);
        }
        let error = "lease of `runner-1` expired at 42 without a result (the runner died or \
                     stalled)"
            .to_owned();
        assert_eq!(
            claim_step(&candidate(JobState::Executing, 2, 3)),
            ClaimStep::ClaimAfterLostRun {
                error: error.clone()
            }
        );
        assert_eq!(
            claim_step(&candidate(JobState::Executing, 3, 3)),
            ClaimStep::Discard { error }
        );
    }

    #[test]
    fn only_the_run_holding_the_token_may_finish() {
        let lease = Lease {
            id: JobId(7),
            token: 4,
        };
        assert!(check_lease(lease, Some((JobState::Executing, 4))).is_ok());
        assert!(matches!(
            check_lease(lease, Some((JobState::Executing, 5))),
            Err(StoreError::LeaseLost(JobId(7)))
        ));
        assert!(matches!(
            check_lease(lease, Some((JobState::Cancelled, 4))),
            Err(StoreError::LeaseLost(JobId(7)))
        ));
        assert!(matches!(
            check_lease(lease, None),
            Err(StoreError::NotFound(JobId(7)))
        ));
    }

    #[test]
    fn a_failure_retries_after_its_backoff_until_attempts_run_out() {
        let backoff = RetryBackoff {
            base: Duration::from_secs(1),
            factor: 2.0,
            max: Duration::from_secs(3),
        };
        let at = |secs| AfterFailure::Retry {
            at: NOW.after(Duration::from_secs(secs)),
        };
        assert_eq!(after_failure(1, 4, &backoff, true, NOW), at(1));
        assert_eq!(after_failure(2, 4, &backoff, true, NOW), at(2));
        assert_eq!(after_failure(3, 4, &backoff, true, NOW), at(3)); // capped
        assert_eq!(
            after_failure(4, 4, &backoff, true, NOW),
            AfterFailure::Discard
        );
        // The handler may refuse a retry.
        assert_eq!(
            after_failure(1, 4, &backoff, false, NOW),
            AfterFailure::Discard
        );
    }

    #[test]
    fn a_run_put_back_waits_for_its_time() {
        let later = NOW.after(Duration::from_secs(9));
        assert_eq!(put_back(later, NOW), (JobState::Scheduled, later));
        assert_eq!(put_back(NOW, NOW), (JobState::Available, NOW));
        assert_eq!(
            put_back(Timestamp::from_millis(1), NOW),
            (JobState::Available, NOW)
        );
    }

    fn waiting(pending: u32, policy: GroupPolicy) -> Collector {
        Collector {
            state: JobState::Waiting,
            pending,
            policy: Some(policy),
        }
    }

    #[test]
    fn each_child_counts_once_and_the_last_one_releases_the_collector() {
        assert_eq!(counts_toward(Some(3), false), Some(3));
        assert_eq!(counts_toward(Some(3), true), None);
        assert_eq!(counts_toward(None, false), None);
        for ok in [true, false] {
            assert_eq!(
                after_child(waiting(3, GroupPolicy::Partial), ok),
                GroupStep::Waiting { pending: 2 }
            );
            assert_eq!(
                after_child(waiting(1, GroupPolicy::Partial), ok),
                GroupStep::Ready
            );
        }
        assert_eq!(
            GroupStep::Waiting { pending: 2 }.collector(),
            Some((JobState::Waiting, 2))
        );
        for ready in [GroupStep::Ready, GroupStep::ReadyCancelSiblings] {
            assert_eq!(ready.collector(), Some((JobState::Available, 0)));
        }
        assert_eq!(GroupStep::Unchanged.collector(), None);
        // A count that is somehow already zero still releases it, never wraps.
        assert_eq!(
            after_child(waiting(0, GroupPolicy::Partial), true),
            GroupStep::Ready
        );
    }

    #[test]
    fn fail_fast_releases_the_collector_at_the_first_failure() {
        assert_eq!(
            after_child(waiting(3, GroupPolicy::FailFast), false),
            GroupStep::ReadyCancelSiblings
        );
        assert_eq!(
            after_child(waiting(3, GroupPolicy::FailFast), true),
            GroupStep::Waiting { pending: 2 }
        );
    }

    #[test]
    fn a_collector_that_no_longer_waits_is_left_alone() {
        for state in [
            JobState::Available,
            JobState::Executing,
            JobState::Cancelled,
        ] {
            let collector = Collector {
                state,
                pending: 2,
                policy: Some(GroupPolicy::FailFast),
            };
            assert_eq!(after_child(collector, false), GroupStep::Unchanged);
        }
    }

    #[test]
    fn each_outside_action_is_allowed_in_its_states_only() {
        let id = JobId(1);
        for state in JobState::ALL {
            let allowed = |action| check_action(action, id, state).is_ok();
            assert_eq!(allowed(Action::CompleteParked), state == JobState::Parked);
            assert_eq!(allowed(Action::Release), state == JobState::Parked);
            assert_eq!(allowed(Action::Cancel), !state.is_final());
            assert_eq!(
                allowed(Action::Retry),
                matches!(
                    state,
                    JobState::Retryable | JobState::Discarded | JobState::Cancelled
                )
            );
        }
        match check_action(Action::Cancel, id, JobState::Completed) {
            Err(StoreError::InvalidState { state, action, .. }) => {
                assert_eq!((state, action), (JobState::Completed, "cancel"));
            }
            other => panic!("expected InvalidState, got {other:?}"),
        }
    }

    #[test]
    fn a_retried_child_is_awaited_again_only_by_a_waiting_collector() {
        assert!(retried_child_uncounts(true, Some(JobState::Waiting)));
        assert!(!retried_child_uncounts(true, Some(JobState::Completed)));
        assert!(!retried_child_uncounts(false, Some(JobState::Waiting)));
        assert!(!retried_child_uncounts(true, None));
        assert_eq!(attempts_after_retry(3, 3), 4);
        assert_eq!(attempts_after_retry(1, 5), 5);
    }

    #[test]
    fn readers_see_a_due_scheduled_job_as_available() {
        let later = NOW.after(Duration::from_secs(1));
        assert_eq!(shown(JobState::Scheduled, NOW, NOW), JobState::Available);
        assert_eq!(shown(JobState::Scheduled, later, NOW), JobState::Scheduled);
        assert_eq!(shown(JobState::Retryable, NOW, NOW), JobState::Retryable);
    }

    #[test]
    fn a_collector_sees_how_each_child_ended() {
        let outcome = |state, result: Option<&str>, error: Option<&str>| {
            child_outcome(
                JobId(2),
                "c".into(),
                state,
                result.map(str::to_owned),
                error.map(str::to_owned),
            )
            .result
        };
        assert_eq!(
            outcome(JobState::Completed, Some("7"), None),
            Ok("7".to_owned())
        );
        assert_eq!(
            outcome(JobState::Completed, None, None),
            Ok("null".to_owned())
        );
        assert_eq!(
            outcome(JobState::Discarded, None, Some("boom")),
            Err(ChildFailure::Discarded("boom".into()))
        );
        for unfinished in [
            JobState::Cancelled,
            JobState::Available,
            JobState::Executing,
        ] {
            assert_eq!(
                outcome(unfinished, None, None),
                Err(ChildFailure::Cancelled)
            );
        }
    }

    #[test]
    fn only_finished_jobs_no_fan_in_needs_are_deleted() {
        let id = JobId(7);
        assert!(check_delete(id, JobState::Completed, false, false).is_ok());
        assert!(check_delete(id, JobState::Discarded, false, false).is_ok());
        for (state, waits, children, why) in [
            (JobState::Executing, false, false, "cancel it first"),
            (JobState::Completed, true, false, "collector has not run"),
            (
                JobState::Cancelled,
                false,
                true,
                "children have not all finished",
            ),
        ] {
            let err = check_delete(id, state, waits, children)
                .unwrap_err()
                .to_string();
            assert!(err.contains(why), "{err}");
        }
    }
}
