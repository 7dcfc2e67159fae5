//! Harvesting: a partner's valid S/MIME signature — its certificate chaining to our trust
//! anchors (not merely the partner's pinned key), every address and domain in it the
//! partner's, and usable for encryption — offers that certificate for future mail to the
//! partner.
//! The partner's `harvest` setting decides whether it is used at once or waits for
//! `postern-relay keys approve`. Every offer and decision is in the audit log.
//!
//! Approved certificates are a [`KeyStore`] the router consults for partners that harvest.

use std::time::{SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use postern_core::{
    Address, CertificateSummary, ChainStatus, Credential, Domain, Error, KeyStore, Report,
    SecureEnvelope, SignatureStatus, Standard,
};
use postern_portal::audit::{Action, AuditLog};
use postern_portal::Db;
use postern_router::{Directory, DomainPattern, Harvest};
use sqlx::Row;

/// One harvested certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Harvested {
    /// Row number (what `keys approve` takes).
    pub id: i64,
    /// The partner entry's pattern (`partner.example`, `*.partner.example`).
    pub partner: String,
    /// SHA-256 of the certificate.
    pub fingerprint: String,
    /// Its subject.
    pub subject: String,
    /// Its addresses, comma-separated.
    pub addresses: String,
    /// `pending`, `approved` or `rejected`.
    pub state: String,
    /// First seen, seconds since the epoch.
    pub first_seen: i64,
    /// Last seen, seconds since the epoch.
    pub last_seen: i64,
}

/// The harvested certificates, in the relay's database.
#[derive(Debug)]
pub struct HarvestStore {
    db: Db,
    audit: AuditLog,
}

/// `last_seen` is written at most this often per certificate (seconds).
const LAST_SEEN_GRAIN: i64 = 60;

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

fn unavailable(e: impl std::fmt::Display) -> Error {
    Error::Unavailable(format!("harvested keys: {e}"))
}

impl HarvestStore {
    /// Over the relay's database (already migrated).
    pub fn new(db: Db) -> Self {
        HarvestStore {
            audit: AuditLog::new(db.clone()),
            db,
        }
    }

    /// Records an offer; new certificates are audited, and approved at once when `automatic`.
    /// Returns whether the certificate was new for this partner.
    pub async fn offer(
        &self,
        partner: &str,
        cert: &[u8],
        summary: &CertificateSummary,
        automatic: bool,
    ) -> Result<bool, Error> {
        let fingerprint = fingerprint(cert);
        let t = now();
        // A known certificate (the usual case: every signed message from the partner) costs a
        // read, and a write at most once a minute: `last_seen` needs no finer grain, and a
        // database write per inbound message is an fsync per message.
        let known = sqlx::query(
            "SELECT last_seen FROM harvested_key WHERE partner = $1 AND fingerprint = $2",
        )
        .bind(partner)
        .bind(&fingerprint)
        .fetch_optional(self.db.pool())
        .await
        .map_err(unavailable)?;
        if let Some(row) = known {
            let last: i64 = row.try_get("last_seen").map_err(unavailable)?;
            if t - last >= LAST_SEEN_GRAIN {
                self.touch(partner, &fingerprint, t).await?;
            }
            return Ok(false);
        }
        let state = if automatic { "approved" } else { "pending" };
        let inserted = sqlx::query(
            "INSERT INTO harvested_key (partner, fingerprint, subject, addresses, certificate, \
             first_seen, last_seen, state) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
             ON CONFLICT (partner, fingerprint) DO NOTHING",
        )
        .bind(partner)
        .bind(&fingerprint)
        .bind(&summary.description)
        .bind(summary.addresses.join(","))
        .bind(cert.to_vec())
        .bind(t)
        .bind(t)
        .bind(state)
        .execute(self.db.pool())
        .await
        .map_err(unavailable)?;
        let new = inserted.rows_affected() == 1;
        if !new {
            // Another worker recorded it between our read and our insert.
            self.touch(partner, &fingerprint, t).await?;
            return Ok(false);
        }
        let id: i64 =
            sqlx::query("SELECT id FROM harvested_key WHERE partner = $1 AND fingerprint = $2")
                .bind(partner)
                .bind(&fingerprint)
                .fetch_one(self.db.pool())
                .await
                .and_then(|r| r.try_get("id"))
                .map_err(unavailable)?;
        let detail = format!(
            "{} for {partner}: {} ({})",
            fingerprint, summary.description, state
        );
        let object = format!("key-{id}");
        self.audit
            .append("gateway", Action::KeyOffered, &object, None, &detail)
            .await
            .map_err(unavailable)?;
        if automatic {
            self.audit
                .append(
                    "gateway",
                    Action::KeyApproved,
                    &object,
                    None,
                    "harvest = automatic",
                )
                .await
                .map_err(unavailable)?;
        }
        tracing::info!(partner, fingerprint, state, "partner certificate harvested");
        Ok(true)
    }

