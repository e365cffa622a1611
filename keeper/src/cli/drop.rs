//! `pg_autoctl drop node` and `pg_autoctl drop monitor`.
//!
//! `drop node --pgdata D` on the node's host: the monitor assigns the node
//! `dropped`; its running service stops Postgres, reports `dropped` (the
//! monitor then forgets it) and exits; when no service runs this command
//! reports for it. `--force` makes the monitor forget the node at once.
//! `--destroy` then removes PGDATA and the node's files; without it they are
//! kept, and the node can be created again.
//!
//! `drop node --name N` (or `--hostname H --pgport P`), with `--monitor` or
//! on the monitor's host: remove a node from the monitor and wait for it to
//! be gone (its keeper finishes the protocol, or `--force`).
//!
//! `drop formation` lives in [`super::formation`].
//!
//! `drop monitor --pgdata D`: stop the monitor's service, and with
//! `--destroy` remove its PGDATA and configuration.

use super::api::{self, col};
use super::exit::{self, CmdResult, Code, Failure};
use super::local_node::LocalNode;
use super::show::Target;
use super::transitions::Transitions;
use super::{Globals, PgdataArg};
use crate::config::Config;
use crate::paths::NodePaths;
use pgaf_fsm::NodeState;
use std::path::Path;
use std::time::Duration;

#[derive(Debug, clap::Subcommand)]
pub enum DropCmd {
    /// Drop the pg_auto_failover monitor
    Monitor(DropMonitorArgs),
    /// Drop a node from the pg_auto_failover monitor
    Node(DropNodeArgs),
    /// Drop a formation on the pg_auto_failover monitor
    Formation(super::formation::DropFormationArgs),
}

impl DropCmd {
    pub(super) fn pgdata(&self) -> &PgdataArg {
        match self {
            DropCmd::Monitor(a) => &a.pgdata,
            DropCmd::Node(a) => &a.target.pgdata,
            DropCmd::Formation(a) => &a.target.pgdata,
        }
    }
}

#[derive(Debug, Clone, clap::Args)]
pub struct DropNodeArgs {
    #[command(flatten)]
    pub target: Target,
    /// pg_auto_failover formation
    #[arg(long)]
    pub formation: Option<String>,
    /// Drop the node with the given node name
    #[arg(long, conflicts_with = "hostname")]
    pub name: Option<String>,
    /// Drop the node with given hostname and pgport
    #[arg(long, requires = "pgport")]
    pub hostname: Option<String>,
    /// Drop the node with given hostname and pgport
    #[arg(long, requires = "hostname")]
    pub pgport: Option<u16>,
    /// Also destroy the Postgres database and the node's files
    #[arg(long)]
    pub destroy: bool,
    /// Force dropping the node from the monitor, at once
    #[arg(long)]
    pub force: bool,
    /// How many seconds to wait for the node to be dropped, 0 not to wait
    #[arg(long, default_value_t = 60, value_name = "SECONDS")]
    pub wait: u64,
}

#[derive(Debug, Clone, clap::Args)]
pub struct DropMonitorArgs {
    #[command(flatten)]
    pub pgdata: PgdataArg,
    /// Also destroy the monitor's Postgres database and configuration
    #[arg(long)]
    pub destroy: bool,
}

pub async fn run(cmd: DropCmd, g: Globals) -> CmdResult {
    match cmd {
        DropCmd::Node(a) => drop_node(a, g).await,
        DropCmd::Monitor(a) => drop_monitor(a).await,
        DropCmd::Formation(a) => super::formation::drop(a, g).await,
    }
}

/// How often a process exit is checked.
const EXIT_POLL: Duration = Duration::from_millis(100);
/// How long a signalled service may take to stop Postgres and exit.
const STOP_WAIT: Duration = Duration::from_secs(60);

