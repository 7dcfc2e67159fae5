//! Direct delivery notifications in the relay. Receiving: once an opened message from a
//! Direct partner reached our mail server, each recipient's `processed` MDN (made by
//! `postern_router::mdn`) is queued as our own outbound mail from that recipient, so it is
//! wrapped, signed and encrypted to the partner like any Direct message. Sending: each Direct
//! message handed to a partner is tracked per recipient in the database until its
//! notifications come back; duplicates are not passed on, and a sender whose message got none
//! in time is told by a DSN.

use std::sync::Arc;
use std::time::Duration;

use postern_core::Address;
use tokio::sync::watch;

use crate::shared::Shared;
use crate::spool::{Entry, Origin, RcptState, Recipient, Spool};
use crate::util::{rfc5322_date, unix_ms};

/// Queues the Direct notifications for `entry`'s recipients at `idx` after an attempt to
/// deliver `delivered` (the opened message) to our mail server: `processed` for each it
/// reached, and `dispatched` too when it asked for timely and reliable delivery and
/// `[direct] gateway_is_destination` says our server is its destination; `failed` for each it
/// cannot reach when it asked for timely and reliable delivery (those recipients then get no
/// DSN as well). Each is written to the spool durably before it counts; a spool that cannot
/// take one is logged, and the delivery stands.
pub(crate) fn queue_notifications(
    shared: &Shared,
    entry: &mut Entry,
    idx: &[usize],
    delivered: &[u8],
) {
    use postern_router::mdn::Kind;
    // Only a Direct partner's mail is answered: every other inbound message leaves here, before
    // its header section is read again.
    let dir = shared.directory.current();
    let mail_from = entry
        .mail_from
        .as_deref()
        .and_then(|a| Address::new(a).ok());
    let direct = mail_from.as_ref().is_some_and(|m| {
        dir.partner_for(m.domain())
            .is_some_and(|p| p.profile == postern_router::PartnerProfile::Direct)
    });
    if !direct {
        return;
    }
    let reliable = postern_router::mdn::wants_reliable(delivered);
    let mut reached = Vec::new();
    let mut failed: Vec<(usize, Address, String)> = Vec::new();
    for &i in idx {
        let Some(r) = entry.recipients.get(i) else {
            continue;
        };
        let Ok(a) = Address::new(&r.address) else {
            continue;
        };
        match &r.state {
            RcptState::Delivered => reached.push(a),
            RcptState::Bounced {
                reason,
                notified: false,
                ..
            } if reliable => failed.push((i, a, reason.clone())),
            _ => {}
        }
    }
    let mut kinds: Vec<(Vec<Address>, Kind)> = Vec::new();
    if !reached.is_empty() {
        kinds.push((reached.clone(), Kind::Processed));
        if reliable && shared.settings.direct.gateway_is_destination {
            kinds.push((reached, Kind::Dispatched));
        }
    }
    for (_, a, why) in &failed {
        kinds.push((vec![a.clone()], Kind::Failed { why: why.clone() }));
    }
    if kinds.is_empty() {
        return;
    }
    let now = unix_ms();
    let date = rfc5322_date(now / 1000);
    let unique = Spool::new_id();
    let stamp = postern_router::mdn::Stamp {
        date: &date,
        unique: &unique,
        hostname: &shared.settings.hostname,
    };
    let mut told: Vec<String> = Vec::new();
    for (rcpts, kind) in kinds {
        let made = postern_router::mdn::notifications(
            &dir,
            mail_from.as_ref(),
            delivered,
            &rcpts,
            &stamp,
            &kind,
        );
        for n in made {
            if queue_one(shared, entry, &n, &kind) && matches!(kind, Kind::Failed { .. }) {
                told.push(n.from.to_string());
            }
        }
    }
    // A failed notification told the sender: no DSN for the same recipient as well.
    for (i, a, _) in failed {
        if told.contains(&a.to_string()) {
            if let Some(RcptState::Bounced { notified, .. }) =
                entry.recipients.get_mut(i).map(|r| &mut r.state)
            {
                *notified = true;
            }
        }
    }
}

