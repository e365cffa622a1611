//! The pg_auto_failover state machine, shared by the monitor extension, the
//! keeper (`pg_autoctl`) and the proxy. Pure functions only: no I/O, no
//! async, no pgrx.
//!
//! Layout:
//! * [`state`]: the 22 node states and their classification;
//! * [`lsn`]: WAL positions;
//! * [`node`]: a node as the monitor knows it, its formation, its group;
//! * [`settings`]: thresholds, timeouts and the clock of one evaluation;
//! * [`health`]: the health and data predicates;
//! * `rules`, `primary`, `election`: the group state machine (private; run
//!   through [`api`]);
//! * [`api`]: the monitor's operations (`node_active`, `register_node`,
//!   operator actions, health checks) as functions over a group snapshot;
//! * [`effect`]: log lines, events, notices and errors they produce;
//! * [`durability`]: which of the monitor's writes may commit without
//!   waiting for the WAL flush;
//! * [`standby_names`]: the `synchronous_standby_names` value;
//! * [`keeper`]: the keeper's transition table and its abstract actions;
//! * [`notify`]: the `state` notification payload.

pub mod api;
pub mod durability;
pub mod effect;
mod election;
pub mod health;
pub mod keeper;
pub mod lsn;
mod machine;
pub mod node;
pub mod notify;
mod primary;
mod rules;
pub mod settings;
pub mod standby_names;
pub mod state;

pub use effect::{Effect, MonitorError, NoticeLevel, SqlState};
pub use lsn::Lsn;
pub use node::{ms, Formation, FormationKind, Group, Health, Node, NodeRef, Timestamp};
pub use settings::{Context, Settings};
pub use state::NodeState;
