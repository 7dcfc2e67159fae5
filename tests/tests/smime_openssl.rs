//! Interop with OpenSSL's `openssl cms`: it reads what we seal and sign, we read what it makes.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is a failure report

use std::process::Command;

use postern_core::{
    ChainStatus, ContentCipher, MessageView, OpenRequest, Policy, SealRequest, SignRequest,
    SignatureStatus,
};
use postern_smime::{KeyTransport, RsaSignatureScheme, SmimeEnvelope};
use postern_tests::{backends, body_lf as body, lf, run, run_ok, sample_message, KeyKind, Pki};

fn openssl() -> Command {
    Command::new("openssl")
}

fn seal(backend: &SmimeEnvelope, msg: &[u8], req: &SealRequest<'_>) -> Vec<u8> {
    let view = MessageView::parse(msg).unwrap();
    backend.seal_sync(&view, req).unwrap()
}

/// `open_owned_sync` of `sealed` gives what the borrowing open gave: message and report.
fn same_when_owned(
    sealed: &[u8],
    keys: &[postern_core::Credential],
    anchors: &[Vec<u8>],
    opened: &postern_core::Opened,
) {
    let policy = Policy::default();
    let owned = SmimeEnvelope::new()
        .open_owned_sync(
            sealed.to_vec(),
            &OpenRequest::new(keys, &policy).with_trust_anchors(anchors),
        )
        .unwrap();
    assert_eq!(owned.message, opened.message);
    assert_eq!(
        format!("{:?}", owned.report),
        format!("{:?}", opened.report)
    );
}

#[test]
fn openssl_decrypts_every_cipher_and_key_transport_we_seal() {
    let pki = Pki::new();
    let policy = Policy::default();
    let msg = sample_message(4);
    let rsa = pki.issue("records@partner.example", KeyKind::Rsa(2048));
    let ec = pki.issue("ec@partner.example", KeyKind::P256);
    for ee in [&rsa, &ec] {
        let certs = vec![ee.cert_pem()];
        for cipher in [
            ContentCipher::Aes256Cbc,
            ContentCipher::Aes128Cbc,
            ContentCipher::Aes256Gcm,
            ContentCipher::Aes128Gcm,
        ] {
            for kt in [KeyTransport::RsaPkcs1v15, KeyTransport::RsaOaepSha256] {
                let backend = SmimeEnvelope::new().with_key_transport(kt);
                let req = SealRequest::encrypt(&certs, &policy).with_cipher(cipher);
                let sealed = seal(&backend, &msg, &req);
                let text = String::from_utf8_lossy(&sealed);
                let want = if cipher.is_aead() {
                    "authEnveloped-data"
                } else {
                    "enveloped-data"
                };
                assert!(text.contains(&format!("smime-type={want}")), "{cipher}");
                // The routing headers stay outside; the internal one does not leak.
                assert!(text.contains("To: Records <records@partner.example>"));
                assert!(!text.contains("X-Internal-Route"));
                // Sealed into a writer (streamed, as the CLI and a spool writer do) too.
                let mut streamed = Vec::new();
                backend
                    .seal_to(&MessageView::parse(&msg).unwrap(), &req, &mut streamed)
                    .unwrap();
                for sealed in [&sealed, &streamed] {
                    let out = ee.openssl_decrypt(sealed);
                    assert_eq!(body(&out), body(&msg), "{cipher} {kt:?} {:?}", ee.email);
                    assert!(
                        lf(&out).starts_with(b"From: Dr. Ada Sender"),
                        "inner headers kept"
                    );
                }
            }
        }
    }
}

#[test]
fn openssl_decrypts_one_message_for_several_recipients() {
    let pki = Pki::new();
    let policy = Policy::default();
    let a = pki.issue("a@partner.example", KeyKind::Rsa(2048));
    let b = pki.issue("b@partner.example", KeyKind::P256);
    let c = pki.issue("c@partner.example", KeyKind::Rsa(3072));
    let certs = vec![a.cert_pem(), b.cert_pem(), c.cert_pem()];
    let msg = sample_message(1);
    let sealed = seal(
        &SmimeEnvelope::new(),
        &msg,
        &SealRequest::encrypt(&certs, &policy),
    );
    for ee in [&a, &b, &c] {
        let out = ee.openssl_decrypt(&sealed);
        assert_eq!(body(&out), body(&msg));
    }
}

