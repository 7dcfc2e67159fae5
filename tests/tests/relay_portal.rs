//! Issue 10: portal delivery through the running relay, over real SMTP and real HTTP. Mail
//! for a portal partner (and, by the `[secure]` trigger, for anyone else) is stored encrypted;
//! the internet sees only a notification and a one-time code; the recipient signs in, reads,
//! downloads and replies; the reply reaches our mail server; nothing readable leaves.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is a failure report

use std::time::Duration;

use postern_tests::http::Client;
use postern_tests::relay::{
    free_port, runtime, send_mail, test_config, wait_until, write_directory, SmtpSink,
};

const MARKER: &str = "PHI-MARKER-5521 creatinine 1.9";
const ATTACHMENT: &[u8] = b"%PDF-1.4 pretend lab report \x00\x01\x02\xff";

fn lab_message(to: &str, subject: &str) -> Vec<u8> {
    use base64::Engine;
    format!(
        "From: Ada Lovelace <ada@clinic.example>\r\nTo: {to}\r\nSubject: {subject}\r\n\
Message-ID: <lab-{n}@clinic.example>\r\nMIME-Version: 1.0\r\n\
Content-Type: multipart/mixed; boundary=\"b1\"\r\n\r\n--b1\r\nContent-Type: text/plain\r\n\r\n\
{MARKER}\r\n--b1\r\nContent-Type: application/pdf\r\n\
Content-Disposition: attachment; filename=\"labs.pdf\"\r\nContent-Transfer-Encoding: base64\r\n\r\n\
{b64}\r\n--b1--\r\n",
        n = free_port(),
        b64 = base64::engine::general_purpose::STANDARD.encode(ATTACHMENT),
    )
    .into_bytes()
}

fn decoded_body(raw: &[u8]) -> String {
    mail_parser::MessageParser::default()
        .parse(raw)
        .and_then(|m| m.body_text(0).map(|t| t.into_owned()))
        .unwrap_or_default()
}

/// The link token in the notification to `to`.
fn token_for(sink: &SmtpSink, to: &str) -> Option<String> {
    sink.messages().iter().rev().find_map(|(rcpts, m)| {
        if !rcpts.iter().any(|r| r == to) {
            return None;
        }
        let text = decoded_body(m);
        let at = text.find("/m/")?;
        Some(
            text.get(at + 3..)?
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
                .collect(),
        )
    })
}

fn code_for(sink: &SmtpSink, to: &str) -> Option<String> {
    sink.messages().iter().rev().find_map(|(rcpts, m)| {
        let text = decoded_body(m);
        if !rcpts.iter().any(|r| r == to) || !text.contains("one-time code") {
            return None;
        }
        let line = text.lines().find(|l| l.starts_with("    "))?;
        Some(line.chars().filter(char::is_ascii_digit).collect())
    })
}

/// Link → one-time code (read from the mail `sink` got) → verify, as a browser would: the
/// client, signed in, and the message page's path.
fn sign_in(sink: &SmtpSink, port: u16, to: &str) -> (Client, String) {
    let token = token_for(sink, to).unwrap();
    let mut web = Client::new(&format!("127.0.0.1:{port}"));
    let page = web.get(&format!("/m/{token}")).unwrap();
    assert_eq!(page.status, 200);
    let csrf = page.csrf().unwrap();
    let sent = web
        .post_form(&format!("/m/{token}/code"), &[("csrf", &csrf)])
        .unwrap();
    assert_eq!(sent.status, 200, "{}", sent.text());
    assert!(wait_until(Duration::from_secs(30), || code_for(sink, to).is_some()));
    let code = code_for(sink, to).unwrap();
    let signed = web
        .post_form(
            &format!("/m/{token}/verify"),
            &[("csrf", &csrf), ("code", &code)],
        )
        .unwrap();
    assert_eq!(signed.status, 303, "{}", signed.text());
    let at = signed.header("location").unwrap().to_string();
    (web, at)
}

