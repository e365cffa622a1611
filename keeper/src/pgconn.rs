//! Connections from `pg_autoctl` to the monitor (and other remote Postgres):
//! libpq connection strings, URI or `key=value`, mapped onto tokio-postgres,
//! with TLS through rustls for every `sslmode` libpq knows.
//!
//! tokio-postgres understands `disable`, `prefer` and `require` only, and
//! rejects `sslrootcert`; the monitor URIs pg_auto_failover prints use
//! `verify-ca`/`verify-full` with `sslrootcert` once SSL is configured. We
//! take those options out of the string and enforce them in the TLS layer.

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use std::future::Future;
use std::io;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_postgres::tls::{ChannelBinding, MakeTlsConnect, TlsConnect};
use tokio_postgres::{Client, Connection, Socket};

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
    #[error("{0}")]
    Tls(String),
}

/// libpq's `sslmode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SslMode {
    Disable,
    Allow,
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

impl SslMode {
    pub fn parse(s: &str) -> Result<SslMode, ConnError> {
        Ok(match s {
            "disable" => SslMode::Disable,
            "allow" => SslMode::Allow,
            "prefer" => SslMode::Prefer,
            "require" => SslMode::Require,
            "verify-ca" => SslMode::VerifyCa,
            "verify-full" => SslMode::VerifyFull,
            other => return Err(ConnError::SslMode(other.to_string())),
        })
    }
}

/// A parsed connection string.
#[derive(Debug, Clone)]
pub struct Target {
    pub config: tokio_postgres::Config,
    pub sslmode: SslMode,
    pub root_cert: Option<PathBuf>,
}

/// Options tokio-postgres does not parse, handled here or ignored.
const OURS: &[&str] = &[
    "sslmode",
    "sslrootcert",
    "sslcrl",
    "sslcert",
    "sslkey",
    "sslpassword",
    "sslcompression",
    "gssencmode",
    "requiressl",
];

fn percent_decode(s: &str) -> Result<String, ConnError> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = s
                .get(i + 1..i + 3)
                .ok_or_else(|| ConnError::Syntax(format!("bad percent-encoding in \"{s}\"")))?;
            let v = u8::from_str_radix(hex, 16)
                .map_err(|_| ConnError::Syntax(format!("bad percent-encoding in \"{s}\"")))?;
            out.push(v);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out)
        .map_err(|_| ConnError::Syntax(format!("\"{s}\" is not UTF-8 once decoded")))
}

/// Split a `key=value` connection string into pairs (libpq's rules: spaces
/// around `=` allowed, single quotes, backslash escapes).
fn keyword_pairs(s: &str) -> Result<Vec<(String, String)>, ConnError> {
    let mut pairs = Vec::new();
    let mut chars = s.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        if chars.peek().is_none() {
            return Ok(pairs);
        }
        let mut key = String::new();
        while let Some(&c) = chars.peek() {
            if c == '=' || c.is_whitespace() {
                break;
            }
            key.push(c);
            chars.next();
        }
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        if chars.next() != Some('=') {
            return Err(ConnError::Syntax(format!("missing \"=\" after \"{key}\"")));
        }
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        let mut value = String::new();
        if chars.peek() == Some(&'\'') {
            chars.next();
            loop {
                match chars.next() {
                    None => {
                        return Err(ConnError::Syntax(format!(
                            "unterminated quoted value for \"{key}\""
                        )))
                    }
                    Some('\'') => break,
                    Some('\\') => match chars.next() {
                        Some(c) => value.push(c),
                        None => {
                            return Err(ConnError::Syntax(format!(
                                "unterminated quoted value for \"{key}\""
                            )))
                        }
                    },
                    Some(c) => value.push(c),
                }
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c.is_whitespace() {
                    break;
                }
                chars.next();
                if c == '\\' {
                    if let Some(n) = chars.next() {
                        value.push(n);
                    }
                } else {
                    value.push(c);
                }
            }
        }
        pairs.push((key, value));
    }
}

fn quote(v: &str) -> String {
    format!("'{}'", v.replace('\\', "\\\\").replace('\'', "\\'"))
}

