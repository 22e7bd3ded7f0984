//! What the pool's handles, workers and control actor share: the worker slots, the task queue,
//! the counters, and the dispatch algorithm.
//!
//! Dispatch runs on the caller's side: a task is routed over the roster of slots (a worker's
//! counters are read only when the strategy asks for that worker) and sent straight to the
//! chosen worker's mailbox (one mailbox hop), without awaiting anything unless the queue is full
//! and the caller waits for room. A worker takes at most `limit` tasks at once: a slot is
//! *reserved* (in-flight +1, compare-and-swap against the limit) before a task is sent. When no worker can take a task it waits in the bounded queue; a worker that
//! finishes a task pulls the next one. Both sides re-check after they change anything (caller:
//! push, then try to reserve; worker: release, then look at the queue), so no task is left in
//! the queue while a worker sits idle. A queued task goes only to a worker the routing holds
//! eligible (a worker of weight 0 never takes one).
//!
//! The pool's end is one step, [`Shared::close`]: under the queue's lock the phase becomes
//! `Stopped` and the queue is emptied (its tasks answer `Stopped`); every push checks the phase
//! under the same lock, so nothing enters the queue afterwards, and every submit answers
//! `Stopped` at once.
//!
//! In-flight counts belong to an *incarnation*: a restarted worker registers a fresh
//! [`Incarnation`] in its slot, so the tasks of a crashed one never count against the new one.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use arc_swap::ArcSwap;
use ractor::{ActorRef, MessagingErr};
use tokio::sync::{oneshot, Notify};
use tokio::time::Instant;

use super::queue::{Overflow, Priority, Push, TaskQueue};
use super::strategy::{Routing, Target, WorkerView, WorkerViews};
use super::TaskError;
use crate::worker::Worker;

pub(crate) type Answer<W> = Result<<W as Worker>::Output, TaskError<<W as Worker>::Error>>;

/// One task on its way, and the guarantee that its caller gets exactly one answer.
///
/// The envelope owns the task until a worker starts it, so when it is dropped unanswered it
/// knows what happened and answers for itself:
/// * never started (dropped in the queue or in the mailbox of a worker that ended): sent again
///   while the pool runs, `Stopped` once it has stopped;
/// * started (its worker died running it): with a retry policy and attempts left, a copy taken
///   before it ran is sent again; otherwise `Crashed`.
pub(crate) struct Envelope<W: Worker> {
    /// The task until a worker starts it; from then on, the copy kept for a retry after a
    /// crash (if the pool retries crashed tasks and attempts are left).
    task: Option<W::Task>,
    /// The caller's answer channel (none for `cast`).
    tx: Option<oneshot::Sender<Answer<W>>>,
    pub(crate) deadline: Option<Instant>,
    pub(crate) key: Option<u64>,
    /// The pool; `None` only once answered through [`answer_keeping_pool`](Self::answer_keeping_pool).
    shared: Option<Arc<Shared<W>>>,
    /// Times it may still be retried after a crash.
    attempts_left: u32,
    pub(crate) priority: Priority,
    /// A worker has started it.
    started: bool,
    answered: bool,
    /// When it was submitted (for the queue-wait histogram).
    #[cfg(feature = "metrics")]
    pub(crate) queued_at: Instant,
}

impl<W: Worker> Envelope<W> {
    pub(crate) fn new(
        task: W::Task,
        tx: Option<oneshot::Sender<Answer<W>>>,
        deadline: Option<Instant>,
        priority: Priority,
        key: Option<u64>,
        shared: Arc<Shared<W>>,
    ) -> Self {
        Envelope {
            task: Some(task),
            tx,
            deadline,
            key,
            attempts_left: shared.retry.as_ref().map_or(0, |r| r.attempts),
            shared: Some(shared),
            priority,
            started: false,
            answered: false,
            #[cfg(feature = "metrics")]
            queued_at: Instant::now(),
        }
    }

    /// A worker starts the task: hands it over, keeping a copy if a crash may retry it.
    pub(crate) fn start(&mut self) -> Option<W::Task> {
        if self.started {
            return None;
        }
        let task = self.task.take()?;
        self.started = true;
        if let Some(retry) = self
            .shared
            .as_ref()
            .and_then(|s| s.retry.as_ref())
            .filter(|_| self.attempts_left > 0)
        {
            self.task = Some((retry.copy)(&task));
        }
        Some(task)
    }

