//! `pg_autoctl enable|disable maintenance`: take the
//! node in `--pgdata` out of the group's orchestration (its keeper then
//! leaves Postgres to the operator), and bring it back. Both follow the
//! group's state changes until the node got there.
//!
//! Refused without `--allow-failover`, nothing changed, exit 1:
//! maintenance on the primary (the monitor fails over to another node,
//! which interrupts writes), and maintenance on a standby the primary needs
//! to commit (`number_sync_standbys` would no longer be met: writes block).

use super::api::{self, col, NodeRow};
use super::exit::{CmdResult, Failure};
use super::local_node::LocalNode;
use super::transitions::Transitions;
use super::{Globals, PgdataArg};
use std::time::Duration;

#[derive(Debug, Clone, clap::Args)]
pub struct EnableArgs {
    #[command(flatten)]
    pub pgdata: PgdataArg,
    /// Allow maintenance even when it fails over from this node (the
    /// primary) or blocks writes until it ends
    #[arg(long)]
    pub allow_failover: bool,
    /// How many seconds to wait for the node to reach maintenance
    #[arg(long, default_value_t = 60, value_name = "SECONDS")]
    pub wait: u64,
}

#[derive(Debug, Clone, clap::Args)]
pub struct DisableArgs {
    #[command(flatten)]
    pub pgdata: PgdataArg,
    /// How many seconds to wait for the node to be back
    #[arg(long, default_value_t = 60, value_name = "SECONDS")]
    pub wait: u64,
}

/// The standbys the primary can count on to acknowledge commits.
fn sync_standbys(nodes: &[NodeRow]) -> Vec<&NodeRow> {
    nodes
        .iter()
        .filter(|n| {
            !n.is_writable_goal() && n.is("secondary") && n.replication_quorum && n.health != 0
        })
        .collect()
}

/// Why maintenance on `me` needs `--allow-failover`, if it does.
pub fn maintenance_refusal(me: &NodeRow, nodes: &[NodeRow], nss: i32) -> Option<String> {
    if me.is_writable_goal() {
        return Some(format!(
            "node \"{}\" is the primary of group {}: maintenance on it makes the monitor fail over \
             to another node, which interrupts writes. Run pg_autoctl perform switchover first, \
             or pass --allow-failover to fail over now",
            me.name, me.group_id
        ));
    }
    let syncs = sync_standbys(nodes);
    let me_sync = syncs.iter().any(|n| n.node_id == me.node_id);
    if nss > 0 && me_sync && syncs.len() as i32 <= nss {
        let primary = nodes
            .iter()
            .find(|n| n.is_writable_goal())
            .map_or("the primary".to_string(), |p| {
                format!("primary \"{}\"", p.name)
            });
        return Some(format!(
            "maintenance on node \"{}\" would block writes on {primary}: number-sync-standbys is {nss} \
             and only {} other standby would be left to acknowledge commits. Lower it first \
             (pg_autoctl set formation number-sync-standbys), bring another standby back, \
             or pass --allow-failover to block writes until maintenance ends",
            me.name,
            syncs.len() - 1
        ));
    }
    None
}

pub async fn enable(a: EnableArgs, g: Globals) -> CmdResult {
    let node = LocalNode::load(&a.pgdata, "enable maintenance")?;
    let monitor = node.monitor().await?;
    let c = monitor.client();
    let (me, nodes) = node.on_monitor(c).await?;
    if me.is("maintenance") {
        tracing::info!("Node \"{}\" is already in maintenance", me.name);
        return Ok(());
    }
    if !a.allow_failover {
        let nss = api::number_sync_standbys(c, &node.cfg.formation)
            .await?
            .unwrap_or(0);
        if let Some(why) = maintenance_refusal(&me, &nodes, nss) {
            return Err(Failure::usage(why));
        }
    }
    let mut t = Transitions::listen(
        &node.cfg.monitor,
        &node.cfg.formation,
        Some(me.group_id),
        &nodes,
        !g.json,
    )
    .await?;
    call(c, "start_maintenance", me.node_id).await?;
    t.start_table();
    let id = me.node_id;
    t.wait_until(
        c,
        Duration::from_secs(a.wait),
        &format!("Maintenance of node \"{}\"", me.name),
        |rows| rows.iter().any(|n| n.node_id == id && n.is("maintenance")),
    )
    .await?;
    tracing::info!("Node \"{}\" is now in maintenance", me.name);
    Ok(())
}

