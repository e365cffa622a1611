//! `register_node`: a keeper joins a formation.
//!
//! Departure from v2.2 (upstream bug 11): registering with `desired_node_id`
//! moves the node id sequence just past that id, so the next generated id
//! does not skip a value.

use crate::error::internal;
use crate::fcinfo::{record, v1_function, Args, Value};
use crate::operation::{call, on_group, Result};
use pgaf_fsm::api::{register_node, Registration};
use pgaf_fsm::{MonitorError, SqlState};
use pgrx::pg_sys;
use pgrx::spi::SpiClient;

v1_function!(pg_finfo_pgaf_register_node, pgaf_register_node, register);

/// The id of the new node: the next sequence value, or the desired id.
fn allocate_node_id(client: &mut SpiClient<'_>, desired: i64) -> Result<i64> {
    if desired == -1 {
        let id = crate::spi::run(
            client,
            "SELECT nextval('pgautofailover.node_nodeid_seq')",
            Some(1),
            &[],
        )?
        .first()
        .get_one::<i64>()
        .map_err(internal)?;
        return id.ok_or_else(|| internal("nextval returned NULL"));
    }
    if desired <= 0 {
        return Err(MonitorError::new(
            SqlState::INVALID_PARAMETER_VALUE,
            format!("invalid value for desired_node_id: {desired}"),
        ));
    }
    // The next value nextval would return; move it past the desired id.
    crate::spi::run(
        client,
        "SELECT pg_catalog.setval('pgautofailover.node_nodeid_seq', $1, true) \
               FROM pgautofailover.node_nodeid_seq \
              WHERE $1 >= CASE WHEN is_called THEN last_value + 1 ELSE last_value END",
        None,
        &[desired.into()],
    )?;
    Ok(desired)
}

fn register(args: Args) -> pg_sys::Datum {
    let formation_id: String = args.get(0, "formation_id");
    let host: String = args.get(1, "node_host");
    let port: i32 = args.get(2, "node_port");
    let dbname = args.name(3, "dbname");
    let name: String = args.get(4, "node_name");
    let sysidentifier: i64 = args.get(5, "sysidentifier");
    let desired_node_id: i64 = args.get(6, "desired_node_id");
    let desired_group_id: i32 = args.get(7, "desired_group_id");
    let initial_state = args.state(8, "initial_group_role");
    let node_kind: String = args.get(9, "node_kind");
    let candidate_priority: i32 = args.get(10, "candidate_priority");
    let replication_quorum: bool = args.get(11, "replication_quorum");
    let cluster: String = args.get(12, "node_cluster");

    let node = call(|client| {
        // Lock the formation before allocating an id, so that concurrent
        // registrations get their ids in commit order.
        if crate::catalog::formation(client, &formation_id, true)?.is_none() {
            return Err(missing_formation(&formation_id));
        }
        let node_id = allocate_node_id(client, desired_node_id)?;
        let req = Registration {
            node_id,
            host: host.clone(),
            port,
            dbname: dbname.clone(),
            name: name.clone(),
            sysidentifier,
            desired_group_id,
            initial_state,
            node_kind: node_kind.clone(),
            candidate_priority,
            replication_quorum,
            cluster: cluster.clone(),
        };
        on_group(
            client,
            &formation_id,
            0,
            || missing_formation(&formation_id),
            |ctx, g| register_node(ctx, g, &req),
        )
    });
    record(
        args,
        vec![
            Value::of(node.id),
            Value::of(node.group_id),
            Value::state(node.goal),
            Value::of(node.candidate_priority),
            Value::of(node.replication_quorum),
            Value::of(node.name.as_str()),
        ],
    )
}

fn missing_formation(f: &str) -> MonitorError {
    MonitorError::new(
        SqlState::INVALID_OBJECT_DEFINITION,
        format!("formation \"{f}\" does not exist"),
    )
    .hint("Use `pg_autoctl create formation` to create the target formation first")
}