    /// Answers the caller (if it waits).
    pub(crate) fn answer(mut self, answer: Answer<W>) {
        self.answered = true;
        if let Some(tx) = self.tx.take() {
            let _ = tx.send(answer);
        }
    }

    /// Answers the caller (if it waits) and hands back the envelope's reference to the pool
    /// instead of dropping it: a worker keeps these and lets go of many at once, so the pool's
    /// reference count (taken by the submitter of every task) does not move between cores
    /// with every task.
    pub(crate) fn answer_keeping_pool(mut self, answer: Answer<W>) -> Option<Arc<Shared<W>>> {
        self.answered = true;
        if let Some(tx) = self.tx.take() {
            let _ = tx.send(answer);
        }
        self.shared.take()
    }

    /// Answers the caller with an error.
    pub(crate) fn fail(self, error: TaskError<W::Error>) {
        self.answer(Err(error));
    }

    /// Drops a task its caller was refused (the caller returns the error itself): it must
    /// not run, nor answer a second time.
    fn refuse(mut self) {
        self.answered = true;
    }

    /// The same task again, for the same caller.
    fn again(&mut self, task: W::Task, attempts_left: u32) -> Envelope<W> {
        Envelope {
            task: Some(task),
            tx: self.tx.take(),
            deadline: self.deadline,
            key: self.key,
            attempts_left,
            shared: self.shared.clone(),
            priority: self.priority,
            started: false,
            answered: false,
            #[cfg(feature = "metrics")]
            queued_at: self.queued_at,
        }
    }
}

impl<W: Worker> Drop for Envelope<W> {
    fn drop(&mut self) {
        if self.answered {
            return;
        }
        let Some(shared) = self.shared.clone() else {
            return; // answered (it only loses its pool then)
        };
        // An accepted task still runs while the pool drains; only a stopped pool refuses it.
        let running = shared.phase() != Phase::Stopped;
        if let Some(task) = self.task.take_if(|_| !self.started) {
            // Never started: safe to run elsewhere.
            if running {
                let env = self.again(task, self.attempts_left);
                shared.counters.redispatched.fetch_add(1, Ordering::Relaxed);
                shared.redispatch(env);
            } else if let Some(tx) = self.tx.take() {
                let _ = tx.send(Err(TaskError::Stopped));
            }
            return;
        }
        // Started and unanswered: its worker died running it (and has marked its incarnation
        // crashed, so the retry below goes elsewhere).
        if let (true, Some(copy)) = (running, self.task.take()) {
            let env = self.again(copy, self.attempts_left.saturating_sub(1));
            shared.counters.retried.fetch_add(1, Ordering::Relaxed);
            shared.redispatch(env);
            return;
        }
        shared.counters.crashed.fetch_add(1, Ordering::Relaxed);
        shared.metrics.crashed();
        if let Some(tx) = self.tx.take() {
            let _ = tx.send(Err(TaskError::Crashed));
        }
    }
}

/// The crashed-task policy: how many more times, and how to copy a task.
pub(crate) struct RetryPolicy<W: Worker> {
    pub(crate) attempts: u32,
    pub(crate) copy: fn(&W::Task) -> W::Task,
}

impl<W: Worker> Clone for RetryPolicy<W> {
    fn clone(&self) -> Self {
        RetryPolicy {
            attempts: self.attempts,
            copy: self.copy,
        }
    }
}

/// What a worker actor takes.
pub(crate) enum WorkerMsg<W: Worker> {
    Run(Envelope<W>),
    /// A health check: answered as soon as the worker gets to it.
    Ping(ractor::RpcReplyPort<()>),
}

#[cfg(feature = "cluster")]
impl<W: Worker> ractor::Message for WorkerMsg<W> {}

/// One incarnation of a worker: its mailbox and its tasks in flight.
pub(crate) struct Incarnation<W: Worker> {
    pub(crate) actor: ActorRef<WorkerMsg<W>>,
    pub(crate) in_flight: AtomicUsize,
    /// Set when a task crashed it, before its actor is seen as stopped, or when it was found
    /// stuck: out of rotation from then on.
    pub(crate) crashed: AtomicBool,
    /// While it runs a task with a deadline: when that task is past its deadline plus the
    /// grace period (nanoseconds since the pool's epoch); 0 otherwise.
    overrun_at: AtomicU64,
}

