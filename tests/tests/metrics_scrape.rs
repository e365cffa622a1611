//! Prometheus metrics of a live cluster: a monitor, two nodes and a
//! pg_autoproxy, each serving `/metrics`. Every endpoint is scraped before
//! and after a switchover (`perform_failover`), every scrape passes
//! `promtool check metrics`, every sample carries its component's prefix
//! and only bounded labels, and the values move: reported and goal
//! states, timelines, transitions, the monitor's failovers and events, the
//! proxy's route changes and fenced sessions.
#![cfg(feature = "integration")]
#![allow(clippy::unwrap_used)]

use pgaf_tests::autoctl::Formation;
use pgaf_tests::cluster::free_port;
use pgaf_tests::proxy::{Listener, Proxy, Role};
use pgaf_tests::scrape::{
    dashboard_exprs, promtool, promtool_check_promql, scrape, try_scrape, Samples,
};
use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

const LIMIT: Duration = Duration::from_secs(90);
const GROUP: [(&str, &str); 2] = [("formation", "default"), ("group", "0")];

fn free_addr() -> SocketAddr {
    format!("127.0.0.1:{}", free_port()).parse().unwrap()
}

/// Every sample starts with `prefix`, there is a build_info, and no label
/// could carry a user, a database or a client address.
fn conventions(s: &Samples, prefix: &str) {
    for sample in &s.samples {
        assert!(
            sample.name.starts_with(prefix),
            "{} lacks the prefix {prefix}",
            sample.name
        );
    }
    assert_eq!(
        s.sum(&format!("{prefix}build_info"), &[]),
        1.0,
        "{}",
        s.text
    );
    let allowed = [
        "version",
        "state",
        "formation",
        "group",
        "node_id",
        "node_name",
        "from",
        "to",
        "kind",
        "listener",
        "reason",
        "direction",
        "outcome",
        "le",
    ];
    for label in s.label_names() {
        assert!(
            allowed.contains(&label.as_str()),
            "unexpected label {label}"
        );
    }
}

/// Set `[pg_autoctl] metrics_listen` in the monitor's configuration file
/// (an empty key is not written, so it may be missing).
fn set_metrics_listen(f: &Formation, addr: SocketAddr) {
    let relative = f.monitor.pgdata.strip_prefix("/").unwrap();
    let path = f
        .dir
        .join("xdg/config/pg_autoctl")
        .join(relative)
        .join("pg_autoctl.cfg");
    let text = std::fs::read_to_string(&path).unwrap();
    let mut out = Vec::new();
    for line in text.lines() {
        if line.trim_start().starts_with("metrics_listen") {
            continue;
        }
        out.push(line.to_string());
        if line.trim() == "[pg_autoctl]" {
            out.push(format!("metrics_listen = {addr}"));
        }
    }
    assert!(
        out.len() > text.lines().count() - 1,
        "no [pg_autoctl] section in {}:\n{text}",
        path.display()
    );
    // Rewritten in place: the file keeps its owner.
    std::fs::write(&path, out.join("\n") + "\n").unwrap();
}

