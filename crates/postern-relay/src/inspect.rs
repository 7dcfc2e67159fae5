//! The content-inspection hook ([`ContentInspector`], defined with the gateway in
//! postern-router). The relay's default is [`DlpInspector`] (postern-dlp with the configured
//! policy); embedders can plug their own.

use postern_dlp::{Action, Inspector};
use postern_router::{ContentAction, Envelope};
pub use postern_router::{ContentInspector, Inspection, PassThrough};

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
