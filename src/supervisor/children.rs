//! The ordered child table of a static supervisor.
//!
//! Children are kept in start order (ractor keeps its own children in a hash map, which has no
//! order). Each slot holds the spec, the state of its current incarnation, the incarnation's
//! generation and its backoff position. Events are matched to slots by the actor id of the live
//! incarnation, so an event from an older incarnation finds no slot and is ignored.

use ractor::{ActorCell, ActorId};
use tokio::time::Instant;

use super::backoff::BackoffState;
use super::spec::{ChildId, ChildKind, ChildSpec, Restart};
use super::strategy::PlanChild;

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

#[derive(Debug)]
pub(crate) struct Slot {
    pub(crate) spec: ChildSpec,
    pub(crate) state: SlotState,
    pub(crate) generation: u64,
    pub(crate) started_at: Option<Instant>,
    pub(crate) backoff: BackoffState,
}

impl Slot {
    pub(crate) fn new(spec: ChildSpec) -> Self {
        Slot {
            spec,
            state: SlotState::NotRunning,
            generation: 0,
            started_at: None,
            backoff: BackoffState::default(),
        }
    }

    pub(crate) fn cell(&self) -> Option<&ActorCell> {
        match &self.state {
            SlotState::Running(cell) => Some(cell),
            _ => None,
        }
    }

    pub(crate) fn plan_view(&self) -> PlanChild {
        PlanChild {
            running: self.cell().is_some(),
            restart: self.spec.restart,
        }
    }
}

/// Children in start order.
#[derive(Debug, Default)]
pub(crate) struct Children {
    slots: Vec<Slot>,
}

impl Children {
    pub(crate) fn push(&mut self, spec: ChildSpec) -> usize {
        self.slots.push(Slot::new(spec));
        self.slots.len() - 1
    }

    pub(crate) fn len(&self) -> usize {
        self.slots.len()
    }

    pub(crate) fn get(&self, i: usize) -> &Slot {
        &self.slots[i]
    }

    pub(crate) fn get_mut(&mut self, i: usize) -> &mut Slot {
        &mut self.slots[i]
    }

    pub(crate) fn remove(&mut self, i: usize) -> Slot {
        self.slots.remove(i)
    }

    pub(crate) fn index_of(&self, id: &ChildId) -> Option<usize> {
        self.slots.iter().position(|s| &s.spec.id == id)
    }

    pub(crate) fn index_of_actor(&self, actor: ActorId) -> Option<usize> {
        self.slots
            .iter()
            .position(|s| s.cell().is_some_and(|c| c.get_id() == actor))
    }

    pub(crate) fn plan_view(&self) -> Vec<PlanChild> {
        self.slots.iter().map(Slot::plan_view).collect()
    }

    /// Whether any significant child is running or waiting for a restart.
    pub(crate) fn any_significant_alive(&self) -> bool {
        self.slots
            .iter()
            .any(|s| s.spec.significant && !matches!(s.state, SlotState::NotRunning))
    }

    pub(crate) fn counts(&self) -> ChildCounts {
        let mut c = ChildCounts {
            specs: self.slots.len(),
            ..ChildCounts::default()
        };
        for s in &self.slots {
            if s.cell().is_some() {
                c.active += 1;
            }
            match s.spec.kind {
                ChildKind::Supervisor => c.supervisors += 1,
                ChildKind::Worker => c.workers += 1,
            }
        }
        c
    }

    pub(crate) fn infos(&self) -> Vec<ChildInfo> {
        self.slots
            .iter()
            .map(|s| ChildInfo {
                id: s.spec.id.clone(),
                status: match &s.state {
                    SlotState::Running(cell) => ChildStatus::Running(cell.clone()),
                    SlotState::Restarting { .. } => ChildStatus::Restarting,
                    SlotState::NotRunning => ChildStatus::NotRunning,
                },
                kind: s.spec.kind,
                restart: s.spec.restart,
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

/// One child as `which_children` reports it.
#[derive(Debug, Clone)]
pub struct ChildInfo {
    /// The child's id.
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

/// The counts `count_children` reports (OTP's `count_children`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ChildCounts {
    /// Child specs held.
    pub specs: usize,
    /// Children with a live incarnation.
    pub active: usize,
    /// Specs of kind supervisor, running or not.
    pub supervisors: usize,
    /// Specs of kind worker, running or not.
    pub workers: usize,
}
