//! Exact stop/start sequences of each restart strategy (DESIGN §2, "Strategies").

mod common;

use common::*;
use ractor_otp::prelude::*;

async fn three(probes: &Probes, strategy: Strategy) -> SupervisorRef {
    let sup = Supervisor::builder()
        .strategy(strategy)
        .intensity(10)
        .children(["a", "b", "c"].map(|id| probes.spec(id)))
        .spawn()
        .await
        .expect("supervisor starts");
    probes.log.wait_len(3).await;
    probes.log.clear();
    sup
}

#[tokio::test(start_paused = true)]
async fn one_for_one_restarts_only_the_crashed_child() {
    let probes = Probes::new();
    let sup = three(&probes, Strategy::OneForOne).await;
    tell(&sup, "b", ProbeMsg::Panic).await;
    probes.log.wait_len(2).await;
    barrier(&sup).await;
    assert_eq!(probes.log.snapshot(), s(&["crash b", "start b"]));
    assert_eq!(ping(&sup, "b").await, 2);
    assert_eq!(ping(&sup, "a").await, 1);
    sup.stop().await;
}

#[tokio::test(start_paused = true)]
async fn one_for_all_stops_in_reverse_then_starts_all_in_order() {
    let probes = Probes::new();
    let sup = three(&probes, Strategy::OneForAll).await;
    tell(&sup, "b", ProbeMsg::Panic).await;
    probes.log.wait_len(6).await;
    barrier(&sup).await;
    assert_eq!(
        probes.log.snapshot(),
        s(&["crash b", "stop c", "stop a", "start a", "start b", "start c"])
    );
    sup.stop().await;
}

#[tokio::test(start_paused = true)]
async fn rest_for_one_restarts_the_crashed_child_and_later_ones() {
    let probes = Probes::new();
    let sup = three(&probes, Strategy::RestForOne).await;
    tell(&sup, "b", ProbeMsg::Panic).await;
    probes.log.wait_len(4).await;
    barrier(&sup).await;
    assert_eq!(
        probes.log.snapshot(),
        s(&["crash b", "stop c", "start b", "start c"])
    );
    assert_eq!(ping(&sup, "a").await, 1, "earlier sibling untouched");
    sup.stop().await;
}

#[tokio::test(start_paused = true)]
async fn one_for_all_also_starts_specs_that_were_not_running() {
    let probes = Probes::new();
    let sup = three(&probes, Strategy::OneForAll).await;
    bounded(sup.terminate_child("c")).await.unwrap();
    assert_eq!(probes.log.snapshot(), s(&["stop c"]));
    probes.log.clear();
    tell(&sup, "a", ProbeMsg::Panic).await;
    probes.log.wait_len(5).await;
    barrier(&sup).await;
    assert_eq!(
        probes.log.snapshot(),
        s(&["crash a", "stop b", "start a", "start b", "start c"])
    );
    sup.stop().await;
}

#[tokio::test(start_paused = true)]
async fn temporary_bystanders_are_stopped_and_never_restarted() {
    let probes = Probes::new();
    let sup = Supervisor::builder()
        .strategy(Strategy::OneForAll)
        .intensity(10)
        .child(probes.spec("a"))
        .child(probes.spec("t").restart(Restart::Temporary))
        .child(probes.spec("c"))
        .spawn()
        .await
        .unwrap();
    probes.log.wait_len(3).await;
    probes.log.clear();
    tell(&sup, "a", ProbeMsg::Panic).await;
    probes.log.wait_len(5).await;
    barrier(&sup).await;
    assert_eq!(
        probes.log.snapshot(),
        s(&["crash a", "stop c", "stop t", "start a", "start c"])
    );
    let ids: Vec<String> = bounded(sup.which_children())
        .await
        .unwrap()
        .iter()
        .map(|c| c.id.to_string())
        .collect();
    assert_eq!(ids, s(&["a", "c"]));
    sup.stop().await;
}

#[tokio::test(start_paused = true)]
async fn shutdown_stops_children_in_reverse_start_order() {
    let probes = Probes::new();
    let sup = three(&probes, Strategy::OneForOne).await;
    bounded(sup.stop()).await;
    assert_eq!(probes.log.snapshot(), s(&["stop c", "stop b", "stop a"]));
    assert!(!sup.is_alive());
}
