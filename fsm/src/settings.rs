//! The monitor's settings (the `pgautofailover.*` GUCs
//! plus our lease settings) and the clock the state machine reads.

use crate::node::{ms, Timestamp};

/// Thresholds and timeouts, with upstream's defaults.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Settings {
    /// `pgautofailover.node_considered_unhealthy_timeout` (ms).
    pub unhealthy_timeout_ms: i64,
    /// `pgautofailover.startup_grace_period` (ms).
    pub startup_grace_period_ms: i64,
    /// `pgautofailover.primary_demote_timeout` (ms).
    pub primary_demote_timeout_ms: i64,
    /// `pgautofailover.enable_sync_wal_log_threshold` (bytes).
    pub enable_sync_wal_log_threshold: i64,
    /// `pgautofailover.promote_wal_log_threshold` (bytes).
    pub promote_wal_log_threshold: i64,
    /// `pgautofailover.lease_timeout` (ms): a lease-holding keeper that has not
    /// renewed its lease for this long has fenced its Postgres, unless every
    /// other node of its group still streams from it.
    pub lease_timeout_ms: i64,
    /// `pgautofailover.fence_timeout` (ms): how long after its last standby
    /// stopped streaming from it a lease-holding primary without a lease has
    /// surely fenced its Postgres.
    pub fence_timeout_ms: i64,
    /// `pgautofailover.standby_witness_timeout` (ms): a primary whose lease
    /// expired is still alive while a standby reports, in a fresh report,
    /// that its WAL receiver heard from it less than this long ago. Our
    /// standbys hear from their primary at least every 1.5 s
    /// (`wal_receiver_timeout` = 3 s makes them ask).
    pub standby_witness_ms: i64,
    /// `pgautofailover.replication_stall_timeout` (ms): a secondary its
    /// primary has not listed among the standbys replying to it for this
    /// long (while the primary reports) has stalled: it no longer counts
    /// as a synchronous standby, so that writes resume.
    pub replication_stall_timeout_ms: i64,
}

impl Default for Settings {
    fn default() -> Settings {
        Settings {
            unhealthy_timeout_ms: 20_000,
            startup_grace_period_ms: 10_000,
            primary_demote_timeout_ms: 30_000,
            enable_sync_wal_log_threshold: 16 * 1024 * 1024,
            promote_wal_log_threshold: 16 * 1024 * 1024,
            lease_timeout_ms: 2_000,
            fence_timeout_ms: 2_000,
            standby_witness_ms: 2_000,
            replication_stall_timeout_ms: 500,
        }
    }
}

/// Everything time-related the state machine reads for one evaluation.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Context {
    /// Wall clock now.
    pub now: Timestamp,
    /// When the monitor's Postgres started (`PgStartTime`).
    pub pg_start_time: Timestamp,
    pub settings: Settings,
}

impl Context {
    pub fn new(now: Timestamp, pg_start_time: Timestamp, settings: Settings) -> Context {
        Context {
            now,
            pg_start_time,
            settings,
        }
    }

    /// `TimestampDifferenceExceeds(from, now, millis)`: at least `millis` passed.
    pub fn elapsed(&self, from: Timestamp, millis: i64) -> bool {
        self.now - from >= ms(millis)
    }
}
