//! The partner directory: TOML with line-numbered errors, wildcard lookup, validation through
//! the real backends (expiring, expired and unusable certificates), and reload that keeps the
//! directory in force when the new file is bad.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is a failure report

use std::time::{Duration, SystemTime};

use postern_core::{Domain, Standard};
use postern_router::{
    validate, Directory, DirectoryError, PartnerPolicy, Severity, SharedDirectory,
};
use postern_tests::{backends, checked, Gpg, KeyKind, PgpKind, Pki};

fn d(s: &str) -> Domain {
    Domain::new(s).unwrap()
}

struct Setup {
    pki: Pki,
    _gpg: Gpg,
    dir: tempfile::TempDir,
}

/// Keys on disk: our S/MIME identity, a good S/MIME partner, one expiring in 10 days, one that
/// can only sign, and an OpenPGP partner.
fn setup() -> Setup {
    let pki = Pki::new();
    let dir = tempfile::tempdir().unwrap();
    let copy = |name: &str, from: &std::path::Path| {
        std::fs::copy(from, dir.path().join(name)).unwrap();
    };
    let us = pki.issue("gw@clinic.example", KeyKind::Rsa(2048));
    copy("our.pem", &us.cert);
    copy("our.key", &us.key);
    copy("ca.pem", &pki.ca_cert);
    copy(
        "good.pem",
        &pki.issue("gw@good.example", KeyKind::Rsa(2048)).cert,
    );
    copy(
        "soon.pem",
        &pki.issue_with(
            "gw@soon.example",
            KeyKind::P256,
            "keyAgreement",
            "emailProtection",
            10,
        )
        .cert,
    );
    copy(
        "signonly.pem",
        &pki.issue_with(
            "gw@signonly.example",
            KeyKind::Rsa(2048),
            "digitalSignature",
            "emailProtection",
            100,
        )
        .cert,
    );
    let gpg = Gpg::new();
    gpg.generate("PGP GW <gw@pgp.example>", PgpKind::Ed25519, "never");
    std::fs::write(dir.path().join("pgp.asc"), gpg.export("gw@pgp.example")).unwrap();
    Setup {
        pki,
        _gpg: gpg,
        dir,
    }
}

const GOOD: &str = r#"
[our]
domains = ["clinic.example"]
trust_anchors = ["ca.pem"]

[[our.keys]]
standard = "smime"
certificate = "our.pem"
key = "our.key"

[[partner]]
domain = "good.example"
standards = ["smime"]
policy = "required"
smime_certificates = ["good.pem"]
sign = true
cipher = "aes256-gcm"

[[partner]]
domain = "*.good.example"
standards = ["smime"]
policy = "preferred"
smime_certificates = ["good.pem"]

[[partner]]
domain = "pgp.example"
standards = ["openpgp", "smime"]
policy = "required"
openpgp_certificates = ["pgp.asc"]

[[partner]]
domain = "smallpractice.example"
policy = "portal"
"#;

#[test]
fn loads_and_looks_up_partners() {
    let s = setup();
    let path = s.dir.path().join("directory.toml");
    std::fs::write(&path, GOOD).unwrap();
    let dir = Directory::load(&path).unwrap();
    assert!(dir.is_ours(&d("Clinic.Example")));
    assert_eq!(dir.our_credentials(Standard::Smime).len(), 1);
    assert_eq!(dir.our.trust_anchors.len(), 1);
    let good = dir.partner_for(&d("good.example")).unwrap();
    assert_eq!(good.policy, PartnerPolicy::Required);
    assert!(good.sign);
    assert_eq!(good.cipher.unwrap().name(), "aes256-gcm");
    // A subdomain takes the wildcard entry, the apex the exact one.
    assert_eq!(
        dir.partner_for(&d("mail.good.example")).unwrap().policy,
        PartnerPolicy::Preferred
    );
    assert!(dir.partner_for(&d("notgood.example")).is_none());
    let pgp = dir.partner_for(&d("pgp.example")).unwrap();
    assert_eq!(pgp.standards, vec![Standard::OpenPgp, Standard::Smime]);
    assert_eq!(pgp.certificates_for(Standard::OpenPgp).len(), 1);
    assert_eq!(
        dir.partner_for(&d("smallpractice.example")).unwrap().policy,
        PartnerPolicy::Portal
    );
    // Everything configured here works: no errors (the pgp partner lists smime without a
    // certificate, which is a warning).
    let findings = validate(&dir, &backends(), SystemTime::now());
    assert!(
        findings.iter().all(|f| f.severity == Severity::Warning),
        "{findings:?}"
    );
    assert!(findings
        .iter()
        .any(|f| f.subject == "pgp.example" && f.message.contains("smime is listed")));
}

