//! `pg_autoctl show ...`: what the monitor (or the local node) knows,
//! printed in upstream's formats.
//!
//! * [`state`]: `show state`;
//! * [`uri`]: `show uri`;
//! * [`events`]: `show events`;
//! * [`settings`]: `show settings` (and `get formation settings`);
//! * [`standby_names`]: `show standby-names`;
//! * [`file`]: `show file`;
//! * [`systemd`]: `show systemd`.
//!
//! Which monitor to ask: `--monitor` (or `PG_AUTOCTL_MONITOR`) first, else
//! the configuration of the node in `--pgdata`.

pub mod events;
pub mod file;
pub mod settings;
pub mod standby_names;
pub mod state;
pub mod systemd;
pub mod uri;

use super::exit::{self, CmdResult, Code, Failure};
use super::{Globals, PgdataArg};
use crate::config::Config;
use crate::monitor::Monitor;
use crate::paths::NodePaths;
use std::time::Duration;

#[derive(Debug, clap::Subcommand)]
pub enum Show {
    /// Show the postgres uri to use to connect to pg_auto_failover nodes
    Uri(uri::UriArgs),
    /// Prints monitor's events of nodes in a given formation and group
    Events(events::EventsArgs),
    /// Prints monitor's state of nodes in a given formation and group
    State(state::StateArgs),
    /// Print replication settings for a formation from the monitor
    Settings(settings::SettingsArgs),
    /// Prints synchronous_standby_names for a given group
    StandbyNames(standby_names::StandbyNamesArgs),
    /// List pg_autoctl internal files (config, state, pid)
    File(file::FileArgs),
    /// Print systemd service file for this node
    Systemd(systemd::SystemdArgs),
}

impl Show {
    pub(super) fn pgdata(&self) -> Option<&PgdataArg> {
        match self {
            Show::Uri(a) => Some(&a.target.pgdata),
            Show::State(a) => Some(&a.target.pgdata),
            Show::Events(a) => Some(&a.target.pgdata),
            Show::Settings(a) => Some(&a.target.pgdata),
            Show::StandbyNames(a) => Some(&a.target.pgdata),
            Show::File(a) => Some(&a.pgdata),
            Show::Systemd(a) => Some(&a.pgdata),
        }
    }
}

pub async fn run(cmd: Show, g: Globals) -> CmdResult {
    match cmd {
        Show::Uri(a) => uri::run(a, g).await,
        Show::State(a) if a.watch => {
            let w = super::watch::WatchArgs {
                target: a.target,
                formation: a.formation,
                group: a.group,
            };
            super::watch::run(w, g).await
        }
        Show::Events(a) if a.watch => {
            let w = super::watch::WatchArgs {
                target: a.target,
                formation: a.formation,
                group: a.group,
            };
            super::watch::run(w, g).await
        }
        Show::State(a) => state::run(a, g).await,
        Show::Events(a) => events::run(a, g).await,
        Show::Settings(a) => settings::run(a, g).await,
        Show::StandbyNames(a) => standby_names::run(a, g).await,
        Show::File(a) => file::run(a, g).await,
        Show::Systemd(a) => systemd::run(a, g).await,
    }
}

/// `--pgdata` and `--monitor`: where the answers come from.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct Target {
    #[command(flatten)]
    pub pgdata: PgdataArg,
    /// pg_auto_failover monitor Postgres URL
    #[arg(long, env = "PG_AUTOCTL_MONITOR", value_name = "URI")]
    pub monitor: Option<String>,
}

/// A resolved [`Target`].
pub struct Resolved {
    /// The monitor's connection string.
    pub uri: String,
    /// The local node's configuration, when `--pgdata` was used.
    pub local: Option<Config>,
    pub paths: Option<NodePaths>,
}

/// How long an interactive command waits for the monitor.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

