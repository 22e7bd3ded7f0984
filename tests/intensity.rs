//! Restart intensity, escalation, failed restarts and backoff (DESIGN §2), on a paused clock.

mod common;

use std::time::Duration;

use common::*;
use ractor_otp::prelude::*;
use ractor_otp::supervisor::SupervisorEvent;

const SEC: Duration = Duration::from_secs(1);

fn is_started(id: &'static str) -> impl Fn(&SupervisorEvent) -> bool {
    move |e| matches!(e, SupervisorEvent::ChildStarted { id: i, .. } if *i == id)
}

#[tokio::test(start_paused = true)]
async fn n_restarts_are_allowed_the_next_gives_up_and_the_parent_is_told() {
    let probes = Probes::new();
    let (parent, mut seen) = parent().await;
    let sup = Supervisor::builder()
        .intensity(3)
        .period(5 * SEC)
        .children(["a", "b", "c"].map(|id| probes.spec(id)))
        .spawn_linked(parent.get_cell())
        .await
        .unwrap();
    probes.log.wait_len(3).await;
    probes.log.clear();
    for n in 1..=3 {
        tell(&sup, "a", ProbeMsg::Panic).await;
        probes.log.wait_len(2 * n).await;
        assert_eq!(ping(&sup, "a").await, n as u64 + 1);
    }
    tell(&sup, "a", ProbeMsg::Panic).await;
    let what = bounded(seen.recv()).await.expect("parent is told");
    assert_eq!(what, "intensity_exceeded a");
    bounded(sup.wait()).await;
    assert_eq!(
        probes.log.snapshot()[6..],
        s(&["crash a", "stop c", "stop b"]),
        "gave up: remaining children stopped in reverse order"
    );
    assert_eq!(
        bounded(sup.count_children()).await,
        Err(SupervisorError::SupervisorStopped)
    );
}

#[tokio::test(start_paused = true)]
async fn zero_intensity_gives_up_at_the_first_exit() {
    let probes = Probes::new();
    let (parent, mut seen) = parent().await;
    let sup = Supervisor::builder()
        .intensity(0)
        .children(["a", "b", "c"].map(|id| probes.spec(id)))
        .spawn_linked(parent.get_cell())
        .await
        .unwrap();
    probes.log.wait_len(3).await;
    probes.log.clear();
    tell(&sup, "b", ProbeMsg::Panic).await;
    assert_eq!(bounded(seen.recv()).await.unwrap(), "intensity_exceeded b");
    assert_eq!(probes.log.snapshot(), s(&["crash b", "stop c", "stop a"]));
}

#[tokio::test(start_paused = true)]
async fn restarts_that_left_the_window_are_forgotten() {
    let probes = Probes::new();
    let sup = Supervisor::builder()
        .intensity(1)
        .period(5 * SEC)
        .child(probes.spec("a"))
        .spawn()
        .await
        .unwrap();
    for generation in 2..=4 {
        tell(&sup, "a", ProbeMsg::Panic).await;
        probes.log.wait_len(2 * generation as usize - 1).await;
        assert_eq!(ping(&sup, "a").await, generation);
        tokio::time::advance(5 * SEC + Duration::from_millis(1)).await;
    }
    assert!(sup.is_alive());
    sup.stop().await;
}

#[tokio::test(start_paused = true)]
async fn the_window_boundary_is_inclusive() {
    let probes = Probes::new();
    let (parent, mut seen) = parent().await;
    let sup = Supervisor::builder()
        .intensity(1)
        .period(5 * SEC)
        .child(probes.spec("a"))
        .spawn_linked(parent.get_cell())
        .await
        .unwrap();
    tell(&sup, "a", ProbeMsg::Panic).await;
    probes.log.wait_len(3).await;
    tokio::time::advance(5 * SEC).await;
    tell(&sup, "a", ProbeMsg::Panic).await;
    assert_eq!(bounded(seen.recv()).await.unwrap(), "intensity_exceeded a");
}

#[tokio::test(start_paused = true)]
async fn a_multi_child_restart_counts_once() {
    let probes = Probes::new();
    let (parent, mut seen) = parent().await;
    let sup = Supervisor::builder()
        .strategy(Strategy::OneForAll)
        .intensity(1)
        .children(["a", "b", "c"].map(|id| probes.spec(id)))
        .spawn_linked(parent.get_cell())
        .await
        .unwrap();
    probes.log.wait_len(3).await;
    tell(&sup, "b", ProbeMsg::Panic).await;
    probes.log.wait_len(3 + 6).await;
    barrier(&sup).await;
    assert!(
        sup.is_alive(),
        "three children restarted, one restart counted"
    );
    tell(&sup, "b", ProbeMsg::Panic).await;
    assert_eq!(bounded(seen.recv()).await.unwrap(), "intensity_exceeded b");
}

