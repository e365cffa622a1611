//! What our monitor decides when the network between the primary, its
//! standbys and the monitor breaks, with keepers that hold leases and say
//! who streams from whom (docs/failover.md). Each test is named after a
//! failure the fault campaign (`bench/faults`) found in an earlier version.

mod common;

use common::Sim;
use pgaf_fsm::api::{self, Report};
use pgaf_fsm::{Lsn, NodeState, NodeState::*};

/// A report of our keeper: `upstream` is (node it streams from, ms since
/// it heard from it), `streaming` the standbys replying to a primary.
fn report(
    s: &mut Sim,
    id: i64,
    state: NodeState,
    upstream: (i64, i32),
    streaming: Option<&[i64]>,
) -> NodeState {
    let lsn = Lsn(s.wal);
    s.report_full(Report {
        node_id: id,
        group_id: 0,
        state,
        pg_is_running: true,
        tli: 1,
        lsn,
        rep_state: String::new(),
        lease: true,
        upstream_node_id: upstream.0,
        upstream_age_ms: upstream.1,
        streaming: streaming.map(|v| v.to_vec()),
    })
    .expect("node_active")
}

fn primary(s: &mut Sim, id: i64, state: NodeState, streaming: &[i64]) -> NodeState {
    report(s, id, state, (0, -1), Some(streaming))
}

fn standby(s: &mut Sim, id: i64, state: NodeState, from: i64, age: i32) -> NodeState {
    report(s, id, state, (from, age), None)
}

fn evaluate(s: &mut Sim) -> bool {
    s.op(api::evaluate_group).expect("evaluate_group")
}

fn steady_pair() -> Sim {
    let (mut s, _) = Sim::cluster_with_leases(&["node1", "node2"]);
    assert_eq!(primary(&mut s, 1, Primary, &[2]), Primary);
    assert_eq!(standby(&mut s, 2, Secondary, 1, 10), Secondary);
    s
}

/// The isolated monitor assigned `draining` and `prepare_promotion` 1.9 s
/// into a partition, having heard from neither node: the standby's lease
/// outlived the primary's by the time between their last reports. When
/// the partition healed, that stale decision was carried out.
#[test]
fn bug_isolated_monitor_fails_over_on_stale_reports() {
    let mut s = steady_pair();
    s.advance(200);
    primary(&mut s, 1, Primary, &[2]);
    s.advance(240);
    standby(&mut s, 2, Secondary, 1, 30);
    // From here on the monitor hears from nobody, for a minute.
    for _ in 0..600 {
        s.advance(100);
        evaluate(&mut s);
        assert_eq!(s.states(1), (Primary, Primary));
        assert_eq!(s.states(2), (Secondary, Secondary));
    }
    // The partition heals: nothing happened, nothing happens.
    assert_eq!(primary(&mut s, 1, Primary, &[2]), Primary);
    assert_eq!(standby(&mut s, 2, Secondary, 1, 40), Secondary);
}

/// A primary cut off from the monitor only, while its standby streams
/// from it and clients reach it, was failed over after 4 s: a write gap, a
/// rejoin and cold caches for nothing. Its keeper keeps it up while every
/// standby streams from it; the monitor now waits for the same.
#[test]
fn bug_primary_cut_from_the_monitor_only_is_failed_over() {
    let mut s = steady_pair();
    // The primary's reports stop; the standby keeps streaming from it.
    for _ in 0..120 {
        s.advance(250);
        assert_eq!(standby(&mut s, 2, Secondary, 1, 300), Secondary);
        evaluate(&mut s);
        assert_eq!(s.goal(1), Primary);
    }
    // A standby that heard from the primary 2 s ago no longer vouches.
    s.advance(250);
    assert_eq!(standby(&mut s, 2, Secondary, 1, 2_000), PreparePromotion);
    assert_eq!(s.goal(1), Draining);
}

/// Three nodes: one standby streaming from the primary is enough to keep
/// the monitor from failing it over, even when the other does not.
#[test]
fn one_streaming_standby_vouches_for_the_primary() {
    let (mut s, _) = Sim::cluster_with_leases(&["node1", "node2", "node3"]);
    primary(&mut s, 1, Primary, &[2, 3]);
    standby(&mut s, 2, Secondary, 1, 10);
    standby(&mut s, 3, Secondary, 1, 10);
    for _ in 0..40 {
        s.advance(250);
        standby(&mut s, 2, Secondary, 1, 100);
        standby(&mut s, 3, Secondary, 0, -1);
        evaluate(&mut s);
        assert_eq!(s.goal(1), Primary, "node2 still streams from node1");
    }
    // Neither does: an election.
    s.advance(250);
    standby(&mut s, 2, Secondary, 0, -1);
    standby(&mut s, 3, Secondary, 0, -1);
    assert_eq!(s.goal(1), Draining);
}

