//! X.509 name constraints (RFC 5280 §4.2.1.10): whether the names a certificate carries
//! (subject DN, subjectAltName, the subject's emailAddress) lie inside the subtrees a CA
//! above it permits and outside those it excludes.
//!
//! Supported forms: rfc822Name, dNSName, iPAddress, directoryName and URI. A constraint of
//! another form (otherName, x400Address, ediPartyName, registeredID) cannot be evaluated, so a
//! certificate that carries a name of that form under such a constraint is refused (RFC 5280:
//! "process the constraint or reject the certificate"); without such a name it is ignored.

use der::asn1::Ia5String;
use x509_cert::ext::pkix::constraints::name::{GeneralSubtree, NameConstraints};
use x509_cert::ext::pkix::name::GeneralName;
use x509_cert::ext::pkix::SubjectAltName;
use x509_cert::name::Name;
use x509_cert::Certificate;

use crate::oids;

/// A name of the certificate being checked, in the forms constraints speak about.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Presented {
    Email(String),
    Dns(String),
    Ip(Vec<u8>),
    Directory(Name),
    Uri(String),
    /// A form we cannot evaluate; the number is the GeneralName tag.
    Other(u8),
}

/// Why a certificate's names break a CA's constraints, or why the constraints are unusable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConstraintError {
    /// The CA's constraint extension is malformed or says nothing (RFC 5280: must not be empty).
    #[error("name constraints of {ca} are invalid: {why}")]
    Invalid {
        /// The constraining CA.
        ca: String,
        /// What is wrong.
        why: String,
    },
    /// A name of the certificate is outside the permitted or inside the excluded subtrees.
    #[error("{name} violates the name constraints of {ca} ({how})")]
    Violated {
        /// The offending name.
        name: String,
        /// The constraining CA.
        ca: String,
        /// "not permitted", "excluded subtree" or "unsupported name form".
        how: &'static str,
    },
    /// The certificate's own names are malformed.
    #[error("malformed name in certificate: {0}")]
    BadName(String),
    /// So many names and subtrees that checking them is refused.
    #[error("{0} name comparisons needed; refused as excessive")]
    TooMuchWork(usize),
}

/// Most name × subtree comparisons one constraint check may make.
const MAX_COMPARISONS: usize = 1 << 20;

/// Checks that the certificate's names are well-formed (mailboxes, host names, addresses).
pub fn check_names(cert: &Certificate) -> Result<(), ConstraintError> {
    presented_names(cert).map(|_| ())
}

/// The constraints a CA certificate imposes, already checked for well-formedness.
pub struct Constraints {
    ca: String,
    permitted: Vec<GeneralSubtree>,
    excluded: Vec<GeneralSubtree>,
}

impl Constraints {
    /// Reads and checks the name constraints of `ca`; `None` when it has none.
    pub fn of(ca: &Certificate) -> Result<Option<Self>, ConstraintError> {
        let who = ca.tbs_certificate().subject().to_string();
        let invalid = |why: String| ConstraintError::Invalid {
            ca: who.clone(),
            why,
        };
        let nc = match ca.tbs_certificate().get_extension::<NameConstraints>() {
            Ok(Some((_, nc))) => nc,
            Ok(None) => return Ok(None),
            Err(e) => return Err(invalid(format!("cannot parse: {e}"))),
        };
        let permitted = nc.permitted_subtrees.unwrap_or_default();
        let excluded = nc.excluded_subtrees.unwrap_or_default();
        if permitted.is_empty() && excluded.is_empty() {
            return Err(invalid("neither permitted nor excluded subtrees".into()));
        }
        for t in permitted.iter().chain(&excluded) {
            if t.minimum != 0 || t.maximum.is_some() {
                return Err(invalid("minimum/maximum must be absent".into()));
            }
            check_base(&t.base).map_err(invalid)?;
        }
        Ok(Some(Self {
            ca: who,
            permitted,
            excluded,
        }))
    }

    /// Checks every name of `cert` against these constraints.
    pub fn check(&self, cert: &Certificate) -> Result<(), ConstraintError> {
        let names = presented_names(cert)?;
        // Names × subtrees is quadratic; a crafted pair (thousands of each) would tie up a
        // worker. The bound is OpenSSL's, far above any real certificate.
        let work = names.len() * (self.permitted.len() + self.excluded.len());
        if work > MAX_COMPARISONS {
            return Err(ConstraintError::TooMuchWork(work));
        }
        for name in names {
            self.check_name(&name)?;
        }
        Ok(())
    }

