//! `BackendConfig::wrap`: a layer of the caller's around the backend sees
//! every call, and the calls still reach the greeter.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use orca_lb_testkit::{Backend, BackendConfig, BackendService, Wrap, pb};
use tower::ServiceExt;

#[tokio::test]
async fn the_wrapper_sees_each_call_on_its_way_to_the_greeter() {
    let seen = Arc::new(AtomicUsize::new(0));
    let counter = seen.clone();
    let config = BackendConfig {
        wrap: Some(Wrap::new(move |inner: BackendService| {
            let counter = counter.clone();
            BackendService::new(inner.map_request(move |r: http::Request<_>| {
                counter.fetch_add(1, Ordering::Relaxed);
                r
            }))
        })),
        ..BackendConfig::named("wrapped")
    };
    let backend = Backend::spawn(config).await.unwrap();
    let mut client = pb::greeter_client::GreeterClient::connect(backend.url())
        .await
        .unwrap();
    for _ in 0..3 {
        let reply = client
            .say_hello(pb::HelloRequest {
                name: "you".into(),
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(reply.get_ref().backend, "wrapped");
    }
    assert_eq!(seen.load(Ordering::Relaxed), 3);
}
