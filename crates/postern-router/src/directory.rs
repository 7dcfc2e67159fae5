//! The partner directory: a TOML file and the same as a Rust API.
//!
//! ```toml
//! [our]
//! domains = ["clinic.example"]
//! trust_anchors = ["ca/partner-ca.pem"]
//!
//! [[our.keys]]
//! standard = "smime"
//! certificate = "keys/gw.pem"      # a path (relative to this file) or inline PEM
//! key = "keys/gw.key"
//! # domains = ["clinic.example"]   # which of our domains it signs for, when its certificate
//! #                                # names another (the gateway signs a message only with a
//! #                                # key bound to its author's address or domain)
//!
//! [[our.keys]]
//! standard = "openpgp"
//! key = "keys/gw.sec.asc"          # the secret key carries its certificate
//!
//! [[partner]]
//! domain = "partner.example"       # or "*.partner.example" for its subdomains
//! standards = ["smime", "openpgp"] # in order of preference
//! policy = "required"              # required | preferred | tls-required | portal
//! smime_certificates = ["partner.pem"]
//! openpgp_certificates = ["partner.asc"]
//! sign = true
//! header_protection = false
//! cipher = "aes256-cbc"            # aes256-cbc (Outlook) | aes128-cbc | aes256-gcm | aes128-gcm
//! unsigned_cbc = "quarantine"      # or "text-only": its AES-CBC mail without a valid signature
//! accept_legacy = ["3des", "sha1"] # receive-only: open its 3DES mail, accept SHA-1 signatures
//! portal_days = 14                 # portal messages for it expire after 14 days (default: 30)
//! profile = "direct"               # a Direct HISP: every message wrapped and signed (S/MIME)
//! ```

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};

use postern_core::{ContentCipher, Credential, Domain, RevocationPolicy, Standard};
use serde::Deserialize;
use toml::Spanned;

/// What happens to mail for a partner domain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PartnerPolicy {
    /// Always encrypted; on any failure held, then bounced. Never plaintext.
    Required,
    /// Encrypted when a usable key exists, else plain but only over verified TLS.
    Preferred,
    /// Plain MIME, only over verified TLS.
    TlsRequired,
    /// Stored for pickup on the secure portal; a notification goes out instead.
    Portal,
}

/// What happens to inbound S/MIME mail encrypted with AES-CBC that carries no valid signature
/// bound to its sender. CBC has no integrity: anyone who captured one message to us can rewrite
/// its blocks (EFAIL, Poddebniak et al. 2018) so that the decrypted HTML sends its own text to
/// them when rendered. Only a signature inside proves the content is what the partner wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum UnsignedCbc {
    /// Hold it for review (the default for `required` partners, who sign).
    Quarantine,
    /// Deliver its text only, as `text/plain` with links removed and attachments withheld
    /// (the default for everyone else).
    TextOnly,
}

/// How a partner's gateway expects its mail beyond the standard it speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PartnerProfile {
    /// Plain S/MIME or OpenPGP as the entry's other settings say.
    #[default]
    Standard,
    /// A Direct HISP (the US health system's RFC 3183 gateways): S/MIME only; every message is
    /// wrapped whole as `message/rfc822` (its Subject travels inside only), signed with our
    /// identity for the sender as a detached `multipart/signed`, then encrypted.
    Direct,
}

/// A legacy algorithm a partner may still *send* us (never used towards it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Legacy {
    /// 3DES-CBC content encryption.
    TripleDes,
    /// SHA-1 in signatures.
    Sha1,
}

/// Which domains a partner entry covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DomainPattern {
    /// Exactly this domain.
    Exact(Domain),
    /// Every subdomain of this domain (`*.example.org`), not the domain itself.
    Subdomains(Domain),
}

impl DomainPattern {
    /// Parses `example.org` or `*.example.org`.
    pub fn parse(s: &str) -> Result<Self, String> {
        match s.strip_prefix("*.") {
            Some(rest) => Domain::new(rest)
                .map(DomainPattern::Subdomains)
                .map_err(|e| e.to_string()),
            None => Domain::new(s)
                .map(DomainPattern::Exact)
                .map_err(|e| e.to_string()),
        }
    }

