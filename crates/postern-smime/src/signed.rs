//! SignedData (RFC 5652 §5): signing with signed attributes (RFC 8551 §2.5), and verification
//! over the exact content bytes.

use std::time::SystemTime;

use cms::cert::CertificateChoices;
use cms::content_info::{CmsVersion, ContentInfo};
use cms::signed_data::{
    CertificateSet, EncapsulatedContentInfo, SignedData, SignerIdentifier, SignerInfo, SignerInfos,
};
use der::asn1::{OctetString, SetOfVec};
use der::{Any, Decode, Encode};
use postern_core::{
    DigestAlgorithm, Error, Policy, SignatureAlgorithm, SignatureReport, SignatureStatus,
};
use x509_cert::attr::Attribute;
use x509_cert::time::Time;
use x509_cert::Certificate;

use crate::asn1::signature_from_oid;
use crate::asn1::{alg_absent, alg_null, alg_with, pss_salt, PssParams};
use crate::certinfo;
use crate::chain::{self, TrustContext};
use crate::crypto;
use crate::enveloped::decode_content;
use crate::keys::{Identity, PublicKey};
use crate::names::{digest_from_oid, digest_oid};
use crate::oids;

/// Which signature algorithm to use with an RSA key (EC keys always use ECDSA with SHA-256).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RsaSignatureScheme {
    /// RSASSA-PKCS1-v1_5 with SHA-256: what every client verifies.
    #[default]
    Pkcs1Sha256,
    /// RSASSA-PSS with SHA-256, salt 32 (RFC 4056).
    PssSha256,
}

fn attribute(oid: const_oid::ObjectIdentifier, value: Any) -> Result<Attribute, Error> {
    let mut values = SetOfVec::new();
    values
        .insert(value)
        .map_err(|e| Error::malformed("attribute", e))?;
    Ok(Attribute { oid, values })
}

fn any_of<T: Encode>(v: &T, what: &'static str) -> Result<Any, Error> {
    Any::from_der(&crypto::der(v, what)?).map_err(|e| Error::malformed(what, e))
}

/// Signs `content`. `detached`: the content is left out (for `multipart/signed`).
pub fn sign(
    content: &[u8],
    me: &Identity,
    scheme: RsaSignatureScheme,
    (detached, domain_signature): (bool, bool),
    policy: &Policy,
    now: SystemTime,
) -> Result<Vec<u8>, Error> {
    if let Some(p) = certinfo::validity_problem(&me.certificate, now) {
        return Err(Error::NoUsableKey {
            recipient: certinfo::describe(&me.certificate),
            reason: format!("our signing certificate {p}"),
        });
    }
    let digest = DigestAlgorithm::Sha256;
    let (sig_alg, sig_alg_id) = match me.key.public_key() {
        PublicKey::Rsa { bits, .. } => {
            policy.check_rsa_bits(*bits)?;
            match scheme {
                // rsaEncryption with a separate digest is what OpenSSL writes (RFC 3370 §3.2).
                RsaSignatureScheme::Pkcs1Sha256 => (
                    SignatureAlgorithm::RsaPkcs1(digest),
                    alg_null(oids::RSA_ENCRYPTION),
                ),
                RsaSignatureScheme::PssSha256 => (
                    SignatureAlgorithm::RsaPss(digest),
                    alg_with(oids::RSASSA_PSS, &PssParams::for_digest(digest, 32)?)?,
                ),
            }
        }
        PublicKey::P256(_) => (
            SignatureAlgorithm::Ecdsa(digest),
            alg_absent(oids::ECDSA_WITH_SHA256),
        ),
        other => {
            return Err(Error::UnsupportedAlgorithm(format!(
                "signing with a {other:?} key"
            )))
        }
    };
    policy.check_signature(sig_alg)?;
    let md = crypto::hash(digest, content)?;
    let mut attrs = SetOfVec::new();
    let time = Time::try_from(now).map_err(|e| Error::malformed("signing time", e))?;
    for a in [
        attribute(oids::CONTENT_TYPE, any_of(&oids::ID_DATA, "contentType")?)?,
        attribute(oids::SIGNING_TIME, any_of(&time, "signingTime")?)?,
        attribute(
            oids::MESSAGE_DIGEST,
            any_of(
                &OctetString::new(md).map_err(|e| Error::malformed("digest", e))?,
                "messageDigest",
            )?,
        )?,
    ] {
        attrs
            .insert(a)
            .map_err(|e| Error::malformed("signed attributes", e))?;
    }
    if domain_signature {
        // RFC 3183 §3.1.1: SignatureType ::= SEQUENCE OF OBJECT IDENTIFIER, here domainSig.
        let types = vec![oids::STI_DOMAIN_SIG];
        attrs
            .insert(attribute(
                oids::SIGNATURE_TYPE,
                any_of(&types, "signatureType")?,
            )?)
            .map_err(|e| Error::malformed("signed attributes", e))?;
    }
    // RFC 5652 §5.4: the signature covers the DER of the attributes with an explicit SET tag.
    let to_sign = crypto::der(&attrs, "signed attributes")?;
    let signature = me.key.sign(sig_alg, &to_sign)?;
    let signer = SignerInfo {
        version: CmsVersion::V1,
        sid: SignerIdentifier::IssuerAndSerialNumber(certinfo::issuer_and_serial(&me.certificate)),
        digest_alg: alg_absent(digest_oid(digest)),
        signed_attrs: Some(attrs),
        signature_algorithm: sig_alg_id,
        signature: OctetString::new(signature).map_err(|e| Error::malformed("signature", e))?,
        unsigned_attrs: None,
    };
    let mut certs = vec![CertificateChoices::Certificate(me.certificate.clone())];
    certs.extend(
        me.chain
            .iter()
            .cloned()
            .map(CertificateChoices::Certificate),
    );
    let mut digests = SetOfVec::new();
    digests
        .insert(alg_absent(digest_oid(digest)))
        .map_err(|e| Error::malformed("digest algorithms", e))?;
    let sd = SignedData {
        version: CmsVersion::V1,
        digest_algorithms: digests,
        encap_content_info: EncapsulatedContentInfo {
            econtent_type: oids::ID_DATA,
            econtent: if detached {
                None
            } else {
                Some(any_of(
                    &OctetString::new(content).map_err(|e| Error::malformed("content", e))?,
                    "content",
                )?)
            },
        },
        certificates: Some(
            CertificateSet::try_from(certs).map_err(|e| Error::malformed("certificates", e))?,
        ),
        crls: None,
        signer_infos: SignerInfos::try_from(vec![signer])
            .map_err(|e| Error::malformed("signer infos", e))?,
    };
    crypto::content_info(oids::ID_SIGNED_DATA, &sd)
}

