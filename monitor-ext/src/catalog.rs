//! Reading the catalog into the state machine's types: a formation row, and
//! a group of nodes (dropped ones included, by node id) with what we keep
//! about their keepers (lease, goal last delivered, who streams from whom).
//!
//! Queries run through [`crate::spi::run`]: cached plans, and a fresh
//! snapshot per query once the formation row is locked.

use crate::clock;
use crate::error::internal;
use pgaf_fsm::{Formation, FormationKind, Group, Health, Lsn, MonitorError, Node, NodeState};
use pgrx::datum::TimestampWithTimeZone;
use pgrx::pg_sys;
use pgrx::spi::{SpiClient, SpiHeapTupleData};

type Result<T> = std::result::Result<T, MonitorError>;

macro_rules! formation_select {
    () => {
        "SELECT formationid, kind, dbname::text, opt_secondary, number_sync_standbys \
           FROM pgautofailover.formation WHERE formationid = $1"
    };
}

const FORMATION: &str = formation_select!();
const FORMATION_FOR_UPDATE: &str = concat!(formation_select!(), " FOR UPDATE");

const GROUP: &str = "SELECT n.nodeid, n.groupid, n.nodename, n.nodehost, n.nodeport, \
     n.sysidentifier, n.goalstate::text, n.reportedstate::text, n.reportedpgisrunning, \
     n.reportedrepstate, n.reporttime, n.reportedtli, n.reportedlsn::text, n.walreporttime, \
     n.health, n.healthchecktime, n.statechangetime, n.candidatepriority, \
     n.replicationquorum, n.nodecluster, coalesce(l.lease, false), \
     coalesce(l.delivered, n.goalstate)::text, coalesce(l.upstreamnodeid, 0), \
     coalesce(l.upstreamagems, -1), coalesce(l.streamedtime, 'epoch'), \
     coalesce(l.reportsstandbys, false) \
     FROM pgautofailover.node n LEFT JOIN pgautofailover.node_lease l USING (nodeid) \
     WHERE n.formationid = $1 AND n.groupid = $2 ORDER BY n.nodeid";

fn col<T: pgrx::IntoDatum + pgrx::FromDatum>(
    row: &SpiHeapTupleData<'_>,
    i: usize,
) -> Result<Option<T>> {
    row.get::<T>(i).map_err(internal)
}

fn req<T: pgrx::IntoDatum + pgrx::FromDatum>(
    row: &SpiHeapTupleData<'_>,
    i: usize,
    what: &str,
) -> Result<T> {
    col(row, i)?.ok_or_else(|| internal(format!("unexpected NULL in {what}")))
}

fn ts(row: &SpiHeapTupleData<'_>, i: usize, what: &str) -> Result<i64> {
    let t: TimestampWithTimeZone = req(row, i, what)?;
    Ok(clock::from_pg(pg_sys::TimestampTz::from(t)))
}

fn state(text: &str) -> Result<NodeState> {
    text.parse()
        .map_err(|_| internal(format!("unknown node state \"{text}\"")))
}

fn formation_from(row: &SpiHeapTupleData<'_>) -> Result<Formation> {
    let kind: String = req(row, 2, "formation.kind")?;
    Ok(Formation {
        id: req(row, 1, "formation.formationid")?,
        // The CHECK constraint allows citus; registration refuses it.
        kind: if kind == "citus" {
            FormationKind::Citus
        } else {
            FormationKind::Pgsql
        },
        dbname: req(row, 3, "formation.dbname")?,
        opt_secondary: req(row, 4, "formation.opt_secondary")?,
        number_sync_standbys: req(row, 5, "formation.number_sync_standbys")?,
    })
}

/// Load a formation; with `lock`, take its row lock first (`FOR UPDATE`),
/// which serialises every state-machine evaluation in the formation.
pub fn formation(client: &mut SpiClient<'_>, id: &str, lock: bool) -> Result<Option<Formation>> {
    let query = if lock {
        FORMATION_FOR_UPDATE
    } else {
        FORMATION
    };
    let table = crate::spi::run(client, query, Some(1), &[id.into()])?;
    if let Some(row) = table.into_iter().next() {
        return formation_from(&row).map(Some);
    }
    Ok(None)
}

