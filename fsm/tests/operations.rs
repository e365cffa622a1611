//! Operator functions (upstream's walkthroughs of maintenance, priorities and removal) and the
//! lease-based failover of our keepers.

#![allow(clippy::unwrap_used)] // tests: a panic is a failure report

mod common;

use common::Sim;
use pgaf_fsm::api;
use pgaf_fsm::standby_names::synchronous_standby_names;
use pgaf_fsm::{Health, Lsn, NodeState::*, NoticeLevel, SqlState};

#[test]
fn maintenance_on_a_secondary_with_number_sync_standbys_one() {
    let (mut s, _) = Sim::cluster(&["node1", "node2", "node3"]);
    let mark = s.events.len();
    assert!(s.op(|c, g| api::start_maintenance(c, g, 3)).unwrap());
    assert_eq!(
        s.events_since(mark),
        vec!["Setting goal state of node 3 \"node3\" (10.0.0.3:5432) to maintenance after a user-initiated start_maintenance call."]
    );
    assert_eq!(s.goal(1), Primary, "the primary is untouched");
    s.report(3, Maintenance);
    assert_eq!(s.report(3, Maintenance), Maintenance, "frozen");
    assert!(
        s.op(|c, g| api::start_maintenance(c, g, 3)).unwrap(),
        "already in maintenance"
    );
    let mark = s.events.len();
    assert!(s.op(|c, g| api::stop_maintenance(c, g, 3)).unwrap());
    assert_eq!(
        s.events_since(mark),
        vec!["Setting goal state of node 3 \"node3\" (10.0.0.3:5432) to catchingup  after a user-initiated stop_maintenance call."]
    );
    assert_eq!(s.report(3, CatchingUp), Secondary);
    assert!(
        !s.op(|c, g| api::start_maintenance(c, g, 42)).unwrap(),
        "unknown node"
    );
}

#[test]
fn maintenance_on_the_last_sync_standby_switches_the_primary_to_async_first() {
    let (mut s, _) = Sim::cluster(&["node1", "node2"]);
    s.op(|c, g| api::start_maintenance(c, g, 2)).unwrap();
    assert_eq!(s.goal(1), WaitPrimary);
    assert_eq!(s.goal(2), WaitMaintenance);
    s.report(2, WaitMaintenance);
    assert_eq!(
        s.report(2, WaitMaintenance),
        WaitMaintenance,
        "waits for the primary"
    );
    s.report(1, WaitPrimary);
    assert_eq!(s.report(2, WaitMaintenance), Maintenance);
    assert_eq!(
        s.events.last().unwrap().1,
        "Setting goal state of node 2 \"node2\" (10.0.0.2:5432) to maintenance after node 1 \"node1\" (10.0.0.1:5432) converged to wait_primary."
    );
}

#[test]
fn maintenance_on_the_primary_of_two_nodes_promotes_the_standby() {
    let (mut s, _) = Sim::cluster(&["node1", "node2"]);
    let mark = s.events.len();
    s.op(|c, g| api::start_maintenance(c, g, 1)).unwrap();
    assert_eq!(
        s.events_since(mark),
        vec![
            "Setting goal state of node 1 \"node1\" (10.0.0.1:5432) to prepare_maintenance after a user-initiated start_maintenance call.",
            "Setting goal state of node 1 \"node1\" (10.0.0.1:5432) to prepare_maintenance and node 2 \"node2\" (10.0.0.2:5432) to prepare_promotion after a user-initiated start_maintenance call."
        ]
    );
    assert_eq!(
        s.report(2, PreparePromotion),
        PreparePromotion,
        "waits for the primary to stop"
    );
    s.report_down(1, PrepareMaintenance);
    assert_eq!(s.report(2, PreparePromotion), StopReplication);
    assert_eq!(s.report(2, StopReplication), WaitPrimary);
    assert_eq!(s.goal(1), Maintenance);
    s.report_down(1, Maintenance);
    s.report(2, WaitPrimary);
    s.op(|c, g| api::stop_maintenance(c, g, 1)).unwrap();
    assert_eq!(s.goal(1), CatchingUp);
    assert_eq!(s.report(1, CatchingUp), Secondary);
    s.report(1, Secondary);
    assert_eq!(s.report(2, WaitPrimary), Primary);
}

