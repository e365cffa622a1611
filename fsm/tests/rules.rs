//! One table row per rule of the group state machine:
//! a hand-made group snapshot, the node that calls `node_active` (repeating
//! its reported state), the goal states expected afterwards and the event
//! description the rule writes.

#![allow(clippy::unwrap_used)] // tests: a panic is a failure report

use pgaf_fsm::api::{self, Report};
use pgaf_fsm::node::ms;
use pgaf_fsm::{
    Context, Effect, Formation, Group, Health, Lsn, Node, NodeState, NodeState::*, Settings,
};

const NOW: i64 = 1_000_000_000_000;

/// Node `i` (1-based) named `node<i>` at `10.0.0.<i>:5432`, healthy, just
/// reported, at LSN 0/1000000 on timeline 1, priority 50, quorum.
fn group(states: &[(NodeState, NodeState)]) -> Group {
    let nodes = states
        .iter()
        .enumerate()
        .map(|(i, &(reported, goal))| {
            let id = i as i64 + 1;
            let mut n = Node::new(id, &format!("node{id}"), &format!("10.0.0.{id}"), 5432, NOW);
            n.reported = reported;
            n.goal = goal;
            n.health = Health::Good;
            n.lsn = Lsn(0x1000000);
            n.candidate_priority = 50;
            n.sysidentifier = Some(42);
            n.delivered = goal;
            n
        })
        .collect();
    let mut f = Formation::default_formation();
    f.number_sync_standbys = if states.len() > 2 { 1 } else { 0 };
    Group::new(f, 0, nodes)
}

/// Postgres of node `id` is down (the keeper says so): unhealthy at once.
fn dead(g: &mut Group, id: i64) {
    let n = g.node_mut(id).unwrap();
    n.pg_is_running = false;
}

struct Case {
    rule: &'static str,
    nodes: &'static [(NodeState, NodeState)],
    setup: fn(&mut Group),
    active: i64,
    /// Goal of every node afterwards (`None`: deleted).
    goals: &'static [Option<NodeState>],
    /// Descriptions of the events the rule writes, `N` standing for the
    /// node's `node <id> "node<id>" (10.0.0.<id>:5432)`.
    events: &'static [&'static str],
}

fn expand(template: &str) -> String {
    let mut s = template.to_string();
    for id in 1..=4 {
        s = s.replace(
            &format!("N{id}"),
            &format!("node {id} \"node{id}\" (10.0.0.{id}:5432)"),
        );
    }
    s
}

fn none(_: &mut Group) {}

