//! The pg_auto_failover monitor as a Postgres extension (`pgautofailover`).
//!
//! The state machine itself lives in the pure crate `pgaf-fsm`; this crate
//! only moves data between the catalog and it, and carries out what it
//! decides. Layout:
//! * `sql/`: the hand-written install and upgrade scripts (the catalog and
//!   every SQL signature, matching upstream 2.0 byte for byte);
//! * [`api`]: the C-language SQL functions, one file per family;
//! * [`operation`]: the common shape of those functions (lock, load, run the
//!   state machine, persist, carry out the effects);
//! * [`catalog`], [`persist`], [`effects`]: reading the group, writing back
//!   what changed, events and notifications;
//! * [`spi`]: queries with plans cached for the life of the backend;
//! * [`fcinfo`]: arguments and results of V1 functions;
//! * [`guc`], [`clock`], [`version`], [`error`]: settings, time, the
//!   extension version check, errors;
//! * [`worker`]: the background worker (health checks and the timer that
//!   evaluates every group).

use pgrx::prelude::*;

mod api;
mod catalog;
mod clock;
mod effects;
mod error;
mod fcinfo;
mod guc;
mod operation;
mod persist;
mod spi;
mod version;
mod worker;

pgrx::pg_module_magic!();

/// Library load: define the GUCs and register the background worker. Only
/// possible from `shared_preload_libraries`.
#[pg_guard]
pub extern "C-unwind" fn _PG_init() {
    // SAFETY: a plain read of a backend-global flag.
    if !unsafe { pg_sys::process_shared_preload_libraries_in_progress } {
        error::raise(
            &pgaf_fsm::MonitorError::new(
                pgaf_fsm::SqlState("55000"),
                "pgautofailover can only be loaded via shared_preload_libraries",
            )
            .hint(
                "Add pgautofailover to shared_preload_libraries configuration variable in postgresql.conf.",
            ),
        );
    }
    // pgrx appends a Rust backtrace to the DETAIL of SQL errors it re-raises
    // when backtraces are enabled in the environment; errors are part of our
    // API, so keep them exact. The postmaster is single-threaded here and
    // every backend inherits the variable.
    std::env::set_var("RUST_LIB_BACKTRACE", "0");
    guc::define();
    worker::register();
}
