//! Recurring schedules through a runner: one job per slot, daylight-saving nights, downtime
//! under each missed-slot policy, overlap, jitter, several runners on one store. On an
//! in-memory store and tokio's paused clock, started at the dates each case needs
//! (`TokioClock::starting_at`), except the two-file case, which runs on real time.
//!
//! A test that sleeps here advances the scenario's virtual clock (the time of day is the
//! input under test); what it asserts it receives from the handler, each wait bounded.

#![cfg(feature = "sqlite")]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::DateTime;
use ractor_otp::jobs::{
    Job, JobContext, JobOptions, JobState, Jobs, JobsError, ListFilter, Missed, Overlap,
    RunnerBuilder, Schedule, Slot, SqliteStore, Timestamp, TokioClock,
};
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, Semaphore};

/// Every wait on a signal is bounded by this (virtual time under the paused clock).
const WAIT: Duration = Duration::from_secs(600);
/// The bound of the real-time case.
const REAL_WAIT: Duration = Duration::from_secs(20);

fn at(rfc3339: &str) -> Timestamp {
    let t = DateTime::parse_from_rfc3339(rfc3339).expect("a valid test time");
    Timestamp::from_millis(t.timestamp_millis())
}

/// A queue on an in-memory store whose clock starts at `start`.
fn queue_at(start: &str) -> Jobs {
    Jobs::with_clock(
        SqliteStore::in_memory().expect("in-memory store"),
        TokioClock::starting_at(at(start)),
    )
}

/// Advances the scenario's clock to `when`.
async fn until(jobs: &Jobs, when: &str) {
    tokio::time::sleep(at(when).since(jobs.now())).await;
}

/// A schedule's job: which schedule, which slot.
#[derive(Serialize, Deserialize, Clone, Debug)]
struct Tick {
    schedule: String,
    at: i64,
    backfilled: bool,
}

impl Job for Tick {
    const NAME: &'static str = "tick";
    type Output = ();
}

fn tick(slot: &Slot) -> Tick {
    Tick {
        schedule: slot.schedule.clone(),
        at: slot.at.as_millis(),
        backfilled: slot.backfilled,
    }
}

/// A run the handler saw.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Ran {
    schedule: String,
    slot: Timestamp,
    backfilled: bool,
    started: Timestamp,
}

/// A runner whose `Tick` handler reports each run, then waits for a permit from `gate` (when
/// given) before it completes.
fn ticking(
    jobs: &Jobs,
    gate: Option<Arc<Semaphore>>,
) -> (RunnerBuilder, mpsc::UnboundedReceiver<Ran>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let clock = jobs.clone();
    let builder = jobs.runner().handler(move |job: Tick, _ctx: JobContext| {
        let (tx, gate) = (tx.clone(), gate.clone());
        let started = clock.now();
        async move {
            let _ = tx.send(Ran {
                schedule: job.schedule,
                slot: Timestamp::from_millis(job.at),
                backfilled: job.backfilled,
                started,
            });
            if let Some(gate) = gate {
                gate.acquire().await.expect("gate").forget();
            }
            Ok(())
        }
    });
    (builder, rx)
}

async fn recv(rx: &mut mpsc::UnboundedReceiver<Ran>) -> Ran {
    tokio::time::timeout(WAIT, rx.recv())
        .await
        .expect("timed out waiting for a run")
        .expect("run channel closed")
}

/// Receives `n` runs, sorted by schedule and slot.
async fn recv_n(rx: &mut mpsc::UnboundedReceiver<Ran>, n: usize) -> Vec<Ran> {
    let mut runs = Vec::with_capacity(n);
    for _ in 0..n {
        runs.push(recv(rx).await);
    }
    runs.sort();
    runs
}

fn slots(runs: &[Ran], schedule: &str) -> Vec<Timestamp> {
    runs.iter()
        .filter(|r| r.schedule == schedule)
        .map(|r| r.slot)
        .collect()
}

