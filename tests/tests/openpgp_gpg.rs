//! Interop with GnuPG (`gpg` 2.2): it reads what we seal and sign as PGP/MIME, we read what it
//! makes, PGP/MIME and inline.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is a failure report

use std::time::{Duration, SystemTime};

use postern_core::{
    mime, ChainStatus, Error, MessageView, OpenRequest, Opened, Policy, SealRequest,
    SignatureStatus,
};
use postern_openpgp::OpenPgpEnvelope;
use postern_tests::{body_lf, lf, pgp_credential, sample_message, DiskFull, Gpg, PgpKind, Trickle};

fn seal(msg: &[u8], req: &SealRequest<'_>) -> Result<Vec<u8>, Error> {
    let view = MessageView::parse(msg).unwrap();
    OpenPgpEnvelope::new().seal_sync(&view, req)
}

fn open(
    mail: &[u8],
    keys: &[postern_core::Credential],
    signers: &[Vec<u8>],
) -> Result<Opened, Error> {
    let policy = Policy::default();
    postern_tests::pgp_open_both(
        &OpenPgpEnvelope::new(),
        mail,
        &OpenRequest::new(keys, &policy).with_expected_signers(signers),
    )
}

/// The armored OpenPGP message inside a PGP/MIME encrypted message.
fn encrypted_part(sealed: &[u8]) -> Vec<u8> {
    let v = MessageView::parse(sealed).unwrap();
    assert_eq!(v.root().mime_type(), "multipart/encrypted");
    let kids = v.root().children();
    assert_eq!(kids[0].mime_type(), "application/pgp-encrypted");
    assert!(String::from_utf8_lossy(&kids[0].decoded_body()).contains("Version: 1"));
    kids[1].decoded_body().to_vec()
}

#[test]
fn gpg_decrypts_what_we_seal_for_rsa_and_curve25519() {
    let partner = Gpg::new();
    partner.generate(
        "Partner RSA <rsa@partner.example>",
        PgpKind::Rsa3072,
        "never",
    );
    partner.generate("Partner Ed <ed@partner.example>", PgpKind::Ed25519, "never");
    let policy = Policy::default();
    let msg = sample_message(4);
    for who in ["rsa@partner.example", "ed@partner.example"] {
        let certs = vec![partner.export(who)];
        let sealed = seal(&msg, &SealRequest::encrypt(&certs, &policy)).unwrap();
        let text = String::from_utf8_lossy(&sealed);
        assert!(text.contains("protocol=\"application/pgp-encrypted\""));
        assert!(
            text.contains("To: Records <records@partner.example>")
                && !text.contains("X-Internal-Route")
        );
        let (plain, err, ok) = partner.decrypt(&encrypted_part(&sealed));
        assert!(ok, "{who}: {err}");
        assert_eq!(body_lf(&plain), body_lf(&msg), "{who}");
        assert!(
            lf(&plain).starts_with(b"From: Dr. Ada Sender"),
            "the whole entity, headers inside"
        );
    }
}

/// What `seal_to` streams (the armor handed on in pieces as sequoia makes it) is what gpg
/// reads, signed or not, for a message several times the size handed on at once; a writer
/// that fails makes the seal fail.
#[test]
fn gpg_decrypts_what_we_stream_into_a_writer() {
    let partner = Gpg::new();
    partner.generate("P <p@partner.example>", PgpKind::Ed25519, "never");
    let us = Gpg::new();
    us.generate(
        "Clinic Gateway <gw@clinic.example>",
        PgpKind::Ed25519,
        "never",
    );
    partner.import(&us.export("gw@clinic.example"));
    let our_key = pgp_credential(&us.export_secret("gw@clinic.example"));
    let policy = Policy::default();
    let certs = vec![partner.export("p@partner.example")];
    let msg = sample_message(1500);
    let view = MessageView::parse(&msg).unwrap();
    for signed in [false, true] {
        let mut req = SealRequest::encrypt(&certs, &policy);
        if signed {
            req = req.signed_by(&our_key);
        }
        let mut out = Trickle::default();
        OpenPgpEnvelope::new()
            .seal_to(&view, &req, &mut out)
            .unwrap();
        assert!(out.0.len() > 1_500_000);
        let (plain, err, ok) = partner.decrypt(&encrypted_part(&out.0));
        assert!(ok, "{err}");
        assert_eq!(body_lf(&plain), body_lf(&msg));
        assert_eq!(
            err.contains("Good signature from \"Clinic Gateway"),
            signed,
            "{err}"
        );
    }
    let e = OpenPgpEnvelope::new()
        .seal_to(&view, &SealRequest::encrypt(&certs, &policy), &mut DiskFull)
        .unwrap_err();
    assert!(e.to_string().contains("disk full"), "{e}");
}