/// The service `pid` of `pidfile` is done: it removed its pidfile on the way
/// out, or the process is gone (or a zombie its parent did not reap yet).
fn exited(pid: i32, pidfile: &Path) -> bool {
    super::service_ctl::live_service(pidfile).is_none_or(|i| i.pid != pid)
}

/// Wait until the service `pid` of `pidfile` exited, at most `limit`.
async fn wait_exit(pid: i32, pidfile: &Path, limit: Duration) -> bool {
    let deadline = tokio::time::Instant::now() + limit;
    while !exited(pid, pidfile) {
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(EXIT_POLL).await;
    }
    true
}

/// Stop the service recorded in `paths.pid` (SIGTERM: it stops Postgres,
/// then exits) and wait for it.
async fn stop_service(paths: &NodePaths) -> Result<(), Failure> {
    let Some(info) = super::service_ctl::live_service(&paths.pid) else {
        return Ok(());
    };
    tracing::info!("Stopping the pg_autoctl service (pid {})", info.pid);
    super::service_ctl::signal(info.pid, libc::SIGTERM).code(exit::INTERNAL_ERROR)?;
    if !wait_exit(info.pid, &paths.pid, STOP_WAIT).await {
        return Err(Failure::new(
            exit::BAD_STATE,
            anyhow::anyhow!(
                "the pg_autoctl service (pid {}) did not stop within {} s: stop it (kill {}) and run this command again",
                info.pid,
                STOP_WAIT.as_secs(),
                info.pid
            ),
        ));
    }
    Ok(())
}

/// Stop a Postgres left running in `pgdata` (fast shutdown).
async fn stop_postgres(pg_ctl: &Path, pgdata: &Path) -> Result<(), Failure> {
    let running = crate::pg::control::PostmasterPid::read(pgdata).is_some_and(|p| p.alive());
    if !running {
        return Ok(());
    }
    tracing::info!("Stopping Postgres in {}", pgdata.display());
    let bin = crate::pg::bin::PgBin::from_pg_ctl(pg_ctl)
        .or_else(|_| crate::pg::bin::PgBin::discover(None))
        .code(exit::PGCTL)?;
    let pg = crate::pg::process::Postgres::new(bin, pgdata).code(exit::PGCTL)?;
    pg.shutdown(STOP_WAIT).await.code(exit::PGCTL)
}

/// Remove `path` (file or directory) if it exists.
fn remove(path: &Path) -> Result<(), Failure> {
    let res = match std::fs::symlink_metadata(path) {
        Err(_) => return Ok(()),
        Ok(m) if m.is_dir() => std::fs::remove_dir_all(path),
        Ok(_) => std::fs::remove_file(path),
    };
    res.map_err(|e| {
        Failure::new(
            exit::BAD_STATE,
            anyhow::anyhow!("cannot remove {}: {e}", path.display()),
        )
    })?;
    tracing::info!("Removed {}", path.display());
    Ok(())
}

async fn drop_node(a: DropNodeArgs, g: Globals) -> CmdResult {
    let target = a.target.resolve()?;
    let remote = a.name.is_some()
        || a.hostname.is_some()
        || target.local.is_none()
        || matches!(target.local, Some(Config::Monitor(_)));
    if remote {
        drop_remote(a, target, g).await
    } else {
        drop_local(a).await
    }
}

