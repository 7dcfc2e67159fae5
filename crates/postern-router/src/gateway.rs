//! The gateway: one call from an envelope and the raw message to the complete per-recipient
//! plan — the router's decision with the content verdict and every policy overlay applied.
//! The relay's workers call it; so does any MTA that embeds Postern.
//!
//! The overlays (before this module they lived in the relay, where an embedder could not reach
//! them): our own domains go back to our mail server; content inspection is skipped when every
//! recipient only ever gets a sealed copy (the verdict could change nothing) and when an
//! administrator released the message; the policy's `tag` adds a `Postern-DLP` header to what
//! leaves; plain copies to partners are held when the policy inspects partner mail too; and
//! every content refusal names what was found (detectors and counts, never values).

use std::fmt;
use std::path::Path;
use std::sync::Arc;
use std::time::SystemTime;

use postern_core::{
    Address, ContentAction, ContentInspector, Envelope, Inspection, KeyStore, MalwareScanner,
    PassThrough, Policy, RevocationChecker, ScanVerdict, SecureEnvelope, Standard,
};

use crate::decide::{Disposition, Keys, QuarantineReason, Reason, Router};
use crate::inbound::{Inbound, InboundPolicy, InboundRouter};
use crate::{
    CheckedDirectory, Directory, KeySource, Lookups, PartnerPolicy, Rejected, ReloadError,
};

/// One outgoing message, as [`Gateway::outbound`] takes it.
#[derive(Debug, Clone)]
pub struct Outgoing<'a> {
    /// MAIL FROM and every recipient (ours and theirs).
    pub envelope: &'a Envelope,
    /// The message as received.
    pub message: &'a [u8],
    /// An administrator released it from the quarantine: content inspection is overridden.
    pub released: bool,
    /// The verdict of an earlier attempt: kept with the queued message so that a retry does
    /// not inspect it again.
    pub inspection: Option<Inspection>,
}

impl<'a> Outgoing<'a> {
    /// A message not inspected yet and not released.
    pub fn new(envelope: &'a Envelope, message: &'a [u8]) -> Self {
        Outgoing {
            envelope,
            message,
            released: false,
            inspection: None,
        }
    }

    /// Marks it released by an administrator.
    pub fn released(mut self, released: bool) -> Self {
        self.released = released;
        self
    }

    /// Reuses the verdict of an earlier attempt.
    pub fn inspected(mut self, inspection: Option<Inspection>) -> Self {
        self.inspection = inspection;
        self
    }
}

/// What happens to every recipient of one outgoing message.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The content verdict (`None`: not inspected — released, or every copy sealed). Keep it
    /// with the queued message and pass it back through [`Outgoing::inspected`] on a retry.
    pub inspection: Option<Inspection>,
    /// One decision per group of recipients; together they name every recipient exactly once.
    pub dispositions: Vec<Disposition>,
}

/// The library's front door: routing, content inspection and the policy between them.
///
/// ```
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use postern_core::Address;
/// use postern_router::{Directory, Disposition, Envelope, Gateway, Outgoing};
///
/// let dir = Directory::from_toml(
///     r#"
///     [our]
///     domains = ["clinic.example"]
///
///     [[partner]]
///     domain = "lab.example"
///     standards = ["openpgp"]
///     policy = "required"
///     key_sources = ["wkd"]        # and no WKD source given to the gateway: no key anywhere
///     "#,
///     std::path::Path::new("."),
/// )?;
/// // S/MIME and OpenPGP, the built-in DLP policy on what leaves in clear.
/// let gateway = Gateway::builder().build()?;
/// // Checked with the gateway's backends: only a checked directory routes mail.
/// let dir = gateway.check(dir)?;
/// let envelope = Envelope {
///     mail_from: Some(Address::new("dr@clinic.example")?),
///     rcpt_to: vec![
///         Address::new("nurse@clinic.example")?,
///         Address::new("results@lab.example")?,
///     ],
/// };
/// let raw = b"From: dr@clinic.example\r\nSubject: Labs\r\n\r\nResults attached.\r\n";
/// let rt = tokio::runtime::Builder::new_current_thread().build()?;
/// let plan = rt.block_on(gateway.outbound(&dir, Outgoing::new(&envelope, raw)));
/// for d in &plan.dispositions {
///     match d {
///         // Our own recipients: back to our mail server as the message came.
///         Disposition::Local { recipients } => assert_eq!(recipients[0].to_string(), "nurse@clinic.example"),
///         // Fail closed, with the SMTP reply (and DSN status) of the typed reason.
///         Disposition::Bounce { recipients, reason } => {
///             assert_eq!(recipients[0].to_string(), "results@lab.example");
///             assert_eq!(reason.smtp_reply().enhanced, postern_core::EnhancedStatus::CRYPTO);
///         }
///         other => panic!("unexpected: {other:?}"),
///     }
/// }
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct Gateway {
    router: Router,
    inbound: InboundRouter,
    inspector: Arc<dyn ContentInspector>,
    scanner: Option<Arc<dyn MalwareScanner>>,
    scan_fallback: ScanFallback,
}

/// What happens to a message when the malware scanner cannot answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ScanFallback {
    /// Keep it and try again later (4.3.0), as long as the retry schedule allows: nothing
    /// unscanned goes through.
    #[default]
    Defer,
    /// Let it through unscanned: for a site that prefers mail unscanned to mail late, chosen
    /// knowingly (the default defers).
    Pass,
}

/// What the scanner's verdict means for a message.
pub(crate) enum Scanned {
    /// Go on (clean, not scanned, or unscanned by policy).
    Proceed,
    /// Hold it for review.
    Malware(QuarantineReason),
    /// Wait for the scanner.
    Defer(Reason),
}

impl Gateway {
    /// A builder with the defaults: the S/MIME and OpenPGP backends (as the `smime` and
    /// `openpgp` features give them), postern-dlp's built-in policy on every copy that would
    /// leave in clear (the `dlp` feature), no published-key sources, no revocation checks.
    pub fn builder() -> GatewayBuilder {
        GatewayBuilder::default()
    }

    /// The outbound router inside.
    pub fn router(&self) -> &Router {
        &self.router
    }

