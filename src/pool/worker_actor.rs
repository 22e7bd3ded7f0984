//! The actor that runs one [`Worker`] incarnation inside a pool.
//!
//! `pre_start` makes the worker with the pool's factory, runs its `init` (and `on_restart` after
//! the first incarnation), and registers a fresh [`Incarnation`] in the worker's slot, so the
//! pool routes to it at once. Each task is answered to its caller; a task past its timeout plus
//! the grace period fails the incarnation (the supervisor restarts it); a panic does too, and
//! the task's envelope, dropped unanswered, answers `Crashed` (or retries; see `shared`). After
//! each task the worker pulls the next one from the pool's queue.

use std::marker::PhantomData;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use ractor::{Actor, ActorProcessingErr, ActorRef};
use tracing::Instrument;

use super::shared::{Answer, Envelope, Incarnation, Shared, Slot, WorkerMsg};
use super::timing::TaskTimer;
use super::TaskError;
use crate::worker::{start_failed, Worker, WorkerContext};

pub(crate) type Factory<W> = Arc<dyn Fn(usize) -> W + Send + Sync>;

pub(crate) struct WorkerActor<W>(PhantomData<fn() -> W>);

impl<W> WorkerActor<W> {
    pub(crate) fn new() -> Self {
        WorkerActor(PhantomData)
    }
}

pub(crate) struct WorkerArgs<W: Worker> {
    pub(crate) factory: Factory<W>,
    pub(crate) slot: Arc<Slot>,
    pub(crate) shared: Arc<Shared<W>>,
    pub(crate) generation: u64,
}

pub(crate) struct WorkerState<W: Worker> {
    worker: W,
    inc: Arc<Incarnation<W>>,
    slot: Arc<Slot>,
    shared: Arc<Shared<W>>,
    span: tracing::Span,
    /// When it reads the clock to time its tasks (see [`TaskTimer`]).
    timer: TaskTimer,
    /// The task being run. It waits here rather than in the task's future, so that the future
    /// ractor moves (copies) several times per message stays small; and if the incarnation
    /// dies mid-task, the future (and its [`CrashMark`]) is dropped before the state is, so
    /// the envelope answers or retries elsewhere only once the incarnation is marked crashed.
    current: Option<Envelope<W>>,
    /// The pool references of answered tasks, let go of [`KEPT_REFS`] at a time.
    kept: Vec<Arc<Shared<W>>>,
}

/// How many answered tasks' pool references a worker keeps before letting go of them together
/// (a burst of decrements on a line that then stays on this core).
const KEPT_REFS: usize = 64;

#[cfg_attr(feature = "async-trait", ractor::async_trait)]
impl<W: Worker> Actor for WorkerActor<W> {
    type Msg = WorkerMsg<W>;
    type State = WorkerState<W>;
    type Arguments = WorkerArgs<W>;

    async fn pre_start(
        &self,
        myself: ActorRef<WorkerMsg<W>>,
        args: WorkerArgs<W>,
    ) -> Result<WorkerState<W>, ActorProcessingErr> {
        let ctx = WorkerContext {
            index: args.slot.index,
            generation: args.generation,
        };
        let mut worker = (args.factory)(ctx.index);
        worker.init(ctx).await.map_err(start_failed)?;
        if ctx.generation > 1 {
            worker.on_restart(ctx).await.map_err(start_failed)?;
        }
        let inc = Arc::new(Incarnation::new(myself));
        args.shared.seat(&args.slot, inc.clone());
        Ok(WorkerState {
            worker,
            inc,
            span: tracing::info_span!(
                "pool_worker",
                index = ctx.index,
                generation = ctx.generation
            ),
            slot: args.slot,
            shared: args.shared,
            timer: TaskTimer::new(
                (ctx.index as u32).wrapping_mul(0x9E37_79B9) ^ ctx.generation as u32,
            ),
            current: None,
            kept: Vec::with_capacity(KEPT_REFS),
        })
    }

    async fn post_start(
        &self,
        _myself: ActorRef<WorkerMsg<W>>,
        state: &mut WorkerState<W>,
    ) -> Result<(), ActorProcessingErr> {
        // Tasks may have queued while no incarnation was running.
        let _ = state.shared.pull(&state.slot, &state.inc);
        Ok(())
    }

    // Not an `async fn`: its future would hold the message twice (as argument and as local)
    // and ractor copies that future several times per message. The message is taken here,
    // before the future is made (ractor awaits it at once), so the future holds only the
    // state's reference; the task waits in the state.
    #[cfg(not(feature = "async-trait"))]
    fn handle(
        &self,
        _myself: ActorRef<WorkerMsg<W>>,
        msg: WorkerMsg<W>,
        state: &mut WorkerState<W>,
    ) -> impl std::future::Future<Output = Result<(), ActorProcessingErr>> + Send {
        let run = state.take(msg);
        state.serve(run)
    }

    #[cfg(feature = "async-trait")]
    async fn handle(
        &self,
        _myself: ActorRef<WorkerMsg<W>>,
        msg: WorkerMsg<W>,
        state: &mut WorkerState<W>,
    ) -> Result<(), ActorProcessingErr> {
        let run = state.take(msg);
        state.serve(run).await
    }
}

