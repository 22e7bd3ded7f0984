//! One event stream for a whole tree: every supervisor's events, each with the supervisor's
//! path, its incarnation and the time, in one [`TreeEventStream`].
//!
//! How events find the stream: each supervisor builder holds a *sink* (kept by the builder,
//! so it outlives the supervisor's incarnations); a supervisor sends its events to its own
//! sink and to every ancestor's, which its parent handed it when it started it. Subscribing
//! to a supervisor's tree adds a receiver to its sink: the events of everything below it
//! arrive there, including supervisors restarted or started later. A sink with no
//! subscriber costs one atomic load per event.

use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use tokio::sync::mpsc;

use crate::supervisor::SupervisorEvent;

/// One supervisor event, placed in the tree.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct TreeEvent {
    /// The path of the supervisor that emitted it (`app/storage`); the child it names is
    /// below it (`app/storage/wal`).
    pub path: String,
    /// That supervisor's incarnation (1 for its first start; a restarted subtree's events
    /// carry the new number).
    pub incarnation: u64,
    /// When it was emitted (wall clock).
    pub at: SystemTime,
    /// What happened.
    pub event: SupervisorEvent,
}

impl TreeEvent {
    /// The path of the child the event is about (`app/storage/wal`), or the supervisor's
    /// own for an event about itself (`Stopped`, `GaveUp`).
    pub fn child_path(&self) -> String {
        match self.event.child() {
            Some(id) => format!("{}/{id}", self.path),
            None => self.path.clone(),
        }
    }
}

/// `12:04:05.123 app/storage: wal exited (incarnation 2): panicked: disk full`: the time of
/// day (UTC), the supervisor's path (and its incarnation after a restart), the event.
impl fmt::Display for TreeEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let since = self.at.duration_since(UNIX_EPOCH).unwrap_or_default();
        let (secs, ms) = (since.as_secs() % 86_400, since.subsec_millis());
        write!(
            f,
            "{:02}:{:02}:{:02}.{ms:03} {}",
            secs / 3600,
            secs / 60 % 60,
            secs % 60,
            self.path
        )?;
        if self.incarnation > 1 {
            write!(f, " (#{})", self.incarnation)?;
        }
        write!(f, ": {}", self.event)
    }
}

/// A subscription to every event of a tree ([`SupervisorRef::subscribe_tree`]).
///
/// [`SupervisorRef::subscribe_tree`]: crate::supervisor::SupervisorRef::subscribe_tree
#[derive(Debug)]
pub struct TreeEventStream {
    rx: mpsc::UnboundedReceiver<TreeEvent>,
}

impl TreeEventStream {
    /// The next event; `None` once the tree's supervisor and its builder are gone and every
    /// event was read.
    pub async fn recv(&mut self) -> Option<TreeEvent> {
        self.rx.recv().await
    }

    /// The next event if one is ready, without waiting.
    pub fn try_recv(&mut self) -> Option<TreeEvent> {
        self.rx.try_recv().ok()
    }
}

impl futures::Stream for TreeEventStream {
    type Item = TreeEvent;

    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        self.rx.poll_recv(cx)
    }
}

/// The receivers of one supervisor's tree subscriptions.
#[derive(Debug, Default)]
pub(crate) struct TreeSink {
    senders: Mutex<Vec<mpsc::UnboundedSender<TreeEvent>>>,
    /// How many senders there are: read on every event, so a sink without subscribers costs
    /// no lock.
    live: AtomicUsize,
}

impl TreeSink {
    pub(crate) fn subscribe(&self) -> TreeEventStream {
        let (tx, rx) = mpsc::unbounded_channel();
        let mut senders = self.senders.lock().unwrap_or_else(|e| e.into_inner());
        senders.push(tx);
        self.live.store(senders.len(), Ordering::Release);
        TreeEventStream { rx }
    }

    fn listening(&self) -> bool {
        self.live.load(Ordering::Acquire) > 0
    }