#[test]
fn bad_files_are_rejected_with_line_numbers() {
    let s = setup();
    // A value the schema does not know: reported at its line by the TOML layer.
    let text = "[our]\ndomains = [\"clinic.example\"]\n\n[[partner]]\ndomain = \"x.example\"\nstandards = [\"smime\"]\npolicy = \"sometimes\"\n";
    match Directory::from_toml(text, s.dir.path()) {
        Err(DirectoryError::Invalid(p)) => assert_eq!(p[0].line, 7, "{p:?}"),
        other => panic!("{other:?}"),
    }
    // Several problems at once, each with its line.
    let text = "[our]\ndomains = [\"clinic..example\"]\n\n[[partner]]\ndomain = \"x.example\"\nstandards = [\"smime\", \"x400\"]\npolicy = \"required\"\nsmime_certificates = [\"missing.pem\"]\ncipher = \"rc2\"\n";
    let Err(DirectoryError::Invalid(p)) = Directory::from_toml(text, s.dir.path()) else {
        panic!("accepted");
    };
    let lines: Vec<usize> = p.iter().map(|p| p.line).collect();
    assert!(
        lines.contains(&2) && lines.contains(&6) && lines.contains(&9),
        "{p:?}"
    );
    assert!(p.iter().any(|p| p.message.contains("missing.pem")), "{p:?}");
    assert!(p.iter().any(|p| p.message.contains("x400")), "{p:?}");
    // Unknown keys are errors too (a typo must not silently drop a setting).
    let text = "[[partner]]\ndomain = \"x.example\"\npolicy = \"portal\"\nencrypt = true\n";
    assert!(Directory::from_toml(text, s.dir.path()).is_err());
    // Duplicate partner.
    let text = "[[partner]]\ndomain = \"x.example\"\npolicy = \"portal\"\n[[partner]]\ndomain = \"X.example\"\npolicy = \"portal\"\n";
    let Err(DirectoryError::Invalid(p)) = Directory::from_toml(text, s.dir.path()) else {
        panic!("accepted");
    };
    assert_eq!(p[0].line, 4);
}

#[test]
fn validation_finds_what_would_stop_mail() {
    let s = setup();
    let text = r#"
[our]
domains = ["clinic.example"]

[[partner]]
domain = "soon.example"
standards = ["smime"]
policy = "required"
smime_certificates = ["soon.pem"]

[[partner]]
domain = "signonly.example"
standards = ["smime"]
policy = "required"
smime_certificates = ["signonly.pem"]

[[partner]]
domain = "nokey.example"
standards = ["openpgp"]
policy = "required"

[[partner]]
domain = "signer.example"
standards = ["smime"]
policy = "preferred"
smime_certificates = ["good.pem"]
sign = true
"#;
    let dir = Directory::from_toml(text, s.dir.path()).unwrap();
    let f = validate(&dir, &backends(), SystemTime::now());
    fn about<'a>(
        f: &'a [postern_router::Finding],
        subject: &'a str,
        sev: Severity,
    ) -> impl Iterator<Item = &'a postern_router::Finding> {
        f.iter()
            .filter(move |x| x.subject == subject && x.severity == sev)
    }
    assert!(
        about(&f, "soon.example", Severity::Warning).any(|x| x.message.contains("30 days")),
        "{f:?}"
    );
    assert_eq!(
        about(&f, "soon.example", Severity::Error).count(),
        0,
        "{f:?}"
    );
    // A signing-only certificate is not an error in itself (a single-use pair has one): it is
    // named as such, and a required partner with nothing else has no key.
    assert!(
        about(&f, "signonly.example", Severity::Warning)
            .any(|x| x.message.contains("signing only")),
        "{f:?}"
    );
    assert!(
        !about(&f, "signonly.example", Severity::Error).any(|x| x.message.contains("key usage")),
        "{f:?}"
    );
    assert!(about(&f, "signonly.example", Severity::Error)
        .any(|x| x.message.contains("held, then bounced")));
    assert!(
        about(&f, "nokey.example", Severity::Error).any(|x| x.message.contains("no usable key"))
    );
    assert!(about(&f, "signer.example", Severity::Error)
        .any(|x| x.message.contains("no smime key that may sign")));
    assert_eq!(f[0].severity, Severity::Error, "errors first");
    assert!(f.iter().all(|x| x.line > 0 || x.subject == "our"));
    // Eleven days on, the expiring certificate is an error for a required partner.
    let later = validate(
        &dir,
        &backends(),
        SystemTime::now() + Duration::from_secs(11 * 86400),
    );
    assert!(
        later.iter().any(|x| x.subject == "soon.example"
            && x.severity == Severity::Error
            && x.message.contains("expired")),
        "{later:?}"
    );
    let _ = &s.pki;
}