async fn record(jobs: &Jobs, name: &str) -> ractor_otp::jobs::ScheduleRecord {
    jobs.schedules()
        .await
        .unwrap()
        .into_iter()
        .find(|r| r.name == name)
        .unwrap_or_else(|| panic!("schedule `{name}` is not in the store"))
}

#[tokio::test(start_paused = true)]
async fn an_interval_schedule_runs_one_job_per_slot_on_time() {
    let jobs = queue_at("2026-01-01T10:00:30Z");
    let (builder, mut runs) = ticking(&jobs, None);
    let every = Schedule::every("tick", Duration::from_secs(60)).unwrap();
    let runner = builder.schedule(every, tick).spawn().await.unwrap();
    for minute in ["10:01", "10:02", "10:03"] {
        let run = recv(&mut runs).await;
        let slot = at(&format!("2026-01-01T{minute}:00Z"));
        assert_eq!((run.slot, run.backfilled), (slot, false));
        assert!(
            run.started.since(slot) < Duration::from_millis(50),
            "started {:?} after its slot",
            run.started.since(slot)
        );
    }
    runner.shutdown(WAIT).await.unwrap();
    let r = record(&jobs, "tick").await;
    assert_eq!((r.fired, r.missed), (3, 0));
    assert_eq!(r.last_slot, Some(at("2026-01-01T10:03:00Z")));
    assert_eq!(r.next_slot, Some(at("2026-01-01T10:04:00Z")));
    assert_eq!(r.spec, "every 60s");
    assert_eq!(r.declared_at, at("2026-01-01T10:00:30Z"));
    assert_eq!(runner.stats().slots_fired, 3);
    let job = jobs.get(r.last_job.unwrap()).await.unwrap().unwrap();
    assert_eq!(job.state, JobState::Completed);
    assert!(runs.try_recv().is_err(), "a slot ran twice");
}

/// Two schedules in Europe/Stockholm: a fixed-time one at 02:30 (`fixed`) and a half-hourly
/// one (`half-hourly`).
fn stockholm_night(builder: RunnerBuilder) -> RunnerBuilder {
    let stockholm = |name: &str, expr: &str| {
        Schedule::cron(name, expr)
            .unwrap()
            .in_zone("Europe/Stockholm")
            .unwrap()
    };
    builder
        .schedule(stockholm("fixed", "30 2 * * *"), tick)
        .schedule(stockholm("half-hourly", "*/30 * * * *"), tick)
}

/// Europe/Stockholm, fall back (2026-10-25: 03:00 CEST → 02:00 CET): `30 2 * * *` runs once,
/// at the first 02:30; `*/30 * * * *` runs at every wall-clock match, both 02:00s and 02:30s.
#[tokio::test(start_paused = true)]
async fn on_the_fall_back_night_a_fixed_time_job_runs_once_and_a_half_hourly_one_follows_the_clock()
{
    // 00:00 CEST.
    let jobs = queue_at("2026-10-24T22:00:00Z");
    let (builder, mut runs) = ticking(&jobs, None);
    let runner = stockholm_night(builder).spawn().await.unwrap();
    // Until 04:00 CET.
    until(&jobs, "2026-10-25T03:00:00.500Z").await;
    let all = recv_n(&mut runs, 11).await;
    assert_eq!(slots(&all, "fixed"), vec![at("2026-10-25T00:30:00Z")]);
    assert_eq!(
        slots(&all, "half-hourly"),
        [
            "2026-10-24T22:30:00Z", // 00:30 CEST
            "2026-10-24T23:00:00Z",
            "2026-10-24T23:30:00Z",
            "2026-10-25T00:00:00Z", // 02:00 CEST
            "2026-10-25T00:30:00Z", // 02:30 CEST
            "2026-10-25T01:00:00Z", // 02:00 CET, the repeated hour
            "2026-10-25T01:30:00Z", // 02:30 CET
            "2026-10-25T02:00:00Z",
            "2026-10-25T02:30:00Z",
            "2026-10-25T03:00:00Z", // 04:00 CET
        ]
        .map(at)
    );
    runner.shutdown(WAIT).await.unwrap();
    assert_eq!(record(&jobs, "fixed").await.fired, 1);
    assert_eq!(record(&jobs, "half-hourly").await.fired, 10);
}

