//! Static and dynamic supervisors log alike, inside their own span. A file of its own: the
//! capturing subscriber is set per thread, and tracing caches whether a call site is enabled
//! for all threads, so a test running beside it on another thread could hide a span.

mod common;

use std::sync::{Arc, Mutex};

use common::kinds::*;
use common::*;
use ractor_otp::supervisor::SupervisorEvent;
use tracing_subscriber::layer::SubscriberExt;

/// What a supervisor logged: level, message, and the innermost span it was in.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<(tracing::Level, String, String)>>>);

impl<S> tracing_subscriber::Layer<S> for Captured
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    fn on_event(&self, event: &tracing::Event<'_>, ctx: tracing_subscriber::layer::Context<'_, S>) {
        struct Message(String);
        impl tracing::field::Visit for Message {
            fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
                if field.name() == "message" {
                    self.0 = format!("{value:?}");
                }
            }
        }
        let mut message = Message(String::new());
        event.record(&mut message);
        let innermost = ctx
            .event_scope(event)
            .and_then(|mut scope| scope.next().map(|s| s.name().to_string()))
            .unwrap_or_default();
        self.0.lock().expect("capture lock").push((
            *event.metadata().level(),
            message.0,
            innermost,
        ));
    }
}

#[tokio::test(start_paused = true)]
async fn both_kinds_log_alike_inside_their_span() {
    for kind in KINDS {
        let captured = Captured::default();
        let subscriber = tracing_subscriber::registry().with(captured.clone());
        let _guard = tracing::subscriber::set_default(subscriber);
        let probes = Probes::new();
        let mut under = Under::spawn(kind, &probes, &Setup::default(), &["x"], None).await;
        under.tell("x", ProbeMsg::Panic).await;
        under
            .next(|e| matches!(e, SupervisorEvent::ChildStarted { generation: 2, .. }))
            .await;
        under.stop().await;
        let logged = captured.0.lock().expect("capture lock").clone();
        let find = |msg: &str| {
            logged
                .iter()
                .find(|(_, m, _)| m == msg)
                .cloned()
                .unwrap_or_else(|| panic!("{kind:?}: no {msg:?} in {logged:?}"))
        };
        let (level, _, span) = find("child exited");
        assert_eq!(
            level,
            tracing::Level::WARN,
            "{kind:?}: an abnormal exit is a warning"
        );
        assert!(span.ends_with("supervisor"), "{kind:?}: logged in {span:?}");
        let (level, _, span) = find("restart scheduled");
        assert_eq!(level, tracing::Level::INFO, "{kind:?}");
        assert!(span.ends_with("supervisor"), "{kind:?}: logged in {span:?}");
    }
}
