//! Recognising a failed TLS session in a transport error, and saying what
//! to check.

use std::error::Error as _;

use crate::error::error_chain;

/// What failed, with a hint, if `status` comes from a TLS failure (or from
/// one side speaking TLS and the other not); `None` otherwise.
pub(crate) fn classify(status: &tonic::Status) -> Option<String> {
    let chain = error_chain(status.source()?);
    let hint = if chain.contains("UnknownIssuer") || chain.contains("BadSignature") {
        "certificate verification failed: etcd's certificate is not signed by a trusted CA (check the CA file)"
    } else if chain.contains("NotValidForName") {
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
    } else {
        return None;
    };
    Some(format!("{hint}: {chain}"))
}
