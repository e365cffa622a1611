//! `pg_autoctl create monitor` and `pg_autoctl create postgres`: check the options, then hand over to
//! [`crate::monitor_node::create`] or [`crate::node::create`]. Without
//! `--run` the command returns once the node is initialised, with Postgres
//! stopped again; with `--run` it goes on as `pg_autoctl run`.

use super::exit::{self, CmdResult, Code, Failure};
use super::ssl::SslArgs;
use super::{Globals, PgdataArg};
use crate::node::create::CreatePostgres;
use crate::node::service::{self, Exit};
use crate::paths::NodePaths;
use crate::state::KeeperState;
use pgaf_fsm::NodeState;
use std::path::PathBuf;

#[derive(Debug, clap::Subcommand)]
#[allow(clippy::large_enum_variant)] // parsed once per process
pub enum Create {
    /// Initialize a pg_auto_failover monitor node
    Monitor(MonitorArgs),
    /// Initialize a pg_auto_failover standalone postgres node
    Postgres(PostgresArgs),
    /// Create a new formation on the pg_auto_failover monitor
    Formation(super::formation::CreateFormationArgs),
    /// (Citus is not supported: refused)
    #[command(hide = true)]
    Coordinator(super::citus::CitusArgs),
    /// (Citus is not supported: refused)
    #[command(hide = true)]
    Worker(super::citus::CitusArgs),
}

/// `--auth` or `--skip-pg-hba`.
#[derive(Debug, Clone, clap::Args)]
pub struct AuthArgs {
    /// Authentication method in the pg_hba.conf rules we add (trust, md5, scram-sha-256, ...)
    #[arg(long, value_name = "METHOD")]
    pub auth: Option<String>,
    /// Skip editing pg_hba.conf rules
    #[arg(long)]
    pub skip_pg_hba: bool,
}

const AUTH_METHODS: [&str; 8] = [
    "trust",
    "md5",
    "scram-sha-256",
    "password",
    "peer",
    "ident",
    "cert",
    "reject",
];

impl AuthArgs {
    fn resolve(&self) -> Result<(String, bool), Failure> {
        match (&self.auth, self.skip_pg_hba) {
            (None, false) => Err(Failure::usage(
                "Please use either --auth trust|md5|scram-sha-256 or --skip-pg-hba",
            )),
            (Some(m), _) if !AUTH_METHODS.contains(&m.as_str()) => Err(Failure::usage(format!(
                "--auth {m}: unknown authentication method, use one of {}",
                AUTH_METHODS.join(", ")
            ))),
            (Some(m), skip) => Ok((m.clone(), skip)),
            (None, true) => Ok(("trust".into(), true)),
        }
    }
}

#[derive(Debug, Clone, clap::Args)]
pub struct MonitorArgs {
    #[command(flatten)]
    pub pgdata: PgdataArg,
    /// Path to pg_ctl
    #[arg(long, value_name = "PATH")]
    pub pgctl: Option<PathBuf>,
    /// PostgreSQL's port number
    #[arg(long, env = "PGPORT", default_value_t = 5432)]
    pub pgport: u16,
    /// Hostname by which postgres is reachable (--nodename: deprecated alias)
    #[arg(long, alias = "nodename")]
    pub hostname: Option<String>,
    /// PostgreSQL's listen_addresses
    #[arg(long, default_value = "*")]
    pub listen: String,
    #[command(flatten)]
    pub auth: AuthArgs,
    #[command(flatten)]
    pub ssl: SslArgs,
    /// Serve Prometheus metrics on http://ADDR/metrics (IP:PORT, e.g. 127.0.0.1:9360); stored in the configuration as [pg_autoctl] metrics_listen
    #[arg(long, value_name = "ADDR", value_parser = crate::metrics::parse_listen_option)]
    pub metrics_listen: Option<String>,
    /// Create the node then run the pg_autoctl service
    #[arg(long)]
    pub run: bool,
}

fn parse_priority(s: &str) -> Result<i32, String> {
    match s.parse::<i32>() {
        Ok(n) if (0..=100).contains(&n) => Ok(n),
        _ => Err(format!(
            "\"{s}\" is not a candidate priority: use an integer from 0 to 100"
        )),
    }
}

fn parse_bool(s: &str) -> Result<bool, String> {
    match s.to_ascii_lowercase().as_str() {
        "true" | "on" | "yes" | "1" | "t" => Ok(true),
        "false" | "off" | "no" | "0" | "f" => Ok(false),
        _ => Err(format!("\"{s}\" is not a boolean: use true or false")),
    }
}

