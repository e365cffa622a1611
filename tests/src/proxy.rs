//! `pg_autoproxy` for one test, and the clients the proxy tests drive
//! through it.
//!
//! * [`Proxy`]: the real binary, started with a generated configuration on
//!   free 127.0.0.1 ports (its listeners and the admin port), following the
//!   test's monitor; stopped by its PID (SIGTERM, then SIGKILL) when
//!   dropped, with the tail of its log printed when the test failed. Its
//!   admin port answers [`Proxy::status`] (`/status` as JSON) and
//!   [`Proxy::metric`] (one series of `/metrics`).
//! * [`where_am_i`]: which node a new connection through a port lands on.
//! * [`ProxyWriter`]: one row per transaction through a port, reconnecting
//!   after every error; remembers every acknowledged write with the node
//!   that took it and both clocks.
//! * [`Pgbench`]: `pgbench` through a port, stopped by its PID.
//!
//! The binary is `PGAF_AUTOPROXY`, else `pg_autoproxy` next to the test
//! binary's directory (`target/<profile>/`): build it first
//! (`cargo build --bins`).

use crate::cluster::free_port;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_postgres::{Client, NoTls};

/// The `pg_autoproxy` under test.
pub fn binary() -> PathBuf {
    crate::cluster::built_binary("pg_autoproxy", "PGAF_AUTOPROXY")
}

/// The role of a listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    ReadWrite,
    ReadOnly { fallback_to_primary: bool },
}

/// One `[[listener]]` of the generated configuration.
#[derive(Debug, Clone)]
pub struct Listener {
    pub name: &'static str,
    pub role: Role,
    /// More keys of the `[[listener]]` table (TOML lines), e.g. TLS.
    pub extra: String,
}

/// A running `pg_autoproxy`.
pub struct Proxy {
    /// Where its listeners and admin port are: 127.0.0.1, or its host's
    /// address on a LAN.
    pub addr: String,
    pub config: PathBuf,
    pub log: PathBuf,
    pub admin: u16,
    ports: Vec<(&'static str, u16)>,
    child: Option<Child>,
}

impl Proxy {
    /// Write a configuration in `dir` (listeners on free ports, the admin
    /// port, `extra` TOML appended to `[proxy]`), check it with `--check`,
    /// start the proxy and wait until every port accepts connections.
    pub async fn start(
        dir: &Path,
        monitor_uri: &str,
        listeners: &[Listener],
        extra_proxy_settings: &str,
    ) -> Proxy {
        Proxy::start_on(dir, monitor_uri, listeners, extra_proxy_settings, None).await
    }

