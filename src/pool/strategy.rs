//! Routing: which worker gets the next task. Pure; no actors.
//!
//! A strategy sees the workers ([`WorkerViews`], each one a [`WorkerView`]: live or not, tasks
//! in flight, weight, concurrency limit) and picks one, or none when no worker can take a task
//! now. A pool reads a worker's counters only when its strategy asks for that worker, so a
//! rotation reads one worker per task and power-of-two reads two, however many there are.
//! Strategies take `&self` and keep their small state in atomics or a mutex, so the same value
//! can route on the caller's side of a pool (no extra mailbox hop) or inside an actor.
//!
//! | strategy | picks |
//! |---|---|
//! | [`RoundRobin`] | the next eligible worker in rotation: over k·n tasks each of n gets k |
//! | [`LeastBusy`] | the fewest tasks in flight; ties broken by rotation |
//! | [`Weighted`] | smooth weighted round-robin (nginx): each worker exactly its weight per Σw picks, spread evenly |
//! | [`PowerOfTwo`] | the less busy of two workers sampled at random (seedable) |
//! | [`KeyHash`] | the same key → the same worker while the set is unchanged (rendezvous hashing) |
//!
//! Sending one task to every worker is not a routing choice but a per-task option of a pool
//! (like Akka's `Broadcast(msg)` envelope), since it needs a task that can be cloned.
//! A worker is *eligible* when it is live, below its concurrency limit, and (for weighted
//! routing) has a weight above zero.

use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

/// One worker as a strategy sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WorkerView {
    /// It has a live incarnation that can take tasks.
    pub live: bool,
    /// Tasks dispatched to it and not yet finished.
    pub in_flight: usize,
    /// Its weight for [`Weighted`] routing (0 = never picked).
    pub weight: u32,
    /// At most this many tasks in flight at once.
    pub limit: usize,
}

impl WorkerView {
    /// A live, idle worker with weight 1 and no concurrency limit.
    pub const IDLE: WorkerView = WorkerView {
        live: true,
        in_flight: 0,
        weight: 1,
        limit: usize::MAX,
    };

    /// A worker that is not running (no task goes to it).
    pub const DEAD: WorkerView = WorkerView {
        live: false,
        in_flight: 0,
        weight: 0,
        limit: 0,
    };

    /// Whether it can take one more task now.
    pub fn can_take(&self) -> bool {
        self.live && self.in_flight < self.limit
    }
}

/// The workers a strategy picks from, by index; each is read when the strategy asks for it.
///
/// A pool hands its strategy a `WorkerViews` over its workers whose [`get`](Self::get) reads
/// that worker's counters at the time of the call: look only at the workers you need.
/// Vectors, arrays and slices of [`WorkerView`]s implement it, for tests and for strategies
/// that route inside an actor of their own.
pub trait WorkerViews {
    /// How many workers there are (live or not).
    fn len(&self) -> usize;

    /// Worker `index` (`index < len()`) as it is now; a worker out of range reads as dead.
    fn get(&self, index: usize) -> WorkerView;

    /// Whether there are no workers.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A number that changes whenever a worker's weight changes or workers come or go, so a
    /// strategy can keep what it worked out from the weights ([`Weighted`] does). By default
    /// a hash of every weight; a pool keeps a counter instead.
    fn weights_version(&self) -> u64 {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        self.len().hash(&mut h);
        for i in 0..self.len() {
            self.get(i).weight.hash(&mut h);
        }
        h.finish()
    }
}

impl WorkerViews for &[WorkerView] {
    fn len(&self) -> usize {
        <[WorkerView]>::len(self)
    }

    fn get(&self, index: usize) -> WorkerView {
        <[WorkerView]>::get(self, index)
            .copied()
            .unwrap_or(WorkerView::DEAD)
    }
}

impl WorkerViews for Vec<WorkerView> {
    fn len(&self) -> usize {
        Vec::len(self)
    }

    fn get(&self, index: usize) -> WorkerView {
        self.as_slice()
            .get(index)
            .copied()
            .unwrap_or(WorkerView::DEAD)
    }
}

impl<const N: usize> WorkerViews for [WorkerView; N] {
    fn len(&self) -> usize {
        N
    }

