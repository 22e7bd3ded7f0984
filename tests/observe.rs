//! The tree snapshot: one walk sees nested supervisors, dynamic supervisors, pools and job
//! runners, with state, incarnation, restarts and intensity budget; a crash shows as the next
//! incarnation and a smaller budget, which comes back when the window passes.

mod common;

use std::time::Duration;

use common::{bounded, ping, tell, ProbeMsg, Probes};
use ractor_otp::observe::{NodeKind, NodeStatus, TreeEvent, TreeEventStream, TreeNode};
use ractor_otp::pool::Pool;
use ractor_otp::supervisor::{
    ChildKind, DynamicSupervisor, DynamicSupervisorRef, Strategy, Supervisor, SupervisorEvent,
    SupervisorRef,
};
use ractor_otp::worker::Worker;

#[derive(Clone)]
struct Echo;

impl Worker for Echo {
    type Task = u64;
    type Output = u64;
    type Error = String;

    async fn handle(&mut self, n: u64) -> Result<u64, String> {
        if n == 13 {
            panic!("13 is unlucky");
        }
        Ok(n)
    }
}

fn node<'a>(tree: &'a TreeNode, path: &str) -> &'a TreeNode {
    tree.find(path)
        .unwrap_or_else(|| panic!("no node at {path} in\n{tree}"))
}

fn budget(node: &TreeNode) -> (u32, u32) {
    match &node.kind {
        NodeKind::Supervisor(s) => (s.budget_left(), s.intensity),
        other => panic!("{} is not a supervisor: {other:?}", node.path),
    }
}

/// app ─┬─ storage (one-for-one, 3 per 5 s) ── wal, index
///      ├─ sessions (dynamic) ── #1, #2
///      └─ api (pool of 2)
async fn app(probes: &Probes) -> (SupervisorRef, ractor_otp::supervisor::EventStream) {
    let mut storage = Supervisor::builder()
        .intensity(3)
        .period(Duration::from_secs(5))
        .child(probes.spec("wal"))
        .child(probes.spec("index"));
    let events = storage.subscribe();
    let sessions = DynamicSupervisor::builder(probes.template());
    let api = Pool::builder(|_| Echo).size(2);
    let app = Supervisor::builder()
        .label("app")
        .strategy(Strategy::RestForOne)
        .child(storage.into_child_spec("storage"))
        .child(sessions.into_child_spec("sessions"))
        .child(api.into_child_spec("api"))
        .spawn()
        .await
        .unwrap();
    let sessions =
        DynamicSupervisorRef::<String>::from_cell(app.child("sessions").await.unwrap()).unwrap();
    sessions.start_child("alice".into()).await.unwrap();
    sessions.start_child("bob".into()).await.unwrap();
    (app, events)
}

