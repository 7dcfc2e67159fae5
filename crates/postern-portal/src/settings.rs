//! The portal's settings (the relay's `[portal]` table): branding, lifetimes, limits.

use serde::Deserialize;

/// Portal settings. Every field has a default, so `[portal]` with `enabled = true` works.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PortalSettings {
    /// Where the portal listens (`IP:PORT`); empty: no portal (portal mail stays held).
    pub listen: String,
    /// Serve plain HTTP instead of TLS. Refused unless `listen` is a loopback address (the
    /// demo, or behind a TLS-terminating proxy on the same host).
    pub plain_http: bool,
    /// The master key file (64 hex characters) that wraps every message key; empty:
    /// `DATA_DIR/portal.key`, generated on the first start only.
    pub key_file: std::path::PathBuf,
    /// The administrators' users file (`name:$argon2id$…` lines, as for SMTP AUTH); empty:
    /// no administrator pages.
    pub admins: std::path::PathBuf,
    /// The address the links point at, e.g. `https://secure.hospital.example` (no slash at
    /// the end). Empty: made from the listen address.
    pub base_url: String,
    /// The notification sender, e.g. `secure-mail@hospital.example`.
    pub from: String,
    /// The organisation's name, in the notification and on every page.
    pub organisation: String,
    /// Primary colour (`#rrggbb`).
    pub colour: String,
    /// A logo file (PNG, JPEG or SVG, at most 256 KiB) shown on every page; empty: none.
    pub logo: std::path::PathBuf,
    /// How recipients reach a person ("call 555-0100 or write to help@…").
    pub support: String,
    /// Days a message stays readable (a partner entry's `portal_days` overrides it).
    pub lifetime_days: i64,
    /// Show the subject in the notification (off: it may hold PHI).
    pub show_subject: bool,
    /// Tell the sender when a message is first opened.
    pub read_receipts: bool,
    /// Tell the sender that a message went through the portal, with a link to withdraw it.
    pub sender_notices: bool,
    /// Seconds a one-time code works.
    pub code_lifetime_secs: i64,
    /// Codes one message may send within `code_window_secs`.
    pub max_codes: i64,
    /// The resend window.
    pub code_window_secs: i64,
    /// Wrong codes or passwords before a link (or account) is locked.
    pub max_failures: i64,
    /// Seconds it stays locked.
    pub lock_secs: i64,
    /// Seconds without a request before a session ends (HIPAA automatic logoff).
    pub idle_timeout_secs: i64,
    /// Seconds after which any session ends.
    pub absolute_timeout_secs: i64,
    /// Largest reply (text and attachments), bytes.
    pub max_reply_bytes: usize,
    /// Sensitive requests (codes, sign-ins, replies) one client may make per minute.
    pub per_client_per_minute: u32,
    /// IPv6 clients are counted by network: the first this many bits (an IPv4 client by its
    /// address).
    pub ipv6_client_prefix: u8,
    /// Connections the portal holds at once; more wait in the kernel's backlog.
    pub max_connections: usize,
    /// Connections one client (IPv4 address, IPv6 network) may hold at once.
    pub max_connections_per_client: usize,
    /// Seconds a client has to send a request's header section.
    pub header_timeout_secs: u64,
    /// Seconds a kept-alive connection may idle between requests.
    pub idle_connection_secs: u64,
    /// Reverse proxies and load balancers (CIDR) in front of the portal: from them, the client
    /// is the rightmost address in `X-Forwarded-For` that is not itself one of them, and every
    /// per-client limit counts that client. Empty: the header is never believed.
    pub trusted_proxies: Vec<String>,
}

impl Default for PortalSettings {
    fn default() -> Self {
        PortalSettings {
            listen: String::new(),
            plain_http: false,
            key_file: std::path::PathBuf::new(),
            admins: std::path::PathBuf::new(),
            base_url: String::new(),
            from: String::new(),
            organisation: "Postern Secure Mail".into(),
            colour: "#0b5394".into(),
            logo: std::path::PathBuf::new(),
            support: String::new(),
            lifetime_days: 30,
            show_subject: false,
            read_receipts: false,
            sender_notices: true,
            code_lifetime_secs: 15 * 60,
            max_codes: 5,
            code_window_secs: 3600,
            max_failures: 5,
            lock_secs: 15 * 60,
            idle_timeout_secs: 15 * 60,
            absolute_timeout_secs: 8 * 3600,
            max_reply_bytes: 25 * 1024 * 1024,
            per_client_per_minute: 30,
            ipv6_client_prefix: 64,
            max_connections: 256,
            max_connections_per_client: 16,
            header_timeout_secs: 10,
            idle_connection_secs: 30,
            trusted_proxies: Vec::new(),
        }
    }
}

impl PortalSettings {
    /// What is wrong with these settings, if anything.
    pub fn check(&self) -> Result<(), String> {
        let c = self.colour.as_bytes();
        if c.len() != 7 || c[0] != b'#' || !c[1..].iter().all(u8::is_ascii_hexdigit) {
            return Err(format!("portal.colour {:?}: expected #rrggbb", self.colour));
        }
        let url = &self.base_url;
        if !(url.is_empty() || url.starts_with("https://") || url.starts_with("http://")) {
            return Err("portal.base_url must start with https:// (or http:// on loopback)".into());
        }
        for (name, v) in [
            ("lifetime_days", self.lifetime_days),
            ("code_lifetime_secs", self.code_lifetime_secs),
            ("max_codes", self.max_codes),
            ("max_failures", self.max_failures),
            ("idle_timeout_secs", self.idle_timeout_secs),
            ("absolute_timeout_secs", self.absolute_timeout_secs),
        ] {
            if v <= 0 {
                return Err(format!("portal.{name} must be positive"));
            }
        }
        for p in &self.trusted_proxies {
            postern_core::Network::parse(p).map_err(|e| format!("portal.trusted_proxies: {e}"))?;
        }
        if self.ipv6_client_prefix > 128 {
            return Err("portal.ipv6_client_prefix must be at most 128".into());
        }
        for (name, v) in [
            ("max_connections", self.max_connections as u64),
            (
                "max_connections_per_client",
                self.max_connections_per_client as u64,
            ),
            ("header_timeout_secs", self.header_timeout_secs),
            ("idle_connection_secs", self.idle_connection_secs),
        ] {
            if v == 0 {
                return Err(format!("portal.{name} must be positive"));
            }
        }
        Ok(())
    }
}