#[test]
fn portal_mail_is_read_and_answered_in_the_browser_and_never_leaves_readable() {
    let tmp = tempfile::tempdir().unwrap();
    write_directory(
        tmp.path(),
        "[our]\ndomains = [\"clinic.example\"]\n\n[[partner]]\ndomain = \"smallpractice.example\"\n\
         policy = \"portal\"\nportal_days = 7\n",
    );
    let internet = SmtpSink::start(&[]);
    let ours = SmtpSink::start(&[]);
    let port = free_port();
    let mut cfg = test_config(tmp.path(), &internet.addr(), &ours.addr());
    cfg.inbound.verify_recipients = Some(false);
    cfg.portal = postern_portal::PortalSettings {
        listen: format!("127.0.0.1:{port}"),
        plain_http: true,
        from: "secure-mail@clinic.example".into(),
        organisation: "Clinic Example".into(),
        read_receipts: true,
        ..postern_portal::PortalSettings::default()
    };
    // Road 3: the content policy sends mail with an SSN through the portal.
    let policy = tmp.path().join("dlp.toml");
    // (The thresholds too: the built-in ones quarantine at a score of 10, and the strictest
    // action wins.)
    std::fs::write(
        &policy,
        "[detector_action]\nssn = \"portal\"\n\n[[threshold]]\nmin_score = 4\naction = \"tag\"\n\n\
         [[threshold]]\nmin_score = 10\naction = \"portal\"\n",
    )
    .unwrap();
    cfg.dlp.policy = policy;
    let rt = runtime();
    let relay = rt.block_on(postern_relay::start(&cfg)).unwrap();
    assert_eq!(relay.portal_addr.unwrap().port(), port);
    let smtp = relay.internal_addr.unwrap().to_string();

    // Road 1: the partner's policy. Road 2: the subject trigger for a non-partner.
    let to = "office@smallpractice.example";
    let r = send_mail(
        &smtp,
        "ada@clinic.example",
        &[to],
        &lab_message(to, "Labs for J. Doe"),
    )
    .unwrap();
    assert!(r.starts_with("250"), "{r}");
    let other = "lawyer@gmail.test";
    let r = send_mail(
        &smtp,
        "ada@clinic.example",
        &[other],
        &lab_message(other, "[secure] Records"),
    )
    .unwrap();
    assert!(r.starts_with("250"), "{r}");
    let patient = "patient@gmail.test";
    let ssn = b"From: ada@clinic.example\r\nTo: patient@gmail.test\r\nSubject: Your form\r\n\r\nSSN 078-05-1120 as requested.\r\n";
    let r = send_mail(&smtp, "ada@clinic.example", &[patient], ssn).unwrap();
    assert!(r.starts_with("250"), "{r}");
    assert!(
        wait_until(Duration::from_secs(30), || token_for(&internet, to)
            .is_some()
            && token_for(&internet, other).is_some()
            && token_for(&internet, patient).is_some()),
        "notifications: {}",
        internet.count()
    );

    // Sign in with the link and a one-time code, as a browser would.
    let (mut web, at) = sign_in(&internet, port, to);
    let msg = web.get(&at).unwrap();
    assert_eq!(msg.status, 200);
    assert!(msg.text().contains(MARKER));
    assert!(msg.text().contains("Labs for J. Doe"));
    // Per-partner lifetime: seven days.
    let week = postern_portal::letters::day(postern_portal::now() + 7 * 86_400);
    assert!(msg.text().contains(&week), "expires {week}");
    let file = web.get(&format!("{at}/attachment/0")).unwrap();
    assert_eq!(file.status, 200);
    assert_eq!(file.body, ATTACHMENT, "the attachment's bytes, unchanged");

    // A reply with an attachment reaches our mail server, from the proven address.
    let form = web.get(&format!("{at}/reply")).unwrap();
    let csrf = form.csrf().unwrap();
    let replied = web
        .post_multipart(
            &format!("{at}/reply"),
            &[
                ("csrf", None, csrf.as_bytes()),
                ("body", None, b"Received, thank you. REPLY-TEXT-8812"),
                ("files", Some("signed-consent.pdf"), b"CONSENT-BYTES"),
            ],
        )
        .unwrap();
    assert_eq!(replied.status, 200, "{}", replied.text());
    assert!(wait_until(Duration::from_secs(30), || ours
        .messages()
        .iter()
        .any(
            |(_, m)| String::from_utf8_lossy(m).contains("REPLY-TEXT-8812")
        )));
    let (rcpts, reply) = ours
        .messages()
        .into_iter()
        .find(|(_, m)| String::from_utf8_lossy(m).contains("REPLY-TEXT-8812"))
        .unwrap();
    assert_eq!(rcpts, vec!["ada@clinic.example".to_string()]);
    let parsed = mail_parser::MessageParser::default().parse(&reply).unwrap();
    assert!(parsed
        .header_raw("Postern-Portal")
        .unwrap()
        .contains("address proven by one-time code"));
    use mail_parser::MimeHeaders;
    let att = parsed.attachments().next().unwrap();
    assert_eq!(att.attachment_name(), Some("signed-consent.pdf"));
    assert_eq!(att.contents(), b"CONSENT-BYTES");
    // The read receipt went to our sender, at our mail server.
    assert!(wait_until(Duration::from_secs(30), || ours
        .messages()
        .iter()
        .any(|(r, m)| {
            r.iter().any(|a| a == "ada@clinic.example")
                && String::from_utf8_lossy(m).contains("Opened")
        })));

    // Nothing the internet received carries the message, its attachment or its subject.
    std::thread::sleep(Duration::from_millis(300));
    for (rcpts, m) in internet.messages() {
        let text = String::from_utf8_lossy(&m).to_string();
        for secret in [
            MARKER,
            "Labs for J. Doe",
            "Records",
            "JVBERi0xLjQg",
            "078-05-1120",
        ] {
            assert!(
                !text.contains(secret),
                "{secret} left in clear to {rcpts:?}"
            );
        }
    }
    let metrics = relay.metrics();
    assert!(
        wait_until(Duration::from_secs(10), || metrics.delivered_portal.get()
            == 3),
        "portal deliveries: {}",
        metrics.delivered_portal.get()
    );
    rt.block_on(relay.shutdown(Duration::from_secs(5)));

    // The audit log recorded it all, chained under the audit key and anchored outside the
    // database; without the key its keyed rows cannot be checked.
    rt.block_on(async {
        let db = cfg.open_database().await.unwrap();
        assert!(db.audit_key().is_some());
        let log = postern_store::AuditLog::new(db);
        let (rows, newest) = log
            .verify_with_anchor(&cfg.audit_anchor())
            .await
            .unwrap()
            .unwrap();
        assert!(newest.starts_with("k1:"), "{newest}");
        let anchored = std::fs::read_to_string(cfg.audit_anchor()).unwrap();
        assert!(
            anchored.starts_with(&format!("{rows} {newest}")),
            "{anchored}"
        );
        let unkeyed = postern_store::Db::sqlite(&tmp.path().join("data/postern.sqlite"))
            .await
            .unwrap();
        assert!(postern_store::AuditLog::new(unkeyed)
            .verify()
            .await
            .unwrap()
            .is_err());
        let actions: Vec<String> = log
            .list(None)
            .await
            .unwrap()
            .into_iter()
            .map(|a| a.action)
            .collect();
        assert!(rows >= 9, "{actions:?}");
        for want in [
            "stored",
            "notified",
            "code-sent",
            "signed-in",
            "opened",
            "downloaded",
            "replied",
        ] {
            assert!(actions.iter().any(|a| a == want), "{want} in {actions:?}");
        }
    });
}

