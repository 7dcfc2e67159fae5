//! The whole decision for one message, by where it came from. What the gateway may do with a
//! message depends on its origin before anything else: mail from the internet is only ever for
//! our own domains (never relayed), mail the portal wrote leaves as it is, a message an
//! administrator released skips what held it. Every MTA that embeds Postern would otherwise
//! write this dispatch again, and a mistake in it relays or leaks; so it lives here, and
//! [`Gateway::route`] is the one call an embedder makes per message.

use postern_core::{Address, Envelope, Inspection};

use crate::decide::{Disposition, Reason};
use crate::gateway::{Gateway, Outgoing, Scanned};
use crate::inbound::Inbound;
use crate::CheckedDirectory;

/// Where a message came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Origin {
    /// Our own mail server: mail leaving for partners and the world, and mail between our own
    /// users.
    OurServer,
    /// The internet: mail for our domains, opened and verified on the way in.
    Internet,
    /// The secure portal: its notifications and one-time codes (no PHI) leave as they are,
    /// recipients' replies go to our mail server.
    Portal,
    /// A delivery status notification the gateway wrote itself: routed as our own mail.
    Bounce,
}

/// One message as the gateway is asked to route it.
#[derive(Debug, Clone)]
pub struct Submission<'a> {
    /// Where it came from.
    pub origin: Origin,
    /// MAIL FROM and the recipients still to decide for.
    pub envelope: &'a Envelope,
    /// The message as received.
    pub message: &'a [u8],
    /// An administrator released it from the quarantine: what held it is skipped (content
    /// inspection for mail leaving; opening for mail from the internet).
    pub released: bool,
    /// The content verdict of an earlier attempt (see [`Outgoing::inspected`]).
    pub inspection: Option<Inspection>,
}

impl<'a> Submission<'a> {
    /// A message not released and not inspected yet.
    pub fn new(origin: Origin, envelope: &'a Envelope, message: &'a [u8]) -> Self {
        Submission {
            origin,
            envelope,
            message,
            released: false,
            inspection: None,
        }
    }
}

/// What happens to one group of recipients of a submission. Exhaustive: a caller handles
/// every case.
#[derive(Debug, Clone)]
pub enum Decision {
    /// The outbound gateway's decision (our server's mail, bounces).
    Outbound(Disposition),
    /// Mail from the internet for our own recipients, opened (or tagged, or held) by the
    /// inbound router.
    Inbound {
        /// Our recipients.
        recipients: Vec<Address>,
        /// What opening decided.
        inbound: Inbound,
    },
    /// To our mail server: `message`, or the submission as it is when `None`.
    ToOurServer {
        /// Our recipients.
        recipients: Vec<Address>,
        /// A copy to deliver instead of the submission (result headers from outside removed).
        message: Option<Vec<u8>>,
    },
    /// Out to the world as it is: what the portal wrote (notifications, codes; no PHI).
    AsIs {
        /// The recipients.
        recipients: Vec<Address>,
    },
    /// Refused for good, with its reply (mail from the internet for someone not ours).
    Refuse {
        /// The recipients.
        recipients: Vec<Address>,
        /// Why.
        reason: Reason,
    },
    /// Not decided yet: keep it and try again later (a temporary reason: the malware scanner
    /// could not answer).
    Defer {
        /// The recipients.
        recipients: Vec<Address>,
        /// Why.
        reason: Reason,
    },
}

/// Every recipient of a submission decided once, and the content verdict if one was made.
#[derive(Debug, Clone)]
pub struct Route {
    /// Keep it with a queued message and pass it back in [`Submission::inspection`].
    pub inspection: Option<Inspection>,
    /// One decision per group of recipients.
    pub decisions: Vec<Decision>,
}

