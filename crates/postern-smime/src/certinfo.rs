//! Facts about a certificate that sealing, opening and chain validation ask for.

use std::time::SystemTime;

use cms::cert::IssuerAndSerialNumber;
use der::Encode;
use x509_cert::ext::pkix::name::GeneralName;
use x509_cert::ext::pkix::{
    BasicConstraints, ExtendedKeyUsage, KeyUsage, SubjectAltName, SubjectKeyIdentifier,
};
use x509_cert::Certificate;

use crate::oids;

/// The subject as an RFC 4514-style string.
pub fn subject(cert: &Certificate) -> String {
    cert.tbs_certificate().subject().to_string()
}

/// The first e-mail address: a SAN rfc822Name, else the subject's emailAddress attribute.
pub fn email(cert: &Certificate) -> Option<String> {
    if let Ok(Some((_, san))) = cert.tbs_certificate().get_extension::<SubjectAltName>() {
        for name in san.0 {
            if let GeneralName::Rfc822Name(m) = name {
                return Some(m.to_string());
            }
        }
    }
    for atv in cert.tbs_certificate().subject().iter() {
        if atv.oid == oids::EMAIL_ADDRESS {
            if let Ok(s) = atv.value.decode_as::<der::asn1::Ia5String>() {
                return Some(s.to_string());
            }
        }
    }
    None
}

/// Every e-mail address the certificate names (subjectAltName rfc822Name, then the subject's
/// emailAddress), lower-case.
pub fn emails(cert: &Certificate) -> Vec<String> {
    let mut out = Vec::new();
    if let Ok(Some((_, san))) = cert.tbs_certificate().get_extension::<SubjectAltName>() {
        for name in san.0 {
            if let GeneralName::Rfc822Name(m) = name {
                out.push(m.to_string().to_lowercase());
            }
        }
    }
    for atv in cert.tbs_certificate().subject().iter() {
        if atv.oid == oids::EMAIL_ADDRESS {
            if let Ok(s) = atv.value.decode_as::<der::asn1::Ia5String>() {
                out.push(s.to_string().to_lowercase());
            }
        }
    }
    // A bare domain in emailAddress (as Direct organisation certificates write it) is not an
    // address: it is one of the certificate's domains (see [`domain_names`]).
    out.retain(|a| a.contains('@'));
    out.dedup();
    out
}

/// The domains the certificate is bound to as a whole, lower-case: its dNSName entries, a
/// subject emailAddress that is a bare domain name, and — when it names nothing else at all —
/// a subject common name that is a domain name (a Direct organisation certificate:
/// `CN=redmond.hsgincubator.com, emailAddress=redmond.hsgincubator.com`). The common name is
/// only a last resort (RFC 6125 §6.4.4): the Direct RI's single-use pair names
/// `DNS:dev.singleuse.lab` and a free-text CN `dev.singlueuse.lab.digitalSignature`, which
/// binds nothing.
pub fn domain_names(cert: &Certificate) -> Vec<String> {
    let looks_like_domain = |s: &str| {
        s.contains('.')
            && !s.starts_with('.')
            && !s.ends_with('.')
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
    };
    let mut out = dns_names(cert);
    let subject = cert.tbs_certificate().subject();
    let text = |atv: &x509_cert::attr::AttributeTypeAndValue| -> Option<String> {
        atv.value
            .decode_as::<der::asn1::Ia5String>()
            .map(|s| s.to_string())
            .or_else(|_| {
                atv.value
                    .decode_as::<der::asn1::Utf8StringRef<'_>>()
                    .map(|s| s.to_string())
            })
            .or_else(|_| {
                atv.value
                    .decode_as::<der::asn1::PrintableStringRef<'_>>()
                    .map(|s| s.to_string())
            })
            .ok()
    };
    for atv in subject.iter() {
        if atv.oid == oids::EMAIL_ADDRESS {
            if let Some(s) = text(atv).filter(|s| looks_like_domain(s)) {
                out.push(s.to_lowercase());
            }
        }
    }
    if out.is_empty() && emails(cert).is_empty() {
        for atv in subject.iter() {
            if atv.oid == const_oid::db::rfc4519::CN {
                if let Some(s) = text(atv).filter(|s| looks_like_domain(s)) {
                    out.push(s.to_lowercase());
                }
            }
        }
    }
    out.sort();
    out.dedup();
    out
}

/// The dNSName entries of the subjectAltName, lower-case.
pub fn dns_names(cert: &Certificate) -> Vec<String> {
    match cert.tbs_certificate().get_extension::<SubjectAltName>() {
        Ok(Some((_, san))) => san
            .0
            .iter()
            .filter_map(|n| match n {
                GeneralName::DnsName(d) => Some(d.to_string().to_lowercase()),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    }
}

/// A CA certificate (basicConstraints cA = TRUE).
pub fn is_ca(cert: &Certificate) -> bool {
    matches!(
        cert.tbs_certificate().get_extension::<BasicConstraints>(),
        Ok(Some((_, BasicConstraints { ca: true, .. })))
    )
}

/// SHA-256 fingerprint of the DER certificate, lower-case hex.
pub fn fingerprint(cert: &Certificate) -> String {
    let der = cert.to_der().unwrap_or_default();
    let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &der);
    d.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

/// The issuer and serial number that identify the certificate in CMS.
pub fn issuer_and_serial(cert: &Certificate) -> IssuerAndSerialNumber {
    IssuerAndSerialNumber {
        issuer: cert.tbs_certificate().issuer().clone(),
        serial_number: cert.tbs_certificate().serial_number().clone(),
    }
}

/// The subject key identifier extension, if present.
pub fn subject_key_id(cert: &Certificate) -> Option<Vec<u8>> {
    cert.tbs_certificate()
        .get_extension::<SubjectKeyIdentifier>()
        .ok()
        .flatten()
        .map(|(_, ski)| ski.0.as_bytes().to_vec())
}

/// True when `cert` is the one `id` names.
pub fn matches_issuer_serial(cert: &Certificate, id: &IssuerAndSerialNumber) -> bool {
    let tbs = cert.tbs_certificate();
    tbs.serial_number() == &id.serial_number && tbs.issuer() == &id.issuer
}

/// Why the certificate is not valid at `now`, if it is not.
pub fn validity_problem(cert: &Certificate, now: SystemTime) -> Option<String> {
    let v = cert.tbs_certificate().validity();
    if now < v.not_before.to_system_time() {
        return Some(format!("not valid before {}", v.not_before));
    }
    if now > v.not_after.to_system_time() {
        return Some(format!("expired {}", v.not_after));
    }
    None
}

/// The key usage extension, if present (absent means "any", RFC 5280 §4.2.1.3).
pub fn key_usage(cert: &Certificate) -> Option<KeyUsage> {
    cert.tbs_certificate()
        .get_extension::<KeyUsage>()
        .ok()
        .flatten()
        .map(|(_, ku)| ku)
}

/// True when the extended key usage (if present) allows e-mail protection (RFC 8550 §4.4.4).
pub fn allows_email_protection(cert: &Certificate) -> bool {
    match cert.tbs_certificate().get_extension::<ExtendedKeyUsage>() {
        Ok(Some((_, eku))) => eku
            .0
            .iter()
            .any(|o| *o == oids::KP_EMAIL_PROTECTION || *o == oids::ANY_EXTENDED_KEY_USAGE),
        Ok(None) => true,
        Err(_) => false,
    }
}

/// A short description of which certificate is meant, for error messages.
pub fn describe(cert: &Certificate) -> String {
    match email(cert) {
        Some(e) => format!("{e} ({})", subject(cert)),
        None => subject(cert),
    }
}
