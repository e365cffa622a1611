//! `pg_autoctl do monitor ...`: one call of the monitor's API for the node
//! in `--pgdata`: `get primary|others|coordinator`, `register <state>`,
//! `active` (one node-active report), `version`, and `parse-notification`
//! (decode a `state` NOTIFY payload).

use crate::cli::exit::{self, CmdResult, Code, Failure};
use crate::cli::{Globals, PgdataArg};
use crate::config::{Config, KeeperConfig, MONITOR_DISABLED};
use crate::monitor::{Assigned, Monitor, Registration, Report};
use crate::paths::NodePaths;
use crate::state::{now_unix, KeeperState};
use pgaf_fsm::NodeState;
use serde_json::json;

#[derive(Debug, clap::Subcommand)]
pub enum MonitorCmd {
    /// Get information from the monitor
    #[command(subcommand)]
    Get(GetCmd),
    /// Register the current node with the monitor
    Register(RegisterArgs),
    /// Call in the pg_auto_failover Node Active protocol
    Active(Pgdata),
    /// Check that the monitor's extension is the expected version; update it if not
    Version(Pgdata),
    /// Parse a raw notification message
    ParseNotification(NotificationArgs),
}

#[derive(Debug, clap::Subcommand)]
pub enum GetCmd {
    /// Get the primary node from pg_auto_failover in given formation/group
    Primary(Pgdata),
    /// Get the other nodes from the pg_auto_failover group of hostname/port
    Others(Pgdata),
    /// Get the coordinator node from the pg_auto_failover formation
    Coordinator(Pgdata),
}

#[derive(Debug, Clone, clap::Args)]
pub struct Pgdata {
    #[command(flatten)]
    pub pgdata: PgdataArg,
}

#[derive(Debug, Clone, clap::Args)]
pub struct RegisterArgs {
    #[command(flatten)]
    pub pgdata: PgdataArg,
    /// The state to register in (init, single, wait_standby)
    #[arg(value_name = "initial state")]
    pub state: String,
}

#[derive(Debug, Clone, clap::Args)]
pub struct NotificationArgs {
    /// The payload of a notification on the monitor's "state" channel
    pub payload: String,
}

impl MonitorCmd {
    pub(super) fn pgdata(&self) -> Option<&PgdataArg> {
        match self {
            MonitorCmd::Get(GetCmd::Primary(a) | GetCmd::Others(a) | GetCmd::Coordinator(a))
            | MonitorCmd::Active(a)
            | MonitorCmd::Version(a) => Some(&a.pgdata),
            MonitorCmd::Register(a) => Some(&a.pgdata),
            MonitorCmd::ParseNotification(_) => None,
        }
    }

    pub async fn run(self, g: Globals) -> CmdResult {
        match self {
            MonitorCmd::Get(GetCmd::Primary(a)) => get_primary(&a.pgdata, g).await,
            MonitorCmd::Get(GetCmd::Others(a)) => get_others(&a.pgdata, g).await,
            MonitorCmd::Get(GetCmd::Coordinator(a)) => get_coordinator(&a.pgdata, g).await,
            MonitorCmd::Register(a) => register_cmd(a, g).await,
            MonitorCmd::Active(a) => active(&a.pgdata, g).await,
            MonitorCmd::Version(a) => version(&a.pgdata).await,
            MonitorCmd::ParseNotification(a) => parse_notification(&a.payload),
        }
    }
}

/// The keeper in `pgdata`, with a monitor (exit 2 otherwise).
fn keeper(pgdata: &PgdataArg) -> Result<(NodePaths, KeeperConfig), Failure> {
    let (paths, cfg) = pgdata.load_config()?;
    match cfg {
        Config::Keeper(k) if k.monitor == MONITOR_DISABLED => Err(Failure::new(
            exit::BAD_CONFIG,
            anyhow::anyhow!(
                "Monitor is disabled in the configuration: enable one with \
                 pg_autoctl enable monitor <uri>"
            ),
        )),
        Config::Keeper(k) => Ok((paths, k)),
        Config::Monitor(_) => Err(Failure::new(
            exit::BAD_CONFIG,
            anyhow::anyhow!(
                "{} is the monitor itself: give the --pgdata of a Postgres node",
                paths.pgdata.display()
            ),
        )),
    }
}

