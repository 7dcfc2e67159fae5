//! Working one spooled message: route the recipients still pending, deliver what may go, record
//! every outcome in the spool, bounce what failed for good, and say when to come back.
//!
//! Re-routing happens on every attempt (nothing sealed is kept between attempts): a partner's
//! key removed while a message waits means the next attempt holds or bounces, never that an
//! older decision sends it somewhere the policy no longer allows.

use std::borrow::Cow;
use std::time::Instant;

use postern_core::{Address, Standard};
use postern_router::{Disposition, Envelope, Inbound, Outgoing};

use crate::config::NextHop;
use crate::dsn::{self, Failure};
use crate::quarantine::HeldOrigin;
use crate::relay::Shared;
use crate::smtp::client::Outcome;
use crate::spool::{Entry, HoldKind, Origin, RcptState, Recipient, Spool};
use crate::transport::{self, Handover};
use crate::util::{contain_panic, unix_ms};

/// One thing to do for a group of recipients (indices into the entry's recipients). A message
/// that goes as it was spooled is borrowed, not copied.
enum Step<'a> {
    Deliver {
        idx: Vec<usize>,
        inbound: bool,
        message: Cow<'a, [u8]>,
        sealed: Option<Standard>,
        tls_required: bool,
        /// What opening an inbound message found: whether a partner's valid signature vouches
        /// for its envelope sender is judged from it, only if a bounce is due (anyone can forge
        /// a MAIL FROM, so only a vouched sender gets one).
        opened: Option<Box<postern_core::Report>>,
    },
    Defer {
        idx: Vec<usize>,
        reason: String,
    },
    Fail {
        idx: Vec<usize>,
        status: String,
        reason: String,
    },
    /// To the quarantine store.
    Quarantine {
        idx: Vec<usize>,
        reason: postern_router::QuarantineReason,
        verdict: Option<serde_json::Value>,
    },
    /// Kept in the spool for an administrator.
    Keep {
        idx: Vec<usize>,
        kind: HoldKind,
        reason: String,
    },
    /// Stored in the portal; the recipient is notified.
    Portal {
        idx: Vec<usize>,
        message: Vec<u8>,
    },
}

/// Processes `id`; returns when to try again (`None`: finished, held or gone). Errors reading
/// or writing the spool retry in a minute rather than drop anything.
pub async fn process(shared: &Shared, id: &str) -> Option<u64> {
    match contain_panic(process_inner(shared, id)).await {
        Ok(Ok(next)) => next,
        Ok(Err(e)) => {
            tracing::error!(queue_id = %id, error = %e, "spool error; retrying in 60 s");
            Some(unix_ms() + 60_000)
        }
        Err(()) => {
            // Outside the decision (which holds the message itself): retry later, loudly.
            shared.metrics.panics.inc();
            tracing::error!(queue_id = %id, "internal error while processing; retrying in 60 s");
            Some(unix_ms() + 60_000)
        }
    }
}

