//! Pools: a router in front of supervised workers (DESIGN §3).
//!
//! This layer is being built (issue 3). What exists so far is the pure part:
//! * `strategy`: routing strategies ([`RoundRobin`], [`LeastBusy`], [`Weighted`],
//!   [`PowerOfTwo`], [`KeyHash`], [`Broadcast`]) and the [`Routing`] trait for custom ones;
//! * `queue`: the bounded priority [`TaskQueue`] and its [`Overflow`] policies;
//! * `resizer`: Akka's default [`Resizer`] as a pure function.

mod queue;
mod resizer;
mod strategy;

pub use self::queue::{Overflow, Priority, Push, TaskQueue};
pub use self::resizer::Resizer;
pub use self::strategy::{
    Broadcast, KeyHash, LeastBusy, PowerOfTwo, RoundRobin, Routing, Target, Weighted, WorkerView,
};
