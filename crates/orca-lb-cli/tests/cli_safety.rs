//! The `orca-lb` binary against targets it cannot trust: one that never
//! answers, and servers whose names hold terminal escape sequences.

use std::process::Output;

use orca_lb_debug::{DebugService, serve_debug};
use orca_lb_testkit::{Backend, BackendConfig};
use orca_lb_tests::{client, within};
use tokio::net::TcpListener;
use tokio::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_orca-lb");

/// Clears the screen and retitles the terminal if printed raw.
const HOSTILE: &str = "evil\x1b[2J\x1b]0;pwned\x07";

async fn orca_lb(args: &[&str]) -> Output {
    within(
        "orca-lb to exit",
        Command::new(BIN).args(args).kill_on_drop(true).output(),
    )
    .await
    .expect("orca-lb runs")
}

/// Accepts connections and never says a word.
async fn silent_listener() -> (String, tokio::task::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let task = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    (addr, task)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_target_that_never_answers_fails_with_exit_code_2() {
    let (addr, task) = silent_listener().await;
    for command in ["state", "report"] {
        let out = orca_lb(&[
            command,
            "--target",
            &addr,
            "--connect-timeout",
            "60s",
            "--timeout",
            "300ms",
        ])
        .await;
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{command}: {stderr}");
        assert!(
            stderr.contains("no answer") && stderr.contains("300ms"),
            "{command}: {stderr}"
        );
    }
    task.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn report_prints_server_chosen_names_escaped() {
    let backend = Backend::spawn(BackendConfig::named("a")).await.unwrap();
    backend.recorder().set_named_metric(HOSTILE, 1.0).unwrap();
    let out = orca_lb(&[
        "report",
        "--target",
        &backend.addr().to_string(),
        "--count",
        "1",
    ])
    .await;
    assert_eq!(out.status.code(), Some(0));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        !stdout.contains('\x1b') && !stdout.contains('\x07'),
        "{stdout:?}"
    );
    assert!(
        stdout.contains("evil\\u{1b}[2J\\u{1b}]0;pwned\\u{7}=1.000"),
        "{stdout}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn state_table_escapes_names_and_json_keeps_them_exact() {
    let backends = client::backends(&[("a", 1, 4)]).await;
    let balancer = client::balancer(client::config(), &backends).await;
    let debug = DebugService::new();
    debug.register(HOSTILE, &balancer);
    let server = serve_debug("127.0.0.1:0", debug).await.unwrap();
    let target = server.local_addr().to_string();

    let table = orca_lb(&["state", "--target", &target]).await;
    assert_eq!(table.status.code(), Some(0));
    let stdout = String::from_utf8_lossy(&table.stdout);
    assert!(!stdout.contains('\x1b'), "{stdout:?}");
    assert!(
        stdout.contains("balancer evil\\u{1b}[2J\\u{1b}]0;pwned\\u{7} "),
        "{stdout}"
    );

    let json = orca_lb(&["state", "--target", &target, "--json"]).await;
    assert_eq!(json.status.code(), Some(0));
    let doc: serde_json::Value = serde_json::from_slice(&json.stdout).expect("valid JSON");
    let text = String::from_utf8_lossy(&json.stdout);
    assert!(!text.contains('\x1b'), "JSON escapes it itself: {text:?}");
    let names: Vec<_> = doc["balancers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(names, [HOSTILE]);
    drop(server);
}
