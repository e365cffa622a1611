//! `pg_autoctl do fsm ...`: the keeper's state file and goal by hand.
//!
//! * `init` writes a fresh state file (node -1, `init`);
//! * `state` prints it with the local Postgres, as upstream's JSON;
//! * `list` and `gv` print the transitions of [`pgaf_fsm::keeper`];
//! * `assign <state>` writes the goal and waits (30 s) for the running
//!   service to reach it: the way to drive a node without a monitor;
//! * `step` reports to the monitor once and records the goal it gets;
//! * `nodes get|set` read and write the nodes file of a node without a
//!   monitor ([`crate::nodes_file`]).

use crate::cli::exit::{self, CmdResult, Code, Failure};
use crate::cli::{Globals, PgdataArg};
use crate::config::{Config, KeeperConfig, MONITOR_DISABLED};
use crate::paths::NodePaths;
use crate::state::KeeperState;
use pgaf_fsm::keeper::TABLE;
use pgaf_fsm::NodeState;
use std::time::{Duration, Instant};

#[derive(Debug, clap::Subcommand)]
pub enum FsmCmd {
    /// Initialize the keeper's state on-disk
    Init(Pgdata),
    /// Read the keeper's state from disk and display it
    State(Pgdata),
    /// List reachable FSM states from current state
    List(Pgdata),
    /// Output the FSM as a .gv program suitable for graphviz/dot
    Gv,
    /// Assign a new goal state to the keeper
    Assign(AssignArgs),
    /// Report to the monitor once and record the goal state it assigns
    Step(Pgdata),
    /// Manually manage the keeper's nodes list
    #[command(subcommand)]
    Nodes(NodesCmd),
}

#[derive(Debug, clap::Subcommand)]
pub enum NodesCmd {
    /// Get the list of nodes from file (see --disable-monitor)
    Get(Pgdata),
    /// Set the list of nodes to file (see --disable-monitor)
    Set(NodesSetArgs),
}

#[derive(Debug, Clone, clap::Args)]
pub struct Pgdata {
    #[command(flatten)]
    pub pgdata: PgdataArg,
}

#[derive(Debug, Clone, clap::Args)]
pub struct AssignArgs {
    #[command(flatten)]
    pub pgdata: PgdataArg,
    /// The goal state (init, single, wait_standby, primary, ...)
    #[arg(value_name = "goal state")]
    pub goal: String,
}

#[derive(Debug, Clone, clap::Args)]
pub struct NodesSetArgs {
    #[command(flatten)]
    pub pgdata: PgdataArg,
    /// A JSON array of {node_id, node_name, node_host, node_port, node_lsn, node_is_primary}
    #[arg(value_name = "nodes.json")]
    pub file: std::path::PathBuf,
}

/// How long `assign` waits for the service to reach the goal.
const ASSIGN_WAIT: Duration = Duration::from_secs(30);
/// How long `step` waits for the running service's next round.
const STEP_WAIT: Duration = Duration::from_secs(10);

impl FsmCmd {
    pub(super) fn pgdata(&self) -> Option<&PgdataArg> {
        match self {
            FsmCmd::Init(a) | FsmCmd::State(a) | FsmCmd::List(a) | FsmCmd::Step(a) => {
                Some(&a.pgdata)
            }
            FsmCmd::Assign(a) => Some(&a.pgdata),
            FsmCmd::Nodes(NodesCmd::Get(a)) => Some(&a.pgdata),
            FsmCmd::Nodes(NodesCmd::Set(a)) => Some(&a.pgdata),
            FsmCmd::Gv => None,
        }
    }

    pub async fn run(self, _g: Globals) -> CmdResult {
        match self {
            FsmCmd::Init(a) => init(&a.pgdata),
            FsmCmd::State(a) => {
                let (paths, cfg) = keeper(&a.pgdata)?;
                let state = read_state(&paths, exit::BAD_CONFIG)?;
                print_state(&paths, &cfg, &state);
                Ok(())
            }
            FsmCmd::List(a) => {
                let (paths, _) = keeper(&a.pgdata)?;
                let state = read_state(&paths, exit::BAD_STATE)?;
                print!("{}", list(state.current_role));
                Ok(())
            }
            FsmCmd::Gv => {
                print!("{}", gv());
                Ok(())
            }
            FsmCmd::Assign(a) => assign(a).await,
            FsmCmd::Step(a) => step(&a.pgdata).await,
            FsmCmd::Nodes(NodesCmd::Get(a)) => {
                let (paths, cfg) = keeper(&a.pgdata)?;
                require_disabled(&cfg)?;
                let own = KeeperState::load(&paths.state)
                    .ok()
                    .flatten()
                    .map_or(0, |s| s.node_id);
                let nodes =
                    crate::nodes_file::load(&paths.nodes, own).code(exit::INTERNAL_ERROR)?;
                println!("{}", crate::nodes_file::table(&nodes));
                Ok(())
            }
            FsmCmd::Nodes(NodesCmd::Set(a)) => nodes_set(a),
        }
    }
}

