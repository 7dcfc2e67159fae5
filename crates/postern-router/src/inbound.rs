//! The inbound decision: mail from the internet to us. Protected mail from partners is opened
//! and delivered as ordinary mail with result headers; result headers that arrived from outside
//! are removed first, so no sender can claim a verified signature.

use std::borrow::Cow;
use std::sync::Arc;

use postern_core::{
    Address, ChainStatus, ContentCipher, DigestAlgorithm, Domain, MessageView, OpenRequest, Policy,
    Report, Revocation, RevocationChecker, RevocationPolicy, SecureEnvelope, SignatureStatus,
    SignatureVerdict, Standard,
};

use crate::addresses::single_from;
use crate::{
    CheckedDirectory, Directory, Legacy, Partner, PartnerPolicy, QuarantineReason, UnsignedCbc,
};

/// Header fields Postern writes on inbound mail. Any field starting with this prefix that
/// arrives from outside is removed.
pub const RESULT_PREFIX: &str = "Postern-";

/// What to do with mail we cannot open, or with plaintext from a partner that must encrypt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InboundAction {
    /// Deliver with a header saying what happened.
    Tag,
    /// Hold for review.
    Quarantine,
}

/// The inbound policy knobs.
#[derive(Debug, Clone, Copy)]
pub struct InboundPolicy {
    /// A message encrypted to none of our keys — a user's own end-to-end mail, say (default:
    /// deliver as is, tagged `Postern-Decrypted: no (encrypted to other keys)`). A message
    /// encrypted to one of our keys that does not open (a damaged key or tag, a refused
    /// algorithm, malformed content) is always held: it was for us, and relaying it would pass
    /// on something nobody checked (draft-ramsdell-enc-smime-gateway §5.2).
    pub not_for_us: InboundAction,
    /// Plaintext from a `required` partner (default: tag).
    pub plaintext_from_required: InboundAction,
    /// Unsigned AES-CBC S/MIME mail from senders that are not partners, or partners without
    /// their own setting (default: text only; `required` partners default to quarantine).
    pub unsigned_cbc: UnsignedCbc,
}

impl Default for InboundPolicy {
    fn default() -> Self {
        InboundPolicy {
            not_for_us: InboundAction::Tag,
            plaintext_from_required: InboundAction::Tag,
            unsigned_cbc: UnsignedCbc::TextOnly,
        }
    }
}

/// What happens to one inbound message.
///
/// Exhaustive on purpose: a caller handles every decision, so a new one cannot fall into a
/// catch-all that delivers what it does not understand.
#[derive(Debug, Clone)]
pub enum Inbound {
    /// Deliver `message` to the internal side.
    Deliver {
        /// The message: opened if it was protected, with Postern result headers on top.
        message: Vec<u8>,
        /// What opening found (`None`: the message was not protected).
        report: Option<Report>,
        /// The verdict stated in its `Postern-Signature` header ([`SignatureVerdict::Absent`]
        /// when nothing was verified: plaintext, or a message that could not be opened).
        verdict: SignatureVerdict,
    },
    /// Hold for review.
    Quarantine {
        /// The message as received (result headers from outside removed).
        message: Vec<u8>,
        /// Why.
        reason: QuarantineReason,
    },
}

/// Opens inbound mail with the backends it was given.
#[derive(Debug, Clone)]
pub struct InboundRouter {
    backends: Vec<Arc<dyn SecureEnvelope>>,
    /// What to do when opening fails or a required partner sends plaintext.
    pub policy: InboundPolicy,
    /// The algorithm policy for opening.
    pub algorithms: Policy,
    /// Asked about every verified signer's certificate (`None`: not checked).
    pub revocation: Option<Arc<dyn RevocationChecker>>,
    /// The time certificates are checked at (the system's unless set otherwise).
    pub clock: Arc<dyn postern_core::Clock>,
}

impl InboundRouter {
    /// An inbound router over these backends.
    pub fn new(backends: Vec<Arc<dyn SecureEnvelope>>) -> Self {
        InboundRouter {
            backends,
            policy: InboundPolicy::default(),
            algorithms: Policy::default(),
            revocation: None,
            clock: Arc::new(postern_core::SystemClock),
        }
    }

    /// Checks verified signers' certificates for revocation with `checker`.
    pub fn with_revocation(mut self, checker: Arc<dyn RevocationChecker>) -> Self {
        self.revocation = Some(checker);
        self
    }

