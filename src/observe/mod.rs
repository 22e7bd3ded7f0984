//! Observability: the running system in one picture.
//!
//! * **The tree** ([`TreeNode`]): `tree()` on a supervisor, dynamic supervisor or pool handle
//!   walks everything below it (nested supervisors, dynamic supervisors, pools, job runners,
//!   leaf children) and returns one snapshot: each node's path, state, incarnation, restarts,
//!   and what its kind knows (a supervisor's strategy and intensity budget left in the
//!   current window, a pool's load per worker, a runner's counters). `Display` draws it.
//!
//! * **One event stream** ([`TreeEventStream`]): `subscribe_tree()` on a supervisor (or its
//!   builder, to see its start) delivers every supervisor event of the whole tree below it,
//!   each a [`TreeEvent`] with the emitting supervisor's path, its incarnation and the time,
//!   and a `Display` a person can read. It follows restarts: a nested supervisor started
//!   again reports to the same stream, marked with its new incarnation.
//!
//! * **Metrics** ([`metrics`], feature `metrics`): restarts, give-ups, pool load and task
//!   times, job outcomes, latencies and states, rescues, schedule slots, pruning, through the
//!   `metrics` facade; the library never installs a recorder.
//!
//! * **A live web observer** ([`web`], feature `observer`): an axum router showing the tree,
//!   pools, runners, jobs and schedules as they run, to mount behind your own auth.
//!
//! How the walk finds its way: a child that can be looked into (a supervisor, a pool, a
//! runner) hands its parent a *probe* when it starts, kept with that incarnation in the
//! parent's child table; a walk asks each running child's probe for its part of the picture,
//! all children at once, each answer bounded by [`PROBE_TIMEOUT`]. Nothing is global and a
//! child that is not looked into costs nothing.

mod events;
pub mod metrics;
mod tree;
#[cfg(feature = "observer")]
#[cfg_attr(docsrs, doc(cfg(feature = "observer")))]
pub mod web;

pub use events::{TreeEvent, TreeEventStream};
pub use tree::{NodeKind, NodeStatus, SupervisorSummary, TreeNode, PROBE_TIMEOUT};

pub(crate) use events::{TreeLink, TreePlace, TreeSink};
pub(crate) use tree::{observe_children, ChildView, Observed, Probe, ProbeSlot};
