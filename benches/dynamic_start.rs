//! Dynamic start: how fast one `DynamicSupervisor` starts children, and what a running child
//! costs in resident memory.
//!
//! * criterion group `dynamic_start` (throughput in children/s): 10 000 `start_child` calls on
//!   a fresh `DynamicSupervisor` per iteration, against an anchor in the same group: 10 000
//!   plain ractor actors spawned with `Actor::spawn_linked` under a hand-written ractor parent
//!   (the floor: no supervisor, no bookkeeping). Each runs twice: one request after the other,
//!   and 64 requests in flight. `start_child` starts the child on the caller's side and hands
//!   it over to the supervisor by message; the timing ends once the supervisor has recorded
//!   every child (a `count_children` round trip after the last start), so its share is in it.
//!   The caller is a task on a runtime worker, as an application's would be. Supervisors are
//!   stopped between iterations, outside the timing.
//! * memory: each figure comes from a fresh child process of this bench (glibc keeps freed
//!   memory, so an earlier run in the same process would hide the cost of a later one). It reads
//!   RSS from `/proc/self/statm` before and after N children are running and prints
//!   bytes per child, and the time the N starts took (the process's first: page faults
//!   included). N = 10 000 and 100 000.
//! * steady state: the median of 7 runs of 10 000 children in this process, per contender,
//!   one request after the other and 64 in flight. The median, because on a small VM a run
//!   now and then pays for page faults again (freed memory reclaimed under it).

use std::process::Command;
use std::time::{Duration, Instant};

use criterion::{criterion_group, BenchmarkId, Criterion, SamplingMode, Throughput};
use futures::StreamExt;
use ractor::{Actor, ActorProcessingErr, ActorRef};
use ractor_otp::prelude::*;
use tokio::runtime::Runtime;

/// Set in the child processes that measure memory: `otp:N` or `anchor:N`.
const MEM_ENV: &str = "RACTOR_OTP_BENCH_MEM";

/// The trivial child: holds its argument, does nothing.
#[derive(Clone)]
struct Trivial;

#[cfg_attr(feature = "async-trait", ractor::async_trait)]
impl Actor for Trivial {
    type Msg = ();
    type State = u64;
    type Arguments = u64;

    async fn pre_start(&self, _: ActorRef<()>, n: u64) -> Result<u64, ActorProcessingErr> {
        Ok(n)
    }
}

/// The anchor's parent: a plain ractor actor that only links its children.
struct Parent;

#[cfg_attr(feature = "async-trait", ractor::async_trait)]
impl Actor for Parent {
    type Msg = ();
    type State = ();
    type Arguments = ();

    async fn pre_start(&self, _: ActorRef<()>, _: ()) -> Result<(), ActorProcessingErr> {
        Ok(())
    }
}

#[derive(Clone, Copy, Debug)]
enum Contender {
    Ours,
    Anchor,
}

impl Contender {
    fn name(self) -> &'static str {
        match self {
            Contender::Ours => "ractor-otp DynamicSupervisor",
            Contender::Anchor => "ractor spawn_linked (anchor)",
        }
    }

    fn key(self) -> &'static str {
        match self {
            Contender::Ours => "otp",
            Contender::Anchor => "anchor",
        }
    }
}

/// A running tree of `n` children; `started` is how long starting them took.
enum Running {
    Ours(DynamicSupervisorRef<u64>),
    Anchor(ActorRef<()>),
}

impl Running {
    /// Starts `n` children, `in_flight` start requests at a time (1: one after the other).
    /// Runs on a runtime worker, as an application's own task would.
    async fn start(contender: Contender, n: u64, in_flight: usize) -> (Running, Duration) {
        let task = tokio::spawn(async move {
            match contender {
                Contender::Ours => {
                    let sup = DynamicSupervisor::builder(ChildTemplate::from_actor(Trivial))
                        .spawn()
                        .await
                        .expect("spawn the dynamic supervisor");
                    let t = Instant::now();
                    futures::stream::iter(0..n)
                        .map(|i| {
                            let sup = sup.clone();
                            async move { sup.start_child(i).await.expect("start a child") }
                        })
                        .buffer_unordered(in_flight)
                        .for_each(|_| async {})
                        .await;
                    // Every child handed over and recorded: the supervisor's share is timed.
                    let counts = sup.count_children().await.expect("count the children");
                    assert_eq!(counts.active, n as usize, "every child is held");
                    (Running::Ours(sup), t.elapsed())
                }
                Contender::Anchor => {
                    let (parent, _) = Actor::spawn(None, Parent, ())
                        .await
                        .expect("spawn the parent");
                    let t = Instant::now();
                    futures::stream::iter(0..n)
                        .map(|i| {
                            let cell = parent.get_cell();
                            async move {
                                Actor::spawn_linked(None, Trivial, i, cell)
                                    .await
                                    .expect("spawn a child")
                            }
                        })
                        .buffer_unordered(in_flight)
                        .for_each(|_| async {})
                        .await;
                    (Running::Anchor(parent), t.elapsed())
                }
            }
        });
        task.await.expect("the start task")
    }

