//! Scenario walkthroughs of upstream's monitor, replayed step by step
//! through the monitor's operations, checking states and event texts; and the
//! upstream switchover, as its monitor notified it, replayed
//! notification by notification.

#![allow(clippy::unwrap_used)] // tests: a panic is a failure report

mod common;

use common::{Notification, Sim};
use pgaf_fsm::api;
use pgaf_fsm::standby_names::synchronous_standby_names;
use pgaf_fsm::{Health, Lsn, NodeState::*};

#[test]
fn first_node_becomes_single() {
    let mut s = Sim::new();
    let n = s
        .register_with("node1", "10.0.0.1", 5432, 50, true)
        .unwrap();
    assert_eq!((n.reported, n.goal), (Init, Single));
    assert_eq!(
        s.events_since(0),
        vec!["Setting goal state of node 1 \"node1\" (10.0.0.1:5432) to single as there is no other node."]
    );
    assert!(s.log_lines()[0].starts_with(
        "Registering node 1 \"node1\" (10.0.0.1:5432) to formation \"default\" with replication quorum true and candidate priority 50 [50]"
    ));
    let mark = s.events.len();
    assert_eq!(s.report(1, Single), Single);
    assert_eq!(
        s.events_since(mark),
        vec!["New state is reported by node 1 \"node1\" (10.0.0.1:5432): \"single\""]
    );
    assert_eq!(s.report(1, Single), Single);
    assert_eq!(s.events.len(), mark + 1, "a steady state produces no event");
    assert_eq!(synchronous_standby_names(&s.group).unwrap(), "");
}

#[test]
fn second_node_joins_with_number_sync_standbys_zero() {
    let mut s = Sim::new();
    s.register("node1");
    s.report(1, Single);
    let n2 = s
        .register_with("node2", "10.0.0.2", 5432, 50, true)
        .unwrap();
    assert_eq!((n2.reported, n2.goal), (Init, WaitStandby));
    assert_eq!(
        s.report(2, WaitStandby),
        WaitStandby,
        "R5 waits for the primary"
    );

    let mark = s.events.len();
    assert_eq!(s.report(1, Single), WaitPrimary);
    assert_eq!(
        s.events_since(mark),
        vec!["Setting goal state of node 1 \"node1\" (10.0.0.1:5432) to wait_primary after node 2 \"node2\" (10.0.0.2:5432) joined."]
    );
    assert_eq!(s.report(1, WaitPrimary), WaitPrimary);

    let mark = s.events.len();
    assert_eq!(s.report(2, WaitStandby), CatchingUp);
    assert_eq!(
        s.events_since(mark),
        vec!["Setting goal state of node 2 \"node2\" (10.0.0.2:5432) to catchingup after node 1 \"node1\" (10.0.0.1:5432) converged to wait_primary."]
    );
    // The health of node 2 was never checked: the keeper's word is enough.
    let mark = s.events.len();
    assert_eq!(s.report(2, CatchingUp), Secondary);
    assert_eq!(
        s.events_since(mark),
        vec![
            "New state is reported by node 2 \"node2\" (10.0.0.2:5432): \"catchingup\"",
            "Setting goal state of node 2 \"node2\" (10.0.0.2:5432) to secondary after it caught up."
        ]
    );
    s.report(2, Secondary);
    let mark = s.events.len();
    assert_eq!(s.report(1, WaitPrimary), Primary);
    assert_eq!(
        s.events_since(mark),
        vec!["Setting goal state of node 1 \"node1\" (10.0.0.1:5432) to primary now that we have 1 healthy  secondary nodes in the quorum."]
    );
    assert_eq!(
        synchronous_standby_names(&s.group).unwrap(),
        "ANY 1 (pgautofailover_standby_2)"
    );
    s.report(1, Primary);
    assert_eq!(s.group.formation.number_sync_standbys, 0);
}

#[test]
fn catching_up_waits_for_the_wal_threshold_and_timeline() {
    let (mut s, _) = Sim::cluster(&["node1"]);
    s.register("node2");
    s.report(2, WaitStandby);
    s.converge(1);
    s.converge(1);
    assert_eq!(s.report(2, WaitStandby), CatchingUp);
    // 17 MB behind: stays catching up.
    s.report_lsn(1, WaitPrimary, Lsn(0x3000110 + 17 * 1024 * 1024));
    assert_eq!(s.report_lsn(2, CatchingUp, Lsn(0x3000110)), CatchingUp);
    // Caught up but on another timeline: still catching up.
    let mut r = pgaf_fsm::api::Report {
        node_id: 2,
        group_id: 0,
        state: CatchingUp,
        pg_is_running: true,
        tli: 2,
        lsn: Lsn(0x3000110 + 17 * 1024 * 1024),
        rep_state: String::new(),
        lease: false,
        upstream_node_id: 0,
        upstream_age_ms: -1,
        streaming: None,
    };
    assert_eq!(s.report_full(r.clone()).unwrap(), CatchingUp);
    r.tli = 1;
    assert_eq!(s.report_full(r).unwrap(), Secondary);
}

