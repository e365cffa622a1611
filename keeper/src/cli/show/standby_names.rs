//! `pg_autoctl show standby-names`: the value of
//! `synchronous_standby_names` the monitor computes for a group's primary,
//! quoted as in `postgresql.conf`, or as JSON.

use super::Target;
use crate::cli::api::{self, col};
use crate::cli::exit::CmdResult;
use crate::cli::Globals;

#[derive(Debug, Clone, clap::Args)]
pub struct StandbyNamesArgs {
    #[command(flatten)]
    pub target: Target,
    /// Formation to query, defaults to 'default'
    #[arg(long)]
    pub formation: Option<String>,
    /// Group to query, defaults to the local node's group, or the only one
    #[arg(long)]
    pub group: Option<i32>,
}

pub async fn run(a: StandbyNamesArgs, g: Globals) -> CmdResult {
    let target = a.target.resolve()?;
    let formation = target.formation(&a.formation);
    let monitor = target.connect().await?;
    let c = monitor.client();
    let group = target.group(c, &formation, a.group).await?;
    tracing::info!("Targeting group {group} in formation \"{formation}\"");
    const CTX: &str = "synchronous_standby_names";
    let row = c
        .query_one(
            "SELECT coalesce(pgautofailover.synchronous_standby_names($1, $2), '')",
            &[&formation, &group],
        )
        .await
        .map_err(api::sql(CTX))?;
    let value: String = col(&row, 0, CTX)?;
    if g.json {
        let v = serde_json::json!({
            "formation": formation,
            "group": group,
            "synchronous_standby_names": value,
        });
        println!("{}", crate::cli::json::pretty(&v));
    } else {
        println!("'{value}'");
    }
    Ok(())
}
