//! Routing: which node a new connection goes to, and when existing
//! sessions must be fenced.
//!
//! * [`decide`] is the pure function: from the monitor's rows for one
//!   formation group it picks the primary — the single node whose goal
//!   **and** reported states can take writes — and
//!   the healthy secondaries ordered by lag. Anything ambiguous means "no
//!   primary", with the reason clients will be told.
//! * [`GroupRoute`] holds the published [`Snapshot`] of one formation group
//!   behind an `ArcSwap`: connections read it without a lock. Updates come
//!   from one writer (the monitor follower, or a test script) through
//!   [`GroupRoute::apply`], [`GroupRoute::monitor_unreachable`] and
//!   [`GroupRoute::fence_all`]; each update closes the
//!   `SessionRegistry` of every backend that lost its role, then publishes
//!   (so that nothing reads the new route before those sessions were told
//!   to stop) and wakes the connections that wait for a node.
//! * [`RouteRegistry`] maps (formation, group) to its `GroupRoute`.

use std::collections::HashMap;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;
use pgaf_fsm::{Health, Lsn, NodeState};
use tokio::sync::Notify;
use tokio::time::Instant;

use crate::config::ReadOnlyPolicy;
use crate::fence::{FenceReason, SessionRegistry};
use crate::metrics::GroupMetrics;

/// One row of `pgautofailover.current_state(formation, group)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct NodeRow {
    pub(crate) node_id: i64,
    pub(crate) name: String,
    pub(crate) host: String,
    pub(crate) port: u16,
    pub(crate) group_id: i32,
    pub(crate) reported: NodeState,
    pub(crate) goal: NodeState,
    pub(crate) candidate_priority: i32,
    pub(crate) replication_quorum: bool,
    pub(crate) tli: i32,
    pub(crate) lsn: Lsn,
    pub(crate) health: Health,
}

/// A node's identity for routing: a change of id, host or port is a
/// different backend (its sessions are fenced).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct NodeKey {
    pub(crate) node_id: i64,
    pub(crate) host: String,
    pub(crate) port: u16,
}

impl NodeRow {
    pub(crate) fn key(&self) -> NodeKey {
        NodeKey {
            node_id: self.node_id,
            host: self.host.clone(),
            port: self.port,
        }
    }
}

/// Why no primary can be given to a client right now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Unavailable {
    /// The proxy has not read the monitor yet.
    NotLoaded,
    /// The monitor has been unreachable past the grace period.
    MonitorUnreachable { since: Instant },
    /// The monitor knows no node in this group.
    NoNodes,
    /// A node is on its way to become primary.
    Promoting {
        name: String,
        reported: NodeState,
        goal: NodeState,
    },
    /// The primary is being demoted (failover, maintenance).
    Demoting {
        name: String,
        reported: NodeState,
        goal: NodeState,
    },
    /// The standbys report their LSN to elect a new primary.
    Election,
    /// No node is, or is becoming, the primary.
    NoWritableNode,
    /// More than one node claims the primary role.
    Ambiguous { names: Vec<String> },
    /// (Read-only listeners) no secondary qualifies.
    NoSecondary,
}

impl fmt::Display for Unavailable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Unavailable::NotLoaded => write!(f, "the proxy has not read the monitor's state yet"),
            Unavailable::MonitorUnreachable { since } => write!(
                f,
                "the monitor has been unreachable for {} s",
                Instant::now().saturating_duration_since(*since).as_secs()
            ),
            Unavailable::NoNodes => write!(f, "the monitor knows no node in this group"),
            Unavailable::Promoting {
                name,
                reported,
                goal,
            } => write!(
                f,
                "node \"{name}\" is becoming the primary (reported {reported}, assigned {goal})"
            ),
            Unavailable::Demoting {
                name,
                reported,
                goal,
            } => write!(
                f,
                "a failover is in progress: node \"{name}\" is being demoted \
                 (reported {reported}, assigned {goal})"
            ),
            Unavailable::Election => {
                write!(
                    f,
                    "a failover is in progress: the monitor is electing a new primary"
                )
            }
            Unavailable::NoWritableNode => write!(f, "no node of the group can take writes"),
            Unavailable::Ambiguous { names } => write!(
                f,
                "the monitor reports more than one writable node ({}); refusing to guess",
                names.join(", ")
            ),
            Unavailable::NoSecondary => {
                write!(f, "no healthy secondary is available within the lag limit")
            }
        }
    }
}

