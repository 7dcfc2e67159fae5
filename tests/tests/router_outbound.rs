//! The outbound decision through the real backends: one message to an S/MIME partner, an
//! OpenPGP partner and an ordinary address gives three copies, read by openssl, gpg and anyone.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is a failure report

use std::sync::Arc;

use postern_core::{Address, Domain, SecureEnvelope, Standard};
use postern_openpgp::OpenPgpEnvelope;
use postern_router::{
    Directory, Disposition, DomainPattern, Envelope, Partner, PartnerPolicy, Router,
};
use postern_smime::SmimeEnvelope;
use postern_tests::{body_lf, checked, sample_message, Gpg, KeyKind, PgpKind, Pki};

/// Two required partners: `smime-partner.test` (S/MIME, `smime_gw`) and `pgp-partner.test`
/// (OpenPGP, the key `gw@pgp-partner.test` in `pgp`).
fn two_partners(smime_gw: &postern_tests::EndEntity, pgp: &Gpg) -> Vec<Partner> {
    let mut s = Partner::new(
        DomainPattern::Exact(Domain::new("smime-partner.test").unwrap()),
        PartnerPolicy::Required,
        vec![Standard::Smime],
    );
    s.certificates
        .insert(Standard::Smime, vec![smime_gw.cert_pem()]);
    let mut p = Partner::new(
        DomainPattern::Exact(Domain::new("pgp-partner.test").unwrap()),
        PartnerPolicy::Required,
        vec![Standard::OpenPgp],
    );
    p.certificates
        .insert(Standard::OpenPgp, vec![pgp.export("gw@pgp-partner.test")]);
    vec![s, p]
}

#[test]
fn one_message_three_copies_each_read_by_its_reader() {
    let pki = Pki::new();
    let smime_gw = pki.issue("gw@smime-partner.test", KeyKind::Rsa(2048));
    let pgp = Gpg::new();
    pgp.generate("GW <gw@pgp-partner.test>", PgpKind::Rsa3072, "never");

    let mut dir = Directory::default();
    dir.our.domains.push(Domain::new("clinic.example").unwrap());
    dir.partners = two_partners(&smime_gw, &pgp);

    let backends: Vec<Arc<dyn SecureEnvelope>> = vec![
        Arc::new(SmimeEnvelope::new()),
        Arc::new(OpenPgpEnvelope::new()),
    ];
    let router = Router::new(backends);
    let a = Address::new("a@smime-partner.test").unwrap();
    let b = Address::new("b@pgp-partner.test").unwrap();
    let c = Address::new("c@gmail.test").unwrap();
    let env = Envelope {
        mail_from: Some(Address::new("ada@clinic.example").unwrap()),
        rcpt_to: vec![a.clone(), b.clone(), c.clone()],
    };
    let msg = sample_message(2);
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let out = rt.block_on(router.outbound(&checked(&dir), &env, &msg, None));
    assert_eq!(out.len(), 3, "{out:?}");
    for d in out {
        let Disposition::Deliver {
            recipients,
            message,
            sealed,
            ..
        } = d
        else {
            panic!("expected delivery: {d:?}");
        };
        match sealed {
            Some(Standard::Smime) => {
                assert_eq!(recipients, vec![a.clone()]);
                assert_eq!(body_lf(&smime_gw.openssl_decrypt(&message)), body_lf(&msg));
            }
            Some(Standard::OpenPgp) => {
                assert_eq!(recipients, vec![b.clone()]);
                let v = postern_core::MessageView::parse(&message).unwrap();
                let (plain, err, ok) = pgp.decrypt(&v.root().children()[1].decoded_body());
                assert!(ok, "{err}");
                assert_eq!(body_lf(&plain), body_lf(&msg));
            }
            None => {
                assert_eq!(recipients, vec![c.clone()]);
                assert_eq!(
                    body_lf(&message),
                    body_lf(&msg),
                    "plain copy for everyone else"
                );
            }
            Some(other) => panic!("{other}"),
        }
    }
}

