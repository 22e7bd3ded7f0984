//! Pools: every task gets exactly one answer, however the pool and the tree above it end
//! (DESIGN §3), the queue honours the routing, settings that cannot work are refused, and a
//! worker stuck on the CPU is replaced.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::bounded;
use ractor::{Actor, ActorProcessingErr, ActorRef};
use ractor_otp::pool::{
    LeastBusy, Overflow, Pool, PoolBuilder, PoolConfigError, PoolError, PoolRef, RoundRobin,
    Routing, Target, TaskError, TaskOptions, Weighted, WorkerView, WorkerViews,
};
use ractor_otp::prelude::*;
use ractor_otp::worker::{Worker, WorkerContext};
use tokio::sync::{mpsc, oneshot, watch};

const MS: Duration = Duration::from_millis(1);
const SEC: Duration = Duration::from_secs(1);

/// What a test task does.
enum Job {
    Echo,
    Sleep(Duration),
    /// Say "started", then wait for a word: `true` = panic, `false` (or the sender dropped) =
    /// return.
    Hold(mpsc::UnboundedSender<usize>, oneshot::Receiver<bool>),
    Panic,
    Fail,
    /// Spin on the CPU, never yielding, until the flag is set.
    Spin(mpsc::UnboundedSender<usize>, Arc<AtomicBool>),
}

/// Which worker and incarnation ran a task.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Ran {
    worker: usize,
    generation: u64,
}

type Answer = Result<Ran, TaskError<String>>;

/// Counts the live workers: made by the factory, dropped with the actor's state.
#[derive(Clone)]
struct Census {
    live: Arc<watch::Sender<usize>>,
    /// (worker, generation) of every incarnation, as it starts.
    started: mpsc::UnboundedSender<(usize, u64)>,
}

struct Alive(Arc<watch::Sender<usize>>);

impl Drop for Alive {
    fn drop(&mut self) {
        self.0.send_modify(|n| *n -= 1);
    }
}

struct TestWorker {
    index: usize,
    generation: u64,
    census: Census,
    _alive: Alive,
}

impl Worker for TestWorker {
    type Task = Job;
    type Output = Ran;
    type Error = String;

    async fn init(&mut self, ctx: WorkerContext) -> Result<(), String> {
        self.generation = ctx.generation;
        let _ = self.census.started.send((ctx.index, ctx.generation));
        Ok(())
    }

    async fn handle(&mut self, job: Job) -> Result<Ran, String> {
        match job {
            Job::Echo => {}
            Job::Sleep(d) => tokio::time::sleep(d).await,
            Job::Hold(started, word) => {
                let _ = started.send(self.index);
                if word.await == Ok(true) {
                    panic!("worker {} told to panic", self.index);
                }
            }
            Job::Panic => panic!("worker {} told to panic", self.index),
            Job::Fail => return Err(format!("worker {} failed the task", self.index)),
            Job::Spin(started, stop) => {
                let _ = started.send(self.index);
                // Spins inside `block_in_place`, which hands this thread's queued tasks to
                // another thread first: tokio keeps a task woken from a thread in that thread's
                // own slot, which no other thread takes while this one spins (a spin that
                // caught the test's own task there hung it). To the pool the worker is just as
                // stuck: its handler does not return until the test says so.
                tokio::task::block_in_place(|| {
                    while !stop.load(Ordering::Acquire) {
                        std::hint::spin_loop();
                    }
                });
            }
        }
        Ok(Ran {
            worker: self.index,
            generation: self.generation,
        })
    }
}

/// A census and the receivers that watch it.
fn census() -> (
    Census,
    watch::Receiver<usize>,
    mpsc::UnboundedReceiver<(usize, u64)>,
) {
    let (live, live_rx) = watch::channel(0);
    let (started, started_rx) = mpsc::unbounded_channel();
    (
        Census {
            live: Arc::new(live),
            started,
        },
        live_rx,
        started_rx,
    )
}

fn builder(size: usize, census: &Census) -> PoolBuilder<TestWorker> {
    let census = census.clone();
    Pool::builder(move |index| {
        census.live.send_modify(|n| *n += 1);
        TestWorker {
            index,
            generation: 0,
            census: census.clone(),
            _alive: Alive(census.live.clone()),
        }
    })
    .size(size)
}

