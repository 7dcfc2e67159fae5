//! Harvesting: a partner's valid S/MIME signature — its certificate chaining to our trust
//! anchors (not merely the partner's pinned key), every address and domain in it the
//! partner's, and usable for encryption — offers that certificate for future mail to the
//! partner.
//! The partner's `harvest` setting decides whether it is used at once or waits for
//! `postern-relay keys approve`. Every offer and decision is in the audit log.
//!
//! This module decides which certificates qualify; [`HarvestStore`] (in postern-store) keeps
//! them and is the [`postern_core::KeyStore`] the router consults for partners that harvest.

use postern_core::{
    Address, ChainStatus, Domain, Error, Report, SecureEnvelope, SignatureStatus, Standard,
};
use postern_router::{Directory, Harvest};
pub use postern_store::harvest::{HarvestState, HarvestStore, Harvested};

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
