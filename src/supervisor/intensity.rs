//! The restart intensity limit: at most `intensity` restarts within a sliding `period`.
//!
//! Pure bookkeeping on instants the caller passes in (the supervisor passes tokio's clock, so
//! tests drive it with a paused clock). Each restart *attempt* is recorded once: a multi-child
//! restart records once, and each retry of a failed start records again. Records older than
//! `period` are forgotten; the boundary is inclusive (a record exactly `period` old still counts),
//! as in OTP's `add_restart`.

use std::collections::VecDeque;
use std::time::Duration;

use tokio::time::Instant;

/// What recording a restart decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum IntensityDecision {
    /// Within the limit: restart. `remaining` more restarts fit in the current window.
    Restart {
        /// Restarts left before the supervisor gives up.
        remaining: u32,
    },
    /// Over the limit: the supervisor must give up. `restarts` is how many fell in the window.
    GiveUp {
        /// Restarts within the window, this one included.
        restarts: u32,
    },
}

/// A sliding window of restart times.
#[derive(Debug, Clone)]
pub(crate) struct RestartIntensity {
    intensity: u32,
    period: Duration,
    history: VecDeque<Instant>,
}

impl RestartIntensity {
    /// A window allowing `intensity` restarts per `period`.
    pub fn new(intensity: u32, period: Duration) -> Self {
        RestartIntensity {
            intensity,
            period,
            history: VecDeque::new(),
        }
    }

    /// Records a restart at `now` and says whether the limit still holds.
    pub fn record(&mut self, now: Instant) -> IntensityDecision {
        self.forget_before(now);
        self.history.push_back(now);
        let n = self.history.len() as u64;
        if n > u64::from(self.intensity) {
            IntensityDecision::GiveUp {
                restarts: n.min(u64::from(u32::MAX)) as u32,
            }
        } else {
            IntensityDecision::Restart {
                remaining: self.intensity - n as u32,
            }
        }
    }

    /// Restarts recorded within the window that ends at `now`.
    pub fn in_window(&self, now: Instant) -> u32 {
        let recent = self
            .history
            .iter()
            .filter(|t| now.saturating_duration_since(**t) <= self.period)
            .count();
        u32::try_from(recent).unwrap_or(u32::MAX)
    }

    fn forget_before(&mut self, now: Instant) {
        while let Some(&oldest) = self.history.front() {
            if now.saturating_duration_since(oldest) > self.period {
                self.history.pop_front();
            } else {
                break;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const P: Duration = Duration::from_secs(5);

    #[test]
    fn in_window_counts_what_the_window_holds_without_forgetting() {
        let t0 = Instant::now();
        let mut w = RestartIntensity::new(3, P);
        w.record(t0);
        w.record(t0 + Duration::from_secs(2));
        assert_eq!(w.in_window(t0 + Duration::from_secs(2)), 2);
        // Exactly `period` old still counts; one past it does not.
        assert_eq!(w.in_window(t0 + P), 2);
        assert_eq!(w.in_window(t0 + P + Duration::from_millis(1)), 1);
        assert_eq!(w.in_window(t0 + 3 * P), 0);
    }

    #[test]
    fn n_restarts_allowed_the_next_gives_up() {
        let t = Instant::now();
        let mut w = RestartIntensity::new(3, P);
        for left in [2, 1, 0] {
            assert_eq!(w.record(t), IntensityDecision::Restart { remaining: left });
        }
        assert_eq!(w.record(t), IntensityDecision::GiveUp { restarts: 4 });
    }

    #[test]
    fn zero_intensity_gives_up_at_once() {
        let mut w = RestartIntensity::new(0, P);
        assert_eq!(
            w.record(Instant::now()),
            IntensityDecision::GiveUp { restarts: 1 }
        );
    }

    #[test]
    fn restarts_that_left_the_window_are_forgotten() {
        let t = Instant::now();
        let mut w = RestartIntensity::new(1, P);
        assert_eq!(w.record(t), IntensityDecision::Restart { remaining: 0 });
        // Just past the window: forgotten.
        let later = t + P + Duration::from_millis(1);
        assert_eq!(w.record(later), IntensityDecision::Restart { remaining: 0 });
        let much_later = later + P + Duration::from_millis(1);
        assert_eq!(
            w.record(much_later),
            IntensityDecision::Restart { remaining: 0 }
        );
    }

    #[test]
    fn the_window_boundary_is_inclusive() {
        let t = Instant::now();
        let mut w = RestartIntensity::new(1, P);
        w.record(t);
        assert_eq!(w.record(t + P), IntensityDecision::GiveUp { restarts: 2 });
    }
}
