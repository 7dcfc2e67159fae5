//! `postern-relay`: the example relay binary — the SMTP gateway (`run`, the default), its queue
//! commands, and the envelope operations an administrator uses to check a partner's setup.
//!
//! ```text
//! postern-relay                 # run the gateway on embedded demo defaults (loopback only)
//! postern-relay run --config relay.toml
//! postern-relay queue list
//! postern-relay quarantine list
//! postern-relay portal list     # portal messages; `portal revoke ID` withdraws one
//! postern-relay audit verify    # check the audit log's hash chain
//! postern-relay dlp scan < in.eml
//! postern-relay demo            # seal and open a bundled sample with published test keys
//! postern-relay seal --standard smime --recipient-cert bob.pem < in.eml > out.eml
//! postern-relay open --key bob.key --cert bob.pem --trust-anchor ca.pem < out.eml
//! ```
#![forbid(unsafe_code)]

/// `println!` for lines that carry text from messages or peers (headers, addresses, reasons):
/// control characters are escaped, so a Subject with terminal escape sequences cannot drive the
/// administrator's terminal. Line breaks in the format string itself stay.
macro_rules! say {
    ($($t:tt)*) => {
        println!(
            "{}",
            format!($($t)*)
                .split('\n')
                .map(|l| postern_core::printable(l).into_owned())
                .collect::<Vec<_>>()
                .join("\n")
        )
    };
}

mod audit_cmd;
mod dlp;
mod keys_cmd;
mod place;
#[cfg(feature = "portal")]
mod portal_cmd;
mod quarantine_cmd;
mod queue;
mod serve;

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use postern_core::{
    ChainStatus, ContentCipher, Credential, MessageView, OpenRequest, Opened, Policy, Report,
    SealRequest, SecureEnvelope, SignRequest, SignatureStatus, SignatureVerdict, Standard,
};
use postern_openpgp::OpenPgpEnvelope;
use postern_smime::{KeyTransport, RsaSignatureScheme, SmimeEnvelope};

