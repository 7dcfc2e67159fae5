//! Partner keys found where the partner publishes them: the OpenPGP Web Key Directory over
//! HTTPS (a verified certificate, on loopback), with the local-part hash GnuPG computes. Mail
//! to an address whose key is published is sealed to it and read by gpg; a key for another
//! address in the same answer is not used; an unpublished address is refused (never plain to a
//! required partner); a server that is down holds the mail.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is a failure report

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use postern_core::{Address, Domain, SecureEnvelope, Standard};
use postern_openpgp::OpenPgpEnvelope;
use postern_relay::wkd::Wkd;
use postern_router::{
    Directory, Disposition, DomainPattern, Envelope, KeySource, Partner, PartnerPolicy, Router,
};
use postern_tests::{checked, sample_message, Gpg, PgpKind, Pki};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::{self, RootCertStore};

fn armored_message(sealed: &[u8]) -> Vec<u8> {
    let text = String::from_utf8_lossy(sealed);
    let start = text
        .find("-----BEGIN PGP MESSAGE-----")
        .expect("armored message");
    let end = text.find("-----END PGP MESSAGE-----").expect("armor end") + 25;
    text.get(start..end).expect("armor").as_bytes().to_vec()
}

fn partner(domain: &str) -> Partner {
    let mut p = Partner::new(
        DomainPattern::Exact(Domain::new(domain).unwrap()),
        PartnerPolicy::Required,
        vec![Standard::OpenPgp],
    );
    p.key_sources.push(KeySource::Wkd);
    p
}

