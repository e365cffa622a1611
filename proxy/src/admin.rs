//! The admin port: a deliberately tiny HTTP/1.1 server (GET only, one
//! request per connection, `Connection: close`).
//!
//! * `GET /healthz` — 200 while the process runs (liveness);
//! * `GET /readyz` — 200 while every read-write listener has a routable
//!   primary and the proxy is not draining, else 503 with the reasons
//!   (readiness for load balancers); `GET /readyz/<listener>` for one
//!   listener;
//! * `GET /metrics` — Prometheus text exposition;
//! * `GET /status` — JSON: monitor, listeners, routes, session counts.

use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

use crate::config::Role;
use crate::listener::ListenerCtx;
use crate::metrics::metrics;
use crate::monitor::MonitorStatus;

const MAX_REQUEST: usize = 8 * 1024;
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// What the admin endpoints look at.
pub(crate) struct AdminState {
    pub(crate) listeners: ArcSwap<Vec<Arc<ListenerCtx>>>,
    pub(crate) monitor: Arc<MonitorStatus>,
    pub(crate) draining: CancellationToken,
}

/// Serve until `stop` fires.
pub(crate) async fn serve(listener: TcpListener, state: Arc<AdminState>, stop: CancellationToken) {
    loop {
        let accepted = tokio::select! {
            _ = stop.cancelled() => return,
            r = listener.accept() => r,
        };
        match accepted {
            Ok((socket, _)) => {
                let state = state.clone();
                tokio::spawn(async move {
                    if let Err(e) =
                        tokio::time::timeout(REQUEST_TIMEOUT, handle(socket, &state)).await
                    {
                        tracing::debug!("admin request timed out: {e}");
                    }
                });
            }
            Err(e) => {
                tracing::warn!("failed to accept an admin connection: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

async fn handle(mut socket: TcpStream, state: &AdminState) -> std::io::Result<()> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    loop {
        let n = socket.read(&mut chunk).await?;
        if n == 0 {
            return Ok(());
        }
        buf.extend_from_slice(&chunk[..n]);
        if buf.windows(4).any(|w| w == b"\r\n\r\n") || buf.windows(2).any(|w| w == b"\n\n") {
            break;
        }
        if buf.len() > MAX_REQUEST {
            return respond(&mut socket, 431, "text/plain", b"request too large\n").await;
        }
    }
    let line = buf.split(|&b| b == b'\n').next().unwrap_or_default();
    let line = String::from_utf8_lossy(line);
    let mut parts = line.split_whitespace();
    let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let path = path.split('?').next().unwrap_or("");
    let (status, content_type, body) = route(method, path, state);
    respond(&mut socket, status, content_type, &body).await
}

/// The response for a request (pure, for tests).
pub(crate) fn route(method: &str, path: &str, state: &AdminState) -> (u16, &'static str, Vec<u8>) {
    if method != "GET" && method != "HEAD" {
        return (405, "text/plain", b"only GET\n".to_vec());
    }
    match path {
        "/healthz" => (200, "text/plain", b"ok\n".to_vec()),
        "/metrics" => (200, "text/plain; version=0.0.4", metrics().encode()),
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

async fn respond(
    socket: &mut TcpStream,
    status: u16,
    content_type: &str,
    body: &[u8],
) -> std::io::Result<()> {
    let reason = match status {
        200 => "OK",
        404 => "Not Found",
        405 => "Method Not Allowed",
        431 => "Request Header Fields Too Large",
        503 => "Service Unavailable",
        _ => "Error",
    };
    let head = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    socket.write_all(head.as_bytes()).await?;
    socket.write_all(body).await?;
    socket.shutdown().await
}
