//! Handler tests: the portal's routes driven in-process (tower `oneshot`), each request through
//! the full router with its middleware, against a real SQLite database.
// Tests: a panic is a failure report; slicing is of ASCII pages and mail we generated.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::string_slice)]

use std::sync::Arc;

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use axum::Router;
use http_body_util::BodyExt;
use postern_portal::{
    AdminDesk, Db, DeskError, MailKind, MasterKey, MemoryOutbox, Portal, PortalSettings,
    QuarantineLine,
};
use postern_store::password::Hasher;
use tower::ServiceExt;

struct Fixture {
    _dir: tempfile::TempDir,
    portal: Arc<Portal>,
    outbox: Arc<MemoryOutbox>,
    app: Router,
    db: Db,
    path: std::path::PathBuf,
}

#[derive(Debug)]
struct Desk;

#[async_trait::async_trait]
impl AdminDesk for Desk {
    fn check_password(&self, _: &mut Hasher, user: &str, password: &str) -> bool {
        user == "admin" && password == "correct horse battery"
    }
    fn is_admin(&self, user: &str) -> bool {
        user == "admin"
    }
    async fn quarantine(&self) -> Result<Vec<QuarantineLine>, DeskError> {
        Ok(vec![])
    }
    async fn decide(&self, _: &str, _: bool, _: &str, _: &str) -> Result<(), DeskError> {
        Ok(())
    }
}

async fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("portal.sqlite");
    let db = Db::sqlite(&path).await.unwrap();
    let outbox = Arc::new(MemoryOutbox::default());
    let settings = PortalSettings {
        from: "secure@hospital.example".into(),
        organisation: "General Hospital".into(),
        read_receipts: true,
        ..PortalSettings::default()
    };
    let portal = Arc::new(
        Portal::new(
            db.clone(),
            MasterKey::new(&[9u8; 32]).unwrap(),
            settings,
            "https://portal.hospital.example".into(),
            true,
            outbox.clone(),
        )
        .with_admin(Arc::new(Desk))
        .with_our_addresses(|a| a.ends_with("@hospital.example")),
    );
    let app = postern_portal::web::router(portal.clone());
    Fixture {
        _dir: dir,
        portal,
        outbox,
        app,
        db,
        path,
    }
}

const MESSAGE: &[u8] = b"From: Dr Alice <alice@hospital.example>\r\nTo: office@practice.example\r\n\
Subject: Lab results for J. Doe\r\nMessage-ID: <labs-1@hospital.example>\r\nMIME-Version: 1.0\r\n\
Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\n\
PHI-MARKER-7731 potassium 4.1\r\n--b\r\nContent-Type: application/pdf\r\n\
Content-Disposition: attachment; filename=\"../../etc/passwd\"\r\nContent-Transfer-Encoding: base64\r\n\r\n\
JVBERi0xLjQKJcfsj6IK\r\n--b--\r\n";

impl Fixture {
    /// Deposits `msg` for `to`; returns (portal id, link token).
    async fn deposit(&self, to: &str, msg: &[u8]) -> (String, String) {
        let before = self.outbox.0.lock().unwrap().len();
        let ids = self
            .portal
            .deliver(
                Some("alice@hospital.example"),
                &[to.into()],
                msg,
                "Q1",
                None,
            )
            .await
            .unwrap();
        let mails = self.outbox.0.lock().unwrap();
        let note = mails[before..]
            .iter()
            .find(|m| m.kind == MailKind::Notification)
            .expect("a notification");
        let text = body_text(&note.data);
        let at = text.find("https://portal.hospital.example/m/").unwrap();
        let token: String = text[at + 34..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
            .collect();
        (ids[0].clone(), token)
    }

    fn last_code(&self) -> String {
        let mails = self.outbox.0.lock().unwrap();
        let m = mails
            .iter()
            .rev()
            .find(|m| m.kind == MailKind::Code)
            .unwrap();
        let text = body_text(&m.data);
        let line = text.lines().find(|l| l.starts_with("    ")).unwrap();
        line.chars().filter(char::is_ascii_digit).collect()
    }
}

/// The decoded text body of a message (as a mail client shows it).
fn body_text(raw: &[u8]) -> String {
    mail_parser::MessageParser::default()
        .parse(raw)
        .unwrap()
        .body_text(0)
        .unwrap()
        .into_owned()
}

struct Browser {
    app: Router,
    cookie: Option<String>,
    from: Option<std::net::SocketAddr>,
}

struct Reply {
    status: StatusCode,
    headers: header::HeaderMap,
    body: Vec<u8>,
}

impl Reply {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).to_string()
    }
    fn csrf(&self) -> String {
        let t = self.text();
        let at = t
            .find("name=\"csrf\" value=\"")
            .expect("a form with a CSRF token");
        t[at + 19..].split('"').next().unwrap().to_string()
    }
}

impl Browser {
    fn new(app: &Router) -> Browser {
        Browser {
            app: app.clone(),
            cookie: None,
            from: None,
        }
    }

    /// A browser on its own client address (127.0.x.y), as the listener would report it.
    fn at(app: &Router, n: u32) -> Browser {
        let ip = std::net::Ipv4Addr::from(0x7f00_0000 + 1 + n);
        Browser {
            from: Some(std::net::SocketAddr::from((ip, 40_000))),
            ..Browser::new(app)
        }
    }

    async fn send(&mut self, mut req: Request<Body>) -> Reply {
        if let Some(c) = &self.cookie {
            req.headers_mut().insert(header::COOKIE, c.parse().unwrap());
        }
        if let Some(a) = self.from {
            req.extensions_mut().insert(axum::extract::ConnectInfo(
                postern_portal::web::ClientAddr(a),
            ));
        }
        let resp = self.app.clone().oneshot(req).await.unwrap();
        let status = resp.status();
        let headers = resp.headers().clone();
        for v in headers.get_all(header::SET_COOKIE) {
            let v = v.to_str().unwrap();
            let pair = v.split(';').next().unwrap().to_string();
            if v.contains("Max-Age=0") {
                self.cookie = None;
            } else {
                self.cookie = Some(pair);
            }
        }
        let body = resp
            .into_body()
            .collect()
            .await
            .unwrap()
            .to_bytes()
            .to_vec();
        Reply {
            status,
            headers,
            body,
        }
    }

    async fn get(&mut self, path: &str) -> Reply {
        self.send(Request::get(path).body(Body::empty()).unwrap())
            .await
    }

