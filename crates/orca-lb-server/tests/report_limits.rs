//! Report size and name length limits, and how refusals are logged.

mod support;

use std::time::Duration;

use http::Request;
use orca_lb_core::named_metrics;
use orca_lb_server::{
    CallRecorder, FixedSampler, LoadRecorder, RecordError, ReportingConfig, ReportingLayer,
};
use support::{Logs, grpc_call, report};
use tower::ServiceExt;
use tower_layer::Layer;

async fn layer(config: ReportingConfig) -> (ReportingLayer, LoadRecorder) {
    ReportingLayer::builder()
        .config(config)
        .sampler(FixedSampler::new(0.5, 0.25))
        .build()
        .unwrap()
}

/// A name of exactly `len` bytes, distinct for each `i`.
fn name(i: usize, len: usize) -> String {
    let prefix = format!("m{i}_");
    format!("{prefix}{}", "x".repeat(len - prefix.len()))
}

#[tokio::test]
async fn long_names_are_refused() {
    let (_layer, recorder) = layer(ReportingConfig::default()).await;
    assert_eq!(recorder.set_named_metric(&name(0, 64), 1.0), Ok(()));
    assert_eq!(
        recorder.set_named_metric(&name(1, 65), 1.0),
        Err(RecordError::NameTooLong { len: 65, max: 64 })
    );
    assert!(
        !recorder
            .report()
            .as_raw()
            .named_metrics
            .contains_key(&name(1, 65))
    );
}

#[tokio::test]
async fn server_wide_metrics_stop_at_the_report_limit_and_the_standard_fields_stay() {
    let (layer, recorder) = layer(ReportingConfig::default().with_capacity(Some(4))).await;
    let max = ReportingConfig::default().max_report_bytes;
    let mut accepted = 0;
    let mut refused = 0;
    for i in 0..200 {
        match recorder.set_named_metric(&name(i, 60), 1.0) {
            Ok(()) => accepted += 1,
            Err(RecordError::ReportFull { max: m }) => {
                assert_eq!(m, max);
                refused += 1;
            }
            Err(e) => panic!("{e}"),
        }
    }
    assert!(accepted > 20 && refused > 100, "{accepted} accepted");
    // Replacing a value already sent is always allowed.
    assert_eq!(recorder.set_named_metric(&name(0, 60), 2.0), Ok(()));

    let svc_gate = support::Gated::default();
    svc_gate.open(1);
    let response = layer.layer(svc_gate).oneshot(grpc_call()).await.unwrap();
    let (pb, size) = report(response.headers());
    assert!(size <= max, "{size} bytes");
    assert_eq!(pb.cpu_utilization, 0.5);
    assert_eq!(pb.mem_utilization, 0.25);
    assert!(pb.application_utilization > 0.0);
    assert_eq!(pb.named_metrics[named_metrics::CAPACITY], 4.0);
    let mine =
        |names: &mut dyn Iterator<Item = &String>| names.filter(|k| k.starts_with('m')).count();
    assert_eq!(
        mine(&mut pb.named_metrics.keys()),
        accepted,
        "all accepted are sent"
    );
    let oob = recorder.report();
    assert_eq!(mine(&mut oob.as_raw().named_metrics.keys()), accepted);
}

