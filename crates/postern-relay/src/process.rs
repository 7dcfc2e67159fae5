//! Working one spooled message: route the recipients still pending, deliver what may go, record
//! every outcome in the spool, bounce what failed for good, and say when to come back.
//!
//! Re-routing happens on every attempt (nothing sealed is kept between attempts): a partner's
//! key removed while a message waits means the next attempt holds or bounces, never that an
//! older decision sends it somewhere the policy no longer allows.

use postern_core::EnhancedStatus;
use std::borrow::Cow;
use std::time::Instant;

use postern_core::{Address, Standard};
use postern_router::{Decision, Disposition, Envelope, Inbound, Origin as RouteOrigin, Submission};

use crate::config::NextHop;
use crate::dsn::{self, Failure};
use crate::quarantine::HeldOrigin;
use crate::shared::Shared;
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
        /// A partner's notification about one of our Direct messages: counted once it has
        /// reached our user (a delivery that is retried must not find it counted already).
        notice: Option<crate::mdn::PendingNotice>,
    },
    Defer {
        idx: Vec<usize>,
        reason: String,
    },
    Fail {
        idx: Vec<usize>,
        status: EnhancedStatus,
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
    /// Not passed on, and done with (a duplicate Direct notification): the recipients count
    /// as delivered.
    Suppress {
        idx: Vec<usize>,
        why: &'static str,
    },
    /// Stored in the portal; the recipient is notified.
    Portal {
        idx: Vec<usize>,
        message: Vec<u8>,
        /// The partner's `portal_days` (`None`: the portal's default).
        days: Option<u32>,
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
    let steps = decide(shared, &mut entry, &data).await;
    let routed = started.elapsed();
    match entry.origin {
        Origin::Public => shared.metrics.open_latency.observe(routed),
        _ => shared.metrics.seal_latency.observe(routed),
    }
    entry.attempts += 1;
    let mut work = Work {
        shared,
        entry: &mut entry,
        data: &data,
        summary: Vec::new(),
    };
    // The opened inbound message and its report, kept for the sender check below.
    let inbound_opened = work.run(steps).await;
    let mut summary = std::mem::take(&mut work.summary);
    let mut next = schedule(shared, &mut entry);
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

/// The steps for this attempt. A panic while deciding (parsers, backends, inspection: all fed
/// by strangers) holds the message for an administrator; the worker goes on with the next one.
async fn decide<'a>(shared: &Shared, entry: &mut Entry, data: &'a [u8]) -> Vec<Step<'a>> {
    match contain_panic(plan(shared, entry, data)).await {
        Ok((steps, inspection)) => {
            // The verdict stays with the message: a retry does not inspect it again.
            if entry.inspection.is_none() {
                entry.inspection = inspection;
            }
            steps
        }
        Err(()) => {
            shared.metrics.panics.inc();
            tracing::error!(queue_id = %entry.id, "internal error while deciding; message held");
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
    }
}

/// When to come back for the recipients still pending (`None`: nobody is); past the maximum
/// age they bounce instead (4.4.7).
fn schedule(shared: &Shared, entry: &mut Entry) -> Option<u64> {
    let now = unix_ms();
    entry.pending().next()?;
    let age = (now / 1000).saturating_sub(entry.received_at);
    if age >= shared.settings.max_age.as_secs() {
        let attempts = entry.attempts;
        for r in entry.recipients.iter_mut() {
            if r.state == RcptState::Pending {
                let last = r.last_error.clone().unwrap_or_default();
                bounce(
                    r,
                    // Delivery time expired: RFC 3463 defines X.4.7 as a persistent
                    // transient status only, and so it is reported (as Postfix does).
                    EnhancedStatus::new(postern_core::StatusClass::Persistent, 4, 7),
                    format!("gave up after {attempts} attempts: {last}"),
                );
            }
        }
        return None;
    }
    let sched = &shared.settings.retry;
    let i = (entry.attempts as usize)
        .saturating_sub(1)
        .min(sched.len() - 1);
    let at = now + sched[i].as_millis() as u64;
    entry.next_attempt = at;
    Some(at)
}

/// One attempt's steps carried out on the entry, with a line of summary per recipient.
struct Work<'w> {
    shared: &'w Shared,
    entry: &'w mut Entry,
    data: &'w [u8],
    summary: Vec<String>,
}