    /// A revoked signer is `invalid` with the reason; under `revocation = "required"` a signer
    /// whose status cannot be shown is not trusted.
    async fn check_signers(&self, dir: &Directory, partner: Option<&Partner>, report: &mut Report) {
        let Some(checker) = &self.revocation else {
            return;
        };
        let policy = partner.map(|p| p.revocation).unwrap_or_default();
        if policy == RevocationPolicy::Off {
            return;
        }
        let mut issuers: Vec<Vec<u8>> = dir.our.trust_anchors.clone();
        if let Some(p) = partner {
            issuers.extend(p.trust_anchors.iter().cloned());
            issuers.extend(p.certificates_for(report.standard).iter().cloned());
        }
        for sig in &mut report.signatures {
            // Only signers that chain to our anchors or are the partner's pinned key: their
            // CRL and OCSP addresses are their CA's, not whatever a stranger's certificate says.
            if sig.status != SignatureStatus::Valid
                || !matches!(sig.chain, ChainStatus::Trusted { .. })
            {
                continue;
            }
            let Some((leaf, chain)) = sig.signer_chain.split_first() else {
                continue;
            };
            let mut candidates = chain.to_vec();
            candidates.extend(issuers.iter().cloned());
            for (_, answer) in checker.check(report.standard, leaf, &candidates).await {
                match answer {
                    Revocation::Revoked(why) => {
                        sig.status = SignatureStatus::Invalid(format!("signer certificate {why}"));
                    }
                    Revocation::Unknown(why) if policy == RevocationPolicy::Required => {
                        sig.chain = ChainStatus::Untrusted(format!(
                            "revocation status of the signer unknown: {why}"
                        ));
                    }
                    Revocation::NoSource if policy == RevocationPolicy::Required => {
                        sig.chain = ChainStatus::Untrusted(
                            "the signer's certificate names no OCSP responder or CRL, and revocation = \"required\""
                                .into(),
                        );
                    }
                    _ => {}
                }
            }
        }
    }

