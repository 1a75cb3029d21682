//! Calls greeter servers through orca-lb's balancer and prints, every
//! second, how the calls split across them. The servers are a list
//! (`--target`, repeated) or whatever is registered in etcd (`--etcd`).
//!
//! ```text
//! cargo run -p orca-lb-examples --example server -- --port 50051 &
//! cargo run -p orca-lb-examples --example server -- --port 50052 --service-time 40ms &
//! cargo run -p orca-lb-examples --example client -- --target http://127.0.0.1:50051 --target http://127.0.0.1:50052
//! ```
//!
//! From etcd, in a Go fleet's formats: here the two servers are registered
//! as a Go service would, one as a bare `host:port` (Go's classic lease
//! registration, without the lease), one as the JSON of etcd's naming
//! package, through etcd's HTTP gateway (`etcdctl put KEY VALUE` does the
//! same). `--etcd-format auto`, the default, reads each value in the format
//! it shows:
//!
//! ```text
//! scripts/etcd start &
//! cargo run -p orca-lb-examples --example server -- --port 50051 --name a &
//! cargo run -p orca-lb-examples --example server -- --port 50052 --name b --service-time 40ms &
//! put() { curl -sf --retry 10 --retry-connrefused http://127.0.0.1:2379/v3/kv/put -d "{\"key\":\"$(printf %s "$1" | base64 -w0)\",\"value\":\"$(printf %s "$2" | base64 -w0)\"}" >/dev/null; }
//! put /goscheme/greeter/127.0.0.1:50051 127.0.0.1:50051
//! put /goscheme/greeter/127.0.0.1:50052 '{"Op":0,"Addr":"127.0.0.1:50052","Metadata":{"zone":"b"}}'
//! cargo run -p orca-lb-examples --example client -- --etcd http://127.0.0.1:2379 --prefix /goscheme --service greeter --etcd-format auto
//! ```
//!
//! `--prefix ""` reads keys `<service>/...` (etcd's naming package with the
//! service as its target).
//!
//! An etcd served over TLS, with client certificates and users: `--etcd`
//! takes `https://` URLs (comma-separated for several members),
//! `--etcd-ca` its CA, `--etcd-cert`/`--etcd-key` this client's certificate
//! for `--client-cert-auth`, `--etcd-server-name` the name in etcd's
//! certificate when it is not the URL's host. `--etcd-user` authenticates;
//! the password comes from `ETCD_PASSWORD` or `--etcd-password-file`, never
//! from the command line:
//!
//! ```text
//! ETCD_PASSWORD=... cargo run -p orca-lb-examples --example client -- \
//!     --etcd https://127.0.0.1:2379 --etcd-ca certs/ca.pem --etcd-server-name etcd.example \
//!     --etcd-cert certs/client.pem --etcd-key certs/client.key --etcd-user orca
//! ```
//!
//! Over TLS (certificates from the `certs` example), the targets are still
//! the addresses to dial; the certificates are checked against
//! `--tls-domain`:
//!
//! ```text
//! cargo run -p orca-lb-examples --example client -- --target http://127.0.0.1:50051 \
//!     --tls-ca certs/ca.pem --tls-domain greeter.example --tls-cert certs/client.pem --tls-key certs/client.key
//! ```

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use orca_lb_client::{Balancer, BalancerConfig, EndpointTemplate, TlsFiles};
use orca_lb_etcd::{
    EtcdClient, EtcdClientOptions, EtcdCredentials, EtcdDiscovery, EtcdTls, ValueFormat,
};
use orca_lb_examples::parse_duration;
use orca_lb_testkit::pb::HelloRequest;
use orca_lb_testkit::pb::greeter_client::GreeterClient;
use parking_lot::Mutex;

