//! A bare HTTP/2 server that fails gRPC calls in one chosen way, for tests
//! that compare what callers see.

use std::net::SocketAddr;
use std::time::Duration;

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
    /// Each call's `grpc-timeout` as it arrives.
    calls: mpsc::UnboundedReceiver<Option<String>>,
    /// Each call's `grpc-timeout`, in order, once read from `calls`.
    timeouts: Vec<Option<String>>,
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
                        let timeout = request
                            .headers()
                            .get("grpc-timeout")
                            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
                        let _ = tx.send(timeout);
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
        FaultServer {
            addr,
            calls,
            timeouts: Vec::new(),
            task,
        }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Calls that reached the server so far.
    pub fn calls(&mut self) -> usize {
        self.grpc_timeouts().len()
    }

    /// The `grpc-timeout` header of each call that reached the server so
    /// far, in order (`None` for a call without one).
    pub fn grpc_timeouts(&mut self) -> &[Option<String>] {
        while let Ok(timeout) = self.calls.try_recv() {
            self.timeouts.push(timeout);
        }
        &self.timeouts
    }
}

/// The time a `grpc-timeout` value says: digits, then one of gRPC's units.
/// Panics on anything else.
pub fn timeout_of(value: &str) -> Duration {
    let (digits, unit) = value.split_at(value.len() - 1);
    let n: u64 = digits
        .parse()
        .unwrap_or_else(|_| panic!("grpc-timeout {value:?}"));
    match unit {
        "H" => Duration::from_secs(n * 3600),
        "M" => Duration::from_secs(n * 60),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => panic!("grpc-timeout {value:?}"),
    }
}

/// The `grpc-timeout`s of a call that `servers` took one attempt each of:
/// the first attempt's, then the second's, told apart by the first being
/// `sent`, as the caller gave it.
pub fn two_attempts(servers: &mut [FaultServer], sent: &str) -> (Duration, Duration) {
    let mut seen: Vec<String> = servers
        .iter_mut()
        .flat_map(|s| s.grpc_timeouts().to_vec())
        .map(|t| t.expect("every attempt has a grpc-timeout"))
        .collect();
    assert_eq!(seen.len(), 2, "two attempts: {seen:?}");
    let first = seen
        .iter()
        .position(|t| t == sent)
        .unwrap_or_else(|| panic!("no attempt went as sent, {sent}: {seen:?}"));
    let first = seen.remove(first);
    (timeout_of(&first), timeout_of(&seen[0]))
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