/// Issue 14.1: "already encrypted by the user" is proven by structure. A message OpenSSL or
/// GnuPG really encrypted passes (the partner's own tool reads it, and text around the
/// ciphertext does not ride along); one that only says so in its Content-Type is sealed.
#[test]
fn user_encrypted_mail_passes_only_when_it_really_is() {
    const PHI: &str = "SSN 078-05-1120";
    let pki = Pki::new();
    let smime_gw = pki.issue("gw@smime-partner.test", KeyKind::Rsa(2048));
    let pgp = Gpg::new();
    pgp.generate("GW <gw@pgp-partner.test>", PgpKind::Rsa3072, "never");
    let mut dir = Directory {
        partners: two_partners(&smime_gw, &pgp),
        ..Directory::default()
    };
    dir.our.domains.push(Domain::new("clinic.example").unwrap());
    let router = Router::new(vec![
        Arc::new(SmimeEnvelope::new()),
        Arc::new(OpenPgpEnvelope::new()),
    ]);
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let route = |to: &str, msg: &[u8]| {
        let env = Envelope {
            mail_from: Some(Address::new("ada@clinic.example").unwrap()),
            rcpt_to: vec![Address::new(to).unwrap()],
        };
        let out = rt.block_on(router.outbound(&checked(&dir), &env, msg, None));
        match &out[..] {
            [Disposition::Deliver {
                message, sealed, ..
            }] => (message.clone(), *sealed),
            other => panic!("{other:?}"),
        }
    };
    let inner = format!("Content-Type: text/plain\r\n\r\n{PHI}\r\n");
    let head = "From: ada@clinic.example\r\nTo: a@smime-partner.test\r\nSubject: results\r\n";

    // OpenSSL's own S/MIME: passes untouched inside, and OpenSSL reads what passes.
    let smime_by_openssl = postern_tests::run_ok(
        std::process::Command::new("openssl")
            .args(["cms", "-encrypt", "-aes256", "-recip"])
            .arg(&smime_gw.cert),
        inner.as_bytes(),
    );
    let mut msg = head.as_bytes().to_vec();
    msg.extend_from_slice(&smime_by_openssl);
    let (out, sealed) = route("a@smime-partner.test", &msg);
    assert_eq!(
        sealed, None,
        "a real EnvelopedData passes as the user's own"
    );
    assert!(!String::from_utf8_lossy(&out).contains(PHI));
    assert!(String::from_utf8_lossy(&smime_gw.openssl_decrypt(&out)).contains(PHI));

    // GnuPG's PGP/MIME with the PHI in the preamble: passes without the preamble.
    let armored = pgp.ok(
        &["--encrypt", "--armor", "-r", "gw@pgp-partner.test"],
        inner.as_bytes(),
    );
    let armored = String::from_utf8(armored).unwrap().replace('\n', "\r\n");
    let msg = format!(
        "{head}Content-Type: multipart/encrypted; protocol=\"application/pgp-encrypted\"; boundary=\"b\"\r\n\r\n\
         {PHI}\r\n--b\r\nContent-Type: application/pgp-encrypted\r\n\r\nVersion: 1\r\n\
         --b\r\nContent-Type: application/octet-stream\r\n\r\n{armored}--b--\r\n{PHI}\r\n"
    );
    let (out, sealed) = route("b@pgp-partner.test", msg.as_bytes());
    assert_eq!(sealed, None, "real PGP/MIME passes as the user's own");
    assert!(
        !String::from_utf8_lossy(&out).contains(PHI),
        "preamble/epilogue dropped"
    );
    let v = postern_core::MessageView::parse(&out).unwrap();
    let (plain, err, ok) = pgp.decrypt(&v.root().children()[1].decoded_body());
    assert!(ok, "{err}");
    assert!(String::from_utf8_lossy(&plain).contains(PHI));

    // Labels over plain text: sealed like any other message, and the partner's tool reads it.
    let disguised = format!(
        "{head}Content-Type: application/pkcs7-mime; smime-type=enveloped-data\r\n\r\n{PHI}\r\n"
    );
    let (out, sealed) = route("a@smime-partner.test", disguised.as_bytes());
    assert_eq!(sealed, Some(Standard::Smime));
    assert!(!String::from_utf8_lossy(&out).contains(PHI));
    assert!(String::from_utf8_lossy(&smime_gw.openssl_decrypt(&out)).contains(PHI));
    let disguised = format!(
        "{head}Content-Type: multipart/encrypted; protocol=\"application/pgp-encrypted\"; boundary=\"b\"\r\n\r\n\
         --b\r\nContent-Type: application/pgp-encrypted\r\n\r\nVersion: 1\r\n\
         --b\r\nContent-Type: text/plain\r\n\r\n{PHI}\r\n--b--\r\n"
    );
    let (out, sealed) = route("b@pgp-partner.test", disguised.as_bytes());
    assert_eq!(sealed, Some(Standard::OpenPgp));
    assert!(!String::from_utf8_lossy(&out).contains(PHI));
}
