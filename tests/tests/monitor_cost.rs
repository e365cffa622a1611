//! What one `node_active` call costs on this machine: the median over a
//! thousand heartbeats of a converged secondary (nothing changes, as in the
//! steady state), next to the median of a `SELECT 1` round trip on the same
//! connection. Printed as `MEASURE` lines; the assertion only catches
//! pathological regressions.
#![cfg(feature = "integration")]

use pgaf_tests::cluster::{Cluster, QUIET};
use pgaf_tests::keeper::Sim;
use pgaf_tests::monitor::Monitor;
use std::time::{Duration, Instant};

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

#[tokio::test]
async fn node_active_median_cost() {
    let cluster = Cluster::monitor(QUIET).await;
    let mut s = Sim::new(Monitor::new(cluster.connect("pg_auto_failover").await));
    s.bring_up(&[("a", 50), ("b", 50)]).await;
    let c = &s.m.client;
    let call = c
        .prepare(
            "SELECT * FROM pgautofailover.node_active('default', 2, 0, 'secondary', true, 1, '0/3000148', '')",
        )
        .await
        .expect("prepare node_active");
    let ping = c.prepare("SELECT 1").await.expect("prepare ping");
    for _ in 0..100 {
        c.query_one(&call, &[]).await.expect("warm up");
    }
    let mut calls = Vec::new();
    let mut pings = Vec::new();
    for _ in 0..1000 {
        let t = Instant::now();
        c.query_one(&call, &[]).await.expect("node_active");
        calls.push(t.elapsed());
        let t = Instant::now();
        c.query_one(&ping, &[]).await.expect("ping");
        pings.push(t.elapsed());
    }
    let (call, ping) = (median(calls), median(pings));
    println!(
        "MEASURE node_active median {} µs per call (round trip; SELECT 1 round trip {} µs; difference {} µs)",
        call.as_micros(),
        ping.as_micros(),
        call.saturating_sub(ping).as_micros()
    );
    assert!(
        call < Duration::from_millis(20),
        "node_active takes {call:?}"
    );
    assert_eq!(
        s.goals().await,
        pgaf_tests::keeper::goals(&[("a", "primary"), ("b", "secondary")])
    );
}
