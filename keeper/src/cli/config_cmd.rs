//! `pg_autoctl config get|set|check`: read and change
//! `pg_autoctl.cfg` one key at a time, and check that the node's setup
//! works (local Postgres, its settings, the monitor).
//!
//! `config set` validates the whole file before writing it: a value the
//! node cannot run with (a `pg_ctl` that is not there, a port that is not a
//! number, a malformed monitor URI, ...) is refused and the file is left as
//! it was. A running service is sent SIGHUP to reload it.

use super::exit::{self, CmdResult, Code, Failure};
use super::{Globals, PgdataArg};
use crate::config::Config;
use crate::ini::Ini;
use serde_json::{Map, Value};

#[derive(Debug, clap::Subcommand)]
pub enum ConfigCmd {
    /// Check pg_autoctl configuration
    Check(CheckArgs),
    /// Get the value of a given pg_autoctl configuration variable
    Get(GetArgs),
    /// Set the value of a given pg_autoctl configuration variable
    Set(SetArgs),
}

impl ConfigCmd {
    pub(super) fn pgdata(&self) -> &PgdataArg {
        match self {
            ConfigCmd::Check(a) => &a.pgdata,
            ConfigCmd::Get(a) => &a.pgdata,
            ConfigCmd::Set(a) => &a.pgdata,
        }
    }
}

#[derive(Debug, Clone, clap::Args)]
pub struct CheckArgs {
    #[command(flatten)]
    pub pgdata: PgdataArg,
}

#[derive(Debug, Clone, clap::Args)]
pub struct GetArgs {
    #[command(flatten)]
    pub pgdata: PgdataArg,
    /// The option to read, as section.option (all of them when omitted)
    #[arg(value_name = "SECTION.OPTION")]
    pub key: Option<String>,
}

#[derive(Debug, Clone, clap::Args)]
pub struct SetArgs {
    #[command(flatten)]
    pub pgdata: PgdataArg,
    /// The option to change, as section.option
    #[arg(value_name = "SECTION.OPTION")]
    pub key: String,
    /// Its new value
    #[arg(allow_hyphen_values = true)]
    pub value: String,
}

pub async fn run(cmd: ConfigCmd, g: Globals) -> CmdResult {
    match cmd {
        ConfigCmd::Get(a) => get(a, g),
        ConfigCmd::Set(a) => set(a, g),
        ConfigCmd::Check(a) => check(a, g).await,
    }
}

/// Keys whose values are integers (JSON numbers).
fn is_integer(section: &str, key: &str) -> bool {
    matches!(
        (section, key),
        ("pg_autoctl", "group") | ("postgresql", "port" | "proxyport") | ("ssl", "active")
    ) || section == "timeout"
}

/// `{section: {key: value}}`, integers as numbers, empty values left out
/// (as in the file).
pub fn ini_json(ini: &Ini) -> Value {
    let mut out = Map::new();
    for (section, entries) in &ini.sections {
        let mut m = Map::new();
        for (k, v) in entries.iter().filter(|(_, v)| !v.is_empty()) {
            let value = match v.parse::<i64>() {
                Ok(n) if is_integer(section, k) => Value::from(n),
                _ => Value::String(v.clone()),
            };
            m.insert(k.clone(), value);
        }
        out.insert(section.clone(), Value::Object(m));
    }
    Value::Object(out)
}

/// `section.option` split, or a usage error. `pg_autoctl.nodename`, the
/// 1.x name of `pg_autoctl.hostname`, reads and writes the latter.
fn split_key(key: &str) -> Result<(&str, &str), Failure> {
    if key == "pg_autoctl.nodename" {
        tracing::warn!("pg_autoctl.nodename is deprecated, it is now pg_autoctl.hostname");
        return Ok(("pg_autoctl", "hostname"));
    }
    key.split_once('.')
        .filter(|(s, k)| !s.is_empty() && !k.is_empty())
        .ok_or_else(|| {
            Failure::usage(format!(
                "\"{key}\" is not of the form section.option, e.g. postgresql.port; \
                 pg_autoctl config get lists them"
            ))
        })
}

/// The value of `key` in `ini`, a usage error naming the known options
/// otherwise.
fn lookup<'a>(ini: &'a Ini, key: &str) -> Result<&'a str, Failure> {
    let (section, option) = split_key(key)?;
    ini.get(section, option).ok_or_else(|| {
        let known: Vec<String> = ini
            .sections
            .iter()
            .flat_map(|(s, e)| e.iter().map(move |(k, _)| format!("{s}.{k}")))
            .collect();
        Failure::usage(format!(
            "unknown configuration option \"{key}\"; the options are: {}",
            known.join(", ")
        ))
    })
}

