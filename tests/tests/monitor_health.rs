//! The background worker against real sockets: health checks of a live
//! Postgres (good, then bad once it is killed, timed at default settings),
//! a black-holed node that must not delay the others, and the periodic
//! evaluation that acts on an expired keeper lease without waiting for a
//! heartbeat (our lease extension).
#![cfg(feature = "integration")]

use pgaf_tests::cluster::Cluster;
use pgaf_tests::keeper::{goals, Sim};
use pgaf_tests::listen::Listener;
use pgaf_tests::monitor::{node_ref, Monitor};
use pgaf_tests::wait;
use std::net::TcpListener;
use std::time::{Duration, Instant};

/// A node to check: a plain cluster with the health-check role.
async fn node_cluster() -> Cluster {
    pgaf_tests::cluster::require_installation();
    let node = Cluster::start(&[]);
    let c = node.connect("postgres").await;
    c.batch_execute("CREATE ROLE pgautofailover_monitor WITH LOGIN CONNECTION LIMIT 1")
        .await
        .expect("create pgautofailover_monitor");
    node
}

async fn health(m: &Monitor, id: i64) -> i32 {
    m.client
        .query_one(
            "SELECT health FROM pgautofailover.node WHERE nodeid = $1",
            &[&id],
        )
        .await
        .expect("health")
        .get(0)
}

#[tokio::test]
async fn health_checks_at_default_settings() {
    let monitor = Cluster::monitor(&[]).await;
    let mut node = node_cluster().await;
    let m = Monitor::new(monitor.connect("pg_auto_failover").await);
    let listener = Listener::start(&monitor.conninfo("pg_auto_failover")).await;
    let port = i32::from(node.port);
    let reg = m.register("127.0.0.1", port, "n1", 50).await;

    wait::until(
        "health good",
        Duration::from_secs(15),
        Duration::from_millis(50),
        || async { (health(&m, reg.id).await == 1).then_some(()) },
    )
    .await;
    let healthy = format!(
        "Node {} is marked as healthy by the monitor",
        node_ref(reg.id, "n1", port)
    );
    let notes = listener.drain().await;
    assert!(
        notes.contains(&("log".to_string(), healthy.clone())),
        "{notes:#?}"
    );

    node.kill();
    let killed = Instant::now();
    wait::until(
        "health bad",
        Duration::from_secs(40),
        Duration::from_millis(20),
        || async { (health(&m, reg.id).await == 0).then_some(()) },
    )
    .await;
    let elapsed = killed.elapsed();
    println!(
        "MEASURE health bad after kill: {:.2} s (defaults)",
        elapsed.as_secs_f64()
    );
    // Refused connections: 3 attempts 2 s apart, in a round every 5 s.
    assert!(elapsed <= Duration::from_secs(12), "{elapsed:?}");
    let unhealthy = format!(
        "Node {} is marked as unhealthy by the monitor",
        node_ref(reg.id, "n1", port)
    );
    let events: Vec<String> = m
        .events_after(0)
        .await
        .into_iter()
        .map(|e| e.description)
        .collect();
    assert!(
        events.contains(&healthy) && events.contains(&unhealthy),
        "{events:#?}"
    );
}

#[tokio::test]
async fn a_black_holed_node_does_not_delay_the_others() {
    let monitor = Cluster::monitor(&[
        ("pgautofailover.health_check_timeout", "1000"),
        ("pgautofailover.health_check_retry_delay", "300"),
        ("pgautofailover.health_check_period", "1000"),
    ])
    .await;
    let node = node_cluster().await;
    // Accepts TCP connections and never answers.
    let hole = TcpListener::bind("127.0.0.1:0").expect("bind");
    let hole_port = i32::from(hole.local_addr().expect("addr").port());
    let m = Monitor::new(monitor.connect("pg_auto_failover").await);
    let dead = m.register("127.0.0.1", hole_port, "hole", 50).await;
    let live = m
        .register("127.0.0.1", i32::from(node.port), "live", 50)
        .await;

    let start = Instant::now();
    wait::until(
        "live node good",
        Duration::from_secs(5),
        Duration::from_millis(20),
        || async { (health(&m, live.id).await == 1).then_some(()) },
    )
    .await;
    let good_after = start.elapsed();
    assert_eq!(
        health(&m, dead.id).await,
        -1,
        "the hole is still being checked"
    );
    wait::until(
        "hole bad",
        Duration::from_secs(10),
        Duration::from_millis(50),
        || async { (health(&m, dead.id).await == 0).then_some(()) },
    )
    .await;
    println!(
        "MEASURE live node good after {:.2} s while the hole was pending",
        good_after.as_secs_f64()
    );
    drop(hole);
}

