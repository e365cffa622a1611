//! The common shape of every state-machine entry point: connect to SPI,
//! check the extension version, lock the formation row, load the group, run
//! a `pgaf_fsm::api` function, persist the difference, carry out the effects
//! in order, and let a mere refresh of observations commit without waiting
//! for the WAL flush. A [`MonitorError`] becomes an `ERROR` once SPI is released.

use crate::{catalog, clock, effects, error, persist, version};
use pgaf_fsm::api::Outcome;
use pgaf_fsm::{Context, Group, MonitorError};
use pgrx::pg_sys;
use pgrx::spi::{Spi, SpiClient};

pub type Result<T> = std::result::Result<T, MonitorError>;

/// Run `body` with an SPI connection after the version check; raise its
/// error, if any.
pub fn call<T>(body: impl FnOnce(&mut SpiClient<'_>) -> Result<T>) -> T {
    let result = Spi::connect_mut(|client| {
        version::check(client)?;
        body(client)
    });
    match result {
        Ok(v) => v,
        Err(e) => error::raise(&e),
    }
}

/// Lock `formation_id`, load `group_id`, run `f`, persist and apply effects.
/// `missing` builds the error for an unknown formation.
pub fn on_group<T>(
    client: &mut SpiClient<'_>,
    formation_id: &str,
    group_id: i32,
    missing: impl FnOnce() -> MonitorError,
    f: impl FnOnce(&Context, &mut Group) -> Result<Outcome<T>>,
) -> Result<T> {
    let Some(formation) = catalog::formation(client, formation_id, true)? else {
        return Err(missing());
    };
    let mut group = catalog::group(client, formation, group_id)?;
    let before = group.clone();
    let ctx = clock::context();
    let outcome = f(&ctx, &mut group)?;
    persist::group(client, &before, &group)?;
    effects::apply(client, &group.formation.id, &outcome.effects)?;
    // A report that only refreshes observations does not wait for the WAL
    // flush (why that is safe: fsm/src/durability.rs). Not inside a
    // caller's transaction block, whose other writes may matter.
    // SAFETY: reads the transaction state of this backend.
    let own_transaction = !unsafe { pg_sys::IsTransactionBlock() };
    if own_transaction && pgaf_fsm::durability::may_commit_asynchronously(&before, &group) {
        crate::spi::run(
            client,
            "SELECT pg_catalog.set_config('synchronous_commit', 'off', true)",
            None,
            &[],
        )?;
    }
    Ok(outcome.value)
}
