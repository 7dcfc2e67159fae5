//! The relay's configuration file (TOML). Every field has a default, so an empty file is a
//! loopback-only relay; the binary's embedded demo writes its own.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

/// Why a configuration cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not valid TOML for this schema (the message names the line).
    #[error("{path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// What is wrong, with line and column.
        message: String,
    },
    /// A value has the right type but cannot be used.
    #[error("{field}: {message}")]
    Value {
        /// Which setting.
        field: &'static str,
        /// What is wrong.
        message: String,
    },
}

/// The portal's settings (`[portal]`).
#[cfg(feature = "portal")]
pub use postern_portal::PortalSettings;

/// The `[portal]` table in a relay built without the `portal` feature: read, so one
/// configuration file serves both builds, but a portal that is asked for (`listen`) stops the
/// start ([`crate::StartError::Config`]) rather than being silently absent.
#[cfg(not(feature = "portal"))]
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct PortalSettings {
    /// Where the portal would listen (empty: no portal).
    pub listen: String,
    /// Its master key file.
    pub key_file: PathBuf,
    /// Its administrators' users file.
    pub admins: PathBuf,
    /// Its logo.
    pub logo: PathBuf,
    /// The address recipients reach it at.
    pub base_url: String,
    /// Every other portal setting, unused in this build.
    #[serde(flatten)]
    pub other: std::collections::BTreeMap<String, toml::Value>,
}

/// The whole relay configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RelayConfig {
    /// Our name in greetings, Received fields and DSNs.
    pub hostname: String,
    /// Where the spool and generated files live (relative paths: to the config file).
    pub data_dir: PathBuf,
    /// The partner directory (TOML, see postern-router). Relative: to the config file.
    pub directory: PathBuf,
    /// The listener our own mail server submits outbound mail to.
    pub internal: ListenerConfig,
    /// The listener the internet sends to: only recipients in our domains.
    pub public: ListenerConfig,
    /// Where outbound mail goes (smarthost, or a directory for demos).
    pub outbound: NextHopConfig,
    /// Where inbound (opened) mail goes: the organisation's mail server.
    pub inbound: NextHopConfig,
    /// Protocol limits.
    pub limits: Limits,
    /// Retry schedule and give-up age.
    pub retry: RetryConfig,
    /// Subject marker that forces encryption or portal delivery.
    pub subject_trigger: String,
    /// Delivery workers (messages processed at the same time).
    pub workers: usize,
    /// Prometheus endpoint (`GET /metrics`); empty: none.
    pub metrics: String,
    /// STARTTLS certificate and the roots for verifying next hops.
    pub tls: TlsConfig,
    /// Nameserver for MX lookups (`IP:PORT`); empty: the system's.
    pub dns: String,
    /// Content inspection of outgoing mail.
    pub dlp: DlpConfig,
    /// Malware scanning of every message (clamd).
    pub scan: ScanConfig,
    /// Direct delivery notifications (`[direct]`).
    pub direct: DirectConfig,
    /// The quarantine store.
    pub quarantine: QuarantineConfig,
    /// SMTP AUTH on the internal listener.
    pub auth: AuthConfig,
    /// What happens to inbound mail that cannot be opened, or arrives in clear from a partner
    /// that must encrypt.
    pub inbound_policy: InboundPolicyConfig,
    /// The secure web portal for recipients without a gateway (`listen` empty: none).
    pub portal: PortalSettings,
    /// The database for the quarantine, the portal and the audit log: `postgres://…` (one
    /// database several gateway nodes share); empty: SQLite, `DATA_DIR/postern.sqlite`.
    pub database: String,
    /// Trust bundles kept fresh from their publisher (`[[trust_bundles]]`); the directory names
    /// their files as trust anchors.
    pub trust_bundles: Vec<crate::bundles::TrustBundle>,
}

/// What to do with unusual inbound mail: `tag` (deliver with a `Postern-*` header saying what
/// happened) or `quarantine` (hold for review). Never dropped.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum InboundChoice {
    /// Deliver, with a header.
    #[default]
    Tag,
    /// Hold for review.
    Quarantine,
}