#[test]
fn we_open_what_openssl_encrypts() {
    let pki = Pki::new();
    let policy = Policy::default();
    let msg = sample_message(2);
    let rsa = pki.issue("bob@partner.example", KeyKind::Rsa(2048));
    let ec = pki.issue("ec@partner.example", KeyKind::P256);
    let cases: &[(&postern_tests::EndEntity, &[&str], &str)] = &[
        (&rsa, &["-aes-256-cbc"], "aes256-cbc"),
        (&rsa, &["-aes-128-cbc"], "aes128-cbc"),
        (&rsa, &["-aes-256-gcm"], "aes256-gcm"),
        (&rsa, &["-aes-256-cbc", "-stream"], "aes256-cbc"),
        (&ec, &["-aes-256-cbc"], "aes256-cbc"),
        (&ec, &["-aes-128-gcm"], "aes128-gcm"),
    ];
    for (ee, opts, cipher) in cases {
        let sealed = run_ok(
            openssl()
                .args(["cms", "-encrypt"])
                .args(*opts)
                .arg(&ee.cert),
            &msg,
        );
        let view = MessageView::parse(&sealed).unwrap();
        let keys = vec![ee.credential()];
        let opened = SmimeEnvelope::new()
            .open_sync(&view, &OpenRequest::new(&keys, &policy))
            .unwrap();
        assert_eq!(body(&opened.message), body(&msg), "{opts:?}");
        let enc = opened.report.encryption.clone().unwrap();
        assert_eq!(enc.cipher.name(), *cipher);
        assert_eq!(
            opened.report.signature_verdict(),
            postern_core::SignatureVerdict::Absent
        );
        // Handed over, it is decoded and decrypted in its own buffer (DER definite lengths),
        // or decoded whole first (-stream's BER): the same result either way.
        same_when_owned(&sealed, &keys, &[], &opened);
    }
    // RSAES-OAEP with SHA-256 and with OpenSSL's default SHA-1.
    for md in [&["-keyopt", "rsa_oaep_md:sha256"][..], &[][..]] {
        let sealed = run_ok(
            openssl()
                .args(["cms", "-encrypt", "-aes-256-cbc", "-recip"])
                .arg(&rsa.cert)
                .args(["-keyopt", "rsa_padding_mode:oaep"])
                .args(md),
            &msg,
        );
        let view = MessageView::parse(&sealed).unwrap();
        let keys = vec![rsa.credential()];
        let opened = SmimeEnvelope::new()
            .open_sync(&view, &OpenRequest::new(&keys, &policy))
            .unwrap();
        assert_eq!(
            opened.report.encryption.unwrap().key_management,
            "rsaes-oaep"
        );
        assert_eq!(body(&opened.message), body(&msg));
    }
}

#[test]
fn openssl_verifies_our_signatures_detached_and_opaque() {
    let pki = Pki::new();
    let policy = Policy::default();
    let msg = sample_message(3);
    for (kind, scheme) in [
        (KeyKind::Rsa(2048), RsaSignatureScheme::Pkcs1Sha256),
        (KeyKind::Rsa(2048), RsaSignatureScheme::PssSha256),
        (KeyKind::P256, RsaSignatureScheme::Pkcs1Sha256),
    ] {
        let me = pki.issue("gw@clinic.example", kind);
        let cred = me.credential();
        let backend = SmimeEnvelope::new().with_rsa_signature(scheme);
        for detached in [true, false] {
            let sealed = seal(
                &backend,
                &msg,
                &SealRequest::sign_only(&cred, detached, &policy),
            );
            let ok = run_ok(
                openssl()
                    .args(["cms", "-verify", "-CAfile"])
                    .arg(&pki.ca_cert)
                    .args(["-purpose", "smimesign"]),
                &sealed,
            );
            // What OpenSSL verified is the content we signed: the original body, 7-bit safe.
            assert!(String::from_utf8_lossy(&ok).contains("Content-Transfer-Encoding: base64"));
            // A one-byte change in the signed content must fail OpenSSL's verification.
            let tampered = tamper_signed_content(&sealed, detached);
            let out = run(
                openssl()
                    .args(["cms", "-verify", "-CAfile"])
                    .arg(&pki.ca_cert),
                &tampered,
            );
            assert!(
                !out.status.success(),
                "{kind:?} {scheme:?} detached={detached}"
            );
        }
    }
}

#[test]
fn a_body_without_final_newline_is_signed_exactly() {
    let pki = Pki::new();
    let policy = Policy::default();
    let me = pki.issue("gw@clinic.example", KeyKind::Rsa(2048));
    let cred = me.credential();
    let msg = b"From: a@clinic.example\r\nTo: b@partner.example\r\nSubject: short\r\n\r\nno final newline";
    let sealed = seal(
        &SmimeEnvelope::new(),
        msg,
        &SealRequest::sign_only(&cred, true, &policy),
    );
    let ok = run_ok(
        openssl()
            .args(["cms", "-verify", "-CAfile"])
            .arg(&pki.ca_cert),
        &sealed,
    );
    assert!(String::from_utf8_lossy(&ok).ends_with("\r\n\r\nno final newline"));
}

/// Flips one byte of the signed content: inside the first body part (detached) or inside the
/// base64 of the opaque object (which changes the encapsulated content or the signature).
fn tamper_signed_content(sealed: &[u8], detached: bool) -> Vec<u8> {
    let mut t = sealed.to_vec();
    let s = String::from_utf8_lossy(sealed);
    let pos = if detached {
        s.find("Content-Transfer-Encoding: base64\r\n\r\n").unwrap() + 40
    } else {
        s.find("\r\n\r\n").unwrap() + 200
    };
    t[pos] = if t[pos] == b'A' { b'B' } else { b'A' };
    t
}

