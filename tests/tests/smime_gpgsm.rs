//! Interop with GnuPG's S/MIME tool, `gpgsm` (a second, independent CMS implementation).
//!
//! gpgsm 2.2 (Debian 12) supports RSA key transport with PKCS#1 v1.5 and AES-CBC content
//! encryption for `--encrypt`/`--decrypt`; ECDH, RSAES-OAEP and AES-GCM need GnuPG 2.3+, so
//! those choices are proven against OpenSSL only (smime_openssl.rs).
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is a failure report

use postern_core::{ContentCipher, MessageView, OpenRequest, Policy, SealRequest, SignatureStatus};
use postern_smime::SmimeEnvelope;
use postern_tests::{body_lf as body, lf, sample_message, Gpgsm, KeyKind, Pki};

#[test]
fn gpgsm_decrypts_what_we_seal() {
    let pki = Pki::new();
    let policy = Policy::default();
    let partner = pki.issue("gw@partner.example", KeyKind::Rsa(2048));
    let gpgsm = Gpgsm::new(&pki.ca_cert, Some(&partner), &pki);
    let msg = sample_message(3);
    let certs = vec![partner.cert_pem()];
    for cipher in [ContentCipher::Aes256Cbc, ContentCipher::Aes128Cbc] {
        let view = MessageView::parse(&msg).unwrap();
        let sealed = SmimeEnvelope::new()
            .seal_sync(
                &view,
                &SealRequest::encrypt(&certs, &policy).with_cipher(cipher),
            )
            .unwrap();
        // gpgsm reads the CMS object itself (base64 body of the pkcs7-mime part).
        let sealed_view = MessageView::parse(&sealed).unwrap();
        let der = sealed_view.root().decoded_body().to_vec();
        let out = gpgsm.decrypt(&der);
        assert_eq!(body(&out), body(&msg), "{cipher}");
    }
}

#[test]
fn we_open_what_gpgsm_encrypts() {
    let pki = Pki::new();
    let policy = Policy::default();
    let partner = pki.issue("gw@partner.example", KeyKind::Rsa(2048));
    let gpgsm = Gpgsm::new(&pki.ca_cert, None, &pki);
    gpgsm.ok(&["--import"], &partner.cert_pem());
    let msg = sample_message(2);
    let der = gpgsm.ok(&["--encrypt", "--recipient", &partner.email], &msg);
    let mail = postern_tests::pkcs7_mime_message(&der, "enveloped-data");
    let keys = vec![partner.credential()];
    let opened = postern_tests::smime_open_both(&mail, &OpenRequest::new(&keys, &policy)).unwrap();
    assert_eq!(body(&opened.message), body(&msg));
    assert!(opened.report.encryption.is_some());
}

