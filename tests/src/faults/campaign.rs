//! The campaign: the faults of a seeded schedule ([`super::schedule`]),
//! one after another, on clusters of every shape ([`super::cluster`]),
//! while the checkers run ([`super::observe`]). Each fault:
//!
//! 1. waits until the group is a primary with converged secondaries;
//! 2. is injected, held for its duration, then healed;
//! 3. waits until the group is back to a primary and secondaries (the
//!    fault *converged*), or gives up after the limit;
//! 4. is judged: acknowledged writes missing on the primary (lost),
//!    split-brain intervals since the fault began, the longest time
//!    without an acknowledged write per writer, the time to converge.
//!
//! Each outcome is appended to a JSON-lines file as soon as it is known
//! (`bench/faults/report.rs` turns such files into the report). A fault
//! that does not converge ends its epoch: the next epoch starts on a new
//! cluster.

use super::cluster::{primary_of, Cluster};
use super::observe::Observer;
use super::schedule::{plan, Epoch, Fault};
use crate::autoctl::Flavor;
use std::collections::HashSet;
use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// What a campaign runs.
#[derive(Debug, Clone)]
pub struct Options {
    pub seed: u64,
    pub count: usize,
    pub flavor: Flavor,
    /// The JSON-lines file outcomes are appended to.
    pub out: PathBuf,
    /// Run only the faults with these indexes (all when empty): replays.
    pub only: Vec<usize>,
}

/// How one fault went.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub index: usize,
    pub label: String,
    pub topology: String,
    pub hold: f64,
    /// What was hit, as injected.
    pub detail: String,
    pub converged: bool,
    /// From the injection to the group back to primary + secondaries.
    pub recovery: f64,
    /// From the end of the fault to the same.
    pub after_heal: f64,
    pub primary_before: String,
    pub primary_after: String,
    /// The fault may take the primary away ([`super::schedule::Kind::may_fail_over`]).
    pub expected_failover: bool,
    /// Longest time without an acknowledged write: through the proxy, and
    /// through the multi-host URI.
    pub gap_proxy: f64,
    pub gap_uri: f64,
    /// Acknowledged writes missing on the primary after this fault.
    pub lost: usize,
    /// Split-brain intervals that began during this fault (seconds each).
    pub split_brain: Vec<f64>,
    pub problems: Vec<String>,
}

impl Outcome {
    pub fn to_json(&self, seed: u64, flavor: Flavor) -> serde_json::Value {
        serde_json::json!({
            "seed": seed,
            "flavor": match flavor { Flavor::Ours => "ours", Flavor::Upstream => "upstream" },
            "index": self.index,
            "label": self.label,
            "topology": self.topology,
            "hold": self.hold,
            "detail": self.detail,
            "converged": self.converged,
            "recovery": self.recovery,
            "after_heal": self.after_heal,
            "primary_before": self.primary_before,
            "primary_after": self.primary_after,
            "expected_failover": self.expected_failover,
            "gap_proxy": self.gap_proxy,
            "gap_uri": self.gap_uri,
            "lost": self.lost,
            "split_brain": self.split_brain,
            "problems": self.problems,
        })
    }
}

/// How long a group may take to get back to primary + secondaries after a
/// fault ends.
pub fn settle_limit(flavor: Flavor) -> Duration {
    match flavor {
        Flavor::Ours => Duration::from_secs(90),
        // Upstream waits 20 s before a silent node is unhealthy, then 30 s
        // for a demotion; a rejoin takes a health-check round more.
        Flavor::Upstream => Duration::from_secs(240),
    }
}

/// Run the campaign; returns every outcome (also written to `opts.out`).
pub async fn run(opts: &Options) -> Vec<Outcome> {
    let mut outcomes = Vec::new();
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&opts.out)
        .unwrap_or_else(|e| panic!("open {}: {e}", opts.out.display()));
    for epoch in plan(opts.seed, opts.count) {
        let faults: Vec<Fault> = epoch
            .faults
            .iter()
            .filter(|f| opts.only.is_empty() || opts.only.contains(&f.index))
            .cloned()
            .collect();
        if faults.is_empty() {
            continue;
        }
        let epoch = Epoch {
            topology: epoch.topology,
            faults,
        };
        for o in run_epoch(opts, &epoch).await {
            let line = o.to_json(opts.seed, opts.flavor).to_string();
            let _ = writeln!(file, "{line}");
            let _ = file.flush();
            eprintln!("FAULT {line}");
            outcomes.push(o);
        }
    }
    outcomes
}

