//! Which of the monitor's writes must reach disk before the call returns.
//!
//! Every keeper reports four times a second, and each report updates its
//! node row. Waiting for the WAL flush of each one puts the disk's fsync
//! latency inside the formation lock that every call of the group takes:
//! on a busy disk one slow flush held that lock for 1.7 s, the primary's
//! lease renewal waited behind it, and the primary fenced itself (a
//! failover nobody needed). So a write that only refreshes observations
//! (report times, WAL positions, health, who streams from whom) in a group
//! where nothing is changing commits asynchronously, with what it logs
//! (a health check's new verdict is logged and recorded as an event).
//! Everything else (a goal, a reported state, Postgres up or down, a
//! timeline, a member, an event and its `state` notification) waits for
//! the flush, as before: while such a decision commits, the group's other
//! calls still wait for it.
//!
//! Why losing such a write is harmless: only a crash of the monitor's
//! Postgres loses it, and a crash counts as a restart of the monitor
//! (`monitor-ext/src/clock.rs`): no lease is judged expired until
//! `lease_timeout` after it, no health check from before it counts, and by
//! then every live keeper has reported again. A lost refresh reads as an
//! older one, which only makes a decision wait.

use crate::node::{Group, Node};
use crate::state::NodeState;

/// States in which a node's reports are only observations: no election,
/// promotion, demotion or maintenance is under way.
const STEADY: &[NodeState] = &[
    NodeState::Single,
    NodeState::Primary,
    NodeState::WaitPrimary,
    NodeState::Secondary,
    NodeState::CatchingUp,
    NodeState::Maintenance,
];

/// The node with its observation fields blanked out.
fn decisions(n: &Node) -> Node {
    let mut n = n.clone();
    n.report_time = 0;
    n.lsn = crate::Lsn::ZERO;
    n.wal_report_time = 0;
    n.health = crate::Health::Unknown;
    n.health_check_time = 0;
    n.upstream_node_id = 0;
    n.upstream_age_ms = -1;
    n.streamed_time = 0;
    n.reports_standbys = false;
    n
}

/// True when going from `before` to `after` may commit without waiting
/// for the WAL flush: the same formation and members, every node settled
/// in a steady state (reported == goal), and only observations changed.
/// What such a change logs or records as an event (a health check's new
/// verdict) describes an observation too, and goes with it.
pub fn may_commit_asynchronously(before: &Group, after: &Group) -> bool {
    before.formation == after.formation
        && before.nodes.len() == after.nodes.len()
        && after.nodes.iter().all(|n| {
            n.reported == n.goal
                && STEADY.contains(&n.goal)
                && before
                    .node(n.id)
                    .is_some_and(|old| decisions(old) == decisions(n))
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::node::Formation;
    use crate::{Health, Lsn};

    fn group(states: &[(NodeState, NodeState)]) -> Group {
        let nodes = states
            .iter()
            .enumerate()
            .map(|(i, (reported, goal))| {
                let mut n = Node::new(i as i64 + 1, &format!("node{}", i + 1), "h", 5432, 0);
                n.reported = *reported;
                n.goal = *goal;
                n.delivered = *goal;
                n.lease = true;
                n
            })
            .collect();
        Group::new(Formation::default_formation(), 0, nodes)
    }

    fn steady() -> Group {
        group(&[
            (NodeState::Primary, NodeState::Primary),
            (NodeState::Secondary, NodeState::Secondary),
        ])
    }

    #[test]
    fn a_heartbeat_in_a_steady_group_needs_no_flush() {
        let before = steady();
        let mut after = before.clone();
        for n in &mut after.nodes {
            n.report_time += 250_000;
            n.wal_report_time += 250_000;
            n.lsn = Lsn(0x3000060);
            n.health = Health::Good;
            n.health_check_time += 1;
            n.upstream_node_id = 1;
            n.upstream_age_ms = 12;
            n.streamed_time += 250_000;
            n.reports_standbys = true;
        }
        assert!(may_commit_asynchronously(&before, &after));
    }

    #[test]
    fn decisions_and_their_evidence_are_flushed() {
        let before = steady();
        type Change = (&'static str, fn(&mut Node));
        let changes: Vec<Change> = vec![
            ("goal", |n| n.goal = NodeState::Draining),
            ("reported state", |n| n.reported = NodeState::Draining),
            ("postgres down", |n| n.pg_is_running = false),
            ("timeline", |n| n.tli = 2),
            ("lease", |n| n.lease = false),
            ("delivered goal", |n| n.delivered = NodeState::Draining),
            ("sync state", |n| n.rep_state = "quorum".into()),
            ("candidate priority", |n| n.candidate_priority = 0),
            ("replication quorum", |n| n.replication_quorum = false),
            ("state change time", |n| n.state_change_time += 1),
        ];
        for (what, change) in changes {
            let mut after = before.clone();
            change(&mut after.nodes[0]);
            assert!(
                !may_commit_asynchronously(&before, &after),
                "{what} committed asynchronously"
            );
        }
        let mut after = before.clone();
        after.nodes.pop();
        assert!(!may_commit_asynchronously(&before, &after), "a member left");
        let mut after = before.clone();
        after.formation.number_sync_standbys = 1;
        assert!(!may_commit_asynchronously(&before, &after), "formation");
    }

    #[test]
    fn heartbeats_during_a_transition_are_flushed() {
        for (reported, goal) in [
            (NodeState::Secondary, NodeState::ReportLsn),
            (NodeState::ReportLsn, NodeState::ReportLsn),
            (NodeState::PreparePromotion, NodeState::PreparePromotion),
            (NodeState::Draining, NodeState::Draining),
        ] {
            let before = group(&[(NodeState::Primary, NodeState::Primary), (reported, goal)]);
            let mut after = before.clone();
            after.nodes[1].lsn = Lsn(0x3000060);
            after.nodes[1].report_time += 250_000;
            assert!(
                !may_commit_asynchronously(&before, &after),
                "{reported} -> {goal}"
            );
        }
    }
}
