//! The pool's control actor: it owns the workers' supervisor and serves resize and drain.
//!
//! Tasks never pass through it (they are routed on the caller's side, see `shared`). It spawns
//! a [`Supervisor`] (one-for-one, the pool's intensity) whose children are the workers, linked
//! to itself: when that supervisor gives up, the control actor fails with the same reason, so
//! the pool escalates to its own parent like any supervisor. On stop it fails the queued tasks
//! and stops the workers in order.
//!
//! However the control actor ends — stopped, drained, killed (directly or with a supervisor
//! above it), panicked — the pool's shared state is closed: the actor's handler value owns an
//! [`EndGuard`], which ractor drops when the actor's task ends, whatever ended it (a kill runs
//! no `post_stop`). Closing answers every queued task `Stopped` and makes every later submit on
//! any handle answer `Stopped` at once; tasks in the workers' mailboxes answer for themselves
//! as the workers end (see `shared::Envelope`).
//!
//! A worker whose handler never yields (a CPU spin) cannot be stopped: it is found past its
//! task's timeout plus the grace period (or by a failed health check), taken out of rotation,
//! counted as stuck, and its supervisor starts a replacement in its slot without waiting for
//! it (`Supervisor` abandons the old incarnation, which ends whenever it yields).

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort, SupervisionEvent};
use tracing::Instrument;

use super::shared::{Incarnation, Shared, Slot};
use super::worker_actor::{Factory, WorkerActor, WorkerArgs};
use super::{PoolError, PoolRef};
use crate::supervisor::{
    Backoff, ChildContext, ChildSpec, Supervisor, SupervisorEvent, SupervisorRef,
};
use crate::worker::Worker;

/// A message to a pool's control actor. Opaque: use [`PoolRef`].
pub struct PoolMsg<W: Worker>(pub(crate) Control<W>);

#[cfg(feature = "cluster")]
impl<W: Worker> ractor::Message for PoolMsg<W> {}

pub(crate) enum Control<W: Worker> {
    Resize(usize, RpcReplyPort<Result<(), PoolError>>),
    Drain(Duration, RpcReplyPort<bool>),
    Handle(RpcReplyPort<PoolRef<W>>),
    /// For a tree walk: the pool's label and its workers' supervisor.
    Observe(RpcReplyPort<(String, SupervisorRef)>),
    /// Apply the autoscaler to the current load.
    Autoscale,
    /// Ping every worker; publish the stats.
    HealthCheck,
    /// Set the queue-depth and in-flight gauges (every second, with the `metrics` feature).
    #[cfg(feature = "metrics")]
    PublishLoad,
    /// A caller's task timed out: look for workers still running a task past its deadline
    /// plus the grace period.
    CheckOverruns,
    /// Panics in the handler: the unit tests' stand-in for a bug in the control actor.
    #[cfg(test)]
    Panic,
}

/// Stuck-worker detection: every `interval`, each worker must answer a ping within `timeout`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct HealthCheck {
    pub(crate) interval: Duration,
    pub(crate) timeout: Duration,
}

/// The control actor. ractor keeps this value until the actor's task ends and drops it then,
/// however the actor ended: its [`EndGuard`] is how the handles learn that the pool is gone.
pub(crate) struct PoolActor<W: Worker> {
    _end: EndGuard<W>,
}

impl<W: Worker> PoolActor<W> {
    pub(crate) fn new(shared: Arc<Shared<W>>) -> Self {
        PoolActor {
            _end: EndGuard(shared),
        }
    }
}

/// Closes the pool's shared state when dropped (see the module docs).
struct EndGuard<W: Worker>(Arc<Shared<W>>);

impl<W: Worker> Drop for EndGuard<W> {
    fn drop(&mut self) {
        self.0.close();
    }
}

pub(crate) struct PoolArgs<W: Worker> {
    pub(crate) shared: Arc<Shared<W>>,
    pub(crate) factory: Factory<W>,
    pub(crate) intensity: u32,
    pub(crate) period: Duration,
    pub(crate) backoff: Option<Backoff>,
    pub(crate) health: Option<HealthCheck>,
    pub(crate) label: String,
    pub(crate) tree_place: Option<crate::observe::TreePlace>,
}

pub(crate) struct PoolState<W: Worker> {
    shared: Arc<Shared<W>>,
    factory: Factory<W>,
    backoff: Option<Backoff>,
    workers: SupervisorRef,
    health: Option<HealthCheck>,
    label: String,
    span: tracing::Span,
}

