//! Accuracy on a labelled corpus of 2,200 generated messages: 1,100 with one valid identifier
//! each in clinical or billing text (cards, SSNs, NPIs, DEA numbers, MBIs, MRNs; in plain, HTML,
//! quoted-printable and base64 bodies, CSV, PDF, DOCX and XLSX attachments, zips and attached
//! messages) and 1,100 with look-alikes that must not fire (order, phone, fax and tracking
//! numbers, bad-Luhn cards, dates, ZIP+4, IBANs, invalid SSN ranges, bad check digits).
//! Prints precision and recall per detector; fails below 0.99 for cards and SSNs and 0.95 for
//! the rest.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is a failure report

mod corpus;

use postern_dlp::{DlpPolicy, Inspector};

#[test]
fn precision_and_recall_per_detector() {
    let policy = DlpPolicy::from_toml(corpus::MRN_POLICY).unwrap();
    let inspector = Inspector::new(policy).unwrap();
    let samples = corpus::corpus(1100, 0x5eed_2026);
    assert_eq!(samples.len(), 2200);
    let mut tp = [0usize; 6];
    let mut fp = [0usize; 6];
    let mut fneg = [0usize; 6];
    let mut misses: Vec<String> = Vec::new();
    for s in &samples {
        let v = inspector.inspect(&s.raw);
        for (i, d) in corpus::DETECTORS.iter().enumerate() {
            let fired = v.count(&d.parse().expect("a detector the corpus names")) > 0;
            let wanted = s.expect.contains(d);
            match (wanted, fired) {
                (true, true) => tp[i] += 1,
                (true, false) => {
                    fneg[i] += 1;
                    misses.push(format!("missed {d} {} in {}", s.what, s.container));
                }
                (false, true) => {
                    fp[i] += 1;
                    misses.push(format!("false {d} in {}: {}", s.container, s.what));
                }
                (false, false) => {}
            }
        }
    }
    let (mut ttp, mut tfp, mut tfn) = (0, 0, 0);
    println!("\ndetector   precision  recall   (tp/fp/fn)");
    let mut failed = Vec::new();
    for (i, d) in corpus::DETECTORS.iter().enumerate() {
        let p = tp[i] as f64 / (tp[i] + fp[i]).max(1) as f64;
        let r = tp[i] as f64 / (tp[i] + fneg[i]).max(1) as f64;
        println!(
            "{d:<10} {p:>9.4} {r:>7.4}   ({}/{}/{})",
            tp[i], fp[i], fneg[i]
        );
        let target = if *d == "card" || *d == "ssn" {
            0.99
        } else {
            0.95
        };
        if p < target || r < target {
            failed.push(format!(
                "{d}: precision {p:.4}, recall {r:.4}, target {target}"
            ));
        }
        ttp += tp[i];
        tfp += fp[i];
        tfn += fneg[i];
    }
    println!(
        "overall    {:>9.4} {:>7.4}   ({ttp}/{tfp}/{tfn})",
        ttp as f64 / (ttp + tfp) as f64,
        ttp as f64 / (ttp + tfn) as f64
    );
    for m in misses.iter().take(20) {
        println!("  {m}");
    }
    assert!(failed.is_empty(), "{failed:?}");
}
