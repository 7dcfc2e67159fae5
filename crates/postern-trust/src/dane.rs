//! Keys in DNSSEC-signed DNS: SMIMEA (RFC 8162) for S/MIME and OPENPGPKEY (RFC 7929) for
//! OpenPGP, at `<sha256(local part)[..28] hex>._smimecert.<domain>` and `._openpgpkey.`.
//!
//! Both RFCs make DNSSEC the proof, so an answer is used only when the validating resolver
//! we ask (configured `dns`, e.g. a local unbound) sets the AD bit; an unvalidated answer is
//! logged and not used. SMIMEA records are used when they carry the whole certificate
//! (selector 0, matching type 0) with usage DANE-EE (3): the DNSSEC proof stands for the
//! chain. PKIX-EE (1) and hash-only records are not used (not built: they need the certificate
//! from elsewhere and a chain check).
//!
//! The query is made here (hickory's message types over UDP, TCP when truncated) because the
//! resolver API does not show the AD bit.

use std::net::SocketAddr;
use std::time::Duration;

use async_trait::async_trait;
use hickory_resolver::proto::op::{Edns, Message, MessageType, OpCode, Query, ResponseCode};
use hickory_resolver::proto::rr::{Name, RData, RecordType};
use postern_core::{Address, Credential, Domain, Error, KeyStore, Standard};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

const SMIMEA: u16 = 53;

/// What a lookup gave.
struct Answer {
    authenticated: bool,
    rdata: Vec<Vec<u8>>,
}

/// SMIMEA and OPENPGPKEY lookups through a validating resolver.
#[derive(Debug)]
pub struct DaneKeys {
    resolver: SocketAddr,
    /// Per-query timeout.
    pub timeout: Duration,
}

impl DaneKeys {
    /// Asks the validating resolver at `resolver`.
    pub fn new(resolver: SocketAddr) -> Self {
        DaneKeys {
            resolver,
            timeout: Duration::from_secs(5),
        }
    }

    /// The owner name for `recipient` under `label` (`_smimecert` or `_openpgpkey`).
    pub fn owner_name(recipient: &Address, label: &str) -> String {
        let digest =
            aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, recipient.local().as_bytes());
        let hex: String = digest.as_ref()[..28]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        format!("{hex}.{label}.{}.", recipient.domain().as_str())
    }

    async fn query(&self, name: &str, rtype: RecordType) -> Result<Answer, String> {
        let mut msg = Message::new();
        let id: u16 = rand_id();
        msg.set_id(id)
            .set_message_type(MessageType::Query)
            .set_op_code(OpCode::Query)
            .set_recursion_desired(true)
            .set_authentic_data(true);
        msg.add_query(Query::query(
            Name::from_ascii(name).map_err(|e| e.to_string())?,
            rtype,
        ));
        let mut edns = Edns::new();
        edns.set_dnssec_ok(true).set_max_payload(1232);
        msg.set_edns(edns);
        let bytes = msg.to_vec().map_err(|e| e.to_string())?;
        let mut response = self.udp(&bytes).await?;
        if response.truncated() {
            response = self.tcp(&bytes).await?;
        }
        if response.id() != id {
            return Err("answer to another query".into());
        }
        match response.response_code() {
            ResponseCode::NoError => {}
            ResponseCode::NXDomain => {
                return Ok(Answer {
                    authenticated: response.authentic_data(),
                    rdata: Vec::new(),
                })
            }
            other => return Err(format!("resolver answered {other}")),
        }
        let rdata = response
            .answers()
            .iter()
            .filter(|r| r.record_type() == rtype)
            .filter_map(|r| match r.data() {
                RData::OPENPGPKEY(k) => Some(k.public_key().to_vec()),
                RData::Unknown { rdata, .. } => Some(rdata.anything().to_vec()),
                _ => None,
            })
            .collect();
        Ok(Answer {
            authenticated: response.authentic_data(),
            rdata,
        })
    }

    async fn udp(&self, query: &[u8]) -> Result<Message, String> {
        // A resolver on loopback is asked from loopback.
        let bind = match (self.resolver.is_ipv4(), self.resolver.ip().is_loopback()) {
            (true, true) => "127.0.0.1:0",
            (true, false) => "0.0.0.0:0",
            (false, true) => "[::1]:0",
            (false, false) => "[::]:0",
        };
        let sock = UdpSocket::bind(bind).await.map_err(|e| e.to_string())?;
        sock.connect(self.resolver)
            .await
            .map_err(|e| e.to_string())?;
        sock.send(query).await.map_err(|e| e.to_string())?;
        let mut buf = vec![0u8; 4096];
        let n = tokio::time::timeout(self.timeout, sock.recv(&mut buf))
            .await
            .map_err(|_| format!("{} does not answer", self.resolver))?
            .map_err(|e| e.to_string())?;
        Message::from_vec(&buf[..n]).map_err(|e| e.to_string())
    }

    async fn tcp(&self, query: &[u8]) -> Result<Message, String> {
        let work = async {
            let mut s = TcpStream::connect(self.resolver)
                .await
                .map_err(|e| e.to_string())?;
            let len = u16::try_from(query.len()).map_err(|_| "query too long")?;
            s.write_all(&len.to_be_bytes())
                .await
                .map_err(|e| e.to_string())?;
            s.write_all(query).await.map_err(|e| e.to_string())?;
            let mut len = [0u8; 2];
            s.read_exact(&mut len).await.map_err(|e| e.to_string())?;
            let mut buf = vec![0u8; usize::from(u16::from_be_bytes(len))];
            s.read_exact(&mut buf).await.map_err(|e| e.to_string())?;
            Message::from_vec(&buf).map_err(|e| e.to_string())
        };
        tokio::time::timeout(self.timeout, work)
            .await
            .map_err(|_| format!("{} does not answer over TCP", self.resolver))?
    }

    /// The validated records at `name`; an unvalidated answer counts as none.
    async fn validated(&self, name: &str, rtype: RecordType) -> Result<Vec<Vec<u8>>, Error> {
        let answer = self
            .query(name, rtype)
            .await
            .map_err(|e| Error::Unavailable(format!("DNS {name}: {e}")))?;
        if !answer.authenticated {
            if !answer.rdata.is_empty() {
                tracing::warn!(name, "DNS answer not validated by DNSSEC: not used");
            }
            return Ok(Vec::new());
        }
        Ok(answer.rdata)
    }
}

