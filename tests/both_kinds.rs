//! The behaviours static and dynamic supervisors share (DESIGN §2a), each run against both
//! kinds: one core, so one set of answers. Where OTP's `simple_one_for_one` differs (a child
//! that ends without a restart is forgotten; children stop in parallel) the test says so.

mod common;

use std::time::Duration;

use common::kinds::*;
use common::*;
use ractor_otp::prelude::*;
use ractor_otp::supervisor::{ChildStatus, StopCause, StopOutcome, SupervisorEvent};
use tokio::time::Instant;

async fn exit_by(under: &Under, name: &str, how: How) {
    match how {
        How::Normal => under.tell(name, ProbeMsg::ExitNormal).await,
        How::Shutdown => under.tell(name, ProbeMsg::ExitShutdown).await,
        How::Panic => under.tell(name, ProbeMsg::Panic).await,
        How::Error => under.tell(name, ProbeMsg::Fail).await,
        How::Killed => under.probe(name).await.get_cell().kill(),
    }
}

#[tokio::test(start_paused = true)]
async fn the_restart_decision_table_holds_for_both_kinds() {
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
        (Restart::Transient, How::Killed, Abnormal, Restarted),
        (Restart::Temporary, How::Normal, Normal, Deleted),
        (Restart::Temporary, How::Panic, Abnormal, Deleted),
        (Restart::Temporary, How::Killed, Abnormal, Deleted),
    ];
    for kind in KINDS {
        for (restart, how, class, outcome) in &table {
            let probes = Probes::new();
            let setup = Setup {
                restart: *restart,
                ..Setup::default()
            };
            let mut under = Under::spawn(kind, &probes, &setup, &["x", "y"], None).await;
            exit_by(&under, "x", *how).await;
            let exited = under
                .next(|e| matches!(e, SupervisorEvent::ChildExited { .. }))
                .await;
            let SupervisorEvent::ChildExited { id, reason, .. } = exited else {
                unreachable!()
            };
            assert_eq!(id, under.id("x"));
            assert_eq!(reason.class, *class, "{kind:?} {restart:?} {how:?}");
            let got = match under.info("x").await {
                None => Deleted,
                Some(c) if c.status.is_running() => {
                    assert_eq!(c.generation, 2, "a restart makes the second incarnation");
                    Restarted
                }
                Some(c) => {
                    assert_eq!(c.status, ChildStatus::NotRunning);
                    Kept
                }
            };
            // OTP's simple_one_for_one keeps no spec for a child that is not restarted.
            let want = match (kind, outcome) {
                (Kind::Dynamic, Kept) => &Deleted,
                _ => outcome,
            };
            assert_eq!(&got, want, "{kind:?} {restart:?} child, exit by {how:?}");
            assert_eq!(under.ping("y").await, 1, "the sibling is untouched");
            under.stop().await;
        }
    }
}

#[tokio::test(start_paused = true)]
async fn over_the_intensity_both_kinds_give_up_and_their_parent_is_told() {
    for kind in KINDS {
        let probes = Probes::new();
        let (parent, mut seen) = parent().await;
        let setup = Setup {
            intensity: 2,
            ..Setup::default()
        };
        let mut under =
            Under::spawn(kind, &probes, &setup, &["x", "y"], Some(parent.get_cell())).await;
        for generation in 1..=2u64 {
            under.tell("x", ProbeMsg::Panic).await;
            let started = under
                .next(|e| matches!(e, SupervisorEvent::ChildStarted { generation: g, .. } if *g == generation + 1))
                .await;
            assert!(matches!(started, SupervisorEvent::ChildStarted { .. }));
        }
        under.tell("x", ProbeMsg::Panic).await;
        let gave_up = under
            .next(|e| matches!(e, SupervisorEvent::GaveUp { .. }))
            .await;
        assert_eq!(
            gave_up,
            SupervisorEvent::GaveUp {
                id: under.id("x"),
                restarts: 3
            },
            "{kind:?}"
        );
        let stopped = under
            .next(|e| matches!(e, SupervisorEvent::ChildStopped { .. }))
            .await;
        assert!(
            matches!(&stopped, SupervisorEvent::ChildStopped { id, cause: StopCause::Shutdown, .. } if *id == under.id("y")),
            "{kind:?}: the sibling is stopped and reported: {stopped:?}"
        );
        under.wait().await;
        let told = bounded(seen.recv()).await.expect("the parent hears");
        assert_eq!(
            told,
            format!("intensity_exceeded {}", under.id("x")),
            "{kind:?}"
        );
        parent.stop(None);
    }
}

