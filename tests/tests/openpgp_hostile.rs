//! Hostile OpenPGP input: garbage packets, truncated armor, compression bombs, tampering.
//! Every case is a typed error or a verdict, never a panic, never unbounded memory.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is a failure report

use postern_core::{mime, Error, MessageView, OpenRequest, Policy, SealRequest};
use postern_openpgp::OpenPgpEnvelope;
use postern_tests::{body_lf, pgp_credential, read_data, sample_message, Gpg, PgpKind};
use proptest::prelude::*;

const BRE: &str = "openpgp/draft-bre-openpgp-samples";

fn encrypted_mail(armored: &[u8]) -> Vec<u8> {
    mime::multipart(
        b"From: x@partner.example\r\n",
        "multipart/encrypted; protocol=\"application/pgp-encrypted\"",
        "",
        &[
            b"Content-Type: application/pgp-encrypted\r\n\r\nVersion: 1\r\n",
            &[
                b"Content-Type: application/octet-stream\r\n\r\n".as_slice(),
                armored,
            ]
            .concat(),
        ],
    )
}

fn open_with(env: &OpenPgpEnvelope, mail: &[u8]) -> Result<postern_core::Opened, Error> {
    let keys = vec![pgp_credential(&read_data(&format!("{BRE}/bob.sec.asc")))];
    let signers = vec![read_data(&format!("{BRE}/alice.pub.asc"))];
    let policy = Policy::default();
    postern_tests::pgp_open_both(
        env,
        mail,
        &OpenRequest::new(&keys, &policy).with_expected_signers(&signers),
    )
}

#[test]
fn a_compression_bomb_stops_at_the_limit() {
    let g = Gpg::new();
    g.import(&read_data(&format!("{BRE}/bob.pub.asc")));
    // 32 MiB of zeros compress to a few tens of KiB.
    let zeros = vec![0u8; 32 * 1024 * 1024];
    let armored = g.ok(
        &[
            "--armor",
            "--compress-algo",
            "zlib",
            "-z",
            "9",
            "--encrypt",
            "-r",
            "bob@openpgp.example",
        ],
        &zeros,
    );
    assert!(armored.len() < 200_000);
    let env = OpenPgpEnvelope::new().with_max_output(1024 * 1024);
    let e = open_with(&env, &encrypted_mail(&armored)).unwrap_err();
    assert!(e.to_string().contains("limit"), "{e}");
}

/// Plaintext streams out of the decryptor before the integrity check at the end of the
/// message: a byte changed deep inside a large message must still fail the whole open, for
/// gpg's SEIPDv1 (MDC) and for our own sealing.
#[test]
fn tampering_deep_in_a_large_message_fails_the_whole_open() {
    let g = Gpg::new();
    let bob_pub = read_data(&format!("{BRE}/bob.pub.asc"));
    g.import(&bob_pub);
    let msg = sample_message(2048);
    let binary_mail = |packets: &[u8]| {
        let mut part =
            b"Content-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\n"
                .to_vec();
        part.extend_from_slice(&mime::base64_lines(packets));
        mime::multipart(
            b"From: x@partner.example\r\n",
            "multipart/encrypted; protocol=\"application/pgp-encrypted\"",
            "",
            &[
                b"Content-Type: application/pgp-encrypted\r\n\r\nVersion: 1\r\n",
                &part,
            ],
        )
    };
    // gpg, uncompressed so the change lands in the encrypted literal data.
    let gpg = g.ok(
        &[
            "--compress-algo",
            "none",
            "--encrypt",
            "-r",
            "bob@openpgp.example",
        ],
        &msg,
    );
    // Ours, dearmored by sequoia's reader into packets.
    let policy = Policy::default();
    let ours = OpenPgpEnvelope::new()
        .seal_sync(
            &MessageView::parse(&msg).unwrap(),
            &SealRequest::encrypt(std::slice::from_ref(&bob_pub), &policy),
        )
        .unwrap();
    let ours = MessageView::parse(&ours).unwrap();
    let armored = ours.top_level_parts()[1].to_vec();
    let at = armored.windows(5).position(|w| w == b"-----").unwrap();
    let ours = g.ok(&["--dearmor"], &armored[at..]);
    let env = OpenPgpEnvelope::new();
    for (who, packets) in [("gpg", gpg), ("ours", ours)] {
        assert!(packets.len() > 2_000_000, "{who}");
        let opened = open_with(&env, &binary_mail(&packets)).unwrap();
        let (got, want) = (body_lf(&opened.message), body_lf(&msg));
        assert!(got.ends_with(&want) && want.len() > 2_000_000, "{who}");
        for at in [packets.len() / 2, packets.len() - 100] {
            let mut changed = packets.clone();
            changed[at] ^= 0x10;
            let e = open_with(&env, &binary_mail(&changed)).unwrap_err();
            assert!(!e.is_temporary(), "{who} at {at}: {e}");
            // Armored (without the optional checksum, so the armor itself is sound): the
            // handed-over open dearmors it in place and streams it through sequoia.
            let mut armored = b"-----BEGIN PGP MESSAGE-----\r\n\r\n".to_vec();
            armored.extend_from_slice(&mime::base64_lines(&changed));
            armored.extend_from_slice(b"-----END PGP MESSAGE-----\r\n");
            let e = open_with(&env, &encrypted_mail(&armored)).unwrap_err();
            assert!(!e.is_temporary(), "{who} at {at}, armored: {e}");
        }
    }
}

