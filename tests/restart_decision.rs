//! Every cell of the restart-decision table (DESIGN §2): restart type × how the child ended.

mod common;

use common::*;
use ractor_otp::prelude::*;
use ractor_otp::supervisor::SupervisorEvent;

async fn run(restart: Restart, how: How) -> (ExitClass, Outcome) {
    let probes = Probes::new();
    let sup = Supervisor::builder()
        .intensity(10)
        .child(probes.spec("x").restart(restart))
        .child(probes.spec("y"))
        .spawn()
        .await
        .expect("starts");
    let mut events = bounded(sup.subscribe()).await.unwrap();
    match how {
        How::Normal => tell(&sup, "x", ProbeMsg::ExitNormal).await,
        How::Shutdown => tell(&sup, "x", ProbeMsg::ExitShutdown).await,
        How::Panic => tell(&sup, "x", ProbeMsg::Panic).await,
        How::Error => tell(&sup, "x", ProbeMsg::Fail).await,
        How::Killed => bounded(sup.child("x")).await.unwrap().kill(),
    }
    let (_, exited) = next_matching(&mut events, |e| {
        matches!(e, SupervisorEvent::ChildExited { .. })
    })
    .await;
    let SupervisorEvent::ChildExited { id, reason, .. } = exited else {
        unreachable!()
    };
    assert_eq!(id, "x");
    barrier(&sup).await;
    let children = bounded(sup.which_children()).await.unwrap();
    let outcome = match children.iter().find(|c| c.id == "x") {
        None => Outcome::Deleted,
        Some(c) if c.status.is_running() => {
            assert_eq!(c.generation, 2, "a restart makes the second incarnation");
            Outcome::Restarted
        }
        Some(c) => {
            assert_eq!(c.status, ChildStatus::NotRunning);
            Outcome::Kept
        }
    };
    assert_eq!(ping(&sup, "y").await, 1, "the sibling is untouched");
    sup.stop().await;
    (reason.class, outcome)
}

#[tokio::test(start_paused = true)]
async fn every_cell_of_the_restart_decision_table() {
    use ExitClass::*;
    use Outcome::*;
    let table = [
        (Restart::Permanent, How::Normal, Normal, Restarted),
        (Restart::Permanent, How::Shutdown, Shutdown, Restarted),
        (Restart::Permanent, How::Panic, Abnormal, Restarted),
        (Restart::Permanent, How::Error, Abnormal, Restarted),
        (Restart::Permanent, How::Killed, Abnormal, Restarted),
        (Restart::Transient, How::Normal, Normal, Kept),
        (Restart::Transient, How::Shutdown, Shutdown, Kept),
        (Restart::Transient, How::Panic, Abnormal, Restarted),
        (Restart::Transient, How::Error, Abnormal, Restarted),
        (Restart::Transient, How::Killed, Abnormal, Restarted),
        (Restart::Temporary, How::Normal, Normal, Deleted),
        (Restart::Temporary, How::Shutdown, Shutdown, Deleted),
        (Restart::Temporary, How::Panic, Abnormal, Deleted),
        (Restart::Temporary, How::Error, Abnormal, Deleted),
        (Restart::Temporary, How::Killed, Abnormal, Deleted),
    ];
    for (restart, how, class, outcome) in table {
        let got = run(restart, how).await;
        assert_eq!(got, (class, outcome), "{restart:?} child, exit by {how:?}");
    }
}

#[tokio::test(start_paused = true)]
async fn a_child_stopped_through_the_api_is_not_restarted() {
    let probes = Probes::new();
    let sup = Supervisor::builder()
        .child(probes.spec("p"))
        .spawn()
        .await
        .unwrap();
    probes.log.wait_len(1).await;
    bounded(sup.terminate_child("p")).await.unwrap();
    barrier(&sup).await;
    assert_eq!(probes.log.snapshot(), s(&["start p", "stop p"]));
    let c = bounded(sup.which_children()).await.unwrap();
    assert_eq!(c[0].status, ChildStatus::NotRunning);
    sup.stop().await;
}
