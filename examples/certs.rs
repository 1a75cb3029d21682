//! Writes a test CA, a server certificate for one name and a client
//! certificate (PEM) into a directory, for trying the `server` and `client`
//! examples over TLS and mTLS. For tests and trials only: the keys are
//! written unencrypted.
//!
//! ```text
//! cargo run -p orca-lb-examples --example certs -- --dir certs --name greeter.example
//! ```

use std::path::PathBuf;

use clap::Parser;
use orca_lb_testkit::TestPki;

#[derive(Parser, Debug)]
#[command(about = "Write a test CA and server and client certificates")]
struct Args {
    /// Directory to write ca.pem, server.pem, server.key, client.pem and
    /// client.key into (created if missing).
    #[arg(long, default_value = "certs")]
    dir: PathBuf,
    /// The DNS name the server certificate carries.
    #[arg(long, default_value = "greeter.example")]
    name: String,
}

fn main() -> std::process::ExitCode {
    orca_lb_examples::exit_code(run())
}

fn run() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    TestPki::generate(&args.name)?.write_to(&args.dir)?;
    println!(
        "wrote ca.pem, server.pem, server.key (for {}), client.pem, client.key to {}",
        args.name,
        args.dir.display()
    );
    Ok(())
}
