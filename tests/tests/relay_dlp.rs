//! Issue 11: the adversarial corpus through the running relay. Every message that carries a
//! card number or an SSN, however it was written or wrapped, is held; none reaches the next
//! hop. Look-alikes the text labels as something else go through. Prints caught/total per
//! technique.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is a failure report

use std::time::Duration;

use postern_tests::adversarial::{negatives_n, positives_n};
use postern_tests::relay::{
    runtime, send_mail, test_config, wait_until, write_directory, SmtpSink,
};

#[test]
fn disguised_identifiers_are_held_and_look_alikes_pass() {
    let tmp = tempfile::tempdir().unwrap();
    write_directory(tmp.path(), "[our]\ndomains = [\"clinic.example\"]\n");
    let sink = SmtpSink::start(&[]);
    let rt = runtime();
    let relay = rt
        .block_on(postern_relay::start(&test_config(
            tmp.path(),
            &sink.addr(),
            "dir:inbox",
        )))
        .unwrap();
    let addr = relay.internal_addr.unwrap().to_string();
    // Ten variants of each technique and look-alike, each with freshly generated numbers.
    let (pos, neg) = (positives_n(10), negatives_n(10));
    // Each message carries its own Message-ID, to tell which ones reached the sink.
    let tagged = |i: usize, msg: &[u8]| {
        [
            format!("Message-ID: <adv-{i}@clinic.example>\r\n").as_bytes(),
            msg,
        ]
        .concat()
    };
    for (i, (what, msg)) in pos.iter().chain(neg.iter()).enumerate() {
        let msg = tagged(i, msg);
        let r = send_mail(&addr, "ada@clinic.example", &["someone@gmail.test"], &msg).unwrap();
        assert!(r.starts_with("250"), "{what}: {r}");
    }
    assert!(
        wait_until(Duration::from_secs(60), || relay.queued() == 0
            && relay.metrics().held.get() as usize + sink.count()
                >= pos.len() + neg.len()),
        "held {}, delivered {}",
        relay.metrics().held.get(),
        sink.count()
    );
    std::thread::sleep(Duration::from_millis(500));
    let delivered: Vec<String> = sink
        .messages()
        .iter()
        .map(|(_, m)| String::from_utf8_lossy(m).replace("\r\n", "\n"))
        .collect();
    println!(
        "held {}, delivered {}",
        relay.metrics().held.get(),
        delivered.len()
    );
    let reached = |i: usize| {
        delivered
            .iter()
            .any(|d| d.contains(&format!("<adv-{i}@clinic.example>")))
    };
    // Per technique: (held, total) for identifiers, (delivered, total) for look-alikes.
    let mut by_technique: std::collections::BTreeMap<&str, (usize, usize)> = Default::default();
    let mut leaked = Vec::new();
    for (i, (what, _)) in pos.iter().enumerate() {
        let e = by_technique.entry(what).or_default();
        e.1 += 1;
        if reached(i) {
            leaked.push(*what);
        } else {
            e.0 += 1;
        }
    }
    let mut false_positives = Vec::new();
    let mut clean: std::collections::BTreeMap<&str, (usize, usize)> = Default::default();
    for (j, (what, _)) in neg.iter().enumerate() {
        let e = clean.entry(what).or_default();
        e.1 += 1;
        if reached(pos.len() + j) {
            e.0 += 1;
        } else {
            false_positives.push(*what);
        }
    }
    println!("technique                                  held (recall)");
    for (what, (held, total)) in &by_technique {
        println!("{what:<42} {held}/{total}");
    }
    println!("look-alike                                 delivered (no false positive)");
    for (what, (ok, total)) in &clean {
        println!("{what:<42} {ok}/{total}");
    }
    assert!(
        false_positives.is_empty(),
        "look-alikes held: {false_positives:?}"
    );
    assert!(leaked.is_empty(), "delivered in clear: {leaked:?}");
    assert_eq!(relay.metrics().held.get() as usize, pos.len());
    rt.block_on(relay.shutdown(Duration::from_secs(5)));
}

/// Issue 11: inline OpenPGP armour that is not encrypted, as GnuPG makes it (`--store`, and
/// `--sign` with compression), is read; an encrypted message is left alone.
#[test]
fn unencrypted_pgp_armour_from_gnupg_is_read() {
    use postern_tests::{Gpg, PgpKind};
    let gpg = Gpg::new();
    gpg.generate("Ada <ada@clinic.example>", PgpKind::Ed25519, "never");
    let text = b"Patient SSN 078-05-1120, seen today.\n";
    let inspector = postern_dlp::Inspector::new(postern_dlp::DlpPolicy::default()).unwrap();
    let found = |armour: &[u8]| {
        let msg = format!(
            "From: ada@clinic.example\r\nTo: x@gmail.test\r\nSubject: s\r\nContent-Type: text/plain\r\n\r\nSecure message below.\r\n{}\r\n",
            String::from_utf8_lossy(armour)
        );
        inspector
            .inspect(msg.as_bytes())
            .hits
            .iter()
            .any(|h| h.detector == postern_dlp::Detector::Ssn)
    };
    let stored = gpg.ok(&["--store", "--armor"], text);
    assert!(found(&stored), "gpg --store");
    let signed = gpg.ok(&["--sign", "--armor", "-u", "ada@clinic.example"], text);
    assert!(found(&signed), "gpg --sign (compressed)");
    let encrypted = gpg.ok(&["--encrypt", "--armor", "-r", "ada@clinic.example"], text);
    assert!(!found(&encrypted), "encrypted stays encrypted");
}