    async fn stop(self) {
        match self {
            Running::Ours(sup) => sup.stop().await,
            Running::Anchor(parent) => {
                parent.stop_children_and_wait(None, None).await;
                let _ = parent.stop_and_wait(None, None).await;
            }
        }
    }
}

fn runtime() -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime")
}

fn bench_dynamic_start(c: &mut Criterion) {
    const N: u64 = 10_000;
    let rt = runtime();
    let mut group = c.benchmark_group("dynamic_start");
    group
        .sample_size(10)
        .sampling_mode(SamplingMode::Flat)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4))
        .throughput(Throughput::Elements(N));
    for in_flight in [1, 64] {
        for contender in [Contender::Ours, Contender::Anchor] {
            let id = BenchmarkId::new(
                contender.name(),
                format!("{N} children, {in_flight} in flight"),
            );
            group.bench_function(id, |b| {
                b.to_async(&rt).iter_custom(|iters| async move {
                    let mut total = Duration::ZERO;
                    for _ in 0..iters {
                        let (running, took) = Running::start(contender, N, in_flight).await;
                        total += took;
                        running.stop().await;
                    }
                    total
                });
            });
        }
    }
    group.finish();
}

/// Resident set size of this process, in bytes.
fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

/// In a child process: start `n` children, print `nanos rss_before rss_after`. This is the
/// first large start of the process, so the time includes page faults ("cold").
fn measure_memory(spec: &str) {
    let (key, n) = spec.split_once(':').expect("MEM spec is key:count");
    let n: u64 = n.parse().expect("count");
    let contender = match key {
        "otp" => Contender::Ours,
        _ => Contender::Anchor,
    };
    let rt = runtime();
    rt.block_on(async {
        // Touch every lazy static and the runtime's workers first.
        let (warm, _) = Running::start(contender, 16, 1).await;
        warm.stop().await;
        tokio::time::sleep(Duration::from_millis(50)).await;
        let before = rss_bytes();
        let (running, took) = Running::start(contender, n, 1).await;
        // Let the workers settle (every child has run its pre_start by now).
        tokio::time::sleep(Duration::from_millis(50)).await;
        let after = rss_bytes();
        println!("{} {} {}", took.as_nanos(), before, after);
        running.stop().await;
    });
}

/// Steady-state throughput: the median of several 10 000-child starts in this process; returns
/// children/s for (ours, the anchor), one request after the other and 64 in flight.
fn throughput_report() -> [(f64, f64); 2] {
    const N: u64 = 10_000;
    const RUNS: usize = 7;
    let rt = runtime();
    println!();
    println!(
        "dynamic start, steady state: median of {RUNS} runs of {N} children (2 tokio workers)"
    );
    println!(
        "{:<30} {:>10} {:>12} {:>14}",
        "contender", "in flight", "median ms", "children/s"
    );
    let mut rates = [(0.0, 0.0); 2];
    for (row, in_flight) in [1, 64].into_iter().enumerate() {
        for contender in [Contender::Ours, Contender::Anchor] {
            let mut runs: Vec<Duration> = rt.block_on(async {
                let mut runs = Vec::new();
                for _ in 0..RUNS {
                    let (running, took) = Running::start(contender, N, in_flight).await;
                    running.stop().await;
                    runs.push(took);
                }
                runs
            });
            runs.sort_unstable();
            let median = runs[RUNS / 2].as_secs_f64();
            let rate = N as f64 / median;
            println!(
                "{:<30} {in_flight:>10} {:>12.1} {:>14.0}",
                contender.name(),
                median * 1e3,
                rate
            );
            match contender {
                Contender::Ours => rates[row].0 = rate,
                Contender::Anchor => rates[row].1 = rate,
            }
        }
    }
    rates
}

