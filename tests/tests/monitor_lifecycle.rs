//! The single-standby life cycle through `node_active`, exactly as two
//! keepers drive it: single → wait_primary +
//! wait_standby → catchingup → primary + secondary, with every event row and
//! every NOTIFY payload checked byte for byte.
#![cfg(feature = "integration")]

use pgaf_tests::cluster::{Cluster, QUIET};
use pgaf_tests::listen::Listener;
use pgaf_tests::monitor::{node_ref, state_payload, Monitor, Report};

#[tokio::test]
async fn single_standby_life_cycle() {
    let cluster = Cluster::monitor(QUIET).await;
    let m = Monitor::new(cluster.connect("pg_auto_failover").await);
    let listener = Listener::start(&cluster.conninfo("pg_auto_failover")).await;
    let (a_port, b_port) = (6010, 6011);
    let a_ref = node_ref(1, "nodeA", a_port);
    let b_ref = node_ref(2, "nodeB", b_port);
    let lsn = "0/3000148";

    // Registration of the first node.
    let a = m.register("127.0.0.1", a_port, "nodeA", 50).await;
    assert_eq!(
        (a.id, a.group, a.goal.as_str(), a.name.as_str()),
        (1, 0, "single", "nodeA")
    );
    let single = format!("Setting goal state of {a_ref} to single as there is no other node.");
    assert_eq!(
        listener.drain().await,
        vec![
            (
                "log".to_string(),
                format!(
                    "Registering {a_ref} to formation \"default\" with replication quorum true and candidate priority 50 [50]"
                )
            ),
            ("log".to_string(), single.clone()),
            ("state".to_string(), state_payload(1, "nodeA", a_port, "init", "single", "unknown")),
        ]
    );
    m.set_sysid(a.id, 7_000_000_000_000_000_001).await;
    assert_eq!(
        m.node_active(a.id, &Report::new("single", lsn)).await,
        "single"
    );

    // The standby registers and waits for the primary.
    let b = m.register("127.0.0.1", b_port, "nodeB", 50).await;
    assert_eq!((b.id, b.goal.as_str()), (2, "wait_standby"));
    assert_eq!(
        m.node_active(b.id, &Report::new("wait_standby", "0/0"))
            .await,
        "wait_standby"
    );
    assert_eq!(
        m.node_active(a.id, &Report::new("single", lsn)).await,
        "wait_primary"
    );
    assert_eq!(
        m.node_active(a.id, &Report::new("wait_primary", lsn)).await,
        "wait_primary"
    );
    assert_eq!(
        m.node_active(b.id, &Report::new("wait_standby", "0/0"))
            .await,
        "catchingup"
    );
    // pg_basebackup done: the standby has the primary's system identifier.
    m.set_sysid(b.id, 7_000_000_000_000_000_001).await;
    assert_eq!(
        m.node_active(b.id, &Report::new("catchingup", lsn)).await,
        "secondary"
    );
    assert_eq!(
        m.node_active(b.id, &Report::new("secondary", lsn)).await,
        "secondary"
    );
    assert_eq!(
        m.node_active(a.id, &Report::new("wait_primary", lsn)).await,
        "primary"
    );
    assert_eq!(
        m.node_active(a.id, &Report::new("primary", lsn)).await,
        "primary"
    );
    assert_eq!(
        m.sync_standby_names().await,
        "ANY 1 (pgautofailover_standby_2)"
    );

    let events: Vec<(i64, String, String, String)> = m
        .events_after(0)
        .await
        .into_iter()
        .map(|e| (e.node_id, e.reported, e.goal, e.description))
        .collect();
    let ev = |id: i64, r: &str, g: &str, d: String| (id, r.to_string(), g.to_string(), d);
    let expected = vec![
        ev(1, "init", "single", single.clone()),
        ev(1, "single", "single", format!("New state is reported by {a_ref}: \"single\"")),
        ev(2, "wait_standby", "wait_standby", format!("New state is reported by {b_ref}: \"wait_standby\"")),
        ev(1, "single", "wait_primary", format!("Setting goal state of {a_ref} to wait_primary after {b_ref} joined.")),
        ev(1, "wait_primary", "wait_primary", format!("New state is reported by {a_ref}: \"wait_primary\"")),
        ev(
            2,
            "wait_standby",
            "catchingup",
            format!("Setting goal state of {b_ref} to catchingup after {a_ref} converged to wait_primary."),
        ),
        ev(2, "catchingup", "catchingup", format!("New state is reported by {b_ref}: \"catchingup\"")),
        ev(2, "catchingup", "secondary", format!("Setting goal state of {b_ref} to secondary after it caught up.")),
        ev(2, "secondary", "secondary", format!("New state is reported by {b_ref}: \"secondary\"")),
        ev(
            1,
            "wait_primary",
            "primary",
            format!("Setting goal state of {a_ref} to primary now that we have 1 healthy  secondary nodes in the quorum."),
        ),
        ev(1, "primary", "primary", format!("New state is reported by {a_ref}: \"primary\"")),
    ];
    assert_eq!(events, expected);

    // Every event was broadcast on `state`, in order, with the node as the
    // monitor held it; health was never checked.
    let states = listener.drain_state().await;
    let expected_states: Vec<String> = expected[1..]
        .iter()
        .map(|(id, r, g, _)| {
            let (name, port) = if *id == 1 {
                ("nodeA", a_port)
            } else {
                ("nodeB", b_port)
            };
            state_payload(*id, name, port, r, g, "unknown")
        })
        .collect();
    assert_eq!(states, expected_states);

    // The catalog as pg_autoctl show state reads it.
    let rows = m
        .client
        .query(
            "SELECT nodename, current_group_state::text, assigned_group_state::text, reported_lsn::text \
               FROM pgautofailover.current_state('default')",
            &[],
        )
        .await
        .expect("current_state");
    let got: Vec<(String, String, String, String)> = rows
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
        .collect();
    assert_eq!(
        got,
        vec![
            (
                "nodeA".into(),
                "primary".into(),
                "primary".into(),
                lsn.into()
            ),
            (
                "nodeB".into(),
                "secondary".into(),
                "secondary".into(),
                lsn.into()
            ),
        ]
    );
}