#[derive(Parser)]
#[command(
    name = "postern-relay",
    version,
    about = "Postern secure mail gateway (example relay binary)"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the SMTP gateway (without --config: embedded demo defaults, loopback only).
    Run(serve::RunArgs),
    /// Look at and act on the spool of a (running) relay.
    Queue(queue::QueueArgs),
    /// Review quarantined messages: list, show, release, reject, audit.
    Quarantine(quarantine_cmd::QuarantineArgs),
    /// Portal messages: list, revoke, audit trail.
    #[cfg(feature = "portal")]
    Portal(portal_cmd::PortalArgs),
    /// The hash-chained audit log: `audit verify` checks that no row was removed or edited.
    Audit(audit_cmd::AuditArgs),
    /// Partner certificates harvested from valid signatures: pending, list, approve, reject.
    Keys(keys_cmd::KeysArgs),
    /// Content inspection: `dlp scan` prints the verdict for a message (exit 0 allow, 1 else).
    Dlp(dlp::DlpArgs),
    /// Read a password from standard input and print its Argon2id hash for the `auth.users`
    /// file (`name:HASH`).
    HashPassword,
    /// Print the DNS TXT record that publishes a DKIM key (`[[our.dkim]]`): the name and the
    /// record, as a zone file line.
    DkimRecord {
        /// The private key (PEM: RSA of 2048 bits or more, or Ed25519).
        #[arg(long)]
        key: PathBuf,
        /// The signing domain.
        #[arg(long)]
        domain: String,
        /// The selector.
        #[arg(long)]
        selector: String,
    },
    /// Seal a message from standard input: encrypt (and optionally sign), or sign only.
    Seal(SealArgs),
    /// Open a message from standard input: decrypt and/or verify, print the inner message.
    Open(OpenArgs),
    /// Seal and open a bundled sample with published test keys, and show the report.
    Demo,
    /// Show what the gateway would do with a message from standard input (nothing is sent).
    Route(RouteArgs),
    /// Check a partner directory or a relay configuration (with the directory, TLS material,
    /// DLP policy and users file it names) and report what would stop mail (exit 1 on errors,
    /// 2 if the file cannot be loaded).
    CheckConfig {
        /// The directory or relay configuration file (TOML).
        file: PathBuf,
        /// Check a partner directory's certificates at this time instead of now (RFC 3339).
        #[arg(long, value_parser = at_time)]
        at: Option<std::time::SystemTime>,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum StandardArg {
    /// S/MIME 4.0 (X.509 certificates, PEM or DER).
    Smime,
    /// OpenPGP as PGP/MIME (armored or binary certificates and secret keys).
    Openpgp,
}

#[derive(Clone, Copy, ValueEnum)]
enum CipherArg {
    #[value(name = "aes256-cbc")]
    Aes256Cbc,
    #[value(name = "aes128-cbc")]
    Aes128Cbc,
    #[value(name = "aes256-gcm")]
    Aes256Gcm,
    #[value(name = "aes128-gcm")]
    Aes128Gcm,
}

impl From<CipherArg> for ContentCipher {
    fn from(c: CipherArg) -> Self {
        match c {
            CipherArg::Aes256Cbc => ContentCipher::Aes256Cbc,
            CipherArg::Aes128Cbc => ContentCipher::Aes128Cbc,
            CipherArg::Aes256Gcm => ContentCipher::Aes256Gcm,
            CipherArg::Aes128Gcm => ContentCipher::Aes128Gcm,
        }
    }
}

#[derive(Clone, Copy, ValueEnum)]
enum KeyTransportArg {
    /// RSAES-PKCS1-v1_5 (every client reads it).
    Pkcs1,
    /// RSAES-OAEP with SHA-256.
    Oaep,
}

#[derive(Clone, Copy, ValueEnum)]
enum SignatureArg {
    /// RSASSA-PKCS1-v1_5 with SHA-256.
    Pkcs1,
    /// RSASSA-PSS with SHA-256.
    Pss,
}

#[derive(clap::Args)]
struct SealArgs {
    /// Check certificates at this time instead of now (RFC 3339, e.g. 2019-06-01T12:00:00Z,
    /// or a date): to reproduce a result with test material whose certificates have expired.
    #[arg(long, value_parser = at_time)]
    at: Option<std::time::SystemTime>,
    /// The message standard.
    #[arg(long, value_enum, default_value = "smime")]
    standard: StandardArg,
    /// A recipient certificate (S/MIME: PEM or DER X.509; OpenPGP: armored or binary); repeat
    /// for several. None: sign only.
    #[arg(long = "recipient-cert")]
    recipient_certs: Vec<PathBuf>,
    /// Our signing key (S/MIME: PEM PKCS#8, PKCS#1 or SEC1; OpenPGP: an unlocked secret key).
    #[arg(long)]
    sign_key: Option<PathBuf>,
    /// Our signing certificate (S/MIME only; further certificates in the file are sent as the
    /// chain).
    #[arg(long, requires = "sign_key")]
    sign_cert: Option<PathBuf>,
    /// Content cipher.
    #[arg(long, value_enum, default_value = "aes256-cbc")]
    cipher: CipherArg,
    /// Key transport for RSA recipients.
    #[arg(long, value_enum, default_value = "pkcs1")]
    key_transport: KeyTransportArg,
    /// Signature scheme for RSA signing keys.
    #[arg(long, value_enum, default_value = "pkcs1")]
    signature: SignatureArg,
    /// Sign only, as an opaque signed-data object instead of multipart/signed.
    #[arg(long)]
    opaque: bool,
    /// Protect the headers (RFC 9788): outer Subject becomes "[...]".
    #[arg(long)]
    header_protection: bool,
}

#[derive(clap::Args)]
struct RouteArgs {
    /// The partner directory (TOML).
    #[arg(long)]
    directory: PathBuf,
    /// The envelope sender.
    #[arg(long)]
    from: String,
    /// An envelope recipient; repeat for several.
    #[arg(long = "to", required = true)]
    to: Vec<String>,
    /// Write each copy that would be delivered into this folder.
    #[arg(long)]
    out_dir: Option<PathBuf>,
    /// Check certificates at this time instead of now (RFC 3339 or a date), as `seal --at`.
    #[arg(long, value_parser = at_time)]
    at: Option<std::time::SystemTime>,
}

#[derive(clap::Args)]
struct OpenArgs {
    /// Accept SHA-1 signatures (marked weak), as a partner entry's `accept_legacy = ["sha1"]`
    /// does: for older Direct and S/MIME peers.
    #[arg(long)]
    accept_sha1: bool,
    /// Check certificates at this time instead of now (RFC 3339, e.g. 2019-06-01T12:00:00Z,
    /// or a date): to reproduce a result with test material whose certificates have expired.
    #[arg(long, value_parser = at_time)]
    at: Option<std::time::SystemTime>,
    /// Our decryption key: S/MIME PEM (with --cert) or an OpenPGP secret key. Repeat for
    /// several; optional for signed-only messages. The standard is taken from the message.
    #[arg(long = "key")]
    keys: Vec<PathBuf>,
    /// Our S/MIME certificate for the S/MIME key (PEM or DER).
    #[arg(long, requires = "keys")]
    cert: Option<PathBuf>,
    /// A trust anchor (CA certificate) for signer chains; repeat for several.
    #[arg(long = "trust-anchor")]
    trust_anchors: Vec<PathBuf>,
    /// A partner certificate the signature is expected from (pinned); repeat for several.
    #[arg(long = "expect-signer")]
    expected_signers: Vec<PathBuf>,
    /// Write the verification report as JSON to this file.
    #[arg(long)]
    report_json: Option<PathBuf>,
    /// Fail (exit 1) unless every signature is valid and trusted.
    #[arg(long)]
    require_valid_signature: bool,
    /// The standard to open with; without it, it is detected from the message.
    #[arg(long, value_enum)]
    standard: Option<StandardArg>,
}

fn read(path: &Path) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))
}