#[tokio::test(start_paused = true)]
async fn a_backoff_delays_the_restart_exactly_in_both_kinds() {
    for kind in KINDS {
        let probes = Probes::new();
        let setup = Setup {
            backoff: Some(Backoff::fixed(Duration::from_secs(3))),
            ..Setup::default()
        };
        let mut under = Under::spawn(kind, &probes, &setup, &["x"], None).await;
        under.tell("x", ProbeMsg::Panic).await;
        let crashed_at = Instant::now();
        assert_eq!(
            restart_scheduled(&mut under.events).await,
            Duration::from_secs(3)
        );
        assert_eq!(
            under.info("x").await.expect("kept").status,
            ChildStatus::Restarting,
            "{kind:?}"
        );
        under
            .next(|e| matches!(e, SupervisorEvent::ChildStarted { generation: 2, .. }))
            .await;
        let waited = crashed_at.elapsed();
        assert!(
            waited >= Duration::from_secs(3) && waited < Duration::from_millis(3_100),
            "{kind:?}: restarted after {waited:?}"
        );
        assert_eq!(under.ping("x").await, 2);
        under.stop().await;
    }
}

#[tokio::test(start_paused = true)]
async fn a_failed_restart_is_reported_and_retried_in_both_kinds() {
    for kind in KINDS {
        let probes = Probes::new();
        probes.script("x", [StartStep::Ok, StartStep::Fail, StartStep::Panic]);
        let mut under = Under::spawn(kind, &probes, &Setup::default(), &["x"], None).await;
        under.tell("x", ProbeMsg::Panic).await;
        for generation in [2, 3] {
            let failed = under
                .next(|e| matches!(e, SupervisorEvent::ChildStartFailed { .. }))
                .await;
            let SupervisorEvent::ChildStartFailed {
                id, generation: g, ..
            } = failed
            else {
                unreachable!()
            };
            assert_eq!((id, g), (under.id("x"), generation), "{kind:?}");
        }
        under
            .next(|e| matches!(e, SupervisorEvent::ChildStarted { generation: 4, .. }))
            .await;
        assert_eq!(under.ping("x").await, 4);
        under.stop().await;
    }
}

#[tokio::test(start_paused = true)]
async fn start_child_failures_and_ignores_are_events_in_both_kinds() {
    for kind in KINDS {
        let probes = Probes::new();
        probes.script("bad", [StartStep::Fail]);
        probes.script("idle", [StartStep::Ignore]);
        let mut under = Under::spawn(kind, &probes, &Setup::default(), &[], None).await;
        let (failed, ignored) = match &under.sup {
            Sup::Static(s) => (
                bounded(s.start_child(probes.spec("bad"))).await,
                bounded(s.start_child(probes.spec("idle"))).await,
            ),
            Sup::Dynamic(d) => (
                bounded(d.start_child("bad".into())).await,
                bounded(d.start_child("idle".into())).await,
            ),
        };
        assert!(
            matches!(failed, Err(SupervisorError::StartFailed { .. })),
            "{kind:?}: {failed:?}"
        );
        assert!(matches!(ignored, Ok(None)), "{kind:?}: {ignored:?}");
        let failed = under
            .next(|e| matches!(e, SupervisorEvent::ChildStartFailed { .. }))
            .await;
        assert!(
            matches!(&failed, SupervisorEvent::ChildStartFailed { generation: 1, reason: StartFailure::Failed(text), .. } if text == "bad refused to start"),
            "{kind:?}: {failed:?}"
        );
        let ignored = under
            .next(|e| matches!(e, SupervisorEvent::ChildIgnored { .. }))
            .await;
        assert!(
            matches!(ignored, SupervisorEvent::ChildIgnored { .. }),
            "{kind:?}"
        );
        under.stop().await;
    }
}

