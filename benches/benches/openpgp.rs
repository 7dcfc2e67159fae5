//! OpenPGP seal and open: Postern (PGP/MIME around sequoia) against raw sequoia doing the same
//! encryption in the same run (the cost of our MIME handling), and against `gpg` as a process
//! for context. Run: `cargo bench -p postern-benches --bench openpgp`.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a bench that cannot set up should stop

use std::io::{Read, Write};
use std::process::{Command, Stdio};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use openpgp::cert::prelude::*;
use openpgp::crypto::SessionKey;
use openpgp::packet::{PKESK, SKESK};
use openpgp::parse::stream::{
    DecryptionHelper, DecryptorBuilder, MessageStructure, VerificationHelper,
};
use openpgp::parse::Parse;
use openpgp::policy::StandardPolicy;
use openpgp::serialize::stream::{Armorer, Encryptor, LiteralWriter, Message};
use openpgp::serialize::SerializeInto;
use openpgp::types::SymmetricAlgorithm;
use openpgp::{Cert, KeyHandle};
use postern_core::{Credential, MessageView, OpenRequest, Policy, SealRequest, Standard};
use postern_openpgp::OpenPgpEnvelope;
use sequoia_openpgp as openpgp;

fn message(size: usize) -> Vec<u8> {
    let mut m = b"From: a@clinic.example\r\nTo: b@partner.example\r\nSubject: bench\r\nDate: Sat, 28 Nov 2026 10:00:00 +0000\r\nMessage-ID: <b@clinic.example>\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n".to_vec();
    let line = b"The quick brown fox jumps over the lazy dog; lab value 4.1 mmol/L.\r\n";
    while m.len() < size {
        m.extend_from_slice(line);
    }
    m
}

/// Raw sequoia: armored SEIPD message to every encryption key, as postern-openpgp does it.
fn raw_encrypt(cert: &Cert, data: &[u8]) -> Vec<u8> {
    let p = StandardPolicy::new();
    let recipients: Vec<_> = cert
        .keys()
        .with_policy(&p, None)
        .supported()
        .alive()
        .revoked(false)
        .for_transport_encryption()
        .for_storage_encryption()
        .collect();
    let mut sink = Vec::new();
    let m = Message::new(&mut sink);
    let m = Armorer::new(m).build().unwrap();
    let m = Encryptor::for_recipients(m, recipients).build().unwrap();
    let mut w = LiteralWriter::new(m).build().unwrap();
    w.write_all(data).unwrap();
    w.finalize().unwrap();
    sink
}

struct Helper<'a>(&'a Cert);

impl VerificationHelper for Helper<'_> {
    fn get_certs(&mut self, _: &[KeyHandle]) -> openpgp::Result<Vec<Cert>> {
        Ok(Vec::new())
    }
    fn check(&mut self, _: MessageStructure) -> openpgp::Result<()> {
        Ok(())
    }
}

impl DecryptionHelper for Helper<'_> {
    fn decrypt(
        &mut self,
        pkesks: &[PKESK],
        _: &[SKESK],
        sym: Option<SymmetricAlgorithm>,
        decrypt: &mut dyn FnMut(Option<SymmetricAlgorithm>, &SessionKey) -> bool,
    ) -> openpgp::Result<Option<Cert>> {
        for ka in self.0.keys().secret() {
            let mut kp = ka.key().clone().into_keypair()?;
            for pkesk in pkesks {
                if let Some((algo, sk)) = pkesk.decrypt(&mut kp, sym) {
                    if decrypt(algo, &sk) {
                        return Ok(None);
                    }
                }
            }
        }
        Err(anyhow::anyhow!("no key"))
    }
}

fn raw_decrypt(cert: &Cert, armored: &[u8]) -> Vec<u8> {
    let p = StandardPolicy::new();
    let mut d = DecryptorBuilder::from_bytes(armored)
        .unwrap()
        .with_policy(&p, None, Helper(cert))
        .unwrap();
    let mut out = Vec::new();
    d.read_to_end(&mut out).unwrap();
    out
}

