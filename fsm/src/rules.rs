//! `ProceedGroupState`: the group state machine evaluated for one active
//! node, rule by rule in upstream's order (rules G1–G8
//! and R1–R23; the Citus rules R13, R14, R19 and R20 are not implemented
//! because this monitor serves pgsql formations only).
//!
//! Deliberate departures from v2.2, each pinned by a test named after the
//! upstream bug:
//! * a goal is only assigned when the keeper has a transition to it from the
//!   node's reported state (upstream bug 17): a lone node that never got a copy
//!   of the data is not made `single`, a lone priority-0 node converged in a
//!   writable state stays `single`, a dead primary converged in
//!   `wait_primary` (or `single`) is not sent to `draining` nor to
//!   `demote_timeout` but straight to `demoted`, so that it stays down;
//! * a state another node converged to only proves that node is fenced when
//!   it was reported after the goal was assigned (a goal set back to the last
//!   reported state is ambiguous: the keeper may have moved on meanwhile);
//! * G5 assigns `report_lsn` once, not on every heartbeat (upstream bug 4);
//! * G7 no longer fails every heartbeat of a group without a primary: it
//!   starts an election (upstream bug 5);
//! * R1/R2 send a standby parked in `report_lsn` back to a healthy primary
//!   in any primary state, not only a converged one, and not while another
//!   node is already being promoted.
//!
//! Lease-holding keepers (ours) let R18 finish a failover as soon as the old
//! primary's lease expired and the new primary stopped streaming from it for
//! `fence_timeout`, instead of waiting `primary_demote_timeout`.
//!
//! What our keepers report also decides when a failover starts at all
//! (R9 and G8; `docs/failover.md` tells the whole story):
//! * a primary is gone only when its lease expired **and** no standby still
//!   streams from it (`Context::primary_is_down`): a primary cut off from
//!   the monitor alone keeps its role, as its keeper keeps it up;
//! * the candidate must have reported after the old primary's lease
//!   expired (`Context::reported_since_lease_expiry`): a monitor that hears
//!   from nobody decides nothing, and no stale view is acted upon;
//! * a primary that acknowledged writes alone (`wait_primary`, `single`) is
//!   never replaced (`acks_synchronously`): its standbys may lack them;
//! * a standby becomes `secondary` (R8) only once its primary lists it
//!   among the standbys replying to it (`streams_to`).

use crate::effect::Result;
use crate::election;
use crate::health::wal_difference_within;
use crate::machine::Machine;
use crate::node::NodeRef;
use crate::primary;
use crate::state::NodeState::{self, *};

/// Run the group state machine with `a` as the active node. Returns whether
/// anything changed.
pub fn proceed(m: &mut Machine<'_>, a: i64) -> Result<bool> {
    let Some(an) = m.group.node(a).cloned() else {
        return Ok(false);
    };

    // G1: the keeper finished its drop protocol.
    if an.is(Dropped) {
        m.log(format!(
            "Removing {} from formation \"{}\" and group {}",
            NodeRef(&an),
            m.group.formation.id,
            an.group_id
        ));
        m.delete(a);
        return Ok(true);
    }
    // G2: being dropped.
    if an.goal == Dropped {
        return Ok(false);
    }
    // G3: frozen in maintenance until stop_maintenance.
    if an.is(Maintenance) {
        return Ok(false);
    }

    let count = m.group.active().count();
    if count == 1 {
        return lone_node(m, a);
    }

    // G6 (only while its Postgres runs: a primary whose keeper reports
    // Postgres down is not moved between primary states, it is failed over).
    if an.is_in_primary_state() && an.pg_is_running {
        return primary::proceed(m, a);
    }

    let p = m.group.primary_or_demoted().map(|n| n.id);

    // G7 (fixed): no primary and no failover in progress: elect one.
    if p.is_none() && !m.group.failover_in_progress() {
        return election::proceed(m, a, None);
    }

    // G8 (with our definition of a primary that is gone, and no election
    // while the old primary acknowledged writes alone)
    let p_down = p.is_none_or(|pid| {
        let pn = m.n(pid);
        m.ctx.primary_is_down(pn, m.group.others(pid)) && acks_synchronously(pn)
    });
    if count > 2 && p_down {
        if let Some(pid) = p {
            let pn = m.n(pid).clone();
            let candidates = m.ctx.count_healthy_candidates(
                m.group
                    .others(pid)
                    .filter(|o| o.goal == Secondary && m.ctx.reported_since_lease_expiry(o, &pn)),
            );
            if pn.is_in_primary_state()
                && !pn.is(WaitPrimary)
                && can_reach(&pn, Draining)
                && candidates >= 1
            {
                m.assign(
                    pid,
                    Draining,
                    format!(
                        "Setting goal state of {} to draining after it became unhealthy.",
                        NodeRef(&pn)
                    ),
                );
            } else if pn.is(PrepareMaintenance) {
                m.assign(
                    pid,
                    Maintenance,
                    format!(
                        "Setting goal state of {} to maintenance after it converged to prepare_maintenance.",
                        NodeRef(&pn)
                    ),
                );
            }
        }
        if election::proceed(m, a, p)? {
            return Ok(true);
        }
    }

    reporting_rules(m, a, p)
}