    async fn post(&mut self, path: &str, form: &[(&str, &str)]) -> Reply {
        let body: String = form
            .iter()
            .map(|(k, v)| format!("{k}={}", urlencode(v)))
            .collect::<Vec<_>>()
            .join("&");
        self.send(
            Request::post(path)
                .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                .body(Body::from(body))
                .unwrap(),
        )
        .await
    }

    async fn post_multipart(
        &mut self,
        path: &str,
        fields: &[(&str, Option<&str>, &[u8])],
    ) -> Reply {
        let mut body = Vec::new();
        for (name, file, data) in fields {
            body.extend_from_slice(b"--XyZ\r\n");
            match file {
                Some(f) => body.extend_from_slice(
                    format!("Content-Disposition: form-data; name=\"{name}\"; filename=\"{f}\"\r\nContent-Type: application/octet-stream\r\n\r\n").as_bytes(),
                ),
                None => body.extend_from_slice(
                    format!("Content-Disposition: form-data; name=\"{name}\"\r\n\r\n").as_bytes(),
                ),
            }
            body.extend_from_slice(data);
            body.extend_from_slice(b"\r\n");
        }
        body.extend_from_slice(b"--XyZ--\r\n");
        self.send(
            Request::post(path)
                .header(header::CONTENT_TYPE, "multipart/form-data; boundary=XyZ")
                .body(Body::from(body))
                .unwrap(),
        )
        .await
    }

    /// Link → code → verify: signed in as the message's recipient.
    async fn sign_in(&mut self, f: &Fixture, token: &str) -> String {
        let page = self.get(&format!("/m/{token}")).await;
        assert_eq!(page.status, StatusCode::OK);
        let csrf = page.csrf();
        let sent = self
            .post(&format!("/m/{token}/code"), &[("csrf", &csrf)])
            .await;
        assert_eq!(sent.status, StatusCode::OK, "{}", sent.text());
        let code = f.last_code();
        let done = self
            .post(
                &format!("/m/{token}/verify"),
                &[("csrf", &csrf), ("code", &code)],
            )
            .await;
        assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.text());
        done.headers[header::LOCATION].to_str().unwrap().to_string()
    }
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

#[tokio::test]
async fn a_recipient_reads_downloads_and_replies_with_a_code_and_the_trail_is_chained() {
    let f = fixture().await;
    let (id, token) = f.deposit("office@practice.example", MESSAGE).await;
    // The notification carries no PHI: not the subject, not the body.
    let note = {
        let raw = f.outbox.0.lock().unwrap()[0].data.clone();
        let subject = mail_parser::MessageParser::default()
            .parse(&raw)
            .unwrap()
            .subject()
            .unwrap()
            .to_string();
        format!("{subject}\n{}", body_text(&raw))
    };
    assert!(
        !note.contains("Lab results") && !note.contains("PHI-MARKER"),
        "{note}"
    );
    assert!(note.contains("Dr Alice") && note.contains("General Hospital"));
    assert!(token.len() >= 43, "256-bit token");
    let reference = f.portal.store.meta(&id).await.unwrap().reference;
    assert!(note.contains(&reference));

    let mut b = Browser::new(&f.app);
    let landing = b.get(&format!("/m/{token}")).await;
    assert!(
        landing.text().contains(&reference),
        "the page shows the same reference"
    );
    assert!(!landing.text().contains("PHI-MARKER"));
    let cookie = landing.headers[header::SET_COOKIE]
        .to_str()
        .unwrap()
        .to_string();
    for attr in [
        "__Host-postern=",
        "HttpOnly",
        "SameSite=Lax",
        "Secure",
        "Path=/",
    ] {
        assert!(cookie.contains(attr), "{cookie}");
    }
    let csp = landing.headers["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("default-src 'none'") && csp.contains("frame-ancestors 'none'"));
    assert!(!csp.contains("unsafe-inline"));
    assert_eq!(landing.headers["referrer-policy"], "no-referrer");
    assert!(landing.headers.contains_key("strict-transport-security"));
    let planted = b.cookie.clone();

    let to = b.sign_in(&f, &token).await;
    assert_eq!(to, format!("/message/{id}"));
    assert_ne!(b.cookie, planted, "a new session after proving the address");

    let page = b.get(&to).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.text().contains("PHI-MARKER-7731"));
    assert!(page.text().contains("Lab results for J. Doe"));
    // The attachment: safe name, never rendered, bytes as sent.
    let a = b.get(&format!("/message/{id}/attachment/0")).await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(a.body, b"%PDF-1.4\n%\xc7\xec\x8f\xa2\n");
    assert_eq!(a.headers[header::CONTENT_TYPE], "application/octet-stream");
    let cd = a.headers[header::CONTENT_DISPOSITION].to_str().unwrap();
    assert!(cd.starts_with("attachment; filename=\"passwd\""), "{cd}");
    assert_eq!(a.headers["x-content-type-options"], "nosniff");
    let eml = b.get(&format!("/message/{id}/eml")).await;
    assert_eq!(eml.body, MESSAGE);
    // Read receipt to our sender on the first opening only.
    b.get(&to).await;
    let receipts: Vec<_> = f
        .outbox
        .0
        .lock()
        .unwrap()
        .iter()
        .filter(|m| m.kind == MailKind::ReadReceipt)
        .map(|m| m.rcpt_to.clone())
        .collect();
    assert_eq!(receipts, vec![vec!["alice@hospital.example".to_string()]]);

    // Reply with an attachment: to the original sender only, whatever the form says.
    let form = b.get(&format!("/message/{id}/reply")).await;
    let csrf = form.csrf();
    let sent = b
        .post_multipart(
            &format!("/message/{id}/reply"),
            &[
                ("csrf", None, csrf.as_bytes()),
                ("to", None, b"victim@elsewhere.example"),
                ("body", None, b"Thanks, received."),
                ("files", Some("reply note.txt"), b"REPLY-ATTACHMENT-BYTES"),
            ],
        )
        .await;
    assert_eq!(sent.status, StatusCode::OK, "{}", sent.text());
    let reply = {
        let mails = f.outbox.0.lock().unwrap();
        let r = mails.iter().find(|m| m.kind == MailKind::Reply).unwrap();
        (
            r.mail_from.clone(),
            r.rcpt_to.clone(),
            String::from_utf8_lossy(&r.data).to_string(),
        )
    };
    assert_eq!(reply.0.as_deref(), Some("office@practice.example"));
    assert_eq!(reply.1, vec!["alice@hospital.example".to_string()]);
    let parsed = mail_parser::MessageParser::default()
        .parse(reply.2.as_bytes())
        .unwrap();
    let portal_header = parsed
        .header_raw("Postern-Portal")
        .unwrap()
        .replace("\r\n", "");
    assert!(
        portal_header.contains("reply from office@practice.example"),
        "{portal_header}"
    );
    assert!(portal_header.contains("one-time code"));
    assert_eq!(
        parsed.in_reply_to().as_text(),
        Some("labs-1@hospital.example")
    );
    assert_eq!(
        parsed.to().unwrap().first().unwrap().address(),
        Some("alice@hospital.example")
    );
    let att = parsed.attachments().next().unwrap();
    use mail_parser::MimeHeaders;
    assert_eq!(att.attachment_name(), Some("reply note.txt"));
    assert_eq!(att.contents(), b"REPLY-ATTACHMENT-BYTES");
    assert!(!reply.2.contains("victim@elsewhere.example"));

    let inbox = b.get("/inbox").await;
    assert!(inbox.text().contains("Lab results for J. Doe"));

    let actions: Vec<String> = f
        .portal
        .audit
        .list(Some(&id))
        .await
        .unwrap()
        .into_iter()
        .map(|a| a.action)
        .collect();
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
    assert!(f.portal.audit.verify().await.unwrap().is_ok());
    // Audit rows carry indexes and identifiers, never content: no file name, no subject.
    for row in f.portal.audit.list(None).await.unwrap() {
        let text = format!("{} {} {} {}", row.actor, row.action, row.object, row.detail);
        for content in ["passwd", "Lab results", "J. Doe", "Dr Alice"] {
            assert!(!text.contains(content), "{content} in the audit row {text}");
        }
    }

    // At rest, neither the body nor the subject is in the database files.
    f.db.close().await;
    for e in std::fs::read_dir(f.path.parent().unwrap()).unwrap() {
        let bytes = std::fs::read(e.unwrap().path()).unwrap();
        for needle in [&b"PHI-MARKER-7731"[..], b"Lab results"] {
            assert!(memchr::memmem::find(&bytes, needle).is_none());
        }
    }
}

