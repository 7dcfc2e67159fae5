//! The outbound decision: for one message, per group of recipients, what happens.
//!
//! Fail closed: a `required` partner only ever gets a `Deliver` whose message was sealed by a
//! backend (or that the user had already encrypted end to end). Any failure — no certificate,
//! an unusable one, a backend error — becomes `Hold` (temporary) or `Bounce` (permanent).

use postern_core::{EnhancedStatus, HoldCode};
use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use postern_core::{
    Address, ContentAction, Envelope, Error, KeyStore, MessageView, Policy, Revocation,
    RevocationChecker, RevocationPolicy, SealRequest, SecureEnvelope, SmtpReply, Standard,
};

use crate::lookups::{LookedUp, Lookups};
use crate::{CheckedDirectory, Directory, KeySource, Partner, PartnerPolicy};

/// What happens to one group of recipients.
///
/// Exhaustive on purpose: a fail-closed decision has no "unknown" case, and a caller that
/// matches every variant cannot deliver something it does not understand.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Disposition {
    /// Send `message` to `recipients` now.
    Deliver {
        /// Envelope recipients of this copy (and only these: Bcc recipients never share a copy
        /// with anyone they were hidden from).
        recipients: Vec<Address>,
        /// The message to send.
        message: Vec<u8>,
        /// The standard that sealed it; `None` for plain (or user-encrypted pass-through).
        sealed: Option<Standard>,
        /// Deliver only over verified TLS.
        tls_required: bool,
    },
    /// Keep it queued and retry later (temporary failure).
    Hold {
        /// Who waits.
        recipients: Vec<Address>,
        /// Why (its text is safe to log; [`Reason::smtp_reply`] gives the 4xx status).
        reason: Reason,
    },
    /// Return it to the sender (permanent failure).
    Bounce {
        /// Who will not get it.
        recipients: Vec<Address>,
        /// Why, for the DSN ([`Reason::smtp_reply`] gives its status code).
        reason: Reason,
    },
    /// Keep it for review (content inspection said so).
    Quarantine {
        /// Who would have got it.
        recipients: Vec<Address>,
        /// Why.
        reason: QuarantineReason,
    },
    /// Store it for pickup on the portal and notify.
    Portal {
        /// Who is notified.
        recipients: Vec<Address>,
        /// The copy to store (subject trigger and Bcc removed, as any copy that leaves).
        message: Vec<u8>,
        /// How many days the portal keeps it: the partner's `portal_days`, or `None` for the
        /// portal's own default.
        days: Option<u32>,
    },
    /// Recipients in one of our own domains: the message goes back to our mail server as it
    /// came (no copy is made here; the caller holds the bytes). Only
    /// [`crate::Gateway::outbound`] gives this; [`Router::outbound`] is for mail leaving.
    Local {
        /// Our own recipients.
        recipients: Vec<Address>,
    },
}

impl Disposition {
    /// The recipients this decision is for.
    pub fn recipients(&self) -> &[Address] {
        match self {
            Disposition::Deliver { recipients, .. }
            | Disposition::Hold { recipients, .. }
            | Disposition::Bounce { recipients, .. }
            | Disposition::Quarantine { recipients, .. }
            | Disposition::Portal { recipients, .. }
            | Disposition::Local { recipients } => recipients,
        }
    }
}

/// Why a message is held for review: a type, so a caller decides by the case and never by
/// reading text. [`fmt::Display`] gives the sentence for logs and the review desk (safe to
/// show: detectors and counts, never values); [`QuarantineReason::code`] a stable word for
/// storage and metrics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QuarantineReason {
    /// Content inspection holds a copy that would leave in clear.
    Content {
        /// What inspection found (the inspection summary), when it ran.
        summary: Option<String>,
    },
    /// A plain copy to a partner (TLS-required, or preferred without a key), held because the
    /// content policy inspects partner mail too.
    PlainToPartner {
        /// What inspection found.
        summary: Option<String>,
    },
    /// Inbound data with no header section.
    NotAMessage,
    /// An inbound protected message that could not be opened (the inbound policy says hold).
    CannotOpen {
        /// The standard it was recognised as.
        standard: Standard,
        /// The backend's error (safe to log: no content).
        error: String,
    },
    /// AES-CBC encrypted without a valid signature: the content may have been altered in
    /// transit (EFAIL).
    UnsignedCbc,
    /// Plaintext from a partner that must encrypt.
    PlaintextFromRequired,
    /// A malware scanner found something (inbound after opening, outbound before sealing).
    Malware {
        /// The scanner (`clamd`).
        scanner: String,
        /// Its name for what it found.
        signature: String,
    },
    /// The malware scanner cannot scan it (over its size limit): held rather than retried or
    /// passed unscanned.
    Unscannable {
        /// The scanner.
        scanner: String,
        /// What it said.
        why: String,
    },
    /// A protected message whose content is a wrapped message (`message/rfc822`) that cannot
    /// be read as one: delivered neither as the wrapper nor as what is inside.
    BadWrapper(crate::wrapped::BadWrapper),
    /// Mail from a Direct partner that breaks the Direct rules.
    Direct(crate::DirectFault),
}

impl QuarantineReason {
    /// Its kind (what storage and metrics keep; [`HoldCode::as_str`] is the stable word).
    pub fn code(&self) -> HoldCode {
        match self {
            QuarantineReason::Content { .. } => HoldCode::Content,
            QuarantineReason::PlainToPartner { .. } => HoldCode::PlainToPartner,
            QuarantineReason::NotAMessage => HoldCode::NotAMessage,
            QuarantineReason::CannotOpen { .. } => HoldCode::CannotOpen,
            QuarantineReason::UnsignedCbc => HoldCode::UnsignedCbc,
            QuarantineReason::PlaintextFromRequired => HoldCode::PlaintextFromRequired,
            QuarantineReason::Malware { .. } => HoldCode::Malware,
            QuarantineReason::Unscannable { .. } => HoldCode::Unscannable,
            QuarantineReason::BadWrapper(_) => HoldCode::BadWrapper,
            QuarantineReason::Direct(_) => HoldCode::DirectRefused,
        }
    }

    /// The same reason with what content inspection found (a content hold only).
    pub fn with_summary(self, found: Option<&str>) -> Self {
        let found = found.map(str::to_string);
        match self {
            QuarantineReason::Content { summary } => QuarantineReason::Content {
                summary: found.or(summary),
            },
            QuarantineReason::PlainToPartner { summary } => QuarantineReason::PlainToPartner {
                summary: found.or(summary),
            },
            other => other,
        }
    }
}

impl fmt::Display for QuarantineReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let content =
            |f: &mut fmt::Formatter<'_>, what: &str, summary: &Option<String>| match summary {
                Some(s) => write!(f, "content policy: {what} ({s})"),
                None => f.write_str(what),
            };
        match self {
            QuarantineReason::Content { summary } => content(
                f,
                "content inspection holds a copy that would leave in clear",
                summary,
            ),
            QuarantineReason::PlainToPartner { summary } => {
                content(f, "plain copy to a partner", summary)
            }
            QuarantineReason::NotAMessage => f.write_str("not a message (no header section)"),
            QuarantineReason::CannotOpen { standard, error } => {
                write!(f, "cannot open {standard} message: {error}")
            }
            QuarantineReason::UnsignedCbc => f.write_str(
                "AES-CBC encrypted without a valid signature: the content may have been altered \
                 in transit (EFAIL)",
            ),
            QuarantineReason::PlaintextFromRequired => {
                f.write_str("plaintext from a partner that must encrypt")
            }
            QuarantineReason::Malware { scanner, signature } => {
                write!(f, "malware: {scanner} found {signature}")
            }
            QuarantineReason::Unscannable { scanner, why } => {
                write!(
                    f,
                    "not scanned for malware: {scanner} cannot scan it ({why})"
                )
            }
            QuarantineReason::BadWrapper(why) => write!(f, "{why}"),
            QuarantineReason::Direct(fault) => write!(f, "{fault}"),
        }
    }
}

