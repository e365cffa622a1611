//! A monitor and three real `pg_autoctl` nodes with candidate priorities:
//! when the primary's host is lost, the node with the highest priority is
//! promoted even though it lags behind the other standby: it first fetches
//! the WAL it misses from that standby (fast_forward). A writer runs
//! through the failover and every acknowledged write is found at the end.
#![cfg(feature = "integration")]
#![allow(clippy::unwrap_used)]

use pgaf_tests::autoctl::{assert_all_present, signal, Formation, Writer};
use std::time::{Duration, Instant};

const LIMIT: Duration = Duration::from_secs(120);

fn lsn(s: &str) -> u64 {
    let (hi, lo) = s.split_once('/').unwrap();
    (u64::from_str_radix(hi, 16).unwrap() << 32) | u64::from_str_radix(lo, 16).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_preferred_candidate_fast_forwards_then_takes_over() {
    let mut f = Formation::with_monitor().await;
    f.add_node("node1", &[]);
    f.wait_states(&[("node1", "single")], LIMIT).await;
    f.add_node("node2", &["--candidate-priority", "90"]);
    f.wait_states(&[("node1", "primary"), ("node2", "secondary")], LIMIT)
        .await;
    f.add_node("node3", &[]);
    f.wait_states(
        &[
            ("node1", "primary"),
            ("node2", "secondary"),
            ("node3", "secondary"),
        ],
        LIMIT,
    )
    .await;

    let writer = Writer::start(f.uri("postgres")).await;
    writer.wait_ack(Duration::from_secs(10)).await;

    // node2 stops receiving WAL: the primary's WAL sender for it is frozen
    // (freezing node2's receiver instead would let it read what the socket
    // buffers hold once it thaws). node3 keeps acknowledging synchronous
    // commits, so writes go on.
    let n1 = f.node_client("node1").await;
    let walsender: i32 = n1
        .query_one("SELECT pid FROM pg_stat_replication WHERE application_name = 'pgautofailover_standby_2'", &[])
        .await
        .unwrap()
        .get(0);
    drop(n1);
    signal(walsender, libc::SIGSTOP);
    let before = writer.acked();
    pgaf_tests::wait::until(
        "writes while node2 lags",
        Duration::from_secs(30),
        Duration::from_millis(20),
        || {
            let done = writer.acked() >= before + 50;
            async move { done.then_some(()) }
        },
    )
    .await;
    // The monitor sees node2 behind node3.
    pgaf_tests::wait::until(
        "node2 to report a lower LSN than node3",
        Duration::from_secs(30),
        Duration::from_millis(50),
        || {
            let f = &f;
            async move {
                let s = f.states().await;
                let get = |n: &str| s.iter().find(|x| x.name == n).map(|x| lsn(&x.lsn));
                (get("node2")? < get("node3")?).then_some(())
            }
        },
    )
    .await;

    let t0 = Instant::now();
    f.node("node1").kill9();
    // The frozen sender outlives its postmaster: it goes with the host.
    signal(walsender, libc::SIGKILL);
    let t = writer.wait_ack_since(t0, Duration::from_secs(90)).await;
    eprintln!(
        "MEASURE failover with fast-forward: first acknowledged write {:.2} s after kill -9",
        t.as_secs_f64()
    );
    // The README claims about 4 s; 10 s leaves room for a loaded machine.
    assert!(
        t <= Duration::from_secs(10),
        "host loss: first acknowledged write only after {t:?}"
    );
    f.wait_states(&[("node2", "primary"), ("node3", "secondary")], LIMIT)
        .await;
    assert!(
        f.node("node2").log_text().contains("to \"fast_forward\""),
        "node2 was promoted without fast-forwarding:\n{}",
        f.node("node2").log_tail(60)
    );

    // The old primary rejoins.
    f.restart("node1");
    f.wait_states(
        &[
            ("node1", "secondary"),
            ("node2", "primary"),
            ("node3", "secondary"),
        ],
        LIMIT,
    )
    .await;

    let acked = writer.stop().await;
    let primary = f.node_client("node2").await;
    assert_all_present(&primary, &acked).await;
}
