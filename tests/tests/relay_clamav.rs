//! Issue 26: ClamAV's daemon scans every message the relay handles, as our users will see it.
//! A private clamd on loopback with a one-line signature database the test writes (the EICAR
//! test string; the real database cannot be downloaded here): EICAR in a plain message, in a
//! zip attachment, and inside an S/MIME envelope (caught only after decryption) is
//! quarantined; ours is held before it is sealed; with clamd stopped mail waits, and goes when
//! it is back.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is a failure report

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use postern_tests::relay::{
    free_port, runtime, send_mail, test_config, wait_until, write_directory, SmtpSink,
};
use postern_tests::run_ok;

const EICAR: &str = r"X5O!P%@AP[4\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*";

/// A clamd of our own: its database, configuration and TCP port on loopback.
struct Clamd {
    dir: tempfile::TempDir,
    port: u16,
    child: Option<Child>,
}

impl Clamd {
    fn start() -> Clamd {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("db")).unwrap();
        let hex: String = EICAR.bytes().map(|b| format!("{b:02x}")).collect();
        std::fs::write(
            dir.path().join("db/postern-test.ndb"),
            format!("Postern-Test-EICAR:0:*:{hex}\n"),
        )
        .unwrap();
        let mut c = Clamd {
            dir,
            port: free_port(),
            child: None,
        };
        c.run();
        c
    }

    fn run(&mut self) {
        let d = self.dir.path();
        let conf = d.join("clamd.conf");
        std::fs::write(
            &conf,
            format!(
                "Foreground yes\nTCPSocket {}\nTCPAddr 127.0.0.1\nDatabaseDirectory {}\n\
                 LogFile {}\nPidFile {}\nStreamMaxLength 1M\n",
                self.port,
                d.join("db").display(),
                d.join("clamd.log").display(),
                d.join("clamd.pid").display()
            ),
        )
        .unwrap();
        let clamd = ["/usr/sbin/clamd", "clamd"]
            .into_iter()
            .find(|p| !p.starts_with('/') || Path::new(p).exists())
            .unwrap();
        self.child = Some(
            Command::new(clamd)
                .arg("-c")
                .arg(&conf)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("clamd (Debian's clamav-daemon)"),
        );
        let addr = format!("127.0.0.1:{}", self.port);
        assert!(
            wait_until(Duration::from_secs(60), || ping(&addr)),
            "clamd did not answer: {}",
            std::fs::read_to_string(d.join("clamd.log")).unwrap_or_default()
        );
    }

    fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

impl Drop for Clamd {
    fn drop(&mut self) {
        self.stop();
    }
}

fn ping(addr: &str) -> bool {
    use std::io::Read;
    let Ok(mut s) = std::net::TcpStream::connect(addr) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    let mut out = [0u8; 16];
    s.write_all(b"zPING\0").is_ok()
        && s.read(&mut out)
            .is_ok_and(|n| out[..n].starts_with(b"PONG"))
}

fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../examples/data")
        .join(name)
}

/// A message with `name` attached (base64), from `from` to `to`.
fn with_attachment(from: &str, to: &str, name: &str, content: &[u8]) -> Vec<u8> {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD.encode(content);
    let lines: Vec<&str> = b64
        .as_bytes()
        .chunks(76)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect();
    format!(
        "From: {from}\r\nTo: {to}\r\nSubject: attachment\r\nMIME-Version: 1.0\r\n\
         Content-Type: multipart/mixed; boundary=\"b\"\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\n\
         see attached\r\n--b\r\nContent-Type: application/octet-stream; name=\"{name}\"\r\n\
         Content-Transfer-Encoding: base64\r\nContent-Disposition: attachment; filename=\"{name}\"\r\n\r\n\
         {}\r\n--b--\r\n",
        lines.join("\r\n")
    )
    .into_bytes()
}

/// A zip archive holding `eicar.com`, made by Python's zipfile (stored, not compressed).
fn zipped_eicar(dir: &Path) -> Vec<u8> {
    let out = dir.join("eicar.zip");
    let st = Command::new("python3")
        .args([
            "-c",
            "import sys, zipfile; z = zipfile.ZipFile(sys.argv[1], 'w'); \
             z.writestr('eicar.com', sys.argv[2]); z.close()",
        ])
        .arg(&out)
        .arg(EICAR)
        .status()
        .unwrap();
    assert!(st.success());
    std::fs::read(out).unwrap()
}