/// Parse a libpq connection string.
pub fn parse(conninfo: &str) -> Result<Target, ConnError> {
    let mut sslmode = None;
    let mut root_cert = None;
    let mut take = |k: &str, v: String| -> Result<(), ConnError> {
        match k {
            "sslmode" => sslmode = Some(SslMode::parse(&v)?),
            "requiressl" if v == "1" => sslmode = Some(SslMode::Require),
            "sslrootcert" if !v.is_empty() => root_cert = Some(PathBuf::from(v)),
            _ => {}
        }
        Ok(())
    };
    let rest = if conninfo.starts_with("postgres://") || conninfo.starts_with("postgresql://") {
        match conninfo.split_once('?') {
            None => conninfo.to_string(),
            Some((base, query)) => {
                let mut kept = Vec::new();
                for part in query.split('&').filter(|p| !p.is_empty()) {
                    let (k, v) = part.split_once('=').unwrap_or((part, ""));
                    let key = percent_decode(k)?;
                    if OURS.contains(&key.as_str()) {
                        take(&key, percent_decode(v)?)?;
                    } else {
                        kept.push(part);
                    }
                }
                if kept.is_empty() {
                    base.to_string()
                } else {
                    format!("{base}?{}", kept.join("&"))
                }
            }
        }
    } else {
        let mut kept = Vec::new();
        for (k, v) in keyword_pairs(conninfo)? {
            if OURS.contains(&k.as_str()) {
                take(&k, v)?;
            } else {
                kept.push(format!("{k}={}", quote(&v)));
            }
        }
        kept.join(" ")
    };
    let mut config: tokio_postgres::Config = rest
        .parse()
        .map_err(|e: tokio_postgres::Error| ConnError::Syntax(e.to_string()))?;
    let sslmode = sslmode.unwrap_or(SslMode::Prefer);
    if root_cert.is_none() && matches!(sslmode, SslMode::VerifyCa | SslMode::VerifyFull) {
        // libpq's default location.
        let default =
            std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".postgresql/root.crt"));
        match default.filter(|p| p.exists()) {
            Some(p) => root_cert = Some(p),
            None => {
                return Err(ConnError::NoRootCert(if sslmode == SslMode::VerifyCa {
                    "verify-ca"
                } else {
                    "verify-full"
                }))
            }
        }
    }
    config.ssl_mode(match sslmode {
        SslMode::Disable => tokio_postgres::config::SslMode::Disable,
        SslMode::Allow | SslMode::Prefer => tokio_postgres::config::SslMode::Prefer,
        _ => tokio_postgres::config::SslMode::Require,
    });
    Ok(Target {
        config,
        sslmode,
        root_cert,
    })
}

/// What the TLS layer checks of the server's certificate.
#[derive(Debug)]
struct Verifier {
    /// `None`: encryption only (`prefer`, `require` without a CA).
    webpki: Option<Arc<rustls::client::WebPkiServerVerifier>>,
    check_name: bool,
    provider: Arc<rustls::crypto::CryptoProvider>,
}

impl ServerCertVerifier for Verifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let Some(webpki) = &self.webpki else {
            return Ok(ServerCertVerified::assertion());
        };
        match webpki.verify_server_cert(end_entity, intermediates, server_name, ocsp, now) {
            Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::NotValidForName
                | rustls::CertificateError::NotValidForNameContext { .. },
            )) if !self.check_name => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

fn client_config(target: &Target) -> Result<Arc<rustls::ClientConfig>, ConnError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let webpki = match (&target.root_cert, target.sslmode) {
        (Some(path), SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull) => {
            let err = |why: String| ConnError::RootCert {
                path: path.clone(),
                why,
            };
            let mut roots = rustls::RootCertStore::empty();
            for cert in CertificateDer::pem_file_iter(path).map_err(|e| err(e.to_string()))? {
                roots
                    .add(cert.map_err(|e| err(e.to_string()))?)
                    .map_err(|e| err(e.to_string()))?;
            }
            if roots.is_empty() {
                return Err(err("no certificate found".into()));
            }
            let v = rustls::client::WebPkiServerVerifier::builder_with_provider(
                Arc::new(roots),
                provider.clone(),
            )
            .build()
            .map_err(|e| err(e.to_string()))?;
            Some(v)
        }
        _ => None,
    };
    let verifier = Verifier {
        webpki,
        check_name: target.sslmode == SslMode::VerifyFull,
        provider: provider.clone(),
    };
    let cfg = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| ConnError::Tls(e.to_string()))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth();
    Ok(Arc::new(cfg))
}

