//! # postern-dlp
//!
//! Content inspection for mail that would leave in clear: payment card numbers (issuer prefix,
//! length and Luhn), US SSNs (SSA ranges; nine plain digits only next to an SSN keyword), NPIs,
//! DEA numbers (checksum), Medicare MBIs (format), the organisation's own MRN formats, ICD-10-CM
//! codes and clinical keywords as context, and custom dictionaries — in the subject, every body
//! part and the attachments (text, CSV, HTML, PDF, DOCX/XLSX/PPTX, zip, attached messages),
//! within limits on depth, size and time. The [`Verdict`] names what was found (masked: the last
//! four characters only), where, the score and the [`Action`].
//!
//! ```
//! let inspector = postern_dlp::Inspector::new(postern_dlp::DlpPolicy::default()).unwrap();
//! let v = inspector.inspect(b"Subject: results\r\n\r\nPatient SSN 078-05-1120\r\n");
//! assert_eq!(v.action, postern_dlp::Action::Quarantine);
//! assert_eq!(v.hits.iter().find(|h| h.detector == "ssn").unwrap().samples, ["***-**-1120"]);
//! ```
#![forbid(unsafe_code)]

pub mod detect;
pub mod extract;
pub mod policy;
pub mod verdict;

pub use detect::{Found, Scanner};
pub use extract::{extract, Limits, Location, Note};
pub use policy::{Action, Checksum, DlpPolicy, PolicyError};
pub use verdict::{DetectorHits, Verdict};

/// A compiled policy, ready to inspect messages (cheap to share between threads).
#[derive(Debug)]
pub struct Inspector {
    policy: DlpPolicy,
    scanner: Scanner,
}

impl Inspector {
    /// Compiles `policy`.
    pub fn new(policy: DlpPolicy) -> Result<Self, PolicyError> {
        let scanner = Scanner::new(&policy)?;
        Ok(Inspector { policy, scanner })
    }

    /// The policy in force.
    pub fn policy(&self) -> &DlpPolicy {
        &self.policy
    }

    /// Inspects one raw message (RFC 5322).
    pub fn inspect(&self, raw: &[u8]) -> Verdict {
        let x = extract(raw, &self.policy.limits);
        let mut found = Vec::new();
        for seg in &x.segments {
            for f in self.scanner.scan(&seg.text) {
                found.push((seg.location.clone(), f));
            }
        }
        verdict::decide(found, x.notes, &self.policy)
    }

    /// Inspects plain text (no MIME), e.g. for benchmarks and tools.
    pub fn inspect_text(&self, text: &str) -> Verdict {
        let found = self
            .scanner
            .scan(text)
            .into_iter()
            .map(|f| (Location::Body, f))
            .collect();
        verdict::decide(found, Vec::new(), &self.policy)
    }
}