#[derive(Parser, Debug)]
#[command(about = "Call greeter servers through orca-lb and watch the split")]
#[command(group(clap::ArgGroup::new("source").required(true).args(["targets", "etcd"])))]
struct Args {
    /// A server to balance over (`http://host:port`); repeat for more.
    #[arg(long = "target")]
    targets: Vec<String>,
    /// Discover the servers in this etcd (`http://host:port` or
    /// `https://host:port`; comma-separated for several members) instead.
    #[arg(long)]
    etcd: Option<String>,
    /// etcd over TLS: the CA certificates (PEM) that sign etcd's certificate.
    #[arg(long, requires = "etcd")]
    etcd_ca: Option<PathBuf>,
    /// etcd over mTLS: this client's certificate chain (PEM); needs --etcd-key.
    #[arg(long, requires_all = ["etcd", "etcd_key"])]
    etcd_cert: Option<PathBuf>,
    /// etcd over mTLS: this client's private key (PEM); needs --etcd-cert.
    #[arg(long, requires_all = ["etcd", "etcd_cert"])]
    etcd_key: Option<PathBuf>,
    /// The name etcd's certificate carries, when not the URL's host.
    #[arg(long, requires = "etcd")]
    etcd_server_name: Option<String>,
    /// Authenticate to etcd as this user; the password comes from the
    /// ETCD_PASSWORD environment variable or --etcd-password-file.
    #[arg(long, requires = "etcd")]
    etcd_user: Option<String>,
    /// A file holding the etcd user's password (one line).
    #[arg(long, requires = "etcd_user")]
    etcd_password_file: Option<PathBuf>,
    /// The service to discover in etcd: keys `<prefix>/<service>/...`.
    #[arg(long, default_value = "greeter", conflicts_with = "targets")]
    service: String,
    /// The etcd key prefix; empty for keys `<service>/...`.
    #[arg(long, default_value = "/orca-lb", conflicts_with = "targets")]
    prefix: String,
    /// How to read etcd values: auto, orca-lb, bare (`host:port`) or
    /// go-naming (`{"Op":0,"Addr":...}`).
    #[arg(long, default_value = "auto", conflicts_with = "targets", value_parser = parse_value_format)]
    etcd_format: ValueFormat,
    /// Concurrent callers.
    #[arg(long, default_value_t = 8)]
    concurrency: usize,
    /// How long to run.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    duration: Duration,
    /// Subscribe to out-of-band reports at this period (e.g. 1s).
    #[arg(long, value_parser = parse_duration)]
    oob: Option<Duration>,
    /// Speak TLS, trusting the CA certificates in this PEM file.
    #[arg(long)]
    tls_ca: Option<PathBuf>,
    /// The name the servers' certificates must carry (default: the first
    /// target's host). Implies TLS.
    #[arg(long)]
    tls_domain: Option<String>,
    /// This client's certificate chain (PEM), for mTLS; needs --tls-key.
    #[arg(long, requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// This client's private key (PEM), for mTLS; needs --tls-cert.
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<PathBuf>,
}

impl Args {
    /// The endpoint template the TLS flags ask for: plaintext without any.
    fn endpoint(&self) -> Result<EndpointTemplate, Box<dyn std::error::Error>> {
        if self.tls_ca.is_none() && self.tls_domain.is_none() && self.tls_cert.is_none() {
            return Ok(EndpointTemplate::plain());
        }
        let name = match (&self.tls_domain, self.targets.first()) {
            (Some(domain), _) => domain.clone(),
            (None, Some(first)) => {
                let first: http::Uri = first.parse()?;
                first.host().ok_or("a target has no host")?.to_string()
            }
            (None, None) => return Err("TLS with --etcd needs --tls-domain".into()),
        };
        let files = TlsFiles::default()
            .with_ca(self.tls_ca.clone())
            .with_domain(self.tls_domain.clone())
            .with_cert(self.tls_cert.clone())
            .with_key(self.tls_key.clone());
        Ok(files.template(&format!("https://{name}"))?)
    }