/// The inbound policy knobs.
#[derive(Debug, Clone, Copy, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct InboundPolicyConfig {
    /// A message encrypted to none of our keys (`undecryptable` is its old name, still read).
    /// One encrypted to our key that does not open is always quarantined.
    #[serde(alias = "undecryptable")]
    pub not_for_us: InboundChoice,
    /// Plaintext from a `required` partner.
    pub plaintext_from_required: InboundChoice,
    /// AES-CBC S/MIME without a valid signature from senders that are not partners (or
    /// partners without `unsigned_cbc`): `text-only` (default) or `quarantine`. `required`
    /// partners default to quarantine.
    pub unsigned_cbc: Option<postern_router::UnsignedCbc>,
}

/// SMTP AUTH settings (internal listener only, offered only inside TLS).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// The users file (`name:$argon2id$...` per line, see `postern-relay hash-password`);
    /// empty: no AUTH.
    pub users: PathBuf,
    /// Refuse MAIL from clients that have not authenticated (default false: the networks
    /// list alone decides).
    pub required: bool,
}

/// Content inspection settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DlpConfig {
    /// Inspect outgoing mail (default true).
    pub enabled: bool,
    /// A policy file (see postern-dlp); empty: the built-in policy.
    pub policy: PathBuf,
}

impl Default for DlpConfig {
    fn default() -> Self {
        DlpConfig {
            enabled: true,
            policy: PathBuf::new(),
        }
    }
}

/// Malware scanning (`[scan]`): clamd on loopback or a Unix socket scans every message, mail
/// from outside after it is opened, ours before it is sealed. Infected mail is quarantined.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ScanConfig {
    /// clamd's address: `127.0.0.1:3310`, or a socket path (`/run/clamav/clamd.ctl`); empty:
    /// no scanning.
    pub clamd: String,
    /// When clamd cannot answer: `defer` (default: the message waits and is retried) or
    /// `pass` (delivered unscanned).
    pub unavailable: String,
    /// Longest wait for clamd per step (connect, send, answer), in seconds.
    pub timeout_secs: u64,
}

impl Default for ScanConfig {
    fn default() -> Self {
        ScanConfig {
            clamd: String::new(),
            unavailable: "defer".into(),
            timeout_secs: 60,
        }
    }
}

/// Direct delivery notifications (`[direct]`): how long a Direct message we sent waits for
/// the partner's notifications before its sender is told, and which notifications our users
/// see.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DirectConfig {
    /// Seconds a message waits for its `processed` notification (default one hour).
    pub notification_timeout_secs: u64,
    /// The same for a message that asked for timely and reliable delivery (`processed` and
    /// `dispatched`; default one hour).
    pub reliable_timeout_secs: u64,
    /// Pass partners' `processed` notifications on to our users (false: only `dispatched` and
    /// failures, as the Java RI's suppressor can); duplicates never.
    pub deliver_processed_mdns: bool,
    /// Days a finished tracking row is kept (Message-IDs and addresses, no content).
    pub tracking_days: u64,
    /// Our mail server is the destination of Direct mail (the .NET RI's
    /// `GatewayIsDestination`): a message that asked for timely and reliable delivery gets its
    /// `dispatched` notification once our server took it.
    pub gateway_is_destination: bool,
}

impl Default for DirectConfig {
    fn default() -> Self {
        DirectConfig {
            notification_timeout_secs: 3600,
            reliable_timeout_secs: 3600,
            deliver_processed_mdns: true,
            tracking_days: 30,
            gateway_is_destination: false,
        }
    }
}

/// Quarantine settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct QuarantineConfig {
    /// The AES-256 key (64 hex characters) that encrypts held messages; empty:
    /// `DATA_DIR/quarantine.key`, generated on first start.
    pub key_file: PathBuf,
    /// Days a released or rejected message stays readable after the decision (for review);
    /// then its content is destroyed, audited.
    pub retention_days: u64,
}

impl Default for QuarantineConfig {
    fn default() -> Self {
        QuarantineConfig {
            key_file: PathBuf::new(),
            retention_days: 30,
        }
    }
}

impl RelayConfig {
    /// The embedded SQLite database (quarantine, portal, audit log), when `database` does not
    /// name a PostgreSQL one.
    pub fn sqlite_db(&self) -> PathBuf {
        self.data_dir.join("postern.sqlite")
    }

