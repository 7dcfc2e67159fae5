//! The public S/MIME samples (see data/PROVENANCE.upstream.md): made by implementations other
//! than ours, with the RFC 9216 example keys.
//!
//! Check by hand with OpenSSL:
//! `openssl cms -decrypt -inform DER -in data/smime/examples-cms/binary-files/encryptedForBobRSAOaep.p7m \
//!    -inkey data/smime/examples-cms/certs-and-keys/lamps-bob.decrypt.p8.pem \
//!    -recip data/smime/examples-cms/certs-and-keys/lamps-bob.encrypt.crt`
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is a failure report

use postern_core::{
    ChainStatus, ContentCipher, Credential, DigestAlgorithm, Error, OpenRequest, Opened, Policy,
    SignatureAlgorithm, SignatureStatus, Standard,
};
use postern_tests::{pkcs7_mime_message, read_data};

const CONTENT: &str = "This is some sample content.";

fn bob() -> Vec<Credential> {
    vec![Credential::with_secret(
        Standard::Smime,
        read_data("smime/examples-cms/certs-and-keys/lamps-bob.encrypt.crt"),
        read_data("smime/examples-cms/certs-and-keys/lamps-bob.decrypt.p8.pem"),
    )]
}

fn anchors() -> Vec<Vec<u8>> {
    vec![
        read_data("smime/rfc9216/Sample_LAMPS_RSA_Certification_Authority.selfsigned.pem"),
        read_data("smime/rfc9216/Sample_LAMPS_Ed25519_Certification_Authority.selfsigned.pem"),
    ]
}

fn open(mail: &[u8], keys: &[Credential]) -> Result<Opened, Error> {
    let policy = Policy::default();
    let anchors = anchors();
    postern_tests::smime_open_both(
        mail,
        &OpenRequest::new(keys, &policy).with_trust_anchors(&anchors),
    )
}

fn open_der(file: &str, smime_type: &str, keys: &[Credential]) -> Result<Opened, Error> {
    let der = read_data(&format!("smime/examples-cms/binary-files/{file}"));
    open(&pkcs7_mime_message(&der, smime_type), keys)
}

fn text(o: &Opened) -> String {
    String::from_utf8_lossy(&o.message).into_owned()
}

#[test]
fn decrypts_encrypted_for_bob_rsa_oaep() {
    let o = open_der("encryptedForBobRSAOaep.p7m", "enveloped-data", &bob()).unwrap();
    assert!(text(&o).contains(CONTENT), "{}", text(&o));
    let enc = o.report.encryption.unwrap();
    assert_eq!(enc.key_management, "rsaes-oaep");
    assert!(enc.decrypted_with.contains("bob@smime.example"));
}

#[test]
fn decrypts_encrypted_for_bob_and_dana_with_bobs_key() {
    // Dana's recipient is X25519 (RFC 8418), which we do not hold; Bob's RSA one opens it.
    let o = open_der("encryptedForBobAndDana.p7m", "enveloped-data", &bob()).unwrap();
    assert!(text(&o).contains(CONTENT));
    assert_eq!(o.report.encryption.unwrap().recipients.len(), 2);
}

#[test]
fn verifies_alices_signatures_against_the_rfc9216_ca() {
    for (file, alg) in [
        (
            "signedByAliceRSA.p7m",
            SignatureAlgorithm::RsaPkcs1(DigestAlgorithm::Sha256),
        ),
        (
            "signedByAliceRSAPSS.p7m",
            SignatureAlgorithm::RsaPss(DigestAlgorithm::Sha256),
        ),
    ] {
        let o = open_der(file, "signed-data", &[]).unwrap();
        assert!(text(&o).contains(CONTENT));
        let s = &o.report.signatures[0];
        assert_eq!(s.status, SignatureStatus::Valid, "{file}");
        assert_eq!(s.algorithm, Some(alg));
        assert_eq!(s.signer.as_deref(), Some("alice@smime.example"));
        assert!(
            matches!(&s.chain, ChainStatus::Trusted { anchor } if anchor.contains("Sample LAMPS RSA")),
            "{:?}",
            s.chain
        );
    }
}

#[test]
fn verifies_carlos_ed25519_signature() {
    let o = open_der("signedByCarlosEd25519.p7m", "signed-data", &[]).unwrap();
    let s = &o.report.signatures[0];
    assert_eq!(s.status, SignatureStatus::Valid);
    assert_eq!(s.algorithm, Some(SignatureAlgorithm::Ed25519));
    assert!(
        matches!(s.chain, ChainStatus::Trusted { .. }),
        "{:?}",
        s.chain
    );
}

