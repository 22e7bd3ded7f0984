//! The runner's turns at the store: which job types to claim ([`admit`], by each type's
//! circuit breaker), the turn itself (the runs that ended and the claim, one transaction, in
//! its own task, one at a time, so the runner keeps taking messages), and what the runner
//! does when it comes back.

use std::collections::HashMap;
use std::time::Duration;

use ractor::ActorRef;
use tokio::time::Instant;

use super::actor::{RunnerMsg, RunnerState};
use super::execute::Verdict;
use super::pace::next_look;
use crate::jobs::breaker::{Admission, CircuitBreaker};
use crate::jobs::{
    ClaimRequest, ClaimedJob, JobId, Lease, StoreError, Timestamp, Turn, TurnOutcome,
};

/// The job types a claim asks for.
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct Admitted {
    /// Claimed together, up to the free slots.
    pub(super) open: Vec<String>,
    /// Tripped types whose cooldown is over: one job each, as a probe.
    pub(super) probes: Vec<String>,
}

/// Splits `names` by their breakers at `now`: a type with no breaker, or a flowing one, is
/// open; a tripped one past its cooldown gets a probe; one still cooling down or probing is
/// held back (its jobs stay in the store, unclaimed).
pub(super) fn admit(
    names: &[String],
    breakers: &HashMap<String, CircuitBreaker>,
    now: Timestamp,
) -> Admitted {
    let mut admitted = Admitted::default();
    for name in names {
        match breakers.get(name).map(|b| b.admission(now)) {
            None | Some(Admission::Open) => admitted.open.push(name.clone()),
            Some(Admission::Probe) => admitted.probes.push(name.clone()),
            Some(Admission::Closed) => {}
        }
    }
    admitted
}

/// How long a wanted claim waits for a running job's end to carry it, when jobs are running:
/// a busy runner then pays one store turn per job for finishing it and claiming the next,
/// instead of a claim of its own in between. An idle runner claims at once.
const CLAIM_LINGER: Duration = Duration::from_millis(2);

/// What a store turn came back with.
pub(crate) struct TurnDone {
    /// The runs it recorded: their job, verdict and whether the store took the result.
    finished: Vec<(JobId, Verdict, Result<(), StoreError>)>,
    claimed: Vec<ClaimedJob>,
    probed: Vec<(String, bool)>,
    /// It claimed and filled every free slot: more may be due.
    full: bool,
    /// It claimed fewer than its free slots: when the next job is due.
    next_due: Option<Timestamp>,
}

impl RunnerState {
    /// Takes a turn at the store unless one is in flight (its end takes the next): records
    /// the runs that ended and, with free slots and not draining, claims jobs of the types the
    /// breakers admit, all in one transaction. The turn runs in its own task, so the runner
    /// keeps taking messages meanwhile.
    pub(super) fn turn(&mut self, myself: &ActorRef<RunnerMsg>) {
        if self.turning {
            return;
        }
        let free = if self.drain.is_some() { 0 } else { self.free() };
        let wants_claim = free > 0 && (self.claim_again || !self.ended.is_empty());
        self.claim_again = false;
        if self.ended.is_empty() && !wants_claim {
            if free == 0 && self.drain.is_none() {
                // The next run's end claims.
                self.deadline
                    .send_replace(Instant::now() + self.config.poll_interval);
            }
            return;
        }
        let (open, probes) = if wants_claim {
            let Admitted { open, probes } = admit(&self.names, &self.breakers, self.jobs().now());
            (open, probes)
        } else {
            (Vec::new(), Vec::new())
        };
        let mut records = Vec::with_capacity(self.ended.len());
        let mut finished = Vec::with_capacity(self.ended.len());
        for ended in self.ended.drain(..) {
            records.push((ended.lease.id, ended.verdict));
            finished.push((ended.lease, ended.finish));
        }
        let request = |names: Vec<String>, limit: u32| ClaimRequest {
            owner: self.owner.clone(),
            queues: self.config.queues.clone(),
            names,
            limit,
            lease: self.config.lease,
        };
        let claim = (!open.is_empty()).then(|| request(open, free));
        let probe_base = request(Vec::new(), 1);
        self.turning = true;
        let jobs = self.jobs().clone();
        let runner = myself.clone();
        tokio::spawn(async move {
            let claiming = claim.is_some();
            let count = finished.len();
            let turn = Turn { finished, claim };
            // Every type held back by its breaker and nothing to record: only the probes.
            let outcome = if turn.finished.is_empty() && turn.claim.is_none() {
                Ok(TurnOutcome {
                    finished: Vec::new(),
                    claimed: Ok(Vec::new()),
                    next_due: None,
                })
            } else {
                jobs.store().finish_and_claim(turn, jobs.now()).await
            };
            let (results, mut claimed, next_due) = match outcome {
                Ok(outcome) => {
                    let claimed = outcome.claimed.unwrap_or_else(|e| {
                            tracing::warn!(error = %e, "claiming jobs failed; trying again at the next poll");
                            Vec::new()
                        });
                    (outcome.finished, claimed, outcome.next_due)
                }
                Err(e) => {
                    tracing::warn!(error = %e, "a store turn failed; its runs' leases will expire and they run again");
                    (vec![Err(e); count], Vec::new(), None)
                }
            };
            let mut probed = Vec::new();
            for name in probes {
                if claimed.len() as u32 >= free {
                    break;
                }
                let request = ClaimRequest {
                    names: vec![name.clone()],
                    ..probe_base.clone()
                };
                let probe = match jobs.store().claim(request, jobs.now()).await {
                    Ok(probe) => probe,
                    Err(e) => {
                        tracing::warn!(error = %e, "claiming a probe failed; trying again at the next poll");
                        Vec::new()
                    }
                };
                probed.push((name, !probe.is_empty()));
                claimed.extend(probe);
            }
            let finished = records
                .into_iter()
                .zip(results)
                .map(|((id, verdict), stored)| (id, verdict, stored))
                .collect();
            let _ = runner.cast(RunnerMsg::TurnDone(TurnDone {
                finished,
                full: claiming && claimed.len() as u32 >= free,
                claimed,
                probed,
                next_due,
            }));
        });
    }

