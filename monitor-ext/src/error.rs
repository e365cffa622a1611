//! Errors and notices raised to the client: a [`MonitorError`] becomes an
//! `ERROR` with exactly its SQLSTATE, message, detail and hint.

use pgaf_fsm::{MonitorError, NoticeLevel, SqlState};
use pgrx::pg_sys::panic::ErrorReport;
use pgrx::{PgLogLevel, PgSqlErrorCode};

/// `MAKE_SQLSTATE`: five characters packed six bits each.
pub fn sqlstate(code: SqlState) -> PgSqlErrorCode {
    let bytes = code.0.as_bytes();
    if bytes.len() != 5 {
        return PgSqlErrorCode::ERRCODE_INTERNAL_ERROR;
    }
    let mut packed: i32 = 0;
    for (i, b) in bytes.iter().enumerate() {
        packed += ((i32::from(*b) - i32::from(b'0')) & 0x3F) << (6 * i);
    }
    PgSqlErrorCode::from(packed)
}

fn report(
    level: PgLogLevel,
    code: SqlState,
    message: &str,
    detail: Option<&str>,
    hint: Option<&str>,
) {
    let mut r = ErrorReport::new(sqlstate(code), message.to_string(), "pgautofailover");
    if let Some(d) = detail {
        r = r.set_detail(d);
    }
    if let Some(h) = hint {
        r = r.set_hint(h);
    }
    r.report(level);
}

/// Raise `e` as an `ERROR`; does not return.
pub fn raise(e: &MonitorError) -> ! {
    report(
        PgLogLevel::ERROR,
        e.code,
        &e.message,
        e.detail.as_deref(),
        e.hint.as_deref(),
    );
    unreachable!("ereport(ERROR) returned")
}

/// Raise an `ERROR` built from a code and a message.
pub fn fail(code: SqlState, message: impl Into<String>) -> ! {
    raise(&MonitorError::new(code, message))
}

/// An internal failure (SPI misuse, unexpected catalog content).
pub fn internal(what: impl std::fmt::Display) -> MonitorError {
    MonitorError::new(SqlState::INTERNAL_ERROR, format!("pgautofailover: {what}"))
}

/// A NOTICE or WARNING for the client.
pub fn notice(level: NoticeLevel, code: SqlState, message: &str, detail: Option<&str>) {
    let level = match level {
        NoticeLevel::Notice => PgLogLevel::NOTICE,
        NoticeLevel::Warning => PgLogLevel::WARNING,
    };
    report(level, code, message, detail, None);
}
