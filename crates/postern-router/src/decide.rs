//! The outbound decision: for one message, per group of recipients, what happens.
//!
//! Fail closed: a `required` partner only ever gets a `Deliver` whose message was sealed by a
//! backend (or that the user had already encrypted end to end). Any failure — no certificate,
//! an unusable one, a backend error — becomes `Hold` (temporary) or `Bounce` (permanent).

use std::collections::BTreeMap;
use std::sync::Arc;

use postern_core::{Address, Error, MessageView, Policy, SealRequest, SecureEnvelope, Standard};

use crate::{Directory, Partner, PartnerPolicy};

/// What happens to one group of recipients.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
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
        /// Why, safe to log.
        reason: String,
    },
    /// Return it to the sender (permanent failure).
    Bounce {
        /// Who will not get it.
        recipients: Vec<Address>,
        /// Why, for the DSN.
        reason: String,
    },
    /// Keep it for review (content inspection said so).
    Quarantine {
        /// Who would have got it.
        recipients: Vec<Address>,
        /// Why.
        reason: String,
    },
    /// Store it for pickup on the portal and notify.
    Portal {
        /// Who is notified.
        recipients: Vec<Address>,
    },
}

/// What content inspection decided for a message going out in clear.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContentAction {
    /// Nothing found.
    Allow,
    /// Hold for review.
    Quarantine,
    /// Deliver through the portal instead.
    Portal,
    /// Refuse, with a reason to the sender.
    Block,
}

/// The envelope of a message: SMTP MAIL FROM and RCPT TO.
#[derive(Debug, Clone)]
pub struct Envelope {
    /// Reverse path (`None` for the null sender of bounces).
    pub mail_from: Option<Address>,
    /// Every recipient.
    pub rcpt_to: Vec<Address>,
}

/// Routes messages by the directory, through the backends it was given.
#[derive(Debug, Clone)]
pub struct Router {
    backends: Vec<Arc<dyn SecureEnvelope>>,
    /// Subject marker that forces protection (case-insensitive; removed before sending).
    pub subject_trigger: String,
    /// The algorithm policy for sealing.
    pub policy: Policy,
}

/// Where a recipient belongs: a partner entry (by index) or the clear world.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Group {
    Partner(usize),
    Clear,
}

impl Router {
    /// A router over these backends (one per standard it should use).
    pub fn new(backends: Vec<Arc<dyn SecureEnvelope>>) -> Self {
        Router {
            backends,
            subject_trigger: "[secure]".into(),
            policy: Policy::default(),
        }
    }

    fn backend(&self, standard: Standard) -> Option<&Arc<dyn SecureEnvelope>> {
        self.backends.iter().find(|b| b.standard() == standard)
    }

