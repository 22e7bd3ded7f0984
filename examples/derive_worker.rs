//! A derived worker in a supervision tree: `cargo run --example derive_worker`.
//!
//! `#[ractor_otp::worker]` turns the plain async methods of `Thumbnailer` into a worker: a
//! task enum, an output enum, an error enum, `impl Worker`, `impl ractor::Actor`, and a typed
//! client, `ThumbnailerClient`, whose methods read like the worker's own. `supervisor!` builds
//! the tree, with the same worker type in two places:
//!
//! ```text
//! app (one-for-one)
//! ├─ thumbs   a pool of 3 Thumbnailers, called through ThumbnailerClient(PoolRef)
//! └─ single   one Thumbnailer running alone as a ractor actor, ThumbnailerClient(ActorRef)
//! ```
//!
//! It shows a batch of typed calls, a method's `Err` reaching its caller as
//! `TaskError::Failed` (the worker keeps running), a corrupt image that panics its worker
//! (`TaskError::Crashed`; the pool restarts that worker and keeps going), a fire-and-forget
//! `cast_` call, and an ordered shutdown. It ends by itself in well under a second.

use std::fmt;
use std::time::Duration;

use ractor_otp::prelude::*;
use tokio::time::Instant;

/// The panic payload of a corrupt image (the panic hook keeps quiet about this one only).
const CORRUPT: &str = "corrupt image";

/// A simulated grayscale image: one byte per pixel.
#[derive(Debug)]
struct Image {
    width: u32,
    height: u32,
    pixels: Vec<u8>,
}

impl Image {
    /// A test pattern, deterministic in its size.
    fn pattern(width: u32, height: u32) -> Image {
        let pixels = (0..width * height).map(|i| (i % 251) as u8).collect();
        Image {
            width,
            height,
            pixels,
        }
    }
}

impl fmt::Display for Image {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (w, h, bytes) = (self.width, self.height, self.pixels.len());
        write!(f, "{w}x{h} ({bytes} bytes)")
    }
}

/// Why a resize was refused (an answer, not a crash): thumbnails only shrink.
#[derive(Debug)]
struct ResizeError {
    from: u32,
    to: u32,
}

impl fmt::Display for ResizeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "can't shrink {} px to {} px", self.from, self.to)
    }
}

impl std::error::Error for ResizeError {}

/// What one worker has done so far.
#[derive(Debug)]
struct Stats {
    resized: u64,
    pixels_out: u64,
    quality: u8,
}

/// A worker's state. `Clone`, so it can also run alone as an actor (each start clones it).
#[derive(Clone, Default)]
struct Thumbnailer {
    quality: u8,
    resized: u64,
    pixels_out: u64,
}

impl Thumbnailer {
    fn new(quality: u8) -> Thumbnailer {
        Thumbnailer {
            quality,
            ..Thumbnailer::default()
        }
    }
}

#[ractor_otp::worker]
impl Thumbnailer {
    /// Shrinks `img` to `width` pixels wide (nearest neighbour), keeping its aspect ratio.
    pub async fn resize(&mut self, img: Image, width: u32) -> Result<Image, ResizeError> {
        if img.pixels.len() != (img.width * img.height) as usize {
            // A real decoder would read past the end of the buffer; this one panics.
            std::panic::panic_any(CORRUPT);
        }
        if width == 0 || width > img.width {
            return Err(ResizeError {
                from: img.width,
                to: width,
            });
        }
        let height = (img.height * width / img.width).max(1);
        // The "encoder" takes 1 ms per 100k input pixels.
        tokio::time::sleep(Duration::from_micros(img.pixels.len() as u64 / 100)).await;
        let pixels: Vec<u8> = (0..width * height)
            .map(|i| i / width * img.height / height * img.width + i % width * img.width / width)
            .map(|at| img.pixels[at as usize])
            .collect();
        self.resized += 1;
        self.pixels_out += pixels.len() as u64;
        Ok(Image {
            width,
            height,
            pixels,
        })
    }

