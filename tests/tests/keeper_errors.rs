//! Bad input to `pg_autoctl create postgres` gets a clear error, a non-zero
//! exit and nothing half-created (no registration left on the monitor, no
//! configuration or state file): a PGDATA owned by root, a missing pg_ctl,
//! an unreachable monitor, a port in use, a PGDATA from another cluster.
//! Also: `create` without `--run` returns once the node is initialised, with
//! Postgres stopped, and `run` takes over from there (with `--username` and
//! `--dbname` the application's superuser owns its database); `pg_autoctl
//! run` on the monitor restarts the monitor's Postgres when it dies.
#![cfg(feature = "integration")]
#![allow(clippy::unwrap_used)]

use pgaf_tests::autoctl::{postgres_ids, Formation};
use std::path::{Path, PathBuf};
use std::time::Duration;

const LIMIT: Duration = Duration::from_secs(90);

fn text(o: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Where pg_autoctl keeps the configuration of `pgdata` in this test.
fn config_file(f: &Formation, pgdata: &Path) -> PathBuf {
    let rel = pgdata.strip_prefix("/").unwrap();
    f.dir
        .join("xdg/config/pg_autoctl")
        .join(rel)
        .join("pg_autoctl.cfg")
}

/// A `create` that failed with `needle` in its output and left neither a
/// configuration file nor the PGDATA it would have made.
fn refused_cleanly(f: &Formation, out: &std::process::Output, pgdata: &Path, needle: &str) {
    assert!(!out.status.success(), "{}", text(out));
    assert!(text(out).contains(needle), "{}", text(out));
    assert!(!config_file(f, pgdata).exists());
    assert!(
        !pgdata.exists(),
        "a failed create left {}",
        pgdata.display()
    );
}

async fn node_count(f: &Formation) -> i64 {
    let c = f.monitor_client().await;
    c.query_one("SELECT count(*) FROM pgautofailover.node", &[])
        .await
        .unwrap()
        .get(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_refused_and_nothing_is_left_behind() {
    let mut f = Formation::with_monitor().await;
    let port = pgaf_tests::cluster::free_port().to_string();
    let create = |pgdata: &Path, extra: &[&str]| -> Vec<String> {
        let mut v: Vec<String> = [
            "create",
            "postgres",
            "--pgdata",
            &pgdata.display().to_string(),
            "--pgport",
            &port,
            "--hostname",
            "127.0.0.1",
            "--listen",
            "127.0.0.1",
            "--auth",
            "trust",
            "--no-ssl",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        v.extend(extra.iter().map(|s| s.to_string()));
        v
    };
    let run = |f: &Formation, args: Vec<String>| {
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        f.autoctl(&refs)
    };
    let monitor = f.monitor_uri.clone();

    // Missing --auth / SSL choice, a priority out of range: usage errors,
    // exit 1.
    let usage_errors: [(&[&str], &str); 3] = [
        (&["--no-ssl"], "--auth"),
        (&["--auth", "trust"], "SSL"),
        (
            &["--auth", "trust", "--no-ssl", "--candidate-priority", "101"],
            "0 to 100",
        ),
    ];
    // A PGDATA of this test's own that nothing creates (a fixed path such
    // as /tmp/x may exist, owned by root, and be refused for that).
    let unused = f.dir.join("never-created").display().to_string();
    for (extra, needle) in usage_errors {
        let mut args = vec![
            "create",
            "postgres",
            "--pgdata",
            &unused,
            "--monitor",
            &monitor,
        ];
        args.extend_from_slice(extra);
        let out = f.autoctl(&args);
        assert_eq!(out.status.code(), Some(1), "{}", text(&out));
        assert!(text(&out).contains(needle), "{}", text(&out));
        assert!(!Path::new(&unused).exists());
    }

    // A missing pg_ctl.
    let pgdata = f.dir.join("nopgctl");
    let out = run(
        &f,
        create(
            &pgdata,
            &["--monitor", &monitor, "--pgctl", "/nonexistent/bin/pg_ctl"],
        ),
    );
    refused_cleanly(&f, &out, &pgdata, "/nonexistent/bin/pg_ctl");

    // An unreachable monitor.
    let dead = "postgres://autoctl_node@127.0.0.1:1/pg_auto_failover";
    let pgdata = f.dir.join("nomonitor");
    let out = run(&f, create(&pgdata, &["--monitor", dead]));
    refused_cleanly(&f, &out, &pgdata, "cannot connect to the monitor");

    // A port in use.
    let busy = std::net::TcpListener::bind("0.0.0.0:0").unwrap();
    let busy_port = busy.local_addr().unwrap().port().to_string();
    let pgdata = f.dir.join("busyport");
    let mut args = create(&pgdata, &["--monitor", &monitor]);
    let i = args.iter().position(|a| a == "--pgport").unwrap();
    args[i + 1] = busy_port.clone();
    let out = run(&f, args);
    assert!(!out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains(&format!("port {busy_port} is already in use")),
        "{}",
        text(&out)
    );
    drop(busy);
    assert!(!config_file(&f, &pgdata).exists());

    // A PGDATA owned by root (only meaningful when the tests run as root).
    if postgres_ids().is_some() {
        let pgdata = f.dir.join("rootowned");
        std::fs::create_dir_all(&pgdata).unwrap();
        std::fs::write(pgdata.join("PG_VERSION"), "15\n").unwrap();
        let out = run(&f, create(&pgdata, &["--monitor", &monitor]));
        assert!(!out.status.success(), "{}", text(&out));
        assert!(text(&out).contains("owned by root"), "{}", text(&out));
    }
    assert_eq!(node_count(&f).await, 0, "a refused node was registered");

    // create without --run: returns once the node is `single`, Postgres
    // stopped; `run` starts it again.
    let pgdata = f.dir.join("node1");
    let mut args = create(
        &pgdata,
        &[
            "--monitor",
            &monitor,
            "--name",
            "node1",
            "--username",
            "app",
            "--dbname",
            "appdb",
        ],
    );
    let node1_port = pgaf_tests::cluster::free_port().to_string();
    let i = args.iter().position(|a| a == "--pgport").unwrap();
    args[i + 1] = node1_port.clone();
    let out = run(&f, args.clone());
    assert!(out.status.success(), "{}", text(&out));
    assert!(config_file(&f, &pgdata).exists());
    assert!(
        !pgdata.join("postmaster.pid").exists(),
        "Postgres still runs after create"
    );
    let states = f.states().await;
    assert_eq!(states.len(), 1);
    assert_eq!(states[0].reported, "single");
    // Creating it again only says it exists.
    let out = run(&f, args);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("pg_autoctl run"), "{}", text(&out));

    // A PGDATA from another cluster cannot join node1's group.
    let other = pgaf_tests::cluster::Cluster::start(&[]);
    let other_pgdata = other.dir.join("data");
    let mut other = other;
    other.stop();
    let out = run(
        &f,
        create(
            &other_pgdata,
            &["--monitor", &monitor, "--name", "intruder"],
        ),
    );
    assert!(!out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("system identifier"), "{}", text(&out));
    assert!(!config_file(&f, &other_pgdata).exists());
    assert_eq!(node_count(&f).await, 1, "the intruder stayed registered");
    drop(other);

    // The node created without --run starts with `run`.
    f.nodes.push(pgaf_tests::autoctl::Service::stopped(
        "node1",
        node1_port.parse().unwrap(),
        pgdata,
        f.dir.join("node1.log"),
    ));
    f.restart("node1");
    f.wait_states(&[("node1", "single")], LIMIT).await;
    let c = f.node_client("node1").await;
    let ro: String = c
        .query_one("SHOW transaction_read_only", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(ro, "off");
    // --username and --dbname: the application's superuser owns its database.
    let owner: String = c
        .query_one(
            "SELECT r.rolname::text FROM pg_database d JOIN pg_roles r ON r.oid = d.datdba
              WHERE d.datname = 'appdb'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(owner, "app");

    // The monitor's postmaster dies: `pg_autoctl run` starts it again.
    let pm = pgaf_tests::autoctl::postmaster_pid(&f.monitor.pgdata).unwrap();
    pgaf_tests::autoctl::signal(pm, libc::SIGKILL);
    pgaf_tests::wait::until(
        "the monitor's Postgres to be restarted",
        Duration::from_secs(60),
        Duration::from_millis(100),
        || {
            let f = &f;
            async move {
                let new = pgaf_tests::autoctl::postmaster_pid(&f.monitor.pgdata)?;
                if new == pm {
                    return None;
                }
                let c = f.monitor_client_opt().await?;
                c.query_one("SELECT count(*) FROM pgautofailover.node", &[])
                    .await
                    .ok()
                    .map(|_| ())
            }
        },
    )
    .await;
    assert!(f.monitor.running(), "pg_autoctl run on the monitor exited");
}