impl Gateway {
    /// Decides for every recipient of a message by where it came from (see [`Origin`]).
    pub async fn route(&self, dir: &CheckedDirectory, sub: Submission<'_>) -> Route {
        let (mut ours, theirs): (Vec<Address>, Vec<Address>) = sub
            .envelope
            .rcpt_to
            .iter()
            .cloned()
            .partition(|a| dir.is_ours(a.domain()));
        let mut decisions = Vec::new();
        match sub.origin {
            Origin::Internet => {
                if !theirs.is_empty() {
                    // Accepted for our domains only; the directory may have changed since.
                    decisions.push(Decision::Refuse {
                        recipients: theirs,
                        reason: Reason::RelayDenied,
                    });
                }
                if !ours.is_empty() {
                    let decision = if sub.released {
                        // Released from the quarantine: to our mail server as received
                        // (opening would hold it again for the same reason), without result
                        // headers that came from outside.
                        Decision::ToOurServer {
                            recipients: ours,
                            // `None` (the submission as it is) when there was nothing to strip.
                            message: match crate::strip_results(sub.message) {
                                std::borrow::Cow::Owned(v) => Some(v),
                                std::borrow::Cow::Borrowed(_) => None,
                            },
                        }
                    } else {
                        let inbound = self
                            .inbound(dir, sub.envelope.mail_from.as_ref(), sub.message)
                            .await;
                        // Direct: a recipient the signed To and Cc do not name is refused
                        // (AS 1.3), for that recipient only.
                        if let Inbound::Deliver { message, .. } = &inbound {
                            let mail_from = sub.envelope.mail_from.as_ref();
                            if crate::direct::rules_apply(dir, mail_from, sub.message)
                                || crate::direct::names_direct(dir, message)
                            {
                                let refused = crate::direct::not_routed(message, &ours);
                                if !refused.is_empty() {
                                    ours.retain(|r| !refused.contains(r));
                                    decisions.push(Decision::Refuse {
                                        recipients: refused,
                                        reason: Reason::NotInRoutingHeaders,
                                    });
                                }
                                if ours.is_empty() {
                                    return Route {
                                        inspection: None,
                                        decisions,
                                    };
                                }
                            }
                        }
                        // Scanned as our users will see it: opened, for sealed mail.
                        let scanned = match &inbound {
                            Inbound::Deliver { message, .. } => self.scan(message).await,
                            Inbound::Quarantine { .. } => Scanned::Proceed,
                        };
                        match scanned {
                            Scanned::Proceed => Decision::Inbound {
                                recipients: ours,
                                inbound,
                            },
                            Scanned::Malware(reason) => Decision::Inbound {
                                recipients: ours,
                                inbound: Inbound::Quarantine {
                                    message: crate::strip_results(sub.message).into_owned(),
                                    reason,
                                },
                            },
                            Scanned::Defer(reason) => Decision::Defer {
                                recipients: ours,
                                reason,
                            },
                        }
                    };
                    decisions.push(decision);
                }
                Route {
                    inspection: None,
                    decisions,
                }
            }
            Origin::Portal => {
                if !ours.is_empty() {
                    // A portal recipient's reply carries what an outsider wrote and attached.
                    decisions.push(match self.scan(sub.message).await {
                        Scanned::Proceed => Decision::ToOurServer {
                            recipients: ours,
                            message: None,
                        },
                        Scanned::Malware(reason) => Decision::Inbound {
                            recipients: ours,
                            inbound: Inbound::Quarantine {
                                message: sub.message.to_vec(),
                                reason,
                            },
                        },
                        Scanned::Defer(reason) => Decision::Defer {
                            recipients: ours,
                            reason,
                        },
                    });
                }
                if !theirs.is_empty() {
                    decisions.push(Decision::AsIs { recipients: theirs });
                }
                Route {
                    inspection: None,
                    decisions,
                }
            }
            Origin::OurServer | Origin::Bounce => {
                let outgoing = Outgoing::new(sub.envelope, sub.message)
                    .released(sub.released)
                    .inspected(sub.inspection);
                let plan = self.outbound(dir, outgoing).await;
                Route {
                    inspection: plan.inspection,
                    decisions: plan
                        .dispositions
                        .into_iter()
                        .map(Decision::Outbound)
                        .collect(),
                }
            }
        }
    }
}