    /// A plain method: the client answers `Result<Stats, TaskError>`.
    pub async fn stats(&self) -> Stats {
        Stats {
            resized: self.resized,
            pixels_out: self.pixels_out,
            quality: self.quality,
        }
    }

    /// The client also gets `cast_set_quality`, which does not wait (every method gets one).
    pub async fn set_quality(&mut self, quality: u8) {
        self.quality = quality.min(100);
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // The corrupt image panics its worker on purpose: keep that one panic's message off stderr.
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if info.payload().downcast_ref::<&str>() != Some(&CORRUPT) {
            default_hook(info);
        }
    }));

    let app = supervisor! {
        strategy: one_for_one,
        intensity: 3,
        period: 5s,
        children: [
            "thumbs" => Pool::builder(|_| Thumbnailer::new(80)).size(3),
            "single" => actor(Thumbnailer::new(90), ()) { shutdown: 2s },
        ],
    }
    .spawn()
    .await?;
    for child in app.which_children().await? {
        println!("started {:<6} ({:?})", child.id, child.kind);
    }
    // The pool is a child like any other: find it by id, then wrap it in the typed client.
    let pool = PoolRef::<Thumbnailer>::from_cell(app.child("thumbs").await?).await;
    let thumbs = ThumbnailerClient(pool.ok_or("`thumbs` is not a pool of Thumbnailers")?);

    println!("\n-- three photos through the pool, at once --");
    let sizes = [(1024, 768), (640, 480), (2048, 1536)];
    let calls = sizes.map(|(w, h)| thumbs.resize(Image::pattern(w, h), 160));
    for ((w, h), answer) in sizes
        .into_iter()
        .zip(futures::future::join_all(calls).await)
    {
        println!("  {w}x{h} -> {}", answer?);
    }

    println!("\n-- an icon: `resize` returns Err --");
    match thumbs.resize(Image::pattern(64, 64), 160).await {
        Err(TaskError::Failed(e)) => println!("  TaskError::Failed: {e}; the worker goes on"),
        other => println!("  unexpected: {other:?}"),
    }

    println!("\n-- a corrupt photo: `resize` panics --");
    let mut corrupt = Image::pattern(800, 600);
    corrupt.pixels.truncate(1_000);
    match thumbs.resize(corrupt, 160).await {
        Err(TaskError::Crashed) => println!("  TaskError::Crashed"),
        other => println!("  unexpected: {other:?}"),
    }
    // The pool counts a restart once the worker's new incarnation has started.
    let deadline = Instant::now() + Duration::from_secs(2);
    while thumbs.0.stats().restarts == 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let next = thumbs.resize(Image::pattern(800, 600), 160).await?;
    println!("  the pool restarted that worker; the next photo: 800x600 -> {next}");
    // `stats` is the worker's method on the client; the pool's own is on the handle, `.0`.
    let s = thumbs.0.stats();
    println!(
        "  pool: submitted {}, completed {}, failed {}, crashed {}, restarts {}",
        s.submitted, s.completed, s.failed, s.crashed, s.restarts
    );

    println!("\n-- the same worker alone, as the actor `single` --");
    let single = ThumbnailerClient(app.child_ref::<Call<Thumbnailer>>("single").await?);
    let poster = single.resize(Image::pattern(1200, 1800), 300).await?;
    println!("  1200x1800 -> {poster}");
    single.cast_set_quality(40).await?; // does not wait; the mailbox runs it before `stats`
    let s = single.stats().await?;
    let (n, px, q) = (s.resized, s.pixels_out, s.quality);
    println!("  stats: {n} resized, {px} pixels out, quality {q} (was 90)");

    app.stop().await; // children stop in reverse start order: `single`, then `thumbs`
    println!("\nstopped; the tree is alive: {}", app.is_alive());
    Ok(())
}
