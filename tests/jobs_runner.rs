//! The job runner: claims, retries, schedules, timeouts, leases, breakers, shutdown, fan-in,
//! follow-ups and parking, on an in-memory store and tokio's paused clock (the queue's clock
//! is a `TokioClock`, so store time and tokio time are one).

#![cfg(feature = "sqlite")]

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ractor_otp::jobs::{
    Group, Job, JobContext, JobError, JobOptions, JobState, Jobs, ListFilter, RetryBackoff,
    SqliteStore, Timestamp, TokioClock,
};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

/// Every wait in a test is bounded by this (virtual time under the paused clock).
const WAIT: Duration = Duration::from_secs(600);
/// The bound for the tests that run on real time (a bug fails them in seconds, not minutes).
const REAL_WAIT: Duration = Duration::from_secs(20);

fn queue() -> Jobs {
    Jobs::with_clock(
        SqliteStore::in_memory().expect("in-memory store"),
        TokioClock::new(),
    )
}

async fn recv<T>(rx: &mut mpsc::UnboundedReceiver<T>) -> T {
    recv_within(WAIT, rx).await
}

async fn recv_within<T>(bound: Duration, rx: &mut mpsc::UnboundedReceiver<T>) -> T {
    tokio::time::timeout(bound, rx.recv())
        .await
        .expect("timed out waiting for a signal")
        .expect("signal channel closed")
}

/// A job that reports each run (its number, the attempt, the queue's time) and then does what
/// the test's script says for that attempt.
#[derive(Serialize, Deserialize, Clone, Debug)]
struct Step {
    n: u32,
}

impl Job for Step {
    const NAME: &'static str = "step";
    type Output = u32;
}

#[derive(Clone, Copy, Debug)]
enum Act {
    Ok,
    Fail,
    Hang,
    Park,
    Snooze(u64),
}

#[derive(Debug, Clone, PartialEq)]
struct Run {
    n: u32,
    attempt: u32,
    at: Timestamp,
}

/// Wires a `Step` handler: `script(n, attempt)` says what a run does; each run is reported.
fn step_handler(
    jobs: &Jobs,
    script: impl Fn(u32, u32) -> Act + Send + Sync + 'static,
) -> (
    ractor_otp::jobs::RunnerBuilder,
    mpsc::UnboundedReceiver<Run>,
) {
    let (tx, rx) = mpsc::unbounded_channel();
    let clock = jobs.clone();
    let script = Arc::new(script);
    let builder = jobs.runner().handler(move |job: Step, ctx: JobContext| {
        let tx = tx.clone();
        let script = script.clone();
        let at = clock.now();
        async move {
            let _ = tx.send(Run {
                n: job.n,
                attempt: ctx.attempt(),
                at,
            });
            match script(job.n, ctx.attempt()) {
                Act::Ok => Ok(job.n * 10),
                Act::Fail => Err(JobError::retry(format!("step {} failed", job.n))),
                Act::Hang => std::future::pending().await,
                Act::Park => Err(JobError::park()),
                Act::Snooze(s) => Err(JobError::snooze(Duration::from_secs(s))),
            }
        }
    });
    (builder, rx)
}

#[tokio::test(start_paused = true)]
async fn a_job_runs_once_and_its_output_is_kept() {
    let jobs = queue();
    let (builder, mut runs) = step_handler(&jobs, |_, _| Act::Ok);
    let runner = builder.spawn().await.unwrap();
    let id = jobs.enqueue(Step { n: 4 }).await.unwrap().id;
    assert_eq!(jobs.wait_for::<Step>(id, WAIT).await.unwrap(), 40);
    assert_eq!(recv(&mut runs).await.attempt, 1);
    let record = jobs.get(id).await.unwrap().unwrap();
    assert_eq!(record.state, JobState::Completed);
    assert_eq!(record.result.as_deref(), Some("40"));
    let report = runner.shutdown(WAIT).await.unwrap();
    assert_eq!(report.released, 0);
    assert!(runs.try_recv().is_err(), "ran twice");
    assert_eq!(runner.stats().completed, 1);
}

