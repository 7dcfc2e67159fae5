//! ASN.1 structures CMS uses that the `cms` crate does not define.

use const_oid::ObjectIdentifier as Oid;
use der::asn1::{Null, OctetString};
use der::{Any, Decode, Encode, Sequence};
use postern_core::{DigestAlgorithm, Error, SignatureAlgorithm};
use spki::AlgorithmIdentifierOwned;

use crate::names::{digest_from_oid, digest_oid, oid_name};
use crate::oids;

/// An AlgorithmIdentifier with absent parameters (RFC 5754 §2: SHA-2 parameters absent; RFC
/// 3565: AES key wrap parameters absent).
pub fn alg_absent(oid: const_oid::ObjectIdentifier) -> AlgorithmIdentifierOwned {
    AlgorithmIdentifierOwned {
        oid,
        parameters: None,
    }
}

/// An AlgorithmIdentifier with NULL parameters (RFC 3370 §3.2: rsaEncryption).
pub fn alg_null(oid: const_oid::ObjectIdentifier) -> AlgorithmIdentifierOwned {
    AlgorithmIdentifierOwned {
        oid,
        parameters: Some(Null.into()),
    }
}

/// An AlgorithmIdentifier whose parameters are the DER of `params`.
pub fn alg_with<T: Encode>(
    oid: const_oid::ObjectIdentifier,
    params: &T,
) -> Result<AlgorithmIdentifierOwned, Error> {
    let der = params
        .to_der()
        .map_err(|e| Error::malformed("algorithm parameters", e))?;
    Ok(AlgorithmIdentifierOwned {
        oid,
        parameters: Some(Any::from_der(&der).map_err(|e| Error::malformed("parameters", e))?),
    })
}

/// RSAES-OAEP-params (RFC 4055 §4.1 / RFC 8017 A.2.1).
#[derive(Clone, Debug, Default, Sequence)]
pub struct OaepParams {
    #[asn1(context_specific = "0", tag_mode = "EXPLICIT", optional = "true")]
    pub hash: Option<AlgorithmIdentifierOwned>,
    #[asn1(context_specific = "1", tag_mode = "EXPLICIT", optional = "true")]
    pub mask_gen: Option<AlgorithmIdentifierOwned>,
    #[asn1(context_specific = "2", tag_mode = "EXPLICIT", optional = "true")]
    pub p_source: Option<AlgorithmIdentifierOwned>,
}

impl OaepParams {
    /// SHA-256 for the hash and MGF1, empty label (what RFC 8551 recommends).
    pub fn sha256() -> Result<Self, Error> {
        Ok(OaepParams {
            hash: Some(alg_absent(oids::SHA256)),
            mask_gen: Some(alg_with(oids::MGF1, &alg_absent(oids::SHA256))?),
            p_source: None,
        })
    }

    /// Decodes parameters (absent = all defaults, i.e. SHA-1).
    pub fn from_any(params: Option<&Any>) -> Result<Self, Error> {
        decode_params(params, "RSAES-OAEP parameters")
    }

    /// The single digest used for OAEP and MGF1; mismatched digests or a label are refused.
    pub fn digest(&self) -> Result<DigestAlgorithm, Error> {
        let hash = matched_digest(self.hash.as_ref(), self.mask_gen.as_ref(), "RSAES-OAEP")?;
        if let Some(p) = &self.p_source {
            // pSpecified with an empty label is the default; anything else is a label we
            // would silently ignore.
            let empty = p.oid == oids::P_SPECIFIED
                && p.parameters
                    .as_ref()
                    .and_then(|a| a.decode_as::<OctetString>().ok())
                    .is_none_or(|o| o.as_bytes().is_empty());
            if !empty {
                return Err(Error::UnsupportedAlgorithm(
                    "RSAES-OAEP with a label".into(),
                ));
            }
        }
        Ok(hash)
    }
}