/// Waits (bounded) until no worker of this census is alive: every actor has ended and its
/// state is gone.
async fn all_workers_gone(live: &mut watch::Receiver<usize>) {
    bounded(live.wait_for(|&n| n == 0))
        .await
        .expect("census alive");
}

/// The future must finish without waiting for anything (under the paused clock, anything it
/// waited for would let the 1 ms timer fire first).
async fn at_once<F: std::future::Future>(fut: F) -> F::Output {
    tokio::time::timeout(MS, fut)
        .await
        .expect("answered at once, without waiting")
}

fn spawn_submit(pool: &PoolRef<TestWorker>, job: Job) -> tokio::task::JoinHandle<Answer> {
    let p = pool.clone();
    tokio::spawn(async move { p.submit(job).await })
}

/// A task holding a worker: its handle, the word that ends it, and the worker it runs on.
struct Held {
    answer: tokio::task::JoinHandle<Answer>,
    word: oneshot::Sender<bool>,
    worker: usize,
}

/// Submits a `Hold` task and returns once a worker has started it.
async fn hold(pool: &PoolRef<TestWorker>) -> Held {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let (word, word_rx) = oneshot::channel();
    let answer = spawn_submit(pool, Job::Hold(tx, word_rx));
    let worker = bounded(rx.recv()).await.expect("the held task started");
    Held {
        answer,
        word,
        worker,
    }
}

/// The load every death is tried with, on a pool of 2 workers taking 2 tasks each: two
/// running (held), one waiting in each worker's mailbox, three in the pool's queue.
struct Load {
    held: Vec<Held>,
    waiting: Vec<tokio::task::JoinHandle<Answer>>,
}

async fn load(pool: &PoolRef<TestWorker>) -> Load {
    let held = vec![hold(pool).await, hold(pool).await];
    assert_ne!(
        held[0].worker, held[1].worker,
        "one held task on each worker"
    );
    let mut waiting = Vec::new();
    for _ in 0..5 {
        waiting.push(spawn_submit(pool, Job::Echo));
    }
    bounded(async {
        while pool.stats().queued < 3 || pool.stats().in_flight < 4 {
            tokio::task::yield_now().await;
        }
    })
    .await;
    Load { held, waiting }
}

impl Load {
    /// Every task resolves: the running ones `Crashed`, the others `Stopped`.
    async fn all_answered(self) {
        for h in self.held {
            assert_eq!(
                bounded(h.answer).await.unwrap(),
                Err(TaskError::Crashed),
                "a running task"
            );
        }
        for w in self.waiting {
            assert_eq!(
                bounded(w).await.unwrap(),
                Err(TaskError::Stopped),
                "a task in a mailbox or the queue"
            );
        }
    }
}

/// Every call on a handle of a pool that has ended answers `Stopped` at once.
async fn old_handle_answers_stopped(pool: &PoolRef<TestWorker>) {
    bounded(pool.wait()).await;
    let copy = pool.clone();
    for p in [pool, &copy] {
        assert_eq!(at_once(p.submit(Job::Echo)).await, Err(TaskError::Stopped));
        assert_eq!(
            at_once(p.try_submit(Job::Echo)).await,
            Err(TaskError::Stopped)
        );
        assert_eq!(
            at_once(p.submit_with(Job::Echo, TaskOptions::new().timeout(SEC))).await,
            Err(TaskError::Stopped)
        );
        assert_eq!(at_once(p.cast(Job::Echo)).await, Err(TaskError::Stopped));
        assert_eq!(at_once(p.resize(3)).await, Err(PoolError::Stopped));
        assert_eq!(at_once(p.drain(SEC)).await, Err(PoolError::Stopped));
    }
    assert_eq!(pool.stats().queued, 0);
}

/// A pool of 2 workers taking 2 tasks each, under the given census.
fn loaded_pool(census: &Census) -> PoolBuilder<TestWorker> {
    builder(2, census)
        .routing(RoundRobin::new())
        .worker_concurrency(2)
}

#[tokio::test(start_paused = true)]
async fn a_stopped_pool_answers_every_task() {
    let (census, mut live, _) = census();
    let pool = loaded_pool(&census).spawn().await.unwrap();
    let load = load(&pool).await;
    // The held tasks never finish: their workers are killed after the shutdown timeout.
    bounded(pool.stop()).await;
    load.all_answered().await;
    old_handle_answers_stopped(&pool).await;
    all_workers_gone(&mut live).await;
}

