//! Hostile and broken input: every case ends in a typed error or a verdict, never a panic or a
//! hang. Property tests mutate real sealed messages.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is a failure report

use std::time::{Duration, SystemTime};

use postern_core::{
    ChainStatus, ContentCipher, Error, MessageView, OpenRequest, Policy, SealRequest,
};
use postern_smime::SmimeEnvelope;
use postern_tests::{pkcs7_mime_message, sample_message, KeyKind, Pki};
use proptest::prelude::*;

fn seal_for(pki: &Pki, cipher: ContentCipher) -> (Vec<u8>, postern_tests::EndEntity) {
    let ee = pki.issue("gw@partner.example", KeyKind::Rsa(2048));
    let certs = vec![ee.cert_pem()];
    let policy = Policy::default();
    let msg = sample_message(1);
    let view = MessageView::parse(&msg).unwrap();
    let sealed = SmimeEnvelope::new()
        .seal_sync(
            &view,
            &SealRequest::encrypt(&certs, &policy).with_cipher(cipher),
        )
        .unwrap();
    (sealed, ee)
}

fn der_of(sealed: &[u8]) -> Vec<u8> {
    MessageView::parse(sealed)
        .unwrap()
        .root()
        .decoded_body()
        .to_vec()
}

fn open_der(der: &[u8], keys: &[postern_core::Credential]) -> Result<postern_core::Opened, Error> {
    let policy = Policy::default();
    let mail = pkcs7_mime_message(der, "enveloped-data");
    postern_tests::smime_open_both(&mail, &OpenRequest::new(keys, &policy))
}

#[test]
fn wrong_key_is_not_for_us() {
    let pki = Pki::new();
    let (sealed, _) = seal_for(&pki, ContentCipher::Aes256Cbc);
    let other = pki.issue("other@partner.example", KeyKind::Rsa(2048));
    let e = open_der(&der_of(&sealed), &[other.credential()]).unwrap_err();
    assert!(matches!(e, Error::NotForUs(_)), "{e}");
    assert_eq!(e.smtp_reply().code, 554);
}

/// Byte offset of the last occurrence of `needle` in `hay`.
fn rfind(hay: &[u8], needle: &[u8]) -> usize {
    hay.windows(needle.len())
        .rposition(|w| w == needle)
        .unwrap()
}

#[test]
fn tampered_ciphertext_and_tags_fail_without_detail() {
    let pki = Pki::new();
    for cipher in [ContentCipher::Aes256Cbc, ContentCipher::Aes256Gcm] {
        let (sealed, ee) = seal_for(&pki, cipher);
        let der = der_of(&sealed);
        // Last byte: the GCM tag (mac is the last field) or the last CBC block (padding).
        let mut t = der.clone();
        let n = t.len() - 1;
        t[n] ^= 0x01;
        let e = open_der(&t, &[ee.credential()]).unwrap_err();
        assert!(matches!(e, Error::DecryptionFailed), "{cipher}: {e}");
        // A byte in the middle of the ciphertext.
        let mut t = der.clone();
        let mid = der.len() - 300;
        t[mid] ^= 0x80;
        let r = open_der(&t, &[ee.credential()]);
        match cipher {
            ContentCipher::Aes256Gcm => assert!(matches!(r, Err(Error::DecryptionFailed))),
            // CBC without a MAC may "decrypt" a flipped block into garbage: the inner text differs.
            _ => assert!(r.is_err() || r.unwrap().message != sample_message(1)),
        }
    }
}

#[test]
fn tampered_encrypted_key_fails_like_a_tampered_ciphertext() {
    // RFC 3218 §2.3.2: a bad PKCS#1 v1.5 block yields a random key, so the failure is the same
    // DecryptionFailed as any other and comes from the content, not the RSA step.
    let pki = Pki::new();
    let (sealed, ee) = seal_for(&pki, ContentCipher::Aes256Cbc);
    let der = der_of(&sealed);
    // The encrypted key is the 256-byte OCTET STRING after the rsaEncryption AlgorithmIdentifier.
    let alg = [
        0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01, 0x05, 0x00,
    ];
    let start = rfind(&der, &alg) + alg.len() + 4;
    // Each flip gives a random content key; with CBC about one in 256 of those passes the
    // padding check, so 512 flips would let a couple through if the decrypted content were
    // not also required to begin like a MIME entity.
    for bit in 0..512 {
        let mut t = der.clone();
        t[start + bit / 8] ^= 1 << (bit % 8);
        let e = open_der(&t, &[ee.credential()]).unwrap_err();
        assert!(matches!(e, Error::DecryptionFailed), "bit {bit}: {e}");
    }
}

