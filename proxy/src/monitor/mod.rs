//! The monitor follower: the proxy's source of truth.
//!
//! One task keeps a tokio-postgres connection to the monitor:
//! 1. connect (rustls when the URI asks for TLS), `LISTEN state`;
//! 2. read every followed formation group with
//!    `pgautofailover.current_state($formation, $group)` and hand the rows
//!    to its [`GroupRoute`] (which decides and fences);
//! 3. on every `state` notification re-read the groups it names (all of
//!    them if the payload does not parse), coalescing bursts; every
//!    `refresh_interval` re-read everything (the fallback, and the liveness
//!    check of the connection: each query has `query_timeout`);
//! 4. on any error reconnect with exponential backoff (100 ms doubling up
//!    to `reconnect_backoff_max`), re-reading everything after each
//!    reconnect.
//!
//! While the monitor is unreachable the routes keep the last known
//! primary; once it has been unreachable for `grace_period` the routes are
//! told ([`GroupRoute::monitor_unreachable`]) and route only to the node
//! the nodes themselves name as the one that takes writes ([`direct`]);
//! without one, new connections are held, then refused with the reason.
//! The first successful read after that restores routing — the follower
//! never gives up.

use std::collections::BTreeSet;
use std::future::poll_fn;
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use pgaf_fsm::notify::parse_state_payload;
use pgaf_fsm::{Health, Lsn, NodeState};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_postgres::{AsyncMessage, Client, Row, Statement};
use tokio_util::sync::CancellationToken;

use crate::config::MonitorConfig;

mod direct;
use crate::metrics::metrics;
use crate::route::{GroupKey, GroupRoute, NodeRow};
use pgaf_pgconn::Target;

/// The query run for each followed group.
pub(crate) const CURRENT_STATE_QUERY: &str = "\
SELECT nodename, nodehost, nodeport, group_id, node_id, \
       current_group_state::text, assigned_group_state::text, \
       candidate_priority, replication_quorum, reported_tli, reported_lsn::text, health \
  FROM pgautofailover.current_state($1::text, $2::int)";

/// What `/readyz` and `/status` report about the monitor.
#[derive(Debug, Default)]
pub(crate) struct MonitorStatus {
    up: AtomicBool,
    inner: Mutex<StatusInner>,
}

#[derive(Debug, Default, Clone)]
pub(crate) struct StatusInner {
    pub(crate) last_refresh: Option<SystemTime>,
    pub(crate) last_error: Option<String>,
    /// Since when the monitor is unreachable (None while it is up).
    down_since: Option<Instant>,
    expired: bool,
}

impl MonitorStatus {
    pub(crate) fn is_up(&self) -> bool {
        self.up.load(Ordering::Relaxed)
    }

    pub(crate) fn snapshot(&self) -> StatusInner {
        self.inner.lock().map(|s| s.clone()).unwrap_or_default()
    }

    fn set_up(&self) {
        self.up.store(true, Ordering::Relaxed);
        metrics().monitor_up.set(1);
        let now = SystemTime::now();
        if let Ok(since_epoch) = now.duration_since(std::time::UNIX_EPOCH) {
            metrics()
                .monitor_last_refresh_timestamp_seconds
                .set(since_epoch.as_secs_f64());
        }
        if let Ok(mut s) = self.inner.lock() {
            s.last_refresh = Some(now);
            s.down_since = None;
            s.expired = false;
        }
    }

    fn set_down(&self, error: String) {
        self.up.store(false, Ordering::Relaxed);
        metrics().monitor_up.set(0);
        if let Ok(mut s) = self.inner.lock() {
            s.last_error = Some(error);
            s.down_since.get_or_insert_with(Instant::now);
        }
    }
}

