//! Calls a greeter and prints the ORCA reports it sends: the per-call trailer
//! of a few calls, then a few out-of-band reports.
//!
//! ```text
//! cargo run -p orca-lb-examples --example decode                       # in-process backend
//! cargo run -p orca-lb-examples --example decode -- --target http://127.0.0.1:50051
//! ```

use std::time::Duration;

use clap::Parser;
use orca_lb_core::LoadReport;
use orca_lb_examples::{format_report, parse_duration};
use orca_lb_proto::pb::OrcaLoadReportRequest;
use orca_lb_proto::pb::open_rca_service_client::OpenRcaServiceClient;
use orca_lb_testkit::pb::HelloRequest;
use orca_lb_testkit::pb::greeter_client::GreeterClient;
use orca_lb_testkit::{Backend, BackendConfig, ServiceTime};
use prost::Message;
use tonic::transport::Endpoint;

#[derive(Parser, Debug)]
#[command(about = "Print the ORCA reports a greeter sends")]
struct Args {
    /// Server to call; without it, an in-process backend is started.
    #[arg(long)]
    target: Option<String>,
    /// Unary calls to make.
    #[arg(long, default_value_t = 3)]
    calls: usize,
    /// Out-of-band reports to print.
    #[arg(long, default_value_t = 3)]
    oob_reports: usize,
    /// Out-of-band interval to ask for (the server may clamp it).
    #[arg(long, default_value = "1s", value_parser = parse_duration)]
    interval: Duration,
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    orca_lb_examples::exit_code(run().await)
}

async fn run() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let mut _local = None;
    let target = match args.target {
        Some(t) => t,
        None => {
            let b = Backend::spawn(BackendConfig {
                capacity: Some(4),
                service_time: ServiceTime::Exponential(Duration::from_millis(5)),
                ..BackendConfig::named("local")
            })
            .await?;
            let url = b.url();
            println!("started an in-process backend at {url}");
            _local = Some(b);
            url
        }
    };
    let channel = Endpoint::from_shared(target.clone())?
        .connect()
        .await
        .map_err(|e| format!("cannot reach {target}: {e}"))?;

    let mut greeter = GreeterClient::new(channel.clone());
    for i in 0..args.calls {
        let response = greeter
            .say_hello(HelloRequest {
                name: format!("call {i}"),
                ..Default::default()
            })
            .await?;
        match response.metadata().get_bin(orca_lb_proto::TRAILER_KEY) {
            None => println!("call {i}: no {} trailer", orca_lb_proto::TRAILER_KEY),
            Some(v) => {
                let bytes = v.to_bytes()?;
                let pb = orca_lb_proto::pb::OrcaLoadReport::decode(bytes)?;
                match LoadReport::try_from(pb) {
                    Ok(r) => println!("call {i} trailer: {}", format_report(&r)),
                    Err(e) => println!("call {i}: {e}"),
                }
            }
        }
    }

    let mut oob = OpenRcaServiceClient::new(channel);
    let request = OrcaLoadReportRequest {
        report_interval: Some(args.interval.try_into()?),
        request_cost_names: vec![],
    };
    let mut stream = match oob.stream_core_metrics(request).await {
        Ok(r) => r.into_inner(),
        Err(s) if s.code() == tonic::Code::Unimplemented => {
            println!("{target} has no out-of-band ORCA service");
            return Ok(());
        }
        Err(s) => return Err(s.into()),
    };
    for i in 0..args.oob_reports {
        let Some(pb) = stream.message().await? else {
            break;
        };
        match LoadReport::try_from(pb) {
            Ok(r) => println!("oob report {i}: {}", format_report(&r)),
            Err(e) => println!("oob report {i}: {e}"),
        }
    }
    Ok(())
}
