//! The relay when things go wrong, over real TCP with Postfix's smtp-sink as the next hop:
//! an outage (retry, then delivery, no bounce), permanent and give-up failures (RFC 3464 DSN to
//! the sender), a required partner's key taken away mid-run (never plaintext), and abusive
//! clients (each gets its reply; the relay goes on serving).
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is a failure report

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use postern_relay::config::{Limits, RelayConfig};
use postern_relay::RunningRelay;
use postern_tests::relay::{
    free_port, message_id, runtime, send_mail, smime_partner_directory, submit, test_config,
    tracked_message, wait_until, Client, SmtpSink,
};
use postern_tests::{KeyKind, Pki};

struct Setup {
    _pki: Pki,
    tmp: tempfile::TempDir,
    rt: tokio::runtime::Runtime,
}

/// A directory with our domain and one required S/MIME partner.
fn setup() -> Setup {
    let pki = Pki::new();
    let partner = pki.issue("gw@smime-partner.test", KeyKind::Rsa(2048));
    let tmp = tempfile::tempdir().unwrap();
    smime_partner_directory(tmp.path(), &partner.cert);
    Setup {
        _pki: pki,
        tmp,
        rt: runtime(),
    }
}

fn config(s: &Setup, outbound: &str, inbound: &str) -> RelayConfig {
    test_config(s.tmp.path(), outbound, inbound)
}

fn start(s: &Setup, outbound: &str, inbound: &str) -> RunningRelay {
    s.rt.block_on(postern_relay::start(&config(s, outbound, inbound)))
        .unwrap()
}

fn internal(r: &RunningRelay) -> String {
    r.internal_addr.unwrap().to_string()
}

fn spool_len(r: &RunningRelay) -> usize {
    r.spool().list().unwrap().0.len()
}

#[test]
fn an_outage_is_retried_and_everything_arrives_without_a_bounce() {
    let s = setup();
    let port = free_port();
    let our_server = SmtpSink::start(&[]);
    let relay = start(&s, &format!("127.0.0.1:{port}"), &our_server.addr());
    for i in 0..20 {
        let m = tracked_message(&format!("outage-{i}"), "c@gmail.test", "hello");
        let r = send_mail(
            &internal(&relay),
            "ada@clinic.example",
            &["c@gmail.test"],
            &m,
        )
        .unwrap();
        assert!(r.starts_with("250"), "{r}");
    }
    // Next hop down: everything waits in the spool with the reason, nothing bounces.
    assert!(wait_until(Duration::from_secs(10), || relay
        .metrics()
        .deferred
        .get()
        >= 20));
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(spool_len(&relay), 20);
    let (entries, _) = relay.spool().list().unwrap();
    assert!(entries.iter().all(|e| e.recipients[0]
        .last_error
        .as_deref()
        .is_some_and(|x| x.contains("connect"))));
    assert!(
        entries.iter().all(|e| e.attempts >= 2),
        "retried on schedule"
    );

    // It comes back: every message arrives, once each, and no DSN was sent.
    let sink = SmtpSink::start_on(port, &[]);
    assert!(
        wait_until(Duration::from_secs(30), || sink.messages().len() >= 20),
        "{} arrived",
        sink.messages().len()
    );
    let mut ids: Vec<String> = sink
        .messages()
        .iter()
        .filter_map(|(_, m)| message_id(m))
        .collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 20);
    assert!(wait_until(Duration::from_secs(5), || spool_len(&relay) == 0));
    assert!(
        our_server.messages().is_empty(),
        "no bounce before the limit"
    );
    assert_eq!(relay.metrics().bounced.get(), 0);
    s.rt.block_on(relay.shutdown(Duration::from_secs(5)));
}

#[test]
fn permanent_refusal_and_giving_up_each_send_one_dsn_to_the_sender() {
    let s = setup();
    let refusing = SmtpSink::start(&["-f", "RCPT"]);
    let our_server = SmtpSink::start(&[]);
    let relay = start(&s, &refusing.addr(), &our_server.addr());
    submit(&internal(&relay), "refused-1", "c@gmail.test", "hello");
    assert!(wait_until(Duration::from_secs(20), || !our_server
        .messages()
        .is_empty()));
    let (rcpts, dsn) = our_server.messages().remove(0);
    assert_eq!(rcpts, ["ada@clinic.example"]);
    let t = String::from_utf8_lossy(&dsn).into_owned();
    assert!(
        t.contains("multipart/report; report-type=delivery-status"),
        "{t}"
    );
    assert!(t.contains("Final-Recipient: rfc822; c@gmail.test"), "{t}");
    assert!(t.contains("Action: failed"), "{t}");
    assert!(t.contains("Status: 5.3.0"), "the next hop's code: {t}");
    assert!(t.contains("Message-ID: <refused-1@clinic.example>"), "{t}");
    assert!(!t.contains("\r\nhello\r\n"), "the body is not returned");
    assert!(wait_until(Duration::from_secs(10), || spool_len(&relay) == 0));
    s.rt.block_on(relay.shutdown(Duration::from_secs(5)));

    // A next hop that only ever says "try later": retried, then one DSN when the age limit
    // passes (2 s here; 5 days by default).
    let s = setup();
    let deferring = SmtpSink::start(&["-r", "RCPT"]);
    let our_server = SmtpSink::start(&[]);
    let mut cfg = config(&s, &deferring.addr(), &our_server.addr());
    cfg.retry.give_up_after = "2s".into();
    let relay = s.rt.block_on(postern_relay::start(&cfg)).unwrap();
    submit(&internal(&relay), "late-1", "c@gmail.test", "hello");
    assert!(wait_until(Duration::from_secs(20), || !our_server
        .messages()
        .is_empty()));
    std::thread::sleep(Duration::from_secs(2));
    let dsns = our_server.messages();
    assert_eq!(dsns.len(), 1, "one DSN only");
    let t = String::from_utf8_lossy(&dsns[0].1).into_owned();
    assert!(t.contains("Status: 4.4.7"), "{t}");
    assert!(t.contains("gave up after"), "{t}");
    // smtp-sink dumps aborted transactions too: none of them carried the message.
    assert!(deferring
        .messages()
        .iter()
        .all(|(rcpts, m)| rcpts.is_empty() && message_id(m).is_none()));
    s.rt.block_on(relay.shutdown(Duration::from_secs(5)));
}

