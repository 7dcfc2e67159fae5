//! A small HTTPS server for the lookup tests (Web Key Directory): one GET per connection,
//! answered with the body published at that path, 404 otherwise.

use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::TlsAcceptor;

use crate::EndEntity;

/// TLS with `cert`'s certificate and key (issue it with `Pki::issue_tls_for`).
pub fn acceptor(cert: &EndEntity) -> TlsAcceptor {
    let chain = CertificateDer::pem_file_iter(&cert.cert)
        .expect("certificate file")
        .collect::<Result<Vec<_>, _>>()
        .expect("certificates");
    let key = PrivateKeyDer::from_pem_file(&cert.key).expect("key file");
    let server = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("protocol versions")
    .with_no_client_auth()
    .with_single_cert(chain, key)
    .expect("certificate and key");
    TlsAcceptor::from(Arc::new(server))
}

/// Serves `routes` (path, body) on `listener` until the task is dropped.
pub async fn serve(
    listener: tokio::net::TcpListener,
    acceptor: TlsAcceptor,
    routes: Vec<(String, Vec<u8>)>,
) {
    loop {
        let Ok((tcp, _)) = listener.accept().await else {
            return;
        };
        let (acceptor, routes) = (acceptor.clone(), routes.clone());
        tokio::spawn(async move {
            let Ok(mut tls) = acceptor.accept(tcp).await else {
                return;
            };
            let mut buf = vec![0u8; 4096];
            let n = tls.read(&mut buf).await.unwrap_or(0);
            let request = String::from_utf8_lossy(&buf[..n]).to_string();
            let asked = request.split_whitespace().nth(1).unwrap_or("").to_string();
            let (status, payload) = match routes.iter().find(|(p, _)| *p == asked) {
                Some((_, body)) => ("200 OK", body.clone()),
                None => ("404 Not Found", Vec::new()),
            };
            let head = format!(
                "HTTP/1.0 {status}\r\nContent-Type: application/octet-stream\r\nContent-Length: {}\r\n\r\n",
                payload.len()
            );
            let _ = tls.write_all(head.as_bytes()).await;
            let _ = tls.write_all(&payload).await;
            let _ = tls.shutdown().await;
        });
    }
}