    /// True before the first start: no database yet, so keys may be generated. With
    /// PostgreSQL never (every node must share the keys; none is made behind its back).
    pub fn first_start(&self) -> bool {
        self.database.is_empty() && !self.sqlite_db().exists()
    }

    /// Opens (and migrates) the database.
    /// Opens (and migrates) the database, with the audit chain's key when the quarantine key
    /// exists (see [`RelayConfig::audit_key`]).
    pub async fn open_database(&self) -> Result<postern_store::Db, postern_store::DbError> {
        // Read first: a damaged key file is an error before anything opens the database.
        let audit_key = self.audit_key()?;
        let db = if self.database.is_empty() {
            postern_store::Db::sqlite(&self.sqlite_db()).await?
        } else {
            postern_store::Db::connect(&self.database).await?
        };
        Ok(match audit_key {
            Some(k) => db.with_audit_key(k),
            None => db,
        })
    }

    /// The audit chain's HMAC key, derived from the quarantine key (a file outside the
    /// database, 0600, shared by every node of a PostgreSQL deployment); `None` before the
    /// first start made it. A key file that is there but damaged is an error, not `None`:
    /// the audit chain must not quietly go on unkeyed.
    pub fn audit_key(&self) -> Result<Option<[u8; 32]>, postern_store::KeyFileError> {
        let path = self.quarantine_key();
        let q =
            postern_store::keyfile::load(&path).map_err(|problem| postern_store::KeyFileError {
                role: postern_store::KeyRole::Quarantine,
                path: path.display().to_string(),
                problem,
            })?;
        Ok(q.and_then(|q| {
            let k = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, q.as_ref());
            let tag = aws_lc_rs::hmac::sign(&k, b"postern audit chain v1");
            tag.as_ref().try_into().ok()
        }))
    }

    /// The file the audit log's newest hash is anchored in, outside the database.
    pub fn audit_anchor(&self) -> PathBuf {
        self.data_dir.join("audit.anchor")
    }

    /// The portal's master key file.
    pub fn portal_key(&self) -> PathBuf {
        if self.portal.key_file.as_os_str().is_empty() {
            self.data_dir.join("portal.key")
        } else {
            self.portal.key_file.clone()
        }
    }

    /// The quarantine key file.
    pub fn quarantine_key(&self) -> PathBuf {
        if self.quarantine.key_file.as_os_str().is_empty() {
            self.data_dir.join("quarantine.key")
        } else {
            self.quarantine.key_file.clone()
        }
    }
}

/// TLS settings. Without a certificate the relay generates a self-signed one at start (fine
/// for opportunistic STARTTLS, which is all most senders do; configure a real one for peers
/// that verify).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TlsConfig {
    /// PEM certificate chain for our listeners.
    pub certificate: PathBuf,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1) for it.
    pub key: PathBuf,
    /// Extra PEM CA certificates trusted when verifying next hops (besides the Mozilla roots).
    pub ca_file: PathBuf,
}

impl Default for RelayConfig {
    fn default() -> Self {
        RelayConfig {
            hostname: "postern.localhost".into(),
            data_dir: PathBuf::from("postern-data"),
            directory: PathBuf::from("directory.toml"),
            internal: ListenerConfig {
                listen: "127.0.0.1:2525".into(),
                networks: vec!["127.0.0.0/8".into(), "::1/128".into()],
                proxy_from: Vec::new(),
            },
            public: ListenerConfig {
                listen: "127.0.0.1:2526".into(),
                networks: vec!["0.0.0.0/0".into(), "::/0".into()],
                proxy_from: Vec::new(),
            },
            outbound: NextHopConfig {
                relayhost: "dir:outbox".into(),
                verify_recipients: None,
            },
            inbound: NextHopConfig {
                relayhost: "dir:inbox".into(),
                verify_recipients: None,
            },
            limits: Limits::default(),
            retry: RetryConfig::default(),
            subject_trigger: "[secure]".into(),
            workers: 8,
            metrics: "127.0.0.1:9725".into(),
            tls: TlsConfig::default(),
            dns: String::new(),
            dlp: DlpConfig::default(),
            scan: ScanConfig::default(),
            direct: DirectConfig::default(),
            quarantine: QuarantineConfig::default(),
            auth: AuthConfig::default(),
            inbound_policy: InboundPolicyConfig::default(),
            portal: PortalSettings::default(),
            database: String::new(),
            trust_bundles: Vec::new(),
        }
    }
}

