//! The `postern-relay` binary as an administrator uses it, with OpenSSL on the other side.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is a failure report

mod common;

use std::path::Path;
use std::process::{Command, Output, Stdio};

use common::run;

fn relay(args: &[&str], stdin: &[u8]) -> Output {
    run(env!("CARGO_BIN_EXE_postern-relay"), args, stdin)
}

/// `openssl cms -decrypt` with Bob's published test key (the demo partner).
fn openssl_decrypt_for_bob(message: &[u8]) -> Output {
    let (cert, key) = (
        data("lamps-bob.encrypt.crt"),
        data("lamps-bob.decrypt.p8.pem"),
    );
    run(
        "openssl",
        &["cms", "-decrypt", "-recip", &cert, "-inkey", &key],
        message,
    )
}

fn data(f: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("data")
        .join(f)
        .to_string_lossy()
        .into_owned()
}

/// The README's first command: `postern-relay` with no arguments runs the gateway on embedded
/// defaults. A message submitted to it for the demo S/MIME partner lands in the outbox sealed
/// (OpenSSL decrypts it with the partner's key), the queue commands see the spool, and
/// SIGTERM stops it cleanly.
/// The finished copies in a `dir:` outbox: the relay writes `.TAG.tmp` and renames it to
/// `TAG.eml`, and a half-written temporary file was read here once.
fn finished(outbox: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out: Vec<std::path::PathBuf> = std::fs::read_dir(outbox)
        .map(|d| {
            d.filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| {
                    let name = p.file_name().map(|n| n.to_string_lossy().into_owned());
                    name.is_some_and(|n| n.ends_with(".eml") && !n.starts_with('.'))
                })
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out
}

#[test]
fn no_arguments_runs_the_gateway_on_embedded_defaults() {
    use postern_tests::relay::{send_mail, tracked_message, wait_until};
    assert!(
        std::net::TcpStream::connect("127.0.0.1:2525").is_err(),
        "something else already listens on 127.0.0.1:2525"
    );
    let cwd = tempfile::tempdir().unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_postern-relay"))
        .current_dir(cwd.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // A failed assertion must not leave the relay holding the demo ports.
    struct KillOnDrop(Option<std::process::Child>);
    impl Drop for KillOnDrop {
        fn drop(&mut self) {
            if let Some(c) = self.0.as_mut() {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
    }
    let mut guard = KillOnDrop(Some(child));
    assert!(
        wait_until(std::time::Duration::from_secs(20), || {
            std::net::TcpStream::connect("127.0.0.1:2525").is_ok()
        }),
        "the internal listener on 127.0.0.1:2525 did not come up"
    );
    let msg = tracked_message("readme-1", "lab@smime.example", "Discharge summary.");
    let r = send_mail(
        "127.0.0.1:2525",
        "doc@clinic.example",
        &["lab@smime.example"],
        &msg,
    )
    .unwrap();
    assert!(r.starts_with("250"), "{r}");
    let outbox = cwd.path().join("postern-data/outbox");
    let mut sealed = None;
    assert!(wait_until(std::time::Duration::from_secs(20), || {
        sealed = finished(&outbox)
            .first()
            .and_then(|p| std::fs::read(p).ok());
        sealed.is_some()
    }));
    let sealed = sealed.unwrap();
    assert!(!String::from_utf8_lossy(&sealed).contains("Discharge summary"));
    let out = openssl_decrypt_for_bob(&sealed);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The demo signs for this partner (opaque signed-data inside): OpenSSL verifies it.
    let ca = data("lamps-rsa-ca.pem");
    let verified = run("openssl", &["cms", "-verify", "-CAfile", &ca], &out.stdout);
    assert!(
        verified.status.success(),
        "{}",
        String::from_utf8_lossy(&verified.stderr)
    );
    assert!(String::from_utf8_lossy(&verified.stdout).contains("Discharge summary"));

    // The README's curl command, as written (curl sends the file's LF line ends as they are).
    let demo = std::fs::read(cwd.path().join("postern-data/demo/demo.eml")).unwrap();
    assert!(
        demo.windows(2).any(|w| w[1] == b'\n' && w[0] != b'\r'),
        "the demo file has LF line ends, as a file written on Unix does"
    );
    let curl = Command::new("curl")
        .args([
            "-sS",
            "smtp://127.0.0.1:2525",
            "--mail-from",
            "doc@clinic.example",
            "--mail-rcpt",
            "lab@smime.example",
            "--upload-file",
            "postern-data/demo/demo.eml",
        ])
        .current_dir(cwd.path())
        .output()
        .unwrap();
    assert!(
        curl.status.success(),
        "README's curl command: {}",
        String::from_utf8_lossy(&curl.stderr)
    );
    assert!(
        wait_until(std::time::Duration::from_secs(20), || {
            finished(&outbox).len() == 2
        }),
        "the curl message reached the outbox"
    );

    // The demo's portal partner: the message is stored, the notification lands in the outbox,
    // and its link opens on the portal the banner names (127.0.0.1:2580).
    let msg = tracked_message(
        "readme-portal",
        "office@smallpractice.example",
        "Referral letter.",
    );
    let r = send_mail(
        "127.0.0.1:2525",
        "doc@clinic.example",
        &["office@smallpractice.example"],
        &msg,
    )
    .unwrap();
    assert!(r.starts_with("250"), "{r}");
    let mut link = None;
    assert!(wait_until(std::time::Duration::from_secs(20), || {
        link = Some(finished(&outbox)).and_then(|d| {
            d.into_iter()
                .filter_map(|p| std::fs::read_to_string(p).ok())
                .find(|t| t.contains("smallpractice.example") && t.contains("/m/"))
                .and_then(|t| {
                    let at = t.find("http://127.0.0.1:2580/m/")?;
                    t.get(at + 21..)
                        .map(|rest| rest.split_whitespace().next().unwrap_or("").to_string())
                })
        });
        link.is_some()
    }));
    let outbox_text: String = finished(&outbox)
        .into_iter()
        .filter_map(|p| std::fs::read_to_string(p).ok())
        .collect();
    assert!(
        !outbox_text.contains("Referral letter."),
        "the message itself never leaves"
    );
    let page = postern_tests::http::Client::new("127.0.0.1:2580")
        .get(&link.unwrap())
        .unwrap();
    assert_eq!(page.status, 200);
    assert!(page.text().contains("A secure message for you"));

    let q = Command::new(env!("CARGO_BIN_EXE_postern-relay"))
        .args(["queue", "list"])
        .current_dir(cwd.path())
        .output()
        .unwrap();
    assert!(q.status.success(), "{}", String::from_utf8_lossy(&q.stderr));
    assert!(String::from_utf8_lossy(&q.stdout).contains("0 messages"));
    // The audit log's chain is intact, and the CLI says so.
    let v = Command::new(env!("CARGO_BIN_EXE_postern-relay"))
        .args(["audit", "verify"])
        .current_dir(cwd.path())
        .output()
        .unwrap();
    assert!(v.status.success(), "{}", String::from_utf8_lossy(&v.stdout));
    assert!(String::from_utf8_lossy(&v.stdout).contains("audit log intact"));

    let child = guard.0.take().unwrap();
    let term = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(term.success());
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "exit status {:?}", out.status);
    let banner = String::from_utf8_lossy(&out.stdout);
    assert!(banner.contains("127.0.0.1:2525"), "{banner}");
    assert!(banner.contains("embedded demo defaults"), "{banner}");
    assert!(banner.contains("http://127.0.0.1:2580/"), "{banner}");
}

#[test]
fn demo_seals_and_opens_with_published_keys() {
    let out = relay(&["demo"], b"");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("signature valid alice@smime.example"),
        "{text}"
    );
    assert!(text.contains("Subject: Discharge summary for follow-up"));
    assert!(text.contains("openpgp: decrypted aes256-cfb"), "{text}");
    assert!(
        text.matches("signature valid alice@").count() == 2,
        "{text}"
    );
}

#[test]
fn seal_for_openssl_and_open_with_report() {
    let msg = std::fs::read(data("demo.eml")).unwrap();
    let sealed = relay(
        &[
            "seal",
            "--standard",
            "smime",
            "--recipient-cert",
            &data("lamps-bob.encrypt.crt"),
            "--sign-key",
            &data("lamps-alice.p8.pem"),
            "--sign-cert",
            &data("lamps-alice.crt"),
            "--cipher",
            "aes256-gcm",
            "--key-transport",
            "oaep",
        ],
        &msg,
    );
    assert!(
        sealed.status.success(),
        "{}",
        String::from_utf8_lossy(&sealed.stderr)
    );
    // OpenSSL decrypts it.
    let dec = openssl_decrypt_for_bob(&sealed.stdout);
    assert!(dec.status.success());
    // We open it, with a JSON report.
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("r.json");
    let opened = relay(
        &[
            "open",
            "--key",
            &data("lamps-bob.decrypt.p8.pem"),
            "--cert",
            &data("lamps-bob.encrypt.crt"),
            "--trust-anchor",
            &data("lamps-rsa-ca.pem"),
            "--report-json",
            report.to_str().unwrap(),
            "--require-valid-signature",
        ],
        &sealed.stdout,
    );
    assert!(
        opened.status.success(),
        "{}",
        String::from_utf8_lossy(&opened.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    assert_eq!(json["encryption"]["cipher"], "aes256-gcm");
    assert_eq!(json["encryption"]["key_management"], "rsaes-oaep");
    assert_eq!(json["signature"], "valid");
    assert_eq!(json["signatures"][0]["signer"], "alice@smime.example");
}

/// A signing-only certificate among the recipient certificates (the signing half of a
/// single-use pair) is not sealed to: one RecipientInfo, for the certificate that may encrypt,
/// which OpenSSL decrypts with its key; with only the signing certificate, the seal fails and
/// says why.
#[test]
fn seal_skips_a_certificate_that_may_only_sign() {
    let msg = std::fs::read(data("demo.eml")).unwrap();
    let sealed = relay(
        &[
            "seal",
            "--standard",
            "smime",
            "--recipient-cert",
            &data("lamps-alice.crt"),
            "--recipient-cert",
            &data("lamps-bob.encrypt.crt"),
        ],
        &msg,
    );
    assert!(
        sealed.status.success(),
        "{}",
        String::from_utf8_lossy(&sealed.stderr)
    );
    let printed = run("openssl", &["cms", "-cmsout", "-print"], &sealed.stdout);
    let text = String::from_utf8_lossy(&printed.stdout);
    assert_eq!(text.matches("d.ktri:").count(), 1, "{text}");
    assert!(openssl_decrypt_for_bob(&sealed.stdout).status.success());
    let only_signing = relay(
        &[
            "seal",
            "--standard",
            "smime",
            "--recipient-cert",
            &data("lamps-alice.crt"),
        ],
        &msg,
    );
    assert!(!only_signing.status.success());
    let err = String::from_utf8_lossy(&only_signing.stderr);
    assert!(err.contains("key encipherment"), "{err}");
}

/// The Direct reference implementation's single-use pair (tests/data/direct-ri: one
/// certificate for digitalSignature only, one for keyEncipherment only, both for
/// dev.singleuse.lab, expired since 2026-04-27) sealed at 2019-06-01 with `--at`: one
/// RecipientInfo, the encipherment certificate's, which OpenSSL decrypts with its key. Without
/// `--at` the certificates have expired and the seal says so.
#[test]
fn the_direct_ri_single_use_pair_seals_at_its_date() {
    let ri = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/data/direct-ri");
    let tmp = tempfile::tempdir().unwrap();
    let extract = |name: &str, what: &str| {
        let flag = if what == "crt" { "-nokeys" } else { "-nocerts" };
        ri_pkcs12(
            &ri.join(format!("{name}.pfx")),
            flag,
            &tmp.path().join(format!("{name}.{what}.pem")),
        )
    };
    let sign = extract("dev.singleuse.lab.sign", "crt");
    let enc = extract("dev.singleuse.lab.encipherment", "crt");
    let enc_key = extract("dev.singleuse.lab.encipherment", "key");
    let msg =
        b"From: a@clinic.example\r\nTo: b@dev.singleuse.lab\r\nSubject: x\r\n\r\nPotassium 4.1\r\n";
    let args = |at: Option<&str>| {
        let mut a = vec!["seal", "--recipient-cert", &sign, "--recipient-cert", &enc];
        if let Some(t) = at {
            a.extend(["--at", t]);
        }
        a.into_iter().map(str::to_string).collect::<Vec<_>>()
    };
    let run_seal = |at| {
        let a = args(at);
        relay(&a.iter().map(String::as_str).collect::<Vec<_>>(), msg)
    };
    let sealed = run_seal(Some("2019-06-01T12:00:00Z"));
    assert!(
        sealed.status.success(),
        "{}",
        String::from_utf8_lossy(&sealed.stderr)
    );
    let printed = run("openssl", &["cms", "-cmsout", "-print"], &sealed.stdout);
    let text = String::from_utf8_lossy(&printed.stdout);
    assert_eq!(text.matches("d.ktri:").count(), 1, "{text}");
    // OpenSSL prints the RecipientInfo's serial number in decimal; x509 -serial gives hex.
    let serial = run("openssl", &["x509", "-noout", "-serial", "-in", &enc], b"");
    let hex = String::from_utf8_lossy(&serial.stdout)
        .trim()
        .trim_start_matches("serial=")
        .to_string();
    let decimal = u128::from_str_radix(&hex, 16).unwrap();
    assert!(
        text.contains(&format!("serialNumber: {decimal}")),
        "the RecipientInfo names the encipherment certificate (serial {decimal}): {text}"
    );
    let dec = run(
        "openssl",
        &["cms", "-decrypt", "-recip", &enc, "-inkey", &enc_key],
        &sealed.stdout,
    );
    assert!(
        dec.status.success(),
        "{}",
        String::from_utf8_lossy(&dec.stderr)
    );
    assert!(String::from_utf8_lossy(&dec.stdout).contains("Potassium"));
    // Today both have expired: no key, and the error says why.
    let now = run_seal(None);
    assert!(!now.status.success());
    assert!(
        String::from_utf8_lossy(&now.stderr).contains("expired"),
        "{}",
        String::from_utf8_lossy(&now.stderr)
    );
    // A date that is not one is refused by the argument parser.
    let bad = relay(
        &["seal", "--recipient-cert", &enc, "--at", "2019-06-31"],
        msg,
    );
    assert!(!bad.status.success());
    // `route` through a directory naming the pair for a required partner: at 2019-06-01 the
    // copy is sealed (to the encipherment certificate); today the directory check refuses
    // the expired certificates, so nothing is routed in clear.
    let dir = tmp.path().join("directory.toml");
    std::fs::write(
        &dir,
        format!(
            "[our]\ndomains = [\"clinic.example\"]\n[[partner]]\ndomain = \"dev.singleuse.lab\"\n\
             standards = [\"smime\"]\npolicy = \"required\"\nsmime_certificates = [\"{sign}\", \"{enc}\"]\n"
        ),
    )
    .unwrap();
    let out_dir = tempfile::tempdir().unwrap();
    let route = |at: Option<&str>| {
        let mut a = vec![
            "route",
            "--directory",
            dir.to_str().unwrap(),
            "--from",
            "a@clinic.example",
            "--to",
            "b@dev.singleuse.lab",
            "--out-dir",
            out_dir.path().to_str().unwrap(),
        ];
        if let Some(t) = at {
            a.extend(["--at", t]);
        }
        relay(&a, msg)
    };
    let then = route(Some("2019-06-01T12:00:00Z"));
    let said = String::from_utf8_lossy(&then.stdout);
    assert!(
        then.status.success() && said.contains("sealed with smime"),
        "{said}{}",
        String::from_utf8_lossy(&then.stderr)
    );
    let copy = std::fs::read(out_dir.path().join("copy-1.eml")).unwrap();
    let dec = run(
        "openssl",
        &["cms", "-decrypt", "-recip", &enc, "-inkey", &enc_key],
        &copy,
    );
    assert!(String::from_utf8_lossy(&dec.stdout).contains("Potassium"));
    let today = route(None);
    let said = String::from_utf8_lossy(&today.stdout);
    assert!(!said.contains("deliver"), "{said}");
}

/// The Direct RI's own message (tests/data/direct-ri/envelopeSignature.eml), opened at
/// 2019-06-01 with Biff's key: decrypted, the organisation certificate's signature verified
/// and chained to UM-AMALGA1. Its signer names a bare domain (emailAddress and CN
/// `redmond.hsgincubator.com`): that is the From address's own domain, never "another
/// organisation" (it was reported invalid for that). Without a partner entry it is not
/// bound (untrusted, same organisation); SHA-1 is refused by default and named so.
#[test]
fn the_direct_ri_message_s_organisation_signature_is_not_another_organisation() {
    let ri = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/data/direct-ri");
    let tmp = tempfile::tempdir().unwrap();
    let pfx = ri.join("nhind_umamalga1_vm1.pfx");
    let part = |flag: &str, out: &str| ri_pkcs12(&pfx, flag, &tmp.path().join(out));
    let (cert, key) = (part("-nokeys", "biff.crt"), part("-nocerts", "biff.key"));
    let msg = std::fs::read(ri.join("envelopeSignature.eml")).unwrap();
    let open = |extra: &[&str]| {
        let report = tmp.path().join("r.json");
        let anchors = [ri.join("umamalga1.cer"), ri.join("um-amalga1-vm1.cer")];
        let mut args = vec![
            "open",
            "--key",
            &key,
            "--cert",
            &cert,
            "--at",
            "2019-06-01T12:00:00Z",
            "--trust-anchor",
            anchors[0].to_str().unwrap(),
            "--trust-anchor",
            anchors[1].to_str().unwrap(),
            "--report-json",
            report.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        let out = relay(&args, &msg);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let r: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
        (String::from_utf8_lossy(&out.stdout).into_owned(), r)
    };
    let (text, r) = open(&["--accept-sha1"]);
    assert!(text.contains("Yo. This be a message"), "{text}");
    let sig = &r["signatures"][0];
    assert_eq!(sig["status"], "valid", "{r}");
    assert_eq!(sig["chain"], "trusted", "{r}");
    assert_eq!(r["signature"], "untrusted", "{r}");
    assert!(!r.to_string().contains("another organisation"), "{r}");
    // check-config with the redmond partner holding that organisation certificate: no
    // warning about whom it belongs to (a bare domain in emailAddress and CN is its domain).
    let dir = tmp.path().join("directory.toml");
    std::fs::write(
        &dir,
        format!(
            "[our]\ndomains = [\"nhind.hsgincubator.com\"]\n[[partner]]\n\
             domain = \"redmond.hsgincubator.com\"\nstandards = [\"smime\"]\npolicy = \"required\"\n\
             smime_certificates = [\"{}\"]\ntrust_anchors = [\"{}\", \"{}\"]\n",
            ri.join("redmond.hsgincubator.com.crt").display(),
            ri.join("umamalga1.cer").display(),
            ri.join("um-amalga1-vm1.cer").display(),
        ),
    )
    .unwrap();
    let checked = relay(
        &[
            "check-config",
            dir.to_str().unwrap(),
            "--at",
            "2019-06-01T12:00:00Z",
        ],
        b"",
    );
    let said = String::from_utf8_lossy(&checked.stdout);
    assert!(
        checked.status.success() && said.contains("0 errors, 0 warnings"),
        "{said}"
    );
    let (_, r) = open(&[]);
    assert_eq!(r["signatures"][0]["status"], "refused", "{r}");
    assert_eq!(r["signature"], "refused", "{r}");
    assert!(
        r["signatures"][0]["status_detail"]
            .as_str()
            .is_some_and(|d| d.contains("sha-1")),
        "{r}"
    );
}

#[test]
fn failures_are_one_line_and_non_zero() {
    let msg = std::fs::read(data("demo.eml")).unwrap();
    let sealed = relay(
        &["seal", "--recipient-cert", &data("lamps-bob.encrypt.crt")],
        &msg,
    );
    // Alice's key is not a recipient: a one-line error, exit 2.
    let out = relay(
        &[
            "open",
            "--key",
            &data("lamps-alice.p8.pem"),
            "--cert",
            &data("lamps-alice.crt"),
        ],
        &sealed.stdout,
    );
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    assert!(err.contains("not encrypted to any of our keys"), "{err}");
    // Not S/MIME at all.
    let out = relay(&["open"], &msg);
    assert_eq!(out.status.code(), Some(2));
    // A key that does not match the certificate.
    let out = relay(
        &[
            "seal",
            "--sign-key",
            &data("lamps-bob.decrypt.p8.pem"),
            "--sign-cert",
            &data("lamps-alice.crt"),
        ],
        &msg,
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("does not belong"));
    // Unsigned message with --require-valid-signature: exit 1.
    let out = relay(
        &[
            "open",
            "--key",
            &data("lamps-bob.decrypt.p8.pem"),
            "--cert",
            &data("lamps-bob.encrypt.crt"),
            "--require-valid-signature",
        ],
        &sealed.stdout,
    );
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn check_config_reports_and_exits_by_severity() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(data("lamps-bob.encrypt.crt"), dir.path().join("bob.pem")).unwrap();
    let good = dir.path().join("good.toml");
    std::fs::write(&good, "[our]\ndomains = [\"clinic.example\"]\n\n[[partner]]\ndomain = \"smime.example\"\nstandards = [\"smime\"]\npolicy = \"required\"\nsmime_certificates = [\"bob.pem\"]\n").unwrap();
    let out = relay(&["check-config", good.to_str().unwrap()], b"");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("1 partners, 0 errors"));
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "[our]\ndomains = [\"clinic.example\"]\n\n[[partner]]\ndomain = \"nokey.example\"\nstandards = [\"smime\"]\npolicy = \"required\"\n").unwrap();
    let out = relay(&["check-config", bad.to_str().unwrap()], b"");
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("error nokey.example (line 4): required partner has no usable key"),
        "{text}"
    );
    let broken = dir.path().join("broken.toml");
    std::fs::write(
        &broken,
        "[[partner]]\ndomain = \"x.example\"\npolicy = \"maybe\"\n",
    )
    .unwrap();
    let out = relay(&["check-config", broken.to_str().unwrap()], b"");
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("line 3"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

#[test]
fn the_example_directory_checks_clean() {
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/directory.toml");
    let out = relay(&["check-config", file.to_str().unwrap()], b"");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("4 partners, 0 errors, 0 warnings"), "{text}");
}

#[test]
fn route_shows_what_would_happen_and_writes_the_copies() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/directory.toml");
    let out_dir = tempfile::tempdir().unwrap();
    // The demo message, written by someone of ours (our keys sign only for our authors).
    let msg = String::from_utf8(std::fs::read(data("demo.eml")).unwrap())
        .unwrap()
        .replacen("<alice@smime.example>", "<alice@clinic.example>", 1)
        .into_bytes();
    let out = relay(
        &[
            "route",
            "--directory",
            dir.to_str().unwrap(),
            "--from",
            "alice@clinic.example",
            "--to",
            "bob@smime.example",
            "--to",
            "bob@openpgp.example",
            "--to",
            "dr@smallpractice.example",
            "--to",
            "someone@gmail.test",
            "--out-dir",
            out_dir.path().to_str().unwrap(),
        ],
        &msg,
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("deliver bob@smime.example (sealed with smime"),
        "{text}"
    );
    assert!(
        text.contains("deliver bob@openpgp.example (sealed with openpgp"),
        "{text}"
    );
    assert!(text.contains("portal dr@smallpractice.example"), "{text}");
    assert!(text.contains("deliver someone@gmail.test (plain"), "{text}");
    // The S/MIME copy on disk is one that OpenSSL decrypts with Bob's key.
    let copies: Vec<_> = std::fs::read_dir(out_dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(copies.len(), 3);
    let smime = copies
        .iter()
        .find(|p| {
            std::fs::read_to_string(p)
                .unwrap()
                .contains("application/pkcs7-mime")
        })
        .unwrap();
    let dec = openssl_decrypt_for_bob(&std::fs::read(smime).unwrap());
    assert!(dec.status.success());
    // The directory says sign = true: inside is Alice's signed message, which OpenSSL verifies.
    let signed = out_dir.path().join("inner.eml");
    std::fs::write(&signed, &dec.stdout).unwrap();
    let ver = Command::new("openssl")
        .args([
            "cms",
            "-verify",
            "-CAfile",
            &data("lamps-rsa-ca.pem"),
            "-in",
        ])
        .arg(&signed)
        .output()
        .unwrap();
    assert!(
        ver.status.success(),
        "{}",
        String::from_utf8_lossy(&ver.stderr)
    );
    assert!(String::from_utf8_lossy(&ver.stdout).contains("discharge summary"));
}

/// The relay configuration shown in the README is the example file, and it loads.
#[test]
fn the_readme_relay_config_is_the_example_and_loads() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let file = std::fs::read_to_string(root.join("config/relay.toml")).unwrap();
    let readme = std::fs::read_to_string(root.join("../README.md")).unwrap();
    assert!(
        readme.contains(&file),
        "README's relay.toml differs from examples/config/relay.toml"
    );
    let cfg = postern_relay::RelayConfig::load(&root.join("config/relay.toml")).unwrap();
    assert_eq!(cfg.hostname, "gw.clinic.example");
    assert_eq!(cfg.public.listen, "0.0.0.0:25");
    assert_eq!(cfg.retry.delays().unwrap().len(), 5);
    // Issue 14.10: `[public]` without `networks`, as written there, takes mail from anywhere.
    assert!(
        cfg.public.networks.iter().any(|n| n == "0.0.0.0/0"),
        "{:?}",
        cfg.public.networks
    );
}

/// Issue 14.10 and 14.7: check-config warns about an internal listener open to the world, a
/// key others can read and a key beside its data; and a file that is not TOML is refused
/// without its content being printed.
#[test]
fn check_config_warns_about_dangerous_settings_and_never_prints_file_contents() {
    use std::os::unix::fs::PermissionsExt;
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("q.key");
    std::fs::write(&key, "ab".repeat(32)).unwrap();
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let cfg = dir.path().join("relay.toml");
    std::fs::write(
        &cfg,
        format!(
            "data_dir = \"{d}\"\ndirectory = \"{}\"\n[internal]\nlisten = \"127.0.0.1:0\"\nnetworks = [\"0.0.0.0/0\"]\n\
             [quarantine]\nkey_file = \"{d}/q.key\"\n[dlp]\nenabled = false\n",
            root.join("config/directory.toml").display(),
            d = dir.path().display()
        ),
    )
    .unwrap();
    let out = relay(&["check-config", cfg.to_str().unwrap()], b"");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("open submission port"), "{text}");
    assert!(text.contains("can be read by others (mode 644)"), "{text}");
    assert!(text.contains("beside the database it protects"), "{text}");
    assert!(text.contains("dlp.enabled = false"), "{text}");

    let secret = dir.path().join("not-toml");
    std::fs::write(&secret, "hunter2-SECRET-PASSWORD-LINE\nmore\n").unwrap();
    let out = relay(&["check-config", secret.to_str().unwrap()], b"");
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_ne!(out.status.code(), Some(0), "{all}");
    assert!(!all.contains("hunter2"), "file content printed: {all}");
}

/// The example DLP policy loads and does what its comments say.
#[test]
fn the_example_dlp_policy_loads_and_applies() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let p = postern_dlp::DlpPolicy::load(&root.join("config/dlp.toml")).unwrap();
    let i = postern_dlp::Inspector::new(p).unwrap();
    let v = i.inspect(b"Subject: pay\r\n\r\ncard 4111 1111 1111 1111\r\n");
    assert_eq!(v.action, postern_dlp::Action::Block);
    let v = i.inspect(b"Subject: chart\r\n\r\nSee SM-1234566 and SM-1234567.\r\n");
    assert_eq!(v.count(&postern_dlp::Detector::Mrn(None)), 1, "{v:?}");
    assert_eq!(v.action, postern_dlp::Action::Quarantine);
    // `dlp show-policy` prints what is in force: the file merged over the defaults.
    let out = relay(
        &[
            "dlp",
            "show-policy",
            "--policy",
            root.join("config/dlp.toml").to_str().unwrap(),
        ],
        b"",
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let shown = String::from_utf8_lossy(&out.stdout);
    let again = postern_dlp::DlpPolicy::from_toml(&shown).unwrap();
    assert_eq!(
        again.forced(&postern_dlp::Detector::Card),
        Some(postern_dlp::Action::Block),
        "{shown}"
    );
    assert_eq!(
        again.forced(&postern_dlp::Detector::Ssn),
        Some(postern_dlp::Action::Quarantine),
        "{shown}"
    );
}

/// `hash-password` prints an Argon2id hash the relay's users file accepts.
#[test]
fn hash_password_prints_a_phc_string_the_relay_accepts() {
    let out = relay(&["hash-password"], b"correct horse\n");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let hash = String::from_utf8(out.stdout).unwrap();
    assert!(hash.starts_with("$argon2id$"), "{hash}");
    assert!(!hash.contains("correct horse"));
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("users");
    std::fs::write(&f, format!("exchange:{}", hash.trim())).unwrap();
    let users = postern_relay::auth::Users::load(&f).unwrap();
    let mut hasher = postern_portal::password::Hasher::new();
    assert!(users.verify(&mut hasher, "exchange", b"correct horse"));
    assert!(!users.verify(&mut hasher, "exchange", b"correct horse "));
    let out = relay(&["hash-password"], b"\n");
    assert_eq!(out.status.code(), Some(2));
}

/// `check-config` on a relay configuration checks what it names: the example's TLS files do
/// not exist here, and it says so; a configuration naming real files passes.
#[test]
fn check_config_checks_a_relay_configuration_and_what_it_names() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = relay(
        &[
            "check-config",
            root.join("config/relay.toml").to_str().unwrap(),
        ],
        b"",
    );
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("tls.certificate") && text.contains("gw.pem"),
        "{text}"
    );
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("relay.toml");
    std::fs::write(
        &cfg,
        format!(
            "directory = \"{}\"\n[dlp]\npolicy = \"{}\"\n",
            root.join("config/directory.toml").display(),
            root.join("config/dlp.toml").display()
        ),
    )
    .unwrap();
    let out = relay(&["check-config", cfg.to_str().unwrap()], b"");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("relay configuration usable"), "{text}");
    std::fs::write(&cfg, "[dlp]\npolicy = \"nowhere.toml\"\n").unwrap();
    let out = relay(&["check-config", cfg.to_str().unwrap()], b"");
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).contains("dlp.policy"));
}