#[test]
fn one_message_for_two_partners_and_signed_inside() {
    let a = Gpg::new();
    a.generate("A <a@partner.example>", PgpKind::Rsa3072, "never");
    let b = Gpg::new();
    b.generate("B <b@other.example>", PgpKind::Ed25519, "never");
    let us = Gpg::new();
    us.generate(
        "Clinic Gateway <gw@clinic.example>",
        PgpKind::Ed25519,
        "never",
    );
    let our_key = pgp_credential(&us.export_secret("gw@clinic.example"));
    a.import(&us.export("gw@clinic.example"));
    b.import(&us.export("gw@clinic.example"));
    let policy = Policy::default();
    let certs = vec![a.export("a@partner.example"), b.export("b@other.example")];
    let msg = sample_message(2);
    let sealed = seal(
        &msg,
        &SealRequest::encrypt(&certs, &policy).signed_by(&our_key),
    )
    .unwrap();
    for g in [&a, &b] {
        let (plain, err, ok) = g.decrypt(&encrypted_part(&sealed));
        assert!(ok, "{err}");
        assert!(
            err.contains("Good signature from \"Clinic Gateway"),
            "{err}"
        );
        assert_eq!(body_lf(&plain), body_lf(&msg));
    }
}

#[test]
fn gpg_verifies_our_pgp_mime_signature_over_the_exact_part() {
    let us = Gpg::new();
    us.generate(
        "Clinic Gateway <gw@clinic.example>",
        PgpKind::Rsa3072,
        "never",
    );
    let cred = pgp_credential(&us.export_secret("gw@clinic.example"));
    let policy = Policy::default();
    // Trailing whitespace and 8-bit text: both must survive as signed (RFC 3156 §5).
    let msg = b"From: a@clinic.example\r\nTo: b@partner.example\r\nSubject: s\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\nGr\xc3\xbc\xc3\x9fe   \r\nFrom the lab\r\n";
    let sealed = seal(msg, &SealRequest::sign_only(&cred, true, &policy)).unwrap();
    let text = String::from_utf8_lossy(&sealed);
    assert!(
        text.contains("micalg=pgp-sha256")
            && text.contains("protocol=\"application/pgp-signature\"")
    );
    let v = MessageView::parse(&sealed).unwrap();
    let kids = v.root().children();
    let (stderr, ok) = us.verify_detached(&kids[1].decoded_body(), kids[0].raw());
    assert!(ok && stderr.contains("Good signature"), "{stderr}");
    let mut tampered = kids[0].raw().to_vec();
    let n = tampered.len() - 3;
    tampered[n] ^= 1;
    let (stderr, ok) = us.verify_detached(&kids[1].decoded_body(), &tampered);
    assert!(!ok && stderr.contains("BAD signature"), "{stderr}");
}

fn pgp_mime_message(content_type: &str, parts: &[&[u8]]) -> Vec<u8> {
    mime::multipart(
        b"From: gw@partner.example\r\nTo: records@clinic.example\r\nSubject: from a gpg partner\r\nMIME-Version: 1.0\r\n",
        content_type,
        "made by gpg",
        parts,
    )
}

