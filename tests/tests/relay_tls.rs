//! STARTTLS with Postfix on both sides of the relay: Postfix that insists on encryption
//! (`smtp_tls_security_level = encrypt`) delivers to our listener; and towards the next hop a
//! `tls-required` partner's mail goes only over TLS with a verified certificate — to an
//! untrusted certificate, or a hop without STARTTLS, it waits and never leaves in clear.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is a failure report

use std::time::Duration;

use postern_relay::config::TlsConfig;
use postern_relay::RunningRelay;
use postern_tests::relay::{
    message_id, runtime, send_mail, test_config, tracked_message, wait_until, write_directory,
    Postfix, SmtpSink,
};
use postern_tests::Pki;

fn relay(
    rt: &tokio::runtime::Runtime,
    tmp: &std::path::Path,
    outbound: String,
    ca_file: Option<&std::path::Path>,
) -> RunningRelay {
    write_directory(
        tmp,
        "[our]\ndomains = [\"clinic.example\"]\n\n[[partner]]\ndomain = \"tls-partner.test\"\n\
         policy = \"tls-required\"\n",
    );
    let mut cfg = test_config(tmp, &outbound, "dir:inbox");
    cfg.public.listen = String::new();
    cfg.tls = TlsConfig {
        ca_file: ca_file.map(|p| p.to_path_buf()).unwrap_or_default(),
        ..TlsConfig::default()
    };
    rt.block_on(postern_relay::start(&cfg)).unwrap()
}

fn arrived(sink: &SmtpSink, id: &str) -> bool {
    sink.messages()
        .iter()
        .any(|(_, m)| message_id(m).as_deref() == Some(id))
}

#[test]
fn postfix_that_insists_on_encryption_delivers_to_our_listener() {
    let rt = runtime();
    let tmp = tempfile::tempdir().unwrap();
    let sink = SmtpSink::start(&[]);
    let r = relay(&rt, tmp.path(), sink.addr(), None);
    let postfix = Postfix::start_with(
        r.internal_addr.unwrap().port(),
        "smtp_tls_security_level = encrypt",
    );
    let m = tracked_message("tls-in-1", "c@gmail.test", "hello");
    let reply = send_mail(
        &format!("127.0.0.1:{}", postfix.port),
        "ada@clinic.example",
        &["c@gmail.test"],
        &m,
    )
    .unwrap();
    assert!(reply.starts_with("250"), "{reply}");
    assert!(
        wait_until(Duration::from_secs(30), || arrived(
            &sink,
            "tls-in-1@clinic.example"
        )),
        "postfix log:\n{}",
        postfix.log()
    );
    assert!(
        postfix.log().contains("TLS connection established to"),
        "{}",
        postfix.log()
    );
    let (_, got) = sink.messages().remove(0);
    assert!(String::from_utf8_lossy(&got).contains("(Postern) with ESMTPS"));
    rt.block_on(r.shutdown(Duration::from_secs(5)));
}

#[test]
fn tls_required_mail_goes_only_over_verified_tls() {
    let rt = runtime();
    let pki = Pki::new();
    let server = pki.issue_tls_server();
    let ca = pki.file("ca-trust.pem", &pki.ca_pem());
    let sink = SmtpSink::start(&[]);
    let tls_hop = Postfix::start_with(
        sink.port,
        &format!(
            "smtpd_tls_security_level = may\nsmtpd_tls_cert_file = {}\nsmtpd_tls_key_file = {}",
            server.cert.display(),
            server.key.display()
        ),
    );
    let plain_hop = Postfix::start_with(sink.port, "smtpd_tls_security_level = none");

    // Trusted certificate: both copies arrive, the partner's over verified TLS.
    let tmp = tempfile::tempdir().unwrap();
    let r = relay(
        &rt,
        tmp.path(),
        format!("127.0.0.1:{}", tls_hop.port),
        Some(&ca),
    );
    let internal = r.internal_addr.unwrap().to_string();
    for (id, to) in [("v-1", "x@tls-partner.test"), ("v-2", "c@gmail.test")] {
        let m = tracked_message(id, to, "lab report");
        assert!(send_mail(&internal, "ada@clinic.example", &[to], &m)
            .unwrap()
            .starts_with("250"));
    }
    assert!(
        wait_until(Duration::from_secs(30), || arrived(
            &sink,
            "v-1@clinic.example"
        ) && arrived(
            &sink,
            "v-2@clinic.example"
        )),
        "{}",
        tls_hop.log()
    );
    assert!(
        tls_hop
            .log()
            .matches("TLS connection established from")
            .count()
            >= 2,
        "{}",
        tls_hop.log()
    );
    rt.block_on(r.shutdown(Duration::from_secs(5)));

    // The same hop, but its CA is not trusted: the partner's copy waits; the other goes
    // (opportunistic TLS takes any certificate).
    let tmp = tempfile::tempdir().unwrap();
    let r = relay(&rt, tmp.path(), format!("127.0.0.1:{}", tls_hop.port), None);
    let internal = r.internal_addr.unwrap().to_string();
    for (id, to) in [("u-1", "x@tls-partner.test"), ("u-2", "c@gmail.test")] {
        let m = tracked_message(id, to, "lab report");
        assert!(send_mail(&internal, "ada@clinic.example", &[to], &m)
            .unwrap()
            .starts_with("250"));
    }
    assert!(wait_until(Duration::from_secs(30), || arrived(
        &sink,
        "u-2@clinic.example"
    )));
    std::thread::sleep(Duration::from_secs(3));
    assert!(
        !arrived(&sink, "u-1@clinic.example"),
        "sent without a verified certificate"
    );
    let (waiting, _) = r.spool().list().unwrap();
    assert_eq!(waiting.len(), 1);
    let why = waiting[0].recipients[0]
        .last_error
        .clone()
        .unwrap_or_default();
    assert!(
        why.contains("TLS handshake") || why.contains("certificate"),
        "{why}"
    );
    rt.block_on(r.shutdown(Duration::from_secs(5)));

    // A hop that offers no STARTTLS at all: the partner's copy waits.
    let tmp = tempfile::tempdir().unwrap();
    let r = relay(
        &rt,
        tmp.path(),
        format!("127.0.0.1:{}", plain_hop.port),
        Some(&ca),
    );
    let internal = r.internal_addr.unwrap().to_string();
    let m = tracked_message("n-1", "x@tls-partner.test", "lab report");
    assert!(
        send_mail(&internal, "ada@clinic.example", &["x@tls-partner.test"], &m)
            .unwrap()
            .starts_with("250")
    );
    std::thread::sleep(Duration::from_secs(3));
    assert!(!arrived(&sink, "n-1@clinic.example"), "sent in clear");
    let (waiting, _) = r.spool().list().unwrap();
    let why = waiting[0].recipients[0]
        .last_error
        .clone()
        .unwrap_or_default();
    assert!(why.contains("does not offer STARTTLS"), "{why}");
    rt.block_on(r.shutdown(Duration::from_secs(5)));
}
