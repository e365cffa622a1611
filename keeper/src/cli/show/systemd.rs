//! `pg_autoctl show systemd`: a systemd unit that
//! runs this node's service (keeper or monitor) as the owner of PGDATA.
//!
//! Beyond upstream's unit: the XDG directories of the environment the unit
//! is generated in are passed on (the configuration is found through
//! them), and `KillMode = mixed` lets `pg_autoctl` stop its Postgres itself
//! before systemd kills what is left.

use crate::cli::exit::{self, CmdResult, Failure};
use crate::cli::{Globals, PgdataArg};
use std::os::unix::fs::MetadataExt;
use std::path::Path;

#[derive(Debug, Clone, clap::Args)]
pub struct SystemdArgs {
    #[command(flatten)]
    pub pgdata: PgdataArg,
}

/// What the unit needs to know.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unit {
    pub pgdata: String,
    pub user: String,
    pub home: String,
    pub program: String,
    /// Extra `NAME=value` environment entries.
    pub env: Vec<(String, String)>,
}

/// A path as an `ExecStart=` word: quoted when it holds blanks.
fn exec_word(p: &str) -> String {
    if p.chars().any(char::is_whitespace) {
        format!("\"{}\"", p.replace('\\', "\\\\").replace('"', "\\\""))
    } else {
        p.to_string()
    }
}

/// An `Environment=` assignment, single-quoted.
fn env_line(name: &str, value: &str) -> String {
    format!(
        "Environment = '{name}={}'\n",
        value.replace('\\', "\\\\").replace('\'', "\\'")
    )
}

impl Unit {
    pub fn render(&self) -> String {
        let exe = exec_word(&self.program);
        let mut env = env_line("PGDATA", &self.pgdata);
        for (k, v) in &self.env {
            env.push_str(&env_line(k, v));
        }
        format!(
            "[Unit]\n\
             Description = pg_auto_failover\n\
             \n\
             [Service]\n\
             WorkingDirectory = {home}\n\
             {env}\
             User = {user}\n\
             ExecStart = {exe} run\n\
             Restart = always\n\
             StartLimitBurst = 0\n\
             ExecReload = {exe} reload\n\
             KillMode = mixed\n\
             \n\
             [Install]\n\
             WantedBy = multi-user.target\n",
            home = self.home,
            user = self.user,
        )
    }
}

pub async fn run(a: SystemdArgs, _g: Globals) -> CmdResult {
    let (paths, _) = a.pgdata.load_config()?;
    let pgdata = paths.pgdata;
    let meta = std::fs::metadata(&pgdata).map_err(|e| {
        Failure::new(
            exit::BAD_CONFIG,
            anyhow::anyhow!("cannot read {}: {e}", pgdata.display()),
        )
    })?;
    let owner = crate::privileges::account_by_uid(meta.uid()).ok_or_else(|| {
        Failure::new(
            exit::BAD_CONFIG,
            anyhow::anyhow!(
                "{} belongs to uid {}, which has no user name: the unit needs one for User=",
                pgdata.display(),
                meta.uid()
            ),
        )
    })?;
    let program = crate::cli::this_program()
        .map(std::path::Path::to_path_buf)
        .map_err(|e| {
            Failure::new(
                exit::INTERNAL_ERROR,
                anyhow::anyhow!("cannot find the path of this pg_autoctl: {e}"),
            )
        })?;
    let env = ["XDG_CONFIG_HOME", "XDG_DATA_HOME", "XDG_RUNTIME_DIR"]
        .iter()
        .filter_map(|k| {
            let v = std::env::var(k).ok().filter(|v| !v.is_empty())?;
            Some((k.to_string(), v))
        })
        .collect();
    let home = if Path::new(&owner.home).is_dir() {
        owner.home.clone()
    } else {
        pgdata.display().to_string()
    };
    let unit = Unit {
        pgdata: pgdata.display().to_string(),
        user: owner.name,
        home,
        program: program.display().to_string(),
        env,
    };
    tracing::info!(
        "HINT: to complete a systemd integration, run the following commands (as root):"
    );
    tracing::info!(
        "pg_autoctl -q show systemd --pgdata \"{}\" | tee /etc/systemd/system/pgautofailover.service",
        pgdata.display()
    );
    tracing::info!("systemctl daemon-reload");
    tracing::info!("systemctl enable pgautofailover");
    tracing::info!("systemctl start pgautofailover");
    print!("{}", unit.render());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unit_layout() {
        let u = Unit {
            pgdata: "/var/lib/pgaf/nodeA".into(),
            user: "postgres".into(),
            home: "/var/lib/postgresql".into(),
            program: "/usr/bin/pg_autoctl".into(),
            env: vec![("XDG_CONFIG_HOME".into(), "/etc/pgaf it's".into())],
        };
        assert_eq!(
            u.render(),
            "[Unit]\nDescription = pg_auto_failover\n\n[Service]\nWorkingDirectory = /var/lib/postgresql\n\
             Environment = 'PGDATA=/var/lib/pgaf/nodeA'\nEnvironment = 'XDG_CONFIG_HOME=/etc/pgaf it\\'s'\n\
             User = postgres\nExecStart = /usr/bin/pg_autoctl run\nRestart = always\nStartLimitBurst = 0\n\
             ExecReload = /usr/bin/pg_autoctl reload\nKillMode = mixed\n\n[Install]\nWantedBy = multi-user.target\n"
        );
        assert_eq!(
            exec_word("/opt/my bin/pg_autoctl"),
            "\"/opt/my bin/pg_autoctl\""
        );
    }
}
