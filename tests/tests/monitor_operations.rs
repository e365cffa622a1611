//! Operator functions as `pg_autoctl` uses them, with keepers carrying out
//! the goals: maintenance of a standby and of the primary, candidate
//! priority 0 everywhere, node removal, and number_sync_standbys changes.
#![cfg(feature = "integration")]

use pgaf_tests::cluster::{Cluster, QUIET};
use pgaf_tests::keeper::{goals, Sim};
use pgaf_tests::monitor::Monitor;

async fn sim() -> (Cluster, Sim) {
    let cluster = Cluster::monitor(QUIET).await;
    let m = Monitor::new(cluster.connect("pg_auto_failover").await);
    (cluster, Sim::new(m))
}

async fn call_bool(s: &Sim, sql: &str) -> bool {
    s.m.client
        .query_one(sql, &[])
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e:?}"))
        .get(0)
}

async fn texts(s: &Sim) -> Vec<String> {
    s.m.events_after(0)
        .await
        .into_iter()
        .map(|e| e.description)
        .collect()
}

#[tokio::test]
async fn maintenance_of_the_last_standby_and_of_the_primary() {
    let (_cluster, mut s) = sim().await;
    s.bring_up(&[("a", 50), ("b", 50)]).await;
    let (a, b) = (s.r("a"), s.r("b"));

    // The only sync standby: the primary stops waiting for it first.
    assert!(call_bool(&s, "SELECT pgautofailover.start_maintenance(2)").await);
    assert_eq!(
        s.goals().await,
        goals(&[("a", "wait_primary"), ("b", "wait_maintenance")])
    );
    assert!(texts(&s).await.contains(&format!(
        "Setting goal state of {a} to wait_primary and {b} to wait_maintenance after a user-initiated start_maintenance call."
    )));
    assert_eq!(
        s.converge(10).await,
        goals(&[("a", "wait_primary"), ("b", "maintenance")])
    );
    // Idempotent, and unknown nodes answer false.
    assert!(call_bool(&s, "SELECT pgautofailover.start_maintenance(2)").await);
    assert!(!call_bool(&s, "SELECT pgautofailover.start_maintenance(99)").await);
    assert!(call_bool(&s, "SELECT pgautofailover.stop_maintenance(2)").await);
    assert_eq!(s.m.goal(2).await, "catchingup");
    assert_eq!(
        s.converge(10).await,
        goals(&[("a", "primary"), ("b", "secondary")])
    );

    // The primary: the standby is promoted while the primary stops.
    assert!(call_bool(&s, "SELECT pgautofailover.start_maintenance(1)").await);
    assert_eq!(
        s.goals().await,
        goals(&[("a", "prepare_maintenance"), ("b", "prepare_promotion")])
    );
    assert_eq!(
        s.converge(20).await,
        goals(&[("a", "maintenance"), ("b", "wait_primary")])
    );
    assert!(texts(&s).await.contains(&format!(
        "Setting goal state of {b} to wait_primary and {a} to maintenance."
    )));
    assert!(call_bool(&s, "SELECT pgautofailover.stop_maintenance(1)").await);
    assert_eq!(
        s.converge(20).await,
        goals(&[("a", "secondary"), ("b", "primary")])
    );

    // Maintenance is refused from a transient state.
    s.m.client
        .execute("SELECT pgautofailover.perform_failover()", &[])
        .await
        .expect("perform_failover");
    let err =
        s.m.client
            .execute("SELECT pgautofailover.start_maintenance(1)", &[])
            .await
            .expect_err("transient");
    assert_eq!(err.code().map(|c| c.code()), Some("55000"));
}

#[tokio::test]
async fn maintenance_of_a_standby_with_three_nodes() {
    let (_cluster, mut s) = sim().await;
    s.bring_up(&[("a", 50), ("b", 50), ("c", 50)]).await;
    // number_sync_standbys is 1: b is not the last sync standby; writes
    // would block if c failed too, hence the warning.
    assert!(call_bool(&s, "SELECT pgautofailover.start_maintenance(2)").await);
    assert_eq!(
        s.goals().await,
        goals(&[("a", "primary"), ("b", "maintenance"), ("c", "secondary")])
    );
    assert_eq!(
        s.converge(10).await,
        goals(&[("a", "primary"), ("b", "maintenance"), ("c", "secondary")])
    );
    assert!(call_bool(&s, "SELECT pgautofailover.stop_maintenance(2)").await);
    assert_eq!(
        s.converge(10).await,
        goals(&[("a", "primary"), ("b", "secondary"), ("c", "secondary")])
    );
}

