//! Reports that reach the monitor while the service loop is busy.
//!
//! The loop of `pg_autoctl run` ([`super::service`]) reports to the monitor
//! once per iteration, then carries out a transition or enforces the
//! current state. Some of those steps take seconds (Postgres starting
//! after a crash, waiting for a synchronous standby, a rewind, a base
//! backup). Without reports for that long, the monitor took a primary
//! whose Postgres was only restarting for gone and failed it over, and the
//! primary's lease ran out, so that its watchdog stopped Postgres whenever
//! a standby was not streaming yet, over and over (both found by the
//! fault campaign, bench/faults).
//!
//! So a heartbeat task reports for the loop whenever the loop has not
//! reported for [`STALE`]: the state the node is in (the transition under
//! way is not done), whether Postgres counts as running, and the standbys
//! streaming from a primary. It renews or revokes the lease from the reply
//! exactly as the loop does ([`apply_lease`]). It does not act on the goal:
//! the loop receives it again at its next report. One [`Reporter`] lock
//! orders the two callers, and the heartbeat reads the state only once it
//! holds the lock, so the monitor never sees a state older than one it
//! already received.

use super::lease::Lease;
use crate::monitor::{Monitor, Report};
use crate::pg::process::Postgres;
use pgaf_fsm::NodeState;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The heartbeat reports when the loop has not for this long.
pub const STALE: Duration = Duration::from_millis(500);
/// How often the heartbeat looks.
const PERIOD: Duration = Duration::from_millis(250);

/// What a report says that the heartbeat cannot find out itself.
#[derive(Debug, Clone)]
struct Shared {
    current: NodeState,
    group_id: i32,
    last_report: Instant,
    /// The last report was the heartbeat's.
    by_heartbeat: bool,
    /// The loop's last look at the WAL receiver: the node it streamed from,
    /// how long ago it had heard from it, and when the loop looked.
    upstream: (i64, i32, Instant),
}

/// The report slot shared by the loop and the heartbeat.
#[derive(Clone)]
pub struct Reporter {
    shared: Arc<Mutex<Shared>>,
    /// Held for the whole of a `node_active` call.
    slot: Arc<tokio::sync::Mutex<()>>,
}

