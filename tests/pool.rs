//! Pools: routing, crashes, backpressure, timeouts, drain, resize (DESIGN §3).

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{bounded, parent};
use ractor_otp::pool::{
    KeyHash, LeastBusy, Overflow, Pool, PoolRef, PoolStats, Priority, RoundRobin, TaskError,
    TaskOptions, Weighted,
};
use ractor_otp::prelude::*;
use ractor_otp::worker::{Worker, WorkerContext};
use tokio::sync::{mpsc, Notify};

const SEC: Duration = Duration::from_secs(1);

/// What a test task does.
enum Job {
    Echo(u64),
    Sleep(Duration),
    /// Say "started" on the channel, then wait for the gate.
    Gate(Arc<Notify>, mpsc::UnboundedSender<usize>),
    Panic,
    Fail,
}

/// Which worker and incarnation ran a task, and its value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Ran {
    worker: usize,
    generation: u64,
    value: u64,
}

struct TestWorker {
    index: usize,
    generation: u64,
}

impl Worker for TestWorker {
    type Task = Job;
    type Output = Ran;
    type Error = String;

    async fn init(&mut self, ctx: WorkerContext) -> Result<(), String> {
        self.generation = ctx.generation;
        Ok(())
    }

    async fn handle(&mut self, job: Job) -> Result<Ran, String> {
        let value = match job {
            Job::Echo(v) => v,
            Job::Sleep(d) => {
                tokio::time::sleep(d).await;
                0
            }
            Job::Gate(gate, started) => {
                let _ = started.send(self.index);
                gate.notified().await;
                0
            }
            Job::Panic => panic!("worker {} told to panic", self.index),
            Job::Fail => return Err(format!("worker {} failed the task", self.index)),
        };
        Ok(Ran {
            worker: self.index,
            generation: self.generation,
            value,
        })
    }
}

fn builder(size: usize) -> ractor_otp::pool::PoolBuilder<TestWorker> {
    Pool::builder(|index| TestWorker {
        index,
        generation: 0,
    })
    .size(size)
}

async fn run(pool: &PoolRef<TestWorker>, job: Job) -> Result<Ran, TaskError<String>> {
    bounded(pool.submit(job)).await
}

/// Starts a gated task in the background; returns once a worker has started it.
async fn hold(
    pool: &PoolRef<TestWorker>,
    gate: &Arc<Notify>,
) -> (
    usize,
    tokio::task::JoinHandle<Result<Ran, TaskError<String>>>,
) {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let p = pool.clone();
    let job = Job::Gate(gate.clone(), tx);
    let handle = tokio::spawn(async move { p.submit(job).await });
    let worker = bounded(rx.recv()).await.expect("the gated task started");
    (worker, handle)
}

/// Waits (bounded) until at least `n` tasks wait in the pool's queue, as its stats say.
async fn until_queued(pool: &PoolRef<TestWorker>, n: usize) {
    bounded(async {
        while pool.stats().queued < n {
            tokio::task::yield_now().await;
        }
    })
    .await;
}

fn workers_of(results: &[Ran]) -> Vec<usize> {
    results.iter().map(|r| r.worker).collect()
}

#[tokio::test(start_paused = true)]
async fn round_robin_is_an_exact_rotation() {
    let pool = builder(4).routing(RoundRobin::new()).spawn().await.unwrap();
    let mut ran = Vec::new();
    for v in 0..12 {
        ran.push(run(&pool, Job::Echo(v)).await.unwrap());
    }
    assert_eq!(workers_of(&ran), vec![0, 1, 2, 3, 0, 1, 2, 3, 0, 1, 2, 3]);
    assert_eq!(ran[5].value, 5);
    pool.stop().await;
}

