//! TLS client set-up shared by the Harbor and upstream clients: rustls with the `ring`
//! provider, the system's trusted roots, and PEM CA bundles read from a file.
//!
//! Its own crate because both clients need it and neither should depend on the other, while
//! the domain crate stays free of I/O.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use rustls::RootCertStore;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;

/// Why a CA bundle could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CaBundleError {
    /// The file could not be read, or is not PEM, or holds a certificate rustls refuses.
    #[error("cannot read CA bundle {path}: {reason}")]
    Unreadable {
        /// The configured file.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// The file holds no certificate: trusting it would trust nothing, which is never meant.
    #[error("CA bundle {0} holds no certificate")]
    Empty(PathBuf),
}

/// The one crypto provider every TLS connection of the workspace uses.
#[must_use]
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The system's trusted roots, read and parsed once per process and shared by every client
/// (each used to hold a copy of its own). Unreadable system certificates are skipped, not
/// fatal: a configured bundle may be all that is needed.
#[must_use]
pub fn system_roots() -> Arc<RootCertStore> {
    static ROOTS: OnceLock<Arc<RootCertStore>> = OnceLock::new();
    let roots = ROOTS.get_or_init(|| {
        Arc::new(distinct_roots(
            rustls_native_certs::load_native_certs().certs,
        ))
    });
    Arc::clone(roots)
}

/// A store of `certs`, each kept once: where both a bundle file and the directory holding it
/// are configured (`SSL_CERT_FILE` and `SSL_CERT_DIR`, or what the platform's defaults find,
/// as on Debian), every certificate is read twice.
fn distinct_roots(mut certs: Vec<CertificateDer<'static>>) -> RootCertStore {
    certs.sort_unstable_by(|a, b| a.as_ref().cmp(b.as_ref()));
    certs.dedup();
    let mut roots = RootCertStore::empty();
    roots.add_parsable_certificates(certs);
    roots
}

/// Adds every certificate of the PEM bundle at `path` to `roots`.
///
/// # Errors
///
/// [`CaBundleError`] when the file cannot be read, holds no certificate, or holds one that
/// cannot be a trust anchor.
pub fn add_ca_bundle(roots: &mut RootCertStore, path: &Path) -> Result<(), CaBundleError> {
    let unreadable = |reason: String| CaBundleError::Unreadable {
        path: path.to_owned(),
        reason,
    };
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| unreadable(e.to_string()))?;
    if certs.is_empty() {
        return Err(CaBundleError::Empty(path.to_owned()));
    }
    for cert in certs {
        roots.add(cert).map_err(|e| unreadable(e.to_string()))?;
    }
    Ok(())
}

/// A client configuration that verifies servers against `roots`, with safe protocol versions
/// and no client certificate.
///
/// # Errors
///
/// [`rustls::Error`] when the provider supports none of the safe protocol versions.
pub fn verifying_config(
    provider: Arc<CryptoProvider>,
    roots: Arc<RootCertStore>,
) -> Result<rustls::ClientConfig, rustls::Error> {
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bundle_adds_its_certificates() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ca.pem");
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let cert = params.self_signed(&key).unwrap();
        std::fs::write(&path, cert.pem()).unwrap();
        let mut roots = RootCertStore::empty();
        add_ca_bundle(&mut roots, &path).unwrap();
        assert_eq!(roots.len(), 1);
        assert!(verifying_config(provider(), Arc::new(roots)).is_ok());
    }

    #[test]
    fn a_certificate_found_twice_is_one_root() {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let cert = params.self_signed(&key).unwrap().der().clone();
        let other_key = rcgen::KeyPair::generate().unwrap();
        let other = params.self_signed(&other_key).unwrap().der().clone();
        let roots = distinct_roots(vec![cert.clone(), other, cert]);
        assert_eq!(roots.len(), 2);
    }

    #[test]
    fn missing_empty_and_garbage_bundles_are_refused_with_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.pem");
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "").unwrap();
        let garbage = dir.path().join("garbage.pem");
        std::fs::write(
            &garbage,
            "-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydA==\n-----END CERTIFICATE-----\n",
        )
        .unwrap();
        let mut roots = RootCertStore::empty();
        assert!(matches!(
            add_ca_bundle(&mut roots, &missing),
            Err(CaBundleError::Unreadable { .. })
        ));
        assert_eq!(
            add_ca_bundle(&mut roots, &empty),
            Err(CaBundleError::Empty(empty.clone()))
        );
        let error = add_ca_bundle(&mut roots, &garbage).unwrap_err();
        assert!(error.to_string().contains("garbage.pem"), "{error}");
        assert!(roots.is_empty());
    }
}
