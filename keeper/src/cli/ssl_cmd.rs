//! `pg_autoctl enable ssl` and `pg_autoctl disable ssl`: change the TLS
//! settings of a node or of the monitor after it was created.
//!
//! The `[ssl]` section of the configuration is replaced by the options
//! (the same choice as at `create`, [`super::ssl`]); on a Postgres node the
//! `sslmode`, `sslrootcert` and `sslcrl` of the monitor URI follow, once a
//! connection with the new URI works. The running service applies the rest
//! when signalled: it rewrites the Postgres settings and reloads (TLS
//! settings need no restart), and a standby points `primary_conninfo` at
//! its primary with the new `sslmode`. Existing HBA lines are not changed:
//! `host` lines accept TLS and plain connections alike; new rules use
//! `hostssl` while TLS is on.

use super::exit::{self, CmdResult, Code};
use super::ssl::SslArgs;
use super::{Globals, PgdataArg};
use crate::config::{Config, Ssl, MONITOR_DISABLED};

#[derive(Debug, Clone, clap::Args)]
pub struct EnableArgs {
    #[command(flatten)]
    pub pgdata: PgdataArg,
    #[command(flatten)]
    pub ssl: SslArgs,
}

#[derive(Debug, Clone, clap::Args)]
pub struct DisableArgs {
    #[command(flatten)]
    pub pgdata: PgdataArg,
}

pub async fn enable(a: EnableArgs, g: Globals) -> CmdResult {
    let pgdata = a.pgdata.require()?;
    let ssl = a.ssl.resolve(&pgdata)?;
    apply(&a.pgdata, ssl, g).await
}

pub async fn disable(a: DisableArgs, g: Globals) -> CmdResult {
    let ssl = Ssl {
        active: false,
        sslmode: "prefer".into(),
        ..Ssl::default()
    };
    apply(&a.pgdata, ssl, g).await
}

/// `uri` with its `sslmode`, `sslrootcert` and `sslcrl` replaced (a URL or
/// `key=value` pairs; an empty value drops the key).
pub fn with_ssl_params(uri: &str, ssl: &Ssl) -> String {
    let ours = ["sslmode", "sslrootcert", "sslcrl"];
    let verify = matches!(ssl.sslmode.as_str(), "verify-ca" | "verify-full");
    let wanted: Vec<(&str, &str)> = [
        ("sslmode", ssl.sslmode.as_str()),
        (
            "sslrootcert",
            if verify { ssl.ca_file.as_str() } else { "" },
        ),
        ("sslcrl", if verify { ssl.crl_file.as_str() } else { "" }),
    ]
    .into_iter()
    .filter(|(_, v)| !v.is_empty())
    .collect();
    if uri.starts_with("postgres://") || uri.starts_with("postgresql://") {
        let (base, query) = uri.split_once('?').unwrap_or((uri, ""));
        let mut params: Vec<String> = query
            .split('&')
            .filter(|p| !p.is_empty())
            .filter(|p| !ours.contains(&p.split('=').next().unwrap_or("")))
            .map(str::to_string)
            .collect();
        params.extend(wanted.iter().map(|(k, v)| format!("{k}={v}")));
        if params.is_empty() {
            base.to_string()
        } else {
            format!("{base}?{}", params.join("&"))
        }
    } else {
        let mut words: Vec<String> = uri
            .split_whitespace()
            .filter(|w| !ours.contains(&w.split('=').next().unwrap_or("").trim()))
            .map(str::to_string)
            .collect();
        words.extend(wanted.iter().map(|(k, v)| format!("{k}={v}")));
        words.join(" ")
    }
}