    /// The inbound router inside.
    pub fn inbound_router(&self) -> &InboundRouter {
        &self.inbound
    }

    /// The time this gateway checks certificates at (its clock: the system's unless
    /// [`GatewayBuilder::clock`] set another).
    pub fn now(&self) -> SystemTime {
        self.router.clock.now()
    }

    /// The backends this gateway seals and opens with.
    pub fn backends(&self) -> &[Arc<dyn SecureEnvelope>] {
        self.router.backends()
    }

    /// Checks `dir` with this gateway's backends, as of now (see [`CheckedDirectory::check`]).
    pub fn check(&self, dir: Directory) -> Result<CheckedDirectory, Rejected> {
        let mut checked = CheckedDirectory::check(dir, self.backends(), self.now())?;
        // A key source this gateway has no store for finds nothing: mail that needs it fails
        // closed, and the operator should hear it now rather than from the first bounce.
        let missing: Vec<crate::Finding> = checked
            .partners
            .iter()
            .flat_map(|p| p.key_sources.iter().map(move |s| (p, s)))
            .filter(|(_, s)| !self.router.key_stores.iter().any(|(k, _)| k == *s))
            .map(|(p, s)| crate::Finding {
                severity: crate::Severity::Warning,
                subject: p.pattern.to_string(),
                line: p.line,
                message: format!(
                    "key source \"{}\" is not available in this gateway (not registered, or \
                     built without it): no key will be found there",
                    s.name()
                ),
            })
            .collect();
        checked.add_warnings(missing);
        Ok(checked)
    }

    /// Reads a directory file (relative paths in it are taken from its folder) and checks it
    /// with this gateway's backends.
    pub fn load_directory(&self, path: &Path) -> Result<CheckedDirectory, ReloadError> {
        let dir = Directory::load(path).map_err(ReloadError::Load)?;
        self.check(dir)
            .map_err(|r| ReloadError::Rejected(r.findings))
    }

    /// The content inspector in use.
    pub fn inspector(&self) -> &Arc<dyn ContentInspector> {
        &self.inspector
    }

    /// Opens and verifies a message from outside for our own recipients (see
    /// [`InboundRouter::inbound`]).
    pub async fn inbound(
        &self,
        dir: &CheckedDirectory,
        mail_from: Option<&Address>,
        raw: &[u8],
    ) -> Inbound {
        self.inbound.inbound(dir, mail_from, raw).await
    }

    /// Decides for every recipient of an outgoing message. Content inspection (CPU-bound:
    /// attachments are unpacked) runs on tokio's blocking pool when called inside a tokio
    /// runtime, so it never stalls the async workers. Sealing runs where the future is polled:
    /// RSA on a large message, or a `KeyLoader` that waits for an HSM, blocks that thread, so a
    /// server with SMTP sessions on the same runtime should poll this future off its workers
    /// (postern-relay runs each message under `tokio::task::block_in_place`).
    pub async fn outbound(&self, dir: &CheckedDirectory, out: Outgoing<'_>) -> Plan {
        self.plan(dir, out, Keys::Fetch).await
    }

    /// The I/O half of [`Gateway::outbound`], for a server that runs the two halves in
    /// different places: every key the message's partner recipients may be sealed to, from
    /// the directory and the partners' key sources (which may wait on the network), with
    /// revocation checked. Pass the result to [`Gateway::outbound_with`]. Every standard a
    /// partner's entry lists is looked up; the all-in-one [`Gateway::outbound`] stops at the
    /// first that seals.
    pub async fn look_up(&self, dir: &CheckedDirectory, envelope: &Envelope) -> Lookups {
        let theirs = Envelope {
            mail_from: envelope.mail_from.clone(),
            rcpt_to: envelope
                .rcpt_to
                .iter()
                .filter(|a| !dir.is_ours(a.domain()))
                .cloned()
                .collect(),
        };
        self.router.look_up(dir, &theirs).await
    }

    /// The CPU half of [`Gateway::outbound`]: malware scanning, content inspection and sealing
    /// with the keys [`Gateway::look_up`] found, synchronously on the calling thread and with
    /// no lookups of its own (a scanner or an HSM key loader still talks to its own service).
    /// Run it off an async runtime's workers (a thread of your own, `spawn_blocking`). The plan
    /// is the one [`Gateway::outbound`] makes, except that a partner group `lookups` does not
    /// cover — looked up for another directory or other recipients — waits (a temporary
    /// failure: look up again and retry) and is never sealed to keys found for someone else.
    ///
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use postern_core::Address;
    /// use postern_router::{Directory, Disposition, Envelope, Gateway, Outgoing};
    ///
    /// let gateway = Gateway::builder().without_inspection().build()?;
    /// let dir = gateway.check(Directory::from_toml(
    ///     "[our]\ndomains = [\"clinic.example\"]\n",
    ///     std::path::Path::new("."),
    /// )?)?;
    /// let envelope = Envelope {
    ///     mail_from: Some(Address::new("dr@clinic.example")?),
    ///     rcpt_to: vec![Address::new("someone@mail.example")?],
    /// };
    /// let raw = b"From: dr@clinic.example\r\nSubject: Hello\r\n\r\nHello.\r\n";
    /// // The I/O part, on any executor (here postern_core's own; tokio in a server).
    /// let keys = postern_core::block_on(gateway.look_up(&dir, &envelope));
    /// // The CPU part, on this thread.
    /// let plan = gateway.outbound_with(&dir, Outgoing::new(&envelope, raw), &keys);
    /// assert!(matches!(plan.dispositions[0], Disposition::Deliver { sealed: None, .. }));
    /// # Ok(()) }
    /// ```
    pub fn outbound_with(
        &self,
        dir: &CheckedDirectory,
        out: Outgoing<'_>,
        lookups: &Lookups,
    ) -> Plan {
        postern_core::block_on(self.plan(dir, out, Keys::Found(lookups)))
    }

