//! When the runner looks at the store: at once when told (a job enqueued through the same
//! handle, a wake-up from another process), else at the deadline it set last ([`next_look`]).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use ractor::ActorRef;
use tokio::sync::watch;
use tokio::time::Instant;

use super::actor::RunnerMsg;
use crate::jobs::Timestamp;

/// Sends `Tick` when a job is enqueued through the same handle, when the store reports one
/// from another process, or at the deadline the runner set last; at most one `Tick` waits in
/// the mailbox.
pub(super) async fn pace(
    runner: ActorRef<RunnerMsg>,
    mut wake: watch::Receiver<u64>,
    mut remote: Option<watch::Receiver<u64>>,
    mut deadline: watch::Receiver<Instant>,
    pending: Arc<AtomicBool>,
) {
    let mut armed = true;
    loop {
        let at = *deadline.borrow_and_update();
        tokio::select! {
            changed = wake.changed() => {
                if changed.is_err() {
                    return;
                }
            }
            changed = async { remote.as_mut()?.changed().await.ok() }, if remote.is_some() => {
                if changed.is_none() {
                    // The store stopped reporting: polling goes on.
                    remote = None;
                    continue;
                }
            }
            changed = deadline.changed() => {
                if changed.is_err() {
                    return;
                }
                armed = true;
                continue;
            }
            _ = tokio::time::sleep_until(at), if armed => armed = false,
        }
        if !pending.swap(true, Ordering::AcqRel) && runner.cast(RunnerMsg::Tick).is_err() {
            return;
        }
    }
}

/// The next look after a claim, at `now` (`clock` on the runner's clock): after the poll
/// interval at the latest; sooner when the next due job (a schedule, a backoff, an expired
/// lease) or a breaker's reopening comes first. A claim that filled every free slot waits for
/// a finish instead (or the poll); a due job a claim passed over is held back by its resource
/// and waits for the poll.
pub(super) fn next_look(
    now: Instant,
    clock: Timestamp,
    poll_interval: Duration,
    full: bool,
    next_due: Option<Timestamp>,
    reopen: Option<Timestamp>,
) -> Instant {
    let poll = now + poll_interval;
    if full {
        return poll;
    }
    match next_due.into_iter().chain(reopen).min() {
        Some(t) if t > clock => poll.min(now + t.since(clock)),
        _ => poll,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const POLL: Duration = Duration::from_secs(1);

    #[test]
    fn the_next_look_is_the_first_of_poll_due_job_and_reopening() {
        let now = Instant::now();
        let clock = Timestamp::from_millis(10_000);
        let at = |ms: i64| Some(Timestamp::from_millis(10_000 + ms));
        assert_eq!(next_look(now, clock, POLL, false, None, None), now + POLL);
        assert_eq!(
            next_look(now, clock, POLL, false, at(200), None),
            now + Duration::from_millis(200)
        );
        assert_eq!(
            next_look(now, clock, POLL, false, at(700), at(300)),
            now + Duration::from_millis(300)
        );
        // Past the poll interval: the poll comes first.
        assert_eq!(
            next_look(now, clock, POLL, false, at(5_000), None),
            now + POLL
        );
    }

    #[test]
    fn a_due_job_left_behind_or_a_full_claim_waits_for_the_poll() {
        let now = Instant::now();
        let clock = Timestamp::from_millis(10_000);
        // Due already (not claimed: held back by its resource).
        let due = Some(Timestamp::from_millis(9_000));
        assert_eq!(next_look(now, clock, POLL, false, due, None), now + POLL);
        // Every slot filled: the next finish claims.
        let soon = Some(Timestamp::from_millis(10_100));
        assert_eq!(next_look(now, clock, POLL, true, soon, None), now + POLL);
    }
}
