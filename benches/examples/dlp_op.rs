//! One content-inspection workload, repeated, for instruction counts under callgrind (the
//! dlp bench's whole-message corpora: `html` or `docs`):
//! `valgrind --tool=callgrind target/release/examples/dlp_op html 3`.
//!
//! `dlp_op seeds DIR` writes those messages and the adversarial corpus (one variant of each
//! technique and look-alike) into DIR, one file each: seeds for the `dlp_inspect` fuzz target,
//! so that it starts from every container the inspector opens.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a measuring tool: a panic is a report

#[path = "../../crates/postern-dlp/tests/corpus/mod.rs"]
mod corpus;

use postern_dlp::{DlpPolicy, Inspector};

fn main() {
    let mut args = std::env::args().skip(1);
    let which = args.next().unwrap_or_else(|| "html".into());
    if which == "seeds" {
        let dir = std::path::PathBuf::from(args.next().expect("a directory"));
        std::fs::create_dir_all(&dir).unwrap();
        let mut all: Vec<Vec<u8>> = corpus::corpus(300, 11).into_iter().map(|s| s.raw).collect();
        all.extend(corpus::corpus(300, 13).into_iter().map(|s| s.raw));
        all.extend(
            postern_tests::adversarial::positives()
                .into_iter()
                .map(|(_, m)| m),
        );
        all.extend(
            postern_tests::adversarial::negatives()
                .into_iter()
                .map(|(_, m)| m),
        );
        for (i, m) in all.iter().enumerate() {
            std::fs::write(dir.join(format!("seed-{i:04}")), m).unwrap();
        }
        println!("{} seeds in {}", all.len(), dir.display());
        return;
    }
    let times: usize = args.next().and_then(|n| n.parse().ok()).unwrap_or(1);
    let (seed, kinds): (u64, &[&str]) = match which.as_str() {
        "html" => (11, &["html"]),
        _ => (13, &["pdf", "docx"]),
    };
    let messages: Vec<Vec<u8>> = corpus::corpus(300, seed)
        .into_iter()
        .filter(|s| kinds.contains(&s.container))
        .map(|s| s.raw)
        .collect();
    let inspector = Inspector::new(DlpPolicy::from_toml(corpus::MRN_POLICY).unwrap()).unwrap();
    let mut hits = 0;
    for _ in 0..times {
        hits += messages
            .iter()
            .map(|m| inspector.inspect(m).hits.len())
            .sum::<usize>();
    }
    println!("{} messages, {hits} hits", messages.len());
}