#[test]
fn garbage_and_truncated_armor_are_errors() {
    let env = OpenPgpEnvelope::new();
    for junk in [
        &b"-----BEGIN PGP MESSAGE-----\r\n\r\nnot base64 at all!!!\r\n-----END PGP MESSAGE-----\r\n"[..],
        b"-----BEGIN PGP MESSAGE-----\r\n\r\nhQEMA1234\r\n",
        b"\x85\xff\xff\xff\xff\x03garbage",
        b"",
    ] {
        let e = open_with(&env, &encrypted_mail(junk)).unwrap_err();
        assert!(!e.is_temporary(), "{e}");
    }
    // "multipart/encrypted" around a message that is not encrypted is refused, so plaintext
    // dressed up as encrypted can never pass for protected mail.
    let e = open_with(&env, &encrypted_mail(&nested(1))).unwrap_err();
    assert!(e.to_string().contains("not encrypted"), "{e}");
    // Packets nested 200 deep (compressed-data packets, "uncompressed" algorithm) in an inline
    // message: refused by the parser's depth limit, quickly.
    let mut mail = b"From: x@partner.example\r\nContent-Type: text/plain\r\n\r\n-----BEGIN PGP MESSAGE-----\r\n\r\n".to_vec();
    mail.extend_from_slice(postern_tests::base64_encode(&nested(200)).as_bytes());
    mail.extend_from_slice(b"\r\n-----END PGP MESSAGE-----\r\n");
    let start = std::time::Instant::now();
    let r = open_with(&env, &mail);
    assert!(r.is_err(), "{:?}", r.map(|o| o.report));
    assert!(start.elapsed() < std::time::Duration::from_secs(10));
    // The same two levels deep is an ordinary (unsigned, unencrypted) inline message.
    let mut mail = b"From: x@partner.example\r\nContent-Type: text/plain\r\n\r\n-----BEGIN PGP MESSAGE-----\r\n\r\n".to_vec();
    mail.extend_from_slice(postern_tests::base64_encode(&nested(2)).as_bytes());
    mail.extend_from_slice(b"\r\n-----END PGP MESSAGE-----\r\n");
    let o = open_with(&env, &mail).unwrap();
    assert!(o.message.ends_with(b"innermost"));
    assert_eq!(
        o.report.signature_verdict(),
        postern_core::SignatureVerdict::Absent
    );
}

/// An OpenPGP packet with the new-format header (RFC 9580 §4.2.1).
fn packet(tag: u8, body: &[u8]) -> Vec<u8> {
    let mut p = vec![0xC0 | tag];
    let n = body.len();
    if n < 192 {
        p.push(n as u8);
    } else if n < 8384 {
        p.push((((n - 192) >> 8) + 192) as u8);
        p.push(((n - 192) & 0xff) as u8);
    } else {
        p.push(0xff);
        p.extend_from_slice(&(n as u32).to_be_bytes());
    }
    p.extend_from_slice(body);
    p
}