impl Work<'_> {
    /// Carries out the steps in order; returns the opened inbound message and its report, if
    /// one was delivered, for the sender check after them.
    async fn run<'d>(
        &mut self,
        steps: Vec<Step<'d>>,
    ) -> Option<(Box<postern_core::Report>, Cow<'d, [u8]>)> {
        let mut inbound_opened = None;
        for (n, step) in steps.into_iter().enumerate() {
            match step {
                Step::Deliver {
                    idx,
                    inbound,
                    message,
                    sealed,
                    tls_required,
                    opened,
                    notice,
                } => {
                    // A sealed copy for a Direct HISP is recorded before it is handed over (its
                    // notification may come back before this attempt ends), and forgotten for
                    // the recipients it did not reach.
                    let tracked = if !inbound && sealed.is_some() {
                        crate::mdn::track_sending(self.shared, self.entry, &idx, self.data).await
                    } else {
                        None
                    };
                    self.deliver(n, &idx, inbound, &message, sealed, tls_required)
                        .await;
                    if let Some(t) = tracked {
                        crate::mdn::settle(self.shared, self.entry, t).await;
                    }
                    // An opened message that reached our users: Direct wants a notification.
                    if inbound && opened.is_some() {
                        crate::mdn::queue_notifications(self.shared, self.entry, &idx, &message);
                    }
                    if let Some(notice) = notice {
                        crate::mdn::counted(self.shared, self.entry, &idx, notice).await;
                    }
                    if let Some(report) = opened {
                        inbound_opened = Some((report, message));
                    }
                }
                Step::Defer { idx, reason } => self.each(idx, "held-for-retry", |r, m| {
                    m.deferred.inc();
                    r.last_error = Some(reason.clone());
                }),
                Step::Fail {
                    idx,
                    status,
                    reason,
                } => self.each(idx, "bounced", |r, _| bounce(r, status, reason.clone())),
                Step::Quarantine {
                    idx,
                    reason,
                    verdict,
                } => self.quarantine(idx, &reason, verdict.as_ref()).await,
                Step::Portal { idx, message, days } => self.portal(idx, &message, days).await,
                Step::Suppress { idx, why } => {
                    self.each(idx, &format!("not passed on: {why}"), |r, _| {
                        r.state = RcptState::Delivered;
                    })
                }
                Step::Keep { idx, kind, reason } => self.each(idx, &kind.to_string(), |r, m| {
                    m.held.inc();
                    r.state = RcptState::Held {
                        kind,
                        reason: reason.clone(),
                    };
                }),
            }
        }
        inbound_opened
    }

    /// Applies `f` to each recipient in `idx` and records `what` for it.
    fn each(
        &mut self,
        idx: Vec<usize>,
        what: &str,
        mut f: impl FnMut(&mut Recipient, &crate::metrics::Metrics),
    ) {
        for i in idx {
            let r = &mut self.entry.recipients[i];
            f(r, &self.shared.metrics);
            self.summary.push(format!("{} {what}", domain(&r.address)));
        }
    }

    /// Hands one copy to its next hop and records each recipient's outcome.
    async fn deliver(
        &mut self,
        n: usize,
        idx: &[usize],
        inbound: bool,
        message: &[u8],
        sealed: Option<Standard>,
        tls_required: bool,
    ) {
        let (shared, entry) = (self.shared, &mut *self.entry);
        let rcpts: Vec<String> = idx
            .iter()
            .map(|i| entry.recipients[*i].address.clone())
            .collect();
        let tag = format!("{}-{}-{}", entry.id, entry.attempts, n + 1);
        let hop: &NextHop = if inbound {
            &shared.settings.inbound
        } else {
            &shared.settings.outbound
        };
        // Every copy that leaves is DKIM-signed last, over what is sent; copies to our own mail
        // server are not (it is not a receiver that checks).
        let dkim = if inbound {
            Vec::new()
        } else {
            let d = postern_router::dkim_signatures(
                &shared.directory.current(),
                message,
                shared.gateway.now(),
            );
            for why in &d.failed {
                tracing::warn!(queue_id = %entry.id, error = %why, "DKIM signing failed; the copy leaves without this signature");
            }
            d.fields
        };
        let h = Handover {
            helo: &shared.settings.hostname,
            tag: &tag,
            mail_from: entry.mail_from.as_deref(),
            rcpts: &rcpts,
            prefix: &dkim,
            data: message,
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
                    self.summary
                        .push(format!("{} delivered {how}", domain(&r.address)));
                }
                Outcome::Temporary(why) => {
                    shared.metrics.deferred.inc();
                    self.summary
                        .push(format!("{} deferred", domain(&r.address)));
                    r.last_error = Some(why);
                }
                Outcome::Permanent { status, text } => {
                    self.summary.push(format!("{} bounced", domain(&r.address)));
                    bounce(r, status, text);
                }
            }
        }
    }

    /// The message moves to the quarantine store (encrypted); its recipients are final here.
    /// If the store fails, they wait and the next attempt tries again.
    async fn quarantine(
        &mut self,
        idx: Vec<usize>,
        reason: &postern_router::QuarantineReason,
        verdict: Option<&serde_json::Value>,
    ) {
        let rcpts: Vec<String> = idx
            .iter()
            .map(|i| self.entry.recipients[*i].address.clone())
            .collect();
        let origin = match self.entry.origin {
            Origin::Public => HeldOrigin::Public,
            _ => HeldOrigin::Internal,
        };
        let held = self
            .shared
            .quarantine
            .hold(
                origin,
                self.entry.mail_from.as_deref(),
                &rcpts,
                postern_store::HoldReason {
                    code: reason.code(),
                    text: &reason.to_string(),
                },
                verdict,
                self.data,
            )
            .await;
        match held {
            Ok(qid) => self.each(idx, &format!("quarantined {qid}"), |r, m| {
                m.held.inc();
                r.state = RcptState::Quarantined { id: qid.clone() };
            }),
            Err(e) => {
                tracing::error!(queue_id = %self.entry.id, error = %e, "quarantine store failed; will retry");
                for i in idx {
                    self.entry.recipients[i].last_error = Some(format!("quarantine: {e}"));
                }
            }
        }
    }

    /// Stores the copy in the portal for each recipient (who is notified), or holds it when
    /// no portal is configured.
    async fn portal(&mut self, idx: Vec<usize>, message: &[u8], days: Option<u32>) {
        let shared = self.shared;
        let Some(portal) = shared.portal.get() else {
            return self.each(idx, "portal-held", |r, m| {
                m.held.inc();
                r.state = RcptState::Held {
                    kind: HoldKind::Portal,
                    reason: NO_PORTAL.into(),
                };
            });
        };
        for i in idx {
            let r = &mut self.entry.recipients[i];
            let stored = portal
                .deliver(
                    self.entry.mail_from.as_deref(),
                    &r.address,
                    message,
                    &self.entry.id,
                    days,
                )
                .await;
            let r = &mut self.entry.recipients[i];
            match stored {
                Ok(ids) => {
                    r.state = RcptState::Delivered;
                    r.last_error = None;
                    shared.metrics.delivered_portal.inc();
                    self.summary
                        .push(format!("{} portal {}", domain(&r.address), ids.join(",")));
                }
                Err(e) => {
                    tracing::error!(queue_id = %self.entry.id, error = %e, "portal delivery failed; will retry");
                    shared.metrics.deferred.inc();
                    self.summary
                        .push(format!("{} deferred", domain(&r.address)));
                    r.last_error = Some(format!("portal: {e}"));
                }
            }
        }
    }
}

