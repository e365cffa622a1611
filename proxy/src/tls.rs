//! TLS with rustls (ring provider) for listeners with `tls = "terminate"`.
//! The client side towards the monitor is `pgaf_pgconn`'s, shared with
//! `pg_autoctl`.

use std::path::Path;
use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::ServerConfig;

use crate::config::{BackendTls, TlsMode};

/// A certificate or key that cannot be used.
#[derive(Debug, thiserror::Error)]
pub(crate) enum TlsError {
    #[error("read certificate {path}: {message}")]
    Cert { path: String, message: String },
    #[error("read private key {path}: {message}")]
    Key { path: String, message: String },
    #[error("build TLS configuration: {0}")]
    Config(#[from] rustls::Error),
    #[error("build the TLS configuration towards the nodes: {0}")]
    Backend(#[from] pgaf_pgconn::ConnError),
}

/// A listener's TLS: the acceptor of a terminating listener, and its
/// connector towards the nodes unless `backend_tls = "disable"`.
pub(crate) type ListenerTls = (
    Option<tokio_rustls::TlsAcceptor>,
    Option<(BackendTls, tokio_rustls::TlsConnector)>,
);

/// Build what `mode` needs (certificate files are read here).
pub(crate) fn listener_tls(mode: &TlsMode) -> Result<ListenerTls, TlsError> {
    match mode {
        TlsMode::Passthrough => Ok((None, None)),
        TlsMode::Terminate { cert, key, backend } => {
            let acceptor = tokio_rustls::TlsAcceptor::from(server_config(cert, key)?);
            let connector = match backend {
                BackendTls::Disable => None,
                mode => Some((*mode, backend_connector()?)),
            };
            Ok((Some(acceptor), connector))
        }
    }
}

/// The connector of a terminating listener towards its nodes: encryption
/// without certificate checks, as libpq's `sslmode=require` without a root
/// certificate (the nodes are the ones the monitor lists).
pub(crate) fn backend_connector() -> Result<tokio_rustls::TlsConnector, TlsError> {
    let config = pgaf_pgconn::tls::config(pgaf_pgconn::SslMode::Require, None)?;
    Ok(tokio_rustls::TlsConnector::from(config))
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let err = |message: String| TlsError::Cert {
        path: path.display().to_string(),
        message,
    };
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
        .map_err(|e| err(e.to_string()))?
        .collect::<Result<_, _>>()
        .map_err(|e| err(e.to_string()))?;
    if certs.is_empty() {
        return Err(err("no PEM certificate found".into()));
    }
    Ok(certs)
}

/// The acceptor config for a terminating listener. ALPN `postgresql` is
/// offered, as required for PG17 direct TLS; clients without ALPN are fine.
pub(crate) fn server_config(cert: &Path, key: &Path) -> Result<Arc<ServerConfig>, TlsError> {
    let certs = load_certs(cert)?;
    let key = PrivateKeyDer::from_pem_file(key).map_err(|e| TlsError::Key {
        path: key.display().to_string(),
        message: e.to_string(),
    })?;
    let mut config = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(certs, key)?;
    config.alpn_protocols = vec![b"postgresql".to_vec()];
    Ok(Arc::new(config))
}
