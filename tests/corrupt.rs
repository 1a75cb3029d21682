//! A server layer that replaces every response's load report, for tests of
//! what the balancer does with reports it cannot trust.

use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use http_body::Frame;
use orca_lb_testkit::pb::greeter_server::GreeterServer;
use orca_lb_testkit::{ServiceTime, TestGreeter};
use tonic::transport::Server;
use tonic::transport::server::TcpIncoming;

/// A test greeter named `name` drawing its work from `service_time`, whose every
/// response carries `value` as its load report, on 127.0.0.1: its url, and
/// its task (abort it to stop the server).
pub async fn corrupt_greeter(
    name: &str,
    service_time: ServiceTime,
    value: http::HeaderValue,
) -> (String, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("local addr"));
    let greeter = TestGreeter::new(name).with_service_time(service_time);
    let task = tokio::spawn(async move {
        Server::builder()
            .layer(Corrupt::layer(value))
            .add_service(GreeterServer::new(greeter))
            .serve_with_incoming(TcpIncoming::from(listener).with_nodelay(Some(true)))
            .await
            .expect("the corrupt greeter serves");
    });
    (url, task)
}

/// Replaces the `endpoint-load-metrics-bin` trailer of every response of the
/// wrapped service with `value`.
#[derive(Debug, Clone)]
pub struct Corrupt<S> {
    inner: S,
    value: http::HeaderValue,
}

impl<S> Corrupt<S> {
    /// Wraps `inner`.
    pub fn new(inner: S, value: http::HeaderValue) -> Self {
        Self { inner, value }
    }

    /// A layer for `tonic::transport::Server::layer` that wraps every
    /// service.
    pub fn layer(value: http::HeaderValue) -> impl tower::Layer<S, Service = Corrupt<S>> + Clone {
        tower::layer::layer_fn(move |inner| Corrupt::new(inner, value.clone()))
    }
}

impl<S, B> tower::Service<http::Request<B>> for Corrupt<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<tonic::body::Body>>,
    S::Future: Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = S::Error;
    type Future =
        Pin<Box<dyn std::future::Future<Output = Result<Self::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let value = self.value.clone();
        let fut = self.inner.call(req);
        Box::pin(async move {
            let res = fut.await?;
            Ok(res.map(|body| tonic::body::Body::new(CorruptBody { inner: body, value })))
        })
    }
}

/// A response body whose trailers get the corrupt report.
struct CorruptBody {
    inner: tonic::body::Body,
    value: http::HeaderValue,
}

impl http_body::Body for CorruptBody {
    type Data = Bytes;
    type Error = tonic::Status;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, tonic::Status>>> {
        let frame = ready!(Pin::new(&mut self.inner).poll_frame(cx));
        let value = self.value.clone();
        Poll::Ready(frame.map(|f| {
            f.map(|frame| match frame.into_trailers() {
                Ok(mut trailers) => {
                    trailers.insert(orca_lb_proto::TRAILER_KEY, value);
                    Frame::trailers(trailers)
                }
                Err(frame) => frame,
            })
        }))
    }
}
