//! TLS on the same protocol (rustls, with the `ring` provider): the server
//! loads a certificate chain and key from PEM files. Clients' side, and the
//! reading of PEM files both share, is `casino_client::tls`.

use std::path::Path;
use std::sync::Arc;

pub use casino_client::tls::TlsError;
use casino_client::tls::{certificates, provider, read};
use rustls::pki_types::PrivateKeyDer;

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
