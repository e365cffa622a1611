//! The monitor's connection string, split into what tokio-postgres
//! understands and the libpq TLS options it does not (`sslmode=verify-ca`,
//! `verify-full`, `sslrootcert`), which the proxy handles with rustls.
//! Both the URI form (`postgres://…?k=v`) and the key=value form work.

use std::path::PathBuf;
use std::str::FromStr;

use crate::tls::Verify;

/// How to reach the monitor.
#[derive(Debug, Clone)]
pub(crate) struct MonitorConninfo {
    pub(crate) pg: tokio_postgres::Config,
    pub(crate) tls: TlsChoice,
}

/// What to do about TLS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum TlsChoice {
    Disable,
    /// Try TLS, fall back to plaintext if the server refuses.
    Prefer(Verify),
    Require(Verify),
}

/// Turns the remaining options back into a connection string.
type Rebuild = Box<dyn Fn(&[(String, String)]) -> String>;

/// Parse a monitor connection string.
pub(crate) fn parse(conninfo: &str) -> Result<MonitorConninfo, String> {
    let conninfo = conninfo.trim();
    let is_uri = conninfo.starts_with("postgres://") || conninfo.starts_with("postgresql://");
    let (mut pairs, rebuild): (Vec<(String, String)>, Rebuild) = if is_uri {
        let (base, query) = conninfo.split_once('?').unwrap_or((conninfo, ""));
        let pairs = query
            .split('&')
            .filter(|p| !p.is_empty())
            .map(|p| {
                let (k, v) = p.split_once('=').unwrap_or((p, ""));
                (percent_decode(k), percent_decode(v))
            })
            .collect();
        let base = base.to_string();
        (
            pairs,
            Box::new(move |rest: &[(String, String)]| {
                if rest.is_empty() {
                    base.clone()
                } else {
                    let q: Vec<String> = rest
                        .iter()
                        .map(|(k, v)| format!("{}={}", percent_encode(k), percent_encode(v)))
                        .collect();
                    format!("{base}?{}", q.join("&"))
                }
            }),
        )
    } else {
        (
            parse_key_values(conninfo)?,
            Box::new(|rest: &[(String, String)]| {
                rest.iter()
                    .map(|(k, v)| format!("{k}='{}'", v.replace('\\', "\\\\").replace('\'', "\\'")))
                    .collect::<Vec<_>>()
                    .join(" ")
            }),
        )
    };
    let mut sslmode = "prefer".to_string();
    let mut rootcert: Option<PathBuf> = None;
    let mut rest = Vec::new();
    for (k, v) in pairs.drain(..) {
        match k.as_str() {
            "sslmode" => sslmode = v,
            "sslrootcert" if !v.is_empty() => rootcert = Some(PathBuf::from(v)),
            "sslrootcert" | "sslcrl" | "sslcrldir" | "sslcompression" | "sslsni" => {}
            "sslcert" | "sslkey" | "sslpassword" => {
                return Err(format!(
                    "monitor.uri: {k} (client certificates) is not supported yet"
                ))
            }
            _ => rest.push((k, v)),
        }
    }
    let verify = match (sslmode.as_str(), &rootcert) {
        ("verify-full", Some(ca)) => Verify::Full(ca.clone()),
        ("verify-ca", Some(ca)) => Verify::Chain(ca.clone()),
        ("verify-full" | "verify-ca", None) => {
            return Err(format!("monitor.uri: sslmode={sslmode} needs sslrootcert"))
        }
        // libpq: with a root certificate, require behaves like verify-ca.
        (_, Some(ca)) => Verify::Chain(ca.clone()),
        (_, None) => Verify::None,
    };
    let tls = match sslmode.as_str() {
        "disable" => TlsChoice::Disable,
        "allow" | "prefer" => TlsChoice::Prefer(verify),
        "require" | "verify-ca" | "verify-full" => TlsChoice::Require(verify),
        other => return Err(format!("monitor.uri: unknown sslmode \"{other}\"")),
    };
    let mode = match tls {
        TlsChoice::Disable => "disable",
        TlsChoice::Prefer(_) => "prefer",
        TlsChoice::Require(_) => "require",
    };
    rest.push(("sslmode".into(), mode.into()));
    let mut pg = tokio_postgres::Config::from_str(&rebuild(&rest))
        .map_err(|e| format!("monitor.uri: {e}"))?;
    if pg.get_password().is_none() {
        if let Ok(p) = std::env::var("PGPASSWORD") {
            pg.password(p);
        }
    }
    if pg.get_application_name().is_none() {
        pg.application_name("pg_autoproxy");
    }
    if pg.get_hosts().is_empty() {
        return Err("monitor.uri: no host".into());
    }
    Ok(MonitorConninfo { pg, tls })
}

