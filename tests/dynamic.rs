//! The dynamic supervisor (simple_one_for_one).

mod common;

use std::time::Duration;

use common::*;
use ractor_otp::prelude::*;
use ractor_otp::supervisor::{ChildCounts, ChildStatus, SupervisorEvent};

const SEC: Duration = Duration::from_secs(1);

fn is_started(e: &SupervisorEvent) -> bool {
    matches!(e, SupervisorEvent::ChildStarted { .. })
}

async fn ping_cell(cell: &ractor::ActorCell) -> u64 {
    let probe: ractor::ActorRef<ProbeMsg> = cell.clone().into();
    bounded(async { ractor::call!(probe, ProbeMsg::Ping) })
        .await
        .expect("ping")
}

#[tokio::test(start_paused = true)]
async fn children_start_with_their_own_arguments_and_restart_with_them() {
    let probes = Probes::new();
    let mut builder = DynamicSupervisor::builder(probes.template()).intensity(5);
    let mut events = builder.subscribe();
    let sup = builder.spawn().await.unwrap();
    let a = bounded(sup.start_child("a".into())).await.unwrap().unwrap();
    let _b = bounded(sup.start_child("b".into())).await.unwrap().unwrap();
    assert_eq!(probes.log.snapshot(), s(&["start a", "start b"]));
    let a_ref: ractor::ActorRef<ProbeMsg> = a.clone().into();
    a_ref.cast(ProbeMsg::Panic).unwrap();
    next_matching(&mut events, is_started).await; // a
    next_matching(&mut events, is_started).await; // b
    next_matching(&mut events, is_started).await; // a again
    assert_eq!(
        probes.log.snapshot(),
        s(&["start a", "start b", "crash a", "start a"])
    );
    let which = bounded(sup.which_children()).await.unwrap();
    assert_eq!(which.len(), 2);
    assert_eq!(which[0].generation, 2);
    let new_a = which[0].cell().cloned().unwrap();
    assert_ne!(new_a.get_id(), a.get_id());
    assert_eq!(ping_cell(&new_a).await, 2);
    assert_eq!(
        bounded(sup.count_children()).await.unwrap(),
        ChildCounts {
            specs: 1,
            active: 2,
            supervisors: 0,
            workers: 2
        }
    );
    sup.stop().await;
}

#[tokio::test(start_paused = true)]
async fn max_children_is_enforced() {
    let probes = Probes::new();
    let sup = DynamicSupervisor::builder(probes.template())
        .max_children(2)
        .spawn()
        .await
        .unwrap();
    bounded(sup.start_child("a".into())).await.unwrap();
    let b = bounded(sup.start_child("b".into())).await.unwrap().unwrap();
    assert_eq!(
        bounded(sup.start_child("c".into())).await.err(),
        Some(SupervisorError::MaxChildren(2))
    );
    bounded(sup.terminate_child(&b)).await.unwrap();
    assert!(bounded(sup.start_child("c".into()))
        .await
        .unwrap()
        .is_some());
    let zero = DynamicSupervisor::builder(probes.template())
        .max_children(0)
        .spawn()
        .await
        .err();
    assert!(matches!(
        zero,
        Some(StartError::InvalidSpec(SpecError::ZeroMaxChildren))
    ));
    sup.stop().await;
}

#[tokio::test(start_paused = true)]
async fn terminate_child_by_cell() {
    let probes = Probes::new();
    let sup = DynamicSupervisor::builder(probes.template())
        .spawn()
        .await
        .unwrap();
    let a = bounded(sup.start_child("a".into())).await.unwrap().unwrap();
    bounded(sup.terminate_child(&a)).await.unwrap();
    assert_eq!(probes.log.snapshot(), s(&["start a", "stop a"]));
    // A cell that already ended: ok (idempotent).
    bounded(sup.terminate_child(&a)).await.unwrap();
    // A live actor that is not a child: not found.
    let stranger = Supervisor::builder().spawn().await.unwrap();
    assert!(matches!(
        bounded(sup.terminate_child(&stranger.get_cell())).await,
        Err(SupervisorError::NotFound(_))
    ));
    stranger.stop().await;
    assert!(bounded(sup.which_children()).await.unwrap().is_empty());
    sup.stop().await;
}

#[tokio::test(start_paused = true)]
async fn children_stop_in_parallel() {
    let probes = Probes::new();
    let sup = DynamicSupervisor::builder(probes.template().shutdown(Shutdown::Timeout(5 * SEC)))
        .spawn()
        .await
        .unwrap();
    for id in ["a", "b", "c"] {
        let cell = bounded(sup.start_child(id.into())).await.unwrap().unwrap();
        let probe: ractor::ActorRef<ProbeMsg> = cell.clone().into();
        probe.cast(ProbeMsg::SlowCleanup(SEC)).unwrap();
        ping_cell(&cell).await;
    }
    let t0 = tokio::time::Instant::now();
    bounded(sup.stop()).await;
    assert_eq!(t0.elapsed(), SEC, "three 1 s cleanups in parallel take 1 s");
    let mut log = probes.log.snapshot()[3..].to_vec();
    log.sort();
    assert_eq!(log, s(&["stop a", "stop b", "stop c"]));
}

