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
    while let PacketParserResult::Some(pp) = ppr {
        if pp.recursion_depth() != 0 {
            return false;
        }
        match &pp.packet {
            Packet::PKESK(_) | Packet::SKESK(_) if containers == 0 => esks += 1,
            Packet::SEIP(_) if esks > 0 && containers == 0 => containers += 1,
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
