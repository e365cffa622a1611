//! Queries through SPI with their plans cached for the life of the backend:
//! each statement is parsed and planned once (`SPI_prepare` +
//! `SPI_keepplan`), which is most of the cost of a heartbeat otherwise.
//! Plans are revalidated by Postgres when the catalog changes (e.g. the
//! extension is dropped and created again).
//!
//! Statements run as mutating (non read-only) SPI, so each one takes a new
//! snapshot: once the formation row is locked, the queries that follow see
//! what the transactions holding the lock before us committed.

use crate::error::internal;
use pgaf_fsm::MonitorError;
use pgrx::datum::DatumWithOid;
use pgrx::pg_sys::PgOid;
use pgrx::spi::{OwnedPreparedStatement, SpiClient, SpiTupleTable};
use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

thread_local! {
    static PLANS: RefCell<HashMap<&'static str, Rc<OwnedPreparedStatement>>> = RefCell::new(HashMap::new());
}

/// Run `sql` with `args`; the argument types of the first call fix the plan.
pub fn run<'c>(
    client: &mut SpiClient<'c>,
    sql: &'static str,
    limit: Option<i64>,
    args: &[DatumWithOid<'_>],
) -> Result<SpiTupleTable<'c>, MonitorError> {
    let cached = PLANS.with(|p| p.borrow().get(sql).cloned());
    let plan = match cached {
        Some(plan) => plan,
        None => {
            let types: Vec<PgOid> = args.iter().map(|a| PgOid::from(a.oid())).collect();
            let plan = Rc::new(client.prepare_mut(sql, &types).map_err(internal)?.keep());
            PLANS.with(|p| p.borrow_mut().insert(sql, plan.clone()));
            plan
        }
    };
    client.update(&*plan, limit, args).map_err(internal)
}
