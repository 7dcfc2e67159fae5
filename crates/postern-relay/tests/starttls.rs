//! STARTTLS on our listener with a configured certificate, and the command-injection defence:
//! commands a client pipelines after STARTTLS (in clear) are discarded, not run inside TLS.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is a failure report

use std::sync::Arc;
use std::time::Duration;

use postern_relay::config::{ListenerConfig, RelayConfig, TlsConfig};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName};
use tokio_rustls::rustls::{ClientConfig, RootCertStore};
use tokio_rustls::TlsConnector;

async fn reply<R: tokio::io::AsyncBufRead + Unpin>(r: &mut R) -> Vec<String> {
    let mut lines = Vec::new();
    loop {
        let mut l = String::new();
        r.read_line(&mut l).await.unwrap();
        assert!(!l.is_empty(), "connection closed after {lines:?}");
        let last = l.as_bytes().get(3) != Some(&b'-');
        lines.push(l.trim_end().to_string());
        if last {
            return lines;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commands_pipelined_after_starttls_are_discarded() {
    let tmp = tempfile::tempdir().unwrap();
    let (relay, connector) = tls_relay(tmp.path(), false).await;

    let sock = TcpStream::connect(relay.internal_addr.unwrap())
        .await
        .unwrap();
    let mut r = BufReader::new(sock);
    assert!(reply(&mut r).await[0].starts_with("220"));
    r.get_mut()
        .write_all(b"EHLO client.test\r\n")
        .await
        .unwrap();
    let ehlo = reply(&mut r).await;
    assert!(ehlo.iter().any(|l| l.ends_with("STARTTLS")), "{ehlo:?}");
    // The injection: a command sent in clear behind STARTTLS, in the same packet.
    r.get_mut()
        .write_all(b"STARTTLS\r\nMAIL FROM:<injected@attacker.test>\r\n")
        .await
        .unwrap();
    let go = reply(&mut r).await;
    assert!(go[0].starts_with("220 2.0.0"), "{go:?}");
    // Nothing else is waiting in clear (the injected command got no reply).
    assert!(r.buffer().is_empty());

    let tls = connector
        .connect(ServerName::try_from("localhost").unwrap(), r.into_inner())
        .await
        .unwrap();
    let mut t = BufReader::new(tls);
    t.get_mut()
        .write_all(b"EHLO client.test\r\n")
        .await
        .unwrap();
    let ehlo = reply(&mut t).await;
    // The first reply inside TLS answers our EHLO; STARTTLS is no longer offered.
    assert!(ehlo[0].starts_with("250-"), "{ehlo:?}");
    assert!(!ehlo.iter().any(|l| l.contains("STARTTLS")), "{ehlo:?}");
    // Had the injected MAIL run, this would be "503 nested MAIL".
    t.get_mut()
        .write_all(b"MAIL FROM:<ada@clinic.example>\r\n")
        .await
        .unwrap();
    let mail = reply(&mut t).await;
    assert!(mail[0].starts_with("250"), "{mail:?}");
    t.get_mut().write_all(b"QUIT\r\n").await.unwrap();
    let _ = tokio::time::timeout(Duration::from_secs(2), reply(&mut t)).await;
    relay.shutdown(Duration::from_secs(2)).await;
}

/// A relay whose internal listener has a self-signed certificate, the connector that trusts
/// it, and (`with_auth`) SMTP AUTH required for the user `exchange`.
async fn tls_relay(
    tmp: &std::path::Path,
    with_auth: bool,
) -> (postern_relay::RunningRelay, TlsConnector) {
    let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    std::fs::write(tmp.join("cert.pem"), ck.cert.pem()).unwrap();
    std::fs::write(tmp.join("key.pem"), ck.signing_key.serialize_pem()).unwrap();
    std::fs::write(
        tmp.join("directory.toml"),
        "[our]\ndomains = [\"clinic.example\"]\n",
    )
    .unwrap();
    let hash = postern_relay::auth::hash_password(b"correct horse").unwrap();
    std::fs::write(tmp.join("users"), format!("exchange:{hash}\n")).unwrap();
    let mut cfg = RelayConfig {
        data_dir: tmp.join("data"),
        directory: tmp.join("directory.toml"),
        internal: ListenerConfig {
            listen: "127.0.0.1:0".into(),
            networks: vec!["127.0.0.0/8".into()],
            proxy_from: Vec::new(),
        },
        public: ListenerConfig {
            listen: String::new(),
            networks: vec![],
            proxy_from: Vec::new(),
        },
        metrics: String::new(),
        tls: TlsConfig {
            certificate: tmp.join("cert.pem"),
            key: tmp.join("key.pem"),
            ca_file: Default::default(),
        },
        ..RelayConfig::default()
    };
    if with_auth {
        cfg.auth.users = tmp.join("users");
        cfg.auth.required = true;
    }
    let relay = postern_relay::start(&cfg).await.unwrap();
    let mut roots = RootCertStore::empty();
    roots
        .add(CertificateDer::from(ck.cert.der().to_vec()))
        .unwrap();
    let provider = Arc::new(tokio_rustls::rustls::crypto::aws_lc_rs::default_provider());
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    (relay, TlsConnector::from(Arc::new(config)))
}

async fn say<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin>(
    s: &mut BufReader<S>,
    line: &str,
) -> Vec<String> {
    s.get_mut()
        .write_all(format!("{line}\r\n").as_bytes())
        .await
        .unwrap();
    reply(s).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_is_offered_inside_tls_only_and_required_before_mail() {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD;
    let tmp = tempfile::tempdir().unwrap();
    let (relay, connector) = tls_relay(tmp.path(), true).await;

    let sock = TcpStream::connect(relay.internal_addr.unwrap())
        .await
        .unwrap();
    let mut p = BufReader::new(sock);
    reply(&mut p).await;
    let ehlo = say(&mut p, "EHLO client.test").await;
    assert!(
        !ehlo.iter().any(|l| l.contains("AUTH")),
        "no AUTH in clear: {ehlo:?}"
    );
    let plain = b64.encode(b"\0exchange\0correct horse");
    let r = say(&mut p, &format!("AUTH PLAIN {plain}")).await;
    assert!(r[0].starts_with("538 5.7.11"), "{r:?}");
    let r = say(&mut p, "MAIL FROM:<ada@clinic.example>").await;
    assert!(r[0].starts_with("530 5.7.0"), "{r:?}");
    assert!(say(&mut p, "STARTTLS").await[0].starts_with("220"));

    let tls = connector
        .connect(ServerName::try_from("localhost").unwrap(), p.into_inner())
        .await
        .unwrap();
    let mut t = BufReader::new(tls);
    let ehlo = say(&mut t, "EHLO client.test").await;
    assert!(
        ehlo.iter().any(|l| l.ends_with("AUTH PLAIN LOGIN")),
        "{ehlo:?}"
    );
    let r = say(&mut t, "MAIL FROM:<ada@clinic.example>").await;
    assert!(r[0].starts_with("530"), "not yet authenticated: {r:?}");
    let wrong = b64.encode(b"\0exchange\0wrong horse");
    let r = say(&mut t, &format!("AUTH PLAIN {wrong}")).await;
    assert!(r[0].starts_with("535 5.7.8"), "{r:?}");
    let r = say(&mut t, "AUTH PLAIN AAAA").await;
    assert!(r[0].starts_with("501"), "{r:?}");
    // LOGIN, answering the challenges.
    let r = say(&mut t, "AUTH LOGIN").await;
    assert_eq!(r, ["334 VXNlcm5hbWU6"]);
    let r = say(&mut t, &b64.encode("exchange")).await;
    assert_eq!(r, ["334 UGFzc3dvcmQ6"]);
    let r = say(&mut t, &b64.encode("correct horse")).await;
    assert!(r[0].starts_with("235 2.7.0"), "{r:?}");
    let r = say(&mut t, "MAIL FROM:<ada@clinic.example>").await;
    assert!(r[0].starts_with("250"), "{r:?}");
    let r = say(&mut t, "AUTH PLAIN x").await;
    assert!(r[0].starts_with("503"), "only once: {r:?}");
    let _ = say(&mut t, "QUIT").await;
    relay.shutdown(Duration::from_secs(2)).await;
}

/// A session on `addr` past STARTTLS and the second EHLO.
async fn tls_session(
    addr: std::net::SocketAddr,
    connector: &TlsConnector,
) -> BufReader<tokio_rustls::client::TlsStream<TcpStream>> {
    let mut p = BufReader::new(TcpStream::connect(addr).await.unwrap());
    reply(&mut p).await;
    say(&mut p, "EHLO client.test").await;
    say(&mut p, "STARTTLS").await;
    let tls = connector
        .connect(ServerName::try_from("localhost").unwrap(), p.into_inner())
        .await
        .unwrap();
    let mut t = BufReader::new(tls);
    say(&mut t, "EHLO client.test").await;
    t
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok())
        .unwrap()
}

/// Issue 14.6: 24 clients guessing in parallel: Argon2 runs a few at a time (memory stays flat:
/// each run takes about 19 MiB, and 24 at once once added about 1 GB), and repeated failures
/// lock the user name and the address, after which not even a hash is computed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parallel_password_guessing_is_bounded_and_locked_out() {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD;
    let tmp = tempfile::tempdir().unwrap();
    let (relay, connector) = tls_relay(tmp.path(), true).await;
    let addr = relay.internal_addr.unwrap();
    let before = rss_kib();
    let mut tasks = Vec::new();
    for i in 0..24 {
        let connector = connector.clone();
        let wrong = b64.encode(format!("\0exchange\0guess {i}"));
        tasks.push(tokio::spawn(async move {
            let mut t = tls_session(addr, &connector).await;
            say(&mut t, &format!("AUTH PLAIN {wrong}")).await[0].clone()
        }));
    }
    let mut replies = Vec::new();
    for t in tasks {
        replies.push(t.await.unwrap());
    }
    let grown_mib = rss_kib().saturating_sub(before) / 1024;
    assert!(
        replies
            .iter()
            .all(|r| r.starts_with("535 5.7.8") || r.starts_with("454 4.7.0")),
        "{replies:?}"
    );
    assert!(
        replies.iter().any(|r| r.starts_with("454 4.7.0")),
        "locked out after repeated failures: {replies:?}"
    );
    eprintln!("RSS grew by {grown_mib} MiB under 24 parallel guesses");
    assert!(grown_mib < 200, "memory grew by {grown_mib} MiB");
    // Locked: even the right password is refused now, without a hash being computed.
    let mut t = tls_session(addr, &connector).await;
    let right = b64.encode(b"\0exchange\0correct horse");
    let r = say(&mut t, &format!("AUTH PLAIN {right}")).await;
    assert!(r[0].starts_with("454 4.7.0"), "{r:?}");
    relay.shutdown(Duration::from_secs(2)).await;
}
