//! OCSP (RFC 6960): building a request for one certificate and judging the answer — signed by
//! the issuer or by a responder the issuer delegated (id-kp-OCSPSigning), about exactly the
//! certificate asked for, current, and echoing our nonce when it echoes one at all.
//!
//! Transport (HTTP POST to the certificate's AIA responder) is the caller's.

use std::time::{Duration, SystemTime};

use const_oid::db::rfc5280::ID_KP_OCSP_SIGNING;
use const_oid::ObjectIdentifier as Oid;
use der::asn1::{BitString, GeneralizedTime, Null, OctetString};
use der::{Any, Choice, Decode, Encode, Enumerated, Sequence};
use postern_core::{Error, Policy};
use spki::AlgorithmIdentifierOwned;
use x509_cert::ext::pkix::name::GeneralName;
use x509_cert::ext::pkix::{AuthorityInfoAccessSyntax, ExtendedKeyUsage};
use x509_cert::ext::Extensions;
use x509_cert::name::Name;
use x509_cert::serial_number::SerialNumber;
use x509_cert::Certificate;

use crate::crl::CrlStatus;
use crate::issuer::{issuer_signed, signed_by};
use crate::oids;

const ID_AD_OCSP: Oid = Oid::new_unwrap("1.3.6.1.5.5.7.48.1");
const ID_AD_CA_ISSUERS: Oid = Oid::new_unwrap("1.3.6.1.5.5.7.48.2");
const ID_PKIX_OCSP_BASIC: Oid = Oid::new_unwrap("1.3.6.1.5.5.7.48.1.1");
const ID_PKIX_OCSP_NONCE: Oid = Oid::new_unwrap("1.3.6.1.5.5.7.48.1.2");
/// Clock difference tolerated between us and the responder.
const SKEW: Duration = Duration::from_secs(300);
/// How old an answer without nextUpdate may be.
const MAX_AGE_WITHOUT_NEXT_UPDATE: Duration = Duration::from_secs(24 * 3600);

#[derive(Clone, Debug, PartialEq, Eq, Sequence)]
struct CertId {
    hash_algorithm: AlgorithmIdentifierOwned,
    issuer_name_hash: OctetString,
    issuer_key_hash: OctetString,
    serial_number: SerialNumber,
}

#[derive(Sequence)]
struct OcspRequest {
    tbs_request: TbsRequest,
}

#[derive(Sequence)]
struct TbsRequest {
    request_list: Vec<Request>,
    #[asn1(context_specific = "2", tag_mode = "EXPLICIT", optional = "true")]
    request_extensions: Option<Extensions>,
}

#[derive(Sequence)]
struct Request {
    req_cert: CertId,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Enumerated)]
#[repr(u32)]
enum ResponseStatus {
    Successful = 0,
    MalformedRequest = 1,
    InternalError = 2,
    TryLater = 3,
    SigRequired = 5,
    Unauthorized = 6,
}

#[derive(Sequence)]
struct OcspResponse {
    response_status: ResponseStatus,
    #[asn1(context_specific = "0", tag_mode = "EXPLICIT", optional = "true")]
    response_bytes: Option<ResponseBytes>,
}

#[derive(Sequence)]
struct ResponseBytes {
    response_type: Oid,
    response: OctetString,
}

#[derive(Sequence)]
struct BasicOcspResponse {
    /// Kept as received: the signature covers these exact bytes.
    tbs_response_data: Any,
    signature_algorithm: AlgorithmIdentifierOwned,
    signature: BitString,
    #[asn1(context_specific = "0", tag_mode = "EXPLICIT", optional = "true")]
    certs: Option<Vec<Certificate>>,
}

#[derive(Sequence)]
struct ResponseData {
    #[asn1(
        context_specific = "0",
        tag_mode = "EXPLICIT",
        default = "Default::default"
    )]
    version: u8,
    responder_id: ResponderId,
    produced_at: GeneralizedTime,
    responses: Vec<SingleResponse>,
    #[asn1(context_specific = "1", tag_mode = "EXPLICIT", optional = "true")]
    response_extensions: Option<Extensions>,
}

#[derive(Choice)]
enum ResponderId {
    #[asn1(context_specific = "1", tag_mode = "EXPLICIT", constructed = "true")]
    ByName(Name),
    #[asn1(context_specific = "2", tag_mode = "EXPLICIT", constructed = "true")]
    ByKey(OctetString),
}

#[derive(Sequence)]
struct SingleResponse {
    cert_id: CertId,
    cert_status: CertStatus,
    this_update: GeneralizedTime,
    #[asn1(context_specific = "0", tag_mode = "EXPLICIT", optional = "true")]
    next_update: Option<GeneralizedTime>,
    #[asn1(context_specific = "1", tag_mode = "EXPLICIT", optional = "true")]
    single_extensions: Option<Extensions>,
}

