//! OpenPGP certificates and secret keys: parsing, and choosing the keys valid now.

use std::time::SystemTime;

use openpgp::cert::prelude::*;
use openpgp::packet::key;
use openpgp::parse::Parse;
use openpgp::policy::Policy as PgpPolicy;
use openpgp::Cert;
use postern_core::{Error, Policy};
use sequoia_openpgp as openpgp;

/// Parses every certificate in `bytes` (armored or binary; a keyring is fine).
pub fn parse_certs(bytes: &[u8]) -> Result<Vec<Cert>, Error> {
    let certs: Vec<Cert> = CertParser::from_bytes(bytes)
        .map_err(|e| Error::malformed("OpenPGP certificate", e))?
        .take(MAX_CERTS + 1)
        .collect::<Result<_, _>>()
        .map_err(|e| Error::malformed("OpenPGP certificate", e))?;
    if certs.len() > MAX_CERTS {
        return Err(Error::malformed(
            "OpenPGP certificate file",
            format!("more than {MAX_CERTS} certificates"),
        ));
    }
    if certs.is_empty() {
        return Err(Error::malformed(
            "OpenPGP certificate",
            "no certificate found",
        ));
    }
    Ok(certs)
}

/// The most certificates one file may hold.
pub const MAX_CERTS: usize = 2000;

/// A printable name for a certificate: its fingerprint and primary e-mail, if any.
pub fn describe(cert: &Cert) -> String {
    match email(cert) {
        Some(e) => format!("{} <{e}>", cert.fingerprint()),
        None => cert.fingerprint().to_string(),
    }
}

/// The user IDs that still bind: a user ID its owner revoked (a self-revocation no older than
/// its newest self-signature) binds nothing, so its address is no signer address.
pub fn bound_userids(cert: &Cert) -> impl Iterator<Item = &openpgp::packet::UserID> {
    cert.userids()
        .filter(|u| {
            let newest = |sigs: &mut dyn Iterator<Item = &openpgp::packet::Signature>| {
                sigs.filter_map(|s| s.signature_creation_time()).max()
            };
            let revoked = newest(&mut u.self_revocations());
            let certified = newest(&mut u.self_signatures());
            match (revoked, certified) {
                (Some(r), Some(c)) => r < c,
                (Some(_), None) => false,
                (None, _) => true,
            }
        })
        .map(|u| u.userid())
}

/// The first e-mail address among the certificate's bound user IDs.
pub fn email(cert: &Cert) -> Option<String> {
    bound_userids(cert).find_map(|u| u.email().ok().flatten().map(str::to_string))
}

/// Every e-mail address in the certificate's bound user IDs, lower-case.
pub fn emails(cert: &Cert) -> Vec<String> {
    let mut out: Vec<String> = bound_userids(cert)
        .filter_map(|u| u.email().ok().flatten().map(str::to_lowercase))
        .collect();
    out.dedup();
    out
}

/// Checks the policy's minimum RSA size against a key.
pub fn check_key_strength<P: key::KeyParts, R: key::KeyRole>(
    key: &openpgp::packet::Key<P, R>,
    policy: &Policy,
) -> Result<(), Error> {
    if let openpgp::crypto::mpi::PublicKey::RSA { n, .. } = key.mpis() {
        policy.check_rsa_bits(n.bits())?;
    }
    Ok(())
}

/// Why a certificate has no key we may encrypt to right now (for the error message).
fn why_unusable(cert: &Cert, p: &dyn PgpPolicy, now: SystemTime) -> String {
    match cert.with_policy(p, now) {
        Err(e) => format!("certificate not valid under the standard policy: {e}"),
        Ok(vc) => {
            if let openpgp::types::RevocationStatus::Revoked(_) = vc.revocation_status() {
                return "certificate revoked".into();
            }
            if let Err(e) = vc.alive() {
                return format!("certificate expired or not yet valid: {e}");
            }
            let any = vc.keys().for_transport_encryption().count()
                + vc.keys().for_storage_encryption().count();
            if any == 0 {
                "no encryption-capable key".into()
            } else {
                "every encryption key is expired, revoked or of an unsupported algorithm".into()
            }
        }
    }
}