fn get(a: GetArgs, g: Globals) -> CmdResult {
    let (_, cfg) = a.pgdata.load_config()?;
    let ini = cfg.to_ini();
    match a.key {
        None if g.json => println!("{}", super::json::pretty(&ini_json(&ini))),
        // The file, then an empty line, as upstream prints it.
        None => println!("{}", ini.render()),
        Some(key) => {
            let value = lookup(&ini, &key)?;
            if g.json {
                println!(
                    "{}",
                    super::json::pretty(&serde_json::json!({ key: value }))
                );
            } else {
                println!("{value}");
            }
        }
    }
    Ok(())
}

/// Refuse values the node cannot work with.
fn validate(old: &Config, new: &Config, section: &str, option: &str) -> Result<(), String> {
    let (o, n) = (old.pg(), new.pg());
    match (section, option) {
        ("pg_autoctl", "role") if old.role() != new.role() => {
            return Err("the role of a node cannot change: create a new node instead".into())
        }
        ("postgresql", "pgdata") if o.pgdata != n.pgdata => {
            return Err("PGDATA cannot change: the files of pg_autoctl are named after it".into())
        }
        ("postgresql", "pg_ctl") => {
            let bin = crate::pg::bin::PgBin::from_pg_ctl(&n.pg_ctl).map_err(|e| e.to_string())?;
            if !bin.path("postgres").exists() {
                return Err(format!(
                    "{} has no postgres program next to it: give the pg_ctl of a PostgreSQL installation",
                    n.pg_ctl.display()
                ));
            }
        }
        ("postgresql", "hba_level")
            if !["skip", "minimal", crate::config::HBA_LAN].contains(&n.hba_level.as_str()) =>
        {
            return Err("expected one of skip, minimal, app (app: --pg-hba-lan)".into())
        }
        _ => {}
    }
    match (old, new) {
        (Config::Keeper(a), Config::Keeper(b)) => {
            if a.formation != b.formation {
                return Err("a node cannot move to another formation: drop it and create it in the other formation".into());
            }
            if b.monitor != crate::config::MONITOR_DISABLED {
                pgaf_pgconn::parse(&b.monitor).map_err(|e| format!("invalid monitor URI: {e}"))?;
            }
            pgaf_pgconn::SslMode::parse(&b.ssl.sslmode).map_err(|e| e.to_string())?;
        }
        (Config::Monitor(_), Config::Monitor(b)) => {
            pgaf_pgconn::SslMode::parse(&b.ssl.sslmode).map_err(|e| e.to_string())?;
        }
        _ => {}
    }
    Ok(())
}

fn set(a: SetArgs, g: Globals) -> CmdResult {
    let (paths, cfg) = a.pgdata.load_config()?;
    let mut ini = cfg.to_ini();
    lookup(&ini, &a.key)?;
    let (section, option) = split_key(&a.key)?;
    ini.set(section, option, &a.value);
    let refuse = |why: String| {
        Failure::usage(format!(
            "cannot set {} to \"{}\": {why}; the configuration was not changed",
            a.key, a.value
        ))
    };
    let new = Config::from_ini(&paths.config, &ini).map_err(|e| refuse(e.to_string()))?;
    validate(&cfg, &new, section, option).map_err(refuse)?;
    new.save(&paths.config).code(exit::BAD_CONFIG)?;
    // Print the value as read back from the file.
    let back = Config::load(&paths.config).code(exit::BAD_CONFIG)?.to_ini();
    let value = lookup(&back, &a.key)?.to_string();
    if g.json {
        println!(
            "{}",
            super::json::pretty(&serde_json::json!({ a.key.clone(): value }))
        );
    } else {
        println!("{value}");
    }
    if let Some(info) = super::service_ctl::live_service(&paths.pid) {
        super::service_ctl::signal(info.pid, libc::SIGHUP).code(exit::INTERNAL_ERROR)?;
        tracing::info!(
            "Sent SIGHUP to the pg_autoctl service (pid {}) to reload its configuration",
            info.pid
        );
    }
    Ok(())
}