    /// Does this pattern cover `domain`?
    pub fn matches(&self, domain: &Domain) -> bool {
        match self {
            DomainPattern::Exact(d) => d == domain,
            DomainPattern::Subdomains(d) => domain != d && domain.is_within(d),
        }
    }
}

impl DomainPattern {
    /// Is `domain` the organisation this pattern names: its domain or any below it (a
    /// certificate for `gw@partner.example` belongs to `*.partner.example` too)?
    pub fn owns(&self, domain: &Domain) -> bool {
        match self {
            DomainPattern::Exact(d) | DomainPattern::Subdomains(d) => domain.is_within(d),
        }
    }
}

impl fmt::Display for DomainPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DomainPattern::Exact(d) => write!(f, "{d}"),
            DomainPattern::Subdomains(d) => write!(f, "*.{d}"),
        }
    }
}

/// One partner organisation.
#[derive(Debug, Clone)]
pub struct Partner {
    /// The domains it covers.
    pub pattern: DomainPattern,
    /// Standards it accepts, most preferred first (may be empty for `tls-required`/`portal`).
    pub standards: Vec<Standard>,
    /// What happens to its mail.
    pub policy: PartnerPolicy,
    /// Certificates by standard (PEM/DER X.509 for S/MIME, armored/binary for OpenPGP).
    pub certificates: HashMap<Standard, Vec<Vec<u8>>>,
    /// Sign with our domain key before encrypting.
    pub sign: bool,
    /// Protect the headers (RFC 9788).
    pub header_protection: bool,
    /// S/MIME content cipher; `None` takes the backend default (AES-256-CBC).
    pub cipher: Option<ContentCipher>,
    /// Its unsigned AES-CBC mail; `None`: quarantine for `required` partners, else text only.
    pub unsigned_cbc: Option<UnsignedCbc>,
    /// Legacy algorithms accepted in its mail to us (receive-only; results are marked weak).
    pub accept_legacy: Vec<Legacy>,
    /// Days its portal messages stay readable (`None`: the portal's default).
    pub portal_days: Option<u32>,
    /// Other domains whose certificates this partner uses on purpose (a shared gateway of a
    /// hosting provider, a parent organisation); without them such a certificate is an error.
    pub certificate_domains: Vec<Domain>,
    /// Fingerprints of the keys that sign for the partner's whole domain (its gateway's
    /// domain keys): lower-case hex, no separators (SHA-256 of the DER certificate for S/MIME,
    /// as `openssl x509 -fingerprint -sha256` prints it; the key fingerprint for OpenPGP, as
    /// `gpg --fingerprint`). A pinned key that is not listed here, and whose certificate does
    /// not name the domain itself, is a person's key: it binds its own addresses only.
    pub gateway_keys: Vec<String>,
    /// Whether its certificates must be shown not revoked (CRL) before use.
    pub revocation: RevocationPolicy,
    /// Where its keys come from besides the certificates listed here.
    pub key_sources: Vec<KeySource>,
    /// CA certificates trusted for this partner's signers only (beside ours for everyone).
    pub trust_anchors: Vec<Vec<u8>>,
    /// Whether its signers' certificates are harvested.
    pub harvest: Harvest,
    /// What its gateway expects beyond the standard (a Direct HISP).
    pub profile: PartnerProfile,
    /// Line of the entry in the directory file (0 when built in Rust).
    pub line: usize,
}

/// A fingerprint as `openssl x509 -fingerprint` (colons, upper case) or `gpg --fingerprint`
/// (spaces) prints it, made lower-case hex without separators; `None` if it is not one.
pub fn normalise_fingerprint(s: &str) -> Option<String> {
    let hex: String = s
        .chars()
        .filter(|c| !matches!(c, ':' | ' ' | '\t'))
        .collect::<String>()
        .to_ascii_lowercase();
    let hex = hex
        .strip_prefix("sha256fingerprint=")
        .map(str::to_string)
        .unwrap_or(hex);
    (hex.len() >= 32 && hex.len() <= 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()))
        .then_some(hex)
}

