//! The run-time API and its error matrix (DESIGN §2 "Run-time API", "Bad input").

mod common;

use common::*;
use ractor::{Actor, ActorProcessingErr, ActorRef};
use ractor_otp::prelude::*;
use ractor_otp::supervisor::ChildCounts;

async fn started(probes: &Probes, ids: &[&str]) -> SupervisorRef {
    let sup = Supervisor::builder()
        .intensity(10)
        .children(ids.iter().map(|id| probes.spec(id)))
        .spawn()
        .await
        .unwrap();
    probes.log.wait_len(ids.len()).await;
    sup
}

fn id(s: &str) -> ChildId {
    ChildId::from(s)
}

#[tokio::test(start_paused = true)]
async fn start_child_appends_and_reports_conflicts() {
    let probes = Probes::new();
    let sup = started(&probes, &["a"]).await;
    let cell = bounded(sup.start_child(probes.spec("b"))).await.unwrap();
    assert!(cell.is_some());
    let ids: Vec<_> = bounded(sup.which_children())
        .await
        .unwrap()
        .iter()
        .map(|c| c.id.to_string())
        .collect();
    assert_eq!(
        ids,
        s(&["a", "b"]),
        "appended at the end of the start order"
    );
    // As OTP's {already_started, Pid}: the answer carries the running incarnation.
    let running = bounded(sup.child("a")).await.unwrap();
    assert_eq!(
        bounded(sup.start_child(probes.spec("a"))).await.err(),
        Some(SupervisorError::AlreadyStarted {
            id: id("a"),
            cell: running
        })
    );
    bounded(sup.terminate_child("a")).await.unwrap();
    assert_eq!(
        bounded(sup.start_child(probes.spec("a"))).await.err(),
        Some(SupervisorError::AlreadyPresent(id("a")))
    );
    // Invalid spec.
    assert_eq!(
        bounded(sup.start_child(probes.spec("x").significant(true)))
            .await
            .err(),
        Some(SupervisorError::InvalidSpec(
            SpecError::SignificantPermanent(id("x"))
        ))
    );
    // A failed start keeps nothing.
    probes.script("f", [StartStep::Fail]);
    let err = bounded(sup.start_child(probes.spec("f")))
        .await
        .err()
        .unwrap();
    assert!(matches!(err, SupervisorError::StartFailed { ref id, .. } if id == "f"));
    assert_eq!(
        bounded(sup.terminate_child("f")).await,
        Err(SupervisorError::NotFound(id("f")))
    );
    // Ignore: kept as not running, unless temporary.
    probes.script("g", [StartStep::Ignore]);
    assert!(bounded(sup.start_child(probes.spec("g")))
        .await
        .unwrap()
        .is_none());
    probes.script("t", [StartStep::Ignore]);
    let temp = probes.spec("t").restart(Restart::Temporary);
    assert!(bounded(sup.start_child(temp)).await.unwrap().is_none());
    let ids: Vec<_> = bounded(sup.which_children())
        .await
        .unwrap()
        .iter()
        .map(|c| c.id.to_string())
        .collect();
    assert_eq!(ids, s(&["a", "b", "g"]));
    sup.stop().await;
}

#[tokio::test(start_paused = true)]
async fn terminate_restart_and_delete_follow_otp() {
    let probes = Probes::new();
    let sup = started(&probes, &["a", "b"]).await;
    let a = id("a");
    assert_eq!(
        bounded(sup.terminate_child("nope")).await,
        Err(SupervisorError::NotFound(id("nope")))
    );
    assert_eq!(
        bounded(sup.restart_child("a")).await.err(),
        Some(SupervisorError::Running(a.clone()))
    );
    assert_eq!(
        bounded(sup.delete_child("a")).await,
        Err(SupervisorError::Running(a.clone()))
    );
    bounded(sup.terminate_child("a")).await.unwrap();
    bounded(sup.terminate_child("a")).await.unwrap(); // idempotent
    assert_eq!(
        bounded(sup.child("a")).await,
        Err(SupervisorError::NotRunning(a.clone()))
    );
    let cell = bounded(sup.restart_child("a")).await.unwrap().unwrap();
    assert_eq!(
        bounded(sup.child("a")).await.unwrap().get_id(),
        cell.get_id()
    );
    assert_eq!(ping(&sup, "a").await, 2);
    // A failing restart_child leaves the spec in place.
    bounded(sup.terminate_child("a")).await.unwrap();
    probes.script("a", [StartStep::Fail]);
    let err = bounded(sup.restart_child("a")).await.err().unwrap();
    assert!(matches!(err, SupervisorError::StartFailed { .. }));
    assert_eq!(
        bounded(sup.child("a")).await,
        Err(SupervisorError::NotRunning(a.clone()))
    );
    bounded(sup.delete_child("a")).await.unwrap();
    assert_eq!(
        bounded(sup.delete_child("a")).await,
        Err(SupervisorError::NotFound(a.clone()))
    );
    assert_eq!(
        bounded(sup.restart_child("a")).await.err(),
        Some(SupervisorError::NotFound(a))
    );
    // Temporary: terminate deletes the spec.
    bounded(sup.start_child(probes.spec("t").restart(Restart::Temporary)))
        .await
        .unwrap();
    bounded(sup.terminate_child("t")).await.unwrap();
    assert_eq!(
        bounded(sup.child("t")).await,
        Err(SupervisorError::NotFound(id("t")))
    );
    sup.stop().await;
}