#[test]
fn a_required_partner_whose_key_goes_away_never_gets_plaintext() {
    let s = setup();
    let sink = SmtpSink::start(&[]);
    let our_server = SmtpSink::start(&[]);
    let relay = start(&s, &sink.addr(), &our_server.addr());
    let secret = "Patient SSN 078-05-1120 diagnosis E11.9";
    let mut acked = 0;
    for i in 0..40 {
        if i == 15 {
            // The partner's certificate is taken out of the directory in force. A directory
            // that leaves a required partner without a key is refused as it stands...
            let mut dir = (*relay.directory()).clone().into_inner();
            dir.partners[0].certificates.clear();
            let refused = relay.replace_directory(dir.clone()).unwrap_err();
            assert!(
                refused
                    .to_string()
                    .contains("required partner has no usable key"),
                "{refused}"
            );
            // ...so its keys are to be found at send time instead (harvested certificates
            // under our CA), and none is there: the key has gone away.
            dir.partners[0].key_sources = vec![postern_router::KeySource::Harvested];
            dir.partners[0]
                .trust_anchors
                .push(std::fs::read(&s._pki.ca_cert).unwrap());
            relay.replace_directory(dir).unwrap();
        }
        let m = tracked_message(&format!("fc-{i}"), "lab@smime-partner.test", secret);
        let r = send_mail(
            &internal(&relay),
            "ada@clinic.example",
            &["lab@smime-partner.test"],
            &m,
        )
        .unwrap();
        assert!(r.starts_with("250"), "{r}");
        acked += 1;
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_secs(3));
    let got = sink.messages();
    assert!(
        got.len() >= 10,
        "messages before the change were sealed and sent"
    );
    for (_, m) in &got {
        let t = String::from_utf8_lossy(m);
        assert!(t.contains("application/pkcs7-mime"), "unsealed copy:\n{t}");
        assert!(!t.contains("078-05-1120"), "plaintext reached the partner");
    }
    // Those that could not be sealed wait (or bounced to us), none were dropped.
    let spooled = spool_len(&relay);
    let bounced = our_server.messages().len();
    assert_eq!(
        got.len() + spooled + bounced,
        acked,
        "every message is accounted for"
    );
    assert!(spooled + bounced >= 20);
    assert!(bounced > 0, "no usable key is permanent: bounced, not held");
    for (_, m) in our_server.messages() {
        let t = String::from_utf8_lossy(&m);
        assert!(!t.contains("078-05-1120"), "a bounce carried the body");
        // The status comes from the typed reason (no usable key: a cryptographic failure),
        // not from a fixed "not authorised".
        assert!(t.contains("Status: 5.7.5"), "{t}");
    }
    s.rt.block_on(relay.shutdown(Duration::from_secs(5)));
}

fn abuse_config(s: &Setup, sink: &SmtpSink) -> RelayConfig {
    let mut cfg = config(s, &sink.addr(), "dir:inbox");
    cfg.limits = Limits {
        max_message_size: 100_000,
        max_recipients: 100,
        max_connections: 20,
        command_timeout_secs: 2,
        data_timeout_secs: 3,
        max_errors: 5,
        ..Limits::default()
    };
    cfg
}

/// The relay still serves a normal client.
fn still_serves(addr: &str) {
    let m = tracked_message("after-abuse", "c@gmail.test", "fine");
    let r = send_mail(addr, "ada@clinic.example", &["c@gmail.test"], &m).unwrap();
    assert!(r.starts_with("250"), "{r}");
}