    fn get(&self, index: usize) -> WorkerView {
        self.as_slice()
            .get(index)
            .copied()
            .unwrap_or(WorkerView::DEAD)
    }
}

/// Where a task goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Target {
    /// To this worker.
    One(usize),
    /// Nowhere now: no worker can take it (queue it, or fail it, as the pool is configured).
    Unavailable,
}

/// A routing strategy. Implement it for a custom one.
///
/// ```
/// use ractor_otp::pool::{Routing, Target, WorkerView, WorkerViews};
///
/// /// Always the first worker that can take a task.
/// struct FirstFree;
/// impl Routing for FirstFree {
///     fn route(&self, workers: &dyn WorkerViews, _key: Option<u64>) -> Target {
///         (0..workers.len())
///             .find(|&i| workers.get(i).can_take())
///             .map_or(Target::Unavailable, Target::One)
///     }
/// }
/// assert_eq!(FirstFree.route(&[WorkerView::IDLE; 3], None), Target::One(0));
/// ```
pub trait Routing: Send + Sync + 'static {
    /// Picks the target of one task; `key` is the task's routing key, if it has one. Each
    /// [`get`](WorkerViews::get) reads a worker's counters then: look only at the workers the
    /// choice needs.
    ///
    /// A pool asks this when a task arrives. A task that finds no worker waits in the pool's
    /// queue and is taken by the next [eligible](Self::eligible) worker to have room
    /// (work-pulling), so rotation and key affinity shape only the tasks placed directly.
    fn route(&self, workers: &dyn WorkerViews, key: Option<u64>) -> Target;

    /// Whether `worker` may ever be given a task, busy or not: by default whether it is live;
    /// [`Weighted`] also needs a weight above zero. A pool gives queued tasks only to eligible
    /// workers, and one set to
    /// [`fail_fast_without_workers`](crate::pool::PoolBuilder::fail_fast_without_workers)
    /// fails a task with `NoWorker` when no worker is eligible, instead of queueing it.
    /// Override it with `route` when a strategy never picks some workers.
    fn eligible(&self, worker: &WorkerView) -> bool {
        worker.live
    }
}

/// The indices `0..n` in rotation from `start` (below `n`): `start, …, n - 1, 0, …, start - 1`,
/// without a division per step (a scan of 64 workers paid 64 of them).
fn rotation(n: usize, start: usize) -> impl Iterator<Item = usize> {
    (start..n).chain(0..start)
}

/// Scans `n` indices starting at `start` (wrapping) and returns the first `ok` one.
fn scan_from(n: usize, start: usize, mut ok: impl FnMut(usize) -> bool) -> Option<usize> {
    rotation(n, start).find(|&i| ok(i))
}

/// Exact rotation over the eligible workers.
#[derive(Debug, Default)]
pub struct RoundRobin {
    next: AtomicUsize,
}

impl RoundRobin {
    /// A rotation starting at the first worker.
    pub fn new() -> Self {
        Self::default()
    }
}

impl Routing for RoundRobin {
    fn route(&self, workers: &dyn WorkerViews, _key: Option<u64>) -> Target {
        let n = workers.len();
        if n == 0 {
            return Target::Unavailable;
        }
        let start = self.next.fetch_add(1, Ordering::Relaxed) % n;
        match scan_from(n, start, |i| workers.get(i).can_take()) {
            Some(i) => {
                if i != start {
                    // Skipped busy or dead workers: continue the rotation after the one picked.
                    self.next.store(i + 1, Ordering::Relaxed);
                }
                Target::One(i)
            }
            None => Target::Unavailable,
        }
    }
}

/// Fewest tasks in flight; ties broken by rotation, so equal loads spread round-robin.
#[derive(Debug, Default)]
pub struct LeastBusy {
    rotor: AtomicUsize,
}

impl LeastBusy {
    /// A least-busy router.
    pub fn new() -> Self {
        Self::default()
    }
}

