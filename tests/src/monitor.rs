//! A client of the monitor that speaks like keepers do: `register_node` with
//! its 13 arguments, `node_active` reports, plus the catalog reads and
//! writes the scenario tests need (health, events, state).

use tokio_postgres::{Client, Error, Row};

/// A registered node, as a keeper knows it.
#[derive(Debug, Clone)]
pub struct Registered {
    pub id: i64,
    pub group: i32,
    pub goal: String,
    pub name: String,
}

/// What a keeper reports with `node_active`.
#[derive(Debug, Clone)]
pub struct Report {
    pub state: String,
    pub pg_is_running: bool,
    pub tli: i32,
    pub lsn: String,
    pub rep_state: String,
}

impl Report {
    pub fn new(state: &str, lsn: &str) -> Report {
        Report {
            state: state.to_string(),
            pg_is_running: true,
            tli: 1,
            lsn: lsn.to_string(),
            rep_state: String::new(),
        }
    }

    pub fn stopped(mut self) -> Report {
        self.pg_is_running = false;
        self
    }
}

/// One event row (the columns the tests look at).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub node_id: i64,
    pub reported: String,
    pub goal: String,
    pub description: String,
}

/// The monitor, through one connection.
pub struct Monitor {
    pub client: Client,
    pub formation: String,
}

impl Monitor {
    pub fn new(client: Client) -> Monitor {
        Monitor {
            client,
            formation: "default".to_string(),
        }
    }

    /// `register_node` as `pg_autoctl` calls it (13 arguments).
    pub async fn try_register(
        &self,
        host: &str,
        port: i32,
        name: &str,
        candidate_priority: i32,
        replication_quorum: bool,
    ) -> Result<Registered, Error> {
        let row = self
            .client
            .query_one(
                "SELECT assigned_node_id, assigned_group_id, assigned_group_state::text, \
                        assigned_node_name \
                   FROM pgautofailover.register_node($1, $2, $3, $4::text::name, $5, $6, $7, $8, \
                        $9::text::pgautofailover.replication_state, $10, $11, $12, $13)",
                &[
                    &self.formation,
                    &host,
                    &port,
                    &"postgres",
                    &name,
                    &0i64,
                    &-1i64,
                    &-1i32,
                    &"init",
                    &"standalone",
                    &candidate_priority,
                    &replication_quorum,
                    &"default",
                ],
            )
            .await?;
        Ok(Registered {
            id: row.get(0),
            group: row.get(1),
            goal: row.get(2),
            name: row.get(3),
        })
    }

    pub async fn register(&self, host: &str, port: i32, name: &str, cp: i32) -> Registered {
        self.try_register(host, port, name, cp, true)
            .await
            .unwrap_or_else(|e| panic!("register {name}: {e:?}"))
    }

    /// What `pg_autoctl` does once PGDATA exists.
    pub async fn set_sysid(&self, id: i64, sysid: i64) {
        self.client
            .execute(
                "SELECT pgautofailover.set_node_system_identifier($1, $2)",
                &[&id, &sysid],
            )
            .await
            .expect("set_node_system_identifier");
    }

    /// `node_active`: returns the assigned goal state.
    pub async fn try_node_active(&self, id: i64, r: &Report) -> Result<String, Error> {
        self.node_active_fn("node_active", id, r)
            .await
            .map(|row| row.get(2))
    }

    pub async fn node_active_fn(&self, function: &str, id: i64, r: &Report) -> Result<Row, Error> {
        let sql = format!(
            "SELECT assigned_node_id, assigned_group_id, assigned_group_state::text, \
                    assigned_candidate_priority, assigned_replication_quorum \
               FROM pgautofailover.{function}($1, $2, $3, \
                    $4::text::pgautofailover.replication_state, $5, $6, $7::text::pg_lsn, $8)"
        );
        self.client
            .query_one(
                sql.as_str(),
                &[
                    &self.formation,
                    &id,
                    &0i32,
                    &r.state,
                    &r.pg_is_running,
                    &r.tli,
                    &r.lsn,
                    &r.rep_state,
                ],
            )
            .await
    }

