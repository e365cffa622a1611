//! Prometheus metrics, one prefix (`pgautoproxy_`), base units, `_total` on
//! counters, and labels drawn only from bounded sets: the configured
//! listener names, formation/group pairs, and the fixed enums below. Never
//! user or database names, never client addresses.
//!
//! One [`Metrics`] per process ([`metrics()`]); each listener resolves its
//! label values once ([`ListenerMetrics`]) so the per-connection path does
//! no label lookups, and the relay adds byte counts in batches.

use std::sync::OnceLock;

use pgaf_metrics::prometheus::{
    Gauge, Histogram, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Registry,
};
use pgaf_metrics::Builder;

/// Why a client connection was refused before it reached a node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RejectReason {
    /// No primary (or eligible secondary) appeared within the hold time.
    NoRoute,
    /// The chosen node did not accept the TCP connection in time.
    BackendUnreachable,
    /// The startup packet was malformed, truncated or oversized.
    Protocol,
    /// The client sent nothing usable before the handshake deadline.
    Timeout,
    /// TLS termination failed.
    Tls,
    /// `max_connections` reached.
    TooMany,
    /// The proxy is shutting down.
    Shutdown,
}

impl RejectReason {
    pub(crate) const ALL: [RejectReason; 7] = [
        RejectReason::NoRoute,
        RejectReason::BackendUnreachable,
        RejectReason::Protocol,
        RejectReason::Timeout,
        RejectReason::Tls,
        RejectReason::TooMany,
        RejectReason::Shutdown,
    ];

    pub(crate) fn as_label(self) -> &'static str {
        match self {
            RejectReason::NoRoute => "no_route",
            RejectReason::BackendUnreachable => "backend_unreachable",
            RejectReason::Protocol => "protocol",
            RejectReason::Timeout => "timeout",
            RejectReason::Tls => "tls",
            RejectReason::TooMany => "too_many",
            RejectReason::Shutdown => "shutdown",
        }
    }
}

/// Outcome of a CancelRequest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CancelOutcome {
    /// The key was known: sent to the node that holds the session.
    Routed,
    /// Unknown key (TLS session, other proxy): sent to every known node.
    Broadcast,
    /// No node to send it to.
    Dropped,
}

impl CancelOutcome {
    pub(crate) fn as_label(self) -> &'static str {
        match self {
            CancelOutcome::Routed => "routed",
            CancelOutcome::Broadcast => "broadcast",
            CancelOutcome::Dropped => "dropped",
        }
    }
}

/// Every metric of the proxy.
pub(crate) struct Metrics {
    registry: Registry,
    pub(crate) client_connections_active: IntGaugeVec,
    pub(crate) client_connections_total: IntCounterVec,
    pub(crate) client_connections_rejected_total: IntCounterVec,
    pub(crate) client_connections_fenced_total: IntCounterVec,
    pub(crate) clients_waiting: IntGaugeVec,
    pub(crate) client_wait_seconds: HistogramVec,
    pub(crate) transferred_bytes_total: IntCounterVec,
    pub(crate) backend_connect_seconds: HistogramVec,
    pub(crate) route_changes_total: IntCounterVec,
    pub(crate) primary_known: IntGaugeVec,
    pub(crate) monitor_up: IntGauge,
    pub(crate) monitor_last_refresh_timestamp_seconds: Gauge,
    pub(crate) monitor_refreshes_total: IntCounterVec,
    pub(crate) cancel_requests_total: IntCounterVec,
    pub(crate) config_reloads_total: IntCounterVec,
}

