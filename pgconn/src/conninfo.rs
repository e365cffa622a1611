//! libpq connection strings, URI or `key=value`, mapped onto a
//! tokio-postgres `Config` plus the TLS options it does not understand
//! (`sslmode` beyond disable/prefer/require, `sslrootcert`), which
//! [`crate::tls`] enforces.

use crate::ConnError;
use std::path::PathBuf;

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
    "passfile",
    "sslcrl",
    "sslcert",
    "sslkey",
    "sslpassword",
    "sslcompression",
    "gssencmode",
    "requiressl",
];

pub(crate) fn percent_decode(s: &str) -> Result<String, ConnError> {
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

/// `v` as a value of a `key=value` connection string: single-quoted, with
/// `\\` and `'` escaped by a backslash, as libpq reads it.
pub fn quote_value(v: &str) -> String {
    format!("'{}'", v.replace('\\', "\\\\").replace('\'', "\\'"))
}

/// Parse a libpq connection string.
pub fn parse(conninfo: &str) -> Result<Target, ConnError> {
    let mut sslmode = None;
    let mut root_cert = None;
    let mut passfile = None;
    let mut take = |k: &str, v: String| -> Result<(), ConnError> {
        match k {
            "passfile" if !v.is_empty() => passfile = Some(PathBuf::from(v)),
            "sslmode" => sslmode = Some(SslMode::parse(&v)?),
            "requiressl" if v == "1" => sslmode = Some(SslMode::Require),
            "sslrootcert" if !v.is_empty() => root_cert = Some(PathBuf::from(v)),
            "sslcert" | "sslkey" | "sslpassword" if !v.is_empty() => {
                return Err(ConnError::ClientCert(k.to_string()))
            }
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
                kept.push(format!("{k}={}", quote_value(&v)));
            }
        }
        kept.join(" ")
    };
    let mut config: tokio_postgres::Config = rest
        .parse()
        .map_err(|e: tokio_postgres::Error| ConnError::Syntax(e.to_string()))?;
    if config.get_hosts().is_empty() {
        return Err(ConnError::NoHost);
    }
    // libpq reads the password from the environment, then from the
    // password file (crate::passfile); tokio-postgres does neither.
    if config.get_password().is_none() {
        if let Some(p) = std::env::var_os("PGPASSWORD").filter(|p| !p.is_empty()) {
            config.password(p.as_encoded_bytes());
        }
    }
    if config.get_password().is_none() {
        if let Some(p) = crate::passfile::password_for(&config, passfile.as_deref()) {
            config.password(p);
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

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
        assert!(matches!(
            parse("postgres://h/db?sslcert=/etc/client.crt"),
            Err(ConnError::ClientCert(k)) if k == "sslcert"
        ));
        assert!(matches!(parse("dbname=x"), Err(ConnError::NoHost)));
        // One test changes the environment (nextest runs each test in its
        // own process).
        std::env::set_var("PGPASSWORD", "from env");
        assert_eq!(
            parse("postgres://u@h/db").unwrap().config.get_password(),
            Some(&b"from env"[..])
        );
        assert_eq!(
            parse("postgres://u:given@h/db")
                .unwrap()
                .config
                .get_password(),
            Some(&b"given"[..])
        );
        std::env::remove_var("PGPASSWORD");
        std::env::set_var("HOME", "/nonexistent");
        assert!(matches!(
            parse("postgres://h/db?sslmode=verify-full"),
            Err(ConnError::NoRootCert("verify-full"))
        ));
    }
}
