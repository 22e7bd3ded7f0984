//! The store contract: every state change of a job is one call here, atomic and durable when
//! it returns. [`SqliteStore`](crate::jobs::SqliteStore) implements it (on a file, or in
//! memory for tests) and `PostgresStore` too; both pass the same test suite.
//!
//! The state machine itself (what a failure, a lost lease, a child's end or an outside action
//! does to a job) is decided once, in the crate's pure `jobs::transition` functions, which both
//! stores call inside their transactions. A store in this crate (as River keeps one driver per
//! database) writes only its storage:
//!
//! * its schema, and each method below as one transaction of its SQL;
//! * how rows are locked against concurrent claims (SQLite: one writer; PostgreSQL:
//!   `FOR UPDATE SKIP LOCKED` and an advisory lock per resource key);
//! * durability and batching (SQLite's journal thread and group commit), and
//!   [`wakeups`](Store::wakeups) when other processes share the store (PostgreSQL's
//!   `LISTEN/NOTIFY`);
//!
//! and it passes the store suite (`tests/jobs_store.rs`) unchanged.
//! Time is always passed in (`now`): stores never read a clock, so tests drive them exactly.
//!
//! Leases and fencing: [`claim`](Store::claim) moves due jobs to `executing` under a lease
//! (`owner`, `expires_at`) and a fresh fencing token. [`finish`](Store::finish) and
//! [`heartbeat`](Store::heartbeat) only act while the token still matches, so a runner that
//! stalled past its lease cannot overwrite the run that took over. An expired lease makes the
//! job claimable again; that run counts as an attempt.

use std::time::Duration;

use futures::future::BoxFuture;

use crate::jobs::{
    ChildOutcome, JobId, JobRecord, JobState, ListFilter, NewJob, Overlap, Prune, Pruned,
    ScheduleRecord, StoreError, Timestamp,
};

/// What [`Store::enqueue`] did with one job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Enqueued {
    /// The job's id (the existing job's, for a duplicate).
    pub id: JobId,
    /// `true` when a job with the same idempotency key already existed and nothing was added.
    pub duplicate: bool,
}

/// What a fan-in collector does when a child fails for good.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum GroupPolicy {
    /// Wait for every child; the collector sees the failures next to the results.
    #[default]
    Partial,
    /// At the first child discarded or cancelled, cancel the unfinished siblings and run the
    /// collector at once.
    FailFast,
}

/// A fan-out: children that run independently and a collector that runs once, after all of
/// them, with all their outcomes.
#[derive(Debug, Clone, PartialEq)]
pub struct NewGroup {
    /// The children.
    pub children: Vec<NewJob>,
    /// The collector, held in `waiting` until the children are done.
    pub collector: NewJob,
    /// What a failed child does to the group.
    pub policy: GroupPolicy,
}

/// The ids a fan-out got.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupIds {
    /// The collector.
    pub collector: JobId,
    /// The children, in the order given.
    pub children: Vec<JobId>,
}

/// What a runner asks for when it has free slots.
#[derive(Debug, Clone, PartialEq)]
pub struct ClaimRequest {
    /// The runner's lease owner name (unique per runner instance).
    pub owner: String,
    /// Claim only from these queues.
    pub queues: Vec<String>,
    /// Claim only jobs of these types (those the runner has handlers for).
    pub names: Vec<String>,
    /// At most this many.
    pub limit: u32,
    /// The lease length.
    pub lease: Duration,
}

/// A job a runner has claimed.
#[derive(Debug, Clone, PartialEq)]
pub struct ClaimedJob {
    /// Its id.
    pub id: JobId,
    /// The fencing token of this run: pass it back to finish or renew.
    pub token: i64,
    /// Its type name.
    pub name: String,
    /// Its payload's schema version.
    pub version: u32,
    /// Its payload (JSON).
    pub payload: String,
    /// Its queue.
    pub queue: String,
    /// This attempt (1-based).
    pub attempt: u32,
    /// Attempts allowed.
    pub max_attempts: u32,
    /// Its own timeout, if it sets one.
    pub timeout: Option<Duration>,
    /// When the lease ends unless renewed.
    pub lease_expires_at: Timestamp,
    /// When it became due (its `run_at`): a run that starts later waited this long.
    pub due_at: Timestamp,
    /// For a fan-in collector: how each child ended, in id order. Empty otherwise.
    pub children: Vec<ChildOutcome>,
}

/// A claimed job and the token of its run: what a runner renews or finishes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Lease {
    /// The job.
    pub id: JobId,
    /// The fencing token from the claim.
    pub token: i64,
}

