//! Command-line arguments.

use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use orca_lb_debug::duration_arg::parse_duration;

/// The exit codes, as `--help` shows them (also in `docs/observability.md`).
const EXIT_CODES: &str = "\
Exit codes:
  0  success
  1  usage error: unknown flag, bad value
  2  the target cannot be reached: nothing listening, refused, timed out, connection lost,
     or no answer to a call within --timeout
  3  the target is not what the command needs: it does not serve
     orca_lb.debug.v1.BalancerDebug (state) or xds.service.orca.v3.OpenRcaService (report)
  4  any other error";

#[derive(Debug, Parser)]
#[command(
    name = "orca-lb",
    version,
    about = "Look inside orca-lb balancers and the ORCA load reports of gRPC servers",
    after_help = EXIT_CODES
)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Show every endpoint of the balancers of a process that serves the
    /// orca-lb debug service: state, score, load, picks, failures, circuit.
    #[command(after_help = EXIT_CODES)]
    State(StateArgs),
    /// Show the ORCA load reports a gRPC server sends: the per-call report
    /// on a grpc.health.v1.Health/Check, then out-of-band reports.
    #[command(after_help = EXIT_CODES)]
    Report(ReportArgs),
}

#[derive(Debug, Args)]
pub(crate) struct StateArgs {
    /// The debug endpoint, as HOST:PORT (or http://HOST:PORT).
    #[arg(long, value_name = "HOST:PORT")]
    pub(crate) target: String,
    /// Only the balancer registered under this name.
    #[arg(long, value_name = "NAME")]
    pub(crate) balancer: Option<String>,
    /// Redraw live (WatchState) until interrupted.
    #[arg(long)]
    pub(crate) watch: bool,
    /// Time between redraws with --watch: 500ms, 2s, 1m30s, ... (at least
    /// 50ms).
    #[arg(long, default_value = "1s", value_parser = parse_duration)]
    pub(crate) interval: Duration,
    /// Print JSON instead of a table; with --watch, one document per line.
    #[arg(long)]
    pub(crate) json: bool,
    /// Give up connecting after this long.
    #[arg(long, default_value = "3s", value_parser = parse_duration)]
    pub(crate) connect_timeout: Duration,
    /// Give up on a call the target does not answer within this long (exit
    /// code 2); a streamed message may be this much late.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    pub(crate) timeout: Duration,
}

#[derive(Debug, Args)]
pub(crate) struct ReportArgs {
    /// The server, as HOST:PORT (or http://HOST:PORT).
    #[arg(long, value_name = "HOST:PORT")]
    pub(crate) target: String,
    /// Out-of-band reports to print after the per-call one (0: none).
    #[arg(long, default_value_t = 3)]
    pub(crate) count: usize,
    /// Out-of-band report interval to ask for (the server may send less often).
    #[arg(long, default_value = "1s", value_parser = parse_duration)]
    pub(crate) interval: Duration,
    /// Give up connecting after this long.
    #[arg(long, default_value = "3s", value_parser = parse_duration)]
    pub(crate) connect_timeout: Duration,
    /// Give up on a call the target does not answer within this long (exit
    /// code 2); a streamed message may be this much late.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    pub(crate) timeout: Duration,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_line_is_well_formed() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