#[tokio::test(start_paused = true)]
async fn failures_retry_after_exact_backoff_then_dead_letter_with_history() {
    let jobs = queue();
    let (builder, mut runs) = step_handler(&jobs, |_, _| Act::Fail);
    let runner = builder.spawn().await.unwrap();
    let options = JobOptions::new()
        .max_attempts(3)
        .backoff(RetryBackoff::exponential(
            Duration::from_secs(1),
            Duration::from_secs(60),
        ));
    let id = jobs.enqueue_with(Step { n: 1 }, options).await.unwrap().id;
    let first = recv(&mut runs).await;
    let second = recv(&mut runs).await;
    let third = recv(&mut runs).await;
    assert_eq!([first.attempt, second.attempt, third.attempt], [1, 2, 3]);
    assert_eq!(second.at.since(first.at), Duration::from_secs(1));
    assert_eq!(third.at.since(second.at), Duration::from_secs(2));
    let err = jobs.wait_for::<Step>(id, WAIT).await.unwrap_err();
    assert!(err.to_string().contains("discarded"), "{err}");
    let record = jobs.get(id).await.unwrap().unwrap();
    assert_eq!(record.state, JobState::Discarded);
    let history: Vec<(u32, &str)> = record
        .errors
        .iter()
        .map(|e| (e.attempt, e.error.as_str()))
        .collect();
    assert_eq!(
        history,
        [
            (1, "step 1 failed"),
            (2, "step 1 failed"),
            (3, "step 1 failed")
        ]
    );
    runner.shutdown(WAIT).await.unwrap();
    assert!(runs.try_recv().is_err(), "ran after its last attempt");
}