/// The encryption keys of `cert` valid at `now` under sequoia's standard policy. Never empty:
/// a certificate without one is an error naming it, never a silent skip.
pub fn encryption_keys<'a>(
    cert: &'a Cert,
    p: &'a dyn PgpPolicy,
    policy: &Policy,
    now: SystemTime,
) -> Result<Vec<ValidErasedKeyAmalgamation<'a, key::PublicParts>>, Error> {
    let no_key = |reason: String| Error::NoUsableKey {
        recipient: describe(cert),
        reason,
    };
    let vc = cert
        .with_policy(p, now)
        .map_err(|_| no_key(why_unusable(cert, p, now)))?;
    if let openpgp::types::RevocationStatus::Revoked(_) = vc.revocation_status() {
        return Err(no_key("certificate revoked".into()));
    }
    vc.alive()
        .map_err(|e| no_key(format!("certificate expired or not yet valid: {e}")))?;
    let keys: Vec<_> = vc
        .keys()
        .supported()
        .alive()
        .revoked(false)
        .for_transport_encryption()
        .for_storage_encryption()
        .collect();
    if keys.is_empty() {
        return Err(no_key(why_unusable(cert, p, now)));
    }
    for k in &keys {
        check_key_strength(k.key(), policy).map_err(|e| no_key(e.to_string()))?;
    }
    Ok(keys)
}

/// Our secret-key certificates, parsed; every one must carry unencrypted secret key material.
pub fn parse_secret_certs(bytes: &[u8]) -> Result<Vec<Cert>, Error> {
    let certs = parse_certs(bytes)?;
    for c in &certs {
        if !c.is_tsk() {
            return Err(Error::InvalidRequest(format!(
                "{} has no secret key material",
                c.fingerprint()
            )));
        }
    }
    Ok(certs)
}

/// The signing key pair of a secret-key certificate, valid at `now`.
pub fn signing_keypair(
    cert: &Cert,
    p: &dyn PgpPolicy,
    policy: &Policy,
    now: SystemTime,
) -> Result<openpgp::crypto::KeyPair, Error> {
    let no_key = |reason: &str| Error::NoUsableKey {
        recipient: describe(cert),
        reason: reason.to_string(),
    };
    let vc = cert
        .with_policy(p, now)
        .map_err(|e| no_key(&format!("our signing certificate is not valid: {e}")))?;
    let ka = vc
        .keys()
        .supported()
        .alive()
        .revoked(false)
        .for_signing()
        .secret()
        .next()
        .ok_or_else(|| no_key("no valid signing key with secret material"))?;
    check_key_strength(ka.key(), policy)?;
    if !ka.key().has_unencrypted_secret() {
        return Err(no_key(
            "the signing key is passphrase-protected; gateway keys must be stored unlocked",
        ));
    }
    ka.key()
        .clone()
        .into_keypair()
        .map_err(|e| Error::Backend(format!("signing key: {e}")))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests: a panic is a failure report
mod bound_userid_tests {
    use super::*;
    use openpgp::cert::prelude::*;
    use openpgp::packet::signature::SignatureBuilder;
    use openpgp::types::{ReasonForRevocation, SignatureType};

    #[test]
    fn a_revoked_user_id_binds_nothing() {
        let (cert, _) = CertBuilder::new()
            .add_userid("Eve <eve@partner.example>")
            .add_userid("Manager <manager@partner.example>")
            .add_signing_subkey()
            .generate()
            .unwrap();
        assert_eq!(emails(&cert).len(), 2);
        let mut signer = cert
            .primary_key()
            .key()
            .clone()
            .parts_into_secret()
            .unwrap()
            .into_keypair()
            .unwrap();
        let uid = cert
            .userids()
            .find(|u| u.userid().value().starts_with(b"Manager"))
            .unwrap()
            .userid()
            .clone();
        // A second later than the binding, as a real revocation is.
        let when = std::time::SystemTime::now() + std::time::Duration::from_secs(1);
        let rev = SignatureBuilder::new(SignatureType::CertificationRevocation)
            .set_signature_creation_time(when)
            .unwrap()
            .set_reason_for_revocation(ReasonForRevocation::UIDRetired, b"left")
            .unwrap()
            .sign_userid_binding(&mut signer, cert.primary_key().key(), &uid)
            .unwrap();
        let (cert, _) = cert
            .insert_packets(vec![openpgp::Packet::from(rev)])
            .unwrap();
        assert_eq!(emails(&cert), vec!["eve@partner.example".to_string()]);
        assert_eq!(email(&cert).as_deref(), Some("eve@partner.example"));
    }
}
