//! The embedding examples (`examples/embed/`), run as a newcomer would run them, with OpenSSL
//! and GnuPG reading what they produce.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is a failure report

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use postern_tests::relay::{send_mail, wait_until};
use postern_tests::{run, run_ok, Gpg, KeyKind, Pki};

const MARKER: &str = "Lipid panel for J. Doe, marker 7f3a";

fn data(f: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("data").join(f)
}

/// The example's binary, built by `cargo test` with the other targets (or here, when only this
/// test was asked for).
fn example(name: &str) -> PathBuf {
    let deps = std::env::current_exe().unwrap();
    let path = deps
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .join("examples")
        .join(name);
    if !path.exists() {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let ok = Command::new(cargo)
            .args(["build", "-p", "postern-examples", "--example", name])
            .status()
            .unwrap();
        assert!(ok.success(), "building example {name}");
    }
    path
}

fn run_example(name: &str, args: &[&str]) -> Output {
    run(Command::new(example(name)).args(args), b"")
}

/// A child process killed when the test ends, however it ends.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn openssl_decrypt_for_bob(message: &[u8]) -> Vec<u8> {
    run_ok(
        Command::new("openssl")
            .args(["cms", "-decrypt", "-recip"])
            .arg(data("lamps-bob.encrypt.crt"))
            .arg("-inkey")
            .arg(data("lamps-bob.decrypt.p8.pem")),
        message,
    )
}

fn gpg_decrypt_for_bob(message: &[u8]) -> Vec<u8> {
    let gpg = Gpg::new();
    gpg.import(&std::fs::read(data("bob.sec.asc")).unwrap());
    let (out, err, ok) = gpg.decrypt(message);
    assert!(ok, "gpg: {err}");
    out
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Example 1: mail through the minimal SMTP server is sealed per partner (read by OpenSSL and
/// GnuPG), kept for our own domain, and refused with the typed reason's reply where a required
/// partner has no key.
#[test]
fn the_minimal_smtp_server_seals_for_partners_and_refuses_with_typed_replies() {
    seals_for_partners_and_refuses_with_typed_replies("embed_smtp");
}

/// The same from a thread-per-connection server with no async runtime (mailin-embedded).
#[test]
fn the_threaded_smtp_server_without_a_runtime_does_the_same() {
    seals_for_partners_and_refuses_with_typed_replies("threaded_smtp");
}

/// An SMTP embedding example, `name`, run as a newcomer would: copies sealed for each partner
/// (OpenSSL and GnuPG read them), our own and the clear world's stored, a keyless required
/// partner refused with its typed reply.
fn seals_for_partners_and_refuses_with_typed_replies(name: &str) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("directory.toml");
    std::fs::write(
        &dir,
        format!(
            "[our]\ndomains = [\"clinic.example\"]\n\n\
             [[partner]]\ndomain = \"smime.example\"\nstandards = [\"smime\"]\npolicy = \"required\"\n\
             smime_certificates = [{:?}]\n\n\
             [[partner]]\ndomain = \"openpgp.example\"\nstandards = [\"openpgp\"]\npolicy = \"required\"\n\
             openpgp_certificates = [{:?}]\n\n\
             [[partner]]\ndomain = \"nokey.example\"\nstandards = [\"openpgp\"]\npolicy = \"required\"\n\
             key_sources = [\"wkd\"]\n",
            data("lamps-bob.encrypt.crt").display().to_string(),
            data("bob.pub.asc").display().to_string(),
        ),
    )
    .unwrap();
    let out = tmp.path().join("out");
    std::fs::create_dir(&out).unwrap();
    let mut child = Command::new(example(name))
        .arg(&dir)
        .arg(&out)
        .arg("127.0.0.1:0")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    let _server = Running(child);
    let addr = first
        .trim()
        .strip_prefix("listening on ")
        .unwrap()
        .to_string();

    let rcpts = [
        "results@smime.example",
        "office@openpgp.example",
        "nurse@clinic.example",
        "friend@mail.test",
    ];
    let msg = format!(
        "From: dr@clinic.example\r\nTo: results@smime.example\r\nSubject: Labs\r\n\r\n{MARKER}\r\n"
    );
    let r = send_mail(&addr, "dr@clinic.example", &rcpts, msg.as_bytes()).unwrap();
    assert!(r.starts_with("250"), "{r}");
    let files = |kind: &str| -> Vec<Vec<u8>> {
        std::fs::read_dir(&out)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.to_string_lossy().ends_with(&format!("-{kind}.eml")))
            .map(|p| std::fs::read(p).unwrap())
            .collect()
    };
    assert!(wait_until(Duration::from_secs(5), || files("local").len() == 1));
    let smime = files("sealed-smime");
    assert_eq!(smime.len(), 1);
    assert!(!text(&smime[0]).contains(MARKER), "sealed copy readable");
    assert!(text(&openssl_decrypt_for_bob(&smime[0])).contains(MARKER));
    let pgp = files("sealed-openpgp");
    assert_eq!(pgp.len(), 1);
    assert!(!text(&pgp[0]).contains(MARKER));
    assert!(text(&gpg_decrypt_for_bob(&pgp[0])).contains(MARKER));
    assert!(text(&files("local")[0]).contains(MARKER));
    let plain = files("plain");
    assert_eq!(plain.len(), 1);
    assert!(text(&plain[0]).starts_with("X-Envelope-To: friend@mail.test\r\n"));

    // A required partner without a key (its keys are published, and no source finds one):
    // refused with the reply of the typed reason, and nothing written for it.
    let before = std::fs::read_dir(&out).unwrap().count();
    let r = send_mail(
        &addr,
        "dr@clinic.example",
        &["x@nokey.example"],
        msg.as_bytes(),
    )
    .unwrap();
    assert!(r.starts_with("554 5.7.5"), "{r}");
    assert_eq!(std::fs::read_dir(&out).unwrap().count(), before);
}

