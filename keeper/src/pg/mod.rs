//! Postgres on this node: its binaries, the files we manage in PGDATA, the
//! supervised postmaster, the external tools (initdb, pg_basebackup,
//! pg_rewind) and SQL against the local instance; [`debian`] adopts the
//! clusters of `pg_createcluster`.

pub mod bin;
pub mod cert;
pub mod control;
pub mod debian;
pub mod files;
pub mod hba;
pub mod local;
pub mod process;
pub mod tools;

/// `PG_REGRESS_SOCK_DIR`, which upstream honours for nodes that share a
/// host (its own test suite runs every node in a network namespace of one
/// machine): unset, Postgres keeps its default socket directory; set to a
/// path, the postmaster's Unix socket goes there (`postgres -k`); set and
/// empty, Postgres opens no Unix socket at all and local connections use
/// TCP (`pg::local`).
pub fn socket_dir_override() -> Option<std::ffi::OsString> {
    std::env::var_os("PG_REGRESS_SOCK_DIR")
}
