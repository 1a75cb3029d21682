//! Which backend each call went to.
//!
//! The simulator knows where every call goes; on real servers the harness
//! has to find out, and the answer must not depend on how the call ended: a
//! call that waited in a slow backend's queue until its deadline counts
//! toward that backend's share as much as one that was served. Three
//! sources fill one table, indexed by call number, first writer wins:
//!
//! 1. **The policy's own endpoint services** (`rr`, `p2c_lr`,
//!    `p2c_peakewma`, `wrr_orca`): the harness builds them over one tonic
//!    `Channel` per backend, wrapped in [`Tagged`], which reads the call's
//!    [`CallId`] from the request extensions and records its backend when
//!    the balancer hands it the call. Exact.
//! 2. **orca-lb's `picked` trace event** (`orca_lb_client::balancer`,
//!    documented in `docs/observability.md`): the balancer picks inside
//!    `Service::call`, on the task that polls the call, so [`InCall`] marks
//!    the thread with the call number while it polls and [`PickCapture`]
//!    maps the event's `endpoint` to the backend. Exact.
//! 3. **The backend's handler** (every policy, and the only source for
//!    `tonic`, whose `Channel::balance_list` hides its endpoints): the
//!    greeter's hook parses the call number from the request. It misses
//!    calls that never reached a handler: dropped in a backend's queue at
//!    their deadline (tonic's server enforces `grpc-timeout`) or refused
//!    on the way. The harness reports how many calls stayed unattributed.

use std::cell::{Cell, RefCell};
use std::fmt::Write;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::task::{Context, Poll};

use parking_lot::RwLock;
use tower_service::Service;
use tracing::field::{Field, Visit};
use tracing::subscriber::Interest;
use tracing::{Event, Metadata, Subscriber};
use tracing_subscriber::layer::{Context as LayerContext, Layer};

/// No backend known for a call.
const UNKNOWN: u8 = u8::MAX;

/// The call number, carried in the request extensions from the harness to
/// the policy's endpoint services.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct CallId(pub(crate) u32);

/// The backend of every call of one run, by call number.
#[derive(Debug)]
pub(crate) struct Attribution {
    backends: Box<[AtomicU8]>,
}

impl Attribution {
    /// A table for `calls` calls over at most 255 backends.
    pub(crate) fn new(calls: usize) -> Arc<Self> {
        Arc::new(Self {
            backends: (0..calls).map(|_| AtomicU8::new(UNKNOWN)).collect(),
        })
    }

    /// Records that call `call` went to `backend`, unless a source already
    /// did.
    pub(crate) fn record(&self, call: u32, backend: usize) {
        let Ok(b) = u8::try_from(backend) else { return };
        if let Some(slot) = self.backends.get(call as usize) {
            let _ = slot.compare_exchange(UNKNOWN, b, Ordering::Relaxed, Ordering::Relaxed);
        }
    }

    /// The backend of call `call`, if known.
    pub(crate) fn get(&self, call: usize) -> Option<usize> {
        let b = self.backends.get(call)?.load(Ordering::Relaxed);
        (b != UNKNOWN).then_some(usize::from(b))
    }
}

// === Tagged ===

/// One backend's service inside a balancer: records each call's backend,
/// then hands the call on.
#[derive(Debug, Clone)]
pub(crate) struct Tagged<S> {
    backend: usize,
    attribution: Arc<Attribution>,
    inner: S,
}

impl<S> Tagged<S> {
    pub(crate) fn new(backend: usize, attribution: Arc<Attribution>, inner: S) -> Self {
        Self {
            backend,
            attribution,
            inner,
        }
    }
}

impl<S, B> Service<http::Request<B>> for Tagged<S>
where
    S: Service<http::Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        if let Some(CallId(id)) = request.extensions().get::<CallId>() {
            self.attribution.record(*id, self.backend);
        }
        self.inner.call(request)
    }
}

// === orca-lb's pick, from its trace event ===

thread_local! {
    /// The call whose future this thread is polling.
    static POLLING: Cell<Option<u32>> = const { Cell::new(None) };
    /// The `endpoint` field of the event being read.
    static ENDPOINT: RefCell<String> = const { RefCell::new(String::new()) };
}

/// The backends' URIs (orca-lb's endpoint keys) and the table of the run
/// in progress.
#[derive(Debug)]
pub(crate) struct PickTarget {
    pub(crate) uris: Vec<String>,
    pub(crate) attribution: Arc<Attribution>,
}

/// The run whose orca-lb picks [`PickCapture`] records, if any.
static TARGET: RwLock<Option<PickTarget>> = RwLock::new(None);

/// Points [`PickCapture`] at a run (or at none).
pub(crate) fn capture_picks(target: Option<PickTarget>) {
    *TARGET.write() = target;
}

/// A call's future, marking the thread with the call number while it is
/// polled.
#[derive(Debug)]
pub(crate) struct InCall<F> {
    call: u32,
    inner: Pin<Box<F>>,
}

impl<F> InCall<F> {
    pub(crate) fn new(call: u32, inner: F) -> Self {
        Self {
            call,
            inner: Box::pin(inner),
        }
    }
}

impl<F: Future> Future for InCall<F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let before = POLLING.replace(Some(self.call));
        let out = self.inner.as_mut().poll(cx);
        POLLING.set(before);
        out
    }
}

/// A tracing layer that listens to orca-lb's `picked` event and nothing
/// else: every other callsite is disabled, so the rest of the program pays
/// nothing for it.
#[derive(Debug, Default)]
pub(crate) struct PickCapture;

fn is_pick(metadata: &Metadata<'_>) -> bool {
    metadata.is_event()
        && metadata.target() == "orca_lb_client::balancer"
        && metadata.fields().field("endpoint").is_some()
}

impl<S: Subscriber> Layer<S> for PickCapture {
    fn register_callsite(&self, metadata: &'static Metadata<'static>) -> Interest {
        if is_pick(metadata) {
            Interest::always()
        } else {
            Interest::never()
        }
    }

    fn enabled(&self, metadata: &Metadata<'_>, _: LayerContext<'_, S>) -> bool {
        is_pick(metadata)
    }

    fn on_event(&self, event: &Event<'_>, _: LayerContext<'_, S>) {
        let Some(call) = POLLING.get() else { return };
        let target = TARGET.read();
        let Some(target) = target.as_ref() else {
            return;
        };
        ENDPOINT.with_borrow_mut(|endpoint| {
            endpoint.clear();
            event.record(&mut EndpointVisitor(endpoint));
            if let Some(b) = target.uris.iter().position(|u| u == endpoint) {
                target.attribution.record(call, b);
            }
        });
    }
}

struct EndpointVisitor<'a>(&'a mut String);

impl Visit for EndpointVisitor<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "endpoint" {
            // `%key` records a Display wrapper, whose Debug is the Display.
            let _ = write!(self.0, "{value:?}");
        }
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "endpoint" {
            self.0.push_str(value);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_source_wins() {
        let a = Attribution::new(3);
        a.record(1, 4);
        a.record(1, 2);
        assert_eq!(a.get(0), None);
        assert_eq!(a.get(1), Some(4));
        a.record(9, 1); // out of range: ignored
        assert_eq!(a.get(9), None);
    }
}