async fn drop_remote(a: DropNodeArgs, target: super::show::Resolved, g: Globals) -> CmdResult {
    if a.destroy {
        return Err(Failure::usage(
            "--destroy removes the node's files: run `pg_autoctl drop node --destroy` on the node's host, with its --pgdata",
        ));
    }
    let formation = target.formation(&a.formation);
    let monitor = target.connect().await?;
    let c = monitor.client();
    let nodes = api::current_state(c, &formation, None).await?;
    let node = match (&a.name, &a.hostname, a.pgport) {
        (Some(name), _, _) => api::find_node(&nodes, &formation, name)?,
        (None, Some(host), Some(port)) => nodes
            .iter()
            .find(|n| &n.host == host && n.port == i32::from(port))
            .cloned()
            .ok_or_else(|| {
                Failure::usage(format!(
                    "no node of formation \"{formation}\" is registered at {host}:{port}; see pg_autoctl show state"
                ))
            })?,
        _ => {
            return Err(Failure::usage(
                "which node? give --name, or --hostname and --pgport (or the --pgdata of the node itself)",
            ))
        }
    };
    let group: Vec<_> = nodes
        .iter()
        .filter(|n| n.group_id == node.group_id)
        .cloned()
        .collect();
    let mut t = Transitions::listen(
        &target.uri,
        &formation,
        Some(node.group_id),
        &group,
        !g.json,
    )
    .await?;
    const CTX: &str = "remove_node";
    let row = c
        .query_one(
            "SELECT pgautofailover.remove_node($1::bigint, $2)",
            &[&node.node_id, &a.force],
        )
        .await
        .map_err(api::sql(CTX))?;
    if !col::<bool>(&row, 0, CTX)? {
        tracing::info!(
            "Node {} \"{}\" was already removed",
            node.node_id,
            node.name
        );
        return Ok(());
    }
    if a.wait == 0 {
        tracing::info!(
            "The monitor is removing node {} \"{}\"; see pg_autoctl show state",
            node.node_id,
            node.name
        );
        return Ok(());
    }
    t.start_table();
    let id = node.node_id;
    t.wait_until(
        c,
        Duration::from_secs(a.wait),
        &format!(
            "The removal of node {id} \"{}\" (its pg_autoctl must run to finish it, or use --force)",
            node.name
        ),
        |rows| !rows.iter().any(|n| n.node_id == id),
    )
    .await?;
    tracing::info!(
        "Node {id} \"{}\" has been dropped from the monitor",
        node.name
    );
    Ok(())
}

async fn drop_local(a: DropNodeArgs) -> CmdResult {
    let mut node = LocalNode::load(&a.target.pgdata, "drop node")?;
    let id = node.state.node_id;
    let mut registered = false;
    if node.monitor_disabled() {
        if !a.destroy {
            return Err(Failure::usage(
                "the monitor is disabled for this node: there is nothing to drop it from; use --destroy to remove the node and its files",
            ));
        }
    } else {
        match node.monitor().await {
            Ok(monitor) => {
                let c = monitor.client();
                let nodes = api::current_state(c, &node.cfg.formation, None).await?;
                registered = nodes.iter().any(|n| n.node_id == id);
                if registered {
                    tracing::info!(
                        "Removing node {id} \"{}\" from the monitor{}",
                        node.cfg.name,
                        if a.force { " at once (--force)" } else { "" }
                    );
                    c.query_one(
                        "SELECT pgautofailover.remove_node($1::bigint, $2)",
                        &[&id, &a.force],
                    )
                    .await
                    .map_err(api::sql("remove_node"))?;
                } else {
                    tracing::info!("Node {id} is not registered on the monitor any more");
                }
            }
            Err(e) if a.force => tracing::warn!(
                "Cannot reach the monitor ({:#}): dropping the local node anyway (--force); the monitor still lists node {id}",
                e.error
            ),
            Err(e) => {
                return Err(Failure::new(
                    e.code,
                    e.error.context(
                        "cannot reach the monitor to remove the node: start it, or use --force to drop the local node anyway",
                    ),
                ))
            }
        }
    }

    // A running service finishes the drop by itself, then exits.
    if let Some(info) = super::service_ctl::live_service(&node.paths.pid) {
        tracing::info!(
            "Waiting up to {} s for the pg_autoctl service (pid {}) to stop Postgres and exit",
            a.wait,
            info.pid
        );
        if !wait_exit(info.pid, &node.paths.pid, Duration::from_secs(a.wait)).await {
            tracing::warn!(
                "The pg_autoctl service (pid {}) is still running after {} s: stopping it",
                info.pid,
                a.wait
            );
            stop_service(&node.paths).await?;
        }
    }

    // Without a service, report `dropped` for the node ourselves.
    if registered && !a.force {
        finish_on_monitor(&node).await?;
    }
    stop_postgres(&node.cfg.pg.pg_ctl, &node.paths.pgdata).await?;
    node.state.current_role = NodeState::Dropped;
    node.state.assigned_role = NodeState::Dropped;

    if a.destroy {
        // PGDATA as created (a real path), then the path given, in case it
        // is a symbolic link to it.
        for p in [
            node.cfg.pg.pgdata.clone(),
            node.paths.pgdata.clone(),
            node.paths.state.clone(),
            node.paths.init.clone(),
            node.paths.config.clone(),
        ] {
            if !p.as_os_str().is_empty() {
                remove(&p)?;
            }
        }
        tracing::info!("Node {id} has been dropped and its files removed");
    } else {
        node.state.save(&node.paths.state).code(exit::BAD_STATE)?;
        tracing::info!(
            "Node {id} has been dropped; its PGDATA and configuration are kept: \
             `pg_autoctl drop node --destroy --pgdata {}` removes them, `pg_autoctl create postgres` registers it again",
            node.paths.pgdata.display()
        );
    }
    Ok(())
}

