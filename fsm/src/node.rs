//! What the monitor knows about a node (one row of `pgautofailover.node`), the
//! formation it belongs to, and one group of nodes: the unit the state
//! machine works on.

use crate::lsn::Lsn;
use crate::state::NodeState;
use std::fmt;

/// Microseconds since the Unix epoch (wall clock of the monitor).
pub type Timestamp = i64;

/// Milliseconds to the microseconds of a [`Timestamp`].
pub const fn ms(millis: i64) -> i64 {
    millis * 1000
}

/// The monitor's health-check verdict (`node.health`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Health {
    Unknown,
    Bad,
    Good,
}

impl Health {
    /// The integer stored in `node.health`.
    pub const fn as_i32(self) -> i32 {
        match self {
            Health::Unknown => -1,
            Health::Bad => 0,
            Health::Good => 1,
        }
    }

    /// `-1` is unknown, `0` bad, anything else good (as upstream reads it).
    pub const fn from_i32(v: i32) -> Health {
        match v {
            -1 => Health::Unknown,
            0 => Health::Bad,
            _ => Health::Good,
        }
    }

    /// The word used in the `state` notification payload.
    pub const fn as_str(self) -> &'static str {
        match self {
            Health::Unknown => "unknown",
            Health::Bad => "bad",
            Health::Good => "good",
        }
    }
}

/// One registered node, as the monitor holds it in memory.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Node {
    pub id: i64,
    pub group_id: i32,
    pub name: String,
    pub host: String,
    pub port: i32,
    pub sysidentifier: Option<i64>,
    pub goal: NodeState,
    pub reported: NodeState,
    pub pg_is_running: bool,
    /// `pg_stat_replication.sync_state` as reported (`unknown` when empty).
    pub rep_state: String,
    pub report_time: Timestamp,
    pub tli: i32,
    pub lsn: Lsn,
    pub wal_report_time: Timestamp,
    pub health: Health,
    pub health_check_time: Timestamp,
    pub state_change_time: Timestamp,
    pub candidate_priority: i32,
    pub replication_quorum: bool,
    pub cluster: String,
    /// The node's keeper renews a lease with every report and fences its
    /// Postgres when it cannot (our keeper). Upstream keepers do not.
    pub lease: bool,
    /// The goal the keeper last received (returned by `register_node` or
    /// `node_active`). Goals assigned since are not known to the keeper yet.
    pub delivered: NodeState,
    /// On a standby, as its keeper last reported: the node its WAL receiver
    /// streams from (0: none, or the keeper does not say, as upstream's) and
    /// how long ago (ms) it last heard from it (-1: unknown).
    pub upstream_node_id: i64,
    pub upstream_age_ms: i32,
    /// On a standby: the last report of its primary that listed it among
    /// the standbys replying to it (see [`Node::reports_standbys`]).
    pub streamed_time: Timestamp,
    /// On a primary: its keeper lists, with every report, the standbys that
    /// reply to its WAL sender (ours does; upstream's keepers do not).
    pub reports_standbys: bool,
}

impl Node {
    /// A freshly registered node, with upstream's catalog defaults.
    pub fn new(id: i64, name: &str, host: &str, port: i32, now: Timestamp) -> Node {
        Node {
            id,
            group_id: 0,
            name: name.to_string(),
            host: host.to_string(),
            port,
            sysidentifier: None,
            goal: NodeState::Init,
            reported: NodeState::Init,
            pg_is_running: true,
            rep_state: "async".to_string(),
            report_time: now,
            tli: 1,
            lsn: Lsn::ZERO,
            wal_report_time: now,
            health: Health::Unknown,
            health_check_time: now,
            state_change_time: now,
            candidate_priority: 100,
            replication_quorum: true,
            cluster: "default".to_string(),
            lease: false,
            delivered: NodeState::Init,
            upstream_node_id: 0,
            upstream_age_ms: -1,
            streamed_time: 0,
            reports_standbys: false,
        }
    }