#[test]
fn we_verify_openssl_signatures_and_detect_tampering() {
    let pki = Pki::new();
    let policy = Policy::default();
    let msg = sample_message(2);
    let anchors = vec![pki.ca_pem()];
    for (kind, opts) in [
        (KeyKind::Rsa(2048), &[][..]),
        (KeyKind::Rsa(2048), &["-nodetach"][..]),
        (KeyKind::Rsa(2048), &["-keyopt", "rsa_padding_mode:pss"][..]),
        (KeyKind::P256, &[][..]),
        (KeyKind::P256, &["-nodetach"][..]),
    ] {
        let signer = pki.issue("partner-gw@partner.example", kind);
        let signed = run_ok(
            openssl()
                .args(["cms", "-sign", "-signer"])
                .arg(&signer.cert)
                .arg("-inkey")
                .arg(&signer.key)
                .args(opts),
            &msg,
        );
        let view = MessageView::parse(&signed).unwrap();
        let req = OpenRequest::new(&[], &policy).with_trust_anchors(&anchors);
        let opened = SmimeEnvelope::new().open_sync(&view, &req).unwrap();
        let sig = &opened.report.signatures[0];
        assert_eq!(sig.status, SignatureStatus::Valid, "{kind:?} {opts:?}");
        assert!(
            matches!(sig.chain, ChainStatus::Trusted { .. }),
            "{:?}",
            sig.chain
        );
        assert_eq!(sig.signer.as_deref(), Some("partner-gw@partner.example"));
        assert!(sig.signing_time.is_some());
        assert_eq!(
            opened.report.signature_verdict(),
            postern_core::SignatureVerdict::Valid
        );
        assert_eq!(body(&opened.message), body(&msg));

        // One changed byte in the detached content gives a clear "invalid" verdict.
        if !opts.contains(&"-nodetach") {
            let s = String::from_utf8_lossy(&signed).into_owned();
            let tampered = s.replacen("Potassium 4.1", "Potassium 9.1", 1);
            let view = MessageView::parse(tampered.as_bytes()).unwrap();
            let opened = SmimeEnvelope::new().open_sync(&view, &req).unwrap();
            let sig = &opened.report.signatures[0];
            assert!(
                matches!(&sig.status, SignatureStatus::Invalid(why) if why.contains("altered")),
                "{:?}",
                sig.status
            );
            assert_eq!(
                opened.report.signature_verdict(),
                postern_core::SignatureVerdict::Invalid
            );
        }
    }
}

#[test]
fn sign_then_encrypt_reads_in_openssl_and_back() {
    let pki = Pki::new();
    let policy = Policy::default();
    let me = pki.issue("gw@clinic.example", KeyKind::Rsa(2048));
    let partner = pki.issue("gw@partner.example", KeyKind::Rsa(2048));
    let certs = vec![partner.cert_pem()];
    let cred = me.credential();
    let msg = sample_message(2);
    let req = SealRequest::encrypt(&certs, &policy)
        .signed_by(&cred)
        .with_header_protection(true);
    let sealed = seal(&SmimeEnvelope::new(), &msg, &req);
    let text = String::from_utf8_lossy(&sealed);
    assert!(text.contains("Subject: [...]\r\n") && !text.contains("Lab results"));
    // OpenSSL: decrypt, then verify the inner signed object against our CA.
    let inner = partner.openssl_decrypt(&sealed);
    let verified = run_ok(
        openssl()
            .args(["cms", "-verify", "-CAfile"])
            .arg(&pki.ca_cert),
        &inner,
    );
    let verified = String::from_utf8_lossy(&verified);
    assert!(
        verified.contains("Subject: Lab results for follow-up"),
        "protected subject inside"
    );
    assert!(verified.contains("hp=\"cipher\""));
    // And we open it back: real subject restored, signature valid.
    let keys = vec![partner.credential()];
    let anchors = vec![pki.ca_pem()];
    let view = MessageView::parse(&sealed).unwrap();
    let opened = SmimeEnvelope::new()
        .open_sync(
            &view,
            &OpenRequest::new(&keys, &policy).with_trust_anchors(&anchors),
        )
        .unwrap();
    let m = String::from_utf8_lossy(&opened.message);
    assert!(
        m.contains("Subject: Lab results for follow-up\r\n") && !m.contains("[...]"),
        "{m}"
    );
    assert_eq!(
        opened.report.signature_verdict(),
        postern_core::SignatureVerdict::Valid
    );
    same_when_owned(&sealed, &keys, &anchors, &opened);
    assert_eq!(
        opened.report.encryption.unwrap().cipher,
        ContentCipher::Aes256Cbc
    );
}

#[test]
fn the_async_trait_is_the_same_operation() {
    use postern_core::SecureEnvelope;
    let pki = Pki::new();
    let policy = Policy::default();
    let ee = pki.issue("gw@partner.example", KeyKind::Rsa(2048));
    let certs = vec![ee.cert_pem()];
    let msg = sample_message(1);
    let backend: Box<dyn SecureEnvelope> = Box::new(SmimeEnvelope::new());
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let view = MessageView::parse(&msg).unwrap();
    let sealed = rt
        .block_on(backend.seal(&view, &SealRequest::encrypt(&certs, &policy)))
        .unwrap();
    let sealed_view = MessageView::parse(&sealed).unwrap();
    assert!(backend.recognises(&sealed_view));
    assert!(!backend.recognises(&view));
    let keys = vec![ee.credential()];
    let opened = rt
        .block_on(backend.open(&sealed_view, &OpenRequest::new(&keys, &policy)))
        .unwrap();
    assert_eq!(body(&opened.message), body(&msg));
    let _ = SignRequest {
        credential: &keys[0],
        detached: true,
    };
}

