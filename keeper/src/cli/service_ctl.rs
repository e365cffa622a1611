//! `pg_autoctl stop` and `pg_autoctl reload` (spec/keeper.md §2.8): signal
//! the service whose pid is on line 1 of the pidfile. `stop` sends SIGTERM
//! (stop Postgres with a fast shutdown, then exit), SIGINT with `--fast`,
//! SIGQUIT with `--immediate`; `reload` sends SIGHUP (read the
//! configuration again). Neither waits. Exit 12 when the service does not
//! run, as upstream.

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
    /// Immediate shutdown mode for the keeper (SIGQUIT)
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

/// The pid of the running service of `pgdata`, or the refusal to print.
fn running(pgdata: &PgdataArg) -> Result<(i32, String), Failure> {
    let pgdata = pgdata.require()?;
    let paths = NodePaths::new(&pgdata);
    match crate::pidfile::read_live(&paths.pid) {
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
    let (sig, name) = if a.immediate {
        (libc::SIGQUIT, "SIGQUIT")
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
