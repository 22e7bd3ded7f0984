//! What a store reports about its jobs: the state machine ([`JobState`]), a job's row
//! ([`JobRecord`]) with its attempt history, and a fan-in collector's view of its children
//! ([`ChildOutcome`]).

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::jobs::{JobId, Timestamp};

/// Where a job is in its life.
///
/// ```text
/// scheduled ─▶ available ─▶ executing ─▶ completed
///                 ▲             │ ├────▶ retryable ─▶ (available when due) ─▶ …
///                 │             │ ├────▶ discarded   (dead letter: attempts used up, or discarded)
///   waiting ──────┘             │ └────▶ parked      (until `complete` or `release`)
///   (collector until its        └──────▶ cancelled   (also from any non-final state)
///    children are done)
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub enum JobState {
    /// Enqueued with a `not_before` still in the future.
    Scheduled,
    /// Due; the next runner with a free slot claims it.
    Available,
    /// Claimed by a runner holding a lease.
    Executing,
    /// Failed an attempt; runs again when its backoff has passed.
    Retryable,
    /// Ran to success (final).
    Completed,
    /// Dead letter: its attempts are used up or its handler discarded it (final).
    Discarded,
    /// Cancelled (final).
    Cancelled,
    /// A fan-in collector waiting for its children.
    Waiting,
    /// Waiting for a person or an external event: `complete` or `release` moves it on.
    Parked,
}

impl JobState {
    /// Every state, in the order above.
    pub const ALL: [JobState; 9] = [
        JobState::Scheduled,
        JobState::Available,
        JobState::Executing,
        JobState::Retryable,
        JobState::Completed,
        JobState::Discarded,
        JobState::Cancelled,
        JobState::Waiting,
        JobState::Parked,
    ];

    /// The name stores write.
    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Scheduled => "scheduled",
            JobState::Available => "available",
            JobState::Executing => "executing",
            JobState::Retryable => "retryable",
            JobState::Completed => "completed",
            JobState::Discarded => "discarded",
            JobState::Cancelled => "cancelled",
            JobState::Waiting => "waiting",
            JobState::Parked => "parked",
        }
    }

    /// The state a store name stands for.
    pub fn parse(name: &str) -> Option<JobState> {
        JobState::ALL.into_iter().find(|s| s.as_str() == name)
    }

    /// The state a store's `state` column holds for job `id`; an unknown name is corruption.
    #[cfg_attr(not(any(feature = "sqlite", feature = "postgres")), allow(dead_code))]
    pub(crate) fn from_column(name: &str, id: i64) -> Result<JobState, crate::jobs::StoreError> {
        JobState::parse(name).ok_or_else(|| {
            crate::jobs::StoreError::Corrupt(format!(
                "{} has state `{name}`",
                crate::jobs::JobId(id)
            ))
        })
    }

    /// Completed, discarded and cancelled jobs never change again (but `retry`).
    pub fn is_final(self) -> bool {
        matches!(
            self,
            JobState::Completed | JobState::Discarded | JobState::Cancelled
        )
    }
}

impl std::fmt::Display for JobState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(self.as_str())
    }
}

/// One failed attempt in a job's history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct AttemptError {
    /// The attempt (1-based).
    pub attempt: u32,
    /// When it ended.
    pub at: Timestamp,
    /// What went wrong.
    pub error: String,
}

/// A job as its store holds it.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct JobRecord {
    /// Its id.
    pub id: JobId,
    /// Its queue.
    pub queue: String,
    /// Its type name.
    pub name: String,
    /// Its payload's schema version.
    pub version: u32,
    /// Its payload (JSON).
    pub payload: String,
    /// Its state. A scheduled job whose time has come reads as available.
    pub state: JobState,
    /// Higher runs first.
    pub priority: i32,
    /// When it may run next.
    pub run_at: Timestamp,
    /// Attempts started so far.
    pub attempt: u32,
    /// Attempts allowed.
    pub max_attempts: u32,
    /// Per-attempt timeout, if the job sets one.
    pub timeout: Option<Duration>,
    /// The resource it holds while running.
    pub resource: Option<crate::jobs::Resource>,
    /// Its idempotency key.
    pub idempotency_key: Option<String>,
    /// The runner holding its lease, while executing.
    pub lease_owner: Option<String>,
    /// When that lease ends unless renewed.
    pub lease_expires_at: Option<Timestamp>,
    /// The collector it feeds, if it is a fan-in child.
    pub parent: Option<JobId>,
    /// For a collector: children not yet finished.
    pub pending_children: u32,
    /// Its output (JSON), once completed.
    pub result: Option<String>,
    /// Every failed attempt, oldest first.
    pub errors: Vec<AttemptError>,
    /// When it was enqueued.
    pub inserted_at: Timestamp,
    /// When it reached a final state.
    pub finished_at: Option<Timestamp>,
}

/// How a fan-in child ended, as its collector sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChildOutcome {
    /// The child.
    pub id: JobId,
    /// Its type name.
    pub name: String,
    /// Its output (JSON) if it completed, or why it did not.
    pub result: Result<String, ChildFailure>,
}

/// Why a fan-in child has no output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChildFailure {
    /// Discarded (attempts used up or discarded by its handler), with its last error.
    Discarded(String),
    /// Cancelled (by a user, or by a fail-fast group after a sibling failed).
    Cancelled,
}

impl std::fmt::Display for ChildFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ChildFailure::Discarded(e) => write!(f, "discarded: {e}"),
            ChildFailure::Cancelled => f.write_str("cancelled"),
        }
    }
}

/// Which jobs [`Store::list`](crate::jobs::Store::list) returns (all filters must match),
/// oldest id first.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ListFilter {
    /// Only jobs in this state.
    pub state: Option<JobState>,
    /// Only jobs of this type.
    pub name: Option<String>,
    /// Only jobs of this queue.
    pub queue: Option<String>,
    /// Only jobs with an id above this one (for paging).
    pub after: Option<JobId>,
    /// At most this many (default 100).
    pub limit: Option<u32>,
}
