//! `pg_autoctl do ...`: the internal commands that test harnesses and
//! operators' scripts drive a node with. They exist only when
//! `PG_AUTOCTL_DEBUG` is set in the environment (any value, even empty);
//! otherwise `do` is an unknown command (exit 1), as with pg_auto_failover.
//!
//! * [`fsm`]: the keeper's state file, its goal, the nodes file;
//! * [`pgsetup`]: the local Postgres (find it, is it ready, its logs);
//! * [`service`] and [`pgctl`]: the running service and its Postgres;
//! * [`monitor`]: one call of the monitor's API at a time;
//! * [`show`]: this host's addresses and names.

pub mod fsm;
pub mod monitor;
pub mod pgctl;
pub mod pgsetup;
pub mod service;
pub mod show;

use super::exit::CmdResult;
use super::{Globals, PgdataArg};

/// The variable that makes the `do` commands available.
pub const DEBUG_ENV: &str = "PG_AUTOCTL_DEBUG";

/// Whether the `do` commands are available.
pub fn enabled() -> bool {
    std::env::var_os(DEBUG_ENV).is_some()
}

#[derive(Debug, clap::Subcommand)]
pub enum Do {
    /// Query a pg_auto_failover monitor
    #[command(subcommand)]
    Monitor(monitor::MonitorCmd),
    /// Manually manage the keeper's state
    #[command(subcommand)]
    Fsm(fsm::FsmCmd),
    /// Show some debug level information
    #[command(subcommand)]
    Show(show::ShowCmd),
    /// Manage a local Postgres setup
    #[command(subcommand)]
    Pgsetup(pgsetup::PgsetupCmd),
    /// Signal the pg_autoctl postgres service
    #[command(subcommand)]
    Pgctl(pgctl::PgctlCmd),
    /// Query the pg_autoctl service and its Postgres
    #[command(subcommand)]
    Service(service::ServiceCmd),
}

impl Do {
    /// The PGDATA the command works on, if any.
    pub(super) fn pgdata(&self) -> Option<&PgdataArg> {
        match self {
            Do::Monitor(c) => c.pgdata(),
            Do::Fsm(c) => c.pgdata(),
            Do::Show(_) => None,
            Do::Pgsetup(c) => Some(c.pgdata()),
            Do::Pgctl(c) => Some(c.pgdata()),
            Do::Service(c) => Some(c.pgdata()),
        }
    }

    pub async fn run(self, g: Globals) -> CmdResult {
        match self {
            Do::Monitor(c) => c.run(g).await,
            Do::Fsm(c) => c.run(g).await,
            Do::Show(c) => c.run(g),
            Do::Pgsetup(c) => c.run(g).await,
            Do::Pgctl(c) => c.run(g).await,
            Do::Service(c) => c.run(g).await,
        }
    }
}
