//! A DNS resolver the test scripts, for `DnsDiscovery::resolver`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use orca_lb_client::Resolve;
use parking_lot::Mutex;

/// A resolver that answers every name with whatever the test last set, and
/// counts the resolutions.
#[derive(Debug, Clone)]
pub struct Scripted {
    answer: Arc<Mutex<std::io::Result<Vec<SocketAddr>>>>,
    calls: Arc<AtomicUsize>,
}

impl Default for Scripted {
    fn default() -> Self {
        Scripted {
            answer: Arc::new(Mutex::new(Ok(Vec::new()))),
            calls: Arc::default(),
        }
    }
}

impl Scripted {
    /// Resolutions so far.
    pub fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }

    /// Answers `addrs` from now on, all at once.
    pub fn set(&self, addrs: &[SocketAddr]) {
        *self.answer.lock() = Ok(addrs.to_vec());
    }

    /// Fails every resolution from now on.
    pub fn fail(&self) {
        *self.answer.lock() = Err(std::io::Error::other("scripted failure"));
    }
}

impl Resolve for Scripted {
    fn resolve(
        &self,
        _host: &str,
        _port: u16,
    ) -> std::pin::Pin<
        Box<dyn std::future::Future<Output = std::io::Result<Vec<SocketAddr>>> + Send + 'static>,
    > {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let result = match &*self.answer.lock() {
            Ok(v) => Ok(v.clone()),
            Err(e) => Err(std::io::Error::other(e.to_string())),
        };
        Box::pin(async move { result })
    }
}
