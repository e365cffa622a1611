//! Our keepers against the upstream monitor: Debian's pg_auto_failover 2.0
//! monitor (upstream's `pg_autoctl create monitor`, its extension in the
//! private PostgreSQL tree of `scripts/upstream.sh`), two of OUR
//! `pg_autoctl` nodes reach primary and secondary, our `show state` reads
//! the upstream monitor, and a switchover driven by SQL
//! (`perform_failover`) swaps the roles and back. A writer runs through the
//! multi-host URI all along; every acknowledged write is found on the final
//! primary and on the standby.
//!
//! The upstream monitor has no `node_active_lease`: our keepers call
//! `node_active` and follow upstream's rules (no lease, no fencing).
#![cfg(feature = "integration")]
#![allow(clippy::unwrap_used)]

use pgaf_tests::autoctl::{assert_all_present, Flavor, Formation, Writer};
use std::time::Duration;

const LIMIT: Duration = Duration::from_secs(90);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn our_keepers_with_upstream_monitor_switch_over() {
    let mut f = Formation::with_monitor_as(Flavor::Upstream).await;
    let m = f.monitor_client().await;
    let version: String = m
        .query_one(
            "SELECT extversion FROM pg_extension WHERE extname = 'pgautofailover'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(version, "2.0", "not upstream's 2.0 monitor");
    let lease: bool = m
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM pg_proc WHERE proname = 'node_active_lease')",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(!lease, "the upstream monitor has node_active_lease?");

    f.add_node("node1", &[]);
    f.wait_states(&[("node1", "single")], LIMIT).await;
    f.add_node("node2", &[]);
    f.wait_states(&[("node1", "primary"), ("node2", "secondary")], LIMIT)
        .await;

    // Our `show state` against the upstream monitor.
    let node1_pgdata = f.node("node1").pgdata.display().to_string();
    let out = f.autoctl(&["show", "state", "--pgdata", &node1_pgdata]);
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "show state: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("|             primary |             primary")
            && text.contains("|           secondary |           secondary"),
        "{text}"
    );

    let writer = Writer::start(f.uri("postgres")).await;
    writer.wait_ack(Duration::from_secs(10)).await;

    for (primary, secondary) in [("node2", "node1"), ("node1", "node2")] {
        m.execute("SELECT pgautofailover.perform_failover('default', 0)", &[])
            .await
            .unwrap();
        let took = f
            .wait_states(&[(primary, "primary"), (secondary, "secondary")], LIMIT)
            .await;
        eprintln!(
            "MEASURE our keepers, upstream monitor: switchover to {primary} done {:.2} s after perform_failover",
            took.as_secs_f64()
        );
        writer.wait_ack(Duration::from_secs(30)).await;
    }

    let acked = writer.stop().await;
    assert!(acked.len() > 10, "only {} writes", acked.len());
    let primary = f.node_client("node1").await;
    assert_all_present(&primary, &acked).await;
    let standby = f.node_client("node2").await;
    let last = *acked.last().unwrap();
    pgaf_tests::wait::until(
        "the standby to replay the last write",
        Duration::from_secs(30),
        Duration::from_millis(50),
        || {
            let standby = &standby;
            async move {
                let n: i64 = standby
                    .query_one("SELECT count(*) FROM pgaf_writes WHERE id = $1", &[&last])
                    .await
                    .ok()?
                    .get(0);
                (n == 1).then_some(())
            }
        },
    )
    .await;
    assert_all_present(&standby, &acked).await;
}
