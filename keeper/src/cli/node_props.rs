//! `pg_autoctl get|set node candidate-priority|replication-quorum|metadata`: a node's replication settings on the monitor, and
//! the name, host and port it is registered with (`get node metadata` is
//! ours: upstream only sets them).
//!
//! A change of the settings makes the primary apply them (it goes through
//! `apply_settings`); `set` waits for that, printing the transitions.
//! Refused, nothing changed, exit 1: a priority outside 0..100, a quorum
//! that is not a boolean, an unknown node, and a priority of 0 that leaves
//! the group without any failover candidate (writes would stay blocked
//! when the primary fails) unless `--allow-failover` is given.

use super::api::{self, col, NodeRow};
use super::exit::{self, CmdResult, Code, Failure};
use super::local_node::LocalNode;
use super::show::Target;
use super::transitions::Transitions;
use super::{Globals, PgdataArg};
use crate::config::Config;
use std::time::Duration;

/// How long `set` waits for the primary to apply a change.
const APPLY_WAIT: Duration = Duration::from_secs(60);

#[derive(Debug, Clone, clap::Args)]
pub struct NodeArgs {
    #[command(flatten)]
    pub target: Target,
    /// pg_auto_failover formation
    #[arg(long)]
    pub formation: Option<String>,
    /// pg_auto_failover node name, defaults to the local node
    #[arg(long)]
    pub name: Option<String>,
}

#[derive(Debug, Clone, clap::Args)]
pub struct SetPriorityArgs {
    #[command(flatten)]
    pub node: NodeArgs,
    /// Allow a priority of 0 that leaves the group without a failover
    /// candidate
    #[arg(long)]
    pub allow_failover: bool,
    /// The new candidate priority, from 0 (never promoted) to 100
    #[arg(value_name = "PRIORITY", allow_negative_numbers = true)]
    pub value: String,
}

#[derive(Debug, Clone, clap::Args)]
pub struct SetQuorumArgs {
    #[command(flatten)]
    pub node: NodeArgs,
    /// true if the node participates in the write quorum
    #[arg(value_name = "true|false", allow_hyphen_values = true)]
    pub value: String,
}

#[derive(Debug, Clone, clap::Args)]
pub struct MetadataArgs {
    #[command(flatten)]
    pub pgdata: PgdataArg,
    /// The node's new name
    #[arg(long)]
    pub name: Option<String>,
    /// The node's new hostname (the address other nodes use)
    #[arg(long)]
    pub hostname: Option<String>,
    /// The node's new Postgres port
    #[arg(long)]
    pub pgport: Option<u16>,
}

/// The primary applied the last change of settings: nobody is in
/// `apply_settings` and the primary reached its goal.
pub fn settings_applied(rows: &[NodeRow]) -> bool {
    !rows
        .iter()
        .any(|n| n.reported == "apply_settings" || n.assigned == "apply_settings")
        && rows
            .iter()
            .any(|n| n.is_writable_goal() && n.reported == n.assigned)
}

/// The candidate priority in `text`, or why it is not one.
pub fn parse_priority(text: &str) -> Result<i32, String> {
    match text.trim().parse::<i64>() {
        Ok(n) if (0..=100).contains(&n) => Ok(n as i32),
        Ok(n) => Err(format!(
            "candidate priority {n} is out of range: give an integer from 0 (never promoted) to 100"
        )),
        Err(_) => Err(format!(
            "candidate priority \"{text}\" is not an integer: give one from 0 (never promoted) to 100"
        )),
    }
}

/// A boolean as Postgres reads one, or why it is not one.
pub fn parse_bool(text: &str) -> Result<bool, String> {
    match text.trim().to_ascii_lowercase().as_str() {
        "true" | "t" | "yes" | "y" | "on" | "1" => Ok(true),
        "false" | "f" | "no" | "n" | "off" | "0" => Ok(false),
        _ => Err(format!(
            "replication quorum \"{text}\" is not a boolean: give true or false"
        )),
    }
}

/// Why setting `value` on `me` needs `--allow-failover`, if it does.
pub fn priority_refusal(me: &NodeRow, nodes: &[NodeRow], value: i32) -> Option<String> {
    let group: Vec<&NodeRow> = nodes.iter().filter(|n| n.group_id == me.group_id).collect();
    let primary = group.iter().find(|n| n.is_writable_goal())?;
    if value != 0 || me.node_id == primary.node_id || group.len() < 2 {
        return None;
    }
    let others_left = group
        .iter()
        .filter(|n| n.node_id != primary.node_id && n.node_id != me.node_id)
        .filter(|n| n.candidate_priority > 0)
        .count();
    if others_left > 0 || me.candidate_priority <= 0 {
        return None;
    }
    Some(format!(
        "candidate priority 0 on node \"{}\" leaves group {} without any failover candidate: \
         if the primary \"{}\" fails, writes stay blocked until an operator steps in. \
         Raise another node's priority first, or pass --allow-failover to do it anyway",
        me.name, me.group_id, primary.name
    ))
}

