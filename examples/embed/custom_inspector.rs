//! A content inspector of one's own, layered over Postern's DLP.
//!
//! ```text
//! cargo run -p postern-examples --example custom_inspector [message.eml ...]
//! ```
//!
//! The organisation's rule here: mail naming a confidential project ("Nightingale") must not
//! leave in clear, whatever the DLP thinks of it. The inspector runs the built-in DLP first
//! and makes its verdict stricter; the gateway then applies it to the copies that would
//! leave in clear (a partner that only ever gets ciphertext is not inspected at all). Each
//! message named (or three built-in samples) is routed and the plan printed, one line per
//! group of recipients.

use std::sync::Arc;

use postern_core::Address;
use postern_dlp::DlpInspector;
use postern_router::{
    ContentAction, ContentInspector, Directory, Disposition, Envelope, Gateway, Inspection,
    Outgoing,
};

/// The built-in DLP, then the project rule on top.
#[derive(Debug)]
struct ProjectRule {
    dlp: DlpInspector,
    words: Vec<&'static str>,
}

impl ContentInspector for ProjectRule {
    fn inspect(&self, envelope: &Envelope, message: &[u8]) -> Option<Inspection> {
        let mut verdict = self.dlp.inspect(envelope, message)?;
        let text = String::from_utf8_lossy(message).to_lowercase();
        let hits: Vec<&str> = self
            .words
            .iter()
            .copied()
            .filter(|w| text.contains(&w.to_lowercase()))
            .collect();
        if !hits.is_empty() && verdict.action == ContentAction::Allow {
            verdict.action = ContentAction::Quarantine;
            // The summary is logged and shown to administrators: name the rule, not the text.
            verdict.summary = format!("project rule ({} word(s)); {}", hits.len(), verdict.summary);
        }
        Some(verdict)
    }
}

const SAMPLES: [&[u8]; 3] = [
    b"From: dr@clinic.example\r\nTo: friend@mail.example\r\nSubject: lunch\r\n\r\nSee you at noon.\r\n",
    b"From: dr@clinic.example\r\nTo: friend@mail.example\r\nSubject: update\r\n\r\nThe Nightingale budget is approved.\r\n",
    b"From: dr@clinic.example\r\nTo: friend@mail.example\r\nSubject: form\r\n\r\nPatient SSN 078-05-1120.\r\n",
];

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = Directory::from_toml(
        r#"
        [our]
        domains = ["clinic.example"]

        [[partner]]
        domain = "smallpractice.example"
        policy = "portal"
        "#,
        std::path::Path::new("."),
    )?;
    let dlp = postern_dlp::Inspector::new(postern_dlp::DlpPolicy::default())?;
    let gateway = Gateway::builder()
        .inspector(Arc::new(ProjectRule {
            dlp: DlpInspector(dlp),
            words: vec!["Nightingale"],
        }))
        .build()?;
    let dir = gateway.check(dir)?;
    let files: Vec<Vec<u8>> = std::env::args()
        .skip(1)
        .map(std::fs::read)
        .collect::<Result<_, _>>()?;
    let messages: Vec<&[u8]> = if files.is_empty() {
        SAMPLES.to_vec()
    } else {
        files.iter().map(|f| f.as_slice()).collect()
    };
    let envelope = Envelope {
        mail_from: Some(Address::new("dr@clinic.example")?),
        rcpt_to: vec![Address::new("friend@mail.example")?],
    };
    for (n, message) in messages.iter().enumerate() {
        let plan = gateway
            .outbound(&dir, Outgoing::new(&envelope, message))
            .await;
        let verdict = plan.inspection.as_ref().map_or("-", |i| i.summary.as_str());
        println!("message {}: verdict {verdict}", n + 1);
        for d in &plan.dispositions {
            let what = match d {
                Disposition::Deliver { sealed: None, .. } => "deliver in clear".to_string(),
                Disposition::Deliver {
                    sealed: Some(s), ..
                } => format!("deliver sealed ({s})"),
                Disposition::Quarantine { reason, .. } => format!("quarantine: {reason}"),
                Disposition::Portal { .. } => "portal".to_string(),
                Disposition::Bounce { reason, .. } | Disposition::Hold { reason, .. } => {
                    format!("not sent ({}): {reason}", reason.smtp_reply().enhanced)
                }
                Disposition::Local { .. } => "to our mail server".to_string(),
            };
            let to: Vec<String> = d.recipients().iter().map(|a| a.to_string()).collect();
            println!("  {}: {what}", to.join(", "));
        }
    }
    Ok(())
}
