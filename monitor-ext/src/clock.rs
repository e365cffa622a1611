//! The monitor's clock for the state machine: microseconds since the Unix
//! epoch (Postgres counts from 2000-01-01).

use pgaf_fsm::Timestamp;
use pgrx::pg_sys;

/// Microseconds between 1970-01-01 and 2000-01-01.
pub const POSTGRES_EPOCH_US: i64 = 946_684_800 * 1_000_000;

/// A Postgres `TimestampTz` as a state-machine timestamp.
pub fn from_pg(ts: pg_sys::TimestampTz) -> Timestamp {
    ts + POSTGRES_EPOCH_US
}

/// A state-machine timestamp as a Postgres `TimestampTz`.
pub fn to_pg(ts: Timestamp) -> pg_sys::TimestampTz {
    ts - POSTGRES_EPOCH_US
}

/// Wall clock now (`GetCurrentTimestamp`, not the transaction start).
pub fn now() -> Timestamp {
    // SAFETY: reads the system clock.
    from_pg(unsafe { pg_sys::GetCurrentTimestamp() })
}

/// When the postmaster started (`PgStartTime`).
pub fn pg_start_time() -> Timestamp {
    // SAFETY: a plain read of a global set once at postmaster start.
    from_pg(unsafe { pg_sys::PgStartTime })
}

/// The evaluation context: clock plus settings from the GUCs.
pub fn context() -> pgaf_fsm::Context {
    pgaf_fsm::Context::new(now(), pg_start_time(), crate::guc::settings())
}
