//! The Direct Project's reference material through the running relay (issue 24): what a HISP
//! sends, received over SMTP on the public listener and delivered to our mail server with the
//! result recorded. The RI's certificates expired in 2020-2025, so the relay's gateway runs on
//! a clock stopped at 2019-06-01 ([`postern_core::FixedClock`], an embedder's
//! `RelayBuilder::gateway` choice), the date the issue fixes for the material.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is a failure report

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use postern_tests::relay::{
    runtime, send_mail, test_config, wait_until, write_directory, SmtpSink,
};
use postern_tests::run_ok;

fn ri(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("data/direct-ri")
        .join(name)
}

/// A certificate and its key out of one of the RI's PKCS#12 files (RC2, so `-legacy`), as
/// `{stem}.crt` and `{stem}.key` in `dir`.
fn ri_pair(dir: &Path, pfx: &str, stem: &str) -> (PathBuf, PathBuf) {
    let pfx = ri(pfx);
    let part = |flag: &str, name: String| {
        let out = dir.join(name);
        run_ok(
            std::process::Command::new("openssl")
                .args([
                    "pkcs12",
                    "-legacy",
                    "-passin",
                    "pass:passw0rd!",
                    "-noenc",
                    flag,
                ])
                .arg("-in")
                .arg(&pfx)
                .arg("-out")
                .arg(&out),
            b"",
        );
        out
    };
    (
        part("-nokeys", format!("{stem}.crt")),
        part("-nocerts", format!("{stem}.key")),
    )
}

/// Biff's certificate and key (nhind.hsgincubator.com).
fn biff(dir: &Path) -> (PathBuf, PathBuf) {
    ri_pair(dir, "nhind_umamalga1_vm1.pfx", "biff")
}

/// Our side as nhind (Biff's key) with redmond as a Direct partner (its organisation
/// certificate, the RI's anchors), plus `extra` lines in the partner entry.
fn nhind_with_direct_redmond(biff: &(PathBuf, PathBuf), extra: &str) -> String {
    format!(
        "[our]\ndomains = [\"nhind.hsgincubator.com\"]\n\
         [[our.keys]]\nstandard = \"smime\"\ncertificate = \"{}\"\nkey = \"{}\"\n\
         [[partner]]\ndomain = \"redmond.hsgincubator.com\"\nstandards = [\"smime\"]\n\
         policy = \"required\"\nprofile = \"direct\"\nsmime_certificates = [\"{}\"]\n\
         {extra}trust_anchors = [\"{}\", \"{}\"]\n",
        biff.0.display(),
        biff.1.display(),
        ri("redmond.hsgincubator.com.crt").display(),
        ri("umamalga1.cer").display(),
        ri("um-amalga1-vm1.cer").display(),
    )
}

/// The relay with `directory`, its gateway's clock at 2019-06-01, delivering to `sink`.
fn relay_at_2019(
    tmp: &Path,
    sink: &SmtpSink,
    directory: &str,
) -> (tokio::runtime::Runtime, postern_relay::RunningRelay) {
    relay_at_2019_with(tmp, sink, directory, |_| {})
}

/// [`relay_at_2019`] with its configuration changed by `tune` first.
fn relay_at_2019_with(
    tmp: &Path,
    sink: &SmtpSink,
    directory: &str,
    tune: impl FnOnce(&mut postern_relay::RelayConfig),
) -> (tokio::runtime::Runtime, postern_relay::RunningRelay) {
    write_directory(tmp, directory);
    let mut cfg = test_config(tmp, &sink.addr(), &sink.addr());
    tune(&mut cfg);
    let at = postern_core::civil::parse_rfc3339("2019-06-01T12:00:00Z").unwrap();
    let rt = runtime();
    let relay = rt
        .block_on(
            postern_relay::RelayBuilder::new(&cfg)
                .gateway(move |g| g.clock(Arc::new(postern_core::FixedClock(at))))
                .start(),
        )
        .unwrap();
    (rt, relay)
}