#[test]
fn third_node_raises_number_sync_standbys() {
    let (mut s, _) = Sim::cluster(&["node1", "node2"]);
    assert_eq!(s.states(1), (Primary, Primary));
    let n3 = s
        .register_with("node3", "10.0.0.3", 5432, 50, true)
        .unwrap();
    assert_eq!(n3.goal, WaitStandby);
    assert_eq!(s.group.formation.number_sync_standbys, 1);
    assert!(s.log_lines().contains(
        &"Setting number_sync_standbys to 1 for formation default now that we have 2/2 standby nodes set with replication-quorum.".to_string()
    ));

    let mark = s.events.len();
    assert_eq!(s.report(3, WaitStandby), CatchingUp);
    let d = "Setting goal state of node 3 \"node3\" (10.0.0.3:5432) to catchingup and node 1 \"node1\" (10.0.0.1:5432) to primary to edit synchronous_standby_names.";
    assert_eq!(s.events_since(mark)[1..], [d.to_string(), d.to_string()]);
    assert_eq!(s.states(1), (Primary, ApplySettings));
    assert_eq!(
        synchronous_standby_names(&s.group).unwrap(),
        "ANY 1 (pgautofailover_standby_2, pgautofailover_standby_3)"
    );
    let mark = s.events.len();
    assert_eq!(s.report(1, ApplySettings), Primary);
    assert_eq!(
        s.events_since(mark)[1],
        "Setting goal state of node 1 \"node1\" (10.0.0.1:5432) to primary after it applied replication properties change."
    );
    s.report(1, Primary);
    assert_eq!(s.report(3, CatchingUp), Secondary);
    s.report(3, Secondary);
    assert_eq!(s.report(1, Primary), Primary);
}

#[test]
fn standby_failure_and_return_with_two_nodes() {
    let (mut s, _) = Sim::cluster(&["node1", "node2"]);
    s.health(2, Health::Bad);
    assert_eq!(
        s.events.last().unwrap().1,
        "Node node 2 \"node2\" (10.0.0.2:5432) is marked as unhealthy by the monitor"
    );
    s.advance(19_000);
    assert_eq!(s.report(1, Primary), Primary, "not silent long enough");
    s.advance(1_000);
    let mark = s.events.len();
    assert_eq!(s.report(1, Primary), WaitPrimary);
    assert_eq!(
        s.events_since(mark),
        vec![
            "Setting goal state of node 2 \"node2\" (10.0.0.2:5432) to catchingup after it became unhealthy.",
            "Setting goal state of node 1 \"node1\" (10.0.0.1:5432) to wait_primary because none of the standby nodes in the quorum are healthy at the moment."
        ]
    );
    assert_eq!(synchronous_standby_names(&s.group).unwrap(), "");
    s.report(1, WaitPrimary);
    // The standby comes back, follows the primary and catches up.
    assert_eq!(s.report(2, CatchingUp), Secondary);
    s.report(2, Secondary);
    assert_eq!(s.report(1, WaitPrimary), Primary);
}

#[test]
fn primary_failure_with_two_nodes() {
    let (mut s, _) = Sim::cluster(&["node1", "node2"]);
    s.health(1, Health::Bad);
    s.advance(10_000);
    assert_eq!(
        s.report(2, Secondary),
        Secondary,
        "primary silent for 10 s only"
    );
    s.advance(10_000);
    let mark = s.events.len();
    assert_eq!(s.report(2, Secondary), PreparePromotion);
    let d = "Setting goal state of node 1 \"node1\" (10.0.0.1:5432) to draining and node 2 \"node2\" (10.0.0.2:5432) to prepare_promotion after node 1 \"node1\" (10.0.0.1:5432) became unhealthy.";
    assert_eq!(s.events_since(mark), vec![d, d]);
    assert_eq!(s.states(1), (Primary, Draining));

    let mark = s.events.len();
    assert_eq!(s.report(2, PreparePromotion), StopReplication);
    let d = "Setting goal state of node 1 \"node1\" (10.0.0.1:5432) to demote_timeout and node 2 \"node2\" (10.0.0.2:5432) to stop_replication after node 2 \"node2\" (10.0.0.2:5432) converged to prepare_promotion.";
    assert_eq!(s.events_since(mark)[1..], [d.to_string(), d.to_string()]);

    assert_eq!(s.report(2, StopReplication), StopReplication);
    s.advance(29_000);
    assert_eq!(
        s.report(2, StopReplication),
        StopReplication,
        "demote timeout not over"
    );
    s.advance(1_000);
    let mark = s.events.len();
    assert_eq!(s.report(2, StopReplication), WaitPrimary);
    assert_eq!(
        s.events_since(mark)[0],
        "Setting goal state of node 2 \"node2\" (10.0.0.2:5432) to wait_primary and node 1 \"node1\" (10.0.0.1:5432) to demoted after the demote timeout expired."
    );
    assert_eq!(s.goal(1), Demoted);
    assert_eq!(s.report(2, WaitPrimary), WaitPrimary);

    // The old primary comes back, stays down, then rejoins.
    let mark = s.events.len();
    assert_eq!(s.report_down(1, Demoted), CatchingUp);
    assert_eq!(
        s.events_since(mark)[1],
        "Setting goal state of node 1 \"node1\" (10.0.0.1:5432) to catchingup after it converged to demotion and node 2 \"node2\" (10.0.0.2:5432) converged to wait_primary."
    );
    assert_eq!(s.report(1, CatchingUp), Secondary);
    s.report(1, Secondary);
    assert_eq!(s.report(2, WaitPrimary), Primary);
}

