//! Accepted connections that the drain can cut once its deadline passes.
//!
//! tonic serves each connection on its own task, and a graceful shutdown
//! waits for all of them with no limit: aborting the server task leaves
//! those tasks running. Wrapping each socket lets the drain end them: after
//! the cut, every read and write fails, hyper drops the connection, and the
//! calls still on it fail at their clients.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio_stream::Stream;
use tonic::transport::server::{Connected, TcpIncoming};

use super::Phase;

/// The listener's connections, for `serve_with_incoming_shutdown`; from
/// [`Drain::incoming`](super::Drain::incoming).
#[derive(Debug)]
pub struct DrainIncoming {
    inner: TcpIncoming,
    phase: watch::Receiver<Phase>,
}

/// One accepted connection, cut when the drain's deadline passes.
pub struct DrainIo<T> {
    inner: T,
    cut: Pin<Box<dyn Future<Output = ()> + Send>>,
    is_cut: bool,
}

impl<T: std::fmt::Debug> std::fmt::Debug for DrainIo<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DrainIo")
            .field("inner", &self.inner)
            .field("is_cut", &self.is_cut)
            .finish()
    }
}

// === impl DrainIncoming ===

impl DrainIncoming {
    pub(super) fn new(listener: TcpListener, phase: watch::Receiver<Phase>) -> Self {
        Self {
            // Replies are small frames: without TCP_NODELAY they wait on
            // Nagle and the peer's delayed ACK (tonic only sets it on
            // sockets it binds itself).
            inner: TcpIncoming::from(listener).with_nodelay(Some(true)),
            phase,
        }
    }
}

impl Stream for DrainIncoming {
    type Item = io::Result<DrainIo<TcpStream>>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let phase = self.phase.clone();
        Pin::new(&mut self.inner)
            .poll_next(cx)
            .map(|next| next.map(|accepted| accepted.map(|s| DrainIo::new(s, phase))))
    }
}

// === impl DrainIo ===

impl<T> DrainIo<T> {
    fn new(inner: T, mut phase: watch::Receiver<Phase>) -> Self {
        let cut = Box::pin(async move {
            if phase.wait_for(|p| *p == Phase::Cut).await.is_err() {
                // The drain was dropped without running: never cut.
                std::future::pending::<()>().await;
            }
        });
        Self {
            inner,
            cut,
            is_cut: false,
        }
    }

    /// Fails once the deadline passed; until then registers for the cut.
    fn check(&mut self, cx: &mut Context<'_>) -> io::Result<()> {
        if !self.is_cut && self.cut.as_mut().poll(cx).is_ready() {
            self.is_cut = true;
        }
        if self.is_cut {
            Err(io::Error::new(
                io::ErrorKind::ConnectionAborted,
                "drain deadline passed",
            ))
        } else {
            Ok(())
        }
    }
}

impl<T: Connected> Connected for DrainIo<T> {
    type ConnectInfo = T::ConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.inner.connect_info()
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for DrainIo<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        self.check(cx)?;
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for DrainIo<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.check(cx)?;
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.check(cx)?;
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.check(cx)?;
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
