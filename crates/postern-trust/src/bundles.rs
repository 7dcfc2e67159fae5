//! Trust bundles refreshed from where a trust community publishes them: a PKCS#7 bundle (or
//! PEM certificates) fetched over verified HTTPS on a schedule, checked, and written over the
//! local file the partner directory names as `trust_anchors` (global or per partner); the
//! directory is then reloaded. A failed download keeps the file in force.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use tokio_rustls::TlsConnector;

/// Largest bundle accepted.
const MAX_BUNDLE: u64 = 16 * 1024 * 1024;

/// One bundle to keep fresh (`[[trust_bundles]]` in the relay configuration).
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct TrustBundle {
    /// `https:` URL of the bundle.
    pub url: String,
    /// The local file the directory names (relative: to the configuration file's folder).
    pub file: PathBuf,
    /// Hours between refreshes.
    #[serde(default = "a_day")]
    pub refresh_hours: u64,
}

fn a_day() -> u64 {
    24
}

impl TrustBundle {
    /// Time between refreshes (at least five minutes).
    pub fn period(&self) -> Duration {
        Duration::from_secs(self.refresh_hours.max(1) * 3600).max(Duration::from_secs(300))
    }
}

/// Fetches the bundle and, when it differs from the file, replaces the file (written to a
/// temporary name, fsynced, renamed). Returns whether the file changed. The bundle must hold at
/// least one CA certificate; anything else leaves the file as it was.
pub async fn refresh(
    bundle: &TrustBundle,
    base: &Path,
    tls: &TlsConnector,
) -> Result<bool, String> {
    let (host, port, path) = crate::fetch::parse_https_url(&bundle.url)?;
    let body = crate::fetch::https_get(
        tls,
        &host,
        port,
        &path,
        None,
        crate::fetch::Reach::Any,
        MAX_BUNDLE,
    )
    .await?
    .ok_or_else(|| format!("{}: not found (404)", bundle.url))?;
    let certs = postern_smime::keys::parse_certificates(&body)
        .map_err(|e| format!("{}: {e}", bundle.url))?;
    let cas = certs
        .iter()
        .filter(|c| postern_smime::keys::is_ca(c))
        .count();
    if cas == 0 {
        return Err(format!("{}: no CA certificate in the bundle", bundle.url));
    }
    let file = base.join(&bundle.file);
    if std::fs::read(&file).is_ok_and(|old| old == body) {
        return Ok(false);
    }
    write_atomically(&file, &body).map_err(|e| format!("{}: {e}", file.display()))?;
    tracing::info!(url = %bundle.url, anchors = cas, "trust bundle updated");
    Ok(true)
}

fn write_atomically(file: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    if let Some(dir) = file.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = file.with_extension("tmp");
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    std::fs::rename(&tmp, file)?;
    if let Some(dir) = file.parent() {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}
