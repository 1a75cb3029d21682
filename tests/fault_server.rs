//! A bare HTTP/2 server that fails gRPC calls in one chosen way, for tests
//! that compare what callers see.

use std::net::SocketAddr;

use tokio::net::TcpListener;
use tokio::sync::mpsc;

/// How the server treats every call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Takes the call and never answers (for client-side deadlines).
    Hang,
    /// Answers with headers, then resets the stream with INTERNAL_ERROR.
    ResetMidCall,
    /// Takes the call, then closes the connection without a word.
    GoneMidCall,
    /// Refuses the stream (RST_STREAM REFUSED_STREAM) before reading it:
    /// nothing was processed.
    RefuseStream,
    /// Claims to hand every call back: a trailers-only UNAVAILABLE with
    /// `orca-lb-handed-back: busy`, and with a load report if `true` (a
    /// queue of 100 calls on 1 slot), whether the call was offered or not.
    HandBack(bool),
}

/// A running fault server; stops when dropped.
#[derive(Debug)]
pub struct FaultServer {
    addr: SocketAddr,
    calls: mpsc::UnboundedReceiver<()>,
    task: tokio::task::JoinHandle<()>,
}

impl FaultServer {
    /// Binds `127.0.0.1:0` and treats every call with `fault`.
    pub async fn spawn(fault: Fault) -> FaultServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("local addr");
        let (tx, calls) = mpsc::unbounded_channel();
        let task = tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                let tx = tx.clone();
                tokio::spawn(async move {
                    let Ok(mut conn) = h2::server::handshake(socket).await else {
                        return;
                    };
                    let mut held = Vec::new();
                    while let Some(Ok((request, mut respond))) = conn.accept().await {
                        let _ = tx.send(());
                        match fault {
                            Fault::Hang => held.push((request, respond)),
                            Fault::ResetMidCall => {
                                let response = http::Response::builder()
                                    .header("content-type", "application/grpc")
                                    .body(())
                                    .expect("valid response");
                                if let Ok(mut stream) = respond.send_response(response, false) {
                                    stream.send_reset(h2::Reason::INTERNAL_ERROR);
                                }
                            }
                            Fault::GoneMidCall => return,
                            Fault::RefuseStream => respond.send_reset(h2::Reason::REFUSED_STREAM),
                            Fault::HandBack(with_report) => {
                                let mut response = http::Response::builder()
                                    .header("content-type", "application/grpc")
                                    .header("grpc-status", "14")
                                    .header(
                                        orca_lb_proto::HANDED_BACK_HEADER,
                                        orca_lb_proto::HANDED_BACK_BUSY,
                                    )
                                    .body(())
                                    .expect("valid response");
                                if with_report {
                                    response
                                        .headers_mut()
                                        .insert(orca_lb_proto::TRAILER_KEY, busy_report());
                                }
                                let _ = respond.send_response(response, true);
                            }
                        }
                    }
                });
            }
        });
        FaultServer { addr, calls, task }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Calls that reached the server so far.
    pub fn calls(&mut self) -> usize {
        let mut n = 0;
        while self.calls.try_recv().is_ok() {
            n += 1;
        }
        n
    }
}

/// A valid report of a server with 1 slot, taken, and 100 calls waiting.
fn busy_report() -> http::HeaderValue {
    use base64::Engine;
    use prost::Message;
    let pb = orca_lb_proto::pb::OrcaLoadReport {
        cpu_utilization: 0.9,
        named_metrics: [
            (orca_lb_core::named_metrics::QUEUE_DEPTH.to_string(), 100.0),
            (orca_lb_core::named_metrics::IN_FLIGHT.to_string(), 101.0),
            (orca_lb_core::named_metrics::CAPACITY.to_string(), 1.0),
        ]
        .into(),
        ..Default::default()
    };
    let text = base64::engine::general_purpose::STANDARD_NO_PAD.encode(pb.encode_to_vec());
    http::HeaderValue::from_str(&text).expect("base64 is a valid header value")
}

impl Drop for FaultServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}
