//! The affinity key an application sets on one call.

use bytes::Bytes;

/// An affinity key set by the application on one call, as a request
/// extension: with [`BalancerConfig::affinity`](crate::BalancerConfig::affinity)
/// on, calls with the same key go to the same endpoint while its load
/// allows. It takes precedence over the metadata entry the config names.
///
/// ```
/// use orca_lb_client::CallKey;
///
/// let mut request = tonic::Request::new(());
/// request.extensions_mut().insert(CallKey::new("tenant-7"));
/// assert_eq!(request.extensions().get::<CallKey>().unwrap().as_bytes(), b"tenant-7");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CallKey(Bytes);

impl CallKey {
    /// A key of `bytes` (a `&'static str` or `&'static [u8]` is not copied).
    pub fn new(bytes: impl Into<Bytes>) -> Self {
        Self(bytes.into())
    }

    /// The key's bytes, as hashed onto the ring.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}
