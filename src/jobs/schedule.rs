//! Recurring schedules: when a [`Schedule`]'s slots fall, and what becomes of the slots that
//! came due (run, or count as missed), decided here as plain functions of the time. A runner
//! wires them to its store (`runner/schedule.rs`); the store keeps each schedule's slot
//! marker and fires a slot only by moving that marker with a compare-and-set, in the same
//! transaction as the job's insert ([`Store::fire_schedule`]), so a slot runs once across
//! every process and machine that declares the schedule, with no leader.
//!
//! * **Slots are UTC instants.** A cron schedule's slots are computed in its time zone (UTC
//!   unless [`Schedule::in_zone`] says otherwise) by `croner`, which follows Vixie cron on
//!   daylight-saving nights: a fixed-time job (`30 2 * * *`) runs once on both transition
//!   nights (in the skipped hour it runs at the first valid minute after the gap), while an
//!   interval job (`*/15 * * * *`) runs at each wall-clock match, the repeated hour twice.
//!   An interval schedule ([`Schedule::every`]) has its slots at the multiples of its period
//!   since the Unix epoch, the same in every process.
//! * **The next slot comes from the last one fired, not from now**: after downtime the slots
//!   that fell meanwhile are due together, and [`Missed`] says what runs.
//! * **Overlap** ([`Overlap`]) is judged in the store, against the schedule's last job.
//!
//! [`Store::fire_schedule`]: crate::jobs::Store::fire_schedule

use std::collections::VecDeque;
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use chrono_tz::Tz;

use crate::jobs::{JobId, JobOptions, JobsError, Timestamp};

/// How late the newest due slot of a [`Missed::Skip`] schedule may be and still run
/// (Quartz's default misfire threshold), unless a starting deadline says otherwise.
pub const SKIP_THRESHOLD: Duration = Duration::from_secs(60);

/// The most due slots counted one by one after downtime; past it the count of missed slots
/// is a lower bound (the newest slots are still found exactly).
const COUNT_CAP: u64 = 10_000;

/// What runs when several of a schedule's slots came due while no runner fired them
/// (downtime, a long pause): the newest due slot is the current one, the older ones missed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Missed {
    /// Run none of the missed slots; the newest due slot runs only if it is at most
    /// [`SKIP_THRESHOLD`] late (or the starting deadline, if one is set). Quartz's
    /// `DO_NOTHING`.
    Skip,
    /// Run the newest due slot once, late, and count the older ones missed (the default;
    /// systemd's `Persistent=true`, Quartz's `FIRE_ONCE_NOW`).
    #[default]
    RunOnce,
    /// Run each missed slot, oldest first, at most the newest `max` of them (the older ones
    /// counted missed).
    RunAll {
        /// How many due slots run at most (≥ 1).
        max: u32,
    },
}

/// What a slot does when the job of the schedule's previous slot has not finished.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Overlap {
    /// Run anyway: jobs of several slots may run at once (the default).
    #[default]
    Allow,
    /// Do not run this slot: it counts as missed (Kubernetes' `Forbid`, systemd timers).
    Forbid,
    /// Cancel the previous slot's job (its running attempt's result will be refused) and run
    /// this one.
    Replace,
}

/// One slot of a schedule, as the job-making function sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Slot {
    /// The schedule's name.
    pub schedule: String,
    /// The slot's instant (UTC): the time the job is for, however late it is enqueued.
    pub at: Timestamp,
    /// `true` when a newer slot was also due: this one runs as a catch-up after downtime
    /// ([`Missed::RunAll`]).
    pub backfilled: bool,
}

#[derive(Clone)]
enum When {
    Cron {
        cron: Box<croner::Cron>,
        expr: String,
    },
    Every(Duration),
}