#[tokio::test(start_paused = true)]
async fn shutdown_reports_how_each_child_stopped_in_both_kinds() {
    for kind in KINDS {
        let probes = Probes::new();
        let setup = Setup {
            shutdown: Some(Shutdown::Timeout(Duration::from_secs(2))),
            ..Setup::default()
        };
        let mut under = Under::spawn(kind, &probes, &setup, &["calm", "stuck"], None).await;
        under
            .tell("stuck", ProbeMsg::Hang(Duration::from_secs(3600)))
            .await;
        let (calm, stuck) = (under.id("calm"), under.id("stuck"));
        let began = Instant::now();
        under.stop().await;
        assert!(
            began.elapsed() >= Duration::from_secs(2),
            "the timeout was waited for"
        );
        let mut outcomes = Vec::new();
        for _ in 0..2 {
            let e = under
                .next(|e| matches!(e, SupervisorEvent::ChildStopped { .. }))
                .await;
            let SupervisorEvent::ChildStopped {
                id, cause, outcome, ..
            } = e
            else {
                unreachable!()
            };
            assert_eq!(cause, StopCause::Shutdown);
            outcomes.push((id, outcome));
        }
        outcomes.sort_by(|a, b| a.0.cmp(&b.0));
        let mut want = vec![
            (calm, StopOutcome::Stopped),
            (stuck, StopOutcome::KilledAfterTimeout),
        ];
        want.sort_by(|a, b| a.0.cmp(&b.0));
        assert_eq!(outcomes, want, "{kind:?}");
        let last = under.next(|e| matches!(e, SupervisorEvent::Stopped)).await;
        assert_eq!(last, SupervisorEvent::Stopped);
    }
}

#[tokio::test(start_paused = true)]
async fn a_terminated_child_is_not_restarted_in_both_kinds() {
    for kind in KINDS {
        let probes = Probes::new();
        let mut under = Under::spawn(kind, &probes, &Setup::default(), &["x", "y"], None).await;
        let x = under.probe("x").await.get_cell();
        match &under.sup {
            Sup::Static(s) => bounded(s.terminate_child("x")).await,
            Sup::Dynamic(d) => bounded(d.terminate_child(&x)).await,
        }
        .expect("terminated");
        let stopped = under
            .next(|e| matches!(e, SupervisorEvent::ChildStopped { .. }))
            .await;
        assert!(
            matches!(
                stopped,
                SupervisorEvent::ChildStopped {
                    cause: StopCause::Terminated,
                    outcome: StopOutcome::Stopped,
                    ..
                }
            ),
            "{kind:?}"
        );
        let kept = under.info("x").await;
        match kind {
            Kind::Static => assert_eq!(kept.expect("spec kept").status, ChildStatus::NotRunning),
            Kind::Dynamic => assert!(kept.is_none(), "a dynamic child is forgotten"),
        }
        assert_eq!(under.ping("y").await, 1);
        assert_eq!(probes.log.snapshot(), s(&["start x", "start y", "stop x"]));
        under.stop().await;
    }
}

#[tokio::test(start_paused = true)]
async fn any_significant_child_ending_stops_either_kind() {
    for kind in KINDS {
        let probes = Probes::new();
        let (parent, mut seen) = parent().await;
        let setup = Setup {
            restart: Restart::Transient,
            significant: true,
            auto_shutdown: AutoShutdown::AnySignificant,
            ..Setup::default()
        };
        let mut under =
            Under::spawn(kind, &probes, &setup, &["x", "y"], Some(parent.get_cell())).await;
        under.tell("x", ProbeMsg::ExitNormal).await;
        let auto = under
            .next(|e| matches!(e, SupervisorEvent::AutoShutdown { .. }))
            .await;
        assert_eq!(
            auto,
            SupervisorEvent::AutoShutdown { id: under.id("x") },
            "{kind:?}"
        );
        under.wait().await;
        let told = bounded(seen.recv()).await.expect("the parent hears");
        assert_eq!(
            told, "terminated Some(\"shutdown\")",
            "{kind:?}: a normal shutdown"
        );
        assert!(probes.log.snapshot().contains(&"stop y".to_string()));
        parent.stop(None);
    }
}

