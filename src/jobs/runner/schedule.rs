//! Recurring schedules in a runner: a task of the runner's own declares its schedules in the
//! store at start, then sleeps until the next slot of any of them, plans what is due
//! ([`Schedule::plan`]) and fires it ([`Store::fire_schedule`]). The store's compare-and-set
//! on each schedule's slot marker is what makes a slot run once, whichever runner (in this
//! process or another) fires first; a runner that lost the race learns the new marker and
//! plans again. Jobs it enqueues wake this handle's runners at once.
//!
//! [`Store::fire_schedule`]: crate::jobs::Store::fire_schedule

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use super::Counters;
use crate::jobs::{
    Fired, Firing, JobOptions, Jobs, JobsError, NewJob, Schedule, ScheduleDecl, Slot, Timestamp,
};

/// The longest the keeper sleeps without reading the clock again: a wall clock that jumps
/// (NTP, a suspended machine) is noticed within this.
const LOOK_EVERY: Duration = Duration::from_secs(60);
/// How long after a store error the keeper tries again.
const RETRY_AFTER: Duration = Duration::from_secs(1);

/// Makes a slot's job with the slot's options.
type MakeJob = dyn Fn(&Slot, JobOptions) -> Result<NewJob, JobsError> + Send + Sync;

/// A schedule and how its slots' jobs are made.
#[derive(Clone)]
pub(super) struct Scheduled {
    pub(super) schedule: Schedule,
    pub(super) make: Arc<MakeJob>,
}

impl Scheduled {
    /// The slot's job; a making function that panics is an error (the slot is missed), not
    /// the end of the schedule keeper.
    fn job(&self, slot: &Slot) -> Result<NewJob, JobsError> {
        let options = self.schedule.slot_options(slot.at);
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| (self.make)(slot, options)))
            .unwrap_or_else(|panic| {
                Err(JobsError::InvalidSchedule {
                    name: self.schedule.name().to_owned(),
                    reason: crate::actors::panic_message("its job-making function", panic.as_ref()),
                })
            })
    }
}

/// One schedule's state in the keeper: the marker as last seen in the store.
struct Marker {
    /// The last slot fired, as the store said.
    last_slot: Option<Timestamp>,
    /// Where planning starts: the last slot, or the declaration before the first.
    anchor: Timestamp,
}

/// Keeps `scheduled` firing until the runner stops (the task is aborted then).
pub(super) async fn keep(jobs: Jobs, mut scheduled: Vec<Scheduled>, stats: Arc<Counters>) {
    // One order everywhere: concurrent declarations lock rows in the same order.
    scheduled.sort_by(|a, b| a.schedule.name().cmp(b.schedule.name()));
    let now = jobs.now();
    let declared: Vec<ScheduleDecl> = scheduled
        .iter()
        .map(|s| ScheduleDecl {
            name: s.schedule.name().to_owned(),
            spec: s.schedule.to_string(),
            next_slot: s.schedule.next_after(now),
        })
        .collect();
    let mut markers: Vec<Marker> = loop {
        match jobs
            .store()
            .declare_schedules(declared.clone(), jobs.now())
            .await
        {
            Ok(marks) => {
                break marks
                    .into_iter()
                    .map(|m| Marker {
                        last_slot: m.last_slot,
                        anchor: m.last_slot.unwrap_or(m.declared_at),
                    })
                    .collect()
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot declare the runner's schedules; trying again");
                tokio::time::sleep(RETRY_AFTER).await;
            }
        }
    };
    tracing::debug!(schedules = declared.len(), "schedules declared");
    loop {
        let now = jobs.now();
        let mut wake = now.after(LOOK_EVERY);
        for (s, marker) in scheduled.iter().zip(markers.iter_mut()) {
            loop {
                match fire(&jobs, s, marker, now, &stats).await {
                    Ok(true) => continue, // the marker moved elsewhere: plan again from it
                    Ok(false) => {}
                    Err(e) => {
                        tracing::warn!(schedule = %s.schedule.name(), error = %e, "firing a schedule failed; trying again");
                        wake = wake.min(now.after(RETRY_AFTER));
                    }
                }
                break;
            }
            if let Some(next) = s.schedule.next_after(marker.anchor.max(now)) {
                wake = wake.min(next);
            }
        }
        tokio::time::sleep(wake.since(jobs.now())).await;
    }
}

/// Fires what is due of one schedule. `Ok(true)`: another runner moved the marker; the
/// caller plans again.
async fn fire(
    jobs: &Jobs,
    s: &Scheduled,
    marker: &mut Marker,
    now: Timestamp,
    stats: &Counters,
) -> Result<bool, JobsError> {
    let Some(plan) = s.schedule.plan(marker.anchor, now) else {
        return Ok(false);
    };
    let mut runs = Vec::with_capacity(plan.runs.len());
    let mut missed = plan.missed;
    for slot in &plan.runs {
        match s.job(slot) {
            Ok(job) => runs.push((slot.at, job)),
            Err(e) => {
                // The slot cannot run (its job does not serialize): counted missed, said loudly.
                tracing::error!(schedule = %s.schedule.name(), slot = slot.at.as_millis(), error = %e, "a schedule's job could not be made; the slot is missed");
                missed += 1;
            }
        }
    }
    let firing = Firing {
        schedule: s.schedule.name().to_owned(),
        expected: marker.last_slot,
        through: plan.through,
        runs,
        missed,
        overlap: s.schedule.overlap_policy(),
        next_slot: s.schedule.next_after(plan.through.max(now)),
    };
    match jobs.store().fire_schedule(firing, now).await? {
        Fired::Done {
            jobs: ids,
            held_back,
        } => {
            marker.last_slot = Some(plan.through);
            marker.anchor = plan.through;
            stats
                .slots_fired
                .fetch_add(ids.len() as u64, Ordering::Relaxed);
            stats
                .slots_missed
                .fetch_add(missed + held_back, Ordering::Relaxed);
            crate::observe::metrics::schedule_slots(
                s.schedule.name(),
                ids.len() as u64,
                missed + held_back,
            );
            if !ids.is_empty() {
                tracing::debug!(schedule = %s.schedule.name(), jobs = ?ids, "schedule fired");
                jobs.wake_runners();
            }
            if missed + held_back > 0 {
                tracing::info!(schedule = %s.schedule.name(), missed = missed + held_back, "schedule slots missed");
            }
            Ok(false)
        }
        Fired::Moved { last_slot } => {
            marker.last_slot = last_slot;
            if let Some(last) = last_slot {
                marker.anchor = last;
            }
            Ok(true)
        }
    }
}
