//! `pg_autoctl show file`: where the files of the
//! node in PGDATA are (configuration, state, init, pid), or one of them, or
//! its contents.

use crate::cli::exit::{self, CmdResult, Code, Failure};
use crate::cli::{Globals, PgdataArg};
use crate::config::Config;
use crate::state::KeeperState;
use serde_json::{json, Value};

#[derive(Debug, Clone, clap::Args)]
#[command(group(clap::ArgGroup::new("which").args(["all", "config", "state", "init", "pid"])))]
pub struct FileArgs {
    #[command(flatten)]
    pub pgdata: PgdataArg,
    /// Show all pg_autoctl files (the default)
    #[arg(long)]
    pub all: bool,
    /// Show the pg_autoctl configuration file
    #[arg(long)]
    pub config: bool,
    /// Show the pg_autoctl state file
    #[arg(long)]
    pub state: bool,
    /// Show the pg_autoctl initialisation state file
    #[arg(long)]
    pub init: bool,
    /// Show the pg_autoctl PID file
    #[arg(long)]
    pub pid: bool,
    /// Show the selected file's contents
    #[arg(long, conflicts_with = "all")]
    pub contents: bool,
}

/// `File | Path`: File 7 wide, a 15-dash separator under Path.
pub fn render(rows: &[(&str, String)]) -> String {
    let mut out = format!(
        "{:>7} | {}\n{}-+-{}\n",
        "File",
        "Path",
        "-".repeat(7),
        "-".repeat(15)
    );
    for (name, path) in rows {
        out.push_str(&format!("{name:>7} | {path}\n"));
    }
    out.push('\n');
    out
}

/// A Unix time as `ctime(3)` prints it (without the newline), `0` for
/// never.
pub fn ctime(secs: i64) -> String {
    if secs <= 0 {
        return "0".into();
    }
    let t = secs as libc::time_t;
    // SAFETY: all-zero is a valid libc::tm; localtime_r writes into it.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    // SAFETY: `t` and `tm` are valid for the call.
    if unsafe { libc::localtime_r(&t, &mut tm) }.is_null() {
        return secs.to_string();
    }
    const DAYS: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    format!(
        "{} {} {:>2} {:02}:{:02}:{:02} {}",
        DAYS.get(tm.tm_wday as usize).unwrap_or(&"???"),
        MONTHS.get(tm.tm_mon as usize).unwrap_or(&"???"),
        tm.tm_mday,
        tm.tm_hour,
        tm.tm_min,
        tm.tm_sec,
        tm.tm_year + 1900
    )
}

/// What `pg_controldata` says, when it can be run.
fn control(cfg: &Config) -> Option<crate::pg::control::ControlData> {
    let bin = crate::pg::bin::PgBin::from_pg_ctl(&cfg.pg().pg_ctl).ok()?;
    crate::pg::control::controldata(&bin, &cfg.pg().pgdata).ok()
}

/// The keeper's state as upstream's JSON shows it (`show file --state
/// --contents --json`, the `state` object of `do fsm state`).
pub fn state_json(state: &KeeperState, pg_control_version: u32) -> serde_json::Value {
    json!({
        "current_role": state.current_role.as_str(),
        "assigned_role": state.assigned_role.as_str(),
        "version": state.version,
        "groupId": state.group_id,
        "nodeId": state.node_id,
        "last_monitor_contact": ctime(state.last_monitor_contact),
        "last_secondary_contact": ctime(state.last_secondary_contact),
        "pgversion": pg_control_version,
    })
}

