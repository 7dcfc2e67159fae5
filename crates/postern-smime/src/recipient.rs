//! RecipientInfo: how the content-encryption key reaches each recipient.
//!
//! * RSA: KeyTransRecipientInfo with PKCS#1 v1.5 (RFC 3370 §4.2.1) or RSAES-OAEP (RFC 3560).
//! * EC P-256: KeyAgreeRecipientInfo, ephemeral-static ECDH with the X9.63 KDF and AES key wrap
//!   (RFC 5753 §3.1). Written here, not with the `cms` crate's builder, which wraps the key under
//!   an all-zero key-encryption key.

use aws_lc_rs::agreement;
use cms::content_info::CmsVersion;
use cms::enveloped_data::{
    KeyAgreeRecipientIdentifier, KeyAgreeRecipientInfo, KeyTransRecipientInfo,
    OriginatorIdentifierOrKey, OriginatorPublicKey, RecipientEncryptedKey, RecipientIdentifier,
    RecipientInfo,
};
use der::asn1::{BitString, OctetString};
use postern_core::{DigestAlgorithm, Error, Policy};
use spki::AlgorithmIdentifierOwned;
use x509_cert::Certificate;
use zeroize::Zeroizing;

use crate::asn1::{alg_absent, alg_null, alg_with, EccCmsSharedInfo, OaepParams};
use crate::certinfo;
use crate::crypto;
use crate::keys::{Identity, PublicKey, RsaPadding};
use crate::names::oid_name;
use crate::oids;

/// How to transport the content key to RSA recipients.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum KeyTransport {
    /// RSAES-PKCS1-v1_5: read by every S/MIME client, including older Outlook.
    #[default]
    RsaPkcs1v15,
    /// RSAES-OAEP with SHA-256 (RFC 8551 recommends it; Outlook 2016+, OpenSSL, Thunderbird).
    RsaOaepSha256,
}

fn octets(b: Vec<u8>, what: &'static str) -> Result<OctetString, Error> {
    OctetString::new(b).map_err(|e| Error::malformed(what, e))
}

/// Whether `cert`'s key and usage allow a content key to be sent to it (RSA: keyEncipherment
/// or no key usage; P-256: keyAgreement or none; emailProtection or no extended key usage),
/// whatever the date: a signing-only certificate of a single-use pair is not a recipient.
pub fn may_encrypt(cert: &Certificate) -> bool {
    let Ok(key) = PublicKey::from_certificate(cert) else {
        return false;
    };
    let ku = certinfo::key_usage(cert);
    let usage = match key {
        PublicKey::Rsa { .. } => ku.is_none_or(|k| k.key_encipherment()),
        PublicKey::P256(_) => ku.is_none_or(|k| k.key_agreement()),
        PublicKey::P384(_) | PublicKey::Ed25519(_) => false,
    };
    usage && certinfo::allows_email_protection(cert)
}

/// Checks the recipient certificate is usable now and returns its public key.
fn usable_key(
    cert: &Certificate,
    policy: &Policy,
    now: std::time::SystemTime,
) -> Result<PublicKey, Error> {
    let no_key = |reason: String| Error::NoUsableKey {
        recipient: certinfo::describe(cert),
        reason,
    };
    if let Some(p) = certinfo::validity_problem(cert, now) {
        return Err(no_key(format!("certificate {p}")));
    }
    let key = PublicKey::from_certificate(cert).map_err(|e| no_key(e.to_string()))?;
    let ku = certinfo::key_usage(cert);
    match &key {
        PublicKey::Rsa { bits, .. } => {
            policy
                .check_rsa_bits(*bits)
                .map_err(|e| no_key(e.to_string()))?;
            if ku.is_some_and(|k| !k.key_encipherment()) {
                return Err(no_key("key usage forbids key encipherment".into()));
            }
        }
        PublicKey::P256(_) => {
            if ku.is_some_and(|k| !k.key_agreement()) {
                return Err(no_key("key usage forbids key agreement".into()));
            }
        }
        PublicKey::P384(_) | PublicKey::Ed25519(_) => {
            return Err(no_key(format!("{key:?} keys cannot receive S/MIME here")))
        }
    }
    if !certinfo::allows_email_protection(cert) {
        return Err(no_key("extended key usage lacks emailProtection".into()));
    }
    Ok(key)
}

/// Builds the RecipientInfo that gives `cert`'s owner the content key `cek`.
pub fn build(
    cert: &Certificate,
    cek: &[u8],
    transport: KeyTransport,
    policy: &Policy,
    now: std::time::SystemTime,
) -> Result<RecipientInfo, Error> {
    match usable_key(cert, policy, now)? {
        PublicKey::Rsa { spki, .. } => {
            let (padding, alg) = match transport {
                KeyTransport::RsaPkcs1v15 => (RsaPadding::Pkcs1v15, alg_null(oids::RSA_ENCRYPTION)),
                KeyTransport::RsaOaepSha256 => (
                    RsaPadding::Oaep(DigestAlgorithm::Sha256),
                    alg_with(oids::RSAES_OAEP, &OaepParams::sha256()?)?,
                ),
            };
            let enc = crypto::rsa_encrypt(&spki, padding, cek)?;
            Ok(RecipientInfo::Ktri(KeyTransRecipientInfo {
                version: CmsVersion::V0,
                rid: RecipientIdentifier::IssuerAndSerialNumber(certinfo::issuer_and_serial(cert)),
                key_enc_alg: alg,
                enc_key: octets(enc, "encrypted key")?,
            }))
        }
        PublicKey::P256(point) => build_ecdh(cert, &point, cek),
        other => Err(Error::UnsupportedAlgorithm(format!("{other:?} recipient"))),
    }
}

