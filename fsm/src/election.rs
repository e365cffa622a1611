//! `ProceedGroupStateForMSFailover`: the multi-standby failover (election),
//! steps M1–M6 of upstream's election.
//!
//! Departures from v2.2: every node that follows, or is about to follow,
//! the old primary reports its LSN before a candidate is selected (v2.2
//! ignored nodes between two states, which could hold commits acknowledged
//! by the old primary); ties are broken deterministically (candidate
//! priority, then LSN, then node id); nodes left waiting in `join_secondary`
//! for a candidate that is no longer being promoted take part in the next
//! election (our keepers only); when the election concludes, every
//! node of the group whose priority was lowered by `perform_failover` gets it
//! back, not only the nodes in the candidate list (upstream bug 14); and
//! (ours) no election starts while the old primary acknowledged writes
//! alone, in `wait_primary` or `single`.

use crate::effect::{MonitorError, Result, SqlState};
use crate::health::wal_difference_within;
use crate::lsn::Lsn;
use crate::machine::Machine;
use crate::node::{Node, NodeRef};
use crate::state::NodeState::*;

/// Continue or start an election with `a` as the active node and `p` as the
/// old primary (if one can still be resolved). Returns whether anything
/// changed.
pub fn proceed(m: &mut Machine<'_>, a: i64, p: Option<i64>) -> Result<bool> {
    // M1: a promotion is already under way.
    if let Some(c) = m.group.candidate_being_promoted().cloned() {
        if c.id == a {
            return proceed_with(m, a, &c);
        }
        let an = m.n(a).clone();
        m.log(format!(
            "Active {} found failover candidate {} being promoted (currently \"{}\"/\"{}\")",
            NodeRef(&an),
            NodeRef(&c),
            c.reported,
            c.goal
        ));
        if matches!(c.reported, ReportLsn | PreparePromotion) || m.ctx.is_healthy(Some(&c)) {
            return proceed_with(m, a, &c);
        }
    }

    // Ours: no election replaces a primary that acknowledged writes alone
    // (wait_primary, single): its standbys may lack them. The group waits
    // for it to come back (rules.rs, `acks_synchronously`).
    if let Some(pn) = p.map(|id| m.n(id).clone()) {
        if !crate::rules::acks_synchronously(&pn) {
            m.log(format!(
                "Not electing a new primary: {} acknowledged writes alone in state \"{}\", which its standbys may lack",
                NodeRef(&pn),
                pn.reported
            ));
            return Ok(false);
        }
    }

    // M2: build the candidate list.
    let nss = m.group.formation.number_sync_standbys;
    let mut candidates: Vec<i64> = Vec::new();
    let mut quorum_candidates = 0;
    let mut missing = 0;
    for id in m.group.active_ids() {
        let n = m.n(id).clone();
        if (n.is_in_primary_state() || n.is_being_demoted_primary() || n.is_demoted_primary())
            && !(n.is(Draining) || n.is(Demoted))
        {
            continue;
        }
        if m.ctx.is_unhealthy(Some(&n)) && !m.ctx.is_reporting(Some(&n)) {
            // A silent quorum node may hold the most recent commits, unless
            // it is converged in report_lsn: then the LSN it reported is
            // final. (Fixed: upstream trusted the reported state alone, also
            // for a node sent back to follow the primary since.)
            if n.replication_quorum && !n.is(ReportLsn) {
                missing += 1;
            }
            continue;
        }
        // Ours: the old primary that our keeper reported drained has its
        // Postgres stopped: it takes no write any more, and every write it
        // acknowledged is on a standby of its synchronous replication
        // (`acks_synchronously`), which reports. Its own report is not
        // waited for: it joins the new primary once it made it (its start
        // as a standby took a third of a second of every switchover).
        let drained = n.lease && n.reported == Draining;
        if n.is(ReportLsn) {
            candidates.push(id);
            if n.replication_quorum || nss == 0 {
                quorum_candidates += 1;
            }
        } else if n.goal == ReportLsn {
            if !drained {
                missing += 1;
            }
        } else if n.goal == JoinSecondary
            && m.group.candidate_being_promoted().is_none()
            && crate::keeper::can_reach(n.reported, ReportLsn, n.lease)
            && crate::keeper::can_reach(JoinSecondary, ReportLsn, n.lease)
        {
            // (ours) It was waiting for a candidate that is no longer being
            // promoted: back to the election with the LSN it stopped at.
            missing += 1;
            m.assign(
                id,
                ReportLsn,
                format!(
                    "Setting goal state of {} to report_lsn to find the failover candidate",
                    NodeRef(&n)
                ),
            );
        } else if (matches!(n.goal, Secondary | CatchingUp) || n.is(Draining) || n.is(Demoted))
            && crate::keeper::can_reach(n.reported, ReportLsn, n.lease)
            && crate::keeper::can_reach(n.goal, ReportLsn, n.lease)
        {
            // Fixed: any node on its way to following the old primary (for
            // instance one sent back to it from report_lsn while it looked
            // healthy) reports again: it may hold commits the old primary
            // acknowledged since. Upstream only took converged standbys.
            if !drained {
                missing += 1;
            }
            m.assign(
                id,
                ReportLsn,
                format!(
                    "Setting goal state of {} to report_lsn to find the failover candidate",
                    NodeRef(&n)
                ),
            );
        }
    }

    // M3: gates.
    let an = m.n(a).clone();
    if missing > 0 {
        m.log(format!(
            "Failover still in progress after {} nodes reported their LSN and we are waiting for {} nodes to report, activeNode is {} and reported state \"{}\"",
            candidates.len(),
            missing,
            NodeRef(&an),
            an.reported
        ));
        return Ok(false);
    }
    if candidates.is_empty() {
        return Ok(false);
    }
    if quorum_candidates < nss + 1 {
        m.log(format!(
            "Failover still in progress with {} candidates that participate in the quorum having reported their LSN: {} nodes are required in the quorum to satisfy number_sync_standbys={} in formation \"{}\", activeNode is {} and reported state \"{}\"",
            quorum_candidates,
            nss + 1,
            nss,
            m.group.formation.id,
            NodeRef(&an),
            an.reported
        ));
        return Ok(false);
    }

    // M4: the most advanced standbys.
    let most_advanced = most_advanced_standbys(m.group.active());
    let Some(first_ma) = most_advanced.first().cloned() else {
        return Err(MonitorError::new(
            SqlState::INTERNAL_ERROR,
            "BUG: mostAdvancedNodeList is empty",
        ));
    };
    let ma_lsn = first_ma.lsn;
    m.log(format!(
        "The current most advanced reported LSN is {}, as reported by {} and {} other nodes",
        ma_lsn,
        NodeRef(&first_ma),
        most_advanced.len() - 1
    ));

    // M5: select.
    let pn = p.and_then(|id| m.group.node(id)).cloned();
    let selected = select_candidate(m, &candidates, pn.as_ref(), &first_ma, &most_advanced);
    let Some(s) = selected else {
        m.log(format!(
            "Failover still in progress after all {} candidate nodes reported their LSN and we failed to select one of them; activeNode is {} and reported state \"{}\"",
            candidates.len(),
            NodeRef(&an),
            an.reported
        ));
        return Ok(false);
    };

    // M6: promote.
    promote_selected(m, s, pn.as_ref(), candidates.len(), ma_lsn);
    Ok(true)
}

