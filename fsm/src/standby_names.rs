//! `synchronous_standby_names`: the value the monitor computes for a group's
//! primary, and the standby naming scheme.

use crate::effect::{MonitorError, Result, SqlState};
use crate::node::Group;
use crate::state::NodeState;

/// The `application_name` (and replication slot name) of node `id`.
pub fn standby_name(id: i64) -> String {
    format!("pgautofailover_standby_{id}")
}

/// The value of `synchronous_standby_names` for the group's primary.
///
/// Departures from v2.2: without a primary the answer is no crash
/// (upstream bug 12), and standbys of equal priority are listed by node id
/// (upstream bug 8). Ours: while a failover runs (no node has a writable goal),
/// the answer is for the old primary being demoted and lists every standby
/// of the quorum whatever its state: a keeper that applies it on its way
/// to `primary` (a goal it received before the failover began) never
/// releases commits that no standby has. The model check found that an
/// empty answer there acknowledged a write the new primary lacked.
pub fn synchronous_standby_names(group: &Group) -> Result<String> {
    let active: Vec<_> = group.active().collect();
    if active.is_empty() {
        return Err(MonitorError::new(
            SqlState::INVALID_OBJECT_DEFINITION,
            format!(
                "no nodes found in group {} of formation \"{}\"",
                group.group_id, group.formation.id
            ),
        ));
    }
    if active.len() == 1 {
        return Ok(String::new());
    }
    let (primary, demoting) = match group.writable_goal_node() {
        Some(p) => (p, false),
        None => match group.primary_or_demoted() {
            Some(p) => (p, true),
            None => return Ok(String::new()),
        },
    };
    if active.len() == 2 {
        let standby = group.others(primary.id).next();
        return Ok(match standby {
            Some(s) if s.replication_quorum && (s.goal == NodeState::Secondary || demoting) => {
                format!("ANY 1 ({})", standby_name(s.id))
            }
            _ => String::new(),
        });
    }
    let mut sync: Vec<_> = group
        .others(primary.id)
        .filter(|n| n.replication_quorum)
        .collect();
    if sync.is_empty() || (primary.is(NodeState::WaitPrimary) && !demoting) {
        return Ok(String::new());
    }
    sync.sort_by(|a, b| {
        b.candidate_priority
            .cmp(&a.candidate_priority)
            .then(a.id.cmp(&b.id))
    });
    let nss = group.formation.number_sync_standbys;
    let k = if nss > 0 { nss } else { 1 };
    let names: Vec<String> = sync.iter().map(|n| standby_name(n.id)).collect();
    Ok(format!("ANY {k} ({})", names.join(", ")))
}
