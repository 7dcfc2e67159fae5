//! Checks at load time: will every partner's mail actually go out the way its policy says?
//!
//! Certificates are checked by sealing a small probe message through the real backend, now and
//! thirty days from now, so "usable" means exactly what sealing will accept: validity period,
//! key usage, algorithm policy, revocation (OpenPGP), encryption capability.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use postern_core::{Credential, MessageView, Policy, SealRequest, SecureEnvelope, Standard};

use crate::{Directory, Partner, PartnerPolicy};

/// How serious a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    /// Works now, needs attention soon (e.g. a certificate expiring within 30 days).
    Warning,
    /// Mail will not flow as configured (e.g. a `required` partner without a usable key).
    Error,
}

/// One result of [`validate`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// Warning or error.
    pub severity: Severity,
    /// The partner pattern or `our` it is about.
    pub subject: String,
    /// Line in the directory file (0 when unknown).
    pub line: usize,
    /// What is wrong and what it means for mail.
    pub message: String,
}

impl std::fmt::Display for Finding {
    /// `error smime.example (line 12): no usable certificate ...`
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let sev = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        write!(
            f,
            "{sev} {} (line {}): {}",
            self.subject, self.line, self.message
        )
    }
}

const SOON: Duration = Duration::from_secs(30 * 86400);

const PROBE: &[u8] =
    b"From: postern@probe.invalid\r\nTo: postern@probe.invalid\r\nSubject: probe\r\n\r\nprobe\r\n";

/// The backends a directory is checked with: the ones that will seal and open its mail, and
/// those that have already let a probe wait out [`PROBE_WAIT`] in this check (they are not
/// probed again: a hanging HSM would otherwise cost ten seconds and a stuck thread per entry).
struct Backends<'a> {
    all: &'a [Arc<dyn SecureEnvelope>],
    stalled: std::cell::RefCell<Vec<Standard>>,
}

impl Backends<'_> {
    fn get(&self, standard: Standard) -> Option<&Arc<dyn SecureEnvelope>> {
        self.all.iter().find(|b| b.standard() == standard)
    }
}

/// How long one probe may take. A backend that has not answered by then (an HSM that hangs,
/// an external program that waits) is reported, and the check goes on: loading a directory
/// must not hang on it.
#[cfg(not(test))]
const PROBE_WAIT: Duration = Duration::from_secs(10);
#[cfg(test)]
const PROBE_WAIT: Duration = Duration::from_millis(300);

/// Why a probe could not be sealed.
enum ProbeError {
    /// The key, certificate or configuration cannot work: an error in the directory.
    Unusable(String),
    /// The backend could not answer now (an HSM or an external program is down or hangs): mail
    /// would wait and be retried, so the directory is not refused for it; the administrator is
    /// told.
    NotNow(String),
}

impl std::fmt::Display for ProbeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ProbeError::Unusable(e) | ProbeError::NotNow(e) => f.write_str(e),
        }
    }
}

/// Seals the probe for `certs` (and signed by `signer`) at `now`, through the real backend,
/// on a thread of its own so that a backend that never answers costs [`PROBE_WAIT`] and that
/// thread, not the caller.
fn probe(
    backends: &Backends<'_>,
    standard: Standard,
    certs: &[Vec<u8>],
    signer: Option<&Credential>,
    now: SystemTime,
) -> Result<(), ProbeError> {
    let backend = backends.get(standard).cloned().ok_or_else(|| {
        ProbeError::Unusable("no backend for this standard is built into this gateway".into())
    })?;
    let not_answering = || {
        ProbeError::NotNow(format!(
            "the {standard} backend did not answer within {} s",
            PROBE_WAIT.as_secs()
        ))
    };
    if backends.stalled.borrow().contains(&standard) {
        return Err(not_answering());
    }
    let certs = certs.to_vec();
    let signer = signer.cloned();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .name("postern-probe".into())
        .spawn(move || {
            let _ = tx.send(seal_probe(backend.as_ref(), &certs, signer.as_ref(), now));
        })
        .map_err(|e| ProbeError::NotNow(format!("cannot start the probe: {e}")))?;
    match rx.recv_timeout(PROBE_WAIT) {
        Ok(r) => r,
        Err(_) => {
            backends.stalled.borrow_mut().push(standard);
            Err(not_answering())
        }
    }
}

