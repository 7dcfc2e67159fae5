//! # postern-trust
//!
//! Where partner keys are found and whether they still hold, behind the plugs of postern-core:
//! every [`postern_core::KeyStore`] (Web Key Directory, DANE SMIMEA/OPENPGPKEY, DNS CERT, LDAP)
//! and the [`postern_core::RevocationChecker`] (CRL, OCSP, the issuers a certificate names in
//! AIA), with one HTTPS fetch, one address filter for names that came from outside, one cache
//! of answers, and trust bundles. An embedder registers them on the gateway without taking
//! the relay:
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! use postern_router::{Gateway, KeySource};
//! let gateway = Gateway::builder()
//!     .key_store(KeySource::Wkd, Arc::new(postern_trust::wkd::Wkd::web_pki()?))
//!     .key_store(KeySource::DnsCert, Arc::new(postern_trust::dnscert::DnsCert::system()?))
//!     .revocation(Arc::new(postern_trust::revocation::CrlChecker::new()))
//!     .build()?;
//! # let _ = gateway; Ok(()) }
//! ```
//!
//! The lookups use tokio (sockets and timers): call them inside a runtime built with
//! `enable_all()`.
#![forbid(unsafe_code)]

pub mod bundles;
pub mod dane;
pub mod dnscert;
pub mod fetch;
pub mod keycache;
pub mod ldap;
pub mod netguard;
pub mod resolver;
pub mod revocation;
pub mod tls;
pub mod wkd;

/// Why a source could not be set up.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TrustError {
    /// A DNS resolver could not be configured.
    #[error("resolver: {0}")]
    Resolver(String),
    /// The TLS client could not be built.
    #[error("tls: {0}")]
    Tls(String),
}
