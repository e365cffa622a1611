//! The node-active loop of `pg_autoctl run`: report to
//! the monitor, receive the goal, carry out the transition or enforce the
//! current state; again at once after a change, when the monitor notifies a
//! change in the group, or every [`INTERVAL`] otherwise.

use super::actions::{self, ActionError};
use super::Node;
use crate::monitor::Report;
use crate::pg::process::Want;
use crate::state::now_unix;
use pgaf_fsm::keeper::{self, Expect};
use pgaf_fsm::NodeState;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Notify;
use tracing::Instrument;

/// Between two reports when nothing happens.
pub const INTERVAL: Duration = Duration::from_millis(250);
/// How often the primary checks which standbys stream from it.
const WITNESS_PERIOD: Duration = Duration::from_millis(150);
/// How often a standby waiting for its primary says so.
const WAIT_NOTICE: Duration = Duration::from_secs(10);
/// How often the list of other nodes is refreshed.
const OTHERS_PERIOD: Duration = Duration::from_secs(5);

/// Why the loop stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// Asked to stop (SIGTERM, SIGINT).
    Stopped,
    /// The node was removed from the monitor.
    Dropped,
    /// The node reached the state the caller waited for (`create` without
    /// `--run`).
    Reached,
}

/// Run the node until asked to stop, dropped, or, when `until` is given,
/// until `until` holds of its state; then stop Postgres.
pub async fn run(
    mut node: Node,
    until: Option<fn(&crate::state::KeeperState) -> bool>,
) -> anyhow::Result<Exit> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut sigterm = signal(SignalKind::terminate())?;
    let mut sigint = signal(SignalKind::interrupt())?;
    let mut sighup = signal(SignalKind::hangup())?;

    // A wish of `pg_autoctl do pgctl off` does not outlive its service.
    let _ = std::fs::remove_file(&node.paths.pg_status);
    node.lease.watch(node.pg.clone())?;
    let (monitor_uri, uri_rx) = tokio::sync::watch::channel(node.cfg.monitor.clone());
    super::heartbeat::Heartbeat {
        reporter: node.reporter.clone(),
        lease: node.lease.clone(),
        pg: node.pg.clone(),
        timeouts: node.cfg.timeouts.clone(),
        monitor_uri: uri_rx.clone(),
        formation: node.cfg.formation.clone(),
        node_id: node.state.node_id,
    }
    .spawn();
    let wake = Arc::new(Notify::new());
    spawn_listener(&node, uri_rx, wake.clone());
    if node.monitor_disabled() {
        tracing::info!(
            "The monitor is disabled: the goal state comes from the state file (pg_autoctl do fsm assign), the other nodes from {}",
            node.paths.nodes.display()
        );
    }
    spawn_witness_poller(&node);
    serve_metrics(&node)?;

    tracing::info!(
        "pg_autoctl service is running, current state is \"{}\"",
        node.state.current_role
    );
    let mut again = true;
    // Consecutive failed transitions: the retry interval doubles up to 8x.
    let mut failures = 0u32;
    // A standby waiting for its primary says so every WAIT_NOTICE.
    let (mut waiting_since, mut waiting_notices): (Option<Instant>, u32) = (None, 1);
    let exit = loop {
        if !again {
            let pause = INTERVAL * 2u32.pow(failures.min(3));
            tokio::select! {
                _ = sigterm.recv() => break Exit::Stopped,
                _ = sigint.recv() => break Exit::Stopped,
                _ = sighup.recv() => reload(&mut node, &monitor_uri).await,
                _ = wake.notified() => {}
                _ = tokio::time::sleep(pause) => {}
            }
        }
        let span = tracing::info_span!("loop", node = node.state.node_id, current = %node.state.current_role);
        // SIGTERM or SIGINT abandon a step in progress (a base backup can
        // take hours): every transition starts over from the beginning at
        // the next run, as after a crash.
        let step = tokio::select! {
            step = iteration(&mut node).instrument(span) => step,
            _ = sigterm.recv() => break Exit::Stopped,
            _ = sigint.recv() => break Exit::Stopped,
        };
        if node.state.current_role == NodeState::WaitStandby
            && node.state.assigned_role == NodeState::WaitStandby
        {
            let since = *waiting_since.get_or_insert_with(Instant::now);
            if since.elapsed() >= WAIT_NOTICE * waiting_notices {
                waiting_notices += 1;
                tracing::info!(
                    "Still waiting for the monitor to drive this standby to \"catchingup\": \
                     the primary must be running `pg_autoctl run` and reach the monitor"
                );
            }
        } else {
            (waiting_since, waiting_notices) = (None, 1);
        }
        match step {
            Step::Again => (again, failures) = (true, 0),
            Step::Wait => {
                (again, failures) = (false, 0);
                // The state was reported to the monitor in this iteration.
                if until.is_some_and(|f| f(&node.state)) {
                    break Exit::Reached;
                }
            }
            Step::Failed => (again, failures) = (false, failures + 1),
            Step::Dropped => break Exit::Dropped,
        }
    };
    match exit {
        Exit::Stopped => tracing::info!("Stopping pg_autoctl: stopping Postgres"),
        Exit::Reached => tracing::info!(
            "Node {} reached state \"{}\"; stopping Postgres. Use `pg_autoctl run` to start the service",
            node.state.node_id,
            node.state.current_role
        ),
        Exit::Dropped => tracing::info!(
            "This node with id {} has been dropped from the monitor; \
             use `pg_autoctl drop node --destroy` to remove its files",
            node.state.node_id
        ),
    }
    node.pg.shutdown(Duration::from_secs(60)).await?;
    Ok(exit)
}

