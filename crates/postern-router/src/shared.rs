//! The directory in force, swappable while mail is being processed.

use std::path::Path;
use std::sync::{Arc, RwLock};
use std::time::SystemTime;

use postern_core::SecureEnvelope;

use crate::{CheckedDirectory, Directory, DirectoryError, Finding};

/// The directory in force. Readers take an `Arc` snapshot and keep it for the whole message, so
/// a reload never changes the rules under a message in flight.
#[derive(Debug)]
pub struct SharedDirectory {
    current: RwLock<Arc<CheckedDirectory>>,
}

impl SharedDirectory {
    /// Starts with `dir`.
    pub fn new(dir: CheckedDirectory) -> Self {
        SharedDirectory {
            current: RwLock::new(Arc::new(dir)),
        }
    }

    /// The directory in force now.
    pub fn current(&self) -> Arc<CheckedDirectory> {
        match self.current.read() {
            Ok(g) => g.clone(),
            // A panic while swapping cannot leave a half-written Arc; keep serving.
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Puts `dir` in force: for embedders that build the directory in Rust (and tests that
    /// take a key away mid-run).
    pub fn replace(&self, dir: CheckedDirectory) {
        match self.current.write() {
            Ok(mut g) => *g = Arc::new(dir),
            Err(poisoned) => *poisoned.into_inner() = Arc::new(dir),
        }
    }

    /// Loads `path`, checks it with `backends` (the gateway's) and puts it in force if it
    /// parses and has no error-level findings; else the old directory stays and the reasons
    /// are returned. Warnings come back on success.
    pub fn reload(
        &self,
        path: &Path,
        backends: &[Arc<dyn SecureEnvelope>],
        now: SystemTime,
    ) -> Result<Vec<Finding>, ReloadError> {
        let dir = Directory::load(path).map_err(ReloadError::Load)?;
        let checked = CheckedDirectory::check(dir, backends, now)
            .map_err(|r| ReloadError::Rejected(r.findings))?;
        let warnings = checked.warnings().to_vec();
        self.replace(checked);
        Ok(warnings)
    }
}

/// Why a reload was refused (the previous directory is still in force).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReloadError {
    /// The file could not be read or parsed.
    #[error(transparent)]
    Load(DirectoryError),
    /// It parsed, but validation found errors.
    #[error("directory rejected: {}", crate::checked::errors(.0))]
    Rejected(Vec<Finding>),
}
