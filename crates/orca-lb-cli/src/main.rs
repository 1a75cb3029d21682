//! `orca-lb`: look inside orca-lb balancers and the servers they balance.
//!
//! * `orca-lb state --target HOST:PORT` asks a process that serves the
//!   orca-lb debug service (`orca_lb.debug.v1.BalancerDebug`, from the
//!   `orca-lb-debug` crate) for its balancers, and prints one row per
//!   endpoint: state, score and its terms, load, picks, failures, circuit.
//!   `--watch` redraws it live, `--json` prints JSON.
//! * `orca-lb report --target HOST:PORT` shows the ORCA load reports any
//!   gRPC server with ORCA sends: the per-call one, from the trailer of a
//!   `grpc.health.v1.Health/Check`, then a few out-of-band ones.
//!
//! Exit codes are listed in [`error`] and in `orca-lb --help`.

mod args;
mod connect;
mod deadline;
mod duration_arg;
mod error;
mod output;
mod report;
mod state;

use std::process::ExitCode;

use clap::Parser;

use crate::args::{Cli, Command};
use crate::error::CliError;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // clap exits with 2 on a usage error; ours is 1 (2 is "unreachable").
            let _ = e.print();
            return if e.use_stderr() {
                ExitCode::from(CliError::USAGE)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return fail(&CliError::Other(format!("cannot start the runtime: {e}"))),
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::State(args) => state::run(args).await,
            Command::Report(args) => report::run(args).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.is_closed_output() => ExitCode::SUCCESS,
        Err(e) => fail(&e),
    }
}

fn fail(e: &CliError) -> ExitCode {
    eprintln!("orca-lb: {e}");
    ExitCode::from(e.exit_code())
}
