//! Failovers through `node_active` as keepers drive them: a dead primary
//! with two and with three nodes (election, report_lsn, fast_forward), and
//! the operator's perform_failover and perform_promotion.
#![cfg(feature = "integration")]

use pgaf_tests::cluster::{Cluster, QUIET};
use pgaf_tests::keeper::{goals, Sim};
use pgaf_tests::listen::Listener;
use pgaf_tests::monitor::{state_payload, Monitor};
use std::time::Duration;

async fn sim(extra: &[(&str, &str)]) -> (Cluster, Sim) {
    let mut settings = QUIET.to_vec();
    settings.extend_from_slice(extra);
    let cluster = Cluster::monitor(&settings).await;
    let m = Monitor::new(cluster.connect("pg_auto_failover").await);
    (cluster, Sim::new(m))
}

fn descriptions(events: &[pgaf_tests::monitor::Event]) -> Vec<String> {
    events.iter().map(|e| e.description.clone()).collect()
}

#[tokio::test]
async fn primary_failure_with_two_nodes() {
    let (cluster, mut s) = sim(&[("pgautofailover.primary_demote_timeout", "300")]).await;
    s.bring_up(&[("a", 50), ("b", 50)]).await;
    assert_eq!(
        s.goals().await,
        goals(&[("a", "primary"), ("b", "secondary")])
    );
    let listener = Listener::start(&cluster.conninfo("pg_auto_failover")).await;
    let mark = s.m.last_event_id().await;

    s.kill("a").await;
    assert_eq!(s.report("b").await, "prepare_promotion");
    assert_eq!(s.m.goal(s.id("a")).await, "draining");
    let (a, b) = (s.r("a"), s.r("b"));
    let drain = format!("Setting goal state of {a} to draining and {b} to prepare_promotion after {a} became unhealthy.");
    let events = s.m.events_after(mark).await;
    assert_eq!(descriptions(&events), vec![drain.clone(), drain.clone()]);
    assert_eq!(
        listener.drain_state().await,
        vec![
            state_payload(1, "a", 6010, "primary", "draining", "bad"),
            state_payload(2, "b", 6011, "secondary", "prepare_promotion", "unknown"),
        ]
    );

    assert_eq!(s.report("b").await, "stop_replication");
    assert_eq!(s.m.goal(s.id("a")).await, "demote_timeout");
    // The old primary never confirms: wait for primary_demote_timeout.
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(s.report("b").await, "wait_primary");
    assert_eq!(s.m.goal(s.id("a")).await, "demoted");
    assert_eq!(s.report("b").await, "wait_primary");

    // The old primary comes back, rejoins as a standby; b becomes primary.
    s.revive("a").await;
    s.node_mut("a").reported = "demoted".to_string();
    assert_eq!(s.report("a").await, "catchingup");
    assert_eq!(
        s.converge(10).await,
        goals(&[("a", "secondary"), ("b", "primary")])
    );
    let texts = descriptions(&s.m.events_after(mark).await);
    assert!(texts.contains(&format!(
        "Setting goal state of {a} to catchingup after it converged to demotion and {b} converged to wait_primary."
    )));
    assert!(texts.contains(&format!(
        "Setting goal state of {b} to wait_primary and {a} to demoted after the demote timeout expired."
    )));
}

#[tokio::test]
async fn primary_failure_with_three_nodes_elects_by_priority_then_lsn() {
    let (_cluster, mut s) = sim(&[("pgautofailover.primary_demote_timeout", "300")]).await;
    s.bring_up(&[("a", 50), ("b", 90), ("c", 50)]).await;
    assert_eq!(
        s.goals().await,
        goals(&[("a", "primary"), ("b", "secondary"), ("c", "secondary")])
    );
    assert_eq!(
        s.m.number_sync_standbys().await,
        1,
        "raised when the third node joined"
    );
    let mark = s.m.last_event_id().await;

    s.kill("a").await;
    // b's heartbeat: a is drained, b and c must report their LSN.
    assert_eq!(s.report("b").await, "report_lsn");
    assert_eq!(s.m.goal(s.id("a")).await, "draining");
    assert_eq!(s.m.goal(s.id("c")).await, "report_lsn");
    // c received more WAL than b before a died.
    s.node_mut("b").lsn = "0/3000148".to_string();
    s.node_mut("c").lsn = "0/3000200".to_string();
    assert_eq!(s.report("c").await, "report_lsn");
    assert_eq!(s.report("b").await, "report_lsn");
    // Both reported: b wins on priority and fetches the missing WAL first.
    assert_eq!(s.report("c").await, "report_lsn");
    assert_eq!(s.m.goal(s.id("b")).await, "fast_forward");
    assert_eq!(s.report("b").await, "fast_forward");
    s.node_mut("b").lsn = "0/3000200".to_string();
    assert_eq!(s.report("b").await, "prepare_promotion");
    assert_eq!(s.report("b").await, "stop_replication");
    assert_eq!(s.report("c").await, "join_secondary");
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(s.report("b").await, "wait_primary");
    assert_eq!(
        s.converge(10).await,
        goals(&[("a", "demoted"), ("b", "primary"), ("c", "secondary")])
    );

    let (a, b, c) = (s.r("a"), s.r("b"), s.r("c"));
    let texts = descriptions(&s.m.events_after(mark).await);
    for expected in [
        format!("Setting goal state of {a} to draining after it became unhealthy."),
        format!("Setting goal state of {b} to report_lsn to find the failover candidate"),
        format!("Setting goal state of {c} to report_lsn to find the failover candidate"),
        format!("New state is reported by {b} with LSN 0/3000148: report_lsn"),
        format!("New state is reported by {c} with LSN 0/3000200: report_lsn"),
        format!("Setting goal state of {b} to fast_forward after {a} became unhealthy and 2 nodes reported their LSN position."),
        format!("Setting goal state of {b} to prepare_promotion"),
        format!("Setting goal state of {c} to join_secondary after {b} got selected as the failover candidate."),
        format!("Setting goal state of {c} to secondary after {b} converged to wait_primary."),
    ] {
        assert!(texts.contains(&expected), "missing event {expected:?} in {texts:#?}");
    }
}