/// Why mail for portal delivery is held when there is no portal.
#[cfg(feature = "portal")]
const NO_PORTAL: &str =
    "portal delivery, but no portal is configured (portal.listen); `queue release` sends it in clear";
#[cfg(not(feature = "portal"))]
const NO_PORTAL: &str = "portal delivery, but this relay was built without the portal; \
                         `queue release` sends it in clear";

fn bounce(r: &mut Recipient, status: EnhancedStatus, reason: String) {
    r.state = RcptState::Bounced {
        status,
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
            postern_store::HoldReason {
                code: postern_core::HoldCode::Undeliverable,
                text: reason,
            },
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
                    status: *status,
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

/// Decides for every pending recipient through the gateway (which dispatches by origin);
/// also returns the content verdict, if one was made.
async fn plan<'a>(
    shared: &Shared,
    entry: &Entry,
    data: &'a [u8],
) -> (Vec<Step<'a>>, Option<postern_router::Inspection>) {
    let dir = shared.directory.current();
    let mut steps = Vec::new();
    let mut unclaimed: Vec<(usize, Address)> = Vec::new();
    let mut invalid = Vec::new();
    for (i, r) in entry.recipients.iter().enumerate() {
        if r.state != RcptState::Pending {
            continue;
        }
        match Address::new(&r.address) {
            Ok(a) => unclaimed.push((i, a)),
            Err(_) => invalid.push(i),
        }
    }
    if !invalid.is_empty() {
        steps.push(Step::Fail {
            idx: invalid,
            status: EnhancedStatus::BAD_ADDRESS,
            reason: "recipient address is not valid".into(),
        });
    }
    let mail_from = entry
        .mail_from
        .as_deref()
        .and_then(|a| Address::new(a).ok());
    let envelope = Envelope {
        mail_from: mail_from.clone(),
        rcpt_to: unclaimed.iter().map(|(_, a)| a.clone()).collect(),
    };
    let origin = match entry.origin {
        Origin::Internal => RouteOrigin::OurServer,
        Origin::Public => RouteOrigin::Internet,
        Origin::Portal => RouteOrigin::Portal,
        Origin::Bounce => RouteOrigin::Bounce,
    };
    let submission = Submission {
        origin,
        envelope: &envelope,
        message: data,
        released: entry.released,
        inspection: entry.inspection.clone(),
    };
    let route = shared.gateway.route(&dir, submission).await;
    if let (Some(i), None) = (&route.inspection, &entry.inspection) {
        tracing::info!(queue_id = %entry.id, dlp = %i.summary, "inspected");
    }
    let verdict = route.inspection.as_ref().map(|i| i.detail.clone());
    let mut take = |who: &[Address]| -> Vec<usize> {
        let mut idx = Vec::new();
        for a in who {
            if let Some(p) = unclaimed.iter().position(|(_, x)| x == a) {
                idx.push(unclaimed.remove(p).0);
            }
        }
        idx
    };
    for d in route.decisions {
        let step = match d {
            Decision::Outbound(d) => outbound_step(d, &mut take, data, &verdict),
            Decision::Inbound {
                recipients,
                inbound,
            } => {
                let idx = take(&recipients);
                inbound_step(
                    shared,
                    &dir,
                    mail_from.as_ref(),
                    (idx, &recipients),
                    inbound,
                )
                .await
            }
            // Portal replies, and an inbound message an administrator released.
            Decision::ToOurServer {
                recipients,
                message,
            } => Step::Deliver {
                idx: take(&recipients),
                inbound: true,
                message: message.map_or(Cow::Borrowed(data), Cow::Owned),
                sealed: None,
                tls_required: false,
                opened: None,
                notice: None,
            },
            // What the portal wrote (notifications and codes, no PHI) goes out as it is.
            Decision::AsIs { recipients } => Step::Deliver {
                idx: take(&recipients),
                inbound: false,
                message: Cow::Borrowed(data),
                sealed: None,
                tls_required: false,
                opened: None,
                notice: None,
            },
            Decision::Refuse { recipients, reason } => Step::Fail {
                idx: take(&recipients),
                status: reason.smtp_reply().enhanced,
                reason: reason.to_string(),
            },
            Decision::Defer { recipients, reason } => Step::Defer {
                idx: take(&recipients),
                reason: reason.to_string(),
            },
        };
        steps.push(step);
    }
    // Anyone the gateway did not decide for waits: nothing is dropped silently.
    if !unclaimed.is_empty() {
        steps.push(Step::Defer {
            idx: unclaimed.into_iter().map(|(i, _)| i).collect(),
            reason: "no routing decision".into(),
        });
    }
    (steps, route.inspection)
}

/// The step for one outbound disposition.
fn outbound_step<'a>(
    d: Disposition,
    take: &mut impl FnMut(&[Address]) -> Vec<usize>,
    data: &'a [u8],
    verdict: &Option<serde_json::Value>,
) -> Step<'a> {
    match d {
        // Internal mail to our own domains goes back to our mail server as it is.
        Disposition::Local { recipients } => Step::Deliver {
            idx: take(&recipients),
            inbound: true,
            message: Cow::Borrowed(data),
            sealed: None,
            tls_required: false,
            opened: None,
            notice: None,
        },
        Disposition::Deliver {
            recipients,
            message,
            sealed,
            tls_required,
        } => Step::Deliver {
            idx: take(&recipients),
            inbound: false,
            message: Cow::Owned(message),
            sealed,
            tls_required,
            opened: None,
            notice: None,
        },
        Disposition::Hold { recipients, reason } => Step::Defer {
            idx: take(&recipients),
            reason: reason.to_string(),
        },
        // The status comes from the typed reason (5.7.5 for keys and algorithms, 5.7.1 for a
        // content refusal, 5.6.0 for a message that cannot be parsed).
        Disposition::Bounce { recipients, reason } => Step::Fail {
            idx: take(&recipients),
            status: reason.smtp_reply().enhanced,
            reason: reason.to_string(),
        },
        Disposition::Quarantine { recipients, reason } => Step::Quarantine {
            idx: take(&recipients),
            reason,
            verdict: verdict.clone(),
        },
        // The portal gets the message as this copy would have left (with the DLP tag, without
        // the Bcc list), each recipient their own encrypted copy.
        Disposition::Portal {
            recipients,
            message,
            days,
        } => Step::Portal {
            idx: take(&recipients),
            message,
            days,
        },
    }
}