async fn reload(node: &mut Node, monitor_uri: &tokio::sync::watch::Sender<String>) {
    match crate::config::Config::load(&node.paths.config) {
        Ok(crate::config::Config::Keeper(cfg)) => {
            tracing::info!(
                "Reloaded the configuration from {}",
                node.paths.config.display()
            );
            let ssl_changed = cfg.ssl != node.cfg.ssl;
            if cfg.monitor != node.cfg.monitor {
                tracing::info!(
                    "The monitor is now \"{}\"; it used to be \"{}\"",
                    pgaf_pgconn::redact(&cfg.monitor),
                    pgaf_pgconn::redact(&node.cfg.monitor)
                );
                if cfg.monitor == crate::config::MONITOR_DISABLED {
                    // No monitor grants a lease any more: the node keeps its
                    // role until told otherwise (`do fsm assign`).
                    node.lease.set_enabled(false);
                }
                monitor_uri.send_replace(cfg.monitor.clone());
                node.others_refreshed = None;
                // `enable monitor` registered the node and wrote its node
                // id, group and first goal.
                if let Ok(Some(disk)) = crate::state::KeeperState::load(&node.paths.state) {
                    if disk.node_id != node.state.node_id {
                        tracing::warn!(
                            "The node id is now {} (it was {}): restart pg_autoctl run",
                            disk.node_id,
                            node.state.node_id
                        );
                    }
                    node.state.node_id = disk.node_id;
                    node.state.group_id = disk.group_id;
                    node.state.assigned_role = disk.assigned_role;
                }
            }
            node.cfg = cfg;
            node.drop_monitor();
            if ssl_changed {
                tracing::info!(
                    "SSL is now {} with sslmode \"{}\": rewriting the Postgres settings",
                    if node.cfg.ssl.active {
                        "active"
                    } else {
                        "disabled"
                    },
                    node.cfg.ssl.sslmode
                );
                if let Err(e) = actions::configure(node).await {
                    tracing::error!("Failed to apply the new SSL settings: {e}");
                }
            }
        }
        Ok(_) => tracing::error!(
            "{} is not a keeper configuration",
            node.paths.config.display()
        ),
        Err(e) => tracing::error!("Keeping the current configuration: {e}"),
    }
}

enum Step {
    /// Something changed: report again at once.
    Again,
    Wait,
    /// A transition failed: retry, later each time.
    Failed,
    Dropped,
}

/// Whether Postgres counts as running in our report.
fn reported_running(node: &Node) -> bool {
    postgres_counts_as_running(
        &node.pg,
        &node.lease,
        node.state.current_role,
        &node.cfg.timeouts,
    )
}

