//! Our keepers against the upstream monitor: Debian's pg_auto_failover 2.0
//! monitor (upstream's `pg_autoctl create monitor`, its extension in the
//! private PostgreSQL tree of `scripts/upstream.sh`), two of OUR
//! `pg_autoctl` nodes reach primary and secondary, our `show state` reads
//! the upstream monitor, and a switchover driven by SQL
//! (`perform_failover`) swaps the roles and back. A writer runs through the
//! multi-host URI all along; every acknowledged write is found on the final
//! primary and on the standby.
//!
//! Then what upstream's monitor does when a switchover races with the
//! keepers' reports (seen in this test: its `node_active` calls deadlocked
//! and the primary, sent to `draining`, was sent back to `wait_primary`,
//! then to `demote_timeout`): the primary is in `wait_primary` (the
//! standby's keeper frozen, its last report saying Postgres is down) and is
//! sent to `draining` while the standby is sent to `prepare_promotion`.
//! No upstream keeper reaches `draining` or `demote_timeout` from
//! `wait_primary`: its Postgres would go on acknowledging writes next to
//! the promoted standby for the 30 s demote timeout and lose them when it
//! rewinds. Ours stops Postgres at once (keeper/src/node/service.rs,
//! `transition_row`); the standby takes over and no write is lost.
//!
//! The upstream monitor has no `node_active_lease`: our keepers call
//! `node_active` and follow upstream's rules (no lease, no fencing).
#![cfg(feature = "integration")]
#![allow(clippy::unwrap_used)]

use pgaf_tests::autoctl::{
    assert_all_present, assert_all_replayed, signal, Flavor, Formation, Writer,
};
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

    // The standby looks down to the monitor: its keeper is frozen (its
    // Postgres goes on streaming) and its last report says Postgres is not
    // running, so the monitor sends the primary to wait_primary.
    let standby_keeper = f.node("node2").pid().unwrap();
    signal(standby_keeper, libc::SIGSTOP);
    let superuser = monitor_superuser(&f).await;
    superuser
        .execute(
            "UPDATE pgautofailover.node SET reportedpgisrunning = false WHERE nodename = 'node2'",
            &[],
        )
        .await
        .unwrap();
    f.wait_states(&[("node1", "wait_primary")], LIMIT).await;
    // What upstream's monitor assigns when perform_failover races with the
    // primary's report (seen in this test: node_active calls deadlocked and
    // the primary was sent back to wait_primary in the middle of a
    // switchover): the primary to draining, the standby to prepare_promotion.
    // Its perform_failover refuses a primary in wait_primary, so set them.
    superuser
        .execute(
            "UPDATE pgautofailover.node
                SET goalstate = CASE nodename WHEN 'node1' THEN 'draining'
                                              ELSE 'prepare_promotion' END::pgautofailover.replication_state
              WHERE formationid = 'default'",
            &[],
        )
        .await
        .unwrap();
    let start = std::time::Instant::now();
    // The old primary stops at once (from wait_primary to draining), while
    // the standby's keeper is still frozen.
    pgaf_tests::wait::until(
        "the old primary to stop",
        Duration::from_secs(30),
        Duration::from_millis(10),
        || {
            let f = &f;
            async move {
                let states = f.states().await;
                let n1 = states.iter().find(|s| s.name == "node1")?;
                (n1.reported != "wait_primary").then_some(())
            }
        },
    )
    .await;
    signal(standby_keeper, libc::SIGCONT);
    f.wait_states(&[("node2", "primary"), ("node1", "secondary")], LIMIT)
        .await;
    eprintln!(
        "MEASURE our keepers, upstream monitor: switchover from wait_primary done {:.2} s after the goals were set",
        start.elapsed().as_secs_f64()
    );
    let log = f.node("node1").log_text();
    assert!(
        log.contains("FSM transition from \"wait_primary\" to \"demote_timeout\"")
            || log.contains("FSM transition from \"wait_primary\" to \"draining\""),
        "node1 did not stop from wait_primary"
    );
    writer.wait_ack(Duration::from_secs(30)).await;

    let acked = writer.stop().await;
    assert!(acked.len() > 10, "only {} writes", acked.len());
    let primary = f.node_client("node2").await;
    assert_all_present(&primary, &acked).await;
    let standby = f.node_client("node1").await;
    assert_all_replayed(&standby, &acked).await;
}

/// The upstream monitor's database as the `postgres` superuser (its HBA
/// trusts 127.0.0.1: the monitor was created with `--auth trust`).
async fn monitor_superuser(f: &Formation) -> tokio_postgres::Client {
    let conninfo = format!(
        "host=127.0.0.1 port={} user=postgres dbname=pg_auto_failover connect_timeout=5",
        f.monitor.port
    );
    let (client, conn) = tokio_postgres::connect(&conninfo, tokio_postgres::NoTls)
        .await
        .expect("connect to the monitor as postgres");
    tokio::spawn(conn);
    client
}
