//! `pg_autoctl show uri`: the monitor's connection
//! string and each formation's multi-host URI
//! (`target_session_attrs=read-write`), which libpq, psql and JDBC use to
//! reach the current primary.

use super::Target;
use crate::cli::exit::{self, CmdResult, Code, Failure};
use crate::cli::Globals;
use crate::config::{Config, Ssl};

#[derive(Debug, Clone, clap::Args)]
pub struct UriArgs {
    #[command(flatten)]
    pub target: Target,
    /// Show the URI of this formation only ("monitor" for the monitor's)
    #[arg(long)]
    pub formation: Option<String>,
}

fn local_ssl(local: &Option<Config>) -> Ssl {
    match local {
        Some(Config::Keeper(k)) => k.ssl.clone(),
        Some(Config::Monitor(m)) => m.ssl.clone(),
        None => Ssl {
            sslmode: "prefer".into(),
            ..Ssl::default()
        },
    }
}

pub async fn run(a: UriArgs, g: Globals) -> CmdResult {
    let target = a.target.resolve()?;
    if a.formation.as_deref() == Some("monitor") {
        if g.json {
            println!(
                "{}",
                crate::cli::json::pretty(&serde_json::json!({ "monitor": target.uri }))
            );
        } else {
            println!("{}", target.uri);
        }
        return Ok(());
    }
    let monitor = target.connect().await?;
    let c = monitor.client();
    let ssl = local_ssl(&target.local);
    let mode = if ssl.sslmode.is_empty() {
        "prefer".to_string()
    } else {
        ssl.sslmode.clone()
    };
    let formation_uri = |f: String| {
        let (mode, ca, crl) = (mode.clone(), ssl.ca_file.clone(), ssl.crl_file.clone());
        async move {
            let row = c
                .query_one(
                    "SELECT pgautofailover.formation_uri($1, 'default', $2, $3, $4)",
                    &[&f, &mode, &ca, &crl],
                )
                .await
                .map_err(|e| {
                    Failure::new(
                        exit::MONITOR,
                        anyhow::anyhow!("formation \"{f}\": {}", pgaf_pgconn::describe(&e)),
                    )
                })?;
            row.try_get::<_, Option<String>>(0)
                .ok()
                .flatten()
                .filter(|u| !u.is_empty())
                .ok_or_else(|| {
                    Failure::new(
                        exit::MONITOR,
                        anyhow::anyhow!("formation \"{f}\" has no node in group 0 yet"),
                    )
                })
        }
    };
    if let Some(f) = a.formation {
        let uri = formation_uri(f.clone()).await?;
        if g.json {
            println!(
                "{}",
                crate::cli::json::pretty(&serde_json::json!({ "monitor": target.uri, f: uri }))
            );
        } else {
            println!("{uri}");
        }
        return Ok(());
    }
    let formations = c
        .query(
            "SELECT formationid::text FROM pgautofailover.formation ORDER BY formationid",
            &[],
        )
        .await
        .code(exit::MONITOR)?;
    let mut rows = vec![(
        "monitor".to_string(),
        "monitor".to_string(),
        target.uri.clone(),
    )];
    for r in formations {
        let f: String = r.try_get(0).code(exit::MONITOR)?;
        // A formation without nodes has no URI yet: skip it, as upstream does.
        if let Ok(uri) = formation_uri(f.clone()).await {
            rows.push(("formation".into(), f, uri));
        }
    }
    if g.json {
        let v: Vec<serde_json::Value> = rows
            .iter()
            .map(|(t, n, u)| serde_json::json!({ "uri": u, "name": n, "type": t }))
            .collect();
        let mut out = Vec::new();
        let fmt = serde_json::ser::PrettyFormatter::with_indent(b"    ");
        let mut ser = serde_json::Serializer::with_formatter(&mut out, fmt);
        serde::Serialize::serialize(&v, &mut ser).code(exit::INTERNAL_ERROR)?;
        println!("{}", String::from_utf8_lossy(&out));
        return Ok(());
    }
    print!("{}", render(&rows));
    Ok(())
}

/// `Type | Name | Connection String`: Type 12 wide, Name at least 7, the
/// last column left as is.
pub fn render(rows: &[(String, String, String)]) -> String {
    let name_w = rows.iter().map(|r| r.1.len()).max().unwrap_or(0).max(7);
    let mut out = format!(
        "{:>12} | {:>name_w$} | {}\n",
        "Type", "Name", "Connection String"
    );
    out.push_str(&format!(
        "{}-+-{}-+-{}\n",
        "-".repeat(12),
        "-".repeat(name_w),
        "-".repeat(30)
    ));
    for (t, n, u) in rows {
        out.push_str(&format!("{t:>12} | {n:>name_w$} | {u}\n"));
    }
    out.push('\n');
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn table_matches_upstream_layout() {
        let rows = vec![
            ("monitor".to_string(), "monitor".to_string(), "postgres://autoctl_node@127.0.0.1:6000/pg_auto_failover?sslmode=prefer".to_string()),
            ("formation".to_string(), "default".to_string(), "postgres://127.0.0.1:6012,127.0.0.1:6011,127.0.0.1:6010/postgres?target_session_attrs=read-write&sslmode=prefer".to_string()),
        ];
        // Verbatim from upstream 2.0.
        assert_eq!(
            super::render(&rows),
            concat!(
                "        Type |    Name | Connection String\n",
                "-------------+---------+-------------------------------\n",
                "     monitor | monitor | postgres://autoctl_node@127.0.0.1:6000/pg_auto_failover?sslmode=prefer\n",
                "   formation | default | postgres://127.0.0.1:6012,127.0.0.1:6011,127.0.0.1:6010/postgres?target_session_attrs=read-write&sslmode=prefer\n",
                "\n"
            )
        );
    }
}
