//! `ProceedGroupStateForPrimaryNode`: rules P1–P3 for a node in a primary
//! state, including the P2 counting procedure that trades durability for
//! availability through `number_sync_standbys`.
//!
//! Departures from v2.2:
//! * (as upstream's unreleased 2.3) P2b does not fall back to
//!   `wait_primary` (and thus to asynchronous commits) while a failover is
//!   in progress;
//! * (ours, like 2.3's replication stall but in half a second instead of
//!   ten) a secondary that its primary, still reporting, has not listed
//!   among the standbys replying to it for `replication_stall_timeout` is
//!   counted out like an unhealthy one and sent to `catchingup`: a
//!   partition between the primary and its synchronous standby no longer
//!   stops writes for as long as it lasts.

use crate::effect::Result;
use crate::machine::Machine;
use crate::node::NodeRef;
use crate::state::NodeState::*;

/// Evaluate the primary rules for `x`. Returns whether anything changed.
pub fn proceed(m: &mut Machine<'_>, x: i64) -> Result<bool> {
    let xn = m.n(x).clone();

    // P1
    if xn.is(Single) {
        let joined = m.group.others(x).find(|o| o.is(WaitStandby)).cloned();
        if let Some(o) = joined {
            m.assign(
                x,
                WaitPrimary,
                format!(
                    "Setting goal state of {} to wait_primary after {} joined.",
                    NodeRef(&xn),
                    NodeRef(&o)
                ),
            );
            return Ok(true);
        }
        return Ok(false);
    }

    // P3
    if xn.is(JoinPrimary) {
        m.assign(
            x,
            Primary,
            format!("Setting goal state of {} to primary", NodeRef(&xn)),
        );
        return Ok(true);
    }

    if !xn.is_any(&[Primary, WaitPrimary, ApplySettings]) {
        return Ok(false);
    }

    // P2: count what the other nodes can do for this primary.
    let others: Vec<i64> = m.group.others(x).map(|o| o.id).collect();
    let total = others.len();
    let (mut quorum_count, mut secondary_count, mut secondary_quorum_count) = (total, total, total);
    for oid in others {
        let o = m.n(oid).clone();
        let following = o.goal == Secondary && !matches!(o.reported, ReportLsn | JoinSecondary);
        // Ours: a standby its primary listed as replying within the stall
        // timeout replicates, whatever the monitor heard from its keeper
        // (after a partition of the monitor alone, the first keeper to
        // report again must not count the other out; one report that
        // misses it does not either).
        let replicating = xn.reports_standbys && !stalled(m.ctx, &xn, &o);
        if following && !replicating && m.ctx.is_unhealthy(Some(&o)) {
            m.assign(
                oid,
                CatchingUp,
                format!(
                    "Setting goal state of {} to catchingup after it became unhealthy.",
                    NodeRef(&o)
                ),
            );
            secondary_count -= 1;
            secondary_quorum_count -= 1;
        } else if following && stalled(m.ctx, &xn, &o) {
            m.assign(
                oid,
                CatchingUp,
                format!(
                    "Setting goal state of {} to catchingup after {} reported that it stopped replicating.",
                    NodeRef(&o),
                    NodeRef(&xn)
                ),
            );
            secondary_count -= 1;
            secondary_quorum_count -= 1;
        } else if !o.is(Secondary) {
            secondary_count -= 1;
            secondary_quorum_count -= 1;
        } else if !o.replication_quorum {
            secondary_quorum_count -= 1;
        }
        if !o.replication_quorum {
            quorum_count -= 1;
        }
    }
    let nss = m.group.formation.number_sync_standbys;

    // P2a: every standby is asynchronous.
    if quorum_count == 0 {
        let target = if secondary_count == 0 {
            WaitPrimary
        } else {
            Primary
        };
        if xn.goal != target {
            m.assign(
                x,
                target,
                format!(
                    "Setting goal state of {} to {} because none of the secondary nodes are healthy at the moment.",
                    NodeRef(&xn),
                    target
                ),
            );
        }
        return Ok(true);
    }

    // P2b
    if !xn.is(WaitPrimary) && secondary_quorum_count == 0 {
        let target = if nss == 0 { WaitPrimary } else { Primary };
        let failover = m.group.failover_in_progress();
        if xn.goal != target && !(target == WaitPrimary && failover) {
            m.assign(
                x,
                target,
                format!(
                    "Setting goal state of {} to {} because none of the standby nodes in the quorum are healthy at the moment.",
                    NodeRef(&xn),
                    target
                ),
            );
            return Ok(true);
        }
    }

    // P2c
    if xn.is(WaitPrimary) && secondary_quorum_count > 0 {
        m.assign(
            x,
            Primary,
            format!(
                "Setting goal state of {} to primary now that we have {} healthy  secondary nodes in the quorum.",
                NodeRef(&xn),
                secondary_quorum_count
            ),
        );
        return Ok(true);
    }

    // P2d
    if xn.is(ApplySettings) {
        let target = if nss == 0 && secondary_quorum_count == 0 {
            WaitPrimary
        } else {
            Primary
        };
        m.assign(
            x,
            target,
            format!(
                "Setting goal state of {} to {} after it applied replication properties change.",
                NodeRef(&xn),
                target
            ),
        );
        return Ok(true);
    }

    Ok(true)
}

/// Secondary `o` has stalled: its primary `p` reports the standbys that
/// reply to it, and has not listed `o` for `replication_stall_timeout`
/// (counted on `p`'s reports, so a primary out of the monitor's sight
/// stalls nobody) since `o` last changed state.
fn stalled(ctx: &crate::Context, p: &crate::Node, o: &crate::Node) -> bool {
    p.reports_standbys
        && o.lease
        && p.report_time - o.streamed_time.max(o.state_change_time)
            >= crate::node::ms(ctx.settings.replication_stall_timeout_ms)
}