#[tokio::test(start_paused = true)]
async fn a_drained_pool_answers_every_task() {
    let (census, mut live, _) = census();
    let pool = loaded_pool(&census).spawn().await.unwrap();
    let load = load(&pool).await;
    assert_eq!(
        bounded(pool.drain(SEC)).await,
        Ok(false),
        "did not drain in time"
    );
    load.all_answered().await;
    old_handle_answers_stopped(&pool).await;
    all_workers_gone(&mut live).await;
}

#[tokio::test(start_paused = true)]
async fn a_killed_pool_answers_every_task() {
    let (census, mut live, _) = census();
    let pool = loaded_pool(&census).spawn().await.unwrap();
    let load = load(&pool).await;
    pool.get_cell().kill();
    load.all_answered().await;
    old_handle_answers_stopped(&pool).await;
    all_workers_gone(&mut live).await;
}

#[tokio::test(start_paused = true)]
async fn a_pool_under_a_killed_supervisor_answers_every_task() {
    let (census, mut live, _) = census();
    let root = Supervisor::builder()
        .child(loaded_pool(&census).into_child_spec("pool"))
        .spawn()
        .await
        .unwrap();
    let cell = bounded(root.child("pool")).await.unwrap();
    let pool = bounded(PoolRef::<TestWorker>::from_cell(cell))
        .await
        .unwrap();
    let load = load(&pool).await;
    root.get_cell().kill();
    load.all_answered().await;
    old_handle_answers_stopped(&pool).await;
    all_workers_gone(&mut live).await;
}

/// A tree `root → subsystem → pool`, with a handle on the pool.
async fn subsystem(
    pool: PoolBuilder<TestWorker>,
    subsystem: SupervisorBuilderLike,
) -> (SupervisorRef, SupervisorRef, PoolRef<TestWorker>) {
    let root = Supervisor::builder()
        .intensity(1_000_000)
        .child(subsystem(pool.into_child_spec("pool")).into_child_spec("subsystem"))
        .spawn()
        .await
        .unwrap();
    let sub = bounded(root.child_supervisor("subsystem")).await.unwrap();
    let pool = bounded(PoolRef::<TestWorker>::from_cell(
        bounded(sub.child("pool")).await.unwrap(),
    ))
    .await
    .unwrap();
    (root, sub, pool)
}

type SupervisorBuilderLike = fn(ChildSpec) -> ractor_otp::supervisor::SupervisorBuilder;

#[tokio::test(start_paused = true)]
async fn a_pool_under_a_killed_subsystem_answers_every_task_and_old_handles_stop() {
    let (census, mut live, _) = census();
    let (root, sub, pool) = subsystem(loaded_pool(&census), |pool| {
        Supervisor::builder().child(pool)
    })
    .await;
    let load = load(&pool).await;
    sub.get_cell().kill();
    load.all_answered().await;
    // The old handle is done with; the root restarted the subsystem with a new pool.
    old_handle_answers_stopped(&pool).await;
    let sub = bounded(async {
        loop {
            match root.child_supervisor("subsystem").await {
                Ok(s) if s.get_cell().get_id() != sub.get_cell().get_id() => break s,
                _ => tokio::task::yield_now().await,
            }
        }
    })
    .await;
    let fresh = bounded(PoolRef::<TestWorker>::from_cell(
        bounded(sub.child("pool")).await.unwrap(),
    ))
    .await
    .unwrap();
    assert!(bounded(fresh.submit(Job::Echo)).await.is_ok());
    bounded(root.stop()).await;
    all_workers_gone(&mut live).await;
}

/// A sibling that crashes on demand.
#[derive(Clone)]
struct Bomb;

#[cfg_attr(feature = "async-trait", ractor::async_trait)]
impl Actor for Bomb {
    type Msg = ();
    type State = ();
    type Arguments = ();

    async fn pre_start(&self, _: ActorRef<()>, _: ()) -> Result<(), ActorProcessingErr> {
        Ok(())
    }

    async fn handle(&self, _: ActorRef<()>, _: (), _: &mut ()) -> Result<(), ActorProcessingErr> {
        Err("boom".into())
    }
}