#[test]
fn we_decrypt_and_verify_pgp_mime_made_by_gpg() {
    let partner = Gpg::new();
    partner.generate("Partner GW <gw@partner.example>", PgpKind::Rsa3072, "never");
    let us = Gpg::new();
    us.generate("Clinic <gw@clinic.example>", PgpKind::Ed25519, "never");
    partner.import(&us.export("gw@clinic.example"));
    let keys = vec![pgp_credential(&us.export_secret("gw@clinic.example"))];
    let signers = vec![partner.export("gw@partner.example")];
    let entity =
        b"Content-Type: text/plain; charset=us-ascii\r\n\r\nReferral accepted; see you Monday.\r\n";

    // multipart/encrypted, signed and encrypted by gpg in one OpenPGP message.
    let armored = partner.ok(
        &[
            "--armor",
            "--sign",
            "--encrypt",
            "-u",
            "gw@partner.example",
            "-r",
            "gw@clinic.example",
        ],
        entity,
    );
    let mail = pgp_mime_message(
        "multipart/encrypted; protocol=\"application/pgp-encrypted\"",
        &[
            b"Content-Type: application/pgp-encrypted\r\n\r\nVersion: 1\r\n",
            &[
                b"Content-Type: application/octet-stream\r\n\r\n".as_slice(),
                &armored,
            ]
            .concat(),
        ],
    );
    let o = open(&mail, &keys, &signers).unwrap();
    assert!(String::from_utf8_lossy(&o.message).contains("Subject: from a gpg partner\r\n"));
    assert!(o
        .message
        .ends_with(b"\r\n\r\nReferral accepted; see you Monday.\r\n"));
    let enc = o.report.encryption.as_ref().unwrap();
    assert_eq!(enc.key_management, "ecdh");
    assert_eq!(
        o.report.signature_verdict(),
        postern_core::SignatureVerdict::Valid
    );
    let s = &o.report.signatures[0];
    assert_eq!(s.signer.as_deref(), Some("gw@partner.example"));
    assert!(matches!(s.chain, ChainStatus::Trusted { .. }));

    // multipart/signed with a detached gpg signature over the exact entity.
    let sig = partner.ok(
        &["--armor", "--detach-sign", "-u", "gw@partner.example"],
        entity,
    );
    let sig_part = [
        b"Content-Type: application/pgp-signature\r\n\r\n".as_slice(),
        &sig,
    ]
    .concat();
    let mail = pgp_mime_message(
        "multipart/signed; micalg=pgp-sha256; protocol=\"application/pgp-signature\"",
        &[entity, &sig_part],
    );
    let o = open(&mail, &[], &signers).unwrap();
    assert_eq!(
        o.report.signature_verdict(),
        postern_core::SignatureVerdict::Valid
    );
    assert!(o.report.encryption.is_none());
    // One changed byte: invalid.
    let bad = String::from_utf8(mail.clone())
        .unwrap()
        .replace("Monday", "Friday");
    let o = open(bad.as_bytes(), &[], &signers).unwrap();
    assert!(
        matches!(o.report.signatures[0].status, SignatureStatus::Invalid(_)),
        "{:?}",
        o.report.signatures
    );
    // No partner certificate configured: the signer is unknown, not valid.
    let o = open(&mail, &[], &[]).unwrap();
    assert!(matches!(
        o.report.signatures[0].status,
        SignatureStatus::SignerUnknown(_)
    ));
    assert_eq!(
        o.report.signature_verdict(),
        postern_core::SignatureVerdict::Invalid
    );
}

