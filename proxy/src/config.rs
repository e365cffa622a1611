//! Configuration: a TOML file plus command-line overrides, validated once
//! into typed structs ([`Config`]) that the rest of the proxy receives by
//! reference. Nothing downstream re-parses strings.
//!
//! ```toml
//! [monitor]
//! uri = "postgres://autoctl_node@monitor:5432/pg_auto_failover?sslmode=require"
//! grace_period = "30s"
//!
//! [proxy]
//! hold_timeout = "30s"
//!
//! [admin]
//! listen = "127.0.0.1:9187"
//!
//! [[listener]]
//! name = "app"
//! listen = "0.0.0.0:6432"
//! formation = "default"
//! group = 0
//! role = "read-write"
//! ```
//!
//! Durations are strings with a unit (`"500ms"`, `"30s"`, `"2m"`, `"1h"`);
//! sizes are integers (bytes) or strings with a binary unit (`"64KiB"`).
//! See `proxy/pg_autoproxy.example.toml` for every key and its default.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

/// The validated configuration.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Config {
    pub(crate) monitor: MonitorConfig,
    pub(crate) proxy: ProxySettings,
    pub(crate) admin: Option<SocketAddr>,
    pub(crate) log: LogConfig,
    pub(crate) listeners: Vec<ListenerConfig>,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct MonitorConfig {
    /// Connection string of the monitor (URI or key=value). May hold a
    /// password: print it only through [`pgaf_pgconn::redact`].
    pub(crate) uri: String,
    /// Re-read the monitor this often even without notifications.
    pub(crate) refresh_interval: Duration,
    /// Upper bound for one refresh query.
    pub(crate) query_timeout: Duration,
    /// Upper bound for connecting to the monitor.
    pub(crate) connect_timeout: Duration,
    /// Keep routing to the last known primary this long while the monitor
    /// is unreachable; after that new connections are refused.
    pub(crate) grace_period: Duration,
    /// Longest pause between two reconnection attempts.
    pub(crate) reconnect_backoff_max: Duration,
    /// Also close existing sessions when the grace period expires.
    pub(crate) fence_on_monitor_loss: bool,
    /// While the monitor is unreachable, connect to the nodes with these
    /// libpq settings (no host or port: each node's) to find the one that
    /// takes writes (`monitor::direct`); empty: do not.
    pub(crate) node_check: String,
    /// How often the nodes are checked while the monitor is unreachable.
    pub(crate) node_check_interval: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RuntimeFlavor {
    /// One single-threaded runtime per worker thread, sharing the listening
    /// sockets (no work stealing, no cross-thread wakeups on the hot path).
    PerCore,
    /// One multi-threaded work-stealing runtime.
    MultiThread,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RelayMode {
    /// User-space copy through a per-thread buffer.
    Copy,
    /// splice(2) through a pipe for plaintext TCP↔TCP sessions after the
    /// startup phase (Linux only).
    Splice,
}

/// The CPU scheduling policy of the worker threads (see `sched.rs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Scheduling {
    /// `SCHED_BATCH`: no wakeup preemption of the peer that woke us.
    Batch,
    /// The thread's inherited policy (normally `SCHED_OTHER`).
    Normal,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Keepalive {
    pub(crate) idle: Duration,
    pub(crate) interval: Duration,
    pub(crate) count: u32,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ProxySettings {
    /// How long a new connection waits for a primary before 57P03.
    pub(crate) hold_timeout: Duration,
    /// Deadline for each client packet of the startup phase.
    pub(crate) handshake_timeout: Duration,
    /// Deadline for one TCP connect to a node.
    pub(crate) connect_timeout: Duration,
    /// On SIGTERM, how long sessions may continue before they are closed.
    pub(crate) drain_timeout: Duration,
    /// Deadline for forwarding one CancelRequest.
    pub(crate) cancel_timeout: Duration,
    /// Worker threads (0 in the file = one per CPU, resolved here).
    pub(crate) workers: usize,
    pub(crate) runtime: RuntimeFlavor,
    pub(crate) relay: RelayMode,
    pub(crate) scheduling: Scheduling,
    /// Relay buffer size per direction (per thread, plus per session only
    /// while the receiving side applies back-pressure).
    pub(crate) buffer_size: usize,
    pub(crate) keepalive: Keepalive,
    /// Client connections accepted at once (0 = unlimited).
    pub(crate) max_connections: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LogConfig {
    pub(crate) format: LogFormat,
    /// A tracing `EnvFilter` directive (`RUST_LOG` wins when set).
    pub(crate) level: String,
}

/// What a listener's sessions are routed to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Role {
    /// The node that can take writes.
    ReadWrite,
    /// Healthy secondaries.
    ReadOnly(ReadOnlyPolicy),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ReadOnlyPolicy {
    /// Use the primary when no secondary qualifies.
    pub(crate) fallback_to_primary: bool,
    /// Skip secondaries further behind than this (bytes of WAL).
    pub(crate) max_lag_bytes: Option<u64>,
    /// Secondaries within this many bytes of the least lagging one share
    /// connections round robin.
    pub(crate) lag_tolerance_bytes: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum TlsMode {
    /// SSLRequest, GSSENCRequest and direct TLS go to the node: TLS and
    /// every authentication method work end to end.
    Passthrough,
    /// The proxy answers SSLRequest itself with this certificate, and
    /// speaks to the node as `backend` says.
    Terminate {
        cert: PathBuf,
        key: PathBuf,
        backend: BackendTls,
    },
}

/// TLS from a terminating listener to the node (`backend_tls`), as libpq's
/// `sslmode` of the same names: encryption without certificate checks (the
/// nodes are the ones the monitor lists).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BackendTls {
    /// Plaintext to the node.
    Disable,
    /// TLS when the node offers it, else plaintext (the default: nodes made
    /// with `--ssl-self-signed` only accept TLS, others may have no SSL).
    Prefer,
    /// TLS or no session.
    Require,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ListenerConfig {
    /// Unique; used as the `listener` metric label and in logs.
    pub(crate) name: String,
    pub(crate) listen: SocketAddr,
    pub(crate) formation: String,
    pub(crate) group: i32,
    pub(crate) role: Role,
    pub(crate) tls: TlsMode,
}

/// Values given on the command line; each wins over the file.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Overrides {
    pub(crate) monitor: Option<String>,
    pub(crate) admin_listen: Option<String>,
    pub(crate) workers: Option<usize>,
    pub(crate) log_format: Option<String>,
    pub(crate) log_level: Option<String>,
    /// A listener defined by flags (`--listen`, `--formation`, `--group`,
    /// `--read-only`), added to the file's listeners as `cli`.
    pub(crate) listen: Option<String>,
    pub(crate) formation: Option<String>,
    pub(crate) group: Option<i32>,
    pub(crate) read_only: bool,
}

/// A configuration that cannot be used, with the key at fault.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ConfigError {
    #[error("read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("parse {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("{key}: {message}")]
    Invalid { key: String, message: String },
}

fn invalid(key: impl Into<String>, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key: key.into(),
        message: message.into(),
    }
}

// ---------------------------------------------------------------------------
// The file, as written by people.

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    monitor: MonitorFile,
    #[serde(default)]
    proxy: ProxyFile,
    #[serde(default)]
    admin: AdminFile,
    #[serde(default)]
    log: LogFile,
    #[serde(default, rename = "listener")]
    listeners: Vec<ListenerFile>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct MonitorFile {
    uri: Option<String>,
    refresh_interval: Option<String>,
    query_timeout: Option<String>,
    connect_timeout: Option<String>,
    grace_period: Option<String>,
    reconnect_backoff_max: Option<String>,
    fence_on_monitor_loss: Option<bool>,
    node_check: Option<String>,
    node_check_interval: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ProxyFile {
    hold_timeout: Option<String>,
    handshake_timeout: Option<String>,
    connect_timeout: Option<String>,
    drain_timeout: Option<String>,
    cancel_timeout: Option<String>,
    workers: Option<usize>,
    runtime: Option<String>,
    relay: Option<String>,
    scheduling: Option<String>,
    buffer_size: Option<Size>,
    tcp_keepalive_idle: Option<String>,
    tcp_keepalive_interval: Option<String>,
    tcp_keepalive_count: Option<u32>,
    max_connections: Option<usize>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct AdminFile {
    listen: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct LogFile {
    format: Option<String>,
    level: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ListenerFile {
    name: Option<String>,
    listen: Option<String>,
    formation: Option<String>,
    group: Option<i32>,
    role: Option<String>,
    fallback_to_primary: Option<bool>,
    max_lag: Option<Size>,
    lag_tolerance: Option<Size>,
    tls: Option<String>,
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
    backend_tls: Option<String>,
}

/// A byte size: an integer or a string with a unit.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
enum Size {
    Bytes(u64),
    Text(String),
}

// ---------------------------------------------------------------------------
// Scalars.

/// Parse `"250ms"`, `"30s"`, `"2m"`, `"1h"` (a unit is required).
pub(crate) fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    if num.is_empty() {
        return Err(format!(
            "\"{s}\" is not a duration (try \"30s\" or \"500ms\")"
        ));
    }
    let n: u64 = num
        .parse()
        .map_err(|_| format!("\"{s}\" is out of range"))?;
    let d = match unit.trim() {
        "ms" => Duration::from_millis(n),
        "s" => Duration::from_secs(n),
        "m" | "min" => Duration::from_secs(n.saturating_mul(60)),
        "h" => Duration::from_secs(n.saturating_mul(3600)),
        "" => return Err(format!("\"{s}\" needs a unit (ms, s, m, h)")),
        u => return Err(format!("\"{s}\": unknown unit \"{u}\" (ms, s, m, h)")),
    };
    Ok(d)
}

fn parse_size(v: &Size) -> Result<u64, String> {
    let s = match v {
        Size::Bytes(n) => return Ok(*n),
        Size::Text(s) => s.trim(),
    };
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("\"{s}\" is not a size (try \"64KiB\")"))?;
    let mult: u64 = match unit.trim() {
        "" | "B" => 1,
        "KiB" | "kB" | "KB" => 1 << 10,
        "MiB" | "MB" => 1 << 20,
        "GiB" | "GB" => 1 << 30,
        u => return Err(format!("\"{s}\": unknown unit \"{u}\" (B, KiB, MiB, GiB)")),
    };
    n.checked_mul(mult)
        .ok_or_else(|| format!("\"{s}\" is out of range"))
}

fn duration(key: &str, v: Option<&str>, default: Duration) -> Result<Duration, ConfigError> {
    let d = match v {
        None => default,
        Some(s) => parse_duration(s).map_err(|m| invalid(key, m))?,
    };
    if d.is_zero() {
        return Err(invalid(key, "must be greater than zero"));
    }
    Ok(d)
}

/// `monitor.node_check`: libpq settings without host and port.
fn node_check(v: Option<&str>) -> Result<String, ConfigError> {
    const KEY: &str = "monitor.node_check";
    let s = v.unwrap_or(DEFAULT_NODE_CHECK).trim().to_string();
    if s.is_empty() {
        return Ok(s);
    }
    if s.contains("://") {
        return Err(invalid(
            KEY,
            "key=value settings (for example \"user=pgaf_check dbname=postgres\"), not a URI",
        ));
    }
    // Ours go first: a host or port of the settings would replace them.
    let target = pgaf_pgconn::parse(&format!("host=pgaf.invalid port=1 {s}"))
        .map_err(|e| invalid(KEY, e.to_string()))?;
    let host_kept = matches!(
        target.config.get_hosts(),
        [tokio_postgres::config::Host::Tcp(h)] if h == "pgaf.invalid"
    );
    if !host_kept || target.config.get_ports() != [1] || s.contains("hostaddr") {
        return Err(invalid(
            KEY,
            "must not name a host or port: each node's own are used",
        ));
    }
    Ok(s)
}

/// Who the proxy logs in as to check the nodes while the monitor is away.
pub(crate) const DEFAULT_NODE_CHECK: &str = "user=postgres dbname=postgres";

fn socket_addr(key: &str, s: &str) -> Result<SocketAddr, ConfigError> {
    s.trim().parse().map_err(|_| {
        invalid(
            key,
            format!("\"{s}\" is not an address:port (for example \"0.0.0.0:6432\")"),
        )
    })
}

// ---------------------------------------------------------------------------
// Building.

impl Config {
    /// Read `path` (if any), apply `overrides` and validate.
    pub(crate) fn load(path: Option<&Path>, overrides: &Overrides) -> Result<Config, ConfigError> {
        let file = match path {
            None => File::default(),
            Some(p) => {
                let text = std::fs::read_to_string(p).map_err(|source| ConfigError::Read {
                    path: p.to_path_buf(),
                    source,
                })?;
                toml::from_str::<File>(&text).map_err(|e| ConfigError::Parse {
                    path: p.to_path_buf(),
                    message: e.to_string(),
                })?
            }
        };
        Config::build(file, overrides)
    }

    /// Parse a configuration text (tests and `--check`).
    #[cfg(test)]
    pub(crate) fn from_toml(text: &str, overrides: &Overrides) -> Result<Config, ConfigError> {
        let file = toml::from_str::<File>(text).map_err(|e| ConfigError::Parse {
            path: PathBuf::from("<string>"),
            message: e.to_string(),
        })?;
        Config::build(file, overrides)
    }

    fn build(file: File, o: &Overrides) -> Result<Config, ConfigError> {
        let m = &file.monitor;
        let uri = o
            .monitor
            .clone()
            .or_else(|| m.uri.clone())
            .ok_or_else(|| invalid("monitor.uri", "required (or --monitor)"))?;
        if uri.trim().is_empty() {
            return Err(invalid("monitor.uri", "must not be empty"));
        }
        let monitor = MonitorConfig {
            uri,
            refresh_interval: duration(
                "monitor.refresh_interval",
                m.refresh_interval.as_deref(),
                Duration::from_secs(5),
            )?,
            query_timeout: duration(
                "monitor.query_timeout",
                m.query_timeout.as_deref(),
                Duration::from_secs(5),
            )?,
            connect_timeout: duration(
                "monitor.connect_timeout",
                m.connect_timeout.as_deref(),
                Duration::from_secs(5),
            )?,
            grace_period: duration(
                "monitor.grace_period",
                m.grace_period.as_deref(),
                Duration::from_secs(30),
            )?,
            reconnect_backoff_max: duration(
                "monitor.reconnect_backoff_max",
                m.reconnect_backoff_max.as_deref(),
                Duration::from_secs(5),
            )?,
            fence_on_monitor_loss: m.fence_on_monitor_loss.unwrap_or(false),
            node_check: node_check(m.node_check.as_deref())?,
            node_check_interval: duration(
                "monitor.node_check_interval",
                m.node_check_interval.as_deref(),
                Duration::from_millis(500),
            )?,
        };

        let p = &file.proxy;
        let workers = match o.workers.or(p.workers) {
            None | Some(0) => std::thread::available_parallelism().map_or(1, |n| n.get()),
            Some(n) if n > 256 => return Err(invalid("proxy.workers", "at most 256")),
            Some(n) => n,
        };
        let runtime = match p.runtime.as_deref() {
            None | Some("per-core") => RuntimeFlavor::PerCore,
            Some("multi-thread") => RuntimeFlavor::MultiThread,
            Some(other) => {
                return Err(invalid(
                    "proxy.runtime",
                    format!("\"{other}\": expected \"per-core\" or \"multi-thread\""),
                ))
            }
        };
        let relay = match p.relay.as_deref() {
            None | Some("copy") => RelayMode::Copy,
            Some("splice") if cfg!(target_os = "linux") => RelayMode::Splice,
            Some("splice") => return Err(invalid("proxy.relay", "splice needs Linux")),
            Some(other) => {
                return Err(invalid(
                    "proxy.relay",
                    format!("\"{other}\": expected \"copy\" or \"splice\""),
                ))
            }
        };
        let scheduling = match p.scheduling.as_deref() {
            None | Some("batch") => Scheduling::Batch,
            Some("normal") => Scheduling::Normal,
            Some(other) => {
                return Err(invalid(
                    "proxy.scheduling",
                    format!("\"{other}\": expected \"batch\" or \"normal\""),
                ))
            }
        };
        let buffer_size = match &p.buffer_size {
            None => 64 * 1024,
            Some(s) => parse_size(s).map_err(|m| invalid("proxy.buffer_size", m))?,
        };
        if !(4096..=16 << 20).contains(&buffer_size) {
            return Err(invalid(
                "proxy.buffer_size",
                "must be between 4KiB and 16MiB",
            ));
        }
        let keepalive = Keepalive {
            idle: duration(
                "proxy.tcp_keepalive_idle",
                p.tcp_keepalive_idle.as_deref(),
                Duration::from_secs(60),
            )?,
            interval: duration(
                "proxy.tcp_keepalive_interval",
                p.tcp_keepalive_interval.as_deref(),
                Duration::from_secs(10),
            )?,
            count: match p.tcp_keepalive_count {
                None => 6,
                Some(0) => return Err(invalid("proxy.tcp_keepalive_count", "must be > 0")),
                Some(n) => n,
            },
        };
        let proxy = ProxySettings {
            hold_timeout: duration(
                "proxy.hold_timeout",
                p.hold_timeout.as_deref(),
                Duration::from_secs(30),
            )?,
            handshake_timeout: duration(
                "proxy.handshake_timeout",
                p.handshake_timeout.as_deref(),
                Duration::from_secs(10),
            )?,
            connect_timeout: duration(
                "proxy.connect_timeout",
                p.connect_timeout.as_deref(),
                Duration::from_secs(5),
            )?,
            drain_timeout: duration(
                "proxy.drain_timeout",
                p.drain_timeout.as_deref(),
                Duration::from_secs(30),
            )?,
            cancel_timeout: duration(
                "proxy.cancel_timeout",
                p.cancel_timeout.as_deref(),
                Duration::from_secs(5),
            )?,
            workers,
            runtime,
            relay,
            scheduling,
            buffer_size: buffer_size as usize,
            keepalive,
            max_connections: p.max_connections.unwrap_or(0),
        };

        let admin = match o.admin_listen.as_deref().or(file.admin.listen.as_deref()) {
            None | Some("") => None,
            Some(s) => Some(socket_addr("admin.listen", s)?),
        };

        let format = match o.log_format.as_deref().or(file.log.format.as_deref()) {
            None | Some("text") => LogFormat::Text,
            Some("json") => LogFormat::Json,
            Some(other) => {
                return Err(invalid(
                    "log.format",
                    format!("\"{other}\": expected \"text\" or \"json\""),
                ))
            }
        };
        let log = LogConfig {
            format,
            level: o
                .log_level
                .clone()
                .or_else(|| file.log.level.clone())
                .unwrap_or_else(|| "info".to_string()),
        };

        let mut listeners = Vec::new();
        for (i, l) in file.listeners.iter().enumerate() {
            listeners.push(listener(&format!("listener[{i}]"), l)?);
        }
        if let Some(addr) = &o.listen {
            let l = ListenerFile {
                name: Some("cli".into()),
                listen: Some(addr.clone()),
                formation: o.formation.clone(),
                group: o.group,
                role: Some(
                    if o.read_only {
                        "read-only"
                    } else {
                        "read-write"
                    }
                    .into(),
                ),
                ..ListenerFile::default()
            };
            listeners.push(listener("--listen", &l)?);
        } else if o.formation.is_some() || o.group.is_some() || o.read_only {
            return Err(invalid(
                "--listen",
                "--formation, --group and --read-only need --listen",
            ));
        }
        if listeners.is_empty() {
            return Err(invalid(
                "listener",
                "at least one [[listener]] (or --listen) is required",
            ));
        }
        let mut names = HashSet::new();
        let mut addrs = HashSet::new();
        for l in &listeners {
            if !names.insert(l.name.clone()) {
                return Err(invalid(
                    "listener.name",
                    format!("\"{}\" is used twice", l.name),
                ));
            }
            if !addrs.insert(l.listen) {
                return Err(invalid(
                    "listener.listen",
                    format!("{} is used twice", l.listen),
                ));
            }
            if Some(l.listen) == admin {
                return Err(invalid("admin.listen", "is also a listener address"));
            }
        }
        Ok(Config {
            monitor,
            proxy,
            admin,
            log,
            listeners,
        })
    }
}

fn listener(key: &str, l: &ListenerFile) -> Result<ListenerConfig, ConfigError> {
    let name = l
        .name
        .clone()
        .ok_or_else(|| invalid(format!("{key}.name"), "required"))?;
    let name_ok = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if !name_ok {
        return Err(invalid(
            format!("{key}.name"),
            format!("\"{name}\": use 1 to 64 characters among A-Z a-z 0-9 - _ ."),
        ));
    }
    let key = format!("listener \"{name}\"");
    let listen = socket_addr(
        &format!("{key}.listen"),
        l.listen
            .as_deref()
            .ok_or_else(|| invalid(format!("{key}.listen"), "required"))?,
    )?;
    let formation = l.formation.clone().unwrap_or_else(|| "default".to_string());
    if formation.is_empty() {
        return Err(invalid(format!("{key}.formation"), "must not be empty"));
    }
    let group = l.group.unwrap_or(0);
    if group < 0 {
        return Err(invalid(format!("{key}.group"), "must be >= 0"));
    }
    let size = |field: &str, v: &Option<Size>| -> Result<Option<u64>, ConfigError> {
        v.as_ref()
            .map(parse_size)
            .transpose()
            .map_err(|m| invalid(format!("{key}.{field}"), m))
    };
    let role = match l.role.as_deref() {
        None | Some("read-write") | Some("primary") => {
            if l.fallback_to_primary.is_some() || l.max_lag.is_some() || l.lag_tolerance.is_some() {
                return Err(invalid(
                    format!("{key}.role"),
                    "fallback_to_primary, max_lag and lag_tolerance apply to role = \"read-only\"",
                ));
            }
            Role::ReadWrite
        }
        Some("read-only") | Some("standby") => Role::ReadOnly(ReadOnlyPolicy {
            fallback_to_primary: l.fallback_to_primary.unwrap_or(false),
            max_lag_bytes: size("max_lag", &l.max_lag)?,
            lag_tolerance_bytes: size("lag_tolerance", &l.lag_tolerance)?.unwrap_or(16 << 20),
        }),
        Some(other) => {
            return Err(invalid(
                format!("{key}.role"),
                format!("\"{other}\": expected \"read-write\" or \"read-only\""),
            ))
        }
    };
    let tls = match l.tls.as_deref() {
        None | Some("passthrough") => {
            if l.tls_cert.is_some() || l.tls_key.is_some() || l.backend_tls.is_some() {
                return Err(invalid(
                    format!("{key}.tls"),
                    "tls_cert, tls_key and backend_tls need tls = \"terminate\" (with passthrough the client negotiates TLS with the node itself)",
                ));
            }
            TlsMode::Passthrough
        }
        Some("terminate") => {
            let cert = l.tls_cert.clone().ok_or_else(|| {
                invalid(
                    format!("{key}.tls_cert"),
                    "required with tls = \"terminate\"",
                )
            })?;
            let key_path = l.tls_key.clone().ok_or_else(|| {
                invalid(
                    format!("{key}.tls_key"),
                    "required with tls = \"terminate\"",
                )
            })?;
            let backend = match l.backend_tls.as_deref() {
                None | Some("prefer") => BackendTls::Prefer,
                Some("require") => BackendTls::Require,
                Some("disable") => BackendTls::Disable,
                Some(other) => {
                    return Err(invalid(
                        format!("{key}.backend_tls"),
                        format!("\"{other}\": expected \"prefer\", \"require\" or \"disable\""),
                    ))
                }
            };
            TlsMode::Terminate {
                cert,
                key: key_path,
                backend,
            }
        }
        Some(other) => {
            return Err(invalid(
                format!("{key}.tls"),
                format!("\"{other}\": expected \"passthrough\" or \"terminate\""),
            ))
        }
    };
    Ok(ListenerConfig {
        name,
        listen,
        formation,
        group,
        role,
        tls,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"
        [monitor]
        uri = "postgres://autoctl_node@mon:5432/pg_auto_failover"
        [[listener]]
        name = "app"
        listen = "127.0.0.1:6432"
    "#;

    #[test]
    fn minimal_file_gets_defaults() {
        let c = Config::from_toml(MINIMAL, &Overrides::default()).unwrap();
        assert_eq!(c.monitor.grace_period, Duration::from_secs(30));
        assert_eq!(c.proxy.hold_timeout, Duration::from_secs(30));
        assert_eq!(c.proxy.relay, RelayMode::Copy);
        assert_eq!(c.proxy.runtime, RuntimeFlavor::PerCore);
        assert_eq!(c.proxy.scheduling, Scheduling::Batch);
        assert!(c.proxy.workers >= 1);
        assert_eq!(c.admin, None);
        let l = &c.listeners[0];
        assert_eq!((l.formation.as_str(), l.group), ("default", 0));
        assert_eq!(l.role, Role::ReadWrite);
        assert_eq!(l.tls, TlsMode::Passthrough);
    }

    #[test]
    fn full_file() {
        let text = r#"
            [monitor]
            uri = "postgres://m/pg_auto_failover"
            refresh_interval = "2s"
            grace_period = "1m"
            fence_on_monitor_loss = true
            [proxy]
            hold_timeout = "1500ms"
            workers = 3
            runtime = "multi-thread"
            relay = "splice"
            scheduling = "normal"
            buffer_size = "256KiB"
            max_connections = 100
            [admin]
            listen = "127.0.0.1:9187"
            [log]
            format = "json"
            level = "debug"
            [[listener]]
            name = "rw"
            listen = "0.0.0.0:6432"
            formation = "f1"
            group = 1
            [[listener]]
            name = "ro"
            listen = "0.0.0.0:6433"
            formation = "f1"
            group = 1
            role = "read-only"
            fallback_to_primary = true
            max_lag = "64MiB"
            tls = "terminate"
            tls_cert = "/etc/cert.pem"
            tls_key = "/etc/key.pem"
        "#;
        let c = Config::from_toml(text, &Overrides::default()).unwrap();
        assert_eq!(c.monitor.refresh_interval, Duration::from_secs(2));
        assert_eq!(c.monitor.grace_period, Duration::from_secs(60));
        assert!(c.monitor.fence_on_monitor_loss);
        assert_eq!(c.proxy.hold_timeout, Duration::from_millis(1500));
        assert_eq!(c.proxy.workers, 3);
        assert_eq!(c.proxy.runtime, RuntimeFlavor::MultiThread);
        assert_eq!(c.proxy.scheduling, Scheduling::Normal);
        assert_eq!(c.proxy.buffer_size, 256 * 1024);
        assert_eq!(c.proxy.max_connections, 100);
        assert_eq!(c.admin, Some("127.0.0.1:9187".parse().unwrap()));
        assert_eq!(
            c.log,
            LogConfig {
                format: LogFormat::Json,
                level: "debug".into()
            }
        );
        assert_eq!(
            c.listeners[1].role,
            Role::ReadOnly(ReadOnlyPolicy {
                fallback_to_primary: true,
                max_lag_bytes: Some(64 << 20),
                lag_tolerance_bytes: 16 << 20,
            })
        );
        assert!(matches!(
            c.listeners[1].tls,
            TlsMode::Terminate {
                backend: BackendTls::Prefer,
                ..
            }
        ));
    }

    #[test]
    fn the_example_file_is_valid() {
        let text = include_str!("../pg_autoproxy.example.toml");
        let c = Config::from_toml(text, &Overrides::default()).unwrap();
        assert_eq!(c.listeners.len(), 2);
        assert_eq!(c.monitor.grace_period, Duration::from_secs(30));
    }

    #[test]
    fn node_check_settings_are_checked() {
        let c = Config::from_toml(MINIMAL, &Overrides::default()).unwrap();
        assert_eq!(c.monitor.node_check, DEFAULT_NODE_CHECK);
        assert_eq!(c.monitor.node_check_interval, Duration::from_millis(500));
        let with = |v: &str| {
            let text = MINIMAL.replacen("[monitor]", &format!("[monitor]\nnode_check = {v:?}"), 1);
            Config::from_toml(&text, &Overrides::default())
        };
        assert_eq!(with("").unwrap().monitor.node_check, "", "empty: off");
        assert_eq!(
            with("user=check password=secret sslmode=require")
                .unwrap()
                .monitor
                .node_check,
            "user=check password=secret sslmode=require"
        );
        for (bad, why) in [
            ("postgres://u@h/db", "not a URI"),
            ("host=db1 user=u", "must not name a host"),
            ("sslmode=bogus", "sslmode"),
        ] {
            let e = with(bad).unwrap_err().to_string();
            assert!(
                e.contains("monitor.node_check") && e.contains(why),
                "{bad}: {e}"
            );
        }
    }

    #[test]
    fn flags_override_the_file_and_add_a_listener() {
        let o = Overrides {
            monitor: Some("postgres://other/db".into()),
            workers: Some(1),
            listen: Some("127.0.0.1:7000".into()),
            formation: Some("f2".into()),
            group: Some(2),
            read_only: true,
            ..Overrides::default()
        };
        let c = Config::from_toml(MINIMAL, &o).unwrap();
        assert_eq!(c.monitor.uri, "postgres://other/db");
        assert_eq!(c.proxy.workers, 1);
        assert_eq!(c.listeners.len(), 2);
        assert_eq!(c.listeners[1].name, "cli");
        assert_eq!(c.listeners[1].group, 2);
        assert!(matches!(c.listeners[1].role, Role::ReadOnly(_)));
    }

    #[test]
    fn flags_alone_are_enough() {
        let o = Overrides {
            monitor: Some("postgres://m/db".into()),
            listen: Some("127.0.0.1:7000".into()),
            ..Overrides::default()
        };
        let c = Config::build(File::default(), &o).unwrap();
        assert_eq!(c.listeners.len(), 1);
    }

    fn err(text: &str) -> String {
        Config::from_toml(text, &Overrides::default())
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn invalid_files_name_the_key() {
        let with = |extra: &str| format!("{MINIMAL}\n{extra}");
        assert!(err("").contains("monitor.uri"));
        assert!(err("[monitor]\nuri = \"x\"").contains("at least one"));
        assert!(err(&with("[proxy]\nhold_timeout = \"30\"")).contains("needs a unit"));
        assert!(err(&with("[proxy]\nhold_timeout = \"0s\"")).contains("greater than zero"));
        assert!(err(&with("[proxy]\nhold_timeout = \"3 parsecs\"")).contains("unknown unit"));
        assert!(err(&with("[proxy]\nbuffer_size = 12")).contains("between"));
        assert!(err(&with("[proxy]\nruntime = \"green\"")).contains("proxy.runtime"));
        assert!(err(&with("[proxy]\nscheduling = \"fifo\"")).contains("proxy.scheduling"));
        assert!(err(&with("[proxy]\nbogus = 1")).contains("unknown field"));
        assert!(err(&with(
            "[[listener]]\nname = \"app\"\nlisten = \"127.0.0.1:1\""
        ))
        .contains("used twice"));
        assert!(err(&with(
            "[[listener]]\nname = \"b\"\nlisten = \"127.0.0.1:6432\""
        ))
        .contains("used twice"));
        assert!(err(&with(
            "[[listener]]\nname = \"b c\"\nlisten = \"127.0.0.1:1\""
        ))
        .contains("characters"));
        assert!(
            err(&with("[[listener]]\nname = \"b\"\nlisten = \"localhost\"")).contains("address")
        );
        assert!(err(&with(
            "[[listener]]\nname = \"b\"\nlisten = \"127.0.0.1:1\"\nrole = \"x\""
        ))
        .contains("role"));
        assert!(err(&with(
            "[[listener]]\nname = \"b\"\nlisten = \"127.0.0.1:1\"\nfallback_to_primary = true"
        ))
        .contains("read-only"));
        assert!(err(&with(
            "[[listener]]\nname = \"b\"\nlisten = \"127.0.0.1:1\"\ntls = \"terminate\""
        ))
        .contains("tls_cert"));
        assert!(err(&with(
            "[[listener]]\nname = \"b\"\nlisten = \"127.0.0.1:1\"\nbackend_tls = \"require\""
        ))
        .contains("need tls = \"terminate\""));
        assert!(err(&with(
            "[[listener]]\nname = \"b\"\nlisten = \"127.0.0.1:1\"\ntls = \"terminate\"\n\
             tls_cert = \"/c\"\ntls_key = \"/k\"\nbackend_tls = \"verify-full\""
        ))
        .contains("backend_tls"));
        assert!(err(&with(
            "[[listener]]\nname = \"b\"\nlisten = \"127.0.0.1:1\"\ngroup = -1"
        ))
        .contains(">= 0"));
        assert!(err(&with("[admin]\nlisten = \"127.0.0.1:6432\"")).contains("listener address"));
    }

    #[test]
    fn durations_and_sizes() {
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration(" 2m "), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert!(parse_duration("s").is_err());
        assert!(parse_duration("-1s").is_err());
        assert!(parse_duration("99999999999999999999s").is_err());
        assert_eq!(parse_size(&Size::Text("64KiB".into())), Ok(65536));
        assert_eq!(parse_size(&Size::Text("1MiB".into())), Ok(1 << 20));
        assert_eq!(parse_size(&Size::Bytes(10)), Ok(10));
        assert!(parse_size(&Size::Text("99999999999GiB".into())).is_err());
    }
}