/// A monitor problem; the follower logs it and reconnects.
#[derive(Debug, thiserror::Error)]
pub(crate) enum MonitorError {
    #[error("connect: {0}")]
    Connect(String),
    #[error("{what}: {source}")]
    Query {
        what: &'static str,
        source: tokio_postgres::Error,
    },
    #[error("{0} timed out")]
    Timeout(&'static str),
    #[error("connection closed: {0}")]
    Closed(String),
    #[error("unexpected row: {0}")]
    Row(String),
}

/// An error with its sources ("db error: ERROR: …" rather than "db error").
fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

/// The monitor's connection string, with the proxy's application name
/// unless it sets one.
pub(crate) fn monitor_target(uri: &str) -> Result<Target, String> {
    let mut target = pgaf_pgconn::parse(uri).map_err(|e| format!("monitor.uri: {e}"))?;
    if target.config.get_application_name().is_none() {
        target.config.application_name("pg_autoproxy");
    }
    Ok(target)
}

enum Event {
    Notification(String),
    Closed(String),
}

/// Follow the monitor for `groups` until `stop` fires.
pub(crate) async fn follow(
    config: MonitorConfig,
    groups: Vec<Arc<GroupRoute>>,
    status: Arc<MonitorStatus>,
    stop: CancellationToken,
) {
    let conninfo = match monitor_target(&config.uri) {
        Ok(c) => c,
        Err(e) => {
            // Validated by --check and at startup; keep the task alive so
            // that a reload can fix it.
            tracing::error!("cannot follow the monitor: {e}");
            status.set_down(e);
            stop.cancelled().await;
            return;
        }
    };
    if let Ok(mut s) = status.inner.lock() {
        s.down_since.get_or_insert_with(Instant::now);
    }
    let _direct = AbortOnDrop(tokio::spawn(direct::watch(
        config.clone(),
        groups.clone(),
        status.clone(),
        stop.clone(),
    )));
    let mut backoff = Duration::from_millis(100);
    let mut reported_down = false;
    loop {
        let session = session(&config, &conninfo, &groups, &status);
        tokio::pin!(session);
        let result = loop {
            tokio::select! {
                r = &mut session => break r,
                _ = stop.cancelled() => return,
                _ = grace_timer(&status, config.grace_period) => {
                    expire(&status, &groups, &config);
                }
            }
        };
        let e = match result {
            Ok(never) => match never {},
            Err(e) => e,
        };
        if status.is_up() {
            tracing::warn!("lost the monitor: {e}");
            backoff = Duration::from_millis(100);
        } else if !reported_down {
            tracing::warn!("failed to reach the monitor: {e}");
        } else {
            tracing::debug!("failed to reach the monitor: {e}");
        }
        reported_down = true;
        status.set_down(e.to_string());
        // Back off (grace expiry still applies while waiting).
        let wake = Instant::now() + backoff;
        loop {
            tokio::select! {
                _ = tokio::time::sleep_until(wake) => break,
                _ = stop.cancelled() => return,
                _ = grace_timer(&status, config.grace_period) => expire(&status, &groups, &config),
            }
        }
        backoff = (backoff * 2).min(config.reconnect_backoff_max);
    }
}

/// Completes when the grace period is over and routes were not yet told.
async fn grace_timer(status: &MonitorStatus, grace: Duration) {
    let s = status.snapshot();
    match (s.down_since, s.expired) {
        (Some(since), false) => tokio::time::sleep_until(since + grace).await,
        _ => std::future::pending().await,
    }
}

fn expire(status: &MonitorStatus, groups: &[Arc<GroupRoute>], config: &MonitorConfig) {
    let since = match status.inner.lock() {
        Ok(mut s) => match (s.down_since, s.expired) {
            (Some(since), false) if since + config.grace_period <= Instant::now() => {
                s.expired = true;
                since
            }
            _ => return,
        },
        Err(_) => return,
    };
    tracing::warn!(
        grace = ?config.grace_period,
        fence = config.fence_on_monitor_loss,
        "the monitor is unreachable past the grace period: new connections are refused until it returns"
    );
    for g in groups {
        let c = g.monitor_unreachable(since, config.fence_on_monitor_loss);
        if c.fenced_sessions > 0 {
            tracing::warn!(group = %g.key, sessions = c.fenced_sessions, "closing sessions: monitor lost");
        }
    }
}

/// One connection to the monitor; returns only on error.
async fn session(
    config: &MonitorConfig,
    conninfo: &Target,
    groups: &[Arc<GroupRoute>],
    status: &MonitorStatus,
) -> Result<std::convert::Infallible, MonitorError> {
    let (client, mut events, driver) = connect(config, conninfo).await?;
    let _driver = AbortOnDrop(driver);
    timed(
        config.query_timeout,
        "LISTEN",
        client.batch_execute("LISTEN state"),
    )
    .await?;
    let stmt = timed(
        config.query_timeout,
        "prepare",
        client.prepare(CURRENT_STATE_QUERY),
    )
    .await?;
    refresh(config, &client, &stmt, groups.iter()).await?;
    status.set_up();
    tracing::info!(groups = groups.len(), "following the monitor");
    let mut tick = tokio::time::interval_at(
        Instant::now() + config.refresh_interval,
        config.refresh_interval,
    );
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let dirty: BTreeSet<GroupKey> = tokio::select! {
            _ = tick.tick() => groups.iter().map(|g| g.key.clone()).collect(),
            ev = events.recv() => {
                let mut dirty = BTreeSet::new();
                let mut next = ev;
                // Coalesce a burst: take everything already queued.
                loop {
                    match next {
                        None => return Err(MonitorError::Closed("notification stream ended".into())),
                        Some(Event::Closed(e)) => return Err(MonitorError::Closed(e)),
                        Some(Event::Notification(payload)) => mark(&payload, groups, &mut dirty),
                    }
                    match events.try_recv() {
                        Ok(e) => next = Some(e),
                        Err(_) => break,
                    }
                }
                dirty
            }
        };
        if dirty.is_empty() {
            continue;
        }
        refresh(
            config,
            &client,
            &stmt,
            groups.iter().filter(|g| dirty.contains(&g.key)),
        )
        .await?;
        status.set_up();
    }
}