#[tokio::test]
async fn perform_failover_with_two_nodes() {
    let (cluster, mut s) = sim(&[]).await;
    s.bring_up(&[("a", 50), ("b", 50)]).await;
    let listener = Listener::start(&cluster.conninfo("pg_auto_failover")).await;
    s.m.client
        .execute("SELECT pgautofailover.perform_failover()", &[])
        .await
        .expect("perform_failover");
    let (a, b) = (s.r("a"), s.r("b"));
    let d = format!("Setting goal state of {a} to draining and {b} to prepare_promotion after a user-initiated failover.");
    let notes = listener.drain().await;
    assert_eq!(notes[0], ("log".to_string(), d));
    assert_eq!(
        notes[1].1,
        state_payload(1, "a", 6010, "primary", "draining", "unknown")
    );
    assert_eq!(
        notes[2].1,
        state_payload(2, "b", 6011, "secondary", "prepare_promotion", "unknown")
    );
    // The keepers carry it out: a drains, confirms demote_timeout, b takes over.
    assert_eq!(
        s.converge(20).await,
        goals(&[("a", "secondary"), ("b", "primary")])
    );

    // With one node left in a stable state, a failover is refused.
    let err =
        s.m.client
            .execute("SELECT pgautofailover.perform_failover('default', 1)", &[])
            .await;
    let err = err.expect_err("no group 1");
    assert_eq!(err.code().map(|c| c.code()), Some("55000"));
}

#[tokio::test]
async fn perform_promotion_with_three_nodes() {
    let (cluster, mut s) = sim(&[]).await;
    s.bring_up(&[("a", 50), ("b", 50), ("c", 50)]).await;
    // Promoting the primary is a no-op with a notice.
    let listener = Listener::start(&cluster.conninfo("pg_auto_failover")).await;
    let promoted: bool = listener
        .client
        .query_one(
            "SELECT pgautofailover.perform_promotion('default', 'a')",
            &[],
        )
        .await
        .expect("perform_promotion a")
        .get(0);
    assert!(!promoted);
    assert_eq!(
        listener.drain().await,
        vec![(
            "notice".to_string(),
            "NOTICE 55000: cannot perform promotion: node a in formation default is already a primary.".to_string()
        )]
    );

    let promoted: bool =
        s.m.client
            .query_one(
                "SELECT pgautofailover.perform_promotion('default', 'c')",
                &[],
            )
            .await
            .expect("perform_promotion c")
            .get(0);
    assert!(promoted);
    let c = s.r("c");
    let texts = descriptions(&s.m.events_after(0).await);
    assert!(
        texts.contains(&format!("Updating candidate priority to 151 for {c}")),
        "{texts:#?}"
    );
    assert_eq!(
        s.converge(30).await,
        goals(&[("a", "secondary"), ("b", "secondary"), ("c", "primary")])
    );
    let texts = descriptions(&s.m.events_after(0).await);
    assert!(
        texts.contains(&format!("Updating candidate priority back to 50 for {c}")),
        "{texts:#?}"
    );
    // Every priority is back to what the operator set.
    let rows =
        s.m.client
            .query(
                "SELECT candidatepriority FROM pgautofailover.node ORDER BY nodeid",
                &[],
            )
            .await;
    let prios: Vec<i32> = rows.expect("priorities").iter().map(|r| r.get(0)).collect();
    assert_eq!(prios, vec![50, 50, 50]);

    let err =
        s.m.client
            .execute(
                "SELECT pgautofailover.perform_promotion('default', 'zz')",
                &[],
            )
            .await;
    let err = err.expect_err("unknown node");
    assert_eq!(err.code().map(|c| c.code()), Some("42704"));
    assert_eq!(
        err.as_db_error().map(|e| e.message()),
        Some("node \"zz\" is not registered in formation \"default\"")
    );
}
