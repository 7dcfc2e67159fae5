//! Where the operator commands find a relay's data: its configuration file, or a data
//! directory with the defaults.

use std::path::PathBuf;

use postern_relay::RelayConfig;
use postern_store::Db;

#[derive(clap::Args)]
pub struct Where {
    /// The relay configuration.
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    /// The data directory (without --config; the demo default is ./postern-data).
    #[arg(long, global = true, default_value = "postern-data")]
    data_dir: PathBuf,
}

pub(crate) fn config(at: &Where) -> Result<RelayConfig, String> {
    match &at.config {
        Some(p) => RelayConfig::load(p).map_err(|e| e.to_string()),
        None => Ok(RelayConfig {
            data_dir: at.data_dir.clone(),
            ..RelayConfig::default()
        }),
    }
}

pub(crate) async fn database(cfg: &RelayConfig) -> Result<Db, String> {
    if cfg.first_start() {
        return Err(format!("no database at {}", cfg.sqlite_db().display()));
    }
    cfg.open_database().await.map_err(|e| e.to_string())
}