/// Takes a stuck worker out of rotation, counts it, and has its supervisor start a
/// replacement in its slot without waiting for it to end.
fn replace_stuck<W: Worker>(
    shared: &Shared<W>,
    workers: &SupervisorRef,
    inc: &Incarnation<W>,
    reason: String,
) {
    inc.retire();
    shared.counters.stuck.fetch_add(1, Ordering::Relaxed);
    tracing::warn!(%reason, "replacing a stuck worker");
    workers.abandon_child(inc.actor.get_id(), reason);
}

fn worker_id(index: usize) -> String {
    format!("worker-{index}")
}

fn worker_spec<W: Worker>(
    shared: &Arc<Shared<W>>,
    factory: &Factory<W>,
    backoff: &Option<Backoff>,
    slot: Arc<Slot>,
) -> ChildSpec {
    let (shared, factory) = (shared.clone(), factory.clone());
    let spec = ChildSpec::new(worker_id(slot.index), move |ctx: ChildContext| {
        let args = WorkerArgs {
            factory: factory.clone(),
            slot: slot.clone(),
            shared: shared.clone(),
            generation: ctx.generation(),
        };
        async move { ctx.spawn_linked(WorkerActor::<W>::new(), args).await }
    });
    match backoff {
        Some(b) => spec.backoff(b.clone()),
        None => spec,
    }
}

#[cfg_attr(feature = "async-trait", ractor::async_trait)]
impl<W: Worker> Actor for PoolActor<W> {
    type Msg = PoolMsg<W>;
    type State = PoolState<W>;
    type Arguments = PoolArgs<W>;

