//! `pg_autoctl.cfg`: the configuration of a keeper or a monitor node, with
//! upstream's sections and keys in upstream's order. Read into typed structs
//! once, written back atomically.

use crate::ini::Ini;
use std::path::{Path, PathBuf};

/// What `pg_autoctl.monitor` says when the node runs without a monitor
/// (`create postgres --disable-monitor`, `disable monitor`).
pub const MONITOR_DISABLED: &str = "PG_AUTOCTL_DISABLED";

/// `postgresql.hba_level` of `--pg-hba-lan` (upstream's name for it): rules
/// for the application database from the local network too. The other
/// levels are `minimal` and `skip`.
pub const HBA_LAN: &str = "app";

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read configuration file \"{path}\": {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot write configuration file \"{path}\": {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("configuration file \"{path}\": {source}")]
    Parse {
        path: PathBuf,
        source: crate::ini::ParseError,
    },
    #[error("configuration file \"{path}\": missing required key {key}")]
    Missing { path: PathBuf, key: &'static str },
    #[error("configuration file \"{path}\": invalid value \"{value}\" for {key}: {why}")]
    Invalid {
        path: PathBuf,
        key: String,
        value: String,
        why: String,
    },
}

/// Postgres connection and instance settings shared by both roles.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PgSetup {
    pub pgdata: PathBuf,
    pub pg_ctl: PathBuf,
    pub username: String,
    pub dbname: String,
    pub host: String,
    pub port: u16,
    pub listen_addresses: String,
    pub auth_method: String,
    pub hba_level: String,
}

