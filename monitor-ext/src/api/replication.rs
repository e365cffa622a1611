//! Replication settings: candidate priority,
//! replication quorum, `number_sync_standbys`, and the
//! `synchronous_standby_names` the primary applies.

use crate::catalog;
use crate::fcinfo::{scalar, v1_function, Args};
use crate::operation::{call, on_group};
use pgaf_fsm::api::{
    set_formation_number_sync_standbys, set_node_candidate_priority, set_node_replication_quorum,
};
use pgaf_fsm::{standby_names, MonitorError, SqlState};
use pgrx::pg_sys;

v1_function!(
    pg_finfo_pgaf_set_node_candidate_priority,
    pgaf_set_node_candidate_priority,
    candidate_priority
);
v1_function!(
    pg_finfo_pgaf_set_node_replication_quorum,
    pgaf_set_node_replication_quorum,
    replication_quorum
);
v1_function!(
    pg_finfo_pgaf_set_formation_number_sync_standbys,
    pgaf_set_formation_number_sync_standbys,
    number_sync_standbys
);
v1_function!(
    pg_finfo_pgaf_synchronous_standby_names,
    pgaf_synchronous_standby_names,
    sync_names
);

fn unknown_formation(f: &str) -> MonitorError {
    MonitorError::new(
        SqlState::INVALID_PARAMETER_VALUE,
        format!("unknown formation \"{f}\""),
    )
}

fn unknown_node(f: &str, name: &str) -> MonitorError {
    MonitorError::new(
        SqlState::UNDEFINED_OBJECT,
        format!("node \"{name}\" is not registered in formation \"{f}\""),
    )
}

fn candidate_priority(args: Args) -> pg_sys::Datum {
    let formation: String = args.get(0, "formation_id");
    let name: String = args.get(1, "node_name");
    let priority: i32 = args.get(2, "candidate_priority");
    scalar(call(|client| {
        let group = catalog::group_of_name(client, &formation, &name)?
            .ok_or_else(|| unknown_node(&formation, &name))?;
        on_group(
            client,
            &formation,
            group,
            || unknown_formation(&formation),
            |ctx, g| set_node_candidate_priority(ctx, g, &name, priority),
        )
    }))
}

fn replication_quorum(args: Args) -> pg_sys::Datum {
    let formation: String = args.get(0, "formation_id");
    let name: String = args.get(1, "node_name");
    let quorum: bool = args.get(2, "replication_quorum");
    scalar(call(|client| {
        let group = catalog::group_of_name(client, &formation, &name)?
            .ok_or_else(|| unknown_node(&formation, &name))?;
        on_group(
            client,
            &formation,
            group,
            || unknown_formation(&formation),
            |ctx, g| set_node_replication_quorum(ctx, g, &name, quorum),
        )
    }))
}

fn number_sync_standbys(args: Args) -> pg_sys::Datum {
    let formation: String = args.get(0, "formation_id");
    let value: i32 = args.get(1, "number_sync_standbys");
    scalar(call(|client| {
        on_group(
            client,
            &formation,
            0,
            || unknown_formation(&formation),
            |ctx, g| set_formation_number_sync_standbys(ctx, g, value),
        )
    }))
}

fn sync_names(args: Args) -> pg_sys::Datum {
    let formation: String = args.get(0, "formation_id");
    let group_id: i32 = args.get(1, "group_id");
    let names = call(|client| {
        let f = catalog::formation(client, &formation, false)?
            .ok_or_else(|| unknown_formation(&formation))?;
        let group = catalog::group(client, f, group_id)?;
        standby_names::synchronous_standby_names(&group)
    });
    scalar(names)
}
