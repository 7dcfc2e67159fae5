//! Path validation and CRL checking run against the x509-limbo suite (C2SP/x509-limbo; the
//! data's provenance is in `tests/data/x509-limbo/PROVENANCE.md`).
//!
//! Every case is run. The limbo cases are written for TLS servers and clients, so the harness
//! adds what a TLS verifier would do on top of our validator — the peer name check against
//! the leaf's subjectAltName (our S/MIME code matches addresses, not host names) and the
//! requested key usage. Each case whose outcome differs from limbo's expectation must be
//! listed in `DIFFERENCES` with the reason; the test fails on an unlisted difference and on a
//! listed one that no longer differs. The pass counts per category are printed.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is a failure report

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::{Duration, SystemTime};

use const_oid::db::rfc5280 as oid;
use der::DecodePem;
use postern_core::Policy;
use postern_smime::crl::{self, CrlStatus};
use postern_smime::path::{self, PathOptions};
use serde_json::Value;
use x509_cert::crl::CertificateList;
use x509_cert::ext::pkix::name::GeneralName;
use x509_cert::ext::pkix::{KeyUsage, SubjectAltName};
use x509_cert::Certificate;

/// Cases where our result differs from limbo's expectation, and why that is intended.
const DIFFERENCES: &[(&str, &str)] = &[
    (
        "rfc5280::aki::leaf-missing-aki",
        "RFC 5280 says a CA must include the AKI; OpenSSL (cms -verify) and gpgsm accept \
         certificates without it, and partners' older CAs omit it. Path building falls back \
         to names.",
    ),
    (
        "rfc5280::aki::intermediate-missing-aki",
        "as leaf-missing-aki",
    ),
    (
        "rfc5280::aki::cross-signed-root-missing-aki",
        "as leaf-missing-aki (limbo marks it pedantic)",
    ),
    (
        "rfc5280::ski::root-missing-ski",
        "an issuer's SKI is a SHOULD-level aid to path building, not a validity condition \
         for OpenSSL or gpgsm",
    ),
    (
        "rfc5280::ski::intermediate-missing-ski",
        "as root-missing-ski",
    ),
    (
        "rfc5280::root-non-critical-basic-constraints",
        "criticality of basicConstraints in a CA is a MUST for the issuing CA, but OpenSSL \
         accepts such roots and refusing them would break partners' older private CAs; cA=TRUE \
         is still required",
    ),
    (
        "rfc5280::serial::zero",
        "serial number form is the issuer's concern (pedantic in limbo); it does not make a \
         path unsafe (a serial longer than 20 octets is refused by the parser)",
    ),
    ("rfc5280::serial::negative", "as serial::zero"),
    (
        "rfc5280::pc::ica-noncritical-pc",
        "policyConstraints not marked critical: we do not evaluate policies; a path that \
         requires an explicit policy is refused, this one does not",
    ),
    (
        "webpki::eku::ee-without-eku",
        "RFC 8550 §4.4.4: an S/MIME certificate without extendedKeyUsage may protect mail \
         (limbo marks this Web PKI rule pedantic)",
    ),
    (
        "webpki::eku::root-has-eku",
        "an anchor whose EKU includes the purpose is accepted (as by OpenSSL); Web PKI \
         forbids EKU in roots",
    ),
    (
        "webpki::forbidden-p192-leaf",
        "curve policy is applied to signatures we verify; a leaf's own key is judged when it \
         signs or is sealed to",
    ),
    (
        "webpki::forbidden-weak-rsa-in-leaf",
        "as forbidden-p192-leaf: the leaf's RSA size is checked when we use the key",
    ),
    (
        "webpki::forbidden-rsa-key-not-divisible-by-8-in-leaf",
        "as forbidden-weak-rsa-in-leaf",
    ),
    (
        "webpki::forbidden-dsa-leaf",
        "as forbidden-p192-leaf: a DSA leaf is refused when it signs",
    ),
    (
        "webpki::ee-basicconstraints-ca",
        "Web PKI rule (a CA certificate may not be a TLS leaf); RFC 5280 allows it",
    ),
    ("webpki::ca-as-leaf", "as ee-basicconstraints-ca"),
    (
        "rfc5280::nc::permitted-dns-match-noncritical",
        "name constraints not marked critical are enforced rather than refused (RFC 5280 says \
         they must be critical; the Web PKI allows non-critical ones, and limbo's \
         webpki::nc::permitted-dns-match-noncritical expects the opposite of this case). \
         Enforcing them is never weaker than refusing the certificate",
    ),
    (
        "webpki::aki::root-with-aki-missing-keyidentifier",
        "a trust anchor's own AKI says nothing about the path; OpenSSL accepts these anchors",
    ),
    (
        "webpki::aki::root-with-aki-authoritycertissuer",
        "as root-with-aki-missing-keyidentifier",
    ),
    (
        "webpki::aki::root-with-aki-authoritycertserialnumber",
        "as root-with-aki-missing-keyidentifier",
    ),
    (
        "webpki::aki::root-with-aki-all-fields",
        "as root-with-aki-missing-keyidentifier",
    ),
    (
        "webpki::aki::root-with-aki-ski-mismatch",
        "as root-with-aki-missing-keyidentifier",
    ),
    (
        "webpki::cn::ipv4-hex-mismatch",
        "CA/B Forum TLS rule on the subject CN of a server certificate; in S/MIME the CN is a \
         person's or organisation's name and host names are not matched",
    ),
    (
        "webpki::cn::ipv4-leading-zeros-mismatch",
        "as ipv4-hex-mismatch",
    ),
    (
        "webpki::cn::ipv6-uppercase-mismatch",
        "as ipv4-hex-mismatch",
    ),
    (
        "webpki::cn::ipv6-uncompressed-mismatch",
        "as ipv4-hex-mismatch",
    ),
    (
        "webpki::cn::ipv6-non-rfc5952-mismatch",
        "as ipv4-hex-mismatch",
    ),
    ("webpki::cn::punycode-not-in-san", "as ipv4-hex-mismatch"),
    (
        "webpki::cn::utf8-vs-punycode-mismatch",
        "as ipv4-hex-mismatch",
    ),
    ("webpki::cn::not-in-san", "as ipv4-hex-mismatch"),
    ("webpki::cn::case-mismatch", "as ipv4-hex-mismatch"),
    (
        "webpki::eku::ee-anyeku",
        "anyExtendedKeyUsage means any purpose (RFC 5280 §4.2.1.12); the Web PKI forbids it in \
         server certificates (pedantic in limbo)",
    ),
    (
        "webpki::eku::ee-critical-eku",
        "RFC 5280 allows a critical EKU; the Web PKI rule is pedantic in limbo",
    ),
    (
        "webpki::san::public-suffix-multi-label-wildcard-san",
        "the harness's TLS host-name check has no public suffix list; S/MIME never matches \
         host names, so this is not a property of our validator",
    ),
    (
        "webpki::san::public-suffix-private-namespace-wildcard-san",
        "as public-suffix-multi-label-wildcard-san",
    ),
    (
        "webpki::san::san-critical-with-nonempty-subject",
        "Web PKI profile rule; RFC 5280 allows a critical subjectAltName",
    ),
    (
        "webpki::forbidden-rsa-not-divisible-by-8-in-root",
        "the algorithm policy bounds the RSA size (at least 2048 bits), not its divisibility",
    ),
];