    /// Sets a certificate's `last_seen`.
    async fn touch(&self, partner: &str, fingerprint: &str, t: i64) -> Result<(), Error> {
        sqlx::query(
            "UPDATE harvested_key SET last_seen = $1 WHERE partner = $2 AND fingerprint = $3",
        )
        .bind(t)
        .bind(partner)
        .bind(fingerprint)
        .execute(self.db.pool())
        .await
        .map_err(unavailable)?;
        Ok(())
    }

    /// Harvested certificates, optionally only those in `state`.
    pub async fn list(&self, state: Option<&str>) -> Result<Vec<Harvested>, Error> {
        let rows = sqlx::query(
            "SELECT id, partner, fingerprint, subject, addresses, state, first_seen, last_seen \
             FROM harvested_key WHERE ($1 = '' OR state = $1) ORDER BY id",
        )
        .bind(state.unwrap_or(""))
        .fetch_all(self.db.pool())
        .await
        .map_err(unavailable)?;
        rows.iter()
            .map(|r| {
                Ok(Harvested {
                    id: r.try_get("id")?,
                    partner: r.try_get("partner")?,
                    fingerprint: r.try_get("fingerprint")?,
                    subject: r.try_get("subject")?,
                    addresses: r.try_get("addresses")?,
                    state: r.try_get("state")?,
                    first_seen: r.try_get("first_seen")?,
                    last_seen: r.try_get("last_seen")?,
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(unavailable)
    }

    /// Approves or rejects a pending (or earlier decided) certificate; audited with `actor`.
    pub async fn decide(&self, id: i64, approve: bool, actor: &str) -> Result<(), Error> {
        let state = if approve { "approved" } else { "rejected" };
        let done = sqlx::query("UPDATE harvested_key SET state = $1 WHERE id = $2")
            .bind(state)
            .bind(id)
            .execute(self.db.pool())
            .await
            .map_err(unavailable)?;
        if done.rows_affected() == 0 {
            return Err(Error::InvalidRequest(format!("no harvested key {id}")));
        }
        let action = if approve {
            Action::KeyApproved
        } else {
            Action::KeyRejected
        };
        self.audit
            .append(actor, action, &format!("key-{id}"), None, state)
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    /// Approved certificates of the partner entry `pattern`.
    async fn approved(&self, pattern: &str) -> Result<Vec<Vec<u8>>, Error> {
        let rows = sqlx::query(
            "SELECT certificate FROM harvested_key WHERE partner = $1 AND state = 'approved' \
             ORDER BY id",
        )
        .bind(pattern)
        .fetch_all(self.db.pool())
        .await
        .map_err(unavailable)?;
        rows.iter()
            .map(|r| r.try_get::<Vec<u8>, _>("certificate"))
            .collect::<Result<_, _>>()
            .map_err(unavailable)
    }
}

fn fingerprint(cert: &[u8]) -> String {
    let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, cert);
    d.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

/// Offers the certificates of `report`'s signers that qualify (see the module text) to `store`,
/// for the partner `mail_from` belongs to. Returns how many were new.
pub async fn offer_from(
    store: &HarvestStore,
    dir: &Directory,
    mail_from: Option<&Address>,
    report: &Report,
    smime: &dyn SecureEnvelope,
) -> Result<usize, Error> {
    let Some(partner) = mail_from.and_then(|a| dir.partner_for(a.domain())) else {
        return Ok(0);
    };
    if partner.harvest == Harvest::Off || report.standard != Standard::Smime {
        return Ok(0);
    }
    let pattern = partner.pattern.to_string();
    let mut new = 0;
    for sig in &report.signatures {
        let anchored = matches!(&sig.chain, ChainStatus::Trusted { anchor } if anchor != "pinned partner certificate");
        if sig.status != SignatureStatus::Valid || !anchored {
            continue;
        }
        let Some(cert) = sig.signer_chain.first() else {
            continue;
        };
        if partner
            .certificates_for(Standard::Smime)
            .iter()
            .any(|c| c == cert)
        {
            continue;
        }
        let Some(summary) = smime.describe_certificates(cert)?.into_iter().next() else {
            continue;
        };
        // Every address and domain the certificate names must be the partner's: a certificate
        // for anyone else is never kept for this partner. And it must be one we can encrypt to
        // (a signing-only certificate would only make its mail fail later).
        let domains = summary.all_domains();
        let ours = !domains.is_empty()
            && domains
                .iter()
                .all(|d| Domain::new(d).is_ok_and(|d| partner.pattern.owns(&d)));
        if !ours || summary.authority || !can_encrypt_to(smime, cert).await {
            continue;
        }
        if store
            .offer(
                &pattern,
                cert,
                &summary,
                partner.harvest == Harvest::Automatic,
            )
            .await?
        {
            new += 1;
        }
    }
    Ok(new)
}

/// Seals a probe to `cert` through the backend: what sealing accepts (key usage, algorithms).
async fn can_encrypt_to(smime: &dyn SecureEnvelope, cert: &[u8]) -> bool {
    const PROBE: &[u8] = b"From: postern@probe.invalid\r\nSubject: probe\r\n\r\nprobe\r\n";
    let policy = postern_core::Policy::default();
    let certs = [cert.to_vec()];
    match postern_core::MessageView::parse(PROBE) {
        Ok(view) => smime
            .seal(&view, &postern_core::SealRequest::encrypt(&certs, &policy))
            .await
            .is_ok(),
        Err(_) => false,
    }
}

#[async_trait]
impl KeyStore for HarvestStore {
    /// The approved certificates of the partner entry for the recipient's domain (the router
    /// asks only for partners that harvest).
    async fn recipient_certificates(
        &self,
        standard: Standard,
        recipient: &Address,
    ) -> Result<Vec<Vec<u8>>, Error> {
        if standard != Standard::Smime {
            return Ok(Vec::new());
        }
        let domain = recipient.domain();
        // The exact entry, then the wildcard entries above it.
        let mut patterns = vec![domain.to_string()];
        let mut rest = domain.as_str();
        while let Some((_, up)) = rest.split_once('.') {
            patterns.push(format!("*.{up}"));
            rest = up;
        }
        for p in patterns {
            if DomainPattern::parse(&p).is_ok_and(|pat| pat.matches(domain)) {
                let certs = self.approved(&p).await?;
                if !certs.is_empty() {
                    return Ok(certs);
                }
            }
        }
        Ok(Vec::new())
    }

    async fn own_credentials(&self, _: Standard, _: &Domain) -> Result<Vec<Credential>, Error> {
        Ok(Vec::new())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn last_seen(store: &HarvestStore) -> i64 {
        store.list(None).await.unwrap()[0].last_seen
    }

    async fn set_last_seen(store: &HarvestStore, t: i64) {
        sqlx::query("UPDATE harvested_key SET last_seen = $1")
            .bind(t)
            .execute(store.db.pool())
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn a_known_certificate_is_written_at_most_once_a_minute() {
        let d = tempfile::tempdir().unwrap();
        let store = HarvestStore::new(Db::sqlite(&d.path().join("h.sqlite")).await.unwrap());
        let summary = CertificateSummary {
            description: "CN=gw".into(),
            addresses: vec!["gw@partner.example".into()],
            ..Default::default()
        };
        assert!(store
            .offer("partner.example", b"cert", &summary, false)
            .await
            .unwrap());
        // Seen 30 s ago: the next offer changes nothing.
        let recent = now() - 30;
        set_last_seen(&store, recent).await;
        assert!(!store
            .offer("partner.example", b"cert", &summary, false)
            .await
            .unwrap());
        assert_eq!(last_seen(&store).await, recent);
        // Seen two minutes ago: updated.
        set_last_seen(&store, now() - 120).await;
        assert!(!store
            .offer("partner.example", b"cert", &summary, false)
            .await
            .unwrap());
        assert!(last_seen(&store).await >= now() - 5);
        // Still one row, still pending.
        let rows = store.list(None).await.unwrap();
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].state, "pending");
    }
}
