//! The debug service on its own port, with health and reflection beside it.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::{TcpListener, ToSocketAddrs};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tonic::transport::Server;
use tonic::transport::server::TcpIncoming;

use crate::DebugService;
use crate::pb::balancer_debug_server::BalancerDebugServer;

/// How long [`DebugServer::shutdown`] waits for calls in flight.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(1);

/// A running debug server, from [`serve_debug`]. Stops when dropped: keep it
/// for as long as the debug endpoint should answer.
#[derive(Debug)]
pub struct DebugServer {
    addr: SocketAddr,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<Result<(), tonic::transport::Error>>>,
}

/// Binds `addr` and serves, on a new task, `service` with
/// `grpc.health.v1.Health` (reporting the debug service and the server as
/// SERVING) and gRPC server reflection (`grpc.reflection.v1`) for the debug
/// and health protos.
///
/// Bind `127.0.0.1` unless the debug endpoint should be reachable from other
/// hosts: it shows the addresses and health of every registered backend.
pub async fn serve_debug(
    addr: impl ToSocketAddrs,
    service: DebugService,
) -> io::Result<DebugServer> {
    let listener = TcpListener::bind(addr).await?;
    let addr = listener.local_addr()?;
    let (health_reporter, health) = tonic_health::server::health_reporter();
    health_reporter
        .set_serving::<BalancerDebugServer<DebugService>>()
        .await;
    let reflection = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(crate::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()
        .map_err(io::Error::other)?;
    let router = Server::builder()
        .add_service(service.into_server())
        .add_service(health)
        .add_service(reflection);
    let (tx, rx) = oneshot::channel::<()>();
    let incoming = TcpIncoming::from(listener).with_nodelay(Some(true));
    let task = tokio::spawn(router.serve_with_incoming_shutdown(incoming, async {
        let _ = rx.await;
    }));
    tracing::info!(%addr, "serving orca-lb debug service");
    Ok(DebugServer {
        addr,
        shutdown: Some(tx),
        task: Some(task),
    })
}

// === impl DebugServer ===

impl DebugServer {
    /// The address it listens on (with the port the OS chose for port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops accepting and waits for the server to end, giving calls in
    /// flight up to [`SHUTDOWN_GRACE`] to finish. A `WatchState` stream never
    /// finishes by itself, so an open watch is cut when the grace is over.
    pub async fn shutdown(mut self) -> Result<(), tonic::transport::Error> {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        let Some(mut task) = self.task.take() else {
            return Ok(());
        };
        match tokio::time::timeout(SHUTDOWN_GRACE, &mut task).await {
            Ok(joined) => joined.unwrap_or(Ok(())),
            Err(_) => {
                task.abort();
                Ok(())
            }
        }
    }
}

impl Drop for DebugServer {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}
