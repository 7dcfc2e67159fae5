//! Starting and stopping the relay: listeners, delivery workers and the spool poller, all over
//! one shared state.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use postern_core::KeyStore;
use postern_router::{
    CheckedDirectory, Directory, Finding, Gateway, GatewayBuilder, InboundAction, InboundPolicy,
    KeySource, ReloadError, Severity, SharedDirectory,
};

use crate::auth::Users;
use crate::config::{ConfigError, InboundChoice, Network, NextHop, RelayConfig};
use crate::listener::{session, Role};
use crate::metrics::Metrics;
use crate::mx::MxResolver;
use crate::process::process;
use crate::scheduler::Scheduler;
pub use crate::shared::{Settings, Shared, StartError};
use crate::smtp::client::ConnectionPool;
use crate::smtp::tls::TlsContext;
use crate::spool::{RcptState, Spool};
use crate::transport::Destinations;
use crate::util::unix_ms;
use postern_core::{ContentInspector, PassThrough};
use postern_store::keyfile::{self, KeyRole};
use postern_store::Quarantine;

/// A relay that is running. Dropping it does not stop it; call [`RunningRelay::shutdown`].
#[derive(Debug)]
pub struct RunningRelay {
    shared: Arc<Shared>,
    /// Where the internal listener listens.
    pub internal_addr: Option<SocketAddr>,
    /// Where the public listener listens.
    pub public_addr: Option<SocketAddr>,
    /// Where the metrics endpoint listens.
    pub metrics_addr: Option<SocketAddr>,
    /// Where the portal listens.
    pub portal_addr: Option<SocketAddr>,
    /// Warnings from loading the directory.
    pub findings: Vec<Finding>,
    stop: watch::Sender<bool>,
    listeners: Vec<JoinHandle<()>>,
    workers: Vec<JoinHandle<()>>,
    /// The audit log and the file its newest hash is anchored in (written at shutdown too).
    audit: (postern_store::AuditLog, std::path::PathBuf),
}

/// Starts a relay with the content inspection its configuration asks for (postern-dlp with
/// the configured or built-in policy, or none when `dlp.enabled = false`).
pub async fn start(cfg: &RelayConfig) -> Result<RunningRelay, StartError> {
    RelayBuilder::new(cfg).start().await
}

/// Starts a relay with `inspector` deciding about outgoing content.
pub async fn start_with(
    cfg: &RelayConfig,
    inspector: Arc<dyn ContentInspector>,
) -> Result<RunningRelay, StartError> {
    RelayBuilder::new(cfg)
        .gateway(move |g| g.inspector(inspector))
        .start()
        .await
}

/// A relay with parts other than the configuration's: the crypto backends, where the S/MIME
/// private-key operations happen (an HSM), the content inspector, key stores — anything the
/// [`GatewayBuilder`] takes. The relay first sets up the gateway as [`start`] would (its
/// configuration's inspector, key sources, revocation checks, inbound policy), then hands the
/// builder to [`RelayBuilder::gateway`]'s function, whose choices win.
///
/// ```no_run
/// # async fn run(hsm: std::sync::Arc<dyn postern_smime::KeyLoader>) -> Result<(), Box<dyn std::error::Error>> {
/// let cfg = postern_relay::RelayConfig::load(std::path::Path::new("relay.toml"))?;
/// let relay = postern_relay::RelayBuilder::new(&cfg)
///     .gateway(move |g| g.key_loader(hsm).inspector(std::sync::Arc::new(postern_relay::PassThrough)))
///     .start()
///     .await?;
/// # relay.shutdown(std::time::Duration::from_secs(1)).await; Ok(()) }
/// ```
pub struct RelayBuilder<'a> {
    cfg: &'a RelayConfig,
    customise: Option<Customise>,
}

/// What an embedder changes in the relay's gateway.
type Customise = Box<dyn FnOnce(GatewayBuilder) -> GatewayBuilder + Send>;

impl std::fmt::Debug for RelayBuilder<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RelayBuilder")
            .field("customised", &self.customise.is_some())
            .finish_non_exhaustive()
    }
}

impl<'a> RelayBuilder<'a> {
    /// A relay as `cfg` describes it.
    pub fn new(cfg: &'a RelayConfig) -> Self {
        RelayBuilder {
            cfg,
            customise: None,
        }
    }

    /// Changes the gateway after the configuration has set it up (called once, at start).
    pub fn gateway(
        mut self,
        f: impl FnOnce(GatewayBuilder) -> GatewayBuilder + Send + 'static,
    ) -> Self {
        self.customise = Some(Box::new(f));
        self
    }

