//! Streams a server ends at their max age, through the balancer: the caller
//! sees UNAVAILABLE and the reason, and the balancer does not hold the end
//! against the server.

use std::time::Duration;

use orca_lb_core::BreakerState;
use orca_lb_testkit::pb::HelloRequest;
use orca_lb_testkit::pb::greeter_client::GreeterClient;
use orca_lb_testkit::{Backend, BackendConfig};
use orca_lb_tests::{client, wait_until, within};
use tonic::Code;

const STREAMS: usize = 12;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_at_its_max_age_ends_unavailable_and_is_not_a_failure() {
    let mut backends = Vec::new();
    for name in ["a", "b"] {
        let mut config = BackendConfig::named(name);
        config.max_stream_age = Some(Duration::from_millis(300));
        backends.push(Backend::spawn(config).await.expect("backend starts"));
    }
    let b = client::balancer(client::config(), &backends).await;

    let mut ends = Vec::new();
    for i in 0..STREAMS {
        let mut greeter = GreeterClient::new(b.clone());
        ends.push(tokio::spawn(async move {
            // `count: 0`: one reply, then the handler holds the stream open
            // until the client goes away; only the max age ends it.
            let request = HelloRequest {
                name: i.to_string(),
                count: 0,
                ..Default::default()
            };
            let mut replies = greeter.say_hello_stream(request).await?.into_inner();
            let mut received = 0;
            loop {
                match replies.message().await {
                    Ok(Some(_)) => received += 1,
                    Ok(None) => return Ok(received),
                    Err(status) => return Err(status),
                }
            }
        }));
    }
    for end in ends {
        let status = within("the stream ends at its max age", end)
            .await
            .unwrap()
            .expect_err("ended by the server, not complete");
        assert_eq!(status.code(), Code::Unavailable, "{status:?}");
        assert!(
            status.message().contains("stream max age reached"),
            "{status:?}"
        );
        assert_eq!(
            status
                .metadata()
                .get(orca_lb_proto::STREAM_ENDED_TRAILER)
                .and_then(|v| v.to_str().ok()),
            Some(orca_lb_proto::STREAM_ENDED_MAX_AGE)
        );
    }

    // The servers let go of every stream, and counted no error.
    wait_until("the servers count no stream", || {
        backends.iter().all(|s| s.recorder().active_streams() == 0)
    })
    .await;
    for s in &backends {
        assert_eq!(s.recorder().report().eps(), 0.0);
    }
    // The balancer saw every end, none as a failure.
    let snapshot = b.snapshot();
    assert_eq!(snapshot.endpoints.len(), 2);
    let mut outcomes = 0;
    for e in &snapshot.endpoints {
        assert_eq!(e.streams, 0, "{e:?}");
        assert_eq!(e.recent_failures, 0, "{e:?}");
        assert_eq!(e.cost.failure, 0.0, "{e:?}");
        assert_eq!(e.breaker, BreakerState::Closed, "{e:?}");
        outcomes += e.reports;
    }
    // Each end was fed back, with the report its trailers carried.
    assert_eq!(outcomes, STREAMS as u64, "{snapshot:#?}");
}
