//! The monitor node's metrics (prefix `pgautofailover_`), read from the
//! monitor's own database (`pgautofailover.node`, `pgautofailover.event`)
//! at each scrape, as the local superuser over the Unix socket. Every
//! scrape builds a fresh registry, so nodes that left the catalog leave the
//! exposition too.
//!
//! `pgautofailover_failovers_total{formation,group}` counts the promotions
//! the monitor started: events that assign goal `prepare_promotion` to a
//! node whose previous event had another goal. Every promotion of a
//! standby goes through that goal (failover of a failed primary,
//! `perform_failover`, `perform_promotion`, maintenance of the primary),
//! and the health-check events a node gets while it is being promoted
//! repeat its goal, so they are not counted twice. Both counters scan the
//! event table (which the monitor never prunes) once per scrape.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use pgaf_fsm::{Lsn, NodeState};
use pgaf_metrics::http::{Handler, Request, Response};
use pgaf_metrics::Builder;
use tokio::sync::Mutex;

use crate::pg::local::{Local, LocalError};

/// Deadline for reading the monitor's tables during a scrape (below the
/// HTTP server's 5 s).
const SCRAPE_TIMEOUT: Duration = Duration::from_secs(4);

const NODES_SQL: &str = "
SELECT formationid, groupid, nodeid, nodename, reportedstate::text, goalstate::text,
       health, reportedpgisrunning, reportedtli, reportedlsn::text,
       extract(epoch FROM now() - reporttime)::float8,
       extract(epoch FROM now() - healthchecktime)::float8
  FROM pgautofailover.node
 ORDER BY nodeid";

const EVENTS_SQL: &str = "
SELECT formationid, groupid, count(*)::bigint,
       count(*) FILTER (WHERE goalstate = 'prepare_promotion'
                          AND previous IS DISTINCT FROM 'prepare_promotion')::bigint
  FROM (SELECT formationid, groupid, goalstate,
               lag(goalstate) OVER (PARTITION BY nodeid ORDER BY eventid) AS previous
          FROM pgautofailover.event) e
 GROUP BY formationid, groupid";

/// A row of `pgautofailover.node`.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeRow {
    pub formation: String,
    pub group: i32,
    pub node_id: i64,
    pub name: String,
    pub reported: String,
    pub goal: String,
    /// -1 unknown, 0 bad, 1 good.
    pub health: i32,
    pub pg_running: Option<bool>,
    pub tli: i32,
    pub lsn: Lsn,
    /// Seconds since `reporttime`.
    pub report_age: f64,
    /// Seconds since `healthchecktime`.
    pub health_check_age: f64,
}

/// Event counts of a formation group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupEvents {
    pub formation: String,
    pub group: i32,
    pub events: i64,
    pub failovers: i64,
}

/// What one scrape read.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Snapshot {
    pub nodes: Vec<NodeRow>,
    pub groups: Vec<GroupEvents>,
}

/// Reading the monitor's tables failed.
#[derive(Debug, thiserror::Error)]
pub enum ScrapeError {
    #[error(transparent)]
    Local(#[from] LocalError),
    #[error("read the monitor's {what}: {source}")]
    Query {
        what: &'static str,
        source: tokio_postgres::Error,
    },
    #[error("the monitor's database did not answer within {0:?}")]
    Timeout(Duration),
}

fn query(what: &'static str) -> impl FnOnce(tokio_postgres::Error) -> ScrapeError {
    move |source| ScrapeError::Query { what, source }
}

/// The metrics endpoint of the monitor node in `pgdata`.
pub struct MonitorMetrics {
    pgdata: PathBuf,
    /// Kept between scrapes; reconnected when closed.
    conn: Mutex<Option<Local>>,
}

impl MonitorMetrics {
    pub fn new(pgdata: PathBuf) -> Arc<MonitorMetrics> {
        Arc::new(MonitorMetrics {
            pgdata,
            conn: Mutex::new(None),
        })
    }

    async fn read(&self) -> Result<Snapshot, ScrapeError> {
        let mut conn = self.conn.lock().await;
        if conn.as_ref().is_none_or(|l| l.client().is_closed()) {
            *conn = Some(Local::connect_db(&self.pgdata, "pg_auto_failover").await?);
        }
        let Some(local) = conn.as_ref() else {
            return Err(ScrapeError::Local(LocalError::NotRunning(
                self.pgdata.display().to_string(),
            )));
        };
        let result = read_tables(local.client()).await;
        if result.is_err() {
            *conn = None;
        }
        result
    }

