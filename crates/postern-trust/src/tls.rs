//! The verified TLS client of the lookups (WKD, trust bundles): rustls on aws-lc-rs, the web
//! PKI roots and any roots the administrator adds.

use std::sync::Arc;

use tokio_rustls::rustls::crypto;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::CertificateDer;
use tokio_rustls::rustls::{ClientConfig, RootCertStore};
use tokio_rustls::TlsConnector;

use crate::TrustError;

/// A client that verifies the server's chain (to the web PKI roots or one of `extra_roots`)
/// and name.
pub fn verified_connector(
    extra_roots: &[CertificateDer<'static>],
) -> Result<TlsConnector, TrustError> {
    let provider = Arc::new(crypto::aws_lc_rs::default_provider());
    let mut roots = RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    for c in extra_roots {
        roots
            .add(c.clone())
            .map_err(|e| TrustError::Tls(format!("an added root: {e}")))?;
    }
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| TrustError::Tls(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(TlsConnector::from(Arc::new(config)))
}

/// The certificates in a PEM file's bytes (a private CA for the lookups' servers).
pub fn roots_from_pem(pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, TrustError> {
    CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TrustError::Tls(format!("certificates: {e}")))
}
