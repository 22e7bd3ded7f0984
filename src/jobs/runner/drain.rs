//! Shutdown: stop claiming, let running jobs finish within the drain timeout, then cancel the
//! rest and give them back to the store without consuming an attempt. A runner stopped any
//! other way gives back what it can in `post_stop`; what it cannot is recovered by lease
//! expiry.

use std::time::Duration;

use ractor::{ActorRef, RpcReplyPort};

use super::actor::{RunnerMsg, RunnerState};
use super::ShutdownReport;
use crate::jobs::{Lease, StoreError};

/// A shutdown under way: who waits for its report, and how many runs finished meanwhile.
pub(super) struct Drain {
    reply: RpcReplyPort<ShutdownReport>,
    finished: usize,
}

impl RunnerState {
    /// Stops claiming; the runner stops once its running jobs finish or `drain` passes.
    pub(super) fn begin_drain(
        &mut self,
        myself: &ActorRef<RunnerMsg>,
        drain: Duration,
        reply: RpcReplyPort<ShutdownReport>,
    ) {
        tracing::info!(owner = %self.owner, running = self.running.len(), ?drain, "job runner draining");
        self.drain = Some(Drain { reply, finished: 0 });
        if self.running.is_empty() {
            self.stop_drained(myself);
        } else {
            myself.send_after(drain, || RunnerMsg::DrainDeadline);
        }
    }

    /// A run finished: while draining, it is counted (and the last one stops the runner).
    /// Returns whether the runner is draining.
    pub(super) fn drain_finished(&mut self, myself: &ActorRef<RunnerMsg>) -> bool {
        let Some(drain) = &mut self.drain else {
            return false;
        };
        drain.finished += 1;
        if self.running.is_empty() {
            self.stop_drained(myself);
        }
        true
    }

    /// The drain timeout passed: what still runs is cancelled and given back.
    pub(super) async fn drain_deadline(&mut self, myself: &ActorRef<RunnerMsg>) {
        let released = self.give_back_all().await;
        if let Some(drain) = self.drain.take() {
            let _ = drain.reply.send(ShutdownReport {
                finished: drain.finished,
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
