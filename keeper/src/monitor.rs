//! The monitor's SQL API as the keeper and the CLI use it, and `LISTEN state` for notifications.

use futures_util::StreamExt;
use pgaf_fsm::{Lsn, NodeState};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_postgres::error::SqlState;
use tokio_postgres::{AsyncMessage, Client};

/// The extension versions this keeper speaks to.
pub const EXTENSION_VERSIONS: &[&str] = &["2.0", "2.1", "2.2"];

#[derive(Debug, thiserror::Error)]
pub enum MonitorError {
    #[error("cannot connect to the monitor at {uri}: {why}")]
    Connect { uri: String, why: String },
    #[error("monitor: {context}: {message}")]
    Sql {
        context: &'static str,
        code: Option<String>,
        message: String,
    },
    #[error(
        "the monitor runs pgautofailover extension version {0}, this pg_autoctl speaks {versions}",
        versions = EXTENSION_VERSIONS.join(", ")
    )]
    Version(String),
    #[error(
        "the monitor at {0} has no pgautofailover extension: is it a pg_auto_failover monitor?"
    )]
    NoExtension(String),
}

impl MonitorError {
    pub fn code(&self) -> Option<&str> {
        match self {
            MonitorError::Sql { code, .. } => code.as_deref(),
            _ => None,
        }
    }

    fn is(&self, state: &SqlState) -> bool {
        self.code() == Some(state.code())
    }

    /// The monitor does not know the node (any more): it was removed.
    pub fn is_unknown_node(&self) -> bool {
        self.is(&SqlState::UNDEFINED_OBJECT)
    }

    /// The monitor is busy with another registration or change of the
    /// group: try again in a moment.
    pub fn is_busy(&self) -> bool {
        self.is(&SqlState::OBJECT_IN_USE)
    }

    /// Another node of the group has another system identifier.
    pub fn is_other_system(&self) -> bool {
        self.is(&SqlState::EXCLUSION_VIOLATION)
    }
}

fn sql(context: &'static str) -> impl FnOnce(tokio_postgres::Error) -> MonitorError {
    move |e| {
        let code = e.code().map(|c| c.code().to_string());
        let message = match e.as_db_error() {
            Some(db) => {
                let mut m = db.message().to_string();
                if let Some(d) = db.detail() {
                    m.push_str(&format!(" ({d})"));
                }
                if let Some(h) = db.hint() {
                    m.push_str(&format!("; hint: {h}"));
                }
                m
            }
            None => e.to_string(),
        };
        MonitorError::Sql {
            context,
            code,
            message,
        }
    }
}

/// A node as `get_primary`, `get_other_nodes`, ... return it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeAddr {
    pub id: i64,
    pub name: String,
    pub host: String,
    pub port: u16,
    pub lsn: Lsn,
    pub is_primary: bool,
}

/// The reply to `node_active` / `register_node`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assigned {
    pub node_id: i64,
    pub group_id: i32,
    pub goal: NodeState,
    pub candidate_priority: i32,
    pub replication_quorum: bool,
    pub name: String,
    /// The lease granted with this reply (ours), in milliseconds.
    pub lease_timeout_ms: Option<i64>,
    pub fence_timeout_ms: Option<i64>,
}

/// `register_node`'s arguments.
#[derive(Debug, Clone)]
pub struct Registration<'a> {
    pub formation: &'a str,
    pub host: &'a str,
    pub port: u16,
    pub dbname: &'a str,
    pub name: &'a str,
    pub sysidentifier: i64,
    pub desired_node_id: i64,
    /// -1: the monitor chooses.
    pub desired_group_id: i32,
    pub initial_state: NodeState,
    pub candidate_priority: i32,
    pub replication_quorum: bool,
}