/// Why recipients wait ([`Disposition::Hold`]) or will not get a message
/// ([`Disposition::Bounce`]): the typed error behind it, so the SMTP reply and the DSN status
/// come from [`Error::smtp_reply`] rather than from reading text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Reason {
    /// Sealing with one standard failed: a backend, a key source or a revocation check.
    #[error("{standard}: {error}")]
    Sealing {
        /// The standard that was tried.
        standard: Standard,
        /// What went wrong.
        error: Error,
    },
    /// A partner that must get ciphertext could not be sealed for with any of its standards.
    #[error("{partner} requires encryption and it failed: {}", failures_text(.failures))]
    EncryptionFailed {
        /// The partner entry (domain pattern).
        partner: String,
        /// Each standard tried, with its (permanent) error; empty when none is configured.
        failures: Vec<(Standard, Error)>,
    },
    /// The message itself cannot be parsed.
    #[error("{0}")]
    Malformed(Error),
    /// Content inspection refused the copy that would leave in clear.
    #[error("content policy: this message may not be sent unencrypted{}", summary_text(.summary))]
    ContentPolicy {
        /// What inspection found (detectors and counts, never values).
        summary: Option<String>,
    },
    /// Mail from the internet for a recipient outside our domains: never relayed.
    #[error("relaying denied: not one of our domains")]
    RelayDenied,
    /// Direct mail for a recipient its To and Cc fields do not name (the signed header fields
    /// must agree with the envelope).
    #[error("Direct: the recipient is not in the message's To or Cc (routing headers do not match the envelope)")]
    NotInRoutingHeaders,
    /// The malware scanner could not answer, and the policy says wait for it.
    #[error("the malware scanner ({scanner}) is unavailable: {why}")]
    ScannerUnavailable {
        /// The scanner.
        scanner: String,
        /// Why (safe to log).
        why: String,
    },
    /// The embedder's own reason (a hook of its own); `temporary` decides 4xx or 5xx.
    #[error("{text}")]
    Other {
        /// Safe to log and to send.
        text: String,
        /// Whether retrying later may succeed.
        temporary: bool,
    },
}

fn failures_text(failures: &[(Standard, Error)]) -> String {
    if failures.is_empty() {
        return "no standard configured".into();
    }
    failures
        .iter()
        .map(|(s, e)| format!("{s}: {e}"))
        .collect::<Vec<_>>()
        .join("; ")
}

fn summary_text(summary: &Option<String>) -> String {
    summary
        .as_ref()
        .map(|s| format!(" ({s})"))
        .unwrap_or_default()
}

impl Reason {
    /// The error behind it, when there is exactly one.
    pub fn error(&self) -> Option<&Error> {
        match self {
            Reason::Sealing { error, .. } | Reason::Malformed(error) => Some(error),
            Reason::EncryptionFailed { failures, .. } => match failures.as_slice() {
                [(_, e)] => Some(e),
                _ => None,
            },
            Reason::ContentPolicy { .. }
            | Reason::RelayDenied
            | Reason::NotInRoutingHeaders
            | Reason::ScannerUnavailable { .. }
            | Reason::Other { .. } => None,
        }
    }

    /// True when retrying later may succeed (the message waits), false when it never will.
    pub fn is_temporary(&self) -> bool {
        match self {
            Reason::Sealing { error, .. } | Reason::Malformed(error) => error.is_temporary(),
            Reason::EncryptionFailed { .. }
            | Reason::ContentPolicy { .. }
            | Reason::RelayDenied
            | Reason::NotInRoutingHeaders => false,
            Reason::ScannerUnavailable { .. } => true,
            Reason::Other { temporary, .. } => *temporary,
        }
    }

    /// The SMTP reply (code and RFC 3463 status) for this reason: the error's own where there
    /// is one; `5.7.1` (not authorised) for a content refusal.
    pub fn smtp_reply(&self) -> SmtpReply {
        let text = self.to_string();
        match self {
            Reason::Sealing { error, .. } | Reason::Malformed(error) => SmtpReply {
                text,
                ..error.smtp_reply()
            },
            // Every failure was permanent; the first names the class (5.7.5 for keys and
            // algorithms, 5.6.0 for a message that cannot be parsed).
            Reason::EncryptionFailed { failures, .. } => SmtpReply {
                text,
                ..failures
                    .first()
                    .map(|(_, e)| e.smtp_reply())
                    .unwrap_or(SmtpReply {
                        code: 554,
                        enhanced: EnhancedStatus::CRYPTO,
                        text: String::new(),
                    })
            },
            Reason::ContentPolicy { .. } | Reason::RelayDenied | Reason::NotInRoutingHeaders => {
                SmtpReply {
                    code: 550,
                    enhanced: EnhancedStatus::REFUSED,
                    text,
                }
            }
            Reason::ScannerUnavailable { .. } => SmtpReply {
                code: 451,
                enhanced: EnhancedStatus::TEMPORARY_SYSTEM,
                text,
            },
            Reason::Other { temporary, .. } => SmtpReply {
                code: if *temporary { 451 } else { 554 },
                enhanced: if *temporary {
                    EnhancedStatus::TEMPORARY_SYSTEM
                } else {
                    EnhancedStatus::PERMANENT_SYSTEM
                },
                text,
            },
        }
    }
}

/// Routes messages by the directory, through the backends it was given.
#[derive(Debug, Clone)]
pub struct Router {
    backends: Vec<Arc<dyn SecureEnvelope>>,
    /// Subject marker that forces protection (case-insensitive; removed before sending).
    pub subject_trigger: String,
    /// The algorithm policy for sealing.
    pub policy: Policy,
    /// Asked before sealing to a partner certificate, as the partner's `revocation` says
    /// (`None`: not checked).
    pub revocation: Option<Arc<dyn RevocationChecker>>,
    /// Where partners with `key_sources` publish their keys, one store per kind of source (a
    /// source without a store is not looked up, so such a partner has only its file's keys).
    pub key_stores: Vec<(KeySource, Arc<dyn KeyStore>)>,
    /// The time certificates are checked at (the system's unless an embedder or the command
    /// line's `--at` sets another).
    pub clock: Arc<dyn postern_core::Clock>,
}

/// Where a recipient belongs: a partner entry (by index) or the clear world.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Group {
    Partner(usize),
    Clear,
}

/// Where sealing gets a partner group's certificates from.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Keys<'a> {
    /// Looked up now, standard by standard until one seals (the all-in-one path).
    Fetch,
    /// Looked up before ([`Router::look_up`]): no I/O at all.
    Found(&'a Lookups),
}

