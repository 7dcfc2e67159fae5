//! The trait really is the plug: one message, sealed for an S/MIME partner and for an OpenPGP
//! partner through the same `SecureEnvelope` API (two calls, two backends), and each copy read
//! by that partner's real tool.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is a failure report

use postern_core::{MessageView, OpenRequest, Policy, SealRequest, SecureEnvelope, Standard};
use postern_openpgp::OpenPgpEnvelope;
use postern_smime::SmimeEnvelope;
use postern_tests::{body_lf, sample_message, Gpg, KeyKind, PgpKind, Pki};

#[test]
fn one_message_two_partners_two_backends() {
    let pki = Pki::new();
    let smime_partner = pki.issue("gw@smime-partner.example", KeyKind::Rsa(2048));
    let pgp_partner = Gpg::new();
    pgp_partner.generate("GW <gw@pgp-partner.example>", PgpKind::Ed25519, "never");

    let backends: Vec<Box<dyn SecureEnvelope>> = vec![
        Box::new(SmimeEnvelope::new()),
        Box::new(OpenPgpEnvelope::new()),
    ];
    let policy = Policy::default();
    let msg = sample_message(2);
    let view = MessageView::parse(&msg).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();

    for backend in &backends {
        let certs = match backend.standard() {
            Standard::Smime => vec![smime_partner.cert_pem()],
            Standard::OpenPgp => vec![pgp_partner.export("gw@pgp-partner.example")],
            other => panic!("unexpected backend {other}"),
        };
        let sealed = rt
            .block_on(backend.seal(&view, &SealRequest::encrypt(&certs, &policy)))
            .unwrap();
        let sealed_view = MessageView::parse(&sealed).unwrap();
        // Each backend recognises its own output and not the other's.
        for other in &backends {
            assert_eq!(
                other.recognises(&sealed_view),
                other.standard() == backend.standard()
            );
        }
        let plain = match backend.standard() {
            Standard::Smime => smime_partner.openssl_decrypt(&sealed),
            _ => {
                let (plain, err, ok) =
                    pgp_partner.decrypt(&sealed_view.root().children()[1].decoded_body());
                assert!(ok, "{err}");
                plain
            }
        };
        assert_eq!(body_lf(&plain), body_lf(&msg), "{}", backend.standard());
        // And the same trait opens it again with the partner's key.
        let keys = match backend.standard() {
            Standard::Smime => vec![smime_partner.credential()],
            _ => vec![postern_tests::pgp_credential(
                &pgp_partner.export_secret("gw@pgp-partner.example"),
            )],
        };
        let opened = rt
            .block_on(backend.open(&sealed_view, &OpenRequest::new(&keys, &policy)))
            .unwrap();
        assert_eq!(opened.report.standard, backend.standard());
        assert_eq!(body_lf(&opened.message), body_lf(&msg));
    }
}