#[tokio::test]
async fn one_walk_sees_every_kind_of_node() {
    let probes = Probes::new();
    let (app, _events) = app(&probes).await;
    let tree = bounded(app.tree()).await.unwrap();

    assert_eq!((tree.name.as_str(), tree.path.as_str()), ("app", "app"));
    match &tree.kind {
        NodeKind::Supervisor(s) => {
            assert_eq!((s.strategy, s.dynamic), (Strategy::RestForOne, false))
        }
        other => panic!("{other:?}"),
    }
    let names: Vec<&str> = tree.children.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["storage", "sessions", "api"]);

    let wal = node(&tree, "app/storage/wal");
    assert_eq!(
        (wal.status, wal.incarnation, wal.restarts),
        (NodeStatus::Running, 1, 0)
    );
    assert!(matches!(wal.kind, NodeKind::Leaf(ChildKind::Worker)));
    assert_eq!(budget(node(&tree, "app/storage")), (3, 3));

    let sessions = node(&tree, "app/sessions");
    match &sessions.kind {
        NodeKind::Supervisor(s) => assert!(s.dynamic),
        other => panic!("{other:?}"),
    }
    assert_eq!(sessions.children.len(), 2);
    assert!(tree.find("app/sessions/#2").is_some(), "\n{tree}");

    let api = node(&tree, "app/api");
    match &api.kind {
        NodeKind::Pool(stats) => assert_eq!(stats.workers.len(), 2),
        other => panic!("{other:?}"),
    }
    assert_eq!(api.children.len(), 2, "the pool's workers\n{tree}");
    assert!(api.children.iter().all(|w| w.status == NodeStatus::Running));

    // Ten nodes: app, storage + 2, sessions + 2, api + 2 workers.
    assert_eq!(tree.iter().count(), 10, "\n{tree}");
    let drawn = tree.to_string();
    assert!(drawn.starts_with("app "), "{drawn}");
    assert!(drawn.contains("├─ storage"), "{drawn}");
    assert!(drawn.contains("│  ├─ wal"), "{drawn}");
    assert!(drawn.contains("└─ api"), "{drawn}");
    assert!(drawn.contains("budget 3/3"), "{drawn}");
    assert!(drawn.contains("pool: 0 queued"), "{drawn}");
    app.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_crash_shows_as_the_next_incarnation_and_a_smaller_budget_until_the_window_passes() {
    let probes = Probes::new();
    let (app, mut events) = app(&probes).await;
    let storage = SupervisorRef::from_cell(app.child("storage").await.unwrap()).unwrap();
    tell(&storage, "wal", ProbeMsg::Panic).await;
    // The restarted incarnation answers.
    common::next_matching(&mut events, |e| {
        matches!(e, SupervisorEvent::ChildStarted { generation: 2, .. })
    })
    .await;
    assert_eq!(ping(&storage, "wal").await, 2);

    let tree = bounded(app.tree()).await.unwrap();
    let wal = node(&tree, "app/storage/wal");
    assert_eq!(
        (wal.status, wal.incarnation, wal.restarts),
        (NodeStatus::Running, 2, 1)
    );
    assert_eq!(node(&tree, "app/storage/index").incarnation, 1);
    assert_eq!(budget(node(&tree, "app/storage")), (2, 3));
    assert!(tree.to_string().contains("#2 (1 restart)"), "\n{tree}");

    // The window is 5 s: after it, the whole budget is back.
    tokio::time::sleep(Duration::from_secs(6)).await;
    let tree = bounded(app.tree()).await.unwrap();
    assert_eq!(budget(node(&tree, "app/storage")), (3, 3));
    app.stop().await;
}

#[tokio::test]
async fn a_pool_and_a_dynamic_supervisor_draw_their_own_trees() {
    let pool = Pool::builder(|_| Echo)
        .size(3)
        .label("echo")
        .spawn()
        .await
        .unwrap();
    assert_eq!(pool.submit(7).await.unwrap(), 7);
    let tree = bounded(pool.tree()).await.expect("the pool is running");
    assert_eq!(tree.name, "echo");
    assert_eq!(tree.children.len(), 3);
    match &tree.kind {
        NodeKind::Pool(stats) => assert_eq!(stats.completed, 1),
        other => panic!("{other:?}"),
    }
    pool.stop().await;
    assert!(pool.tree().await.is_none(), "a stopped pool has no tree");

    let probes = Probes::new();
    let sessions = DynamicSupervisor::builder(probes.template())
        .label("sessions")
        .spawn()
        .await
        .unwrap();
    sessions.start_child("carol".into()).await.unwrap();
    let tree = bounded(sessions.tree()).await.unwrap();
    assert_eq!(tree.children.len(), 1);
    assert_eq!(tree.children[0].path, "sessions/#1");
    sessions.stop().await;
}

/// Reads the tree stream until `pred` matches (bounded); returns every event read.
async fn until_event(
    stream: &mut TreeEventStream,
    pred: impl Fn(&TreeEvent) -> bool,
) -> Vec<TreeEvent> {
    let mut seen = Vec::new();
    loop {
        let e = bounded(stream.recv()).await.expect("the tree stream ended");
        let done = pred(&e);
        seen.push(e);
        if done {
            return seen;
        }
    }
}

