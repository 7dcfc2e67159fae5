//! A directory that has been checked with the backends that will use it: the only kind the
//! router seals and opens with. A directory loaded from TOML or built in Rust becomes one
//! through [`CheckedDirectory::check`] (or `Gateway::check`, `Gateway::load_directory`), so a
//! partner entry holding another organisation's certificate, or a required partner with no
//! usable key, is refused before any mail is sealed with it.

use std::ops::Deref;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::SystemTime;

use postern_core::SecureEnvelope;

use crate::{validate, Directory, Finding, Severity};

/// A [`Directory`] with no error-level [`Finding`]: read it through `Deref`; it cannot be
/// changed (change the `Directory` and check it again).
#[derive(Debug, Clone)]
pub struct CheckedDirectory {
    dir: Directory,
    warnings: Vec<Finding>,
    /// Which check made it (unique in this process; a clone keeps it): keys looked up for one
    /// directory are never used with another, whose partner entries may differ.
    generation: u64,
}

/// The generation of the next checked directory.
static GENERATION: AtomicU64 = AtomicU64::new(1);

fn next_generation() -> u64 {
    GENERATION.fetch_add(1, Ordering::Relaxed)
}

/// Why a directory was refused: every error-level finding (and the warnings, for the record).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("directory rejected: {}", errors(.findings))]
pub struct Rejected {
    /// Everything validation found, most serious first.
    pub findings: Vec<Finding>,
}

/// The error-level findings in one line.
pub(crate) fn errors(findings: &[Finding]) -> String {
    findings
        .iter()
        .filter(|f| f.severity == Severity::Error)
        .map(|f| format!("{} (line {}): {}", f.subject, f.line, f.message))
        .collect::<Vec<_>>()
        .join("; ")
}

impl CheckedDirectory {
    /// Validates `dir` with `backends` at `now` (see [`validate`]): refused if any finding is
    /// an error; warnings are kept ([`CheckedDirectory::warnings`]).
    pub fn check(
        dir: Directory,
        backends: &[Arc<dyn SecureEnvelope>],
        now: SystemTime,
    ) -> Result<Self, Rejected> {
        let findings = validate(&dir, backends, now);
        if findings.iter().any(|f| f.severity == Severity::Error) {
            return Err(Rejected { findings });
        }
        Ok(CheckedDirectory {
            dir,
            warnings: findings,
            generation: next_generation(),
        })
    }

    /// The router's own unit tests route directories no real backend would pass (fake
    /// certificates for fake backends, to prove the decision fails closed whatever the
    /// directory): only there may a directory skip the check.
    #[cfg(test)]
    pub(crate) fn unchecked_for_tests(dir: Directory) -> Self {
        CheckedDirectory {
            dir,
            warnings: Vec::new(),
            generation: next_generation(),
        }
    }

    /// Which check made this directory (see [`crate::Lookups`]).
    pub(crate) fn generation(&self) -> u64 {
        self.generation
    }

    /// Adds findings that need the gateway to judge (see [`crate::Gateway::check`]).
    pub(crate) fn add_warnings(&mut self, more: Vec<Finding>) {
        self.warnings.extend(more);
    }

    /// What needs attention soon (e.g. a certificate expiring within 30 days).
    pub fn warnings(&self) -> &[Finding] {
        &self.warnings
    }

    /// The directory, to change and check again.
    pub fn into_inner(self) -> Directory {
        self.dir
    }
}

impl Deref for CheckedDirectory {
    type Target = Directory;

    fn deref(&self) -> &Directory {
        &self.dir
    }
}
