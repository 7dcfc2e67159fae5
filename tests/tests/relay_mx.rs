//! Direct delivery by MX, against a real DNS server (dnsmasq, on loopback) and Postfix's
//! smtp-sink as every MX: hosts tried by preference (the first one is down), the implicit MX
//! of a domain without MX records, and a bounce for a domain that does not exist.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is a failure report

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use postern_tests::relay::{
    free_port, message_id, runtime, send_mail, test_config, tracked_message, wait_until,
    write_directory, SmtpSink,
};

struct Dnsmasq(Child);

impl Drop for Dnsmasq {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn dnsmasq(port: u16) -> Dnsmasq {
    let child = Command::new("dnsmasq")
        .args([
            "--keep-in-foreground",
            &format!("--port={port}"),
            "--listen-address=127.0.0.1",
            "--bind-interfaces",
            "--no-resolv",
            "--no-hosts",
            "--pid-file=",
            "--user=root",
            // Everything under .test is ours: unknown names are NXDOMAIN.
            "--local=/test/",
            // partner.test: the preferred MX is down, the second one works.
            "--mx-host=partner.test,mx0.partner.test,5",
            "--mx-host=partner.test,mx1.partner.test,10",
            "--host-record=mx0.partner.test,127.0.0.2",
            "--host-record=mx1.partner.test,127.0.0.1",
            // implicit.test: no MX, an address: the domain is its own MX.
            "--host-record=implicit.test,127.0.0.1",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect(
            "dnsmasq (Debian package dnsmasq-base) must be installed: bash scripts/test does it",
        );
    // UDP: give it a moment to bind.
    std::thread::sleep(Duration::from_millis(500));
    Dnsmasq(child)
}

#[test]
fn mail_goes_to_each_domains_mx_in_order_and_unknown_domains_bounce() {
    let dns_port = free_port();
    let _dns = dnsmasq(dns_port);
    let sink = SmtpSink::start(&[]);
    let our_server = SmtpSink::start(&[]);
    let tmp = tempfile::tempdir().unwrap();
    write_directory(tmp.path(), "[our]\ndomains = [\"clinic.example\"]\n");
    let mut cfg = test_config(tmp.path(), &format!("mx:{}", sink.port), &our_server.addr());
    cfg.public.listen = String::new();
    cfg.dns = format!("127.0.0.1:{dns_port}");
    let rt = runtime();
    let relay = rt.block_on(postern_relay::start(&cfg)).unwrap();
    let m = tracked_message("mx-1", "x@partner.test", "hello");
    let r = send_mail(
        &relay.internal_addr.unwrap().to_string(),
        "ada@clinic.example",
        &["x@partner.test", "y@implicit.test", "z@nx.test"],
        &m,
    )
    .unwrap();
    assert!(r.starts_with("250"), "{r}");
    assert!(
        wait_until(Duration::from_secs(30), || sink.messages().len() >= 2),
        "{:?}",
        relay.spool().list().unwrap().0
    );
    let mut rcpts: Vec<String> = sink
        .messages()
        .into_iter()
        .inspect(|(_, m)| assert_eq!(message_id(m).as_deref(), Some("mx-1@clinic.example")))
        .flat_map(|(r, _)| r)
        .collect();
    rcpts.sort();
    assert_eq!(rcpts, ["x@partner.test", "y@implicit.test"]);
    assert!(wait_until(Duration::from_secs(20), || !our_server
        .messages()
        .is_empty()));
    let (to, dsn) = our_server.messages().remove(0);
    assert_eq!(to, ["ada@clinic.example"]);
    let t = String::from_utf8_lossy(&dsn).into_owned();
    assert!(t.contains("Final-Recipient: rfc822; z@nx.test"), "{t}");
    assert!(t.contains("Status: 5.1.2"), "{t}");
    assert!(!t.contains("x@partner.test\r\nAction"), "{t}");
    rt.block_on(relay.shutdown(Duration::from_secs(5)));
}
