//! `pg_autoctl run`: the service of the node in PGDATA, a monitor or a
//! keeper, until SIGTERM or SIGINT (spec/keeper.md §2.8, §5).

use super::exit::{self, CmdResult, Code, Failure};
use super::{Globals, PgdataArg};
use crate::config::Config;
use crate::node::service::{self, Exit};
use crate::node::Node;
use crate::pg::bin::PgBin;
use crate::state::KeeperState;

#[derive(Debug, Clone, clap::Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub pgdata: PgdataArg,
}

pub async fn run(a: RunArgs, _g: Globals) -> CmdResult {
    let (paths, cfg) = a.pgdata.load_config()?;
    let pgdata = paths.pgdata.clone();
    match cfg {
        Config::Monitor(m) => {
            let _pid =
                crate::pidfile::acquire(&paths.pid, &pgdata, "listener").code(exit::BAD_STATE)?;
            crate::monitor_node::run(m, None).await.code(exit::PGCTL)
        }
        Config::Keeper(k) => {
            let state = KeeperState::load(&paths.state).code(exit::BAD_STATE)?.ok_or_else(|| {
                Failure::new(
                    exit::BAD_STATE,
                    anyhow::anyhow!(
                        "no state file at {}: the node was not created; run `pg_autoctl create postgres` first",
                        paths.state.display()
                    ),
                )
            })?;
            let bin = PgBin::from_pg_ctl(&k.pg.pg_ctl)
                .or_else(|_| PgBin::discover(None))
                .code(exit::PGCTL)?;
            let _pid = crate::pidfile::acquire(&paths.pid, &pgdata, "node-active")
                .code(exit::BAD_STATE)?;
            let node = Node::new(k, paths, bin, state).code(exit::KEEPER)?;
            match service::run(node, None).await.code(exit::KEEPER)? {
                Exit::Dropped | Exit::Stopped | Exit::Reached => Ok(()),
            }
        }
    }
}