#[test]
fn we_open_inline_pgp_from_older_partners() {
    let partner = Gpg::new();
    partner.generate("Partner <gw@partner.example>", PgpKind::Ed25519, "never");
    let us = Gpg::new();
    us.generate("Clinic <gw@clinic.example>", PgpKind::Rsa3072, "never");
    partner.import(&us.export("gw@clinic.example"));
    let keys = vec![pgp_credential(&us.export_secret("gw@clinic.example"))];
    let signers = vec![partner.export("gw@partner.example")];
    let text = "Lab results: potassium 4.1 mmol/L.\nGr\u{fc}\u{df}e\n";
    for args in [
        &["--armor", "--encrypt", "-r", "gw@clinic.example"][..],
        &[
            "--armor",
            "--encrypt",
            "--sign",
            "-u",
            "gw@partner.example",
            "-r",
            "gw@clinic.example",
        ][..],
        &["--clearsign", "-u", "gw@partner.example"][..],
    ] {
        let armored = partner.ok(args, text.as_bytes());
        let mut mail = b"From: gw@partner.example\r\nTo: records@clinic.example\r\nSubject: inline\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\nSee below.\r\n\r\n".to_vec();
        mail.extend_from_slice(&armored);
        let o = open(&mail, &keys, &signers).unwrap_or_else(|e| panic!("{args:?}: {e}"));
        let m = String::from_utf8_lossy(&o.message);
        assert!(
            m.contains("Lab results: potassium 4.1 mmol/L.\r\n"),
            "{args:?}: {m}"
        );
        assert!(m.contains("charset=utf-8") && m.contains("Subject: inline"));
        assert_eq!(
            o.report.encryption.is_some(),
            args.contains(&"--encrypt"),
            "{args:?}"
        );
        let signed = args.contains(&"--sign") || args.contains(&"--clearsign");
        assert_eq!(
            o.report.signature_verdict(),
            if signed {
                postern_core::SignatureVerdict::Valid
            } else {
                postern_core::SignatureVerdict::Absent
            },
            "{args:?} {:?}",
            o.report.signatures
        );
    }
}

#[test]
fn unusable_keys_fail_closed_naming_the_key() {
    let partner = Gpg::new();
    let fpr = partner.generate("Short <short@partner.example>", PgpKind::Ed25519, "2d");
    let policy = Policy::default();
    let certs = vec![partner.export("short@partner.example")];
    let msg = sample_message(1);
    // Valid today...
    assert!(seal(&msg, &SealRequest::encrypt(&certs, &policy)).is_ok());
    // ...expired in three days.
    let mut req = SealRequest::encrypt(&certs, &policy);
    req.now = SystemTime::now() + Duration::from_secs(3 * 86400);
    let e = seal(&msg, &req).unwrap_err();
    assert!(
        matches!(&e, Error::NoUsableKey { recipient, .. } if recipient.contains(&fpr)),
        "{e}"
    );
    assert!(!e.is_temporary());
    // A signing-only certificate has nothing to encrypt to.
    let signer_only = Gpg::new();
    signer_only.ok(
        &[
            "--quick-gen-key",
            "S <s@partner.example>",
            "ed25519",
            "sign,cert",
            "never",
        ],
        b"",
    );
    let certs = vec![signer_only.export("s@partner.example")];
    let e = seal(&msg, &SealRequest::encrypt(&certs, &policy)).unwrap_err();
    assert!(
        matches!(&e, Error::NoUsableKey { reason, .. } if reason.contains("encryption")),
        "{e}"
    );
    // Revoked.
    let rev = Gpg::new();
    let fpr = rev.generate("R <r@partner.example>", PgpKind::Ed25519, "never");
    let revocation = std::fs::read(
        rev.home
            .path()
            .join("openpgp-revocs.d")
            .join(format!("{fpr}.rev")),
    )
    .unwrap();
    // gpg escapes the certificate with a leading ':' so it is not imported by accident.
    let revocation = String::from_utf8(revocation)
        .unwrap()
        .replace(":-----BEGIN", "-----BEGIN");
    rev.import(revocation.as_bytes());
    let certs = vec![rev.export("r@partner.example")];
    let e = seal(&msg, &SealRequest::encrypt(&certs, &policy)).unwrap_err();
    assert!(
        matches!(&e, Error::NoUsableKey { reason, .. } if reason.contains("revoked")),
        "{e}"
    );
    // One bad recipient among good ones: no message at all.
    let good = Gpg::new();
    good.generate("G <g@partner.example>", PgpKind::Ed25519, "never");
    let certs = vec![
        good.export("g@partner.example"),
        rev.export("r@partner.example"),
    ];
    assert!(seal(&msg, &SealRequest::encrypt(&certs, &policy)).is_err());
}

