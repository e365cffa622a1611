//! `pg_autoctl disable monitor` and `pg_autoctl enable monitor <uri>`: run
//! a node without a monitor, and attach it to a (new) monitor again. The
//! way to replace a monitor that is lost for good (docs/operations.md):
//! disable the monitor on every node, standbys first, create a new monitor,
//! enable it on the primary first, then on the standbys.
//!
//! `disable monitor` sets `pg_autoctl.monitor = PG_AUTOCTL_DISABLED` and
//! signals the service, which keeps the node in its current role (the
//! goal then comes from the state file, see [`crate::node::service`]).
//! With `--force` the node is first removed from a monitor that still
//! answers.
//!
//! `enable monitor <uri>` registers the node with its old node id, as
//! `single` when Postgres is a primary and as `wait_standby` when it is in
//! recovery (then waits for the new monitor to assign `catchingup`), writes
//! the URI and signals the service, which resumes the node-active protocol
//! from its current role: a primary goes to `single`, a standby to
//! `catchingup` then `secondary`, following its primary without a new base
//! backup.

use super::api;
use super::exit::{self, CmdResult, Code, Failure};
use super::local_node::LocalNode;
use super::{Globals, PgdataArg};
use crate::config::{Config, MONITOR_DISABLED};
use crate::monitor::{Monitor, Report};
use pgaf_fsm::NodeState;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, clap::Args)]
pub struct DisableArgs {
    #[command(flatten)]
    pub pgdata: PgdataArg,
    /// Remove the node from the monitor, and disable it even when the monitor cannot be reached
    #[arg(long)]
    pub force: bool,
}

#[derive(Debug, Clone, clap::Args)]
pub struct EnableArgs {
    #[command(flatten)]
    pub pgdata: PgdataArg,
    /// Accepted for compatibility; unused
    #[arg(long, hide = true)]
    pub allow_failover: bool,
    /// The new monitor's URI (pg_autoctl show uri --formation monitor on the monitor)
    #[arg(value_name = "MONITOR URI")]
    pub uri: String,
}

/// How long `enable monitor` waits for the monitor to accept a standby.
const STANDBY_WAIT: Duration = Duration::from_secs(300);

/// The keeper node of `pgdata`, refusing the monitor node (exit 2).
fn node(pgdata: &PgdataArg, command: &str) -> Result<LocalNode, Failure> {
    if let Ok((_, Config::Monitor(_))) = pgdata.load_config() {
        return Err(Failure::new(
            exit::BAD_CONFIG,
            anyhow::anyhow!("The command `pg_autoctl {command}` does not apply to a monitor node."),
        ));
    }
    LocalNode::load(pgdata, command)
}

/// Tell a running service to read its configuration again.
fn reload_service(node: &LocalNode) {
    if let Some(info) = super::service_ctl::live_service(&node.paths.pid) {
        match super::service_ctl::signal(info.pid, libc::SIGHUP) {
            Ok(()) => tracing::info!(
                "Sent SIGHUP to the pg_autoctl service (pid {}) to reload its configuration",
                info.pid
            ),
            Err(e) => tracing::error!("Failed to reload the pg_autoctl service: {e}"),
        }
    }
}

pub async fn disable(a: DisableArgs, _g: Globals) -> CmdResult {
    let mut node = node(&a.pgdata, "disable monitor")?;
    if node.monitor_disabled() {
        return Err(Failure::new(
            exit::BAD_CONFIG,
            anyhow::anyhow!("Monitor is disabled in the configuration already"),
        ));
    }
    let id = node.state.node_id;
    match node.monitor().await {
        Ok(m) => {
            let rows = api::current_state(m.client(), &node.cfg.formation, None)
                .await
                .code(exit::MONITOR);
            match rows {
                Ok(rows) => {
                    if let Some(me) = rows.iter().find(|r| r.node_id == id) {
                        if !a.force {
                            return Err(Failure::new(
                                exit::BAD_STATE,
                                anyhow::anyhow!(
                                    "Found node {id} \"{}\" ({}:{}) on the monitor: use --force to \
                                     remove the node from the monitor",
                                    me.name,
                                    me.host,
                                    me.port
                                ),
                            ));
                        }
                        let writable =
                            |s: &str| s.parse::<NodeState>().is_ok_and(|s| s.can_take_writes());
                        let others: Vec<_> = rows
                            .iter()
                            .filter(|r| r.node_id != id && r.group_id == me.group_id)
                            .collect();
                        if (writable(&me.reported) || writable(&me.assigned)) && !others.is_empty()
                        {
                            // The monitor would promote one of them while
                            // this primary goes on without it: two primaries.
                            return Err(Failure::new(
                                exit::BAD_STATE,
                                anyhow::anyhow!(
                                    "node {id} is the primary of its group and the monitor still \
                                     manages {} other node(s) ({}): disable the monitor on them \
                                     first, the primary last",
                                    others.len(),
                                    others
                                        .iter()
                                        .map(|r| r.name.as_str())
                                        .collect::<Vec<_>>()
                                        .join(", ")
                                ),
                            ));
                        }
                        tracing::info!(
                            "Removing node {id} \"{}\" ({}:{}) from the monitor",
                            me.name,
                            me.host,
                            me.port
                        );
                        m.client()
                            .query_one(
                                "SELECT pgautofailover.remove_node($1::bigint, true)",
                                &[&id],
                            )
                            .await
                            .map_err(api::sql("remove_node"))
                            .code(exit::MONITOR)?;
                    }
                }
                Err(f) if a.force => tracing::info!(
                    "Failed to contact the monitor ({:#}), disabling it as requested",
                    f.error
                ),
                Err(f) => return Err(f),
            }
        }
        Err(f) if a.force => tracing::info!(
            "Failed to contact the monitor ({:#}), disabling it as requested",
            f.error
        ),
        Err(f) => {
            return Err(Failure::new(
                exit::MONITOR,
                anyhow::anyhow!(
                    "Failed to contact the monitor, use --force to continue: {:#}",
                    f.error
                ),
            ))
        }
    }
    node.cfg.monitor = MONITOR_DISABLED.into();
    Config::Keeper(node.cfg.clone())
        .save(&node.paths.config)
        .code(exit::BAD_CONFIG)?;
    tracing::info!(
        "Disabled the monitor for node {id}: it keeps its role \"{}\"; assign another one with \
         pg_autoctl do fsm assign, or attach a monitor with pg_autoctl enable monitor",
        node.state.current_role
    );
    reload_service(&node);
    Ok(())
}