    /// Binds the listeners and starts the workers.
    pub async fn start(self) -> Result<RunningRelay, StartError> {
        let files = crate::util::raise_open_file_limit();
        tracing::debug!(limit = files, "open files");
        let inspector = inspector_for(self.cfg)?;
        start_relay(self, inspector).await
    }
}

/// Everything in the configuration that can be checked without binding or opening files for
/// writing: networks, next hops, retry schedule, TLS material, MX resolver, users file.
fn build_settings(cfg: &RelayConfig) -> Result<Settings, StartError> {
    let nets = |field: &'static str, v: &[String]| {
        v.iter()
            .map(|s| Network::parse(s))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|message| ConfigError::Value { field, message })
    };
    let hop = |field: &'static str, s: &str| {
        NextHop::parse(s, &cfg.data_dir).map_err(|message| ConfigError::Value { field, message })
    };
    let mut settings = Settings {
        hostname: cfg.hostname.clone(),
        limits: cfg.limits.clone(),
        internal_networks: nets("internal.networks", &cfg.internal.networks)?,
        public_networks: nets("public.networks", &cfg.public.networks)?,
        internal_proxies: nets("internal.proxy_from", &cfg.internal.proxy_from)?,
        public_proxies: nets("public.proxy_from", &cfg.public.proxy_from)?,
        outbound: hop("outbound.relayhost", &cfg.outbound.relayhost)?,
        inbound: hop("inbound.relayhost", &cfg.inbound.relayhost)?,
        retry: cfg.retry.delays()?,
        max_age: cfg.retry.max_age()?,
        delivery_timeout: Duration::from_secs(cfg.limits.delivery_timeout_secs),
        tls: TlsContext::new(&cfg.tls, &cfg.hostname)?,
        mx: None,
        destinations: Destinations::new(cfg.limits.per_destination),
        pool: ConnectionPool::new(cfg.limits.per_destination, Duration::from_secs(30)),
        users: None,
        auth_required: cfg.auth.required,
        verifier: None,
        auth_limiter: crate::auth::AuthLimiter::new(cfg.limits.ipv6_client_prefix),
        unknown_recipients: crate::smtp::probes::UnknownRecipients::new(
            cfg.limits.unknown_recipients_per_client,
            cfg.limits.ipv6_client_prefix,
        ),
        // Bounded: a month of waiting, ten years of rows (a larger figure would overflow the
        // stored seconds into the past).
        direct: crate::shared::DirectSettings {
            timeout: Duration::from_secs(cfg.direct.notification_timeout_secs.clamp(1, 2_592_000)),
            reliable_timeout: Duration::from_secs(
                cfg.direct.reliable_timeout_secs.clamp(1, 2_592_000),
            ),
            deliver_processed: cfg.direct.deliver_processed_mdns,
            retention: Duration::from_secs(cfg.direct.tracking_days.min(3650) * 86_400),
            gateway_is_destination: cfg.direct.gateway_is_destination,
        },
    };
    if let (NextHop::Smtp(addr), true) = (
        &settings.inbound,
        cfg.inbound.verify_recipients.unwrap_or(true),
    ) {
        settings.verifier = Some(crate::verify::RecipientVerifier::new(addr));
    }
    if !cfg.auth.users.as_os_str().is_empty() {
        let users = Users::load(&cfg.auth.users).map_err(|e| ConfigError::Value {
            field: "auth.users",
            message: e.to_string(),
        })?;
        settings.users = Some(Arc::new(users));
    }
    if settings.auth_required && settings.users.is_none() {
        return Err(ConfigError::Value {
            field: "auth.required",
            message: "needs auth.users".into(),
        }
        .into());
    }
    let mx_port = [&settings.outbound, &settings.inbound]
        .into_iter()
        .find_map(|h| match h {
            NextHop::Mx { port } => Some(*port),
            _ => None,
        });
    if let Some(port) = mx_port {
        settings.mx = Some(MxResolver::new(&cfg.dns, port)?);
    }
    if settings.tls.self_signed {
        tracing::info!("no tls.certificate configured: STARTTLS uses a generated self-signed one");
    }
    Ok(settings)
}

/// Checks a configuration as `start` would use it, without starting anything: settings, the
/// content-inspection policy and the partner directory (errors in it fail the check; warnings
/// come back).
pub fn check(cfg: &RelayConfig) -> Result<Vec<Finding>, StartError> {
    build_settings(cfg)?;
    scanner_for(cfg)?;
    let inspector = inspector_for(cfg)?;
    validate_portal(cfg)?;
    let mut findings = relay_findings(cfg);
    // Checked with the backends `start` builds (an embedder's own are checked when it starts).
    let gateway = Gateway::builder()
        .inspector(inspector)
        .build()
        .map_err(StartError::Gateway)?;
    findings.extend(load_directory(cfg, &gateway)?.warnings().iter().cloned());
    Ok(findings)
}

