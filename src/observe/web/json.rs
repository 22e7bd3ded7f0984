//! What the observer's API answers: snapshots, jobs and schedules as JSON.

use serde_json::{json, Value};

use crate::jobs::{JobRecord, JobState, ScheduleRecord};
use crate::observe::{NodeKind, NodeStatus, TreeNode};
use crate::supervisor::ChildKind;

pub(super) fn tree(node: &TreeNode) -> Value {
    let status = match node.status {
        NodeStatus::Running => "running",
        NodeStatus::Restarting => "restarting",
        NodeStatus::NotRunning => "not running",
    };
    let kind = match &node.kind {
        NodeKind::Supervisor(s) => json!({
            "type": "supervisor",
            "strategy": format!("{:?}", s.strategy),
            "dynamic": s.dynamic,
            "intensity": s.intensity,
            "period_ms": s.period.as_millis() as u64,
            "budget_left": s.budget_left(),
        }),
        NodeKind::Pool(p) => json!({
            "type": "pool",
            "queued": p.queued,
            "in_flight": p.in_flight,
            "completed": p.completed,
            "failed": p.failed,
            "crashed": p.crashed,
            "timed_out": p.timed_out,
            "restarts": p.restarts,
            "workers": p.workers.iter().map(|w| json!({
                "index": w.index,
                "live": w.live,
                "in_flight": w.in_flight,
                "completed": w.completed,
                "failed": w.failed,
                "mean_latency_us": w.mean_latency.as_micros() as u64,
            })).collect::<Vec<_>>(),
        }),
        NodeKind::Runner(r) => json!({
            "type": "runner",
            "running": r.running,
            "claimed": r.claimed,
            "completed": r.completed,
            "failed": r.failed,
            "unhandled": r.unhandled,
        }),
        NodeKind::Leaf(kind) => json!({
            "type": "leaf",
            "child": if *kind == ChildKind::Supervisor { "supervisor" } else { "worker" },
        }),
    };
    json!({
        "name": node.name,
        "path": node.path,
        "status": status,
        "incarnation": node.incarnation,
        "restarts": node.restarts,
        "kind": kind,
        "children": node.children.iter().map(tree).collect::<Vec<_>>(),
    })
}

pub(super) fn counts(counts: &[(JobState, u64)]) -> Value {
    Value::Object(
        counts
            .iter()
            .map(|(state, n)| (state.as_str().to_owned(), json!(n)))
            .collect(),
    )
}

pub(super) fn schedule(s: &ScheduleRecord) -> Value {
    json!({
        "name": s.name,
        "spec": s.spec,
        "last_slot": s.last_slot.map(|t| t.as_millis()),
        "next_slot": s.next_slot.map(|t| t.as_millis()),
        "last_job": s.last_job.map(|id| id.0),
        "fired": s.fired,
        "missed": s.missed,
        "seen_at": s.seen_at.as_millis(),
    })
}

/// A job; `full` adds its attempts' errors and its output.
pub(super) fn job(j: &JobRecord, redact: Option<&super::Redactor>, full: bool) -> Value {
    let args = match redact {
        Some(redact) => redact(&j.name, &j.payload),
        None => j.payload.clone(),
    };
    let mut value = json!({
        "id": j.id.0,
        "name": j.name,
        "queue": j.queue,
        "state": j.state.as_str(),
        "attempt": j.attempt,
        "max_attempts": j.max_attempts,
        "run_at": j.run_at.as_millis(),
        "args": args,
        "errors": j.errors.len(),
        "last_error": j.errors.last().map(|e| e.error.clone()),
    });
    if full {
        value["attempts"] = Value::Array(
            j.errors
                .iter()
                .map(|e| json!({ "attempt": e.attempt, "at": e.at.as_millis(), "error": e.error }))
                .collect(),
        );
        value["result"] = json!(j.result);
        value["inserted_at"] = json!(j.inserted_at.as_millis());
        value["finished_at"] = json!(j.finished_at.map(|t| t.as_millis()));
    }
    value
}