/// `ProceedWithMSFailover`: join the node being promoted once it is ready.
fn proceed_with(m: &mut Machine<'_>, a: i64, c: &Node) -> Result<bool> {
    let an = m.n(a).clone();
    if an.is(ReportLsn) && c.is_ready_to_stream_wal() {
        m.assign(
            a,
            JoinSecondary,
            format!(
                "Setting goal state of {} to join_secondary after {} got selected as the failover candidate.",
                NodeRef(&an),
                NodeRef(c)
            ),
        );
        return Ok(true);
    }
    Ok(false)
}

/// `ListMostAdvancedStandbyNodes`: the non-primary nodes sharing the highest
/// reported LSN of the highest timeline.
pub fn most_advanced_standbys<'a>(nodes: impl Iterator<Item = &'a Node>) -> Vec<Node> {
    let mut sorted: Vec<&Node> = nodes.filter(|n| !n.reported.belongs_to_primary()).collect();
    sorted.sort_by(|x, y| {
        y.tli
            .cmp(&x.tli)
            .then(y.lsn.cmp(&x.lsn))
            .then(x.id.cmp(&y.id))
    });
    let mut reference = Lsn::ZERO;
    let mut result = Vec::new();
    for n in sorted {
        if reference.is_zero() {
            reference = n.lsn;
        }
        if n.lsn == reference {
            result.push(n.clone());
        }
    }
    result
}

