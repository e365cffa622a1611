//! `pg_autoctl show state`: the monitor's view of
//! every node of a formation, or `--local`, the local node's own view.

use super::{table, Target};
use crate::cli::exit::{self, CmdResult, Code, Failure};
use crate::cli::Globals;
use crate::config::Config;
use crate::pg::control::{controldata, PostmasterPid};
use pgaf_fsm::NodeState;

#[derive(Debug, Clone, clap::Args)]
pub struct StateArgs {
    #[command(flatten)]
    pub target: Target,
    /// Formation to query, defaults to 'default'
    #[arg(long)]
    pub formation: Option<String>,
    /// Group to query formation, defaults to all
    #[arg(long)]
    pub group: Option<i32>,
    /// Show local data, do not connect to the monitor
    #[arg(long)]
    pub local: bool,
    /// Display an auto-updating dashboard (pg_autoctl watch)
    #[arg(long)]
    pub watch: bool,
}

/// One line of the table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    pub name: String,
    pub node: String,
    pub host: String,
    pub port: i32,
    pub tli: i32,
    pub lsn: String,
    pub current: String,
    pub assigned: String,
    /// 1 healthy, 0 unhealthy, -1 unknown.
    pub health: i32,
}

fn connection(current: &str, health: i32) -> String {
    let kind = current
        .parse::<NodeState>()
        .map_or("none", |s| s.connection_type());
    match health {
        1 => kind.to_string(),
        0 => format!("{kind} !"),
        _ => format!("{kind} ?"),
    }
}

/// The text table: state columns are always 19 wide (the longest state
/// label), Connection 12, so the layout does not move under `watch`.
pub fn render(rows: &[Row]) -> String {
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            vec![
                r.name.clone(),
                r.node.clone(),
                format!("{}:{}", r.host, r.port),
                format!("{:>3}: {}", r.tli, r.lsn),
                connection(&r.current, r.health),
                r.current.clone(),
                r.assigned.clone(),
            ]
        })
        .collect();
    table(
        &[
            "Name",
            "Node",
            "Host:Port",
            "TLI: LSN",
            "Connection",
            "Reported State",
            "Assigned State",
        ],
        &[4, 5, 10, 9, 12, 19, 19],
        &cells,
    )
}

pub async fn run(a: StateArgs, g: Globals) -> CmdResult {
    let target = a.target.resolve()?;
    if a.local {
        return local(&target, g).await;
    }
    let formation = target.formation(&a.formation);
    let monitor = target.connect().await?;
    let c = monitor.client();
    if g.json {
        let sql = match a.group {
            Some(_) => "SELECT jsonb_pretty(coalesce(jsonb_agg(row_to_json(s)), '[]'::jsonb)) FROM pgautofailover.current_state($1, $2) s",
            None => "SELECT jsonb_pretty(coalesce(jsonb_agg(row_to_json(s)), '[]'::jsonb)) FROM pgautofailover.current_state($1) s",
        };
        let row = match a.group {
            Some(grp) => c.query_one(sql, &[&formation, &grp]).await,
            None => c.query_one(sql, &[&formation]).await,
        }
        .code(exit::MONITOR)?;
        println!("{}", row.try_get::<_, String>(0).code(exit::MONITOR)?);
        return Ok(());
    }
    let cols = "nodename::text, node_id::bigint, group_id::int, nodehost::text, nodeport::int, reported_tli::int, \
                reported_lsn::text, current_group_state::text, assigned_group_state::text, health::int, formation_kind::text";
    let rows = match a.group {
        Some(grp) => {
            c.query(
                &format!("SELECT {cols} FROM pgautofailover.current_state($1, $2)"),
                &[&formation, &grp],
            )
            .await
        }
        None => {
            c.query(
                &format!("SELECT {cols} FROM pgautofailover.current_state($1)"),
                &[&formation],
            )
            .await
        }
    }
    .code(exit::MONITOR)?;
    let decode = |r: &tokio_postgres::Row| -> Result<Row, tokio_postgres::Error> {
        let id: i64 = r.try_get(1)?;
        let group: i32 = r.try_get(2)?;
        let kind: String = r.try_get(10)?;
        Ok(Row {
            name: r.try_get(0)?,
            node: if kind == "citus" {
                format!("{group}/{id}")
            } else {
                id.to_string()
            },
            host: r.try_get(3)?,
            port: r.try_get(4)?,
            tli: r.try_get(5)?,
            lsn: r.try_get(6)?,
            current: r.try_get(7)?,
            assigned: r.try_get(8)?,
            health: r.try_get(9)?,
        })
    };
    let rows: Vec<Row> = rows
        .iter()
        .map(decode)
        .collect::<Result<_, _>>()
        .code(exit::MONITOR)?;
    print!("{}", render(&rows));
    Ok(())
}