fn seal_probe(
    backend: &dyn SecureEnvelope,
    certs: &[Vec<u8>],
    signer: Option<&Credential>,
    now: SystemTime,
) -> Result<(), ProbeError> {
    let policy = Policy::default();
    let view = MessageView::parse(PROBE).map_err(|e| ProbeError::Unusable(e.to_string()))?;
    let mut req = match (certs.is_empty(), signer) {
        (true, Some(s)) => SealRequest::sign_only(s, true, &policy),
        (_, Some(s)) => SealRequest::encrypt(certs, &policy).signed_by(s),
        (_, None) => SealRequest::encrypt(certs, &policy),
    };
    req.now = now;
    postern_core::block_on(backend.seal(&view, &req))
        .map(|_| ())
        .map_err(|e| {
            if e.is_temporary() {
                ProbeError::NotNow(e.to_string())
            } else {
                ProbeError::Unusable(e.to_string())
            }
        })
}

/// Everything worth telling an administrator about `dir`, most serious first, checked with
/// `backends`: the ones the gateway seals and opens with (an HSM key loader, a third standard
/// and a backend left out of the build all count as they will when mail flows).
pub fn validate(
    dir: &Directory,
    backends: &[Arc<dyn SecureEnvelope>],
    now: SystemTime,
) -> Vec<Finding> {
    let backends = &Backends {
        all: backends,
        stalled: std::cell::RefCell::new(Vec::new()),
    };
    let mut out = Vec::new();
    for cred in &dir.our.credentials {
        let finding = |severity, message| Finding {
            severity,
            subject: "our".into(),
            line: 0,
            message,
        };
        let trouble = match probe(backends, cred.standard, &[], Some(cred), now) {
            Err(ProbeError::Unusable(e)) => Some(finding(
                Severity::Error,
                format!("our {} key cannot sign: {e}", cred.standard),
            )),
            Err(ProbeError::NotNow(e)) => Some(finding(
                Severity::Warning,
                format!(
                    "our {} key could not be checked now: {e} (signing waits while this lasts)",
                    cred.standard
                ),
            )),
            Ok(()) => None,
        };
        if let Some(f) = trouble {
            // Told once: the 30-day probe would only repeat it.
            out.push(f);
        } else if let Err(e) = probe(backends, cred.standard, &[], Some(cred), now + SOON) {
            out.push(finding(
                Severity::Warning,
                format!(
                    "our {} key stops working within 30 days: {e}",
                    cred.standard
                ),
            ));
        }
    }
    if dir.our.domains.is_empty() {
        out.push(Finding {
            severity: Severity::Error,
            subject: "our".into(),
            line: 0,
            message: "no domains of ours: inbound mail would be refused".into(),
        });
    }
    for partner in &dir.partners {
        check_partner(dir, backends, partner, now, &mut out);
    }
    out.extend(signing_coverage(dir, backends, now));
    out.sort_by(|a, b| b.severity.cmp(&a.severity).then(a.line.cmp(&b.line)));
    out
}

/// For each standard a partner wants signed (`sign = true`), each of our domains needs an
/// identity that may sign now and is bound to it (an address of it, the domain itself, or the
/// key's `domains` line): without one, that domain's mail to the partner is held.
fn signing_coverage(dir: &Directory, backends: &Backends<'_>, now: SystemTime) -> Vec<Finding> {
    let mut out = Vec::new();
    let mut standards: Vec<Standard> = Vec::new();
    for p in dir.partners.iter().filter(|p| p.sign) {
        for s in &p.standards {
            if !standards.contains(s) {
                standards.push(*s);
            }
        }
    }
    for std in standards {
        let Some(backend) = backends.get(std) else {
            continue;
        };
        // What each identity that may sign is bound to, lower-case.
        let bound: Vec<String> =
            dir.our_credentials(std)
                .into_iter()
                .filter(|c| backend.may_sign_with(&c.certificate, now))
                .flat_map(|c| {
                    let named =
                        backend
                            .describe_certificates(&c.certificate)
                            .ok()
                            .and_then(|s| s.into_iter().next())
                            .map(|s| {
                                s.domains
                                    .into_iter()
                                    .chain(s.addresses.iter().filter_map(|a| {
                                        a.rsplit_once('@').map(|(_, d)| d.to_string())
                                    }))
                                    .collect::<Vec<_>>()
                            })
                            .unwrap_or_default();
                    named
                        .into_iter()
                        .chain(c.domains.clone())
                        .collect::<Vec<_>>()
                })
                .map(|d| d.to_ascii_lowercase())
                .collect();
        for d in &dir.our.domains {
            if bound.iter().any(|b| b.eq_ignore_ascii_case(d.as_str())) {
                continue;
            }
            let partners: Vec<String> = dir
                .partners
                .iter()
                .filter(|p| p.sign && p.standards.contains(&std))
                .map(|p| p.pattern.to_string())
                .collect();
            // A warning, not an error: a domain used only for receiving, or a key that expired,
            // must not stop the gateway (and its inbound mail) from starting.
            out.push(Finding {
                severity: Severity::Warning,
                subject: "our".into(),
                line: 0,
                message: format!(
                    "{d} has no {std} identity that may sign for it, but {} want(s) our mail \
                     signed: its mail to them would be held (add a key bound to {d}, or name \
                     {d} in a key's `domains`)",
                    partners.join(", ")
                ),
            });
        }
    }
    out
}

