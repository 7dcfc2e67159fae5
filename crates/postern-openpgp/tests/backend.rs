//! The backend's own tests, run once per crypto backend (`crypto-rust` by default; `.ci/run`
//! repeats them with `--no-default-features --features crypto-openssl`). They use the published
//! samples and, where the machine has it, GnuPG as the independent reader.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is a failure report

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use postern_core::{Credential, MessageView, OpenRequest, Policy, SealRequest, Standard};
use postern_openpgp::OpenPgpEnvelope;

fn data(rel: &str) -> Vec<u8> {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/data/openpgp")
        .join(rel);
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn secret(rel: &str) -> Credential {
    let b = data(rel);
    Credential::with_secret(Standard::OpenPgp, b.clone(), b)
}

const MSG: &[u8] = b"From: a@clinic.example\r\nTo: bob@openpgp.example\r\nSubject: backend test\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\nGr\xc3\xbc\xc3\x9fe, results attached.\r\n";

#[test]
fn seal_for_bob_signed_by_alice_and_open_again() {
    let policy = Policy::default();
    let certs = vec![data("draft-bre-openpgp-samples/bob.pub.asc")];
    let alice = secret("draft-bre-openpgp-samples/alice.sec.asc");
    let view = MessageView::parse(MSG).unwrap();
    let sealed = OpenPgpEnvelope::new()
        .seal_sync(
            &view,
            &SealRequest::encrypt(&certs, &policy).signed_by(&alice),
        )
        .unwrap();
    let keys = vec![secret("draft-bre-openpgp-samples/bob.sec.asc")];
    let signers = vec![data("draft-bre-openpgp-samples/alice.pub.asc")];
    let sv = MessageView::parse(&sealed).unwrap();
    let o = OpenPgpEnvelope::new()
        .open_sync(
            &sv,
            &OpenRequest::new(&keys, &policy).with_expected_signers(&signers),
        )
        .unwrap();
    assert!(o
        .message
        .ends_with("Grüße, results attached.\r\n".as_bytes()));
    assert_eq!(
        o.report.signature_verdict(),
        postern_core::SignatureVerdict::Valid
    );

    // GnuPG, where installed, reads the same bytes.
    if Command::new("gpg").arg("--version").output().is_ok() {
        let home = tempdir();
        let gpg = |args: &[&str], input: &[u8]| {
            let mut c = Command::new("gpg")
                .env("GNUPGHOME", &home)
                .args(["--batch", "--no-tty", "--trust-model", "always"])
                .args(args)
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap();
            c.stdin.take().unwrap().write_all(input).unwrap();
            c.wait_with_output().unwrap()
        };
        assert!(gpg(
            &["--import"],
            &data("draft-bre-openpgp-samples/bob.sec.asc")
        )
        .status
        .success());
        assert!(gpg(
            &["--import"],
            &data("draft-bre-openpgp-samples/alice.pub.asc")
        )
        .status
        .success());
        let out = gpg(&["--decrypt"], &sv.root().children()[1].decoded_body());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{err}");
        assert!(err.contains("Good signature"), "{err}");
        assert!(String::from_utf8_lossy(&out.stdout).contains("results attached"));
        let _ = Command::new("gpgconf")
            .env("GNUPGHOME", &home)
            .args(["--kill", "all"])
            .output();
        let _ = std::fs::remove_dir_all(&home);
    }
}

fn tempdir() -> PathBuf {
    let p = std::env::temp_dir().join(format!(
        "postern-openpgp-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    ));
    std::fs::create_dir_all(&p).unwrap();
    p
}

#[test]
fn v6_ocb_sample_and_cleartext_signature() {
    let policy = Policy::default();
    let keys = vec![secret("rfc9580-crypto-refresh/v6-minimal-secret.key")];
    let mut mail = b"From: s@x.example\r\nContent-Type: text/plain\r\n\r\n".to_vec();
    mail.extend_from_slice(&data("rfc9580-crypto-refresh/v6pkesk-aes128-ocb.pgp"));
    let v = MessageView::parse(&mail).unwrap();
    let o = OpenPgpEnvelope::new()
        .open_sync(&v, &OpenRequest::new(&keys, &policy))
        .unwrap();
    assert!(o.message.ends_with(b"Hello, world!"));
    assert_eq!(o.report.encryption.unwrap().cipher.name(), "aes128-ocb");

    let certs = vec![data("rfc9580-crypto-refresh/v6-minimal-cert.key")];
    let mut mail = b"From: s@x.example\r\nContent-Type: text/plain\r\n\r\n".to_vec();
    mail.extend_from_slice(&data("rfc9580-crypto-refresh/cleartext-signed-message.txt"));
    let v = MessageView::parse(&mail).unwrap();
    let o = OpenPgpEnvelope::new()
        .open_sync(
            &v,
            &OpenRequest::new(&[], &policy).with_expected_signers(&certs),
        )
        .unwrap();
    assert_eq!(
        o.report.signature_verdict(),
        postern_core::SignatureVerdict::Valid
    );
    // One changed letter of the signed text.
    let tampered = String::from_utf8(mail).unwrap().replace("tofu", "tofy");
    let v = MessageView::parse(tampered.as_bytes()).unwrap();
    let o = OpenPgpEnvelope::new()
        .open_sync(
            &v,
            &OpenRequest::new(&[], &policy).with_expected_signers(&certs),
        )
        .unwrap();
    assert_eq!(
        o.report.signature_verdict(),
        postern_core::SignatureVerdict::Invalid
    );
}

#[test]
fn rsa_sign_only_round_trip_with_bobs_key() {
    let policy = Policy::default();
    let bob = secret("draft-bre-openpgp-samples/bob.sec.asc");
    let view = MessageView::parse(MSG).unwrap();
    let signed = OpenPgpEnvelope::new()
        .seal_sync(&view, &SealRequest::sign_only(&bob, true, &policy))
        .unwrap();
    let signers = vec![data("draft-bre-openpgp-samples/bob.pub.asc")];
    let v = MessageView::parse(&signed).unwrap();
    let o = OpenPgpEnvelope::new()
        .open_sync(
            &v,
            &OpenRequest::new(&[], &policy).with_expected_signers(&signers),
        )
        .unwrap();
    assert_eq!(
        o.report.signature_verdict(),
        postern_core::SignatureVerdict::Valid
    );
}