#[tokio::test]
async fn candidate_priority_zero_everywhere() {
    let (_cluster, mut s) = sim().await;
    // A first node with priority 0 still becomes single (upstream 2.x
    // answered 55006 forever, see fsm/src/api/register.rs).
    s.bring_up(&[("a", 0), ("b", 0)]).await;
    assert_eq!(
        s.goals().await,
        goals(&[("a", "primary"), ("b", "secondary")])
    );

    // The primary dies: nobody may be promoted, the standby stays put.
    s.kill("a").await;
    assert_eq!(s.report("b").await, "secondary");
    assert_eq!(
        s.converge(5).await,
        goals(&[("a", "primary"), ("b", "secondary")])
    );
    let err =
        s.m.client
            .execute("SELECT pgautofailover.perform_failover()", &[])
            .await;
    assert!(err.is_err(), "no candidate for a manual failover either");

    // Raising a priority lets the next heartbeat fail over.
    s.revive("a").await;
    s.converge(5).await;
    let notice =
        s.m.client
            .query_one(
                "SELECT pgautofailover.set_node_candidate_priority('default', 'b', 30)",
                &[],
            )
            .await
            .expect("set priority");
    assert!(notice.get::<_, bool>(0));
    assert_eq!(
        s.converge(10).await,
        goals(&[("a", "primary"), ("b", "secondary")])
    );
    let row =
        s.m.client
            .query_one(
                "SELECT candidatepriority FROM pgautofailover.node WHERE nodeid = 2",
                &[],
            )
            .await;
    assert_eq!(row.expect("priority").get::<_, i32>(0), 30);
    s.kill("a").await;
    assert_eq!(s.report("b").await, "prepare_promotion");

    // Out-of-range priorities are refused with upstream's message.
    let err =
        s.m.client
            .execute(
                "SELECT pgautofailover.set_node_candidate_priority('default', 'b', 101)",
                &[],
            )
            .await
            .expect_err("101");
    assert_eq!(err.code().map(|c| c.code()), Some("22023"));
    assert_eq!(
        err.as_db_error().map(|e| e.message()),
        Some("invalid value for candidate_priority \"101\" expected an integer value between 0 and 100")
    );
}

#[tokio::test]
async fn node_removal() {
    let (_cluster, mut s) = sim().await;
    s.bring_up(&[("a", 50), ("b", 50), ("c", 50)]).await;
    assert_eq!(s.m.number_sync_standbys().await, 1);
    let c = s.r("c");

    // A standby: dropped, then deleted once its keeper reports dropped.
    assert!(call_bool(&s, "SELECT pgautofailover.remove_node(3)").await);
    assert_eq!(s.m.goal(3).await, "dropped");
    assert_eq!(
        s.m.number_sync_standbys().await,
        0,
        "one quorum standby left"
    );
    assert!(texts(&s).await.contains(&format!(
        "Setting goal state of {c} from formation \"default\" and group 0 to \"dropped\" to implement node removal."
    )));
    assert_eq!(
        s.converge(10).await,
        goals(&[("a", "primary"), ("b", "secondary")])
    );
    let left: i64 =
        s.m.client
            .query_one("SELECT count(*) FROM pgautofailover.node", &[])
            .await
            .expect("count")
            .get(0);
    assert_eq!(left, 2);
    let err =
        s.m.client
            .execute("SELECT pgautofailover.remove_node(3)", &[])
            .await
            .expect_err("gone");
    assert_eq!(err.code().map(|c| c.code()), Some("42704"));
    let err =
        s.m.client
            .execute("SELECT pgautofailover.remove_node('127.0.0.1', 6099)", &[])
            .await
            .expect_err("unknown host");
    assert_eq!(
        err.as_db_error().map(|e| e.message()),
        Some("couldn't find node with hostname \"127.0.0.1\" and port 6099")
    );

    // The primary, by host and port: the survivor becomes single.
    assert!(call_bool(&s, "SELECT pgautofailover.remove_node('127.0.0.1', 6010)").await);
    assert_eq!(s.converge(10).await, goals(&[("b", "single")]));

    // Forced removal deletes the row at once.
    s.add("d", 50).await;
    s.converge(20).await;
    assert!(call_bool(&s, "SELECT pgautofailover.remove_node(4, true)").await);
    let left: i64 =
        s.m.client
            .query_one("SELECT count(*) FROM pgautofailover.node", &[])
            .await
            .expect("count")
            .get(0);
    assert_eq!(left, 1);
}

