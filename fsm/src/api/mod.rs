//! The monitor's operations as pure functions over a group snapshot: what
//! `node_active`, `register_node`, the operator functions and the health
//! checks do, minus the SQL. Each runs on a copy of the group and only
//! replaces it on success, so a failed call leaves the snapshot untouched,
//! exactly like a rolled-back transaction.

mod failover;
mod health;
mod maintenance;
mod node_active;
mod register;
mod remove;
mod settings;

pub use failover::{perform_failover, perform_promotion};
pub use health::{evaluate_group, set_health};
pub use maintenance::{start_maintenance, stop_maintenance};
pub use node_active::{node_active, Assignment, Report};
pub use register::{register_node, Registration};
pub use remove::remove_node;
pub use settings::{
    set_formation_number_sync_standbys, set_node_candidate_priority, set_node_replication_quorum,
};

use crate::effect::{Effect, Result};
use crate::machine::Machine;
use crate::node::Group;
use crate::settings::Context;

/// The result of an operation: its value and the effects to carry out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome<T> {
    pub value: T,
    pub effects: Vec<Effect>,
}

/// Run `f` on a copy of `group`; keep the copy only if `f` succeeds.
fn transaction<T>(
    ctx: &Context,
    group: &mut Group,
    f: impl FnOnce(&mut Machine<'_>) -> Result<T>,
) -> Result<Outcome<T>> {
    let mut copy = group.clone();
    let mut m = Machine::new(ctx, &mut copy);
    let value = f(&mut m)?;
    let effects = std::mem::take(&mut m.effects);
    *group = copy;
    Ok(Outcome { value, effects })
}