#[test]
fn abusive_clients_get_their_reply_and_the_relay_keeps_serving() {
    let s = setup();
    let sink = SmtpSink::start(&[]);
    let relay =
        s.rt.block_on(postern_relay::start(&abuse_config(&s, &sink)))
            .unwrap();
    let addr = internal(&relay);

    // Oversize, announced and not announced; the session goes on afterwards.
    let (mut c, _) = Client::connect(&addr).unwrap();
    c.cmd("EHLO big.test").unwrap();
    let r = c.cmd("MAIL FROM:<ada@clinic.example> SIZE=200000").unwrap();
    assert!(r.starts_with("552 5.3.4"), "{r}");
    let big = tracked_message("big", "c@gmail.test", &"x".repeat(150_000));
    let r = c
        .send("ada@clinic.example", &["c@gmail.test"], &big)
        .unwrap();
    assert!(r.starts_with("552 5.3.4"), "{r}");
    let r = c
        .send(
            "ada@clinic.example",
            &["c@gmail.test"],
            &tracked_message("small", "c@gmail.test", "ok"),
        )
        .unwrap();
    assert!(r.starts_with("250"), "{r}");
    let _ = c.cmd("QUIT");

    // 10,000 recipients, pipelined: the first 100 are taken, the rest get 452 4.5.3.
    let stream = TcpStream::connect(&addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut writer = stream.try_clone().unwrap();
    let w = std::thread::spawn(move || {
        let mut b = String::from("EHLO many.test\r\nMAIL FROM:<ada@clinic.example>\r\n");
        for i in 0..10_000 {
            b.push_str(&format!("RCPT TO:<r{i}@gmail.test>\r\n"));
        }
        b.push_str("QUIT\r\n");
        writer.write_all(b.as_bytes()).unwrap();
    });
    let mut lines = Vec::new();
    BufReader::new(stream)
        .lines()
        .map_while(Result::ok)
        .for_each(|l| lines.push(l));
    w.join().unwrap();
    let ok = lines.iter().filter(|l| l.starts_with("250 2.1.5")).count();
    let full = lines.iter().filter(|l| l.starts_with("452 4.5.3")).count();
    assert_eq!((ok, full), (100, 9_900));
    assert!(lines.last().unwrap().starts_with("221"));

    // Bare LF in the data (the start of SMTP smuggling): refused, connection closed.
    let (mut c, _) = Client::connect(&addr).unwrap();
    c.cmd("EHLO lf.test").unwrap();
    c.cmd("MAIL FROM:<ada@clinic.example>").unwrap();
    c.cmd("RCPT TO:<c@gmail.test>").unwrap();
    c.cmd("DATA").unwrap();
    c.raw(b"Subject: x\r\n\r\nbody\n.\nMAIL FROM:<evil@x.test>\r\n.\r\n")
        .unwrap();
    let r = c.reply().unwrap();
    assert!(r.starts_with("521 5.5.2"), "{r}");
    assert!(c.reply().is_err(), "closed after 521");

    // Binary garbage: error replies, then 421 and a closed connection.
    let (mut c, _) = Client::connect(&addr).unwrap();
    let mut garbage = Vec::new();
    let mut x: u32 = 0x1234_5678;
    for _ in 0..20_000 {
        x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
        garbage.push((x >> 16) as u8);
    }
    let _ = c.raw(&garbage);
    let _ = c.raw(b"\r\n");
    let mut last = String::new();
    while let Ok(r) = c.reply() {
        last = r;
    }
    assert!(last.starts_with("421"), "{last}");

    // Slowloris: a byte at a time never completes a command before the timeout.
    let mut slow = TcpStream::connect(&addr).unwrap();
    slow.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let start = Instant::now();
    let mut seen = Vec::new();
    while start.elapsed() < Duration::from_secs(8) {
        if slow.write_all(b"E").is_err() {
            break;
        }
        let mut buf = [0u8; 512];
        match slow.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => seen.extend_from_slice(&buf[..n]),
            Err(_) => {}
        }
    }
    let seen = String::from_utf8_lossy(&seen).into_owned();
    assert!(seen.contains("421 4.4.2"), "{seen}");
    assert!(
        start.elapsed() < Duration::from_secs(6),
        "cut off by the timeout"
    );

    // Too many connections at once: the one over the limit gets 421.
    let mut held = Vec::new();
    for _ in 0..20 {
        held.push(Client::connect(&addr).unwrap());
    }
    let mut over = TcpStream::connect(&addr).unwrap();
    over.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut buf = String::new();
    let _ = over.read_to_string(&mut buf);
    assert!(buf.starts_with("421 4.3.2"), "{buf}");
    drop(held);

    // Commands out of order (once the held sessions have gone).
    let mut c = None;
    assert!(wait_until(Duration::from_secs(5), || {
        let (client, greeting) = Client::connect(&addr).unwrap();
        c = Some(client);
        greeting.starts_with("220")
    }));
    let mut c = c.unwrap();
    assert!(c.cmd("DATA").unwrap().starts_with("503"));
    assert!(c.cmd("RCPT TO:<a@b.test>").unwrap().starts_with("503"));
    assert!(c.cmd("MAIL FROM:<x@y.test>").unwrap().starts_with("503"));
    let _ = c.cmd("QUIT");

    std::thread::sleep(Duration::from_millis(500));
    still_serves(&addr);
    assert!(wait_until(Duration::from_secs(10), || sink
        .messages()
        .iter()
        .any(
            |(_, m)| message_id(m).as_deref() == Some("after-abuse@clinic.example")
        )));
    s.rt.block_on(relay.shutdown(Duration::from_secs(5)));
}

#[test]
fn clients_outside_the_configured_networks_are_refused() {
    let s = setup();
    let sink = SmtpSink::start(&[]);
    let mut cfg = abuse_config(&s, &sink);
    cfg.internal.networks = vec!["10.0.0.0/8".into()];
    let relay = s.rt.block_on(postern_relay::start(&cfg)).unwrap();
    let (_, greeting) = Client::connect(&internal(&relay)).unwrap();
    assert!(greeting.starts_with("554 5.7.1"), "{greeting}");
    s.rt.block_on(relay.shutdown(Duration::from_secs(5)));
}

