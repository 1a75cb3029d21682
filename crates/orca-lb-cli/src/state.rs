//! `orca-lb state`: the balancers of a process, once or live.

use std::time::Duration;

use orca_lb_debug::pb::balancer_debug_client::BalancerDebugClient;
use orca_lb_debug::pb::{GetStateRequest, SERVICE_NAME, State, WatchStateRequest};
use orca_lb_debug::render;

use crate::args::StateArgs;
use crate::connect::connect;
use crate::deadline::within;
use crate::error::CliError;
use crate::output::{emit, redraw};

pub(crate) async fn run(args: StateArgs) -> Result<(), CliError> {
    let channel = connect(&args.target, args.connect_timeout).await?;
    let mut client = BalancerDebugClient::new(channel);
    let balancer = args.balancer.clone().unwrap_or_default();
    let failed = |s: tonic::Status| CliError::from_status(&args.target, SERVICE_NAME, &s);
    let target = args.target.as_str();
    let timeout = args.timeout;
    if !args.watch {
        let state = within(target, "GetState", timeout, async {
            client
                .get_state(GetStateRequest { balancer })
                .await
                .map_err(failed)
        })
        .await?
        .into_inner();
        return emit(&if args.json {
            format!("{:#}\n", render::json(&state))
        } else {
            render::table(&state)
        });
    }

    let interval = prost_duration(args.interval)?;
    let mut states = within(target, "WatchState", timeout, async {
        client
            .watch_state(WatchStateRequest {
                interval: Some(interval),
                balancer,
            })
            .await
            .map_err(failed)
    })
    .await?
    .into_inner();
    // The first state comes at once; each next one an interval later.
    let mut wait = timeout;
    let start = tokio::time::Instant::now();
    let mut first = true;
    loop {
        let next = tokio::select! {
            _ = tokio::signal::ctrl_c() => return Ok(()),
            next = within(target, "WatchState", wait, async {
                states.message().await.map_err(failed)
            }) => next,
        };
        wait = args.interval + timeout;
        match next? {
            Some(state) => {
                let frame = frame(&args, &state, start.elapsed());
                if args.json {
                    emit(&frame)?;
                } else {
                    redraw(&frame, first)?;
                }
                first = false;
            }
            None => {
                return Err(CliError::Unreachable {
                    target: args.target.clone(),
                    cause: "the server ended the watch".to_string(),
                });
            }
        }
    }
}

/// One live frame: compact JSON on one line, or a header and the table.
fn frame(args: &StateArgs, state: &State, elapsed: Duration) -> String {
    if args.json {
        return format!("{}\n", render::json(state));
    }
    format!(
        "orca-lb state of {} every {}, t+{:.0}s (Ctrl-C to quit)\n\n{}",
        args.target,
        render::age(args.interval),
        elapsed.as_secs_f64(),
        render::table(state)
    )
}

fn prost_duration(d: Duration) -> Result<orca_lb_proto::prost_types::Duration, CliError> {
    d.try_into()
        .map_err(|_| CliError::Usage(format!("--interval {d:?} is too long")))
}