async fn connect(cfg: &KeeperConfig) -> Result<Monitor, Failure> {
    Monitor::connect(&cfg.monitor, crate::cli::show::CONNECT_TIMEOUT)
        .await
        .code(exit::MONITOR)
}

fn group(cfg: &KeeperConfig, paths: &NodePaths) -> i32 {
    cfg.group.unwrap_or_else(|| {
        KeeperState::load(&paths.state)
            .ok()
            .flatten()
            .map_or(0, |s| s.group_id)
    })
}

async fn get_primary(pgdata: &PgdataArg, g: Globals) -> CmdResult {
    let (paths, cfg) = keeper(pgdata)?;
    let group = group(&cfg, &paths);
    let m = connect(&cfg).await?;
    let p = m
        .get_primary(&cfg.formation, group)
        .await
        .code(exit::MONITOR)?
        .ok_or_else(|| {
            Failure::new(
                exit::MONITOR,
                anyhow::anyhow!(
                    "Failed to get the primary node from the monitor: formation \"{}\" group {group} \
                     has no writable node right now",
                    cfg.formation
                ),
            )
        })?;
    if g.json {
        println!(
            "{}",
            crate::cli::json::pretty(&json!({
                "formation": cfg.formation,
                "groupId": group,
                "nodeId": p.id,
                "name": p.name,
                "host": p.host,
                "port": p.port,
            }))
        );
    } else {
        println!("{}/{group} {}:{}", cfg.formation, p.host, p.port);
    }
    Ok(())
}

async fn get_others(pgdata: &PgdataArg, g: Globals) -> CmdResult {
    let (paths, cfg) = keeper(pgdata)?;
    let state = crate::cli::local_node::require_state(&paths, exit::BAD_STATE)?;
    let m = connect(&cfg).await?;
    let others = m.get_other_nodes(state.node_id).await.code(exit::MONITOR)?;
    if g.json {
        let rows: Vec<_> = others
            .iter()
            .map(|n| {
                json!({
                    "node_id": n.id,
                    "node_lsn": n.lsn.to_string(),
                    "node_host": n.host,
                    "node_name": n.name,
                    "node_port": n.port,
                    "node_is_primary": n.is_primary,
                })
            })
            .collect();
        println!(
            "{}",
            crate::cli::json::pretty(&serde_json::Value::Array(rows))
        );
    } else {
        println!("{}", crate::nodes_file::table(&others));
    }
    Ok(())
}

/// The formation's coordinator: in a Postgres formation, the primary of
/// group 0 (what the monitor's `get_coordinator` returns).
async fn get_coordinator(pgdata: &PgdataArg, g: Globals) -> CmdResult {
    let (paths, cfg) = keeper(pgdata)?;
    let m = connect(&cfg).await?;
    let rows = m
        .client()
        .query(
            "SELECT node_host::text, node_port::int FROM pgautofailover.get_coordinator($1)",
            &[&cfg.formation],
        )
        .await
        .code(exit::MONITOR)?;
    let row = match rows.as_slice() {
        [row] => row,
        [] => {
            return Err(Failure::new(
                exit::MONITOR,
                anyhow::anyhow!(
                    "the monitor returned an empty result set, there's no known available \
                     coordinator node at this time in formation \"{}\"",
                    cfg.formation
                ),
            ))
        }
        _ => {
            return Err(Failure::new(
                exit::MONITOR,
                anyhow::anyhow!(
                    "the monitor lists {} coordinators in formation \"{}\"",
                    rows.len(),
                    cfg.formation
                ),
            ))
        }
    };
    let host: String = row.try_get(0).code(exit::MONITOR)?;
    let port: i32 = row.try_get(1).code(exit::MONITOR)?;
    if g.json {
        println!(
            "{}",
            crate::cli::json::pretty(&json!({
                "formation": cfg.formation,
                "groupId": group(&cfg, &paths),
                "host": host,
                "port": port,
            }))
        );
    } else {
        println!("{} {host}:{port}", cfg.formation);
    }
    Ok(())
}