/// The portal's settings, checked as its start would check them.
#[cfg(feature = "portal")]
fn validate_portal(cfg: &RelayConfig) -> Result<(), StartError> {
    crate::portal::validate(cfg).map(drop)
}

/// Without the portal a configuration that asks for one is an error, not a relay that quietly
/// holds every portal delivery.
#[cfg(not(feature = "portal"))]
fn validate_portal(cfg: &RelayConfig) -> Result<(), StartError> {
    if cfg.portal.listen.is_empty() {
        return Ok(());
    }
    Err(StartError::Config(crate::config::ConfigError::Value {
        field: "portal.listen",
        message: "set, but this relay was built without the portal feature".into(),
    }))
}

/// A malware scanner and what happens when it cannot answer.
type Scanning = (
    Arc<dyn postern_core::MalwareScanner>,
    postern_router::ScanFallback,
);

/// The malware scanner `[scan]` names, and what happens when it cannot answer.
fn scanner_for(cfg: &RelayConfig) -> Result<Option<Scanning>, StartError> {
    if cfg.scan.clamd.is_empty() {
        return Ok(None);
    }
    let fallback = match cfg.scan.unavailable.as_str() {
        "defer" => postern_router::ScanFallback::Defer,
        "pass" => postern_router::ScanFallback::Pass,
        other => {
            return Err(StartError::Config(ConfigError::Value {
                field: "scan.unavailable",
                message: format!("{other:?}: use \"defer\" or \"pass\""),
            }))
        }
    };
    let clamd = postern_scan::Clamd::new(
        postern_scan::ClamdAddress::parse(&cfg.scan.clamd),
        Duration::from_secs(cfg.scan.timeout_secs.max(1)),
    );
    Ok(Some((Arc::new(clamd), fallback)))
}

/// What in a relay configuration works but is dangerous: an internal listener open to the
/// world, secrets others can read, a key kept beside the data it protects.
fn relay_findings(cfg: &RelayConfig) -> Vec<Finding> {
    let warn = |message: String| Finding {
        severity: Severity::Warning,
        subject: "relay".into(),
        line: 0,
        message,
    };
    let mut out = Vec::new();
    for n in &cfg.internal.networks {
        if n.trim().ends_with("/0") {
            out.push(warn(format!(
                "internal.networks includes {n}: anyone who can reach the internal listener may \
                 send through the gateway (an open submission port); name your mail servers' \
                 networks"
            )));
        }
    }
    if !cfg.dlp.enabled {
        out.push(warn(
            "dlp.enabled = false: mail to everyone who is not a partner leaves in clear without \
             content inspection (card numbers, SSNs, patient identifiers are not looked for)"
                .into(),
        ));
    }
    if cfg.internal.networks.is_empty() && !cfg.internal.listen.is_empty() {
        out.push(warn(
            "internal.networks is empty: the internal listener refuses every client".into(),
        ));
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        for (what, path) in [
            ("tls.key", cfg.tls.key.clone()),
            ("quarantine key", cfg.quarantine_key()),
            ("auth.users", cfg.auth.users.clone()),
            ("portal key", cfg.portal_key()),
            ("portal.admins", cfg.portal.admins.clone()),
        ] {
            if path.as_os_str().is_empty() {
                continue;
            }
            if let Ok(m) = std::fs::metadata(&path) {
                let mode = m.permissions().mode() & 0o777;
                if mode & 0o077 != 0 {
                    out.push(warn(format!(
                        "{what} {} can be read by others (mode {mode:o}); chmod 600 it",
                        path.display()
                    )));
                }
            }
        }
    }
    let db_dir = cfg.sqlite_db().parent().map(Path::to_path_buf);
    for (what, key, setting) in [
        ("quarantine", cfg.quarantine_key(), "quarantine.key_file"),
        ("portal", cfg.portal_key(), "portal.key_file"),
    ] {
        if what == "portal" && cfg.portal.listen.is_empty() {
            continue;
        }
        if cfg.database.is_empty() && key.parent().map(Path::to_path_buf) == db_dir {
            out.push(warn(format!(
                "the {what} key is kept in {} beside the database it protects: a copy of that \
                 folder (a backup) carries its own key; set {setting} to a path elsewhere",
                cfg.data_dir.display()
            )));
        }
    }
    if !cfg.portal.listen.is_empty() && cfg.portal.base_url.is_empty() {
        out.push(warn(
            "portal.base_url is empty: notification links will name the listen address; set \
             the address recipients reach (https://secure.example.org)"
                .into(),
        ));
    }
    out
}

