//! The campaign's schedule: which faults, on which cluster shapes, in which
//! order, drawn from a seed. Pure: the same seed gives the same schedule on
//! every machine ([`plan`]), so a failure is replayed from its seed and its
//! fault's index.
//!
//! Faults name roles (the primary, a standby, the monitor), not nodes: the
//! role is resolved when the fault is injected, from the monitor's view of
//! the group at that moment.

use std::fmt;
use std::time::Duration;

/// SplitMix64: small, fast, and stable across versions (unlike a library
/// generator whose stream may change), so seeds stay reproducible.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n > 0`).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }

    /// Uniform in `lo..=hi`.
    pub fn between(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.below(hi.saturating_sub(lo) + 1)
    }

    /// One of `items`, by weight.
    pub fn weighted<T: Copy>(&mut self, items: &[(u32, T)]) -> T {
        let total: u64 = items.iter().map(|(w, _)| u64::from(*w)).sum();
        let mut pick = self.below(total);
        for (w, item) in items {
            if pick < u64::from(*w) {
                return *item;
            }
            pick -= u64::from(*w);
        }
        items[items.len() - 1].1
    }
}

/// A cluster shape the campaign runs faults on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Topology {
    /// Postgres nodes (2 or 3).
    pub nodes: usize,
    /// `number_sync_standbys` of the formation.
    pub number_sync_standbys: u32,
    /// The last node has candidate priority 0 (never promoted).
    pub zero_priority_node: bool,
}

impl fmt::Display for Topology {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} nodes, number_sync_standbys {}{}",
            self.nodes,
            self.number_sync_standbys,
            if self.zero_priority_node {
                ", node3 candidate priority 0"
            } else {
                ""
            }
        )
    }
}

/// The shapes, in the order the campaign cycles through them.
pub const TOPOLOGIES: [Topology; 4] = [
    Topology {
        nodes: 2,
        number_sync_standbys: 0,
        zero_priority_node: false,
    },
    Topology {
        nodes: 3,
        number_sync_standbys: 0,
        zero_priority_node: false,
    },
    Topology {
        nodes: 3,
        number_sync_standbys: 1,
        zero_priority_node: false,
    },
    Topology {
        nodes: 3,
        number_sync_standbys: 1,
        zero_priority_node: true,
    },
];

/// Who a fault hits, resolved when it is injected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// The node that is the primary.
    Primary,
    /// The `k`-th standby (by name, modulo the number of standbys).
    Standby(u8),
    Monitor,
    Proxy,
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Role::Primary => f.write_str("primary"),
            Role::Standby(_) => f.write_str("standby"),
            Role::Monitor => f.write_str("monitor"),
            Role::Proxy => f.write_str("proxy"),
        }
    }
}

/// What goes wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// No packet between `a` and `b`, either way.
    Partition(Role, Role),
    /// No packet from the first to the second; the other way works.
    OneWay(Role, Role),
    /// The host is cut off from every other host and the clients.
    Isolate(Role),
    /// `ip link set eth0 down` on the host.
    LinkDown(Role),
    /// A share of the host's packets, in and out, is dropped at random.
    Loss(Role, u8),
    /// SIGKILL to `pg_autoctl` and the postmaster (the host is lost); the
    /// node starts again when the fault ends.
    KillHost(Role),
    /// SIGKILL to the postmaster only: its `pg_autoctl` stays.
    KillPostmaster(Role),
    /// SIGKILL to `pg_autoctl` only; it starts again when the fault ends.
    KillKeeper(Role),
    /// SIGSTOP to `pg_autoctl` (Postgres runs on), SIGCONT at the end.
    FreezeKeeper(Role),
    /// Every process of the host frozen (a paused VM), thawed at the end.
    FreezeHost(Role),
    /// The monitor's `pg_autoctl` and Postgres killed; started again at
    /// the end.
    RestartMonitor,
    /// The node's file system is full (a ballast file fills it); the
    /// ballast is removed at the end.
    DiskFull(Role),
    /// A switchover (`perform switchover`), nothing else wrong.
    Switchover,
    /// A switchover while a standby loses packets.
    SwitchoverUnderLoss(u8),
    /// The primary's host is lost; once the monitor has chosen a
    /// candidate, the candidate's `pg_autoctl` and Postgres are killed
    /// and started again at once. The old primary comes back at the end.
    RestartMidFailover,
    /// The primary is cut from the monitor while a standby loses packets.
    MonitorCutAndLoss(u8),
}

