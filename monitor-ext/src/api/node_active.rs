//! `node_active` and our `node_active_lease`: a keeper
//! reports its state and receives its goal.

use crate::catalog;
use crate::fcinfo::{record, v1_function, Args, Value};
use crate::guc;
use crate::operation::{call, on_group};
use pgaf_fsm::api::{node_active, Assignment, Report};
use pgaf_fsm::{MonitorError, SqlState};
use pgrx::pg_sys;

v1_function!(
    pg_finfo_pgaf_node_active,
    pgaf_node_active,
    node_active_plain
);
v1_function!(
    pg_finfo_pgaf_node_active_lease,
    pgaf_node_active_lease,
    node_active_lease
);

fn report(args: Args, lease: bool) -> (String, Report) {
    let formation: String = args.get(0, "formation_id");
    // node_active_lease only (node_active has 8 arguments).
    let (upstream_node_id, upstream_age_ms, streaming) = if lease {
        (
            args.get(8, "upstream_node_id"),
            args.get(9, "upstream_age_ms"),
            args.opt::<Vec<Option<i64>>>(10)
                .map(|ids| ids.into_iter().flatten().collect()),
        )
    } else {
        (0, -1, None)
    };
    let report = Report {
        node_id: args.get(1, "node_id"),
        group_id: args.get(2, "group_id"),
        state: args.state(3, "current_group_role"),
        pg_is_running: args.get(4, "current_pg_is_running"),
        tli: args.get(5, "current_tli"),
        lsn: args.lsn(6, "current_lsn"),
        rep_state: args.get(7, "current_rep_state"),
        lease,
        upstream_node_id,
        upstream_age_ms,
        streaming,
    };
    (formation, report)
}

fn run(formation_id: &str, report: &Report) -> Assignment {
    call(|client| {
        let Some((formation, group)) = catalog::node_location(client, report.node_id)? else {
            return Err(MonitorError::new(
                SqlState::UNDEFINED_OBJECT,
                format!("couldn't find node with nodeid {}", report.node_id),
            ));
        };
        if report.tli < 0 {
            return Err(MonitorError::new(
                SqlState::INVALID_PARAMETER_VALUE,
                format!("invalid value for current_tli: {}", report.tli),
            ));
        }
        let missing = || {
            MonitorError::new(
                SqlState::INVALID_OBJECT_DEFINITION,
                format!("formation \"{formation}\" does not exist"),
            )
        };
        on_group(client, &formation, group, missing, |ctx, g| {
            node_active(ctx, g, formation_id, report)
        })
    })
}

fn assignment_values(a: &Assignment) -> Vec<Value> {
    vec![
        Value::of(a.node_id),
        Value::of(a.group_id),
        Value::state(a.goal),
        Value::of(a.candidate_priority),
        Value::of(a.replication_quorum),
    ]
}

fn node_active_plain(args: Args) -> pg_sys::Datum {
    let (formation, report) = report(args, false);
    let a = run(&formation, &report);
    record(args, assignment_values(&a))
}

fn node_active_lease(args: Args) -> pg_sys::Datum {
    let (formation, report) = report(args, true);
    let a = run(&formation, &report);
    let mut values = assignment_values(&a);
    values.push(Value::of(guc::LEASE_TIMEOUT.get()));
    values.push(Value::of(guc::FENCE_TIMEOUT.get()));
    record(args, values)
}
