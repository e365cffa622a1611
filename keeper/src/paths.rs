//! Where `pg_autoctl` keeps its files: every per-node
//! file lives under a directory named after the absolute PGDATA path inside
//! an XDG base directory plus `pg_autoctl/`.

use std::path::{Path, PathBuf};

/// The files of one node (or monitor), keyed by its PGDATA.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodePaths {
    pub pgdata: PathBuf,
    pub config: PathBuf,
    pub state: PathBuf,
    pub init: PathBuf,
    pub pid: PathBuf,
    /// The other nodes, for a keeper without a monitor ([`crate::nodes_file`]).
    pub nodes: PathBuf,
    /// Whether the operator wants Postgres stopped (`pg_autoctl do pgctl
    /// off`): `stopped` or `running`.
    pub pg_status: PathBuf,
}

fn env_dir(var: &str, home_fallback: &str) -> PathBuf {
    match std::env::var_os(var) {
        Some(v) if !v.is_empty() => PathBuf::from(v),
        _ => {
            let home = std::env::var_os("HOME")
                .map(PathBuf::from)
                .unwrap_or_else(|| "/tmp".into());
            home.join(home_fallback)
        }
    }
}

/// `pgdata` made absolute against the current directory (it may not exist
/// yet, so this does not resolve symbolic links).
pub fn absolute(pgdata: &Path) -> PathBuf {
    if pgdata.is_absolute() {
        return pgdata.to_path_buf();
    }
    std::env::current_dir()
        .map(|d| d.join(pgdata))
        .unwrap_or_else(|_| pgdata.to_path_buf())
}

impl NodePaths {
    pub fn new(pgdata: &Path) -> NodePaths {
        let pgdata = absolute(pgdata);
        let relative = pgdata.strip_prefix("/").unwrap_or(&pgdata).to_path_buf();
        let config = env_dir("XDG_CONFIG_HOME", ".config")
            .join("pg_autoctl")
            .join(&relative);
        let data = env_dir("XDG_DATA_HOME", ".local/share")
            .join("pg_autoctl")
            .join(&relative);
        let runtime = match std::env::var_os("XDG_RUNTIME_DIR") {
            Some(v) if !v.is_empty() && Path::new(&v).is_dir() => PathBuf::from(v),
            _ => PathBuf::from("/tmp"),
        }
        .join("pg_autoctl")
        .join(&relative);
        NodePaths {
            config: config.join("pg_autoctl.cfg"),
            state: data.join("pg_autoctl.state"),
            init: data.join("pg_autoctl.init"),
            pid: runtime.join("pg_autoctl.pid"),
            nodes: data.join("nodes.json"),
            pg_status: runtime.join("pg_autoctl.pg"),
            pgdata,
        }
    }

    /// Create the directories that hold the files.
    pub fn create_dirs(&self) -> std::io::Result<()> {
        for f in [&self.config, &self.state, &self.pid] {
            if let Some(dir) = f.parent() {
                std::fs::create_dir_all(dir)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_follows_xdg_and_pgdata() {
        // The layout is a pure function of the environment and PGDATA.
        std::env::set_var("XDG_CONFIG_HOME", "/home/u/.config");
        std::env::set_var("XDG_DATA_HOME", "/home/u/.local/share");
        std::env::set_var("XDG_RUNTIME_DIR", "/nonexistent-runtime");
        let p = NodePaths::new(Path::new("/tmp/basic/node1"));
        assert_eq!(
            p.config,
            Path::new("/home/u/.config/pg_autoctl/tmp/basic/node1/pg_autoctl.cfg")
        );
        assert_eq!(
            p.state,
            Path::new("/home/u/.local/share/pg_autoctl/tmp/basic/node1/pg_autoctl.state")
        );
        assert_eq!(
            p.init,
            Path::new("/home/u/.local/share/pg_autoctl/tmp/basic/node1/pg_autoctl.init")
        );
        assert_eq!(
            p.pid,
            Path::new("/tmp/pg_autoctl/tmp/basic/node1/pg_autoctl.pid")
        );
    }
}
