//! No split brain and no lost write when a primary's keeper cannot do its
//! job:
//! * the monitor goes away: the primary keeps its standby and goes on
//!   accepting writes (a lost monitor alone is no reason to stop), and
//!   everything resumes when the monitor returns;
//! * the primary's keeper is frozen (SIGSTOP) while its Postgres keeps
//!   running: the monitor promotes the standby once the lease expired and
//!   the standby stopped streaming from the old primary for fence_timeout;
//!   when the keeper thaws, it fences its Postgres at once, and the old
//!   primary rejoins as a standby. Every write acknowledged to the client is
//!   on the new primary at the end.
#![cfg(feature = "integration")]
#![allow(clippy::unwrap_used)]

use pgaf_tests::autoctl::{assert_all_present, signal, Formation, Writer};
use std::time::Duration;

const LIMIT: Duration = Duration::from_secs(90);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_monitor_or_a_frozen_keeper_loses_no_write() {
    let mut f = Formation::with_monitor().await;
    f.add_node("node1", &[]);
    f.wait_states(&[("node1", "single")], LIMIT).await;
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

    // The primary's keeper freezes; its Postgres keeps running.
    let keeper = f.node("node1").pid().unwrap();
    signal(keeper, libc::SIGSTOP);
    f.wait_states(&[("node2", "wait_primary")], LIMIT).await;
    // The keeper thaws: it fences its Postgres before anything else.
    signal(keeper, libc::SIGCONT);
    pgaf_tests::wait::until(
        "the old primary to stop accepting connections",
        Duration::from_secs(10),
        Duration::from_millis(20),
        || {
            let port = f.nodes[0].port;
            async move {
                let conninfo = format!(
                    "host=127.0.0.1 port={port} user=postgres dbname=postgres connect_timeout=1"
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