    /// Decides for one message from `mail_from` (the SMTP reverse path). Mail from a Direct
    /// HISP is held to the Direct rules here, except the one that needs the recipients (each
    /// must be in To or Cc): [`crate::Gateway::route`] applies that one, so an embedder that
    /// calls this directly for Direct mail must check it too (or call `route`).
    pub async fn inbound(
        &self,
        dir: &CheckedDirectory,
        mail_from: Option<&Address>,
        raw: &[u8],
    ) -> Inbound {
        let clean = strip_results(raw);
        let Ok(view) = MessageView::parse(&clean) else {
            return Inbound::Quarantine {
                message: clean.into_owned(),
                reason: QuarantineReason::NotAMessage,
            };
        };
        // The partner whose keys we expect: by the envelope sender, or — for the null sender —
        // by the From header. Choosing by From gains a forger nothing: a signature must still
        // verify with that partner's key, and then binds only addresses of that partner.
        let partner_index = match mail_from {
            Some(a) => dir.partner_index_for(a.domain()),
            None => single_from(&view).and_then(|a| dir.partner_index_for(a.domain())),
        };
        let partner = partner_index.map(|i| &dir.partners[i]);
        // A Direct HISP's mail (by its envelope, or by the author it names) is delivered only
        // when it keeps every Direct rule.
        let mut direct = crate::direct::rules_apply(dir, mail_from, &clean);
        let refuse = |message: Vec<u8>, fault: crate::DirectFault| Inbound::Quarantine {
            message,
            reason: QuarantineReason::Direct(fault),
        };
        let Some(backend) = self.backends.iter().find(|b| b.recognises(&view)) else {
            if direct {
                return refuse(clean.to_vec(), crate::DirectFault::NotProtected);
            }
            return self.plaintext(partner, clean.to_vec());
        };
        let standard = backend.standard();
        let keys = dir.our_credentials(standard);
        let signers: Vec<Vec<u8>> = partner
            .map(|p| p.certificates_for(standard).to_vec())
            .unwrap_or_default();
        // A partner may be allowed legacy algorithms in what it sends us (never in what we
        // send it); whatever they protect is marked weak in the result.
        let mut algorithms = self.algorithms.clone();
        if let Some(p) = partner {
            algorithms.allow_triple_des |= p.accept_legacy.contains(&Legacy::TripleDes);
            algorithms.allow_sha1_signatures |= p.accept_legacy.contains(&Legacy::Sha1);
        }
        // A partner's own anchors count for its signers only.
        let mut anchors = dir.our.trust_anchors.clone();
        if let Some(p) = partner {
            anchors.extend(p.trust_anchors.iter().cloned());
        }
        let mut req = OpenRequest::new(&keys, &algorithms)
            .with_trust_anchors(&anchors)
            .with_expected_signers(&signers);
        req.now = self.clock.now();
        let mut result = backend.open(&view, &req).await;
        // A signer whose path the sender left incomplete: fetch the issuers its certificate
        // names (AIA) and verify again with them as path material (trust still needs an anchor).
        // Only for a partner's mail: the URLs come from a certificate nobody has vouched for
        // yet, and fetching whatever a stranger names would let anyone make us send requests
        // into our own network.
        if let (Ok(opened), Some(checker), true) = (&result, &self.revocation, partner.is_some()) {
            let mut fetched = Vec::new();
            if !anchors.is_empty() {
                for sig in &opened.report.signatures {
                    if sig.status == SignatureStatus::Valid
                        && matches!(sig.chain, ChainStatus::Untrusted(_))
                    {
                        if let Some(leaf) = sig.signer_chain.first() {
                            fetched.extend(checker.issuers(standard, leaf).await);
                        }
                    }
                }
            }
            if !fetched.is_empty() {
                if let Ok(again) = backend.open(&view, &req.with_intermediates(&fetched)).await {
                    result = Ok(again);
                }
            }
        }
        match result {
            Ok(mut opened) => {
                self.check_signers(dir, partner, &mut opened.report).await;
                // A wrapped message (Direct, RFC 8551 §3.1) is delivered as the message inside,
                // whose header section was the protected one: the signer is bound to its From.
                if let Err(why) = crate::wrapped::unwrap_opened(&mut opened) {
                    return Inbound::Quarantine {
                        message: opened.message,
                        reason: QuarantineReason::BadWrapper(why),
                    };
                }
                // The opened message came from outside too (and whoever wrapped it may have put
                // some inside): its result headers go as well.
                let stripped = match strip_results(&opened.message) {
                    Cow::Owned(v) => Some(v),
                    Cow::Borrowed(_) => None,
                };
                let inner: &[u8] = stripped.as_deref().unwrap_or(&opened.message);
                let binding = Binding {
                    dir,
                    partner: partner_index,
                    mail_from,
                    message: inner,
                };
                let (mut headers, verdict) = result_headers(&opened.report, &binding);
                // The opened message's own From or Sender may name a HISP the outside did not.
                direct |= crate::direct::names_direct(dir, inner);
                if direct {
                    let fault = if opened.report.encryption.is_none() {
                        Some(crate::DirectFault::NotEncrypted)
                    } else if !verdict.vouches() {
                        Some(crate::DirectFault::Signature(verdict))
                    } else if mail_from.is_some_and(|m| !crate::direct::sender_matches(inner, m)) {
                        Some(crate::DirectFault::SenderMismatch)
                    } else {
                        None
                    };
                    if let Some(fault) = fault {
                        headers.extend_from_slice(inner);
                        return refuse(headers, fault);
                    }
                }
                // A partner that must encrypt sent something that opened without decryption
                // (signed only, or wrapped in a SignedData with no signer): plaintext all the
                // same, under the same policy as plaintext that was never wrapped.
                let required = partner.is_some_and(|p| p.policy == PartnerPolicy::Required);
                if required && opened.report.encryption.is_none() {
                    match self.policy.plaintext_from_required {
                        InboundAction::Quarantine => {
                            headers.extend_from_slice(inner);
                            return Inbound::Quarantine {
                                message: headers,
                                reason: QuarantineReason::PlaintextFromRequired,
                            };
                        }
                        InboundAction::Tag => headers.extend_from_slice(
                            format!("{RESULT_PREFIX}Warning: plaintext from a partner that must encrypt\r\n")
                                .as_bytes(),
                        ),
                    }
                }
                // AES-CBC has no integrity: without a valid signature bound to the sender, the
                // content may have been rewritten by whoever captured the ciphertext (EFAIL).
                let malleable = opened.report.standard == Standard::Smime
                    && opened
                        .report
                        .encryption
                        .as_ref()
                        .is_some_and(|e| !e.cipher.is_aead());
                if malleable && !verdict.vouches() {
                    let action = partner
                        .and_then(|p| p.unsigned_cbc)
                        .unwrap_or(match partner {
                            Some(p) if p.policy == PartnerPolicy::Required => {
                                UnsignedCbc::Quarantine
                            }
                            _ => self.policy.unsigned_cbc,
                        });
                    let why = QuarantineReason::UnsignedCbc;
                    match action {
                        UnsignedCbc::Quarantine => {
                            headers.extend_from_slice(inner);
                            return Inbound::Quarantine {
                                message: headers,
                                reason: why,
                            };
                        }
                        UnsignedCbc::TextOnly => {
                            headers.extend_from_slice(
                                format!("{RESULT_PREFIX}Content: text only ({why}; HTML, links and attachments withheld)\r\n").as_bytes(),
                            );
                            headers.extend_from_slice(&crate::text_only(
                                inner,
                                "Postern: this message was encrypted without integrity protection and not validly signed; only its text is shown, links and attachments were removed. Ask the sender to sign, or your administrator for the original.",
                            ));
                            return Inbound::Deliver {
                                message: headers,
                                report: Some(opened.report),
                                verdict,
                            };
                        }
                    }
                }
                Inbound::Deliver {
                    message: with_headers(headers, stripped, opened.message),
                    report: Some(opened.report),
                    verdict,
                }
            }
            Err(e) if direct => refuse(
                clean.to_vec(),
                crate::DirectFault::CannotOpen {
                    error: e.to_string(),
                },
            ),
            // Encrypted to none of our keys (a user's own end-to-end mail): as the policy says.
            Err(postern_core::Error::NotForUs(why)) => match self.policy.not_for_us {
                InboundAction::Quarantine => Inbound::Quarantine {
                    message: clean.to_vec(),
                    reason: QuarantineReason::CannotOpen {
                        standard,
                        error: format!("not encrypted to any of our keys ({why})"),
                    },
                },
                InboundAction::Tag => Inbound::Deliver {
                    message: prepend(
                        &format!(
                            "{RESULT_PREFIX}Decrypted: no ({standard}: encrypted to other keys)\r\n"
                        ),
                        &clean,
                    ),
                    report: None,
                    verdict: SignatureVerdict::Absent,
                },
            },
            // For us, and it did not open: never relayed.
            Err(e) => Inbound::Quarantine {
                message: clean.to_vec(),
                reason: QuarantineReason::CannotOpen {
                    standard,
                    error: e.to_string(),
                },
            },
        }
    }

