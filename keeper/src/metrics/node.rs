//! The keeper's metrics (prefix `pgautoctl_`): what its node-active loop
//! knows about the node, set from the loop ([`NodeMetrics::observe`],
//! [`NodeMetrics::monitor_contact`], [`NodeMetrics::transition`],
//! [`NodeMetrics::action_failed`]); the replication lag and the age of the
//! last monitor contact are read when scraped.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use pgaf_fsm::NodeState;
use pgaf_metrics::http::{Handler, Request, Response};
use pgaf_metrics::prometheus::{Gauge, IntCounterVec, IntGauge, IntGaugeVec, Registry};
use pgaf_metrics::{Builder, StateGauge};

use crate::config::KeeperConfig;
use crate::node::actions::ActionError;
use crate::pg::local::{Local, Metadata};
use crate::state::KeeperState;

/// The values of `pgautoctl_sync_state{state}`: what the node reports as
/// its replication sync state (on a primary, the best `sync_state` among
/// its standbys; `none` without any).
pub const SYNC_STATES: [&str; 5] = ["none", "async", "potential", "sync", "quorum"];

/// Deadline for reading the replication lag during a scrape.
const LAG_TIMEOUT: Duration = Duration::from_secs(2);

/// Every metric of a keeper.
pub struct NodeMetrics {
    registry: Registry,
    pgdata: PathBuf,
    node_info: IntGaugeVec,
    /// The label values of the one `node_info` series.
    node_info_labels: Mutex<Vec<String>>,
    reported_state: StateGauge,
    goal_state: StateGauge,
    postgres_up: IntGauge,
    replication_lag_bytes: Gauge,
    timeline: IntGauge,
    sync_state: StateGauge,
    monitor_last_contact: Gauge,
    monitor_contact_age: Gauge,
    transitions: IntCounterVec,
    failed_actions: IntCounterVec,
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

impl NodeMetrics {
    /// The metrics of the node in `pgdata`, whose last contact with the
    /// monitor was at `last_monitor_contact` (Unix seconds, 0: never).
    pub fn new(pgdata: PathBuf, last_monitor_contact: i64) -> Arc<NodeMetrics> {
        let b = Builder::new("pgautoctl");
        pgaf_metrics::build_info::register(&b, env!("CARGO_PKG_VERSION"));
        let states: Vec<&'static str> = NodeState::ALL.iter().map(|s| s.as_str()).collect();
        let m = NodeMetrics {
            node_info: b.int_gauge_vec(
                "node_info",
                "The node this keeper runs; always 1.",
                &["formation", "group", "node_id", "node_name"],
            ),
            reported_state: b.state_gauge(
                "reported_state",
                "1 for the state the node is in (the state it reports to the monitor), 0 for the others.",
                &[],
                &states,
            ),
            goal_state: b.state_gauge(
                "goal_state",
                "1 for the goal state the monitor last assigned, 0 for the others.",
                &[],
                &states,
            ),
            postgres_up: b.int_gauge("postgres_up", "1 while the local Postgres accepts connections."),
            replication_lag_bytes: b.gauge(
                "replication_lag_bytes",
                "On a standby, WAL bytes between its replay position and the end of WAL its primary last announced; 0 on a primary; NaN when unknown (Postgres down, not streaming).",
            ),
            timeline: b.int_gauge(
                "timeline",
                "The timeline of the local Postgres, as last read (0 until read).",
            ),
            sync_state: b.state_gauge(
                "sync_state",
                "1 for the replication sync state the node reports (on a primary the best sync_state among its standbys; none without any), 0 for the others.",
                &[],
                &SYNC_STATES,
            ),
            monitor_last_contact: b.gauge(
                "monitor_last_contact_timestamp_seconds",
                "Unix time of the last successful call to the monitor (0: never).",
            ),
            monitor_contact_age: b.gauge(
                "monitor_last_contact_age_seconds",
                "Seconds since the last successful call to the monitor (+Inf: never).",
            ),
            transitions: b.int_counter_vec(
                "transitions_total",
                "State transitions completed, by from and to state.",
                &["from", "to"],
            ),
            failed_actions: b.int_counter_vec(
                "failed_actions_total",
                "Failed transitions and failed enforcements of the current state, by kind of failure.",
                &["kind"],
            ),
            node_info_labels: Mutex::new(Vec::new()),
            registry: b.registry().clone(),
            pgdata,
        };
        for kind in ActionError::KINDS {
            m.failed_actions.with_label_values(&[kind]);
        }
        m.replication_lag_bytes.set(f64::NAN);
        m.sync_state.set(&[], Some("none"));
        if last_monitor_contact > 0 {
            m.monitor_last_contact.set(last_monitor_contact as f64);
        }
        Arc::new(m)
    }

    /// What one iteration of the loop found out.
    pub fn observe(
        &self,
        cfg: &KeeperConfig,
        state: &KeeperState,
        postgres_up: bool,
        meta: Option<&Metadata>,
    ) {
        let labels = vec![
            cfg.formation.clone(),
            state.group_id.to_string(),
            state.node_id.to_string(),
            cfg.name.clone(),
        ];
        if let Ok(mut current) = self.node_info_labels.lock() {
            // Replaced, never reset: a scrape always finds one node_info.
            if *current != labels {
                let values: Vec<&str> = labels.iter().map(String::as_str).collect();
                self.node_info.with_label_values(&values).set(1);
                if !current.is_empty() {
                    let old: Vec<&str> = current.iter().map(String::as_str).collect();
                    let _ = self.node_info.remove_label_values(&old);
                }
                *current = labels;
            }
        }
        self.reported_state
            .set(&[], Some(state.current_role.as_str()));
        self.goal_state.set(&[], Some(state.assigned_role.as_str()));
        self.postgres_up.set(i64::from(postgres_up));
        if let Some(m) = meta {
            self.timeline.set(i64::from(m.tli));
            let sync = if m.sync_state.is_empty() {
                "none"
            } else {
                m.sync_state.as_str()
            };
            self.sync_state.set(&[], Some(sync));
        }
    }