/// A TLS client that trusts the test PKI's CA only.
fn client_trusting(pki: &Pki) -> tokio_rustls::TlsConnector {
    let mut roots = RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(&pki.ca_cert).unwrap() {
        roots.add(c.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let client = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    tokio_rustls::TlsConnector::from(Arc::new(client))
}

/// A key source on postern-trust's own runtime (what the ready constructors return) finds keys
/// whatever the caller's executor: a tokio runtime built without I/O or timers (the one in the
/// Gateway's documentation, where WKD panicked with "timers are disabled"), and no tokio at
/// all (postern_core::block_on, as a thread-per-connection server uses it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_source_on_its_own_runtime_works_under_any_executor() {
    use postern_core::KeyStore;
    let pki = Pki::new();
    let alice = Gpg::new();
    alice.generate("Alice <alice@wkd.test>", PgpKind::Ed25519, "never");
    let listing =
        String::from_utf8(alice.ok(&["--with-wkd-hash", "--list-keys", "alice@wkd.test"], b""))
            .unwrap();
    let hash = listing
        .lines()
        .find_map(|l| l.trim().strip_suffix("@wkd.test").filter(|h| h.len() == 32))
        .expect("wkd hash in gpg's listing")
        .to_string();
    let tls = pki.issue_tls_for(&["openpgpkey.wkd.test"]);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(postern_tests::https::serve(
        listener,
        postern_tests::https::acceptor(&tls),
        vec![(
            format!("/.well-known/openpgpkey/wkd.test/hu/{hash}?l=alice"),
            alice.export("alice@wkd.test"),
        )],
    ));
    let wkd = postern_trust::runtime::OwnRuntime::new(
        Wkd::new(client_trusting(&pki))
            .with_host("openpgpkey.wkd.test", addr)
            .with_ttl(Duration::ZERO),
    )
    .unwrap();
    let found = tokio::task::spawn_blocking(move || {
        let a = Address::new("alice@wkd.test").unwrap();
        let bare = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let on_bare_tokio = bare
            .block_on(wkd.recipient_certificates(Standard::OpenPgp, &a))
            .unwrap();
        let on_no_tokio =
            postern_core::block_on(wkd.recipient_certificates(Standard::OpenPgp, &a)).unwrap();
        (on_bare_tokio.len(), on_no_tokio.len())
    })
    .await
    .unwrap();
    assert_eq!(found, (1, 1), "alice's key, found from both executors");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_published_in_the_web_key_directory_are_found_and_used() {
    let pki = Pki::new();
    let alice = Gpg::new();
    alice.generate("Alice <alice@wkd.test>", PgpKind::Ed25519, "never");
    let mallory = Gpg::new();
    mallory.generate("Mallory <mallory@evil.test>", PgpKind::Ed25519, "never");
    // GnuPG's own WKD hash for each address decides the path served.
    let path_for = |gpg: &Gpg, local: &str| {
        let address = format!("{local}@wkd.test");
        let listing =
            String::from_utf8(gpg.ok(&["--with-wkd-hash", "--list-keys", &address], b"")).unwrap();
        let hash = listing
            .lines()
            .find_map(|l| l.trim().strip_suffix("@wkd.test").filter(|h| h.len() == 32))
            .expect("wkd hash in gpg's listing")
            .to_string();
        format!("/.well-known/openpgpkey/wkd.test/hu/{hash}?l={local}")
    };
    let path = path_for(&alice, "alice");
    // A key its owner revoked (GnuPG's own revocation certificate, imported), published all
    // the same: the revocation travels with the key and it is never used.
    let revoked = Gpg::new();
    let fpr = revoked.generate("Gone <gone@wkd.test>", PgpKind::Ed25519, "never");
    let rev = std::fs::read_to_string(
        revoked
            .home
            .path()
            .join("openpgp-revocs.d")
            .join(format!("{fpr}.rev")),
    )
    .unwrap()
    .replace(":-----BEGIN", "-----BEGIN");
    revoked.import(rev.as_bytes());
    let revoked_path = path_for(&revoked, "gone");
    // The answer also carries someone else's key, which must not be used.
    let mut keyring = alice.export("alice@wkd.test");
    keyring.extend(mallory.export("mallory@evil.test"));

    // direct.test has no openpgpkey. host: its keys are at the domain itself (direct method).
    let dee = Gpg::new();
    dee.generate("Dee <dee@direct.test>", PgpKind::Ed25519, "never");
    let dee_listing =
        String::from_utf8(dee.ok(&["--with-wkd-hash", "--list-keys", "dee@direct.test"], b""))
            .unwrap();
    let dee_hash = dee_listing
        .lines()
        .find_map(|l| {
            l.trim()
                .strip_suffix("@direct.test")
                .filter(|h| h.len() == 32)
        })
        .expect("wkd hash")
        .to_string();
    let direct_path = format!("/.well-known/openpgpkey/hu/{dee_hash}?l=dee");
    let tls = pki.issue_tls_for(&["openpgpkey.wkd.test", "wkd.test", "direct.test"]);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(postern_tests::https::serve(
        listener,
        postern_tests::https::acceptor(&tls),
        vec![
            (path, keyring),
            (revoked_path, revoked.export("gone@wkd.test")),
            (direct_path, dee.export("dee@direct.test")),
        ],
    ));
    let dead: SocketAddr = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };

    let wkd = Wkd::new(client_trusting(&pki))
        .with_host("openpgpkey.wkd.test", addr)
        .with_host("wkd.test", addr)
        .with_host("direct.test", addr)
        .with_host("openpgpkey.down.test", dead)
        .with_host("down.test", dead)
        .with_ttl(Duration::ZERO);

    let mut dir = Directory::default();
    dir.our.domains.push(Domain::new("clinic.example").unwrap());
    dir.partners = vec![
        partner("wkd.test"),
        partner("down.test"),
        partner("direct.test"),
    ];
    let backends: Vec<Arc<dyn SecureEnvelope>> = vec![Arc::new(OpenPgpEnvelope::new())];
    let router = Router::new(backends).with_key_store(KeySource::Wkd, Arc::new(wkd));
    let msg = sample_message(1);
    let send = |to: &str| {
        let env = Envelope {
            mail_from: Some(Address::new("ada@clinic.example").unwrap()),
            rcpt_to: vec![Address::new(to).unwrap()],
        };
        let (router, dir, msg) = (&router, &dir, &msg);
        async move {
            router
                .outbound(&checked(dir), &env, msg, None)
                .await
                .remove(0)
        }
    };

    match send("alice@wkd.test").await {
        Disposition::Deliver {
            message,
            sealed: Some(Standard::OpenPgp),
            ..
        } => {
            let (plain, err, ok) = alice.decrypt(&armored_message(&message));
            assert!(ok, "gpg: {err}");
            assert!(String::from_utf8_lossy(&plain).contains("Potassium"));
            let (_, _, ok) = mallory.decrypt(&armored_message(&message));
            assert!(
                !ok,
                "sealed to a key the directory published for another address"
            );
        }
        other => panic!("published key: {other:?}"),
    }
    match send("gone@wkd.test").await {
        Disposition::Bounce { reason, .. } => {
            assert!(reason.to_string().contains("revoked"), "{reason}")
        }
        other => panic!("revoked published key: {other:?}"),
    }
    match send("dee@direct.test").await {
        Disposition::Deliver {
            message,
            sealed: Some(Standard::OpenPgp),
            ..
        } => {
            let (_, err, ok) = dee.decrypt(&armored_message(&message));
            assert!(ok, "direct method: gpg: {err}");
        }
        other => panic!("direct method: {other:?}"),
    }
    match send("nobody@wkd.test").await {
        Disposition::Bounce { reason, .. } => {
            assert!(
                reason.to_string().contains("no openpgp key published"),
                "{reason}"
            )
        }
        other => panic!("unpublished address: {other:?}"),
    }
    match send("alice@down.test").await {
        Disposition::Hold { reason, .. } => {
            assert!(reason.to_string().contains("Web Key Directory"), "{reason}")
        }
        other => panic!("server down: {other:?}"),
    }
}

/// Serves whatever `body` holds now at every path, over TLS.
async fn serve_changing(
    listener: tokio::net::TcpListener,
    acceptor: tokio_rustls::TlsAcceptor,
    body: Arc<std::sync::Mutex<Vec<u8>>>,
) {
    loop {
        let Ok((tcp, _)) = listener.accept().await else {
            return;
        };
        let (acceptor, body) = (acceptor.clone(), body.lock().unwrap().clone());
        tokio::spawn(async move {
            let Ok(mut tls) = acceptor.accept(tcp).await else {
                return;
            };
            let mut buf = vec![0u8; 4096];
            let _ = tls.read(&mut buf).await;
            let head = format!(
                "HTTP/1.0 200 OK\r\nContent-Type: application/pkcs7-mime\r\nContent-Length: {}\r\n\r\n",
                body.len()
            );
            let _ = tls.write_all(head.as_bytes()).await;
            let _ = tls.write_all(&body).await;
            let _ = tls.shutdown().await;
        });
    }
}

fn tls_pair(pki: &Pki, names: &[&str]) -> (rustls::ServerConfig, rustls::ClientConfig) {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let tls = pki.issue_tls_for(names);
    let chain = CertificateDer::pem_file_iter(&tls.cert)
        .unwrap()
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    let key = PrivateKeyDer::from_pem_file(&tls.key).unwrap();
    let server = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .unwrap();
    let mut roots = RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(&pki.ca_cert).unwrap() {
        roots.add(c.unwrap()).unwrap();
    }
    let client = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    (server, client)
}

/// A trust community's bundle, refreshed over HTTPS: once it carries the partner's CA, that
/// partner's signature (which was untrusted) is trusted after the directory reloads — and only
/// for that partner, not for a stranger with a certificate from the same CA.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refreshed_trust_bundle_makes_a_partner_signature_trusted() {
    use postern_relay::bundles::{refresh, TrustBundle};
    use postern_router::{Inbound, InboundRouter};
    use postern_smime::SmimeEnvelope;
    use postern_tests::{run_ok, KeyKind};
    use std::process::Command;

    let web = Pki::new();
    let community = Pki::new();
    let unrelated = Pki::new();
    let p7b = |pki: &Pki| {
        run_ok(
            Command::new("openssl")
                .args(["crl2pkcs7", "-nocrl", "-outform", "DER", "-certfile"])
                .arg(&pki.ca_cert),
            b"",
        )
    };
    let body = Arc::new(std::sync::Mutex::new(p7b(&unrelated)));
    let (server, client) = tls_pair(&web, &["localhost"]);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(serve_changing(
        listener,
        tokio_rustls::TlsAcceptor::from(Arc::new(server)),
        body.clone(),
    ));
    let tls = tokio_rustls::TlsConnector::from(Arc::new(client));

    let dir = tempfile::tempdir().unwrap();
    let bundle = TrustBundle {
        url: format!("https://localhost:{port}/community.p7b"),
        file: "community.p7b".into(),
        refresh_hours: 24,
    };
    assert!(
        refresh(&bundle, dir.path(), &tls).await.unwrap(),
        "first download"
    );
    assert!(
        !refresh(&bundle, dir.path(), &tls).await.unwrap(),
        "unchanged"
    );
    let directory = "[our]\ndomains = [\"clinic.example\"]\n\n[[partner]]\ndomain = \"partner.test\"\n\
                     standards = [\"smime\"]\npolicy = \"preferred\"\ntrust_anchors = [\"community.p7b\"]\n";
    let load = || Directory::from_toml(directory, dir.path()).unwrap();

    let sign = |email: &str| {
        let signer = community.issue(email, KeyKind::Rsa(2048));
        let msg = format!(
            "From: {email}\r\n{}",
            String::from_utf8(sample_message(1))
                .unwrap()
                .replace("From: ", "X-Old-From: ")
        );
        run_ok(
            Command::new("openssl")
                .args(["cms", "-sign", "-signer"])
                .arg(&signer.cert)
                .arg("-inkey")
                .arg(&signer.key),
            msg.as_bytes(),
        )
    };
    let inbound = InboundRouter::new(vec![Arc::new(SmimeEnvelope::new())]);
    let chain = |i: Inbound| match i {
        Inbound::Deliver {
            report: Some(r), ..
        } => r.signatures[0].chain.clone(),
        other => panic!("{other:?}"),
    };
    let partner_mail = sign("alice@partner.test");
    let from = Address::new("alice@partner.test").unwrap();
    let before = chain(
        inbound
            .inbound(&checked(&load()), Some(&from), &partner_mail)
            .await,
    );
    assert!(
        matches!(before, postern_core::ChainStatus::Untrusted(_)),
        "{before:?}"
    );

    *body.lock().unwrap() = p7b(&community);
    assert!(
        refresh(&bundle, dir.path(), &tls).await.unwrap(),
        "new bundle"
    );
    let after = chain(
        inbound
            .inbound(&checked(&load()), Some(&from), &partner_mail)
            .await,
    );
    assert!(
        matches!(after, postern_core::ChainStatus::Trusted { .. }),
        "{after:?}"
    );

    let stranger_mail = sign("eve@stranger.test");
    let eve = Address::new("eve@stranger.test").unwrap();
    let stranger = chain(
        inbound
            .inbound(&checked(&load()), Some(&eve), &stranger_mail)
            .await,
    );
    assert!(
        !matches!(stranger, postern_core::ChainStatus::Trusted { .. }),
        "a partner's anchor trusted for a stranger: {stranger:?}"
    );

    // A bundle without any CA certificate leaves the file in force.
    *body.lock().unwrap() = b"not a bundle".to_vec();
    assert!(refresh(&bundle, dir.path(), &tls).await.is_err());
    let still = chain(
        inbound
            .inbound(&checked(&load()), Some(&from), &partner_mail)
            .await,
    );
    assert!(matches!(still, postern_core::ChainStatus::Trusted { .. }));
}

