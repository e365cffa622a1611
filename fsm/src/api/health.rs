//! Health-check results and the monitor's timer,
//! which evaluates a group without waiting for a heartbeat so that lease
//! expiries are acted upon at once.

use super::{transaction, Outcome};
use crate::effect::Result;
use crate::node::{Group, Health, NodeRef};
use crate::rules;
use crate::settings::Context;

/// Record a health-check verdict for `node_id`; an event is produced when the
/// verdict changes. Returns whether the node still exists.
pub fn set_health(
    ctx: &Context,
    group: &mut Group,
    node_id: i64,
    health: Health,
) -> Result<Outcome<bool>> {
    transaction(ctx, group, |m| {
        let now = m.ctx.now;
        let Some(n) = m.group.node_mut(node_id) else {
            return Ok(false);
        };
        let before = n.health;
        n.health = health;
        n.health_check_time = now;
        if before != health {
            let n = n.clone();
            let word = if health == Health::Bad {
                "unhealthy"
            } else {
                "healthy"
            };
            let description = format!("Node {} is marked as {} by the monitor", NodeRef(&n), word);
            m.log(description.clone());
            m.event(node_id, &description);
        }
        Ok(true)
    })
}

/// Evaluate the group once for each node whose keeper is still reporting,
/// as if it had just repeated its last report. Returns whether it decided
/// anything: a goal state, a priority, a deletion or a formation setting.
pub fn evaluate_group(ctx: &Context, group: &mut Group) -> Result<Outcome<bool>> {
    let decisions = |g: &Group| {
        let nodes: Vec<_> = g
            .nodes
            .iter()
            .map(|n| (n.id, n.goal, n.candidate_priority))
            .collect();
        (nodes, g.formation.clone())
    };
    transaction(ctx, group, |m| {
        let before = decisions(m.group);
        for id in m.group.active_ids() {
            let reporting = m
                .group
                .node(id)
                .is_some_and(|n| m.ctx.is_reporting(Some(n)));
            if reporting {
                rules::proceed(m, id)?;
            }
        }
        Ok(decisions(m.group) != before)
    })
}