#[derive(Debug, Clone, clap::Args)]
pub struct PostgresArgs {
    #[command(flatten)]
    pub pgdata: PgdataArg,
    /// Path to pg_ctl
    #[arg(long, value_name = "PATH")]
    pub pgctl: Option<PathBuf>,
    /// PostgreSQL's hostname for local connections
    #[arg(long, env = "PGHOST")]
    pub pghost: Option<String>,
    /// PostgreSQL's port number
    #[arg(long, env = "PGPORT", default_value_t = 5432)]
    pub pgport: u16,
    /// PostgreSQL's listen_addresses
    #[arg(long, default_value = "*")]
    pub listen: String,
    /// PostgreSQL's username
    #[arg(long, env = "PGUSER", default_value = "")]
    pub username: String,
    /// PostgreSQL's database name
    #[arg(long, env = "PGDATABASE", default_value = "postgres")]
    pub dbname: String,
    /// pg_auto_failover node name (the monitor names it node_<id> otherwise)
    #[arg(long, default_value = "")]
    pub name: String,
    /// Hostname used to connect from the other nodes (--nodename: deprecated alias)
    #[arg(long, alias = "nodename")]
    pub hostname: Option<String>,
    /// pg_auto_failover formation
    #[arg(long, default_value = "default")]
    pub formation: String,
    /// Group to join in the formation (the monitor chooses by default)
    #[arg(long)]
    pub group: Option<i32>,
    /// pg_auto_failover monitor Postgres URL (default: $PG_AUTOCTL_MONITOR)
    #[arg(long, value_name = "URI")]
    pub monitor: Option<String>,
    /// Run without a monitor: roles are assigned with pg_autoctl do fsm assign
    #[arg(long)]
    pub disable_monitor: bool,
    /// This node's id, with --disable-monitor
    #[arg(long, value_name = "ID", allow_negative_numbers = true)]
    pub node_id: Option<String>,
    #[command(flatten)]
    pub auth: AuthArgs,
    /// Also allow connections to --dbname from the local network of --hostname
    #[arg(long, conflicts_with = "skip_pg_hba")]
    pub pg_hba_lan: bool,
    #[command(flatten)]
    pub ssl: SslArgs,
    /// Priority of the node to be promoted to become primary (0 to 100)
    #[arg(long, default_value = "50", value_parser = parse_priority)]
    pub candidate_priority: i32,
    /// True if the node participates in the write quorum
    #[arg(long, default_value = "true", value_parser = parse_bool)]
    pub replication_quorum: bool,
    /// Maximum transfer rate of the initial base backup
    #[arg(long, default_value = "100M")]
    pub maximum_backup_rate: String,
    /// Serve Prometheus metrics on http://ADDR/metrics (IP:PORT, e.g. 127.0.0.1:9360); stored in the configuration as [pg_autoctl] metrics_listen
    #[arg(long, value_name = "ADDR", value_parser = crate::metrics::parse_listen_option)]
    pub metrics_listen: Option<String>,
    /// Create the node then run the pg_autoctl service
    #[arg(long)]
    pub run: bool,
    /// (Citus is not supported: refused)
    #[arg(long, hide = true)]
    pub citus_secondary: bool,
    /// (Citus is not supported: refused)
    #[arg(long, hide = true, value_name = "NAME")]
    pub citus_cluster: Option<String>,
}

pub async fn run(cmd: Create, g: Globals) -> CmdResult {
    match cmd {
        Create::Monitor(a) => monitor(a).await,
        Create::Postgres(a) => postgres(a).await,
        Create::Formation(a) => super::formation::create(a, g).await,
        Create::Coordinator(_) => super::citus::refuse("create coordinator"),
        Create::Worker(_) => super::citus::refuse("create worker"),
    }
}

/// The address other machines reach this one at, when `--hostname` is not
/// given: see [`crate::net::default_address`]; else the host name.
fn default_hostname() -> String {
    crate::net::default_address()
        .or_else(crate::net::host_name)
        .unwrap_or_else(|| "localhost".into())
}

async fn monitor(a: MonitorArgs) -> CmdResult {
    let pgdata = a.pgdata.require()?;
    let (auth, skip_hba) = a.auth.resolve()?;
    let ssl = a.ssl.resolve(&pgdata)?;
    let paths = NodePaths::new(&pgdata);
    let _pid =
        crate::pidfile::acquire(&paths.pid, &pgdata, "monitor-init").code(exit::BAD_STATE)?;
    let opts = crate::monitor_node::CreateMonitor {
        pgdata,
        pgport: a.pgport,
        hostname: a.hostname.clone().unwrap_or_else(default_hostname),
        listen: a.listen.clone(),
        auth,
        skip_hba,
        ssl,
        pg_ctl: a.pgctl.clone(),
        metrics_listen: a.metrics_listen.clone().unwrap_or_default(),
    };
    let (cfg, pg) = crate::monitor_node::create(&opts)
        .await
        .code(exit::BAD_STATE)?;
    if a.run {
        drop(_pid);
        let _pid = crate::pidfile::acquire(&paths.pid, &cfg.pg.pgdata, "listener")
            .code(exit::BAD_STATE)?;
        crate::monitor_node::run(cfg, Some(pg))
            .await
            .code(exit::PGCTL)
    } else {
        pg.shutdown(std::time::Duration::from_secs(60))
            .await
            .code(exit::PGCTL)
    }
}

