//! `register_node`: the choice of a new node's first goal state.
//!
//! Departure from v2.2: the first node of a group becomes `single` whatever
//! its candidate priority; v2.2 answered 55006 to a first node with priority
//! 0, which `pg_autoctl` retries forever.

use super::{transaction, Outcome};
use crate::effect::{MonitorError, Result, SqlState};
use crate::node::{FormationKind, Group, Node, NodeRef};
use crate::rules;
use crate::settings::Context;
use crate::state::NodeState;

/// The arguments of `register_node`, plus the node id the caller allocated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registration {
    /// The id the new node gets (from the sequence, or `desired_node_id`).
    pub node_id: i64,
    pub host: String,
    pub port: i32,
    pub dbname: String,
    /// `''` lets the monitor name the node `node_<id>`.
    pub name: String,
    /// 0 when unknown.
    pub sysidentifier: i64,
    pub desired_group_id: i32,
    pub initial_state: NodeState,
    pub node_kind: String,
    pub candidate_priority: i32,
    pub replication_quorum: bool,
    pub cluster: String,
}

fn formation_kind(kind: &str) -> Result<FormationKind> {
    match kind {
        "standalone" => Ok(FormationKind::Pgsql),
        "coordinator" | "worker" => Err(MonitorError::new(
            SqlState::FEATURE_NOT_SUPPORTED,
            format!("node kind \"{kind}\" is not supported: this monitor manages pgsql formations"),
        )
        .hint("Register standalone Postgres nodes (pg_autoctl create postgres).")),
        other => Err(MonitorError::new(
            SqlState::INVALID_PARAMETER_VALUE,
            format!("unknown formation kind \"{other}\""),
        )),
    }
}

/// Register a node into `group` (group 0 of its formation) and run the state
/// machine for it. Returns the new node as stored.
pub fn register_node(
    ctx: &Context,
    group: &mut Group,
    req: &Registration,
) -> Result<Outcome<Node>> {
    transaction(ctx, group, |m| {
        let f = m.group.formation.clone();
        let has_nodes = !m.group.nodes.is_empty();
        let kind = formation_kind(&req.node_kind)?;
        if kind != f.kind {
            if has_nodes {
                return Err(MonitorError::new(
                    SqlState::INVALID_PARAMETER_VALUE,
                    format!(
                        "node {}:{} of kind \"{}\" can not be registered in formation \"{}\" of kind \"{}\"",
                        req.host,
                        req.port,
                        req.node_kind,
                        f.id,
                        f.kind.as_str()
                    ),
                ));
            }
            m.group.formation.kind = kind;
        }
        if req.dbname != f.dbname {
            if has_nodes {
                return Err(MonitorError::new(
                    SqlState::INVALID_PARAMETER_VALUE,
                    format!(
                        "node {}:{} with dbname \"{}\" can not be registered in formation \"{}\" which expects dbname \"{}\"",
                        req.host, req.port, req.dbname, f.id, f.dbname
                    ),
                ));
            }
            m.group.formation.dbname = req.dbname.clone();
        }
        if req.desired_group_id > 0 {
            return Err(MonitorError::new(
                SqlState::INVALID_PARAMETER_VALUE,
                format!(
                    "node {}:{} can not be registered in group {} in formation \"{}\" of type pgsql",
                    req.host, req.port, req.desired_group_id, f.id
                ),
            )
            .detail("in a pgsql formation, there can be only one group, with groupId 0"));
        }
        if !(0..=100).contains(&req.candidate_priority) {
            return Err(MonitorError::new(
                SqlState::INVALID_PARAMETER_VALUE,
                format!(
                    "invalid value for candidate_priority \"{}\" expected an integer value between 0 and 100",
                    req.candidate_priority
                ),
            ));
        }

        let goal = choose_goal(m.group)?;

        let now = m.ctx.now;
        let name = if req.name.is_empty() {
            format!("node_{}", req.node_id)
        } else {
            req.name.clone()
        };
        let mut node = Node::new(req.node_id, &name, &req.host, req.port, now);
        node.group_id = m.group.group_id;
        node.goal = goal;
        node.reported = req.initial_state;
        node.sysidentifier = (req.sysidentifier != 0).then_some(req.sysidentifier);
        node.candidate_priority = req.candidate_priority;
        node.replication_quorum = req.replication_quorum;
        node.cluster = req.cluster.clone();
        m.group.nodes.push(node.clone());
        m.group.nodes.sort_by_key(|n| n.id);

        m.log(format!(
            "Registering {} to formation \"{}\" with replication quorum {} and candidate priority {} [{}]",
            NodeRef(&node),
            f.id,
            node.replication_quorum,
            node.candidate_priority,
            req.candidate_priority
        ));

        if goal == NodeState::WaitStandby && m.group.formation.number_sync_standbys == 0 {
            if let Some(primary) = m.group.writable_goal_node().map(|p| p.id) {
                let standbys: Vec<bool> = m
                    .group
                    .others(primary)
                    .map(|n| n.replication_quorum)
                    .collect();
                let quorum = standbys.iter().filter(|q| **q).count();
                if quorum == 2 {
                    m.group.formation.number_sync_standbys = 1;
                    m.log(format!(
                        "Setting number_sync_standbys to 1 for formation {} now that we have {}/{} standby nodes set with replication-quorum.",
                        f.id,
                        quorum,
                        standbys.len()
                    ));
                }
            }
        }

        if req.initial_state != NodeState::Init && req.initial_state != goal {
            return Err(MonitorError::new(
                SqlState::INVALID_PARAMETER_VALUE,
                format!(
                    "node {}:{} can not be registered in state {}, it should be in state {}",
                    req.host, req.port, req.initial_state, goal
                ),
            ));
        }

        let before = m.effects.len();
        rules::proceed(m, req.node_id)?;
        let noted = m.effects[before..]
            .iter()
            .any(|e| matches!(e, crate::Effect::Event { node, .. } if node.id == req.node_id));
        if goal == NodeState::Single && !noted {
            // The first event clients see for the first node of a group.
            let n = m.group.node(req.node_id).cloned().expect("just inserted");
            m.assign(
                n.id,
                NodeState::Single,
                format!(
                    "Setting goal state of {} to single as there is no other node.",
                    NodeRef(&n)
                ),
            );
        }
        if let Some(n) = m.group.node_mut(req.node_id) {
            n.delivered = n.goal;
        }
        Ok(m.group.node(req.node_id).cloned().unwrap_or(node))
    })
}

/// The first goal state of a node joining `group` (before it is inserted).
fn choose_goal(group: &Group) -> Result<NodeState> {
    if group.active().next().is_none() {
        return Ok(NodeState::Single);
    }
    let f = &group.formation;
    if !f.opt_secondary {
        return Err(MonitorError::new(
            SqlState::NOT_IN_PREREQUISITE_STATE,
            format!("Formation \"{}\" does not allow secondary nodes", f.id),
        )
        .hint("use pg_autoctl enable secondary"));
    }
    if group.writable_goal_node().is_some() || group.candidate_being_promoted().is_some() {
        return Ok(NodeState::WaitStandby);
    }
    if group
        .active()
        .any(|n| n.candidate_priority == 0 && n.is(NodeState::ReportLsn))
    {
        return Ok(NodeState::ReportLsn);
    }
    Err(MonitorError::new(
        SqlState::OBJECT_IN_USE,
        format!(
            "JoinAutoFailoverFormation couldn't find the  primary node in formation \"{}\", group {}",
            f.id, group.group_id
        ),
    )
    .hint("Retry registering in a moment"))
}