#[test]
fn maintenance_on_the_primary_of_three_nodes_runs_an_election() {
    let (mut s, _) = Sim::cluster(&["node1", "node2", "node3"]);
    s.op(|c, g| api::start_maintenance(c, g, 1)).unwrap();
    assert_eq!(
        s.events.last().unwrap().1,
        "Setting goal state of node 1 \"node1\" (10.0.0.1:5432) to maintenance after a user-initiated start_maintenance call."
    );
    assert_eq!(s.goal(1), PrepareMaintenance);
    assert_eq!(s.report_down(1, PrepareMaintenance), Maintenance);
    assert_eq!(s.goal(2), ReportLsn);
    assert_eq!(s.goal(3), ReportLsn);
    s.report(2, ReportLsn);
    assert_eq!(s.report(3, ReportLsn), ReportLsn);
    let winner = if s.goal(2) == PreparePromotion { 2 } else { 3 };
    assert_eq!(s.goal(winner), PreparePromotion);
    s.report_down(1, Maintenance);
    assert_eq!(s.report(winner, PreparePromotion), WaitPrimary);
}

#[test]
fn a_primary_cannot_enter_maintenance_without_a_candidate() {
    let (mut s, _) = Sim::cluster(&["node1", "node2"]);
    s.op(|c, g| api::set_node_candidate_priority(c, g, "node2", 0))
        .unwrap();
    s.converge(1);
    s.converge(1);
    let err = s.op(|c, g| api::start_maintenance(c, g, 1)).unwrap_err();
    assert_eq!(err.code, SqlState::NOT_IN_PREREQUISITE_STATE);
    assert_eq!(
        err.message,
        "Starting maintenance on node 1 \"node1\" (10.0.0.1:5432) in state \"primary\" is not currently possible"
    );
}

#[test]
fn removing_a_standby_lowers_number_sync_standbys_and_reapplies_settings() {
    let (mut s, _) = Sim::cluster(&["node1", "node2", "node3"]);
    assert_eq!(s.group.formation.number_sync_standbys, 1);
    let mark = s.events.len();
    s.op(|c, g| api::remove_node(c, g, 3, false)).unwrap();
    assert_eq!(
        s.events_since(mark),
        vec![
            "Setting goal state of node 3 \"node3\" (10.0.0.3:5432) from formation \"default\" and group 0 to \"dropped\" to implement node removal.",
            "Setting goal state of node 1 \"node1\" (10.0.0.1:5432) to apply_settings after removing standby node 3 \"node3\" (10.0.0.3:5432) from formation default."
        ]
    );
    assert_eq!(s.group.formation.number_sync_standbys, 0);
    assert_eq!(
        synchronous_standby_names(&s.group).unwrap(),
        "ANY 1 (pgautofailover_standby_2)"
    );
    assert_eq!(s.report_down(3, Dropped), Dropped);
    assert!(
        s.group.node(3).is_none(),
        "deleted once it reported dropped"
    );
    assert!(s.log_lines().contains(
        &"Removing node 3 \"node3\" (10.0.0.3:5432) from formation \"default\" and group 0"
            .to_string()
    ));
    assert_eq!(s.report(1, ApplySettings), Primary);
}

#[test]
fn removing_the_primary_elects_a_new_one() {
    let (mut s, _) = Sim::cluster(&["node1", "node2", "node3"]);
    s.op(|c, g| api::remove_node(c, g, 1, false)).unwrap();
    assert_eq!(s.goal(1), Dropped);
    assert_eq!(s.goal(2), ReportLsn);
    assert_eq!(s.goal(3), ReportLsn);
    s.report(2, ReportLsn);
    s.report(3, ReportLsn);
    let winner = [2, 3]
        .into_iter()
        .find(|&id| s.goal(id) == PreparePromotion)
        .expect("elected");
    assert_eq!(s.report(winner, PreparePromotion), WaitPrimary);
}

#[test]
fn removing_one_of_two_nodes_leaves_a_single() {
    let (mut s, _) = Sim::cluster(&["node1", "node2"]);
    s.op(|c, g| api::remove_node(c, g, 2, false)).unwrap();
    assert_eq!(s.goal(1), Single);
    assert_eq!(synchronous_standby_names(&s.group).unwrap(), "");
}

#[test]
fn removal_by_force_deletes_at_once() {
    let (mut s, _) = Sim::cluster(&["node1", "node2", "node3"]);
    s.op(|c, g| api::remove_node(c, g, 3, true)).unwrap();
    assert!(s.group.node(3).is_none());
    assert_eq!(s.group.node(1).unwrap().goal, Primary);
}