#[tokio::test]
async fn an_expired_lease_is_acted_on_at_the_next_report_of_a_standby() {
    let monitor = Cluster::monitor(&[
        ("pgautofailover.enable_health_checks", "off"),
        ("pgautofailover.startup_grace_period", "1"),
    ])
    .await;
    let mut s = Sim::new(Monitor::new(monitor.connect("pg_auto_failover").await));
    s.lease = true;
    s.bring_up(&[("a", 50), ("b", 50)]).await;
    assert_eq!(
        s.goals().await,
        goals(&[("a", "primary"), ("b", "secondary")])
    );
    let row =
        s.m.node_active_fn(
            "node_active_lease",
            s.id("a"),
            &pgaf_tests::monitor::Report::new("primary", "0/3000148"),
        )
        .await
        .expect("node_active_lease");
    assert_eq!(row.get::<_, String>(2), "primary");
    let lease_row = s
        .m
        .client
        .query_one(
            "SELECT lease_timeout_ms, fence_timeout_ms FROM pgautofailover.node_active_lease('default', 1, 0, 'primary', true, 1, '0/3000148', '')",
            &[],
        )
        .await
        .expect("lease columns");
    assert_eq!(
        (lease_row.get::<_, i32>(0), lease_row.get::<_, i32>(1)),
        (2000, 2000)
    );

    // a's keeper dies right after this report; b reports 1.5 s later,
    // before a's lease ran out (at 2 s). The monitor's timer notices the
    // expiry but decides nothing on b's older report (docs/failover.md: a
    // monitor that hears from nobody decides nothing); b's next report,
    // after the expiry, starts the failover.
    s.kill_quietly("a");
    let t0 = Instant::now();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(s.report("b").await, "secondary");
    let b = s.id("b");
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert_eq!(
        s.m.goal(b).await,
        "secondary",
        "decided on a report older than the expiry"
    );
    assert_eq!(s.report("b").await, "prepare_promotion");
    println!(
        "MEASURE lease expiry acted on at b's report {:.2} s after a's last one",
        t0.elapsed().as_secs_f64()
    );
    assert_eq!(s.m.goal(s.id("a")).await, "draining");

    // b's keeper carries on; a's fencing is presumed after fence_timeout,
    // long before primary_demote_timeout (30 s).
    let promoted = Instant::now();
    let mut last = String::new();
    while promoted.elapsed() < Duration::from_secs(10) {
        last = s.report("b").await;
        if last == "primary" || last == "wait_primary" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(last == "wait_primary" || last == "primary", "b is {last}");
    println!(
        "MEASURE new primary writable {:.2} s after the election",
        promoted.elapsed().as_secs_f64()
    );
    assert!(promoted.elapsed() < Duration::from_secs(5));
    assert_eq!(s.m.goal(s.id("a")).await, "demoted");
}

/// The 200 ms timer only acts on decisions: a first node that registered
/// and whose keeper has not reported yet gets one event, not one per
/// evaluation (the state machine re-assigns `single` while it is `init`).
#[tokio::test]
async fn the_timer_does_not_repeat_assignments() {
    let monitor = Cluster::monitor(&[("pgautofailover.enable_health_checks", "off")]).await;
    let m = Monitor::new(monitor.connect("pg_auto_failover").await);
    m.register("127.0.0.1", 6010, "a", 50).await;
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let events = m.events_after(0).await;
    assert_eq!(events.len(), 1, "{events:#?}");
}