    /// Decides for every recipient of one outgoing message. `content` is the verdict of content
    /// inspection for the copy that would leave in clear (`None`: not inspected).
    pub async fn outbound(
        &self,
        dir: &Directory,
        envelope: &Envelope,
        raw: &[u8],
        content: Option<ContentAction>,
    ) -> Vec<Disposition> {
        let view = match MessageView::parse(raw) {
            Ok(v) => v,
            Err(e) => {
                return vec![Disposition::Bounce {
                    recipients: envelope.rcpt_to.clone(),
                    reason: e.to_string(),
                }]
            }
        };
        // The user already encrypted it end to end: it passes untouched (not wrapped twice).
        // Signed-only mail is still readable, so it is sealed like any other.
        let user_encrypted = is_user_encrypted(&view);
        let (message, forced) = strip_trigger(&view, &self.subject_trigger);
        let message = strip_bcc(&message);
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
                    let partner = &dir.partners[index];
                    if user_encrypted {
                        // Untouched inside; the outer Bcc field still goes (it would leak the
                        // Bcc list to the partner).
                        Disposition::Deliver {
                            recipients,
                            message: strip_bcc(raw),
                            sealed: None,
                            tls_required: false,
                        }
                    } else {
                        self.for_partner(dir, partner, recipients, &message, forced)
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
        dir: &Directory,
        partner: &Partner,
        recipients: Vec<Address>,
        message: &[u8],
        forced: bool,
    ) -> Disposition {
        let policy = match (partner.policy, forced) {
            // The user asked for protection: a preferred partner must not get plaintext.
            (PartnerPolicy::Preferred, true) => PartnerPolicy::Required,
            (p, _) => p,
        };
        match policy {
            PartnerPolicy::Portal => return Disposition::Portal { recipients },
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
        let mut temporary: Option<String> = None;
        let mut permanent: Vec<String> = Vec::new();
        for &standard in &partner.standards {
            match self.seal(dir, partner, standard, message).await {
                Ok(sealed) => {
                    return Disposition::Deliver {
                        recipients,
                        message: sealed,
                        sealed: Some(standard),
                        tls_required: false,
                    }
                }
                Err(e) if e.is_temporary() => temporary = Some(format!("{standard}: {e}")),
                Err(e) => permanent.push(format!("{standard}: {e}")),
            }
        }
        if partner.standards.is_empty() {
            permanent.push("no standard configured".into());
        }
        match (policy, temporary) {
            (PartnerPolicy::Required, Some(reason)) => Disposition::Hold { recipients, reason },
            (PartnerPolicy::Required, None) => Disposition::Bounce {
                recipients,
                reason: format!(
                    "{} requires encryption and it failed: {}",
                    partner.pattern,
                    permanent.join("; ")
                ),
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

    async fn seal(
        &self,
        dir: &Directory,
        partner: &Partner,
        standard: Standard,
        message: &[u8],
    ) -> Result<Vec<u8>, Error> {
        let backend = self.backend(standard).ok_or_else(|| {
            Error::UnsupportedAlgorithm(format!("no {standard} backend configured"))
        })?;
        let certs = partner.certificates_for(standard);
        if certs.is_empty() {
            return Err(Error::NoUsableKey {
                recipient: partner.pattern.to_string(),
                reason: format!("no {standard} certificate configured"),
            });
        }
        let signer = if partner.sign {
            Some(
                dir.our_credentials(standard)
                    .into_iter()
                    .next()
                    .ok_or_else(|| Error::NoUsableKey {
                        recipient: "our domain".into(),
                        reason: format!("sign = true but we have no {standard} key"),
                    })?,
            )
        } else {
            None
        };
        let view = MessageView::parse(message)?;
        let mut req = SealRequest::encrypt(certs, &self.policy)
            .with_header_protection(partner.header_protection);
        if let Some(c) = partner.cipher {
            req = req.with_cipher(c);
        }
        if let Some(s) = &signer {
            req = req.signed_by(s);
        }
        backend.seal(&view, &req).await
    }
}

/// Is the message itself encrypted (S/MIME enveloped or PGP/MIME encrypted)?
fn is_user_encrypted(view: &MessageView<'_>) -> bool {
    let root = view.root();
    match root.mime_type().as_str() {
        "application/pkcs7-mime" | "application/x-pkcs7-mime" => {
            root.content_type_param("smime-type").is_some_and(|t| {
                t.eq_ignore_ascii_case("enveloped-data")
                    || t.eq_ignore_ascii_case("authenveloped-data")
            })
        }
        "multipart/encrypted" => root
            .content_type_param("protocol")
            .is_some_and(|p| p.eq_ignore_ascii_case("application/pgp-encrypted")),
        _ => false,
    }
}

fn clear(
    recipients: Vec<Address>,
    message: &[u8],
    content: Option<ContentAction>,
    forced: bool,
) -> Disposition {
    if forced {
        return Disposition::Portal { recipients };
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
            reason: "protected health information found in a message leaving in clear".into(),
        },
        ContentAction::Portal => Disposition::Portal { recipients },
        ContentAction::Block => Disposition::Bounce {
            recipients,
            reason: "content policy: this message may not be sent unencrypted".into(),
        },
    }
}

/// Removes the subject trigger (case-insensitive); returns the message and whether it was there.
fn strip_trigger(view: &MessageView<'_>, trigger: &str) -> (Vec<u8>, bool) {
    let raw = view.raw();
    if trigger.is_empty() {
        return (raw.to_vec(), false);
    }
    let needle = trigger.to_ascii_lowercase();
    for h in view.headers() {
        if !h.name.eq_ignore_ascii_case("subject") {
            continue;
        }
        let value = String::from_utf8_lossy(h.raw_value).into_owned();
        let Some(at) = value.to_ascii_lowercase().find(&needle) else {
            return (raw.to_vec(), false);
        };
        let mut new_value = format!("{}{}", &value[..at], &value[at + trigger.len()..]);
        // Tidy the space the marker leaves behind.
        new_value = new_value.replacen("  ", " ", 1);
        let start = h.raw.as_ptr() as usize - raw.as_ptr() as usize;
        let value_start = start + (h.raw.len() - h.raw_value.len());
        let mut out = raw[..value_start].to_vec();
        out.extend_from_slice(new_value.as_bytes());
        out.extend_from_slice(&raw[start + h.raw.len()..]);
        return (out, true);
    }
    (raw.to_vec(), false)
}

/// Removes Bcc header fields: a Bcc list must never reach any recipient's copy.
fn strip_bcc(message: &[u8]) -> Vec<u8> {
    let Ok(view) = MessageView::parse(message) else {
        return message.to_vec();
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
        return message.to_vec();
    }
    let mut out = Vec::with_capacity(message.len());
    let mut pos = 0;
    for r in bcc {
        out.extend_from_slice(&message[pos..r.start]);
        pos = r.end;
    }
    out.extend_from_slice(&message[pos..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use async_trait::async_trait;
    use postern_core::{Domain, OpenRequest, Opened};
    use proptest::prelude::*;

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
        async fn seal(
            &self,
            msg: &MessageView<'_>,
            req: &SealRequest<'_>,
        ) -> Result<Vec<u8>, Error> {
            assert!(!req.recipients.is_empty());
            match self.outcome {
                Outcome::Seal => {
                    let mut m = format!("X-Fake-Sealed: {}\r\n", self.standard).into_bytes();
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

    proptest! {
        #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

        /// Whatever the directory, the recipients and the backend failures: a required partner
        /// never gets a Deliver that is not sealed, every recipient gets exactly one decision,
        /// and no copy carries the Bcc list.
        #[test]
        fn fail_closed(
            partners in proptest::collection::vec(
                (policy_strategy(), any::<bool>(), any::<bool>(), any::<bool>(), any::<bool>()),
                1..5,
            ),
            smime in outcome_strategy(),
            pgp in outcome_strategy(),
            recipients in proptest::collection::vec((0usize..6, 0usize..3), 1..12),
            trigger in any::<bool>(),
            user_encrypted in any::<bool>(),
        ) {
            let mut dir = Directory::default();
            for (i, (policy, s, o, has_s, has_o)) in partners.iter().enumerate() {
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
            let ct = if user_encrypted {
                "Content-Type: application/pkcs7-mime; smime-type=enveloped-data\r\n"
            } else {
                "Content-Type: text/plain\r\n"
            };
            let msg = format!("From: a@clinic.test\r\nTo: u0@p0.test\r\nBcc: hidden@p1.test\r\n{subject}{ct}\r\nbody\r\n");
            let env = Envelope { mail_from: None, rcpt_to: uniq.clone() };
            let out = block_on(router.outbound(&dir, &env, msg.as_bytes(), None));

            let mut seen: Vec<Address> = Vec::new();
            for d in &out {
                let (rs, delivered) = match d {
                    Disposition::Deliver { recipients, message, sealed, .. } => (recipients, Some((message, sealed))),
                    Disposition::Hold { recipients, .. }
                    | Disposition::Bounce { recipients, .. }
                    | Disposition::Quarantine { recipients, .. }
                    | Disposition::Portal { recipients } => (recipients, None),
                };
                seen.extend(rs.iter().cloned());
                if let Some((message, sealed)) = delivered {
                    let text = String::from_utf8_lossy(message);
                    for r in rs {
                        if let Some(i) = dir.partner_index_for(r.domain()) {
                            let p = &dir.partners[i];
                            let must_encrypt = p.policy == PartnerPolicy::Required
                                || (p.policy == PartnerPolicy::Preferred && trigger);
                            if must_encrypt && !user_encrypted {
                                prop_assert!(sealed.is_some() && text.starts_with("X-Fake-Sealed"), "plaintext to required partner {r}: {d:?}");
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

    #[test]
    fn the_subject_trigger_is_removed_and_forces_the_portal_for_everyone_else() {
        let dir = Directory::default();
        let router = Router::new(Vec::new());
        let msg = b"From: a@clinic.test\r\nTo: x@gmail.test\r\nSubject: [Secure] lab results\r\n\r\nhi\r\n";
        let env = Envelope {
            mail_from: None,
            rcpt_to: vec![Address::new("x@gmail.test").unwrap()],
        };
        let out = block_on(router.outbound(&dir, &env, msg, Some(ContentAction::Allow)));
        assert!(matches!(&out[..], [Disposition::Portal { .. }]), "{out:?}");
        let (m, forced) = strip_trigger(&MessageView::parse(msg).unwrap(), "[secure]");
        assert!(forced);
        assert!(String::from_utf8(m)
            .unwrap()
            .contains("Subject: lab results\r\n"));
    }
}
