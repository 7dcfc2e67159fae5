//! Which of our identities signs a message (issue 24, D2): one that may sign now, bound to the
//! author's address or to the author's domain; never the first listed whatever it is.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is a failure report

use postern_core::{Address, Standard};
use postern_router::{Directory, Disposition, Envelope, Gateway, Outgoing};
use postern_tests::{run_ok, KeyKind, Pki};

fn plan(gateway: &Gateway, dir: &Directory, from: &str) -> Vec<Disposition> {
    let checked = gateway.check(dir.clone()).unwrap();
    let envelope = Envelope {
        mail_from: Some(Address::new(from).unwrap()),
        rcpt_to: vec![Address::new("results@lab.test").unwrap()],
    };
    let msg =
        format!("From: {from}\r\nTo: results@lab.test\r\nSubject: labs\r\n\r\nPotassium 4.1\r\n");
    postern_core::block_on(gateway.outbound(&checked, Outgoing::new(&envelope, msg.as_bytes())))
        .dispositions
}

/// The signer's certificate of an opaque or detached signature inside the sealed copy, as
/// OpenSSL reads it after decrypting with the partner's key; and whether OpenSSL verifies it
/// for S/MIME signing with our CA.
fn signer_of(sealed: &[u8], lab: &postern_tests::EndEntity, pki: &Pki) -> (String, bool) {
    let inner = lab.openssl_decrypt(sealed);
    let tmp = tempfile::tempdir().unwrap();
    let signers = tmp.path().join("signers.pem");
    let verified = std::process::Command::new("openssl")
        .args(["smime", "-verify", "-purpose", "smimesign", "-CAfile"])
        .arg(&pki.ca_cert)
        .arg("-signer")
        .arg(&signers)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write as _;
            c.stdin.take().unwrap().write_all(&inner)?;
            c.wait()
        })
        .unwrap()
        .success();
    let subject = String::from_utf8(run_ok(
        std::process::Command::new("openssl")
            .args(["x509", "-noout", "-subject", "-in"])
            .arg(&signers),
        b"",
    ))
    .unwrap();
    (subject, verified)
}

