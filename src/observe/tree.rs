//! The tree snapshot: its nodes, how a walk assembles them from the children's probes, and
//! how it is drawn.

use std::fmt;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use futures::future::BoxFuture;

use crate::pool::PoolStats;
use crate::supervisor::{ChildId, ChildKind, Strategy};

/// The longest a walk waits for one child's part of the picture (a supervisor busy
/// restarting, a pool's control actor); past it the child shows as a leaf.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

/// One node of a tree snapshot: a supervisor, a pool, a job runner or a leaf child, with
/// everything below it.
///
/// ```
/// use ractor_otp::prelude::*;
/// use ractor_otp::observe::{NodeKind, NodeStatus};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let storage = Supervisor::builder().child(ChildSpec::task("wal", || async {
///     std::future::pending::<()>().await;
///     Ok::<(), std::io::Error>(())
/// }));
/// let app = Supervisor::builder()
///     .label("app")
///     .child(storage.into_child_spec("storage"))
///     .spawn()
///     .await?;
/// let tree = app.tree().await?;
/// let wal = &tree.children[0].children[0];
/// assert_eq!(wal.path, "app/storage/wal");
/// assert_eq!((wal.status, wal.incarnation), (NodeStatus::Running, 1));
/// assert!(matches!(tree.kind, NodeKind::Supervisor(_)));
/// println!("{tree}");
/// app.stop().await;
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct TreeNode {
    /// The child id (the label, for the node the walk started from).
    pub name: String,
    /// The names from the walk's start down to this node, joined by `/` (`app/storage/wal`).
    pub path: String,
    /// Its state.
    pub status: NodeStatus,
    /// Its incarnation: 1 for the first start, +1 for every start after.
    pub incarnation: u64,
    /// Starts after the first (restarts, and retries of a failed start).
    pub restarts: u64,
    /// What it is, and what its kind knows.
    pub kind: NodeKind,
    /// What runs under it, in start order.
    pub children: Vec<TreeNode>,
}

/// A node's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum NodeStatus {
    /// An incarnation is running.
    Running,
    /// Waiting for a restart (a backoff, or retrying a failed start).
    Restarting,
    /// Kept by its supervisor, not running.
    NotRunning,
}

/// What a node is.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum NodeKind {
    /// A supervisor or dynamic supervisor.
    Supervisor(SupervisorSummary),
    /// A pool: its load and counters (its workers are the node's children).
    Pool(PoolStats),
    /// A durable job runner: its counters.
    #[cfg(feature = "jobs")]
    Runner(crate::jobs::RunnerStats),
    /// A child the walk does not look into (an actor, a task), or one that did not answer
    /// within [`PROBE_TIMEOUT`].
    Leaf(ChildKind),
}

/// What a supervisor node shows.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SupervisorSummary {
    /// Its restart strategy.
    pub strategy: Strategy,
    /// A dynamic supervisor (one template, any number of children).
    pub dynamic: bool,
    /// At most this many restarts within `period`.
    pub intensity: u32,
    /// The intensity window.
    pub period: Duration,
    /// Restarts within the current window.
    pub restarts_in_window: u32,
}

impl SupervisorSummary {
    /// Restarts left before the supervisor gives up, in the current window.
    pub fn budget_left(&self) -> u32 {
        self.intensity.saturating_sub(self.restarts_in_window)
    }
}

/// What a probe answers: the node's kind and what runs under it.
pub(crate) struct Observed {
    pub(crate) kind: NodeKind,
    pub(crate) children: Vec<TreeNode>,
}

type ProbeFn = dyn Fn(String) -> BoxFuture<'static, Option<Observed>> + Send + Sync;

/// Asks a running child for its part of the picture, given the child's path.
#[derive(Clone)]
pub(crate) struct Probe(Arc<ProbeFn>);

impl Probe {
    pub(crate) fn new(
        f: impl Fn(String) -> BoxFuture<'static, Option<Observed>> + Send + Sync + 'static,
    ) -> Self {
        Probe(Arc::new(f))
    }

    fn ask(&self, path: String) -> BoxFuture<'static, Option<Observed>> {
        (self.0)(path)
    }
}

impl fmt::Debug for Probe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Probe")
    }
}

/// Where a starting child leaves its probe for its supervisor.
pub(crate) type ProbeSlot = Arc<OnceLock<Probe>>;

/// One child as its supervisor's table shows it, for a walk.
pub(crate) struct ChildView {
    pub(crate) id: ChildId,
    pub(crate) status: NodeStatus,
    pub(crate) kind: ChildKind,
    pub(crate) generation: u64,
    pub(crate) probe: Option<Probe>,
}

