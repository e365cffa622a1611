//! What the keeper needs to know about the other nodes of its group: the
//! primary to follow, the most advanced standby, the standby names to apply
//! and the list of nodes. The monitor answers, or, when the node runs
//! without a monitor (`pg_autoctl.monitor = PG_AUTOCTL_DISABLED`), the
//! nodes file that `pg_autoctl do fsm nodes set` wrote
//! ([`crate::nodes_file`]), with `synchronous_standby_names = '*'`.

use super::actions::ActionError;
use super::Node;
use crate::monitor::NodeAddr;

/// Synchronous replication without a monitor: any standby acknowledges.
pub const ANY_STANDBY: &str = "*";

/// The primary of the group, as the monitor or the nodes file says.
pub async fn primary(node: &mut Node) -> Result<Option<NodeAddr>, ActionError> {
    if node.monitor_disabled() {
        node.refresh_others().await?;
        return match node.others.iter().find(|n| n.is_primary) {
            Some(p) => Ok(Some(p.clone())),
            None => Err(ActionError::NotYet(
                "the nodes file lists no primary: give the list of nodes with \
                 pg_autoctl do fsm nodes set <file>"
                    .into(),
            )),
        };
    }
    let (f, g) = (node.cfg.formation.clone(), node.state.group_id);
    Ok(node.monitor().await?.get_primary(&f, g).await?)
}

/// The standby with the most WAL, as the monitor or the nodes file says.
pub async fn most_advanced_standby(node: &mut Node) -> Result<Option<NodeAddr>, ActionError> {
    if node.monitor_disabled() {
        node.refresh_others().await?;
        return Ok(node
            .others
            .iter()
            .filter(|n| !n.is_primary)
            .max_by_key(|n| n.lsn)
            .cloned());
    }
    let (f, g) = (node.cfg.formation.clone(), node.state.group_id);
    Ok(node.monitor().await?.most_advanced_standby(&f, g).await?)
}

/// The `synchronous_standby_names` this primary should use.
pub async fn standby_names(node: &mut Node) -> Result<String, ActionError> {
    if node.monitor_disabled() {
        return Ok(ANY_STANDBY.into());
    }
    let (f, g) = (node.cfg.formation.clone(), node.state.group_id);
    Ok(node.monitor().await?.standby_names(&f, g).await?)
}