    fn check_name(&self, name: &Presented) -> Result<(), ConstraintError> {
        let violated = |how| ConstraintError::Violated {
            name: describe(name),
            ca: self.ca.clone(),
            how,
        };
        for t in &self.excluded {
            match matches(name, &t.base, Side::Excluded) {
                Match::Yes => return Err(violated("excluded subtree")),
                Match::Unsupported => return Err(violated("unsupported name form")),
                Match::No | Match::OtherForm => {}
            }
        }
        let mut same_form = false;
        for t in &self.permitted {
            match matches(name, &t.base, Side::Permitted) {
                Match::Yes => return Ok(()),
                Match::Unsupported => return Err(violated("unsupported name form")),
                Match::No => same_form = true,
                Match::OtherForm => {}
            }
        }
        // A form the permitted subtrees say nothing about is unconstrained.
        if same_form {
            return Err(violated("not permitted"));
        }
        Ok(())
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Side {
    Permitted,
    Excluded,
}

enum Match {
    Yes,
    No,
    /// The constraint is about another name form.
    OtherForm,
    /// Same form, but one we cannot evaluate.
    Unsupported,
}

fn matches(name: &Presented, base: &GeneralName, side: Side) -> Match {
    let yes = |b: bool| if b { Match::Yes } else { Match::No };
    match (name, base) {
        (Presented::Email(n), GeneralName::Rfc822Name(c)) => yes(email_within(n, c.as_str())),
        (Presented::Dns(n), GeneralName::DnsName(c)) => yes(dns_within(n, c.as_str(), side)),
        (Presented::Ip(n), GeneralName::IpAddress(c)) => yes(ip_within(n, c.as_bytes())),
        (Presented::Directory(n), GeneralName::DirectoryName(c)) => yes(dn_within(n, c)),
        (Presented::Uri(n), GeneralName::UniformResourceIdentifier(c)) => {
            match uri_host(n) {
                Some(host) => yes(uri_host_within(&host, c.as_str())),
                // A URI without a host cannot be shown to be inside (or outside) a subtree.
                None => Match::Unsupported,
            }
        }
        (Presented::Other(tag), base) if general_name_tag(base) == *tag => Match::Unsupported,
        _ => Match::OtherForm,
    }
}

/// Every name of the certificate that constraints apply to.
fn presented_names(cert: &Certificate) -> Result<Vec<Presented>, ConstraintError> {
    let tbs = cert.tbs_certificate();
    let mut out = Vec::new();
    if !tbs.subject().is_empty() {
        out.push(Presented::Directory(tbs.subject().clone()));
    }
    for atv in tbs.subject().iter() {
        if atv.oid == oids::EMAIL_ADDRESS {
            let addr = atv
                .value
                .decode_as::<Ia5String>()
                .map_err(|e| ConstraintError::BadName(format!("subject emailAddress: {e}")))?;
            out.push(Presented::Email(addr.to_string()));
        }
    }
    let san = match tbs.get_extension::<SubjectAltName>() {
        Ok(Some((_, san))) => san.0,
        Ok(None) => Vec::new(),
        Err(e) => return Err(ConstraintError::BadName(format!("subjectAltName: {e}"))),
    };
    for name in san {
        out.push(match name {
            GeneralName::Rfc822Name(m) => {
                let m = m.to_string();
                if !valid_mailbox(&m) {
                    return Err(ConstraintError::BadName(format!("rfc822Name {m:?}")));
                }
                Presented::Email(m)
            }
            GeneralName::DnsName(d) => {
                let d = d.to_string();
                if !valid_dns_name(&d, true) {
                    return Err(ConstraintError::BadName(format!("dNSName {d:?}")));
                }
                Presented::Dns(d)
            }
            GeneralName::IpAddress(ip) => {
                let ip = ip.as_bytes().to_vec();
                if ip.len() != 4 && ip.len() != 16 {
                    return Err(ConstraintError::BadName(format!(
                        "iPAddress of {} bytes",
                        ip.len()
                    )));
                }
                Presented::Ip(ip)
            }
            GeneralName::DirectoryName(n) => Presented::Directory(n),
            GeneralName::UniformResourceIdentifier(u) => Presented::Uri(u.to_string()),
            other => Presented::Other(general_name_tag(&other)),
        });
    }
    Ok(out)
}

fn general_name_tag(n: &GeneralName) -> u8 {
    match n {
        GeneralName::OtherName(_) => 0,
        GeneralName::Rfc822Name(_) => 1,
        GeneralName::DnsName(_) => 2,
        GeneralName::DirectoryName(_) => 4,
        GeneralName::EdiPartyName(_) => 5,
        GeneralName::UniformResourceIdentifier(_) => 6,
        GeneralName::IpAddress(_) => 7,
        GeneralName::RegisteredId(_) => 8,
    }
}

fn describe(name: &Presented) -> String {
    match name {
        Presented::Email(m) => format!("rfc822Name {m}"),
        Presented::Dns(d) => format!("dNSName {d}"),
        Presented::Ip(ip) => format!("iPAddress {}", show_ip(ip)),
        Presented::Directory(n) => format!("directoryName {n}"),
        Presented::Uri(u) => format!("URI {u}"),
        Presented::Other(tag) => format!("GeneralName [{tag}]"),
    }
}

fn show_ip(ip: &[u8]) -> String {
    match ip.len() {
        4 => std::net::Ipv4Addr::new(ip[0], ip[1], ip[2], ip[3]).to_string(),
        16 => {
            let mut b = [0u8; 16];
            b.copy_from_slice(ip);
            std::net::Ipv6Addr::from(b).to_string()
        }
        _ => format!("{ip:02x?}"),
    }
}

/// Checks that a constraint's base is well-formed for its form.
fn check_base(base: &GeneralName) -> Result<(), String> {
    match base {
        GeneralName::Rfc822Name(c) => {
            let c = c.as_str();
            let ok = if c.contains('@') {
                valid_mailbox(c)
            } else {
                let host = c.strip_prefix('.').unwrap_or(c);
                valid_dns_name(host, false)
            };
            if ok {
                Ok(())
            } else {
                Err(format!("rfc822Name constraint {c:?}"))
            }
        }
        GeneralName::DnsName(c) => {
            // Empty means every name; a leading dot or a wildcard is not valid syntax.
            let c = c.as_str();
            if c.is_empty() || valid_dns_name(c, false) {
                Ok(())
            } else {
                Err(format!("dNSName constraint {c:?}"))
            }
        }
        GeneralName::IpAddress(c) => {
            let c = c.as_bytes();
            let (addr, mask) = match c.len() {
                8 => c.split_at(4),
                32 => c.split_at(16),
                n => return Err(format!("iPAddress constraint of {n} bytes")),
            };
            let _ = addr;
            // The mask must be a prefix: ones then zeros.
            let bits: Vec<bool> = mask
                .iter()
                .flat_map(|b| (0..8).rev().map(move |i| b & (1 << i) != 0))
                .collect();
            if bits.windows(2).any(|w| !w[0] && w[1]) {
                return Err("iPAddress constraint mask is not a prefix".into());
            }
            Ok(())
        }
        GeneralName::UniformResourceIdentifier(c) => {
            let c = c.as_str();
            let host = c.strip_prefix('.').unwrap_or(c);
            if valid_dns_name(host, false) {
                Ok(())
            } else {
                Err(format!("URI constraint {c:?}"))
            }
        }
        _ => Ok(()),
    }
}

/// A mailbox `local@domain` with a non-empty local part and a valid domain.
fn valid_mailbox(m: &str) -> bool {
    match m.rsplit_once('@') {
        Some((local, domain)) => {
            !local.is_empty()
                && !local.contains('@')
                && local.bytes().all(|b| b.is_ascii_graphic())
                && valid_dns_name(domain, false)
        }
        None => false,
    }
}

/// Preferred name syntax (RFC 1034/5890 A-labels); a leading `*.` only when `wildcard`.
fn valid_dns_name(name: &str, wildcard: bool) -> bool {
    let name = match name.strip_prefix("*.") {
        Some(rest) if wildcard => rest,
        _ => name,
    };
    let name = name.strip_suffix('.').unwrap_or(name);
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

/// `name` equals `base` or is a subdomain of it (label boundaries, any case).
fn in_domain(name: &str, base: &str) -> bool {
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    let base = base.trim_end_matches('.').to_ascii_lowercase();
    name == base || name.ends_with(&format!(".{base}"))
}

/// RFC 5280: a constraint with `@` names one mailbox; a host names all mailboxes at that host;
/// a leading dot names all mailboxes at its subdomains (not at the domain itself).
fn email_within(mailbox: &str, constraint: &str) -> bool {
    let Some((local, host)) = mailbox.rsplit_once('@') else {
        return false;
    };
    if let Some((c_local, c_host)) = constraint.rsplit_once('@') {
        // The local part is compared exactly (it is case-sensitive); the host is not.
        return local == c_local && host.eq_ignore_ascii_case(c_host);
    }
    match constraint.strip_prefix('.') {
        Some(domain) => {
            !host.eq_ignore_ascii_case(domain) && in_domain(host, domain) && !domain.is_empty()
        }
        None => host.eq_ignore_ascii_case(constraint),
    }
}

/// dNSName: the constraint's domain and everything below it. A wildcard name (`*.d`) stands
/// for every name one label below `d`: it is permitted only if all of them are, and excluded
/// if any of them is.
fn dns_within(name: &str, constraint: &str, side: Side) -> bool {
    if constraint.is_empty() {
        return true;
    }
    match name.strip_prefix("*.") {
        None => in_domain(name, constraint),
        Some(parent) => match side {
            // Every `x.parent` is under the constraint iff `parent` is strictly below it or
            // `parent` itself is the constraint.
            Side::Permitted => in_domain(parent, constraint),
            // Some `x.parent` is under the constraint if the above holds, or if the constraint
            // is exactly one label below `parent` (the wildcard's label can be that label).
            Side::Excluded => {
                in_domain(parent, constraint)
                    || constraint.split_once('.').is_some_and(|(_, up)| {
                        up.eq_ignore_ascii_case(parent.trim_end_matches('.'))
                    })
            }
        },
    }
}

fn ip_within(ip: &[u8], constraint: &[u8]) -> bool {
    if constraint.len() != ip.len() * 2 {
        return false;
    }
    let (addr, mask) = constraint.split_at(ip.len());
    ip.iter()
        .zip(addr)
        .zip(mask)
        .all(|((i, a), m)| i & m == a & m)
}

/// directoryName: the constraint's RDNs are a prefix of the name's.
fn dn_within(name: &Name, constraint: &Name) -> bool {
    let n: Vec<_> = name.iter_rdn().collect();
    let c: Vec<_> = constraint.iter_rdn().collect();
    c.len() <= n.len() && c.iter().zip(&n).all(|(a, b)| a == b)
}

/// The host of an absolute URI (`scheme://[userinfo@]host[:port]/...`).
fn uri_host(uri: &str) -> Option<String> {
    let (_, rest) = uri.split_once("://")?;
    let authority = rest.split(['/', '?', '#']).next()?;
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    if host_port.starts_with('[') {
        return None;
    }
    let host = host_port.split(':').next()?;
    (!host.is_empty()).then(|| host.to_string())
}

/// URI constraints: a host names that host only; a leading dot names its subdomains.
fn uri_host_within(host: &str, constraint: &str) -> bool {
    match constraint.strip_prefix('.') {
        Some(domain) => !host.eq_ignore_ascii_case(domain) && in_domain(host, domain),
        None => host.eq_ignore_ascii_case(constraint),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn email_constraints_follow_rfc_5280() {
        assert!(email_within("a@example.com", "example.com"));
        assert!(email_within("a@EXAMPLE.com", "example.com"));
        assert!(!email_within("a@sub.example.com", "example.com"));
        assert!(email_within("a@sub.example.com", ".example.com"));
        assert!(!email_within("a@example.com", ".example.com"));
        assert!(email_within("a@example.com", "a@example.com"));
        assert!(!email_within("A@example.com", "a@example.com"));
        assert!(!email_within("b@example.com", "a@example.com"));
        assert!(!email_within("a@evilexample.com", ".example.com"));
    }

    #[test]
    fn dns_constraints_respect_label_boundaries() {
        assert!(dns_within("example.com", "example.com", Side::Permitted));
        assert!(dns_within(
            "a.b.example.com",
            "example.com",
            Side::Permitted
        ));
        assert!(!dns_within(
            "notexample.com",
            "example.com",
            Side::Permitted
        ));
        assert!(dns_within("*.example.com", "example.com", Side::Permitted));
        assert!(!dns_within(
            "*.example.com",
            "foo.example.com",
            Side::Permitted
        ));
        assert!(dns_within(
            "*.example.com",
            "bar.example.com",
            Side::Excluded
        ));
    }

    #[test]
    fn ip_constraints_compare_under_the_mask() {
        assert!(ip_within(
            &[192, 0, 2, 1],
            &[192, 0, 2, 0, 255, 255, 255, 0]
        ));
        assert!(!ip_within(
            &[192, 0, 3, 1],
            &[192, 0, 2, 0, 255, 255, 255, 0]
        ));
        assert!(!ip_within(&[192, 0, 2, 1], &[0; 32]));
        assert!(check_base(&GeneralName::IpAddress(
            der::asn1::OctetString::new(vec![192, 0, 2, 0, 255, 0, 255, 0]).unwrap()
        ))
        .is_err());
    }

    #[test]
    fn malformed_names_are_recognised() {
        assert!(!valid_dns_name("foo_bar.example.com", false));
        assert!(!valid_dns_name("*.example.com", false));
        assert!(valid_dns_name("*.example.com", true));
        assert!(!valid_dns_name(".example.com", false));
        assert!(!valid_mailbox("example.com"));
        assert!(!valid_mailbox("@example.com"));
        assert_eq!(
            uri_host("https://user@host.example:8443/x").as_deref(),
            Some("host.example")
        );
    }
}
