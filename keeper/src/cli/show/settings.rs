//! `pg_autoctl show settings` and `pg_autoctl get formation settings`: the replication settings of a formation
//! (`number_sync_standbys`, each primary's `synchronous_standby_names`,
//! every node's candidate priority and replication quorum), from
//! `formation_settings()`.

use super::Target;
use crate::cli::api::{self, col};
use crate::cli::exit::CmdResult;
use crate::cli::Globals;

#[derive(Debug, Clone, clap::Args)]
pub struct SettingsArgs {
    #[command(flatten)]
    pub target: Target,
    /// pg_auto_failover formation
    #[arg(long)]
    pub formation: Option<String>,
}

/// One setting: context, name, setting, value.
pub type Setting = (String, String, String, String);

/// `Context | Name | Setting | Value`: Context 9 wide, the others as wide
/// as their longest cell (Name at least 4, Setting 7, Value 5), Value
/// left-aligned.
pub fn render(rows: &[Setting]) -> String {
    let width = |f: fn(&Setting) -> &String, min: usize| {
        rows.iter()
            .map(|r| f(r).chars().count())
            .max()
            .unwrap_or(0)
            .max(min)
    };
    let nw = width(|r| &r.1, 4);
    let sw = width(|r| &r.2, 7);
    let vw = width(|r| &r.3, 5);
    let mut out = format!(
        "{:>9} | {:>nw$} | {:>sw$} | {:<vw$}\n{}-+-{}-+-{}-+-{}\n",
        "Context",
        "Name",
        "Setting",
        "Value",
        "-".repeat(9),
        "-".repeat(nw),
        "-".repeat(sw),
        "-".repeat(vw)
    );
    for (c, n, s, v) in rows {
        out.push_str(&format!("{c:>9} | {n:>nw$} | {s:>sw$} | {v:<vw$}\n"));
    }
    out.push('\n');
    out
}

pub async fn run(a: SettingsArgs, g: Globals) -> CmdResult {
    let target = a.target.resolve()?;
    let formation = target.formation(&a.formation);
    let monitor = target.connect().await?;
    let c = monitor.client();
    const CTX: &str = "formation_settings";
    if g.json {
        // The monitor's own JSON (jsonb key order), rows in the order the
        // function returns them.
        let row = c
            .query_one(
                "WITH s AS (SELECT * FROM pgautofailover.formation_settings($1)
                             WITH ORDINALITY AS s(context, group_id, node_id, nodename, setting, value, n)),
                      j AS (SELECT context, n, jsonb_build_object('context', context, 'group_id', group_id,
                                   'node_id', node_id, 'nodename', nodename, 'setting', setting, 'value', value) AS o
                              FROM s)
                 SELECT jsonb_pretty(jsonb_build_object(
                     'formation', coalesce((SELECT jsonb_agg(o ORDER BY n) FROM j WHERE context = 'formation'), '[]'),
                     'primary', coalesce((SELECT jsonb_agg(o ORDER BY n) FROM j WHERE context = 'primary'), '[]'),
                     'nodes', coalesce((SELECT jsonb_agg(o ORDER BY n) FROM j WHERE context = 'node'), '[]')))",
                &[&formation],
            )
            .await
            .map_err(api::sql(CTX))?;
        println!("{}", col::<String>(&row, 0, CTX)?);
        return Ok(());
    }
    let rows = c
        .query(
            "SELECT context, coalesce(nodename, ''), setting, coalesce(value, '')
               FROM pgautofailover.formation_settings($1)
           ORDER BY CASE context WHEN 'formation' THEN 0 WHEN 'primary' THEN 1 ELSE 2 END,
                    setting, group_id NULLS FIRST, node_id NULLS FIRST",
            &[&formation],
        )
        .await
        .map_err(api::sql(CTX))?;
    let rows: Vec<Setting> = rows
        .iter()
        .map(|r| {
            Ok((
                col(r, 0, CTX)?,
                col(r, 1, CTX)?,
                col(r, 2, CTX)?,
                col(r, 3, CTX)?,
            ))
        })
        .collect::<Result<_, api::ApiError>>()?;
    print!("{}", render(&rows));
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn table_matches_upstream_layout() {
        let row = |c: &str, n: &str, s: &str, v: &str| {
            (c.to_string(), n.to_string(), s.to_string(), v.to_string())
        };
        let rows = vec![
            row("formation", "default", "number_sync_standbys", "1"),
            row(
                "primary",
                "nodeA",
                "synchronous_standby_names",
                "'ANY 1 (pgautofailover_standby_2, pgautofailover_standby_3)'",
            ),
            row("node", "nodeA", "candidate priority", "50"),
            row("node", "nodeA", "replication quorum", "true"),
        ];
        // Verbatim from upstream 2.0.
        let expected = concat!(
            "  Context |    Name |                   Setting | Value                                                       \n",
            "----------+---------+---------------------------+-------------------------------------------------------------\n",
            "formation | default |      number_sync_standbys | 1                                                           \n",
            "  primary |   nodeA | synchronous_standby_names | 'ANY 1 (pgautofailover_standby_2, pgautofailover_standby_3)'\n",
            "     node |   nodeA |        candidate priority | 50                                                          \n",
            "     node |   nodeA |        replication quorum | true                                                        \n",
            "\n"
        );
        assert_eq!(super::render(&rows), expected);
    }
}