#[tokio::test(start_paused = true)]
async fn which_and_count_children() {
    let probes = Probes::new();
    let nested = Supervisor::builder()
        .child(probes.spec("n1"))
        .into_child_spec("nested");
    let sup = Supervisor::builder()
        .child(probes.spec("a"))
        .child(nested)
        .child(probes.spec("b"))
        .spawn()
        .await
        .unwrap();
    bounded(sup.terminate_child("b")).await.unwrap();
    assert_eq!(
        bounded(sup.count_children()).await.unwrap(),
        ChildCounts {
            specs: 3,
            active: 2,
            supervisors: 1,
            workers: 2
        }
    );
    let which = bounded(sup.which_children()).await.unwrap();
    assert_eq!(which[1].kind, ChildKind::Supervisor);
    assert!(which[1].status.is_running());
    assert_eq!(which[2].status, ChildStatus::NotRunning);
    sup.stop().await;
}

#[derive(Clone)]
struct Other;
#[cfg_attr(feature = "async-trait", ractor::async_trait)]
impl Actor for Other {
    type Msg = String;
    type State = ();
    type Arguments = ();
    async fn pre_start(&self, _: ActorRef<String>, _: ()) -> Result<(), ActorProcessingErr> {
        Ok(())
    }
}

#[tokio::test(start_paused = true)]
async fn typed_lookup_resolves_the_live_incarnation() {
    let probes = Probes::new();
    let sup = started(&probes, &["a"]).await;
    let first = bounded(sup.child_ref::<ProbeMsg>("a")).await.unwrap();
    first.cast(ProbeMsg::Panic).unwrap();
    probes.log.wait_len(3).await;
    let second = bounded(sup.child_ref::<ProbeMsg>("a")).await.unwrap();
    assert_ne!(first.get_id(), second.get_id());
    assert_eq!(ping(&sup, "a").await, 2);
    assert_eq!(
        bounded(sup.child_ref::<String>("a")).await.err(),
        Some(SupervisorError::WrongType {
            id: id("a"),
            expected: std::any::type_name::<String>()
        })
    );
    assert!(matches!(
        bounded(sup.child_supervisor("a")).await,
        Err(SupervisorError::WrongType { .. })
    ));
    sup.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_child_that_has_ended_is_not_handed_out() {
    let probes = Probes::new();
    let sup = started(&probes, &["a"]).await;
    // a exits and spends 10 s in post_stop: its exit is not reported to the supervisor yet.
    tell(
        &sup,
        "a",
        ProbeMsg::ExitSlowly(std::time::Duration::from_secs(10)),
    )
    .await;
    probes.log.wait_for("cleaning a").await;
    assert_eq!(
        bounded(sup.child("a")).await,
        Err(SupervisorError::NotRunning(id("a")))
    );
    // Once the exit is handled, the next incarnation is found.
    probes.log.wait_len(4).await;
    assert_eq!(ping(&sup, "a").await, 2);
    sup.stop().await;
}

#[tokio::test(start_paused = true)]
async fn any_ractor_actor_can_be_a_child() {
    let sup = Supervisor::builder()
        .child(ChildSpec::from_actor("other", Other, ()))
        .spawn()
        .await
        .unwrap();
    let other = bounded(sup.child_ref::<String>("other")).await.unwrap();
    other.cast("hello".into()).unwrap();
    sup.stop().await;
    assert!(other.get_status() >= ractor::ActorStatus::Stopping);
}

#[tokio::test(start_paused = true)]
async fn an_unlinked_child_is_linked_by_the_supervisor() {
    let probes = Probes::new();
    let sup = Supervisor::builder()
        .intensity(5)
        .child(ChildSpec::new("loose", |_ctx: ChildContext| async {
            let (r, _) = Actor::spawn(None, Other, ()).await?;
            Ok(ChildStart::Started(r.get_cell()))
        }))
        .child(probes.spec("a"))
        .spawn()
        .await
        .unwrap();
    let mut events = bounded(sup.subscribe()).await.unwrap();
    let first = bounded(sup.child("loose")).await.unwrap();
    first.kill();
    next_matching(
        &mut events,
        |e| matches!(e, SupervisorEvent::ChildStarted { id, .. } if *id == "loose"),
    )
    .await;
    let second = bounded(sup.child("loose")).await.unwrap();
    assert_ne!(first.get_id(), second.get_id());
    sup.stop().await;
}

#[tokio::test(start_paused = true)]
async fn calls_to_a_stopped_supervisor_fail_fast() {
    let probes = Probes::new();
    let sup = started(&probes, &["a"]).await;
    sup.stop().await;
    let stopped = SupervisorError::SupervisorStopped;
    assert_eq!(
        bounded(sup.start_child(probes.spec("b"))).await.err(),
        Some(stopped.clone())
    );
    assert_eq!(
        bounded(sup.terminate_child("a")).await,
        Err(stopped.clone())
    );
    assert_eq!(
        bounded(sup.restart_child("a")).await.err(),
        Some(stopped.clone())
    );
    assert_eq!(bounded(sup.delete_child("a")).await, Err(stopped.clone()));
    assert_eq!(
        bounded(sup.which_children()).await.err(),
        Some(stopped.clone())
    );
    assert_eq!(bounded(sup.count_children()).await, Err(stopped.clone()));
    assert_eq!(bounded(sup.child("a")).await, Err(stopped.clone()));
    assert!(bounded(sup.subscribe()).await.is_err());
}

use ractor_otp::supervisor::SupervisorEvent;