fn check_partner(
    dir: &Directory,
    backends: &Backends<'_>,
    p: &Partner,
    now: SystemTime,
    out: &mut Vec<Finding>,
) {
    let mut push = |severity, message: String| {
        out.push(Finding {
            severity,
            subject: p.pattern.to_string(),
            line: p.line,
            message,
        })
    };
    if p.profile == crate::PartnerProfile::Direct {
        if p.standards != [Standard::Smime] {
            push(
                Severity::Error,
                "profile = \"direct\" is S/MIME only: standards = [\"smime\"]".into(),
            );
        }
        if p.policy != PartnerPolicy::Required {
            push(
                Severity::Error,
                "profile = \"direct\" seals every message, never plain: its policy is required"
                    .into(),
            );
        }
        if p.header_protection {
            push(
                Severity::Error,
                "profile = \"direct\" wraps the whole message (its header fields travel inside); \
                 header_protection does not apply"
                    .into(),
            );
        }
    }
    let discovers_smime = p.key_sources.iter().any(|k| {
        matches!(
            k,
            crate::KeySource::DnsCert | crate::KeySource::Ldap | crate::KeySource::Harvested
        )
    });
    if discovers_smime && dir.our.trust_anchors.is_empty() && p.trust_anchors.is_empty() {
        push(
            Severity::Error,
            "key sources that find S/MIME certificates (dns-cert, ldap, harvest) need trust \
             anchors (ours or the entry's): a found certificate is used only if it chains to one"
                .into(),
        );
    }
    for (&std, entries) in &p.certificates {
        for (i, entry) in entries.iter().enumerate() {
            for (severity, message) in certificate_owners(backends, p, std, i + 1, entry) {
                push(severity, message);
            }
        }
    }
    let mut usable = Vec::new();
    for &std in &p.standards {
        let listed = p.certificates_for(std);
        // A single-use pair's signing certificate verifies the partner's signatures; sealing
        // uses only those that may encrypt (as the router does), so only those are probed.
        let backend = backends.get(std);
        let (certs, verify_only): (Vec<Vec<u8>>, Vec<Vec<u8>>) = listed
            .iter()
            .cloned()
            .partition(|c| backend.is_none_or(|b| b.may_encrypt_to(c)));
        if !verify_only.is_empty() {
            push(
                Severity::Warning,
                format!(
                    "{} {std} certificate(s) for signing only: used for verifying the partner's \
                     signatures, never sealed to",
                    verify_only.len()
                ),
            );
        }
        if certs.is_empty() && !listed.is_empty() && !p.discovers(std) {
            // None may encrypt: the policy's finding below says what that means for its mail.
            continue;
        }
        let certs = &certs[..];
        if certs.is_empty() && p.discovers(std) {
            // Looked up per recipient when mail goes out; nothing to probe now.
            usable.push(std);
            continue;
        }
        if certs.is_empty() {
            push(
                Severity::Warning,
                format!("{std} is listed but no certificate is configured for it"),
            );
            continue;
        }
        // The probe signs with an identity that may sign, as sealing chooses one (which of
        // our domains each can sign for is checked under `our`).
        let signer = if p.sign {
            dir.our_credentials(std)
                .into_iter()
                .find(|c| backend.is_none_or(|b| b.may_sign_with(&c.certificate, now)))
        } else {
            None
        };
        if p.sign && signer.is_none() {
            push(
                Severity::Error,
                format!("sign = true but we have no {std} key that may sign"),
            );
        }
        match probe(backends, std, certs, signer.as_ref(), now) {
            Err(ProbeError::Unusable(e)) => push(
                Severity::Error,
                format!("{std} certificate not usable: {e}"),
            ),
            Err(ProbeError::NotNow(e)) => {
                // Its mail is held and retried while this lasts, never sent in clear.
                usable.push(std);
                push(
                    Severity::Warning,
                    format!("{std} certificate could not be checked now: {e}"),
                );
            }
            Ok(()) => {
                usable.push(std);
                if let Err(e) = probe(backends, std, certs, signer.as_ref(), now + SOON) {
                    push(
                        Severity::Warning,
                        format!("{std} certificate stops working within 30 days: {e}"),
                    );
                }
            }
        }
    }
    match p.policy {
        PartnerPolicy::Required if usable.is_empty() => push(
            Severity::Error,
            "required partner has no usable key: its mail will be held, then bounced".into(),
        ),
        PartnerPolicy::Preferred if usable.is_empty() => push(
            Severity::Warning,
            "preferred partner has no usable key: its mail goes out plain, TLS required".into(),
        ),
        _ => {}
    }
}

