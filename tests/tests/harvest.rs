//! Harvesting partner certificates from valid signatures: offered only by a signature that
//! chains to our anchors with a certificate wholly in the partner's domain and able to receive
//! mail; used for mail to the partner only after approval (or at once with `automatic`);
//! every offer and decision audited. OpenSSL reads what is then sealed to it.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is a failure report

use std::process::Command;
use std::sync::Arc;

use postern_core::{Address, Domain, SecureEnvelope, Standard};
use postern_relay::harvest::{offer_from, HarvestStore};
use postern_router::{
    Directory, Disposition, DomainPattern, Envelope, Harvest, Inbound, InboundRouter, KeySource,
    Partner, PartnerPolicy, Router,
};
use postern_smime::SmimeEnvelope;
use postern_store::audit::AuditLog;
use postern_store::Db;
use postern_tests::{checked, run_ok, sample_message, EndEntity, KeyKind, Pki};

fn partner(domain: &str, harvest: Harvest) -> Partner {
    let mut p = Partner::new(
        DomainPattern::Exact(Domain::new(domain).unwrap()),
        PartnerPolicy::Required,
        vec![Standard::Smime],
    );
    p.harvest = harvest;
    p.key_sources.push(KeySource::Harvested);
    p
}

fn signed_by(signer: &EndEntity, from: &str) -> Vec<u8> {
    let msg = format!(
        "From: {from}\r\n{}",
        String::from_utf8(sample_message(1))
            .unwrap()
            .replace("From: ", "X-Old-From: ")
    );
    run_ok(
        Command::new("openssl")
            .args(["cms", "-sign", "-signer"])
            .arg(&signer.cert)
            .arg("-inkey")
            .arg(&signer.key),
        msg.as_bytes(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn harvested_certificates_are_used_only_when_approved() {
    let pki = Pki::new();
    let gateway = pki.issue("gw@partner.test", KeyKind::Rsa(2048));
    let auto_gw = pki.issue("gw@auto.test", KeyKind::Rsa(2048));
    let eve = pki.issue("eve@evil.test", KeyKind::Rsa(2048));
    let sign_only = pki.issue_with(
        "signer@partner.test",
        KeyKind::Rsa(2048),
        "digitalSignature",
        "emailProtection",
        30,
    );

    let mut dir = Directory::default();
    dir.our.domains.push(Domain::new("clinic.example").unwrap());
    dir.our.trust_anchors.push(pki.ca_pem());
    dir.partners = vec![
        partner("partner.test", Harvest::Approve),
        partner("auto.test", Harvest::Automatic),
    ];
    let db_dir = tempfile::tempdir().unwrap();
    let db = Db::sqlite(&db_dir.path().join("postern.sqlite"))
        .await
        .unwrap();
    let store = Arc::new(HarvestStore::new(db.clone()));
    let smime = SmimeEnvelope::new();
    let inbound = InboundRouter::new(vec![Arc::new(SmimeEnvelope::new())]);
    let offer = |signer: &EndEntity, from: &str| {
        let message = signed_by(signer, from);
        let from = Address::new(from).unwrap();
        let (inbound, dir, store, smime) = (&inbound, &dir, &store, &smime);
        async move {
            let Inbound::Deliver {
                report: Some(report),
                ..
            } = inbound.inbound(&checked(dir), Some(&from), &message).await
            else {
                panic!("not delivered with a report");
            };
            offer_from(store, dir, Some(&from), &report, smime)
                .await
                .unwrap()
        }
    };
    let backends: Vec<Arc<dyn SecureEnvelope>> = vec![Arc::new(SmimeEnvelope::new())];
    let router = Router::new(backends).with_key_store(KeySource::Harvested, store.clone());
    let msg = sample_message(1);
    let send = |to: &str| {
        let env = Envelope {
            mail_from: Some(Address::new("ada@clinic.example").unwrap()),
            rcpt_to: vec![Address::new(to).unwrap()],
        };
        let (router, dir, msg) = (&router, &dir, &msg);
        async move {
            router
                .outbound(&checked(dir), &env, msg, None)
                .await
                .remove(0)
        }
    };

    // Not offered: a stranger's certificate under an envelope sender that claims the partner,
    // and the partner's signing-only certificate.
    assert_eq!(offer(&eve, "alice@partner.test").await, 0);
    assert_eq!(offer(&sign_only, "signer@partner.test").await, 0);
    // Offered, once.
    assert_eq!(offer(&gateway, "gw@partner.test").await, 1);
    assert_eq!(offer(&gateway, "gw@partner.test").await, 0, "offered twice");
    let pending = store
        .list(Some(postern_store::HarvestState::Pending))
        .await
        .unwrap();
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0].partner, "partner.test");

    // Pending is not used: the required partner's mail is refused, never plain.
    match send("bob@partner.test").await {
        Disposition::Bounce { .. } => {}
        other => panic!("pending certificate used: {other:?}"),
    }
    store.decide(pending[0].id, true, "admin").await.unwrap();
    match send("bob@partner.test").await {
        Disposition::Deliver {
            message,
            sealed: Some(Standard::Smime),
            ..
        } => {
            let plain = gateway.openssl_decrypt(&message);
            assert!(String::from_utf8_lossy(&plain).contains("Potassium"));
        }
        other => panic!("approved certificate: {other:?}"),
    }
    // Rejected again: no longer used.
    store.decide(pending[0].id, false, "admin").await.unwrap();
    assert!(matches!(
        send("bob@partner.test").await,
        Disposition::Bounce { .. }
    ));

    // `automatic`: used at once.
    assert_eq!(offer(&auto_gw, "gw@auto.test").await, 1);
    assert!(matches!(
        send("x@auto.test").await,
        Disposition::Deliver {
            sealed: Some(Standard::Smime),
            ..
        }
    ));

    // Every step is in the audit log, whose chain holds.
    let audit = AuditLog::new(db.clone());
    let actions: Vec<String> = audit
        .list(None)
        .await
        .unwrap()
        .iter()
        .map(|r| r.action.clone())
        .collect();
    for a in ["key-offered", "key-approved", "key-rejected"] {
        assert!(actions.iter().any(|x| x == a), "{a} missing: {actions:?}");
    }
    assert!(audit.verify().await.unwrap().is_ok());
}

/// A published key that changes between lookups is audited (key-changed, with both
/// fingerprints); the same key again is not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_published_key_is_audited() {
    use postern_core::{Credential, Error, KeyStore};
    use postern_relay::keywatch::Watched;

    #[derive(Debug, Default)]
    struct Changing(std::sync::Mutex<Vec<Vec<u8>>>);
    #[async_trait::async_trait]
    impl KeyStore for Changing {
        async fn recipient_certificates(
            &self,
            _: Standard,
            _: &Address,
        ) -> Result<Vec<Vec<u8>>, Error> {
            Ok(self.0.lock().unwrap().clone())
        }
        async fn own_credentials(&self, _: Standard, _: &Domain) -> Result<Vec<Credential>, Error> {
            Ok(Vec::new())
        }
    }
    let db_dir = tempfile::tempdir().unwrap();
    let db = Db::sqlite(&db_dir.path().join("postern.sqlite"))
        .await
        .unwrap();
    let audit = Arc::new(AuditLog::new(db.clone()));
    let inner = Arc::new(Changing::default());
    *inner.0.lock().unwrap() = vec![b"first certificate".to_vec()];
    let watched = Watched::new(inner.clone(), "wkd", audit.clone());
    let alice = Address::new("alice@partner.test").unwrap();
    let changes = || async {
        audit
            .list(None)
            .await
            .unwrap()
            .iter()
            .filter(|r| r.action == "key-changed")
            .count()
    };
    watched
        .recipient_certificates(Standard::OpenPgp, &alice)
        .await
        .unwrap();
    watched
        .recipient_certificates(Standard::OpenPgp, &alice)
        .await
        .unwrap();
    assert_eq!(changes().await, 0, "the same key twice");
    *inner.0.lock().unwrap() = vec![b"another certificate".to_vec()];
    watched
        .recipient_certificates(Standard::OpenPgp, &alice)
        .await
        .unwrap();
    assert_eq!(changes().await, 1);
    let row = audit.list(None).await.unwrap().pop().unwrap();
    assert_eq!(row.object, "alice@partner.test");
}
