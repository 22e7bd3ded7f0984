//! Ordered startup with unwinding, and the shutdown protocol (DESIGN §2 "Startup", "Shutdown").

mod common;

use std::time::Duration;

use common::*;
use ractor_otp::prelude::*;
use ractor_otp::supervisor::{StopCause, StopOutcome, SupervisorEvent};

const SEC: Duration = Duration::from_secs(1);

#[tokio::test(start_paused = true)]
async fn a_failed_start_unwinds_in_reverse_and_names_the_child() {
    for step in [StartStep::Fail, StartStep::Panic] {
        let probes = Probes::new();
        probes.script("c", [step]);
        let err = Supervisor::builder()
            .children(["a", "b", "c", "d"].map(|id| probes.spec(id)))
            .spawn()
            .await
            .expect_err("startup fails");
        // ractor tells a panic in pre_start from a returned Err by nothing but the text: both
        // are "failed", never called a panic.
        let text = match step {
            StartStep::Fail => "c refused to start",
            _ => "c panicked while starting",
        };
        match &err {
            StartError::ChildFailed { id, reason } => {
                assert_eq!(id, "c");
                assert_eq!(reason, &StartFailure::Failed(text.into()));
            }
            other => panic!("unexpected {other:?}"),
        }
        assert_eq!(
            err.to_string(),
            format!("child `c` failed to start: {text}")
        );
        assert_eq!(
            probes.log.snapshot(),
            s(&["start a", "start b", "start_failed c", "stop b", "stop a"]),
            "{step:?}"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn a_start_function_that_panics_is_a_failed_start() {
    let probes = Probes::new();
    let err = Supervisor::builder()
        .child(probes.spec("a"))
        .child(ChildSpec::new("boom", |_ctx: ChildContext| async {
            panic!("no luck");
        }))
        .spawn()
        .await
        .expect_err("startup fails");
    assert!(
        matches!(&err, StartError::ChildFailed { id, reason: StartFailure::Panicked(msg) } if id == "boom" && msg == "no luck"),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        "child `boom` failed to start: the start function panicked: no luck"
    );
    assert_eq!(probes.log.snapshot(), s(&["start a", "stop a"]));
}

#[tokio::test(start_paused = true)]
async fn ignore_at_startup_keeps_the_spec_unless_temporary() {
    let probes = Probes::new();
    probes.script("a", [StartStep::Ignore]);
    probes.script("t", [StartStep::Ignore]);
    let sup = Supervisor::builder()
        .child(probes.spec("a"))
        .child(probes.spec("t").restart(Restart::Temporary))
        .child(probes.spec("b"))
        .spawn()
        .await
        .unwrap();
    let children = bounded(sup.which_children()).await.unwrap();
    let ids: Vec<_> = children.iter().map(|c| c.id.to_string()).collect();
    assert_eq!(ids, s(&["a", "b"]));
    assert_eq!(children[0].status, ChildStatus::NotRunning);
    assert!(children[1].status.is_running());
    sup.stop().await;
}

#[tokio::test(start_paused = true)]
async fn invalid_configuration_is_a_typed_error() {
    let probes = Probes::new();
    let dup = Supervisor::builder()
        .child(probes.spec("a"))
        .child(probes.spec("a"))
        .spawn()
        .await
        .expect_err("duplicate ids");
    assert!(matches!(dup, StartError::InvalidSpec(SpecError::DuplicateId(ref id)) if id == "a"));
    let zero = Supervisor::builder()
        .period(Duration::ZERO)
        .spawn()
        .await
        .expect_err("zero period");
    assert!(matches!(
        zero,
        StartError::InvalidSpec(SpecError::ZeroPeriod)
    ));
    let sig = Supervisor::builder()
        .child(
            probes
                .spec("a")
                .restart(Restart::Transient)
                .significant(true),
        )
        .spawn()
        .await
        .expect_err("significant without auto-shutdown");
    assert!(matches!(
        sig,
        StartError::InvalidSpec(SpecError::SignificantWithoutAutoShutdown(_))
    ));
    let perm = Supervisor::builder()
        .auto_shutdown(AutoShutdown::AnySignificant)
        .child(probes.spec("a").significant(true))
        .spawn()
        .await
        .expect_err("significant permanent");
    assert!(matches!(
        perm,
        StartError::InvalidSpec(SpecError::SignificantPermanent(_))
    ));
    let backoff = Supervisor::builder()
        .child(probes.spec("a").backoff(Backoff::fixed(SEC).jitter(2.0)))
        .spawn()
        .await
        .expect_err("jitter above 1");
    assert!(matches!(
        backoff,
        StartError::InvalidSpec(SpecError::InvalidBackoff { ref id, .. }) if id == "a"
    ));
    assert!(probes.log.snapshot().is_empty(), "nothing was started");
}

async fn stop_one(shutdown: Shutdown, prepare: ProbeMsg) -> (Vec<String>, StopOutcome, Duration) {
    let probes = Probes::new();
    let mut builder = Supervisor::builder().child(probes.spec("x").shutdown(shutdown));
    let mut events = builder.subscribe();
    let sup = builder.spawn().await.unwrap();
    tell(&sup, "x", prepare).await;
    ping(&sup, "x").await; // the preparation has been handled (or x is hanging: see Hang)
    let t0 = tokio::time::Instant::now();
    bounded(sup.stop()).await;
    let elapsed = t0.elapsed();
    let (_, stopped) = next_matching(&mut events, |e| {
        matches!(e, SupervisorEvent::ChildStopped { .. })
    })
    .await;
    let SupervisorEvent::ChildStopped { outcome, cause, .. } = stopped else {
        unreachable!()
    };
    assert_eq!(cause, StopCause::Shutdown);
    (probes.log.snapshot(), outcome, elapsed)
}

#[tokio::test(start_paused = true)]
async fn a_child_that_stops_within_its_timeout_runs_its_cleanup() {
    let (log, outcome, elapsed) = stop_one(
        Shutdown::Timeout(SEC),
        ProbeMsg::SlowCleanup(Duration::from_millis(400)),
    )
    .await;
    assert_eq!(log, s(&["start x", "stop x"]));
    assert_eq!(outcome, StopOutcome::Stopped);
    assert_eq!(elapsed, Duration::from_millis(400));
}

#[tokio::test(start_paused = true)]
async fn a_child_that_overruns_its_timeout_is_killed() {
    let (log, outcome, elapsed) =
        stop_one(Shutdown::Timeout(SEC), ProbeMsg::SlowCleanup(3600 * SEC)).await;
    assert_eq!(log, s(&["start x"]), "killed: its cleanup never finished");
    assert_eq!(outcome, StopOutcome::KilledAfterTimeout);
    assert_eq!(elapsed, SEC);
}

#[tokio::test(start_paused = true)]
async fn a_child_that_ignores_stop_is_killed_after_the_timeout() {
    let probes = Probes::new();
    let mut builder =
        Supervisor::builder().child(probes.spec("x").shutdown(Shutdown::Timeout(2 * SEC)));
    let mut events = builder.subscribe();
    let sup = builder.spawn().await.unwrap();
    // The handler blocks for an hour: the stop request waits behind it.
    tell(&sup, "x", ProbeMsg::Hang(3600 * SEC)).await;
    let t0 = tokio::time::Instant::now();
    bounded(sup.stop()).await;
    assert_eq!(t0.elapsed(), 2 * SEC);
    let (_, e) = next_matching(&mut events, |e| {
        matches!(e, SupervisorEvent::ChildStopped { .. })
    })
    .await;
    assert!(matches!(
        e,
        SupervisorEvent::ChildStopped {
            outcome: StopOutcome::KilledAfterTimeout,
            ..
        }
    ));
}

#[tokio::test(start_paused = true)]
async fn brutal_kill_skips_cleanup() {
    let (log, outcome, elapsed) = stop_one(Shutdown::BrutalKill, ProbeMsg::SlowCleanup(SEC)).await;
    assert_eq!(log, s(&["start x"]));
    assert_eq!(outcome, StopOutcome::Killed);
    assert_eq!(elapsed, Duration::ZERO);
}

#[tokio::test(start_paused = true)]
async fn infinity_waits_as_long_as_cleanup_takes() {
    // Longer than the default 5 s worker timeout (and within the tests' 30 s bound).
    let (log, outcome, elapsed) =
        stop_one(Shutdown::Infinity, ProbeMsg::SlowCleanup(20 * SEC)).await;
    assert_eq!(log, s(&["start x", "stop x"]));
    assert_eq!(outcome, StopOutcome::Stopped);
    assert_eq!(elapsed, 20 * SEC);
}

#[tokio::test(start_paused = true)]
async fn nested_shutdown_completes_before_the_parent_ends() {
    let probes = Probes::new();
    let inner = Supervisor::builder()
        .children(["i1", "i2"].map(|id| probes.spec(id)))
        .into_child_spec("inner");
    let root = Supervisor::builder()
        .child(probes.spec("a"))
        .child(inner)
        .child(probes.spec("z"))
        .spawn()
        .await
        .unwrap();
    probes.log.wait_len(4).await;
    probes.log.clear();
    // inner's children clean up slowly; the root still waits (inner's shutdown is Infinity).
    let inner_ref = bounded(root.child_supervisor("inner")).await.unwrap();
    for id in ["i1", "i2"] {
        tell(&inner_ref, id, ProbeMsg::SlowCleanup(SEC)).await;
        ping(&inner_ref, id).await;
    }
    bounded(root.stop()).await;
    assert_eq!(
        probes.log.snapshot(),
        s(&["stop z", "stop i2", "stop i1", "stop a"])
    );
}

#[tokio::test(start_paused = true)]
async fn stopping_twice_is_harmless() {
    let probes = Probes::new();
    let sup = Supervisor::builder()
        .child(probes.spec("a"))
        .spawn()
        .await
        .unwrap();
    bounded(sup.stop()).await;
    bounded(sup.stop()).await;
    bounded(sup.wait()).await;
    assert_eq!(probes.log.snapshot(), s(&["start a", "stop a"]));
}

#[tokio::test(start_paused = true)]
async fn a_nested_failure_names_each_child_down_to_the_one_that_failed() {
    let probes = Probes::new();
    probes.script("db", [StartStep::Fail]);
    let storage = Supervisor::builder().child(probes.spec("db"));
    let backend = Supervisor::builder().child(storage.into_child_spec("storage"));
    let err = Supervisor::builder()
        .child(probes.spec("a"))
        .child(backend.into_child_spec("backend"))
        .spawn()
        .await
        .expect_err("startup fails");
    let db_failed = StartFailure::Failed("db refused to start".into());
    let StartError::ChildFailed { id, reason } = &err else {
        panic!("unexpected {err:?}");
    };
    assert_eq!(id, "backend");
    assert_eq!(
        reason,
        &StartFailure::Child {
            id: "storage".into(),
            failure: Box::new(StartFailure::Child {
                id: "db".into(),
                failure: Box::new(db_failed.clone()),
            }),
        }
    );
    assert_eq!(reason.root_cause(), &db_failed);
    assert_eq!(
        err.to_string(),
        "child `backend` failed to start: its child `storage` failed to start: \
         its child `db` failed to start: db refused to start"
    );
    assert_eq!(
        probes.log.snapshot(),
        s(&["start a", "start_failed db", "stop a"])
    );
}

#[tokio::test(start_paused = true)]
async fn a_nested_supervisor_with_bad_settings_says_which_setting() {
    let err = Supervisor::builder()
        .child(
            Supervisor::builder()
                .period(Duration::ZERO)
                .into_child_spec("sub"),
        )
        .spawn()
        .await
        .expect_err("startup fails");
    assert!(
        matches!(&err, StartError::ChildFailed { id, reason: StartFailure::InvalidSpec(SpecError::ZeroPeriod) } if id == "sub"),
        "{err:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_taken_registry_name_is_a_typed_failure() {
    let probes = Probes::new();
    let name = "startup_shutdown-taken-name";
    let err = Supervisor::builder()
        .child(probes.spec("a").registered_name(name))
        .child(probes.spec("b").registered_name(name))
        .spawn()
        .await
        .expect_err("the second child cannot take the name");
    assert!(
        matches!(&err, StartError::ChildFailed { id, reason: StartFailure::NameTaken(n) } if id == "b" && n == name),
        "{err:?}"
    );
    // The supervisor's own name, too.
    let holder = Supervisor::builder()
        .registered_name(name)
        .spawn()
        .await
        .expect("the name is free again");
    let err = Supervisor::builder()
        .registered_name(name)
        .spawn()
        .await
        .expect_err("taken");
    assert!(
        matches!(&err, StartError::Spawn(StartFailure::NameTaken(n)) if n == name),
        "{err:?}"
    );
    holder.stop().await;
}

/// A child whose handler spins on the CPU, never yielding, until its flag is set.
#[derive(Clone)]
struct Spinner;

#[cfg_attr(feature = "async-trait", ractor::async_trait)]
impl ractor::Actor for Spinner {
    type Msg = ();
    type State = (
        std::sync::Arc<std::sync::atomic::AtomicBool>,
        tokio::sync::mpsc::UnboundedSender<()>,
    );
    type Arguments = Self::State;

    async fn pre_start(
        &self,
        _: ractor::ActorRef<()>,
        state: Self::State,
    ) -> Result<Self::State, ractor::ActorProcessingErr> {
        Ok(state)
    }

    async fn handle(
        &self,
        _: ractor::ActorRef<()>,
        _: (),
        (release, spinning): &mut Self::State,
    ) -> Result<(), ractor::ActorProcessingErr> {
        let _ = spinning.send(());
        while !release.load(std::sync::atomic::Ordering::Acquire) {
            std::hint::spin_loop();
        }
        Ok(())
    }
}

/// Ends the spin when the test ends, however it ends.
struct Release(std::sync::Arc<std::sync::atomic::AtomicBool>);

impl Drop for Release {
    fn drop(&mut self) {
        self.0.store(true, std::sync::atomic::Ordering::Release);
    }
}

/// A spinning handler blocks a runtime thread, so this runs on two threads in real time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_goes_on_without_a_child_that_does_not_end_even_when_killed() {
    let release = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let _release = Release(release.clone());
    let (tx, mut spinning) = tokio::sync::mpsc::unbounded_channel();
    let mut builder = Supervisor::builder().child(
        ChildSpec::from_actor("spinner", Spinner, (release, tx))
            .shutdown(Shutdown::Timeout(Duration::from_millis(100))),
    );
    let mut events = builder.subscribe();
    let sup = builder.spawn().await.expect("starts");
    let spinner = bounded(sup.child_ref::<()>("spinner")).await.unwrap();
    spinner.cast(()).expect("alive");
    bounded(spinning.recv()).await.expect("it spins");
    let began = std::time::Instant::now();
    bounded(sup.stop()).await;
    let took = began.elapsed();
    assert!(
        took >= Duration::from_secs(5) && took < Duration::from_secs(15),
        "stop returned after {took:?}: the shutdown timeout, then 5 s for the kill"
    );
    let (_, stopped) = next_matching(&mut events, |e| {
        matches!(e, SupervisorEvent::ChildStopped { .. })
    })
    .await;
    assert!(
        matches!(
            stopped,
            SupervisorEvent::ChildStopped {
                outcome: StopOutcome::Abandoned,
                ..
            }
        ),
        "{stopped:?}"
    );
}