/// Whether Postgres counts as running for the monitor, for a node in
/// state `current` (the loop's reports and the heartbeat's).
pub fn postgres_counts_as_running(
    pg: &crate::pg::process::Postgres,
    lease: &super::lease::Lease,
    current: NodeState,
    t: &crate::config::Timeouts,
) -> bool {
    let st = pg.status();
    // Postgres that keeps failing or crashing right after it starts (a
    // full disk) does not count as running, even between two crashes.
    if current.can_take_writes() && st.failed_starts >= t.postgresql_restart_failure_max_retries {
        return false;
    }
    // A fenced primary may come back once its lease is renewed; once the
    // node left the primary states (draining, demoted, ...) its Postgres is
    // stopped for good and the monitor must know it (its election waits for
    // the old primary to be down), as in the model check where a transition
    // clears the fence.
    if st.ready || (lease.fenced() && current.can_take_writes()) {
        return true;
    }
    // A primary whose Postgres is being restarted keeps saying it runs for a
    // while (upstream's postgresql_restart_failure_* settings).
    current.can_take_writes()
        && st.want == Want::Running
        && st.failed_starts < t.postgresql_restart_failure_max_retries
        && st.down_since.is_none_or(|d| {
            d.elapsed() < Duration::from_secs(t.postgresql_restart_failure_timeout.into())
        })
}

async fn iteration(node: &mut Node) -> Step {
    if node.monitor_disabled() {
        return iteration_without_monitor(node).await;
    }
    // What Postgres says, and on a primary the standbys replying to it.
    let (meta, streaming) = if node.pg.status().ready {
        match node.local().await {
            Ok(local) => {
                let meta = local.metadata().await.ok();
                let streaming = match &meta {
                    Some(m) if !m.in_recovery => local
                        .streaming_standbys(super::lease::STREAMING_REPLY_MS)
                        .await
                        .ok(),
                    _ => None,
                };
                (meta, streaming)
            }
            Err(_) => (None, None),
        }
    } else {
        (None, None)
    };
    // Who streams from whom (docs/failover.md): a standby names the node
    // its WAL receiver streams from, a primary lists its standbys.
    let report = Report::of(
        &node.cfg.formation,
        &node.state,
        reported_running(node),
        meta.as_ref(),
        &node.others,
        streaming,
    );
    node.reporter
        .set_upstream(report.upstream_node_id, report.upstream_age_ms);

    // Report, and receive the goal (the slot keeps the heartbeat out).
    let reporter = node.reporter.clone();
    let slot = reporter.slot().await;
    let sent = Instant::now();
    let reply = match node.monitor().await {
        Ok(m) => m.node_active(&report).await,
        Err(e) => Err(e),
    };
    if reply.is_ok() {
        reporter.reported();
    }
    drop(slot);
    let reached_monitor = match reply {
        Ok(a) => {
            if node.monitor_failures > 0 {
                tracing::info!(
                    "Reached the monitor again after {} failed attempts",
                    node.monitor_failures
                );
                node.monitor_failures = 0;
            }
            node.state.last_monitor_contact = now_unix();
            node.metrics.monitor_contact();
            if a.goal != node.state.assigned_role {
                tracing::info!("Monitor assigned new state \"{}\"", a.goal);
            }
            node.state.assigned_role = a.goal;
            node.state.group_id = a.group_id;
            super::heartbeat::apply_lease(&node.lease, a.goal, a.lease_timeout_ms, sent);
            if node
                .others_refreshed
                .is_none_or(|t| t.elapsed() > OTHERS_PERIOD)
            {
                if let Ok(true) = node.refresh_others().await {
                    if let Err(e) = actions::configure(node).await {
                        tracing::warn!(
                            "Failed to update the HBA rules for the new list of nodes: {e}"
                        );
                    }
                }
            }
            true
        }
        Err(e) => {
            if e.is_unknown_node() {
                // The monitor does not know this node any more: it was
                // removed (`drop node`, `remove_node`).
                if node.state.current_role != NodeState::Dropped {
                    tracing::error!(
                        "The monitor does not know node {} any more: {e}",
                        node.state.node_id
                    );
                }
                return Step::Dropped;
            }
            node.monitor_failures += 1;
            // Every failure is retried; say so once, then every 10 s.
            if node.monitor_failures == 1 || node.monitor_failures.is_multiple_of(40) {
                tracing::warn!(
                    "Failed to get the goal state from the monitor ({} attempts): {e}",
                    node.monitor_failures
                );
            }
            node.drop_monitor();
            partition_check(node).await;
            false
        }
    };

    act(node, reached_monitor, meta.as_ref()).await
}

