//! SQL against the local Postgres, as its superuser over the Unix socket:
//! what the keeper reports to the monitor, and every change it makes
//! (replication settings, slots, roles, promotion).

use super::control::PostmasterPid;
use pgaf_fsm::Lsn;
use std::path::Path;
use tokio_postgres::{Client, NoTls};

/// While promoting, every this many 10 ms polls still in recovery, wake
/// the startup process (see [`Local::promote`]).
const PROMOTE_NUDGE_POLLS: u32 = 5;

#[derive(Debug, thiserror::Error)]
pub enum LocalError {
    #[error("Postgres is not running for {0}")]
    NotRunning(String),
    #[error("cannot connect to the local Postgres: {0}")]
    Connect(tokio_postgres::Error),
    #[error("local Postgres: {context}: {source}")]
    Query {
        context: &'static str,
        source: tokio_postgres::Error,
    },
    #[error("Postgres is still in recovery after pg_promote()")]
    StillInRecovery,
}

/// A quoted SQL identifier.
fn ident(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

fn q(context: &'static str) -> impl FnOnce(tokio_postgres::Error) -> LocalError {
    move |source| LocalError::Query { context, source }
}

/// What the keeper reports about its Postgres.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Metadata {
    pub in_recovery: bool,
    pub lsn: Lsn,
    pub tli: i32,
    /// Best `sync_state` among our standbys: quorum > sync > potential > async.
    pub sync_state: String,
    pub system_identifier: i64,
    /// On a standby whose WAL receiver streams: the host and port it
    /// streams from, and how many ms ago it last heard from it.
    pub upstream: Option<(String, u16, i32)>,
}

pub struct Local {
    client: Client,
}

/// Where local connections go when not to the socket directory that
/// `postmaster.pid` names: `[postgresql] host` of the configuration
/// (`--pghost`). Set once when the node's configuration is known.
static LOCAL_HOST: std::sync::OnceLock<String> = std::sync::OnceLock::new();

/// Set the host of local connections (first call wins).
pub fn set_local_host(host: &str) {
    let _ = LOCAL_HOST.set(host.to_string());
}

impl Local {
    /// Connect as the OS user to the `postgres` database.
    pub async fn connect(pgdata: &Path) -> Result<Local, LocalError> {
        Local::connect_db(pgdata, "postgres").await
    }

    /// Connect as the OS user to database `dbname`.
    pub async fn connect_db(pgdata: &Path, dbname: &str) -> Result<Local, LocalError> {
        let pm = PostmasterPid::read(pgdata)
            .filter(PostmasterPid::ready)
            .ok_or_else(|| LocalError::NotRunning(pgdata.display().to_string()))?;
        let user = std::env::var("USER").unwrap_or_else(|_| "postgres".into());
        let mut cfg = tokio_postgres::Config::new();
        match LOCAL_HOST.get().filter(|h| !h.is_empty()) {
            // --pghost (or PGHOST): TCP, or another socket directory.
            Some(h) if h.starts_with('/') => cfg.host_path(h),
            Some(h) => cfg.host(h),
            // A Postgres without a Unix socket (PG_REGRESS_SOCK_DIR="") is
            // reached over TCP, on the address it listens on.
            None if pm.socket_dir.as_os_str().is_empty() => cfg.host(pm.tcp_host()),
            None => cfg.host_path(&pm.socket_dir),
        };
        cfg.port(pm.port)
            .user(&user)
            .dbname(dbname)
            .application_name("pg_autoctl")
            .connect_timeout(std::time::Duration::from_secs(5));
        let (client, conn) = cfg.connect(NoTls).await.map_err(LocalError::Connect)?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok(Local { client })
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    pub async fn metadata(&self) -> Result<Metadata, LocalError> {
        let row = self
            .client
            .query_one(
                "SELECT pg_is_in_recovery(),
                        CASE WHEN pg_is_in_recovery()
                             THEN coalesce(pg_last_wal_receive_lsn(), pg_last_wal_replay_lsn())
                             ELSE pg_current_wal_flush_lsn() END::text,
                        CASE WHEN pg_is_in_recovery()
                             THEN coalesce((SELECT received_tli FROM pg_stat_wal_receiver),
                                           (SELECT timeline_id FROM pg_control_checkpoint()))
                             ELSE ('x' || substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8))::bit(32)::int
                        END,
                        coalesce((SELECT sync_state FROM pg_stat_replication
                                   WHERE application_name ~ '^pgautofailover_standby_'
                                   ORDER BY CASE sync_state WHEN 'quorum' THEN 1 WHEN 'sync' THEN 2
                                                            WHEN 'potential' THEN 3 ELSE 4 END
                                   LIMIT 1), ''),
                        (SELECT system_identifier FROM pg_control_system()),
                        w.sender_host, w.sender_port,
                        (extract(epoch FROM clock_timestamp() - w.last_msg_receipt_time) * 1000)::int
                   FROM (SELECT 1) AS one
                   LEFT JOIN pg_stat_wal_receiver w ON w.status = 'streaming'",
                &[],
            )
            .await
            .map_err(q("read metadata"))?;
        let lsn: Option<String> = row.try_get(1).map_err(q("decode a result"))?;
        Ok(Metadata {
            in_recovery: row.try_get(0).map_err(q("decode a result"))?,
            lsn: lsn.and_then(|l| l.parse().ok()).unwrap_or(Lsn::ZERO),
            tli: row.get::<_, Option<i32>>(2).unwrap_or(0),
            sync_state: row.try_get(3).map_err(q("decode a result"))?,
            system_identifier: row.try_get(4).map_err(q("decode a result"))?,
            upstream: match (
                row.try_get::<_, Option<String>>(5),
                row.try_get::<_, Option<i32>>(6),
                row.try_get::<_, Option<i32>>(7),
            ) {
                (Ok(Some(host)), Ok(Some(port)), Ok(Some(age))) => {
                    u16::try_from(port).ok().map(|p| (host, p, age.max(0)))
                }
                _ => None,
            },
        })
    }