impl Reporter {
    pub fn new(current: NodeState, group_id: i32) -> Reporter {
        Reporter {
            shared: Arc::new(Mutex::new(Shared {
                current,
                group_id,
                last_report: Instant::now(),
                by_heartbeat: false,
                upstream: (0, -1, Instant::now()),
            })),
            slot: Arc::new(tokio::sync::Mutex::new(())),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Shared> {
        self.shared.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The loop's view, updated at every change of state and every
    /// iteration.
    pub fn set(&self, current: NodeState, group_id: i32) {
        let mut s = self.lock();
        s.current = current;
        s.group_id = group_id;
    }

    /// Take the report slot (the loop, around its own call).
    pub async fn slot(&self) -> tokio::sync::MutexGuard<'_, ()> {
        self.slot.lock().await
    }

    /// What the loop last saw of its WAL receiver (see [`Report`]).
    pub fn set_upstream(&self, node_id: i64, age_ms: i32) {
        self.lock().upstream = (node_id, age_ms, Instant::now());
    }

    /// A report of the loop reached the monitor.
    pub fn reported(&self) {
        let mut s = self.lock();
        s.last_report = Instant::now();
        s.by_heartbeat = false;
    }

    /// A report of the heartbeat reached the monitor; whether the one
    /// before was the loop's (a busy spell begins).
    fn reported_by_heartbeat(&self) -> bool {
        let mut s = self.lock();
        s.last_report = Instant::now();
        !std::mem::replace(&mut s.by_heartbeat, true)
    }

    fn stale(&self) -> bool {
        self.lock().last_report.elapsed() >= STALE
    }
}

/// Renew the lease with a writable goal, revoke it otherwise; `ms` is the
/// lease the monitor granted (`None`: an upstream monitor, no lease).
pub fn apply_lease(lease: &Lease, goal: NodeState, ms: Option<i64>, sent: Instant) {
    match ms {
        Some(ms) => {
            lease.set_enabled(true);
            if goal.can_take_writes() {
                lease.renew(sent, Duration::from_millis(ms.max(0) as u64));
            } else {
                lease.revoke();
            }
        }
        None => lease.set_enabled(false),
    }
}

/// What the heartbeat needs of the node.
pub struct Heartbeat {
    pub reporter: Reporter,
    pub lease: Lease,
    pub pg: Postgres,
    pub timeouts: crate::config::Timeouts,
    /// The monitor's URI, as the configuration says now (`disable|enable
    /// monitor` change it while the service runs).
    pub monitor_uri: tokio::sync::watch::Receiver<String>,
    pub formation: String,
    pub node_id: i64,
}

impl Heartbeat {
    /// Report for the loop whenever it is late, forever.
    pub fn spawn(mut self) {
        tokio::spawn(async move {
            let mut monitor: Option<Monitor> = None;
            loop {
                tokio::time::sleep(PERIOD).await;
                if self.monitor_uri.has_changed().unwrap_or(false) {
                    self.monitor_uri.mark_unchanged();
                    monitor = None;
                }
                let uri = self.monitor_uri.borrow().clone();
                if uri == crate::config::MONITOR_DISABLED || !self.reporter.stale() {
                    continue;
                }
                let _slot = self.reporter.slot().await;
                // The loop may have reported while we waited for the slot.
                if !self.reporter.stale() {
                    continue;
                }
                if monitor.as_ref().is_none_or(|m| m.client().is_closed()) {
                    monitor = Monitor::connect(&uri, super::MONITOR_TIMEOUT).await.ok();
                }
                let Some(m) = monitor.as_mut() else { continue };
                let s = self.reporter.lock().clone();
                let report = Report {
                    formation: self.formation.clone(),
                    node_id: self.node_id,
                    group_id: s.group_id,
                    state: s.current,
                    pg_is_running: super::service::postgres_counts_as_running(
                        &self.pg,
                        &self.lease,
                        s.current,
                        &self.timeouts,
                    ),
                    // 0/0 and timeline 0: unknown, the monitor keeps the
                    // values it has.
                    tli: 0,
                    lsn: pgaf_fsm::Lsn::ZERO,
                    rep_state: String::new(),
                    // What the loop saw, aged since: it never vouches for a
                    // primary longer than it heard from it.
                    upstream_node_id: s.upstream.0,
                    upstream_age_ms: if s.upstream.1 < 0 {
                        -1
                    } else {
                        let since =
                            i32::try_from(s.upstream.2.elapsed().as_millis()).unwrap_or(i32::MAX);
                        s.upstream.1.saturating_add(since)
                    },
                    streaming: if s.current.can_take_writes() {
                        self.lease.streaming_now()
                    } else {
                        None
                    },
                };
                let sent = Instant::now();
                match tokio::time::timeout(super::MONITOR_TIMEOUT, m.node_active(&report)).await {
                    Ok(Ok(a)) => {
                        if self.reporter.reported_by_heartbeat() {
                            tracing::info!(
                                "The service loop is busy (state \"{}\"): reporting for it",
                                s.current
                            );
                        }
                        apply_lease(&self.lease, a.goal, a.lease_timeout_ms, sent);
                        if a.goal != s.current {
                            tracing::debug!(
                                "Heartbeat: the monitor assigns \"{}\" (the current step ends first)",
                                a.goal
                            );
                        }
                    }
                    Ok(Err(e)) => {
                        tracing::debug!("Heartbeat: {e}");
                        monitor = None;
                    }
                    Err(_) => monitor = None,
                }
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lease_follows_the_goal() {
        let lease = Lease::default();
        apply_lease(&lease, NodeState::Primary, Some(2_000), Instant::now());
        assert!(lease.enabled() && lease.valid());
        apply_lease(&lease, NodeState::Draining, Some(2_000), Instant::now());
        assert!(lease.enabled() && !lease.valid(), "a demoted node has none");
        apply_lease(&lease, NodeState::Primary, None, Instant::now());
        assert!(!lease.enabled() && lease.valid(), "no lease from upstream");
    }

    #[tokio::test]
    async fn the_heartbeat_reports_only_when_the_loop_is_late() {
        let r = Reporter::new(NodeState::Secondary, 0);
        assert!(!r.stale());
        r.lock().last_report = Instant::now() - STALE;
        assert!(r.stale());
        r.reported();
        assert!(!r.stale());
        // The slot orders the two callers.
        let g = r.slot().await;
        assert!(r.slot.try_lock().is_err());
        drop(g);
        assert!(r.slot.try_lock().is_ok());
    }
}
