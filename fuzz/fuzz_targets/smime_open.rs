//! `open` on arbitrary bytes: as a whole message, and as the CMS body of a pkcs7-mime message,
//! with a real decryption key loaded (the published RFC 9216 sample key of Bob). Opening a
//! message handed over (decoded and decrypted in its own buffer) must agree with opening it
//! borrowed: the same message and report, or the same error.
#![no_main]

#[path = "agree.rs"]
mod agree;

use libfuzzer_sys::fuzz_target;
use postern_core::{Credential, MessageView, OpenRequest, Policy, Standard};
use postern_smime::SmimeEnvelope;

const BOB_CERT: &[u8] = include_bytes!("../../tests/data/smime/examples-cms/certs-and-keys/lamps-bob.encrypt.crt");
const BOB_KEY: &[u8] = include_bytes!("../../tests/data/smime/examples-cms/certs-and-keys/lamps-bob.decrypt.p8.pem");
const CA: &[u8] = include_bytes!("../../tests/data/smime/rfc9216/Sample_LAMPS_RSA_Certification_Authority.selfsigned.pem");

fuzz_target!(|data: &[u8]| {
    let keys = [Credential::with_secret(Standard::Smime, BOB_CERT.to_vec(), BOB_KEY.to_vec())];
    let anchors = [CA.to_vec()];
    let policy = Policy::default();
    let req = OpenRequest::new(&keys, &policy).with_trust_anchors(&anchors);
    let smime = SmimeEnvelope::new();
    both(&smime, data, &req);
    // The same bytes as the DER body of an enveloped message (base64 as a mailer would send it).
    let mut mail = b"From: a@b.example\r\nContent-Type: application/pkcs7-mime; smime-type=enveloped-data\r\nContent-Transfer-Encoding: base64\r\n\r\n".to_vec();
    mail.extend_from_slice(&base64(data));
    both(&smime, &mail, &req);
});

fn both(smime: &SmimeEnvelope, mail: &[u8], req: &OpenRequest<'_>) {
    let borrowed = MessageView::parse(mail).and_then(|v| smime.open_sync(&v, req));
    let owned = smime.open_owned_sync(mail.to_vec(), req);
    agree::agree(borrowed, owned);
}

fn base64(d: &[u8]) -> Vec<u8> {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = Vec::with_capacity(d.len() * 4 / 3 + 4);
    for c in d.chunks(3) {
        let n = (u32::from(c[0]) << 16)
            | (u32::from(*c.get(1).unwrap_or(&0)) << 8)
            | u32::from(*c.get(2).unwrap_or(&0));
        for i in 0..4 {
            out.push(if i <= c.len() { T[((n >> (18 - 6 * i)) & 63) as usize] } else { b'=' });
        }
    }
    out
}
