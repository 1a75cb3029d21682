//! Client TLS and mTLS from PEM files, checked when built.

use std::path::{Path, PathBuf};

use tonic::transport::{Certificate, ClientTlsConfig, Endpoint as TonicEndpoint, Identity};

use crate::{BuildError, EndpointTemplate};

/// Client TLS settings read from PEM files: the CA that signs the servers'
/// certificates, the name their certificates must carry, and for mTLS the
/// client's certificate and key.
///
/// [`template`](Self::template) reads and checks every file at once, so an
/// unreadable or malformed file is an error naming it when the balancer is
/// configured, not a failure of the first call.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct TlsFiles {
    /// PEM file of the CA certificates to trust. `None`: the roots enabled
    /// by tonic's `tls-native-roots` or `tls-webpki-roots` features.
    pub ca: Option<PathBuf>,
    /// The name the servers' certificates must carry. `None`: the host of
    /// the service URI.
    pub domain: Option<String>,
    /// PEM file of this client's certificate chain (mTLS); needs `key`.
    pub cert: Option<PathBuf>,
    /// PEM file of this client's private key (mTLS); needs `cert`.
    pub key: Option<PathBuf>,
}

// === setters of TlsFiles ===

impl TlsFiles {
    /// Sets [`ca`](Self::ca).
    #[must_use]
    pub fn with_ca(mut self, ca: impl Into<Option<PathBuf>>) -> Self {
        self.ca = ca.into();
        self
    }

    /// Sets [`domain`](Self::domain).
    #[must_use]
    pub fn with_domain(mut self, domain: impl Into<Option<String>>) -> Self {
        self.domain = domain.into();
        self
    }

    /// Sets [`cert`](Self::cert).
    #[must_use]
    pub fn with_cert(mut self, cert: impl Into<Option<PathBuf>>) -> Self {
        self.cert = cert.into();
        self
    }

    /// Sets [`key`](Self::key).
    #[must_use]
    pub fn with_key(mut self, key: impl Into<Option<PathBuf>>) -> Self {
        self.key = key.into();
        self
    }
}

fn read_pem(setting: &str, path: &Path) -> Result<Vec<u8>, BuildError> {
    let bytes = std::fs::read(path).map_err(|e| BuildError::Tls {
        setting: format!("{setting} {}", path.display()),
        why: e.to_string(),
    })?;
    if !bytes.windows(11).any(|w| w == b"-----BEGIN ") {
        return Err(BuildError::Tls {
            setting: format!("{setting} {}", path.display()),
            why: "no PEM block (-----BEGIN ...) in the file".to_string(),
        });
    }
    Ok(bytes)
}

impl TlsFiles {
    /// The tonic client TLS configuration, with every file read and checked.
    pub fn client_config(&self) -> Result<ClientTlsConfig, BuildError> {
        // Each part is checked on its own so that an error names its file.
        let probe = TonicEndpoint::from_static("https://localhost");
        let check = |setting: String, config: ClientTlsConfig| {
            probe
                .clone()
                .tls_config(config)
                .map(drop)
                .map_err(|e| BuildError::Tls {
                    setting,
                    why: error_chain(&e),
                })
        };
        let mut config = ClientTlsConfig::new();
        if let Some(ca) = &self.ca {
            let cert = Certificate::from_pem(read_pem("ca", ca)?);
            check(
                format!("ca {}", ca.display()),
                ClientTlsConfig::new().ca_certificate(cert.clone()),
            )?;
            config = config.ca_certificate(cert);
        }
        if let Some(domain) = &self.domain {
            if domain.is_empty() {
                return Err(BuildError::Tls {
                    setting: "domain".to_string(),
                    why: "must not be empty".to_string(),
                });
            }
            config = config.domain_name(domain.clone());
        }
        match (&self.cert, &self.key) {
            (Some(cert), Some(key)) => {
                let identity = Identity::from_pem(read_pem("cert", cert)?, read_pem("key", key)?);
                check(
                    format!("cert {} and key {}", cert.display(), key.display()),
                    ClientTlsConfig::new().identity(identity.clone()),
                )?;
                config = config.identity(identity);
            }
            (Some(_), None) => {
                return Err(BuildError::Tls {
                    setting: "key".to_string(),
                    why: "a client certificate needs its key".to_string(),
                });
            }
            (None, Some(_)) => {
                return Err(BuildError::Tls {
                    setting: "cert".to_string(),
                    why: "a client key needs its certificate".to_string(),
                });
            }
            (None, None) => {}
        }
        check("tls".to_string(), config.clone())?;
        Ok(config)
    }

    /// An [`EndpointTemplate`] that reaches `service` (`https://name:port`,
    /// the name the certificates are checked against unless
    /// [`domain`](Self::domain) is set) over TLS at every discovered address.
    pub fn template(&self, service: &str) -> Result<EndpointTemplate, BuildError> {
        let endpoint = TonicEndpoint::from_shared(service.to_string()).map_err(|e| {
            BuildError::InvalidUri {
                uri: service.to_string(),
                why: error_chain(&e),
            }
        })?;
        if endpoint.uri().scheme_str() != Some("https") {
            return Err(BuildError::InvalidUri {
                uri: service.to_string(),
                why: "a TLS service URI starts with https://".to_string(),
            });
        }
        let endpoint = endpoint
            .tls_config(self.client_config()?)
            .map_err(|e| BuildError::Tls {
                setting: "tls".to_string(),
                why: error_chain(&e),
            })?;
        Ok(EndpointTemplate::new(endpoint))
    }
}

/// An error and its sources, as one line.
fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}
