//! The content-inspection hook. The relay calls it for every outgoing message; the default is
//! [`DlpInspector`] (postern-dlp with the configured policy), embedders can plug their own.

use postern_dlp::{Action, Inspector};
use postern_router::{ContentAction, Envelope};

/// What inspection decided, for the router and the quarantine.
#[derive(Debug, Clone)]
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

/// Looks at an outgoing message before the router decides how it leaves.
pub trait ContentInspector: Send + Sync + std::fmt::Debug {
    /// The verdict (`None`: not inspected).
    fn inspect(&self, envelope: &Envelope, message: &[u8]) -> Option<Inspection>;
}

/// Inspects nothing.
#[derive(Debug, Default, Clone, Copy)]
pub struct PassThrough;

impl ContentInspector for PassThrough {
    fn inspect(&self, _: &Envelope, _: &[u8]) -> Option<Inspection> {
        None
    }
}

/// postern-dlp as the relay's inspector.
#[derive(Debug)]
pub struct DlpInspector(pub Inspector);

impl ContentInspector for DlpInspector {
    fn inspect(&self, _: &Envelope, message: &[u8]) -> Option<Inspection> {
        let v = self.0.inspect(message);
        let action = match v.action {
            Action::Allow | Action::Tag => ContentAction::Allow,
            Action::Portal => ContentAction::Portal,
            Action::Quarantine => ContentAction::Quarantine,
            Action::Block => ContentAction::Block,
        };
        Some(Inspection {
            action,
            tag: v.action == Action::Tag,
            summary: v.summary(),
            detail: serde_json::to_value(&v).unwrap_or(serde_json::Value::Null),
            partner_mail: self.0.policy().inspect_partner_mail,
        })
    }
}
