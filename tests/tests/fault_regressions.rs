//! The failures the fault campaign found (`src/faults/`,
//! `bench/faults/REPORT.md`), each replayed as a scenario with bounds that
//! can fail: a monitor, nodes and `pg_autoproxy` each on a host of their
//! own, writers through the proxy and the multi-host URI, split-brain
//! probes on every node (`src/faults/observe.rs`).
//!
//! * The primary cut from its synchronous standby, both still reaching
//!   the monitor: writes stopped for the whole partition (and once, after
//!   a monitor partition, acknowledged writes were lost). Now writes
//!   resume within 3 s through `wait_primary`, nothing fails over, and the
//!   standby comes back once it streams again.
//! * The primary cut from the monitor only, its standbys streaming: it was
//!   failed over after 4 s. Now nothing happens and writes never stop,
//!   and an idle primary is not fenced either.
//! * The monitor cut from every node: it once decided a failover on stale
//!   reports, carried out when the partition healed. Now it decides
//!   nothing.
//! * The monitor's host lost for 45 s: new connections through the proxy
//!   were refused once its 30 s grace was over. Now the proxy asks the
//!   nodes and keeps routing to the primary: no new connection waits more
//!   than 2 s.
//! * The primary's postmaster killed: its keeper was busy restarting it
//!   and stopped reporting, so the monitor took the primary for gone and
//!   failed it over (a 9 s write gap). Now a heartbeat reports while the
//!   keeper is busy: no failover, writes back within 3 s.
//! * Timing bounds near the README's claims: the primary's host lost
//!   (kill -9) to the first acknowledged write ≤ 10 s; a switchover's
//!   longest write gap ≤ 2 s.
#![cfg(feature = "integration")]
#![allow(clippy::unwrap_used)]

use pgaf_tests::autoctl::Flavor;
use pgaf_tests::faults::cluster::{primary_of, Cluster};
use pgaf_tests::faults::observe::Observer;
use pgaf_tests::faults::schedule::Topology;
use std::time::{Duration, Instant};

const LIMIT: Duration = Duration::from_secs(90);

fn topology(nodes: usize) -> Topology {
    Topology {
        nodes,
        number_sync_standbys: 0,
        zero_priority_node: false,
    }
}

async fn start(nodes: usize) -> (Cluster, Observer) {
    let c = Cluster::build(Flavor::Ours, topology(nodes), LIMIT).await;
    let o = Observer::start(c.proxy_port(), &c.nodes()).await;
    // Writes flowing on both paths.
    pgaf_tests::wait::until(
        "both writers to write",
        LIMIT,
        Duration::from_millis(50),
        || {
            let acks = o.acks();
            async move { (acks.len() == 2 && acks.values().all(|v| v.len() > 5)).then_some(()) }
        },
    )
    .await;
    (c, o)
}