/// Whether the keeper of `n` can go to `to` from wherever it is: its reported
/// state, or its current goal if it already reached it without reporting.
fn can_reach(n: &crate::Node, to: NodeState) -> bool {
    crate::keeper::can_reach(n.reported, to, n.lease)
        && crate::keeper::can_reach(n.goal, to, n.lease)
}

/// G4 and G5: the node is alone in its group.
fn lone_node(m: &mut Machine<'_>, a: i64) -> Result<bool> {
    let an = m.n(a).clone();
    if an.is(Single) {
        return Ok(false);
    }
    if an.candidate_priority > 0 {
        // A node that never received a copy of the data (wait_standby), or
        // is between two states that cannot become a primary, stays put.
        // Assigned once, not on every heartbeat.
        if can_reach(&an, Single) && an.goal != Single {
            m.assign(
                a,
                Single,
                format!(
                    "Setting goal state of {} to single as there is no other node.",
                    NodeRef(&an)
                ),
            );
            return Ok(true);
        }
        return Ok(false);
    }
    // Candidate priority 0: a node already serving writes, or initialising
    // as the first node of its group, keeps serving them alone.
    if an.reported.can_take_writes() && an.reported == an.goal {
        m.assign(
            a,
            Single,
            format!(
                "Setting goal state of {} to single as there is no other node.",
                NodeRef(&an)
            ),
        );
        return Ok(true);
    }
    if an.goal == Single {
        // On its way to single already.
        return Ok(false);
    }
    if an.goal != ReportLsn && can_reach(&an, ReportLsn) {
        m.assign(
            a,
            ReportLsn,
            format!(
                "Setting goal state of {} to report_lsn as there is no other node and candidate priority is 0.",
                NodeRef(&an)
            ),
        );
        return Ok(true);
    }
    Ok(false)
}