/// The outcome of [`decide`]: indexes into the rows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Decision {
    pub(crate) primary: Result<usize, Unavailable>,
    /// Eligible secondaries as (row index, lag in bytes), least lag first.
    pub(crate) secondaries: Vec<(usize, u64)>,
}

fn writable(s: NodeState) -> bool {
    s.can_take_writes()
}

/// The pure routing decision for one group's rows.
pub(crate) fn decide(rows: &[NodeRow]) -> Decision {
    let live: Vec<usize> = (0..rows.len())
        .filter(|&i| rows[i].goal != NodeState::Dropped)
        .collect();
    let primaries: Vec<usize> = live
        .iter()
        .copied()
        .filter(|&i| writable(rows[i].goal) && writable(rows[i].reported))
        .collect();
    let primary = match primaries.as_slice() {
        [p] => Ok(*p),
        [] if live.is_empty() => Err(Unavailable::NoNodes),
        [] => Err(why_no_primary(rows, &live)),
        many => Err(Unavailable::Ambiguous {
            names: many.iter().map(|&i| rows[i].name.clone()).collect(),
        }),
    };
    // Lag is measured against the primary's LSN, or the most advanced node.
    let reference = match primary {
        Ok(p) => rows[p].lsn,
        Err(_) => live.iter().map(|&i| rows[i].lsn).max().unwrap_or(Lsn::ZERO),
    };
    let mut secondaries: Vec<(usize, u64)> = live
        .iter()
        .copied()
        .filter(|&i| {
            let r = &rows[i];
            r.goal == NodeState::Secondary
                && r.reported == NodeState::Secondary
                && r.health != Health::Bad
        })
        .map(|i| (i, reference.0.saturating_sub(rows[i].lsn.0)))
        .collect();
    secondaries.sort_by_key(|&(i, lag)| (lag, rows[i].node_id));
    Decision {
        primary,
        secondaries,
    }
}

fn why_no_primary(rows: &[NodeRow], live: &[usize]) -> Unavailable {
    let find = |f: &dyn Fn(&NodeRow) -> bool| live.iter().map(|&i| &rows[i]).find(|r| f(r));
    // Assigned a writable goal, not reported yet (promotion, registration).
    if let Some(r) = find(&|r| writable(r.goal)) {
        return Unavailable::Promoting {
            name: r.name.clone(),
            reported: r.reported,
            goal: r.goal,
        };
    }
    // The candidate of a failover.
    if let Some(r) = find(&|r| {
        matches!(
            r.goal,
            NodeState::PreparePromotion | NodeState::StopReplication | NodeState::FastForward
        )
    }) {
        return Unavailable::Promoting {
            name: r.name.clone(),
            reported: r.reported,
            goal: r.goal,
        };
    }
    // The old primary on its way down.
    if let Some(r) = find(&|r| r.reported.belongs_to_primary() || r.goal.belongs_to_primary()) {
        return Unavailable::Demoting {
            name: r.name.clone(),
            reported: r.reported,
            goal: r.goal,
        };
    }
    if find(&|r| r.goal == NodeState::ReportLsn).is_some() {
        return Unavailable::Election;
    }
    Unavailable::NoWritableNode
}

/// A node in one role, for as long as it keeps that role.
#[derive(Debug)]
pub(crate) struct Backend {
    pub(crate) node_id: i64,
    pub(crate) name: String,
    pub(crate) host: String,
    pub(crate) port: u16,
    /// Set when `host` is an IP address (no resolution per connection).
    pub(crate) addr: Option<SocketAddr>,
    /// The sessions relayed to this node in this role.
    pub(crate) sessions: Arc<SessionRegistry>,
}

impl Backend {
    fn new(row: &NodeRow) -> Backend {
        Backend {
            node_id: row.node_id,
            name: row.name.clone(),
            host: row.host.clone(),
            port: row.port,
            addr: row
                .host
                .parse::<IpAddr>()
                .ok()
                .map(|ip| SocketAddr::new(ip, row.port)),
            sessions: Arc::new(SessionRegistry::default()),
        }
    }

    fn key(&self) -> NodeKey {
        NodeKey {
            node_id: self.node_id,
            host: self.host.clone(),
            port: self.port,
        }
    }
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({}:{})", self.name, self.host, self.port)
    }
}

/// A node address, for cancel broadcasts.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct NodeAddr {
    pub(crate) host: String,
    pub(crate) port: u16,
}

