//! `remove_node`: the two-phase drop protocol.
//!
//! Departures from v2.2: a forced removal of the primary still starts the
//! election among the remaining nodes, instead of leaving a group without a
//! primary whose every heartbeat fails (upstream bug 5); the automatic
//! `number_sync_standbys` adjustment counts the standbys that will remain,
//! without assuming the primary participates in the quorum (upstream bug 16).

use super::{transaction, Outcome};
use crate::effect::Result;
use crate::machine::Machine;
use crate::node::{Group, NodeRef};
use crate::rules;
use crate::settings::Context;
use crate::state::NodeState::*;

/// `remove_node(node_id, force)`. The caller resolves the node (by id or by
/// host and port) and raises 42704 when it does not exist.
pub fn remove_node(
    ctx: &Context,
    group: &mut Group,
    node_id: i64,
    force: bool,
) -> Result<Outcome<bool>> {
    transaction(ctx, group, |m| {
        let Some(n) = m.group.node(node_id).cloned() else {
            return Ok(false);
        };
        let f = m.group.formation.id.clone();
        let was_primary = n.goal.can_take_writes();
        let others: Vec<i64> = m.group.others(node_id).map(|o| o.id).collect();

        if n.is(Dropped) || force {
            m.delete(node_id);
            m.log(format!(
                "Removing {} from formation \"{}\" and group {}",
                NodeRef(&n),
                f,
                n.group_id
            ));
            if force && was_primary && !others.is_empty() {
                elect_after_primary_removal(m, &others)?;
            }
            return Ok(true);
        }
        if n.goal == Dropped {
            return Ok(true);
        }
        if was_primary {
            for &o in &others {
                let on = m.n(o).clone();
                if !on.is_in_maintenance() {
                    m.assign(
                        o,
                        ReportLsn,
                        format!(
                            "Setting goal state of {} to report_lsn after primary node removal.",
                            NodeRef(&on)
                        ),
                    );
                }
            }
        }
        m.assign(
            node_id,
            Dropped,
            format!(
                "Setting goal state of {} from formation \"{}\" and group {} to \"dropped\" to implement node removal.",
                NodeRef(&n),
                f,
                n.group_id
            ),
        );
        adjust_number_sync_standbys(m, was_primary);

        if was_primary {
            if let Some(&first) = others.first() {
                rules::proceed(m, first)?;
            }
        } else if let Some(pm) = m.group.writable_goal_node().cloned() {
            rules::proceed(m, pm.id)?;
            let after = m.n(pm.id).clone();
            if after.goal == pm.goal
                && after.goal != ApplySettings
                && matches!(after.reported, Primary | WaitPrimary)
            {
                m.assign(
                    pm.id,
                    ApplySettings,
                    format!(
                        "Setting goal state of {} to apply_settings after removing standby {} from formation {}.",
                        NodeRef(&after),
                        NodeRef(&n),
                        f
                    ),
                );
            }
        }
        Ok(true)
    })
}

/// After a forced removal of the primary: the remaining nodes report their
/// LSN, then the usual election picks the new primary.
fn elect_after_primary_removal(m: &mut Machine<'_>, others: &[i64]) -> Result<()> {
    for &o in others {
        let on = m.n(o).clone();
        if !on.is_in_maintenance() && on.goal != ReportLsn {
            m.assign(
                o,
                ReportLsn,
                format!(
                    "Setting goal state of {} to report_lsn after primary node removal.",
                    NodeRef(&on)
                ),
            );
        }
    }
    adjust_number_sync_standbys(m, true);
    if let Some(&first) = others.first() {
        rules::proceed(m, first)?;
    }
    Ok(())
}

/// Lower `number_sync_standbys` when the remaining quorum standbys could no
/// longer satisfy it.
fn adjust_number_sync_standbys(m: &mut Machine<'_>, primary_removed: bool) {
    let remaining: Vec<bool> = match (primary_removed, m.group.writable_goal_node()) {
        (false, Some(p)) => m.group.others(p.id).map(|n| n.replication_quorum).collect(),
        // One of the remaining nodes becomes the primary.
        _ => {
            let mut q: Vec<bool> = m.group.active().map(|n| n.replication_quorum).collect();
            if let Some(pos) = q.iter().position(|b| *b) {
                q.remove(pos);
            } else {
                q.pop();
            }
            q
        }
    };
    let k = remaining.iter().filter(|q| **q).count() as i32;
    let nss = m.group.formation.number_sync_standbys;
    if k < nss + 1 {
        let new = (k - 1).max(0);
        if new != nss {
            m.group.formation.number_sync_standbys = new;
            m.log(format!(
                "Setting number_sync_standbys to {} for formation \"{}\" now that we have {} standby nodes set with replication-quorum.",
                new, m.group.formation.id, k
            ));
        }
    }
}
