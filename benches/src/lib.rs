//! Shared pieces of the load benches: an SMTP load client that reports accept latency and
//! accepted/end-to-end throughput, and medians over rounds.
#![allow(clippy::unwrap_used, clippy::expect_used)] // benches: a panic is a failure report

use std::sync::Arc;
use std::time::{Duration, Instant};

use postern_tests::relay::{wait_until_every, Client, SmtpSink};

/// One scenario's numbers.
pub struct Result {
    /// Scenario.
    pub name: &'static str,
    /// Accept latency (MAIL FROM to the 250 after DATA), median.
    pub p50: Duration,
    /// Accept latency, 99th percentile.
    pub p99: Duration,
    /// Messages accepted per second.
    pub accepted_per_s: f64,
    /// Messages per second from the first MAIL until the sink holds them all.
    pub end_to_end_per_s: f64,
    /// Heap allocations per message in this process (load client, and the relay when it runs
    /// in this process), when the bench's global allocator is
    /// [`stats_alloc::INSTRUMENTED_SYSTEM`] (else 0).
    pub allocs_per_msg: f64,
    /// Bytes allocated per message, likewise (reallocations count what they grew by).
    pub bytes_per_msg: f64,
}

/// A 10 KB plain-text message.
pub fn message(i: usize, to: &str) -> Vec<u8> {
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

/// `sessions` SMTP sessions in parallel, `per` messages each to `to`; waits until `sink` has
/// received one message for each one sent (the copy, or for the portal its notification).
pub fn load(
    name: &'static str,
    addr: &str,
    to: &str,
    sink: &SmtpSink,
    sessions: usize,
    per: usize,
) -> Result {
    let heap = stats_alloc::Region::new(&stats_alloc::INSTRUMENTED_SYSTEM);
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
    // Polled often: the poll's own granularity is part of the end-to-end time (a counting
    // sink's count is one atomic load).
    assert!(
        wait_until_every(Duration::from_secs(600), Duration::from_millis(1), || {
            sink.count() >= before + total
        }),
        "{name}: the sink got {} of {total}",
        sink.count() - before
    );
    let end_to_end = start.elapsed();
    let heap = heap.change();
    lat.sort();
    Result {
        name,
        p50: lat[lat.len() / 2],
        p99: lat[(lat.len() * 99 / 100).min(lat.len() - 1)],
        accepted_per_s: total as f64 / accepted.as_secs_f64(),
        end_to_end_per_s: total as f64 / end_to_end.as_secs_f64(),
        allocs_per_msg: (heap.allocations + heap.reallocations) as f64 / total as f64,
        bytes_per_msg: (heap.bytes_allocated as f64 + heap.bytes_reallocated.max(0) as f64)
            / total as f64,
    }
}

/// Per-metric medians over the rounds.
pub fn median(rs: Vec<&Result>) -> Result {
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
        allocs_per_msg: mid(rs.iter().map(|r| r.allocs_per_msg).collect()),
        bytes_per_msg: mid(rs.iter().map(|r| r.bytes_per_msg).collect()),
    }
}
