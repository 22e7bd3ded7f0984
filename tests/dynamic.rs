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

fn child_event(id: &str, started: bool, generation: u64) -> impl Fn(&SupervisorEvent) -> bool {
    let id = id.to_string();
    move |e| match e {
        SupervisorEvent::ChildStarted {
            id: i,
            generation: g,
            ..
        } => started && i.as_str() == id && *g == generation,
        SupervisorEvent::ChildExited {
            id: i,
            generation: g,
            ..
        } => !started && i.as_str() == id && *g == generation,
        _ => false,
    }
}

/// Keeps `sup` busy for 5 s: it restarts the child it started as `slow`, whose second start
/// takes that long. Returns once the supervisor is in that restart.
async fn busy_restarting(
    sup: &DynamicSupervisorRef<String>,
    probes: &Probes,
    events: &mut ractor_otp::supervisor::EventStream,
) {
    probes.script("slow", [StartStep::Ok, StartStep::Slow(5 * SEC)]);
    let slow = bounded(sup.start_child("slow".into()))
        .await
        .unwrap()
        .unwrap();
    next_matching(events, child_event("#1", true, 1)).await;
    let slow: ractor::ActorRef<ProbeMsg> = slow.into();
    slow.cast(ProbeMsg::Panic).unwrap();
    next_matching(events, child_event("#1", false, 1)).await;
}

/// A child runs on the caller's side before the supervisor hears of it: if it ends first,
/// its exit is still acted on when it is handed over (here: a permanent child, restarted).
#[tokio::test(start_paused = true)]
async fn a_child_that_ends_before_it_is_handed_over_is_restarted() {
    let probes = Probes::new();
    let mut builder = DynamicSupervisor::builder(probes.template()).intensity(5);
    let mut events = builder.subscribe();
    let sup = builder.spawn().await.unwrap();
    busy_restarting(&sup, &probes, &mut events).await;
    // Started while the supervisor is busy: it is handed over only once the restart is done,
    // and it crashes before that.
    let x = bounded(sup.start_child("x".into())).await.unwrap().unwrap();
    let x: ractor::ActorRef<ProbeMsg> = x.into();
    x.cast(ProbeMsg::Panic).unwrap();
    let (before, _) = next_matching(&mut events, child_event("#2", true, 2)).await;
    assert!(
        before.iter().any(child_event("#2", true, 1))
            && before.iter().any(child_event("#2", false, 1)),
        "x was handed over, then its exit acted on: {before:?}"
    );
    let which = bounded(sup.which_children()).await.unwrap();
    let x_now = which
        .iter()
        .find(|c| c.id.as_str() == "#2")
        .expect("x is held");
    assert_eq!(x_now.generation, 2);
    assert_eq!(ping_cell(x_now.cell().expect("x runs")).await, 2);
    sup.stop().await;
}

/// Starts under way count toward `max_children`: however many callers start at once, no
/// more than the maximum run, and a place freed is taken again.
#[tokio::test(start_paused = true)]
async fn max_children_holds_for_starts_under_way() {
    let probes = Probes::new();
    let sup = DynamicSupervisor::builder(probes.template())
        .max_children(4)
        .spawn()
        .await
        .unwrap();
    let ids: Vec<String> = (0..16).map(|i| format!("c{i}")).collect();
    for id in &ids {
        probes.script(id, [StartStep::Slow(SEC)]);
    }
    let results = bounded(futures::future::join_all(
        ids.iter().map(|id| sup.start_child(id.clone())),
    ))
    .await;
    let started: Vec<_> = results.iter().filter_map(|r| r.as_ref().ok()).collect();
    assert_eq!(started.len(), 4, "{results:?}");
    assert!(results
        .iter()
        .filter(|r| r.is_err())
        .all(|r| matches!(r, Err(SupervisorError::MaxChildren(4)))));
    assert_eq!(bounded(sup.count_children()).await.unwrap().active, 4);
    let first = started[0].clone().expect("started");
    bounded(sup.terminate_child(&first)).await.unwrap();
    assert!(bounded(sup.start_child("again".into()))
        .await
        .unwrap()
        .is_some());
    assert_eq!(
        bounded(sup.start_child("one more".into())).await.err(),
        Some(SupervisorError::MaxChildren(4))
    );
    sup.stop().await;
}

/// A caller that stops waiting does not stop the start: the child starts and is supervised.
#[tokio::test(start_paused = true)]
async fn a_start_whose_caller_stops_waiting_still_ends_supervised() {
    let probes = Probes::new();
    let mut builder = DynamicSupervisor::builder(probes.template());
    let mut events = builder.subscribe();
    let sup = builder.spawn().await.unwrap();
    probes.script("z", [StartStep::Slow(10 * SEC)]);
    let gave_up = tokio::time::timeout(SEC, sup.start_child("z".into())).await;
    assert!(gave_up.is_err(), "the start takes 10 s");
    next_matching(&mut events, child_event("#1", true, 1)).await;
    let which = bounded(sup.which_children()).await.unwrap();
    assert_eq!(which.len(), 1);
    assert_eq!(ping_cell(which[0].cell().expect("z runs")).await, 1);
    bounded(sup.stop()).await;
    assert_eq!(probes.log.snapshot(), s(&["start z", "stop z"]));
}

/// A child whose hand-over the supervisor never reads (it was told to stop first) is still
/// stopped in order at shutdown, by the template's policy, not killed.
#[tokio::test(start_paused = true)]
async fn a_child_handed_over_too_late_is_stopped_at_shutdown() {
    let probes = Probes::new();
    let mut builder = DynamicSupervisor::builder(probes.template()).intensity(5);
    let mut events = builder.subscribe();
    let sup = builder.spawn().await.unwrap();
    busy_restarting(&sup, &probes, &mut events).await;
    let y = bounded(sup.start_child("y".into())).await.unwrap().unwrap();
    // The stop overtakes y's hand-over in the supervisor's mailbox.
    bounded(sup.stop()).await;
    assert_eq!(y.get_status(), ractor::ActorStatus::Stopped);
    let log = probes.log.snapshot();
    assert!(
        log.contains(&"stop y".to_string()),
        "y's post_stop ran: {log:?}"
    );
    assert!(log.contains(&"stop slow".to_string()), "{log:?}");
}

/// A start function that panics before it even returns its future fails that start, like any
/// other panic in a start: the caller hears it, the place is free again, the supervisor goes on.
#[tokio::test(start_paused = true)]
async fn a_start_function_that_panics_at_once_fails_that_start() {
    let probes = Probes::new();
    let inner = probes.clone();
    let template = ChildTemplate::new(move |ctx: ChildContext, id: String| {
        assert_ne!(id, "boom", "the start function refuses boom");
        inner.clone().start(ctx, id)
    });
    let sup = DynamicSupervisor::builder(template)
        .max_children(1)
        .spawn()
        .await
        .unwrap();
    let failed = bounded(sup.start_child("boom".into())).await;
    assert!(
        matches!(
            &failed,
            Err(SupervisorError::StartFailed { reason: StartFailure::Panicked(text), .. })
                if text.contains("refuses boom")
        ),
        "{failed:?}"
    );
    assert!(bounded(sup.start_child("fine".into()))
        .await
        .unwrap()
        .is_some());
    assert_eq!(bounded(sup.count_children()).await.unwrap().active, 1);
    sup.stop().await;
}