/// A report of the node's current state; returns the monitor's answer and
/// records it in the state file.
pub async fn node_active(
    paths: &NodePaths,
    cfg: &KeeperConfig,
    mut state: KeeperState,
) -> Result<Assigned, Failure> {
    let ready = crate::pg::control::PostmasterPid::read(&paths.pgdata).is_some_and(|p| p.ready());
    let meta = if ready {
        match crate::pg::local::Local::connect(&paths.pgdata).await {
            Ok(l) => l.metadata().await.ok(),
            Err(_) => None,
        }
    } else {
        None
    };
    let report = Report::of(&cfg.formation, &state, ready, meta.as_ref(), &[], None);
    let mut m = connect(cfg).await?;
    let a = m.node_active(&report).await.map_err(|e| {
        Failure::new(
            exit::PGSQL,
            anyhow::anyhow!("Failed to get the goal state from the monitor: {e}"),
        )
    })?;
    state.assigned_role = a.goal;
    state.group_id = a.group_id;
    state.last_monitor_contact = now_unix();
    if let Err(e) = state.save(&paths.state) {
        tracing::error!("{e}");
    }
    Ok(a)
}

async fn active(pgdata: &PgdataArg, g: Globals) -> CmdResult {
    let (paths, cfg) = keeper(pgdata)?;
    let state = crate::cli::local_node::require_state(&paths, exit::BAD_CONFIG)?;
    let a = node_active(&paths, &cfg, state).await?;
    print_assigned(&cfg, &a, g);
    Ok(())
}

fn print_assigned(cfg: &KeeperConfig, a: &Assigned, g: Globals) {
    if g.json {
        println!(
            "{}",
            crate::cli::json::pretty(&json!({
                "formation": cfg.formation,
                "host": cfg.hostname,
                "port": cfg.pg.port,
                "nodeId": a.node_id,
                "groupId": a.group_id,
                "assigned_role": a.goal.as_str(),
            }))
        );
    } else {
        println!(
            "{}/{} {}:{} {}:{} {}",
            cfg.formation,
            cfg.group.unwrap_or(a.group_id),
            cfg.hostname,
            cfg.pg.port,
            a.node_id,
            a.group_id,
            a.goal
        );
    }
}

/// Register the node of `cfg` in `initial` state, as `desired_node_id`
/// when it is positive; writes the node id and group into the state file
/// (creating it when missing), and the goal when `record_goal` (a service
/// running without a monitor would act on it: `enable monitor` leaves the
/// goal to the monitor's next answer).
pub async fn register(
    paths: &NodePaths,
    cfg: &KeeperConfig,
    monitor: &Monitor,
    initial: NodeState,
    desired_node_id: i64,
    sysid: i64,
    record_goal: bool,
) -> Result<Assigned, Failure> {
    let reg = Registration {
        formation: &cfg.formation,
        host: &cfg.hostname,
        port: cfg.pg.port,
        dbname: &cfg.pg.dbname,
        name: &cfg.name,
        sysidentifier: sysid,
        desired_node_id,
        desired_group_id: cfg.group.unwrap_or(-1),
        initial_state: initial,
        candidate_priority: 50,
        replication_quorum: true,
    };
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(900);
    let a = loop {
        match monitor.register(&reg).await {
            Ok(a) => break a,
            Err(e) if e.is_busy() && tokio::time::Instant::now() < deadline => {
                tracing::warn!(
                    "Failed to register node because the monitor is already registering another \
                     standby, retrying: {e}"
                );
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
            }
            Err(e) => {
                return Err(Failure::new(
                    exit::MONITOR,
                    anyhow::anyhow!("Failed to register to the monitor: {e}"),
                ))
            }
        }
    };
    let mut state = KeeperState::load(&paths.state)
        .code(exit::BAD_STATE)?
        .unwrap_or_else(|| KeeperState::new(a.node_id, a.group_id));
    state.node_id = a.node_id;
    state.group_id = a.group_id;
    if record_goal {
        state.assigned_role = a.goal;
    }
    state.last_monitor_contact = now_unix();
    if state.system_identifier == 0 {
        state.system_identifier = sysid;
    }
    state.save(&paths.state).code(exit::BAD_STATE)?;
    tracing::info!(
        "Registered node {} \"{}\" ({}:{}) in formation \"{}\", group {}, state \"{}\"",
        a.node_id,
        a.name,
        cfg.hostname,
        cfg.pg.port,
        cfg.formation,
        a.group_id,
        a.goal
    );
    Ok(a)
}

