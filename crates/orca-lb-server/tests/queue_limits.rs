//! The worker-slot queue's limits: depth, wait, and readiness for load shedding.

mod support;

use std::time::Duration;

use orca_lb_server::{FixedSampler, ReportingConfig, ReportingLayer};
use support::{Gated, grpc_call, report, status, wait_until};
use tower::ServiceExt;
use tower_layer::Layer;
use tower_service::Service;

async fn layer(config: ReportingConfig) -> (ReportingLayer, orca_lb_server::LoadRecorder) {
    ReportingLayer::builder()
        .config(config)
        .sampler(FixedSampler::new(0.1, 0.1))
        .build()
        .unwrap()
}

fn one_slot(max_queue_depth: usize) -> ReportingConfig {
    ReportingConfig::default()
        .with_capacity(Some(1))
        .with_max_queue_depth(max_queue_depth)
}

#[tokio::test(start_paused = true)]
async fn a_call_beyond_a_full_queue_is_refused_at_once_with_the_report() {
    let (layer, recorder) = layer(one_slot(1)).await;
    let gated = Gated::default();
    let svc = layer.layer(gated.clone());

    let running = tokio::spawn(svc.clone().oneshot(grpc_call()));
    let queued = tokio::spawn(svc.clone().oneshot(grpc_call()));
    wait_until("one call runs and one waits", || {
        gated.entered() == 1 && recorder.queue_depth() == 1
    })
    .await;

    let refused = tokio::time::timeout(Duration::from_secs(1), svc.clone().oneshot(grpc_call()))
        .await
        .expect("a call beyond the queue is answered at once")
        .unwrap();
    assert_eq!(status(refused.headers()), Some("8"), "RESOURCE_EXHAUSTED");
    let (pb, _) = report(refused.headers());
    assert_eq!(
        pb.named_metrics[orca_lb_core::named_metrics::QUEUE_DEPTH],
        1.0
    );
    assert_eq!(recorder.queue_depth(), 1, "the refused call never queued");

    gated.open(2);
    for call in [running, queued] {
        let response = call.await.unwrap().unwrap();
        assert_eq!(status(response.headers()), Some("0"));
    }
    assert_eq!((recorder.in_flight(), recorder.queue_depth()), (0, 0));
}

/// A call whose client offers it to be handed back.
fn offered_call() -> http::Request<()> {
    let mut request = grpc_call();
    request.headers_mut().insert(
        orca_lb_proto::MAY_HAND_BACK_HEADER,
        http::HeaderValue::from_static("1"),
    );
    request
}

#[tokio::test(start_paused = true)]
async fn an_offered_call_is_handed_back_unserved_once_slots_are_full_and_calls_wait() {
    let (layer, recorder) = layer(one_slot(8)).await;
    let gated = Gated::default();
    let svc = layer.layer(gated.clone());

    // The slot is free, then taken with nobody waiting: offered calls are
    // served, or wait, as any other.
    let running = tokio::spawn(svc.clone().oneshot(offered_call()));
    wait_until("the first call runs", || gated.entered() == 1).await;
    let queued = tokio::spawn(svc.clone().oneshot(offered_call()));
    wait_until("the second call waits", || recorder.queue_depth() == 1).await;

    // A call waits already: the next offered call is handed back at once.
    let handed = tokio::time::timeout(Duration::from_secs(1), svc.clone().oneshot(offered_call()))
        .await
        .expect("handed back at once")
        .unwrap();
    assert_eq!(status(handed.headers()), Some("14"), "UNAVAILABLE");
    assert_eq!(
        handed.headers()[orca_lb_proto::HANDED_BACK_HEADER],
        orca_lb_proto::HANDED_BACK_BUSY
    );
    let (pb, _) = report(handed.headers());
    assert_eq!(
        pb.named_metrics[orca_lb_core::named_metrics::QUEUE_DEPTH],
        1.0
    );
    assert_eq!(
        pb.named_metrics[orca_lb_core::named_metrics::IN_FLIGHT],
        2.0,
        "the handed-back call is no longer in flight"
    );
    assert_eq!(recorder.queue_depth(), 1, "it never queued");

    // A call not offered waits behind the others.
    let plain = tokio::spawn(svc.clone().oneshot(grpc_call()));
    wait_until("the plain call waits", || recorder.queue_depth() == 2).await;

    gated.open(3);
    for call in [running, queued, plain] {
        let response = call.await.unwrap().unwrap();
        assert_eq!(status(response.headers()), Some("0"));
        assert!(
            response
                .headers()
                .get(orca_lb_proto::HANDED_BACK_HEADER)
                .is_none()
        );
    }
    assert_eq!(
        gated.entered(),
        3,
        "the handed-back call's handler never ran"
    );
    assert_eq!((recorder.in_flight(), recorder.queue_depth()), (0, 0));
}

