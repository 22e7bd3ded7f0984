//! Retention: how long finished jobs are kept ([`Retention`]), and what one pruning batch asks
//! of a store ([`Prune`]). Runners prune in the background, in small batches, so a pruning
//! never holds the queue up; any number of runners may prune at once.
//!
//! What pruning never touches, because its guarantee does not live in job rows:
//! * idempotency keys are kept in a table of their own, until their own expiry
//!   ([`JobOptions::unique_for`](crate::jobs::JobOptions::unique_for)), never with the job;
//! * a fan-in collector counts its children on its own row, and a child is kept while its
//!   collector waits (a collector, while a child is unfinished);
//! * a schedule's last slot is in the schedule's row.

use std::time::Duration;

use crate::jobs::{JobsError, Timestamp};

/// How long finished jobs are kept before the runners prune them: by default completed and
/// cancelled jobs 24 hours after they finished, discarded ones (the dead letters) 7 days,
/// looking every 30 s and deleting at most 1 000 rows per transaction. Expired idempotency
/// keys are reclaimed at the same pass.
///
/// ```
/// use std::time::Duration;
/// use ractor_otp::jobs::Retention;
///
/// let hour = Duration::from_secs(3600);
/// // Keep completed jobs an hour, the rest as by default.
/// let retention = Retention::default().completed(hour);
/// // Keep every finished job (a test, an audit): nothing is pruned.
/// let keep_all = Retention::never();
/// # let _ = (retention, keep_all);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    completed: Option<Duration>,
    cancelled: Option<Duration>,
    discarded: Option<Duration>,
    every: Duration,
    batch: u32,
}

impl Default for Retention {
    fn default() -> Self {
        const HOUR: Duration = Duration::from_secs(3600);
        Retention {
            completed: Some(24 * HOUR),
            cancelled: Some(24 * HOUR),
            discarded: Some(7 * 24 * HOUR),
            every: Duration::from_secs(30),
            batch: 1_000,
        }
    }
}

impl Retention {
    /// Keeps every finished job; set a state's age to prune it after all. Expired idempotency
    /// keys are still reclaimed.
    pub fn never() -> Self {
        Retention {
            completed: None,
            cancelled: None,
            discarded: None,
            ..Retention::default()
        }
    }

    /// Prunes completed jobs this long after they completed.
    pub fn completed(mut self, keep: Duration) -> Self {
        self.completed = Some(keep);
        self
    }

    /// Prunes cancelled jobs this long after they were cancelled.
    pub fn cancelled(mut self, keep: Duration) -> Self {
        self.cancelled = Some(keep);
        self
    }

    /// Prunes discarded jobs (the dead letters) this long after they were discarded.
    pub fn discarded(mut self, keep: Duration) -> Self {
        self.discarded = Some(keep);
        self
    }

    /// How often a runner prunes (default 30 s).
    pub fn every(mut self, every: Duration) -> Self {
        self.every = every;
        self
    }

    /// The most rows one pruning transaction deletes (default 1 000): a pass deletes batch
    /// after batch, each its own short transaction, until a batch comes back short.
    pub fn batch(mut self, rows: u32) -> Self {
        self.batch = rows;
        self
    }

    pub(crate) fn interval(&self) -> Duration {
        self.every
    }

    pub(crate) fn validate(&self) -> Result<(), JobsError> {
        if self.every.is_zero() || self.batch == 0 {
            return Err(JobsError::InvalidRunner(
                "a retention's interval and batch must be greater than zero".into(),
            ));
        }
        Ok(())
    }

    /// The batch to prune at `now`.
    pub(crate) fn request(&self, now: Timestamp) -> Prune {
        let before = |keep: Option<Duration>| {
            keep.map(|k| Timestamp::from_millis(now.as_millis().saturating_sub(ms(k))))
        };
        Prune {
            completed_before: before(self.completed),
            cancelled_before: before(self.cancelled),
            discarded_before: before(self.discarded),
            keys_expired_by: now,
            limit: self.batch,
        }
    }
}

fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// One pruning batch ([`Store::prune`](crate::jobs::Store::prune)): final jobs that finished
/// before their state's cutoff (`None`: that state is kept), and idempotency keys whose expiry
/// is not after `keys_expired_by`, at most `limit` of each. Jobs a fan-in still needs are kept
/// (a child while its collector waits, a collector while a child is unfinished).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Prune {
    /// Completed jobs that finished before this.
    pub completed_before: Option<Timestamp>,
    /// Cancelled jobs that finished before this.
    pub cancelled_before: Option<Timestamp>,
    /// Discarded jobs that finished before this.
    pub discarded_before: Option<Timestamp>,
    /// Idempotency keys that expired by this instant.
    pub keys_expired_by: Timestamp,
    /// At most this many jobs, and this many keys.
    pub limit: u32,
}

/// What a pruning batch deleted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Pruned {
    /// Job rows.
    pub jobs: u64,
    /// Expired idempotency keys.
    pub keys: u64,
}

impl Pruned {
    /// Whether the batch was full (there may be more to prune).
    pub(crate) fn full(&self, limit: u32) -> bool {
        self.jobs >= u64::from(limit) || self.keys >= u64::from(limit)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: Duration = Duration::from_secs(3600);

    #[test]
    fn defaults_keep_a_day_and_dead_letters_a_week() {
        let now = Timestamp::from_millis(30 * 24 * 3_600_000);
        let p = Retention::default().request(now);
        assert_eq!(
            p.completed_before,
            Some(Timestamp::from_millis(29 * 24 * 3_600_000))
        );
        assert_eq!(p.cancelled_before, p.completed_before);
        assert_eq!(
            p.discarded_before,
            Some(Timestamp::from_millis(23 * 24 * 3_600_000))
        );
        assert_eq!((p.keys_expired_by, p.limit), (now, 1_000));
    }

    #[test]
    fn never_keeps_every_state_and_setters_choose_one() {
        let now = Timestamp::from_millis(10 * 3_600_000);
        let p = Retention::never().request(now);
        assert_eq!(
            (p.completed_before, p.cancelled_before, p.discarded_before),
            (None, None, None)
        );
        let p = Retention::never().completed(HOUR).batch(10).request(now);
        assert_eq!(
            p.completed_before,
            Some(Timestamp::from_millis(9 * 3_600_000))
        );
        assert_eq!((p.discarded_before, p.limit), (None, 10));
        assert!(Retention::default().batch(0).validate().is_err());
        assert!(Retention::default()
            .every(Duration::ZERO)
            .validate()
            .is_err());
    }

    #[test]
    fn a_batch_is_full_when_either_count_reaches_the_limit() {
        assert!(Pruned { jobs: 10, keys: 0 }.full(10));
        assert!(Pruned { jobs: 0, keys: 10 }.full(10));
        assert!(!Pruned { jobs: 9, keys: 9 }.full(10));
    }
}