#[tokio::test(start_paused = true)]
async fn stats_give_each_worker_its_tasks_and_mean_time_in_the_handler() {
    let pool = builder(2).routing(RoundRobin::new()).spawn().await.unwrap();
    // Worker 0 gets the 10 ms and 30 ms tasks, worker 1 the 40 ms task and the failure.
    for job in [
        Job::Sleep(Duration::from_millis(10)),
        Job::Sleep(Duration::from_millis(40)),
        Job::Sleep(Duration::from_millis(30)),
    ] {
        run(&pool, job).await.unwrap();
    }
    assert!(matches!(
        run(&pool, Job::Fail).await,
        Err(TaskError::Failed(_))
    ));
    let stats = pool.stats();
    let per_worker: Vec<_> = stats
        .workers
        .iter()
        .map(|w| (w.index, w.completed, w.failed, w.mean_latency))
        .collect();
    assert_eq!(
        per_worker,
        vec![
            (0, 2, 0, Duration::from_millis(20)),
            (1, 1, 1, Duration::from_millis(20)),
        ]
    );
    assert_eq!((stats.completed, stats.failed), (3, 1));
    pool.stop().await;
}

#[tokio::test(start_paused = true)]
async fn the_mean_time_stays_exact_when_a_waiting_worker_times_only_a_sample() {
    // One request at a time: the worker waits before each task, so past its first tasks it
    // times only a sample of them; the mean is over those it timed.
    let pool = builder(1).spawn().await.unwrap();
    for _ in 0..200 {
        run(&pool, Job::Sleep(Duration::from_millis(10)))
            .await
            .unwrap();
    }
    let w = &pool.stats().workers[0];
    assert_eq!(
        (w.completed, w.mean_latency),
        (200, Duration::from_millis(10))
    );
    pool.stop().await;
}

#[tokio::test(start_paused = true)]
async fn least_busy_never_queues_behind_a_long_task() {
    let pool = builder(3).routing(LeastBusy::new()).spawn().await.unwrap();
    let gate = Arc::new(Notify::new());
    let (busy, long) = hold(&pool, &gate).await;
    for v in 0..10 {
        let r = run(&pool, Job::Echo(v)).await.unwrap();
        assert_ne!(r.worker, busy, "task {v} went to the busy worker");
    }
    gate.notify_one();
    assert!(bounded(long).await.unwrap().is_ok());
    pool.stop().await;
}

#[tokio::test(start_paused = true)]
async fn weighted_proportions_are_exact_per_cycle() {
    let pool = builder(3)
        .routing(Weighted::new())
        .weights([5, 1, 1])
        .spawn()
        .await
        .unwrap();
    let mut ran = Vec::new();
    for v in 0..14 {
        ran.push(run(&pool, Job::Echo(v)).await.unwrap());
    }
    assert_eq!(
        workers_of(&ran),
        vec![0, 0, 1, 0, 2, 0, 0, 0, 0, 1, 0, 2, 0, 0]
    );
    // Weights change at run time; weight 0 = never.
    pool.set_weight(0, 0).unwrap();
    for v in 0..4 {
        assert_ne!(run(&pool, Job::Echo(v)).await.unwrap().worker, 0);
    }
    assert!(pool.set_weight(9, 1).is_err());
    pool.stop().await;
}

