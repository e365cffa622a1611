//! No split brain and no lost write when a primary's keeper cannot do its
//! job (each node on a host of its own, `src/netns.rs`):
//! * the monitor goes away: the primary keeps its standby and goes on
//!   accepting writes (a lost monitor alone is no reason to stop), and
//!   everything resumes when the monitor returns;
//! * the primary's keeper is frozen (SIGSTOP) while its Postgres keeps
//!   running and its standby streams from it: nothing happens, writes go
//!   on (the standby vouches for its primary, docs/failover.md);
//! * the primary's whole host is frozen (a paused VM): the monitor promotes
//!   the standby once the lease expired and the standby stopped streaming
//!   from the old primary for fence_timeout; when the host thaws, its
//!   keeper fences its Postgres at once, and the old primary rejoins as a
//!   standby. Every write acknowledged to the client is on the new primary
//!   at the end.
#![cfg(feature = "integration")]
#![allow(clippy::unwrap_used)]

use pgaf_tests::autoctl::{assert_all_present, Flavor, Formation, Writer};
use std::time::Duration;

const LIMIT: Duration = Duration::from_secs(90);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_monitor_or_a_frozen_keeper_loses_no_write() {
    let mut f = Formation::on_lan(Flavor::Ours).await;
    f.add_node("node1", &[]);
    f.wait_states(&[("node1", "single")], LIMIT).await;
    f.allow_clients("node1");
    f.add_node("node2", &[]);
    f.wait_states(&[("node1", "primary"), ("node2", "secondary")], LIMIT)
        .await;
    let writer = Writer::start(f.uri("postgres")).await;
    writer.wait_ack(Duration::from_secs(10)).await;

    // The monitor goes away for three lease periods: writes go on.
    f.monitor.stop(Duration::from_secs(30));
    let before = writer.acked();
    tokio::time::sleep(Duration::from_secs(6)).await;
    assert!(
        writer.acked() > before + 10,
        "writes stopped without the monitor ({} -> {})",
        before,
        writer.acked()
    );
    let c = f.node_client("node1").await;
    let ro: String = c
        .query_one("SHOW transaction_read_only", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(
        ro, "off",
        "the primary fenced itself although its standby streams from it"
    );
    drop(c);
    f.restart_monitor();
    f.wait_states(&[("node1", "primary"), ("node2", "secondary")], LIMIT)
        .await;

    // The primary's keeper freezes; its Postgres keeps running, its
    // standby streams from it: five lease periods later, nothing changed.
    f.node("node1").pause_keeper(true);
    let before = writer.acked();
    tokio::time::sleep(Duration::from_secs(10)).await;
    let states = f.states().await;
    assert!(
        states
            .iter()
            .any(|s| s.name == "node1" && s.assigned == "primary"),
        "failed over a primary whose standby streams from it: {states:#?}"
    );
    assert!(
        writer.acked() > before + 10,
        "writes stopped while the keeper was frozen"
    );
    f.node("node1").pause_keeper(false);
    f.wait_states(&[("node1", "primary"), ("node2", "secondary")], LIMIT)
        .await;

    // The primary's whole host freezes: a failover.
    let host = f.node("node1").host.clone().unwrap();
    host.freeze().unwrap();
    f.wait_states(&[("node2", "wait_primary")], LIMIT).await;
    // The host thaws: its keeper fences its Postgres before anything else.
    host.thaw().unwrap();
    let addr = f.node("node1").addr.clone();
    pgaf_tests::wait::until(
        "the old primary to stop accepting connections",
        Duration::from_secs(10),
        Duration::from_millis(20),
        || {
            let addr = addr.clone();
            async move {
                let conninfo = format!(
                    "host={addr} port=5432 user=postgres dbname=postgres connect_timeout=1"
                );
                match tokio_postgres::connect(&conninfo, tokio_postgres::NoTls).await {
                    Err(_) => Some(()),
                    Ok((c, conn)) => {
                        tokio::spawn(conn);
                        // A standby again (rejoined already) is fine too.
                        let r: bool = c
                            .query_one("SELECT pg_is_in_recovery()", &[])
                            .await
                            .ok()?
                            .get(0);
                        r.then_some(())
                    }
                }
            }
        },
    )
    .await;
    writer.wait_ack(Duration::from_secs(30)).await;
    f.wait_states(&[("node1", "secondary"), ("node2", "primary")], LIMIT)
        .await;
    writer.wait_ack(Duration::from_secs(30)).await;

    let acked = writer.stop().await;
    let primary = f.node_client("node2").await;
    assert_all_present(&primary, &acked).await;
}