/// One fresh-process run: children/s and RSS bytes per child.
type Fresh = (f64, f64);

fn memory_report() {
    let exe = match std::env::current_exe() {
        Ok(exe) => exe,
        Err(e) => {
            println!("memory report skipped: {e}");
            return;
        }
    };
    println!();
    println!(
        "dynamic start, memory: N children, one request after the other, in a fresh process \
         (so the time includes the first page faults)"
    );
    println!(
        "{:<30} {:>7} {:>10} {:>12} {:>13} {:>12}",
        "contender", "N", "time ms", "children/s", "RSS delta MB", "bytes/child"
    );
    // Per N: ours and the anchor's (children/s, bytes per child).
    let mut fresh: Vec<(u64, Option<Fresh>, Option<Fresh>)> = Vec::new();
    for n in [10_000u64, 100_000] {
        fresh.push((n, None, None));
        for contender in [Contender::Ours, Contender::Anchor] {
            let out = Command::new(&exe)
                .env(MEM_ENV, format!("{}:{n}", contender.key()))
                .output();
            let line = match &out {
                Ok(o) if o.status.success() => String::from_utf8_lossy(&o.stdout).to_string(),
                Ok(o) => {
                    println!(
                        "{:<30} {n:>8} failed: {}",
                        contender.name(),
                        String::from_utf8_lossy(&o.stderr).trim()
                    );
                    continue;
                }
                Err(e) => {
                    println!("{:<30} {n:>8} failed: {e}", contender.name());
                    continue;
                }
            };
            let v: Vec<u64> = line
                .split_whitespace()
                .filter_map(|s| s.parse().ok())
                .collect();
            let [nanos, before, after] = v[..] else {
                println!("{:<30} {n:>8} unreadable: {line}", contender.name());
                continue;
            };
            let secs = nanos as f64 / 1e9;
            let delta = after.saturating_sub(before);
            let per_child = delta as f64 / n as f64;
            println!(
                "{:<30} {n:>7} {:>10.1} {:>12.0} {:>13.1} {:>12.0}",
                contender.name(),
                secs * 1e3,
                n as f64 / secs,
                delta as f64 / (1 << 20) as f64,
                per_child
            );
            if let Some(row) = fresh.last_mut() {
                match contender {
                    Contender::Ours => row.1 = Some((n as f64 / secs, per_child)),
                    Contender::Anchor => row.2 = Some((n as f64 / secs, per_child)),
                }
            }
        }
    }
    let rates = throughput_report();
    println!(
        "target >= 100k children/s (steady state, one request after the other): [{}]",
        verdict(rates[0].0 >= 100_000.0)
    );
    for (in_flight, (ours, anchor)) in [1, 64].into_iter().zip(rates) {
        println!(
            "target >= 0.95x spawn_linked (steady state, {in_flight} in flight): [{}] ({:.2}x)",
            verdict(ours >= 0.95 * anchor),
            ours / anchor
        );
    }
    for (n, ours, anchor) in fresh {
        let Some((rate, per_child)) = ours else {
            continue;
        };
        println!(
            "target <= 9 KB (9000 B) RSS per child at N={n}: [{}]",
            verdict(per_child <= 9_000.0)
        );
        if let Some((anchor_rate, anchor_per_child)) = anchor {
            println!(
                "target at N={n} (fresh process): >= 0.95x spawn_linked [{}] ({:.2}x), <= 1.02x its \
                 memory per child [{}] ({:.3}x)",
                verdict(rate >= 0.95 * anchor_rate),
                rate / anchor_rate,
                verdict(per_child <= 1.02 * anchor_per_child),
                per_child / anchor_per_child
            );
        }
    }
}

fn verdict(ok: bool) -> &'static str {
    if ok {
        "met"
    } else {
        "MISSED"
    }
}

criterion_group!(benches, bench_dynamic_start);

fn main() {
    if let Ok(spec) = std::env::var(MEM_ENV) {
        measure_memory(&spec);
        return;
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
    if bench_mode() {
        memory_report();
    }
}

/// Whether this is a real benchmark run (`cargo bench`), not `cargo test --benches` or `--list`.
fn bench_mode() -> bool {
    let args: Vec<String> = std::env::args().collect();
    let has = |flag: &str| args.iter().any(|a| a == flag);
    has("--bench") && !has("--test") && !has("--list")
}
