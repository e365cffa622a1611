//! `pg_autoctl watch`: a live view of a formation in
//! the terminal: its nodes (states, health, connection type, replication
//! lag behind the primary) and its last events.
//!
//! The view is read again when the monitor notifies a change (LISTEN on
//! its `state` and `log` channels), not on a timer; a terminal resize
//! redraws it. `q` or Ctrl-C quits. A lost monitor connection is shown on
//! the status line and opened again.
//!
//! * [`screen`]: the frame, as text lines cut to the terminal size;
//! * [`terminal`]: the alternate screen, keys, size.

pub mod screen;
pub mod terminal;

use super::api;
use super::exit::{CmdResult, Failure};
use super::show::{events, Target};
use super::Globals;
use screen::Snapshot;
use std::time::Duration;
use tokio::signal::unix::{signal, SignalKind};
use tokio_postgres::Client;

#[derive(Debug, Clone, clap::Args)]
pub struct WatchArgs {
    #[command(flatten)]
    pub target: Target,
    /// Formation to watch, defaults to the local node's, or 'default'
    #[arg(long)]
    pub formation: Option<String>,
    /// Group to watch, defaults to all
    #[arg(long)]
    pub group: Option<i32>,
}

/// How long to wait between two attempts to reach a lost monitor.
const RECONNECT: Duration = Duration::from_secs(1);

/// The monitor connections of the view.
struct Conns {
    query: crate::monitor::Monitor,
    notifications: tokio::sync::mpsc::UnboundedReceiver<(String, String)>,
    _listen: Client,
}

async fn connect(uri: &str) -> Result<Conns, String> {
    let query = crate::monitor::Monitor::connect(uri, super::show::CONNECT_TIMEOUT)
        .await
        .map_err(|e| e.to_string())?;
    let (listen, notifications) =
        crate::monitor::listen(uri, &["state", "log"], super::show::CONNECT_TIMEOUT)
            .await
            .map_err(|e| e.to_string())?;
    Ok(Conns {
        query,
        notifications,
        _listen: listen,
    })
}

async fn read(
    c: &Client,
    formation: &str,
    group: Option<i32>,
    snap: &mut Snapshot,
) -> Result<(), api::ApiError> {
    let (_, height) = terminal::size();
    snap.nodes = api::current_state(c, formation, group).await?;
    let count = i32::try_from(height.clamp(1, 200)).unwrap_or(50);
    snap.events = events::fetch(c, formation, group, count).await?;
    snap.at = super::transitions::clock();
    Ok(())
}

pub async fn run(a: WatchArgs, _g: Globals) -> CmdResult {
    if !terminal::is_tty(libc::STDOUT_FILENO) {
        return Err(Failure::usage(
            "pg_autoctl watch needs a terminal; use pg_autoctl show state and pg_autoctl show events instead",
        ));
    }
    let target = a.target.resolve()?;
    let formation = target.formation(&a.formation);
    let mut conns = Some(
        connect(&target.uri)
            .await
            .map_err(|e| Failure::new(super::exit::MONITOR, anyhow::anyhow!("{e}")))?,
    );
    let mut snap = Snapshot {
        formation: formation.clone(),
        monitor: pgaf_pgconn::redact(&target.uri),
        status: "q: quit".into(),
        ..Snapshot::default()
    };
    let io = |e: std::io::Error| Failure::new(super::exit::INTERNAL_ERROR, e);
    let mut sigint = signal(SignalKind::interrupt()).map_err(io)?;
    let mut sigterm = signal(SignalKind::terminate()).map_err(io)?;
    let mut sighup = signal(SignalKind::hangup()).map_err(io)?;
    let mut winch = signal(SignalKind::window_change()).map_err(io)?;
    let mut keys = terminal::keys();
    let mut keys_open = true;

    let screen = terminal::Screen::enter();
    let draw = |snap: &Snapshot| {
        let (w, h) = terminal::size();
        screen.draw(&screen::render(snap, w, h));
    };
    // Read again on the next turn.
    let mut stale = true;
    loop {
        if stale {
            if let Some(c) = &conns {
                match read(c.query.client(), &formation, a.group, &mut snap).await {
                    Ok(()) => snap.status = "q: quit".into(),
                    Err(e) => {
                        snap.status = format!("lost the monitor ({e}): reconnecting");
                        conns = None;
                    }
                }
            }
            stale = false;
            draw(&snap);
        }
        let reconnect = async {
            tokio::time::sleep(RECONNECT).await;
            connect(&target.uri).await
        };
        tokio::select! {
            _ = sigint.recv() => break,
            _ = sigterm.recv() => break,
            _ = sighup.recv() => break,
            _ = winch.recv() => draw(&snap),
            key = keys.recv(), if keys_open => match key {
                Some(b'q' | b'Q') => break,
                Some(_) => {}
                None => keys_open = false,
            },
            msg = async {
                match conns.as_mut() {
                    Some(c) => c.notifications.recv().await,
                    None => std::future::pending().await,
                }
            } => match msg {
                Some(_) => {
                    // Take every notification already there, read once.
                    if let Some(c) = conns.as_mut() {
                        while c.notifications.try_recv().is_ok() {}
                    }
                    stale = true;
                }
                None => {
                    conns = None;
                    snap.status = "lost the monitor connection: reconnecting".into();
                    draw(&snap);
                }
            },
            res = reconnect, if conns.is_none() => match res {
                Ok(c) => {
                    conns = Some(c);
                    stale = true;
                }
                Err(e) => {
                    snap.status = format!("cannot reach the monitor ({e}): retrying");
                    draw(&snap);
                }
            },
        }
    }
    drop(screen);
    Ok(())
}
