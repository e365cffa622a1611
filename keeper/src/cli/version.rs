//! `pg_autoctl version` and `pg_autoctl --version`:
//! the pg_autoctl version this one is compatible with, the monitor
//! extension version it installs, and the Postgres it finds on this host.
//!
//! Upstream reports the Postgres it was compiled against; this pg_autoctl is
//! not compiled against Postgres, so the third line and the `pg_*` JSON keys
//! describe the Postgres programs it would use (`PG_CONFIG`, `PATH`, ...).

use super::exit::CmdResult;
use super::Globals;

/// The Postgres major versions this keeper is tested with.
pub const COMPATIBLE: &str = "15";

/// What `postgres --version` of the programs we would use says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FoundPostgres {
    /// `15.14 (Debian 15.14-0+deb12u1)`.
    pub version: String,
    pub num: u32,
    pub dir: String,
}

fn found() -> Option<FoundPostgres> {
    let bin = crate::pg::bin::PgBin::discover(None).ok()?;
    let out = std::process::Command::new(bin.path("postgres"))
        .arg("--version")
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let version = text.trim().split_once("(PostgreSQL) ")?.1.to_string();
    Some(FoundPostgres {
        num: crate::pg::bin::parse_version(&text)?,
        version,
        dir: bin.dir.display().to_string(),
    })
}

/// The four lines, or the JSON object.
pub fn render(pg: Option<&FoundPostgres>, json: bool) -> String {
    if json {
        let v = match pg {
            Some(p) => serde_json::json!({
                "pg_autoctl": super::VERSION,
                "pgautofailover": super::EXTENSION_VERSION,
                "pg_major": (p.num / 10000).to_string(),
                "pg_version": p.version,
                "pg_version_str": format!("PostgreSQL {}", p.version),
                "pg_version_num": p.num,
            }),
            None => serde_json::json!({
                "pg_autoctl": super::VERSION,
                "pgautofailover": super::EXTENSION_VERSION,
            }),
        };
        return super::json::pretty(&v);
    }
    let using = match pg {
        Some(p) => format!("using PostgreSQL {} from {}", p.version, p.dir),
        None => "no PostgreSQL programs found (install postgresql-15 or set PG_CONFIG)".into(),
    };
    format!(
        "pg_autoctl version {}\npg_autoctl extension version {}\n{using}\ncompatible with Postgres {COMPATIBLE}",
        super::VERSION,
        super::EXTENSION_VERSION
    )
}

pub async fn run(g: Globals) -> CmdResult {
    println!("{}", render(found().as_ref(), g.json));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_lines_are_upstream_s() {
        let p = FoundPostgres {
            version: "15.14 (Debian 15.14-0+deb12u1)".into(),
            num: 150014,
            dir: "/usr/lib/postgresql/15/bin".into(),
        };
        let text = render(Some(&p), false);
        assert!(text.starts_with("pg_autoctl version 2.0\npg_autoctl extension version 2.0\n"));
        let v: serde_json::Value = serde_json::from_str(&render(Some(&p), true)).unwrap();
        assert_eq!(v["pg_major"], "15");
        assert_eq!(v["pg_version_num"], 150014);
    }
}