/// One round without a monitor (`pg_autoctl.monitor = PG_AUTOCTL_DISABLED`):
/// the goal is the assigned role of the state file, which `pg_autoctl do
/// fsm assign` writes; the other nodes come from the nodes file.
async fn iteration_without_monitor(node: &mut Node) -> Step {
    match crate::state::KeeperState::load(&node.paths.state) {
        Ok(Some(on_disk)) => {
            if on_disk.assigned_role != node.state.assigned_role {
                tracing::info!("Reaching new state \"{}\"", on_disk.assigned_role);
            }
            node.state.assigned_role = on_disk.assigned_role;
            node.assigned_on_disk = Some(on_disk.assigned_role);
        }
        Ok(None) => {}
        Err(e) => tracing::warn!(
            "Keeping the goal state \"{}\": {e}",
            node.state.assigned_role
        ),
    }
    node.lease.set_enabled(false);
    if node.state.current_role != NodeState::Init
        && node.others_refreshed.is_none_or(|t| t.elapsed() > INTERVAL)
    {
        match node.refresh_others().await {
            Ok(true) => {
                if let Err(e) = actions::configure(node).await {
                    tracing::warn!("Failed to update the HBA rules for the new list of nodes: {e}");
                }
            }
            Ok(false) => {}
            Err(e) => tracing::warn!("{e}"),
        }
    }
    let meta = match node.pg.status().ready {
        true => match node.local().await {
            Ok(local) => local.metadata().await.ok(),
            Err(_) => None,
        },
        false => None,
    };
    act(node, true, meta.as_ref()).await
}

/// Carry out the transition to the goal, or enforce the current state.
/// `reached_monitor`: the goal is fresh (from the monitor, or the state
/// file without one).
async fn act(
    node: &mut Node,
    reached_monitor: bool,
    meta: Option<&crate::pg::local::Metadata>,
) -> Step {
    let current = node.state.current_role;
    let goal = node.state.assigned_role;
    let step = if goal != current {
        match transition(node, current, goal).await {
            Ok(true) => Step::Again,
            Ok(false) => Step::Wait,
            Err(e) => {
                node.metrics.action_failed(&e);
                tracing::warn!("Failed to transition from \"{current}\" to \"{goal}\": {e}");
                Step::Failed
            }
        }
    } else {
        if current == NodeState::Dropped && reached_monitor && !node.monitor_disabled() {
            // The monitor knows we are done: it deletes the node.
            node.save_state();
            return Step::Dropped;
        }
        if let Err(e) = ensure(node, reached_monitor).await {
            node.metrics.action_failed(&e);
            tracing::warn!("Failed to enforce state \"{current}\": {e}");
        }
        Step::Wait
    };
    let writable = node.state.current_role.can_take_writes();
    node.lease.set_writable(writable);
    node.reporter
        .set(node.state.current_role, node.state.group_id);
    node.save_state();
    let up = node.pg.status().ready;
    node.metrics.observe(&node.cfg, &node.state, up, meta);
    step
}

/// Serve `/metrics` when `[pg_autoctl] metrics_listen` is set.
fn serve_metrics(node: &Node) -> anyhow::Result<()> {
    use anyhow::Context;
    let addr = crate::metrics::listen_addr(&node.cfg.metrics_listen).with_context(|| {
        format!(
            "[pg_autoctl] metrics_listen in {}",
            node.paths.config.display()
        )
    })?;
    if let Some(addr) = addr {
        pgaf_metrics::http::spawn(addr, node.metrics.clone());
    }
    Ok(())
}

/// Run the transition `current` → `goal`. Returns whether it completed.
async fn transition(
    node: &mut Node,
    current: NodeState,
    goal: NodeState,
) -> Result<bool, ActionError> {
    let Some(t) = transition_row(current, goal) else {
        tracing::error!(
            "pg_autoctl does not know how to reach state \"{goal}\" from \"{current}\""
        );
        return Ok(false);
    };
    if goal.can_take_writes() && !node.lease.valid() {
        tracing::info!("Waiting for a lease from the monitor before reaching \"{goal}\"");
        return Ok(false);
    }
    tracing::info!(
        "FSM transition from \"{current}\" to \"{goal}\": {}",
        t.comment
    );
    if keeper::ensure_before_transition(current, goal) {
        if let Err(e) = ensure(node, true).await {
            node.metrics.action_failed(&e);
            tracing::warn!("Failed to enforce state \"{current}\" first: {e}");
        }
    }
    for action in t.actions {
        tracing::debug!("{action:?}");
        actions::run(node, *action, goal).await?;
    }
    node.state.current_role = goal;
    node.reporter.set(goal, node.state.group_id);
    node.metrics.transition(current, goal);
    node.save_state();
    tracing::info!("Transition complete: current state is now \"{goal}\"");
    Ok(true)
}

