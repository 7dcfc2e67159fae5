//! Issue 10, end to end in a real browser: Debian's chromium, headless, driven through
//! chromedriver. Mail to a portal partner enters the relay over SMTP; the notification and the
//! code arrive at the sink; the browser follows the link, asks for and enters the code, reads
//! the message, downloads the attachment (bytes compared), replies with an attachment, and the
//! reply arrives at our mail server. axe-core runs on the link, message, inbox and reply pages:
//! no serious or critical violations. Screenshots go to target/portal-e2e/.
//!
//! Needs `chromium`, `chromedriver` and axe-core (`POSTERN_AXE_JS`: the path of axe.min.js);
//! scripts/test installs them and sets `POSTERN_REQUIRE_BROWSER=1`, which turns a missing one
//! into a failure instead of a skip.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is a failure report

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fantoccini::{Client, ClientBuilder, Locator};
use postern_tests::relay::{
    free_port, runtime, send_mail, test_config, wait_until, write_directory, SmtpSink,
};

const ATTACHMENT: &[u8] = b"%PDF-1.4\n% pretend lab report for the browser test \x00\x01\xfe\xff\n";

struct Driver(Child);

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// What the test needs from the machine, or why it cannot run.
fn prerequisites() -> Result<(PathBuf, PathBuf), String> {
    let which = |p: &str| {
        std::env::var_os("PATH").and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|d| d.join(p))
                .find(|f| f.exists())
        })
    };
    let driver = which("chromedriver").ok_or("chromedriver not installed")?;
    which("chromium").ok_or("chromium not installed")?;
    let axe = PathBuf::from(std::env::var("POSTERN_AXE_JS").map_err(|_| "POSTERN_AXE_JS not set")?);
    if !axe.exists() {
        return Err(format!("{} missing", axe.display()));
    }
    Ok((driver, axe))
}