fn parse_key_values(s: &str) -> Result<Vec<(String, String)>, String> {
    let mut out = Vec::new();
    let mut chars = s.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        if chars.peek().is_none() {
            return Ok(out);
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
            return Err(format!("monitor.uri: missing \"=\" after \"{key}\""));
        }
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        let mut value = String::new();
        if chars.peek() == Some(&'\'') {
            chars.next();
            loop {
                match chars.next() {
                    None => return Err("monitor.uri: unterminated quoted value".into()),
                    Some('\'') => break,
                    Some('\\') => value.extend(chars.next()),
                    Some(c) => value.push(c),
                }
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c.is_whitespace() {
                    break;
                }
                if c == '\\' {
                    chars.next();
                    value.extend(chars.next());
                    continue;
                }
                value.push(c);
                chars.next();
            }
        }
        out.push((key, value));
    }
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            let hex = |c: u8| (c as char).to_digit(16);
            if let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~' | b'/') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uri_with_libpq_tls_options() {
        let c = parse("postgres://autoctl_node:pw@mon.example:6000/pg_auto_failover?sslmode=verify-ca&sslrootcert=%2Fetc%2Fca.pem&connect_timeout=3").unwrap();
        assert_eq!(
            c.tls,
            TlsChoice::Require(Verify::Chain("/etc/ca.pem".into()))
        );
        assert_eq!(c.pg.get_user(), Some("autoctl_node"));
        assert_eq!(c.pg.get_dbname(), Some("pg_auto_failover"));
        assert_eq!(c.pg.get_ports(), &[6000]);
        assert_eq!(
            c.pg.get_connect_timeout(),
            Some(&std::time::Duration::from_secs(3))
        );
        assert_eq!(c.pg.get_application_name(), Some("pg_autoproxy"));
    }

    #[test]
    fn defaults_and_modes() {
        let c = parse("postgres://u@m/db").unwrap();
        assert_eq!(c.tls, TlsChoice::Prefer(Verify::None));
        let c = parse("postgresql://u@m/db?sslmode=require").unwrap();
        assert_eq!(c.tls, TlsChoice::Require(Verify::None));
        let c = parse("postgres://u@m/db?sslmode=disable&application_name=x").unwrap();
        assert_eq!(c.tls, TlsChoice::Disable);
        assert_eq!(c.pg.get_application_name(), Some("x"));
        assert!(parse("postgres://u@m/db?sslmode=verify-full")
            .unwrap_err()
            .contains("sslrootcert"));
        assert!(parse("postgres://u@m/db?sslmode=bogus").is_err());
        assert!(parse("postgres://u@m/db?sslcert=/x")
            .unwrap_err()
            .contains("not supported"));
    }

    #[test]
    fn percent_decoding_never_panics() {
        assert_eq!(percent_decode("a%2Fb%zz%"), "a/b%zz%");
        assert_eq!(percent_decode("%é%4"), "%é%4");
    }

    #[test]
    fn key_value_form() {
        let c = parse("host=mon port=5433 user=autoctl_node dbname=pg_auto_failover sslmode=verify-full sslrootcert='/etc/my ca.pem'").unwrap();
        assert_eq!(
            c.tls,
            TlsChoice::Require(Verify::Full("/etc/my ca.pem".into()))
        );
        assert_eq!(c.pg.get_ports(), &[5433]);
        assert!(parse("host").is_err());
    }
}
