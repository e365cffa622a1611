//! The `LANGUAGE C` functions of the SQL API, one file
//! per family. Each is a thin shim: read the arguments, run the matching
//! `pgaf_fsm::api` function through [`crate::operation`], build the result.

mod failover;
mod formation;
mod maintenance;
mod node_active;
mod nodes;
mod register;
mod remove;
mod replication;