    pub async fn node_active(&self, id: i64, r: &Report) -> String {
        self.try_node_active(id, r)
            .await
            .unwrap_or_else(|e| panic!("node_active({id}, {}): {e:?}", r.state))
    }

    /// Set a node's health as the health-check worker would.
    pub async fn set_health(&self, id: i64, health: i32) {
        self.client
            .execute(
                "UPDATE pgautofailover.node SET health = $2, healthchecktime = now() WHERE nodeid = $1",
                &[&id, &health],
            )
            .await
            .expect("set health");
    }

    /// Pretend the keeper of `id` stopped reporting `seconds` ago.
    pub async fn age_report(&self, id: i64, seconds: f64) {
        self.client
            .execute(
                "UPDATE pgautofailover.node \
                    SET reporttime = now() - make_interval(secs => $2), \
                        healthchecktime = now() \
                  WHERE nodeid = $1",
                &[&id, &seconds],
            )
            .await
            .expect("age report");
    }

    /// Goal and reported state of a node.
    pub async fn states(&self, id: i64) -> (String, String) {
        let row = self
            .client
            .query_one(
                "SELECT reportedstate::text, goalstate::text FROM pgautofailover.node WHERE nodeid = $1",
                &[&id],
            )
            .await
            .expect("node states");
        (row.get(0), row.get(1))
    }

    pub async fn goal(&self, id: i64) -> String {
        self.states(id).await.1
    }

    /// Events after `after` (an event id), in order.
    pub async fn events_after(&self, after: i64) -> Vec<Event> {
        self.client
            .query(
                "SELECT nodeid, reportedstate::text, goalstate::text, description \
                   FROM pgautofailover.event WHERE eventid > $1 ORDER BY eventid",
                &[&after],
            )
            .await
            .expect("events")
            .into_iter()
            .map(|r| Event {
                node_id: r.get(0),
                reported: r.get(1),
                goal: r.get(2),
                description: r.get(3),
            })
            .collect()
    }

    /// The highest event id so far.
    pub async fn last_event_id(&self) -> i64 {
        self.client
            .query_one(
                "SELECT coalesce(max(eventid), 0) FROM pgautofailover.event",
                &[],
            )
            .await
            .expect("max eventid")
            .get(0)
    }

    /// `number_sync_standbys` of the formation.
    pub async fn number_sync_standbys(&self) -> i32 {
        self.client
            .query_one(
                "SELECT number_sync_standbys FROM pgautofailover.formation WHERE formationid = $1",
                &[&self.formation],
            )
            .await
            .expect("number_sync_standbys")
            .get(0)
    }

    pub async fn sync_standby_names(&self) -> String {
        self.client
            .query_one(
                "SELECT pgautofailover.synchronous_standby_names($1, 0)",
                &[&self.formation],
            )
            .await
            .expect("synchronous_standby_names")
            .get(0)
    }
}

/// `node N "name" (host:port)`, as descriptions name nodes.
pub fn node_ref(id: i64, name: &str, port: i32) -> String {
    format!("node {id} \"{name}\" (127.0.0.1:{port})")
}

/// The `state` payload for a node, as the monitor must write it.
pub fn state_payload(
    id: i64,
    name: &str,
    port: i32,
    reported: &str,
    goal: &str,
    health: &str,
) -> String {
    format!(
        "{{\"type\": \"state\", \"formation\": \"default\", \"groupId\": 0, \"nodeId\": {id}, \"name\": \"{name}\", \"host\": \"127.0.0.1\", \"port\": {port}, \"reportedState\": \"{reported}\", \"goalState\": \"{goal}\", \"health\":\"{health}\"}}"
    )
}
