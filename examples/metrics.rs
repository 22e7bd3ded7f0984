//! Metrics in Prometheus's text format: a supervised pool and a job runner at work, their
//! metrics served on loopback.
//!
//! ```text
//! cargo run --example metrics --features metrics            # serves http://127.0.0.1:9464/metrics
//! cargo run --example metrics --features metrics -- --once  # prints one scrape and exits
//! ```
//!
//! The library only records (through the `metrics` facade); the executable installs the
//! recorder, here `metrics-exporter-prometheus`, before anything starts. Its HTTP listener
//! is left out to keep the example's dependencies small: the rendered text is served by a few
//! lines of tokio below (in an application, mount `handle.render()` on your own router).

use std::time::Duration;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder};
use ractor_otp::jobs::{Job, JobContext, JobResult, Jobs, SqliteStore};
use ractor_otp::pool::{Pool, PoolRef};
use ractor_otp::supervisor::Supervisor;
use ractor_otp::worker::Worker;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[derive(Clone)]
struct Resize;

impl Worker for Resize {
    type Task = u32;
    type Output = u32;
    type Error = String;

    async fn handle(&mut self, width: u32) -> Result<u32, String> {
        tokio::time::sleep(Duration::from_millis(u64::from(width % 7))).await;
        match width {
            0 => Err("a width of zero".into()),
            13 => panic!("the resizer cannot stand 13"),
            w => Ok(w / 2),
        }
    }
}

#[derive(Serialize, Deserialize)]
struct Thumbnail(u32);

impl Job for Thumbnail {
    const NAME: &'static str = "thumbnail";
    type Output = ();
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let once = std::env::args().any(|a| a == "--once");
    // Buckets for every `_seconds` histogram (without them: summaries, not aggregatable).
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(
            Matcher::Suffix("_seconds".into()),
            &[0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0],
        )?
        .install_recorder()?;

    let jobs = Jobs::new(SqliteStore::in_memory()?);
    let runner = jobs
        .runner()
        .handler(|_job: Thumbnail, _ctx: JobContext| async { JobResult::Ok(()) });
    let app = Supervisor::builder()
        .label("app")
        .child(
            Pool::builder(|_| Resize)
                .size(4)
                .label("resize")
                .into_child_spec("resize"),
        )
        .child(runner.into_child_spec("thumbnails"))
        .spawn()
        .await?;
    let pool = PoolRef::<Resize>::from_cell(app.child("resize").await?)
        .await
        .ok_or("the pool is not running")?;

    // Some work: tasks (one failing, one crashing its worker) and jobs.
    for width in 0..200u32 {
        let _ = pool.submit(width).await;
    }
    for n in 0..50 {
        jobs.enqueue(Thumbnail(n)).await?;
    }
    tokio::time::sleep(Duration::from_millis(1_500)).await; // let the gauges publish
    println!("{}", app.tree().await?);

    if once {
        print!("{}", handle.render());
        app.stop().await;
        return Ok(());
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:9464").await?;
    println!("serving http://127.0.0.1:9464/metrics (Ctrl-C to stop)");
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (mut socket, _) = accepted?;
                let body = handle.render();
                tokio::spawn(async move {
                    let mut request = [0u8; 1024];
                    let _ = socket.read(&mut request).await;
                    let response = format!(
                        "HTTP/1.1 200 OK\r\ncontent-type: text/plain; version=0.0.4\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = socket.write_all(response.as_bytes()).await;
                });
            }
            _ = tokio::signal::ctrl_c() => break,
        }
    }
    app.stop().await;
    Ok(())
}