/// The resolver to ask: `dns` (`IP:PORT`), else the first nameserver of /etc/resolv.conf —
/// only if it is on loopback. Its AD bit is believed, and between us and a resolver elsewhere
/// anyone on the path could set that bit on a forged answer and have mail sealed to their key;
/// a resolver off loopback leaves DANE lookups off (logged), not trusted.
pub fn validating_resolver(dns: &str) -> Option<SocketAddr> {
    let addr = if dns.is_empty() {
        let conf = std::fs::read_to_string("/etc/resolv.conf").ok()?;
        conf.lines().find_map(|l| {
            let ip = l.trim().strip_prefix("nameserver")?.trim();
            ip.parse::<std::net::IpAddr>()
                .ok()
                .map(|ip| SocketAddr::new(ip, 53))
        })?
    } else {
        dns.parse().ok()?
    };
    if !addr.ip().is_loopback() {
        tracing::warn!(
            resolver = %addr,
            "DANE (SMIMEA/OPENPGPKEY) lookups off: the validating resolver must be on loopback"
        );
        return None;
    }
    Some(addr)
}

fn rand_id() -> u16 {
    let mut b = [0u8; 2];
    let _ = aws_lc_rs::rand::fill(&mut b);
    u16::from_be_bytes(b)
}

/// The certificates in SMIMEA records that carry one whole (selector 0, matching type 0), with
/// whether DNSSEC alone vouches for them (DANE-EE) or they need a chain (PKIX-EE).
pub fn smimea_certificates(rdata: &[Vec<u8>]) -> Vec<(Vec<u8>, bool)> {
    rdata
        .iter()
        .filter_map(|r| match r.as_slice() {
            [usage @ (1 | 3), 0, 0, cert @ ..] if !cert.is_empty() => {
                Some((cert.to_vec(), *usage == 3))
            }
            _ => None,
        })
        .collect()
}

#[async_trait]
impl KeyStore for DaneKeys {
    /// DANE-EE certificates, validated by DNSSEC (the router does not ask them to chain).
    async fn recipient_certificates(
        &self,
        standard: Standard,
        recipient: &Address,
    ) -> Result<Vec<Vec<u8>>, Error> {
        match standard {
            Standard::Smime => {
                let name = Self::owner_name(recipient, "_smimecert");
                let rdata = self.validated(&name, RecordType::Unknown(SMIMEA)).await?;
                Ok(smimea_certificates(&rdata)
                    .into_iter()
                    .filter(|(_, dane_ee)| *dane_ee)
                    .map(|(c, _)| c)
                    .collect())
            }
            Standard::OpenPgp => {
                let name = Self::owner_name(recipient, "_openpgpkey");
                let rdata = self.validated(&name, RecordType::OPENPGPKEY).await?;
                let mut out = Vec::new();
                for key in rdata {
                    out.extend(postern_openpgp::certificates_with_address(
                        &key,
                        &recipient.to_string(),
                    )?);
                }
                Ok(out)
            }
            _ => Ok(Vec::new()),
        }
    }

    async fn own_credentials(&self, _: Standard, _: &Domain) -> Result<Vec<Credential>, Error> {
        Ok(Vec::new())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 7929 §2.3's example: the local part "hugh" hashes to c93f1e40...
    #[test]
    fn owner_names_follow_the_rfcs() {
        let a = Address::new("hugh@example.com").unwrap();
        assert_eq!(
            DaneKeys::owner_name(&a, "_openpgpkey"),
            "c93f1e400f26708f98cb19d936620da35eec8f72e57f9eec01c1afd6._openpgpkey.example.com."
        );
    }
}

#[cfg(test)]
mod resolver_tests {
    use super::*;

    #[test]
    fn only_a_resolver_on_loopback_is_believed() {
        assert!(validating_resolver("127.0.0.1:53").is_some());
        assert!(validating_resolver("[::1]:5353").is_some());
        assert!(validating_resolver("10.255.255.53:53").is_none());
        assert!(validating_resolver("192.0.2.1:53").is_none());
    }
}