fn artifacts() -> PathBuf {
    let d = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/portal-e2e");
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn decoded_body(raw: &[u8]) -> String {
    mail_parser::MessageParser::default()
        .parse(raw)
        .and_then(|m| m.body_text(0).map(|t| t.into_owned()))
        .unwrap_or_default()
}

async fn shot(c: &Client, name: &str) {
    let png = c.screenshot().await.unwrap();
    std::fs::write(artifacts().join(format!("{name}.png")), png).unwrap();
}

/// Runs axe-core on the page; returns the serious and critical violations (and prints all).
async fn axe(c: &Client, axe_js: &str, page: &str) -> Vec<String> {
    c.execute(axe_js, vec![]).await.unwrap();
    let out = c
        .execute_async(
            "const done = arguments[arguments.length - 1];
             axe.run(document, { resultTypes: ['violations'] })
               .then(r => done(JSON.stringify(r.violations.map(v => [v.id, v.impact, v.nodes.length]))))
               .catch(e => done('error: ' + e));",
            vec![],
        )
        .await
        .unwrap();
    let text = out.as_str().unwrap_or_default().to_string();
    assert!(!text.starts_with("error"), "axe on {page}: {text}");
    let all: Vec<(String, Option<String>, u64)> = serde_json::from_str(&text).unwrap();
    println!("axe {page}: {} violations {all:?}", all.len());
    all.into_iter()
        .filter(|(_, impact, _)| matches!(impact.as_deref(), Some("serious" | "critical")))
        .map(|(id, impact, n)| format!("{page}: {id} ({impact:?}, {n} nodes)"))
        .collect()
}

#[test]
fn a_recipient_reads_and_answers_in_chromium_and_the_pages_pass_axe() {
    let (driver_bin, axe_path) = match prerequisites() {
        Ok(p) => p,
        Err(why) => {
            assert!(
                std::env::var("POSTERN_REQUIRE_BROWSER").is_err(),
                "browser test cannot run: {why}"
            );
            eprintln!("skipped: {why}");
            return;
        }
    };
    let axe_js = std::fs::read_to_string(&axe_path).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    write_directory(
        tmp.path(),
        "[our]\ndomains = [\"clinic.example\"]\n\n[[partner]]\ndomain = \"smallpractice.example\"\npolicy = \"portal\"\n",
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
        support: "Clinic Example help desk, 555-0100".into(),
        ..postern_portal::PortalSettings::default()
    };
    let rt = runtime();
    let relay = rt.block_on(postern_relay::start(&cfg)).unwrap();
    let smtp = relay.internal_addr.unwrap().to_string();
    let to = "office@smallpractice.example";
    let msg = {
        use base64::Engine;
        format!(
            "From: Ada Lovelace <ada@clinic.example>\r\nTo: {to}\r\nSubject: Discharge summary for J. Doe\r\n\
Message-ID: <e2e@clinic.example>\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"b\"\r\n\r\n\
--b\r\nContent-Type: text/html; charset=utf-8\r\n\r\n<p>Dear colleague,</p><p>the <b>discharge summary</b> is attached.\
<script>document.title='pwned'</script><img src=x onerror=\"document.title='pwned'\"></p>\r\n\
--b\r\nContent-Type: application/pdf\r\nContent-Disposition: attachment; filename=\"summary.pdf\"\r\n\
Content-Transfer-Encoding: base64\r\n\r\n{}\r\n--b--\r\n",
            base64::engine::general_purpose::STANDARD.encode(ATTACHMENT)
        )
    };
    assert!(
        send_mail(&smtp, "ada@clinic.example", &[to], msg.as_bytes())
            .unwrap()
            .starts_with("250")
    );
    let find_mail = |sink: &SmtpSink, needle: &str| {
        sink.messages()
            .into_iter()
            .map(|(_, m)| decoded_body(&m))
            .find(|t| t.contains(needle))
    };
    assert!(wait_until(Duration::from_secs(30), || find_mail(
        &internet, "/m/"
    )
    .is_some()));
    let note = find_mail(&internet, "/m/").unwrap();
    let link = note
        .split_whitespace()
        .find(|w| w.starts_with("http://127.0.0.1"))
        .unwrap()
        .to_string();

    let dport = free_port();
    let _driver = Driver(
        Command::new(&driver_bin)
            .arg(format!("--port={dport}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    assert!(wait_until(Duration::from_secs(20), || {
        postern_tests::http::Client::new(&format!("127.0.0.1:{dport}"))
            .get("/status")
            .is_ok_and(|r| r.status == 200)
    }));
    let downloads = tmp.path().join("downloads");
    std::fs::create_dir_all(&downloads).unwrap();
    let upload = tmp.path().join("consent form.txt");
    std::fs::write(&upload, b"CONSENT-FROM-THE-BROWSER").unwrap();

    let caps: serde_json::Map<String, serde_json::Value> = serde_json::from_value(serde_json::json!({
        "browserName": "chrome",
        "goog:chromeOptions": {
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--window-size=1200,1000"],
            "prefs": {
                "download.default_directory": downloads.to_str().unwrap(),
                "download.prompt_for_download": false
            }
        }
    }))
    .unwrap();
    let c = rt
        .block_on(
            ClientBuilder::rustls()
                .unwrap()
                .capabilities(caps)
                .connect(&format!("http://127.0.0.1:{dport}")),
        )
        .unwrap();
    let b = |f| rt.block_on(f);
    let mut violations = Vec::new();

    // The link page shows the reference of the email; ask for a code.
    b(c.goto(&link)).unwrap();
    let reference = note
        .lines()
        .find_map(|l| l.strip_prefix("Reference: "))
        .unwrap()
        .trim()
        .to_string();
    assert!(rt.block_on(c.source()).unwrap().contains(&reference));
    violations.extend(rt.block_on(axe(&c, &axe_js, "link")));
    rt.block_on(shot(&c, "1-link"));
    let button = rt
        .block_on(c.find(Locator::XPath("//button[contains(., 'Email me a code')]")))
        .unwrap();
    rt.block_on(button.click()).unwrap();
    rt.block_on(c.wait().for_element(Locator::Css("p.notice")))
        .unwrap();
    assert!(wait_until(Duration::from_secs(30), || find_mail(
        &internet,
        "one-time code for"
    )
    .is_some()));
    let code: String = find_mail(&internet, "one-time code for")
        .unwrap()
        .lines()
        .find(|l| l.starts_with("    "))
        .unwrap()
        .chars()
        .filter(char::is_ascii_digit)
        .collect();
    let field = rt.block_on(c.find(Locator::Id("code"))).unwrap();
    rt.block_on(field.send_keys(&code)).unwrap();
    rt.block_on(shot(&c, "2-code-entered"));
    let open = rt
        .block_on(c.find(Locator::XPath("//button[contains(., 'Open the message')]")))
        .unwrap();
    rt.block_on(open.click()).unwrap();

    // The message: sanitised HTML (the script and onerror did nothing), the attachment.
    rt.block_on(
        c.wait()
            .for_element(Locator::XPath("//h1[contains(., 'Discharge summary')]")),
    )
    .unwrap();
    let title = rt
        .block_on(c.execute("return document.title", vec![]))
        .unwrap();
    assert!(
        !title.as_str().unwrap_or_default().contains("pwned"),
        "a script ran: {title}"
    );
    let body = rt.block_on(c.source()).unwrap();
    assert!(body.contains("discharge summary"));
    violations.extend(rt.block_on(axe(&c, &axe_js, "message")));
    rt.block_on(shot(&c, "3-message"));
    let file = rt
        .block_on(c.find(Locator::LinkText("summary.pdf")))
        .unwrap();
    rt.block_on(file.click()).unwrap();
    let saved = downloads.join("summary.pdf");
    assert!(
        wait_until(Duration::from_secs(30), || std::fs::read(&saved)
            .is_ok_and(|b| b == ATTACHMENT)),
        "the download has the attachment's bytes"
    );

    // The inbox.
    b(c.goto(&format!("http://127.0.0.1:{port}/inbox"))).unwrap();
    rt.block_on(
        c.wait()
            .for_element(Locator::XPath("//a[contains(., 'Discharge summary')]")),
    )
    .unwrap();
    violations.extend(rt.block_on(axe(&c, &axe_js, "inbox")));
    rt.block_on(shot(&c, "4-inbox"));

    // At phone width (390 px): no page scrolls sideways, and each inbox value has its
    // column's name beside it (the signed-in address overflowed the bar, and the table stacked
    // its headings apart from the values).
    rt.block_on(c.set_window_size(390, 844)).unwrap();
    let number = |script: &str| -> f64 {
        rt.block_on(c.execute(script, vec![]))
            .unwrap()
            .as_f64()
            .unwrap_or(f64::NAN)
    };
    rt.block_on(c.refresh()).unwrap();
    rt.block_on(
        c.wait()
            .for_element(Locator::XPath("//a[contains(., 'Discharge summary')]")),
    )
    .unwrap();
    let width = number("return window.innerWidth");
    assert!(
        width <= 400.0,
        "the window is {width} px wide, not a phone's"
    );
    let sideways =
        "return document.documentElement.scrollWidth - document.documentElement.clientWidth";
    assert_eq!(
        number(sideways),
        0.0,
        "the inbox scrolls sideways at {width} px"
    );
    let labels = rt
        .block_on(c.execute(
            "return [...document.querySelectorAll('table.cards td')].map(td => [
                 td.dataset.label,
                 getComputedStyle(td, '::before').content,
                 getComputedStyle(td).display])",
            vec![],
        ))
        .unwrap();
    let labels: Vec<(String, String, String)> = serde_json::from_value(labels).unwrap();
    assert_eq!(labels.len(), 4, "{labels:?}");
    for (label, before, display) in &labels {
        assert_eq!(before, &format!("\"{label}\""), "{labels:?}");
        assert_eq!(display, "flex", "label and value side by side: {labels:?}");
    }
    let who_right =
        number("return document.querySelector('.bar .who').getBoundingClientRect().right");
    assert!(
        who_right <= width,
        "the signed-in address ends at {who_right} px of {width}"
    );
    violations.extend(rt.block_on(axe(&c, &axe_js, "inbox at 390 px")));
    rt.block_on(shot(&c, "4-inbox-390px"));
    let open_it = rt
        .block_on(c.find(Locator::XPath("//a[contains(., 'Discharge summary')]")))
        .unwrap();
    rt.block_on(open_it.click()).unwrap();
    rt.block_on(
        c.wait()
            .for_element(Locator::XPath("//h1[contains(., 'Discharge summary')]")),
    )
    .unwrap();
    assert_eq!(
        number(sideways),
        0.0,
        "the message scrolls sideways at {width} px"
    );
    violations.extend(rt.block_on(axe(&c, &axe_js, "message at 390 px")));
    rt.block_on(shot(&c, "3-message-390px"));
    rt.block_on(c.set_window_size(1200, 1000)).unwrap();
    let inbox = format!("http://127.0.0.1:{port}/inbox");
    rt.block_on(c.goto(&inbox)).unwrap();
    rt.block_on(
        c.wait()
            .for_element(Locator::XPath("//a[contains(., 'Discharge summary')]")),
    )
    .unwrap();

    // A reply with an attachment.
    rt.block_on(c.find(Locator::LinkText("Discharge summary for J. Doe")))
        .unwrap();
    let msg_link = rt
        .block_on(c.find(Locator::XPath("//a[contains(., 'Discharge summary')]")))
        .unwrap();
    rt.block_on(msg_link.click()).unwrap();
    let reply = rt
        .block_on(c.wait().for_element(Locator::LinkText("Reply securely")))
        .unwrap();
    rt.block_on(reply.click()).unwrap();
    let text = rt
        .block_on(c.wait().for_element(Locator::Id("body")))
        .unwrap();
    violations.extend(rt.block_on(axe(&c, &axe_js, "reply")));
    rt.block_on(text.send_keys("Thank you, received. BROWSER-REPLY-4410"))
        .unwrap();
    let files = rt.block_on(c.find(Locator::Id("files"))).unwrap();
    rt.block_on(files.send_keys(upload.to_str().unwrap()))
        .unwrap();
    rt.block_on(shot(&c, "5-reply"));
    let send = rt
        .block_on(c.find(Locator::XPath("//button[contains(., 'Send reply')]")))
        .unwrap();
    rt.block_on(send.click()).unwrap();
    rt.block_on(
        c.wait()
            .for_element(Locator::XPath("//h1[contains(., 'Reply sent')]")),
    )
    .unwrap();
    rt.block_on(shot(&c, "6-reply-sent"));
    rt.block_on(c.close()).unwrap();

    assert!(wait_until(Duration::from_secs(30), || ours
        .messages()
        .iter()
        .any(
            |(_, m)| String::from_utf8_lossy(m).contains("BROWSER-REPLY-4410")
        )));
    let (rcpts, raw) = ours
        .messages()
        .into_iter()
        .find(|(_, m)| String::from_utf8_lossy(m).contains("BROWSER-REPLY-4410"))
        .unwrap();
    assert_eq!(rcpts, vec!["ada@clinic.example".to_string()]);
    let parsed = mail_parser::MessageParser::default().parse(&raw).unwrap();
    use mail_parser::MimeHeaders;
    let att = parsed.attachments().next().unwrap();
    assert_eq!(att.attachment_name(), Some("consent form.txt"));
    assert_eq!(att.contents(), b"CONSENT-FROM-THE-BROWSER");
    rt.block_on(relay.shutdown(Duration::from_secs(5)));
    assert!(
        violations.is_empty(),
        "serious or critical accessibility violations: {violations:#?}"
    );
}