/// Example 2: the custom inspector makes the DLP's verdict stricter for a project word.
#[test]
fn the_custom_inspector_holds_what_its_rule_names() {
    let o = run_example("custom_inspector", &[]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let out = text(&o.stdout);
    let lines: Vec<&str> = out.lines().collect();
    let after = |m: &str| -> &str {
        let i = lines.iter().position(|l| l.starts_with(m)).unwrap();
        lines[i + 1]
    };
    assert!(after("message 1:").ends_with("deliver in clear"), "{out}");
    assert!(after("message 2:").contains("quarantine"), "{out}");
    assert!(after("message 2:").contains("project rule"), "{out}");
    assert!(
        !out.contains("Nightingale"),
        "the summary names the rule, not the text"
    );
    assert!(after("message 3:").contains("quarantine"), "{out}");
    assert!(after("message 3:").contains("ssn"), "{out}");
}

/// Example 3: a third backend next to the built-in ones, chosen per partner; OpenSSL reads its
/// output; when its program is missing the partner gets nothing.
#[test]
fn a_custom_backend_is_chosen_per_partner_and_fails_closed() {
    let tmp = tempfile::tempdir().unwrap();
    let (cert, key) = (data("lamps-bob.encrypt.crt"), data("bob.pub.asc"));
    let args = [
        cert.to_str().unwrap(),
        key.to_str().unwrap(),
        tmp.path().to_str().unwrap(),
    ];
    let o = run_example("custom_backend", &args);
    let out = text(&o.stdout);
    assert!(o.status.success(), "{out}{}", text(&o.stderr));
    assert!(
        out.contains("smime.example: sealed with openssl-cli"),
        "{out}"
    );
    assert!(
        out.contains("openpgp.example: sealed with openpgp"),
        "{out}"
    );
    let lab = std::fs::read(tmp.path().join("smime.example.eml")).unwrap();
    assert!(!text(&lab).contains("lipid panel"));
    assert!(text(&openssl_decrypt_for_bob(&lab)).contains("lipid panel"));
    let pgp = std::fs::read(tmp.path().join("openpgp.example.eml")).unwrap();
    assert!(text(&gpg_decrypt_for_bob(&pgp)).contains("lipid panel"));

    // Without the program: held (temporary), never sent in clear.
    let empty = tempfile::tempdir().unwrap();
    let again = tempfile::tempdir().unwrap();
    let o = run(
        Command::new(example("custom_backend"))
            .args(&args[..2])
            .arg(again.path())
            .env("PATH", empty.path()),
        b"",
    );
    let out = text(&o.stdout);
    assert!(out.contains("smime.example: not sent (4.7.5)"), "{out}");
    assert!(!again.path().join("smime.example.eml").exists());
    assert!(again.path().join("openpgp.example.eml").exists());
}

/// Example 4: the private key lives in another process; the gateway opens mail OpenSSL
/// encrypted to our certificate and signs what it seals through it, and OpenSSL verifies the
/// signature.
#[test]
fn an_hsm_style_key_loader_keeps_the_key_in_another_process() {
    let pki = Pki::new();
    let ours = pki.issue("gw@clinic.example", KeyKind::Rsa(2048));
    let tmp = tempfile::tempdir().unwrap();
    let socket = tmp.path().join("hsm.sock");
    let log = tmp.path().join("hsm.log");
    let holder = Command::new(example("hsm_keyloader"))
        .arg("serve")
        .arg(&socket)
        .arg(&ours.key)
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let _holder = Running(holder);
    assert!(wait_until(Duration::from_secs(10), || socket.exists()));
    let gateway_side = |args: &[&Path], stdin: &[u8]| -> Output {
        run(Command::new(example("hsm_keyloader")).args(args), stdin)
    };

    // Open: OpenSSL encrypts to our certificate; the RSA decryption happens in the holder.
    let plain = format!(
        "From: a@partner.example\r\nTo: gw@clinic.example\r\nSubject: t\r\n\r\n{MARKER}\r\n"
    );
    let sealed = run_ok(
        Command::new("openssl")
            .args(["cms", "-encrypt", "-aes256", "-recip"])
            .arg(&ours.cert),
        plain.as_bytes(),
    );
    let o = gateway_side(&[Path::new("open"), &socket, &ours.cert], &sealed);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let opened = text(&o.stdout);
    assert!(opened.contains(MARKER), "{opened}");
    assert!(opened.contains("Postern-Decrypted: smime"), "{opened}");

    // Seal with our signature: OpenSSL decrypts as the partner and verifies our signature.
    let partner = data("lamps-bob.encrypt.crt");
    let msg = format!(
        "From: dr@clinic.example\r\nTo: results@smime.example\r\nSubject: s\r\n\r\n{MARKER}\r\n"
    );
    let o = gateway_side(
        &[Path::new("seal"), &socket, &ours.cert, &partner],
        msg.as_bytes(),
    );
    assert!(o.status.success(), "{}", text(&o.stderr));
    let inner = openssl_decrypt_for_bob(&o.stdout);
    let verified = run(
        Command::new("openssl")
            .args(["cms", "-verify", "-CAfile"])
            .arg(&pki.ca_cert),
        &inner,
    );
    assert!(verified.status.success(), "{}", text(&verified.stderr));
    assert!(text(&verified.stdout).contains(MARKER));
    let ops = std::fs::read_to_string(&log).unwrap();
    assert!(
        ops.contains("operation 1 -> done"),
        "decrypted by the holder: {ops}"
    );
    assert!(
        ops.contains("operation 3 -> done"),
        "signed by the holder: {ops}"
    );

    // The holder gone: opening is not possible, and nothing readable comes out.
    drop(_holder);
    std::fs::remove_file(&socket).ok();
    let o = gateway_side(&[Path::new("open"), &socket, &ours.cert], &sealed);
    assert!(!text(&o.stdout).contains(MARKER));
}

/// `cargo tree` of a crate outside the workspace that depends on postern-router with the
/// given features (and postern-openpgp with `openpgp`), resolved offline against the
/// workspace's lock file, as an embedder's build would see it.
fn embedder_tree(
    router_features: &[&str],
    openpgp_features: Option<&[&str]>,
    args: &[&str],
) -> String {
    let tmp = tempfile::tempdir().unwrap();
    let crates = Path::new(env!("CARGO_MANIFEST_DIR")).join("../crates");
    let quoted = |f: &[&str]| {
        f.iter()
            .map(|x| format!("{x:?}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut manifest = format!(
        "[package]\nname = \"embedder\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\n\
         [dependencies]\npostern-router = {{ path = {:?}, default-features = false, features = [{}] }}\n",
        crates.join("postern-router").display().to_string(),
        quoted(router_features)
    );
    if let Some(f) = openpgp_features {
        manifest.push_str(&format!(
            "postern-openpgp = {{ path = {:?}, default-features = false, features = [{}] }}\n",
            crates.join("postern-openpgp").display().to_string(),
            quoted(f)
        ));
    }
    manifest.push_str("\n[workspace]\n");
    std::fs::write(tmp.path().join("Cargo.toml"), manifest).unwrap();
    std::fs::create_dir(tmp.path().join("src")).unwrap();
    std::fs::write(tmp.path().join("src/lib.rs"), "").unwrap();
    std::fs::copy(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../Cargo.lock"),
        tmp.path().join("Cargo.lock"),
    )
    .unwrap();
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .current_dir(tmp.path())
        .args(["tree", "--offline", "--color", "never"])
        .args(args)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    text(&out.stdout)
}

/// Backend choice is the embedder's: OpenSSL under sequoia without the pure-Rust backend the
/// router used to force on (sequoia refuses two), and an S/MIME-only build without sequoia.
#[test]
fn the_embedder_chooses_the_backends_through_features() {
    let tree = embedder_tree(
        &["smime", "openpgp", "dlp"],
        Some(&["crypto-openssl"]),
        &["-e", "features", "-i", "sequoia-openpgp"],
    );
    assert!(
        tree.contains("sequoia-openpgp feature \"crypto-openssl\""),
        "{tree}"
    );
    assert!(!tree.contains("crypto-rust"), "{tree}");
    let tree = embedder_tree(&["smime", "dlp"], None, &["-e", "normal"]);
    assert!(tree.contains("postern-smime"), "{tree}");
    assert!(tree.contains("postern-dlp"), "{tree}");
    assert!(!tree.contains("sequoia-openpgp"), "{tree}");
    assert!(!tree.contains("postern-openpgp"), "{tree}");
}