    /// The exposition: the monitor's tables as read now, or only
    /// `pgautofailover_up 0` (and the build information) when they cannot
    /// be read.
    pub async fn scrape(&self) -> Result<Vec<u8>, pgaf_metrics::exposition::ExpositionError> {
        let snapshot = match tokio::time::timeout(SCRAPE_TIMEOUT, self.read()).await {
            Ok(Ok(s)) => Some(s),
            Ok(Err(e)) => {
                tracing::warn!("Metrics: {e}");
                None
            }
            Err(_) => {
                tracing::warn!("Metrics: {}", ScrapeError::Timeout(SCRAPE_TIMEOUT));
                *self.conn.lock().await = None;
                None
            }
        };
        let b = render(snapshot.as_ref());
        pgaf_metrics::exposition::encode(b.registry())
    }
}

async fn read_tables(client: &tokio_postgres::Client) -> Result<Snapshot, ScrapeError> {
    let mut snapshot = Snapshot::default();
    for r in client.query(NODES_SQL, &[]).await.map_err(query("nodes"))? {
        let g = |e| ScrapeError::Query {
            what: "nodes",
            source: e,
        };
        let lsn: String = r.try_get(9).map_err(g)?;
        snapshot.nodes.push(NodeRow {
            formation: r.try_get(0).map_err(g)?,
            group: r.try_get(1).map_err(g)?,
            node_id: r.try_get(2).map_err(g)?,
            name: r.try_get(3).map_err(g)?,
            reported: r.try_get(4).map_err(g)?,
            goal: r.try_get(5).map_err(g)?,
            health: r.try_get(6).map_err(g)?,
            pg_running: r.try_get(7).map_err(g)?,
            tli: r.try_get(8).map_err(g)?,
            lsn: lsn.parse().unwrap_or(Lsn::ZERO),
            report_age: r.try_get(10).map_err(g)?,
            health_check_age: r.try_get(11).map_err(g)?,
        });
    }
    for r in client
        .query(EVENTS_SQL, &[])
        .await
        .map_err(query("events"))?
    {
        let g = |e| ScrapeError::Query {
            what: "events",
            source: e,
        };
        snapshot.groups.push(GroupEvents {
            formation: r.try_get(0).map_err(g)?,
            group: r.try_get(1).map_err(g)?,
            events: r.try_get(2).map_err(g)?,
            failovers: r.try_get(3).map_err(g)?,
        });
    }
    Ok(snapshot)
}

/// The primary of each node's group, the way the monitor resolves it
/// (`GetPrimaryNodeInGroup`): the first node by id whose goal can take
/// writes.
fn primary_lsn(nodes: &[NodeRow], formation: &str, group: i32) -> Option<Lsn> {
    nodes
        .iter()
        .filter(|n| n.formation == formation && n.group == group)
        .find(|n| {
            n.goal
                .parse::<NodeState>()
                .is_ok_and(NodeState::can_take_writes)
        })
        .map(|n| n.lsn)
}

/// The metrics of one scrape (`None`: the tables could not be read).
pub fn render(snapshot: Option<&Snapshot>) -> Builder {
    let b = Builder::new("pgautofailover");
    pgaf_metrics::build_info::register(&b, env!("CARGO_PKG_VERSION"));
    let up = b.int_gauge(
        "up",
        "1 when this scrape could read the monitor's tables, else 0 (and no other metric but build_info).",
    );
    let Some(s) = snapshot else {
        up.set(0);
        return b;
    };
    up.set(1);
    let labels = ["formation", "group", "node_id", "node_name"];
    let states: Vec<&'static str> = NodeState::ALL.iter().map(|s| s.as_str()).collect();
    let health = b.int_gauge_vec(
        "node_health",
        "Health of the node as the monitor's health checks last found it: 1 good, 0 bad, -1 unknown.",
        &labels,
    );
    let reported = b.state_gauge(
        "node_reported_state",
        "1 for the state the node's keeper last reported, 0 for the others.",
        &labels,
        &states,
    );
    let goal = b.state_gauge(
        "node_goal_state",
        "1 for the goal state the monitor assigned to the node, 0 for the others.",
        &labels,
        &states,
    );
    let running = b.int_gauge_vec(
        "node_postgres_running",
        "1 when the node's keeper last reported its Postgres as running.",
        &labels,
    );
    let timeline = b.int_gauge_vec(
        "node_timeline",
        "The timeline the node last reported.",
        &labels,
    );
    let lag = b.int_gauge_vec(
        "node_lsn_lag_bytes",
        "Bytes between the LSN the group's primary reported and the LSN the node reported (0 on the primary, never negative); absent without a primary or an LSN.",
        &labels,
    );
    let report_age = b.gauge_vec(
        "node_last_report_age_seconds",
        "Seconds since the node's keeper last reported to the monitor.",
        &labels,
    );
    let check_age = b.gauge_vec(
        "node_last_health_check_age_seconds",
        "Seconds since the monitor last health-checked the node.",
        &labels,
    );
    let events = b.int_counter_vec(
        "events_total",
        "Events the monitor recorded for the formation group (pgautofailover.event).",
        &["formation", "group"],
    );
    let failovers = b.int_counter_vec(
        "failovers_total",
        "Promotions the monitor started in the formation group (goal prepare_promotion assigned): failovers, switchovers, perform_promotion, maintenance of the primary.",
        &["formation", "group"],
    );
    for n in &s.nodes {
        let (g, id) = (n.group.to_string(), n.node_id.to_string());
        let l = [n.formation.as_str(), &g, &id, n.name.as_str()];
        health.with_label_values(&l).set(i64::from(n.health));
        reported.set(&l, Some(&n.reported));
        goal.set(&l, Some(&n.goal));
        running
            .with_label_values(&l)
            .set(i64::from(n.pg_running.unwrap_or(false)));
        timeline.with_label_values(&l).set(i64::from(n.tli));
        report_age.with_label_values(&l).set(n.report_age.max(0.0));
        check_age
            .with_label_values(&l)
            .set(n.health_check_age.max(0.0));
        if let Some(p) = primary_lsn(&s.nodes, &n.formation, n.group) {
            if !p.is_zero() && !n.lsn.is_zero() {
                let bytes = p.0.saturating_sub(n.lsn.0);
                lag.with_label_values(&l)
                    .set(i64::try_from(bytes).unwrap_or(i64::MAX));
            }
        }
        // Groups without events yet still expose their counters, at 0.
        events.with_label_values(&[n.formation.as_str(), &g]);
        failovers.with_label_values(&[n.formation.as_str(), &g]);
    }
    for e in &s.groups {
        let g = e.group.to_string();
        let l = [e.formation.as_str(), g.as_str()];
        events
            .with_label_values(&l)
            .inc_by(u64::try_from(e.events).unwrap_or(0));
        failovers
            .with_label_values(&l)
            .inc_by(u64::try_from(e.failovers).unwrap_or(0));
    }
    b
}

impl Handler for MonitorMetrics {
    async fn handle(&self, request: Request) -> Response {
        super::endpoint(&request, || self.scrape()).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(id: i64, reported: &str, goal: &str, lsn: u64) -> NodeRow {
        NodeRow {
            formation: "default".into(),
            group: 0,
            node_id: id,
            name: format!("node_{id}"),
            reported: reported.into(),
            goal: goal.into(),
            health: 1,
            pg_running: Some(true),
            tli: 2,
            lsn: Lsn(lsn),
            report_age: 0.25,
            health_check_age: 3.0,
        }
    }

    fn text(s: Option<&Snapshot>) -> String {
        let b = render(s);
        String::from_utf8(pgaf_metrics::exposition::encode(b.registry()).unwrap()).unwrap()
    }

    #[test]
    fn per_node_gauges_and_per_group_counters() {
        let s = Snapshot {
            nodes: vec![
                node(1, "secondary", "secondary", 0x3000),
                node(2, "primary", "primary", 0x5000),
                node(3, "catchingup", "catchingup", 0),
            ],
            groups: vec![GroupEvents {
                formation: "default".into(),
                group: 0,
                events: 17,
                failovers: 1,
            }],
        };
        let t = text(Some(&s));
        let l = |id: i64| {
            format!("formation=\"default\",group=\"0\",node_id=\"{id}\",node_name=\"node_{id}\"")
        };
        for want in [
            "pgautofailover_up 1".to_string(),
            format!("pgautofailover_node_lsn_lag_bytes{{{}}} 8192", l(1)),
            format!("pgautofailover_node_lsn_lag_bytes{{{}}} 0", l(2)),
            format!(
                "pgautofailover_node_reported_state{{{},state=\"primary\"}} 1",
                l(2)
            ),
            format!(
                "pgautofailover_node_reported_state{{{},state=\"secondary\"}} 0",
                l(2)
            ),
            format!(
                "pgautofailover_node_goal_state{{{},state=\"secondary\"}} 1",
                l(1)
            ),
            format!("pgautofailover_node_health{{{}}} 1", l(1)),
            format!(
                "pgautofailover_node_last_health_check_age_seconds{{{}}} 3",
                l(1)
            ),
            "pgautofailover_events_total{formation=\"default\",group=\"0\"} 17".to_string(),
            "pgautofailover_failovers_total{formation=\"default\",group=\"0\"} 1".to_string(),
        ] {
            assert!(t.contains(&want), "{want} not in\n{t}");
        }
        // No LSN yet: no lag.
        assert!(
            !t.contains(&format!("pgautofailover_node_lsn_lag_bytes{{{}}}", l(3))),
            "{t}"
        );
    }

    #[test]
    fn unreadable_tables_say_so() {
        let t = text(None);
        assert!(t.contains("pgautofailover_up 0"), "{t}");
        assert!(t.contains("pgautofailover_build_info{version="), "{t}");
        assert!(!t.contains("node_health"), "{t}");
    }

    #[test]
    fn no_primary_no_lag() {
        let s = Snapshot {
            nodes: vec![
                node(1, "report_lsn", "report_lsn", 0x3000),
                node(2, "demoted", "demoted", 0x5000),
            ],
            groups: Vec::new(),
        };
        let t = text(Some(&s));
        assert!(!t.contains("node_lsn_lag_bytes{"), "{t}");
        assert!(
            t.contains("pgautofailover_failovers_total{formation=\"default\",group=\"0\"} 0"),
            "{t}"
        );
    }
}