    /// A turn came back: count its runs, start the jobs it claimed, feed the breakers, plan
    /// the next turn.
    pub(super) async fn turn_done(&mut self, myself: &ActorRef<RunnerMsg>, done: TurnDone) {
        self.turning = false;
        let now = self.jobs().now();
        for (name, found) in done.probed {
            if let Some(breaker) = self.breakers.get_mut(&name) {
                if found {
                    tracing::info!(job_type = %name, "circuit breaker: probing");
                    breaker.probe_started();
                } else {
                    breaker.probe_not_found(now);
                }
            }
        }
        if !done.finished.is_empty() {
            self.jobs().job_finished();
        }
        let recorded = done.finished.len();
        for (id, verdict, stored) in done.finished {
            self.record(id, verdict, stored);
        }
        if self.drain.is_some() {
            // Claimed as the runner began to drain: back to the store, unrun.
            for job in done.claimed {
                self.give_back(Lease {
                    id: job.id,
                    token: job.token,
                })
                .await;
            }
            self.drained(myself, recorded);
            return;
        }
        for job in done.claimed {
            self.start(myself, job);
        }
        let reopen = self.breakers.values().filter_map(|b| b.reopens_at()).min();
        let mut at = next_look(
            Instant::now(),
            now,
            self.config.poll_interval,
            done.full,
            done.next_due,
            reopen,
        );
        self.claim_again |= done.full;
        if !self.ended.is_empty() {
            // Runs that ended meanwhile carry the claim.
            self.turn(myself);
        } else if self.claim_again && self.free() > 0 {
            if self.running.is_empty() {
                self.turn(myself);
            } else {
                at = at.min(Instant::now() + CLAIM_LINGER);
            }
        }
        self.deadline.send_replace(at);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn breakers_split_the_types_into_open_probed_and_held_back() {
        let names: Vec<String> = ["a", "b", "c", "d"].map(String::from).into();
        let t0 = Timestamp::from_millis(0);
        let cooldown = Duration::from_secs(10);
        let mut breakers = HashMap::new();
        let tripped = |breakers: &mut HashMap<String, CircuitBreaker>, name: &str| {
            let mut b = CircuitBreaker::new(1, cooldown);
            b.on_failure(t0);
            breakers.insert(name.to_owned(), b);
        };
        // a: no breaker; b: flowing; c, d: tripped at t0.
        breakers.insert("b".to_owned(), CircuitBreaker::new(3, cooldown));
        tripped(&mut breakers, "c");
        tripped(&mut breakers, "d");
        let cooling = admit(&names, &breakers, t0.after(Duration::from_secs(5)));
        assert_eq!(cooling.open, ["a", "b"]);
        assert!(cooling.probes.is_empty());
        let after = admit(&names, &breakers, t0.after(cooldown));
        assert_eq!(after.open, ["a", "b"]);
        assert_eq!(after.probes, ["c", "d"]);
        // A probe in flight holds its type back until it ends.
        if let Some(b) = breakers.get_mut("c") {
            b.probe_started();
        }
        let probing = admit(&names, &breakers, t0.after(cooldown));
        assert_eq!(probing.probes, ["d"]);
    }
}