fn directory(biff: &(PathBuf, PathBuf), accept_sha1: bool) -> String {
    let legacy = if accept_sha1 {
        "accept_legacy = [\"sha1\"]\n"
    } else {
        ""
    };
    format!(
        "[our]\ndomains = [\"nhind.hsgincubator.com\"]\n\
         [[our.keys]]\nstandard = \"smime\"\ncertificate = \"{}\"\nkey = \"{}\"\n\
         [[partner]]\ndomain = \"redmond.hsgincubator.com\"\nstandards = [\"smime\"]\n\
         policy = \"preferred\"\ntrust_anchors = [\"{}\", \"{}\"]\n{legacy}",
        biff.0.display(),
        biff.1.display(),
        ri("umamalga1.cer").display(),
        ri("um-amalga1-vm1.cer").display(),
    )
}

/// What the relay delivered to our mail server for the RI's message.
fn deliver(accept_sha1: bool) -> String {
    let tmp = tempfile::tempdir().unwrap();
    let keys = biff(tmp.path());
    let sink = SmtpSink::start(&[]);
    let (rt, relay) = relay_at_2019(tmp.path(), &sink, &directory(&keys, accept_sha1));
    let msg = std::fs::read(ri("envelopeSignature.eml")).unwrap();
    let public = relay.public_addr.unwrap().to_string();
    let r = send_mail(
        &public,
        "toby@redmond.hsgincubator.com",
        &["biff@nhind.hsgincubator.com"],
        &msg,
    )
    .unwrap();
    assert!(r.starts_with("250"), "{r}");
    assert!(wait_until(Duration::from_secs(20), || sink.count() == 1));
    let (_, delivered) = sink.messages().remove(0);
    rt.block_on(relay.shutdown(Duration::from_secs(5)));
    String::from_utf8_lossy(&delivered).into_owned()
}

/// E2 (D3): the RI's envelopeSignature.eml from the redmond HISP, SHA-1 accepted for it:
/// decrypted with Biff's key, its organisation certificate (a bare domain in emailAddress and
/// CN) speaks for toby@ of exactly its domain, chained to the partner's anchors: `weak`
/// (valid, with a legacy digest accepted for this partner), and delivered.
#[test]
fn the_ri_message_from_the_redmond_hisp_is_weak_and_delivered() {
    let got = deliver(true);
    assert!(got.contains("Postern-Signature: weak"), "{got}");
    // An organisation certificate: the reader is told the organisation signed, not a person.
    assert!(got.contains("Postern-Signature-Detail: domain"), "{got}");
    assert!(got.contains("Yo. This be a message"), "{got}");
    assert!(!got.contains("another organisation"), "{got}");
    // Unwrapped (the RI wraps every message as message/rfc822): the reader gets the message
    // inside, its own Subject (there is none outside) and its text/plain body.
    let view = postern_core::MessageView::parse(got.as_bytes()).unwrap();
    assert_eq!(
        view.header("subject").as_deref().map(str::trim),
        Some("Simple Text Message"),
        "{got}"
    );
    assert_eq!(view.root().mime_type(), "text/plain", "{got}");
    assert!(
        !got.to_ascii_lowercase().contains("message/rfc822"),
        "{got}"
    );
}

/// The same message without `accept_legacy`: SHA-1 is refused and said so, never reported as
/// a signer of another organisation.
#[test]
fn without_accept_legacy_the_same_message_s_sha1_signature_is_refused_by_name() {
    let got = deliver(false);
    let verdict = got
        .lines()
        .find(|l| l.starts_with("Postern-Signature:"))
        .unwrap_or_default()
        .to_string();
    assert!(verdict.starts_with("Postern-Signature: refused"), "{got}");
    assert!(got.to_ascii_lowercase().contains("sha-1"), "{got}");
    assert!(!got.contains("another organisation"), "{got}");
}