    /// Both halves: keys looked up as sealing needs them (`Keys::Fetch`), or only what was
    /// found before (`Keys::Found`: every step then runs on this thread, no I/O awaited).
    async fn plan(&self, dir: &CheckedDirectory, out: Outgoing<'_>, keys: Keys<'_>) -> Plan {
        let here = matches!(keys, Keys::Found(_));
        let mut dispositions = Vec::new();
        let (ours, theirs): (Vec<Address>, Vec<Address>) = out
            .envelope
            .rcpt_to
            .iter()
            .cloned()
            .partition(|a| dir.is_ours(a.domain()));
        // Scanned before anything is sealed (a sealed copy can be scanned by nobody else), and
        // before our own recipients' copy goes back: malware held for one recipient is held
        // for all. A message an administrator released was scanned when it was held.
        if !out.released {
            let everyone = || out.envelope.rcpt_to.clone();
            match self.scan_where(out.message, here).await {
                Scanned::Proceed => {}
                Scanned::Malware(reason) => {
                    return Plan {
                        inspection: out.inspection,
                        dispositions: vec![Disposition::Quarantine {
                            recipients: everyone(),
                            reason,
                        }],
                    };
                }
                Scanned::Defer(reason) => {
                    return Plan {
                        inspection: out.inspection,
                        dispositions: vec![Disposition::Hold {
                            recipients: everyone(),
                            reason,
                        }],
                    };
                }
            }
        }
        if !ours.is_empty() {
            dispositions.push(Disposition::Local { recipients: ours });
        }
        if theirs.is_empty() {
            return Plan {
                inspection: out.inspection,
                dispositions,
            };
        }
        let envelope = Envelope {
            mail_from: out.envelope.mail_from.clone(),
            rcpt_to: theirs,
        };
        // Partners that only ever get a sealed copy: the verdict would change nothing, and
        // unpacking attachments is the costly part.
        let all_sealed = envelope.rcpt_to.iter().all(|a| {
            dir.partner_for(a.domain())
                .is_some_and(|p| p.policy == PartnerPolicy::Required)
        });
        let inspection = match out.inspection {
            Some(known) => Some(known),
            None if out.released || all_sealed => None,
            None if here => self.inspector.inspect(&envelope, out.message),
            None => self.inspect(&envelope, out.message).await,
        };
        let content = match (&inspection, out.released) {
            (_, true) => Some(ContentAction::Allow),
            (Some(i), _) => Some(i.action),
            (None, _) => None,
        };
        // The policy's "tag": a header with the summary (no values) on the copy that goes out.
        let tagged;
        let data = match &inspection {
            Some(i) if i.tag && !out.released => {
                tagged = [
                    format!("Postern-DLP: {}\r\n", one_line(&i.summary)).as_bytes(),
                    out.message,
                ]
                .concat();
                &tagged[..]
            }
            _ => out.message,
        };
        let decisions = self
            .router
            .decide(dir, &envelope, data, content, keys)
            .await;
        let held = inspection.as_ref().filter(|i| {
            !out.released
                && i.partner_mail
                && matches!(i.action, ContentAction::Quarantine | ContentAction::Block)
        });
        let found = inspection.as_ref().map(|i| i.summary.as_str());
        for d in decisions {
            dispositions.push(match d {
                // A plain copy to a partner (TLS-required, or preferred without a key) is held
                // too when the policy inspects partner mail.
                Disposition::Deliver {
                    recipients,
                    sealed: None,
                    ..
                } if held.is_some()
                    && recipients
                        .iter()
                        .any(|r| dir.partner_for(r.domain()).is_some()) =>
                {
                    Disposition::Quarantine {
                        recipients,
                        reason: QuarantineReason::PlainToPartner { summary: None }
                            .with_summary(found),
                    }
                }
                Disposition::Quarantine { recipients, reason } => Disposition::Quarantine {
                    recipients,
                    reason: reason.with_summary(found),
                },
                Disposition::Bounce {
                    recipients,
                    reason: Reason::ContentPolicy { .. },
                } => Disposition::Bounce {
                    recipients,
                    reason: Reason::ContentPolicy {
                        summary: inspection.as_ref().map(|i| i.summary.clone()),
                    },
                },
                other => other,
            });
        }
        Plan {
            inspection,
            dispositions,
        }
    }

    async fn inspect(&self, envelope: &Envelope, message: &[u8]) -> Option<Inspection> {
        use tokio::runtime::{Handle, RuntimeFlavor};
        // Off the async workers. On a multi-threaded runtime this thread stops being one while
        // it inspects (its other tasks move on), and the message stays borrowed; a panic
        // reaches the caller's containment.
        let flavor = Handle::try_current().map(|h| h.runtime_flavor());
        if matches!(flavor, Ok(RuntimeFlavor::MultiThread)) {
            return tokio::task::block_in_place(|| self.inspector.inspect(envelope, message));
        }
        // A current-thread runtime has only this thread: a blocking thread inspects a copy
        // (it may outlive this borrow).
        if flavor.is_ok() {
            let inspector = self.inspector.clone();
            let envelope = envelope.clone();
            let message = message.to_vec();
            if let Ok(v) =
                tokio::task::spawn_blocking(move || inspector.inspect(&envelope, &message)).await
            {
                return v;
            }
            // The inspector panicked: inspect in place, so the caller's panic containment
            // sees it (and holds the message) rather than a verdict of "not inspected".
        }
        self.inspector.inspect(envelope, message)
    }
}

impl Gateway {
    /// The malware scanner's verdict on `message`, off the async workers as inspection is.
    pub(crate) async fn scan(&self, message: &[u8]) -> Scanned {
        self.scan_where(message, false).await
    }

