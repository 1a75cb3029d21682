//! Capturing logs with scoped (per-thread) subscribers, reliably.
//!
//! `tracing` caches, per log statement, whether any subscriber wants it.
//! A statement first reached on a thread with no subscriber, at the moment
//! another thread installs its scoped one, can be cached as "nobody wants
//! this" for the rest of the process, and a test capturing logs then sees
//! none. With a global subscriber that answers "ask me each time", no
//! statement is ever cached as unwanted, and each event goes to whichever
//! subscriber its thread has.

use std::sync::Once;

use tracing::subscriber::Interest;
use tracing::{Event, Metadata, Subscriber, span};

/// Installs, once per process, a global subscriber that drops every event
/// and keeps no statement from a scoped subscriber. Call it before
/// `tracing::subscriber::set_default` or `tracing::dispatcher::with_default`
/// in a test that asserts on what was logged. If the process already has a
/// global subscriber, nothing changes.
pub fn allow_scoped_subscribers() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        // An error means a global subscriber is already there: keep it.
        let _ = tracing::subscriber::set_global_default(AskEachTime);
    });
}

/// Wants nothing, but never lets `tracing` cache that.
struct AskEachTime;

impl Subscriber for AskEachTime {
    fn register_callsite(&self, _: &'static Metadata<'static>) -> Interest {
        Interest::sometimes()
    }

    fn enabled(&self, _: &Metadata<'_>) -> bool {
        false
    }

    fn new_span(&self, _: &span::Attributes<'_>) -> span::Id {
        // Never called: `enabled` is false for every span.
        span::Id::from_u64(1)
    }

    fn record(&self, _: &span::Id, _: &span::Record<'_>) {}

    fn record_follows_from(&self, _: &span::Id, _: &span::Id) {}

    fn event(&self, _: &Event<'_>) {}

    fn enter(&self, _: &span::Id) {}

    fn exit(&self, _: &span::Id) {}
}