#[tokio::test]
async fn per_call_entries_that_no_longer_fit_are_dropped_from_the_report() {
    let (layer, recorder) = layer(ReportingConfig::default()).await;
    let (logs, _guard) = Logs::capture();
    let gate = std::sync::Arc::new(tokio::sync::Semaphore::new(0));
    let (entered_tx, entered) = tokio::sync::oneshot::channel();
    let entered_tx = std::sync::Arc::new(parking_lot::Mutex::new(Some(entered_tx)));
    let handler_gate = gate.clone();
    // The handler records its costs while the report is empty, then waits.
    let svc = layer.layer(tower::service_fn(move |req: Request<()>| {
        let call = CallRecorder::of_http(&req).unwrap();
        let gate = handler_gate.clone();
        let entered_tx = entered_tx.clone();
        async move {
            for i in 0..20 {
                call.record_request_cost(&name(i, 60), 1.0).unwrap();
            }
            let _ = entered_tx.lock().take().unwrap().send(());
            gate.acquire().await.unwrap().forget();
            let mut r = http::Response::new(http_body_util::Empty::<bytes::Bytes>::new());
            r.headers_mut()
                .insert("grpc-status", http::HeaderValue::from_static("0"));
            Ok::<_, std::convert::Infallible>(r)
        }
    }));
    let call = tokio::spawn(svc.oneshot(grpc_call()));
    entered.await.unwrap();
    // Meanwhile the server-wide metrics fill the report.
    let mut i = 100;
    while recorder.set_named_metric(&name(i, 60), 1.0).is_ok() {
        i += 1;
    }
    gate.add_permits(1);
    let response = call.await.unwrap().unwrap();
    let (pb, size) = report(response.headers());
    assert!(
        size <= ReportingConfig::default().max_report_bytes,
        "{size}"
    );
    assert!(pb.request_cost.len() < 20, "{} kept", pb.request_cost.len());
    let dropped: Vec<_> = logs
        .lines()
        .into_iter()
        .filter(|l| l.contains("source=\"report\"") || l.contains("source=report"))
        .collect();
    assert_eq!(dropped.len(), 1, "logged once: {:#?}", logs.lines());
}

#[tokio::test(start_paused = true)]
async fn a_sampler_that_keeps_failing_is_logged_once_per_kind_then_summarised() {
    let (logs, _guard) = Logs::capture();
    let (_layer, _recorder) = ReportingLayer::builder()
        .config(ReportingConfig::default().with_sample_interval(Duration::from_secs(1)))
        .sampler(FixedSampler::new(f64::NAN, 2.0))
        .build()
        .unwrap();
    // 150 ticks of a sampler whose CPU and memory readings are both bad.
    tokio::time::sleep(Duration::from_secs(150)).await;
    let lines = logs.lines();
    let sampler: Vec<_> = lines
        .iter()
        .filter(|l| l.contains("system_sampler"))
        .collect();
    assert_eq!(sampler.len(), lines.len(), "{lines:#?}");
    let first = sampler
        .iter()
        .filter(|l| l.contains("refused a load metric"))
        .count();
    // Both readings are out of range: one kind (source and reason).
    assert_eq!(first, 1, "one line for the kind: {lines:#?}");
    // Then one summary a minute, at 60 s and 120 s, each counting the two
    // bad readings of 60 ticks.
    let summaries: Vec<_> = sampler
        .iter()
        .filter(|l| l.contains("refused more load metrics"))
        .collect();
    assert_eq!(summaries.len(), 2, "{lines:#?}");
    for line in summaries {
        assert!(line.contains("count=120"), "{line}");
    }
}

#[tokio::test(start_paused = true)]
async fn refusals_are_logged_once_then_summarised_with_a_count() {
    let (logs, _guard) = Logs::capture();
    let (_layer, recorder) = layer(ReportingConfig::default()).await;
    let hostile = format!("\u{1b}[2J{}", "n".repeat(10_000));
    for _ in 0..1000 {
        assert!(recorder.set_named_metric("ratio", f64::NAN).is_err());
        assert!(recorder.set_named_metric(&hostile, 1.0).is_err());
    }
    let lines = logs.lines();
    assert_eq!(lines.len(), 2, "one line per kind: {lines:#?}");
    for line in &lines {
        assert!(!line.contains('\u{1b}'), "escaped: {line}");
        assert!(line.len() < 600, "names cut: {} bytes", line.len());
    }

    // A minute later the sampler's tick writes the summaries.
    tokio::time::sleep(Duration::from_secs(61)).await;
    let lines = logs.lines();
    assert_eq!(lines.len(), 4, "{lines:#?}");
    for line in &lines[2..] {
        assert!(line.contains("count=999"), "{line}");
    }
    tokio::time::sleep(Duration::from_secs(120)).await;
    assert_eq!(logs.lines().len(), 4, "nothing new, nothing logged");
}
