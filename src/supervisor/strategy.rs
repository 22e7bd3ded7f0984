//! The restart algorithm's decisions, as pure functions.
//!
//! Two questions, answered without actors:
//! 1. [`exit_action`]: a child ended by itself: restart it, keep its spec as not running, or
//!    delete its spec? (OTP's restart-type table.)
//! 2. [`restart_plan`]: a child must be restarted: which siblings stop (in reverse start order),
//!    which specs are deleted (temporary bystanders), and which start (in start order)?
//!
//! The supervisor actor ([`super::actor`]) wires these to ractor events; the same plan serves a
//! first restart and a retry after a failed start (a retry stops whatever the failed attempt
//! had started, as OTP does).

use super::spec::{Restart, Strategy};
use crate::exit::ExitClass;

/// What to do with a child that ended by itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ExitAction {
    /// Restart it (per the strategy).
    Restart,
    /// Keep the spec, mark the child not running.
    Keep,
    /// Delete the spec.
    Delete,
}

/// OTP's restart decision for a child's own exit.
///
/// | restart | Normal | Shutdown | Abnormal |
/// |---|---|---|---|
/// | Permanent | restart | restart | restart |
/// | Transient | keep | keep | restart |
/// | Temporary | delete | delete | delete |
pub(crate) fn exit_action(restart: Restart, class: ExitClass) -> ExitAction {
    match (restart, class) {
        (Restart::Permanent, _) => ExitAction::Restart,
        (Restart::Transient, ExitClass::Abnormal) => ExitAction::Restart,
        (Restart::Transient, _) => ExitAction::Keep,
        (Restart::Temporary, _) => ExitAction::Delete,
    }
}

/// A child as the planner sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct PlanChild {
    /// It has a live incarnation that must be stopped before a restart.
    pub running: bool,
    /// Its restart type.
    pub restart: Restart,
}

/// What a restart does, by index into the supervisor's start order.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct RestartPlan {
    /// Running children to stop, in reverse start order.
    pub stop: Vec<usize>,
    /// Temporary children whose specs are deleted once stopped (never restarted).
    pub delete: Vec<usize>,
    /// Children to start, in start order.
    pub start: Vec<usize>,
}

/// Plans the restart of `children[failed]` under `strategy`.
///
/// One-for-one touches only the failed child. One-for-all stops every other running child and
/// starts every non-temporary spec, including ones that were not running before (stopped through
/// the API, a transient child that had finished, a child that said `Ignore`), as OTP does.
/// Rest-for-one does the same for the failed child and those after it.
pub(crate) fn restart_plan(
    strategy: Strategy,
    children: &[PlanChild],
    failed: usize,
) -> RestartPlan {
    let range = match strategy {
        Strategy::OneForOne => failed..failed + 1,
        Strategy::OneForAll => 0..children.len(),
        Strategy::RestForOne => failed..children.len(),
    };
    let mut plan = RestartPlan::default();
    for i in range.clone().rev() {
        let c = children[i];
        if i != failed && c.running {
            plan.stop.push(i);
        }
        if i != failed && c.restart == Restart::Temporary {
            plan.delete.push(i);
        }
    }
    plan.delete.reverse();
    plan.start = range
        .filter(|&i| i == failed || children[i].restart != Restart::Temporary)
        .collect();
    plan
}

#[cfg(test)]
mod tests {
    use super::*;
    use ExitClass::*;
    use Restart::*;

    const UP: PlanChild = PlanChild {
        running: true,
        restart: Permanent,
    };
    const DOWN: PlanChild = PlanChild {
        running: false,
        restart: Permanent,
    };

    #[test]
    fn every_cell_of_the_exit_table() {
        let table = [
            (Permanent, Normal, ExitAction::Restart),
            (Permanent, Shutdown, ExitAction::Restart),
            (Permanent, Abnormal, ExitAction::Restart),
            (Transient, Normal, ExitAction::Keep),
            (Transient, Shutdown, ExitAction::Keep),
            (Transient, Abnormal, ExitAction::Restart),
            (Temporary, Normal, ExitAction::Delete),
            (Temporary, Shutdown, ExitAction::Delete),
            (Temporary, Abnormal, ExitAction::Delete),
        ];
        for (restart, class, want) in table {
            assert_eq!(exit_action(restart, class), want, "{restart:?} {class:?}");
        }
    }

    #[test]
    fn one_for_one_touches_only_the_failed_child() {
        let plan = restart_plan(Strategy::OneForOne, &[UP, DOWN, UP], 1);
        assert_eq!(
            plan,
            RestartPlan {
                stop: vec![],
                delete: vec![],
                start: vec![1]
            }
        );
    }

    #[test]
    fn one_for_all_stops_in_reverse_and_starts_in_order() {
        let plan = restart_plan(Strategy::OneForAll, &[UP, DOWN, UP], 1);
        assert_eq!(plan.stop, vec![2, 0]);
        assert_eq!(plan.start, vec![0, 1, 2]);
    }

    #[test]
    fn one_for_all_restarts_specs_that_were_not_running() {
        // c had been stopped through the API: it is started again, as OTP does.
        let plan = restart_plan(Strategy::OneForAll, &[UP, DOWN, DOWN], 1);
        assert_eq!(plan.stop, vec![0]);
        assert_eq!(plan.start, vec![0, 1, 2]);
    }

    #[test]
    fn temporary_bystanders_are_stopped_and_deleted() {
        let temp = PlanChild {
            running: true,
            restart: Temporary,
        };
        let plan = restart_plan(Strategy::OneForAll, &[temp, DOWN, UP], 1);
        assert_eq!(plan.stop, vec![2, 0]);
        assert_eq!(plan.delete, vec![0]);
        assert_eq!(plan.start, vec![1, 2]);
    }

    #[test]
    fn rest_for_one_leaves_earlier_siblings_alone() {
        let plan = restart_plan(Strategy::RestForOne, &[UP, DOWN, UP, UP], 1);
        assert_eq!(plan.stop, vec![3, 2]);
        assert_eq!(plan.start, vec![1, 2, 3]);
    }

    #[test]
    fn a_retry_stops_what_the_failed_attempt_started() {
        // one-for-all attempt started a and b, then c failed: the retry (keyed on c) stops b, a.
        let plan = restart_plan(Strategy::OneForAll, &[UP, UP, DOWN], 2);
        assert_eq!(plan.stop, vec![1, 0]);
        assert_eq!(plan.start, vec![0, 1, 2]);
    }
}
