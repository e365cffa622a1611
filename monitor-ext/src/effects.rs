//! Carrying out the state machine's effects, in order: log lines (server log
//! and the `log` channel), events (an event row and a `state` notification)
//! and client notices.

use crate::error;
use pgaf_fsm::{notify, Effect, MonitorError, Node};
use pgrx::fcinfo::direct_function_call_as_datum;
use pgrx::pg_sys;
use pgrx::spi::SpiClient;
use pgrx::IntoDatum;

type Result<T> = std::result::Result<T, MonitorError>;

/// `NOTIFY channel, payload` (delivered at commit, dropped on rollback).
pub fn notify(channel: &str, payload: &str) -> Result<()> {
    // A NUL cannot be sent in a notification; replace rather than fail.
    let payload = payload.replace('\0', " ");
    // SAFETY: pg_notify(text, text) called with two text datums.
    unsafe {
        direct_function_call_as_datum(
            pg_sys::pg_notify,
            &[channel.into_datum(), payload.into_datum()],
        );
    }
    Ok(())
}

/// A message for the server log and the `log` channel.
pub fn log(message: &str) -> Result<()> {
    pgrx::log!("{}", message);
    notify("log", message)
}

/// An event row for `node` plus its `state` notification.
pub fn event(
    client: &mut SpiClient<'_>,
    formation: &str,
    node: &Node,
    description: &str,
) -> Result<()> {
    crate::spi::run(
        client,
        "INSERT INTO pgautofailover.event \
               (formationid, nodeid, groupid, nodename, nodehost, nodeport, reportedstate, \
                goalstate, reportedrepstate, reportedtli, reportedlsn, candidatepriority, \
                replicationquorum, description) \
             VALUES ($1, $2, $3, $4, $5, $6, $7::pgautofailover.replication_state, \
                $8::pgautofailover.replication_state, $9, $10, $11::pg_lsn, $12, $13, $14)",
        None,
        &[
            formation.into(),
            node.id.into(),
            node.group_id.into(),
            node.name.as_str().into(),
            node.host.as_str().into(),
            node.port.into(),
            node.reported.as_str().into(),
            node.goal.as_str().into(),
            node.rep_state.as_str().into(),
            node.tli.into(),
            node.lsn.to_string().into(),
            node.candidate_priority.into(),
            node.replication_quorum.into(),
            description.into(),
        ],
    )?;
    notify("state", &notify::state_payload(formation, node))
}

/// Carry out `effects` in order.
pub fn apply(client: &mut SpiClient<'_>, formation: &str, effects: &[Effect]) -> Result<()> {
    for e in effects {
        match e {
            Effect::Log(message) => log(message)?,
            Effect::Event { node, description } => event(client, formation, node, description)?,
            Effect::Notice {
                level,
                code,
                message,
                detail,
            } => error::notice(*level, *code, message, detail.as_deref()),
        }
    }
    Ok(())
}