#[test]
fn reload_keeps_the_directory_in_force_when_the_new_one_is_bad() {
    let s = setup();
    let path = s.dir.path().join("directory.toml");
    std::fs::write(&path, GOOD).unwrap();
    let shared = SharedDirectory::new(checked(&Directory::from_toml(GOOD, s.dir.path()).unwrap()));
    let first = shared.current();
    shared
        .reload(&path, &backends(), SystemTime::now())
        .unwrap();
    assert!(!std::sync::Arc::ptr_eq(&first, &shared.current()));
    let before = shared.current();
    assert!(before.partner_for(&d("good.example")).is_some());
    // Syntax error: refused, old one stays.
    std::fs::write(&path, "[[partner]\ndomain = ").unwrap();
    assert!(shared
        .reload(&path, &backends(), SystemTime::now())
        .is_err());
    assert!(shared.current().partner_for(&d("good.example")).is_some());
    // Parses, but a required partner has no key: refused too.
    std::fs::write(&path, "[our]\ndomains = [\"clinic.example\"]\n[[partner]]\ndomain = \"good.example\"\nstandards = [\"smime\"]\npolicy = \"required\"\n").unwrap();
    let e = shared
        .reload(&path, &backends(), SystemTime::now())
        .unwrap_err();
    assert!(e.to_string().contains("no usable key"), "{e}");
    assert!(std::sync::Arc::ptr_eq(&before, &shared.current()));
}