impl<W: Worker> WorkerState<W> {
    /// Takes a message: a task waits in [`current`](Self::current) (`true`: run it), a ping is
    /// answered at once.
    fn take(&mut self, msg: WorkerMsg<W>) -> bool {
        match msg {
            WorkerMsg::Run(env) => {
                self.current = Some(env);
                true
            }
            WorkerMsg::Ping(reply) => {
                let _ = reply.send(());
                false
            }
        }
    }

    /// Runs the task taken (if `run`), then releases its place and pulls the next queued task.
    async fn serve(&mut self, run: bool) -> Result<(), ActorProcessingErr> {
        if !run {
            return Ok(());
        }
        // The task's own work is one awaited future, and the instrumented one is boxed (a
        // pointer), so that this future stays small.
        let outcome = if self.span.is_disabled() {
            self.run().await
        } else {
            self.run_in_span().await
        };
        let left = self.inc.release();
        self.shared.task_finished();
        // Takes the next queued task, unless it is about to fail (it overran a timeout and is
        // marked crashed), being removed, or not eligible (weight 0).
        let pulled = self.shared.pull(&self.slot, &self.inc);
        if left == 0 && !pulled {
            self.timer.waits();
        }
        outcome
    }

    /// [`run`](Self::run) inside the worker's span, boxed: the span's bookkeeping is paid for
    /// only while a subscriber records it.
    fn run_in_span(
        &mut self,
    ) -> std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<(), ActorProcessingErr>> + Send + '_>,
    > {
        let span = self.span.clone();
        Box::pin(self.run().instrument(span))
    }

    /// Runs the task in [`current`](Self::current) and answers its caller.
    async fn run(&mut self) -> Result<(), ActorProcessingErr> {
        let Some(env) = self.current.as_mut() else {
            return Ok(());
        };
        let deadline = env.deadline;
        let started = self.timer.start(deadline.is_some());
        if deadline.zip(started).is_some_and(|(d, now)| now >= d) {
            // Its caller has already been told it timed out: don't run it.
            answer(&mut self.current, Err(TaskError::TimedOut));
            return Ok(());
        }
        let Some(task) = env.start() else {
            self.current = None;
            return Ok(()); // already started elsewhere: nothing to run
        };
        // With `metrics`, every task is timed (see `timing`).
        #[cfg(feature = "metrics")]
        if let Some(started) = started {
            self.shared
                .metrics
                .waited(started.saturating_duration_since(env.queued_at));
        }
        // From here, if this incarnation dies (panic, kill), this future is dropped mid-task:
        // `crash` marks the incarnation crashed; the envelope, left in `current`, is dropped
        // with the state afterwards, and answers `Crashed` or, with a retry policy, sends a
        // copy of the task to another worker, which the mark keeps from coming back here.
        let crash = CrashMark(&self.inc);
        let result = match deadline {
            None => self.worker.handle(task).await,
            Some(d) => {
                // Boxed: the timer is only paid for by tasks with a deadline, and the future of
                // every other task stays small (ractor moves it while polling).
                let bounded =
                    tokio::time::timeout_at(d + self.shared.grace, self.worker.handle(task));
                // A handler that never yields never lets the timer fire: the pool finds it by
                // this mark instead (see `PoolState::check_overruns`).
                self.shared.task_started(&self.inc, d);
                let result = Box::pin(bounded).await;
                self.shared.task_ended(&self.inc);
                match result {
                    Ok(result) => result,
                    Err(_) => {
                        answer(&mut self.current, Err(TaskError::TimedOut));
                        return Err(format!(
                            "worker {} overran a task's timeout by more than the grace period ({:?}); restarting it",
                            self.slot.index, self.shared.grace
                        )
                        .into());
                    }
                }
            }
        };
        // Counted per worker only (summed on read): no line shared with other workers.
        let tally = &self.slot.tally;
        if let Some(started) = started {
            let took = self.timer.end(started);
            self.shared.metrics.finished(result.is_ok(), took);
            let busy = took.as_nanos().min(u128::from(u64::MAX)) as u64;
            tally.busy_nanos.fetch_add(busy, Ordering::Relaxed);
            tally.timed.fetch_add(1, Ordering::Relaxed);
        }
        let result = match result {
            Ok(output) => {
                tally.completed.fetch_add(1, Ordering::Relaxed);
                Ok(output)
            }
            Err(error) => {
                tally.failed.fetch_add(1, Ordering::Relaxed);
                Err(TaskError::Failed(error))
            }
        };
        if let Some(env) = self.current.take() {
            self.kept.extend(env.answer_keeping_pool(result));
            if self.kept.len() >= KEPT_REFS {
                self.kept.clear();
            }
        }
        std::mem::forget(crash);
        Ok(())
    }
}

/// Answers the caller of the current task (taken out of `current`).
fn answer<W: Worker>(current: &mut Option<Envelope<W>>, answer: Answer<W>) {
    if let Some(env) = current.take() {
        env.answer(answer);
    }
}

/// Marks an incarnation crashed when dropped: held while a task runs, forgotten once it has
/// been answered. Left to drop when the task's future dies mid-run (a panic, a kill) or the
/// task overran its timeout (the incarnation fails next).
struct CrashMark<'a, W: Worker>(&'a Incarnation<W>);

impl<W: Worker> Drop for CrashMark<'_, W> {
    fn drop(&mut self) {
        self.0.crashed.store(true, Ordering::Release);
    }
}