fn read_stdin() -> Result<Vec<u8>, String> {
    let mut buf = Vec::new();
    std::io::stdin()
        .read_to_end(&mut buf)
        .map_err(|e| format!("cannot read standard input: {e}"))?;
    Ok(buf)
}

fn smime_backend(args: &SealArgs) -> SmimeEnvelope {
    SmimeEnvelope::new()
        .with_key_transport(match args.key_transport {
            KeyTransportArg::Pkcs1 => KeyTransport::RsaPkcs1v15,
            KeyTransportArg::Oaep => KeyTransport::RsaOaepSha256,
        })
        .with_rsa_signature(match args.signature {
            SignatureArg::Pkcs1 => RsaSignatureScheme::Pkcs1Sha256,
            SignatureArg::Pss => RsaSignatureScheme::PssSha256,
        })
}

async fn seal(args: SealArgs) -> Result<Vec<u8>, String> {
    let input = read_stdin()?;
    let view = MessageView::parse(&input).map_err(|e| e.to_string())?;
    let recipients = args
        .recipient_certs
        .iter()
        .map(|p| read(p))
        .collect::<Result<Vec<_>, _>>()?;
    let signer = match (args.standard, &args.sign_key, &args.sign_cert) {
        (StandardArg::Smime, Some(k), Some(c)) => {
            Some(Credential::with_secret(Standard::Smime, read(c)?, read(k)?))
        }
        (StandardArg::Smime, Some(_), None) => {
            return Err("S/MIME signing needs --sign-cert as well as --sign-key".into())
        }
        (StandardArg::Openpgp, Some(k), _) => {
            let tsk = read(k)?;
            Some(Credential::with_secret(Standard::OpenPgp, tsk.clone(), tsk))
        }
        (_, None, _) => None,
    };
    let policy = Policy::default();
    let mut req = SealRequest::encrypt(&recipients, &policy)
        .with_cipher(args.cipher.into())
        .with_header_protection(args.header_protection);
    if let Some(at) = args.at {
        req.now = at;
    }
    if let Some(cred) = &signer {
        req.sign = Some(SignRequest {
            credential: cred,
            detached: !args.opaque,
        });
    }
    // Straight to standard output: an encrypted message is then never held whole.
    let mut out = std::io::BufWriter::new(std::io::stdout());
    match args.standard {
        StandardArg::Smime => smime_backend(&args).seal_to(&view, &req, &mut out),
        StandardArg::Openpgp => {
            // OpenPGP chooses its own cipher from the recipients' preferences.
            req.cipher = None;
            OpenPgpEnvelope::new().seal_to(&view, &req, &mut out)
        }
    }
    .map_err(|e| e.to_string())?;
    out.flush().map_err(|e| e.to_string())?;
    Ok(Vec::new())
}

