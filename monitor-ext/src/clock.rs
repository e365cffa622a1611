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

/// When this monitor last started: the postmaster's start (`PgStartTime`),
/// or the crash recovery after a backend crashed, whichever is later. A
/// crash keeps the postmaster (and `PgStartTime`) but may lose the reports
/// that committed asynchronously (`pgaf_fsm::durability`), so it counts
/// as a restart: no lease expires and no health check counts from before
/// it. Postgres resets the cumulative statistics when it recovers from a
/// crash, and `pg_stat_bgwriter.stats_reset` records when. (An operator's
/// `pg_stat_reset_shared('bgwriter')` moves it too, which only delays
/// decisions as a restart would.)
pub fn pg_start_time() -> Timestamp {
    // SAFETY: a plain read of a global set once at postmaster start.
    let started = unsafe { pg_sys::PgStartTime };
    // SAFETY: returns a pointer into the statistics snapshot of this
    // backend (valid until the snapshot is cleared at transaction end), or
    // NULL; it is read at once.
    let reset = unsafe {
        let stats = pg_sys::pgstat_fetch_stat_bgwriter();
        if stats.is_null() {
            0
        } else {
            (*stats).stat_reset_timestamp
        }
    };
    from_pg(started.max(reset))
}

/// The evaluation context: clock plus settings from the GUCs.
pub fn context() -> pgaf_fsm::Context {
    pgaf_fsm::Context::new(now(), pg_start_time(), crate::guc::settings())
}