#[test]
fn a_spool_that_cannot_be_written_gets_451_and_nothing_is_acknowledged() {
    let s = setup();
    let sink = SmtpSink::start(&[]);
    let relay = start(&s, &sink.addr(), "dir:inbox");
    // The spool's staging folder becomes a file: every write fails, as on a full disk.
    let tmp_dir = relay.spool().root().join("tmp");
    std::fs::remove_dir_all(&tmp_dir).unwrap();
    std::fs::write(&tmp_dir, b"not a folder").unwrap();
    let m = tracked_message("nospace-1", "c@gmail.test", "hello");
    let r = send_mail(
        &internal(&relay),
        "ada@clinic.example",
        &["c@gmail.test"],
        &m,
    )
    .unwrap();
    assert!(r.starts_with("451 4.3.0"), "{r}");
    assert_eq!(spool_len(&relay), 0);
    // Writable again: the client's retry is accepted and delivered.
    std::fs::remove_file(&tmp_dir).unwrap();
    std::fs::create_dir(&tmp_dir).unwrap();
    submit(&internal(&relay), "nospace-1", "c@gmail.test", "hello");
    assert!(wait_until(Duration::from_secs(15), || sink
        .messages()
        .iter()
        .any(
            |(_, m)| message_id(m).as_deref() == Some("nospace-1@clinic.example")
        )));
    s.rt.block_on(relay.shutdown(Duration::from_secs(5)));
}

/// An inspector that panics on a marker: stands in for any bug a hostile message could reach
/// inside the decision (parsers, backends, inspection).
#[derive(Debug)]
struct PanicsOnMarker;

impl postern_relay::ContentInspector for PanicsOnMarker {
    fn inspect(
        &self,
        _: &postern_router::Envelope,
        message: &[u8],
    ) -> Option<postern_relay::Inspection> {
        if message.windows(11).any(|w| w == b"X-Panic-Me:") {
            panic!("injected");
        }
        None
    }
}

/// Issue 14.4: a panic while deciding about one message holds that message with the reason
/// and counts it; the worker goes on and the next message is delivered.
#[test]
fn a_panic_in_processing_holds_that_message_and_the_worker_goes_on() {
    let s = setup();
    let sink = SmtpSink::start(&[]);
    let relay =
        s.rt.block_on(postern_relay::start_with(
            &config(&s, &sink.addr(), &sink.addr()),
            std::sync::Arc::new(PanicsOnMarker),
        ))
        .unwrap();
    let addr = internal(&relay);
    let bad = b"From: ada@clinic.example\r\nTo: x@gmail.test\r\nX-Panic-Me: yes\r\nSubject: a\r\n\r\nhi\r\n";
    let r = send_mail(&addr, "ada@clinic.example", &["x@gmail.test"], bad).unwrap();
    assert!(r.starts_with("250"), "{r}");
    // Every worker meets the same message only once: the rest keep going.
    for i in 0..6 {
        submit(&addr, &format!("after-{i}"), "y@gmail.test", "fine");
    }
    assert!(
        wait_until(Duration::from_secs(20), || sink.count() == 6
            && relay.metrics().panics.get() == 1),
        "{} of 6 arrived, {} panics",
        sink.count(),
        relay.metrics().panics.get()
    );
    assert!(wait_until(Duration::from_secs(10), || {
        let (entries, _) = relay.spool().list().unwrap();
        serde_json::to_string(&entries)
            .unwrap()
            .contains("internal error")
    }));
    let (entries, _) = relay.spool().list().unwrap();
    assert_eq!(entries.len(), 1, "only the panicking message stays");
    let state = serde_json::to_string(&entries[0].recipients).unwrap();
    assert!(state.contains("internal error"), "{state}");
    assert!(
        relay
            .metrics()
            .render()
            .contains("postern_processing_panics_total 1"),
        "the alert metric"
    );
}

/// Issue 14.4: header names that are not ASCII (they once panicked the seal path and the
/// inbound result-header filter) go through both directions.
#[test]
fn non_ascii_header_names_neither_panic_nor_stop_mail() {
    let s = setup();
    let sink = SmtpSink::start(&[]);
    let relay = start(&s, &sink.addr(), &sink.addr());
    let addr = internal(&relay);
    let public = relay.public_addr.unwrap().to_string();
    let out = "From: ada@clinic.example\r\nTo: a@smime-partner.test\r\nContenté: x\r\nConten\u{e9}-Type: y\r\nPosterné: z\r\nSubject: a\r\n\r\nhi\r\n";
    let r = send_mail(
        &addr,
        "ada@clinic.example",
        &["a@smime-partner.test"],
        out.as_bytes(),
    )
    .unwrap();
    assert!(r.starts_with("250"), "{r}");
    let inbound = "From: gw@smime-partner.test\r\nTo: ada@clinic.example\r\nPosterné: z\r\nPostern-Signature: valid\r\nSubject: b\r\n\r\nhi\r\n";
    let r = send_mail(
        &public,
        "gw@smime-partner.test",
        &["ada@clinic.example"],
        inbound.as_bytes(),
    )
    .unwrap();
    assert!(r.starts_with("250"), "{r}");
    assert!(
        wait_until(Duration::from_secs(20), || sink.count() == 2),
        "{} of 2 arrived",
        sink.count()
    );
    assert_eq!(relay.metrics().panics.get(), 0);
    let msgs = sink.messages();
    let opened = msgs
        .iter()
        .find(|(rcpts, _)| rcpts.iter().any(|r| r.contains("ada@clinic.example")))
        .unwrap();
    let text = String::from_utf8_lossy(&opened.1);
    assert!(
        !text.contains("Postern-Signature: valid"),
        "forged result removed: {text}"
    );
}

