//! `pg_autoctl run`: the service of the node in PGDATA, a monitor or a
//! keeper, until SIGTERM or SIGINT.

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
    /// A new name for this node (kept in the configuration and on the monitor)
    #[arg(long)]
    pub name: Option<String>,
    /// A new hostname for this node, the address other nodes use (--nodename: deprecated alias)
    #[arg(long, alias = "nodename")]
    pub hostname: Option<String>,
    /// A new Postgres port for this node
    #[arg(long)]
    pub pgport: Option<u16>,
}

pub async fn run(a: RunArgs, g: Globals) -> CmdResult {
    if a.name.is_some() || a.hostname.is_some() || a.pgport.is_some() {
        update_metadata(&a, g).await?;
    }
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

/// `run --name|--hostname|--pgport`: record the node's new metadata in its
/// configuration and, with a monitor, on the monitor, before starting.
async fn update_metadata(a: &RunArgs, _g: Globals) -> CmdResult {
    let (paths, cfg) = a.pgdata.load_config()?;
    let Config::Keeper(mut k) = cfg else {
        return Err(Failure::usage(
            "--name, --hostname and --pgport apply to a Postgres node, not to the monitor",
        ));
    };
    if k.monitor != crate::config::MONITOR_DISABLED {
        let m = super::node_props::MetadataArgs {
            pgdata: a.pgdata.clone(),
            name: a.name.clone(),
            hostname: a.hostname.clone(),
            pgport: a.pgport,
        };
        return super::node_props::set_metadata(m, Globals { json: false }).await;
    }
    if let Some(n) = &a.name {
        k.name = n.clone();
    }
    if let Some(h) = &a.hostname {
        k.hostname = h.clone();
    }
    if let Some(p) = a.pgport {
        k.pg.port = p;
    }
    Config::Keeper(k).save(&paths.config).code(exit::BAD_CONFIG)
}
