//! Where the job queue reads the time. Stores never read a clock (callers pass `now`); the
//! [`Jobs`](crate::jobs::Jobs) handle and its runners read one [`Clock`], so tests can run a
//! whole queue on tokio's paused clock.

use std::sync::Arc;
use std::time::SystemTime;

use crate::jobs::Timestamp;

/// A source of UTC time.
pub trait Clock: Send + Sync + 'static {
    /// The current instant.
    fn now(&self) -> Timestamp;
}

/// The system's wall clock (the default).
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        Timestamp::from(SystemTime::now())
    }
}

/// Wall time that advances with tokio's clock: starts at the wall clock's reading when created,
/// then moves exactly as `tokio::time::Instant` does. Under `tokio::time::pause` (or
/// `#[tokio::test(start_paused = true)]`) a queue's schedules, backoffs, leases and timeouts all
/// run on virtual time.
///
/// ```
/// use std::time::Duration;
/// use ractor_otp::jobs::{Clock, TokioClock};
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// let clock = TokioClock::new();
/// let before = clock.now();
/// tokio::time::sleep(Duration::from_secs(3600)).await; // instant under a paused clock
/// assert_eq!(clock.now().since(before), Duration::from_secs(3600));
/// # }
/// ```
#[derive(Debug, Clone, Copy)]
pub struct TokioClock {
    origin: Timestamp,
    start: tokio::time::Instant,
}

impl TokioClock {
    /// Starts now. Call it inside a tokio runtime.
    pub fn new() -> Self {
        Self::starting_at(Timestamp::from(SystemTime::now()))
    }

    /// Starts at `origin` (a date a test needs: a daylight-saving night, a month's end), then
    /// moves as tokio's clock does. Call it inside a tokio runtime.
    ///
    /// ```
    /// use std::time::Duration;
    /// use ractor_otp::jobs::{Clock, Timestamp, TokioClock};
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let clock = TokioClock::starting_at(Timestamp::from_millis(1_800_000_000_000));
    /// tokio::time::sleep(Duration::from_secs(60)).await;
    /// assert_eq!(clock.now(), Timestamp::from_millis(1_800_000_060_000));
    /// # }
    /// ```
    pub fn starting_at(origin: Timestamp) -> Self {
        TokioClock {
            origin,
            start: tokio::time::Instant::now(),
        }
    }
}

impl Default for TokioClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for TokioClock {
    fn now(&self) -> Timestamp {
        self.origin.after(self.start.elapsed())
    }
}

impl<C: Clock + ?Sized> Clock for Arc<C> {
    fn now(&self) -> Timestamp {
        (**self).now()
    }
}
