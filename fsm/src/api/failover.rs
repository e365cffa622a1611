//! `perform_failover` and `perform_promotion`: operator-triggered failovers
//! and switchovers.
//!
//! Departure from v2.2 (upstream bug 15): a failover is refused when no standby
//! could be promoted: with two nodes the standby must be healthy, within
//! `promote_wal_log_threshold` of the primary like an automatic failover, and
//! have a candidate priority above 0 (v2.2 promoted a priority-0 standby), with
//! more nodes at least one healthy secondary with a priority above 0 must
//! exist (v2.2 drained the primary and then found nobody to elect).

use super::{transaction, Outcome};
use crate::effect::{MonitorError, NoticeLevel, Result, SqlState};
use crate::machine::Machine;
use crate::node::{Group, NodeRef};
use crate::rules;
use crate::settings::Context;
use crate::state::NodeState::*;

/// `perform_failover(formation_id, group_id)`.
pub fn perform_failover(ctx: &Context, group: &mut Group) -> Result<Outcome<()>> {
    transaction(ctx, group, failover)
}

fn failover(m: &mut Machine<'_>) -> Result<()> {
    let f = m.group.formation.id.clone();
    let g = m.group.group_id;
    let active = m.group.active_ids();
    if active.len() < 2 {
        return Err(MonitorError::new(
            SqlState::NOT_IN_PREREQUISITE_STATE,
            format!(
                "cannot fail over: group {} in formation {} currently has {} node registered",
                g,
                f,
                active.len()
            ),
        )
        .detail("At least 2 nodes are required to implement a failover"));
    }
    let Some(x) = m.group.node_to_failover_from().cloned() else {
        return Err(MonitorError::new(
            SqlState::NOT_IN_PREREQUISITE_STATE,
            format!("couldn't find the primary node in formation \"{f}\", group {g}"),
        ));
    };

    if active.len() == 2 {
        let o = m
            .group
            .others(x.id)
            .next()
            .cloned()
            .expect("two active nodes");
        if o.goal != Secondary {
            return Err(MonitorError::new(
                SqlState::NOT_IN_PREREQUISITE_STATE,
                format!(
                    "standby {} is in state \"{}\", which prevents the node for being a failover candidate",
                    NodeRef(&o),
                    o.goal
                ),
            ));
        }
        if !(x.is(Primary) && o.is(Secondary)) {
            return Err(MonitorError::new(
                SqlState::NOT_IN_PREREQUISITE_STATE,
                "cannot fail over: primary node is not in a stable state",
            )
            .detail(format!(
                "{} has reported state \"{}\" and is assigned state \"{}\", and {} has reported state \"{}\" and is assigned state \"{}\"",
                NodeRef(&x),
                x.reported,
                x.goal,
                NodeRef(&o),
                o.reported,
                o.goal
            ))
            .hint("a stable state must be observed to perform a manual failover"));
        }
        if o.candidate_priority <= 0 {
            return Err(MonitorError::new(
                SqlState::NOT_IN_PREREQUISITE_STATE,
                format!(
                    "cannot fail over: standby {} has candidate priority {}",
                    NodeRef(&o),
                    o.candidate_priority
                ),
            )
            .hint("raise it first with pg_autoctl set node candidate-priority"));
        }
        let threshold = m.ctx.settings.promote_wal_log_threshold;
        if !crate::health::wal_difference_within(Some(&o), Some(&x), threshold) {
            return Err(MonitorError::new(
                SqlState::NOT_IN_PREREQUISITE_STATE,
                format!(
                    "cannot fail over: standby {} reported LSN {}, more than pgautofailover.promote_wal_log_threshold ({}) behind the primary at {}",
                    NodeRef(&o),
                    o.lsn,
                    threshold,
                    x.lsn
                ),
            )
            .hint("wait for the standby to catch up, see pg_autoctl show state"));
        }
        if !m.ctx.is_healthy(Some(&o)) {
            return Err(MonitorError::new(
                SqlState::NOT_IN_PREREQUISITE_STATE,
                format!("cannot fail over: standby {} is not healthy", NodeRef(&o)),
            )
            .hint("wait until its keeper reports again, see pg_autoctl show state"));
        }
        m.assign_all(
            &[(x.id, Draining), (o.id, PreparePromotion)],
            format!(
                "Setting goal state of {} to draining and {} to prepare_promotion after a user-initiated failover.",
                NodeRef(&x),
                NodeRef(&o)
            ),
        );
        return Ok(());
    }

    let candidates = m.ctx.count_healthy_candidates(m.group.others(x.id));
    if candidates == 0 {
        return Err(MonitorError::new(
            SqlState::NOT_IN_PREREQUISITE_STATE,
            format!(
                "cannot fail over: group {g} in formation {f} has no healthy secondary node with a candidate priority above 0"
            ),
        )
        .hint("see pg_autoctl show state; raise a priority with pg_autoctl set node candidate-priority"));
    }
    m.assign(
        x.id,
        Draining,
        format!(
            "Setting goal state of {}at LSN {} to draining after a user-initiated failover.",
            NodeRef(&x),
            x.lsn
        ),
    );
    let cp = x.candidate_priority - 101;
    m.set_priority(
        x.id,
        cp,
        format!("Updating candidate priority to {} for {}", cp, NodeRef(&x)),
    );
    let first = m.group.others(x.id).next().map(|n| n.id);
    if let Some(first) = first {
        rules::proceed(m, first)?;
    }
    Ok(())
}

/// `perform_promotion(formation_id, node_name)`: returns false (with a
/// notice) when the node already is the primary.
pub fn perform_promotion(ctx: &Context, group: &mut Group, name: &str) -> Result<Outcome<bool>> {
    transaction(ctx, group, |m| {
        let f = m.group.formation.id.clone();
        let Some(n) = m.group.active().find(|n| n.name == name).cloned() else {
            return Err(MonitorError::new(
                SqlState::UNDEFINED_OBJECT,
                format!("node \"{name}\" is not registered in formation \"{f}\""),
            ));
        };
        if n.is(Single) || n.is(Primary) {
            m.notice(
                NoticeLevel::Notice,
                SqlState::NOT_IN_PREREQUISITE_STATE,
                format!(
                    "cannot perform promotion: node {name} in formation {f} is already a primary."
                ),
                None,
            );
            return Ok(false);
        }
        if !n.is(Secondary) && !n.is(ReportLsn) {
            return Err(MonitorError::new(
                SqlState::NOT_IN_PREREQUISITE_STATE,
                format!(
                    "cannot perform promotion: node {} in formation {} has reported state \"{}\" and is assigned state \"{}\", promotion can only be performed when in state \"secondary\".",
                    name, f, n.reported, n.goal
                ),
            ));
        }
        if n.candidate_priority <= 0 {
            return Err(MonitorError::new(
                SqlState::NOT_IN_PREREQUISITE_STATE,
                format!(
                    "cannot perform promotion: node {name} in formation {f} has candidate priority {}",
                    n.candidate_priority
                ),
            )
            .hint("raise it first with pg_autoctl set node candidate-priority"));
        }
        if m.group.active().count() > 2 {
            let cp = n.candidate_priority + 101;
            m.set_priority(
                n.id,
                cp,
                format!("Updating candidate priority to {} for {}", cp, NodeRef(&n)),
            );
        }
        failover(m)?;
        Ok(true)
    })
}
