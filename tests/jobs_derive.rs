//! `#[derive(Job)]`: a derived job is stored under its name and version, runs with its
//! handler, and its `decode` reads payloads of older versions. (Compile errors: `tests/ui`.)

#![cfg(feature = "sqlite")]

use std::time::Duration;

use ractor_otp::jobs::{Job, JobContext, JobOptions, JobResult, Jobs, NewJob, SqliteStore};
use serde::{Deserialize, Serialize};

const WAIT: Duration = Duration::from_secs(20);

#[derive(Serialize, Deserialize, Job)]
#[job(name = "thumbnail", output = Thumb)]
struct MakeThumbnail {
    image: String,
    width: u32,
}

#[derive(Serialize, Deserialize, Debug, PartialEq)]
struct Thumb {
    path: String,
}

/// Version 1 stored a square's side; version 2 width and height.
#[derive(Serialize, Deserialize, Job, Debug, PartialEq)]
#[job(name = "crop", version = 2, output = u32, decode = Crop::upgrade)]
struct Crop {
    width: u32,
    height: u32,
}

impl Crop {
    fn upgrade(version: u32, payload: serde_json::Value) -> Result<Self, serde_json::Error> {
        #[derive(Deserialize)]
        struct V1 {
            side: u32,
        }
        if version == 1 {
            let V1 { side } = serde_json::from_value(payload)?;
            return Ok(Crop {
                width: side,
                height: side,
            });
        }
        serde_json::from_value(payload)
    }
}

/// An enum works too; no `output` means `()`.
#[derive(Serialize, Deserialize, Job)]
#[job(name = "cache_op")]
enum CacheOp {
    Flush,
    Evict { key: String },
}

#[test]
fn the_derive_writes_the_constants_and_the_output_type() {
    assert_eq!(
        (MakeThumbnail::NAME, MakeThumbnail::VERSION),
        ("thumbnail", 1)
    );
    assert_eq!((Crop::NAME, Crop::VERSION), ("crop", 2));
    assert_eq!(CacheOp::NAME, "cache_op");
    let none: <CacheOp as Job>::Output = ();
    let thumb: <MakeThumbnail as Job>::Output = Thumb { path: "t".into() };
    let _ = (
        none,
        thumb,
        CacheOp::Flush,
        CacheOp::Evict { key: "k".into() },
    );
    let row = NewJob::new(
        &Crop {
            width: 3,
            height: 4,
        },
        JobOptions::default(),
    )
    .unwrap();
    assert_eq!((row.name.as_str(), row.version), ("crop", 2));
}

#[tokio::test]
async fn a_derived_job_runs_with_its_handler_and_its_output_is_typed() {
    let jobs = Jobs::new(SqliteStore::in_memory().unwrap());
    let runner = jobs
        .runner()
        .handler(|job: MakeThumbnail, _ctx: JobContext| async move {
            JobResult::Ok(Thumb {
                path: format!("{}@{}", job.image, job.width),
            })
        })
        .spawn()
        .await
        .unwrap();
    let id = jobs
        .enqueue(MakeThumbnail {
            image: "cat.png".into(),
            width: 64,
        })
        .await
        .unwrap()
        .id;
    let thumb = jobs.wait_for::<MakeThumbnail>(id, WAIT).await.unwrap();
    assert_eq!(
        thumb,
        Thumb {
            path: "cat.png@64".into()
        }
    );
    runner.shutdown(WAIT).await.unwrap();
}

#[tokio::test]
async fn a_payload_stored_by_an_older_version_is_read_by_decode() {
    let store = SqliteStore::in_memory().unwrap();
    let jobs = Jobs::new(store.clone());
    // A job as release N (version 1 of `crop`) stored it.
    let old = NewJob {
        name: "crop".into(),
        version: 1,
        payload: r#"{"side": 7}"#.into(),
        options: JobOptions::default(),
    };
    let id = ractor_otp::jobs::Store::enqueue(&store, vec![old], jobs.now())
        .await
        .unwrap()[0]
        .id;
    let runner = jobs
        .runner()
        .handler(|job: Crop, _ctx: JobContext| async move { JobResult::Ok(job.width * job.height) })
        .spawn()
        .await
        .unwrap();
    assert_eq!(jobs.wait_for::<Crop>(id, WAIT).await.unwrap(), 49);
    runner.shutdown(WAIT).await.unwrap();
}