/// Certificates from DNS CERT records (RFC 4398, as the Direct Project publishes them) on a
/// real DNS server (dnsmasq on loopback): address-bound first, then domain-bound; an answer
/// too large for a UDP datagram comes over TCP; a published certificate that does not chain
/// to our anchors is never a recipient; a DNS server that does not answer holds the mail.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificates_in_dns_cert_records_are_found_and_checked() {
    use postern_relay::dnscert::DnsCert;
    use postern_smime::SmimeEnvelope;
    use postern_tests::{run_ok, KeyKind};
    use std::process::{Command, Stdio};

    let pki = Pki::new();
    let rogue = Pki::new();
    // A long comment makes the record larger than any UDP answer dnsmasq sends (1232 bytes).
    let padding = format!("nsComment={}", "x".repeat(1500));
    let alice = pki.issue_with_extensions("alice@cert.test", &padding);
    let domain_gw = pki.issue("gw@dom.test", KeyKind::Rsa(2048));
    let eve = rogue.issue("eve@cert.test", KeyKind::Rsa(2048));
    let rdata = |e: &postern_tests::EndEntity| {
        let der = run_ok(
            Command::new("openssl")
                .args(["x509", "-outform", "DER", "-in"])
                .arg(&e.cert),
            b"",
        );
        let mut rd = vec![0, 1, 0, 0, 0]; // PKIX, key tag 0, algorithm 0
        rd.extend(der);
        rd.iter().map(|b| format!("{b:02x}")).collect::<String>()
    };
    assert!(
        rdata(&alice).len() / 2 > 1232,
        "the record must not fit a UDP answer"
    );
    let port = {
        let l = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let mut dns = Command::new("dnsmasq")
        .args([
            "--keep-in-foreground",
            &format!("--port={port}"),
            "--listen-address=127.0.0.1",
            "--bind-interfaces",
            "--no-resolv",
            "--no-hosts",
            "--pid-file=",
            "--user=root",
            "--local=/test/",
            &format!("--dns-rr=alice.cert.test,37,{}", rdata(&alice)),
            &format!("--dns-rr=dom.test,37,{}", rdata(&domain_gw)),
            &format!("--dns-rr=eve.cert.test,37,{}", rdata(&eve)),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect(
            "dnsmasq (Debian package dnsmasq-base) must be installed: bash scripts/test does it",
        );
    // Ready when it takes TCP (it binds TCP and UDP before serving either). A fixed pause was
    // not always enough while the rest of the suite ran: the first query timed out.
    postern_tests::relay::wait_for_port(port);

    let store = |dns: &str| DnsCert::new(postern_relay::mx::resolver(dns).unwrap());
    let mut dir = Directory::default();
    dir.our.domains.push(Domain::new("clinic.example").unwrap());
    dir.our.trust_anchors.push(pki.ca_pem());
    let mut partners = Vec::new();
    for d in ["cert.test", "dom.test"] {
        let mut p = Partner::new(
            DomainPattern::Exact(Domain::new(d).unwrap()),
            PartnerPolicy::Required,
            vec![Standard::Smime],
        );
        p.key_sources.push(KeySource::DnsCert);
        partners.push(p);
    }
    dir.partners = partners;
    let backends = || -> Vec<Arc<dyn SecureEnvelope>> { vec![Arc::new(SmimeEnvelope::new())] };
    let router = Router::new(backends()).with_key_store(
        KeySource::DnsCert,
        Arc::new(store(&format!("127.0.0.1:{port}"))),
    );
    let msg = sample_message(1);
    let env = |to: &str| Envelope {
        mail_from: Some(Address::new("ada@clinic.example").unwrap()),
        rcpt_to: vec![Address::new(to).unwrap()],
    };

    // Address-bound (over TCP: too large for UDP).
    match router
        .outbound(&checked(&dir), &env("alice@cert.test"), &msg, None)
        .await
        .remove(0)
    {
        Disposition::Deliver {
            message,
            sealed: Some(Standard::Smime),
            ..
        } => {
            assert!(String::from_utf8_lossy(&alice.openssl_decrypt(&message)).contains("Potassium"));
        }
        other => panic!("address-bound CERT: {other:?}"),
    }
    // Domain-bound, for any address of the domain.
    match router
        .outbound(&checked(&dir), &env("bob@dom.test"), &msg, None)
        .await
        .remove(0)
    {
        Disposition::Deliver {
            message,
            sealed: Some(Standard::Smime),
            ..
        } => {
            assert!(
                String::from_utf8_lossy(&domain_gw.openssl_decrypt(&message)).contains("Potassium")
            );
        }
        other => panic!("domain-bound CERT: {other:?}"),
    }
    // Published, but not under our anchors: refused, never sealed to it nor sent plain.
    match router
        .outbound(&checked(&dir), &env("eve@cert.test"), &msg, None)
        .await
        .remove(0)
    {
        Disposition::Bounce { reason, .. } => {
            assert!(reason.to_string().contains("trust anchors"), "{reason}")
        }
        other => panic!("unanchored CERT: {other:?}"),
    }
    let _ = dns.kill();
    let _ = dns.wait();

    // A DNS server that does not answer: held (451), not refused, not plain.
    let silent = Router::new(backends()).with_key_store(
        KeySource::DnsCert,
        Arc::new(store(&format!("127.0.0.1:{port}"))),
    );
    match silent
        .outbound(&checked(&dir), &env("carol@cert.test"), &msg, None)
        .await
        .remove(0)
    {
        Disposition::Hold { reason, .. } => {
            assert!(reason.to_string().contains("DNS CERT"), "{reason}")
        }
        other => panic!("DNS down: {other:?}"),
    }
}

/// A private OpenLDAP server on loopback, with its entries loaded by `ldapadd`.
struct Slapd {
    child: std::process::Child,
    _dir: tempfile::TempDir,
}

impl Drop for Slapd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn slapd(port: u16, ldif: &str) -> Slapd {
    use std::process::{Command, Stdio};
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::create_dir(d.join("db")).unwrap();
    let conf = format!(
        "include /etc/ldap/schema/core.schema\ninclude /etc/ldap/schema/cosine.schema\n\
         include /etc/ldap/schema/inetorgperson.schema\nmodulepath /usr/lib/ldap\n\
         moduleload back_mdb\npidfile {0}/slapd.pid\ndatabase mdb\nmaxsize 10485760\n\
         suffix \"dc=ldap,dc=test\"\nrootdn \"cn=admin,dc=ldap,dc=test\"\nrootpw secret\n\
         directory {0}/db\naccess to * by * read\n",
        d.display()
    );
    std::fs::write(d.join("slapd.conf"), conf).unwrap();
    let slapd = ["/usr/sbin/slapd", "slapd"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())
        .unwrap_or("slapd");
    let child = Command::new(slapd)
        .arg("-f")
        .arg(d.join("slapd.conf"))
        .arg("-h")
        .arg(format!("ldap://127.0.0.1:{port}/"))
        .args(["-d", "0"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("slapd (Debian package slapd) must be installed: bash scripts/test does it");
    let server = Slapd { child, _dir: dir };
    let url = format!("ldap://127.0.0.1:{port}/");
    for _ in 0..50 {
        std::thread::sleep(Duration::from_millis(100));
        let ok = Command::new("ldapsearch")
            .args(["-x", "-H", &url, "-s", "base", "-b", ""])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if ok {
            break;
        }
    }
    let file = server._dir.path().join("entries.ldif");
    std::fs::write(&file, ldif).unwrap();
    postern_tests::run_ok(
        Command::new("ldapadd")
            .args([
                "-x",
                "-H",
                &url,
                "-D",
                "cn=admin,dc=ldap,dc=test",
                "-w",
                "secret",
                "-f",
            ])
            .arg(&file),
        b"",
    );
    server
}

/// Certificates from the partner's LDAP directory found through its `_ldap._tcp` SRV record
/// (dnsmasq) on a real OpenLDAP server: `userCertificate;binary` and a PKCS#7
/// `userSMIMECertificate`; an address without an entry is refused; a directory that is down
/// holds the mail.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificates_in_the_partners_ldap_directory_are_found() {
    use base64::Engine as _;
    use postern_relay::ldap::LdapKeys;
    use postern_smime::SmimeEnvelope;
    use postern_tests::{run_ok, KeyKind};
    use std::process::{Command, Stdio};

    let pki = Pki::new();
    let alice = pki.issue("alice@ldap.test", KeyKind::Rsa(2048));
    let bob = pki.issue("bob@ldap.test", KeyKind::Rsa(2048));
    let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
    let der = run_ok(
        Command::new("openssl")
            .args(["x509", "-outform", "DER", "-in"])
            .arg(&alice.cert),
        b"",
    );
    let p7 = run_ok(
        Command::new("openssl")
            .args(["crl2pkcs7", "-nocrl", "-outform", "DER", "-certfile"])
            .arg(&bob.cert),
        b"",
    );
    let ldif = format!(
        "dn: dc=ldap,dc=test\nobjectClass: dcObject\nobjectClass: organization\no: Partner\n\
         dc: ldap\n\n\
         dn: uid=alice,dc=ldap,dc=test\nobjectClass: inetOrgPerson\nuid: alice\ncn: Alice\n\
         sn: A\nmail: alice@ldap.test\nuserCertificate;binary:: {}\n\n\
         dn: uid=bob,dc=ldap,dc=test\nobjectClass: inetOrgPerson\nuid: bob\ncn: Bob\nsn: B\n\
         mail: bob@ldap.test\nuserSMIMECertificate:: {}\n",
        b64(&der),
        b64(&p7)
    );
    let free = || {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let ldap_port = free();
    let server = slapd(ldap_port, &ldif);
    let dns_port = free();
    let mut dns = Command::new("dnsmasq")
        .args([
            "--keep-in-foreground",
            &format!("--port={dns_port}"),
            "--listen-address=127.0.0.1",
            "--bind-interfaces",
            "--no-resolv",
            "--no-hosts",
            "--pid-file=",
            "--user=root",
            "--local=/test/",
            &format!("--srv-host=_ldap._tcp.ldap.test,dir.ldap.test,{ldap_port},0,0"),
            "--host-record=dir.ldap.test,127.0.0.1",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("dnsmasq (Debian package dnsmasq-base) must be installed");
    postern_tests::relay::wait_for_port(dns_port);

    let mut dir = Directory::default();
    dir.our.domains.push(Domain::new("clinic.example").unwrap());
    dir.our.trust_anchors.push(pki.ca_pem());
    let mut p = Partner::new(
        DomainPattern::Exact(Domain::new("ldap.test").unwrap()),
        PartnerPolicy::Required,
        vec![Standard::Smime],
    );
    p.key_sources.push(KeySource::Ldap);
    dir.partners = vec![p];
    let resolver = postern_relay::mx::resolver(&format!("127.0.0.1:{dns_port}")).unwrap();
    let store = Arc::new(
        LdapKeys::new(resolver)
            .with_ttl(Duration::ZERO)
            .with_private_targets(true),
    );
    let backends: Vec<Arc<dyn SecureEnvelope>> = vec![Arc::new(SmimeEnvelope::new())];
    let router = Router::new(backends).with_key_store(KeySource::Ldap, store);
    let msg = sample_message(1);
    let env = |to: &str| Envelope {
        mail_from: Some(Address::new("ada@clinic.example").unwrap()),
        rcpt_to: vec![Address::new(to).unwrap()],
    };
    for who in [&alice, &bob] {
        match router
            .outbound(&checked(&dir), &env(&who.email), &msg, None)
            .await
            .remove(0)
        {
            Disposition::Deliver {
                message,
                sealed: Some(Standard::Smime),
                ..
            } => assert!(
                String::from_utf8_lossy(&who.openssl_decrypt(&message)).contains("Potassium")
            ),
            other => panic!("{}: {other:?}", who.email),
        }
    }
    match router
        .outbound(&checked(&dir), &env("carol@ldap.test"), &msg, None)
        .await
        .remove(0)
    {
        Disposition::Bounce { .. } => {}
        other => panic!("no entry: {other:?}"),
    }
    drop(server);
    match router
        .outbound(&checked(&dir), &env("alice@ldap.test"), &msg, None)
        .await
        .remove(0)
    {
        Disposition::Hold { reason, .. } => {
            assert!(reason.to_string().contains("LDAP"), "{reason}")
        }
        other => panic!("directory down: {other:?}"),
    }
    let _ = dns.kill();
    let _ = dns.wait();
}

/// A private unbound on loopback serving `zones` (name, zone file, signed?) and validating with
/// `anchor` (the signed zone's key-signing DNSKEY).
struct Unbound(std::process::Child);

impl Drop for Unbound {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// SMIMEA (DANE-EE) and OPENPGPKEY records in a zone signed with BIND's dnssec-signzone and
/// validated by unbound: used. The same kind of record in an unsigned zone (no AD bit): never
/// used — the required partner's mail is refused, not sealed to a key anyone on the path could
/// have put there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dnssec_validated_smimea_and_openpgpkey_records_are_used_and_unvalidated_ones_not() {
    use postern_relay::dane::DaneKeys;
    use postern_smime::SmimeEnvelope;
    use postern_tests::{run_ok, KeyKind};
    use std::process::{Command, Stdio};

    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    let pki = Pki::new();
    // Padded so its SMIMEA answer cannot come over UDP: the client must retry over TCP.
    let alice = pki.issue_with_extensions(
        "alice@dnssec.test",
        &format!("nsComment={}", "x".repeat(1500)),
    );
    let eve = pki.issue("eve@plain.test", KeyKind::Rsa(2048));
    let bob = Gpg::new();
    bob.generate("Bob <bob@dnssec.test>", PgpKind::Ed25519, "never");
    let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
    let der = |e: &postern_tests::EndEntity| {
        run_ok(
            Command::new("openssl")
                .args(["x509", "-outform", "DER", "-in"])
                .arg(&e.cert),
            b"",
        )
    };
    let smimea = |e: &postern_tests::EndEntity| {
        let mut rd = vec![3, 0, 0]; // DANE-EE, full certificate, exact
        rd.extend(der(e));
        format!("TYPE53 \\# {} {}", rd.len(), hex(&rd))
    };
    let bob_key = bob.ok(&["--export", "bob@dnssec.test"], b"");
    let owner = |addr: &str, label: &str| {
        let name = DaneKeys::owner_name(&Address::new(addr).unwrap(), label);
        name.split('.').next().unwrap().to_string()
    };
    let soa = "$TTL 300\n@ IN SOA ns admin 1 3600 600 86400 300\n@ IN NS ns\nns IN A 127.0.0.1\n";
    let signed_zone = format!(
        "{soa}{}._smimecert IN {}\n{}._openpgpkey IN TYPE61 \\# {} {}\n",
        owner("alice@dnssec.test", "_smimecert"),
        smimea(&alice),
        owner("bob@dnssec.test", "_openpgpkey"),
        bob_key.len(),
        hex(&bob_key)
    );
    let plain_zone = format!(
        "{soa}{}._smimecert IN {}\n",
        owner("eve@plain.test", "_smimecert"),
        smimea(&eve)
    );
    std::fs::write(w.join("dnssec.test.zone"), &signed_zone).unwrap();
    std::fs::write(w.join("plain.test.zone"), &plain_zone).unwrap();
    let keygen = |ksk: bool| {
        let mut cmd = Command::new("dnssec-keygen");
        cmd.current_dir(w).args(["-q", "-a", "ECDSAP256SHA256"]);
        if ksk {
            cmd.args(["-f", "KSK"]);
        }
        cmd.arg("dnssec.test");
        String::from_utf8(run_ok(&mut cmd, b""))
            .unwrap()
            .trim()
            .to_string()
    };
    let ksk = keygen(true);
    let _zsk = keygen(false);
    run_ok(
        Command::new("dnssec-signzone").current_dir(w).args([
            "-q",
            "-S",
            "-K",
            ".",
            "-o",
            "dnssec.test",
            "dnssec.test.zone",
        ]),
        b"",
    );
    let anchor: String = std::fs::read_to_string(w.join(format!("{ksk}.key")))
        .unwrap()
        .lines()
        .filter(|l| !l.starts_with(';'))
        .collect::<Vec<_>>()
        .join("\n");
    std::fs::write(w.join("anchor.key"), anchor).unwrap();
    let unbound = ["/usr/sbin/unbound", "unbound"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())
        .unwrap_or("unbound");
    // A port picked free for UDP may be taken for TCP by the time unbound binds it (another
    // test's outgoing connection gets it as its local port): then unbound exits at once. So it
    // is started again on another port, and what it said is kept for the failure message.
    let mut started = None;
    for _ in 0..5 {
        let port = {
            let l = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let conf = format!(
            "server:\n  interface: 127.0.0.1\n  port: {port}\n  do-not-query-localhost: no\n\
             \x20 username: \"\"\n  chroot: \"\"\n  directory: \"{d}\"\n  pidfile: \"\"\n\
             \x20 use-syslog: no\n  logfile: \"\"\n  trust-anchor-file: \"{d}/anchor.key\"\n\
             \x20 module-config: \"validator iterator\"\n\
             \x20 local-zone: \"test.\" nodefault\n\
             auth-zone:\n  name: \"dnssec.test\"\n  zonefile: \"{d}/dnssec.test.zone.signed\"\n\
             \x20 for-upstream: yes\n  for-downstream: no\n\
             auth-zone:\n  name: \"plain.test\"\n  zonefile: \"{d}/plain.test.zone\"\n\
             \x20 for-upstream: yes\n  for-downstream: no\n",
            d = w.display()
        );
        std::fs::write(w.join("unbound.conf"), conf).unwrap();
        let log = std::fs::File::create(w.join("unbound.log")).unwrap();
        let mut server = Unbound(
            Command::new(unbound)
                .arg("-d")
                .arg("-c")
                .arg(w.join("unbound.conf"))
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .expect(
                    "unbound (Debian package unbound) must be installed: bash scripts/test does it",
                ),
        );
        // Up when it answers on TCP (it loads and checks the signed zone first: a fixed pause
        // was too short on a busy machine, and the first lookup met a closed port).
        let up = postern_tests::relay::wait_until(Duration::from_secs(20), || {
            std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
                || server.0.try_wait().ok().flatten().is_some()
        }) && server.0.try_wait().ok().flatten().is_none();
        if up {
            started = Some((server, port));
            break;
        }
    }
    let Some((_server, port)) = started else {
        panic!(
            "unbound did not start: {}",
            std::fs::read_to_string(w.join("unbound.log")).unwrap_or_default()
        );
    };

    let mut dir = Directory::default();
    dir.our.domains.push(Domain::new("clinic.example").unwrap());
    let mut partners = Vec::new();
    for (d, std) in [
        ("dnssec.test", vec![Standard::Smime, Standard::OpenPgp]),
        ("plain.test", vec![Standard::Smime]),
    ] {
        let mut p = Partner::new(
            DomainPattern::Exact(Domain::new(d).unwrap()),
            PartnerPolicy::Required,
            std,
        );
        p.key_sources.push(KeySource::Dane);
        partners.push(p);
    }
    dir.partners = partners;
    let store = DaneKeys::new(format!("127.0.0.1:{port}").parse().unwrap());
    let backends: Vec<Arc<dyn SecureEnvelope>> = vec![
        Arc::new(SmimeEnvelope::new()),
        Arc::new(OpenPgpEnvelope::new()),
    ];
    let router = Router::new(backends).with_key_store(KeySource::Dane, Arc::new(store));
    let msg = sample_message(1);
    let env = |to: &str| Envelope {
        mail_from: Some(Address::new("ada@clinic.example").unwrap()),
        rcpt_to: vec![Address::new(to).unwrap()],
    };
    // Validated SMIMEA, DANE-EE: no CA needed (we configured no anchors at all).
    match router
        .outbound(&checked(&dir), &env("alice@dnssec.test"), &msg, None)
        .await
        .remove(0)
    {
        Disposition::Deliver {
            message,
            sealed: Some(Standard::Smime),
            ..
        } => {
            assert!(String::from_utf8_lossy(&alice.openssl_decrypt(&message)).contains("Potassium"))
        }
        other => panic!("validated SMIMEA: {other:?}"),
    }
    // Validated OPENPGPKEY (S/MIME has none for bob, so OpenPGP is next).
    match router
        .outbound(&checked(&dir), &env("bob@dnssec.test"), &msg, None)
        .await
        .remove(0)
    {
        Disposition::Deliver {
            message,
            sealed: Some(Standard::OpenPgp),
            ..
        } => {
            let (plain, err, ok) = bob.decrypt(&armored_message(&message));
            assert!(ok, "gpg: {err}");
            assert!(String::from_utf8_lossy(&plain).contains("Potassium"));
        }
        other => panic!("validated OPENPGPKEY: {other:?}"),
    }
    // The same record, unsigned: it is there (a plain lookup finds it) but not used.
    let plain = postern_relay::mx::resolver(&format!("127.0.0.1:{port}")).unwrap();
    let eve_name = DaneKeys::owner_name(&Address::new("eve@plain.test").unwrap(), "_smimecert");
    let found = plain
        .lookup(
            eve_name.as_str(),
            hickory_resolver::proto::rr::RecordType::Unknown(53),
        )
        .await
        .expect("the unsigned SMIMEA record is served");
    assert_eq!(found.records().len(), 1);
    match router
        .outbound(&checked(&dir), &env("eve@plain.test"), &msg, None)
        .await
        .remove(0)
    {
        Disposition::Bounce { .. } => {}
        other => panic!("unvalidated SMIMEA used: {other:?}"),
    }
}