/// A recurring schedule, declared in code: a name (its identity in the store: keep it
/// stable), when its slots fall (a cron expression in a time zone, or an interval), and what
/// happens to missed and overlapping slots. Give it to a runner with
/// [`RunnerBuilder::schedule`](crate::jobs::RunnerBuilder::schedule).
///
/// ```
/// use std::time::Duration;
/// use ractor_otp::jobs::{Missed, Overlap, Schedule};
///
/// # fn main() -> Result<(), ractor_otp::jobs::JobsError> {
/// // Every night at 03:00, Stockholm time; after downtime, one catch-up run.
/// let nightly = Schedule::cron("nightly-report", "0 3 * * *")?.in_zone("Europe/Stockholm")?;
///
/// // Every 90 s; a slot whose previous job still runs is skipped.
/// let poll = Schedule::every("poll-feeds", Duration::from_secs(90))?
///     .overlap(Overlap::Forbid)
///     .missed(Missed::Skip)
///     .jitter(Duration::from_secs(10));
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct Schedule {
    name: String,
    when: When,
    zone: Tz,
    missed: Missed,
    overlap: Overlap,
    starting_deadline: Option<Duration>,
    jitter: Duration,
    options: JobOptions,
}

impl fmt::Debug for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Schedule")
            .field("name", &self.name)
            .field("when", &self.to_string())
            .field("missed", &self.missed)
            .field("overlap", &self.overlap)
            .field("starting_deadline", &self.starting_deadline)
            .field("jitter", &self.jitter)
            .finish_non_exhaustive()
    }
}

/// What the store keeps of the definition (for listings): the schedule in words.
impl fmt::Display for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.when {
            When::Cron { expr, .. } => write!(f, "cron `{expr}` in {}", self.zone.name())?,
            When::Every(period) => write!(f, "every {period:?}")?,
        }
        match self.missed {
            Missed::Skip => write!(f, ", missed slots skipped")?,
            Missed::RunOnce => {}
            Missed::RunAll { max } => write!(f, ", missed slots run (at most {max})")?,
        }
        match self.overlap {
            Overlap::Allow => {}
            Overlap::Forbid => write!(f, ", no overlap")?,
            Overlap::Replace => write!(f, ", a new slot replaces a running one")?,
        }
        if let Some(deadline) = self.starting_deadline {
            write!(f, ", starting deadline {deadline:?}")?;
        }
        if !self.jitter.is_zero() {
            write!(f, ", jitter {:?}", self.jitter)?;
        }
        Ok(())
    }
}

fn invalid(name: &str, reason: impl Into<String>) -> JobsError {
    JobsError::InvalidSchedule {
        name: name.to_owned(),
        reason: reason.into(),
    }
}

impl Schedule {
    /// A schedule on a cron expression: five fields (minute hour day-of-month month
    /// day-of-week), or six with seconds first; `@hourly`, `@daily` and the like; `L`, `#`
    /// and `W` as croner reads them. In UTC unless [`in_zone`](Schedule::in_zone) says
    /// otherwise. An expression that does not parse, or a name that is empty, is an error.
    pub fn cron(name: impl Into<String>, expr: &str) -> Result<Self, JobsError> {
        let name = name.into();
        check_name(&name)?;
        let cron = croner::parser::CronParser::builder()
            .seconds(croner::parser::Seconds::Optional)
            .build()
            .parse(expr)
            .map_err(|e| invalid(&name, format!("cron expression `{expr}`: {e}")))?;
        Ok(Self::new(
            name,
            When::Cron {
                cron: Box::new(cron),
                expr: expr.to_owned(),
            },
        ))
    }

    /// A schedule every `period` (at least one second), its slots at the multiples of
    /// `period` since the Unix epoch (so every process agrees on them).
    pub fn every(name: impl Into<String>, period: Duration) -> Result<Self, JobsError> {
        let name = name.into();
        check_name(&name)?;
        if period < Duration::from_secs(1) {
            return Err(invalid(
                &name,
                format!("an interval of {period:?}: give at least one second"),
            ));
        }
        Ok(Self::new(name, When::Every(period)))
    }

    fn new(name: String, when: When) -> Self {
        Schedule {
            name,
            when,
            zone: Tz::UTC,
            missed: Missed::default(),
            overlap: Overlap::default(),
            starting_deadline: None,
            jitter: Duration::ZERO,
            options: JobOptions::default(),
        }
    }

