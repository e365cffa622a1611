//! A monitor and three nodes, each on a host of its own (a network
//! namespace on a virtual LAN, `src/netns.rs`), all on port 5432 and
//! without Unix sockets (`PG_REGRESS_SOCK_DIR=""`), as upstream's own test
//! suite runs them: create, a switchover, then the primary's interface goes
//! down (`ip link set eth0 down`): the monitor fails over to a standby, and
//! once the interface is back the old primary rejoins as a standby. Every
//! write acknowledged through the multi-host URI is on the final primary.
#![cfg(feature = "integration")]
#![allow(clippy::unwrap_used)]

use pgaf_tests::autoctl::{assert_all_present, Flavor, Formation, Writer};
use std::time::{Duration, Instant};

const LIMIT: Duration = Duration::from_secs(90);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_on_a_lan_switch_over_and_survive_a_pulled_cable() {
    let mut f = Formation::on_lan(Flavor::Ours).await;
    f.add_node("node1", &[]);
    f.wait_states(&[("node1", "single")], LIMIT).await;
    f.allow_clients("node1");
    f.add_node("node2", &[]);
    f.wait_states(&[("node1", "primary"), ("node2", "secondary")], LIMIT)
        .await;
    f.add_node("node3", &[]);
    f.wait_states(
        &[
            ("node1", "primary"),
            ("node2", "secondary"),
            ("node3", "secondary"),
        ],
        LIMIT,
    )
    .await;
    for n in &f.nodes {
        assert_eq!(n.port, 5432, "every node listens on 5432 of its own host");
    }

    let writer = Writer::start(f.uri("postgres")).await;
    writer.wait_ack(LIMIT).await;

    // A switchover: node1 steps down.
    let out = f.autoctl(&["perform", "switchover", "--monitor", &f.monitor_uri.clone()]);
    assert!(
        out.status.success(),
        "perform switchover: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let states = f.states().await;
    let primary = states
        .iter()
        .find(|s| s.reported == "primary" && s.assigned == "primary")
        .unwrap_or_else(|| panic!("no primary after the switchover: {states:#?}"))
        .name
        .clone();
    assert_ne!(primary, "node1", "the switchover moved the primary");
    let mut others: Vec<String> = ["node1", "node2", "node3"]
        .iter()
        .filter(|n| **n != primary)
        .map(|n| n.to_string())
        .collect();
    f.wait_states(
        &[
            (primary.as_str(), "primary"),
            (others[0].as_str(), "secondary"),
            (others[1].as_str(), "secondary"),
        ],
        LIMIT,
    )
    .await;
    writer.wait_ack(LIMIT).await;

    // The primary's cable is pulled.
    let host = f.node(&primary).host.clone().unwrap();
    let lan = f.lan.clone().unwrap();
    let cut = Instant::now();
    lan.link_down(&host).unwrap();
    pgaf_tests::wait::until(
        "a standby to be promoted",
        LIMIT,
        Duration::from_millis(100),
        || {
            let f = &f;
            let others = &others;
            async move {
                let s = f.states().await;
                s.iter()
                    .find(|s| {
                        others.contains(&s.name)
                            && s.reported == "primary"
                            && s.assigned == "primary"
                    })
                    .map(|s| s.name.clone())
            }
        },
    )
    .await;
    let first_write = writer.wait_ack_since(cut, LIMIT).await;
    eprintln!("MEASURE lan: cable pulled -> first acknowledged write {first_write:?}");
    let states = f.states().await;
    let new_primary = states
        .iter()
        .find(|s| s.reported == "primary" && s.assigned == "primary")
        .unwrap()
        .name
        .clone();

    // The cable back: the old primary rejoins.
    lan.link_up(&host).unwrap();
    others.retain(|n| *n != new_primary);
    others.push(primary.clone());
    f.wait_states(
        &[
            (new_primary.as_str(), "primary"),
            (others[0].as_str(), "secondary"),
            (others[1].as_str(), "secondary"),
        ],
        Duration::from_secs(120),
    )
    .await;
    writer.wait_ack(LIMIT).await;
    let acked = writer.stop().await;
    let c = f.node_client(&new_primary).await;
    assert_all_present(&c, &acked).await;
}