async fn open(args: OpenArgs) -> Result<(Opened, bool), String> {
    let input = read_stdin()?;
    let mut keys = Vec::new();
    for k in &args.keys {
        let bytes = read(k)?;
        if is_openpgp(&bytes) {
            keys.push(Credential::with_secret(
                Standard::OpenPgp,
                bytes.clone(),
                bytes,
            ));
        } else {
            let cert = args
                .cert
                .as_ref()
                .ok_or("an S/MIME --key needs its --cert")?;
            keys.push(Credential::with_secret(Standard::Smime, read(cert)?, bytes));
        }
    }
    let anchors = args
        .trust_anchors
        .iter()
        .map(|p| read(p))
        .collect::<Result<Vec<_>, _>>()?;
    let pinned = args
        .expected_signers
        .iter()
        .map(|p| read(p))
        .collect::<Result<Vec<_>, _>>()?;
    let policy = Policy {
        allow_sha1_signatures: args.accept_sha1,
        ..Policy::default()
    };
    let mut req = OpenRequest::new(&keys, &policy)
        .with_trust_anchors(&anchors)
        .with_expected_signers(&pinned);
    if let Some(at) = args.at {
        req.now = at;
    }
    let backends: [Box<dyn SecureEnvelope>; 2] = [
        Box::new(SmimeEnvelope::new()),
        Box::new(OpenPgpEnvelope::new()),
    ];
    let wanted = args.standard.map(|s| match s {
        StandardArg::Smime => Standard::Smime,
        StandardArg::Openpgp => Standard::OpenPgp,
    });
    let backend = {
        let view = MessageView::parse(&input).map_err(|e| e.to_string())?;
        backends
            .iter()
            .filter(|b| wanted.is_none_or(|w| b.standard() == w))
            .find(|b| b.recognises(&view))
            .ok_or(match wanted {
                Some(w) => format!("not an {w} message"),
                None => "not an S/MIME or OpenPGP message".to_string(),
            })?
    };
    // Handed over: the backend may decode and decrypt inside the input's buffer.
    let mut opened = backend
        .open_owned(input, &req)
        .await
        .map_err(|e| e.to_string())?;
    // A wrapped message comes out as the message inside, as the relay delivers it.
    postern_router::unwrap_opened(&mut opened).map_err(|e| e.to_string())?;
    if let Some(path) = &args.report_json {
        let json = serde_json::to_vec_pretty(&report_json(&opened.report, &opened.message))
            .map_err(|e| e.to_string())?;
        std::fs::write(path, json).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    }
    let ok = !args.require_valid_signature
        || verdict(&opened.report, &opened.message).0 == SignatureVerdict::Valid;
    Ok((opened, ok))
}

/// OpenPGP key material is armored (or binary packets, which never start like PEM).
fn is_openpgp(bytes: &[u8]) -> bool {
    let text = String::from_utf8_lossy(&bytes[..bytes.len().min(4096)]);
    text.contains("-----BEGIN PGP")
        || (!text.contains("-----BEGIN")
            && bytes.first().is_some_and(|b| b & 0x80 != 0)
            && bytes.first() != Some(&0x30))
}

/// `route`: one line per disposition; sealed copies written to `--out-dir`.
async fn route(args: RouteArgs) -> Result<bool, String> {
    use postern_router::{Disposition, Envelope, Router};
    let dir = postern_router::Directory::load(&args.directory).map_err(|e| e.to_string())?;
    let input = read_stdin()?;
    let parse = |a: &str| postern_core::Address::new(a).map_err(|e| e.to_string());
    let envelope = Envelope {
        mail_from: Some(parse(&args.from)?),
        rcpt_to: args.to.iter().map(|a| parse(a)).collect::<Result<_, _>>()?,
    };
    let backends: Vec<std::sync::Arc<dyn SecureEnvelope>> = vec![
        std::sync::Arc::new(SmimeEnvelope::new()),
        std::sync::Arc::new(OpenPgpEnvelope::new()),
    ];
    // Routed only with a directory checked by the backends that seal: a partner entry with
    // another domain's certificate is refused here as the relay refuses it.
    let now = args.at.unwrap_or_else(std::time::SystemTime::now);
    let dir =
        postern_router::CheckedDirectory::check(dir, &backends, now).map_err(|e| e.to_string())?;
    let mut router = Router::new(backends).with_revocation(std::sync::Arc::new(
        postern_relay::revocation::CrlChecker::new(),
    ));
    if let Some(at) = args.at {
        router.clock = std::sync::Arc::new(postern_core::FixedClock(at));
    }
    let out = router.outbound(&dir, &envelope, &input, None).await;
    let names = |rs: &[postern_core::Address]| {
        rs.iter()
            .map(|r| r.to_string())
            .collect::<Vec<_>>()
            .join(",")
    };
    for (n, d) in out.iter().enumerate() {
        match d {
            Disposition::Deliver {
                recipients,
                message,
                sealed,
                tls_required,
            } => {
                let how = match sealed {
                    Some(s) => format!("sealed with {s}"),
                    None => "plain".to_string(),
                };
                let tls = if *tls_required { ", TLS required" } else { "" };
                let mut line = format!(
                    "deliver {} ({how}{tls}, {} bytes)",
                    names(recipients),
                    message.len()
                );
                if let Some(dir) = &args.out_dir {
                    let path = dir.join(format!("copy-{}.eml", n + 1));
                    std::fs::write(&path, message)
                        .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
                    line.push_str(&format!(" -> {}", path.display()));
                }
                println!("{line}");
            }
            Disposition::Hold { recipients, reason } => {
                let status = reason.smtp_reply().enhanced;
                println!("hold {} ({status}): {reason}", names(recipients))
            }
            Disposition::Bounce { recipients, reason } => {
                let status = reason.smtp_reply().enhanced;
                println!("bounce {} ({status}): {reason}", names(recipients))
            }
            Disposition::Quarantine { recipients, reason } => {
                println!("quarantine {}: {reason}", names(recipients))
            }
            Disposition::Portal { recipients, .. } => println!("portal {}", names(recipients)),
            other => println!("{other:?}"),
        }
    }
    Ok(true)
}