    /// Computes a cron schedule's slots in `zone`, an IANA name such as `Europe/Stockholm`
    /// (default `UTC`). An unknown zone, or a zone on an interval schedule, is an error.
    pub fn in_zone(mut self, zone: &str) -> Result<Self, JobsError> {
        if let When::Every(_) = self.when {
            return Err(invalid(
                &self.name,
                "an interval schedule has no time zone; use a cron expression for wall-clock times",
            ));
        }
        self.zone = Tz::from_str(zone).map_err(|_| {
            invalid(
                &self.name,
                format!("unknown time zone `{zone}`: give an IANA name such as `Europe/Stockholm`"),
            )
        })?;
        Ok(self)
    }

    /// What runs after downtime (default [`Missed::RunOnce`]).
    pub fn missed(mut self, missed: Missed) -> Self {
        self.missed = missed;
        self
    }

    /// What a slot does while the previous slot's job has not finished (default
    /// [`Overlap::Allow`]).
    pub fn overlap(mut self, overlap: Overlap) -> Self {
        self.overlap = overlap;
        self
    }

    /// A slot more than `deadline` late does not run at all: it counts as missed
    /// (Kubernetes' `startingDeadlineSeconds`). Default: none.
    pub fn starting_deadline(mut self, deadline: Duration) -> Self {
        self.starting_deadline = Some(deadline);
        self
    }

    /// Delays every slot's job by a fixed offset in `[0, jitter)`, derived from the
    /// schedule's name (systemd's `RandomizedDelaySec` with `FixedRandomDelay`): schedules
    /// that share a minute do not all start at once. Default: none.
    pub fn jitter(mut self, jitter: Duration) -> Self {
        self.jitter = jitter;
        self
    }

    /// The options of every slot's job (queue, priority, attempts, timeout, resource). The
    /// idempotency key is the schedule's own (one per slot): leave it unset.
    pub fn options(mut self, options: JobOptions) -> Self {
        self.options = options;
        self
    }

    /// The schedule's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The first slot strictly after `t`; `None` if the expression never matches again.
    pub fn next_after(&self, t: Timestamp) -> Option<Timestamp> {
        match &self.when {
            When::Every(period) => {
                let p = period_ms(*period);
                Some(Timestamp::from_millis(
                    (t.as_millis().div_euclid(p) + 1).saturating_mul(p),
                ))
            }
            When::Cron { cron, .. } => {
                let from = self.zoned(t)?;
                let next = cron.find_next_occurrence(&from, false).ok()?;
                Some(Timestamp::from_millis(next.timestamp_millis()))
            }
        }
    }

    /// `t` in the schedule's zone, at the start of its second (croner works in seconds; a
    /// slot at that second is not after `t`, so the next one is what follows it).
    fn zoned(&self, t: Timestamp) -> Option<DateTime<Tz>> {
        let secs = t.as_millis().div_euclid(1000);
        Utc.timestamp_opt(secs, 0)
            .single()
            .map(|utc| utc.with_timezone(&self.zone))
    }

    /// The job options of the slot at `at`: the schedule's, with the slot's idempotency key
    /// and the jitter's start.
    pub(crate) fn slot_options(&self, at: Timestamp) -> JobOptions {
        let mut options = self.options.clone().idempotency_key(format!(
            "schedule:{}:{}",
            self.name,
            at.as_millis()
        ));
        let offset = self.jitter_offset();
        if !offset.is_zero() {
            options = options.not_before(at.after(offset));
        }
        options
    }

