//! What the monitor worker reads and writes, each call in the caller's
//! transaction: whether the extension is installed, the nodes to check,
//! health verdicts (`pgaf_fsm::api::set_health`) and the periodic evaluation
//! of every group (`pgaf_fsm::api::evaluate_group`).

use crate::error::internal;
use crate::operation::{on_group, Result};
use crate::{catalog, clock, version};
use pgaf_fsm::api::{evaluate_group, set_health};
use pgaf_fsm::{Health, MonitorError, SqlState};
use pgrx::spi::Spi;

/// A node to check, as loaded at the start of a round.
#[derive(Debug, Clone)]
pub struct Target {
    pub id: i64,
    pub formation: String,
    pub group: i32,
    pub host: String,
    pub port: i32,
}

/// Whether a version of the extension we serve is installed here.
pub fn extension_ready() -> bool {
    let v: Option<String> = Spi::get_one(
        "SELECT extversion::text FROM pg_catalog.pg_extension WHERE extname = 'pgautofailover'",
    )
    .ok()
    .flatten();
    v.is_some_and(|v| version::ACCEPTED.contains(&v.as_str()))
}

/// Every registered node (whatever its state).
pub fn targets() -> Result<Vec<Target>> {
    Spi::connect_mut(|client| {
        let table = crate::spi::run(
            client,
            "SELECT nodeid, formationid, groupid, nodehost, nodeport \
                   FROM pgautofailover.node ORDER BY nodeid",
            None,
            &[],
        )?;
        let mut out = Vec::new();
        for row in table {
            let get = |e: Option<()>| e.ok_or_else(|| internal("NULL in pgautofailover.node"));
            let id: Option<i64> = row.get(1).map_err(internal)?;
            let formation: Option<String> = row.get(2).map_err(internal)?;
            let group: Option<i32> = row.get(3).map_err(internal)?;
            let host: Option<String> = row.get(4).map_err(internal)?;
            let port: Option<i32> = row.get(5).map_err(internal)?;
            match (id, formation, group, host, port) {
                (Some(id), Some(formation), Some(group), Some(host), Some(port)) => {
                    out.push(Target {
                        id,
                        formation,
                        group,
                        host,
                        port,
                    })
                }
                _ => get(None)?,
            }
        }
        Ok(out)
    })
}

/// Record a verdict for `t`, unless the node was removed or moved meanwhile.
pub fn record(t: &Target, health: Health) -> Result<()> {
    Spi::connect_mut(|client| {
        let gone = || MonitorError::new(SqlState::UNDEFINED_OBJECT, "formation was dropped");
        on_group(client, &t.formation, t.group, gone, |ctx, g| {
            let same = g
                .node(t.id)
                .is_some_and(|n| n.host == t.host && n.port == t.port);
            if !same {
                return Ok(pgaf_fsm::api::Outcome {
                    value: false,
                    effects: Vec::new(),
                });
            }
            set_health(ctx, g, t.id, health)
        })
        .map(|_| ())
    })
}

/// Evaluate every group once; a group is locked and written only when the
/// evaluation changes something. Returns how many groups changed.
pub fn evaluate_all() -> Result<usize> {
    Spi::connect_mut(|client| {
        let mut count = 0;
        for (formation, group_id) in catalog::all_groups(client)? {
            // A cheap unlocked look first: most evaluations change nothing.
            let Some(f) = catalog::formation(client, &formation, false)? else {
                continue;
            };
            let mut g = catalog::group(client, f, group_id)?;
            let before = g.clone();
            let ctx = clock::context();
            let changed = evaluate_group(&ctx, &mut g)?.value;
            if !decided(&before, &g, changed) {
                continue;
            }
            let gone = || MonitorError::new(SqlState::UNDEFINED_OBJECT, "formation was dropped");
            let did = on_group(client, &formation, group_id, gone, |ctx, g| {
                let mut probe = g.clone();
                let changed = evaluate_group(ctx, &mut probe)?.value;
                if decided(g, &probe, changed) {
                    evaluate_group(ctx, g)
                } else {
                    // Changed under us: nothing to do any more (and no log
                    // lines for a decision not taken).
                    Ok(pgaf_fsm::api::Outcome {
                        value: false,
                        effects: Vec::new(),
                    })
                }
            })?;
            count += usize::from(did);
        }
        Ok(count)
    })
}

/// Whether an evaluation decided something: a goal, a priority, a deletion
/// or a formation setting changed. Re-assigning a node the goal it already
/// has only moves its `statechangetime`; the timer does not act on that
/// (the state machine re-assigns `single` to a lone node on every
/// evaluation until its keeper first reports, which would otherwise write
/// an event every evaluation period).
fn decided(before: &pgaf_fsm::Group, after: &pgaf_fsm::Group, changed: bool) -> bool {
    if !changed {
        return false;
    }
    let strip = |g: &pgaf_fsm::Group| {
        let mut g = g.clone();
        for n in &mut g.nodes {
            n.state_change_time = 0;
        }
        g
    };
    strip(before) != strip(after)
}