    /// A call to the monitor succeeded now.
    pub fn monitor_contact(&self) {
        self.monitor_last_contact.set(unix_now());
    }

    /// The transition `from` → `to` completed.
    pub fn transition(&self, from: NodeState, to: NodeState) {
        self.transitions
            .with_label_values(&[from.as_str(), to.as_str()])
            .inc();
        self.reported_state.set(&[], Some(to.as_str()));
    }

    /// A transition or the enforcement of a state failed with `e`.
    pub fn action_failed(&self, e: &ActionError) {
        self.failed_actions.with_label_values(&[e.kind()]).inc();
    }

    /// The exposition, after reading what is read at scrape time.
    pub async fn scrape(&self) -> Result<Vec<u8>, pgaf_metrics::exposition::ExpositionError> {
        let lag = tokio::time::timeout(LAG_TIMEOUT, async {
            let local = Local::connect(&self.pgdata).await.ok()?;
            local.replication_lag().await.ok().flatten()
        })
        .await
        .ok()
        .flatten();
        self.replication_lag_bytes
            .set(lag.map_or(f64::NAN, |l| l as f64));
        let last = self.monitor_last_contact.get();
        self.monitor_contact_age.set(if last > 0.0 {
            (unix_now() - last).max(0.0)
        } else {
            f64::INFINITY
        });
        pgaf_metrics::exposition::encode(&self.registry)
    }
}

impl Handler for NodeMetrics {
    async fn handle(&self, request: Request) -> Response {
        super::endpoint(&request, || self.scrape()).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(text: &str, series: &str) -> Option<f64> {
        text.lines()
            .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
    }

    #[tokio::test]
    async fn states_transitions_and_failures() {
        let dir = std::env::temp_dir().join("pgaf-keeper-metrics-test-nonexistent");
        let m = NodeMetrics::new(dir, 0);
        let text = String::from_utf8(m.scrape().await.unwrap()).unwrap();
        assert_eq!(
            sample(&text, "pgautoctl_monitor_last_contact_age_seconds"),
            Some(f64::INFINITY)
        );
        assert!(
            text.contains("pgautoctl_replication_lag_bytes NaN"),
            "{text}"
        );
        assert_eq!(
            sample(&text, "pgautoctl_failed_actions_total{kind=\"not_yet\"}"),
            Some(0.0)
        );

        let mut state = KeeperState::new(3, 0);
        state.current_role = NodeState::Secondary;
        state.assigned_role = NodeState::PreparePromotion;
        let ini = crate::ini::Ini::parse(
            "[pg_autoctl]\nrole = keeper\nformation = default\nname = node_3\nhostname = h\n\
             [postgresql]\npgdata = /nonexistent\nport = 5432\n",
        )
        .unwrap();
        let crate::config::Config::Keeper(cfg) =
            crate::config::Config::from_ini(std::path::Path::new("t.cfg"), &ini).unwrap()
        else {
            panic!("not a keeper configuration");
        };
        let meta = Metadata {
            in_recovery: true,
            lsn: pgaf_fsm::Lsn(1),
            tli: 4,
            sync_state: String::new(),
            system_identifier: 1,
            upstream: None,
        };
        m.observe(&cfg, &state, true, Some(&meta));
        m.monitor_contact();
        m.transition(NodeState::Secondary, NodeState::PreparePromotion);
        m.action_failed(&ActionError::NotYet("later".into()));
        let text = String::from_utf8(m.scrape().await.unwrap()).unwrap();
        for (series, value) in [
            ("pgautoctl_reported_state{state=\"prepare_promotion\"}", 1.0),
            ("pgautoctl_reported_state{state=\"secondary\"}", 0.0),
            ("pgautoctl_goal_state{state=\"prepare_promotion\"}", 1.0),
            ("pgautoctl_postgres_up", 1.0),
            ("pgautoctl_timeline", 4.0),
            ("pgautoctl_sync_state{state=\"none\"}", 1.0),
            (
                "pgautoctl_transitions_total{from=\"secondary\",to=\"prepare_promotion\"}",
                1.0,
            ),
            ("pgautoctl_failed_actions_total{kind=\"not_yet\"}", 1.0),
        ] {
            assert_eq!(sample(&text, series), Some(value), "{series} in\n{text}");
        }
        let age = sample(&text, "pgautoctl_monitor_last_contact_age_seconds").unwrap();
        assert!(age.is_finite() && age >= 0.0, "{age}");
        assert!(
            text.contains("pgautoctl_node_info{formation=\"default\",group=\"0\",node_id=\"3\",node_name=\"node_3\"} 1"),
            "{text}"
        );
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            assert!(line.starts_with("pgautoctl_"), "{line}");
        }

        // The node moved to group 1: one node_info, the new one.
        state.group_id = 1;
        m.observe(&cfg, &state, false, None);
        let text = String::from_utf8(m.scrape().await.unwrap()).unwrap();
        assert_eq!(text.matches("pgautoctl_node_info{").count(), 1, "{text}");
        assert!(text.contains("group=\"1\""), "{text}");
        assert_eq!(sample(&text, "pgautoctl_postgres_up"), Some(0.0));
        assert_eq!(sample(&text, "pgautoctl_timeline"), Some(4.0));
    }
}
