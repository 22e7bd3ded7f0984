//! A monthly report pipeline on the durable job queue: `cargo run --example jobs`.
//!
//! `FetchSources` (enqueued once, with the idempotency key `report-2026-11`) fans out 12
//! `Summarize { region }` children and a `BuildReport` collector (`ctx.enqueue_group`); the
//! collector runs once, after every child, reads their outputs (`ctx.child_outputs`) and
//! enqueues `Publish` as a follow-up (`ctx.enqueue`), which writes the report next to the
//! database. Follow-ups commit together with the completion of the job that enqueued them.
//! Two regions fail their first attempt, so retries (200 ms backoff) show up in the summary.
//! A runner runs 4 jobs at once; each job sleeps 150–450 ms: about 2.5 s in all.
//!
//! Everything lives in a SQLite file (`target/jobs-example.sqlite3`, or the first argument), so
//! the pipeline survives being stopped. Try it:
//!
//! * `cargo run --example jobs`, press Ctrl-C while regions are being summarized: the runner
//!   stops claiming, lets running jobs finish (or gives them back without spending an attempt),
//!   and the example exits;
//! * `cargo run --example jobs` again: enqueueing `FetchSources` is a no-op (same key), the
//!   runner picks up where the first run stopped and publishes the report;
//! * run it once more: everything is done, it only prints the summary. `--fresh` starts over
//!   (deletes the database and the report). A run killed hard (`kill -9`) is fine too: the
//!   next run finds its runner dead and takes its jobs over at once (the 5 s leases are the
//!   fallback).
//!
//! `--postgres postgres://user@host/db` keeps the queue in PostgreSQL instead (schema
//! `jobs_example`): run the example in two terminals at once and both runners share the work.
//! For a throwaway server: `bash .ci/with-postgres bash -c 'cargo run --example jobs --features postgres -- --postgres "$OTP_PG_URL"'`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use ractor_otp::jobs::{
    Group, Job, JobContext, JobError, JobOptions, JobResult, JobState, Jobs, ListFilter,
    RetryBackoff, SqliteStore,
};
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

const DEFAULT_DB: &str = "target/jobs-example.sqlite3";
const MONTH: &str = "2026-11";
const REGIONS: &str =
    "amsterdam berlin dublin lisbon madrid milan oslo paris prague stockholm vienna warsaw";
/// These regions' sources time out on the first attempt.
const FLAKY: [&str; 2] = ["lisbon", "oslo"];

#[derive(Serialize, Deserialize, Job)]
#[job(name = "fetch_sources", output = usize)] // regions found
struct FetchSources {
    month: String,
}

#[derive(Serialize, Deserialize, Job)]
#[job(name = "summarize", output = RegionSummary)]
struct Summarize {
    region: String,
}

#[derive(Serialize, Deserialize)]
struct RegionSummary {
    region: String,
    orders: u64,
    revenue_cents: u64,
}

/// The fan-in collector.
#[derive(Serialize, Deserialize, Job)]
#[job(name = "build_report", output = u64)] // total revenue, cents
struct BuildReport {
    month: String,
}

#[derive(Serialize, Deserialize, Job)]
#[job(name = "publish", output = String)] // where the report was written
struct Publish {
    month: String,
    text: String,
}

/// Deterministic "data" per region.
fn seed(region: &str) -> u64 {
    region.bytes().fold(7, |h, b| h * 31 % 1_000_003 + b as u64)
}

async fn fetch_sources(job: FetchSources, ctx: JobContext) -> JobResult<usize> {
    tokio::time::sleep(Duration::from_millis(300)).await;
    // Children may fail: 3 attempts, 200 ms apart. The collector runs once, after all of them.
    let backoff = RetryBackoff::fixed(Duration::from_millis(200));
    let retry = JobOptions::new().max_attempts(3).backoff(backoff);
    let regions: Vec<&str> = REGIONS.split(' ').collect();
    let children = regions.iter().fold(Group::new(), |g, r| {
        let region = r.to_string();
        g.child_with(Summarize { region }, retry.clone())
    });
    let month = job.month.clone();
    // Enqueued with this job's completion, in the same transaction (nothing if it fails).
    ctx.enqueue_group(children.collector(BuildReport { month }))?;
    let (month, n) = (job.month, regions.len());
    println!("  fetch_sources {month}: {n} regions, fanning out");
    Ok(n)
}