#[test]
fn old_primary_confirming_demote_timeout_ends_the_wait() {
    let (mut s, _) = Sim::cluster(&["node1", "node2"]);
    s.report_down(1, Primary);
    assert_eq!(s.report(2, Secondary), PreparePromotion);
    assert_eq!(s.report(2, PreparePromotion), StopReplication);
    assert_eq!(s.report_down(1, DemoteTimeout), DemoteTimeout);
    assert_eq!(s.report(2, StopReplication), WaitPrimary);
}

#[test]
fn primary_failure_with_three_nodes_elects_the_most_advanced() {
    let (mut s, _) = Sim::cluster(&["node1", "node2", "node3"]);
    assert_eq!(s.group.formation.number_sync_standbys, 1);
    s.health(1, Health::Bad);
    s.advance(20_000);
    let mark = s.events.len();
    assert_eq!(
        s.report(2, Secondary),
        ReportLsn,
        "the goal is returned at once"
    );
    assert_eq!(
        s.events_since(mark),
        vec![
            "Setting goal state of node 1 \"node1\" (10.0.0.1:5432) to draining after it became unhealthy.",
            "Setting goal state of node 2 \"node2\" (10.0.0.2:5432) to report_lsn to find the failover candidate",
            "Setting goal state of node 3 \"node3\" (10.0.0.3:5432) to report_lsn to find the failover candidate",
        ]
    );
    assert!(s.log_lines().last().unwrap().starts_with(
        "Failover still in progress after 0 nodes reported their LSN and we are waiting for 2 nodes to report"
    ));
    s.report_lsn(2, ReportLsn, Lsn(0x3000200));
    let mark = s.events.len();
    assert_eq!(s.report_lsn(3, ReportLsn, Lsn(0x3000300)), PreparePromotion);
    assert_eq!(
        s.events_since(mark)[1],
        "Setting goal state of node 3 \"node3\" (10.0.0.3:5432) to prepare_promotion after node 1 \"node1\" (10.0.0.1:5432) became unhealthy and 2 nodes reported their LSN position."
    );
    assert!(s.log_lines().contains(&"The current most advanced reported LSN is 0/3000300, as reported by node 3 \"node3\" (10.0.0.3:5432) and 0 other nodes".to_string()));

    assert_eq!(
        s.report(2, ReportLsn),
        ReportLsn,
        "candidate not ready to stream yet"
    );
    assert_eq!(s.report(3, PreparePromotion), StopReplication);
    assert_eq!(s.states(1), (Primary, DemoteTimeout));
    assert_eq!(s.report(2, ReportLsn), JoinSecondary);
    s.report(2, JoinSecondary);
    s.report(3, StopReplication);
    s.advance(30_000);
    assert_eq!(s.report(3, StopReplication), WaitPrimary);
    assert_eq!(s.goal(1), Demoted);
    assert_eq!(
        s.report(2, JoinSecondary),
        JoinSecondary,
        "waits for wait_primary to be reached"
    );
    s.report(3, WaitPrimary);
    assert_eq!(s.report(2, JoinSecondary), Secondary);
    s.report(2, Secondary);
    assert_eq!(s.report(3, WaitPrimary), Primary);
    assert_eq!(
        synchronous_standby_names(&s.group).unwrap(),
        "ANY 1 (pgautofailover_standby_1, pgautofailover_standby_2)"
    );
    assert_eq!(s.report_down(1, Demoted), CatchingUp);
}