#[tokio::test]
async fn number_sync_standbys_changes() {
    let (_cluster, mut s) = sim().await;
    s.bring_up(&[("a", 50), ("b", 50), ("c", 50)]).await;
    assert_eq!(s.m.number_sync_standbys().await, 1);
    assert_eq!(
        s.m.sync_standby_names().await,
        "ANY 1 (pgautofailover_standby_2, pgautofailover_standby_3)"
    );

    // Two sync standbys need three quorum standbys: refused.
    let err =
        s.m.client
            .execute(
                "SELECT pgautofailover.set_formation_number_sync_standbys('default', 2)",
                &[],
            )
            .await
            .expect_err("nss 2 with 2 standbys");
    assert_eq!(err.code().map(|c| c.code()), Some("22023"));
    assert_eq!(
        err.as_db_error().and_then(|e| e.detail()),
        Some("At least 3 standby nodes are required, and only 2 are currently participating in the replication quorum")
    );

    assert!(
        call_bool(
            &s,
            "SELECT pgautofailover.set_formation_number_sync_standbys('default', 0)"
        )
        .await
    );
    let a = s.r("a");
    assert!(texts(&s).await.contains(&format!(
        "Setting goal state of {a} to apply_settings after updating number_sync_standbys to 0 for formation default."
    )));
    assert_eq!(
        s.converge(10).await,
        goals(&[("a", "primary"), ("b", "secondary"), ("c", "secondary")])
    );
    assert_eq!(s.m.number_sync_standbys().await, 0);
    assert!(texts(&s).await.contains(&format!(
        "Setting goal state of {a} to primary after it applied replication properties change."
    )));

    // Async standbys leave synchronous_standby_names.
    assert!(
        call_bool(
            &s,
            "SELECT pgautofailover.set_node_replication_quorum('default', 'c', false)"
        )
        .await
    );
    s.converge(10).await;
    assert_eq!(
        s.m.sync_standby_names().await,
        "ANY 1 (pgautofailover_standby_2)"
    );

    let err =
        s.m.client
            .execute(
                "SELECT pgautofailover.set_formation_number_sync_standbys('nope', 1)",
                &[],
            )
            .await
            .expect_err("unknown formation");
    assert_eq!(
        err.as_db_error().map(|e| e.message()),
        Some("unknown formation \"nope\"")
    );
}

/// The read-only functions `pg_autoctl show …` and keepers use.
#[tokio::test]
async fn read_functions() {
    let (_cluster, mut s) = sim().await;
    s.bring_up(&[("a", 50), ("b", 50), ("c", 50)]).await;
    let c = &s.m.client;
    let rows = |sql: &'static str| async move {
        c.query(sql, &[])
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e:?}"))
            .iter()
            .map(|r| {
                (0..r.len())
                    .map(|i| r.get::<_, Option<String>>(i).unwrap_or_default())
                    .collect::<Vec<_>>()
                    .join("|")
            })
            .collect::<Vec<String>>()
    };
    assert_eq!(
        rows("SELECT context, group_id::text, node_id::text, nodename, setting, value FROM pgautofailover.formation_settings()").await,
        vec![
            "formation|||default|number_sync_standbys|1",
            "primary|0|1|a|synchronous_standby_names|'ANY 1 (pgautofailover_standby_2, pgautofailover_standby_3)'",
            "node|0|1|a|replication quorum|true",
            "node|0|2|b|replication quorum|true",
            "node|0|3|c|replication quorum|true",
            "node|0|1|a|candidate priority|50",
            "node|0|2|b|candidate priority|50",
            "node|0|3|c|candidate priority|50",
        ]
    );
    assert_eq!(
        rows("SELECT node_id::text, node_name, node_host, node_port::text, node_lsn::text, node_is_primary::text FROM pgautofailover.get_nodes('default', 0)").await,
        vec![
            "1|a|127.0.0.1|6010|0/3000148|true",
            "2|b|127.0.0.1|6011|0/3000148|false",
            "3|c|127.0.0.1|6012|0/3000148|false",
        ]
    );
    assert_eq!(
        rows("SELECT node_id::text, node_name FROM pgautofailover.get_other_nodes(2)").await,
        vec!["1|a", "3|c"]
    );
    assert_eq!(
        rows("SELECT node_id::text FROM pgautofailover.get_other_nodes(1, 'secondary')").await,
        vec!["2", "3"]
    );
    assert_eq!(
        rows("SELECT primary_node_id::text, primary_name, primary_host, primary_port::text FROM pgautofailover.get_primary()").await,
        vec!["1|a|127.0.0.1|6010"]
    );
    assert_eq!(
        rows("SELECT node_host, node_port::text FROM pgautofailover.get_coordinator()").await,
        vec!["127.0.0.1|6010"]
    );
    assert!(
        rows("SELECT node_id::text FROM pgautofailover.get_most_advanced_standby()")
            .await
            .is_empty()
    );
    assert_eq!(
        rows("SELECT nodename, current_group_state::text FROM pgautofailover.current_state('default', 0)").await,
        vec!["a|primary", "b|secondary", "c|secondary"]
    );
    let last: Vec<String> =
        rows("SELECT eventid::text FROM pgautofailover.last_events('default', count => 3)").await;
    let all: Vec<String> =
        rows("SELECT eventid::text AS id FROM pgautofailover.event ORDER BY eventid").await;
    assert_eq!(last, all[all.len() - 3..].to_vec());
    assert_eq!(
        rows("SELECT eventid::text FROM pgautofailover.last_events('default'::text, 0, 3)").await,
        last
    );
    assert_eq!(
        rows("SELECT eventid::text FROM pgautofailover.last_events(3)").await,
        last
    );
    let err = c
        .query("SELECT * FROM pgautofailover.get_other_nodes(42)", &[])
        .await
        .expect_err("unknown");
    assert_eq!(
        err.as_db_error().map(|e| e.message()),
        Some("node 42 is not registered")
    );
}
