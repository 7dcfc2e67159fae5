//! # postern-relay
//!
//! Postern as an SMTP gateway: two listeners (`internal` for our mail server's outbound mail,
//! `public` for the internet's mail to our domains), a durable spool (250 only once a message
//! is fsynced), and workers that route every message through [`postern_router`] — sealing for
//! partners, opening from partners — and deliver it, retrying temporary failures on a schedule
//! and returning RFC 3464 bounces for permanent ones.
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let cfg = postern_relay::RelayConfig::load(std::path::Path::new("relay.toml"))?;
//! let relay = postern_relay::start(&cfg).await?;
//! println!("internal listener on {:?}", relay.internal_addr);
//! relay.shutdown(std::time::Duration::from_secs(30)).await;
//! # Ok(()) }
//! ```
#![forbid(unsafe_code)]

pub mod auth;
pub mod config;
pub mod dsn;
pub mod harvest;
pub mod keywatch;
mod listener;
mod mdn;
pub mod metrics;
pub mod mx;
#[cfg(feature = "portal")]
mod portal;
mod process;
mod proxy;
mod relay;
pub mod review;
pub mod scheduler;
mod shared;
pub mod smtp;
pub mod spool;
pub mod status;
pub mod transport;
mod util;
pub mod verify;

/// The quarantine store (in postern-store, shared with the portal's administration pages).
pub use postern_store::quarantine;
#[cfg(feature = "ldap")]
pub use postern_trust::ldap;
/// Key discovery and revocation live in postern-trust; re-exported under their old paths.
pub use postern_trust::{bundles, dane, dnscert, fetch, netguard, revocation, wkd};

pub use config::{ConfigError, RelayConfig};
/// The inspection plug (postern-core) and postern-dlp behind it, as the relay uses them.
pub use postern_core::{ContentInspector, Inspection, PassThrough};
#[cfg(feature = "dlp")]
pub use postern_dlp::DlpInspector;
pub use relay::{
    check, start, start_with, RelayBuilder, RunningRelay, Settings, Shared, StartError,
};
pub use util::rfc5322_date;