#[test]
fn the_portal_serves_tls_and_refuses_plain_http_off_loopback() {
    let tmp = tempfile::tempdir().unwrap();
    write_directory(tmp.path(), "[our]\ndomains = [\"clinic.example\"]\n");
    let rt = runtime();
    let mut cfg = test_config(tmp.path(), "dir:outbox", "dir:inbox");
    cfg.portal.listen = "0.0.0.0:0".into();
    cfg.portal.plain_http = true;
    let err = rt
        .block_on(postern_relay::start(&cfg))
        .unwrap_err()
        .to_string();
    assert!(err.contains("loopback"), "{err}");

    let port = free_port();
    cfg.portal.listen = format!("127.0.0.1:{port}");
    cfg.portal.plain_http = false;
    let relay = rt.block_on(postern_relay::start(&cfg)).unwrap();
    // curl is a real TLS client; -k because the demo certificate is self-signed.
    let out = std::process::Command::new("curl")
        .args([
            "-sk",
            "-D",
            "-",
            "-o",
            "/dev/null",
            &format!("https://127.0.0.1:{port}/"),
        ])
        .output()
        .expect("curl");
    let head = String::from_utf8_lossy(&out.stdout).to_ascii_lowercase();
    assert!(head.starts_with("http/1.1 200"), "{head}");
    assert!(head.contains("strict-transport-security"), "{head}");
    assert!(
        head.contains("set-cookie: __host-postern=") && head.contains("secure"),
        "{head}"
    );
    // Plain HTTP to the TLS port gets no page.
    let plain = std::process::Command::new("curl")
        .args(["-s", "-m", "5", &format!("http://127.0.0.1:{port}/")])
        .output()
        .expect("curl");
    assert!(!String::from_utf8_lossy(&plain.stdout).contains("Secure mail"));
    rt.block_on(relay.shutdown(Duration::from_secs(5)));
}

