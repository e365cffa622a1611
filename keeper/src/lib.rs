//! `pg_autoctl`, the keeper: creates and runs the monitor and the Postgres
//! nodes, drives each node through the transitions of
//! [`pgaf_fsm::keeper`], and serves the operator commands.
//!
//! * [`cli`]: the command tree, options and exit codes;
//! * [`config`], [`ini`], [`state`], [`paths`], [`nodes_file`]: the files of
//!   a node;
//! * [`monitor`]: the client of the monitor's SQL API, over [`pgaf_pgconn`];
//! * [`pg`]: the local Postgres (programs, files, SQL, supervision);
//! * [`node`]: a Postgres node, its creation and its node-active loop;
//! * [`monitor_node`]: the monitor node;
//! * [`metrics`]: the Prometheus endpoints of the monitor and the keeper;
//! * [`net`]: this host's addresses and names;
//! * [`privileges`], [`logging`]: process set-up.

pub mod cli;
pub mod config;
pub mod ini;
pub mod logging;
pub mod metrics;
pub mod monitor;
pub mod monitor_node;
pub mod net;
pub mod node;
pub mod nodes_file;
pub mod paths;
pub mod pg;
pub mod pidfile;
pub mod privileges;
pub mod state;