    /// The scanner's verdict, asked on this thread when `here` (the caller chose the thread),
    /// else off the async workers.
    async fn scan_where(&self, message: &[u8], here: bool) -> Scanned {
        let Some(scanner) = &self.scanner else {
            return Scanned::Proceed;
        };
        use tokio::runtime::{Handle, RuntimeFlavor};
        let flavor = Handle::try_current().map(|h| h.runtime_flavor());
        let verdict = if here {
            scanner.scan(message)
        } else if matches!(flavor, Ok(RuntimeFlavor::MultiThread)) {
            tokio::task::block_in_place(|| scanner.scan(message))
        } else if flavor.is_ok() {
            let (s, m) = (scanner.clone(), message.to_vec());
            match tokio::task::spawn_blocking(move || s.scan(&m)).await {
                Ok(v) => v,
                Err(_) => scanner.scan(message),
            }
        } else {
            scanner.scan(message)
        };
        match verdict {
            ScanVerdict::Clean => Scanned::Proceed,
            ScanVerdict::Infected { signature } => Scanned::Malware(QuarantineReason::Malware {
                scanner: scanner.name().to_string(),
                signature,
            }),
            ScanVerdict::Unscannable { why } => Scanned::Malware(QuarantineReason::Unscannable {
                scanner: scanner.name().to_string(),
                why,
            }),
            ScanVerdict::Unavailable { why } => match self.scan_fallback {
                ScanFallback::Defer => Scanned::Defer(Reason::ScannerUnavailable {
                    scanner: scanner.name().to_string(),
                    why,
                }),
                ScanFallback::Pass => Scanned::Proceed,
            },
        }
    }
}

/// Header values are one line: a summary with a line break would inject header fields (the
/// one sanitiser, bounded well inside a header line's 998 characters).
fn one_line(s: &str) -> String {
    postern_core::display_text(s, 900)
}

/// Builds a [`Gateway`]. Everything has a default; set only what differs.
#[derive(Default)]
pub struct GatewayBuilder {
    backends: Option<Vec<Arc<dyn SecureEnvelope>>>,
    extra: Vec<Arc<dyn SecureEnvelope>>,
    #[cfg(feature = "smime")]
    key_loader: Option<Arc<dyn postern_smime::KeyLoader>>,
    inspection: Inspect,
    key_stores: Vec<(KeySource, Arc<dyn KeyStore>)>,
    revocation: Option<Arc<dyn RevocationChecker>>,
    subject_trigger: Option<String>,
    policy: Option<Policy>,
    inbound_policy: Option<InboundPolicy>,
    clock: Option<Arc<dyn postern_core::Clock>>,
    scanner: Option<Arc<dyn MalwareScanner>>,
    scan_fallback: ScanFallback,
}

impl fmt::Debug for GatewayBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GatewayBuilder")
            .field("backends", &self.backends)
            .field("extra", &self.extra)
            .field("inspection", &self.inspection)
            .field("key_stores", &self.key_stores.len())
            .finish_non_exhaustive()
    }
}

impl GatewayBuilder {
    /// Replaces the default backends (S/MIME and OpenPGP) with these.
    pub fn backends(mut self, backends: Vec<Arc<dyn SecureEnvelope>>) -> Self {
        self.backends = Some(backends);
        self
    }

    /// Adds a backend next to the others; it replaces one of the same [`Standard`].
    pub fn backend(mut self, backend: Arc<dyn SecureEnvelope>) -> Self {
        self.extra.push(backend);
        self
    }

    /// Where the default S/MIME backend gets its private-key operations (an HSM, a signing
    /// service). With [`GatewayBuilder::backends`] replacing the defaults, configure your own
    /// `SmimeEnvelope` with it instead: [`GatewayBuilder::build`] refuses a loader it would
    /// not use.
    #[cfg(feature = "smime")]
    pub fn key_loader(mut self, loader: Arc<dyn postern_smime::KeyLoader>) -> Self {
        self.key_loader = Some(loader);
        self
    }

    /// Content inspection for mail leaving in clear, instead of the default: postern-dlp's
    /// built-in policy (with the `dlp` feature, on by default).
    pub fn inspector(mut self, inspector: Arc<dyn ContentInspector>) -> Self {
        self.inspection = Inspect::With(inspector);
        self
    }

    /// No content inspection: mail to the outside world leaves as it is (card numbers and
    /// patient identifiers included). Only by name, so that no gateway is built without it by
    /// accident.
    pub fn without_inspection(mut self) -> Self {
        self.inspection = Inspect::Off;
        self
    }

    /// Where partners whose entry names `source` publish their keys (one store per kind).
    pub fn key_store(mut self, source: KeySource, store: Arc<dyn KeyStore>) -> Self {
        self.key_stores.retain(|(s, _)| *s != source);
        self.key_stores.push((source, store));
        self
    }

    /// Revocation checks for partner certificates, both ways.
    pub fn revocation(mut self, checker: Arc<dyn RevocationChecker>) -> Self {
        self.revocation = Some(checker);
        self
    }

    /// The subject marker that forces protection (default `[secure]`; empty: none).
    pub fn subject_trigger(mut self, trigger: impl Into<String>) -> Self {
        self.subject_trigger = Some(trigger.into());
        self
    }

    /// The algorithm policy for sealing and opening.
    pub fn policy(mut self, policy: Policy) -> Self {
        self.policy = Some(policy);
        self
    }

    /// Where "now" comes from for every certificate check (validity, key usage, chains) and the
    /// directory check, both ways: default the system's clock. A [`postern_core::FixedClock`]
    /// reproduces results with reference material whose certificates have expired; never in
    /// service, where it would accept expired certificates.
    pub fn clock(mut self, clock: Arc<dyn postern_core::Clock>) -> Self {
        self.clock = Some(clock);
        self
    }

    /// A malware scanner for every message: mail from outside after it is opened, ours before
    /// it is sealed (where nobody else can scan it any more). Infected mail is quarantined;
    /// when the scanner cannot answer, [`GatewayBuilder::scan_fallback`] decides.
    pub fn scanner(mut self, scanner: Arc<dyn MalwareScanner>) -> Self {
        self.scanner = Some(scanner);
        self
    }

    /// What happens when the scanner cannot answer (default: defer).
    pub fn scan_fallback(mut self, fallback: ScanFallback) -> Self {
        self.scan_fallback = fallback;
        self
    }

    /// What happens to inbound mail that cannot be opened, and the like.
    pub fn inbound_policy(mut self, policy: InboundPolicy) -> Self {
        self.inbound_policy = Some(policy);
        self
    }