fn wrap_alg_for(cek_len: usize) -> (const_oid::ObjectIdentifier, usize) {
    // Key-wrap strength matches the content key (RFC 5753 §8).
    if cek_len > 16 {
        (oids::AES256_WRAP, 32)
    } else {
        (oids::AES128_WRAP, 16)
    }
}

fn shared_info(
    wrap: &AlgorithmIdentifierOwned,
    ukm: Option<&OctetString>,
    kek_len: usize,
) -> Result<Vec<u8>, Error> {
    let info = EccCmsSharedInfo {
        key_info: wrap.clone(),
        entity_u_info: ukm.cloned(),
        supp_pub_info: octets(((kek_len * 8) as u32).to_be_bytes().to_vec(), "SharedInfo")?,
    };
    crypto::der(&info, "ECC-CMS-SharedInfo")
}

fn build_ecdh(cert: &Certificate, point: &[u8], cek: &[u8]) -> Result<RecipientInfo, Error> {
    let backend = |_| Error::Backend("ECDH".into());
    let ephemeral = agreement::PrivateKey::generate(&agreement::ECDH_P256).map_err(backend)?;
    let eph_pub = ephemeral.compute_public_key().map_err(backend)?;
    let (wrap_oid, kek_len) = wrap_alg_for(cek.len());
    let wrap = alg_absent(wrap_oid);
    let info = shared_info(&wrap, None, kek_len)?;
    let peer = agreement::UnparsedPublicKey::new(&agreement::ECDH_P256, point);
    let kek = agreement::agree(&ephemeral, peer, Error::Backend("ECDH".into()), |z| {
        crypto::x963_kdf(DigestAlgorithm::Sha256, z, &info, kek_len)
    })?;
    let wrapped = crypto::aes_wrap(&kek, cek)?;
    Ok(RecipientInfo::Kari(KeyAgreeRecipientInfo {
        version: CmsVersion::V3,
        originator: OriginatorIdentifierOrKey::OriginatorKey(OriginatorPublicKey {
            // RFC 5753 §3.1.1: parameters absent, the curve is the recipient's.
            algorithm: alg_absent(oids::EC_PUBLIC_KEY),
            public_key: BitString::from_bytes(eph_pub.as_ref())
                .map_err(|e| Error::malformed("originator key", e))?,
        }),
        ukm: None,
        key_enc_alg: alg_with(oids::ECDH_SHA256_KDF, &wrap)?,
        recipient_enc_keys: vec![RecipientEncryptedKey {
            rid: KeyAgreeRecipientIdentifier::IssuerAndSerialNumber(certinfo::issuer_and_serial(
                cert,
            )),
            enc_key: octets(wrapped, "encrypted key")?,
        }],
    }))
}