    /// How to reach etcd: TLS files, server name, user and password.
    fn etcd_options(&self) -> Result<EtcdClientOptions, Box<dyn std::error::Error>> {
        let mut options = EtcdClientOptions::default().request_timeout(Duration::from_secs(2));
        if self.etcd_ca.is_some() || self.etcd_cert.is_some() || self.etcd_server_name.is_some() {
            let mut tls = EtcdTls::from_files(
                self.etcd_ca.as_ref(),
                self.etcd_cert.as_ref(),
                self.etcd_key.as_ref(),
            )?;
            if let Some(name) = &self.etcd_server_name {
                tls = tls.server_name(name.clone());
            }
            options = options.tls(tls);
        }
        if let Some(user) = &self.etcd_user {
            let password = match &self.etcd_password_file {
                Some(path) => std::fs::read_to_string(path)
                    .map_err(|e| format!("--etcd-password-file {}: {e}", path.display()))?
                    .trim_end_matches(['\r', '\n'])
                    .to_string(),
                None => std::env::var("ETCD_PASSWORD").map_err(|_| {
                    "--etcd-user needs a password: set ETCD_PASSWORD or give --etcd-password-file"
                })?,
            };
            options = options.credentials(EtcdCredentials::new(user.clone(), password));
        }
        Ok(options)
    }
}

/// `--etcd-format`: the error lists the accepted values.
fn parse_value_format(s: &str) -> Result<ValueFormat, String> {
    s.parse::<ValueFormat>().map_err(|_| {
        format!(
            "unknown etcd value format {s:?}: expected one of {}",
            ValueFormat::NAMES.join(", ")
        )
    })
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    orca_lb_examples::exit_code(run().await)
}

async fn run() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "orca_lb_client=info,orca_lb_etcd=info".into()),
        )
        .init();
    let args = Args::parse();
    let config = BalancerConfig::default()
        .with_target("greeter")
        .with_oob_interval(args.oob)
        .with_endpoint(args.endpoint()?);
    let balancer = match &args.etcd {
        None => {
            let balancer = Balancer::from_uris(config, &args.targets)?;
            balancer.wait_for_endpoints(args.targets.len()).await;
            balancer
        }
        Some(url) => {
            let etcd = EtcdClient::connect_lazy_with(url.split(','), args.etcd_options()?)?;
            let discovery = EtcdDiscovery::with_prefix(etcd, &args.prefix, &args.service)
                .value_format(args.etcd_format);
            let prefix = discovery.key_prefix().to_string();
            let stats = discovery.stats();
            let balancer = Balancer::new(config, discovery.into_stream())?;
            if tokio::time::timeout(Duration::from_secs(5), balancer.wait_for_endpoints(1))
                .await
                .is_err()
            {
                return Err(format!(
                    "no endpoint under {prefix:?} in etcd at {url} within 5 s \
                     ({} malformed values skipped, {} failed reads{})",
                    stats.malformed(),
                    stats.reconnects(),
                    stats
                        .last_error()
                        .map_or_else(String::new, |e| format!("; the last: {e}"))
                )
                .into());
            }
            for (key, record) in stats.endpoints() {
                let metadata = record.metadata.as_deref().or(record.zone.as_deref());
                println!(
                    "discovered {key}: {} {}",
                    record.addr,
                    metadata.unwrap_or("")
                );
            }
            if stats.malformed() > 0 {
                println!("skipped {} malformed values", stats.malformed());
            }
            balancer
        }
    };

    let counts = Arc::new(Mutex::new(BTreeMap::<String, u64>::new()));
    let end = tokio::time::Instant::now() + args.duration;
    for _ in 0..args.concurrency.max(1) {
        let mut client = GreeterClient::new(balancer.clone());
        let counts = counts.clone();
        tokio::spawn(async move {
            while tokio::time::Instant::now() < end {
                let key = match client.say_hello(HelloRequest::default()).await {
                    Ok(reply) => reply.into_inner().backend,
                    Err(status) => format!("error {:?}", status.code()),
                };
                *counts.lock().entry(key).or_default() += 1;
            }
        });
    }
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.tick().await;
    while tokio::time::Instant::now() < end {
        tick.tick().await;
        let split = std::mem::take(&mut *counts.lock());
        let total: u64 = split.values().sum();
        let line: Vec<String> = split
            .iter()
            .map(|(k, v)| format!("{k} {v} ({:.0}%)", 100.0 * *v as f64 / total.max(1) as f64))
            .collect();
        println!("{total:>6} calls/s: {}", line.join(", "));
    }
    Ok(())
}
