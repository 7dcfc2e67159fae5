//! The library-only embedder (`examples/library-only`): key discovery (WKD) and content
//! inspection from the library crates, with neither postern-relay nor axum nor sqlx in its
//! dependency tree; run against a Web Key Directory served over TLS here, with GnuPG reading
//! what it seals.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is a failure report

use std::path::{Path, PathBuf};
use std::process::Command;

use postern_tests::{run, Gpg, PgpKind, Pki};

fn cargo() -> Command {
    let mut c = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    c.current_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join(".."));
    c
}

/// The example binary, built now (cheap when it is up to date: a stale one would test old
/// code).
fn binary() -> PathBuf {
    let ok = cargo()
        .args([
            "build",
            "-q",
            "-p",
            "postern-example-library",
            "--bin",
            "wkd_and_dlp",
        ])
        .status()
        .unwrap();
    assert!(ok.success(), "building wkd_and_dlp");
    let deps = std::env::current_exe().unwrap();
    deps.parent().unwrap().parent().unwrap().join("wkd_and_dlp")
}

#[test]
fn the_library_alone_has_no_relay_web_framework_or_database() {
    let out = cargo()
        .args([
            "tree",
            "--offline",
            "-p",
            "postern-example-library",
            "-e",
            "normal",
            "--prefix",
            "none",
            "--color",
            "never",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let tree = String::from_utf8_lossy(&out.stdout);
    for name in ["postern-trust", "postern-dlp", "postern-router"] {
        assert!(
            tree.lines().any(|l| l.starts_with(name)),
            "{name} missing:\n{tree}"
        );
    }
    for name in ["postern-relay", "postern-portal", "axum", "sqlx", "hyper "] {
        assert!(
            !tree.lines().any(|l| l.starts_with(name)),
            "{name} in the tree:\n{tree}"
        );
    }
}

#[test]
fn wkd_keys_are_found_and_clear_copies_inspected_from_the_library_alone() {
    let exe = binary();
    let pki = Pki::new();
    let alice = Gpg::new();
    alice.generate("Alice <alice@wkd.test>", PgpKind::Ed25519, "never");
    // GnuPG's own WKD hash decides the path served (advanced method: openpgpkey.wkd.test).
    let listing =
        String::from_utf8(alice.ok(&["--with-wkd-hash", "--list-keys", "alice@wkd.test"], b""))
            .unwrap();
    let hash = listing
        .lines()
        .find_map(|l| l.trim().strip_suffix("@wkd.test").filter(|h| h.len() == 32))
        .expect("wkd hash")
        .to_string();
    let path = format!("/.well-known/openpgpkey/wkd.test/hu/{hash}?l=alice");

    let tls = pki.issue_tls_for(&["openpgpkey.wkd.test", "wkd.test"]);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let addr = listener.local_addr().unwrap();
    rt.spawn(postern_tests::https::serve(
        listener,
        postern_tests::https::acceptor(&tls),
        vec![(path, alice.export("alice@wkd.test"))],
    ));

    let tmp = tempfile::tempdir().unwrap();
    let directory = tmp.path().join("directory.toml");
    std::fs::write(
        &directory,
        "[our]\ndomains = [\"clinic.example\"]\n\n\
         [[partner]]\ndomain = \"wkd.test\"\nstandards = [\"openpgp\"]\npolicy = \"required\"\n\
         key_sources = [\"wkd\"]\n",
    )
    .unwrap();
    let msg = b"From: dr@clinic.example\r\nTo: alice@wkd.test, someone@mail.example\r\n\
Subject: results\r\n\r\nCard on file 4111 1111 1111 1111 exp 12/29, potassium 4.1\r\n";
    let o = run(
        Command::new(&exe)
            .arg("--ca")
            .arg(&pki.ca_cert)
            .arg("--resolve")
            .arg(format!("openpgpkey.wkd.test={addr}"))
            .arg("--resolve")
            .arg(format!("wkd.test={addr}"))
            .arg(&directory)
            .arg(tmp.path())
            .args([
                "dr@clinic.example",
                "alice@wkd.test",
                "someone@mail.example",
            ]),
        msg,
    );
    let out = String::from_utf8_lossy(&o.stdout).to_string();
    assert!(
        o.status.success(),
        "{out}{}",
        String::from_utf8_lossy(&o.stderr)
    );
    // The partner's key came from its Web Key Directory; GnuPG reads the sealed copy.
    assert!(out.contains("alice@wkd.test: sealed with openpgp"), "{out}");
    let sealed = std::fs::read(tmp.path().join("alice@wkd.test.eml")).unwrap();
    assert!(!String::from_utf8_lossy(&sealed).contains("4111"));
    let (plain, err, ok) = alice.decrypt(&sealed);
    assert!(ok, "gpg: {err}");
    assert!(String::from_utf8_lossy(&plain).contains("potassium 4.1"));
    // The clear copy met the built-in DLP: held, named by detector, the number not shown.
    assert!(out.contains("someone@mail.example: quarantine"), "{out}");
    assert!(out.contains("card"), "{out}");
    assert!(!out.contains("4111"), "{out}");
}
