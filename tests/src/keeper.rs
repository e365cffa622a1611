//! Simulated keepers for scenario tests: each node reports its state with
//! `node_active` and "reaches" the goal it is given, so the next report is
//! that goal (with Postgres stopped in the states where a keeper stops it).

use crate::monitor::{Monitor, Registered, Report};

/// A node driven by a simulated keeper.
#[derive(Debug, Clone)]
pub struct SimNode {
    pub id: i64,
    pub name: String,
    pub port: i32,
    /// What the keeper reports next.
    pub reported: String,
    pub lsn: String,
    pub tli: i32,
    /// The keeper is gone (its Postgres died): it no longer reports.
    pub dead: bool,
    pub candidate_priority: i32,
    /// The state the monitor last received from this keeper.
    pub sent: String,
}

/// Whether a keeper keeps Postgres running in `state`.
pub fn pg_running_in(state: &str) -> bool {
    !matches!(
        state,
        "draining"
            | "demote_timeout"
            | "demoted"
            | "prepare_maintenance"
            | "maintenance"
            | "dropped"
    )
}

/// The system identifier every node of the group shares.
pub const SYSID: i64 = 7_000_000_000_000_000_042;

/// A formation being driven.
pub struct Sim {
    pub m: Monitor,
    pub nodes: Vec<SimNode>,
    pub lease: bool,
    next_port: i32,
}

impl Sim {
    pub fn new(m: Monitor) -> Sim {
        Sim {
            m,
            nodes: Vec::new(),
            lease: false,
            next_port: 6010,
        }
    }

    pub fn node(&self, name: &str) -> &SimNode {
        self.nodes
            .iter()
            .find(|n| n.name == name)
            .unwrap_or_else(|| panic!("no node {name}"))
    }

    pub fn node_mut(&mut self, name: &str) -> &mut SimNode {
        self.nodes
            .iter_mut()
            .find(|n| n.name == name)
            .unwrap_or_else(|| panic!("no node {name}"))
    }

    pub fn id(&self, name: &str) -> i64 {
        self.node(name).id
    }

    /// `node N "name" (127.0.0.1:port)`.
    pub fn r(&self, name: &str) -> String {
        let n = self.node(name);
        crate::monitor::node_ref(n.id, &n.name, n.port)
    }

    /// Register a node (ports 6010, 6011, ...) and set its system identifier.
    pub async fn add(&mut self, name: &str, candidate_priority: i32) -> Registered {
        let port = self.next_port;
        self.next_port += 1;
        let reg = self
            .m
            .register("127.0.0.1", port, name, candidate_priority)
            .await;
        self.m.set_sysid(reg.id, SYSID).await;
        self.nodes.push(SimNode {
            id: reg.id,
            name: name.to_string(),
            port,
            reported: "init".to_string(),
            lsn: "0/3000148".to_string(),
            tli: 1,
            dead: false,
            candidate_priority,
            sent: "init".to_string(),
        });
        reg
    }

    /// One report by `name`: returns the goal; the keeper reaches it.
    pub async fn report(&mut self, name: &str) -> String {
        let n = self.node(name).clone();
        let mut r = Report::new(&n.reported, &n.lsn);
        r.tli = n.tli;
        r.pg_is_running = pg_running_in(&n.reported);
        let goal = if self.lease {
            let row = self
                .m
                .node_active_fn("node_active_lease", n.id, &r)
                .await
                .unwrap_or_else(|e| panic!("node_active_lease({}, {}): {e:?}", n.name, n.reported));
            row.get::<_, String>(2)
        } else {
            self.m.node_active(n.id, &r).await
        };
        let node = self.node_mut(name);
        node.sent = n.reported.clone();
        node.reported = goal.clone();
        goal
    }

    /// Every live keeper reports, in node order, until a whole round
    /// changes nothing (at most `rounds` rounds). Returns the goals.
    pub async fn converge(&mut self, rounds: usize) -> Vec<(String, String)> {
        for _ in 0..rounds {
            let mut changed = false;
            let names: Vec<String> = self
                .nodes
                .iter()
                .filter(|n| !n.dead)
                .map(|n| n.name.clone())
                .collect();
            for name in names {
                if self.nodes.iter().all(|n| n.name != name) {
                    continue;
                }
                let before = self.node(&name).reported.clone();
                let news = before != self.node(&name).sent;
                let goal = self.report(&name).await;
                if goal == "dropped" && before == "dropped" {
                    self.nodes.retain(|n| n.name != name);
                    changed = true;
                    continue;
                }
                changed |= news || goal != before;
            }
            if !changed {
                break;
            }
        }
        self.goals().await
    }

    /// (name, goal) of every node the simulation knows.
    pub async fn goals(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        for n in &self.nodes {
            out.push((n.name.clone(), self.m.goal(n.id).await));
        }
        out
    }

    /// A primary and `standbys` secondaries, all converged.
    pub async fn bring_up(&mut self, names: &[(&str, i32)]) {
        for (name, cp) in names {
            self.add(name, *cp).await;
            self.converge(20).await;
        }
    }

    /// The keeper and Postgres of `name` die: no more reports, health bad,
    /// last report long ago.
    pub async fn kill(&mut self, name: &str) {
        let id = self.id(name);
        self.node_mut(name).dead = true;
        self.m.age_report(id, 60.0).await;
        self.m.set_health(id, 0).await;
    }

    /// The keeper of `name` stops reporting, nothing else changes (a lease
    /// holder is then judged by its lease alone).
    pub fn kill_quietly(&mut self, name: &str) {
        self.node_mut(name).dead = true;
    }

    /// The node comes back: health good again, its keeper reports.
    pub async fn revive(&mut self, name: &str) {
        let id = self.id(name);
        self.node_mut(name).dead = false;
        self.m.set_health(id, 1).await;
    }
}

/// Goals as `(name, goal)` pairs, for assertions.
pub fn goals(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}