#[test]
fn truncated_and_garbage_der_are_malformed() {
    let pki = Pki::new();
    let (sealed, ee) = seal_for(&pki, ContentCipher::Aes256Cbc);
    let der = der_of(&sealed);
    for cut in [0, 1, 2, 10, der.len() / 2, der.len() - 1] {
        let e = open_der(&der[..cut], &[ee.credential()]).unwrap_err();
        assert!(!e.is_temporary(), "{e}");
    }
    let e = open_der(b"\x30\x84\x7f\xff\xff\xff garbage", &[ee.credential()]).unwrap_err();
    assert!(matches!(e, Error::MalformedData { .. }), "{e}");
    // A body that is not base64 at all.
    let mail = b"From: x@y.example\r\nContent-Type: application/pkcs7-mime; smime-type=enveloped-data\r\nContent-Transfer-Encoding: base64\r\n\r\n!!!! not base64 ####\r\n";
    let view = MessageView::parse(mail).unwrap();
    let e = SmimeEnvelope::new()
        .open_sync(
            &view,
            &OpenRequest::new(&[ee.credential()], &Policy::default()),
        )
        .unwrap_err();
    assert!(!e.is_temporary(), "{e}");
}

#[test]
fn nesting_is_bounded() {
    // An opaque signed message whose content is itself the message, five times over.
    let pki = Pki::new();
    let me = pki.issue("gw@clinic.example", KeyKind::P256);
    let cred = me.credential();
    let policy = Policy::default();
    let mut msg = sample_message(1);
    for _ in 0..6 {
        let view = MessageView::parse(&msg).unwrap();
        let req = SealRequest::sign_only(&cred, false, &policy);
        // Header protection puts the whole message (with its S/MIME Content-Type) inside.
        let req = SealRequest {
            header_protection: true,
            ..req
        };
        msg = SmimeEnvelope::new().seal_sync(&view, &req).unwrap();
    }
    let view = MessageView::parse(&msg).unwrap();
    let e = SmimeEnvelope::new()
        .open_sync(&view, &OpenRequest::new(&[], &policy))
        .unwrap_err();
    assert!(e.to_string().contains("nested"), "{e}");
}

