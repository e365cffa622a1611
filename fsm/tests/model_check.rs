//! Model check of the whole failover protocol: the real monitor operations
//! (`pgaf_fsm::api`), keepers that follow the real transition table, and
//! modelled Postgres instances (role, WAL history, timeline, synchronous
//! standbys), with heartbeats in any order, crashes, restarts, network loss
//! between any pair (monitor included), lagging standbys, client writes,
//! the clock and its leases, and operator actions. Keepers report who
//! streams from whom, as ours do (docs/failover.md).
//!
//! Groups of 2 and 3 nodes are explored exhaustively up to a depth bound
//! (breadth first, states de-duplicated); groups of 4 by seeded random
//! walks. In every state: never two nodes able to acknowledge commits, no
//! node accepting writes without every acknowledged commit (also those a
//! primary acknowledged alone, in `wait_primary`), no goal a keeper cannot
//! reach, no priority-0 or lagging node sent to promotion; and from every
//! explored state, the deepest included, once faults stop, the group gets
//! back to one primary and streaming secondaries (random walks check that
//! at the end of each walk).

#![allow(clippy::unwrap_used)] // tests: a panic is a failure report

mod model;

use model::world::{Act, Budget, World};
use std::collections::hash_map::DefaultHasher;
use std::collections::HashSet;
use std::hash::{Hash, Hasher};

struct Stats {
    states: usize,
    transitions: usize,
    recoveries: usize,
}

fn fingerprint(w: &World) -> u64 {
    let mut h = DefaultHasher::new();
    w.hash(&mut h);
    h.finish()
}

/// Explore every interleaving from `start` up to `depth` actions,
/// checking the invariants after every transition and recovery from every
/// state reached, the deepest included.
fn explore(start: World, depth: usize, operator: bool) -> Stats {
    let mut seen: HashSet<u64> = HashSet::new();
    let mut frontier = vec![(start, Vec::<Act>::new())];
    let mut stats = Stats {
        states: 0,
        transitions: 0,
        recoveries: 0,
    };
    let mut known = HashSet::new();
    let mut recovers = |w: &World, trace: &[Act], stats: &mut Stats| {
        stats.states += 1;
        stats.recoveries += 1;
        if let Err(e) = w.recover_known(40, &mut known, fingerprint) {
            panic!("no recovery: {e}\nfrom: {}\ntrace: {trace:?}", w.summary());
        }
    };
    seen.insert(fingerprint(&frontier[0].0));
    for _ in 0..depth {
        let mut next = vec![];
        for (w, trace) in frontier {
            recovers(&w, &trace, &mut stats);
            for act in w.enabled(operator) {
                let mut n = w.clone();
                stats.transitions += 1;
                let res = n.apply(act).and_then(|_| n.check());
                if let Err(e) = res {
                    let mut t = trace.clone();
                    t.push(act);
                    panic!("violation: {e}\nafter: {t:?}\nstate: {}", n.summary());
                }
                n.canonical();
                if seen.insert(fingerprint(&n)) {
                    let mut t = trace.clone();
                    t.push(act);
                    next.push((n, t));
                }
            }
        }
        frontier = next;
        if frontier.is_empty() {
            break;
        }
    }
    for (w, trace) in &frontier {
        recovers(w, trace, &mut stats);
    }
    stats
}

/// A small deterministic generator for the random walks.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// Replay `trace` from `start` (skipping actions that are not enabled),
/// then check recovery. Returns the failure, if any.
fn replay(start: &World, trace: &[Act], operator: bool) -> Result<(), String> {
    let mut w = start.clone();
    for &act in trace {
        if !w.enabled(operator).contains(&act) {
            continue;
        }
        w.apply(act)
            .and_then(|_| w.check())
            .map_err(|e| format!("violation: {e}"))?;
    }
    w.recover(60)
        .map(|_| ())
        .map_err(|e| format!("no recovery: {e}"))
}