/// What connections read: immutable, swapped as a whole.
#[derive(Debug)]
pub(crate) struct Snapshot {
    /// Increases with every published change.
    pub(crate) version: u64,
    pub(crate) primary: Result<Arc<Backend>, Unavailable>,
    /// Eligible secondaries and their lag in bytes, least lag first.
    pub(crate) secondaries: Vec<(Arc<Backend>, u64)>,
    /// Every node of the group the monitor listed.
    pub(crate) nodes: Vec<NodeAddr>,
}

impl Snapshot {
    fn empty() -> Snapshot {
        Snapshot {
            version: 0,
            primary: Err(Unavailable::NotLoaded),
            secondaries: Vec::new(),
            nodes: Vec::new(),
        }
    }

    /// A secondary for a read-only connection: the least lagging ones
    /// (within `lag_tolerance_bytes` of the best) in turn, then optionally
    /// the primary.
    pub(crate) fn pick_read_only(
        &self,
        policy: &ReadOnlyPolicy,
        round_robin: &AtomicUsize,
    ) -> Result<Arc<Backend>, Unavailable> {
        let eligible = self
            .secondaries
            .iter()
            .filter(|(_, lag)| policy.max_lag_bytes.is_none_or(|max| *lag <= max));
        let mut tier = eligible.clone();
        if let Some((_, best)) = tier.next() {
            let limit = best.saturating_add(policy.lag_tolerance_bytes);
            let n = eligible
                .clone()
                .take_while(|(_, lag)| *lag <= limit)
                .count();
            let i = round_robin.fetch_add(1, Ordering::Relaxed) % n;
            if let Some((b, _)) = eligible.clone().nth(i) {
                return Ok(b.clone());
            }
        }
        if policy.fallback_to_primary {
            return self.primary.clone();
        }
        match &self.primary {
            // Say why there is no secondary, or why there is nothing at all.
            Err(Unavailable::NotLoaded) => Err(Unavailable::NotLoaded),
            Err(u @ Unavailable::MonitorUnreachable { .. }) => Err(u.clone()),
            _ => Err(Unavailable::NoSecondary),
        }
    }
}

/// Formation and group.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct GroupKey {
    pub(crate) formation: String,
    pub(crate) group: i32,
}

impl fmt::Display for GroupKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "formation \"{}\" group {}", self.formation, self.group)
    }
}

/// What one update changed, for logs and tests.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Change {
    pub(crate) primary_changed: bool,
    /// Sessions told to end.
    pub(crate) fenced_sessions: usize,
    /// Backends whose sessions were fenced.
    pub(crate) fenced_backends: Vec<String>,
}

#[derive(Debug, Default)]
struct Writer {
    rows: Vec<NodeRow>,
    unavailable: Option<Unavailable>,
    primary: Option<Arc<Backend>>,
    secondaries: HashMap<NodeKey, Arc<Backend>>,
    /// The monitor is (past grace) unreachable: publish nothing routable,
    /// but the node the nodes themselves name as the only writable one.
    monitor_down_since: Option<Instant>,
    /// That node, as the last direct check of the nodes found it
    /// (`monitor::direct`); `None` when none or several answered writable.
    direct: Option<NodeKey>,
    loaded: bool,
}

/// The routing state of one formation group.
pub(crate) struct GroupRoute {
    pub(crate) key: GroupKey,
    snapshot: ArcSwap<Snapshot>,
    changed: Notify,
    writer: Mutex<Writer>,
    metrics: GroupMetrics,
}

impl fmt::Debug for GroupRoute {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GroupRoute")
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

/// Waiting for a node ended without one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum WaitError {
    Timeout(Unavailable),
    Shutdown,
}

impl GroupRoute {
    pub(crate) fn new(key: GroupKey) -> GroupRoute {
        let metrics = GroupMetrics::new(&key.formation, key.group);
        metrics.primary_known.set(0);
        GroupRoute {
            key,
            snapshot: ArcSwap::from_pointee(Snapshot::empty()),
            changed: Notify::new(),
            writer: Mutex::new(Writer::default()),
            metrics,
        }
    }

    /// The current snapshot (lock-free).
    pub(crate) fn load(&self) -> Arc<Snapshot> {
        self.snapshot.load_full()
    }

