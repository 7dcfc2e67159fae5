//! An HSM-style `KeyLoader`: the gateway never holds our private key. A separate process (the
//! stand-in for an HSM or a signing service) keeps it and performs the three operations
//! S/MIME needs — RSA decryption of a content key, ECDH, signing — over a Unix socket.
//!
//! ```text
//! # the key holder (give it the key; nobody else reads that file)
//! cargo run -p postern-examples --example hsm_keyloader -- serve /run/hsm.sock key.pem
//! # the gateway side: our certificate only
//! cargo run -p postern-examples --example hsm_keyloader -- open /run/hsm.sock our.pem < mail.eml
//! cargo run -p postern-examples --example hsm_keyloader -- seal /run/hsm.sock our.pem partner.pem < mail.eml
//! ```
//!
//! `open` prints the opened message; `seal` prints it signed with our key and sealed for the
//! partner. The wire format is this example's own: one request per connection, an operation
//! byte, two parameter bytes and a length-prefixed payload; the answer is a status byte and a
//! length-prefixed payload.

use std::io::{Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use postern_core::{
    Address, Credential, DigestAlgorithm, Domain, Error, SignatureAlgorithm, Standard,
};
use postern_router::{
    Directory, Disposition, DomainPattern, Envelope, Gateway, Inbound, OurIdentity, Outgoing,
    Partner, PartnerPolicy,
};
use postern_smime::keys::{parse_certificates, PublicKey, RsaPadding};
use postern_smime::{Identity, KeyLoader, PrivateKeyOps, SoftwareKey};
use zeroize::Zeroizing;

const RSA_DECRYPT: u8 = 1;
const ECDH: u8 = 2;
const SIGN: u8 = 3;
/// Nothing we send or take is larger (a content key, a point, signed attributes).
const MAX_PAYLOAD: usize = 64 << 10;

fn digest_code(d: DigestAlgorithm) -> u8 {
    match d {
        DigestAlgorithm::Sha256 => 1,
        DigestAlgorithm::Sha384 => 2,
        DigestAlgorithm::Sha512 => 3,
        _ => 0,
    }
}

fn digest_of(code: u8) -> Option<DigestAlgorithm> {
    Some(match code {
        1 => DigestAlgorithm::Sha256,
        2 => DigestAlgorithm::Sha384,
        3 => DigestAlgorithm::Sha512,
        _ => return None,
    })
}

fn write_frame(s: &mut UnixStream, head: &[u8], payload: &[u8]) -> std::io::Result<()> {
    s.write_all(head)?;
    s.write_all(&(payload.len() as u32).to_be_bytes())?;
    s.write_all(payload)
}

fn read_payload(s: &mut UnixStream) -> std::io::Result<Vec<u8>> {
    let mut len = [0u8; 4];
    s.read_exact(&mut len)?;
    let len = u32::from_be_bytes(len) as usize;
    if len > MAX_PAYLOAD {
        return Err(std::io::Error::other("payload too large"));
    }
    let mut buf = vec![0; len];
    s.read_exact(&mut buf)?;
    Ok(buf)
}

// ---- the key holder ---------------------------------------------------------------------

fn serve(socket: &Path, key_file: &Path) -> Result<(), Box<dyn std::error::Error>> {
    let key = Arc::new(SoftwareKey::from_pem_or_der(&Zeroizing::new(
        std::fs::read(key_file)?,
    ))?);
    let _ = std::fs::remove_file(socket);
    let listener = UnixListener::bind(socket)?;
    eprintln!("hsm: holding the key, listening on {}", socket.display());
    for conn in listener.incoming() {
        let (mut conn, key) = (conn?, key.clone());
        std::thread::spawn(move || {
            if let Err(e) = answer(&mut conn, &*key) {
                eprintln!("hsm: {e}");
            }
        });
    }
    Ok(())
}

fn answer(conn: &mut UnixStream, key: &dyn PrivateKeyOps) -> std::io::Result<()> {
    let mut head = [0u8; 3];
    conn.read_exact(&mut head)?;
    let input = read_payload(conn)?;
    let result = match head {
        [RSA_DECRYPT, 0, _] => key
            .rsa_decrypt(RsaPadding::Pkcs1v15, &input)
            .map(|k| k.to_vec()),
        [RSA_DECRYPT, 1, d] => match digest_of(d) {
            Some(d) => key
                .rsa_decrypt(RsaPadding::Oaep(d), &input)
                .map(|k| k.to_vec()),
            None => Err(Error::UnsupportedAlgorithm("OAEP digest".into())),
        },
        [ECDH, _, _] => key.ecdh(&input).map(|z| z.to_vec()),
        [SIGN, kind, d] => match (kind, digest_of(d)) {
            (0, Some(d)) => key.sign(SignatureAlgorithm::RsaPkcs1(d), &input),
            (1, Some(d)) => key.sign(SignatureAlgorithm::RsaPss(d), &input),
            (2, Some(d)) => key.sign(SignatureAlgorithm::Ecdsa(d), &input),
            _ => Err(Error::UnsupportedAlgorithm("signature".into())),
        },
        _ => Err(Error::InvalidRequest("unknown operation".into())),
    };
    // Which operation, never what it was given or gave back.
    eprintln!(
        "hsm: operation {} -> {}",
        head[0],
        if result.is_ok() { "done" } else { "refused" }
    );
    match result {
        Ok(out) => write_frame(conn, &[0], &out),
        // The error kind only: a padding failure must look like any other failure.
        Err(_) => write_frame(conn, &[1], b"operation failed"),
    }
}

// ---- the gateway side -------------------------------------------------------------------

/// Private-key operations done by the key holder behind `socket`.
#[derive(Debug)]
struct RemoteKey {
    socket: PathBuf,
    public: PublicKey,
}

impl RemoteKey {
    fn call(&self, head: [u8; 3], input: &[u8]) -> Result<Vec<u8>, Error> {
        let down = |e: std::io::Error| Error::Unavailable(format!("key holder: {e}"));
        let mut s = UnixStream::connect(&self.socket).map_err(down)?;
        write_frame(&mut s, &head, input).map_err(down)?;
        let mut status = [0u8; 1];
        s.read_exact(&mut status).map_err(down)?;
        let out = read_payload(&mut s).map_err(down)?;
        match status[0] {
            0 => Ok(out),
            _ if head[0] == RSA_DECRYPT => Err(Error::DecryptionFailed),
            _ => Err(Error::Backend(
                "the key holder refused the operation".into(),
            )),
        }
    }
}

impl PrivateKeyOps for RemoteKey {
    fn public_key(&self) -> &PublicKey {
        &self.public
    }

    fn rsa_decrypt(&self, padding: RsaPadding, ct: &[u8]) -> Result<Zeroizing<Vec<u8>>, Error> {
        let head = match padding {
            RsaPadding::Pkcs1v15 => [RSA_DECRYPT, 0, 0],
            RsaPadding::Oaep(d) => [RSA_DECRYPT, 1, digest_code(d)],
        };
        self.call(head, ct).map(Zeroizing::new)
    }

    fn ecdh(&self, peer_point: &[u8]) -> Result<Zeroizing<Vec<u8>>, Error> {
        self.call([ECDH, 0, 0], peer_point).map(Zeroizing::new)
    }

    fn sign(&self, alg: SignatureAlgorithm, data: &[u8]) -> Result<Vec<u8>, Error> {
        let head = match alg {
            SignatureAlgorithm::RsaPkcs1(d) => [SIGN, 0, digest_code(d)],
            SignatureAlgorithm::RsaPss(d) => [SIGN, 1, digest_code(d)],
            SignatureAlgorithm::Ecdsa(d) => [SIGN, 2, digest_code(d)],
            other => return Err(Error::UnsupportedAlgorithm(format!("{other:?}"))),
        };
        self.call(head, data)
    }
}

/// Builds identities whose key lives behind the socket; the credential needs no secret.
#[derive(Debug)]
struct SocketKeyLoader {
    socket: PathBuf,
}

impl KeyLoader for SocketKeyLoader {
    fn load(&self, cred: &Credential) -> Result<Arc<Identity>, Error> {
        let mut certs = parse_certificates(&cred.certificate)?.into_iter();
        let certificate = certs
            .next()
            .ok_or_else(|| Error::malformed("certificate", "empty"))?;
        let public = PublicKey::from_certificate(&certificate)?;
        Ok(Arc::new(Identity {
            certificate,
            chain: certs.collect(),
            key: Box::new(RemoteKey {
                socket: self.socket.clone(),
                public,
            }),
        }))
    }
}

fn directory(
    our_cert: &Path,
    partner_cert: Option<&Path>,
) -> Result<Directory, Box<dyn std::error::Error>> {
    let mut dir = Directory {
        our: OurIdentity {
            domains: vec![Domain::new("clinic.example")?],
            // Our certificate only: there is no private key on this side.
            credentials: vec![Credential::public(
                Standard::Smime,
                std::fs::read(our_cert)?,
            )],
            ..OurIdentity::default()
        },
        partners: Vec::new(),
    };
    if let Some(p) = partner_cert {
        let mut partner = Partner::new(
            DomainPattern::parse("smime.example")?,
            PartnerPolicy::Required,
            vec![Standard::Smime],
        );
        partner
            .certificates
            .insert(Standard::Smime, vec![std::fs::read(p)?]);
        partner.sign = true;
        dir.partners.push(partner);
    }
    Ok(dir)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<PathBuf> = std::env::args_os().skip(1).map(PathBuf::from).collect();
    let arg = |i: usize| args.get(i).map(PathBuf::as_path).ok_or("missing argument");
    let mode = arg(0)?.to_str().unwrap_or_default().to_string();
    if mode == "serve" {
        return serve(arg(1)?, arg(2)?);
    }
    let gateway = Gateway::builder()
        .key_loader(Arc::new(SocketKeyLoader {
            socket: arg(1)?.to_path_buf(),
        }))
        .build()?;
    let mut message = Vec::new();
    std::io::stdin().read_to_end(&mut message)?;
    let out = match mode.as_str() {
        "open" => match gateway
            .inbound(&gateway.check(directory(arg(2)?, None)?)?, None, &message)
            .await
        {
            Inbound::Deliver { message, .. } => message,
            Inbound::Quarantine { reason, .. } => return Err(reason.to_string().into()),
        },
        "seal" => {
            // Checked through the HSM: the probe is signed by the key the socket holds.
            let dir = gateway.check(directory(arg(2)?, Some(arg(3)?))?)?;
            let envelope = Envelope {
                mail_from: Some(Address::new("dr@clinic.example")?),
                rcpt_to: vec![Address::new("results@smime.example")?],
            };
            let plan = gateway
                .outbound(&dir, Outgoing::new(&envelope, &message))
                .await;
            match plan.dispositions.into_iter().next() {
                Some(Disposition::Deliver {
                    message,
                    sealed: Some(_),
                    ..
                }) => message,
                Some(Disposition::Hold { reason, .. } | Disposition::Bounce { reason, .. }) => {
                    return Err(reason.smtp_reply().to_string().into())
                }
                _ => return Err("not sealed".into()),
            }
        }
        _ => return Err("usage: hsm_keyloader serve|open|seal SOCKET ...".into()),
    };
    std::io::stdout().write_all(&out)?;
    Ok(())
}
