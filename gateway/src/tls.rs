//! TLS on the same protocol (rustls, with the `ring` provider): the server
//! loads a certificate chain and key from PEM files; clients trust a CA
//! certificate from a PEM file.

use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("reading {path}: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("{path} holds no {what}")]
    Missing { path: String, what: &'static str },
    #[error("TLS configuration: {0}")]
    Rustls(#[from] rustls::Error),
    #[error("invalid server name {0:?}")]
    ServerName(String),
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read { path: path.display().to_string(), source })
}

fn certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem = read(path)?;
    let certs: Vec<_> = rustls_pemfile::certs(&mut pem.as_slice()).filter_map(Result::ok).collect();
    if certs.is_empty() {
        return Err(TlsError::Missing { path: path.display().to_string(), what: "certificate" });
    }
    Ok(certs)
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

pub fn acceptor(cert_path: &Path, key_path: &Path) -> Result<tokio_rustls::TlsAcceptor, TlsError> {
    let certs = certificates(cert_path)?;
    let pem = read(key_path)?;
    let key: PrivateKeyDer<'static> = rustls_pemfile::private_key(&mut pem.as_slice())
        .ok()
        .flatten()
        .ok_or_else(|| TlsError::Missing { path: key_path.display().to_string(), what: "private key" })?;
    let config = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(certs, key)?;
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}

/// A connector trusting the CA certificate(s) in `ca_path`, for `server_name`.
pub fn connector(ca_path: &Path, server_name: &str) -> Result<(tokio_rustls::TlsConnector, ServerName<'static>), TlsError> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in certificates(ca_path)? {
        roots.add(cert)?;
    }
    let config = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let name = ServerName::try_from(server_name.to_string()).map_err(|_| TlsError::ServerName(server_name.to_string()))?;
    Ok((tokio_rustls::TlsConnector::from(Arc::new(config)), name))
}
