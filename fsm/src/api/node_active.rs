//! `node_active`: a keeper reports its state and receives its goal.
//!
//! Departures from v2.2, both pinned by tests: the state machine decides on
//! the report it just received, not on the previous one (upstream bug 1), and
//! the goal returned is the one persisted, even when the election assigned it
//! through another node's evaluation (upstream bug 3).

use super::{transaction, Outcome};
use crate::effect::{MonitorError, Result, SqlState};
use crate::lsn::Lsn;
use crate::node::{Group, NodeRef};
use crate::rules;
use crate::settings::Context;
use crate::state::NodeState;

/// What a keeper reports with each call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    pub node_id: i64,
    pub group_id: i32,
    pub state: NodeState,
    pub pg_is_running: bool,
    /// 0 means "unknown, keep the stored value".
    pub tli: i32,
    /// `0/0` means "unknown, keep the stored value".
    pub lsn: Lsn,
    /// `pg_stat_replication.sync_state` of the best standby, `''` if none.
    pub rep_state: String,
    /// The keeper renews a lease with this call (our keeper does, upstream's
    /// does not).
    pub lease: bool,
    /// On a standby: the node its WAL receiver streams from (0: none, or
    /// not said) and ms since it last heard from it (-1: unknown).
    pub upstream_node_id: i64,
    pub upstream_age_ms: i32,
    /// On a primary: the standbys (node ids) that replied to its WAL sender
    /// lately; `None` when the keeper does not say.
    pub streaming: Option<Vec<i64>>,
}

/// What `node_active` returns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assignment {
    pub node_id: i64,
    pub group_id: i32,
    pub goal: NodeState,
    pub candidate_priority: i32,
    pub replication_quorum: bool,
}

/// The sync states a keeper may report.
fn parse_rep_state(s: &str) -> Result<String> {
    match s {
        "" => Ok("unknown".to_string()),
        "unknown" | "sync" | "async" | "quorum" | "potential" => Ok(s.to_string()),
        other => Err(MonitorError::new(
            SqlState::INVALID_PARAMETER_VALUE,
            format!("unknown pg_stat_replication.sync_state \"{other}\""),
        )),
    }
}

/// Record a keeper's report, run the group state machine with that node as
/// the active node, and return its goal.
pub fn node_active(
    ctx: &Context,
    group: &mut Group,
    formation_id: &str,
    report: &Report,
) -> Result<Outcome<Assignment>> {
    transaction(ctx, group, |m| {
        let Some(node) = m.group.node(report.node_id).cloned() else {
            return Err(MonitorError::new(
                SqlState::UNDEFINED_OBJECT,
                format!("couldn't find node with nodeid {}", report.node_id),
            ));
        };
        if m.group.formation.id != formation_id {
            return Err(MonitorError::new(
                SqlState::INVALID_OBJECT_DEFINITION,
                format!(
                    "node {} does not belong to formation {}",
                    report.node_id, formation_id
                ),
            ));
        }
        let rep_state = parse_rep_state(&report.rep_state)?;
        let now = m.ctx.now;
        let changed = node.reported != report.state;
        let description = if node.goal == NodeState::ReportLsn {
            format!(
                "New state is reported by {} with LSN {}: {}",
                NodeRef(&node),
                node.lsn,
                report.state
            )
        } else {
            format!(
                "New state is reported by {}: \"{}\"",
                NodeRef(&node),
                report.state
            )
        };

        let n = m.group.node_mut(report.node_id).expect("looked up above");
        n.reported = report.state;
        if report.state == n.goal {
            // A keeper only reaches a state it was sent to.
            n.delivered = n.goal;
        }
        n.report_time = now;
        n.pg_is_running = report.pg_is_running;
        n.rep_state = rep_state;
        n.lease = report.lease;
        n.upstream_node_id = report.upstream_node_id;
        n.upstream_age_ms = report.upstream_age_ms;
        n.reports_standbys = report.streaming.is_some();
        if let Some(ids) = &report.streaming {
            for o in m.group.nodes.iter_mut() {
                if o.id != report.node_id && ids.contains(&o.id) {
                    o.streamed_time = now;
                }
            }
        }
        let n = m.group.node_mut(report.node_id).expect("looked up above");
        if report.tli != 0 {
            n.tli = report.tli;
        }
        if !report.lsn.is_zero() {
            n.lsn = report.lsn;
            n.wal_report_time = now;
        }
        if changed {
            n.state_change_time = now;
            m.log(description.clone());
            m.event(report.node_id, &description);
        }

        rules::proceed(m, report.node_id)?;

        if let Some(n) = m.group.node_mut(report.node_id) {
            n.delivered = n.goal;
        }
        Ok(match m.group.node(report.node_id) {
            Some(n) => Assignment {
                node_id: n.id,
                group_id: n.group_id,
                goal: n.goal,
                candidate_priority: n.candidate_priority,
                replication_quorum: n.replication_quorum,
            },
            // G1 deleted the node: it is gone for good.
            None => Assignment {
                node_id: node.id,
                group_id: node.group_id,
                goal: NodeState::Dropped,
                candidate_priority: node.candidate_priority,
                replication_quorum: node.replication_quorum,
            },
        })
    })
}