/// Issue 14.14: `open --standard` as it was specified; without it the standard is detected.
#[test]
fn open_takes_the_standard_or_detects_it() {
    let demo = std::fs::read(data("demo.eml")).unwrap();
    let sealed = relay(
        &[
            "seal",
            "--standard",
            "smime",
            "--recipient-cert",
            &data("lamps-bob.encrypt.crt"),
        ],
        &demo,
    );
    assert!(
        sealed.status.success(),
        "{}",
        String::from_utf8_lossy(&sealed.stderr)
    );
    let key = data("lamps-bob.decrypt.p8.pem");
    let cert = data("lamps-bob.encrypt.crt");
    for standard in [None, Some("smime")] {
        let mut args = vec!["open", "--key", &key, "--cert", &cert];
        if let Some(s) = standard {
            args.extend(["--standard", s]);
        }
        let out = relay(&args, &sealed.stdout);
        assert!(
            out.status.success(),
            "{standard:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(String::from_utf8_lossy(&out.stdout).contains("Discharge summary"));
    }
    let out = relay(
        &[
            "open",
            "--standard",
            "openpgp",
            "--key",
            &key,
            "--cert",
            &cert,
        ],
        &sealed.stdout,
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("not an openpgp message"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Issue 11: the adversarial corpus through `dlp scan`: every disguised identifier is found
/// (exit 1), every labelled look-alike is clean (exit 0).
#[test]
fn dlp_scan_catches_the_adversarial_corpus() {
    use postern_tests::adversarial::{negatives, positives};
    for (what, msg) in positives() {
        let out = relay(&["dlp", "scan"], &msg);
        assert_eq!(
            out.status.code(),
            Some(1),
            "{what}: {}",
            String::from_utf8_lossy(&out.stdout)
        );
    }
    for (what, msg) in negatives() {
        let out = relay(&["dlp", "scan"], &msg);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{what}: {}",
            String::from_utf8_lossy(&out.stdout)
        );
    }
}

/// `queue release` of a message held after an internal error retries it with inspection; a
/// portal hold released is the administrator's yes and skips it.
#[test]
fn releasing_an_error_hold_retries_with_inspection() {
    use postern_relay::spool::{Entry, HoldKind, Origin, RcptState, Recipient, Spool};
    let dir = tempfile::tempdir().unwrap();
    let config = common::write_config(dir.path(), 0, "dir:outbox", "dir:inbox", "1h", "");
    let spool = Spool::open(&dir.path().join("data/spool")).unwrap();
    for (kind, skips_inspection) in [(HoldKind::Error, false), (HoldKind::Portal, true)] {
        let id = Spool::new_id();
        let mut r = Recipient::new("c@gmail.test".into());
        r.state = RcptState::Held {
            kind,
            reason: "held".into(),
        };
        let e = Entry::new(id.clone(), Origin::Internal, "127.0.0.1", None, vec![r], 3);
        spool.accept(&e, b"x\r\n").unwrap();
        let out = relay(
            &[
                "queue",
                "release",
                &id,
                "--config",
                config.to_str().unwrap(),
            ],
            b"",
        );
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let after = spool.entry(&id).unwrap().unwrap();
        assert_eq!(after.recipients[0].state, RcptState::Pending, "{kind}");
        assert_eq!(after.released, skips_inspection, "{kind}");
    }
}

/// `keys pending`, `approve`, `reject` and `list` on the relay's database: the decision is what
/// the store says afterwards, and an unknown number is an error (exit 2).
#[test]
fn keys_pending_approve_and_reject_harvested_certificates() {
    let data = tempfile::tempdir().unwrap();
    let pki = postern_tests::Pki::new();
    let gw = pki.issue("gw@partner.test", postern_tests::KeyKind::Rsa(2048));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let db = postern_portal::Db::sqlite(&data.path().join("postern.sqlite"))
            .await
            .unwrap();
        let store = postern_relay::harvest::HarvestStore::new(db.clone());
        let summary = postern_core::CertificateSummary {
            description: "CN=gw@partner.test".into(),
            addresses: vec!["gw@partner.test".into()],
            domains: Vec::new(),
            authority: false,
            self_signed: false,
        };
        assert!(store
            .offer("partner.test", &gw.cert_pem(), &summary, false)
            .await
            .unwrap());
        db.close().await;
    });
    let dir = data.path().to_str().unwrap();
    let out = relay(&["keys", "pending", "--data-dir", dir], b"");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("pending") && text.contains("partner.test"),
        "{text}"
    );
    assert!(text.contains("1 certificates"), "{text}");

    let out = relay(
        &[
            "keys",
            "approve",
            "1",
            "--data-dir",
            dir,
            "--actor",
            "tester",
        ],
        b"",
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&relay(&["keys", "list", "--data-dir", dir], b"").stdout)
        .to_string();
    assert!(text.contains("approved"), "{text}");
    let pending =
        String::from_utf8_lossy(&relay(&["keys", "pending", "--data-dir", dir], b"").stdout)
            .to_string();
    assert!(pending.contains("0 certificates"), "{pending}");

    let out = relay(&["keys", "reject", "99", "--data-dir", dir], b"");
    assert!(!out.status.success(), "an unknown number was accepted");
    let trail = String::from_utf8_lossy(&relay(&["audit", "list", "--data-dir", dir], b"").stdout)
        .to_string();
    assert!(
        trail.contains("key-approved") && trail.contains("tester"),
        "{trail}"
    );
}

