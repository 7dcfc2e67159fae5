//! Nothing acknowledged is lost: 2,000 messages go into the `postern-relay` binary while it is
//! killed with SIGKILL six times at moments picked at random and restarted; afterwards every
//! message that got a 250 has reached the next hop (Postfix's smtp-sink), compared by
//! Message-ID. Duplicates are allowed (at-least-once, like Postfix) and reported.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is a failure report

mod common;

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use postern_tests::relay::{
    free_port, message_id, send_mail, smime_partner_directory, tracked_message, wait_until,
    SmtpSink,
};
use postern_tests::{KeyKind, Pki};

const MESSAGES: usize = 2000;
const KILLS: usize = 6;

#[test]
fn sigkill_at_random_moments_loses_no_acknowledged_message() {
    let pki = Pki::new();
    let partner = pki.issue("gw@smime-partner.test", KeyKind::Rsa(2048));
    let tmp = tempfile::tempdir().unwrap();
    let sink = SmtpSink::start(&[]);
    let port = free_port();
    smime_partner_directory(tmp.path(), &partner.cert);
    let config = common::write_config(tmp.path(), port, &sink.addr(), "dir:inbox", "1s", "");
    let log = tmp.path().join("relay.log");
    let mut relay = common::Relay::start(&config, &log, port, &[]);

    let acked_count = Arc::new(AtomicUsize::new(0));
    let addr = format!("127.0.0.1:{port}");
    let sender = {
        let acked_count = acked_count.clone();
        std::thread::spawn(move || {
            let mut acked = Vec::new();
            let mut resent = 0usize;
            for i in 0..MESSAGES {
                let to = if i % 2 == 0 {
                    "lab@smime-partner.test"
                } else {
                    "c@gmail.test"
                };
                let m = tracked_message(&format!("crash-{i}"), to, "results attached");
                loop {
                    match send_mail(&addr, "ada@clinic.example", &[to], &m) {
                        Ok(r) if r.starts_with("250") => break,
                        _ => {
                            // No 250: the client keeps the message and tries again, as an
                            // MTA would.
                            resent += 1;
                            std::thread::sleep(Duration::from_millis(50));
                        }
                    }
                }
                acked.push(format!("crash-{i}@clinic.example"));
                acked_count.fetch_add(1, Ordering::Relaxed);
            }
            (acked, resent)
        })
    };

    // Kill points: after a random number of acknowledged messages in each sixth of the run.
    let mut seed = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos() as u64;
    let mut rand = move |n: u64| {
        seed = seed
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (seed >> 33) % n
    };
    let slice = MESSAGES / (KILLS + 1);
    let mut kills = 0;
    for k in 0..KILLS {
        let at = slice * k + rand(slice as u64) as usize + 20;
        while acked_count.load(Ordering::Relaxed) < at {
            std::thread::sleep(Duration::from_millis(2));
        }
        // Sometimes mid-transaction, sometimes mid-delivery: wait a random few milliseconds.
        std::thread::sleep(Duration::from_millis(rand(40)));
        relay.0.kill().unwrap(); // SIGKILL
        relay.0.wait().unwrap();
        kills += 1;
        std::thread::sleep(Duration::from_millis(rand(300)));
        relay = common::Relay::start(&config, &log, port, &[]);
    }
    let (acked, resent) = sender.join().unwrap();
    assert_eq!(acked.len(), MESSAGES);
    assert_eq!(kills, KILLS);

    let wanted: BTreeSet<String> = acked.iter().cloned().collect();
    let start = Instant::now();
    let arrived = |sink: &SmtpSink| -> HashMap<String, usize> {
        let mut seen = HashMap::new();
        for (_, m) in sink.messages() {
            if let Some(id) = message_id(&m) {
                *seen.entry(id).or_insert(0) += 1;
            }
        }
        seen
    };
    wait_until(Duration::from_secs(240), || {
        let seen = arrived(&sink);
        wanted.iter().all(|id| seen.contains_key(id))
    });
    let seen = arrived(&sink);
    let lost: Vec<&String> = wanted.iter().filter(|id| !seen.contains_key(*id)).collect();
    let duplicates: usize = seen.values().map(|n| n - 1).sum();
    eprintln!(
        "crash test: {} acknowledged, {} kills, {} client retries, {} arrived ({} unique), \
         lost {}, duplicates {}, drained in {:.1}s after the last message",
        acked.len(),
        kills,
        resent,
        seen.values().sum::<usize>(),
        seen.len(),
        lost.len(),
        duplicates,
        start.elapsed().as_secs_f64()
    );
    // Every sealed copy is sealed, crash or not.
    for (rcpts, m) in sink.messages() {
        if rcpts.iter().any(|r| r.ends_with("@smime-partner.test")) {
            assert!(String::from_utf8_lossy(&m).contains("application/pkcs7-mime"));
        }
    }
    drop(relay);
    assert!(
        lost.is_empty(),
        "lost {} acknowledged messages, e.g. {:?}; relay log:\n{}",
        lost.len(),
        lost.iter().take(5).collect::<Vec<_>>(),
        std::fs::read_to_string(&log)
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains("ERROR") || l.contains("WARN"))
            .take(20)
            .collect::<Vec<_>>()
            .join("\n")
    );
}