/// A new, empty PostgreSQL database (from `POSTERN_TEST_POSTGRES`), or `None` to skip (which
/// `POSTERN_REQUIRE_POSTGRES`, set by scripts/test, turns into a failure).
async fn fresh_postgres() -> Option<String> {
    let Ok(url) = std::env::var("POSTERN_TEST_POSTGRES") else {
        assert!(
            std::env::var("POSTERN_REQUIRE_POSTGRES").is_err(),
            "no test PostgreSQL"
        );
        eprintln!("POSTERN_TEST_POSTGRES not set: skipped");
        return None;
    };
    let admin = postern_store::Db::connect(&url).await.unwrap();
    let name = format!("postern_relay_{}", free_port());
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(admin.pool())
        .await
        .unwrap();
    admin.close().await;
    Some(format!("{}/{name}", url.rsplit_once('/').unwrap().0))
}

#[test]
fn one_postgresql_database_serves_quarantine_portal_and_audit() {
    let rt = runtime();
    let Some(url) = rt.block_on(fresh_postgres()) else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    write_directory(
        tmp.path(),
        "[our]\ndomains = [\"clinic.example\"]\n\n[[partner]]\ndomain = \"smallpractice.example\"\n\
         policy = \"portal\"\n",
    );
    let internet = SmtpSink::start(&[]);
    let mut cfg = test_config(tmp.path(), &internet.addr(), "dir:inbox");
    cfg.database = url.clone();
    cfg.portal.listen = format!("127.0.0.1:{}", free_port());
    cfg.portal.plain_http = true;
    // With a shared database no key is generated behind the administrator's back.
    let err = rt
        .block_on(postern_relay::start(&cfg))
        .unwrap_err()
        .to_string();
    assert!(err.contains("missing"), "{err}");
    std::fs::create_dir_all(tmp.path().join("data")).unwrap();
    std::fs::write(tmp.path().join("data/quarantine.key"), "11".repeat(32)).unwrap();
    std::fs::write(tmp.path().join("data/portal.key"), "22".repeat(32)).unwrap();
    let relay = rt.block_on(postern_relay::start(&cfg)).unwrap();
    let smtp = relay.internal_addr.unwrap().to_string();
    let to = "office@smallpractice.example";
    send_mail(&smtp, "ada@clinic.example", &[to], &lab_message(to, "Labs")).unwrap();
    let card = b"From: ada@clinic.example\r\nTo: x@gmail.test\r\nSubject: card\r\n\r\nCard 4111 1111 1111 1111 exp 12/27\r\n";
    send_mail(&smtp, "ada@clinic.example", &["x@gmail.test"], card).unwrap();
    assert!(wait_until(Duration::from_secs(30), || token_for(
        &internet, to
    )
    .is_some()
        && relay.metrics().held.get() == 1));
    rt.block_on(relay.shutdown(Duration::from_secs(5)));
    rt.block_on(async {
        // The audit key comes from the quarantine key, outside the database.
        let db = postern_store::Db::connect(&url)
            .await
            .unwrap()
            .with_audit_key(cfg.audit_key().unwrap().unwrap());
        let held: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM quarantine")
            .fetch_one(db.pool())
            .await
            .unwrap();
        let stored: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM portal_message")
            .fetch_one(db.pool())
            .await
            .unwrap();
        assert_eq!((held, stored), (1, 1));
        let log = postern_store::AuditLog::new(db);
        let actions: Vec<String> = log
            .list(None)
            .await
            .unwrap()
            .into_iter()
            .map(|a| a.action)
            .collect();
        for want in ["held", "stored", "notified"] {
            assert!(actions.iter().any(|a| a == want), "{want} in {actions:?}");
        }
        assert!(log.verify().await.unwrap().is_ok());
    });
}

