//! The Postgres node in `--pgdata`, for the commands that act on that node
//! itself (`enable|disable maintenance`, `set node metadata`, `drop node`):
//! its files, configuration and state, and its monitor.

use super::exit::{self, Code, Failure};
use super::PgdataArg;
use crate::config::{Config, KeeperConfig};
use crate::monitor::Monitor;
use crate::paths::NodePaths;
use crate::state::KeeperState;

pub use crate::config::MONITOR_DISABLED;

pub struct LocalNode {
    pub paths: NodePaths,
    pub cfg: KeeperConfig,
    pub state: KeeperState,
}

/// The state file of `paths`, or a failure with exit `code` saying there is
/// none.
pub fn require_state(paths: &NodePaths, code: i32) -> Result<KeeperState, Failure> {
    KeeperState::load(&paths.state).code(code)?.ok_or_else(|| {
        Failure::new(
            code,
            anyhow::anyhow!("no state file at {}", paths.state.display()),
        )
    })
}

impl LocalNode {
    /// The keeper node of `pgdata`; `command` names the command for the
    /// refusal when it is a monitor.
    pub fn load(pgdata: &PgdataArg, command: &str) -> Result<LocalNode, Failure> {
        let pgdata = pgdata.require()?;
        let paths = NodePaths::new(&pgdata);
        let cfg = match Config::load(&paths.config) {
            Ok(Config::Keeper(k)) => k,
            Ok(Config::Monitor(_)) => {
                return Err(Failure::usage(format!(
                    "{} is the monitor: `pg_autoctl {command}` works on a Postgres node, give the --pgdata of one",
                    pgdata.display()
                )))
            }
            Err(e) => {
                return Err(Failure::new(
                    exit::BAD_CONFIG,
                    anyhow::anyhow!(
                        "{e}; is {} a pg_auto_failover node? (pg_autoctl create postgres)",
                        pgdata.display()
                    ),
                ))
            }
        };
        let state = KeeperState::load(&paths.state)
            .code(exit::BAD_STATE)?
            .ok_or_else(|| {
                Failure::new(
                    exit::BAD_STATE,
                    anyhow::anyhow!(
                        "there is no state file at {}: the node was not created (pg_autoctl create postgres)",
                        paths.state.display()
                    ),
                )
            })?;
        Ok(LocalNode { paths, cfg, state })
    }

    pub fn monitor_disabled(&self) -> bool {
        self.cfg.monitor == MONITOR_DISABLED
    }

    /// A connection to the node's monitor.
    pub async fn monitor(&self) -> Result<Monitor, Failure> {
        if self.monitor_disabled() {
            return Err(Failure::usage(
                "the monitor is disabled for this node: this command needs the monitor",
            ));
        }
        Monitor::connect(&self.cfg.monitor, super::show::CONNECT_TIMEOUT)
            .await
            .code(exit::MONITOR)
    }

    /// This node, as the monitor sees it.
    pub async fn on_monitor(
        &self,
        c: &tokio_postgres::Client,
    ) -> Result<(super::api::NodeRow, Vec<super::api::NodeRow>), Failure> {
        let nodes =
            super::api::current_state(c, &self.cfg.formation, Some(self.state.group_id)).await?;
        let me = nodes
            .iter()
            .find(|n| n.node_id == self.state.node_id)
            .cloned()
            .ok_or_else(|| {
                Failure::new(
                    exit::MONITOR,
                    anyhow::anyhow!(
                        "node {} is not registered in formation \"{}\" on the monitor: was it dropped? (pg_autoctl show state)",
                        self.state.node_id,
                        self.cfg.formation
                    ),
                )
            })?;
        Ok((me, nodes))
    }
}
