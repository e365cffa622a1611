//! Node lookups and metadata: `get_primary` (the state machine's notion of
//! the group's primary) and `update_node_metadata`.

use crate::catalog;
use crate::fcinfo::{record, scalar, v1_function, Args, Value};
use crate::operation::call;
use pgaf_fsm::{MonitorError, SqlState};
use pgrx::pg_sys;

v1_function!(pg_finfo_pgaf_get_primary, pgaf_get_primary, get_primary);
v1_function!(
    pg_finfo_pgaf_update_node_metadata,
    pgaf_update_node_metadata,
    update_node_metadata
);

fn get_primary(args: Args) -> pg_sys::Datum {
    let formation: String = args.get(0, "formation_id");
    let group_id: i32 = args.get(1, "group_id");
    let primary = call(|client| {
        let no_primary =
            || MonitorError::new(SqlState("55000"), "group has no writable node right now");
        let Some(f) = catalog::formation(client, &formation, false)? else {
            return Err(no_primary());
        };
        let group = catalog::group(client, f, group_id)?;
        group.primary_or_demoted().cloned().ok_or_else(no_primary)
    });
    record(
        args,
        vec![
            Value::of(primary.id),
            Value::of(primary.name.as_str()),
            Value::of(primary.host.as_str()),
            Value::of(primary.port),
        ],
    )
}

fn update_node_metadata(args: Args) -> pg_sys::Datum {
    let Some(node_id) = args.opt::<i64>(0) else {
        crate::error::fail(
            SqlState::INVALID_PARAMETER_VALUE,
            "udpate_node_metadata requires a non-null nodeid",
        );
    };
    let name: Option<String> = args.opt(1);
    let host: Option<String> = args.opt(2);
    let port: Option<i32> = args.opt(3);
    scalar(call(|client| {
        let updated = crate::spi::run(
            client,
            "UPDATE pgautofailover.node \
                    SET nodename = coalesce($2, nodename), \
                        nodehost = coalesce($3, nodehost), \
                        nodeport = coalesce($4, nodeport) \
                  WHERE nodeid = $1 RETURNING 1",
            None,
            &[node_id.into(), name.into(), host.into(), port.into()],
        )?;
        if updated.is_empty() {
            return Err(MonitorError::new(
                SqlState::UNDEFINED_OBJECT,
                format!("node {node_id} is not registered"),
            ));
        }
        Ok(true)
    }))
}