struct Case {
    id: String,
    expect_ok: bool,
    ok: bool,
    why: String,
}

fn certs(v: &Value) -> Vec<Certificate> {
    v.as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| Certificate::from_pem(p.as_str()?).ok())
        .collect()
}

fn time(v: &Value) -> SystemTime {
    let Some(s) = v.as_str() else {
        return SystemTime::now();
    };
    // e.g. 2024-03-01T00:00:00.999+00:00: whole seconds since the epoch, fraction dropped
    // toward zero as X.509 times have none.
    let n = |r: std::ops::Range<usize>| {
        s.get(r)
            .and_then(|d| d.parse::<i64>().ok())
            .expect("number in time")
    };
    let (y, mo, d, h, mi, se) = (n(0..4), n(5..7), n(8..10), n(11..13), n(14..16), n(17..19));
    // Days from civil (Howard Hinnant's algorithm).
    let y = if mo <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (mo + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = days * 86_400 + h * 3_600 + mi * 60 + se;
    SystemTime::UNIX_EPOCH + Duration::from_secs(u64::try_from(secs).expect("after 1970"))
}

fn purpose(v: &Value) -> Option<const_oid::ObjectIdentifier> {
    v.as_array()?.first()?.as_str().map(|s| match s {
        "serverAuth" => oid::ID_KP_SERVER_AUTH,
        "clientAuth" => oid::ID_KP_CLIENT_AUTH,
        other => panic!("unexpected EKU {other}"),
    })
}

/// What a TLS verifier checks on top of the path: the expected peer name in the leaf's SAN.
fn peer_name_matches(leaf: &Certificate, name: &Value) -> Result<(), String> {
    let Some(value) = name.get("value").and_then(Value::as_str) else {
        return Ok(());
    };
    let kind = name.get("kind").and_then(Value::as_str).unwrap_or("");
    let san = match leaf.tbs_certificate().get_extension::<SubjectAltName>() {
        Ok(Some((_, san))) => san.0,
        _ => return Err("no subjectAltName".into()),
    };
    let found = san.iter().any(|n| match (kind, n) {
        ("DNS", GeneralName::DnsName(d)) => dns_matches(d.as_str(), value),
        ("IP", GeneralName::IpAddress(ip)) => {
            value.parse::<IpAddr>().is_ok_and(|want| match want {
                IpAddr::V4(a) => ip.as_bytes() == a.octets(),
                IpAddr::V6(a) => ip.as_bytes() == a.octets(),
            })
        }
        _ => false,
    });
    if found {
        Ok(())
    } else {
        Err(format!("peer name {value} not in subjectAltName"))
    }
}

fn dns_matches(presented: &str, reference: &str) -> bool {
    let p = presented.to_ascii_lowercase();
    let r = reference.to_ascii_lowercase();
    match p.strip_prefix("*.") {
        Some(rest) => {
            // Only a whole leftmost label; never across labels, never a public suffix alone.
            rest.contains('.')
                && r.split_once('.')
                    .is_some_and(|(label, up)| !label.is_empty() && up == rest)
        }
        None => !p.contains('*') && p == r,
    }
}

fn run(case: &Value, policy: &Policy) -> Result<(), String> {
    let anchors = certs(&case["trusted_certs"]);
    let intermediates = certs(&case["untrusted_intermediates"]);
    let leaf = Certificate::from_pem(case["peer_certificate"].as_str().unwrap_or(""))
        .map_err(|e| format!("leaf does not parse: {e}"))?;
    let now = time(&case["validation_time"]);
    let opts = PathOptions {
        anchors: &anchors,
        intermediates: &intermediates,
        now,
        policy,
        purpose: purpose(&case["extended_key_usage"]),
        max_intermediates: case["max_chain_depth"]
            .as_u64()
            .map_or(path::DEFAULT_MAX_INTERMEDIATES, |d| d as usize),
    };
    let valid = path::validate(&leaf, &opts).map_err(|e| e.to_string())?;
    peer_name_matches(&leaf, &case["expected_peer_name"])?;
    if case["key_usage"]
        .as_array()
        .is_some_and(|k| k.iter().any(|u| u == "digitalSignature"))
    {
        if let Ok(Some((_, ku))) = leaf.tbs_certificate().get_extension::<KeyUsage>() {
            if !ku.digital_signature() {
                return Err("key usage lacks digitalSignature".into());
            }
        }
    }
    for (i, cert) in valid.certs.iter().enumerate().take(valid.certs.len() - 1) {
        let issuer = valid.certs[i + 1];
        for pem in case["crls"].as_array().into_iter().flatten() {
            let der = <CertificateList>::from_pem(pem.as_str().unwrap_or(""))
                .and_then(|c| der::Encode::to_der(&c))
                .map_err(|e| format!("CRL does not parse: {e}"))?;
            match crl::check(cert, issuer, &der, now, policy) {
                Ok(CrlStatus::Good { .. }) | Err(crl::CrlError::OtherIssuer { .. }) => {}
                Ok(CrlStatus::Revoked { .. }) => return Err("revoked".into()),
                Err(e) => return Err(e.to_string()),
            }
        }
    }
    Ok(())
}

#[test]
fn x509_limbo() {
    let text = include_str!("data/x509-limbo/limbo.json");
    let suite: Value = serde_json::from_str(text).expect("limbo.json");
    let policy = Policy::default();
    let mut cases = Vec::new();
    for case in suite["testcases"].as_array().expect("testcases") {
        let id = case["id"].as_str().expect("id").to_string();
        let expect_ok = case["expected_result"] == "SUCCESS";
        let result = run(case, &policy);
        cases.push(Case {
            id,
            expect_ok,
            ok: result.is_ok(),
            why: result.err().unwrap_or_default(),
        });
    }

    let mut per_category: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    let mut unexpected = Vec::new();
    let mut listed_but_agree = Vec::new();
    for c in &cases {
        let category = c.id.rsplit_once("::").map_or(c.id.as_str(), |(p, _)| p);
        let e = per_category.entry(category.to_string()).or_default();
        e.1 += 1;
        let agrees = c.ok == c.expect_ok;
        if agrees {
            e.0 += 1;
        }
        let listed = DIFFERENCES.iter().any(|(id, _)| *id == c.id);
        match (agrees, listed) {
            (false, false) => unexpected.push(format!(
                "{}: expected {}, got {} {}",
                c.id,
                if c.expect_ok { "SUCCESS" } else { "FAILURE" },
                if c.ok { "SUCCESS" } else { "FAILURE" },
                c.why
            )),
            (true, true) => listed_but_agree.push(c.id.clone()),
            _ => {}
        }
    }
    println!("x509-limbo: category, agreeing with limbo / cases");
    for (cat, (pass, total)) in &per_category {
        println!("  {cat:32} {pass:3} / {total:3}");
    }
    let pass: usize = per_category.values().map(|v| v.0).sum();
    println!("  total {pass} / {}", cases.len());
    for id in DIFFERENCES.iter().map(|d| d.0) {
        assert!(
            cases.iter().any(|c| c.id == id),
            "listed difference {id} is not a limbo case"
        );
    }
    assert!(
        unexpected.is_empty(),
        "unexplained differences from x509-limbo:\n{}",
        unexpected.join("\n")
    );
    assert!(
        listed_but_agree.is_empty(),
        "listed as differing but now agreeing (remove from DIFFERENCES): {listed_but_agree:?}"
    );
    // The suite must have been read in full (not an empty or truncated file).
    assert!(cases.len() >= 200, "only {} cases read", cases.len());
}