impl Decision {
    /// The recipients this decision is for.
    pub fn recipients(&self) -> &[Address] {
        match self {
            Decision::Outbound(d) => d.recipients(),
            Decision::Inbound { recipients, .. }
            | Decision::ToOurServer { recipients, .. }
            | Decision::AsIs { recipients }
            | Decision::Refuse { recipients, .. }
            | Decision::Defer { recipients, .. } => recipients,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn gateway() -> Gateway {
        Gateway::builder()
            .backends(vec![
                Arc::new(postern_smime::SmimeEnvelope::new()),
                Arc::new(postern_openpgp::OpenPgpEnvelope::new()),
            ])
            .without_inspection()
            .build()
            .unwrap()
    }

    fn directory(gw: &Gateway) -> CheckedDirectory {
        let dir = crate::Directory::from_toml(
            "[our]\ndomains = [\"clinic.example\"]\n",
            std::path::Path::new("."),
        )
        .unwrap();
        gw.check(dir).unwrap()
    }

    fn envelope(to: &[&str]) -> Envelope {
        Envelope {
            mail_from: Some(Address::new("someone@mail.example").unwrap()),
            rcpt_to: to.iter().map(|a| Address::new(a).unwrap()).collect(),
        }
    }

    const MSG: &[u8] =
        b"From: someone@mail.example\r\nPostern-Signature: valid\r\nSubject: x\r\n\r\nhello\r\n";

    #[tokio::test]
    async fn mail_from_the_internet_is_never_relayed_and_ours_is_opened() {
        let gw = gateway();
        let dir = directory(&gw);
        let env = envelope(&["nurse@clinic.example", "victim@elsewhere.example"]);
        let route = gw
            .route(&dir, Submission::new(Origin::Internet, &env, MSG))
            .await;
        assert_eq!(route.decisions.len(), 2, "{route:?}");
        for d in &route.decisions {
            match d {
                Decision::Refuse {
                    recipients,
                    reason: Reason::RelayDenied,
                } => assert_eq!(recipients[0].to_string(), "victim@elsewhere.example"),
                Decision::Inbound {
                    recipients,
                    inbound: Inbound::Deliver { message, .. },
                } => {
                    assert_eq!(recipients[0].to_string(), "nurse@clinic.example");
                    // The forged result header from outside is gone.
                    let text = String::from_utf8_lossy(message);
                    assert!(!text.contains("Postern-Signature: valid"), "{text}");
                }
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(
            Reason::RelayDenied.smtp_reply().enhanced.to_string(),
            "5.7.1"
        );
    }

    #[tokio::test]
    async fn a_released_inbound_message_goes_to_our_server_without_outside_results() {
        let gw = gateway();
        let dir = directory(&gw);
        let env = envelope(&["nurse@clinic.example"]);
        let mut sub = Submission::new(Origin::Internet, &env, MSG);
        sub.released = true;
        let route = gw.route(&dir, sub).await;
        let [Decision::ToOurServer {
            message: Some(m), ..
        }] = route.decisions.as_slice()
        else {
            panic!("{route:?}");
        };
        assert!(!String::from_utf8_lossy(m).contains("Postern-Signature"));
    }

    #[tokio::test]
    async fn what_the_portal_wrote_leaves_as_it_is_and_replies_come_home() {
        let gw = gateway();
        let dir = directory(&gw);
        let env = envelope(&["nurse@clinic.example", "office@smallpractice.example"]);
        let route = gw
            .route(&dir, Submission::new(Origin::Portal, &env, MSG))
            .await;
        assert!(route.decisions.iter().any(|d| matches!(
            d,
            Decision::ToOurServer { message: None, recipients } if recipients[0].to_string() == "nurse@clinic.example"
        )));
        assert!(route.decisions.iter().any(|d| matches!(
            d,
            Decision::AsIs { recipients } if recipients[0].to_string() == "office@smallpractice.example"
        )));
    }

    #[tokio::test]
    async fn our_servers_mail_goes_through_the_outbound_gateway() {
        let gw = gateway();
        let dir = directory(&gw);
        let env = envelope(&["nurse@clinic.example", "friend@mail.example"]);
        for origin in [Origin::OurServer, Origin::Bounce] {
            let route = gw.route(&dir, Submission::new(origin, &env, MSG)).await;
            assert!(
                route
                    .decisions
                    .iter()
                    .all(|d| matches!(d, Decision::Outbound(_))),
                "{route:?}"
            );
            let mut all: Vec<String> = route
                .decisions
                .iter()
                .flat_map(|d| d.recipients().iter().map(|a| a.to_string()))
                .collect();
            all.sort();
            assert_eq!(all, ["friend@mail.example", "nurse@clinic.example"]);
        }
    }
}
