//! The status a gRPC response ends with.

use tonic::Code;
use tonic::codegen::http::{HeaderMap, HeaderName};

/// The key, parsed once: looking it up by name skips parsing a `&str` on
/// every response.
static GRPC_STATUS: HeaderName = HeaderName::from_static("grpc-status");

/// The `grpc-status` of a trailer map (or of trailers-only headers), if the
/// entry is there and is a number.
///
/// A number that names no status is `Code::Unknown`, as tonic reads it. No
/// entry, or one that is not a number, is `None`: the response did not end
/// with a gRPC status, which both the reporting layer and the balancer count
/// as a failed call.
///
/// ```
/// use orca_lb_proto::grpc_status;
/// use tonic::Code;
/// use tonic::codegen::http::{HeaderMap, HeaderValue};
///
/// let mut trailers = HeaderMap::new();
/// assert_eq!(grpc_status(&trailers), None);
/// trailers.insert("grpc-status", HeaderValue::from_static("8"));
/// assert_eq!(grpc_status(&trailers), Some(Code::ResourceExhausted));
/// ```
pub fn grpc_status(headers: &HeaderMap) -> Option<Code> {
    let value = headers.get(&GRPC_STATUS)?.as_bytes();
    if value == b"0" {
        // Most calls succeed.
        return Some(Code::Ok);
    }
    let value = std::str::from_utf8(value).ok()?;
    value.parse::<i32>().ok().map(Code::from)
}

#[cfg(test)]
mod tests {
    use tonic::codegen::http::HeaderValue;

    use super::*;

    fn status_of(value: &'static str) -> Option<Code> {
        let mut headers = HeaderMap::new();
        headers.insert("grpc-status", HeaderValue::from_static(value));
        grpc_status(&headers)
    }

    #[test]
    fn reads_numbers_and_refuses_the_rest() {
        assert_eq!(status_of("0"), Some(Code::Ok));
        assert_eq!(status_of("14"), Some(Code::Unavailable));
        assert_eq!(status_of("99"), Some(Code::Unknown));
        assert_eq!(status_of("-1"), Some(Code::Unknown));
        assert_eq!(status_of(""), None);
        assert_eq!(status_of("OK"), None);
        assert_eq!(status_of("1 "), None);
    }
}
