//! `pg_autoctl do pgctl on|off`: ask the running service to keep Postgres
//! stopped (`off`), or to run it again as its state requires (`on`). The
//! wish is a file next to the pidfile (`pg_autoctl.pg`) that the service
//! reads at each round; `off` on a primary stops its writes, and the
//! monitor then fails over as for any stopped primary.

use crate::cli::exit::{self, CmdResult, Failure};
use crate::cli::{Globals, PgdataArg};
use crate::pg::control::PostmasterPid;
use std::time::{Duration, Instant};

#[derive(Debug, clap::Subcommand)]
pub enum PgctlCmd {
    /// Signal pg_autoctl postgres service to ensure Postgres is running
    On(Pgdata),
    /// Signal pg_autoctl postgres service to ensure Postgres is stopped
    Off(Pgdata),
}

#[derive(Debug, Clone, clap::Args)]
pub struct Pgdata {
    #[command(flatten)]
    pub pgdata: PgdataArg,
}

/// How long to wait for Postgres to start or stop.
const WAIT: Duration = Duration::from_secs(10);

/// What the operator asked of Postgres.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wish {
    Running,
    Stopped,
}

/// The wish recorded in `path`, if any.
pub fn read_wish(path: &std::path::Path) -> Option<Wish> {
    match std::fs::read_to_string(path).ok()?.trim() {
        "stopped" => Some(Wish::Stopped),
        "running" => Some(Wish::Running),
        _ => None,
    }
}

impl PgctlCmd {
    pub(super) fn pgdata(&self) -> &PgdataArg {
        match self {
            PgctlCmd::On(a) | PgctlCmd::Off(a) => &a.pgdata,
        }
    }

    pub async fn run(self, g: Globals) -> CmdResult {
        let (on, a) = match &self {
            PgctlCmd::On(a) => (true, a),
            PgctlCmd::Off(a) => (false, a),
        };
        let (paths, cfg) = a.pgdata.load_config()?;
        let wish = if on { "running" } else { "stopped" };
        if let Some(dir) = paths.pg_status.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        crate::config::write_atomically(&paths.pg_status, wish.as_bytes(), 0o600).map_err(|e| {
            Failure::new(
                exit::PGCTL,
                anyhow::anyhow!("cannot write {}: {e}", paths.pg_status.display()),
            )
        })?;
        let deadline = Instant::now() + WAIT;
        loop {
            let pm = PostmasterPid::read(&paths.pgdata).filter(PostmasterPid::alive);
            match (on, &pm) {
                (true, Some(p)) if p.ready() => {
                    tracing::info!(
                        "Postgres is serving PGDATA \"{}\" on port {} with pid {}",
                        paths.pgdata.display(),
                        p.port,
                        p.pid
                    );
                    if g.json {
                        let v = crate::cli::status::postgres_json(&cfg, &paths, Some(p), None, "");
                        println!("{}", crate::cli::json::pretty(&v));
                    }
                    return Ok(());
                }
                (false, None) => {
                    tracing::info!(
                        "Postgres has been stopped for PGDATA \"{}\"",
                        paths.pgdata.display()
                    );
                    return Ok(());
                }
                _ => {}
            }
            if Instant::now() >= deadline {
                let why = if crate::cli::service_ctl::live_service(&paths.pid).is_none() {
                    "pg_autoctl run is not running for this node"
                } else {
                    "see the logs of pg_autoctl run"
                };
                return Err(Failure::new(
                    exit::PGCTL,
                    anyhow::anyhow!(
                        "Failed to ensure that Postgres is {wish} in \"{}\" within {}s: {why}",
                        paths.pgdata.display(),
                        WAIT.as_secs()
                    ),
                ));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}
