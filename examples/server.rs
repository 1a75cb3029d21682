//! A greeter server behind orca-lb's reporting layer.
//!
//! Every call's response carries an ORCA report in its
//! `endpoint-load-metrics-bin` trailer, and `xds.service.orca.v3.OpenRcaService`
//! streams reports out of band. `grpc.health.v1.Health` and server reflection
//! are served behind the same layer.
//!
//! ```text
//! cargo run -p orca-lb-examples --example server -- --port 50051 --capacity 4 --service-time 20ms
//! ```
//!
//! Over TLS, and mTLS with `--tls-client-ca` (certificates from the `certs`
//! example):
//!
//! ```text
//! cargo run -p orca-lb-examples --example server -- --port 50051 \
//!     --tls-cert certs/server.pem --tls-key certs/server.key --tls-client-ca certs/ca.pem
//! ```

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Parser;
use orca_lb_examples::parse_duration;
use orca_lb_server::{ReportingLayer, StreamingMethods};
use orca_lb_testkit::pb::greeter_server::GreeterServer;
use orca_lb_testkit::{GREETER_DESCRIPTOR_SET, ServiceTime, TestGreeter};
use tonic::transport::{Certificate, Identity, Server, ServerTlsConfig};

#[derive(Parser, Debug)]
#[command(about = "A greeter server that publishes ORCA load reports")]
struct Args {
    /// Port to listen on, on 127.0.0.1 (0: any free port).
    #[arg(long, default_value_t = 50051)]
    port: u16,
    /// Name the greeter answers with.
    #[arg(long, default_value = "server")]
    name: String,
    /// Worker slots: unary calls served at once; the rest queue.
    #[arg(long, default_value_t = 4)]
    capacity: usize,
    /// Mean service time of a unary call (exponentially distributed).
    #[arg(long, default_value = "20ms", value_parser = parse_duration)]
    service_time: Duration,
    /// Floor on the out-of-band report interval.
    #[arg(long, default_value = "1s", value_parser = parse_duration)]
    min_oob_interval: Duration,
    /// Serve TLS with this certificate chain (PEM); needs --tls-key.
    #[arg(long, requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The private key (PEM) of --tls-cert.
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Require client certificates signed by the CA in this PEM file (mTLS).
    #[arg(long, requires = "tls_cert")]
    tls_client_ca: Option<PathBuf>,
}

/// A PEM file's contents, or an error naming the flag and the file.
fn read_pem(flag: &str, path: &Path) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("{flag} {}: {e}", path.display()))
}

impl Args {
    fn tls(&self) -> Result<Option<ServerTlsConfig>, String> {
        let (Some(cert), Some(key)) = (&self.tls_cert, &self.tls_key) else {
            return Ok(None);
        };
        let mut tls = ServerTlsConfig::new().identity(Identity::from_pem(
            read_pem("--tls-cert", cert)?,
            read_pem("--tls-key", key)?,
        ));
        if let Some(ca) = &self.tls_client_ca {
            tls = tls.client_ca_root(Certificate::from_pem(read_pem("--tls-client-ca", ca)?));
        }
        Ok(Some(tls))
    }
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    orca_lb_examples::exit_code(run().await)
}

async fn run() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let args = Args::parse();

    let mut streaming = StreamingMethods::from_file_descriptor_set(GREETER_DESCRIPTOR_SET)?;
    streaming.extend_from_file_descriptor_set(orca_lb_proto::FILE_DESCRIPTOR_SET)?;
    let (layer, recorder) = ReportingLayer::builder()
        .capacity(args.capacity)
        .min_oob_interval(args.min_oob_interval)
        .streaming_methods(streaming)
        .build()?;

    let greeter = TestGreeter::new(&args.name).with_service_time(if args.service_time.is_zero() {
        ServiceTime::Fixed(Duration::ZERO)
    } else {
        ServiceTime::Exponential(args.service_time)
    });
    let (health_reporter, health) = tonic_health::server::health_reporter();
    health_reporter
        .set_serving::<GreeterServer<TestGreeter>>()
        .await;
    let reflection = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(GREETER_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(orca_lb_proto::FILE_DESCRIPTOR_SET)
        .build_v1()?;

    let addr = SocketAddr::from(([127, 0, 0, 1], args.port));
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let tls = args.tls()?;
    tracing::info!(
        addr = %listener.local_addr()?,
        capacity = args.capacity,
        service_time = ?args.service_time,
        tls = tls.is_some(),
        mtls = args.tls_client_ca.is_some(),
        "serving greeter with ORCA reporting"
    );
    let mut server = Server::builder();
    if let Some(tls) = tls {
        server = server.tls_config(tls).map_err(|e| {
            format!(
                "--tls-cert {} / --tls-key {}: {e:?}",
                args.tls_cert.as_deref().unwrap_or(Path::new("")).display(),
                args.tls_key.as_deref().unwrap_or(Path::new("")).display()
            )
        })?;
    }
    server
        .layer(layer)
        .add_service(GreeterServer::new(greeter))
        .add_service(recorder.oob_service())
        .add_service(health)
        .add_service(reflection)
        .serve_with_incoming_shutdown(
            tokio_stream::wrappers::TcpListenerStream::new(listener),
            async {
                let _ = tokio::signal::ctrl_c().await;
                tracing::info!("shutting down");
            },
        )
        .await?;
    Ok(())
}
