//! Waiting for the monitor to get a group where an operator command wants
//! it (a new primary, a node in maintenance, settings applied, a node
//! gone), printing each state change as it is notified on the monitor's
//! `state` channel:
//!
//! ```text
//!     Time |  Name |  Node |      Host:Port |       Current State |      Assigned State
//! ---------+-------+-------+----------------+---------------------+--------------------
//! 10:50:07 | node2 |     2 | 127.0.0.1:6011 |             primary |            draining
//! ```
//!
//! LISTEN starts before the command's monitor call, so no change is
//! missed. After every notification the group is read again and the
//! caller's condition checked on it: the condition never depends on seeing
//! one particular notification. A lost listening connection is opened again
//! (and the group read again).

use super::api::{self, ApiError, NodeRow};
use super::exit::{self, Failure};
use pgaf_fsm::notify::{parse_state_payload, StateNotification};
use std::time::Duration;
use tokio::sync::mpsc::UnboundedReceiver;
use tokio::time::Instant;
use tokio_postgres::Client;

/// How long the listening connection may take to open.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Column widths of the notification table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    name: usize,
    host_port: usize,
}

impl Layout {
    /// Wide enough for `nodes` (and for nodes named like them).
    pub fn for_nodes(nodes: &[NodeRow]) -> Layout {
        Layout {
            name: nodes.iter().map(|n| n.name.len()).max().unwrap_or(0).max(4),
            host_port: nodes
                .iter()
                .map(|n| n.host_port().len())
                .max()
                .unwrap_or(0)
                .max(9),
        }
    }

    pub fn header(&self) -> String {
        let (nw, hw) = (self.name, self.host_port);
        format!(
            "{:>8} | {:>nw$} | {:>5} | {:>hw$} | {:>19} | {:>19}\n{}-+-{}-+-{}-+-{}-+-{}-+-{}\n",
            "Time",
            "Name",
            "Node",
            "Host:Port",
            "Current State",
            "Assigned State",
            "-".repeat(8),
            "-".repeat(nw),
            "-".repeat(5),
            "-".repeat(hw),
            "-".repeat(19),
            "-".repeat(19),
        )
    }

    pub fn row(&self, time: &str, n: &StateNotification) -> String {
        let (nw, hw) = (self.name, self.host_port);
        format!(
            "{time:>8} | {:>nw$} | {:>5} | {:>hw$} | {:>19} | {:>19}\n",
            n.name,
            n.node_id,
            format!("{}:{}", n.host, n.port),
            n.reported.as_str(),
            n.goal.as_str()
        )
    }
}

/// The local time as `HH:MM:SS`.
pub fn clock() -> String {
    let mut t: libc::time_t = 0;
    // SAFETY: all-zero is a valid libc::tm.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    // SAFETY: time and localtime_r only write into the locals we pass.
    unsafe {
        libc::time(&mut t);
        libc::localtime_r(&t, &mut tm);
    }
    format!("{:02}:{:02}:{:02}", tm.tm_hour, tm.tm_min, tm.tm_sec)
}

/// Why [`wait_loop`] returned without the condition holding.
#[derive(Debug)]
pub enum Interrupted {
    /// The deadline passed.
    Deadline,
    /// The notification stream ended (connection lost).
    Closed,
    /// Reading the group failed.
    Check(ApiError),
}

/// Check `done` of what `fetch` reads once, then again after every
/// notification, until it holds, the deadline passes or the stream ends.
/// `on_payload` sees every payload first.
pub async fn wait_loop<C, Fut, T>(
    rx: &mut UnboundedReceiver<String>,
    deadline: Instant,
    mut on_payload: impl FnMut(&str),
    mut fetch: C,
    mut done: impl FnMut(&T) -> bool,
) -> Result<(), Interrupted>
where
    C: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, ApiError>>,
{
    if done(&fetch().await.map_err(Interrupted::Check)?) {
        return Ok(());
    }
    loop {
        tokio::select! {
            msg = rx.recv() => match msg {
                Some(payload) => {
                    on_payload(&payload);
                    // Several notifications often come together: read the
                    // group once for all of them.
                    while let Ok(more) = rx.try_recv() {
                        on_payload(&more);
                    }
                    if done(&fetch().await.map_err(Interrupted::Check)?) {
                        return Ok(());
                    }
                }
                None => return Err(Interrupted::Closed),
            },
            _ = tokio::time::sleep_until(deadline) => return Err(Interrupted::Deadline),
        }
    }
}

/// A LISTEN connection on the monitor's `state` channel, for one formation
/// (and group).
pub struct Transitions {
    uri: String,
    formation: String,
    group: Option<i32>,
    layout: Layout,
    /// Print the table (off with `--json` or `-q`).
    print: bool,
    rx: UnboundedReceiver<String>,
    _client: Client,
}

async fn open(uri: &str) -> Result<(Client, UnboundedReceiver<String>), Failure> {
    let (client, mut raw) = crate::monitor::listen(uri, &["state"], CONNECT_TIMEOUT)
        .await
        .map_err(|e| Failure::new(exit::MONITOR, e))?;
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Some((_, payload)) = raw.recv().await {
            if tx.send(payload).is_err() {
                break;
            }
        }
    });
    Ok((client, rx))
}