#[tokio::test(start_paused = true)]
async fn without_hand_back_an_offered_call_waits_like_any_other() {
    let (layer, recorder) = layer(one_slot(8).with_hand_back_queue_depth(None)).await;
    let gated = Gated::default();
    let svc = layer.layer(gated.clone());

    let running = tokio::spawn(svc.clone().oneshot(offered_call()));
    wait_until("the first call runs", || gated.entered() == 1).await;
    let queued = tokio::spawn(svc.clone().oneshot(offered_call()));
    let also = tokio::spawn(svc.clone().oneshot(offered_call()));
    wait_until("two calls wait", || recorder.queue_depth() == 2).await;

    gated.open(3);
    for call in [running, queued, also] {
        assert_eq!(status(call.await.unwrap().unwrap().headers()), Some("0"));
    }
    assert_eq!(gated.entered(), 3);
}

#[tokio::test(start_paused = true)]
async fn at_depth_zero_an_offered_call_is_handed_back_whenever_no_slot_is_free() {
    let (layer, recorder) = layer(one_slot(8).with_hand_back_queue_depth(0)).await;
    let gated = Gated::default();
    let svc = layer.layer(gated.clone());

    let running = tokio::spawn(svc.clone().oneshot(grpc_call()));
    wait_until("a call runs", || gated.entered() == 1).await;
    let handed = svc.clone().oneshot(offered_call()).await.unwrap();
    assert_eq!(status(handed.headers()), Some("14"));
    assert_eq!(recorder.queue_depth(), 0);

    gated.open(1);
    assert_eq!(status(running.await.unwrap().unwrap().headers()), Some("0"));
    // The slot is free again: an offered call is served.
    gated.open(1);
    let served = svc.clone().oneshot(offered_call()).await.unwrap();
    assert_eq!(status(served.headers()), Some("0"));
}

#[tokio::test(start_paused = true)]
async fn a_call_that_waits_past_the_queue_wait_is_refused() {
    let (layer, recorder) = layer(one_slot(8).with_max_queue_wait(Duration::from_secs(2))).await;
    let gated = Gated::default();
    let svc = layer.layer(gated.clone());

    let _running = tokio::spawn(svc.clone().oneshot(grpc_call()));
    wait_until("one call runs", || gated.entered() == 1).await;
    let started = tokio::time::Instant::now();
    let waited = tokio::time::timeout(Duration::from_secs(60), svc.clone().oneshot(grpc_call()))
        .await
        .expect("a queued call does not wait forever")
        .unwrap();
    assert_eq!(status(waited.headers()), Some("8"));
    assert_eq!(started.elapsed(), Duration::from_secs(2));
    assert_eq!(recorder.queue_depth(), 0);
    assert_eq!(gated.entered(), 1, "its handler never ran");
}

#[tokio::test(start_paused = true)]
async fn with_backpressure_a_full_queue_makes_load_shed_refuse() {
    let (layer, recorder) = ReportingLayer::builder()
        .sampler(FixedSampler::new(0.1, 0.1))
        .capacity(1)
        .max_queue_depth(1)
        .backpressure(true)
        .build()
        .unwrap();
    let gated = Gated::default();
    let mut svc = tower::ServiceBuilder::new()
        .load_shed()
        .layer(layer)
        .service(gated.clone());

    let running = tokio::spawn(svc.ready().await.unwrap().call(grpc_call()));
    let queued = tokio::spawn(svc.ready().await.unwrap().call(grpc_call()));
    wait_until("one call runs and one waits", || {
        gated.entered() == 1 && recorder.queue_depth() == 1
    })
    .await;

    let shed = svc.ready().await.unwrap().call(grpc_call()).await;
    let error = shed.expect_err("load_shed refuses while the queue is full");
    assert!(error.is::<tower::load_shed::error::Overloaded>(), "{error}");

    // A slot frees up, the queued call runs, and the service is ready again.
    gated.open(1);
    running.await.unwrap().unwrap();
    wait_until("the queue drains", || recorder.queue_depth() == 0).await;
    gated.open(2);
    let accepted = svc.ready().await.unwrap().call(grpc_call()).await;
    assert_eq!(status(accepted.unwrap().headers()), Some("0"));
    queued.await.unwrap().unwrap();
}
