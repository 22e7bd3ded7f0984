//! Claiming: which job types to ask for ([`admit`], by each type's circuit breaker), the
//! claim itself (in its own task, one at a time, so the runner keeps taking finishes), and
//! what the runner does when it comes back.

use std::collections::HashMap;

use ractor::ActorRef;
use tokio::time::Instant;

use super::actor::{RunnerMsg, RunnerState};
use super::pace::next_look;
use crate::jobs::breaker::{Admission, CircuitBreaker};
use crate::jobs::{ClaimRequest, ClaimedJob, Lease, Timestamp};

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

impl RunnerState {
    /// Fills free slots with due jobs. The claim runs in its own task (one at a time), so
    /// the runner keeps taking finishes meanwhile; what frees up during a claim is claimed by
    /// the next one, right after.
    pub(super) fn claim(&mut self, myself: &ActorRef<RunnerMsg>) {
        if self.drain.is_some() {
            return;
        }
        if self.claiming {
            self.claim_again = true;
            return;
        }
        let free = self.free();
        if free == 0 {
            // The next finish claims.
            self.deadline
                .send_replace(Instant::now() + self.config.poll_interval);
            return;
        }
        let Admitted { open, probes } = admit(&self.names, &self.breakers, self.jobs().now());
        self.claiming = true;
        self.claim_again = false;
        let jobs = self.jobs().clone();
        let base = ClaimRequest {
            owner: self.owner.clone(),
            queues: self.config.queues.clone(),
            names: Vec::new(),
            limit: free,
            lease: self.config.lease,
        };
        let runner = myself.clone();
        tokio::spawn(async move {
            let claim = |names: Vec<String>, limit: u32| {
                let request = ClaimRequest {
                    names,
                    limit,
                    ..base.clone()
                };
                let jobs = jobs.clone();
                async move {
                    match jobs.store().claim(request, jobs.now()).await {
                        Ok(claimed) => claimed,
                        Err(e) => {
                            tracing::warn!(error = %e, "claiming jobs failed; trying again at the next poll");
                            Vec::new()
                        }
                    }
                }
            };
            let mut claimed = Vec::new();
            if !open.is_empty() {
                claimed = claim(open.clone(), free).await;
            }
            let mut probed = Vec::new();
            for name in probes {
                if claimed.len() as u32 >= free {
                    break;
                }
                let probe = claim(vec![name.clone()], 1).await;
                probed.push((name, !probe.is_empty()));
                claimed.extend(probe);
            }
            let full = claimed.len() as u32 >= free;
            let next_due = if full || open.is_empty() {
                None
            } else {
                match jobs.store().next_due(base.queues.clone(), open).await {
                    Ok(next) => next,
                    Err(e) => {
                        tracing::warn!(error = %e, "reading the next due job failed");
                        None
                    }
                }
            };
            let _ = runner.cast(RunnerMsg::Claimed {
                claimed,
                probed,
                full,
                next_due,
            });
        });
    }

    /// A claim came back: start its jobs, feed the breakers, plan the next look.
    pub(super) async fn claimed(
        &mut self,
        myself: &ActorRef<RunnerMsg>,
        claimed: Vec<ClaimedJob>,
        probed: Vec<(String, bool)>,
        full: bool,
        next_due: Option<Timestamp>,
    ) {
        self.claiming = false;
        let now = self.jobs().now();
        for (name, found) in probed {
            if let Some(breaker) = self.breakers.get_mut(&name) {
                if found {
                    tracing::info!(job_type = %name, "circuit breaker: probing");
                    breaker.probe_started();
                } else {
                    breaker.probe_not_found(now);
                }
            }
        }
        if self.drain.is_some() {
            // Claimed as the runner began to drain: back to the store, unrun.
            for job in claimed {
                self.give_back(Lease {
                    id: job.id,
                    token: job.token,
                })
                .await;
            }
            return;
        }
        for job in claimed {
            self.start(myself, job);
        }
        let reopen = self.breakers.values().filter_map(|b| b.reopens_at()).min();
        let at = next_look(
            Instant::now(),
            now,
            self.config.poll_interval,
            full,
            next_due,
            reopen,
        );
        self.deadline.send_replace(at);
        if (full || self.claim_again) && self.free() > 0 {
            self.claim(myself);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

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