/// Shorten a failing trace while it keeps failing the same way.
fn shrink(start: &World, mut trace: Vec<Act>, operator: bool) -> (Vec<Act>, String) {
    let kind = |e: &str| e.split(':').next().unwrap_or("").to_string();
    let mut failure = replay(start, &trace, operator).expect_err("the trace fails");
    let mut i = trace.len();
    while i > 0 {
        i -= 1;
        let mut shorter = trace.clone();
        shorter.remove(i);
        if let Err(e) = replay(start, &shorter, operator) {
            if kind(&e) == kind(&failure) {
                trace = shorter;
                failure = e;
            }
        }
    }
    // Keep only the actions that were enabled.
    let mut w = start.clone();
    let mut kept = vec![];
    for &act in &trace {
        if w.enabled(operator).contains(&act) && w.apply(act).and_then(|_| w.check()).is_ok() {
            kept.push(act);
        } else if w.enabled(operator).contains(&act) {
            kept.push(act);
            break;
        }
    }
    (kept, failure)
}

fn random_walks(start: World, walks: usize, length: usize, seed: u64, operator: bool) -> Stats {
    let mut rng = Rng(seed);
    let mut stats = Stats {
        states: 0,
        transitions: 0,
        recoveries: 0,
    };
    for _ in 0..walks {
        let mut w = start.clone();
        let mut trace = vec![];
        let mut failed = false;
        for _ in 0..length {
            let acts = w.enabled(operator);
            let act = acts[(rng.next() % acts.len() as u64) as usize];
            trace.push(act);
            stats.transitions += 1;
            if w.apply(act).and_then(|_| w.check()).is_err() {
                failed = true;
                break;
            }
            stats.states += 1;
        }
        stats.recoveries += 1;
        if failed || w.recover(60).is_err() {
            let (short, failure) = shrink(&start, trace, operator);
            let mut end = start.clone();
            let mut steps = String::new();
            for &a in &short {
                let _ = end.apply(a);
                steps.push_str(&format!("  {a:?}\n    {}\n", end.summary()));
            }
            panic!("{failure}\nshortest trace found: {short:?}\nsteps:\n{steps}");
        }
    }
    stats
}

fn report(name: &str, s: &Stats, started: std::time::Instant) {
    println!(
        "{name}: {} states explored, {} transitions, {} recoveries checked, {:.1} s",
        s.states,
        s.transitions,
        s.recoveries,
        started.elapsed().as_secs_f64()
    );
}

/// At the default depth, at least `min` states, each checked for recovery.
fn assert_explored(s: &Stats, min: usize, default_depth: usize, var: &str) {
    assert_eq!(s.recoveries, s.states, "a state without its recovery check");
    if depth(var, default_depth) >= default_depth {
        assert!(
            s.states >= min,
            "{} states explored, fewer than the {min} the README states",
            s.states
        );
    }
}

