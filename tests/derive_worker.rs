//! `#[worker]`: what the generated code does, through a pool and as a single supervised actor
//! (the expansion tests of the happy paths; the error paths are in `tests/ui`).

mod common;

use std::fmt;
use std::sync::{Arc, Mutex};

use common::{bounded, next_matching};
use ractor::{Actor, ActorRef};
use ractor_otp::prelude::*;
use ractor_otp::worker::{Call, WorkerHandle};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Image {
    pub width: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TooSmall(pub u32);

impl fmt::Display for TooSmall {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "width {} is too small", self.0)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stats {
    pub resized: u64,
    pub quality: u8,
}

/// A worker using every kind of method: `&mut self` / `&self`, arguments / none, `Result` /
/// plain / `()` / `Result<(), E>` / an alias of `Result`, a `'static` borrow.
#[derive(Clone)]
pub struct Thumbnailer {
    quality: u8,
    resized: u64,
    notes: Vec<String>,
}

#[ractor_otp::worker]
impl Thumbnailer {
    /// Resizes an image.
    pub async fn resize(&mut self, img: Image, width: u32) -> Result<Image, TooSmall> {
        if width < 8 {
            return Err(TooSmall(width));
        }
        self.resized += 1;
        Ok(Image {
            width: width.min(img.width),
        })
    }

    pub async fn stats(&self) -> Stats {
        Stats {
            resized: self.resized,
            quality: self.quality,
        }
    }

    pub async fn note(&mut self, text: String) {
        self.notes.push(text);
    }

    pub async fn notes(&self) -> Vec<String> {
        self.notes.clone()
    }

    pub async fn set_quality(&mut self, quality: u8) -> Result<(), String> {
        if quality > 100 {
            return Err(format!("quality {quality} is above 100"));
        }
        self.quality = quality;
        Ok(())
    }

    pub async fn parse(&self, text: String) -> std::io::Result<u32> {
        text.trim()
            .parse()
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
    }

    pub async fn kind(&self) -> &'static str {
        "thumbnailer"
    }

    pub async fn crash(&mut self) {
        panic!("the thumbnailer crashes on purpose");
    }

    /// Takes `millis` to answer the quality.
    pub async fn slow_quality(&self, millis: u64) -> u8 {
        tokio::time::sleep(std::time::Duration::from_millis(millis)).await;
        self.quality
    }

    /// Compiled out: nothing is generated for it (no variant, no client method).
    #[cfg(any())]
    pub async fn gone(&self, _arg: NotAType) -> AlsoNotAType {
        unreachable!()
    }
}

fn thumbnailer() -> Thumbnailer {
    Thumbnailer {
        quality: 80,
        resized: 0,
        notes: Vec::new(),
    }
}

async fn pool(size: usize) -> ThumbnailerClient<PoolRef<Thumbnailer>> {
    let pool = bounded(Pool::builder(|_| thumbnailer()).size(size).spawn())
        .await
        .expect("pool starts");
    ThumbnailerClient(pool)
}

#[tokio::test]
async fn methods_read_like_method_calls_through_a_pool() {
    let thumbs = pool(1).await;
    let small = bounded(thumbs.resize(Image { width: 640 }, 200)).await;
    assert_eq!(small, Ok(Image { width: 200 }));
    let refused = bounded(thumbs.resize(Image { width: 640 }, 2)).await;
    assert_eq!(refused, Err(TaskError::Failed(TooSmall(2))));
    // `stats` is the worker's method, not the pool's (an inherent method of the client wins).
    let stats: Result<Stats, TaskError> = bounded(thumbs.stats()).await;
    assert_eq!(
        stats,
        Ok(Stats {
            resized: 1,
            quality: 80
        })
    );
    // The pool's own `stats` stays reachable through the handle inside.
    assert_eq!(thumbs.0.stats().completed, 2);
    assert_eq!(thumbs.0.stats().failed, 1);
    assert_eq!(bounded(thumbs.kind()).await, Ok("thumbnailer"));
    let parsed = bounded(thumbs.parse(" 42 ".into())).await;
    assert_eq!(parsed.ok(), Some(42));
    match bounded(thumbs.parse("x".into())).await {
        Err(TaskError::Failed(e)) => assert_eq!(e.kind(), std::io::ErrorKind::InvalidData),
        other => panic!("expected a failed parse, got {other:?}"),
    }
    thumbs.stop().await; // through Deref: the pool's stop
}