    /// The fixed delay of this schedule's jobs, in `[0, jitter)`: FNV-1a of the name, so
    /// every process and every release agrees.
    pub(crate) fn jitter_offset(&self) -> Duration {
        let span = u64::try_from(self.jitter.as_millis()).unwrap_or(u64::MAX);
        if span == 0 {
            return Duration::ZERO;
        }
        let hash = self.name.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        });
        Duration::from_millis(hash % span)
    }

    /// Checks what the builder could not: the options and the missed-slot policy.
    pub(crate) fn validate(&self) -> Result<(), JobsError> {
        if self.options.idempotency_key.is_some() {
            return Err(invalid(
                &self.name,
                "its job options carry an idempotency key, but each slot's key is the schedule's own; leave it unset",
            ));
        }
        if let Missed::RunAll { max: 0 } = self.missed {
            return Err(invalid(
                &self.name,
                "Missed::RunAll { max: 0 } runs nothing; give max ≥ 1 or use Missed::Skip",
            ));
        }
        self.options
            .validate()
            .map_err(|e| invalid(&self.name, e.to_string()))
    }

    pub(crate) fn overlap_policy(&self) -> Overlap {
        self.overlap
    }

    /// What to do now, with the slot marker at `anchor` (the last slot fired, or when the
    /// schedule was first declared): `None` when no slot is due. Otherwise the marker moves
    /// to the newest due slot (`through`), `runs` are the slots to enqueue (oldest first),
    /// and `missed` counts the due slots that do not run.
    pub(crate) fn plan(&self, anchor: Timestamp, now: Timestamp) -> Option<Plan> {
        let keep = match (self.missed, self.overlap) {
            // With no overlap allowed, several slots at once would overlap each other.
            (Missed::RunAll { max }, Overlap::Allow) => max.max(1) as usize,
            _ => 1,
        };
        let (newest, count) = self.due(anchor, now, keep);
        let through = *newest.last()?;
        let late = |at: Timestamp| now.since(at);
        let in_time = |at: Timestamp| match (self.starting_deadline, self.missed) {
            (Some(deadline), _) => late(at) <= deadline,
            (None, Missed::Skip) => late(at) <= SKIP_THRESHOLD,
            (None, _) => true,
        };
        let runs: Vec<Slot> = newest
            .iter()
            .filter(|at| in_time(**at))
            .map(|&at| Slot {
                schedule: self.name.clone(),
                at,
                backfilled: at != through,
            })
            .collect();
        Some(Plan {
            through,
            missed: count - runs.len() as u64,
            runs,
        })
    }

    /// The due slots in `(after, now]`: the newest `keep` of them, oldest first, and how
    /// many there are (a lower bound past [`COUNT_CAP`]).
    fn due(&self, after: Timestamp, now: Timestamp, keep: usize) -> (Vec<Timestamp>, u64) {
        if now <= after {
            return (Vec::new(), 0);
        }
        match &self.when {
            When::Every(period) => {
                let p = period_ms(*period);
                let first = after.as_millis().div_euclid(p) + 1;
                let last = now.as_millis().div_euclid(p);
                if last < first {
                    return (Vec::new(), 0);
                }
                let count = (last - first + 1) as u64;
                let from = (last - keep as i64 + 1).max(first);
                let newest = (from..=last)
                    .map(|k| Timestamp::from_millis(k * p))
                    .collect();
                (newest, count)
            }
            When::Cron { cron, .. } => {
                let mut newest = VecDeque::with_capacity(keep.min(64) + 1);
                let mut count = 0;
                let mut cursor = after;
                while let Some(at) = self.next_after(cursor).filter(|at| *at <= now) {
                    count += 1;
                    newest.push_back(at);
                    if newest.len() > keep {
                        newest.pop_front();
                    }
                    cursor = at;
                    if count == COUNT_CAP {
                        // Too many to walk: find the newest ones from `now` backwards.
                        let mut back = Vec::with_capacity(keep);
                        let mut from = self.zoned(now.after(Duration::from_secs(1)));
                        while back.len() < keep {
                            let Some(prev) = from
                                .as_ref()
                                .and_then(|t| cron.find_previous_occurrence(t, false).ok())
                            else {
                                break;
                            };
                            let at = Timestamp::from_millis(prev.timestamp_millis());
                            if at <= cursor {
                                break;
                            }
                            if at <= now {
                                back.push(at);
                            }
                            from = Some(prev);
                        }
                        back.reverse();
                        if back.is_empty() {
                            break;
                        }
                        let merged = newest
                            .into_iter()
                            .chain(back.iter().copied())
                            .collect::<Vec<_>>();
                        let skip = merged.len().saturating_sub(keep);
                        return (merged[skip..].to_vec(), count + back.len() as u64);
                    }
                }
                (newest.into(), count)
            }
        }
    }
}

fn check_name(name: &str) -> Result<(), JobsError> {
    if name.trim().is_empty() {
        return Err(invalid(name, "a schedule needs a non-empty name"));
    }
    Ok(())
}

fn period_ms(period: Duration) -> i64 {
    i64::try_from(period.as_millis()).unwrap_or(i64::MAX).max(1)
}

