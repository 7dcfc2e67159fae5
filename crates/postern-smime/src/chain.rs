//! Signer certificate validation: a path from the signer to a configured trust anchor
//! (RFC 5280 §6, the parts that matter for S/MIME signers), or a pinned partner certificate.

use std::time::SystemTime;

use der::Encode;
use postern_core::{ChainStatus, Policy};
use x509_cert::Certificate;

use crate::certinfo;
use crate::oids;
use crate::path::{self, PathOptions};

/// What the validator may use.
pub struct TrustContext<'a> {
    /// Configured trust anchors (CA certificates).
    pub anchors: &'a [Certificate],
    /// Pinned partner certificates: a signer that is one of these is trusted as is.
    pub pinned: &'a [Certificate],
    /// Other certificates (from the message) that may be intermediates.
    pub pool: &'a [Certificate],
    /// The algorithm policy (weak certificate signatures are not trusted).
    pub policy: &'a Policy,
    /// Validation time.
    pub now: SystemTime,
}

/// Validates `leaf` as an S/MIME signer. Returns the verdict and what a revocation check
/// needs (DER, signer first): the validated path, or — for a pinned or untrusted signer — the
/// signer and the certificates the message carried (candidate issuers).
pub fn validate_signer_path(
    leaf: &Certificate,
    ctx: &TrustContext<'_>,
) -> (ChainStatus, Vec<Vec<u8>>) {
    let der = |c: &Certificate| c.to_der().unwrap_or_default();
    let with_pool = || {
        std::iter::once(leaf)
            .chain(ctx.pool)
            .map(der)
            .collect::<Vec<_>>()
    };
    if let Some(p) = certinfo::validity_problem(leaf, ctx.now) {
        return (
            ChainStatus::Untrusted(format!("signer certificate {p}")),
            with_pool(),
        );
    }
    if let Some(ku) = certinfo::key_usage(leaf) {
        if !ku.digital_signature() && !ku.non_repudiation() {
            return (
                ChainStatus::Untrusted("signer certificate key usage forbids signing".into()),
                with_pool(),
            );
        }
    }
    if !certinfo::allows_email_protection(leaf) {
        return (
            ChainStatus::Untrusted(
                "signer certificate extended key usage lacks emailProtection".into(),
            ),
            with_pool(),
        );
    }
    let leaf_der = der(leaf);
    if ctx
        .pinned
        .iter()
        .any(|p| p.to_der().is_ok_and(|d| d == leaf_der))
    {
        let status = ChainStatus::Trusted {
            anchor: "pinned partner certificate".into(),
        };
        return (status, with_pool());
    }
    if ctx.anchors.is_empty() {
        let status = if ctx.pinned.is_empty() {
            ChainStatus::NotChecked
        } else {
            ChainStatus::Untrusted("signer is not the partner's configured certificate".into())
        };
        return (status, with_pool());
    }
    let opts = PathOptions {
        anchors: ctx.anchors,
        intermediates: ctx.pool,
        now: ctx.now,
        policy: ctx.policy,
        purpose: Some(oids::KP_EMAIL_PROTECTION),
        max_intermediates: path::DEFAULT_MAX_INTERMEDIATES,
    };
    match path::validate(leaf, &opts) {
        Ok(valid) => (
            ChainStatus::Trusted {
                anchor: certinfo::subject(valid.anchor()),
            },
            valid.certs.iter().map(|c| der(c)).collect(),
        ),
        Err(e) => (ChainStatus::Untrusted(e.to_string()), with_pool()),
    }
}
