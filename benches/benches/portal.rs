//! The portal under load, beside references in the same run, all on loopback:
//!
//! 1. Page latency with 100 signed-in sessions at once: the message page (session lookup,
//!    unwrap the message key, decrypt, parse, sanitise, audit row, render) beside a static
//!    page of the same server (`/static/portal.css`: routing, middleware, no storage). Three
//!    rounds, static first in each; medians of p50/p99 and requests/s.
//! 2. The relay end to end: portal-delivered mail (stored encrypted + notification spooled and
//!    delivered) beside sealed S/MIME mail (RSA-2048), 10 KB messages.
//!
//! `cargo bench -p postern-benches --bench portal [-- SESSIONS REQUESTS_PER_SESSION]`
#![allow(clippy::unwrap_used, clippy::expect_used)] // a bench: a panic is a failure report

use std::time::{Duration, Instant};

use postern_benches::{load, median};
use postern_tests::http::Client as Http;
use postern_tests::relay::{
    free_port, runtime, send_mail, test_config, wait_until, write_directory, SmtpSink,
};
use postern_tests::{KeyKind, Pki};

struct Pages {
    name: &'static str,
    p50: Duration,
    p99: Duration,
    per_s: f64,
}

fn decoded(raw: &[u8]) -> String {
    mail_parser::MessageParser::default()
        .parse(raw)
        .and_then(|m| m.body_text(0).map(|t| t.into_owned()))
        .unwrap_or_default()
}