fn started(e: &TreeEvent, path: &str, child: &str, generation: u64) -> bool {
    e.path == path
        && matches!(&e.event, SupervisorEvent::ChildStarted { id, generation: g, .. }
            if *id == child && *g == generation)
}

#[tokio::test]
async fn one_stream_carries_every_supervisors_events_with_its_path() {
    let probes = Probes::new();
    let storage = Supervisor::builder().intensity(3).child(probes.spec("wal"));
    let api = Pool::builder(|_| Echo).size(2);
    let mut app = Supervisor::builder()
        .label("app")
        .child(storage.into_child_spec("storage"))
        .child(api.into_child_spec("api"));
    let mut stream = app.subscribe_tree();
    let app = app.spawn().await.unwrap();

    // From the start: app's children, storage's, the pool's workers, each at its path.
    let start = until_event(&mut stream, |e| started(e, "app", "api", 1)).await;
    assert!(
        start.iter().any(|e| started(e, "app/storage", "wal", 1)),
        "{start:#?}"
    );
    assert!(
        start.iter().any(|e| started(e, "app/api", "worker-1", 1)),
        "{start:#?}"
    );

    // A crash two levels down.
    let storage_ref = SupervisorRef::from_cell(app.child("storage").await.unwrap()).unwrap();
    tell(&storage_ref, "wal", ProbeMsg::Panic).await;
    let crash = until_event(&mut stream, |e| started(e, "app/storage", "wal", 2)).await;
    let exit = crash
        .iter()
        .find(|e| matches!(e.event, SupervisorEvent::ChildExited { .. }))
        .expect("the exit before the restart");
    assert_eq!(exit.child_path(), "app/storage/wal");
    let line = exit.to_string();
    assert!(
        line.contains(" app/storage: wal exited (incarnation 1): "),
        "{line}"
    );
    assert!(line.contains("panic"), "{line}");

    // A pool worker's crash, at the pool's place.
    let pool = ractor_otp::pool::PoolRef::<Echo>::from_cell(app.child("api").await.unwrap())
        .await
        .unwrap();
    assert!(pool.submit(13).await.is_err());
    let crash = until_event(&mut stream, |e| {
        e.path == "app/api" && matches!(e.event, SupervisorEvent::ChildExited { .. })
    })
    .await;
    assert!(crash
        .last()
        .unwrap()
        .child_path()
        .starts_with("app/api/worker-"));
    app.stop().await;
}

#[tokio::test]
async fn a_restarted_subtree_keeps_reporting_with_its_new_incarnation() {
    let probes = Probes::new();
    // Storage gives up at its first crash; app restarts it.
    let storage = Supervisor::builder().intensity(0).child(probes.spec("wal"));
    let app = Supervisor::builder()
        .label("app")
        .intensity(3)
        .child(storage.into_child_spec("storage"))
        .spawn()
        .await
        .unwrap();
    let mut stream = app.subscribe_tree().await.unwrap();
    let storage_ref = SupervisorRef::from_cell(app.child("storage").await.unwrap()).unwrap();
    tell(&storage_ref, "wal", ProbeMsg::Panic).await;
    // The new storage starts its children (and says so) before app sees it started.
    let seen = until_event(&mut stream, |e| started(e, "app", "storage", 2)).await;
    let again = seen
        .iter()
        .find(|e| started(e, "app/storage", "wal", 1))
        .expect("the new storage's start of wal");
    assert_eq!(
        again.incarnation, 2,
        "the new storage's events carry its incarnation"
    );
    assert!(
        again.to_string().contains(" app/storage (#2): wal started"),
        "{again}"
    );
    // The first storage's own events came with incarnation 1.
    assert!(seen.iter().any(|e| e.path == "app/storage"
        && e.incarnation == 1
        && matches!(e.event, SupervisorEvent::GaveUp { .. })));
    app.stop().await;
}
