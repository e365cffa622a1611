//! Fencing: the per-backend registry of relayed sessions, and the signal
//! that ends them.
//!
//! Every [`Backend`](crate::route::Backend) (one node in one role, for as
//! long as it keeps that role) owns a [`SessionRegistry`]. A session
//! registers a [`SessionSignal`] there when its relay starts. When the route
//! updater decides the node lost its role (the monitor reports a failover,
//! the node's address changed, it stopped being an eligible secondary) or
//! the proxy stops, it calls [`SessionRegistry::close`]: every registered
//! signal is set and its task woken, and later registrations are refused,
//! so no session can slip in after the fence.
//!
//! The hot path pays one relaxed atomic load per wakeup
//! ([`SessionSignal::poll_fired`]); the waker is stored once per session
//! (a relay is always polled by the task that started it). Locks are taken
//! only to register, deregister and fence.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

/// Why a session was ended by the proxy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FenceReason {
    /// The node is no longer the primary (or no longer an eligible
    /// secondary for a read-only listener).
    RoleLost,
    /// The monitor stayed unreachable past the grace period and
    /// `fence_on_monitor_loss` is set.
    MonitorLost,
    /// The proxy is shutting down and the drain time is over.
    Shutdown,
}

impl FenceReason {
    fn code(self) -> u8 {
        match self {
            FenceReason::RoleLost => 1,
            FenceReason::MonitorLost => 2,
            FenceReason::Shutdown => 3,
        }
    }

    fn from_code(c: u8) -> Option<FenceReason> {
        match c {
            1 => Some(FenceReason::RoleLost),
            2 => Some(FenceReason::MonitorLost),
            3 => Some(FenceReason::Shutdown),
            _ => None,
        }
    }

    /// The metric label.
    pub(crate) fn as_label(self) -> &'static str {
        match self {
            FenceReason::RoleLost => "role_lost",
            FenceReason::MonitorLost => "monitor_lost",
            FenceReason::Shutdown => "shutdown",
        }
    }
}

/// The flag a session checks on every wakeup.
#[derive(Debug, Default)]
pub(crate) struct SessionSignal {
    state: AtomicU8,
    waker: Mutex<Option<Waker>>,
}

impl SessionSignal {
    /// Has the session been told to end? Stores the task's waker on the
    /// first call so that [`fire`](Self::fire) can wake it.
    #[inline]
    pub(crate) fn poll_fired(
        &self,
        cx: &mut Context<'_>,
        waker_stored: &mut bool,
    ) -> Poll<FenceReason> {
        if let Some(r) = FenceReason::from_code(self.state.load(Ordering::Acquire)) {
            return Poll::Ready(r);
        }
        if !*waker_stored {
            *waker_stored = true;
            if let Ok(mut w) = self.waker.lock() {
                *w = Some(cx.waker().clone());
            }
            // Re-check: a fence may have fired before the waker was stored.
            if let Some(r) = FenceReason::from_code(self.state.load(Ordering::Acquire)) {
                return Poll::Ready(r);
            }
        }
        Poll::Pending
    }

    /// The reason, if the signal fired.
    pub(crate) fn fired(&self) -> Option<FenceReason> {
        FenceReason::from_code(self.state.load(Ordering::Acquire))
    }

    fn fire(&self, reason: FenceReason) {
        // The first reason wins.
        if self
            .state
            .compare_exchange(0, reason.code(), Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
        {
            let waker = self.waker.lock().ok().and_then(|mut w| w.take());
            if let Some(w) = waker {
                w.wake();
            }
        }
    }
}

#[derive(Debug, Default)]
struct Inner {
    closed: Option<FenceReason>,
    sessions: HashMap<u64, Arc<SessionSignal>>,
}

/// The sessions relayed to one backend in one role.
#[derive(Debug, Default)]
pub(crate) struct SessionRegistry {
    inner: Mutex<Inner>,
}

/// Deregisters the session when dropped.
#[derive(Debug)]
pub(crate) struct Registration {
    registry: Arc<SessionRegistry>,
    id: u64,
    pub(crate) signal: Arc<SessionSignal>,
}

impl Drop for Registration {
    fn drop(&mut self) {
        if let Ok(mut inner) = self.registry.inner.lock() {
            inner.sessions.remove(&self.id);
        }
    }
}

impl SessionRegistry {
    /// Register session `id`. If the registry is already fenced, the
    /// returned signal has fired already.
    pub(crate) fn register(self: &Arc<Self>, id: u64) -> Registration {
        let signal = Arc::new(SessionSignal::default());
        match self.inner.lock() {
            Ok(mut inner) => {
                if let Some(reason) = inner.closed {
                    signal.fire(reason);
                } else {
                    inner.sessions.insert(id, signal.clone());
                }
            }
            Err(_) => signal.fire(FenceReason::Shutdown),
        }
        Registration {
            registry: self.clone(),
            id,
            signal,
        }
    }

    /// Fence: fire every registered signal and refuse later registrations.
    /// Returns how many sessions were signalled.
    pub(crate) fn close(&self, reason: FenceReason) -> usize {
        let sessions: Vec<Arc<SessionSignal>> = match self.inner.lock() {
            Ok(mut inner) => {
                if inner.closed.is_none() {
                    inner.closed = Some(reason);
                }
                inner.sessions.values().cloned().collect()
            }
            Err(_) => return 0,
        };
        for s in &sessions {
            s.fire(reason);
        }
        sessions.len()
    }

    /// Fire every registered signal without closing the registry (shutdown
    /// of sessions whose backend keeps its role).
    pub(crate) fn signal_all(&self, reason: FenceReason) -> usize {
        let sessions: Vec<Arc<SessionSignal>> = match self.inner.lock() {
            Ok(inner) => inner.sessions.values().cloned().collect(),
            Err(_) => return 0,
        };
        for s in &sessions {
            s.fire(reason);
        }
        sessions.len()
    }

    #[cfg(test)]
    pub(crate) fn is_closed(&self) -> bool {
        self.inner.lock().map_or(true, |i| i.closed.is_some())
    }

    /// Sessions currently registered.
    pub(crate) fn len(&self) -> usize {
        self.inner.lock().map_or(0, |i| i.sessions.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::future::poll_fn;

    #[tokio::test]
    async fn close_wakes_registered_sessions() {
        let reg = Arc::new(SessionRegistry::default());
        let r1 = reg.register(1);
        let signal = r1.signal.clone();
        let task = tokio::spawn(async move {
            let mut stored = false;
            poll_fn(|cx| signal.poll_fired(cx, &mut stored)).await
        });
        tokio::task::yield_now().await;
        assert_eq!(reg.len(), 1);
        assert_eq!(reg.close(FenceReason::RoleLost), 1);
        let reason = tokio::time::timeout(std::time::Duration::from_secs(5), task)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(reason, FenceReason::RoleLost);
        drop(r1);
        assert_eq!(reg.len(), 0);
    }

    #[test]
    fn late_registrations_are_fenced_at_once() {
        let reg = Arc::new(SessionRegistry::default());
        reg.close(FenceReason::Shutdown);
        let r = reg.register(7);
        assert_eq!(r.signal.fired(), Some(FenceReason::Shutdown));
        assert_eq!(reg.len(), 0);
        assert!(reg.is_closed());
    }

    #[test]
    fn first_reason_wins() {
        let reg = Arc::new(SessionRegistry::default());
        let r = reg.register(1);
        reg.signal_all(FenceReason::Shutdown);
        reg.close(FenceReason::RoleLost);
        assert_eq!(r.signal.fired(), Some(FenceReason::Shutdown));
    }
}