/// Decodes RSA scheme parameters; absent or NULL means "all defaults" (RFC 4055).
fn decode_params<T>(params: Option<&Any>, what: &'static str) -> Result<T, Error>
where
    T: Default + for<'a> der::DecodeValue<'a, Error = der::Error> + der::FixedTag,
{
    match params {
        None => Ok(T::default()),
        Some(p) if der::Tagged::tag(p) == der::Tag::Null => Ok(T::default()),
        Some(p) => p.decode_as::<T>().map_err(|e| Error::malformed(what, e)),
    }
}

/// The digest of an OAEP/PSS scheme, whose hash (default SHA-1) and MGF1 hash must agree: the
/// primitives only offer matched pairs.
fn matched_digest(
    hash: Option<&AlgorithmIdentifierOwned>,
    mgf: Option<&AlgorithmIdentifierOwned>,
    scheme: &str,
) -> Result<DigestAlgorithm, Error> {
    let hash = match hash {
        Some(h) => digest_from_oid(&h.oid)?,
        None => DigestAlgorithm::Sha1,
    };
    let mgf = mgf1_digest(mgf)?;
    if hash != mgf {
        return Err(Error::UnsupportedAlgorithm(format!(
            "{scheme} with {hash} and MGF1-{mgf}"
        )));
    }
    Ok(hash)
}

fn mgf1_digest(mgf: Option<&AlgorithmIdentifierOwned>) -> Result<DigestAlgorithm, Error> {
    match mgf {
        None => Ok(DigestAlgorithm::Sha1),
        Some(m) if m.oid == oids::MGF1 => {
            let inner = m
                .parameters
                .as_ref()
                .ok_or_else(|| Error::malformed("MGF1 parameters", "absent"))?
                .decode_as::<AlgorithmIdentifierOwned>()
                .map_err(|e| Error::malformed("MGF1 parameters", e))?;
            digest_from_oid(&inner.oid)
        }
        Some(m) => Err(Error::UnsupportedAlgorithm(format!(
            "mask generation {}",
            crate::names::oid_name(&m.oid)
        ))),
    }
}

/// RSASSA-PSS-params (RFC 4055 §3.1).
#[derive(Clone, Debug, Default, Sequence)]
pub struct PssParams {
    #[asn1(context_specific = "0", tag_mode = "EXPLICIT", optional = "true")]
    pub hash: Option<AlgorithmIdentifierOwned>,
    #[asn1(context_specific = "1", tag_mode = "EXPLICIT", optional = "true")]
    pub mask_gen: Option<AlgorithmIdentifierOwned>,
    #[asn1(context_specific = "2", tag_mode = "EXPLICIT", optional = "true")]
    pub salt_length: Option<u32>,
    #[asn1(context_specific = "3", tag_mode = "EXPLICIT", optional = "true")]
    pub trailer_field: Option<u32>,
}

impl PssParams {
    /// PSS with `d` for hash and MGF1 and a salt as long as the hash (RFC 8702 style).
    pub fn for_digest(d: DigestAlgorithm, salt_len: u32) -> Result<Self, Error> {
        Ok(PssParams {
            hash: Some(alg_absent(digest_oid(d))),
            mask_gen: Some(alg_with(oids::MGF1, &alg_absent(digest_oid(d)))?),
            salt_length: Some(salt_len),
            trailer_field: None,
        })
    }

    /// Decodes parameters (absent = SHA-1 defaults).
    pub fn from_any(params: Option<&Any>) -> Result<Self, Error> {
        decode_params(params, "RSASSA-PSS parameters")
    }

    /// The digest used; the MGF1 digest must match it.
    pub fn digest(&self) -> Result<DigestAlgorithm, Error> {
        matched_digest(self.hash.as_ref(), self.mask_gen.as_ref(), "RSASSA-PSS")
    }
}

/// GCMParameters (RFC 5084 §3.2).
#[derive(Clone, Debug, Sequence)]
pub struct GcmParams {
    pub nonce: OctetString,
    #[asn1(optional = "true")]
    pub icv_len: Option<u8>,
}

/// ECC-CMS-SharedInfo (RFC 5753 §7.2), the X9.63 KDF's SharedInfo.
#[derive(Clone, Debug, Sequence)]
pub struct EccCmsSharedInfo {
    pub key_info: AlgorithmIdentifierOwned,
    #[asn1(context_specific = "0", tag_mode = "EXPLICIT", optional = "true")]
    pub entity_u_info: Option<OctetString>,
    #[asn1(context_specific = "2", tag_mode = "EXPLICIT")]
    pub supp_pub_info: OctetString,
}

/// The PSS salt length of an RSASSA-PSS AlgorithmIdentifier (`None` for other algorithms).
pub fn pss_salt(alg: &AlgorithmIdentifierOwned) -> Option<u16> {
    if alg.oid != oids::RSASSA_PSS {
        return None;
    }
    let p = PssParams::from_any(alg.parameters.as_ref()).ok()?;
    u16::try_from(p.salt_length.unwrap_or(20)).ok()
}

/// The signature algorithm of a SignerInfo or certificate: its signature OID, and for the bare
/// `rsaEncryption`/`ecPublicKey` forms CMS allows, the separately given digest.
pub fn signature_from_oid(
    sig_oid: &Oid,
    params: Option<&der::Any>,
    digest: Option<DigestAlgorithm>,
) -> Result<SignatureAlgorithm, Error> {
    let need_digest = || {
        digest.ok_or_else(|| Error::malformed("signature algorithm", "no digest algorithm given"))
    };
    let s = match *sig_oid {
        o if o == oids::RSA_ENCRYPTION => SignatureAlgorithm::RsaPkcs1(need_digest()?),
        o if o == oids::SHA256_WITH_RSA => SignatureAlgorithm::RsaPkcs1(DigestAlgorithm::Sha256),
        o if o == oids::SHA384_WITH_RSA => SignatureAlgorithm::RsaPkcs1(DigestAlgorithm::Sha384),
        o if o == oids::SHA512_WITH_RSA => SignatureAlgorithm::RsaPkcs1(DigestAlgorithm::Sha512),
        o if o == oids::SHA224_WITH_RSA => SignatureAlgorithm::RsaPkcs1(DigestAlgorithm::Sha224),
        o if o == oids::SHA1_WITH_RSA => SignatureAlgorithm::RsaPkcs1(DigestAlgorithm::Sha1),
        o if o == oids::MD5_WITH_RSA => SignatureAlgorithm::RsaPkcs1(DigestAlgorithm::Md5),
        o if o == oids::RSASSA_PSS => {
            let p = PssParams::from_any(params)?;
            SignatureAlgorithm::RsaPss(p.digest()?)
        }
        o if o == oids::ECDSA_WITH_SHA256 => SignatureAlgorithm::Ecdsa(DigestAlgorithm::Sha256),
        o if o == oids::ECDSA_WITH_SHA384 => SignatureAlgorithm::Ecdsa(DigestAlgorithm::Sha384),
        o if o == oids::ECDSA_WITH_SHA512 => SignatureAlgorithm::Ecdsa(DigestAlgorithm::Sha512),
        o if o == oids::ECDSA_WITH_SHA1 => SignatureAlgorithm::Ecdsa(DigestAlgorithm::Sha1),
        o if o == oids::EC_PUBLIC_KEY => SignatureAlgorithm::Ecdsa(need_digest()?),
        o if o == oids::ED25519 => SignatureAlgorithm::Ed25519,
        o if o == oids::DSA || o == oids::DSA_WITH_SHA1 => {
            SignatureAlgorithm::Dsa(digest.unwrap_or(DigestAlgorithm::Sha1))
        }
        o if o == oids::DSA_WITH_SHA256 => SignatureAlgorithm::Dsa(DigestAlgorithm::Sha256),
        o => {
            return Err(Error::UnsupportedAlgorithm(format!(
                "signature algorithm {}",
                oid_name(&o)
            )))
        }
    };
    Ok(s)
}
