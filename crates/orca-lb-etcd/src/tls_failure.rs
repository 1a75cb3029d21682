//! Recognising a failed TLS session in a transport error, and saying what
//! to check.

use std::error::Error as _;

use crate::error::error_chain;

/// How a client reaches etcd, for hints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Transport {
    /// `http://`.
    Plain,
    /// `https://`, with or without a client certificate.
    Tls {
        /// Whether the client presents a certificate.
        identity: bool,
    },
}

/// What failed, with a hint, if `status` comes from a TLS failure (or from
/// one side speaking TLS and the other not); `None` otherwise. `transport`,
/// when known, explains failures that only show as a closed connection.
pub(crate) fn classify(status: &tonic::Status, transport: Option<Transport>) -> Option<String> {
    let chain = error_chain(status.source()?);
    // Error texts differ in case between layers and versions ("Connection
    // reset by peer" from the OS, "connection reset" from hyper), so the
    // patterns are matched against a lower-cased copy.
    let text = chain.to_ascii_lowercase();
    let has = |pattern: &str| text.contains(pattern);
    let closed = has("tls handshake eof")
        || has("close_notify")
        || has("unexpected eof")
        || has("unexpectedeof")
        || has("early eof")
        || has("brokenpipe")
        || has("broken pipe")
        || has("connectionreset")
        || has("connection reset")
        || has("connection closed");
    let hint = if has("unknownissuer") || has("badsignature") {
        "certificate verification failed: etcd's certificate is not signed by a trusted CA (check the CA file)"
    } else if has("notvalidforname") || has("not valid for name") {
        "certificate verification failed: etcd's certificate does not carry the name connected to (set the TLS server name to a name it carries)"
    } else if (has("expired") && has("certificate")) || has("notvalidyet") {
        "certificate verification failed: etcd's certificate is outside its validity period"
    } else if has("invalid peer certificate") {
        "certificate verification failed"
    } else if has("certificaterequired") || has("badcertificate") || has("unknownca") {
        "etcd refused this client's certificate (etcd --client-cert-auth needs a client certificate signed by its --trusted-ca-file)"
    } else if has("invalidcontenttype") || has("corrupt message") {
        "etcd does not answer in TLS on this port: is it serving plain http://?"
    } else if closed && transport == Some(Transport::Tls { identity: false }) {
        "etcd closed the connection during or right after the TLS handshake: it may serve plain http:// on this port, or require a client certificate (--client-cert-auth)"
    } else if closed && transport == Some(Transport::Tls { identity: true }) {
        "etcd closed the connection during or right after the TLS handshake: it may serve plain http:// on this port, or refuse this client's certificate"
    } else if transport == Some(Transport::Plain)
        && (has("frame with invalid size")
            || has("connection closed")
            || has("connection error")
            || has("protocol error")
            || has("http2 error")
            || closed)
    {
        "etcd broke off a plain HTTP/2 connection: is it serving TLS (https://) on this port?"
    } else {
        return None;
    };
    Some(format!("{hint}: {chain}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status_from(error: std::io::Error) -> tonic::Status {
        let mut status = tonic::Status::unavailable(error.to_string());
        status.set_source(std::sync::Arc::new(error));
        status
    }

    #[test]
    fn a_reset_is_recognised_whatever_the_case_of_its_text() {
        use std::io::{Error, ErrorKind};
        let tls = Some(Transport::Tls { identity: false });
        for text in [
            "Connection reset by peer (os error 104)",
            "connection reset",
        ] {
            let status = status_from(Error::new(ErrorKind::ConnectionReset, text));
            let hint = classify(&status, tls).unwrap_or_else(|| panic!("{text} not recognised"));
            assert!(hint.contains("plain http://"), "{hint}");
            let hint = classify(&status, Some(Transport::Plain)).expect("plain");
            assert!(hint.contains("https://"), "{hint}");
        }
    }

    #[test]
    fn an_unrelated_failure_is_not_called_tls() {
        let status = status_from(std::io::Error::other("deadline has elapsed"));
        assert_eq!(
            classify(&status, Some(Transport::Tls { identity: true })),
            None
        );
        let status = status_from(std::io::Error::other("token expired"));
        assert_eq!(
            classify(&status, Some(Transport::Tls { identity: true })),
            None
        );
    }
}
