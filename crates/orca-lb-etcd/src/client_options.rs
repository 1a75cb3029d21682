//! How an [`EtcdClient`](crate::EtcdClient) connects: TLS, credentials and
//! timeouts.

use std::fmt;
use std::path::Path;
use std::time::Duration;

use tonic::transport::{Certificate, ClientTlsConfig, Endpoint, Identity};

use crate::client::DEFAULT_REQUEST_TIMEOUT;
use crate::error::ConfigError;

/// How long connecting to an etcd member may take by default.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// How an [`EtcdClient`](crate::EtcdClient) reaches etcd, for
/// [`EtcdClient::connect_lazy_with`](crate::EtcdClient::connect_lazy_with).
///
/// The default is plain `http://` without authentication, as
/// [`EtcdClient::connect_lazy`](crate::EtcdClient::connect_lazy).
///
/// ```
/// use orca_lb_etcd::{EtcdClientOptions, EtcdCredentials, EtcdTls};
///
/// # fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let tls = EtcdTls::from_files(Some("ca.pem"), Some("client.pem"), Some("client.key"))?;
/// let options = EtcdClientOptions::default()
///     .tls(tls)
///     .credentials(EtcdCredentials::new("orca", std::env::var("ETCD_PASSWORD")?));
/// # let _ = options;
/// # Ok(())
/// # }
/// # let _ = run;
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct EtcdClientOptions {
    /// TLS settings, for `https://` endpoints (which need them unless the
    /// roots enabled by tonic's `tls-native-roots` or `tls-webpki-roots`
    /// features sign etcd's certificate). `None`: plain `http://`.
    pub tls: Option<EtcdTls>,
    /// The user and password to authenticate as. `None`: no authentication
    /// (etcd with auth disabled, or mTLS with the certificate's common name
    /// as the user).
    pub credentials: Option<EtcdCredentials>,
    /// How long a unary request may take, authentication included (default
    /// 5 s). Streams (watch, keep-alive) have no overall timeout.
    pub request_timeout: Duration,
    /// How long connecting to a member may take, TLS handshake included
    /// (default 2 s).
    pub connect_timeout: Duration,
}

impl Default for EtcdClientOptions {
    fn default() -> Self {
        Self {
            tls: None,
            credentials: None,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
        }
    }
}

impl EtcdClientOptions {
    /// Connects over TLS with `tls`.
    pub fn tls(mut self, tls: EtcdTls) -> Self {
        self.tls = Some(tls);
        self
    }

    /// Authenticates with `credentials`.
    pub fn credentials(mut self, credentials: EtcdCredentials) -> Self {
        self.credentials = Some(credentials);
        self
    }

    /// Sets [`request_timeout`](Self::request_timeout).
    pub fn request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = timeout;
        self
    }

    /// Sets [`connect_timeout`](Self::connect_timeout).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Checks every field, naming the first that is wrong.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.request_timeout.is_zero() {
            return Err(ConfigError::new("request_timeout", "must be positive"));
        }
        if self.connect_timeout.is_zero() {
            return Err(ConfigError::new("connect_timeout", "must be positive"));
        }
        if let Some(tls) = &self.tls {
            tls.validate()?;
        }
        if let Some(credentials) = &self.credentials {
            credentials.validate()?;
        }
        Ok(())
    }
}

/// TLS settings for etcd: the CA that signs etcd's server certificate, the
/// name that certificate must carry, and for mTLS (`etcd
/// --client-cert-auth`) this client's certificate and key. All PEM.
#[derive(Clone, Default)]
#[non_exhaustive]
pub struct EtcdTls {
    /// The CA certificates to trust (PEM), as etcd's `--trusted-ca-file`
    /// holds. `None`: the roots enabled by tonic's `tls-native-roots` or
    /// `tls-webpki-roots` features (with neither, no server is trusted).
    pub ca_pem: Option<String>,
    /// This client's certificate chain (PEM), for mTLS; needs
    /// [`client_key_pem`](Self::client_key_pem).
    pub client_cert_pem: Option<String>,
    /// This client's private key (PEM), for mTLS; needs
    /// [`client_cert_pem`](Self::client_cert_pem). Never printed.
    pub client_key_pem: Option<String>,
    /// The name etcd's certificate must carry. `None`: the host of each
    /// endpoint URL (an IP address then needs an IP entry in the
    /// certificate).
    pub server_name: Option<String>,
}

impl fmt::Debug for EtcdTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EtcdTls")
            .field("ca_pem", &self.ca_pem.as_ref().map(|_| "<PEM>"))
            .field(
                "client_cert_pem",
                &self.client_cert_pem.as_ref().map(|_| "<PEM>"),
            )
            .field(
                "client_key_pem",
                &self.client_key_pem.as_ref().map(|_| "<redacted>"),
            )
            .field("server_name", &self.server_name)
            .finish()
    }
}

/// Reads a PEM file for `field`; the error names the file.
fn read_pem(field: &'static str, path: &Path) -> Result<String, ConfigError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| ConfigError::new(field, format!("cannot read {}: {e}", path.display())))?;
    if !text.contains("-----BEGIN ") {
        return Err(ConfigError::new(
            field,
            format!("{}: no PEM block (-----BEGIN ...)", path.display()),
        ));
    }
    Ok(text)
}

