//! Replay a failover through the state machine and print each step: two
//! nodes come up, the primary's keeper stops renewing its lease, the
//! standby is promoted, the old primary comes back as a standby.
//!
//! `cargo run -p pgaf-fsm --example failover`

use pgaf_fsm::api::{self, Registration, Report};
use pgaf_fsm::{ms, Context, Effect, Formation, Group, Lsn, NodeState, Settings};

struct Demo {
    group: Group,
    now: i64,
}

impl Demo {
    fn ctx(&self) -> Context {
        Context::new(self.now, 0, Settings::default())
    }

    fn print(&self, effects: &[Effect]) {
        for e in effects {
            if let Effect::Event { description, .. } = e {
                println!("    event: {description}");
            }
        }
    }

    fn register(&mut self, id: i64, name: &str) {
        let req = Registration {
            node_id: id,
            host: "127.0.0.1".into(),
            port: 5431 + id as i32,
            dbname: "postgres".into(),
            name: name.into(),
            sysidentifier: 0,
            desired_group_id: -1,
            initial_state: NodeState::Init,
            node_kind: "standalone".into(),
            candidate_priority: 50,
            replication_quorum: true,
            cluster: "default".into(),
        };
        let ctx = self.ctx();
        match api::register_node(&ctx, &mut self.group, &req) {
            Ok(out) => {
                println!("register {name}: goal {}", out.value.goal);
                self.print(&out.effects);
            }
            Err(e) => println!("register {name}: {e}"),
        }
    }

    fn report(&mut self, id: i64, state: NodeState) -> NodeState {
        let report = Report {
            node_id: id,
            group_id: 0,
            state,
            pg_is_running: true,
            tli: 1,
            lsn: Lsn(0x300_0110),
            rep_state: String::new(),
            lease: true,
            upstream_node_id: 0,
            upstream_age_ms: -1,
            streaming: None,
        };
        let ctx = self.ctx();
        match api::node_active(&ctx, &mut self.group, "default", &report) {
            Ok(out) => {
                println!("node {id} reports {state:<18} -> goal {}", out.value.goal);
                self.print(&out.effects);
                out.value.goal
            }
            Err(e) => {
                println!("node {id} reports {state}: {e}");
                state
            }
        }
    }

    /// The keeper of `id` reaches its goal and reports it.
    fn converge(&mut self, id: i64) -> NodeState {
        let goal = self.group.node(id).map_or(NodeState::Unknown, |n| n.goal);
        self.report(id, goal)
    }
}

fn main() {
    let mut d = Demo {
        group: Group::new(Formation::default_formation(), 0, vec![]),
        now: ms(1_000_000),
    };
    println!("== two nodes come up");
    d.register(1, "node1");
    d.converge(1);
    d.register(2, "node2");
    d.report(2, NodeState::WaitStandby);
    for _ in 0..3 {
        d.converge(1);
        d.converge(2);
    }
    println!("== node1's host dies; node2 keeps reporting every 500 ms");
    while d.report(2, NodeState::Secondary) == NodeState::Secondary {
        d.now += ms(500);
    }
    d.converge(2);
    d.converge(2);
    println!("== node2 promoted, read-only until node1 is surely fenced");
    while d.converge(2) == NodeState::StopReplication {
        d.now += ms(500);
    }
    d.converge(2);
    println!("== node1 comes back");
    d.report(1, NodeState::Demoted);
    for _ in 0..2 {
        d.converge(1);
        d.converge(2);
    }
}