/// Cut from its synchronous standby (both still reach the monitor), the
/// primary stopped taking writes for the whole partition. Now the standby
/// its primary stops listing is counted out within half a second and the
/// primary goes to `wait_primary`, which releases the writes.
#[test]
fn bug_partition_from_the_sync_standby_stops_writes() {
    let mut s = steady_pair();
    s.advance(250);
    primary(&mut s, 1, Primary, &[2]);
    let mut waited = 0;
    while s.goal(1) == Primary {
        assert!(
            waited <= 750,
            "the primary still waits for node2 after {waited} ms"
        );
        s.advance(250);
        waited += 250;
        standby(&mut s, 2, Secondary, 0, -1);
        primary(&mut s, 1, Primary, &[]);
    }
    assert_eq!(s.goal(1), WaitPrimary);
    assert_eq!(s.goal(2), CatchingUp);
    // Not listed, the standby does not come back, whatever its LSN says.
    for _ in 0..8 {
        s.advance(250);
        assert_eq!(standby(&mut s, 2, CatchingUp, 0, -1), CatchingUp);
        primary(&mut s, 1, WaitPrimary, &[]);
    }
    // Streaming again: secondary, and the primary synchronous again.
    s.advance(250);
    primary(&mut s, 1, WaitPrimary, &[2]);
    assert_eq!(standby(&mut s, 2, CatchingUp, 1, 10), Secondary);
    assert_eq!(standby(&mut s, 2, Secondary, 1, 10), Secondary);
    assert_eq!(primary(&mut s, 1, WaitPrimary, &[2]), Primary);
}

/// The primary, fenced and restarted, acknowledged writes in
/// `wait_primary` that its partitioned standby never received; the monitor
/// marked that standby `secondary` ("caught up", judged on LSNs the
/// primary reported before) and then promoted it: 14 acknowledged writes
/// lost. A standby its primary does not list is never `secondary`, and a
/// primary that acknowledged writes alone is never replaced.
#[test]
fn bug_standby_without_acknowledged_wal_is_promoted() {
    let mut s = steady_pair();
    // The standby is cut off; the primary goes on alone.
    for _ in 0..4 {
        s.advance(250);
        standby(&mut s, 2, Secondary, 0, -1);
        primary(&mut s, 1, Primary, &[]);
    }
    assert_eq!(primary(&mut s, 1, WaitPrimary, &[]), WaitPrimary);
    // Same LSN on both sides as far as the monitor knows: not enough.
    for _ in 0..8 {
        s.advance(250);
        assert_eq!(standby(&mut s, 2, CatchingUp, 0, -1), CatchingUp);
    }
    // It streams again and catches up: secondary; the primary is on its
    // way back to synchronous replication, and dies before it gets there.
    primary(&mut s, 1, WaitPrimary, &[2]);
    assert_eq!(standby(&mut s, 2, CatchingUp, 1, 10), Secondary);
    assert_eq!(standby(&mut s, 2, Secondary, 1, 10), Secondary);
    assert_eq!(primary(&mut s, 1, WaitPrimary, &[2]), Primary);
    for _ in 0..40 {
        s.advance(250);
        assert_eq!(
            standby(&mut s, 2, Secondary, 0, -1),
            Secondary,
            "node1 acknowledged writes alone that node2 may lack"
        );
    }
    // Once the primary reported primary (synchronous again), its standby
    // has every acknowledged write and can replace it.
    primary(&mut s, 1, Primary, &[2]);
    s.advance(2_100);
    assert_eq!(standby(&mut s, 2, Secondary, 0, -1), PreparePromotion);
}

/// After a partition of the monitor alone, the standby's keeper is silent
/// (its lease expired) but its Postgres streams from the primary: the
/// primary's reports vouch for it, and one report that misses it (a late
/// reply on a busy host) does not count it out, while a stall does.
#[test]
fn a_silent_standby_its_primary_lists_stays_secondary() {
    let mut s = steady_pair();
    for i in 0..40 {
        s.advance(250);
        // Every fifth report misses it.
        let listed: &[i64] = if i % 5 == 4 { &[] } else { &[2] };
        assert_eq!(primary(&mut s, 1, Primary, listed), Primary);
        assert_eq!(s.goal(2), Secondary, "report {i}");
    }
    // It really stops streaming: counted out within the stall timeout.
    for _ in 0..3 {
        s.advance(250);
        primary(&mut s, 1, Primary, &[]);
    }
    assert_eq!(s.goal(2), CatchingUp);
    assert_eq!(s.goal(1), WaitPrimary);
}
