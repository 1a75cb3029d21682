//! A real tonic server on loopback with the reporting layer.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use orca_lb_server::{FixedSampler, LoadRecorder, ReportingLayer, StreamingMethods};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tonic::transport::server::TcpIncoming;
use tonic::transport::{Server, ServerTlsConfig};

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
        let router = server
            .layer(layer)
            .add_service(GreeterServer::new(greeter.clone()))
            .add_service(recorder.oob_service())
            .add_optional_service(health.as_ref().map(|(_, service)| service.clone()));
        // tonic sets TCP_NODELAY only on sockets it binds itself: without it,
        // small frames (replies, out-of-band reports) wait on Nagle and the
        // peer's delayed ACK.
        let incoming = TcpIncoming::from(listener).with_nodelay(Some(true));
        let task = tokio::spawn(router.serve_with_incoming_shutdown(incoming, async {
            let _ = rx.await;
        }));
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