impl<W: Worker> Incarnation<W> {
    /// In-flight +1 if below `limit`.
    ///
    /// Sequentially consistent, as [`release`](Self::release) and the queue's length are: a
    /// submitter that queued a task and then finds every worker full, and a worker that frees
    /// a place and then finds the queue empty, cannot both miss the other (see
    /// [`Shared::pull`]).
    pub(crate) fn try_reserve(&self, limit: usize) -> bool {
        self.in_flight
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
                (n < limit).then_some(n + 1)
            })
            .is_ok()
    }

    /// In-flight -1; returns how many are left in flight (reserved and not yet finished).
    pub(crate) fn release(&self) -> usize {
        // Every release follows its reservation; should one ever not, stay at zero.
        match self.in_flight.fetch_sub(1, Ordering::SeqCst) {
            0 => {
                self.in_flight.fetch_add(1, Ordering::SeqCst);
                0
            }
            before => before - 1,
        }
    }

    pub(crate) fn new(actor: ActorRef<WorkerMsg<W>>) -> Self {
        Incarnation {
            actor,
            in_flight: AtomicUsize::new(0),
            crashed: AtomicBool::new(false),
            overrun_at: AtomicU64::new(0),
        }
    }

    /// Takes it out of rotation for good (it crashed, died, or is stuck).
    pub(crate) fn retire(&self) {
        self.crashed.store(true, Ordering::Release);
    }

    pub(crate) fn alive(&self) -> bool {
        !self.crashed.load(Ordering::Acquire)
            && self.actor.get_status() < ractor::ActorStatus::Stopping
    }
}

/// A worker's place in the pool (stable across its restarts).
pub(crate) struct Slot {
    pub(crate) index: usize,
    pub(crate) weight: AtomicU32,
    /// Being removed by a shrink: takes no new task.
    pub(crate) retiring: AtomicBool,
    /// Bumped by the worker after every task; apart from the fields above, which submitters
    /// read on every routed task.
    pub(crate) tally: CacheAligned<Tally>,
}

/// What a slot's worker counts after each task.
#[derive(Default)]
pub(crate) struct Tally {
    pub(crate) completed: AtomicU64,
    pub(crate) failed: AtomicU64,
    /// Time in the handler of the tasks timed (see `timing`), and how many those were.
    pub(crate) busy_nanos: AtomicU64,
    pub(crate) timed: AtomicU64,
}

/// Keeps what it holds on cache lines of its own (128 bytes: a pair of lines, as adjacent-line
/// prefetchers fetch them together), so that a counter one thread bumps on every task does
/// not evict the fields next to it that other threads read on every task (false sharing).
#[derive(Default)]
#[repr(align(128))]
pub(crate) struct CacheAligned<T>(pub(crate) T);

impl<T> std::ops::Deref for CacheAligned<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.0
    }
}

impl Slot {
    /// This slot as a routing strategy sees it, with `inc` running in it (if any).
    fn view<W: Worker>(&self, inc: Option<&Incarnation<W>>, limit: usize) -> WorkerView {
        let (live, in_flight) = match inc {
            Some(inc) => (
                inc.alive() && !self.retiring.load(Ordering::Acquire),
                inc.in_flight.load(Ordering::Acquire),
            ),
            None => (false, 0),
        };
        WorkerView {
            live,
            in_flight,
            weight: self.weight.load(Ordering::Relaxed),
            limit,
        }
    }

    pub(crate) fn new(index: usize, weight: u32) -> Self {
        Slot {
            index,
            weight: AtomicU32::new(weight),
            retiring: AtomicBool::new(false),
            tally: CacheAligned::default(),
        }
    }
}

/// A slot and the incarnation running in it, as published in the pool's roster.
pub(crate) struct Seat<W: Worker> {
    pub(crate) slot: Arc<Slot>,
    /// None until the slot's first incarnation has started.
    pub(crate) inc: Option<Arc<Incarnation<W>>>,
}

impl<W: Worker> Clone for Seat<W> {
    fn clone(&self) -> Self {
        Seat {
            slot: self.slot.clone(),
            inc: self.inc.clone(),
        }
    }
}

impl<W: Worker> Seat<W> {
    pub(crate) fn in_flight(&self) -> usize {
        self.inc
            .as_ref()
            .map_or(0, |i| i.in_flight.load(Ordering::Acquire))
    }

    fn view(&self, limit: usize) -> WorkerView {
        self.slot.view(self.inc.as_deref(), limit)
    }
}

/// What became of a task handed to [`Shared::place`].
pub(crate) enum Placed<W: Worker> {
    /// With a worker, or queued.
    Done,
    /// Refused: it will not run (the caller answers itself with the error).
    Refused(TaskError<W::Error>),
    /// The queue is full and the caller may wait for room: here it is back.
    Full(Envelope<W>),
}