/// Issue 14.12: PEM as people have it (RFC 7468 §2: parsers ignore the text around blocks).
/// `openssl x509 -text` puts a text dump before the certificate; `openssl pkcs12 -nodes`
/// writes `Bag Attributes` lines before the key and the certificate in one file; files come
/// with CRLF and 76-column lines, and a chain holds several certificates. Each is used to
/// seal (OpenSSL decrypts) and to open (what OpenSSL encrypted).
#[test]
fn pem_with_surrounding_text_crlf_long_lines_and_chains_is_read() {
    use postern_core::{Credential, Standard};
    let pki = Pki::new();
    let policy = Policy::default();
    let ee = pki.issue("bob@partner.example", KeyKind::Rsa(2048));
    let cert = ee.cert_pem();
    let key = std::fs::read(&ee.key).unwrap();
    let text_dump = run_ok(openssl().args(["x509", "-text", "-in"]).arg(&ee.cert), b"");
    assert!(!text_dump.starts_with(b"-----BEGIN"), "a dump comes first");
    let p12 = run_ok(
        openssl()
            .args(["pkcs12", "-export", "-passout", "pass:x", "-inkey"])
            .arg(&ee.key)
            .arg("-in")
            .arg(&ee.cert),
        b"",
    );
    let nodes = run_ok(
        openssl().args(["pkcs12", "-nodes", "-passin", "pass:x"]),
        &p12,
    );
    assert!(String::from_utf8_lossy(&nodes).contains("Bag Attributes"));
    let rewrap = |pem: &[u8], width: usize| -> Vec<u8> {
        let text = String::from_utf8_lossy(pem);
        let mut out = String::new();
        let mut b64 = String::new();
        for line in text.lines() {
            if line.starts_with("-----BEGIN") {
                out.push_str(line);
                out.push_str("\r\n");
            } else if line.starts_with("-----END") {
                for chunk in b64.as_bytes().chunks(width) {
                    out.push_str(std::str::from_utf8(chunk).unwrap());
                    out.push_str(" \r\n");
                }
                b64.clear();
                out.push_str(line);
                out.push_str("\r\n");
            } else {
                b64.push_str(line.trim());
            }
        }
        out.into_bytes()
    };
    let chain = [cert.clone(), pki.ca_pem()].concat();
    let msg = sample_message(1);
    let backend = SmimeEnvelope::new();
    for (name, c) in [
        ("text dump", text_dump.clone()),
        ("pkcs12 -nodes", nodes.clone()),
        ("CRLF, 76 columns", rewrap(&cert, 76)),
        ("chain", chain),
    ] {
        let certs = vec![c];
        let sealed = seal(&backend, &msg, &SealRequest::encrypt(&certs, &policy));
        assert_eq!(body(&ee.openssl_decrypt(&sealed)), body(&msg), "{name}");
    }
    let by_openssl = run_ok(
        openssl()
            .args(["cms", "-encrypt", "-aes256", "-recip"])
            .arg(&ee.cert),
        &msg,
    );
    let view = MessageView::parse(&by_openssl).unwrap();
    for (name, c, k) in [
        ("pkcs12 -nodes", nodes.clone(), nodes.clone()),
        ("key with CRLF, 76 columns", text_dump, rewrap(&key, 76)),
    ] {
        let keys = [Credential::with_secret(Standard::Smime, c, k)];
        let opened = backend
            .open_sync(&view, &OpenRequest::new(&keys, &policy))
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(body(&opened.message), body(&msg), "{name}");
    }
}

/// A minimal definite-length DER tree, to make the BER that other peers write out of what
/// OpenSSL writes (test-only: it trusts its input).
mod tree {
    #[derive(Clone, Debug)]
    pub struct Node {
        pub tag: u8,
        pub content: Vec<u8>,
        pub kids: Vec<Node>,
    }

    pub fn parse(b: &[u8]) -> (Node, usize) {
        let tag = b[0];
        let (len, hdr) = match b[1] {
            n if n < 0x80 => (n as usize, 2),
            n => {
                let c = (n & 0x7f) as usize;
                let mut v = 0usize;
                for d in &b[2..2 + c] {
                    v = v * 256 + *d as usize;
                }
                (v, 2 + c)
            }
        };
        let content = b[hdr..hdr + len].to_vec();
        let mut kids = Vec::new();
        if tag & 0x20 != 0 {
            let mut p = 0;
            while p < content.len() {
                let (k, used) = parse(&content[p..]);
                kids.push(k);
                p += used;
            }
        }
        (Node { tag, content, kids }, hdr + len)
    }

    pub fn encode(n: &Node) -> Vec<u8> {
        let content = if n.tag & 0x20 != 0 {
            n.kids.iter().flat_map(encode).collect()
        } else {
            n.content.clone()
        };
        let mut out = vec![n.tag];
        if content.len() < 0x80 {
            out.push(content.len() as u8);
        } else {
            let b = content.len().to_be_bytes();
            let skip = b.iter().take_while(|x| **x == 0).count();
            out.push(0x80 | (8 - skip) as u8);
            out.extend_from_slice(&b[skip..]);
        }
        out.extend(content);
        out
    }
}