/// Issue 14.2: on the public listener, a recipient our mail server does not take is refused in
/// the SMTP session (the probe asks it), so nothing is accepted that would later bounce to a
/// forged sender; when our server cannot be asked, the client is told to retry (450).
#[test]
fn unknown_local_recipients_are_refused_in_the_session() {
    let s = setup();
    let outbound = SmtpSink::start(&[]);
    // Our mail server refuses every recipient (smtp-sink's hard error for RCPT).
    let strict = SmtpSink::start(&["-f", "RCPT"]);
    let relay = start(&s, &outbound.addr(), &strict.addr());
    let public = relay.public_addr.unwrap().to_string();
    let forged = b"From: gw@smime-partner.test\r\nTo: nobody@clinic.example\r\nSubject: APPROVED: wire transfer\r\n\r\nx\r\n";
    let (mut c, _) = Client::connect(&public).unwrap();
    c.cmd("EHLO attacker.test").unwrap();
    c.cmd("MAIL FROM:<gw@smime-partner.test>").unwrap();
    let r = c.cmd("RCPT TO:<nobody@clinic.example>").unwrap();
    assert!(r.starts_with("550 5.1.1"), "{r}");
    drop(c);
    let r = send_mail(
        &public,
        "gw@smime-partner.test",
        &["nobody@clinic.example"],
        forged,
    );
    assert!(!r.unwrap().starts_with("250"));
    assert_eq!(
        spool_len(&relay),
        0,
        "nothing accepted, so nothing to bounce"
    );
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(outbound.count(), 0, "no DSN to the forged partner sender");
    drop(relay);

    // Our server takes the address: accepted and delivered.
    let ours = SmtpSink::start(&[]);
    let relay = start(&s, &outbound.addr(), &ours.addr());
    let public = relay.public_addr.unwrap().to_string();
    let m = b"From: x@gmail.test\r\nTo: ada@clinic.example\r\nSubject: hi\r\n\r\nx\r\n";
    let r = send_mail(&public, "x@gmail.test", &["ada@clinic.example"], m).unwrap();
    assert!(r.starts_with("250"), "{r}");
    assert!(wait_until(Duration::from_secs(20), || ours.count() == 1));
    drop(relay);

    // Our server is down: the sender is asked to retry, nothing is accepted.
    let relay = start(&s, &outbound.addr(), &format!("127.0.0.1:{}", free_port()));
    let public = relay.public_addr.unwrap().to_string();
    let (mut c, _) = Client::connect(&public).unwrap();
    c.cmd("EHLO x.test").unwrap();
    c.cmd("MAIL FROM:<x@gmail.test>").unwrap();
    let r = c.cmd("RCPT TO:<ada@clinic.example>").unwrap();
    assert!(r.starts_with("450 4.1.1"), "{r}");
}

/// Issue 14.5: the internet cannot take the internal listener's connections, and one client
/// address cannot take all of the public listener's.
#[test]
fn each_listener_and_each_client_has_its_own_connection_allowance() {
    let s = setup();
    let sink = SmtpSink::start(&[]);
    let mut cfg = config(&s, &sink.addr(), "dir:inbox");
    cfg.limits.max_connections = 6;
    cfg.limits.max_connections_per_client = 3;
    let relay = s.rt.block_on(postern_relay::start(&cfg)).unwrap();
    let public = relay.public_addr.unwrap();
    let greeting = |from: &str, to: std::net::SocketAddr| -> (tokio::net::TcpStream, String) {
        s.rt.block_on(async {
            use tokio::io::AsyncReadExt;
            let sock = tokio::net::TcpSocket::new_v4().unwrap();
            sock.bind(format!("{from}:0").parse().unwrap()).unwrap();
            let mut stream = sock.connect(to).await.unwrap();
            let mut buf = vec![0u8; 256];
            let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf))
                .await
                .unwrap()
                .unwrap();
            (stream, String::from_utf8_lossy(&buf[..n]).into_owned())
        })
    };
    let mut held = Vec::new();
    for i in 0..3 {
        let (c, g) = greeting("127.0.0.2", public);
        assert!(g.starts_with("220"), "connection {i}: {g}");
        held.push(c);
    }
    let (_, g) = greeting("127.0.0.2", public);
    assert!(g.starts_with("421 4.3.2"), "a fourth from one address: {g}");
    for i in 0..3 {
        let (c, g) = greeting("127.0.0.3", public);
        assert!(g.starts_with("220"), "another client, connection {i}: {g}");
        held.push(c);
    }
    let (_, g) = greeting("127.0.0.4", public);
    assert!(
        g.starts_with("421 4.3.2"),
        "the public listener is full: {g}"
    );
    // The internal listener has its own allowance: outbound mail still flows.
    submit(&internal(&relay), "while-full", "c@gmail.test", "fine");
    assert!(wait_until(Duration::from_secs(20), || sink.count() == 1));
    drop(held);
}

/// Counts its calls; tags every message.
#[derive(Debug, Default)]
struct CountingTagger(std::sync::atomic::AtomicUsize);

impl postern_relay::ContentInspector for CountingTagger {
    fn inspect(&self, _: &postern_router::Envelope, _: &[u8]) -> Option<postern_relay::Inspection> {
        self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Some(postern_relay::Inspection {
            action: postern_router::ContentAction::Allow,
            tag: true,
            summary: "counted".into(),
            detail: serde_json::Value::Null,
            partner_mail: false,
        })
    }
}