/// Europe/Stockholm, spring forward (2026-03-29: 02:00 CET → 03:00 CEST): `30 2 * * *` runs
/// once, at the first valid time after the gap (03:00 CEST); `*/30` has no 02:xx.
#[tokio::test(start_paused = true)]
async fn on_the_spring_forward_night_the_skipped_hour_runs_once_after_the_gap() {
    // 00:00 CET.
    let jobs = queue_at("2026-03-28T23:00:00Z");
    let (builder, mut runs) = ticking(&jobs, None);
    let runner = stockholm_night(builder).spawn().await.unwrap();
    // Until 04:00 CEST.
    until(&jobs, "2026-03-29T02:00:00.500Z").await;
    let all = recv_n(&mut runs, 7).await;
    assert_eq!(slots(&all, "fixed"), vec![at("2026-03-29T01:00:00Z")]);
    assert_eq!(
        slots(&all, "half-hourly"),
        [
            "2026-03-28T23:30:00Z", // 00:30 CET
            "2026-03-29T00:00:00Z",
            "2026-03-29T00:30:00Z", // 01:30 CET
            "2026-03-29T01:00:00Z", // 03:00 CEST
            "2026-03-29T01:30:00Z",
            "2026-03-29T02:00:00Z", // 04:00 CEST
        ]
        .map(at)
    );
    runner.shutdown(WAIT).await.unwrap();
    assert_eq!(record(&jobs, "fixed").await.fired, 1);
}

/// Four schedules, one per missed-slot policy, run for two minutes, stop for seven and a half,
/// then start again.
#[tokio::test(start_paused = true)]
async fn downtime_under_each_missed_policy() {
    let jobs = queue_at("2026-01-01T10:00:00.500Z");
    let minute = Duration::from_secs(60);
    let schedules = || {
        vec![
            Schedule::every("once", minute).unwrap(),
            Schedule::every("skip", 2 * minute)
                .unwrap()
                .missed(Missed::Skip),
            Schedule::every("all", minute)
                .unwrap()
                .missed(Missed::RunAll { max: 3 }),
            Schedule::every("deadline", minute)
                .unwrap()
                .starting_deadline(Duration::from_secs(20)),
        ]
    };
    let start = |jobs: &Jobs| {
        let (builder, runs) = ticking(jobs, None);
        let builder = schedules()
            .into_iter()
            .fold(builder, |b, s| b.schedule(s, tick));
        (builder, runs)
    };

    let (builder, mut runs) = start(&jobs);
    let runner = builder.spawn().await.unwrap();
    until(&jobs, "2026-01-01T10:02:00.500Z").await;
    // 10:01 and 10:02 of the three minutely ones, 10:02 of the two-minutely one.
    let before = recv_n(&mut runs, 7).await;
    assert_eq!(slots(&before, "skip"), vec![at("2026-01-01T10:02:00Z")]);
    runner.shutdown(WAIT).await.unwrap();

    // Down until 10:09:30.5.
    until(&jobs, "2026-01-01T10:09:30.500Z").await;
    let (builder, mut runs) = start(&jobs);
    let runner = builder.spawn().await.unwrap();
    // At once: `once` runs 10:09 (6 missed), `all` runs 10:07–10:09 (4 missed); `skip`'s
    // newest slot (10:08) is 90 s late and `deadline`'s (10:09) 30 s: neither runs.
    let caught_up = recv_n(&mut runs, 4).await;
    assert!(caught_up
        .iter()
        .all(|r| r.started == at("2026-01-01T10:09:30.500Z")));
    assert_eq!(slots(&caught_up, "once"), vec![at("2026-01-01T10:09:00Z")]);
    assert_eq!(
        caught_up
            .iter()
            .filter(|r| r.schedule == "all")
            .map(|r| (r.slot, r.backfilled))
            .collect::<Vec<_>>(),
        vec![
            (at("2026-01-01T10:07:00Z"), true),
            (at("2026-01-01T10:08:00Z"), true),
            (at("2026-01-01T10:09:00Z"), false),
        ]
    );
    // Then every schedule is back on time at 10:10.
    let on_time = recv_n(&mut runs, 4).await;
    assert!(on_time
        .iter()
        .all(|r| r.slot == at("2026-01-01T10:10:00Z") && !r.backfilled));
    runner.shutdown(WAIT).await.unwrap();

    let counters = |r: ractor_otp::jobs::ScheduleRecord| (r.fired, r.missed);
    assert_eq!(counters(record(&jobs, "once").await), (4, 6));
    assert_eq!(counters(record(&jobs, "skip").await), (2, 3));
    assert_eq!(counters(record(&jobs, "all").await), (6, 4));
    assert_eq!(counters(record(&jobs, "deadline").await), (3, 7));
    assert_eq!(runner.stats().slots_missed, 6 + 3 + 4 + 7);
}

