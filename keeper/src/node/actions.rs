//! The abstract actions of [`pgaf_fsm::keeper::Action`] carried out on this
//! node's Postgres. Every action is idempotent: a transition that fails is
//! retried from the start on the next loop.

use super::Node;
use crate::monitor::{MonitorError, NodeAddr};
use crate::pg::files::{self, Settings};
use crate::pg::hba::{self, Rule};
use crate::pg::local::LocalError;
use crate::pg::process::{ProcessError, Want};
use crate::pg::tools::{self, ToolError, Upstream};
use pgaf_fsm::keeper::Action;
use pgaf_fsm::NodeState;
use std::path::Path;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum ActionError {
    #[error(transparent)]
    Local(#[from] LocalError),
    #[error(transparent)]
    Monitor(#[from] MonitorError),
    #[error(transparent)]
    Process(#[from] ProcessError),
    #[error(transparent)]
    Tool(#[from] ToolError),
    #[error(transparent)]
    Nodes(#[from] crate::nodes_file::NodesError),
    #[error("{context}: {source}")]
    Io {
        context: String,
        source: std::io::Error,
    },
    /// A condition that is not met yet; the transition is retried.
    #[error("{0}")]
    NotYet(String),
}

impl ActionError {
    /// Every value of [`ActionError::kind`].
    pub const KINDS: [&'static str; 7] = [
        "postgres",
        "monitor",
        "process",
        "tool",
        "io",
        "not_yet",
        "nodes_file",
    ];

    /// What failed, as a bounded metrics label: SQL on the local Postgres,
    /// a call to the monitor, starting or stopping Postgres, a Postgres
    /// program (pg_basebackup, pg_rewind, ...), a file, or a condition not
    /// met yet, or the nodes file of a node without a monitor.
    pub fn kind(&self) -> &'static str {
        match self {
            ActionError::Local(_) => "postgres",
            ActionError::Monitor(_) => "monitor",
            ActionError::Process(_) => "process",
            ActionError::Tool(_) => "tool",
            ActionError::Io { .. } => "io",
            ActionError::NotYet(_) => "not_yet",
            ActionError::Nodes(_) => "nodes_file",
        }
    }
}

fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> ActionError {
    let context = context.into();
    move |source| ActionError::Io { context, source }
}

const START_TIMEOUT: Duration = Duration::from_secs(60);
const STOP_TIMEOUT: Duration = Duration::from_secs(60);

/// Our settings file for this node.
pub fn settings(node: &Node) -> Settings {
    let ssl = &node.cfg.ssl;
    Settings {
        monitor: false,
        listen_addresses: node.cfg.pg.listen_addresses.clone(),
        port: node.cfg.pg.port,
        auth_method: node.cfg.pg.auth_method.clone(),
        ssl: ssl.active,
        ssl_files: vec![
            ("ssl_ca_file", ssl.ca_file.clone()),
            ("ssl_crl_file", ssl.crl_file.clone()),
            ("ssl_cert_file", ssl.cert_file.clone()),
            ("ssl_key_file", ssl.key_file.clone()),
        ],
    }
}

/// The host part of the monitor URI (for its health-check HBA rule).
fn monitor_host(uri: &str) -> Option<String> {
    let target = pgaf_pgconn::parse(uri).ok()?;
    match target.config.get_hosts().first()? {
        tokio_postgres::config::Host::Tcp(h) => Some(h.clone()),
        _ => None,
    }
}

/// The network (CIDR) of the local interface that holds `hostname`.
fn lan_of(hostname: &str) -> Option<String> {
    crate::net::resolve(hostname)
        .into_iter()
        .find(|ip| crate::net::is_local(*ip))
        .and_then(crate::net::local_network)
}

/// HBA rules of a data node: the monitor's health checks, replication from
/// and to every other node, the application database.
pub fn hba_rules(node: &Node) -> Vec<Rule> {
    let auth = if node.cfg.pg.auth_method.is_empty() {
        "trust".to_string()
    } else {
        node.cfg.pg.auth_method.clone()
    };
    let ssl = node.cfg.ssl.active;
    let mut rules = Vec::new();
    if let Some(host) = monitor_host(&node.cfg.monitor) {
        rules.push(Rule {
            ssl,
            database: "all".into(),
            user: "pgautofailover_monitor".into(),
            address: host,
            auth: "trust".into(),
        });
    }
    // The application's user, to its database, from this node's address.
    let app_user = if node.cfg.pg.username.is_empty() {
        std::env::var("USER").unwrap_or_else(|_| "postgres".into())
    } else {
        node.cfg.pg.username.clone()
    };
    rules.push(Rule {
        ssl,
        database: node.cfg.pg.dbname.clone(),
        user: app_user.clone(),
        address: node.cfg.hostname.clone(),
        auth: auth.clone(),
    });
    // `--pg-hba-lan`: the application's clients on the local network.
    if node.cfg.pg.hba_level == crate::config::HBA_LAN {
        match lan_of(&node.cfg.hostname) {
            Some(cidr) => rules.push(Rule {
                ssl,
                database: node.cfg.pg.dbname.clone(),
                user: app_user,
                address: cidr,
                auth: auth.clone(),
            }),
            None => tracing::warn!(
                "--pg-hba-lan: \"{}\" is not an address of a local interface, \
                 no rule for the local network was added",
                node.cfg.hostname
            ),
        }
    }
    rules.extend(hba::own_tcp_rules(&node.cfg.pg.listen_addresses));
    let mut hosts: Vec<String> = node.others.iter().map(|n| n.host.clone()).collect();
    hosts.push(node.cfg.hostname.clone());
    hosts.sort();
    hosts.dedup();
    for host in hosts {
        for database in [
            "replication".to_string(),
            node.cfg.pg.dbname.clone(),
            "postgres".to_string(),
        ] {
            rules.push(Rule {
                ssl,
                database,
                user: "pgautofailover_replicator".into(),
                address: host.clone(),
                auth: auth.clone(),
            });
        }
    }
    rules
}

/// Write our settings and HBA rules; reload a running Postgres when they
/// changed.
pub async fn configure(node: &Node) -> Result<(), ActionError> {
    let pgdata = &node.paths.pgdata;
    if !pgdata.join("PG_VERSION").exists() {
        // Nothing to configure before initdb or the base backup.
        return Ok(());
    }
    let ssl = &node.cfg.ssl;
    if ssl.active && Path::new(&ssl.cert_file).starts_with(pgdata) {
        crate::pg::cert::ensure_self_signed(
            Path::new(&ssl.cert_file),
            Path::new(&ssl.key_file),
            &node.cfg.hostname,
        )
        .map_err(|e| ActionError::NotYet(e.to_string()))?;
    }
    if node.cfg.pg.hba_level == "skip" {
        files::write_settings(pgdata, &settings(node))
            .map_err(io("write postgresql-auto-failover.conf"))?;
        // Even with --skip-pg-hba, pg_autoctl must reach its own Postgres.
        hba::ensure(pgdata, &hba::own_tcp_rules(&node.cfg.pg.listen_addresses))
            .map_err(io("edit pg_hba.conf"))?;
        return Ok(());
    }
    let changed = files::write_settings(pgdata, &settings(node))
        .map_err(io("write postgresql-auto-failover.conf"))?;
    let added = hba::ensure(pgdata, &hba_rules(node)).map_err(io("edit pg_hba.conf"))?;
    if (changed || added > 0) && node.pg.status().ready {
        node.local().await?.reload().await?;
    }
    Ok(())
}

/// Settings a copy of another node brought along in `postgresql.auto.conf`
/// that must not apply here.
pub fn reset_copied_settings(pgdata: &Path) -> std::io::Result<()> {
    let path = pgdata.join("postgresql.auto.conf");
    let Ok(text) = std::fs::read_to_string(&path) else {
        return Ok(());
    };
    let kept: Vec<&str> = text
        .lines()
        .filter(|l| {
            let key = l.split('=').next().unwrap_or("").trim();
            !matches!(
                key,
                "synchronous_standby_names"
                    | "default_transaction_read_only"
                    | "primary_conninfo"
                    | "primary_slot_name"
            )
        })
        .collect();
    if kept.len() != text.lines().count() {
        crate::config::write_atomically(&path, (kept.join("\n") + "\n").as_bytes(), 0o600)?;
    }
    Ok(())
}

async fn primary(node: &mut Node) -> Result<NodeAddr, ActionError> {
    match super::peers::primary(node).await? {
        Some(p) if p.id != node.state.node_id => Ok(p),
        Some(_) => Err(ActionError::NotYet(
            "the monitor lists this node as the primary".into(),
        )),
        None => Err(ActionError::NotYet(
            "the group has no primary right now".into(),
        )),
    }
}

fn upstream<'a>(node: &'a Node, p: &'a NodeAddr) -> Upstream<'a> {
    Upstream {
        host: &p.host,
        port: p.port,
        password: &node.cfg.replication_password,
        sslmode: if node.cfg.ssl.sslmode.is_empty() {
            "prefer"
        } else {
            &node.cfg.ssl.sslmode
        },
    }
}

/// Replace PGDATA by a base backup of `source`.
async fn base_backup(node: &mut Node, source: &NodeAddr, slot: bool) -> Result<(), ActionError> {
    node.pg.ensure_stopped(STOP_TIMEOUT).await?;
    let pgdata = node.paths.pgdata.clone();
    let parent = pgdata
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| "/tmp".into());
    let target = if node.cfg.backup_directory.as_os_str().is_empty() {
        parent
            .join("backup")
            .join(format!("node_{}", node.state.node_id))
    } else {
        node.cfg.backup_directory.clone()
    };
    if target.exists() {
        std::fs::remove_dir_all(&target).map_err(io(format!("empty {}", target.display())))?;
    }
    if let Some(p) = target.parent() {
        std::fs::create_dir_all(p).map_err(io(format!("create {}", p.display())))?;
    }
    let slot_name = slot.then(|| pgaf_fsm::standby_names::standby_name(node.state.node_id));
    tracing::info!(
        "Taking a base backup of node {} ({}:{}) into {}",
        source.id,
        source.host,
        source.port,
        target.display()
    );
    tools::basebackup(
        &node.bin,
        &upstream(node, source),
        &target,
        slot_name.as_deref(),
        &node.cfg.maximum_backup_rate,
        node.state.node_id,
    )
    .await?;
    if pgdata.exists() {
        let old = parent.join(format!(
            ".{}.old",
            pgdata
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or("pgdata")
        ));
        let _ = std::fs::remove_dir_all(&old);
        std::fs::rename(&pgdata, &old).map_err(io(format!("move {} aside", pgdata.display())))?;
        std::fs::rename(&target, &pgdata)
            .map_err(io(format!("move the backup to {}", pgdata.display())))?;
        let _ = std::fs::remove_dir_all(&old);
    } else {
        std::fs::rename(&target, &pgdata)
            .map_err(io(format!("move the backup to {}", pgdata.display())))?;
    }
    let _ = std::fs::remove_file(pgdata.join("postmaster.pid"));
    let _ = std::fs::remove_file(pgdata.join("startup.log"));
    reset_copied_settings(&pgdata).map_err(io("edit postgresql.auto.conf"))?;
    Ok(())
}

/// Point the standby at `source` (or at nothing) and make it run; a running
/// standby only reloads.
async fn follow(node: &mut Node, source: Option<&NodeAddr>, slot: bool) -> Result<(), ActionError> {
    let src = source.map(|s| node.source(s, slot));
    let pgdata = node.paths.pgdata.clone();
    let was_standby = files::is_standby(&pgdata);
    let changed =
        files::write_standby(&pgdata, src.as_ref()).map_err(io("write the standby settings"))?;
    configure(node).await?;
    let running = node.pg.status().ready;
    if running && was_standby {
        if changed {
            node.local().await?.reload().await?;
        }
    } else if running {
        // A primary cannot become a standby without a restart.
        node.pg.ensure_stopped(STOP_TIMEOUT).await?;
        node.pg.ensure_running(START_TIMEOUT).await?;
    } else {
        node.pg.ensure_running(START_TIMEOUT).await?;
    }
    Ok(())
}

/// How long one walreceiver must stream for the standby to count as
/// following its upstream: longer than `wal_retrieve_retry_interval` (1 s,
/// `pg::files`), so that a walreceiver that connects, finds that the
/// upstream's timeline forked before this node's last record, and exits
/// (to start again a second later) is not taken for a healthy one.
const STEADY_STREAMING: Duration = Duration::from_millis(1500);

/// How a standby's walreceiver behaved while we watched it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Streaming {
    /// One walreceiver streamed for [`STEADY_STREAMING`].
    Steady,
    /// Walreceivers connected and gave up again: the upstream answers but
    /// its timeline forked before this node's last record (the WAL
    /// diverged), which only a rewind repairs.
    Flapping,
    /// No walreceiver streamed at all (the upstream is unreachable, or not
    /// ready yet).
    Never,
}

/// Watch this standby's walreceiver for up to `wait`.
async fn watch_streaming(node: &Node, wait: Duration) -> Streaming {
    let deadline = tokio::time::Instant::now() + wait;
    let mut first: Option<(i32, tokio::time::Instant)> = None;
    let mut receivers = 0u32;
    loop {
        let receiver = match node.local().await {
            Ok(local) => local.streaming_receiver().await.unwrap_or(None),
            Err(_) => None,
        };
        let now = tokio::time::Instant::now();
        match (receiver, first) {
            (Some(pid), Some((seen, since))) if pid == seen => {
                if now.duration_since(since) >= STEADY_STREAMING {
                    return Streaming::Steady;
                }
            }
            (Some(pid), _) => {
                receivers += 1;
                first = Some((pid, now));
            }
            (None, _) => first = None,
        }
        if now >= deadline {
            return if receivers >= 2 {
                Streaming::Flapping
            } else {
                Streaming::Never
            };
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Whether this standby streams steadily from its upstream within `wait`.
async fn streams_within(node: &Node, wait: Duration) -> bool {
    watch_streaming(node, wait).await == Streaming::Steady
}

/// pg_rewind against `p`, or a base backup of `p` (through our replication
/// slot when `slot`) when that fails.
async fn rewind_or_backup_from(
    node: &mut Node,
    p: &NodeAddr,
    slot: bool,
) -> Result<(), ActionError> {
    node.pg.ensure_stopped(STOP_TIMEOUT).await?;
    let pgdata = node.paths.pgdata.clone();
    if let Err(e) = tools::checkpoint(&upstream(node, p)).await {
        tracing::debug!("CHECKPOINT on node {} before pg_rewind: {e}", p.id);
    }
    let rewound = tools::rewind(&node.bin, &upstream(node, p), &pgdata, node.state.node_id).await;
    match rewound {
        Ok(()) => {
            let _ = std::fs::remove_file(pgdata.join("postmaster.pid"));
            reset_copied_settings(&pgdata).map_err(io("edit postgresql.auto.conf"))?;
        }
        Err(e) => {
            tracing::warn!("pg_rewind failed ({e}): taking a base backup instead");
            base_backup(node, p, slot).await?;
        }
    }
    Ok(())
}

/// pg_rewind against the primary, or a base backup when that fails.
async fn rewind_or_backup(node: &mut Node, p: &NodeAddr) -> Result<(), ActionError> {
    rewind_or_backup_from(node, p, true).await
}

/// Carry out `action` for the transition to `goal`.
pub async fn run(node: &mut Node, action: Action, goal: NodeState) -> Result<(), ActionError> {
    use Action::*;
    match action {
        InitPrimary => init_primary(node).await,
        BaseBackupFromPrimary => {
            let p = primary(node).await?;
            base_backup(node, &p, true).await?;
            follow(node, Some(&p), true).await?;
            publish_system_identifier(node).await
        }
        BaseBackupFromStandby => {
            let Some(src) = super::peers::most_advanced_standby(node).await? else {
                return Err(ActionError::NotYet(
                    "no standby has reported its LSN yet".into(),
                ));
            };
            base_backup(node, &src, false).await?;
            follow(node, None, false).await?;
            publish_system_identifier(node).await
        }
        DropReplicationSlots => {
            if node.pg.status().ready {
                node.local().await?.drop_all_slots().await?;
            }
            Ok(())
        }
        RewindOrBaseBackup => {
            let p = primary(node).await?;
            rewind_or_backup(node, &p).await?;
            follow(node, Some(&p), true).await
        }
        StartPostgres => {
            configure(node).await?;
            node.pg.ensure_running(START_TIMEOUT).await?;
            node.lease.clear_fenced();
            Ok(())
        }
        StopPostgres => Ok(node.pg.ensure_stopped(STOP_TIMEOUT).await?),
        CheckpointAndStop => {
            if node.pg.status().ready {
                if let Ok(local) = node.local().await {
                    let _ = local.checkpoint().await;
                }
            }
            Ok(node.pg.ensure_stopped(STOP_TIMEOUT).await?)
        }
        Promote => {
            node.pg.ensure_running(START_TIMEOUT).await?;
            let local = node.local().await?;
            local.promote().await?;
            // The checkpoint that records the new timeline in the control
            // file (which pg_rewind needs) runs in the background: flushing
            // shared buffers on a busy host took seconds of the failover.
            // A node that rewinds against this one asks for it first
            // (`rewind_or_backup`).
            tokio::spawn(async move {
                if let Err(e) = local.checkpoint().await {
                    tracing::warn!("CHECKPOINT after the promotion failed: {e}");
                }
            });
            files::standby_cleanup(&node.paths.pgdata)
                .map_err(io("remove the standby settings"))?;
            Ok(())
        }
        FollowPrimary => {
            let p = primary(node).await?;
            if !files::is_standby(&node.paths.pgdata)
                && node.paths.pgdata.join("PG_VERSION").exists()
            {
                // A former primary: its WAL may have diverged.
                rewind_or_backup(node, &p).await?;
            }
            follow(node, Some(&p), true).await?;
            if goal == NodeState::Secondary && !streams_within(node, Duration::from_secs(10)).await
            {
                tracing::warn!(
                    "Cannot stream from node {}: rewinding to its timeline",
                    p.id
                );
                rewind_or_backup(node, &p).await?;
                follow(node, Some(&p), true).await?;
            }
            Ok(())
        }
        DisconnectFromUpstream => follow(node, None, false).await,
        FetchMissingWal => fetch_missing_wal(node).await,
        StandbyCleanup | MaintainStandbySlots => Ok(()),
        SetReadOnly => {
            if node.pg.status().ready {
                node.local().await?.set_read_only(true).await?;
            } else {
                // Applied when Postgres starts.
                write_read_only(&node.paths.pgdata, true)
                    .map_err(io("edit postgresql.auto.conf"))?;
            }
            Ok(())
        }
        SetReadWrite => {
            node.local().await?.set_read_only(false).await?;
            Ok(())
        }
        DisableSyncRep => {
            node.local().await?.disable_sync_rep().await?;
            Ok(())
        }
        ApplySyncStandbyNames => {
            let names = super::peers::standby_names(node).await?;
            node.local().await?.set_standby_names(&names).await?;
            Ok(())
        }
        WaitForSyncStandby => {
            let local = node.local().await?;
            if local.setting("synchronous_standby_names").await?.is_empty() {
                return Ok(());
            }
            let target = local.current_lsn().await?;
            let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
            loop {
                if local.sync_standby_reached(target).await? {
                    return Ok(());
                }
                if tokio::time::Instant::now() >= deadline {
                    return Err(ActionError::NotYet(format!(
                        "no synchronous standby has reached LSN {target} yet"
                    )));
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        ManageSlots => {
            // A standby that just registered must find its slot.
            if let Err(e) = node.refresh_others().await {
                tracing::warn!("Cannot refresh the list of other nodes: {e}");
            }
            sync_slots(node).await?;
            configure(node).await
        }
        CheckTimeline => match watch_streaming(node, Duration::from_secs(5)).await {
            Streaming::Steady => Ok(()),
            Streaming::Flapping => {
                // The primary answers but will not stream to us: our WAL
                // has records past its timeline's fork. Rewind to it.
                let p = primary(node).await?;
                tracing::warn!(
                    "Cannot stream from node {}: rewinding to its timeline",
                    p.id
                );
                rewind_or_backup(node, &p).await?;
                follow(node, Some(&p), true).await?;
                Err(ActionError::NotYet(
                    "rewound to the primary's timeline: checking the stream again".into(),
                ))
            }
            Streaming::Never => Err(ActionError::NotYet(
                "the standby does not stream from the primary yet".into(),
            )),
        },
        PrepareStandbySetup => {
            // A primary going to maintenance gets there before its successor
            // is promoted (the monitor waits for it): without another
            // primary yet, it is set up as a standby of nobody, and follows
            // the primary of the moment when maintenance ends.
            let src = match primary(node).await {
                Ok(p) => Some(node.source(&p, true)),
                Err(ActionError::NotYet(_)) => None,
                Err(e) => return Err(e),
            };
            files::write_standby(&node.paths.pgdata, src.as_ref())
                .map_err(io("write the standby settings"))?;
            Ok(())
        }
        ReleasePostgres => {
            node.pg.set_want(Want::Released);
            Ok(())
        }
    }
}

/// A primary keeps one replication slot per other node.
pub async fn sync_slots(node: &mut Node) -> Result<(), ActionError> {
    let ids: Vec<i64> = node.others.iter().map(|n| n.id).collect();
    node.local().await?.manage_slots(&ids).await?;
    node.slots_synced = true;
    Ok(())
}

fn write_read_only(pgdata: &Path, on: bool) -> std::io::Result<()> {
    let path = pgdata.join("postgresql.auto.conf");
    let text = std::fs::read_to_string(&path).unwrap_or_default();
    let mut lines: Vec<String> = text
        .lines()
        .filter(|l| l.split('=').next().unwrap_or("").trim() != "default_transaction_read_only")
        .map(str::to_string)
        .collect();
    lines.push(format!(
        "default_transaction_read_only = '{}'",
        if on { "on" } else { "off" }
    ));
    crate::config::write_atomically(&path, (lines.join("\n") + "\n").as_bytes(), 0o600)
}

async fn publish_system_identifier(node: &mut Node) -> Result<(), ActionError> {
    let ctl = crate::pg::control::controldata(&node.bin, &node.paths.pgdata)
        .map_err(|e| ActionError::NotYet(e.to_string()))?;
    node.state.system_identifier = ctl.system_identifier as i64;
    if node.monitor_disabled() {
        node.save_state();
        return Ok(());
    }
    let id = node.state.node_id;
    node.monitor()
        .await?
        .set_system_identifier(id, ctl.system_identifier as i64)
        .await?;
    node.save_state();
    Ok(())
}

/// initdb when needed, our settings, start, roles and the database.
async fn init_primary(node: &mut Node) -> Result<(), ActionError> {
    let pgdata = node.paths.pgdata.clone();
    if !pgdata.join("PG_VERSION").exists() {
        tools::initdb(&node.bin, &pgdata).await?;
    }
    files::standby_cleanup(&pgdata).map_err(io("remove standby settings"))?;
    configure(node).await?;
    node.pg.ensure_running(START_TIMEOUT).await?;
    let local = node.local().await?;
    if local.in_recovery().await? {
        local.promote().await?;
    }
    local.create_roles(&node.cfg.replication_password).await?;
    let owner = if node.cfg.pg.username.is_empty() {
        std::env::var("USER").unwrap_or_else(|_| "postgres".into())
    } else {
        local.create_superuser(&node.cfg.pg.username).await?;
        node.cfg.pg.username.clone()
    };
    local.create_database(&node.cfg.pg.dbname, &owner).await?;
    drop(local);
    publish_system_identifier(node).await
}

/// Stream from the most advanced standby up to the LSN it reported.
async fn fetch_missing_wal(node: &mut Node) -> Result<(), ActionError> {
    let Some(src) = super::peers::most_advanced_standby(node).await? else {
        return Ok(());
    };
    if src.id == node.state.node_id {
        return Ok(());
    }
    follow(node, Some(&src), false).await?;
    if node.local().await?.replay_lsn().await? < src.lsn
        && watch_streaming(node, Duration::from_secs(10)).await == Streaming::Flapping
    {
        // Our WAL forked from that standby's timeline (an old primary's
        // last records): rewind to it first.
        tracing::warn!(
            "Cannot stream from node {} ({}:{}): rewinding to its timeline",
            src.id,
            src.host,
            src.port
        );
        rewind_or_backup_from(node, &src, false).await?;
        follow(node, Some(&src), false).await?;
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let reached = node.local().await?.replay_lsn().await?;
        if reached >= src.lsn {
            tracing::info!("Reached LSN {reached} from node {}", src.id);
            break;
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(ActionError::NotYet(format!(
                "Postgres recovery is at LSN {reached}, waiting for LSN {}",
                src.lsn
            )));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    follow(node, None, false).await
}
