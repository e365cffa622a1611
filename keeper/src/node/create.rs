//! `pg_autoctl create postgres`: check what we are
//! given, register with the monitor (retrying while another node is being
//! set up), write the configuration and the state file; the node-active
//! loop then drives the node from `init` to its first goal (initdb and
//! `single`, or a base backup and `catchingup`).

use super::Node;
use crate::config::{Config, KeeperConfig, PgSetup, Ssl, Timeouts};
use crate::monitor::{Monitor, Registration};
use crate::paths::NodePaths;
use crate::pg::bin::PgBin;
use crate::pg::control::{controldata, PostmasterPid};
use crate::state::KeeperState;
use anyhow::{bail, Context};
use pgaf_fsm::NodeState;
use std::path::PathBuf;
use std::time::Duration;

/// The options of `create postgres` that matter to this flow.
#[derive(Debug, Clone)]
pub struct CreatePostgres {
    pub pgdata: PathBuf,
    pub pgport: u16,
    /// `--pghost`: how this keeper reaches its own Postgres when not by
    /// the Unix socket.
    pub pghost: String,
    pub hostname: Option<String>,
    pub listen: String,
    /// The monitor's URI, or [`crate::config::MONITOR_DISABLED`].
    pub monitor: String,
    /// `--node-id`, with `--disable-monitor`.
    pub node_id: Option<i64>,
    /// `--pg-hba-lan`: HBA rules for the local network too.
    pub pg_hba_lan: bool,
    pub formation: String,
    pub group: Option<i32>,
    pub name: String,
    pub dbname: String,
    pub username: String,
    pub candidate_priority: i32,
    pub replication_quorum: bool,
    pub auth: String,
    pub skip_hba: bool,
    pub ssl: Ssl,
    pub pg_ctl: Option<PathBuf>,
    pub maximum_backup_rate: String,
    /// `--metrics-listen` (empty: off).
    pub metrics_listen: String,
}

/// How long registration retries while the monitor answers 55006.
const REGISTER_RETRY: Duration = Duration::from_secs(600);

/// The address other nodes reach us at: the local end of a connection
/// towards the monitor.
pub fn discover_hostname(monitor_uri: &str) -> Option<String> {
    let cfg = pgaf_pgconn::parse(monitor_uri).ok()?.config;
    let host = match cfg.get_hosts().first()? {
        tokio_postgres::config::Host::Tcp(h) => h.clone(),
        _ => return None,
    };
    let port = cfg.get_ports().first().copied().unwrap_or(5432);
    let sock = std::net::UdpSocket::bind("0.0.0.0:0").ok()?;
    sock.connect((host.as_str(), port)).ok()?;
    Some(sock.local_addr().ok()?.ip().to_string())
}

fn port_in_use(port: u16) -> bool {
    std::net::TcpListener::bind(("0.0.0.0", port)).is_err()
}

