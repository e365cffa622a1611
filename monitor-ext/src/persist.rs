//! Writing back what the state machine changed: the difference between the
//! group as loaded and the group it returned (updated, deleted and inserted
//! nodes, leases, and the formation row).

use crate::clock;
use crate::error::internal;
use pgaf_fsm::{Group, MonitorError, Node, NodeState};
use pgrx::datum::{DatumWithOid, TimestampWithTimeZone};
use pgrx::spi::SpiClient;

type Result<T> = std::result::Result<T, MonitorError>;

fn ts(t: i64) -> Result<DatumWithOid<'static>> {
    TimestampWithTimeZone::try_from(clock::to_pg(t))
        .map(DatumWithOid::from)
        .map_err(|e| internal(format!("timestamp out of range: {e:?}")))
}

const UPDATE_NODE: &str = "UPDATE pgautofailover.node SET \
    goalstate = $2::pgautofailover.replication_state, \
    reportedstate = $3::pgautofailover.replication_state, \
    reportedpgisrunning = $4, reportedrepstate = $5, reporttime = $6, reportedtli = $7, \
    reportedlsn = $8::pg_lsn, walreporttime = $9, health = $10, healthchecktime = $11, \
    statechangetime = $12, candidatepriority = $13, replicationquorum = $14 \
    WHERE nodeid = $1";

const INSERT_NODE: &str = "INSERT INTO pgautofailover.node \
    (formationid, nodeid, groupid, nodename, nodehost, nodeport, sysidentifier, goalstate, \
     reportedstate, reportedpgisrunning, reportedrepstate, reporttime, reportedtli, reportedlsn, \
     walreporttime, health, healthchecktime, statechangetime, candidatepriority, \
     replicationquorum, nodecluster) \
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8::pgautofailover.replication_state, \
     $9::pgautofailover.replication_state, $10, $11, $12, $13, $14::pg_lsn, $15, $16, $17, $18, \
     $19, $20, $21)";

fn update_node(client: &mut SpiClient<'_>, n: &Node) -> Result<()> {
    let args: Vec<DatumWithOid<'_>> = vec![
        n.id.into(),
        n.goal.as_str().into(),
        n.reported.as_str().into(),
        n.pg_is_running.into(),
        n.rep_state.as_str().into(),
        ts(n.report_time)?,
        n.tli.into(),
        n.lsn.to_string().into(),
        ts(n.wal_report_time)?,
        n.health.as_i32().into(),
        ts(n.health_check_time)?,
        ts(n.state_change_time)?,
        n.candidate_priority.into(),
        n.replication_quorum.into(),
    ];
    crate::spi::run(client, UPDATE_NODE, None, &args)?;
    Ok(())
}

fn insert_node(client: &mut SpiClient<'_>, formation: &str, n: &Node) -> Result<()> {
    let args: Vec<DatumWithOid<'_>> = vec![
        formation.into(),
        n.id.into(),
        n.group_id.into(),
        n.name.as_str().into(),
        n.host.as_str().into(),
        n.port.into(),
        n.sysidentifier.into(),
        n.goal.as_str().into(),
        n.reported.as_str().into(),
        n.pg_is_running.into(),
        n.rep_state.as_str().into(),
        ts(n.report_time)?,
        n.tli.into(),
        n.lsn.to_string().into(),
        ts(n.wal_report_time)?,
        n.health.as_i32().into(),
        ts(n.health_check_time)?,
        ts(n.state_change_time)?,
        n.candidate_priority.into(),
        n.replication_quorum.into(),
        n.cluster.as_str().into(),
    ];
    crate::spi::run(client, INSERT_NODE, None, &args)?;
    Ok(())
}

fn set_lease(client: &mut SpiClient<'_>, n: &Node) -> Result<()> {
    crate::spi::run(
        client,
        "INSERT INTO pgautofailover.node_lease \
                (nodeid, lease, delivered, upstreamnodeid, upstreamagems, streamedtime, \
                 reportsstandbys) \
              VALUES ($1, $2, $3::text::pgautofailover.replication_state, $4, $5, $6, $7) \
             ON CONFLICT (nodeid) DO UPDATE \
                   SET lease = excluded.lease, delivered = excluded.delivered, \
                       upstreamnodeid = excluded.upstreamnodeid, \
                       upstreamagems = excluded.upstreamagems, \
                       streamedtime = excluded.streamedtime, \
                       reportsstandbys = excluded.reportsstandbys",
        None,
        &[
            n.id.into(),
            n.lease.into(),
            n.delivered.as_str().into(),
            n.upstream_node_id.into(),
            n.upstream_age_ms.into(),
            ts(n.streamed_time)?,
            n.reports_standbys.into(),
        ],
    )?;
    Ok(())
}

/// What `node_lease` holds of a node (ours, beyond upstream's catalog).
fn keeper_facts(n: &Node) -> (bool, NodeState, i64, i32, i64, bool) {
    (
        n.lease,
        n.delivered,
        n.upstream_node_id,
        n.upstream_age_ms,
        n.streamed_time,
        n.reports_standbys,
    )
}

/// Persist every difference between `before` and `after`.
pub fn group(client: &mut SpiClient<'_>, before: &Group, after: &Group) -> Result<()> {
    let f = &after.formation;
    if *f != before.formation {
        crate::spi::run(
            client,
            "UPDATE pgautofailover.formation \
                    SET kind = $2, dbname = $3::name, number_sync_standbys = $4 \
                  WHERE formationid = $1",
            None,
            &[
                f.id.as_str().into(),
                f.kind.as_str().into(),
                f.dbname.as_str().into(),
                f.number_sync_standbys.into(),
            ],
        )?;
    }
    for old in &before.nodes {
        if after.node(old.id).is_none() {
            crate::spi::run(
                client,
                "DELETE FROM pgautofailover.node WHERE nodeid = $1",
                None,
                &[old.id.into()],
            )?;
        }
    }
    for new in &after.nodes {
        match before.node(new.id) {
            None => {
                insert_node(client, &f.id, new)?;
                // The defaults of a row that does not exist.
                if keeper_facts(new) != (false, new.goal, 0, -1, 0, false) {
                    set_lease(client, new)?;
                }
            }
            Some(old) => {
                let mut old_cmp = old.clone();
                old_cmp.lease = new.lease;
                old_cmp.delivered = new.delivered;
                old_cmp.upstream_node_id = new.upstream_node_id;
                old_cmp.upstream_age_ms = new.upstream_age_ms;
                old_cmp.streamed_time = new.streamed_time;
                old_cmp.reports_standbys = new.reports_standbys;
                if old_cmp != *new {
                    update_node(client, new)?;
                }
                if keeper_facts(old) != keeper_facts(new) {
                    set_lease(client, new)?;
                }
            }
        }
    }
    Ok(())
}