/// What one copy is sealed to.
#[derive(Clone, Copy)]
struct Sealing<'a> {
    partner: &'a Partner,
    standard: Standard,
    certs: &'a [Vec<u8>],
}

/// One partner entry's recipients of a message, and where their keys come from.
struct PartnerGroup<'a> {
    /// The partner's index in the directory.
    index: usize,
    recipients: Vec<Address>,
    keys: Keys<'a>,
}

impl Router {
    /// A router over these backends (one per standard it should use).
    pub fn new(backends: Vec<Arc<dyn SecureEnvelope>>) -> Self {
        Router {
            backends,
            subject_trigger: "[secure]".into(),
            policy: Policy::default(),
            revocation: None,
            key_stores: Vec::new(),
            clock: Arc::new(postern_core::SystemClock),
        }
    }

    /// The backends it seals with.
    pub fn backends(&self) -> &[Arc<dyn SecureEnvelope>] {
        &self.backends
    }

    /// Looks partner keys up in `store` for partners whose entry names `source`.
    pub fn with_key_store(mut self, source: KeySource, store: Arc<dyn KeyStore>) -> Self {
        self.key_stores.push((source, store));
        self
    }

    /// The certificates to seal to for these recipients: the file's, and — for a partner that
    /// publishes keys — each recipient's published key. A source that is down is temporary
    /// (held, retried); a recipient with no key anywhere makes the copy unusable for them, so it
    /// is refused rather than sealed to keys they do not hold.
    async fn recipient_certificates(
        &self,
        dir: &Directory,
        partner: &Partner,
        standard: Standard,
        recipients: &[Address],
    ) -> Result<Vec<Vec<u8>>, Error> {
        let backend = self.backends.iter().find(|b| b.standard() == standard);
        // Only certificates that may encrypt are recipients (a single-use pair publishes one
        // for signing only): the seal fails only when none of them may.
        let may_encrypt = |c: &Vec<u8>| backend.is_none_or(|b| b.may_encrypt_to(c));
        let configured = partner.certificates_for(standard);
        let mut certs: Vec<Vec<u8>> = configured
            .iter()
            .filter(|c| may_encrypt(c))
            .cloned()
            .collect();
        if certs.is_empty() && !configured.is_empty() && !partner.discovers(standard) {
            return Err(Error::NoUsableKey {
                recipient: partner.pattern.to_string(),
                reason: "none of its certificates may encrypt (key usage for signing only)".into(),
            });
        }
        if !partner.discovers(standard) {
            return Ok(certs);
        }
        // The partner's sources, in the order its entry lists them.
        let stores: Vec<&(KeySource, Arc<dyn KeyStore>)> = partner
            .key_sources
            .iter()
            .filter_map(|s| self.key_stores.iter().find(|(k, _)| k == s))
            .collect();
        let gateway_key = !certs.is_empty();
        // Found S/MIME certificates (DNS, LDAP, harvest) are candidates until they chain to
        // our or the partner's anchors: a spoofed answer must not become a recipient.
        let mut anchors = dir.our.trust_anchors.clone();
        anchors.extend(partner.trust_anchors.iter().cloned());
        let now = self.clock.now();
        for r in recipients {
            // The first source with a usable key wins; one that is down holds the mail unless
            // a later one has the key.
            let mut found = Vec::new();
            let mut down: Option<Error> = None;
            for (source, store) in stores.iter().copied() {
                match store.recipient_certificates(standard, r).await {
                    Ok(mut f) => {
                        // DNSSEC-validated DANE-EE records are their own proof.
                        if standard == Standard::Smime && *source != KeySource::Dane {
                            // No backend for the standard: nothing is anchored (fail closed).
                            f.retain(|c| {
                                backend.is_some_and(|b| {
                                    b.chains_to_anchor(c, &anchors, &self.policy, now)
                                })
                            });
                        }
                        f.retain(|c| may_encrypt(c));
                        if !f.is_empty() {
                            found = f;
                            break;
                        }
                    }
                    Err(e) => down = Some(e),
                }
            }
            if let (true, Some(e)) = (found.is_empty(), down) {
                return Err(e);
            }
            if found.is_empty() && !gateway_key {
                return Err(Error::NoUsableKey {
                    recipient: r.to_string(),
                    reason: if standard == Standard::Smime {
                        "no S/MIME certificate found for it that chains to our trust anchors".into()
                    } else {
                        format!("no {standard} key published for it")
                    },
                });
            }
            for c in found {
                // A domain's gateway certificate comes back for every recipient: once is enough.
                if !certs.contains(&c) {
                    certs.push(c);
                }
            }
        }
        Ok(certs)
    }

    /// Checks partner certificates for revocation with `checker` before sealing.
    pub fn with_revocation(mut self, checker: Arc<dyn RevocationChecker>) -> Self {
        self.revocation = Some(checker);
        self
    }

    /// Refuses a partner certificate its issuer revoked, and — under `revocation = "required"`
    /// — one whose status cannot be shown. A revoked certificate of a `required` partner holds
    /// the mail (the directory may get a new certificate) rather than bouncing it at once.
    async fn check_revocation(
        &self,
        dir: &Directory,
        partner: &Partner,
        standard: Standard,
        certs: &[Vec<u8>],
    ) -> Result<(), Error> {
        let Some(checker) = &self.revocation else {
            return Ok(());
        };
        let required = partner.revocation == RevocationPolicy::Required;
        if partner.revocation == RevocationPolicy::Off {
            return Ok(());
        }
        let mut issuers = dir.our.trust_anchors.clone();
        issuers.extend(partner.trust_anchors.iter().cloned());
        for entry in certs {
            for (name, answer) in checker.check(standard, entry, &issuers).await {
                match answer {
                    Revocation::Good => {}
                    Revocation::Revoked(why) => {
                        let reason = format!("partner certificate {name} {why}");
                        return Err(if partner.policy == PartnerPolicy::Required {
                            Error::Unavailable(reason)
                        } else {
                            Error::NoUsableKey {
                                recipient: partner.pattern.to_string(),
                                reason,
                            }
                        });
                    }
                    Revocation::Unknown(why) if required => {
                        return Err(Error::Unavailable(format!(
                            "revocation status of partner certificate {name} unknown: {why}"
                        )))
                    }
                    Revocation::NoSource if required => {
                        return Err(Error::NoUsableKey {
                            recipient: partner.pattern.to_string(),
                            reason: format!(
                                "partner certificate {name} names no OCSP responder or CRL, and revocation = \
                                 \"required\""
                            ),
                        })
                    }
                    Revocation::Unknown(_) | Revocation::NoSource => {}
                }
            }
        }
        Ok(())
    }

    fn backend(&self, standard: Standard) -> Option<&Arc<dyn SecureEnvelope>> {
        self.backends.iter().find(|b| b.standard() == standard)
    }

    /// Decides for every recipient of one outgoing message. `content` is the verdict of content
    /// inspection for the copy that would leave in clear (`None`: not inspected).
    ///
    /// The directory must be checked ([`CheckedDirectory`]): a certificate it names is sealed
    /// to only after validation said it belongs to that partner.
    pub async fn outbound(
        &self,
        dir: &CheckedDirectory,
        envelope: &Envelope,
        raw: &[u8],
        content: Option<ContentAction>,
    ) -> Vec<Disposition> {
        self.decide(dir, envelope, raw, content, Keys::Fetch).await
    }

