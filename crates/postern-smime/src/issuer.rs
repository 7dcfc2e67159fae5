//! Whether an issuer signed something: a certificate (path building, CRL and OCSP responder
//! checks) or a CRL's or OCSP response's signed part, under the algorithm policy.

use der::asn1::BitString;
use der::Encode;
use postern_core::Policy;
use spki::AlgorithmIdentifierOwned;
use x509_cert::Certificate;

use crate::asn1::signature_from_oid;
use crate::certinfo;
use crate::crypto;
use crate::keys::PublicKey;

/// Checks that `issuer`'s key signed `cert`.
pub fn signed_by(cert: &Certificate, issuer: &Certificate, policy: &Policy) -> Result<(), String> {
    let tbs = cert
        .tbs_certificate()
        .to_der()
        .map_err(|e| format!("certificate: {e}"))?;
    let what = format!("certificate {}", certinfo::subject(cert));
    issuer_signed(
        &what,
        cert.signature_algorithm(),
        &tbs,
        cert.signature(),
        issuer,
        policy,
    )
}

/// Checks a signature an issuer made over `tbs` (a certificate's or a CRL's signed part).
pub fn issuer_signed(
    what: &str,
    alg: &AlgorithmIdentifierOwned,
    tbs: &[u8],
    signature: &BitString,
    issuer: &Certificate,
    policy: &Policy,
) -> Result<(), String> {
    let sig_alg = signature_from_oid(&alg.oid, alg.parameters.as_ref(), None)
        .map_err(|e| format!("{what}: signature: {e}"))?;
    policy
        .check_signature(sig_alg)
        .map_err(|e| format!("{what}: signature: {e}"))?;
    let key = PublicKey::from_certificate(issuer).map_err(|e| e.to_string())?;
    if let PublicKey::Rsa { bits, .. } = &key {
        policy.check_rsa_bits(*bits).map_err(|e| e.to_string())?;
    }
    let sig = signature
        .as_bytes()
        .ok_or_else(|| format!("{what}: signature has unused bits"))?;
    crypto::verify(&key, sig_alg, crate::asn1::pss_salt(alg), tbs, sig)
        .map_err(|e| format!("{what} not signed by {}: {e}", certinfo::subject(issuer)))
}
