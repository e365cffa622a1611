//! The `enable` and `disable` command words (spec/keeper.md §2.5). Only
//! maintenance is implemented ([`super::maintenance`]); upstream's
//! `secondary`, `ssl` and `monitor` features are not offered.

use super::exit::CmdResult;
use super::maintenance;
use super::{Globals, PgdataArg};

#[derive(Debug, clap::Subcommand)]
pub enum Enable {
    /// Enable Postgres maintenance mode on this node
    Maintenance(maintenance::EnableArgs),
}

#[derive(Debug, clap::Subcommand)]
pub enum Disable {
    /// Disable Postgres maintenance mode on this node
    Maintenance(maintenance::DisableArgs),
}

impl Enable {
    pub(super) fn pgdata(&self) -> &PgdataArg {
        match self {
            Enable::Maintenance(a) => &a.pgdata,
        }
    }

    pub async fn run(self, g: Globals) -> CmdResult {
        match self {
            Enable::Maintenance(a) => maintenance::enable(a, g).await,
        }
    }
}

impl Disable {
    pub(super) fn pgdata(&self) -> &PgdataArg {
        match self {
            Disable::Maintenance(a) => &a.pgdata,
        }
    }

    pub async fn run(self, g: Globals) -> CmdResult {
        match self {
            Disable::Maintenance(a) => maintenance::disable(a, g).await,
        }
    }
}