fn gpg(home: &std::path::Path, args: &[&str], input: &[u8]) -> Vec<u8> {
    let mut c = Command::new("gpg")
        .env("GNUPGHOME", home)
        .args(["--batch", "--no-tty", "--trust-model", "always", "--quiet"])
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdin = c.stdin.take().unwrap();
    let data = input.to_vec();
    let t = std::thread::spawn(move || stdin.write_all(&data));
    let out = c.wait_with_output().unwrap();
    t.join().unwrap().unwrap();
    assert!(out.status.success());
    out.stdout
}

fn bench(c: &mut Criterion) {
    // A GnuPG-compatible partner key: Cv25519, SEIPDv1 (what GnuPG 2.2 reads).
    let (cert, _) = CertBuilder::general_purpose(Some("Bench <bench@partner.example>"))
        .set_cipher_suite(CipherSuite::Cv25519)
        .set_features(openpgp::types::Features::empty().set_seipdv1())
        .unwrap()
        .generate()
        .unwrap();
    let public = cert.armored().to_vec().unwrap();
    let secret = cert.as_tsk().armored().to_vec().unwrap();
    let policy = Policy::default();
    let recipients = vec![public.clone()];
    let keys = vec![Credential::with_secret(
        Standard::OpenPgp,
        secret.clone(),
        secret.clone(),
    )];
    let env = OpenPgpEnvelope::new();
    let home = std::env::temp_dir().join(format!("postern-bench-gpg-{}", std::process::id()));
    std::fs::create_dir_all(&home).unwrap();
    gpg(&home, &["--import"], &secret);

    let mut seal = c.benchmark_group("openpgp-seal");
    for size in [10 * 1024, 1024 * 1024] {
        let msg = message(size);
        seal.throughput(Throughput::Bytes(size as u64));
        seal.sample_size(if size > 100_000 { 20 } else { 60 });
        let req = SealRequest::encrypt(&recipients, &policy);
        seal.bench_with_input(BenchmarkId::new("postern", size), &msg, |b, msg| {
            b.iter(|| {
                let v = MessageView::parse(msg).unwrap();
                env.seal_sync(&v, &req).unwrap()
            })
        });
        seal.bench_with_input(BenchmarkId::new("sequoia", size), &msg, |b, msg| {
            b.iter(|| raw_encrypt(&cert, msg))
        });
        seal.bench_with_input(BenchmarkId::new("gpg-process", size), &msg, |b, msg| {
            b.iter(|| {
                gpg(
                    &home,
                    &["--armor", "--encrypt", "-r", "bench@partner.example"],
                    msg,
                )
            })
        });
    }
    seal.finish();

    let mut open = c.benchmark_group("openpgp-open");
    for size in [10 * 1024, 1024 * 1024] {
        let msg = message(size);
        open.throughput(Throughput::Bytes(size as u64));
        open.sample_size(if size > 100_000 { 20 } else { 60 });
        let v = MessageView::parse(&msg).unwrap();
        let sealed = env
            .seal_sync(&v, &SealRequest::encrypt(&recipients, &policy))
            .unwrap();
        let armored = raw_encrypt(&cert, &msg);
        let req = OpenRequest::new(&keys, &policy);
        open.bench_with_input(BenchmarkId::new("postern", size), &sealed, |b, sealed| {
            b.iter(|| {
                let v = MessageView::parse(sealed).unwrap();
                env.open_sync(&v, &req).unwrap()
            })
        });
        open.bench_with_input(BenchmarkId::new("sequoia", size), &armored, |b, armored| {
            b.iter(|| raw_decrypt(&cert, armored))
        });
        open.bench_with_input(
            BenchmarkId::new("gpg-process", size),
            &armored,
            |b, armored| b.iter(|| gpg(&home, &["--decrypt"], armored)),
        );
    }
    open.finish();
    let _ = Command::new("gpgconf")
        .env("GNUPGHOME", &home)
        .args(["--kill", "all"])
        .output();
    let _ = std::fs::remove_dir_all(&home);
}

criterion_group!(benches, bench);
criterion_main!(benches);