/// How a run ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Finish {
    /// Succeeded with an output (JSON). The follow-up jobs and groups are enqueued in the same
    /// transaction: never one without the other.
    Completed {
        /// The output.
        result: String,
        /// Jobs to enqueue with the completion.
        follow_ups: Vec<NewJob>,
        /// Fan-outs to enqueue with the completion.
        groups: Vec<NewGroup>,
    },
    /// Failed: retried after its backoff while attempts remain (unless `retry` is false),
    /// else discarded.
    Failed {
        /// What went wrong.
        error: String,
        /// `false` discards at once.
        retry: bool,
    },
    /// Not run after all (e.g. a circuit breaker or shutdown): available again at `until`,
    /// the attempt not counted.
    Snoozed {
        /// When it may run again.
        until: Timestamp,
    },
    /// Waits for [`Store::complete_parked`] or [`Store::release`].
    Parked,
}

/// A runner's turn at the store ([`Store::finish_and_claim`]): how its runs ended, and what it
/// claims next.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Turn {
    /// Runs that ended, each recorded as [`Store::finish`] would (fenced by its token).
    pub finished: Vec<(Lease, Finish)>,
    /// The claim to make after them, if the runner has free slots.
    pub claim: Option<ClaimRequest>,
}

/// What a [`Turn`] did.
#[derive(Debug)]
pub struct TurnOutcome {
    /// One answer per finished run, in order: as [`Store::finish`] answers.
    pub finished: Vec<Result<(), StoreError>>,
    /// The jobs claimed (empty without a claim), or why the claim failed (the finishes are
    /// recorded all the same).
    pub claimed: Result<Vec<ClaimedJob>, StoreError>,
    /// When a claim took fewer jobs than its limit: when the next job of its queues and types
    /// is due ([`Store::next_due`]), so the runner sleeps until then.
    pub next_due: Option<Timestamp>,
}

/// A schedule as a runner declares it ([`Store::declare_schedules`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScheduleDecl {
    /// Its name: its identity in the store.
    pub name: String,
    /// Its definition in words (for listings).
    pub spec: String,
    /// When it fires next, as the runner computes it now (for listings).
    pub next_slot: Option<Timestamp>,
}

/// Where a schedule's slot marker stands ([`Store::declare_schedules`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScheduleMark {
    /// The schedule.
    pub name: String,
    /// The last slot fired; `None` before the first.
    pub last_slot: Option<Timestamp>,
    /// When it was first declared: slots before it were never due.
    pub declared_at: Timestamp,
}

/// A schedule's due slots, to fire in one transaction ([`Store::fire_schedule`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Firing {
    /// The schedule.
    pub schedule: String,
    /// The marker the runner planned from (its last slot; `None` before the first): if the
    /// store's differs, another runner fired meanwhile and nothing is written.
    pub expected: Option<Timestamp>,
    /// The newest due slot: where the marker moves.
    pub through: Timestamp,
    /// The slots that run, oldest first, each with its job (whose idempotency key is the
    /// slot's).
    pub runs: Vec<(Timestamp, NewJob)>,
    /// Due slots that do not run (downtime, a starting deadline).
    pub missed: u64,
    /// What the runs do while the schedule's last job has not finished.
    pub overlap: Overlap,
    /// The slot after `through` (for listings).
    pub next_slot: Option<Timestamp>,
}

/// What [`Store::fire_schedule`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Fired {
    /// The marker moved to the firing's `through`; these jobs were enqueued (none when the
    /// overlap policy held the runs back: `held_back` counts them, as missed).
    Done {
        /// The jobs enqueued, oldest slot first.
        jobs: Vec<JobId>,
        /// Runs not enqueued because the previous slot's job had not finished.
        held_back: u64,
    },
    /// Another runner moved the marker first: plan again from `last_slot`.
    Moved {
        /// Where the marker stands.
        last_slot: Option<Timestamp>,
    },
}

/// A runner's sign of life in a store ([`Store::hold_liveness`]): held while its process
/// lives, let go of by the operating system or the database when the process dies, so that
/// other runners rescue its jobs at once ([`Store::rescue`]) instead of waiting for their
/// leases. Dropping it (a graceful stop) lets go of it too.
pub struct Liveness {
    _held: Box<dyn std::any::Any + Send + Sync>,
}

impl Liveness {
    /// A sign of life that lasts as long as `held` (a locked file, a database session).
    pub fn new(held: impl std::any::Any + Send + Sync) -> Self {
        Liveness {
            _held: Box::new(held),
        }
    }
}

impl std::fmt::Debug for Liveness {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Liveness").finish_non_exhaustive()
    }
}

