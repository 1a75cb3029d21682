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
    let closed = chain.contains("tls handshake eof")
        || chain.contains("BrokenPipe")
        || chain.contains("broken pipe")
        || chain.contains("ConnectionReset")
        || chain.contains("connection reset")
        || chain.contains("connection closed");
    let hint = if chain.contains("UnknownIssuer") || chain.contains("BadSignature") {
        "certificate verification failed: etcd's certificate is not signed by a trusted CA (check the CA file)"
    } else if chain.contains("NotValidForName") || chain.contains("not valid for name") {
        "certificate verification failed: etcd's certificate does not carry the name connected to (set the TLS server name to a name it carries)"
    } else if chain.contains("Expired") || chain.contains("NotValidYet") {
        "certificate verification failed: etcd's certificate is outside its validity period"
    } else if chain.contains("invalid peer certificate") {
        "certificate verification failed"
    } else if chain.contains("CertificateRequired")
        || chain.contains("BadCertificate")
        || chain.contains("UnknownCA")
    {
        "etcd refused this client's certificate (etcd --client-cert-auth needs a client certificate signed by its --trusted-ca-file)"
    } else if chain.contains("InvalidContentType") || chain.contains("corrupt message") {
        "etcd does not answer in TLS on this port: is it serving plain http://?"
    } else if closed && transport == Some(Transport::Tls { identity: false }) {
        "etcd closed the connection during or right after the TLS handshake: it may serve plain http:// on this port, or require a client certificate (--client-cert-auth)"
    } else if closed && transport == Some(Transport::Tls { identity: true }) {
        "etcd closed the connection during or right after the TLS handshake: it may serve plain http:// on this port, or refuse this client's certificate"
    } else if transport == Some(Transport::Plain)
        && (chain.contains("frame with invalid size")
            || chain.contains("connection closed")
            || chain.contains("connection error")
            || closed)
    {
        "etcd broke off a plain HTTP/2 connection: is it serving TLS (https://) on this port?"
    } else {
        return None;
    };
    Some(format!("{hint}: {chain}"))
}
