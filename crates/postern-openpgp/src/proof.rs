//! Proof that a PGP/MIME message is encrypted, by its structure rather than its labels.

use openpgp::packet::Packet;
use openpgp::parse::{PacketParserResult, Parse};
use postern_core::MessageView;
use sequoia_openpgp as openpgp;

const BEGIN: &str = "-----BEGIN PGP MESSAGE-----";
const END: &str = "-----END PGP MESSAGE-----";

/// `Some(rebuilt message)` when `view` is a `multipart/encrypted` PGP/MIME message (RFC 3156
/// §4) of exactly two parts — the `application/pgp-encrypted` control part and one armored
/// OpenPGP message with nothing around the armour — whose packets are one or more PKESK/SKESK
/// followed by exactly one integrity-protected container (SEIPD v1 or v2) and
/// nothing else. The message is rebuilt from its header section and that armour alone, so a
/// preamble, an epilogue or text in part headers does not ride along.
pub fn proven_encrypted(view: &MessageView<'_>) -> Option<Vec<u8>> {
    let root = view.root();
    if root.mime_type() != "multipart/encrypted"
        || !root
            .content_type_param("protocol")?
            .eq_ignore_ascii_case("application/pgp-encrypted")
    {
        return None;
    }
    let boundary = root.content_type_param("boundary")?;
    let parts = view.top_level_parts();
    let [control, payload] = parts.as_slice() else {
        return None;
    };
    let control = MessageView::parse(control).ok()?;
    if control.root().mime_type() != "application/pgp-encrypted" {
        return None;
    }
    let version = control.root().transfer_decoded_body();
    if !String::from_utf8_lossy(&version)
        .trim()
        .eq_ignore_ascii_case("version: 1")
    {
        return None;
    }
    let payload = MessageView::parse(payload).ok()?;
    let body = payload.root().transfer_decoded_body();
    let text = std::str::from_utf8(&body).ok()?.trim();
    if !text.starts_with(BEGIN) || !text.ends_with(END) {
        return None;
    }
    if !packets_are_encrypted(text.as_bytes()) {
        return None;
    }
    let mut out = view.header_section().to_vec();
    for line in [
        format!("--{boundary}"),
        "Content-Type: application/pgp-encrypted".into(),
        "Content-Description: PGP/MIME version identification".into(),
        String::new(),
        "Version: 1".into(),
        String::new(),
        format!("--{boundary}"),
        "Content-Type: application/octet-stream; name=\"encrypted.asc\"".into(),
        "Content-Description: OpenPGP encrypted message".into(),
        "Content-Disposition: inline; filename=\"encrypted.asc\"".into(),
        String::new(),
    ] {
        out.extend_from_slice(line.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    for line in text.lines() {
        out.extend_from_slice(line.trim_end().as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    Some(out)
}

/// The armoured data holds ESKs, then exactly one encrypted container, then nothing.
fn packets_are_encrypted(armored: &[u8]) -> bool {
    // sequoia's parser has panicked on crafted input before (see open.rs); never let it
    // take the caller down.
    std::panic::catch_unwind(|| packets_are_encrypted_unguarded(armored)).unwrap_or(false)
}

fn packets_are_encrypted_unguarded(armored: &[u8]) -> bool {
    let Ok(mut ppr) = openpgp::parse::PacketParser::from_bytes(armored) else {
        return false;
    };
    let mut esks = 0usize;
    let mut containers = 0usize;
    while let PacketParserResult::Some(mut pp) = ppr {
        if pp.recursion_depth() != 0 {
            return false;
        }
        match &pp.packet {
            Packet::PKESK(_) | Packet::SKESK(_) if containers == 0 => esks += 1,
            Packet::SEIP(_) if esks > 0 && containers == 0 => {
                containers += 1;
                // The container's body must look like ciphertext: a genuine key packet in
                // front of an "encrypted" packet whose body is the plaintext would otherwise
                // leave readable by anyone who decodes the armour.
                let mut head = Vec::with_capacity(4096);
                if std::io::Read::read_to_end(&mut std::io::Read::take(&mut pp, 4096), &mut head)
                    .is_err()
                    || !postern_core::looks_random(&head)
                {
                    return false;
                }
            }
            // A Marker ("PGP") may precede everything (RFC 9580 §5.8); Padding is not
            // allowed: its bytes are arbitrary and would leave readable.
            Packet::Marker(_) if esks == 0 && containers == 0 => {}
            _ => return false,
        }
        // next(), not recurse(): the container stays unopened (we hold no key here).
        match pp.next() {
            Ok((_, next)) => ppr = next,
            Err(_) => return false,
        }
    }
    matches!(ppr, PacketParserResult::EOF(_)) && esks > 0 && containers == 1
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is a failure report
mod tests {
    use super::*;
    use openpgp::serialize::Marshal;
    use postern_core::{Policy, SealRequest};

    /// The armour of a message we really sealed to Bob's published key.
    fn genuine() -> String {
        let bob = std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../examples/data/bob.pub.asc"
        ))
        .unwrap();
        let msg = b"From: a@clinic.test\r\nSubject: x\r\n\r\nSSN 078-05-1120\r\n";
        let view = MessageView::parse(msg).unwrap();
        let policy = Policy::default();
        let certs = [bob];
        let sealed = crate::OpenPgpEnvelope::new()
            .seal_sync(&view, &SealRequest::encrypt(&certs, &policy))
            .unwrap();
        let text = String::from_utf8(sealed).unwrap();
        let (start, end) = (text.find(BEGIN).unwrap(), text.find(END).unwrap());
        text.get(start..end + END.len()).unwrap().to_string()
    }

    /// A genuine encrypted-key packet followed by an "encrypted" container whose body is the
    /// plaintext: the structure of a proof, the content readable by decoding the armour.
    #[test]
    fn a_container_whose_body_is_the_plaintext_is_no_proof() {
        let real = genuine();
        assert!(packets_are_encrypted(real.as_bytes()));
        let pile = openpgp::PacketPile::from_bytes(real.as_bytes()).unwrap();
        let mut forged = Vec::new();
        for p in pile.children() {
            if let Packet::PKESK(_) = p {
                p.serialize(&mut forged).unwrap();
            }
        }
        let plain: Vec<u8> = b"SSN 078-05-1120, the patient's record follows. "
            .iter()
            .copied()
            .cycle()
            .take(600)
            .collect();
        // A SEIPD v1 packet (tag 18, new format), two-octet length, version 1, then the text.
        let len = plain.len() + 1;
        forged.extend_from_slice(&[
            0xd2,
            (((len - 192) >> 8) + 192) as u8,
            ((len - 192) & 0xff) as u8,
            1,
        ]);
        forged.extend_from_slice(&plain);
        let mut armored = Vec::new();
        {
            let mut w =
                openpgp::armor::Writer::new(&mut armored, openpgp::armor::Kind::Message).unwrap();
            std::io::Write::write_all(&mut w, &forged).unwrap();
            w.finalize().unwrap();
        }
        // The packets parse as the proof's shape ...
        let shapes: Vec<_> = openpgp::PacketPile::from_bytes(&armored)
            .unwrap()
            .children()
            .map(|p| p.tag())
            .collect();
        assert_eq!(
            shapes.last(),
            Some(&openpgp::packet::Tag::SEIP),
            "{shapes:?}"
        );
        // ... and are no proof.
        assert!(!packets_are_encrypted(&armored));
    }
}