/// The transition `current` → `goal`: the table's row, or, for a primary
/// converged in `wait_primary` that is sent to `draining` or
/// `demote_timeout`, the same as from `primary`: stop Postgres.
///
/// Our monitor never assigns these two goals from `wait_primary` (it only
/// assigns goals the table reaches), but upstream's 2.0 monitor does. Seen
/// in `tests/tests/interop_upstream_monitor.rs`: during a switchover, its
/// `node_active` calls deadlocked and the primary, already sent to
/// `draining` by `perform_failover`, was sent back to `wait_primary` (rule
/// P2b: its standby, now in `prepare_promotion`, no longer counted as a
/// healthy secondary); once the standby reached `prepare_promotion` the
/// primary got `demote_timeout` (R15). Its rule R9 can also send an
/// unhealthy `wait_primary` primary to `draining` (upstream issue #1168).
/// Upstream's keeper has no such transition either: its Postgres goes on
/// acknowledging writes, without synchronous replication, next to the
/// promoted standby until the monitor's demote timeout (30 s) sends it to
/// `demoted`, and every one of those writes is lost when it rewinds.
/// Stopping Postgres at once is what both goals ask of a primary, and lets
/// the monitor finish the failover as soon as we report it. Kept out of the
/// shared table (pgaf_fsm::keeper), which our monitor consults to choose
/// goals, so that our monitor's behaviour does not change.
fn transition_row(current: NodeState, goal: NodeState) -> Option<keeper::Transition> {
    use NodeState::{DemoteTimeout, Draining, Primary, WaitPrimary};
    keeper::transition(current, goal).or_else(|| match (current, goal) {
        (WaitPrimary, DemoteTimeout | Draining) => {
            keeper::transition(Primary, goal).map(|t| keeper::Transition {
                from: WaitPrimary,
                ours: true,
                ..t
            })
        }
        _ => None,
    })
}

/// Enforce what the current state expects of Postgres.
async fn ensure(node: &mut Node, reached_monitor: bool) -> Result<(), ActionError> {
    use crate::cli::internal::pgctl::{read_wish, Wish};
    if read_wish(&node.paths.pg_status) == Some(Wish::Stopped) {
        // `pg_autoctl do pgctl off`: the operator wants it stopped.
        node.pg.set_want(Want::Stopped);
        return Ok(());
    }
    match keeper::expect(node.state.current_role) {
        Expect::RunningPrimary => {
            if node.lease.valid() && (reached_monitor || !node.lease.enabled()) {
                node.pg.set_want(Want::Running);
                if node.pg.status().ready {
                    node.lease.clear_fenced();
                    if !node.slots_synced {
                        actions::sync_slots(node).await?;
                    }
                }
            }
        }
        Expect::FollowingPrimary => {
            node.pg.set_want(Want::Running);
            if reached_monitor && node.pg.status().ready {
                repoint(node).await?;
            }
        }
        Expect::Running => node.pg.set_want(Want::Running),
        Expect::Stopped => node.pg.set_want(Want::Stopped),
        Expect::Nothing => {}
    }
    Ok(())
}

/// A standby follows the monitor's current primary.
async fn repoint(node: &mut Node) -> Result<(), ActionError> {
    let Some(p) = super::peers::primary(node).await? else {
        return Ok(());
    };
    if p.id == node.state.node_id {
        return Ok(());
    }
    let wanted = node.source(&p, true).setting_line();
    let conf = std::fs::read_to_string(node.paths.pgdata.join(crate::pg::files::STANDBY_CONF))
        .unwrap_or_default();
    if !conf.contains(&wanted) {
        tracing::info!(
            "The primary is now node {} ({}:{}): following it",
            p.id,
            p.host,
            p.port
        );
        actions::run(
            node,
            pgaf_fsm::keeper::Action::FollowPrimary,
            NodeState::Secondary,
        )
        .await?;
    }
    Ok(())
}