#[tokio::test]
async fn unit_methods_have_a_fire_and_forget_form() {
    let thumbs = pool(1).await;
    bounded(thumbs.cast_note("first".into()))
        .await
        .expect("handed over");
    bounded(thumbs.note("second".into())).await.expect("ran");
    // One worker, FIFO: the cast ran before the call that followed it.
    assert_eq!(
        bounded(thumbs.notes()).await,
        Ok(vec!["first".to_string(), "second".to_string()])
    );
    // `Result<(), E>` gets a cast form too; its error reaches a caller only through `set_`.
    bounded(thumbs.cast_set_quality(101))
        .await
        .expect("handed over");
    assert_eq!(
        bounded(thumbs.set_quality(101)).await,
        Err(TaskError::Failed("quality 101 is above 100".to_string()))
    );
    bounded(thumbs.set_quality(50)).await.expect("set");
    assert_eq!(bounded(thumbs.stats()).await.map(|s| s.quality), Ok(50));
    let stats = thumbs.0.stats();
    assert_eq!(stats.failed, 2, "the failed cast is counted: {stats:?}");
    thumbs.stop().await;
}

#[tokio::test]
async fn the_generated_enums_drive_the_pool_directly() {
    let thumbs = pool(1).await;
    let pool: &PoolRef<Thumbnailer> = &thumbs;
    match bounded(pool.submit(ThumbnailerTask::Stats {})).await {
        Ok(ThumbnailerOutput::Stats(stats)) => assert_eq!(stats.quality, 80),
        _ => panic!("a stats task answers with stats"),
    }
    let failed = bounded(pool.submit(ThumbnailerTask::Resize {
        img: Image { width: 1 },
        width: 1,
    }))
    .await;
    let Err(error) = failed else {
        panic!("width 1 fails")
    };
    // The error enum shows the method's own error, and is a std error (so `?` boxes it).
    assert_eq!(
        error.to_string(),
        "the worker returned an error: width 1 is too small"
    );
    let boxed: Box<dyn std::error::Error> = Box::new(error);
    assert!(boxed.to_string().contains("too small"));
    thumbs.stop().await;
}

#[tokio::test]
async fn a_crash_is_reported_and_the_next_call_reaches_a_fresh_worker() {
    let thumbs = pool(1).await;
    bounded(thumbs.resize(Image { width: 100 }, 50))
        .await
        .expect("resized");
    assert_eq!(bounded(thumbs.crash()).await, Err(TaskError::Crashed));
    // The pool restarted the worker from its factory: state starts over.
    assert_eq!(bounded(thumbs.stats()).await.map(|s| s.resized), Ok(0));
    thumbs.stop().await;
}

#[tokio::test]
async fn the_same_worker_runs_alone_as_a_supervised_actor() {
    let sup = bounded(
        Supervisor::builder()
            .child(ChildSpec::from_actor("thumbs", thumbnailer(), ()))
            .spawn(),
    )
    .await
    .expect("supervisor starts");
    let mut events = bounded(sup.subscribe()).await.expect("events");
    let actor: ActorRef<Call<Thumbnailer>> = bounded(sup.child_ref("thumbs"))
        .await
        .expect("child is running");
    let thumbs = ThumbnailerClient(actor);
    assert_eq!(
        bounded(thumbs.resize(Image { width: 300 }, 100)).await,
        Ok(Image { width: 100 })
    );
    assert_eq!(
        bounded(thumbs.resize(Image { width: 300 }, 1)).await,
        Err(TaskError::Failed(TooSmall(1)))
    );
    bounded(thumbs.cast_note("kept".into()))
        .await
        .expect("handed over");
    assert_eq!(bounded(thumbs.notes()).await, Ok(vec!["kept".to_string()]));
    assert_eq!(bounded(thumbs.crash()).await, Err(TaskError::Crashed));
    // The supervisor starts a new incarnation from the same value: fresh state.
    next_matching(&mut events, |e| {
        matches!(e, SupervisorEvent::ChildStarted { generation: 2, .. })
    })
    .await;
    // The dead incarnation's handle (its exit is handled, so it has ended) says it stopped.
    assert_eq!(bounded(thumbs.stats()).await, Err(TaskError::Stopped));
    let fresh = ThumbnailerClient(
        bounded(sup.child_ref::<Call<Thumbnailer>>("thumbs"))
            .await
            .expect("restarted"),
    );
    assert_eq!(
        bounded(fresh.stats()).await,
        Ok(Stats {
            resized: 0,
            quality: 80
        })
    );
    assert_eq!(bounded(fresh.notes()).await, Ok(Vec::new()));
    sup.stop().await;
}

/// A generic worker: the enums and the client carry its parameters.
#[derive(Clone)]
pub struct Cache<K, V, const CAP: usize> {
    entries: Vec<(K, V)>,
}

