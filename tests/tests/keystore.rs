//! The in-memory key store feeding a seal: address certificates win over domain certificates.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is a failure report

use postern_core::{
    Address, Domain, KeyStore, MemoryKeyStore, MessageView, Policy, SealRequest, Standard,
};
use postern_smime::SmimeEnvelope;
use postern_tests::{sample_message, KeyKind, Pki};

#[test]
fn domain_certificate_serves_every_mailbox_of_a_partner() {
    let pki = Pki::new();
    let gw = pki.issue("gateway@partner.example", KeyKind::Rsa(2048));
    let alice = pki.issue("alice@partner.example", KeyKind::P256);
    let mut store = MemoryKeyStore::new();
    let domain = Domain::new("Partner.Example").unwrap();
    store.add_domain_certificate(Standard::Smime, &domain, gw.cert_pem());
    store.add_address_certificate(
        Standard::Smime,
        &Address::new("alice@partner.example").unwrap(),
        alice.cert_pem(),
    );
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let for_records = rt
        .block_on(store.recipient_certificates(
            Standard::Smime,
            &Address::new("records@PARTNER.example").unwrap(),
        ))
        .unwrap();
    assert_eq!(for_records, vec![gw.cert_pem()]);
    let for_alice = rt
        .block_on(store.recipient_certificates(
            Standard::Smime,
            &Address::new("Alice@partner.example").unwrap(),
        ))
        .unwrap();
    assert_eq!(for_alice, vec![alice.cert_pem()]);
    let none = rt
        .block_on(store.recipient_certificates(
            Standard::OpenPgp,
            &Address::new("records@partner.example").unwrap(),
        ))
        .unwrap();
    assert!(none.is_empty());
    // What the store returned seals a message the partner gateway's key opens (via OpenSSL).
    let policy = Policy::default();
    let msg = sample_message(1);
    let view = MessageView::parse(&msg).unwrap();
    let sealed = SmimeEnvelope::new()
        .seal_sync(&view, &SealRequest::encrypt(&for_records, &policy))
        .unwrap();
    let out = gw.openssl_decrypt(&sealed);
    assert!(String::from_utf8_lossy(&out).contains("Lab results"));
}

/// A key source of the embedder's own: named `x-…` in the directory file, registered on the
/// Gateway under the same name, consulted like the built-in ones (its S/MIME certificates must
/// chain to our anchors). A misspelt built-in name stays an error with its line; an `x-` name
/// the gateway has no store for is a warning at the check, and such mail fails closed.
#[test]
fn an_embedder_s_own_key_source_is_named_in_the_directory() {
    use postern_router::{Disposition, Envelope, Gateway, KeySource, Outgoing};
    let pki = Pki::new();
    let gw = pki.issue("gateway@lab.test", KeyKind::Rsa(2048));
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("ca.pem"), pki.ca_pem()).unwrap();
    let toml = |sources: &str| {
        format!(
            "[our]\ndomains = [\"clinic.test\"]\ntrust_anchors = [\"ca.pem\"]\n\n\
             [[partner]]\ndomain = \"lab.test\"\npolicy = \"required\"\nstandards = [\"smime\"]\n\
             key_sources = [{sources}]\n"
        )
    };
    let typo = postern_router::Directory::from_toml(&toml("\"wkdd\""), tmp.path()).unwrap_err();
    assert!(typo.to_string().contains("x-NAME"), "{typo}");
    let dir = postern_router::Directory::from_toml(&toml("\"x-hsm-ldap\""), tmp.path()).unwrap();
    assert_eq!(
        dir.partners[0].key_sources,
        vec![KeySource::Custom("x-hsm-ldap".into())]
    );

    let mut store = MemoryKeyStore::new();
    store.add_domain_certificate(
        Standard::Smime,
        &Domain::new("lab.test").unwrap(),
        gw.cert_pem(),
    );
    let gateway = Gateway::builder()
        .without_inspection()
        .key_store(
            KeySource::Custom("x-hsm-ldap".into()),
            std::sync::Arc::new(store),
        )
        .build()
        .unwrap();
    let checked = gateway.check(dir.clone()).unwrap();
    assert!(checked.warnings().is_empty(), "{:?}", checked.warnings());
    let envelope = Envelope {
        mail_from: Some(Address::new("dr@clinic.test").unwrap()),
        rcpt_to: vec![Address::new("results@lab.test").unwrap()],
    };
    let msg = sample_message(1);
    let plan = postern_core::block_on(gateway.outbound(&checked, Outgoing::new(&envelope, &msg)));
    match &plan.dispositions[..] {
        [Disposition::Deliver {
            message,
            sealed: Some(Standard::Smime),
            ..
        }] => {
            let out = gw.openssl_decrypt(message);
            assert!(String::from_utf8_lossy(&out).contains("Lab results"));
        }
        other => panic!("{other:?}"),
    }
    // Not registered: a warning now, and the mail is not sent in clear.
    let bare = Gateway::builder().without_inspection().build().unwrap();
    let checked = bare.check(dir).unwrap();
    assert!(
        checked
            .warnings()
            .iter()
            .any(|f| f.message.contains("x-hsm-ldap")),
        "{:?}",
        checked.warnings()
    );
    let plan = postern_core::block_on(bare.outbound(&checked, Outgoing::new(&envelope, &msg)));
    assert!(
        !matches!(
            &plan.dispositions[..],
            [Disposition::Deliver { sealed: None, .. }]
        ),
        "{:?}",
        plan.dispositions
    );
}

