//! Supervised tasks: a plain async function as a child (`ChildSpec::task`,
//! `ChildTemplate::task`), restarted by its restart type, stopped by the shutdown protocol,
//! visible like any child.

mod common;

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::*;
use ractor_otp::prelude::*;
use ractor_otp::supervisor::{StopCause, StopOutcome, SupervisorEvent};
use tokio::sync::mpsc;

/// Sends on a channel when dropped: proves a cancelled call was dropped.
struct DropSignal(mpsc::UnboundedSender<&'static str>);

impl Drop for DropSignal {
    fn drop(&mut self) {
        let _ = self.0.send("dropped");
    }
}

/// A task that says it started, then waits until cancelled; `dropped` hears when a call is
/// dropped.
fn waits_forever(
    dropped: mpsc::UnboundedSender<&'static str>,
    started: mpsc::UnboundedSender<()>,
) -> impl Fn() -> futures::future::BoxFuture<'static, Result<(), String>> + Send + Sync + 'static {
    move || {
        let signal = DropSignal(dropped.clone());
        let started = started.clone();
        Box::pin(async move {
            let _signal = signal;
            let _ = started.send(());
            futures::future::pending::<()>().await;
            Ok(())
        })
    }
}

/// A task whose n-th call (from 1) reports `<name> run n`, then returns what `script(n)` says
/// (`None`: it runs until cancelled).
fn scripted(
    name: &'static str,
    runs: mpsc::UnboundedSender<String>,
    script: impl Fn(u32) -> Option<Result<(), String>> + Send + Sync + 'static,
) -> impl Fn() -> futures::future::BoxFuture<'static, Result<(), String>> + Send + Sync + 'static {
    let calls = Arc::new(AtomicU32::new(0));
    let script = Arc::new(script);
    move || {
        let n = calls.fetch_add(1, Ordering::SeqCst) + 1;
        let (runs, script) = (runs.clone(), script.clone());
        Box::pin(async move {
            let _ = runs.send(format!("{name} run {n}"));
            match script(n) {
                Some(result) => result,
                None => futures::future::pending().await,
            }
        })
    }
}

#[tokio::test(start_paused = true)]
async fn a_task_that_fails_or_panics_is_restarted() {
    let (tx, mut runs) = mpsc::unbounded_channel();
    let task = scripted("flush", tx, |n| match n {
        1 => Some(Err("disk full".to_string())),
        2 => panic!("index out of range"),
        _ => Some(Ok(())),
    });
    let mut builder = Supervisor::builder()
        .intensity(5)
        .child(ChildSpec::task("flush", task).restart(Restart::Transient));
    let mut events = builder.subscribe();
    let sup = builder.spawn().await.expect("starts");
    for n in 1..=3 {
        assert_eq!(
            bounded(runs.recv()).await.expect("a run"),
            format!("flush run {n}")
        );
    }
    let mut exits = Vec::new();
    while exits.len() < 3 {
        let (_, e) = next_matching(&mut events, |e| {
            matches!(e, SupervisorEvent::ChildExited { .. })
        })
        .await;
        let SupervisorEvent::ChildExited { reason, .. } = e else {
            unreachable!()
        };
        exits.push(reason);
    }
    assert_eq!(exits[0].class, ExitClass::Abnormal);
    assert!(
        exits[0]
            .detail
            .as_deref()
            .unwrap_or("")
            .contains("disk full"),
        "{:?}",
        exits[0]
    );
    assert_eq!(exits[1].class, ExitClass::Abnormal);
    assert!(
        exits[1]
            .detail
            .as_deref()
            .unwrap_or("")
            .contains("the task panicked: index out of range"),
        "{:?}",
        exits[1]
    );
    assert_eq!(
        exits[2].class,
        ExitClass::Normal,
        "the third call returned Ok"
    );
    barrier(&sup).await;
    let info = bounded(sup.which_children()).await.unwrap();
    assert_eq!(
        info[0].status,
        ChildStatus::NotRunning,
        "a transient task that succeeded stays down"
    );
    assert_eq!(info[0].generation, 3);
    sup.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_permanent_task_that_returns_is_started_again_and_a_temporary_one_is_forgotten() {
    let (tx, mut runs) = mpsc::unbounded_channel();
    // "again" returns twice, then runs until stopped; "once" returns at once.
    let again = scripted("again", tx.clone(), |n| (n < 3).then_some(Ok(())));
    let once = scripted("once", tx, |_| Some(Ok(())));
    let mut builder = Supervisor::builder()
        .intensity(10)
        .child(ChildSpec::task("again", again))
        .child(ChildSpec::task("once", once).restart(Restart::Temporary));
    let mut events = builder.subscribe();
    let sup = builder.spawn().await.expect("starts");
    let mut seen = Vec::new();
    while seen.len() < 4 {
        seen.push(bounded(runs.recv()).await.expect("a run"));
    }
    seen.sort();
    assert_eq!(
        seen,
        s(&["again run 1", "again run 2", "again run 3", "once run 1"])
    );
    let (_, deleted) = next_matching(&mut events, |e| {
        matches!(e, SupervisorEvent::ChildDeleted { .. })
    })
    .await;
    assert_eq!(deleted, SupervisorEvent::ChildDeleted { id: "once".into() });
    let children = bounded(sup.which_children()).await.unwrap();
    assert_eq!(children.len(), 1, "the temporary task's spec is deleted");
    assert_eq!(
        (children[0].id.as_str(), children[0].generation),
        ("again", 3)
    );
    assert!(children[0].status.is_running());
    sup.stop().await;
}

#[tokio::test(start_paused = true)]
async fn shutdown_cancels_a_running_task_at_its_next_await() {
    let (tx, mut dropped) = mpsc::unbounded_channel();
    let (started_tx, mut started) = mpsc::unbounded_channel();
    let mut builder =
        Supervisor::builder().child(ChildSpec::task("wait", waits_forever(tx, started_tx)));
    let mut events = builder.subscribe();
    let sup = builder.spawn().await.expect("starts");
    bounded(started.recv()).await.expect("the task runs");
    let counts = bounded(sup.count_children()).await.unwrap();
    assert_eq!((counts.specs, counts.active, counts.workers), (1, 1, 1));
    let began = tokio::time::Instant::now();
    sup.stop().await;
    assert!(
        began.elapsed() < Duration::from_secs(1),
        "no shutdown timeout was needed"
    );
    assert_eq!(bounded(dropped.recv()).await, Some("dropped"));
    let (_, stopped) = next_matching(&mut events, |e| {
        matches!(e, SupervisorEvent::ChildStopped { .. })
    })
    .await;
    assert!(
        matches!(
            stopped,
            SupervisorEvent::ChildStopped {
                cause: StopCause::Shutdown,
                outcome: StopOutcome::Stopped,
                ..
            }
        ),
        "{stopped:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_killed_task_child_cancels_its_call_too() {
    let (tx, mut dropped) = mpsc::unbounded_channel();
    let (started_tx, mut started) = mpsc::unbounded_channel();
    let sup = Supervisor::builder()
        .child(
            ChildSpec::task("wait", waits_forever(tx, started_tx)).shutdown(Shutdown::BrutalKill),
        )
        .spawn()
        .await
        .expect("starts");
    bounded(started.recv()).await.expect("the task runs");
    bounded(sup.terminate_child("wait")).await.unwrap();
    assert_eq!(bounded(dropped.recv()).await, Some("dropped"));
    sup.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_dynamic_supervisor_runs_tasks_with_their_own_arguments() {
    let (tx, mut done) = mpsc::unbounded_channel();
    let attempts = Arc::new(AtomicU32::new(0));
    let template = {
        let attempts = attempts.clone();
        ChildTemplate::task(move |path: String| {
            let (tx, attempts) = (tx.clone(), attempts.clone());
            async move {
                // The first attempt at "b.log" fails; the retry succeeds.
                if path == "b.log" && attempts.fetch_add(1, Ordering::SeqCst) == 0 {
                    return Err(format!("{path}: connection reset"));
                }
                let _ = tx.send(path);
                Ok(())
            }
        })
        .restart(Restart::Transient)
    };
    let mut builder = DynamicSupervisor::builder(template).intensity(5);
    let mut events = builder.subscribe();
    let uploads = builder.spawn().await.expect("starts");
    for path in ["a.log", "b.log"] {
        bounded(uploads.start_child(path.to_string()))
            .await
            .expect("started");
    }
    let mut finished = vec![
        bounded(done.recv()).await.expect("one"),
        bounded(done.recv()).await.expect("two"),
    ];
    finished.sort();
    assert_eq!(finished, vec!["a.log".to_string(), "b.log".to_string()]);
    assert_eq!(attempts.load(Ordering::SeqCst), 2, "b.log was retried once");
    // Both succeeded: a transient dynamic child that ends normally is forgotten.
    for _ in 0..2 {
        next_matching(&mut events, |e| {
            matches!(e, SupervisorEvent::ChildDeleted { .. })
        })
        .await;
    }
    let counts = bounded(uploads.count_children()).await.unwrap();
    assert_eq!((counts.specs, counts.active), (1, 0));
    assert!(bounded(uploads.which_children()).await.unwrap().is_empty());
    uploads.stop().await;
}