#[tokio::test(start_paused = true)]
async fn a_pool_under_a_supervisor_that_gives_up_answers_every_task() {
    let (census, mut live, _) = census();
    // The subsystem tolerates no restart: the bomb's crash makes it give up and stop the pool.
    let (root, sub, pool) = subsystem(loaded_pool(&census), |pool| {
        Supervisor::builder()
            .intensity(0)
            .child(ChildSpec::from_actor("bomb", Bomb, ()))
            .child(pool)
    })
    .await;
    let load = load(&pool).await;
    let bomb: ActorRef<()> = bounded(sub.child("bomb")).await.unwrap().into();
    bomb.cast(()).unwrap();
    load.all_answered().await;
    old_handle_answers_stopped(&pool).await;
    bounded(root.stop()).await;
    all_workers_gone(&mut live).await;
}

#[tokio::test(start_paused = true)]
async fn a_pool_whose_workers_supervisor_gives_up_answers_every_task() {
    let (census, mut live, _) = census();
    let pool = loaded_pool(&census)
        .restart_intensity(0, SEC)
        .spawn()
        .await
        .unwrap();
    let mut load = load(&pool).await;
    // A running task panics: no restart is allowed, so the pool fails. The task that panicked
    // and the other running one crash; the rest never started.
    let first = load.held.remove(0);
    first.word.send(true).unwrap();
    assert_eq!(
        bounded(first.answer).await.unwrap(),
        Err(TaskError::Crashed)
    );
    load.all_answered().await;
    old_handle_answers_stopped(&pool).await;
    all_workers_gone(&mut live).await;
}

/// Finds the pool now running in the tree (after a restart of it or of its subsystem): a
/// handle on a pool other than `old`.
async fn current_pool(root: &SupervisorRef, old: &PoolRef<TestWorker>) -> PoolRef<TestWorker> {
    bounded(async {
        loop {
            if let Ok(sub) = root.child_supervisor("subsystem").await {
                if let Ok(cell) = sub.child("pool").await {
                    if cell.get_id() != old.get_cell().get_id() {
                        if let Some(pool) = PoolRef::from_cell(cell).await {
                            return pool;
                        }
                    }
                }
            }
            // Under the paused clock a loop of yields would never let the bound fire.
            assert!(root.is_alive(), "the root gave up");
            tokio::task::yield_now().await;
        }
    })
    .await
}