    /// `IsCurrentState`: the node has converged to `s`: goal = reported = s,
    /// and (unlike upstream) the keeper was not sent anywhere else since it
    /// reported. When a goal is set back to the state a node last reported,
    /// plain equality is ambiguous: its keeper may already be on its way to
    /// the goal it received in between, and the state machine would act on a
    /// state the node is no longer in.
    pub fn is(&self, s: NodeState) -> bool {
        self.goal == s && self.reported == s && self.confirmed()
    }

    /// The keeper received the node's current goal.
    pub fn confirmed(&self) -> bool {
        self.delivered == self.goal
    }

    /// Converged to one of `states`.
    pub fn is_any(&self, states: &[NodeState]) -> bool {
        self.goal == self.reported && states.contains(&self.goal) && self.confirmed()
    }

    /// `IsInPrimaryState`.
    pub fn is_in_primary_state(&self) -> bool {
        use NodeState::*;
        (self.goal == self.reported && self.goal.can_take_writes() && self.confirmed())
            || (matches!(self.goal, ApplySettings | Primary)
                && matches!(self.reported, Primary | ApplySettings))
    }

    /// `IsBeingDemotedPrimary`.
    pub fn is_being_demoted_primary(&self) -> bool {
        use NodeState::*;
        self.reported.belongs_to_primary()
            && matches!(self.goal, Draining | DemoteTimeout | PrepareMaintenance)
    }

    /// `IsDemotedPrimary`.
    pub fn is_demoted_primary(&self) -> bool {
        self.goal == NodeState::Demoted
            && (self.reported.belongs_to_primary() || self.reported == NodeState::Demoted)
    }

    /// `IsBeingPromoted`. Fixed: also a standby selected by the two-node
    /// failover (R9) or a manual failover, which upstream did not count, so
    /// that a second election could start while it was being promoted.
    pub fn is_being_promoted(&self) -> bool {
        use NodeState::*;
        matches!(
            (self.reported, self.goal),
            (Secondary, PreparePromotion)
                | (CatchingUp, PreparePromotion)
                | (ReportLsn, FastForward)
                | (ReportLsn, PreparePromotion)
                | (FastForward, FastForward)
                | (FastForward, PreparePromotion)
                | (PreparePromotion, PreparePromotion)
                | (PreparePromotion, StopReplication)
                | (PreparePromotion, WaitPrimary)
                | (StopReplication, StopReplication)
                | (StopReplication, WaitPrimary)
        )
    }

    /// `CandidateNodeIsReadyToStreamWAL`.
    pub fn is_ready_to_stream_wal(&self) -> bool {
        use NodeState::*;
        matches!(
            (self.reported, self.goal),
            (PreparePromotion, StopReplication)
                | (PreparePromotion, WaitPrimary)
                | (StopReplication, StopReplication)
                | (StopReplication, WaitPrimary)
                | (WaitPrimary, WaitPrimary)
                | (WaitPrimary, Primary)
                | (Primary, Primary)
        )
    }

    /// `IsParticipatingInPromotion`.
    pub fn is_participating_in_promotion(&self) -> bool {
        use NodeState::*;
        self.is_being_promoted()
            || self.reported == ReportLsn
            || self.goal == ReportLsn
            || self.reported == JoinSecondary
            || self.goal == JoinSecondary
    }

    /// `IsInMaintenance`.
    pub fn is_in_maintenance(&self) -> bool {
        self.goal.is_maintenance()
    }
}

/// `NODE_FORMAT`: how descriptions name a node, `node 2 "nodeB" (10.0.0.2:5432)`.
pub struct NodeRef<'a>(pub &'a Node);

impl fmt::Display for NodeRef<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.0;
        write!(f, "node {} \"{}\" ({}:{})", n.id, n.name, n.host, n.port)
    }
}

/// The kind of a formation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FormationKind {
    Pgsql,
    Citus,
}

impl FormationKind {
    pub const fn as_str(self) -> &'static str {
        match self {
            FormationKind::Pgsql => "pgsql",
            FormationKind::Citus => "citus",
        }
    }
}

