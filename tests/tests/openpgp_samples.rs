//! The public OpenPGP samples (see data/PROVENANCE.upstream.md): the draft-bre Alice
//! (Ed25519/Cv25519) and Bob (RSA-3072) keys both ways with gpg, and the RFC 9580 appendix
//! samples (v6 keys, OCB, cleartext and inline signatures), which GnuPG 2.2 cannot read.
//!
//! Check by hand: `gpg --import data/openpgp/draft-bre-openpgp-samples/bob.sec.asc`, then
//! `gpg --decrypt` a message that `postern-relay seal --standard openpgp --recipient-cert
//! data/openpgp/draft-bre-openpgp-samples/bob.pub.asc` wrote.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is a failure report

use postern_core::{
    mime, ContentCipher, MessageView, OpenRequest, Opened, Policy, SealRequest, SignatureAlgorithm,
};
use postern_openpgp::OpenPgpEnvelope;
use postern_tests::{body_lf, pgp_credential, read_data, sample_message, Gpg};

const BRE: &str = "openpgp/draft-bre-openpgp-samples";
const RFC: &str = "openpgp/rfc9580-crypto-refresh";

fn open(mail: &[u8], keys: &[postern_core::Credential], signers: &[Vec<u8>]) -> Opened {
    let policy = Policy::default();
    postern_tests::pgp_open_both(
        &OpenPgpEnvelope::new(),
        mail,
        &OpenRequest::new(keys, &policy).with_expected_signers(signers),
    )
    .unwrap()
}

fn pgp_mime_encrypted(armored: &[u8]) -> Vec<u8> {
    mime::multipart(
        b"From: sample@openpgp.example\r\nTo: us@clinic.example\r\nSubject: sample\r\n",
        "multipart/encrypted; protocol=\"application/pgp-encrypted\"",
        "sample",
        &[
            b"Content-Type: application/pgp-encrypted\r\n\r\nVersion: 1\r\n",
            &[
                b"Content-Type: application/octet-stream\r\n\r\n".as_slice(),
                armored,
            ]
            .concat(),
        ],
    )
}

fn inline(text: &[u8]) -> Vec<u8> {
    let mut m = b"From: sample@openpgp.example\r\nTo: us@clinic.example\r\nSubject: inline sample\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n".to_vec();
    m.extend_from_slice(text);
    m
}

#[test]
fn we_seal_for_bob_and_gpg_with_bobs_key_reads_it_signed_by_alice() {
    let bob_gpg = Gpg::new();
    bob_gpg.import(&read_data(&format!("{BRE}/bob.sec.asc")));
    bob_gpg.import(&read_data(&format!("{BRE}/alice.pub.asc")));
    let alice = pgp_credential(&read_data(&format!("{BRE}/alice.sec.asc")));
    let policy = Policy::default();
    let certs = vec![read_data(&format!("{BRE}/bob.pub.asc"))];
    let msg = sample_message(2);
    let view = MessageView::parse(&msg).unwrap();
    let sealed = OpenPgpEnvelope::new()
        .seal_sync(
            &view,
            &SealRequest::encrypt(&certs, &policy).signed_by(&alice),
        )
        .unwrap();
    let sv = MessageView::parse(&sealed).unwrap();
    let (plain, err, ok) = bob_gpg.decrypt(&sv.root().children()[1].decoded_body());
    assert!(ok, "{err}");
    assert!(
        err.contains("Good signature from \"Alice Lovelace"),
        "{err}"
    );
    assert_eq!(body_lf(&plain), body_lf(&msg));
}