/// What a schedule does now ([`Schedule::plan`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Plan {
    /// The newest due slot: where the marker moves.
    pub(crate) through: Timestamp,
    /// The slots that run, oldest first.
    pub(crate) runs: Vec<Slot>,
    /// Due slots that do not run.
    pub(crate) missed: u64,
}

/// What a firing does about the previous slot's job (decided in the store's transaction).
// Used by the stores: unused in a build with `jobs` and no store.
#[cfg_attr(not(any(feature = "sqlite", feature = "postgres")), allow(dead_code))]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OverlapStep {
    /// Enqueue the slot's jobs.
    Run,
    /// Enqueue nothing: the slots count as missed.
    HoldBack,
    /// Cancel the previous job, then enqueue.
    ReplaceThenRun,
}

/// The overlap rule: `previous_unfinished` is whether the schedule's last job exists and is
/// in no final state.
#[cfg_attr(not(any(feature = "sqlite", feature = "postgres")), allow(dead_code))]
pub(crate) fn overlap_step(overlap: Overlap, previous_unfinished: bool) -> OverlapStep {
    match (overlap, previous_unfinished) {
        (_, false) | (Overlap::Allow, true) => OverlapStep::Run,
        (Overlap::Forbid, true) => OverlapStep::HoldBack,
        (Overlap::Replace, true) => OverlapStep::ReplaceThenRun,
    }
}

/// What a store does with a [`Firing`](crate::jobs::Firing), given what its transaction
/// read: the schedule's marker and, when the firing has runs, the state of its last job
/// (`None`: no last job, or it is gone).
#[cfg_attr(not(any(feature = "sqlite", feature = "postgres")), allow(dead_code))]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FiringStep {
    /// Another runner moved the marker: write nothing, answer where it stands.
    Moved { last_slot: Option<Timestamp> },
    /// Move the marker; cancel the previous job first if `cancel_previous`; enqueue the runs
    /// if `insert`, else count `held_back` of them missed.
    Fire {
        cancel_previous: bool,
        insert: bool,
        held_back: u64,
    },
}

#[cfg_attr(not(any(feature = "sqlite", feature = "postgres")), allow(dead_code))]
pub(crate) fn firing_step(
    firing: &crate::jobs::Firing,
    last_slot: Option<Timestamp>,
    previous: Option<crate::jobs::JobState>,
) -> FiringStep {
    if last_slot != firing.expected {
        return FiringStep::Moved { last_slot };
    }
    let unfinished = previous.is_some_and(|state| !state.is_final());
    match overlap_step(firing.overlap, unfinished) {
        OverlapStep::HoldBack => FiringStep::Fire {
            cancel_previous: false,
            insert: false,
            held_back: firing.runs.len() as u64,
        },
        step => FiringStep::Fire {
            cancel_previous: step == OverlapStep::ReplaceThenRun,
            insert: true,
            held_back: 0,
        },
    }
}