/// us → RI: our mail to a Direct HISP (`profile = "direct"`) through the relay's internal
/// listener leaves as both RIs read it: EnvelopedData (AES-CBC, RSA PKCS#1 v1.5 key
/// transport) to redmond's certificate, around a detached multipart/signed (SHA-256) by Biff's
/// certificate, whose first part is the whole message as message/rfc822 — the Subject inside
/// only. OpenSSL decrypts it with the RI's redmond.pfx key and verifies it against the RI's
/// anchor at 2019-06-01; the redmond side of Postern opens it back to the message, valid.
#[test]
fn our_mail_to_a_direct_hisp_is_wrapped_signed_and_encrypted_as_the_ri_reads_it() {
    let tmp = tempfile::tempdir().unwrap();
    let keys = biff(tmp.path());
    let sink = SmtpSink::start(&[]);
    let directory = nhind_with_direct_redmond(&keys, "");
    let (rt, relay) = relay_at_2019(tmp.path(), &sink, &directory);
    let msg = b"From: Dr Biff Hooper <biff@nhind.hsgincubator.com>\r\n\
        To: toby@redmond.hsgincubator.com\r\nSubject: Referral: J. Doe, 1970-01-01\r\n\
        Message-ID: <referral-1@nhind.hsgincubator.com>\r\n\
        Date: Sat, 01 Jun 2019 12:00:00 +0000\r\nContent-Type: text/plain\r\n\r\n\
        Please see the patient on Monday.\r\n";
    let internal = relay.internal_addr.unwrap().to_string();
    let r = send_mail(
        &internal,
        "biff@nhind.hsgincubator.com",
        &["toby@redmond.hsgincubator.com"],
        msg,
    )
    .unwrap();
    assert!(r.starts_with("250"), "{r}");
    assert!(wait_until(Duration::from_secs(20), || sink.count() == 1));
    let (_, sealed) = sink.messages().remove(0);
    rt.block_on(relay.shutdown(Duration::from_secs(5)));
    let text = String::from_utf8_lossy(&sealed).into_owned();
    let sealed_view = postern_core::MessageView::parse(&sealed).unwrap();
    let outer = String::from_utf8_lossy(sealed_view.header_section()).into_owned();
    assert!(
        !outer.contains("Subject") && !text.contains("J. Doe"),
        "{outer}"
    );
    assert!(
        outer.contains("Message-ID: <referral-1@nhind.hsgincubator.com>"),
        "{outer}"
    );
    assert!(outer.contains("application/pkcs7-mime"), "{outer}");

    // As the RI's side reads it, with OpenSSL: the key transport and cipher every RI knows.
    let printed = String::from_utf8(run_ok(
        std::process::Command::new("openssl").args(["cms", "-cmsout", "-print"]),
        &sealed,
    ))
    .unwrap();
    assert!(printed.contains("algorithm: rsaEncryption"), "{printed}");
    assert!(
        printed.contains("aes-256-cbc") || printed.contains("aes-128-cbc"),
        "{printed}"
    );
    let redmond = ri_pair(tmp.path(), "redmond.pfx", "redmond");
    let decrypted = run_ok(
        std::process::Command::new("openssl")
            .args(["cms", "-decrypt", "-recip"])
            .arg(&redmond.0)
            .arg("-inkey")
            .arg(&redmond.1),
        &sealed,
    );
    let view = postern_core::MessageView::parse(&decrypted).unwrap();
    assert_eq!(view.root().mime_type(), "multipart/signed");
    assert_eq!(
        view.root().content_type_param("micalg").as_deref(),
        Some("sha-256")
    );
    let parts = view.root().children();
    assert_eq!(parts[0].mime_type(), "message/rfc822");
    let at_2019 = "1559390400";
    let verified = run_ok(
        std::process::Command::new("openssl")
            .args(["cms", "-verify", "-attime", at_2019, "-CAfile"])
            .arg(ri("um-amalga1-vm1.cer")),
        &decrypted,
    );
    let inner = String::from_utf8_lossy(&verified).into_owned();
    assert!(inner.contains("Content-Type: message/rfc822"), "{inner}");
    assert!(
        inner.contains("Subject: Referral: J. Doe, 1970-01-01"),
        "{inner}"
    );
    assert!(
        inner.contains("Please see the patient on Monday."),
        "{inner}"
    );

    // The redmond side of Postern (its key ours, nhind its Direct partner) opens it back.
    let (gw, dir) = redmond_side(tmp.path(), &redmond, &keys);
    let from = postern_core::Address::new("biff@nhind.hsgincubator.com").unwrap();
    let opened = postern_core::block_on(gw.inbound(&dir, Some(&from), &sealed));
    let postern_router::Inbound::Deliver { message, .. } = opened else {
        panic!("not delivered: {opened:?}")
    };
    let got = String::from_utf8_lossy(&message).into_owned();
    assert!(got.contains("Postern-Signature: valid"), "{got}");
    let view = postern_core::MessageView::parse(&message).unwrap();
    assert_eq!(
        view.header("subject").as_deref().map(str::trim),
        Some("Referral: J. Doe, 1970-01-01")
    );
    assert_eq!(view.root().mime_type(), "text/plain", "{got}");
}

