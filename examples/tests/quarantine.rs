//! Content inspection in the running relay, and the quarantine as an administrator uses it:
//! mail with an SSN or a card number to an ordinary address is held (encrypted at rest), the
//! same content to an encryption partner goes out sealed, clean mail passes; `quarantine
//! release` delivers, `quarantine reject` bounces to the sender with the reason, and the audit
//! log records who did what. Also `dlp scan` and its exit codes.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is a failure report

mod common;

use std::time::Duration;

use postern_tests::relay::{
    free_port, message_id, send_mail, smime_partner_directory, tracked_message, wait_until,
    SmtpSink,
};
use postern_tests::{KeyKind, Pki};

use common::{cli, Relay, BIN};

fn has(sink: &SmtpSink, id: &str) -> bool {
    sink.messages()
        .iter()
        .any(|(_, m)| message_id(m).as_deref() == Some(id))
}

#[test]
fn phi_is_quarantined_then_released_or_rejected_with_an_audit_trail() {
    let pki = Pki::new();
    let partner = pki.issue("gw@smime-partner.test", KeyKind::Rsa(2048));
    let tmp = tempfile::tempdir().unwrap();
    smime_partner_directory(tmp.path(), &partner.cert);
    let out_sink = SmtpSink::start(&[]);
    let our_server = SmtpSink::start(&[]);
    let smtp = free_port();
    let config = common::write_config(
        tmp.path(),
        smtp,
        &out_sink.addr(),
        &our_server.addr(),
        "1s",
        "",
    );
    let log = tmp.path().join("relay.log");
    let relay = Relay::start(&config, &log, smtp, &[]);
    let addr = format!("127.0.0.1:{smtp}");
    let ssn = "Patient Jane Roe, SSN 078-05-1120, diagnosed with E11.9.";
    let card = "Please charge card 4111 1111 1111 1111 for the copay.";
    for (id, to, body) in [
        ("q-ssn", "c@gmail.test", ssn),
        ("q-card", "d@gmail.test", card),
        (
            "q-clean",
            "e@gmail.test",
            "See you at the meeting on Monday.",
        ),
        ("q-partner", "lab@smime-partner.test", ssn),
    ] {
        let m = tracked_message(id, to, body);
        let r = send_mail(&addr, "ada@clinic.example", &[to], &m).unwrap();
        assert!(r.starts_with("250"), "{r}");
    }
    // Clean mail and the partner's (sealed) copy go out; the PHI does not.
    assert!(wait_until(Duration::from_secs(20), || has(
        &out_sink,
        "q-clean@clinic.example"
    ) && has(
        &out_sink,
        "q-partner@clinic.example"
    )));
    let mut listing = String::new();
    assert!(
        wait_until(Duration::from_secs(10), || {
            let (ok, out) = cli(&config, &["quarantine", "list"]);
            listing = out;
            ok && listing.contains("2 messages")
        }),
        "{listing}"
    );
    std::thread::sleep(Duration::from_millis(500));
    assert!(!has(&out_sink, "q-ssn@clinic.example"));
    assert!(!has(&out_sink, "q-card@clinic.example"));
    for (_, m) in out_sink.messages() {
        if message_id(&m).as_deref() == Some("q-partner@clinic.example") {
            let t = String::from_utf8_lossy(&m);
            assert!(
                t.contains("application/pkcs7-mime") && !t.contains("078-05-1120"),
                "{t}"
            );
        }
    }
    // Nothing stays in the spool: the quarantine holds them.
    assert!(wait_until(Duration::from_secs(5), || cli(
        &config,
        &["queue", "list"]
    )
    .1
    .contains("0 messages")));
    // At rest the message is encrypted: no database file holds the SSN or the card.
    for f in std::fs::read_dir(tmp.path().join("data")).unwrap() {
        let p = f.unwrap().path();
        if p.to_string_lossy().contains("postern.sqlite") {
            let bytes = std::fs::read(&p).unwrap();
            assert!(
                memchr::memmem::find(&bytes, b"078-05-1120").is_none(),
                "{p:?}"
            );
            assert!(
                memchr::memmem::find(&bytes, b"4111 1111 1111 1111").is_none(),
                "{p:?}"
            );
        }
    }
    let id_of = |to: &str| {
        listing
            .lines()
            .find(|l| l.contains(to))
            .unwrap()
            .split_whitespace()
            .next()
            .unwrap()
            .to_string()
    };
    let (ssn_id, card_id) = (id_of("c@gmail.test"), id_of("d@gmail.test"));
    let (ok, shown) = cli(
        &config,
        &["quarantine", "show", &ssn_id, "--actor", "auditor"],
    );
    assert!(ok, "{shown}");
    assert!(
        shown.contains("***-**-1120"),
        "the verdict shows masked values: {shown}"
    );
    assert!(!shown.contains("078-05-1120"), "{shown}");
    assert!(shown.contains("Subject: lab results q-ssn"), "{shown}");

    // Release: delivered as if it had passed.
    let (ok, out) = cli(
        &config,
        &[
            "quarantine",
            "release",
            &ssn_id,
            "--actor",
            "dr-house",
            "--reason",
            "patient consented",
        ],
    );
    assert!(ok, "{out}");
    assert!(
        wait_until(Duration::from_secs(15), || has(
            &out_sink,
            "q-ssn@clinic.example"
        )),
        "{}",
        std::fs::read_to_string(&log).unwrap()
    );
    let (ok, out) = cli(&config, &["quarantine", "release", &ssn_id]);
    assert!(!ok && out.contains("already released"), "{out}");

    // Reject: the sender gets a DSN with the reason; the card never leaves.
    let (ok, out) = cli(
        &config,
        &[
            "quarantine",
            "reject",
            &card_id,
            "--actor",
            "privacy-office",
            "--reason",
            "card numbers may not be emailed",
        ],
    );
    assert!(ok, "{out}");
    assert!(wait_until(Duration::from_secs(15), || !our_server
        .messages()
        .is_empty()));
    let (to, dsn) = our_server.messages().remove(0);
    assert_eq!(to, ["ada@clinic.example"]);
    let t = String::from_utf8_lossy(&dsn).into_owned();
    assert!(t.contains("card numbers may not be emailed"), "{t}");
    assert!(t.contains("Final-Recipient: rfc822; d@gmail.test"), "{t}");
    assert!(!t.contains("4111 1111"), "{t}");
    std::thread::sleep(Duration::from_secs(1));
    assert!(!has(&out_sink, "q-card@clinic.example"));

    let (ok, audit) = cli(&config, &["quarantine", "audit"]);
    assert!(ok, "{audit}");
    for want in [
        "postern-relay  held",
        "auditor        viewed",
        "dr-house       released",
        "patient consented",
        "privacy-office rejected",
        "card numbers may not be emailed",
    ] {
        assert!(audit.contains(want), "{want:?} missing from:\n{audit}");
    }
    let logs = std::fs::read_to_string(&log).unwrap();
    assert!(
        !logs.contains("078-05-1120") && !logs.contains("4111 1111"),
        "values in the log"
    );
    drop(relay);
}

