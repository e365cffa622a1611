//! Clusters made by Debian's `pg_createcluster`: the data directory is
//! `/var/lib/postgresql/<version>/<name>` but the configuration lives in
//! `/etc/postgresql/<version>/<name>`. pg_autoctl runs Postgres with the
//! configuration in PGDATA, so `create` moves it there:
//!
//! * `postgresql.conf` is copied into PGDATA with the settings that point
//!   back at `/etc` (`data_directory`, `hba_file`, `ident_file`,
//!   `include_dir`, `stats_temp_directory`) and those pg_autoctl manages
//!   (`port`, `listen_addresses`, SSL, `cluster_name`) commented out; the
//!   other settings stay (memory, sockets, locale, logging, ...);
//! * `pg_hba.conf` and `pg_ident.conf` move to PGDATA unchanged (with
//!   `--skip-pg-hba` nothing else ever edits them);
//! * the files in `/etc` become symbolic links to PGDATA's, so that
//!   Debian's tools (`pg_lsclusters`, `pg_conftool`) still find them;
//! * `start.conf` says `disabled`: `pg_autoctl run`, not the
//!   `postgresql@<version>-<name>` unit, starts this Postgres (the original
//!   is kept as `start.conf.orig`).

use std::path::{Path, PathBuf};

/// Where Debian keeps the configuration of its clusters.
const ETC: &str = "/etc/postgresql";
/// Settings commented out of the adopted `postgresql.conf`: those that
/// point at the configuration directory in `/etc`, and those pg_autoctl
/// sets in its own file (`pg::files`), which is included at the top and
/// would lose to them (Debian sets `port`, `ssl` and its snakeoil
/// certificate, `cluster_name`).
const COMMENTED_OUT: [&str; 14] = [
    "data_directory",
    "hba_file",
    "ident_file",
    "include_dir",
    "stats_temp_directory",
    "port",
    "listen_addresses",
    "ssl",
    "ssl_cert_file",
    "ssl_key_file",
    "ssl_ca_file",
    "ssl_crl_file",
    "ssl_ciphers",
    "cluster_name",
];
const EDITED: &str = "# edited by pg_auto_failover";

#[derive(Debug, thiserror::Error)]
pub enum DebianError {
    #[error(
        "{pgdata} has no postgresql.conf, and {etc} does not hold a Debian cluster's \
         configuration (postgresql.conf, pg_hba.conf and pg_ident.conf): give the data \
         directory of a cluster made by pg_createcluster, or put its configuration in PGDATA"
    )]
    NotDebian { pgdata: String, etc: String },
    #[error("cannot move the Debian configuration from {etc} to {pgdata}: {source}")]
    Io {
        etc: String,
        pgdata: String,
        source: std::io::Error,
    },
}

/// The configuration directory in `/etc` of the Debian cluster whose data
/// directory is `pgdata`, for PostgreSQL `major`, when there is one.
pub fn config_dir(pgdata: &Path, major: u32) -> Option<PathBuf> {
    let real = std::fs::canonicalize(pgdata).ok()?;
    let cluster = real.file_name()?.to_str()?;
    let version = real.parent()?.file_name()?.to_str()?;
    if version != major.to_string() {
        return None;
    }
    let dir = Path::new(ETC).join(version).join(cluster);
    ["postgresql.conf", "pg_hba.conf", "pg_ident.conf"]
        .iter()
        .all(|f| dir.join(f).exists())
        .then_some(dir)
}

/// `postgresql.conf` of `/etc` as it reads from PGDATA.
pub fn rewrite_conf(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 256);
    for line in text.lines() {
        let key = line.split('=').next().unwrap_or("").trim();
        if !line.starts_with('#') && COMMENTED_OUT.contains(&key) {
            out.push_str(EDITED);
            out.push('\n');
            out.push_str("# ");
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}

/// Bring the configuration of a Debian cluster into `pgdata` (nothing to do
/// when PGDATA has its own `postgresql.conf`). Returns the `/etc` directory
/// it came from.
pub fn adopt(pgdata: &Path, major: u32) -> Result<Option<PathBuf>, DebianError> {
    if pgdata.join("postgresql.conf").exists() {
        return Ok(None);
    }
    let Some(etc) = config_dir(pgdata, major) else {
        return Err(DebianError::NotDebian {
            pgdata: pgdata.display().to_string(),
            etc: Path::new(ETC).join(major.to_string()).display().to_string(),
        });
    };
    let io = |source| DebianError::Io {
        etc: etc.display().to_string(),
        pgdata: pgdata.display().to_string(),
        source,
    };
    tracing::info!(
        "Found a Debian cluster in {} with its configuration in {}: moving the configuration into PGDATA",
        pgdata.display(),
        etc.display()
    );
    let conf = std::fs::read_to_string(etc.join("postgresql.conf")).map_err(io)?;
    crate::config::write_atomically(
        &pgdata.join("postgresql.conf"),
        rewrite_conf(&conf).as_bytes(),
        0o600,
    )
    .map_err(io)?;
    for f in ["pg_hba.conf", "pg_ident.conf"] {
        std::fs::copy(etc.join(f), pgdata.join(f)).map_err(io)?;
    }
    for f in ["postgresql.conf", "pg_hba.conf", "pg_ident.conf"] {
        let link = etc.join(f);
        std::fs::remove_file(&link).map_err(io)?;
        std::os::unix::fs::symlink(pgdata.join(f), &link).map_err(io)?;
    }
    let start = etc.join("start.conf");
    if start.exists() {
        std::fs::rename(&start, etc.join("start.conf.orig")).map_err(io)?;
    }
    std::fs::write(
        &start,
        format!("{EDITED}: pg_autoctl run starts this cluster\ndisabled\n"),
    )
    .map_err(io)?;
    Ok(Some(etc))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_pointing_at_etc_are_commented_out() {
        let conf =
            "data_directory = '/var/lib/postgresql/15/main'\t# use data in another directory\n\
                    hba_file = '/etc/postgresql/15/main/pg_hba.conf'\n\
                    #ident_file = 'x'\n\
                    shared_buffers = 128MB\n\
                    include_dir = 'conf.d'\n";
        let out = rewrite_conf(conf);
        assert!(rewrite_conf("port = 5433\n").starts_with("# edited by pg_auto_failover\n# port"));
        assert_eq!(
            out,
            "# edited by pg_auto_failover\n# data_directory = '/var/lib/postgresql/15/main'\t# use data in another directory\n\
             # edited by pg_auto_failover\n# hba_file = '/etc/postgresql/15/main/pg_hba.conf'\n\
             #ident_file = 'x'\n\
             shared_buffers = 128MB\n\
             # edited by pg_auto_failover\n# include_dir = 'conf.d'\n"
        );
    }

    #[test]
    fn only_debian_layouts_match() {
        assert!(config_dir(Path::new("/nonexistent/15/main"), 15).is_none());
        // A data directory laid out as Debian's, but no /etc configuration.
        let dir = std::env::temp_dir().join(format!("pgaf-debian-{}", std::process::id()));
        let data = dir.join(format!("15/pgaf-none-{}", std::process::id()));
        std::fs::create_dir_all(&data).unwrap();
        assert!(config_dir(&data, 15).is_none());
        assert!(config_dir(&data, 16).is_none());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