/// R1–R23, evaluated when G8 did not conclude.
fn reporting_rules(m: &mut Machine<'_>, a: i64, p: Option<i64>) -> Result<bool> {
    let an = m.n(a).clone();
    let pn = p.map(|id| m.n(id).clone());
    let ctx = m.ctx;
    let settings = &ctx.settings;
    let p_healthy = ctx.is_healthy(pn.as_ref());

    if let Some(pn) = &pn {
        // R1 and R2: back to the primary, which is healthy again. Fixed: also
        // when the primary is between two primary states (v2.2 required it
        // converged, so standbys parked in report_lsn could wait forever for a
        // primary that needed them to converge), and not while another node is
        // already being promoted.
        let back = an.is(ReportLsn)
            && pn.reported.can_take_writes()
            && pn.goal.can_take_writes()
            && p_healthy
            && m.group.candidate_being_promoted().is_none();
        if back && matches!(pn.reported, WaitPrimary | JoinPrimary) {
            m.assign(
                a,
                Secondary,
                format!(
                    "Setting goal state of {} to secondary after {} converged to {} and has been marked healthy.",
                    NodeRef(&an),
                    NodeRef(pn),
                    pn.reported
                ),
            );
            return Ok(true);
        }
        if back {
            m.assign(
                a,
                Secondary,
                format!(
                    "Setting goal state of {} to secondary after {} got selected as the failover candidate.",
                    NodeRef(&an),
                    NodeRef(pn)
                ),
            );
            return Ok(true);
        }
    }

    // R3
    if an.is(FastForward) {
        m.assign(
            a,
            PreparePromotion,
            format!(
                "Setting goal state of {} to prepare_promotion",
                NodeRef(&an)
            ),
        );
        return Ok(true);
    }
    // R4
    if an.is(ReportLsn) {
        return election::proceed(m, a, p);
    }

    let Some(pn) = pn else {
        // (ours) The candidate promoted and no old primary is left to demote
        // (upstream only handled this for Citus workers, R20).
        if an.is(StopReplication) {
            m.assign(
                a,
                WaitPrimary,
                format!(
                    "Setting goal state of {} to wait_primary after {} converged to stop_replication.",
                    NodeRef(&an),
                    NodeRef(&an)
                ),
            );
            return Ok(true);
        }
        // R16: promotion candidate and no old primary left to demote.
        if an.is(PreparePromotion) {
            m.assign(
                a,
                WaitPrimary,
                format!(
                    "Setting goal state of {} to wait_primary after {} converged to prepare_promotion.",
                    NodeRef(&an),
                    NodeRef(&an)
                ),
            );
            return Ok(true);
        }
        return Ok(false);
    };
    let pid = pn.id;

    // R5
    if an.is(WaitStandby) && pn.is_any(&[WaitPrimary, JoinPrimary]) {
        m.assign(
            a,
            CatchingUp,
            format!(
                "Setting goal state of {} to catchingup after {} converged to {}.",
                NodeRef(&an),
                NodeRef(&pn),
                pn.reported
            ),
        );
        return Ok(true);
    }
    // R6
    if an.is(WaitStandby) && pn.is(Primary) && an.replication_quorum {
        m.assign_all(
            &[(a, CatchingUp), (pid, ApplySettings)],
            format!(
                "Setting goal state of {} to catchingup and {} to {} to edit synchronous_standby_names.",
                NodeRef(&an),
                NodeRef(&pn),
                pn.reported
            ),
        );
        return Ok(true);
    }
    // R7
    if an.is(WaitStandby) && pn.is(Primary) && !an.replication_quorum {
        m.assign(
            a,
            CatchingUp,
            format!("Setting goal state of {} to catchingup.", NodeRef(&an)),
        );
        return Ok(true);
    }
    // R8 (ours: and the primary says the standby streams from it)
    if an.is(CatchingUp)
        && pn.is_any(&[WaitPrimary, JoinPrimary, Primary])
        && streams_to(&pn, &an)
        && ctx.is_healthy(Some(&an))
        && an.tli == pn.tli
        && wal_difference_within(Some(&an), Some(&pn), settings.enable_sync_wal_log_threshold)
    {
        m.assign(
            a,
            Secondary,
            format!(
                "Setting goal state of {} to secondary after it caught up.",
                NodeRef(&an)
            ),
        );
        return Ok(true);
    }
    // R9: the two-node automatic failover. (Fixed: also when the primary died
    // between two synchronous states, e.g. apply_settings -> primary, which
    // v2.2's IsInPrimaryState missed, leaving the group without failover.
    // Ours: never when the primary acknowledged writes alone, in
    // wait_primary or single, even on its way to primary: the standby may
    // lack those writes. v2.2 promoted it, and upstream issue #1168 sent
    // such a primary to draining, which it cannot reach.)
    // Ours: the old primary acknowledged writes only with its synchronous
    // standbys, it is gone by `primary_is_down` (not only out of the
    // monitor's sight), and the candidate reported since.
    if an.is(Secondary)
        && pn.reported.can_take_writes()
        && pn.goal.can_take_writes()
        && acks_synchronously(&pn)
        && ctx.primary_is_down(&pn, m.group.others(pid))
        && ctx.reported_since_lease_expiry(&an, &pn)
        && ctx.is_healthy(Some(&an))
        && an.candidate_priority > 0
        && wal_difference_within(Some(&an), Some(&pn), settings.promote_wal_log_threshold)
    {
        // Its reported state and goal are primary, join_primary or
        // apply_settings, which all go to draining.
        m.assign_all(
            &[(pid, Draining), (a, PreparePromotion)],
            format!(
                "Setting goal state of {} to draining and {} to prepare_promotion after {} became unhealthy.",
                NodeRef(&pn),
                NodeRef(&an),
                NodeRef(&pn)
            ),
        );
        return Ok(true);
    }
    // R10
    if an.is(WaitMaintenance) && pn.is(WaitPrimary) {
        m.assign(
            a,
            Maintenance,
            format!(
                "Setting goal state of {} to maintenance after {} converged to wait_primary.",
                NodeRef(&an),
                NodeRef(&pn)
            ),
        );
        return Ok(true);
    }
    // R11
    if an.is(WaitMaintenance) && pn.goal != WaitPrimary {
        m.assign(
            a,
            Maintenance,
            format!(
                "Setting goal state of {} to maintenance after {} got assigned {} as goal state.",
                NodeRef(&an),
                NodeRef(&pn),
                pn.goal
            ),
        );
        return Ok(true);
    }
    // R12
    if an.is(PreparePromotion) && pn.is(PrepareMaintenance) {
        m.assign(
            a,
            StopReplication,
            format!(
                "Setting goal state of {} to stop_replication after {} converged to prepare_maintenance.",
                NodeRef(&an),
                NodeRef(&pn)
            ),
        );
        return Ok(true);
    }
    // R15
    if an.is(PreparePromotion) && !pn.is_in_maintenance() {
        if can_reach(&pn, DemoteTimeout) {
            m.assign_all(
                &[(pid, DemoteTimeout), (a, StopReplication)],
                format!(
                    "Setting goal state of {} to demote_timeout and {} to stop_replication after {} converged to prepare_promotion.",
                    NodeRef(&pn),
                    NodeRef(&an),
                    NodeRef(&an)
                ),
            );
        } else if can_reach(&pn, Demoted) && pn.goal != Demoted {
            // An old primary converged in wait_primary (or single) has no
            // way through demote_timeout: demoted keeps it down.
            m.assign_all(
                &[(pid, Demoted), (a, StopReplication)],
                format!(
                    "Setting goal state of {} to demoted and {} to stop_replication after {} converged to prepare_promotion.",
                    NodeRef(&pn),
                    NodeRef(&an),
                    NodeRef(&an)
                ),
            );
        } else {
            m.assign(
                a,
                StopReplication,
                format!(
                    "Setting goal state of {} to stop_replication after {} converged to prepare_promotion.",
                    NodeRef(&an),
                    NodeRef(&an)
                ),
            );
        }
        return Ok(true);
    }
    // R17
    if an.is(StopReplication) && pn.is(PrepareMaintenance) {
        m.assign_all(
            &[(a, WaitPrimary), (pid, Maintenance)],
            format!(
                "Setting goal state of {} to wait_primary and {} to maintenance.",
                NodeRef(&an),
                NodeRef(&pn)
            ),
        );
        return Ok(true);
    }
    // R18
    if an.is(StopReplication) && old_primary_is_fenced(m, &pn, &an) {
        // The old primary goes to demoted when its keeper can; one already
        // on its way to an election (report_lsn) joins the new primary later.
        let mut assignments = vec![(a, WaitPrimary)];
        if can_reach(&pn, Demoted) {
            assignments.push((pid, Demoted));
        }
        m.assign_all(
            &assignments,
            format!(
                "Setting goal state of {} to wait_primary and {} to demoted after the demote timeout expired.",
                NodeRef(&an),
                NodeRef(&pn)
            ),
        );
        return Ok(true);
    }
    // R21a
    if an.is(Demoted)
        && p_healthy
        && matches!(pn.reported, WaitPrimary | JoinPrimary)
        && pn.goal == Primary
    {
        m.assign(
            a,
            CatchingUp,
            format!(
                "Setting goal state of {} to catchingup after it converged to demotion and {} converged to primary.",
                NodeRef(&an),
                NodeRef(&pn)
            ),
        );
        return Ok(true);
    }
    // R21b
    if an.is(Demoted) && p_healthy && pn.is_any(&[JoinPrimary, WaitPrimary, Primary]) {
        m.assign(
            a,
            CatchingUp,
            format!(
                "Setting goal state of {} to catchingup after it converged to demotion and {} converged to {}.",
                NodeRef(&an),
                NodeRef(&pn),
                pn.reported
            ),
        );
        return Ok(true);
    }
    // R22
    if an.is(JoinSecondary)
        && pn.reported == WaitPrimary
        && matches!(pn.goal, WaitPrimary | Primary)
    {
        m.assign(
            a,
            Secondary,
            format!(
                "Setting goal state of {} to secondary after {} converged to wait_primary.",
                NodeRef(&an),
                NodeRef(&pn)
            ),
        );
        return primary::proceed(m, pid);
    }
    // R23
    if an.is(JoinSecondary) && pn.is(Primary) {
        m.assign(
            a,
            Secondary,
            format!(
                "Setting goal state of {} to secondary after {} converged to primary.",
                NodeRef(&an),
                NodeRef(&pn)
            ),
        );
        return Ok(true);
    }
    Ok(false)
}

