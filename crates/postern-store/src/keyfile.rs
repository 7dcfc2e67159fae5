//! The gateway's key files: 32-byte keys written as 64 hex characters, mode 0600, kept outside
//! the database (the quarantine key, the portal's master key; the audit chain's key is derived
//! from the quarantine key). One loader for all of them, so each key file is made, refused and
//! reported the same way.

use std::path::Path;

use zeroize::Zeroizing;

/// Which key a file holds: named in errors, and in what to do when it is missing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyRole {
    /// The quarantine key (`quarantine.key_file`).
    Quarantine,
    /// The portal's master key (`portal.key_file`).
    Portal,
}

impl KeyRole {
    fn setting(self) -> &'static str {
        match self {
            KeyRole::Quarantine => "quarantine.key_file",
            KeyRole::Portal => "portal.key_file",
        }
    }

    fn what(self) -> &'static str {
        match self {
            KeyRole::Quarantine => "the mail held in the quarantine",
            KeyRole::Portal => "the messages stored for the portal",
        }
    }
}

/// A key file that cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("{role:?} key {path}: {problem}")]
pub struct KeyFileError {
    /// Which key.
    pub role: KeyRole,
    /// The file.
    pub path: String,
    /// What is wrong with it.
    pub problem: KeyFileProblem,
}

/// What is wrong with a key file.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyFileProblem {
    /// The file is not 64 hex characters (with optional surrounding white space).
    #[error("expected 64 hex characters")]
    Malformed,
    /// The file is missing while the data it protects exists.
    #[error(
        "the key file is missing but the database exists: {what} cannot be read without its \
         key. Restore the key file, or point {setting} at it"
    )]
    Missing {
        /// What cannot be read.
        what: &'static str,
        /// The setting that names the file.
        setting: &'static str,
    },
    /// No randomness to make a key from.
    #[error("no randomness to make a key")]
    NoRandomness,
    /// Reading or writing the file failed.
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// Reads the key in `path`. Only when `create` (the first start: no database holds data under
/// a key yet) is a missing file made, in a 0700 folder with mode 0600. Later a missing key is
/// an error: a mistyped path must not quietly start a new key under which the data already
/// stored can never be read.
pub fn load_or_create(
    role: KeyRole,
    path: &Path,
    create: bool,
) -> Result<Zeroizing<[u8; 32]>, KeyFileError> {
    let err = |problem| KeyFileError {
        role,
        path: path.display().to_string(),
        problem,
    };
    match load(path) {
        Ok(Some(key)) => Ok(key),
        Ok(None) if !create => Err(err(KeyFileProblem::Missing {
            what: role.what(),
            setting: role.setting(),
        })),
        Ok(None) => {
            let mut key = Zeroizing::new([0u8; 32]);
            aws_lc_rs::rand::fill(key.as_mut()).map_err(|_| err(KeyFileProblem::NoRandomness))?;
            let hex = Zeroizing::new(key.iter().map(|b| format!("{b:02x}")).collect::<String>());
            if let Some(dir) = path.parent() {
                private_dir(dir).map_err(|e| err(e.into()))?;
            }
            write_private(path, hex.as_bytes()).map_err(|e| err(e.into()))?;
            Ok(key)
        }
        Err(problem) => Err(err(problem)),
    }
}

/// Reads the key in `path`; `None` when there is no such file. A file that is there but is not
/// a key is an error, never `None`: a caller that treats "no key" as "not set up yet" must not
/// take a damaged key file for that.
pub fn load(path: &Path) -> Result<Option<Zeroizing<[u8; 32]>>, KeyFileProblem> {
    let text = match std::fs::read(path) {
        Ok(t) => Zeroizing::new(t),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let hex = text.trim_ascii();
    if hex.len() != 64 || !hex.iter().all(u8::is_ascii_hexdigit) {
        return Err(KeyFileProblem::Malformed);
    }
    let mut key = Zeroizing::new([0u8; 32]);
    for (k, pair) in key.iter_mut().zip(hex.chunks_exact(2)) {
        let digit = |c: u8| (c as char).to_digit(16).unwrap_or(0) as u8;
        *k = digit(pair[0]) << 4 | digit(pair[1]);
    }
    Ok(Some(key))
}

/// Makes `dir` (and its parents) and gives it mode 0700.
pub fn private_dir(dir: &Path) -> std::io::Result<()> {
    let mut b = std::fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
        b.mode(0o700);
        b.create(dir)?;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
    }
    #[cfg(not(unix))]
    b.create(dir)
}

/// Writes a new file (never over an existing one) with mode 0600, synced.
fn write_private(path: &Path, data: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut o = std::fs::OpenOptions::new();
    o.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        o.mode(0o600);
    }
    let mut f = o.open(path)?;
    f.write_all(data)?;
    f.sync_all()?;
    // The new name must survive a crash as well as the bytes.
    if let Some(dir) = path.parent() {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests: a panic is a failure report
mod tests {
    use super::*;

    #[test]
    fn a_key_is_made_only_on_first_start_and_a_bad_one_is_an_error_not_a_panic() {
        let d = tempfile::tempdir().unwrap();
        let missing = d.path().join("keys/typo.key");
        for role in [KeyRole::Quarantine, KeyRole::Portal] {
            let e = load_or_create(role, &missing, false).unwrap_err();
            assert!(matches!(e.problem, KeyFileProblem::Missing { .. }), "{e}");
            assert!(e.to_string().contains(role.setting()), "{e}");
        }
        assert!(!missing.exists(), "no new key under a mistyped path");
        let k = load_or_create(KeyRole::Quarantine, &missing, true).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&missing).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
            let dir = std::fs::metadata(missing.parent().unwrap()).unwrap();
            assert_eq!(dir.permissions().mode() & 0o777, 0o700);
        }
        assert_eq!(
            *load_or_create(KeyRole::Quarantine, &missing, false).unwrap(),
            *k
        );
        // Written as text, read back with white space around it.
        let p = d.path().join("spaced.key");
        std::fs::write(&p, format!("  {}\n", "ab".repeat(32))).unwrap();
        assert_eq!(*load(&p).unwrap().unwrap(), [0xab; 32]);
        for bad in [
            "é".repeat(32).into_bytes(),
            "g".repeat(64).into_bytes(),
            "0".repeat(63).into_bytes(),
            "\u{0}".repeat(64).into_bytes(),
            vec![0xff; 64],
        ] {
            let p = d.path().join("bad.key");
            std::fs::write(&p, &bad).unwrap();
            // Damaged is not missing: neither a new key nor "not set up yet".
            assert!(matches!(load(&p), Err(KeyFileProblem::Malformed)));
            let e = load_or_create(KeyRole::Portal, &p, true).unwrap_err();
            assert!(matches!(e.problem, KeyFileProblem::Malformed), "{e}");
        }
    }
}