/// A short description of a RecipientInfo's target, for the report.
pub fn describe(ri: &RecipientInfo) -> String {
    let ias = |i: &cms::cert::IssuerAndSerialNumber| format!("{} #{}", i.issuer, i.serial_number);
    match ri {
        RecipientInfo::Ktri(k) => match &k.rid {
            RecipientIdentifier::IssuerAndSerialNumber(i) => ias(i),
            RecipientIdentifier::SubjectKeyIdentifier(s) => format!("skid:{}", hex(s.0.as_bytes())),
        },
        RecipientInfo::Kari(k) => k
            .recipient_enc_keys
            .iter()
            .map(|r| match &r.rid {
                KeyAgreeRecipientIdentifier::IssuerAndSerialNumber(i) => ias(i),
                KeyAgreeRecipientIdentifier::RKeyId(r) => {
                    format!("skid:{}", hex(r.subject_key_identifier.0.as_bytes()))
                }
            })
            .collect::<Vec<_>>()
            .join(", "),
        RecipientInfo::Kekri(_) => "kek".into(),
        RecipientInfo::Pwri(_) => "password".into(),
        RecipientInfo::Ori(_) => "other".into(),
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn rid_matches(rid: &RecipientIdentifier, cert: &Certificate) -> bool {
    match rid {
        RecipientIdentifier::IssuerAndSerialNumber(i) => certinfo::matches_issuer_serial(cert, i),
        RecipientIdentifier::SubjectKeyIdentifier(s) => {
            certinfo::subject_key_id(cert).is_some_and(|k| k == s.0.as_bytes())
        }
    }
}

fn kari_rid_matches(rid: &KeyAgreeRecipientIdentifier, cert: &Certificate) -> bool {
    match rid {
        KeyAgreeRecipientIdentifier::IssuerAndSerialNumber(i) => {
            certinfo::matches_issuer_serial(cert, i)
        }
        KeyAgreeRecipientIdentifier::RKeyId(r) => certinfo::subject_key_id(cert)
            .is_some_and(|k| k == r.subject_key_identifier.0.as_bytes()),
    }
}

/// The content key recovered from a RecipientInfo addressed to `me`.
pub struct Unwrapped {
    /// The content-encryption key.
    pub cek: Zeroizing<Vec<u8>>,
    /// Key management name for the report.
    pub key_management: &'static str,
}

/// Recovers the content key if `ri` is addressed to `me`; `Ok(None)` when it is not.
///
/// `cek_len` is the key length the content cipher needs. With PKCS#1 v1.5, a decryption failure
/// yields a random key of that length instead of an error (RFC 3218 §2.3.2), so a tampered key
/// and a tampered ciphertext fail identically and late: no Bleichenbacher/Marvin oracle.
pub fn unwrap(
    ri: &RecipientInfo,
    me: &Identity,
    cek_len: usize,
    policy: &Policy,
) -> Result<Option<Unwrapped>, Error> {
    match ri {
        RecipientInfo::Ktri(k) => {
            if !rid_matches(&k.rid, &me.certificate) {
                return Ok(None);
            }
            if let PublicKey::Rsa { bits, .. } = me.key.public_key() {
                policy.check_rsa_bits(*bits)?;
            }
            let ct = k.enc_key.as_bytes();
            if k.key_enc_alg.oid == oids::RSA_ENCRYPTION {
                let cek = match me.key.rsa_decrypt(RsaPadding::Pkcs1v15, ct) {
                    Ok(c) if c.len() == cek_len => c,
                    _ => crypto::random(cek_len)?,
                };
                Ok(Some(Unwrapped {
                    cek,
                    key_management: "rsa-pkcs1v15",
                }))
            } else if k.key_enc_alg.oid == oids::RSAES_OAEP {
                let d = OaepParams::from_any(k.key_enc_alg.parameters.as_ref())?.digest()?;
                let cek = me.key.rsa_decrypt(RsaPadding::Oaep(d), ct)?;
                Ok(Some(Unwrapped {
                    cek,
                    key_management: "rsaes-oaep",
                }))
            } else {
                Err(Error::UnsupportedAlgorithm(format!(
                    "key transport {}",
                    oid_name(&k.key_enc_alg.oid)
                )))
            }
        }
        RecipientInfo::Kari(k) => {
            let Some(rek) = k
                .recipient_enc_keys
                .iter()
                .find(|r| kari_rid_matches(&r.rid, &me.certificate))
            else {
                return Ok(None);
            };
            let kdf_digest = match k.key_enc_alg.oid {
                o if o == oids::ECDH_SHA256_KDF => DigestAlgorithm::Sha256,
                o if o == oids::ECDH_SHA384_KDF => DigestAlgorithm::Sha384,
                o if o == oids::ECDH_SHA512_KDF => DigestAlgorithm::Sha512,
                o if o == oids::ECDH_SHA224_KDF => DigestAlgorithm::Sha224,
                o if o == oids::ECDH_SHA1_KDF => DigestAlgorithm::Sha1,
                o => {
                    return Err(Error::UnsupportedAlgorithm(format!(
                        "key agreement {}",
                        oid_name(&o)
                    )))
                }
            };
            let wrap: AlgorithmIdentifierOwned = k
                .key_enc_alg
                .parameters
                .as_ref()
                .ok_or_else(|| Error::malformed("KeyAgreeRecipientInfo", "no key wrap algorithm"))?
                .decode_as()
                .map_err(|e| Error::malformed("key wrap algorithm", e))?;
            let kek_len = match wrap.oid {
                o if o == oids::AES128_WRAP => 16,
                o if o == oids::AES256_WRAP => 32,
                o => {
                    return Err(Error::UnsupportedAlgorithm(format!(
                        "key wrap {}",
                        oid_name(&o)
                    )))
                }
            };
            let OriginatorIdentifierOrKey::OriginatorKey(orig) = &k.originator else {
                return Err(Error::UnsupportedAlgorithm(
                    "static-static ECDH (originator identified by certificate)".into(),
                ));
            };
            let point = orig
                .public_key
                .as_bytes()
                .ok_or_else(|| Error::malformed("originator key", "unused bits"))?;
            let z = me.key.ecdh(point)?;
            let info = shared_info(&wrap, k.ukm.as_ref(), kek_len)?;
            let kek = crypto::x963_kdf(kdf_digest, &z, &info, kek_len)?;
            let cek = crypto::aes_unwrap(&kek, rek.enc_key.as_bytes())?;
            Ok(Some(Unwrapped {
                cek,
                key_management: "ecdh-p256",
            }))
        }
        RecipientInfo::Kekri(_) | RecipientInfo::Pwri(_) | RecipientInfo::Ori(_) => Ok(None),
    }
}
