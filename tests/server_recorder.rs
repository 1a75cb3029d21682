//! Garbage from the application is refused, logged, and never sent.

use std::io;
use std::sync::Arc;

use orca_lb_core::{Violation, named_metrics};
use orca_lb_server::{CallRecorder, RecordError, ReportingConfig, ReportingLayer};
use orca_lb_testkit::pb::HelloRequest;
use orca_lb_testkit::{Backend, BackendConfig, TestGreeter};
use orca_lb_tests::{greeter, report_in};

/// A log sink the test can read back.
#[derive(Clone, Default)]
struct SharedBuf(Arc<parking_lot::Mutex<Vec<u8>>>);

impl io::Write for SharedBuf {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.lock().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn violation(e: &RecordError) -> Violation {
    match e {
        RecordError::Invalid(e) => e.violation(),
        other => panic!("expected an invalid value, got {other:?}"),
    }
}

#[test]
fn garbage_is_refused_with_a_logged_error() {
    orca_lb_testkit::scoped_logs::allow_scoped_subscribers();
    let logs = SharedBuf::default();
    let sink = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || sink.clone())
        .with_ansi(false)
        .finish();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let _enter = rt.enter();
    let (_layer, recorder) = ReportingLayer::builder()
        .config(ReportingConfig::default())
        .build()
        .unwrap();

    tracing::subscriber::with_default(subscriber, || {
        let e = recorder.set_application_utilization(f64::NAN).unwrap_err();
        assert_eq!(violation(&e), Violation::NotFinite);
        let e = recorder.set_application_utilization(-1.0).unwrap_err();
        assert_eq!(violation(&e), Violation::Negative);
        let e = recorder.set_named_metric("x", f64::INFINITY).unwrap_err();
        assert_eq!(violation(&e), Violation::NotFinite);
        let e = recorder
            .set_named_metric(named_metrics::QUEUE_DEPTH, 1.0)
            .unwrap_err();
        assert!(matches!(e, RecordError::ReservedName(_)));
    });

    let text = String::from_utf8(logs.0.lock().clone()).unwrap();
    assert!(text.contains("ERROR"), "{text}");
    assert!(
        text.contains("application_utilization = NaN is not a finite number"),
        "{text}"
    );
    // A second refusal of the same kind (a value out of range, from the
    // LoadRecorder) goes into the periodic summary, not a line of its own.
    assert!(
        !text.contains("application_utilization = -1 is negative"),
        "{text}"
    );
    assert_eq!(text.lines().count(), 2, "{text}");
    assert!(text.contains("published by orca-lb itself"), "{text}");

    // Application utilization above 1 is allowed (overload), so 7.0 stands.
    recorder.set_application_utilization(7.0).unwrap();
    assert_eq!(recorder.report().application_utilization(), 7.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_recorded_in_a_handler_never_reaches_the_wire() {
    let outcomes: Arc<parking_lot::Mutex<Vec<Result<(), RecordError>>>> = Arc::default();
    let seen = outcomes.clone();
    let g = TestGreeter::new("g").with_hook(move |request| {
        let rec = CallRecorder::of(request).unwrap();
        let mut out = seen.lock();
        out.push(rec.record_named_metric("nan", f64::NAN));
        out.push(rec.record_utilization("minus", -1.0));
        out.push(rec.record_utilization("seven", 7.0));
        out.push(rec.record_request_cost("inf", f64::INFINITY));
        out.push(rec.record_request_cost("neg", -0.5));
        out.push(rec.record_named_metric(named_metrics::IN_FLIGHT, 99.0));
        out.push(rec.record_utilization("fine", 0.5));
    });
    let b = Backend::spawn(BackendConfig {
        greeter: Some(g),
        ..BackendConfig::named("g")
    })
    .await
    .unwrap();
    assert!(b.recorder().set_application_utilization(f64::NAN).is_err());
    assert!(
        b.recorder()
            .set_named_metric("bad", f64::NEG_INFINITY)
            .is_err()
    );

    let mut client = greeter(b.url()).await;
    let response = client
        .say_hello(HelloRequest {
            name: "g".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let report = report_in(response.metadata());

    let outcomes = outcomes.lock();
    let refused = outcomes.iter().filter(|r| r.is_err()).count();
    assert_eq!(refused, 6, "{outcomes:?}");
    let raw = report.as_raw();
    for name in ["nan", "bad"] {
        assert!(!raw.named_metrics.contains_key(name), "{name} was sent");
    }
    for name in ["minus", "seven"] {
        assert!(!raw.utilization.contains_key(name), "{name} was sent");
    }
    assert!(raw.request_cost.is_empty());
    assert_eq!(report.utilization("fine"), Some(0.5));
    assert_eq!(
        report.in_flight(),
        Some(0.0),
        "the reserved name kept its true value"
    );
}
