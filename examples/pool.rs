//! A thumbnail service on a worker pool: `cargo run --example pool`.
//!
//! 240 "images" of random sizes arrive in bursts; making a thumbnail costs time in proportion
//! to the image's size (simulated with `tokio::time::sleep`, as if the work were done by an
//! external encoder). The machine is heterogeneous: worker 3 is twice as slow as the others.
//! The same stream runs through pools that differ only in routing:
//!
//! * `RoundRobin`: every worker gets the same number of images, whatever its speed;
//! * `LeastBusy`: the worker with the fewest images in flight gets the next one;
//! * `Weighted` 2,2,2,1: the slow worker gets half the share of the others;
//! * and, for reference, the default `worker_concurrency(1)`: an image waits in the pool's
//!   queue until a worker is idle, and the next idle worker takes it (whatever the strategy).
//!
//! The three routed pools let each worker hold up to 8 images (`worker_concurrency(8)`), so
//! routing decides where an image waits. One image is corrupt: the worker that gets it
//! panics, its caller gets `TaskError::Crashed`, the pool restarts the worker and keeps going
//! (see `restarts`). Images that were waiting in the crashed worker's mailbox fail with
//! `Crashed` too; the caller here retries a crashed image once. Another image is in an
//! unsupported format: the worker returns an error (`TaskError::Failed`) and keeps running.
//!
//! Seeded: `cargo run --example pool -- 7` (or `POOL_SEED=7`) for another stream.

use std::sync::Arc;
use std::time::Duration;

use ractor_otp::pool::{LeastBusy, Pool, PoolRef, RoundRobin, TaskError, Weighted};
use ractor_otp::worker::Worker;
use tokio::time::Instant;

/// Images in the stream.
const IMAGES: usize = 240;
/// They arrive in bursts of this many...
const BURST: usize = 20;
/// ...this often.
const EVERY: Duration = Duration::from_millis(25);
/// Thumbnailing cost per KB on a normal worker.
const COST_PER_KB: Duration = Duration::from_micros(25);
/// Workers in each pool; the last one is the slow one.
const WORKERS: usize = 4;
const SLOW_WORKER: usize = 3;
/// The panic payload of a corrupt image (the panic hook keeps quiet about this one only).
const CORRUPT: &str = "corrupt image";

/// One uploaded image.
#[derive(Debug, Clone, Copy)]
struct Image {
    id: usize,
    kb: u64,
    kind: Kind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Fine,
    /// The decoder panics on it.
    Corrupt,
    /// The decoder refuses it (an error, not a crash).
    Unsupported,
}

/// What a worker returns.
#[derive(Debug)]
struct Thumbnail {
    /// Its size.
    kb: u64,
}

/// A thumbnailer: `slowdown` is 2 on the slow worker.
struct Thumbnailer {
    slowdown: u32,
}

impl Worker for Thumbnailer {
    type Task = Image;
    type Output = Thumbnail;
    type Error = String;

    async fn handle(&mut self, image: Image) -> Result<Thumbnail, String> {
        match image.kind {
            Kind::Corrupt => std::panic::panic_any(CORRUPT),
            Kind::Unsupported => {
                return Err(format!("image {}: unsupported format", image.id));
            }
            Kind::Fine => {}
        }
        let cost = COST_PER_KB * (image.kb as u32) * self.slowdown;
        tokio::time::sleep(cost).await;
        Ok(Thumbnail {
            kb: image.kb / 50 + 1,
        })
    }
}

/// The uploads: sizes from a seeded RNG, 10 % of them large panoramas.
fn uploads(seed: u64) -> Vec<Image> {
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut images: Vec<Image> = (0..IMAGES)
        .map(|id| {
            let kb = if rng.u8(0..10) == 0 {
                rng.u64(400..=1_200)
            } else {
                rng.u64(20..=120)
            };
            Image {
                id,
                kb,
                kind: Kind::Fine,
            }
        })
        .collect();
    let corrupt = rng.usize(IMAGES / 3..IMAGES / 2);
    images[corrupt].kind = Kind::Corrupt;
    let unsupported = rng.usize(IMAGES / 2..2 * IMAGES / 3);
    images[unsupported].kind = Kind::Unsupported;
    images
}