#[tokio::test(start_paused = true)]
async fn failed_restarts_are_retried_and_each_retry_counts() {
    // OTP probe: intensity 3, b's restart always fails →
    // crash b, start_failed b ×3, stop c, stop a → supervisor exits.
    let probes = Probes::new();
    let (parent, mut seen) = parent().await;
    probes.script("b", [StartStep::Ok]);
    probes.script("b", [StartStep::Fail; 10]);
    let sup = Supervisor::builder()
        .intensity(3)
        .children(["a", "b", "c"].map(|id| probes.spec(id)))
        .spawn_linked(parent.get_cell())
        .await
        .unwrap();
    probes.log.wait_len(3).await;
    probes.log.clear();
    tell(&sup, "b", ProbeMsg::Panic).await;
    assert_eq!(bounded(seen.recv()).await.unwrap(), "intensity_exceeded b");
    assert_eq!(
        probes.log.snapshot(),
        s(&[
            "crash b",
            "start_failed b",
            "start_failed b",
            "start_failed b",
            "stop c",
            "stop a"
        ])
    );
}

#[tokio::test(start_paused = true)]
async fn one_for_all_retry_stops_what_the_failed_attempt_started() {
    // OTP probe (I=3): crash a, stop c, stop b, start a, start b, start_failed c,
    // [stop b, stop a, start a, start b, start_failed c] ×2, stop b, stop a → exit.
    let probes = Probes::new();
    let (parent, mut seen) = parent().await;
    probes.script("c", [StartStep::Ok]);
    probes.script("c", [StartStep::Fail; 10]);
    let sup = Supervisor::builder()
        .strategy(Strategy::OneForAll)
        .intensity(3)
        .children(["a", "b", "c"].map(|id| probes.spec(id)))
        .spawn_linked(parent.get_cell())
        .await
        .unwrap();
    probes.log.wait_len(3).await;
    probes.log.clear();
    tell(&sup, "a", ProbeMsg::Panic).await;
    assert_eq!(bounded(seen.recv()).await.unwrap(), "intensity_exceeded c");
    let round = ["stop b", "stop a", "start a", "start b", "start_failed c"];
    let mut want = s(&[
        "crash a",
        "stop c",
        "stop b",
        "start a",
        "start b",
        "start_failed c",
    ]);
    want.extend(s(&round));
    want.extend(s(&round));
    want.extend(s(&["stop b", "stop a"]));
    assert_eq!(probes.log.snapshot(), want);
}

#[tokio::test(start_paused = true)]
async fn rest_for_one_retry_resumes_from_the_failed_child() {
    let probes = Probes::new();
    probes.script("c", [StartStep::Ok, StartStep::Fail]);
    let sup = Supervisor::builder()
        .strategy(Strategy::RestForOne)
        .intensity(5)
        .children(["a", "b", "c"].map(|id| probes.spec(id)))
        .spawn()
        .await
        .unwrap();
    probes.log.wait_len(3).await;
    probes.log.clear();
    tell(&sup, "b", ProbeMsg::Panic).await;
    probes.log.wait_len(5).await;
    barrier(&sup).await;
    assert_eq!(
        probes.log.snapshot(),
        s(&["crash b", "stop c", "start b", "start_failed c", "start c"])
    );
    assert_eq!(ping(&sup, "b").await, 2, "b is not restarted again");
    assert_eq!(ping(&sup, "c").await, 3);
    sup.stop().await;
}

#[tokio::test(start_paused = true)]
async fn the_api_answers_while_a_child_is_restarting() {
    let probes = Probes::new();
    let mut builder = Supervisor::builder()
        .intensity(10)
        .child(probes.spec("a"))
        .child(probes.spec("b").backoff(Backoff::fixed(10 * SEC)));
    let mut events = builder.subscribe();
    let sup = builder.spawn().await.unwrap();
    tell(&sup, "b", ProbeMsg::Panic).await;
    assert_eq!(restart_scheduled(&mut events).await, 10 * SEC);
    let b = ChildId::from("b");
    let children = bounded(sup.which_children()).await.unwrap();
    assert_eq!(children[1].status, ChildStatus::Restarting);
    assert_eq!(bounded(sup.count_children()).await.unwrap().active, 1);
    assert_eq!(
        bounded(sup.restart_child("b")).await,
        Err(SupervisorError::Restarting(b.clone()))
    );
    assert_eq!(
        bounded(sup.delete_child("b")).await,
        Err(SupervisorError::Restarting(b.clone()))
    );
    assert_eq!(
        bounded(sup.start_child(probes.spec("b"))).await.err(),
        Some(SupervisorError::AlreadyPresent(b.clone()))
    );
    assert_eq!(
        bounded(sup.child("b")).await,
        Err(SupervisorError::Restarting(b))
    );
    next_matching(&mut events, is_started("b")).await;
    assert_eq!(ping(&sup, "b").await, 2);
    sup.stop().await;
}