impl Partner {
    /// Whether `fingerprint` (a signature report's) is one of this partner's declared gateway
    /// keys.
    pub fn is_gateway_key(&self, fingerprint: Option<&str>) -> bool {
        fingerprint
            .and_then(normalise_fingerprint)
            .is_some_and(|f| self.gateway_keys.contains(&f))
    }

    /// A partner with no certificates yet.
    pub fn new(pattern: DomainPattern, policy: PartnerPolicy, standards: Vec<Standard>) -> Self {
        Partner {
            pattern,
            standards,
            policy,
            certificates: HashMap::new(),
            sign: false,
            header_protection: false,
            cipher: None,
            unsigned_cbc: None,
            accept_legacy: Vec::new(),
            portal_days: None,
            certificate_domains: Vec::new(),
            gateway_keys: Vec::new(),
            revocation: RevocationPolicy::default(),
            key_sources: Vec::new(),
            trust_anchors: Vec::new(),
            harvest: Harvest::Off,
            profile: PartnerProfile::Standard,
            line: 0,
        }
    }

    /// Does it publish `standard` keys we look up (a discovery source beside the file)?
    pub fn discovers(&self, standard: Standard) -> bool {
        self.key_sources.iter().any(|s| {
            matches!(
                (s, standard),
                (KeySource::Dane | KeySource::Custom(_), _)
                    | (KeySource::Wkd, Standard::OpenPgp)
                    | (
                        KeySource::Harvested | KeySource::DnsCert | KeySource::Ldap,
                        Standard::Smime
                    )
            )
        })
    }

    /// The certificates configured for `standard`.
    pub fn certificates_for(&self, standard: Standard) -> &[Vec<u8>] {
        self.certificates
            .get(&standard)
            .map(Vec::as_slice)
            .unwrap_or_default()
    }
}

/// A place a partner publishes its keys, looked up when mail goes to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySource {
    /// The OpenPGP Web Key Directory of the recipient's domain (per address).
    Wkd,
    /// S/MIME certificates harvested from the partner's valid signatures and approved.
    Harvested,
    /// S/MIME certificates in DNS CERT records (RFC 4398, as the Direct Project publishes
    /// them), used only if they chain to our or the partner's trust anchors.
    DnsCert,
    /// S/MIME certificates in the partner's LDAP directory (`_ldap._tcp` SRV), used only if
    /// they chain to our or the partner's trust anchors.
    Ldap,
    /// SMIMEA (RFC 8162, DANE-EE) and OPENPGPKEY (RFC 7929) records, used only when DNSSEC
    /// validated them (the proof stands for a chain).
    Dane,
    /// A source of the embedder's own, named `x-NAME` in the directory and registered under
    /// the same name ([`crate::GatewayBuilder::key_store`] with `KeySource::Custom("x-NAME")`).
    /// Its S/MIME certificates are used only if they chain to our or the partner's anchors, as
    /// with every source but DANE.
    Custom(String),
}

impl KeySource {
    /// The name a directory file uses for it.
    pub fn name(&self) -> &str {
        match self {
            KeySource::Wkd => "wkd",
            KeySource::Harvested => "harvested",
            KeySource::DnsCert => "dns-cert",
            KeySource::Ldap => "ldap",
            KeySource::Dane => "dane",
            KeySource::Custom(n) => n,
        }
    }
}

/// `x-` and then lower-case letters, digits and hyphens: an embedder's source, kept apart from
/// the names Postern has or will have, so a typo of a built-in name is still an error.
fn custom_source(name: &str) -> Option<KeySource> {
    let rest = name.strip_prefix("x-")?;
    (!rest.is_empty()
        && rest.len() <= 64
        && rest
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-'))
    .then(|| KeySource::Custom(name.to_string()))
}

/// Whether certificates from a partner's valid signatures are kept for mail to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Harvest {
    /// Not kept.
    #[default]
    Off,
    /// Kept as pending until an administrator approves (`postern-relay keys approve`).
    Approve,
    /// Used at once (the signature chained to our anchors and named the partner's domain).
    Automatic,
}