impl Routing for LeastBusy {
    fn route(&self, workers: &dyn WorkerViews, _key: Option<u64>) -> Target {
        let n = workers.len();
        if n == 0 {
            return Target::Unavailable;
        }
        let start = self.rotor.fetch_add(1, Ordering::Relaxed) % n;
        let mut best: Option<(usize, usize)> = None;
        for i in rotation(n, start) {
            let w = workers.get(i);
            if !w.can_take() {
                continue;
            }
            if best.is_none_or(|(_, least)| w.in_flight < least) {
                best = Some((i, w.in_flight));
                if w.in_flight == 0 {
                    break; // nothing beats idle
                }
            }
        }
        match best {
            Some((i, _)) => {
                // Continue the rotation after the worker picked, so ties spread evenly.
                self.rotor.store(i + 1, Ordering::Relaxed);
                Target::One(i)
            }
            None => Target::Unavailable,
        }
    }
}

/// Smooth weighted round-robin (nginx's algorithm): in every Σw consecutive picks each worker is
/// picked exactly its weight times, spread as evenly as possible (5,1,1 → a a b a c a a).
///
/// The cycle is worked out once for the weights it sees and then followed with one atomic
/// counter (lock-free, one worker read per pick); it is worked out again when
/// [`WorkerViews::weights_version`] says a weight changed, so weights can change at run time.
/// A picked worker that cannot take a task now is passed over for the next one in the cycle.
/// A worker with weight 0 is never picked. A restarted worker keeps its weight and its place in
/// the cycle. Weights are divided by their greatest common divisor; should their sum still be
/// above 4 096, they are scaled down to it (each kept at least 1).
#[derive(Debug, Default)]
pub struct Weighted {
    /// The cycle for the weights last seen.
    cycle: arc_swap::ArcSwapOption<Cycle>,
    /// Picks made so far: the position in the cycle.
    next: AtomicUsize,
}

/// One smooth weighted round-robin cycle: worker indices, each as often as its weight.
#[derive(Debug)]
struct Cycle {
    version: u64,
    workers: usize,
    order: Vec<u32>,
}

/// The longest cycle kept (see [`Weighted`]).
const MAX_CYCLE: u64 = 4096;

impl Cycle {
    fn new(weights: &[u32], version: u64) -> Cycle {
        let gcd = weights
            .iter()
            .filter(|&&w| w > 0)
            .fold(0u32, |g, &w| gcd(g, w))
            .max(1);
        let mut weights: Vec<u64> = weights.iter().map(|&w| u64::from(w / gcd)).collect();
        let total: u64 = weights.iter().sum();
        if total > MAX_CYCLE {
            for w in weights.iter_mut().filter(|w| **w > 0) {
                *w = (*w * MAX_CYCLE / total).max(1);
            }
        }
        let total: i64 = weights.iter().sum::<u64>() as i64;
        let mut current = vec![0i64; weights.len()];
        let mut order = Vec::with_capacity(total as usize);
        for _ in 0..total {
            let mut best: Option<usize> = None;
            for (i, &w) in weights.iter().enumerate().filter(|(_, w)| **w > 0) {
                current[i] += w as i64;
                if best.is_none_or(|b| current[i] > current[b]) {
                    best = Some(i);
                }
            }
            if let Some(b) = best {
                current[b] -= total;
                order.push(b as u32);
            }
        }
        Cycle {
            version,
            workers: weights.len(),
            order,
        }
    }
}

