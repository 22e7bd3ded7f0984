//! The child table: every child a supervisor holds, static or dynamic, in start order.
//!
//! One table serves both kinds of supervisor, as OTP's one `#child{}` record does. A slot holds
//! the child's spec (a dynamic child's spec is its supervisor's template with the child's own
//! arguments bound), the state of its current incarnation, the incarnation's generation and
//! its backoff position. Slots are keyed by a number that grows with every child added, so key
//! order is start order; an index by id serves the API, an index by actor id serves exits (an
//! event from an older incarnation finds no slot and is ignored). Every operation is
//! logarithmic or constant, so a dynamic supervisor with 100 000 children stays fast.

use std::collections::{BTreeMap, HashMap};

use ractor::{ActorCell, ActorId};
use tokio::time::Instant;

use super::backoff::BackoffState;
use super::spec::{ChildId, ChildKind, ChildSpec, Restart};
use super::strategy::PlanChild;
use crate::observe::{ChildView, NodeStatus, Probe};

/// A child's place in the table; key order is start order.
pub(crate) type Key = u64;

/// The state of a child's current incarnation.
#[derive(Debug, Clone)]
pub(crate) enum SlotState {
    Running(ActorCell),
    /// Waiting for a restart; `token` fences the pending restart message.
    Restarting {
        token: u64,
    },
    NotRunning,
}

/// One child: its spec and the state of its current incarnation.
#[derive(Debug)]
pub(crate) struct Slot {
    pub(crate) spec: ChildSpec,
    state: SlotState,
    pub(crate) generation: u64,
    pub(crate) started_at: Option<Instant>,
    pub(crate) backoff: BackoffState,
}

impl Slot {
    pub(crate) fn state(&self) -> &SlotState {
        &self.state
    }

    pub(crate) fn cell(&self) -> Option<&ActorCell> {
        match &self.state {
            SlotState::Running(cell) => Some(cell),
            _ => None,
        }
    }

    fn plan_view(&self) -> PlanChild {
        PlanChild {
            running: self.cell().is_some(),
            restart: self.spec.policy.restart,
        }
    }
}

/// Children in start order, indexed by live actor and (static children) by id.
#[derive(Debug, Default)]
pub(crate) struct Children {
    slots: BTreeMap<Key, Slot>,
    /// `None` for a dynamic supervisor, whose children are never looked up by id and whose
    /// ids are unique by construction.
    by_id: Option<HashMap<ChildId, Key>>,
    by_actor: HashMap<ActorId, Key, foldhash::fast::RandomState>,
    /// The probes of the children that gave one (nested supervisors, pools, runners): apart
    /// from the slots, so the many children that give none cost nothing.
    probes: HashMap<Key, Probe>,
    last_key: Key,
}

impl Children {
    /// An empty table; `by_id` says whether children are looked up by id (static ones are).
    pub(crate) fn new(by_id: bool) -> Children {
        Children {
            by_id: by_id.then(HashMap::new),
            ..Children::default()
        }
    }

    /// Adds a child, not running, at the end of the start order.
    pub(crate) fn push(&mut self, spec: ChildSpec) -> Key {
        self.last_key += 1;
        self.insert(self.last_key, spec, 0, SlotState::NotRunning, None)
    }

    /// Adds a child a caller started itself, running as its first incarnation, under the key
    /// it was given when its start began (a dynamic supervisor hands keys out to the callers
    /// that start its children); `key` must not be in use.
    pub(crate) fn push_running(
        &mut self,
        key: Key,
        spec: ChildSpec,
        cell: ActorCell,
        started_at: Instant,
    ) -> Key {
        self.last_key = self.last_key.max(key);
        self.by_actor.insert(cell.get_id(), key);
        self.insert(key, spec, 1, SlotState::Running(cell), Some(started_at))
    }

    fn insert(
        &mut self,
        key: Key,
        spec: ChildSpec,
        generation: u64,
        state: SlotState,
        started_at: Option<Instant>,
    ) -> Key {
        if let Some(by_id) = &mut self.by_id {
            by_id.insert(spec.id.clone(), key);
        }
        let slot = Slot {
            spec,
            state,
            generation,
            started_at,
            backoff: BackoffState::default(),
        };
        self.slots.insert(key, slot);
        key
    }

    /// Children with a live incarnation.
    pub(crate) fn running(&self) -> usize {
        self.by_actor.len()
    }

    pub(crate) fn get(&self, key: Key) -> Option<&Slot> {
        self.slots.get(&key)
    }

    pub(crate) fn get_mut(&mut self, key: Key) -> Option<&mut Slot> {
        self.slots.get_mut(&key)
    }

    /// Sets a child's state, keeping the actor index true; returns the previous state.
    pub(crate) fn set_state(&mut self, key: Key, state: SlotState) -> Option<SlotState> {
        let slot = self.slots.get_mut(&key)?;
        if let SlotState::Running(cell) = &slot.state {
            self.by_actor.remove(&cell.get_id());
        }
        if let SlotState::Running(cell) = &state {
            self.by_actor.insert(cell.get_id(), key);
        }
        Some(std::mem::replace(&mut slot.state, state))
    }

    pub(crate) fn remove(&mut self, key: Key) -> Option<Slot> {
        let slot = self.slots.remove(&key)?;
        self.probes.remove(&key);
        if let Some(by_id) = &mut self.by_id {
            by_id.remove(&slot.spec.id);
        }
        if let SlotState::Running(cell) = &slot.state {
            self.by_actor.remove(&cell.get_id());
        }
        Some(slot)
    }

    /// The child with this id (a dynamic supervisor keeps no index by id: `None`).
    pub(crate) fn key_of(&self, id: &ChildId) -> Option<Key> {
        self.by_id.as_ref()?.get(id).copied()
    }