impl Kind {
    /// The fault type, as the report groups faults.
    pub fn label(&self) -> String {
        match self {
            Kind::Partition(a, b) => format!("partition {a} | {b}"),
            Kind::OneWay(a, b) => format!("one-way {a} -> {b}"),
            Kind::Isolate(r) => format!("{r} host cut off"),
            Kind::LinkDown(r) => format!("{r} link down"),
            Kind::Loss(r, _) => format!("packet loss on {r}"),
            Kind::KillHost(r) => format!("{r} host lost (kill -9)"),
            Kind::KillPostmaster(r) => format!("{r} postmaster killed"),
            Kind::KillKeeper(r) => format!("{r} keeper killed"),
            Kind::FreezeKeeper(r) => format!("{r} keeper frozen"),
            Kind::FreezeHost(r) => format!("{r} host frozen"),
            Kind::RestartMonitor => "monitor restarted".into(),
            Kind::DiskFull(r) => format!("{r} disk full"),
            Kind::Switchover => "switchover".into(),
            Kind::SwitchoverUnderLoss(_) => "switchover, standby losing packets".into(),
            Kind::RestartMidFailover => "candidate restarted mid-failover".into(),
            Kind::MonitorCutAndLoss(_) => "primary cut from monitor + standby loss".into(),
        }
    }

    /// Whether the fault may end with another node as the primary: it
    /// takes the primary away (its host lost, cut off or frozen, its keeper
    /// killed with the Postgres it supervises), asks for a switchover, or
    /// makes the primary's own links lossy. The others (a partition from
    /// the monitor alone or from one standby, a killed postmaster that its
    /// keeper restarts, a full disk that Postgres survives, faults of
    /// standbys and of the monitor) must not.
    ///
    /// A primary cut from the monitor while a standby loses packets may:
    /// its standbys' replication is then its only proof of life, and at
    /// 25 % loss TCP's retransmission backoff stalls it for seconds (seed
    /// 12, fault 49: nothing from the primary for 3 s, the standby's
    /// `wal_receiver_timeout`). Once that proof lapses its keeper fences
    /// it and the monitor promotes the standby it can reach; see
    /// docs/failover.md, "Timings at the defaults".
    pub fn may_fail_over(&self) -> bool {
        matches!(
            self,
            Kind::Isolate(Role::Primary)
                | Kind::LinkDown(Role::Primary)
                | Kind::KillHost(Role::Primary)
                | Kind::KillKeeper(Role::Primary)
                | Kind::FreezeHost(Role::Primary)
                | Kind::Loss(Role::Primary, _)
                | Kind::Switchover
                | Kind::SwitchoverUnderLoss(_)
                | Kind::RestartMidFailover
                | Kind::MonitorCutAndLoss(_)
        )
    }
}

/// One fault of the campaign.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fault {
    /// Position in the whole campaign, from 0.
    pub index: usize,
    pub kind: Kind,
    /// How long the fault lasts.
    pub hold: Duration,
}

/// Faults run on one cluster, built fresh for them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Epoch {
    pub topology: Topology,
    pub faults: Vec<Fault>,
}

/// How many faults run on one cluster before the next shape.
pub const FAULTS_PER_EPOCH: usize = 10;