/// Four producers submit a mix (echo, sleep, fail, panic; submit, try_submit, a timeout) to a
/// pool in a tree, each batch through the handle last published, while a killer ends the pool
/// or the supervisor above it at random moments (killed, stopped, drained) and publishes the
/// pool the tree restarts; each round ends by killing or stopping the root. Every submit
/// resolves exactly once, the counts add up, nothing hangs, and no worker is left alive once a
/// round's tree has stopped.
#[tokio::test(start_paused = true)]
async fn chaos_killing_pools_and_their_supervisors_leaves_no_task_unanswered() {
    const ROUNDS: u64 = 5;
    const PER_PRODUCER: u64 = 10_000;
    const PRODUCERS: u64 = 4;
    const IN_FLIGHT: u64 = 16;
    let (census, mut live, _) = census();
    let mut rng = fastrand::Rng::with_seed(7);
    let tally = Arc::new(Mutex::new(std::collections::BTreeMap::<String, u64>::new()));
    let mut kills = 0;
    for round in 0..ROUNDS {
        let pool = loaded_pool(&census).restart_intensity(1_000_000, SEC);
        let (root, sub, pool) = subsystem(pool, |pool| {
            Supervisor::builder()
                .intensity(1_000_000)
                .period(SEC)
                .child(pool)
        })
        .await;
        let (publish, current) = watch::channel(pool.clone());
        let mut producers = tokio::task::JoinSet::new();
        for p in 0..PRODUCERS {
            let mut current = current.clone();
            let tally = tally.clone();
            let mut rng = fastrand::Rng::with_seed(round * 100 + p);
            producers.spawn(async move {
                let mut sent = 0;
                while sent < PER_PRODUCER {
                    let batch = (PER_PRODUCER - sent).min(IN_FLIGHT);
                    let pool = current.borrow_and_update().clone();
                    let calls = (0..batch).map(|_| {
                        let job = match rng.u8(0..100) {
                            0..2 => Job::Panic,
                            2..5 => Job::Fail,
                            5..40 => Job::Sleep(MS * rng.u32(0..3)),
                            _ => Job::Echo,
                        };
                        let (pool, how) = (pool.clone(), rng.u8(0..10));
                        async move {
                            match how {
                                0 => pool.try_submit(job).await,
                                1 => {
                                    let short = TaskOptions::new().timeout(MS);
                                    pool.submit_with(job, short).await
                                }
                                _ => pool.submit(job).await,
                            }
                        }
                    });
                    let answers = futures::future::join_all(calls).await;
                    let stopped = answers.contains(&Err(TaskError::Stopped));
                    {
                        let mut tally = tally.lock().unwrap();
                        for a in answers {
                            let kind = match a {
                                Ok(_) => "ok".to_string(),
                                Err(e) => format!("{e:?}").split('(').next().unwrap().to_string(),
                            };
                            *tally.entry(kind).or_default() += 1;
                        }
                    }
                    sent += batch;
                    if stopped && sent < PER_PRODUCER {
                        // As a user would: the pool has gone; take the one that replaces it.
                        bounded(current.changed()).await.expect("killer alive");
                    }
                }
            });
        }
        // The killer strikes at random moments until the producers are done, then ends the
        // tree.
        let mut pool = pool;
        let _ = sub;
        loop {
            let pause = tokio::time::sleep(MS * rng.u32(5..60));
            tokio::select! {
                _ = pause => {}
                done = producers.join_next() => match done {
                    Some(done) => { done.expect("producer finished"); continue; }
                    None => break,
                },
            }
            kills += 1;
            match rng.u8(0..4) {
                0 => pool.get_cell().kill(),
                1 => match root.child("subsystem").await {
                    Ok(sub) => sub.kill(),
                    Err(_) => continue,
                },
                2 => bounded(pool.stop()).await,
                _ => {
                    let _ = bounded(pool.drain(2 * MS)).await;
                }
            }
            pool = current_pool(&root, &pool).await;
            publish.send_replace(pool.clone());
        }
        if rng.bool() {
            root.get_cell().kill();
        }
        bounded(root.stop()).await;
        all_workers_gone(&mut live).await;
    }
    let tally = tally.lock().unwrap().clone();
    let total: u64 = tally.values().sum();
    assert_eq!(
        total,
        ROUNDS * PRODUCERS * PER_PRODUCER,
        "every submit resolved once: {tally:?}"
    );
    for kind in ["ok", "Failed", "Crashed", "Stopped", "TimedOut"] {
        assert!(
            tally.get(kind).is_some_and(|&n| n > 0),
            "some {kind}: {tally:?}"
        );
    }
    assert!(
        tally["ok"] > total / 2,
        "the pools did work between kills: {tally:?}"
    );
    assert!(kills > 50, "{kills} kills");
    let allowed = [
        "ok",
        "Failed",
        "Crashed",
        "Stopped",
        "TimedOut",
        "QueueFull",
    ];
    assert!(
        tally.keys().all(|k| allowed.contains(&k.as_str())),
        "no other outcome: {tally:?}"
    );
    eprintln!("{kills} kills: {tally:?}");
}

// ---- the queue honours the routing -------------------------------------------------------

/// Submits `n` tasks at once and returns the workers that ran them.
async fn burst(pool: &PoolRef<TestWorker>, n: u64, job: impl Fn() -> Job) -> Vec<usize> {
    let handles: Vec<_> = (0..n).map(|_| spawn_submit(pool, job())).collect();
    let mut workers = Vec::new();
    for h in handles {
        workers.push(bounded(h).await.unwrap().unwrap().worker);
    }
    workers
}

#[tokio::test(start_paused = true)]
async fn a_worker_of_weight_zero_never_takes_a_task_even_from_the_queue() {
    let (census, _live, _) = census();
    let pool = builder(2, &census)
        .weights([1, 0])
        .routing(Weighted::new())
        .spawn()
        .await
        .unwrap();
    // 100 tasks at once: most wait in the queue while worker 0 is busy; worker 1 stays idle.
    let ran = burst(&pool, 100, || Job::Sleep(MS)).await;
    assert!(ran.iter().all(|&w| w == 0), "{ran:?}");
    let stats = pool.stats();
    assert_eq!(
        (stats.workers[0].completed, stats.workers[1].completed),
        (100, 0)
    );
    pool.stop().await;
}