#[test]
fn unusable_recipient_keys_are_permanent_errors_naming_the_key() {
    let pki = Pki::new();
    let policy = Policy::default();
    let msg = sample_message(1);
    let view = MessageView::parse(&msg).unwrap();
    let smime = SmimeEnvelope::new();
    // Expired (validation time moved past the 2-day validity).
    let short = pki.issue_with(
        "short@partner.example",
        KeyKind::Rsa(2048),
        "keyEncipherment",
        "emailProtection",
        2,
    );
    let certs = vec![short.cert_pem()];
    let mut req = SealRequest::encrypt(&certs, &policy);
    req.now = SystemTime::now() + Duration::from_secs(5 * 86400);
    let e = smime.seal_sync(&view, &req).unwrap_err();
    assert!(
        matches!(&e, Error::NoUsableKey { recipient, reason } if recipient.contains("short@partner.example") && reason.contains("expired")),
        "{e}"
    );
    // Signing-only key usage.
    let signer_only = pki.issue_with(
        "sig@partner.example",
        KeyKind::Rsa(2048),
        "digitalSignature",
        "emailProtection",
        10,
    );
    let certs = vec![signer_only.cert_pem()];
    let e = smime
        .seal_sync(&view, &SealRequest::encrypt(&certs, &policy))
        .unwrap_err();
    assert!(
        matches!(&e, Error::NoUsableKey { reason, .. } if reason.contains("key usage")),
        "{e}"
    );
    // Wrong extended key usage.
    let tls = pki.issue_with(
        "tls@partner.example",
        KeyKind::Rsa(2048),
        "keyEncipherment",
        "serverAuth",
        10,
    );
    let certs = vec![tls.cert_pem()];
    let e = smime
        .seal_sync(&view, &SealRequest::encrypt(&certs, &policy))
        .unwrap_err();
    assert!(
        matches!(&e, Error::NoUsableKey { reason, .. } if reason.contains("emailProtection")),
        "{e}"
    );
    // RSA-1024.
    let weak = pki.issue("weak@partner.example", KeyKind::Rsa(1024));
    let certs = vec![weak.cert_pem()];
    let e = smime
        .seal_sync(&view, &SealRequest::encrypt(&certs, &policy))
        .unwrap_err();
    assert!(!e.is_temporary() && e.to_string().contains("1024"), "{e}");
    // One bad recipient among good ones fails the whole seal: never a silent skip.
    let good = pki.issue("good@partner.example", KeyKind::Rsa(2048));
    let certs = vec![good.cert_pem(), weak.cert_pem()];
    assert!(smime
        .seal_sync(&view, &SealRequest::encrypt(&certs, &policy))
        .is_err());
    // Garbage instead of a certificate.
    let certs = vec![b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n".to_vec()];
    assert!(smime
        .seal_sync(&view, &SealRequest::encrypt(&certs, &policy))
        .is_err());
}

#[test]
fn signer_trust_is_reported_not_assumed() {
    let pki = Pki::new();
    let other_pki = Pki::new();
    let policy = Policy::default();
    let signer = pki.issue("gw@partner.example", KeyKind::Rsa(2048));
    let cred = signer.credential();
    let msg = sample_message(1);
    let view = MessageView::parse(&msg).unwrap();
    let signed = SmimeEnvelope::new()
        .seal_sync(&view, &SealRequest::sign_only(&cred, true, &policy))
        .unwrap();
    let sv = MessageView::parse(&signed).unwrap();
    let open = |anchors: &[Vec<u8>], pinned: &[Vec<u8>]| {
        SmimeEnvelope::new()
            .open_sync(
                &sv,
                &OpenRequest::new(&[], &policy)
                    .with_trust_anchors(anchors)
                    .with_expected_signers(pinned),
            )
            .unwrap()
            .report
    };
    // Unknown CA: the signature verifies but is untrusted.
    let r = open(&[other_pki.ca_pem()], &[]);
    assert!(matches!(r.signatures[0].chain, ChainStatus::Untrusted(_)));
    assert_eq!(
        r.signature_verdict(),
        postern_core::SignatureVerdict::Untrusted
    );
    // No anchors at all: not checked, and not "valid".
    assert_eq!(
        open(&[], &[]).signature_verdict(),
        postern_core::SignatureVerdict::Untrusted
    );
    // Pinned partner certificate: trusted without a CA.
    let r = open(&[], &[signer.cert_pem()]);
    assert_eq!(r.signature_verdict(), postern_core::SignatureVerdict::Valid);
    // Pinned to someone else: untrusted.
    let someone = pki.issue("someone@partner.example", KeyKind::Rsa(2048));
    assert_eq!(
        open(&[], &[someone.cert_pem()]).signature_verdict(),
        postern_core::SignatureVerdict::Untrusted
    );
    // Signer certificate expired at validation time.
    let mut req = OpenRequest::new(&[], &policy);
    let anchors = vec![pki.ca_pem()];
    req = req.with_trust_anchors(&anchors);
    req.now = SystemTime::now() + Duration::from_secs(90 * 86400);
    let r = SmimeEnvelope::new().open_sync(&sv, &req).unwrap().report;
    assert!(
        matches!(&r.signatures[0].chain, ChainStatus::Untrusted(why) if why.contains("expired")),
        "{:?}",
        r.signatures[0].chain
    );
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn mutated_sealed_messages_never_panic(
        flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
        cut in any::<prop::sample::Index>(),
        truncate in any::<bool>(),
        gcm in any::<bool>(),
    ) {
        static CASES: std::sync::OnceLock<(Vec<u8>, Vec<u8>, postern_core::Credential, Pki)> = std::sync::OnceLock::new();
        let (cbc, gcm_der, cred, _pki) = CASES.get_or_init(|| {
            let pki = Pki::new();
            let (a, ee) = seal_for(&pki, ContentCipher::Aes256Cbc);
            let certs = vec![ee.cert_pem()];
            let policy = Policy::default();
            let msg = sample_message(1);
            let view = MessageView::parse(&msg).unwrap();
            let cred = ee.credential();
            let b = SmimeEnvelope::new()
                .seal_sync(&view, &SealRequest::encrypt(&certs, &policy).with_cipher(ContentCipher::Aes256Gcm).signed_by(&cred))
                .unwrap();
            (der_of(&a), der_of(&b), cred, pki)
        });
        let mut der = if gcm { gcm_der.clone() } else { cbc.clone() };
        for (i, v) in flips {
            let at = i.index(der.len());
            der[at] ^= v;
        }
        if truncate {
            der.truncate(cut.index(der.len() + 1));
        }
        let _ = open_der(&der, std::slice::from_ref(cred));
    }

    #[test]
    fn arbitrary_bodies_never_panic(body in proptest::collection::vec(any::<u8>(), 0..4096), signed in any::<bool>()) {
        let mail = if signed {
            let mut m = b"From: a@b.example\r\nContent-Type: multipart/signed; protocol=\"application/pkcs7-signature\"; boundary=x\r\n\r\n--x\r\n\r\nhi\r\n--x\r\nContent-Type: application/pkcs7-signature\r\n\r\n".to_vec();
            m.extend_from_slice(&body);
            m
        } else {
            pkcs7_mime_message(&body, "enveloped-data")
        };
        let _ = postern_tests::smime_open_both(&mail, &OpenRequest::new(&[], &Policy::default()));
    }
}