#[tokio::test(start_paused = true)]
async fn backoff_delays_restarts_exactly_and_grows() {
    let probes = Probes::new();
    let policy = Backoff::exponential(Duration::from_millis(100), 10 * SEC);
    let mut builder = Supervisor::builder()
        .intensity(100)
        .period(60 * SEC)
        .child(probes.spec("a").backoff(policy));
    let mut events = builder.subscribe();
    let sup = builder.spawn().await.unwrap();
    next_matching(&mut events, is_started("a")).await;
    for want_ms in [100u64, 200, 400, 800] {
        let crashed_at = tokio::time::Instant::now();
        tell(&sup, "a", ProbeMsg::Panic).await;
        next_matching(&mut events, is_started("a")).await;
        assert_eq!(crashed_at.elapsed(), Duration::from_millis(want_ms));
    }
    sup.stop().await;
}

#[tokio::test(start_paused = true)]
async fn backoff_resets_after_stable_uptime() {
    let probes = Probes::new();
    let policy = Backoff::exponential(Duration::from_millis(100), 10 * SEC).reset_after(30 * SEC);
    let mut builder = Supervisor::builder()
        .intensity(100)
        .period(60 * SEC)
        .child(probes.spec("a").backoff(policy));
    let mut events = builder.subscribe();
    let sup = builder.spawn().await.unwrap();
    tell(&sup, "a", ProbeMsg::Panic).await;
    assert_eq!(
        restart_scheduled(&mut events).await,
        Duration::from_millis(100)
    );
    next_matching(&mut events, is_started("a")).await;
    tell(&sup, "a", ProbeMsg::Panic).await;
    assert_eq!(
        restart_scheduled(&mut events).await,
        Duration::from_millis(200)
    );
    next_matching(&mut events, is_started("a")).await;
    tokio::time::advance(30 * SEC).await;
    tell(&sup, "a", ProbeMsg::Panic).await;
    assert_eq!(
        restart_scheduled(&mut events).await,
        Duration::from_millis(100)
    );
    sup.stop().await;
}

#[tokio::test(start_paused = true)]
async fn terminate_cancels_a_pending_restart() {
    let probes = Probes::new();
    let mut builder = Supervisor::builder()
        .intensity(10)
        .child(probes.spec("a").backoff(Backoff::fixed(SEC)));
    let mut events = builder.subscribe();
    let sup = builder.spawn().await.unwrap();
    tell(&sup, "a", ProbeMsg::Panic).await;
    restart_scheduled(&mut events).await;
    bounded(sup.terminate_child("a")).await.unwrap();
    tokio::time::advance(5 * SEC).await;
    barrier(&sup).await;
    let children = bounded(sup.which_children()).await.unwrap();
    assert_eq!(children[0].status, ChildStatus::NotRunning);
    assert_eq!(probes.log.snapshot(), s(&["start a", "crash a"]));
    // delete also cancels
    bounded(sup.restart_child("a")).await.unwrap();
    tell(&sup, "a", ProbeMsg::Panic).await;
    restart_scheduled(&mut events).await;
    bounded(sup.terminate_child("a")).await.unwrap();
    bounded(sup.delete_child("a")).await.unwrap();
    tokio::time::advance(5 * SEC).await;
    barrier(&sup).await;
    assert!(bounded(sup.which_children()).await.unwrap().is_empty());
    assert_eq!(
        probes.log.snapshot().len(),
        4,
        "{:?}",
        probes.log.snapshot()
    );
    sup.stop().await;
}

#[tokio::test(start_paused = true)]
async fn shutdown_cancels_a_pending_restart() {
    let probes = Probes::new();
    let mut builder = Supervisor::builder()
        .intensity(10)
        .child(probes.spec("a").backoff(Backoff::fixed(SEC)));
    let mut events = builder.subscribe();
    let sup = builder.spawn().await.unwrap();
    tell(&sup, "a", ProbeMsg::Panic).await;
    restart_scheduled(&mut events).await;
    let t0 = tokio::time::Instant::now();
    bounded(sup.stop()).await;
    assert_eq!(
        t0.elapsed(),
        Duration::ZERO,
        "stop does not wait out the backoff"
    );
    // The stream ends with the supervisor: no incarnation was started after the stop.
    let mut rest = Vec::new();
    while let Some(e) = bounded(events.recv()).await {
        rest.push(e);
    }
    assert_eq!(rest, vec![SupervisorEvent::Stopped]);
    assert_eq!(probes.log.snapshot(), s(&["start a", "crash a"]));
}

#[tokio::test(start_paused = true)]
async fn a_named_child_restarts_without_a_name_clash() {
    let probes = Probes::new();
    let sup = Supervisor::builder()
        .intensity(100)
        .child(probes.spec("a").registered_name("intensity-test-named-a"))
        .spawn()
        .await
        .unwrap();
    for generation in 2..=20 {
        tell(&sup, "a", ProbeMsg::Panic).await;
        probes.log.wait_len(2 * generation as usize - 1).await;
        assert_eq!(ping(&sup, "a").await, generation);
        let named = ractor::registry::where_is("intensity-test-named-a").expect("registered");
        assert_eq!(
            named.get_id(),
            bounded(sup.child("a")).await.unwrap().get_id()
        );
    }
    sup.stop().await;
}