    fn plaintext(&self, partner: Option<&Partner>, message: Vec<u8>) -> Inbound {
        let required = partner.is_some_and(|p| p.policy == PartnerPolicy::Required);
        if !required {
            return Inbound::Deliver {
                message,
                report: None,
                verdict: SignatureVerdict::Absent,
            };
        }
        match self.policy.plaintext_from_required {
            InboundAction::Quarantine => Inbound::Quarantine {
                message,
                reason: QuarantineReason::PlaintextFromRequired,
            },
            InboundAction::Tag => Inbound::Deliver {
                message: prepend(
                    &format!(
                        "{RESULT_PREFIX}Warning: plaintext from a partner that must encrypt\r\n"
                    ),
                    &message,
                ),
                report: None,
                verdict: SignatureVerdict::Absent,
            },
        }
    }
}

/// A header value from what others wrote (errors, signer names): one line, through the one
/// sanitiser, bounded well inside a header line's 998 characters.
fn one_line(s: &str) -> String {
    postern_core::display_text(s, 900)
}

fn prepend(header: &str, message: &[u8]) -> Vec<u8> {
    let mut out = header.as_bytes().to_vec();
    out.extend_from_slice(message);
    out
}

/// What a signature is checked against besides the content: who the message says it is from.
struct Binding<'a> {
    dir: &'a Directory,
    /// The partner entry whose keys were expected (index into the directory).
    partner: Option<usize>,
    mail_from: Option<&'a Address>,
    /// The message as it will be delivered (opened; protected inner fields in force).
    message: &'a [u8],
}

/// Header fields whose coverage by the signature the reader is told about.
const SHOWN_FIELDS: &[&str] = &[
    "from",
    "sender",
    "reply-to",
    "to",
    "cc",
    "subject",
    "date",
    "message-id",
];

/// `Postern-Decrypted`, `Postern-Signature` (and, when it applies, `-Problem` and `-Covers`)
/// for an opened message.
///
/// `valid` means: every signature verifies, its signer is trusted, and the signer speaks for
/// the author the reader sees — the message has exactly one From field naming exactly one
/// mailbox, and that address is one of the signer certificate's (RFC 8550 §3, RFC 8551 §3.1.4),
/// or the signer speaks for the From's whole domain: a key the partner's entry declares its
/// gateway key (`gateway_keys`) for a From of that partner, or a certificate bound to the
/// domain itself (a dNSName, a bare-domain address). A mismatch inside the signer's organisation is `untrusted`; another
/// organisation is `invalid`; a signature over part of the body only is `partial`; one made with
/// an algorithm the policy refuses (SHA-1 without the partner's `accept_legacy`) is `refused`.
fn result_headers(report: &Report, b: &Binding<'_>) -> (Vec<u8>, SignatureVerdict) {
    let mut out = String::new();
    match &report.encryption {
        Some(e) => out.push_str(&format!(
            "{RESULT_PREFIX}Decrypted: {} {} ({}){}\r\n",
            report.standard,
            e.cipher,
            e.key_management,
            if e.cipher == ContentCipher::TripleDesCbc {
                " weak: a legacy cipher accepted for this partner only"
            } else {
                ""
            }
        )),
        None => out.push_str(&format!("{RESULT_PREFIX}Decrypted: no\r\n")),
    }
    let signer = report.signatures.iter().find_map(|s| s.signer.clone());
    let (verdict, problems) = verdict_for(report, b);
    for p in &problems {
        out.push_str(&format!(
            "{RESULT_PREFIX}Signature-Problem: {}\r\n",
            one_line(p)
        ));
    }
    if !report.signatures.is_empty() {
        let covered: Vec<&str> = SHOWN_FIELDS
            .iter()
            .copied()
            .filter(|f| report.signed_fields.iter().any(|s| s == f))
            .collect();
        let covers = if covered.is_empty() {
            "body (no header fields: From, Subject and the rest are unsigned)".to_string()
        } else {
            format!("body and {}", covered.join(", "))
        };
        out.push_str(&format!("{RESULT_PREFIX}Signature-Covers: {covers}\r\n"));
    }
    // A signature that vouches but names no person of the From (a gateway key, an organisation
    // certificate, a domain signing authority) authenticates the domain the message left,
    // not its author: the reader is told (RFC 3183's domain signature).
    if verdict.vouches() && !signed_by_author(report, b.message) {
        out.push_str(&format!(
            "{RESULT_PREFIX}Signature-Detail: domain (the sending organisation signed; no person did)\r\n"
        ));
    }
    // What each signature declared itself to be (RFC 3183 signatureType), for a message whose
    // signatures vouch; a handful at most.
    if verdict.vouches() {
        for sig in report
            .signatures
            .iter()
            .filter(|s| !s.signature_types.is_empty())
            .take(4)
        {
            let types: Vec<&str> = sig.signature_types.iter().map(|t| t.as_str()).collect();
            out.push_str(&format!(
                "{RESULT_PREFIX}Signature-Detail: declared type={} signer={}\r\n",
                types.join(","),
                one_line(sig.signer.as_deref().unwrap_or("(unnamed)"))
            ));
        }
    }
    out.push_str(&format!("{RESULT_PREFIX}Signature: {verdict}"));
    if let Some(s) = &signer {
        out.push_str(&format!(" signer={}", one_line(s)));
    }
    if let Some(why) = report.signatures.iter().find_map(|s| match &s.status {
        SignatureStatus::Valid => None,
        SignatureStatus::Invalid(w)
        | SignatureStatus::Refused(w)
        | SignatureStatus::SignerUnknown(w) => Some(w.clone()),
        other => Some(format!("{other:?}")),
    }) {
        out.push_str(&format!(" reason=\"{}\"", one_line(&why).replace('"', "'")));
    }
    out.push_str("\r\n");
    (out.into_bytes(), verdict)
}