#[test]
fn header_protection_samples_decrypt_and_verify() {
    for file in [
        "smime-enc-signed.eml",
        "smime-enc-signed-injected-strong.eml",
    ] {
        let mail = read_data(&format!("smime/lamps-header-protection/{file}"));
        let o = open(&mail, &bob()).unwrap();
        assert!(o.report.encryption.is_some(), "{file}");
        assert_eq!(
            o.report.signature_verdict(),
            postern_core::SignatureVerdict::Valid,
            "{file}: {:?}",
            o.report.signatures
        );
        assert_eq!(
            o.report.signatures[0].signer.as_deref(),
            Some("alice@smime.example")
        );
        // The placeholder Subject of the outside never survives opening.
        let t = text(&o);
        assert!(!t.lines().any(|l| l == "Subject: [...]"), "{file}");
        assert!(
            t.lines()
                .any(|l| l == format!("Subject: {}", file.trim_end_matches(".eml"))),
            "{file}: {t}"
        );
    }
    for file in ["smime-one-part.eml", "smime-multipart.eml"] {
        let mail = read_data(&format!("smime/lamps-header-protection/{file}"));
        let o = open(&mail, &[]).unwrap();
        assert!(o.report.encryption.is_none());
        assert_eq!(
            o.report.signature_verdict(),
            postern_core::SignatureVerdict::Valid,
            "{file}: {:?}",
            o.report.signatures
        );
    }
}

#[test]
fn a_changed_byte_in_a_sample_fails_verification() {
    let mail = String::from_utf8(read_data(
        "smime/lamps-header-protection/smime-multipart.eml",
    ))
    .unwrap();
    // Change one letter of the signed text part (not the signature).
    let i = mail.find("\n\n").unwrap();
    let from = |at: usize, pat: &str| mail.get(at..).unwrap().find(pat).unwrap() + at;
    let body_pos = from(i + 2, "--");
    let text_start = from(body_pos, "\n\n") + 2;
    let mut bytes = mail.into_bytes();
    bytes[text_start] ^= 0x20;
    let o = open(&bytes, &[]).unwrap();
    assert_eq!(
        o.report.signature_verdict(),
        postern_core::SignatureVerdict::Invalid
    );
}

#[test]
fn rfc4134_weak_algorithms_are_refused_by_name() {
    // Bob's RFC 4134 key is RSA-1024: refused when loaded, with a reason.
    let weak_key = vec![Credential::with_secret(
        Standard::Smime,
        read_data("smime/rfc4134/BobRSASignByCarl.cer"),
        read_data("smime/rfc4134/BobPrivRSAEncrypt.pri"),
    )];
    let e = open(
        &pkcs7_mime_message(&read_data("smime/rfc4134/5.1.bin"), "enveloped-data"),
        &weak_key,
    )
    .unwrap_err();
    assert!(e.to_string().contains("2048"), "{e}");
    // 5.1: EnvelopedData with 3DES; 5.2: RC2. Refused before any key is needed.
    let keys = Vec::new();
    let e = open(
        &pkcs7_mime_message(&read_data("smime/rfc4134/5.1.bin"), "enveloped-data"),
        &keys,
    )
    .unwrap_err();
    assert!(
        matches!(&e, Error::WeakAlgorithm { algorithm, .. } if algorithm == ContentCipher::TripleDesCbc.name()),
        "{e}"
    );
    assert!(e.to_string().contains("3des"), "{e}");
    let e = open(
        &pkcs7_mime_message(&read_data("smime/rfc4134/5.2.bin"), "enveloped-data"),
        &keys,
    )
    .unwrap_err();
    assert!(e.to_string().to_lowercase().contains("rc2"), "{e}");
    assert!(!e.is_temporary());
    // 4.2 (RSA, SHA-1) and 4.1 (DSA, SHA-1): the signature is refused, naming SHA-1.
    for f in ["4.1.bin", "4.2.bin"] {
        let o = open(
            &pkcs7_mime_message(&read_data(&format!("smime/rfc4134/{f}")), "signed-data"),
            &[],
        )
        .unwrap();
        let s = &o.report.signatures[0];
        assert!(
            matches!(&s.status, SignatureStatus::Refused(why) if why.contains("sha-1")),
            "{f}: {:?}",
            s.status
        );
        // Refused by policy, not invalid: perhaps genuine, but it proves nothing.
        assert_eq!(
            o.report.signature_verdict(),
            postern_core::SignatureVerdict::Refused
        );
    }
    // The multipart/signed sample (DSA, SHA-1) likewise.
    let o = open(&read_data("smime/rfc4134/4.8.eml"), &[]).unwrap();
    assert!(matches!(
        &o.report.signatures[0].status,
        SignatureStatus::Refused(_)
    ));
}
