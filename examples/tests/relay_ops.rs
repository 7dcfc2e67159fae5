//! Operating the `postern-relay` binary: queue commands on a running relay's spool (list, show,
//! delete, flush), SIGHUP reloading the partner directory (a bad file is refused and the old
//! one stays), JSON logs without message bodies, and the Prometheus endpoint.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is a failure report

mod common;

use std::io::{Read, Write};
use std::path::Path;
use std::time::Duration;

use postern_tests::relay::{
    free_port, message_id, send_mail, tracked_message, wait_until, SmtpSink,
};
use postern_tests::{KeyKind, Pki};

use common::{cli, Relay};

fn queue(config: &Path, args: &[&str]) -> (bool, String) {
    let mut all = vec!["queue"];
    all.extend_from_slice(args);
    cli(config, &all)
}

#[test]
fn queue_commands_reload_logs_and_metrics_on_a_running_relay() {
    let pki = Pki::new();
    let partner = pki.issue("gw@smime-partner.test", KeyKind::Rsa(2048));
    let tmp = tempfile::tempdir().unwrap();
    let dir_file = tmp.path().join("directory.toml");
    std::fs::write(&dir_file, "[our]\ndomains = [\"clinic.example\"]\n").unwrap();
    let (smtp, metrics, hop) = (free_port(), free_port(), free_port());
    let config = common::write_config(
        tmp.path(),
        smtp,
        &format!("127.0.0.1:{hop}"),
        "dir:inbox",
        "1h",
        &format!("127.0.0.1:{metrics}"),
    );
    let log = tmp.path().join("relay.log");
    let relay = Relay::start(&config, &log, smtp, &["--json-logs"]);
    let addr = format!("127.0.0.1:{smtp}");

    // The next hop is down and the retry is an hour away: the messages wait in the spool.
    let secret = "PATIENT-BODY-TEXT-7731";
    for i in 0..3 {
        // A terminal escape sequence in one Subject (issue 14.8): shown escaped, never raw.
        let id = format!("ops-{i}{}", ["\u{1b}[2J", "", ""][i]);
        let m = tracked_message(&id, "c@gmail.test", secret);
        let r = send_mail(&addr, "ada@clinic.example", &["c@gmail.test"], &m).unwrap();
        assert!(r.starts_with("250"), "{r}");
    }
    let mut listing = String::new();
    assert!(wait_until(Duration::from_secs(10), || {
        let (ok, out) = queue(&config, &["list"]);
        listing = out;
        ok && listing.contains("3 messages") && listing.matches("[pending]").count() == 3
    }));
    let ids: Vec<String> = listing
        .lines()
        .filter(|l| l.contains("[pending]"))
        .map(|l| l.split_whitespace().next().unwrap().to_string())
        .collect();
    let mut escaped = false;
    for id in &ids {
        let (ok, shown) = queue(&config, &["show", id]);
        assert!(ok, "{shown}");
        assert!(
            !shown.contains('\u{1b}'),
            "raw escape sequence printed: {shown:?}"
        );
        escaped |= shown.contains("Subject: lab results ops-0\\u{1b}[2J");
    }
    assert!(escaped, "the escape sequence is shown escaped");
    let (ok, shown) = queue(&config, &["show", &ids[0]]);
    assert!(ok, "{shown}");
    assert!(shown.contains("Subject: lab results ops-"), "{shown}");
    assert!(
        shown.contains("connect to 127.0.0.1"),
        "the last error: {shown}"
    );
    assert!(
        !shown.contains(secret),
        "show prints headers, never the body"
    );
    let (ok, out) = queue(&config, &["delete", &ids[0]]);
    assert!(ok, "{out}");
    let (ok, out) = queue(&config, &["show", &ids[0]]);
    assert!(!ok && out.contains("not in the queue"), "{out}");
    let (ok, out) = queue(&config, &["show", "../../etc/passwd"]);
    assert!(!ok, "{out}");

    // The hop comes up; flush sends the two left now, not in an hour.
    let sink = SmtpSink::start_on(hop, &[]);
    let (ok, out) = queue(&config, &["flush"]);
    assert!(ok, "{out}");
    assert!(
        wait_until(Duration::from_secs(15), || sink.messages().len() == 2),
        "{:?}",
        queue(&config, &["list"])
    );
    assert!(wait_until(Duration::from_secs(5), || queue(
        &config,
        &["list"]
    )
    .1
    .contains("0 messages")));

    // SIGHUP with a broken directory: refused, the old one stays (mail still flows plain).
    std::fs::write(&dir_file, "[our]\ndomains = [\"clinic.example\"\n").unwrap();
    relay.signal("-HUP");
    assert!(wait_until(Duration::from_secs(10), || {
        std::fs::read_to_string(&log)
            .unwrap()
            .contains("directory reload refused")
    }));
    let m = tracked_message("after-bad-reload", "lab@smime-partner.test", "x");
    assert!(
        send_mail(&addr, "ada@clinic.example", &["lab@smime-partner.test"], &m)
            .unwrap()
            .starts_with("250")
    );
    // SIGHUP with a good directory that makes smime-partner.test a required partner: its mail
    // is sealed from now on.
    std::fs::write(
        &dir_file,
        format!(
            "[our]\ndomains = [\"clinic.example\"]\n\n[[partner]]\ndomain = \"smime-partner.test\"\n\
             standards = [\"smime\"]\npolicy = \"required\"\nsmime_certificates = [\"{}\"]\n",
            partner.cert.display()
        ),
    )
    .unwrap();
    relay.signal("-HUP");
    assert!(wait_until(Duration::from_secs(10), || {
        std::fs::read_to_string(&log)
            .unwrap()
            .contains("partner directory reloaded")
    }));
    let m = tracked_message("after-good-reload", "lab@smime-partner.test", secret);
    assert!(
        send_mail(&addr, "ada@clinic.example", &["lab@smime-partner.test"], &m)
            .unwrap()
            .starts_with("250")
    );
    assert!(wait_until(Duration::from_secs(15), || sink
        .messages()
        .len()
        == 4));
    for (_, m) in sink.messages() {
        let t = String::from_utf8_lossy(&m).into_owned();
        match message_id(&m).as_deref() {
            Some("after-good-reload@clinic.example") => {
                assert!(
                    t.contains("application/pkcs7-mime") && !t.contains(secret),
                    "{t}"
                )
            }
            Some("after-bad-reload@clinic.example") => assert!(!t.contains("pkcs7"), "{t}"),
            _ => {}
        }
    }

    // Metrics.
    let mut s = std::net::TcpStream::connect(("127.0.0.1", metrics)).unwrap();
    s.write_all(b"GET /metrics HTTP/1.0\r\n\r\n").unwrap();
    let mut page = String::new();
    s.read_to_string(&mut page).unwrap();
    assert!(page.starts_with("HTTP/1.1 200"), "{page}");
    assert!(page.contains("postern_messages_received_total 5"), "{page}");
    assert!(
        page.contains("postern_recipients_total{disposition=\"delivered_sealed\"} 1"),
        "{page}"
    );
    assert!(page.contains("postern_seal_seconds_count"), "{page}");

    // Logs: JSON lines, one decision per message, and never a body.
    let logs = std::fs::read_to_string(&log).unwrap();
    assert!(!logs.contains(secret), "a message body reached the log");
    let decisions: Vec<serde_json::Value> = logs
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["fields"]["message"] == "processed")
        .collect();
    assert!(decisions.len() >= 4, "{logs}");
    assert!(decisions.iter().any(|d| d["fields"]["outcome"]
        .as_str()
        .unwrap_or("")
        .contains("smime-partner.test delivered sealed:smime")));

    // SIGTERM: a clean stop.
    let mut relay = relay;
    relay.signal("-TERM");
    let status = relay.0.wait().unwrap();
    assert!(status.success(), "{status:?}");
}
