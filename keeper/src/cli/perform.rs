//! `pg_autoctl perform failover|switchover|promotion`: ask the monitor to move the primary role, then follow the
//! group's state changes as the monitor notifies them until the new primary
//! is in place. Exit 12 (as upstream) when it is not within `--wait`.

use super::api::{self, col, NodeRow};
use super::exit::{self, CmdResult, Failure};
use super::show::Target;
use super::transitions::Transitions;
use super::Globals;
use std::time::Duration;

#[derive(Debug, clap::Subcommand)]
pub enum Perform {
    /// Perform a failover for given formation and group
    Failover(FailoverArgs),
    /// Perform a switchover for given formation and group
    Switchover(FailoverArgs),
    /// Perform a failover that promotes a target node
    Promotion(PromotionArgs),
}

impl Perform {
    pub(super) fn target(&self) -> &Target {
        match self {
            Perform::Failover(a) | Perform::Switchover(a) => &a.target,
            Perform::Promotion(a) => &a.target,
        }
    }
}

#[derive(Debug, Clone, clap::Args)]
pub struct FailoverArgs {
    #[command(flatten)]
    pub target: Target,
    /// Formation to target, defaults to the local node's, or 'default'
    #[arg(long)]
    pub formation: Option<String>,
    /// Group to target, defaults to the local node's, or the only one
    #[arg(long)]
    pub group: Option<i32>,
    /// How many seconds to wait for the new primary, 0 not to wait
    #[arg(long, default_value_t = 60, value_name = "SECONDS")]
    pub wait: u64,
}

#[derive(Debug, Clone, clap::Args)]
pub struct PromotionArgs {
    #[command(flatten)]
    pub target: Target,
    /// Formation to target, defaults to the local node's, or 'default'
    #[arg(long)]
    pub formation: Option<String>,
    /// Node name to promote, defaults to the local node
    #[arg(long)]
    pub name: Option<String>,
    /// How many seconds to wait for the promotion, 0 not to wait
    #[arg(long, default_value_t = 60, value_name = "SECONDS")]
    pub wait: u64,
}

pub async fn run(cmd: Perform, g: Globals) -> CmdResult {
    match cmd {
        Perform::Failover(a) | Perform::Switchover(a) => failover(a, g).await,
        Perform::Promotion(a) => promotion(a, g).await,
    }
}

fn primary(nodes: &[NodeRow]) -> Option<&NodeRow> {
    nodes.iter().find(|n| n.is_writable_goal())
}

async fn failover(a: FailoverArgs, g: Globals) -> CmdResult {
    let target = a.target.resolve()?;
    let formation = target.formation(&a.formation);
    let monitor = target.connect().await?;
    let c = monitor.client();
    // A formation without nodes: upstream's exit code (3), not a usage error.
    let group = target
        .group(c, &formation, a.group)
        .await
        .map_err(|f| Failure::new(exit::BAD_STATE, f.error))?;
    tracing::info!("Targeting group {group} in formation \"{formation}\"");
    let nodes = api::current_state(c, &formation, Some(group)).await?;
    let old = primary(&nodes).map(|n| n.node_id);
    let mut t = Transitions::listen(&target.uri, &formation, Some(group), &nodes, !g.json).await?;
    c.execute(
        "SELECT pgautofailover.perform_failover($1, $2)",
        &[&formation, &group],
    )
    .await
    .map_err(api::sql("perform_failover"))?;
    if a.wait == 0 {
        tracing::info!("The monitor started the failover; see pg_autoctl show state");
        return Ok(());
    }
    t.start_table();
    t.wait_until(
        c,
        Duration::from_secs(a.wait),
        "The failover to a new primary",
        |rows| {
            rows.iter()
                .any(|n| Some(n.node_id) != old && n.is("primary"))
        },
    )
    .await?;
    let now = api::current_state(c, &formation, Some(group)).await?;
    if let Some(p) = now.iter().find(|n| n.is("primary")) {
        tracing::info!(
            "Node {} \"{}\" ({}) is now the primary",
            p.node_id,
            p.name,
            p.host_port()
        );
    }
    Ok(())
}

async fn promotion(a: PromotionArgs, g: Globals) -> CmdResult {
    let target = a.target.resolve()?;
    let formation = target.formation(&a.formation);
    let name = target.node_name(&a.name)?;
    let monitor = target.connect().await?;
    let c = monitor.client();
    let node = api::node_by_name(c, &formation, &name).await?;
    let nodes = api::current_state(c, &formation, Some(node.group_id)).await?;
    let mut t = Transitions::listen(
        &target.uri,
        &formation,
        Some(node.group_id),
        &nodes,
        !g.json,
    )
    .await?;
    const CTX: &str = "perform_promotion";
    let row = c
        .query_one(
            "SELECT pgautofailover.perform_promotion($1, $2)",
            &[&formation, &name],
        )
        .await
        .map_err(api::sql(CTX))?;
    if !col::<bool>(&row, 0, CTX)? {
        tracing::info!(
            "Node \"{name}\" is already the primary of group {}",
            node.group_id
        );
        return Ok(());
    }
    if a.wait == 0 {
        tracing::info!("The monitor started promoting \"{name}\"; see pg_autoctl show state");
        return Ok(());
    }
    t.start_table();
    let id = node.node_id;
    t.wait_until(
        c,
        Duration::from_secs(a.wait),
        &format!("The promotion of node \"{name}\""),
        |rows| rows.iter().any(|n| n.node_id == id && n.is("primary")),
    )
    .await?;
    tracing::info!(
        "Node {id} \"{name}\" ({}) is now the primary",
        node.host_port()
    );
    Ok(())
}
