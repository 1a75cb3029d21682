//! What the balancer's `poll_ready` waits for: a first endpoint from
//! discovery (and, with health checking on, a first health answer), for a
//! bounded time.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use parking_lot::Mutex;

use crate::endpoint_set::EndpointList;
use crate::shared::Shared;

type Wait = Pin<Box<dyn Future<Output = ()> + Send>>;

/// Whether a call may be tried on `list` now: it has an endpoint, and, with
/// health checking on, an endpoint is healthy or none is still waiting for
/// its first health answer. The common case reads one atomic: the first
/// endpoint is healthy.
pub(crate) fn is_usable(shared: &Shared, list: &EndpointList) -> bool {
    if list.is_empty() {
        return false;
    }
    if shared.config.health_check.is_none() || list.iter().any(|ep| ep.is_healthy()) {
        return true;
    }
    !list.iter().any(|ep| ep.is_health_unknown())
}

/// A balancer clone's wait for discovery, when it knows no endpoint. (The
/// mutex only makes the balancer `Sync`: it is reached through `&mut`,
/// never locked.)
#[derive(Default)]
pub(crate) struct Readiness {
    wait: Mutex<Option<Wait>>,
}

impl std::fmt::Debug for Readiness {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Readiness")
            .field("waiting", &self.wait.try_lock().map(|w| w.is_some()))
            .finish()
    }
}

impl Readiness {
    /// The balancer knows an endpoint: ready, and no wait is kept.
    pub(crate) fn ready(&mut self) {
        *self.wait.get_mut() = None;
    }

    /// The balancer knows no usable endpoint ([`is_usable`]): pending until
    /// it does or `config.discovery_wait` has passed since the wait began,
    /// then ready (a call then fails at once, UNAVAILABLE, naming the target
    /// and the reason). Woken by discovery and health changes.
    pub(crate) fn poll_wait(&mut self, shared: &Arc<Shared>, cx: &mut Context<'_>) -> Poll<()> {
        let slot = self.wait.get_mut();
        let wait = slot.get_or_insert_with(|| {
            let shared = shared.clone();
            Box::pin(async move {
                let bound = shared.config.discovery_wait;
                let usable = shared.set.wait_for_list(|list| is_usable(&shared, list));
                let _ = tokio::time::timeout(bound, usable).await;
            })
        });
        let done = wait.as_mut().poll(cx);
        if done.is_ready() {
            *slot = None;
        }
        done
    }
}