    async fn pre_start(
        &self,
        myself: ActorRef<PoolMsg<W>>,
        args: PoolArgs<W>,
    ) -> Result<PoolState<W>, ActorProcessingErr> {
        let roster = args.shared.roster.load_full();
        let specs = roster.iter().map(|seat| {
            worker_spec(
                &args.shared,
                &args.factory,
                &args.backoff,
                seat.slot.clone(),
            )
        });
        let mut builder = Supervisor::builder()
            .label(format!("{}/workers", args.label))
            .intensity(args.intensity)
            .period(args.period)
            .children(specs)
            .tree_place(args.tree_place.clone());
        let mut events = builder.subscribe();
        let workers: SupervisorRef = builder.spawn_linked(myself.get_cell()).await?;
        // Count restarts from the supervisor's events (the stream ends with the supervisor).
        let shared = args.shared.clone();
        tokio::spawn(async move {
            while let Some(event) = events.recv().await {
                if let SupervisorEvent::ChildStarted { generation, .. } = event {
                    if generation > 1 {
                        shared.counters.restarts.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        });
        if let Some(health) = args.health {
            myself.send_interval(health.interval, || PoolMsg(Control::HealthCheck));
        }
        #[cfg(feature = "metrics")]
        myself.send_interval(Duration::from_secs(1), || PoolMsg(Control::PublishLoad));
        Ok(PoolState {
            span: tracing::info_span!("pool", name = %args.label),
            shared: args.shared,
            factory: args.factory,
            backoff: args.backoff,
            workers,
            health: args.health,
            label: args.label,
        })
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<PoolMsg<W>>,
        state: &mut PoolState<W>,
    ) -> Result<(), ActorProcessingErr> {
        state.shared.close();
        state.workers.stop().await;
        Ok(())
    }

    async fn handle_supervisor_evt(
        &self,
        myself: ActorRef<PoolMsg<W>>,
        event: SupervisionEvent,
        state: &mut PoolState<W>,
    ) -> Result<(), ActorProcessingErr> {
        match event {
            SupervisionEvent::ActorFailed(cell, reason)
                if cell.get_id() == state.workers.get_cell().get_id() =>
            {
                // The workers' supervisor gave up: the pool fails with its reason.
                state.shared.close();
                Err(reason)
            }
            SupervisionEvent::ActorTerminated(cell, ..)
                if cell.get_id() == state.workers.get_cell().get_id() =>
            {
                myself.stop(Some(crate::exit::SHUTDOWN_REASON.to_string()));
                Ok(())
            }
            _ => Ok(()),
        }
    }

    async fn handle(
        &self,
        myself: ActorRef<PoolMsg<W>>,
        PoolMsg(control): PoolMsg<W>,
        state: &mut PoolState<W>,
    ) -> Result<(), ActorProcessingErr> {
        let span = state.span.clone();
        state.handle(myself, control).instrument(span).await;
        Ok(())
    }
}

impl<W: Worker> PoolState<W> {
    async fn handle(&mut self, myself: ActorRef<PoolMsg<W>>, control: Control<W>) {
        let state = self;
        match control {
            Control::Handle(reply) => {
                let _ = reply.send(PoolRef {
                    shared: state.shared.clone(),
                    control: myself,
                });
            }
            #[cfg(feature = "metrics")]
            Control::PublishLoad => {
                let handle = PoolRef {
                    shared: state.shared.clone(),
                    control: myself,
                };
                let stats = handle.stats();
                state.shared.metrics.load(stats.queued, stats.in_flight);
            }
            Control::Observe(reply) => {
                let _ = reply.send((state.label.clone(), state.workers.clone()));
            }
            Control::Resize(size, reply) => {
                let _ = reply.send(state.resize(size).await);
            }
            Control::Drain(timeout, reply) => {
                state.shared.start_draining();
                let drained = tokio::time::timeout(timeout, state.wait_idle(0))
                    .await
                    .is_ok();
                tracing::info!(drained, "pool drained");
                let _ = reply.send(drained);
                myself.stop(Some(crate::exit::SHUTDOWN_REASON.to_string()));
            }
            Control::Autoscale => {
                state.autoscale().await;
                state.shared.resizing.store(false, Ordering::Release);
            }
            Control::HealthCheck => state.health_check(),
            Control::CheckOverruns => state.check_overruns(),
            #[cfg(test)]
            Control::Panic => panic!("the control actor panicked"),
        }
    }

    /// Replaces every worker still running a task past its deadline plus the grace period:
    /// its handler has not yielded since (one that yields fails itself at that moment).
    fn check_overruns(&self) {
        for (index, inc) in self.shared.overrunning(tokio::time::Instant::now()) {
            let reason = format!(
                "worker {index} is stuck: still running a task {:?} past its timeout without yielding (a CPU-bound handler? run such work in spawn_blocking)",
                self.shared.grace
            );
            replace_stuck(&self.shared, &self.workers, &inc, reason);
        }
    }

    /// Resizes by the autoscaler's verdict on the in-flight counts of the workers.
    async fn autoscale(&mut self) {
        let Some(resizer) = self.shared.resizer else {
            return;
        };
        let in_flight: Vec<usize> = self
            .shared
            .roster
            .load()
            .iter()
            .filter(|s| !s.slot.retiring.load(Ordering::Acquire))
            .map(|s| s.in_flight())
            .collect();
        let delta = resizer.delta(&in_flight);
        if delta != 0 {
            let size = (in_flight.len() as i64 + delta).max(1) as usize;
            tracing::info!(from = in_flight.len(), to = size, "autoscaling the pool");
            if let Err(e) = self.resize(size).await {
                tracing::warn!(error = %e, "autoscaling failed");
            }
        }
    }

    /// Pings every worker; one that does not answer within the bound is killed (its supervisor
    /// restarts it) and reported. Also publishes the stats as a tracing event.
    fn health_check(&self) {
        let Some(health) = self.health else {
            return;
        };
        for seat in self.shared.roster.load().iter() {
            let Some(inc) = seat.inc.clone().filter(|i| i.alive()) else {
                continue;
            };
            let (shared, workers, index) =
                (self.shared.clone(), self.workers.clone(), seat.slot.index);
            tokio::spawn(async move {
                let ping = inc
                    .actor
                    .call(super::shared::WorkerMsg::Ping, Some(health.timeout));
                match ping.await {
                    Ok(ractor::rpc::CallResult::Success(())) => {}
                    Ok(ractor::rpc::CallResult::Timeout) if inc.alive() => {
                        let reason = format!(
                            "worker {index} did not answer a health check within {:?}",
                            health.timeout
                        );
                        replace_stuck(&shared, &workers, &inc, reason);
                    }
                    _ => {} // it ended meanwhile
                }
            });
        }
        let c = &self.shared.counters;
        let (completed, failed) = self.shared.finished();
        tracing::info!(
            pool = %self.label,
            queued = self.shared.queued(),
            submitted = c.submitted.sum(),
            completed,
            failed,
            crashed = c.crashed.load(Ordering::Relaxed),
            timed_out = c.timed_out.load(Ordering::Relaxed),
            restarts = c.restarts.load(Ordering::Relaxed),
            stuck = c.stuck.load(Ordering::Relaxed),
            "pool stats"
        );
    }

    /// Waits until the slots from `from` on have nothing in flight (and, from 0, the queue is
    /// empty).
    async fn wait_idle(&self, from: usize) {
        /// Counts this caller among the waiters while it waits (workers only wake waiters).
        struct Waiting<'a>(&'a std::sync::atomic::AtomicUsize);
        impl Drop for Waiting<'_> {
            fn drop(&mut self) {
                self.0.fetch_sub(1, Ordering::SeqCst);
            }
        }
        self.shared.idle_waiters.fetch_add(1, Ordering::SeqCst);
        let _waiting = Waiting(&self.shared.idle_waiters);
        loop {
            let mut progress = std::pin::pin!(self.shared.progress.notified());
            progress.as_mut().enable();
            // Pairs with a worker's release (sequentially consistent) before `task_finished`.
            std::sync::atomic::fence(Ordering::SeqCst);
            if self.shared.is_idle(from) {
                return;
            }
            progress.await;
        }
    }

    async fn resize(&mut self, size: usize) -> Result<(), PoolError> {
        if size == 0 {
            return Err(PoolError::ZeroSize);
        }
        let current = self.shared.roster.load().len();
        if size > current {
            for index in current..size {
                let slot = Arc::new(Slot::new(index, 1));
                self.shared.add_slot(slot.clone());
                let spec = worker_spec(&self.shared, &self.factory, &self.backoff, slot);
                self.workers
                    .start_child(spec)
                    .await
                    .map_err(PoolError::Workers)?;
            }
        } else if size < current {
            let slots: Vec<_> = self.shared.roster.load()[size..]
                .iter()
                .map(|s| s.slot.clone())
                .collect();
            for slot in &slots {
                slot.retiring.store(true, Ordering::Release);
            }
            // Shrinking drains the removed workers: their accepted tasks finish first.
            self.wait_idle(size).await;
            for slot in slots.iter().rev() {
                let id = worker_id(slot.index);
                self.workers
                    .terminate_child(id.as_str())
                    .await
                    .map_err(PoolError::Workers)?;
                self.workers
                    .delete_child(id.as_str())
                    .await
                    .map_err(PoolError::Workers)?;
            }
            self.shared.truncate_slots(size);
            self.shared.kick();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::pool::{Pool, TaskError};

    /// Waits for its gate, then answers.
    struct Gated;

    impl Worker for Gated {
        type Task = Arc<tokio::sync::Notify>;
        type Output = ();
        type Error = String;

        async fn handle(&mut self, gate: Arc<tokio::sync::Notify>) -> Result<(), String> {
            gate.notified().await;
            Ok(())
        }
    }

    const WAIT: Duration = Duration::from_secs(30);

    #[tokio::test(start_paused = true)]
    async fn a_panic_of_the_control_actor_answers_every_task_and_closes_the_handles() {
        let pool = Pool::builder(|_| Gated).size(1).spawn().await.unwrap();
        let gate = Arc::new(tokio::sync::Notify::new());
        let running = {
            let (p, g) = (pool.clone(), gate.clone());
            tokio::spawn(async move { p.submit(g).await })
        };
        let queued = {
            let (p, g) = (pool.clone(), gate.clone());
            tokio::spawn(async move { p.submit(g).await })
        };
        tokio::time::timeout(WAIT, async {
            while pool.stats().queued < 1 {
                tokio::task::yield_now().await;
            }
        })
        .await
        .unwrap();
        pool.control.cast(PoolMsg(Control::Panic)).unwrap();
        tokio::time::timeout(WAIT, pool.wait()).await.unwrap();
        let queued = tokio::time::timeout(WAIT, queued).await.unwrap().unwrap();
        assert_eq!(queued, Err(TaskError::Stopped));
        let running = tokio::time::timeout(WAIT, running).await.unwrap().unwrap();
        assert_eq!(running, Err(TaskError::Crashed));
        let later = tokio::time::timeout(Duration::from_millis(1), pool.submit(gate)).await;
        assert_eq!(later, Ok(Err(TaskError::Stopped)), "answered at once");
    }
}
