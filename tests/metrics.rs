//! Metrics (feature `metrics`): a recording recorder sees the documented names, labels, units
//! and values after a scripted crash, pool tasks and a job. One test: the recorder is global
//! to this binary.

mod common;

use std::time::Duration;

use common::{ping, tell, ProbeMsg, Probes};
use metrics::Unit;
use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};
use ractor_otp::jobs::{Job, JobContext, JobResult, Jobs, SqliteStore};
use ractor_otp::pool::Pool;
use ractor_otp::supervisor::{Supervisor, SupervisorEvent, SupervisorRef};
use ractor_otp::worker::Worker;
use serde::{Deserialize, Serialize};

#[derive(Clone)]
struct Echo;

impl Worker for Echo {
    type Task = u64;
    type Output = u64;
    type Error = String;

    async fn handle(&mut self, n: u64) -> Result<u64, String> {
        match n {
            13 => panic!("13 is unlucky"),
            0 => Err("zero".into()),
            n => Ok(n),
        }
    }
}

#[derive(Serialize, Deserialize)]
struct Count(u32);

impl Job for Count {
    const NAME: &'static str = "count";
    type Output = u32;
}

/// One recorded series: name, labels (sorted), unit, value.
type Series = (String, Vec<(String, String)>, Option<Unit>, DebugValue);

/// What the recorder holds, looked up by name and labels (in any order).
struct Recorded(Vec<Series>);

impl Recorded {
    fn take(snapshotter: &Snapshotter) -> Self {
        Recorded(
            snapshotter
                .snapshot()
                .into_vec()
                .into_iter()
                .map(|(key, unit, _help, value)| {
                    let key = key.key();
                    let mut labels: Vec<(String, String)> = key
                        .labels()
                        .map(|l| (l.key().to_owned(), l.value().to_owned()))
                        .collect();
                    labels.sort();
                    (key.name().to_owned(), labels, unit, value)
                })
                .collect(),
        )
    }

    fn find(&self, name: &str, labels: &[(&str, &str)]) -> (&Option<Unit>, &DebugValue) {
        let mut want: Vec<(String, String)> = labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        want.sort();
        self.0
            .iter()
            .find(|(n, l, _, _)| n == name && *l == want)
            .map(|(_, _, unit, value)| (unit, value))
            .unwrap_or_else(|| {
                let names: Vec<String> = self
                    .0
                    .iter()
                    .map(|(n, l, _, _)| format!("{n}{l:?}"))
                    .collect();
                panic!("no {name} {labels:?}; recorded: {names:#?}")
            })
    }

    fn counter(&self, name: &str, labels: &[(&str, &str)]) -> u64 {
        match self.find(name, labels) {
            (_, DebugValue::Counter(n)) => *n,
            other => panic!("{name} is not a counter: {other:?}"),
        }
    }

    fn gauge(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        match self.find(name, labels) {
            (_, DebugValue::Gauge(v)) => v.into_inner(),
            other => panic!("{name} is not a gauge: {other:?}"),
        }
    }

