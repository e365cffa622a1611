//! `start_maintenance` and `stop_maintenance`.
//!
//! Departures from v2.2: a standby is only put in maintenance from a stable
//! standby state (its keeper could not leave `report_lsn` for it); stopping
//! maintenance on a node left alone in its group sends it to `report_lsn`,
//! from where it becomes `single`, instead of doing nothing (upstream bug 13).

use super::{transaction, Outcome};
use crate::effect::{MonitorError, NoticeLevel, Result, SqlState};
use crate::node::{Group, NodeRef};
use crate::rules;
use crate::settings::Context;
use crate::state::NodeState::*;

/// `start_maintenance(node_id)`: false for an unknown node.
pub fn start_maintenance(ctx: &Context, group: &mut Group, node_id: i64) -> Result<Outcome<bool>> {
    transaction(ctx, group, |m| {
        let Some(n) = m.group.node(node_id).cloned() else {
            return Ok(false);
        };
        if n.reported == Maintenance || n.goal == Maintenance {
            return Ok(true);
        }
        let f = m.group.formation.id.clone();
        let g = m.group.group_id;
        let standby_ok = matches!(n.reported, Secondary | CatchingUp)
            && matches!(n.goal, Secondary | CatchingUp);
        if !n.is(Primary) && !standby_ok {
            return Err(MonitorError::new(
                SqlState::NOT_IN_PREREQUISITE_STATE,
                format!(
                    "cannot start maintenance: node {}:{} has reported state \"{}\" and is assigned state \"{}\", expected either \"primary\", \"secondary\" or \"catchingup\"",
                    n.host, n.port, n.reported, n.goal
                ),
            ));
        }
        let pm = if n.is(Primary) {
            n.clone()
        } else {
            match m.group.writable_goal_node() {
                Some(p) => p.clone(),
                None => {
                    return Err(MonitorError::new(
                        SqlState::NOT_IN_PREREQUISITE_STATE,
                        format!("couldn't find the primary node in formation \"{f}\", group {g}"),
                    ))
                }
            }
        };
        let nss = m.group.formation.number_sync_standbys;
        let standbys: Vec<_> = m
            .group
            .others(pm.id)
            .filter(|o| o.goal == Secondary)
            .cloned()
            .collect();
        let candidates = m.ctx.count_healthy_candidates(standbys.iter());
        let syncs = m.ctx.count_healthy_sync_standbys(standbys.iter());
        let n_is_sync = m.ctx.is_healthy_sync_standby(&n);
        if nss > 0 && syncs as i32 <= nss && n_is_sync {
            m.notice(
                NoticeLevel::Warning,
                SqlState::NOT_IN_PREREQUISITE_STATE,
                format!(
                    "Starting maintenance on {} will block writes on the primary {}",
                    NodeRef(&n),
                    NodeRef(&pm)
                ),
                Some(format!(
                    "we now have {} healthy node(s) left in the \"secondary\" state and formation \"{}\" number-sync-standbys requires {} sync standbys",
                    syncs.saturating_sub(1),
                    f,
                    nss
                )),
            );
        }

        if n.id == pm.id {
            if candidates < 1 {
                return Err(MonitorError::new(
                    SqlState::NOT_IN_PREREQUISITE_STATE,
                    format!(
                        "Starting maintenance on {} in state \"{}\" is not currently possible",
                        NodeRef(&n),
                        n.reported
                    ),
                )
                .detail(format!(
                    "there is currently {candidates} candidate nodes available"
                )));
            }
            let active = m.group.active_ids();
            if active.len() == 2 {
                let o = m
                    .group
                    .others(n.id)
                    .next()
                    .cloned()
                    .expect("two active nodes");
                m.assign(
                    n.id,
                    PrepareMaintenance,
                    format!(
                        "Setting goal state of {} to prepare_maintenance after a user-initiated start_maintenance call.",
                        NodeRef(&n)
                    ),
                );
                m.assign(
                    o.id,
                    PreparePromotion,
                    format!(
                        "Setting goal state of {} to prepare_maintenance and {} to prepare_promotion after a user-initiated start_maintenance call.",
                        NodeRef(&n),
                        NodeRef(&o)
                    ),
                );
            } else {
                m.assign(
                    n.id,
                    PrepareMaintenance,
                    format!(
                        "Setting goal state of {} to maintenance after a user-initiated start_maintenance call.",
                        NodeRef(&n)
                    ),
                );
                let first = m.group.others(n.id).next().map(|o| o.id);
                if let Some(first) = first {
                    rules::proceed(m, first)?;
                }
            }
            return Ok(true);
        }

        if pm.is(Primary) {
            if nss == 0 && syncs == 1 && n_is_sync {
                m.assign_all(
                    &[(pm.id, WaitPrimary), (n.id, WaitMaintenance)],
                    format!(
                        "Setting goal state of {} to wait_primary and {} to wait_maintenance after a user-initiated start_maintenance call.",
                        NodeRef(&pm),
                        NodeRef(&n)
                    ),
                );
            } else {
                m.assign(
                    n.id,
                    Maintenance,
                    format!(
                        "Setting goal state of {} to maintenance after a user-initiated start_maintenance call.",
                        NodeRef(&n)
                    ),
                );
            }
            return Ok(true);
        }

        Err(MonitorError::new(
            SqlState::NOT_IN_PREREQUISITE_STATE,
            format!(
                "cannot start maintenance: current state for {} is \"{}\", expected \"secondary\" or \"catchingup\", and current state for primary {} is \"{}\" ➜ \"{}\" ",
                NodeRef(&n),
                n.reported,
                NodeRef(&pm),
                pm.reported,
                pm.goal
            ),
        ))
    })
}

/// `stop_maintenance(node_id)`: false for an unknown node.
pub fn stop_maintenance(ctx: &Context, group: &mut Group, node_id: i64) -> Result<Outcome<bool>> {
    transaction(ctx, group, |m| {
        let Some(n) = m.group.node(node_id).cloned() else {
            return Ok(false);
        };
        let count = m.group.active().count();
        if !(n.is(Maintenance) || (count > 2 && n.is(PrepareMaintenance))) {
            return Err(MonitorError::new(
                SqlState::NOT_IN_PREREQUISITE_STATE,
                format!(
                    "cannot stop maintenance when current state for {} is not \"maintenance\"",
                    NodeRef(&n)
                ),
            )
            .detail(format!(
                "Current reported state is \"{}\" and assigned state is \"{}\"",
                n.reported, n.goal
            )));
        }
        let f = m.group.formation.id.clone();
        let g = m.group.group_id;
        let p = m.group.primary_or_demoted().cloned();
        if count == 1 || (p.is_none() && count > 2) {
            m.assign(
                n.id,
                ReportLsn,
                format!(
                    "Setting goal state of {} to report_lsn  after a user-initiated stop_maintenance call.",
                    NodeRef(&n)
                ),
            );
            return Ok(true);
        }
        if p.is_none() {
            return Err(MonitorError::new(
                SqlState::NOT_IN_PREREQUISITE_STATE,
                format!("couldn't find the primary node in formation \"{f}\", group {g}"),
            ));
        }
        let goal = if m.group.failover_in_progress() {
            ReportLsn
        } else {
            CatchingUp
        };
        m.assign(
            n.id,
            goal,
            format!(
                "Setting goal state of {} to catchingup  after a user-initiated stop_maintenance call.",
                NodeRef(&n)
            ),
        );
        Ok(true)
    })
}
