//! Upstream keepers against our monitor: Debian's pg_auto_failover 2.0
//! `pg_autoctl` (unpacked privately by `scripts/upstream.sh`) creates a
//! primary and a secondary registered with OUR monitor (upstream's keeper
//! checks that the monitor's extension is version 2.0), its `show state`
//! reads our monitor, a switchover driven by SQL (`perform_failover`) swaps
//! the roles, and upstream's own `perform switchover` (which follows our
//! NOTIFY payloads until the switchover is done) swaps them back. A writer
//! runs through the multi-host URI all along; every acknowledged write is
//! found on the final primary.
//!
//! Upstream keepers hold no lease, so their timings are upstream's; a
//! switchover waits for no timeout, which keeps this test short.
#![cfg(feature = "integration")]
#![allow(clippy::unwrap_used)]

use pgaf_tests::autoctl::{assert_all_present, Flavor, Formation, Writer};
use std::time::Duration;

const LIMIT: Duration = Duration::from_secs(90);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_keepers_with_our_monitor_switch_over() {
    let mut f = Formation::with_monitor().await;
    f.add_node_as(Flavor::Upstream, "node1", &[]);
    f.wait_states(&[("node1", "single")], LIMIT).await;
    f.add_node_as(Flavor::Upstream, "node2", &[]);
    f.wait_states(&[("node1", "primary"), ("node2", "secondary")], LIMIT)
        .await;

    // Upstream's `show state` through its node's configuration.
    let node1_pgdata = f.node("node1").pgdata.display().to_string();
    let out = f.autoctl_as(
        Flavor::Upstream,
        &["show", "state", "--pgdata", &node1_pgdata],
    );
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "upstream show state: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("|             primary |             primary")
            && text.contains("|           secondary |           secondary"),
        "{text}"
    );

    let writer = Writer::start(f.uri("postgres")).await;
    writer.wait_ack(Duration::from_secs(10)).await;

    // A switchover driven by SQL on our monitor.
    let m = f.monitor_client().await;
    m.execute("SELECT pgautofailover.perform_failover('default', 0)", &[])
        .await
        .unwrap();
    let took = f
        .wait_states(&[("node1", "secondary"), ("node2", "primary")], LIMIT)
        .await;
    eprintln!(
        "MEASURE upstream keepers, our monitor: switchover done {:.2} s after perform_failover",
        took.as_secs_f64()
    );
    writer.wait_ack(Duration::from_secs(30)).await;

    // Upstream's `perform switchover`: it calls perform_failover and
    // follows the monitor's notifications until the group is stable again.
    let node2_pgdata = f.node("node2").pgdata.display().to_string();
    let out = f.autoctl_as(
        Flavor::Upstream,
        &["perform", "switchover", "--pgdata", &node2_pgdata],
    );
    assert!(
        out.status.success(),
        "upstream perform switchover failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    f.wait_states(&[("node1", "primary"), ("node2", "secondary")], LIMIT)
        .await;
    writer.wait_ack(Duration::from_secs(30)).await;

    let acked = writer.stop().await;
    assert!(acked.len() > 10, "only {} writes", acked.len());
    let primary = f.node_client("node1").await;
    assert_all_present(&primary, &acked).await;
}
