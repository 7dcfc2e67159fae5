//! Certification path building and validation (RFC 5280 §6) for S/MIME: from an end-entity
//! certificate through the intermediates at hand to one of the configured trust anchors.
//!
//! Path building searches depth-first over every issuer candidate (subject = issuer, and the
//! key identifiers agree when both are present), so a wrong or expired candidate does not hide
//! a good one; the search is bounded in depth and in signature checks, so a crafted pile of
//! intermediates cannot make it run long. A complete path must then satisfy:
//! validity of every certificate at the validation time (anchor included), signatures, CA
//! basic constraints and keyCertSign on every issuer, path length constraints (self-issued
//! intermediates not counted), name constraints of every CA (anchor included) over the
//! certificates below it, the purpose (extended key usage) on the end entity and on issuers
//! that restrict it, and no critical extension we do not process.
//!
//! Certificate policies are not evaluated: a path that requires an explicit policy
//! (policyConstraints requireExplicitPolicy) is refused rather than accepted unchecked.
//!
//! Proven against the x509-limbo test suite (see `tests/limbo.rs`), with each difference
//! from its expectations listed and explained there.

use std::collections::HashSet;
use std::time::SystemTime;

use const_oid::db::rfc5280 as ext;
use const_oid::ObjectIdentifier as Oid;
use der::Encode;
use x509_cert::ext::pkix::{
    AuthorityInfoAccessSyntax, AuthorityKeyIdentifier, BasicConstraints, ExtendedKeyUsage,
    PolicyConstraints, SubjectAltName,
};
use x509_cert::Certificate;

use postern_core::Policy;

use crate::certinfo;
use crate::constraints::{self, Constraints};
use crate::issuer::signed_by;
use crate::oids;

/// The S/MIME purpose (id-kp-emailProtection), for [`PathOptions::purpose`].
pub const EMAIL_PROTECTION: Oid = oids::KP_EMAIL_PROTECTION;

/// Default bound on intermediates between the end entity and the anchor.
pub const DEFAULT_MAX_INTERMEDIATES: usize = 6;
/// Bound on signature checks during one search (defence against crafted candidate piles).
const SIGNATURE_BUDGET: usize = 64;

/// Inputs to path validation.
pub struct PathOptions<'a> {
    /// Trust anchors (their certificates; their constraints are applied too).
    pub anchors: &'a [Certificate],
    /// Candidate intermediates (from the message, or fetched); none is trusted by itself.
    pub intermediates: &'a [Certificate],
    /// Validation time.
    pub now: SystemTime,
    /// Algorithm policy for certificate signatures and keys.
    pub policy: &'a Policy,
    /// The extended key usage the end entity must allow (absent EKU allows all); `None`
    /// checks no purpose.
    pub purpose: Option<Oid>,
    /// Most intermediates a path may hold.
    pub max_intermediates: usize,
}

/// A validated path, end entity first, trust anchor last.
#[derive(Debug)]
pub struct ValidPath<'a> {
    /// The certificates of the path.
    pub certs: Vec<&'a Certificate>,
}

impl ValidPath<'_> {
    /// The trust anchor that ends the path.
    pub fn anchor(&self) -> &Certificate {
        self.certs[self.certs.len() - 1]
    }
}

/// Why no valid path was found.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    /// The end-entity certificate itself is unacceptable.
    #[error("certificate {0}")]
    EndEntity(String),
    /// Candidate paths were tried and none was valid; the reason is the one of the longest.
    #[error("no valid path to a trust anchor: {0}")]
    NoPath(String),
    /// The search was stopped before it found a path.
    #[error("path search stopped after {0} signature checks")]
    TooMuchWork(usize),
}

