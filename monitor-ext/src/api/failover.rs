//! `perform_failover` and `perform_promotion`.

use crate::catalog;
use crate::fcinfo::{scalar, v1_function, Args};
use crate::operation::{call, on_group};
use pgaf_fsm::api::{perform_failover, perform_promotion};
use pgaf_fsm::{MonitorError, SqlState};
use pgrx::pg_sys;

v1_function!(
    pg_finfo_pgaf_perform_failover,
    pgaf_perform_failover,
    failover
);
v1_function!(
    pg_finfo_pgaf_perform_promotion,
    pgaf_perform_promotion,
    promotion
);

fn unknown_formation(f: &str) -> MonitorError {
    MonitorError::new(
        SqlState::INVALID_PARAMETER_VALUE,
        format!("unknown formation \"{f}\""),
    )
}

fn failover(args: Args) -> pg_sys::Datum {
    let formation: String = args.get(0, "formation_id");
    let group: i32 = args.get(1, "group_id");
    call(|client| {
        on_group(
            client,
            &formation,
            group,
            || unknown_formation(&formation),
            perform_failover,
        )
    });
    pgrx::fcinfo::pg_return_void()
}

fn promotion(args: Args) -> pg_sys::Datum {
    let formation: String = args.get(0, "formation_id");
    let name: String = args.get(1, "node_name");
    let promoted = call(|client| {
        let Some(group) = catalog::group_of_name(client, &formation, &name)? else {
            return Err(MonitorError::new(
                SqlState::UNDEFINED_OBJECT,
                format!("node \"{name}\" is not registered in formation \"{formation}\""),
            ));
        };
        on_group(
            client,
            &formation,
            group,
            || unknown_formation(&formation),
            |ctx, g| perform_promotion(ctx, g, &name),
        )
    });
    scalar(promoted)
}