/// A partner certificate bound to another organisation's addresses is an error (mail for the
/// partner would be readable there) unless the entry names that domain on purpose; a file with
/// a CA chain seals to its end-entity certificate only, and one with two end-entity
/// certificates is pointed out (mail goes to both).
#[test]
fn foreign_and_bundled_partner_certificates_are_reported() {
    let s = setup();
    let other = s.pki.issue("gw@other.example", KeyKind::Rsa(2048));
    let second = s.pki.issue("gw2@good.example", KeyKind::Rsa(2048));
    let good = s.pki.issue("gw@good.example", KeyKind::Rsa(2048));
    std::fs::copy(&other.cert, s.dir.path().join("other.pem")).unwrap();
    // CA first, as a careless export puts it.
    let mut chain = s.pki.ca_pem();
    chain.extend(good.cert_pem());
    std::fs::write(s.dir.path().join("chain.pem"), &chain).unwrap();
    let mut two = good.cert_pem();
    two.extend(second.cert_pem());
    std::fs::write(s.dir.path().join("two.pem"), &two).unwrap();
    let text = r#"
[our]
domains = ["clinic.example"]

[[partner]]
domain = "good.example"
standards = ["smime"]
policy = "required"
smime_certificates = ["other.pem"]

[[partner]]
domain = "hosted.example"
standards = ["smime"]
policy = "required"
smime_certificates = ["other.pem"]
certificate_domains = ["other.example"]

[[partner]]
domain = "*.good.example"
standards = ["smime"]
policy = "required"
smime_certificates = ["chain.pem"]

[[partner]]
domain = "two.good.example"
standards = ["smime"]
policy = "required"
smime_certificates = ["two.pem"]
"#;
    let dir = Directory::from_toml(text, s.dir.path()).unwrap();
    let f = validate(&dir, &backends(), SystemTime::now());
    let errors = |subject: &str| {
        f.iter()
            .filter(|x| x.subject == subject && x.severity == Severity::Error)
            .map(|x| x.message.clone())
            .collect::<Vec<_>>()
    };
    assert!(
        errors("good.example")
            .iter()
            .any(|m| m.contains("belongs to other.example")),
        "{f:?}"
    );
    assert!(errors("hosted.example").is_empty(), "{f:?}");
    assert!(errors("*.good.example").is_empty(), "{f:?}");
    assert!(
        f.iter().any(|x| x.subject == "two.good.example"
            && x.severity == Severity::Warning
            && x.message.contains("holds 2 certificates")),
        "{f:?}"
    );
    assert!(
        !f.iter()
            .any(|x| x.subject == "*.good.example" && x.message.contains("holds")),
        "a CA certificate in the file is chain material, not a recipient: {f:?}"
    );
    // An embedder never routes with it: the gateway's loader and check refuse the file (an
    // embedder once sealed to other.example's key because nothing ran this check).
    let path = s.dir.path().join("foreign.toml");
    std::fs::write(&path, text).unwrap();
    let gateway = postern_router::Gateway::builder().build().unwrap();
    let refused = gateway.load_directory(&path).unwrap_err();
    assert!(
        refused.to_string().contains("belongs to other.example"),
        "{refused}"
    );
    let refused = gateway.check(dir.clone()).unwrap_err();
    assert!(refused
        .findings
        .iter()
        .any(|x| x.subject == "good.example" && x.severity == Severity::Error));

    // Sealing to the bundle: OpenSSL opens it with the partner's key, and the CA is not a
    // recipient; the two-certificate file reaches both holders.
    use postern_core::{MessageView, Policy, SealRequest};
    use postern_smime::SmimeEnvelope;
    let policy = Policy::default();
    let msg = postern_tests::sample_message(1);
    let view = MessageView::parse(&msg).unwrap();
    let sealed = SmimeEnvelope::new()
        .seal_sync(&view, &SealRequest::encrypt(&[chain], &policy))
        .unwrap();
    good.openssl_decrypt(&sealed);
    let sealed = SmimeEnvelope::new()
        .seal_sync(&view, &SealRequest::encrypt(&[two], &policy))
        .unwrap();
    good.openssl_decrypt(&sealed);
    second.openssl_decrypt(&sealed);
    let only_ca =
        SmimeEnvelope::new().seal_sync(&view, &SealRequest::encrypt(&[s.pki.ca_pem()], &policy));
    assert!(only_ca.is_err(), "sealed to a CA certificate");
}

