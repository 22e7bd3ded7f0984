//! Pool throughput, request/reply latency, and skewed work.
//!
//! Everything runs on a multi-thread tokio runtime with 2 workers; the timing loops run as
//! tasks on a runtime worker, as an application's code would.
//!
//! * **Throughput** (criterion group `pool_throughput`, in tasks/s): one producer hands
//!   `N` = 1 000 000 fire-and-forget tasks to 4 workers; an iteration ends when the N-th task
//!   has been handled (each worker adds the task's `u64` into its own state and bumps a shared
//!   counter; the worker that handles the N-th task fires a `Notify` the producer awaits).
//!   Contenders, each doing the same work per task:
//!   - `ractor-otp <strategy> k=<limit> q=<capacity>`: `pool.cast(task).await`, with
//!     `RoundRobin`, `LeastBusy`, `Weighted` (weights 1,1,1,1 and 2,1,1,1), `PowerOfTwo`; `k`
//!     is `worker_concurrency`: 1 (the default: a task waits in the pool's queue until a worker
//!     is idle), 64, 256, and `inf` (2^30: the limit never binds and every task goes straight
//!     into a worker's mailbox, like the ractor contenders' unbounded mailboxes); `q` is the
//!     queue capacity, 10 000 (the default) or 1 000 000, `Overflow::Wait` throughout;
//!   - `ractor factory RoundRobin`: ractor's own `Factory` with `RoundRobinRouting`, 4
//!     workers, `factory.cast(FactoryMessage::Dispatch(Job::new((), task)))`;
//!   - `hand-written router`: a plain ractor actor holding 4 worker `ActorRef`s that forwards
//!     each message round-robin (two mailbox hops: producer → router → worker);
//!   - `direct (anchor)`: the producer casts round-robin straight to 4 plain ractor workers
//!     (one hop): the floor.
//!
//!   The criterion group runs the headline contenders; after it, a hand-timed pass runs every
//!   configuration 3 times (rounds interleaved, so all share any drift) and prints the median
//!   tasks/s, the ratios, and the targets; then the headline contenders on a current-thread
//!   runtime, for reference (the CPU cost per task, without cross-thread traffic).
//! * **Request/reply** (criterion group `pool_request_reply`, then a hand-timed pass printing
//!   p50/p99): `pool.submit(task).await` on a pool of 1 (and of 4) workers against a direct
//!   `ractor::call!` to a plain actor doing the same work; the p50 difference is the pool's
//!   overhead. Again on a current-thread runtime for reference (no cross-thread wake-ups).
//! * **Skewed work** (hand-timed only): 4 workers, 400 tasks of which 10 % take 20× longer:
//!   `tokio::time::sleep` of 1 ms vs 20 ms (I/O-like work, so the 4 workers really run in
//!   parallel on 2 threads; a CPU spin would be capped by the 2 cores). The long tasks sit at
//!   seeded random positions (mean over 5 seeds), or at every 10th position (a pattern that a
//!   rotation over 4 workers lines up with). All tasks are submitted at once with `submit()`;
//!   the makespan is the time until the last answer. `LeastBusy` and `RoundRobin` at
//!   `worker_concurrency` 1 (a task waits in the pool's queue and the next idle worker pulls
//!   it) and at 1 000 (each task is routed at submit time into a worker's mailbox, where it can
//!   wait behind a long task), `PowerOfTwo` at 1 000, and an anchor: 4 plain tokio tasks
//!   pulling from one shared queue (the best a dynamic dispatch can do with these sleeps).
//!   It also prints the bounds on paper: a rotation's makespan is fixed by where the long tasks
//!   sit, and no scheduler can finish before max(total / 4, longest task); for random
//!   placement their ratio, the best any scheduler could reach, is about 0.79x, above the 0.7x
//!   target, which only an adversarial pattern (every 10th) leaves room for.
//!
//! * **Shapes** (hand-timed only): 1, 2, 4, 16 and 64 workers × 1, 2 and 4 producers, each
//!   producer casting its share of 400 000 tasks; the pool under `RoundRobin`, `LeastBusy`
//!   (k=inf and k=1), `Weighted` and `PowerOfTwo` against the one-hop floor of the same shape:
//!   the producers casting round-robin straight into as many plain ractor workers.
//!
//! Environment knobs for the hand-timed part: `POOL_BENCH_REPORTS` (comma-separated:
//! `throughput`, `shapes`, `latency`, `skew`; default all), `POOL_BENCH_ROUNDS` (default 3),
//! `POOL_BENCH_FILTER` (comma-separated substrings of pool contender names). To run one report
//! alone, pass a criterion filter that matches nothing: `POOL_BENCH_REPORTS=skew cargo bench
//! --bench pool -- none`.

use std::convert::Infallible;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, Criterion, SamplingMode, Throughput};
use ractor::factory::queues::DefaultQueue;
use ractor::factory::routing::RoundRobinRouting;
use ractor::factory::{worker_builder, Factory, FactoryArguments, FactoryMessage, Job, WorkerId};
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use ractor_otp::pool::{LeastBusy, Overflow, Pool, PoolRef, PowerOfTwo, RoundRobin, Weighted};
use ractor_otp::worker::Worker;
use tokio::runtime::Runtime;
use tokio::sync::Notify;

/// Tasks per throughput iteration.
const N: u64 = 1_000_000;
/// Workers in every contender.
const WORKERS: usize = 4;

// ---------------------------------------------------------------------------------------------
// The work: add the task into the worker's state, count it
// ---------------------------------------------------------------------------------------------

/// Counts handled tasks; the worker that handles the `target`-th one wakes the producer.
struct Sink {
    done: AtomicU64,
    target: AtomicU64,
    notify: Notify,
}

