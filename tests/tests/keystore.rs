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