/// Queues one notification as our own outbound mail from its recipient; whether it was.
fn queue_one(
    shared: &Shared,
    entry: &Entry,
    n: &postern_router::mdn::Notification,
    kind: &postern_router::mdn::Kind,
) -> bool {
    use postern_router::mdn::Kind;
    let id = Spool::new_id();
    // Never a DSN about a notification (RFC 8098 §2.1 wants none; our user did not write it).
    let mut to = Recipient::new(n.to.to_string());
    to.notify = Some("NEVER".into());
    let mdn = Entry::new(
        id.clone(),
        Origin::Internal,
        "127.0.0.1",
        Some(n.from.to_string()),
        vec![to],
        n.message.len() as u64,
    );
    match shared.spool.accept(&mdn, &n.message) {
        Ok(()) => {
            match kind {
                Kind::Processed => shared.metrics.mdn_processed.inc(),
                Kind::Dispatched => shared.metrics.mdn_dispatched.inc(),
                Kind::Failed { .. } => shared.metrics.mdn_failed.inc(),
            }
            shared.metrics.queue_depth.inc();
            shared.scheduler.submit(&id, unix_ms());
            tracing::info!(queue_id = %entry.id, mdn_id = %id, "delivery notification queued");
            true
        }
        Err(e) => {
            tracing::error!(queue_id = %entry.id, error = %e, "could not queue a delivery notification");
            false
        }
    }
}

/// The rows recorded for one handover (see [`track_sending`], [`settle`]).
pub(crate) struct Tracking {
    message_id: String,
    recipients: Vec<String>,
    idx: Vec<usize>,
}

/// Before a sealed copy is handed to a Direct partner: its recipients there are recorded, so a
/// notification that comes back quickly (or to another node) finds them. Mail from the null
/// sender (nobody to tell), notifications themselves (nobody answers an MDN or a DSN, nor a
/// read receipt) and a message without a usable Message-ID (nothing for a notification to name)
/// are not tracked.
pub(crate) async fn track_sending(
    shared: &Shared,
    entry: &Entry,
    idx: &[usize],
    original: &[u8],
) -> Option<Tracking> {
    let sender = entry.mail_from.as_deref().filter(|s| !s.is_empty())?;
    if entry.origin == Origin::Bounce {
        return None;
    }
    let dir = shared.directory.current();
    let (idx, rcpts): (Vec<usize>, Vec<String>) = idx
        .iter()
        .filter_map(|&i| entry.recipients.get(i).map(|r| (i, r)))
        .filter(|(_, r)| {
            Address::new(&r.address).is_ok_and(|a| {
                dir.partner_for(a.domain())
                    .is_some_and(|p| p.profile == postern_router::PartnerProfile::Direct)
            })
        })
        .map(|(i, r)| (i, r.address.clone()))
        .unzip();
    if rcpts.is_empty() {
        return None;
    }
    let view = postern_core::MessageView::parse(original).ok()?;
    if view.root().mime_type() == "multipart/report" {
        return None;
    }
    let Some(message_id) = view
        .header("message-id")
        .and_then(|v| postern_router::mdn::message_id_token(&v))
    else {
        tracing::warn!(queue_id = %entry.id, "Direct message without a usable Message-ID: its notifications cannot be tracked");
        return None;
    };
    let reliable = postern_router::mdn::wants_reliable(original);
    let d = &shared.settings.direct;
    let wait = if reliable {
        d.reliable_timeout
    } else {
        d.timeout
    };
    let now = (unix_ms() / 1000) as i64;
    let deadline = now.saturating_add(i64::try_from(wait.as_secs()).unwrap_or(i64::MAX));
    match shared
        .tracking
        .track(&message_id, sender, &rcpts, reliable, now, deadline)
        .await
    {
        Ok(()) => Some(Tracking {
            message_id,
            recipients: rcpts,
            idx,
        }),
        Err(e) => {
            // Sent all the same; only the sender's warning at the deadline is lost.
            tracing::error!(queue_id = %entry.id, error = %e, "could not record a Direct message for tracking");
            None
        }
    }
}

/// After the handover: the recipients it did not reach are forgotten (a retry records them
/// again), so they never time out for a message they were never given.
pub(crate) async fn settle(shared: &Shared, entry: &Entry, t: Tracking) {
    let missed: Vec<String> = t
        .idx
        .iter()
        .zip(&t.recipients)
        .filter(|(i, _)| {
            entry
                .recipients
                .get(**i)
                .is_none_or(|r| r.state != RcptState::Delivered)
        })
        .map(|(_, r)| r.clone())
        .collect();
    if missed.is_empty() {
        return;
    }
    if let Err(e) = shared.tracking.untrack(&t.message_id, &missed).await {
        tracing::error!(queue_id = %entry.id, error = %e, "could not forget Direct recipients not reached");
    }
}

