//! The monitor calls of the operator commands (`perform`, `get`/`set`,
//! maintenance, `drop node`, `watch`, `show events|settings|standby-names`):
//! the same functions of the `pgautofailover` schema upstream's pg_autoctl
//! calls, with their errors kept whole (message, detail, hint) so that a
//! refusal from the monitor reaches the operator as the monitor wrote it.

use super::exit::{self, Failure};
use tokio_postgres::Client;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{context}: {message}{}{}", .detail.as_ref().map(|d| format!(" ({d})")).unwrap_or_default(), .hint.as_ref().map(|h| format!("; hint: {h}")).unwrap_or_default())]
    Sql {
        context: &'static str,
        code: Option<String>,
        message: String,
        detail: Option<String>,
        hint: Option<String>,
    },
}

impl ApiError {
    pub fn sqlstate(&self) -> Option<&str> {
        match self {
            ApiError::Sql { code, .. } => code.as_deref(),
        }
    }

    /// The exit code: a value or an object the monitor refuses (SQLSTATE
    /// classes 22 and 42) is a bad argument (1), anything else a monitor
    /// failure (6).
    pub fn exit_code(&self) -> i32 {
        match self.sqlstate() {
            Some(c) if c.starts_with("22") || c.starts_with("42") => exit::BAD_ARGS,
            _ => exit::MONITOR,
        }
    }
}

impl From<ApiError> for Failure {
    fn from(e: ApiError) -> Failure {
        Failure::new(e.exit_code(), e)
    }
}

/// Map a tokio-postgres error of the call `context`.
pub fn sql(context: &'static str) -> impl FnOnce(tokio_postgres::Error) -> ApiError {
    move |e| match e.as_db_error() {
        Some(db) => ApiError::Sql {
            context,
            code: Some(db.code().code().to_string()),
            message: db.message().to_string(),
            detail: db.detail().map(str::to_string),
            hint: db.hint().map(str::to_string),
        },
        None => ApiError::Sql {
            context,
            code: e.code().map(|c| c.code().to_string()),
            message: pgaf_pgconn::describe(&e),
            detail: None,
            hint: None,
        },
    }
}

/// A column of a row, or an error naming the call.
pub fn col<'a, T: tokio_postgres::types::FromSql<'a>>(
    row: &'a tokio_postgres::Row,
    idx: usize,
    context: &'static str,
) -> Result<T, ApiError> {
    row.try_get(idx).map_err(|e| ApiError::Sql {
        context,
        code: None,
        message: format!("unexpected reply from the monitor: {e}"),
        detail: None,
        hint: None,
    })
}

/// A node as `current_state()` describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeRow {
    pub formation_kind: String,
    pub name: String,
    pub host: String,
    pub port: i32,
    pub group_id: i32,
    pub node_id: i64,
    pub reported: String,
    pub assigned: String,
    pub candidate_priority: i32,
    pub replication_quorum: bool,
    pub tli: i32,
    pub lsn: String,
    /// 1 healthy, 0 unhealthy, -1 unknown.
    pub health: i32,
}

impl NodeRow {
    /// Reported and assigned are both `state`.
    pub fn is(&self, state: &str) -> bool {
        self.reported == state && self.assigned == state
    }

    /// The node takes writes, or is about to.
    pub fn is_writable_goal(&self) -> bool {
        self.assigned
            .parse::<pgaf_fsm::NodeState>()
            .is_ok_and(|s| s.can_take_writes())
    }

    pub fn host_port(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }
}