/// `open` states the verdict the relay states, from the same code: inline PGP whose signed
/// block has unsigned text before it is `partial` (the CLI said `valid`), and
/// --require-valid-signature refuses it.
#[test]
fn open_states_the_relays_verdict_for_partly_signed_inline_pgp() {
    use postern_tests::{Gpg, PgpKind};
    let gpg = Gpg::new();
    gpg.generate("Doc <doc@pgp-partner.test>", PgpKind::Ed25519, "never");
    let signed = gpg.ok(
        &["--clearsign", "-u", "doc@pgp-partner.test"],
        b"Lab values attached.\n",
    );
    let dir = tempfile::tempdir().unwrap();
    let cert = dir.path().join("doc.asc");
    std::fs::write(&cert, gpg.export("doc@pgp-partner.test")).unwrap();
    let cert = cert.to_string_lossy().into_owned();
    let mail = |before: &str| {
        let mut m = format!(
            "From: doc@pgp-partner.test\r\nTo: records@clinic.example\r\nSubject: r\r\n\
             Content-Type: text/plain\r\n\r\n{before}"
        )
        .into_bytes();
        m.extend_from_slice(&signed);
        m
    };
    let verdict = |msg: &[u8], require: bool| {
        let report = dir.path().join("report.json");
        let report_s = report.to_string_lossy().into_owned();
        let mut args = vec!["open", "--expect-signer", &cert, "--report-json", &report_s];
        if require {
            args.push("--require-valid-signature");
        }
        let out = relay(&args, msg);
        let json: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
        (
            json["signature"].as_str().unwrap().to_string(),
            out.status.code(),
        )
    };
    assert_eq!(verdict(&mail(""), true), ("valid".to_string(), Some(0)));
    let forged = mail("URGENT: wire the deposit to account 12345 today.\r\n\r\n");
    assert_eq!(verdict(&forged, false).0, "partial");
    assert_eq!(verdict(&forged, true).1, Some(1));
}

