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
//! let ssn = v.hits.iter().find(|h| h.detector == postern_dlp::Detector::Ssn).unwrap();
//! assert_eq!(ssn.samples, ["***-**-1120"]);
//! ```
#![forbid(unsafe_code)]

pub mod detect;
mod detector;
pub mod extract;
mod load;
mod plug;
pub mod policy;
pub mod verdict;

pub use detect::{Found, Scanner};
pub use detector::{Detector, UnknownDetector};
pub use extract::{extract, Limits, Location, Note};
pub use plug::DlpInspector;
pub use policy::{Action, Checksum, DlpPolicy, PatternError, PolicyError};
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
    ///
    /// Never panics: the parsers underneath read hostile input, and a panic in any of them
    /// (contained here) is a message that could not be inspected — a limit note, which the
    /// policy's `on_limit` turns into its action (quarantine by default), so a crafted message
    /// cannot slip past inspection by making it fail.
    pub fn inspect(&self, raw: &[u8]) -> Verdict {
        let run = || {
            #[cfg(test)]
            if tests::FAIL.with(std::cell::Cell::get) {
                panic!("injected failure");
            }
            let x = extract(raw, &self.policy.limits);
            let mut found = Vec::new();
            for seg in &x.segments {
                for f in self.scanner.scan(&seg.text) {
                    found.push((seg.location.clone(), f));
                }
            }
            (found, x.notes)
        };
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(run)) {
            Ok((found, notes)) => verdict::decide(found, notes, &self.policy),
            Err(_) => verdict::decide(
                Vec::new(),
                vec![Note::Limit {
                    what: "inspection failed on this message (internal error): nothing in it \
                           was read"
                        .into(),
                }],
                &self.policy,
            ),
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    thread_local! {
        /// Makes the next inspection on this thread panic inside the contained part.
        pub(crate) static FAIL: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
    }

    #[test]
    fn a_failure_inside_inspection_quarantines_by_default() {
        let i = Inspector::new(DlpPolicy::default()).unwrap();
        let msg = b"Subject: hi\r\n\r\nnothing here\r\n";
        assert_eq!(i.inspect(msg).action, Action::Allow);
        FAIL.with(|f| f.set(true));
        let v = i.inspect(msg);
        FAIL.with(|f| f.set(false));
        assert_eq!(v.action, Action::Quarantine);
        assert!(
            v.notes
                .iter()
                .any(|n| matches!(n, Note::Limit { what } if what.contains("internal error"))),
            "{:?}",
            v.notes
        );
    }
}
