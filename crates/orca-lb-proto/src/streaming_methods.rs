//! Which gRPC methods are streams.

use std::collections::HashSet;

use prost::Message;
use prost_types::FileDescriptorSet;

/// The full paths (`/package.Service/Method`) of the streaming methods a
/// server hosts.
///
/// HTTP/2 does not say whether a gRPC call streams, so the layer is told:
/// a call to one of these methods counts as an active stream until its
/// response ends, and is not held to the worker-slot limit. The easiest source
/// is the `FileDescriptorSet` the server already embeds for reflection:
///
/// ```
/// use orca_lb_proto::StreamingMethods;
///
/// let methods = StreamingMethods::from_file_descriptor_set(orca_lb_proto::FILE_DESCRIPTOR_SET)
///     .expect("a valid descriptor set");
/// assert!(methods.contains("/xds.service.orca.v3.OpenRcaService/StreamCoreMetrics"));
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StreamingMethods {
    paths: HashSet<Box<str>>,
    /// Bit `n % 128` is set for each path `n` bytes long: a path of another
    /// length is not in `paths`, and is told so without hashing it (every
    /// call asks, and most are unary).
    lengths: u128,
}

impl StreamingMethods {
    /// No streaming methods: every call is unary.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds one method by its full path, `/package.Service/Method`.
    pub fn with(mut self, path: &str) -> Self {
        self.insert(path.into());
        self
    }

    fn insert(&mut self, path: Box<str>) {
        self.lengths |= Self::length_bit(&path);
        self.paths.insert(path);
    }

    fn length_bit(path: &str) -> u128 {
        1 << (path.len() % 128)
    }

    /// Every client-, server- or bidirectional-streaming method in an encoded
    /// `FileDescriptorSet`, such as the one `tonic-prost-build` or `protox`
    /// writes for server reflection.
    pub fn from_file_descriptor_set(bytes: &[u8]) -> Result<Self, prost::DecodeError> {
        let mut methods = Self::new();
        methods.extend_from_file_descriptor_set(bytes)?;
        Ok(methods)
    }

    /// Adds the streaming methods of another encoded `FileDescriptorSet`.
    pub fn extend_from_file_descriptor_set(
        &mut self,
        bytes: &[u8],
    ) -> Result<(), prost::DecodeError> {
        let fds = FileDescriptorSet::decode(bytes)?;
        for file in &fds.file {
            let package = file.package();
            for service in &file.service {
                for method in &service.method {
                    if method.client_streaming() || method.server_streaming() {
                        let path = if package.is_empty() {
                            format!("/{}/{}", service.name(), method.name())
                        } else {
                            format!("/{package}.{}/{}", service.name(), method.name())
                        };
                        self.insert(path.into_boxed_str());
                    }
                }
            }
        }
        Ok(())
    }

    /// Whether `path` names a streaming method.
    pub fn contains(&self, path: &str) -> bool {
        self.lengths & Self::length_bit(path) != 0 && self.paths.contains(path)
    }

    /// How many streaming methods are known.
    pub fn len(&self) -> usize {
        self.paths.len()
    }

    /// Whether no streaming method is known.
    pub fn is_empty(&self) -> bool {
        self.paths.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_of_a_known_length_are_still_compared() {
        let m = StreamingMethods::new().with("/a.B/Stream").with("/a.B/Lo");
        assert!(m.contains("/a.B/Stream") && m.contains("/a.B/Lo"));
        // Same lengths, other paths.
        assert!(!m.contains("/a.B/Other1") && !m.contains("/a.B/Up"));
        assert!(!m.contains("/a.B/Streamed") && !m.contains(""));
        let long = format!("/a.B/{}", "x".repeat(200));
        let m = m.with(&long);
        assert!(m.contains(&long));
        assert!(
            !m.contains(&long[..long.len() - 128]),
            "a length 128 shorter"
        );
    }

    #[test]
    fn finds_the_orca_stream_and_nothing_else() {
        let m = StreamingMethods::from_file_descriptor_set(crate::FILE_DESCRIPTOR_SET).unwrap();
        assert_eq!(m.len(), 1);
        assert!(m.contains("/xds.service.orca.v3.OpenRcaService/StreamCoreMetrics"));
        assert!(!m.contains("/xds.service.orca.v3.OpenRcaService/Other"));
    }

    #[test]
    fn garbage_descriptor_is_an_error() {
        assert!(StreamingMethods::from_file_descriptor_set(&[0xff, 0xff, 0xff]).is_err());
    }
}
