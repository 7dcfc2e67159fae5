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
use postern_tests::{body_lf, sample_message, Gpg, KeyKind, PgpKind, Pki};

#[test]
fn one_message_three_copies_each_read_by_its_reader() {
    let pki = Pki::new();
    let smime_gw = pki.issue("gw@smime-partner.test", KeyKind::Rsa(2048));
    let pgp = Gpg::new();
    pgp.generate("GW <gw@pgp-partner.test>", PgpKind::Rsa3072, "never");

    let mut dir = Directory::default();
    dir.our.domains.push(Domain::new("clinic.example").unwrap());
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
    dir.partners = vec![s, p];

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
    let out = rt.block_on(router.outbound(&dir, &env, &msg, None));
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
