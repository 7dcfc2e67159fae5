//! The inbound decision: mail from the internet to us. Protected mail from partners is opened
//! and delivered as ordinary mail with result headers; result headers that arrived from outside
//! are removed first, so no sender can claim a verified signature.

use std::sync::Arc;

use postern_core::{
    Address, MessageView, OpenRequest, Policy, Report, SecureEnvelope, SignatureStatus,
};

use crate::{Directory, Partner, PartnerPolicy};

/// Header fields Postern writes on inbound mail. Any field starting with this prefix that
/// arrives from outside is removed.
pub const RESULT_PREFIX: &str = "Postern-";

/// What to do with mail we cannot open, or with plaintext from a partner that must encrypt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InboundAction {
    /// Deliver with a header saying what happened.
    Tag,
    /// Hold for review.
    Quarantine,
}

/// The inbound policy knobs.
#[derive(Debug, Clone, Copy)]
pub struct InboundPolicy {
    /// A message we cannot decrypt (default: deliver as is, tagged — never dropped).
    pub undecryptable: InboundAction,
    /// Plaintext from a `required` partner (default: tag).
    pub plaintext_from_required: InboundAction,
}

impl Default for InboundPolicy {
    fn default() -> Self {
        InboundPolicy {
            undecryptable: InboundAction::Tag,
            plaintext_from_required: InboundAction::Tag,
        }
    }
}

/// What happens to one inbound message.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Inbound {
    /// Deliver `message` to the internal side.
    Deliver {
        /// The message: opened if it was protected, with Postern result headers on top.
        message: Vec<u8>,
        /// What opening found (`None`: the message was not protected).
        report: Option<Report>,
    },
    /// Hold for review.
    Quarantine {
        /// The message as received (result headers from outside removed).
        message: Vec<u8>,
        /// Why.
        reason: String,
    },
}

/// Opens inbound mail with the backends it was given.
#[derive(Debug, Clone)]
pub struct InboundRouter {
    backends: Vec<Arc<dyn SecureEnvelope>>,
    /// What to do when opening fails or a required partner sends plaintext.
    pub policy: InboundPolicy,
    /// The algorithm policy for opening.
    pub algorithms: Policy,
}

impl InboundRouter {
    /// An inbound router over these backends.
    pub fn new(backends: Vec<Arc<dyn SecureEnvelope>>) -> Self {
        InboundRouter {
            backends,
            policy: InboundPolicy::default(),
            algorithms: Policy::default(),
        }
    }

    /// Decides for one message from `mail_from` (the SMTP reverse path).
    pub async fn inbound(
        &self,
        dir: &Directory,
        mail_from: Option<&Address>,
        raw: &[u8],
    ) -> Inbound {
        let clean = strip_results(raw);
        let partner = mail_from.and_then(|a| dir.partner_for(a.domain()));
        let Ok(view) = MessageView::parse(&clean) else {
            return Inbound::Quarantine {
                message: clean.clone(),
                reason: "not a message (no header section)".into(),
            };
        };
        let Some(backend) = self.backends.iter().find(|b| b.recognises(&view)) else {
            return self.plaintext(partner, clean.clone());
        };
        let standard = backend.standard();
        let keys = dir.our_credentials(standard);
        let signers: Vec<Vec<u8>> = partner
            .map(|p| p.certificates_for(standard).to_vec())
            .unwrap_or_default();
        let req = OpenRequest::new(&keys, &self.algorithms)
            .with_trust_anchors(&dir.our.trust_anchors)
            .with_expected_signers(&signers);
        match backend.open(&view, &req).await {
            Ok(opened) => {
                // The opened message came from outside too: its result headers go as well.
                let inner = strip_results(&opened.message);
                let mut headers = result_headers(&opened.report, mail_from);
                headers.extend_from_slice(&inner);
                Inbound::Deliver {
                    message: headers,
                    report: Some(opened.report),
                }
            }
            Err(e) => match self.policy.undecryptable {
                InboundAction::Quarantine => Inbound::Quarantine {
                    message: clean.clone(),
                    reason: format!("cannot open {standard} message: {e}"),
                },
                InboundAction::Tag => Inbound::Deliver {
                    message: prepend(
                        &format!(
                            "{RESULT_PREFIX}Decrypted: failed ({standard}: {})\r\n",
                            one_line(&e.to_string())
                        ),
                        &clean,
                    ),
                    report: None,
                },
            },
        }
    }