fn node_from(row: &SpiHeapTupleData<'_>) -> Result<Node> {
    let lsn_text: String = req(row, 13, "node.reportedlsn")?;
    let lsn: Lsn = lsn_text.parse().map_err(internal)?;
    Ok(Node {
        id: req(row, 1, "node.nodeid")?,
        group_id: req(row, 2, "node.groupid")?,
        name: req(row, 3, "node.nodename")?,
        host: req(row, 4, "node.nodehost")?,
        port: req(row, 5, "node.nodeport")?,
        sysidentifier: col(row, 6)?,
        goal: state(&req::<String>(row, 7, "node.goalstate")?)?,
        reported: state(&req::<String>(row, 8, "node.reportedstate")?)?,
        pg_is_running: col(row, 9)?.unwrap_or(true),
        rep_state: col(row, 10)?.unwrap_or_default(),
        report_time: ts(row, 11, "node.reporttime")?,
        tli: req(row, 12, "node.reportedtli")?,
        lsn,
        wal_report_time: ts(row, 14, "node.walreporttime")?,
        health: Health::from_i32(req(row, 15, "node.health")?),
        health_check_time: ts(row, 16, "node.healthchecktime")?,
        state_change_time: ts(row, 17, "node.statechangetime")?,
        candidate_priority: req(row, 18, "node.candidatepriority")?,
        replication_quorum: req(row, 19, "node.replicationquorum")?,
        cluster: req(row, 20, "node.nodecluster")?,
        lease: req(row, 21, "node_lease.lease")?,
        delivered: state(&req::<String>(row, 22, "node_lease.delivered")?)?,
        upstream_node_id: req(row, 23, "node_lease.upstreamnodeid")?,
        upstream_age_ms: req(row, 24, "node_lease.upstreamagems")?,
        streamed_time: ts(row, 25, "node_lease.streamedtime")?,
        reports_standbys: req(row, 26, "node_lease.reportsstandbys")?,
    })
}

/// Every node of (formation, group), dropped ones included.
pub fn group(client: &mut SpiClient<'_>, formation: Formation, group_id: i32) -> Result<Group> {
    let table = crate::spi::run(
        client,
        GROUP,
        None,
        &[formation.id.as_str().into(), group_id.into()],
    )?;
    let mut nodes = Vec::with_capacity(table.len());
    for row in table {
        nodes.push(node_from(&row)?);
    }
    Ok(Group::new(formation, group_id, nodes))
}

/// Where a node lives: (formation, group).
pub fn node_location(client: &mut SpiClient<'_>, node_id: i64) -> Result<Option<(String, i32)>> {
    let table = crate::spi::run(
        client,
        "SELECT formationid, groupid FROM pgautofailover.node WHERE nodeid = $1",
        Some(1),
        &[node_id.into()],
    )?;
    if let Some(row) = table.into_iter().next() {
        return Ok(Some((
            req(&row, 1, "node.formationid")?,
            req(&row, 2, "node.groupid")?,
        )));
    }
    Ok(None)
}

/// The node registered at host:port: (id, formation, group).
pub fn node_by_host(
    client: &mut SpiClient<'_>,
    host: &str,
    port: i32,
) -> Result<Option<(i64, String, i32)>> {
    let table = crate::spi::run(
        client,
        "SELECT nodeid, formationid, groupid FROM pgautofailover.node \
              WHERE nodehost = $1 AND nodeport = $2",
        Some(1),
        &[host.into(), port.into()],
    )?;
    if let Some(row) = table.into_iter().next() {
        return Ok(Some((
            req(&row, 1, "node.nodeid")?,
            req(&row, 2, "node.formationid")?,
            req(&row, 3, "node.groupid")?,
        )));
    }
    Ok(None)
}

/// The group of the node named `name` in `formation`, if any.
pub fn group_of_name(
    client: &mut SpiClient<'_>,
    formation: &str,
    name: &str,
) -> Result<Option<i32>> {
    let table = crate::spi::run(
        client,
        "SELECT groupid FROM pgautofailover.node WHERE formationid = $1 AND nodename = $2",
        Some(1),
        &[formation.into(), name.into()],
    )?;
    if let Some(row) = table.into_iter().next() {
        return Ok(Some(req(&row, 1, "node.groupid")?));
    }
    Ok(None)
}

/// Every (formation, group) that has nodes.
pub fn all_groups(client: &mut SpiClient<'_>) -> Result<Vec<(String, i32)>> {
    let table = crate::spi::run(
        client,
        "SELECT DISTINCT formationid, groupid FROM pgautofailover.node ORDER BY 1, 2",
        None,
        &[],
    )?;
    let mut out = Vec::new();
    for row in table {
        out.push((
            req(&row, 1, "node.formationid")?,
            req(&row, 2, "node.groupid")?,
        ));
    }
    Ok(out)
}