/// Upstream's network-partition rule, for keepers of an upstream monitor
/// (no lease): a primary that reaches neither the monitor nor any standby
/// for `network_partition_timeout` demotes itself. Fixed: the standby
/// contact is refreshed every time it is seen, not only once the monitor is
/// already lost.
async fn partition_check(node: &mut Node) {
    if node.lease.enabled() || node.state.current_role != NodeState::Primary {
        return;
    }
    if let Ok(local) = node.local().await {
        if let Ok(ids) = local.streaming_standbys(10_000).await {
            if !ids.is_empty() {
                node.state.last_secondary_contact = now_unix();
                tracing::warn!("We lost the monitor, but still have a standby: we're not in a network partition, continuing.");
                return;
            }
        }
    }
    let timeout = i64::from(node.cfg.timeouts.network_partition_timeout);
    let last = node
        .state
        .last_monitor_contact
        .max(node.state.last_secondary_contact);
    if last > 0 && now_unix() - last >= timeout {
        tracing::info!(
            "Failed to contact the monitor or standby in {} seconds, at {timeout} seconds we shut down PostgreSQL to prevent split brain issues",
            now_unix() - last
        );
        node.state.assigned_role = NodeState::DemoteTimeout;
    }
}

/// LISTEN on the monitor's `state` channel; wake the loop for changes in
/// our group. Reconnects forever.
fn spawn_listener(
    node: &Node,
    mut monitor_uri: tokio::sync::watch::Receiver<String>,
    wake: Arc<Notify>,
) {
    let formation = node.cfg.formation.clone();
    tokio::spawn(async move {
        loop {
            let uri = monitor_uri.borrow_and_update().clone();
            if uri == crate::config::MONITOR_DISABLED {
                if monitor_uri.changed().await.is_err() {
                    return;
                }
                continue;
            }
            match crate::monitor::listen(&uri, &["state"], super::MONITOR_TIMEOUT).await {
                Ok((_client, mut rx)) => loop {
                    tokio::select! {
                        n = rx.recv() => match n {
                            Some((_, payload)) => match pgaf_fsm::notify::parse_state_payload(&payload) {
                                Some(n) if n.formation != formation => {}
                                _ => wake.notify_one(),
                            },
                            None => break,
                        },
                        // Another monitor, or none: listen there instead.
                        _ = monitor_uri.changed() => break,
                    }
                },
                Err(e) => tracing::debug!("Cannot listen to the monitor: {e}"),
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    });
}

/// On a primary, keep the lease informed of the standbys streaming from it.
fn spawn_witness_poller(node: &Node) {
    let lease = node.lease.clone();
    let pg = node.pg.clone();
    let pgdata = node.paths.pgdata.clone();
    tokio::spawn(async move {
        let mut local = None;
        loop {
            tokio::time::sleep(WITNESS_PERIOD).await;
            if !lease.enabled() || !pg.status().ready {
                local = None;
                continue;
            }
            if local.is_none() {
                local = crate::pg::local::Local::connect(&pgdata).await.ok();
            }
            let Some(l) = local.as_ref() else { continue };
            match l.streaming_standbys(super::lease::STREAMING_REPLY_MS).await {
                Ok(ids) => lease.observe_streaming(&ids),
                Err(_) => local = None,
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use pgaf_fsm::keeper::Action;

    #[test]
    fn wait_primary_stops_postgres_when_sent_to_draining_or_demote_timeout() {
        for goal in [NodeState::Draining, NodeState::DemoteTimeout] {
            assert!(
                keeper::transition(NodeState::WaitPrimary, goal).is_none(),
                "wait_primary -> {goal} is in the shared table now: drop the fallback"
            );
            let t = transition_row(NodeState::WaitPrimary, goal).expect("a transition");
            assert_eq!((t.from, t.to, t.ours), (NodeState::WaitPrimary, goal, true));
            assert_eq!(t.actions, &[Action::StopPostgres]);
        }
        assert!(transition_row(NodeState::Secondary, NodeState::Draining).is_none());
        assert_eq!(
            transition_row(NodeState::Primary, NodeState::Draining),
            keeper::transition(NodeState::Primary, NodeState::Draining)
        );
    }
}