/// Scrape `addr` until `ok` holds of the samples (`limit` at most).
async fn scrape_until(
    what: &str,
    addr: SocketAddr,
    limit: Duration,
    ok: impl Fn(&Samples) -> bool,
) -> Samples {
    let deadline = Instant::now() + limit;
    loop {
        let last = match try_scrape(addr).await {
            Ok(s) if ok(&s) => return s,
            Ok(s) => s.text,
            Err(e) => e,
        };
        assert!(
            Instant::now() < deadline,
            "timed out after {limit:?} waiting for {what} on {addr}:\n{last}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn node_labels(name: &str) -> [(&str, &str); 3] {
    [
        ("formation", "default"),
        ("group", "0"),
        ("node_name", name),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_endpoint_scrapes_and_values_move_through_a_failover() {
    let started = Instant::now();
    let mut f = Formation::with_monitor().await;
    // The monitor's endpoint is set in its configuration file, as
    // `pg_autoctl config set pg_autoctl.metrics_listen` does, and served by
    // `pg_autoctl run` once restarted (the nodes use `create --metrics-listen`).
    let monitor_metrics = free_addr();
    set_metrics_listen(&f, monitor_metrics);
    f.monitor.stop(Duration::from_secs(30));
    f.restart_monitor();
    scrape_until("the monitor's endpoint", monitor_metrics, LIMIT, |s| {
        s.value("pgautofailover_up", &[]) == 1.0
    })
    .await;
    let node1_metrics = free_addr();
    let node2_metrics = free_addr();
    f.add_node("node1", &["--metrics-listen", &node1_metrics.to_string()]);
    f.wait_states(&[("node1", "single")], LIMIT).await;
    f.add_node("node2", &["--metrics-listen", &node2_metrics.to_string()]);
    f.wait_states(&[("node1", "primary"), ("node2", "secondary")], LIMIT)
        .await;
    let proxy = Proxy::start(
        &f.dir,
        &f.monitor_uri,
        &[Listener {
            name: "app",
            role: Role::ReadWrite,
            extra: String::new(),
        }],
        "",
    )
    .await;
    let proxy_metrics: SocketAddr = format!("127.0.0.1:{}", proxy.admin).parse().unwrap();

    // A session through the proxy: counted, and fenced by the switchover.
    let (client, conn) = tokio_postgres::connect(
        &format!(
            "host=127.0.0.1 port={} user=postgres dbname=postgres connect_timeout=5",
            proxy.port("app")
        ),
        tokio_postgres::NoTls,
    )
    .await
    .unwrap();
    let conn = tokio::spawn(conn);
    client.simple_query("SELECT 1").await.unwrap();

    // Before.
    let n1 = scrape_until("node1 to report primary", node1_metrics, LIMIT, |s| {
        s.value("pgautoctl_reported_state", &[("state", "primary")]) == 1.0
            && s.value("pgautoctl_goal_state", &[("state", "primary")]) == 1.0
    })
    .await;
    conventions(&n1, "pgautoctl_");
    assert_eq!(n1.value("pgautoctl_postgres_up", &[]), 1.0);
    assert_eq!(n1.value("pgautoctl_replication_lag_bytes", &[]), 0.0);
    assert_eq!(n1.value("pgautoctl_timeline", &[]), 1.0);
    assert_eq!(n1.sum("pgautoctl_sync_state", &[]), 1.0, "{}", n1.text);
    assert_eq!(n1.sum("pgautoctl_reported_state", &[]), 1.0);
    let age = n1.value("pgautoctl_monitor_last_contact_age_seconds", &[]);
    assert!(age.is_finite() && age >= 0.0, "{age}");
    assert_eq!(
        n1.value("pgautoctl_node_info", &[("node_name", "node1")]),
        1.0
    );
    assert_eq!(
        n1.matching("pgautoctl_failed_actions_total", &[]).count(),
        7,
        "{}",
        n1.text
    );
    assert!(
        n1.value(
            "pgautoctl_transitions_total",
            &[("from", "init"), ("to", "single")]
        ) >= 1.0
    );

    let n2 = scrape_until("node2 to stream", node2_metrics, LIMIT, |s| {
        s.value("pgautoctl_reported_state", &[("state", "secondary")]) == 1.0
            && s.value("pgautoctl_replication_lag_bytes", &[]).is_finite()
    })
    .await;
    conventions(&n2, "pgautoctl_");
    assert!(n2.value("pgautoctl_replication_lag_bytes", &[]) >= 0.0);

    let m = scrape(monitor_metrics).await;
    conventions(&m, "pgautofailover_");
    assert_eq!(m.value("pgautofailover_up", &[]), 1.0);
    let state = |s: &Samples, metric: &str, node: &str, st: &str| {
        let [a, b, c] = node_labels(node);
        s.value(metric, &[a, b, c, ("state", st)])
    };
    assert_eq!(
        state(&m, "pgautofailover_node_reported_state", "node1", "primary"),
        1.0
    );
    assert_eq!(
        state(&m, "pgautofailover_node_goal_state", "node2", "secondary"),
        1.0
    );
    assert_eq!(
        m.value("pgautofailover_node_lsn_lag_bytes", &node_labels("node1")),
        0.0
    );
    for node in ["node1", "node2"] {
        let health = m.value("pgautofailover_node_health", &node_labels(node));
        assert!([-1.0, 0.0, 1.0].contains(&health), "{health}");
        assert!(
            m.value(
                "pgautofailover_node_last_report_age_seconds",
                &node_labels(node)
            ) >= 0.0
        );
        assert!(
            m.value(
                "pgautofailover_node_last_health_check_age_seconds",
                &node_labels(node)
            ) >= 0.0
        );
    }
    let events_before = m.value("pgautofailover_events_total", &GROUP);
    assert!(events_before > 0.0);
    assert_eq!(m.value("pgautofailover_failovers_total", &GROUP), 0.0);

    let p = scrape(proxy_metrics).await;
    conventions(&p, "pgautoproxy_");
    let app = [("listener", "app")];
    assert_eq!(p.value("pgautoproxy_monitor_up", &[]), 1.0);
    assert_eq!(p.value("pgautoproxy_primary_known", &GROUP), 1.0);
    assert!(p.value("pgautoproxy_monitor_last_refresh_timestamp_seconds", &[]) > 0.0);
    assert!(p.value("pgautoproxy_client_connections_total", &app) >= 1.0);
    assert!(p.value("pgautoproxy_client_connections_active", &app) >= 1.0);
    assert!(
        p.value(
            "pgautoproxy_backend_connect_seconds_count",
            &[("listener", "app"), ("outcome", "ok")]
        ) >= 1.0
    );
    assert!(
        p.matching("pgautoproxy_client_wait_seconds_bucket", &app)
            .count()
            > 1
    );
    assert_eq!(p.value("pgautoproxy_clients_waiting", &app), 0.0);
    let routes_before = p.value("pgautoproxy_route_changes_total", &GROUP);
    assert!(routes_before >= 1.0);
    let fenced = [("listener", "app"), ("reason", "role_lost")];
    assert_eq!(
        p.value("pgautoproxy_client_connections_fenced_total", &fenced),
        0.0
    );

    // The switchover.
    let mc = f.monitor_client().await;
    mc.execute("SELECT pgautofailover.perform_failover('default', 0)", &[])
        .await
        .unwrap();
    f.wait_states(&[("node1", "secondary"), ("node2", "primary")], LIMIT)
        .await;

    // After.
    let n2 = scrape_until("node2 to report primary", node2_metrics, LIMIT, |s| {
        s.value("pgautoctl_reported_state", &[("state", "primary")]) == 1.0
            && s.value("pgautoctl_goal_state", &[("state", "primary")]) == 1.0
    })
    .await;
    assert_eq!(
        n2.value("pgautoctl_reported_state", &[("state", "secondary")]),
        0.0
    );
    assert_eq!(n2.value("pgautoctl_timeline", &[]), 2.0);
    assert_eq!(n2.value("pgautoctl_replication_lag_bytes", &[]), 0.0);
    // Every promotion starts with prepare_promotion; what follows depends
    // on timing (stop_replication, wait_primary, ...).
    assert!(
        n2.value(
            "pgautoctl_transitions_total",
            &[("from", "secondary"), ("to", "prepare_promotion")]
        ) >= 1.0,
        "{}",
        n2.text
    );
    assert!(
        n2.sum(
            "pgautoctl_transitions_total",
            &[("from", "prepare_promotion")]
        ) >= 1.0
    );
    assert!(n2.sum("pgautoctl_transitions_total", &[("to", "primary")]) >= 1.0);

    let n1 = scrape_until("node1 to report secondary", node1_metrics, LIMIT, |s| {
        s.value("pgautoctl_reported_state", &[("state", "secondary")]) == 1.0
    })
    .await;
    assert_eq!(
        n1.value("pgautoctl_reported_state", &[("state", "primary")]),
        0.0
    );
    // Demoted through draining or demote_timeout, depending on timing.
    assert!(
        n1.sum("pgautoctl_transitions_total", &[("from", "primary")]) >= 1.0,
        "{}",
        n1.text
    );
    assert!(n1.sum("pgautoctl_transitions_total", &[("to", "secondary")]) >= 1.0);

    let m = scrape(monitor_metrics).await;
    assert_eq!(m.value("pgautofailover_failovers_total", &GROUP), 1.0);
    assert!(m.value("pgautofailover_events_total", &GROUP) > events_before);
    assert_eq!(
        state(&m, "pgautofailover_node_reported_state", "node2", "primary"),
        1.0
    );
    assert_eq!(
        state(&m, "pgautofailover_node_reported_state", "node1", "primary"),
        0.0
    );
    assert_eq!(
        state(&m, "pgautofailover_node_goal_state", "node1", "secondary"),
        1.0
    );
    assert_eq!(
        m.value("pgautofailover_node_timeline", &node_labels("node2")),
        2.0
    );

    let p = scrape_until("the proxy to follow node2", proxy_metrics, LIMIT, |s| {
        s.value("pgautoproxy_route_changes_total", &GROUP) > routes_before
            && s.value("pgautoproxy_primary_known", &GROUP) == 1.0
    })
    .await;
    assert_eq!(p.value("pgautoproxy_monitor_up", &[]), 1.0);
    // The session on the old primary is closed: by the proxy's fencing
    // (counted) or by the old primary's own shutdown, whichever comes
    // first, so the counter is reported, not asserted.
    assert!(client.simple_query("SELECT 1").await.is_err());
    let _ = tokio::time::timeout(Duration::from_secs(5), conn).await;
    eprintln!(
        "fenced sessions: {}",
        p.value("pgautoproxy_client_connections_fenced_total", &fenced)
    );
    // New sessions reach the new primary, and are counted.
    let accepted = p.value("pgautoproxy_client_connections_total", &app);
    let (client, conn) = tokio_postgres::connect(
        &format!(
            "host=127.0.0.1 port={} user=postgres dbname=postgres connect_timeout=5",
            proxy.port("app")
        ),
        tokio_postgres::NoTls,
    )
    .await
    .unwrap();
    tokio::spawn(conn);
    let row = client
        .query_one("SELECT pg_is_in_recovery()", &[])
        .await
        .unwrap();
    assert!(!row.get::<_, bool>(0));
    // Byte counts are added every 64 KiB and when a session ends: the
    // first session's come in once the proxy has finished it.
    let p = scrape_until("the ended session's bytes", proxy_metrics, LIMIT, |s| {
        ["client_to_server", "server_to_client"].iter().all(|d| {
            s.value(
                "pgautoproxy_transferred_bytes_total",
                &[("listener", "app"), ("direction", d)],
            ) > 0.0
        })
    })
    .await;
    assert!(p.value("pgautoproxy_client_connections_total", &app) > accepted);

    // The dashboard asks only for metrics the endpoints serve, in valid
    // PromQL; the example prometheus.yml is valid.
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let dashboard = std::fs::read_to_string(root.join("metrics/grafana-dashboard.json")).unwrap();
    let exprs = dashboard_exprs(&dashboard);
    assert!(exprs.len() > 20, "{} expressions", exprs.len());
    let served: BTreeSet<&str> = [&n1, &n2, &m, &p]
        .iter()
        .flat_map(|s| s.samples.iter().map(|x| x.name.as_str()))
        .collect();
    for e in &exprs {
        for name in e
            .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .filter(|w| w.starts_with("pgauto"))
        {
            assert!(
                served.contains(name),
                "the dashboard uses {name}, which nobody serves: {e}"
            );
        }
    }
    promtool_check_promql(&exprs, &f.dir);
    promtool("config", &root.join("metrics/prometheus.yml"));

    eprintln!(
        "MEASURE metrics test: {:.1} s",
        started.elapsed().as_secs_f64()
    );
}