/// What the keeper reports with each call.
#[derive(Debug, Clone)]
pub struct Report {
    pub formation: String,
    pub node_id: i64,
    pub group_id: i32,
    pub state: NodeState,
    pub pg_is_running: bool,
    pub tli: i32,
    pub lsn: Lsn,
    pub rep_state: String,
    /// On a standby: the node its WAL receiver streams from (0: none) and
    /// how many ms ago it heard from it (-1: unknown).
    pub upstream_node_id: i64,
    pub upstream_age_ms: i32,
    /// On a primary: the standbys replying to it (`None`: not observed).
    pub streaming: Option<Vec<i64>>,
}

impl Report {
    /// The report of a node in `state` whose Postgres is running or not
    /// (`pg_is_running`, as the monitor should see it) and says `meta`
    /// when it could be asked. A standby's upstream is named when its
    /// address is among `others`; a primary lists the standbys `streaming`
    /// from it when they were observed.
    pub fn of(
        formation: &str,
        state: &crate::state::KeeperState,
        pg_is_running: bool,
        meta: Option<&crate::pg::local::Metadata>,
        others: &[NodeAddr],
        streaming: Option<Vec<i64>>,
    ) -> Report {
        let upstream = meta
            .and_then(|m| m.upstream.as_ref())
            .and_then(|(host, port, age)| {
                others
                    .iter()
                    .find(|n| &n.host == host && n.port == *port)
                    .map(|n| (n.id, *age))
            });
        Report {
            formation: formation.to_string(),
            node_id: state.node_id,
            group_id: state.group_id,
            state: state.current_role,
            pg_is_running,
            tli: meta.map_or(0, |m| m.tli),
            lsn: meta.map_or(Lsn::ZERO, |m| m.lsn),
            rep_state: meta.map(|m| m.sync_state.clone()).unwrap_or_default(),
            upstream_node_id: upstream.map_or(0, |u| u.0),
            upstream_age_ms: upstream.map_or(-1, |u| u.1),
            streaming,
        }
    }
}

/// Which `node_active` the monitor offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Api {
    /// Upstream's `node_active`: no lease.
    Plain,
    /// Our `node_active_lease` with upstream's 8 arguments.
    Lease,
    /// Our `node_active_lease` that also takes who streams from whom.
    LeaseStreams,
}

pub struct Monitor {
    client: Client,
    uri: String,
    api: Option<Api>,
}

impl Monitor {
    pub async fn connect(uri: &str, timeout: Duration) -> Result<Monitor, MonitorError> {
        let (client, conn) = pgaf_pgconn::connect(uri, "pg_autoctl", timeout)
            .await
            .map_err(|why| MonitorError::Connect {
                uri: pgaf_pgconn::redact(uri),
                why,
            })?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok(Monitor {
            client,
            uri: uri.to_string(),
            api: None,
        })
    }