#[test]
fn the_signature_is_made_with_an_identity_that_may_sign_for_the_author() {
    let pki = Pki::new();
    let lab = pki.issue("gw@lab.test", KeyKind::Rsa(2048));
    // Our domain confidentiality authority, encipherment only, listed first; then our signer.
    let dca = pki.issue_with(
        "domain-confidentiality-authority@clinic.test",
        KeyKind::Rsa(2048),
        "keyEncipherment",
        "emailProtection",
        30,
    );
    let signer = pki.issue_with(
        "gateway@clinic.test",
        KeyKind::Rsa(2048),
        "digitalSignature",
        "emailProtection",
        30,
    );
    let other = pki.issue("gateway@hospital.test", KeyKind::Rsa(2048));
    let tmp = tempfile::tempdir().unwrap();
    let put = |name: &str, from: &std::path::Path| {
        std::fs::copy(from, tmp.path().join(name)).unwrap();
    };
    std::fs::write(tmp.path().join("ca.pem"), pki.ca_pem()).unwrap();
    put("lab.pem", &lab.cert);
    for (n, e) in [("dca", &dca), ("signer", &signer), ("other", &other)] {
        put(&format!("{n}.pem"), &e.cert);
        put(&format!("{n}.key"), &e.key);
    }
    let key = |n: &str| {
        format!(
            "[[our.keys]]\nstandard = \"smime\"\ncertificate = \"{n}.pem\"\nkey = \"{n}.key\"\n\n"
        )
    };
    let dir = |keys: &str| {
        Directory::from_toml(
            &format!(
                "[our]\ndomains = [\"clinic.test\", \"hospital.test\"]\ntrust_anchors = [\"ca.pem\"]\n\n{keys}\
                 [[partner]]\ndomain = \"lab.test\"\npolicy = \"required\"\nstandards = [\"smime\"]\n\
                 smime_certificates = [\"lab.pem\"]\nsign = true\n"
            ),
            tmp.path(),
        )
        .unwrap()
    };
    let gateway = Gateway::builder().without_inspection().build().unwrap();
    let sealed = |d: &[Disposition]| match d {
        [Disposition::Deliver {
            message,
            sealed: Some(Standard::Smime),
            ..
        }] => message.clone(),
        other => panic!("{other:?}"),
    };
    // The encipherment-only certificate comes first: the signer is the second.
    let d = dir(&(key("dca") + &key("signer") + &key("other")));
    let (subject, verified) = signer_of(&sealed(&plan(&gateway, &d, "dr@clinic.test")), &lab, &pki);
    assert!(subject.contains("gateway@clinic.test"), "{subject}");
    assert!(verified, "openssl smime -verify -purpose smimesign");
    // Two of our domains, one certificate each: each domain's mail is signed by its own.
    let (subject, verified) = signer_of(
        &sealed(&plan(&gateway, &d, "nurse@hospital.test")),
        &lab,
        &pki,
    );
    assert!(subject.contains("gateway@hospital.test"), "{subject}");
    assert!(verified);
    // The directory may say which of our domains a key signs for (a certificate that names
    // another domain); never a domain that is not ours.
    let with_domains = |domains: &str| {
        Directory::from_toml(
            &format!(
                "[our]\ndomains = [\"clinic.test\", \"hospital.test\"]\ntrust_anchors = [\"ca.pem\"]\n\n\
                 [[our.keys]]\nstandard = \"smime\"\ncertificate = \"other.pem\"\nkey = \"other.key\"\n\
                 domains = [{domains}]\n\n\
                 [[partner]]\ndomain = \"lab.test\"\npolicy = \"required\"\nstandards = [\"smime\"]\n\
                 smime_certificates = [\"lab.pem\"]\nsign = true\n"
            ),
            tmp.path(),
        )
    };
    let d = with_domains("\"clinic.test\"").unwrap();
    let (subject, _) = signer_of(&sealed(&plan(&gateway, &d, "dr@clinic.test")), &lab, &pki);
    assert!(subject.contains("gateway@hospital.test"), "{subject}");
    let refused = with_domains("\"lab.test\"").unwrap_err().to_string();
    assert!(refused.contains("not one of [our] domains"), "{refused}");
    // No identity of one of our domains may sign while a partner wants our mail signed: the
    // check warns, naming the domain and the partner (a warning: a domain used only for
    // receiving, or a key that expired, must not stop the gateway).
    let d = dir(&(key("dca") + &key("other")));
    let checked = gateway.check(d).unwrap();
    let said = format!("{:?}", checked.warnings());
    assert!(
        said.contains("clinic.test has no smime identity that may sign for it")
            && said.contains("lab.test"),
        "{said}"
    );
    // One that expires after the check: at sending time nothing of clinic.test may sign any
    // more, and the mail is held, never signed by another domain's key.
    let d = dir(&(key("dca") + &key("signer") + &key("other")));
    let checked = gateway.check(d).unwrap();
    let later = std::time::SystemTime::now() + std::time::Duration::from_secs(60 * 86_400);
    let gateway_later = Gateway::builder()
        .without_inspection()
        .clock(std::sync::Arc::new(postern_core::FixedClock(later)))
        .build()
        .unwrap();
    let envelope = Envelope {
        mail_from: Some(Address::new("dr@clinic.test").unwrap()),
        rcpt_to: vec![Address::new("results@lab.test").unwrap()],
    };
    let msg =
        b"From: dr@clinic.test\r\nTo: results@lab.test\r\nSubject: labs\r\n\r\nPotassium 4.1\r\n";
    let held =
        postern_core::block_on(gateway_later.outbound(&checked, Outgoing::new(&envelope, msg)))
            .dispositions;
    match &held[..] {
        // (Every key of ours has expired by then: the hold says none may sign.)
        [Disposition::Hold { reason, .. }] => {
            let r = reason.to_string();
            assert!(
                r.contains("no smime signing certificate for clinic.test")
                    || r.contains("no smime identity of ours may sign"),
                "{r}"
            );
            assert!(reason.is_temporary());
        }
        other => panic!("{other:?}"),
    }
}

