//! Nodes without a monitor, and a monitor replaced:
//!
//! * two nodes made with `create postgres --disable-monitor --node-id`,
//!   driven by hand with `do fsm nodes set` and `do fsm assign` to primary
//!   and secondary (`synchronous_standby_names = '*'`), then through a
//!   manual failover and the old primary's rejoin, without losing a row;
//! * the documented way to replace a lost monitor: the monitor's host is
//!   gone, `disable monitor --force` on the standby then the primary (both
//!   keep their role and replication), a new monitor, `enable monitor` on
//!   the primary then the standby, node ids kept, and a failover through
//!   the new monitor.
#![cfg(feature = "integration")]
#![allow(clippy::unwrap_used)]

use pgaf_tests::autoctl::{describe, Formation};
use serde_json::Value;
use std::time::Duration;

const LIMIT: Duration = Duration::from_secs(120);

/// `pg_autoctl args` for node `name`, which must succeed; its stdout.
fn ok(f: &mut Formation, name: &str, args: &[&str]) -> String {
    let pgdata = f.node(name).pgdata.display().to_string();
    let mut all: Vec<&str> = args.to_vec();
    all.extend(["--pgdata", &pgdata]);
    let o = f.autoctl_on(name, &all);
    assert!(
        o.status.success(),
        "pg_autoctl {} on {name}: {}",
        args.join(" "),
        describe(&o)
    );
    String::from_utf8_lossy(&o.stdout).to_string()
}

/// `do fsm assign <goal>` on `name`: waits for the node to get there.
fn assign(f: &mut Formation, name: &str, goal: &str) {
    let out = ok(f, name, &["do", "fsm", "assign", goal]);
    let v: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    assert_eq!(v["state"]["current_role"], goal, "{out}");
    assert_eq!(v["state"]["assigned_role"], goal, "{out}");
}

/// The nodes file listing both nodes, `primary` being the primary.
fn nodes_json(f: &mut Formation, primary: &str) -> String {
    let mut rows = Vec::new();
    for (id, name) in [(1, "node1"), (2, "node2")] {
        let n = f.node(name);
        rows.push(serde_json::json!({
            "node_id": id,
            "node_name": name,
            "node_host": n.addr,
            "node_port": n.port,
            "node_lsn": "0/0",
            "node_is_primary": name == primary,
        }));
    }
    Value::Array(rows).to_string()
}

fn set_nodes(f: &mut Formation, primary: &str) {
    let file = f.dir.join(format!("nodes-{primary}.json"));
    std::fs::write(&file, nodes_json(f, primary)).unwrap();
    pgaf_tests::autoctl::give_to_postgres(&file);
    for name in ["node1", "node2"] {
        let out = ok(
            f,
            name,
            &["do", "fsm", "nodes", "set", &file.display().to_string()],
        );
        assert!(out.contains("Host:Port"), "{out}");
        let get = ok(f, name, &["do", "fsm", "nodes", "get"]);
        assert_eq!(get, out, "nodes get shows what nodes set stored");
    }
}

async fn insert(f: &mut Formation, name: &str, ids: std::ops::Range<i64>) -> Vec<i64> {
    let c = f.node_client(name).await;
    c.batch_execute("CREATE TABLE IF NOT EXISTS t (id bigint primary key)")
        .await
        .unwrap();
    for i in ids.clone() {
        c.execute("INSERT INTO t VALUES ($1)", &[&i]).await.unwrap();
    }
    ids.collect()
}

/// Every acknowledged row is in table `t` on `name`.
async fn assert_all_present(c: &tokio_postgres::Client, acked: &[i64]) {
    let rows = c.query("SELECT id FROM t", &[]).await.unwrap();
    let have: std::collections::HashSet<i64> = rows.iter().map(|r| r.get(0)).collect();
    let missing: Vec<&i64> = acked.iter().filter(|i| !have.contains(i)).collect();
    assert!(missing.is_empty(), "acknowledged rows lost: {missing:?}");
}

async fn setting(f: &mut Formation, name: &str, guc: &str) -> String {
    let c = f.node_client(name).await;
    let row = c.query_one(&format!("SHOW {guc}"), &[]).await.unwrap();
    row.get(0)
}

