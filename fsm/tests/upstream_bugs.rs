//! Each upstream v2.2 bug known upstream that this monitor
//! fixes on purpose, pinned by a test named after it. (The health-predicate
//! fixes of upstream bug 2 are tested in `src/health.rs`.)

#![allow(clippy::unwrap_used)] // tests: a panic is a failure report

mod common;

use common::Sim;
use pgaf_fsm::api::{self, Report};
use pgaf_fsm::standby_names::synchronous_standby_names;
use pgaf_fsm::{Health, Lsn, NodeState::*, SqlState};

/// upstream bug 1: v2.2 ran the state machine on the caller's previous report,
/// so a standby that just said "my Postgres is down" could still be promoted.
#[test]
fn bug_stale_report_decides_the_failover() {
    let (mut s, _) = Sim::cluster(&["node1", "node2"]);
    s.report_down(1, Primary);
    let goal = s
        .report_full(Report {
            node_id: 2,
            group_id: 0,
            state: Secondary,
            pg_is_running: false,
            tli: 1,
            lsn: Lsn(s.wal),
            rep_state: String::new(),
            lease: false,
            upstream_node_id: 0,
            upstream_age_ms: -1,
            streaming: None,
        })
        .unwrap();
    assert_eq!(
        goal, Secondary,
        "a standby whose Postgres is down is not promoted"
    );
    assert_eq!(
        s.report(2, Secondary),
        PreparePromotion,
        "once it runs again, it is"
    );
}

/// upstream bug 3: the goal the election assigns to the calling node was only
/// returned on its next call.
#[test]
fn bug_returned_goal_lags_one_heartbeat() {
    let (mut s, _) = Sim::cluster(&["node1", "node2", "node3"]);
    s.report_down(1, Primary);
    assert_eq!(s.report(2, Secondary), ReportLsn);
}

/// upstream bug 4: a lone priority-0 node got `report_lsn` re-assigned, with an
/// event, on every heartbeat.
#[test]
fn bug_lone_priority_zero_node_floods_events() {
    let (mut s, _) = Sim::cluster(&["node1", "node2"]);
    s.op(|c, g| api::set_node_candidate_priority(c, g, "node2", 0))
        .unwrap();
    s.op(|c, g| api::remove_node(c, g, 1, true)).unwrap();
    assert_eq!(s.report(2, Secondary), ReportLsn);
    let mark = s.events.len();
    s.report(2, ReportLsn);
    for _ in 0..10 {
        s.report(2, ReportLsn);
    }
    assert_eq!(s.events.len(), mark + 1, "only the report of the new state");
}

/// upstream bug 5 (and the forced-removal quirk): removing the primary
/// by force left a group without primary whose every heartbeat failed with
/// "ProceedGroupState couldn't find the primary node".
#[test]
fn bug_group_without_primary_fails_every_heartbeat() {
    let (mut s, _) = Sim::cluster(&["node1", "node2", "node3"]);
    s.op(|c, g| api::remove_node(c, g, 1, true)).unwrap();
    assert!(s.group.node(1).is_none());
    assert_eq!(s.report(2, Secondary), ReportLsn);
    s.report(2, ReportLsn);
    s.report(3, Secondary);
    s.report(3, ReportLsn);
    let winner = [2, 3]
        .into_iter()
        .find(|&id| s.goal(id) == PreparePromotion)
        .expect("elected");
    assert_eq!(s.report(winner, PreparePromotion), WaitPrimary);
}

/// upstream bug 12: synchronous_standby_names in a two-node group without a
/// writable node crashed v2.2. It answers for the old primary being
/// demoted, and keeps its standby: whatever it still applies cannot release
/// a commit (see `bug_demoted_primary_releases_commits_during_a_failover`).
#[test]
fn bug_standby_names_without_primary() {
    let (mut s, _) = Sim::cluster(&["node1", "node2"]);
    s.report_down(1, Primary);
    s.report(2, Secondary);
    assert_eq!(s.goal(1), Draining);
    assert_eq!(
        synchronous_standby_names(&s.group).unwrap(),
        "ANY 1 (pgautofailover_standby_2)"
    );
}

/// Found by the model check: an old primary on its way from
/// `apply_settings` to `primary` (a goal it received before it was failed
/// over) applied the `synchronous_standby_names` of a group in the middle
/// of an election, which was empty: its commits waiting for a standby were
/// released, acknowledged, and missing on the new primary.
#[test]
fn bug_demoted_primary_releases_commits_during_a_failover() {
    let (mut s, _) = Sim::cluster(&["node1", "node2", "node3"]);
    s.op(|c, g| api::set_formation_number_sync_standbys(c, g, 1))
        .unwrap();
    s.converge(1);
    s.converge(1);
    // The election has begun: no node has a writable goal.
    s.report_down(1, Primary);
    s.report(2, Secondary);
    s.report(3, Secondary);
    assert!(s.group.writable_goal_node().is_none(), "{:?}", s.group);
    assert_eq!(
        synchronous_standby_names(&s.group).unwrap(),
        "ANY 1 (pgautofailover_standby_2, pgautofailover_standby_3)"
    );
}

/// upstream bug 13: stop_maintenance on a node left alone in its group did
/// nothing; it now rejoins through report_lsn and becomes single.
#[test]
fn bug_stop_maintenance_alone_is_a_no_op() {
    let (mut s, _) = Sim::cluster(&["node1", "node2"]);
    s.op(|c, g| api::start_maintenance(c, g, 2)).unwrap();
    s.report(1, WaitPrimary);
    s.report(2, WaitMaintenance);
    s.report(2, Maintenance);
    s.op(|c, g| api::remove_node(c, g, 1, true)).unwrap();
    s.op(|c, g| api::stop_maintenance(c, g, 2)).unwrap();
    assert_eq!(s.goal(2), ReportLsn);
    assert_eq!(s.report(2, ReportLsn), Single);
}

