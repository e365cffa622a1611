//! Formations on the monitor: `create formation`, `drop formation` and
//! `enable|disable secondary` (upstream's options and exit codes: 1 for a
//! usage error, 6 when the monitor refuses, with its message).
//!
//! They talk to the monitor of `--monitor` (`PG_AUTOCTL_MONITOR`) or of the
//! node in `--pgdata`. On the monitor's own host (`--pgdata` of the
//! monitor) they connect locally as the superuser: `enable|disable
//! secondary` are not granted to `autoctl_node`, as upstream's are not.

use super::api::{self, col};
use super::exit::{self, CmdResult, Code, Failure};
use super::show::Target;
use super::Globals;
use crate::config::Config;
use tokio_postgres::Client;

#[derive(Debug, Clone, clap::Args)]
pub struct CreateFormationArgs {
    #[command(flatten)]
    pub target: Target,
    /// Name of the formation to create
    #[arg(long, short = 'f')]
    pub formation: String,
    /// Kind of the formation: pgsql (Citus is not supported)
    #[arg(long, short = 'k')]
    pub kind: String,
    /// Name of the database the nodes of the formation serve
    #[arg(long, default_value = "postgres")]
    pub dbname: String,
    /// Create a formation whose groups have a secondary (the default)
    #[arg(
        long,
        visible_alias = "enable-secondary",
        conflicts_with = "without_secondary"
    )]
    pub with_secondary: bool,
    /// Create a formation of standalone nodes, without secondaries
    #[arg(long, visible_alias = "disable-secondary")]
    pub without_secondary: bool,
    /// How many standbys must acknowledge each commit (0 or more)
    #[arg(long, short = 'n', default_value = "0", allow_negative_numbers = true)]
    pub number_sync_standbys: String,
}

#[derive(Debug, Clone, clap::Args)]
pub struct DropFormationArgs {
    #[command(flatten)]
    pub target: Target,
    /// Name of the formation to drop
    #[arg(long, short = 'f')]
    pub formation: String,
}

#[derive(Debug, Clone, clap::Args)]
pub struct SecondaryArgs {
    #[command(flatten)]
    pub target: Target,
    /// Formation whose secondaries are enabled or disabled
    #[arg(long, short = 'f')]
    pub formation: String,
}

/// A connection that may call the monitor's functions: locally as the
/// superuser on the monitor's host, else as `autoctl_node`.
enum Admin {
    Local(crate::pg::local::Local),
    Remote(crate::monitor::Monitor),
}

impl Admin {
    async fn connect(target: &Target) -> Result<Admin, Failure> {
        let resolved = target.resolve()?;
        if let (Some(Config::Monitor(m)), None) = (&resolved.local, &target.monitor) {
            let local =
                crate::pg::local::Local::connect_db(&m.pg.pgdata, "pg_auto_failover")
                    .await
                    .map_err(|e| {
                        Failure::new(
                            exit::MONITOR,
                            anyhow::anyhow!(
                                "cannot connect to the monitor's Postgres in {}: {e}; is pg_autoctl run running there?",
                                m.pg.pgdata.display()
                            ),
                        )
                    })?;
            return Ok(Admin::Local(local));
        }
        if resolved.uri == crate::config::MONITOR_DISABLED {
            return Err(Failure::usage(
                "the monitor of this node is disabled: give the monitor with --monitor",
            ));
        }
        Ok(Admin::Remote(resolved.connect().await?))
    }

    fn client(&self) -> &Client {
        match self {
            Admin::Local(l) => l.client(),
            Admin::Remote(m) => m.client(),
        }
    }
}

/// What the monitor said, with the failed action in front.
fn refused(what: String) -> impl FnOnce(api::ApiError) -> Failure {
    move |e| Failure::new(exit::MONITOR, anyhow::anyhow!("{what}: {e}"))
}