/// The end of a scenario: back to a primary and secondaries, no write
/// lost, no split brain since `from`.
async fn finish(c: &mut Cluster, o: &mut Observer, from: f64) {
    assert!(
        c.settle(LIMIT).await.is_some(),
        "not back to a primary and secondaries: {:?}",
        c.states().await
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    o.stop().await;
    let missing = c.missing(&o.acks()).await.unwrap();
    assert!(missing.is_empty(), "acknowledged writes lost: {missing:?}");
    let split = o.split_brains(from);
    assert!(split.is_empty(), "split brain: {split:?}");
}

fn host(c: &Cluster, name: &str) -> std::net::Ipv4Addr {
    if name == "monitor" {
        return c.f.monitor.host.as_ref().unwrap().addr;
    }
    c.f.nodes
        .iter()
        .find(|n| n.name == name)
        .and_then(|n| n.host.as_ref())
        .unwrap()
        .addr
}

/// Goal changes the monitor decided since `t` (its event table).
async fn decisions_since(c: &Cluster, t: std::time::SystemTime) -> Vec<String> {
    let m = c.f.monitor_client().await;
    m.query(
        "SELECT nodename || ': ' || goalstate || ' (' || description || ')'
           FROM pgautofailover.event
          WHERE eventtime > $1
            AND goalstate NOT IN ('primary', 'secondary')
          ORDER BY eventid",
        &[&t],
    )
    .await
    .unwrap()
    .iter()
    .map(|r| r.get(0))
    .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partition_from_the_sync_standby_resumes_writes_within_3_s() {
    let (mut c, mut o) = start(2).await;
    let p = c.primary().await.unwrap();
    let s = if p == "node1" { "node2" } else { "node1" };
    let from = o.now();
    c.lan.block(host(&c, &p), host(&c, s)).unwrap();
    c.lan.block(host(&c, s), host(&c, &p)).unwrap();
    tokio::time::sleep(Duration::from_secs(20)).await;
    let gaps = o.longest_gap(from, o.now());
    c.lan.heal().unwrap();
    for (w, gap) in &gaps {
        eprintln!("MEASURE sync standby cut off: longest write gap via {w}: {gap:.2} s");
        assert!(*gap <= 3.0, "writes via {w} stopped {gap:.2} s");
    }
    assert_eq!(
        primary_of(&c.states().await).as_deref(),
        Some(p.as_str()),
        "no failover"
    );
    finish(&mut c, &mut o, from).await;
    assert_eq!(c.primary().await.as_deref(), Some(p.as_str()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn primary_cut_from_the_monitor_only_keeps_its_role() {
    let (mut c, mut o) = start(3).await;
    let p = c.primary().await.unwrap();
    let t0 = std::time::SystemTime::now();
    let from = o.now();
    c.lan.block(host(&c, &p), host(&c, "monitor")).unwrap();
    c.lan.block(host(&c, "monitor"), host(&c, &p)).unwrap();
    tokio::time::sleep(Duration::from_secs(20)).await;
    let gaps = o.longest_gap(from, o.now());
    c.lan.heal().unwrap();
    for (w, gap) in &gaps {
        eprintln!("MEASURE primary cut from the monitor: longest write gap via {w}: {gap:.2} s");
        assert!(*gap <= 1.0, "writes via {w} stopped {gap:.2} s");
    }
    finish(&mut c, &mut o, from).await;
    assert_eq!(c.primary().await.as_deref(), Some(p.as_str()));
    let d = decisions_since(&c, t0).await;
    assert!(d.is_empty(), "the monitor decided: {d:?}");
}

/// When `name`'s Postgres last started.
async fn postmaster_start(c: &mut Cluster, name: &str) -> String {
    c.f.node_client(name)
        .await
        .query_one("SELECT pg_postmaster_start_time()::text", &[])
        .await
        .unwrap()
        .get(0)
}

/// The same cut on an idle group: no WAL flows, so the standby's replies
/// are only its periodic status messages, which the primary's watchdog
/// needs at least every 1.4 s (keeper/src/pg/files.rs says how often they
/// come).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_primary_cut_from_the_monitor_keeps_its_role() {
    let mut c = Cluster::build(Flavor::Ours, topology(2), LIMIT).await;
    let p = c.primary().await.unwrap();
    let before = postmaster_start(&mut c, &p).await;
    let t0 = std::time::SystemTime::now();
    c.lan.block(host(&c, &p), host(&c, "monitor")).unwrap();
    c.lan.block(host(&c, "monitor"), host(&c, &p)).unwrap();
    tokio::time::sleep(Duration::from_secs(12)).await;
    c.lan.heal().unwrap();
    assert!(
        c.settle(LIMIT).await.is_some(),
        "not back to a primary and a secondary: {:?}",
        c.states().await
    );
    assert_eq!(c.primary().await.as_deref(), Some(p.as_str()));
    assert_eq!(
        postmaster_start(&mut c, &p).await,
        before,
        "the idle primary's Postgres was stopped (fenced) during the cut"
    );
    let d = decisions_since(&c, t0).await;
    assert!(d.is_empty(), "the monitor decided: {d:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_isolated_monitor_decides_nothing() {
    let (mut c, mut o) = start(2).await;
    let p = c.primary().await.unwrap();
    let t0 = std::time::SystemTime::now();
    let from = o.now();
    c.lan.isolate(host(&c, "monitor")).unwrap();
    tokio::time::sleep(Duration::from_secs(20)).await;
    c.lan.heal().unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    finish(&mut c, &mut o, from).await;
    assert_eq!(c.primary().await.as_deref(), Some(p.as_str()));
    let d = decisions_since(&c, t0).await;
    assert!(d.is_empty(), "the monitor decided: {d:?}");
    let gaps = o.longest_gap(from, o.now());
    for (w, gap) in &gaps {
        assert!(*gap <= 1.0, "writes via {w} stopped {gap:.2} s");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_its_monitor_the_proxy_keeps_taking_new_connections() {
    let (mut c, mut o) = start(2).await;
    let from = o.now();
    // New connections through the proxy, one every 100 ms, each with a
    // query: the longest time none succeeded.
    let (addr, port) = c.proxy_port();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let prober = {
        let stop = stop.clone();
        tokio::spawn(async move {
            let cfg = pgaf_tests::faults::observe::config(&[(addr, port)], false);
            let mut last_ok = Instant::now();
            let mut worst = Duration::ZERO;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let attempt = async {
                    let (client, conn) = cfg.connect(tokio_postgres::NoTls).await.ok()?;
                    tokio::spawn(conn);
                    client.simple_query("SELECT 1").await.ok()
                };
                if tokio::time::timeout(Duration::from_secs(2), attempt)
                    .await
                    .ok()
                    .flatten()
                    .is_some()
                {
                    worst = worst.max(last_ok.elapsed());
                    last_ok = Instant::now();
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            worst.max(last_ok.elapsed())
        })
    };
    // The monitor's host is lost for 45 s (its grace period is 30 s).
    c.f.monitor.kill9();
    tokio::time::sleep(Duration::from_secs(45)).await;
    c.f.restart_monitor();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let worst = prober.await.unwrap();
    eprintln!("MEASURE monitor lost 45 s: longest time without a new connection through the proxy: {worst:?}");
    assert!(
        worst <= Duration::from_secs(2),
        "new connections through the proxy failed for {worst:?}"
    );
    finish(&mut c, &mut o, from).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_loss_and_switchover_stay_within_their_bounds() {
    let (mut c, mut o) = start(2).await;
    let from = o.now();
    // Switchover: the longest write gap.
    let m = c.f.monitor_client().await;
    let t = o.now();
    m.execute("SELECT pgautofailover.perform_failover('default', 0)", &[])
        .await
        .unwrap();
    assert!(c.settle(LIMIT).await.is_some());
    tokio::time::sleep(Duration::from_secs(2)).await;
    for (w, gap) in o.longest_gap(t, o.now()) {
        eprintln!("MEASURE switchover: longest write gap via {w}: {gap:.2} s");
        assert!(
            gap <= 2.0,
            "a switchover stopped writes via {w} for {gap:.2} s"
        );
    }
    // The primary's host is lost: kill -9 of its keeper and Postgres.
    let p = c.primary().await.unwrap();
    let t = o.now();
    c.f.node(&p).kill9();
    pgaf_tests::wait::until(
        "a write after the host loss",
        LIMIT,
        Duration::from_millis(20),
        || {
            let acks = o.acks();
            async move {
                acks.values()
                    .all(|v| v.last().is_some_and(|a| a.acked > t))
                    .then_some(())
            }
        },
    )
    .await;
    for (w, gap) in o.longest_gap(t, o.now()) {
        eprintln!("MEASURE host loss: first acknowledged write via {w} after {gap:.2} s");
        assert!(gap <= 10.0, "host loss: no write via {w} for {gap:.2} s");
    }
    c.f.restart(&p);
    finish(&mut c, &mut o, from).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_postmaster_is_restarted_without_a_failover() {
    let (mut c, mut o) = start(2).await;
    let p = c.primary().await.unwrap();
    let t0 = std::time::SystemTime::now();
    let from = o.now();
    let pgdata = c.f.node(&p).pgdata.clone();
    let pm = pgaf_tests::autoctl::postmaster_pid(&pgdata).unwrap();
    pgaf_tests::autoctl::signal(pm, libc::SIGKILL);
    tokio::time::sleep(Duration::from_secs(10)).await;
    for (w, gap) in o.longest_gap(from, o.now()) {
        eprintln!("MEASURE postmaster killed: longest write gap via {w}: {gap:.2} s");
        assert!(gap <= 3.0, "writes via {w} stopped {gap:.2} s");
    }
    finish(&mut c, &mut o, from).await;
    assert_eq!(c.primary().await.as_deref(), Some(p.as_str()));
    // While Postgres restarted, its standby stopped replicating: counted
    // out (catchingup), the primary asynchronous (wait_primary) for a
    // moment. But no failover began.
    let d: Vec<String> = decisions_since(&c, t0)
        .await
        .into_iter()
        .filter(|e| !e.contains(": catchingup (") && !e.contains(": wait_primary ("))
        .collect();
    assert!(d.is_empty(), "a failover began: {d:?}");
}