    fn send(&self, event: &TreeEvent) {
        let mut senders = self.senders.lock().unwrap_or_else(|e| e.into_inner());
        senders.retain(|tx| tx.send(event.clone()).is_ok());
        self.live.store(senders.len(), Ordering::Release);
    }
}

/// A place in a tree's event stream, as a supervisor gives it to a child it starts: the
/// child's path, its incarnation, and the sinks of every supervisor above it.
#[derive(Debug, Clone)]
pub(crate) struct TreePlace {
    path: String,
    incarnation: u64,
    above: Vec<Arc<TreeSink>>,
}

/// Where a supervisor's events go: its place, and its own sink (its tree subscriptions).
#[derive(Debug, Clone)]
pub(crate) struct TreeLink {
    place: TreePlace,
    own: Arc<TreeSink>,
}

impl TreeLink {
    /// The link of a supervisor started by nobody in the tree: a root.
    pub(crate) fn root(path: String, own: Arc<TreeSink>) -> Self {
        TreeLink {
            place: TreePlace {
                path,
                incarnation: 1,
                above: Vec::new(),
            },
            own,
        }
    }

    /// The link of a supervisor its parent started at `place`.
    pub(crate) fn at(place: TreePlace, own: Arc<TreeSink>) -> Self {
        TreeLink { place, own }
    }

    /// The supervisor's path.
    pub(crate) fn path(&self) -> &str {
        &self.place.path
    }

    /// The place this supervisor gives the child `id`'s incarnation `generation`.
    pub(crate) fn place_for(&self, id: &impl fmt::Display, generation: u64) -> TreePlace {
        let mut above = self.place.above.clone();
        above.push(self.own.clone());
        TreePlace {
            path: format!("{}/{id}", self.place.path),
            incarnation: generation,
            above,
        }
    }

    /// The supervisor's own sink (its tree subscriptions).
    pub(crate) fn own(&self) -> &TreeSink {
        &self.own
    }

    /// Whether anyone listens to an event from here.
    pub(crate) fn listening(&self) -> bool {
        self.own.listening() || self.place.above.iter().any(|s| s.listening())
    }

    /// Sends `event` to every sink that listens.
    pub(crate) fn send(&self, event: &SupervisorEvent) {
        let placed = TreeEvent {
            path: self.place.path.clone(),
            incarnation: self.place.incarnation,
            at: SystemTime::now(),
            event: event.clone(),
        };
        for sink in self.place.above.iter().chain(std::iter::once(&self.own)) {
            if sink.listening() {
                sink.send(&placed);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::supervisor::ChildId;

    fn started(id: &str, generation: u64) -> SupervisorEvent {
        SupervisorEvent::ChildStarted {
            id: ChildId::from(id),
            generation,
            actor: ractor::ActorId::Local(7),
        }
    }

    #[tokio::test]
    async fn events_reach_the_own_sink_and_every_ancestor_with_the_path() {
        let (root_sink, storage_sink) = (Arc::new(TreeSink::default()), Arc::default());
        let root = TreeLink::root("app".into(), root_sink.clone());
        let storage = TreeLink::at(root.place_for(&"storage", 2), storage_sink);
        assert!(!storage.listening(), "no subscriber yet");
        let mut all = root_sink.subscribe();
        assert!(storage.listening());
        storage.send(&started("wal", 1));
        let e = all.recv().await.unwrap();
        assert_eq!((e.path.as_str(), e.incarnation), ("app/storage", 2));
        assert_eq!(e.child_path(), "app/storage/wal");
        let line = e.to_string();
        assert!(
            line.ends_with(" app/storage (#2): wal started (incarnation 1)"),
            "{line}"
        );
        assert_eq!(line.as_bytes()[2], b':', "{line}");
        drop(all);
        storage.send(&started("wal", 2));
        assert!(!storage.listening(), "a dropped subscription is forgotten");
    }
}
