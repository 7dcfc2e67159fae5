//! A third `SecureEnvelope` plugged in next to the built-in S/MIME and OpenPGP backends.
//!
//! ```text
//! cargo run -p postern-examples --example custom_backend -- partner.pem partner.asc out/
//! ```
//!
//! The backend here hands the cryptography to an external program — the `openssl` command,
//! standing in for a vendor's tool or a certified module that only comes as a binary. It is
//! its own standard (`openssl-cli`); the partner `smime.example` is switched to it, while
//! `openpgp.example` keeps the built-in OpenPGP backend. The gateway picks the backend per
//! partner and applies the same fail-closed rules to both: if the program fails, the partner
//! gets nothing rather than plaintext.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;

use async_trait::async_trait;
use postern_core::mime::{base64_lines, inner_entity, outer_headers};
use postern_core::{
    Address, Error, MessageView, OpenRequest, Opened, SealRequest, SecureEnvelope, Standard,
};
use postern_router::{Directory, Disposition, Envelope, Gateway, Outgoing};

const OPENSSL_CLI: Standard = Standard::Other("openssl-cli");

/// S/MIME enveloping by the `openssl cms` command.
#[derive(Debug)]
struct ExternalCms {
    program: PathBuf,
}

impl ExternalCms {
    /// Runs the program; blocking, so the caller puts it on a blocking thread.
    fn encrypt(&self, inner: &[u8], certs: &[Vec<u8>]) -> Result<Vec<u8>, Error> {
        let tmp = tempfile::tempdir().map_err(|e| Error::Unavailable(e.to_string()))?;
        let mut cmd = Command::new(&self.program);
        cmd.args([
            "cms",
            "-encrypt",
            "-binary",
            "-aes-256-cbc",
            "-outform",
            "DER",
        ]);
        for (i, c) in certs.iter().enumerate() {
            let path = tmp.path().join(format!("r{i}.pem"));
            std::fs::write(&path, c).map_err(|e| Error::Unavailable(e.to_string()))?;
            cmd.arg(path);
        }
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| {
                Error::Unavailable(format!("cannot run {}: {e}", self.program.display()))
            })?;
        let mut stdin = child
            .stdin
            .take()
            .ok_or_else(|| Error::Backend("no stdin".into()))?;
        // Written from another thread: the program may fill its stdout pipe before it has read
        // all of its input.
        let input = inner.to_vec();
        let writer = std::thread::spawn(move || stdin.write_all(&input));
        let out = child
            .wait_with_output()
            .map_err(|e| Error::Backend(e.to_string()))?;
        let _ = writer.join();
        if !out.status.success() {
            // Its stderr names the certificate or option at fault (no message text).
            return Err(Error::NoUsableKey {
                recipient: "partner".into(),
                reason: String::from_utf8_lossy(&out.stderr)
                    .lines()
                    .next()
                    .unwrap_or("")
                    .into(),
            });
        }
        Ok(out.stdout)
    }
}

#[async_trait]
impl SecureEnvelope for ExternalCms {
    fn standard(&self) -> Standard {
        OPENSSL_CLI
    }

    /// It only seals; mail coming back is S/MIME, which the built-in backend opens.
    fn recognises(&self, _: &MessageView<'_>) -> bool {
        false
    }

    async fn seal(&self, msg: &MessageView<'_>, req: &SealRequest<'_>) -> Result<Vec<u8>, Error> {
        if req.recipients.is_empty() || req.sign.is_some() {
            return Err(Error::InvalidRequest("openssl-cli only encrypts".into()));
        }
        let inner = inner_entity(msg, None);
        let certs = req.recipients.to_vec();
        let me = ExternalCms {
            program: self.program.clone(),
        };
        let der = tokio::task::spawn_blocking(move || me.encrypt(&inner, &certs))
            .await
            .map_err(|e| Error::Backend(e.to_string()))??;
        let mut out = outer_headers(msg, false, false);
        out.extend_from_slice(
            // The outer fields carry MIME-Version already.
            b"Content-Type: application/pkcs7-mime; smime-type=enveloped-data; name=smime.p7m\r\n\
              Content-Disposition: attachment; filename=smime.p7m\r\n\
              Content-Transfer-Encoding: base64\r\n\r\n",
        );
        out.extend_from_slice(&base64_lines(&der));
        Ok(out)
    }

    async fn open(&self, _: &MessageView<'_>, _: &OpenRequest<'_>) -> Result<Opened, Error> {
        Err(Error::UnsupportedAlgorithm(
            "openssl-cli does not open mail".into(),
        ))
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<PathBuf> = std::env::args_os().skip(1).map(PathBuf::from).collect();
    let [smime_cert, pgp_cert, out] = args.as_slice() else {
        return Err("usage: custom_backend PARTNER-CERT.pem PARTNER-KEY.asc OUT-DIR".into());
    };
    let toml = format!(
        "[our]\ndomains = [\"clinic.example\"]\n\n\
         [[partner]]\ndomain = \"smime.example\"\nstandards = [\"smime\"]\npolicy = \"required\"\n\
         smime_certificates = [{:?}]\n\n\
         [[partner]]\ndomain = \"openpgp.example\"\nstandards = [\"openpgp\"]\npolicy = \"required\"\n\
         openpgp_certificates = [{:?}]\n",
        smime_cert.display().to_string(),
        pgp_cert.display().to_string()
    );
    let mut dir = Directory::from_toml(&toml, Path::new("."))?;
    // The file names the built-in standards; the Rust API takes any. smime.example moves to ours.
    let lab = &mut dir.partners[0];
    let certs = lab
        .certificates
        .remove(&Standard::Smime)
        .unwrap_or_default();
    lab.certificates.insert(OPENSSL_CLI, certs);
    lab.standards = vec![OPENSSL_CLI];

    let gateway = Gateway::builder()
        .backend(Arc::new(ExternalCms {
            program: "openssl".into(),
        }))
        .build()?;
    // Checked with the gateway's backends, the third standard's included: its probe is
    // sealed through openssl as the mail will be.
    let dir = gateway.check(dir)?;
    let envelope = Envelope {
        mail_from: Some(Address::new("dr@clinic.example")?),
        rcpt_to: vec![
            Address::new("results@smime.example")?,
            Address::new("office@openpgp.example")?,
        ],
    };
    let message =
        b"From: dr@clinic.example\r\nTo: results@smime.example, office@openpgp.example\r\n\
                    Subject: Lab order\r\n\r\nPlease run a lipid panel for J. Doe.\r\n";
    let plan = gateway
        .outbound(&dir, Outgoing::new(&envelope, message))
        .await;
    for d in &plan.dispositions {
        let domain = d.recipients()[0].domain().to_string();
        match d {
            Disposition::Deliver {
                message,
                sealed: Some(s),
                ..
            } => {
                let path = out.join(format!("{domain}.eml"));
                std::fs::write(&path, message)?;
                println!("{domain}: sealed with {s} -> {}", path.display());
            }
            Disposition::Bounce { reason, .. } | Disposition::Hold { reason, .. } => {
                println!(
                    "{domain}: not sent ({}): {reason}",
                    reason.smtp_reply().enhanced
                )
            }
            // Never printed whole: a plain copy would put the text on the terminal.
            _ => println!("{domain}: not sealed"),
        }
    }
    Ok(())
}