/// `SelectFailoverCandidateNode`.
fn select_candidate(
    m: &mut Machine<'_>,
    candidates: &[i64],
    p: Option<&Node>,
    first_ma: &Node,
    most_advanced: &[Node],
) -> Option<i64> {
    let threshold = m.ctx.settings.promote_wal_log_threshold;
    if let Some(p) = p {
        if !wal_difference_within(Some(first_ma), Some(p), threshold) {
            m.log(format!(
                "One of the most advanced standby nodes in the group is {}with reported LSN {}, which is more than pgautofailover.enable_sync_wal_log_threshold ({}) behind the primary {}, which has reported {}",
                NodeRef(first_ma),
                first_ma.lsn,
                threshold,
                NodeRef(p),
                p.lsn
            ));
            return None;
        }
    }

    let mut sorted: Vec<Node> = candidates
        .iter()
        .map(|&id| m.n(id).clone())
        .filter(|n| n.candidate_priority > 0)
        .collect();
    sorted.sort_by(|x, y| {
        y.candidate_priority
            .cmp(&x.candidate_priority)
            .then(x.id.cmp(&y.id))
    });

    let mut selected: Option<Node> = None;
    for c in sorted {
        if m.ctx.is_unhealthy(Some(&c)) {
            m.log(format!(
                "Not selecting failover candidate {}because it is unhealthy",
                NodeRef(&c)
            ));
            continue;
        }
        match &selected {
            None => selected = Some(c),
            Some(s) if c.candidate_priority < s.candidate_priority => break,
            Some(s) if c.lsn > s.lsn => selected = Some(c),
            Some(_) => {}
        }
    }
    let s = selected?;
    if s.lsn < first_ma.lsn && !most_advanced.iter().any(|n| m.ctx.is_healthy(Some(n))) {
        m.log(format!(
            "The selected candidate {} needs to fetch missing WAL to reach LSN {} (from current reported LSN {}) and none of the most advanced standby nodes are healthy at the moment.",
            NodeRef(&s),
            first_ma.lsn,
            s.lsn
        ));
        return None;
    }
    Some(s.id)
}

/// `PromoteSelectedNode`.
fn promote_selected(m: &mut Machine<'_>, s: i64, p: Option<&Node>, count: usize, ma_lsn: Lsn) {
    let sn = m.n(s).clone();
    if sn.candidate_priority > 100 {
        let cp = sn.candidate_priority - 101;
        m.set_priority(
            s,
            cp,
            format!(
                "Updating candidate priority back to {} for {}",
                cp,
                NodeRef(&sn)
            ),
        );
    }
    for id in m.group.active_ids() {
        let n = m.n(id).clone();
        if n.candidate_priority < 0 {
            let cp = n.candidate_priority + 101;
            m.set_priority(
                id,
                cp,
                format!(
                    "Updating candidate priority back to {} for {}",
                    cp,
                    NodeRef(&n)
                ),
            );
        }
    }
    let sn = m.n(s).clone();
    if sn.lsn == ma_lsn {
        let description = match p {
            Some(p) => format!(
                "Setting goal state of {} to prepare_promotion after {} became unhealthy and {} nodes reported their LSN position.",
                NodeRef(&sn),
                NodeRef(p),
                count
            ),
            None => format!(
                "Setting goal state of {} to prepare_promotion and {} nodes reported their LSN position.",
                NodeRef(&sn),
                count
            ),
        };
        m.assign(s, PreparePromotion, description);
    } else {
        let description = match p {
            Some(p) => format!(
                "Setting goal state of {} to fast_forward after {} became unhealthy and {} nodes reported their LSN position.",
                NodeRef(&sn),
                NodeRef(p),
                count
            ),
            None => format!(
                "Setting goal state of {} to fast_forward after {} nodes reported their LSN position.",
                NodeRef(&sn),
                count
            ),
        };
        m.assign(s, FastForward, description);
    }
}