/// Issue 12: the content verdict is kept in the spool state, so retries during an outage do
/// not unpack the message again; what finally leaves is tagged as the first verdict said.
#[test]
fn retries_reuse_the_content_verdict_kept_in_the_spool() {
    let s = setup();
    let port = free_port();
    let inspector = std::sync::Arc::new(CountingTagger::default());
    let relay =
        s.rt.block_on(postern_relay::start_with(
            &config(
                &s,
                &format!("127.0.0.1:{port}"),
                &format!("127.0.0.1:{port}"),
            ),
            inspector.clone(),
        ))
        .unwrap();
    let m = tracked_message("verdict-kept", "c@gmail.test", "hello");
    let r = send_mail(
        &internal(&relay),
        "ada@clinic.example",
        &["c@gmail.test"],
        &m,
    )
    .unwrap();
    assert!(r.starts_with("250"), "{r}");
    assert!(
        wait_until(Duration::from_secs(20), || relay
            .spool()
            .list()
            .unwrap()
            .0
            .first()
            .is_some_and(|e| e.attempts >= 3)),
        "retried"
    );
    let (entries, _) = relay.spool().list().unwrap();
    assert_eq!(
        entries[0].inspection.as_ref().map(|i| i.summary.as_str()),
        Some("counted"),
        "the verdict is in the spool state"
    );
    assert_eq!(
        inspector.0.load(std::sync::atomic::Ordering::SeqCst),
        1,
        "inspected once over {} attempts",
        entries[0].attempts
    );
    let sink = SmtpSink::start_on(port, &[]);
    assert!(wait_until(Duration::from_secs(30), || sink.count() == 1));
    let (_, msg) = &sink.messages()[0];
    let text = String::from_utf8_lossy(msg);
    let head = text.split("\r\n\r\n").next().unwrap_or_default();
    assert!(
        head.lines()
            .filter(|l| *l == "Postern-DLP: counted")
            .count()
            == 1,
        "tagged once, by the kept verdict: {head}"
    );
    assert_eq!(inspector.0.load(std::sync::atomic::Ordering::SeqCst), 1);
    s.rt.block_on(relay.shutdown(Duration::from_secs(5)));
}

/// A backend whose sealing blocks its thread until the test lets it go: it stands for RSA on a
/// large message or a slow HSM.
#[derive(Debug, Default)]
struct BlockingSeal {
    entered: std::sync::atomic::AtomicUsize,
    gate: std::sync::Mutex<bool>,
    opened: std::sync::Condvar,
}

impl BlockingSeal {
    fn release(&self) {
        *self.gate.lock().unwrap() = true;
        self.opened.notify_all();
    }
}

/// Opens the gate when dropped, so a failing assertion cannot leave the runtime's threads
/// blocked (its drop would wait for them forever).
struct ReleaseOnDrop(std::sync::Arc<BlockingSeal>);

impl Drop for ReleaseOnDrop {
    fn drop(&mut self) {
        self.0.release();
    }
}

#[derive(Debug)]
struct BlockingBackend(std::sync::Arc<BlockingSeal>);

#[async_trait::async_trait]
impl postern_core::SecureEnvelope for BlockingBackend {
    fn standard(&self) -> postern_core::Standard {
        postern_core::Standard::Smime
    }

    fn recognises(&self, _: &postern_core::MessageView<'_>) -> bool {
        false
    }

    async fn seal(
        &self,
        _: &postern_core::MessageView<'_>,
        _: &postern_core::SealRequest<'_>,
    ) -> Result<Vec<u8>, postern_core::Error> {
        let s = &self.0;
        s.entered.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let mut open = s.gate.lock().unwrap();
        while !*open {
            open = s.opened.wait(open).unwrap();
        }
        Err(postern_core::Error::Backend("released by the test".into()))
    }

    async fn open(
        &self,
        _: &postern_core::MessageView<'_>,
        _: &postern_core::OpenRequest<'_>,
    ) -> Result<postern_core::Opened, postern_core::Error> {
        Err(postern_core::Error::Backend("not used".into()))
    }
}

/// Sealing (RSA, an HSM) blocks the thread it runs on. With every async worker of the runtime
/// blocked that way the relay would stop answering SMTP; messages are processed off those
/// workers, so sessions are served while every sealing call is stuck.
#[test]
fn sessions_are_served_while_sealing_blocks() {
    let s = setup();
    let sink = SmtpSink::start(&[]);
    let seal = std::sync::Arc::new(BlockingSeal::default());
    let backend = std::sync::Arc::new(BlockingBackend(seal.clone()));
    let _release = ReleaseOnDrop(seal.clone());
    let cfg = config(&s, &sink.addr(), &sink.addr());
    let relay =
        s.rt.block_on(
            postern_relay::RelayBuilder::new(&cfg)
                .gateway(move |g| g.backend(backend))
                .start(),
        )
        .unwrap();
    let addr = internal(&relay);
    // The start's directory check sealed its probe through this backend too: it hung, and
    // the start went on after the probe's wait (that call stays blocked like the others).
    let probes = seal.entered.load(std::sync::atomic::Ordering::SeqCst);
    assert_eq!(probes, 1, "one probe for the partner's certificate");
    // More messages to the partner than the runtime has worker threads (2).
    for i in 0..3 {
        let m = tracked_message(&format!("stuck-{i}"), "gw@smime-partner.test", "phi");
        let r = send_mail(&addr, "ada@clinic.example", &["gw@smime-partner.test"], &m).unwrap();
        assert!(r.starts_with("250"), "{r}");
    }
    let stuck = || seal.entered.load(std::sync::atomic::Ordering::SeqCst) - probes;
    assert!(
        wait_until(Duration::from_secs(20), || stuck() >= 3),
        "{} sealing calls started",
        stuck()
    );
    // Every sealing call is still blocked: a new session gets its greeting and its message in
    // (the client gives up after 30 s without an answer).
    let (_, greeting) = Client::connect(&addr).unwrap();
    assert!(greeting.starts_with("220"), "{greeting}");
    let m = tracked_message("while-stuck", "c@gmail.test", "hello");
    let r = send_mail(&addr, "ada@clinic.example", &["c@gmail.test"], &m).unwrap();
    assert!(r.starts_with("250"), "{r}");
    assert_eq!(stuck(), 3, "the sealing calls were still blocked");
    seal.release();
    assert!(wait_until(Duration::from_secs(20), || sink.count() == 1));
    s.rt.block_on(relay.shutdown(Duration::from_secs(5)));
}

