//! Finding the Postgres binaries: `--pgctl`, then `PG_CONFIG`, then a single
//! `pg_ctl` in `PATH`, then Debian's PostgreSQL 15.

use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum BinError {
    #[error("pg_ctl not found at \"{0}\": install PostgreSQL or give its path with --pgctl")]
    NotFound(PathBuf),
    #[error(
        "cannot find pg_ctl: give its path with --pgctl, or set PG_CONFIG, \
         or install PostgreSQL 15 (apt-get install postgresql-15)"
    )]
    Nowhere,
    #[error("cannot run {path}: {source}")]
    Run {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// The directory holding `pg_ctl`, `postgres`, `initdb`, ...
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PgBin {
    pub dir: PathBuf,
}

const DEBIAN_15: &str = "/usr/lib/postgresql/15/bin";

fn executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p)
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

impl PgBin {
    /// From an explicit `pg_ctl` path.
    pub fn from_pg_ctl(pg_ctl: &Path) -> Result<PgBin, BinError> {
        if !executable(pg_ctl) {
            return Err(BinError::NotFound(pg_ctl.to_path_buf()));
        }
        // A symbolic link (/usr/local/bin/pg_ctl, /usr/bin/pg_ctl) points to
        // the directory that holds the other programs.
        let real = std::fs::canonicalize(pg_ctl).unwrap_or_else(|_| pg_ctl.to_path_buf());
        let dir = real
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("."));
        Ok(PgBin { dir })
    }

    /// Resolve the binaries as upstream does.
    pub fn discover(explicit: Option<&Path>) -> Result<PgBin, BinError> {
        if let Some(p) = explicit.filter(|p| !p.as_os_str().is_empty()) {
            return PgBin::from_pg_ctl(p);
        }
        if let Some(pg_config) = std::env::var_os("PG_CONFIG") {
            let out = std::process::Command::new(&pg_config)
                .arg("--bindir")
                .output()
                .map_err(|source| BinError::Run {
                    path: pg_config.clone().into(),
                    source,
                })?;
            let dir = String::from_utf8_lossy(&out.stdout).trim().to_string();
            return PgBin::from_pg_ctl(&Path::new(&dir).join("pg_ctl"));
        }
        if let Some(path) = std::env::var_os("PATH") {
            let found: Vec<PathBuf> = std::env::split_paths(&path)
                .map(|d| d.join("pg_ctl"))
                .filter(|p| executable(p))
                .collect();
            if found.len() == 1 {
                return PgBin::from_pg_ctl(&found[0]);
            }
        }
        let debian = Path::new(DEBIAN_15).join("pg_ctl");
        if executable(&debian) {
            return PgBin::from_pg_ctl(&debian);
        }
        Err(BinError::Nowhere)
    }

    pub fn path(&self, program: &str) -> PathBuf {
        self.dir.join(program)
    }

    pub fn pg_ctl(&self) -> PathBuf {
        self.path("pg_ctl")
    }

    /// `PG_VERSION_NUM` of these binaries, from `pg_config --version` or
    /// `postgres --version` (e.g. 150018).
    pub fn version_num(&self) -> Result<u32, BinError> {
        let postgres = self.path("postgres");
        let out = std::process::Command::new(&postgres)
            .arg("--version")
            .output()
            .map_err(|source| BinError::Run {
                path: postgres.clone(),
                source,
            })?;
        let text = String::from_utf8_lossy(&out.stdout);
        Ok(parse_version(&text).unwrap_or(150000))
    }
}

/// `postgres (PostgreSQL) 15.18 (Debian ...)` -> 150018.
pub fn parse_version(text: &str) -> Option<u32> {
    let v = text
        .split_whitespace()
        .find(|w| w.chars().next().is_some_and(|c| c.is_ascii_digit()))?;
    let mut parts = v.split('.');
    let major: u32 = parts.next()?.parse().ok()?;
    let minor: u32 = parts
        .next()
        .and_then(|m| {
            m.trim_end_matches(|c: char| !c.is_ascii_digit())
                .parse()
                .ok()
        })
        .unwrap_or(0);
    Some(major * 10000 + minor)
}

#[cfg(test)]
mod tests {
    #[test]
    fn versions() {
        assert_eq!(
            super::parse_version("postgres (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)\n"),
            Some(150018)
        );
        assert_eq!(
            super::parse_version("postgres (PostgreSQL) 17.2\n"),
            Some(170002)
        );
        assert_eq!(super::parse_version("garbage"), None);
    }
}