    /// Apply fresh rows from the monitor: decide, fence the backends that
    /// lost their role, publish.
    pub(crate) fn apply(&self, rows: Vec<NodeRow>) -> Change {
        let Ok(mut w) = self.writer.lock() else {
            return Change::default();
        };
        let decision = decide(&rows);
        let mut change = Change::default();
        // Backends that lost their role. They are fenced before the new
        // snapshot is published, so that whoever sees the new route (a
        // connection, `/status`) sees it after every relay to them was told
        // to stop; a connection that picked one from the old route is
        // refused when it registers and picks again.
        let mut lost: Vec<Arc<Backend>> = Vec::new();

        // Primary role.
        let new_primary = decision.primary.as_ref().ok().copied();
        let same =
            matches!((&w.primary, new_primary), (Some(b), Some(i)) if b.key() == rows[i].key());
        if !same {
            let old = w.primary.take();
            w.primary = new_primary.map(|i| Arc::new(Backend::new(&rows[i])));
            change.primary_changed = old.is_some() || w.primary.is_some();
            lost.extend(old);
        }

        // Secondary role.
        let keep: HashMap<NodeKey, usize> = decision
            .secondaries
            .iter()
            .map(|&(i, _)| (rows[i].key(), i))
            .collect();
        let stale: Vec<NodeKey> = w
            .secondaries
            .keys()
            .filter(|k| !keep.contains_key(*k))
            .cloned()
            .collect();
        for k in stale {
            lost.extend(w.secondaries.remove(&k));
        }
        for (k, &i) in &keep {
            w.secondaries
                .entry(k.clone())
                .or_insert_with(|| Arc::new(Backend::new(&rows[i])));
        }
        w.unavailable = decision.primary.as_ref().err().cloned();
        w.rows = rows;
        w.loaded = true;
        w.monitor_down_since = None;
        w.direct = None;
        let secondaries = decision
            .secondaries
            .iter()
            .filter_map(|&(i, lag)| {
                w.secondaries
                    .get(&w.rows[i].key())
                    .map(|b| (b.clone(), lag))
            })
            .collect();
        if change.primary_changed {
            self.metrics.route_changes.inc();
        }
        self.fence(lost, FenceReason::RoleLost, &mut change);
        self.publish(&w, secondaries);
        change
    }

    /// The monitor stayed unreachable past the grace period: stop routing.
    /// Existing sessions are fenced only when `fence` is set.
    pub(crate) fn monitor_unreachable(&self, since: Instant, fence: bool) -> Change {
        let Ok(mut w) = self.writer.lock() else {
            return Change::default();
        };
        let mut change = Change::default();
        let mut lost: Vec<Arc<Backend>> = Vec::new();
        if fence {
            if let Some(b) = w.primary.take() {
                change.primary_changed = true;
                self.metrics.route_changes.inc();
                lost.push(b);
            }
            lost.extend(w.secondaries.drain().map(|(_, b)| b));
        }
        w.monitor_down_since = Some(since);
        self.fence(lost, FenceReason::MonitorLost, &mut change);
        let lost = self.follow_direct(&mut w, &mut change);
        self.fence(lost, FenceReason::RoleLost, &mut change);
        self.publish(&w, Vec::new());
        change
    }

    /// What a direct check of the nodes found while the monitor is
    /// unreachable: the only node that takes writes, if any. Past the grace
    /// period it is routed to; a different node than the last known
    /// primary (a failover the proxy did not see) takes its place and the
    /// old primary's sessions are fenced.
    pub(crate) fn direct_verdict(&self, node: Option<NodeKey>) -> Change {
        let Ok(mut w) = self.writer.lock() else {
            return Change::default();
        };
        let mut change = Change::default();
        if w.direct == node {
            return change;
        }
        w.direct = node;
        if w.monitor_down_since.is_some() {
            let lost = self.follow_direct(&mut w, &mut change);
            self.fence(lost, FenceReason::RoleLost, &mut change);
            self.publish(&w, Vec::new());
        }
        change
    }

    /// Past the grace period: when the direct check names another node
    /// than the last known primary, it becomes the primary; returns the
    /// backend that lost the role.
    fn follow_direct(&self, w: &mut Writer, change: &mut Change) -> Option<Arc<Backend>> {
        let k = w.direct.clone()?;
        if w.primary.as_ref().is_some_and(|b| b.key() == k) {
            return None;
        }
        let row = w.rows.iter().find(|r| r.key() == k)?;
        let b = Arc::new(Backend::new(row));
        change.primary_changed = true;
        self.metrics.route_changes.inc();
        w.primary.replace(b)
    }

    /// Close the sessions of `lost` backends, counting them in `change`.
    fn fence(
        &self,
        lost: impl IntoIterator<Item = Arc<Backend>>,
        reason: FenceReason,
        change: &mut Change,
    ) {
        for b in lost {
            let n = b.sessions.close(reason);
            if n > 0 {
                change.fenced_sessions += n;
                change.fenced_backends.push(b.to_string());
            }
        }
    }