#[tokio::test(start_paused = true)]
async fn with_every_weight_zero_tasks_wait_for_a_weight_or_fail_fast() {
    let (census, _live, _) = census();
    let pool = builder(2, &census)
        .weights([0, 0])
        .routing(Weighted::new())
        .spawn()
        .await
        .unwrap();
    let waiting = spawn_submit(&pool, Job::Echo);
    bounded(async {
        while pool.stats().queued < 1 {
            tokio::task::yield_now().await;
        }
    })
    .await;
    tokio::time::advance(SEC).await;
    assert!(!waiting.is_finished(), "no eligible worker: the task waits");
    pool.set_weight(1, 1).unwrap();
    assert_eq!(bounded(waiting).await.unwrap().unwrap().worker, 1);
    pool.stop().await;

    let pool = builder(2, &census)
        .weights([0, 0])
        .routing(Weighted::new())
        .fail_fast_without_workers(true)
        .spawn()
        .await
        .unwrap();
    assert_eq!(
        bounded(pool.submit(Job::Echo)).await,
        Err(TaskError::NoWorker)
    );
    assert_eq!(pool.stats().rejected, 1);
    pool.stop().await;
}

/// A custom routing that uses only the workers of weight 2 or more.
struct HeavyOnly;

impl Routing for HeavyOnly {
    fn route(&self, workers: &dyn WorkerViews, _key: Option<u64>) -> Target {
        (0..workers.len())
            .find(|&i| {
                let w = workers.get(i);
                self.eligible(&w) && w.can_take()
            })
            .map_or(Target::Unavailable, Target::One)
    }

    fn eligible(&self, worker: &WorkerView) -> bool {
        worker.live && worker.weight >= 2
    }
}

#[tokio::test(start_paused = true)]
async fn queued_tasks_go_only_to_eligible_workers_for_every_strategy() {
    let (census, _live, _) = census();
    // A custom strategy's eligibility holds for queued tasks too.
    let pool = builder(3, &census)
        .weights([2, 1, 1])
        .routing(HeavyOnly)
        .spawn()
        .await
        .unwrap();
    let ran = burst(&pool, 50, || Job::Sleep(MS)).await;
    assert!(ran.iter().all(|&w| w == 0), "{ran:?}");
    pool.stop().await;
    // Built-in strategies: whatever waits in the queue, no worker ever holds more tasks than
    // its limit, and every task runs.
    type Make<'a> = Box<dyn Fn() -> PoolBuilder<TestWorker> + 'a>;
    let strategies: Vec<(&str, Make)> = vec![
        (
            "round-robin",
            Box::new(|| builder(3, &census).routing(RoundRobin::new())),
        ),
        (
            "least-busy",
            Box::new(|| builder(3, &census).routing(LeastBusy::new())),
        ),
        (
            "weighted",
            Box::new(|| {
                builder(3, &census)
                    .weights([2, 0, 1])
                    .routing(Weighted::new())
            }),
        ),
        (
            "power-of-two",
            Box::new(|| builder(3, &census).routing(ractor_otp::pool::PowerOfTwo::with_seed(3))),
        ),
        (
            "key-hash",
            Box::new(|| builder(3, &census).routing(ractor_otp::pool::KeyHash::new())),
        ),
    ];
    for (name, make) in strategies {
        let pool = make().worker_concurrency(2).spawn().await.unwrap();
        let handles: Vec<_> = (0..60u64)
            .map(|k| {
                let p = pool.clone();
                tokio::spawn(async move {
                    p.submit_with(Job::Sleep(MS), TaskOptions::new().key(k % 5))
                        .await
                })
            })
            .collect();
        let mut peak = 0;
        let mut ran = Vec::new();
        for h in handles {
            let stats = pool.stats();
            peak = stats
                .workers
                .iter()
                .map(|w| w.in_flight)
                .max()
                .unwrap()
                .max(peak);
            ran.push(bounded(h).await.unwrap().unwrap().worker);
        }
        assert!(peak <= 2, "{name}: a worker held {peak} tasks");
        if name == "weighted" {
            assert!(!ran.contains(&1), "{name}: weight 0 ran a task: {ran:?}");
        }
        pool.stop().await;
    }
}

// ---- settings that cannot work -----------------------------------------------------------