/// A notification to count once it has reached our user.
#[derive(Debug, Clone)]
pub(crate) struct PendingNotice {
    message_id: String,
    recipient: String,
    notice: postern_store::Notice,
}

/// What to do with a message from a Direct partner that may be a notification about ours.
pub(crate) enum Received {
    /// Deliver it (and count it afterwards, when it is a notification we wait for).
    Deliver(Option<PendingNotice>),
    /// Deliver it with this result field in front (a notification that does not count).
    Tag(&'static str),
    /// Not passed on (a duplicate, or `processed` while those are not delivered).
    Suppress(&'static str),
    /// The tracking store failed: try again later.
    Retry(String),
}

/// Looks at a partner's notification about one of our Direct messages. It counts only when it
/// comes from a Direct partner, reports on a recipient of that partner's own domain, names a
/// message we sent there, and goes to that message's sender; each kind counts once per
/// recipient, after it has been delivered ([`counted`]).
pub(crate) async fn received(
    shared: &Shared,
    mail_from: Option<&Address>,
    delivered: &[u8],
    envelope_rcpts: &[String],
) -> Received {
    use postern_router::mdn::Disposition;
    use postern_store::{Notice, Peeked};
    let Some(sender) = mail_from else {
        return Received::Deliver(None);
    };
    let direct = shared
        .directory
        .current()
        .partner_for(sender.domain())
        .is_some_and(|p| p.profile == postern_router::PartnerProfile::Direct);
    let Some(report) = direct
        .then(|| postern_router::mdn::read(delivered))
        .flatten()
    else {
        return Received::Deliver(None);
    };
    let notice = match report.disposition {
        Disposition::Processed => Notice::Processed,
        Disposition::Dispatched => Notice::Dispatched,
        Disposition::Failed => Notice::Failed,
        Disposition::Other => return Received::Deliver(None),
    };
    let same_domain =
        Address::new(&report.final_recipient).is_ok_and(|r| r.domain() == sender.domain());
    if !same_domain {
        return Received::Tag(
            "Postern-Notification: not counted (it reports on a recipient outside its sender's domain)\r\n",
        );
    }
    let pending = PendingNotice {
        message_id: report.original_message_id,
        recipient: report.final_recipient,
        notice,
    };
    match shared
        .tracking
        .peek(&pending.message_id, &pending.recipient, notice)
        .await
    {
        Err(e) => Received::Retry(format!("tracking store: {e}")),
        Ok(Peeked::Unknown) => Received::Tag(
            "Postern-Notification: not counted (no message of ours to that recipient with that Message-ID)\r\n",
        ),
        Ok(Peeked::Counted) => {
            shared.metrics.mdn_suppressed.inc();
            Received::Suppress("a notification already passed on (duplicate or replay)")
        }
        Ok(Peeked::Open { sender: ours })
            if !envelope_rcpts.iter().any(|r| r.eq_ignore_ascii_case(&ours)) =>
        {
            Received::Tag(
                "Postern-Notification: not counted (addressed to someone other than the message's sender)\r\n",
            )
        }
        Ok(Peeked::Open { .. })
            if notice == Notice::Processed && !shared.settings.direct.deliver_processed =>
        {
            // Not delivered: counted now.
            let now = (unix_ms() / 1000) as i64;
            match shared
                .tracking
                .notice(&pending.message_id, &pending.recipient, notice, now)
                .await
            {
                Ok(_) => {
                    shared.metrics.mdn_received.inc();
                    Received::Suppress("processed notification (direct.deliver_processed_mdns = false)")
                }
                Err(e) => Received::Retry(format!("tracking store: {e}")),
            }
        }
        Ok(Peeked::Open { .. }) => Received::Deliver(Some(pending)),
    }
}

/// Counts a notification that has just reached our user (if it reached any recipient).
pub(crate) async fn counted(shared: &Shared, entry: &Entry, idx: &[usize], n: PendingNotice) {
    let reached = idx.iter().any(|&i| {
        entry
            .recipients
            .get(i)
            .is_some_and(|r| r.state == RcptState::Delivered)
    });
    if !reached {
        return;
    }
    let now = (unix_ms() / 1000) as i64;
    match shared
        .tracking
        .notice(&n.message_id, &n.recipient, n.notice, now)
        .await
    {
        Ok(postern_store::Noticed::First) => shared.metrics.mdn_received.inc(),
        Ok(_) => {}
        // Delivered all the same; the row may time out and its sender be told needlessly.
        Err(e) => {
            tracing::error!(queue_id = %entry.id, error = %e, "could not count a Direct notification")
        }
    }
}

/// Tells senders whose Direct messages got no notification in time (one DSN per message and
/// sender, 5.4.7), and forgets finished rows past their retention. Every node may run it: each
/// deadline is claimed by one of them, a batch at a time, and given back when its DSN cannot be
/// queued, so a sender is told at least once.
pub(crate) async fn sweep(shared: Arc<Shared>, mut stop: watch::Receiver<bool>) {
    const BATCH: i64 = 100;
    let d = shared.settings.direct.clone();
    let every = (d.timeout.min(d.reliable_timeout) / 2)
        .clamp(Duration::from_secs(1), Duration::from_secs(60));
    let mut last_purge = 0i64;
    loop {
        tokio::select! {
            _ = stop.wait_for(|s| *s) => break,
            _ = tokio::time::sleep(every) => {}
        }
        let now = (unix_ms() / 1000) as i64;
        // A backlog (after an outage) is worked off a bounded number of batches per round.
        for _ in 0..10 {
            let late = match shared.tracking.expire(now, BATCH).await {
                Ok(late) => late,
                Err(e) => {
                    tracing::error!(error = %e, "Direct tracking sweep failed; retrying");
                    break;
                }
            };
            let full = late.len() as i64 == BATCH;
            let shared2 = shared.clone();
            // The spool writes fsync: off the async workers.
            let unsent = tokio::task::spawn_blocking(move || queue_timeout_dsns(&shared2, late))
                .await
                .unwrap_or_default();
            for t in unsent {
                if let Err(e) = shared.tracking.unclaim(&t.message_id, &t.recipient).await {
                    tracing::error!(error = %e, "could not give back a Direct deadline");
                }
            }
            if !full {
                break;
            }
        }
        if now - last_purge >= 3600 {
            last_purge = now;
            let keep = i64::try_from(d.retention.as_secs()).unwrap_or(i64::MAX);
            if let Err(e) = shared.tracking.purge(now.saturating_sub(keep)).await {
                tracing::error!(error = %e, "Direct tracking retention sweep failed; retrying");
            }
        }
    }
}

/// Queues one DSN per message and sender for the claimed rows; returns the rows whose DSN
/// could not be queued.
fn queue_timeout_dsns(
    shared: &Shared,
    late: Vec<postern_store::Tracked>,
) -> Vec<postern_store::Tracked> {
    let mut groups: Vec<Vec<postern_store::Tracked>> = Vec::new();
    for t in late {
        match groups
            .iter_mut()
            .find(|g| g[0].message_id == t.message_id && g[0].sender == t.sender)
        {
            Some(g) => g.push(t),
            None => groups.push(vec![t]),
        }
    }
    let mut unsent = Vec::new();
    for g in groups {
        shared.metrics.tracking_timeouts.add(g.len() as u64);
        let id = Spool::new_id();
        let now = unix_ms();
        let msg = crate::dsn::timed_out(&shared.settings.hostname, &g, now / 1000, &id);
        let dsn = Entry::new(
            id.clone(),
            Origin::Bounce,
            "127.0.0.1",
            None,
            vec![Recipient::new(g[0].sender.clone())],
            msg.len() as u64,
        );
        match shared.spool.accept(&dsn, &msg) {
            Ok(()) => {
                shared.metrics.queue_depth.inc();
                shared.scheduler.submit(&id, now);
                tracing::info!(dsn_id = %id, recipients = g.len(), "no Direct notification in time: sender told");
            }
            Err(e) => {
                tracing::error!(error = %e, "could not queue a Direct timeout notice; retried at the next sweep");
                unsent.extend(g);
            }
        }
    }
    unsent
}