    pub fn uri(&self) -> &str {
        &self.uri
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Check the installed extension version.
    pub async fn check_version(&self) -> Result<String, MonitorError> {
        let row = self
            .client
            .query_opt(
                "SELECT installed_version FROM pg_available_extensions WHERE name = 'pgautofailover'",
                &[],
            )
            .await
            .map_err(sql("read the extension version"))?;
        let version: Option<String> = match row {
            Some(r) => col(&r, 0, "read the extension version")?,
            None => None,
        };
        match version {
            None => Err(MonitorError::NoExtension(pgaf_pgconn::redact(&self.uri))),
            Some(v) if EXTENSION_VERSIONS.contains(&v.as_str()) => Ok(v),
            Some(v) => Err(MonitorError::Version(v)),
        }
    }

    pub async fn register(&self, r: &Registration<'_>) -> Result<Assigned, MonitorError> {
        let row = self
            .client
            .query_one(
                "SELECT assigned_node_id::bigint, assigned_group_id::int, assigned_group_state::text,
                        assigned_candidate_priority::int, assigned_replication_quorum::bool, assigned_node_name::text
                   FROM pgautofailover.register_node($1, $2, $3, $4::name, $5, $6, $7, $11,
                        $8::text::pgautofailover.replication_state, 'standalone', $9, $10, 'default')",
                &[
                    &r.formation,
                    &r.host,
                    &(r.port as i32),
                    &r.dbname,
                    &r.name,
                    &r.sysidentifier,
                    &r.desired_node_id,
                    &r.initial_state.as_str(),
                    &r.candidate_priority,
                    &r.replication_quorum,
                    &r.desired_group_id,
                ],
            )
            .await
            .map_err(sql("register_node"))?;
        let c = "register_node";
        Ok(Assigned {
            node_id: col(&row, 0, c)?,
            group_id: col(&row, 1, c)?,
            goal: parse_state(&col::<String>(&row, 2, c)?)?,
            candidate_priority: col(&row, 3, c)?,
            replication_quorum: col(&row, 4, c)?,
            name: col(&row, 5, c)?,
            lease_timeout_ms: None,
            fence_timeout_ms: None,
        })
    }

    /// `node_active_lease` when the monitor has it (ours), `node_active`
    /// otherwise (an upstream monitor: no lease).
    pub async fn node_active(&mut self, r: &Report) -> Result<Assigned, MonitorError> {
        let api = match self.api {
            Some(api) => api,
            None => {
                let row = self
                    .client
                    .query_one(
                        "SELECT max(p.pronargs)::int FROM pg_proc p
                           JOIN pg_namespace n ON n.oid = p.pronamespace
                          WHERE n.nspname = 'pgautofailover' AND p.proname = 'node_active_lease'",
                        &[],
                    )
                    .await
                    .map_err(sql("look for node_active_lease"))?;
                let api = match col::<Option<i32>>(&row, 0, "look for node_active_lease")? {
                    None => Api::Plain,
                    Some(n) if n >= 11 => Api::LeaseStreams,
                    Some(_) => Api::Lease,
                };
                self.api = Some(api);
                api
            }
        };
        let lease = api != Api::Plain;
        const OUT: &str =
            "assigned_node_id::bigint, assigned_group_id::int, assigned_group_state::text,
                    assigned_candidate_priority::int, assigned_replication_quorum::bool";
        const ARGS: &str =
            "$1, $2, $3, $4::text::pgautofailover.replication_state, $5, $6, $7::text::pg_lsn, $8";
        let query = match api {
            Api::Plain => format!("SELECT {OUT} FROM pgautofailover.node_active({ARGS})"),
            Api::Lease => format!(
                "SELECT {OUT}, lease_timeout_ms::bigint, fence_timeout_ms::bigint
                   FROM pgautofailover.node_active_lease({ARGS})"
            ),
            Api::LeaseStreams => format!(
                "SELECT {OUT}, lease_timeout_ms::bigint, fence_timeout_ms::bigint
                   FROM pgautofailover.node_active_lease({ARGS}, $9, $10, $11)"
            ),
        };
        let lsn = r.lsn.to_string();
        let state = r.state.as_str();
        let mut params: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> = vec![
            &r.formation,
            &r.node_id,
            &r.group_id,
            &state,
            &r.pg_is_running,
            &r.tli,
            &lsn,
            &r.rep_state,
        ];
        if api == Api::LeaseStreams {
            params.extend([
                &r.upstream_node_id as &(dyn tokio_postgres::types::ToSql + Sync),
                &r.upstream_age_ms,
                &r.streaming,
            ]);
        }
        let row = self
            .client
            .query_one(&query, &params)
            .await
            .map_err(sql("node_active"))?;
        let c = "node_active";
        Ok(Assigned {
            node_id: col(&row, 0, c)?,
            group_id: col(&row, 1, c)?,
            goal: parse_state(&col::<String>(&row, 2, c)?)?,
            candidate_priority: col(&row, 3, c)?,
            replication_quorum: col(&row, 4, c)?,
            name: String::new(),
            lease_timeout_ms: if lease { Some(col(&row, 5, c)?) } else { None },
            fence_timeout_ms: if lease { Some(col(&row, 6, c)?) } else { None },
        })
    }

    fn node_addr(row: &tokio_postgres::Row, c: &'static str) -> Result<NodeAddr, MonitorError> {
        let lsn: Option<String> = col(row, 4, c)?;
        let port: i32 = col(row, 3, c)?;
        Ok(NodeAddr {
            id: col(row, 0, c)?,
            name: col(row, 1, c)?,
            host: col(row, 2, c)?,
            port: u16::try_from(port).map_err(|_| MonitorError::Sql {
                context: c,
                code: None,
                message: format!("port {port} out of range"),
            })?,
            lsn: lsn.and_then(|l| l.parse().ok()).unwrap_or(Lsn::ZERO),
            is_primary: col(row, 5, c)?,
        })
    }

    pub async fn get_primary(
        &self,
        formation: &str,
        group: i32,
    ) -> Result<Option<NodeAddr>, MonitorError> {
        let row = self
            .client
            .query_opt(
                "SELECT primary_node_id::bigint, primary_name::text, primary_host::text, primary_port::int, NULL::text, true
                   FROM pgautofailover.get_primary($1, $2)",
                &[&formation, &group],
            )
            .await;
        match row {
            Ok(r) => r.map(|r| Monitor::node_addr(&r, "get_primary")).transpose(),
            // "group has no writable node right now"
            Err(e) if e.as_db_error().is_some() => Ok(None),
            Err(e) => Err(sql("get_primary")(e)),
        }
    }

    /// Rows of a set-returning node function (`get_other_nodes`,
    /// `get_nodes`, `get_most_advanced_standby`), given as `from`.
    async fn node_rows(
        &self,
        context: &'static str,
        from: &str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> Result<Vec<NodeAddr>, MonitorError> {
        let query = format!(
            "SELECT node_id::bigint, node_name::text, node_host::text, node_port::int,
                    node_lsn::text, node_is_primary::bool
               FROM {from}"
        );
        let rows = self
            .client
            .query(&query, params)
            .await
            .map_err(sql(context))?;
        rows.iter()
            .map(|r| Monitor::node_addr(r, context))
            .collect()
    }

    pub async fn get_other_nodes(&self, node_id: i64) -> Result<Vec<NodeAddr>, MonitorError> {
        self.node_rows(
            "get_other_nodes",
            "pgautofailover.get_other_nodes($1)",
            &[&node_id],
        )
        .await
    }

    pub async fn get_nodes(
        &self,
        formation: &str,
        group: i32,
    ) -> Result<Vec<NodeAddr>, MonitorError> {
        self.node_rows(
            "get_nodes",
            "pgautofailover.get_nodes($1, $2) ORDER BY node_id",
            &[&formation, &group],
        )
        .await
    }

    pub async fn most_advanced_standby(
        &self,
        formation: &str,
        group: i32,
    ) -> Result<Option<NodeAddr>, MonitorError> {
        let rows = self
            .node_rows(
                "get_most_advanced_standby",
                "pgautofailover.get_most_advanced_standby($1, $2)",
                &[&formation, &group],
            )
            .await?;
        Ok(rows.into_iter().next())
    }

    pub async fn standby_names(&self, formation: &str, group: i32) -> Result<String, MonitorError> {
        let row = self
            .client
            .query_one(
                "SELECT pgautofailover.synchronous_standby_names($1, $2)",
                &[&formation, &group],
            )
            .await
            .map_err(sql("synchronous_standby_names"))?;
        Ok(col::<Option<String>>(&row, 0, "synchronous_standby_names")?.unwrap_or_default())
    }

    pub async fn set_system_identifier(
        &self,
        node_id: i64,
        sysid: i64,
    ) -> Result<(), MonitorError> {
        self.client
            .execute(
                "SELECT pgautofailover.set_node_system_identifier($1, $2)",
                &[&node_id, &sysid],
            )
            .await
            .map_err(sql("set_node_system_identifier"))?;
        Ok(())
    }
}

/// Column `idx` of `row`, or an error naming the call.
fn col<'a, T: tokio_postgres::types::FromSql<'a>>(
    row: &'a tokio_postgres::Row,
    idx: usize,
    context: &'static str,
) -> Result<T, MonitorError> {
    row.try_get(idx).map_err(|e| MonitorError::Sql {
        context,
        code: None,
        message: format!("unexpected reply: {e}"),
    })
}

fn parse_state(s: &str) -> Result<NodeState, MonitorError> {
    s.parse().map_err(|_| MonitorError::Sql {
        context: "parse the goal state",
        code: None,
        message: format!("unknown state \"{s}\""),
    })
}

/// A dedicated connection listening to `channels`; notifications arrive on
/// the returned receiver as (channel, payload). The receiver closes when the
/// connection is lost.
pub async fn listen(
    uri: &str,
    channels: &[&str],
    timeout: Duration,
) -> Result<(Client, mpsc::UnboundedReceiver<(String, String)>), MonitorError> {
    let (client, mut conn) = pgaf_pgconn::connect(uri, "pg_autoctl listener", timeout)
        .await
        .map_err(|why| MonitorError::Connect {
            uri: pgaf_pgconn::redact(uri),
            why,
        })?;
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut stream = futures_util::stream::poll_fn(move |cx| conn.poll_message(cx));
        while let Some(msg) = stream.next().await {
            match msg {
                Ok(AsyncMessage::Notification(n)) => {
                    if tx
                        .send((n.channel().to_string(), n.payload().to_string()))
                        .is_err()
                    {
                        break;
                    }
                }
                Ok(_) => {}
                Err(_) => break,
            }
        }
    });
    let sql_text: String = channels.iter().map(|c| format!("LISTEN {c};")).collect();
    client
        .batch_execute(&sql_text)
        .await
        .map_err(sql("LISTEN"))?;
    Ok((client, rx))
}

