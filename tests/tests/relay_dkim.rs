//! Issue 26: every copy that leaves the relay carries our DKIM signature, made after sealing,
//! and an independent verifier (dkimpy, Debian's python3-dkim) accepts it. The sender's own
//! signature ("Exchange" signed the message before it reached us) does not survive sealing;
//! ours does. Two selectors of one domain both sign (a key rotation in progress).
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is a failure report

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use postern_tests::relay::{
    runtime, send_mail, test_config, wait_until, write_directory, SmtpSink,
};

fn python() -> &'static str {
    if Path::new("/usr/bin/python3").exists() {
        "/usr/bin/python3"
    } else {
        "python3"
    }
}

/// Verifies every DKIM-Signature of stdin with the records given as `name=record` arguments;
/// prints `selector:pass|fail` per signature, in order. `sign` mode signs stdin instead.
const DKIMPY: &str = r#"
import sys, dkim, re
mode = sys.argv[1]
msg = sys.stdin.buffer.read()
if mode == "sign":
    sel, dom, keyfile = sys.argv[2], sys.argv[3], sys.argv[4]
    sig = dkim.sign(msg, sel.encode(), dom.encode(), open(keyfile, "rb").read(),
                    include_headers=[b"from", b"to", b"subject", b"date"])
    sys.stdout.buffer.write(sig + msg)
    sys.exit(0)
records = dict(a.split("=", 1) for a in sys.argv[2:])
def dns(q, timeout=5):
    r = records.get(q.decode().rstrip("."))
    return r.encode() if r else None
d = dkim.DKIM(msg)
n = len(re.findall(rb"(?im)^dkim-signature:", msg.split(b"\r\n\r\n", 1)[0]))
for i in range(n):
    ok = d.verify(idx=i, dnsfunc=dns)
    print("%s:%s" % (d.selector.decode() if d.selector else "?", "pass" if ok else "fail"))
"#;

fn dkimpy(args: &[&str], input: &[u8]) -> String {
    let mut child = Command::new(python())
        .arg("-c")
        .arg(DKIMPY)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 with python3-dkim");
    child.stdin.take().unwrap().write_all(input).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn openssl(args: &[&str]) {
    let st = Command::new("openssl")
        .args(args)
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(st.success(), "openssl {args:?}");
}

/// The public key of a PEM private key as a DKIM TXT record.
fn record(key: &Path) -> String {
    let k = postern_router::dkim_keys::DkimKey::from_pem(&std::fs::read(key).unwrap()).unwrap();
    postern_router::dkim_keys::DkimSigner::new("clinic.example", "x", k)
        .unwrap()
        .dns_record()
}

#[test]
fn every_copy_that_leaves_is_signed_after_sealing_and_dkimpy_verifies_it() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let (rsa, ed, exchange) = (t.join("s1.pem"), t.join("s2.pem"), t.join("exchange.pem"));
    openssl(&[
        "genpkey",
        "-algorithm",
        "RSA",
        "-pkeyopt",
        "rsa_keygen_bits:2048",
        "-out",
        rsa.to_str().unwrap(),
    ]);
    openssl(&[
        "genpkey",
        "-algorithm",
        "ed25519",
        "-out",
        ed.to_str().unwrap(),
    ]);
    openssl(&[
        "genrsa",
        "-traditional",
        "-out",
        exchange.to_str().unwrap(),
        "2048",
    ]);
    let partner_cert =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/data/lamps-bob.encrypt.crt");
    // Bob's published LAMPS certificate names smime.example: that is the partner.
    write_directory(
        t,
        &format!(
            "[our]\ndomains = [\"clinic.example\"]\n\n\
             [[our.dkim]]\ndomain = \"clinic.example\"\nselector = \"s1\"\nkey = \"{}\"\n\n\
             [[our.dkim]]\ndomain = \"clinic.example\"\nselector = \"s2\"\nkey = \"{}\"\n\n\
             [[partner]]\ndomain = \"smime.example\"\nstandards = [\"smime\"]\n\
             policy = \"required\"\nsmime_certificates = [\"{}\"]\n",
            rsa.display(),
            ed.display(),
            partner_cert.display()
        ),
    );
    let sink = SmtpSink::start(&[]);
    let cfg = test_config(t, &sink.addr(), &sink.addr());
    let rt = runtime();
    let relay = rt.block_on(postern_relay::start(&cfg)).unwrap();
    let internal = relay.internal_addr.unwrap().to_string();

    // "Exchange" signs the message before it reaches us.
    let original = b"From: Ada <ada@clinic.example>\r\nTo: bob@smime.example\r\n\
        Subject: Lab results\r\nDate: Mon, 7 Dec 2026 18:00:00 +0000\r\n\
        Message-ID: <dkim-1@clinic.example>\r\n\r\nPotassium 4.1\r\n";
    let exchanged = dkimpy(
        &[
            "sign",
            "exchange",
            "clinic.example",
            exchange.to_str().unwrap(),
        ],
        original,
    );
    let r = send_mail(
        &internal,
        "ada@clinic.example",
        &["bob@smime.example"],
        exchanged.as_bytes(),
    )
    .unwrap();
    assert!(r.starts_with("250"), "{r}");
    // And a plain one to the outside world.
    let plain = b"From: ada@clinic.example\r\nTo: someone@gmail.test\r\nSubject: Lunch\r\n\
        Date: Mon, 7 Dec 2026 18:00:00 +0000\r\n\r\nSee you at noon.  \r\n\r\n";
    let r = send_mail(
        &internal,
        "ada@clinic.example",
        &["someone@gmail.test"],
        plain,
    )
    .unwrap();
    assert!(r.starts_with("250"), "{r}");
    assert!(wait_until(Duration::from_secs(20), || sink.count() == 2));
    rt.block_on(relay.shutdown(Duration::from_secs(5)));

    let records = [
        format!("s1._domainkey.clinic.example={}", record(&rsa)),
        format!("s2._domainkey.clinic.example={}", record(&ed)),
        format!("exchange._domainkey.clinic.example={}", record(&exchange)),
    ];
    let args: Vec<&str> = std::iter::once("verify")
        .chain(records.iter().map(String::as_str))
        .collect();
    for (rcpts, copy) in sink.messages() {
        let text = String::from_utf8_lossy(&copy);
        let verdicts = dkimpy(&args, &copy);
        let sealed = text.contains("application/pkcs7-mime");
        assert!(
            verdicts.contains("s1:pass") && verdicts.contains("s2:pass"),
            "{rcpts:?}: {verdicts}\n{text}"
        );
        if sealed {
            assert!(!text.contains("Potassium"), "sealed");
            // Exchange's signature, if it is still there, no longer verifies: only ours does.
            assert!(!verdicts.contains("exchange:pass"), "{verdicts}");
        }
    }
    assert!(
        sink.messages()
            .iter()
            .any(|(_, m)| String::from_utf8_lossy(m).contains("application/pkcs7-mime")),
        "one copy was sealed"
    );
}
