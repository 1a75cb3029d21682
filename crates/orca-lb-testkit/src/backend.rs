//! A real tonic server on loopback with the reporting layer.

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use orca_lb_server::{FixedSampler, LoadRecorder, ReportingLayer, StreamingMethods};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tonic::body::Body;
use tonic::service::Routes;
use tonic::transport::server::TcpIncoming;
use tonic::transport::{Server, ServerTlsConfig};
use tower::ServiceExt;
use tower::util::BoxCloneService;

use crate::pb::greeter_server::GreeterServer;
use crate::{GREETER_DESCRIPTOR_SET, ServiceTime, TestGreeter};

/// How to start a [`Backend`].
#[derive(Debug, Clone)]
pub struct BackendConfig {
    /// The name the greeter answers with.
    pub name: String,
    /// Worker slots (the layer's concurrency limit), if any.
    pub capacity: Option<usize>,
    /// Unary service time.
    pub service_time: ServiceTime,
    /// The CPU and memory the backend reports.
    pub sampler: FixedSampler,
    /// The layer's floor on out-of-band report intervals.
    pub min_oob_interval: Duration,
    /// The greeter to serve; `None` builds one from `name` and `service_time`.
    pub greeter: Option<TestGreeter>,
    /// Serve over TLS (and mTLS, with a client CA) instead of plaintext.
    pub tls: Option<ServerTlsConfig>,
    /// Serve `grpc.health.v1.Health` too, with the whole server (`""`)
    /// SERVING; see [`Backend::health`].
    pub health: bool,
    /// The layer's stream max age
    /// ([`ReportingConfig::max_stream_age`](orca_lb_server::ReportingConfig::max_stream_age)).
    pub max_stream_age: Option<Duration>,
    /// Wraps the whole service (the reporting layer and the routes), as
    /// the outermost layer: what it adds sees every request first and is
    /// not counted by the reporting layer. `None` serves the service as
    /// it is.
    pub wrap: Option<Wrap>,
}

/// A backend's service as [`Wrap`] receives and returns it: the reporting
/// layer over the routes, boxed.
pub type BackendService =
    BoxCloneService<http::Request<Body>, http::Response<Body>, tower::BoxError>;

/// A function that wraps a backend's service in a layer of the caller's
/// ([`BackendConfig::wrap`]): for instance one that answers some requests
/// itself, or watches every call.
#[derive(Clone)]
pub struct Wrap(Arc<dyn Fn(BackendService) -> BackendService + Send + Sync>);

impl Wrap {
    /// Wraps with `f`, called once per backend when it starts.
    pub fn new(f: impl Fn(BackendService) -> BackendService + Send + Sync + 'static) -> Self {
        Self(Arc::new(f))
    }
}

impl fmt::Debug for Wrap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Wrap").finish_non_exhaustive()
    }
}

/// [`Wrap`] as a tower layer over the reporting layer's service.
#[derive(Debug, Clone)]
struct WrapLayer(Wrap);

impl<S, B> tower::Layer<S> for WrapLayer
where
    S: tower::Service<http::Request<Body>, Response = http::Response<B>> + Clone + Send + 'static,
    S::Error: Into<tower::BoxError>,
    S::Future: Send + 'static,
    B: http_body::Body<Data = bytes::Bytes> + Send + 'static,
    B::Error: Into<tower::BoxError>,
{
    type Service = BackendService;

    fn layer(&self, inner: S) -> BackendService {
        let boxed =
            BoxCloneService::new(inner.map_response(|r| r.map(Body::new)).map_err(Into::into));
        (self.0.0)(boxed)
    }
}

impl BackendConfig {
    /// A backend answering as `name`, at once, reporting no CPU or memory.
    pub fn named(name: &str) -> Self {
        Self {
            name: name.to_string(),
            capacity: None,
            service_time: ServiceTime::default(),
            sampler: FixedSampler::default(),
            min_oob_interval: Duration::from_millis(10),
            greeter: None,
            tls: None,
            health: false,
            max_stream_age: None,
            wrap: None,
        }
    }
}

