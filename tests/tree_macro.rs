//! `supervisor!`: it expands to the builder calls one writes by hand (compared through the
//! builders' `Debug`, which shows flags and every child spec), and the tree it builds runs.

mod common;

use std::time::Duration;

use common::{bounded, Probes};
use ractor::{Actor, ActorProcessingErr, ActorRef};
use ractor_otp::prelude::*;
use ractor_otp::supervisor::IntoChildSpec;

#[derive(Clone)]
struct Idle;

#[cfg_attr(feature = "async-trait", ractor::async_trait)]
impl Actor for Idle {
    type Msg = ();
    type State = ();
    type Arguments = u8;
    async fn pre_start(&self, _: ActorRef<()>, _: u8) -> Result<(), ActorProcessingErr> {
        Ok(())
    }
}

struct Echo;

impl Worker for Echo {
    type Task = u8;
    type Output = u8;
    type Error = String;
    async fn handle(&mut self, n: u8) -> Result<u8, String> {
        Ok(n)
    }
}

fn backoff() -> Backoff {
    Backoff::fixed(Duration::from_millis(20))
}

#[test]
fn a_tree_expands_to_the_builder_calls_written_by_hand() {
    let limit = 4;
    let from_macro = supervisor! {
        strategy: rest_for_one,
        intensity: limit - 1,
        period: 1.5s,
        auto_shutdown: any_significant,
        label: "app",
        children: [
            "config" => actor(Idle, 1),
            "db" => actor(Idle, 2) { restart: transient, shutdown: 250ms, significant },
            "cache" => actor(Idle, 3) { restart: temporary, shutdown: brutal_kill, name: "cache_actor" },
            "flaky" => actor(Idle, 4) { backoff: backoff(), shutdown: infinity },
            "custom" => start(|ctx: ChildContext| async move {
                ctx.spawn_linked(Idle, 5).await
            }) { shutdown: 2m },
            "storage" => supervisor! {
                strategy: OneForAll,
                children: ["disk" => actor(Idle, 6)],
            },
            "echo" => Pool::builder(|_| Echo).size(2) { restart: transient },
            format!("dyn-{}", 1) => DynamicSupervisor::builder(ChildTemplate::from_actor(Idle)),
        ],
    };
    let by_hand = Supervisor::builder()
        .strategy(Strategy::RestForOne)
        .intensity(limit - 1)
        .period(Duration::from_millis(1500))
        .auto_shutdown(AutoShutdown::AnySignificant)
        .label("app")
        .child(ChildSpec::from_actor("config", Idle, 1))
        .child(
            ChildSpec::from_actor("db", Idle, 2)
                .restart(Restart::Transient)
                .shutdown(Shutdown::Timeout(Duration::from_millis(250)))
                .significant(true),
        )
        .child(
            ChildSpec::from_actor("cache", Idle, 3)
                .restart(Restart::Temporary)
                .shutdown(Shutdown::BrutalKill)
                .registered_name("cache_actor"),
        )
        .child(
            ChildSpec::from_actor("flaky", Idle, 4)
                .backoff(backoff())
                .shutdown(Shutdown::Infinity),
        )
        .child(
            ChildSpec::new("custom", |ctx: ChildContext| async move {
                ctx.spawn_linked(Idle, 5).await
            })
            .shutdown(Shutdown::Timeout(Duration::from_secs(120))),
        )
        .child(
            Supervisor::builder()
                .strategy(Strategy::OneForAll)
                .child(ChildSpec::from_actor("disk", Idle, 6))
                .into_child_spec("storage"),
        )
        .child(
            Pool::builder(|_| Echo)
                .size(2)
                .into_child_spec("echo")
                .restart(Restart::Transient),
        )
        .child(
            DynamicSupervisor::builder(ChildTemplate::from_actor(Idle)).into_child_spec("dyn-1"),
        );
    assert_eq!(format!("{from_macro:?}"), format!("{by_hand:?}"));
    assert!(from_macro.validate().is_ok());
}

#[test]
fn an_empty_tree_is_the_default_builder() {
    let tree = supervisor! {};
    assert_eq!(format!("{tree:?}"), format!("{:?}", Supervisor::builder()));
    let with_comma = supervisor! { intensity: 2, };
    assert_eq!(
        format!("{with_comma:?}"),
        format!("{:?}", Supervisor::builder().intensity(2))
    );
}

#[tokio::test]
async fn the_tree_runs_in_the_written_order() {
    let probes = Probes::new();
    let app = bounded(
        supervisor! {
            strategy: one_for_one,
            children: [
                "a" => probes.spec("a") { shutdown: 1s },
                "inner" => supervisor! {
                    strategy: one_for_all,
                    children: [
                        "b" => probes.spec("b"),
                        "c" => probes.spec("c"),
                    ],
                },
            ],
        }
        .spawn(),
    )
    .await
    .expect("tree starts");
    let ids: Vec<String> = bounded(app.which_children())
        .await
        .expect("children")
        .into_iter()
        .map(|c| c.id.to_string())
        .collect();
    assert_eq!(ids, ["a", "inner"]);
    let inner = bounded(app.child_supervisor("inner"))
        .await
        .expect("inner supervisor");
    assert_eq!(
        bounded(inner.count_children())
            .await
            .expect("counts")
            .active,
        2
    );
    bounded(app.stop()).await;
    assert_eq!(
        probes.log.snapshot(),
        ["start a", "start b", "start c", "stop c", "stop b", "stop a"]
    );
}

/// A child given as a `ChildSpec` expression takes the tree's id, so the tree shows one id per
/// child.
#[test]
fn a_spec_in_a_tree_takes_the_trees_id() {
    let tree = supervisor! { children: ["outer" => ChildSpec::from_actor("inner", Idle, 0)] };
    let by_hand = Supervisor::builder().child(ChildSpec::from_actor("outer", Idle, 0));
    assert_eq!(format!("{tree:?}"), format!("{by_hand:?}"));
    let spec = IntoChildSpec::into_child_spec(Supervisor::builder(), ChildId::from("x"));
    assert_eq!(spec.id().as_str(), "x");
    assert_eq!(spec.child_kind(), ChildKind::Supervisor);
}