    /// Signal every session of this group (shutdown after the drain time).
    pub(crate) fn fence_all(&self, reason: FenceReason) -> usize {
        let Ok(w) = self.writer.lock() else {
            return 0;
        };
        let mut n = 0;
        if let Some(b) = &w.primary {
            n += b.sessions.signal_all(reason);
        }
        for b in w.secondaries.values() {
            n += b.sessions.signal_all(reason);
        }
        n
    }

    fn publish(&self, w: &Writer, secondaries: Vec<(Arc<Backend>, u64)>) {
        let version = self.snapshot.load().version + 1;
        let (primary, secondaries) = if let Some(since) = w.monitor_down_since {
            let confirmed = match (&w.primary, &w.direct) {
                (Some(b), Some(k)) if b.key() == *k => Some(b.clone()),
                _ => None,
            };
            (
                confirmed.ok_or(Unavailable::MonitorUnreachable { since }),
                Vec::new(),
            )
        } else if !w.loaded {
            (Err(Unavailable::NotLoaded), Vec::new())
        } else {
            let p = match (&w.primary, &w.unavailable) {
                (Some(b), _) => Ok(b.clone()),
                (None, Some(u)) => Err(u.clone()),
                (None, None) => Err(Unavailable::NoWritableNode),
            };
            (p, secondaries)
        };
        let mut nodes: Vec<NodeAddr> = Vec::new();
        for r in &w.rows {
            let a = NodeAddr {
                host: r.host.clone(),
                port: r.port,
            };
            if !nodes.contains(&a) {
                nodes.push(a);
            }
        }
        self.metrics.primary_known.set(i64::from(primary.is_ok()));
        self.snapshot.store(Arc::new(Snapshot {
            version,
            primary,
            secondaries,
            nodes,
        }));
        self.changed.notify_waiters();
    }

    /// Wait until `pick` finds a node, the deadline passes, or shutdown.
    /// Cancel-safe: dropping the future only stops waiting.
    pub(crate) async fn wait_for<T>(
        &self,
        mut pick: impl FnMut(&Snapshot) -> Result<T, Unavailable>,
        deadline: Instant,
        shutdown: &tokio_util::sync::CancellationToken,
    ) -> Result<T, WaitError> {
        loop {
            let notified = self.changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let snap = self.load();
            let why = match pick(&snap) {
                Ok(t) => return Ok(t),
                Err(u) => u,
            };
            if shutdown.is_cancelled() {
                return Err(WaitError::Shutdown);
            }
            tokio::select! {
                _ = &mut notified => {}
                _ = tokio::time::sleep_until(deadline) => return Err(WaitError::Timeout(why)),
                _ = shutdown.cancelled() => return Err(WaitError::Shutdown),
            }
        }
    }

    /// Rows last read from the monitor (for `/status`).
    pub(crate) fn rows(&self) -> Vec<NodeRow> {
        self.writer
            .lock()
            .map(|w| w.rows.clone())
            .unwrap_or_default()
    }

    /// Sessions relayed per backend role (for `/status`).
    pub(crate) fn session_counts(&self) -> (usize, usize) {
        self.writer
            .lock()
            .map(|w| {
                (
                    w.primary.as_ref().map_or(0, |b| b.sessions.len()),
                    w.secondaries.values().map(|b| b.sessions.len()).sum(),
                )
            })
            .unwrap_or((0, 0))
    }
}

/// Every formation group the proxy routes to.
#[derive(Debug, Default)]
pub(crate) struct RouteRegistry {
    groups: Mutex<HashMap<GroupKey, Arc<GroupRoute>>>,
}

impl RouteRegistry {
    pub(crate) fn get_or_create(&self, key: &GroupKey) -> Arc<GroupRoute> {
        match self.groups.lock() {
            Ok(mut g) => g
                .entry(key.clone())
                .or_insert_with(|| Arc::new(GroupRoute::new(key.clone())))
                .clone(),
            // A poisoned map only happens after a panic elsewhere; keep
            // serving with a detached route rather than panic again.
            Err(_) => Arc::new(GroupRoute::new(key.clone())),
        }
    }

    pub(crate) fn all(&self) -> Vec<Arc<GroupRoute>> {
        let mut v: Vec<Arc<GroupRoute>> = self
            .groups
            .lock()
            .map(|g| g.values().cloned().collect())
            .unwrap_or_default();
        v.sort_by(|a, b| a.key.cmp(&b.key));
        v
    }