/// The TLS connector handed to tokio-postgres.
#[derive(Clone)]
pub struct MakeRustls(Arc<rustls::ClientConfig>);

pub struct RustlsConnect {
    config: Arc<rustls::ClientConfig>,
    name: ServerName<'static>,
}

pub struct RustlsStream(Box<tokio_rustls::client::TlsStream<Socket>>);

impl MakeTlsConnect<Socket> for MakeRustls {
    type Stream = RustlsStream;
    type TlsConnect = RustlsConnect;
    type Error = rustls::pki_types::InvalidDnsNameError;

    fn make_tls_connect(&mut self, domain: &str) -> Result<RustlsConnect, Self::Error> {
        Ok(RustlsConnect {
            config: self.0.clone(),
            name: ServerName::try_from(domain.to_string())?,
        })
    }
}

impl TlsConnect<Socket> for RustlsConnect {
    type Stream = RustlsStream;
    type Error = io::Error;
    type Future = Pin<Box<dyn Future<Output = io::Result<RustlsStream>> + Send>>;

    fn connect(self, stream: Socket) -> Self::Future {
        Box::pin(async move {
            let tls = tokio_rustls::TlsConnector::from(self.config)
                .connect(self.name, stream)
                .await?;
            Ok(RustlsStream(Box::new(tls)))
        })
    }
}

impl AsyncRead for RustlsStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.0).poll_read(cx, buf)
    }
}

impl AsyncWrite for RustlsStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut *self.0).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.0).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.0).poll_shutdown(cx)
    }
}

impl tokio_postgres::tls::TlsStream for RustlsStream {
    fn channel_binding(&self) -> ChannelBinding {
        ChannelBinding::none()
    }
}

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
    let tls = MakeRustls(client_config(&target).map_err(|e| e.to_string())?);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uri_options_tokio_postgres_rejects_are_taken_out() {
        let t = parse("postgres://autoctl_node@mon:5432/pg_auto_failover?sslmode=verify-ca&sslrootcert=/etc/ca.crt&connect_timeout=3").unwrap();
        assert_eq!(t.sslmode, SslMode::VerifyCa);
        assert_eq!(
            t.root_cert.as_deref(),
            Some(std::path::Path::new("/etc/ca.crt"))
        );
        assert_eq!(t.config.get_dbname(), Some("pg_auto_failover"));
        assert_eq!(
            t.config.get_connect_timeout(),
            Some(&Duration::from_secs(3))
        );
    }

    #[test]
    fn keyword_strings_are_understood() {
        let t =
            parse("host=10.0.0.1 port=6000 user = 'auto ctl' sslmode=require dbname=x").unwrap();
        assert_eq!(t.sslmode, SslMode::Require);
        assert_eq!(t.config.get_user(), Some("auto ctl"));
        assert_eq!(t.config.get_ports(), &[6000]);
    }

    #[test]
    fn defaults_and_errors() {
        assert_eq!(parse("postgres://h/db").unwrap().sslmode, SslMode::Prefer);
        assert!(matches!(
            parse("postgres://h/db?sslmode=bogus"),
            Err(ConnError::SslMode(_))
        ));
        assert!(matches!(parse("host=h sslmode"), Err(ConnError::Syntax(_))));
        std::env::set_var("HOME", "/nonexistent");
        assert!(matches!(
            parse("postgres://h/db?sslmode=verify-full"),
            Err(ConnError::NoRootCert("verify-full"))
        ));
    }
}