async fn run_epoch(opts: &Options, epoch: &Epoch) -> Vec<Outcome> {
    let limit = settle_limit(opts.flavor);
    let mut cluster = Cluster::build(opts.flavor, epoch.topology, limit).await;
    let mut observer = Observer::start(cluster.proxy_port(), &cluster.nodes()).await;
    let mut outcomes: Vec<Outcome> = Vec::new();
    let mut known_missing = HashSet::new();
    for fault in &epoch.faults {
        let o = run_fault(&mut cluster, &observer, fault, limit, &mut known_missing).await;
        let converged = o.converged;
        outcomes.push(o);
        if !converged {
            cluster.f.dump_logs();
            break;
        }
    }
    observer.stop().await;
    // Keep the logs of an epoch where something went wrong, or where a
    // fault that should not cause a failover did, or stopped writes for
    // long.
    let suspicious = outcomes.iter().any(|o| {
        !o.converged
            || o.lost > 0
            || !o.split_brain.is_empty()
            || (!o.expected_failover
                && (o.primary_before != o.primary_after || o.gap_proxy.max(o.gap_uri) > 3.0))
    });
    if suspicious {
        cluster.f.keep = true;
        for o in outcomes.iter_mut() {
            o.problems
                .push(format!("logs kept in {}", cluster.f.dir.display()));
        }
    }
    // A last look at the whole epoch: every acknowledged write.
    if let Some(last) = outcomes.last_mut() {
        if last.converged {
            match cluster.missing(&observer.acks()).await {
                Ok(m) => {
                    let new: Vec<_> = m
                        .into_iter()
                        .filter(|x| !known_missing.contains(x))
                        .collect();
                    if !new.is_empty() {
                        last.problems.push(format!(
                            "{} more acknowledged writes missing at the end of the epoch",
                            new.len()
                        ));
                        last.lost += new.len();
                    }
                }
                Err(e) => last.problems.push(e),
            }
        }
    }
    outcomes
}

async fn run_fault(
    cluster: &mut Cluster,
    observer: &Observer,
    fault: &Fault,
    limit: Duration,
    known_missing: &mut HashSet<(String, i64)>,
) -> Outcome {
    let mut o = Outcome {
        index: fault.index,
        label: fault.kind.label(),
        topology: cluster.topology.to_string(),
        hold: fault.hold.as_secs_f64(),
        detail: String::new(),
        converged: false,
        recovery: 0.0,
        after_heal: 0.0,
        primary_before: String::new(),
        primary_after: String::new(),
        expected_failover: fault.kind.may_fail_over(),
        gap_proxy: 0.0,
        gap_uri: 0.0,
        lost: 0,
        split_brain: Vec::new(),
        problems: Vec::new(),
    };
    if cluster.settle(limit).await.is_none() {
        o.problems
            .push("the group was not settled before the fault".into());
        return o;
    }
    // Let the writers find the primary after the previous fault.
    tokio::time::sleep(Duration::from_secs(2)).await;
    o.primary_before = primary_of(&cluster.states().await).unwrap_or_default();
    let t_inject = Instant::now();
    let undo = match cluster.inject(fault.kind).await {
        Ok((undo, detail)) => {
            o.detail = detail;
            undo
        }
        Err(e) => {
            o.problems.push(format!("could not inject: {e}"));
            Vec::new()
        }
    };
    let rest = fault.hold.saturating_sub(t_inject.elapsed());
    tokio::time::sleep(rest).await;
    let t_heal = Instant::now();
    o.problems.extend(cluster.heal(undo).await);
    let settled = cluster.settle(limit).await;
    o.converged = settled.is_some();
    let t_end = Instant::now();
    o.recovery = t_end.duration_since(t_inject).as_secs_f64();
    o.after_heal = t_end.duration_since(t_heal).as_secs_f64();
    if !o.converged {
        o.problems.push(format!(
            "not back to a primary and secondaries {limit:?} after the fault ended: {:?}",
            cluster.states().await
        ));
    }
    o.primary_after = primary_of(&cluster.states().await).unwrap_or_default();
    // Writers see the primary again within a few seconds of settling: the
    // gap is measured up to the first acknowledgement after that, or 10 s.
    let (from, mut to) = (observer.since(t_inject), observer.since(t_end));
    if o.converged {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let acks = observer.acks();
            let all_back = ["proxy", "uri"].iter().all(|w| {
                acks.get(*w)
                    .is_some_and(|l| l.last().is_some_and(|a| a.acked >= to))
            });
            if all_back || Instant::now() >= deadline {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        to = observer.now();
    }
    let gaps = observer.longest_gap(from, to);
    o.gap_proxy = gaps.get("proxy").copied().unwrap_or(to - from);
    o.gap_uri = gaps.get("uri").copied().unwrap_or(to - from);
    o.split_brain = observer
        .split_brains(from - 1.0)
        .into_iter()
        .filter(|s| s.from >= from - 1.0)
        .map(|s| {
            o.problems.push(format!(
                "split brain for {:.3} s at {:.3}: {} via {} and {} via {}",
                s.to - s.from,
                s.from,
                s.a.server,
                s.a.probe,
                s.b.server,
                s.b.probe
            ));
            s.to - s.from
        })
        .collect();
    if o.converged {
        match cluster.missing(&observer.acks()).await {
            Ok(m) => {
                let new: Vec<_> = m
                    .into_iter()
                    .filter(|x| !known_missing.contains(x))
                    .collect();
                if !new.is_empty() {
                    o.problems.push(format!(
                        "{} acknowledged writes missing, e.g. {:?}",
                        new.len(),
                        &new[..new.len().min(5)]
                    ));
                }
                o.lost = new.len();
                known_missing.extend(new);
            }
            Err(e) => o.problems.push(e),
        }
    }
    o
}
