//! The `pgautofailover.*` settings (all PGC_SIGHUP),
//! plus ours: the keeper lease timeouts, how long a standby vouches for its
//! primary, how soon a stalled standby is counted out, and the worker's
//! evaluation period (docs/failover.md).

use pgaf_fsm::Settings;
use pgaf_healthcheck::CheckConfig;
use pgrx::guc::{GucContext, GucFlags, GucRegistry, GucSetting};

pub static ENABLE_VERSION_CHECKS: GucSetting<bool> = GucSetting::<bool>::new(true);
pub static ENABLE_HEALTH_CHECKS: GucSetting<bool> = GucSetting::<bool>::new(true);
pub static HEALTH_CHECK_PERIOD: GucSetting<i32> = GucSetting::<i32>::new(5_000);
pub static HEALTH_CHECK_TIMEOUT: GucSetting<i32> = GucSetting::<i32>::new(5_000);
pub static HEALTH_CHECK_MAX_RETRIES: GucSetting<i32> = GucSetting::<i32>::new(2);
pub static HEALTH_CHECK_RETRY_DELAY: GucSetting<i32> = GucSetting::<i32>::new(2_000);
pub static ENABLE_SYNC_WAL_LOG_THRESHOLD: GucSetting<i32> = GucSetting::<i32>::new(16_777_216);
pub static PROMOTE_WAL_LOG_THRESHOLD: GucSetting<i32> = GucSetting::<i32>::new(16_777_216);
pub static PRIMARY_DEMOTE_TIMEOUT: GucSetting<i32> = GucSetting::<i32>::new(30_000);
pub static UNHEALTHY_TIMEOUT: GucSetting<i32> = GucSetting::<i32>::new(20_000);
pub static STARTUP_GRACE_PERIOD: GucSetting<i32> = GucSetting::<i32>::new(10_000);
pub static LEASE_TIMEOUT: GucSetting<i32> = GucSetting::<i32>::new(2_000);
pub static FENCE_TIMEOUT: GucSetting<i32> = GucSetting::<i32>::new(2_000);
pub static EVALUATION_PERIOD: GucSetting<i32> = GucSetting::<i32>::new(200);
pub static STANDBY_WITNESS_TIMEOUT: GucSetting<i32> = GucSetting::<i32>::new(2_000);
pub static REPLICATION_STALL_TIMEOUT: GucSetting<i32> = GucSetting::<i32>::new(500);

fn int(
    name: &'static std::ffi::CStr,
    description: &'static std::ffi::CStr,
    setting: &'static GucSetting<i32>,
    min: i32,
    max: i32,
    flags: GucFlags,
) {
    GucRegistry::define_int_guc(
        name,
        description,
        c"",
        setting,
        min,
        max,
        GucContext::Sighup,
        flags,
    );
}

