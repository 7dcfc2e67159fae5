//! Loading a policy: parsed ([`crate::policy`]), then its patterns compiled ([`crate::detect`]),
//! so that a policy that loads is one a scanner can be built from. Here rather than in either
//! module, which would then depend on each other.

use std::path::Path;

use crate::detect::Scanner;
use crate::policy::{DlpPolicy, PolicyError};

impl DlpPolicy {
    /// Reads a policy file; missing keys take the defaults (weights and detector actions are
    /// merged over the defaults, not replaced).
    pub fn load(path: &Path) -> Result<Self, PolicyError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| PolicyError::Read(path.display().to_string(), e))?;
        Self::from_toml(&text).map_err(|e| match e {
            PolicyError::Parse(_, m) => PolicyError::Parse(path.display().to_string(), m),
            other => other,
        })
    }

    /// Parses policy TOML, in any TOML spelling (tables, inline tables, dotted keys, arrays
    /// of tables). Unknown keys are errors with their line. `weights` and `detector_action`
    /// are merged over the defaults (set a detector's action to `"allow"` to lift a default);
    /// `threshold`, when given, replaces the default thresholds.
    pub fn from_toml(text: &str) -> Result<Self, PolicyError> {
        let p = Self::parse(text)?;
        Scanner::new(&p)?;
        Ok(p)
    }
}
