//! The extension version check every C entry point runs first. This library serves the identical SQL API of
//! versions 2.0, 2.1 and 2.2; the check is skipped when
//! `pgautofailover.enable_version_checks` is off.

use crate::error;
use pgaf_fsm::{MonitorError, SqlState};
use pgrx::spi::SpiClient;

/// The extension versions whose SQL API this library implements.
pub const ACCEPTED: [&str; 3] = ["2.0", "2.1", "2.2"];
/// What the library reports as its own version in error messages.
pub const LIBRARY_VERSION: &str = "2.2";

/// Check the installed extension version (cheap: `pg_extension`, not the
/// control-file scan behind `pg_available_extensions`).
pub fn check(client: &mut SpiClient<'_>) -> Result<(), MonitorError> {
    if !crate::guc::ENABLE_VERSION_CHECKS.get() {
        return Ok(());
    }
    let installed: Option<String> = crate::spi::run(
        client,
        "SELECT extversion::text FROM pg_catalog.pg_extension WHERE extname = 'pgautofailover'",
        Some(1),
        &[],
    )?
    .first()
    .get_one::<String>()
    .map_err(error::internal)?;
    match installed {
        Some(v) if ACCEPTED.contains(&v.as_str()) => Ok(()),
        other => Err(MonitorError::new(
            SqlState("55000"),
            "loaded \"pgautofailover\" library version differs from installed extension version",
        )
        .detail(format!(
            "Loaded library requires {}, but the installed extension version is {}.",
            LIBRARY_VERSION,
            other.unwrap_or_default()
        ))
        .hint("Run ALTER EXTENSION pgautofailover UPDATE and try again.")),
    }
}
