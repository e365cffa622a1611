//! While the monitor is unreachable: ask the nodes themselves which one
//! takes writes.
//!
//! A monitor outage is no reason for an outage of new connections: the
//! keepers fence a primary that lost its lease unless every standby still
//! streams from it (keeper/src/node/lease.rs), so a node that answers as
//! a writable primary is the primary, and two never answer so for longer
//! than the fencing takes. Every `node_check_interval` while the monitor
//! is down, [`watch`] connects to every node of each followed group with
//! the `node_check` connection settings and asks
//! `pg_is_in_recovery()` and `default_transaction_read_only`; [`sole_writable`]
//! (pure) names the node when exactly one answers writable, and
//! [`GroupRoute::direct_verdict`] routes to it once the grace period is
//! over. None, or more than one: new connections are held, then refused,
//! as before. An empty `node_check` turns this off.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio_postgres::Client;
use tokio_util::sync::CancellationToken;

use super::MonitorStatus;
use crate::config::MonitorConfig;
use crate::route::{GroupRoute, NodeKey, NodeRow};

/// What a node answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Answer {
    /// Out of recovery and not read-only: it takes writes.
    Writable,
    /// A standby, or a primary that refuses writes.
    ReadOnly,
    /// No answer (refused, timed out, or the check could not log in).
    Unreachable,
}

/// The node to route writes to while the monitor is away: the only one
/// that answered writable.
pub(crate) fn sole_writable(answers: &[(NodeKey, Answer)]) -> Option<NodeKey> {
    let mut writable = answers.iter().filter(|(_, a)| *a == Answer::Writable);
    match (writable.next(), writable.next()) {
        (Some((k, _)), None) => Some(k.clone()),
        _ => None,
    }
}

/// The connection string for node `row` from the `node_check` settings.
fn conninfo(template: &str, row: &NodeRow) -> String {
    let host = row.host.replace('\\', "\\\\").replace('\'', "\\'");
    format!("host='{host}' port={} {template}", row.port)
}

/// Ask one node, over the connection kept for it (opened when missing).
async fn ask(
    template: &str,
    row: &NodeRow,
    conns: &mut HashMap<NodeKey, Client>,
    timeout: Duration,
) -> Answer {
    let key = row.key();
    if conns.get(&key).is_none_or(|c| c.is_closed()) {
        match pgaf_pgconn::connect(&conninfo(template, row), "pg_autoproxy", timeout).await {
            Ok((client, conn)) => {
                tokio::spawn(async move {
                    let _ = conn.await;
                });
                conns.insert(key.clone(), client);
            }
            Err(e) => {
                tracing::debug!(node = %row.name, "node check: cannot connect: {e}");
                conns.remove(&key);
                return Answer::Unreachable;
            }
        }
    }
    let Some(client) = conns.get(&key) else {
        return Answer::Unreachable;
    };
    let q = client.query_one(
        "SELECT NOT pg_is_in_recovery() \
            AND NOT current_setting('default_transaction_read_only')::bool",
        &[],
    );
    match tokio::time::timeout(timeout, q).await {
        Ok(Ok(row)) => match row.try_get::<_, bool>(0) {
            Ok(true) => Answer::Writable,
            Ok(false) => Answer::ReadOnly,
            Err(_) => Answer::Unreachable,
        },
        _ => {
            conns.remove(&key);
            Answer::Unreachable
        }
    }
}

/// Check the nodes of `groups` directly while the monitor is down, until
/// `stop`. Connections are dropped once the monitor is back.
pub(crate) async fn watch(
    config: MonitorConfig,
    groups: Vec<Arc<GroupRoute>>,
    status: Arc<MonitorStatus>,
    stop: CancellationToken,
) {
    if config.node_check.is_empty() {
        return;
    }
    let timeout = config.node_check_interval.max(Duration::from_millis(500));
    let mut conns: HashMap<NodeKey, Client> = HashMap::new();
    let mut last: HashMap<String, Option<NodeKey>> = HashMap::new();
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(config.node_check_interval) => {}
        }
        if status.is_up() {
            conns.clear();
            last.clear();
            continue;
        }
        for g in &groups {
            let rows = g.rows();
            let mut answers = Vec::with_capacity(rows.len());
            for r in &rows {
                answers.push((
                    r.key(),
                    ask(&config.node_check, r, &mut conns, timeout).await,
                ));
            }
            let verdict = sole_writable(&answers);
            let name = |k: &Option<NodeKey>| {
                k.as_ref()
                    .and_then(|k| rows.iter().find(|r| r.key() == *k))
                    .map_or("none".to_string(), |r| r.name.clone())
            };
            let previous = last.insert(g.key.to_string(), verdict.clone());
            if previous.as_ref() != Some(&verdict) {
                tracing::info!(
                    group = %g.key,
                    "monitor unreachable: the node that takes writes, as the nodes say: {}",
                    name(&verdict)
                );
            }
            let change = g.direct_verdict(verdict);
            if change.fenced_sessions > 0 {
                tracing::warn!(
                    group = %g.key,
                    sessions = change.fenced_sessions,
                    "closing sessions of a node that no longer takes writes"
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(id: i64) -> NodeKey {
        NodeKey {
            node_id: id,
            host: format!("h{id}"),
            port: 5432,
        }
    }

    #[test]
    fn exactly_one_writable_node_is_the_primary() {
        use Answer::*;
        assert_eq!(
            sole_writable(&[(key(1), Writable), (key(2), ReadOnly)]),
            Some(key(1))
        );
        assert_eq!(
            sole_writable(&[(key(1), Unreachable), (key(2), Writable)]),
            Some(key(2)),
            "a failover the proxy did not see"
        );
        assert_eq!(
            sole_writable(&[(key(1), Unreachable), (key(2), ReadOnly)]),
            None
        );
        assert_eq!(
            sole_writable(&[(key(1), Writable), (key(2), Writable)]),
            None,
            "two writable nodes: refuse rather than guess"
        );
        assert_eq!(sole_writable(&[]), None);
    }

    #[test]
    fn the_node_check_settings_follow_the_node() {
        let row = NodeRow {
            node_id: 1,
            name: "n".into(),
            host: "db'1".into(),
            port: 6000,
            group_id: 0,
            reported: pgaf_fsm::NodeState::Primary,
            goal: pgaf_fsm::NodeState::Primary,
            candidate_priority: 50,
            replication_quorum: true,
            tli: 1,
            lsn: pgaf_fsm::Lsn::ZERO,
            health: pgaf_fsm::Health::Good,
        };
        assert_eq!(
            conninfo("user=postgres dbname=postgres", &row),
            "host='db\\'1' port=6000 user=postgres dbname=postgres"
        );
    }
}
