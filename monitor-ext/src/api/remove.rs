//! `remove_node` by id and by host and port.

use crate::catalog;
use crate::fcinfo::{scalar, v1_function, Args};
use crate::operation::{call, on_group};
use pgaf_fsm::api::remove_node;
use pgaf_fsm::{MonitorError, SqlState};
use pgrx::pg_sys;

v1_function!(
    pg_finfo_pgaf_remove_node_by_nodeid,
    pgaf_remove_node_by_nodeid,
    by_id
);
v1_function!(
    pg_finfo_pgaf_remove_node_by_host,
    pgaf_remove_node_by_host,
    by_host
);

fn remove(
    node_id: i64,
    formation: &str,
    group: i32,
    force: bool,
) -> impl FnOnce(&mut pgrx::spi::SpiClient<'_>) -> crate::operation::Result<bool> + '_ {
    move |client| {
        let gone = || {
            MonitorError::new(
                SqlState::UNDEFINED_OBJECT,
                format!("couldn't find node with nodeid {node_id}"),
            )
        };
        on_group(client, formation, group, gone, |ctx, g| {
            remove_node(ctx, g, node_id, force)
        })
    }
}

fn by_id(args: Args) -> pg_sys::Datum {
    let node_id: i64 = args.get(0, "node_id");
    let force: bool = args.get(1, "force");
    scalar(call(|client| {
        let Some((formation, group)) = catalog::node_location(client, node_id)? else {
            return Err(MonitorError::new(
                SqlState::UNDEFINED_OBJECT,
                format!("couldn't find node with nodeid {node_id}"),
            ));
        };
        remove(node_id, &formation, group, force)(client)
    }))
}

fn by_host(args: Args) -> pg_sys::Datum {
    let host: String = args.get(0, "node_host");
    let port: i32 = args.get(1, "node_port");
    let force: bool = args.get(2, "force");
    scalar(call(|client| {
        let Some((node_id, formation, group)) = catalog::node_by_host(client, &host, port)? else {
            return Err(MonitorError::new(
                SqlState::UNDEFINED_OBJECT,
                format!("couldn't find node with hostname \"{host}\" and port {port}"),
            ));
        };
        remove(node_id, &formation, group, force)(client)
    }))
}