/// Report `dropped` to the monitor until it forgets the node.
async fn finish_on_monitor(node: &LocalNode) -> Result<(), Failure> {
    let mut monitor = node.monitor().await?;
    let report = crate::monitor::Report {
        formation: node.cfg.formation.clone(),
        node_id: node.state.node_id,
        group_id: node.state.group_id,
        state: NodeState::Dropped,
        pg_is_running: false,
        tli: 0,
        lsn: pgaf_fsm::Lsn::ZERO,
        rep_state: String::new(),
        upstream_node_id: 0,
        upstream_age_ms: -1,
        streaming: None,
    };
    for _ in 0..3 {
        match monitor.node_active(&report).await {
            Ok(_) => {}
            // The monitor does not know the node any more: done.
            Err(e) if e.is_unknown_node() => return Ok(()),
            Err(e) => return Err(Failure::new(exit::MONITOR, e)),
        }
        let nodes = api::current_state(monitor.client(), &node.cfg.formation, None).await?;
        if !nodes.iter().any(|n| n.node_id == node.state.node_id) {
            return Ok(());
        }
    }
    Err(Failure::new(
        exit::MONITOR,
        anyhow::anyhow!(
            "the monitor still lists node {} after it reported \"dropped\": see pg_autoctl show events, or use --force",
            node.state.node_id
        ),
    ))
}

async fn drop_monitor(a: DropMonitorArgs) -> CmdResult {
    let pgdata = a.pgdata.require()?;
    let paths = NodePaths::new(&pgdata);
    let cfg = match Config::load(&paths.config) {
        Ok(Config::Monitor(m)) => m,
        Ok(Config::Keeper(_)) => {
            return Err(Failure::usage(format!(
                "{} is a Postgres node, not the monitor: use pg_autoctl drop node",
                pgdata.display()
            )))
        }
        Err(e) => {
            return Err(Failure::new(
                exit::BAD_CONFIG,
                anyhow::anyhow!("{e}; is {} the monitor?", pgdata.display()),
            ))
        }
    };
    stop_service(&paths).await?;
    stop_postgres(&cfg.pg.pg_ctl, &paths.pgdata).await?;
    if a.destroy {
        remove(&cfg.pg.pgdata)?;
        remove(&paths.pgdata)?;
        remove(&paths.config)?;
        tracing::info!("The monitor has been dropped and its files removed");
    } else {
        tracing::info!(
            "The monitor is stopped; its files are kept: `pg_autoctl run` starts it again, \
             `pg_autoctl drop monitor --destroy` removes them"
        );
    }
    Ok(())
}