/// The node the command is about: `--name`, else the local node.
async fn resolve(
    a: &NodeArgs,
) -> Result<
    (
        super::show::Resolved,
        String,
        crate::monitor::Monitor,
        String,
    ),
    Failure,
> {
    let target = a.target.resolve()?;
    let formation = target.formation(&a.formation);
    let name = target.node_name(&a.name)?;
    let monitor = target.connect().await?;
    Ok((target, formation, monitor, name))
}

/// A node setting as `get`/`set` print it: the value alone, or with
/// `--json` an object `{"name": .., key: value}` (`name` for `get` only).
fn print_setting<V>(g: &Globals, name: Option<&str>, key: &str, value: V)
where
    V: std::fmt::Display + Into<serde_json::Value>,
{
    if g.json {
        let mut v = serde_json::Map::new();
        if let Some(name) = name {
            v.insert("name".into(), name.into());
        }
        v.insert(key.into(), value.into());
        println!("{}", super::json::pretty(&serde_json::Value::Object(v)));
    } else {
        println!("{value}");
    }
}

pub async fn get_priority(a: NodeArgs, g: Globals) -> CmdResult {
    let (_, formation, monitor, name) = resolve(&a).await?;
    let n = api::node_by_name(monitor.client(), &formation, &name).await?;
    print_setting(
        &g,
        Some(&n.name),
        "candidate-priority",
        n.candidate_priority,
    );
    Ok(())
}

pub async fn get_quorum(a: NodeArgs, g: Globals) -> CmdResult {
    let (_, formation, monitor, name) = resolve(&a).await?;
    let n = api::node_by_name(monitor.client(), &formation, &name).await?;
    print_setting(
        &g,
        Some(&n.name),
        "replication-quorum",
        n.replication_quorum,
    );
    Ok(())
}

pub async fn get_metadata(a: NodeArgs, g: Globals) -> CmdResult {
    let (_, formation, monitor, name) = resolve(&a).await?;
    let n = api::node_by_name(monitor.client(), &formation, &name).await?;
    if g.json {
        let v = serde_json::json!({
            "node_id": n.node_id,
            "group_id": n.group_id,
            "name": n.name,
            "hostname": n.host,
            "pgport": n.port,
        });
        println!("{}", super::json::pretty(&v));
    } else {
        println!(
            "node id:  {}\ngroup:    {}\nname:     {}\nhostname: {}\npgport:   {}",
            n.node_id, n.group_id, n.name, n.host, n.port
        );
    }
    Ok(())
}

/// Call `sql` (which returns a boolean) for node `name`, then wait for the
/// primary to apply it.
async fn change(
    target: &super::show::Resolved,
    c: &tokio_postgres::Client,
    formation: &str,
    me: &NodeRow,
    nodes: &[NodeRow],
    call: (
        &'static str,
        &str,
        &(dyn tokio_postgres::types::ToSql + Sync),
    ),
    g: Globals,
) -> CmdResult {
    let group: Vec<NodeRow> = nodes
        .iter()
        .filter(|n| n.group_id == me.group_id)
        .cloned()
        .collect();
    let mut t =
        Transitions::listen(&target.uri, formation, Some(me.group_id), &group, !g.json).await?;
    let (ctx, sql, value) = call;
    let row = c
        .query_one(sql, &[&formation, &me.name, value])
        .await
        .map_err(api::sql(ctx))?;
    if !col::<bool>(&row, 0, ctx)? {
        return Err(Failure::new(
            exit::MONITOR,
            anyhow::anyhow!("{ctx}: the monitor did not apply the change"),
        ));
    }
    if group.len() > 1 {
        t.start_table();
        t.wait_until(
            c,
            APPLY_WAIT,
            "Applying the new setting on the primary",
            settings_applied,
        )
        .await?;
    }
    Ok(())
}

pub async fn set_priority(a: SetPriorityArgs, g: Globals) -> CmdResult {
    let value = parse_priority(&a.value).map_err(Failure::usage)?;
    let (target, formation, monitor, name) = resolve(&a.node).await?;
    let c = monitor.client();
    let nodes = api::current_state(c, &formation, None).await?;
    let me = api::find_node(&nodes, &formation, &name)?;
    if !a.allow_failover {
        if let Some(why) = priority_refusal(&me, &nodes, value) {
            return Err(Failure::usage(why));
        }
    }
    change(
        &target,
        c,
        &formation,
        &me,
        &nodes,
        (
            "set_node_candidate_priority",
            "SELECT pgautofailover.set_node_candidate_priority($1, $2, $3)",
            &value,
        ),
        g,
    )
    .await?;
    print_setting(&g, None, "candidate-priority", value);
    Ok(())
}

