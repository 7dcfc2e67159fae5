//! postern-dlp as the gateway's content inspector: the [`ContentInspector`] plug of
//! postern-core, so that an embedder gets inspection from this crate alone (no relay).

use postern_core::{ContentAction, ContentInspector, Envelope, Inspection};

use crate::{Action, DlpPolicy, Inspector, PolicyError};

/// postern-dlp behind the [`ContentInspector`] plug.
#[derive(Debug)]
pub struct DlpInspector(pub Inspector);

impl DlpInspector {
    /// The built-in policy ([`DlpPolicy::default`]): card numbers, SSNs and the other
    /// identifiers, quarantined when found in a copy that would leave in clear.
    pub fn builtin() -> Self {
        // The built-in policy is compiled in tests; it cannot fail to compile at run time.
        match Inspector::new(DlpPolicy::default()) {
            Ok(i) => DlpInspector(i),
            Err(e) => unreachable!("the built-in DLP policy does not compile: {e}"),
        }
    }

    /// A policy of the organisation's own.
    pub fn new(policy: DlpPolicy) -> Result<Self, PolicyError> {
        Inspector::new(policy).map(DlpInspector)
    }
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_builtin_policy_holds_a_card_number() {
        let env = Envelope {
            mail_from: None,
            rcpt_to: Vec::new(),
        };
        let got = DlpInspector::builtin()
            .inspect(
                &env,
                b"Subject: x\r\n\r\nCard 4111 1111 1111 1111 exp 12/29\r\n",
            )
            .map(|i| i.action);
        assert_eq!(got, Some(ContentAction::Quarantine));
        let clean = DlpInspector::builtin()
            .inspect(&env, b"Subject: x\r\n\r\nSee you at ten.\r\n")
            .map(|i| i.action);
        assert_eq!(clean, Some(ContentAction::Allow));
    }
}