/// The partner directory, checked with the gateway's backends; errors in it refuse the start.
fn load_directory(cfg: &RelayConfig, gateway: &Gateway) -> Result<CheckedDirectory, StartError> {
    let dir_err = |message: String| StartError::Directory {
        path: cfg.directory.clone(),
        message,
    };
    let directory = Directory::load(&cfg.directory).map_err(|e| dir_err(e.to_string()))?;
    gateway.check(directory).map_err(|r| {
        let first = r.findings.iter().find(|f| f.severity == Severity::Error);
        dir_err(match first {
            Some(f) => format!("{} (line {}): {}", f.subject, f.line, f.message),
            None => r.to_string(),
        })
    })
}

/// The inspector the configuration asks for.
#[cfg(feature = "dlp")]
fn inspector_for(cfg: &RelayConfig) -> Result<Arc<dyn ContentInspector>, StartError> {
    use postern_dlp::DlpInspector;
    Ok(if cfg.dlp.enabled {
        let policy = if cfg.dlp.policy.as_os_str().is_empty() {
            postern_dlp::DlpPolicy::default()
        } else {
            postern_dlp::DlpPolicy::load(&cfg.dlp.policy).map_err(|e| ConfigError::Value {
                field: "dlp.policy",
                message: e.to_string(),
            })?
        };
        let inspector = postern_dlp::Inspector::new(policy).map_err(|e| ConfigError::Value {
            field: "dlp.policy",
            message: e.to_string(),
        })?;
        Arc::new(DlpInspector(inspector))
    } else {
        Arc::new(PassThrough)
    })
}

/// Without the DLP built in, the relay starts only when the configuration turns inspection
/// off by name: mail that would be inspected must not leave uninspected by default.
#[cfg(not(feature = "dlp"))]
fn inspector_for(cfg: &RelayConfig) -> Result<Arc<dyn ContentInspector>, StartError> {
    if cfg.dlp.enabled {
        return Err(ConfigError::Value {
            field: "dlp.enabled",
            message: "this build has no content inspection (built without the dlp feature): \
                      set dlp.enabled = false to send mail to non-partners in clear without \
                      inspection, or use a build with it"
                .into(),
        }
        .into());
    }
    Ok(Arc::new(PassThrough))
}