/// One SMTP listener.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListenerConfig {
    /// Address and port, e.g. `127.0.0.1:2525`. Empty: no listener.
    pub listen: String,
    /// Client networks allowed to connect (CIDR).
    #[serde(default)]
    pub networks: Vec<String>,
    /// Load balancers (CIDR) whose connections start with a PROXY protocol header (HAProxy's,
    /// version 1 or 2) naming the real client, which every check and limit then uses. Empty:
    /// none is read, and no header from anyone is believed.
    #[serde(default)]
    pub proxy_from: Vec<String>,
}

/// A next hop: `HOST:PORT` (SMTP) or `dir:PATH` (write each message as a file, for demos).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NextHopConfig {
    /// `mx` (direct delivery to each domain's MX), `127.0.0.1:25`, `[mail.example]:587` or
    /// `dir:outbox`.
    pub relayhost: String,
    /// For the inbound hop: ask it during the SMTP session whether it takes each recipient,
    /// and refuse unknown ones there (550) rather than accept and bounce later — a bounce to a
    /// forged sender is backscatter, and to a partner it would be a message we made from a
    /// stranger's words. Default: on when the inbound hop is SMTP.
    #[serde(default)]
    pub verify_recipients: Option<bool>,
}

/// SMTP limits: what a client may send before it gets an error reply.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Largest message accepted (bytes, as transmitted; advertised in SIZE).
    pub max_message_size: usize,
    /// Recipients per transaction (more get 452 4.5.3).
    pub max_recipients: usize,
    /// Concurrent SMTP connections on each listener (more get 421). Each listener has its own
    /// allowance, so the internet filling the public one never stops outbound mail.
    pub max_connections: usize,
    /// Concurrent connections from one client address on the public listener (more get 421):
    /// one host cannot take every slot. (The internal listener serves a few mail servers that
    /// open many connections each, so it has none.)
    pub max_connections_per_client: usize,
    /// Seconds to wait for a command line.
    pub command_timeout_secs: u64,
    /// Seconds for the whole DATA phase.
    pub data_timeout_secs: u64,
    /// Unknown or failed commands before the connection is closed.
    pub max_errors: usize,
    /// Seconds to wait for each reply from a next hop.
    pub delivery_timeout_secs: u64,
    /// Connections at once to one destination (a relay host, or one domain's MX hosts).
    pub per_destination: usize,
    /// IPv6 clients are counted by network for the per-client limits (connections, AUTH
    /// failures): the first this many bits. One host usually holds a whole /64.
    pub ipv6_client_prefix: u8,
    /// Unknown recipients one client may ask about in ten minutes on the public listener (with
    /// recipient verification) before each answer is delayed; twice as many, and it gets 421
    /// until the ten minutes pass: recipient verification must not be a directory-harvest
    /// oracle.
    pub unknown_recipients_per_client: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_message_size: 50 * 1024 * 1024,
            max_recipients: 1000,
            max_connections: 256,
            max_connections_per_client: 20,
            command_timeout_secs: 300,
            data_timeout_secs: 600,
            max_errors: 20,
            delivery_timeout_secs: 300,
            per_destination: 20,
            ipv6_client_prefix: 64,
            unknown_recipients_per_client: 10,
        }
    }
}

/// When to retry a temporary failure, and when to give up.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetryConfig {
    /// Waits between attempts (`30s`, `5m`, `1h`, `1d`); the last repeats.
    pub schedule: Vec<String>,
    /// Age after which a message still undelivered is bounced.
    pub give_up_after: String,
}

impl Default for RetryConfig {
    fn default() -> Self {
        RetryConfig {
            schedule: ["1m", "5m", "15m", "1h", "4h"].map(String::from).to_vec(),
            give_up_after: "5d".into(),
        }
    }
}

