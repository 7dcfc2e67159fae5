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

/// Biff's certificate and key (nhind.hsgincubator.com), out of the RI's PKCS#12 file (RC2, so
/// `-legacy`).
fn biff(dir: &Path) -> (PathBuf, PathBuf) {
    let pfx = ri("nhind_umamalga1_vm1.pfx");
    let part = |flag: &str, name: &str| {
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
    (part("-nokeys", "biff.crt"), part("-nocerts", "biff.key"))
}

/// The relay with `directory`, its gateway's clock at 2019-06-01, delivering to `sink`.
fn relay_at_2019(
    tmp: &Path,
    sink: &SmtpSink,
    directory: &str,
) -> (tokio::runtime::Runtime, postern_relay::RunningRelay) {
    write_directory(tmp, directory);
    let cfg = test_config(tmp, &sink.addr(), &sink.addr());
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
