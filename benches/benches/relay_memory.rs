//! Resident memory of the running relay for one large message each way, over real SMTP, beside
//! OpenSSL's `cms` on the same message in the same run.
//!
//! 1. Outbound: one message of SIZE MB (default 20) to a required S/MIME partner (RSA-2048,
//!    AES-256-CBC), from our side into smtp-sink — sealed, dot-stuffed, sent.
//! 2. Inbound: the same message sealed to our gateway's certificate by `openssl cms -encrypt`
//!    (AES-256-GCM: unsigned AES-CBC from a required partner is quarantined, EFAIL), from the
//!    partner over the public listener, opened and written to the inbound folder.
//!
//! The relay runs in this process; the SMTP client runs in a child process (this binary again,
//! `send` mode), so its copy of the message is not counted. For each direction: the idle
//! relay's resident set after a warm-up message of the same size, the peak while the message
//! is handled (VmHWM, reset through /proc/self/clear_refs first), and the growth as a multiple
//! of the message. The reference: `openssl cms -encrypt` and `-decrypt` on the same files,
//! their peak resident set (GNU time's %M).
//!
//! `cargo bench -p postern-benches --bench relay_memory [-- SIZE_MB]`
#![allow(clippy::unwrap_used, clippy::expect_used)] // a bench: a panic is a failure report

use std::io::Read as _;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use postern_tests::relay::{
    runtime, send_mail, test_config, wait_until, write_directory, SmtpSink,
};
use postern_tests::{KeyKind, Pki};

