//! Transactions for the background worker: an `ERROR` inside one is logged
//! and rolled back instead of killing the worker.

use pgrx::pg_sys;
use pgrx::pg_sys::panic::CaughtError;
use pgrx::PgTryBuilder;
use std::panic::AssertUnwindSafe;

/// Run `body` in its own transaction; `None` if it raised an error (the
/// transaction is then rolled back).
pub fn run<R>(body: impl FnOnce() -> R) -> Option<R> {
    let body = AssertUnwindSafe(body);
    // SAFETY: the worker runs outside of any transaction between calls.
    unsafe {
        pg_sys::SetCurrentStatementStartTimestamp();
        pg_sys::StartTransactionCommand();
        pg_sys::PushActiveSnapshot(pg_sys::GetTransactionSnapshot());
    }
    let result = PgTryBuilder::new(AssertUnwindSafe(move || Some((body.0)())))
        .catch_others(|e| {
            let report = match &e {
                CaughtError::PostgresError(r) | CaughtError::ErrorReport(r) => r,
                CaughtError::RustPanic { ereport, .. } => ereport,
            };
            pgrx::warning!("pg_auto_failover monitor worker: {}", report.message());
            None
        })
        .execute();
    // SAFETY: ends the transaction started above, one way or the other.
    unsafe {
        if result.is_some() {
            pg_sys::PopActiveSnapshot();
            pg_sys::CommitTransactionCommand();
        } else {
            pg_sys::AbortCurrentTransaction();
        }
    }
    result
}
