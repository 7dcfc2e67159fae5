//! Administrator- and network-supplied PKI files on arbitrary bytes: PKCS#12 import, certificate
//! and PKCS#7 bundle parsing, path validation of what parses, a CRL and an OCSP response judged
//! against the published RFC 9216 sample CA.
#![no_main]

use std::time::SystemTime;

use libfuzzer_sys::fuzz_target;
use postern_core::Policy;
use postern_smime::{crl, keys, ocsp, path, pkcs12};

const CA: &[u8] = include_bytes!("../../tests/data/smime/rfc9216/Sample_LAMPS_RSA_Certification_Authority.selfsigned.pem");
const BOB_CERT: &[u8] = include_bytes!("../../tests/data/smime/examples-cms/certs-and-keys/lamps-bob.encrypt.crt");

fuzz_target!(|data: &[u8]| {
    let policy = Policy::default();
    let now = SystemTime::now();
    let _ = pkcs12::read(data, "password");
    let ca = keys::parse_certificates(CA).expect("sample CA");
    let bob = keys::parse_certificates(BOB_CERT).expect("sample cert");
    if let Ok(certs) = keys::parse_certificates(data) {
        for c in &certs {
            let opts = path::PathOptions {
                anchors: &ca,
                intermediates: &certs,
                now,
                policy: &policy,
                purpose: None,
                max_intermediates: path::DEFAULT_MAX_INTERMEDIATES,
            };
            let _ = path::validate(c, &opts);
            let _ = crl::distribution_points(c);
            let _ = ocsp::responders(c);
        }
    }
    let _ = crl::check(&bob[0], &ca[0], data, now, &policy);
    if let Ok(pending) = ocsp::request(&bob[0], &ca[0]) {
        let _ = ocsp::check(data, &pending, &ca[0], now, &policy);
    }
});