    /// The gateway. Refused when it would have no backend, no content inspection that was
    /// asked for (the `dlp` feature is off and no inspector was named), or a key loader it
    /// would not use.
    pub fn build(self) -> Result<Gateway, BuildError> {
        #[cfg(feature = "smime")]
        if self.backends.is_some() && self.key_loader.is_some() {
            return Err(BuildError::KeyLoaderUnused);
        }
        let mut backends = match self.backends {
            Some(b) => b,
            None => {
                #[allow(unused_mut)]
                let mut defaults: Vec<Arc<dyn SecureEnvelope>> = Vec::new();
                #[cfg(feature = "smime")]
                {
                    let mut smime = postern_smime::SmimeEnvelope::new();
                    if let Some(loader) = self.key_loader {
                        smime = smime.with_key_loader(loader);
                    }
                    defaults.push(Arc::new(smime));
                }
                #[cfg(feature = "openpgp")]
                defaults.push(Arc::new(postern_openpgp::OpenPgpEnvelope::new()));
                defaults
            }
        };
        for b in self.extra {
            let standard: Standard = b.standard();
            backends.retain(|x| x.standard() != standard);
            backends.push(b);
        }
        if backends.is_empty() {
            return Err(BuildError::NoBackend);
        }
        let mut router = Router::new(backends.clone());
        let mut inbound = InboundRouter::new(backends);
        if let Some(r) = self.revocation {
            router = router.with_revocation(r.clone());
            inbound = inbound.with_revocation(r);
        }
        for (source, store) in self.key_stores {
            router = router.with_key_store(source, store);
        }
        if let Some(t) = self.subject_trigger {
            router.subject_trigger = t;
        }
        if let Some(p) = self.policy {
            router.policy = p.clone();
            inbound.algorithms = p;
        }
        if let Some(p) = self.inbound_policy {
            inbound.policy = p;
        }
        if let Some(c) = self.clock {
            router.clock = c.clone();
            inbound.clock = c;
        }
        let inspector: Arc<dyn ContentInspector> = match self.inspection {
            Inspect::With(i) => i,
            Inspect::Off => Arc::new(PassThrough),
            #[cfg(feature = "dlp")]
            Inspect::Default => Arc::new(postern_dlp::DlpInspector::builtin()),
            #[cfg(not(feature = "dlp"))]
            Inspect::Default => return Err(BuildError::NoInspector),
        };
        Ok(Gateway {
            router,
            inbound,
            inspector,
            scanner: self.scanner,
            scan_fallback: self.scan_fallback,
        })
    }
}

/// Which content inspection a builder was told to use.
#[derive(Debug, Default)]
enum Inspect {
    /// postern-dlp's built-in policy (an error without the `dlp` feature).
    #[default]
    Default,
    /// The embedder's.
    With(Arc<dyn ContentInspector>),
    /// None, by name.
    Off,
}

