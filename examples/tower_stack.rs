//! tower middleware around the balancer: a per-call timeout, a cap on calls
//! in flight, and load shedding past it, over in-process backends.
//!
//! ```text
//! cargo run -p orca-lb-examples --example tower-stack
//! ```

use std::time::Duration;

use orca_lb_client::{Balancer, BalancerConfig};
use orca_lb_testkit::pb::HelloRequest;
use orca_lb_testkit::pb::greeter_client::GreeterClient;
use orca_lb_testkit::{Backend, BackendConfig, ServiceTime};
use tower::ServiceBuilder;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    orca_lb_examples::exit_code(run().await)
}

async fn run() -> Result<(), Box<dyn std::error::Error>> {
    let mut backends = Vec::new();
    for name in ["a", "b"] {
        backends.push(
            Backend::spawn(BackendConfig {
                service_time: ServiceTime::Fixed(Duration::from_millis(20)),
                ..BackendConfig::named(name)
            })
            .await?,
        );
    }
    let balancer = Balancer::from_uris(
        BalancerConfig::default().with_target("greeter"),
        backends.iter().map(|b| b.url()),
    )?;
    balancer.wait_for_endpoints(backends.len()).await;

    // Outermost first: shed what the limit cannot take at once, allow 8
    // calls in flight, and give each 500 ms.
    let stack = ServiceBuilder::new()
        .load_shed()
        .concurrency_limit(8)
        .timeout(Duration::from_millis(500))
        .service(balancer.clone());

    // 32 callers at once: 8 are served, the rest are shed with
    // RESOURCE_EXHAUSTED without reaching a backend.
    let calls: Vec<_> = (0..32)
        .map(|_| {
            let mut client = GreeterClient::new(stack.clone());
            tokio::spawn(async move { client.say_hello(HelloRequest::default()).await })
        })
        .collect();
    let (mut ok, mut shed, mut other) = (0, 0, 0);
    for call in calls {
        match call.await? {
            Ok(_) => ok += 1,
            Err(status) if status.code() == tonic::Code::ResourceExhausted => shed += 1,
            Err(_) => other += 1,
        }
    }
    println!(
        "32 calls at once through a limit of 8: {ok} served, {shed} shed, {other} other errors"
    );
    Ok(())
}