/// `--local`: from the configuration, the state file and Postgres itself.
async fn local(target: &super::Resolved, g: Globals) -> CmdResult {
    let (Some(Config::Keeper(cfg)), Some(paths)) = (&target.local, &target.paths) else {
        return Err(Failure::usage(
            "--local needs the --pgdata of a Postgres node",
        ));
    };
    let state = crate::cli::local_node::require_state(paths, exit::BAD_STATE)?;
    let running = PostmasterPid::read(&paths.pgdata).is_some_and(|p| p.ready());
    let (mut tli, mut lsn) = (0i32, "0/0".to_string());
    let mut from_pg = false;
    if running {
        if let Ok(l) = crate::pg::local::Local::connect(&paths.pgdata).await {
            if let Ok(m) = l.metadata().await {
                (tli, lsn, from_pg) = (m.tli, m.lsn.to_string(), true);
            }
        }
    }
    if !from_pg {
        if let Ok(bin) = crate::pg::bin::PgBin::from_pg_ctl(&cfg.pg.pg_ctl) {
            if let Ok(ctl) = controldata(&bin, &paths.pgdata) {
                (tli, lsn) = (ctl.timeline as i32, ctl.checkpoint_lsn.clone());
            }
        }
    }
    let current = state.current_role.as_str();
    if g.json {
        let v = serde_json::json!({
            "node_id": state.node_id,
            "group_id": state.group_id,
            "nodename": cfg.name,
            "nodehost": cfg.hostname,
            "nodeport": cfg.pg.port,
            "current_group_state": current,
            "assigned_group_state": state.assigned_role.as_str(),
            "timeline": tli,
            "Minimum Recovery Ending LSN": lsn,
            "reachable": if running { "yes" } else { "no" },
            "conntype": state.current_role.connection_type(),
        });
        println!("{}", crate::cli::json::pretty(&v));
        return Ok(());
    }
    let row = Row {
        name: cfg.name.clone(),
        node: state.node_id.to_string(),
        host: cfg.hostname.clone(),
        port: i32::from(cfg.pg.port),
        tli,
        lsn,
        current: current.to_string(),
        assigned: state.assigned_role.as_str().to_string(),
        health: -1,
    };
    print!("{}", render(&[row]));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_matches_upstream_layout() {
        let row = |name: &str, id: &str, port: i32, cur: &str, health: i32| Row {
            name: name.into(),
            node: id.into(),
            host: "127.0.0.1".into(),
            port,
            tli: 15,
            lsn: "0/50618C8".into(),
            current: cur.into(),
            assigned: cur.into(),
            health,
        };
        let out = render(&[
            row("nodeA", "1", 6010, "primary", 1),
            row("nodeB", "2", 6011, "secondary", 1),
        ]);
        // Verbatim from upstream 2.0.
        let expected = " Name |  Node |      Host:Port |       TLI: LSN |   Connection |      Reported State |      Assigned State\n\
------+-------+----------------+----------------+--------------+---------------------+--------------------\n\
nodeA |     1 | 127.0.0.1:6010 |  15: 0/50618C8 |   read-write |             primary |             primary\n\
nodeB |     2 | 127.0.0.1:6011 |  15: 0/50618C8 |    read-only |           secondary |           secondary\n\n";
        assert_eq!(out, expected);
        let local = render(&[row("nodeA", "1", 6010, "primary", -1)]);
        assert!(local.contains("| read-write ? |"), "{local}");
        let bad = render(&[row("nodeA", "1", 6010, "secondary", 0)]);
        assert!(bad.contains("|  read-only ! |"), "{bad}");
    }
}