/// A counter that many threads bump and few read: each thread bumps a stripe of its own (one
/// cache line each, picked once per thread), and a read sums the stripes. Submitters on
/// different cores then never pass a line back and forth to count their tasks.
#[derive(Default)]
pub(crate) struct Striped {
    stripes: [CacheAligned<AtomicU64>; STRIPES],
}

/// Stripes per [`Striped`] counter: more than the cores of most machines that run a pool's
/// submitters, and threads beyond that share them round-robin.
const STRIPES: usize = 8;

thread_local! {
    /// This thread's stripe.
    static STRIPE: usize = {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        NEXT.fetch_add(1, Ordering::Relaxed) % STRIPES
    };
}

impl Striped {
    pub(crate) fn add(&self, n: u64) {
        let stripe = STRIPE.try_with(|s| *s).unwrap_or(0);
        self.stripes[stripe].fetch_add(n, Ordering::Relaxed);
    }

    pub(crate) fn sum(&self) -> u64 {
        self.stripes
            .iter()
            .map(|s| s.load(Ordering::Relaxed))
            .fold(0, u64::wrapping_add)
    }
}

/// Where the pool is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum Phase {
    Running = 0,
    Draining = 1,
    Stopped = 2,
}

/// Pool-wide counters. Aligned like [`CacheAligned`] (through `submitted`), so they share no
/// cache line with the fields of [`Shared`] that submitters read on every task, nor with the
/// reference count of the `Arc` that holds it.
#[derive(Default)]
pub(crate) struct Counters {
    /// Bumped by submitters, each thread on a line of its own; the others mostly by workers,
    /// off the common path (tasks completed and failed are counted per worker, in each slot's
    /// [`Tally`]).
    pub(crate) submitted: Striped,
    /// Tasks accepted, counted on one line: only by pools with a [`Resizer`](super::Resizer),
    /// which checks every `messages_per_resize` tasks.
    pub(crate) toward_resize: CacheAligned<AtomicU64>,
    /// Tasks completed and failed on slots a shrink has removed.
    pub(crate) removed_completed: AtomicU64,
    pub(crate) removed_failed: AtomicU64,
    pub(crate) crashed: AtomicU64,
    pub(crate) timed_out: AtomicU64,
    pub(crate) rejected: AtomicU64,
    pub(crate) dropped: AtomicU64,
    pub(crate) restarts: AtomicU64,
    pub(crate) retried: AtomicU64,
    pub(crate) redispatched: AtomicU64,
    pub(crate) stuck: AtomicU64,
}

pub(crate) struct Shared<W: Worker> {
    /// The slots in index order with their running incarnations: replaced whole when a worker
    /// (re)starts or the pool is resized, read with one lock-free load per routed task.
    pub(crate) roster: ArcSwap<Vec<Seat<W>>>,
    pub(crate) routing: Arc<dyn Routing>,
    /// Bumped after any weight changes and when slots come or go (see
    /// [`WorkerViews::weights_version`]).
    weights_version: AtomicU64,
    queue: Mutex<TaskQueue<Envelope<W>>>,
    /// The queue's length, stored under its lock at every change: workers finishing a task
    /// look here before taking the lock (almost always to find it empty).
    queued: AtomicUsize,
    /// Callers of `wait_idle` (drains, shrinks) waiting now: workers skip the `progress`
    /// wake-up when there are none.
    pub(crate) idle_waiters: AtomicUsize,
    /// A queued task left the queue (room for a waiting submitter).
    pub(crate) space: Notify,
    /// A task finished (for drains and shrinks waiting for work to finish).
    pub(crate) progress: Notify,
    phase: AtomicU8,
    pub(crate) counters: Counters,
    pub(crate) limit: usize,
    pub(crate) default_timeout: Option<Duration>,
    pub(crate) grace: Duration,
    pub(crate) fail_fast_without_workers: bool,
    pub(crate) retry: Option<RetryPolicy<W>>,
    pub(crate) resizer: Option<super::Resizer>,
    /// An autoscaling check is under way (at most one at a time).
    pub(crate) resizing: AtomicBool,
    /// The origin of the incarnations' overrun times.
    epoch: Instant,
    /// Its metrics' handles (nothing without the `metrics` feature).
    pub(crate) metrics: crate::observe::metrics::PoolMetrics,
}