/// Register the node and write its files. Returns the node, ready for the
/// node-active loop, and whether it was registered now (`false`: it was
/// created before).
pub async fn create(opts: &CreatePostgres) -> anyhow::Result<(Node, bool)> {
    let paths = NodePaths::new(&opts.pgdata);
    let bin = PgBin::discover(opts.pg_ctl.as_deref())?;

    // A node created before: only run it.
    if let (Ok(Config::Keeper(cfg)), Ok(Some(state))) =
        (Config::load(&paths.config), KeeperState::load(&paths.state))
    {
        if state.current_role != NodeState::Dropped {
            return Ok((Node::new(cfg, paths, bin, state)?, false));
        }
    }

    // PGDATA: absent, empty, or a stopped Postgres data directory.
    let mut sysid = 0i64;
    if paths.pgdata.exists() {
        let non_empty = std::fs::read_dir(&paths.pgdata)
            .map(|mut d| d.next().is_some())
            .unwrap_or(false);
        if non_empty {
            if !paths.pgdata.join("PG_VERSION").exists() {
                bail!(
                    "{} exists and is not a Postgres data directory: give an empty or missing directory to initialise, or an existing cluster to adopt",
                    paths.pgdata.display()
                );
            }
            if PostmasterPid::read(&paths.pgdata).is_some_and(|p| p.alive()) {
                bail!(
                    "Postgres is running in {}: stop it first (pg_ctl stop -D {}), pg_autoctl starts it itself",
                    paths.pgdata.display(),
                    paths.pgdata.display()
                );
            }
            let major = bin.version_num()? / 10000;
            crate::pg::debian::adopt(&paths.pgdata, major)?;
            let ctl = controldata(&bin, &paths.pgdata)?;
            sysid = ctl.system_identifier as i64;
            tracing::info!(
                "Adopting the existing Postgres cluster in {} (system identifier {})",
                paths.pgdata.display(),
                ctl.system_identifier
            );
        }
    }
    if port_in_use(opts.pgport) {
        bail!(
            "port {} is already in use on this host: choose another one with --pgport",
            opts.pgport
        );
    }

    if opts.monitor == crate::config::MONITOR_DISABLED {
        return create_without_monitor(opts, paths, bin, sysid);
    }
    let monitor = Monitor::connect(&opts.monitor, Duration::from_secs(10))
        .await
        .context("check the --monitor connection string, and that the monitor runs")?;
    monitor.check_version().await?;

    let hostname = match &opts.hostname {
        Some(h) => h.clone(),
        None => discover_hostname(&opts.monitor).unwrap_or_else(|| "localhost".into()),
    };
    let reg = Registration {
        formation: &opts.formation,
        host: &hostname,
        port: opts.pgport,
        dbname: &opts.dbname,
        name: &opts.name,
        sysidentifier: sysid,
        desired_node_id: -1,
        desired_group_id: opts.group.unwrap_or(-1),
        initial_state: NodeState::Init,
        candidate_priority: opts.candidate_priority,
        replication_quorum: opts.replication_quorum,
    };
    // Registration and our files land together: the registration is only
    // committed once the configuration and state files are written.
    let client = monitor.client();
    let deadline = tokio::time::Instant::now() + REGISTER_RETRY;
    let assigned = loop {
        client
            .batch_execute("BEGIN")
            .await
            .context("start the registration transaction")?;
        match monitor.register(&reg).await {
            Ok(a) => break a,
            Err(e) => {
                let _ = client.batch_execute("ROLLBACK").await;
                if e.is_other_system() {
                    bail!(
                        "another node already exists in this group with another system identifier: \
                         register a standby from an empty or missing PGDATA, or from a copy of the primary ({e})"
                    );
                }
                if !(e.is_busy() && tokio::time::Instant::now() < deadline) {
                    return Err(e.into());
                }
                tracing::info!("{e}: retrying in a moment");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    };
    let written = write_files(opts, &paths, &bin, hostname.clone(), sysid, &assigned);
    let cfg = match written {
        Ok(cfg) => cfg,
        Err(e) => {
            let _ = client.batch_execute("ROLLBACK").await;
            let _ = std::fs::remove_file(&paths.state);
            let _ = std::fs::remove_file(&paths.config);
            return Err(e.context("the registration was rolled back"));
        }
    };
    if let Err(e) = client.batch_execute("COMMIT").await {
        let _ = std::fs::remove_file(&paths.state);
        let _ = std::fs::remove_file(&paths.config);
        return Err(anyhow::Error::new(e).context("commit the registration on the monitor"));
    }
    tracing::info!(
        "Registered node {} \"{}\" ({}:{}) in formation \"{}\", group {}, state \"{}\"",
        assigned.node_id,
        assigned.name,
        hostname,
        opts.pgport,
        opts.formation,
        assigned.group_id,
        assigned.goal
    );
    let state = KeeperState::load(&paths.state)?.context("read back the state file")?;
    Ok((Node::new(cfg, paths, bin, state)?, true))
}

/// `create postgres --disable-monitor --node-id N`: the files of a node in
/// state `init` with no monitor; `pg_autoctl do fsm assign` drives it from
/// there (`single` runs initdb, `wait_standby` a base backup of the primary
/// of the nodes file).
fn create_without_monitor(
    opts: &CreatePostgres,
    paths: NodePaths,
    bin: PgBin,
    sysid: i64,
) -> anyhow::Result<(Node, bool)> {
    let node_id = opts.node_id.context("--disable-monitor needs --node-id")?;
    let hostname = match &opts.hostname {
        Some(h) => h.clone(),
        None => crate::net::default_address().unwrap_or_else(|| "localhost".into()),
    };
    let assigned = crate::monitor::Assigned {
        node_id,
        group_id: 0,
        goal: NodeState::Init,
        candidate_priority: opts.candidate_priority,
        replication_quorum: opts.replication_quorum,
        name: if opts.name.is_empty() {
            format!("node_{node_id}")
        } else {
            opts.name.clone()
        },
        lease_timeout_ms: None,
        fence_timeout_ms: None,
    };
    let mut cfg = write_files(opts, &paths, &bin, hostname.clone(), sysid, &assigned)?;
    cfg.group = None;
    Config::Keeper(cfg.clone()).save(&paths.config)?;
    tracing::info!(
        "Created node {node_id} \"{}\" ({hostname}:{}) without a monitor, in state \"init\"",
        assigned.name,
        opts.pgport
    );
    let state = KeeperState::load(&paths.state)?.context("read back the state file")?;
    Ok((Node::new(cfg, paths, bin, state)?, true))
}

/// Write the configuration and state files of a freshly registered node.
fn write_files(
    opts: &CreatePostgres,
    paths: &NodePaths,
    bin: &PgBin,
    hostname: String,
    sysid: i64,
    assigned: &crate::monitor::Assigned,
) -> anyhow::Result<KeeperConfig> {
    let (auth_method, mut hba_level) = PgSetup::hba_choice(opts.skip_hba, &opts.auth);
    if opts.pg_hba_lan && !opts.skip_hba {
        hba_level = crate::config::HBA_LAN.into();
    }
    let cfg = KeeperConfig {
        monitor: opts.monitor.clone(),
        formation: opts.formation.clone(),
        group: Some(assigned.group_id),
        name: assigned.name.clone(),
        hostname,
        nodekind: "standalone".into(),
        pg: PgSetup {
            pgdata: paths.pgdata.clone(),
            pg_ctl: bin.pg_ctl(),
            username: opts.username.clone(),
            dbname: opts.dbname.clone(),
            host: opts.pghost.clone(),
            port: opts.pgport,
            listen_addresses: opts.listen.clone(),
            auth_method,
            hba_level,
        },
        ssl: opts.ssl.clone(),
        maximum_backup_rate: opts.maximum_backup_rate.clone(),
        backup_directory: paths
            .pgdata
            .parent()
            .map(|p| p.join("backup").join(format!("node_{}", assigned.node_id)))
            .unwrap_or_default(),
        replication_password: String::new(),
        timeouts: Timeouts::default(),
        citus_role: "primary".into(),
        citus_cluster_name: String::new(),
        metrics_listen: opts.metrics_listen.clone(),
    };
    paths
        .create_dirs()
        .with_context(|| format!("create the directories of {}", paths.config.display()))?;
    Config::Keeper(cfg.clone()).save(&paths.config)?;
    let mut state = KeeperState::new(assigned.node_id, assigned.group_id);
    state.assigned_role = assigned.goal;
    state.system_identifier = sysid;
    state.save(&paths.state)?;
    Ok(cfg)
}