impl Target {
    pub fn resolve(&self) -> Result<Resolved, Failure> {
        if let Some(uri) = self.monitor.as_ref().filter(|u| !u.is_empty()) {
            if self.pgdata.pgdata.is_some() {
                tracing::debug!("--monitor is given: the configuration in PGDATA is not used");
            }
            pgaf_pgconn::parse(uri).map_err(|e| Failure::usage(format!("--monitor: {e}")))?;
            return Ok(Resolved {
                uri: uri.clone(),
                local: None,
                paths: None,
            });
        }
        let pgdata = self.pgdata.require().map_err(|_| {
            Failure::usage("Failed to set PGDATA either from the environment or from --pgdata; this command also supports the --monitor option")
        })?;
        let paths = NodePaths::new(&pgdata);
        let cfg = Config::load(&paths.config).code(exit::BAD_CONFIG)?;
        let uri = match &cfg {
            Config::Keeper(k) => k.monitor.clone(),
            Config::Monitor(m) => crate::monitor_node::monitor_uri(m),
        };
        Ok(Resolved {
            uri,
            local: Some(cfg),
            paths: Some(paths),
        })
    }
}

impl Resolved {
    /// The node a command is about: `given` (`--name`), else the local
    /// node's own name.
    pub fn node_name(&self, given: &Option<String>) -> Result<String, Failure> {
        match (given, &self.local) {
            (Some(n), _) => Ok(n.clone()),
            (None, Some(Config::Keeper(k))) if !k.name.is_empty() => Ok(k.name.clone()),
            _ => Err(Failure::usage(
                "which node? give its name with --name (see pg_autoctl show state)",
            )),
        }
    }

    pub async fn connect(&self) -> Result<Monitor, Failure> {
        Monitor::connect(&self.uri, CONNECT_TIMEOUT)
            .await
            .code(exit::MONITOR)
    }

    /// `--formation`, else the local node's, else `default`.
    pub fn formation(&self, given: &Option<String>) -> String {
        match (given, &self.local) {
            (Some(f), _) => f.clone(),
            (None, Some(Config::Keeper(k))) => k.formation.clone(),
            _ => "default".into(),
        }
    }

    /// `--group`, else the local node's group (in its own formation), else
    /// the only group of the formation.
    pub async fn group(
        &self,
        c: &tokio_postgres::Client,
        formation: &str,
        given: Option<i32>,
    ) -> Result<i32, Failure> {
        if let Some(g) = given {
            return Ok(g);
        }
        if let Some(Config::Keeper(k)) = &self.local {
            if let (Some(g), true) = (k.group, k.formation == formation) {
                return Ok(g);
            }
        }
        match super::api::groups(c, formation).await?.as_slice() {
            [g] => Ok(*g),
            [] => Err(Failure::usage(format!(
                "formation \"{formation}\" has no node: check its name with pg_autoctl show state --formation, or give --group"
            ))),
            many => Err(Failure::usage(format!(
                "formation \"{formation}\" has several groups ({}): please use the --group option",
                many.iter().map(|g| g.to_string()).collect::<Vec<_>>().join(", ")
            ))),
        }
    }
}

/// Right-aligned columns separated by ` | `, a dashed separator joined by
/// `-+-`, and a trailing empty line: upstream's tables.
pub fn table(headers: &[&str], min_widths: &[usize], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers
        .iter()
        .zip(min_widths)
        .map(|(h, m)| h.len().max(*m))
        .collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: &mut dyn Iterator<Item = &str>| -> String {
        cells
            .zip(&widths)
            .map(|(c, w)| format!("{c:>w$}"))
            .collect::<Vec<_>>()
            .join(" | ")
    };
    let mut out = line(&mut headers.iter().copied());
    out.push('\n');
    out.push_str(
        &widths
            .iter()
            .map(|w| "-".repeat(*w))
            .collect::<Vec<_>>()
            .join("-+-"),
    );
    out.push('\n');
    for row in rows {
        out.push_str(&line(&mut row.iter().map(String::as_str)));
        out.push('\n');
    }
    out.push('\n');
    out
}