/// The signature verdict the gateway states in `Postern-Signature`, and its problems, for an
/// opened message: the one function behind the relay's inbound path, the CLI's `open` and any
/// embedder. `partner` is the directory entry whose keys were expected, `mail_from` the
/// envelope sender, `message` the opened message (its From is what the signer must speak for).
/// See [`result_headers`] for what each verdict means.
pub fn signature_verdict(
    report: &Report,
    dir: &Directory,
    partner: Option<usize>,
    mail_from: Option<&Address>,
    message: &[u8],
) -> (SignatureVerdict, Vec<String>) {
    verdict_for(
        report,
        &Binding {
            dir,
            partner,
            mail_from,
            message,
        },
    )
}

fn verdict_for(report: &Report, b: &Binding<'_>) -> (SignatureVerdict, Vec<String>) {
    let mut verdict = report.signature_verdict();
    let mut problems: Vec<String> = Vec::new();
    // A signature refused by policy verified all the same (a forgery is invalid): who signed
    // it is known, so a signer of another organisation makes it invalid as it would a valid
    // one; any other binding problem leaves it refused.
    let checks_binding = matches!(verdict, SignatureVerdict::Valid | SignatureVerdict::Refused);
    if checks_binding {
        // The envelope sender, when there is one, must be of each signer's organisation too.
        // What a certificate names is read as the From binding reads it (addresses and bare
        // domains); one that names nothing usable is left to that binding (untrusted), never
        // taken for another organisation.
        if let Some(from) = b.mail_from {
            for sig in &report.signatures {
                let domains = signer_domains(sig);
                let same_org = domains.is_empty()
                    || domains
                        .iter()
                        .any(|d| d.is_within(from.domain()) || from.domain().is_within(d));
                if !same_org {
                    verdict = SignatureVerdict::Invalid;
                    problems.push(format!(
                        "signer {} is not of the sender's domain {}",
                        one_line(sig.signer.as_deref().unwrap_or("(unnamed)")),
                        from.domain()
                    ));
                    break;
                }
            }
        }
    }
    // RFC 3183 name mapping for a signature that says it is a domain signature: only the
    // domain signing authority of the From's domain (or of a parent of it) may make one.
    if checks_binding && verdict != SignatureVerdict::Invalid {
        let from_domain = MessageView::parse(b.message)
            .ok()
            .and_then(|v| single_from(&v))
            .map(|a| a.domain().clone());
        let partner = b.partner.map(|i| &b.dir.partners[i]);
        for sig in report.signatures.iter().filter(|s| {
            s.signature_types
                .contains(&postern_core::SignatureType::Domain)
        }) {
            let authority = from_domain.as_ref().is_some_and(|fd| {
                sig.signer_addresses
                    .iter()
                    .filter_map(|a| crate::addresses::signing_authority_of(a))
                    .any(|d| fd.is_within(&d))
            });
            // The partner's declared gateway key speaks for its domain already: its mark is
            // not a forgery, and the From binding judges it as before.
            let gateway_key = partner.is_some_and(|p| p.is_gateway_key(sig.fingerprint.as_deref()));
            if !authority && !gateway_key {
                verdict = SignatureVerdict::Invalid;
                problems.push(format!(
                    "RFC 3183: a domain signature (domainSig) by {}, which is not the domain \
                     signing authority of the sender's domain",
                    one_line(sig.signer.as_deref().unwrap_or("(unnamed)"))
                ));
                break;
            }
        }
    }
    if checks_binding && verdict != SignatureVerdict::Invalid {
        if let Err((v, why)) = bind_to_from(report, b) {
            if verdict == SignatureVerdict::Valid || v == SignatureVerdict::Invalid {
                verdict = v;
            }
            problems.push(why);
        }
    }
    let sha1 = report.signatures.iter().any(|s| {
        s.algorithm
            .and_then(|a| a.digest())
            .is_some_and(|d| matches!(d, DigestAlgorithm::Sha1 | DigestAlgorithm::Md5))
    });
    if verdict == SignatureVerdict::Valid && sha1 {
        verdict = SignatureVerdict::Weak;
        problems.push("signed with SHA-1, accepted for this partner only".into());
    }
    if verdict == SignatureVerdict::Valid && report.partly_protected {
        verdict = SignatureVerdict::Partial;
        problems.push(
            "only part of the body is signed: text before or after the signed block was not".into(),
        );
    }
    (verdict, problems)
}