/// SignedData as it is decoded here: the `cms` crate's fields, except that the encapsulated
/// content is read as an OCTET STRING directly. Through `der::Any` a BER constructed (chunked)
/// OCTET STRING, as gpgsm and `openssl -stream` write it, loses its constructed bit and would
/// yield the chunk headers as content.
#[derive(Clone, Debug, der::Sequence)]
struct SignedDataWire {
    version: CmsVersion,
    digest_algorithms: cms::signed_data::DigestAlgorithmIdentifiers,
    encap_content_info: EncapsulatedOctets,
    #[asn1(context_specific = "0", tag_mode = "IMPLICIT", optional = "true")]
    certificates: Option<CertificateSet>,
    #[asn1(context_specific = "1", tag_mode = "IMPLICIT", optional = "true")]
    crls: Option<cms::revocation::RevocationInfoChoices>,
    signer_infos: SignerInfos,
}

#[derive(Clone, Debug, der::Sequence)]
struct EncapsulatedOctets {
    econtent_type: const_oid::ObjectIdentifier,
    #[asn1(context_specific = "0", tag_mode = "EXPLICIT", optional = "true")]
    econtent: Option<OctetString>,
}

/// A parsed SignedData with what verification needs beside it.
pub struct Signed {
    /// The structure (encapsulated content taken out).
    pub sd: SignedData,
    /// The encapsulated content, if any.
    pub content: Option<Vec<u8>>,
    /// Per SignerInfo, its signed attributes as received (the bytes its signature covers).
    pub raw_attrs: Vec<Option<Vec<u8>>>,
}