#[derive(Choice)]
enum CertStatus {
    #[asn1(context_specific = "0", tag_mode = "IMPLICIT")]
    Good(Null),
    #[asn1(context_specific = "1", tag_mode = "IMPLICIT", constructed = "true")]
    Revoked(RevokedInfo),
    #[asn1(context_specific = "2", tag_mode = "IMPLICIT")]
    Unknown(Null),
}

#[derive(Sequence)]
struct RevokedInfo {
    revocation_time: GeneralizedTime,
    #[asn1(context_specific = "0", tag_mode = "EXPLICIT", optional = "true")]
    revocation_reason: Option<x509_cert::ext::pkix::CrlReason>,
}

/// A request ready to send, and what its answer must match.
pub struct PendingRequest {
    /// The DER `OCSPRequest` (POST body, `application/ocsp-request`).
    pub der: Vec<u8>,
    cert_id: CertId,
    nonce: Vec<u8>,
}

/// The responder URLs (`http:`) named in the certificate's authority information access.
pub fn responders(cert: &Certificate) -> Vec<String> {
    access_urls(cert, ID_AD_OCSP)
}

/// Where the certificate's issuer certificate is published (`http:` caIssuers in its authority
/// information access; a DER certificate or a PKCS#7 bundle).
pub fn ca_issuers(cert: &Certificate) -> Vec<String> {
    access_urls(cert, ID_AD_CA_ISSUERS)
}

fn access_urls(cert: &Certificate, method: Oid) -> Vec<String> {
    let Ok(Some((_, aia))) = cert
        .tbs_certificate()
        .get_extension::<AuthorityInfoAccessSyntax>()
    else {
        return Vec::new();
    };
    aia.0
        .iter()
        .filter(|ad| ad.access_method == method)
        .filter_map(|ad| match &ad.access_location {
            GeneralName::UniformResourceIdentifier(u) => Some(u.to_string()),
            _ => None,
        })
        .filter(|u| u.to_ascii_lowercase().starts_with("http://"))
        .collect()
}

fn sha1(data: &[u8]) -> Vec<u8> {
    aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA1_FOR_LEGACY_USE_ONLY, data)
        .as_ref()
        .to_vec()
}

fn cert_id(cert: &Certificate, issuer: &Certificate) -> Result<CertId, Error> {
    let name = issuer
        .tbs_certificate()
        .subject()
        .to_der()
        .map_err(|e| Error::malformed("issuer name", e))?;
    let key = issuer
        .tbs_certificate()
        .subject_public_key_info()
        .subject_public_key
        .raw_bytes();
    let oct = |b: Vec<u8>| OctetString::new(b).map_err(|e| Error::malformed("OCSP", e));
    Ok(CertId {
        // SHA-1 identifies (it signs nothing here) and every responder understands it.
        hash_algorithm: AlgorithmIdentifierOwned {
            oid: oids::SHA1,
            parameters: Some(Any::from(Null)),
        },
        issuer_name_hash: oct(sha1(&name))?,
        issuer_key_hash: oct(sha1(key))?,
        serial_number: cert.tbs_certificate().serial_number().clone(),
    })
}

/// Builds the request for `cert`, issued by `issuer`, with a fresh 16-byte nonce.
pub fn request(cert: &Certificate, issuer: &Certificate) -> Result<PendingRequest, Error> {
    let id = cert_id(cert, issuer)?;
    let nonce = crate::crypto::random(16)?.to_vec();
    let nonce_value = OctetString::new(nonce.clone())
        .and_then(|o| o.to_der())
        .map_err(|e| Error::malformed("OCSP nonce", e))?;
    let ext = x509_cert::ext::Extension {
        extn_id: ID_PKIX_OCSP_NONCE,
        critical: false,
        extn_value: OctetString::new(nonce_value).map_err(|e| Error::malformed("OCSP", e))?,
    };
    let req = OcspRequest {
        tbs_request: TbsRequest {
            request_list: vec![Request {
                req_cert: id.clone(),
            }],
            request_extensions: Some(vec![ext]),
        },
    };
    Ok(PendingRequest {
        der: req
            .to_der()
            .map_err(|e| Error::malformed("OCSP request", e))?,
        cert_id: id,
        nonce,
    })
}