/// One way to run the pool.
#[derive(Clone, Copy)]
enum Setup {
    RoundRobin,
    LeastBusy,
    Weighted,
    Pull,
}

impl Setup {
    const ALL: [Setup; 4] = [
        Setup::RoundRobin,
        Setup::LeastBusy,
        Setup::Weighted,
        Setup::Pull,
    ];

    fn name(self) -> &'static str {
        match self {
            Setup::RoundRobin => "RoundRobin, k=8",
            Setup::LeastBusy => "LeastBusy, k=8",
            Setup::Weighted => "Weighted 2,2,2,1, k=8",
            Setup::Pull => "any strategy, k=1",
        }
    }

    async fn spawn(self) -> Result<PoolRef<Thumbnailer>, ractor_otp::error::StartError> {
        let builder = Pool::builder(|index| Thumbnailer {
            slowdown: if index == SLOW_WORKER { 2 } else { 1 },
        })
        .size(WORKERS)
        .label(self.name());
        let builder = match self {
            Setup::RoundRobin => builder.routing(RoundRobin::new()).worker_concurrency(8),
            Setup::LeastBusy => builder.routing(LeastBusy::new()).worker_concurrency(8),
            Setup::Weighted => builder
                .routing(Weighted::new())
                .weights([2, 2, 2, 1])
                .worker_concurrency(8),
            Setup::Pull => builder.routing(RoundRobin::new()).worker_concurrency(1),
        };
        builder.spawn().await
    }
}

/// How one image ended.
struct Outcome {
    image: Image,
    /// The last answer.
    result: Result<Thumbnail, TaskError<String>>,
    /// Crashed answers before the last one.
    crashes: u32,
    /// Upload to final answer.
    latency: Duration,
}

/// Submits one image; a `Crashed` answer is retried once.
async fn thumbnail(pool: PoolRef<Thumbnailer>, image: Image) -> Outcome {
    let t = Instant::now();
    let mut crashes = 0;
    loop {
        let result = pool.submit(image).await;
        if matches!(result, Err(TaskError::Crashed)) && crashes == 0 {
            crashes += 1;
            continue;
        }
        return Outcome {
            image,
            result,
            crashes,
            latency: t.elapsed(),
        };
    }
}

/// One run's figures.
struct Report {
    /// Thumbnails made, and their total size.
    done: usize,
    thumbs_kb: u64,
    makespan: Duration,
    per_worker: Vec<u64>,
    busy_ms: Vec<u64>,
    mean_latency: Duration,
    max_latency: Duration,
    restarts: u64,
    notes: Vec<String>,
}

async fn run(setup: Setup, images: &[Image]) -> Result<Report, Box<dyn std::error::Error>> {
    let pool = setup.spawn().await?;
    let t0 = Instant::now();
    let mut handles = Vec::with_capacity(images.len());
    for (i, &image) in images.iter().enumerate() {
        if i > 0 && i % BURST == 0 {
            tokio::time::sleep_until(t0 + EVERY * (i / BURST) as u32).await;
        }
        handles.push(tokio::spawn(thumbnail(pool.clone(), image)));
    }
    let mut outcomes = Vec::with_capacity(images.len());
    for handle in handles {
        outcomes.push(handle.await?);
    }
    let makespan = t0.elapsed();
    let stats = pool.stats();
    pool.stop().await;

    let mut notes = Vec::new();
    let (mut rescued, mut lost) = (Vec::new(), Vec::new());
    let (mut done, mut thumbs_kb) = (0, 0);
    for o in &outcomes {
        match (&o.result, o.image.kind) {
            (Err(TaskError::Crashed), Kind::Corrupt) => notes.push(format!(
                "image {} ({} KB, corrupt): TaskError::Crashed, retried once, Crashed again: \
                 given up",
                o.image.id, o.image.kb
            )),
            (Err(TaskError::Crashed), _) => lost.push(o.image.id),
            (Err(TaskError::Failed(why)), _) => {
                notes.push(format!("TaskError::Failed: {why} (no crash, no restart)"))
            }
            (Err(other), _) => notes.push(format!("image {}: {other}", o.image.id)),
            (Ok(thumb), _) => {
                done += 1;
                thumbs_kb += thumb.kb;
                if o.crashes > 0 {
                    rescued.push(o.image.id);
                }
            }
        }
    }
    if !rescued.is_empty() {
        notes.push(format!(
            "{} other image(s) got TaskError::Crashed because they were waiting in the mailbox \
             of a worker that crashed, and succeeded when retried: {rescued:?}",
            rescued.len()
        ));
    }
    if !lost.is_empty() {
        notes.push(format!(
            "{} other image(s) got TaskError::Crashed twice (their retry waited behind the \
             corrupt image's retry): given up: {lost:?}",
            lost.len()
        ));
    }
    let latencies: Vec<Duration> = outcomes.iter().map(|o| o.latency).collect();
    Ok(Report {
        done,
        thumbs_kb,
        makespan,
        per_worker: stats.workers.iter().map(|w| w.completed).collect(),
        busy_ms: stats
            .workers
            .iter()
            .map(|w| (w.mean_latency * (w.completed + w.failed) as u32).as_millis() as u64)
            .collect(),
        mean_latency: latencies.iter().sum::<Duration>() / latencies.len().max(1) as u32,
        max_latency: latencies.iter().copied().max().unwrap_or_default(),
        restarts: stats.restarts,
        notes,
    })
}