/// Finds and validates a path from `leaf` to one of the anchors.
pub fn validate<'a>(
    leaf: &'a Certificate,
    opts: &PathOptions<'a>,
) -> Result<ValidPath<'a>, PathError> {
    if let Some(p) = problem(leaf, Role::EndEntity, opts) {
        return Err(PathError::EndEntity(p));
    }
    let leaf_der = leaf.to_der().unwrap_or_default();
    if let Some(anchor) = opts
        .anchors
        .iter()
        .find(|a| a.to_der().is_ok_and(|d| d == leaf_der))
    {
        return Ok(ValidPath {
            certs: vec![anchor],
        });
    }
    let mut search = Search {
        opts,
        budget: SIGNATURE_BUDGET,
        best: (0, "issuer not found".to_string()),
        seen: HashSet::new(),
    };
    let mut path = vec![leaf];
    search.seen.insert(identity(leaf));
    match search.extend(&mut path) {
        Some(found) => Ok(found),
        None if search.budget == 0 => Err(PathError::TooMuchWork(SIGNATURE_BUDGET)),
        None => Err(PathError::NoPath(search.best.1)),
    }
}

struct Search<'o, 'a> {
    opts: &'o PathOptions<'a>,
    budget: usize,
    /// (path length, reason) of the most advanced failure, for the report.
    best: (usize, String),
    /// Certificates on the current path, by subject and key (a cycle through re-issued
    /// certificates of the same CA is a cycle too).
    seen: HashSet<Vec<u8>>,
}

impl<'a> Search<'_, 'a> {
    fn fail(&mut self, depth: usize, why: String) {
        if depth >= self.best.0 {
            self.best = (depth, why);
        }
    }

    fn extend(&mut self, path: &mut Vec<&'a Certificate>) -> Option<ValidPath<'a>> {
        let current = *path.last()?;
        let depth = path.len();
        for anchor in self.opts.anchors {
            if !issued(current, anchor) || self.budget == 0 {
                continue;
            }
            self.budget -= 1;
            if let Err(e) = signed_by(current, anchor, self.opts.policy) {
                self.fail(depth, e);
                continue;
            }
            path.push(anchor);
            match check_path(path, self.opts) {
                Ok(()) => {
                    return Some(ValidPath {
                        certs: path.clone(),
                    })
                }
                Err(e) => self.fail(depth + 1, e),
            }
            path.pop();
        }
        let full = logical_intermediates(path) >= self.opts.max_intermediates;
        for cand in self.opts.intermediates {
            if !issued(current, cand) || self.seen.contains(&identity(cand)) {
                continue;
            }
            if full && !self_issued(cand) {
                let max = self.opts.max_intermediates;
                self.fail(depth + 1, format!("longer than {max} intermediates"));
                continue;
            }
            if self.budget == 0 {
                return None;
            }
            self.budget -= 1;
            if let Err(e) = signed_by(current, cand, self.opts.policy) {
                self.fail(depth, e);
                continue;
            }
            if let Some(p) = problem(cand, Role::Issuer, self.opts) {
                self.fail(
                    depth + 1,
                    format!("intermediate {} {p}", certinfo::subject(cand)),
                );
                continue;
            }
            self.seen.insert(identity(cand));
            path.push(cand);
            if let Some(found) = self.extend(path) {
                return Some(found);
            }
            path.pop();
            self.seen.remove(&identity(cand));
        }
        if !self.opts.intermediates.iter().any(|c| issued(current, c))
            && !self.opts.anchors.iter().any(|c| issued(current, c))
        {
            self.fail(
                depth,
                format!("issuer {} unknown", current.tbs_certificate().issuer()),
            );
        }
        None
    }
}

/// Subject and public key: the same CA re-issued counts as the same node.
fn identity(c: &Certificate) -> Vec<u8> {
    let mut id = c.tbs_certificate().subject().to_der().unwrap_or_default();
    id.extend(
        c.tbs_certificate()
            .subject_public_key_info()
            .to_der()
            .unwrap_or_default(),
    );
    id
}