/// `count` faults drawn from `seed`, in epochs of [`FAULTS_PER_EPOCH`]
/// cycling through [`TOPOLOGIES`].
pub fn plan(seed: u64, count: usize) -> Vec<Epoch> {
    let mut rng = Rng::new(seed);
    let mut epochs: Vec<Epoch> = Vec::new();
    for index in 0..count {
        if index % FAULTS_PER_EPOCH == 0 {
            let topology = TOPOLOGIES[(index / FAULTS_PER_EPOCH) % TOPOLOGIES.len()];
            epochs.push(Epoch {
                topology,
                faults: Vec::new(),
            });
        }
        let Some(epoch) = epochs.last_mut() else {
            break;
        };
        let kind = draw(&mut rng, epoch.topology);
        let hold = Duration::from_secs(rng.between(6, 20));
        epoch.faults.push(Fault { index, kind, hold });
    }
    epochs
}

fn draw(rng: &mut Rng, t: Topology) -> Kind {
    use Role::*;
    let standby = Standby(rng.below(t.nodes as u64 - 1) as u8);
    let loss = rng.between(10, 40) as u8;
    let node = if rng.below(3) == 0 { standby } else { Primary };
    let one_way = rng.weighted(&[
        (1, (Primary, standby)),
        (1, (standby, Primary)),
        (1, (Primary, Monitor)),
        (1, (Monitor, Primary)),
        (1, (standby, Monitor)),
    ]);
    rng.weighted(&[
        (10, Kind::Partition(Primary, standby)),
        (10, Kind::Partition(Primary, Monitor)),
        (5, Kind::Partition(standby, Monitor)),
        (8, Kind::OneWay(one_way.0, one_way.1)),
        (6, Kind::Isolate(Monitor)),
        (8, Kind::Isolate(node)),
        (3, Kind::LinkDown(Primary)),
        (6, Kind::Loss(node, loss)),
        (8, Kind::KillHost(node)),
        (4, Kind::KillPostmaster(Primary)),
        (4, Kind::KillKeeper(Primary)),
        (5, Kind::FreezeKeeper(node)),
        (6, Kind::FreezeHost(node)),
        (4, Kind::RestartMonitor),
        (4, Kind::DiskFull(Primary)),
        (5, Kind::Switchover),
        (4, Kind::SwitchoverUnderLoss(loss)),
        (4, Kind::RestartMidFailover),
        (3, Kind::MonitorCutAndLoss(loss)),
        (2, Kind::Isolate(Proxy)),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_seed_gives_the_same_schedule() {
        assert_eq!(plan(7, 45), plan(7, 45));
        assert_ne!(plan(7, 45), plan(8, 45));
        let epochs = plan(7, 45);
        assert_eq!(epochs.len(), 5);
        assert_eq!(epochs.iter().map(|e| e.faults.len()).sum::<usize>(), 45);
        assert_eq!(epochs[1].topology, TOPOLOGIES[1]);
        assert_eq!(epochs[4].topology, TOPOLOGIES[0]);
        let indexes: Vec<usize> = epochs
            .iter()
            .flat_map(|e| e.faults.iter().map(|f| f.index))
            .collect();
        assert_eq!(indexes, (0..45).collect::<Vec<_>>());
    }

    #[test]
    fn every_kind_is_drawn_and_holds_stay_in_range() {
        let epochs = plan(1, 400);
        let labels: std::collections::BTreeSet<String> = epochs
            .iter()
            .flat_map(|e| e.faults.iter().map(|f| f.kind.label()))
            .collect();
        for want in [
            "partition primary | standby",
            "partition primary | monitor",
            "monitor host cut off",
            "primary host lost (kill -9)",
            "primary disk full",
            "candidate restarted mid-failover",
            "primary keeper frozen",
            "primary host frozen",
            "switchover",
        ] {
            assert!(labels.contains(want), "{want} never drawn: {labels:?}");
        }
        for f in epochs.iter().flat_map(|e| &e.faults) {
            assert!((6..=20).contains(&f.hold.as_secs()), "{f:?}");
        }
    }
}