    /// WAL bytes a standby has yet to replay: from its replay position to
    /// the end of WAL its primary's walsender last announced
    /// (`pg_stat_wal_receiver.latest_end_lsn`). 0 on a primary; `None` on
    /// a standby that does not stream.
    pub async fn replication_lag(&self) -> Result<Option<i64>, LocalError> {
        let row = self
            .client
            .query_one(
                "SELECT CASE WHEN pg_is_in_recovery()
                             THEN (SELECT greatest(0, d)::bigint
                                     FROM (SELECT pg_wal_lsn_diff(latest_end_lsn,
                                                                  pg_last_wal_replay_lsn()) AS d
                                             FROM pg_stat_wal_receiver) w
                                    WHERE d IS NOT NULL)
                             ELSE 0 END",
                &[],
            )
            .await
            .map_err(q("read the replication lag"))?;
        row.try_get(0).map_err(q("decode a result"))
    }

    /// Node ids of the standbys streaming from us that replied within
    /// `max_age_ms`.
    pub async fn streaming_standbys(&self, max_age_ms: i64) -> Result<Vec<i64>, LocalError> {
        let rows = self
            .client
            .query(
                "SELECT substr(application_name, length('pgautofailover_standby_') + 1)::bigint
                   FROM pg_stat_replication
                  WHERE application_name ~ '^pgautofailover_standby_[0-9]+$'
                    AND state = 'streaming'
                    AND reply_time > now() - make_interval(secs => $1::float8 / 1000)",
                &[&(max_age_ms as f64)],
            )
            .await
            .map_err(q("read pg_stat_replication"))?;
        rows.iter()
            .map(|r| r.try_get(0).map_err(q("decode a result")))
            .collect()
    }

    async fn alter_system(&self, name: &str, value: &str) -> Result<(), LocalError> {
        let sql = format!("ALTER SYSTEM SET {name} TO '{}'", value.replace('\'', "''"));
        self.client
            .batch_execute(&sql)
            .await
            .map_err(q("ALTER SYSTEM"))?;
        self.reload().await
    }

    pub async fn reload(&self) -> Result<(), LocalError> {
        self.client
            .batch_execute("SELECT pg_reload_conf()")
            .await
            .map_err(q("reload"))
    }

    pub async fn setting(&self, name: &str) -> Result<String, LocalError> {
        let row = self
            .client
            .query_one("SELECT current_setting($1)", &[&name])
            .await
            .map_err(q("read a setting"))?;
        row.try_get(0).map_err(q("decode a result"))
    }