/// Why [`GatewayBuilder::build`] refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// No backend: the `smime` and `openpgp` features are off and none was given.
    #[error(
        "no backend: enable postern-router's smime or openpgp feature, or give one with backend()"
    )]
    NoBackend,
    /// No content inspection was named and the built-in one is not compiled in.
    #[error("no content inspection: enable postern-router's dlp feature, give an inspector(), or say without_inspection()")]
    NoInspector,
    /// A key loader was given, but the default S/MIME backend it is for was replaced.
    #[error("key_loader() is for the default S/MIME backend, which backends() replaced: give your SmimeEnvelope the loader instead")]
    KeyLoaderUnused,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A builder with both real backends given, so the tests run the same whichever backend
    /// features the crate is built with (the defaults are what the features decide).
    fn builder() -> GatewayBuilder {
        Gateway::builder().backends(vec![
            Arc::new(postern_smime::SmimeEnvelope::new()),
            Arc::new(postern_openpgp::OpenPgpEnvelope::new()),
        ])
    }
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// Says what it was told and counts its calls.
    #[derive(Debug)]
    struct Fixed {
        action: ContentAction,
        tag: bool,
        partner_mail: bool,
        calls: AtomicUsize,
    }

    impl Fixed {
        fn new(action: ContentAction) -> Arc<Self> {
            Arc::new(Fixed {
                action,
                tag: false,
                partner_mail: false,
                calls: AtomicUsize::new(0),
            })
        }
    }

    impl ContentInspector for Fixed {
        fn inspect(&self, _: &Envelope, _: &[u8]) -> Option<Inspection> {
            self.calls.fetch_add(1, Ordering::SeqCst);
            Some(Inspection {
                action: self.action,
                tag: self.tag,
                summary: "ssn x1\r\nInjected: yes".into(),
                detail: serde_json::json!({"findings": 1}),
                partner_mail: self.partner_mail,
            })
        }
    }

    /// A required partner with no key anywhere (a key source the gateway was given no store
    /// for), and a TLS-required one.
    fn directory() -> CheckedDirectory {
        let dir = Directory::from_toml(
            r#"
            [our]
            domains = ["clinic.example"]

            [[partner]]
            domain = "lab.example"
            standards = ["openpgp"]
            policy = "required"
            key_sources = ["wkd"]

            [[partner]]
            domain = "tls.example"
            policy = "tls-required"
            "#,
            std::path::Path::new("."),
        )
        .unwrap();
        builder()
            .without_inspection()
            .build()
            .unwrap()
            .check(dir)
            .unwrap()
    }

    fn envelope(to: &[&str]) -> Envelope {
        Envelope {
            mail_from: Some(Address::new("dr@clinic.example").unwrap()),
            rcpt_to: to.iter().map(|a| Address::new(a).unwrap()).collect(),
        }
    }

    const MSG: &[u8] = b"From: dr@clinic.example\r\nBcc: secret@mail.example\r\nSubject: x\r\n\r\nSSN 078-05-1120\r\n";

    fn find<'a>(plan: &'a Plan, who: &str) -> &'a Disposition {
        plan.dispositions
            .iter()
            .find(|d| d.recipients().iter().any(|r| r.to_string() == who))
            .unwrap_or_else(|| panic!("no decision for {who}: {plan:?}"))
    }

    /// Waits, inside inspection, for a signal that another task on the same runtime sends.
    #[derive(Debug)]
    struct WaitsForSignal(std::sync::Mutex<std::sync::mpsc::Receiver<()>>);

    impl ContentInspector for WaitsForSignal {
        fn inspect(&self, _: &Envelope, _: &[u8]) -> Option<Inspection> {
            let rx = self.0.lock().unwrap();
            let got = rx.recv_timeout(std::time::Duration::from_secs(10));
            assert!(
                got.is_ok(),
                "the other task never ran while inspection blocked"
            );
            None
        }
    }

    /// Inspection (CPU-bound, or an inspector that blocks) never holds the runtime's only
    /// worker: on a multi-threaded runtime with one worker and on a current-thread runtime,
    /// another task runs while an inspector blocks.
    #[test]
    fn inspection_runs_off_the_async_workers_on_both_runtime_flavors() {
        let runtimes = [
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .build()
                .unwrap(),
            tokio::runtime::Builder::new_current_thread()
                .build()
                .unwrap(),
        ];
        for rt in runtimes {
            let (tx, rx) = std::sync::mpsc::channel();
            let gw = builder()
                .inspector(Arc::new(WaitsForSignal(std::sync::Mutex::new(rx))))
                .build()
                .unwrap();
            rt.block_on(async move {
                // Both as tasks (block_on's own future does not run on a worker).
                let deciding = tokio::spawn(async move {
                    let env = envelope(&["someone@mail.example"]);
                    gw.outbound(&directory(), Outgoing::new(&env, MSG))
                        .await
                        .dispositions
                        .len()
                });
                let other = tokio::spawn(async move {
                    tokio::task::yield_now().await;
                    tx.send(()).unwrap();
                });
                assert_eq!(deciding.await.unwrap(), 1);
                other.await.unwrap();
            });
        }
    }

    #[tokio::test]
    async fn every_recipient_is_decided_once_and_our_own_stay_local() {
        let gw = builder().without_inspection().build().unwrap();
        let env = envelope(&[
            "nurse@clinic.example",
            "results@lab.example",
            "someone@mail.example",
        ]);
        let plan = gw.outbound(&directory(), Outgoing::new(&env, MSG)).await;
        let mut all: Vec<String> = plan
            .dispositions
            .iter()
            .flat_map(|d| d.recipients().iter().map(|r| r.to_string()))
            .collect();
        all.sort();
        assert_eq!(
            all,
            [
                "nurse@clinic.example",
                "results@lab.example",
                "someone@mail.example"
            ]
        );
        assert!(matches!(
            find(&plan, "nurse@clinic.example"),
            Disposition::Local { .. }
        ));
        // A required partner without a certificate: bounced with a typed reason whose status
        // is the key error's (5.7.5), never a clear copy.
        match find(&plan, "results@lab.example") {
            Disposition::Bounce { reason, .. } => {
                assert!(!reason.is_temporary());
                assert!(
                    matches!(reason, Reason::EncryptionFailed { .. }),
                    "{reason:?}"
                );
                let reply = reason.smtp_reply();
                assert_eq!(
                    (reply.code, reply.enhanced.to_string().as_str()),
                    (554, "5.7.5"),
                    "{reply}"
                );
                assert!(reply.text.contains("requires encryption"), "{reply}");
            }
            other => panic!("{other:?}"),
        }
        assert!(plan.inspection.is_none(), "inspection turned off by name");
    }

    #[tokio::test]
    async fn content_refusal_names_what_was_found_and_keeps_the_verdict() {
        let inspector = Fixed::new(ContentAction::Block);
        let gw = builder().inspector(inspector.clone()).build().unwrap();
        let env = envelope(&["someone@mail.example"]);
        let plan = gw.outbound(&directory(), Outgoing::new(&env, MSG)).await;
        match find(&plan, "someone@mail.example") {
            Disposition::Bounce { reason, .. } => {
                let reply = reason.smtp_reply();
                assert_eq!(
                    (reply.code, reply.enhanced.to_string().as_str()),
                    (550, "5.7.1"),
                    "{reply}"
                );
                assert!(reply.text.contains("ssn x1"), "{reply}");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(inspector.calls.load(Ordering::SeqCst), 1);
        // A retry with the kept verdict does not inspect again, and decides the same.
        let again = gw
            .outbound(
                &directory(),
                Outgoing::new(&env, MSG).inspected(plan.inspection.clone()),
            )
            .await;
        assert_eq!(inspector.calls.load(Ordering::SeqCst), 1);
        assert_eq!(again.dispositions, plan.dispositions);
        // Released by an administrator: delivered, neither inspected nor tagged.
        let released = gw
            .outbound(&directory(), Outgoing::new(&env, MSG).released(true))
            .await;
        assert_eq!(inspector.calls.load(Ordering::SeqCst), 1);
        assert!(matches!(
            find(&released, "someone@mail.example"),
            Disposition::Deliver { sealed: None, .. }
        ));
    }

    #[tokio::test]
    async fn partners_that_only_get_ciphertext_are_not_inspected() {
        let inspector = Fixed::new(ContentAction::Quarantine);
        let gw = builder().inspector(inspector.clone()).build().unwrap();
        let env = envelope(&["results@lab.example", "nurse@clinic.example"]);
        let plan = gw.outbound(&directory(), Outgoing::new(&env, MSG)).await;
        assert_eq!(inspector.calls.load(Ordering::SeqCst), 0);
        assert!(plan.inspection.is_none());
    }

    #[tokio::test]
    async fn quarantine_tag_and_plain_partner_copies_follow_the_policy() {
        let mut fixed = Fixed {
            action: ContentAction::Quarantine,
            tag: false,
            partner_mail: true,
            calls: AtomicUsize::new(0),
        };
        let gw = builder().inspector(Arc::new(fixed)).build().unwrap();
        let env = envelope(&["someone@mail.example", "x@tls.example"]);
        let plan = gw.outbound(&directory(), Outgoing::new(&env, MSG)).await;
        for who in ["someone@mail.example", "x@tls.example"] {
            match find(&plan, who) {
                Disposition::Quarantine { reason, .. } => {
                    assert!(
                        matches!(
                            reason,
                            QuarantineReason::Content { summary: Some(_) }
                                | QuarantineReason::PlainToPartner { summary: Some(_) }
                        ),
                        "{reason:?}"
                    );
                    assert!(
                        reason.to_string().starts_with("content policy: "),
                        "{reason}"
                    )
                }
                other => panic!("{who}: {other:?}"),
            }
        }
        // Tag: the summary rides along as one header line (a line break in it cannot add a
        // field), and the Bcc list does not.
        fixed = Fixed {
            action: ContentAction::Allow,
            tag: true,
            partner_mail: false,
            calls: AtomicUsize::new(0),
        };
        let gw = builder().inspector(Arc::new(fixed)).build().unwrap();
        let plan = gw.outbound(&directory(), Outgoing::new(&env, MSG)).await;
        match find(&plan, "someone@mail.example") {
            Disposition::Deliver { message, .. } => {
                let text = String::from_utf8_lossy(message);
                assert!(
                    text.starts_with("Postern-DLP: ssn x1 Injected: yes\r\n"),
                    "{text}"
                );
                assert!(!text.contains("\nInjected:"), "{text}");
                assert!(!text.contains("secret@mail.example"), "{text}");
            }
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test]
    async fn an_added_backend_replaces_the_one_of_its_standard() {
        let gw = builder()
            .backend(Arc::new(postern_smime::SmimeEnvelope::new()))
            .backend(Arc::new(postern_openpgp::OpenPgpEnvelope::new()))
            .without_inspection()
            .build()
            .unwrap();
        // Both standards still there, once each.
        let mut standards: Vec<String> = gw
            .backends()
            .iter()
            .map(|b| b.standard().to_string())
            .collect();
        standards.sort();
        assert_eq!(standards, ["openpgp", "smime"]);
    }

    /// The front door is safe by default: a card number to an outside address does not
    /// leave in clear from `Gateway::builder().build()`.
    #[cfg(feature = "dlp")]
    #[tokio::test]
    async fn the_default_gateway_inspects_what_leaves_in_clear() {
        let gw = builder().build().unwrap();
        let env = envelope(&["someone@mail.example"]);
        let card =
            b"From: dr@clinic.example\r\nSubject: x\r\n\r\nCard 4111 1111 1111 1111 exp 12/29\r\n";
        let plan = gw.outbound(&directory(), Outgoing::new(&env, card)).await;
        assert!(
            matches!(
                find(&plan, "someone@mail.example"),
                Disposition::Quarantine {
                    reason: QuarantineReason::Content { summary: Some(_) },
                    ..
                }
            ),
            "{:?}",
            plan.dispositions
        );
        // Off only by name.
        let off = builder().without_inspection().build().unwrap();
        let plan = off.outbound(&directory(), Outgoing::new(&env, card)).await;
        assert!(matches!(
            find(&plan, "someone@mail.example"),
            Disposition::Deliver { sealed: None, .. }
        ));
    }

    /// Without the built-in DLP compiled in, a gateway nobody told about inspection is not
    /// built at all (rather than built without it).
    #[cfg(not(feature = "dlp"))]
    #[test]
    fn without_the_dlp_feature_inspection_must_be_named() {
        let got = builder()
            .backend(Arc::new(postern_smime::SmimeEnvelope::new()))
            .build();
        assert_eq!(got.err(), Some(BuildError::NoInspector));
    }

    /// A partner naming a key source the gateway has no store for is told at the check (a
    /// warning: such mail fails closed), and not once the store is registered.
    /// A published-key source that counts its lookups and answers with Bob's OpenPGP key.
    #[derive(Debug)]
    struct CountingStore {
        asked: AtomicUsize,
        key: Vec<u8>,
        /// Answers "unavailable", as a source that is down.
        down: bool,
    }

    #[async_trait::async_trait]
    impl KeyStore for CountingStore {
        async fn recipient_certificates(
            &self,
            standard: Standard,
            _: &Address,
        ) -> Result<Vec<Vec<u8>>, postern_core::Error> {
            self.asked.fetch_add(1, Ordering::SeqCst);
            if self.down {
                return Err(postern_core::Error::Unavailable(
                    "the source is down".into(),
                ));
            }
            Ok(match standard {
                Standard::OpenPgp => vec![self.key.clone()],
                _ => Vec::new(),
            })
        }

        async fn own_credentials(
            &self,
            _: Standard,
            _: &postern_core::Domain,
        ) -> Result<Vec<postern_core::Credential>, postern_core::Error> {
            Ok(Vec::new())
        }
    }

    fn example_data(file: &str) -> Vec<u8> {
        std::fs::read(format!(
            "{}/../../examples/data/{file}",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap()
    }

    /// A gateway whose only key source is the counting store, and its directory (the
    /// `directory()` one: a required partner whose keys are published, a TLS-required one).
    fn discovering(down: bool) -> (Gateway, Arc<CountingStore>, CheckedDirectory) {
        let store = Arc::new(CountingStore {
            asked: AtomicUsize::new(0),
            key: example_data("bob.pub.asc"),
            down,
        });
        let gw = builder()
            .without_inspection()
            .key_store(KeySource::Wkd, store.clone())
            .build()
            .unwrap();
        let dir = gw.check(directory().into_inner()).unwrap();
        (gw, store, dir)
    }

    fn kinds(plan: &Plan) -> Vec<(String, Vec<String>)> {
        let mut k: Vec<(String, Vec<String>)> = plan
            .dispositions
            .iter()
            .map(|d| {
                let kind = match d {
                    Disposition::Deliver { sealed, .. } => format!("deliver {sealed:?}"),
                    Disposition::Hold { reason, .. } => format!("hold {reason}"),
                    Disposition::Bounce { reason, .. } => format!("bounce {reason}"),
                    other => format!("{other:?}").chars().take(12).collect(),
                };
                (kind, d.recipients().iter().map(|r| r.to_string()).collect())
            })
            .collect();
        k.sort();
        k
    }

    /// The split API: the I/O half asks the key source (once per recipient), the CPU half
    /// asks nothing and seals to what was found — Bob's secret key opens the copy — and the
    /// plan is the all-in-one call's.
    #[test]
    fn the_cpu_half_seals_with_what_the_io_half_found_and_looks_nothing_up() {
        let (gw, store, dir) = discovering(false);
        let env = envelope(&[
            "results@lab.example",
            "x@tls.example",
            "nurse@clinic.example",
            "other@lab.example",
        ]);
        let keys = postern_core::block_on(gw.look_up(&dir, &env));
        assert_eq!(
            store.asked.load(Ordering::SeqCst),
            2,
            "one lookup per partner recipient"
        );
        assert_eq!(keys.len(), 1, "one partner group, one standard: {keys:?}");
        let plan = gw.outbound_with(&dir, Outgoing::new(&env, MSG), &keys);
        assert_eq!(
            store.asked.load(Ordering::SeqCst),
            2,
            "the CPU half looked keys up"
        );
        let Disposition::Deliver {
            recipients,
            message,
            sealed: Some(Standard::OpenPgp),
            ..
        } = find(&plan, "results@lab.example")
        else {
            panic!("not sealed: {plan:?}")
        };
        assert_eq!(recipients.len(), 2);
        let bob = example_data("bob.sec.asc");
        let creds = [postern_core::Credential::with_secret(
            Standard::OpenPgp,
            bob.clone(),
            bob,
        )];
        let policy = Policy::default();
        let view = postern_core::MessageView::parse(message).unwrap();
        let opened = postern_core::block_on(
            postern_openpgp::OpenPgpEnvelope::new()
                .open(&view, &postern_core::OpenRequest::new(&creds, &policy)),
        )
        .unwrap();
        assert!(opened.message.ends_with(b"SSN 078-05-1120\r\n"));
        let all = postern_core::block_on(gw.outbound(&dir, Outgoing::new(&env, MSG)));
        assert_eq!(kinds(&plan), kinds(&all));
        assert_eq!(kinds(&plan).len(), 3, "{plan:?}");
    }

    /// Keys looked up for one directory are not used with another (reloaded since: its
    /// partner at the same place may be someone else), nor for other recipients: the copy
    /// waits for a fresh lookup, and nothing is sealed.
    #[test]
    fn keys_looked_up_for_another_directory_or_other_recipients_are_not_used() {
        let (gw, store, dir) = discovering(false);
        let env = envelope(&["results@lab.example"]);
        let keys = postern_core::block_on(gw.look_up(&dir, &env));
        let reloaded = gw.check(dir.clone().into_inner()).unwrap();
        let other = envelope(&["results@lab.example", "other@lab.example"]);
        for (d, e) in [(&reloaded, &env), (&dir, &other)] {
            let plan = gw.outbound_with(d, Outgoing::new(e, MSG), &keys);
            assert!(
                plan.dispositions.iter().all(
                    |d| matches!(d, Disposition::Hold { reason, .. } if reason.is_temporary())
                ),
                "{plan:?}"
            );
        }
        // The same directory (a clone of it too) and the same recipients: sealed.
        let plan = gw.outbound_with(&dir.clone(), Outgoing::new(&env, MSG), &keys);
        assert!(matches!(
            plan.dispositions[..],
            [Disposition::Deliver {
                sealed: Some(Standard::OpenPgp),
                ..
            }]
        ));
        assert_eq!(store.asked.load(Ordering::SeqCst), 1);
    }

    /// A source that is down is found out in the I/O half, and the CPU half holds the mail
    /// for it as the all-in-one call does (a required partner never gets plaintext).
    #[test]
    fn a_source_down_at_lookup_holds_the_mail() {
        let (gw, store, dir) = discovering(true);
        let env = envelope(&["results@lab.example", "someone@mail.example"]);
        let keys = postern_core::block_on(gw.look_up(&dir, &env));
        let plan = gw.outbound_with(&dir, Outgoing::new(&env, MSG), &keys);
        assert_eq!(store.asked.load(Ordering::SeqCst), 1);
        let all = postern_core::block_on(gw.outbound(&dir, Outgoing::new(&env, MSG)));
        assert_eq!(kinds(&plan), kinds(&all));
        assert!(
            matches!(find(&plan, "results@lab.example"), Disposition::Hold { .. }),
            "{plan:?}"
        );
    }

    #[test]
    fn a_key_source_without_a_store_is_a_warning() {
        let mut p = crate::Partner::new(
            crate::DomainPattern::Exact(postern_core::Domain::new("lab.test").unwrap()),
            crate::PartnerPolicy::Portal,
            vec![postern_core::Standard::OpenPgp],
        );
        p.key_sources.push(crate::KeySource::Wkd);
        let mut dir = Directory::default();
        dir.our
            .domains
            .push(postern_core::Domain::new("clinic.test").unwrap());
        dir.partners.push(p);
        let without = builder().without_inspection().build().unwrap();
        let checked = without.check(dir.clone()).unwrap();
        let w: Vec<String> = checked.warnings().iter().map(|f| f.to_string()).collect();
        assert!(
            w.iter()
                .any(|f| f.contains("lab.test") && f.contains("\"wkd\"")),
            "{w:?}"
        );
        let with = builder()
            .without_inspection()
            .key_store(
                crate::KeySource::Wkd,
                Arc::new(postern_core::MemoryKeyStore::new()),
            )
            .build()
            .unwrap();
        assert!(with.check(dir).unwrap().warnings().is_empty());
    }

    /// A key loader for a default backend that was replaced is refused, not ignored.
    #[cfg(feature = "smime")]
    #[test]
    fn an_unused_key_loader_is_refused() {
        #[derive(Debug)]
        struct NoKeys;
        impl postern_smime::KeyLoader for NoKeys {
            fn load(
                &self,
                _: &postern_core::Credential,
            ) -> Result<Arc<postern_smime::Identity>, postern_core::Error> {
                Err(postern_core::Error::InvalidRequest("none".into()))
            }
        }
        let got = builder()
            .key_loader(Arc::new(NoKeys))
            .backends(vec![Arc::new(postern_openpgp::OpenPgpEnvelope::new())])
            .build();
        assert_eq!(got.err(), Some(BuildError::KeyLoaderUnused));
        let none = builder().backends(Vec::new()).build();
        assert_eq!(none.err(), Some(BuildError::NoBackend));
    }
}