/// Parses the SignedData in a ContentInfo; returns it with the encapsulated content (if any)
/// taken out, and each signer's signed attributes as received.
pub fn signed_data(ci: &ContentInfo) -> Result<Signed, Error> {
    if ci.content_type != oids::ID_SIGNED_DATA {
        return Err(Error::NotRecognised {
            standard: "S/MIME".into(),
            detail: format!("content type {} is not signed-data", ci.content_type),
        });
    }
    let wire: SignedDataWire = decode_content(&ci.content, "SignedData")?;
    let content = wire
        .encap_content_info
        .econtent
        .map(|o| o.as_bytes().to_vec());
    let sd = SignedData {
        version: wire.version,
        digest_algorithms: wire.digest_algorithms,
        encap_content_info: EncapsulatedContentInfo {
            econtent_type: wire.encap_content_info.econtent_type,
            econtent: None,
        },
        certificates: wire.certificates,
        crls: wire.crls,
        signer_infos: wire.signer_infos,
    };
    let raw_attrs = ci
        .content
        .to_der()
        .map(|d| crate::ber::signed_attributes_as_received(&d))
        .unwrap_or_default();
    Ok(Signed {
        sd,
        content,
        raw_attrs,
    })
}

/// Inputs for verification beyond the SignedData.
pub struct VerifyContext<'a> {
    /// Trust anchors, pinned partner certificates, policy, time.
    pub anchors: &'a [Certificate],
    /// Pinned partner certificates (also used to find signers whose certificate is not included).
    pub pinned: &'a [Certificate],
    /// Intermediate certificates from outside the message (path material only).
    pub intermediates: &'a [Certificate],
    /// The policy.
    pub policy: &'a Policy,
    /// Validation time.
    pub now: SystemTime,
}

/// Verifies every SignerInfo of `sd` over `content` (the encapsulated or detached content).
/// One report per signer; never an error for a bad signature. A SignedData with no SignerInfo
/// (RFC 5652 allows it; RFC 3183 gateways wrap content in one under a domain signature) signs
/// nothing: no report, so the content counts as unsigned (`absent`), never as a bad signature
/// and never as a good one.
pub fn verify(signed: &Signed, content: &[u8], ctx: &VerifyContext<'_>) -> Vec<SignatureReport> {
    let sd = &signed.sd;
    let included: Vec<Certificate> = sd
        .certificates
        .as_ref()
        .map(|set| {
            set.0
                .iter()
                .filter_map(|c| match c {
                    CertificateChoices::Certificate(c) => Some(c.clone()),
                    CertificateChoices::Other(_) => None,
                })
                .collect()
        })
        .unwrap_or_default();
    let mut candidates = included.clone();
    candidates.extend(ctx.pinned.iter().cloned());
    let mut pool = included;
    pool.extend(ctx.intermediates.iter().cloned());
    let trust = TrustContext {
        anchors: ctx.anchors,
        pinned: ctx.pinned,
        pool: &pool,
        policy: ctx.policy,
        now: ctx.now,
    };
    if sd.signer_infos.0.is_empty() {
        return Vec::new();
    }
    sd.signer_infos
        .0
        .iter()
        .enumerate()
        .map(|(i, si)| {
            let raw = signed.raw_attrs.get(i).and_then(Option::as_deref);
            verify_one(si, raw, sd, content, &candidates, &trust)
        })
        .collect()
}

fn find_signer<'c>(sid: &SignerIdentifier, certs: &'c [Certificate]) -> Option<&'c Certificate> {
    certs.iter().find(|c| match sid {
        SignerIdentifier::IssuerAndSerialNumber(i) => certinfo::matches_issuer_serial(c, i),
        SignerIdentifier::SubjectKeyIdentifier(s) => {
            certinfo::subject_key_id(c).is_some_and(|k| k == s.0.as_bytes())
        }
    })
}

fn verify_one(
    si: &SignerInfo,
    raw_attrs: Option<&[u8]>,
    sd: &SignedData,
    content: &[u8],
    candidates: &[Certificate],
    trust: &TrustContext<'_>,
) -> SignatureReport {
    let mut report = SignatureReport::new(SignatureStatus::Invalid("not checked".into()));
    let Some(cert) = find_signer(&si.sid, candidates) else {
        report.status = SignatureStatus::SignerUnknown(
            "signer certificate not in the message nor configured for the partner".into(),
        );
        return report;
    };
    report.signer = certinfo::email(cert);
    report.signer_addresses = certinfo::emails(cert);
    report.signer_domains = certinfo::domain_names(cert);
    report.signer_subject = Some(certinfo::subject(cert));
    report.fingerprint = Some(certinfo::fingerprint(cert));
    report.signing_time = signing_time(si);
    report.signer_chain = vec![cert.to_der().unwrap_or_default()];
    match check_signature(si, raw_attrs, sd, content, cert, trust.policy) {
        Ok(alg) => {
            report.algorithm = Some(alg);
            // A signature that breaks RFC 3183's rules for its type attribute proves nothing
            // of what it claims to be: invalid, the rule named.
            match signature_types(si.signed_attrs.as_ref()) {
                Ok(types) => {
                    report.signature_types = types;
                    report.status = SignatureStatus::Valid;
                    (report.chain, report.signer_chain) = chain::validate_signer_path(cert, trust);
                }
                Err(rule) => report.status = SignatureStatus::Invalid(rule),
            }
        }
        Err((alg, status)) => {
            report.algorithm = alg;
            report.status = status;
        }
    }
    report
}