    /// The child whose live incarnation is `actor`.
    pub(crate) fn key_of_actor(&self, actor: ActorId) -> Option<Key> {
        self.by_actor.get(&actor).copied()
    }

    /// Every key, in start order.
    pub(crate) fn keys(&self) -> Vec<Key> {
        self.slots.keys().copied().collect()
    }

    /// Every child as the restart planner sees it, in start order, with the keys in that order.
    pub(crate) fn plan_view(&self) -> (Vec<Key>, Vec<PlanChild>) {
        self.slots.iter().map(|(&k, s)| (k, s.plan_view())).unzip()
    }

    /// Takes every running child out of the table (for a parallel shutdown).
    pub(crate) fn take_running(&mut self) -> Vec<(Key, ActorCell)> {
        self.by_actor.clear();
        self.slots
            .iter_mut()
            .filter_map(
                |(&k, s)| match std::mem::replace(&mut s.state, SlotState::NotRunning) {
                    SlotState::Running(cell) => Some((k, cell)),
                    _ => None,
                },
            )
            .collect()
    }

    /// Whether any significant child is running or waiting for a restart.
    pub(crate) fn any_significant_alive(&self) -> bool {
        self.slots
            .values()
            .any(|s| s.spec.policy.significant && !matches!(s.state, SlotState::NotRunning))
    }

    /// OTP's `count_children`. A dynamic supervisor holds one spec (its template) and counts its
    /// children by kind; a static one counts its specs by kind.
    pub(crate) fn counts(&self, dynamic: bool) -> ChildCounts {
        let mut c = ChildCounts {
            specs: if dynamic { 1 } else { self.slots.len() },
            active: self.by_actor.len(),
            ..ChildCounts::default()
        };
        for s in self.slots.values() {
            match s.spec.policy.kind {
                ChildKind::Supervisor => c.supervisors += 1,
                ChildKind::Worker => c.workers += 1,
            }
        }
        c
    }

    /// Keeps (or, given `None`, forgets) the probe of child `key`'s live incarnation.
    pub(crate) fn set_probe(&mut self, key: Key, probe: Option<Probe>) {
        match probe {
            Some(probe) => {
                self.probes.insert(key, probe);
            }
            None => {
                self.probes.remove(&key);
            }
        }
    }

    /// Every child as a tree walk sees it, in start order.
    pub(crate) fn views(&self) -> Vec<ChildView> {
        self.slots
            .iter()
            .map(|(key, s)| {
                let status = match &s.state {
                    SlotState::Running(_) => NodeStatus::Running,
                    SlotState::Restarting { .. } => NodeStatus::Restarting,
                    SlotState::NotRunning => NodeStatus::NotRunning,
                };
                ChildView {
                    id: s.spec.id.clone(),
                    status,
                    kind: s.spec.policy.kind,
                    generation: s.generation,
                    probe: self
                        .probes
                        .get(key)
                        .cloned()
                        .filter(|_| status == NodeStatus::Running),
                }
            })
            .collect()
    }

    pub(crate) fn infos(&self) -> Vec<ChildInfo> {
        self.slots
            .values()
            .map(|s| ChildInfo {
                id: s.spec.id.clone(),
                status: match &s.state {
                    SlotState::Running(cell) => ChildStatus::Running(cell.clone()),
                    SlotState::Restarting { .. } => ChildStatus::Restarting,
                    SlotState::NotRunning => ChildStatus::NotRunning,
                },
                kind: s.spec.policy.kind,
                restart: s.spec.policy.restart,
                generation: s.generation,
            })
            .collect()
    }
}

/// A child's state as `which_children` reports it.
#[derive(Debug, Clone)]
pub enum ChildStatus {
    /// Running; the cell of the live incarnation.
    Running(ActorCell),
    /// Waiting for a restart (backoff, or retrying a failed start).
    Restarting,
    /// Spec kept, nothing running.
    NotRunning,
}

impl ChildStatus {
    /// The live cell, if running.
    pub fn cell(&self) -> Option<&ActorCell> {
        match self {
            ChildStatus::Running(cell) => Some(cell),
            _ => None,
        }
    }

    /// Whether the child is running.
    pub fn is_running(&self) -> bool {
        matches!(self, ChildStatus::Running(_))
    }
}

impl PartialEq for ChildStatus {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (ChildStatus::Running(a), ChildStatus::Running(b)) => a.get_id() == b.get_id(),
            (ChildStatus::Restarting, ChildStatus::Restarting) => true,
            (ChildStatus::NotRunning, ChildStatus::NotRunning) => true,
            _ => false,
        }
    }
}

/// One child as `which_children` reports it, for static and dynamic supervisors alike.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ChildInfo {
    /// The child's id (a dynamic child's is `#1`, `#2`, ... in start order, stable across its
    /// restarts).
    pub id: ChildId,
    /// Its state.
    pub status: ChildStatus,
    /// Worker or supervisor.
    pub kind: ChildKind,
    /// Its restart type.
    pub restart: Restart,
    /// The number of start attempts so far (the live incarnation's generation when running).
    pub generation: u64,
}

impl ChildInfo {
    /// The live incarnation's cell, if the child is running.
    pub fn cell(&self) -> Option<&ActorCell> {
        self.status.cell()
    }
}

/// The counts `count_children` reports: OTP's `count_children`, the same four numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ChildCounts {
    /// Child specs held (a dynamic supervisor holds one: its template).
    pub specs: usize,
    /// Children with a live incarnation.
    pub active: usize,
    /// Children of kind supervisor, running or not.
    pub supervisors: usize,
    /// Children of kind worker, running or not.
    pub workers: usize,
}