/// Our own side: domains, signing/decryption identities, trust anchors for S/MIME signers.
#[derive(Debug, Clone, Default)]
pub struct OurIdentity {
    /// Domains we receive mail for and sign as.
    pub domains: Vec<Domain>,
    /// Our keys, one or more per standard.
    pub credentials: Vec<Credential>,
    /// CA certificates that partner S/MIME signers chain to.
    pub trust_anchors: Vec<Vec<u8>>,
    /// DKIM keys (`[[our.dkim]]`), by domain and selector: every copy that leaves is signed,
    /// after sealing, with each key of its From domain (two during a rotation: the new
    /// selector's and the old one's, until the old is removed).
    pub dkim: Vec<std::sync::Arc<postern_dkim::DkimSigner>>,
}

impl OurIdentity {
    /// The DKIM signers for mail from `domain`: the keys of the domain itself, else of the
    /// nearest parent domain that has keys (relaxed alignment, RFC 7489 §3.1.1). Empty: none.
    pub fn dkim_for(&self, domain: &str) -> Vec<&std::sync::Arc<postern_dkim::DkimSigner>> {
        let domain = domain.trim_end_matches('.').to_ascii_lowercase();
        let mut at = Some(domain.as_str());
        while let Some(d) = at {
            let found: Vec<_> = self.dkim.iter().filter(|s| s.domain() == d).collect();
            if !found.is_empty() {
                return found;
            }
            at = d
                .split_once('.')
                .map(|(_, parent)| parent)
                .filter(|p| p.contains('.'));
        }
        Vec::new()
    }
}

/// The whole directory.
#[derive(Debug, Clone, Default)]
pub struct Directory {
    /// Our identity.
    pub our: OurIdentity,
    /// Partner entries, in file order.
    pub partners: Vec<Partner>,
}

/// One problem found while loading, with its line in the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// 1-based line (0: not tied to a line).
    pub line: usize,
    /// What is wrong, in words an administrator can act on.
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line > 0 {
            write!(f, "line {}: {}", self.line, self.message)
        } else {
            f.write_str(&self.message)
        }
    }
}