/// Whether `issuer` may have issued `cert`: names match, and key identifiers do when both exist.
fn issued(cert: &Certificate, issuer: &Certificate) -> bool {
    if cert.tbs_certificate().issuer() != issuer.tbs_certificate().subject() {
        return false;
    }
    let aki = cert
        .tbs_certificate()
        .get_extension::<AuthorityKeyIdentifier>()
        .ok()
        .flatten()
        .and_then(|(_, a)| a.key_identifier);
    match (aki, certinfo::subject_key_id(issuer)) {
        (Some(a), Some(s)) => a.as_bytes() == s.as_slice(),
        _ => true,
    }
}

/// Intermediates on `path` (end entity first, no anchor) that count toward length limits:
/// self-issued ones (a CA's key rollover) do not.
fn logical_intermediates(path: &[&Certificate]) -> usize {
    path.iter().skip(1).filter(|c| !self_issued(c)).count()
}

fn self_issued(c: &Certificate) -> bool {
    c.tbs_certificate().subject() == c.tbs_certificate().issuer()
}

/// Checks that need the whole path: path lengths and name constraints.
fn check_path(path: &[&Certificate], opts: &PathOptions<'_>) -> Result<(), String> {
    let anchor = path[path.len() - 1];
    if let Some(p) = problem(anchor, Role::Issuer, opts) {
        return Err(format!("trust anchor {} {p}", certinfo::subject(anchor)));
    }
    if logical_intermediates(&path[..path.len() - 1]) > opts.max_intermediates {
        return Err(format!(
            "longer than {} intermediates",
            opts.max_intermediates
        ));
    }
    for (k, ca) in path.iter().enumerate().skip(1) {
        let below = &path[..k];
        if let Ok(Some((_, bc))) = ca.tbs_certificate().get_extension::<BasicConstraints>() {
            if let Some(max) = bc.path_len_constraint {
                let n = below.iter().skip(1).filter(|c| !self_issued(c)).count();
                if n > usize::from(max) {
                    return Err(format!(
                        "{} allows {max} intermediates below it, the path has {n}",
                        certinfo::subject(ca)
                    ));
                }
            }
        }
        let constraints = Constraints::of(ca).map_err(|e| e.to_string())?;
        if let Some(nc) = constraints {
            for (j, c) in below.iter().enumerate() {
                // Self-issued intermediates are exempt; the end entity never is.
                if j > 0 && self_issued(c) {
                    continue;
                }
                nc.check(c).map_err(|e| e.to_string())?;
            }
        }
        if let Ok(Some((_, pc))) = ca.tbs_certificate().get_extension::<PolicyConstraints>() {
            if let Some(skip) = pc.require_explicit_policy {
                if (skip as usize) < k {
                    return Err(format!(
                        "{} requires an explicit certificate policy (policies are not evaluated)",
                        certinfo::subject(ca)
                    ));
                }
            }
        }
    }
    Ok(())
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Role {
    EndEntity,
    Issuer,
}

/// Extensions we process (or that carry no constraint), so their criticality is no obstacle.
const KNOWN: &[Oid] = &[
    ext::ID_CE_BASIC_CONSTRAINTS,
    ext::ID_CE_KEY_USAGE,
    ext::ID_CE_EXT_KEY_USAGE,
    ext::ID_CE_SUBJECT_ALT_NAME,
    ext::ID_CE_ISSUER_ALT_NAME,
    ext::ID_CE_NAME_CONSTRAINTS,
    ext::ID_CE_CERTIFICATE_POLICIES,
    ext::ID_CE_POLICY_MAPPINGS,
    ext::ID_CE_POLICY_CONSTRAINTS,
    ext::ID_CE_INHIBIT_ANY_POLICY,
    ext::ID_CE_AUTHORITY_KEY_IDENTIFIER,
    ext::ID_CE_SUBJECT_KEY_IDENTIFIER,
    ext::ID_CE_CRL_DISTRIBUTION_POINTS,
    ext::ID_CE_FRESHEST_CRL,
    ext::ID_CE_SUBJECT_DIRECTORY_ATTRIBUTES,
    ext::ID_PE_AUTHORITY_INFO_ACCESS,
    ext::ID_PE_SUBJECT_INFO_ACCESS,
];

/// Extensions RFC 5280 says must not be critical.
const NEVER_CRITICAL: &[Oid] = &[
    ext::ID_CE_AUTHORITY_KEY_IDENTIFIER,
    ext::ID_CE_SUBJECT_KEY_IDENTIFIER,
    ext::ID_PE_AUTHORITY_INFO_ACCESS,
    ext::ID_PE_SUBJECT_INFO_ACCESS,
];

/// What is wrong with one certificate in its role, independent of the rest of the path.
fn problem(c: &Certificate, role: Role, opts: &PathOptions<'_>) -> Option<String> {
    let tbs = c.tbs_certificate();
    if let Some(p) = certinfo::validity_problem(c, opts.now) {
        return Some(p);
    }
    if tbs.signature() != c.signature_algorithm() {
        return Some("signature algorithm differs inside and outside the signed part".into());
    }
    if tbs.issuer().is_empty() {
        return Some("has an empty issuer name".into());
    }
    let exts = tbs.extensions().map(|e| e.as_slice()).unwrap_or_default();
    let mut ids = HashSet::new();
    for e in exts {
        if !ids.insert(e.extn_id) {
            return Some(format!("has extension {} twice", e.extn_id));
        }
        if e.critical && !KNOWN.contains(&e.extn_id) {
            return Some(format!("has an unknown critical extension {}", e.extn_id));
        }
        if e.critical && NEVER_CRITICAL.contains(&e.extn_id) {
            return Some(format!("marks extension {} critical", e.extn_id));
        }
    }
    if let Err(e) = tbs.get_extension::<AuthorityKeyIdentifier>() {
        return Some(format!("authority key identifier: {e}"));
    }
    if let Err(e) = tbs.get_extension::<AuthorityInfoAccessSyntax>() {
        return Some(format!("authority information access: {e}"));
    }
    let bc = match tbs.get_extension::<BasicConstraints>() {
        Ok(bc) => bc.map(|(_, b)| b),
        Err(e) => return Some(format!("basic constraints: {e}")),
    };
    let is_ca = bc.as_ref().is_some_and(|b| b.ca);
    let ku = certinfo::key_usage(c);
    if ku.is_some_and(|k| k.key_cert_sign()) && !is_ca {
        return Some("asserts keyCertSign without being a CA".into());
    }
    match tbs.get_extension::<SubjectAltName>() {
        Err(e) => return Some(format!("subject alternative name: {e}")),
        Ok(Some((critical, san))) => {
            if san.0.is_empty() {
                return Some("has an empty subject alternative name".into());
            }
            if tbs.subject().is_empty() && !critical {
                return Some("has an empty subject and a non-critical alternative name".into());
            }
        }
        Ok(None) => {}
    }
    if let Err(e) = constraints::check_names(c) {
        return Some(e.to_string());
    }
    let has_nc = exts
        .iter()
        .any(|e| e.extn_id == ext::ID_CE_NAME_CONSTRAINTS);
    if has_nc && !is_ca {
        return Some("has name constraints without being a CA".into());
    }
    let eku = match tbs.get_extension::<ExtendedKeyUsage>() {
        Ok(e) => e.map(|(_, e)| e.0),
        Err(e) => return Some(format!("extended key usage: {e}")),
    };
    if eku.as_ref().is_some_and(|e| e.is_empty()) {
        return Some("has an empty extended key usage".into());
    }
    if let (Some(purpose), Some(eku)) = (opts.purpose, eku.as_ref()) {
        if !eku
            .iter()
            .any(|o| *o == purpose || *o == oids::ANY_EXTENDED_KEY_USAGE)
        {
            return Some(format!("extended key usage does not allow {purpose}"));
        }
    }
    if role == Role::Issuer {
        if !is_ca {
            return Some("is not a CA (basic constraints)".into());
        }
        if tbs.subject().is_empty() {
            return Some("is a CA with an empty subject".into());
        }
        if ku.is_some_and(|k| !k.key_cert_sign()) {
            return Some("key usage lacks keyCertSign".into());
        }
    }
    None
}
