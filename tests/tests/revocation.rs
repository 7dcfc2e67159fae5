//! Revocation by CRL, against a CA run with `openssl ca` (issue, revoke, `-gencrl`) whose list
//! is served over HTTP on loopback: a certificate revoked after the first message is never
//! used for the second (held, not plaintext); a CRL server that is down holds under
//! `revocation = "required"` and proceeds under `best-effort`; a revoked signer is `invalid`.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is a failure report

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use postern_core::{Address, Domain, RevocationPolicy, SecureEnvelope, SignatureStatus, Standard};
use postern_relay::revocation::CrlChecker;
use postern_router::{
    Directory, Disposition, DomainPattern, Envelope, Inbound, InboundRouter, Partner,
    PartnerPolicy, Router,
};
use postern_smime::SmimeEnvelope;
use postern_tests::{checked, run_ok, sample_message};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A CA kept by `openssl ca`, with its CRL written where the HTTP server reads it.
struct Ca {
    dir: tempfile::TempDir,
}

impl Ca {
    fn new() -> Ca {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::create_dir(d.join("newcerts")).unwrap();
        std::fs::write(d.join("index.txt"), "").unwrap();
        std::fs::write(d.join("serial"), "1000\n").unwrap();
        std::fs::write(d.join("crlnumber"), "01\n").unwrap();
        std::fs::write(
            d.join("ca.cnf"),
            format!(
                "[ca]\ndefault_ca = CA_default\n[CA_default]\ndir = {}\ndatabase = $dir/index.txt\n\
                 new_certs_dir = $dir/newcerts\ncertificate = $dir/ca.pem\nprivate_key = $dir/ca.key\n\
                 serial = $dir/serial\ncrlnumber = $dir/crlnumber\ndefault_md = sha256\n\
                 default_days = 30\ndefault_crl_days = 1\npolicy = policy_any\nunique_subject = no\n\
                 [policy_any]\norganizationName = optional\ncommonName = supplied\n",
                d.display()
            ),
        )
        .unwrap();
        run_ok(
            Command::new("openssl")
                .args([
                    "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "30",
                ])
                .args(["-subj", "/O=CRL Test/CN=CRL Test CA", "-keyout"])
                .arg(d.join("ca.key"))
                .arg("-out")
                .arg(d.join("ca.pem"))
                .args(["-addext", "basicConstraints=critical,CA:TRUE"])
                .args(["-addext", "keyUsage=critical,keyCertSign,cRLSign"]),
            b"",
        );
        let ca = Ca { dir };
        ca.publish_crl();
        ca
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn ca_pem(&self) -> Vec<u8> {
        std::fs::read(self.path("ca.pem")).unwrap()
    }

    /// Issues a certificate for `email` whose CRL distribution point is
    /// `http://127.0.0.1:{port}/ca.crl`, or that names none when `port` is `None`.
    fn issue(&self, email: &str, port: Option<u16>) -> (PathBuf, PathBuf) {
        let cdp = port
            .map(|p| format!("crlDistributionPoints=URI:http://127.0.0.1:{p}/ca.crl\n"))
            .unwrap_or_default();
        self.issue_with(email, &cdp)
    }

    /// Issues a certificate for `email` with `extra` extension lines.
    fn issue_with(&self, email: &str, extra: &str) -> (PathBuf, PathBuf) {
        let key = self.path(&format!("{email}.key"));
        let csr = self.path(&format!("{email}.csr"));
        let cert = self.path(&format!("{email}.pem"));
        let ext = self.path(&format!("{email}.ext"));
        run_ok(
            Command::new("openssl")
                .args(["req", "-newkey", "rsa:2048", "-nodes", "-subj"])
                .arg(format!("/O=CRL Test/CN={email}"))
                .arg("-keyout")
                .arg(&key)
                .arg("-out")
                .arg(&csr),
            b"",
        );
        let eku = if extra.contains("extendedKeyUsage") {
            ""
        } else {
            "extendedKeyUsage=emailProtection\n"
        };
        let text = format!(
            "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\n\
             {eku}subjectAltName=email:{email}\n{extra}"
        );
        std::fs::write(&ext, text).unwrap();
        run_ok(
            Command::new("openssl")
                .args(["ca", "-batch", "-config"])
                .arg(self.path("ca.cnf"))
                .arg("-in")
                .arg(&csr)
                .arg("-out")
                .arg(&cert)
                .arg("-extfile")
                .arg(&ext),
            b"",
        );
        (cert, key)
    }

    fn revoke(&self, cert: &Path) {
        run_ok(
            Command::new("openssl")
                .args(["ca", "-config"])
                .arg(self.path("ca.cnf"))
                .arg("-revoke")
                .arg(cert)
                .args(["-crl_reason", "keyCompromise"]),
            b"",
        );
        self.publish_crl();
    }

    /// Writes a fresh CRL, DER, where the server reads it.
    fn publish_crl(&self) {
        run_ok(
            Command::new("openssl")
                .args(["ca", "-config"])
                .arg(self.path("ca.cnf"))
                .arg("-gencrl")
                .arg("-out")
                .arg(self.path("ca.crl.pem")),
            b"",
        );
        run_ok(
            Command::new("openssl")
                .args(["crl", "-outform", "DER", "-in"])
                .arg(self.path("ca.crl.pem"))
                .arg("-out")
                .arg(self.path("ca.crl")),
            b"",
        );
    }
}

/// Serves `file` to every GET on `listener` (read afresh each time).
async fn serve(listener: tokio::net::TcpListener, file: PathBuf) {
    loop {
        let Ok((mut s, _)) = listener.accept().await else {
            return;
        };
        let file = file.clone();
        tokio::spawn(async move {
            let mut buf = vec![0u8; 4096];
            let _ = s.read(&mut buf).await;
            let body = std::fs::read(&file).unwrap_or_default();
            let head = format!(
                "HTTP/1.0 200 OK\r\nContent-Type: application/pkix-crl\r\nContent-Length: {}\r\n\r\n",
                body.len()
            );
            let _ = s.write_all(head.as_bytes()).await;
            let _ = s.write_all(&body).await;
        });
    }
}

fn partner(domain: &str, cert: &Path, revocation: RevocationPolicy) -> Partner {
    let mut p = Partner::new(
        DomainPattern::Exact(Domain::new(domain).unwrap()),
        PartnerPolicy::Required,
        vec![Standard::Smime],
    );
    p.certificates
        .insert(Standard::Smime, vec![std::fs::read(cert).unwrap()]);
    p.revocation = revocation;
    p
}

/// `p` uses the certificate of `owner` on purpose (the directory check refuses a certificate
/// of another domain unless the entry says so).
fn sharing(mut p: Partner, owner: &str) -> Partner {
    p.certificate_domains.push(Domain::new(owner).unwrap());
    p
}

fn backends() -> Vec<Arc<dyn SecureEnvelope>> {
    vec![Arc::new(SmimeEnvelope::new())]
}

fn envelope(to: &str) -> Envelope {
    Envelope {
        mail_from: Some(Address::new("ada@clinic.example").unwrap()),
        rcpt_to: vec![Address::new(to).unwrap()],
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoked_or_unverifiable_partner_certificates_are_never_used() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    // A port nothing listens on: the "CRL server is down" case.
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let ca = Ca::new();
    tokio::spawn(serve(listener, ca.path("ca.crl")));

    let (good_cert, good_key) = ca.issue("gw@crl.test", Some(port));
    let (down_cert, _) = ca.issue("gw@down.test", Some(dead));
    let (none_cert, _) = ca.issue("gw@nocrl.test", None);

    let mut dir = Directory::default();
    dir.our.domains.push(Domain::new("clinic.example").unwrap());
    dir.our.trust_anchors.push(ca.ca_pem());
    dir.partners = vec![
        partner("crl.test", &good_cert, RevocationPolicy::BestEffort),
        partner("down.test", &down_cert, RevocationPolicy::BestEffort),
        sharing(
            partner("down-strict.test", &down_cert, RevocationPolicy::Required),
            "down.test",
        ),
        sharing(
            partner("nocrl-strict.test", &none_cert, RevocationPolicy::Required),
            "nocrl.test",
        ),
        partner("nocrl.test", &none_cert, RevocationPolicy::BestEffort),
    ];
    // Fetch on every message, so the revocation below is seen at once.
    let router = Router::new(backends())
        .with_revocation(Arc::new(CrlChecker::new().with_max_age(Duration::ZERO)));
    let msg = sample_message(1);

    let first = router
        .outbound(&checked(&dir), &envelope("a@crl.test"), &msg, None)
        .await;
    let Disposition::Deliver {
        message,
        sealed: Some(Standard::Smime),
        ..
    } = &first[0]
    else {
        panic!("not sealed while the certificate is good: {first:?}");
    };
    let opened = run_ok(
        Command::new("openssl")
            .args(["cms", "-decrypt", "-recip"])
            .arg(&good_cert)
            .arg("-inkey")
            .arg(&good_key),
        message,
    );
    assert!(String::from_utf8_lossy(&opened).contains("Potassium"));

    ca.revoke(&good_cert);
    let second = router
        .outbound(&checked(&dir), &envelope("a@crl.test"), &msg, None)
        .await;
    match &second[0] {
        Disposition::Hold { reason, .. } => {
            assert!(reason.to_string().contains("revoked"), "{reason}");
            assert!(reason.to_string().contains("KeyCompromise"), "{reason}");
        }
        other => panic!("revoked certificate: {other:?}"),
    }

    // The CRL server is down: best-effort seals, required holds (451, retried).
    let down = router
        .outbound(&checked(&dir), &envelope("a@down.test"), &msg, None)
        .await;
    assert!(
        matches!(
            &down[0],
            Disposition::Deliver {
                sealed: Some(Standard::Smime),
                ..
            }
        ),
        "{down:?}"
    );
    let strict = router
        .outbound(&checked(&dir), &envelope("a@down-strict.test"), &msg, None)
        .await;
    match &strict[0] {
        Disposition::Hold { reason, .. } => {
            assert!(reason.to_string().contains("unknown"), "{reason}")
        }
        other => panic!("required revocation with the CRL server down: {other:?}"),
    }

    // No distribution point: nothing to check under best-effort; unusable under required.
    let plain = router
        .outbound(&checked(&dir), &envelope("a@nocrl.test"), &msg, None)
        .await;
    assert!(
        matches!(
            &plain[0],
            Disposition::Deliver {
                sealed: Some(Standard::Smime),
                ..
            }
        ),
        "{plain:?}"
    );
    let strict = router
        .outbound(&checked(&dir), &envelope("a@nocrl-strict.test"), &msg, None)
        .await;
    match &strict[0] {
        Disposition::Bounce { reason, .. } => assert!(
            reason
                .to_string()
                .contains("names no OCSP responder or CRL"),
            "{reason}"
        ),
        other => panic!("required revocation, no CRL named: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_signer_is_invalid() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let ca = Ca::new();
    tokio::spawn(serve(listener, ca.path("ca.crl")));
    let (cert, key) = ca.issue("alice@signer.test", Some(port));

    let mut dir = Directory::default();
    dir.our.domains.push(Domain::new("clinic.example").unwrap());
    dir.our.trust_anchors.push(ca.ca_pem());
    dir.partners = vec![partner("signer.test", &cert, RevocationPolicy::BestEffort)];
    let inbound = InboundRouter::new(backends())
        .with_revocation(Arc::new(CrlChecker::new().with_max_age(Duration::ZERO)));

    let msg = String::from_utf8(sample_message(1))
        .unwrap()
        .replace("From: ", "X-Old-From: ");
    let msg = format!("From: alice@signer.test\r\n{msg}");
    let sign = || {
        run_ok(
            Command::new("openssl")
                .args(["cms", "-sign", "-signer"])
                .arg(&cert)
                .arg("-inkey")
                .arg(&key),
            msg.as_bytes(),
        )
    };
    let from = Address::new("alice@signer.test").unwrap();
    let status = |i: &Inbound| match i {
        Inbound::Deliver {
            report: Some(r), ..
        } => r.signatures[0].status.clone(),
        other => panic!("{other:?}"),
    };
    let before = inbound.inbound(&checked(&dir), Some(&from), &sign()).await;
    assert_eq!(status(&before), SignatureStatus::Valid);

    ca.revoke(&cert);
    let after = inbound.inbound(&checked(&dir), Some(&from), &sign()).await;
    match status(&after) {
        SignatureStatus::Invalid(why) => assert!(why.contains("revoked"), "{why}"),
        other => panic!("revoked signer: {other:?}"),
    }
}

/// An OCSP responder on loopback: each POSTed request is answered by `openssl ocsp` in file
/// mode (`-reqin`/`-respout`) from the CA's index, signed by `signer` (the CA, a delegated
/// responder, or — to test forgery — an unrelated key).
async fn serve_ocsp(
    listener: tokio::net::TcpListener,
    ca: PathBuf,
    signer: Arc<std::sync::Mutex<(PathBuf, PathBuf)>>,
) {
    let mut n = 0u32;
    loop {
        let Ok((mut s, _)) = listener.accept().await else {
            return;
        };
        n += 1;
        let (cert, key) = signer.lock().unwrap().clone();
        let ca = ca.clone();
        let req = ca.join(format!("req{n}.der"));
        let resp = ca.join(format!("resp{n}.der"));
        tokio::spawn(async move {
            let mut buf = Vec::new();
            let mut chunk = vec![0u8; 8192];
            // Read the header, then Content-Length bytes of body.
            let body = loop {
                let Ok(k) = s.read(&mut chunk).await else {
                    return;
                };
                if k == 0 {
                    return;
                }
                buf.extend_from_slice(&chunk[..k]);
                let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
                    continue;
                };
                let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
                let len: usize = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .and_then(|v| v.trim().parse().ok())
                    .unwrap_or(0);
                if buf.len() >= end + 4 + len {
                    break buf[end + 4..end + 4 + len].to_vec();
                }
            };
            std::fs::write(&req, &body).unwrap();
            run_ok(
                Command::new("openssl")
                    .args(["ocsp", "-ndays", "1", "-index"])
                    .arg(ca.join("index.txt"))
                    .arg("-CA")
                    .arg(ca.join("ca.pem"))
                    .arg("-rsigner")
                    .arg(&cert)
                    .arg("-rkey")
                    .arg(&key)
                    .arg("-reqin")
                    .arg(&req)
                    .arg("-respout")
                    .arg(&resp),
                b"",
            );
            let answer = std::fs::read(&resp).unwrap();
            let head = format!(
                "HTTP/1.0 200 OK\r\nContent-Type: application/ocsp-response\r\nContent-Length: {}\r\n\r\n",
                answer.len()
            );
            let _ = s.write_all(head.as_bytes()).await;
            let _ = s.write_all(&answer).await;
        });
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ocsp_answers_from_openssl_decide_and_forged_ones_do_not() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let ca = Ca::new();
    let aia = |p: u16| format!("authorityInfoAccess=OCSP;URI:http://127.0.0.1:{p}/\n");
    let (cert, key) = ca.issue_with("gw@ocsp.test", &aia(port));
    let (down, _) = ca.issue_with("gw@ocsp-down.test", &aia(dead));
    let delegate = ca.issue_with("ocsp@ca.test", "extendedKeyUsage=OCSPSigning\n");
    let other_ca = Ca::new();
    let stranger = other_ca.issue_with("ocsp@elsewhere.test", "extendedKeyUsage=OCSPSigning\n");
    let signer = Arc::new(std::sync::Mutex::new((
        ca.path("ca.pem"),
        ca.path("ca.key"),
    )));
    tokio::spawn(serve_ocsp(listener, ca.path(""), signer.clone()));

    let mut dir = Directory::default();
    dir.our.domains.push(Domain::new("clinic.example").unwrap());
    dir.our.trust_anchors.push(ca.ca_pem());
    dir.partners = vec![
        partner("ocsp.test", &cert, RevocationPolicy::Required),
        partner("ocsp-down.test", &down, RevocationPolicy::BestEffort),
        sharing(
            partner("ocsp-down-strict.test", &down, RevocationPolicy::Required),
            "ocsp-down.test",
        ),
    ];
    let router = Router::new(backends())
        .with_revocation(Arc::new(CrlChecker::new().with_max_age(Duration::ZERO)));
    let msg = sample_message(1);
    let send = |to: &'static str| {
        let router = &router;
        let dir = &dir;
        let msg = &msg;
        async move {
            router
                .outbound(&checked(dir), &envelope(to), msg, None)
                .await
                .remove(0)
        }
    };

    // Good, signed by the CA: sealed, and OpenSSL reads it.
    match send("a@ocsp.test").await {
        Disposition::Deliver {
            message,
            sealed: Some(Standard::Smime),
            ..
        } => {
            let opened = run_ok(
                Command::new("openssl")
                    .args(["cms", "-decrypt", "-recip"])
                    .arg(&cert)
                    .arg("-inkey")
                    .arg(&key),
                &message,
            );
            assert!(String::from_utf8_lossy(&opened).contains("Potassium"));
        }
        other => panic!("good OCSP answer: {other:?}"),
    }
    // Good, signed by a responder the CA delegated: sealed.
    *signer.lock().unwrap() = delegate.clone();
    assert!(
        matches!(
            send("a@ocsp.test").await,
            Disposition::Deliver {
                sealed: Some(_),
                ..
            }
        ),
        "delegated responder"
    );
    // "Good", signed by a responder of another CA: a forgery, so the status is unknown and a
    // required partner's mail is held.
    *signer.lock().unwrap() = stranger;
    match send("a@ocsp.test").await {
        Disposition::Hold { reason, .. } => {
            assert!(reason.to_string().contains("not authentic"), "{reason}")
        }
        other => panic!("forged OCSP answer: {other:?}"),
    }
    // Revoked at the CA: held, never sealed to it.
    *signer.lock().unwrap() = (ca.path("ca.pem"), ca.path("ca.key"));
    ca.revoke(&cert);
    match send("a@ocsp.test").await {
        Disposition::Hold { reason, .. } => {
            assert!(reason.to_string().contains("revoked"), "{reason}")
        }
        other => panic!("revoked by OCSP: {other:?}"),
    }
    // Responder down: best-effort proceeds, required holds.
    assert!(
        matches!(
            send("a@ocsp-down.test").await,
            Disposition::Deliver {
                sealed: Some(_),
                ..
            }
        ),
        "responder down, best-effort"
    );
    match send("a@ocsp-down-strict.test").await {
        Disposition::Hold { reason, .. } => {
            assert!(reason.to_string().contains("OCSP"), "{reason}")
        }
        other => panic!("responder down, required: {other:?}"),
    }
}

/// A signer whose message omits its intermediate: the intermediate is fetched from the
/// caIssuers URL in the signer's certificate and the signature becomes trusted (the anchor is
/// still ours to configure); without the fetch it is not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_intermediate_left_out_is_fetched_from_the_signers_aia() {
    let root = postern_tests::Pki::new();
    let int = root.subordinate("Partner Issuing CA", "");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let int_der = run_ok(
        Command::new("openssl")
            .args(["x509", "-outform", "DER", "-in"])
            .arg(&int.ca_cert),
        b"",
    );
    let served = root.file("int.der", &int_der);
    tokio::spawn(serve(listener, served));
    let signer = int.issue_with_extensions(
        "alice@aia.test",
        &format!("authorityInfoAccess=caIssuers;URI:http://127.0.0.1:{port}/int.der"),
    );
    // openssl cms -sign includes only the signer's own certificate.
    let msg = format!(
        "From: alice@aia.test\r\n{}",
        String::from_utf8(sample_message(1))
            .unwrap()
            .replace("From: ", "X-Old-From: ")
    );
    let signed = run_ok(
        Command::new("openssl")
            .args(["cms", "-sign", "-signer"])
            .arg(&signer.cert)
            .arg("-inkey")
            .arg(&signer.key),
        msg.as_bytes(),
    );
    let chain_of = |i: &Inbound| match i {
        Inbound::Deliver {
            report: Some(r), ..
        } => r.signatures[0].chain.clone(),
        other => panic!("{other:?}"),
    };
    let mut dir = Directory::default();
    dir.our.domains.push(Domain::new("clinic.example").unwrap());
    dir.our.trust_anchors.push(root.ca_pem());
    let from = Address::new("alice@aia.test").unwrap();
    // From a stranger, the URL in the certificate is not fetched at all.
    let crl_checked = InboundRouter::new(backends())
        .with_revocation(Arc::new(CrlChecker::new().allow_private_issuer_urls()));
    let stranger = crl_checked
        .inbound(&checked(&dir), Some(&from), &signed)
        .await;
    assert!(matches!(
        chain_of(&stranger),
        postern_core::ChainStatus::Untrusted(_)
    ));
    // From a partner (S/MIME, anchored by our CA list), it is.
    let mut p = Partner::new(
        DomainPattern::Exact(Domain::new("aia.test").unwrap()),
        PartnerPolicy::Preferred,
        vec![Standard::Smime],
    );
    p.revocation = RevocationPolicy::BestEffort;
    dir.partners.push(p);
    let without = InboundRouter::new(backends());
    let before = without.inbound(&checked(&dir), Some(&from), &signed).await;
    assert!(
        matches!(chain_of(&before), postern_core::ChainStatus::Untrusted(_)),
        "trusted without the intermediate"
    );
    // By default a caIssuers URL into our own network is not fetched even for a partner
    // (anyone can forge a partner's envelope sender).
    let guarded = InboundRouter::new(backends()).with_revocation(Arc::new(CrlChecker::new()));
    let refused = guarded.inbound(&checked(&dir), Some(&from), &signed).await;
    assert!(
        matches!(chain_of(&refused), postern_core::ChainStatus::Untrusted(_)),
        "fetched a loopback caIssuers URL by default"
    );
    // Allowed (a closed network, as here on loopback): fetched, and the signature is trusted.
    let with = InboundRouter::new(backends())
        .with_revocation(Arc::new(CrlChecker::new().allow_private_issuer_urls()));
    let after = with.inbound(&checked(&dir), Some(&from), &signed).await;
    assert!(
        matches!(chain_of(&after), postern_core::ChainStatus::Trusted { .. }),
        "{:?}",
        chain_of(&after)
    );
}
