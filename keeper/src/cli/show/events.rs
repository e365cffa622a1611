//! `pg_autoctl show events`: the monitor's last
//! events of a formation (or group), oldest first, as a table or as the
//! monitor's JSON.

use super::Target;
use crate::cli::api::{self, col};
use crate::cli::exit::{CmdResult, Failure};
use crate::cli::Globals;
use tokio_postgres::Client;

#[derive(Debug, Clone, clap::Args)]
pub struct EventsArgs {
    #[command(flatten)]
    pub target: Target,
    /// Formation to query, defaults to 'default'
    #[arg(long)]
    pub formation: Option<String>,
    /// Group to query formation, defaults to all
    #[arg(long)]
    pub group: Option<i32>,
    /// How many events to fetch, defaults to 10
    #[arg(long, default_value_t = 10, allow_negative_numbers = true)]
    pub count: i32,
    /// Display an auto-updating dashboard (pg_autoctl watch)
    #[arg(long)]
    pub watch: bool,
}

/// One event, as the table prints it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// As Postgres prints a timestamptz.
    pub time: String,
    pub group_id: i32,
    pub node_id: i64,
    pub reported: String,
    pub goal: String,
    pub description: String,
}

/// The text table: `Event Time | Node | Current State | Assigned State |
/// Comment`, fixed widths (30, 6, 19, 19), the comment as is.
pub fn render(events: &[Event]) -> String {
    let mut out = format!(
        "{:>30} | {:>6} | {:>19} | {:>19} | {}\n{}-+-{}-+-{}-+-{}-+-{}\n",
        "Event Time",
        "Node",
        "Current State",
        "Assigned State",
        "Comment",
        "-".repeat(30),
        "-".repeat(6),
        "-".repeat(19),
        "-".repeat(19),
        "-".repeat(10)
    );
    for e in events {
        out.push_str(&format!(
            "{:>30} | {:>6} | {:>19} | {:>19} | {}\n",
            e.time,
            format!("{}/{}", e.group_id, e.node_id),
            e.reported,
            e.goal,
            e.description
        ));
    }
    out.push('\n');
    out
}

/// The last `count` events of `formation` (and `group`), oldest first.
pub async fn fetch(
    c: &Client,
    formation: &str,
    group: Option<i32>,
    count: i32,
) -> Result<Vec<Event>, api::ApiError> {
    const CTX: &str = "last_events";
    let cols = "eventtime::text, groupid::int, nodeid::bigint, reportedstate::text, goalstate::text, coalesce(description, '')";
    let rows = match group {
        Some(g) => {
            c.query(
                &format!("SELECT {cols} FROM pgautofailover.last_events($1, $2, $3)"),
                &[&formation, &g, &count],
            )
            .await
        }
        None => {
            c.query(
                &format!("SELECT {cols} FROM pgautofailover.last_events($1, count => $2)"),
                &[&formation, &count],
            )
            .await
        }
    }
    .map_err(api::sql(CTX))?;
    rows.iter()
        .map(|r| {
            Ok(Event {
                time: col(r, 0, CTX)?,
                group_id: col(r, 1, CTX)?,
                node_id: col(r, 2, CTX)?,
                reported: col(r, 3, CTX)?,
                goal: col(r, 4, CTX)?,
                description: col(r, 5, CTX)?,
            })
        })
        .collect()
}

pub async fn run(a: EventsArgs, g: Globals) -> CmdResult {
    if a.count < 0 {
        return Err(Failure::usage(format!(
            "--count {}: expected 0 or more events",
            a.count
        )));
    }
    let target = a.target.resolve()?;
    let formation = target.formation(&a.formation);
    let monitor = target.connect().await?;
    let c = monitor.client();
    if g.json {
        // The monitor's own JSON (jsonb key order), as upstream prints it.
        let agg = "SELECT jsonb_pretty(coalesce(jsonb_agg(row_to_json(e) ORDER BY e.eventtime, e.eventid), '[]'::jsonb))";
        let row = match a.group {
            Some(grp) => {
                c.query_one(
                    &format!("{agg} FROM pgautofailover.last_events($1, $2, $3) e"),
                    &[&formation, &grp, &a.count],
                )
                .await
            }
            None => {
                c.query_one(
                    &format!("{agg} FROM pgautofailover.last_events($1, count => $2) e"),
                    &[&formation, &a.count],
                )
                .await
            }
        }
        .map_err(api::sql("last_events"))?;
        println!("{}", col::<String>(&row, 0, "last_events")?);
        return Ok(());
    }
    let events = fetch(c, &formation, a.group, a.count).await?;
    print!("{}", render(&events));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_matches_upstream_layout() {
        let e = Event {
            time: "2026-11-22 10:50:48.457816+00".into(),
            group_id: 0,
            node_id: 1,
            reported: "demoted".into(),
            goal: "demoted".into(),
            description: "New state is reported by node 1 \"nodeA\" (127.0.0.1:6010): \"demoted\""
                .into(),
        };
        // Verbatim from upstream 2.0.
        assert_eq!(
            render(&[e]),
            concat!(
                "                    Event Time |   Node |       Current State |      Assigned State | Comment\n",
                "-------------------------------+--------+---------------------+---------------------+-----------\n",
                " 2026-11-22 10:50:48.457816+00 |    0/1 |             demoted |             demoted | New state is reported by node 1 \"nodeA\" (127.0.0.1:6010): \"demoted\"\n",
                "\n"
            )
        );
    }
}