/// `current_state(formation[, group])`, ordered by group and node id.
pub async fn current_state(
    c: &Client,
    formation: &str,
    group: Option<i32>,
) -> Result<Vec<NodeRow>, ApiError> {
    const CTX: &str = "current_state";
    let cols =
        "formation_kind::text, nodename::text, nodehost::text, nodeport::int, group_id::int, \
                node_id::bigint, current_group_state::text, assigned_group_state::text, \
                candidate_priority::int, replication_quorum::bool, reported_tli::int, \
                reported_lsn::text, health::int";
    let rows = match group {
        Some(g) => {
            c.query(
                &format!("SELECT {cols} FROM pgautofailover.current_state($1, $2) ORDER BY group_id, node_id"),
                &[&formation, &g],
            )
            .await
        }
        None => {
            c.query(
                &format!("SELECT {cols} FROM pgautofailover.current_state($1) ORDER BY group_id, node_id"),
                &[&formation],
            )
            .await
        }
    }
    .map_err(sql(CTX))?;
    rows.iter()
        .map(|r| {
            Ok(NodeRow {
                formation_kind: col(r, 0, CTX)?,
                name: col(r, 1, CTX)?,
                host: col(r, 2, CTX)?,
                port: col(r, 3, CTX)?,
                group_id: col(r, 4, CTX)?,
                node_id: col(r, 5, CTX)?,
                reported: col(r, 6, CTX)?,
                assigned: col(r, 7, CTX)?,
                candidate_priority: col(r, 8, CTX)?,
                replication_quorum: col(r, 9, CTX)?,
                tli: col(r, 10, CTX)?,
                lsn: col(r, 11, CTX)?,
                health: col(r, 12, CTX)?,
            })
        })
        .collect()
}

/// `number_sync_standbys` of `formation`, `None` when it does not exist.
pub async fn number_sync_standbys(c: &Client, formation: &str) -> Result<Option<i32>, ApiError> {
    const CTX: &str = "read the formation";
    let row = c
        .query_opt(
            "SELECT number_sync_standbys FROM pgautofailover.formation WHERE formationid = $1",
            &[&formation],
        )
        .await
        .map_err(sql(CTX))?;
    row.map(|r| col(&r, 0, CTX)).transpose()
}

/// The group ids in use in `formation`.
pub async fn groups(c: &Client, formation: &str) -> Result<Vec<i32>, ApiError> {
    const CTX: &str = "list the groups";
    let rows = c
        .query(
            "SELECT DISTINCT groupid FROM pgautofailover.node WHERE formationid = $1 ORDER BY groupid",
            &[&formation],
        )
        .await
        .map_err(sql(CTX))?;
    rows.iter().map(|r| col(r, 0, CTX)).collect()
}

/// A refusal: an argument names something the monitor does not know.
pub fn unknown_node(name: &str, formation: &str, known: &[NodeRow]) -> Failure {
    let names: Vec<&str> = known.iter().map(|n| n.name.as_str()).collect();
    Failure::usage(format!(
        "node \"{name}\" is not registered in formation \"{formation}\"; its nodes are: {}. \
         Use --name with one of them (see pg_autoctl show state)",
        if names.is_empty() {
            "none".to_string()
        } else {
            names.join(", ")
        }
    ))
}

/// Which node `name` is, in `formation`: a refusal naming the known nodes
/// otherwise.
pub async fn node_by_name(c: &Client, formation: &str, name: &str) -> Result<NodeRow, Failure> {
    let nodes = current_state(c, formation, None).await?;
    find_node(&nodes, formation, name)
}

/// Node `name` among `nodes` (the current state of `formation`): a refusal
/// naming the known nodes otherwise.
pub fn find_node(nodes: &[NodeRow], formation: &str, name: &str) -> Result<NodeRow, Failure> {
    nodes
        .iter()
        .find(|n| n.name == name)
        .cloned()
        .ok_or_else(|| unknown_node(name, formation, nodes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_are_bad_arguments_other_failures_are_monitor_failures() {
        let e = |code: &str| ApiError::Sql {
            context: "x",
            code: Some(code.into()),
            message: "m".into(),
            detail: Some("d".into()),
            hint: None,
        };
        assert_eq!(e("22023").exit_code(), exit::BAD_ARGS);
        assert_eq!(e("42704").exit_code(), exit::BAD_ARGS);
        assert_eq!(e("55000").exit_code(), exit::MONITOR);
        assert_eq!(e("55000").to_string(), "x: m (d)");
    }
}
