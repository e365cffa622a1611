//! A Postgres node driven by its keeper: the runtime context shared by the
//! `create postgres` flow and the `run` loop.
//!
//! * [`lease`]: the lease and its watchdog;
//! * [`actions`]: the abstract actions of [`pgaf_fsm::keeper`] carried out on
//!   Postgres;
//! * [`service`]: the node-active loop of `pg_autoctl run`;
//! * [`heartbeat`]: its reports while it is busy with a long step;
//! * [`create`]: `pg_autoctl create postgres`;
//! * [`peers`]: the other nodes, from the monitor or the nodes file.

pub mod actions;
pub mod create;
pub mod heartbeat;
pub mod lease;
pub mod peers;
pub mod service;

use crate::config::KeeperConfig;
use crate::metrics::node::NodeMetrics;
use crate::monitor::{Monitor, MonitorError, NodeAddr};
use crate::paths::NodePaths;
use crate::pg::bin::PgBin;
use crate::pg::files::StandbySource;
use crate::pg::local::{Local, LocalError};
use crate::pg::process::Postgres;
use crate::state::KeeperState;
use lease::Lease;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long the keeper waits for the monitor to answer a call.
pub const MONITOR_TIMEOUT: Duration = Duration::from_secs(5);

pub struct Node {
    pub cfg: KeeperConfig,
    pub paths: NodePaths,
    pub bin: PgBin,
    pub pg: Postgres,
    pub state: KeeperState,
    monitor: Option<Monitor>,
    pub lease: Lease,
    /// The other nodes of the group, as the monitor last listed them.
    pub others: Vec<NodeAddr>,
    pub others_refreshed: Option<Instant>,
    /// Our replication slots match `others` (a primary keeps one per other
    /// node).
    pub slots_synced: bool,
    /// Consecutive failed calls to the monitor.
    pub monitor_failures: u32,
    /// The keeper's Prometheus metrics (served when `metrics_listen` is set).
    pub metrics: Arc<NodeMetrics>,
    /// The report slot shared with the heartbeat.
    pub reporter: heartbeat::Reporter,
    /// Without a monitor: the goal the state file held when last read.
    pub assigned_on_disk: Option<pgaf_fsm::NodeState>,
}

impl Node {
    pub fn new(
        cfg: KeeperConfig,
        paths: NodePaths,
        bin: PgBin,
        state: KeeperState,
    ) -> anyhow::Result<Node> {
        crate::pg::local::set_local_host(&cfg.pg.host);
        let pg = Postgres::new(bin.clone(), &paths.pgdata)?;
        let metrics = NodeMetrics::new(paths.pgdata.clone(), state.last_monitor_contact);
        let reporter = heartbeat::Reporter::new(state.current_role, state.group_id);
        Ok(Node {
            cfg,
            paths,
            bin,
            pg,
            state,
            monitor: None,
            lease: Lease::default(),
            others: Vec::new(),
            others_refreshed: None,
            slots_synced: false,
            monitor_failures: 0,
            metrics,
            reporter,
            assigned_on_disk: None,
        })
    }

    /// The monitor connection, (re)connected when needed.
    pub async fn monitor(&mut self) -> Result<&mut Monitor, MonitorError> {
        if self
            .monitor
            .as_ref()
            .is_some_and(|m| m.client().is_closed())
        {
            self.monitor = None;
        }
        if self.monitor.is_none() {
            let m = Monitor::connect(&self.cfg.monitor, MONITOR_TIMEOUT).await?;
            m.check_version().await?;
            self.monitor = Some(m);
        }
        self.monitor.as_mut().ok_or_else(|| MonitorError::Connect {
            uri: pgaf_pgconn::redact(&self.cfg.monitor),
            why: "not connected".into(),
        })
    }

    /// Forget the monitor connection after an error.
    pub fn drop_monitor(&mut self) {
        self.monitor = None;
    }

    pub async fn local(&self) -> Result<Local, LocalError> {
        Local::connect(&self.paths.pgdata).await
    }

    pub fn save_state(&self) {
        let mut state = self.state.clone();
        let _lock = crate::state::StateLock::acquire(&self.paths.state);
        if self.monitor_disabled() {
            // Without a monitor the goal is written by `do fsm assign`: keep
            // one written since we last read the file.
            if let Ok(Some(disk)) = KeeperState::load(&self.paths.state) {
                if Some(disk.assigned_role) != self.assigned_on_disk {
                    state.assigned_role = disk.assigned_role;
                }
            }
        }
        if let Err(e) = state.save(&self.paths.state) {
            tracing::error!("{e}");
        }
    }

    pub fn sslmode(&self) -> String {
        if self.cfg.ssl.sslmode.is_empty() {
            "prefer".into()
        } else {
            self.cfg.ssl.sslmode.clone()
        }
    }

    /// How this node streams from `upstream`.
    pub fn source(&self, upstream: &NodeAddr, slot: bool) -> StandbySource {
        let name = pgaf_fsm::standby_names::standby_name(self.state.node_id);
        StandbySource {
            application_name: name.clone(),
            host: upstream.host.clone(),
            port: upstream.port,
            password: self.cfg.replication_password.clone(),
            sslmode: self.sslmode(),
            slot: slot.then_some(name),
        }
    }

    /// Whether this node runs without a monitor.
    pub fn monitor_disabled(&self) -> bool {
        self.cfg.monitor == crate::config::MONITOR_DISABLED
    }

    /// Refresh the list of the other nodes from the monitor, or from the
    /// nodes file without a monitor. Returns whether a node appeared, left
    /// or moved.
    pub async fn refresh_others(&mut self) -> Result<bool, actions::ActionError> {
        let id = self.state.node_id;
        let others = if self.monitor_disabled() {
            crate::nodes_file::load(&self.paths.nodes, id)?
        } else {
            self.monitor().await?.get_other_nodes(id).await?
        };
        self.lease.set_known_standbys(others.iter().map(|n| n.id));
        let key = |v: &[NodeAddr]| {
            let mut k: Vec<(i64, String, u16)> =
                v.iter().map(|n| (n.id, n.host.clone(), n.port)).collect();
            k.sort();
            k
        };
        let changed = self.others_refreshed.is_none() || key(&others) != key(&self.others);
        if changed {
            self.slots_synced = false;
        }
        self.others = others;
        self.others_refreshed = Some(Instant::now());
        Ok(changed)
    }
}
