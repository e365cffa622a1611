//! What can be wrong with a connection string or its TLS settings.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum ConnError {
    #[error("invalid connection string: {0}")]
    Syntax(String),
    #[error("invalid sslmode \"{0}\": expected disable, allow, prefer, require, verify-ca or verify-full")]
    SslMode(String),
    #[error(
        "sslmode {0} needs sslrootcert, the CA certificate that signed the server's certificate"
    )]
    NoRootCert(&'static str),
    #[error("cannot read the CA certificates in \"{path}\": {why}")]
    RootCert { path: PathBuf, why: String },
    #[error(
        "{0} (a client certificate) is not supported: authenticate with a password (PGPASSWORD or the URI) or trust"
    )]
    ClientCert(String),
    #[error("the connection string names no host")]
    NoHost,
    #[error("{0}")]
    Tls(String),
}
