//! The admin port, served by the shared tiny HTTP/1.1 server of
//! [`pgaf_metrics::http`] (GET only, one request per connection,
//! `Connection: close`).
//!
//! * `GET /healthz` — 200 while the process runs (liveness);
//! * `GET /readyz` — 200 while every read-write listener has a routable
//!   primary and the proxy is not draining, else 503 with the reasons
//!   (readiness for load balancers); `GET /readyz/<listener>` for one
//!   listener;
//! * `GET /metrics` — Prometheus text exposition;
//! * `GET /status` — JSON: monitor, listeners, routes, session counts.

use std::sync::Arc;

use arc_swap::ArcSwap;
use pgaf_metrics::http::{Handler, Request, Response};
use serde_json::json;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::config::Role;
use crate::listener::ListenerCtx;
use crate::metrics::metrics;
use crate::monitor::MonitorStatus;

/// What the admin endpoints look at.
pub(crate) struct AdminState {
    pub(crate) listeners: ArcSwap<Vec<Arc<ListenerCtx>>>,
    pub(crate) monitor: Arc<MonitorStatus>,
    pub(crate) draining: CancellationToken,
}

/// Serve until `stop` fires.
pub(crate) async fn serve(listener: TcpListener, state: Arc<AdminState>, stop: CancellationToken) {
    pgaf_metrics::http::serve(listener, state, stop.cancelled_owned()).await;
}

impl Handler for AdminState {
    async fn handle(&self, request: Request) -> Response {
        let (status, content_type, body) = route(&request.method, &request.path, self);
        Response {
            status,
            content_type,
            body,
        }
    }
}

/// The response for a request (pure, for tests).
pub(crate) fn route(method: &str, path: &str, state: &AdminState) -> (u16, &'static str, Vec<u8>) {
    if method != "GET" && method != "HEAD" {
        return (405, "text/plain", b"only GET\n".to_vec());
    }
    match path {
        "/healthz" => (200, "text/plain", b"ok\n".to_vec()),
        "/metrics" => match metrics().encode() {
            Ok(text) => (200, pgaf_metrics::exposition::CONTENT_TYPE, text),
            Err(e) => {
                tracing::warn!("{e}");
                (500, "text/plain", format!("{e}\n").into_bytes())
            }
        },
        "/status" => (
            200,
            "application/json",
            status_json(state).to_string().into_bytes(),
        ),
        "/readyz" => readiness(state, None),
        p if p.starts_with("/readyz/") => readiness(state, Some(&p["/readyz/".len()..])),
        _ => (404, "text/plain", b"not found\n".to_vec()),
    }
}

fn readiness(state: &AdminState, only: Option<&str>) -> (u16, &'static str, Vec<u8>) {
    let listeners = state.listeners.load();
    let mut problems = Vec::new();
    if state.draining.is_cancelled() {
        problems.push("draining".to_string());
    }
    let mut found = false;
    for l in listeners.iter() {
        if only.is_some_and(|n| n != l.config.name) {
            continue;
        }
        found = true;
        let snap = l.group.load();
        let routable = match &l.config.role {
            Role::ReadWrite => snap.primary.as_ref().map(|_| ()).map_err(|e| e.to_string()),
            Role::ReadOnly(policy) => {
                let rr = std::sync::atomic::AtomicUsize::new(0);
                snap.pick_read_only(policy, &rr)
                    .map(|_| ())
                    .map_err(|e| e.to_string())
            }
        };
        // Without a name, readiness follows the read-write listeners only.
        let counts = only.is_some() || matches!(l.config.role, Role::ReadWrite);
        if let (Err(why), true) = (routable, counts) {
            problems.push(format!("{}: {why}", l.config.name));
        }
    }
    if only.is_some() && !found {
        return (404, "text/plain", b"no such listener\n".to_vec());
    }
    if problems.is_empty() {
        (200, "text/plain", b"ready\n".to_vec())
    } else {
        (
            503,
            "text/plain",
            format!("not ready\n{}\n", problems.join("\n")).into_bytes(),
        )
    }
}

fn status_json(state: &AdminState) -> serde_json::Value {
    let m = state.monitor.snapshot();
    let listeners: Vec<serde_json::Value> = state
        .listeners
        .load()
        .iter()
        .map(|l| {
            let snap = l.group.load();
            let (primary_sessions, secondary_sessions) = l.group.session_counts();
            json!({
                "name": l.config.name,
                "listen": l.config.listen.to_string(),
                "formation": l.group.key.formation,
                "group": l.group.key.group,
                "role": match l.config.role { Role::ReadWrite => "read-write", Role::ReadOnly(_) => "read-only" },
                "tls": if l.tls.is_some() { "terminate" } else { "passthrough" },
                "route_version": snap.version,
                "primary": match &snap.primary {
                    Ok(b) => json!({"node_id": b.node_id, "name": b.name, "host": b.host, "port": b.port}),
                    Err(why) => json!({"unavailable": why.to_string()}),
                },
                "secondaries": snap.secondaries.iter().map(|(b, lag)| json!({
                    "node_id": b.node_id, "name": b.name, "host": b.host, "port": b.port, "lag_bytes": lag,
                })).collect::<Vec<_>>(),
                "sessions": {"primary": primary_sessions, "secondaries": secondary_sessions},
                "nodes": l.group.rows().iter().map(|r| json!({
                    "node_id": r.node_id, "name": r.name, "host": r.host, "port": r.port,
                    "reported": r.reported.as_str(), "goal": r.goal.as_str(), "health": r.health.as_str(),
                    "lsn": r.lsn.to_string(),
                })).collect::<Vec<_>>(),
            })
        })
        .collect();
    json!({
        "version": env!("CARGO_PKG_VERSION"),
        "draining": state.draining.is_cancelled(),
        "monitor": {
            "up": state.monitor.is_up(),
            "last_refresh_unix": m.last_refresh.and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok()).map(|d| d.as_secs()),
            "last_error": m.last_error,
        },
        "listeners": listeners,
    })
}