/// The settings a node's Postgres must run with.
async fn check_settings(local: &crate::pg::local::Local, monitor: bool) -> Vec<String> {
    let mut problems = Vec::new();
    let setting = |name: &'static str| async move { local.setting(name).await.unwrap_or_default() };
    let wal_level = setting("wal_level").await;
    if !monitor && !matches!(wal_level.as_str(), "replica" | "logical") {
        problems.push(format!(
            "wal_level is \"{wal_level}\", expected replica or logical"
        ));
    }
    if !monitor && setting("wal_log_hints").await != "on" {
        problems.push("wal_log_hints is off, pg_rewind needs it on".into());
    }
    for name in ["max_wal_senders", "max_replication_slots"] {
        let v: i64 = setting(name).await.parse().unwrap_or(0);
        if !monitor && v < 4 {
            problems.push(format!("{name} is {v}, expected at least 4"));
        }
    }
    if monitor
        && !setting("shared_preload_libraries")
            .await
            .contains("pgautofailover")
    {
        problems.push("shared_preload_libraries does not contain pgautofailover".into());
    }
    problems
}

async fn check(a: CheckArgs, g: Globals) -> CmdResult {
    let (paths, cfg) = a.pgdata.load_config()?;
    let pg = cfg.pg();
    let pm = crate::pg::control::PostmasterPid::read(&paths.pgdata)
        .filter(crate::pg::control::PostmasterPid::ready)
        .ok_or_else(|| {
            Failure::new(
                exit::PGCTL,
                anyhow::anyhow!(
                    "Postgres is not running for {}: start the node with pg_autoctl run first",
                    paths.pgdata.display()
                ),
            )
        })?;
    tracing::info!(
        "Postgres setup for PGDATA \"{}\" is ok, running with PID {} and port {}",
        paths.pgdata.display(),
        pm.pid,
        pm.port
    );
    let local = crate::pg::local::Local::connect(&paths.pgdata)
        .await
        .code(exit::PGSQL)?;
    tracing::info!("Connection to local Postgres ok");
    let monitor_role = matches!(cfg, Config::Monitor(_));
    let problems = check_settings(&local, monitor_role).await;
    if !problems.is_empty() {
        return Err(Failure::new(
            exit::BAD_CONFIG,
            anyhow::anyhow!(
                "Postgres settings required by pg_auto_failover are missing: {}",
                problems.join("; ")
            ),
        ));
    }
    tracing::info!("Postgres configuration settings required for pg_auto_failover are ok");
    let in_recovery = local.in_recovery().await.code(exit::PGSQL)?;
    if let Config::Keeper(k) = &cfg {
        if k.monitor == crate::config::MONITOR_DISABLED {
            tracing::info!("The monitor is disabled for this node");
        } else {
            let m = crate::monitor::Monitor::connect(&k.monitor, super::show::CONNECT_TIMEOUT)
                .await
                .code(exit::MONITOR)?;
            tracing::info!(
                "Connected to the monitor at \"{}\"",
                pgaf_pgconn::redact(&k.monitor)
            );
            let v = m.check_version().await.code(exit::MONITOR)?;
            tracing::info!("Monitor is running version \"{v}\", as expected");
        }
    }
    let version = crate::pg::bin::PgBin::from_pg_ctl(&pg.pg_ctl)
        .ok()
        .map(|b| super::status::postgres_version(&b))
        .unwrap_or_default();
    let postgres =
        super::status::postgres_json(&cfg, &paths, Some(&pm), Some(in_recovery), &version);
    if g.json {
        let v = serde_json::json!({ "postgres": postgres, "config": ini_json(&cfg.to_ini()) });
        println!("{}", super::json::pretty(&v));
    } else {
        print!(
            "{}",
            super::internal::pgsetup::setup_lines(&cfg, &paths, Some(&pm), in_recovery)
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_has_numbers_for_integer_keys_only() {
        let ini = Ini::parse("[postgresql]\nport = 5432\nusername = 123\n\n[timeout]\nnetwork_partition_timeout = 20\n").unwrap();
        assert_eq!(
            ini_json(&ini),
            serde_json::json!({"postgresql": {"port": 5432, "username": "123"}, "timeout": {"network_partition_timeout": 20}})
        );
    }

    #[test]
    fn keys_are_section_dot_option() {
        assert!(split_key("postgresql.port").is_ok());
        assert!(split_key("port").is_err());
        assert!(split_key(".port").is_err());
    }
}