/// Why a directory could not be loaded. The directory in force stays in force.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DirectoryError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not valid, for the listed reasons.
    #[error("{}", .0.iter().map(|p| p.to_string()).collect::<Vec<_>>().join("; "))]
    Invalid(Vec<Problem>),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    our: Option<RawOur>,
    #[serde(default)]
    partner: Vec<Spanned<RawPartner>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawOur {
    #[serde(default)]
    domains: Vec<Spanned<String>>,
    #[serde(default)]
    trust_anchors: Vec<Spanned<String>>,
    #[serde(default)]
    keys: Vec<Spanned<RawKey>>,
    #[serde(default)]
    dkim: Vec<Spanned<RawDkim>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDkim {
    domain: Spanned<String>,
    selector: String,
    /// The private key: a PEM file (RSA of 2048 bits or more, or Ed25519).
    key: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawKey {
    standard: Spanned<String>,
    certificate: Option<String>,
    key: Option<String>,
    /// A PKCS#12 file (S/MIME) holding key and certificate, instead of `key`/`certificate`.
    pkcs12: Option<String>,
    /// The PKCS#12 password: a file holding it (first line), or an environment variable.
    password_file: Option<String>,
    password_env: Option<String>,
    /// Which of our domains this identity signs for, besides those its certificate names.
    #[serde(default)]
    domains: Vec<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPartner {
    domain: Spanned<String>,
    #[serde(default)]
    standards: Vec<Spanned<String>>,
    policy: PartnerPolicy,
    #[serde(default)]
    smime_certificates: Vec<String>,
    #[serde(default)]
    openpgp_certificates: Vec<String>,
    #[serde(default)]
    sign: bool,
    #[serde(default)]
    header_protection: bool,
    cipher: Option<Spanned<String>>,
    #[serde(default)]
    unsigned_cbc: Option<UnsignedCbc>,
    #[serde(default)]
    accept_legacy: Vec<Spanned<String>>,
    #[serde(default)]
    portal_days: Option<Spanned<u32>>,
    #[serde(default)]
    certificate_domains: Vec<Spanned<String>>,
    #[serde(default)]
    gateway_keys: Vec<Spanned<String>>,
    revocation: Option<Spanned<String>>,
    #[serde(default)]
    key_sources: Vec<Spanned<String>>,
    #[serde(default)]
    trust_anchors: Vec<Spanned<String>>,
    #[serde(default)]
    harvest: Harvest,
    #[serde(default)]
    profile: PartnerProfile,
}

/// 1-based line of a byte offset.
fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

fn standard(name: &str) -> Option<Standard> {
    match name.to_ascii_lowercase().as_str() {
        "smime" | "s/mime" => Some(Standard::Smime),
        "openpgp" | "pgp" => Some(Standard::OpenPgp),
        _ => None,
    }
}

/// The largest key or certificate file read (a certificate is a few kilobytes; a trust bundle
/// of a few hundred anchors well under a megabyte). A 52 MB file once cost check-config half a
/// minute and a gigabyte.
pub const MAX_KEY_FILE: u64 = 4 * 1024 * 1024;

/// Reads a key or certificate file, at most [`MAX_KEY_FILE`] bytes.
fn read_key_file(path: &Path) -> Result<Vec<u8>, String> {
    use std::io::Read;
    let f =
        std::fs::File::open(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let mut out = Vec::new();
    f.take(MAX_KEY_FILE + 1)
        .read_to_end(&mut out)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    if out.len() as u64 > MAX_KEY_FILE {
        return Err(format!(
            "{} is larger than {} MiB: not a key or certificate file",
            path.display(),
            MAX_KEY_FILE >> 20
        ));
    }
    Ok(out)
}

/// Inline PEM/armor, or a path relative to `base`.
fn material(value: &str, base: &Path) -> Result<Vec<u8>, String> {
    if value.trim_start().starts_with("-----BEGIN") {
        return Ok(value.as_bytes().to_vec());
    }
    read_key_file(&base.join(value))
}

/// One `[[our.dkim]]` entry: only for a domain of ours, with a key that can sign.
fn our_dkim(d: &RawDkim, ours: &[Domain], base: &Path) -> Result<postern_dkim::DkimSigner, String> {
    let domain = Domain::new(d.domain.get_ref()).map_err(|e| format!("dkim: {e}"))?;
    if !ours.contains(&domain) {
        return Err(format!("dkim: {domain} is not one of [our] domains"));
    }
    let pem = zeroize::Zeroizing::new(material(&d.key, base).map_err(|e| format!("dkim: {e}"))?);
    let key = postern_dkim::DkimKey::from_pem(&pem).map_err(|e| format!("dkim key: {e}"))?;
    postern_dkim::DkimSigner::new(domain.as_str(), &d.selector, key)
        .map_err(|e| format!("dkim: {e}"))
}

/// One `[[our.keys]]` entry as a credential: a PKCS#12 file, or `key` (and `certificate`).
fn our_key(k: &RawKey, base: &Path) -> Result<Credential, String> {
    let Some(std) = standard(k.standard.get_ref()) else {
        return Err(format!(
            "unknown standard {:?} (smime or openpgp)",
            k.standard.get_ref()
        ));
    };
    if let Some(p12) = &k.pkcs12 {
        return pkcs12_credential(std, p12, k, base);
    }
    let Some(key) = &k.key else {
        return Err("a key needs `key` (and `certificate`) or `pkcs12`".into());
    };
    let secret = material(key, base)?;
    let certificate = match (&k.certificate, std) {
        (Some(c), _) => material(c, base)?,
        (None, Standard::OpenPgp) => secret.clone(),
        (None, _) => return Err("an S/MIME key needs its certificate".into()),
    };
    Ok(Credential::with_secret(std, certificate, secret))
}

/// Our S/MIME key and certificate (with its chain) from a PKCS#12 file.
fn pkcs12_credential(
    std: Standard,
    file: &str,
    k: &RawKey,
    base: &Path,
) -> Result<Credential, String> {
    if std != Standard::Smime {
        return Err("pkcs12 holds S/MIME keys; an OpenPGP key is given as `key`".into());
    }
    if k.key.is_some() || k.certificate.is_some() {
        return Err("give either `pkcs12` or `key`/`certificate`, not both".into());
    }
    let password = match (&k.password_file, &k.password_env) {
        (Some(f), None) => {
            let path = base.join(f);
            let text = std::fs::read_to_string(&path)
                .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
            zeroize::Zeroizing::new(text.lines().next().unwrap_or("").to_string())
        }
        (None, Some(var)) => zeroize::Zeroizing::new(
            std::env::var(var).map_err(|_| format!("environment variable {var} is not set"))?,
        ),
        (None, None) => zeroize::Zeroizing::new(String::new()),
        (Some(_), Some(_)) => return Err("give password_file or password_env, not both".into()),
    };
    let path = base.join(file);
    let bytes = read_key_file(&path)?;
    #[cfg(not(feature = "smime"))]
    {
        let _ = (bytes, password);
        Err(format!(
            "{}: PKCS#12 files are read by the S/MIME backend, which this build leaves out \
             (postern-router's `smime` feature)",
            path.display()
        ))
    }
    #[cfg(feature = "smime")]
    {
        let contents = postern_smime::pkcs12::read(&bytes, &password)
            .map_err(|e| format!("{}: {e}", path.display()))?;
        let mut pem = String::new();
        for der in std::iter::once(&contents.certificate).chain(&contents.chain) {
            pem.push_str(&pem_block("CERTIFICATE", der));
        }
        Ok(Credential::with_secret(
            Standard::Smime,
            pem.into_bytes(),
            contents.key.to_vec(),
        ))
    }
}

#[cfg(feature = "smime")]
fn pem_block(label: &str, der: &[u8]) -> String {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(chunk));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

impl Directory {
    /// Reads and parses a directory file; relative paths in it are taken from its folder.
    pub fn load(path: &Path) -> Result<Self, DirectoryError> {
        let text = std::fs::read_to_string(path).map_err(|source| DirectoryError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_toml(&text, path.parent().unwrap_or(Path::new(".")))
    }

    /// Parses directory TOML; every problem found is reported with its line, not just the first.
    pub fn from_toml(text: &str, base: &Path) -> Result<Self, DirectoryError> {
        let raw: RawFile = toml::from_str(text).map_err(|e| {
            DirectoryError::Invalid(vec![Problem {
                line: e.span().map(|s| line_of(text, s.start)).unwrap_or(0),
                message: e.message().to_string(),
            }])
        })?;
        let mut problems = Vec::new();
        let mut dir = Directory::default();
        let at = |s: std::ops::Range<usize>| line_of(text, s.start);

        if let Some(our) = raw.our {
            for d in &our.domains {
                match Domain::new(d.get_ref()) {
                    Ok(d) => dir.our.domains.push(d),
                    Err(e) => problems.push(Problem {
                        line: at(d.span()),
                        message: e.to_string(),
                    }),
                }
            }
            for a in &our.trust_anchors {
                match material(a.get_ref(), base) {
                    Ok(m) => dir.our.trust_anchors.push(m),
                    Err(e) => problems.push(Problem {
                        line: at(a.span()),
                        message: e,
                    }),
                }
            }
            for k in &our.keys {
                let line = at(k.span());
                let k = k.get_ref();
                // Only domains of ours: configuration must not make our key sign for a
                // partner's (or anyone else's) domain.
                let mut signs_for = Vec::new();
                for d in &k.domains {
                    match Domain::new(d.get_ref()) {
                        Ok(dom) if dir.our.domains.contains(&dom) => {
                            signs_for.push(dom.as_str().to_ascii_lowercase())
                        }
                        Ok(dom) => problems.push(Problem {
                            line: at(d.span()),
                            message: format!("domains: {dom} is not one of [our] domains"),
                        }),
                        Err(e) => problems.push(Problem {
                            line: at(d.span()),
                            message: e.to_string(),
                        }),
                    }
                }
                match our_key(k, base) {
                    Ok(c) => dir.our.credentials.push(c.signing_for(signs_for)),
                    Err(message) => problems.push(Problem { line, message }),
                }
            }
            for d in &our.dkim {
                let line = at(d.span());
                match our_dkim(d.get_ref(), &dir.our.domains, base) {
                    Ok(s)
                        if dir
                            .our
                            .dkim
                            .iter()
                            .any(|o| o.domain() == s.domain() && o.selector() == s.selector()) =>
                    {
                        problems.push(Problem {
                            line,
                            message: format!(
                                "dkim: selector {} of {} is listed twice",
                                s.selector(),
                                s.domain()
                            ),
                        })
                    }
                    Ok(s) => dir.our.dkim.push(std::sync::Arc::new(s)),
                    Err(message) => problems.push(Problem { line, message }),
                }
            }
        }

        for entry in &raw.partner {
            let line = at(entry.span());
            let p = entry.get_ref();
            let pattern = match DomainPattern::parse(p.domain.get_ref()) {
                Ok(pat) => pat,
                Err(e) => {
                    problems.push(Problem {
                        line: at(p.domain.span()),
                        message: e,
                    });
                    continue;
                }
            };
            if dir.partners.iter().any(|q| q.pattern == pattern) {
                problems.push(Problem {
                    line,
                    message: format!("partner {pattern} is listed twice"),
                });
                continue;
            }
            let mut partner = Partner::new(pattern, p.policy, Vec::new());
            partner.line = line;
            partner.profile = p.profile;
            // Direct mail is signed, always: a HISP refuses an unsigned message.
            partner.sign = p.sign || p.profile == PartnerProfile::Direct;
            partner.header_protection = p.header_protection;
            partner.unsigned_cbc = p.unsigned_cbc;
            if let Some(d) = &p.portal_days {
                if (1..=3650).contains(d.get_ref()) {
                    partner.portal_days = Some(*d.get_ref());
                } else {
                    problems.push(Problem {
                        line: at(d.span()),
                        message: "portal_days must be between 1 and 3650".into(),
                    });
                }
            }
            if let Some(r) = &p.revocation {
                match RevocationPolicy::from_name(r.get_ref()) {
                    Some(policy) => partner.revocation = policy,
                    None => problems.push(Problem {
                        line: at(r.span()),
                        message: format!(
                            "revocation {:?}: use required, best-effort or off",
                            r.get_ref()
                        ),
                    }),
                }
            }
            partner.harvest = p.harvest;
            for a in &p.trust_anchors {
                match material(a.get_ref(), base) {
                    Ok(m) => partner.trust_anchors.push(m),
                    Err(e) => problems.push(Problem {
                        line: at(a.span()),
                        message: e,
                    }),
                }
            }
            for k in &p.key_sources {
                match k.get_ref().as_str() {
                    "wkd" => partner.key_sources.push(KeySource::Wkd),
                    "dns-cert" => partner.key_sources.push(KeySource::DnsCert),
                    "ldap" => partner.key_sources.push(KeySource::Ldap),
                    "dane" => partner.key_sources.push(KeySource::Dane),
                    // The certificates listed in the file are always used.
                    "directory" => {}
                    other => match custom_source(other) {
                        Some(s) => partner.key_sources.push(s),
                        None => problems.push(Problem {
                            line: at(k.span()),
                            message: format!(
                                "key_sources {other:?}: use \"directory\", \"wkd\", \"dane\", \
                                 \"dns-cert\", \"ldap\", or \"x-NAME\" for a source of your own"
                            ),
                        }),
                    },
                }
            }
            // Approved harvested certificates come after the sources the entry lists.
            if p.harvest != Harvest::Off {
                partner.key_sources.push(KeySource::Harvested);
            }
            for d in &p.certificate_domains {
                match Domain::new(d.get_ref()) {
                    Ok(d) => partner.certificate_domains.push(d),
                    Err(e) => problems.push(Problem {
                        line: at(d.span()),
                        message: format!("certificate_domains: {e}"),
                    }),
                }
            }
            for f in &p.gateway_keys {
                match normalise_fingerprint(f.get_ref()) {
                    Some(fpr) => partner.gateway_keys.push(fpr),
                    None => problems.push(Problem {
                        line: at(f.span()),
                        message: format!(
                            "gateway_keys: {:?} is not a fingerprint (hex digits, with or without colons or spaces)",
                            f.get_ref()
                        ),
                    }),
                }
            }
            for l in &p.accept_legacy {
                match l.get_ref().to_ascii_lowercase().as_str() {
                    "3des" | "3des-cbc" => partner.accept_legacy.push(Legacy::TripleDes),
                    "sha1" | "sha-1" => partner.accept_legacy.push(Legacy::Sha1),
                    other => problems.push(Problem {
                        line: at(l.span()),
                        message: format!(
                            "accept_legacy {other:?}: only \"3des\" and \"sha1\" can be accepted \
                             (DES, RC2 and MD5 never are)"
                        ),
                    }),
                }
            }
            for s in &p.standards {
                match standard(s.get_ref()) {
                    Some(std) if !partner.standards.contains(&std) => partner.standards.push(std),
                    Some(_) => {}
                    None => problems.push(Problem {
                        line: at(s.span()),
                        message: format!("unknown standard {:?} (smime or openpgp)", s.get_ref()),
                    }),
                }
            }
            if let Some(c) = &p.cipher {
                match ContentCipher::from_name(c.get_ref()) {
                    Some(
                        cipher @ (ContentCipher::Aes256Cbc
                        | ContentCipher::Aes128Cbc
                        | ContentCipher::Aes256Gcm
                        | ContentCipher::Aes128Gcm),
                    ) => partner.cipher = Some(cipher),
                    _ => problems.push(Problem {
                        line: at(c.span()),
                        message: format!(
                            "cipher {:?}: use aes256-cbc, aes128-cbc, aes256-gcm or aes128-gcm",
                            c.get_ref()
                        ),
                    }),
                }
            }
            for (std, list) in [
                (Standard::Smime, &p.smime_certificates),
                (Standard::OpenPgp, &p.openpgp_certificates),
            ] {
                for c in list {
                    match material(c, base) {
                        Ok(m) => partner.certificates.entry(std).or_default().push(m),
                        Err(e) => problems.push(Problem { line, message: e }),
                    }
                }
            }
            if matches!(p.policy, PartnerPolicy::Required | PartnerPolicy::Preferred)
                && partner.standards.is_empty()
            {
                problems.push(Problem {
                    line,
                    message: format!(
                        "partner {}: policy {:?} needs `standards`",
                        partner.pattern, p.policy
                    ),
                });
            }
            dir.partners.push(partner);
        }
        if problems.is_empty() {
            Ok(dir)
        } else {
            Err(DirectoryError::Invalid(problems))
        }
    }

    /// The partner entry for `domain`: an exact entry first, else the most specific wildcard.
    pub fn partner_for(&self, domain: &Domain) -> Option<&Partner> {
        self.partner_index_for(domain).map(|i| &self.partners[i])
    }

    /// Like [`Directory::partner_for`], as an index into `partners`.
    pub fn partner_index_for(&self, domain: &Domain) -> Option<usize> {
        self.partners
            .iter()
            .position(|p| matches!(&p.pattern, DomainPattern::Exact(d) if d == domain))
            .or_else(|| {
                self.partners
                    .iter()
                    .enumerate()
                    .filter(|(_, p)| p.pattern.matches(domain))
                    .max_by_key(|(_, p)| match &p.pattern {
                        DomainPattern::Subdomains(d) | DomainPattern::Exact(d) => d.as_str().len(),
                    })
                    .map(|(i, _)| i)
            })
    }

    /// Is `domain` one of ours?
    pub fn is_ours(&self, domain: &Domain) -> bool {
        self.our.domains.iter().any(|d| d == domain)
    }

    /// Our credentials for `standard`.
    pub fn our_credentials(&self, standard: Standard) -> Vec<Credential> {
        self.our
            .credentials
            .iter()
            .filter(|c| c.standard == standard)
            .cloned()
            .collect()
    }
}
