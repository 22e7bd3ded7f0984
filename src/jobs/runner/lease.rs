//! Keeping leases: every heartbeat renews the leases of running jobs, cancels a run whose lease
//! was lost (expired and reclaimed, or the job cancelled), and gives up on a run hung past its
//! timeout plus the grace ([`hung`]): a handler that ignores cancellation (it blocks its
//! thread) gets its slot freed and its attempt recorded as failed.

use std::time::Duration;

use ractor::ActorRef;
use tokio::time::Instant;

use super::actor::{Ended, RunnerMsg, RunnerState};
use super::execute::Verdict;
use crate::jobs::{Finish, JobId, Lease};

/// The runs hung at `now`: past their timeout instant plus `grace`.
pub(super) fn hung(
    deadlines: impl IntoIterator<Item = (JobId, Instant)>,
    now: Instant,
    grace: Duration,
) -> Vec<JobId> {
    deadlines
        .into_iter()
        .filter(|(_, deadline)| now >= *deadline + grace)
        .map(|(id, _)| id)
        .collect()
}

impl RunnerState {
    /// Renews the leases of running jobs; cancels runs whose lease was lost and gives up on
    /// runs hung past their timeout.
    pub(super) async fn heartbeat(&mut self, myself: &ActorRef<RunnerMsg>) {
        let deadlines = self.running.iter().map(|(id, r)| (*id, r.deadline));
        let hung = hung(deadlines, Instant::now(), self.config.hang_grace);
        for id in &hung {
            self.give_up_hung(*id);
        }
        if !hung.is_empty() {
            self.turn(myself);
        }
        if self.running.is_empty() {
            return;
        }
        let leases: Vec<Lease> = self
            .running
            .iter()
            .map(|(id, r)| Lease {
                id: *id,
                token: r.token,
            })
            .collect();
        let expires = self.jobs().now().after(self.config.lease);
        match self
            .jobs()
            .store()
            .heartbeat(leases, expires, self.jobs().now())
            .await
        {
            Ok(lost) => {
                for id in lost {
                    if let Some(run) = self.forget(id) {
                        super::bump(&self.stats.lost);
                        tracing::warn!(%id, name = %run.name, "lease lost (expired and reclaimed, or cancelled); run cancelled");
                    }
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "renewing leases failed; retrying at the next heartbeat")
            }
        }
    }

    /// Frees the slot of a run that did not stop when cancelled at its timeout; its attempt is
    /// recorded as failed at the next turn (retried as any timeout is).
    fn give_up_hung(&mut self, id: JobId) {
        let Some(run) = self.forget(id) else {
            return;
        };
        super::bump(&self.stats.hung);
        let error = format!(
            "timed out after {:?} and did not stop when cancelled (hung); its slot was freed",
            run.timeout
        );
        tracing::error!(%id, name = %run.name, "{error}");
        let ended = Ended {
            lease: Lease {
                id,
                token: run.token,
            },
            finish: Finish::Failed { error, retry: true },
            verdict: Verdict::Failed { timed_out: true },
        };
        self.judge(&run.name, ended.verdict);
        self.ended.push(ended);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_is_hung_once_past_its_timeout_plus_the_grace() {
        let t0 = Instant::now();
        let grace = Duration::from_secs(5);
        let deadlines = [
            (JobId(1), t0),
            (JobId(2), t0 + Duration::from_secs(3)),
            (JobId(3), t0 + Duration::from_secs(10)),
        ];
        assert!(hung(deadlines, t0 + Duration::from_secs(4), grace).is_empty());
        assert_eq!(hung(deadlines, t0 + grace, grace), [JobId(1)]);
        assert_eq!(
            hung(deadlines, t0 + Duration::from_secs(8), grace),
            [JobId(1), JobId(2)]
        );
    }
}