/// The redmond HISP as a Postern gateway at 2019-06-01: its key ours, nhind (Biff's
/// certificate) its Direct partner.
fn redmond_side(
    tmp: &Path,
    redmond: &(PathBuf, PathBuf),
    biff: &(PathBuf, PathBuf),
) -> (postern_router::Gateway, postern_router::CheckedDirectory) {
    let back = format!(
        "[our]\ndomains = [\"redmond.hsgincubator.com\"]\n\
         [[our.keys]]\nstandard = \"smime\"\ncertificate = \"{}\"\nkey = \"{}\"\n\
         [[partner]]\ndomain = \"nhind.hsgincubator.com\"\nstandards = [\"smime\"]\n\
         policy = \"required\"\nprofile = \"direct\"\nsmime_certificates = [\"{}\"]\n\
         trust_anchors = [\"{}\", \"{}\"]\n",
        redmond.0.display(),
        redmond.1.display(),
        biff.0.display(),
        ri("umamalga1.cer").display(),
        ri("um-amalga1-vm1.cer").display(),
    );
    std::fs::write(tmp.join("back.toml"), back).unwrap();
    let at = postern_core::civil::parse_rfc3339("2019-06-01T12:00:00Z").unwrap();
    let gw = postern_router::Gateway::builder()
        .clock(Arc::new(postern_core::FixedClock(at)))
        .build()
        .unwrap();
    let dir = gw.load_directory(&tmp.join("back.toml")).unwrap();
    (gw, dir)
}