async fn process_inner(shared: &Shared, id: &str) -> std::io::Result<Option<u64>> {
    let spool = &shared.spool;
    let Some((mut entry, data)) = spool.load(id)? else {
        return Ok(None);
    };
    let started = Instant::now();
    // A panic while deciding (parsers, backends, inspection: all fed by strangers) holds this
    // message for an administrator; the worker goes on with the next one.
    let steps = match contain_panic(plan(shared, &entry, &data)).await {
        Ok((steps, inspection)) => {
            // The verdict stays with the message: a retry does not inspect it again.
            if entry.inspection.is_none() {
                entry.inspection = inspection;
            }
            steps
        }
        Err(()) => {
            shared.metrics.panics.inc();
            tracing::error!(queue_id = %id, "internal error while deciding; message held");
            vec![Step::Keep {
                idx: entry
                    .recipients
                    .iter()
                    .enumerate()
                    .filter(|(_, r)| r.state == RcptState::Pending)
                    .map(|(i, _)| i)
                    .collect(),
                kind: HoldKind::Error,
                reason: "internal error while processing this message (held for review; \
                         `queue release` retries it)"
                    .into(),
            }]
        }
    };
    let routed = started.elapsed();
    match entry.origin {
        Origin::Public => shared.metrics.open_latency.observe(routed),
        _ => shared.metrics.seal_latency.observe(routed),
    }
    entry.attempts += 1;
    let mut summary: Vec<String> = Vec::new();
    // The opened inbound message and its report, kept for the sender check below.
    let mut inbound_opened: Option<(Box<postern_core::Report>, Cow<'_, [u8]>)> = None;
    for (n, step) in steps.into_iter().enumerate() {
        match step {
            Step::Deliver {
                idx,
                inbound,
                message,
                sealed,
                tls_required,
                opened,
            } => {
                let rcpts: Vec<String> = idx
                    .iter()
                    .map(|i| entry.recipients[*i].address.clone())
                    .collect();
                let tag = format!("{id}-{}-{}", entry.attempts, n + 1);
                let hop: &NextHop = if inbound {
                    &shared.settings.inbound
                } else {
                    &shared.settings.outbound
                };
                let h = Handover {
                    helo: &shared.settings.hostname,
                    tag: &tag,
                    mail_from: entry.mail_from.as_deref(),
                    rcpts: &rcpts,
                    data: &message,
                    tls_required,
                    wait: shared.settings.delivery_timeout,
                    tls: &shared.settings.tls,
                    destinations: &shared.settings.destinations,
                    pool: &shared.settings.pool,
                };
                shared.metrics.delivery_attempts.inc();
                let outcomes = transport::deliver(hop, shared.settings.mx.as_ref(), &h).await;
                let how = match (inbound, sealed) {
                    (true, _) => "inbound".to_string(),
                    (false, Some(s)) => format!("sealed:{s}"),
                    (false, None) => "plain".to_string(),
                };
                for (i, o) in idx.iter().zip(outcomes) {
                    let r = &mut entry.recipients[*i];
                    match o {
                        Outcome::Delivered => {
                            r.state = RcptState::Delivered;
                            r.last_error = None;
                            match (inbound, sealed) {
                                (true, _) => shared.metrics.delivered_inbound.inc(),
                                (false, Some(_)) => shared.metrics.delivered_sealed.inc(),
                                (false, None) => shared.metrics.delivered_plain.inc(),
                            }
                            summary.push(format!("{} delivered {how}", domain(&r.address)));
                        }
                        Outcome::Temporary(why) => {
                            shared.metrics.deferred.inc();
                            summary.push(format!("{} deferred", domain(&r.address)));
                            r.last_error = Some(why);
                        }
                        Outcome::Permanent { status, text } => {
                            summary.push(format!("{} bounced", domain(&r.address)));
                            bounce(r, &status, text);
                        }
                    }
                }
                if let Some(report) = opened {
                    inbound_opened = Some((report, message));
                }
            }
            Step::Defer { idx, reason } => {
                for i in idx {
                    let r = &mut entry.recipients[i];
                    shared.metrics.deferred.inc();
                    summary.push(format!("{} held-for-retry", domain(&r.address)));
                    r.last_error = Some(reason.clone());
                }
            }
            Step::Fail {
                idx,
                status,
                reason,
            } => {
                for i in idx {
                    let r = &mut entry.recipients[i];
                    summary.push(format!("{} bounced", domain(&r.address)));
                    bounce(r, &status, reason.clone());
                }
            }
            Step::Quarantine {
                idx,
                reason,
                verdict,
            } => {
                // The message moves to the quarantine store (encrypted); its recipients are
                // final here. If the store fails, they wait and the next attempt tries again.
                let rcpts: Vec<String> = idx
                    .iter()
                    .map(|i| entry.recipients[*i].address.clone())
                    .collect();
                let origin = match entry.origin {
                    Origin::Public => HeldOrigin::Public,
                    _ => HeldOrigin::Internal,
                };
                match shared
                    .quarantine
                    .hold(
                        origin,
                        entry.mail_from.as_deref(),
                        &rcpts,
                        &reason.to_string(),
                        verdict.as_ref(),
                        &data,
                    )
                    .await
                {
                    Ok(qid) => {
                        for i in idx {
                            let r = &mut entry.recipients[i];
                            shared.metrics.held.inc();
                            summary.push(format!("{} quarantined {qid}", domain(&r.address)));
                            r.state = RcptState::Quarantined { id: qid.clone() };
                        }
                    }
                    Err(e) => {
                        tracing::error!(queue_id = %id, error = %e, "quarantine store failed; will retry");
                        for i in idx {
                            entry.recipients[i].last_error = Some(format!("quarantine: {e}"));
                        }
                    }
                }
            }
            Step::Portal { idx, message } => {
                let Some(portal) = shared.portal.get() else {
                    for i in idx {
                        let r = &mut entry.recipients[i];
                        shared.metrics.held.inc();
                        summary.push(format!("{} portal-held", domain(&r.address)));
                        r.state = RcptState::Held {
                            kind: HoldKind::Portal,
                            reason: "portal delivery, but no portal is configured \
                                     (portal.listen); `queue release` sends it in clear"
                                .into(),
                        };
                    }
                    continue;
                };
                let dir = shared.directory.current();
                for i in idx {
                    let r = &mut entry.recipients[i];
                    let days = Address::new(&r.address)
                        .ok()
                        .and_then(|a| dir.partner_for(a.domain()).and_then(|p| p.portal_days))
                        .map(i64::from);
                    match portal
                        .deliver(
                            entry.mail_from.as_deref(),
                            std::slice::from_ref(&r.address),
                            &message,
                            &entry.id,
                            days,
                        )
                        .await
                    {
                        Ok(ids) => {
                            r.state = RcptState::Delivered;
                            r.last_error = None;
                            shared.metrics.delivered_portal.inc();
                            summary.push(format!(
                                "{} portal {}",
                                domain(&r.address),
                                ids.join(",")
                            ));
                        }
                        Err(e) => {
                            tracing::error!(queue_id = %id, error = %e, "portal delivery failed; will retry");
                            shared.metrics.deferred.inc();
                            summary.push(format!("{} deferred", domain(&r.address)));
                            r.last_error = Some(format!("portal: {e}"));
                        }
                    }
                }
            }
            Step::Keep { idx, kind, reason } => {
                for i in idx {
                    let r = &mut entry.recipients[i];
                    shared.metrics.held.inc();
                    summary.push(format!("{} {kind}", domain(&r.address)));
                    r.state = RcptState::Held {
                        kind,
                        reason: reason.clone(),
                    };
                }
            }
        }
    }
    let now = unix_ms();
    let mut next = None;
    if entry.pending().next().is_some() {
        let age = (now / 1000).saturating_sub(entry.received_at);
        if age >= shared.settings.max_age.as_secs() {
            for r in entry.recipients.iter_mut() {
                if r.state == RcptState::Pending {
                    let last = r.last_error.clone().unwrap_or_default();
                    bounce(
                        r,
                        "4.4.7",
                        format!("gave up after {} attempts: {last}", entry.attempts),
                    );
                }
            }
        } else {
            let sched = &shared.settings.retry;
            let i = (entry.attempts as usize)
                .saturating_sub(1)
                .min(sched.len() - 1);
            let at = now + sched[i].as_millis() as u64;
            entry.next_attempt = at;
            next = Some(at);
        }
    }
    // Mail from our own side has a sender of ours; mail from the internet only when a partner's
    // signature vouched for it (judged only when a failure is to be told).
    let vouched = entry.origin != Origin::Public
        || unnotified(&entry).is_empty()
        || inbound_opened
            .as_ref()
            .is_some_and(|(r, m)| sender_vouched(shared, &entry, r, m));
    if !vouched {
        if !hold_instead_of_bouncing(shared, &mut entry, &data, &mut summary).await {
            // The quarantine store failed: the message stays in the spool (no bounce, no
            // loss) and the hold is tried again in a minute.
            let at = unix_ms() + 60_000;
            entry.next_attempt = at;
            next = Some(at);
        }
    } else {
        notify_sender(shared, &mut entry, &data)?;
    }
    tracing::info!(
        queue_id = %id,
        origin = ?entry.origin,
        from_domain = entry.mail_from.as_deref().map(domain).unwrap_or("<>"),
        size = data.len(),
        attempt = entry.attempts,
        route_ms = routed.as_millis() as u64,
        total_ms = started.elapsed().as_millis() as u64,
        outcome = %summary.join(", "),
        "processed"
    );
    if entry.is_done() {
        spool.remove(id)?;
        shared.metrics.queue_depth.dec();
        return Ok(None);
    }
    if !spool.update(&entry)? {
        return Ok(None);
    }
    Ok(next)
}

fn bounce(r: &mut Recipient, status: &str, reason: String) {
    r.state = RcptState::Bounced {
        status: status.to_string(),
        reason,
        notified: false,
    };
}

fn domain(addr: &str) -> &str {
    addr.rsplit_once('@').map(|(_, d)| d).unwrap_or(addr)
}

/// Inbound mail that failed for good at our mail server, from an envelope sender nobody vouched
/// for: no bounce (it would carry the message's From and Subject, in clear to a forged third
/// party, or sealed to a partner that never sent it); the message is held in the quarantine for
/// an administrator, and those recipients count as notified. If the quarantine store fails, no
/// bounce is sent either: false, and those recipients stay unnotified, so the spool keeps the
/// message for the next try.
async fn hold_instead_of_bouncing(
    shared: &Shared,
    entry: &mut Entry,
    data: &[u8],
    summary: &mut Vec<String>,
) -> bool {
    let fresh = unnotified(entry);
    if fresh.is_empty() || entry.origin == Origin::Bounce {
        return true;
    }
    let rcpts: Vec<String> = fresh
        .iter()
        .map(|i| entry.recipients[*i].address.clone())
        .collect();
    let reason = "undeliverable: refused for good; no bounce to an envelope sender nobody \
                  vouched for (held for an administrator)";
    match shared
        .quarantine
        .hold(
            HeldOrigin::Public,
            entry.mail_from.as_deref(),
            &rcpts,
            reason,
            None,
            data,
        )
        .await
    {
        Ok(qid) => {
            shared.metrics.held.inc();
            summary.push(format!("bounce withheld, held as {qid}"));
        }
        Err(e) => {
            tracing::error!(queue_id = %entry.id, error = %e, "could not hold an unbounceable message; kept in the spool, no bounce sent");
            return false;
        }
    }
    mark_notified(entry, &fresh);
    true
}

/// Whether a partner's valid signature on the opened message (the verdict Postern-Signature
/// states) vouches for the entry's envelope sender.
fn sender_vouched(
    shared: &Shared,
    entry: &Entry,
    report: &postern_core::Report,
    message: &[u8],
) -> bool {
    let dir = shared.directory.current();
    let mail_from = entry
        .mail_from
        .as_deref()
        .and_then(|a| Address::new(a).ok());
    let partner = mail_from
        .as_ref()
        .and_then(|a| dir.partner_index_for(a.domain()));
    partner.is_some()
        && postern_router::signature_verdict(report, &dir, partner, mail_from.as_ref(), message)
            .0
            .vouches()
}

/// Marks those recipients' failures as told (or held instead of told).
fn mark_notified(entry: &mut Entry, idx: &[usize]) {
    for i in idx {
        if let RcptState::Bounced { notified, .. } = &mut entry.recipients[*i].state {
            *notified = true;
        }
    }
}

/// The recipients that failed for good and whose sender has not been told yet.
fn unnotified(entry: &Entry) -> Vec<usize> {
    entry
        .recipients
        .iter()
        .enumerate()
        .filter(|(_, r)| {
            matches!(
                r.state,
                RcptState::Bounced {
                    notified: false,
                    ..
                }
            )
        })
        .map(|(i, _)| i)
        .collect()
}

/// Queues a DSN for recipients that failed since the last one. The DSN is spooled before the
/// entry records it as sent, so a crash in between means a second DSN, never none.
fn notify_sender(shared: &Shared, entry: &mut Entry, data: &[u8]) -> std::io::Result<()> {
    let fresh = unnotified(entry);
    if fresh.is_empty() {
        return Ok(());
    }
    // No DSN about a DSN (loops), and none to the null sender.
    if entry.origin != Origin::Bounce && entry.mail_from.is_some() {
        let failures: Vec<Failure<'_>> = fresh
            .iter()
            .map(|i| &entry.recipients[*i])
            .filter(|r| dsn::wants_failure_notice(r))
            .filter_map(|r| match &r.state {
                RcptState::Bounced { status, reason, .. } => Some(Failure {
                    rcpt: r,
                    status,
                    reason,
                }),
                _ => None,
            })
            .collect();
        if !failures.is_empty() {
            shared.metrics.bounced.add(failures.len() as u64);
            let id = Spool::new_id();
            let now = unix_ms();
            let msg = dsn::build(
                &shared.settings.hostname,
                entry,
                &failures,
                data,
                now / 1000,
                &id,
            );
            let sender = entry.mail_from.clone().unwrap_or_default();
            let dsn_entry = Entry::new(
                id.clone(),
                Origin::Bounce,
                "127.0.0.1",
                None,
                vec![Recipient::new(sender)],
                msg.len() as u64,
            );
            shared.spool.accept(&dsn_entry, &msg)?;
            shared.metrics.queue_depth.inc();
            shared.scheduler.submit(&id, now);
            tracing::info!(queue_id = %entry.id, dsn_id = %id, recipients = failures.len(), "bounce queued");
        }
    }
    mark_notified(entry, &fresh);
    Ok(())
}

/// Decides for every pending recipient; also returns the content verdict, if one was made.
async fn plan<'a>(
    shared: &Shared,
    entry: &Entry,
    data: &'a [u8],
) -> (Vec<Step<'a>>, Option<postern_router::Inspection>) {
    let dir = shared.directory.current();
    let mut steps = Vec::new();
    let mut ours = Vec::new();
    let mut theirs: Vec<(usize, Address)> = Vec::new();
    let mut invalid = Vec::new();
    for (i, r) in entry.recipients.iter().enumerate() {
        if r.state != RcptState::Pending {
            continue;
        }
        match Address::new(&r.address) {
            Ok(a) if dir.is_ours(a.domain()) => ours.push(i),
            Ok(a) => theirs.push((i, a)),
            Err(_) => invalid.push(i),
        }
    }
    if !invalid.is_empty() {
        steps.push(Step::Fail {
            idx: invalid,
            status: "5.1.3".into(),
            reason: "recipient address is not valid".into(),
        });
    }
    let mail_from = entry
        .mail_from
        .as_deref()
        .and_then(|a| Address::new(a).ok());
    if entry.origin == Origin::Public {
        if !theirs.is_empty() {
            // The directory changed since we accepted it: never relay from the internet.
            steps.push(Step::Fail {
                idx: theirs.iter().map(|(i, _)| *i).collect(),
                status: "5.7.1".into(),
                reason: "relaying denied: not one of our domains".into(),
            });
        }
        if !ours.is_empty() && entry.released {
            // An administrator released it from the quarantine: it goes to our mail server as
            // received (the inbound router would hold it again for the same reason), without
            // any result headers it brought from outside.
            steps.push(Step::Deliver {
                idx: ours,
                inbound: true,
                message: Cow::Owned(postern_router::strip_results(data)),
                sealed: None,
                tls_required: false,
                opened: None,
            });
        } else if !ours.is_empty() {
            match shared.gateway.inbound(&dir, mail_from.as_ref(), data).await {
                Inbound::Deliver {
                    message,
                    report,
                    verdict,
                } => {
                    shared.metrics.inbound_signature(verdict).inc();
                    if let Some(report) = &report {
                        let smime = postern_smime::SmimeEnvelope::new();
                        if let Err(e) = crate::harvest::offer_from(
                            &shared.harvest,
                            &dir,
                            mail_from.as_ref(),
                            report,
                            &smime,
                        )
                        .await
                        {
                            // The message is delivered all the same; the offer comes again.
                            tracing::warn!(error = %e, "harvest offer not recorded");
                        }
                    }
                    steps.push(Step::Deliver {
                        idx: ours,
                        inbound: true,
                        message: Cow::Owned(message),
                        sealed: None,
                        tls_required: false,
                        opened: report.map(Box::new),
                    })
                }
                Inbound::Quarantine { reason, .. } => steps.push(Step::Quarantine {
                    idx: ours,
                    reason,
                    verdict: None,
                }),
            }
        }
        return (steps, None);
    }
    if entry.origin == Origin::Portal {
        // Written by the portal: notifications and codes (no PHI) go out as they are; replies
        // and read receipts go to our mail server.
        if !ours.is_empty() {
            steps.push(Step::Deliver {
                idx: ours,
                inbound: true,
                message: Cow::Borrowed(data),
                sealed: None,
                tls_required: false,
                opened: None,
            });
        }
        if !theirs.is_empty() {
            steps.push(Step::Deliver {
                idx: theirs.iter().map(|(i, _)| *i).collect(),
                inbound: false,
                message: Cow::Borrowed(data),
                sealed: None,
                tls_required: false,
                opened: None,
            });
        }
        return (steps, None);
    }
    // Everything else is the gateway's: our own domains, partners, the clear world, content.
    let mut unclaimed: Vec<(usize, Address)> = ours
        .iter()
        .filter_map(|i| Some((*i, Address::new(&entry.recipients[*i].address).ok()?)))
        .chain(theirs)
        .collect();
    let envelope = Envelope {
        mail_from,
        rcpt_to: unclaimed.iter().map(|(_, a)| a.clone()).collect(),
    };
    let outgoing = Outgoing::new(&envelope, data)
        .released(entry.released)
        .inspected(entry.inspection.clone());
    let plan = shared.gateway.outbound(&dir, outgoing).await;
    if let (Some(i), None) = (&plan.inspection, &entry.inspection) {
        tracing::info!(queue_id = %entry.id, dlp = %i.summary, "inspected");
    }
    let verdict = plan.inspection.as_ref().map(|i| i.detail.clone());
    let mut take = |who: &[Address]| -> Vec<usize> {
        let mut idx = Vec::new();
        for a in who {
            if let Some(p) = unclaimed.iter().position(|(_, x)| x == a) {
                idx.push(unclaimed.remove(p).0);
            }
        }
        idx
    };
    for d in plan.dispositions {
        match d {
            Disposition::Local { recipients } => steps.push(Step::Deliver {
                // Internal mail to our own domains goes back to our mail server as it is.
                idx: take(&recipients),
                inbound: true,
                message: Cow::Borrowed(data),
                sealed: None,
                tls_required: false,
                opened: None,
            }),
            Disposition::Deliver {
                recipients,
                message,
                sealed,
                tls_required,
            } => steps.push(Step::Deliver {
                idx: take(&recipients),
                inbound: false,
                message: Cow::Owned(message),
                sealed,
                tls_required,
                opened: None,
            }),
            Disposition::Hold { recipients, reason } => steps.push(Step::Defer {
                idx: take(&recipients),
                reason: reason.to_string(),
            }),
            // The status comes from the typed reason (5.7.5 for keys and algorithms, 5.7.1 for
            // a content refusal, 5.6.0 for a message that cannot be parsed).
            Disposition::Bounce { recipients, reason } => steps.push(Step::Fail {
                idx: take(&recipients),
                status: reason.smtp_reply().enhanced.into(),
                reason: reason.to_string(),
            }),
            Disposition::Quarantine { recipients, reason } => steps.push(Step::Quarantine {
                idx: take(&recipients),
                reason,
                verdict: verdict.clone(),
            }),
            // The portal gets the message as this copy would have left (with the DLP tag,
            // without the Bcc list), each recipient their own encrypted copy.
            Disposition::Portal {
                recipients,
                message,
            } => steps.push(Step::Portal {
                idx: take(&recipients),
                message,
            }),
        }
    }
    // Anyone the gateway did not decide for waits: nothing is dropped silently.
    if !unclaimed.is_empty() {
        steps.push(Step::Defer {
            idx: unclaimed.into_iter().map(|(i, _)| i).collect(),
            reason: "no routing decision".into(),
        });
    }
    (steps, plan.inspection)
}