#[tokio::test(start_paused = true)]
async fn transient_and_temporary_children_that_end_are_removed() {
    for (restart, how) in [
        (
            Restart::Transient,
            (|| ProbeMsg::ExitNormal) as fn() -> ProbeMsg,
        ),
        (Restart::Temporary, (|| ProbeMsg::Panic) as fn() -> ProbeMsg),
    ] {
        let probes = Probes::new();
        let mut builder = DynamicSupervisor::builder(probes.template().restart(restart));
        let mut events = builder.subscribe();
        let sup = builder.spawn().await.unwrap();
        let a = bounded(sup.start_child("a".into())).await.unwrap().unwrap();
        let probe: ractor::ActorRef<ProbeMsg> = a.into();
        probe.cast(how()).unwrap();
        next_matching(&mut events, |e| {
            matches!(e, SupervisorEvent::ChildDeleted { .. })
        })
        .await;
        assert!(bounded(sup.which_children()).await.unwrap().is_empty());
        sup.stop().await;
    }
}

#[tokio::test(start_paused = true)]
async fn a_crash_loop_gives_up_and_the_parent_is_told() {
    let probes = Probes::new();
    let (parent, mut seen) = parent().await;
    let mut builder = DynamicSupervisor::builder(probes.template()).intensity(2);
    let mut events = builder.subscribe();
    let sup = builder.spawn_linked(parent.get_cell()).await.unwrap();
    bounded(sup.start_child("a".into())).await.unwrap();
    bounded(sup.start_child("b".into())).await.unwrap();
    for _ in 0..3 {
        let which = bounded(sup.which_children()).await.unwrap();
        let a: ractor::ActorRef<ProbeMsg> = which[0].cell().cloned().unwrap().into();
        a.cast(ProbeMsg::Panic).unwrap();
        let _ = next_matching(&mut events, |e| {
            matches!(
                e,
                SupervisorEvent::ChildStarted { .. } | SupervisorEvent::GaveUp { .. }
            )
        })
        .await;
    }
    let told = bounded(seen.recv()).await.unwrap();
    assert!(told.starts_with("intensity_exceeded"), "{told}");
    bounded(sup.wait()).await;
    let log = probes.log.snapshot();
    assert_eq!(log.last().map(String::as_str), Some("stop b"), "{log:?}");
}

#[tokio::test(start_paused = true)]
async fn a_failing_restart_is_retried_with_backoff() {
    let probes = Probes::new();
    probes.script("a", [StartStep::Ok, StartStep::Fail]);
    let mut builder = DynamicSupervisor::builder(
        probes
            .template()
            .backoff(Backoff::fixed(Duration::from_millis(100))),
    )
    .intensity(5);
    let mut events = builder.subscribe();
    let sup = builder.spawn().await.unwrap();
    let a = bounded(sup.start_child("a".into())).await.unwrap().unwrap();
    let crashed_at = tokio::time::Instant::now();
    let probe: ractor::ActorRef<ProbeMsg> = a.into();
    probe.cast(ProbeMsg::Panic).unwrap();
    next_matching(&mut events, |e| {
        matches!(e, SupervisorEvent::ChildStartFailed { .. })
    })
    .await;
    let which = bounded(sup.which_children()).await.unwrap();
    assert_eq!(which[0].status, ChildStatus::Restarting);
    next_matching(&mut events, is_started).await;
    assert_eq!(crashed_at.elapsed(), Duration::from_millis(200));
    assert_eq!(
        probes.log.snapshot(),
        s(&["start a", "crash a", "start_failed a", "start a"])
    );
    sup.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_nested_dynamic_supervisor_is_reachable_by_its_id() {
    let probes = Probes::new();
    let sessions = DynamicSupervisor::builder(probes.template())
        .into_child_spec("sessions")
        .registered_name("dynamic-test-sessions");
    let root = Supervisor::builder()
        .child(probes.spec("a"))
        .child(sessions)
        .spawn()
        .await
        .unwrap();
    let sessions = bounded(root.child_dynamic::<String>("sessions"))
        .await
        .unwrap();
    let named = ractor::registry::where_is("dynamic-test-sessions").expect("registered");
    assert_eq!(named.get_id(), sessions.get_cell().get_id());
    bounded(sessions.start_child("s1".into())).await.unwrap();
    let which = bounded(sessions.which_children()).await.unwrap();
    assert_eq!(which[0].id, "#1");
    // The wrong argument type, or a child that is not a dynamic supervisor: WrongType.
    assert!(matches!(
        bounded(root.child_dynamic::<u64>("sessions")).await,
        Err(SupervisorError::WrongType { .. })
    ));
    assert!(matches!(
        bounded(root.child_dynamic::<String>("a")).await,
        Err(SupervisorError::WrongType { .. })
    ));
    root.stop().await;
    assert_eq!(
        probes.log.snapshot(),
        s(&["start a", "start s1", "stop s1", "stop a"])
    );
}
