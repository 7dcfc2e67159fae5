//! DKIM on what leaves. Sealing rewrites the body, so the signature the sender's mail server
//! made no longer verifies and a receiver enforcing DMARC may refuse the mail; the gateway that
//! changed the message signs it again, last, over exactly what it sends.

use std::time::SystemTime;

use postern_core::MessageView;

use crate::Directory;

/// The `DKIM-Signature` fields to put on top of `message` as it leaves (CRLF line ends, as
/// sent): one per `[[our.dkim]]` key of its From domain (or of the nearest parent domain with
/// keys). Empty when the From is not one mailbox of a domain we have keys for. A key that
/// fails is named in [`DkimFields::failed`] (for the caller's log) and the copy leaves with the
/// others' signatures: never held, since an unsigned copy is what every receiver already
/// accepts from a sender without DKIM.
pub fn dkim_signatures(dir: &Directory, message: &[u8], now: SystemTime) -> DkimFields {
    let mut out = DkimFields::default();
    if dir.our.dkim.is_empty() {
        return out;
    }
    let Ok(view) = MessageView::parse(message) else {
        out.failed
            .push("the message's header section could not be read".into());
        return out;
    };
    let Some(from) = crate::addresses::single_from(&view) else {
        return out;
    };
    let signers = dir.our.dkim_for(from.domain().as_str());
    if signers.is_empty() {
        return out;
    }
    let sent = postern_core::mime::crlf(message);
    for s in signers {
        match s.sign(&sent, now) {
            Ok(field) => out.fields.extend_from_slice(&field),
            Err(e) => out
                .failed
                .push(format!("{} selector {}: {e}", s.domain(), s.selector())),
        }
    }
    out
}

/// What [`dkim_signatures`] made.
#[derive(Debug, Default)]
pub struct DkimFields {
    /// The `DKIM-Signature` fields, CRLF-ended, to put on top (empty: none).
    pub fields: Vec<u8>,
    /// Keys that could not sign, with why.
    pub failed: Vec<String>,
}