#[tokio::test]
async fn forms_without_the_sessions_csrf_token_are_refused() {
    let f = fixture().await;
    let (_, token) = f.deposit("office@practice.example", MESSAGE).await;
    let mut b = Browser::new(&f.app);
    let page = b.get(&format!("/m/{token}")).await;
    let good = page.csrf();
    // Wrong token, no token, another session's token, no cookie at all.
    let r = b
        .post(&format!("/m/{token}/code"), &[("csrf", "forged")])
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = b.post(&format!("/m/{token}/code"), &[]).await;
    assert!(r.status.is_client_error());
    let mut other = Browser::new(&f.app);
    let theirs = other.get(&format!("/m/{token}")).await.csrf();
    let r = b
        .post(&format!("/m/{token}/code"), &[("csrf", &theirs)])
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let mut stranger = Browser::new(&f.app);
    let r = stranger
        .post(&format!("/m/{token}/code"), &[("csrf", &good)])
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert!(
        !f.outbox
            .0
            .lock()
            .unwrap()
            .iter()
            .any(|m| m.kind == MailKind::Code),
        "no code was sent by a forged form"
    );
    // Signed in: reply, password and sign-out forms check it too.
    let (id, token) = f.deposit("office@practice.example", MESSAGE).await;
    let mut b = Browser::new(&f.app);
    b.sign_in(&f, &token).await;
    let r = b
        .post_multipart(
            &format!("/message/{id}/reply"),
            &[("csrf", None, b"x"), ("body", None, b"hi")],
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = b
        .post(
            "/account",
            &[
                ("csrf", "x"),
                ("password", "a long enough one"),
                ("confirm", "a long enough one"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert!(!f
        .outbox
        .0
        .lock()
        .unwrap()
        .iter()
        .any(|m| m.kind == MailKind::Reply));
}

/// Every form route, asked with a session but a forged token, refuses before it acts: 403 in
/// the page layout of its area, and not one audit record more. A handler that forgot its CSRF
/// check (or the extractor that does it) would change a row, send a mail or answer otherwise.
#[tokio::test]
async fn every_form_route_refuses_a_forged_token_before_it_acts() {
    let f = fixture().await;
    let (id, token) = f.deposit("office@practice.example", MESSAGE).await;
    let revoke_token = f
        .outbox
        .0
        .lock()
        .unwrap()
        .iter()
        .find_map(|m| {
            let t = String::from_utf8_lossy(&m.data).to_string();
            t.split("/revoke/").nth(1).map(|r| {
                r.chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
                    .collect::<String>()
            })
        })
        .expect("the sender's notice has a withdrawal link");
    // A visitor on the link (an anonymous session bound to the message), a signed-in
    // recipient, and an administrator.
    let mut visitor = Browser::new(&f.app);
    visitor.get(&format!("/m/{token}")).await;
    visitor.get(&format!("/revoke/{revoke_token}")).await;
    let mut recipient = Browser::new(&f.app);
    recipient.sign_in(&f, &token).await;
    let mut admin = Browser::new(&f.app);
    let c = admin.get("/admin").await.csrf();
    let r = admin
        .post(
            "/admin/login",
            &[
                ("csrf", &c),
                ("user", "admin"),
                ("password", "correct horse battery"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    let before = f.portal.audit.list(None).await.unwrap().len();
    let pw = "a long enough password";
    let recipient_forms: Vec<(String, Vec<(&str, &str)>)> = vec![
        ("/account".into(), vec![("password", pw), ("confirm", pw)]),
        ("/logout".into(), vec![]),
    ];
    let visitor_forms: Vec<(String, Vec<(&str, &str)>)> = vec![
        (
            "/login".into(),
            vec![("address", "office@practice.example"), ("password", pw)],
        ),
        (format!("/m/{token}/code"), vec![]),
        (format!("/m/{token}/verify"), vec![("code", "12345678")]),
        (format!("/m/{token}/password"), vec![("password", pw)]),
        (format!("/revoke/{revoke_token}"), vec![]),
    ];
    let admin_forms: Vec<(String, Vec<(&str, &str)>)> = vec![
        (
            "/admin/login".into(),
            vec![("user", "admin"), ("password", "correct horse battery")],
        ),
        (format!("/admin/portal/{id}/revoke"), vec![]),
        (
            "/admin/quarantine/Q1/release".into(),
            vec![("reason", "looks fine")],
        ),
        ("/admin/quarantine/Q1/reject".into(), vec![("reason", "no")]),
        ("/admin/logout".into(), vec![]),
    ];
    for (who, forms, words) in [
        (&mut recipient, recipient_forms, "Please try again"),
        (&mut visitor, visitor_forms, "Please try again"),
        (&mut admin, admin_forms, "Not possible"),
    ] {
        for (path, fields) in forms {
            let mut form = fields.clone();
            form.push(("csrf", "forged-token-value"));
            let r = who.post(&path, &form).await;
            assert_eq!(r.status, StatusCode::FORBIDDEN, "{path}");
            let text = r.text();
            assert!(
                text.starts_with("<!DOCTYPE html>") && text.contains(words),
                "{path}: {text}"
            );
        }
    }
    assert_eq!(
        f.portal.audit.list(None).await.unwrap().len(),
        before,
        "nothing was audited"
    );
    // Still signed in (no forged sign-out), the message still there (no forged revocation).
    assert_eq!(
        recipient.get(&format!("/message/{id}")).await.status,
        StatusCode::OK
    );
    assert!(admin.get("/admin").await.text().contains("Portal messages"));
}

#[tokio::test]
async fn wrong_codes_lock_the_link_and_are_audited() {
    let f = fixture().await;
    let (id, token) = f.deposit("office@practice.example", MESSAGE).await;
    let mut b = Browser::new(&f.app);
    let csrf = b.get(&format!("/m/{token}")).await.csrf();
    b.post(&format!("/m/{token}/code"), &[("csrf", &csrf)])
        .await;
    let right = f.last_code();
    let wrong = if right == "00000000" {
        "11111111"
    } else {
        "00000000"
    };
    for i in 0..5 {
        let r = b
            .post(
                &format!("/m/{token}/verify"),
                &[("csrf", &csrf), ("code", wrong)],
            )
            .await;
        let want = if i < 4 {
            StatusCode::BAD_REQUEST
        } else {
            StatusCode::TOO_MANY_REQUESTS
        };
        assert_eq!(r.status, want, "attempt {i}");
    }
    // Locked: even the right code does not open it now, and no new code is sent.
    let r = b
        .post(
            &format!("/m/{token}/verify"),
            &[("csrf", &csrf), ("code", &right)],
        )
        .await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(r.text().contains("Too many wrong codes"));
    let r = b
        .post(&format!("/m/{token}/code"), &[("csrf", &csrf)])
        .await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    let log = f.portal.audit.list(Some(&id)).await.unwrap();
    assert_eq!(log.iter().filter(|a| a.action == "code-failed").count(), 5);
    assert_eq!(log.iter().filter(|a| a.action == "locked").count(), 1);
    assert!(!log.iter().any(|a| a.action == "signed-in"));

    // After the lock (moved into the past here), a fresh code works, once.
    sqlx::query("UPDATE portal_message SET locked_until = 0")
        .execute(f.db.pool())
        .await
        .unwrap();
    b.post(&format!("/m/{token}/code"), &[("csrf", &csrf)])
        .await;
    let code = f.last_code();
    let ok = b
        .post(
            &format!("/m/{token}/verify"),
            &[("csrf", &csrf), ("code", &code)],
        )
        .await;
    assert_eq!(ok.status, StatusCode::SEE_OTHER);
    let mut again = Browser::new(&f.app);
    let c2 = again.get(&format!("/m/{token}")).await.csrf();
    let r = again
        .post(
            &format!("/m/{token}/verify"),
            &[("csrf", &c2), ("code", &code)],
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "a code works once");
}

#[tokio::test]
async fn resends_are_limited() {
    let f = fixture().await;
    let (_, token) = f.deposit("office@practice.example", MESSAGE).await;
    let mut b = Browser::new(&f.app);
    let csrf = b.get(&format!("/m/{token}")).await.csrf();
    for _ in 0..5 {
        let r = b
            .post(&format!("/m/{token}/code"), &[("csrf", &csrf)])
            .await;
        assert_eq!(r.status, StatusCode::OK);
    }
    let r = b
        .post(&format!("/m/{token}/code"), &[("csrf", &csrf)])
        .await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    let codes = f
        .outbox
        .0
        .lock()
        .unwrap()
        .iter()
        .filter(|m| m.kind == MailKind::Code)
        .count();
    assert_eq!(codes, 5);
}

#[tokio::test]
async fn revoked_and_expired_messages_are_gone_with_their_keys() {
    let f = fixture().await;
    let (id, token) = f.deposit("office@practice.example", MESSAGE).await;
    let mut b = Browser::new(&f.app);
    b.sign_in(&f, &token).await;
    assert_eq!(
        b.get(&format!("/message/{id}")).await.status,
        StatusCode::OK
    );
    assert!(f
        .portal
        .revoke(&id, "alice@hospital.example", None)
        .await
        .unwrap());
    assert_eq!(
        b.get(&format!("/message/{id}")).await.status,
        StatusCode::GONE
    );
    assert_eq!(
        b.get(&format!("/message/{id}/attachment/0")).await.status,
        StatusCode::GONE
    );
    let mut fresh = Browser::new(&f.app);
    let r = fresh.get(&format!("/m/{token}")).await;
    assert_eq!(r.status, StatusCode::GONE);
    assert!(r.text().contains("withdrawn"));
    let (wrapped, body): (Option<Vec<u8>>, Option<Vec<u8>>) =
        sqlx::query_as("SELECT wrapped_key, body FROM portal_message WHERE id = $1")
            .bind(&id)
            .fetch_one(f.db.pool())
            .await
            .unwrap();
    assert!(
        wrapped.is_none() && body.is_none(),
        "key and content destroyed"
    );

    let (id2, token2) = f.deposit("office@practice.example", MESSAGE).await;
    sqlx::query("UPDATE portal_message SET expires_at = 1 WHERE id = $1")
        .bind(&id2)
        .execute(f.db.pool())
        .await
        .unwrap();
    // Past its date it is unreadable at once, and the sweep destroys it.
    let r = Browser::new(&f.app).get(&format!("/m/{token2}")).await;
    assert_eq!(r.status, StatusCode::GONE);
    assert!(r.text().contains("expired"));
    assert_eq!(f.portal.expire().await.unwrap(), 1);
    let log = f.portal.audit.list(Some(&id2)).await.unwrap();
    assert_eq!(log.last().unwrap().action, "expired");
    let log = f.portal.audit.list(Some(&id)).await.unwrap();
    assert_eq!(log.last().unwrap().action, "revoked");
}

#[tokio::test]
async fn another_recipients_message_is_not_found_and_bad_paths_are_refused() {
    let f = fixture().await;
    let (mine, token) = f.deposit("office@practice.example", MESSAGE).await;
    let (theirs, _) = f.deposit("someone@else.example", MESSAGE).await;
    let mut b = Browser::new(&f.app);
    b.sign_in(&f, &token).await;
    for path in [
        format!("/message/{theirs}"),
        format!("/message/{theirs}/attachment/0"),
        format!("/message/{theirs}/eml"),
        format!("/message/{theirs}/reply"),
        "/message/Pnonexistent".to_string(),
        format!("/message/{mine}/attachment/7"),
    ] {
        let r = b.get(&path).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{path}");
        assert!(!r.text().contains("PHI-MARKER"));
    }
    for path in [
        format!("/message/{mine}/attachment/..%2F..%2Fetc%2Fpasswd"),
        format!("/message/{mine}/attachment/-1"),
        "/m/..%2F..%2Fetc%2Fpasswd".to_string(),
        "/m/short".to_string(),
    ] {
        let r = b.get(&path).await;
        assert!(r.status.is_client_error(), "{path}: {}", r.status);
        assert!(!r.text().contains("root:"));
    }
    // Not signed in: nothing but the sign-in message.
    let mut anon = Browser::new(&f.app);
    for path in [format!("/message/{mine}"), "/inbox".into()] {
        assert_eq!(anon.get(&path).await.status, StatusCode::UNAUTHORIZED);
    }
}

#[tokio::test]
async fn an_html_mail_full_of_xss_vectors_comes_out_inert() {
    let f = fixture().await;
    let html = "<p>Visible text</p><script>alert(1)</script><img src=x onerror=alert(2)>\
<a href=\"javascript:alert(3)\">click</a><svg onload=alert(4)></svg>\
<div style=\"background:url(javascript:alert(5));width:expression(alert(6))\">css</div>\
<meta http-equiv=\"refresh\" content=\"0;url=https://evil.example\">\
<form action=\"https://evil.example/steal\"><input name=pw><button>go</button></form>\
<iframe src=\"https://evil.example\"></iframe><style>@import 'https://track.example/x.css'</style>\
<img src=\"https://track.example/pixel.gif\"><a href=\"https://ok.example/\">fine link</a>";
    let msg = format!(
        "From: alice@hospital.example\r\nSubject: <script>alert('subject')</script>\r\n\
MIME-Version: 1.0\r\nContent-Type: text/html; charset=utf-8\r\n\r\n{html}\r\n"
    );
    let (id, token) = f.deposit("office@practice.example", msg.as_bytes()).await;
    let mut b = Browser::new(&f.app);
    b.sign_in(&f, &token).await;
    let page = b.get(&format!("/message/{id}")).await;
    assert_eq!(page.status, StatusCode::OK);
    let text = page.text().to_ascii_lowercase();
    for bad in [
        "<script",
        "onerror",
        "onload",
        "javascript:",
        "<svg",
        "expression(",
        "<meta http-equiv",
        "evil.example",
        "<iframe",
        "track.example",
        "<input name=\"pw\"",
        "<style",
    ] {
        assert!(!text.contains(bad), "{bad} survived");
    }
    assert!(text.contains("visible text"));
    assert!(
        text.contains("&lt;script&gt;alert('subject')")
            || text.contains("&lt;script&gt;alert(&#39;subject&#39;)"),
        "subject escaped"
    );
    assert!(text.contains("rel=\"noopener noreferrer nofollow\""));
}

#[tokio::test]
async fn idle_sessions_end_and_planted_cookies_do_not_survive_sign_in() {
    let f = fixture().await;
    let (id, token) = f.deposit("office@practice.example", MESSAGE).await;
    let mut b = Browser::new(&f.app);
    let planted = {
        b.get(&format!("/m/{token}")).await;
        b.cookie.clone().unwrap()
    };
    // An attacker who planted this cookie gains nothing when the victim signs in.
    let mut victim = Browser::new(&f.app);
    victim.cookie = Some(planted.clone());
    let csrf = victim.get(&format!("/m/{token}")).await.csrf();
    let _ = csrf;
    victim.sign_in(&f, &token).await;
    let mut attacker = Browser::new(&f.app);
    attacker.cookie = Some(planted);
    assert_eq!(
        attacker.get(&format!("/message/{id}")).await.status,
        StatusCode::UNAUTHORIZED
    );
    // Fifteen minutes idle: signed out.
    sqlx::query("UPDATE portal_session SET last_seen = last_seen - 901")
        .execute(f.db.pool())
        .await
        .unwrap();
    assert_eq!(
        victim.get(&format!("/message/{id}")).await.status,
        StatusCode::UNAUTHORIZED
    );
    // Absolute limit too, however active.
    victim.sign_in(&f, &token).await;
    sqlx::query("UPDATE portal_session SET created_at = created_at - 8 * 3600 - 1")
        .execute(f.db.pool())
        .await
        .unwrap();
    assert_eq!(
        victim.get(&format!("/message/{id}")).await.status,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn a_password_is_optional_and_opens_the_inbox_later() {
    let f = fixture().await;
    let (_, token) = f.deposit("office@practice.example", MESSAGE).await;
    let mut b = Browser::new(&f.app);
    b.sign_in(&f, &token).await;
    let csrf = b.get("/account").await.csrf();
    let r = b
        .post(
            "/account",
            &[("csrf", &csrf), ("password", "short"), ("confirm", "short")],
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let pw = "a sentence as a password";
    let r = b
        .post(
            "/account",
            &[("csrf", &csrf), ("password", pw), ("confirm", pw)],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let mut later = Browser::new(&f.app);
    let c = later.get("/").await.csrf();
    let bad = later
        .post(
            "/login",
            &[
                ("csrf", &c),
                ("address", "office@practice.example"),
                ("password", "wrong one"),
            ],
        )
        .await;
    assert_eq!(bad.status, StatusCode::UNAUTHORIZED);
    let c = bad.csrf();
    let ok = later
        .post(
            "/login",
            &[
                ("csrf", &c),
                ("address", "Office@Practice.example"),
                ("password", pw),
            ],
        )
        .await;
    assert_eq!(ok.status, StatusCode::SEE_OTHER);
    assert!(later.get("/inbox").await.text().contains("Lab results"));
    // Five wrong passwords lock the address; the right one is then refused too.
    let mut guesser = Browser::new(&f.app);
    for _ in 0..5 {
        let c = guesser.get("/").await.csrf();
        guesser
            .post(
                "/login",
                &[
                    ("csrf", &c),
                    ("address", "office@practice.example"),
                    ("password", "guess"),
                ],
            )
            .await;
    }
    let c = guesser.get("/").await.csrf();
    let r = guesser
        .post(
            "/login",
            &[
                ("csrf", &c),
                ("address", "office@practice.example"),
                ("password", pw),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn administrators_sign_in_separately_and_revoke() {
    let f = fixture().await;
    let (id, token) = f.deposit("office@practice.example", MESSAGE).await;
    let mut admin = Browser::new(&f.app);
    let c = admin.get("/admin").await.csrf();
    let r = admin
        .post(
            "/admin/login",
            &[("csrf", &c), ("user", "admin"), ("password", "nope")],
        )
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let c = r.csrf();
    let r = admin
        .post(
            "/admin/login",
            &[
                ("csrf", &c),
                ("user", "admin"),
                ("password", "correct horse battery"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    let dash = admin.get("/admin").await;
    assert!(dash.text().contains("office@practice.example"));
    assert!(!dash.text().contains("PHI-MARKER") && !dash.text().contains("Lab results"));
    // An administrator's session is not a recipient's.
    assert_eq!(
        admin.get(&format!("/message/{id}")).await.status,
        StatusCode::UNAUTHORIZED
    );
    // A recipient's session is not an administrator's.
    let mut r = Browser::new(&f.app);
    r.sign_in(&f, &token).await;
    let mut same_cookie = Browser::new(&f.app);
    same_cookie.cookie = r.cookie.clone();
    assert!(!same_cookie
        .get("/admin")
        .await
        .text()
        .contains("Portal messages"));
    let csrf = dash.csrf();
    let bad = admin
        .post(&format!("/admin/portal/{id}/revoke"), &[("csrf", "x")])
        .await;
    assert_eq!(bad.status, StatusCode::FORBIDDEN);
    let ok = admin
        .post(&format!("/admin/portal/{id}/revoke"), &[("csrf", &csrf)])
        .await;
    assert_eq!(ok.status, StatusCode::SEE_OTHER);
    assert_eq!(
        r.get(&format!("/message/{id}")).await.status,
        StatusCode::GONE
    );
    let trail = admin.get(&format!("/admin/portal/{id}")).await.text();
    assert!(trail.contains("revoked") && trail.contains("admin:admin"));
}

#[tokio::test]
async fn a_logo_is_shown_and_an_svg_logo_cannot_run_script() {
    let dir = tempfile::tempdir().unwrap();
    let logo = dir.path().join("logo.svg");
    std::fs::write(
        &logo,
        "<svg xmlns=\"http://www.w3.org/2000/svg\"><script>alert(1)</script><rect width=\"9\" height=\"9\"/></svg>",
    )
    .unwrap();
    let db = Db::sqlite(&dir.path().join("p.sqlite")).await.unwrap();
    let portal = Arc::new(Portal::new(
        db,
        MasterKey::new(&[1u8; 32]).unwrap(),
        PortalSettings {
            logo,
            ..PortalSettings::default()
        },
        "http://127.0.0.1:1".into(),
        false,
        Arc::new(MemoryOutbox::default()),
    ));
    let app = postern_portal::web::router(portal);
    let mut b = Browser::new(&app);
    assert!(b.get("/").await.text().contains("src=\"/static/logo\""));
    let l = b.get("/static/logo").await;
    assert_eq!(l.status, StatusCode::OK);
    assert_eq!(l.headers[header::CONTENT_TYPE], "image/svg+xml");
    let csp = l.headers["content-security-policy"].to_str().unwrap();
    assert!(
        csp.contains("sandbox") && csp.contains("default-src 'none'") && !csp.contains("script")
    );
    // Without TLS the cookie is not marked Secure (plain HTTP is for loopback only).
    let home = b.get("/").await;
    let cookie = home.headers[header::SET_COOKIE].to_str().unwrap();
    assert!(cookie.starts_with("postern=") && !cookie.contains("Secure"));
    assert!(!home.headers.contains_key("strict-transport-security"));
}

#[tokio::test]
async fn the_sender_withdraws_a_message_with_the_link_only_the_sender_got() {
    let f = fixture().await;
    let (id, token) = f.deposit("office@practice.example", MESSAGE).await;
    let notice = {
        let mails = f.outbox.0.lock().unwrap();
        let n = mails
            .iter()
            .find(|m| m.kind == MailKind::SenderNotice)
            .unwrap();
        assert_eq!(n.rcpt_to, vec!["alice@hospital.example".to_string()]);
        body_text(&n.data)
    };
    // The recipient's notification does not carry the withdrawal link, and vice versa.
    let note = body_text(&f.outbox.0.lock().unwrap()[0].data);
    assert!(!note.contains("/revoke/"));
    assert!(!notice.contains(&format!("/m/{token}")));
    let at = notice
        .find("https://portal.hospital.example/revoke/")
        .unwrap();
    let revoke: String = notice[at + 31..]
        .chars()
        .take_while(|c| !c.is_whitespace())
        .collect();
    let mut reader = Browser::new(&f.app);
    reader.sign_in(&f, &token).await;
    let mut sender = Browser::new(&f.app);
    // A GET (a link scanner) changes nothing; the form does.
    let confirm = sender.get(&revoke).await;
    assert_eq!(confirm.status, StatusCode::OK);
    assert_eq!(
        reader.get(&format!("/message/{id}")).await.status,
        StatusCode::OK
    );
    let r = sender.post(&revoke, &[("csrf", "forged")]).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = sender.post(&revoke, &[("csrf", &confirm.csrf())]).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(
        reader.get(&format!("/message/{id}")).await.status,
        StatusCode::GONE
    );
    assert_eq!(sender.get(&revoke).await.status, StatusCode::GONE);
    let log = f.portal.audit.list(Some(&id)).await.unwrap();
    let last = log.last().unwrap();
    assert_eq!(
        (last.action.as_str(), last.actor.as_str()),
        ("revoked", "alice@hospital.example")
    );
    // A made-up link finds nothing.
    assert_eq!(
        Browser::new(&f.app)
            .get("/revoke/AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")
            .await
            .status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn anonymous_pages_that_start_sessions_are_rate_limited_per_client() {
    let f = fixture().await;
    let limit = PortalSettings::default().per_client_per_minute as usize;
    let mut statuses = Vec::new();
    for _ in 0..limit + 1 {
        statuses.push(Browser::new(&f.app).get("/").await.status);
    }
    assert!(statuses[..limit].iter().all(|s| *s == StatusCode::OK));
    assert_eq!(statuses[limit], StatusCode::TOO_MANY_REQUESTS);
    let rows: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM portal_session")
        .fetch_one(f.db.pool())
        .await
        .unwrap();
    assert_eq!(rows as usize, limit, "no session row for a refused request");
}

/// Sets `pw` as the password of the deposit's recipient (signed in by code).
async fn with_password(f: &Fixture, token: &str, pw: &str) {
    let mut b = Browser::new(&f.app);
    b.sign_in(f, token).await;
    let csrf = b.get("/account").await.csrf();
    let r = b
        .post(
            "/account",
            &[("csrf", &csrf), ("password", pw), ("confirm", pw)],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
}

/// Runs `n` requests at once, each from a browser of its own client address; their statuses.
async fn burst<F, Fut>(f: &Fixture, n: u32, first: u32, one: F) -> Vec<StatusCode>
where
    F: Fn(Browser) -> Fut,
    Fut: std::future::Future<Output = StatusCode> + Send + 'static,
{
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..n {
        tasks.spawn(one(Browser::at(&f.app, first + i)));
    }
    tasks.join_all().await
}

async fn audited(f: &Fixture, object: &str, action: &str) -> usize {
    let log = f.portal.audit.list(Some(object)).await.unwrap();
    log.iter().filter(|a| a.action == action).count()
}

/// The lock is counted before the slow check: 40 wrong passwords at once get at most the five
/// checks the policy allows (all 40 were checked when the lock was read before the hash and
/// written after it), the right password after them is refused, and so is the right one typed
/// into a link's password form (the same secret, the same lock).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn parallel_password_guesses_get_no_more_checks_than_the_lock_allows() {
    let f = fixture().await;
    let (id, token) = f.deposit("office@practice.example", MESSAGE).await;
    let pw = "a sentence as a password";
    with_password(&f, &token, pw).await;
    let login = |pw: &'static str| {
        move |mut b: Browser| async move {
            let c = b.get("/").await.csrf();
            let form = [
                ("csrf", c.as_str()),
                ("address", "office@practice.example"),
                ("password", pw),
            ];
            b.post("/login", &form).await.status
        }
    };
    let statuses = burst(&f, 40, 0, login("guess")).await;
    let checked = audited(&f, "office@practice.example", "code-failed").await;
    assert!(
        (1..=5).contains(&checked),
        "{checked} of 40 parallel wrong passwords were checked: {statuses:?}"
    );
    assert!(!statuses.contains(&StatusCode::SEE_OTHER));
    // The right password, after the burst: locked.
    let after = burst(&f, 1, 100, login(pw)).await;
    assert_eq!(after, vec![StatusCode::UNAUTHORIZED]);
    assert_eq!(audited(&f, "office@practice.example", "signed-in").await, 0);
    // The link's password form counts on the same lock.
    let mut b = Browser::at(&f.app, 101);
    let c = b.get(&format!("/m/{token}")).await.csrf();
    let r = b
        .post(
            &format!("/m/{token}/password"),
            &[("csrf", &c), ("password", pw)],
        )
        .await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "{}", r.text());
    assert_eq!(
        audited(&f, &id, "signed-in").await,
        1,
        "only the code sign-in"
    );
}

/// 150 wrong codes at once compare at most five; the right code after them is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn parallel_code_guesses_compare_no_more_than_the_lock_allows() {
    let f = fixture().await;
    let (id, token) = f.deposit("office@practice.example", MESSAGE).await;
    let mut b = Browser::new(&f.app);
    let csrf = b.get(&format!("/m/{token}")).await.csrf();
    b.post(&format!("/m/{token}/code"), &[("csrf", &csrf)])
        .await;
    let right = f.last_code();
    let wrong = if right == "00000000" {
        "11111111"
    } else {
        "00000000"
    };
    let t = token.clone();
    let statuses = burst(&f, 150, 0, move |mut b: Browser| {
        let t = t.clone();
        async move {
            let c = b.get(&format!("/m/{t}")).await.csrf();
            b.post(&format!("/m/{t}/verify"), &[("csrf", &c), ("code", wrong)])
                .await
                .status
        }
    })
    .await;
    let compared = audited(&f, &id, "code-failed").await;
    assert!(
        (1..=5).contains(&compared),
        "{compared} of 150 parallel codes were compared: {statuses:?}"
    );
    assert_eq!(audited(&f, &id, "locked").await, 1);
    let r = b
        .post(
            &format!("/m/{token}/verify"),
            &[("csrf", &csrf), ("code", &right)],
        )
        .await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(audited(&f, &id, "signed-in").await, 0);
}

/// Administrators have the recipients' lock: five wrong passwords, then the right one is
/// refused, and the lock is in the audit log; a burst gets no more checks than that.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn administrator_sign_in_locks_after_repeated_failures() {
    let f = fixture().await;
    let admin = |pw: &'static str| {
        move |mut b: Browser| async move {
            let c = b.get("/admin").await.csrf();
            b.post(
                "/admin/login",
                &[("csrf", c.as_str()), ("user", "admin"), ("password", pw)],
            )
            .await
            .status
        }
    };
    let statuses = burst(&f, 40, 0, admin("guess")).await;
    assert!(!statuses.contains(&StatusCode::SEE_OTHER));
    let log = f.portal.audit.list(Some("admin")).await.unwrap();
    let checked = log.iter().filter(|a| a.detail == "wrong password").count();
    assert!(
        (1..=5).contains(&checked),
        "{checked} checked: {statuses:?}"
    );
    assert_eq!(log.iter().filter(|a| a.action == "locked").count(), 1);
    assert_eq!(
        burst(&f, 1, 100, admin("correct horse battery")).await,
        vec![StatusCode::UNAUTHORIZED]
    );
    // Once the lock has passed (moved into the past here), the right password works.
    sqlx::query("UPDATE admin_lock SET locked_until = 1")
        .execute(f.db.pool())
        .await
        .unwrap();
    assert_eq!(
        burst(&f, 1, 101, admin("correct horse battery")).await,
        vec![StatusCode::SEE_OTHER]
    );
}

/// Names taken from mail cannot lie: a display name that reads as an instruction stays out of
/// the notification's Subject (our organisation and the sender's address are there) and is cut
/// short in its body, and a right-to-left override in an attachment's name (`photo\u{202e}gpj.scr`,
/// shown as `photorcs.jpg`) is dropped on the page, in the download's header and in replies.
#[tokio::test]
async fn names_from_mail_cannot_lie() {
    let f = fixture().await;
    let msg = "From: \"IT desk: your portal password expired, visit https://evil.example\" <alice@hospital.example>\r\n\
To: office@practice.example\r\nSubject: Photo\u{200b}s\r\nMIME-Version: 1.0\r\n\
Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nsee attached\r\n\
--b\r\nContent-Type: application/octet-stream\r\n\
Content-Disposition: attachment; filename*=utf-8''photo%E2%80%AEgpj.scr\r\n\
Content-Transfer-Encoding: base64\r\n\r\nTVqQAAMAAAAEAAAA\r\n--b--\r\n";
    let (id, token) = f.deposit("office@practice.example", msg.as_bytes()).await;
    let note = f
        .outbox
        .0
        .lock()
        .unwrap()
        .iter()
        .find(|m| m.kind == MailKind::Notification)
        .unwrap()
        .data
        .clone();
    let parsed = mail_parser::MessageParser::default().parse(&note).unwrap();
    assert_eq!(
        parsed.subject(),
        Some("Secure message from alice@hospital.example (General Hospital)")
    );
    let text = body_text(&note);
    assert!(!text.contains("evil.example"), "{text}");
    assert!(text.contains("<alice@hospital.example>"), "{text}");
    let mut b = Browser::new(&f.app);
    let link = b.get(&format!("/m/{token}")).await.text();
    assert!(!link.contains("evil.example") && link.contains("alice@hospital.example"));
    b.sign_in(&f, &token).await;
    let page = b.get(&format!("/message/{id}")).await.text();
    assert!(
        page.contains("photogpj.scr"),
        "the name, without the override"
    );
    assert!(!page.contains('\u{202e}') && !page.contains('\u{200b}'));
    let file = b.get(&format!("/message/{id}/attachment/0")).await;
    let disposition = file.headers[header::CONTENT_DISPOSITION].to_str().unwrap();
    assert!(
        !disposition.to_ascii_uppercase().contains("%E2%80%AE"),
        "{disposition}"
    );
    assert!(disposition.contains("photogpj.scr"), "{disposition}");
}

/// Errors the framework answers itself are pages in the portal's layout with a true message: a
/// form with a field missing, and a reply over the size limit (413, saying how large it may be,
/// not "form expired").
#[tokio::test]
async fn framework_errors_are_pages_that_say_what_happened() {
    let f = fixture().await;
    let (id, token) = f.deposit("office@practice.example", MESSAGE).await;
    let mut b = Browser::new(&f.app);
    b.get("/").await;
    let r = b.post("/login", &[("address", "a@b.example")]).await;
    assert!(r.status.is_client_error());
    let text = r.text();
    assert!(
        text.contains("General Hospital") && text.contains("<html"),
        "{text}"
    );
    assert!(!text.contains("deserialize"), "{text}");
    b.sign_in(&f, &token).await;
    let csrf = b.get(&format!("/message/{id}/reply")).await.csrf();
    let big = vec![b'x'; PortalSettings::default().max_reply_bytes + 1];
    let r = b
        .post_multipart(
            &format!("/message/{id}/reply"),
            &[
                ("csrf", None, csrf.as_bytes()),
                ("files", Some("scan.pdf"), &big),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(r.text().contains("at most 25.0 MB"), "{}", r.text());
}

/// Issue 25: behind a reverse proxy in `trusted_proxies`, each client is counted by the
/// address the proxy appends to `X-Forwarded-For` (the rightmost one that is not a trusted
/// proxy), so one flood does not lock everyone out; from anyone else the header is ignored, so
/// nobody escapes the limit by writing it.
#[tokio::test]
async fn behind_a_trusted_proxy_limits_count_the_forwarded_client_and_the_header_is_believed_from_it_only(
) {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::sqlite(&dir.path().join("p.sqlite")).await.unwrap();
    let settings = PortalSettings {
        per_client_per_minute: 2,
        trusted_proxies: vec!["10.0.0.0/24".into()],
        ..PortalSettings::default()
    };
    let portal = Arc::new(Portal::new(
        db,
        MasterKey::new(&[9u8; 32]).unwrap(),
        settings,
        "https://portal.hospital.example".into(),
        true,
        Arc::new(MemoryOutbox::default()),
    ));
    let app = postern_portal::web::router(portal);
    let get = |from: &str, forwarded: &str| {
        let app = app.clone();
        let mut b = Browser::new(&app);
        b.from = Some(from.parse().unwrap());
        let forwarded = forwarded.to_string();
        async move {
            let mut req = Request::get("/").body(Body::empty()).unwrap();
            if !forwarded.is_empty() {
                req.headers_mut()
                    .insert("x-forwarded-for", forwarded.parse().unwrap());
            }
            b.send(req).await.status
        }
    };
    // Through the proxy: one client's two requests, then the third refused; another client
    // (and one who wrote its own header before the proxy's) still has its own allowance.
    assert_eq!(get("10.0.0.5:1", "198.51.100.1").await, StatusCode::OK);
    assert_eq!(get("10.0.0.5:2", "198.51.100.1").await, StatusCode::OK);
    assert_eq!(
        get("10.0.0.5:3", "198.51.100.1").await,
        StatusCode::TOO_MANY_REQUESTS
    );
    assert_eq!(get("10.0.0.5:4", "198.51.100.2").await, StatusCode::OK);
    assert_eq!(
        get("10.0.0.5:5", "198.51.100.1, 198.51.100.3").await,
        StatusCode::OK,
        "the proxy's entry is the rightmost"
    );
    // A client writing the header itself, not through the proxy: counted as itself.
    assert_eq!(get("203.0.113.9:1", "198.51.100.10").await, StatusCode::OK);
    assert_eq!(get("203.0.113.9:2", "198.51.100.11").await, StatusCode::OK);
    assert_eq!(
        get("203.0.113.9:3", "198.51.100.12").await,
        StatusCode::TOO_MANY_REQUESTS
    );
}
