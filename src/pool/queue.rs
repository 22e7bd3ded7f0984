//! The pool's bounded task queue: three priorities, FIFO within each, and what to do when full.
//!
//! Pure: the router owns a [`TaskQueue`] and asks it where a task goes. A full queue answers by
//! the [`Overflow`] policy: the caller waits, the task is rejected, or the oldest task of the
//! lowest priority present (never of a higher priority than the newcomer) is dropped to make room.

use std::collections::VecDeque;

/// A task's priority: high tasks leave the queue before normal ones, normal before low.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub enum Priority {
    /// Before everything else.
    High,
    /// The default.
    #[default]
    Normal,
    /// After everything else.
    Low,
}

impl Priority {
    const ALL: [Priority; 3] = [Priority::High, Priority::Normal, Priority::Low];

    fn index(self) -> usize {
        self as usize
    }
}

/// What a full queue does with one more task.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Overflow {
    /// The submitter waits until there is room (backpressure).
    #[default]
    Wait,
    /// The task is rejected at once.
    Reject,
    /// The oldest task of the lowest priority present is dropped (and failed) to make room.
    DropOldest,
}

/// What [`TaskQueue::push`] did.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Push<T> {
    /// Queued.
    Queued,
    /// Full: the task comes back (the caller waits or rejects it, per policy).
    Full(T),
    /// Queued, and this older task was dropped to make room.
    Displaced(T),
}

/// A bounded queue with three priority levels.
#[derive(Debug)]
pub(crate) struct TaskQueue<T> {
    levels: [VecDeque<T>; 3],
    capacity: usize,
    overflow: Overflow,
    len: usize,
}

impl<T> TaskQueue<T> {
    /// A queue holding at most `capacity` tasks.
    pub fn new(capacity: usize, overflow: Overflow) -> Self {
        TaskQueue {
            levels: [VecDeque::new(), VecDeque::new(), VecDeque::new()],
            capacity,
            overflow,
            len: 0,
        }
    }

    /// Adds a task, or says why not.
    pub fn push(&mut self, task: T, priority: Priority) -> Push<T> {
        if self.len < self.capacity {
            self.levels[priority.index()].push_back(task);
            self.len += 1;
            return Push::Queued;
        }
        if self.overflow != Overflow::DropOldest {
            return Push::Full(task);
        }
        // The lowest priority present that is not above the newcomer's.
        let victim_level = Priority::ALL
            .iter()
            .rev()
            .take_while(|&&p| p >= priority)
            .find(|p| !self.levels[p.index()].is_empty());
        match victim_level {
            Some(p) => {
                let victim = self.levels[p.index()].pop_front();
                self.levels[priority.index()].push_back(task);
                match victim {
                    Some(v) => Push::Displaced(v),
                    None => Push::Queued,
                }
            }
            None => Push::Full(task),
        }
    }

    /// Takes the next task: the oldest of the highest priority present.
    pub fn pop(&mut self) -> Option<T> {
        let task = self.levels.iter_mut().find_map(VecDeque::pop_front)?;
        self.len -= 1;
        Some(task)
    }

    /// Puts a task taken by [`pop`](Self::pop) back at the head of its priority, even if the
    /// queue filled up meanwhile (it had a place a moment ago): a task handed back because
    /// its worker died never loses its turn.
    pub fn unpop(&mut self, task: T, priority: Priority) {
        self.levels[priority.index()].push_front(task);
        self.len += 1;
    }

    /// Takes every queued task, highest priority first (for draining or failing them).
    pub fn drain_all(&mut self) -> Vec<T> {
        self.len = 0;
        self.levels.iter_mut().flat_map(std::mem::take).collect()
    }

    /// Tasks queued.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether no task is queued.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The overflow policy.
    pub fn overflow(&self) -> Overflow {
        self.overflow
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Priority::*;

    #[test]
    fn priorities_then_fifo() {
        let mut q = TaskQueue::new(10, Overflow::Reject);
        for (t, p) in [(1, Low), (2, Normal), (3, High), (4, Normal), (5, High)] {
            assert_eq!(q.push(t, p), Push::Queued);
        }
        let order: Vec<_> = std::iter::from_fn(|| q.pop()).collect();
        assert_eq!(order, vec![3, 5, 2, 4, 1]);
        assert!(q.is_empty());
    }

    #[test]
    fn full_queue_rejects_or_hands_back_under_wait() {
        for policy in [Overflow::Reject, Overflow::Wait] {
            let mut q = TaskQueue::new(1, policy);
            assert_eq!(q.push(1, Normal), Push::Queued);
            assert_eq!(q.push(2, High), Push::Full(2));
            assert_eq!(q.len(), 1);
        }
    }

    #[test]
    fn drop_oldest_takes_the_lowest_priority_first_and_never_a_higher_one() {
        let mut q = TaskQueue::new(3, Overflow::DropOldest);
        q.push(1, Normal);
        q.push(2, Low);
        q.push(3, Low);
        assert_eq!(q.push(4, Normal), Push::Displaced(2));
        assert_eq!(q.push(5, Low), Push::Displaced(3));
        // Only normal/low tasks queued: a low newcomer may displace only low ones.
        assert_eq!(q.push(6, Low), Push::Displaced(5));
        let mut h = TaskQueue::new(1, Overflow::DropOldest);
        h.push(1, High);
        assert_eq!(
            h.push(2, Low),
            Push::Full(2),
            "a low task never displaces a high one"
        );
        assert_eq!(h.push(3, High), Push::Displaced(1));
    }

    #[test]
    fn unpop_restores_a_popped_task_to_its_turn() {
        let mut q = TaskQueue::new(2, Overflow::Reject);
        q.push(1, Low);
        q.push(2, Normal);
        let head = q.pop().unwrap();
        q.push(3, Normal);
        q.unpop(head, Normal);
        assert_eq!(q.len(), 3, "back in, though the queue was full");
        let order: Vec<_> = std::iter::from_fn(|| q.pop()).collect();
        assert_eq!(order, vec![2, 3, 1]);
    }

    #[test]
    fn drain_all_empties_in_priority_order() {
        let mut q = TaskQueue::new(5, Overflow::Wait);
        q.push(1, Low);
        q.push(2, High);
        assert_eq!(q.drain_all(), vec![2, 1]);
        assert_eq!(q.len(), 0);
        assert!(q.pop().is_none());
    }
}
