//! Revocation checking as a pluggable service: the backends compute without I/O, so whether a
//! certificate is still good (CRL, OCSP) is asked of a [`RevocationChecker`] the router holds,
//! before sealing to a partner's certificate and after verifying a partner's signature.

use std::fmt;

use async_trait::async_trait;

use crate::Standard;

/// How much a partner's revocation status matters (per partner, in the directory).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RevocationPolicy {
    /// Every certificate must be shown not revoked; an unreachable source holds the message
    /// (451, retried) and a certificate that names no source cannot be used.
    Required,
    /// Checked where the certificate names a source; a revoked answer is always final, an
    /// unreachable source is logged and the certificate used.
    #[default]
    BestEffort,
    /// Not checked.
    Off,
}

impl RevocationPolicy {
    /// The directory's spelling.
    pub fn name(self) -> &'static str {
        match self {
            RevocationPolicy::Required => "required",
            RevocationPolicy::BestEffort => "best-effort",
            RevocationPolicy::Off => "off",
        }
    }

    /// Parses the directory's spelling.
    pub fn from_name(s: &str) -> Option<Self> {
        match s {
            "required" => Some(RevocationPolicy::Required),
            "best-effort" => Some(RevocationPolicy::BestEffort),
            "off" => Some(RevocationPolicy::Off),
            _ => None,
        }
    }
}

/// What a checker found out about one certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Revocation {
    /// Shown not revoked by an authentic, current answer.
    Good,
    /// Revoked by its issuer; the text says when and why.
    Revoked(String),
    /// The certificate names a source, but no authentic current answer could be had (source
    /// down, stale or unverifiable list); the text says what failed.
    Unknown(String),
    /// The certificate names no revocation source (or its standard has none we check).
    NoSource,
}

/// Answers whether certificates are revoked. Implementations fetch and cache (CRLs until their
/// next update); they must never answer [`Revocation::Good`] without an authentic answer.
#[async_trait]
pub trait RevocationChecker: Send + Sync + fmt::Debug {
    /// The status of every end-entity certificate in `certificates` (one directory entry: a
    /// certificate or a bundle with its chain), one answer per certificate; `issuers` are
    /// candidate issuer certificates (trust anchors, intermediates from the bundle or the
    /// message).
    async fn check(
        &self,
        standard: Standard,
        certificates: &[u8],
        issuers: &[Vec<u8>],
    ) -> Vec<(String, Revocation)>;

    /// Issuer certificates for `certificate` from where it says they are published (S/MIME:
    /// authority information access caIssuers), for a path the sender left incomplete. They
    /// are path material, not trust: a path must still end at a configured anchor.
    async fn issuers(&self, standard: Standard, certificate: &[u8]) -> Vec<Vec<u8>> {
        let _ = (standard, certificate);
        Vec::new()
    }
}