fn list(values: &[u64]) -> String {
    let cells: Vec<String> = values.iter().map(|v| format!("{v:>3}")).collect();
    cells.join(" ")
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let seed: u64 = std::env::args()
        .nth(1)
        .or_else(|| std::env::var("POOL_SEED").ok())
        .and_then(|s| s.parse().ok())
        .unwrap_or(42);
    // A corrupt image panics its worker on purpose: keep that one panic's message off stderr.
    let default_hook = Arc::new(std::panic::take_hook());
    std::panic::set_hook(Box::new(move |info| {
        if info.payload().downcast_ref::<&str>() != Some(&CORRUPT) {
            default_hook(info);
        }
    }));

    let images = uploads(seed);
    let total_kb: u64 = images.iter().map(|i| i.kb).sum();
    let large = images.iter().filter(|i| i.kb >= 400).count();
    let work = COST_PER_KB * total_kb as u32;
    println!(
        "{IMAGES} images (seed {seed}): {total_kb} KB, {large} of them large panoramas; \
         thumbnailing costs {COST_PER_KB:?}/KB, {work:.0?} of work in all"
    );
    println!(
        "{WORKERS} workers; worker {SLOW_WORKER} is twice as slow (capacity 3.5 workers: ideal \
         makespan ~{:.0?}); uploads arrive {BURST} at a time every {EVERY:?}",
        work.div_f64(3.5)
    );
    for image in &images {
        match image.kind {
            Kind::Corrupt => println!("image {} is corrupt: its worker will panic", image.id),
            Kind::Unsupported => println!(
                "image {} is in an unsupported format: its worker returns an error",
                image.id
            ),
            Kind::Fine => {}
        }
    }

    let mut reports = Vec::new();
    for setup in Setup::ALL {
        println!();
        println!("-- {} --", setup.name());
        let report = run(setup, &images).await?;
        for note in &report.notes {
            println!("   {note}");
        }
        println!(
            "   {} thumbnails ({} KB) in {:.0?}; the pool kept going: stats().restarts = {}",
            report.done, report.thumbs_kb, report.makespan, report.restarts
        );
        reports.push((setup, report));
    }

    println!();
    println!(
        "{:<22} {:>5} {:>9} {:>9} {:>8} {:>9}  {:<16} {:<16}",
        "pool",
        "done",
        "makespan",
        "mean lat",
        "max lat",
        "restarts",
        "images/worker",
        "busy ms/worker"
    );
    for (setup, r) in &reports {
        println!(
            "{:<22} {:>5} {:>7}ms {:>7}ms {:>6}ms {:>9}  {:<16} {:<16}",
            setup.name(),
            r.done,
            r.makespan.as_millis(),
            r.mean_latency.as_millis(),
            r.max_latency.as_millis(),
            r.restarts,
            list(&r.per_worker),
            list(&r.busy_ms)
        );
    }
    println!(
        "(worker {SLOW_WORKER} is the slow one; lat = upload to answer; busy ms = time in \
         handle, from stats(); a crashed task's time is not counted)"
    );
    Ok(())
}