/// Which followed groups a notification concerns.
fn mark(payload: &str, groups: &[Arc<GroupRoute>], dirty: &mut BTreeSet<GroupKey>) {
    match parse_state_payload(payload) {
        Some(n) => {
            tracing::debug!(
                formation = %n.formation, group = n.group_id, node = %n.name,
                reported = %n.reported, goal = %n.goal, "state notification"
            );
            for g in groups {
                if g.key.formation == n.formation && g.key.group == n.group_id {
                    dirty.insert(g.key.clone());
                }
            }
        }
        None => {
            tracing::debug!("unparsable state notification: re-reading every group");
            dirty.extend(groups.iter().map(|g| g.key.clone()));
        }
    }
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

async fn timed<T, E>(
    limit: Duration,
    what: &'static str,
    f: impl std::future::Future<Output = Result<T, E>>,
) -> Result<T, MonitorError>
where
    E: Into<tokio_postgres::Error>,
{
    match tokio::time::timeout(limit, f).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(MonitorError::Query {
            what,
            source: e.into(),
        }),
        Err(_) => Err(MonitorError::Timeout(what)),
    }
}

async fn connect(
    config: &MonitorConfig,
    conninfo: &Target,
) -> Result<
    (
        Client,
        mpsc::UnboundedReceiver<Event>,
        tokio::task::JoinHandle<()>,
    ),
    MonitorError,
> {
    let mut pg = conninfo.config.clone();
    if pg.get_connect_timeout().is_none() {
        pg.connect_timeout(config.connect_timeout);
    }
    pg.keepalives(true)
        .keepalives_idle(Duration::from_secs(10))
        .keepalives_interval(Duration::from_secs(5))
        .keepalives_retries(3);
    let (tx, rx) = mpsc::unbounded_channel();
    let limit = config.connect_timeout + Duration::from_secs(1);
    // Built at each connect: a renewed CA file is picked up.
    let tls = conninfo
        .tls()
        .map_err(|e| MonitorError::Connect(e.to_string()))?;
    let (client, connection) = match tokio::time::timeout(limit, pg.connect(tls)).await {
        Ok(Ok(c)) => c,
        Ok(Err(e)) => return Err(MonitorError::Connect(chain(&e))),
        Err(_) => return Err(MonitorError::Timeout("connect")),
    };
    let handle = tokio::spawn(drive(connection, tx));
    Ok((client, rx, handle))
}