    /// Drop groups no listener uses any more, once they have no sessions
    /// left (until then the follower keeps following them, so that their
    /// sessions are still fenced on a failover).
    pub(crate) fn retain(&self, keys: &[GroupKey]) {
        if let Ok(mut g) = self.groups.lock() {
            g.retain(|k, route| keys.contains(k) || route.session_counts() != (0, 0));
        }
    }

    /// Every node known in `formation`, for cancel broadcasts.
    pub(crate) fn nodes_of_formation(&self, formation: &str) -> Vec<NodeAddr> {
        let mut out: Vec<NodeAddr> = Vec::new();
        for g in self.all().iter().filter(|g| g.key.formation == formation) {
            for n in &g.load().nodes {
                if !out.contains(n) {
                    out.push(n.clone());
                }
            }
        }
        out
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use NodeState::*;

    pub(crate) fn row(id: i64, reported: NodeState, goal: NodeState) -> NodeRow {
        NodeRow {
            node_id: id,
            name: format!("node_{id}"),
            host: "127.0.0.1".into(),
            port: 5400 + id as u16,
            group_id: 0,
            reported,
            goal,
            candidate_priority: 50,
            replication_quorum: true,
            tli: 1,
            lsn: Lsn(1000),
            health: Health::Good,
        }
    }

    fn key() -> GroupKey {
        GroupKey {
            formation: "default".into(),
            group: 0,
        }
    }

    #[test]
    fn primary_needs_goal_and_reported_writable() {
        for (reported, goal, is_primary) in [
            (Single, Single, true),
            (WaitPrimary, WaitPrimary, true),
            (Primary, Primary, true),
            (Primary, ApplySettings, true),
            (ApplySettings, Primary, true),
            (JoinPrimary, Primary, true),
            (WaitPrimary, Primary, true),
            (Init, Single, false),
            (Primary, Draining, false),
            (Draining, Draining, false),
            (StopReplication, WaitPrimary, false),
            (Primary, PrepareMaintenance, false),
            (Secondary, Secondary, false),
        ] {
            let d = decide(&[row(1, reported, goal)]);
            assert_eq!(d.primary.is_ok(), is_primary, "{reported}/{goal}");
        }
    }

    #[test]
    fn reasons_for_no_primary() {
        assert_eq!(decide(&[]).primary, Err(Unavailable::NoNodes));
        let d = decide(&[
            row(1, Primary, Draining),
            row(2, Secondary, PreparePromotion),
        ]);
        assert!(
            matches!(d.primary, Err(Unavailable::Promoting { ref name, .. }) if name == "node_2")
        );
        let d = decide(&[row(1, Primary, Draining), row(2, Secondary, Secondary)]);
        assert!(
            matches!(d.primary, Err(Unavailable::Demoting { ref name, .. }) if name == "node_1")
        );
        let d = decide(&[
            row(1, Demoted, Demoted),
            row(2, StopReplication, WaitPrimary),
        ]);
        assert!(
            matches!(d.primary, Err(Unavailable::Promoting { ref name, goal: WaitPrimary, .. }) if name == "node_2")
        );
        let d = decide(&[row(1, Secondary, Secondary), row(2, CatchingUp, CatchingUp)]);
        assert_eq!(d.primary, Err(Unavailable::NoWritableNode));
        let d = decide(&[row(1, Primary, Primary), row(2, Single, Single)]);
        assert!(matches!(d.primary, Err(Unavailable::Ambiguous { .. })));
        let d = decide(&[row(1, Dropped, Dropped)]);
        assert_eq!(d.primary, Err(Unavailable::NoNodes));
        assert!(Unavailable::Demoting {
            name: "a".into(),
            reported: Primary,
            goal: Draining
        }
        .to_string()
        .contains("failover is in progress"));
    }

    #[test]
    fn secondaries_sorted_by_lag_and_filtered() {
        let mut p = row(1, Primary, Primary);
        p.lsn = Lsn(10_000);
        let mut a = row(2, Secondary, Secondary);
        a.lsn = Lsn(9_000);
        let mut b = row(3, Secondary, Secondary);
        b.lsn = Lsn(9_900);
        let mut bad = row(4, Secondary, Secondary);
        bad.health = Health::Bad;
        let catching = row(5, CatchingUp, Secondary);
        let mut unknown = row(6, Secondary, Secondary);
        unknown.health = Health::Unknown;
        unknown.lsn = Lsn(20_000);
        let rows = vec![p, a, b, bad, catching, unknown];
        let d = decide(&rows);
        assert_eq!(d.primary, Ok(0));
        assert_eq!(d.secondaries, vec![(5, 0), (2, 100), (1, 1000)]);
    }

    #[test]
    fn read_only_pick_round_robins_the_least_lagging_tier() {
        let g = GroupRoute::new(key());
        let mut p = row(1, Primary, Primary);
        p.lsn = Lsn(100_000_000);
        let mut a = row(2, Secondary, Secondary);
        a.lsn = Lsn(99_999_000);
        let mut b = row(3, Secondary, Secondary);
        b.lsn = Lsn(99_000_000);
        let mut far = row(4, Secondary, Secondary);
        far.lsn = Lsn(10_000_000);
        g.apply(vec![p, a, b, far]);
        let snap = g.load();
        let rr = AtomicUsize::new(0);
        let policy = ReadOnlyPolicy {
            fallback_to_primary: false,
            max_lag_bytes: None,
            lag_tolerance_bytes: 16 << 20,
        };
        let picks: Vec<i64> = (0..4)
            .map(|_| snap.pick_read_only(&policy, &rr).unwrap().node_id)
            .collect();
        assert_eq!(picks, vec![2, 3, 2, 3]);
        let strict = ReadOnlyPolicy {
            lag_tolerance_bytes: 0,
            ..policy.clone()
        };
        assert_eq!(snap.pick_read_only(&strict, &rr).unwrap().node_id, 2);
        let bounded = ReadOnlyPolicy {
            max_lag_bytes: Some(500),
            ..strict.clone()
        };
        assert_eq!(
            snap.pick_read_only(&bounded, &rr).err(),
            Some(Unavailable::NoSecondary)
        );
        let fallback = ReadOnlyPolicy {
            fallback_to_primary: true,
            ..bounded
        };
        assert_eq!(snap.pick_read_only(&fallback, &rr).unwrap().node_id, 1);
    }

    #[test]
    fn apply_fences_the_old_primary_only_when_it_changes() {
        let g = GroupRoute::new(key());
        assert_eq!(
            g.load().primary.as_ref().err(),
            Some(&Unavailable::NotLoaded)
        );
        let c = g.apply(vec![row(1, Primary, Primary), row(2, Secondary, Secondary)]);
        assert!(c.primary_changed);
        let first = g.load().primary.clone().unwrap();
        let reg = first.sessions.register(1);
        // Same primary, different LSNs and health: nothing fenced.
        let mut again = row(1, Primary, ApplySettings);
        again.lsn = Lsn(5);
        let c = g.apply(vec![again, row(2, Secondary, Secondary)]);
        assert!(!c.primary_changed);
        assert_eq!(reg.signal.fired(), None);
        assert!(Arc::ptr_eq(&first, g.load().primary.as_ref().unwrap()));
        // Failover starts: the old primary is fenced at once.
        let c = g.apply(vec![
            row(1, Primary, Draining),
            row(2, Secondary, PreparePromotion),
        ]);
        assert!(c.primary_changed);
        assert_eq!(c.fenced_sessions, 1);
        assert_eq!(reg.signal.fired(), Some(FenceReason::RoleLost));
        assert!(g.load().primary.is_err());
        // New primary.
        let c = g.apply(vec![
            row(1, Demoted, Demoted),
            row(2, WaitPrimary, WaitPrimary),
        ]);
        assert!(c.primary_changed);
        assert_eq!(g.load().primary.as_ref().unwrap().node_id, 2);
    }

    #[test]
    fn address_change_is_a_new_backend() {
        let g = GroupRoute::new(key());
        g.apply(vec![row(1, Primary, Primary)]);
        let reg = g.load().primary.as_ref().unwrap().sessions.register(1);
        let mut moved = row(1, Primary, Primary);
        moved.port = 7000;
        let c = g.apply(vec![moved]);
        assert!(c.primary_changed);
        assert_eq!(reg.signal.fired(), Some(FenceReason::RoleLost));
    }

    #[test]
    fn promoted_secondary_loses_read_only_sessions() {
        let g = GroupRoute::new(key());
        g.apply(vec![row(1, Primary, Primary), row(2, Secondary, Secondary)]);
        let ro = g.load().secondaries[0].0.sessions.register(9);
        g.apply(vec![row(1, Primary, Primary), row(2, Secondary, Secondary)]);
        assert_eq!(ro.signal.fired(), None);
        g.apply(vec![
            row(1, Primary, Draining),
            row(2, Secondary, PreparePromotion),
        ]);
        assert_eq!(ro.signal.fired(), Some(FenceReason::RoleLost));
    }

    #[test]
    fn monitor_loss_keeps_sessions_unless_asked() {
        let g = GroupRoute::new(key());
        g.apply(vec![row(1, Primary, Primary)]);
        let reg = g.load().primary.as_ref().unwrap().sessions.register(1);
        g.monitor_unreachable(Instant::now(), false);
        assert!(matches!(
            g.load().primary,
            Err(Unavailable::MonitorUnreachable { .. })
        ));
        assert_eq!(reg.signal.fired(), None);
        // The monitor comes back with the same primary: same backend.
        let c = g.apply(vec![row(1, Primary, Primary)]);
        assert!(!c.primary_changed);
        assert_eq!(reg.signal.fired(), None);
        g.monitor_unreachable(Instant::now(), true);
        assert_eq!(reg.signal.fired(), Some(FenceReason::MonitorLost));
    }

    #[test]
    fn without_the_monitor_the_nodes_own_word_routes() {
        let g = GroupRoute::new(key());
        g.apply(vec![row(1, Primary, Primary), row(2, Secondary, Secondary)]);
        let reg = g.load().primary.as_ref().unwrap().sessions.register(1);
        // Within the grace period a direct verdict changes nothing.
        g.direct_verdict(Some(row(1, Primary, Primary).key()));
        assert_eq!(g.load().primary.as_ref().unwrap().node_id, 1);
        // Past it, the node that says it takes writes keeps the route.
        g.monitor_unreachable(Instant::now(), false);
        assert_eq!(g.load().primary.as_ref().unwrap().node_id, 1);
        assert_eq!(reg.signal.fired(), None);
        // No node takes writes: held, sessions kept.
        g.direct_verdict(None);
        assert!(matches!(
            g.load().primary,
            Err(Unavailable::MonitorUnreachable { .. })
        ));
        assert_eq!(reg.signal.fired(), None);
        // Another node took over while the proxy was blind: it is routed
        // to, the old primary's sessions end.
        let c = g.direct_verdict(Some(row(2, Secondary, Secondary).key()));
        assert!(c.primary_changed);
        assert_eq!(g.load().primary.as_ref().unwrap().node_id, 2);
        assert_eq!(reg.signal.fired(), Some(FenceReason::RoleLost));
        // The monitor is back: its word wins again.
        g.apply(vec![
            row(1, Demoted, Demoted),
            row(2, WaitPrimary, WaitPrimary),
        ]);
        assert_eq!(g.load().primary.as_ref().unwrap().node_id, 2);
    }

    #[tokio::test(start_paused = true)]
    async fn waiters_wake_when_a_primary_appears() {
        let g = Arc::new(GroupRoute::new(key()));
        g.apply(vec![row(1, Primary, Draining)]);
        let shutdown = tokio_util::sync::CancellationToken::new();
        let deadline = Instant::now() + std::time::Duration::from_secs(30);
        let g2 = g.clone();
        let s2 = shutdown.clone();
        let waiter = tokio::spawn(async move {
            g2.wait_for(|s| s.primary.clone(), deadline, &s2)
                .await
                .map(|b| b.node_id)
        });
        tokio::time::sleep(std::time::Duration::from_secs(5)).await;
        g.apply(vec![row(2, WaitPrimary, WaitPrimary)]);
        assert_eq!(waiter.await.unwrap(), Ok(2));
        // And a timeout reports why.
        g.apply(vec![row(2, Primary, Draining)]);
        let deadline = Instant::now() + std::time::Duration::from_secs(1);
        let r = g.wait_for(|s| s.primary.clone(), deadline, &shutdown).await;
        assert!(matches!(
            r,
            Err(WaitError::Timeout(Unavailable::Demoting { .. }))
        ));
    }

    #[test]
    fn registry_lists_nodes_of_a_formation() {
        let r = RouteRegistry::default();
        let g0 = r.get_or_create(&key());
        let g1 = r.get_or_create(&GroupKey {
            formation: "default".into(),
            group: 1,
        });
        let other = r.get_or_create(&GroupKey {
            formation: "other".into(),
            group: 0,
        });
        g0.apply(vec![row(1, Primary, Primary), row(2, Secondary, Secondary)]);
        g1.apply(vec![row(3, Primary, Primary)]);
        other.apply(vec![row(9, Primary, Primary)]);
        assert_eq!(r.nodes_of_formation("default").len(), 3);
        assert!(Arc::ptr_eq(&g0, &r.get_or_create(&key())));
        // An unused group with a session stays followed until it ends.
        let session = g1.load().primary.clone().unwrap().sessions.register(1);
        r.retain(&[key()]);
        assert_eq!(r.all().len(), 2);
        drop(session);
        r.retain(&[key()]);
        assert_eq!(r.all().len(), 1);
    }
}