/// AS 1.3 on receipt, from a Direct partner: plain, signed-only, encrypted-unsigned mail and
/// mail whose envelope sender is neither From nor Sender are held with the Direct fault named
/// (never delivered tagged or cut to text); a recipient the signed To and Cc do not name is
/// refused (5.7.1) while the named one gets the message. Made with OpenSSL as a HISP would.
#[test]
fn a_direct_hisp_s_mail_that_breaks_a_direct_rule_is_not_delivered() {
    use postern_router::{Decision, DirectFault, Inbound, Origin, QuarantineReason, Submission};
    let tmp = tempfile::tempdir().unwrap();
    let biff = biff(tmp.path());
    let redmond = ri_pair(tmp.path(), "redmond.pfx", "redmond");
    let (gw, dir) = redmond_side(tmp.path(), &redmond, &biff);
    let inner = "From: biff@nhind.hsgincubator.com\r\nTo: toby@redmond.hsgincubator.com\r\n\
                 Subject: Referral\r\nContent-Type: text/plain\r\n\r\nSee the patient.\r\n";
    let wrapper = format!("Content-Type: message/rfc822\r\n\r\n{inner}");
    let openssl = |args: &[&str], input: &[u8]| {
        run_ok(
            std::process::Command::new("openssl")
                .args(["cms"])
                .args(args)
                .args(["-signer"])
                .arg(&biff.0)
                .arg("-inkey")
                .arg(&biff.1),
            input,
        )
    };
    let encrypt = |input: &[u8]| {
        run_ok(
            std::process::Command::new("openssl")
                .args(["cms", "-encrypt", "-aes-256-cbc"])
                .arg(&redmond.0),
            input,
        )
    };
    let head = "From: biff@nhind.hsgincubator.com\r\nTo: toby@redmond.hsgincubator.com\r\n";
    let with_head = |body: Vec<u8>| [head.as_bytes(), &body].concat();
    let signed = openssl(&["-sign", "-md", "sha256"], wrapper.as_bytes());
    let sealed = with_head(encrypt(&signed));
    let cases: Vec<(&str, Vec<u8>, &str, DirectFault)> = vec![
        (
            "plain",
            inner.as_bytes().to_vec(),
            "biff@nhind.hsgincubator.com",
            DirectFault::NotProtected,
        ),
        (
            "signed only",
            with_head(signed.clone()),
            "biff@nhind.hsgincubator.com",
            DirectFault::NotEncrypted,
        ),
        (
            "encrypted, not signed",
            with_head(encrypt(wrapper.as_bytes())),
            "biff@nhind.hsgincubator.com",
            DirectFault::Signature(postern_core::SignatureVerdict::Absent),
        ),
        (
            "another envelope sender",
            sealed.clone(),
            "mallory@nhind.hsgincubator.com",
            DirectFault::SenderMismatch,
        ),
    ];
    for (name, msg, mail_from, fault) in cases {
        let from = postern_core::Address::new(mail_from).unwrap();
        match postern_core::block_on(gw.inbound(&dir, Some(&from), &msg)) {
            Inbound::Quarantine {
                reason: QuarantineReason::Direct(got),
                ..
            } => assert_eq!(got, fault, "{name}"),
            other => panic!("{name}: {other:?}"),
        }
    }
    // The Direct rules follow the author too: plain mail naming the HISP in its From is held
    // whatever envelope it came in (a stranger's, or the null sender).
    let stranger = postern_core::Address::new("x@stranger.example").unwrap();
    for mail_from in [Some(&stranger), None] {
        match postern_core::block_on(gw.inbound(&dir, mail_from, inner.as_bytes())) {
            Inbound::Quarantine {
                reason: QuarantineReason::Direct(DirectFault::NotProtected),
                ..
            } => {}
            other => panic!("{mail_from:?}: {other:?}"),
        }
    }
    // The well-formed one: delivered to toby, refused for a colleague the To does not name.
    let envelope = postern_router::Envelope {
        mail_from: Some(postern_core::Address::new("biff@nhind.hsgincubator.com").unwrap()),
        rcpt_to: vec![
            postern_core::Address::new("toby@redmond.hsgincubator.com").unwrap(),
            postern_core::Address::new("bcc@redmond.hsgincubator.com").unwrap(),
        ],
    };
    let route = postern_core::block_on(
        gw.route(&dir, Submission::new(Origin::Internet, &envelope, &sealed)),
    );
    let mut delivered = Vec::new();
    let mut refused = Vec::new();
    for d in route.decisions {
        match d {
            Decision::Inbound {
                recipients,
                inbound: Inbound::Deliver { message, .. },
            } => {
                assert!(String::from_utf8_lossy(&message).contains("Postern-Signature: valid"));
                delivered.extend(recipients);
            }
            Decision::Refuse { recipients, reason } => {
                assert_eq!(reason.smtp_reply().enhanced.to_string(), "5.7.1");
                refused.extend(recipients);
            }
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(delivered.len(), 1);
    assert_eq!(delivered[0].to_string(), "toby@redmond.hsgincubator.com");
    assert_eq!(refused.len(), 1);
    assert_eq!(refused[0].to_string(), "bcc@redmond.hsgincubator.com");
}

/// RI → us with the Direct profile: the RI's envelopeSignature.eml from redmond (SHA-1
/// accepted for it) is delivered to Biff unwrapped, and the relay answers with a processed MDN
/// from Biff to toby@redmond, sealed as Direct mail to redmond's certificate: OpenSSL opens it
/// with the RI's redmond.pfx key, and inside the wrapper is an RFC 8098 report naming Biff as
/// the final recipient, "processed", with no Original-Message-ID (the RI message has none).
#[test]
fn a_direct_message_delivered_is_answered_with_a_processed_mdn_the_ri_can_read() {
    let tmp = tempfile::tempdir().unwrap();
    let keys = biff(tmp.path());
    let sink = SmtpSink::start(&[]);
    let directory = nhind_with_direct_redmond(&keys, "accept_legacy = [\"sha1\"]\n");
    // A short wait for notifications: our own MDN is not a message that waits for one.
    let (rt, relay) = relay_at_2019_with(tmp.path(), &sink, &directory, |cfg| {
        cfg.direct.notification_timeout_secs = 2;
    });
    let msg = std::fs::read(ri("envelopeSignature.eml")).unwrap();
    let public = relay.public_addr.unwrap().to_string();
    let r = send_mail(
        &public,
        "toby@redmond.hsgincubator.com",
        &["biff@nhind.hsgincubator.com"],
        &msg,
    )
    .unwrap();
    assert!(r.starts_with("250"), "{r}");
    assert!(wait_until(Duration::from_secs(30), || sink.count() == 2));
    // Past the deadline and two sweeps: no DSN to Biff about the MDN he "sent".
    std::thread::sleep(Duration::from_secs(5));
    assert_eq!(sink.count(), 2, "{:#?}", sink.messages());
    rt.block_on(relay.shutdown(Duration::from_secs(5)));
    let messages = sink.messages();
    let to = |who: &str| {
        messages
            .iter()
            .find(|(rcpts, _)| rcpts.iter().any(|r| r == who))
            .unwrap_or_else(|| panic!("nothing for {who}"))
            .1
            .clone()
    };
    let delivered = String::from_utf8_lossy(&to("biff@nhind.hsgincubator.com")).into_owned();
    assert!(
        delivered.contains("Subject: Simple Text Message"),
        "{delivered}"
    );
    let sealed = to("toby@redmond.hsgincubator.com");
    let outer = postern_core::MessageView::parse(&sealed).unwrap();
    assert_eq!(outer.root().mime_type(), "application/pkcs7-mime");
    assert!(
        outer.header("subject").is_none(),
        "Direct: no Subject outside"
    );
    let redmond = ri_pair(tmp.path(), "redmond.pfx", "redmond");
    let decrypted = run_ok(
        std::process::Command::new("openssl")
            .args(["cms", "-decrypt", "-recip"])
            .arg(&redmond.0)
            .arg("-inkey")
            .arg(&redmond.1),
        &sealed,
    );
    let verified = run_ok(
        std::process::Command::new("openssl")
            .args(["cms", "-verify", "-attime", "1559390400", "-CAfile"])
            .arg(ri("um-amalga1-vm1.cer")),
        &decrypted,
    );
    // Inside the message/rfc822 wrapper: the report.
    let wrapper = postern_core::MessageView::parse(&verified).unwrap();
    assert_eq!(wrapper.root().mime_type(), "message/rfc822");
    let report = postern_core::MessageView::parse(wrapper.body()).unwrap();
    assert_eq!(report.root().mime_type(), "multipart/report");
    assert_eq!(
        report.header("from").as_deref().map(str::trim),
        Some("<biff@nhind.hsgincubator.com>")
    );
    assert_eq!(
        report.header("subject").as_deref().map(str::trim),
        Some("Processed: Simple Text Message")
    );
    let parts = report.root().children();
    assert_eq!(parts[1].mime_type(), "message/disposition-notification");
    let fields = String::from_utf8_lossy(parts[1].raw_body()).into_owned();
    assert!(
        fields.contains("Final-Recipient: rfc822;biff@nhind.hsgincubator.com"),
        "{fields}"
    );
    assert!(
        fields.contains("Disposition: automatic-action/MDN-sent-automatically; processed"),
        "{fields}"
    );
    assert!(!fields.contains("Original-Message-ID"), "{fields}");
}

/// The sending HISP's side: each Direct message we hand to redmond is tracked until its
/// notification comes back. Redmond's processed MDN (made and sealed by Postern as the
/// redmond HISP) is passed on to Biff once; the same MDN again is not passed on; a message
/// with no notification within the timeout gets Biff a DSN (5.4.7) naming it; the answered
/// one gets none.
#[test]
fn a_direct_message_we_sent_waits_for_its_notification_and_its_sender_hears_when_none_comes() {
    use postern_router::{Disposition, Outgoing};
    let tmp = tempfile::tempdir().unwrap();
    let keys = biff(tmp.path());
    let redmond = ri_pair(tmp.path(), "redmond.pfx", "redmond");
    let sink = SmtpSink::start(&[]);
    let directory = nhind_with_direct_redmond(&keys, "");
    let (rt, relay) = relay_at_2019_with(tmp.path(), &sink, &directory, |cfg| {
        cfg.direct.notification_timeout_secs = 5;
    });
    let internal = relay.internal_addr.unwrap().to_string();
    let public = relay.public_addr.unwrap().to_string();
    let message = |id: &str| {
        format!(
            "From: biff@nhind.hsgincubator.com\r\nTo: toby@redmond.hsgincubator.com\r\n\
             Subject: Referral {id}\r\nMessage-ID: <{id}@nhind.hsgincubator.com>\r\n\
             Date: Sat, 01 Jun 2019 12:00:00 +0000\r\n\r\nSee the patient.\r\n"
        )
        .into_bytes()
    };
    let send = |addr: &str, from: &str, to: &str, msg: &[u8]| {
        let r = send_mail(addr, from, &[to], msg).unwrap();
        assert!(r.starts_with("250"), "{r}");
    };
    let m1 = message("m1");
    send(
        &internal,
        "biff@nhind.hsgincubator.com",
        "toby@redmond.hsgincubator.com",
        &m1,
    );
    assert!(wait_until(Duration::from_secs(20), || sink.count() == 1));

    // Redmond's HISP answers: its processed MDN about m1, sealed as Direct mail to us.
    let (gw, dir) = redmond_side(tmp.path(), &redmond, &keys);
    let biff_addr = postern_core::Address::new("biff@nhind.hsgincubator.com").unwrap();
    let toby = postern_core::Address::new("toby@redmond.hsgincubator.com").unwrap();
    let stamp = postern_router::mdn::Stamp {
        date: "Sat, 01 Jun 2019 12:00:05 +0000",
        unique: "t1",
        hostname: "gw.redmond.hsgincubator.com",
    };
    let mdn = postern_router::mdn::processed(
        &dir,
        Some(&biff_addr),
        &m1,
        std::slice::from_ref(&toby),
        &stamp,
    )
    .remove(0);
    let envelope = postern_router::Envelope {
        mail_from: Some(toby.clone()),
        rcpt_to: vec![biff_addr.clone()],
    };
    let plan = postern_core::block_on(gw.outbound(&dir, Outgoing::new(&envelope, &mdn.message)));
    let Disposition::Deliver {
        message: sealed_mdn,
        sealed: Some(_),
        ..
    } = &plan.dispositions[0]
    else {
        panic!("the MDN was not sealed: {plan:?}")
    };
    send(
        &public,
        "toby@redmond.hsgincubator.com",
        "biff@nhind.hsgincubator.com",
        sealed_mdn,
    );
    assert!(wait_until(Duration::from_secs(20), || sink.count() == 2));
    // The same notification again (a duplicate, or a replay): not passed on.
    send(
        &public,
        "toby@redmond.hsgincubator.com",
        "biff@nhind.hsgincubator.com",
        sealed_mdn,
    );

    // m2 gets no answer: after the timeout, Biff is told.
    send(
        &internal,
        "biff@nhind.hsgincubator.com",
        "toby@redmond.hsgincubator.com",
        &message("m2"),
    );
    assert!(wait_until(Duration::from_secs(30), || sink.count() == 4));
    // Long enough for m1's deadline and another sweep: nothing more comes.
    std::thread::sleep(Duration::from_secs(7));
    rt.block_on(relay.shutdown(Duration::from_secs(5)));
    let to_biff: Vec<String> = sink
        .messages()
        .into_iter()
        .filter(|(rcpts, _)| rcpts.iter().any(|r| r == "biff@nhind.hsgincubator.com"))
        .map(|(_, m)| String::from_utf8_lossy(&m).into_owned())
        .collect();
    assert_eq!(to_biff.len(), 2, "the MDN once and one DSN: {to_biff:#?}");
    let mdn_seen = to_biff
        .iter()
        .find(|m| m.contains("Processed: Referral m1"))
        .unwrap_or_else(|| panic!("no MDN passed on: {to_biff:#?}"));
    assert!(mdn_seen.contains("Postern-Signature: valid"), "{mdn_seen}");
    assert!(!mdn_seen.contains("Postern-Notification"), "{mdn_seen}");
    let dsn = to_biff
        .iter()
        .find(|m| m.contains("Status: 5.4.7"))
        .unwrap_or_else(|| panic!("no DSN: {to_biff:#?}"));
    assert!(
        dsn.contains("X-Original-Message-ID: <m2@nhind.hsgincubator.com>"),
        "{dsn}"
    );
    assert!(!dsn.contains("<m1@"), "{dsn}");
}

/// Timely and reliable delivery on the receiving side: a Direct message from redmond that asks
/// for it (Disposition-Notification-Options: X-DIRECT-FINAL-DESTINATION-DELIVERY) gets a
/// processed and — our server being its destination (gateway_is_destination) — a dispatched
/// notification once our server took it; when our server refuses it for good, a failed
/// notification instead, and no DSN besides. Each opens on the redmond side as what it says.
#[test]
fn a_reliable_direct_message_is_answered_dispatched_or_failed() {
    use postern_router::mdn::Disposition as Said;
    use postern_router::{Disposition, Inbound, Outgoing};
    let tmp = tempfile::tempdir().unwrap();
    let keys = biff(tmp.path());
    let redmond = ri_pair(tmp.path(), "redmond.pfx", "redmond");
    let (gw, dir) = redmond_side(tmp.path(), &redmond, &keys);
    let toby = postern_core::Address::new("toby@redmond.hsgincubator.com").unwrap();
    let biff_addr = postern_core::Address::new("biff@nhind.hsgincubator.com").unwrap();
    let msg = b"From: toby@redmond.hsgincubator.com\r\nTo: biff@nhind.hsgincubator.com\r\n\
        Subject: Discharge summary\r\nMessage-ID: <r1@redmond.hsgincubator.com>\r\n\
        Disposition-Notification-Options: X-DIRECT-FINAL-DESTINATION-DELIVERY=optional,true\r\n\
        Date: Sat, 01 Jun 2019 12:00:00 +0000\r\n\r\nAttached.\r\n";
    let envelope = postern_router::Envelope {
        mail_from: Some(toby.clone()),
        rcpt_to: vec![biff_addr.clone()],
    };
    let plan = postern_core::block_on(gw.outbound(&dir, Outgoing::new(&envelope, msg)));
    let Disposition::Deliver {
        message: sealed,
        sealed: Some(_),
        ..
    } = plan.dispositions[0].clone()
    else {
        panic!("not sealed: {plan:?}")
    };
    let directory = nhind_with_direct_redmond(&keys, "");
    // What redmond reads of each notification we send it.
    let said =
        |sealed: &[u8]| match postern_core::block_on(gw.inbound(&dir, Some(&biff_addr), sealed)) {
            Inbound::Deliver { message, .. } => postern_router::mdn::read(&message)
                .unwrap_or_else(|| panic!("not an MDN: {}", String::from_utf8_lossy(&message))),
            other => panic!("redmond cannot open it: {other:?}"),
        };
    let to_toby = |sink: &SmtpSink| -> Vec<Vec<u8>> {
        sink.messages()
            .into_iter()
            .filter(|(r, _)| r.iter().any(|r| r == "toby@redmond.hsgincubator.com"))
            .map(|(_, m)| m)
            .collect()
    };

    // Taken by our server: processed and dispatched.
    let sink = SmtpSink::start(&[]);
    let here = tmp.path().join("taken");
    std::fs::create_dir_all(&here).unwrap();
    let (rt, relay) = relay_at_2019_with(&here, &sink, &directory, |cfg| {
        cfg.direct.gateway_is_destination = true;
    });
    let public = relay.public_addr.unwrap().to_string();
    let r = send_mail(
        &public,
        "toby@redmond.hsgincubator.com",
        &["biff@nhind.hsgincubator.com"],
        &sealed,
    )
    .unwrap();
    assert!(r.starts_with("250"), "{r}");
    assert!(wait_until(Duration::from_secs(30), || sink.count() == 3));
    rt.block_on(relay.shutdown(Duration::from_secs(5)));
    let mut kinds: Vec<Said> = to_toby(&sink).iter().map(|m| said(m).disposition).collect();
    kinds.sort_by_key(|k| format!("{k:?}"));
    assert_eq!(kinds, [Said::Dispatched, Said::Processed]);
    for m in to_toby(&sink) {
        let r = said(&m);
        assert_eq!(r.original_message_id, "<r1@redmond.hsgincubator.com>");
        assert_eq!(r.final_recipient, "biff@nhind.hsgincubator.com");
    }

    // Refused for good by our server: one failed notification, and no DSN besides.
    let out = SmtpSink::start(&[]);
    let refusing = SmtpSink::start(&["-f", "RCPT"]);
    let there = tmp.path().join("refused");
    std::fs::create_dir_all(&there).unwrap();
    let (rt, relay) = relay_at_2019_with(&there, &out, &directory, |cfg| {
        cfg.inbound = test_config(&there, &out.addr(), &refusing.addr()).inbound;
        cfg.inbound.verify_recipients = Some(false);
    });
    let public = relay.public_addr.unwrap().to_string();
    let r = send_mail(
        &public,
        "toby@redmond.hsgincubator.com",
        &["biff@nhind.hsgincubator.com"],
        &sealed,
    )
    .unwrap();
    assert!(r.starts_with("250"), "{r}");
    assert!(wait_until(Duration::from_secs(30), || out.count() == 1));
    std::thread::sleep(Duration::from_secs(3));
    rt.block_on(relay.shutdown(Duration::from_secs(5)));
    let got = to_toby(&out);
    assert_eq!(got.len(), 1, "the failed MDN only, no DSN");
    assert_eq!(said(&got[0]).disposition, Said::Failed);
    assert_eq!(refusing.count(), 0);
}