/// Poll the connection: it runs the queries and yields notifications.
async fn drive<S, T>(
    mut connection: tokio_postgres::Connection<S, T>,
    tx: mpsc::UnboundedSender<Event>,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    loop {
        match poll_fn(|cx| connection.poll_message(cx)).await {
            Some(Ok(AsyncMessage::Notification(n))) => {
                if tx
                    .send(Event::Notification(n.payload().to_string()))
                    .is_err()
                {
                    return;
                }
            }
            Some(Ok(AsyncMessage::Notice(n))) => tracing::debug!("monitor notice: {}", n.message()),
            Some(Ok(_)) => {}
            Some(Err(e)) => {
                let _ = tx.send(Event::Closed(chain(&e)));
                return;
            }
            None => {
                let _ = tx.send(Event::Closed("the monitor closed the connection".into()));
                return;
            }
        }
    }
}

async fn refresh<'a>(
    config: &MonitorConfig,
    client: &Client,
    stmt: &Statement,
    groups: impl Iterator<Item = &'a Arc<GroupRoute>>,
) -> Result<(), MonitorError> {
    for g in groups {
        let result = timed(
            config.query_timeout,
            "read current_state",
            client.query(stmt, &[&g.key.formation, &g.key.group]),
        )
        .await;
        let rows = match result {
            Ok(r) => r,
            Err(e) => {
                metrics()
                    .monitor_refreshes_total
                    .with_label_values(&["error"])
                    .inc();
                return Err(e);
            }
        };
        metrics()
            .monitor_refreshes_total
            .with_label_values(&["ok"])
            .inc();
        let mut nodes = Vec::with_capacity(rows.len());
        for row in &rows {
            match node_row(row) {
                Ok(n) => nodes.push(n),
                Err(e) => tracing::warn!(group = %g.key, "ignoring a node: {e}"),
            }
        }
        let before = g.load();
        let change = g.apply(nodes);
        log_transition(g, &before, &g.load());
        if change.fenced_sessions > 0 {
            tracing::warn!(
                group = %g.key,
                sessions = change.fenced_sessions,
                nodes = ?change.fenced_backends,
                "closing sessions of nodes that lost their role"
            );
        }
    }
    Ok(())
}

/// Log what changed for clients of `g` (INFO when routing works, WARN when
/// it stops).
fn log_transition(g: &GroupRoute, before: &crate::route::Snapshot, after: &crate::route::Snapshot) {
    match (&before.primary, &after.primary) {
        (Ok(a), Ok(b)) if Arc::ptr_eq(a, b) => {}
        (_, Ok(b)) => tracing::info!(group = %g.key, primary = %b, "routing to primary"),
        (Ok(a), Err(why)) => tracing::warn!(group = %g.key, old = %a, "no primary: {why}"),
        (Err(old), Err(why)) if old != why => {
            tracing::info!(group = %g.key, "still no primary: {why}")
        }
        (Err(_), Err(_)) => {}
    }
}

