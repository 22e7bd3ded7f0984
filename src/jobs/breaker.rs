//! The circuit breaker a runner keeps per job type (pure): after `threshold` consecutive
//! failures it opens and the type's jobs stay in the store, unclaimed and unburned; after
//! `cooldown` one probe job may run; its success closes the breaker, its failure opens it
//! again.

use std::time::Duration;

use crate::jobs::Timestamp;

/// What the breaker lets a runner claim for its job type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Admission {
    /// Claim as usual.
    Open,
    /// Claim one job, the probe.
    Probe,
    /// Claim none.
    Closed,
}

/// One job type's breaker.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct CircuitBreaker {
    threshold: u32,
    cooldown: Duration,
    state: BreakerState,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum BreakerState {
    /// Jobs flow; counting consecutive failures.
    Flowing { failures: u32 },
    /// Tripped: nothing until `until`, then one probe.
    Tripped { until: Timestamp },
    /// The probe is running.
    Probing,
}

impl CircuitBreaker {
    /// A breaker that trips after `threshold` (≥ 1) consecutive failures and probes again
    /// after `cooldown`.
    pub fn new(threshold: u32, cooldown: Duration) -> Self {
        CircuitBreaker {
            threshold: threshold.max(1),
            cooldown,
            state: BreakerState::Flowing { failures: 0 },
        }
    }

    /// What may be claimed at `now`.
    pub fn admission(&self, now: Timestamp) -> Admission {
        match self.state {
            BreakerState::Flowing { .. } => Admission::Open,
            BreakerState::Tripped { until } if now >= until => Admission::Probe,
            BreakerState::Tripped { .. } | BreakerState::Probing => Admission::Closed,
        }
    }

    /// A probe job was claimed.
    pub fn probe_started(&mut self) {
        if matches!(self.state, BreakerState::Tripped { .. }) {
            self.state = BreakerState::Probing;
        }
    }

    /// A probe was claimed for but none came (no job due): the breaker waits for the next.
    pub fn probe_not_found(&mut self, now: Timestamp) {
        if self.state == BreakerState::Probing {
            self.state = BreakerState::Tripped { until: now };
        }
    }

    /// A job of this type succeeded: the breaker closes and the count restarts.
    pub fn on_success(&mut self) {
        self.state = BreakerState::Flowing { failures: 0 };
    }

    /// A job of this type failed at `now`.
    pub fn on_failure(&mut self, now: Timestamp) {
        self.state = match self.state {
            BreakerState::Flowing { failures } if failures + 1 < self.threshold => {
                BreakerState::Flowing {
                    failures: failures + 1,
                }
            }
            _ => BreakerState::Tripped {
                until: now.after(self.cooldown),
            },
        };
    }

    /// When a tripped breaker admits its probe, if it is tripped.
    pub fn reopens_at(&self) -> Option<Timestamp> {
        match self.state {
            BreakerState::Tripped { until } => Some(until),
            _ => None,
        }
    }

    /// `true` while jobs of this type are held back.
    pub fn is_tripped(&self) -> bool {
        !matches!(self.state, BreakerState::Flowing { .. })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: Timestamp = Timestamp::from_millis(1_000);

    #[test]
    fn trips_after_threshold_consecutive_failures_only() {
        let mut b = CircuitBreaker::new(3, Duration::from_secs(5));
        b.on_failure(T0);
        b.on_failure(T0);
        b.on_success();
        b.on_failure(T0);
        b.on_failure(T0);
        assert_eq!(b.admission(T0), Admission::Open);
        b.on_failure(T0);
        assert_eq!(b.admission(T0), Admission::Closed);
        assert_eq!(b.reopens_at(), Some(T0.after(Duration::from_secs(5))));
    }

    #[test]
    fn probe_after_cooldown_and_failed_probe_trips_again() {
        let mut b = CircuitBreaker::new(1, Duration::from_secs(5));
        b.on_failure(T0);
        let almost = T0.after(Duration::from_millis(4_999));
        assert_eq!(b.admission(almost), Admission::Closed);
        let due = T0.after(Duration::from_secs(5));
        assert_eq!(b.admission(due), Admission::Probe);
        b.probe_started();
        assert_eq!(b.admission(due), Admission::Closed);
        b.on_failure(due);
        assert_eq!(b.admission(due), Admission::Closed);
        assert_eq!(b.reopens_at(), Some(due.after(Duration::from_secs(5))));
    }

    #[test]
    fn a_probe_that_found_no_job_may_be_tried_again() {
        let mut b = CircuitBreaker::new(1, Duration::from_secs(5));
        b.on_failure(T0);
        let due = T0.after(Duration::from_secs(5));
        b.probe_started();
        b.probe_not_found(due);
        assert_eq!(b.admission(due), Admission::Probe);
    }
}