impl RetryConfig {
    /// The schedule as durations.
    pub fn delays(&self) -> Result<Vec<Duration>, ConfigError> {
        let v = self
            .schedule
            .iter()
            .map(|s| parse_duration(s))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|message| ConfigError::Value {
                field: "retry.schedule",
                message,
            })?;
        if v.is_empty() {
            return Err(ConfigError::Value {
                field: "retry.schedule",
                message: "needs at least one delay".into(),
            });
        }
        Ok(v)
    }

    /// The give-up age.
    pub fn max_age(&self) -> Result<Duration, ConfigError> {
        parse_duration(&self.give_up_after).map_err(|message| ConfigError::Value {
            field: "retry.give_up_after",
            message,
        })
    }
}

/// `90`, `30s`, `5m`, `2h`, `5d` → a duration.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (num, unit) = match s.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => s.split_at(i),
        None => (s, "s"),
    };
    let n: u64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a duration like 30s, 5m, 1h or 5d"))?;
    let mult = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86400,
        _ => return Err(format!("{s:?}: unknown unit (s, m, h, d)")),
    };
    Ok(Duration::from_secs(n.saturating_mul(mult)))
}

impl RelayConfig {
    /// Reads a file; relative paths in it are resolved against its folder.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.into(),
            source,
        })?;
        // The message and line only: toml's full error quotes the offending line, and the file
        // an administrator points us at may be anything (a key, a password file).
        let mut cfg: RelayConfig = toml::from_str(&text).map_err(|e| ConfigError::Parse {
            path: path.into(),
            message: match e.span() {
                Some(s) => format!(
                    "line {}: {}",
                    text.get(..s.start).map_or(0, |t| t.lines().count().max(1)),
                    e.message()
                ),
                None => e.message().to_string(),
            },
        })?;
        // A public listener is for the internet: without `networks` it takes every client
        // (relaying is refused by recipient, not by address). An internal listener without
        // `networks` stays closed to everyone: its networks must be named.
        if cfg.public.networks.is_empty() {
            cfg.public.networks = vec!["0.0.0.0/0".into(), "::/0".into()];
        }
        let base = path.parent().unwrap_or(Path::new("."));
        cfg.resolve_paths(base);
        Ok(cfg)
    }

    /// Makes relative paths absolute against `base`.
    pub fn resolve_paths(&mut self, base: &Path) {
        for p in [
            &mut self.data_dir,
            &mut self.directory,
            &mut self.tls.certificate,
            &mut self.tls.key,
            &mut self.tls.ca_file,
            &mut self.dlp.policy,
            &mut self.quarantine.key_file,
            &mut self.auth.users,
            &mut self.portal.key_file,
            &mut self.portal.admins,
            &mut self.portal.logo,
        ] {
            if p.is_relative() && !p.as_os_str().is_empty() {
                *p = base.join(&*p);
            }
        }
        for b in &mut self.trust_bundles {
            if b.file.is_relative() {
                b.file = base.join(&b.file);
            }
        }
    }
}

/// A parsed client network (one type for every address filter: listeners, proxies).
pub use postern_core::Network;

/// Where a message goes next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NextHop {
    /// SMTP to this host and port (a name is resolved at connection time).
    Smtp(String),
    /// One file per message in this directory (demo and tests of the demo).
    Directory(PathBuf),
    /// Each recipient domain's MX hosts, on this port (25 but in tests).
    Mx {
        /// The SMTP port.
        port: u16,
    },
}