/// A schedule as a store keeps it ([`Jobs::schedules`](crate::jobs::Jobs::schedules)).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ScheduleRecord {
    /// Its name.
    pub name: String,
    /// Its definition in words, as last declared.
    pub spec: String,
    /// When a runner first declared it.
    pub declared_at: Timestamp,
    /// When a runner last declared it (at its start).
    pub seen_at: Timestamp,
    /// The last slot fired (run, or counted missed); `None` before the first.
    pub last_slot: Option<Timestamp>,
    /// When it fires next, as the runner that last declared or fired it computed.
    pub next_slot: Option<Timestamp>,
    /// The job of the last slot that ran.
    pub last_job: Option<JobId>,
    /// Slots whose job was enqueued.
    pub fired: u64,
    /// Slots that did not run (downtime, a starting deadline, an overlap held back).
    pub missed: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(rfc3339: &str) -> Timestamp {
        let t = DateTime::parse_from_rfc3339(rfc3339).expect("a valid test time");
        Timestamp::from_millis(t.timestamp_millis())
    }

    fn slots(s: &Schedule, from: &str, to: &str) -> Vec<Timestamp> {
        let (newest, count) = s.due(at(from), at(to), usize::MAX >> 1);
        assert_eq!(newest.len() as u64, count);
        newest
    }

    #[test]
    fn interval_slots_are_multiples_of_the_period_since_the_epoch() {
        let s = Schedule::every("tick", Duration::from_secs(90)).unwrap();
        let t = Timestamp::from_millis(1_000);
        assert_eq!(s.next_after(t), Some(Timestamp::from_millis(90_000)));
        assert_eq!(
            s.next_after(Timestamp::from_millis(90_000)),
            Some(Timestamp::from_millis(180_000))
        );
        let (newest, count) = s.due(t, Timestamp::from_millis(450_000), 2);
        assert_eq!(count, 5);
        assert_eq!(
            newest,
            vec![
                Timestamp::from_millis(360_000),
                Timestamp::from_millis(450_000)
            ]
        );
    }

    #[test]
    fn bad_definitions_say_what_is_wrong() {
        let err = Schedule::cron("x", "61 * * * *").unwrap_err().to_string();
        assert!(
            err.contains("schedule `x`") && err.contains("61 * * * *"),
            "{err}"
        );
        let err = Schedule::cron("x", "0 3 * * *")
            .unwrap()
            .in_zone("Mars/Olympus")
            .unwrap_err()
            .to_string();
        assert!(err.contains("unknown time zone `Mars/Olympus`"), "{err}");
        let err = Schedule::every("x", Duration::from_millis(500))
            .unwrap_err()
            .to_string();
        assert!(err.contains("at least one second"), "{err}");
        assert!(Schedule::every("x", Duration::from_secs(5))
            .unwrap()
            .in_zone("UTC")
            .is_err());
        assert!(Schedule::cron(" ", "* * * * *").is_err());
        let err = Schedule::cron("x", "* * * * *")
            .unwrap()
            .options(JobOptions::new().idempotency_key("k"))
            .validate()
            .unwrap_err()
            .to_string();
        assert!(err.contains("idempotency key"), "{err}");
        assert!(Schedule::cron("x", "* * * * *")
            .unwrap()
            .missed(Missed::RunAll { max: 0 })
            .validate()
            .is_err());
    }

    #[test]
    fn a_fixed_time_job_runs_once_on_both_dst_nights() {
        let s = Schedule::cron("nightly", "30 2 * * *")
            .unwrap()
            .in_zone("Europe/Stockholm")
            .unwrap();
        // Spring forward, 2026-03-29: 02:00 CET → 03:00 CEST; 02:30 does not exist. Vixie
        // cron runs it at the first valid time after the gap, 03:00 CEST = 01:00 UTC.
        assert_eq!(
            slots(&s, "2026-03-28T12:00:00Z", "2026-03-29T12:00:00Z"),
            vec![at("2026-03-29T01:00:00Z")]
        );
        // Fall back, 2026-10-25: 03:00 CEST → 02:00 CET; 02:30 happens twice. Once, at the
        // first: 02:30 CEST = 00:30 UTC.
        assert_eq!(
            slots(&s, "2026-10-24T12:00:00Z", "2026-10-25T12:00:00Z"),
            vec![at("2026-10-25T00:30:00Z")]
        );
        // A day either side: once a day, at 02:30 local.
        assert_eq!(
            slots(&s, "2026-10-25T12:00:00Z", "2026-10-26T12:00:00Z"),
            vec![at("2026-10-26T01:30:00Z")]
        );
    }

    #[test]
    fn an_interval_job_runs_in_both_copies_of_the_repeated_hour_and_skips_the_gap() {
        let s = Schedule::cron("quarter", "*/30 * * * *")
            .unwrap()
            .in_zone("Europe/Stockholm")
            .unwrap();
        // Fall back: local 02:00–03:00 happens twice (00:00–01:00 and 01:00–02:00 UTC):
        // four runs in it.
        assert_eq!(
            slots(&s, "2026-10-24T23:59:00Z", "2026-10-25T01:59:00Z"),
            vec![
                at("2026-10-25T00:00:00Z"),
                at("2026-10-25T00:30:00Z"),
                at("2026-10-25T01:00:00Z"),
                at("2026-10-25T01:30:00Z"),
            ]
        );
        // Spring forward: 01:30 CET, then 03:00 CEST (no 02:xx).
        assert_eq!(
            slots(&s, "2026-03-29T00:15:00Z", "2026-03-29T01:15:00Z"),
            vec![at("2026-03-29T00:30:00Z"), at("2026-03-29T01:00:00Z")]
        );
    }

    #[test]
    fn utc_is_the_default_zone() {
        let s = Schedule::cron("n", "0 3 * * *").unwrap();
        assert_eq!(
            s.next_after(at("2026-06-01T00:00:00Z")),
            Some(at("2026-06-01T03:00:00Z"))
        );
        assert!(s.to_string().contains("in UTC"), "{s}");
    }

    fn every_minute() -> Schedule {
        Schedule::cron("m", "* * * * *").unwrap()
    }

    #[test]
    fn nothing_due_no_plan_and_one_due_slot_runs() {
        let s = every_minute();
        assert_eq!(
            s.plan(at("2026-01-01T10:00:00Z"), at("2026-01-01T10:00:59Z")),
            None
        );
        let plan = s
            .plan(at("2026-01-01T10:00:00Z"), at("2026-01-01T10:01:00Z"))
            .unwrap();
        assert_eq!(plan.through, at("2026-01-01T10:01:00Z"));
        assert_eq!(plan.missed, 0);
        assert_eq!(plan.runs.len(), 1);
        assert!(!plan.runs[0].backfilled);
    }

    #[test]
    fn downtime_under_each_missed_policy() {
        // Down from 10:00 to 10:05:30: five slots (10:01 … 10:05) fell meanwhile.
        let (anchor, now) = (at("2026-01-01T10:00:00Z"), at("2026-01-01T10:05:30Z"));
        let run_once = every_minute().plan(anchor, now).unwrap();
        assert_eq!(run_once.through, at("2026-01-01T10:05:00Z"));
        assert_eq!(
            run_once.runs.iter().map(|s| s.at).collect::<Vec<_>>(),
            vec![at("2026-01-01T10:05:00Z")]
        );
        assert_eq!(run_once.missed, 4);

        // Skip: the newest is 30 s late, within the threshold: it runs.
        let skip = every_minute()
            .missed(Missed::Skip)
            .plan(anchor, now)
            .unwrap();
        assert_eq!(skip.runs.len(), 1);
        assert_eq!(skip.missed, 4);
        // … and not when it is more than a minute late.
        let skip = Schedule::cron("m5", "*/5 * * * *")
            .unwrap()
            .missed(Missed::Skip)
            .plan(anchor, at("2026-01-01T10:06:30Z"))
            .unwrap();
        assert_eq!(skip.runs, vec![]);
        assert_eq!((skip.through, skip.missed), (at("2026-01-01T10:05:00Z"), 1));

        let all = every_minute()
            .missed(Missed::RunAll { max: 3 })
            .plan(anchor, now)
            .unwrap();
        assert_eq!(
            all.runs
                .iter()
                .map(|s| (s.at, s.backfilled))
                .collect::<Vec<_>>(),
            vec![
                (at("2026-01-01T10:03:00Z"), true),
                (at("2026-01-01T10:04:00Z"), true),
                (at("2026-01-01T10:05:00Z"), false),
            ]
        );
        assert_eq!(all.missed, 2);

        // With no overlap allowed, backfilled slots would overlap: only the newest runs.
        let forbid = every_minute()
            .missed(Missed::RunAll { max: 3 })
            .overlap(Overlap::Forbid)
            .plan(anchor, now)
            .unwrap();
        assert_eq!(forbid.runs.len(), 1);
        assert_eq!(forbid.missed, 4);
    }

    #[test]
    fn a_starting_deadline_counts_late_slots_missed() {
        // Kubernetes' example: down 08:29 → 10:21:30 with a 200 s deadline; RunAll sees
        // 10:19, 10:20 and 10:21 within it.
        let s = every_minute()
            .missed(Missed::RunAll { max: 100 })
            .starting_deadline(Duration::from_secs(200));
        let plan = s
            .plan(at("2026-01-01T08:29:00Z"), at("2026-01-01T10:21:30Z"))
            .unwrap();
        assert_eq!(
            plan.runs.iter().map(|s| s.at).collect::<Vec<_>>(),
            vec![
                at("2026-01-01T10:19:00Z"),
                at("2026-01-01T10:20:00Z"),
                at("2026-01-01T10:21:00Z"),
            ]
        );
        assert_eq!(plan.missed, 112 - 3);
        // RunOnce with the deadline passed: nothing runs, the marker still moves.
        let plan = every_minute()
            .starting_deadline(Duration::from_secs(10))
            .plan(at("2026-01-01T08:28:00Z"), at("2026-01-01T08:30:30Z"))
            .unwrap();
        assert_eq!((plan.runs.len(), plan.missed), (0, 2));
    }

    #[test]
    fn a_very_long_downtime_is_bounded_and_still_finds_the_newest_slots() {
        // Every second for a year: counting stops at the cap, the newest slots are exact.
        let s = Schedule::cron("s", "* * * * * *")
            .unwrap()
            .missed(Missed::RunAll { max: 2 });
        let plan = s
            .plan(at("2025-01-01T00:00:00Z"), at("2026-01-01T00:00:00.500Z"))
            .unwrap();
        assert_eq!(
            plan.runs.iter().map(|s| s.at).collect::<Vec<_>>(),
            vec![at("2025-12-31T23:59:59Z"), at("2026-01-01T00:00:00Z")]
        );
        assert!(plan.missed >= COUNT_CAP - 2, "{}", plan.missed);
    }

    #[test]
    fn a_firing_moves_the_marker_only_from_where_it_was_planned() {
        use crate::jobs::{Firing, JobState};
        let firing = |overlap, runs: usize| Firing {
            schedule: "s".into(),
            expected: Some(Timestamp::from_millis(60_000)),
            through: Timestamp::from_millis(120_000),
            runs: (0..runs)
                .map(|_| {
                    let job = crate::jobs::NewJob {
                        name: "j".into(),
                        version: 1,
                        payload: "null".into(),
                        options: JobOptions::new(),
                    };
                    (Timestamp::from_millis(120_000), job)
                })
                .collect(),
            missed: 0,
            overlap,
            next_slot: None,
        };
        let at = |ms| Some(Timestamp::from_millis(ms));
        assert_eq!(
            firing_step(&firing(Overlap::Allow, 1), at(120_000), None),
            FiringStep::Moved {
                last_slot: at(120_000)
            }
        );
        let fire = |cancel_previous, insert, held_back| FiringStep::Fire {
            cancel_previous,
            insert,
            held_back,
        };
        let running = Some(JobState::Executing);
        assert_eq!(
            firing_step(&firing(Overlap::Allow, 1), at(60_000), running),
            fire(false, true, 0)
        );
        assert_eq!(
            firing_step(&firing(Overlap::Forbid, 1), at(60_000), running),
            fire(false, false, 1)
        );
        assert_eq!(
            firing_step(
                &firing(Overlap::Forbid, 1),
                at(60_000),
                Some(JobState::Completed)
            ),
            fire(false, true, 0)
        );
        assert_eq!(
            firing_step(&firing(Overlap::Forbid, 1), at(60_000), None),
            fire(false, true, 0)
        );
        assert_eq!(
            firing_step(&firing(Overlap::Replace, 1), at(60_000), running),
            fire(true, true, 0)
        );
    }

    #[test]
    fn the_overlap_rule() {
        assert_eq!(overlap_step(Overlap::Forbid, false), OverlapStep::Run);
        assert_eq!(overlap_step(Overlap::Allow, true), OverlapStep::Run);
        assert_eq!(overlap_step(Overlap::Forbid, true), OverlapStep::HoldBack);
        assert_eq!(
            overlap_step(Overlap::Replace, true),
            OverlapStep::ReplaceThenRun
        );
    }

    #[test]
    fn jitter_is_fixed_per_name_and_within_bounds() {
        let s = every_minute().jitter(Duration::from_secs(30));
        let offset = s.jitter_offset();
        assert!(offset < Duration::from_secs(30));
        assert_eq!(offset, s.clone().jitter_offset());
        let options = s.slot_options(at("2026-01-01T10:00:00Z"));
        assert_eq!(
            options.not_before,
            Some(at("2026-01-01T10:00:00Z").after(offset))
        );
        assert_eq!(
            options.idempotency_key.as_deref(),
            Some(format!("schedule:m:{}", at("2026-01-01T10:00:00Z").as_millis()).as_str())
        );
        assert_eq!(every_minute().jitter_offset(), Duration::ZERO);
    }
}