impl Sink {
    fn new() -> Arc<Sink> {
        Arc::new(Sink {
            done: AtomicU64::new(0),
            target: AtomicU64::new(u64::MAX),
            notify: Notify::new(),
        })
    }

    fn hit(&self) {
        let done = self.done.fetch_add(1, Ordering::AcqRel) + 1;
        if done == self.target.load(Ordering::Acquire) {
            // Stores a permit if the producer is not waiting yet.
            self.notify.notify_one();
        }
    }

    /// Call between runs only (no task in flight).
    fn arm(&self, n: u64) {
        self.done.store(0, Ordering::Release);
        self.target.store(n, Ordering::Release);
    }

    async fn wait(&self) {
        self.notify.notified().await;
    }
}

/// The pool's worker.
struct Adder {
    sum: u64,
    sink: Arc<Sink>,
}

impl Worker for Adder {
    type Task = u64;
    type Output = u64;
    type Error = Infallible;

    async fn handle(&mut self, n: u64) -> Result<u64, Infallible> {
        self.sum = self.sum.wrapping_add(n);
        self.sink.hit();
        Ok(self.sum)
    }
}

/// A plain ractor worker (router, direct): the same work.
struct PlainAdder;

#[cfg_attr(feature = "async-trait", ractor::async_trait)]
impl Actor for PlainAdder {
    type Msg = u64;
    type State = (u64, Arc<Sink>);
    type Arguments = Arc<Sink>;

    async fn pre_start(
        &self,
        _: ActorRef<u64>,
        sink: Arc<Sink>,
    ) -> Result<(u64, Arc<Sink>), ActorProcessingErr> {
        Ok((0, sink))
    }

    async fn handle(
        &self,
        _: ActorRef<u64>,
        n: u64,
        state: &mut (u64, Arc<Sink>),
    ) -> Result<(), ActorProcessingErr> {
        state.0 = state.0.wrapping_add(n);
        state.1.hit();
        Ok(())
    }
}

/// The hand-written router: forwards each message round-robin.
struct Router;

#[cfg_attr(feature = "async-trait", ractor::async_trait)]
impl Actor for Router {
    type Msg = u64;
    type State = (Vec<ActorRef<u64>>, usize);
    type Arguments = Vec<ActorRef<u64>>;

    async fn pre_start(
        &self,
        _: ActorRef<u64>,
        workers: Vec<ActorRef<u64>>,
    ) -> Result<Self::State, ActorProcessingErr> {
        Ok((workers, 0))
    }

    async fn handle(
        &self,
        _: ActorRef<u64>,
        n: u64,
        (workers, next): &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        workers[*next].cast(n)?;
        *next = (*next + 1) % workers.len();
        Ok(())
    }
}

/// ractor's factory worker: the same work.
struct FactoryAdder {
    sink: Arc<Sink>,
}

#[cfg_attr(feature = "async-trait", ractor::async_trait)]
impl ractor::factory::Worker for FactoryAdder {
    type Key = ();
    type Message = u64;
    type State = u64;
    type Arguments = ();

    async fn pre_start(
        &self,
        _: WorkerId,
        _: &ActorRef<FactoryMessage<(), u64>>,
        _: (),
    ) -> Result<u64, ActorProcessingErr> {
        Ok(0)
    }

    async fn handle(
        &self,
        _: WorkerId,
        _: &ActorRef<FactoryMessage<(), u64>>,
        job: Job<(), u64>,
        sum: &mut u64,
    ) -> Result<(), ActorProcessingErr> {
        *sum = sum.wrapping_add(job.msg);
        self.sink.hit();
        Ok(())
    }
}

type AdderFactory =
    Factory<(), u64, (), FactoryAdder, RoundRobinRouting<(), u64>, DefaultQueue<(), u64>>;

// ---------------------------------------------------------------------------------------------
// Throughput contenders
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Strat {
    RoundRobin,
    LeastBusy,
    Weighted,
    Weighted2111,
    PowerOfTwo,
}

