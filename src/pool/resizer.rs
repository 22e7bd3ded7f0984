//! Autoscaling a pool between bounds: Akka's `DefaultResizer`, as a pure function.
//!
//! Every `messages_per_resize` tasks the pool asks [`Resizer::delta`] how many workers to add
//! (positive) or remove (negative), given how many workers are *busy*. A worker is busy when its
//! tasks in flight reach `pressure_threshold`. Ramp up by `ceil(rampup_rate · size)` only when
//! every worker is busy; back off by `ceil(backoff_rate · size)` when `busy / size` is below
//! `backoff_threshold`; always stay within `[lower, upper]`.

use crate::error::PoolConfigError;

/// Akka `DefaultResizer` settings (same defaults).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Resizer {
    /// Never fewer workers (default 1).
    pub lower: usize,
    /// Never more workers (default 10).
    pub upper: usize,
    /// Tasks in flight that make a worker busy (default 1).
    pub pressure_threshold: usize,
    /// Growth when all are busy, as a fraction of the size (default 0.2).
    pub rampup_rate: f64,
    /// Shrink when `busy / size` is below this (default 0.3; 0 disables shrinking).
    pub backoff_threshold: f64,
    /// Shrink step as a fraction of the size (default 0.1).
    pub backoff_rate: f64,
    /// Consider resizing once per this many tasks (default 10).
    pub messages_per_resize: usize,
}

impl Default for Resizer {
    fn default() -> Self {
        Resizer {
            lower: 1,
            upper: 10,
            pressure_threshold: 1,
            rampup_rate: 0.2,
            backoff_threshold: 0.3,
            backoff_rate: 0.1,
            messages_per_resize: 10,
        }
    }
}

impl Resizer {
    /// A resizer between `lower` and `upper` workers, other settings at Akka's defaults.
    pub fn new(lower: usize, upper: usize) -> Self {
        Resizer {
            lower,
            upper,
            ..Resizer::default()
        }
    }

    /// Checks the settings.
    pub fn validate(&self) -> Result<(), PoolConfigError> {
        let bad = |reason: String| Err(PoolConfigError::InvalidResizer(reason));
        if self.upper < self.lower || self.upper == 0 {
            return bad(format!(
                "bounds must satisfy 1 <= upper and lower <= upper, got {}..={}",
                self.lower, self.upper
            ));
        }
        if !(self.rampup_rate >= 0.0 && self.backoff_rate >= 0.0 && self.backoff_threshold >= 0.0) {
            return bad("rates and thresholds must not be negative".into());
        }
        if self.messages_per_resize == 0 {
            return bad("messages_per_resize must be at least 1".into());
        }
        Ok(())
    }

    /// Whether the `n`-th task (0-based, counted since the pool started) triggers a check.
    pub fn is_time_for_resize(&self, n: u64) -> bool {
        n.is_multiple_of(self.messages_per_resize as u64)
    }

    /// Workers to add (positive) or remove (negative) given the in-flight count of each worker.
    ///
    /// ```
    /// use ractor_otp::pool::Resizer;
    /// let r = Resizer::new(2, 3);
    /// assert_eq!(r.delta(&[]), 2); // an empty pool grows to the lower bound
    /// assert_eq!(r.delta(&[0, 0]), 0); // idle, but already at the lower bound
    /// ```
    pub fn delta(&self, in_flight: &[usize]) -> i64 {
        let size = in_flight.len();
        let busy = in_flight
            .iter()
            .filter(|&&n| n >= self.pressure_threshold.max(1))
            .count();
        let mut delta = self.rampup(busy, size) + self.backoff(busy, size);
        let proposed = size as i64 + delta;
        if proposed < self.lower as i64 {
            delta += self.lower as i64 - proposed;
        } else if proposed > self.upper as i64 {
            delta -= proposed - self.upper as i64;
        }
        delta
    }

    /// Growth: `ceil(rampup_rate · size)` when all `size` workers are busy, else 0.
    pub fn rampup(&self, busy: usize, size: usize) -> i64 {
        if busy < size || size == 0 {
            0
        } else {
            (self.rampup_rate * size as f64).ceil() as i64
        }
    }

    /// Shrink: `-ceil(backoff_rate · size)` when `busy / size < backoff_threshold`, else 0.
    pub fn backoff(&self, busy: usize, size: usize) -> i64 {
        if self.backoff_threshold > 0.0
            && self.backoff_rate > 0.0
            && size > 0
            && (busy as f64 / size as f64) < self.backoff_threshold
        {
            -((self.backoff_rate * size as f64).ceil() as i64)
        } else {
            0
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Golden values from Akka's ResizerSpec.
    #[test]
    fn capacity_golden_values() {
        let r = Resizer::new(2, 3);
        assert_eq!(r.delta(&[]), 2);
        assert_eq!(r.delta(&[0, 0]), 0);
    }

    #[test]
    fn rampup_golden_values() {
        let r = Resizer::default();
        assert_eq!(r.rampup(9, 10), 0);
        assert_eq!(r.rampup(5, 5), 1);
        assert_eq!(r.rampup(6, 6), 2);
    }

    #[test]
    fn backoff_golden_values() {
        let r = Resizer {
            backoff_threshold: 0.3,
            backoff_rate: 0.1,
            ..Resizer::default()
        };
        assert_eq!(r.backoff(10, 10), 0);
        assert_eq!(r.backoff(4, 10), 0);
        assert_eq!(r.backoff(3, 10), 0);
        assert_eq!(r.backoff(2, 10), -1);
        assert_eq!(r.backoff(0, 10), -1);
        assert_eq!(r.backoff(1, 9), -1);
        assert_eq!(r.backoff(0, 9), -1);
    }

    #[test]
    fn grows_under_pressure_up_to_the_upper_bound() {
        let r = Resizer::new(1, 4);
        assert_eq!(r.delta(&[3]), 1);
        assert_eq!(r.delta(&[1, 1, 1, 1]), 0, "at the upper bound");
        let big = Resizer {
            rampup_rate: 1.0,
            ..Resizer::new(1, 5)
        };
        assert_eq!(big.delta(&[2, 2, 2]), 2, "clamped to 5");
    }

    #[test]
    fn bad_settings_are_typed_errors() {
        assert!(Resizer::new(3, 2).validate().is_err());
        assert!(Resizer::new(0, 0).validate().is_err());
        assert!(Resizer {
            messages_per_resize: 0,
            ..Resizer::default()
        }
        .validate()
        .is_err());
        assert!(Resizer::default().validate().is_ok());
        assert!(Resizer::default().is_time_for_resize(0));
        assert!(!Resizer::default().is_time_for_resize(5));
    }
}
