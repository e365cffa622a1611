//! `pg_autoctl status`: is the service of the
//! node in PGDATA running, and is its Postgres serving. Exit 3 when the
//! service does not run, 5 when it runs but Postgres is not ready.

use super::exit::{self, CmdResult, Failure};
use super::{Globals, PgdataArg};
use crate::config::Config;
use crate::paths::NodePaths;
use crate::pg::bin::PgBin;
use crate::pg::control::PostmasterPid;
use serde_json::{json, Value};

#[derive(Debug, Clone, clap::Args)]
pub struct StatusArgs {
    #[command(flatten)]
    pub pgdata: PgdataArg,
}

/// `15.14` out of `postgres (PostgreSQL) 15.14 (Debian ...)`.
pub fn parse_postgres_version(text: &str) -> Option<String> {
    let rest = text.split_once("(PostgreSQL) ")?.1;
    rest.split_whitespace().next().map(str::to_string)
}

/// The version of the Postgres programs in `bin`, empty when unknown.
pub fn postgres_version(bin: &PgBin) -> String {
    std::process::Command::new(bin.path("postgres"))
        .arg("--version")
        .output()
        .ok()
        .and_then(|o| parse_postgres_version(&String::from_utf8_lossy(&o.stdout)))
        .unwrap_or_default()
}

/// The `postgres` object of `status --json` and `config check --json`.
pub fn postgres_json(
    cfg: &Config,
    paths: &NodePaths,
    pm: Option<&PostmasterPid>,
    in_recovery: Option<bool>,
    version: &str,
) -> Value {
    let pg = cfg.pg();
    let ctl = PgBin::from_pg_ctl(&pg.pg_ctl)
        .ok()
        .and_then(|b| crate::pg::control::controldata(&b, &paths.pgdata).ok())
        .unwrap_or_default();
    let host = if !pg.host.is_empty() {
        pg.host.clone()
    } else {
        pm.map(|p| p.socket_dir.display().to_string())
            .unwrap_or_default()
    };
    json!({
        "pgdata": pg.pgdata.display().to_string(),
        "pg_ctl": pg.pg_ctl.display().to_string(),
        "version": version,
        "host": host,
        "port": pg.port,
        "proxyport": 0,
        "pid": pm.map_or(0, |p| p.pid),
        "in_recovery": in_recovery.unwrap_or(false),
        "control": {
            "version": ctl.pg_control_version,
            "catalog_version": ctl.catalog_version,
            "system_identifier": ctl.system_identifier.to_string(),
        },
        "postmaster": {
            "status": pm.map_or("stopped".to_string(), |p| p.status.clone()),
        },
    })
}

pub async fn run(a: StatusArgs, g: Globals) -> CmdResult {
    let (paths, cfg) = a.pgdata.load_config()?;
    let pgdata = &paths.pgdata;
    let pm = PostmasterPid::read(&paths.pgdata).filter(PostmasterPid::alive);
    let Some(info) = super::service_ctl::live_service(&paths.pid) else {
        let msg = match &pm {
            Some(p) => format!(
                "pg_autoctl is not running, but Postgres is running for {} with pid {}: stop it (pg_ctl stop -D {}) or start the service (pg_autoctl run)",
                pgdata.display(),
                p.pid,
                pgdata.display()
            ),
            None => "pg_autoctl is not running: start it with pg_autoctl run".into(),
        };
        return Err(Failure::new(exit::BAD_STATE, anyhow::anyhow!("{msg}")));
    };
    tracing::info!("pg_autoctl is running with pid {}", info.pid);
    let ready = pm.as_ref().filter(|p| p.ready());
    let in_recovery = match ready {
        Some(_) => match crate::pg::local::Local::connect(&paths.pgdata).await {
            Ok(l) => l.in_recovery().await.ok(),
            Err(_) => None,
        },
        None => None,
    };
    if g.json {
        let version = PgBin::from_pg_ctl(&cfg.pg().pg_ctl)
            .map(|b| postgres_version(&b))
            .unwrap_or_default();
        let services: Vec<Value> = info
            .services
            .iter()
            .map(|(pid, name)| {
                json!({
                    "name": name,
                    "pid": pid,
                    "status": if crate::pidfile::alive(*pid) { "running" } else { "stale" },
                    "version": info.version,
                    "pgautofailover": info.extension_version,
                })
            })
            .collect();
        let v = json!({
            "postgres": postgres_json(&cfg, &paths, pm.as_ref(), in_recovery, &version),
            "pg_autoctl": {
                "pid": info.pid,
                "status": "running",
                "pgdata": info.pgdata,
                "version": info.version,
                "semId": 0,
                "services": services,
            },
        });
        println!("{}", super::json::pretty(&v));
    }
    match ready {
        Some(p) => {
            tracing::info!(
                "Postgres is serving PGDATA \"{}\" on port {} with pid {}",
                pgdata.display(),
                p.port,
                p.pid
            );
            Ok(())
        }
        None => Err(Failure::new(
            exit::PGCTL,
            anyhow::anyhow!(
                "pg_autoctl is running with pid {}, but Postgres is not ready for {}{}",
                info.pid,
                pgdata.display(),
                match &pm {
                    Some(p) => format!(" (postmaster pid {} is \"{}\")", p.pid, p.status),
                    None => " (it is not running: see the service's logs)".into(),
                }
            ),
        )),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn version_of_the_postgres_programs() {
        assert_eq!(
            super::parse_postgres_version("postgres (PostgreSQL) 15.14 (Debian 15.14-0+deb12u1)\n")
                .as_deref(),
            Some("15.14")
        );
        assert_eq!(super::parse_postgres_version("garbage"), None);
    }
}