/// `hash-password`: one line from standard input (without its line end) → a PHC string.
fn hash_password() -> Result<bool, String> {
    let mut line = String::new();
    std::io::stdin()
        .read_line(&mut line)
        .map_err(|e| format!("reading standard input: {e}"))?;
    let password = line.trim_end_matches(['\r', '\n']);
    if password.is_empty() {
        return Err("empty password".into());
    }
    let hash =
        postern_relay::auth::hash_password(password.as_bytes()).map_err(|e| e.to_string())?;
    println!("{hash}");
    Ok(true)
}

/// `dkim-record`: what to publish for a DKIM key.
fn dkim_record(key: &Path, domain: &str, selector: &str) -> Result<bool, String> {
    use postern_router::dkim_keys::{DkimKey, DkimSigner};
    let pem = std::fs::read(key).map_err(|e| format!("cannot read {}: {e}", key.display()))?;
    let key = DkimKey::from_pem(&pem).map_err(|e| format!("{}: {e}", key.display()))?;
    let signer = DkimSigner::new(domain, selector, key).map_err(|e| e.to_string())?;
    // A TXT string holds 255 bytes at most: longer records (RSA) are split into several.
    let record = signer.dns_record();
    let strings: Vec<String> = record
        .as_bytes()
        .chunks(255)
        .map(|c| format!("\"{}\"", String::from_utf8_lossy(c)))
        .collect();
    println!("{}. IN TXT ( {} )", signer.dns_name(), strings.join(" "));
    Ok(true)
}

/// `check-config` for a relay configuration: everything `run` would load, without starting.
fn check_relay_config(file: &Path) -> ExitCode {
    let cfg = match postern_relay::RelayConfig::load(file) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("postern-relay: {e}");
            return ExitCode::from(2);
        }
    };
    match postern_relay::check(&cfg) {
        Ok(findings) => {
            for f in &findings {
                println!("{f}");
            }
            println!(
                "{}: relay configuration usable; directory {} with {} warnings",
                file.display(),
                cfg.directory.display(),
                findings.len()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            println!("error {}: {e}", file.display());
            ExitCode::from(1)
        }
    }
}