pub async fn disable(a: DisableArgs, g: Globals) -> CmdResult {
    let node = LocalNode::load(&a.pgdata, "disable maintenance")?;
    let monitor = node.monitor().await?;
    let c = monitor.client();
    let (me, nodes) = node.on_monitor(c).await?;
    let in_maintenance = |s: &str| {
        s.parse::<pgaf_fsm::NodeState>()
            .is_ok_and(|s| s.is_maintenance())
    };
    if !in_maintenance(&me.assigned) && !in_maintenance(&me.reported) {
        tracing::info!(
            "Node \"{}\" is not in maintenance (it is {})",
            me.name,
            me.reported
        );
        return Ok(());
    }
    let mut t = Transitions::listen(
        &node.cfg.monitor,
        &node.cfg.formation,
        Some(me.group_id),
        &nodes,
        !g.json,
    )
    .await?;
    call(c, "stop_maintenance", me.node_id).await?;
    t.start_table();
    let id = me.node_id;
    t.wait_until(
        c,
        Duration::from_secs(a.wait),
        &format!("The end of maintenance of node \"{}\"", me.name),
        |rows| {
            rows.iter().any(|n| {
                n.node_id == id && (n.is("secondary") || n.is("primary") || n.is("single"))
            })
        },
    )
    .await?;
    tracing::info!("Node \"{}\" is back in the group", me.name);
    Ok(())
}

/// `pgautofailover.<function>(node_id)`; false means the monitor does not
/// know the node.
async fn call(
    c: &tokio_postgres::Client,
    function: &'static str,
    node_id: i64,
) -> Result<(), Failure> {
    let row = c
        .query_one(
            &format!("SELECT pgautofailover.{function}($1)"),
            &[&node_id],
        )
        .await
        .map_err(api::sql(function))?;
    if !col::<bool>(&row, 0, function)? {
        return Err(Failure::usage(format!(
            "the monitor does not know node {node_id}: see pg_autoctl show state"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(id: i64, name: &str, state: &str) -> NodeRow {
        NodeRow {
            formation_kind: "pgsql".into(),
            name: name.into(),
            host: "127.0.0.1".into(),
            port: 6000 + id as i32,
            group_id: 0,
            node_id: id,
            reported: state.into(),
            assigned: state.into(),
            candidate_priority: 50,
            replication_quorum: true,
            tli: 1,
            lsn: "0/1".into(),
            health: 1,
        }
    }

    #[test]
    fn the_primary_needs_allow_failover() {
        let nodes = [node(1, "a", "primary"), node(2, "b", "secondary")];
        assert!(maintenance_refusal(&nodes[0], &nodes, 0)
            .unwrap()
            .contains("--allow-failover"));
        // A standby of a 2-node group: the primary goes on alone.
        assert!(maintenance_refusal(&nodes[1], &nodes, 0).is_none());
    }

    #[test]
    fn the_last_sync_standby_needs_allow_failover() {
        let mut nodes = vec![
            node(1, "a", "primary"),
            node(2, "b", "secondary"),
            node(3, "c", "secondary"),
        ];
        assert!(maintenance_refusal(&nodes[2], &nodes, 1).is_none());
        nodes[1] = node(2, "b", "maintenance");
        let why = maintenance_refusal(&nodes[2], &nodes, 1).unwrap();
        assert!(why.contains("block writes"), "{why}");
        // number_sync_standbys 0: the primary stops waiting for standbys.
        assert!(maintenance_refusal(&nodes[2], &nodes, 0).is_none());
        // A standby outside the quorum never blocks writes.
        nodes[2].replication_quorum = false;
        assert!(maintenance_refusal(&nodes[2], &nodes, 1).is_none());
    }
}