pub async fn enable(a: EnableArgs, _g: Globals) -> CmdResult {
    let mut node = node(&a.pgdata, "enable monitor")?;
    if !node.monitor_disabled() {
        return Err(Failure::new(
            exit::BAD_CONFIG,
            anyhow::anyhow!(
                "Failed to enable monitor \"{}\": there is already a monitor enabled",
                pgaf_pgconn::redact(&node.cfg.monitor)
            ),
        ));
    }
    pgaf_pgconn::parse(&a.uri).map_err(|e| {
        Failure::usage(format!(
            "Failed to parse the new monitor connection string: {e}"
        ))
    })?;
    let local = crate::pg::local::Local::connect(&node.paths.pgdata)
        .await
        .map_err(|e| {
            Failure::new(
                exit::MONITOR,
                anyhow::anyhow!(
                    "Failed to get the local Postgres metadata ({e}): Postgres must run \
                     (pg_autoctl run) to register with a monitor"
                ),
            )
        })?;
    let meta = local.metadata().await.code(exit::MONITOR)?;
    drop(local);
    let sysid = if node.state.system_identifier != 0 {
        node.state.system_identifier
    } else {
        crate::pg::bin::PgBin::from_pg_ctl(&node.cfg.pg.pg_ctl)
            .ok()
            .and_then(|b| crate::pg::control::controldata(&b, &node.paths.pgdata).ok())
            .map_or(0, |c| c.system_identifier as i64)
    };
    let initial = if meta.in_recovery {
        NodeState::WaitStandby
    } else {
        NodeState::Single
    };
    let mut cfg = node.cfg.clone();
    cfg.monitor = a.uri.clone();
    let mut monitor = Monitor::connect(&a.uri, super::show::CONNECT_TIMEOUT)
        .await
        .code(exit::MONITOR)?;
    monitor.check_version().await.code(exit::MONITOR)?;
    let assigned = super::internal::monitor::register(
        &node.paths,
        &cfg,
        &monitor,
        initial,
        node.state.node_id,
        sysid,
        false,
    )
    .await?;
    tracing::info!(
        "Successfully registered to the monitor with nodeId {}",
        assigned.node_id
    );
    if initial == NodeState::WaitStandby && assigned.goal != NodeState::CatchingUp {
        wait_for_catchingup(&mut node, &mut monitor, &meta).await?;
    }
    node.cfg = cfg;
    Config::Keeper(node.cfg.clone())
        .save(&node.paths.config)
        .code(exit::BAD_CONFIG)?;
    reload_service(&node);
    Ok(())
}

/// Report `wait_standby` until the monitor has the primary ready for this
/// standby and assigns `catchingup`.
async fn wait_for_catchingup(
    node: &mut LocalNode,
    monitor: &mut Monitor,
    meta: &crate::pg::local::Metadata,
) -> CmdResult {
    let state = crate::state::KeeperState::load(&node.paths.state)
        .code(exit::BAD_STATE)?
        .unwrap_or_else(|| node.state.clone());
    let started = Instant::now();
    let mut notices = 0u32;
    loop {
        let report = Report {
            formation: node.cfg.formation.clone(),
            node_id: state.node_id,
            group_id: state.group_id,
            state: NodeState::WaitStandby,
            pg_is_running: true,
            tli: meta.tli,
            lsn: meta.lsn,
            rep_state: String::new(),
            upstream_node_id: 0,
            upstream_age_ms: -1,
            streaming: None,
        };
        let a = monitor.node_active(&report).await.code(exit::MONITOR)?;
        if a.goal == NodeState::CatchingUp {
            // The service gets `catchingup` again at its first report.
            return Ok(());
        }
        if started.elapsed() > STANDBY_WAIT {
            return Err(Failure::new(
                exit::MONITOR,
                anyhow::anyhow!(
                    "the monitor did not accept this standby within {}s (goal \"{}\"): the primary \
                     must run pg_autoctl run with the new monitor enabled first",
                    STANDBY_WAIT.as_secs(),
                    a.goal
                ),
            ));
        }
        notices += 1;
        if notices % 30 == 3 {
            tracing::info!(
                "Still waiting for the monitor to drive us to state \"catchingup\": make sure the \
                 primary runs pg_autoctl run and has the new monitor enabled"
            );
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}
