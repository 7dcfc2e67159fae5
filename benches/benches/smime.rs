//! S/MIME seal and open: Postern against OpenSSL's own CMS (through the `openssl` crate), same
//! keys, same content, same run.
//!
//! Postern's numbers include its MIME work (parse the message, build the inner entity, base64 the
//! result); OpenSSL's include the CMS step plus a base64 encode/decode so both produce or consume
//! a mailable body. Run: `cargo bench -p postern-benches --bench smime`.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a bench that cannot set up should stop

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use openssl::asn1::Asn1Time;
use openssl::cms::{CMSOptions, CmsContentInfo};
use openssl::hash::MessageDigest;
use openssl::pkey::PKey;
use openssl::rsa::Rsa;
use openssl::stack::Stack;
use openssl::symm::Cipher;
use openssl::x509::{X509NameBuilder, X509};
use postern_core::{
    ContentCipher, Credential, MessageView, OpenRequest, Policy, SealRequest, Standard,
};
use postern_smime::SmimeEnvelope;

struct Keys {
    cert: X509,
    key: PKey<openssl::pkey::Private>,
    cert_pem: Vec<u8>,
    key_pem: Vec<u8>,
}

fn keys() -> Keys {
    let rsa = Rsa::generate(2048).unwrap();
    let key = PKey::from_rsa(rsa).unwrap();
    let mut name = X509NameBuilder::new().unwrap();
    name.append_entry_by_text("CN", "bench@partner.example")
        .unwrap();
    let name = name.build();
    let mut b = X509::builder().unwrap();
    b.set_version(2).unwrap();
    b.set_subject_name(&name).unwrap();
    b.set_issuer_name(&name).unwrap();
    b.set_pubkey(&key).unwrap();
    b.set_not_before(&Asn1Time::days_from_now(0).unwrap())
        .unwrap();
    b.set_not_after(&Asn1Time::days_from_now(30).unwrap())
        .unwrap();
    let serial = openssl::bn::BigNum::from_u32(7)
        .unwrap()
        .to_asn1_integer()
        .unwrap();
    b.set_serial_number(&serial).unwrap();
    b.sign(&key, MessageDigest::sha256()).unwrap();
    let cert = b.build();
    Keys {
        cert_pem: cert.to_pem().unwrap(),
        key_pem: key.private_key_to_pem_pkcs8().unwrap(),
        cert,
        key,
    }
}

fn message(size: usize) -> Vec<u8> {
    let mut m = b"From: a@clinic.example\r\nTo: b@partner.example\r\nSubject: bench\r\nDate: Sat, 28 Nov 2026 10:00:00 +0000\r\nMessage-ID: <b@clinic.example>\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n".to_vec();
    let line = b"The quick brown fox jumps over the lazy dog; lab value 4.1 mmol/L.\r\n";
    while m.len() < size {
        m.extend_from_slice(line);
    }
    m
}

fn bench(c: &mut Criterion) {
    let k = keys();
    let policy = Policy::default();
    let recipients = vec![k.cert_pem.clone()];
    let creds = vec![Credential::with_secret(
        Standard::Smime,
        k.cert_pem.clone(),
        k.key_pem.clone(),
    )];
    let mut stack = Stack::new().unwrap();
    stack.push(k.cert.clone()).unwrap();
    let smime = SmimeEnvelope::new();

    for (cipher, ossl) in [
        (ContentCipher::Aes256Cbc, Cipher::aes_256_cbc()),
        (ContentCipher::Aes256Gcm, Cipher::aes_256_gcm()),
    ] {
        let mut seal = c.benchmark_group(format!("seal/{cipher}"));
        for size in [10 * 1024, 1024 * 1024] {
            let msg = message(size);
            seal.throughput(Throughput::Bytes(size as u64));
            if size > 100_000 {
                seal.sample_size(20);
            }
            let req = SealRequest::encrypt(&recipients, &policy).with_cipher(cipher);
            seal.bench_with_input(BenchmarkId::new("postern", size), &msg, |b, msg| {
                b.iter(|| {
                    let view = MessageView::parse(msg).unwrap();
                    smime.seal_sync(&view, &req).unwrap()
                })
            });
            seal.bench_with_input(BenchmarkId::new("openssl", size), &msg, |b, msg| {
                b.iter(|| {
                    let cms =
                        CmsContentInfo::encrypt(&stack, msg, ossl, CMSOptions::BINARY).unwrap();
                    openssl::base64::encode_block(&cms.to_der().unwrap())
                })
            });
        }
        seal.finish();

        let mut open = c.benchmark_group(format!("open/{cipher}"));
        for size in [10 * 1024, 1024 * 1024] {
            let msg = message(size);
            open.throughput(Throughput::Bytes(size as u64));
            if size > 100_000 {
                open.sample_size(20);
            }
            let view = MessageView::parse(&msg).unwrap();
            let sealed = smime
                .seal_sync(
                    &view,
                    &SealRequest::encrypt(&recipients, &policy).with_cipher(cipher),
                )
                .unwrap();
            let sealed_view = MessageView::parse(&sealed).unwrap();
            let b64 = String::from_utf8(sealed_view.body().to_vec())
                .unwrap()
                .replace("\r\n", "");
            let req = OpenRequest::new(&creds, &policy);
            open.bench_with_input(BenchmarkId::new("postern", size), &sealed, |b, sealed| {
                b.iter(|| {
                    let view = MessageView::parse(sealed).unwrap();
                    smime.open_sync(&view, &req).unwrap()
                })
            });
            open.bench_with_input(BenchmarkId::new("openssl", size), &b64, |b, b64| {
                b.iter(|| {
                    let der = openssl::base64::decode_block(b64).unwrap();
                    let cms = CmsContentInfo::from_der(&der).unwrap();
                    cms.decrypt(&k.key, &k.cert).unwrap()
                })
            });
        }
        open.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