/// The state file as text lines (labels padded to 26 columns) or JSON.
fn state_contents(state: &KeeperState, cfg: &Config, json_out: bool) -> String {
    let ctl = control(cfg).unwrap_or_default();
    if json_out {
        return crate::cli::json::pretty(&state_json(state, ctl.pg_control_version));
    }
    let sysid = if state.system_identifier != 0 {
        state.system_identifier.to_string()
    } else {
        ctl.system_identifier.to_string()
    };
    let lines: [(&str, String); 11] = [
        ("Current Role:", state.current_role.as_str().into()),
        ("Assigned Role:", state.assigned_role.as_str().into()),
        ("Last Monitor Contact:", ctime(state.last_monitor_contact)),
        (
            "Last Secondary Contact:",
            ctime(state.last_secondary_contact),
        ),
        ("pg_autoctl state version:", state.version.to_string()),
        ("group:", state.group_id.to_string()),
        ("node id:", state.node_id.to_string()),
        ("nodes version:", "0".into()),
        ("PostgreSQL Version:", ctl.pg_control_version.to_string()),
        ("PostgreSQL CatVersion:", ctl.catalog_version.to_string()),
        ("PostgreSQL System Id:", sysid),
    ];
    lines
        .iter()
        .map(|(k, v)| format!("{k:<26}{v}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The pidfile as JSON.
fn pid_json(text: &str) -> Option<Value> {
    let info = crate::pidfile::parse(text)?;
    let status = |pid: i32| {
        if crate::pidfile::alive(pid) {
            "running"
        } else {
            "stale"
        }
    };
    let services: Vec<Value> = info
        .services
        .iter()
        .map(|(pid, name)| {
            json!({
                "name": name,
                "pid": pid,
                "status": status(*pid),
                "version": info.version,
                "pgautofailover": info.extension_version,
            })
        })
        .collect();
    Some(json!({
        "pid": info.pid,
        "pgdata": info.pgdata,
        "version": info.version,
        "semId": 0,
        "services": services,
    }))
}

fn read(path: &std::path::Path, what: &str) -> Result<String, Failure> {
    std::fs::read_to_string(path).map_err(|e| {
        Failure::new(
            exit::BAD_STATE,
            anyhow::anyhow!("cannot read the {what} file \"{}\": {e}", path.display()),
        )
    })
}

pub async fn run(a: FileArgs, g: Globals) -> CmdResult {
    let (paths, cfg) = a.pgdata.load_config()?;
    let pgdata = &paths.pgdata;
    let keeper = matches!(cfg, Config::Keeper(_));
    let one = [
        (a.config, "config"),
        (a.state, "state"),
        (a.init, "init"),
        (a.pid, "pid"),
    ]
    .into_iter()
    .find_map(|(on, name)| on.then_some(name));

    let Some(which) = one else {
        let mut rows = vec![("Config", paths.config.display().to_string())];
        if keeper {
            rows.push(("State", paths.state.display().to_string()));
            rows.push(("Init", paths.init.display().to_string()));
        }
        rows.push(("Pid", paths.pid.display().to_string()));
        if g.json {
            let mut m = serde_json::Map::new();
            for (k, v) in &rows {
                m.insert(k.to_lowercase(), Value::String(v.clone()));
            }
            println!("{}", crate::cli::json::pretty(&Value::Object(m)));
        } else {
            print!("{}", render(&rows));
        }
        return Ok(());
    };

    if !keeper && (which == "state" || which == "init") {
        return Err(Failure::usage(format!(
            "{} is a monitor: it has no {which} file (only --config and --pid)",
            pgdata.display()
        )));
    }
    let path = match which {
        "config" => &paths.config,
        "state" => &paths.state,
        "init" => &paths.init,
        _ => &paths.pid,
    };
    if !a.contents {
        if g.json {
            println!(
                "{}",
                crate::cli::json::pretty(&json!({ which: path.display().to_string() }))
            );
        } else {
            println!("{}", path.display());
        }
        return Ok(());
    }
    match which {
        "config" => {
            if g.json {
                println!(
                    "{}",
                    crate::cli::json::pretty(&crate::cli::config_cmd::ini_json(&cfg.to_ini()))
                );
            } else {
                // The file, then an empty line, as upstream prints it.
                println!("{}", read(path, "configuration")?);
            }
        }
        "state" => {
            let state = KeeperState::load(path)
                .code(exit::BAD_STATE)?
                .ok_or_else(|| {
                    Failure::new(
                        exit::BAD_STATE,
                        anyhow::anyhow!(
                            "there is no state file at \"{}\": the node was not created yet",
                            path.display()
                        ),
                    )
                })?;
            println!("{}", state_contents(&state, &cfg, g.json));
        }
        "init" => {
            if !path.exists() {
                return Err(Failure::new(
                    exit::BAD_STATE,
                    anyhow::anyhow!(
                        "there is no init file at \"{}\": it only exists while `pg_autoctl create` runs",
                        path.display()
                    ),
                ));
            }
            print!("{}", read(path, "init")?);
        }
        _ => {
            let text = std::fs::read_to_string(path).map_err(|e| {
                Failure::new(
                    exit::BAD_STATE,
                    anyhow::anyhow!(
                        "cannot read the pid file \"{}\": {e}; is pg_autoctl running? (pg_autoctl status)",
                        path.display()
                    ),
                )
            })?;
            if g.json {
                let v = pid_json(&text).ok_or_else(|| {
                    Failure::new(
                        exit::BAD_STATE,
                        anyhow::anyhow!("the pid file \"{}\" is not readable", path.display()),
                    )
                })?;
                println!("{}", crate::cli::json::pretty(&v));
            } else {
                println!("{text}");
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_matches_upstream_layout() {
        let out = render(&[
            ("Config", "/x/pg_autoctl.cfg".into()),
            ("Pid", "/run/pg_autoctl.pid".into()),
        ]);
        assert_eq!(
            out,
            "   File | Path\n--------+----------------\n Config | /x/pg_autoctl.cfg\n    Pid | /run/pg_autoctl.pid\n\n"
        );
    }

    #[test]
    fn never_is_zero() {
        assert_eq!(ctime(0), "0");
        let t = ctime(1_700_000_000);
        assert_eq!(t.len(), 24, "{t}");
        assert!(t.ends_with("2023"), "{t}");
    }
}