/// Issue 14.13: CMS encodings other peers write, which OpenSSL accepts and so must we.
/// (1) Signed attributes not in DER order (a SET OF unsorted; OpenSSL hashes them as
/// received): made by reordering OpenSSL's and signing again with `openssl dgst -sign`.
/// (2) The encrypted content as a definite-length constructed OCTET STRING in chunks, as
/// Bouncy Castle writes it.
#[test]
fn unsorted_signed_attributes_and_chunked_encrypted_content_are_read() {
    let pki = Pki::new();
    let policy = Policy::default();
    let alice = pki.issue("alice@partner.example", KeyKind::Rsa(2048));
    let bob = pki.issue("bob@clinic.example", KeyKind::Rsa(2048));
    let entity = b"Content-Type: text/plain\r\n\r\nSigned by a peer that does not sort.\r\n";

    // (1) OpenSSL signs; we reverse the signed attributes and sign those bytes again.
    let der = run_ok(
        openssl()
            .args([
                "cms",
                "-sign",
                "-nodetach",
                "-binary",
                "-outform",
                "DER",
                "-signer",
            ])
            .arg(&alice.cert)
            .arg("-inkey")
            .arg(&alice.key),
        entity,
    );
    let (mut ci, _) = tree::parse(&der);
    let sd = &mut ci.kids[1].kids[0];
    let infos = sd.kids.last_mut().unwrap();
    let si = &mut infos.kids[0];
    let at = si.kids.iter().position(|k| k.tag == 0xa0).unwrap();
    si.kids[at].kids.reverse();
    let mut attrs = si.kids[at].clone();
    attrs.tag = 0x31;
    let to_sign = tree::encode(&attrs);
    let sig = run_ok(
        openssl().args(["dgst", "-sha256", "-sign"]).arg(&alice.key),
        &to_sign,
    );
    let last = si.kids.len() - 1;
    si.kids[last].content = sig;
    let unsorted = tree::encode(&ci);
    assert_ne!(unsorted, der);
    let ca = pki.file("ca.pem", &pki.ca_pem());
    let by_openssl = run(
        openssl()
            .args(["cms", "-verify", "-inform", "DER", "-binary", "-CAfile"])
            .arg(&ca),
        &unsorted,
    );
    assert!(
        by_openssl.status.success(),
        "OpenSSL accepts it: {}",
        String::from_utf8_lossy(&by_openssl.stderr)
    );
    let msg = postern_tests::pkcs7_mime_message(&unsorted, "signed-data");
    let anchors = vec![pki.ca_pem()];
    let opened = SmimeEnvelope::new()
        .open_sync(
            &MessageView::parse(&msg).unwrap(),
            &OpenRequest::new(&[], &policy).with_trust_anchors(&anchors),
        )
        .unwrap();
    assert_eq!(
        opened.report.signatures[0].status,
        SignatureStatus::Valid,
        "{:?}",
        opened.report
    );

    // (2) OpenSSL encrypts; the encrypted content becomes three chunks of a constructed
    // OCTET STRING with a definite length.
    let der = run_ok(
        openssl()
            .args([
                "cms",
                "-encrypt",
                "-aes-256-cbc",
                "-binary",
                "-outform",
                "DER",
            ])
            .arg(&bob.cert),
        entity,
    );
    let (mut ci, _) = tree::parse(&der);
    let ed = &mut ci.kids[1].kids[0];
    let eci = ed.kids.iter_mut().find(|k| k.tag == 0x30).unwrap();
    let content = eci.kids.iter_mut().find(|k| k.tag == 0x80).unwrap();
    let data = content.content.clone();
    let third = data.len() / 3;
    content.tag = 0xa0;
    content.kids = [&data[..third], &data[third..2 * third], &data[2 * third..]]
        .iter()
        .map(|c| tree::Node {
            tag: 0x04,
            content: c.to_vec(),
            kids: Vec::new(),
        })
        .collect();
    let chunked = tree::encode(&ci);
    let key = pki.file("bob.key", &std::fs::read(&bob.key).unwrap());
    let by_openssl = run(
        openssl()
            .args(["cms", "-decrypt", "-inform", "DER", "-inkey"])
            .arg(&key),
        &chunked,
    );
    assert!(
        by_openssl.status.success(),
        "OpenSSL reads it: {}",
        String::from_utf8_lossy(&by_openssl.stderr)
    );
    let msg = postern_tests::pkcs7_mime_message(&chunked, "enveloped-data");
    let keys = [bob.credential()];
    let opened = SmimeEnvelope::new()
        .open_sync(
            &MessageView::parse(&msg).unwrap(),
            &OpenRequest::new(&keys, &policy),
        )
        .unwrap();
    assert!(String::from_utf8_lossy(&opened.message).contains("does not sort"));
}

/// Name constraints, path length and unknown critical extensions in an intermediate CA: a
/// signer OpenSSL refuses is not `trusted` for us either, and one it accepts is.
#[test]
fn path_validation_agrees_with_openssl_on_constrained_intermediates() {
    let root = Pki::new();
    let policy = Policy::default();
    let msg = sample_message(1);
    let anchors = vec![root.ca_pem()];
    let cases: [(&str, bool, &str); 6] = [
        (
            "nameConstraints=critical,permitted;email:partner.example",
            true,
            "",
        ),
        (
            "nameConstraints=critical,permitted;email:.partner.example",
            false,
            "name constraints",
        ),
        (
            "nameConstraints=critical,excluded;email:partner.example",
            false,
            "excluded subtree",
        ),
        (
            "nameConstraints=critical,permitted;email:other.example",
            false,
            "not permitted",
        ),
        (
            "1.3.6.1.4.1.55555.1=critical,ASN1:NULL",
            false,
            "unknown critical extension",
        ),
        (
            "basicConstraints=critical,CA:TRUE,pathlen:0",
            false,
            "allows 0 intermediates",
        ),
    ];
    for (extra, accepted, why) in cases {
        // The pathlen case puts a second CA below the constrained one.
        let int = root.subordinate("Partner Issuing CA", extra);
        let (issuer, chain) = if extra.starts_with("basicConstraints") {
            let below = int.subordinate("Partner Sub CA", "");
            let mut chain = std::fs::read(&int.ca_cert).unwrap();
            chain.extend(std::fs::read(&below.ca_cert).unwrap());
            (below, chain)
        } else {
            let chain = std::fs::read(&int.ca_cert).unwrap();
            (int, chain)
        };
        let chain_file = root.file("chain.pem", &chain);
        let signer = issuer.issue("alice@partner.example", KeyKind::Rsa(2048));
        let signed = run_ok(
            openssl()
                .args(["cms", "-sign", "-signer"])
                .arg(&signer.cert)
                .arg("-inkey")
                .arg(&signer.key)
                .arg("-certfile")
                .arg(&chain_file),
            &msg,
        );
        let theirs = run(
            openssl()
                .args(["cms", "-verify", "-out", "/dev/null", "-CAfile"])
                .arg(&root.ca_cert),
            &signed,
        );
        assert_eq!(
            theirs.status.success(),
            accepted,
            "OpenSSL on {extra}: {}",
            String::from_utf8_lossy(&theirs.stderr)
        );
        let view = MessageView::parse(&signed).unwrap();
        let req = OpenRequest::new(&[], &policy).with_trust_anchors(&anchors);
        let opened = SmimeEnvelope::new().open_sync(&view, &req).unwrap();
        let sig = &opened.report.signatures[0];
        match &sig.chain {
            ChainStatus::Trusted { .. } => assert!(accepted, "trusted under {extra}"),
            ChainStatus::Untrusted(reason) => {
                assert!(!accepted, "refused under {extra}: {reason}");
                assert!(reason.contains(why), "{extra}: {reason}");
            }
            other => panic!("{extra}: {other:?}"),
        }
    }
}

