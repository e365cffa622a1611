//! Health and data predicates over one node, extended
//! with the keeper lease.
//!
//! Upstream bugs fixed here: the
//! "keeper reported after the last bad health check" override of
//! `IsHealthy` applies when that report is *less* than one second old (v2.2
//! tested "at least one second"), and a node whose health was never checked
//! is judged by what its keeper reports instead of being unhealthy forever.

use crate::node::{Health, Node};
use crate::settings::Context;

impl Context {
    /// When the node's current lease started: its last report, or the
    /// monitor's start if that is later (a restarted monitor does not expire
    /// leases it could not have renewed).
    fn lease_start(&self, n: &Node) -> i64 {
        n.report_time.max(self.pg_start_time)
    }

    /// A lease-holding node whose lease ran out: its keeper has not reported
    /// for `lease_timeout`.
    pub fn lease_expired(&self, n: &Node) -> bool {
        n.lease && self.elapsed(self.lease_start(n), self.settings.lease_timeout_ms)
    }

    /// When the lease of `n` expires (expired), on the monitor's clock.
    pub fn lease_expiry(&self, n: &Node) -> crate::node::Timestamp {
        self.lease_start(n) + crate::node::ms(self.settings.lease_timeout_ms)
    }

    /// A standby among `others` says, in a report of a live keeper, that
    /// its WAL receiver streams from `p` and heard from it less than
    /// `standby_witness_ms` ago: `p`'s Postgres is alive, whatever the
    /// monitor's own view of it.
    pub fn witnessed<'a>(&self, p: &Node, mut others: impl Iterator<Item = &'a Node>) -> bool {
        others.any(|o| {
            o.id != p.id
                && o.lease
                && !self.lease_expired(o)
                && o.upstream_node_id == p.id
                && o.upstream_age_ms >= 0
                && i64::from(o.upstream_age_ms) < self.settings.standby_witness_ms
        })
    }

    /// The primary `p` is gone, as a failover needs it to be: its keeper
    /// says Postgres is down; or it holds a lease that expired and no
    /// standby among `others` still streams from it (a primary cut off
    /// from the monitor only keeps its role: its keeper keeps Postgres up
    /// while every standby streams from it, see keeper/src/node/lease.rs);
    /// or, for upstream's keepers, `IsUnhealthy`.
    pub fn primary_is_down<'a>(&self, p: &Node, others: impl Iterator<Item = &'a Node>) -> bool {
        if p.lease && p.pg_is_running {
            return self.lease_expired(p) && !self.witnessed(p, others);
        }
        self.is_unhealthy(Some(p))
    }

    /// Node `a` reported after `p`'s lease expired, so what it says is
    /// news of a group without `p`: a monitor that hears from no standby
    /// decides nothing (always true when `p` holds no lease).
    pub fn reported_since_lease_expiry(&self, a: &Node, p: &Node) -> bool {
        !p.lease || a.report_time >= self.lease_expiry(p)
    }

    /// `IsUnhealthy` (a missing node is unhealthy).
    pub fn is_unhealthy(&self, n: Option<&Node>) -> bool {
        let Some(n) = n else { return true };
        if !n.pg_is_running {
            return true;
        }
        if n.lease {
            return self.lease_expired(n);
        }
        self.elapsed(n.report_time, self.settings.unhealthy_timeout_ms)
            && n.health == Health::Bad
            && n.health_check_time >= self.pg_start_time
            && self.elapsed(self.pg_start_time, self.settings.startup_grace_period_ms)
    }

    /// `IsHealthy` (a missing node is not healthy).
    pub fn is_healthy(&self, n: Option<&Node>) -> bool {
        let Some(n) = n else { return false };
        if n.lease {
            return !self.lease_expired(n) && n.pg_is_running;
        }
        match n.health {
            Health::Bad => {
                n.report_time >= n.health_check_time
                    && !self.elapsed(n.report_time, 1000)
                    && n.pg_is_running
            }
            Health::Unknown => n.pg_is_running,
            Health::Good => n.pg_is_running,
        }
    }

    /// `IsReporting`.
    pub fn is_reporting(&self, n: Option<&Node>) -> bool {
        let Some(n) = n else { return false };
        if n.lease {
            return !self.lease_expired(n);
        }
        !self.elapsed(n.report_time, self.settings.unhealthy_timeout_ms)
    }

    /// `IsDrainTimeExpired`.
    pub fn is_drain_time_expired(&self, n: Option<&Node>) -> bool {
        let Some(n) = n else { return false };
        n.goal == crate::NodeState::DemoteTimeout
            && self.elapsed(n.state_change_time, self.settings.primary_demote_timeout_ms)
    }

    /// `IsHealthySyncStandby`.
    pub fn is_healthy_sync_standby(&self, n: &Node) -> bool {
        n.replication_quorum && n.is(crate::NodeState::Secondary) && self.is_healthy(Some(n))
    }

    /// `CountHealthySyncStandbys`.
    pub fn count_healthy_sync_standbys<'a>(&self, nodes: impl Iterator<Item = &'a Node>) -> usize {
        nodes.filter(|n| self.is_healthy_sync_standby(n)).count()
    }

    /// `CountHealthyCandidates`.
    pub fn count_healthy_candidates<'a>(&self, nodes: impl Iterator<Item = &'a Node>) -> usize {
        nodes
            .filter(|n| {
                n.candidate_priority > 0
                    && n.is(crate::NodeState::Secondary)
                    && self.is_healthy(Some(n))
            })
            .count()
    }
}