impl Strat {
    fn name(self) -> &'static str {
        match self {
            Strat::RoundRobin => "RoundRobin",
            Strat::LeastBusy => "LeastBusy",
            Strat::Weighted => "Weighted 1,1,1,1",
            Strat::Weighted2111 => "Weighted 2,1,1,1",
            Strat::PowerOfTwo => "PowerOfTwo",
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Contender {
    Pool {
        strat: Strat,
        limit: usize,
        capacity: usize,
    },
    Factory,
    Router,
    Direct,
}

const SMALL_Q: usize = 10_000;
/// Worker concurrency limits tried; the last one never binds (no task waits in the pool's
/// queue: every task goes straight into a worker's mailbox, as with plain ractor actors).
const LIMITS: [usize; 4] = [1, 64, 256, UNBOUNDED];
const UNBOUNDED: usize = 1 << 30;
const BIG_Q: usize = 1_000_000;

fn pool(strat: Strat, limit: usize, capacity: usize) -> Contender {
    Contender::Pool {
        strat,
        limit,
        capacity,
    }
}

impl Contender {
    fn name(self) -> String {
        match self {
            Contender::Pool {
                strat,
                limit,
                capacity,
            } => {
                let q = if capacity >= 1_000_000 {
                    format!("{}M", capacity / 1_000_000)
                } else {
                    format!("{}k", capacity / 1_000)
                };
                if limit == UNBOUNDED {
                    format!("ractor-otp {} k=inf q={q}", strat.name())
                } else {
                    format!("ractor-otp {} k={limit} q={q}", strat.name())
                }
            }
            Contender::Factory => "ractor factory RoundRobin".into(),
            Contender::Router => "hand-written router".into(),
            Contender::Direct => "direct (anchor)".into(),
        }
    }

    async fn spawn(self) -> Running {
        self.spawn_sized(WORKERS).await
    }

    /// With `size` workers (the factory and the router always have [`WORKERS`]).
    async fn spawn_sized(self, size: usize) -> Running {
        let sink = Sink::new();
        let target = match self {
            Contender::Pool {
                strat,
                limit,
                capacity,
            } => Target::Pool(spawn_pool(strat, limit, capacity, size, &sink).await),
            Contender::Factory => {
                let s = sink.clone();
                let args = FactoryArguments::builder()
                    .worker_builder(Box::new(worker_builder(move |_| {
                        (FactoryAdder { sink: s.clone() }, ())
                    })))
                    .num_initial_workers(WORKERS)
                    .queue(DefaultQueue::default())
                    .router(RoundRobinRouting::default())
                    .build();
                let (factory, _) = Actor::spawn(None, AdderFactory::default(), args)
                    .await
                    .expect("spawn the factory");
                Target::Factory(factory)
            }
            Contender::Router => {
                let workers = spawn_plain(&sink, WORKERS).await;
                let (router, _) = Actor::spawn(None, Router, workers.clone())
                    .await
                    .expect("spawn the router");
                Target::Router(router, workers)
            }
            Contender::Direct => Target::Direct(spawn_plain(&sink, size).await),
        };
        Running { sink, target }
    }
}

async fn spawn_pool(
    strat: Strat,
    limit: usize,
    capacity: usize,
    size: usize,
    sink: &Arc<Sink>,
) -> PoolRef<Adder> {
    let s = sink.clone();
    let builder = Pool::builder(move |_| Adder {
        sum: 0,
        sink: s.clone(),
    })
    .size(size)
    .worker_concurrency(limit)
    .queue(capacity, Overflow::Wait);
    let builder = match strat {
        Strat::RoundRobin => builder.routing(RoundRobin::new()),
        Strat::LeastBusy => builder.routing(LeastBusy::new()),
        Strat::Weighted => builder.routing(Weighted::new()),
        Strat::Weighted2111 => builder.routing(Weighted::new()).weights([2, 1, 1, 1]),
        Strat::PowerOfTwo => builder.routing(PowerOfTwo::with_seed(7)),
    };
    builder.spawn().await.expect("spawn the pool")
}

async fn spawn_plain(sink: &Arc<Sink>, size: usize) -> Vec<ActorRef<u64>> {
    let mut workers = Vec::with_capacity(size);
    for _ in 0..size {
        let (w, _) = Actor::spawn(None, PlainAdder, sink.clone())
            .await
            .expect("spawn a plain worker");
        workers.push(w);
    }
    workers
}

enum Target {
    Pool(PoolRef<Adder>),
    Factory(ActorRef<FactoryMessage<(), u64>>),
    Router(ActorRef<u64>, Vec<ActorRef<u64>>),
    Direct(Vec<ActorRef<u64>>),
}

struct Running {
    sink: Arc<Sink>,
    target: Target,
}

impl Running {
    /// Hands `n` tasks over and waits until all have been handled.
    async fn run(&self, n: u64) -> Duration {
        self.sink.arm(n);
        let t = Instant::now();
        match &self.target {
            Target::Pool(pool) => {
                for i in 0..n {
                    pool.cast(i).await.expect("cast to the pool");
                }
            }
            Target::Factory(factory) => {
                for i in 0..n {
                    factory
                        .cast(FactoryMessage::Dispatch(Job::new((), i)))
                        .expect("cast to the factory");
                }
            }
            Target::Router(router, _) => {
                for i in 0..n {
                    router.cast(i).expect("cast to the router");
                }
            }
            Target::Direct(workers) => {
                for i in 0..n {
                    workers[i as usize % workers.len()]
                        .cast(i)
                        .expect("cast to a worker");
                }
            }
        }
        self.sink.wait().await;
        t.elapsed()
    }

    /// Hands `n` tasks over from `producers` tasks at once (producer `p` hands over tasks
    /// `p, p + producers, ...`; the direct anchor's producer `p` starts its rotation at worker
    /// `p`) and waits until all have been handled.
    async fn run_from(&self, n: u64, producers: u64) -> Duration {
        if producers <= 1 {
            return self.run(n).await;
        }
        self.sink.arm(n);
        let t = Instant::now();
        let mut handles = Vec::new();
        for p in 0..producers {
            let tasks = (p..n).step_by(producers as usize);
            handles.push(match &self.target {
                Target::Pool(pool) => {
                    let pool = pool.clone();
                    tokio::spawn(async move {
                        for i in tasks {
                            pool.cast(i).await.expect("cast to the pool");
                        }
                    })
                }
                Target::Direct(workers) => {
                    let workers = workers.clone();
                    tokio::spawn(async move {
                        for i in tasks {
                            workers[(i / producers + p) as usize % workers.len()]
                                .cast(i)
                                .expect("cast to a worker");
                        }
                    })
                }
                _ => unreachable!("the shapes report runs the pool and the direct anchor"),
            });
        }
        for h in handles {
            h.await.expect("a producer");
        }
        self.sink.wait().await;
        t.elapsed()
    }

    async fn stop(self) {
        match self.target {
            Target::Pool(pool) => pool.stop().await,
            Target::Factory(factory) => {
                let _ = factory.stop_and_wait(None, None).await;
            }
            Target::Router(router, workers) => {
                let _ = router.stop_and_wait(None, None).await;
                for w in workers {
                    let _ = w.stop_and_wait(None, None).await;
                }
            }
            Target::Direct(workers) => {
                for w in workers {
                    let _ = w.stop_and_wait(None, None).await;
                }
            }
        }
    }
}

/// The headline contenders (criterion); the hand-timed pass runs [`all_contenders`].
fn headline_contenders() -> Vec<Contender> {
    vec![
        pool(Strat::RoundRobin, 1, SMALL_Q),
        pool(Strat::RoundRobin, UNBOUNDED, SMALL_Q),
        pool(Strat::LeastBusy, UNBOUNDED, SMALL_Q),
        pool(Strat::Weighted, UNBOUNDED, SMALL_Q),
        pool(Strat::PowerOfTwo, UNBOUNDED, SMALL_Q),
        Contender::Factory,
        Contender::Router,
        Contender::Direct,
    ]
}

fn all_contenders() -> Vec<Contender> {
    let mut all = Vec::new();
    for strat in [Strat::RoundRobin, Strat::LeastBusy, Strat::Weighted] {
        for limit in LIMITS {
            all.push(pool(strat, limit, SMALL_Q));
        }
    }
    for strat in [Strat::Weighted2111, Strat::PowerOfTwo] {
        for limit in [1, UNBOUNDED] {
            all.push(pool(strat, limit, SMALL_Q));
        }
    }
    all.push(pool(Strat::RoundRobin, 1, BIG_Q));
    all.extend([Contender::Factory, Contender::Router, Contender::Direct]);
    all
}

fn runtime() -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime")
}

fn bench_throughput(c: &mut Criterion) {
    let rt = runtime();
    let mut group = c.benchmark_group("pool_throughput");
    group
        .sample_size(10)
        .sampling_mode(SamplingMode::Flat)
        .throughput(Throughput::Elements(N))
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3));
    for contender in headline_contenders() {
        group.bench_function(contender.name(), |b| {
            b.to_async(&rt).iter_custom(|iters| async move {
                let task = tokio::spawn(async move {
                    let running = contender.spawn().await;
                    let mut total = Duration::ZERO;
                    for _ in 0..iters {
                        total += running.run(N).await;
                    }
                    running.stop().await;
                    total
                });
                task.await.expect("the timing task")
            });
        });
    }
    group.finish();
}