impl PgSetup {
    /// `auth_method` and `hba_level` as `create` records them: `--auth` and
    /// `minimal`, or `trust` and `skip` with `--skip-pg-hba`.
    pub fn hba_choice(skip_hba: bool, auth: &str) -> (String, String) {
        if skip_hba {
            ("trust".into(), "skip".into())
        } else {
            (auth.to_string(), "minimal".into())
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Ssl {
    pub active: bool,
    pub sslmode: String,
    pub ca_file: String,
    pub crl_file: String,
    pub cert_file: String,
    pub key_file: String,
}

/// `[timeout]`, in seconds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Timeouts {
    pub network_partition_timeout: u32,
    pub prepare_promotion_catchup: u32,
    pub prepare_promotion_walreceiver: u32,
    pub postgresql_restart_failure_timeout: u32,
    pub postgresql_restart_failure_max_retries: u32,
    pub listen_notifications_timeout: u32,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            network_partition_timeout: 20,
            prepare_promotion_catchup: 30,
            prepare_promotion_walreceiver: 5,
            postgresql_restart_failure_timeout: 20,
            postgresql_restart_failure_max_retries: 3,
            listen_notifications_timeout: 60,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeeperConfig {
    pub monitor: String,
    pub formation: String,
    pub group: Option<i32>,
    pub name: String,
    pub hostname: String,
    pub nodekind: String,
    pub pg: PgSetup,
    pub ssl: Ssl,
    pub maximum_backup_rate: String,
    pub backup_directory: PathBuf,
    pub replication_password: String,
    pub timeouts: Timeouts,
    pub citus_role: String,
    pub citus_cluster_name: String,
    /// `[pg_autoctl] metrics_listen` (ours): where `/metrics` is served.
    pub metrics_listen: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MonitorConfig {
    pub hostname: String,
    pub pg: PgSetup,
    pub ssl: Ssl,
    /// `[pg_autoctl] metrics_listen` (ours): where `/metrics` is served.
    pub metrics_listen: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
#[allow(clippy::large_enum_variant)] // read once, never in bulk
pub enum Config {
    Keeper(KeeperConfig),
    Monitor(MonitorConfig),
}

impl Config {
    pub fn pg(&self) -> &PgSetup {
        match self {
            Config::Keeper(k) => &k.pg,
            Config::Monitor(m) => &m.pg,
        }
    }

    pub fn role(&self) -> &'static str {
        match self {
            Config::Keeper(_) => "keeper",
            Config::Monitor(_) => "monitor",
        }
    }

    pub fn to_ini(&self) -> Ini {
        let mut ini = Ini::default();
        let bool01 = |b: bool| if b { "1" } else { "0" }.to_string();
        match self {
            Config::Keeper(k) => {
                ini.set("pg_autoctl", "role", "keeper");
                ini.set("pg_autoctl", "monitor", &k.monitor);
                ini.set("pg_autoctl", "formation", &k.formation);
                if let Some(g) = k.group {
                    ini.set("pg_autoctl", "group", &g.to_string());
                }
                ini.set("pg_autoctl", "name", &k.name);
                ini.set("pg_autoctl", "hostname", &k.hostname);
                ini.set("pg_autoctl", "nodekind", &k.nodekind);
                ini.set("pg_autoctl", "metrics_listen", &k.metrics_listen);
                pg_to_ini(&mut ini, &k.pg, true);
                ini.set("ssl", "active", &bool01(k.ssl.active));
                ssl_to_ini(&mut ini, &k.ssl);
                ini.set("replication", "maximum_backup_rate", &k.maximum_backup_rate);
                ini.set(
                    "replication",
                    "backup_directory",
                    &k.backup_directory.display().to_string(),
                );
                ini.set("replication", "password", &k.replication_password);
                let t = &k.timeouts;
                for (key, v) in [
                    ("network_partition_timeout", t.network_partition_timeout),
                    ("prepare_promotion_catchup", t.prepare_promotion_catchup),
                    (
                        "prepare_promotion_walreceiver",
                        t.prepare_promotion_walreceiver,
                    ),
                    (
                        "postgresql_restart_failure_timeout",
                        t.postgresql_restart_failure_timeout,
                    ),
                    (
                        "postgresql_restart_failure_max_retries",
                        t.postgresql_restart_failure_max_retries,
                    ),
                    (
                        "listen_notifications_timeout",
                        t.listen_notifications_timeout,
                    ),
                ] {
                    ini.set("timeout", key, &v.to_string());
                }
                ini.set("citus", "role", &k.citus_role);
                ini.set("citus", "cluster_name", &k.citus_cluster_name);
            }
            Config::Monitor(m) => {
                ini.set("pg_autoctl", "role", "monitor");
                ini.set("pg_autoctl", "hostname", &m.hostname);
                ini.set("pg_autoctl", "metrics_listen", &m.metrics_listen);
                pg_to_ini(&mut ini, &m.pg, false);
                ini.set("ssl", "sslmode", &m.ssl.sslmode);
                ini.set("ssl", "active", &bool01(m.ssl.active));
                for (key, v) in [
                    ("ca_file", &m.ssl.ca_file),
                    ("crl_file", &m.ssl.crl_file),
                    ("cert_file", &m.ssl.cert_file),
                    ("key_file", &m.ssl.key_file),
                ] {
                    ini.set("ssl", key, v);
                }
            }
        }
        ini
    }

    pub fn from_ini(path: &Path, ini: &Ini) -> Result<Config, ConfigError> {
        let req = |section: &str, key: &'static str| {
            ini.get(section, key)
                .map(str::to_string)
                .ok_or(ConfigError::Missing {
                    path: path.to_path_buf(),
                    key,
                })
        };
        let opt = |section: &str, key: &str| ini.get(section, key).unwrap_or("").to_string();
        let num = |section: &str, key: &str, default: u32| -> Result<u32, ConfigError> {
            match ini.get(section, key) {
                None | Some("") => Ok(default),
                Some(v) => v.parse().map_err(|_| ConfigError::Invalid {
                    path: path.to_path_buf(),
                    key: format!("{section}.{key}"),
                    value: v.to_string(),
                    why: "expected a non-negative integer".into(),
                }),
            }
        };
        let port: u16 = {
            let v = req("postgresql", "port")?;
            v.parse().map_err(|_| ConfigError::Invalid {
                path: path.to_path_buf(),
                key: "postgresql.port".into(),
                value: v.clone(),
                why: "expected a port number".into(),
            })?
        };
        let pg = PgSetup {
            pgdata: PathBuf::from(req("postgresql", "pgdata")?),
            pg_ctl: PathBuf::from(opt("postgresql", "pg_ctl")),
            username: opt("postgresql", "username"),
            dbname: match opt("postgresql", "dbname") {
                d if d.is_empty() => "postgres".into(),
                d => d,
            },
            host: opt("postgresql", "host"),
            port,
            listen_addresses: match opt("postgresql", "listen_addresses") {
                l if l.is_empty() => "*".into(),
                l => l,
            },
            auth_method: opt("postgresql", "auth_method"),
            hba_level: match opt("postgresql", "hba_level") {
                l if l.is_empty() => "minimal".into(),
                l => l,
            },
        };
        let ssl = Ssl {
            active: opt("ssl", "active") == "1",
            sslmode: match opt("ssl", "sslmode") {
                m if m.is_empty() => "prefer".into(),
                m => m,
            },
            ca_file: opt("ssl", "ca_file"),
            crl_file: opt("ssl", "crl_file"),
            cert_file: opt("ssl", "cert_file"),
            key_file: opt("ssl", "key_file"),
        };
        let role = req("pg_autoctl", "role")?;
        match role.as_str() {
            "monitor" => Ok(Config::Monitor(MonitorConfig {
                hostname: ini
                    .get("pg_autoctl", "hostname")
                    .or(ini.get("pg_autoctl", "nodename"))
                    .unwrap_or_default()
                    .to_string(),
                pg,
                ssl,
                metrics_listen: opt("pg_autoctl", "metrics_listen"),
            })),
            "keeper" => {
                let hostname = match ini.get("pg_autoctl", "hostname") {
                    Some(h) => h.to_string(),
                    None => match ini.get("pg_autoctl", "nodename") {
                        Some(h) => h.to_string(),
                        None => {
                            return Err(ConfigError::Missing {
                                path: path.to_path_buf(),
                                key: "pg_autoctl.hostname",
                            })
                        }
                    },
                };
                let group = match ini.get("pg_autoctl", "group") {
                    None | Some("") => None,
                    Some(g) => Some(g.parse().map_err(|_| ConfigError::Invalid {
                        path: path.to_path_buf(),
                        key: "pg_autoctl.group".into(),
                        value: g.to_string(),
                        why: "expected an integer".into(),
                    })?),
                };
                let defaults = Timeouts::default();
                Ok(Config::Keeper(KeeperConfig {
                    monitor: opt("pg_autoctl", "monitor"),
                    formation: match opt("pg_autoctl", "formation") {
                        f if f.is_empty() => "default".into(),
                        f => f,
                    },
                    group,
                    name: opt("pg_autoctl", "name"),
                    hostname,
                    nodekind: match opt("pg_autoctl", "nodekind") {
                        k if k.is_empty() => "standalone".into(),
                        k => k,
                    },
                    pg,
                    ssl,
                    maximum_backup_rate: match opt("replication", "maximum_backup_rate") {
                        r if r.is_empty() => "100M".into(),
                        r => r,
                    },
                    backup_directory: PathBuf::from(opt("replication", "backup_directory")),
                    replication_password: opt("replication", "password"),
                    timeouts: Timeouts {
                        network_partition_timeout: num(
                            "timeout",
                            "network_partition_timeout",
                            defaults.network_partition_timeout,
                        )?,
                        prepare_promotion_catchup: num(
                            "timeout",
                            "prepare_promotion_catchup",
                            defaults.prepare_promotion_catchup,
                        )?,
                        prepare_promotion_walreceiver: num(
                            "timeout",
                            "prepare_promotion_walreceiver",
                            defaults.prepare_promotion_walreceiver,
                        )?,
                        postgresql_restart_failure_timeout: num(
                            "timeout",
                            "postgresql_restart_failure_timeout",
                            defaults.postgresql_restart_failure_timeout,
                        )?,
                        postgresql_restart_failure_max_retries: num(
                            "timeout",
                            "postgresql_restart_failure_max_retries",
                            defaults.postgresql_restart_failure_max_retries,
                        )?,
                        listen_notifications_timeout: num(
                            "timeout",
                            "listen_notifications_timeout",
                            defaults.listen_notifications_timeout,
                        )?,
                    },
                    citus_role: match opt("citus", "role") {
                        r if r.is_empty() => "primary".into(),
                        r => r,
                    },
                    citus_cluster_name: opt("citus", "cluster_name"),
                    metrics_listen: opt("pg_autoctl", "metrics_listen"),
                }))
            }
            other => Err(ConfigError::Invalid {
                path: path.to_path_buf(),
                key: "pg_autoctl.role".into(),
                value: other.to_string(),
                why: "expected keeper or monitor".into(),
            }),
        }
    }

    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let ini = Ini::parse(&text).map_err(|source| ConfigError::Parse {
            path: path.to_path_buf(),
            source,
        })?;
        Config::from_ini(path, &ini)
    }

    pub fn save(&self, path: &Path) -> Result<(), ConfigError> {
        write_atomically(path, self.to_ini().render().as_bytes(), 0o600).map_err(|source| {
            ConfigError::Write {
                path: path.to_path_buf(),
                source,
            }
        })
    }
}

fn pg_to_ini(ini: &mut Ini, pg: &PgSetup, keeper: bool) {
    ini.set("postgresql", "pgdata", &pg.pgdata.display().to_string());
    ini.set("postgresql", "pg_ctl", &pg.pg_ctl.display().to_string());
    ini.set("postgresql", "username", &pg.username);
    ini.set("postgresql", "dbname", &pg.dbname);
    ini.set("postgresql", "host", &pg.host);
    ini.set("postgresql", "port", &pg.port.to_string());
    if keeper {
        ini.set("postgresql", "proxyport", "0");
    }
    ini.set("postgresql", "listen_addresses", &pg.listen_addresses);
    ini.set("postgresql", "auth_method", &pg.auth_method);
    if keeper {
        ini.set("postgresql", "hba_level", &pg.hba_level);
    }
}

fn ssl_to_ini(ini: &mut Ini, ssl: &Ssl) {
    ini.set("ssl", "sslmode", &ssl.sslmode);
    ini.set("ssl", "ca_file", &ssl.ca_file);
    ini.set("ssl", "crl_file", &ssl.crl_file);
    ini.set("ssl", "cert_file", &ssl.cert_file);
    ini.set("ssl", "key_file", &ssl.key_file);
}

/// `.<name of path><suffix>`, next to `path`: a temporary or lock file of
/// its own.
pub fn hidden_sibling(path: &Path, suffix: &str) -> std::path::PathBuf {
    let name = path
        .file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!(".{name}{suffix}"))
}

/// An exclusive `flock` on `path`'s lock file (`.<name>.lock`, created
/// with `mode`): waited for with `wait`, else `None` when another process
/// holds it. The lock lasts as long as the file returned stays open.
pub fn lock_file(path: &Path, mode: u32, wait: bool) -> std::io::Result<Option<std::fs::File>> {
    use std::os::unix::fs::OpenOptionsExt;
    use std::os::unix::io::AsRawFd;
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(mode)
        .open(hidden_sibling(path, ".lock"))?;
    let how = if wait {
        libc::LOCK_EX
    } else {
        libc::LOCK_EX | libc::LOCK_NB
    };
    loop {
        // SAFETY: flock on a descriptor this function owns.
        if unsafe { libc::flock(file.as_raw_fd(), how) } == 0 {
            return Ok(Some(file));
        }
        let e = std::io::Error::last_os_error();
        match e.kind() {
            std::io::ErrorKind::Interrupted => continue,
            std::io::ErrorKind::WouldBlock => return Ok(None),
            _ => return Err(e),
        }
    }
}

/// Write `bytes` to `path` through a temporary file, fsync and rename.
pub fn write_atomically(path: &Path, bytes: &[u8], mode: u32) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    // A temporary name of our own: two processes (the service and a
    // `pg_autoctl do fsm assign`) may write the same file at once, and
    // each rename must find its own file.
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let tmp = hidden_sibling(path, &format!(".{}.{n}.new", std::process::id()));
    let _ = std::fs::remove_file(&tmp);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    drop(f);
    std::fs::rename(&tmp, path).inspect_err(|_| {
        let _ = std::fs::remove_file(&tmp);
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keeper() -> KeeperConfig {
        KeeperConfig {
            monitor: "postgres://autoctl_node@mon:5432/pg_auto_failover?sslmode=prefer".into(),
            formation: "default".into(),
            group: Some(0),
            name: "node_1".into(),
            hostname: "10.0.0.1".into(),
            nodekind: "standalone".into(),
            pg: PgSetup {
                pgdata: "/var/lib/pg/node1".into(),
                pg_ctl: "/usr/lib/postgresql/15/bin/pg_ctl".into(),
                username: String::new(),
                dbname: "postgres".into(),
                host: String::new(),
                port: 5432,
                listen_addresses: "*".into(),
                auth_method: "trust".into(),
                hba_level: "minimal".into(),
            },
            ssl: Ssl {
                sslmode: "prefer".into(),
                ..Ssl::default()
            },
            maximum_backup_rate: "100M".into(),
            backup_directory: "/var/lib/pg/backup/node_1".into(),
            replication_password: String::new(),
            timeouts: Timeouts::default(),
            citus_role: "primary".into(),
            citus_cluster_name: String::new(),
            metrics_listen: String::new(),
        }
    }

    #[test]
    fn keeper_config_round_trips_in_upstream_order() {
        let c = Config::Keeper(keeper());
        let text = c.to_ini().render();
        assert!(text.starts_with(
            "[pg_autoctl]\nrole = keeper\nmonitor = postgres://autoctl_node@mon:5432/pg_auto_failover?sslmode=prefer\nformation = default\ngroup = 0\nname = node_1\nhostname = 10.0.0.1\nnodekind = standalone\n\n[postgresql]\npgdata = /var/lib/pg/node1\n"
        ));
        assert!(text.contains("\n[timeout]\nnetwork_partition_timeout = 20\n"));
        let back = Config::from_ini(Path::new("x"), &Ini::parse(&text).unwrap()).unwrap();
        assert_eq!(back, c);
    }

    #[test]
    fn bad_values_are_reported_with_their_key() {
        let text = Config::Keeper(keeper())
            .to_ini()
            .render()
            .replace("port = 5432", "port = abc");
        let err = Config::from_ini(Path::new("f.cfg"), &Ini::parse(&text).unwrap()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "configuration file \"f.cfg\": invalid value \"abc\" for postgresql.port: expected a port number"
        );
    }
}