impl Transitions {
    /// Start listening, before the call whose effects are awaited.
    pub async fn listen(
        uri: &str,
        formation: &str,
        group: Option<i32>,
        nodes: &[NodeRow],
        print: bool,
    ) -> Result<Transitions, Failure> {
        let (client, rx) = open(uri).await?;
        match group {
            Some(g) => tracing::info!(
                "Listening monitor notifications about state changes in formation \"{formation}\" and group {g}"
            ),
            None => tracing::info!(
                "Listening monitor notifications about state changes in formation \"{formation}\""
            ),
        }
        Ok(Transitions {
            uri: uri.to_string(),
            formation: formation.to_string(),
            group,
            layout: Layout::for_nodes(nodes),
            print,
            rx,
            _client: client,
        })
    }

    /// Print the table header (once the call was accepted).
    pub fn start_table(&self) {
        if self.print {
            tracing::info!("Following table displays times when notifications are received");
            print!("{}", self.layout.header());
        }
    }

    /// Wait until `done` holds of the group (as `current_state` reads it),
    /// for at most `limit`. `what` says what was awaited, for the error.
    pub async fn wait_until<F>(
        &mut self,
        monitor: &Client,
        limit: Duration,
        what: &str,
        mut done: F,
    ) -> Result<(), Failure>
    where
        F: FnMut(&[NodeRow]) -> bool,
    {
        let deadline = Instant::now() + limit;
        loop {
            let (formation, group, layout, print) =
                (&self.formation, self.group, &self.layout, self.print);
            let on_payload = |p: &str| {
                let Some(n) = parse_state_payload(p) else {
                    return;
                };
                if n.formation != *formation || group.is_some_and(|g| g != n.group_id) {
                    return;
                }
                if print {
                    print!("{}", layout.row(&clock(), &n));
                }
            };
            let fetch = || api::current_state(monitor, formation, group);
            let check = |rows: &Vec<NodeRow>| done(rows);
            match wait_loop(&mut self.rx, deadline, on_payload, fetch, check).await {
                Ok(()) => return Ok(()),
                Err(Interrupted::Check(e)) => return Err(e.into()),
                Err(Interrupted::Deadline) => {
                    return Err(Failure::new(
                        exit::INTERNAL_ERROR,
                        anyhow::anyhow!(
                            "{what} did not happen within {} s; see pg_autoctl show state and pg_autoctl show events, and use --wait to wait longer",
                            limit.as_secs()
                        ),
                    ))
                }
                Err(Interrupted::Closed) => {
                    tracing::warn!("Lost the connection listening to the monitor, opening it again");
                    loop {
                        match open(&self.uri).await {
                            Ok((client, rx)) => {
                                (self._client, self.rx) = (client, rx);
                                break;
                            }
                            Err(e) if Instant::now() >= deadline => return Err(e),
                            Err(_) => tokio::time::sleep(Duration::from_millis(500)).await,
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pgaf_fsm::node::Health;
    use pgaf_fsm::NodeState;
    use std::cell::Cell;

    #[test]
    fn table_rows_line_up_with_the_header() {
        let node = |name: &str, port: i32| NodeRow {
            formation_kind: "pgsql".into(),
            name: name.into(),
            host: "127.0.0.1".into(),
            port,
            group_id: 0,
            node_id: 2,
            reported: "primary".into(),
            assigned: "primary".into(),
            candidate_priority: 50,
            replication_quorum: true,
            tli: 1,
            lsn: "0/0".into(),
            health: 1,
        };
        let layout = Layout::for_nodes(&[node("nodeA", 6010), node("nodeB", 6011)]);
        let n = StateNotification {
            formation: "default".into(),
            group_id: 0,
            node_id: 2,
            name: "nodeB".into(),
            host: "127.0.0.1".into(),
            port: 6011,
            reported: NodeState::Primary,
            goal: NodeState::Draining,
            health: Health::Good,
        };
        assert_eq!(
            layout.header(),
            "    Time |  Name |  Node |      Host:Port |       Current State |      Assigned State\n\
             ---------+-------+-------+----------------+---------------------+--------------------\n"
        );
        assert_eq!(
            layout.row("10:50:07", &n),
            "10:50:07 | nodeB |     2 | 127.0.0.1:6011 |             primary |            draining\n"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn the_condition_is_checked_after_each_notification() {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let checks = Cell::new(0);
        let seen = Cell::new(0);
        tx.send("a".to_string()).unwrap();
        tx.send("b".to_string()).unwrap();
        let deadline = Instant::now() + Duration::from_secs(60);
        let r = wait_loop(
            &mut rx,
            deadline,
            |_| seen.set(seen.get() + 1),
            || {
                checks.set(checks.get() + 1);
                let n = checks.get();
                async move { Ok(n) }
            },
            |n| *n >= 2,
        )
        .await;
        assert!(r.is_ok());
        // Once before any notification, once after both queued ones.
        assert_eq!((checks.get(), seen.get()), (2, 2));
    }

    #[tokio::test(start_paused = true)]
    async fn without_notifications_the_deadline_ends_the_wait() {
        let (_tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<String>();
        let deadline = Instant::now() + Duration::from_secs(60);
        let r = wait_loop(&mut rx, deadline, |_| {}, || async { Ok(()) }, |_| false).await;
        assert!(matches!(r, Err(Interrupted::Deadline)));
    }

    #[tokio::test(start_paused = true)]
    async fn a_closed_stream_is_reported() {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<String>();
        drop(tx);
        let deadline = Instant::now() + Duration::from_secs(60);
        let r = wait_loop(&mut rx, deadline, |_| {}, || async { Ok(()) }, |_| false).await;
        assert!(matches!(r, Err(Interrupted::Closed)));
    }
}