/// One row of `pgautofailover.formation`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Formation {
    pub id: String,
    pub kind: FormationKind,
    pub dbname: String,
    pub opt_secondary: bool,
    pub number_sync_standbys: i32,
}

impl Formation {
    /// The `default` formation the install script creates.
    pub fn default_formation() -> Formation {
        Formation {
            id: "default".to_string(),
            kind: FormationKind::Pgsql,
            dbname: "postgres".to_string(),
            opt_secondary: true,
            number_sync_standbys: 0,
        }
    }
}

/// Every node of one (formation, group), dropped ones included, ordered by id.
///
/// The state machine mutates this snapshot; the caller persists the
/// difference (goal states, priorities, deletions, the formation's
/// `number_sync_standbys`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Group {
    pub formation: Formation,
    pub group_id: i32,
    pub nodes: Vec<Node>,
}

impl Group {
    pub fn new(formation: Formation, group_id: i32, mut nodes: Vec<Node>) -> Group {
        nodes.sort_by_key(|n| n.id);
        Group {
            formation,
            group_id,
            nodes,
        }
    }

    pub fn node(&self, id: i64) -> Option<&Node> {
        self.nodes.iter().find(|n| n.id == id)
    }

    pub fn node_mut(&mut self, id: i64) -> Option<&mut Node> {
        self.nodes.iter_mut().find(|n| n.id == id)
    }

    pub fn node_by_name(&self, name: &str) -> Option<&Node> {
        self.nodes.iter().find(|n| n.name == name)
    }

    /// The group list: nodes whose goal is not `dropped`, by id.
    pub fn active(&self) -> impl Iterator<Item = &Node> {
        self.nodes.iter().filter(|n| n.goal != NodeState::Dropped)
    }

    /// Ids of the group list.
    pub fn active_ids(&self) -> Vec<i64> {
        self.active().map(|n| n.id).collect()
    }

    /// The group list minus `id`.
    pub fn others(&self, id: i64) -> impl Iterator<Item = &Node> {
        self.active().filter(move |n| n.id != id)
    }

    /// `GetPrimaryNodeInGroup`: first node whose goal state is writable.
    pub fn writable_goal_node(&self) -> Option<&Node> {
        self.active().find(|n| n.goal.can_take_writes())
    }

    /// `GetPrimaryOrDemotedNodeInGroup`: the node the state machine calls P.
    pub fn primary_or_demoted(&self) -> Option<&Node> {
        if let Some(n) = self.writable_goal_node() {
            return Some(n);
        }
        let mut chosen: Option<&Node> = None;
        for n in self.active() {
            if !n.reported.belongs_to_primary() {
                continue;
            }
            if let Some(c) = chosen {
                if n.is_demoted_primary() && c.is_being_demoted_primary() {
                    continue;
                }
            }
            chosen = Some(n);
        }
        chosen
    }

    /// `GetNodeToFailoverFromInGroup`.
    pub fn node_to_failover_from(&self) -> Option<&Node> {
        self.active()
            .find(|n| n.goal.can_initiate_failover() && n.reported == n.goal)
    }

    /// `FindCandidateNodeBeingPromoted`.
    pub fn candidate_being_promoted(&self) -> Option<&Node> {
        self.active().find(|n| n.is_being_promoted())
    }

    /// `get_most_advanced_standby`: among the nodes that reported
    /// `report_lsn` (except `caller`), the one with the highest LSN, then the
    /// best health, then the lowest id.
    pub fn most_advanced_reporting_standby(&self, caller: Option<i64>) -> Option<&Node> {
        self.nodes
            .iter()
            .filter(|n| n.reported == NodeState::ReportLsn && Some(n.id) != caller)
            .min_by(|a, b| {
                b.lsn
                    .cmp(&a.lsn)
                    .then(b.health.as_i32().cmp(&a.health.as_i32()))
                    .then(a.id.cmp(&b.id))
            })
    }

    /// `IsFailoverInProgress`.
    pub fn failover_in_progress(&self) -> bool {
        self.active().any(|n| n.is_participating_in_promotion())
    }
}
