//! Shutdown: stop claiming, let running jobs finish within the drain timeout, then cancel the
//! rest and give them back to the store without consuming an attempt. A runner stopped any
//! other way gives back what it can in `post_stop`; what it cannot is recovered by lease
//! expiry.

use std::time::Duration;

use ractor::{ActorRef, RpcReplyPort};

use super::actor::{RunnerMsg, RunnerState};
use super::ShutdownReport;
use crate::jobs::{Lease, StoreError, Turn};

/// A shutdown under way: who waits for its report, and how many runs finished meanwhile.
pub(super) struct Drain {
    reply: RpcReplyPort<ShutdownReport>,
    finished: usize,
}

impl RunnerState {
    /// Stops claiming; the runner stops once its running jobs have finished and their results
    /// are recorded, or when `drain` passes.
    pub(super) fn begin_drain(
        &mut self,
        myself: &ActorRef<RunnerMsg>,
        drain: Duration,
        reply: RpcReplyPort<ShutdownReport>,
    ) {
        tracing::info!(owner = %self.owner, running = self.running.len(), ?drain, "job runner draining");
        self.drain = Some(Drain { reply, finished: 0 });
        if self.idle() {
            self.stop_drained(myself);
        } else {
            self.turn(myself);
            myself.send_after(drain, || RunnerMsg::DrainDeadline);
        }
    }

    /// Nothing running, nothing waiting to be recorded, no turn in flight.
    fn idle(&self) -> bool {
        self.running.is_empty() && self.ended.is_empty() && !self.turning
    }

    /// A turn recorded `recorded` runs while draining: they count as finished, and the last
    /// one stops the runner.
    pub(super) fn drained(&mut self, myself: &ActorRef<RunnerMsg>, recorded: usize) {
        if let Some(drain) = &mut self.drain {
            drain.finished += recorded;
        }
        if self.idle() {
            self.stop_drained(myself);
        } else {
            self.turn(myself);
        }
    }

    /// The drain timeout passed: what still runs is cancelled and given back, what ended is
    /// recorded, and the runner stops.
    pub(super) async fn drain_deadline(&mut self, myself: &ActorRef<RunnerMsg>) {
        let released = self.give_back_all().await;
        let recorded = self.flush_ended().await;
        if let Some(drain) = self.drain.take() {
            let _ = drain.reply.send(ShutdownReport {
                finished: drain.finished + recorded,
                released,
            });
        }
        myself.stop(Some("shutdown".into()));
    }

    fn stop_drained(&mut self, myself: &ActorRef<RunnerMsg>) {
        if let Some(drain) = self.drain.take() {
            let _ = drain.reply.send(ShutdownReport {
                finished: drain.finished,
                released: 0,
            });
        }
        myself.stop(Some("shutdown".into()));
    }

    /// Records the runs that ended and wait for a turn, now, without claiming (the runner is
    /// stopping); returns how many.
    pub(super) async fn flush_ended(&mut self) -> usize {
        if self.ended.is_empty() {
            return 0;
        }
        let ended = std::mem::take(&mut self.ended);
        let count = ended.len();
        let mut records = Vec::with_capacity(count);
        let mut finished = Vec::with_capacity(count);
        for e in ended {
            records.push((e.lease.id, e.verdict));
            finished.push((e.lease, e.finish));
        }
        let turn = Turn {
            finished,
            claim: None,
        };
        let results = match self
            .jobs()
            .store()
            .finish_and_claim(turn, self.jobs().now())
            .await
        {
            Ok(outcome) => outcome.finished,
            Err(e) => vec![Err(e); count],
        };
        self.jobs().job_finished();
        for ((id, verdict), stored) in records.into_iter().zip(results) {
            self.record(id, verdict, stored);
        }
        count
    }

    /// Cancels every running job and gives it back to the store; returns how many.
    pub(super) async fn give_back_all(&mut self) -> usize {
        let ids: Vec<_> = self.running.keys().copied().collect();
        let mut released = 0;
        for id in ids {
            let Some(run) = self.forget(id) else {
                continue;
            };
            if self
                .give_back(Lease {
                    id,
                    token: run.token,
                })
                .await
            {
                released += 1;
            }
        }
        released
    }

    /// Gives one job back to the store, unrun (its attempt not counted); whether it was.
    pub(super) async fn give_back(&self, lease: Lease) -> bool {
        match self
            .jobs()
            .store()
            .give_back(lease, self.jobs().now())
            .await
        {
            Ok(()) => true,
            // It finished (or was reclaimed) as it was being cancelled.
            Err(StoreError::LeaseLost(_)) => false,
            Err(e) => {
                tracing::warn!(id = %lease.id, error = %e, "giving a job back failed; its lease will expire");
                false
            }
        }
    }
}
