//! A monitor on a slow disk (every WAL flush takes 2.5 s, `src/slowdisk.rs`)
//! while the primary's only standby is down, so that the primary lives on
//! its lease alone. The keepers' routine reports do not wait for the flush
//! (`fsm/src/durability.rs`), so the lease is renewed as usual: the primary
//! is never fenced and writes go on. Before, every report waited behind a
//! flush inside the formation's lock: the primary lost its lease 1.5 s
//! into the stall and its keeper stopped Postgres (found under load by
//! `lan_failover` and by the fault campaign, seed 12, fault 97).
#![cfg(feature = "integration")]
#![allow(clippy::unwrap_used)]

use pgaf_tests::autoctl::{assert_all_present, Formation, Writer};
use pgaf_tests::slowdisk::SlowDisk;
use std::time::{Duration, Instant};

const LIMIT: Duration = Duration::from_secs(90);

fn postmaster_pid(f: &mut Formation, name: &str) -> String {
    let file = f.node(name).pgdata.join("postmaster.pid");
    std::fs::read_to_string(&file)
        .unwrap_or_default()
        .lines()
        .next()
        .unwrap_or_default()
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_monitor_on_a_slow_disk_does_not_fence_a_healthy_primary() {
    let dir = std::env::temp_dir().join(format!("pgaf-slowdisk-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    pgaf_tests::autoctl::give_to_postgres(&dir);
    let disk = SlowDisk::build(&dir);
    let mut f = Formation::with_monitor_env(disk.env()).await;
    f.debug = true;
    f.add_node("node1", &[]);
    f.wait_states(&[("node1", "single")], LIMIT).await;
    f.allow_clients("node1");
    f.add_node("node2", &[]);
    f.wait_states(&[("node1", "primary"), ("node2", "secondary")], LIMIT)
        .await;

    // The standby's Postgres stops; its keeper keeps reporting.
    let pg2 = f.node("node2").pgdata.display().to_string();
    let out = f.autoctl(&["do", "pgctl", "off", "--pgdata", &pg2]);
    assert!(
        out.status.success(),
        "do pgctl off: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    f.wait_states(&[("node1", "wait_primary"), ("node2", "catchingup")], LIMIT)
        .await;
    let writer = Writer::start(f.uri("postgres")).await;
    writer.wait_ack(LIMIT).await;
    // Let the monitor's health checks settle on the stopped standby.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let pid = postmaster_pid(&mut f, "node1");
    assert!(!pid.is_empty(), "node1 runs");

    // 15 s of 2.5-second flushes on the monitor.
    let slow_from = Instant::now();
    disk.set_ms(2500);
    tokio::time::sleep(Duration::from_secs(15)).await;
    disk.set_ms(0);
    let slow_to = Instant::now();
    tokio::time::sleep(Duration::from_secs(2)).await;

    let times = writer.ack_times();
    let mut last = slow_from;
    let mut worst = Duration::ZERO;
    for t in times.iter().filter(|t| **t > slow_from && **t < slow_to) {
        worst = worst.max(t.duration_since(last));
        last = *t;
    }
    worst = worst.max(slow_to.duration_since(last));
    eprintln!("MEASURE slow monitor disk: longest write gap {worst:?}");
    assert_eq!(
        postmaster_pid(&mut f, "node1"),
        pid,
        "node1's Postgres was stopped:\n{}",
        f.node("node1").log_tail(20)
    );
    assert!(
        worst <= Duration::from_secs(1),
        "writes stopped for {worst:?} while the monitor's disk was slow"
    );
    let states = f.states().await;
    assert!(
        states
            .iter()
            .any(|s| s.name == "node1" && s.reported == "wait_primary"),
        "{states:#?}"
    );

    let acked = writer.stop().await;
    let c = f.node_client("node1").await;
    assert_all_present(&c, &acked).await;
    drop(f);
    let _ = std::fs::remove_dir_all(&dir);
}
