//! Certificates made at run time for TLS tests and examples.

use std::io;
use std::path::Path;

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, KeyUsagePurpose,
};
use tonic::transport::{Certificate, Identity, ServerTlsConfig};

/// A CA, a server certificate for one DNS name and a client certificate,
/// all as PEM.
#[derive(Debug, Clone)]
pub struct TestPki {
    /// The CA certificate that signs the other two.
    pub ca_pem: String,
    /// The server's certificate, for the DNS name given to
    /// [`generate`](Self::generate) only (no IP address).
    pub server_cert_pem: String,
    /// The server's private key.
    pub server_key_pem: String,
    /// The client's certificate, for mTLS.
    pub client_cert_pem: String,
    /// The client's private key.
    pub client_key_pem: String,
}

fn rcgen_error(e: rcgen::Error) -> io::Error {
    io::Error::other(e)
}

impl TestPki {
    /// A fresh CA and certificates; the server's carries `server_name`.
    pub fn generate(server_name: &str) -> io::Result<TestPki> {
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).map_err(rcgen_error)?;
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "orca-lb test CA");
        ca_params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::CrlSign,
        ];
        let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().map_err(rcgen_error)?)
            .map_err(rcgen_error)?;

        let server_key = KeyPair::generate().map_err(rcgen_error)?;
        let mut server_params =
            CertificateParams::new(vec![server_name.to_string()]).map_err(rcgen_error)?;
        server_params
            .distinguished_name
            .push(DnType::CommonName, server_name);
        let server_cert = server_params
            .signed_by(&server_key, &ca)
            .map_err(rcgen_error)?;

        let client_key = KeyPair::generate().map_err(rcgen_error)?;
        let mut client_params =
            CertificateParams::new(Vec::<String>::new()).map_err(rcgen_error)?;
        client_params
            .distinguished_name
            .push(DnType::CommonName, "orca-lb test client");
        let client_cert = client_params
            .signed_by(&client_key, &ca)
            .map_err(rcgen_error)?;

        Ok(TestPki {
            ca_pem: ca.pem(),
            server_cert_pem: server_cert.pem(),
            server_key_pem: server_key.serialize_pem(),
            client_cert_pem: client_cert.pem(),
            client_key_pem: client_key.serialize_pem(),
        })
    }

    /// The server side: its certificate, and with `require_client_cert` the
    /// CA that client certificates must chain to (mTLS).
    pub fn server_tls(&self, require_client_cert: bool) -> ServerTlsConfig {
        let tls = ServerTlsConfig::new().identity(Identity::from_pem(
            &self.server_cert_pem,
            &self.server_key_pem,
        ));
        if require_client_cert {
            tls.client_ca_root(Certificate::from_pem(&self.ca_pem))
        } else {
            tls
        }
    }

    /// Writes `ca.pem`, `server.pem`, `server.key`, `client.pem` and
    /// `client.key` into `dir`, creating it.
    pub fn write_to(&self, dir: &Path) -> io::Result<()> {
        std::fs::create_dir_all(dir)?;
        for (name, pem) in [
            ("ca.pem", &self.ca_pem),
            ("server.pem", &self.server_cert_pem),
            ("server.key", &self.server_key_pem),
            ("client.pem", &self.client_cert_pem),
            ("client.key", &self.client_key_pem),
        ] {
            std::fs::write(dir.join(name), pem)?;
        }
        Ok(())
    }
}