impl EtcdTls {
    /// TLS trusting `ca_pem` (PEM text).
    pub fn with_ca_pem(ca_pem: impl Into<String>) -> Self {
        Self {
            ca_pem: Some(ca_pem.into()),
            ..Self::default()
        }
    }

    /// Reads the CA and, for mTLS, the client certificate and key from PEM
    /// files; an unreadable file or one without PEM is an error naming it.
    /// `cert` and `key` go together.
    pub fn from_files(
        ca: Option<impl AsRef<Path>>,
        cert: Option<impl AsRef<Path>>,
        key: Option<impl AsRef<Path>>,
    ) -> Result<Self, ConfigError> {
        let mut tls = Self::default();
        if let Some(ca) = ca {
            tls.ca_pem = Some(read_pem("tls.ca_pem", ca.as_ref())?);
        }
        if let Some(cert) = cert {
            tls.client_cert_pem = Some(read_pem("tls.client_cert_pem", cert.as_ref())?);
        }
        if let Some(key) = key {
            tls.client_key_pem = Some(read_pem("tls.client_key_pem", key.as_ref())?);
        }
        tls.check_pair()?;
        Ok(tls)
    }

    /// Presents `cert_pem` and `key_pem` (PEM text) to etcd (mTLS).
    pub fn client_identity(
        mut self,
        cert_pem: impl Into<String>,
        key_pem: impl Into<String>,
    ) -> Self {
        self.client_cert_pem = Some(cert_pem.into());
        self.client_key_pem = Some(key_pem.into());
        self
    }

    /// Checks etcd's certificate against `name` instead of the endpoint's
    /// host.
    pub fn server_name(mut self, name: impl Into<String>) -> Self {
        self.server_name = Some(name.into());
        self
    }

    fn check_pair(&self) -> Result<(), ConfigError> {
        match (&self.client_cert_pem, &self.client_key_pem) {
            (Some(_), None) => Err(ConfigError::new(
                "tls.client_key_pem",
                "a client certificate needs its key",
            )),
            (None, Some(_)) => Err(ConfigError::new(
                "tls.client_cert_pem",
                "a client key needs its certificate",
            )),
            _ => Ok(()),
        }
    }

    /// Checks every field (that each PEM parses), naming the first that is
    /// wrong.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.client_config().map(drop)
    }

    /// The tonic configuration, each part checked on its own so that an
    /// error names its field.
    pub(crate) fn client_config(&self) -> Result<ClientTlsConfig, ConfigError> {
        let probe = Endpoint::from_static("https://localhost");
        let check = |field: &'static str, config: ClientTlsConfig| {
            probe
                .clone()
                .tls_config(config)
                .map(drop)
                .map_err(|e| ConfigError::new(field, crate::error::error_chain(&e)))
        };
        self.check_pair()?;
        let mut config = ClientTlsConfig::new();
        match &self.ca_pem {
            Some(pem) => {
                if !pem.contains("-----BEGIN ") {
                    return Err(ConfigError::new(
                        "tls.ca_pem",
                        "no PEM block (-----BEGIN ...)",
                    ));
                }
                let ca = Certificate::from_pem(pem);
                check(
                    "tls.ca_pem",
                    ClientTlsConfig::new().ca_certificate(ca.clone()),
                )?;
                config = config.ca_certificate(ca);
            }
            None => config = config.with_enabled_roots(),
        }
        if let (Some(cert), Some(key)) = (&self.client_cert_pem, &self.client_key_pem) {
            for (field, pem) in [("tls.client_cert_pem", cert), ("tls.client_key_pem", key)] {
                if !pem.contains("-----BEGIN ") {
                    return Err(ConfigError::new(field, "no PEM block (-----BEGIN ...)"));
                }
            }
            let identity = Identity::from_pem(cert, key);
            check(
                "tls.client_cert_pem",
                ClientTlsConfig::new().identity(identity.clone()),
            )?;
            config = config.identity(identity);
        }
        if let Some(name) = &self.server_name {
            if name.is_empty() {
                return Err(ConfigError::new("tls.server_name", "must not be empty"));
            }
            config = config.domain_name(name.clone());
        }
        Ok(config)
    }
}

/// A user and password for etcd's authentication (`etcdctl auth enable`).
/// The password is never printed.
#[derive(Clone, Default)]
#[non_exhaustive]
pub struct EtcdCredentials {
    /// The etcd user.
    pub user: String,
    /// Its password.
    pub password: String,
}

impl fmt::Debug for EtcdCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EtcdCredentials")
            .field("user", &self.user)
            .field("password", &"<redacted>")
            .finish()
    }
}

impl EtcdCredentials {
    /// `user` with `password`.
    pub fn new(user: impl Into<String>, password: impl Into<String>) -> Self {
        Self {
            user: user.into(),
            password: password.into(),
        }
    }

    /// Checks every field, naming the first that is wrong.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.user.is_empty() {
            return Err(ConfigError::new("credentials.user", "must not be empty"));
        }
        Ok(())
    }
}