/// `dkim-record` prints the zone-file line for a key: an Ed25519 key's 32 bytes, an RSA key's
/// SubjectPublicKeyInfo split into TXT strings of at most 255 bytes; a short key is refused.
#[test]
fn dkim_record_prints_what_to_publish() {
    let tmp = tempfile::tempdir().unwrap();
    let ed = tmp.path().join("ed.pem");
    let rsa = tmp.path().join("rsa.pem");
    let short = tmp.path().join("short.pem");
    for (out, args) in [
        (&ed, &["genpkey", "-algorithm", "ed25519", "-out"][..]),
        (
            &rsa,
            &[
                "genpkey",
                "-algorithm",
                "RSA",
                "-pkeyopt",
                "rsa_keygen_bits:3072",
                "-out",
            ][..],
        ),
    ] {
        let mut a: Vec<&str> = args.to_vec();
        a.push(out.to_str().unwrap());
        assert!(run("openssl", &a, b"").status.success());
    }
    assert!(run(
        "openssl",
        &["genrsa", "-out", short.to_str().unwrap(), "1024"],
        b""
    )
    .status
    .success());
    let record = |key: &Path| {
        relay(
            &[
                "dkim-record",
                "--key",
                key.to_str().unwrap(),
                "--domain",
                "clinic.example",
                "--selector",
                "s1",
            ],
            b"",
        )
    };
    let out = record(&ed);
    let line = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        line.starts_with("s1._domainkey.clinic.example. IN TXT ( \"v=DKIM1; k=ed25519; p="),
        "{line}"
    );
    let out = record(&rsa);
    let line = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(line.contains("k=rsa; p=MII"), "{line}");
    assert!(line.split('"').all(|s| s.len() <= 255), "{line}");
    assert!(
        line.matches('"').count() >= 4,
        "a 3072-bit key needs two strings: {line}"
    );
    let out = record(&short);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("2048"));
}