/// The configuration of the keeper in `pgdata` (exit 2 otherwise).
fn keeper(pgdata: &PgdataArg) -> Result<(NodePaths, KeeperConfig), Failure> {
    let (paths, cfg) = pgdata.load_config()?;
    match cfg {
        Config::Keeper(k) => Ok((paths, k)),
        Config::Monitor(_) => Err(Failure::new(
            exit::BAD_CONFIG,
            anyhow::anyhow!(
                "{} is a monitor: the keeper's state exists on Postgres nodes only",
                paths.pgdata.display()
            ),
        )),
    }
}

fn read_state(paths: &NodePaths, code: i32) -> Result<KeeperState, Failure> {
    KeeperState::load(&paths.state).code(code)?.ok_or_else(|| {
        Failure::new(
            code,
            anyhow::anyhow!(
                "Failed to read Keeper state from file \"{}\": it does not exist",
                paths.state.display()
            ),
        )
    })
}

fn require_disabled(cfg: &KeeperConfig) -> Result<(), Failure> {
    if cfg.monitor != MONITOR_DISABLED {
        return Err(Failure::new(
            exit::BAD_CONFIG,
            anyhow::anyhow!(
                "The monitor is not disabled, there's no nodes file: the monitor lists the nodes \
                 (pg_autoctl show state)"
            ),
        ));
    }
    Ok(())
}

/// `{"postgres": {...}, "state": {...}}`.
pub fn state_document(paths: &NodePaths, cfg: &KeeperConfig, state: &KeeperState) -> String {
    let config = Config::Keeper(cfg.clone());
    let pm = crate::pg::control::PostmasterPid::read(&paths.pgdata)
        .filter(crate::pg::control::PostmasterPid::alive);
    let version = crate::pg::bin::PgBin::from_pg_ctl(&cfg.pg.pg_ctl)
        .map(|b| crate::cli::status::postgres_version(&b))
        .unwrap_or_default();
    let postgres = crate::cli::status::postgres_json(&config, paths, pm.as_ref(), None, &version);
    let pgversion = postgres["control"]["version"].as_u64().unwrap_or(0) as u32;
    crate::cli::json::pretty(&serde_json::json!({
        "postgres": postgres,
        "state": crate::cli::show::file::state_json(state, pgversion),
    }))
}

fn print_state(paths: &NodePaths, cfg: &KeeperConfig, state: &KeeperState) {
    println!("{}", state_document(paths, cfg, state));
}

fn init(pgdata: &PgdataArg) -> CmdResult {
    let (paths, cfg) = keeper(pgdata)?;
    if let Some(info) = crate::cli::service_ctl::live_service(&paths.pid) {
        return Err(Failure::new(
            exit::BAD_STATE,
            anyhow::anyhow!(
                "pg_autoctl is running for {} with pid {}: stop it before initializing its state",
                paths.pgdata.display(),
                info.pid
            ),
        ));
    }
    tracing::info!("Initializing an FSM state in \"{}\"", paths.state.display());
    let mut state = KeeperState::new(-1, 1);
    state.assigned_role = NodeState::Unknown;
    if let Some(dir) = paths.state.parent() {
        std::fs::create_dir_all(dir).code(exit::BAD_STATE)?;
    }
    state.save(&paths.state).code(exit::BAD_STATE)?;
    let state = read_state(&paths, exit::BAD_STATE)?;
    print_state(&paths, &cfg, &state);
    Ok(())
}

/// The transitions from `current`, as a table.
pub fn list(current: NodeState) -> String {
    let rows: Vec<_> = TABLE.iter().filter(|t| t.from == current).collect();
    let mut out = String::new();
    if !rows.is_empty() {
        out += &format!("{:>20} | {:>20} | Comment\n", "Current", "Reachable");
        out += &format!("{0}-+-{0}-+-{0}\n", "-".repeat(20));
        for t in rows {
            out += &format!(
                "{:>20} | {:>20} | {}\n",
                t.from.as_str(),
                t.to.as_str(),
                t.comment
            );
        }
    }
    out += "\n";
    out
}

/// The transition table as a graphviz program.
pub fn gv() -> String {
    let mut out = String::from(
        "digraph finite_state_machine\n{\n    size=\"12\"\n    ratio=\"fill\"\n    \
         node [shape = doubleoctagon, style=filled, color=\"bisque1\"]; init primary secondary; \n    \
         node [shape = octagon, style=filled color=\"bisque3\"]; \n",
    );
    for t in TABLE {
        out += &format!(
            "    {} -> {} [ label = \"{}\" ];\n",
            t.from.as_str(),
            t.to.as_str(),
            t.comment.replace('"', "\\\"")
        );
    }
    out += "}\n";
    out
}

