//! Replication settings changed by the operator: candidate priority,
//! replication quorum and `number_sync_standbys`, applied by the primary
//! through `apply_settings`.
//!
//! Departure from v2.2: the primary is only sent to `apply_settings` from a
//! state its keeper can leave for it (`primary` or `wait_primary`); otherwise
//! the setting is stored and applied with the next change of
//! `synchronous_standby_names`.

use super::{transaction, Outcome};
use crate::effect::{MonitorError, NoticeLevel, Result, SqlState};
use crate::machine::Machine;
use crate::node::{Group, NodeRef};
use crate::settings::Context;
use crate::state::NodeState::*;

fn lookup(m: &Machine<'_>, name: &str) -> Result<crate::Node> {
    m.group
        .active()
        .find(|n| n.name == name)
        .cloned()
        .ok_or_else(|| {
            MonitorError::new(
                SqlState::UNDEFINED_OBJECT,
                format!(
                    "node \"{}\" is not registered in formation \"{}\"",
                    name, m.group.formation.id
                ),
            )
        })
}

/// Send the primary to `apply_settings` after a settings change of `what`.
fn apply_on_primary(m: &mut Machine<'_>, what: &str, description: String) -> Result<()> {
    let Some(pm) = m.group.writable_goal_node().cloned() else {
        return Ok(());
    };
    if pm.is(ApplySettings) {
        return Err(MonitorError::new(
            SqlState::NOT_IN_PREREQUISITE_STATE,
            format!(
                "cannot set {what} when current state for primary {} is \"{}\"",
                NodeRef(&pm),
                pm.reported
            ),
        ));
    }
    if matches!(pm.reported, Primary | WaitPrimary | ApplySettings) && pm.goal != ApplySettings {
        m.assign(
            pm.id,
            ApplySettings,
            description.replace("{primary}", &NodeRef(&pm).to_string()),
        );
    }
    Ok(())
}

/// `set_node_candidate_priority(formation_id, node_name, candidate_priority)`.
pub fn set_node_candidate_priority(
    ctx: &Context,
    group: &mut Group,
    name: &str,
    priority: i32,
) -> Result<Outcome<bool>> {
    transaction(ctx, group, |m| {
        let n = lookup(m, name)?;
        if !(0..=100).contains(&priority) {
            return Err(MonitorError::new(
                SqlState::INVALID_PARAMETER_VALUE,
                format!(
                    "invalid value for candidate_priority \"{priority}\" expected an integer value between 0 and 100"
                ),
            ));
        }
        if n.cluster != "default" && priority != 0 {
            return Err(MonitorError::new(
                SqlState::INVALID_PARAMETER_VALUE,
                "invalid value for candidate_priority: read-replica nodes in a citus cluster must always have candidate priority set to zero",
            ));
        }
        if priority == 0 && n.candidate_priority > 0 {
            let remaining = m
                .group
                .active()
                .filter(|o| o.candidate_priority > 0)
                .count()
                - 1;
            if remaining < 2 {
                m.notice(
                    NoticeLevel::Notice,
                    SqlState::NOT_IN_PREREQUISITE_STATE,
                    "setting candidate priority to zero, preventing automated failover".to_string(),
                    Some(format!(
                        "Group {} in formation \"{}\" have no failover candidate.",
                        m.group.group_id, m.group.formation.id
                    )),
                );
            }
        }
        m.group
            .node_mut(n.id)
            .expect("looked up")
            .candidate_priority = priority;
        if m.group.active().count() == 1 {
            let node = m.n(n.id).clone();
            let d = format!(
                "Updating candidate priority to {} for {}",
                priority,
                NodeRef(&node)
            );
            m.log(d.clone());
            m.event(n.id, &d);
        } else {
            apply_on_primary(
                m,
                "candidate priority",
                format!(
                    "Setting goal state of {{primary}} to apply_settings after updating {} candidate priority to {}.",
                    NodeRef(&n),
                    priority
                ),
            )?;
        }
        Ok(true)
    })
}