impl Metrics {
    fn new() -> Metrics {
        let b = Builder::new("pgautoproxy");
        pgaf_metrics::build_info::register(&b, env!("CARGO_PKG_VERSION"));
        let latency_buckets = vec![
            0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.1, 0.5, 1.0, 5.0,
        ];
        let wait_buckets = vec![
            0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0,
        ];
        Metrics {
            client_connections_active: b.int_gauge_vec(
                "client_connections_active",
                "Client connections open now (handshake, waiting or relaying).",
                &["listener"],
            ),
            client_connections_total: b.int_counter_vec(
                "client_connections_total",
                "Client connections accepted.",
                &["listener"],
            ),
            client_connections_rejected_total: b.int_counter_vec(
                "client_connections_rejected_total",
                "Client connections refused before reaching a node, by reason.",
                &["listener", "reason"],
            ),
            client_connections_fenced_total: b.int_counter_vec(
                "client_connections_fenced_total",
                "Relayed sessions closed by the proxy, by reason (role_lost, monitor_lost, shutdown).",
                &["listener", "reason"],
            ),
            clients_waiting: b.int_gauge_vec(
                "clients_waiting",
                "Client connections held while no primary (or secondary) is known.",
                &["listener"],
            ),
            client_wait_seconds: b.histogram_vec(
                "client_wait_seconds",
                "Time client connections were held waiting for a node.",
                &["listener"],
                wait_buckets,
            ),
            transferred_bytes_total: b.int_counter_vec(
                "transferred_bytes_total",
                "Bytes relayed, by direction (client_to_server, server_to_client).",
                &["listener", "direction"],
            ),
            backend_connect_seconds: b.histogram_vec(
                "backend_connect_seconds",
                "Latency of TCP connections to nodes, by outcome.",
                &["listener", "outcome"],
                latency_buckets,
            ),
            route_changes_total: b.int_counter_vec(
                "route_changes_total",
                "Changes of the primary of a formation group (including to and from none).",
                &["formation", "group"],
            ),
            primary_known: b.int_gauge_vec(
                "primary_known",
                "1 while a primary is known and routable for the formation group.",
                &["formation", "group"],
            ),
            monitor_up: b.int_gauge(
                "monitor_up",
                "1 while the LISTEN connection to the monitor is up and its last refresh succeeded.",
            ),
            monitor_last_refresh_timestamp_seconds: b.gauge(
                "monitor_last_refresh_timestamp_seconds",
                "Unix time of the last successful read of the monitor's state (0: never).",
            ),
            monitor_refreshes_total: b.int_counter_vec(
                "monitor_refreshes_total",
                "Reads of the monitor's current state, by outcome.",
                &["outcome"],
            ),
            cancel_requests_total: b.int_counter_vec(
                "cancel_requests_total",
                "CancelRequests received, by outcome (routed, broadcast, dropped).",
                &["outcome"],
            ),
            config_reloads_total: b.int_counter_vec(
                "config_reloads_total",
                "Configuration reloads, by outcome.",
                &["outcome"],
            ),
            registry: b.registry().clone(),
        }
        .init_fixed_labels()
    }

    fn init_fixed_labels(self) -> Self {
        for o in ["ok", "error"] {
            self.monitor_refreshes_total.with_label_values(&[o]);
            self.config_reloads_total.with_label_values(&[o]);
        }
        for o in [
            CancelOutcome::Routed,
            CancelOutcome::Broadcast,
            CancelOutcome::Dropped,
        ] {
            self.cancel_requests_total
                .with_label_values(&[o.as_label()]);
        }
        self
    }

    /// The text exposition of every metric.
    pub(crate) fn encode(&self) -> Result<Vec<u8>, pgaf_metrics::exposition::ExpositionError> {
        pgaf_metrics::exposition::encode(&self.registry)
    }

    pub(crate) fn cancel(&self, outcome: CancelOutcome) {
        self.cancel_requests_total
            .with_label_values(&[outcome.as_label()])
            .inc();
    }
}

/// The process-wide metrics.
pub(crate) fn metrics() -> &'static Metrics {
    static METRICS: OnceLock<Metrics> = OnceLock::new();
    METRICS.get_or_init(Metrics::new)
}