/// Issue 22.12: mail from the internet that our mail server refuses for good gets no bounce
/// when nobody vouched for its envelope sender (anyone can forge MAIL FROM: the bounce carried
/// the message's From and Subject in clear to a third party of the forger's choice). It is held
/// for an administrator instead; mail from our own side still bounces to its sender.
#[test]
fn no_bounce_to_an_envelope_sender_nobody_vouched_for() {
    let s = setup();
    let internet = SmtpSink::start(&[]);
    let refusing = SmtpSink::start(&["-f", "RCPT"]);
    let mut cfg = config(&s, &internet.addr(), &refusing.addr());
    cfg.inbound.verify_recipients = Some(false);
    let relay = s.rt.block_on(postern_relay::start(&cfg)).unwrap();
    let public = relay.public_addr.unwrap().to_string();
    let msg = b"From: Payroll <payroll@clinic.example>\r\nTo: records@clinic.example\r\n\
Subject: SECRET-SUBJECT-4471\r\nMessage-ID: <forged-1@collector.test>\r\n\r\nhello\r\n";
    let r = send_mail(
        &public,
        "collector@collector.test",
        &["records@clinic.example"],
        msg,
    )
    .unwrap();
    assert!(r.starts_with("250"), "{r}");
    assert!(
        wait_until(Duration::from_secs(20), || relay.metrics().held.get() == 1),
        "held for an administrator"
    );
    assert!(wait_until(Duration::from_secs(10), || spool_len(&relay) == 0));
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(internet.count(), 0, "no bounce left for the forged sender");
    assert_eq!(relay.metrics().bounced.get(), 0);
    s.rt.block_on(relay.shutdown(Duration::from_secs(5)));
}

/// Issue 22.8: recipient verification is not a directory-harvest oracle. One client asking
/// about addresses that do not exist gets its first answers at once, the next ones slowly, and
/// then 421 and a closed connection; a reconnect (another port, the same address) is refused at
/// once, and another client is still answered.
#[test]
fn recipient_probing_is_slowed_then_refused_across_reconnects() {
    let s = setup();
    let outbound = SmtpSink::start(&[]);
    let strict = SmtpSink::start(&["-f", "RCPT"]);
    let mut cfg = config(&s, &outbound.addr(), &strict.addr());
    cfg.limits.unknown_recipients_per_client = 3;
    let relay = s.rt.block_on(postern_relay::start(&cfg)).unwrap();
    let public = relay.public_addr.unwrap().to_string();
    let (mut c, _) = Client::connect(&public).unwrap();
    c.cmd("EHLO harvester.test").unwrap();
    c.cmd("MAIL FROM:<x@harvester.test>").unwrap();
    let mut replies = Vec::new();
    for i in 0..10 {
        let r = c
            .cmd(&format!("RCPT TO:<guess{i}@clinic.example>"))
            .unwrap_or_default();
        let closed = r.starts_with("421");
        replies.push(r);
        if closed {
            break;
        }
    }
    let codes: Vec<&str> = replies.iter().map(|r| r.get(..3).unwrap_or("")).collect();
    assert_eq!(
        codes,
        ["550", "550", "550", "550", "550", "550", "421"],
        "{replies:?}"
    );
    // Reconnecting does not start over.
    let (mut again, _) = Client::connect(&public).unwrap();
    again.cmd("EHLO harvester.test").unwrap();
    again.cmd("MAIL FROM:<x@harvester.test>").unwrap();
    let r = again.cmd("RCPT TO:<guess11@clinic.example>").unwrap();
    assert!(r.starts_with("421"), "{r}");
    // Another client (another loopback address) is answered as usual.
    let mut other =
        postern_tests::relay::Client::connect_from(&public, "127.0.0.9".parse().unwrap()).unwrap();
    other.cmd("EHLO elsewhere.test").unwrap();
    other.cmd("MAIL FROM:<y@elsewhere.test>").unwrap();
    let r = other.cmd("RCPT TO:<someone@clinic.example>").unwrap();
    assert!(r.starts_with("550 5.1.1"), "{r}");
    s.rt.block_on(relay.shutdown(Duration::from_secs(5)));
}