/// Wait until `name`'s state file says `state` (the node was created, or
/// its service finished a transition it was given).
async fn wait_current(f: &mut Formation, name: &str, state: &str) {
    let pgdata = f.node(name).pgdata.display().to_string();
    let deadline = std::time::Instant::now() + LIMIT;
    loop {
        let o = f.autoctl_on(name, &["do", "fsm", "state", "--pgdata", &pgdata]);
        let out = String::from_utf8_lossy(&o.stdout).to_string();
        if let Ok(v) = serde_json::from_str::<Value>(&out) {
            if v["state"]["current_role"] == state {
                return;
            }
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{name} is not {state} after {LIMIT:?}: {}",
            describe(&o)
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_driven_by_hand_without_a_monitor() {
    let mut f = Formation::with_monitor().await;
    f.debug = true;
    f.add_node_without_monitor("node1", 1);
    f.add_node_without_monitor("node2", 2);
    wait_current(&mut f, "node1", "init").await;
    wait_current(&mut f, "node2", "init").await;

    // Without a monitor the monitor's commands refuse, clearly.
    let pgdata = f.node("node1").pgdata.display().to_string();
    let o = f.autoctl(&["do", "fsm", "step", "--pgdata", &pgdata]);
    assert_eq!(o.status.code(), Some(2), "{}", describe(&o));
    assert!(
        describe(&o).contains("monitor is disabled"),
        "{}",
        describe(&o)
    );
    let o = f.autoctl(&[
        "show",
        "file",
        "--config",
        "--contents",
        "--pgdata",
        &pgdata,
    ]);
    assert!(
        describe(&o).contains("monitor = PG_AUTOCTL_DISABLED"),
        "{}",
        describe(&o)
    );

    set_nodes(&mut f, "node1");
    assign(&mut f, "node1", "single");
    let mut acked = insert(&mut f, "node1", 0..50).await;
    assign(&mut f, "node2", "wait_standby");
    assign(&mut f, "node1", "wait_primary");
    assign(&mut f, "node2", "catchingup");
    assign(&mut f, "node1", "primary");
    assign(&mut f, "node2", "secondary");
    assert_eq!(
        setting(&mut f, "node1", "synchronous_standby_names").await,
        "*"
    );
    acked.extend(insert(&mut f, "node1", 50..100).await);

    // A manual failover: the primary stops, the standby is promoted, the
    // nodes file names the new primary, the old one rewinds and follows.
    assign(&mut f, "node1", "demoted");
    assign(&mut f, "node2", "prepare_promotion");
    assign(&mut f, "node2", "stop_replication");
    assign(&mut f, "node2", "wait_primary");
    set_nodes(&mut f, "node2");
    acked.extend(insert(&mut f, "node2", 100..150).await);
    assign(&mut f, "node1", "catchingup");
    assign(&mut f, "node2", "primary");
    assign(&mut f, "node1", "secondary");
    acked.extend(insert(&mut f, "node2", 150..200).await);

    let c = f.node_client("node2").await;
    assert_all_present(&c, &acked).await;
    let standby = f.node_client("node1").await;
    let deadline = std::time::Instant::now() + LIMIT;
    loop {
        let row = standby
            .query_one("SELECT count(*) FROM t", &[])
            .await
            .unwrap();
        if row.get::<_, i64>(0) == 200 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "node1 did not replay every row"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let in_recovery: bool = standby
        .query_one("SELECT pg_is_in_recovery()", &[])
        .await
        .unwrap()
        .get(0);
    assert!(in_recovery, "node1 follows node2");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replacing_a_monitor_lost_for_good() {
    let mut f = Formation::with_monitor().await;
    f.debug = true;
    f.add_node("node1", &[]);
    f.wait_states(&[("node1", "single")], LIMIT).await;
    f.add_node("node2", &[]);
    f.wait_states(&[("node1", "primary"), ("node2", "secondary")], LIMIT)
        .await;
    let mut acked = insert(&mut f, "node1", 0..50).await;

    // The monitor's host is gone for good.
    f.replace_monitor("monitor2").await;

    // Without a monitor that answers, only --force disables it.
    let pgdata2 = f.node("node2").pgdata.display().to_string();
    let o = f.autoctl(&["disable", "monitor", "--pgdata", &pgdata2]);
    assert_eq!(o.status.code(), Some(6), "{}", describe(&o));
    for name in ["node2", "node1"] {
        ok(&mut f, name, &["disable", "monitor", "--force"]);
    }
    // Both keep their role: writes go on, replicated synchronously.
    acked.extend(insert(&mut f, "node1", 50..100).await);
    let out = ok(&mut f, "node1", &["do", "fsm", "state"]);
    assert!(out.contains("\"current_role\": \"primary\""), "{out}");

    let uri = f.monitor_uri.clone();
    let o = f.autoctl(&["enable", "monitor", "--pgdata", &pgdata2, "not a uri"]);
    assert_eq!(o.status.code(), Some(1), "{}", describe(&o));
    ok(&mut f, "node1", &["enable", "monitor", &uri]);
    f.wait_states(&[("node1", "single")], LIMIT).await;
    ok(&mut f, "node2", &["enable", "monitor", &uri]);
    f.wait_states(&[("node1", "primary"), ("node2", "secondary")], LIMIT)
        .await;
    let again = f.autoctl(&["enable", "monitor", "--pgdata", &pgdata2, &uri]);
    assert_eq!(again.status.code(), Some(2), "{}", describe(&again));

    // The node ids are the old ones.
    let states = f.states().await;
    let id = |n: &str| states.iter().find(|s| s.name == n).map(|s| s.id);
    assert_eq!((id("node1"), id("node2")), (Some(1), Some(2)), "{states:?}");
    acked.extend(insert(&mut f, "node1", 100..150).await);

    // A failover through the new monitor.
    let o = f.autoctl(&[
        "perform",
        "failover",
        "--monitor",
        &uri,
        "--formation",
        "default",
        "--wait",
        "90",
    ]);
    assert!(o.status.success(), "{}", describe(&o));
    f.wait_states(&[("node1", "secondary"), ("node2", "primary")], LIMIT)
        .await;
    acked.extend(insert(&mut f, "node2", 150..200).await);
    let c = f.node_client("node2").await;
    assert_all_present(&c, &acked).await;
}

/// Found by the fault campaign (seed 12, faults 110-111): an old primary
/// whose WAL went past the new primary's fork was sent demoted ->
/// report_lsn -> secondary. `report_lsn` had made it a standby already, so
/// following the new primary did not rewind it, and one walreceiver that
/// streamed for an instant (before finding the fork) passed for a healthy
/// stream: the node stayed a standby that could never replay again. Driven
/// here by hand, deterministically: the old primary takes writes its
/// standby never receives, the standby is promoted, and the old primary
/// goes through report_lsn to secondary. It must rewind and replay the new
/// primary's writes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_old_primary_past_the_fork_rewinds_before_it_follows() {
    let mut f = Formation::with_monitor().await;
    f.debug = true;
    f.add_node_without_monitor("node1", 1);
    f.add_node_without_monitor("node2", 2);
    wait_current(&mut f, "node1", "init").await;
    wait_current(&mut f, "node2", "init").await;
    set_nodes(&mut f, "node1");
    assign(&mut f, "node1", "single");
    insert(&mut f, "node1", 0..10).await;
    assign(&mut f, "node2", "wait_standby");
    assign(&mut f, "node1", "wait_primary");
    assign(&mut f, "node2", "catchingup");
    assign(&mut f, "node1", "primary");
    assign(&mut f, "node2", "secondary");

    // The standby stops; the primary takes writes it never receives.
    ok(&mut f, "node2", &["do", "pgctl", "off"]);
    let c = f.node_client("node1").await;
    c.batch_execute(
        "SET synchronous_commit = local; INSERT INTO t SELECT generate_series(1000, 1999)",
    )
    .await
    .unwrap();
    drop(c);
    assign(&mut f, "node1", "demoted");
    ok(&mut f, "node2", &["do", "pgctl", "on"]);

    // The standby is promoted on a timeline that forks before those writes.
    assign(&mut f, "node2", "prepare_promotion");
    assign(&mut f, "node2", "stop_replication");
    assign(&mut f, "node2", "wait_primary");
    set_nodes(&mut f, "node2");
    let acked = insert(&mut f, "node2", 100..150).await;

    // The old primary joins an election, then follows the new primary.
    assign(&mut f, "node1", "report_lsn");
    assign(&mut f, "node1", "secondary");
    let standby = f.node_client("node1").await;
    let deadline = std::time::Instant::now() + LIMIT;
    loop {
        let rows = standby
            .query("SELECT id FROM t WHERE id >= 100 AND id < 150", &[])
            .await
            .unwrap();
        if rows.len() == acked.len() {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "node1 does not replay node2's writes: it did not rewind"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let diverged: i64 = standby
        .query_one("SELECT count(*) FROM t WHERE id >= 1000", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(diverged, 0, "node1 kept the writes of its old timeline");
}