#[cfg(test)]
mod tests {
    use super::MonitorError;

    #[test]
    fn sqlstates_have_names() {
        let e = |code: &str| MonitorError::Sql {
            context: "node_active",
            code: Some(code.to_string()),
            message: "m".into(),
        };
        assert!(e("42704").is_unknown_node());
        assert!(e("55006").is_busy());
        assert!(e("23P01").is_other_system());
        assert!(!e("55000").is_busy() && !e("55000").is_unknown_node());
    }

    #[test]
    fn a_report_names_the_upstream_it_knows() {
        use super::{NodeAddr, Report};
        let state = crate::state::KeeperState::new(2, 0);
        let meta = crate::pg::local::Metadata {
            in_recovery: true,
            lsn: pgaf_fsm::Lsn(0x3000060),
            tli: 4,
            sync_state: String::new(),
            system_identifier: 1,
            upstream: Some(("10.0.0.1".into(), 5432, 120)),
        };
        let primary = NodeAddr {
            id: 1,
            name: "node1".into(),
            host: "10.0.0.1".into(),
            port: 5432,
            lsn: pgaf_fsm::Lsn::ZERO,
            is_primary: true,
        };
        let r = Report::of("default", &state, true, Some(&meta), &[primary], None);
        assert_eq!((r.node_id, r.tli, r.lsn), (2, 4, meta.lsn));
        assert_eq!((r.upstream_node_id, r.upstream_age_ms), (1, 120));
        // Not among the nodes it knows, or Postgres not asked: none.
        let r = Report::of("default", &state, true, Some(&meta), &[], None);
        assert_eq!((r.upstream_node_id, r.upstream_age_ms), (0, -1));
        let r = Report::of("default", &state, false, None, &[], None);
        assert_eq!(
            (r.pg_is_running, r.tli, r.lsn),
            (false, 0, pgaf_fsm::Lsn::ZERO)
        );
    }
}
