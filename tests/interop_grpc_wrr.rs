//! gRPC's own client balances by our reports.
//!
//! `tests/interop/wrr_client.py` drives two backends with grpcio (gRPC C-core)
//! and its stock `weighted_round_robin` policy (gRFC A58), once reading the
//! per-call `endpoint-load-metrics-bin` trailer and once the out-of-band
//! `StreamCoreMetrics` stream. Both backends have 4 worker slots; "fast"
//! serves a call in 5 ms and "slow" in 20 ms. With capacity set, a backend
//! reports `application_utilization` = busy slot time / capacity and
//! `rps_fractional`, so WRR's weight `qps / utilization` is capacity / service
//! time: 800 for fast, 200 for slow, and slow should get 20 % of the calls.
//! Round robin would give it 50 %. In practice each sleep overshoots by about
//! a millisecond and the reports measure the real busy time, so the weights
//! are nearer 625 and 187 and slow gets about 23 %: the tests also check that
//! the split follows the weights the backends actually report.
//!
//! Needs `python3` with grpcio: `pip install -r tests/interop/requirements.txt`.
//! Without it these tests fail; they never skip.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use orca_lb_testkit::{Backend, BackendConfig, ServiceTime};
use tokio::io::AsyncReadExt;
use tokio::process::Command;

/// Calls measured per run, after the warm-up.
const CALLS: usize = 2000;
/// The client's concurrent workers: about two calls in flight per backend
/// once the split is 80/20, below the 4 slots, so calls rarely queue.
const CONCURRENCY: usize = 4;
/// The whole client run, warm-up included, must end within this.
const CLIENT_LIMIT: Duration = Duration::from_secs(60);
/// Slow's expected share of the calls: weight 200 of 1000.
const EXPECTED_SLOW_SHARE: f64 = 0.2;
/// Accepted spread around [`EXPECTED_SLOW_SHARE`]: far from round robin's
/// half, which a client that did not weigh by the reports would give slow.
const TOLERANCE: f64 = 0.1;
/// Accepted spread around the share the backends' own reports give slow at
/// the end of the run.
const REPORTED_TOLERANCE: f64 = 0.05;

const PIP_HINT: &str = "run `pip install -r tests/interop/requirements.txt` \
     (from the workspace root) to install grpcio";

fn script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("interop/wrr_client.py")
}