#[test]
fn candidate_priority_and_quorum_changes_go_through_apply_settings() {
    let (mut s, _) = Sim::cluster(&["node1", "node2", "node3"]);
    let err = s
        .op(|c, g| api::set_node_candidate_priority(c, g, "node2", 101))
        .unwrap_err();
    assert_eq!(err.code, SqlState::INVALID_PARAMETER_VALUE);
    assert_eq!(
        err.message,
        "invalid value for candidate_priority \"101\" expected an integer value between 0 and 100"
    );
    let err = s
        .op(|c, g| api::set_node_candidate_priority(c, g, "nobody", 1))
        .unwrap_err();
    assert_eq!(err.code, SqlState::UNDEFINED_OBJECT);
    assert_eq!(
        err.message,
        "node \"nobody\" is not registered in formation \"default\""
    );

    s.op(|c, g| api::set_node_candidate_priority(c, g, "node2", 90))
        .unwrap();
    assert_eq!(
        s.events.last().unwrap().1,
        "Setting goal state of node 1 \"node1\" (10.0.0.1:5432) to apply_settings after updating node 2 \"node2\" (10.0.0.2:5432) candidate priority to 90."
    );
    assert_eq!(
        synchronous_standby_names(&s.group).unwrap(),
        "ANY 1 (pgautofailover_standby_2, pgautofailover_standby_3)"
    );
    assert_eq!(s.report(1, ApplySettings), Primary);
    s.report(1, Primary);
    // A primary converged in apply_settings (its keeper is applying them).
    let p = s.group.node_mut(1).unwrap();
    p.goal = ApplySettings;
    p.reported = ApplySettings;
    p.delivered = ApplySettings;
    let err = s
        .op(|c, g| api::set_node_candidate_priority(c, g, "node3", 10))
        .unwrap_err();
    assert_eq!(err.message, "cannot set candidate priority when current state for primary node 1 \"node1\" (10.0.0.1:5432) is \"apply_settings\"");
    assert_eq!(s.report(1, ApplySettings), Primary);
    s.report(1, Primary);

    // number_sync_standbys = 1 needs two quorum standbys.
    let err = s
        .op(|c, g| api::set_node_replication_quorum(c, g, "node3", false))
        .unwrap_err();
    assert_eq!(err.message, "can't set replication quorum to false");
    assert_eq!(
        err.detail.as_deref(),
        Some("At least 2 standby nodes are required in formation default with number_sync_standbys = 1, and only 1 would be participating in the replication quorum")
    );
    assert!(s.group.node(3).unwrap().replication_quorum, "rolled back");
}

#[test]
fn number_sync_standbys_is_validated_and_applied() {
    let (mut s, _) = Sim::cluster(&["node1", "node2", "node3"]);
    let err = s
        .op(|c, g| api::set_formation_number_sync_standbys(c, g, -1))
        .unwrap_err();
    assert_eq!(
        err.message,
        "invalid value for number_sync_standbys: \"-1\""
    );
    assert_eq!(
        err.detail.as_deref(),
        Some("A non-negative integer is expected")
    );
    let err = s
        .op(|c, g| api::set_formation_number_sync_standbys(c, g, 2))
        .unwrap_err();
    assert_eq!(
        err.detail.as_deref(),
        Some("At least 3 standby nodes are required, and only 2 are currently participating in the replication quorum")
    );
    s.op(|c, g| api::set_formation_number_sync_standbys(c, g, 0))
        .unwrap();
    assert_eq!(s.goal(1), ApplySettings);
    assert_eq!(
        s.events.last().unwrap().1,
        "Setting goal state of node 1 \"node1\" (10.0.0.1:5432) to apply_settings after updating number_sync_standbys to 0 for formation default."
    );
    assert_eq!(s.report(1, ApplySettings), Primary);
}

#[test]
fn perform_promotion_of_a_named_standby() {
    let (mut s, _) = Sim::cluster(&["node1", "node2", "node3"]);
    assert!(
        !s.op(|c, g| api::perform_promotion(c, g, "node1")).unwrap(),
        "already primary"
    );
    assert!(s.op(|c, g| api::perform_promotion(c, g, "node3")).unwrap());
    assert_eq!(s.node(3).candidate_priority, 151);
    assert_eq!(s.node(1).candidate_priority, -51);
    s.report_down(1, Draining);
    s.report(2, ReportLsn);
    s.report(3, ReportLsn);
    s.report_down(1, ReportLsn);
    assert_eq!(s.goal(3), PreparePromotion);
    assert_eq!(s.node(3).candidate_priority, 50, "restored");
    assert_eq!(s.node(1).candidate_priority, 50, "restored");
    assert!(s.log_lines().contains(
        &"Updating candidate priority back to 50 for node 3 \"node3\" (10.0.0.3:5432)".to_string()
    ));
}

#[test]
fn priority_zero_everywhere_means_no_failover() {
    let (mut s, _) = Sim::cluster(&["node1", "node2", "node3"]);
    for n in ["node2", "node3"] {
        s.op(|c, g| api::set_node_candidate_priority(c, g, n, 0))
            .unwrap();
        s.converge(1);
        s.converge(1);
    }
    s.report_down(1, Primary);
    // Standbys report their LSN but nobody can be elected.
    s.report(2, Secondary);
    s.report(2, ReportLsn);
    s.report(3, ReportLsn);
    s.report(2, ReportLsn);
    assert_eq!(s.goal(2), ReportLsn);
    assert_eq!(s.goal(3), ReportLsn);
    assert!(s.log_lines().iter().any(|l| l.starts_with("Failover still in progress after all 2 candidate nodes reported their LSN and we failed to select one of them")));
    // The primary comes back: standbys follow it again.
    s.report(1, Primary);
    assert_eq!(s.report(2, ReportLsn), Secondary);
}

