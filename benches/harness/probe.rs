//! Prequal's server side: a layer around each backend (the outermost, see
//! `BackendConfig::wrap`) that counts the backend's requests in flight
//! (RIF), keeps recent latencies by the RIF each call arrived to, and
//! answers probes itself, over the connection the calls use.
//!
//! As the simulator's backend does (`orca-lb-sim`'s `latency_by_rif`): the
//! RIF counts every call from its arrival until its response ends, queued
//! calls and streams included (the ORCA out-of-band stream and the probes
//! are not calls); a unary call answered OK records the time from its
//! arrival to its response under the RIF it arrived to (itself excluded);
//! a probe is answered at once with the RIF now and the estimate of the
//! simulator's [`LatencyByRif`] at that RIF: the median of the last few
//! latencies recorded there, or at the nearest lower RIF with any.
//!
//! A probe is a gRPC-shaped request, `POST` [`PROBE_PATH`] with an empty
//! body, and its answer a trailers-only response (`grpc-status: 0`) whose
//! headers carry the numbers: [`RIF_HEADER`] and, once a call was
//! answered, [`LATENCY_HEADER`] (nanoseconds). It never reaches the
//! reporting layer, so it is neither counted in the reports nor given a
//! worker slot.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, LazyLock};
use std::task::{Context, Poll};
use std::time::Instant;

use orca_lb_client::BoxError;
use orca_lb_proto::StreamingMethods;
use orca_lb_sim::{LatencyByRif, Nanos};
use orca_lb_testkit::{BackendService, GREETER_DESCRIPTOR_SET, Wrap};
use parking_lot::Mutex;
use tonic::body::Body;
use tower_service::Service;

use crate::policy::BoxFuture;
use crate::watched_body::{ResponseWatcher, WatchedBody};

/// The path a probe is sent to; the layer answers it.
pub(crate) const PROBE_PATH: &str = "/harness.Probe/Probe";

/// The probe answer's header with the backend's requests in flight.
pub(crate) const RIF_HEADER: &str = "x-harness-rif";

/// The probe answer's header with the latency estimate at that RIF,
/// nanoseconds; absent before the backend answered any call.
pub(crate) const LATENCY_HEADER: &str = "x-harness-latency-ns";

/// The ORCA out-of-band service: a monitoring stream, not a call.
const OOB_PREFIX: &str = "/xds.service.orca.v3.OpenRcaService/";

/// The streaming methods the backends serve: their calls count in the RIF
/// but record no latency, as the simulator's streams.
pub(crate) fn streaming_methods() -> &'static StreamingMethods {
    static METHODS: LazyLock<StreamingMethods> = LazyLock::new(|| {
        StreamingMethods::from_file_descriptor_set(GREETER_DESCRIPTOR_SET)
            .expect("the greeter's descriptor set decodes")
    });
    &METHODS
}

/// One backend's probe state.
#[derive(Debug)]
pub(crate) struct ProbeState {
    rif: AtomicU32,
    latency: Mutex<LatencyByRif>,
    answered: AtomicU64,
}

impl ProbeState {
    pub(crate) fn new() -> Arc<Self> {
        Arc::new(Self {
            rif: AtomicU32::new(0),
            latency: Mutex::new(LatencyByRif::new()),
            answered: AtomicU64::new(0),
        })
    }

    /// Probes answered so far.
    pub(crate) fn answered(&self) -> u64 {
        self.answered.load(Ordering::Relaxed)
    }

    /// What a probe is told now: the RIF and the latency seen at it.
    fn answer(&self) -> (u32, Option<Nanos>) {
        let rif = self.rif.load(Ordering::Relaxed);
        (rif, self.latency.lock().estimate(rif))
    }

    /// The layer over a backend's service, for `BackendConfig::wrap`.
    pub(crate) fn wrap(self: &Arc<Self>) -> Wrap {
        let state = self.clone();
        Wrap::new(move |inner| {
            BackendService::new(ProbeService {
                inner,
                state: state.clone(),
            })
        })
    }
}

/// A probe's answer as the client reads it from the response headers:
/// the RIF and the latency estimate, if the headers carry a RIF.
pub(crate) fn read_answer(headers: &http::HeaderMap) -> Option<(u32, Option<Nanos>)> {
    let number = |name: &str| headers.get(name)?.to_str().ok()?.parse::<u64>().ok();
    let rif = u32::try_from(number(RIF_HEADER)?).ok()?;
    Some((rif, number(LATENCY_HEADER)))
}

/// The probe request, as a client sends it over a backend's channel.
pub(crate) fn probe_request() -> http::Request<Body> {
    http::Request::builder()
        .method(http::Method::POST)
        .uri(PROBE_PATH)
        .header(http::header::CONTENT_TYPE, "application/grpc")
        .header(http::header::TE, "trailers")
        .body(Body::empty())
        .expect("a valid request")
}

