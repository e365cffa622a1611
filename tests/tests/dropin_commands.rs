//! The pg_autoctl 2.0 commands that scripts written for pg_auto_failover
//! use, on a live primary and standby, each checked for its output, its
//! exit code and its effect:
//!
//! * `create|drop formation`, `enable|disable secondary`;
//! * the `do` tree, absent without `PG_AUTOCTL_DEBUG`: `do fsm`,
//!   `do monitor`, `do pgsetup`, `do service` (a Postgres restart),
//!   `do pgctl off|on`, `do show`;
//! * `enable ssl` on the monitor and both nodes (TLS on, the monitor URI's
//!   `sslmode`, `primary_conninfo`), then `disable ssl`;
//! * the refusals: Citus commands (exit 1), `--disable-monitor` without
//!   `--node-id`, `pg_autoctl.nodename` as the old name of the hostname.
#![cfg(feature = "integration")]
#![allow(clippy::unwrap_used)]

use pgaf_tests::autoctl::{describe, Formation};
use serde_json::Value;
use std::time::{Duration, Instant};

const LIMIT: Duration = Duration::from_secs(90);

/// `pg_autoctl args`, which must exit with `code`; its stdout.
fn run(f: &Formation, args: &[&str], code: i32) -> String {
    let o = f.autoctl(args);
    assert_eq!(
        o.status.code(),
        Some(code),
        "pg_autoctl {}: {}",
        args.join(" "),
        describe(&o)
    );
    String::from_utf8_lossy(&o.stdout).to_string()
}

/// `pg_autoctl args`, which must fail with `code` and say `why`.
fn refused(f: &Formation, args: &[&str], code: i32, why: &str) {
    let o = f.autoctl(args);
    assert_eq!(
        o.status.code(),
        Some(code),
        "pg_autoctl {}: {}",
        args.join(" "),
        describe(&o)
    );
    assert!(
        String::from_utf8_lossy(&o.stderr).contains(why),
        "pg_autoctl {} does not say \"{why}\": {}",
        args.join(" "),
        describe(&o)
    );
}

fn json(s: &str) -> Value {
    serde_json::from_str(s).unwrap_or_else(|e| panic!("not JSON ({e}): {s}"))
}

async fn show(c: &tokio_postgres::Client, guc: &str) -> String {
    c.query_one(&format!("SHOW {guc}"), &[])
        .await
        .unwrap()
        .get(0)
}