#[tokio::test(start_paused = true)]
async fn overlap_forbid_skips_slots_while_the_last_job_runs() {
    let jobs = queue_at("2026-01-01T10:00:30Z");
    let gate = Arc::new(Semaphore::new(0));
    let (builder, mut runs) = ticking(&jobs, Some(gate.clone()));
    let schedule = Schedule::every("report", Duration::from_secs(60))
        .unwrap()
        .overlap(Overlap::Forbid);
    let runner = builder.schedule(schedule, tick).spawn().await.unwrap();
    assert_eq!(recv(&mut runs).await.slot, at("2026-01-01T10:01:00Z"));
    // 10:02 and 10:03 come while it runs: held back.
    until(&jobs, "2026-01-01T10:03:30Z").await;
    assert_eq!(record(&jobs, "report").await.missed, 2);
    gate.add_permits(1);
    // 10:04 runs: the last job has finished.
    assert_eq!(recv(&mut runs).await.slot, at("2026-01-01T10:04:00Z"));
    gate.add_permits(1);
    runner.shutdown(WAIT).await.unwrap();
    let r = record(&jobs, "report").await;
    assert_eq!((r.fired, r.missed), (2, 2));
    assert!(runs.try_recv().is_err());
}

#[tokio::test(start_paused = true)]
async fn overlap_replace_cancels_the_running_job_and_runs_the_new_slot() {
    let jobs = queue_at("2026-01-01T10:00:30Z");
    let gate = Arc::new(Semaphore::new(0));
    let (builder, mut runs) = ticking(&jobs, Some(gate.clone()));
    let schedule = Schedule::every("sync", Duration::from_secs(60))
        .unwrap()
        .overlap(Overlap::Replace);
    let runner = builder.schedule(schedule, tick).spawn().await.unwrap();
    assert_eq!(recv(&mut runs).await.slot, at("2026-01-01T10:01:00Z"));
    let first = record(&jobs, "sync").await.last_job.unwrap();
    // 10:02 replaces it: the first job is cancelled (its run's result will be refused).
    assert_eq!(recv(&mut runs).await.slot, at("2026-01-01T10:02:00Z"));
    let first = jobs.get(first).await.unwrap().unwrap();
    assert_eq!(first.state, JobState::Cancelled);
    gate.add_permits(2);
    runner.shutdown(WAIT).await.unwrap();
    let r = record(&jobs, "sync").await;
    assert_eq!((r.fired, r.missed), (2, 0));
    let second = jobs.get(r.last_job.unwrap()).await.unwrap().unwrap();
    assert_eq!(second.state, JobState::Completed);
}