/// Decode one `current_state` row.
pub(crate) fn node_row(row: &Row) -> Result<NodeRow, MonitorError> {
    let bad = |what: &str, e: &dyn std::fmt::Display| MonitorError::Row(format!("{what}: {e}"));
    let text = |i: usize| -> Result<Option<String>, MonitorError> {
        row.try_get::<_, Option<String>>(i)
            .map_err(|e| bad("text", &e))
    };
    let int = |i: usize| -> Result<Option<i32>, MonitorError> {
        row.try_get::<_, Option<i32>>(i).map_err(|e| bad("int", &e))
    };
    let state = |s: Option<String>| {
        s.and_then(|s| NodeState::from_str(&s).ok())
            .unwrap_or(NodeState::Unknown)
    };
    let port = int(2)?.ok_or_else(|| MonitorError::Row("nodeport is null".into()))?;
    let port = u16::try_from(port).map_err(|e| bad("nodeport", &e))?;
    Ok(NodeRow {
        name: text(0)?.unwrap_or_default(),
        host: text(1)?.ok_or_else(|| MonitorError::Row("nodehost is null".into()))?,
        port,
        group_id: int(3)?.unwrap_or(0),
        node_id: row
            .try_get::<_, Option<i64>>(4)
            .map_err(|e| bad("node_id", &e))?
            .unwrap_or(0),
        reported: state(text(5)?),
        goal: state(text(6)?),
        candidate_priority: int(7)?.unwrap_or(0),
        replication_quorum: row
            .try_get::<_, Option<bool>>(8)
            .map_err(|e| bad("replication_quorum", &e))?
            .unwrap_or(false),
        tli: int(9)?.unwrap_or(0),
        lsn: text(10)?
            .and_then(|s| Lsn::from_str(&s).ok())
            .unwrap_or(Lsn::ZERO),
        health: int(11)?.map_or(Health::Unknown, Health::from_i32),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::route::tests::row;
    use crate::route::{RouteRegistry, Unavailable};
    use pgaf_fsm::NodeState::*;

    fn config(grace: Duration) -> MonitorConfig {
        MonitorConfig {
            // Nothing listens on port 1: every attempt fails at once.
            uri: "postgres://nobody@127.0.0.1:1/pg_auto_failover?sslmode=disable".into(),
            refresh_interval: Duration::from_secs(5),
            query_timeout: Duration::from_secs(5),
            connect_timeout: Duration::from_secs(5),
            grace_period: grace,
            reconnect_backoff_max: Duration::from_secs(5),
            fence_on_monitor_loss: false,
            // No node to check: the grace period alone decides.
            node_check: String::new(),
            node_check_interval: Duration::from_millis(500),
        }
    }

    #[test]
    fn notifications_mark_their_group_only() {
        let routes = RouteRegistry::default();
        let g0 = routes.get_or_create(&GroupKey {
            formation: "default".into(),
            group: 0,
        });
        let g1 = routes.get_or_create(&GroupKey {
            formation: "default".into(),
            group: 1,
        });
        let groups = vec![g0.clone(), g1.clone()];
        let mut dirty = BTreeSet::new();
        mark(
            r#"{"type": "state", "formation": "default", "groupId": 1, "nodeId": 2, "name": "b", "host": "h", "port": 5432, "reportedState": "primary", "goalState": "draining", "health":"good"}"#,
            &groups,
            &mut dirty,
        );
        assert_eq!(dirty.iter().collect::<Vec<_>>(), vec![&g1.key]);
        dirty.clear();
        mark(
            r#"{"type": "state", "formation": "other", "groupId": 0, "nodeId": 2, "name": "b", "host": "h", "port": 5432, "reportedState": "primary", "goalState": "draining", "health":"good"}"#,
            &groups,
            &mut dirty,
        );
        assert!(dirty.is_empty());
        mark("not json", &groups, &mut dirty);
        assert_eq!(dirty.len(), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn grace_period_then_refusal_while_the_monitor_is_unreachable() {
        let routes = RouteRegistry::default();
        let g = routes.get_or_create(&GroupKey {
            formation: "default".into(),
            group: 0,
        });
        g.apply(vec![row(1, Primary, Primary)]);
        let session = g.load().primary.clone().unwrap().sessions.register(1);
        let status = Arc::new(MonitorStatus::default());
        let stop = CancellationToken::new();
        let task = tokio::spawn(follow(
            config(Duration::from_secs(30)),
            vec![g.clone()],
            status.clone(),
            stop.clone(),
        ));
        tokio::time::sleep(Duration::from_secs(20)).await;
        assert!(
            g.load().primary.is_ok(),
            "within the grace period the last primary is kept"
        );
        assert!(!status.is_up());
        assert!(status.snapshot().last_error.is_some());
        tokio::time::sleep(Duration::from_secs(15)).await;
        assert!(matches!(
            g.load().primary,
            Err(Unavailable::MonitorUnreachable { .. })
        ));
        assert_eq!(session.signal.fired(), None, "sessions survive by default");
        stop.cancel();
        tokio::time::timeout(Duration::from_secs(5), task)
            .await
            .unwrap()
            .unwrap();
    }

    #[test]
    fn error_chains_are_kept() {
        let io = std::io::Error::other("inner cause");
        let outer = MonitorError::Connect(chain(&io));
        assert_eq!(outer.to_string(), "connect: inner cause");
    }
}