/// A storage backend for durable jobs. Every method is one transaction; when it returns `Ok`,
/// its effect is durable to the store's stated level.
pub trait Store: Send + Sync + 'static {
    /// Adds jobs (one transaction for all). A job whose idempotency key exists is not added:
    /// its entry says `duplicate` and carries the existing id.
    fn enqueue(
        &self,
        jobs: Vec<NewJob>,
        now: Timestamp,
    ) -> BoxFuture<'_, Result<Vec<Enqueued>, StoreError>>;

    /// Adds a fan-out: the collector (waiting) and its children, in one transaction.
    fn enqueue_group(
        &self,
        group: NewGroup,
        now: Timestamp,
    ) -> BoxFuture<'_, Result<GroupIds, StoreError>>;

    /// Claims up to `limit` due jobs (highest priority, then earliest `run_at`, then id),
    /// skipping jobs whose resource is at capacity. Jobs whose lease expired are claimable
    /// (their lost run counts as an attempt; with none left, they are discarded instead).
    fn claim(
        &self,
        request: ClaimRequest,
        now: Timestamp,
    ) -> BoxFuture<'_, Result<Vec<ClaimedJob>, StoreError>>;

    /// Extends the leases still held (token matches, still executing) to `expires_at`; returns
    /// the ones that were lost.
    fn heartbeat(
        &self,
        leases: Vec<Lease>,
        expires_at: Timestamp,
        now: Timestamp,
    ) -> BoxFuture<'_, Result<Vec<JobId>, StoreError>>;

    /// Records how a run ended. [`StoreError::LeaseLost`] when the token no longer matches
    /// (the job was reclaimed or cancelled meanwhile): nothing is written.
    fn finish(
        &self,
        lease: Lease,
        finish: Finish,
        now: Timestamp,
    ) -> BoxFuture<'_, Result<(), StoreError>>;

    /// A runner's turn: records how its runs ended, then claims, in as few transactions as
    /// the store can (SQLite and PostgreSQL: one), so that a busy runner pays one commit for
    /// finishing a job and claiming the next. Each finish is fenced and answered on its own: a
    /// lost lease refuses that one only. The default makes the separate calls.
    fn finish_and_claim(
        &self,
        turn: Turn,
        now: Timestamp,
    ) -> BoxFuture<'_, Result<TurnOutcome, StoreError>> {
        Box::pin(async move {
            let mut finished = Vec::with_capacity(turn.finished.len());
            for (lease, finish) in turn.finished {
                finished.push(self.finish(lease, finish, now).await);
            }
            let (claimed, next_due) = match turn.claim {
                None => (Ok(Vec::new()), None),
                Some(request) => {
                    let (queues, names, limit) =
                        (request.queues.clone(), request.names.clone(), request.limit);
                    match self.claim(request, now).await {
                        Ok(claimed) if (claimed.len() as u32) < limit => {
                            let next_due = match self.next_due(queues, names).await {
                                Ok(next_due) => next_due,
                                Err(e) => {
                                    tracing::warn!(error = %e, "reading the next due job failed");
                                    None
                                }
                            };
                            (Ok(claimed), next_due)
                        }
                        other => (other, None),
                    }
                }
            };
            Ok(TurnOutcome {
                finished,
                claimed,
                next_due,
            })
        })
    }

    /// Gives a job back unrun (shutdown): available again at once, the attempt not counted.
    /// Same fencing as [`finish`](Store::finish).
    fn give_back(&self, lease: Lease, now: Timestamp) -> BoxFuture<'_, Result<(), StoreError>>;

    /// Completes a parked job from outside (a person, a webhook) with an output (JSON).
    fn complete_parked(
        &self,
        id: JobId,
        result: String,
        now: Timestamp,
    ) -> BoxFuture<'_, Result<(), StoreError>>;

    /// Makes a parked job available again (its next run is a new attempt).
    fn release(&self, id: JobId, now: Timestamp) -> BoxFuture<'_, Result<(), StoreError>>;

    /// Cancels a job that has not finished (and, for a collector, its unfinished children).
    fn cancel(&self, id: JobId, now: Timestamp) -> BoxFuture<'_, Result<(), StoreError>>;

    /// Makes a retryable, discarded or cancelled job available now, granting one more attempt
    /// if its attempts are used up.
    fn retry(&self, id: JobId, now: Timestamp) -> BoxFuture<'_, Result<(), StoreError>>;

    /// One job.
    fn get(
        &self,
        id: JobId,
        now: Timestamp,
    ) -> BoxFuture<'_, Result<Option<JobRecord>, StoreError>>;

    /// Jobs matching `filter`, oldest id first.
    fn list(
        &self,
        filter: ListFilter,
        now: Timestamp,
    ) -> BoxFuture<'_, Result<Vec<JobRecord>, StoreError>>;

    /// How many jobs are in each state (every state listed, zeros included).
    fn counts(&self, now: Timestamp) -> BoxFuture<'_, Result<Vec<(JobState, u64)>, StoreError>>;

    /// The earliest instant a job of these queues and types becomes claimable (a schedule, a
    /// backoff, a lease expiry); `None` if there is none. A runner sleeps until then.
    fn next_due(
        &self,
        queues: Vec<String>,
        names: Vec<String>,
    ) -> BoxFuture<'_, Result<Option<Timestamp>, StoreError>>;

    /// Due jobs of these queues whose type is none of `names`, counted by type (from a
    /// bounded scan: large counts are lower bounds). A runner asks, now and then, to say which
    /// jobs wait for a handler it does not have. The default says nothing.
    fn unhandled(
        &self,
        queues: Vec<String>,
        names: Vec<String>,
        now: Timestamp,
    ) -> BoxFuture<'_, Result<Vec<(String, u64)>, StoreError>> {
        let _ = (queues, names, now);
        Box::pin(async { Ok(Vec::new()) })
    }

    /// Takes a sign of life for the runner `owner` (the name its leases carry), held until the
    /// returned [`Liveness`] drops or the process dies. `None` (the default): the store has no
    /// such signal, and a dead runner's jobs wait for their leases to expire.
    fn hold_liveness(&self, owner: String) -> BoxFuture<'_, Result<Option<Liveness>, StoreError>> {
        let _ = owner;
        Box::pin(async { Ok(None) })
    }

    /// Rescues the jobs of runners whose sign of life is gone (their process died): their
    /// leases end at `now`, so the next claim takes them, records the lost run as an attempt
    /// and gives them a new fencing token. Returns the rescued jobs. A runner whose signal
    /// the store cannot see is left to its lease. The default rescues nothing.
    fn rescue(&self, now: Timestamp) -> BoxFuture<'_, Result<Vec<JobId>, StoreError>> {
        let _ = now;
        Box::pin(async { Ok(Vec::new()) })
    }

    /// Deletes one batch of what retention lets go of (see [`Prune`]), in one short
    /// transaction: final jobs past their state's cutoff that no fan-in still needs, and
    /// expired idempotency keys. The default says this store does not prune.
    fn prune(&self, prune: Prune, now: Timestamp) -> BoxFuture<'_, Result<Pruned, StoreError>> {
        let _ = (prune, now);
        Box::pin(async { Err(StoreError::Invalid("this store does not prune".into())) })
    }

    /// Deletes a finished job's row now (its idempotency key stays until it expires).
    /// [`StoreError::InvalidState`] for a job not finished, a child whose collector still
    /// waits for it, or a collector with unfinished children. The default says this store
    /// does not delete.
    fn delete(&self, id: JobId, now: Timestamp) -> BoxFuture<'_, Result<(), StoreError>> {
        let _ = (id, now);
        Box::pin(async {
            Err(StoreError::Invalid(
                "this store does not delete jobs".into(),
            ))
        })
    }

    /// Declares schedules: a new one is recorded with `declared_at = now`; a known one keeps
    /// its marker and takes the new definition and next slot. Returns each one's marker, in
    /// order. The default says this store keeps no schedules.
    fn declare_schedules(
        &self,
        schedules: Vec<ScheduleDecl>,
        now: Timestamp,
    ) -> BoxFuture<'_, Result<Vec<ScheduleMark>, StoreError>> {
        let _ = (schedules, now);
        Box::pin(async { Err(no_schedules()) })
    }

    /// Fires a schedule's due slots, in one transaction: a compare-and-set of its marker
    /// (from `expected` to `through`), then, by the overlap rule against its last job, the
    /// runs' jobs (or none), and its counters. So each slot is enqueued once, however many
    /// runners declare the schedule. A schedule never declared is
    /// [`StoreError::Invalid`].
    fn fire_schedule(
        &self,
        firing: Firing,
        now: Timestamp,
    ) -> BoxFuture<'_, Result<Fired, StoreError>> {
        let _ = (firing, now);
        Box::pin(async { Err(no_schedules()) })
    }

    /// Every declared schedule, by name.
    fn schedules(&self) -> BoxFuture<'_, Result<Vec<ScheduleRecord>, StoreError>> {
        Box::pin(async { Err(no_schedules()) })
    }

    /// Wake-ups from other processes sharing this store: the value changes when something
    /// may have become claimable there (a job enqueued, retried, released, …), so runners
    /// look at once instead of at their next poll. `None` (the default) for a store only
    /// this process writes to; jobs enqueued through the same [`Jobs`](crate::jobs::Jobs)
    /// handle wake its runners in any case.
    fn wakeups(&self) -> Option<tokio::sync::watch::Receiver<u64>> {
        None
    }
}

fn no_schedules() -> StoreError {
    StoreError::Invalid("this store keeps no schedules".into())
}