/// The domains a signer's certificate names: its addresses' domains and the domains it is
/// bound to (dNSName, a bare domain in emailAddress or CN). Empty: nothing usable.
fn signer_domains(sig: &postern_core::SignatureReport) -> Vec<Domain> {
    sig.signer_addresses
        .iter()
        .filter_map(|a| Address::new(a).ok().map(|a| a.domain().clone()))
        .chain(
            sig.signer_domains
                .iter()
                .filter_map(|d| Domain::new(d).ok()),
        )
        .collect()
}

/// Whether a signer's certificate names the From address itself (a person signed).
fn signed_by_author(report: &Report, message: &[u8]) -> bool {
    let Some(from) = MessageView::parse(message)
        .ok()
        .and_then(|v| single_from(&v))
    else {
        return false;
    };
    let from = from.to_string();
    report.signatures.iter().any(|s| {
        s.signer_addresses
            .iter()
            .any(|a| a.eq_ignore_ascii_case(&from))
    })
}

/// The local part RFC 3183 §3.1 names a domain signing authority by.
const DOMAIN_SIGNING_AUTHORITY: &str = "domain-signing-authority";

/// Does every signer speak for the From address? `Err((verdict, why))` when not.
fn bind_to_from(report: &Report, b: &Binding<'_>) -> Result<(), (SignatureVerdict, String)> {
    let view = MessageView::parse(b.message).map_err(|_| {
        (
            SignatureVerdict::Untrusted,
            "the message has no header section".to_string(),
        )
    })?;
    let from = single_from(&view).ok_or_else(|| {
        (
            SignatureVerdict::Untrusted,
            "the From header must name exactly one mailbox in exactly one field".to_string(),
        )
    })?;
    let partner_of = |d: &Domain| b.dir.partner_index_for(d);
    for sig in &report.signatures {
        let by_address = sig
            .signer_addresses
            .iter()
            .any(|a| a.eq_ignore_ascii_case(&from.to_string()));
        // A key speaks for a whole domain only when it is declared the partner's gateway key
        // in the directory, or when its certificate is bound to the domain itself. A pinned
        // person's key (eve@partner) binds eve's own addresses, never manager@partner.
        let declared_gateway = b.partner.is_some_and(|i| {
            b.dir.partners[i].is_gateway_key(sig.fingerprint.as_deref())
                && partner_of(from.domain()) == Some(i)
        });
        // A domain-bound (organisation) certificate speaks for every address of exactly its
        // domain, and only as the partner whose keys and anchors were expected: another
        // partner's CA must not make a certificate that signs for us or for a third
        // organisation.
        let domain_bound = b.partner.is_some()
            && partner_of(from.domain()) == b.partner
            && sig
                .signer_domains
                .iter()
                .any(|d| Domain::new(d).is_ok_and(|d| *from.domain() == d));
        // RFC 3183's domain signing authority (`domain-signing-authority@example.org`) speaks
        // for its domain and the domains below it (name mapping, §3.1), again only as the
        // expected partner: it authenticates that the message left that domain, not a person.
        let signing_authority = b.partner.is_some()
            && partner_of(from.domain()) == b.partner
            && sig.signer_addresses.iter().any(|a| {
                Address::new(a).is_ok_and(|a| {
                    a.local().eq_ignore_ascii_case(DOMAIN_SIGNING_AUTHORITY)
                        && from.domain().is_within(a.domain())
                })
            });
        if by_address || declared_gateway || domain_bound || signing_authority {
            continue;
        }
        // What the certificate names: its addresses' domains and the domains it is bound to.
        // Nothing usable is no binding at all (untrusted), never "another organisation".
        let signer_domains = signer_domains(sig);
        let Some(first) = sig
            .signer_addresses
            .first()
            .cloned()
            .or_else(|| sig.signer_domains.first().cloned())
        else {
            return Err((
                SignatureVerdict::Untrusted,
                "the signer certificate names no address or domain".to_string(),
            ));
        };
        if signer_domains.is_empty() {
            return Err((
                SignatureVerdict::Untrusted,
                format!("the signer certificate names no address or domain it can be bound by ({first})"),
            ));
        }
        let signer = first;
        let same_org = signer_domains.iter().any(|d| {
            d.is_within(from.domain())
                || from.domain().is_within(d)
                || (partner_of(d).is_some() && partner_of(d) == partner_of(from.domain()))
        });
        return Err(if same_org {
            (
                SignatureVerdict::Untrusted,
                format!("From {from} is not an address of the signer {signer} (same organisation)"),
            )
        } else {
            (
                SignatureVerdict::Invalid,
                format!("From {from} is of another organisation than the signer {signer}"),
            )
        });
    }
    Ok(())
}