    fn plaintext(&self, partner: Option<&Partner>, message: Vec<u8>) -> Inbound {
        let required = partner.is_some_and(|p| p.policy == PartnerPolicy::Required);
        if !required {
            return Inbound::Deliver {
                message,
                report: None,
            };
        }
        match self.policy.plaintext_from_required {
            InboundAction::Quarantine => Inbound::Quarantine {
                message,
                reason: "plaintext from a partner that must encrypt".into(),
            },
            InboundAction::Tag => Inbound::Deliver {
                message: prepend(
                    &format!(
                        "{RESULT_PREFIX}Warning: plaintext from a partner that must encrypt\r\n"
                    ),
                    &message,
                ),
                report: None,
            },
        }
    }
}

fn one_line(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

fn prepend(header: &str, message: &[u8]) -> Vec<u8> {
    let mut out = header.as_bytes().to_vec();
    out.extend_from_slice(message);
    out
}

/// `Postern-Decrypted` and `Postern-Signature` for an opened message.
fn result_headers(report: &Report, mail_from: Option<&Address>) -> Vec<u8> {
    let mut out = String::new();
    match &report.encryption {
        Some(e) => out.push_str(&format!(
            "{RESULT_PREFIX}Decrypted: {} {} ({})\r\n",
            report.standard, e.cipher, e.key_management
        )),
        None => out.push_str(&format!("{RESULT_PREFIX}Decrypted: no\r\n")),
    }
    let mut verdict = report.signature_verdict().to_string();
    let signer = report.signatures.iter().find_map(|s| s.signer.clone());
    // The signer must belong to the sender's organisation: a valid signature by someone else's
    // key says nothing about this sender.
    if verdict == "valid" {
        if let (Some(from), Some(signer)) = (mail_from, &signer) {
            let same_org = Address::new(signer)
                .map(|s| s.domain().is_within(from.domain()) || from.domain().is_within(s.domain()))
                .unwrap_or(false);
            if !same_org {
                verdict = "invalid".into();
                out.push_str(&format!(
                    "{RESULT_PREFIX}Signature-Problem: signer {} is not of the sender's domain {}\r\n",
                    one_line(signer),
                    from.domain()
                ));
            }
        }
    }
    out.push_str(&format!("{RESULT_PREFIX}Signature: {verdict}"));
    if let Some(s) = &signer {
        out.push_str(&format!(" signer={}", one_line(s)));
    }
    if let Some(why) = report.signatures.iter().find_map(|s| match &s.status {
        SignatureStatus::Valid => None,
        SignatureStatus::Invalid(w)
        | SignatureStatus::Refused(w)
        | SignatureStatus::SignerUnknown(w) => Some(w.clone()),
        other => Some(format!("{other:?}")),
    }) {
        out.push_str(&format!(" reason=\"{}\"", one_line(&why).replace('"', "'")));
    }
    out.push_str("\r\n");
    out.into_bytes()
}

/// Removes every `Postern-*` header field (with its folded lines) from the top-level header
/// section. Only we may write them.
pub fn strip_results(message: &[u8]) -> Vec<u8> {
    let Ok(view) = MessageView::parse(message) else {
        return message.to_vec();
    };
    let mut out = Vec::with_capacity(message.len());
    let mut pos = 0;
    for h in view.headers() {
        if postern_core::mime::starts_with_ignore_case(h.name, RESULT_PREFIX) {
            let start = h.raw.as_ptr() as usize - message.as_ptr() as usize;
            out.extend_from_slice(&message[pos..start]);
            pos = start + h.raw.len();
        }
    }
    out.extend_from_slice(&message[pos..]);
    out
}