#[ractor_otp::worker]
impl<K, V, const CAP: usize> Cache<K, V, CAP>
where
    K: PartialEq + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    pub async fn put(&mut self, key: K, value: V) -> Result<(), String> {
        if self.entries.len() >= CAP {
            return Err(format!("full at {CAP} entries"));
        }
        self.entries.retain(|(k, _)| *k != key);
        self.entries.push((key, value));
        Ok(())
    }

    pub async fn get(&self, key: K) -> Option<V> {
        self.entries
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| v.clone())
    }

    pub async fn count(&self) -> usize {
        self.entries.len()
    }
}

#[tokio::test]
async fn generic_workers_work_in_pools_and_alone() {
    let pool = bounded(
        Pool::builder(|_| Cache::<String, u32, 2> {
            entries: Vec::new(),
        })
        .size(1)
        .spawn(),
    )
    .await
    .expect("pool starts");
    let cache = CacheClient(pool);
    bounded(cache.put("a".into(), 1)).await.expect("put a");
    bounded(cache.put("b".into(), 2)).await.expect("put b");
    assert_eq!(
        bounded(cache.put("c".into(), 3)).await,
        Err(TaskError::Failed("full at 2 entries".to_string()))
    );
    assert_eq!(bounded(cache.get("b".into())).await, Ok(Some(2)));
    assert_eq!(bounded(cache.count()).await, Ok(2));
    cache.stop().await;

    let (actor, handle) = bounded(Actor::spawn(
        None,
        Cache::<u8, &'static str, 4> {
            entries: Vec::new(),
        },
        (),
    ))
    .await
    .expect("actor starts");
    let alone = CacheClient(actor.clone());
    bounded(alone.put(7, "seven")).await.expect("put");
    assert_eq!(bounded(alone.get(7)).await, Ok(Some("seven")));
    actor.stop(None);
    bounded(handle).await.expect("actor ends");
    assert_eq!(bounded(alone.get(7)).await, Err(TaskError::Stopped));
}

/// Hooks by attribute (`#[init]` under another name) and by name (`on_restart`); a struct that
/// is not `Clone` runs in pools only.
pub struct Session {
    log: Arc<Mutex<Vec<String>>>,
    connected: bool,
}

#[ractor_otp::worker(pool_only)]
impl Session {
    #[init]
    async fn connect(&mut self, ctx: WorkerContext) -> Result<(), String> {
        self.connected = true;
        self.record(format!("init {} gen {}", ctx.index, ctx.generation));
        Ok(())
    }

    async fn on_restart(&mut self) {
        self.record("on_restart".to_string());
    }

    async fn connected(&self) -> bool {
        self.connected
    }

    async fn fail(&mut self) {
        panic!("the session fails on purpose");
    }
}

impl Session {
    fn record(&self, entry: String) {
        self.log.lock().expect("log lock").push(entry);
    }
}

#[tokio::test]
async fn hooks_run_by_attribute_and_by_name() {
    let log = Arc::new(Mutex::new(Vec::new()));
    let shared = log.clone();
    let pool = bounded(
        Pool::builder(move |_| Session {
            log: shared.clone(),
            connected: false,
        })
        .size(1)
        .spawn(),
    )
    .await
    .expect("pool starts");
    let session = SessionClient(pool);
    assert_eq!(bounded(session.connected()).await, Ok(true));
    assert_eq!(bounded(session.fail()).await, Err(TaskError::Crashed));
    assert_eq!(bounded(session.connected()).await, Ok(true));
    assert_eq!(
        *log.lock().expect("log lock"),
        ["init 0 gen 1", "init 0 gen 2", "on_restart"]
    );
    session.stop().await;
}

/// The client is generic over the handle: one function serves a pool and an actor.
async fn resize_all<C>(thumbs: &ThumbnailerClient<C>, widths: &[u32]) -> Vec<u32>
where
    C: WorkerHandle<Worker = Thumbnailer>,
{
    let mut out = Vec::new();
    for &w in widths {
        if let Ok(img) = thumbs.resize(Image { width: 1000 }, w).await {
            out.push(img.width);
        }
    }
    out
}

#[tokio::test]
async fn one_client_function_serves_pools_and_actors() {
    let pooled = pool(2).await;
    assert_eq!(bounded(resize_all(&pooled, &[10, 1, 20])).await, [10, 20]);
    pooled.stop().await;
    let (actor, handle) = bounded(Actor::spawn(None, thumbnailer(), ()))
        .await
        .expect("actor starts");
    let alone = ThumbnailerClient::from(actor.clone());
    assert_eq!(bounded(resize_all(&alone, &[30, 2])).await, [30]);
    actor.stop(None);
    bounded(handle).await.expect("actor ends");
}