/// Trust anchors from PKCS#7 bundles as OpenSSL writes them (`crl2pkcs7`, PEM and DER), and
/// from a signed bundle (a SignedData whose content is the bundle, as trust communities
/// publish them): the inner anchors count, the publisher's own certificate does not.
#[test]
fn trust_anchors_are_read_from_pkcs7_bundles() {
    let pki = Pki::new();
    let publisher = Pki::new();
    let policy = Policy::default();
    let msg = sample_message(1);
    let signer = pki.issue("partner-gw@partner.example", KeyKind::Rsa(2048));
    let signed = run_ok(
        openssl()
            .args(["cms", "-sign", "-signer"])
            .arg(&signer.cert)
            .arg("-inkey")
            .arg(&signer.key),
        &msg,
    );
    let bundle = |form: &str| {
        run_ok(
            openssl()
                .args(["crl2pkcs7", "-nocrl", "-outform", form, "-certfile"])
                .arg(&pki.ca_cert),
            b"",
        )
    };
    let (pem, der) = (bundle("PEM"), bundle("DER"));
    assert!(pem.starts_with(b"-----BEGIN PKCS7-----"));
    let by_publisher = publisher.issue("bundles@trust.example", KeyKind::Rsa(2048));
    let signed_bundle = run_ok(
        openssl()
            .args([
                "cms",
                "-sign",
                "-nodetach",
                "-binary",
                "-outform",
                "DER",
                "-signer",
            ])
            .arg(&by_publisher.cert)
            .arg("-inkey")
            .arg(&by_publisher.key),
        &der,
    );
    let chain = |anchors: Vec<Vec<u8>>| {
        let view = MessageView::parse(&signed).unwrap();
        let req = OpenRequest::new(&[], &policy).with_trust_anchors(&anchors);
        let opened = SmimeEnvelope::new().open_sync(&view, &req).unwrap();
        opened.report.signatures[0].chain.clone()
    };
    for anchors in [pem, der, signed_bundle.clone()] {
        assert!(
            matches!(chain(vec![anchors]), ChainStatus::Trusted { .. }),
            "anchor from a bundle"
        );
    }
    // The signed bundle's outer certificate (the publisher) is not an anchor.
    let certs = postern_smime::keys::parse_certificates(&signed_bundle).unwrap();
    assert_eq!(certs.len(), 1);
    assert!(certs[0]
        .tbs_certificate()
        .subject()
        .to_string()
        .contains("Postern Test CA"));
    // Without the bundle the same signature is not trusted.
    assert!(matches!(
        chain(vec![publisher.ca_pem()]),
        ChainStatus::Untrusted(_)
    ));
}

/// What `seal_to` streams opens to the same message as what `seal_sync` returns, for both the
/// chunked CBC path and GCM (one pass, then streamed), and a writer that fails makes the seal
/// fail.
#[test]
fn sealing_into_a_writer_gives_a_message_that_opens_the_same() {
    let cert = postern_tests::read_data("smime/examples-cms/certs-and-keys/lamps-bob.encrypt.crt");
    let key =
        postern_tests::read_data("smime/examples-cms/certs-and-keys/lamps-bob.decrypt.p8.pem");
    let smime = SmimeEnvelope::new();
    let policy = Policy::default();
    let certs = [cert.clone()];
    let creds = [postern_core::Credential::with_secret(
        postern_core::Standard::Smime,
        cert,
        key,
    )];
    let mut msg = b"From: a@clinic.example\r\nTo: b@partner.example\r\nSubject: s\r\n\r\n".to_vec();
    while msg.len() < 700_000 {
        msg.extend_from_slice(b"line of text in a long message, lab value 4.1\r\n");
    }
    let view = MessageView::parse(&msg).unwrap();
    for cipher in [ContentCipher::Aes256Cbc, ContentCipher::Aes256Gcm] {
        let req = SealRequest::encrypt(&certs, &policy).with_cipher(cipher);
        let mut w = postern_tests::Trickle::default();
        smime.seal_to(&view, &req, &mut w).unwrap();
        let streamed = w.0;
        let buffered = smime.seal_sync(&view, &req).unwrap();
        let open = |m: &[u8]| {
            smime
                .open_sync(
                    &MessageView::parse(m).unwrap(),
                    &OpenRequest::new(&creds, &policy),
                )
                .unwrap()
                .message
        };
        assert_eq!(open(&streamed), open(&buffered), "{cipher}");
        assert!(open(&streamed).ends_with(b"lab value 4.1\r\n"));
        let e = smime
            .seal_to(&view, &req, &mut postern_tests::DiskFull)
            .unwrap_err();
        assert!(e.to_string().contains("disk full"), "{cipher}: {e}");
    }
}