/// Each of our identities: its standard, whom its certificate names, its role at `now` (from
/// key usage and validity: signs, decrypts, or both) and the domains it signs for.
fn print_identities(
    dir: &postern_router::Directory,
    backends: &[std::sync::Arc<dyn SecureEnvelope>],
    now: std::time::SystemTime,
) {
    for c in &dir.our.credentials {
        let Some(b) = backends.iter().find(|b| b.standard() == c.standard) else {
            continue;
        };
        let summary = b
            .describe_certificates(&c.certificate)
            .ok()
            .and_then(|s| s.into_iter().next());
        let signs = c.secret.is_some() && b.may_sign_with(&c.certificate, now);
        let decrypts = c.secret.is_some() && b.may_encrypt_to(&c.certificate);
        let role = match (signs, decrypts) {
            (true, true) => "signs and decrypts",
            (true, false) => "signs",
            (false, true) => "decrypts",
            (false, false) => "neither signs nor decrypts now",
        };
        let mut domains: Vec<String> = summary
            .as_ref()
            .map(|s| {
                s.domains
                    .iter()
                    .cloned()
                    .chain(
                        s.addresses
                            .iter()
                            .filter_map(|a| a.split('@').nth(1).map(str::to_string)),
                    )
                    .collect()
            })
            .unwrap_or_default();
        domains.extend(c.domains.iter().cloned());
        domains.sort();
        domains.dedup();
        // Only our domains are signed for (the certificate may name others: a test key's).
        let ours: Vec<&String> = domains
            .iter()
            .filter(|d| {
                dir.our
                    .domains
                    .iter()
                    .any(|o| o.as_str().eq_ignore_ascii_case(d))
            })
            .collect();
        let others: Vec<&String> = domains.iter().filter(|d| !ours.contains(d)).collect();
        let list = |v: &[&String]| v.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ");
        println!(
            "our {} identity {}: {role}; for {}{}",
            c.standard,
            summary
                .map(|s| s.description)
                .unwrap_or_else(|| "(undescribed)".into()),
            if ours.is_empty() {
                "none of our domains".to_string()
            } else {
                list(&ours)
            },
            if others.is_empty() {
                String::new()
            } else {
                format!(" (its certificate also names {}, not ours)", list(&others))
            }
        );
    }
}

/// `check-config`: every problem on its own line, errors first; exit code says the worst.
fn check_config(file: &Path, at: Option<std::time::SystemTime>) -> ExitCode {
    // A partner directory has [our] or [[partner]] tables; anything else is a relay config.
    let is_directory = std::fs::read_to_string(file).is_ok_and(|t| {
        t.lines()
            .map(str::trim)
            .any(|l| l == "[our]" || l == "[[partner]]" || l.starts_with("[our."))
    });
    if !is_directory {
        return check_relay_config(file);
    }
    let dir = match postern_router::Directory::load(file) {
        Ok(d) => d,
        Err(postern_router::DirectoryError::Invalid(problems)) => {
            for p in problems {
                println!("invalid {}: {p}", file.display());
            }
            return ExitCode::from(2);
        }
        Err(e) => {
            eprintln!("postern-relay: {e}");
            return ExitCode::from(2);
        }
    };
    let backends: Vec<std::sync::Arc<dyn SecureEnvelope>> = vec![
        std::sync::Arc::new(SmimeEnvelope::new()),
        std::sync::Arc::new(OpenPgpEnvelope::new()),
    ];
    let now = at.unwrap_or_else(std::time::SystemTime::now);
    print_identities(&dir, &backends, now);
    let findings = postern_router::validate(&dir, &backends, now);
    let errors = findings
        .iter()
        .filter(|f| f.severity == postern_router::Severity::Error)
        .count();
    for f in &findings {
        println!("{f}");
    }
    println!(
        "{}: {} partners, {} errors, {} warnings",
        file.display(),
        dir.partners.len(),
        errors,
        findings.len() - errors
    );
    if errors > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

fn unix(t: std::time::SystemTime) -> Option<u64> {
    t.duration_since(std::time::UNIX_EPOCH)
        .ok()
        .map(|d| d.as_secs())
}

/// The signature verdict the relay would state, from the same code
/// (`postern_router::signature_verdict`): without a partner directory, the signer must speak for
/// the message's From itself, and a message signed only in part is `partial`.
fn verdict(r: &Report, message: &[u8]) -> (SignatureVerdict, Vec<String>) {
    postern_router::signature_verdict(
        r,
        &postern_router::Directory::default(),
        None,
        None,
        message,
    )
}

fn report_json(r: &Report, message: &[u8]) -> serde_json::Value {
    use serde_json::json;
    let sigs: Vec<_> = r
        .signatures
        .iter()
        .map(|s| {
            let (status, detail) = match &s.status {
                SignatureStatus::Valid => ("valid", String::new()),
                SignatureStatus::Invalid(d) => ("invalid", d.clone()),
                SignatureStatus::Refused(d) => ("refused", d.clone()),
                SignatureStatus::SignerUnknown(d) => ("signer-unknown", d.clone()),
                other => ("other", format!("{other:?}")),
            };
            let (chain, chain_detail) = match &s.chain {
                ChainStatus::Trusted { anchor } => ("trusted", anchor.clone()),
                ChainStatus::Untrusted(d) => ("untrusted", d.clone()),
                ChainStatus::NotChecked => ("not-checked", String::new()),
                other => ("other", format!("{other:?}")),
            };
            json!({
                "signer": s.signer,
                "subject": s.signer_subject,
                "fingerprint": s.fingerprint,
                "algorithm": s.algorithm.map(|a| a.to_string()),
                "status": status,
                "status_detail": detail,
                "chain": chain,
                "chain_detail": chain_detail,
                "signing_time": s.signing_time.and_then(unix),
            })
        })
        .collect();
    json!({
        "standard": r.standard.to_string(),
        "encryption": r.encryption.as_ref().map(|e| json!({
            "cipher": e.cipher.name(),
            "key_management": e.key_management,
            "recipients": e.recipients,
            "decrypted_with": e.decrypted_with,
        })),
        "signature": verdict(r, message).0.as_str(),
        "signature_problems": verdict(r, message).1,
        "signatures": sigs,
    })
}

fn summary(r: &Report, message: &[u8]) -> String {
    let enc = match &r.encryption {
        Some(e) => format!(
            "decrypted {} ({}) with {}",
            e.cipher, e.key_management, e.decrypted_with
        ),
        None => "not encrypted".into(),
    };
    let signer = r
        .signatures
        .iter()
        .filter_map(|s| s.signer.clone())
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "{}: {enc}; signature {} {signer}",
        r.standard,
        verdict(r, message).0
    )
}