#[tokio::test(start_paused = true)]
async fn all_significant_waits_for_the_last_one_in_either_kind() {
    for kind in KINDS {
        let probes = Probes::new();
        let setup = Setup {
            restart: Restart::Transient,
            significant: true,
            auto_shutdown: AutoShutdown::AllSignificant,
            ..Setup::default()
        };
        let mut under = Under::spawn(kind, &probes, &setup, &["x", "y"], None).await;
        under.tell("x", ProbeMsg::ExitNormal).await;
        under
            .next(|e| matches!(e, SupervisorEvent::ChildExited { .. }))
            .await;
        assert_eq!(
            under.ping("y").await,
            1,
            "{kind:?}: one significant child is left"
        );
        assert!(under.cell().get_status() < ractor::ActorStatus::Stopping);
        under.tell("y", ProbeMsg::ExitNormal).await;
        let auto = under
            .next(|e| matches!(e, SupervisorEvent::AutoShutdown { .. }))
            .await;
        assert_eq!(
            auto,
            SupervisorEvent::AutoShutdown { id: under.id("y") },
            "{kind:?}"
        );
        under.wait().await;
    }
}

#[tokio::test]
async fn a_significant_permanent_template_is_refused() {
    let probes = Probes::new();
    let refused = DynamicSupervisor::builder(probes.template().significant(true))
        .auto_shutdown(AutoShutdown::AnySignificant)
        .spawn()
        .await;
    assert!(matches!(
        refused,
        Err(StartError::InvalidSpec(SpecError::SignificantPermanent(_)))
    ));
    let refused = DynamicSupervisor::builder(
        probes
            .template()
            .significant(true)
            .restart(Restart::Transient),
    )
    .spawn()
    .await;
    assert!(matches!(
        refused,
        Err(StartError::InvalidSpec(
            SpecError::SignificantWithoutAutoShutdown(_)
        ))
    ));
}

/// A parent that reports the label of a supervisor that gave up under it.
struct LabelParent;

#[cfg_attr(feature = "async-trait", ractor::async_trait)]
impl ractor::Actor for LabelParent {
    type Msg = ParentMsg;
    type State = tokio::sync::mpsc::UnboundedSender<String>;
    type Arguments = tokio::sync::mpsc::UnboundedSender<String>;

    async fn pre_start(
        &self,
        _: ractor::ActorRef<ParentMsg>,
        tx: Self::Arguments,
    ) -> Result<Self::State, ractor::ActorProcessingErr> {
        Ok(tx)
    }

    async fn handle_supervisor_evt(
        &self,
        _: ractor::ActorRef<ParentMsg>,
        event: ractor::SupervisionEvent,
        tx: &mut Self::State,
    ) -> Result<(), ractor::ActorProcessingErr> {
        if let ractor::SupervisionEvent::ActorFailed(_, err) = event {
            if let Some(e) = err.downcast_ref::<IntensityExceeded>() {
                let _ = tx.send(e.supervisor.clone());
            }
        }
        Ok(())
    }
}

#[tokio::test(start_paused = true)]
async fn a_supervisor_without_a_label_is_named_by_its_registry_name_in_both_kinds() {
    for kind in KINDS {
        let probes = Probes::new();
        let (tx, mut labels) = tokio::sync::mpsc::unbounded_channel();
        let (parent, _) = ractor::Actor::spawn(None, LabelParent, tx)
            .await
            .expect("parent spawns");
        let name = format!("billing-{kind:?}");
        let cell = match kind {
            Kind::Static => Supervisor::builder()
                .intensity(0)
                .registered_name(name.clone())
                .child(probes.spec("x"))
                .spawn_linked(parent.get_cell())
                .await
                .expect("starts")
                .get_cell(),
            Kind::Dynamic => {
                let sup = DynamicSupervisor::builder(probes.template())
                    .intensity(0)
                    .registered_name(name.clone())
                    .spawn_linked(parent.get_cell())
                    .await
                    .expect("starts");
                bounded(sup.start_child("x".into()))
                    .await
                    .expect("child starts");
                sup.get_cell()
            }
        };
        probes.log.wait_for("start x").await;
        let child = cell.get_children().into_iter().next().expect("a child");
        ractor::ActorRef::<ProbeMsg>::from(child)
            .cast(ProbeMsg::Panic)
            .expect("probe alive");
        let label = bounded(labels.recv()).await.expect("the parent hears");
        assert_eq!(
            label, name,
            "{kind:?}: the registry name names it in logs and errors"
        );
        parent.stop(None);
    }
}
