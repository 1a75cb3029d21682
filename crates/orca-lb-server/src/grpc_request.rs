//! Which requests are gRPC calls.

use http::Request;
use http::header::CONTENT_TYPE;

/// Whether a request is a gRPC call: its `content-type` is `application/grpc`
/// or one of its variants (`application/grpc+proto`, `application/grpc-web`,
/// ...), as every gRPC client sends.
///
/// Anything else (a health probe over HTTP/1.1, a metrics page, a static
/// file served by the same router) is not a call: it is neither counted nor
/// queued nor shed, and its response carries no report.
pub(crate) fn is_grpc<B>(request: &Request<B>) -> bool {
    request
        .headers()
        .get(CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/grpc"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_type(content_type: Option<&str>) -> Request<()> {
        let mut builder = Request::builder().method("POST").uri("/a.B/C");
        if let Some(t) = content_type {
            builder = builder.header(CONTENT_TYPE, t);
        }
        builder.body(()).unwrap()
    }

    #[test]
    fn grpc_content_types_are_calls() {
        for t in [
            "application/grpc",
            "application/grpc+proto",
            "application/grpc+json",
            "application/grpc-web",
            "application/grpc-web+proto",
        ] {
            assert!(is_grpc(&with_type(Some(t))), "{t}");
        }
    }

    #[test]
    fn other_requests_are_not_calls() {
        for t in [None, Some("text/plain"), Some("application/json"), Some("")] {
            assert!(!is_grpc(&with_type(t)), "{t:?}");
        }
    }
}
