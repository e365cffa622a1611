//! Connections to Postgres servers from `pg_autoctl` and `pg_autoproxy`
//! (the monitor, other nodes): libpq connection strings (URI or
//! `key=value`) mapped onto tokio-postgres, with TLS through rustls for
//! every `sslmode` libpq knows.
//!
//! tokio-postgres understands `disable`, `prefer` and `require` only and
//! rejects `sslrootcert`; the monitor URIs pg_auto_failover prints use
//! `verify-ca`/`verify-full` with `sslrootcert` once SSL is configured.
//! [`parse`] takes those options out of the string and [`tls`] enforces
//! them. [`redact`] is the one way a connection string reaches a log.

mod conninfo;
mod error;
mod passfile;
mod redact;
pub mod tls;

pub use conninfo::{parse, quote_value, SslMode, Target};
pub use error::ConnError;
pub use redact::{redact, MASK};
pub use tls::{MakeRustls, RustlsStream};

use std::time::Duration;
use tokio_postgres::{Client, Connection, Socket};

/// A connection's background half.
pub type Conn = Connection<Socket, RustlsStream>;

/// Connect to `conninfo` within `timeout`.
pub async fn connect(
    conninfo: &str,
    application_name: &str,
    timeout: Duration,
) -> Result<(Client, Conn), String> {
    let mut target = parse(conninfo).map_err(|e| e.to_string())?;
    target.config.connect_timeout(timeout);
    if target.config.get_application_name().is_none() {
        target.config.application_name(application_name);
    }
    let tls = target.tls().map_err(|e| e.to_string())?;
    match tokio::time::timeout(timeout, target.config.connect(tls)).await {
        Err(_) => Err(format!("no answer within {timeout:?}")),
        Ok(Err(e)) => Err(describe(&e)),
        Ok(Ok(pair)) => Ok(pair),
    }
}

/// A tokio-postgres error with its cause and, for server errors, the
/// message as the server wrote it.
pub fn describe(e: &tokio_postgres::Error) -> String {
    if let Some(db) = e.as_db_error() {
        return db.message().to_string();
    }
    let mut s = e.to_string();
    let mut src = std::error::Error::source(e);
    while let Some(cause) = src {
        s.push_str(&format!(": {cause}"));
        src = cause.source();
    }
    s
}
