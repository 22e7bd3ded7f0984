//! When a pool worker reads the clock to time its tasks (the per-worker mean latency in
//! [`WorkerStats`](super::WorkerStats) and the task-duration histogram).
//!
//! Reading the clock costs about as much as the rest of a short task's bookkeeping, so a worker
//! reads it as little as the statistic allows:
//! * while tasks run back to back (the next one was already reserved for this worker when the
//!   last one ended), a task starts when the last one ended: one read per task, and every task
//!   is timed;
//! * a task that starts after the worker waited needs a read at each end: the first
//!   [`ALWAYS_TIMED`] such tasks of an incarnation are timed, then about one in
//!   [`ONE_IN`], picked at random (so no periodic pattern of the work lines up with the
//!   picks). The mean is taken over the timed tasks, an unbiased estimate of the mean over all;
//! * with the `metrics` feature every task is timed, since the histogram counts each one.
//!
//! A task with a deadline reads the clock at its start anyway (to check the deadline), and is
//! timed.

use std::time::Duration;

use tokio::time::Instant;

/// Tasks started after a wait that an incarnation always times, before it samples.
pub(crate) const ALWAYS_TIMED: u32 = 16;
/// After those, about one in this many tasks started after a wait is timed.
pub(crate) const ONE_IN: u32 = 16;

/// One worker incarnation's clock reads.
pub(crate) struct TaskTimer {
    /// When the last task ended, while the next one was already waiting for this worker.
    ready_at: Option<Instant>,
    /// Tasks started after a wait so far (up to [`ALWAYS_TIMED`]).
    waited_starts: u32,
    /// xorshift32 state for the sampling.
    rng: u32,
}

impl TaskTimer {
    /// A timer whose sampling starts from `seed` (any value).
    pub(crate) fn new(seed: u32) -> Self {
        TaskTimer {
            ready_at: None,
            waited_starts: 0,
            rng: seed | 1,
        }
    }

    /// The start of the task taken up now if it is timed (`must` times it whatever the
    /// sampling says: the task has a deadline to check).
    pub(crate) fn start(&mut self, must: bool) -> Option<Instant> {
        if let Some(at) = self.ready_at.take() {
            return Some(at);
        }
        (must || cfg!(feature = "metrics") || self.samples()).then(Instant::now)
    }

    /// A timed task that started at `started` has ended now: how long it took. Its end is the
    /// next task's start, should that one run back to back (see [`waits`](Self::waits)).
    pub(crate) fn end(&mut self, started: Instant) -> Duration {
        let ended = Instant::now();
        self.ready_at = Some(ended);
        ended.saturating_duration_since(started)
    }

    /// Nothing more is reserved for this worker: its next task starts after a wait.
    pub(crate) fn waits(&mut self) {
        self.ready_at = None;
    }

    /// Whether to time a task started after a wait (see the module docs).
    fn samples(&mut self) -> bool {
        if self.waited_starts < ALWAYS_TIMED {
            self.waited_starts += 1;
            return true;
        }
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 17;
        self.rng ^= self.rng << 5;
        self.rng.is_multiple_of(ONE_IN)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_tasks_after_a_wait_are_all_timed_then_about_one_in_sixteen() {
        for seed in [0, 1, 7, 0xDEAD_BEEF] {
            let mut timer = TaskTimer::new(seed);
            assert!((0..ALWAYS_TIMED).all(|_| timer.samples()), "seed {seed}");
            let timed = (0..160_000).filter(|_| timer.samples()).count();
            assert!(
                (9_000..11_000).contains(&timed),
                "seed {seed}: {timed} of 160 000 timed"
            );
        }
    }

    #[test]
    fn no_period_of_the_work_lines_up_with_the_picks() {
        // Every 16th task is the long one: a fixed "every 16th" pick would time only those,
        // or none of them.
        let mut timer = TaskTimer::new(3);
        (0..ALWAYS_TIMED).for_each(|_| {
            timer.samples();
        });
        let picks: Vec<bool> = (0..160_000).map(|_| timer.samples()).collect();
        let long = picks.iter().step_by(16).filter(|&&p| p).count();
        let all = picks.iter().filter(|&&p| p).count();
        let share = long as f64 / all as f64;
        assert!(
            (0.03..0.10).contains(&share),
            "long tasks are {share} of those timed"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn tasks_back_to_back_take_one_read_and_all_are_timed() {
        let mut timer = TaskTimer::new(1);
        for _ in 0..ALWAYS_TIMED {
            timer.samples();
        }
        // After a wait: timed only when picked (or when it must be).
        let started = timer.start(true).expect("a task with a deadline is timed");
        tokio::time::sleep(Duration::from_millis(5)).await;
        assert_eq!(timer.end(started), Duration::from_millis(5));
        // Back to back: the next one starts when that one ended, and is timed.
        let next = timer.start(false).expect("back to back is timed");
        assert_eq!(next, started + Duration::from_millis(5));
        timer.end(next);
        timer.waits();
        let after_wait: usize = (0..1600).filter(|_| timer.start(false).is_some()).count();
        if cfg!(feature = "metrics") {
            assert_eq!(after_wait, 1600);
        } else {
            assert!(
                (50..160).contains(&after_wait),
                "{after_wait} of 1600 timed"
            );
        }
    }
}