/// `headers`, then the opened message: put in front of the opened message itself when nothing
/// had to be stripped from it, so a large message is not copied once more (its buffer grows in
/// place and the content moves up), else followed by the stripped copy.
fn with_headers(mut headers: Vec<u8>, stripped: Option<Vec<u8>>, opened: Vec<u8>) -> Vec<u8> {
    match stripped {
        Some(inner) => {
            headers.extend_from_slice(&inner);
            headers
        }
        None => {
            let mut message = opened;
            message.splice(0..0, headers);
            message
        }
    }
}

/// Removes every `Postern-*` header field (with its folded lines) from the top-level header
/// section. Only we may write them. Borrowed when there is none (the usual case: no copy of a
/// large message is made for nothing).
pub fn strip_results(message: &[u8]) -> Cow<'_, [u8]> {
    let Ok(view) = MessageView::parse(message) else {
        return Cow::Borrowed(message);
    };
    let fields = view.headers();
    // By the name as mail-parser reads it (white space inside ignored), so "Postern -Signature"
    // from outside goes too.
    let ours = |h: &&postern_core::HeaderField<'_>| {
        let name: String = h.name.chars().filter(|c| !c.is_whitespace()).collect();
        postern_core::mime::starts_with_ignore_case(&name, RESULT_PREFIX)
    };
    if !fields.iter().any(|h| ours(&h)) {
        return Cow::Borrowed(message);
    }
    let mut out = Vec::with_capacity(message.len());
    let mut pos = 0;
    for h in fields.iter().filter(ours) {
        let start = h.raw.as_ptr() as usize - message.as_ptr() as usize;
        out.extend_from_slice(&message[pos..start]);
        pos = start + h.raw.len();
    }
    out.extend_from_slice(&message[pos..]);
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Nothing to strip: the same bytes, not a copy (a large inbound message was copied whole
    /// for this before); something to strip: only our fields go, folded lines included.
    #[test]
    fn result_fields_are_stripped_and_a_clean_message_is_not_copied() {
        let clean = b"From: a@p.test\r\nSubject: x\r\n\r\nPostern-Signature: in the body\r\n";
        match strip_results(clean) {
            Cow::Borrowed(b) => assert_eq!(b.as_ptr(), clean.as_ptr()),
            Cow::Owned(_) => panic!("copied a message with nothing to strip"),
        }
        let forged = b"Postern-Signature: valid\r\nFrom: a@p.test\r\npostern-x: a\r\n b\r\nPostern -Signature: valid\r\nSubject: x\r\n\r\nbody\r\n";
        let out = strip_results(forged);
        assert!(matches!(out, Cow::Owned(_)));
        assert_eq!(
            &out[..],
            &b"From: a@p.test\r\nSubject: x\r\n\r\nbody\r\n"[..]
        );
    }

    /// Organisation certificates (issue 24, D3): a signer bound to a domain (a dNSName, or a
    /// bare domain in emailAddress/CN, as Direct writes them) speaks for every address of
    /// exactly that domain when it is the expected partner's; what cannot be read as an address
    /// is never "another organisation".
    #[test]
    fn an_organisation_certificate_binds_its_own_domain_exactly() {
        use postern_core::{ChainStatus, Report, SignatureReport, SignatureStatus, Standard};
        let report = |addresses: &[&str], domains: &[&str]| {
            let mut sig = SignatureReport::new(SignatureStatus::Valid);
            sig.chain = ChainStatus::Trusted {
                anchor: "CN=UM-AMALGA1".into(),
            };
            sig.signer_addresses = addresses.iter().map(|s| s.to_string()).collect();
            sig.signer_domains = domains.iter().map(|s| s.to_string()).collect();
            let mut r = Report::new(Standard::Smime);
            r.signatures.push(sig);
            r
        };
        let mut dir = Directory::default();
        dir.partners.push(crate::Partner::new(
            crate::DomainPattern::Exact(postern_core::Domain::new("redmond.test").unwrap()),
            crate::PartnerPolicy::Required,
            vec![Standard::Smime],
        ));
        let msg = |from: &str| format!("From: <{from}>\r\nSubject: x\r\n\r\nhi\r\n");
        let org = report(&[], &["redmond.test"]);
        let verdict = |r: &Report, partner: Option<usize>, from: &str| {
            signature_verdict(r, &dir, partner, None, msg(from).as_bytes())
        };
        // The partner's organisation certificate: every address of its domain.
        assert_eq!(
            verdict(&org, Some(0), "toby@redmond.test").0,
            SignatureVerdict::Valid
        );
        // Not a subdomain, not without the partner expected: the same organisation, untrusted.
        let (v, why) = verdict(&org, Some(0), "toby@lab.redmond.test");
        assert_eq!(v, SignatureVerdict::Untrusted, "{why:?}");
        let (v, why) = verdict(&org, None, "toby@redmond.test");
        assert_eq!(v, SignatureVerdict::Untrusted, "{why:?}");
        assert!(
            why.iter().all(|w| !w.contains("another organisation")),
            "{why:?}"
        );
        // Another domain: invalid, named.
        let (v, why) = verdict(&org, Some(0), "eve@elsewhere.test");
        assert_eq!(v, SignatureVerdict::Invalid, "{why:?}");
        // A certificate that names nothing usable: untrusted, said so.
        let (v, why) = verdict(&report(&[], &[]), Some(0), "toby@redmond.test");
        assert_eq!(v, SignatureVerdict::Untrusted);
        assert!(
            why.iter().any(|w| w.contains("names no address or domain")),
            "{why:?}"
        );
        // The same with the envelope sender, as the relay passes it (the RI's message through
        // the relay was invalid here: the envelope check read the bare domain as an address).
        let sender = |a: &str| Address::new(a).unwrap();
        let enveloped = |r: &Report, mail_from: &str, from: &str| {
            signature_verdict(
                r,
                &dir,
                Some(0),
                Some(&sender(mail_from)),
                msg(from).as_bytes(),
            )
        };
        assert_eq!(
            enveloped(&org, "toby@redmond.test", "toby@redmond.test").0,
            SignatureVerdict::Valid
        );
        let (v, why) = enveloped(&org, "bounce@elsewhere.test", "toby@redmond.test");
        assert_eq!(v, SignatureVerdict::Invalid, "{why:?}");
        assert!(why.iter().any(|w| w.contains("sender's domain")), "{why:?}");
        let (v, why) = enveloped(&report(&[], &[]), "toby@redmond.test", "toby@redmond.test");
        assert_eq!(v, SignatureVerdict::Untrusted, "{why:?}");
    }

    /// RFC 3183 name mapping: `domain-signing-authority@redmond.test` speaks for every address
    /// of its domain and of the domains below it, as the expected partner only; another person
    /// of the domain does not, and neither does an authority of a subdomain for its parent.
    #[test]
    fn a_domain_signing_authority_speaks_for_its_domain_and_below() {
        use postern_core::{ChainStatus, Report, SignatureReport, SignatureStatus, Standard};
        let report = |address: &str| {
            let mut sig = SignatureReport::new(SignatureStatus::Valid);
            sig.chain = ChainStatus::Trusted {
                anchor: "CN=CA".into(),
            };
            sig.signer_addresses = vec![address.to_string()];
            let mut r = Report::new(Standard::Smime);
            r.signatures.push(sig);
            r
        };
        // The partner and its subdomains, as a HISP's entries name them.
        let mut dir = Directory::default();
        let d = postern_core::Domain::new("redmond.test").unwrap();
        for pattern in [
            crate::DomainPattern::Exact(d.clone()),
            crate::DomainPattern::Subdomains(d),
        ] {
            dir.partners.push(crate::Partner::new(
                pattern,
                crate::PartnerPolicy::Required,
                vec![Standard::Smime],
            ));
        }
        let verdict = |r: &Report, partner: Option<usize>, from: &str| {
            let msg = format!("From: <{from}>\r\nSubject: x\r\n\r\nhi\r\n");
            signature_verdict(r, &dir, partner, None, msg.as_bytes()).0
        };
        let dsa = report("domain-signing-authority@redmond.test");
        assert_eq!(
            verdict(&dsa, Some(0), "toby@redmond.test"),
            SignatureVerdict::Valid
        );
        assert_eq!(
            verdict(&dsa, Some(1), "toby@lab.redmond.test"),
            SignatureVerdict::Valid
        );
        assert_eq!(
            verdict(&dsa, None, "toby@redmond.test"),
            SignatureVerdict::Untrusted
        );
        let sub = report("domain-signing-authority@lab.redmond.test");
        assert_eq!(
            verdict(&sub, Some(0), "toby@redmond.test"),
            SignatureVerdict::Untrusted
        );
        // The expected partner must be the From's: the parent entry's anchors do not vouch
        // for mail the subdomain entry expects.
        assert_eq!(
            verdict(&dsa, Some(0), "toby@lab.redmond.test"),
            SignatureVerdict::Untrusted
        );
        let person = report("eve@redmond.test");
        assert_eq!(
            verdict(&person, Some(0), "toby@redmond.test"),
            SignatureVerdict::Untrusted
        );
        assert_eq!(
            verdict(&dsa, Some(0), "x@elsewhere.test"),
            SignatureVerdict::Invalid
        );
    }

    #[test]
    fn result_headers_go_in_front_of_either_copy() {
        let h = b"Postern-Signature: valid\r\n".to_vec();
        let opened = b"Subject: x\r\n\r\nbody\r\n".to_vec();
        let want = b"Postern-Signature: valid\r\nSubject: x\r\n\r\nbody\r\n".to_vec();
        assert_eq!(with_headers(h.clone(), None, opened.clone()), want);
        assert_eq!(with_headers(h, Some(opened), b"ignored".to_vec()), want);
    }
}
