//! Errors of the durable job queue: what a store reports ([`StoreError`]) and what the
//! [`Jobs`](crate::jobs::Jobs) API reports ([`JobsError`]).

use thiserror::Error;

use crate::jobs::{JobId, JobState};

/// A store operation that did not happen.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The database failed (I/O, corruption, a constraint); the operation was rolled back.
    #[error("job store failed: {0}")]
    Database(String),
    /// The store refused its settings at open (e.g. WAL or the synchronous level could not be
    /// set): it will not run with weaker durability than asked.
    #[error("job store settings rejected: {0}")]
    Settings(String),
    /// The store could not reach its database (PostgreSQL: refused, unreachable, bad
    /// credentials); nothing was done. Check the connection settings and that the server is up.
    #[error("cannot connect to the job store's database: {0}")]
    Connect(String),
    /// The store has shut down (its writer thread is gone); open it again.
    #[error("the job store is closed")]
    Closed,
    /// No job with this id.
    #[error("{0} does not exist")]
    NotFound(JobId),
    /// The run's lease is no longer held: the job was reclaimed after the lease expired, or
    /// cancelled. Its result was not recorded; the current holder's will be.
    #[error("the lease on {0} was lost (expired and reclaimed, or cancelled); this run's result was not recorded")]
    LeaseLost(JobId),
    /// The job is not in a state this operation applies to.
    #[error("{id} is {state}; cannot {action} it")]
    InvalidState {
        /// The job.
        id: JobId,
        /// Its current state.
        state: JobState,
        /// What was asked.
        action: &'static str,
    },
    /// A request the store cannot accept as given; nothing was written.
    #[error("job store rejected the request: {0}")]
    Invalid(String),
    /// The operation kept colliding with concurrent ones (a deadlock or serialization
    /// failure, each rolled back) and was given up after several tries; nothing was written.
    /// Running it again is safe.
    #[error("job store operation conflicted with concurrent ones and was rolled back: {0}; run it again")]
    Conflict(String),
    /// A row the store cannot read (an unknown state name, a bad number).
    #[error("job store holds an unreadable row: {0}")]
    Corrupt(String),
}

#[cfg(feature = "sqlite")]
impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        StoreError::Database(e.to_string())
    }
}

/// An error of the [`Jobs`](crate::jobs::Jobs) API.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum JobsError {
    /// The store failed or refused.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Options that cannot work; nothing was enqueued.
    #[error("invalid job options: {0}")]
    InvalidOptions(String),
    /// The job could not be serialized.
    #[error("job `{name}` could not be serialized: {reason}")]
    Encode {
        /// The job type.
        name: &'static str,
        /// serde's message.
        reason: String,
    },
    /// A stored output could not be read as the expected type.
    #[error("the output of {id} could not be read: {reason}")]
    Decode {
        /// The job.
        id: JobId,
        /// serde's message.
        reason: String,
    },
    /// The job ended without an output.
    #[error("{id} ended {state}{}", error.as_ref().map(|e| format!(": {e}")).unwrap_or_default())]
    JobFailed {
        /// The job.
        id: JobId,
        /// Discarded or cancelled.
        state: JobState,
        /// Its last error, if it failed.
        error: Option<String>,
    },
    /// `wait_for` gave up; the job goes on.
    #[error("{id} has not finished in time (it is {state}){}", no_handler.as_ref().map(|name| format!("; no runner started from this `Jobs` handle handles job type `{name}`: give one a handler for it with `.handler(..)` or `.pool(..)`")).unwrap_or_default())]
    WaitTimedOut {
        /// The job.
        id: JobId,
        /// Its state when the wait ended.
        state: JobState,
        /// Its type, when it was waiting to run and no runner of this handle handles it.
        no_handler: Option<String>,
    },
    /// Two handlers for one job type, or a runner with none.
    #[error("invalid runner configuration: {0}")]
    InvalidRunner(String),
    /// A schedule that cannot work (an expression that does not parse, an unknown time
    /// zone, an interval under a second, bad job options); nothing was declared.
    #[error("invalid schedule `{name}`: {reason}")]
    InvalidSchedule {
        /// The schedule's name.
        name: String,
        /// What is wrong with it.
        reason: String,
    },
}