/// The administrator's pages on a running relay: sign in with the admins file, see the held
/// message with its masked verdict, release it (the same library call as `quarantine release`),
/// and the message goes on; the decision is in the audit log under the administrator's name.
#[test]
fn an_administrator_releases_quarantined_mail_from_the_web_pages() {
    let tmp = tempfile::tempdir().unwrap();
    write_directory(tmp.path(), "[our]\ndomains = [\"clinic.example\"]\n");
    let internet = SmtpSink::start(&[]);
    let port = free_port();
    let admins = tmp.path().join("admins");
    let hash = postern_relay::auth::hash_password(b"correct horse battery staple").unwrap();
    std::fs::write(&admins, format!("privacy:{hash}\n")).unwrap();
    let mut cfg = test_config(tmp.path(), &internet.addr(), "dir:inbox");
    cfg.portal.listen = format!("127.0.0.1:{port}");
    cfg.portal.plain_http = true;
    cfg.portal.admins = admins;
    let rt = runtime();
    let relay = rt.block_on(postern_relay::start(&cfg)).unwrap();
    let smtp = relay.internal_addr.unwrap().to_string();
    let msg = b"From: ada@clinic.example\r\nTo: x@gmail.test\r\nSubject: form\r\n\r\nSSN 078-05-1120, the patient agreed to email.\r\n";
    send_mail(&smtp, "ada@clinic.example", &["x@gmail.test"], msg).unwrap();
    assert!(wait_until(Duration::from_secs(30), || relay
        .metrics()
        .held
        .get()
        == 1));
    assert_eq!(internet.count(), 0);

    let mut web = Client::new(&format!("127.0.0.1:{port}"));
    let csrf = web.get("/admin").unwrap().csrf().unwrap();
    let bad = web
        .post_form(
            "/admin/login",
            &[("csrf", &csrf), ("user", "privacy"), ("password", "guess")],
        )
        .unwrap();
    assert_eq!(bad.status, 401);
    let csrf = bad.csrf().unwrap();
    let ok = web
        .post_form(
            "/admin/login",
            &[
                ("csrf", &csrf),
                ("user", "privacy"),
                ("password", "correct horse battery staple"),
            ],
        )
        .unwrap();
    assert_eq!(ok.status, 303);
    let page = web.get("/admin").unwrap();
    let text = page.text();
    assert!(text.contains("***-**-1120"), "the masked verdict is shown");
    assert!(!text.contains("078-05-1120"), "never the number itself");
    let at = text.find("/admin/quarantine/").unwrap();
    let id: String = text
        .get(at + 18..)
        .unwrap()
        .chars()
        .take_while(|c| *c != '/')
        .collect();
    let csrf = page.csrf().unwrap();
    let forged = web
        .post_form(
            &format!("/admin/quarantine/{id}/release"),
            &[("csrf", "x"), ("reason", "r")],
        )
        .unwrap();
    assert_eq!(forged.status, 403);
    assert_eq!(internet.count(), 0);
    let released = web
        .post_form(
            &format!("/admin/quarantine/{id}/release"),
            &[("csrf", &csrf), ("reason", "patient consented in writing")],
        )
        .unwrap();
    assert_eq!(released.status, 303, "{}", released.text());
    assert!(
        wait_until(Duration::from_secs(30), || internet.count() == 1),
        "the released message goes on"
    );
    rt.block_on(relay.shutdown(Duration::from_secs(5)));
    rt.block_on(async {
        let db = postern_store::Db::sqlite(&tmp.path().join("data/postern.sqlite"))
            .await
            .unwrap();
        let rows = postern_store::AuditLog::new(db)
            .list(Some(&id))
            .await
            .unwrap();
        let last = rows.last().unwrap();
        assert_eq!(last.action, "released");
        assert_eq!(last.actor, "admin:privacy");
        assert_eq!(last.detail, "patient consented in writing");
    });
}