async fn register_cmd(a: RegisterArgs, g: Globals) -> CmdResult {
    let (paths, cfg) = keeper(&a.pgdata)?;
    let initial: NodeState = match a.state.parse() {
        Ok(s @ (NodeState::Init | NodeState::Single | NodeState::WaitStandby)) => s,
        _ => {
            return Err(Failure::usage(format!(
                "\"{}\" is not a state to register in: use init, single or wait_standby",
                a.state
            )))
        }
    };
    let pm = crate::pg::control::PostmasterPid::read(&paths.pgdata).filter(|p| p.ready());
    if initial == NodeState::WaitStandby && pm.is_none() {
        return Err(Failure::new(
            exit::BAD_CONFIG,
            anyhow::anyhow!(
                "registering in wait_standby needs Postgres running in {}",
                paths.pgdata.display()
            ),
        ));
    }
    let sysid = crate::pg::bin::PgBin::from_pg_ctl(&cfg.pg.pg_ctl)
        .ok()
        .and_then(|b| crate::pg::control::controldata(&b, &paths.pgdata).ok())
        .map_or(0, |c| c.system_identifier as i64);
    let desired = KeeperState::load(&paths.state)
        .ok()
        .flatten()
        .map_or(-1, |s| s.node_id);
    let m = connect(&cfg).await?;
    let assigned = register(&paths, &cfg, &m, initial, desired, sysid, true).await?;
    print_assigned(&cfg, &assigned, g);
    Ok(())
}

/// The extension version this pg_autoctl expects, or the test override.
fn expected_version() -> String {
    match std::env::var("PG_AUTOCTL_EXTENSION_VERSION") {
        Ok(v) if super::enabled() && !v.is_empty() => v,
        _ => crate::cli::EXTENSION_VERSION.to_string(),
    }
}

async fn version(pgdata: &PgdataArg) -> CmdResult {
    let (_, cfg) = pgdata.load_config()?;
    let (local, remote);
    let client = match &cfg {
        Config::Monitor(m) => {
            local = crate::pg::local::Local::connect_db(&m.pg.pgdata, "pg_auto_failover")
                .await
                .code(exit::BAD_ARGS)?;
            local.client()
        }
        Config::Keeper(_) => {
            let (_, k) = keeper(pgdata).map_err(|f| Failure::new(exit::BAD_ARGS, f.error))?;
            remote = connect(&k)
                .await
                .map_err(|f| Failure::new(exit::BAD_ARGS, f.error))?;
            remote.client()
        }
    };
    let row = client
        .query_one(
            "SELECT default_version::text, installed_version::text
               FROM pg_available_extensions WHERE name = 'pgautofailover'",
            &[],
        )
        .await
        .code(exit::MONITOR)?;
    let installed: Option<String> = row.try_get(1).code(exit::MONITOR)?;
    let installed = installed.unwrap_or_default();
    let wanted = expected_version();
    if installed == wanted {
        tracing::info!(
            "The version of extension \"pgautofailover\" is \"{installed}\" on the monitor"
        );
        println!("{installed}");
        return Ok(());
    }
    tracing::warn!(
        "Version of extension \"pgautofailover\" is \"{installed}\" on the monitor, \
         expected \"{wanted}\": updating it"
    );
    let quoted = wanted.replace('"', "\"\"");
    client
        .batch_execute(&format!(
            "ALTER EXTENSION pgautofailover UPDATE TO \"{quoted}\""
        ))
        .await
        .map_err(|e| {
            Failure::new(
                exit::MONITOR,
                anyhow::anyhow!(
                    "Failed to update extension \"pgautofailover\" to version \"{wanted}\": {e}; \
                     run pg_autoctl on the monitor's host to update it as its owner"
                ),
            )
        })?;
    tracing::info!("Updated extension \"pgautofailover\" to version \"{wanted}\"");
    println!("{wanted}");
    Ok(())
}

fn parse_notification(payload: &str) -> CmdResult {
    let n = pgaf_fsm::notify::parse_state_payload(payload).ok_or_else(|| {
        Failure::usage(format!(
            "Failed to parse notification \"{payload}\": expected a JSON object with \
             \"type\": \"state\" and the formation, name, host, reportedState, goalState and \
             health of a node"
        ))
    })?;
    tracing::info!(
        "New state for node {} \"{}\" ({}:{}): {} ➜ {}",
        n.node_id,
        n.name,
        n.host,
        n.port,
        n.reported,
        n.goal
    );
    println!(
        "{}",
        crate::cli::json::pretty(&json!({
            "name": n.name,
            "hostname": n.host,
            "port": n.port,
            "formationid": n.formation,
            "reportedState": n.reported.as_str(),
            "goalState": n.goal.as_str(),
        }))
    );
    Ok(())
}