    /// `synchronous_standby_names`, reloaded.
    pub async fn set_standby_names(&self, value: &str) -> Result<(), LocalError> {
        if self.setting("synchronous_standby_names").await? == value {
            return Ok(());
        }
        tracing::info!("Setting synchronous_standby_names to '{value}'");
        self.alter_system("synchronous_standby_names", value).await
    }

    /// No synchronous replication, and release the commits waiting for it.
    pub async fn disable_sync_rep(&self) -> Result<(), LocalError> {
        self.set_standby_names("").await?;
        self.client
            .batch_execute(
                "SELECT pg_cancel_backend(pid) FROM pg_stat_activity WHERE wait_event = 'SyncRep'",
            )
            .await
            .map_err(q("cancel SyncRep waits"))
    }

    pub async fn set_read_only(&self, on: bool) -> Result<(), LocalError> {
        let value = if on { "on" } else { "off" };
        if self.setting("default_transaction_read_only").await? == value {
            return Ok(());
        }
        tracing::info!("Setting default_transaction_read_only to {value}");
        self.alter_system("default_transaction_read_only", value)
            .await
    }

    pub async fn checkpoint(&self) -> Result<(), LocalError> {
        self.client
            .batch_execute("CHECKPOINT")
            .await
            .map_err(q("CHECKPOINT"))
    }

    pub async fn in_recovery(&self) -> Result<bool, LocalError> {
        let row = self
            .client
            .query_one("SELECT pg_is_in_recovery()", &[])
            .await
            .map_err(q("pg_is_in_recovery"))?;
        row.try_get(0).map_err(q("decode a result"))
    }

    /// Leave recovery and wait for it.
    pub async fn promote(&self) -> Result<(), LocalError> {
        if !self.in_recovery().await? {
            return Ok(());
        }
        tracing::info!("Promoting Postgres");
        // pg_promote(wait => true) looks every 100 ms: a failover's write
        // gap is measured in those, so we look every 10 ms ourselves.
        self.client
            .batch_execute("SELECT pg_promote(wait => false)")
            .await
            .map_err(q("pg_promote"))?;
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        let mut polls = 0u32;
        while self.in_recovery().await? {
            if std::time::Instant::now() >= deadline {
                return Err(LocalError::StillInRecovery);
            }
            polls += 1;
            if polls.is_multiple_of(PROMOTE_NUDGE_POLLS) {
                // The startup process can take the request and then sleep
                // `wal_retrieve_retry_interval` (1 s) before acting on it,
                // when its WAL receiver died just before (the old primary
                // stopped): a switchover's write gap went from 0.3 s to
                // 1.3 s. A reload wakes it without a second request.
                self.client
                    .batch_execute("SELECT pg_reload_conf()")
                    .await
                    .map_err(q("pg_reload_conf"))?;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        Ok(())
    }

    /// The roles of a data node: the health-check role and the replication
    /// role.
    pub async fn create_roles(&self, replication_password: &str) -> Result<(), LocalError> {
        let pw = if replication_password.is_empty() {
            String::new()
        } else {
            format!(" PASSWORD '{}'", replication_password.replace('\'', "''"))
        };
        self.client
            .batch_execute(&format!(
                "DO $$ BEGIN
                   IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'pgautofailover_monitor') THEN
                     CREATE ROLE pgautofailover_monitor WITH LOGIN CONNECTION LIMIT 1 PASSWORD 'pgautofailover_monitor';
                   END IF;
                   IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'pgautofailover_replicator') THEN
                     CREATE ROLE pgautofailover_replicator WITH LOGIN SUPERUSER REPLICATION{pw};
                   END IF;
                 END $$"
            ))
            .await
            .map_err(q("create roles"))
    }

    /// `--username`: the application's superuser, created when missing.
    pub async fn create_superuser(&self, name: &str) -> Result<(), LocalError> {
        let exists = self
            .client
            .query_opt("SELECT 1 FROM pg_roles WHERE rolname = $1", &[&name])
            .await
            .map_err(q("read pg_roles"))?
            .is_some();
        if exists {
            return Ok(());
        }
        self.client
            .batch_execute(&format!("CREATE ROLE {} WITH LOGIN SUPERUSER", ident(name)))
            .await
            .map_err(q("CREATE ROLE"))
    }

