//! Auto-shutdown on significant children (DESIGN §2 "Auto-shutdown").

mod common;

use common::*;
use ractor_otp::prelude::*;

async fn sup_with(
    probes: &Probes,
    auto: AutoShutdown,
    strategy: Strategy,
    specs: Vec<ChildSpec>,
) -> (SupervisorRef, tokio::sync::mpsc::UnboundedReceiver<String>) {
    let (parent, seen) = parent().await;
    let n = specs.len();
    let sup = Supervisor::builder()
        .strategy(strategy)
        .auto_shutdown(auto)
        .intensity(10)
        .children(specs)
        .spawn_linked(parent.get_cell())
        .await
        .unwrap();
    probes.log.wait_len(n).await;
    probes.log.clear();
    (sup, seen)
}

fn sig(probes: &Probes, id: &str, restart: Restart) -> ChildSpec {
    probes.spec(id).restart(restart).significant(true)
}

#[tokio::test(start_paused = true)]
async fn any_significant_stops_the_supervisor_normally() {
    for restart in [Restart::Transient, Restart::Temporary] {
        let probes = Probes::new();
        let specs = vec![
            probes.spec("a"),
            sig(&probes, "s", restart),
            probes.spec("c"),
        ];
        let (sup, mut seen) = sup_with(
            &probes,
            AutoShutdown::AnySignificant,
            Strategy::OneForOne,
            specs,
        )
        .await;
        tell(&sup, "s", ProbeMsg::ExitNormal).await;
        assert_eq!(
            bounded(seen.recv()).await.unwrap(),
            "terminated Some(\"shutdown\")"
        );
        assert_eq!(
            probes.log.snapshot(),
            // "stop s" is s's own post_stop after its exit.
            s(&["exit s", "stop s", "stop c", "stop a"]),
            "{restart:?}"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn a_significant_child_that_is_restarted_does_not_stop_the_supervisor() {
    let probes = Probes::new();
    let specs = vec![sig(&probes, "s", Restart::Transient), probes.spec("c")];
    let (sup, _seen) = sup_with(
        &probes,
        AutoShutdown::AnySignificant,
        Strategy::OneForOne,
        specs,
    )
    .await;
    tell(&sup, "s", ProbeMsg::Panic).await;
    probes.log.wait_len(2).await;
    assert_eq!(ping(&sup, "s").await, 2);
    assert!(sup.is_alive());
    sup.stop().await;
}

#[tokio::test(start_paused = true)]
async fn all_significant_waits_for_the_last_one() {
    let probes = Probes::new();
    let specs = vec![
        sig(&probes, "s1", Restart::Transient),
        sig(&probes, "s2", Restart::Temporary),
        probes.spec("c"),
    ];
    let (sup, mut seen) = sup_with(
        &probes,
        AutoShutdown::AllSignificant,
        Strategy::OneForOne,
        specs,
    )
    .await;
    tell(&sup, "s1", ProbeMsg::ExitNormal).await;
    probes.log.wait_len(2).await;
    barrier(&sup).await;
    assert!(sup.is_alive(), "s2 is still running");
    tell(&sup, "s2", ProbeMsg::ExitShutdown).await;
    assert_eq!(
        bounded(seen.recv()).await.unwrap(),
        "terminated Some(\"shutdown\")"
    );
    assert_eq!(
        probes.log.snapshot(),
        s(&["exit s1", "stop s1", "exit s2", "stop s2", "stop c"])
    );
}

#[tokio::test(start_paused = true)]
async fn api_stops_and_bystanders_do_not_trigger_it() {
    let probes = Probes::new();
    let specs = vec![
        probes.spec("a"),
        sig(&probes, "s", Restart::Transient),
        sig(&probes, "t", Restart::Temporary),
    ];
    let (sup, _seen) = sup_with(
        &probes,
        AutoShutdown::AnySignificant,
        Strategy::OneForAll,
        specs,
    )
    .await;
    // A bystander of a one-for-all restart: t is stopped (and, temporary, deleted), s restarted.
    tell(&sup, "a", ProbeMsg::Panic).await;
    probes.log.wait_len(5).await;
    barrier(&sup).await;
    assert_eq!(
        probes.log.snapshot(),
        s(&["crash a", "stop t", "stop s", "start a", "start s"])
    );
    assert!(sup.is_alive());
    // An API stop.
    bounded(sup.terminate_child("s")).await.unwrap();
    barrier(&sup).await;
    assert!(sup.is_alive());
    sup.stop().await;
}

#[tokio::test(start_paused = true)]
async fn auto_shutdown_cascades_through_a_significant_child_supervisor() {
    let probes = Probes::new();
    let (parent, mut seen) = parent().await;
    let inner = Supervisor::builder()
        .auto_shutdown(AutoShutdown::AnySignificant)
        .child(
            probes
                .spec("job")
                .restart(Restart::Transient)
                .significant(true),
        )
        .into_child_spec("inner")
        .restart(Restart::Transient)
        .significant(true);
    let outer = Supervisor::builder()
        .auto_shutdown(AutoShutdown::AnySignificant)
        .child(probes.spec("a"))
        .child(inner)
        .spawn_linked(parent.get_cell())
        .await
        .unwrap();
    probes.log.wait_len(2).await;
    let inner_ref = bounded(outer.child_supervisor("inner")).await.unwrap();
    tell(&inner_ref, "job", ProbeMsg::ExitNormal).await;
    assert_eq!(
        bounded(seen.recv()).await.unwrap(),
        "terminated Some(\"shutdown\")"
    );
    assert_eq!(
        probes.log.snapshot(),
        s(&["start a", "start job", "exit job", "stop job", "stop a"])
    );
}
