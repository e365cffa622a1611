//! The keeper's side of the lease (see the README's timing model).
//!
//! A primary may accept writes only while it holds a lease the monitor
//! renews with every reply that keeps it writable. When the lease runs out
//! (the monitor is unreachable or slow), the primary keeps running only
//! while every standby it knows of still streams from it: then no standby
//! can be promoted. Otherwise a watchdog thread, independent of the keeper's
//! async loop, kills Postgres at once. The monitor, for its part, only opens
//! a new primary once this lease expired and the new primary stopped
//! streaming from the old one for `fence_timeout`, which is longer than the
//! watchdog needs to notice.

use crate::pg::process::Postgres;
use std::collections::BTreeSet;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// How often the watchdog looks.
const WATCHDOG_PERIOD: Duration = Duration::from_millis(100);
/// Safety margin taken off the lease the monitor grants.
pub const LEASE_MARGIN: Duration = Duration::from_millis(500);
/// A standby counts as streaming when it replied within this many ms (it
/// replies every 500 ms, `wal_receiver_status_interval`). Bounded by the
/// monitor's `fence_timeout` (2 s): with the observation's validity and
/// the watchdog's period, the primary fences itself within 1.4 + 0.15 +
/// 0.3 + 0.1 s of its last standby's last reply.
pub const STREAMING_REPLY_MS: i64 = 1_400;
/// After the process was stopped for a while, how long the watchdog
/// waits for fresh observations before it may fence.
const THAWED_GRACE: Duration = Duration::from_millis(400);
/// How long one observation of streaming standbys stays valid.
const WITNESS_VALIDITY: Duration = Duration::from_millis(300);

#[derive(Debug, Default)]
struct LeaseState {
    /// The monitor grants leases (ours); with an upstream monitor the keeper
    /// follows upstream's network-partition rule instead.
    enabled: bool,
    /// Postgres is meant to accept writes (a writable current state).
    writable: bool,
    /// Until when the lease is held.
    valid_until: Option<Instant>,
    /// Until when the last observation of streaming standbys holds.
    witnesses_until: Option<Instant>,
    /// Standbys that must stream from us for the witness rule: the other
    /// nodes the monitor listed, plus any seen streaming since the lease was
    /// last renewed.
    required: BTreeSet<i64>,
    seen: BTreeSet<i64>,
    fenced: bool,
    /// The last observation of streaming standbys, and when it was made.
    last: Option<(Instant, Vec<i64>)>,
}

#[derive(Clone, Default)]
pub struct Lease {
    inner: Arc<Mutex<LeaseState>>,
}