/// RFC 3183 domain signatures: with our domain signing authority (domain-signing-authority@
/// the author's domain, or a parent of it) in the directory, it signs the gateway's signature
/// ahead of the gateway certificate, and the SignerInfo carries id-aa-signatureType =
/// id-sti-domainSig, as OpenSSL prints it; OpenSSL verifies the signature. Without an authority
/// the other identity signs, with no such attribute.
#[test]
fn our_domain_signing_authority_makes_a_marked_domain_signature() {
    let pki = Pki::new();
    let lab = pki.issue("gw@lab.test", KeyKind::Rsa(2048));
    let gateway_cert = pki.issue("gateway@clinic.test", KeyKind::Rsa(2048));
    let authority = pki.issue("domain-signing-authority@clinic.test", KeyKind::Rsa(2048));
    let ward = pki.issue(
        "domain-signing-authority@ward.clinic.test",
        KeyKind::Rsa(2048),
    );
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("ca.pem"), pki.ca_pem()).unwrap();
    std::fs::copy(&lab.cert, tmp.path().join("lab.pem")).unwrap();
    for (n, e) in [("gw", &gateway_cert), ("dsa", &authority), ("ward", &ward)] {
        std::fs::copy(&e.cert, tmp.path().join(format!("{n}.pem"))).unwrap();
        std::fs::copy(&e.key, tmp.path().join(format!("{n}.key"))).unwrap();
    }
    let dir = |names: &[&str]| {
        let keys: String = names
            .iter()
            .map(|n| {
                format!(
                    "[[our.keys]]\nstandard = \"smime\"\ncertificate = \"{n}.pem\"\nkey = \"{n}.key\"\n\n"
                )
            })
            .collect();
        Directory::from_toml(
            &format!(
                "[our]\ndomains = [\"clinic.test\", \"ward.clinic.test\"]\ntrust_anchors = [\"ca.pem\"]\n\n{keys}\
                 [[partner]]\ndomain = \"lab.test\"\npolicy = \"required\"\nstandards = [\"smime\"]\n\
                 smime_certificates = [\"lab.pem\"]\nsign = true\n"
            ),
            tmp.path(),
        )
        .unwrap()
    };
    let gateway = Gateway::builder().without_inspection().build().unwrap();
    let printed = |d: &Directory, from: &str| {
        let [Disposition::Deliver {
            message,
            sealed: Some(Standard::Smime),
            ..
        }] = &plan(&gateway, d, from)[..]
        else {
            panic!("not sealed")
        };
        let (subject, verified) = signer_of(message, &lab, &pki);
        let inner = lab.openssl_decrypt(message);
        let dump = String::from_utf8(run_ok(
            std::process::Command::new("openssl")
                .args(["cms", "-cmsout", "-print", "-inform", "SMIME"]),
            &inner,
        ))
        .unwrap();
        (subject, verified, dump)
    };
    // The authority is listed after the gateway certificate, and still signs: for its own
    // domain, and by name mapping for a subdomain of it.
    for from in ["dr@clinic.test", "nurse@ward.clinic.test"] {
        let (subject, verified, dump) = printed(&dir(&["gw", "dsa"]), from);
        assert!(
            subject.contains("domain-signing-authority@clinic.test"),
            "{subject}"
        );
        assert!(verified, "openssl smime -verify");
        assert!(dump.contains("1.2.840.113549.1.9.16.2.28"), "{dump}");
        assert!(dump.contains("1.2.840.113549.1.9.16.9.2"), "{dump}");
    }
    // Two authorities: the most specific one signs, whatever the order.
    let d = dir(&["dsa", "ward", "gw"]);
    let (subject, verified, _) = printed(&d, "nurse@ward.clinic.test");
    assert!(
        subject.contains("domain-signing-authority@ward.clinic.test"),
        "{subject}"
    );
    assert!(verified);
    let (subject, _, _) = printed(&d, "dr@clinic.test");
    assert!(
        subject.contains("domain-signing-authority@clinic.test"),
        "{subject}"
    );
    // No authority: the gateway certificate signs, and says nothing of a domain signature.
    let (subject, verified, dump) = printed(&dir(&["gw"]), "dr@clinic.test");
    assert!(subject.contains("gateway@clinic.test"), "{subject}");
    assert!(verified);
    assert!(!dump.contains("1.2.840.113549.1.9.16.2.28"), "{dump}");
}
