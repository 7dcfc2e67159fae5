//! Load benchmark of the relay against Postfix, in one run, all on loopback.
//!
//! A small SMTP load client (N sessions in parallel, M messages of 10 KB each per session,
//! MAIL/RCPT/DATA repeated in one session) sends to:
//!
//! 1. postern-relay, plain mail (not a partner) → smtp-sink;
//! 2. postern-relay, mail to a required S/MIME partner → smtp-sink (sealed, RSA-2048);
//! 3. Postfix (private instance), plain relaying → smtp-sink: the reference.
//!
//! Three rounds, the Postfix reference first in each; the medians are reported per scenario:
//! accept latency p50/p99 (MAIL FROM to the 250 after DATA), accepted messages/s, and
//! end-to-end messages/s (first MAIL until the sink holds them all). Both MTAs fsync before
//! 250. Needs root (Postfix's master) and the postfix package.
//!
//! `cargo bench -p postern-benches --bench relay_load [-- SESSIONS MESSAGES_PER_SESSION]`
#![allow(clippy::unwrap_used, clippy::expect_used)] // a bench: a panic is a failure report

use std::sync::Arc;
use std::time::{Duration, Instant};

use postern_tests::relay::{
    runtime, smime_partner_directory, test_config, wait_until, Client, Postfix, SmtpSink,
};
use postern_tests::{KeyKind, Pki};

struct Result {
    name: &'static str,
    p50: Duration,
    p99: Duration,
    accepted_per_s: f64,
    end_to_end_per_s: f64,
}

fn message(i: usize, to: &str) -> Vec<u8> {
    let mut body = String::new();
    let line = "Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod.\r\n";
    while body.len() < 10 * 1024 {
        body.push_str(line);
    }
    format!(
        "From: Dr Ada <ada@clinic.example>\r\nTo: {to}\r\nSubject: load {i}\r\n\
         Message-ID: <load-{i}@clinic.example>\r\nMIME-Version: 1.0\r\n\
         Content-Type: text/plain; charset=us-ascii\r\n\r\n{body}"
    )
    .into_bytes()
}

fn load(
    name: &'static str,
    addr: &str,
    to: &str,
    sink: &SmtpSink,
    sessions: usize,
    per: usize,
) -> Result {
    let before = sink.count();
    let total = sessions * per;
    let msgs: Arc<Vec<Vec<u8>>> = Arc::new((0..total).map(|i| message(i, to)).collect());
    let start = Instant::now();
    let handles: Vec<_> = (0..sessions)
        .map(|s| {
            let addr = addr.to_string();
            let to = to.to_string();
            let msgs = msgs.clone();
            std::thread::spawn(move || {
                let (mut c, _) = Client::connect(&addr).unwrap();
                c.cmd("EHLO load.localhost").unwrap();
                let mut lat = Vec::with_capacity(per);
                for k in 0..per {
                    let t = Instant::now();
                    let r = c
                        .send("ada@clinic.example", &[&to], &msgs[s * per + k])
                        .unwrap();
                    assert!(r.starts_with("250"), "{r}");
                    lat.push(t.elapsed());
                }
                let _ = c.cmd("QUIT");
                lat
            })
        })
        .collect();
    let mut lat: Vec<Duration> = handles
        .into_iter()
        .flat_map(|h| h.join().unwrap())
        .collect();
    let accepted = start.elapsed();
    assert!(
        wait_until(Duration::from_secs(600), || sink.count() >= before + total),
        "{name}: the sink got {} of {total}",
        sink.count() - before
    );
    let end_to_end = start.elapsed();
    lat.sort();
    Result {
        name,
        p50: lat[lat.len() / 2],
        p99: lat[(lat.len() * 99 / 100).min(lat.len() - 1)],
        accepted_per_s: total as f64 / accepted.as_secs_f64(),
        end_to_end_per_s: total as f64 / end_to_end.as_secs_f64(),
    }
}

/// Per-metric medians over the rounds.
fn median(rs: Vec<&Result>) -> Result {
    let mid = |mut v: Vec<f64>| {
        v.sort_by(|a, b| a.total_cmp(b));
        v[v.len() / 2]
    };
    Result {
        name: rs[0].name,
        p50: Duration::from_secs_f64(mid(rs.iter().map(|r| r.p50.as_secs_f64()).collect())),
        p99: Duration::from_secs_f64(mid(rs.iter().map(|r| r.p99.as_secs_f64()).collect())),
        accepted_per_s: mid(rs.iter().map(|r| r.accepted_per_s).collect()),
        end_to_end_per_s: mid(rs.iter().map(|r| r.end_to_end_per_s).collect()),
    }
}

fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let sessions = args.first().copied().unwrap_or(8);
    let per = args.get(1).copied().unwrap_or(250);

    let pki = Pki::new();
    let partner = pki.issue("gw@smime-partner.test", KeyKind::Rsa(2048));
    let tmp = tempfile::tempdir().unwrap();
    smime_partner_directory(tmp.path(), &partner.cert);
    let sink = SmtpSink::start(&[]);
    let rt = runtime();
    let mut cfg = test_config(tmp.path(), &sink.addr(), "dir:inbox");
    cfg.public.listen = String::new();
    cfg.workers = 8;
    let relay = rt.block_on(postern_relay::start(&cfg)).unwrap();
    let postern = relay.internal_addr.unwrap().to_string();
    let postfix = Postfix::start(sink.port);
    let postfix_addr = format!("127.0.0.1:{}", postfix.port);

    // Warm-up (connections, page cache, Postfix's processes), not measured.
    load("warm-up", &postern, "c@gmail.test", &sink, 2, 20);
    load("warm-up", &postfix_addr, "c@gmail.test", &sink, 2, 20);

    // Three rounds, scenarios interleaved (the reference first in each), medians reported:
    // fsync latency on a shared disk is noisy, and the sink's folder only grows.
    let mut rounds: Vec<[Result; 3]> = Vec::new();
    for _ in 0..3 {
        let reference = load(
            "postfix plain (reference)",
            &postfix_addr,
            "c@gmail.test",
            &sink,
            sessions,
            per,
        );
        rounds.push([
            load(
                "postern plain",
                &postern,
                "c@gmail.test",
                &sink,
                sessions,
                per,
            ),
            load(
                "postern S/MIME",
                &postern,
                "lab@smime-partner.test",
                &sink,
                sessions,
                per,
            ),
            reference,
        ]);
    }
    let results: Vec<Result> = (0..3)
        .map(|i| median(rounds.iter().map(|r| &r[i]).collect()))
        .collect();
    println!("\nrelay load: {sessions} sessions x {per} messages of 10 KB, loopback, same run, median of 3 rounds\n");
    println!(
        "{:<28} {:>10} {:>10} {:>14} {:>16}",
        "scenario", "p50 ms", "p99 ms", "accepted/s", "end-to-end/s"
    );
    for r in &results {
        println!(
            "{:<28} {:>10.2} {:>10.2} {:>14.0} {:>16.0}",
            r.name,
            r.p50.as_secs_f64() * 1e3,
            r.p99.as_secs_f64() * 1e3,
            r.accepted_per_s,
            r.end_to_end_per_s
        );
    }
    let reference = results[2].end_to_end_per_s;
    println!(
        "\nratio end-to-end vs Postfix plain: postern plain {:.2}x, postern S/MIME {:.2}x",
        results[0].end_to_end_per_s / reference,
        results[1].end_to_end_per_s / reference
    );
    rt.block_on(relay.shutdown(Duration::from_secs(10)));
}