async fn start_relay(
    parts: RelayBuilder<'_>,
    inspector: Arc<dyn ContentInspector>,
) -> Result<RunningRelay, StartError> {
    let cfg = parts.cfg;
    let settings = build_settings(cfg)?;
    let spool_dir = cfg.data_dir.join("spool");
    let spool = Spool::open(&spool_dir).map_err(|source| StartError::Spool {
        path: spool_dir.clone(),
        source,
    })?;
    // Decided before anything opens the database (which creates the SQLite file).
    let first_start = cfg.first_start();
    let key = keyfile::load_or_create(KeyRole::Quarantine, &cfg.quarantine_key(), first_start)
        .map_err(|e| StartError::Quarantine(e.to_string()))?;
    let db = cfg
        .open_database()
        .await
        .map_err(|e| StartError::Quarantine(e.to_string()))?;
    // A replaced key file is refused here, not found out when the first message fails.
    db.check_key("quarantine", key.as_ref())
        .await
        .map_err(|e| StartError::Quarantine(e.to_string()))?;
    let quarantine =
        Quarantine::new(db.clone(), *key).map_err(|e| StartError::Quarantine(e.to_string()))?;
    let audit_db = db.clone();
    // One CRL cache for both directions.
    let revocation: Arc<dyn postern_core::RevocationChecker> =
        Arc::new(crate::revocation::CrlChecker::new());
    let wkd = crate::wkd::Wkd::new(settings.tls.verified.clone());
    let harvest = Arc::new(crate::harvest::HarvestStore::new(db.clone()));
    let dns_cert = crate::dnscert::DnsCert::new(crate::mx::resolver(&cfg.dns)?);
    let dane = crate::dane::validating_resolver(&cfg.dns).map(crate::dane::DaneKeys::new);
    let mut gateway = Gateway::builder()
        .revocation(revocation)
        .inspector(inspector)
        .subject_trigger(cfg.subject_trigger.clone())
        .key_store(KeySource::Harvested, harvest.clone());
    if let Some((scanner, fallback)) = scanner_for(cfg)? {
        gateway = gateway.scanner(scanner).scan_fallback(fallback);
    }
    // Published keys are watched: a change is logged and audited.
    let audit = Arc::new(postern_store::audit::AuditLog::new(db.clone()));
    let watch = |store: Arc<dyn KeyStore>, name: &'static str| {
        Arc::new(crate::keywatch::Watched::new(store, name, audit.clone()))
    };
    gateway = gateway
        .key_store(KeySource::Wkd, watch(Arc::new(wkd), "wkd"))
        .key_store(KeySource::DnsCert, watch(Arc::new(dns_cert), "dns-cert"));
    // Without it built in, a partner that names it is warned about at the directory check.
    #[cfg(feature = "ldap")]
    {
        let ldap = crate::ldap::LdapKeys::new(crate::mx::resolver(&cfg.dns)?);
        gateway = gateway.key_store(KeySource::Ldap, watch(Arc::new(ldap), "ldap"));
    }
    if let Some(dane) = dane {
        gateway = gateway.key_store(KeySource::Dane, watch(Arc::new(dane), "dane"));
    }
    let choice = |c: InboundChoice| match c {
        InboundChoice::Tag => InboundAction::Tag,
        InboundChoice::Quarantine => InboundAction::Quarantine,
    };
    let gateway = gateway.inbound_policy(InboundPolicy {
        not_for_us: choice(cfg.inbound_policy.not_for_us),
        plaintext_from_required: choice(cfg.inbound_policy.plaintext_from_required),
        unsigned_cbc: cfg
            .inbound_policy
            .unsigned_cbc
            .unwrap_or(postern_router::UnsignedCbc::TextOnly),
    });
    // The embedder's choices win over the configuration's.
    let gateway = match parts.customise {
        Some(f) => f(gateway),
        None => gateway,
    }
    .build()
    .map_err(StartError::Gateway)?;
    let directory = load_directory(cfg, &gateway)?;
    let findings = directory.warnings().to_vec();
    let shared = Arc::new(Shared {
        settings,
        directory: SharedDirectory::new(directory),
        directory_path: cfg.directory.clone(),
        spool,
        scheduler: Scheduler::default(),
        metrics: Arc::new(Metrics::default()),
        gateway,
        quarantine,
        portal: std::sync::OnceLock::new(),
        harvest,
        tracking: postern_store::TrackingStore::new(db.clone()),
        db: db.clone(),
        draining: std::sync::atomic::AtomicBool::new(false),
    });
    // A restart ends draining: the node was drained to be stopped.
    if let Err(e) = shared.spool.request_drain(false) {
        tracing::warn!(error = %e, "could not clear a drain request");
    }

    // Everything spooled and not finished is picked up again (crash or restart).
    let (entries, bad) = shared.spool.list().map_err(|source| StartError::Spool {
        path: spool_dir.clone(),
        source,
    })?;
    for b in bad {
        tracing::error!(error = %b, "unreadable spool entry left in place");
    }
    shared.metrics.queue_depth.set(entries.len() as i64);
    let recovered = entries.iter().filter(|e| needs_work(e)).count();
    for e in entries.iter().filter(|e| needs_work(e)) {
        shared.scheduler.submit(&e.id, e.next_attempt);
    }
    if recovered > 0 {
        tracing::info!(messages = recovered, "picked up spooled messages");
    }

    let (stop, stop_rx) = watch::channel(false);
    let mut listeners = Vec::new();
    let mut bind = |addr: &str, role: Role| -> Result<Option<SocketAddr>, StartError> {
        if addr.is_empty() {
            return Ok(None);
        }
        let std_listener =
            std::net::TcpListener::bind(addr).map_err(|source| StartError::Bind {
                addr: addr.into(),
                source,
            })?;
        let local = std_listener.local_addr().ok();
        std_listener
            .set_nonblocking(true)
            .and_then(|_| TcpListener::from_std(std_listener))
            .map(|l| {
                let per_client = match role {
                    Role::Public => cfg.limits.max_connections_per_client,
                    _ => usize::MAX,
                };
                listeners.push(tokio::spawn(accept_loop(
                    l,
                    role,
                    shared.clone(),
                    postern_core::ConnectionSlots::new(
                        cfg.limits.max_connections,
                        per_client,
                        cfg.limits.ipv6_client_prefix,
                    ),
                    stop_rx.clone(),
                )))
            })
            .map_err(|source| StartError::Bind {
                addr: addr.into(),
                source,
            })?;
        Ok(local)
    };
    let internal_addr = bind(&cfg.internal.listen, Role::Internal)?;
    let public_addr = bind(&cfg.public.listen, Role::Public)?;
    let mut metrics_addr = None;
    if !cfg.metrics.is_empty() {
        let l = TcpListener::bind(&cfg.metrics)
            .await
            .map_err(|source| StartError::Bind {
                addr: cfg.metrics.clone(),
                source,
            })?;
        metrics_addr = l.local_addr().ok();
        listeners.push(tokio::spawn(crate::status::serve(
            l,
            Arc::downgrade(&shared),
        )));
    }
    #[cfg_attr(not(feature = "portal"), allow(unused_mut))]
    let mut portal_addr = None;
    #[cfg(feature = "portal")]
    if let Some((addr, tasks)) =
        crate::portal::start(cfg, &shared, db, first_start, stop_rx.clone()).await?
    {
        portal_addr = Some(addr);
        listeners.extend(tasks);
    }
    #[cfg(not(feature = "portal"))]
    {
        validate_portal(cfg)?;
        let _ = (db, first_start);
    }
    let mut workers = Vec::new();
    for _ in 0..cfg.workers.max(1) {
        workers.push(tokio::spawn(worker(shared.clone(), stop_rx.clone())));
    }
    listeners.push(tokio::spawn(poll_requests(shared.clone(), stop_rx.clone())));
    listeners.push(tokio::spawn(anchor_audit(
        postern_store::AuditLog::new(audit_db.clone()),
        cfg.audit_anchor(),
        stop_rx.clone(),
    )));
    listeners.push(tokio::spawn(crate::mdn::sweep(
        shared.clone(),
        stop_rx.clone(),
    )));
    listeners.push(tokio::spawn(purge_quarantine(
        shared.clone(),
        Duration::from_secs(cfg.quarantine.retention_days.saturating_mul(86_400)),
        stop_rx.clone(),
    )));
    for bundle in cfg.trust_bundles.clone() {
        listeners.push(tokio::spawn(refresh_bundle(
            shared.clone(),
            bundle,
            stop_rx.clone(),
        )));
    }
    Ok(RunningRelay {
        shared,
        internal_addr,
        public_addr,
        metrics_addr,
        portal_addr,
        findings,
        stop,
        listeners,
        workers,
        audit: (postern_store::AuditLog::new(audit_db), cfg.audit_anchor()),
    })
}