#[test]
fn priority_zero_notice() {
    let (mut s, _) = Sim::cluster(&["node1", "node2"]);
    let ctx = s.ctx();
    let out = api::set_node_candidate_priority(&ctx, &mut s.group, "node2", 0).unwrap();
    assert!(out.effects.iter().any(|e| matches!(e,
        pgaf_fsm::Effect::Notice { level: NoticeLevel::Notice, message, .. }
            if message == "setting candidate priority to zero, preventing automated failover")));
}

#[test]
fn registration_errors() {
    let mut s = Sim::new();
    s.register("node1");
    s.group.formation.opt_secondary = false;
    let err = s.register_with("node2", "h2", 5432, 50, true).unwrap_err();
    assert_eq!(err.code, SqlState::NOT_IN_PREREQUISITE_STATE);
    assert_eq!(
        err.message,
        "Formation \"default\" does not allow secondary nodes"
    );
    s.group.formation.opt_secondary = true;
    // A group whose only node is being dropped has no primary to join.
    s.op(|c, g| api::remove_node(c, g, 1, false)).unwrap();
    s.register_with("node2", "h2", 5432, 50, true)
        .expect("empty group: single");
}

/// Our keepers renew a lease with each report: a dead primary is failed over
/// after `lease_timeout`, and the new primary opens for writes once it has
/// not streamed from the old one for `fence_timeout`.
#[test]
fn lease_holders_fail_over_in_seconds() {
    let mut s = Sim::new();
    s.lease = true;
    s.register("node1");
    s.report(1, Single);
    s.register("node2");
    s.report(2, WaitStandby);
    s.converge(1);
    s.converge(1);
    s.report(2, WaitStandby);
    s.converge(1);
    s.report(2, CatchingUp);
    s.report(2, Secondary);
    s.converge(1);
    s.converge(1);
    assert_eq!(s.states(1), (Primary, Primary));
    // The primary's host dies; the standby keeps reporting every 500 ms.
    let mut waited = 0;
    while s.report(2, Secondary) == Secondary {
        s.advance(500);
        waited += 500;
        assert!(waited <= 2_500, "no failover after {waited} ms");
    }
    assert_eq!(waited, 2_000, "the lease is 2 s");
    assert_eq!(s.goal(2), PreparePromotion);
    assert_eq!(s.report(2, PreparePromotion), StopReplication);
    s.report(2, StopReplication);
    let mut waited = 0;
    while s.report(2, StopReplication) == StopReplication {
        s.advance(250);
        waited += 250;
        assert!(waited <= 2_500);
    }
    assert_eq!(waited, 2_000, "fence timeout");
    assert_eq!(s.goal(1), Demoted);
}

#[test]
fn a_primary_with_a_valid_lease_is_never_failed_over() {
    let mut s = Sim::new();
    s.lease = true;
    s.register("node1");
    s.report(1, Single);
    s.register("node2");
    s.report(2, WaitStandby);
    s.converge(1);
    s.converge(1);
    s.report(2, WaitStandby);
    s.converge(1);
    s.report(2, CatchingUp);
    s.report(2, Secondary);
    s.converge(1);
    s.converge(1);
    // The monitor cannot reach its Postgres, but its keeper keeps renewing.
    s.health(1, Health::Bad);
    for _ in 0..100 {
        s.advance(500);
        assert_eq!(s.report(1, Primary), Primary);
        assert_eq!(s.report(2, Secondary), Secondary);
    }
}

#[test]
fn the_timer_acts_on_an_expired_lease_once_the_standby_reported_since() {
    let mut s = Sim::new();
    s.lease = true;
    s.register("node1");
    s.report(1, Single);
    s.register("node2");
    s.report(2, WaitStandby);
    s.converge(1);
    s.converge(1);
    s.report(2, WaitStandby);
    s.converge(1);
    s.report(2, CatchingUp);
    s.report(2, Secondary);
    s.converge(1);
    s.converge(1);
    s.advance(1_000);
    s.report(2, Secondary);
    s.advance(900);
    assert!(!s.op(api::evaluate_group).unwrap(), "lease still valid");
    s.advance(100);
    // The primary's lease expired, but the standby's last report (1 s
    // ago) predates that: nothing is decided on it.
    assert!(!s.op(api::evaluate_group).unwrap());
    assert_eq!(s.goal(2), Secondary);
    // The standby reports, not streaming from the primary any more.
    s.advance(100);
    s.report(2, Secondary);
    assert_eq!(s.goal(2), PreparePromotion);
    let _ = Lsn::ZERO;
}
