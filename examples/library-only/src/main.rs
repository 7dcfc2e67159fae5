//! Postern from the library alone: the Gateway with Web Key Directory discovery
//! (postern-trust) and the built-in content inspection (postern-dlp, on by default), as an MTA
//! that takes neither the relay nor a web framework nor a database would use it.
//!
//! ```text
//! wkd_and_dlp [--ca CA.pem] [--resolve HOST=IP:PORT ...] DIRECTORY.toml OUT-DIR FROM TO... < message.eml
//! ```
//!
//! `--ca` adds a root for the WKD servers' certificates (a private CA in a test; the web PKI
//! roots are always there); `--resolve` connects to `IP:PORT` for `HOST` (the TLS name stays
//! `HOST`). One line per group of recipients is printed; sealed copies are written to
//! `OUT-DIR/<first recipient>.eml`. Plain copies are never printed (they may hold PHI).

use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use postern_core::Address;
use postern_router::{Disposition, Envelope, Gateway, KeySource, Outgoing};
use postern_trust::wkd::Wkd;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let mut roots = Vec::new();
    let mut resolve = Vec::new();
    while args.first().is_some_and(|a| a.starts_with("--")) {
        let flag = args.remove(0);
        if args.is_empty() {
            return Err(format!("{flag} needs a value").into());
        }
        let value = args.remove(0);
        match flag.as_str() {
            "--ca" => roots.extend(postern_trust::tls::roots_from_pem(&std::fs::read(&value)?)?),
            "--resolve" => {
                let (host, addr) = value.split_once('=').ok_or("--resolve HOST=IP:PORT")?;
                resolve.push((host.to_string(), addr.parse::<std::net::SocketAddr>()?));
            }
            other => return Err(format!("unknown option {other}").into()),
        }
    }
    let [directory, out, from, to @ ..] = args.as_slice() else {
        return Err("usage: wkd_and_dlp [--ca CA.pem] [--resolve HOST=IP:PORT] DIRECTORY.toml OUT-DIR FROM TO...".into());
    };
    if to.is_empty() {
        return Err("no recipient".into());
    }

    // A WKD client from postern-trust: verified TLS (web PKI roots plus ours).
    let mut wkd = Wkd::new(postern_trust::tls::verified_connector(&roots)?);
    for (host, addr) in resolve {
        wkd = wkd.with_host(&host, addr);
    }
    // The defaults: S/MIME and OpenPGP, and the built-in DLP on every copy that would leave
    // in clear. Partners whose entry says `key_sources = ["wkd"]` are looked up there.
    let gateway = Gateway::builder()
        .key_store(KeySource::Wkd, Arc::new(wkd))
        .build()?;
    let directory = gateway.load_directory(Path::new(directory))?;

    let mut message = Vec::new();
    std::io::stdin().read_to_end(&mut message)?;
    let envelope = Envelope {
        mail_from: Some(Address::new(from)?),
        rcpt_to: to
            .iter()
            .map(|a| Address::new(a))
            .collect::<Result<_, _>>()?,
    };
    let plan = gateway
        .outbound(&directory, Outgoing::new(&envelope, &message))
        .await;
    for d in &plan.dispositions {
        let who: Vec<String> = d.recipients().iter().map(|a| a.to_string()).collect();
        let what = match d {
            Disposition::Deliver {
                message,
                sealed: Some(standard),
                ..
            } => {
                let path = PathBuf::from(out).join(format!("{}.eml", who[0]));
                std::fs::write(&path, message)?;
                format!("sealed with {standard} -> {}", path.display())
            }
            Disposition::Deliver { sealed: None, .. } => "deliver in clear".to_string(),
            Disposition::Quarantine { reason, .. } => format!("quarantine: {reason}"),
            Disposition::Portal { .. } => "portal".to_string(),
            Disposition::Hold { reason, .. } | Disposition::Bounce { reason, .. } => {
                format!("not sent ({}): {reason}", reason.smtp_reply().enhanced)
            }
            Disposition::Local { .. } => "to our mail server".to_string(),
        };
        println!("{}: {what}", who.join(", "));
    }
    Ok(())
}
