//! A monitor in memory for the tests: one group, a clock, and every effect
//! turned into what clients would observe (event descriptions, `log` and
//! `state` notifications with Postgres' per-transaction de-duplication).

#![allow(dead_code, clippy::unwrap_used)]

use pgaf_fsm::api::{self, Outcome, Registration, Report};
use pgaf_fsm::notify::state_payload;
use pgaf_fsm::{
    ms, Context, Effect, Formation, Group, Health, Lsn, MonitorError, Node, NodeState, Settings,
};

/// A notification as a listener receives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notification {
    Log(String),
    State(String),
}

pub struct Sim {
    pub group: Group,
    pub now: i64,
    pub start: i64,
    pub settings: Settings,
    /// Descriptions of every event row, in order.
    pub events: Vec<(i64, String)>,
    /// Every notification delivered, in order.
    pub notifications: Vec<Notification>,
    /// The LSN keepers report by default.
    pub wal: u64,
    /// Keepers renew leases (ours) or not (upstream's).
    pub lease: bool,
    next_id: i64,
}

impl Default for Sim {
    fn default() -> Self {
        Sim::new()
    }
}

impl Sim {
    pub fn new() -> Sim {
        Sim {
            group: Group::new(Formation::default_formation(), 0, vec![]),
            // The monitor has been up for a while: no startup grace period.
            now: ms(1_000_000),
            start: 0,
            settings: Settings::default(),
            events: vec![],
            notifications: vec![],
            wal: 0x3000110,
            lease: false,
            next_id: 1,
        }
    }

    pub fn ctx(&self) -> Context {
        Context::new(self.now, self.start, self.settings.clone())
    }

    pub fn advance(&mut self, millis: i64) {
        self.now += ms(millis);
    }

    pub fn node(&self, id: i64) -> &Node {
        self.group
            .node(id)
            .unwrap_or_else(|| panic!("node {id} is gone"))
    }

    pub fn goal(&self, id: i64) -> NodeState {
        self.node(id).goal
    }

    /// `(reported, goal)` of a node.
    pub fn states(&self, id: i64) -> (NodeState, NodeState) {
        let n = self.node(id);
        (n.reported, n.goal)
    }

    /// Record the effects of one transaction like Postgres delivers them.
    pub fn commit<T>(&mut self, outcome: Outcome<T>) -> T {
        let mut delivered: Vec<Notification> = vec![];
        for e in &outcome.effects {
            let n = match e {
                Effect::Log(m) => Notification::Log(m.clone()),
                Effect::Event { node, description } => {
                    self.events.push((node.id, description.clone()));
                    Notification::State(state_payload(&self.group.formation.id, node))
                }
                Effect::Notice { .. } => continue,
            };
            if !delivered.contains(&n) {
                delivered.push(n);
            }
        }
        self.notifications.extend(delivered);
        outcome.value
    }

    pub fn register_with(
        &mut self,
        name: &str,
        host: &str,
        port: i32,
        priority: i32,
        quorum: bool,
    ) -> Result<Node, MonitorError> {
        let req = Registration {
            node_id: self.next_id,
            host: host.to_string(),
            port,
            dbname: "postgres".to_string(),
            name: name.to_string(),
            sysidentifier: 0,
            desired_group_id: -1,
            initial_state: NodeState::Init,
            node_kind: "standalone".to_string(),
            candidate_priority: priority,
            replication_quorum: quorum,
            cluster: "default".to_string(),
        };
        let ctx = self.ctx();
        let out = api::register_node(&ctx, &mut self.group, &req)?;
        self.next_id += 1;
        Ok(self.commit(out))
    }

    /// Register `name` with priority 50, quorum true, host `10.0.0.<id>`.
    pub fn register(&mut self, name: &str) -> i64 {
        let host = format!("10.0.0.{}", self.next_id);
        self.register_with(name, &host, 5432, 50, true)
            .expect("registration")
            .id
    }

    pub fn report_full(&mut self, r: Report) -> Result<NodeState, MonitorError> {
        let ctx = self.ctx();
        let f = self.group.formation.id.clone();
        let out = api::node_active(&ctx, &mut self.group, &f, &r)?;
        Ok(self.commit(out).goal)
    }