const CASES: &[Case] = &[
    Case {
        rule: "G1 converged dropped: deleted",
        nodes: &[(Primary, Primary), (Dropped, Dropped)],
        setup: none,
        active: 2,
        goals: &[Some(Primary), None],
        events: &[],
    },
    Case {
        rule: "G2 being dropped: nothing",
        nodes: &[(Primary, Primary), (Secondary, Dropped)],
        setup: |g| dead(g, 1),
        active: 2,
        goals: &[Some(Primary), Some(Dropped)],
        events: &[],
    },
    Case {
        rule: "G3 converged maintenance: frozen",
        nodes: &[(Primary, Primary), (Maintenance, Maintenance), (Secondary, Secondary)],
        setup: |g| dead(g, 1),
        active: 2,
        goals: &[Some(Primary), Some(Maintenance), Some(Secondary)],
        events: &[],
    },
    Case {
        rule: "G4 alone: single",
        nodes: &[(Secondary, Secondary), (Primary, Dropped)],
        setup: none,
        active: 1,
        goals: &[Some(Single), Some(Dropped)],
        events: &["Setting goal state of N1 to single as there is no other node."],
    },
    Case {
        rule: "G4 alone without data (wait_standby): stays",
        nodes: &[(WaitStandby, WaitStandby), (Primary, Dropped)],
        setup: none,
        active: 1,
        goals: &[Some(WaitStandby), Some(Dropped)],
        events: &[],
    },
    Case {
        rule: "G5 alone with priority 0: report_lsn",
        nodes: &[(Secondary, Secondary)],
        setup: |g| g.node_mut(1).unwrap().candidate_priority = 0,
        active: 1,
        goals: &[Some(ReportLsn)],
        events: &["Setting goal state of N1 to report_lsn as there is no other node and candidate priority is 0."],
    },
    Case {
        rule: "G5 alone with priority 0 already serving writes: stays single",
        nodes: &[(Single, Single)],
        setup: |g| g.node_mut(1).unwrap().candidate_priority = 0,
        active: 1,
        goals: &[Some(Single)],
        events: &[],
    },
    Case {
        rule: "G7 (fixed) no primary, no failover: election",
        nodes: &[(Secondary, Secondary), (Secondary, Secondary)],
        setup: none,
        active: 1,
        goals: &[Some(ReportLsn), Some(ReportLsn)],
        events: &[
            "Setting goal state of N1 to report_lsn to find the failover candidate",
            "Setting goal state of N2 to report_lsn to find the failover candidate",
        ],
    },
    Case {
        rule: "G8a dead primary, 3 nodes: draining and report_lsn",
        nodes: &[(Primary, Primary), (Secondary, Secondary), (Secondary, Secondary)],
        setup: |g| dead(g, 1),
        active: 2,
        goals: &[Some(Draining), Some(ReportLsn), Some(ReportLsn)],
        events: &[
            "Setting goal state of N1 to draining after it became unhealthy.",
            "Setting goal state of N2 to report_lsn to find the failover candidate",
            "Setting goal state of N3 to report_lsn to find the failover candidate",
        ],
    },
    Case {
        rule: "G8a no healthy candidate: primary not drained, election still runs",
        nodes: &[(Primary, Primary), (Secondary, Secondary), (Secondary, Secondary)],
        setup: |g| {
            dead(g, 1);
            g.node_mut(2).unwrap().candidate_priority = 0;
            g.node_mut(3).unwrap().candidate_priority = 0;
        },
        active: 2,
        goals: &[Some(Primary), Some(ReportLsn), Some(ReportLsn)],
        events: &[
            "Setting goal state of N2 to report_lsn to find the failover candidate",
            "Setting goal state of N3 to report_lsn to find the failover candidate",
        ],
    },
    Case {
        rule: "G8b converged prepare_maintenance: maintenance",
        nodes: &[(PrepareMaintenance, PrepareMaintenance), (Secondary, Secondary), (Secondary, Secondary)],
        setup: |g| dead(g, 1),
        active: 2,
        goals: &[Some(Maintenance), Some(ReportLsn), Some(ReportLsn)],
        events: &[
            "Setting goal state of N1 to maintenance after it converged to prepare_maintenance.",
            "Setting goal state of N2 to report_lsn to find the failover candidate",
            "Setting goal state of N3 to report_lsn to find the failover candidate",
        ],
    },
    Case {
        rule: "R1 report_lsn, primary converged wait_primary: secondary",
        nodes: &[(WaitPrimary, WaitPrimary), (ReportLsn, ReportLsn)],
        setup: none,
        active: 2,
        goals: &[Some(WaitPrimary), Some(Secondary)],
        events: &["Setting goal state of N2 to secondary after N1 converged to wait_primary and has been marked healthy."],
    },
    Case {
        rule: "R2 report_lsn, primary converged primary: secondary",
        nodes: &[(Primary, Primary), (ReportLsn, ReportLsn)],
        setup: none,
        active: 2,
        goals: &[Some(Primary), Some(Secondary)],
        events: &["Setting goal state of N2 to secondary after N1 got selected as the failover candidate."],
    },
    Case {
        rule: "R2 (fixed) not while another node is being promoted",
        nodes: &[(Primary, Primary), (ReportLsn, ReportLsn), (ReportLsn, PreparePromotion)],
        setup: none,
        active: 2,
        goals: &[Some(Primary), Some(ReportLsn), Some(PreparePromotion)],
        events: &[],
    },
    Case {
        rule: "R3 converged fast_forward: prepare_promotion",
        nodes: &[(Draining, Draining), (FastForward, FastForward), (ReportLsn, ReportLsn)],
        setup: |g| dead(g, 1),
        active: 2,
        goals: &[Some(Draining), Some(PreparePromotion), Some(ReportLsn)],
        events: &["Setting goal state of N2 to prepare_promotion"],
    },
    Case {
        rule: "R5 wait_standby, primary converged wait_primary: catchingup",
        nodes: &[(WaitPrimary, WaitPrimary), (WaitStandby, WaitStandby)],
        setup: none,
        active: 2,
        goals: &[Some(WaitPrimary), Some(CatchingUp)],
        events: &["Setting goal state of N2 to catchingup after N1 converged to wait_primary."],
    },
    Case {
        rule: "R6 quorum standby joins a converged primary: apply_settings",
        nodes: &[(Primary, Primary), (Secondary, Secondary), (WaitStandby, WaitStandby)],
        setup: none,
        active: 3,
        goals: &[Some(ApplySettings), Some(Secondary), Some(CatchingUp)],
        events: &[
            "Setting goal state of N3 to catchingup and N1 to primary to edit synchronous_standby_names.",
            "Setting goal state of N3 to catchingup and N1 to primary to edit synchronous_standby_names.",
        ],
    },
    Case {
        rule: "R7 async standby joins a converged primary",
        nodes: &[(Primary, Primary), (Secondary, Secondary), (WaitStandby, WaitStandby)],
        setup: |g| g.node_mut(3).unwrap().replication_quorum = false,
        active: 3,
        goals: &[Some(Primary), Some(Secondary), Some(CatchingUp)],
        events: &["Setting goal state of N3 to catchingup."],
    },
    Case {
        rule: "R8 caught up: secondary",
        nodes: &[(Primary, Primary), (CatchingUp, CatchingUp)],
        setup: none,
        active: 2,
        goals: &[Some(Primary), Some(Secondary)],
        events: &["Setting goal state of N2 to secondary after it caught up."],
    },
    Case {
        rule: "R8 too far behind: stays catchingup",
        nodes: &[(Primary, Primary), (CatchingUp, CatchingUp)],
        setup: |g| g.node_mut(1).unwrap().lsn = Lsn(0x1000000 + 16 * 1024 * 1024 + 1),
        active: 2,
        goals: &[Some(Primary), Some(CatchingUp)],
        events: &[],
    },
    Case {
        rule: "R9 two nodes, dead primary: draining and prepare_promotion",
        nodes: &[(Primary, Primary), (Secondary, Secondary)],
        setup: |g| dead(g, 1),
        active: 2,
        goals: &[Some(Draining), Some(PreparePromotion)],
        events: &[
            "Setting goal state of N1 to draining and N2 to prepare_promotion after N1 became unhealthy.",
            "Setting goal state of N1 to draining and N2 to prepare_promotion after N1 became unhealthy.",
        ],
    },
    Case {
        rule: "R9 priority 0: no failover",
        nodes: &[(Primary, Primary), (Secondary, Secondary)],
        setup: |g| {
            dead(g, 1);
            g.node_mut(2).unwrap().candidate_priority = 0;
        },
        active: 2,
        goals: &[Some(Primary), Some(Secondary)],
        events: &[],
    },
    Case {
        rule: "R9 beyond promote_wal_log_threshold: no failover",
        nodes: &[(Primary, Primary), (Secondary, Secondary)],
        setup: |g| {
            dead(g, 1);
            g.node_mut(1).unwrap().lsn = Lsn(0x1000000 + 16 * 1024 * 1024 + 1);
        },
        active: 2,
        goals: &[Some(Primary), Some(Secondary)],
        events: &[],
    },
    Case {
        rule: "R9 (ours) dead primary converged wait_primary: no failover, it acknowledged writes alone",
        nodes: &[(WaitPrimary, WaitPrimary), (Secondary, Secondary)],
        setup: |g| dead(g, 1),
        active: 2,
        goals: &[Some(WaitPrimary), Some(Secondary)],
        events: &[],
    },
    Case {
        rule: "R10 wait_maintenance, primary converged wait_primary",
        nodes: &[(WaitPrimary, WaitPrimary), (WaitMaintenance, WaitMaintenance)],
        setup: none,
        active: 2,
        goals: &[Some(WaitPrimary), Some(Maintenance)],
        events: &["Setting goal state of N2 to maintenance after N1 converged to wait_primary."],
    },
    Case {
        rule: "R11 wait_maintenance, primary no longer going to wait_primary",
        nodes: &[(WaitPrimary, Primary), (WaitMaintenance, WaitMaintenance)],
        setup: none,
        active: 2,
        goals: &[Some(Primary), Some(Maintenance)],
        events: &["Setting goal state of N2 to maintenance after N1 got assigned primary as goal state."],
    },
    Case {
        rule: "R12 prepare_promotion, primary converged prepare_maintenance",
        nodes: &[(PrepareMaintenance, PrepareMaintenance), (PreparePromotion, PreparePromotion)],
        setup: none,
        active: 2,
        goals: &[Some(PrepareMaintenance), Some(StopReplication)],
        events: &["Setting goal state of N2 to stop_replication after N1 converged to prepare_maintenance."],
    },
    Case {
        rule: "R15 prepare_promotion: demote_timeout and stop_replication",
        nodes: &[(Draining, Draining), (PreparePromotion, PreparePromotion)],
        setup: none,
        active: 2,
        goals: &[Some(DemoteTimeout), Some(StopReplication)],
        events: &[
            "Setting goal state of N1 to demote_timeout and N2 to stop_replication after N2 converged to prepare_promotion.",
            "Setting goal state of N1 to demote_timeout and N2 to stop_replication after N2 converged to prepare_promotion.",
        ],
    },
    Case {
        rule: "R15 (fixed) old primary converged wait_primary: demoted",
        nodes: &[(WaitPrimary, WaitPrimary), (PreparePromotion, PreparePromotion)],
        setup: |g| dead(g, 1),
        active: 2,
        goals: &[Some(Demoted), Some(StopReplication)],
        events: &[
            "Setting goal state of N1 to demoted and N2 to stop_replication after N2 converged to prepare_promotion.",
            "Setting goal state of N1 to demoted and N2 to stop_replication after N2 converged to prepare_promotion.",
        ],
    },
    Case {
        rule: "R16 prepare_promotion, no old primary: wait_primary",
        nodes: &[(PreparePromotion, PreparePromotion), (ReportLsn, ReportLsn), (Demoted, Demoted)],
        setup: none,
        active: 1,
        goals: &[Some(WaitPrimary), Some(ReportLsn), Some(Demoted)],
        events: &["Setting goal state of N1 to wait_primary after N1 converged to prepare_promotion."],
    },
    Case {
        rule: "R17 stop_replication, primary converged prepare_maintenance",
        nodes: &[(PrepareMaintenance, PrepareMaintenance), (StopReplication, StopReplication)],
        setup: none,
        active: 2,
        goals: &[Some(Maintenance), Some(WaitPrimary)],
        events: &[
            "Setting goal state of N2 to wait_primary and N1 to maintenance.",
            "Setting goal state of N2 to wait_primary and N1 to maintenance.",
        ],
    },
    Case {
        rule: "R18 old primary confirmed demote_timeout",
        nodes: &[(DemoteTimeout, DemoteTimeout), (StopReplication, StopReplication)],
        setup: none,
        active: 2,
        goals: &[Some(Demoted), Some(WaitPrimary)],
        events: &[
            "Setting goal state of N2 to wait_primary and N1 to demoted after the demote timeout expired.",
            "Setting goal state of N2 to wait_primary and N1 to demoted after the demote timeout expired.",
        ],
    },
    Case {
        rule: "R18 drain time expired",
        nodes: &[(Primary, DemoteTimeout), (StopReplication, StopReplication)],
        setup: |g| {
            dead(g, 1);
            g.node_mut(1).unwrap().state_change_time = NOW - ms(30_000);
        },
        active: 2,
        goals: &[Some(Demoted), Some(WaitPrimary)],
        events: &[
            "Setting goal state of N2 to wait_primary and N1 to demoted after the demote timeout expired.",
            "Setting goal state of N2 to wait_primary and N1 to demoted after the demote timeout expired.",
        ],
    },
    Case {
        rule: "R18 drain time not expired: waits",
        nodes: &[(Primary, DemoteTimeout), (StopReplication, StopReplication)],
        setup: |g| {
            dead(g, 1);
            g.node_mut(1).unwrap().state_change_time = NOW - ms(29_000);
        },
        active: 2,
        goals: &[Some(DemoteTimeout), Some(StopReplication)],
        events: &[],
    },
    Case {
        rule: "R18 (ours) lease expired and the new primary stopped streaming for fence_timeout",
        nodes: &[(Primary, DemoteTimeout), (StopReplication, StopReplication)],
        setup: |g| {
            let p = g.node_mut(1).unwrap();
            p.lease = true;
            p.report_time = NOW - ms(2_000);
            p.state_change_time = NOW - ms(1_000);
            let a = g.node_mut(2).unwrap();
            a.lease = true;
            a.state_change_time = NOW - ms(2_000);
        },
        active: 2,
        goals: &[Some(Demoted), Some(WaitPrimary)],
        events: &[
            "Setting goal state of N2 to wait_primary and N1 to demoted after the demote timeout expired.",
            "Setting goal state of N2 to wait_primary and N1 to demoted after the demote timeout expired.",
        ],
    },
    Case {
        rule: "R18 (ours) lease still valid: waits",
        nodes: &[(Primary, DemoteTimeout), (StopReplication, StopReplication)],
        setup: |g| {
            let p = g.node_mut(1).unwrap();
            p.lease = true;
            p.report_time = NOW - ms(1_999);
            g.node_mut(2).unwrap().state_change_time = NOW - ms(60_000);
        },
        active: 2,
        goals: &[Some(DemoteTimeout), Some(StopReplication)],
        events: &[],
    },
    Case {
        rule: "R18 (fixed) old primary converged wait_primary, presumed dead: demoted",
        nodes: &[(WaitPrimary, WaitPrimary), (StopReplication, StopReplication)],
        setup: |g| {
            dead(g, 1);
            g.node_mut(1).unwrap().state_change_time = NOW - ms(40_000);
            g.node_mut(2).unwrap().state_change_time = NOW - ms(30_000);
        },
        active: 2,
        goals: &[Some(Demoted), Some(WaitPrimary)],
        events: &[
            "Setting goal state of N2 to wait_primary and N1 to demoted after the demote timeout expired.",
            "Setting goal state of N2 to wait_primary and N1 to demoted after the demote timeout expired.",
        ],
    },
    Case {
        rule: "R21a demoted, new primary reported wait_primary with goal primary",
        nodes: &[(Demoted, Demoted), (WaitPrimary, Primary)],
        setup: none,
        active: 1,
        goals: &[Some(CatchingUp), Some(Primary)],
        events: &["Setting goal state of N1 to catchingup after it converged to demotion and N2 converged to primary."],
    },
    Case {
        rule: "R21b demoted, new primary converged wait_primary",
        nodes: &[(Demoted, Demoted), (WaitPrimary, WaitPrimary)],
        setup: none,
        active: 1,
        goals: &[Some(CatchingUp), Some(WaitPrimary)],
        events: &["Setting goal state of N1 to catchingup after it converged to demotion and N2 converged to wait_primary."],
    },
    Case {
        rule: "R22 join_secondary, new primary reported wait_primary",
        nodes: &[(WaitPrimary, WaitPrimary), (JoinSecondary, JoinSecondary), (JoinSecondary, JoinSecondary)],
        setup: none,
        active: 2,
        goals: &[Some(WaitPrimary), Some(Secondary), Some(JoinSecondary)],
        events: &["Setting goal state of N2 to secondary after N1 converged to wait_primary."],
    },
    Case {
        rule: "R23 join_secondary, new primary converged primary",
        nodes: &[(Primary, Primary), (JoinSecondary, JoinSecondary), (Secondary, Secondary)],
        setup: none,
        active: 2,
        goals: &[Some(Primary), Some(Secondary), Some(Secondary)],
        events: &["Setting goal state of N2 to secondary after N1 converged to primary."],
    },
    Case {
        rule: "P1 single, a standby joined: wait_primary",
        nodes: &[(Single, Single), (WaitStandby, WaitStandby)],
        setup: none,
        active: 1,
        goals: &[Some(WaitPrimary), Some(WaitStandby)],
        events: &["Setting goal state of N1 to wait_primary after N2 joined."],
    },
    Case {
        rule: "P2 unhealthy secondary: catchingup, then P2b wait_primary (nss 0)",
        nodes: &[(Primary, Primary), (Secondary, Secondary)],
        setup: |g| dead(g, 2),
        active: 1,
        goals: &[Some(WaitPrimary), Some(CatchingUp)],
        events: &[
            "Setting goal state of N2 to catchingup after it became unhealthy.",
            "Setting goal state of N1 to wait_primary because none of the standby nodes in the quorum are healthy at the moment.",
        ],
    },
    Case {
        rule: "P2a all standbys async, none secondary: wait_primary",
        nodes: &[(Primary, Primary), (CatchingUp, CatchingUp)],
        setup: |g| g.node_mut(2).unwrap().replication_quorum = false,
        active: 1,
        goals: &[Some(WaitPrimary), Some(CatchingUp)],
        events: &["Setting goal state of N1 to wait_primary because none of the secondary nodes are healthy at the moment."],
    },
    Case {
        rule: "P2a all standbys async, one secondary: primary",
        nodes: &[(WaitPrimary, WaitPrimary), (Secondary, Secondary)],
        setup: |g| g.node_mut(2).unwrap().replication_quorum = false,
        active: 1,
        goals: &[Some(Primary), Some(Secondary)],
        events: &["Setting goal state of N1 to primary because none of the secondary nodes are healthy at the moment."],
    },
    Case {
        rule: "P2b no quorum secondary with nss 1: stays primary (writes block)",
        nodes: &[(Primary, Primary), (Secondary, Secondary), (Secondary, Secondary)],
        setup: |g| {
            dead(g, 2);
            dead(g, 3);
        },
        active: 1,
        goals: &[Some(Primary), Some(CatchingUp), Some(CatchingUp)],
        events: &[
            "Setting goal state of N2 to catchingup after it became unhealthy.",
            "Setting goal state of N3 to catchingup after it became unhealthy.",
        ],
    },
    Case {
        rule: "P2c wait_primary with a quorum secondary: primary",
        nodes: &[(WaitPrimary, WaitPrimary), (Secondary, Secondary)],
        setup: none,
        active: 1,
        goals: &[Some(Primary), Some(Secondary)],
        events: &["Setting goal state of N1 to primary now that we have 1 healthy  secondary nodes in the quorum."],
    },
    Case {
        rule: "P2d apply_settings: primary",
        nodes: &[(ApplySettings, ApplySettings), (Secondary, Secondary), (CatchingUp, CatchingUp)],
        setup: none,
        active: 1,
        goals: &[Some(Primary), Some(Secondary), Some(CatchingUp)],
        events: &["Setting goal state of N1 to primary after it applied replication properties change."],
    },
    Case {
        rule: "P3 join_primary (deprecated): primary",
        nodes: &[(JoinPrimary, JoinPrimary), (Secondary, Secondary)],
        setup: none,
        active: 1,
        goals: &[Some(Primary), Some(Secondary)],
        events: &["Setting goal state of N1 to primary"],
    },
];

