//! How the sidecar connects to Harbor core: HTTP/1.1, optional internal TLS with its own CA,
//! connect timeout, no redirects, no decompression, no default headers.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rustls::RootCertStore;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;

/// What a connection to core needs; cheap to clone into every worker.
#[derive(Debug, Clone)]
pub struct CoreTransport {
    tls: Arc<rustls::ClientConfig>,
    connect_timeout: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    #[error("cannot read Harbor CA bundle {path}: {reason}")]
    CaFile { path: PathBuf, reason: String },
    #[error("Harbor CA bundle {0} holds no certificate")]
    EmptyCaFile(PathBuf),
    #[error("cannot set up TLS: {0}")]
    Tls(String),
}

impl CoreTransport {
    /// Trusts `ca_file` when given (Harbor's internal TLS), else the system's roots.
    pub fn new(ca_file: Option<&Path>, connect_timeout: Duration) -> Result<Self, TransportError> {
        let mut roots = RootCertStore::empty();
        match ca_file {
            Some(path) => {
                let certs = CertificateDer::pem_file_iter(path)
                    .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
                    .map_err(|e| TransportError::CaFile {
                        path: path.to_owned(),
                        reason: e.to_string(),
                    })?;
                if certs.is_empty() {
                    return Err(TransportError::EmptyCaFile(path.to_owned()));
                }
                for cert in certs {
                    roots
                        .add(cert)
                        .map_err(|e| TransportError::Tls(e.to_string()))?;
                }
            }
            None => {
                // Unreadable system certificates are not fatal: core is usually plain HTTP.
                let native = rustls_native_certs::load_native_certs();
                roots.add_parsable_certificates(native.certs);
            }
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| TransportError::Tls(e.to_string()))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(Self {
            tls: Arc::new(tls),
            connect_timeout,
        })
    }

    /// A client for core. `timeout` bounds a whole request where one makes sense (API calls);
    /// streamed pass-through has none, only the connect timeout.
    #[must_use]
    pub fn client(&self, timeout: Option<Duration>) -> awc::Client {
        let connector = awc::Connector::new()
            .timeout(self.connect_timeout)
            .rustls_0_23(Arc::clone(&self.tls))
            .max_http_version(awc::http::Version::HTTP_11);
        let builder = awc::Client::builder()
            .connector(connector)
            .disable_redirects()
            .no_default_headers();
        match timeout {
            Some(timeout) => builder.timeout(timeout).finish(),
            None => builder.disable_timeout().finish(),
        }
    }
}