async fn summarize(job: Summarize, ctx: JobContext) -> JobResult<RegionSummary> {
    let (s, region) = (seed(&job.region), job.region);
    tokio::time::sleep(Duration::from_millis(200 + s % 250)).await;
    if FLAKY.contains(&region.as_str()) && ctx.attempt() == 1 {
        println!("  summarize {region:<9}  attempt 1 failed, retrying in 200 ms");
        return Err(JobError::retry(format!("{region}: source timed out")));
    }
    let orders = 100 + s % 900;
    let attempt = ctx.attempt();
    println!("  summarize {region:<9}  {orders} orders (attempt {attempt})");
    let revenue_cents = orders * (2_000 + s % 3_000);
    Ok(RegionSummary {
        region,
        orders,
        revenue_cents,
    })
}

fn row(region: &str, orders: impl std::fmt::Display, revenue: &str) -> String {
    format!("{region:<10} {orders:>6} {revenue:>12}\n")
}

async fn build_report(job: BuildReport, ctx: JobContext) -> JobResult<u64> {
    tokio::time::sleep(Duration::from_millis(250)).await;
    let header = row("region", "orders", "revenue");
    let mut text = format!("Sales report {}\n{header}", job.month);
    let mut rows = Vec::new();
    for (id, output) in ctx.child_outputs::<RegionSummary>()? {
        match output {
            Ok(summary) => rows.push(summary),
            Err(why) => text.push_str(&format!("{id}: missing ({why})\n")),
        }
    }
    rows.sort_by_key(|r| std::cmp::Reverse(r.revenue_cents));
    for r in &rows {
        text.push_str(&row(&r.region, r.orders, &euros(r.revenue_cents)));
    }
    let total: u64 = rows.iter().map(|r| r.revenue_cents).sum();
    let orders: u64 = rows.iter().map(|r| r.orders).sum();
    text.push_str(&row("total", orders, &euros(total)));
    let (n, total_eur) = (rows.len(), euros(total));
    println!("  build_report: {n} regions combined, total {total_eur}");
    let month = job.month;
    ctx.enqueue(Publish { month, text })?;
    Ok(total)
}

async fn publish(job: Publish, path: PathBuf) -> JobResult<String> {
    tokio::time::sleep(Duration::from_millis(150)).await;
    tokio::fs::write(&path, &job.text).await?;
    println!("  publish {}: wrote {}", job.month, path.display());
    Ok(path.display().to_string())
}

fn euros(cents: u64) -> String {
    format!("€{}.{:02}", cents / 100, cents % 100)
}

fn publish_jobs() -> ListFilter {
    let name = Some(Publish::NAME.to_owned());
    ListFilter {
        name,
        ..Default::default()
    }
}

/// Waits for the `Publish` job: a follow-up, so its id is found by listing (polled).
async fn wait_for_report(jobs: &Jobs) -> Result<String, Box<dyn std::error::Error>> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(job) = jobs.list(publish_jobs()).await?.first() {
            let left = deadline.saturating_duration_since(Instant::now());
            return Ok(jobs.wait_for::<Publish>(job.id, left).await?);
        }
        if Instant::now() >= deadline {
            return Err("no publish job after 30 s".into());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Job counts per state.
async fn print_counts(jobs: &Jobs) -> Result<(), Box<dyn std::error::Error>> {
    let counts = jobs.counts().await?.into_iter().filter(|(_, n)| *n > 0);
    let counts: Vec<String> = counts.map(|(s, n)| format!("{s} {n}")).collect();
    println!("jobs by state: {}", counts.join(", "));
    Ok(())
}

/// Counts, every job with its attempts (and errors), and the report.
async fn summary(jobs: &Jobs, report: &Path) -> Result<(), Box<dyn std::error::Error>> {
    print_counts(jobs).await?;
    for r in jobs.list(ListFilter::default()).await? {
        // Only `Summarize` payloads have a region.
        let region =
            serde_json::from_str::<Summarize>(&r.payload).map_or(String::new(), |s| s.region);
        let (id, name, state, n) = (r.id.to_string(), r.name, r.state.as_str(), r.attempt);
        let errors: String = r
            .errors
            .iter()
            .map(|e| format!("  (attempt {} failed: {})", e.attempt, e.error))
            .collect();
        println!("  {id:<7} {name:<13} {region:<9} {state:<9} attempts {n}{errors}");
    }
    let text = std::fs::read_to_string(report)?;
    println!("\n{}:\n{text}", report.display());
    Ok(())
}

/// The queue in the schema `jobs_example` of the server at `url` (`--fresh` drops it first).
#[cfg(feature = "postgres")]
async fn open_postgres(
    url: &str,
    fresh: bool,
    report: &Path,
) -> Result<Jobs, Box<dyn std::error::Error>> {
    if fresh {
        let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls).await?;
        let driver = tokio::spawn(connection);
        client
            .batch_execute("DROP SCHEMA IF EXISTS jobs_example CASCADE")
            .await?;
        drop(client);
        let _ = driver.await;
        let _ = std::fs::remove_file(report);
        println!("--fresh: dropped the schema jobs_example and deleted the report");
    }
    let store = ractor_otp::jobs::PostgresStore::options()
        .schema("jobs_example")
        .connect(url)
        .await?;
    println!("job store: PostgreSQL, schema jobs_example");
    Ok(Jobs::new(store))
}