fn needs_work(e: &crate::spool::Entry) -> bool {
    e.recipients.iter().any(|r| {
        matches!(
            r.state,
            RcptState::Pending
                | RcptState::Bounced {
                    notified: false,
                    ..
                }
        )
    })
}

async fn accept_loop(
    listener: TcpListener,
    role: Role,
    shared: Arc<Shared>,
    slots: postern_core::ConnectionSlots,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            _ = stop.changed() => break,
            r = listener.accept() => match r {
                Ok((mut sock, peer)) => {
                    let _ = sock.set_nodelay(true);
                    if shared.draining.load(std::sync::atomic::Ordering::SeqCst) {
                        let bye = format!(
                            "421 4.3.2 {} is draining, try another node\r\n",
                            shared.settings.hostname
                        );
                        tokio::spawn(async move {
                            let _ = tokio::time::timeout(
                                Duration::from_secs(5),
                                sock.write_all(bye.as_bytes()),
                            )
                            .await;
                        });
                        continue;
                    }
                    let proxies = match role {
                        Role::Internal => &shared.settings.internal_proxies,
                        Role::Public => &shared.settings.public_proxies,
                    };
                    if proxies.iter().any(|n| n.contains(peer.ip())) {
                        tokio::spawn(proxied(sock, peer, role, shared.clone(), slots.clone()));
                        continue;
                    }
                    match slots.take(peer.ip()) {
                        Some(permit) => {
                            let shared = shared.clone();
                            tokio::spawn(async move {
                                session(Box::new(sock), peer, role, shared).await;
                                drop(permit);
                            });
                        }
                        None => {
                            tokio::spawn(async move {
                                let _ = sock
                                    .write_all(b"421 4.3.2 too many connections, try again later\r\n")
                                    .await;
                            });
                        }
                    }
                }
                Err(e) => {
                    // Out of file descriptors and the like: pause instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }
}

/// A connection from a load balancer: the PROXY header first (bounded in time and size), then
/// the session as the client it names, within that client's slots.
async fn proxied(
    mut sock: tokio::net::TcpStream,
    balancer: std::net::SocketAddr,
    role: Role,
    shared: Arc<Shared>,
    slots: postern_core::ConnectionSlots,
) {
    // The balancer's own slot (the listener's total only) while its header is read, so a
    // stalled balancer cannot hold more connections than the listener allows.
    let Some(reading) = slots.take_within(balancer.ip(), usize::MAX) else {
        return;
    };
    let client = match tokio::time::timeout(
        crate::proxy::HEADER_WAIT,
        crate::proxy::read_header(&mut sock),
    )
    .await
    {
        Ok(Ok(Some(client))) => client,
        // UNKNOWN or LOCAL names no client: the balancer's own address would pass as one of the
        // networks it sits in. Its health checks belong on /healthz.
        Ok(Ok(None)) => {
            let _ = tokio::time::timeout(
                Duration::from_secs(5),
                sock.write_all(b"421 4.3.0 no client named; health checks use /healthz\r\n"),
            )
            .await;
            return;
        }
        Ok(Err(e)) => {
            tracing::warn!(balancer = %balancer, error = %e, "connection from a load balancer dropped");
            return;
        }
        Err(_) => {
            tracing::warn!(balancer = %balancer, "no PROXY header in time; connection dropped");
            return;
        }
    };
    drop(reading);
    match slots.take(client.ip()) {
        Some(permit) => {
            session(Box::new(sock), client, role, shared).await;
            drop(permit);
        }
        None => {
            let _ = tokio::time::timeout(
                Duration::from_secs(5),
                sock.write_all(b"421 4.3.2 too many connections, try again later\r\n"),
            )
            .await;
        }
    }
}

async fn worker(shared: Arc<Shared>, stop: watch::Receiver<bool>) {
    while !*stop.borrow() {
        if let Some(id) = shared.scheduler.next().await {
            // The whole message off the async workers: sealing, inspection and the spool's
            // fsyncs are CPU or disk bound (each relay worker holds one thread while it works).
            let next = crate::util::off_worker(process(&shared, &id)).await;
            shared.scheduler.finish(&id, next);
        }
    }
}

/// Anchors the audit log's newest hash outside the database (a file and a log line) every
/// minute while it grows, so a cut tail or an emptied log is found by `audit verify`.
async fn anchor_audit(
    log: postern_store::AuditLog,
    path: std::path::PathBuf,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        if let Err(e) = log.write_anchor(&path).await {
            tracing::error!(error = %e, "audit anchor failed; retrying");
        }
        tokio::select! {
            _ = stop.wait_for(|s| *s) => break,
            _ = tokio::time::sleep(Duration::from_secs(60)) => {}
        }
    }
}

/// Destroys the content of decided quarantine entries past their retention, at start and then
/// hourly.
async fn purge_quarantine(
    shared: Arc<Shared>,
    retention: Duration,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        match shared.quarantine.purge_decided(retention).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(messages = n, "quarantine content destroyed after retention"),
            Err(e) => tracing::error!(error = %e, "quarantine retention sweep failed; retrying"),
        }
        tokio::select! {
            _ = stop.wait_for(|s| *s) => break,
            _ = tokio::time::sleep(Duration::from_secs(3600)) => {}
        }
    }
}