#[tokio::test(start_paused = true)]
async fn not_before_is_never_early_and_runs_exactly_then() {
    let jobs = queue();
    let (builder, mut runs) = step_handler(&jobs, |_, _| Act::Ok);
    let runner = builder.spawn().await.unwrap();
    let at = jobs.now().after(Duration::from_secs(300));
    let id = jobs
        .enqueue_with(Step { n: 1 }, JobOptions::new().not_before(at))
        .await
        .unwrap()
        .id;
    assert_eq!(
        jobs.get(id).await.unwrap().unwrap().state,
        JobState::Scheduled
    );
    let run = recv(&mut runs).await;
    assert_eq!(run.at, at);
    jobs.wait_for::<Step>(id, WAIT).await.unwrap();
    runner.shutdown(WAIT).await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_timeout_fails_the_attempt_and_frees_the_slot() {
    let jobs = queue();
    let (builder, mut runs) = step_handler(&jobs, |n, _| if n == 1 { Act::Hang } else { Act::Ok });
    let runner = builder.concurrency(1).spawn().await.unwrap();
    let slow = jobs
        .enqueue_with(
            Step { n: 1 },
            JobOptions::new()
                .timeout(Duration::from_secs(5))
                .max_attempts(1)
                .priority(1),
        )
        .await
        .unwrap()
        .id;
    let quick = jobs.enqueue(Step { n: 2 }).await.unwrap().id;
    let first = recv(&mut runs).await;
    let second = recv(&mut runs).await;
    assert_eq!((first.n, second.n), (1, 2));
    assert_eq!(second.at.since(first.at), Duration::from_secs(5));
    jobs.wait_for::<Step>(quick, WAIT).await.unwrap();
    let record = jobs.get(slow).await.unwrap().unwrap();
    assert_eq!(record.state, JobState::Discarded);
    assert_eq!(record.errors[0].error, "timed out after 5s");
    assert_eq!(runner.stats().timed_out, 1);
    runner.shutdown(WAIT).await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn heartbeats_keep_a_long_job_leased_past_its_lease_length() {
    let jobs = queue();
    let (tx, mut done) = mpsc::unbounded_channel();
    let runs = Arc::new(AtomicU32::new(0));
    let counted = runs.clone();
    let runner = jobs
        .runner()
        .lease(Duration::from_secs(10))
        .handler(move |job: Step, _ctx: JobContext| {
            let tx = tx.clone();
            let runs = counted.clone();
            async move {
                runs.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_secs(100)).await;
                let _ = tx.send(job.n);
                Ok(job.n)
            }
        })
        .spawn()
        .await
        .unwrap();
    // A second runner on the same store would take the job if the lease lapsed.
    let (other, mut other_runs) = step_handler(&jobs, |_, _| Act::Ok);
    let other = other.lease(Duration::from_secs(10)).spawn().await.unwrap();
    let id = jobs.enqueue(Step { n: 7 }).await.unwrap().id;
    assert_eq!(recv(&mut done).await, 7);
    assert_eq!(jobs.wait_for::<Step>(id, WAIT).await.unwrap(), 7);
    let record = jobs.get(id).await.unwrap().unwrap();
    assert_eq!(record.attempt, 1);
    assert!(record.errors.is_empty());
    other.shutdown(WAIT).await.unwrap();
    runner.shutdown(WAIT).await.unwrap();
    // Whichever runner claimed it, it ran exactly once.
    let total = runs.load(Ordering::SeqCst) as usize
        + std::iter::from_fn(|| other_runs.try_recv().ok()).count();
    assert_eq!(total, 1);
}

#[tokio::test(start_paused = true)]
async fn a_dead_runners_job_runs_again_after_its_lease_expires() {
    let jobs = queue();
    let (builder, mut runs) = step_handler(
        &jobs,
        |_, attempt| {
            if attempt == 1 {
                Act::Hang
            } else {
                Act::Ok
            }
        },
    );
    let doomed = builder
        .clone()
        .lease(Duration::from_secs(10))
        .spawn()
        .await
        .unwrap();
    let id = jobs.enqueue(Step { n: 3 }).await.unwrap().id;
    let first = recv(&mut runs).await;
    // Killed: no post_stop, no give-back; only the lease can free the job.
    doomed.get_cell().kill();
    let survivor = builder
        .lease(Duration::from_secs(10))
        .spawn()
        .await
        .unwrap();
    let second = recv(&mut runs).await;
    assert_eq!(second.attempt, 2);
    assert!(second.at.since(first.at) >= Duration::from_secs(10));
    assert_eq!(jobs.wait_for::<Step>(id, WAIT).await.unwrap(), 30);
    let record = jobs.get(id).await.unwrap().unwrap();
    assert!(
        record.errors[0].error.contains("lease"),
        "{:?}",
        record.errors
    );
    survivor.shutdown(WAIT).await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn the_circuit_breaker_holds_jobs_back_without_burning_attempts() {
    let jobs = queue();
    let healthy = Arc::new(Mutex::new(false));
    let flag = healthy.clone();
    let (builder, mut runs) = step_handler(&jobs, move |_, _| {
        if *flag.lock().unwrap() {
            Act::Ok
        } else {
            Act::Fail
        }
    });
    let runner = builder
        .concurrency(1)
        .circuit_breaker(2, Duration::from_secs(30))
        .spawn()
        .await
        .unwrap();
    let options = JobOptions::new()
        .max_attempts(10)
        .backoff(RetryBackoff::fixed(Duration::from_secs(3600)));
    let mut ids = Vec::new();
    for n in 0..5 {
        ids.push(
            jobs.enqueue_with(Step { n }, options.clone())
                .await
                .unwrap()
                .id,
        );
    }
    let a = recv(&mut runs).await;
    let b = recv(&mut runs).await;
    // Tripped after two failures: the next run is the probe, after the cooldown.
    *healthy.lock().unwrap() = true;
    let probe = recv(&mut runs).await;
    assert_eq!(probe.at.since(b.at), Duration::from_secs(30));
    for _ in 0..2 {
        recv(&mut runs).await;
    }
    for id in &ids[2..] {
        jobs.wait_for::<Step>(*id, WAIT).await.unwrap();
    }
    // The held-back jobs ran once each: no attempt was spent while the circuit was open.
    for id in &ids[2..] {
        assert_eq!(jobs.get(*id).await.unwrap().unwrap().attempt, 1);
    }
    assert_eq!((a.attempt, b.attempt), (1, 1));
    runner.shutdown(WAIT).await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn shutdown_drains_then_gives_back_unfinished_jobs_without_counting_them() {
    let jobs = queue();
    let (builder, mut runs) = step_handler(&jobs, |n, _| if n == 1 { Act::Hang } else { Act::Ok });
    let runner = builder.concurrency(2).spawn().await.unwrap();
    let hung = jobs.enqueue(Step { n: 1 }).await.unwrap().id;
    let quick = jobs.enqueue(Step { n: 2 }).await.unwrap().id;
    recv(&mut runs).await;
    recv(&mut runs).await;
    let report = runner.shutdown(Duration::from_secs(5)).await.unwrap();
    assert_eq!(report.released, 1);
    assert_eq!(
        jobs.get(quick).await.unwrap().unwrap().state,
        JobState::Completed
    );
    let record = jobs.get(hung).await.unwrap().unwrap();
    assert_eq!(record.state, JobState::Available);
    assert_eq!(record.attempt, 0);
}

/// A job that enqueues a follow-up, then succeeds or fails.
#[derive(Serialize, Deserialize)]
struct Chain {
    fail: bool,
}

impl Job for Chain {
    const NAME: &'static str = "chain";
    type Output = ();
}

#[tokio::test(start_paused = true)]
async fn follow_ups_are_enqueued_with_completion_only() {
    let jobs = queue();
    let (builder, mut runs) = step_handler(&jobs, |_, _| Act::Ok);
    let runner = builder
        .handler(|job: Chain, ctx: JobContext| async move {
            ctx.enqueue(Step {
                n: if job.fail { 99 } else { 5 },
            })?;
            if job.fail {
                Err(JobError::discard("no"))
            } else {
                Ok(())
            }
        })
        .spawn()
        .await
        .unwrap();
    let bad = jobs.enqueue(Chain { fail: true }).await.unwrap().id;
    let good = jobs.enqueue(Chain { fail: false }).await.unwrap().id;
    assert_eq!(recv(&mut runs).await.n, 5);
    jobs.wait_for::<Chain>(good, WAIT).await.unwrap();
    assert!(jobs.wait_for::<Chain>(bad, WAIT).await.is_err());
    let steps = jobs
        .list(ListFilter {
            name: Some("step".into()),
            ..ListFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(steps.len(), 1, "the failed job's follow-up must not exist");
    runner.shutdown(WAIT).await.unwrap();
}

/// Sums its children's outputs.
#[derive(Serialize, Deserialize)]
struct Sum;

impl Job for Sum {
    const NAME: &'static str = "sum";
    type Output = (u32, usize);
}

#[tokio::test(start_paused = true)]
async fn a_collector_runs_once_with_every_childs_outcome() {
    let jobs = queue();
    // Every third child fails its first attempt; child 7 never succeeds.
    let (builder, _runs) = step_handler(&jobs, |n, attempt| {
        if n == 7 || (n % 3 == 0 && attempt == 1) {
            Act::Fail
        } else {
            Act::Ok
        }
    });
    let collected = Arc::new(AtomicU32::new(0));
    let count = collected.clone();
    let runner = builder
        .concurrency(4)
        .handler(move |_: Sum, ctx: JobContext| {
            let count = count.clone();
            async move {
                count.fetch_add(1, Ordering::SeqCst);
                let outputs = ctx.child_outputs::<u32>()?;
                let sum = outputs.iter().filter_map(|(_, r)| r.as_ref().ok()).sum();
                let failed = outputs.iter().filter(|(_, r)| r.is_err()).count();
                Ok((sum, failed))
            }
        })
        .spawn()
        .await
        .unwrap();
    let child = JobOptions::new()
        .max_attempts(2)
        .backoff(RetryBackoff::fixed(Duration::from_secs(1)));
    let group = (1..=20)
        .fold(Group::new(), |g, n| g.child_with(Step { n }, child.clone()))
        .collector(Sum);
    let ids = jobs.enqueue_group(group).await.unwrap();
    let (sum, failed) = jobs.wait_for::<Sum>(ids.collector, WAIT).await.unwrap();
    assert_eq!(
        sum,
        (1..=20).filter(|n| *n != 7).map(|n| n * 10).sum::<u32>()
    );
    assert_eq!(failed, 1);
    runner.shutdown(WAIT).await.unwrap();
    assert_eq!(collected.load(Ordering::SeqCst), 1);
}

#[tokio::test(start_paused = true)]
async fn a_parked_job_waits_for_an_outside_decision() {
    let jobs = queue();
    let (builder, mut runs) = step_handler(&jobs, |n, _| if n == 1 { Act::Park } else { Act::Ok });
    let runner = builder.spawn().await.unwrap();
    let id = jobs.enqueue(Step { n: 1 }).await.unwrap().id;
    recv(&mut runs).await;
    let err = jobs
        .wait_for::<Step>(id, Duration::from_secs(60))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("parked"), "{err}");
    jobs.complete(id, &123u32).await.unwrap();
    assert_eq!(jobs.wait_for::<Step>(id, WAIT).await.unwrap(), 123);
    runner.shutdown(WAIT).await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_snoozed_job_runs_later_without_spending_an_attempt() {
    let jobs = queue();
    let calls = Arc::new(AtomicU32::new(0));
    let first_call = calls.clone();
    let (builder, mut runs) = step_handler(&jobs, move |_, _| {
        if first_call.fetch_add(1, Ordering::SeqCst) == 0 {
            Act::Snooze(60)
        } else {
            Act::Ok
        }
    });
    let runner = builder.spawn().await.unwrap();
    let id = jobs
        .enqueue_with(Step { n: 2 }, JobOptions::new().max_attempts(1))
        .await
        .unwrap()
        .id;
    let first = recv(&mut runs).await;
    let second = recv(&mut runs).await;
    assert_eq!((first.attempt, second.attempt), (1, 1));
    assert_eq!(second.at.since(first.at), Duration::from_secs(60));
    assert_eq!(jobs.wait_for::<Step>(id, WAIT).await.unwrap(), 20);
    assert_eq!(jobs.get(id).await.unwrap().unwrap().attempt, 1);
    runner.shutdown(WAIT).await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_resource_never_runs_more_than_its_capacity() {
    let jobs = queue();
    let live = Arc::new(AtomicU32::new(0));
    let peak = Arc::new(AtomicU32::new(0));
    let (live_in, peak_in) = (live.clone(), peak.clone());
    let runner = jobs
        .runner()
        .concurrency(8)
        .handler(move |job: Step, _ctx: JobContext| {
            let (live, peak) = (live_in.clone(), peak_in.clone());
            async move {
                let now = live.fetch_add(1, Ordering::SeqCst) + 1;
                peak.fetch_max(now, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_secs(1)).await;
                live.fetch_sub(1, Ordering::SeqCst);
                Ok(job.n)
            }
        })
        .spawn()
        .await
        .unwrap();
    let mut ids = Vec::new();
    for n in 0..10 {
        let options = JobOptions::new().resource("printer", 2);
        ids.push(jobs.enqueue_with(Step { n }, options).await.unwrap().id);
    }
    for id in ids {
        jobs.wait_for::<Step>(id, WAIT).await.unwrap();
    }
    assert_eq!(peak.load(Ordering::SeqCst), 2);
    runner.shutdown(WAIT).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_enqueues_with_one_idempotency_key_make_one_job() {
    let dir = std::env::temp_dir().join(format!("otp-idem-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let jobs = Jobs::new(SqliteStore::open(dir.join("jobs.sqlite3")).await.unwrap());
    let barrier = Arc::new(tokio::sync::Barrier::new(100));
    let tasks: Vec<_> = (0..100)
        .map(|n| {
            let (jobs, barrier) = (jobs.clone(), barrier.clone());
            tokio::spawn(async move {
                barrier.wait().await;
                let options = JobOptions::new().idempotency_key("nightly-report");
                jobs.enqueue_with(Step { n }, options).await.unwrap()
            })
        })
        .collect();
    let mut results = Vec::new();
    for t in tasks {
        results.push(tokio::time::timeout(REAL_WAIT, t).await.unwrap().unwrap());
    }
    let first = results[0].id;
    assert!(results.iter().all(|r| r.id == first));
    assert_eq!(results.iter().filter(|r| !r.duplicate).count(), 1);
    let all = jobs.list(ListFilter::default()).await.unwrap();
    assert_eq!(all.len(), 1);
    drop(jobs);
    let _ = std::fs::remove_dir_all(dir);
}

/// Blocks its thread (ignores cancellation) until the test lets it go.
#[derive(Serialize, Deserialize)]
struct Stuck;

impl Job for Stuck {
    const NAME: &'static str = "stuck";
    type Output = ();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handler_that_ignores_its_timeout_is_reported_hung_and_its_slot_freed() {
    let jobs = Jobs::new(SqliteStore::in_memory().unwrap());
    let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
    let release_rx = Arc::new(Mutex::new(release_rx));
    let (builder, mut runs) = step_handler(&jobs, |_, _| Act::Ok);
    let runner = builder
        .concurrency(1)
        .timeout(Duration::from_millis(100))
        .hang_grace(Duration::from_millis(100))
        .heartbeat(Duration::from_millis(50))
        .lease(Duration::from_secs(5))
        .handler(move |_: Stuck, _ctx: JobContext| {
            let release = release_rx.clone();
            async move {
                // A blocking call: the timeout cannot cancel it.
                let _ = release.lock().unwrap().recv();
                Ok(())
            }
        })
        .spawn()
        .await
        .unwrap();
    let stuck = jobs
        .enqueue_with(Stuck, JobOptions::new().max_attempts(1).priority(1))
        .await
        .unwrap()
        .id;
    jobs.enqueue(Step { n: 1 }).await.unwrap();
    // The only slot frees once the stuck run is given up on: then the step runs.
    assert_eq!(recv_within(REAL_WAIT, &mut runs).await.n, 1);
    let record = jobs.get(stuck).await.unwrap().unwrap();
    assert_eq!(record.state, JobState::Discarded);
    assert!(
        record.errors[0].error.contains("hung"),
        "{:?}",
        record.errors
    );
    assert_eq!(runner.stats().hung, 1);
    let _ = release_tx.send(());
    // Nothing is left running: the drain ends without giving anything back.
    let report = runner.shutdown(REAL_WAIT).await.unwrap();
    assert_eq!(report.released, 0, "{:?}", runner.stats());
}

#[derive(Clone)]
struct Doubler;

impl ractor_otp::worker::Worker for Doubler {
    type Task = Step;
    type Output = u32;
    type Error = String;

    async fn handle(&mut self, task: Step) -> Result<u32, String> {
        if task.n == 0 {
            return Err("zero".into());
        }
        Ok(task.n * 2)
    }
}

#[tokio::test(start_paused = true)]
async fn a_pool_runs_jobs_and_a_supervisor_runs_the_runner() {
    use ractor_otp::prelude::*;
    let jobs = queue();
    let pool = Pool::builder(|_| Doubler).size(2).spawn().await.unwrap();
    let sup = Supervisor::builder()
        .child(
            jobs.runner()
                .pool::<Step, _>(pool.clone())
                .into_child_spec("runner"),
        )
        .spawn()
        .await
        .unwrap();
    let ok = jobs.enqueue(Step { n: 21 }).await.unwrap().id;
    let bad = jobs
        .enqueue_with(Step { n: 0 }, JobOptions::new().max_attempts(1))
        .await
        .unwrap()
        .id;
    assert_eq!(jobs.wait_for::<Step>(ok, WAIT).await.unwrap(), 42);
    let err = jobs.wait_for::<Step>(bad, WAIT).await.unwrap_err();
    assert!(err.to_string().contains("zero"), "{err}");
    sup.stop().await;
    pool.stop().await;
}

/// A busy runner records a run and claims the next job in one store turn: one commit per job
/// for running it, not a claim and a finish apiece.
#[tokio::test(start_paused = true)]
async fn a_busy_runner_pays_one_commit_per_job() {
    let store = SqliteStore::in_memory().expect("in-memory store");
    let jobs = Jobs::with_clock(store.clone(), TokioClock::new());
    let mut ids = Vec::new();
    for n in 0..20 {
        ids.push(jobs.enqueue(Step { n }).await.unwrap().id);
    }
    let (builder, mut runs) = step_handler(&jobs, |_, _| Act::Ok);
    let before = store.journal_stats().commits;
    let runner = builder.concurrency(1).spawn().await.unwrap();
    for _ in 0..20 {
        recv(&mut runs).await;
    }
    runner.shutdown(WAIT).await.unwrap();
    let commits = store.journal_stats().commits - before;
    // The first turn only claims, each next one records a run and claims the next job, the
    // last only records (a claim and a finish apiece would be 40). With the `metrics`
    // feature, the runner's first look also reads the job counts and the oldest due job.
    let sampling = if cfg!(feature = "metrics") { 2 } else { 0 };
    assert!(commits <= 22 + sampling, "{commits} commits for 20 jobs");
    for id in ids {
        assert_eq!(
            jobs.get(id).await.unwrap().unwrap().state,
            JobState::Completed
        );
    }
}

/// A job type no runner of this handle has a handler for.
#[derive(Serialize, Deserialize)]
struct Orphan;

impl Job for Orphan {
    const NAME: &'static str = "orphan";
    type Output = ();
}

/// A due job whose type has no handler is counted in the runner's stats (and logged once),
/// and `wait_for` says why it did not finish; a job that merely runs late says nothing more.
#[tokio::test(start_paused = true)]
async fn a_job_nobody_handles_is_counted_and_named_when_waited_for() {
    let jobs = queue();
    let orphan = jobs.enqueue(Orphan).await.unwrap().id;
    let late = jobs
        .enqueue_with(
            Step { n: 1 },
            JobOptions::new().not_before(jobs.now().after(Duration::from_secs(3600))),
        )
        .await
        .unwrap()
        .id;
    let (builder, _runs) = step_handler(&jobs, |_, _| Act::Ok);
    let runner = builder.spawn().await.unwrap();
    match jobs
        .wait_for::<Orphan>(orphan, Duration::from_secs(1))
        .await
    {
        Err(e @ ractor_otp::jobs::JobsError::WaitTimedOut { .. }) => {
            let text = e.to_string();
            assert!(text.contains("handles job type `orphan`"), "{text}");
        }
        other => panic!("expected WaitTimedOut, got {other:?}"),
    }
    match jobs.wait_for::<Step>(late, Duration::from_secs(1)).await {
        Err(e @ ractor_otp::jobs::JobsError::WaitTimedOut { .. }) => {
            assert!(!e.to_string().contains("handles job type"), "{e}");
        }
        other => panic!("expected WaitTimedOut, got {other:?}"),
    }
    // The runner looked at start (before the shutdown call, which its mailbox takes after).
    runner.shutdown(WAIT).await.unwrap();
    assert_eq!(runner.stats().unhandled, 1);
    // With the runner gone, no handler of this handle takes `step` either.
    match jobs.wait_for::<Step>(late, Duration::from_secs(1)).await {
        Err(e) => assert!(e.to_string().contains("handles job type `step`"), "{e}"),
        other => panic!("expected WaitTimedOut, got {other:?}"),
    }
}

/// Retention through a runner: a completed job is kept for its retention, then pruned at the
/// runner's next pass; `Jobs::delete` takes a finished job at once.
#[tokio::test(start_paused = true)]
async fn a_runner_prunes_finished_jobs_after_their_retention() {
    let jobs = queue();
    let (builder, mut runs) = step_handler(&jobs, |_, _| Act::Ok);
    let hour = Duration::from_secs(3600);
    let runner = builder
        .retention(
            ractor_otp::jobs::Retention::default()
                .completed(hour)
                .every(Duration::from_secs(60)),
        )
        .spawn()
        .await
        .unwrap();
    let kept = jobs.enqueue(Step { n: 1 }).await.unwrap().id;
    let deleted = jobs.enqueue(Step { n: 2 }).await.unwrap().id;
    jobs.wait_for::<Step>(kept, WAIT).await.unwrap();
    jobs.wait_for::<Step>(deleted, WAIT).await.unwrap();
    recv(&mut runs).await;
    recv(&mut runs).await;
    jobs.delete(deleted).await.unwrap();
    assert!(jobs.get(deleted).await.unwrap().is_none());
    let finished = jobs.now();
    // Kept through its hour…
    tokio::time::sleep(hour - Duration::from_secs(1)).await;
    assert!(jobs.get(kept).await.unwrap().is_some());
    // …and pruned at the first pass after it.
    tokio::time::timeout(Duration::from_secs(120), async {
        while jobs.get(kept).await.unwrap().is_some() {
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    })
    .await
    .expect("the job was not pruned within two passes of its retention");
    assert!(jobs.now().since(finished) >= hour);
    assert_eq!(runner.stats().pruned, 1);
    // An unfinished job cannot be deleted.
    let parked = jobs
        .enqueue_with(
            Step { n: 3 },
            JobOptions::new().not_before(jobs.now().after(hour)),
        )
        .await
        .unwrap()
        .id;
    let err = jobs.delete(parked).await.unwrap_err();
    assert!(err.to_string().contains("cancel it first"), "{err}");
    runner.shutdown(WAIT).await.unwrap();
}