/// Define every setting; called once from `_PG_init`.
pub fn define() {
    let ms = GucFlags::UNIT_MS;
    let none = GucFlags::default();
    GucRegistry::define_bool_guc(
        c"pgautofailover.enable_version_checks",
        c"Enable extension version compatibility checks",
        c"",
        &ENABLE_VERSION_CHECKS,
        GucContext::Sighup,
        GucFlags::NO_SHOW_ALL,
    );
    GucRegistry::define_bool_guc(
        c"pgautofailover.enable_health_checks",
        c"Enable background health checks",
        c"",
        &ENABLE_HEALTH_CHECKS,
        GucContext::Sighup,
        GucFlags::NO_SHOW_ALL,
    );
    int(
        c"pgautofailover.health_check_period",
        c"Duration between each check (in milliseconds).",
        &HEALTH_CHECK_PERIOD,
        1,
        i32::MAX,
        ms,
    );
    int(
        c"pgautofailover.health_check_timeout",
        c"Connect timeout (in milliseconds).",
        &HEALTH_CHECK_TIMEOUT,
        1,
        i32::MAX,
        ms,
    );
    int(
        c"pgautofailover.health_check_max_retries",
        c"Maximum number of re-tries before marking a node as failed.",
        &HEALTH_CHECK_MAX_RETRIES,
        1,
        100,
        none,
    );
    int(
        c"pgautofailover.health_check_retry_delay",
        c"Delay between consecutive retries.",
        &HEALTH_CHECK_RETRY_DELAY,
        1,
        i32::MAX,
        ms,
    );
    int(
        c"pgautofailover.enable_sync_wal_log_threshold",
        c"Don't enable synchronous replication until secondary xlog is within this many bytes of the primary's",
        &ENABLE_SYNC_WAL_LOG_THRESHOLD,
        1,
        i32::MAX,
        none,
    );
    int(
        c"pgautofailover.promote_wal_log_threshold",
        c"Don't promote secondary unless xlog is with this many bytes of the master",
        &PROMOTE_WAL_LOG_THRESHOLD,
        1,
        i32::MAX,
        none,
    );
    int(
        c"pgautofailover.primary_demote_timeout",
        c"Give the primary this long to drain before promoting the secondary",
        &PRIMARY_DEMOTE_TIMEOUT,
        1,
        i32::MAX,
        ms,
    );
    int(
        c"pgautofailover.node_considered_unhealthy_timeout",
        c"Mark node unhealthy if last ping was over this long ago",
        &UNHEALTHY_TIMEOUT,
        1,
        i32::MAX,
        ms,
    );
    int(
        c"pgautofailover.startup_grace_period",
        c"Wait for at least this much time after startup before initiating a failover.",
        &STARTUP_GRACE_PERIOD,
        1,
        i32::MAX,
        ms,
    );
    int(
        c"pgautofailover.lease_timeout",
        c"A lease-holding keeper that has not reported for this long has fenced its Postgres.",
        &LEASE_TIMEOUT,
        1,
        i32::MAX,
        ms,
    );
    int(
        c"pgautofailover.fence_timeout",
        c"How long after its standbys stopped streaming a lease-holding primary surely fenced itself.",
        &FENCE_TIMEOUT,
        1,
        i32::MAX,
        ms,
    );
    int(
        c"pgautofailover.standby_witness_timeout",
        c"A primary whose lease expired is alive while a standby heard from it less than this long ago.",
        &STANDBY_WITNESS_TIMEOUT,
        1,
        i32::MAX,
        ms,
    );
    int(
        c"pgautofailover.replication_stall_timeout",
        c"A secondary its primary has not seen replying for this long no longer counts as a synchronous standby.",
        &REPLICATION_STALL_TIMEOUT,
        1,
        i32::MAX,
        ms,
    );
    int(
        c"pgautofailover.evaluation_period",
        c"How often the monitor evaluates every group without waiting for a keeper (in milliseconds).",
        &EVALUATION_PERIOD,
        10,
        i32::MAX,
        ms,
    );
}

/// The state machine's settings as currently configured.
pub fn settings() -> Settings {
    Settings {
        unhealthy_timeout_ms: i64::from(UNHEALTHY_TIMEOUT.get()),
        startup_grace_period_ms: i64::from(STARTUP_GRACE_PERIOD.get()),
        primary_demote_timeout_ms: i64::from(PRIMARY_DEMOTE_TIMEOUT.get()),
        enable_sync_wal_log_threshold: i64::from(ENABLE_SYNC_WAL_LOG_THRESHOLD.get()),
        promote_wal_log_threshold: i64::from(PROMOTE_WAL_LOG_THRESHOLD.get()),
        lease_timeout_ms: i64::from(LEASE_TIMEOUT.get()),
        fence_timeout_ms: i64::from(FENCE_TIMEOUT.get()),
        standby_witness_ms: i64::from(STANDBY_WITNESS_TIMEOUT.get()),
        replication_stall_timeout_ms: i64::from(REPLICATION_STALL_TIMEOUT.get()),
    }
}

/// The health checks' settings as currently configured.
pub fn check_config() -> CheckConfig {
    CheckConfig {
        timeout_ms: u64::try_from(HEALTH_CHECK_TIMEOUT.get()).unwrap_or(5_000),
        max_retries: u32::try_from(HEALTH_CHECK_MAX_RETRIES.get()).unwrap_or(2),
        retry_delay_ms: u64::try_from(HEALTH_CHECK_RETRY_DELAY.get()).unwrap_or(2_000),
        ..CheckConfig::default()
    }
}