async fn apply(pgdata: &PgdataArg, ssl: Ssl, _g: Globals) -> CmdResult {
    let (paths, cfg) = pgdata.load_config()?;
    let mut uri_note = None;
    let cfg = match cfg {
        Config::Monitor(mut m) => {
            m.ssl = ssl.clone();
            Config::Monitor(m)
        }
        Config::Keeper(mut k) => {
            k.ssl = ssl.clone();
            if k.monitor == MONITOR_DISABLED {
                uri_note = Some(Err("the monitor is disabled for this node".to_string()));
            } else {
                let new = with_ssl_params(&k.monitor, &ssl);
                tracing::info!(
                    "Trying to connect to monitor using connection string \"{}\"",
                    pgaf_pgconn::redact(&new)
                );
                match crate::monitor::Monitor::connect(&new, super::show::CONNECT_TIMEOUT).await {
                    Ok(_) => {
                        tracing::info!(
                            "Updating the monitor URI to \"{}\"",
                            pgaf_pgconn::redact(&new)
                        );
                        k.monitor = new;
                        uri_note = Some(Ok(()));
                    }
                    Err(e) => {
                        tracing::error!(
                            "Failed to update the monitor URI ({e}): enable SSL on the monitor \
                             first, then run this command again to update it"
                        );
                        uri_note = Some(Err(e.to_string()));
                    }
                }
            }
            Config::Keeper(k)
        }
    };
    cfg.save(&paths.config).code(exit::BAD_CONFIG)?;
    if ssl.active {
        tracing::warn!(
            "HBA rules in \"{}\" have NOT been edited: \"host\" records match either SSL or \
             non-SSL connection attempts; change them to \"hostssl\" to require SSL",
            paths.pgdata.join("pg_hba.conf").display()
        );
    }
    let signalled = match super::service_ctl::live_service(&paths.pid) {
        Some(info) => super::service_ctl::signal(info.pid, libc::SIGHUP).is_ok(),
        None => false,
    };
    tracing::info!("Successfully enabled new SSL configuration:");
    tracing::info!(
        "  SSL is now {}",
        if ssl.active { "active" } else { "disabled" }
    );
    if ssl.active
        && ssl
            .cert_file
            .starts_with(&paths.pgdata.display().to_string())
    {
        tracing::info!(
            "  Self-Signed certificates are created and deployed in Postgres configuration \
             settings ssl_key_file and ssl_cert_file"
        );
    }
    match uri_note {
        Some(Ok(())) => {
            tracing::info!(
                "  Postgres connection string to the monitor has been changed to use sslmode \"{}\"",
                ssl.sslmode
            );
            tracing::info!(
                "  Replication connection string primary_conninfo is going to be updated in the \
                 main service loop to use ssl mode \"{}\"",
                ssl.sslmode
            );
        }
        Some(Err(why)) => tracing::error!(
            "  Postgres connection string to the monitor could not be updated: {why}"
        ),
        None => {}
    }
    if signalled {
        tracing::info!("  pg_autoctl service has been signaled to reload its configuration");
    } else {
        tracing::warn!(
            "  pg_autoctl service is not running, changes will only apply at next start of pg_autoctl"
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ssl(mode: &str, ca: &str) -> Ssl {
        Ssl {
            active: mode != "prefer",
            sslmode: mode.into(),
            ca_file: ca.into(),
            ..Ssl::default()
        }
    }

    #[test]
    fn the_monitor_uri_follows_the_ssl_settings() {
        let uri =
            "postgres://autoctl_node@m:5432/pg_auto_failover?sslmode=prefer&connect_timeout=2";
        assert_eq!(
            with_ssl_params(uri, &ssl("require", "")),
            "postgres://autoctl_node@m:5432/pg_auto_failover?connect_timeout=2&sslmode=require"
        );
        assert_eq!(
            with_ssl_params(uri, &ssl("verify-ca", "/ca.crt")),
            "postgres://autoctl_node@m:5432/pg_auto_failover?connect_timeout=2&sslmode=verify-ca&sslrootcert=/ca.crt"
        );
        let verified = "postgres://u@m/db?sslmode=verify-full&sslrootcert=/ca.crt";
        assert_eq!(
            with_ssl_params(verified, &ssl("prefer", "")),
            "postgres://u@m/db?sslmode=prefer"
        );
        assert_eq!(
            with_ssl_params("host=m dbname=x sslmode=disable", &ssl("require", "")),
            "host=m dbname=x sslmode=require"
        );
    }
}
