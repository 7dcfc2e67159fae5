//! Content inspection throughput (MB/s), with memchr and the regex crate in the same run as
//! references: the matching pass over 1 MB of ordinary letter text (0.3 % digits, an identifier
//! or look-alike every 10 KB) and over 1 MB of the dense corpus text (13 % digits, one every few
//! hundred bytes: the worst case), then whole messages with an HTML body, and with PDF and DOCX
//! attachments.
//!
//! `cargo bench -p postern-benches --bench dlp`
#![allow(clippy::unwrap_used, clippy::expect_used)] // a bench: a panic is a failure report

#[path = "../../crates/postern-dlp/tests/corpus/mod.rs"]
mod corpus;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use postern_dlp::{DlpPolicy, Inspector, Scanner};

/// About 1 MB of the corpus's own text: dense with numbers and identifiers.
fn dense() -> String {
    let samples = corpus::corpus(600, 7);
    let mut text = String::new();
    for s in samples.iter().filter(|s| s.container == "plain") {
        let raw = String::from_utf8_lossy(&s.raw);
        if let Some((_, body)) = raw.split_once("\r\n\r\n") {
            text.push_str(body);
        }
    }
    let base = text.clone();
    while text.len() < 1 << 20 {
        text.push_str(&base);
    }
    text
}

fn bench(c: &mut Criterion) {
    let policy = DlpPolicy::from_toml(corpus::MRN_POLICY).unwrap();
    let scanner = Scanner::new(&policy).unwrap();
    let inspector = Inspector::new(policy).unwrap();
    let nine_digits = regex::Regex::new(r"\d{9}").unwrap();
    for (name, text) in [
        ("typical", corpus::typical_text(1 << 20, 3)),
        ("dense", dense()),
    ] {
        let mut g = c.benchmark_group(format!("dlp {name} text 1 MB"));
        g.throughput(Throughput::Bytes(text.len() as u64));
        g.bench_function("postern scan (matching pass)", |b| {
            b.iter(|| scanner.scan(std::hint::black_box(&text)).len())
        });
        g.bench_function("memchr count of one byte (reference)", |b| {
            b.iter(|| memchr::memchr_iter(b'7', std::hint::black_box(text.as_bytes())).count())
        });
        g.bench_function("regex \\d{9} count (reference)", |b| {
            b.iter(|| nine_digits.find_iter(std::hint::black_box(&text)).count())
        });
        g.finish();
    }

    let html: Vec<Vec<u8>> = corpus::corpus(300, 11)
        .into_iter()
        .filter(|s| s.container == "html")
        .map(|s| s.raw)
        .collect();
    let html_bytes: usize = html.iter().map(Vec::len).sum();
    let mut g = c.benchmark_group("dlp html messages");
    g.throughput(Throughput::Bytes(html_bytes as u64));
    g.bench_function("postern inspect", |b| {
        b.iter(|| {
            html.iter()
                .map(|m| inspector.inspect(m).hits.len())
                .sum::<usize>()
        })
    });
    g.finish();

    let docs: Vec<Vec<u8>> = corpus::corpus(300, 13)
        .into_iter()
        .filter(|s| s.container == "pdf" || s.container == "docx")
        .map(|s| s.raw)
        .collect();
    let doc_bytes: usize = docs.iter().map(Vec::len).sum();
    let mut g = c.benchmark_group("dlp pdf+docx messages");
    g.throughput(Throughput::Bytes(doc_bytes as u64));
    g.bench_function("postern inspect", |b| {
        b.iter(|| {
            docs.iter()
                .map(|m| inspector.inspect(m).hits.len())
                .sum::<usize>()
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