/// The signature types a SignerInfo's `id-aa-signatureType` attribute names (RFC 3183
/// §3.1.1), empty without one; an error names the rule broken: more than one such attribute,
/// not one value, a value that is not a SEQUENCE OF OBJECT IDENTIFIER, an unknown `id-sti`
/// type, or `addAttribSig` together with another type.
fn signature_types(
    attrs: Option<&SetOfVec<Attribute>>,
) -> Result<Vec<postern_core::SignatureType>, String> {
    use postern_core::SignatureType as T;
    let Some(attrs) = attrs else {
        return Ok(Vec::new());
    };
    let found: Vec<_> = attrs
        .iter()
        .filter(|a| a.oid == oids::SIGNATURE_TYPE)
        .collect();
    let attr = match found.as_slice() {
        [] => return Ok(Vec::new()),
        [one] => one,
        _ => return Err("RFC 3183: more than one signatureType attribute".into()),
    };
    let [value] = attr.values.as_slice() else {
        return Err("RFC 3183: a signatureType attribute needs exactly one value".into());
    };
    let oids_named: Vec<const_oid::ObjectIdentifier> = value
        .decode_as()
        .map_err(|_| "RFC 3183: a signatureType value is not a SEQUENCE OF OBJECT IDENTIFIER")?;
    let mut types = Vec::new();
    for oid in oids_named {
        let t = match oid {
            o if o == oids::STI_ORIGINATOR_SIG => T::Originator,
            o if o == oids::STI_DOMAIN_SIG => T::Domain,
            o if o == oids::STI_ADD_ATTRIB_SIG => T::AdditionalAttributes,
            o if o == oids::STI_REVIEW_SIG => T::Review,
            other => return Err(format!("RFC 3183: unknown signature type {other}")),
        };
        if !types.contains(&t) {
            types.push(t);
        }
    }
    if types.is_empty() {
        return Err("RFC 3183: a signatureType attribute names no type".into());
    }
    if types.contains(&T::AdditionalAttributes) && types.len() > 1 {
        return Err("RFC 3183: addAttribSig with another signature type".into());
    }
    Ok(types)
}

type Failure = (Option<SignatureAlgorithm>, SignatureStatus);