/// A partner publishing the Direct Project's usual single-use pair — one certificate for
/// signing only, one for key encipherment only — gets mail sealed to the second alone (one
/// RecipientInfo), whether the pair is listed in the directory or found by a key source; the
/// seal failed on the signing certificate before and the mail bounced. A partner whose only
/// certificate may not encrypt still gets nothing sealed (no key), never plaintext.
#[test]
fn a_single_use_pair_seals_to_its_encipherment_certificate_only() {
    use postern_router::{Disposition, Envelope, Gateway, KeySource, Outgoing};
    let pki = Pki::new();
    let sign = pki.issue_with(
        "gw@lab.test",
        KeyKind::Rsa(2048),
        "digitalSignature,nonRepudiation",
        "emailProtection",
        30,
    );
    let enc = pki.issue_with(
        "gw@lab.test",
        KeyKind::Rsa(2048),
        "keyEncipherment",
        "emailProtection",
        30,
    );
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("ca.pem"), pki.ca_pem()).unwrap();
    std::fs::copy(&sign.cert, tmp.path().join("sign.pem")).unwrap();
    std::fs::copy(&enc.cert, tmp.path().join("enc.pem")).unwrap();
    let dir = |partner: &str| {
        postern_router::Directory::from_toml(
            &format!(
                "[our]\ndomains = [\"clinic.test\"]\ntrust_anchors = [\"ca.pem\"]\n\n\
                 [[partner]]\ndomain = \"lab.test\"\npolicy = \"required\"\nstandards = [\"smime\"]\n{partner}"
            ),
            tmp.path(),
        )
        .unwrap()
    };
    let envelope = Envelope {
        mail_from: Some(Address::new("dr@clinic.test").unwrap()),
        rcpt_to: vec![Address::new("results@lab.test").unwrap()],
    };
    let msg = sample_message(1);
    let sealed_once = |gateway: &Gateway, d: postern_router::Directory| {
        let checked = gateway.check(d).unwrap();
        let plan =
            postern_core::block_on(gateway.outbound(&checked, Outgoing::new(&envelope, &msg)));
        match &plan.dispositions[..] {
            [Disposition::Deliver {
                message,
                sealed: Some(Standard::Smime),
                ..
            }] => message.clone(),
            other => panic!("{other:?}"),
        }
    };
    let check = |sealed: &[u8]| {
        let printed = String::from_utf8(postern_tests::run_ok(
            std::process::Command::new("openssl").args(["cms", "-cmsout", "-print"]),
            sealed,
        ))
        .unwrap();
        assert_eq!(printed.matches("d.ktri:").count(), 1, "{printed}");
        assert!(String::from_utf8_lossy(&enc.openssl_decrypt(sealed)).contains("Lab results"));
    };
    // Listed in the directory, the signing one first.
    let gateway = Gateway::builder().without_inspection().build().unwrap();
    check(&sealed_once(
        &gateway,
        dir("smime_certificates = [\"sign.pem\", \"enc.pem\"]\n"),
    ));
    // Found by a key source.
    let mut store = MemoryKeyStore::new();
    let lab = Domain::new("lab.test").unwrap();
    store.add_domain_certificate(Standard::Smime, &lab, sign.cert_pem());
    store.add_domain_certificate(Standard::Smime, &lab, enc.cert_pem());
    let found = Gateway::builder()
        .without_inspection()
        .key_store(
            KeySource::Custom("x-pair".into()),
            std::sync::Arc::new(store),
        )
        .build()
        .unwrap();
    check(&sealed_once(&found, dir("key_sources = [\"x-pair\"]\n")));
    // The signing certificate alone: a required partner with no key is refused at the check
    // (its mail would be held, then bounced; never sent in clear).
    let refused = gateway
        .check(dir("smime_certificates = [\"sign.pem\"]\n"))
        .unwrap_err();
    let text = format!("{:?}", refused.findings);
    assert!(
        text.contains("signing only") && text.contains("no usable key"),
        "{text}"
    );
}