/// A partner certificate made the usual way (`openssl req -x509`, which marks every self-signed
/// certificate `CA:TRUE`) is that partner's certificate: we seal to it, OpenSSL decrypts with
/// its key, and check-config's view (describe_certificates) calls it a recipient. A real CA
/// certificate alone (keyCertSign only) is still never a recipient, a CA beside a leaf in a
/// chain file is chain material, and a hundred copies of one certificate are one recipient.
#[test]
fn a_self_signed_partner_certificate_from_openssl_req_is_a_recipient() {
    use postern_core::SecureEnvelope;
    let dir = tempfile::tempdir().unwrap();
    let make = |name: &str, usage: &str| {
        let (cert, key) = (
            dir.path().join(format!("{name}.pem")),
            dir.path().join(format!("{name}.key")),
        );
        let mut cmd = openssl();
        cmd.args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "365",
        ])
        .args(["-subj", &format!("/CN={name}.partner.example")])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .args([
            "-addext",
            &format!("subjectAltName=email:{name}@partner.example"),
        ]);
        if !usage.is_empty() {
            cmd.args(["-addext", usage]);
        }
        if name == "gw" {
            cmd.args(["-addext", "extendedKeyUsage=emailProtection"]);
        }
        run_ok(&mut cmd, b"");
        (std::fs::read(&cert).unwrap(), key)
    };
    let (gw, gw_key) = make("gw", "keyUsage=digitalSignature,keyEncipherment");
    let text = String::from_utf8(run_ok(openssl().args(["x509", "-noout", "-text"]), &gw)).unwrap();
    assert!(
        text.contains("CA:TRUE"),
        "OpenSSL's default for a self-signed certificate"
    );
    // The default `openssl req -x509` certificate has no key usage at all: any use.
    let (plain, plain_key) = make("plain", "");
    let (ca, _) = make("ca", "keyUsage=keyCertSign,cRLSign");
    let policy = Policy::default();
    let msg = sample_message(2);
    for (cert, key) in [(&gw, &gw_key), (&plain, &plain_key)] {
        let certs = vec![cert.clone()];
        let sealed = seal(
            &SmimeEnvelope::new(),
            &msg,
            &SealRequest::encrypt(&certs, &policy),
        );
        let mut decrypt = openssl();
        let cert_file = dir.path().join("recip.pem");
        std::fs::write(&cert_file, cert).unwrap();
        decrypt
            .args(["cms", "-decrypt", "-inkey"])
            .arg(key)
            .arg("-recip")
            .arg(&cert_file);
        assert_eq!(body(&run_ok(&mut decrypt, &sealed)), body(&msg));
        let summary = SmimeEnvelope::new().describe_certificates(cert).unwrap();
        assert!(
            !summary[0].authority && summary[0].self_signed,
            "{summary:?}"
        );
    }
    // check-config says what it does with such a certificate, in one readable sentence.
    let mut dir = postern_router::Directory::default();
    let mut p = postern_router::Partner::new(
        postern_router::DomainPattern::Exact(postern_core::Domain::new("partner.example").unwrap()),
        postern_router::PartnerPolicy::Required,
        vec![postern_core::Standard::Smime],
    );
    p.certificates
        .insert(postern_core::Standard::Smime, vec![gw.clone()]);
    dir.partners.push(p);
    let findings = postern_router::validate(&dir, &backends(), std::time::SystemTime::now());
    assert!(
        findings.iter().any(|f| f.message.contains(
            "is self-signed (OpenSSL marks such certificates CA:TRUE); it is used as \
             partner.example's own certificate"
        )),
        "{findings:?}"
    );
    // A CA's certificate alone is not a partner's.
    let certs = vec![ca.clone()];
    let view = MessageView::parse(&msg).unwrap();
    let err = SmimeEnvelope::new()
        .seal_sync(&view, &SealRequest::encrypt(&certs, &policy))
        .unwrap_err();
    assert!(err.to_string().contains("only CA certificates"), "{err}");
    // A chain file: the leaf is the recipient, the (self-signed) CA beside it is not.
    let pki = Pki::new();
    let leaf = pki.issue("records@partner.example", KeyKind::Rsa(2048));
    let mut chain = leaf.cert_pem();
    chain.extend_from_slice(&gw);
    let summary = SmimeEnvelope::new().describe_certificates(&chain).unwrap();
    assert_eq!(
        summary.iter().map(|s| s.authority).collect::<Vec<_>>(),
        vec![false, true]
    );
    // A hundred copies of one certificate: one recipient in the message.
    let copies = vec![gw.repeat(100)];
    let sealed = seal(
        &SmimeEnvelope::new(),
        &msg,
        &SealRequest::encrypt(&copies, &policy),
    );
    let printed = String::from_utf8(run_ok(
        openssl().args(["cms", "-cmsout", "-print", "-inform", "SMIME"]),
        &sealed,
    ))
    .unwrap();
    assert_eq!(printed.matches("d.ktri:").count(), 1, "{printed}");
}

/// A SignedData with no SignerInfo around `content` (RFC 5652 allows it; RFC 3183 gateways
/// send content wrapped so under a domain signature), as DER.
fn empty_signed_data(content: &[u8]) -> Vec<u8> {
    use cms::cert::x509::spki::AlgorithmIdentifierOwned;
    use cms::content_info::{CmsVersion, ContentInfo};
    use cms::signed_data::{EncapsulatedContentInfo, SignedData, SignerInfos};
    use der::asn1::{OctetString, SetOfVec};
    use der::{Any, Decode, Encode};
    let data = der::oid::ObjectIdentifier::new_unwrap("1.2.840.113549.1.7.1");
    let signed = der::oid::ObjectIdentifier::new_unwrap("1.2.840.113549.1.7.2");
    let octets = OctetString::new(content).unwrap().to_der().unwrap();
    let sd = SignedData {
        version: CmsVersion::V1,
        digest_algorithms: SetOfVec::<AlgorithmIdentifierOwned>::new(),
        encap_content_info: EncapsulatedContentInfo {
            econtent_type: data,
            econtent: Some(Any::from_der(&octets).unwrap()),
        },
        certificates: None,
        crls: None,
        signer_infos: SignerInfos(SetOfVec::new()),
    };
    ContentInfo {
        content_type: signed,
        content: Any::from_der(&sd.to_der().unwrap()).unwrap(),
    }
    .to_der()
    .unwrap()
}

