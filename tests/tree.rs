//! Nested trees: a leaf's crash loop escalates level by level to the root's strategy.

mod common;

use common::*;
use ractor_otp::prelude::*;
use ractor_otp::supervisor::SupervisorEvent;

#[tokio::test(start_paused = true)]
async fn a_leaf_crash_loop_escalates_to_the_root() {
    let probes = Probes::new();
    let leaf = Supervisor::builder()
        .intensity(1)
        .child(probes.spec("w"))
        .into_child_spec("leaf");
    let mut mid_builder = Supervisor::builder().intensity(1).child(leaf);
    let mut mid_events = mid_builder.subscribe();
    let mut root_builder = Supervisor::builder()
        .strategy(Strategy::OneForAll)
        .intensity(5)
        .child(probes.spec("db"))
        .child(mid_builder.into_child_spec("mid"));
    let mut root_events = root_builder.subscribe();
    let root = root_builder.spawn().await.unwrap();
    probes.log.wait_len(2).await;

    let crash_worker = async |root: &SupervisorRef| {
        let mid = bounded(root.child_supervisor("mid")).await.unwrap();
        let leaf = bounded(mid.child_supervisor("leaf")).await.unwrap();
        tell(&leaf, "w", ProbeMsg::Panic).await;
    };
    let is_exit = |id: &'static str| move |e: &SupervisorEvent| matches!(e, SupervisorEvent::ChildExited { id: i, .. } if *i == id);
    let is_start = |id: &'static str| move |e: &SupervisorEvent| matches!(e, SupervisorEvent::ChildStarted { id: i, .. } if *i == id);

    // Leaf allows one restart: crash 1 is absorbed by the leaf.
    crash_worker(&root).await;
    probes.log.wait_for("start w").await;
    // Crash 2 exceeds the leaf's intensity: the leaf gives up, mid restarts it (mid: 1 restart).
    probes.log.clear();
    crash_worker(&root).await;
    let (_, e) = next_matching(&mut mid_events, is_exit("leaf")).await;
    let SupervisorEvent::ChildExited { reason, .. } = e else {
        unreachable!()
    };
    assert_eq!(reason.class, ExitClass::Abnormal);
    assert!(reason.detail.unwrap().contains("gave up"));
    next_matching(&mut mid_events, is_start("leaf")).await;
    // Two more crashes: the new leaf gives up again, mid exceeds its own intensity and gives
    // up: the root's one-for-all strategy restarts db and mid.
    crash_worker(&root).await;
    probes.log.wait_len(4).await;
    crash_worker(&root).await;
    let (_, e) = next_matching(&mut root_events, is_exit("mid")).await;
    let SupervisorEvent::ChildExited { reason, .. } = e else {
        unreachable!()
    };
    assert_eq!(reason.class, ExitClass::Abnormal);
    next_matching(&mut root_events, is_start("mid")).await;
    barrier(&root).await;
    let log = probes.log.snapshot();
    assert_eq!(
        log[log.len() - 3..],
        s(&["stop db", "start db", "start w"]),
        "root one-for-all: db stopped and everything started again; log = {log:?}"
    );
    let children = bounded(root.which_children()).await.unwrap();
    assert!(children.iter().all(|c| c.status.is_running()));
    assert_eq!(children[1].generation, 2, "mid's second incarnation");
    // Give-ups were not counted by the root beyond its budget: it is alive.
    assert!(root.is_alive());
    root.stop().await;
}