/// `WalDifferenceWithin`: true when either node is missing, false when either
/// LSN is unknown (`0/0`).
pub fn wal_difference_within(a: Option<&Node>, b: Option<&Node>, delta: i64) -> bool {
    let (Some(a), Some(b)) = (a, b) else {
        return true;
    };
    if a.lsn.is_zero() || b.lsn.is_zero() {
        return false;
    }
    a.lsn.distance(b.lsn) <= delta.max(0) as u64
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::node::ms;
    use crate::settings::Settings;
    use crate::Lsn;

    fn ctx(now: i64) -> Context {
        Context::new(now, 0, Settings::default())
    }

    fn node() -> Node {
        Node::new(1, "n1", "h", 5432, 0)
    }

    #[test]
    fn unhealthy_needs_silence_bad_check_and_grace() {
        let mut n = node();
        n.health = Health::Bad;
        n.health_check_time = ms(30_000);
        assert!(
            ctx(ms(30_000)).is_unhealthy(Some(&n)),
            "20 s silent, bad check"
        );
        assert!(!ctx(ms(19_999)).is_unhealthy(Some(&n)));
        n.health = Health::Unknown;
        assert!(
            !ctx(ms(60_000)).is_unhealthy(Some(&n)),
            "unknown health never makes it"
        );
        n.pg_is_running = false;
        assert!(
            ctx(0).is_unhealthy(Some(&n)),
            "keeper says Postgres is down"
        );
        assert!(ctx(0).is_unhealthy(None));
    }

    #[test]
    fn startup_grace_period_protects_nodes() {
        let mut n = node();
        n.health = Health::Bad;
        n.health_check_time = ms(25_000);
        let c = Context::new(ms(25_000), ms(20_000), Settings::default());
        assert!(!c.is_unhealthy(Some(&n)), "monitor started 5 s ago");
    }

    /// Upstream v2.2 trusted the keeper over a bad health
    /// check only when its report was at least a second old.
    #[test]
    fn bug_inverted_is_healthy_override_is_fixed() {
        let mut n = node();
        n.health = Health::Bad;
        n.health_check_time = ms(1_000);
        n.report_time = ms(1_500);
        assert!(
            ctx(ms(1_800)).is_healthy(Some(&n)),
            "fresh report overrides the bad check"
        );
        assert!(
            !ctx(ms(5_000)).is_healthy(Some(&n)),
            "stale report does not"
        );
        n.report_time = ms(500);
        assert!(
            !ctx(ms(800)).is_healthy(Some(&n)),
            "report older than the check"
        );
    }

    /// With upstream v2.2, a node whose health was never
    /// checked could not become healthy until the first check.
    #[test]
    fn bug_unknown_health_trusts_the_keeper() {
        let mut n = node();
        assert!(ctx(0).is_healthy(Some(&n)));
        n.pg_is_running = false;
        assert!(!ctx(0).is_healthy(Some(&n)));
    }

    #[test]
    fn lease_holders_are_judged_by_their_lease() {
        let mut n = node();
        n.lease = true;
        n.report_time = ms(10_000);
        n.health = Health::Bad;
        assert!(ctx(ms(11_999)).is_healthy(Some(&n)));
        assert!(!ctx(ms(11_999)).is_unhealthy(Some(&n)));
        assert!(ctx(ms(12_000)).is_unhealthy(Some(&n)));
        assert!(!ctx(ms(12_000)).is_reporting(Some(&n)));
        // A monitor restart renews every lease.
        let c = Context::new(ms(13_000), ms(12_500), Settings::default());
        assert!(!c.lease_expired(&n));
    }

    #[test]
    fn wal_difference() {
        let mut a = node();
        let mut b = node();
        assert!(
            !wal_difference_within(Some(&a), Some(&b), 10),
            "0/0 is unknown"
        );
        a.lsn = Lsn(100);
        b.lsn = Lsn(105);
        assert!(wal_difference_within(Some(&a), Some(&b), 5));
        assert!(!wal_difference_within(Some(&a), Some(&b), 4));
        assert!(wal_difference_within(Some(&a), None, 0));
    }
}
