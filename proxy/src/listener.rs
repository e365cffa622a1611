//! Listeners: the per-listener context every session reads, and the accept
//! loop.
//!
//! [`serve`] takes an already bound listener, the context (behind an
//! `ArcSwap` so a reload changes settings for new connections without
//! rebinding), a stop token and a `TaskTracker`; it returns once the stop
//! token fires. Sessions run on the runtime that accepted them and are
//! tracked for the drain.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::cancel::CancelMap;
use crate::config::{BackendTls, ListenerConfig, ProxySettings};
use crate::connect::Connect;
use crate::metrics::ListenerMetrics;
use crate::route::{GroupRoute, RouteRegistry};

/// State shared by every listener of the process.
pub(crate) struct Shared {
    pub(crate) routes: Arc<RouteRegistry>,
    pub(crate) cancels: Arc<CancelMap>,
    pub(crate) connector: Arc<dyn Connect>,
    /// Fired when the drain starts: waiting and new connections are refused.
    pub(crate) draining: CancellationToken,
    /// Client connections open now (for `max_connections`).
    pub(crate) connections: AtomicUsize,
}

/// Everything a session of one listener needs.
pub(crate) struct ListenerCtx {
    pub(crate) config: ListenerConfig,
    pub(crate) settings: ProxySettings,
    pub(crate) group: Arc<GroupRoute>,
    pub(crate) tls: Option<TlsAcceptor>,
    /// TLS towards the nodes (terminating listeners whose `backend_tls` is
    /// not `disable`).
    pub(crate) backend_tls: Option<(BackendTls, tokio_rustls::TlsConnector)>,
    pub(crate) metrics: ListenerMetrics,
    pub(crate) shared: Arc<Shared>,
    pub(crate) round_robin: AtomicUsize,
}

/// Accept connections until `stop` fires.
pub(crate) async fn serve(
    listener: TcpListener,
    ctx: Arc<ArcSwap<ListenerCtx>>,
    stop: CancellationToken,
    tracker: TaskTracker,
) {
    loop {
        let accepted = tokio::select! {
            biased;
            _ = stop.cancelled() => break,
            r = listener.accept() => r,
        };
        match accepted {
            Ok((socket, peer)) => {
                let ctx = ctx.load_full();
                tracker.spawn(crate::session::run(socket, peer, ctx));
            }
            Err(e) => {
                // EMFILE/ENFILE/ENOBUFS: back off instead of spinning;
                // ECONNABORTED and friends: just continue.
                let transient = matches!(
                    e.kind(),
                    std::io::ErrorKind::ConnectionAborted
                        | std::io::ErrorKind::ConnectionReset
                        | std::io::ErrorKind::Interrupted
                );
                if transient {
                    tracing::debug!("failed to accept a connection: {e}");
                } else {
                    tracing::warn!("failed to accept a connection: {e}");
                    tokio::select! {
                        _ = stop.cancelled() => break,
                        _ = tokio::time::sleep(Duration::from_millis(50)) => {}
                    }
                }
            }
        }
    }
}

/// Counts a connection against `max_connections` until dropped.
pub(crate) struct ConnectionSlot<'a> {
    shared: &'a Shared,
}

impl<'a> ConnectionSlot<'a> {
    /// Take a slot; `false` in the second field when over the limit.
    pub(crate) fn take(shared: &'a Shared, limit: usize) -> (ConnectionSlot<'a>, bool) {
        let n = shared.connections.fetch_add(1, Ordering::Relaxed) + 1;
        (ConnectionSlot { shared }, limit == 0 || n <= limit)
    }
}

impl Drop for ConnectionSlot<'_> {
    fn drop(&mut self) {
        self.shared.connections.fetch_sub(1, Ordering::Relaxed);
    }
}
