//! A cluster made with `--ssl-self-signed`, as most pg_auto_failover
//! clusters run: the HBA rules are `hostssl`, so everything must go over
//! TLS (the keepers' calls and LISTEN to the monitor, replication, clients
//! through the formation URI). The nodes reach primary and secondary, a
//! switchover completes under a writer, the printed URIs ask for TLS,
//! `pg_autoproxy` terminating TLS reaches the primary over TLS, and
//! `verify-ca`/`verify-full` check the monitor's certificate.
#![cfg(feature = "integration")]
#![allow(clippy::unwrap_used)]

use pgaf_tests::autoctl::{assert_all_present, pg_connect, Formation, Writer};
use pgaf_tests::proxy::{Listener, Proxy, Role};
use std::time::Duration;

const LIMIT: Duration = Duration::from_secs(90);

/// Whether the session behind `c` is encrypted.
async fn encrypted(c: &tokio_postgres::Client) -> bool {
    c.query_one(
        "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
        &[],
    )
    .await
    .unwrap()
    .get(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_self_signed_cluster_runs_on_tls() {
    let mut f = Formation::with_ssl_monitor().await;
    assert!(
        f.monitor_uri.ends_with("sslmode=require"),
        "{}",
        f.monitor_uri
    );
    f.add_node("node1", &[]);
    f.wait_states(&[("node1", "single")], LIMIT).await;
    f.add_node("node2", &[]);
    f.wait_states(&[("node1", "primary"), ("node2", "secondary")], LIMIT)
        .await;

    // The monitor: our own session and every keeper session are TLS.
    let m = f.monitor_client().await;
    assert!(encrypted(&m).await);
    let keepers = pgaf_tests::wait::until(
        "the keepers' sessions on the monitor",
        Duration::from_secs(30),
        Duration::from_millis(100),
        || {
            let m = &m;
            async move {
                let rows = m
                    .query(
                        "SELECT a.application_name, s.ssl FROM pg_stat_activity a \
                         JOIN pg_stat_ssl s USING (pid) \
                         WHERE a.application_name LIKE 'pg_autoctl%' \
                           AND a.pid <> pg_backend_pid()",
                        &[],
                    )
                    .await
                    .ok()?;
                let v: Vec<(String, bool)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
                // Both keepers keep their LISTEN session open.
                (v.iter()
                    .filter(|(name, _)| name == "pg_autoctl listener")
                    .count()
                    >= 2)
                    .then_some(v)
            }
        },
    )
    .await;
    assert!(keepers.iter().all(|(_, ssl)| *ssl), "{keepers:?}");

    // Replication from node1 to node2 is TLS.
    let primary = f.node_client("node1").await;
    let replication: Vec<bool> = primary
        .query(
            "SELECT s.ssl FROM pg_stat_replication r JOIN pg_stat_ssl s USING (pid)",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(replication, vec![true]);

    // The formation URI, with the node's SSL settings, asks for TLS and
    // reaches the primary over it.
    let pg1 = f.nodes[0].pgdata.display().to_string();
    let out = f.autoctl(&["show", "uri", "--formation", "default", "--pgdata", &pg1]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let uri = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert!(
        uri.contains("target_session_attrs=read-write") && uri.contains("sslmode=require"),
        "{uri}"
    );
    let (c, conn) = pg_connect(&uri.replace("postgres://", "postgres://postgres@"))
        .await
        .unwrap();
    tokio::spawn(conn);
    assert!(encrypted(&c).await);
    let ro: String = c
        .query_one("SHOW transaction_read_only", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(ro, "off");
    drop(c);

    // A switchover under a writer, every call to the monitor over TLS.
    let writer = Writer::start(format!("{}&sslmode=require", f.uri("postgres"))).await;
    writer.wait_ack(Duration::from_secs(10)).await;
    let out = f.autoctl(&["perform", "switchover", "--pgdata", &pg1]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    f.wait_states(&[("node1", "secondary"), ("node2", "primary")], LIMIT)
        .await;
    writer.wait_ack(Duration::from_secs(30)).await;
    let acked = writer.stop().await;
    let new_primary = f.node_client("node2").await;
    assert!(encrypted(&new_primary).await);
    assert_all_present(&new_primary, &acked).await;

    // pg_autoproxy terminating TLS in front of this cluster: it follows the
    // monitor over TLS and opens TLS to the nodes (backend_tls = "prefer",
    // the default), as the hostssl rules of a multi-host cluster require.
    let data = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../proxy/tests/data");
    let terminate = |backend: &str| {
        format!(
            "tls = \"terminate\"\ntls_cert = \"{}\"\ntls_key = \"{}\"\nbackend_tls = \"{backend}\"\n",
            data.join("test-cert.pem").display(),
            data.join("test-key.pem").display()
        )
    };
    let proxy = Proxy::start(
        &f.dir,
        &f.monitor_uri,
        &[
            Listener {
                name: "tls",
                role: Role::ReadWrite,
                extra: terminate("prefer"),
            },
            Listener {
                name: "clear",
                role: Role::ReadWrite,
                extra: terminate("disable"),
            },
        ],
        "",
    )
    .await;
    let through = |listener: &str| {
        format!(
            "host=127.0.0.1 port={} user=postgres dbname=postgres connect_timeout=10 \
             sslmode=verify-full sslrootcert='{}'",
            proxy.port(listener),
            data.join("test-ca.pem").display()
        )
    };
    let node2_port = f.node("node2").port;
    let c = pgaf_tests::wait::until(
        "a session through the proxy",
        Duration::from_secs(30),
        Duration::from_millis(100),
        || {
            let info = through("tls");
            async move { pg_connect(&info).await.ok() }
        },
    )
    .await;
    let (c, conn) = c;
    tokio::spawn(conn);
    // The node sees the proxy's session encrypted, on the new primary.
    assert!(encrypted(&c).await);
    let port: i32 = c
        .query_one("SELECT inet_server_port()", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(port, i32::from(node2_port));
    drop(c);
    // backend_tls = "disable": the client's session is TLS up to the proxy,
    // the node's is not (initdb's `host ... 127.0.0.1/32 trust` rule lets
    // it in on this host; the hostssl rules pg_autoctl adds for remote
    // hosts would refuse it).
    let (c, conn) = pg_connect(&through("clear")).await.unwrap();
    tokio::spawn(conn);
    assert!(!encrypted(&c).await);
    drop(c);
    drop(proxy);

    // The monitor's certificate is checked when asked: its own self-signed
    // certificate as the root passes verify-ca and verify-full (as with
    // libpq), another one (node1's) is refused.
    let shown = |mode: &str, ca: &std::path::Path| {
        let uri = format!(
            "{}&sslrootcert={}",
            f.monitor_uri
                .replace("sslmode=require", &format!("sslmode={mode}")),
            ca.display()
        );
        f.autoctl(&["show", "state", "--monitor", &uri])
    };
    let own = f.monitor.pgdata.join("server.crt");
    for mode in ["verify-ca", "verify-full"] {
        let out = shown(mode, &own);
        assert!(
            out.status.success(),
            "{mode}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(String::from_utf8_lossy(&out.stdout).contains("node2"));
    }
    let out = shown("verify-ca", &f.nodes[0].pgdata.join("server.crt"));
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("invalid peer certificate"), "{err}");
}