/// The roster as a routing strategy sees it: a worker's counters are read when the strategy
/// asks for that worker (nothing is collected or allocated per routed task).
struct RosterViews<'r, W: Worker> {
    seats: &'r [Seat<W>],
    limit: usize,
    weights: &'r AtomicU64,
}

impl<W: Worker> WorkerViews for RosterViews<'_, W> {
    fn len(&self) -> usize {
        self.seats.len()
    }

    fn get(&self, index: usize) -> WorkerView {
        self.seats
            .get(index)
            .map_or(WorkerView::DEAD, |s| s.view(self.limit))
    }

    fn weights_version(&self) -> u64 {
        self.weights.load(Ordering::Acquire)
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl<W: Worker> Shared<W> {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        size: usize,
        weights: &[u32],
        routing: Arc<dyn Routing>,
        capacity: usize,
        overflow: Overflow,
        limit: usize,
        default_timeout: Option<Duration>,
        grace: Duration,
        fail_fast_without_workers: bool,
        retry: Option<RetryPolicy<W>>,
        resizer: Option<super::Resizer>,
        label: &str,
    ) -> Self {
        let roster: Vec<_> = (0..size)
            .map(|i| Seat {
                slot: Arc::new(Slot::new(i, weights.get(i).copied().unwrap_or(1))),
                inc: None,
            })
            .collect();
        Shared {
            roster: ArcSwap::from_pointee(roster),
            routing,
            weights_version: AtomicU64::new(0),
            queue: Mutex::new(TaskQueue::new(capacity, overflow)),
            queued: AtomicUsize::new(0),
            idle_waiters: AtomicUsize::new(0),
            space: Notify::new(),
            progress: Notify::new(),
            phase: AtomicU8::new(Phase::Running as u8),
            counters: Counters::default(),
            limit,
            default_timeout,
            grace,
            fail_fast_without_workers,
            retry,
            resizer,
            resizing: AtomicBool::new(false),
            epoch: Instant::now(),
            metrics: crate::observe::metrics::PoolMetrics::new(label),
        }
    }

    pub(crate) fn phase(&self) -> Phase {
        match self.phase.load(Ordering::Acquire) {
            0 => Phase::Running,
            1 => Phase::Draining,
            _ => Phase::Stopped,
        }
    }

    /// Stops taking new tasks (a drain); queued and running ones go on.
    pub(crate) fn start_draining(&self) {
        let _ = self.phase.compare_exchange(
            Phase::Running as u8,
            Phase::Draining as u8,
            Ordering::AcqRel,
            Ordering::Acquire,
        );
        self.space.notify_waiters();
    }

    /// The pool has ended, or is ending: from now on every submit answers `Stopped` and no
    /// task enters the queue, and every queued task is answered `Stopped` now. The phase
    /// changes under the queue's lock, and every push checks it there, so no task can slip
    /// into the queue after it has been emptied for the last time. Idempotent.
    pub(crate) fn close(&self) {
        let tasks = self.with_queue(|q| {
            self.phase.store(Phase::Stopped as u8, Ordering::Release);
            q.drain_all()
        });
        for env in tasks {
            env.fail(TaskError::Stopped);
        }
        self.space.notify_waiters();
        self.progress.notify_waiters();
    }

    /// Queues `env`, unless the pool has stopped (then it comes back as `Err`).
    fn enqueue(&self, env: Envelope<W>) -> Result<Push<Envelope<W>>, Envelope<W>> {
        self.with_queue(|q| {
            if self.phase() == Phase::Stopped {
                return Err(env);
            }
            let priority = env.priority;
            Ok(q.push(env, priority))
        })
    }

    /// Marks `inc` as running a task with this deadline (from the start of the task to its
    /// end), so that a worker that overruns it without yielding can be found.
    pub(crate) fn task_started(&self, inc: &Incarnation<W>, deadline: Instant) {
        let at = (deadline + self.grace).saturating_duration_since(self.epoch);
        let nanos = u64::try_from(at.as_nanos()).unwrap_or(u64::MAX).max(1);
        inc.overrun_at.store(nanos, Ordering::Release);
    }

    /// The task with a deadline that `inc` was running has ended.
    pub(crate) fn task_ended(&self, inc: &Incarnation<W>) {
        inc.overrun_at.store(0, Ordering::Release);
    }

    /// The live incarnations still running a task at `now` that is past its deadline plus the
    /// grace period: their handler has not yielded since (a yielding one fails itself then).
    pub(crate) fn overrunning(&self, now: Instant) -> Vec<(usize, Arc<Incarnation<W>>)> {
        let now =
            u64::try_from(now.saturating_duration_since(self.epoch).as_nanos()).unwrap_or(u64::MAX);
        self.roster
            .load()
            .iter()
            .filter_map(|seat| {
                let inc = seat.inc.as_ref()?;
                let at = inc.overrun_at.load(Ordering::Acquire);
                (at != 0 && at <= now && inc.alive()).then(|| (seat.slot.index, inc.clone()))
            })
            .collect()
    }

    pub(crate) fn slot(&self, index: usize) -> Option<Arc<Slot>> {
        self.roster.load().get(index).map(|s| s.slot.clone())
    }

    /// Publishes `inc` as the incarnation running in `slot` (unless a shrink removed it).
    pub(crate) fn seat(&self, slot: &Arc<Slot>, inc: Arc<Incarnation<W>>) {
        self.roster.rcu(|roster| {
            let mut roster = Vec::clone(roster);
            if let Some(seat) = roster.iter_mut().find(|s| Arc::ptr_eq(&s.slot, slot)) {
                seat.inc = Some(inc.clone());
            }
            roster
        });
    }

    /// Adds a slot at the end (a grow).
    pub(crate) fn add_slot(&self, slot: Arc<Slot>) {
        self.roster.rcu(|roster| {
            let mut roster = Vec::clone(roster);
            roster.push(Seat {
                slot: slot.clone(),
                inc: None,
            });
            roster
        });
        self.weights_changed();
    }

    /// Sets the weight of the worker at `index` (`false`: no such worker).
    pub(crate) fn set_weight(&self, index: usize, weight: u32) -> bool {
        let Some(slot) = self.slot(index) else {
            return false;
        };
        slot.weight.store(weight, Ordering::Relaxed);
        self.weights_changed();
        // Queued tasks may have been waiting for an eligible worker.
        self.kick();
        true
    }

    fn weights_changed(&self) {
        self.weights_version.fetch_add(1, Ordering::AcqRel);
    }

    /// Keeps the first `size` slots (a shrink, once the others have stopped); the pool's
    /// totals keep what the removed ones did.
    pub(crate) fn truncate_slots(&self, size: usize) {
        let before = self
            .roster
            .rcu(|roster| roster.iter().take(size).cloned().collect::<Vec<_>>());
        self.weights_changed();
        for seat in before.iter().skip(size) {
            let tally = &seat.slot.tally;
            self.counters
                .removed_completed
                .fetch_add(tally.completed.load(Ordering::Relaxed), Ordering::Relaxed);
            self.counters
                .removed_failed
                .fetch_add(tally.failed.load(Ordering::Relaxed), Ordering::Relaxed);
        }
    }

    /// Tasks finished with an output and with an error, over every worker the pool has had.
    pub(crate) fn finished(&self) -> (u64, u64) {
        let roster = self.roster.load();
        let sum = |f: fn(&Tally) -> &AtomicU64| -> u64 {
            roster
                .iter()
                .map(|s| f(&s.slot.tally).load(Ordering::Relaxed))
                .sum()
        };
        (
            sum(|t| &t.completed) + self.counters.removed_completed.load(Ordering::Relaxed),
            sum(|t| &t.failed) + self.counters.removed_failed.load(Ordering::Relaxed),
        )
    }

    pub(crate) fn queued(&self) -> usize {
        lock(&self.queue).len()
    }

    /// Changes the queue under its lock and publishes its new length.
    fn with_queue<R>(&self, change: impl FnOnce(&mut TaskQueue<Envelope<W>>) -> R) -> R {
        let mut q = lock(&self.queue);
        let out = change(&mut q);
        self.queued.store(q.len(), Ordering::SeqCst);
        out
    }

    /// Tells `wait_idle` callers that a task finished, if any are waiting. Called after the
    /// task's reservation is released (a sequentially consistent change, like the waiters'
    /// count and the fence in `wait_idle`), so either the waiter sees the release or this
    /// sees the waiter.
    pub(crate) fn task_finished(&self) {
        if self.idle_waiters.load(Ordering::SeqCst) > 0 {
            self.progress.notify_waiters();
        }
    }

    /// Routes and sends a task, or queues it, waiting for room in a full queue under
    /// [`Overflow::Wait`] when `wait` (false for `try_submit`). On `Err` the task was refused:
    /// it will not run, and the caller answers itself with the error.
    ///
    /// Callers on the hot path call [`place`](Self::place) first and come here only when it
    /// says `Full`, so that their own futures stay small.
    pub(crate) async fn dispatch(
        &self,
        env: Envelope<W>,
        wait: bool,
    ) -> Result<(), TaskError<W::Error>> {
        let mut env = match self.place(env, wait) {
            Placed::Done => return Ok(()),
            Placed::Refused(error) => return Err(error),
            Placed::Full(env) => env,
        };
        loop {
            // Registered before the next try, so no room made between the two is missed.
            let mut space = std::pin::pin!(self.space.notified());
            space.as_mut().enable();
            env = match self.place(env, wait) {
                Placed::Done => return Ok(()),
                Placed::Refused(error) => return Err(error),
                Placed::Full(env) => env,
            };
            space.await;
        }
    }

    /// Routes and sends a task, or queues it, without waiting: [`Placed::Full`] gives it back
    /// when the queue is full under [`Overflow::Wait`] and `wait` (the caller waits for
    /// room, see [`dispatch`](Self::dispatch)).
    pub(crate) fn place(&self, env: Envelope<W>, wait: bool) -> Placed<W> {
        if self.phase() != Phase::Running {
            return Placed::Refused(self.refused(env, TaskError::Stopped));
        }
        let env = match self.try_send(env) {
            Ok(()) => return Placed::Done,
            Err(back) => back,
        };
        // No worker can take it now: queue it.
        if self.fail_fast_without_workers && !self.any_eligible() {
            return Placed::Refused(self.refused(env, TaskError::NoWorker));
        }
        match self.enqueue(env) {
            Err(env) => Placed::Refused(self.refused(env, TaskError::Stopped)),
            Ok(Push::Queued) => {
                self.kick();
                Placed::Done
            }
            Ok(Push::Displaced(old)) => {
                self.counters.dropped.fetch_add(1, Ordering::Relaxed);
                self.metrics.dropped();
                old.fail(TaskError::Dropped);
                self.kick();
                Placed::Done
            }
            Ok(Push::Full(back)) => {
                let overflow = lock(&self.queue).overflow();
                if overflow == Overflow::Wait && wait {
                    return Placed::Full(back);
                }
                Placed::Refused(self.refused(back, TaskError::QueueFull))
            }
        }
    }

    /// Counts a refused task and drops it without running or answering it.
    fn refused(&self, env: Envelope<W>, error: TaskError<W::Error>) -> TaskError<W::Error> {
        self.counters.rejected.fetch_add(1, Ordering::Relaxed);
        self.metrics.rejected();
        env.refuse();
        error
    }

    /// Asks the routing for a worker that can take a task with `key` now and reserves a place
    /// on it. Routing races with other submitters: a pick whose
    /// reservation fails is retried a few times with fresh views.
    fn reserve<'r>(&self, roster: &'r [Seat<W>], key: Option<u64>) -> Option<&'r Incarnation<W>> {
        let views = RosterViews {
            seats: roster,
            limit: self.limit,
            weights: &self.weights_version,
        };
        for _ in 0..roster.len() + 2 {
            let i = match self.routing.route(&views, key) {
                Target::One(i) => i,
                Target::Unavailable => return None,
            };
            let inc = roster.get(i).and_then(|s| s.inc.as_deref());
            if let Some(inc) = inc.filter(|inc| inc.try_reserve(self.limit)) {
                return Some(inc);
            }
        }
        None
    }

    /// Tries to hand `env` to a worker now; gives it back if none can take it.
    fn try_send(&self, mut env: Envelope<W>) -> Result<(), Envelope<W>> {
        let roster = self.roster.load();
        while let Some(inc) = self.reserve(&roster, env.key) {
            match inc.actor.send_message(WorkerMsg::Run(env)) {
                Ok(()) => return Ok(()),
                Err(MessagingErr::SendErr(WorkerMsg::Run(back))) => {
                    // Its mailbox is closed: it has ended. Never route there again.
                    inc.retire();
                    inc.release();
                    env = back;
                }
                Err(_) => {
                    // Not a failure ractor reports for a local send; had the message been
                    // dropped, its envelope has answered or re-dispatched itself.
                    inc.release();
                    return Ok(());
                }
            }
        }
        Err(env)
    }

    /// Sends a task again after its worker ended (no waiting: called from a drop). A full
    /// queue fails it with `Dropped`; a stopped pool with `Stopped`.
    pub(crate) fn redispatch(&self, env: Envelope<W>) {
        let env = match self.try_send(env) {
            Ok(()) => return,
            Err(env) => env,
        };
        match self.enqueue(env) {
            Err(env) => env.fail(TaskError::Stopped),
            Ok(Push::Queued) => self.kick(),
            Ok(Push::Displaced(old)) => {
                self.counters.dropped.fetch_add(1, Ordering::Relaxed);
                self.metrics.dropped();
                old.fail(TaskError::Dropped);
                self.kick();
            }
            Ok(Push::Full(env)) => {
                self.counters.dropped.fetch_add(1, Ordering::Relaxed);
                self.metrics.dropped();
                env.fail(TaskError::Dropped);
            }
        }
    }

    /// Whether some worker could ever be given a task: live and eligible for the routing
    /// (a worker of weight 0 is not, under [`Weighted`](super::Weighted)).
    fn any_eligible(&self) -> bool {
        self.roster
            .load()
            .iter()
            .any(|s| self.routing.eligible(&s.view(self.limit)))
    }

    /// Hands queued tasks to every worker that may take one (see [`pull`](Self::pull)):
    /// called after a task was queued (by a submitter or a re-dispatch) and when a weight
    /// changes.
    pub(crate) fn kick(&self) {
        let roster = self.roster.load();
        for seat in roster.iter() {
            if let Some(inc) = &seat.inc {
                self.pull(&seat.slot, inc);
            }
        }
    }

    /// Moves queued tasks, head first, to `inc` (running in `slot`) while it has room and the
    /// routing holds it eligible ([`Routing::eligible`]: live, not being removed, and for
    /// [`Weighted`](super::Weighted) a weight above zero), so a worker of weight 0 never
    /// takes a queued task. Called by a worker after each task and when it starts: the
    /// worker that frees up takes the next task itself (work-pulling), no other is woken.
    /// Returns whether it handed `inc` a task.
    ///
    /// A submitter that finds every worker full queues its task (the queue's length is stored
    /// sequentially consistent) and then pulls for every worker (reading each one's in-flight
    /// count); a worker releases its place (a sequentially consistent change) and then reads
    /// the queue's length. In one total order of these operations, one of the two sees the
    /// other: no task stays queued while a worker that could take it sits idle.
    pub(crate) fn pull(&self, slot: &Slot, inc: &Incarnation<W>) -> bool {
        let mut handed = false;
        loop {
            if self.queued.load(Ordering::SeqCst) == 0 {
                return handed;
            }
            // A full worker is passed at the cost of one read (a submitter's `kick` asks every
            // worker, and under load almost all are full).
            if inc.in_flight.load(Ordering::SeqCst) >= self.limit
                || !self.routing.eligible(&slot.view(Some(inc), self.limit))
                || !inc.try_reserve(self.limit)
            {
                return handed;
            }
            let next = self.with_queue(|q| q.pop());
            let Some(env) = next else {
                inc.release();
                continue; // re-check: a submitter may have queued after our look
            };
            self.space.notify_one();
            if let Err(MessagingErr::SendErr(WorkerMsg::Run(env))) =
                inc.actor.send_message(WorkerMsg::Run(env))
            {
                // It has just ended: the task goes back to the head of the queue, for
                // another worker (or `Stopped`, if the pool is closing).
                inc.retire();
                inc.release();
                let back = self.with_queue(|q| {
                    if self.phase() == Phase::Stopped {
                        return Err(env);
                    }
                    let priority = env.priority;
                    q.unpop(env, priority);
                    Ok(())
                });
                match back {
                    Err(env) => env.fail(TaskError::Stopped),
                    // Another worker may be free and idle: hand it the task.
                    Ok(()) => self.kick(),
                }
                return handed;
            }
            handed = true;
        }
    }

    /// Whether nothing is queued or in flight (on the slots from `from` on, for shrinking).
    pub(crate) fn is_idle(&self, from: usize) -> bool {
        let roster = self.roster.load();
        roster.iter().skip(from).all(|s| s.in_flight() == 0)
            && (from > 0 || lock(&self.queue).is_empty())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_striped_counter_sums_what_every_thread_added() {
        let counter = Arc::new(Striped::default());
        let threads: Vec<_> = (0..12)
            .map(|t| {
                let counter = counter.clone();
                std::thread::spawn(move || {
                    for _ in 0..1000 {
                        counter.add(t + 1);
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().expect("a counting thread");
        }
        assert_eq!(counter.sum(), 1000 * (1..=12).sum::<u64>());
    }
}