/// Whether every write `p` acknowledged is also on a standby of its
/// synchronous replication, as far as its last report and its goal tell:
/// not `wait_primary` nor `single`, which acknowledge writes alone. A
/// standby is never elected to replace a primary that did: it would lose
/// those writes.
pub fn acks_synchronously(p: &crate::Node) -> bool {
    !matches!(p.reported, WaitPrimary | Single) && !matches!(p.goal, WaitPrimary | Single)
}

/// Whether the primary `p` lists standby `s` among those replying to its
/// WAL sender in its latest report (always true of a primary whose keeper
/// does not report them, as upstream's).
pub fn streams_to(p: &crate::Node, s: &crate::Node) -> bool {
    !p.reports_standbys || s.streamed_time >= p.report_time
}

/// The R18 condition: the old primary `p` can no longer accept writes, so
/// the promoted node `a` (converged in `stop_replication`) may open for
/// writes.
fn old_primary_is_fenced(m: &Machine<'_>, p: &crate::Node, a: &crate::Node) -> bool {
    let ctx = m.ctx;
    // Its keeper confirmed that Postgres is stopped, or restarted as a
    // standby, after it was told to.
    if p.is(DemoteTimeout) || p.is(Demoted) {
        return true;
    }
    if !p.reported.can_take_writes() && !p.goal.can_take_writes() && p.confirmed() {
        return true;
    }
    if p.lease {
        // The keeper of `p` fences its Postgres once its lease expired and
        // one of its standbys (`a`, which promoted before reporting
        // stop_replication) stopped streaming from it for fence_timeout.
        return ctx.lease_expired(p)
            && ctx.elapsed(a.state_change_time, ctx.settings.fence_timeout_ms);
    }
    if p.goal == DemoteTimeout {
        return ctx.is_drain_time_expired(Some(p));
    }
    // Upstream keepers: presumed down after primary_demote_timeout.
    ctx.is_unhealthy(Some(p))
        && ctx.elapsed(
            p.state_change_time.max(a.state_change_time),
            ctx.settings.primary_demote_timeout_ms,
        )
}