fn depth(var: &str, default: usize) -> usize {
    std::env::var(var)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

const DEPTH2: usize = 10;
const DEPTH3: usize = 8;

#[test]
fn two_nodes_exhaustive() {
    let budget = Budget {
        crashes: 1,
        cuts: 1,
        writes: 2,
        operator: 1,
    };
    let t = std::time::Instant::now();
    let s = explore(
        World::steady(2, budget),
        depth("MODEL_DEPTH2", DEPTH2),
        true,
    );
    report("2 nodes", &s, t);
    // The README's numbers, at the default depth (a deeper run explores
    // more): a change that shrinks the search fails here.
    assert_explored(&s, 1_500_000, DEPTH2, "MODEL_DEPTH2");
}

#[test]
fn three_nodes_exhaustive() {
    let budget = Budget {
        crashes: 1,
        cuts: 1,
        writes: 1,
        operator: 1,
    };
    let t = std::time::Instant::now();
    let s = explore(
        World::steady(3, budget),
        depth("MODEL_DEPTH3", DEPTH3),
        true,
    );
    report("3 nodes", &s, t);
    assert_explored(&s, 1_800_000, DEPTH3, "MODEL_DEPTH3");
}

fn walks(default: usize) -> usize {
    depth("MODEL_WALKS", default)
}

fn seed(default: u64) -> u64 {
    std::env::var("MODEL_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Apply a scripted prefix, checking invariants along the way.
fn scripted(n: usize, budget: Budget, script: &[Act]) -> World {
    let mut w = World::steady(n, budget);
    for &act in script {
        assert!(
            w.enabled(true).contains(&act),
            "{act:?} not enabled in {}",
            w.summary()
        );
        w.apply(act).unwrap();
        w.check().unwrap();
    }
    w
}

/// The primary is cut off from the monitor and from its standby, and the
/// clock runs: explore how the failover unfolds.
#[test]
fn two_nodes_partitioned_primary() {
    use Act::*;
    let budget = Budget {
        crashes: 1,
        cuts: 3,
        writes: 2,
        operator: 0,
    };
    let w = scripted(2, budget, &[Cut(0, 2), Cut(0, 1), Write(0)]);
    let t = std::time::Instant::now();
    let s = explore(w, depth("MODEL_DEPTH2", DEPTH2) + 2, false);
    report("2 nodes, primary partitioned", &s, t);
    assert_explored(&s, 500_000, DEPTH2, "MODEL_DEPTH2");
}

/// Only the monitor loses the primary: its standby still streams from it.
#[test]
fn two_nodes_monitor_loses_the_primary() {
    use Act::*;
    let budget = Budget {
        crashes: 0,
        cuts: 1,
        writes: 2,
        operator: 0,
    };
    let w = scripted(2, budget, &[Cut(0, 2), Tick, Tick, Heartbeat(1)]);
    let t = std::time::Instant::now();
    let s = explore(w, depth("MODEL_DEPTH2", DEPTH2) + 2, false);
    report("2 nodes, monitor loses the primary", &s, t);
    assert_explored(&s, 4_000, DEPTH2, "MODEL_DEPTH2");
}

/// Three nodes, the primary dies during a write.
#[test]
fn three_nodes_primary_crash_mid_write() {
    use Act::*;
    let budget = Budget {
        crashes: 1,
        cuts: 1,
        writes: 1,
        operator: 0,
    };
    let w = scripted(3, budget, &[Write(0), Stream(1), Crash(0), Tick, Tick]);
    let t = std::time::Instant::now();
    let s = explore(w, depth("MODEL_DEPTH3", DEPTH3) + 1, false);
    report("3 nodes, primary crash mid-write", &s, t);
    assert_explored(&s, 80_000, DEPTH3, "MODEL_DEPTH3");
}

#[test]
fn four_nodes_random_walks() {
    let budget = Budget {
        crashes: 2,
        cuts: 2,
        writes: 3,
        operator: 2,
    };
    let t = std::time::Instant::now();
    let s = random_walks(
        World::steady(4, budget),
        walks(300),
        120,
        seed(0x5eed_1234_abcd),
        true,
    );
    report("4 nodes", &s, t);
}

#[test]
fn three_nodes_random_walks() {
    let budget = Budget {
        crashes: 2,
        cuts: 3,
        writes: 3,
        operator: 2,
    };
    let t = std::time::Instant::now();
    let s = random_walks(World::steady(3, budget), walks(300), 150, seed(7), true);
    report("3 nodes, walks", &s, t);
}

#[test]
fn two_nodes_long_random_walks() {
    let budget = Budget {
        crashes: 3,
        cuts: 3,
        writes: 4,
        operator: 2,
    };
    let t = std::time::Instant::now();
    let s = random_walks(World::steady(2, budget), walks(500), 150, seed(42), true);
    report("2 nodes, long walks", &s, t);
}