/// Whoever submits mail chooses its envelope sender and its From. A reply, a read receipt or a
/// sender notice goes only to an address of ours: the From when it is ours, else the envelope
/// sender when it is ours; otherwise the message cannot be answered and the reply page says so.
/// (A collector's envelope sender once got the recipient's reply, receipt and notice in clear.)
#[test]
fn replies_receipts_and_notices_go_only_to_addresses_of_ours() {
    let tmp = tempfile::tempdir().unwrap();
    write_directory(
        tmp.path(),
        "[our]\ndomains = [\"clinic.example\"]\n\n[[partner]]\ndomain = \"smallpractice.example\"\n\
         policy = \"portal\"\n",
    );
    let internet = SmtpSink::start(&[]);
    let ours = SmtpSink::start(&[]);
    let port = free_port();
    let mut cfg = test_config(tmp.path(), &internet.addr(), &ours.addr());
    cfg.inbound.verify_recipients = Some(false);
    cfg.portal.listen = format!("127.0.0.1:{port}");
    cfg.portal.plain_http = true;
    cfg.portal.read_receipts = true;
    let rt = runtime();
    let relay = rt.block_on(postern_relay::start(&cfg)).unwrap();
    let smtp = relay.internal_addr.unwrap().to_string();
    let reply = |web: &mut Client, at: &str, text: &str| {
        let form = web.get(&format!("{at}/reply")).unwrap();
        let csrf = form.csrf().unwrap();
        let sent = web
            .post_multipart(
                &format!("{at}/reply"),
                &[
                    ("csrf", None, csrf.as_bytes()),
                    ("body", None, text.as_bytes()),
                ],
            )
            .unwrap();
        (form.text(), sent.status)
    };

    // A collector's envelope sender, our From: answers go to the From, at our mail server.
    let to = "office@smallpractice.example";
    let r = send_mail(
        &smtp,
        "collector@attacker.example",
        &[to],
        &lab_message(to, "Please confirm"),
    )
    .unwrap();
    assert!(r.starts_with("250"), "{r}");
    assert!(wait_until(Duration::from_secs(30), || token_for(
        &internet, to
    )
    .is_some()));
    let (mut web, at) = sign_in(&internet, port, to);
    // Opening it asks for the read receipt (read_receipts is on).
    web.get(&at).unwrap();
    let (page, status) = reply(&mut web, &at, "REPLY-TO-ADA-4411");
    assert!(
        page.contains("ada@clinic.example"),
        "the page names the real destination"
    );
    assert_eq!(status, 200);
    assert!(wait_until(Duration::from_secs(30), || ours
        .messages()
        .iter()
        .any(|(r, m)| r.iter().any(|a| a == "ada@clinic.example")
            && String::from_utf8_lossy(m)
                .contains("REPLY-TO-ADA-4411"))));

    // Outside envelope sender and outside From (and the null sender): nobody to answer.
    let other = "lab@smallpractice.example";
    let outside = format!(
        "From: Dr X <drx@attacker.example>\r\nTo: {other}\r\nSubject: Records\r\n\r\n{MARKER}\r\n"
    );
    let r = send_mail(&smtp, "", &[other], outside.as_bytes()).unwrap();
    assert!(r.starts_with("250"), "{r}");
    assert!(wait_until(Duration::from_secs(30), || token_for(
        &internet, other
    )
    .is_some()));
    let (mut web, at) = sign_in(&internet, port, other);
    // Opening it asks for the read receipt (read_receipts is on).
    web.get(&at).unwrap();
    let (page, status) = reply(&mut web, &at, "REPLY-NOWHERE-7719");
    assert!(page.contains("cannot be answered here"), "{page}");
    assert_eq!(status, 400);

    std::thread::sleep(Duration::from_millis(800));
    for (rcpts, m) in internet.messages().into_iter().chain(ours.messages()) {
        let text = String::from_utf8_lossy(&m).to_string();
        assert!(
            !rcpts.iter().any(|r| r.ends_with("@attacker.example")),
            "mail to {rcpts:?}: {text}"
        );
        assert!(!text.contains("REPLY-NOWHERE-7719"), "sent to {rcpts:?}");
    }
    rt.block_on(relay.shutdown(Duration::from_secs(5)));
}