#[test]
fn a_lagging_candidate_fast_forwards_first() {
    let (mut s, _) = Sim::cluster(&["node1", "node2", "node3"]);
    s.op(|c, g| api::set_node_candidate_priority(c, g, "node3", 90))
        .unwrap();
    s.converge(1);
    s.converge(1);
    s.report_down(1, Primary);
    s.report(2, Secondary);
    s.report_lsn(2, ReportLsn, Lsn(0x3000900));
    let mark = s.events.len();
    assert_eq!(s.report_lsn(3, ReportLsn, Lsn(0x3000300)), FastForward);
    assert_eq!(
        s.events_since(mark)[1],
        "Setting goal state of node 3 \"node3\" (10.0.0.3:5432) to fast_forward after node 1 \"node1\" (10.0.0.1:5432) became unhealthy and 2 nodes reported their LSN position."
    );
    assert_eq!(
        s.report_lsn(3, FastForward, Lsn(0x3000900)),
        PreparePromotion
    );
    assert_eq!(s.report(3, PreparePromotion), StopReplication);
}

#[test]
fn two_node_switchover() {
    let (mut s, _) = Sim::cluster(&["node1", "node2"]);
    let mark = s.events.len();
    s.op(api::perform_failover).unwrap();
    let d = "Setting goal state of node 1 \"node1\" (10.0.0.1:5432) to draining and node 2 \"node2\" (10.0.0.2:5432) to prepare_promotion after a user-initiated failover.";
    assert_eq!(s.events_since(mark), vec![d, d]);
    s.report_down(1, Draining);
    assert_eq!(s.report(2, PreparePromotion), StopReplication);
    assert_eq!(s.report_down(1, Draining), DemoteTimeout);
    s.report_down(1, DemoteTimeout);
    assert_eq!(s.report(2, StopReplication), WaitPrimary);
    assert_eq!(s.goal(1), Demoted);
    s.report(2, WaitPrimary);
    assert_eq!(s.report_down(1, Demoted), CatchingUp);
    assert_eq!(s.report(1, CatchingUp), Secondary);
    s.report(1, Secondary);
    assert_eq!(s.report(2, WaitPrimary), Primary);
}

/// What upstream 2.0's monitor notified for a switchover from nodeB to nodeA in a
/// three-node formation, as a listener on `state` and `log` received it.
#[test]
fn upstream_switchover_notifications_are_reproduced_byte_for_byte() {
    let mut s = Sim::new();
    for (name, port) in [("nodeA", 6010), ("nodeB", 6011), ("nodeC", 6012)] {
        s.register_with(name, "127.0.0.1", port, 50, true).unwrap();
    }
    // Bring the group to nodeB primary, nodeA and nodeC secondaries (after an
    // earlier failover), with the LSNs of the capture.
    for n in s.group.nodes.iter_mut() {
        let primary = n.name == "nodeB";
        n.goal = if primary { Primary } else { Secondary };
        n.reported = n.goal;
        n.health = Health::Good;
        n.lsn = Lsn(if primary { 0x5061610 } else { 0x5061688 });
        n.report_time = s.now;
        n.delivered = n.goal;
    }
    s.group.formation.number_sync_standbys = 1;
    s.wal = 0x5061688;
    s.notifications.clear();

    s.op(api::perform_failover).unwrap();
    s.report_down(2, Draining);
    s.report(1, Secondary);
    s.report(3, Secondary);
    s.report_lsn(1, ReportLsn, Lsn(0x5061688));
    s.report_down(2, Draining);
    s.report_lsn(3, ReportLsn, Lsn(0x5061688));
    s.report_lsn(2, ReportLsn, Lsn(0x5061688));
    s.report(3, ReportLsn);
    s.report(1, PreparePromotion);
    s.report(3, ReportLsn);
    s.report(2, ReportLsn);
    s.report(3, JoinSecondary);
    s.report(2, JoinSecondary);
    s.report(1, WaitPrimary);
    s.report(3, JoinSecondary);
    s.report(2, JoinSecondary);
    s.report(3, Secondary);
    s.report(1, WaitPrimary);
    s.report(2, Secondary);
    s.report(1, Primary);

    let capture = include_str!("data/upstream-notify.txt");
    let expected: Vec<Notification> = capture
        .lines()
        .filter_map(|l| {
            let rest = l.strip_prefix("Asynchronous notification \"")?;
            let (channel, rest) = rest.split_once("\" with payload \"")?;
            let (payload, _) = rest.rsplit_once("\" received from server process")?;
            Some(match channel {
                "log" => Notification::Log(payload.to_string()),
                _ => Notification::State(payload.to_string()),
            })
        })
        .collect();
    assert_eq!(expected.len(), 56);
    for (i, (got, want)) in s.notifications.iter().zip(&expected).enumerate() {
        assert_eq!(got, want, "notification #{i}");
    }
    assert_eq!(s.notifications.len(), expected.len());
}