/// Fails the test, saying how to fix it, unless `python3` can import grpc.
async fn require_grpcio() {
    let out = Command::new("python3")
        .args(["-c", "import grpc; print(grpc.__version__)"])
        .output()
        .await
        .unwrap_or_else(|e| panic!("cannot run python3 ({e}): install Python 3, then {PIP_HINT}"));
    assert!(
        out.status.success(),
        "python3 cannot import grpc: {PIP_HINT}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

async fn backend(name: &str, service_time_ms: u64) -> Backend {
    Backend::spawn(BackendConfig {
        capacity: Some(4),
        service_time: ServiceTime::Fixed(Duration::from_millis(service_time_ms)),
        ..BackendConfig::named(name)
    })
    .await
    .expect("backend binds 127.0.0.1:0")
}

/// Runs the client to the end and returns its stdout, failing the test on a
/// non-zero exit or after [`CLIENT_LIMIT`] (the child is killed then).
async fn run_client(targets: &str, mode: &str) -> String {
    let mut child = Command::new("python3")
        .arg(script())
        .args(["--targets", targets, "--mode", mode])
        .args(["--calls", &CALLS.to_string()])
        .args(["--concurrency", &CONCURRENCY.to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("python3 starts");
    let mut stdout = child.stdout.take().expect("stdout is piped");
    let mut stderr = child.stderr.take().expect("stderr is piped");
    let out = tokio::spawn(async move {
        let mut s = String::new();
        let _ = stdout.read_to_string(&mut s).await;
        s
    });
    let err = tokio::spawn(async move {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s).await;
        s
    });
    let status = match tokio::time::timeout(CLIENT_LIMIT, child.wait()).await {
        Ok(status) => status.expect("waiting for the client"),
        Err(_) => {
            let _ = child.kill().await;
            let err = err.await.unwrap_or_default();
            panic!("{mode} client did not finish within {CLIENT_LIMIT:?}; killed it\n{err}");
        }
    };
    let out = out.await.unwrap_or_default();
    let err = err.await.unwrap_or_default();
    assert!(
        status.success(),
        "{mode} client failed ({status}):\n{err}{}",
        if err.contains("import grpc") {
            PIP_HINT
        } else {
            ""
        }
    );
    out
}

/// The `"counts"` object of the client's JSON line: backend name to calls.
///
/// A minimal reader for the one shape the client prints (a flat object of
/// string keys and integer values); anything else fails the test.
fn counts(json: &str) -> BTreeMap<String, u64> {
    let bad = || -> ! { panic!("unexpected client output: {json:?}") };
    let start = json.find("\"counts\"").unwrap_or_else(|| bad());
    let rest = &json[start + "\"counts\"".len()..];
    let rest = rest.trim_start().strip_prefix(':').unwrap_or_else(|| bad());
    let rest = rest.trim_start().strip_prefix('{').unwrap_or_else(|| bad());
    let body = &rest[..rest.find('}').unwrap_or_else(|| bad())];
    let mut map = BTreeMap::new();
    for entry in body.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let (k, v) = entry.split_once(':').unwrap_or_else(|| bad());
        let k = k.trim();
        let k = k
            .strip_prefix('"')
            .and_then(|k| k.strip_suffix('"'))
            .unwrap_or_else(|| bad());
        let v: u64 = v.trim().parse().unwrap_or_else(|_| bad());
        map.insert(k.to_string(), v);
    }
    map
}

/// What a backend reports now, and the weight WRR gives that report
/// (`qps / utilization`; no errors here, so no penalty).
fn weight(b: &Backend, name: &str) -> (f64, String) {
    let r = b.recorder().report();
    let util = r.application_utilization();
    let w = r.qps() / util;
    let text = format!(
        "{name}: rps_fractional={:.1} application_utilization={util:.4} \
         weight(qps/util)={w:.1} service_time_ms={:.2}",
        r.qps(),
        r.service_time_ms().unwrap_or(f64::NAN),
    );
    (w, text)
}

async fn slow_gets_its_weighted_share(mode: &str) {
    require_grpcio().await;
    let fast = backend("fast", 5).await;
    let slow = backend("slow", 20).await;
    let targets = format!("{},{}", fast.addr(), slow.addr());

    let started = Instant::now();
    let out = run_client(&targets, mode).await;
    let took = started.elapsed();
    let line = out
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("");
    let counts = counts(line);
    let n_fast = counts.get("fast").copied().unwrap_or(0);
    let n_slow = counts.get("slow").copied().unwrap_or(0);
    let total = n_fast + n_slow;
    assert_eq!(
        total as usize, CALLS,
        "every measured call is answered by fast or slow: {line}"
    );
    let share = n_slow as f64 / total as f64;
    let (w_fast, fast_report) = weight(&fast, "fast");
    let (w_slow, slow_report) = weight(&slow, "slow");
    let reported_share = w_slow / (w_fast + w_slow);
    let reports = format!("{fast_report}\n{slow_report}");
    println!(
        "{mode}: slow share {share:.3} (reports say {reported_share:.3}) in {took:.1?}: \
         {line}\n{reports}"
    );
    let context = format!("client: {line}\nreports now:\n{reports}");
    assert!(
        (share - EXPECTED_SLOW_SHARE).abs() <= TOLERANCE,
        "{mode}: slow got {share:.3} of the calls, expected {EXPECTED_SLOW_SHARE} +- {TOLERANCE}\n\
         {context}"
    );
    // The share follows the reported weights themselves, not just their
    // nominal ratio (real sleeps overshoot, 5 ms by relatively more).
    assert!(
        (share - reported_share).abs() <= REPORTED_TOLERANCE,
        "{mode}: slow got {share:.3} of the calls but the reports weigh it {reported_share:.3}\n\
         {context}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn grpc_wrr_balances_by_per_call_reports() {
    slow_gets_its_weighted_share("per_call").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn grpc_wrr_balances_by_oob_reports() {
    slow_gets_its_weighted_share("oob").await;
}