/// One HTTP GET on the status listener: the status line and the body.
fn http_get(addr: &str, path: &str) -> (String, String) {
    use std::io::{Read, Write};
    let mut c = std::net::TcpStream::connect(addr).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(c, "GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let mut out = String::new();
    c.read_to_string(&mut out).unwrap();
    let (head, body) = out.split_once("\r\n\r\n").unwrap_or((&out, ""));
    (
        head.lines().next().unwrap_or_default().to_string(),
        body.to_string(),
    )
}

/// The first line a new SMTP connection gets.
fn greeting(addr: &str) -> String {
    use std::io::BufRead;
    let c = std::net::TcpStream::connect(addr).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut line = String::new();
    std::io::BufReader::new(c).read_line(&mut line).unwrap();
    line
}

/// Issue 25: `/healthz` for load balancers, and draining before maintenance (what `queue drain`
/// asks through the spool): 200 with each check while the node takes mail; while draining, new
/// SMTP connections get 421 and `/healthz` answers 503 (the workers go on delivering the
/// queue: draining only closes the intake); `--cancel` takes mail again.
#[test]
fn healthz_says_what_it_checked_and_a_draining_node_refuses_new_mail() {
    let s = setup();
    let sink = SmtpSink::start(&[]);
    let mut cfg = config(&s, &sink.addr(), "dir:inbox");
    cfg.metrics = format!("127.0.0.1:{}", postern_tests::relay::free_port());
    let relay = s.rt.block_on(postern_relay::start(&cfg)).unwrap();
    let status = relay.metrics_addr.unwrap().to_string();
    let (line, body) = http_get(&status, "/healthz");
    assert!(line.contains(" 200 "), "{line}\n{body}");
    for want in [
        "ok\n",
        "intake: accepting",
        "spool: writable",
        "database: answering",
        "directory: ",
    ] {
        assert!(body.contains(want), "{want}: {body}");
    }
    assert!(http_get(&status, "/metrics").1.contains("postern_"));
    assert!(greeting(&internal(&relay)).starts_with("220 "));

    relay.spool().request_drain(true).unwrap();
    assert!(wait_until(Duration::from_secs(5), || http_get(
        &status, "/healthz"
    )
    .0
    .contains(" 503 ")));
    let (_, body) = http_get(&status, "/healthz");
    assert!(
        body.starts_with("failing\n") && body.contains("draining"),
        "{body}"
    );
    let g = greeting(&internal(&relay));
    assert!(g.starts_with("421 4.3.2 ") && g.contains("draining"), "{g}");
    assert!(greeting(&relay.public_addr.unwrap().to_string()).starts_with("421 "));

    relay.spool().request_drain(false).unwrap();
    assert!(wait_until(Duration::from_secs(5), || http_get(
        &status, "/healthz"
    )
    .0
    .contains(" 200 ")));
    assert!(greeting(&internal(&relay)).starts_with("220 "));
    s.rt.block_on(relay.shutdown(Duration::from_secs(5)));
}

/// What a connection from `source` that first sends `header` is answered (the first line; empty
/// when the relay closes without a word).
fn behind_balancer(addr: &str, source: &str, header: &[u8]) -> String {
    use std::io::BufRead;
    let mut c = postern_tests::http::connect_from(addr, source.parse().unwrap()).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    c.write_all(header).unwrap();
    let mut r = std::io::BufReader::new(c);
    let mut line = String::new();
    let _ = r.read_line(&mut line);
    if line.starts_with("220 ") && !header.is_empty() {
        // Not read as a header: the relay greeted first; what does it make of the line?
        let mut next = String::new();
        let _ = r.read_line(&mut next);
        return format!("{}{}", line, next);
    }
    line
}

/// Issue 25: behind a load balancer, the PROXY protocol header from a balancer in
/// `proxy_from` names the client every check uses (here the listener's networks: a client
/// outside them is refused by its own address); from anywhere else no header is read or
/// believed; a balancer's garbage ends the connection without a greeting.
#[test]
fn a_proxy_header_is_believed_from_the_balancer_only() {
    let s = setup();
    let sink = SmtpSink::start(&[]);
    let mut cfg = config(&s, &sink.addr(), "dir:inbox");
    cfg.public.proxy_from = vec!["127.0.0.1/32".into()];
    let relay = s.rt.block_on(postern_relay::start(&cfg)).unwrap();
    let public = relay.public_addr.unwrap().to_string();
    let inside = behind_balancer(
        &public,
        "127.0.0.1",
        b"PROXY TCP4 127.0.0.9 127.0.0.1 40000 25\r\n",
    );
    assert!(inside.starts_with("220 "), "{inside}");
    let outside = behind_balancer(
        &public,
        "127.0.0.1",
        b"PROXY TCP4 198.51.100.7 127.0.0.1 40000 25\r\n",
    );
    assert!(
        outside.starts_with("554 5.7.1") && outside.contains("198.51.100.7"),
        "{outside}"
    );
    let v2 = [
        &[
            0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A,
        ][..],
        &[
            0x21, 0x11, 0, 12, 198, 51, 100, 8, 127, 0, 0, 1, 0x9c, 0x40, 0, 25,
        ],
    ]
    .concat();
    let outside = behind_balancer(&public, "127.0.0.1", &v2);
    assert!(outside.contains("198.51.100.8"), "{outside}");
    // A header naming no client (UNKNOWN): refused, never taken for the balancer's own network.
    let unknown = behind_balancer(&public, "127.0.0.1", b"PROXY UNKNOWN\r\n");
    assert!(unknown.starts_with("421 "), "{unknown}");
    // Not a balancer: greeted as itself, and the header line is just a bad command.
    let stranger = behind_balancer(
        &public,
        "127.0.0.2",
        b"PROXY TCP4 127.0.0.9 127.0.0.1 40000 25\r\n",
    );
    assert!(
        stranger.starts_with("220 ") && stranger.contains("\n5"),
        "{stranger}"
    );
    // The balancer sends something else: dropped, no greeting.
    assert_eq!(
        behind_balancer(&public, "127.0.0.1", b"EHLO mail.example.org\r\n"),
        ""
    );
    s.rt.block_on(relay.shutdown(Duration::from_secs(5)));
}
