//! `pg_autoctl`, the keeper: creates and runs the monitor and the Postgres
//! nodes, drives each node through the transitions of
//! [`pgaf_fsm::keeper`], and serves the operator commands. The command
//! line and the node-active loop land here with the keeper issues.