/// Wait until `check` holds, asking every 200 ms.
async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + LIMIT;
    while !check().await {
        assert!(Instant::now() < deadline, "{what} after {LIMIT:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_commands_scripts_use() {
    let mut f = Formation::with_monitor().await;
    f.add_node("node1", &[]);
    f.wait_states(&[("node1", "single")], LIMIT).await;
    f.add_node("node2", &["--pg-hba-lan", "--maximum-backup-rate", "50M"]);
    f.wait_states(&[("node1", "primary"), ("node2", "secondary")], LIMIT)
        .await;
    let n1 = f.node("node1").pgdata.display().to_string();
    let n2 = f.node("node2").pgdata.display().to_string();
    let (p1, p2) = (f.node("node1").port, f.node("node2").port);
    let mon = f.monitor.pgdata.display().to_string();
    let uri = f.monitor_uri.clone();

    // --pg-hba-lan: the application's database from the local network of
    // --hostname (127.0.0.1 here: 127.0.0.0/8); the backup rate is kept.
    let hba = std::fs::read_to_string(f.node("node2").pgdata.join("pg_hba.conf")).unwrap();
    assert!(
        hba.lines()
            .any(|l| l.starts_with("host \"postgres\"") && l.contains("127.0.0.0/8")),
        "{hba}"
    );
    assert_eq!(
        run(
            &f,
            &["config", "get", "postgresql.hba_level", "--pgdata", &n2],
            0
        )
        .trim(),
        "app"
    );
    assert_eq!(
        run(
            &f,
            &[
                "config",
                "get",
                "replication.maximum_backup_rate",
                "--pgdata",
                &n2
            ],
            0
        )
        .trim(),
        "50M"
    );

    // Without PG_AUTOCTL_DEBUG there is no `do`.
    refused(
        &f,
        &["do", "fsm", "state", "--pgdata", &n1],
        1,
        "do: unknown command",
    );
    assert!(!run(&f, &["--help"], 0).contains("\n  do "));
    f.debug = true;
    assert!(run(&f, &["--help"], 0).contains("\n  do "));

    // do fsm
    let state = json(&run(&f, &["do", "fsm", "state", "--pgdata", &n1], 0));
    assert_eq!(state["state"]["nodeId"], 1);
    assert_eq!(state["state"]["current_role"], "primary");
    assert_eq!(state["postgres"]["port"], p1);
    assert!(run(&f, &["do", "fsm", "list", "--pgdata", &n1], 0).contains("primary |"));
    assert!(run(&f, &["do", "fsm", "gv"], 0).starts_with("digraph finite_state_machine"));
    refused(
        &f,
        &["do", "fsm", "nodes", "get", "--pgdata", &n1],
        2,
        "monitor is not disabled",
    );
    refused(
        &f,
        &["do", "fsm", "assign", "bogus", "--pgdata", &n1],
        1,
        "Failed to parse state",
    );
    let step = run(&f, &["do", "fsm", "step", "--pgdata", &n2], 0);
    assert_eq!(step.trim(), "secondary ➜ secondary");

    // do monitor
    let primary = run(&f, &["do", "monitor", "get", "primary", "--pgdata", &n2], 0);
    assert_eq!(primary.trim(), format!("default/0 127.0.0.1:{p1}"));
    let primary = json(&run(
        &f,
        &["--json", "do", "monitor", "get", "primary", "--pgdata", &n2],
        0,
    ));
    assert_eq!(
        (primary["nodeId"].clone(), primary["port"].clone()),
        (1.into(), p1.into())
    );
    let others = run(&f, &["do", "monitor", "get", "others", "--pgdata", &n1], 0);
    assert!(others.contains(&format!("127.0.0.1:{p2}")), "{others}");
    let others = json(&run(
        &f,
        &["do", "monitor", "get", "others", "--json", "--pgdata", &n1],
        0,
    ));
    assert_eq!(others[0]["node_id"], 2);
    // The coordinator of a Postgres formation: the primary of group 0.
    let coordinator = run(
        &f,
        &["do", "monitor", "get", "coordinator", "--pgdata", &n2],
        0,
    );
    assert_eq!(coordinator.trim(), format!("default 127.0.0.1:{p1}"));
    let active = run(&f, &["do", "monitor", "active", "--pgdata", &n2], 0);
    assert_eq!(
        active.trim(),
        format!("default/0 127.0.0.1:{p2} 2:0 secondary")
    );
    assert_eq!(
        run(&f, &["do", "monitor", "version", "--pgdata", &n2], 0).trim(),
        "2.0"
    );
    let payload = r#"{"type": "state", "formation": "default", "groupId": 0, "nodeId": 2, "name": "node2", "host": "h", "port": 5432, "reportedState": "secondary", "goalState": "report_lsn", "health": "good"}"#;
    let parsed = json(&run(
        &f,
        &["do", "monitor", "parse-notification", payload],
        0,
    ));
    assert_eq!(parsed["goalState"], "report_lsn");
    assert_eq!(parsed["formationid"], "default");
    refused(
        &f,
        &["do", "monitor", "parse-notification", "{}"],
        1,
        "Failed to parse",
    );

    // do pgsetup
    run(&f, &["do", "pgsetup", "ready", "--pgdata", &n1], 0);
    run(&f, &["do", "pgsetup", "wait", "--pgdata", &n1], 0);
    let discover = run(&f, &["do", "pgsetup", "discover", "--pgdata", &n1], 0);
    assert!(
        discover.contains(&format!("pgport:                {p1}")),
        "{discover}"
    );
    assert!(
        discover.contains("Postmaster status:     ready"),
        "{discover}"
    );
    assert!(run(&f, &["do", "pgsetup", "tune", "--pgdata", &n1], 0).contains("shared_buffers = '"));
    run(&f, &["do", "pgsetup", "logs", "--pgdata", &n1], 0);

    // do service: the postmaster, the service, a restart of Postgres.
    let pm: i32 = run(
        &f,
        &["do", "service", "getpid", "postgres", "--pgdata", &n2],
        0,
    )
    .trim()
    .parse()
    .unwrap();
    let svc: i32 = run(
        &f,
        &["do", "service", "getpid", "node-active", "--pgdata", &n2],
        0,
    )
    .trim()
    .parse()
    .unwrap();
    assert_eq!(Some(svc), f.node("node2").pid());
    refused(
        &f,
        &["do", "service", "getpid", "listener", "--pgdata", &n2],
        12,
        "listener",
    );
    let new_pm: i32 = run(
        &f,
        &["do", "service", "restart", "postgres", "--pgdata", &n2],
        0,
    )
    .trim()
    .parse()
    .unwrap();
    assert_ne!(new_pm, pm);
    f.wait_states(&[("node1", "primary"), ("node2", "secondary")], LIMIT)
        .await;

    // do pgctl: the standby's Postgres stopped, then running again.
    run(&f, &["do", "pgctl", "off", "--pgdata", &n2], 0);
    refused(
        &f,
        &["do", "pgsetup", "ready", "--pgdata", &n2],
        4,
        "not ready",
    );
    run(&f, &["do", "pgctl", "on", "--pgdata", &n2], 0);
    run(&f, &["do", "pgsetup", "ready", "--pgdata", &n2], 0);

    // do show
    let lookup = run(&f, &["do", "show", "lookup", "localhost"], 0);
    assert!(lookup.starts_with("localhost: "), "{lookup}");
    run(&f, &["do", "show", "reverse", "localhost"], 0);
    refused(
        &f,
        &["do", "show", "reverse", "127.0.0.1"],
        1,
        "must not be an IP address",
    );
    let ip = f.autoctl(&["do", "show", "ipaddr"]);
    assert!(
        matches!(ip.status.code(), Some(0 | 12)),
        "{}",
        describe(&ip)
    );

    // Formations and their secondaries, on the monitor's host.
    run(
        &f,
        &[
            "create",
            "formation",
            "--pgdata",
            &mon,
            "--formation",
            "f2",
            "--kind",
            "pgsql",
            "--dbname",
            "appdb",
        ],
        0,
    );
    refused(
        &f,
        &[
            "create",
            "formation",
            "--pgdata",
            &mon,
            "--formation",
            "f2",
            "--kind",
            "pgsql",
        ],
        6,
        "f2",
    );
    refused(
        &f,
        &[
            "create",
            "formation",
            "--monitor",
            &uri,
            "--formation",
            "f3",
            "--kind",
            "citus",
        ],
        1,
        "citus",
    );
    let c = f.monitor_client().await;
    let row = c
        .query_one(
            "SELECT dbname::text, opt_secondary FROM pgautofailover.formation WHERE formationid = 'f2'",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(
        (row.get::<_, String>(0), row.get::<_, bool>(1)),
        ("appdb".into(), true)
    );
    run(
        &f,
        &[
            "disable",
            "secondary",
            "--pgdata",
            &mon,
            "--formation",
            "f2",
        ],
        0,
    );
    let secondary = |c: tokio_postgres::Client| async move {
        c.query_one(
            "SELECT opt_secondary FROM pgautofailover.formation WHERE formationid = 'f2'",
            &[],
        )
        .await
        .unwrap()
        .get::<_, bool>(0)
    };
    assert!(!secondary(f.monitor_client().await).await);
    run(
        &f,
        &["enable", "secondary", "--pgdata", &mon, "--formation", "f2"],
        0,
    );
    assert!(secondary(f.monitor_client().await).await);
    run(
        &f,
        &["drop", "formation", "--monitor", &uri, "--formation", "f2"],
        0,
    );
    refused(
        &f,
        &["drop", "formation", "--monitor", &uri, "--formation", "f2"],
        6,
        "f2",
    );

    // Citus is refused with the usage exit code.
    refused(
        &f,
        &["create", "coordinator", "--pgdata", "/tmp/nowhere"],
        1,
        "Citus is not supported",
    );
    refused(
        &f,
        &["create", "worker", "--pgdata", "/tmp/nowhere"],
        1,
        "Citus is not supported",
    );
    refused(
        &f,
        &["activate", "--pgdata", &n1],
        1,
        "Citus is not supported",
    );

    // create postgres --disable-monitor needs --node-id, and no --monitor.
    let nowhere = f.dir.join("nowhere").display().to_string();
    let base = [
        "create", "postgres", "--pgdata", &nowhere, "--auth", "trust", "--no-ssl",
    ];
    let with = |extra: &[&str]| -> Vec<String> {
        base.iter().chain(extra).map(|s| s.to_string()).collect()
    };
    for (extra, why) in [
        (&["--disable-monitor"][..], "also use --node-id"),
        (
            &["--node-id", "3", "--monitor", &uri][..],
            "only accepted with --disable-monitor",
        ),
        (
            &["--disable-monitor", "--node-id", "3", "--monitor", &uri][..],
            "not both",
        ),
        (
            &["--disable-monitor", "--node-id", "x"][..],
            "not a valid ID",
        ),
    ] {
        let args = with(extra);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        refused(&f, &args, 1, why);
    }
    assert!(
        !f.dir.join("nowhere").exists(),
        "a refused create leaves nothing behind"
    );

    // pg_autoctl.nodename is the old name of pg_autoctl.hostname.
    let o = f.autoctl(&["config", "get", "pg_autoctl.nodename", "--pgdata", &n1]);
    assert!(o.status.success(), "{}", describe(&o));
    assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), "127.0.0.1");
    assert!(String::from_utf8_lossy(&o.stderr).contains("deprecated"));

    // enable ssl: the monitor first, then the nodes.
    run(
        &f,
        &["enable", "ssl", "--ssl-self-signed", "--pgdata", &mon],
        0,
    );
    eventually("the monitor serves TLS", || async {
        let c = f.monitor_client().await;
        show(&c, "ssl").await == "on"
    })
    .await;
    for n in [&n1, &n2] {
        run(
            &f,
            &[
                "enable",
                "ssl",
                "--ssl-self-signed",
                "--ssl-mode",
                "require",
                "--pgdata",
                n,
            ],
            0,
        );
        let monitor = run(
            &f,
            &["config", "get", "pg_autoctl.monitor", "--pgdata", n],
            0,
        );
        assert!(monitor.contains("sslmode=require"), "{monitor}");
        assert_eq!(
            run(&f, &["config", "get", "ssl.sslmode", "--pgdata", n], 0).trim(),
            "require"
        );
    }
    let c1 = f.node_client("node1").await;
    eventually("node1 serves TLS", || {
        let c1 = &c1;
        async move { show(c1, "ssl").await == "on" }
    })
    .await;
    let c2 = f.node_client("node2").await;
    eventually("node2 streams with sslmode=require", || {
        let c2 = &c2;
        async move {
            show(c2, "primary_conninfo")
                .await
                .contains("sslmode=require")
        }
    })
    .await;
    f.wait_states(&[("node1", "primary"), ("node2", "secondary")], LIMIT)
        .await;
    run(&f, &["disable", "ssl", "--pgdata", &n2], 0);
    assert_eq!(
        run(&f, &["config", "get", "ssl.sslmode", "--pgdata", &n2], 0).trim(),
        "prefer"
    );
    assert_eq!(
        run(&f, &["config", "get", "ssl.active", "--pgdata", &n2], 0).trim(),
        "0"
    );
}