/// `set_node_replication_quorum(formation_id, node_name, replication_quorum)`.
pub fn set_node_replication_quorum(
    ctx: &Context,
    group: &mut Group,
    name: &str,
    quorum: bool,
) -> Result<Outcome<bool>> {
    transaction(ctx, group, |m| {
        let n = lookup(m, name)?;
        m.group
            .node_mut(n.id)
            .expect("looked up")
            .replication_quorum = quorum;
        let f = m.group.formation.id.clone();
        let g = m.group.group_id;
        if !quorum {
            let Some(pm) = m.group.writable_goal_node().cloned() else {
                return Err(MonitorError::new(
                    SqlState::NOT_IN_PREREQUISITE_STATE,
                    format!("Couldn't find the primary node in formation \"{f}\", group {g}"),
                ));
            };
            let nss = m.group.formation.number_sync_standbys;
            let k = m
                .group
                .others(pm.id)
                .filter(|o| o.replication_quorum)
                .count() as i32;
            if nss > 0 && k < nss + 1 {
                return Err(MonitorError::new(
                    SqlState::INVALID_PARAMETER_VALUE,
                    "can't set replication quorum to false",
                )
                .detail(format!(
                    "At least {} standby nodes are required in formation {} with number_sync_standbys = {}, and only {} would be participating in the replication quorum",
                    nss + 1,
                    f,
                    nss,
                    k
                )));
            }
        }
        if m.group.active().count() == 1 {
            let node = m.n(n.id).clone();
            let d = format!(
                "Updating replicationQuorum to {} for {}",
                quorum,
                NodeRef(&node)
            );
            m.log(d.clone());
            m.event(n.id, &d);
        } else {
            apply_on_primary(
                m,
                "replication quorum",
                format!(
                    "Setting goal state of {{primary}} to apply_settings after updating {} replication quorum to {}.",
                    NodeRef(&n),
                    quorum
                ),
            )?;
        }
        Ok(true)
    })
}

/// `set_formation_number_sync_standbys(formation_id, number_sync_standbys)`,
/// applied to group 0 of the formation.
pub fn set_formation_number_sync_standbys(
    ctx: &Context,
    group: &mut Group,
    value: i32,
) -> Result<Outcome<bool>> {
    transaction(ctx, group, |m| {
        let f = m.group.formation.id.clone();
        if value < 0 {
            return Err(MonitorError::new(
                SqlState::INVALID_PARAMETER_VALUE,
                format!("invalid value for number_sync_standbys: \"{value}\""),
            )
            .detail("A non-negative integer is expected"));
        }
        let Some(pm) = m.group.writable_goal_node().cloned() else {
            return Err(MonitorError::new(
                SqlState::NOT_IN_PREREQUISITE_STATE,
                format!("Couldn't find the primary node in formation \"{f}\", group 0"),
            ));
        };
        if !(pm.is(Primary) || pm.is(WaitPrimary)) {
            return Err(MonitorError::new(
                SqlState::NOT_IN_PREREQUISITE_STATE,
                format!(
                    "cannot set number_sync_standbys when current goal state for primary {} is \"{}\", and current reported state is \"{}\"",
                    NodeRef(&pm),
                    pm.goal,
                    pm.reported
                ),
            )
            .detail("The primary node so must be in state \"primary\" or \"wait_primary\" to be able to apply configuration changes to its synchronous_standby_names setting"));
        }
        let k = m
            .group
            .others(pm.id)
            .filter(|o| o.replication_quorum)
            .count() as i32;
        if value != 0 && value + 1 > k {
            return Err(MonitorError::new(
                SqlState::INVALID_PARAMETER_VALUE,
                format!("invalid value for number_sync_standbys: \"{value}\""),
            )
            .detail(format!(
                "At least {} standby nodes are required, and only {} are currently participating in the replication quorum",
                value + 1,
                k
            )));
        }
        m.group.formation.number_sync_standbys = value;
        m.assign(
            pm.id,
            ApplySettings,
            format!(
                "Setting goal state of {} to apply_settings after updating number_sync_standbys to {} for formation {}.",
                NodeRef(&pm),
                value,
                f
            ),
        );
        Ok(true)
    })
}