/// Our key and certificate from a PKCS#12 file as OpenSSL 3 writes it (PBES2/AES-256, SHA-256
/// MAC) and as older OpenSSL and Windows do (`-legacy`: RC2-40 certificates, 3DES key, SHA-1
/// MAC): the key decrypts what OpenSSL encrypts to the certificate; a wrong password is named.
#[test]
fn our_key_is_imported_from_pkcs12() {
    use postern_core::{MessageView, OpenRequest, Policy};
    use postern_smime::SmimeEnvelope;
    use postern_tests::run_ok;
    use std::process::Command;
    let s = setup();
    let us = s.pki.issue("gw@clinic.example", KeyKind::Rsa(2048));
    std::fs::write(s.dir.path().join("p12.pass"), "s3cret pass\n").unwrap();
    for (name, legacy) in [("modern.p12", false), ("legacy.p12", true)] {
        let mut cmd = Command::new("openssl");
        cmd.args(["pkcs12", "-export", "-passout", "pass:s3cret pass", "-in"])
            .arg(&us.cert)
            .arg("-inkey")
            .arg(&us.key)
            .arg("-certfile")
            .arg(&s.pki.ca_cert)
            .arg("-out")
            .arg(s.dir.path().join(name));
        if legacy {
            cmd.arg("-legacy");
        }
        run_ok(&mut cmd, b"");
        let text = format!(
            "[our]\ndomains = [\"clinic.example\"]\n\n[[our.keys]]\nstandard = \"smime\"\n\
             pkcs12 = \"{name}\"\npassword_file = \"p12.pass\"\n"
        );
        let dir = Directory::from_toml(&text, s.dir.path()).unwrap();
        let creds = dir.our_credentials(Standard::Smime);
        assert_eq!(creds.len(), 1, "{name}");
        // The chain came along (leaf first).
        let certs = postern_smime::keys::parse_certificates(&creds[0].certificate).unwrap();
        assert_eq!(certs.len(), 2, "{name}");
        assert!(validate(&dir, &backends(), SystemTime::now())
            .iter()
            .all(|f| f.severity == Severity::Warning));
        let sealed = run_ok(
            Command::new("openssl")
                .args(["cms", "-encrypt", "-aes-256-cbc"])
                .arg(&us.cert),
            &postern_tests::sample_message(1),
        );
        let view = MessageView::parse(&sealed).unwrap();
        let policy = Policy::default();
        let opened = SmimeEnvelope::new()
            .open_sync(&view, &OpenRequest::new(&creds, &policy))
            .unwrap();
        assert!(String::from_utf8_lossy(&opened.message).contains("Potassium"));

        let wrong = text.replace("p12.pass", "wrong.pass");
        std::fs::write(s.dir.path().join("wrong.pass"), "not it\n").unwrap();
        match Directory::from_toml(&wrong, s.dir.path()) {
            Err(DirectoryError::Invalid(p)) => {
                assert!(p[0].message.contains("password is wrong"), "{p:?}")
            }
            other => panic!("wrong password accepted: {:?}", other.is_ok()),
        }
    }
}

/// Key sources and their settings: unknown sources are refused with the line; sources that
/// find S/MIME certificates without any trust anchor to check them against are an error.
#[test]
fn key_sources_are_parsed_and_checked() {
    let s = setup();
    let bad = "[our]\ndomains = [\"clinic.example\"]\n\n[[partner]]\ndomain = \"p.test\"\n\
               standards = [\"smime\"]\npolicy = \"required\"\nkey_sources = [\"smimea\"]\n";
    match Directory::from_toml(bad, s.dir.path()) {
        Err(DirectoryError::Invalid(p)) => {
            assert!(
                p[0].message.contains("key_sources") && p[0].line == 8,
                "{p:?}"
            )
        }
        other => panic!("unknown source accepted: {:?}", other.is_ok()),
    }
    let text = "[our]\ndomains = [\"clinic.example\"]\n\n[[partner]]\ndomain = \"p.test\"\n\
                standards = [\"smime\"]\npolicy = \"required\"\n\
                key_sources = [\"ldap\", \"dns-cert\"]\nharvest = \"approve\"\n\
                revocation = \"required\"\n";
    let dir = Directory::from_toml(text, s.dir.path()).unwrap();
    let p = dir.partner_for(&d("p.test")).unwrap();
    use postern_router::{Harvest, KeySource};
    assert_eq!(
        p.key_sources,
        vec![KeySource::Ldap, KeySource::DnsCert, KeySource::Harvested]
    );
    assert_eq!(p.harvest, Harvest::Approve);
    assert_eq!(p.revocation, postern_core::RevocationPolicy::Required);
    let f = validate(&dir, &backends(), SystemTime::now());
    assert!(
        f.iter()
            .any(|x| x.severity == Severity::Error && x.message.contains("need trust anchors")),
        "{f:?}"
    );
    // With an anchor, the same entry is fine: keys are found when mail goes out.
    let anchored = text.replace(
        "[our]\ndomains = [\"clinic.example\"]\n",
        "[our]\ndomains = [\"clinic.example\"]\ntrust_anchors = [\"ca.pem\"]\n",
    );
    let dir = Directory::from_toml(&anchored, s.dir.path()).unwrap();
    let f = validate(&dir, &backends(), SystemTime::now());
    assert!(f.iter().all(|x| x.severity == Severity::Warning), "{f:?}");
    let bad_rev = text.replace("revocation = \"required\"", "revocation = \"maybe\"");
    assert!(Directory::from_toml(&bad_rev, s.dir.path()).is_err());
}