/// upstream bug 14: the old primary penalised by perform_failover kept a negative
/// candidate priority forever when it was not in the candidate list.
#[test]
fn bug_negative_priority_leaks() {
    let (mut s, _) = Sim::cluster(&["node1", "node2", "node3"]);
    s.op(api::perform_failover).unwrap();
    assert_eq!(s.node(1).candidate_priority, -51);
    // The old primary dies for good while draining: never a candidate.
    s.health(1, Health::Bad);
    s.report_down(1, Primary);
    s.advance(20_000);
    s.report(2, Secondary);
    s.report(2, ReportLsn);
    s.report(3, Secondary);
    s.report(3, ReportLsn);
    s.report(2, ReportLsn);
    assert!([2, 3].iter().any(|&id| s.goal(id) == PreparePromotion));
    assert_eq!(s.node(1).candidate_priority, 50);
}

/// upstream bug 15: perform_failover promoted a priority-0 standby of a
/// two-node group, and drained a primary with no candidate to replace it.
#[test]
fn bug_failover_to_a_standby_that_cannot_be_promoted() {
    let (mut s, _) = Sim::cluster(&["node1", "node2"]);
    s.op(|c, g| api::set_node_candidate_priority(c, g, "node2", 0))
        .unwrap();
    s.converge(1);
    s.converge(1);
    let err = s.op(api::perform_failover).unwrap_err();
    assert_eq!(err.code, SqlState::NOT_IN_PREREQUISITE_STATE);
    assert!(
        err.message.contains("has candidate priority 0"),
        "{}",
        err.message
    );
    assert_eq!(s.goal(1), Primary);

    let (mut s, _) = Sim::cluster(&["node1", "node2", "node3"]);
    for n in ["node2", "node3"] {
        s.op(|c, g| api::set_node_candidate_priority(c, g, n, 0))
            .unwrap();
        s.converge(1);
        s.converge(1);
    }
    let err = s.op(api::perform_failover).unwrap_err();
    assert!(err
        .message
        .contains("no healthy secondary node with a candidate priority above 0"));
    assert_eq!(s.goal(1), Primary);
    let err = s
        .op(|c, g| api::perform_promotion(c, g, "node2"))
        .unwrap_err();
    assert!(err.message.contains("has candidate priority 0"));
}

/// upstream bug 16: removing a standby lowered number_sync_standbys assuming the
/// primary takes part in the quorum.
#[test]
fn bug_remove_node_miscounts_quorum_standbys() {
    let (mut s, _) = Sim::cluster(&["node1", "node2", "node3", "node4"]);
    // The primary itself does not take part in the replication quorum.
    s.group.node_mut(1).unwrap().replication_quorum = false;
    s.op(|c, g| api::set_formation_number_sync_standbys(c, g, 2))
        .unwrap();
    s.converge(1);
    s.converge(1);
    s.op(|c, g| api::remove_node(c, g, 4, false)).unwrap();
    // Two quorum standbys remain: number_sync_standbys 2 cannot be met, 1 can.
    assert_eq!(s.group.formation.number_sync_standbys, 1);
}

/// upstream bug 17: v2.2 assigned goals the keeper has no transition for (here
/// `draining` to a dead primary converged in `wait_primary`, issue #1168), so
/// the failover never completed. Checked systematically by the model check.
///
/// We go further (docs/failover.md): a primary that acknowledged writes
/// alone is not replaced at all, since the standby that caught up
/// meanwhile may lack the last of them. The group waits for it, and no
/// goal it cannot reach is ever assigned.
#[test]
fn bug_unreachable_goal_for_a_dead_wait_primary() {
    let (mut s, _) = Sim::cluster(&["node1", "node2"]);
    s.health(2, Health::Bad);
    s.advance(20_000);
    s.report(1, Primary);
    s.report(1, WaitPrimary);
    // The standby comes back, catches up...
    assert_eq!(s.report(2, CatchingUp), Secondary);
    s.report(2, Secondary);
    // ...and the primary dies before it could go back to primary.
    s.report_down(1, WaitPrimary);
    s.health(1, Health::Bad);
    s.advance(60_000);
    assert_eq!(
        s.report(2, Secondary),
        Secondary,
        "not promoted: it may lack writes node1 acknowledged alone"
    );
    let n1 = s.group.node(1).unwrap().clone();
    assert!(
        pgaf_fsm::keeper::can_reach(n1.reported, n1.goal, false),
        "{} -> {} is not a transition of the keeper",
        n1.reported,
        n1.goal
    );
    // It comes back and carries on as the primary.
    s.health(1, Health::Good);
    assert_eq!(s.report(1, WaitPrimary), Primary);
    assert_eq!(s.report(1, Primary), Primary);
    assert_eq!(s.report(2, Secondary), Secondary);
}

/// Registration: v2.2 refused a first node with candidate priority 0 with
/// 55006, which pg_autoctl retries forever.
#[test]
fn bug_first_node_with_priority_zero_is_refused_forever() {
    let mut s = Sim::new();
    let n = s.register_with("node1", "h1", 5432, 0, true).unwrap();
    assert_eq!(n.goal, Single);
    assert_eq!(s.report(1, Single), Single, "and it stays single");
}