    /// A histogram's samples, checking its unit is seconds.
    fn seconds(&self, name: &str, labels: &[(&str, &str)]) -> Vec<f64> {
        match self.find(name, labels) {
            (unit, DebugValue::Histogram(v)) => {
                assert_eq!(*unit, Some(Unit::Seconds), "{name}'s unit");
                v.iter().map(|x| x.into_inner()).collect()
            }
            other => panic!("{name} is not a histogram: {other:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scripted_crash_tasks_and_a_job_are_recorded_under_their_documented_names() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    recorder
        .install()
        .expect("the only recorder of this test binary");

    // A supervisor whose child crashes once.
    let probes = Probes::new();
    let mut storage = Supervisor::builder()
        .intensity(3)
        .child(probes.spec("wal"))
        .child(probes.spec("index"));
    let mut events = storage.subscribe();
    let api = Pool::builder(|_| Echo).size(2).label("api");
    let app = Supervisor::builder()
        .label("app")
        .child(storage.into_child_spec("storage"))
        .child(api.into_child_spec("api"))
        .spawn()
        .await
        .unwrap();
    let storage = SupervisorRef::from_cell(app.child("storage").await.unwrap()).unwrap();
    tell(&storage, "wal", ProbeMsg::Panic).await;
    common::next_matching(&mut events, |e| {
        matches!(e, SupervisorEvent::ChildStarted { generation: 2, .. })
    })
    .await;
    assert_eq!(ping(&storage, "wal").await, 2);

    // Pool tasks: two done, one failed, one crashed.
    let pool = ractor_otp::pool::PoolRef::<Echo>::from_cell(app.child("api").await.unwrap())
        .await
        .unwrap();
    assert_eq!(pool.submit(1).await.unwrap(), 1);
    assert_eq!(pool.submit(2).await.unwrap(), 2);
    assert!(pool.submit(0).await.is_err());
    assert!(pool.submit(13).await.is_err());

    // A job, enqueued before the runner starts (so the states it samples at start add up to
    // it, whichever it is in then).
    let jobs = Jobs::new(SqliteStore::in_memory().unwrap());
    let id = jobs.enqueue(Count(41)).await.unwrap().id;
    let runner = jobs
        .runner()
        .handler(|job: Count, _ctx: JobContext| async move { JobResult::Ok(job.0 + 1) })
        .spawn()
        .await
        .unwrap();
    assert_eq!(
        jobs.wait_for::<Count>(id, Duration::from_secs(10))
            .await
            .unwrap(),
        42
    );
    runner.shutdown(Duration::from_secs(5)).await.unwrap();

    let m = Recorded::take(&snapshotter);
    // Supervision.
    assert_eq!(
        m.counter(
            "ractor_otp_supervisor_restarts_total",
            &[("supervisor", "app/storage"), ("child", "wal")]
        ),
        1
    );
    assert_eq!(
        m.gauge(
            "ractor_otp_supervisor_children_running",
            &[("supervisor", "app/storage")]
        ),
        2.0
    );
    // The pool.
    let pool_outcome = |outcome| {
        m.counter(
            "ractor_otp_pool_tasks_total",
            &[("pool", "api"), ("outcome", outcome)],
        )
    };
    assert_eq!(
        [
            pool_outcome("completed"),
            pool_outcome("failed"),
            pool_outcome("crashed")
        ],
        [2, 1, 1]
    );
    // The crashed task never finished on its worker: three durations, four waits.
    assert_eq!(
        m.seconds("ractor_otp_pool_task_duration_seconds", &[("pool", "api")])
            .len(),
        3
    );
    assert_eq!(
        m.seconds("ractor_otp_pool_queue_wait_seconds", &[("pool", "api")])
            .len(),
        4
    );
    // The job.
    assert_eq!(
        m.counter(
            "ractor_otp_jobs_finished_total",
            &[
                ("queue", "default"),
                ("kind", "count"),
                ("outcome", "completed")
            ]
        ),
        1
    );
    let took = m.seconds(
        "ractor_otp_job_duration_seconds",
        &[("queue", "default"), ("kind", "count")],
    );
    assert_eq!(took.len(), 1);
    assert!(took[0] >= 0.0 && took[0] < 10.0, "{took:?}");
    let late = m.seconds(
        "ractor_otp_job_queue_latency_seconds",
        &[("queue", "default"), ("kind", "count")],
    );
    assert_eq!(late.len(), 1);
    // Sampled at the runner's start: a gauge per state, adding up to the one job.
    let states = ractor_otp::jobs::JobState::ALL;
    let total: f64 = states
        .iter()
        .map(|s| m.gauge("ractor_otp_jobs", &[("state", s.as_str())]))
        .sum();
    assert_eq!(total, 1.0);

    app.stop().await;
}