/// Whether the certificates of one directory entry belong to the partner: each recipient
/// certificate must be bound only to the partner's domains (or to those the entry names in
/// `certificate_domains`), and a file with several recipient certificates is pointed out,
/// since mail is then encrypted to every one of them.
fn certificate_owners(
    backends: &Backends<'_>,
    p: &Partner,
    std: Standard,
    n: usize,
    bytes: &[u8],
) -> Vec<(Severity, String)> {
    let mut out = Vec::new();
    let Some(backend) = backends.get(std) else {
        // Nothing can read it, so nothing can seal to it: a certificate for a standard this
        // gateway was built without is an error, not a silent pass.
        out.push((
            Severity::Error,
            format!("{std} certificate {n}: no {std} backend is built into this gateway"),
        ));
        return out;
    };
    let summaries = match backend.describe_certificates(bytes) {
        Ok(s) => s,
        Err(e) => {
            out.push((
                Severity::Error,
                format!("{std} certificate {n} cannot be read: {e}"),
            ));
            return out;
        }
    };
    let recipients: Vec<_> = summaries.iter().filter(|s| !s.authority).collect();
    if recipients.len() > 1 {
        let names: Vec<&str> = recipients.iter().map(|s| s.description.as_str()).collect();
        out.push((
            Severity::Warning,
            format!(
                "{std} certificate {n} holds {} certificates; mail is encrypted to every one \
                 of them: {}",
                recipients.len(),
                names.join(", ")
            ),
        ));
    }
    for cert in recipients {
        if cert.self_signed && std == Standard::Smime {
            out.push((
                Severity::Warning,
                format!(
                    "{std} certificate {n} ({}) is self-signed (OpenSSL marks such certificates \
                     CA:TRUE); it is used as {}'s own certificate because it is pinned here: \
                     compare its fingerprint with the partner before relying on it",
                    cert.description, p.pattern
                ),
            ));
        }
        let domains = cert.all_domains();
        if domains.is_empty() {
            out.push((
                Severity::Warning,
                format!(
                    "{std} certificate {} names no address or domain: cannot tell that it \
                     belongs to {}",
                    cert.description, p.pattern
                ),
            ));
            continue;
        }
        let foreign: Vec<&String> = domains
            .iter()
            .filter(|d| {
                !postern_core::Domain::new(d.as_str()).is_ok_and(|d| {
                    p.pattern.owns(&d) || p.certificate_domains.iter().any(|c| d.is_within(c))
                })
            })
            .collect();
        if !foreign.is_empty() {
            let list: Vec<&str> = foreign.iter().map(|d| d.as_str()).collect();
            out.push((
                Severity::Error,
                format!(
                    "{std} certificate {} belongs to {}, not to {}: mail for this partner \
                     would be readable there. Remove it, or list those domains in \
                     `certificate_domains` if the partner uses it on purpose",
                    cert.description,
                    list.join(", "),
                    p.pattern
                ),
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A backend whose sealing never returns (an HSM that hangs), counting the calls.
    #[derive(Debug, Default)]
    struct Hangs(AtomicUsize);

    #[async_trait::async_trait]
    impl SecureEnvelope for Hangs {
        fn standard(&self) -> Standard {
            Standard::Smime
        }
        fn recognises(&self, _: &MessageView<'_>) -> bool {
            false
        }
        async fn seal(
            &self,
            _: &MessageView<'_>,
            _: &SealRequest<'_>,
        ) -> Result<Vec<u8>, postern_core::Error> {
            self.0.fetch_add(1, Ordering::SeqCst);
            std::thread::sleep(Duration::from_secs(3600));
            Err(postern_core::Error::Unavailable("never".into()))
        }
        async fn open(
            &self,
            _: &MessageView<'_>,
            _: &postern_core::OpenRequest<'_>,
        ) -> Result<postern_core::Opened, postern_core::Error> {
            Err(postern_core::Error::Unavailable("never".into()))
        }
    }

    /// A backend that hangs is waited for once per check, not once per entry: every partner
    /// is reported, none refused, and the check ends.
    #[test]
    fn a_hanging_backend_is_waited_for_once() {
        let hangs = Arc::new(Hangs::default());
        let mut dir = Directory::default();
        dir.our
            .domains
            .push(postern_core::Domain::new("clinic.example").unwrap());
        for i in 0..5 {
            let mut p = Partner::new(
                crate::DomainPattern::parse(&format!("p{i}.example")).unwrap(),
                PartnerPolicy::Required,
                vec![Standard::Smime],
            );
            p.certificates
                .insert(Standard::Smime, vec![b"cert".to_vec()]);
            dir.partners.push(p);
        }
        let backends: Vec<Arc<dyn SecureEnvelope>> = vec![hangs.clone()];
        let started = std::time::Instant::now();
        let findings = validate(&dir, &backends, SystemTime::now());
        assert_eq!(hangs.0.load(Ordering::SeqCst), 1, "{findings:?}");
        assert!(
            started.elapsed() < PROBE_WAIT * 3,
            "{:?}",
            started.elapsed()
        );
        let waited = findings
            .iter()
            .filter(|f| f.message.contains("did not answer"))
            .count();
        assert_eq!(waited, 5, "{findings:?}");
        assert!(
            findings.iter().all(|f| f.severity == Severity::Warning),
            "{findings:?}"
        );
    }

    /// A Direct entry is S/MIME only, sealed (required or preferred), without RFC 9788 header
    /// protection (the wrapper carries the header fields), and always signed; each mistake is
    /// named at its line.
    #[test]
    fn a_direct_entry_that_cannot_be_direct_is_refused() {
        let entry = |extra: &str| {
            let dir = Directory::from_toml(
                &format!(
                    "[our]\ndomains = [\"clinic.example\"]\n\
                     [[partner]]\ndomain = \"hisp.example\"\nprofile = \"direct\"\n{extra}"
                ),
                std::path::Path::new("."),
            )
            .unwrap();
            let errors: Vec<String> = validate(&dir, &[], SystemTime::now())
                .into_iter()
                .filter(|f| f.severity == Severity::Error && f.message.contains("direct"))
                .map(|f| f.message)
                .collect();
            (dir, errors)
        };
        let (dir, _) = entry("standards = [\"smime\"]\npolicy = \"required\"\n");
        assert!(dir.partners[0].sign, "Direct mail is always signed");
        for (extra, wanted) in [
            (
                "standards = [\"smime\", \"openpgp\"]\npolicy = \"required\"\n",
                "S/MIME only",
            ),
            ("policy = \"tls-required\"\n", "policy is required"),
            (
                "standards = [\"smime\"]\npolicy = \"preferred\"\n",
                "policy is required",
            ),
            (
                "standards = [\"smime\"]\npolicy = \"required\"\nheader_protection = true\n",
                "header_protection",
            ),
        ] {
            let (_, errors) = entry(extra);
            assert!(
                errors.iter().any(|e| e.contains(wanted)),
                "{extra}: {errors:?}"
            );
        }
        assert!(Directory::from_toml(
            "[[partner]]\ndomain = \"hisp.example\"\npolicy = \"required\"\nprofile = \"drect\"\n",
            std::path::Path::new("."),
        )
        .is_err());
    }
}