    /// The I/O half of [`Router::outbound`]: every key the partner groups of `envelope` may be
    /// sealed to, from the directory and the partners' key sources, revocation checked. Every
    /// standard a partner's entry lists is looked up (the all-in-one path stops at the first
    /// that seals), so a copy that one standard cannot seal still tries the next.
    pub async fn look_up(&self, dir: &CheckedDirectory, envelope: &Envelope) -> Lookups {
        let mut groups: BTreeMap<usize, Vec<Address>> = BTreeMap::new();
        for r in &envelope.rcpt_to {
            if let Some(i) = dir.partner_index_for(r.domain()) {
                groups.entry(i).or_default().push(r.clone());
            }
        }
        let mut entries = Vec::new();
        for (index, recipients) in groups {
            let partner = &dir.partners[index];
            // Portal and TLS-required partners are never sealed to (a subject trigger turns a
            // preferred partner into a required one, never these); a Direct HISP always is.
            if partner.profile != crate::PartnerProfile::Direct
                && !matches!(
                    partner.policy,
                    PartnerPolicy::Required | PartnerPolicy::Preferred
                )
            {
                continue;
            }
            for &standard in &partner.standards {
                if self.backend(standard).is_none() {
                    continue;
                }
                let certificates = self
                    .partner_certificates(dir, partner, standard, &recipients)
                    .await;
                entries.push(LookedUp {
                    partner: index,
                    standard,
                    recipients: recipients.clone(),
                    certificates,
                });
            }
        }
        Lookups {
            directory: dir.generation(),
            entries,
        }
    }

    /// The CPU half of [`Router::outbound`]: the same decision, sealing with the keys
    /// `lookups` holds ([`Router::look_up`] for this directory and envelope) and doing no I/O,
    /// on the calling thread. A partner group the lookups do not cover (another directory,
    /// other recipients) waits, as when a key source is down.
    pub fn outbound_with(
        &self,
        dir: &CheckedDirectory,
        envelope: &Envelope,
        raw: &[u8],
        content: Option<ContentAction>,
        lookups: &Lookups,
    ) -> Vec<Disposition> {
        postern_core::block_on(self.decide(dir, envelope, raw, content, Keys::Found(lookups)))
    }

    pub(crate) async fn decide(
        &self,
        dir: &CheckedDirectory,
        envelope: &Envelope,
        raw: &[u8],
        content: Option<ContentAction>,
        keys: Keys<'_>,
    ) -> Vec<Disposition> {
        let view = match MessageView::parse(raw) {
            Ok(v) => v,
            Err(e) => {
                return vec![Disposition::Bounce {
                    recipients: envelope.rcpt_to.clone(),
                    reason: Reason::Malformed(e),
                }]
            }
        };
        // The user already encrypted it end to end: it passes as the ciphertext that was proven
        // (not wrapped twice). Proven by structure through the backends — a label over a plain
        // body is sealed like any other message. Signed-only mail is still readable, so it is
        // sealed too.
        let user_encrypted = self.backends.iter().find_map(|b| b.proven_encrypted(&view));
        // Both borrow the message unless they change it.
        let (triggered, forced) = strip_trigger(&view, &self.subject_trigger);
        let message = strip_bcc(&triggered);
        let mut groups: BTreeMap<Group, Vec<Address>> = BTreeMap::new();
        for r in &envelope.rcpt_to {
            let g = match dir.partner_index_for(r.domain()) {
                Some(i) => Group::Partner(i),
                None => Group::Clear,
            };
            groups.entry(g).or_default().push(r.clone());
        }
        let mut out = Vec::new();
        for (group, recipients) in groups {
            let d = match group {
                Group::Clear => clear(recipients, &message, content, forced),
                Group::Partner(index) => {
                    if let Some(ciphertext) = &user_encrypted {
                        // Untouched inside; the outer Bcc field still goes (it would leak the
                        // Bcc list to the partner).
                        Disposition::Deliver {
                            recipients,
                            message: strip_bcc(ciphertext).into_owned(),
                            sealed: None,
                            tls_required: false,
                        }
                    } else {
                        // A message with the null sender is a bounce or a receipt: its text is
                        // largely what some stranger sent us, so our domain key never signs it
                        // (it would vouch for an attacker's words). It is still sealed. Others
                        // are signed for their author: the From address, else the envelope's.
                        let author = envelope.mail_from.as_ref().map(|m| {
                            crate::addresses::single_from(&view).unwrap_or_else(|| m.clone())
                        });
                        let group = PartnerGroup {
                            index,
                            recipients,
                            keys,
                        };
                        self.for_partner(dir, group, &message, forced, author.as_ref())
                            .await
                    }
                }
            };
            out.push(d);
        }
        out
    }

    async fn for_partner(
        &self,
        dir: &CheckedDirectory,
        group: PartnerGroup<'_>,
        message: &[u8],
        forced: bool,
        author: Option<&Address>,
    ) -> Disposition {
        let partner = &dir.partners[group.index];
        let recipients = group.recipients.clone();
        let policy = match (partner.policy, forced) {
            // A Direct HISP never gets plaintext, whatever its entry says (check-config
            // refuses any other policy for it; a directory built in Rust is held to it here).
            _ if partner.profile == crate::PartnerProfile::Direct => PartnerPolicy::Required,
            // The user asked for protection: a preferred partner must not get plaintext.
            (PartnerPolicy::Preferred, true) => PartnerPolicy::Required,
            (p, _) => p,
        };
        match policy {
            PartnerPolicy::Portal => {
                return Disposition::Portal {
                    recipients,
                    message: message.to_vec(),
                    days: partner.portal_days,
                }
            }
            PartnerPolicy::TlsRequired => {
                return Disposition::Deliver {
                    recipients,
                    message: message.to_vec(),
                    sealed: None,
                    tls_required: true,
                }
            }
            PartnerPolicy::Required | PartnerPolicy::Preferred => {}
        }
        let mut temporary: Option<Reason> = None;
        let mut permanent: Vec<(Standard, Error)> = Vec::new();
        for &standard in &partner.standards {
            let sealed = match self.backend(standard) {
                None => Err(Error::UnsupportedAlgorithm(format!(
                    "no {standard} backend configured"
                ))),
                Some(backend) => match self.certificates(dir, &group, standard).await {
                    Ok(certs) => {
                        let to = Sealing {
                            partner,
                            standard,
                            certs: &certs,
                        };
                        self.seal(dir, backend.as_ref(), to, message, author).await
                    }
                    Err(e) => Err(e),
                },
            };
            match sealed {
                Ok(sealed) => {
                    return Disposition::Deliver {
                        recipients,
                        message: sealed,
                        sealed: Some(standard),
                        tls_required: false,
                    }
                }
                Err(error) if error.is_temporary() => {
                    temporary = Some(Reason::Sealing { standard, error })
                }
                Err(error) => permanent.push((standard, error)),
            }
        }
        match (policy, temporary) {
            (PartnerPolicy::Required, Some(reason)) => Disposition::Hold { recipients, reason },
            (PartnerPolicy::Required, None) => Disposition::Bounce {
                recipients,
                reason: Reason::EncryptionFailed {
                    partner: partner.pattern.to_string(),
                    failures: permanent,
                },
            },
            // Preferred: a passing outage is waited out; no usable key means plain over TLS.
            (_, Some(reason)) => Disposition::Hold { recipients, reason },
            (_, None) => Disposition::Deliver {
                recipients,
                message: message.to_vec(),
                sealed: None,
                tls_required: true,
            },
        }
    }

