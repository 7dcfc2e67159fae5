//! Signer certificate validation: a path from the signer to a configured trust anchor
//! (RFC 5280 §6, the parts that matter for S/MIME signers), or a pinned partner certificate.

use std::time::SystemTime;

use der::{Encode, Tagged};
use postern_core::{ChainStatus, Policy};
use x509_cert::ext::pkix::BasicConstraints;
use x509_cert::Certificate;

use crate::certinfo;
use crate::crypto;
use crate::keys::PublicKey;
use crate::names::signature_from_oid;

/// Longest chain we follow; real S/MIME chains are 2-4 long.
const MAX_DEPTH: usize = 8;

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

/// Validates `leaf` as an S/MIME signer.
pub fn validate_signer(leaf: &Certificate, ctx: &TrustContext<'_>) -> ChainStatus {
    if let Some(p) = certinfo::validity_problem(leaf, ctx.now) {
        return ChainStatus::Untrusted(format!("signer certificate {p}"));
    }
    if let Some(ku) = certinfo::key_usage(leaf) {
        if !ku.digital_signature() && !ku.non_repudiation() {
            return ChainStatus::Untrusted("signer certificate key usage forbids signing".into());
        }
    }
    if !certinfo::allows_email_protection(leaf) {
        return ChainStatus::Untrusted(
            "signer certificate extended key usage lacks emailProtection".into(),
        );
    }
    let leaf_der = leaf.to_der().unwrap_or_default();
    if ctx
        .pinned
        .iter()
        .any(|p| p.to_der().is_ok_and(|d| d == leaf_der))
    {
        return ChainStatus::Trusted {
            anchor: "pinned partner certificate".into(),
        };
    }
    if ctx.anchors.is_empty() {
        if ctx.pinned.is_empty() {
            return ChainStatus::NotChecked;
        }
        return ChainStatus::Untrusted("signer is not the partner's configured certificate".into());
    }
    let mut current = leaf.clone();
    for _ in 0..MAX_DEPTH {
        // An anchor that is the certificate itself, or that issued it, ends the path.
        for anchor in ctx.anchors {
            if anchor
                .to_der()
                .is_ok_and(|d| d == current.to_der().unwrap_or_default())
            {
                return trusted(anchor, ctx.now);
            }
            if anchor.tbs_certificate().subject() == current.tbs_certificate().issuer()
                && signed_by(&current, anchor, ctx.policy).is_ok()
            {
                return trusted(anchor, ctx.now);
            }
        }
        let issuer = ctx.pool.iter().find(|c| {
            c.tbs_certificate().subject() == current.tbs_certificate().issuer()
                && c.tbs_certificate().subject() != current.tbs_certificate().subject()
        });
        let Some(issuer) = issuer else {
            return ChainStatus::Untrusted(format!(
                "no path to a trust anchor: issuer {} unknown",
                current.tbs_certificate().issuer()
            ));
        };
        if let Err(e) = signed_by(&current, issuer, ctx.policy) {
            return ChainStatus::Untrusted(e);
        }
        if !is_ca(issuer) {
            return ChainStatus::Untrusted(format!(
                "issuer {} is not a CA",
                certinfo::subject(issuer)
            ));
        }
        if let Some(p) = certinfo::validity_problem(issuer, ctx.now) {
            return ChainStatus::Untrusted(format!(
                "intermediate {} {p}",
                certinfo::subject(issuer)
            ));
        }
        current = issuer.clone();
    }
    ChainStatus::Untrusted("certificate chain too long".into())
}

fn trusted(anchor: &Certificate, now: SystemTime) -> ChainStatus {
    match certinfo::validity_problem(anchor, now) {
        Some(p) => ChainStatus::Untrusted(format!("trust anchor {p}")),
        None => ChainStatus::Trusted {
            anchor: certinfo::subject(anchor),
        },
    }
}

fn is_ca(cert: &Certificate) -> bool {
    let bc = matches!(
        cert.tbs_certificate().get_extension::<BasicConstraints>(),
        Ok(Some((_, BasicConstraints { ca: true, .. })))
    );
    let ku_ok = certinfo::key_usage(cert).is_none_or(|ku| ku.key_cert_sign());
    bc && ku_ok
}

/// Checks that `issuer`'s key signed `cert`.
pub fn signed_by(cert: &Certificate, issuer: &Certificate, policy: &Policy) -> Result<(), String> {
    let alg = cert.signature_algorithm();
    let sig_alg = signature_from_oid(&alg.oid, alg.parameters.as_ref(), None)
        .map_err(|e| format!("certificate signature: {e}"))?;
    policy
        .check_signature(sig_alg)
        .map_err(|e| format!("certificate signature: {e}"))?;
    let key = PublicKey::from_certificate(issuer).map_err(|e| e.to_string())?;
    if let PublicKey::Rsa { bits, .. } = &key {
        policy.check_rsa_bits(*bits).map_err(|e| e.to_string())?;
    }
    let tbs = cert
        .tbs_certificate()
        .to_der()
        .map_err(|e| format!("certificate: {e}"))?;
    let sig = cert
        .signature()
        .as_bytes()
        .ok_or_else(|| "certificate signature has unused bits".to_string())?;
    debug_assert_eq!(cert.signature().tag(), der::Tag::BitString);
    crypto::verify(&key, sig_alg, crate::asn1::pss_salt(alg), &tbs, sig).map_err(|e| {
        format!(
            "certificate {} not signed by {}: {e}",
            certinfo::subject(cert),
            certinfo::subject(issuer)
        )
    })
}