/// The probe layer's service.
#[derive(Clone)]
struct ProbeService {
    inner: BackendService,
    state: Arc<ProbeState>,
}

impl ProbeService {
    fn answer(&self) -> http::Response<Body> {
        self.state.answered.fetch_add(1, Ordering::Relaxed);
        let (rif, latency) = self.state.answer();
        let mut response = http::Response::builder()
            .status(http::StatusCode::OK)
            .header(http::header::CONTENT_TYPE, "application/grpc")
            .header("grpc-status", "0")
            .header(RIF_HEADER, rif);
        if let Some(ns) = latency {
            response = response.header(LATENCY_HEADER, ns);
        }
        response.body(Body::empty()).expect("a valid response")
    }
}

impl Service<http::Request<Body>> for ProbeService {
    type Response = http::Response<Body>;
    type Error = BoxError;
    type Future = BoxFuture<Result<http::Response<Body>, BoxError>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        let path = request.uri().path();
        if path == PROBE_PATH {
            let response = self.answer();
            return Box::pin(std::future::ready(Ok(response)));
        }
        if path.starts_with(OOB_PREFIX) {
            return Box::pin(self.inner.call(request));
        }
        let unary = !streaming_methods().contains(path);
        // The RIF this call arrived to, itself excluded.
        let rif = self.state.rif.fetch_add(1, Ordering::Relaxed);
        let guard = InFlight(self.state.clone());
        let arrived = Instant::now();
        let call = self.inner.call(request);
        Box::pin(async move {
            let response = call.await?;
            // A trailers-only response carries its status in the headers:
            // only an OK answer records a latency.
            let ok = response
                .headers()
                .get("grpc-status")
                .is_none_or(|s| s.as_bytes() == b"0");
            if unary && ok {
                let ns = arrived.elapsed().as_nanos() as Nanos;
                guard.0.latency.lock().record(rif, ns);
            }
            Ok(response.map(|inner| WatchedBody::wrap(inner, guard)))
        })
    }
}

/// A call in flight: its RIF count ends when this is dropped, with the
/// response's body (or with the call, if it ends before a response).
#[derive(Debug)]
struct InFlight(Arc<ProbeState>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.rif.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Its response's body holds the call's place in the RIF.
impl ResponseWatcher for InFlight {}

#[cfg(test)]
mod tests {
    use super::*;

    /// A probe over a real backend's connection: the calls in flight,
    /// queued ones included, then the latency seen at RIF 0 once they are
    /// answered.
    #[tokio::test]
    async fn a_backend_answers_probes_over_the_calls_connection() {
        use std::time::Duration;

        use orca_lb_testkit::pb::HelloRequest;
        use orca_lb_testkit::pb::greeter_client::GreeterClient;
        use orca_lb_testkit::{Backend, BackendConfig, ServiceTime};
        use tonic::transport::Channel;
        use tower::ServiceExt;

        let state = ProbeState::new();
        let mut config = BackendConfig::named("probed");
        config.capacity = Some(1);
        config.service_time = ServiceTime::Fixed(Duration::from_millis(150));
        config.wrap = Some(state.wrap());
        let backend = Backend::spawn(config).await.unwrap();
        let channel = Channel::from_shared(backend.url())
            .unwrap()
            .connect()
            .await
            .unwrap();
        let probe = |channel: Channel| async move {
            let response = channel.oneshot(probe_request()).await.unwrap();
            read_answer(response.headers()).expect("an answer")
        };
        assert_eq!(probe(channel.clone()).await, (0, None));
        let calls: Vec<_> = (0..2)
            .map(|i| {
                let mut client = GreeterClient::new(channel.clone());
                tokio::spawn(async move {
                    client
                        .say_hello(HelloRequest {
                            name: i.to_string(),
                            ..Default::default()
                        })
                        .await
                        .unwrap();
                })
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(50)).await;
        // One call served, one waiting for the only worker slot.
        assert_eq!(probe(channel.clone()).await, (2, None));
        for call in calls {
            call.await.unwrap();
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        let (rif, latency) = probe(channel.clone()).await;
        assert_eq!(rif, 0);
        // The call that arrived to no other: its own service time.
        let ms = latency.expect("a latency at RIF 0") as f64 / 1e6;
        assert!((150.0..250.0).contains(&ms), "{ms} ms");
        assert_eq!(state.answered(), 3);
        assert_eq!(backend.recorder().in_flight(), 0);
    }

    #[test]
    fn answers_read_back() {
        let mut h = http::HeaderMap::new();
        assert_eq!(read_answer(&h), None);
        h.insert(RIF_HEADER, 4.into());
        assert_eq!(read_answer(&h), Some((4, None)));
        h.insert(LATENCY_HEADER, 1_500_000u64.into());
        assert_eq!(read_answer(&h), Some((4, Some(1_500_000))));
    }
}