/// The demo: Alice's gateway signs and encrypts to Bob; Bob's gateway opens and verifies.
async fn demo() -> Result<(), String> {
    const MSG: &[u8] = include_bytes!("../../../data/demo.eml");
    const ALICE_KEY: &[u8] = include_bytes!("../../../data/lamps-alice.p8.pem");
    const ALICE_CERT: &[u8] = include_bytes!("../../../data/lamps-alice.crt");
    const BOB_KEY: &[u8] = include_bytes!("../../../data/lamps-bob.decrypt.p8.pem");
    const BOB_CERT: &[u8] = include_bytes!("../../../data/lamps-bob.encrypt.crt");
    const CA: &[u8] = include_bytes!("../../../data/lamps-rsa-ca.pem");
    let smime = SmimeEnvelope::new();
    let policy = Policy::default();
    let alice = Credential::with_secret(Standard::Smime, ALICE_CERT.to_vec(), ALICE_KEY.to_vec());
    let recipients = vec![BOB_CERT.to_vec()];
    let view = MessageView::parse(MSG).map_err(|e| e.to_string())?;
    let req = SealRequest::encrypt(&recipients, &policy)
        .signed_by(&alice)
        .with_header_protection(true);
    let sealed = smime.seal(&view, &req).await.map_err(|e| e.to_string())?;
    let mut out = std::io::stdout().lock();
    let _ = writeln!(
        out,
        "== Sealed by alice's gateway (S/MIME, signed then AES-256-CBC to bob, headers protected):"
    );
    let head_end = sealed
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or(sealed.len());
    let _ = out.write_all(&sealed[..head_end]);
    let _ = writeln!(
        out,
        "\n   [{} bytes of base64 CMS]\n",
        sealed.len() - head_end
    );
    let bob = vec![Credential::with_secret(
        Standard::Smime,
        BOB_CERT.to_vec(),
        BOB_KEY.to_vec(),
    )];
    let anchors = vec![CA.to_vec()];
    let sealed_view = MessageView::parse(&sealed).map_err(|e| e.to_string())?;
    let opened = smime
        .open(
            &sealed_view,
            &OpenRequest::new(&bob, &policy).with_trust_anchors(&anchors),
        )
        .await
        .map_err(|e| e.to_string())?;
    let _ = writeln!(
        out,
        "== Opened by bob's gateway: {}\n",
        summary(&opened.report, &opened.message)
    );
    let _ = out.write_all(&opened.message);

    // The same message to an OpenPGP partner: PGP/MIME, through the same trait.
    const ALICE_PGP: &[u8] = include_bytes!("../../../data/alice.sec.asc");
    const ALICE_PGP_PUB: &[u8] = include_bytes!("../../../data/alice.pub.asc");
    const BOB_PGP: &[u8] = include_bytes!("../../../data/bob.sec.asc");
    const BOB_PGP_PUB: &[u8] = include_bytes!("../../../data/bob.pub.asc");
    let pgp = OpenPgpEnvelope::new();
    let alice_pgp =
        Credential::with_secret(Standard::OpenPgp, ALICE_PGP.to_vec(), ALICE_PGP.to_vec());
    let recipients = vec![BOB_PGP_PUB.to_vec()];
    // From and To as the OpenPGP keys name them: a signature is valid only for a From that is
    // the signer's own address.
    let pgp_msg = String::from_utf8_lossy(MSG).replace("@smime.example", "@openpgp.example");
    let pgp_view = MessageView::parse(pgp_msg.as_bytes()).map_err(|e| e.to_string())?;
    let sealed = pgp
        .seal(
            &pgp_view,
            &SealRequest::encrypt(&recipients, &policy).signed_by(&alice_pgp),
        )
        .await
        .map_err(|e| e.to_string())?;
    let sealed_view = MessageView::parse(&sealed).map_err(|e| e.to_string())?;
    let bob_pgp = vec![Credential::with_secret(
        Standard::OpenPgp,
        BOB_PGP.to_vec(),
        BOB_PGP.to_vec(),
    )];
    let alice_cert = vec![ALICE_PGP_PUB.to_vec()];
    let opened = pgp
        .open(
            &sealed_view,
            &OpenRequest::new(&bob_pgp, &policy).with_expected_signers(&alice_cert),
        )
        .await
        .map_err(|e| e.to_string())?;
    let _ = writeln!(
        out,
        "\n== The same message as PGP/MIME ({} bytes) to bob's OpenPGP key, opened: {}",
        sealed.len(),
        summary(&opened.report, &opened.message)
    );
    let _ = writeln!(
        out,
        "\nNext: `postern-relay seal --help` and `postern-relay open --help`."
    );
    Ok(())
}