    /// A partner group's certificates in `standard`: looked up now, or taken from what was.
    async fn certificates(
        &self,
        dir: &CheckedDirectory,
        group: &PartnerGroup<'_>,
        standard: Standard,
    ) -> Result<Vec<Vec<u8>>, Error> {
        match group.keys {
            Keys::Fetch => {
                let partner = &dir.partners[group.index];
                self.partner_certificates(dir, partner, standard, &group.recipients)
                    .await
            }
            Keys::Found(found) => {
                found.certificates(dir.generation(), group.index, standard, &group.recipients)
            }
        }
    }

    /// The certificates to seal to for `recipients` of `partner` in `standard` (never empty),
    /// revocation checked: the only part of sealing that may wait on the network.
    async fn partner_certificates(
        &self,
        dir: &Directory,
        partner: &Partner,
        standard: Standard,
        recipients: &[Address],
    ) -> Result<Vec<Vec<u8>>, Error> {
        let certs = self
            .recipient_certificates(dir, partner, standard, recipients)
            .await?;
        if certs.is_empty() {
            return Err(Error::NoUsableKey {
                recipient: partner.pattern.to_string(),
                reason: format!("no {standard} certificate configured"),
            });
        }
        self.check_revocation(dir, partner, standard, &certs)
            .await?;
        Ok(certs)
    }

    async fn seal(
        &self,
        dir: &Directory,
        backend: &dyn SecureEnvelope,
        to: Sealing<'_>,
        message: &[u8],
        author: Option<&Address>,
    ) -> Result<Vec<u8>, Error> {
        let Sealing {
            partner,
            standard,
            certs,
        } = to;
        let signer = match (partner.sign, author) {
            (true, Some(author)) => Some(signing_identity(
                dir,
                backend,
                standard,
                author,
                (
                    self.clock.now(),
                    partner.profile != crate::PartnerProfile::Direct,
                ),
            )?),
            _ => None,
        };
        let (signer, domain_signature) = match signer {
            Some((c, authority)) => (Some(c), authority),
            None => (None, false),
        };
        // A Direct HISP gets the whole message wrapped (its Subject inside only), signed
        // detached: the form both reference implementations read.
        let direct = partner.profile == crate::PartnerProfile::Direct;
        let wrapped;
        let message = if direct {
            wrapped = crate::wrapped::wrap(&MessageView::parse(message)?);
            &wrapped[..]
        } else {
            message
        };
        let view = MessageView::parse(message)?;
        let mut req = SealRequest::encrypt(certs, &self.policy)
            .with_header_protection(partner.header_protection);
        req.now = self.clock.now();
        if let Some(c) = partner.cipher {
            req = req.with_cipher(c);
        }
        if let Some(s) = &signer {
            req = if direct {
                req.signed_detached_by(s)
            } else {
                req.signed_by(s)
            }
            .as_domain_signature(domain_signature);
        }
        backend.seal(&view, &req).await
    }
}

/// The identity our signature on `author`'s message is made with: one of ours that may sign
/// now (key usage, validity), bound to the author's address, else to the author's domain as a
/// whole (an organisation certificate: a dNSName, or an address of that domain; or a domain of
/// ours the directory's `domains` names for the key) — the first in that order. None is a hold ("no signing certificate for the domain"), never a signature by
/// another domain's certificate or by one that may only decrypt.
fn signing_identity(
    dir: &Directory,
    backend: &dyn SecureEnvelope,
    standard: Standard,
    author: &Address,
    (now, prefer_authority): (std::time::SystemTime, bool),
) -> Result<(postern_core::Credential, bool), Error> {
    let signing: Vec<postern_core::Credential> = dir
        .our_credentials(standard)
        .into_iter()
        .filter(|c| backend.may_sign_with(&c.certificate, now))
        .collect();
    let described: Vec<Option<postern_core::CertificateSummary>> = signing
        .iter()
        .map(|c| {
            backend
                .describe_certificates(&c.certificate)
                .ok()?
                .into_iter()
                .find(|s| !s.authority)
        })
        .collect();
    // A backend that cannot say whom a certificate names (describe_certificates gives
    // nothing for any of them) cannot be matched to the author: its first identity that may
    // sign is used, as before this choice existed.
    if described.iter().all(Option::is_none) {
        return signing
            .into_iter()
            .next()
            .map(|c| (c, false))
            .ok_or_else(|| {
                Error::Unavailable(format!(
                    "no {standard} identity of ours may sign (sign = true)"
                ))
            });
    }
    let candidates: Vec<(postern_core::Credential, postern_core::CertificateSummary)> = signing
        .into_iter()
        .zip(described)
        .filter_map(|(c, s)| Some((c, s?)))
        .collect();
    let address = author.to_string().to_ascii_lowercase();
    let domain = author.domain().as_str().to_ascii_lowercase();
    let by_address = candidates
        .iter()
        .position(|(_, s)| s.addresses.iter().any(|a| a.eq_ignore_ascii_case(&address)));
    // The certificate's own names, and the domains of ours the directory says it signs for.
    let by_domain = candidates.iter().position(|(c, s)| {
        s.all_domains()
            .iter()
            .chain(&c.domains)
            .any(|d| d.eq_ignore_ascii_case(&domain))
    });
    // RFC 3183: our domain signing authority (domain-signing-authority@ the author's domain or
    // a parent of it, by name mapping) makes the gateway's signature when there is one — a
    // domain signature, marked as such.
    // The most specific authority wins (one for ward.clinic.test over one for clinic.test), and
    // only an authority of a domain of ours. A Direct HISP binds a signer by the From address
    // or its domain only, which an authority's address is neither: not for Direct mail.
    let authority = prefer_authority
        .then(|| {
            candidates
                .iter()
                .enumerate()
                .filter_map(|(i, (_, s))| {
                    s.addresses
                        .iter()
                        .filter_map(|a| crate::addresses::signing_authority_of(a))
                        .filter(|d| author.domain().is_within(d) && dir.is_ours(d))
                        .map(|d| (i, d.as_str().len()))
                        .max_by_key(|(_, len)| *len)
                })
                .max_by_key(|(_, len)| *len)
                .map(|(i, _)| i)
        })
        .flatten();
    let mut candidates = candidates;
    if let Some(i) = authority {
        return Ok((candidates.swap_remove(i).0, true));
    }
    match by_address.or(by_domain) {
        Some(i) => Ok((candidates.swap_remove(i).0, false)),
        // Held: a certificate for the domain may be added; the mail never goes out signed by
        // another domain's key.
        None => Err(Error::Unavailable(format!(
            "no {standard} signing certificate for {domain} (sign = true)"
        ))),
    }
}

fn clear(
    recipients: Vec<Address>,
    message: &[u8],
    content: Option<ContentAction>,
    forced: bool,
) -> Disposition {
    // Recipients without a partner entry: the portal's default lifetime.
    if forced {
        return Disposition::Portal {
            recipients,
            message: message.to_vec(),
            days: None,
        };
    }
    match content.unwrap_or(ContentAction::Allow) {
        ContentAction::Allow => Disposition::Deliver {
            recipients,
            message: message.to_vec(),
            sealed: None,
            tls_required: false,
        },
        ContentAction::Quarantine => Disposition::Quarantine {
            recipients,
            reason: QuarantineReason::Content { summary: None },
        },
        ContentAction::Portal => Disposition::Portal {
            recipients,
            message: message.to_vec(),
            days: None,
        },
        ContentAction::Block => Disposition::Bounce {
            recipients,
            reason: Reason::ContentPolicy { summary: None },
        },
    }
}