#[test]
fn clamd_catches_malware_in_plain_zipped_and_sealed_mail_and_a_stopped_clamd_defers() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let mut clamd = Clamd::start();
    // We are clinic.example with Alice's published LAMPS key (inbound S/MIME is encrypted to
    // it); smime.example (Bob's certificate) must get everything sealed.
    write_directory(
        t,
        &format!(
            "[our]\ndomains = [\"clinic.example\"]\n[[our.keys]]\nstandard = \"smime\"\n\
             certificate = \"{}\"\nkey = \"{}\"\ndomains = [\"clinic.example\"]\n\
             [[partner]]\ndomain = \"smime.example\"\nstandards = [\"smime\"]\n\
             policy = \"required\"\nsmime_certificates = [\"{}\"]\n",
            data("lamps-alice.crt").display(),
            data("lamps-alice.p8.pem").display(),
            data("lamps-bob.encrypt.crt").display(),
        ),
    );
    let sink = SmtpSink::start(&[]);
    let mut cfg = test_config(t, &sink.addr(), &sink.addr());
    cfg.scan.clamd = clamd.addr();
    cfg.scan.timeout_secs = 5;
    let rt = runtime();
    let relay = rt.block_on(postern_relay::start(&cfg)).unwrap();
    let public = relay.public_addr.unwrap().to_string();
    let internal = relay.internal_addr.unwrap().to_string();
    let inbound = |msg: &[u8]| {
        let r = send_mail(&public, "x@gmail.test", &["ada@clinic.example"], msg).unwrap();
        assert!(r.starts_with("250"), "{r}");
    };
    let held = || relay.metrics().held.get();

    // 1. Plain, 2. zipped, 3. sealed to us (OpenSSL, as a partner's gateway would).
    let plain =
        format!("From: x@gmail.test\r\nTo: ada@clinic.example\r\nSubject: a\r\n\r\n{EICAR}\r\n");
    inbound(plain.as_bytes());
    inbound(&with_attachment(
        "x@gmail.test",
        "ada@clinic.example",
        "invoice.zip",
        &zipped_eicar(t),
    ));
    let inner = with_attachment(
        "x@gmail.test",
        "ada@clinic.example",
        "eicar.com",
        EICAR.as_bytes(),
    );
    let sealed = run_ok(
        Command::new("openssl")
            .args(["cms", "-encrypt", "-aes-256-gcm"])
            .arg(data("lamps-alice.crt")),
        &inner,
    );
    let sealed = [
        b"From: x@gmail.test\r\nTo: ada@clinic.example\r\n".as_slice(),
        &sealed,
    ]
    .concat();
    inbound(&sealed);
    // 4. Clean mail is delivered; 5. ours to the partner is held before sealing.
    inbound(b"From: x@gmail.test\r\nTo: ada@clinic.example\r\nSubject: fine\r\n\r\nhello\r\n");
    // To the partner and a colleague: held for both, the colleague's copy included.
    let r = send_mail(
        &internal,
        "ada@clinic.example",
        &["bob@smime.example", "bea@clinic.example"],
        &with_attachment(
            "ada@clinic.example",
            "bob@smime.example",
            "eicar.com",
            EICAR.as_bytes(),
        ),
    )
    .unwrap();
    assert!(r.starts_with("250"), "{r}");
    assert!(
        wait_until(Duration::from_secs(30), || held() == 5 && sink.count() == 1),
        "held {}, delivered {}",
        held(),
        sink.count()
    );
    let (_, delivered) = sink.messages().remove(0);
    assert!(String::from_utf8_lossy(&delivered).contains("hello"));

    // Over clamd's StreamMaxLength (1M here): it cannot be scanned, and retrying would fail the
    // same way, so it is held for review — neither retried until it expires nor let through.
    let big = format!(
        "From: x@gmail.test\r\nTo: ada@clinic.example\r\nSubject: big\r\n\r\n{}",
        "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789\r\n"
            .repeat(20_000)
    );
    inbound(big.as_bytes());
    assert!(
        wait_until(Duration::from_secs(30), || held() == 6),
        "held {}",
        held()
    );
    assert_eq!(sink.count(), 1);

    // clamd stopped: mail waits (nothing unscanned goes through), then goes once it is back.
    clamd.stop();
    inbound(b"From: x@gmail.test\r\nTo: ada@clinic.example\r\nSubject: later\r\n\r\nlater\r\n");
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(sink.count(), 1, "not delivered while clamd is down");
    assert!(relay.metrics().deferred.get() >= 1);
    assert_eq!(held(), 6);
    clamd.run();
    assert!(
        wait_until(Duration::from_secs(60), || sink.count() == 2),
        "delivered once clamd is back"
    );
    rt.block_on(relay.shutdown(Duration::from_secs(5)));
}