/// Issue 24, D5: a SignedData without a signer signs nothing. Alone it opens as unsigned
/// (`absent`: no signature report, none of its fields counted as signed), never `invalid`; inside
/// a valid signature (the RFC 3183 domain-signature form, m8) the message is `valid` by that
/// signature alone. OpenSSL reads our structure as well formed, and makes the outer signature.
#[test]
fn an_empty_signed_data_is_unsigned_content_alone_and_inside_a_valid_signature() {
    let pki = Pki::new();
    let policy = Policy::default();
    let anchors = vec![pki.ca_pem()];
    let inner = b"Content-Type: text/plain\r\nSubject: inner\r\n\r\nLab result: Potassium 4.1\r\n";
    let der = empty_signed_data(inner);
    let dir = tempfile::tempdir().unwrap();
    let der_file = dir.path().join("empty.der");
    std::fs::write(&der_file, &der).unwrap();
    let printed = run_ok(
        openssl()
            .args(["cms", "-cmsout", "-print", "-inform", "DER", "-in"])
            .arg(&der_file),
        b"",
    );
    let printed = String::from_utf8_lossy(&printed);
    assert!(printed.contains("signerInfos:\n      <EMPTY>"), "{printed}");

    let alone = postern_tests::pkcs7_mime_message(&der, "signed-data");
    let req = OpenRequest::new(&[], &policy).with_trust_anchors(&anchors);
    let opened = postern_tests::smime_open_both(&alone, &req).unwrap();
    assert!(
        opened.report.signatures.is_empty(),
        "{:?}",
        opened.report.signatures
    );
    assert!(
        opened.report.signed_fields.is_empty(),
        "nothing vouched for"
    );
    assert_eq!(
        opened.report.signature_verdict(),
        postern_core::SignatureVerdict::Absent
    );
    assert!(String::from_utf8_lossy(&opened.message).contains("Potassium 4.1"));

    // m8: OpenSSL signs the MIME entity holding the empty SignedData (a domain signature).
    let signer = pki.issue(
        "domain-signing-authority@partner.example",
        KeyKind::Rsa(2048),
    );
    let entity = {
        let whole = postern_tests::pkcs7_mime_message(&der, "signed-data");
        let at = whole.windows(4).position(|w| w == b"MIME").unwrap();
        whole[at..].to_vec()
    };
    let wrapped = run_ok(
        openssl()
            .args(["cms", "-sign", "-nodetach", "-signer"])
            .arg(&signer.cert)
            .arg("-inkey")
            .arg(&signer.key),
        &entity,
    );
    // A request made now: the one above was made before this signer was issued, and its
    // time can fall in the second before the certificate's notBefore.
    let req = OpenRequest::new(&[], &policy).with_trust_anchors(&anchors);
    let opened = postern_tests::smime_open_both(&wrapped, &req).unwrap();
    assert_eq!(
        opened.report.signatures.len(),
        1,
        "one signature: the outer one"
    );
    assert_eq!(opened.report.signatures[0].status, SignatureStatus::Valid);
    assert_eq!(
        opened.report.signature_verdict(),
        postern_core::SignatureVerdict::Valid,
        "{:?}",
        opened.report.signatures[0].chain
    );
    assert!(String::from_utf8_lossy(&opened.message).contains("Potassium 4.1"));
}

/// A SHA-1 signature our policy refuses is checked all the same: a genuine one is `refused`
/// (perhaps real, proves nothing), one over altered content is `invalid` — a forger cannot get
/// the milder word by choosing a refused algorithm (found in review).
#[test]
fn a_refused_algorithm_does_not_shield_a_forgery() {
    let pki = Pki::new();
    let policy = Policy::default();
    let anchors = vec![pki.ca_pem()];
    let signer = pki.issue("partner-gw@partner.example", KeyKind::Rsa(2048));
    let msg = sample_message(1);
    let signed = run_ok(
        openssl()
            .args(["cms", "-sign", "-md", "sha1", "-signer"])
            .arg(&signer.cert)
            .arg("-inkey")
            .arg(&signer.key),
        &msg,
    );
    let req = OpenRequest::new(&[], &policy).with_trust_anchors(&anchors);
    let verdict = |m: &[u8]| {
        let view = MessageView::parse(m).unwrap();
        let opened = SmimeEnvelope::new().open_sync(&view, &req).unwrap();
        (
            opened.report.signature_verdict(),
            opened.report.signatures[0].status.clone(),
        )
    };
    let (v, status) = verdict(&signed);
    assert_eq!(v, postern_core::SignatureVerdict::Refused, "{status:?}");
    assert!(
        matches!(&status, SignatureStatus::Refused(why) if why.contains("sha-1")),
        "{status:?}"
    );
    let tampered = String::from_utf8_lossy(&signed).replacen("Potassium 4.1", "Potassium 9.1", 1);
    let (v, status) = verdict(tampered.as_bytes());
    assert_eq!(v, postern_core::SignatureVerdict::Invalid, "{status:?}");
}