#[test]
fn wrong_key_and_tampering_are_typed_errors() {
    let partner = Gpg::new();
    partner.generate("P <p@partner.example>", PgpKind::Ed25519, "never");
    let other = Gpg::new();
    other.generate("O <o@other.example>", PgpKind::Ed25519, "never");
    let policy = Policy::default();
    let certs = vec![partner.export("p@partner.example")];
    let msg = sample_message(1);
    let sealed = seal(&msg, &SealRequest::encrypt(&certs, &policy)).unwrap();
    let e = open(
        &sealed,
        &[pgp_credential(&other.export_secret("o@other.example"))],
        &[],
    )
    .unwrap_err();
    assert!(matches!(e, Error::NotForUs(_)), "{e}");
    // Flip a bit inside the armored ciphertext (not the armor lines): MDC/AEAD failure.
    let keys = vec![pgp_credential(&partner.export_secret("p@partner.example"))];
    let text = String::from_utf8(sealed).unwrap();
    let start = text.find("-----BEGIN PGP MESSAGE-----").unwrap();
    let body_start = text.get(start..).unwrap().find("\r\n\r\n").unwrap() + start + 4;
    let target = body_start + 200;
    let mut bytes = text.into_bytes();
    bytes[target] = if bytes[target] == b'A' { b'B' } else { b'A' };
    let e = open(&bytes, &keys, &[]).unwrap_err();
    assert!(!e.is_temporary(), "{e}");
}

/// Issue 22.12: the proof that the user encrypted now also asks the container's body to look
/// like ciphertext. Its false-positive rate on real gpg output: every one of these messages,
/// 1 byte to 5 KB of text (gpg compresses it first) and of random data, encrypted by gpg to a
/// partner key and sent as PGP/MIME, still passes.
#[test]
fn gpg_ciphertext_of_every_size_passes_the_proof_of_encryption() {
    use postern_core::SecureEnvelope;
    let partner = Gpg::new();
    partner.generate("Partner <gw@pgp-partner.test>", PgpKind::Ed25519, "never");
    let user = Gpg::new();
    user.import(&partner.export("gw@pgp-partner.test"));
    let backend = OpenPgpEnvelope::new();
    let mut checked = 0;
    for (i, n) in [
        1usize, 2, 15, 16, 31, 64, 100, 255, 511, 1000, 1024, 2047, 4096, 5000,
    ]
    .iter()
    .enumerate()
    {
        for random in [false, true] {
            let data: Vec<u8> = if random {
                (0..*n)
                    .map(|k| ((k * 2654435761usize) >> 13) as u8 ^ i as u8)
                    .collect()
            } else {
                b"Jane Roe, creatinine 1.9. "
                    .iter()
                    .copied()
                    .cycle()
                    .take(*n)
                    .collect()
            };
            let armored = user.ok(
                &[
                    "--armor",
                    "--trust-model",
                    "always",
                    "--encrypt",
                    "-r",
                    "gw@pgp-partner.test",
                ],
                &data,
            );
            let msg = format!(
                "From: a@clinic.example\r\nTo: gw@pgp-partner.test\r\nSubject: s\r\nMIME-Version: 1.0\r\n\
                 Content-Type: multipart/encrypted; protocol=\"application/pgp-encrypted\"; boundary=\"b\"\r\n\r\n\
                 --b\r\nContent-Type: application/pgp-encrypted\r\n\r\nVersion: 1\r\n\r\n\
                 --b\r\nContent-Type: application/octet-stream\r\n\r\n{}\r\n--b--\r\n",
                String::from_utf8(armored).unwrap().replace('\n', "\r\n").replace("\r\r\n", "\r\n")
            );
            let view = MessageView::parse(msg.as_bytes()).unwrap();
            assert!(
                backend.proven_encrypted(&view).is_some(),
                "gpg's ciphertext of {n} bytes (random: {random}) failed the proof"
            );
            checked += 1;
        }
    }
    assert_eq!(checked, 28);
}
