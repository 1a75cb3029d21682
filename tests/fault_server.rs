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

impl Drop for FaultServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}