/// A running test backend. Stops when dropped.
#[derive(Debug)]
pub struct Backend {
    addr: SocketAddr,
    recorder: LoadRecorder,
    greeter: TestGreeter,
    health: Option<tonic_health::server::HealthReporter>,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<Result<(), tonic::transport::Error>>>,
}

impl Backend {
    /// Binds `127.0.0.1:0` and serves the greeter and the ORCA out-of-band
    /// service behind a [`ReportingLayer`].
    pub async fn spawn(config: BackendConfig) -> io::Result<Backend> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        Self::serve(listener, config)
    }

    /// Serves on an already bound listener.
    pub fn serve(listener: TcpListener, config: BackendConfig) -> io::Result<Backend> {
        let addr = listener.local_addr()?;
        let greeter = config.greeter.unwrap_or_else(|| {
            TestGreeter::new(&config.name).with_service_time(config.service_time)
        });
        let mut streaming = StreamingMethods::from_file_descriptor_set(GREETER_DESCRIPTOR_SET)
            .map_err(io::Error::other)?;
        streaming
            .extend_from_file_descriptor_set(orca_lb_proto::FILE_DESCRIPTOR_SET)
            .map_err(io::Error::other)?;
        let mut builder = ReportingLayer::builder()
            .sampler(config.sampler)
            .min_oob_interval(config.min_oob_interval)
            .streaming_methods(streaming);
        if let Some(c) = config.capacity {
            builder = builder.capacity(c);
        }
        if let Some(age) = config.max_stream_age {
            builder = builder.max_stream_age(age);
        }
        let (layer, recorder) = builder.build().map_err(io::Error::other)?;
        let (tx, rx) = oneshot::channel::<()>();
        let mut server = Server::builder();
        if let Some(tls) = config.tls {
            server = server.tls_config(tls).map_err(io::Error::other)?;
        }
        let health = config.health.then(tonic_health::server::health_reporter);
        let mut routes =
            Routes::new(GreeterServer::new(greeter.clone())).add_service(recorder.oob_service());
        if let Some((_, service)) = &health {
            routes = routes.add_service(service.clone());
        }
        // tonic sets TCP_NODELAY only on sockets it binds itself: without it,
        // small frames (replies, out-of-band reports) wait on Nagle and the
        // peer's delayed ACK.
        let incoming = TcpIncoming::from(listener).with_nodelay(Some(true));
        let shutdown = async {
            let _ = rx.await;
        };
        // The first layer given is the outermost.
        let task = match config.wrap {
            None => tokio::spawn(
                server
                    .layer(layer)
                    .add_routes(routes)
                    .serve_with_incoming_shutdown(incoming, shutdown),
            ),
            Some(wrap) => tokio::spawn(
                server
                    .layer(WrapLayer(wrap))
                    .layer(layer)
                    .add_routes(routes)
                    .serve_with_incoming_shutdown(incoming, shutdown),
            ),
        };
        Ok(Backend {
            addr,
            recorder,
            greeter,
            health: health.map(|(reporter, _)| reporter),
            shutdown: Some(tx),
            task: Some(task),
        })
    }

    /// The listening address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The backend's load recorder.
    pub fn recorder(&self) -> &LoadRecorder {
        &self.recorder
    }

    /// Its health reporter, if it serves the health service
    /// ([`BackendConfig::health`]).
    pub fn health(&self) -> Option<&tonic_health::server::HealthReporter> {
        self.health.as_ref()
    }

    /// The backend's greeter.
    pub fn greeter(&self) -> &TestGreeter {
        &self.greeter
    }

    /// Stops accepting, lets calls in flight finish, and waits for the server
    /// to end.
    pub async fn stop(mut self) -> Result<(), tonic::transport::Error> {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        match self.task.take() {
            Some(task) => task.await.unwrap_or(Ok(())),
            None => Ok(()),
        }
    }
}

impl Drop for Backend {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}