#[cfg(not(feature = "postgres"))]
async fn open_postgres(
    _url: &str,
    _fresh: bool,
    _report: &Path,
) -> Result<Jobs, Box<dyn std::error::Error>> {
    Err("this build has no PostgreSQL store: build with the `postgres` feature".into())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let fresh = args.iter().any(|a| a == "--fresh");
    let postgres = args
        .iter()
        .position(|a| a == "--postgres")
        .map(|i| args.get(i + 1).cloned().ok_or("--postgres needs a URL"))
        .transpose()?;
    let db = args
        .iter()
        .enumerate()
        .find(|(i, a)| !a.starts_with("--") && (*i == 0 || args[i - 1] != "--postgres"))
        .map(|(_, a)| a.as_str());
    let db = PathBuf::from(db.unwrap_or(DEFAULT_DB));
    let report_path = db.with_file_name(format!("report-{MONTH}.txt"));
    if let Some(dir) = db.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    if fresh && postgres.is_none() {
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", db.display()));
        }
        let _ = std::fs::remove_file(&report_path);
        println!("--fresh: deleted the old database and report");
    }
    let jobs = match &postgres {
        Some(url) => open_postgres(url, fresh, &report_path).await?,
        None => {
            println!("job store: {}", db.display());
            Jobs::new(SqliteStore::open(&db).await?)
        }
    };

    // Idempotent: a re-run finds the job enqueued by the first run instead of adding one.
    let key = format!("report-{MONTH}");
    let (month, options) = (MONTH.to_owned(), JobOptions::new().idempotency_key(&key));
    let fetch = jobs.enqueue_with(FetchSources { month }, options).await?;
    if !fetch.duplicate {
        println!("enqueued fetch_sources ({}, key {key})", fetch.id);
    } else {
        let publish = jobs.list(publish_jobs()).await?.pop();
        if publish.is_some_and(|j| j.state == JobState::Completed) {
            println!("nothing to do: {key} already ran to completion (--fresh starts over)\n");
            return summary(&jobs, &report_path).await;
        }
        println!("resuming {key} ({} was enqueued before)", fetch.id);
        print_counts(&jobs).await?;
    }

    let started = Instant::now();
    let out = report_path.clone();
    let runner = jobs
        .runner()
        .handler(fetch_sources)
        .handler(summarize)
        .handler(build_report)
        .handler(move |job: Publish, _ctx: JobContext| publish(job, out.clone()))
        .concurrency(4)
        .lease(Duration::from_secs(5))
        .spawn()
        .await?;

    tokio::select! {
        report = wait_for_report(&jobs) => {
            let path = report?;
            runner.shutdown(Duration::from_secs(2)).await?;
            println!("\ndone in {:.1?}: report at {path}\n", started.elapsed());
            summary(&jobs, &report_path).await
        }
        _ = tokio::signal::ctrl_c() => {
            println!("\nCtrl-C after {:.1?}: stopping the runner (2 s to drain)", started.elapsed());
            // Stop claiming; running jobs finish, or are given back without spending an attempt.
            let stopped = runner.shutdown(Duration::from_secs(2)).await?;
            let (finished, released) = (stopped.finished, stopped.released);
            println!("{finished} running job(s) finished, {released} given back to the queue");
            print_counts(&jobs).await?;
            println!("run me again to finish");
            Ok(())
        }
    }
}