#[tokio::main]
async fn main() -> ExitCode {
    // A panic message can quote what was being parsed (a header, part of a body): log where
    // it happened, never what it said. The relay contains the panic and holds the message.
    std::panic::set_hook(Box::new(|info| {
        let at = info
            .location()
            .map(|l| format!("{}:{}", l.file(), l.line()))
            .unwrap_or_default();
        eprintln!("postern-relay: internal error at {at} (details withheld: they may quote mail)");
    }));
    let cli = Cli::parse();
    let result = match cli
        .command
        .unwrap_or(Command::Run(serve::RunArgs::default()))
    {
        Command::Run(a) => serve::run(a).await.map(|_| true),
        Command::Queue(a) => queue::run(a),
        Command::Quarantine(a) => quarantine_cmd::run(a).await,
        #[cfg(feature = "portal")]
        Command::Portal(a) => match portal_cmd::portal(a).await {
            Ok(false) => return ExitCode::from(1),
            other => other,
        },
        Command::Audit(a) => match audit_cmd::audit(a).await {
            Ok(false) => return ExitCode::from(1),
            other => other,
        },
        Command::Keys(a) => keys_cmd::run(a).await,
        Command::HashPassword => hash_password(),
        Command::DkimRecord {
            key,
            domain,
            selector,
        } => dkim_record(&key, &domain, &selector),
        Command::Dlp(a) => match dlp::run(a) {
            Ok(true) => return ExitCode::SUCCESS,
            Ok(false) => return ExitCode::from(1),
            Err(e) => Err(e),
        },
        Command::CheckConfig { file, at } => return check_config(&file, at),
        Command::Route(a) => route(a).await,
        Command::Demo => demo().await.map(|_| true),
        Command::Seal(a) => seal(a).await.and_then(|bytes| {
            std::io::stdout()
                .write_all(&bytes)
                .map_err(|e| e.to_string())
                .map(|_| true)
        }),
        Command::Open(a) => open(a).await.and_then(|(opened, ok)| {
            eprintln!(
                "postern-relay: {}",
                summary(&opened.report, &opened.message)
            );
            std::io::stdout()
                .write_all(&opened.message)
                .map_err(|e| e.to_string())
                .map(|_| ok)
        }),
    };
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => {
            eprintln!("postern-relay: signature not valid and trusted");
            ExitCode::from(1)
        }
        Err(e) => {
            eprintln!("postern-relay: {e}");
            ExitCode::from(2)
        }
    }
}

/// `--at`: an RFC 3339 time or a date.
fn at_time(s: &str) -> Result<std::time::SystemTime, String> {
    postern_core::civil::parse_rfc3339(s).ok_or_else(|| {
        format!("{s:?} is not an RFC 3339 time (e.g. 2019-06-01T12:00:00Z) or a date")
    })
}
