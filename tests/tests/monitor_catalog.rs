//! The catalog and SQL surface against upstream 2.0: `\df` and `\d` output
//! byte for byte (tests/fixtures), flags and grants, GUCs, the version and
//! the upgrade path, argument errors, and our deliberate departures.
#![cfg(feature = "integration")]

use pgaf_tests::cluster::{pg_bin, Cluster, QUIET};
use pgaf_tests::monitor::{Monitor, Report};
use std::process::Command;

const UPSTREAM_DF: &str = include_str!("../fixtures/upstream-df-unaligned.txt");
const UPSTREAM_TABLES: &str = include_str!("../fixtures/upstream-tables.txt");

fn psql(cluster: &Cluster, args: &[&str]) -> String {
    let out = Command::new(pg_bin().join("psql"))
        .args([
            "-X",
            "-h",
            "127.0.0.1",
            "-p",
            &cluster.port.to_string(),
            "-U",
            "postgres",
            "-d",
            "pg_auto_failover",
        ])
        .args(args)
        .output()
        .expect("run psql");
    assert!(
        out.status.success(),
        "psql {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test]
async fn functions_match_upstream_df() {
    let cluster = Cluster::monitor(QUIET).await;
    let ours = psql(
        &cluster,
        &["-A", "-F", " | ", "-c", "\\df pgautofailover.*"],
    );
    // Our one addition, the lease variant of node_active.
    let lease: Vec<&str> = ours
        .lines()
        .filter(|l| l.contains("| node_active_lease |"))
        .collect();
    assert_eq!(lease.len(), 1, "{ours}");
    assert!(lease[0].ends_with("OUT assigned_replication_quorum boolean, OUT lease_timeout_ms integer, OUT fence_timeout_ms integer | func"));
    let ours: String = ours
        .lines()
        .filter(|l| !l.contains("| node_active_lease |"))
        .map(|l| {
            if l == "(34 rows)" {
                "(33 rows)".to_string()
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    assert_eq!(ours.trim_end(), UPSTREAM_DF.trim_end());
}

#[tokio::test]
async fn tables_match_upstream_d() {
    let cluster = Cluster::monitor(QUIET).await;
    let mut ours = String::new();
    for table in ["node", "event", "formation"] {
        let out = psql(&cluster, &["-c", &format!("\\d pgautofailover.{table}")]);
        // node_lease (ours) references node; upstream has no such table.
        let mut skip = false;
        let mut text = String::new();
        for line in out.lines() {
            if line == "Referenced by:" && table == "node" {
                skip = true;
                continue;
            }
            if skip && line.starts_with("    ") {
                continue;
            }
            skip = false;
            text.push_str(line);
            text.push('\n');
        }
        ours.push_str(&format!(
            "### \\d pgautofailover.{table}\n{}\n",
            text.trim_end()
        ));
        ours.push('\n');
    }
    assert_eq!(ours.trim_end(), UPSTREAM_TABLES.trim_end());

    let c = cluster.connect("pg_auto_failover").await;
    let opts: Option<Vec<String>> = c
        .query_one(
            "SELECT reloptions::text[] FROM pg_class WHERE oid = 'pgautofailover.node'::regclass",
            &[],
        )
        .await
        .expect("reloptions")
        .get(0);
    assert_eq!(opts, Some(vec!["fillfactor=25".to_string()]));
    let lease: Vec<(String, String, bool)> = c
        .query(
            "SELECT attname::text, format_type(atttypid, atttypmod), attnotnull FROM pg_attribute \
              WHERE attrelid = 'pgautofailover.node_lease'::regclass AND attnum > 0 ORDER BY attnum",
            &[],
        )
        .await
        .expect("node_lease")
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    assert_eq!(
        lease,
        vec![
            ("nodeid".into(), "bigint".into(), true),
            ("lease".into(), "boolean".into(), true),
            (
                "delivered".into(),
                "pgautofailover.replication_state".into(),
                false
            ),
            ("upstreamnodeid".into(), "bigint".into(), true),
            ("upstreamagems".into(), "integer".into(), true),
            (
                "streamedtime".into(),
                "timestamp with time zone".into(),
                true
            ),
            ("reportsstandbys".into(), "boolean".into(), true),
        ]
    );
}

#[tokio::test]
async fn flags_grants_and_gucs() {
    let cluster = Cluster::monitor(QUIET).await;
    let c = cluster.connect("pg_auto_failover").await;
    let rows = c
        .query(
            "SELECT p.proname::text || '(' || pg_get_function_identity_arguments(p.oid) || ')', \
                    p.proisstrict, p.prosecdef, \
                    coalesce(p.proacl::text[] @> ARRAY['autoctl_node=X/' || r.rolname], false) \
               FROM pg_proc p JOIN pg_roles r ON r.oid = p.proowner \
              WHERE p.pronamespace = 'pgautofailover'::regnamespace ORDER BY 1",
            &[],
        )
        .await
        .expect("pg_proc");
    let flags: Vec<(String, bool, bool, bool)> = rows
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
        .collect();
    let not_strict = [
        "get_nodes",
        "update_node_metadata",
        "update_secondary_check",
        // Ours: its last argument (the standbys a primary sees) may be NULL.
        "node_active_lease",
    ];
    let definer = [
        "create_formation",
        "drop_formation",
        "set_formation_number_sync_standbys",
        "enable_secondary",
        "disable_secondary",
        "set_node_system_identifier",
        "set_group_system_identifier",
        "update_node_metadata",
        "register_node",
        "node_active",
        "node_active_lease",
        "get_primary",
        "remove_node",
        "perform_failover",
        "perform_promotion",
        "start_maintenance",
        "stop_maintenance",
        "set_node_candidate_priority",
        "set_node_replication_quorum",
    ];
    let ungranted = [
        "formation_uri",
        "enable_secondary",
        "disable_secondary",
        "formation_settings",
        "update_secondary_check",
    ];
    for (sig, strict, secdef, granted) in &flags {
        let name = sig.split('(').next().unwrap_or_default();
        assert_eq!(*strict, !not_strict.contains(&name), "STRICT of {sig}");
        assert_eq!(
            *secdef,
            definer.contains(&name),
            "SECURITY DEFINER of {sig}"
        );
        assert_eq!(
            *granted,
            !ungranted.contains(&name),
            "GRANT EXECUTE of {sig} to autoctl_node"
        );
    }
    assert_eq!(flags.len(), 34);
    let tables: bool = c
        .query_one(
            "SELECT bool_and(has_table_privilege('autoctl_node', format('pgautofailover.%I', relname), 'SELECT')) \
               FROM pg_class WHERE relnamespace = 'pgautofailover'::regnamespace AND relkind = 'r'",
            &[],
        )
        .await
        .expect("table grants")
        .get(0);
    assert!(tables);

    let gucs: Vec<(String, String, Option<String>, String)> = c
        .query(
            "SELECT name, setting, unit, context FROM pg_settings WHERE name LIKE 'pgautofailover.%' ORDER BY name",
            &[],
        )
        .await
        .expect("pg_settings")
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
        .collect();
    let g = |n: &str, s: &str, u: Option<&str>| {
        (
            format!("pgautofailover.{n}"),
            s.to_string(),
            u.map(str::to_string),
            "sighup".to_string(),
        )
    };
    assert_eq!(
        gucs,
        vec![
            g("enable_sync_wal_log_threshold", "16777216", None),
            g("evaluation_period", "3600000", Some("ms")),
            g("fence_timeout", "2000", Some("ms")),
            g("health_check_max_retries", "2", None),
            g("health_check_period", "5000", Some("ms")),
            g("health_check_retry_delay", "2000", Some("ms")),
            g("health_check_timeout", "5000", Some("ms")),
            g("lease_timeout", "2000", Some("ms")),
            g("node_considered_unhealthy_timeout", "20000", Some("ms")),
            g("primary_demote_timeout", "30000", Some("ms")),
            g("promote_wal_log_threshold", "16777216", None),
            g("replication_stall_timeout", "500", Some("ms")),
            g("standby_witness_timeout", "2000", Some("ms")),
            g("startup_grace_period", "1", Some("ms")),
        ]
    );
    // The hidden ones exist too.
    for hidden in ["enable_version_checks", "enable_health_checks"] {
        let v: String = c
            .query_one(&format!("SHOW pgautofailover.{hidden}"), &[])
            .await
            .expect("SHOW hidden GUC")
            .get(0);
        assert!(v == "on" || v == "off");
    }
}

#[tokio::test]
async fn versions_and_upgrades() {
    let cluster = Cluster::monitor(QUIET).await;
    let c = cluster.connect("pg_auto_failover").await;
    let row = c
        .query_one(
            "SELECT default_version, installed_version FROM pg_available_extensions WHERE name = 'pgautofailover'",
            &[],
        )
        .await
        .expect("pg_available_extensions");
    assert_eq!(
        (row.get::<_, String>(0), row.get::<_, String>(1)),
        ("2.0".to_string(), "2.0".to_string())
    );
    // As \dx shows upstream: the extension in public, its objects in the
    // schema pgautofailover it creates.
    let schema: String = c
        .query_one(
            "SELECT n.nspname::text FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace \
              WHERE e.extname = 'pgautofailover'",
            &[],
        )
        .await
        .expect("extnamespace")
        .get(0);
    assert_eq!(schema, "public");
    c.batch_execute("ALTER EXTENSION pgautofailover UPDATE TO '2.2'")
        .await
        .expect("update to 2.2");
    let v: String = c
        .query_one(
            "SELECT installed_version FROM pg_available_extensions WHERE name = 'pgautofailover'",
            &[],
        )
        .await
        .expect("installed_version")
        .get(0);
    assert_eq!(v, "2.2");
    let m = Monitor::new(c);
    let a = m.register("127.0.0.1", 6010, "a", 50).await;
    assert_eq!(a.goal, "single");

    // An installed version this library does not serve is refused.
    m.client
        .batch_execute(
            "UPDATE pg_extension SET extversion = '1.6' WHERE extname = 'pgautofailover'",
        )
        .await
        .expect("fake 1.6");
    let err = m
        .try_node_active(a.id, &Report::new("single", "0/1"))
        .await
        .expect_err("version check");
    let db = err.as_db_error().expect("db error");
    assert_eq!(
        db.message(),
        "loaded \"pgautofailover\" library version differs from installed extension version"
    );
    assert_eq!(
        db.detail(),
        Some("Loaded library requires 2.2, but the installed extension version is 1.6.")
    );
    assert_eq!(
        db.hint(),
        Some("Run ALTER EXTENSION pgautofailover UPDATE and try again.")
    );
}

#[tokio::test]
async fn loading_outside_shared_preload_libraries_is_refused() {
    pgaf_tests::cluster::require_installation();
    let cluster = Cluster::start(&[]);
    let c = cluster.connect("postgres").await;
    let err = c
        .batch_execute("LOAD 'pgautofailover'")
        .await
        .expect_err("LOAD");
    assert_eq!(
        err.as_db_error().map(|e| e.message()),
        Some("pgautofailover can only be loaded via shared_preload_libraries")
    );
}

#[tokio::test]
async fn argument_errors_are_clear() {
    let cluster = Cluster::monitor(QUIET).await;
    let m = Monitor::new(cluster.connect("pg_auto_failover").await);
    let err = m
        .client
        .execute(
            "SELECT pgautofailover.update_node_metadata(NULL, 'x', NULL, NULL)",
            &[],
        )
        .await
        .expect_err("NULL node id");
    assert_eq!(
        err.as_db_error().map(|e| e.message()),
        Some("udpate_node_metadata requires a non-null nodeid")
    );
    let err = m
        .client
        .execute(
            "SELECT pgautofailover.update_node_metadata(42, 'x', NULL, NULL)",
            &[],
        )
        .await
        .expect_err("unknown node");
    assert_eq!(err.code().map(|c| c.code()), Some("42704"));
    let err = m
        .try_node_active(42, &Report::new("single", "0/1"))
        .await
        .expect_err("unknown node");
    assert_eq!(
        err.as_db_error().map(|e| e.message()),
        Some("couldn't find node with nodeid 42")
    );
    // STRICT: a NULL argument yields NULL without running anything.
    let row = m
        .client
        .query_one(
            "SELECT (pgautofailover.node_active('default', NULL, 0)).assigned_node_id",
            &[],
        )
        .await
        .expect("strict");
    assert_eq!(row.get::<_, Option<i64>>(0), None);
    let err = m
        .client
        .execute(
            "SELECT pgautofailover.register_node('default', 'h', 1, 'postgres', node_kind => 'coordinator')",
            &[],
        )
        .await
        .expect_err("citus");
    assert_eq!(err.code().map(|c| c.code()), Some("0A000"));
    let a = m.register("127.0.0.1", 6010, "a", 50).await;
    let mut bad = Report::new("single", "0/1");
    bad.rep_state = "bogus".to_string();
    let err = m
        .try_node_active(a.id, &bad)
        .await
        .expect_err("bad sync state");
    assert_eq!(
        err.as_db_error().map(|e| e.message()),
        Some("unknown pg_stat_replication.sync_state \"bogus\"")
    );
    let err = m
        .client
        .execute(
            "SELECT pgautofailover.register_node('nope', 'h', 1, 'postgres')",
            &[],
        )
        .await
        .expect_err("unknown formation");
    let db = err.as_db_error().expect("db error");
    assert_eq!(
        (db.code().code(), db.message()),
        ("42P17", "formation \"nope\" does not exist")
    );
}

/// Our deliberate departures from upstream's catalog.
#[tokio::test]
async fn departures_from_upstream() {
    let cluster = Cluster::monitor(QUIET).await;
    let m = Monitor::new(cluster.connect("pg_auto_failover").await);
    let c = &m.client;

    // Item 9: enable/disable_secondary return true on success (false when
    // the formation does not exist); disabling is guarded by the trigger.
    let b = |sql: &'static str| async move { c.query_one(sql, &[]).await.expect(sql).get::<_, bool>(0) };
    assert!(b("SELECT pgautofailover.disable_secondary('default')").await);
    assert!(b("SELECT pgautofailover.enable_secondary('default')").await);
    assert!(!b("SELECT pgautofailover.enable_secondary('nope')").await);

    // Item 11: a desired node id does not make the sequence skip a value.
    let row = c
        .query_one(
            "SELECT assigned_node_id FROM pgautofailover.register_node('default', '127.0.0.1', 6010, 'postgres', \
                    desired_node_id => 10)",
            &[],
        )
        .await
        .expect("desired id");
    assert_eq!(row.get::<_, i64>(0), 10);
    let next = m.register("127.0.0.1", 6011, "b", 50).await;
    assert_eq!(next.id, 11, "upstream gave 12");
    let err = c
        .query_one("SELECT pgautofailover.disable_secondary('default')", &[])
        .await
        .expect_err("trigger");
    let db = err.as_db_error().expect("db error");
    assert_eq!(
        (db.code().code(), db.message(), db.detail(), db.hint()),
        (
            "55000",
            "formation has nodes that are not in SINGLE state",
            Some("nodeid 10 is in state init"),
            Some("drop secondary nodes before disabling secondaries on formation")
        )
    );

    // Item 10: the group's system identifier is set on nodes that have none
    // (register stores NULL; upstream only matched 0).
    let rows = c
        .query(
            "SELECT node_id FROM pgautofailover.set_group_system_identifier(0, 42) ORDER BY 1",
            &[],
        )
        .await
        .expect("set_group_system_identifier");
    assert_eq!(
        rows.iter().map(|r| r.get::<_, i64>(0)).collect::<Vec<_>>(),
        vec![10, 11]
    );

    // Item 8: formation_uri lists hosts by node id, whatever the physical
    // order (an update moves node 10 after node 11 in the heap).
    c.execute(
        "UPDATE pgautofailover.node SET nodeport = 6012 WHERE nodeid = 10",
        &[],
    )
    .await
    .expect("update");
    let uri: String = c
        .query_one(
            "SELECT pgautofailover.formation_uri('default', 'default', 'require', '/ca.pem', '')",
            &[],
        )
        .await
        .expect("formation_uri")
        .get(0);
    assert_eq!(
        uri,
        "postgres://127.0.0.1:6012,127.0.0.1:6011/postgres?target_session_attrs=read-write&sslmode=require&sslrootcert=/ca.pem"
    );
    let none: Option<String> = c
        .query_one(
            "SELECT pgautofailover.formation_uri('default', 'replicas')",
            &[],
        )
        .await
        .expect("formation_uri none")
        .get(0);
    assert_eq!(none, None);
}

#[tokio::test]
async fn formations() {
    let cluster = Cluster::monitor(QUIET).await;
    let c = cluster.connect("pg_auto_failover").await;
    let row = c
        .query_one(
            "SELECT * FROM pgautofailover.create_formation('f2', 'pgsql', 'appdb', false, 0)",
            &[],
        )
        .await
        .expect("create_formation");
    assert_eq!(
        (
            row.get::<_, String>(0),
            row.get::<_, String>(1),
            row.get::<_, String>(2),
            row.get::<_, bool>(3),
            row.get::<_, i32>(4)
        ),
        (
            "f2".to_string(),
            "pgsql".to_string(),
            "appdb".to_string(),
            false,
            0
        )
    );
    let err = c
        .execute(
            "SELECT pgautofailover.create_formation('f2', 'pgsql', 'appdb', false, 0)",
            &[],
        )
        .await
        .expect_err("duplicate");
    assert_eq!(err.code().map(|c| c.code()), Some("23505"));
    let err = c
        .execute(
            "SELECT pgautofailover.create_formation('f3', 'mongo', 'appdb', false, 0)",
            &[],
        )
        .await
        .expect_err("kind");
    assert_eq!(
        err.as_db_error().map(|e| e.message()),
        Some("unknown formation kind \"mongo\"")
    );
    // Secondaries are disabled in f2: a second node is refused.
    let m = Monitor {
        client: c,
        formation: "f2".to_string(),
    };
    assert_eq!(m.register("127.0.0.1", 7010, "x", 50).await.goal, "single");
    let err = m
        .try_register("127.0.0.1", 7011, "y", 50, true)
        .await
        .expect_err("no secondary");
    assert_eq!(
        err.as_db_error().map(|e| e.message()),
        Some("Formation \"f2\" does not allow secondary nodes")
    );
    m.client
        .execute("SELECT pgautofailover.remove_node(1, true)", &[])
        .await
        .expect("remove");
    m.client
        .execute("SELECT pgautofailover.drop_formation('f2')", &[])
        .await
        .expect("drop_formation");
    let err = m
        .client
        .execute("SELECT pgautofailover.drop_formation('f2')", &[])
        .await
        .expect_err("gone");
    assert_eq!(
        err.as_db_error().map(|e| e.message()),
        Some("couldn't find formation \"f2\"")
    );
}
