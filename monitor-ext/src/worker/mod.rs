//! The monitor's background processes:
//! * the launcher, a static worker registered in `_PG_init` without a
//!   database, which waits quietly for database `pg_auto_failover` to exist
//!   and then starts (and restarts) the monitor worker in it;
//! * the monitor worker ([`main_loop`]), which runs the health checks and,
//!   every `pgautofailover.evaluation_period`, evaluates every group.
//!
//! Files: [`txn`] (transactions that survive errors), [`monitor`] (what the
//! worker reads and writes), [`socket`] (non-blocking sockets), [`round`]
//! (one round of health checks), [`main_loop`].

mod main_loop;
mod monitor;
mod round;
mod socket;
mod txn;

use pgrx::bgworkers::{
    BackgroundWorker, BackgroundWorkerBuilder, DynamicBackgroundWorker, SignalWakeFlags,
};
use pgrx::prelude::*;
use std::time::Duration;

/// The database the monitor lives in.
pub const DATABASE: &std::ffi::CStr = c"pg_auto_failover";

/// Register the launcher (from `_PG_init`).
pub fn register() {
    BackgroundWorkerBuilder::new("pg_auto_failover monitor")
        .set_type("pgautofailover")
        .set_library("pgautofailover")
        .set_function("pgaf_launcher_main")
        .enable_spi_access()
        .set_restart_time(Some(Duration::from_secs(1)))
        .load();
}

/// The launcher's entry point.
#[pg_guard]
#[unsafe(no_mangle)]
pub extern "C-unwind" fn pgaf_launcher_main(_arg: pg_sys::Datum) {
    BackgroundWorker::attach_signal_handlers(SignalWakeFlags::SIGHUP | SignalWakeFlags::SIGTERM);
    // No database: only the shared catalogs (pg_database) are readable.
    BackgroundWorker::connect_worker_to_spi(None, None);
    let mut worker: Option<DynamicBackgroundWorker> = None;
    while BackgroundWorker::wait_latch(Some(Duration::from_secs(1))) {
        if BackgroundWorker::sighup_received() {
            // SAFETY: reloading the configuration file from the main loop.
            unsafe { pg_sys::ProcessConfigFile(pg_sys::GucContext::PGC_SIGHUP) };
        }
        let running = worker.as_ref().is_some_and(|w| w.pid().is_ok());
        if running {
            continue;
        }
        if worker.take().is_some() {
            pgrx::log!("pg_auto_failover monitor worker stopped, starting it again");
        }
        let Some(Some(oid)) = txn::run(|| database_oid(DATABASE)) else {
            continue;
        };
        let started = BackgroundWorkerBuilder::new("pg_auto_failover monitor worker")
            .set_type("pgautofailover")
            .set_library("pgautofailover")
            .set_function("pgaf_monitor_main")
            .enable_spi_access()
            .set_argument(Some(pg_sys::Datum::from(oid)))
            // SAFETY: a plain read of this process's pid.
            .set_notify_pid(unsafe { pg_sys::MyProcPid })
            .load_dynamic();
        match started {
            Ok(w) => {
                let _ = w.wait_for_startup();
                worker = Some(w);
            }
            Err(_) => pgrx::warning!(
                "pg_auto_failover could not start its monitor worker; consider raising max_worker_processes"
            ),
        }
    }
    if let Some(w) = worker {
        let _ = w.terminate();
    }
}

/// The oid of database `name`, by a sequential scan of `pg_database` (the
/// launcher has no database, so no index of pg_class can be read).
fn database_oid(name: &std::ffi::CStr) -> Option<pg_sys::Oid> {
    let lock = pg_sys::AccessShareLock as pg_sys::LOCKMODE;
    // SAFETY: called inside a transaction; the scan is opened and closed
    // here, and tuples are only read while the scan is open.
    unsafe {
        let rel = pg_sys::table_open(pg_sys::DatabaseRelationId, lock);
        let scan = pg_sys::table_beginscan_catalog(rel, 0, std::ptr::null_mut());
        let mut found = None;
        loop {
            let tuple = pg_sys::heap_getnext(scan, pg_sys::ScanDirection::ForwardScanDirection);
            if tuple.is_null() {
                break;
            }
            let form = pg_sys::GETSTRUCT(tuple) as *const pg_sys::FormData_pg_database;
            let datname = std::ffi::CStr::from_ptr((*form).datname.data.as_ptr());
            if datname == name {
                found = Some((*form).oid);
                break;
            }
        }
        pg_sys::table_endscan(scan);
        pg_sys::table_close(rel, lock);
        found
    }
}

/// The monitor worker's entry point: `arg` is the database oid.
#[pg_guard]
#[unsafe(no_mangle)]
pub extern "C-unwind" fn pgaf_monitor_main(arg: pg_sys::Datum) {
    BackgroundWorker::attach_signal_handlers(SignalWakeFlags::SIGHUP | SignalWakeFlags::SIGTERM);
    let oid = pg_sys::Oid::from(arg.value() as u32);
    BackgroundWorker::connect_worker_to_spi_by_oid(Some(oid), None);
    main_loop::run();
}