#[tokio::test(start_paused = true)]
async fn settings_that_cannot_work_are_refused_with_what_to_write_instead() {
    let (census, _live, _) = census();
    let zero_timeout = builder(2, &census).task_timeout(Duration::ZERO, SEC);
    let err = zero_timeout.spawn().await.unwrap_err();
    assert!(matches!(
        err,
        StartError::InvalidPool(PoolConfigError::ZeroTaskTimeout)
    ));
    assert!(err.to_string().contains("above zero"), "{err}");
    for (weights, given) in [(vec![1], 1), (vec![1, 2, 3], 3)] {
        let err = builder(2, &census)
            .weights(weights)
            .spawn()
            .await
            .unwrap_err();
        assert!(
            matches!(
                err,
                StartError::InvalidPool(PoolConfigError::WeightsLength { given: g, size: 2 })
                    if g == given
            ),
            "{err:?}"
        );
        assert!(err.to_string().contains("one weight per worker"), "{err}");
    }
    // No doubled prefix.
    let err = builder(0, &census).spawn().await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid pool settings: size is 0; a pool needs at least one worker: set size(n) with n >= 1"
    );
    // One weight per worker is fine, and so is none.
    builder(2, &census)
        .weights([3, 1])
        .spawn()
        .await
        .unwrap()
        .stop()
        .await;
    builder(2, &census)
        .queue(1, Overflow::Reject)
        .spawn()
        .await
        .unwrap()
        .stop()
        .await;
}

// ---- a worker stuck on the CPU -----------------------------------------------------------

/// Waits for the incarnation `generation` of `worker` to start.
async fn started(rx: &mut mpsc::UnboundedReceiver<(usize, u64)>, worker: usize, generation: u64) {
    bounded(async {
        while let Some(seen) = rx.recv().await {
            if seen == (worker, generation) {
                return;
            }
        }
        panic!("census closed");
    })
    .await;
}

/// Ends the spin when dropped, so a failing test ends too (a runtime waits for its threads).
struct Unspin(Arc<AtomicBool>);

impl Drop for Unspin {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Release);
    }
}

/// Sends worker 0 (round-robin's first pick) a task that spins without yielding; returns once
/// it spins, with the caller's answer and the guard that ends the spin.
async fn spin_worker_0(pool: &PoolRef<TestWorker>) -> (tokio::task::JoinHandle<Answer>, Unspin) {
    let stop = Arc::new(AtomicBool::new(false));
    let (tx, mut spinning) = mpsc::unbounded_channel();
    let spin = spawn_submit(pool, Job::Spin(tx, stop.clone()));
    assert_eq!(bounded(spinning.recv()).await, Some(0));
    (spin, Unspin(stop))
}

/// A spinning handler blocks a runtime thread, so these run on two threads in real time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_stuck_on_the_cpu_past_its_timeout_is_replaced() {
    let (census, _live, mut starts) = census();
    let pool = builder(2, &census)
        .routing(RoundRobin::new())
        .task_timeout(200 * MS, 100 * MS)
        .spawn()
        .await
        .unwrap();
    started(&mut starts, 0, 1).await;
    started(&mut starts, 1, 1).await;
    let (spin, unspin) = spin_worker_0(&pool).await;
    assert_eq!(bounded(spin).await.unwrap(), Err(TaskError::TimedOut));
    // Past timeout + grace, a new incarnation starts in its slot while the old one spins.
    started(&mut starts, 0, 2).await;
    assert_eq!(pool.stats().stuck, 1);
    // Restarts are counted from the supervisor's events, just after the start.
    bounded(async {
        while pool.stats().restarts < 1 {
            tokio::task::yield_now().await;
        }
    })
    .await;
    // No task goes to the stuck incarnation: every one runs, on a live one.
    for _ in 0..6 {
        let ran = bounded(pool.submit(Job::Echo)).await.unwrap();
        assert!(ran.worker == 1 || ran.generation == 2, "{ran:?}");
    }
    drop(unspin);
    bounded(pool.stop()).await;
    assert_eq!(pool.stats().stuck, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_stuck_on_the_cpu_is_found_by_the_health_check() {
    let (census, _live, mut starts) = census();
    let pool = builder(2, &census)
        .routing(RoundRobin::new())
        .health_check(100 * MS, 100 * MS)
        .spawn()
        .await
        .unwrap();
    started(&mut starts, 0, 1).await;
    let (spin, unspin) = spin_worker_0(&pool).await;
    started(&mut starts, 0, 2).await;
    assert_eq!(pool.stats().stuck, 1);
    let ran = bounded(pool.submit(Job::Echo)).await.unwrap();
    assert!(ran.worker == 1 || ran.generation == 2, "{ran:?}");
    // The spin ends: the abandoned incarnation answers its task and ends.
    drop(unspin);
    assert_eq!(
        bounded(spin)
            .await
            .unwrap()
            .map(|r| (r.worker, r.generation)),
        Ok((0, 1))
    );
    bounded(pool.stop()).await;
}