/// A derived worker's actor message is a ractor message, also with the `cluster` feature (where
/// ractor has no blanket impl).
#[test]
fn the_actor_message_is_a_ractor_message() {
    fn is_message<M: ractor::Message>() {}
    is_message::<Call<Thumbnailer>>();
    is_message::<Call<Cache<u8, u8, 1>>>();
}

#[tokio::test(start_paused = true)]
async fn every_method_has_a_fire_and_forget_form() {
    let thumbs = pool(1).await;
    // `kind` returns a value; its cast form drops it.
    bounded(thumbs.cast_kind()).await.expect("handed over");
    bounded(thumbs.cast_resize(Image { width: 640 }, 2))
        .await
        .expect("handed over");
    bounded(thumbs.note("after".into())).await.expect("ran");
    let stats = thumbs.0.stats();
    assert_eq!(
        (stats.submitted, stats.completed, stats.failed),
        (3, 2, 1),
        "both casts ran; the refused resize is counted as failed: {stats:?}"
    );
    thumbs.stop().await;
}

#[tokio::test(start_paused = true)]
async fn per_call_options_reach_the_pool() {
    use std::time::Duration;
    let thumbs = pool(1).await;
    let hasty = thumbs.with(TaskOptions::new().timeout(Duration::from_millis(50)));
    assert_eq!(bounded(hasty.slow_quality(10)).await, Ok(80));
    // The client it came from is unchanged: no timeout.
    assert_eq!(bounded(thumbs.slow_quality(20_000)).await, Ok(80));
    // Every form goes through the options.
    bounded(hasty.cast_note("quick".into()))
        .await
        .expect("handed over");
    assert_eq!(bounded(hasty.notes()).await, Ok(vec!["quick".to_string()]));
    // Last: the one worker is busy with this task until long after its caller gave up.
    assert_eq!(
        bounded(hasty.slow_quality(10_000)).await,
        Err(TaskError::TimedOut)
    );
    thumbs.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_single_worker_actor_honours_a_per_call_timeout() {
    use std::time::Duration;
    let (actor, _) = Actor::spawn(None, thumbnailer(), ())
        .await
        .expect("actor starts");
    let thumbs = ThumbnailerClient(actor.clone());
    let hasty = thumbs.with(TaskOptions::new().timeout(Duration::from_millis(50)));
    assert_eq!(
        bounded(hasty.slow_quality(10_000)).await,
        Err(TaskError::TimedOut)
    );
    assert_eq!(bounded(thumbs.slow_quality(10)).await, Ok(80));
    actor.stop(None);
}

/// A hook that returns a `Result` gets its own variant in the error enum, named after its
/// method, as a task method does: one error story for the whole worker.
#[derive(Clone)]
pub struct Gateway {
    host: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unreachable(pub &'static str);

impl fmt::Display for Unreachable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "cannot reach {}", self.0)
    }
}

#[ractor_otp::worker]
impl Gateway {
    #[init]
    async fn connect(&mut self) -> Result<(), Unreachable> {
        match self.host {
            "up.internal" => Ok(()),
            host => Err(Unreachable(host)),
        }
    }

    async fn host(&self) -> &'static str {
        self.host
    }
}

#[tokio::test]
async fn a_failing_hook_is_a_typed_error_and_a_failed_start() {
    let error = GatewayError::Connect(Unreachable("db.internal"));
    assert_eq!(error.to_string(), "cannot reach db.internal");

    let (up, handle) = bounded(Actor::spawn(
        None,
        Gateway {
            host: "up.internal",
        },
        (),
    ))
    .await
    .expect("a reachable gateway starts");
    assert_eq!(
        bounded(GatewayClient(up.clone()).host()).await,
        Ok("up.internal")
    );
    up.stop(None);
    bounded(handle).await.expect("actor ends");

    let alone = bounded(Actor::spawn(
        None,
        Gateway {
            host: "down.internal",
        },
        (),
    ))
    .await;
    let error = alone.map(|_| ()).expect_err("the actor's start fails");
    assert!(
        error.to_string().contains("cannot reach down.internal"),
        "{error}"
    );

    let pooled = bounded(
        Pool::builder(|_| Gateway {
            host: "down.internal",
        })
        .size(1)
        .spawn(),
    )
    .await;
    let error = pooled.map(|_| ()).expect_err("the pool's start fails");
    assert_eq!(
        error.to_string(),
        "child `worker-0` failed to start: cannot reach down.internal"
    );
}
