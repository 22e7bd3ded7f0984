//! Restart delays: how long a supervisor waits before restarting a child again.
//!
//! Pure: [`Backoff`] is the policy a child spec carries, [`BackoffState`] the per-child counter
//! that turns consecutive failures into a delay. Randomness (jitter) comes from a PRNG the
//! caller passes, so tests seed it. The consecutive-failure count resets once an incarnation
//! has stayed up for `reset_after`.

use std::time::Duration;

/// A restart delay policy: how long a supervisor waits before restarting a child that keeps
/// failing. The delay is recorded against the restart intensity when the failure happens, and
/// a pending restart is cancelled by `terminate_child`, `delete_child` or shutdown.
///
/// ```
/// use std::time::Duration;
/// use ractor_otp::prelude::*;
///
/// // 100 ms, 200 ms, 400 ms, ... at most 5 s, ±10 %; back to 100 ms after a minute up.
/// let backoff = Backoff::exponential(Duration::from_millis(100), Duration::from_secs(5))
///     .jitter(0.1);
/// let spec = ChildSpec::new("db", |_ctx| async { Ok(ChildStart::Ignore) }).backoff(backoff);
/// # let _ = spec;
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Backoff {
    base: Duration,
    factor: f64,
    max: Duration,
    jitter: f64,
    reset_after: Duration,
}

impl Backoff {
    /// The same delay before every restart.
    pub fn fixed(delay: Duration) -> Self {
        Backoff {
            base: delay,
            factor: 1.0,
            max: delay,
            jitter: 0.0,
            reset_after: Duration::from_secs(60),
        }
    }

    /// `base`, then `base * 2`, `base * 4`, ... capped at `max`. Resets after 60 s of uptime
    /// unless [`reset_after`](Self::reset_after) says otherwise.
    pub fn exponential(base: Duration, max: Duration) -> Self {
        Backoff {
            base,
            factor: 2.0,
            max,
            jitter: 0.0,
            reset_after: Duration::from_secs(60),
        }
    }

    /// The growth factor between consecutive delays (must be ≥ 1; default 2).
    pub fn factor(mut self, factor: f64) -> Self {
        self.factor = factor;
        self
    }

    /// Spreads each delay uniformly within ±`fraction` of itself (0 ≤ fraction ≤ 1), never
    /// above `max`. Spreads the restarts of many children that failed together.
    pub fn jitter(mut self, fraction: f64) -> Self {
        self.jitter = fraction;
        self
    }

    /// An incarnation that stayed up this long counts as stable: the next failure starts the
    /// sequence again from `base`.
    pub fn reset_after(mut self, uptime: Duration) -> Self {
        self.reset_after = uptime;
        self
    }

    /// The delay for the `attempt`-th consecutive restart (0-based), before jitter.
    pub fn delay_for(&self, attempt: u32) -> Duration {
        let scaled = self.base.as_secs_f64() * self.factor.powi(attempt.min(1024) as i32);
        if !scaled.is_finite() || scaled >= self.max.as_secs_f64() {
            self.max
        } else {
            Duration::from_secs_f64(scaled)
        }
    }

    pub(crate) fn validate(&self) -> Result<(), String> {
        if !(self.factor >= 1.0 && self.factor.is_finite()) {
            return Err(format!(
                "factor must be a finite number >= 1, got {}",
                self.factor
            ));
        }
        if !(0.0..=1.0).contains(&self.jitter) {
            return Err(format!("jitter must be within 0..=1, got {}", self.jitter));
        }
        if self.max < self.base {
            return Err(format!(
                "max ({:?}) must not be below base ({:?})",
                self.max, self.base
            ));
        }
        Ok(())
    }
}

/// One child's position in its backoff sequence.
#[derive(Debug, Clone, Default)]
pub(crate) struct BackoffState {
    attempt: u32,
}

impl BackoffState {
    /// The delay before the next restart. `uptime` is how long the incarnation that just ended
    /// ran (`None` when it never started, e.g. a failed start); an uptime of at least
    /// `reset_after` restarts the sequence.
    pub fn next_delay(
        &mut self,
        policy: &Backoff,
        uptime: Option<Duration>,
        rng: &mut fastrand::Rng,
    ) -> Duration {
        if uptime.is_some_and(|u| u >= policy.reset_after) {
            self.attempt = 0;
        }
        let delay = policy.delay_for(self.attempt);
        self.attempt = self.attempt.saturating_add(1);
        if policy.jitter == 0.0 {
            return delay;
        }
        let spread = policy.jitter * (2.0 * rng.f64() - 1.0);
        let jittered = delay.as_secs_f64() * (1.0 + spread);
        Duration::from_secs_f64(jittered.clamp(0.0, policy.max.as_secs_f64()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: fn(u64) -> Duration = Duration::from_millis;

    #[test]
    fn fixed_is_constant() {
        let p = Backoff::fixed(MS(50));
        let mut s = BackoffState::default();
        let mut rng = fastrand::Rng::with_seed(1);
        for _ in 0..5 {
            assert_eq!(s.next_delay(&p, None, &mut rng), MS(50));
        }
    }

    #[test]
    fn exponential_grows_and_caps() {
        let p = Backoff::exponential(MS(10), MS(100)).factor(3.0);
        let mut s = BackoffState::default();
        let mut rng = fastrand::Rng::with_seed(1);
        let got: Vec<_> = (0..5).map(|_| s.next_delay(&p, None, &mut rng)).collect();
        assert_eq!(got, vec![MS(10), MS(30), MS(90), MS(100), MS(100)]);
    }

    #[test]
    fn stable_uptime_resets_the_sequence() {
        let p = Backoff::exponential(MS(10), MS(1000)).reset_after(MS(500));
        let mut s = BackoffState::default();
        let mut rng = fastrand::Rng::with_seed(1);
        s.next_delay(&p, None, &mut rng);
        s.next_delay(&p, Some(MS(100)), &mut rng);
        assert_eq!(s.next_delay(&p, Some(MS(100)), &mut rng), MS(40));
        assert_eq!(s.next_delay(&p, Some(MS(500)), &mut rng), MS(10));
    }

    #[test]
    fn jitter_stays_within_bounds_and_varies() {
        let p = Backoff::fixed(MS(100)).jitter(0.5);
        let mut rng = fastrand::Rng::with_seed(42);
        let mut seen = std::collections::HashSet::new();
        for _ in 0..200 {
            let d = BackoffState::default().next_delay(&p, None, &mut rng);
            assert!(d >= MS(50) && d <= MS(100), "{d:?}");
            seen.insert(d);
        }
        assert!(seen.len() > 10, "jitter should spread delays");
    }

    #[test]
    fn invalid_policies_are_reported() {
        assert!(Backoff::fixed(MS(1)).factor(0.5).validate().is_err());
        assert!(Backoff::fixed(MS(1)).jitter(1.5).validate().is_err());
        assert!(Backoff::exponential(MS(10), MS(1)).validate().is_err());
        assert!(Backoff::exponential(MS(1), MS(10)).validate().is_ok());
    }
}
