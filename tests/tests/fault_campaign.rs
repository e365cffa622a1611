//! A short seeded fault campaign (`src/faults/`): 20 faults drawn from seed
//! 1 (network partitions one way and both ways, a cut-off host, packet
//! loss, lost, frozen and restarted hosts and keepers, a full disk, a
//! monitor restart, a switchover under loss, a candidate restarted
//! mid-failover) over two cluster shapes, each service on a host of its
//! own. Every fault must converge back to a primary and secondaries, lose
//! no acknowledged write and show no split-brain interval.
//!
//! `PGAF_CAMPAIGN_SEED`, `PGAF_CAMPAIGN_COUNT` and `PGAF_CAMPAIGN_ONLY`
//! (comma-separated fault indexes) replay another schedule or one fault of
//! it. The long campaign and its report are `bench/faults/run.sh`.
#![cfg(feature = "integration")]
#![allow(clippy::unwrap_used)]

use pgaf_tests::autoctl::Flavor;
use pgaf_tests::faults::campaign::{run, Options};

fn env<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn short_seeded_campaign_loses_nothing_and_converges() {
    let dir = std::env::temp_dir().join(format!("pgaf-campaign-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let only: Vec<usize> = std::env::var("PGAF_CAMPAIGN_ONLY")
        .unwrap_or_default()
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    let opts = Options {
        seed: env("PGAF_CAMPAIGN_SEED", 1),
        count: env("PGAF_CAMPAIGN_COUNT", 20),
        flavor: Flavor::Ours,
        out: dir.join("outcomes.jsonl"),
        only,
    };
    let outcomes = run(&opts).await;
    let mut failures = Vec::new();
    for o in &outcomes {
        if !o.converged || o.lost > 0 || !o.split_brain.is_empty() {
            failures.push(format!(
                "fault {} ({}, {}; {}): converged {}, lost {}, split brain {:?}: {:?}",
                o.index,
                o.label,
                o.topology,
                o.detail,
                o.converged,
                o.lost,
                o.split_brain,
                o.problems
            ));
        }
    }
    let expected = if opts.only.is_empty() {
        opts.count
    } else {
        opts.only.len()
    };
    assert_eq!(
        outcomes.len(),
        expected,
        "every fault ran (a fault that does not converge ends its epoch)"
    );
    assert!(
        failures.is_empty(),
        "seed {}: {} faults failed:\n{}",
        opts.seed,
        failures.len(),
        failures.join("\n")
    );
    let _ = std::fs::remove_dir_all(&dir);
}
