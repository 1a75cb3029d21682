//! Client-side health checking: one `grpc.health.v1.Health/Watch` stream per
//! endpoint, over the endpoint's own connection.

use std::sync::Weak;
use std::time::Duration;

use orca_lb_core::Backoff;
use tonic::Code;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

use crate::HealthState;
use crate::endpoint::Endpoint;
use crate::shared::Shared;

/// Backoff bounds between attempts that got no answer, as gRPC's
/// connection backoff uses them.
const INITIAL_BACKOFF: Duration = Duration::from_secs(1);
const MAX_BACKOFF: Duration = Duration::from_secs(120);

/// Watches the endpoint's health for `service` and feeds every state to the
/// balancer, as gRFC A17 describes:
///
/// - each message sets the state: `SERVING` is [`HealthState::Serving`],
///   anything else [`HealthState::NotServing`];
/// - the watch refused with `UNIMPLEMENTED`: [`HealthState::Unimplemented`]
///   (picked as if serving), logged once, and never asked again;
/// - refused with `NOT_FOUND` (how tonic-health answers a service it does
///   not know): [`HealthState::NotServing`], retried with backoff;
/// - any other end of the stream: [`HealthState::Unknown`] (not picked) and
///   retried: at once if the stream had delivered a message (and the attempt
///   before it was not itself immediate), else after a backoff (1 s, x1.6,
///   +-20 %, at most 120 s), reset by every message.
///
/// Ends when the endpoint or the balancer is dropped (the endpoint also
/// aborts it when discovery removes it).
pub(crate) async fn run(shared: Weak<Shared>, endpoint: Weak<Endpoint>, service: String) {
    let mut backoff = Backoff::new(INITIAL_BACKOFF, MAX_BACKOFF);
    let mut last_was_immediate = false;
    loop {
        let Some(ep) = endpoint.upgrade() else { return };
        let mut client = HealthClient::new(ep.channel().clone());
        let key = ep.key().to_string();
        drop(ep);
        let request = HealthCheckRequest {
            service: service.clone(),
        };
        let mut answered = false;
        let after = match client.watch(request).await {
            Ok(response) => {
                let mut stream = response.into_inner();
                loop {
                    match stream.message().await {
                        Ok(Some(message)) => {
                            answered = true;
                            backoff.reset();
                            let state = match message.status() {
                                ServingStatus::Serving => HealthState::Serving,
                                _ => HealthState::NotServing,
                            };
                            if !set(&shared, &endpoint, state) {
                                return;
                            }
                        }
                        Ok(None) => {
                            tracing::debug!(endpoint = %key, "health stream ended by the server");
                            break HealthState::Unknown;
                        }
                        Err(status) => {
                            tracing::debug!(endpoint = %key, %status, "health stream broken");
                            break HealthState::Unknown;
                        }
                    }
                }
            }
            Err(status) if status.code() == Code::Unimplemented => {
                if let Some(s) = shared.upgrade() {
                    tracing::warn!(
                        target_name = %s.config.target,
                        endpoint = %key,
                        service = %service,
                        "endpoint has no health service: picked as if serving"
                    );
                }
                set(&shared, &endpoint, HealthState::Unimplemented);
                return;
            }
            Err(status) if status.code() == Code::NotFound => {
                tracing::debug!(endpoint = %key, %status, "health service does not know the service");
                HealthState::NotServing
            }
            Err(status) => {
                tracing::debug!(endpoint = %key, %status, "health watch failed");
                HealthState::Unknown
            }
        };
        if !set(&shared, &endpoint, after) {
            return;
        }
        if answered && !last_was_immediate {
            last_was_immediate = true;
        } else {
            last_was_immediate = false;
            let delay = backoff.next_delay(&mut rand::rng());
            tokio::time::sleep(delay).await;
        }
    }
}

/// Sets the endpoint's state through the balancer; `false` if either is gone.
fn set(shared: &Weak<Shared>, endpoint: &Weak<Endpoint>, state: HealthState) -> bool {
    let (Some(shared), Some(ep)) = (shared.upgrade(), endpoint.upgrade()) else {
        return false;
    };
    shared.set.on_health(&ep, state);
    true
}