fn scan(args: &[&str], input: &[u8]) -> (i32, String) {
    let mut all = vec!["dlp", "scan"];
    all.extend_from_slice(args);
    let out = common::run(BIN, &all, input);
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    )
}

#[test]
fn dlp_scan_prints_masked_verdicts_with_exit_codes() {
    let (code, out) = scan(&[], b"Subject: hi\r\n\r\nLunch at noon?\r\n");
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("action: allow"), "{out}");
    let (code, out) = scan(&[], b"Subject: labs\r\n\r\nPatient SSN 078-05-1120\r\n");
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("action: quarantine") && out.contains("***-**-1120"),
        "{out}"
    );
    assert!(!out.contains("078-05-1120"), "{out}");
    let (code, out) = scan(
        &["--json"],
        b"Subject: pay\r\n\r\ncard 4111-1111-1111-1111\r\n",
    );
    assert_eq!(code, 1, "{out}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["action"], "quarantine");
    assert_eq!(v["hits"][0]["samples"][0], "****-****-****-1111");
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("p.toml");
    std::fs::write(&policy, "[detector_action]\ncard = \"block\"\n").unwrap();
    let (code, out) = scan(
        &["--policy", policy.to_str().unwrap()],
        b"Subject: pay\r\n\r\ncard 4111-1111-1111-1111\r\n",
    );
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("action: block"), "{out}");
    std::fs::write(&policy, "nonsense = 1\n").unwrap();
    let (code, out) = scan(&["--policy", policy.to_str().unwrap()], b"x");
    assert_eq!(code, 2, "{out}");
}

