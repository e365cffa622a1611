//! `create postgres` adopts a cluster made by Debian's `pg_createcluster`
//! (data in `/var/lib/postgresql/15/<name>`, configuration in
//! `/etc/postgresql/15/<name>`), with `--skip-pg-hba`: the configuration
//! moves into PGDATA (links left in `/etc`, `start.conf` disabled), the
//! HBA file is the cluster's own, byte for byte, and the node serves as
//! the formation's primary.
#![cfg(feature = "integration")]
#![allow(clippy::unwrap_used)]

use pgaf_tests::autoctl::Formation;
use pgaf_tests::cluster::free_port;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

const LIMIT: Duration = Duration::from_secs(90);

/// A Debian cluster, removed (data and configuration) when dropped.
struct DebianCluster {
    name: String,
    data: PathBuf,
    etc: PathBuf,
}

impl DebianCluster {
    fn create(port: u16) -> DebianCluster {
        let name = format!("pgaf_it_{}", std::process::id());
        let c = DebianCluster {
            data: PathBuf::from(format!("/var/lib/postgresql/15/{name}")),
            etc: PathBuf::from(format!("/etc/postgresql/15/{name}")),
            name,
        };
        let o = Command::new("pg_createcluster")
            .args([
                "15",
                &c.name,
                "-p",
                &port.to_string(),
                "--",
                "--auth-local",
                "trust",
                "--auth-host",
                "trust",
            ])
            .output()
            .expect("run pg_createcluster (postgresql-common)");
        assert!(
            o.status.success(),
            "pg_createcluster: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        c
    }
}

impl Drop for DebianCluster {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.data);
        let _ = std::fs::remove_dir_all(&self.etc);
        let _ = std::fs::remove_file(format!(
            "/var/log/postgresql/postgresql-15-{}.log",
            self.name
        ));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pg_createcluster_cluster_is_adopted() {
    let port = free_port();
    let cluster = DebianCluster::create(port);
    let hba = std::fs::read(cluster.etc.join("pg_hba.conf")).unwrap();
    assert!(!cluster.data.join("postgresql.conf").exists());

    let mut f = Formation::with_monitor().await;
    f.add_node_at("node1", cluster.data.clone(), &["--skip-pg-hba"]);
    f.wait_states(&[("node1", "single")], LIMIT).await;

    let conf = std::fs::read_to_string(cluster.data.join("postgresql.conf")).unwrap();
    assert!(
        conf.contains("# edited by pg_auto_failover\n# data_directory"),
        "{conf}"
    );
    for file in ["postgresql.conf", "pg_hba.conf", "pg_ident.conf"] {
        let link = std::fs::read_link(cluster.etc.join(file)).unwrap();
        assert_eq!(link, cluster.data.join(file));
    }
    assert_eq!(
        std::fs::read(cluster.data.join("pg_hba.conf")).unwrap(),
        hba
    );
    let start = std::fs::read_to_string(cluster.etc.join("start.conf")).unwrap();
    assert!(start.ends_with("disabled\n"), "{start}");
    let cfg = f.autoctl(&[
        "config",
        "get",
        "postgresql.hba_level",
        "--pgdata",
        &cluster.data.display().to_string(),
    ]);
    assert_eq!(String::from_utf8_lossy(&cfg.stdout).trim(), "skip");

    let c = f.node_client("node1").await;
    c.batch_execute("CREATE TABLE t (id int); INSERT INTO t VALUES (1)")
        .await
        .unwrap();
    let lsclusters = Command::new("pg_lsclusters")
        .arg("--no-header")
        .output()
        .unwrap();
    let line = String::from_utf8_lossy(&lsclusters.stdout)
        .lines()
        .find(|l| l.contains(&cluster.name))
        .map(str::to_string)
        .unwrap_or_default();
    // Debian's tools still find the cluster, running (its port is
    // pg_autoctl's setting now, which pg_lsclusters does not read).
    assert!(line.contains(" online "), "pg_lsclusters: {line}");
    drop(f);
}
