//! What session affinity keys calls by and how far it lets load stray
//! from the average before a key's calls are passed on.

use std::fmt;

/// Where a call's affinity key comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum AffinityKey {
    /// The value of the request metadata entry (HTTP/2 header) with this
    /// name, lowercase, as `x-user-id`. A key set by the application on
    /// the call itself takes precedence over it.
    Metadata(String),
    /// Only the key the application sets on each call (in the client, a
    /// request extension).
    Application,
}

/// The default [`AffinityConfig::epsilon`]: an endpoint keeps its keys
/// while its load is under 1.25 times the average.
pub const DEFAULT_EPSILON: f64 = 0.25;

/// The default [`AffinityConfig::virtual_nodes`]: points on the ring per
/// endpoint. With 100, an endpoint's share of the keys is within about 10 %
/// of its fair share (the share's standard deviation is about
/// `1 / sqrt(100)` of it).
pub const DEFAULT_VIRTUAL_NODES: u32 = 100;

/// The most [`AffinityConfig::virtual_nodes`] accepted.
pub const MAX_VIRTUAL_NODES: u32 = 10_000;

/// Session affinity: calls with the same key go to the same endpoint while
/// its load stays under `(1 + epsilon)` times the average (consistent
/// hashing with bounded loads; see [`HashRing`](crate::HashRing)).
///
/// ```
/// use orca_lb_core::{AffinityConfig, AffinityKey};
///
/// let config = AffinityConfig::metadata("x-user-id").with_epsilon(0.5);
/// assert!(config.validate().is_ok());
/// assert_eq!(config.key, AffinityKey::Metadata("x-user-id".into()));
///
/// let err = AffinityConfig::metadata("").validate().unwrap_err();
/// assert_eq!(err.field(), "key");
/// let err = AffinityConfig::metadata("k").with_epsilon(0.0).validate().unwrap_err();
/// assert_eq!(err.to_string(), "invalid affinity config: epsilon = 0 must be greater than 0");
/// ```
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct AffinityConfig {
    /// Where each call's key comes from.
    pub key: AffinityKey,
    /// How far above the average load an endpoint may be and still take
    /// the calls of its keys: the bound is `(1 + epsilon)` times the
    /// average, rounded up to whole calls. Smaller keeps load more even and
    /// moves more keys; larger keeps more keys home. Must be greater than 0
    /// (and finite). Default: [`DEFAULT_EPSILON`].
    pub epsilon: f64,
    /// Points on the ring per endpoint: more spreads keys more evenly and
    /// costs more memory (16 bytes a point) and build time. 1 to
    /// [`MAX_VIRTUAL_NODES`]. Default: [`DEFAULT_VIRTUAL_NODES`].
    pub virtual_nodes: u32,
}

impl AffinityConfig {
    /// Keys from the request metadata entry `name`, with the default
    /// epsilon and virtual nodes.
    pub fn metadata(name: impl Into<String>) -> Self {
        Self::new(AffinityKey::Metadata(name.into()))
    }

    /// Keys from `key`, with the default epsilon and virtual nodes.
    pub fn new(key: AffinityKey) -> Self {
        Self {
            key,
            epsilon: DEFAULT_EPSILON,
            virtual_nodes: DEFAULT_VIRTUAL_NODES,
        }
    }

    /// Sets [`epsilon`](Self::epsilon).
    #[must_use]
    pub fn with_epsilon(mut self, epsilon: f64) -> Self {
        self.epsilon = epsilon;
        self
    }

    /// Sets [`virtual_nodes`](Self::virtual_nodes).
    #[must_use]
    pub fn with_virtual_nodes(mut self, virtual_nodes: u32) -> Self {
        self.virtual_nodes = virtual_nodes;
        self
    }

    /// Checks every field, naming the first that is wrong.
    pub fn validate(&self) -> Result<(), InvalidAffinity> {
        if let AffinityKey::Metadata(name) = &self.key
            && name.is_empty()
        {
            return Err(InvalidAffinity::new(
                "key",
                "the metadata name must not be empty",
            ));
        }
        if !(self.epsilon.is_finite() && self.epsilon > 0.0) {
            return Err(InvalidAffinity::new(
                "epsilon",
                format!("epsilon = {} must be greater than 0", self.epsilon),
            ));
        }
        if !(1..=MAX_VIRTUAL_NODES).contains(&self.virtual_nodes) {
            return Err(InvalidAffinity::new(
                "virtual_nodes",
                format!(
                    "virtual_nodes = {} must be 1 to {MAX_VIRTUAL_NODES}",
                    self.virtual_nodes
                ),
            ));
        }
        Ok(())
    }
}

/// An [`AffinityConfig`] was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidAffinity {
    field: &'static str,
    why: String,
}

impl InvalidAffinity {
    fn new(field: &'static str, why: impl Into<String>) -> Self {
        Self {
            field,
            why: why.into(),
        }
    }

    /// The offending field: `key`, `epsilon` or `virtual_nodes`.
    pub fn field(&self) -> &'static str {
        self.field
    }
}

impl fmt::Display for InvalidAffinity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid affinity config: {}", self.why)
    }
}

impl std::error::Error for InvalidAffinity {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_bad_epsilons_and_node_counts() {
        for eps in [0.0, -0.1, f64::NAN, f64::INFINITY] {
            let err = AffinityConfig::metadata("k")
                .with_epsilon(eps)
                .validate()
                .unwrap_err();
            assert_eq!(err.field(), "epsilon", "{eps}");
        }
        for n in [0, MAX_VIRTUAL_NODES + 1] {
            let err = AffinityConfig::metadata("k")
                .with_virtual_nodes(n)
                .validate()
                .unwrap_err();
            assert_eq!(err.field(), "virtual_nodes");
        }
        assert!(
            AffinityConfig::new(AffinityKey::Application)
                .validate()
                .is_ok()
        );
        assert_eq!(
            AffinityConfig::metadata("")
                .validate()
                .unwrap_err()
                .to_string(),
            "invalid affinity config: the metadata name must not be empty"
        );
    }
}