#[tokio::test(start_paused = true)]
async fn key_hash_sends_a_key_to_one_worker() {
    let pool = builder(4).routing(KeyHash::new()).spawn().await.unwrap();
    for key in 0..8u64 {
        let opts = TaskOptions::new().key(key);
        let first = bounded(pool.submit_with(Job::Echo(0), opts)).await.unwrap();
        for _ in 0..3 {
            let again = bounded(pool.submit_with(Job::Echo(0), opts)).await.unwrap();
            assert_eq!(again.worker, first.worker, "key {key}");
        }
    }
    pool.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_worker_crash_fails_its_task_and_the_next_goes_to_the_new_incarnation() {
    let pool = builder(1).spawn().await.unwrap();
    assert_eq!(run(&pool, Job::Echo(1)).await.unwrap().generation, 1);
    assert_eq!(run(&pool, Job::Panic).await, Err(TaskError::Crashed));
    let next = run(&pool, Job::Echo(2)).await.unwrap();
    assert_eq!((next.worker, next.generation, next.value), (0, 2, 2));
    // A worker's error is not a crash: same incarnation.
    assert_eq!(
        run(&pool, Job::Fail).await,
        Err(TaskError::Failed("worker 0 failed the task".into()))
    );
    assert_eq!(run(&pool, Job::Echo(3)).await.unwrap().generation, 2);
    let stats = pool.stats();
    assert_eq!(
        (stats.completed, stats.failed, stats.crashed, stats.restarts),
        (3, 1, 1, 1)
    );
    pool.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_crash_loop_makes_the_pool_give_up_and_its_parent_sees_it() {
    let (parent, mut seen) = parent().await;
    let pool = builder(2)
        .restart_intensity(2, 10 * SEC)
        .spawn_linked(parent.get_cell())
        .await
        .unwrap();
    for _ in 0..3 {
        assert_eq!(run(&pool, Job::Panic).await, Err(TaskError::Crashed));
    }
    let told = bounded(seen.recv()).await.unwrap();
    assert!(told.starts_with("intensity_exceeded worker-"), "{told}");
    bounded(pool.wait()).await;
    assert_eq!(run(&pool, Job::Echo(1)).await, Err(TaskError::Stopped));
}

/// A 1-worker pool with a full queue of capacity 2: the worker holds a gated task and two
/// tasks wait. Returns the pool, the gate, and the handles of the held and queued tasks.
async fn full(
    overflow: Overflow,
) -> (
    PoolRef<TestWorker>,
    Arc<Notify>,
    Vec<tokio::task::JoinHandle<Result<Ran, TaskError<String>>>>,
) {
    let pool = builder(1).queue(2, overflow).spawn().await.unwrap();
    let gate = Arc::new(Notify::new());
    let (_, held) = hold(&pool, &gate).await;
    let mut handles = vec![held];
    for v in [10, 11] {
        let p = pool.clone();
        handles.push(tokio::spawn(async move { p.submit(Job::Echo(v)).await }));
    }
    until_queued(&pool, 2).await;
    (pool, gate, handles)
}

#[tokio::test(start_paused = true)]
async fn a_full_queue_rejects_under_reject() {
    let (pool, gate, handles) = full(Overflow::Reject).await;
    assert_eq!(run(&pool, Job::Echo(12)).await, Err(TaskError::QueueFull));
    gate.notify_one();
    for h in handles {
        assert!(bounded(h).await.unwrap().is_ok());
    }
    assert_eq!(pool.stats().rejected, 1);
    pool.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_full_queue_drops_the_oldest_under_drop_oldest() {
    let (pool, gate, mut handles) = full(Overflow::DropOldest).await;
    let p = pool.clone();
    let newest = tokio::spawn(async move { p.submit(Job::Echo(12)).await });
    let oldest = handles.remove(1);
    assert_eq!(bounded(oldest).await.unwrap(), Err(TaskError::Dropped));
    gate.notify_one();
    assert_eq!(bounded(newest).await.unwrap().unwrap().value, 12);
    for h in handles {
        assert!(bounded(h).await.unwrap().is_ok());
    }
    assert_eq!(pool.stats().dropped, 1);
    pool.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_full_queue_makes_submitters_wait_under_wait() {
    let (pool, gate, handles) = full(Overflow::Wait).await;
    let p = pool.clone();
    let mut waiting = tokio::spawn(async move { p.submit(Job::Echo(12)).await });
    assert!(
        futures::poll!(&mut waiting).is_pending(),
        "the submitter waits for space"
    );
    // try_submit never waits.
    assert_eq!(
        bounded(pool.try_submit(Job::Echo(13))).await,
        Err(TaskError::QueueFull)
    );
    gate.notify_one();
    assert_eq!(bounded(waiting).await.unwrap().unwrap().value, 12);
    for h in handles {
        assert!(bounded(h).await.unwrap().is_ok());
    }
    pool.stop().await;
}

#[tokio::test(start_paused = true)]
async fn high_priority_tasks_leave_the_queue_first() {
    let pool = builder(1).spawn().await.unwrap();
    let gate = Arc::new(Notify::new());
    let (_, held) = hold(&pool, &gate).await;
    let (tx, mut rx) = mpsc::unbounded_channel();
    for (v, prio) in [
        (1, Priority::Low),
        (2, Priority::Normal),
        (3, Priority::High),
    ] {
        let (p, tx) = (pool.clone(), tx.clone());
        tokio::spawn(async move {
            let r = p
                .submit_with(Job::Echo(v), TaskOptions::new().priority(prio))
                .await;
            let _ = tx.send(r.map(|r| r.value));
        });
        until_queued(&pool, v as usize).await;
    }
    gate.notify_one();
    let mut order = Vec::new();
    for _ in 0..3 {
        order.push(bounded(rx.recv()).await.unwrap().unwrap());
    }
    assert_eq!(order, vec![3, 2, 1]);
    assert!(bounded(held).await.unwrap().is_ok());
    pool.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_task_past_its_timeout_fails_and_an_overrunning_worker_is_restarted() {
    let pool = builder(1)
        .task_timeout(SEC, SEC)
        .restart_intensity(5, 60 * SEC)
        .spawn()
        .await
        .unwrap();
    let t0 = tokio::time::Instant::now();
    // Finishes within the grace period: the caller timed out, the worker lives on.
    assert_eq!(
        run(&pool, Job::Sleep(Duration::from_millis(1500))).await,
        Err(TaskError::TimedOut)
    );
    assert_eq!(t0.elapsed(), SEC);
    assert_eq!(run(&pool, Job::Echo(1)).await.unwrap().generation, 1);
    // Overruns timeout + grace: restarted.
    assert_eq!(
        run(&pool, Job::Sleep(60 * SEC)).await,
        Err(TaskError::TimedOut)
    );
    // The next task waits for the replacement (its own timeout is long enough for that).
    let patient = TaskOptions::new().timeout(10 * SEC);
    let next = bounded(pool.submit_with(Job::Echo(2), patient))
        .await
        .unwrap();
    assert_eq!(next.generation, 2);
    let stats = pool.stats();
    assert_eq!((stats.timed_out, stats.restarts), (2, 1));
    // A per-task timeout overrides the default.
    let opts = TaskOptions::new().timeout(10 * SEC);
    assert!(bounded(pool.submit_with(Job::Sleep(5 * SEC), opts))
        .await
        .is_ok());
    pool.stop().await;
}

#[tokio::test(start_paused = true)]
async fn drain_finishes_accepted_work_and_rejects_new() {
    let pool = builder(1).spawn().await.unwrap();
    let gate = Arc::new(Notify::new());
    let (_, held) = hold(&pool, &gate).await;
    let mut queued = Vec::new();
    for v in 0..3 {
        let p = pool.clone();
        queued.push(tokio::spawn(async move { p.submit(Job::Echo(v)).await }));
    }
    until_queued(&pool, 3).await;
    let p = pool.clone();
    let draining = tokio::spawn(async move { p.drain(60 * SEC).await });
    // Until the drain begins, a cast is accepted (and will finish); then it is refused.
    bounded(async {
        while pool.cast(Job::Echo(9)).await != Err(TaskError::Stopped) {
            tokio::task::yield_now().await;
        }
    })
    .await;
    gate.notify_one();
    assert!(bounded(held).await.unwrap().is_ok());
    for q in queued {
        assert!(bounded(q).await.unwrap().is_ok(), "accepted work finishes");
    }
    assert_eq!(bounded(draining).await.unwrap(), Ok(true));
}

#[tokio::test(start_paused = true)]
async fn resize_up_and_down_keeps_every_accepted_task() {
    let pool = builder(2).routing(RoundRobin::new()).spawn().await.unwrap();
    bounded(pool.resize(4)).await.unwrap();
    let mut ran = Vec::new();
    for v in 0..8 {
        ran.push(run(&pool, Job::Echo(v)).await.unwrap().worker);
    }
    ran.sort();
    assert_eq!(ran, vec![0, 0, 1, 1, 2, 2, 3, 3]);
    // Hold tasks on every worker, then shrink to 1: the removed workers finish theirs first.
    let gate = Arc::new(Notify::new());
    let mut held = Vec::new();
    for _ in 0..4 {
        held.push(hold(&pool, &gate).await.1);
    }
    let p = pool.clone();
    let mut shrinking = tokio::spawn(async move { p.resize(1).await });
    assert!(futures::poll!(&mut shrinking).is_pending());
    gate.notify_waiters();
    for h in held {
        assert!(bounded(h).await.unwrap().is_ok());
    }
    assert_eq!(bounded(shrinking).await.unwrap(), Ok(()));
    assert_eq!(pool.stats().workers.len(), 1);
    assert_eq!(run(&pool, Job::Echo(1)).await.unwrap().worker, 0);
    assert!(bounded(pool.resize(0)).await.is_err());
    pool.stop().await;
}

#[tokio::test(start_paused = true)]
async fn without_workers_tasks_wait_or_fail_fast() {
    // All workers restarting (a long backoff): queued tasks run when a worker is back.
    let pool = builder(1)
        .backoff(Backoff::fixed(10 * SEC))
        .restart_intensity(5, 60 * SEC)
        .spawn()
        .await
        .unwrap();
    assert_eq!(run(&pool, Job::Panic).await, Err(TaskError::Crashed));
    let r = run(&pool, Job::Echo(7)).await.unwrap();
    assert_eq!((r.generation, r.value), (2, 7));
    pool.stop().await;

    let pool = builder(1)
        .backoff(Backoff::fixed(10 * SEC))
        .restart_intensity(5, 60 * SEC)
        .fail_fast_without_workers(true)
        .spawn()
        .await
        .unwrap();
    assert_eq!(run(&pool, Job::Panic).await, Err(TaskError::Crashed));
    assert_eq!(run(&pool, Job::Echo(7)).await, Err(TaskError::NoWorker));
    pool.stop().await;
}

#[tokio::test(start_paused = true)]
async fn stopping_fails_queued_tasks_with_stopped() {
    let pool = builder(1).spawn().await.unwrap();
    let gate = Arc::new(Notify::new());
    let (_, _held) = hold(&pool, &gate).await;
    let p = pool.clone();
    let queued = tokio::spawn(async move { p.submit(Job::Echo(1)).await });
    until_queued(&pool, 1).await;
    // The held task never finishes; the worker is killed after its shutdown timeout.
    bounded(pool.stop()).await;
    assert_eq!(bounded(queued).await.unwrap(), Err(TaskError::Stopped));
}

#[tokio::test(start_paused = true)]
async fn a_pool_is_a_supervision_tree_citizen() {
    let root = Supervisor::builder()
        .child(builder(2).label("jobs").into_child_spec("jobs"))
        .spawn()
        .await
        .unwrap();
    let cell = bounded(root.child("jobs")).await.unwrap();
    let pool = bounded(PoolRef::<TestWorker>::from_cell(cell))
        .await
        .unwrap();
    assert_eq!(run(&pool, Job::Echo(5)).await.unwrap().value, 5);
    root.stop().await;
    assert_eq!(run(&pool, Job::Echo(5)).await, Err(TaskError::Stopped));
}

#[tokio::test(start_paused = true)]
async fn chaos_every_submit_resolves_exactly_once() {
    let pool = builder(4)
        .routing(LeastBusy::new())
        .restart_intensity(1_000_000, SEC)
        .spawn()
        .await
        .unwrap();
    let mut rng = fastrand::Rng::with_seed(42);
    let mut handles = Vec::new();
    let n = 100_000;
    for v in 0..n {
        let job = match rng.u8(0..100) {
            0..3 => Job::Panic,
            3..5 => Job::Fail,
            _ => Job::Echo(v),
        };
        let p = pool.clone();
        handles.push(tokio::spawn(async move { p.submit(job).await }));
    }
    let (mut ok, mut failed, mut crashed) = (0u64, 0u64, 0u64);
    for h in handles {
        match bounded(h).await.unwrap() {
            Ok(_) => ok += 1,
            Err(TaskError::Failed(_)) => failed += 1,
            Err(TaskError::Crashed) => crashed += 1,
            Err(other) => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(ok + failed + crashed, n, "every submit resolved once");
    let stats: PoolStats = pool.stats();
    assert_eq!(
        (
            stats.submitted,
            stats.completed,
            stats.failed,
            stats.crashed
        ),
        (n, ok, failed, crashed)
    );
    assert_eq!((stats.queued, stats.in_flight), (0, 0));
    assert!(crashed > 0 && failed > 0 && stats.restarts > 0);
    pool.stop().await;
}

/// Worker 0 crashes on 13; the others answer their index.
struct FlakyWorker {
    index: usize,
}

impl Worker for FlakyWorker {
    type Task = u64;
    type Output = usize;
    type Error = String;

    async fn handle(&mut self, n: u64) -> Result<usize, String> {
        if self.index == 0 && n == 13 {
            panic!("worker 0 cannot stand 13");
        }
        Ok(self.index)
    }
}

#[tokio::test(start_paused = true)]
async fn a_crashed_task_is_retried_on_another_worker_when_asked() {
    let pool = Pool::builder(|index| FlakyWorker { index })
        .size(2)
        .routing(RoundRobin::new())
        .retry_crashed(2)
        .spawn()
        .await
        .unwrap();
    // Round-robin sends the first task to worker 0, which crashes; the retry runs on worker 1.
    assert_eq!(bounded(pool.submit(13)).await, Ok(1));
    let stats = pool.stats();
    assert_eq!((stats.retried, stats.crashed, stats.restarts), (1, 0, 1));
    pool.stop().await;

    // Without the policy the caller gets Crashed.
    let pool = Pool::builder(|index| FlakyWorker { index })
        .size(2)
        .routing(RoundRobin::new())
        .spawn()
        .await
        .unwrap();
    assert_eq!(bounded(pool.submit(13)).await, Err(TaskError::Crashed));
    pool.stop().await;
}

#[tokio::test(start_paused = true)]
async fn retries_are_bounded() {
    // Every worker crashes on 13: two retries, then Crashed.
    struct AlwaysCrash;
    impl Worker for AlwaysCrash {
        type Task = u64;
        type Output = ();
        type Error = String;
        async fn handle(&mut self, _n: u64) -> Result<(), String> {
            panic!("always");
        }
    }
    let pool = Pool::builder(|_| AlwaysCrash)
        .size(3)
        .retry_crashed(2)
        .restart_intensity(100, SEC)
        .spawn()
        .await
        .unwrap();
    assert_eq!(bounded(pool.submit(13)).await, Err(TaskError::Crashed));
    let stats = pool.stats();
    assert_eq!((stats.retried, stats.crashed), (2, 1));
    pool.stop().await;
}

#[tokio::test(start_paused = true)]
async fn broadcast_reaches_every_worker() {
    #[derive(Clone)]
    struct Hello;
    struct Greeter(usize);
    impl Worker for Greeter {
        type Task = Hello;
        type Output = usize;
        type Error = String;
        async fn handle(&mut self, _: Hello) -> Result<usize, String> {
            Ok(self.0)
        }
    }
    let pool = Pool::builder(Greeter).size(3).spawn().await.unwrap();
    let answers = bounded(pool.broadcast(Hello)).await.unwrap();
    assert_eq!(answers, vec![Ok(0), Ok(1), Ok(2)]);
    pool.stop().await;
    assert_eq!(
        bounded(pool.broadcast(Hello)).await,
        Err(TaskError::Stopped)
    );
}

#[tokio::test(start_paused = true)]
async fn the_autoscaler_grows_under_pressure_and_shrinks_when_idle() {
    use ractor_otp::pool::Resizer;
    let resizer = Resizer {
        lower: 1,
        upper: 3,
        rampup_rate: 1.0,
        messages_per_resize: 1,
        ..Resizer::default()
    };
    let pool = builder(1).autoscale(resizer).spawn().await.unwrap();
    let size = |p: &PoolRef<TestWorker>| p.stats().workers.len();
    let gate = Arc::new(Notify::new());
    // The only worker is busy: the next task finds every worker busy and the pool grows.
    let (_, held) = hold(&pool, &gate).await;
    assert_eq!(
        run(&pool, Job::Echo(1)).await.unwrap().worker,
        1,
        "ran on the new worker"
    );
    assert_eq!(size(&pool), 2);
    // Busy again, both: grow to the upper bound (3), never beyond.
    let (_, held2) = hold(&pool, &gate).await;
    run(&pool, Job::Echo(2)).await.unwrap();
    bounded(async {
        while size(&pool) < 3 {
            tokio::task::yield_now().await;
        }
    })
    .await;
    gate.notify_waiters();
    assert!(bounded(held).await.unwrap().is_ok());
    assert!(bounded(held2).await.unwrap().is_ok());
    // Idle: each check shrinks by ceil(0.1 · size) = 1, down to the lower bound.
    bounded(async {
        while size(&pool) > 1 {
            let _ = pool.submit(Job::Echo(0)).await;
            tokio::task::yield_now().await;
        }
    })
    .await;
    assert_eq!(size(&pool), 1);
    pool.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_worker_that_stops_answering_is_restarted_and_reported() {
    let pool = builder(2)
        .health_check(SEC, 2 * SEC)
        .routing(RoundRobin::new())
        .spawn()
        .await
        .unwrap();
    // Worker 0 gets stuck (an hour-long task, no task timeout); the check kills it at the
    // first ping it fails to answer within 2 s.
    let stuck = {
        let p = pool.clone();
        tokio::spawn(async move { p.submit(Job::Sleep(3600 * SEC)).await })
    };
    assert_eq!(bounded(stuck).await.unwrap(), Err(TaskError::Crashed));
    let stats = pool.stats();
    assert_eq!((stats.stuck, stats.restarts), (1, 1));
    // Healthy workers are left alone.
    let r = run(&pool, Job::Echo(1)).await.unwrap();
    tokio::time::advance(10 * SEC).await;
    assert_eq!(pool.stats().stuck, 1);
    assert!(r.value == 1);
    pool.stop().await;
}

#[tokio::test(start_paused = true)]
async fn bad_pool_settings_are_typed_errors() {
    for b in [
        builder(0),
        builder(1).queue(0, Overflow::Wait),
        builder(1).worker_concurrency(0),
        builder(1).health_check(Duration::ZERO, SEC),
        builder(1).autoscale(ractor_otp::pool::Resizer::new(3, 2)),
    ] {
        assert!(matches!(b.spawn().await, Err(StartError::InvalidPool(_))));
    }
}

#[tokio::test(start_paused = true)]
async fn tasks_waiting_behind_a_crash_are_not_lost() {
    let pool = builder(1)
        .worker_concurrency(4)
        .restart_intensity(5, 60 * SEC)
        .spawn()
        .await
        .unwrap();
    let gate = Arc::new(Notify::new());
    let (_, held) = hold(&pool, &gate).await;
    // Three more tasks go straight into the busy worker's mailbox (concurrency 4).
    let mut waiting = Vec::new();
    for job in [Job::Panic, Job::Echo(1), Job::Echo(2)] {
        let p = pool.clone();
        waiting.push(tokio::spawn(async move { p.submit(job).await }));
    }
    bounded(async {
        while pool.stats().in_flight < 4 {
            tokio::task::yield_now().await;
        }
    })
    .await;
    gate.notify_one();
    assert!(bounded(held).await.unwrap().is_ok());
    let mut answers = Vec::new();
    for w in waiting {
        answers.push(bounded(w).await.unwrap());
    }
    // Only the task that was running when the worker died fails; the two that had not
    // started run on the next incarnation.
    assert_eq!(answers[0], Err(TaskError::Crashed));
    let later: Vec<(u64, u64)> = answers[1..]
        .iter()
        .map(|a| a.as_ref().map(|r| (r.value, r.generation)).unwrap())
        .collect();
    assert_eq!(later, vec![(1, 2), (2, 2)]);
    let stats = pool.stats();
    assert_eq!((stats.crashed, stats.redispatched), (1, 2));
    pool.stop().await;
}