#[test]
fn gpgsm_verifies_our_signatures_and_we_verify_gpgsm() {
    let pki = Pki::new();
    let policy = Policy::default();
    let me = pki.issue("gw@clinic.example", KeyKind::Rsa(2048));
    let gpgsm_signer = pki.issue("gw@partner.example", KeyKind::Rsa(2048));
    let gpgsm = Gpgsm::new(&pki.ca_cert, Some(&gpgsm_signer), &pki);
    let msg = sample_message(2);
    let cred = me.credential();

    // Ours, detached: gpgsm checks the signature over the exact first part.
    let view = MessageView::parse(&msg).unwrap();
    let sealed = SmimeEnvelope::new()
        .seal_sync(&view, &SealRequest::sign_only(&cred, true, &policy))
        .unwrap();
    let sv = MessageView::parse(&sealed).unwrap();
    let parts = sv.root().children();
    let signed_part = pki.file("signed-part", parts[0].raw());
    let sig = pki.file("sig.p7s", &parts[1].decoded_body());
    let out = postern_tests::run(gpgsm.cmd().arg("--verify").arg(&sig).arg(&signed_part), b"");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("Good signature"));
    // One byte changed: gpgsm says BAD.
    let mut bad = parts[0].raw().to_vec();
    let n = bad.len() - 5;
    bad[n] ^= 1;
    let bad_part = pki.file("bad-part", &bad);
    let out = postern_tests::run(gpgsm.cmd().arg("--verify").arg(&sig).arg(&bad_part), b"");
    assert!(!out.status.success());

    // Ours, opaque: gpgsm verifies and outputs the content.
    let sealed = SmimeEnvelope::new()
        .seal_sync(&view, &SealRequest::sign_only(&cred, false, &policy))
        .unwrap();
    let der = MessageView::parse(&sealed)
        .unwrap()
        .root()
        .decoded_body()
        .to_vec();
    let content = gpgsm.ok(&["--verify", "--output", "-"], &der);
    // The signed entity is the original body made 7-bit safe: 8-bit text became base64.
    let content = String::from_utf8(content).unwrap();
    let (head, b64) = content.split_once("\r\n\r\n").unwrap();
    assert!(head.contains("Content-Transfer-Encoding: base64"), "{head}");
    assert_eq!(
        lf(&postern_tests::base64_decode(b64)),
        body(&msg),
        "gpgsm's verified content is our message body"
    );

    // Theirs: a detached gpgsm signature over a MIME entity, assembled as multipart/signed.
    let entity =
        b"Content-Type: text/plain; charset=us-ascii\r\n\r\nReferral accepted; see you Monday.\r\n";
    let sig = gpgsm.with_key(
        &["--detach-sign", "--local-user", &gpgsm_signer.email],
        entity,
    );
    let mut mail = b"From: gw@partner.example\r\nTo: gw@clinic.example\r\nSubject: referral\r\nMIME-Version: 1.0\r\nContent-Type: multipart/signed; protocol=\"application/pkcs7-signature\"; micalg=sha-256; boundary=\"b1\"\r\n\r\n--b1\r\n".to_vec();
    mail.extend_from_slice(entity);
    mail.extend_from_slice(b"\r\n--b1\r\nContent-Type: application/pkcs7-signature\r\nContent-Transfer-Encoding: base64\r\n\r\n");
    mail.extend_from_slice(postern_tests::base64_encode(&sig).as_bytes());
    mail.extend_from_slice(b"\r\n--b1--\r\n");
    let anchors = vec![pki.ca_pem()];
    let view = MessageView::parse(&mail).unwrap();
    let opened = SmimeEnvelope::new()
        .open_sync(
            &view,
            &OpenRequest::new(&[], &policy).with_trust_anchors(&anchors),
        )
        .unwrap();
    assert_eq!(opened.report.signatures[0].status, SignatureStatus::Valid);
    assert_eq!(
        opened.report.signature_verdict(),
        postern_core::SignatureVerdict::Valid
    );
    assert_eq!(
        opened.report.signatures[0].signer.as_deref(),
        Some("gw@partner.example")
    );
    // Theirs, opaque (gpgsm --sign): the content travels inside the CMS object.
    let opaque = gpgsm.with_key(&["--sign", "--local-user", &gpgsm_signer.email], entity);
    let opaque_mail = postern_tests::pkcs7_mime_message(&opaque, "signed-data");
    let view = MessageView::parse(&opaque_mail).unwrap();
    let opened = SmimeEnvelope::new()
        .open_sync(
            &view,
            &OpenRequest::new(&[], &policy).with_trust_anchors(&anchors),
        )
        .unwrap();
    assert_eq!(
        opened.report.signature_verdict(),
        postern_core::SignatureVerdict::Valid,
        "{:?}",
        opened.report.signatures
    );
    assert!(String::from_utf8_lossy(&opened.message).contains("Referral accepted; see you Monday."));
    // Tampered: invalid.
    let tampered = String::from_utf8(mail).unwrap().replace("Monday", "Friday");
    let view = MessageView::parse(tampered.as_bytes()).unwrap();
    let opened = SmimeEnvelope::new()
        .open_sync(
            &view,
            &OpenRequest::new(&[], &policy).with_trust_anchors(&anchors),
        )
        .unwrap();
    assert_eq!(
        opened.report.signature_verdict(),
        postern_core::SignatureVerdict::Invalid
    );
}