#[tokio::test(start_paused = true)]
async fn jitter_delays_every_slot_by_one_fixed_offset() {
    let jobs = queue_at("2026-01-01T10:00:30Z");
    let (builder, mut runs) = ticking(&jobs, None);
    let schedule = Schedule::every("spread", Duration::from_secs(60))
        .unwrap()
        .jitter(Duration::from_secs(30));
    let runner = builder.schedule(schedule, tick).spawn().await.unwrap();
    let first = recv(&mut runs).await;
    let second = recv(&mut runs).await;
    let offset = first.started.since(first.slot);
    assert!(offset < Duration::from_secs(30), "{offset:?}");
    assert_eq!(second.started.since(second.slot), offset);
    runner.shutdown(WAIT).await.unwrap();
}

/// Two runners on one store, both declaring the schedule: each slot is enqueued once.
#[tokio::test(start_paused = true)]
async fn two_runners_declaring_one_schedule_fire_each_slot_once() {
    let jobs = queue_at("2026-01-01T10:00:30Z");
    let (a, mut runs) = ticking(&jobs, None);
    let b = a.clone();
    let schedule = || Schedule::every("tick", Duration::from_secs(60)).unwrap();
    let a = a.schedule(schedule(), tick).spawn().await.unwrap();
    let b = b.schedule(schedule(), tick).spawn().await.unwrap();
    until(&jobs, "2026-01-01T10:10:30Z").await;
    let all = recv_n(&mut runs, 10).await;
    let expected: Vec<Timestamp> = (1..=10)
        .map(|m| at(&format!("2026-01-01T10:{m:02}:00Z")))
        .collect();
    assert_eq!(slots(&all, "tick"), expected);
    a.shutdown(WAIT).await.unwrap();
    b.shutdown(WAIT).await.unwrap();
    assert_eq!(a.stats().slots_fired + b.stats().slots_fired, 10);
    assert_eq!(record(&jobs, "tick").await.fired, 10);
    let jobs_made = jobs
        .list(ListFilter {
            name: Some("tick".into()),
            ..ListFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(jobs_made.len(), 10);
    assert!(runs.try_recv().is_err());
}

/// A runner started again without one of its schedules: that one stops firing; its record
/// stays with its last slot.
#[tokio::test(start_paused = true)]
async fn a_schedule_no_runner_declares_stops_firing() {
    let jobs = queue_at("2026-01-01T10:00:30Z");
    let (builder, mut runs) = ticking(&jobs, None);
    let minute = Duration::from_secs(60);
    let runner = builder
        .schedule(Schedule::every("kept", minute).unwrap(), tick)
        .schedule(Schedule::every("removed", minute).unwrap(), tick)
        .spawn()
        .await
        .unwrap();
    assert_eq!(recv_n(&mut runs, 2).await.len(), 2);
    runner.shutdown(WAIT).await.unwrap();

    let (builder, mut runs) = ticking(&jobs, None);
    let runner = builder
        .schedule(Schedule::every("kept", minute).unwrap(), tick)
        .spawn()
        .await
        .unwrap();
    until(&jobs, "2026-01-01T10:05:30Z").await;
    let after = recv_n(&mut runs, 4).await;
    assert!(after.iter().all(|r| r.schedule == "kept"), "{after:?}");
    runner.shutdown(WAIT).await.unwrap();
    let removed = record(&jobs, "removed").await;
    assert_eq!(removed.fired, 1);
    assert_eq!(removed.last_slot, Some(at("2026-01-01T10:01:00Z")));
    assert!(runs.try_recv().is_err());
}

#[tokio::test]
async fn bad_schedules_are_refused_when_the_runner_starts() {
    let jobs = Jobs::new(SqliteStore::in_memory().unwrap());
    let every = || Schedule::every("dup", Duration::from_secs(60)).unwrap();
    let (builder, _runs) = ticking(&jobs, None);
    let err = builder
        .clone()
        .schedule(every(), tick)
        .schedule(every(), tick)
        .spawn()
        .await
        .unwrap_err();
    assert!(
        matches!(&err, JobsError::InvalidSchedule { name, .. } if name == "dup"),
        "{err}"
    );
    let err = builder
        .schedule(
            every().options(JobOptions::new().idempotency_key("mine")),
            tick,
        )
        .spawn()
        .await
        .unwrap_err();
    assert!(err.to_string().contains("idempotency key"), "{err}");
}

/// Two stores on one SQLite file (as two processes would open it), each with a runner that
/// declares the schedule: each slot is enqueued once. Real time, every second.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_stores_on_one_sqlite_file_fire_each_slot_once() {
    let dir = std::env::temp_dir().join(format!(
        "ractor-otp-schedules-{}-{}",
        std::process::id(),
        fastrand_suffix()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let db = dir.join("jobs.sqlite3");
    let one = Jobs::new(SqliteStore::open(&db).await.unwrap());
    let two = Jobs::new(SqliteStore::open(&db).await.unwrap());
    let (a, mut runs_a) = ticking(&one, None);
    let (b, mut runs_b) = ticking(&two, None);
    let schedule = || Schedule::every("second", Duration::from_secs(1)).unwrap();
    let a = a.schedule(schedule(), tick).spawn().await.unwrap();
    let b = b.schedule(schedule(), tick).spawn().await.unwrap();
    // Wait for four slots' runs, on either side.
    let mut seen: BTreeMap<Timestamp, u32> = BTreeMap::new();
    let deadline = tokio::time::Instant::now() + REAL_WAIT;
    while seen.len() < 4 {
        let run = tokio::select! {
            run = runs_a.recv() => run,
            run = runs_b.recv() => run,
            _ = tokio::time::sleep_until(deadline) => panic!("four slots did not run within {REAL_WAIT:?}: {seen:?}"),
        };
        *seen.entry(run.expect("runs").slot).or_default() += 1;
    }
    a.shutdown(REAL_WAIT).await.unwrap();
    b.shutdown(REAL_WAIT).await.unwrap();
    let r = record(&one, "second").await;
    let made = one
        .list(ListFilter {
            name: Some("tick".into()),
            ..ListFilter::default()
        })
        .await
        .unwrap();
    // Each slot was fired once (a second firing would count twice on one job's key).
    assert_eq!(r.fired, made.len() as u64);
    assert_eq!(a.stats().slots_fired + b.stats().slots_fired, r.fired);
    assert!(seen.values().all(|n| *n == 1), "a slot ran twice: {seen:?}");
    drop((one, two));
    let _ = std::fs::remove_dir_all(&dir);
}

fn fastrand_suffix() -> u64 {
    use std::time::{SystemTime, UNIX_EPOCH};
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos() as u64)
        .unwrap_or(0)
}

/// A job-making function that panics at one slot: that slot is missed, the schedule goes on.
#[tokio::test(start_paused = true)]
async fn a_panicking_job_maker_misses_its_slot_and_the_schedule_goes_on() {
    let jobs = queue_at("2026-01-01T10:00:30Z");
    let (builder, mut runs) = ticking(&jobs, None);
    let every = Schedule::every("fragile", Duration::from_secs(60)).unwrap();
    let runner = builder
        .schedule(every, |slot: &Slot| {
            if slot.at.as_millis() % (120 * 1000) == 0 {
                panic!("cannot make the job of an even minute");
            }
            tick(slot)
        })
        .spawn()
        .await
        .unwrap();
    // 10:01 runs, 10:02 panics (missed), 10:03 runs.
    assert_eq!(recv(&mut runs).await.slot, at("2026-01-01T10:01:00Z"));
    assert_eq!(recv(&mut runs).await.slot, at("2026-01-01T10:03:00Z"));
    runner.shutdown(WAIT).await.unwrap();
    let r = record(&jobs, "fragile").await;
    assert_eq!((r.fired, r.missed), (2, 1));
}
