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
//!     .revocation(Arc::new(postern_trust::revocation::CrlChecker::standalone()?))
//!     .build()?;
//! # let _ = gateway; Ok(()) }
//! ```
//!
//! The lookups use tokio (sockets and timers). The ready constructors above run them on this
//! crate's own small runtime ([`runtime::OwnRuntime`]), so they work under any executor: a
//! tokio runtime without timers, or none. A source built with `new` runs on the caller's
//! runtime, which must then have I/O and timers enabled (the relay's does).
#![forbid(unsafe_code)]

pub mod bundles;
pub mod dane;
pub mod dnscert;
pub mod fetch;
pub mod keycache;
#[cfg(feature = "ldap")]
pub mod ldap;
pub mod netguard;
pub mod resolver;
pub mod revocation;
pub mod runtime;
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
    /// The lookups' own runtime could not be started.
    #[error("runtime: {0}")]
    Runtime(String),
}