/// The nodes of `children`, under `path`: each running child with a probe is asked for its
/// part (all at once, each bounded by [`PROBE_TIMEOUT`]); the others are leaves.
pub(crate) async fn observe_children(children: Vec<ChildView>, path: &str) -> Vec<TreeNode> {
    let nodes = children.into_iter().map(|child| {
        let path = format!("{path}/{}", child.id);
        async move {
            let observed = match (&child.probe, child.status) {
                (Some(probe), NodeStatus::Running) => {
                    tokio::time::timeout(PROBE_TIMEOUT, probe.ask(path.clone()))
                        .await
                        .ok()
                        .flatten()
                }
                _ => None,
            };
            let (kind, children) = match observed {
                Some(Observed { kind, children }) => (kind, children),
                None => (NodeKind::Leaf(child.kind), Vec::new()),
            };
            TreeNode {
                name: child.id.to_string(),
                path,
                status: child.status,
                incarnation: child.generation,
                restarts: child.generation.saturating_sub(1),
                kind,
                children,
            }
        }
    });
    futures::future::join_all(nodes).await
}

impl TreeNode {
    /// The node the walk started from (not a child of anything it knows).
    pub(crate) fn root(name: String, observed: Observed) -> TreeNode {
        TreeNode {
            path: name.clone(),
            name,
            status: NodeStatus::Running,
            incarnation: 1,
            restarts: 0,
            kind: observed.kind,
            children: observed.children,
        }
    }

    /// The node at `path` below (or at) this one.
    pub fn find(&self, path: &str) -> Option<&TreeNode> {
        if self.path == path {
            return Some(self);
        }
        self.children.iter().find_map(|c| c.find(path))
    }

    /// This node and every node below it, depth first in start order.
    pub fn iter(&self) -> impl Iterator<Item = &TreeNode> {
        let mut stack = vec![self];
        std::iter::from_fn(move || {
            let node = stack.pop()?;
            stack.extend(node.children.iter().rev());
            Some(node)
        })
    }

    /// What the node's line says after its name.
    fn describe(&self) -> String {
        let status = match self.status {
            NodeStatus::Running => "running",
            NodeStatus::Restarting => "restarting",
            NodeStatus::NotRunning => "not running",
        };
        let mut line = format!("{status:<11} #{}", self.incarnation);
        match self.restarts {
            0 => {}
            1 => line.push_str(" (1 restart)"),
            n => line.push_str(&format!(" ({n} restarts)")),
        }
        match &self.kind {
            NodeKind::Supervisor(s) => {
                let strategy = if s.dynamic {
                    "dynamic".to_owned()
                } else {
                    format!("{:?}", s.strategy)
                };
                line.push_str(&format!(
                    "  {strategy}, budget {}/{} per {:?}",
                    s.budget_left(),
                    s.intensity,
                    s.period
                ));
            }
            NodeKind::Pool(p) => line.push_str(&format!(
                "  pool: {} queued, {} in flight, {} done, {} failed",
                p.queued, p.in_flight, p.completed, p.failed
            )),
            #[cfg(feature = "jobs")]
            NodeKind::Runner(r) => line.push_str(&format!(
                "  jobs: {} running, {} done, {} failed",
                r.running, r.completed, r.failed
            )),
            NodeKind::Leaf(_) => {}
        }
        line
    }
}

/// Draws the tree, one node per line:
///
/// ```text
/// app               running     #1  OneForOne, budget 3/3 per 5s
/// ├─ storage        running     #1  OneForOne, budget 1/1 per 5s
/// │  └─ wal         running     #2 (1 restart)
/// └─ api            running     #1  pool: 0 queued, 0 in flight, 12 done, 0 failed
///    ├─ 0           running     #1
///    └─ 1           running     #1
/// ```
impl fmt::Display for TreeNode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fn width(node: &TreeNode, depth: usize) -> usize {
            node.children
                .iter()
                .map(|c| width(c, depth + 1))
                .fold(depth * 3 + node.name.chars().count(), usize::max)
        }
        fn draw(
            node: &TreeNode,
            f: &mut fmt::Formatter<'_>,
            lead: &str,
            branch: &str,
            width: usize,
        ) -> fmt::Result {
            let head = format!("{lead}{branch}{}", node.name);
            let pad = width.saturating_sub(head.chars().count()) + 2;
            writeln!(f, "{head}{:pad$}{}", "", node.describe())?;
            let lead = match branch {
                "├─ " => format!("{lead}│  "),
                "└─ " => format!("{lead}   "),
                _ => lead.to_owned(),
            };
            for (i, child) in node.children.iter().enumerate() {
                let last = i + 1 == node.children.len();
                draw(child, f, &lead, if last { "└─ " } else { "├─ " }, width)?;
            }
            Ok(())
        }
        draw(self, f, "", "", width(self, 0))
    }
}
