//! `start_maintenance` and `stop_maintenance`:
//! both answer false for an unknown node.

use crate::catalog;
use crate::fcinfo::{scalar, v1_function, Args};
use crate::operation::{call, on_group};
use pgaf_fsm::api::{start_maintenance, stop_maintenance};
use pgaf_fsm::{MonitorError, SqlState};
use pgrx::pg_sys;

v1_function!(
    pg_finfo_pgaf_start_maintenance,
    pgaf_start_maintenance,
    start
);
v1_function!(pg_finfo_pgaf_stop_maintenance, pgaf_stop_maintenance, stop);

type Api = fn(
    &pgaf_fsm::Context,
    &mut pgaf_fsm::Group,
    i64,
) -> pgaf_fsm::effect::Result<pgaf_fsm::api::Outcome<bool>>;

fn run(args: Args, api: Api) -> pg_sys::Datum {
    let node_id: i64 = args.get(0, "node_id");
    let done = call(|client| {
        let Some((formation, group)) = catalog::node_location(client, node_id)? else {
            return Ok(false);
        };
        let gone = || {
            MonitorError::new(
                SqlState::UNDEFINED_OBJECT,
                format!("node {node_id} is not registered"),
            )
        };
        on_group(client, &formation, group, gone, |ctx, g| {
            api(ctx, g, node_id)
        })
    });
    scalar(done)
}

fn start(args: Args) -> pg_sys::Datum {
    run(args, start_maintenance)
}

fn stop(args: Args) -> pg_sys::Datum {
    run(args, stop_maintenance)
}
