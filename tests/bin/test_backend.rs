//! A test backend in its own process, so that a test can kill it with
//! SIGKILL: serves the test greeter behind the reporting layer on
//! `127.0.0.1:0`, prints `listening ADDR` on stdout, and exits when its
//! standard input closes (so it never outlives the test that started it).
//!
//! Usage: `orca-lb-test-backend NAME SERVICE_MS [health]`; with `health`,
//! it serves `grpc.health.v1.Health` too (the whole server SERVING).

use std::io::Write;
use std::time::Duration;

use orca_lb_testkit::{Backend, BackendConfig, ServiceTime};
use tokio::io::AsyncReadExt;

#[tokio::main(flavor = "multi_thread", worker_threads = 1)]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let name = args
        .next()
        .ok_or("usage: orca-lb-test-backend NAME SERVICE_MS")?;
    let ms: u64 = args
        .next()
        .ok_or("usage: orca-lb-test-backend NAME SERVICE_MS")?
        .parse()
        .map_err(|e| format!("SERVICE_MS: {e}"))?;
    let health = match args.next().as_deref() {
        None => false,
        Some("health") => true,
        Some(other) => return Err(format!("unexpected argument {other:?}").into()),
    };
    let backend = Backend::spawn(BackendConfig {
        service_time: ServiceTime::Fixed(Duration::from_millis(ms)),
        health,
        ..BackendConfig::named(&name)
    })
    .await?;
    let mut out = std::io::stdout();
    writeln!(out, "listening {}", backend.addr())?;
    out.flush()?;
    let mut sink = Vec::new();
    tokio::io::stdin().read_to_end(&mut sink).await?;
    backend.stop().await?;
    Ok(())
}