/// A listener's metric handles, resolved once.
#[derive(Clone)]
pub(crate) struct ListenerMetrics {
    pub(crate) active: IntGauge,
    pub(crate) accepted: IntCounter,
    rejected: Vec<(RejectReason, IntCounter)>,
    pub(crate) fenced_role_lost: IntCounter,
    pub(crate) fenced_monitor_lost: IntCounter,
    pub(crate) fenced_shutdown: IntCounter,
    pub(crate) waiting: IntGauge,
    pub(crate) wait_seconds: Histogram,
    pub(crate) bytes_c2s: IntCounter,
    pub(crate) bytes_s2c: IntCounter,
    pub(crate) connect_ok: Histogram,
    pub(crate) connect_error: Histogram,
}

impl ListenerMetrics {
    pub(crate) fn new(listener: &str) -> ListenerMetrics {
        let m = metrics();
        let l = &[listener];
        ListenerMetrics {
            active: m.client_connections_active.with_label_values(l),
            accepted: m.client_connections_total.with_label_values(l),
            rejected: RejectReason::ALL
                .iter()
                .map(|r| {
                    (
                        *r,
                        m.client_connections_rejected_total
                            .with_label_values(&[listener, r.as_label()]),
                    )
                })
                .collect(),
            fenced_role_lost: m
                .client_connections_fenced_total
                .with_label_values(&[listener, "role_lost"]),
            fenced_monitor_lost: m
                .client_connections_fenced_total
                .with_label_values(&[listener, "monitor_lost"]),
            fenced_shutdown: m
                .client_connections_fenced_total
                .with_label_values(&[listener, "shutdown"]),
            waiting: m.clients_waiting.with_label_values(l),
            wait_seconds: m.client_wait_seconds.with_label_values(l),
            bytes_c2s: m
                .transferred_bytes_total
                .with_label_values(&[listener, "client_to_server"]),
            bytes_s2c: m
                .transferred_bytes_total
                .with_label_values(&[listener, "server_to_client"]),
            connect_ok: m
                .backend_connect_seconds
                .with_label_values(&[listener, "ok"]),
            connect_error: m
                .backend_connect_seconds
                .with_label_values(&[listener, "error"]),
        }
    }

    pub(crate) fn rejected(&self, reason: RejectReason) {
        if let Some((_, c)) = self.rejected.iter().find(|(r, _)| *r == reason) {
            c.inc();
        }
    }

    pub(crate) fn fenced(&self, reason: crate::fence::FenceReason) {
        use crate::fence::FenceReason::*;
        match reason {
            RoleLost => self.fenced_role_lost.inc(),
            MonitorLost => self.fenced_monitor_lost.inc(),
            Shutdown => self.fenced_shutdown.inc(),
        }
    }
}

/// A formation group's metric handles.
#[derive(Clone)]
pub(crate) struct GroupMetrics {
    pub(crate) route_changes: IntCounter,
    pub(crate) primary_known: IntGauge,
}

impl GroupMetrics {
    pub(crate) fn new(formation: &str, group: i32) -> GroupMetrics {
        let m = metrics();
        let g = group.to_string();
        GroupMetrics {
            route_changes: m.route_changes_total.with_label_values(&[formation, &g]),
            primary_known: m.primary_known.with_label_values(&[formation, &g]),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposition_uses_one_prefix_and_base_units() {
        let lm = ListenerMetrics::new("metrics-test");
        lm.accepted.inc();
        lm.rejected(RejectReason::NoRoute);
        lm.wait_seconds.observe(0.5);
        GroupMetrics::new("f", 0).route_changes.inc();
        let text = String::from_utf8(metrics().encode().unwrap()).unwrap();
        for line in text
            .lines()
            .filter(|l| !l.starts_with('#') && !l.is_empty())
        {
            assert!(line.starts_with("pgautoproxy_"), "{line}");
        }
        assert!(text.contains("pgautoproxy_build_info{version="));
        assert!(text.contains("pgautoproxy_client_connections_total{listener=\"metrics-test\"} 1"));
        assert!(text.contains(
            "pgautoproxy_client_connections_rejected_total{listener=\"metrics-test\",reason=\"no_route\"} 1"
        ));
        assert!(text.contains("pgautoproxy_client_wait_seconds_bucket"));
        assert!(text.contains("pgautoproxy_monitor_up 0"));
    }
}
