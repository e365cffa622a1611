//! The `enable` and `disable` command words: `secondary`
//! ([`super::formation`]), `maintenance` ([`super::maintenance`]), `ssl`
//! ([`super::ssl_cmd`]) and `monitor` ([`super::monitor_attach`]).

use super::exit::CmdResult;
use super::formation::{self, SecondaryArgs};
use super::{maintenance, monitor_attach, ssl_cmd};
use super::{Globals, PgdataArg};

#[derive(Debug, clap::Subcommand)]
pub enum Enable {
    /// Enable secondary nodes on a formation
    Secondary(SecondaryArgs),
    /// Enable Postgres maintenance mode on this node
    Maintenance(maintenance::EnableArgs),
    /// Enable SSL configuration on this node
    Ssl(ssl_cmd::EnableArgs),
    /// Enable a monitor for this node to be orchestrated from
    Monitor(monitor_attach::EnableArgs),
}

#[derive(Debug, clap::Subcommand)]
pub enum Disable {
    /// Disable secondary nodes on a formation
    Secondary(SecondaryArgs),
    /// Disable Postgres maintenance mode on this node
    Maintenance(maintenance::DisableArgs),
    /// Disable SSL configuration on this node
    Ssl(ssl_cmd::DisableArgs),
    /// Disable the monitor for this node
    Monitor(monitor_attach::DisableArgs),
}

impl Enable {
    pub(super) fn pgdata(&self) -> &PgdataArg {
        match self {
            Enable::Secondary(a) => &a.target.pgdata,
            Enable::Maintenance(a) => &a.pgdata,
            Enable::Ssl(a) => &a.pgdata,
            Enable::Monitor(a) => &a.pgdata,
        }
    }

    pub async fn run(self, g: Globals) -> CmdResult {
        match self {
            Enable::Secondary(a) => formation::secondary(a, true, g).await,
            Enable::Maintenance(a) => maintenance::enable(a, g).await,
            Enable::Ssl(a) => ssl_cmd::enable(a, g).await,
            Enable::Monitor(a) => monitor_attach::enable(a, g).await,
        }
    }
}

impl Disable {
    pub(super) fn pgdata(&self) -> &PgdataArg {
        match self {
            Disable::Secondary(a) => &a.target.pgdata,
            Disable::Maintenance(a) => &a.pgdata,
            Disable::Ssl(a) => &a.pgdata,
            Disable::Monitor(a) => &a.pgdata,
        }
    }

    pub async fn run(self, g: Globals) -> CmdResult {
        match self {
            Disable::Secondary(a) => formation::secondary(a, false, g).await,
            Disable::Maintenance(a) => maintenance::disable(a, g).await,
            Disable::Ssl(a) => ssl_cmd::disable(a, g).await,
            Disable::Monitor(a) => monitor_attach::disable(a, g).await,
        }
    }
}