/// Issue 25, deployment: the systemd unit passes `systemd-analyze verify` with this build's
/// binary in its ExecStart, with no warning (an unknown or misspelt key is only a warning
/// there, so any output fails); the two-node example configurations load.
#[test]
fn the_systemd_unit_verifies_and_the_two_node_configurations_load() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy");
    let unit = std::fs::read_to_string(root.join("postern-relay.service")).unwrap();
    assert!(unit.contains("ExecStart=/usr/local/bin/postern-relay run"));
    let dir = tempfile::tempdir().unwrap();
    let here = dir.path().join("postern-relay.service");
    std::fs::write(
        &here,
        unit.replace(
            "/usr/local/bin/postern-relay",
            env!("CARGO_BIN_EXE_postern-relay"),
        ),
    )
    .unwrap();
    let out = run("systemd-analyze", &["verify", here.to_str().unwrap()], b"");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success() && said.trim().is_empty(), "{said}");
    for node in ["a", "b"] {
        let cfg =
            postern_relay::RelayConfig::load(&root.join(format!("two-node/node-{node}.toml")))
                .unwrap();
        assert!(cfg.database.starts_with("postgres://"));
        assert_eq!(cfg.public.proxy_from, ["10.0.0.5/32"]);
    }
}

/// Issue 24 (roles): check-config lists each of our identities with its role from key usage
/// and validity and the domains of ours it signs for, naming the ones its certificate binds
/// that are not ours (the example's published test keys belong to other domains).
#[test]
fn check_config_lists_our_identities_with_their_roles_and_domains() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = relay(
        &[
            "check-config",
            root.join("config/directory.toml").to_str().unwrap(),
        ],
        b"",
    );
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{said}");
    let line = |std: &str| {
        said.lines()
            .find(|l| l.starts_with(&format!("our {std} identity")))
            .unwrap_or_else(|| panic!("{std}: {said}"))
            .to_string()
    };
    // Alice's LAMPS certificate allows digitalSignature only; her OpenPGP key both.
    let smime = line("smime");
    assert!(smime.contains(": signs; for clinic.example"), "{smime}");
    assert!(
        smime.contains("also names smime.example, not ours"),
        "{smime}"
    );
    let pgp = line("openpgp");
    assert!(
        pgp.contains(": signs and decrypts; for clinic.example"),
        "{pgp}"
    );
}

/// Takes the certificate (`-nokeys`) or key (`-nocerts`) out of one of the Direct RI's PKCS#12
/// files (RC2, so `-legacy`) into `out`; returns its path.
fn ri_pkcs12(pfx: &Path, flag: &str, out: &Path) -> String {
    let r = run(
        "openssl",
        &[
            "pkcs12",
            "-legacy",
            "-in",
            pfx.to_str().unwrap(),
            "-passin",
            "pass:passw0rd!",
            flag,
            "-noenc",
            "-out",
            out.to_str().unwrap(),
        ],
        b"",
    );
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    out.to_str().unwrap().to_string()
}