/// Inbound: plaintext from a partner that must encrypt is held when the policy says so, and a
/// release delivers it to our mail server (not back into the quarantine), without the result
/// headers it brought from outside.
#[test]
fn held_inbound_mail_is_released_to_our_server() {
    let pki = Pki::new();
    let partner = pki.issue("gw@smime-partner.test", KeyKind::Rsa(2048));
    let tmp = tempfile::tempdir().unwrap();
    smime_partner_directory(tmp.path(), &partner.cert);
    let our_server = SmtpSink::start(&[]);
    let (smtp, public) = (free_port(), free_port());
    let config = common::write_config(
        tmp.path(),
        smtp,
        "127.0.0.1:9",
        &our_server.addr(),
        "1s",
        "",
    );
    let text = std::fs::read_to_string(&config).unwrap().replace(
        "[public]\nlisten = \"\"\n",
        &format!("[public]\nlisten = \"127.0.0.1:{public}\"\nnetworks = [\"127.0.0.0/8\"]\n"),
    );
    std::fs::write(
        &config,
        format!("{text}[inbound_policy]\nplaintext_from_required = \"quarantine\"\n"),
    )
    .unwrap();
    let log = tmp.path().join("relay.log");
    let _relay = Relay::start(&config, &log, public, &[]);
    let m = [
        b"Postern-Signature: valid signer=ceo@clinic.example\r\n".as_slice(),
        &tracked_message(
            "in-plain",
            "records@clinic.example",
            "Referral, unencrypted.",
        ),
    ]
    .concat();
    let r = send_mail(
        &format!("127.0.0.1:{public}"),
        "gw@smime-partner.test",
        &["records@clinic.example"],
        &m,
    )
    .unwrap();
    assert!(r.starts_with("250"), "{r}");
    let mut listing = String::new();
    assert!(
        wait_until(Duration::from_secs(15), || {
            let (ok, out) = cli(&config, &["quarantine", "list"]);
            listing = out;
            ok && listing.contains("1 messages")
        }),
        "{listing}"
    );
    assert!(our_server.messages().is_empty());
    let id = listing.split_whitespace().next().unwrap().to_string();
    let (ok, out) = cli(
        &config,
        &["quarantine", "release", &id, "--actor", "postmaster"],
    );
    assert!(ok, "{out}");
    assert!(
        wait_until(Duration::from_secs(15), || has(
            &our_server,
            "in-plain@clinic.example"
        )),
        "{}",
        std::fs::read_to_string(&log).unwrap()
    );
    let (_, got) = our_server.messages().remove(0);
    let t = String::from_utf8_lossy(&got);
    assert!(
        !t.contains("ceo@clinic.example"),
        "forged header delivered:\n{t}"
    );
    assert!(t.contains("Referral, unencrypted."), "{t}");
    assert!(cli(&config, &["quarantine", "list"])
        .1
        .contains("0 messages"));
}