/// A literal data packet inside `depth` compressed-data packets.
fn nested(depth: usize) -> Vec<u8> {
    let mut data = packet(11, b"b\x00\x00\x00\x00\x00innermost");
    for _ in 0..depth {
        data = packet(8, &[&[0u8][..], &data].concat());
    }
    data
}

#[test]
fn a_wrong_signature_key_and_tampering_are_verdicts_or_errors() {
    let g = Gpg::new();
    g.import(&read_data(&format!("{BRE}/bob.pub.asc")));
    g.generate("Mallory <mallory@evil.example>", PgpKind::Ed25519, "never");
    let armored = g.ok(
        &[
            "--armor",
            "--sign",
            "-u",
            "mallory@evil.example",
            "--encrypt",
            "-r",
            "bob@openpgp.example",
        ],
        b"Content-Type: text/plain\r\n\r\nhi\r\n",
    );
    let o = open_with(&OpenPgpEnvelope::new(), &encrypted_mail(&armored)).unwrap();
    assert_eq!(
        o.report.signature_verdict(),
        postern_core::SignatureVerdict::Invalid,
        "Mallory is not the partner"
    );
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn mutated_pgp_mime_never_panics(
        flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6),
        cut in any::<prop::sample::Index>(),
        truncate in any::<bool>(),
    ) {
        static SEALED: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
        let sealed = SEALED.get_or_init(|| {
            let policy = Policy::default();
            let certs = vec![read_data(&format!("{BRE}/bob.pub.asc"))];
            let alice = pgp_credential(&read_data(&format!("{BRE}/alice.sec.asc")));
            let msg = sample_message(1);
            let view = MessageView::parse(&msg).unwrap();
            OpenPgpEnvelope::new()
                .seal_sync(&view, &SealRequest::encrypt(&certs, &policy).signed_by(&alice))
                .unwrap()
        });
        // Mutate the binary message under the armor, then re-armor it as base64.
        let v = MessageView::parse(sealed).unwrap();
        let armored = v.root().children()[1].decoded_body().to_vec();
        let text = String::from_utf8(armored).unwrap();
        let b64: String = text.lines().skip_while(|l| !l.is_empty()).skip(1).take_while(|l| !l.starts_with('=') && !l.starts_with("-----")).collect();
        let mut bin = postern_tests::base64_decode(&b64);
        for (i, x) in flips {
            let at = i.index(bin.len());
            bin[at] ^= x;
        }
        if truncate {
            bin.truncate(cut.index(bin.len() + 1));
        }
        let _ = open_with(&OpenPgpEnvelope::new(), &encrypted_mail(&bin));
    }
}

/// A SEIPDv1 message that decrypts with our key but makes sequoia 2.4.2 panic on its MDC
/// header (found by the `openpgp_open` fuzz target; see the provenance file). Whichever way it
/// arrives — the whole message, the PGP/MIME data part, an inline body — it is an error for
/// the caller, never a panic that escapes.
#[test]
fn a_parser_panic_on_a_message_to_our_key_is_an_error() {
    let data = read_data("openpgp/hostile/seipd1-mdc-header-eof.bin");
    let env = OpenPgpEnvelope::new().with_max_output(1 << 20);
    let mut inline =
        b"From: a@b.example\r\nContent-Type: text/plain\r\n\r\n-----BEGIN PGP MESSAGE-----\r\n\r\n"
            .to_vec();
    inline.extend_from_slice(&mime::base64_lines(&data));
    inline.extend_from_slice(b"-----END PGP MESSAGE-----\r\n");
    for mail in [data.clone(), encrypted_mail(&data), inline] {
        let outcome = std::panic::catch_unwind(|| open_with(&env, &mail));
        let result = outcome.expect("a panic escaped the backend");
        assert!(result.is_err(), "opened: {:?}", result.map(|o| o.report));
    }
}