/// Issue 22.12: a key file is bounded by size (a 52 MB file cost check-config half a minute
/// and a gigabyte): past 4 MiB it is refused by name before it is parsed.
#[test]
fn an_oversized_certificate_file_is_refused_before_it_is_read_whole() {
    let tmp = tempfile::tempdir().unwrap();
    let big = tmp.path().join("huge.pem");
    let block = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";
    std::fs::write(&big, block.repeat(5 * 1024 * 1024 / block.len() + 1)).unwrap();
    let path = tmp.path().join("directory.toml");
    std::fs::write(
        &path,
        "[our]\ndomains = [\"clinic.example\"]\n\n[[partner]]\ndomain = \"big.test\"\n\
         standards = [\"smime\"]\npolicy = \"required\"\nsmime_certificates = [\"huge.pem\"]\n",
    )
    .unwrap();
    let err = Directory::load(&path).unwrap_err().to_string();
    assert!(
        err.contains("huge.pem") && err.contains("larger than 4 MiB"),
        "{err}"
    );
}

/// `[[our.dkim]]` (issue 26): keys of our own domains only, keys that can sign, each selector
/// once; mail from a subdomain is signed with its parent domain's keys, and a rotation signs
/// with both selectors.
#[test]
fn dkim_keys_are_checked_with_their_line_and_found_by_from_domain() {
    let tmp = tempfile::tempdir().unwrap();
    let key = |name: &str, args: &[&str]| {
        let p = tmp.path().join(name);
        let mut c = std::process::Command::new("openssl");
        c.arg(args[0]).arg("-out").arg(&p).args(&args[1..]);
        assert!(c
            .stderr(std::process::Stdio::null())
            .status()
            .unwrap()
            .success());
        p.display().to_string()
    };
    let rsa = key("rsa.pem", &["genrsa", "2048"]);
    let ed = key("ed.pem", &["genpkey", "-algorithm", "ed25519"]);
    let short = key("short.pem", &["genrsa", "1024"]);
    let entry = |domain: &str, selector: &str, key: &str| {
        format!("[[our.dkim]]\ndomain = \"{domain}\"\nselector = \"{selector}\"\nkey = \"{key}\"\n")
    };
    let head = "[our]\ndomains = [\"clinic.example\", \"lab.clinic.example\"]\n";
    let good = format!(
        "{head}{}{}",
        entry("clinic.example", "s1", &rsa),
        entry("clinic.example", "s2", &ed)
    );
    let dir = Directory::from_toml(&good, tmp.path()).unwrap();
    let sel = |d: &str| -> Vec<String> {
        dir.our
            .dkim_for(d)
            .iter()
            .map(|s| s.selector().to_string())
            .collect()
    };
    assert_eq!(sel("clinic.example"), ["s1", "s2"]);
    assert_eq!(
        sel("mail.lab.clinic.example"),
        ["s1", "s2"],
        "the nearest parent with keys"
    );
    assert!(sel("partner.example").is_empty());
    for (bad, why) in [
        (
            entry("partner.example", "s1", &rsa),
            "not one of [our] domains",
        ),
        (entry("clinic.example", "s1", &short), "under 2048 bits"),
        (entry("clinic.example", "s 1", &rsa), "not a DNS name"),
        (
            format!(
                "{}{}",
                entry("clinic.example", "s1", &rsa),
                entry("clinic.example", "s1", &ed)
            ),
            "listed twice",
        ),
    ] {
        let e = Directory::from_toml(&format!("{head}{bad}"), tmp.path()).unwrap_err();
        let text = e.to_string();
        assert!(
            text.contains(why) && text.contains("line "),
            "{why}: {text}"
        );
    }
}