fn gcd(a: u32, b: u32) -> u32 {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

impl Weighted {
    /// A weighted router; the weights come from the workers' views.
    pub fn new() -> Self {
        Self::default()
    }

    /// The cycle for the workers' weights now. Borrowed (an `arc_swap` guard), not cloned:
    /// submitters on several cores would otherwise pass the cycle's reference count back and
    /// forth with every pick.
    fn cycle(&self, workers: &dyn WorkerViews) -> arc_swap::Guard<Option<Arc<Cycle>>> {
        let version = workers.weights_version();
        let current = self.cycle.load();
        if current
            .as_ref()
            .is_some_and(|c| c.version == version && c.workers == workers.len())
        {
            return current;
        }
        drop(current);
        let weights: Vec<u32> = (0..workers.len()).map(|i| workers.get(i).weight).collect();
        self.cycle
            .store(Some(Arc::new(Cycle::new(&weights, version))));
        self.cycle.load()
    }
}

impl Routing for Weighted {
    fn eligible(&self, worker: &WorkerView) -> bool {
        worker.live && worker.weight > 0
    }

    fn route(&self, workers: &dyn WorkerViews, _key: Option<u64>) -> Target {
        let guard = self.cycle(workers);
        let Some(cycle) = guard.as_ref() else {
            return Target::Unavailable;
        };
        let len = cycle.order.len();
        if len == 0 {
            return Target::Unavailable;
        }
        let start = self.next.fetch_add(1, Ordering::Relaxed) % len;
        for position in rotation(len, start) {
            let i = cycle.order[position] as usize;
            let w = workers.get(i);
            if w.can_take() && w.weight > 0 {
                if position != start {
                    // Passed over busy workers: go on from the one picked.
                    self.next.store(position + 1, Ordering::Relaxed);
                }
                return Target::One(i);
            }
        }
        Target::Unavailable
    }
}

/// Power of two choices (as tower's `p2c`): sample two distinct workers at random, take the one
/// with fewer tasks in flight (tie: the first sampled); reads two workers per task, however
/// many there are. When neither sampled worker can take a task, the least busy of those that
/// can is taken. Lock-free (the random stream is one atomic counter), and seedable for
/// reproducible tests: the same seed and the same sequence of calls give the same picks.
#[derive(Debug)]
pub struct PowerOfTwo {
    /// A SplitMix64 counter: each call takes the next value and mixes it.
    state: AtomicU64,
}

impl PowerOfTwo {
    /// Randomly seeded.
    pub fn new() -> Self {
        Self::with_seed(fastrand::u64(..))
    }

    /// With a fixed seed: the same views give the same picks.
    pub fn with_seed(seed: u64) -> Self {
        PowerOfTwo {
            state: AtomicU64::new(seed),
        }
    }

    /// The next number of the stream (SplitMix64).
    fn next(&self) -> u64 {
        const GAMMA: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut z = self
            .state
            .fetch_add(GAMMA, Ordering::Relaxed)
            .wrapping_add(GAMMA);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

impl Default for PowerOfTwo {
    fn default() -> Self {
        Self::new()
    }
}

/// A uniform index below `n` from 32 random bits (Lemire's multiply-shift).
fn below(bits: u32, n: usize) -> usize {
    ((u64::from(bits) * n as u64) >> 32) as usize
}

impl Routing for PowerOfTwo {
    fn route(&self, workers: &dyn WorkerViews, _key: Option<u64>) -> Target {
        let n = workers.len();
        if n < 2 {
            return match n {
                1 if workers.get(0).can_take() => Target::One(0),
                _ => Target::Unavailable,
            };
        }
        let r = self.next();
        let a = below(r as u32, n);
        let mut b = below((r >> 32) as u32, n - 1);
        if b >= a {
            b += 1;
        }
        let (va, vb) = (workers.get(a), workers.get(b));
        match (va.can_take(), vb.can_take()) {
            (true, true) => Target::One(if vb.in_flight < va.in_flight { b } else { a }),
            (true, false) => Target::One(a),
            (false, true) => Target::One(b),
            // Both busy or dead: the least busy of the others (rare; reads them all).
            (false, false) => (0..n)
                .map(|i| (i, workers.get(i)))
                .filter(|(_, w)| w.can_take())
                .min_by_key(|(_, w)| w.in_flight)
                .map_or(Target::Unavailable, |(i, _)| Target::One(i)),
        }
    }
}

/// The same key goes to the same worker while the set of eligible workers is unchanged;
/// when a worker leaves, only its keys move (rendezvous hashing). Tasks without a key rotate.
/// A key's worker that is at its concurrency limit is not eligible, so in a pool give workers
/// room (`worker_concurrency`) when affinity matters.
#[derive(Debug, Default)]
pub struct KeyHash {
    fallback: RoundRobin,
}

impl KeyHash {
    /// A key-hash router.
    pub fn new() -> Self {
        Self::default()
    }

    fn score(key: u64, worker: usize) -> u64 {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        (key, worker as u64).hash(&mut h);
        h.finish()
    }
}

impl Routing for KeyHash {
    fn route(&self, workers: &dyn WorkerViews, key: Option<u64>) -> Target {
        let Some(key) = key else {
            return self.fallback.route(workers, None);
        };
        (0..workers.len())
            .filter(|&i| workers.get(i).can_take())
            .max_by_key(|&i| Self::score(key, i))
            .map_or(Target::Unavailable, Target::One)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn idle(n: usize) -> Vec<WorkerView> {
        vec![WorkerView::IDLE; n]
    }

    #[test]
    fn a_rotation_visits_every_index_once_from_its_start() {
        assert_eq!(rotation(5, 2).collect::<Vec<_>>(), vec![2, 3, 4, 0, 1]);
        assert_eq!(rotation(5, 0).collect::<Vec<_>>(), vec![0, 1, 2, 3, 4]);
        assert_eq!(rotation(5, 4).collect::<Vec<_>>(), vec![4, 0, 1, 2, 3]);
        assert_eq!(rotation(1, 0).collect::<Vec<_>>(), vec![0]);
        assert_eq!(rotation(0, 0).count(), 0);
    }

    fn picks(r: &dyn Routing, views: &[WorkerView], n: usize) -> Vec<usize> {
        let views: &dyn WorkerViews = &views;
        (0..n)
            .map(|_| match r.route(views, None) {
                Target::One(i) => i,
                other => panic!("{other:?}"),
            })
            .collect()
    }

    #[test]
    fn round_robin_is_an_exact_rotation() {
        let r = RoundRobin::new();
        let got = picks(&r, &idle(4), 12);
        assert_eq!(got, vec![0, 1, 2, 3, 0, 1, 2, 3, 0, 1, 2, 3]);
    }

    #[test]
    fn round_robin_skips_dead_workers_evenly() {
        let r = RoundRobin::new();
        let mut views = idle(4);
        views[1].live = false;
        let got = picks(&r, &views, 9);
        let count = |w| got.iter().filter(|&&i| i == w).count();
        assert_eq!(
            (count(0), count(1), count(2), count(3)),
            (3, 0, 3, 3),
            "{got:?}"
        );
    }

    #[test]
    fn nothing_eligible_is_unavailable() {
        let mut views = idle(2);
        views[0].live = false;
        views[1].in_flight = 1;
        views[1].limit = 1;
        for r in [
            &RoundRobin::new() as &dyn Routing,
            &LeastBusy::new(),
            &Weighted::new(),
            &PowerOfTwo::with_seed(1),
            &KeyHash::new(),
        ] {
            assert_eq!(r.route(&views, Some(7)), Target::Unavailable);
            assert_eq!(r.route(&Vec::new(), Some(7)), Target::Unavailable);
        }
    }

    #[test]
    fn least_busy_prefers_idle_and_rotates_ties() {
        let r = LeastBusy::new();
        let mut views = idle(3);
        views[0].in_flight = 5; // busy with a long task
        let got = picks(&r, &views, 4);
        assert!(
            !got.contains(&0),
            "never queued behind the busy worker: {got:?}"
        );
        assert_eq!(got.iter().filter(|&&i| i == 1).count(), 2);
        let got = picks(&r, &idle(3), 6);
        let mut sorted = got.clone();
        sorted.sort();
        assert_eq!(
            sorted,
            vec![0, 0, 1, 1, 2, 2],
            "ties spread evenly: {got:?}"
        );
    }

    #[test]
    fn least_busy_respects_the_concurrency_limit() {
        let r = LeastBusy::new();
        let mut views = idle(2);
        for v in &mut views {
            v.limit = 1;
        }
        views[0].in_flight = 1;
        assert_eq!(r.route(&views, None), Target::One(1));
        views[1].in_flight = 1;
        assert_eq!(r.route(&views, None), Target::Unavailable);
    }

    fn weighted(ws: &[u32]) -> Vec<WorkerView> {
        ws.iter()
            .map(|&weight| WorkerView {
                weight,
                ..WorkerView::IDLE
            })
            .collect()
    }

    #[test]
    fn weighted_follows_nginx_smooth_sequences() {
        let name =
            |v: Vec<usize>| -> String { v.iter().map(|&i| (b'a' + i as u8) as char).collect() };
        for (ws, want) in [
            (&[5, 1, 1][..], "aabacaa"),
            (&[4, 2, 1][..], "abacaba"),
            (&[3, 2][..], "ababa"),
            (&[10, 1][..], "aaaaabaaaaa"),
        ] {
            let r = Weighted::new();
            let views = weighted(ws);
            let total: u32 = ws.iter().sum();
            for cycle in 0..5 {
                assert_eq!(
                    name(picks(&r, &views, total as usize)),
                    want,
                    "{ws:?} cycle {cycle}"
                );
            }
        }
    }

    #[test]
    fn weight_zero_is_never_picked_and_weights_change_at_run_time() {
        let r = Weighted::new();
        let mut views = weighted(&[1, 0, 1]);
        let got = picks(&r, &views, 10);
        assert!(!got.contains(&1));
        views[1].weight = 2;
        let got = picks(&r, &views, 400);
        let count = |w| got.iter().filter(|&&i| i == w).count();
        assert_eq!((count(0), count(1), count(2)), (100, 200, 100));
        assert_eq!(r.route(&weighted(&[0, 0]), None), Target::Unavailable);
        assert!(!r.eligible(&weighted(&[0])[0]));
        assert!(r.eligible(&weighted(&[1])[0]));
        assert!(!r.eligible(&WorkerView {
            live: false,
            ..WorkerView::IDLE
        }));
        assert!(
            RoundRobin::new().eligible(&weighted(&[0])[0]),
            "weights are Weighted's"
        );
    }

    #[test]
    fn weighted_passes_over_busy_workers_and_keeps_large_weights_in_proportion() {
        let r = Weighted::new();
        let mut views = weighted(&[2, 1, 1]);
        views[0].limit = 1;
        views[0].in_flight = 1; // at its limit: passed over, the others keep their share
        let got = picks(&r, &views, 40);
        let count = |got: &[usize], w| got.iter().filter(|&&i| i == w).count();
        assert_eq!(
            (count(&got, 0), count(&got, 1), count(&got, 2)),
            (0, 20, 20)
        );
        // Divided by their greatest common divisor: the same cycle as 2,1,1.
        let r = Weighted::new();
        let got = picks(&r, &weighted(&[2000, 1000, 1000]), 8);
        assert_eq!(got, vec![0, 1, 2, 0, 0, 1, 2, 0]);
        // A sum above 4 096 is scaled down to it, in proportion (rounded down, at least 1).
        let r = Weighted::new();
        let got = picks(&r, &weighted(&[6000, 2000, 1]), 4095);
        assert_eq!(
            (count(&got, 0), count(&got, 1), count(&got, 2)),
            (3071, 1023, 1)
        );
    }

    #[test]
    fn power_of_two_is_seedable_and_prefers_the_less_loaded() {
        let mut views = idle(8);
        for (i, v) in views.iter_mut().enumerate() {
            v.in_flight = i;
        }
        let a = PowerOfTwo::with_seed(9);
        let b = PowerOfTwo::with_seed(9);
        let pa = picks(&a, &views, 50);
        assert_eq!(pa, picks(&b, &views, 50), "same seed, same picks");
        assert!(
            !pa.contains(&7),
            "the most loaded worker always loses its pair"
        );
        assert_eq!(
            PowerOfTwo::with_seed(1).route(&idle(1), None),
            Target::One(0)
        );
    }

    #[test]
    fn key_hash_is_stable_and_moves_only_the_keys_of_a_removed_worker() {
        let r = KeyHash::new();
        let views = idle(5);
        let before: Vec<Target> = (0..200).map(|k| r.route(&views, Some(k))).collect();
        let again: Vec<Target> = (0..200).map(|k| r.route(&views, Some(k))).collect();
        assert_eq!(before, again);
        let mut fewer = views.clone();
        fewer[2].live = false;
        for k in 0..200u64 {
            let now = r.route(&fewer, Some(k));
            if before[k as usize] != Target::One(2) {
                assert_eq!(now, before[k as usize], "key {k} moved");
            } else {
                assert_ne!(now, Target::One(2));
            }
        }
        let used: std::collections::HashSet<_> = before.iter().collect();
        assert_eq!(used.len(), 5, "keys spread over all workers");
    }
}