/// Picks up requests the queue commands leave in the spool (flush, release).
async fn poll_requests(shared: Arc<Shared>, mut stop: watch::Receiver<bool>) {
    loop {
        tokio::select! {
            _ = stop.changed() => break,
            _ = tokio::time::sleep(Duration::from_millis(500)) => {}
        }
        let drain = shared.spool.drain_requested();
        if shared
            .draining
            .swap(drain, std::sync::atomic::Ordering::SeqCst)
            != drain
        {
            if drain {
                tracing::warn!("draining: new connections get 421, the health check fails");
            } else {
                tracing::info!("draining ended: taking mail again");
            }
        }
        if shared.spool.take_flush() {
            let spool = shared.spool.clone();
            if let Ok(Ok((entries, _))) = tokio::task::spawn_blocking(move || spool.list()).await {
                let now = unix_ms();
                for e in entries.iter().filter(|e| needs_work(e)) {
                    shared.scheduler.submit(&e.id, now);
                }
                shared.metrics.queue_depth.set(entries.len() as i64);
            }
            shared.scheduler.flush();
            tracing::info!("queue flushed on request");
        }
    }
}

/// Keeps one trust bundle fresh: fetch, and reload the directory when the file changed (the
/// directory in force stays if the new one does not load).
async fn refresh_bundle(
    shared: Arc<Shared>,
    bundle: crate::bundles::TrustBundle,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    loop {
        // Paths were made absolute with the configuration; relative ones are the embedder's.
        let base = std::path::Path::new("");
        match crate::bundles::refresh(&bundle, base, &shared.settings.tls.verified).await {
            Ok(true) => match shared.directory.reload(
                &shared.directory_path,
                shared.gateway.backends(),
                shared.gateway.now(),
            ) {
                Ok(_) => {
                    tracing::info!(url = %bundle.url, "directory reloaded with the new trust bundle")
                }
                Err(e) => tracing::warn!(url = %bundle.url, error = %e, "directory not reloaded"),
            },
            Ok(false) => {}
            Err(e) => {
                tracing::warn!(error = %e, "trust bundle not refreshed; the file in force stays")
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(bundle.period()) => {}
            _ = stop.changed() => return,
        }
    }
}

impl RunningRelay {
    /// Reloads the partner directory; on error the old one stays in force.
    pub fn reload_directory(&self) -> Result<Vec<Finding>, ReloadError> {
        self.shared.directory.reload(
            &self.shared.directory_path,
            self.shared.gateway.backends(),
            self.shared.gateway.now(),
        )
    }

    /// The partner directory in force (an `Arc` snapshot).
    pub fn directory(&self) -> Arc<CheckedDirectory> {
        self.shared.directory.current()
    }

    /// Checks `dir` with the relay's backends and puts it in force (embedders that build it in
    /// Rust); a directory with errors is refused and the one in force stays.
    pub fn replace_directory(
        &self,
        dir: Directory,
    ) -> Result<Vec<Finding>, postern_router::Rejected> {
        let checked = self.shared.gateway.check(dir)?;
        let warnings = checked.warnings().to_vec();
        self.shared.directory.replace(checked);
        Ok(warnings)
    }

    /// The relay's counters.
    pub fn metrics(&self) -> &Metrics {
        &self.shared.metrics
    }

    /// The spool.
    pub fn spool(&self) -> &Spool {
        &self.shared.spool
    }

    /// Messages scheduled or being worked on.
    pub fn queued(&self) -> usize {
        self.shared.scheduler.len()
    }

    /// Stops accepting connections, lets workers finish the message in hand (up to `grace`),
    /// and returns. Whatever is not finished stays in the spool for the next start.
    pub async fn shutdown(self, grace: Duration) {
        let _ = self.stop.send(true);
        self.shared.scheduler.wake_all();
        for l in &self.listeners {
            l.abort();
        }
        let all = futures_join(self.workers);
        let _ = tokio::time::timeout(grace, all).await;
        // The last rows before the stop are anchored too.
        if let Err(e) = self.audit.0.write_anchor(&self.audit.1).await {
            tracing::error!(error = %e, "audit anchor not written at shutdown");
        }
        self.shared.quarantine.close().await;
    }
}

async fn futures_join(handles: Vec<JoinHandle<()>>) {
    for h in handles {
        let _ = h.await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Inspection is on unless the configuration turns it off by name; a build without the
    /// DLP refuses to start with it on rather than send uninspected.
    #[test]
    fn a_build_without_the_dlp_starts_only_with_inspection_off_by_name() {
        let mut cfg = RelayConfig::default();
        assert!(cfg.dlp.enabled, "inspection is the default");
        let got = inspector_for(&cfg);
        #[cfg(feature = "dlp")]
        assert!(got.is_ok());
        #[cfg(not(feature = "dlp"))]
        assert!(
            matches!(&got, Err(e) if e.to_string().contains("dlp.enabled = false")),
            "{:?}",
            got.err()
        );
        cfg.dlp.enabled = false;
        assert!(inspector_for(&cfg).is_ok());
    }
}

#[cfg(all(test, not(feature = "portal")))]
mod without_portal {
    use super::*;

    /// One configuration file serves both builds: the `[portal]` table is read, and a portal it
    /// asks for stops the start instead of being quietly absent.
    #[test]
    fn a_portal_in_the_configuration_is_read_and_refused() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("relay.toml");
        std::fs::write(
            &file,
            "[portal]\nlisten = \"127.0.0.1:8443\"\nbase_url = \"https://secure.example\"\n\
             plain_http = true\nsession_minutes = 30\n",
        )
        .unwrap();
        let mut cfg = RelayConfig::load(&file).unwrap();
        let e = validate_portal(&cfg).unwrap_err();
        assert!(
            e.to_string().contains("portal.listen") && e.to_string().contains("without the portal"),
            "{e}"
        );
        cfg.portal.listen.clear();
        assert!(validate_portal(&cfg).is_ok());
    }
}