/// Each session GETs its own path `per` times, all sessions at once.
fn hammer(name: &'static str, web: &str, sessions: &[(String, String)], per: usize) -> Pages {
    let start = Instant::now();
    let handles: Vec<_> = sessions
        .iter()
        .cloned()
        .map(|(cookie, path)| {
            let web = web.to_string();
            std::thread::spawn(move || {
                let mut c = Http::new(&web);
                c.cookie = Some(cookie);
                (0..per)
                    .map(|_| {
                        let t = Instant::now();
                        let r = c.get(&path).unwrap();
                        assert_eq!(r.status, 200, "{path}");
                        t.elapsed()
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let mut lat: Vec<Duration> = handles
        .into_iter()
        .flat_map(|h| h.join().unwrap())
        .collect();
    let took = start.elapsed();
    lat.sort();
    Pages {
        name,
        p50: lat[lat.len() / 2],
        p99: lat[(lat.len() * 99 / 100).min(lat.len() - 1)],
        per_s: lat.len() as f64 / took.as_secs_f64(),
    }
}

fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let sessions = args.first().copied().unwrap_or(100);
    let per = args.get(1).copied().unwrap_or(20);

    let pki = Pki::new();
    let partner = pki.issue("gw@smime-partner.test", KeyKind::Rsa(2048));
    let tmp = tempfile::tempdir().unwrap();
    write_directory(
        tmp.path(),
        &format!(
            "[our]\ndomains = [\"clinic.example\"]\n\n[[partner]]\ndomain = \"smime-partner.test\"\n\
             standards = [\"smime\"]\npolicy = \"required\"\nsmime_certificates = [\"{}\"]\n\n\
             [[partner]]\ndomain = \"smallpractice.example\"\npolicy = \"portal\"\n",
            partner.cert.display()
        ),
    );
    let sink = SmtpSink::start(&[]);
    let port = free_port();
    let mut cfg = test_config(tmp.path(), &sink.addr(), "dir:inbox");
    cfg.public.listen = String::new();
    cfg.workers = 8;
    cfg.portal.listen = format!("127.0.0.1:{port}");
    cfg.portal.plain_http = true;
    // A bench signs in 100 sessions from one address within a minute.
    cfg.portal.per_client_per_minute = 1_000_000;
    let rt = runtime();
    let relay = rt.block_on(postern_relay::start(&cfg)).unwrap();
    let smtp = relay.internal_addr.unwrap().to_string();
    let web = format!("127.0.0.1:{port}");

    // One message and one signed-in session per simulated recipient.
    for i in 0..sessions {
        let to = format!("office{i}@smallpractice.example");
        let m = postern_benches::message(i, &to);
        assert!(send_mail(&smtp, "ada@clinic.example", &[&to], &m)
            .unwrap()
            .starts_with("250"));
    }
    assert!(wait_until(Duration::from_secs(120), || sink.count() >= sessions));
    let links: Vec<(String, String)> = sink
        .messages()
        .into_iter()
        .filter_map(|(rcpts, m)| {
            let t = decoded(&m);
            let at = t.find("/m/")?;
            let token: String = t
                .get(at + 3..)?
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
                .collect();
            Some((rcpts[0].clone(), token))
        })
        .collect();
    let mut signed: Vec<(String, String)> = Vec::new();
    for (to, token) in &links {
        let mut c = Http::new(&web);
        let csrf = c.get(&format!("/m/{token}")).unwrap().csrf().unwrap();
        c.post_form(&format!("/m/{token}/code"), &[("csrf", &csrf)])
            .unwrap();
        let mut code = None;
        assert!(wait_until(Duration::from_secs(60), || {
            code = sink.messages().into_iter().rev().find_map(|(r, m)| {
                let t = decoded(&m);
                (r[0] == *to && t.contains("one-time code"))
                    .then(|| {
                        t.lines()
                            .find(|l| l.starts_with("    "))
                            .map(|l| l.chars().filter(char::is_ascii_digit).collect::<String>())
                    })
                    .flatten()
            });
            code.is_some()
        }));
        let r = c
            .post_form(
                &format!("/m/{token}/verify"),
                &[("csrf", &csrf), ("code", &code.unwrap())],
            )
            .unwrap();
        assert_eq!(r.status, 303);
        signed.push((
            c.cookie.clone().unwrap(),
            r.header("location").unwrap().to_string(),
        ));
    }
    let statics: Vec<(String, String)> = signed
        .iter()
        .map(|(c, _)| (c.clone(), "/static/portal.css".to_string()))
        .collect();

    // Warm-up, not measured.
    hammer("warm-up", &web, &signed, 2);
    let mut rounds = Vec::new();
    for _ in 0..3 {
        let s = hammer("static page (reference)", &web, &statics, per);
        let m = hammer("message page", &web, &signed, per);
        rounds.push([s, m]);
    }
    let mid = |v: &mut Vec<f64>| {
        v.sort_by(|a, b| a.total_cmp(b));
        v[v.len() / 2]
    };
    println!("\nportal pages: {sessions} signed-in sessions at once, {per} requests each, loopback, median of 3 rounds\n");
    println!(
        "{:<26} {:>10} {:>10} {:>12}",
        "page", "p50 ms", "p99 ms", "requests/s"
    );
    for i in 0..2 {
        let name = rounds[0][i].name;
        let p50 = mid(&mut rounds
            .iter()
            .map(|r| r[i].p50.as_secs_f64() * 1e3)
            .collect());
        let p99 = mid(&mut rounds
            .iter()
            .map(|r| r[i].p99.as_secs_f64() * 1e3)
            .collect());
        let rps = mid(&mut rounds.iter().map(|r| r[i].per_s).collect());
        println!("{name:<26} {p50:>10.2} {p99:>10.2} {rps:>12.0}");
    }

    // The relay end to end: portal delivery beside sealing, same run, median of 3.
    let (smtp_sessions, smtp_per) = (8, 50);
    let mut e2e = Vec::new();
    for _ in 0..3 {
        e2e.push([
            load(
                "sealed S/MIME (reference)",
                &smtp,
                "lab@smime-partner.test",
                &sink,
                smtp_sessions,
                smtp_per,
            ),
            load(
                "portal delivery",
                &smtp,
                "office@smallpractice.example",
                &sink,
                smtp_sessions,
                smtp_per,
            ),
        ]);
    }
    let results: Vec<_> = (0..2)
        .map(|i| median(e2e.iter().map(|r| &r[i]).collect()))
        .collect();
    println!("\nrelay end to end: {smtp_sessions} sessions x {smtp_per} messages of 10 KB, median of 3 rounds\n");
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
    println!(
        "\nportal vs sealed, end to end: {:.2}x",
        results[1].end_to_end_per_s / results[0].end_to_end_per_s
    );
    rt.block_on(relay.shutdown(Duration::from_secs(10)));
}
