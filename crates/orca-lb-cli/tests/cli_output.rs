//! The `orca-lb` binary against live servers on 127.0.0.1: what it prints
//! and the exit codes it documents.

use std::process::{Output, Stdio};
use std::time::Duration;

use orca_lb_client::Balancer;
use orca_lb_core::CircuitBreakerConfig;
use orca_lb_debug::{DebugServer, DebugService, serve_debug};
use orca_lb_testkit::{Backend, BackendConfig};
use orca_lb_tests::{client, wait_until, within};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;
use tonic::Code;

const BIN: &str = env!("CARGO_BIN_EXE_orca-lb");

/// Runs `orca-lb args...` to completion.
async fn orca_lb(args: &[&str]) -> Output {
    within(
        "orca-lb to exit",
        Command::new(BIN).args(args).kill_on_drop(true).output(),
    )
    .await
    .expect("orca-lb runs")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Two healthy backends and one failing, behind a balancer that has ejected
/// the failing one and heard from the others, registered with a served debug
/// service.
struct Live {
    backends: Vec<Backend>,
    server: DebugServer,
    /// The debug service only observes it: kept alive here.
    _balancer: Balancer,
}

impl Live {
    async fn start() -> Live {
        let backends = client::backends(&[("a", 1, 4), ("b", 1, 4), ("bad", 1, 4)]).await;
        backends[2].greeter().set_failing(Some(Code::Unavailable));
        let config = client::unsteered(
            client::config()
                .with_breaker(
                    CircuitBreakerConfig::default()
                        .with_consecutive_errors(2)
                        .with_base_ejection_time(Duration::from_secs(60))
                        .with_max_ejection_time(Duration::from_secs(240)),
                )
                // Out-of-band reports: every endpoint is heard from, picked or not.
                .with_oob_interval(Some(Duration::from_millis(20))),
        );
        let balancer = client::balancer(config, &backends).await;
        client::eject(&balancer, &backends[2].url()).await;
        wait_until("every endpoint reported", || {
            balancer.snapshot().endpoints.iter().all(|e| e.reports > 0)
        })
        .await;
        let debug = DebugService::new();
        debug.register("greeter", &balancer);
        let server = serve_debug("127.0.0.1:0", debug)
            .await
            .expect("debug server starts");
        Live {
            backends,
            server,
            _balancer: balancer,
        }
    }

    fn target(&self) -> String {
        self.server.local_addr().to_string()
    }
}

/// An address with nothing listening: bound, then released.
async fn closed_port() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    drop(listener);
    addr.to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn state_prints_one_row_per_endpoint_with_its_state() {
    let live = Live::start().await;
    let out = orca_lb(&["state", "--target", &live.target()]).await;
    let text = stdout(&out);
    assert!(out.status.success(), "{out:?}");
    assert!(
        text.starts_with("balancer greeter (target greeter): 3 endpoints, 1 ejected\n"),
        "{text}"
    );
    let header = text.lines().nth(1).expect("a header row");
    for column in [
        "ENDPOINT",
        "STATE",
        "SCORE MS",
        "SERVICE MS",
        "BACKLOG",
        "UTIL",
        "IN-FLIGHT",
        "PICKS/10S",
        "FAILS/10S",
        "CIRCUIT",
    ] {
        assert!(header.contains(column), "{header}");
    }
    for (i, backend) in live.backends.iter().enumerate() {
        let row = text
            .lines()
            .find(|l| l.starts_with(&backend.url()))
            .unwrap_or_else(|| panic!("no row for {}: {text}", backend.url()));
        if i == 2 {
            assert!(row.contains(" ejected "), "{row}");
            assert!(row.contains("open (2 consecutive errors, "), "{row}");
        } else {
            assert!(row.contains(" ready "), "{row}");
            assert!(row.ends_with("closed"), "{row}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn state_json_parses_with_every_endpoint() {
    let live = Live::start().await;
    let out = orca_lb(&["state", "--target", &live.target(), "--json"]).await;
    assert!(out.status.success(), "{out:?}");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("valid JSON");
    let balancers = v["balancers"].as_array().expect("balancers");
    assert_eq!(balancers.len(), 1);
    let endpoints = balancers[0]["endpoints"].as_array().expect("endpoints");
    assert_eq!(endpoints.len(), live.backends.len());
    let bad = endpoints
        .iter()
        .find(|e| e["key"] == live.backends[2].url())
        .expect("bad endpoint");
    assert_eq!(bad["state"], "ejected");
    assert_eq!(bad["circuit"]["state"], "open");
    assert_eq!(
        bad["circuit"]["last_transition"]["reason"]["kind"],
        "consecutive_errors"
    );
    assert!(bad["score"]["total_seconds"].is_number());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_redraws_until_interrupted() {
    let live = Live::start().await;
    for json in [true, false] {
        let mut args = vec!["state", "--watch", "--interval", "50ms"];
        if json {
            args.push("--json");
        }
        let target = live.target();
        args.extend(["--target", &target]);
        let mut child = Command::new(BIN)
            .args(&args)
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("orca-lb starts");
        let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
        let mut frames = 0;
        while frames < 3 {
            let line = within("a line", lines.next_line())
                .await
                .expect("readable")
                .expect("orca-lb still running");
            if json {
                let v: serde_json::Value = serde_json::from_str(&line).expect("a JSON line");
                assert_eq!(v["balancers"][0]["endpoints"].as_array().unwrap().len(), 3);
                frames += 1;
            } else if line.starts_with("orca-lb state of ") {
                assert!(line.contains("every 50ms"), "{line}");
                frames += 1;
            }
        }
        child.start_kill().expect("kill");
        within("orca-lb to end", child.wait()).await.expect("wait");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_target_exits_2() {
    let target = closed_port().await;
    for command in ["state", "report"] {
        let out = orca_lb(&[command, "--target", &target]).await;
        assert_eq!(out.status.code(), Some(2), "{out:?}");
        let err = stderr(&out);
        assert!(
            err.starts_with(&format!("orca-lb: cannot connect to {target}: ")),
            "{err}"
        );
        assert!(stdout(&out).is_empty());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_without_the_debug_service_exits_3() {
    let backend = Backend::spawn(BackendConfig::named("plain"))
        .await
        .expect("backend starts");
    let target = backend.addr().to_string();
    let out = orca_lb(&["state", "--target", &target]).await;
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    assert_eq!(
        stderr(&out),
        format!("orca-lb: {target} does not serve orca_lb.debug.v1.BalancerDebug\n")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn report_prints_the_decoded_reports_of_an_orca_backend() {
    let backend = Backend::spawn(BackendConfig {
        capacity: Some(4),
        ..BackendConfig::named("reporting")
    })
    .await
    .expect("backend starts");
    backend.recorder().set_queue_depth(7);
    let target = backend.addr().to_string();
    let out = orca_lb(&[
        "report",
        "--target",
        &target,
        "--count",
        "2",
        "--interval",
        "20ms",
    ])
    .await;
    let text = stdout(&out);
    assert!(out.status.success(), "{out:?}");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3, "{text}");
    // The test backend has no health service: its UNIMPLEMENTED answer
    // still carries the layer's report.
    assert!(
        lines[0]
            .starts_with("per-call report (grpc.health.v1.Health/Check -> Unimplemented): cpu="),
        "{text}"
    );
    assert!(lines[1].starts_with("out-of-band report 1: cpu="), "{text}");
    assert!(lines[2].starts_with("out-of-band report 2: cpu="), "{text}");
    for line in lines {
        for field in [" mem=", " rps=", " capacity=4.000", " queue_depth=7.000"] {
            assert!(line.contains(field), "{field} in {line}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn report_on_a_server_without_orca_exits_3() {
    // The debug endpoint serves health, but no ORCA.
    let server = serve_debug("127.0.0.1:0", DebugService::new())
        .await
        .expect("serves");
    let target = server.local_addr().to_string();
    let out = orca_lb(&["report", "--target", &target]).await;
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    assert!(
        stdout(&out).starts_with(
            "per-call report (grpc.health.v1.Health/Check -> SERVING): none: the response has no endpoint-load-metrics-bin"
        ),
        "{out:?}"
    );
    assert_eq!(
        stderr(&out),
        format!("orca-lb: {target} does not serve xds.service.orca.v3.OpenRcaService\n")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usage_errors_exit_1_and_help_lists_the_exit_codes() {
    let out = orca_lb(&["state"]).await;
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(stderr(&out).contains("--target"), "{out:?}");
    let out = orca_lb(&["state", "--target", "127.0.0.1:1", "--interval", "soon"]).await;
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let out = orca_lb(&["state", "--target", "not a target"]).await;
    assert_eq!(out.status.code(), Some(1), "{out:?}");

    for args in [&["--help"][..], &["state", "--help"], &["report", "--help"]] {
        let out = orca_lb(args).await;
        assert!(out.status.success(), "{out:?}");
        let help = stdout(&out);
        for line in [
            "Exit codes:",
            "0  success",
            "1  usage error",
            "2  the target cannot be reached",
            "3  the target is not what the command needs",
            "4  any other error",
        ] {
            assert!(help.contains(line), "{line:?} in {help}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_duration_without_a_unit_is_a_usage_error() {
    for (command, flag) in [
        ("state", "--interval"),
        ("state", "--timeout"),
        ("report", "--connect-timeout"),
    ] {
        let out = orca_lb(&[command, "--target", "127.0.0.1:1", flag, "7"]).await;
        assert_eq!(out.status.code(), Some(1), "{command} {flag}: {out:?}");
        let err = stderr(&out);
        assert!(
            err.contains("`7` has no unit: write 7ms or 7s"),
            "{command} {flag}: {err}"
        );
        assert!(stdout(&out).is_empty(), "{out:?}");
    }
    // The same flag with a unit gets past parsing: nothing listens there,
    // so the command fails to connect (2), not to parse (1).
    let target = closed_port().await;
    let out = orca_lb(&["state", "--target", &target, "--timeout", "1m30s"]).await;
    assert_eq!(out.status.code(), Some(2), "{out:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_named_balancer_that_is_not_registered_exits_4() {
    let live = Live::start().await;
    let out = orca_lb(&["state", "--target", &live.target(), "--balancer", "nope"]).await;
    assert_eq!(out.status.code(), Some(4), "{out:?}");
    assert!(
        stderr(&out).contains("no balancer registered as \"nope\""),
        "{out:?}"
    );
}