/// The hand-timed rounds (`POOL_BENCH_ROUNDS`, default 3).
fn rounds() -> usize {
    std::env::var("POOL_BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3)
}

/// Keeps the contenders `POOL_BENCH_FILTER` (comma-separated substrings of pool contender
/// names) picks; the ractor contenders always stay.
fn filtered(contenders: Vec<Contender>) -> Vec<Contender> {
    let filter = std::env::var("POOL_BENCH_FILTER").unwrap_or_default();
    contenders
        .into_iter()
        .filter(|c| {
            filter.is_empty()
                || !matches!(c, Contender::Pool { .. })
                || filter.split(',').any(|f| c.name().contains(f.trim()))
        })
        .collect()
}

/// Tasks/s of each contender: every run's, `rounds` runs, rounds interleaved.
fn measure_rates(rt: &Runtime, contenders: &[Contender], rounds: usize) -> Vec<Vec<f64>> {
    let list = contenders.to_vec();
    let rates: Vec<Vec<f64>> = rt
        .block_on(async {
            tokio::spawn(async move {
                let mut rates = vec![Vec::with_capacity(rounds); list.len()];
                for _ in 0..rounds {
                    for (i, c) in list.iter().enumerate() {
                        let running = c.spawn().await;
                        running.run(N / 10).await; // warm-up
                        let elapsed = running.run(N).await;
                        running.stop().await;
                        rates[i].push(N as f64 / elapsed.as_secs_f64());
                    }
                }
                rates
            })
            .await
        })
        .expect("the timing task");
    rates
}

/// Prints the table; returns the rate lookup.
/// Prints the medians and the spread (min and max over the runs); returns the median lookup.
fn print_rates(
    title: &str,
    contenders: &[Contender],
    runs: &[Vec<f64>],
) -> impl Fn(Contender) -> f64 {
    let rates: Vec<f64> = runs.iter().map(|r| median(&mut r.clone())).collect();
    let rates = &rates[..];
    let rate_of = {
        let (contenders, rates) = (contenders.to_vec(), rates.to_vec());
        move |c: Contender| {
            contenders
                .iter()
                .position(|&x| x == c)
                .map_or(f64::NAN, |i| rates[i])
        }
    };
    let factory = rate_of(Contender::Factory);
    let router = rate_of(Contender::Router);
    let direct = rate_of(Contender::Direct);
    println!();
    println!("pool throughput: {N} fire-and-forget tasks, 1 producer, 4 workers ({title})");
    println!(
        "{:<38} {:>9} {:>13} {:>8} {:>9} {:>8} {:>8}",
        "contender", "M tasks/s", "(min-max)", "ns/task", "/factory", "/router", "/direct"
    );
    for ((c, &r), run) in contenders.iter().zip(rates).zip(runs) {
        let min = run.iter().copied().fold(f64::INFINITY, f64::min);
        let max = run.iter().copied().fold(0.0, f64::max);
        println!(
            "{:<38} {:>9.3} {:>13} {:>8.0} {:>8.2}x {:>7.2}x {:>7.2}x",
            c.name(),
            r / 1e6,
            format!("({:.2}-{:.2})", min / 1e6, max / 1e6),
            1e9 / r,
            r / factory,
            r / router,
            r / direct
        );
    }
    rate_of
}

/// The multi-thread table over every configuration, with the targets; then the headline
/// contenders on a current-thread runtime, for reference.
fn throughput_report(rt: &Runtime) {
    let rounds = rounds();
    let contenders = filtered(all_contenders());
    let runs = measure_rates(rt, &contenders, rounds);
    let rate_of = print_rates(
        &format!("multi-thread runtime, 2 workers; median of {rounds} runs"),
        &contenders,
        &runs,
    );
    let rates: Vec<f64> = contenders.iter().map(|&c| rate_of(c)).collect();
    let factory = rate_of(Contender::Factory);
    let router = rate_of(Contender::Router);
    let best = |only: Option<Strat>| {
        contenders
            .iter()
            .zip(&rates)
            .filter(|(c, _)| match (c, only) {
                (Contender::Pool { strat, .. }, Some(s)) => *strat == s,
                (Contender::Pool { .. }, None) => true,
                _ => false,
            })
            .max_by(|a, b| a.1.total_cmp(b.1))
            .map(|(c, r)| (*c, *r))
    };
    if let Some((c, r)) = best(None) {
        println!(
            "fastest pool configuration this run: {} ({:.3} M tasks/s); on a small shared VM \
             one contender's runs often spread by 30% or more (min-max), so smaller \
             differences between pool configurations are noise",
            c.name(),
            r / 1e6
        );
    }
    let default = pool(Strat::RoundRobin, 1, SMALL_Q);
    let mut checks = vec![(default, rate_of(default))];
    if let Some(b) = best(Some(Strat::RoundRobin)).filter(|(c, _)| *c != default) {
        checks.push(b);
    }
    for (c, rr) in checks.into_iter().filter(|(_, r)| r.is_finite()) {
        println!(
            "targets, {}: >= 2.5x factory [{}] ({:.2}x), >= 0.8x router [{}] ({:.2}x), \
             >= 1.5 M tasks/s [{}] ({:.2} M)",
            c.name(),
            verdict(rr / factory >= 2.5),
            rr / factory,
            verdict(rr / router >= 0.8),
            rr / router,
            verdict(rr >= 1.5e6),
            rr / 1e6
        );
    }
    for limit in LIMITS {
        let rr = rate_of(pool(Strat::RoundRobin, limit, SMALL_Q));
        let lb = rate_of(pool(Strat::LeastBusy, limit, SMALL_Q));
        let w = rate_of(pool(Strat::Weighted, limit, SMALL_Q));
        if !(rr.is_finite() && lb.is_finite() && w.is_finite()) {
            continue;
        }
        let k = if limit == UNBOUNDED {
            "inf".to_string()
        } else {
            limit.to_string()
        };
        println!(
            "targets, k={k}: LeastBusy within 15% of RoundRobin [{}] ({:+.1}%), Weighted \
             1,1,1,1 within 15% [{}] ({:+.1}%)",
            verdict(lb >= 0.85 * rr),
            (lb / rr - 1.0) * 100.0,
            verdict(w >= 0.85 * rr),
            (w / rr - 1.0) * 100.0
        );
    }
    let single = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let contenders = filtered(headline_contenders());
    let rates = measure_rates(&single, &contenders, rounds);
    let _ = print_rates(
        &format!(
            "current-thread runtime, for reference: the CPU cost per task without cross-thread \
             traffic; median of {rounds} runs"
        ),
        &contenders,
        &rates,
    );
}

/// Worker counts of the shapes report.
const SHAPE_SIZES: [usize; 5] = [1, 2, 4, 16, 64];
/// Producer counts of the shapes report.
const SHAPE_PRODUCERS: [u64; 3] = [1, 2, 4];
/// Tasks per run in the shapes report.
const SHAPE_N: u64 = 400_000;

/// The pool at every shape (workers × producers) against the one-hop floor of the same shape:
/// producers casting round-robin straight into plain ractor workers. Rounds are interleaved
/// within a shape; the table gives each contender's median tasks/s over the anchor's.
fn shapes_report(rt: &Runtime) {
    let rounds = rounds();
    let strategies = filtered(vec![
        pool(Strat::RoundRobin, UNBOUNDED, SMALL_Q),
        pool(Strat::LeastBusy, UNBOUNDED, SMALL_Q),
        pool(Strat::LeastBusy, 1, SMALL_Q),
        pool(Strat::Weighted, UNBOUNDED, SMALL_Q),
        pool(Strat::PowerOfTwo, UNBOUNDED, SMALL_Q),
    ]);
    let strategies: Vec<Contender> = strategies
        .into_iter()
        .filter(|c| matches!(c, Contender::Pool { .. }))
        .collect();
    println!();
    println!(
        "pool shapes: {SHAPE_N} fire-and-forget tasks; ratio of the median tasks/s (of \
         {rounds}) to the direct one-hop anchor of the same shape (multi-thread runtime, 2 \
         workers); target >= 0.85x everywhere"
    );
    print!("{:<10} {:>12}", "shape", "direct M/s");
    for c in &strategies {
        print!(" {:>22}", short_name(*c));
    }
    println!();
    let mut worst = f64::INFINITY;
    for size in SHAPE_SIZES {
        for producers in SHAPE_PRODUCERS {
            let mut contenders = vec![Contender::Direct];
            contenders.extend(strategies.iter().copied());
            let list = contenders.clone();
            let runs: Vec<Vec<f64>> = rt
                .block_on(async move {
                    tokio::spawn(async move {
                        let mut rates = vec![Vec::with_capacity(rounds); list.len()];
                        for _ in 0..rounds {
                            for (i, c) in list.iter().enumerate() {
                                let running = c.spawn_sized(size).await;
                                running.run_from(SHAPE_N / 10, producers).await; // warm-up
                                let elapsed = running.run_from(SHAPE_N, producers).await;
                                running.stop().await;
                                rates[i].push(SHAPE_N as f64 / elapsed.as_secs_f64());
                            }
                        }
                        rates
                    })
                    .await
                })
                .expect("the timing task");
            let medians: Vec<f64> = runs.iter().map(|r| median(&mut r.clone())).collect();
            print!(
                "{:<10} {:>12.3}",
                format!("{size}w x {producers}p"),
                medians[0] / 1e6
            );
            for m in &medians[1..] {
                let ratio = m / medians[0];
                worst = worst.min(ratio);
                print!(" {:>21.2}x", ratio);
            }
            println!();
        }
    }
    println!(
        "targets, every shape and strategy >= 0.85x the direct anchor [{}] (lowest {worst:.2}x)",
        verdict(worst >= 0.85)
    );
}

/// A pool contender's name without the queue capacity (every shape uses the default).
fn short_name(c: Contender) -> String {
    c.name()
        .trim_start_matches("ractor-otp ")
        .trim_end_matches(" q=10k")
        .to_string()
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

// ---------------------------------------------------------------------------------------------
// Request/reply latency
// ---------------------------------------------------------------------------------------------

/// What a plain actor answers a `call!` with.
enum CallMsg {
    Add(u64, RpcReplyPort<u64>),
}

#[cfg(feature = "cluster")]
impl ractor::Message for CallMsg {}

/// The `call!` contender: the same work as [`Adder`].
struct CallAdder;

#[cfg_attr(feature = "async-trait", ractor::async_trait)]
impl Actor for CallAdder {
    type Msg = CallMsg;
    type State = (u64, Arc<Sink>);
    type Arguments = Arc<Sink>;

    async fn pre_start(
        &self,
        _: ActorRef<CallMsg>,
        sink: Arc<Sink>,
    ) -> Result<(u64, Arc<Sink>), ActorProcessingErr> {
        Ok((0, sink))
    }

    async fn handle(
        &self,
        _: ActorRef<CallMsg>,
        CallMsg::Add(n, reply): CallMsg,
        state: &mut (u64, Arc<Sink>),
    ) -> Result<(), ActorProcessingErr> {
        state.0 = state.0.wrapping_add(n);
        state.1.hit();
        let _ = reply.send(state.0);
        Ok(())
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Caller {
    Pool1,
    Pool4,
    Call,
}

impl Caller {
    const ALL: [Caller; 3] = [Caller::Pool1, Caller::Pool4, Caller::Call];

    fn name(self) -> &'static str {
        match self {
            Caller::Pool1 => "ractor-otp submit, 1 worker",
            Caller::Pool4 => "ractor-otp submit, 4 workers RR",
            Caller::Call => "ractor call! (plain actor)",
        }
    }

    async fn spawn(self) -> Callee {
        let sink = Sink::new();
        match self {
            Caller::Pool1 => {
                Callee::Pool(spawn_pool(Strat::RoundRobin, 1, SMALL_Q, 1, &sink).await)
            }
            Caller::Pool4 => {
                Callee::Pool(spawn_pool(Strat::RoundRobin, 1, SMALL_Q, WORKERS, &sink).await)
            }
            Caller::Call => {
                let (a, _) = Actor::spawn(None, CallAdder, sink)
                    .await
                    .expect("spawn the call! actor");
                Callee::Actor(a)
            }
        }
    }
}

enum Callee {
    Pool(PoolRef<Adder>),
    Actor(ActorRef<CallMsg>),
}

impl Callee {
    async fn once(&self, n: u64) -> u64 {
        match self {
            Callee::Pool(pool) => pool.submit(n).await.expect("submit"),
            Callee::Actor(actor) => ractor::call!(actor, CallMsg::Add, n).expect("call!"),
        }
    }

    async fn stop(self) {
        match self {
            Callee::Pool(pool) => pool.stop().await,
            Callee::Actor(actor) => {
                let _ = actor.stop_and_wait(None, None).await;
            }
        }
    }
}

fn bench_request_reply(c: &mut Criterion) {
    let rt = runtime();
    let mut group = c.benchmark_group("pool_request_reply");
    group
        .sample_size(20)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    for caller in Caller::ALL {
        group.bench_function(caller.name(), |b| {
            b.to_async(&rt).iter_custom(|iters| async move {
                let task = tokio::spawn(async move {
                    let callee = caller.spawn().await;
                    let t = Instant::now();
                    for i in 0..iters {
                        std::hint::black_box(callee.once(i).await);
                    }
                    let total = t.elapsed();
                    callee.stop().await;
                    total
                });
                task.await.expect("the timing task")
            });
        });
    }
    group.finish();
}

struct Stats {
    mean: f64,
    p50: f64,
    p99: f64,
    n: usize,
}

fn stats(samples: &mut [Duration]) -> Stats {
    samples.sort_unstable();
    let us = |d: Duration| d.as_secs_f64() * 1e6;
    let n = samples.len();
    let at = |q: f64| us(samples[((n as f64 * q).ceil() as usize).clamp(1, n) - 1]);
    Stats {
        mean: samples.iter().map(|&d| us(d)).sum::<f64>() / n as f64,
        p50: at(0.50),
        p99: at(0.99),
        n,
    }
}

/// Per-call timing, contenders interleaved in blocks.
fn latency_report(rt: &Runtime, title: &str, with_targets: bool) {
    const WARMUP: u64 = 5_000;
    const BLOCK: usize = 5_000;
    const ROUNDS: usize = 10;
    let mut samples = rt
        .block_on(async {
            tokio::spawn(async move {
                let mut samples: Vec<Vec<Duration>> =
                    vec![Vec::with_capacity(BLOCK * ROUNDS); Caller::ALL.len()];
                let mut callees = Vec::new();
                for caller in Caller::ALL {
                    let callee = caller.spawn().await;
                    for i in 0..WARMUP {
                        callee.once(i).await;
                    }
                    callees.push(callee);
                }
                for _ in 0..ROUNDS {
                    for (i, callee) in callees.iter().enumerate() {
                        for k in 0..BLOCK {
                            let t = Instant::now();
                            std::hint::black_box(callee.once(k as u64).await);
                            samples[i].push(t.elapsed());
                        }
                    }
                }
                for callee in callees {
                    callee.stop().await;
                }
                samples
            })
            .await
        })
        .expect("the timing task");
    let results: Vec<Stats> = samples.iter_mut().map(|s| stats(s)).collect();
    println!();
    println!("request/reply latency: one caller, one request at a time ({title})");
    println!(
        "{:<34} {:>8} {:>9} {:>9} {:>9}",
        "contender", "n", "mean µs", "p50 µs", "p99 µs"
    );
    for (caller, s) in Caller::ALL.iter().zip(&results) {
        println!(
            "{:<34} {:>8} {:>9.2} {:>9.2} {:>9.2}",
            caller.name(),
            s.n,
            s.mean,
            s.p50,
            s.p99
        );
    }
    let call = &results[2];
    for (caller, s) in Caller::ALL.iter().zip(&results).take(2) {
        println!(
            "overhead of {} over call!: p50 {:+.2} µs, p99 {:+.2} µs, mean {:+.2} µs",
            caller.name(),
            s.p50 - call.p50,
            s.p99 - call.p99,
            s.mean - call.mean
        );
    }
    if with_targets {
        println!(
            "target: p50 overhead <= 1 µs (1 worker) [{}]",
            verdict(results[0].p50 - call.p50 <= 1.0)
        );
        let ratio = results[0].p50 / call.p50;
        println!(
            "target: p50 <= 1.2x call! (1 worker) [{}] ({ratio:.2}x)",
            verdict(ratio <= 1.2)
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Skewed work
// ---------------------------------------------------------------------------------------------

/// Sleeps for the task's duration (I/O-like work).
struct Sleeper;

impl Worker for Sleeper {
    type Task = Duration;
    type Output = ();
    type Error = Infallible;

    async fn handle(&mut self, d: Duration) -> Result<(), Infallible> {
        tokio::time::sleep(d).await;
        Ok(())
    }
}

/// Who runs the skewed tasks.
#[derive(Clone, Copy)]
enum SkewConfig {
    Pool {
        strat: Strat,
        limit: usize,
    },
    /// The floor: 4 plain tokio tasks pulling from one shared `Mutex<VecDeque>`.
    SharedQueue,
}

impl SkewConfig {
    fn name(self) -> String {
        match self {
            SkewConfig::Pool { strat, limit } => format!("{} k={limit}", strat.name()),
            SkewConfig::SharedQueue => "anchor: 4 tasks, shared queue".into(),
        }
    }
}

const SKEW_TASKS: usize = 400;
const SHORT: Duration = Duration::from_millis(1);
const LONG: Duration = Duration::from_millis(20);

/// Where the long tasks are.
#[derive(Clone, Copy)]
enum Pattern {
    /// Exactly 10 % long ones, at seeded random positions.
    Random(u64),
    /// Every 10th task is long: with 4 workers a rotation hands them all to workers 0 and 2.
    EveryTenth,
}

fn skew_tasks(pattern: Pattern) -> Vec<Duration> {
    let mut tasks = vec![SHORT; SKEW_TASKS];
    match pattern {
        Pattern::Random(seed) => {
            let mut rng = fastrand::Rng::with_seed(seed);
            let mut placed = 0;
            while placed < SKEW_TASKS / 10 {
                let i = rng.usize(0..SKEW_TASKS);
                if tasks[i] == SHORT {
                    tasks[i] = LONG;
                    placed += 1;
                }
            }
        }
        Pattern::EveryTenth => {
            for t in tasks.iter_mut().step_by(10) {
                *t = LONG;
            }
        }
    }
    tasks
}

/// Submits every task at once, awaits every answer: the makespan and the tasks per worker.
async fn makespan(config: SkewConfig, tasks: &[Duration]) -> (Duration, Vec<u64>) {
    let (strat, limit) = match config {
        SkewConfig::Pool { strat, limit } => (strat, limit),
        SkewConfig::SharedQueue => return shared_queue_makespan(tasks).await,
    };
    let builder = Pool::builder(|_| Sleeper)
        .size(WORKERS)
        .worker_concurrency(limit);
    let builder = match strat {
        Strat::LeastBusy => builder.routing(LeastBusy::new()),
        Strat::PowerOfTwo => builder.routing(PowerOfTwo::with_seed(7)),
        _ => builder.routing(RoundRobin::new()),
    };
    let pool = builder.spawn().await.expect("spawn the pool");
    let t = Instant::now();
    let answers = futures::future::join_all(tasks.iter().map(|&d| pool.submit(d))).await;
    let elapsed = t.elapsed();
    assert!(answers.iter().all(Result::is_ok), "every task succeeds");
    let per_worker = pool.stats().workers.iter().map(|w| w.completed).collect();
    pool.stop().await;
    (elapsed, per_worker)
}

async fn shared_queue_makespan(tasks: &[Duration]) -> (Duration, Vec<u64>) {
    let queue = Arc::new(std::sync::Mutex::new(
        tasks
            .iter()
            .copied()
            .collect::<std::collections::VecDeque<_>>(),
    ));
    let t = Instant::now();
    let handles: Vec<_> = (0..WORKERS)
        .map(|_| {
            let queue = queue.clone();
            tokio::spawn(async move {
                let mut done = 0u64;
                loop {
                    let next = queue.lock().expect("queue lock").pop_front();
                    let Some(d) = next else { break done };
                    tokio::time::sleep(d).await;
                    done += 1;
                }
            })
        })
        .collect();
    let per_worker = futures::future::join_all(handles)
        .await
        .into_iter()
        .map(|r| r.expect("a shared-queue task"))
        .collect();
    (t.elapsed(), per_worker)
}

fn skew_report(rt: &Runtime) {
    const SEEDS: u64 = 5;
    let configs = [
        SkewConfig::Pool {
            strat: Strat::LeastBusy,
            limit: 1,
        },
        SkewConfig::Pool {
            strat: Strat::RoundRobin,
            limit: 1,
        },
        SkewConfig::Pool {
            strat: Strat::RoundRobin,
            limit: 1_000,
        },
        SkewConfig::Pool {
            strat: Strat::LeastBusy,
            limit: 1_000,
        },
        SkewConfig::Pool {
            strat: Strat::PowerOfTwo,
            limit: 1_000,
        },
        SkewConfig::SharedQueue,
    ];
    // Per configuration: mean makespan over the random seeds, the every-10th makespan, and
    // its tasks per worker.
    let results: Vec<(f64, f64, Vec<u64>)> = rt
        .block_on(async move {
            tokio::spawn(async move {
                let ms = |d: Duration| d.as_secs_f64() * 1e3;
                let mut random = vec![0.0; configs.len()];
                for seed in 0..SEEDS {
                    let tasks = skew_tasks(Pattern::Random(seed));
                    for (i, &config) in configs.iter().enumerate() {
                        random[i] += ms(makespan(config, &tasks).await.0) / SEEDS as f64;
                    }
                }
                let tasks = skew_tasks(Pattern::EveryTenth);
                let mut out = Vec::new();
                for (i, &config) in configs.iter().enumerate() {
                    let (span, per_worker) = makespan(config, &tasks).await;
                    out.push((random[i], ms(span), per_worker));
                }
                out
            })
            .await
        })
        .expect("the timing task");
    let total: Duration = skew_tasks(Pattern::EveryTenth).iter().sum();
    println!();
    println!(
        "skewed work: {SKEW_TASKS} tasks on 4 workers, 10% sleep {LONG:?}, 90% {SHORT:?} (tokio \
         timer: ~1 ms granularity), all submitted at once; makespan in ms (nominal ideal {:.0} \
         ms = total/4)",
        total.as_secs_f64() * 1e3 / WORKERS as f64
    );
    println!(
        "{:<30} {:>12} {:>9} {:>12} {:>9}   tasks per worker (every 10th)",
        "configuration", "random (5x)", "/RR k=1k", "every 10th", "/RR k=1k"
    );
    let (rr_random, rr_tenth) = (results[2].0, results[2].1);
    for (config, (random, tenth, counts)) in configs.iter().zip(&results) {
        println!(
            "{:<30} {:>12.1} {:>8.2}x {:>12.1} {:>8.2}x   {:?}",
            config.name(),
            random,
            random / rr_random,
            tenth,
            tenth / rr_tenth,
            counts
        );
    }
    println!(
        "target: LeastBusy k=1 makespan <= 0.7x RoundRobin k=1000: random [{}] ({:.2}x), every \
         10th [{}] ({:.2}x)",
        verdict(results[0].0 <= 0.7 * rr_random),
        results[0].0 / rr_random,
        verdict(results[0].1 <= 0.7 * rr_tenth),
        results[0].1 / rr_tenth
    );
    // What any scheduler could reach: none finishes before total/4 (or the longest task), and
    // a rotation's makespan is fixed by the positions (worker w gets tasks w, w+4, ...).
    let (mut bound, mut rotation) = (0.0, 0.0);
    for seed in 0..SEEDS {
        let (b, r) = skew_bounds(&skew_tasks(Pattern::Random(seed)));
        bound += b / SEEDS as f64;
        rotation += r / SEEDS as f64;
    }
    let (tenth_bound, tenth_rotation) = skew_bounds(&skew_tasks(Pattern::EveryTenth));
    println!(
        "on paper (ms): a rotation's makespan: random {rotation:.0}, every 10th \
         {tenth_rotation:.0}; no scheduler can beat max(total/4, longest task): random \
         {bound:.0}, every 10th {tenth_bound:.0}; so the best ratio any scheduler can reach \
         is {:.2}x for random placement, {:.2}x for every 10th (measured sleeps run longer \
         than nominal: the timer rounds up to its 1 ms tick); LeastBusy k=1 / shared-queue \
         anchor: random {:.2}, every 10th {:.2}",
        bound / rotation,
        tenth_bound / tenth_rotation,
        results[0].0 / results[configs.len() - 1].0,
        results[0].1 / results[configs.len() - 1].1
    );
}

/// `(max(total / workers, longest), a rotation's makespan)` for `tasks`, in ms.
fn skew_bounds(tasks: &[Duration]) -> (f64, f64) {
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let total: Duration = tasks.iter().sum();
    let longest = tasks.iter().max().copied().unwrap_or_default();
    let mut per_worker = [Duration::ZERO; WORKERS];
    for (i, &t) in tasks.iter().enumerate() {
        per_worker[i % WORKERS] += t;
    }
    let rotation = per_worker.iter().max().copied().unwrap_or_default();
    (ms(total / WORKERS as u32).max(ms(longest)), ms(rotation))
}

// ---------------------------------------------------------------------------------------------

fn verdict(ok: bool) -> &'static str {
    if ok {
        "met"
    } else {
        "MISSED"
    }
}

criterion_group!(benches, bench_throughput, bench_request_reply);

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
    if bench_mode() {
        let rt = runtime();
        if report_wanted("throughput") {
            throughput_report(&rt);
        }
        if report_wanted("shapes") {
            shapes_report(&rt);
        }
        if report_wanted("latency") {
            latency_report(&rt, "multi-thread runtime, 2 workers", true);
            let single = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("tokio runtime");
            latency_report(&single, "current-thread runtime, for reference", false);
        }
        if report_wanted("skew") {
            skew_report(&rt);
        }
    }
}

/// Which hand-timed reports to print: all, or those named in `POOL_BENCH_REPORTS`
/// (comma-separated: `throughput`, `shapes`, `latency`, `skew`; e.g. with a criterion filter that
/// matches nothing, to run one report alone).
fn report_wanted(name: &str) -> bool {
    std::env::var("POOL_BENCH_REPORTS").map_or(true, |v| v.split(',').any(|r| r.trim() == name))
}

/// Whether this is a real benchmark run (`cargo bench`), not `cargo test --benches` or `--list`.
fn bench_mode() -> bool {
    let args: Vec<String> = std::env::args().collect();
    let has = |flag: &str| args.iter().any(|a| a == flag);
    has("--bench") && !has("--test") && !has("--list")
}