impl NextHop {
    /// Parses `mx` (or `mx:PORT`), `dir:PATH`, `HOST:PORT` or `[HOST]:PORT`; relative
    /// directories against `base`.
    pub fn parse(s: &str, base: &Path) -> Result<Self, String> {
        if s == "mx" {
            return Ok(NextHop::Mx { port: 25 });
        }
        if let Some(p) = s.strip_prefix("mx:") {
            let port = p.parse().map_err(|_| format!("{s:?}: expected mx:PORT"))?;
            return Ok(NextHop::Mx { port });
        }
        if let Some(p) = s.strip_prefix("dir:") {
            let p = PathBuf::from(p);
            return Ok(NextHop::Directory(if p.is_relative() {
                base.join(p)
            } else {
                p
            }));
        }
        let hostport = s.strip_prefix("smtp:").unwrap_or(s);
        let hostport = hostport.replace(['[', ']'], "");
        if hostport.parse::<SocketAddr>().is_ok() {
            return Ok(NextHop::Smtp(hostport));
        }
        match hostport.rsplit_once(':') {
            Some((h, p)) if !h.is_empty() && p.parse::<u16>().is_ok() => {
                Ok(NextHop::Smtp(hostport))
            }
            _ => Err(format!("{s:?}: expected HOST:PORT or dir:PATH")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The audit chain's key comes from the quarantine key file: missing before the first
    /// start is "no key yet", but a damaged file is an error, never a quietly unkeyed chain.
    #[tokio::test]
    async fn a_damaged_quarantine_key_is_an_error_not_an_unkeyed_audit_chain() {
        let d = tempfile::tempdir().unwrap();
        let cfg = RelayConfig {
            data_dir: d.path().to_path_buf(),
            ..RelayConfig::default()
        };
        assert!(cfg.audit_key().unwrap().is_none());
        std::fs::write(cfg.quarantine_key(), "not a key\n").unwrap();
        assert!(cfg.audit_key().is_err());
        let e = cfg.open_database().await.unwrap_err().to_string();
        assert!(e.contains("64 hex"), "{e}");
        std::fs::write(cfg.quarantine_key(), "ab".repeat(32)).unwrap();
        assert!(cfg.audit_key().unwrap().is_some());
        assert!(cfg.open_database().await.unwrap().audit_key().is_some());
    }

    /// `[inbound_policy] undecryptable`, the knob's old name, is still read as `not_for_us`.
    #[test]
    fn the_old_name_of_not_for_us_still_loads() {
        for key in ["undecryptable", "not_for_us"] {
            let d = tempfile::tempdir().unwrap();
            let p = d.path().join("relay.toml");
            std::fs::write(&p, format!("[inbound_policy]\n{key} = \"quarantine\"\n")).unwrap();
            let cfg = RelayConfig::load(&p).unwrap();
            assert!(
                matches!(cfg.inbound_policy.not_for_us, InboundChoice::Quarantine),
                "{key}"
            );
        }
    }

    #[test]
    fn networks() {
        let n = Network::parse("127.0.0.0/8").unwrap();
        assert!(n.contains("127.9.9.9".parse().unwrap()));
        assert!(n.contains("::ffff:127.0.0.1".parse().unwrap()));
        assert!(!n.contains("10.0.0.1".parse().unwrap()));
        let all = Network::parse("0.0.0.0/0").unwrap();
        assert!(all.contains("192.0.2.1".parse().unwrap()));
        let one = Network::parse("::1").unwrap();
        assert!(one.contains("::1".parse().unwrap()));
        assert!(!one.contains("::2".parse().unwrap()));
        assert!(Network::parse("10.0.0.0/33").is_err());
        assert!(Network::parse("example").is_err());
    }

    #[test]
    fn durations_and_hops() {
        assert_eq!(parse_duration("5m").unwrap(), Duration::from_secs(300));
        assert_eq!(parse_duration("2").unwrap(), Duration::from_secs(2));
        assert!(parse_duration("5w").is_err());
        let base = Path::new("/base");
        assert_eq!(
            NextHop::parse("[127.0.0.1]:25", base).unwrap(),
            NextHop::Smtp("127.0.0.1:25".into())
        );
        assert_eq!(
            NextHop::parse("dir:out", base).unwrap(),
            NextHop::Directory("/base/out".into())
        );
        assert!(NextHop::parse("nohost", base).is_err());
        assert_eq!(
            NextHop::parse("mx", base).unwrap(),
            NextHop::Mx { port: 25 }
        );
        assert_eq!(
            NextHop::parse("mx:2525", base).unwrap(),
            NextHop::Mx { port: 2525 }
        );
    }

    #[test]
    fn unknown_fields_are_refused_with_a_line() {
        let e = toml::from_str::<RelayConfig>("hostname = \"a\"\nlisten = 1\n").unwrap_err();
        assert!(e.to_string().contains("line 2"), "{e}");
    }
}