#[test]
fn gpg_encrypts_to_alice_signed_by_bob_and_we_read_it() {
    let g = Gpg::new();
    g.import(&read_data(&format!("{BRE}/bob.sec.asc")));
    g.import(&read_data(&format!("{BRE}/alice.pub.asc")));
    let entity = b"Content-Type: text/plain\r\n\r\nHello Alice, this is Bob.\r\n";
    let armored = g.ok(
        &[
            "--armor",
            "--sign",
            "--encrypt",
            "-u",
            "bob@openpgp.example",
            "-r",
            "alice@openpgp.example",
        ],
        entity,
    );
    let keys = vec![pgp_credential(&read_data(&format!("{BRE}/alice.sec.asc")))];
    let bob = vec![read_data(&format!("{BRE}/bob.pub.asc"))];
    let o = open(&pgp_mime_encrypted(&armored), &keys, &bob);
    assert!(o.message.ends_with(b"Hello Alice, this is Bob.\r\n"));
    assert_eq!(
        o.report.signature_verdict(),
        postern_core::SignatureVerdict::Valid
    );
    let s = &o.report.signatures[0];
    assert_eq!(s.signer.as_deref(), Some("bob@openpgp.example"));
    assert_eq!(
        s.fingerprint.as_deref(),
        Some("D1A66E1A23B182C9980F788CFBFCC82A015E7330")
    );
    assert!(matches!(s.algorithm, Some(SignatureAlgorithm::RsaPkcs1(_))));
    assert!(o
        .report
        .encryption
        .unwrap()
        .decrypted_with
        .contains("EB85BB5FA33A75E15E944E63F231550C4F47E38E"));
}

#[test]
fn the_rfc9580_v6_key_decrypts_the_ocb_sample() {
    let keys = vec![pgp_credential(&read_data(&format!(
        "{RFC}/v6-minimal-secret.key"
    )))];
    let o = open(
        &pgp_mime_encrypted(&read_data(&format!("{RFC}/v6pkesk-aes128-ocb.pgp"))),
        &keys,
        &[],
    );
    let enc = o.report.encryption.as_ref().unwrap();
    assert_eq!(enc.cipher, ContentCipher::Aes128Ocb);
    assert_eq!(enc.key_management, "x25519");
    // RFC 9580 A.8: the literal data is "Hello, world!".
    assert!(
        String::from_utf8_lossy(&o.message).ends_with("Hello, world!"),
        "{:?}",
        String::from_utf8_lossy(&o.message)
    );
}

#[test]
fn the_rfc9580_v6_signed_samples_verify() {
    let cert = vec![read_data(&format!("{RFC}/v6-minimal-cert.key"))];
    for file in ["cleartext-signed-message.txt", "inline-signed-message.pgp"] {
        let o = open(&inline(&read_data(&format!("{RFC}/{file}"))), &[], &cert);
        assert_eq!(
            o.report.signature_verdict(),
            postern_core::SignatureVerdict::Valid,
            "{file}: {:?}",
            o.report.signatures
        );
        assert_eq!(
            o.report.signatures[0].algorithm,
            Some(SignatureAlgorithm::Ed25519)
        );
        assert!(
            String::from_utf8_lossy(&o.message).contains("What we need from the grocery store"),
            "{file}"
        );
    }
    // Against another certificate the signer is unknown.
    let other = vec![read_data(&format!("{BRE}/alice.pub.asc"))];
    let o = open(
        &inline(&read_data(&format!("{RFC}/cleartext-signed-message.txt"))),
        &[],
        &other,
    );
    assert_eq!(
        o.report.signature_verdict(),
        postern_core::SignatureVerdict::Invalid
    );
}

#[test]
fn we_seal_to_the_v6_certificate_with_seipd_v2_and_read_it_back() {
    // A v6 certificate advertises SEIPDv2: the message uses AEAD (OCB), unlike for GnuPG keys.
    let policy = Policy::default();
    let certs = vec![read_data(&format!("{RFC}/v6-minimal-cert.key"))];
    let msg = sample_message(1);
    let view = MessageView::parse(&msg).unwrap();
    let sealed = OpenPgpEnvelope::new()
        .seal_sync(&view, &SealRequest::encrypt(&certs, &policy))
        .unwrap();
    let keys = vec![pgp_credential(&read_data(&format!(
        "{RFC}/v6-minimal-secret.key"
    )))];
    let o = open(&sealed, &keys, &[]);
    assert!(o.report.encryption.unwrap().cipher.is_aead());
    assert_eq!(body_lf(&o.message), body_lf(&msg));
}
