//! Helpers shared by orca-lb's integration tests.
#![warn(missing_docs)]

use std::future::Future;
use std::time::Duration;

use orca_lb_core::LoadReport;
use orca_lb_proto::pb::OrcaLoadReport;
use orca_lb_test::pb::greeter_client::GreeterClient;
use prost::Message;
use tonic::metadata::MetadataMap;
use tonic::transport::Channel;

/// How long a bounded wait may take before the test fails.
pub const WAIT_LIMIT: Duration = Duration::from_secs(10);

/// The per-call report in `metadata`, decoded with the generated (prost) code
/// and validated. Panics, naming what is wrong, if it is missing or invalid.
pub fn report_in(metadata: &MetadataMap) -> LoadReport {
    let value = metadata
        .get_bin(orca_lb_proto::TRAILER_KEY)
        .unwrap_or_else(|| panic!("no {} in {metadata:?}", orca_lb_proto::TRAILER_KEY));
    let bytes = value.to_bytes().expect("trailer is valid base64");
    assert!(!bytes.is_empty(), "an empty report must never be sent");
    let pb = OrcaLoadReport::decode(bytes).expect("trailer is an OrcaLoadReport");
    LoadReport::try_from(pb).expect("report values are in range")
}

/// A greeter client connected to `url`.
pub async fn greeter(url: String) -> GreeterClient<Channel> {
    GreeterClient::connect(url)
        .await
        .expect("backend reachable")
}

/// Polls `condition` until it holds, failing the test after [`WAIT_LIMIT`].
///
/// For effects that happen on another task with no event to await (a server
/// noticing that a client went away). Not a timing assertion: the limit only
/// bounds a hang.
pub async fn wait_until(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + WAIT_LIMIT;
    while !condition() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting until {what}"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// Awaits `f`, failing the test after [`WAIT_LIMIT`].
pub async fn within<T>(what: &str, f: impl Future<Output = T>) -> T {
    tokio::time::timeout(WAIT_LIMIT, f)
        .await
        .unwrap_or_else(|_| panic!("timed out waiting for {what}"))
}