/// `create` without `--run` returns once the node holds its first role.
fn initialised(s: &KeeperState) -> bool {
    s.current_role == s.assigned_role
        && matches!(
            s.current_role,
            NodeState::Single
                | NodeState::Primary
                | NodeState::WaitPrimary
                | NodeState::Secondary
                | NodeState::CatchingUp
        )
}

async fn postgres(a: PostgresArgs) -> CmdResult {
    if a.citus_secondary || a.citus_cluster.is_some() {
        return super::citus::refuse("create postgres --citus-*");
    }
    let node_id = match (&a.node_id, a.disable_monitor) {
        (None, true) => {
            return Err(Failure::usage(
                "When using --disable-monitor, also use --node-id",
            ))
        }
        (Some(_), false) => {
            return Err(Failure::usage(
                "Option --node-id is only accepted with --disable-monitor",
            ))
        }
        (Some(id), true) => match id.parse::<i64>() {
            Ok(n) if n > 0 => Some(n),
            _ => {
                return Err(Failure::usage(format!(
                    "--node-id argument is not a valid ID: \"{id}\", use a positive integer"
                )))
            }
        },
        (None, false) => None,
    };
    let monitor = if a.disable_monitor {
        if a.monitor.is_some() {
            return Err(Failure::usage(
                "Use either --monitor or --disable-monitor, not both.",
            ));
        }
        crate::config::MONITOR_DISABLED.to_string()
    } else {
        match a.monitor.clone().or_else(|| std::env::var("PG_AUTOCTL_MONITOR").ok()) {
            Some(m) if !m.is_empty() => {
                pgaf_pgconn::parse(&m).map_err(|e| Failure::usage(format!("--monitor: {e}")))?;
                m
            }
            _ => return Err(Failure::usage(
                "Failed to set the monitor URI: use either --monitor postgresql://... (pg_autoctl show uri --formation monitor on the monitor) or --disable-monitor",
            )),
        }
    };
    let pgdata = a.pgdata.require()?;
    let (auth, skip_hba) = a.auth.resolve()?;
    let ssl = a.ssl.resolve(&pgdata)?;
    let paths = NodePaths::new(&pgdata);
    let pid = crate::pidfile::acquire(&paths.pid, &pgdata, "node-init").code(exit::BAD_STATE)?;
    let opts = CreatePostgres {
        pgdata,
        pgport: a.pgport,
        pghost: a.pghost.clone().unwrap_or_default(),
        hostname: a.hostname.clone(),
        listen: a.listen.clone(),
        monitor,
        node_id,
        pg_hba_lan: a.pg_hba_lan,
        formation: a.formation.clone(),
        group: a.group,
        name: a.name.clone(),
        dbname: a.dbname.clone(),
        username: a.username.clone(),
        candidate_priority: a.candidate_priority,
        replication_quorum: a.replication_quorum,
        auth,
        skip_hba,
        ssl,
        pg_ctl: a.pgctl.clone(),
        maximum_backup_rate: a.maximum_backup_rate.clone(),
        metrics_listen: a.metrics_listen.clone().unwrap_or_default(),
    };
    let (node, fresh) = crate::node::create::create(&opts)
        .await
        .code(exit::BAD_STATE)?;
    if a.disable_monitor && !a.run && fresh {
        tracing::info!(
            "Node {} is ready in state \"init\", without a monitor: start it with \
             `pg_autoctl run`, then assign its role with `pg_autoctl do fsm assign single` \
             (or wait_standby, after `pg_autoctl do fsm nodes set`)",
            node.state.node_id
        );
        return Ok(());
    }
    if !fresh && !a.run {
        tracing::info!(
            "Node {} is already initialised in {}: use `pg_autoctl run` to start it",
            node.state.node_id,
            node.paths.pgdata.display()
        );
        return Ok(());
    }
    drop(pid);
    let _pid =
        crate::pidfile::acquire(&paths.pid, &paths.pgdata, "node-active").code(exit::BAD_STATE)?;
    let until = if a.run {
        None
    } else {
        Some(initialised as fn(&KeeperState) -> bool)
    };
    match service::run(node, until).await.code(exit::KEEPER)? {
        Exit::Stopped if !a.run => Err(Failure::new(
            exit::BAD_STATE,
            anyhow::anyhow!(
                "interrupted before the node was initialised: run the same command again to finish"
            ),
        )),
        _ => Ok(()),
    }
}
