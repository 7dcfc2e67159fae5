//! Certificate revocation lists (RFC 5280 §5, §6.3): whether a CRL applies to a certificate,
//! whether it is authentic and current, and whether it revokes the certificate.
//!
//! Complete CRLs only: delta CRLs, indirect CRLs and CRLs partitioned by reason are refused
//! (an error, so the caller's revocation policy decides), never taken as "not revoked".

use std::time::SystemTime;

use const_oid::db::rfc5280 as ext;
use der::{Decode, Encode};
use x509_cert::crl::CertificateList;
use x509_cert::ext::pkix::crl::dp::IssuingDistributionPoint;
use x509_cert::ext::pkix::name::{DistributionPointName, GeneralName};
use x509_cert::ext::pkix::{BasicConstraints, CrlDistributionPoints, CrlReason};
use x509_cert::Certificate;

use postern_core::Policy;

use crate::certinfo;
use crate::issuer::issuer_signed;

/// What a CRL says about a certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CrlStatus {
    /// Not on the list; the answer holds until `next_update`.
    Good {
        /// When the issuer promises the next list.
        next_update: SystemTime,
    },
    /// Revoked by the issuer.
    Revoked {
        /// When, as the CRL says.
        date: SystemTime,
        /// The reason code's name, when given.
        reason: Option<String>,
    },
}

/// Why a CRL cannot answer for a certificate.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CrlError {
    /// Not DER, or not a CRL.
    #[error("CRL cannot be parsed: {0}")]
    Parse(String),
    /// Issued by another CA than the certificate's issuer.
    #[error("CRL is issued by {crl}, the certificate by {cert}")]
    OtherIssuer {
        /// The CRL's issuer.
        crl: String,
        /// The certificate's issuer.
        cert: String,
    },
    /// The signature does not verify with the issuer's key, or the issuer may not sign CRLs.
    #[error("CRL is not authentic: {0}")]
    NotAuthentic(String),
    /// `nextUpdate` has passed (or is absent), or `thisUpdate` is in the future.
    #[error("CRL is not current: {0}")]
    Stale(String),
    /// A form we do not evaluate (delta, indirect, partitioned, unknown critical extension).
    #[error("CRL is not supported: {0}")]
    Unsupported(String),
    /// The CRL's scope (issuing distribution point) excludes the certificate.
    #[error("CRL does not cover this certificate: {0}")]
    OutOfScope(String),
}

/// Checks `cert` against the DER CRL `crl`, which `issuer` (the certificate's issuer) must have
/// signed.
pub fn check(
    cert: &Certificate,
    issuer: &Certificate,
    crl: &[u8],
    now: SystemTime,
    policy: &Policy,
) -> Result<CrlStatus, CrlError> {
    let list = <CertificateList>::from_der(crl).map_err(|e| CrlError::Parse(e.to_string()))?;
    let tbs = &list.tbs_cert_list;
    if &tbs.issuer != cert.tbs_certificate().issuer() {
        return Err(CrlError::OtherIssuer {
            crl: tbs.issuer.to_string(),
            cert: cert.tbs_certificate().issuer().to_string(),
        });
    }
    if issuer.tbs_certificate().subject() != &tbs.issuer {
        return Err(CrlError::NotAuthentic(format!(
            "{} is not the CRL's issuer",
            certinfo::subject(issuer)
        )));
    }
    if certinfo::key_usage(issuer).is_some_and(|ku| !ku.crl_sign()) {
        return Err(CrlError::NotAuthentic(
            "the issuer's key usage lacks cRLSign".into(),
        ));
    }
    if tbs.signature != list.signature_algorithm {
        return Err(CrlError::NotAuthentic(
            "signature algorithm differs inside and outside the signed part".into(),
        ));
    }
    let tbs_der = tbs.to_der().map_err(|e| CrlError::Parse(e.to_string()))?;
    issuer_signed(
        "CRL",
        &list.signature_algorithm,
        &tbs_der,
        &list.signature,
        issuer,
        policy,
    )
    .map_err(CrlError::NotAuthentic)?;

    let this_update = tbs.this_update.to_system_time();
    if this_update > now {
        return Err(CrlError::Stale(format!(
            "issued in the future ({})",
            tbs.this_update
        )));
    }
    let next_update = match &tbs.next_update {
        Some(t) if t.to_system_time() >= now => t.to_system_time(),
        Some(t) => return Err(CrlError::Stale(format!("next update was due {t}"))),
        None => return Err(CrlError::Stale("no next update given".into())),
    };

    let mut has_number = false;
    for e in tbs.crl_extensions.iter().flatten() {
        match e.extn_id {
            ext::ID_CE_CRL_NUMBER => {
                if e.critical {
                    return Err(CrlError::Unsupported("critical CRL number".into()));
                }
                has_number = true;
            }
            ext::ID_CE_AUTHORITY_KEY_IDENTIFIER if !e.critical => {}
            ext::ID_CE_ISSUING_DISTRIBUTION_POINT => {
                let idp = IssuingDistributionPoint::from_der(e.extn_value.as_bytes())
                    .map_err(|e| CrlError::Parse(format!("issuing distribution point: {e}")))?;
                scope(cert, &idp)?;
            }
            ext::ID_CE_DELTA_CRL_INDICATOR => {
                return Err(CrlError::Unsupported("delta CRL".into()));
            }
            id if e.critical => {
                return Err(CrlError::Unsupported(format!("critical extension {id}")));
            }
            _ => {}
        }
    }
    if !has_number {
        return Err(CrlError::Unsupported(
            "no CRL number (RFC 5280 §5.2.3)".into(),
        ));
    }

    let serial = cert.tbs_certificate().serial_number();
    for entry in tbs.revoked_certificates.iter().flatten() {
        let mut reason = None;
        for e in entry.crl_entry_extensions.iter().flatten() {
            match e.extn_id {
                ext::ID_CE_CRL_REASONS => {
                    reason = CrlReason::from_der(e.extn_value.as_bytes())
                        .ok()
                        .map(|r| format!("{r:?}"));
                }
                ext::ID_CE_INVALIDITY_DATE | ext::ID_CE_HOLD_INSTRUCTION_CODE => {}
                id if e.critical => {
                    return Err(CrlError::Unsupported(format!(
                        "critical entry extension {id}"
                    )));
                }
                _ => {}
            }
        }
        if entry.serial_number.as_bytes() == serial.as_bytes() {
            // removeFromCRL only appears in delta CRLs, which are refused above.
            return Ok(CrlStatus::Revoked {
                date: entry.revocation_date.to_system_time(),
                reason,
            });
        }
    }
    Ok(CrlStatus::Good { next_update })
}

