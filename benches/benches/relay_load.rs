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
//! end-to-end messages/s (first MAIL until the sink has counted them all), and the relay's heap
//! allocations per message (count and bytes). Both MTAs fsync before
//! 250. Needs root (Postfix's master) and the postfix package.
//!
//! `cargo bench -p postern-benches --bench relay_load [-- SESSIONS MESSAGES_PER_SESSION]`
#![allow(clippy::unwrap_used, clippy::expect_used)] // a bench: a panic is a failure report

use std::time::Duration;

// Counts allocations, so the report can say how much the relay allocates per message.
#[global_allocator]
static GLOBAL: &stats_alloc::StatsAlloc<std::alloc::System> = &stats_alloc::INSTRUMENTED_SYSTEM;

use postern_benches::{load, median, Result};
use postern_tests::relay::{runtime, smime_partner_directory, test_config, Postfix, SmtpSink};
use postern_tests::{KeyKind, Pki};

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
    // Counts from smtp-sink itself: no dump file per message, and no settling time (dumps
    // are counted once unchanged for 300 ms) inside the end-to-end time.
    let sink = SmtpSink::counting();
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
    // Postfix runs in its own processes: in its scenario this process only runs the load
    // client, whose share the difference removes.
    let size = postern_benches::message(0, "lab@smime-partner.test").len() as f64;
    println!("\nheap per message in the relay (scenario minus the load client's share in the Postfix one):");
    for r in &results[..2] {
        let bytes = r.bytes_per_msg - results[2].bytes_per_msg;
        println!(
            "{:<28} {:>8.1} allocations {:>10.0} bytes = {:.1}x the message",
            r.name,
            r.allocs_per_msg - results[2].allocs_per_msg,
            bytes,
            bytes / size
        );
    }
    rt.block_on(relay.shutdown(Duration::from_secs(10)));
}