/// Removes the subject trigger (case-insensitive); returns the message and whether it was there.
fn strip_trigger<'a>(view: &MessageView<'a>, trigger: &str) -> (Cow<'a, [u8]>, bool) {
    let raw = view.raw();
    if trigger.is_empty() {
        return (Cow::Borrowed(raw), false);
    }
    let needle = trigger.to_ascii_lowercase();
    for h in view.headers() {
        if !h.name.eq_ignore_ascii_case("subject") {
            continue;
        }
        // Bytes, not a lossy string: the value is written back, and must keep what it had.
        let value = h.raw_value;
        let Some(at) = value
            .windows(needle.len())
            .position(|w| w.eq_ignore_ascii_case(needle.as_bytes()))
        else {
            return (Cow::Borrowed(raw), false);
        };
        let mut new_value = value.get(..at).unwrap_or_default().to_vec();
        let after = value.get(at + needle.len()..).unwrap_or_default();
        // Tidy the space the marker leaves behind.
        if new_value.ends_with(b" ") && after.starts_with(b" ") {
            new_value.pop();
        }
        new_value.extend_from_slice(after);
        let start = h.raw.as_ptr() as usize - raw.as_ptr() as usize;
        let value_start = start + (h.raw.len() - h.raw_value.len());
        let mut out = raw[..value_start].to_vec();
        out.extend_from_slice(&new_value);
        out.extend_from_slice(&raw[start + h.raw.len()..]);
        return (Cow::Owned(out), true);
    }
    (Cow::Borrowed(raw), false)
}

