//! Harvested partner certificates: those a partner's valid signatures offered (which ones
//! qualify is the relay's decision), pending or approved for future mail to the partner.
//! Every offer and decision is in the audit log.
//!
//! Approved certificates are a [`KeyStore`] the router consults for partners that harvest.

use async_trait::async_trait;
use postern_core::{Address, CertificateSummary, Credential, Domain, Error, KeyStore, Standard};
use sqlx::Row;

use crate::audit::{Action, AuditLog};
use crate::db::Db;

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
    /// Waiting, approved or rejected.
    pub state: HarvestState,
    /// First seen, seconds since the epoch.
    pub first_seen: i64,
    /// Last seen, seconds since the epoch.
    pub last_seen: i64,
}

/// Where a harvested certificate stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HarvestState {
    /// Waiting for `postern-relay keys approve`.
    Pending,
    /// Used for mail to the partner.
    Approved,
    /// Not used.
    Rejected,
}

crate::stored_words!(HarvestState { Pending => "pending", Approved => "approved", Rejected => "rejected" });

/// The harvested certificates, in the gateway's database.
#[derive(Debug)]
pub struct HarvestStore {
    db: Db,
    audit: AuditLog,
}

/// `last_seen` is written at most this often per certificate (seconds).
const LAST_SEEN_GRAIN: i64 = 60;

use crate::now;

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
        let state = if automatic {
            HarvestState::Approved
        } else {
            HarvestState::Pending
        };
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
        .bind(state.as_str())
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
        tracing::info!(
            partner,
            fingerprint,
            state = state.as_str(),
            "partner certificate harvested"
        );
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
    pub async fn list(&self, state: Option<HarvestState>) -> Result<Vec<Harvested>, Error> {
        let rows = sqlx::query(
            "SELECT id, partner, fingerprint, subject, addresses, state, first_seen, last_seen \
             FROM harvested_key WHERE ($1 = '' OR state = $1) ORDER BY id",
        )
        .bind(state.map_or("", HarvestState::as_str))
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
                    state: crate::word(r, "state")?,
                    first_seen: r.try_get("first_seen")?,
                    last_seen: r.try_get("last_seen")?,
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(unavailable)
    }

    /// Approves or rejects a pending (or earlier decided) certificate; audited with `actor`.
    pub async fn decide(&self, id: i64, approve: bool, actor: &str) -> Result<(), Error> {
        let state = if approve {
            HarvestState::Approved
        } else {
            HarvestState::Rejected
        };
        let done = sqlx::query("UPDATE harvested_key SET state = $1 WHERE id = $2")
            .bind(state.as_str())
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
            .append(actor, action, &format!("key-{id}"), None, state.as_str())
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    /// Approved certificates of the partner entry `pattern`.
    pub async fn approved(&self, pattern: &str) -> Result<Vec<Vec<u8>>, Error> {
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
        // Each pattern covers the domain by construction (`*.up` for every `up` it is below).
        for p in patterns {
            let certs = self.approved(&p).await?;
            if !certs.is_empty() {
                return Ok(certs);
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
        assert_eq!(rows[0].state, HarvestState::Pending);
    }
}