    /// [`start`](Self::start) on `host` of a LAN when given: the proxy
    /// runs in that host, its listeners on ports 6432, 6433, … and its
    /// admin port on 9187 of the host's address.
    pub async fn start_on(
        dir: &Path,
        monitor_uri: &str,
        listeners: &[Listener],
        extra_proxy_settings: &str,
        host: Option<&crate::netns::Host>,
    ) -> Proxy {
        let addr = host.map_or("127.0.0.1".to_string(), |h| h.addr.to_string());
        let admin = if host.is_some() { 9187 } else { free_port() };
        let ports: Vec<(&'static str, u16)> = listeners
            .iter()
            .enumerate()
            .map(|(i, l)| {
                let port = if host.is_some() {
                    6432 + i as u16
                } else {
                    free_port()
                };
                (l.name, port)
            })
            .collect();
        let mut toml = format!(
            "[monitor]\nuri = \"{monitor_uri}\"\n\n[proxy]\n{extra_proxy_settings}\n\n\
             [admin]\nlisten = \"{addr}:{admin}\"\n\n[log]\nlevel = \"info\"\n"
        );
        for (l, (_, port)) in listeners.iter().zip(&ports) {
            toml.push_str(&format!(
                "\n[[listener]]\nname = \"{}\"\nlisten = \"{addr}:{port}\"\n",
                l.name
            ));
            toml.push_str(&l.extra);
            if !l.extra.ends_with('\n') {
                toml.push('\n');
            }
            if let Role::ReadOnly {
                fallback_to_primary,
            } = l.role
            {
                toml.push_str(&format!(
                    "role = \"read-only\"\nfallback_to_primary = {fallback_to_primary}\n"
                ));
            }
        }
        let config = dir.join("pg_autoproxy.toml");
        let log = dir.join("pg_autoproxy.log");
        fs::write(&config, toml).expect("write the proxy configuration");
        let check = Command::new(binary())
            .arg("--config")
            .arg(&config)
            .arg("--check")
            .output()
            .expect("run pg_autoproxy --check");
        assert!(
            check.status.success(),
            "pg_autoproxy --check refused the configuration: {}",
            String::from_utf8_lossy(&check.stderr)
        );
        let out = fs::File::create(&log).expect("create the proxy log");
        let err = out.try_clone().expect("clone the log handle");
        let mut cmd = match host {
            Some(h) => h.command(binary()),
            None => Command::new(binary()),
        };
        let child = cmd
            .arg("--config")
            .arg(&config)
            .env_remove("RUST_LOG")
            .env_remove("PG_AUTOPROXY_MONITOR")
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .expect("start pg_autoproxy");
        let mut proxy = Proxy {
            addr: addr.clone(),
            config,
            log,
            admin,
            ports,
            child: Some(child),
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        let all: Vec<u16> = std::iter::once(admin)
            .chain(proxy.ports.iter().map(|(_, p)| *p))
            .collect();
        for port in all {
            while tokio::net::TcpStream::connect((addr.as_str(), port))
                .await
                .is_err()
            {
                assert!(
                    proxy.running(),
                    "pg_autoproxy exited:\n{}",
                    proxy.log_tail(30)
                );
                assert!(
                    Instant::now() < deadline,
                    "pg_autoproxy does not listen on {port} after 30 s:\n{}",
                    proxy.log_tail(30)
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        proxy
    }

    /// The port of listener `name`.
    pub fn port(&self, name: &str) -> u16 {
        self.ports
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, p)| *p)
            .unwrap_or_else(|| panic!("no listener {name}"))
    }

    pub fn pid(&self) -> Option<i32> {
        self.child.as_ref().and_then(|c| i32::try_from(c.id()).ok())
    }

    pub fn running(&mut self) -> bool {
        match self.child.as_mut() {
            Some(c) => matches!(c.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// `GET path` on the admin port: (status code, body).
    pub async fn get(&self, path: &str) -> (u16, String) {
        let request = async {
            let mut s = tokio::net::TcpStream::connect((self.addr.as_str(), self.admin)).await?;
            s.write_all(format!("GET {path} HTTP/1.1\r\nHost: test\r\n\r\n").as_bytes())
                .await?;
            let mut buf = Vec::new();
            s.read_to_end(&mut buf).await?;
            Ok::<_, std::io::Error>(buf)
        };
        let buf = tokio::time::timeout(Duration::from_secs(5), request)
            .await
            .unwrap_or_else(|_| panic!("GET {path}: no answer within 5 s"))
            .unwrap_or_else(|e| panic!("GET {path}: {e}"));
        let text = String::from_utf8_lossy(&buf).to_string();
        let code = text
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or_else(|| panic!("GET {path}: not HTTP: {text}"));
        let body = text
            .split_once("\r\n\r\n")
            .map(|(_, b)| b.to_string())
            .unwrap_or_default();
        (code, body)
    }

    /// `/status` as JSON.
    pub async fn status(&self) -> serde_json::Value {
        let (code, body) = self.get("/status").await;
        assert_eq!(code, 200, "/status: {body}");
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("/status is not JSON ({e}): {body}"))
    }

    /// The `primary` object of listener `name` in `/status`: `{"name": ..}`
    /// or `{"unavailable": why}`.
    pub async fn primary_of(&self, name: &str) -> serde_json::Value {
        let status = self.status().await;
        status["listeners"]
            .as_array()
            .and_then(|ls| ls.iter().find(|l| l["name"] == name))
            .map(|l| l["primary"].clone())
            .unwrap_or_else(|| panic!("no listener {name} in /status: {status}"))
    }

    /// The value of one series of `/metrics`, e.g.
    /// `pgautoproxy_cancel_requests_total{outcome="routed"}`; 0 when absent.
    pub async fn metric(&self, series: &str) -> f64 {
        let (code, body) = self.get("/metrics").await;
        assert_eq!(code, 200, "/metrics: {body}");
        body.lines()
            .filter_map(|l| l.strip_prefix(series))
            .filter_map(|rest| rest.strip_prefix(' '))
            .filter_map(|v| v.trim().parse::<f64>().ok())
            .next()
            .unwrap_or(0.0)
    }

    /// Wait until `/status` no longer names `node` as the primary of
    /// listener `name`. Returns the time the answer saying so was received
    /// and the new `primary` object. The proxy publishes a route and closes
    /// the sessions of the backends that lost their role in one step on the
    /// thread that also serves `/status`, so by then every session it had
    /// relayed to `node` as the primary has been told to end.
    pub async fn wait_not_primary(
        &self,
        name: &str,
        node: &str,
        limit: Duration,
    ) -> (SystemTime, serde_json::Value) {
        let deadline = Instant::now() + limit;
        loop {
            let p = self.primary_of(name).await;
            if p["name"] != node {
                return (SystemTime::now(), p);
            }
            assert!(
                Instant::now() < deadline,
                "the proxy still routes {name} to {node} after {limit:?}"
            );
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }

    pub fn log_text(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn log_tail(&self, n: usize) -> String {
        let text = self.log_text();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }

    /// SIGTERM (drain), then SIGKILL after `limit`. Returns the exit code.
    pub fn stop(&mut self, limit: Duration) -> Option<i32> {
        stop_child(self.child.take()?, libc::SIGTERM, limit)
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "==== pg_autoproxy ({}) ====\n{}",
                self.log.display(),
                self.log_tail(60)
            );
        }
        self.stop(Duration::from_secs(10));
    }
}

/// Send `sig` to the child, wait up to `limit`, then SIGKILL it.
fn stop_child(mut child: Child, sig: i32, limit: Duration) -> Option<i32> {
    if let Ok(pid) = i32::try_from(child.id()) {
        // SAFETY: signalling a process this test started.
        unsafe { libc::kill(pid, sig) };
    }
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if let Ok(Some(status)) = child.try_wait() {
            return status.code();
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
    None
}

/// A client of `port` (through the proxy or not) as `postgres`. The second
/// value ends with the connection and carries its error, if any (for
/// example the FATAL a fenced session receives).
pub async fn connect(
    port: u16,
    timeout: Duration,
) -> Result<
    (
        Client,
        tokio::task::JoinHandle<Result<(), tokio_postgres::Error>>,
    ),
    String,
> {
    let conninfo = format!(
        "host=127.0.0.1 port={port} user=postgres dbname=postgres connect_timeout={}",
        timeout.as_secs().max(1)
    );
    match tokio::time::timeout(timeout, tokio_postgres::connect(&conninfo, NoTls)).await {
        Err(_) => Err(format!("no connection within {timeout:?}")),
        Ok(Err(e)) => Err(error_text(&e)),
        Ok(Ok((client, conn))) => Ok((client, tokio::spawn(conn))),
    }
}

/// SQLSTATE and message of a server error, else the error's text.
pub fn error_text(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{} {}", db.code().code(), db.message()),
        None => e.to_string(),
    }
}

/// (port, in recovery) of the node a new connection to `port` reaches,
/// waiting up to `timeout` (held connections included).
pub async fn where_am_i(port: u16, timeout: Duration) -> Result<(u16, bool), String> {
    let started = Instant::now();
    let (c, _conn) = connect(port, timeout).await?;
    let rest = timeout.saturating_sub(started.elapsed());
    let q = c.query_one("SELECT inet_server_port(), pg_is_in_recovery()", &[]);
    match tokio::time::timeout(rest.max(Duration::from_secs(1)), q).await {
        Err(_) => Err("no answer".into()),
        Ok(Err(e)) => Err(error_text(&e)),
        Ok(Ok(row)) => {
            let p: i32 = row.get(0);
            Ok((u16::try_from(p).unwrap_or(0), row.get(1)))
        }
    }
}

/// The table every write of the proxy tests goes to. Each row records the
/// node that took it (`inet_server_port()`), that node's clock at the
/// insert (`clock_timestamp()`; the nodes and the test share this host's
/// clock) and, for [`ProxyWriter`]'s rows, the writer's clock just before
/// it sent the insert (`sent`, NULL for pgbench's).
pub const WRITES_TABLE: &str = "CREATE TABLE IF NOT EXISTS proxy_writes (
    id bigserial PRIMARY KEY,
    client text NOT NULL,
    node_port int NOT NULL DEFAULT inet_server_port(),
    at timestamptz NOT NULL DEFAULT clock_timestamp(),
    sent timestamptz)";

/// One acknowledged write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ack {
    pub id: i64,
    pub node_port: u16,
    /// The node's clock when it ran the INSERT.
    pub at: SystemTime,
    /// The test's clock just before the INSERT was sent.
    pub sent: SystemTime,
}

#[derive(Default)]
struct WriterLog {
    acks: Vec<Ack>,
    errors: Vec<String>,
}

/// Writes one row per transaction through `port` (table
/// [`WRITES_TABLE`], client `writer`) until stopped, reconnecting after
/// every error; remembers every acknowledged write and every error.
pub struct ProxyWriter {
    stop: Arc<AtomicBool>,
    log: Arc<Mutex<WriterLog>>,
    task: tokio::task::JoinHandle<()>,
}

impl ProxyWriter {
    pub fn start(port: u16) -> ProxyWriter {
        let stop = Arc::new(AtomicBool::new(false));
        let log = Arc::new(Mutex::new(WriterLog::default()));
        let (s, l) = (stop.clone(), log.clone());
        let task = tokio::spawn(async move {
            let mut client: Option<Client> = None;
            while !s.load(Ordering::SeqCst) {
                if client.as_ref().is_none_or(Client::is_closed) {
                    match connect(port, Duration::from_secs(5)).await {
                        Ok((c, _conn)) => client = Some(c),
                        Err(e) => {
                            if let Ok(mut l) = l.lock() {
                                l.errors.push(format!("connect: {e}"));
                            }
                            tokio::time::sleep(Duration::from_millis(20)).await;
                            continue;
                        }
                    }
                }
                let Some(c) = client.as_ref() else { continue };
                let sent = SystemTime::now();
                let params: [&(dyn tokio_postgres::types::ToSql + Sync); 1] = [&sent];
                let insert = c.query_one(
                    "INSERT INTO proxy_writes (client, sent) VALUES ('writer', $1) \
                     RETURNING id, node_port, at",
                    &params,
                );
                match tokio::time::timeout(Duration::from_secs(5), insert).await {
                    Ok(Ok(row)) => {
                        let ack = Ack {
                            id: row.get(0),
                            node_port: u16::try_from(row.get::<_, i32>(1)).unwrap_or(0),
                            at: row.get(2),
                            sent,
                        };
                        if let Ok(mut l) = l.lock() {
                            l.acks.push(ack);
                        }
                    }
                    Ok(Err(e)) => {
                        if let Ok(mut l) = l.lock() {
                            l.errors.push(error_text(&e));
                        }
                        client = None;
                    }
                    Err(_) => {
                        if let Ok(mut l) = l.lock() {
                            l.errors.push("INSERT: no answer within 5 s".into());
                        }
                        client = None;
                    }
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        });
        ProxyWriter { stop, log, task }
    }

    /// The acknowledged writes so far.
    pub fn acks(&self) -> Vec<Ack> {
        self.log.lock().map(|l| l.acks.clone()).unwrap_or_default()
    }

    /// How many writes `node_port` acknowledged so far.
    pub fn acked_on(&self, node_port: u16) -> usize {
        self.acks()
            .iter()
            .filter(|a| a.node_port == node_port)
            .count()
    }

    /// Wait until `node_port` acknowledged `n` more writes than now.
    pub async fn wait_acks_on(&self, node_port: u16, n: usize, limit: Duration) {
        let target = self.acked_on(node_port) + n;
        crate::wait::until(
            &format!("{n} writes acknowledged by the node on port {node_port}"),
            limit,
            Duration::from_millis(10),
            || async { (self.acked_on(node_port) >= target).then_some(()) },
        )
        .await;
    }

    /// Stop; returns every acknowledged write and every error seen.
    pub async fn stop(self) -> (Vec<Ack>, Vec<String>) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = tokio::time::timeout(Duration::from_secs(15), self.task).await;
        self.log
            .lock()
            .map(|l| (l.acks.clone(), l.errors.clone()))
            .unwrap_or_default()
    }
}

/// `pgbench` through a port, until stopped.
pub struct Pgbench {
    child: Option<Child>,
    pub log: PathBuf,
}

impl Pgbench {
    /// Start `pgbench -n -f script args... postgres` against `port` as
    /// `postgres`, output to `log`.
    pub fn start(port: u16, script: &Path, args: &[&str], log: &Path) -> Pgbench {
        let bin = crate::cluster::pg_bin().join("pgbench");
        assert!(bin.exists(), "{} not found", bin.display());
        let out = fs::File::create(log).expect("create the pgbench log");
        let err = out.try_clone().expect("clone the log handle");
        let child = Command::new(bin)
            .args([
                "-n",
                "-h",
                "127.0.0.1",
                "-p",
                &port.to_string(),
                "-U",
                "postgres",
            ])
            .arg("-f")
            .arg(script)
            .args(args)
            .arg("postgres")
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .expect("start pgbench");
        Pgbench {
            child: Some(child),
            log: log.to_path_buf(),
        }
    }

    /// Whether it still runs.
    pub fn running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// Stop it (SIGINT, then SIGKILL) and return its output.
    pub fn stop(&mut self) -> String {
        if let Some(c) = self.child.take() {
            stop_child(c, libc::SIGINT, Duration::from_secs(10));
        }
        fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Pgbench {
    fn drop(&mut self) {
        self.stop();
    }
}