impl Lease {
    fn lock(&self) -> MutexGuard<'_, LeaseState> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn set_enabled(&self, enabled: bool) {
        self.lock().enabled = enabled;
    }

    pub fn enabled(&self) -> bool {
        self.lock().enabled
    }

    /// The lease was renewed by a reply to a call sent at `sent`.
    pub fn renew(&self, sent: Instant, granted: Duration) {
        let mut s = self.lock();
        s.valid_until = Some(sent + granted.saturating_sub(LEASE_MARGIN));
        s.seen.clear();
    }

    /// The monitor's reply made us non-writable: no lease any more.
    pub fn revoke(&self) {
        self.lock().valid_until = None;
    }

    pub fn valid(&self) -> bool {
        let s = self.lock();
        !s.enabled || s.valid_until.is_some_and(|t| Instant::now() < t)
    }

    pub fn set_writable(&self, writable: bool) {
        let mut s = self.lock();
        s.writable = writable;
        if writable {
            s.fenced = false;
        }
    }

    pub fn set_known_standbys(&self, ids: impl IntoIterator<Item = i64>) {
        self.lock().required = ids.into_iter().collect();
    }

    /// An observation of the standbys streaming from us, just made.
    pub fn observe_streaming(&self, ids: &[i64]) {
        let mut s = self.lock();
        s.last = Some((Instant::now(), ids.to_vec()));
        s.seen.extend(ids.iter().copied());
        let streaming: BTreeSet<i64> = ids.iter().copied().collect();
        let all = s
            .required
            .iter()
            .chain(s.seen.iter())
            .all(|id| streaming.contains(id));
        s.witnesses_until = if all {
            Some(Instant::now() + WITNESS_VALIDITY)
        } else {
            None
        };
    }

    /// The standbys streaming from us, from an observation made within
    /// [`WITNESS_VALIDITY`] (`None` when there is none: Postgres is not
    /// a running primary, or could not be asked).
    pub fn streaming_now(&self) -> Option<Vec<i64>> {
        let s = self.lock();
        s.last
            .as_ref()
            .filter(|(at, _)| at.elapsed() < WITNESS_VALIDITY)
            .map(|(_, ids)| ids.clone())
    }

    /// Postgres was fenced and has not been restarted since.
    pub fn fenced(&self) -> bool {
        self.lock().fenced
    }

    pub fn clear_fenced(&self) {
        self.lock().fenced = false;
    }

    /// Whether the primary must be fenced now.
    fn must_fence(&self, now: Instant) -> bool {
        let s = self.lock();
        s.enabled
            && s.writable
            && !s.fenced
            && s.valid_until.is_none_or(|t| now >= t)
            && s.witnesses_until.is_none_or(|t| now >= t)
    }

    /// The lease and the witnesses, for the log.
    fn describe(&self) -> String {
        let s = self.lock();
        let now = Instant::now();
        let lease = match s.valid_until {
            None => "no lease".to_string(),
            Some(t) => format!(
                "lease ran out {} ms ago",
                now.saturating_duration_since(t).as_millis()
            ),
        };
        let seen = match &s.last {
            None => "no standby seen streaming".to_string(),
            Some((at, ids)) => format!(
                "standbys {ids:?} seen streaming {} ms ago",
                at.elapsed().as_millis()
            ),
        };
        format!("{lease}; {seen}; standbys known: {:?}", s.required)
    }

    /// Start the watchdog thread for `pg`.
    pub fn watch(&self, pg: Postgres) -> std::io::Result<()> {
        let lease = self.clone();
        std::thread::Builder::new()
            .name("lease-watchdog".into())
            .spawn(move || {
                let mut last = Instant::now();
                let mut quiet_until: Option<Instant> = None;
                loop {
                std::thread::sleep(WATCHDOG_PERIOD);
                let now = Instant::now();
                // The whole process was stopped (SIGSTOP, a paused VM):
                // what the lease and the witnesses say is as old as the
                // pause. Let the loop and the witness poller look again
                // before deciding; meanwhile Postgres acknowledges nothing
                // a promoted standby lacks, since that standby no longer
                // streams from it (synchronous replication).
                if now.duration_since(last) > WATCHDOG_PERIOD * 5 {
                    quiet_until = Some(now + THAWED_GRACE);
                    tracing::warn!(
                        "The keeper did not run for {} ms: checking the lease again before acting on it",
                        now.duration_since(last).as_millis()
                    );
                }
                last = now;
                if quiet_until.is_some_and(|t| now < t) {
                    continue;
                }
                if lease.must_fence(now) {
                    tracing::error!(
                        "Lost the lease and not every standby streams from this node: \
                         stopping Postgres now to prevent a split brain ({})",
                        lease.describe()
                    );
                    pg.fence();
                    lease.lock().fenced = true;
                }
                }
            })?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fences_only_without_lease_and_witnesses() {
        let l = Lease::default();
        let t0 = Instant::now();
        l.set_enabled(true);
        l.set_writable(true);
        l.set_known_standbys([2, 3]);
        l.renew(t0, Duration::from_secs(2));
        assert!(!l.must_fence(t0 + Duration::from_millis(1400)));
        assert!(
            l.must_fence(t0 + Duration::from_millis(1500)),
            "2 s lease minus the margin"
        );
        // Every known standby streams: keep serving.
        l.observe_streaming(&[2, 3]);
        assert!(!l.must_fence(Instant::now()));
        // One of them stops streaming (it was promoted): fence.
        l.observe_streaming(&[2]);
        assert!(l.must_fence(Instant::now() + Duration::from_secs(5)));
        // A standby seen streaming since the renewal counts too.
        l.renew(Instant::now(), Duration::from_millis(500));
        l.set_known_standbys([2]);
        l.observe_streaming(&[2, 4]);
        l.observe_streaming(&[2]);
        assert!(l.must_fence(Instant::now() + Duration::from_secs(1)));
    }

    #[test]
    fn upstream_monitor_or_read_only_never_fences() {
        let l = Lease::default();
        l.set_writable(true);
        assert!(
            !l.must_fence(Instant::now()),
            "no lease from an upstream monitor"
        );
        l.set_enabled(true);
        l.set_writable(false);
        assert!(
            !l.must_fence(Instant::now()),
            "a standby has nothing to fence"
        );
    }
}