pub async fn create(a: CreateFormationArgs, g: Globals) -> CmdResult {
    match a.kind.as_str() {
        "pgsql" => {}
        "citus" => {
            return Err(Failure::usage(
                "formations of kind \"citus\" are not supported: this pg_autoctl serves \
                 Postgres formations (--kind pgsql)",
            ))
        }
        other => {
            return Err(Failure::usage(format!(
                "--kind \"{other}\" is not a formation kind: use --kind pgsql"
            )))
        }
    }
    if a.formation.is_empty() {
        return Err(Failure::usage("--formation must not be empty"));
    }
    let nss = super::formation_props::parse_nss(&a.number_sync_standbys).map_err(Failure::usage)?;
    let secondary = !a.without_secondary;
    let admin = Admin::connect(&a.target).await?;
    let what = format!(
        "Failed to create formation \"{}\" of kind \"{}\"",
        a.formation, a.kind
    );
    let row = admin
        .client()
        .query_one(
            "SELECT formation_id, kind, dbname::text, opt_secondary, number_sync_standbys
               FROM pgautofailover.create_formation($1, $2, $3::text::name, $4, $5)",
            &[&a.formation, &a.kind, &a.dbname, &secondary, &nss],
        )
        .await
        .map_err(api::sql("create_formation"))
        .map_err(refused(what.clone()))?;
    let c = "create_formation";
    let dbname: String = col(&row, 2, c).map_err(refused(what.clone()))?;
    tracing::info!(
        "Created formation \"{}\" of kind \"{}\" on the monitor, with secondary {}.",
        a.formation,
        a.kind,
        if secondary { "enabled" } else { "disabled" }
    );
    if g.json {
        println!(
            "{}",
            super::json::pretty(&serde_json::json!({
                "formation": a.formation,
                "kind": a.kind,
                "dbname": dbname,
                "opt_secondary": secondary,
                "number_sync_standbys": nss,
            }))
        );
    }
    Ok(())
}

pub async fn drop(a: DropFormationArgs, g: Globals) -> CmdResult {
    if a.formation.is_empty() {
        return Err(Failure::usage("--formation must not be empty"));
    }
    let admin = Admin::connect(&a.target).await?;
    admin
        .client()
        .execute("SELECT pgautofailover.drop_formation($1)", &[&a.formation])
        .await
        .map_err(api::sql("drop_formation"))
        .map_err(refused(format!(
            "Failed to drop formation \"{}\"",
            a.formation
        )))?;
    tracing::info!("Dropped formation \"{}\" on the monitor", a.formation);
    if g.json {
        println!(
            "{}",
            super::json::pretty(&serde_json::json!({ "formation": a.formation, "dropped": true }))
        );
    }
    Ok(())
}

/// `enable secondary` (`enable` true) or `disable secondary`.
pub async fn secondary(a: SecondaryArgs, enable: bool, g: Globals) -> CmdResult {
    if a.formation.is_empty() {
        return Err(Failure::usage("--formation must not be empty"));
    }
    let admin = Admin::connect(&a.target).await?;
    let (function, verb) = if enable {
        ("enable_secondary", "enable")
    } else {
        ("disable_secondary", "disable")
    };
    let row = admin
        .client()
        .query_one(
            &format!("SELECT pgautofailover.{function}($1)"),
            &[&a.formation],
        )
        .await
        .map_err(api::sql("enable or disable secondaries"))
        .map_err(refused(format!(
            "Failed to {verb} secondaries on formation \"{}\"",
            a.formation
        )))?;
    let found: bool = col(&row, 0, "enable or disable secondaries").code(exit::MONITOR)?;
    if !found {
        return Err(Failure::usage(format!(
            "formation \"{}\" does not exist; see pg_autoctl show uri for the formations",
            a.formation
        )));
    }
    if enable {
        tracing::info!(
            "Enabled secondaries for formation \"{}\", make sure to add worker nodes to the \
             formation to have secondaries ready for failover.",
            a.formation
        );
    } else {
        tracing::info!("Disabled secondaries for formation \"{}\".", a.formation);
    }
    if g.json {
        println!(
            "{}",
            super::json::pretty(
                &serde_json::json!({ "formation": a.formation, "secondary": enable })
            )
        );
    }
    Ok(())
}
