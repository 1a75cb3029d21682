//! The reporting layer on an axum router that serves gRPC and plain HTTP
//! routes on one port.
//!
//! gRPC calls (the greeter) are counted and carry an ORCA report in their
//! trailers; `/healthz` and `/load` are plain HTTP and pass through the layer
//! untouched: not counted, never queued or shed, no report.
//!
//! ```text
//! cargo run -p orca-lb-examples --example axum-router
//! ```
//!
//! By itself it serves on a free port, calls both kinds of route once and
//! prints what each got back. With `--port 8080 --serve` it keeps serving:
//! `curl localhost:8080/healthz`, `curl localhost:8080/load`, and gRPC calls
//! from the `client` example (`--target http://127.0.0.1:8080`).

use std::net::SocketAddr;

use axum::extract::State;
use axum::routing::get;
use clap::Parser;
use orca_lb_core::LoadReport;
use orca_lb_examples::format_report;
use orca_lb_proto::pb::OrcaLoadReport;
use orca_lb_server::{LoadRecorder, ReportingLayer};
use orca_lb_testkit::TestGreeter;
use orca_lb_testkit::pb::HelloRequest;
use orca_lb_testkit::pb::greeter_client::GreeterClient;
use orca_lb_testkit::pb::greeter_server::GreeterServer;
use prost::Message;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

#[derive(Parser, Debug)]
#[command(about = "gRPC and plain HTTP routes behind one reporting layer")]
struct Args {
    /// Port to listen on, on 127.0.0.1 (0: any free port).
    #[arg(long, default_value_t = 0)]
    port: u16,
    /// Keep serving instead of calling each route once and exiting.
    #[arg(long)]
    serve: bool,
}

/// `/load`: the report a gRPC call would get now, as text.
async fn load(State(recorder): State<LoadRecorder>) -> String {
    let report = recorder.report();
    format!("{}\n", format_report(&report))
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    orca_lb_examples::exit_code(run().await)
}

async fn run() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let (layer, recorder) = ReportingLayer::builder().capacity(4).build()?;
    let http_routes = axum::Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/load", get(load))
        .with_state(recorder.clone());
    let app = tonic::service::Routes::new(GreeterServer::new(TestGreeter::new("axum")))
        .add_service(recorder.oob_service())
        .into_axum_router()
        .merge(http_routes)
        // Outermost, so it sees every request; only gRPC calls are counted.
        .layer(layer);

    let listener = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], args.port))).await?;
    let addr = listener.local_addr()?;
    println!("serving gRPC and HTTP on {addr}");
    let server = tokio::spawn(async move { axum::serve(listener, app).await });
    if args.serve {
        server.await??;
        return Ok(());
    }

    let mut client = GreeterClient::connect(format!("http://{addr}")).await?;
    let response = client
        .say_hello(HelloRequest {
            name: "axum".into(),
            ..Default::default()
        })
        .await?;
    match response.metadata().get_bin(orca_lb_proto::TRAILER_KEY) {
        Some(value) => {
            let pb = OrcaLoadReport::decode(value.to_bytes()?)?;
            let report = LoadReport::try_from(pb)?;
            println!(
                "gRPC SayHello: report in the trailers: {}",
                format_report(&report)
            );
        }
        None => println!("gRPC SayHello: no report (unexpected)"),
    }

    let healthz = http_get(addr, "/healthz").await?;
    let has_report = healthz
        .to_ascii_lowercase()
        .contains(orca_lb_proto::TRAILER_KEY);
    println!(
        "HTTP GET /healthz: {:?}, load report: {}",
        healthz.lines().next().unwrap_or_default(),
        if has_report {
            "yes (unexpected)"
        } else {
            "none"
        }
    );
    println!("calls in flight now: {}", recorder.in_flight());
    server.abort();
    Ok(())
}

/// One HTTP/1.1 GET on its own connection; the whole response as text.
async fn http_get(addr: SocketAddr, path: &str) -> std::io::Result<String> {
    let mut tcp = TcpStream::connect(addr).await?;
    let request = format!("GET {path} HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\n\r\n");
    tcp.write_all(request.as_bytes()).await?;
    let mut response = String::new();
    tcp.read_to_string(&mut response).await?;
    Ok(response)
}