/// Why an OCSP answer cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OcspError {
    /// Not an OCSP response.
    #[error("OCSP response cannot be parsed: {0}")]
    Parse(String),
    /// The responder refused (malformedRequest, tryLater, unauthorized, …).
    #[error("OCSP responder answered {0:?}")]
    Refused(String),
    /// Not signed by the issuer or a responder it authorised.
    #[error("OCSP response is not authentic: {0}")]
    NotAuthentic(String),
    /// About another certificate, or with another nonce.
    #[error("OCSP response does not answer our request: {0}")]
    Mismatch(String),
    /// Too old, or from the future.
    #[error("OCSP response is not current: {0}")]
    Stale(String),
    /// The responder does not know the certificate.
    #[error("OCSP responder does not know the certificate")]
    Unknown,
}

/// Judges `response` (DER) to `pending`, for `cert` issued by `issuer`.
pub fn check(
    response: &[u8],
    pending: &PendingRequest,
    issuer: &Certificate,
    now: SystemTime,
    policy: &Policy,
) -> Result<CrlStatus, OcspError> {
    let parse = |e: der::Error| OcspError::Parse(e.to_string());
    let resp = OcspResponse::from_der(response).map_err(parse)?;
    if resp.response_status != ResponseStatus::Successful {
        return Err(OcspError::Refused(format!("{:?}", resp.response_status)));
    }
    let bytes = resp
        .response_bytes
        .ok_or_else(|| OcspError::Parse("no response bytes".into()))?;
    if bytes.response_type != ID_PKIX_OCSP_BASIC {
        return Err(OcspError::Parse(format!(
            "response type {}",
            bytes.response_type
        )));
    }
    let basic = BasicOcspResponse::from_der(bytes.response.as_bytes()).map_err(parse)?;
    let tbs = basic.tbs_response_data.to_der().map_err(parse)?;
    let data = ResponseData::from_der(&tbs).map_err(parse)?;

    // Signed by the issuer itself, or by a certificate the issuer signed for OCSP signing.
    let by_issuer = issuer_signed(
        "OCSP response",
        &basic.signature_algorithm,
        &tbs,
        &basic.signature,
        issuer,
        policy,
    );
    if let Err(first) = by_issuer {
        let delegated = basic.certs.iter().flatten().find(|c| {
            c.tbs_certificate().issuer() == issuer.tbs_certificate().subject()
                && signed_by(c, issuer, policy).is_ok()
                && crate::certinfo::validity_problem(c, now).is_none()
                && matches!(
                    c.tbs_certificate().get_extension::<ExtendedKeyUsage>(),
                    Ok(Some((_, eku))) if eku.0.contains(&ID_KP_OCSP_SIGNING)
                )
                && issuer_signed(
                    "OCSP response",
                    &basic.signature_algorithm,
                    &tbs,
                    &basic.signature,
                    c,
                    policy,
                )
                .is_ok()
        });
        if delegated.is_none() {
            return Err(OcspError::NotAuthentic(first));
        }
    }

    if let Some(exts) = &data.response_extensions {
        for e in exts {
            if e.extn_id == ID_PKIX_OCSP_NONCE {
                let echoed = OctetString::from_der(e.extn_value.as_bytes())
                    .map(|o| o.as_bytes().to_vec())
                    .unwrap_or_else(|_| e.extn_value.as_bytes().to_vec());
                if echoed != pending.nonce {
                    return Err(OcspError::Mismatch("nonce differs".into()));
                }
            } else if e.critical {
                return Err(OcspError::Parse(format!(
                    "critical extension {}",
                    e.extn_id
                )));
            }
        }
    }
    let single = data
        .responses
        .iter()
        .find(|r| r.cert_id == pending.cert_id)
        .ok_or_else(|| OcspError::Mismatch("no answer for the certificate asked about".into()))?;

    let this_update = single.this_update.to_system_time();
    if this_update > now + SKEW {
        return Err(OcspError::Stale("issued in the future".into()));
    }
    let next_update = match &single.next_update {
        Some(t) if t.to_system_time() + SKEW >= now => t.to_system_time(),
        Some(_) => return Err(OcspError::Stale("past its next update".into())),
        None if now.duration_since(this_update).unwrap_or_default()
            <= MAX_AGE_WITHOUT_NEXT_UPDATE =>
        {
            now + Duration::from_secs(60)
        }
        None => {
            return Err(OcspError::Stale(
                "older than a day, with no next update".into(),
            ))
        }
    };
    match &single.cert_status {
        CertStatus::Good(_) => Ok(CrlStatus::Good { next_update }),
        CertStatus::Revoked(info) => Ok(CrlStatus::Revoked {
            date: info.revocation_time.to_system_time(),
            reason: info.revocation_reason.map(|r| format!("{r:?}")),
        }),
        CertStatus::Unknown(_) => Err(OcspError::Unknown),
    }
}