    /// A keeper report with Postgres running, at the group's current LSN.
    pub fn report(&mut self, id: i64, state: NodeState) -> NodeState {
        self.report_lsn(id, state, Lsn(self.wal))
    }

    pub fn report_lsn(&mut self, id: i64, state: NodeState, lsn: Lsn) -> NodeState {
        self.report_full(Report {
            node_id: id,
            group_id: 0,
            state,
            pg_is_running: true,
            tli: 1,
            lsn,
            rep_state: String::new(),
            lease: self.lease,
            upstream_node_id: 0,
            upstream_age_ms: -1,
            streaming: None,
        })
        .expect("node_active")
    }

    /// A report saying Postgres is down.
    pub fn report_down(&mut self, id: i64, state: NodeState) -> NodeState {
        self.report_full(Report {
            node_id: id,
            group_id: 0,
            state,
            pg_is_running: false,
            tli: 0,
            lsn: Lsn::ZERO,
            rep_state: String::new(),
            lease: self.lease,
            upstream_node_id: 0,
            upstream_age_ms: -1,
            streaming: None,
        })
        .expect("node_active")
    }

    /// The keeper of `id` converges to its goal and reports it.
    pub fn converge(&mut self, id: i64) -> NodeState {
        let goal = self.goal(id);
        self.report(id, goal)
    }

    pub fn health(&mut self, id: i64, h: Health) {
        let ctx = self.ctx();
        let out = api::set_health(&ctx, &mut self.group, id, h).expect("set_health");
        self.commit(out);
    }

    pub fn set_lsn(&mut self, id: i64, lsn: u64) {
        self.group.node_mut(id).expect("node").lsn = Lsn(lsn);
    }

    /// Event descriptions recorded since `mark` (an index into `events`).
    pub fn events_since(&self, mark: usize) -> Vec<String> {
        self.events[mark..].iter().map(|(_, d)| d.clone()).collect()
    }

    pub fn log_lines(&self) -> Vec<String> {
        self.notifications
            .iter()
            .filter_map(|n| match n {
                Notification::Log(m) => Some(m.clone()),
                _ => None,
            })
            .collect()
    }

    /// Run an operator function and commit it.
    pub fn op<T>(
        &mut self,
        f: impl FnOnce(&Context, &mut Group) -> Result<Outcome<T>, MonitorError>,
    ) -> Result<T, MonitorError> {
        let ctx = self.ctx();
        let out = f(&ctx, &mut self.group)?;
        Ok(self.commit(out))
    }

    /// Bring up `names` as a primary and secondaries the way keepers do.
    pub fn cluster(names: &[&str]) -> (Sim, Vec<i64>) {
        Sim::cluster_of(names, false)
    }

    /// The same with our keepers, which hold leases.
    pub fn cluster_with_leases(names: &[&str]) -> (Sim, Vec<i64>) {
        Sim::cluster_of(names, true)
    }

    fn cluster_of(names: &[&str], lease: bool) -> (Sim, Vec<i64>) {
        use NodeState::*;
        let mut s = Sim::new();
        s.lease = lease;
        let mut ids = vec![];
        for (i, name) in names.iter().enumerate() {
            let id = s.register(name);
            ids.push(id);
            if i == 0 {
                s.report(id, Single);
                s.health(id, Health::Good);
                continue;
            }
            s.report(id, WaitStandby);
            // The primary notices the new standby and gets ready for it.
            for _ in 0..3 {
                s.converge(ids[0]);
                s.report(id, WaitStandby);
                if s.goal(id) == CatchingUp {
                    break;
                }
            }
            assert_eq!(s.goal(id), CatchingUp, "{name} should be catching up");
            s.converge(ids[0]);
            s.converge(ids[0]);
            s.report(id, CatchingUp);
            s.health(id, Health::Good);
            s.report(id, CatchingUp);
            assert_eq!(s.goal(id), Secondary, "{name} should be secondary");
            s.report(id, Secondary);
            for _ in 0..3 {
                s.converge(ids[0]);
            }
        }
        (s, ids)
    }
}