    pub async fn create_database(&self, dbname: &str, owner: &str) -> Result<(), LocalError> {
        let exists = self
            .client
            .query_opt("SELECT 1 FROM pg_database WHERE datname = $1", &[&dbname])
            .await
            .map_err(q("read pg_database"))?
            .is_some();
        if exists {
            return Ok(());
        }
        self.client
            .batch_execute(&format!(
                "CREATE DATABASE {} OWNER {}",
                ident(dbname),
                ident(owner)
            ))
            .await
            .map_err(q("CREATE DATABASE"))
    }

    /// Create a physical slot for each of `ids`, drop our inactive slots of
    /// other nodes.
    pub async fn manage_slots(&self, ids: &[i64]) -> Result<(), LocalError> {
        let names: Vec<String> = ids
            .iter()
            .map(|id| pgaf_fsm::standby_names::standby_name(*id))
            .collect();
        self.client
            .execute(
                "SELECT pg_create_physical_replication_slot(n, true)
                   FROM unnest($1::text[]) n
                  WHERE n NOT IN (SELECT slot_name FROM pg_replication_slots)",
                &[&names],
            )
            .await
            .map_err(q("create replication slots"))?;
        self.client
            .execute(
                "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots
                  WHERE slot_name ~ '^pgautofailover_standby_' AND NOT active
                    AND slot_type = 'physical' AND NOT (slot_name = ANY($1::text[]))",
                &[&names],
            )
            .await
            .map_err(q("drop replication slots"))?;
        Ok(())
    }

    pub async fn drop_all_slots(&self) -> Result<(), LocalError> {
        self.client
            .batch_execute(
                "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots
                  WHERE slot_name ~ '^pgautofailover_standby_' AND NOT active",
            )
            .await
            .map_err(q("drop replication slots"))
    }

    /// A synchronous standby flushed at least `target`.
    pub async fn sync_standby_reached(&self, target: Lsn) -> Result<bool, LocalError> {
        let row = self
            .client
            .query_one(
                "SELECT count(*) FROM pg_stat_replication
                  WHERE application_name ~ '^pgautofailover_standby_'
                    AND sync_state IN ('sync', 'quorum') AND flush_lsn >= $1::text::pg_lsn",
                &[&target.to_string()],
            )
            .await
            .map_err(q("read pg_stat_replication"))?;
        Ok(row.try_get::<_, i64>(0).map_err(q("decode a result"))? > 0)
    }

    pub async fn current_lsn(&self) -> Result<Lsn, LocalError> {
        let row = self
            .client
            .query_one("SELECT pg_current_wal_flush_lsn()::text", &[])
            .await
            .map_err(q("pg_current_wal_flush_lsn"))?;
        Ok(row
            .try_get::<_, String>(0)
            .map_err(q("decode a result"))?
            .parse()
            .unwrap_or(Lsn::ZERO))
    }

    pub async fn replay_lsn(&self) -> Result<Lsn, LocalError> {
        let row = self
            .client
            .query_one(
                "SELECT coalesce(pg_last_wal_replay_lsn()::text, '0/0')",
                &[],
            )
            .await
            .map_err(q("pg_last_wal_replay_lsn"))?;
        Ok(row
            .try_get::<_, String>(0)
            .map_err(q("decode a result"))?
            .parse()
            .unwrap_or(Lsn::ZERO))
    }

    /// The pid of a standby's walreceiver while it streams.
    pub async fn streaming_receiver(&self) -> Result<Option<i32>, LocalError> {
        let row = self
            .client
            .query_opt(
                "SELECT pid FROM pg_stat_wal_receiver WHERE status = 'streaming'",
                &[],
            )
            .await
            .map_err(q("read pg_stat_wal_receiver"))?;
        row.map(|r| r.try_get::<_, i32>(0).map_err(q("decode a result")))
            .transpose()
    }

    /// A standby's walreceiver streams from an upstream.
    pub async fn streaming(&self) -> Result<bool, LocalError> {
        let row = self
            .client
            .query_one(
                "SELECT count(*) FROM pg_stat_wal_receiver WHERE status = 'streaming'",
                &[],
            )
            .await
            .map_err(q("read pg_stat_wal_receiver"))?;
        Ok(row.try_get::<_, i64>(0).map_err(q("decode a result"))? > 0)
    }
}