pub async fn set_quorum(a: SetQuorumArgs, g: Globals) -> CmdResult {
    let value = parse_bool(&a.value).map_err(Failure::usage)?;
    let (target, formation, monitor, name) = resolve(&a.node).await?;
    let c = monitor.client();
    let nodes = api::current_state(c, &formation, None).await?;
    let me = api::find_node(&nodes, &formation, &name)?;
    change(
        &target,
        c,
        &formation,
        &me,
        &nodes,
        (
            "set_node_replication_quorum",
            "SELECT pgautofailover.set_node_replication_quorum($1, $2, $3)",
            &value,
        ),
        g,
    )
    .await?;
    print_setting(&g, None, "replication-quorum", value);
    Ok(())
}

pub async fn set_metadata(a: MetadataArgs, g: Globals) -> CmdResult {
    if a.name.is_none() && a.hostname.is_none() && a.pgport.is_none() {
        return Err(Failure::usage(
            "nothing to change: give --name, --hostname or --pgport",
        ));
    }
    if a.name.as_deref() == Some("") || a.hostname.as_deref() == Some("") {
        return Err(Failure::usage("--name and --hostname cannot be empty"));
    }
    let mut node = LocalNode::load(&a.pgdata, "set node metadata")?;
    let monitor = node.monitor().await?;
    let c = monitor.client();
    let (me, _) = node.on_monitor(c).await?;
    let name = a.name.clone().unwrap_or_else(|| me.name.clone());
    let host = a.hostname.clone().unwrap_or_else(|| me.host.clone());
    let port = a.pgport.map_or(me.port, i32::from);
    const CTX: &str = "update_node_metadata";
    c.query_one(
        "SELECT pgautofailover.update_node_metadata($1, $2, $3, $4)",
        &[&me.node_id, &name, &host, &port],
    )
    .await
    .map_err(api::sql(CTX))?;
    node.cfg.name = name.clone();
    node.cfg.hostname = host.clone();
    if let Some(p) = a.pgport {
        node.cfg.pg.port = p;
    }
    let cfg = Config::Keeper(node.cfg.clone());
    cfg.save(&node.paths.config).code(exit::BAD_CONFIG)?;
    tracing::info!(
        "Node {} is now registered as \"{name}\" at {host}:{port}",
        me.node_id
    );
    if let Some(info) = super::service_ctl::live_service(&node.paths.pid) {
        super::service_ctl::signal(info.pid, libc::SIGHUP).code(exit::INTERNAL_ERROR)?;
        tracing::info!(
            "Sent SIGHUP to the pg_autoctl service (pid {}) to reload its configuration",
            info.pid
        );
        if a.pgport.is_some_and(|p| i32::from(p) != me.port) {
            tracing::warn!(
                "Postgres keeps listening on port {} until the service is restarted (pg_autoctl stop, then pg_autoctl run)",
                me.port
            );
        }
    }
    if g.json {
        println!(
            "{}",
            super::json::pretty(&super::config_cmd::ini_json(&cfg.to_ini()))
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(id: i64, name: &str, state: &str, priority: i32) -> NodeRow {
        NodeRow {
            formation_kind: "pgsql".into(),
            name: name.into(),
            host: "127.0.0.1".into(),
            port: 6000 + id as i32,
            group_id: 0,
            node_id: id,
            reported: state.into(),
            assigned: state.into(),
            candidate_priority: priority,
            replication_quorum: true,
            tli: 1,
            lsn: "0/1".into(),
            health: 1,
        }
    }

    #[test]
    fn values_are_checked_before_anything_is_sent() {
        assert_eq!(parse_priority("0"), Ok(0));
        assert_eq!(parse_priority("100"), Ok(100));
        assert!(parse_priority("101").unwrap_err().contains("out of range"));
        assert!(parse_priority("-1").unwrap_err().contains("out of range"));
        assert!(parse_priority("high")
            .unwrap_err()
            .contains("not an integer"));
        assert_eq!(parse_bool("TRUE"), Ok(true));
        assert_eq!(parse_bool("off"), Ok(false));
        assert!(parse_bool("wrong quorum").is_err());
    }

    #[test]
    fn the_last_failover_candidate_needs_allow_failover() {
        let nodes = [
            node(1, "a", "primary", 50),
            node(2, "b", "secondary", 50),
            node(3, "c", "secondary", 0),
        ];
        let why = priority_refusal(&nodes[1], &nodes, 0).unwrap();
        assert!(why.contains("without any failover candidate"), "{why}");
        assert!(priority_refusal(&nodes[1], &nodes, 10).is_none());
        // Another candidate is left.
        assert!(priority_refusal(&nodes[2], &nodes, 0).is_none());
        // The primary's own priority does not decide its failover.
        assert!(priority_refusal(&nodes[0], &nodes, 0).is_none());
    }

    #[test]
    fn settings_are_applied_once_the_primary_is_back() {
        let mut nodes = vec![node(1, "a", "primary", 50), node(2, "b", "secondary", 50)];
        assert!(settings_applied(&nodes));
        nodes[0].assigned = "apply_settings".into();
        assert!(!settings_applied(&nodes));
        nodes[0].reported = "apply_settings".into();
        nodes[0].assigned = "primary".into();
        assert!(!settings_applied(&nodes));
    }
}