fn scope(cert: &Certificate, idp: &IssuingDistributionPoint) -> Result<(), CrlError> {
    if idp.indirect_crl {
        return Err(CrlError::Unsupported("indirect CRL".into()));
    }
    if idp.only_some_reasons.is_some() {
        return Err(CrlError::Unsupported("CRL partitioned by reason".into()));
    }
    if idp.only_contains_attribute_certs {
        return Err(CrlError::OutOfScope("attribute certificates only".into()));
    }
    let is_ca = matches!(
        cert.tbs_certificate().get_extension::<BasicConstraints>(),
        Ok(Some((_, BasicConstraints { ca: true, .. })))
    );
    if idp.only_contains_user_certs && is_ca {
        return Err(CrlError::OutOfScope("end-entity certificates only".into()));
    }
    if idp.only_contains_ca_certs && !is_ca {
        return Err(CrlError::OutOfScope("CA certificates only".into()));
    }
    // A CRL for one distribution point covers only certificates that name that point.
    if let Some(DistributionPointName::FullName(crl_names)) = &idp.distribution_point {
        let cert_points = match cert
            .tbs_certificate()
            .get_extension::<CrlDistributionPoints>()
        {
            Ok(Some((_, dps))) => dps.0,
            _ => Vec::new(),
        };
        let named = cert_points.iter().any(|dp| match &dp.distribution_point {
            Some(DistributionPointName::FullName(names)) => {
                names.iter().any(|n| crl_names.contains(n))
            }
            _ => false,
        });
        if !named {
            return Err(CrlError::OutOfScope(
                "the CRL's distribution point is not one the certificate names".into(),
            ));
        }
    }
    Ok(())
}

/// The `http:` URLs of the certificate's CRL distribution points (full names only; LDAP and
/// relative names are not fetched, HTTPS is not used for CRLs, RFC 5280 §4.2.1.13).
pub fn distribution_points(cert: &Certificate) -> Vec<String> {
    let Ok(Some((_, dps))) = cert
        .tbs_certificate()
        .get_extension::<CrlDistributionPoints>()
    else {
        return Vec::new();
    };
    dps.0
        .iter()
        .filter(|dp| dp.crl_issuer.is_none() && dp.reasons.is_none())
        .filter_map(|dp| match &dp.distribution_point {
            Some(DistributionPointName::FullName(names)) => Some(names),
            _ => None,
        })
        .flatten()
        .filter_map(|n| match n {
            GeneralName::UniformResourceIdentifier(u) => Some(u.to_string()),
            _ => None,
        })
        .filter(|u| u.to_ascii_lowercase().starts_with("http://"))
        .collect()
}

/// The certificate among `candidates` that issued `cert`: its subject is the issuer name and
/// its key verifies the certificate's signature.
pub fn find_issuer<'a>(
    cert: &Certificate,
    candidates: &'a [Certificate],
    policy: &Policy,
) -> Option<&'a Certificate> {
    candidates.iter().find(|c| {
        c.tbs_certificate().subject() == cert.tbs_certificate().issuer()
            && crate::issuer::signed_by(cert, c, policy).is_ok()
    })
}

/// The `nextUpdate` of a DER CRL, for caching (unverified: the list is checked on use).
pub fn next_update(der: &[u8]) -> Option<SystemTime> {
    <CertificateList>::from_der(der)
        .ok()?
        .tbs_cert_list
        .next_update
        .map(|t| t.to_system_time())
}
