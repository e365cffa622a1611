//! Postgres on this node: its binaries, the files we manage in PGDATA, the
//! supervised postmaster, the external tools (initdb, pg_basebackup,
//! pg_rewind) and SQL against the local instance.

pub mod bin;
pub mod cert;
pub mod control;
pub mod files;
pub mod hba;
pub mod local;
pub mod process;
pub mod tools;
