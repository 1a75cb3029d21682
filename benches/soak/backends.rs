//! The backends' process: three honest backends and a hostile one, and the
//! client's handle on that process.
//!
//! The soak binary runs itself again with the hidden `--role backends` flag.
//! The child prints `backend URL` per backend, then `ready`, on stdout; then
//! answers each `stats` read on stdin with `lines N heap B` (its log lines
//! and live heap bytes so far),
//! and exits when stdin closes, without waiting for calls or streams.

use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use orca_lb_proto::pb::open_rca_service_server::OpenRcaServiceServer;
use orca_lb_server::{FixedSampler, ReportingLayer, StreamingMethods};
use orca_lb_testkit::pb::greeter_server::GreeterServer;
use orca_lb_testkit::{Backend, BackendConfig, GREETER_DESCRIPTOR_SET, TestGreeter};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::net::TcpListener;
use tokio::process::{Child, ChildStdin, ChildStdout, Command};
use tonic::transport::Server;
use tonic::transport::server::TcpIncoming;

use crate::heap;
use crate::hostile::{CorruptTrailers, FloodingOob};
use crate::log_lines::LogLines;

/// The honest backends' names; the hostile one is `hostile`.
const HONEST: [&str; 3] = ["a", "b", "c"];

/// The child's side: serves the backends until stdin closes.
pub(crate) async fn serve(lines: LogLines) -> Result<(), String> {
    let mut honest = Vec::new();
    for name in HONEST {
        let config = BackendConfig {
            sampler: FixedSampler::new(0.3, 0.4),
            ..BackendConfig::named(name)
        };
        honest.push(Backend::spawn(config).await.map_err(|e| e.to_string())?);
    }
    let hostile = spawn_hostile().await?;
    let mut out = tokio::io::stdout();
    let mut hello = String::new();
    for b in &honest {
        hello.push_str(&format!("backend {}\n", b.url()));
    }
    hello.push_str(&format!("backend {}\nready\n", hostile.0));
    write(&mut out, &hello).await?;

    let mut stdin = BufReader::new(tokio::io::stdin()).lines();
    while let Some(command) = stdin.next_line().await.map_err(|e| e.to_string())? {
        match command.trim() {
            "stats" => {
                let reply = format!("lines {} heap {}\n", lines.get(), heap::live_bytes());
                write(&mut out, &reply).await?;
            }
            other => return Err(format!("unknown command {other:?} on stdin")),
        }
    }
    // No graceful stop: the client's out-of-band streams would hold it open.
    hostile.1.abort();
    drop(honest);
    Ok(())
}

async fn write(out: &mut tokio::io::Stdout, text: &str) -> Result<(), String> {
    out.write_all(text.as_bytes())
        .await
        .map_err(|e| format!("stdout: {e}"))?;
    out.flush().await.map_err(|e| format!("stdout: {e}"))
}

/// The greeter behind the reporting layer, every trailer then replaced by a
/// hostile one, beside an out-of-band service that floods. Its URL and
/// server task.
async fn spawn_hostile() -> Result<(String, tokio::task::JoinHandle<()>), String> {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| e.to_string())?;
    let url = format!(
        "http://{}",
        listener.local_addr().map_err(|e| e.to_string())?
    );
    let streaming = StreamingMethods::from_file_descriptor_set(GREETER_DESCRIPTOR_SET)
        .map_err(|e| e.to_string())?;
    let (layer, _recorder) = ReportingLayer::builder()
        .sampler(FixedSampler::new(0.3, 0.4))
        .streaming_methods(streaming)
        .build()
        .map_err(|e| e.to_string())?;
    let calls = Arc::new(AtomicU64::new(0));
    let router = Server::builder()
        .layer(tower::layer::layer_fn(move |inner| {
            CorruptTrailers::new(inner, calls.clone())
        }))
        .layer(layer)
        .add_service(GreeterServer::new(TestGreeter::new("hostile")))
        .add_service(OpenRcaServiceServer::new(FloodingOob));
    let incoming = TcpIncoming::from(listener).with_nodelay(Some(true));
    let task = tokio::spawn(async move {
        if let Err(e) = router.serve_with_incoming(incoming).await {
            tracing::error!(error = %e, "the hostile backend stopped");
        }
    });
    Ok((url, task))
}

/// The client's handle on the backends' process.
#[derive(Debug)]
pub(crate) struct BackendsProcess {
    child: Child,
    stdin: ChildStdin,
    stdout: Lines<BufReader<ChildStdout>>,
    /// The backends' URLs, the hostile one last.
    pub(crate) urls: Vec<String>,
    /// Its process id.
    pub(crate) pid: u32,
}

impl BackendsProcess {
    /// Starts this binary as the backends' process and waits until they
    /// listen. `quiet`: its log lines are only counted.
    pub(crate) async fn start(quiet: bool) -> Result<BackendsProcess, String> {
        let exe = std::env::current_exe().map_err(|e| format!("own executable: {e}"))?;
        let mut command = Command::new(exe);
        command.args(["--role", "backends"]);
        if quiet {
            command.arg("--quiet");
        }
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| format!("cannot start the backends' process: {e}"))?;
        let pid = child.id().ok_or("the backends' process ended at once")?;
        let stdin = child.stdin.take().ok_or("no stdin")?;
        let stdout = BufReader::new(child.stdout.take().ok_or("no stdout")?).lines();
        let mut process = BackendsProcess {
            child,
            stdin,
            stdout,
            urls: Vec::new(),
            pid,
        };
        loop {
            let line = process.read_line().await?;
            if line == "ready" {
                break;
            }
            match line.strip_prefix("backend ") {
                Some(url) => process.urls.push(url.to_string()),
                None => return Err(format!("the backends' process said {line:?}")),
            }
        }
        if process.urls.len() != HONEST.len() + 1 {
            return Err(format!("{} backends started", process.urls.len()));
        }
        Ok(process)
    }

    async fn read_line(&mut self) -> Result<String, String> {
        let line = tokio::time::timeout(Duration::from_secs(30), self.stdout.next_line())
            .await
            .map_err(|_| "the backends' process did not answer in 30 s".to_string())?
            .map_err(|e| format!("the backends' process: {e}"))?;
        line.ok_or_else(|| "the backends' process ended".to_string())
    }

    /// The lines the backends' process has logged so far, and its live
    /// heap bytes.
    pub(crate) async fn stats(&mut self) -> Result<(u64, u64), String> {
        self.stdin
            .write_all(b"stats\n")
            .await
            .map_err(|e| format!("the backends' process: {e}"))?;
        let line = self.read_line().await?;
        let mut words = line.split(' ');
        match (words.next(), words.next(), words.next(), words.next()) {
            (Some("lines"), Some(n), Some("heap"), Some(b)) => n
                .parse()
                .ok()
                .zip(b.parse().ok())
                .ok_or_else(|| format!("the backends' process said {line:?}")),
            _ => Err(format!("the backends' process said {line:?}")),
        }
    }

    /// Closes its stdin and waits for it to end (killing it after 10 s).
    pub(crate) async fn stop(self) -> Result<(), String> {
        let BackendsProcess {
            mut child, stdin, ..
        } = self;
        drop(stdin);
        match tokio::time::timeout(Duration::from_secs(10), child.wait()).await {
            Ok(Ok(status)) if status.success() => Ok(()),
            Ok(Ok(status)) => Err(format!("the backends' process ended with {status}")),
            Ok(Err(e)) => Err(format!("the backends' process: {e}")),
            Err(_) => {
                let _ = child.kill().await;
                Err("the backends' process did not stop in 10 s; killed".into())
            }
        }
    }
}