#[test]
fn every_rule() {
    let ctx = Context::new(NOW, 0, Settings::default());
    let mut failures = vec![];
    for case in CASES {
        let mut g = group(case.nodes);
        (case.setup)(&mut g);
        let a = g.node(case.active).unwrap().clone();
        let report = Report {
            node_id: a.id,
            group_id: 0,
            state: a.reported,
            pg_is_running: a.pg_is_running,
            tli: a.tli,
            lsn: a.lsn,
            rep_state: String::new(),
            lease: a.lease,
            upstream_node_id: 0,
            upstream_age_ms: -1,
            streaming: None,
        };
        let out = match api::node_active(&ctx, &mut g, "default", &report) {
            Ok(o) => o,
            Err(e) => {
                failures.push(format!("{}: error {e}", case.rule));
                continue;
            }
        };
        let goals: Vec<Option<NodeState>> = (1..=case.nodes.len() as i64)
            .map(|id| g.node(id).map(|n| n.goal))
            .collect();
        if goals != case.goals {
            failures.push(format!(
                "{}: goals {:?}, expected {:?}",
                case.rule, goals, case.goals
            ));
        }
        let events: Vec<String> = out
            .effects
            .iter()
            .filter_map(|e| match e {
                Effect::Event { description, .. } => Some(description.clone()),
                _ => None,
            })
            .collect();
        let expected: Vec<String> = case.events.iter().map(|t| expand(t)).collect();
        if events != expected {
            failures.push(format!(
                "{}:\n  events   {:?}\n  expected {:?}",
                case.rule, events, expected
            ));
        }
        // Every assignment is reachable by the keeper from the reported state.
        for n in &g.nodes {
            let before = case.nodes[(n.id - 1) as usize];
            if n.goal != before.1 && n.goal != n.reported {
                assert!(
                    pgaf_fsm::keeper::transition(n.reported, n.goal).is_some(),
                    "{}: unreachable goal {} -> {}",
                    case.rule,
                    n.reported,
                    n.goal
                );
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