/// A replaced (valid) key file is refused at start with a clear message: the portal once
/// started, emailed codes, and then failed every message page.
#[test]
fn a_replaced_key_file_is_refused_at_start() {
    let tmp = tempfile::tempdir().unwrap();
    write_directory(tmp.path(), "[our]\ndomains = [\"clinic.example\"]\n");
    let sink = SmtpSink::start(&[]);
    let port = free_port();
    let mut cfg = test_config(tmp.path(), &sink.addr(), "dir:inbox");
    cfg.portal.listen = format!("127.0.0.1:{port}");
    cfg.portal.plain_http = true;
    let rt = runtime();
    let relay = rt.block_on(postern_relay::start(&cfg)).unwrap();
    rt.block_on(relay.shutdown(Duration::from_secs(5)));
    for key in [cfg.portal_key(), cfg.quarantine_key()] {
        let original = std::fs::read(&key).unwrap();
        std::fs::write(&key, "ab".repeat(32)).unwrap();
        let err = rt
            .block_on(postern_relay::start(&cfg))
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("does not match"), "{}: {err}", key.display());
        std::fs::write(&key, original).unwrap();
    }
    let relay = rt.block_on(postern_relay::start(&cfg)).unwrap();
    rt.block_on(relay.shutdown(Duration::from_secs(5)));
}

/// Issue 22.2: after a message went to the portal and another to the quarantine, no file under
/// the data folder (spool and its recycled files, the database and its WAL, the outbox) holds
/// either in clear, while the relay runs (recycled spool files live only while it does).
#[test]
fn no_plaintext_copy_outlives_its_purpose_under_the_data_folder() {
    let tmp = tempfile::tempdir().unwrap();
    write_directory(
        tmp.path(),
        "[our]\ndomains = [\"clinic.example\"]\n\n[[partner]]\ndomain = \"smallpractice.example\"\n\
         policy = \"portal\"\n",
    );
    let port = free_port();
    let mut cfg = test_config(tmp.path(), "dir:outbox", "dir:inbox");
    cfg.portal.listen = format!("127.0.0.1:{port}");
    cfg.portal.plain_http = true;
    let rt = runtime();
    let relay = rt.block_on(postern_relay::start(&cfg)).unwrap();
    let smtp = relay.internal_addr.unwrap().to_string();
    let to = "office@smallpractice.example";
    let r = send_mail(
        &smtp,
        "ada@clinic.example",
        &[to],
        &lab_message(to, "Labs for J. Doe"),
    )
    .unwrap();
    assert!(r.starts_with("250"), "{r}");
    let card = b"From: ada@clinic.example\r\nTo: x@gmail.test\r\nSubject: CARD-SUBJECT-5150\r\n\r\nCard 4111 1111 1111 1111 exp 12/29\r\n";
    let r = send_mail(&smtp, "ada@clinic.example", &["x@gmail.test"], card).unwrap();
    assert!(r.starts_with("250"), "{r}");
    let metrics = relay.metrics();
    assert!(wait_until(Duration::from_secs(30), || metrics
        .delivered_portal
        .get()
        == 1
        && metrics.held.get() == 1));
    // Both finished in the spool (their files parked for reuse, or gone).
    assert!(wait_until(Duration::from_secs(10), || relay
        .spool()
        .list()
        .unwrap()
        .0
        .is_empty()));
    let mut files = Vec::new();
    let mut todo = vec![tmp.path().join("data")];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            // `dir:inbox` stands in for our own mail server here: what it was given (the
            // sender's notice names the subject, to the sender) is its mailbox, not a copy of
            // the gateway's.
            if p.ends_with("inbox") {
                continue;
            }
            if p.is_dir() {
                todo.push(p);
            } else {
                files.push(p);
            }
        }
    }
    assert!(
        files.iter().any(|f| f.to_string_lossy().ends_with(".free")),
        "the test sees recycled spool files: {files:?}"
    );
    for f in &files {
        let bytes = std::fs::read(f).unwrap();
        for marker in [
            MARKER.as_bytes(),
            b"Labs for J. Doe",
            b"4111 1111 1111 1111",
            b"CARD-SUBJECT-5150",
        ] {
            assert!(
                !bytes.windows(marker.len()).any(|w| w == marker),
                "{} holds {:?}",
                f.display(),
                String::from_utf8_lossy(marker)
            );
        }
    }
    rt.block_on(relay.shutdown(Duration::from_secs(5)));
}
