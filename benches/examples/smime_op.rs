//! One S/MIME operation repeated, ours or OpenSSL's, for instruction counts under callgrind
//! (deterministic where wall-clock time on a shared machine is not):
//!
//! ```text
//! cargo build --release -p postern-benches --example smime_op
//! valgrind --tool=callgrind --callgrind-out-file=/dev/null \
//!     target/release/examples/smime_op seal postern 1048576 10 aes256-cbc
//! ```
//!
//! Key generation and the message are made before the operation's loop; subtract a run with
//! 0 iterations to get the cost of the operations alone.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a measuring tool: a panic is a report

use openssl::cms::{CMSOptions, CmsContentInfo};
use openssl::pkey::PKey;
use openssl::stack::Stack;
use openssl::symm::Cipher;
use openssl::x509::X509;
use postern_core::{
    ContentCipher, Credential, MessageView, OpenRequest, Policy, SealRequest, Standard,
};
use postern_smime::SmimeEnvelope;

const CERT: &[u8] = include_bytes!("../../examples/data/lamps-bob.encrypt.crt");
const KEY: &[u8] = include_bytes!("../../examples/data/lamps-bob.decrypt.p8.pem");

fn message(size: usize) -> Vec<u8> {
    let mut m = b"From: a@clinic.example\r\nTo: b@partner.example\r\nSubject: bench\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n".to_vec();
    let line = b"The quick brown fox jumps over the lazy dog; lab value 4.1 mmol/L.\r\n";
    while m.len() < size {
        m.extend_from_slice(line);
    }
    m
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [op, who, size, iters, cipher] = args.as_slice() else {
        panic!("usage: smime_op seal|open postern|openssl SIZE ITERATIONS aes256-cbc|aes256-gcm");
    };
    let (size, iters): (usize, usize) = (size.parse().unwrap(), iters.parse().unwrap());
    let (ours, theirs) = match cipher.as_str() {
        "aes256-cbc" => (ContentCipher::Aes256Cbc, Cipher::aes_256_cbc()),
        "aes256-gcm" => (ContentCipher::Aes256Gcm, Cipher::aes_256_gcm()),
        other => panic!("cipher {other}"),
    };
    let msg = message(size);
    let policy = Policy::default();
    let certs = vec![CERT.to_vec()];
    let creds = vec![Credential::with_secret(
        Standard::Smime,
        CERT.to_vec(),
        KEY.to_vec(),
    )];
    let smime = SmimeEnvelope::new();
    let req = SealRequest::encrypt(&certs, &policy).with_cipher(ours);
    let sealed = smime
        .seal_sync(&MessageView::parse(&msg).unwrap(), &req)
        .unwrap();
    let x509 = X509::from_pem(CERT).unwrap();
    let key = PKey::private_key_from_pem(KEY).unwrap();
    let mut stack = Stack::new().unwrap();
    stack.push(x509.clone()).unwrap();
    let b64: String =
        String::from_utf8_lossy(MessageView::parse(&sealed).unwrap().body()).replace("\r\n", "");
    let mut out = 0usize;
    for _ in 0..iters {
        out += match (op.as_str(), who.as_str()) {
            ("seal", "postern") => smime
                .seal_sync(&MessageView::parse(&msg).unwrap(), &req)
                .unwrap()
                .len(),
            ("seal", "openssl") => {
                let cms =
                    CmsContentInfo::encrypt(&stack, &msg, theirs, CMSOptions::BINARY).unwrap();
                openssl::base64::encode_block(&cms.to_der().unwrap()).len()
            }
            ("open", "postern") => {
                let open = OpenRequest::new(&creds, &policy);
                smime
                    .open_sync(&MessageView::parse(&sealed).unwrap(), &open)
                    .unwrap()
                    .message
                    .len()
            }
            ("open", "openssl") => {
                let der = openssl::base64::decode_block(&b64).unwrap();
                CmsContentInfo::from_der(&der)
                    .unwrap()
                    .decrypt(&key, &x509)
                    .unwrap()
                    .len()
            }
            other => panic!("{other:?}"),
        };
    }
    println!("{out}");
}
