//! `pg_autoctl get|set formation number-sync-standbys`: how many standbys must acknowledge each commit. `set` waits for
//! the primary to apply the new `synchronous_standby_names`, printing the
//! transitions; a negative value or an unknown formation is refused (exit
//! 1, nothing changed), as is a value the group cannot meet (the monitor
//! says why).

use super::api::{self, col};
use super::exit::{CmdResult, Failure};
use super::node_props::settings_applied;
use super::show::Target;
use super::transitions::Transitions;
use super::Globals;
use std::time::Duration;

#[derive(Debug, Clone, clap::Args)]
pub struct FormationArgs {
    #[command(flatten)]
    pub target: Target,
    /// pg_auto_failover formation
    #[arg(long)]
    pub formation: Option<String>,
}

#[derive(Debug, Clone, clap::Args)]
pub struct SetNssArgs {
    #[command(flatten)]
    pub formation: FormationArgs,
    /// How many standbys must acknowledge each commit (0 or more)
    #[arg(value_name = "NUMBER_SYNC_STANDBYS", allow_negative_numbers = true)]
    pub value: String,
}

/// `number_sync_standbys` in `text`, or why it is not one.
pub fn parse_nss(text: &str) -> Result<i32, String> {
    match text.trim().parse::<i64>() {
        Ok(n) if n < 0 => Err(format!(
            "number-sync-standbys {n} is negative: give 0 (commits wait for any one standby \
             while there is one) or the number of standbys that must acknowledge each commit"
        )),
        Ok(n) => i32::try_from(n).map_err(|_| format!("number-sync-standbys {n} is too large")),
        Err(_) => Err(format!(
            "number-sync-standbys \"{text}\" is not an integer: give 0 or more"
        )),
    }
}

async fn current(c: &tokio_postgres::Client, formation: &str) -> Result<i32, Failure> {
    api::number_sync_standbys(c, formation)
        .await?
        .ok_or_else(|| {
            Failure::usage(format!(
                "formation \"{formation}\" does not exist; see pg_autoctl show uri for the formations"
            ))
        })
}

pub async fn get_nss(a: FormationArgs, g: Globals) -> CmdResult {
    let target = a.target.resolve()?;
    let formation = target.formation(&a.formation);
    let monitor = target.connect().await?;
    let n = current(monitor.client(), &formation).await?;
    if g.json {
        println!(
            "{}",
            super::json::pretty(&serde_json::json!({ "number-sync-standbys": n }))
        );
    } else {
        println!("{n}");
    }
    Ok(())
}

pub async fn set_nss(a: SetNssArgs, g: Globals) -> CmdResult {
    let value = parse_nss(&a.value).map_err(Failure::usage)?;
    let target = a.formation.target.resolve()?;
    let formation = target.formation(&a.formation.formation);
    let monitor = target.connect().await?;
    let c = monitor.client();
    current(c, &formation).await?;
    // The setting applies to group 0.
    let nodes = api::current_state(c, &formation, Some(0)).await?;
    let mut t = Transitions::listen(&target.uri, &formation, Some(0), &nodes, !g.json).await?;
    const CTX: &str = "set_formation_number_sync_standbys";
    let row = c
        .query_one(
            "SELECT pgautofailover.set_formation_number_sync_standbys($1, $2)",
            &[&formation, &value],
        )
        .await
        .map_err(api::sql(CTX))?;
    if !col::<bool>(&row, 0, CTX)? {
        return Err(Failure::new(
            super::exit::MONITOR,
            anyhow::anyhow!("{CTX}: the monitor did not apply the change"),
        ));
    }
    if nodes.len() > 1 {
        t.start_table();
        t.wait_until(
            c,
            Duration::from_secs(60),
            "Applying the new setting on the primary",
            settings_applied,
        )
        .await?;
    }
    let names = c
        .query_one(
            "SELECT coalesce(pgautofailover.synchronous_standby_names($1, 0), '')",
            &[&formation],
        )
        .await
        .map_err(api::sql("synchronous_standby_names"))?;
    let names: String = col(&names, 0, "synchronous_standby_names")?;
    tracing::info!("synchronous_standby_names is now '{names}'");
    if g.json {
        let v = serde_json::json!({
            "number-sync-standbys": value,
            "synchronous_standby_names": names,
        });
        println!("{}", super::json::pretty(&v));
    } else {
        println!("{value}");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn negative_values_are_refused() {
        assert_eq!(super::parse_nss("1"), Ok(1));
        assert!(super::parse_nss("-1").unwrap_err().contains("negative"));
        assert!(super::parse_nss("one").is_err());
    }
}