async fn assign(a: AssignArgs) -> CmdResult {
    let (paths, cfg) = keeper(&a.pgdata)?;
    let goal: NodeState = match a.goal.parse() {
        Ok(NodeState::Unknown) | Err(_) => {
            return Err(Failure::usage(format!(
                "Failed to parse state string \"{}\": use one of {}",
                a.goal,
                NodeState::ALL
                    .iter()
                    .filter(|s| **s != NodeState::Unknown)
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )))
        }
        Ok(s) => s,
    };
    // Only the goal changes: the service owns every other field, and may
    // be writing them right now.
    read_state(&paths, exit::BAD_CONFIG)?;
    KeeperState::update(&paths.state, |s| s.assigned_role = goal).code(exit::BAD_STATE)?;
    if cfg.monitor != MONITOR_DISABLED {
        tracing::warn!(
            "This node has a monitor: it assigns the goal state on its next call and may \
             replace \"{goal}\""
        );
    }
    let started = Instant::now();
    let mut attempts = 0u32;
    loop {
        attempts += 1;
        let state = read_state(&paths, exit::BAD_STATE)?;
        if state.current_role == goal {
            print_state(&paths, &cfg, &state);
            return Ok(());
        }
        if started.elapsed() >= ASSIGN_WAIT {
            let hint = if crate::cli::service_ctl::live_service(&paths.pid).is_none() {
                ": pg_autoctl run is not running for this node, start it"
            } else {
                ": see the logs of pg_autoctl run"
            };
            return Err(Failure::new(
                exit::BAD_STATE,
                anyhow::anyhow!(
                    "Failed to reach goal state \"{goal}\" in {attempts} attempts and {}s, \
                     the node is in state \"{}\"{hint}",
                    ASSIGN_WAIT.as_secs(),
                    state.current_role
                ),
            ));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// One call of the node-active protocol for the node. When its service
/// runs, that is the service's next round (the service also carries out
/// the transition); otherwise this command reports the node's state and
/// records the goal, which `pg_autoctl run` then reaches.
async fn step(pgdata: &PgdataArg) -> CmdResult {
    let (paths, cfg) = keeper(pgdata)?;
    if cfg.monitor == MONITOR_DISABLED {
        return Err(Failure::new(
            exit::BAD_CONFIG,
            anyhow::anyhow!(
                "The command `pg_autoctl do fsm step` is meant to step as instructed by the \
                 monitor, and the monitor is disabled: see `pg_autoctl do fsm assign` instead"
            ),
        ));
    }
    let before = read_state(&paths, exit::PGCTL)?;
    if crate::cli::service_ctl::live_service(&paths.pid).is_some() {
        let deadline = Instant::now() + STEP_WAIT;
        loop {
            tokio::time::sleep(Duration::from_millis(100)).await;
            let now = read_state(&paths, exit::BAD_STATE)?;
            if now.last_monitor_contact > before.last_monitor_contact
                || now.assigned_role != before.assigned_role
                || now.current_role != before.current_role
            {
                println!("{} ➜ {}", before.current_role, now.assigned_role);
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(Failure::new(
                    exit::BAD_STATE,
                    anyhow::anyhow!(
                        "the pg_autoctl service did not reach the monitor within {}s: see its logs",
                        STEP_WAIT.as_secs()
                    ),
                ));
            }
        }
    }
    let assigned = super::monitor::node_active(&paths, &cfg, before.clone())
        .await
        .map_err(|f| Failure::new(exit::BAD_STATE, f.error))?;
    println!("{} ➜ {}", before.current_role, assigned.goal);
    if assigned.goal != before.current_role {
        tracing::info!(
            "pg_autoctl run carries out the transition to \"{}\" when it starts",
            assigned.goal
        );
    }
    Ok(())
}

fn nodes_set(a: NodesSetArgs) -> CmdResult {
    let (paths, cfg) = keeper(&a.pgdata)?;
    require_disabled(&cfg)?;
    let text = std::fs::read_to_string(&a.file).map_err(|e| {
        Failure::usage(format!(
            "Failed to read nodes array from file \"{}\": {e}",
            a.file.display()
        ))
    })?;
    let state = read_state(&paths, exit::BAD_CONFIG)?;
    let nodes = crate::nodes_file::parse(&text, state.node_id).code(exit::INTERNAL_ERROR)?;
    if let Some(dir) = paths.nodes.parent() {
        std::fs::create_dir_all(dir).code(exit::INTERNAL_ERROR)?;
    }
    crate::config::write_atomically(&paths.nodes, text.as_bytes(), 0o600).map_err(|e| {
        Failure::new(
            exit::INTERNAL_ERROR,
            anyhow::anyhow!(
                "Failed to write input nodes file \"{}\" to \"{}\": {e}",
                a.file.display(),
                paths.nodes.display()
            ),
        )
    })?;
    println!("{}", crate::nodes_file::table(&nodes));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_shows_the_rows_from_the_current_state() {
        let out = list(NodeState::Init);
        let mut lines = out.lines();
        assert_eq!(
            lines.next(),
            Some("             Current |            Reachable | Comment")
        );
        assert!(lines.next().unwrap().starts_with("---------------------+-"));
        assert!(out.contains("                init |               single | "));
        assert!(out.ends_with("\n\n"));
        assert_eq!(list(NodeState::Unknown), "\n");
    }

    #[test]
    fn gv_has_one_edge_per_row() {
        let out = gv();
        assert!(out.starts_with("digraph finite_state_machine\n{\n"));
        assert!(out.ends_with("}\n"));
        assert_eq!(out.matches(" -> ").count(), TABLE.len());
    }
}
