//! The state every task of one relay shares ([`Shared`]: settings, directory, spool, scheduler,
//! gateway, stores), and why a relay could not start. Its own module so that the listeners,
//! the workers and the portal's outbox depend on it, not on the code that starts them.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use postern_router::{Gateway, SharedDirectory};
use postern_store::Quarantine;

use crate::auth::Users;
use crate::config::{ConfigError, Limits, Network, NextHop};
use crate::metrics::Metrics;
use crate::mx::MxResolver;
use crate::scheduler::Scheduler;
use crate::smtp::client::ConnectionPool;
use crate::smtp::tls::TlsContext;
use crate::spool::Spool;
use crate::transport::Destinations;

/// Direct delivery notifications, as configured.
#[derive(Debug, Clone)]
pub struct DirectSettings {
    /// How long a message waits for `processed`.
    pub timeout: Duration,
    /// How long a timely-and-reliable message waits for `processed` and `dispatched`.
    pub reliable_timeout: Duration,
    /// Partners' `processed` notifications reach our users.
    pub deliver_processed: bool,
    /// How long finished tracking rows are kept.
    pub retention: Duration,
    /// Our mail server is the destination (dispatched notifications are ours to send).
    pub gateway_is_destination: bool,
}

/// Settings the running relay reads (parsed once from [`RelayConfig`]).
#[derive(Debug)]
pub struct Settings {
    /// Our host name.
    pub hostname: String,
    /// Protocol limits.
    pub limits: Limits,
    /// Who may use the internal listener.
    pub internal_networks: Vec<Network>,
    /// Who may use the public listener.
    pub public_networks: Vec<Network>,
    /// Load balancers that speak the PROXY protocol to the internal listener.
    pub internal_proxies: Vec<Network>,
    /// Load balancers that speak the PROXY protocol to the public listener.
    pub public_proxies: Vec<Network>,
    /// Next hop for outbound mail.
    pub outbound: NextHop,
    /// Next hop for inbound mail (our mail server).
    pub inbound: NextHop,
    /// Retry delays (the last repeats).
    pub retry: Vec<Duration>,
    /// Give-up age.
    pub max_age: Duration,
    /// Per-reply timeout towards next hops.
    pub delivery_timeout: Duration,
    /// STARTTLS both ways.
    pub tls: TlsContext,
    /// MX lookups, when a next hop is `mx`.
    pub mx: Option<MxResolver>,
    /// Connections open per destination, bounded.
    pub destinations: Destinations,
    /// Idle connections kept for reuse.
    pub pool: ConnectionPool,
    /// Users who may authenticate on the internal listener.
    pub users: Option<Arc<Users>>,
    /// MAIL needs AUTH first on the internal listener.
    pub auth_required: bool,
    /// Bounds and locks SMTP AUTH attempts.
    pub auth_limiter: crate::auth::AuthLimiter,
    /// Asks our mail server about recipients on the public listener (`None`: no check).
    pub verifier: Option<crate::verify::RecipientVerifier>,
    /// Bounds the unknown-recipient answers that verification gives one client.
    pub unknown_recipients: crate::smtp::probes::UnknownRecipients,
    /// Direct delivery notifications.
    pub direct: DirectSettings,
}

/// State shared by every task of one relay.
#[derive(Debug)]
pub struct Shared {
    /// Parsed settings.
    pub settings: Settings,
    /// The partner directory in force.
    pub directory: SharedDirectory,
    /// Where the directory is reloaded from.
    pub directory_path: PathBuf,
    /// The spool.
    pub spool: Spool,
    /// The timetable.
    pub scheduler: Scheduler,
    /// Counters.
    pub metrics: Arc<Metrics>,
    /// Routing, content inspection and the policy between them, both ways.
    pub gateway: Gateway,
    /// Held messages.
    pub quarantine: Quarantine,
    /// The secure web portal, when configured (set once, right after start).
    pub portal: std::sync::OnceLock<Arc<dyn PortalInbox>>,
    /// Certificates harvested from partners' signatures.
    pub harvest: Arc<crate::harvest::HarvestStore>,
    /// Direct messages we sent, waiting for their notifications.
    pub tracking: postern_store::TrackingStore,
    /// The shared database (quarantine, portal, audit), for the health check.
    pub db: postern_store::Db,
    /// Draining (`queue drain`): new connections get 421 and the health check fails, while
    /// the queue is delivered.
    pub draining: std::sync::atomic::AtomicBool,
}

/// Where portal delivery stores a message: the secure web portal (postern-portal, with the
/// `portal` feature), which keeps it sealed and notifies the recipient. The queue knows only
/// this, so a relay built without the portal still compiles its delivery path (and holds).
#[async_trait::async_trait]
pub trait PortalInbox: Send + Sync + std::fmt::Debug {
    /// Stores `message` for `recipient` for `days` (`None`: the portal's default) and notifies
    /// them; the portal's message identifiers.
    async fn deliver(
        &self,
        sender: Option<&str>,
        recipient: &str,
        message: &[u8],
        queue_id: &str,
        days: Option<u32>,
    ) -> Result<Vec<String>, Box<dyn std::error::Error + Send + Sync>>;
}

/// Why the relay could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    /// The configuration is unusable.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The partner directory could not be loaded, or has errors.
    #[error("partner directory {path}: {message}")]
    Directory {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// A listener could not bind.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: String,
        /// Why.
        source: std::io::Error,
    },
    /// The quarantine store could not be opened.
    #[error("{0}")]
    Quarantine(String),
    /// The gateway could not be built (its backends, inspection or key loader).
    #[error("gateway: {0}")]
    Gateway(postern_router::BuildError),
    /// The spool could not be opened.
    #[error("spool {path}: {source}")]
    Spool {
        /// The spool directory.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}