fn status_kb(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// Resets the peak resident set (VmHWM) to the current one.
fn reset_peak() {
    std::fs::write("/proc/self/clear_refs", "5").unwrap();
}

/// A text message of about `size` bytes (lines of 76 characters).
fn message(size: usize, from: &str, to: &str) -> Vec<u8> {
    let mut m = format!(
        "From: {from}\r\nTo: {to}\r\nSubject: imaging report\r\n\
         Message-ID: <big-{size}@clinic.example>\r\nMIME-Version: 1.0\r\n\
         Content-Type: text/plain; charset=us-ascii\r\n\r\n"
    )
    .into_bytes();
    let line = b"Findings unchanged from the prior study; no acute abnormality identified.  \r\n";
    while m.len() < size {
        m.extend_from_slice(line);
    }
    m
}

/// Sends `file` from `from` to `to` at `addr` in a child process (this binary, `send` mode).
fn send_from_child(addr: &str, from: &str, to: &str, file: &Path) {
    let out = Command::new(std::env::current_exe().unwrap())
        .args(["send", addr, from, to])
        .arg(file)
        .output()
        .unwrap();
    let reply = String::from_utf8_lossy(&out.stdout);
    assert!(
        reply.starts_with("250"),
        "{reply}{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Peak resident set of `openssl` with `args` (GNU time), in KB.
fn openssl_peak_kb(args: &[&str]) -> u64 {
    let out = Command::new("/usr/bin/time")
        .args(["-f", "%M", "openssl"])
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stderr)
        .lines()
        .last()
        .and_then(|l| l.trim().parse().ok())
        .unwrap()
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("send") {
        let mut data = Vec::new();
        std::fs::File::open(&args[4])
            .unwrap()
            .read_to_end(&mut data)
            .unwrap();
        print!(
            "{}",
            send_mail(&args[1], &args[2], &[args[3].as_str()], &data).unwrap()
        );
        return;
    }
    let mb: usize = args.iter().find_map(|a| a.parse().ok()).unwrap_or(20);
    let size = mb << 20;

    let pki = Pki::new();
    let partner = pki.issue("gw@smime-partner.test", KeyKind::Rsa(2048));
    let ours = pki.issue("gw@clinic.example", KeyKind::Rsa(2048));
    let tmp = tempfile::tempdir().unwrap();
    write_directory(
        tmp.path(),
        &format!(
            "[our]\ndomains = [\"clinic.example\"]\n\
             [[our.keys]]\nstandard = \"smime\"\ncertificate = {:?}\nkey = {:?}\n\n\
             [[partner]]\ndomain = \"smime-partner.test\"\nstandards = [\"smime\"]\n\
             policy = \"required\"\nsmime_certificates = [{:?}]\n",
            ours.cert.display().to_string(),
            ours.key.display().to_string(),
            partner.cert.display().to_string(),
        ),
    );
    let sink = SmtpSink::counting();
    let rt = runtime();
    let mut cfg = test_config(tmp.path(), &sink.addr(), "dir:inbox");
    cfg.limits.max_message_size = 4 * size;
    let relay = rt.block_on(postern_relay::start(&cfg)).unwrap();
    let internal = relay.internal_addr.unwrap().to_string();
    let public = relay.public_addr.unwrap().to_string();

    let plain = tmp.path().join("plain.eml");
    std::fs::write(
        &plain,
        message(
            size,
            "Dr Ada <ada@clinic.example>",
            "lab@smime-partner.test",
        ),
    )
    .unwrap();
    let inbound_plain = tmp.path().join("inbound-plain.eml");
    std::fs::write(
        &inbound_plain,
        message(size, "Lab <lab@smime-partner.test>", "gw@clinic.example"),
    )
    .unwrap();
    let sealed_in = tmp.path().join("inbound-sealed.eml");
    let sealed_out = tmp.path().join("openssl-sealed.eml");
    let opened = tmp.path().join("openssl-opened.eml");
    let p = |p: &Path| p.display().to_string();
    let enc_in_kb = openssl_peak_kb(&[
        "cms",
        "-encrypt",
        "-aes-256-gcm",
        "-in",
        &p(&inbound_plain),
        "-out",
        &p(&sealed_in),
        &p(&ours.cert),
    ]);
    let enc_kb = openssl_peak_kb(&[
        "cms",
        "-encrypt",
        "-aes256",
        "-in",
        &p(&plain),
        "-out",
        &p(&sealed_out),
        &p(&partner.cert),
    ]);
    let dec_kb = openssl_peak_kb(&[
        "cms",
        "-decrypt",
        "-in",
        &p(&sealed_in),
        "-out",
        &p(&opened),
        "-recip",
        &p(&ours.cert),
        "-inkey",
        &p(&ours.key),
    ]);
    let _ = enc_in_kb;
    let sealed_size = std::fs::metadata(&sealed_in).unwrap().len() as f64;

    let inbox = tmp.path().join("data").join("inbox");
    let inbox_count = || {
        std::fs::read_dir(&inbox).map_or(0, |d| {
            d.filter(|e| {
                e.as_ref()
                    .is_ok_and(|e| e.path().extension().is_some_and(|x| x == "eml"))
            })
            .count()
        })
    };
    let mut rows = Vec::new();
    for (name, addr, from, to, file, done) in [
        (
            "outbound: seal for a partner",
            &internal,
            "ada@clinic.example",
            "lab@smime-partner.test",
            &plain,
            0usize,
        ),
        (
            "inbound: open from the internet",
            &public,
            "gw@smime-partner.test",
            "gw@clinic.example",
            &sealed_in,
            1usize,
        ),
    ] {
        let delivered = |n: usize| {
            if done == 0 {
                sink.count() >= n
            } else {
                inbox_count() >= n
            }
        };
        let before = if done == 0 {
            sink.count()
        } else {
            inbox_count()
        };
        // Warm-up: the same message once, not measured.
        send_from_child(addr, from, to, file);
        assert!(
            wait_until(Duration::from_secs(120), || delivered(before + 1)),
            "{name}: warm-up not delivered\n{}",
            relay.metrics().render()
        );
        std::thread::sleep(Duration::from_millis(500));
        let idle = status_kb("VmRSS:");
        reset_peak();
        send_from_child(addr, from, to, file);
        assert!(
            wait_until(Duration::from_secs(120), || delivered(before + 2)),
            "{name}: not delivered"
        );
        let peak = status_kb("VmHWM:");
        let input = std::fs::metadata(file).unwrap().len() as f64;
        rows.push((name, idle, peak, input));
    }
    println!("\nrelay memory, one message of {mb} MB each way, loopback, same run\n");
    println!(
        "{:<36} {:>10} {:>10} {:>10} {:>8}",
        "scenario", "idle MB", "peak MB", "growth MB", "x size"
    );
    for (name, idle, peak, input) in &rows {
        let growth = (*peak as f64 - *idle as f64) * 1024.0;
        println!(
            "{:<36} {:>10.1} {:>10.1} {:>10.1} {:>8.2}",
            name,
            *idle as f64 / 1024.0,
            *peak as f64 / 1024.0,
            growth / 1e6 * 1e6 / (1 << 20) as f64,
            growth / input
        );
    }
    println!(
        "\nreference, openssl cms on the same files (whole process peak): encrypt {:.1} MB = {:.2}x, decrypt {:.1} MB = {:.2}x (sealed input {:.1} MB)",
        enc_kb as f64 / 1024.0,
        enc_kb as f64 * 1024.0 / size as f64,
        dec_kb as f64 / 1024.0,
        dec_kb as f64 * 1024.0 / sealed_size,
        sealed_size / (1 << 20) as f64
    );
    rt.block_on(relay.shutdown(Duration::from_secs(10)));
}