/// Removes Bcc header fields: a Bcc list must never reach any recipient's copy. A message
/// without one is borrowed, not copied.
pub fn strip_bcc(message: &[u8]) -> Cow<'_, [u8]> {
    let Ok(view) = MessageView::parse(message) else {
        return Cow::Borrowed(message);
    };
    let bcc: Vec<_> = view
        .headers()
        .into_iter()
        .filter(|h| h.name.eq_ignore_ascii_case("bcc"))
        .map(|h| {
            let start = h.raw.as_ptr() as usize - message.as_ptr() as usize;
            start..start + h.raw.len()
        })
        .collect();
    if bcc.is_empty() {
        return Cow::Borrowed(message);
    }
    let mut out = Vec::with_capacity(message.len());
    let mut pos = 0;
    for r in bcc {
        out.extend_from_slice(&message[pos..r.start]);
        pos = r.end;
    }
    out.extend_from_slice(&message[pos..]);
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use async_trait::async_trait;
    use postern_core::{Domain, OpenRequest, Opened};
    use proptest::prelude::*;

    #[test]
    fn quarantine_reasons_have_distinct_codes_and_name_what_was_found() {
        let all = [
            QuarantineReason::Content { summary: None },
            QuarantineReason::PlainToPartner { summary: None },
            QuarantineReason::NotAMessage,
            QuarantineReason::CannotOpen {
                standard: Standard::Smime,
                error: "no key".into(),
            },
            QuarantineReason::UnsignedCbc,
            QuarantineReason::PlaintextFromRequired,
            QuarantineReason::Malware {
                scanner: "clamd".into(),
                signature: "Eicar".into(),
            },
            QuarantineReason::Unscannable {
                scanner: "clamd".into(),
                why: "size limit".into(),
            },
            QuarantineReason::BadWrapper(crate::wrapped::BadWrapper::NoHeader),
            QuarantineReason::Direct(crate::DirectFault::NotEncrypted),
        ];
        let mut codes: Vec<&str> = all.iter().map(|r| r.code().as_str()).collect();
        codes.sort_unstable();
        codes.dedup();
        assert_eq!(codes.len(), all.len());
        // What inspection found is named for a content hold, and only there.
        let found = QuarantineReason::Content { summary: None }.with_summary(Some("pan=2"));
        assert_eq!(
            found.to_string(),
            "content policy: content inspection holds a copy that would leave in clear (pan=2)"
        );
        assert_eq!(
            QuarantineReason::UnsignedCbc.with_summary(Some("pan=2")),
            QuarantineReason::UnsignedCbc
        );
        assert!(QuarantineReason::UnsignedCbc.to_string().contains("EFAIL"));
    }

    /// A stand-in backend (unit tests only): "seals" by adding a marker header, or fails the
    /// way it was told to.
    #[derive(Debug)]
    struct Fake {
        standard: Standard,
        outcome: Outcome,
    }

    #[derive(Debug, Clone, Copy)]
    enum Outcome {
        Seal,
        Temporary,
        Permanent,
    }

    #[async_trait]
    impl SecureEnvelope for Fake {
        fn standard(&self) -> Standard {
            self.standard
        }
        fn recognises(&self, _: &MessageView<'_>) -> bool {
            false
        }
        // The structural proof is the real backends': that is what this test holds to account.
        fn proven_encrypted(&self, msg: &MessageView<'_>) -> Option<Vec<u8>> {
            match self.standard {
                Standard::Smime => postern_smime::SmimeEnvelope::new().proven_encrypted(msg),
                _ => postern_openpgp::OpenPgpEnvelope::new().proven_encrypted(msg),
            }
        }
        async fn seal(
            &self,
            msg: &MessageView<'_>,
            req: &SealRequest<'_>,
        ) -> Result<Vec<u8>, Error> {
            assert!(!req.recipients.is_empty());
            match self.outcome {
                Outcome::Seal => {
                    let mut m = format!("X-Fake-Sealed: {}\r\n", self.standard).into_bytes();
                    if req.sign.is_some() {
                        m.extend_from_slice(b"X-Fake-Signed: ours\r\n");
                    }
                    m.extend_from_slice(msg.raw());
                    Ok(m)
                }
                Outcome::Temporary => Err(Error::Unavailable("injected".into())),
                Outcome::Permanent => Err(Error::NoUsableKey {
                    recipient: "x".into(),
                    reason: "injected".into(),
                }),
            }
        }
        async fn open(&self, _: &MessageView<'_>, _: &OpenRequest<'_>) -> Result<Opened, Error> {
            Err(Error::InvalidRequest("not used".into()))
        }
    }

    fn block_on<F: std::future::Future>(fut: F) -> F::Output {
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        let mut fut = std::pin::pin!(fut);
        loop {
            if let std::task::Poll::Ready(v) = fut.as_mut().poll(&mut cx) {
                return v;
            }
        }
    }

    fn policy_strategy() -> impl Strategy<Value = PartnerPolicy> {
        prop_oneof![
            Just(PartnerPolicy::Required),
            Just(PartnerPolicy::Preferred),
            Just(PartnerPolicy::TlsRequired),
            Just(PartnerPolicy::Portal),
        ]
    }

    fn outcome_strategy() -> impl Strategy<Value = Outcome> {
        prop_oneof![
            Just(Outcome::Seal),
            Just(Outcome::Temporary),
            Just(Outcome::Permanent)
        ]
    }

    /// What no copy to a partner that must get ciphertext may carry readable.
    const PHI: &str = "SSN 078-05-1120";

    /// Message bodies: plain, labelled "encrypted" over plain text in every way we know of,
    /// and genuinely encrypted (really sealed by the backends, once) with and without readable
    /// text riding along. Each is (Content-Type and CTE header lines, body, whether it passes
    /// as the user's own ciphertext).
    fn bodies() -> &'static [(String, String, bool)] {
        static BODIES: std::sync::OnceLock<Vec<(String, String, bool)>> =
            std::sync::OnceLock::new();
        BODIES.get_or_init(|| {
            let data = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/data/");
            let read = |f: &str| std::fs::read(format!("{data}{f}")).unwrap();
            let policy = Policy::default();
            let inner = format!("From: a@clinic.test\r\nSubject: x\r\n\r\n{PHI}\r\n");
            let view = MessageView::parse(inner.as_bytes()).unwrap();
            let seal = |b: &dyn SecureEnvelope, cert: Vec<u8>| {
                let certs = [cert];
                let req = SealRequest::encrypt(&certs, &policy);
                let sealed = block_on(b.seal(&view, &req)).unwrap();
                let v = MessageView::parse(&sealed).unwrap();
                let head: String = v
                    .headers()
                    .iter()
                    .filter(|h| h.name.to_ascii_lowercase().starts_with("content-"))
                    .map(|h| String::from_utf8_lossy(h.raw).into_owned())
                    .collect();
                (head, String::from_utf8_lossy(v.body()).into_owned())
            };
            let (smime_head, smime_body) = seal(
                &postern_smime::SmimeEnvelope::new(),
                read("lamps-bob.encrypt.crt"),
            );
            let (pgp_head, pgp_body) =
                seal(&postern_openpgp::OpenPgpEnvelope::new(), read("bob.pub.asc"));
            let boundary = MessageView::parse(format!("{pgp_head}\r\nx").as_bytes())
                .unwrap()
                .root()
                .content_type_param("boundary")
                .unwrap();
            let p7 = "Content-Type: application/pkcs7-mime; smime-type=enveloped-data; name=smime.p7m\r\nContent-Transfer-Encoding: base64\r\n";
            let pgp = |b: &str| format!("Content-Type: multipart/encrypted; protocol=\"application/pgp-encrypted\"; boundary=\"{b}\"\r\n");
            let b64 = |t: &str| {
                use base64::Engine;
                base64::engine::general_purpose::STANDARD.encode(t)
            };
            let fake_armor = format!("-----BEGIN PGP MESSAGE-----\r\n\r\n{PHI}\r\n-----END PGP MESSAGE-----\r\n");
            let control = "Content-Type: application/pgp-encrypted\r\n\r\nVersion: 1\r\n";
            let two = |b: &str, second: &str| format!("--{b}\r\n{control}\r\n--{b}\r\n{second}\r\n--{b}--\r\n");
            vec![
                ("Content-Type: text/plain\r\n".into(), format!("{PHI}\r\n"), false),
                // Labels over plain text.
                (p7.into(), format!("{PHI}\r\n"), false),
                (p7.into(), format!("{}\r\n", b64(PHI)), false),
                ("Content-Type: application/pkcs7-mime; smime-type=authenveloped-data\r\n".into(), format!("{PHI}\r\n"), false),
                (pgp("b1"), format!("{PHI}\r\n"), false),
                (pgp("b1"), two("b1", &format!("Content-Type: text/plain\r\n\r\n{PHI}")), false),
                (pgp("b1"), two("b1", &format!("Content-Type: application/octet-stream\r\n\r\n{fake_armor}")), false),
                // Genuine ciphertext with readable text riding along.
                (smime_head.clone(), format!("{smime_body}\r\n{PHI}\r\n"), false),
                (smime_head.clone(), format!("{PHI}\r\n{smime_body}"), false),
                // A preamble or an epilogue: proven, and dropped from the copy that passes.
                (pgp_head.clone(), format!("{PHI}\r\n{pgp_body}"), true),
                (pgp_head.clone(), format!("{pgp_body}{PHI}\r\n"), true),
                (
                    pgp_head.clone(),
                    pgp_body.replace(
                        &format!("--{boundary}--"),
                        &format!("--{boundary}\r\nContent-Type: text/plain\r\n\r\n{PHI}\r\n--{boundary}--"),
                    ),
                    false,
                ),
                // Genuine.
                (smime_head, smime_body, true),
                (pgp_head, pgp_body, true),
            ]
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

        /// Whatever the directory, the recipients and the backend failures: a required partner
        /// never gets a Deliver that is not sealed, every recipient gets exactly one decision,
        /// and no copy carries the Bcc list.
        #[test]
        fn fail_closed(
            partners in proptest::collection::vec(
                (policy_strategy(), any::<bool>(), any::<bool>(), any::<bool>(), any::<bool>(), any::<bool>()),
                1..5,
            ),
            smime in outcome_strategy(),
            pgp in outcome_strategy(),
            recipients in proptest::collection::vec((0usize..6, 0usize..3), 1..12),
            trigger in any::<bool>(),
            body in 0usize..14,
        ) {
            let (ct, body_text, genuine) = &bodies()[body];
            let user_encrypted = *genuine;
            let mut dir = Directory::default();
            for (i, (policy, s, o, has_s, has_o, direct)) in partners.iter().enumerate() {
                let mut std = Vec::new();
                if *s { std.push(Standard::Smime); }
                if *o { std.push(Standard::OpenPgp); }
                let mut p = Partner::new(
                    crate::DomainPattern::Exact(Domain::new(&format!("p{i}.test")).unwrap()),
                    *policy,
                    std,
                );
                if *has_s { p.certificates.insert(Standard::Smime, vec![b"cert".to_vec()]); }
                if *has_o { p.certificates.insert(Standard::OpenPgp, vec![b"cert".to_vec()]); }
                // A Direct entry whatever its policy (a directory built in Rust, unchecked).
                if *direct { p.profile = crate::PartnerProfile::Direct; }
                dir.partners.push(p);
            }
            let router = Router::new(vec![
                Arc::new(Fake { standard: Standard::Smime, outcome: smime }),
                Arc::new(Fake { standard: Standard::OpenPgp, outcome: pgp }),
            ]);
            let rcpts: Vec<Address> = recipients
                .iter()
                .map(|(d, l)| Address::new(&format!("u{l}@p{d}.test")).unwrap())
                .collect();
            let mut uniq = rcpts.clone();
            uniq.sort();
            uniq.dedup();
            let subject = if trigger { "Subject: [SECURE] results\r\n" } else { "Subject: results\r\n" };
            let msg = format!("From: a@clinic.test\r\nTo: u0@p0.test\r\nBcc: hidden@p1.test\r\n{subject}{ct}\r\n{body_text}");
            let env = Envelope { mail_from: None, rcpt_to: uniq.clone() };
            let dir = CheckedDirectory::unchecked_for_tests(dir);
            let out = block_on(router.outbound(&dir, &env, msg.as_bytes(), None));

            let mut seen: Vec<Address> = Vec::new();
            for d in &out {
                let (rs, delivered) = match d {
                    Disposition::Deliver { recipients, message, sealed, .. } => (recipients, Some((message, sealed))),
                    Disposition::Hold { recipients, .. }
                    | Disposition::Bounce { recipients, .. }
                    | Disposition::Quarantine { recipients, .. }
                    | Disposition::Local { recipients } => (recipients, None),
                    Disposition::Portal { recipients, message, .. } => {
                        // The portal's copy is the recipient's too: no Bcc list in it.
                        prop_assert!(!String::from_utf8_lossy(message).contains("hidden@p1.test"));
                        (recipients, None)
                    }
                };
                seen.extend(rs.iter().cloned());
                if let Some((message, sealed)) = delivered {
                    let text = String::from_utf8_lossy(message);
                    for r in rs {
                        if let Some(i) = dir.partner_index_for(r.domain()) {
                            let p = &dir.partners[i];
                            let must_encrypt = p.policy == PartnerPolicy::Required
                                || p.profile == crate::PartnerProfile::Direct
                                || (p.policy == PartnerPolicy::Preferred && trigger);
                            if must_encrypt && !user_encrypted {
                                prop_assert!(sealed.is_some() && text.starts_with("X-Fake-Sealed"), "plaintext to required partner {r}: {d:?}");
                            }
                            if must_encrypt {
                                prop_assert!(
                                    text.starts_with("X-Fake-Sealed") || !text.contains(PHI),
                                    "readable text to a partner that must get ciphertext {r}: {text}"
                                );
                            }
                        }
                    }
                    prop_assert!(!text.contains("hidden@"), "Bcc leaked: {text}");
                    if !user_encrypted {
                        prop_assert!(!text.to_ascii_lowercase().contains("[secure]"), "trigger left in: {text}");
                    }
                }
            }
            seen.sort();
            prop_assert_eq!(seen, uniq);
        }
    }

    /// The proof itself: genuine ciphertext passes (rebuilt without what rode along), every
    /// disguise is refused.
    #[test]
    fn only_proven_ciphertext_passes_as_the_users_own() {
        let smime = postern_smime::SmimeEnvelope::new();
        let pgp = postern_openpgp::OpenPgpEnvelope::new();
        for (i, (ct, body, passes)) in bodies().iter().enumerate() {
            let msg = format!("From: a@clinic.test\r\nSubject: x\r\n{ct}\r\n{body}");
            let view = MessageView::parse(msg.as_bytes()).unwrap();
            let proven = smime
                .proven_encrypted(&view)
                .or_else(|| pgp.proven_encrypted(&view));
            assert_eq!(proven.is_some(), *passes, "body {i}: {msg}");
            if let Some(p) = proven {
                assert!(!String::from_utf8_lossy(&p).contains(PHI), "body {i}");
                // What passes is still what the other backend's reader understands.
                let again = MessageView::parse(&p).unwrap();
                assert!(
                    smime.recognises(&again) || pgp.recognises(&again),
                    "body {i}"
                );
            }
        }
    }

    /// Issue 14.2: a message with the null sender (a bounce, whose text is what a stranger
    /// sent) is sealed for a partner that wants signatures, but never signed with our key.
    #[test]
    fn our_key_never_signs_mail_from_the_null_sender() {
        let mut dir = Directory::default();
        dir.our
            .credentials
            .push(postern_core::Credential::with_secret(
                Standard::Smime,
                b"cert".to_vec(),
                b"key".to_vec(),
            ));
        let mut p = Partner::new(
            crate::DomainPattern::Exact(Domain::new("p.test").unwrap()),
            PartnerPolicy::Required,
            vec![Standard::Smime],
        );
        p.sign = true;
        p.certificates
            .insert(Standard::Smime, vec![b"cert".to_vec()]);
        dir.partners.push(p);
        let router = Router::new(vec![Arc::new(Fake {
            standard: Standard::Smime,
            outcome: Outcome::Seal,
        })]);
        let dir = CheckedDirectory::unchecked_for_tests(dir);
        let msg = b"From: MAILER-DAEMON@clinic.test\r\nTo: gw@p.test\r\nSubject: APPROVED: wire\r\n\r\nx\r\n";
        for (from, signed) in [(None, false), (Address::new("ada@clinic.test").ok(), true)] {
            let env = Envelope {
                mail_from: from,
                rcpt_to: vec![Address::new("gw@p.test").unwrap()],
            };
            let out = block_on(router.outbound(&dir, &env, msg, None));
            let [Disposition::Deliver {
                message,
                sealed: Some(_),
                ..
            }] = &out[..]
            else {
                panic!("{out:?}");
            };
            let text = String::from_utf8_lossy(message);
            assert_eq!(text.contains("X-Fake-Signed"), signed, "{text}");
        }
    }

    /// A partner served through the portal: its `portal_days` travels with the decision, so
    /// an embedder stores the copy as long as the directory says without looking it up again.
    #[test]
    fn a_portal_partner_s_lifetime_is_in_the_decision() {
        let mut p = Partner::new(
            crate::DomainPattern::Exact(Domain::new("practice.test").unwrap()),
            PartnerPolicy::Portal,
            vec![Standard::Smime],
        );
        p.portal_days = Some(14);
        let mut dir = Directory::default();
        dir.partners.push(p);
        let dir = CheckedDirectory::unchecked_for_tests(dir);
        let router = Router::new(Vec::new());
        let env = Envelope {
            mail_from: None,
            rcpt_to: vec![Address::new("office@practice.test").unwrap()],
        };
        let msg = b"From: a@clinic.test\r\nSubject: labs\r\n\r\nhi\r\n";
        let out = block_on(router.outbound(&dir, &env, msg, Some(ContentAction::Allow)));
        assert!(
            matches!(&out[..], [Disposition::Portal { days: Some(14), .. }]),
            "{out:?}"
        );
    }

    #[test]
    fn the_subject_trigger_is_removed_and_forces_the_portal_for_everyone_else() {
        let dir = CheckedDirectory::unchecked_for_tests(Directory::default());
        let router = Router::new(Vec::new());
        let msg = b"From: a@clinic.test\r\nTo: x@gmail.test\r\nSubject: [Secure] lab results\r\n\r\nhi\r\n";
        let env = Envelope {
            mail_from: None,
            rcpt_to: vec![Address::new("x@gmail.test").unwrap()],
        };
        let out = block_on(router.outbound(&dir, &env, msg, Some(ContentAction::Allow)));
        // No partner entry: the portal's own default lifetime.
        assert!(
            matches!(&out[..], [Disposition::Portal { days: None, .. }]),
            "{out:?}"
        );
        let (m, forced) = strip_trigger(&MessageView::parse(msg).unwrap(), "[secure]");
        assert!(forced);
        assert!(String::from_utf8(m.into_owned())
            .unwrap()
            .contains("Subject: lab results\r\n"));
    }

    #[test]
    fn bcc_fields_go_and_a_message_without_one_is_not_copied() {
        let with: &[u8] = b"From: a@x.test\r\nBcc: h@y.test\r\nTo: b@z.test\r\n\r\nhi\r\n";
        let out = strip_bcc(with);
        assert!(matches!(out, Cow::Owned(_)));
        assert_eq!(&*out, b"From: a@x.test\r\nTo: b@z.test\r\n\r\nhi\r\n");
        let without: &[u8] = b"From: a@x.test\r\nTo: b@z.test\r\n\r\nhi\r\n";
        assert!(matches!(strip_bcc(without), Cow::Borrowed(b) if b.as_ptr() == without.as_ptr()));
    }
}