/// The step for mail from the internet that the inbound router decided on; a partner's
/// signing certificate it found is offered to the harvest.
async fn inbound_step<'a>(
    shared: &Shared,
    dir: &postern_router::CheckedDirectory,
    mail_from: Option<&Address>,
    (idx, recipients): (Vec<usize>, &[Address]),
    inbound: Inbound,
) -> Step<'a> {
    let envelope_rcpts: Vec<String> = recipients.iter().map(|a| a.to_string()).collect();
    match inbound {
        Inbound::Deliver {
            message,
            report,
            verdict,
        } => {
            shared.metrics.inbound_signature(verdict).inc();
            if let Some(report) = &report {
                let smime = postern_smime::SmimeEnvelope::new();
                if let Err(e) =
                    crate::harvest::offer_from(&shared.harvest, dir, mail_from, report, &smime)
                        .await
                {
                    // The message is delivered all the same; the offer comes again.
                    tracing::warn!(error = %e, "harvest offer not recorded");
                }
            }
            // A Direct partner's notification about one of our messages: counted once.
            let (message, notice) =
                match crate::mdn::received(shared, mail_from, &message, &envelope_rcpts).await {
                    crate::mdn::Received::Deliver(notice) => (message, notice),
                    crate::mdn::Received::Tag(field) => {
                        ([field.as_bytes(), &message].concat(), None)
                    }
                    crate::mdn::Received::Suppress(why) => return Step::Suppress { idx, why },
                    crate::mdn::Received::Retry(reason) => return Step::Defer { idx, reason },
                };
            Step::Deliver {
                idx,
                inbound: true,
                message: Cow::Owned(message),
                sealed: None,
                tls_required: false,
                opened: report.map(Box::new),
                notice,
            }
        }
        Inbound::Quarantine { reason, .. } => Step::Quarantine {
            idx,
            reason,
            verdict: None,
        },
    }
}
