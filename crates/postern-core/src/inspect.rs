//! The content-inspection plug: what an outgoing message's envelope is, and what a
//! [`ContentInspector`] (postern-dlp's, or an embedder's own) says about the copy that would
//! leave in clear. Beside [`crate::SecureEnvelope`] and [`crate::KeyStore`]: every plug trait
//! of the gateway lives in this crate, so an inspector depends on postern-core only.

use std::fmt;

use crate::Address;

/// The envelope of a message: SMTP MAIL FROM and RCPT TO. Whoever submits mail may forge it;
/// it says where a copy goes, never who wrote it.
#[derive(Debug, Clone)]
pub struct Envelope {
    /// Reverse path (`None` for the null sender of bounces).
    pub mail_from: Option<Address>,
    /// Every recipient.
    pub rcpt_to: Vec<Address>,
}

/// What content inspection decided for a message going out in clear.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ContentAction {
    /// Nothing found.
    Allow,
    /// Hold for review.
    Quarantine,
    /// Deliver through the portal instead.
    Portal,
    /// Refuse, with a reason to the sender.
    Block,
}

/// What content inspection decided about one message.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Inspection {
    /// The action for the copy that would leave in clear.
    pub action: ContentAction,
    /// Add a `Postern-DLP` header with the summary (the policy's `tag` action).
    pub tag: bool,
    /// One line, safe to log: action, detectors with counts, score — no values.
    pub summary: String,
    /// The full verdict (masked values only), kept with a quarantined message.
    pub detail: serde_json::Value,
    /// Hold plain copies to partners (TLS-required, or preferred without a key) too.
    pub partner_mail: bool,
}

/// Looks at an outgoing message before the router decides how it leaves. Called with the
/// recipients outside our domains only; the gateway runs it off the async workers when the
/// caller is async, so it may take its time.
pub trait ContentInspector: Send + Sync + fmt::Debug {
    /// The verdict (`None`: not inspected).
    fn inspect(&self, envelope: &Envelope, message: &[u8]) -> Option<Inspection>;
}

/// Inspects nothing. A gateway gets it only when its builder is told so by name
/// (`GatewayBuilder::without_inspection`): the default inspects.
#[derive(Debug, Default, Clone, Copy)]
pub struct PassThrough;

impl ContentInspector for PassThrough {
    fn inspect(&self, _: &Envelope, _: &[u8]) -> Option<Inspection> {
        None
    }
}
