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