fn check_signature(
    si: &SignerInfo,
    raw_attrs: Option<&[u8]>,
    sd: &SignedData,
    content: &[u8],
    cert: &Certificate,
    policy: &Policy,
) -> Result<SignatureAlgorithm, Failure> {
    let invalid = |alg, why: String| (alg, SignatureStatus::Invalid(why));
    let refused = |alg, why: String| (alg, SignatureStatus::Refused(why));
    let digest = digest_from_oid(&si.digest_alg.oid).map_err(|e| refused(None, e.to_string()))?;
    let alg = signature_from_oid(
        &si.signature_algorithm.oid,
        si.signature_algorithm.parameters.as_ref(),
        Some(digest),
    )
    .map_err(|e| refused(None, e.to_string()))?;
    // What the policy says is kept until the signature has been checked: a forgery made with
    // a refused algorithm (SHA-1, a short key) is invalid; only a genuine one is "refused".
    let mut refusal = policy
        .check_digest(digest)
        .and_then(|_| policy.check_signature(alg))
        .err()
        .map(|e| e.to_string());
    // A key we cannot read cannot be checked: refused, by the policy's reason when it has one.
    let key = PublicKey::from_certificate(cert)
        .map_err(|e| refused(Some(alg), refusal.clone().unwrap_or_else(|| e.to_string())))?;
    if let PublicKey::Rsa { bits, .. } = &key {
        if refusal.is_none() {
            refusal = policy.check_rsa_bits(*bits).err().map(|e| e.to_string());
        }
    }
    let md = crypto::hash(digest, content)
        .map_err(|e| refused(Some(alg), refusal.clone().unwrap_or_else(|| e.to_string())))?;
    let signed_bytes = match &si.signed_attrs {
        None => {
            if sd.encap_content_info.econtent_type != oids::ID_DATA {
                return Err(invalid(
                    Some(alg),
                    "signed attributes are required for non-data content".into(),
                ));
            }
            content.to_vec()
        }
        Some(attrs) => {
            let value = |oid| {
                attrs
                    .iter()
                    .find(|a| a.oid == oid)
                    .and_then(|a| a.values.iter().next())
            };
            let claimed = value(oids::MESSAGE_DIGEST)
                .and_then(|v| v.decode_as::<OctetString>().ok())
                .ok_or_else(|| invalid(Some(alg), "no messageDigest attribute".into()))?;
            if claimed.as_bytes() != md.as_slice() {
                return Err(invalid(
                    Some(alg),
                    "content digest does not match (the message was altered)".into(),
                ));
            }
            let ct = value(oids::CONTENT_TYPE)
                .and_then(|v| v.decode_as::<const_oid::ObjectIdentifier>().ok());
            if ct != Some(sd.encap_content_info.econtent_type) {
                return Err(invalid(
                    Some(alg),
                    "contentType attribute does not match".into(),
                ));
            }
            // The bytes as received: a signer whose SET OF is not in DER order signed those.
            match raw_attrs {
                Some(raw) => raw.to_vec(),
                None => attrs
                    .to_der()
                    .map_err(|e| invalid(Some(alg), format!("signed attributes: {e}")))?,
            }
        }
    };
    match crypto::verify(
        &key,
        alg,
        pss_salt(&si.signature_algorithm),
        &signed_bytes,
        si.signature.as_bytes(),
    ) {
        Ok(()) => {}
        Err(crypto::VerifyError::Mismatch) => {
            return Err(invalid(
                Some(alg),
                crypto::VerifyError::Mismatch.to_string(),
            ))
        }
        // Not checkable here: refused, by the policy's reason when it has one.
        Err(crypto::VerifyError::Unsupported(why)) => {
            return Err(refused(Some(alg), refusal.unwrap_or(why)))
        }
    }
    match refusal {
        Some(why) => Err(refused(Some(alg), why)),
        None => Ok(alg),
    }
}

fn signing_time(si: &SignerInfo) -> Option<SystemTime> {
    let attrs = si.signed_attrs.as_ref()?;
    let v = attrs
        .iter()
        .find(|a| a.oid == oids::SIGNING_TIME)?
        .values
        .iter()
        .next()?;
    let der = v.to_der().ok()?;
    Time::from_der(&der).ok().map(|t| t.to_system_time())
}

#[cfg(test)]
mod signature_type_tests {
    use super::*;
    use postern_core::SignatureType as T;

    fn attrs(values: &[&[const_oid::ObjectIdentifier]]) -> SetOfVec<Attribute> {
        let mut set = SetOfVec::new();
        let mut attr = Attribute {
            oid: oids::SIGNATURE_TYPE,
            values: SetOfVec::new(),
        };
        for v in values {
            attr.values
                .insert(any_of(&v.to_vec(), "signatureType").unwrap())
                .unwrap();
        }
        set.insert(attr).unwrap();
        set
    }

    /// RFC 3183 §3.1.1's rules: one attribute with one value, known types only, addAttribSig
    /// alone; a SignerInfo without the attribute is an originator's.
    #[test]
    fn the_signature_type_rules_hold() {
        assert_eq!(signature_types(None), Ok(vec![]));
        assert_eq!(
            signature_types(Some(&attrs(&[&[oids::STI_DOMAIN_SIG]]))),
            Ok(vec![T::Domain])
        );
        assert_eq!(
            signature_types(Some(&attrs(&[&[
                oids::STI_REVIEW_SIG,
                oids::STI_DOMAIN_SIG
            ]]))),
            Ok(vec![T::Review, T::Domain])
        );
        let broken = |a: SetOfVec<Attribute>| signature_types(Some(&a)).unwrap_err();
        assert!(
            broken(attrs(&[&[oids::STI_ADD_ATTRIB_SIG, oids::STI_DOMAIN_SIG]]))
                .contains("addAttribSig")
        );
        assert!(broken(attrs(&[&[oids::ID_DATA]])).contains("unknown"));
        assert!(
            broken(attrs(&[&[oids::STI_DOMAIN_SIG], &[oids::STI_REVIEW_SIG]]))
                .contains("exactly one value")
        );
        assert!(broken(attrs(&[&[]])).contains("names no type"));
    }
}
