//! `pg_autoctl stop` and `pg_autoctl reload`: signal
//! the service whose pid is on line 1 of the pidfile. `stop` sends SIGTERM
//! (stop Postgres with a fast shutdown, then exit), SIGINT with `--fast`;
//! `reload` sends SIGHUP (read the configuration again). Neither waits.
//! Exit 12 when the service does not run, as upstream.
//!
//! `--immediate` sends SIGQUIT when the service handles it; our services do
//! not (a SIGQUIT would dump a core, or do nothing where it is ignored, as
//! in the background jobs of a shell), so the service is killed instead:
//! its Postgres then gets SIGQUIT from the kernel (the parent-death signal
//! the service gave it), which is Postgres's immediate shutdown.

use super::exit::{self, CmdResult, Failure};
use super::{Globals, PgdataArg};
use crate::paths::NodePaths;

#[derive(Debug, Clone, clap::Args)]
pub struct StopArgs {
    #[command(flatten)]
    pub pgdata: PgdataArg,
    /// Fast shutdown mode for the keeper (SIGINT)
    #[arg(long, conflicts_with = "immediate")]
    pub fast: bool,
    /// Immediate shutdown mode for the keeper (Postgres stops at once)
    #[arg(long)]
    pub immediate: bool,
}

#[derive(Debug, Clone, clap::Args)]
pub struct ReloadArgs {
    #[command(flatten)]
    pub pgdata: PgdataArg,
}

/// Send `sig` to `pid`.
pub fn signal(pid: i32, sig: i32) -> std::io::Result<()> {
    // SAFETY: kill(2) with a pid read from our pidfile and a valid signal.
    if pid > 0 && unsafe { libc::kill(pid, sig) } == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// Whether `pid` has exited and waits for its parent to reap it.
pub fn is_zombie(pid: i32) -> bool {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let state = stat
        .rsplit_once(')')
        .and_then(|(_, rest)| rest.trim_start().chars().next());
    matches!(state, Some('Z' | 'X'))
}

/// The service recorded in `pidfile`, if it runs (an exited process its
/// parent did not reap yet does not).
pub fn live_service(pidfile: &std::path::Path) -> Option<crate::pidfile::PidInfo> {
    crate::pidfile::read_live(pidfile).filter(|i| !is_zombie(i.pid))
}

/// Whether process `pid` has a handler for signal `sig` (`SigCgt` in
/// `/proc/<pid>/status`).
fn catches(pid: i32, sig: i32) -> bool {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("SigCgt:"))
        .and_then(|mask| u64::from_str_radix(mask.trim(), 16).ok())
        .is_some_and(|mask| sig > 0 && mask & (1u64 << (sig - 1)) != 0)
}

/// The pid of the running service of `pgdata`, or the refusal to print.
fn running(pgdata: &PgdataArg) -> Result<(i32, String), Failure> {
    let pgdata = pgdata.require()?;
    let paths = NodePaths::new(&pgdata);
    match live_service(&paths.pid) {
        Some(info) => Ok((info.pid, pgdata.display().to_string())),
        None => Err(Failure::new(
            exit::INTERNAL_ERROR,
            anyhow::anyhow!(
                "pg_autoctl is not running for {} (no live pid in {}): nothing to signal",
                pgdata.display(),
                paths.pid.display()
            ),
        )),
    }
}

pub async fn stop(a: StopArgs, _g: Globals) -> CmdResult {
    let (pid, pgdata) = running(&a.pgdata)?;
    let (sig, name) = if a.immediate && catches(pid, libc::SIGQUIT) {
        (libc::SIGQUIT, "SIGQUIT")
    } else if a.immediate {
        (
            libc::SIGKILL,
            "SIGKILL (immediate stop: Postgres goes down with it)",
        )
    } else if a.fast {
        (libc::SIGINT, "SIGINT")
    } else {
        (libc::SIGTERM, "SIGTERM")
    };
    signal(pid, sig).map_err(|e| {
        Failure::new(
            exit::INTERNAL_ERROR,
            anyhow::anyhow!("cannot send {name} to pg_autoctl (pid {pid}): {e}"),
        )
    })?;
    tracing::info!("Sent {name} to the pg_autoctl service of {pgdata} (pid {pid})");
    Ok(())
}

pub async fn reload(a: ReloadArgs, _g: Globals) -> CmdResult {
    let (pid, pgdata) = running(&a.pgdata)?;
    signal(pid, libc::SIGHUP).map_err(|e| {
        Failure::new(
            exit::INTERNAL_ERROR,
            anyhow::anyhow!("cannot send SIGHUP to pg_autoctl (pid {pid}): {e}"),
        )
    })?;
    tracing::info!(
        "Sent SIGHUP to the pg_autoctl service of {pgdata} (pid {pid}) to reload its configuration"
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn signal_handlers_are_read_from_proc() {
        let me = std::process::id() as i32;
        // The test harness does not handle SIGQUIT; nothing handles signal 0.
        assert!(!super::catches(me, libc::SIGQUIT));
        assert!(!super::catches(me, 0));
    }
}
