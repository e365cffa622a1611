//! Real `pg_autoctl` clusters for one test: a monitor and Postgres nodes,
//! each run by its own `pg_autoctl` process (started as whoever runs the
//! tests; as root it becomes the `postgres` user itself), in a fresh
//! directory under /tmp with its own XDG directories, on free 127.0.0.1
//! ports. Every process is stopped by its PID when the [`Formation`] is
//! dropped; on a failed test the tail of every log is printed.
//!
//! The binary is `PGAF_AUTOCTL`, else `pg_autoctl` next to the test binary's
//! directory (`target/<profile>/`): build it first (`cargo build --bins`).
//!
//! Each service can instead be run by Debian's upstream pg_auto_failover 2.0
//! ([`Flavor::Upstream`], see [`crate::upstream`]): an upstream monitor
//! ([`Formation::with_monitor_as`]) or upstream nodes
//! ([`Formation::add_node_as`]), mixed freely with ours.

use crate::cluster::free_port;
use crate::netns::{Host, Lan};
use std::fs;
use std::os::unix::fs::chown;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio_postgres::Client;

/// The `pg_autoctl` under test.
pub fn binary() -> PathBuf {
    crate::cluster::built_binary("pg_autoctl", "PGAF_AUTOCTL")
}

/// uid and gid of the `postgres` user when running as root.
pub fn postgres_ids() -> Option<(u32, u32)> {
    // SAFETY: plain libc calls; getpwnam's static result is read at once.
    unsafe {
        if libc::geteuid() != 0 {
            return None;
        }
        let pw = libc::getpwnam(c"postgres".as_ptr());
        assert!(
            !pw.is_null(),
            "running as root but there is no `postgres` user"
        );
        Some(((*pw).pw_uid, (*pw).pw_gid))
    }
}

/// A finished command for an assertion message: its exit code, stdout
/// and stderr.
pub fn describe(o: &Output) -> String {
    format!(
        "exit {:?}\n--- stdout\n{}\n--- stderr\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Hand `path` to the `postgres` user (the services run as it).
pub fn give_to_postgres(path: &Path) {
    if let Some((uid, gid)) = postgres_ids() {
        chown(path, Some(uid), Some(gid)).expect("chown to postgres");
    }
}

/// Send `sig` to `pid`.
pub fn signal(pid: i32, sig: i32) {
    if pid > 0 {
        // SAFETY: signalling a process we started (or its postmaster).
        unsafe { libc::kill(pid, sig) };
    }
}

/// Whether `pid` runs (a zombie waiting to be reaped does not).
fn alive(pid: i32) -> bool {
    // SAFETY: signal 0 only checks that the process exists.
    if pid <= 0 || unsafe { libc::kill(pid, 0) } != 0 {
        return false;
    }
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // "pid (comm) S ...": the state follows the last ')'.
    !matches!(
        stat.rsplit_once(')')
            .map(|(_, rest)| rest.trim_start().chars().next()),
        Some(Some('Z' | 'X')) | None
    )
}

/// The processes of process group `pgid` whose command name is `comm`.
fn process_group_members(pgid: i32, comm: &str) -> Vec<i32> {
    let mut found = Vec::new();
    let Ok(dir) = fs::read_dir("/proc") else {
        return found;
    };
    for e in dir.flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let stat = fs::read_to_string(e.path().join("stat")).unwrap_or_default();
        // "pid (comm) state ppid pgrp ..."
        let Some((head, rest)) = stat.rsplit_once(')') else {
            continue;
        };
        let name = head.split_once('(').map(|(_, n)| n).unwrap_or("");
        let pgrp = rest
            .split_whitespace()
            .nth(2)
            .and_then(|s| s.parse::<i32>().ok());
        if name == comm && pgrp == Some(pgid) {
            found.push(pid);
        }
    }
    found
}

/// The postmaster PID recorded in `pgdata`.
pub fn postmaster_pid(pgdata: &Path) -> Option<i32> {
    fs::read_to_string(pgdata.join("postmaster.pid"))
        .ok()?
        .lines()
        .next()?
        .trim()
        .parse()
        .ok()
}

/// Which `pg_autoctl` runs a service.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flavor {
    /// Ours (`PGAF_AUTOCTL` or `target/<profile>/pg_autoctl`); a monitor
    /// runs our extension from the system PostgreSQL.
    Ours,
    /// Debian's pg_auto_failover 2.0 from `scripts/upstream.sh`; a monitor
    /// runs upstream's extension from the private PostgreSQL tree.
    Upstream,
}

/// One `pg_autoctl` service (monitor or node).
pub struct Service {
    pub name: String,
    /// Where it is reached: 127.0.0.1, or its host's address on a LAN.
    pub addr: String,
    /// Its host, when the formation lives on a virtual LAN.
    pub host: Option<Host>,
    pub port: u16,
    pub pgdata: PathBuf,
    pub log: PathBuf,
    pub flavor: Flavor,
    child: Option<Child>,
}

impl Service {
    /// A node that exists on disk but does not run (start it with
    /// [`Formation::restart`]).
    pub fn stopped(name: &str, port: u16, pgdata: PathBuf, log: PathBuf) -> Service {
        Service {
            name: name.into(),
            addr: "127.0.0.1".into(),
            host: None,
            port,
            pgdata,
            log,
            flavor: Flavor::Ours,
            child: None,
        }
    }

    /// The `pg_autoctl` process id, while it runs.
    pub fn pid(&self) -> Option<i32> {
        self.child.as_ref().and_then(|c| i32::try_from(c.id()).ok())
    }

    pub fn running(&mut self) -> bool {
        match self.child.as_mut() {
            Some(c) => matches!(c.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// Host loss: SIGKILL to `pg_autoctl` and to the postmaster (and, for
    /// upstream, to the service processes of its `pg_autoctl`).
    pub fn kill9(&mut self) {
        let pm = postmaster_pid(&self.pgdata);
        if let Some(mut child) = self.child.take() {
            self.kill_group(&child);
            let _ = child.kill();
            let _ = child.wait();
        }
        if let Some(pm) = pm {
            signal(pm, libc::SIGKILL);
            let deadline = Instant::now() + Duration::from_secs(10);
            while alive(pm) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(10));
            }
        }
    }

    /// SIGKILL to `pg_autoctl` only (for upstream, every `pg_autoctl`
    /// process of its group: the keeper's services, not Postgres). Ours
    /// takes its Postgres with it.
    pub fn kill_keeper(&mut self) {
        if let Some(mut child) = self.child.take() {
            self.signal_keeper(&child, libc::SIGKILL);
            let _ = child.wait();
        }
    }

    /// SIGSTOP (`true`) or SIGCONT (`false`) to `pg_autoctl` (for
    /// upstream, every `pg_autoctl` process of its group) while Postgres
    /// runs on.
    pub fn pause_keeper(&mut self, pause: bool) {
        let sig = if pause { libc::SIGSTOP } else { libc::SIGCONT };
        if let Some(child) = self.child.as_ref() {
            self.signal_keeper(child, sig);
        }
    }

    fn signal_keeper(&self, child: &Child, sig: i32) {
        let Ok(pid) = i32::try_from(child.id()) else {
            return;
        };
        signal(pid, sig);
        if self.flavor == Flavor::Upstream {
            for p in process_group_members(pid, "pg_autoctl") {
                signal(p, sig);
            }
        }
    }

    /// SIGTERM, then SIGKILL after `limit`. Returns the exit code.
    pub fn stop(&mut self, limit: Duration) -> Option<i32> {
        let mut child = self.child.take()?;
        if let Ok(pid) = i32::try_from(child.id()) {
            signal(pid, libc::SIGTERM);
        }
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = child.try_wait() {
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.kill_group(&child);
        let _ = child.kill();
        let _ = child.wait();
        // A postmaster left behind would hold the port.
        if let Some(pm) = postmaster_pid(&self.pgdata) {
            signal(pm, libc::SIGKILL);
        }
        None
    }

    /// Upstream's `pg_autoctl` runs its services as child processes in the
    /// process group it leads (see [`crate::upstream::command`]): SIGKILL
    /// to all of them. Ours is a single process: nothing to do.
    fn kill_group(&self, child: &Child) {
        if self.flavor == Flavor::Upstream {
            if let Ok(pgid) = i32::try_from(child.id()) {
                // SAFETY: signalling the process group of a process we
                // started, which it leads (pgid = its pid, not yet reaped).
                unsafe { libc::kill(-pgid, libc::SIGKILL) };
            }
        }
    }

    /// The last `n` lines of the service's log.
    pub fn log_tail(&self, n: usize) -> String {
        let text = fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }

    pub fn log_text(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }
}

/// A node as the monitor reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeState {
    pub name: String,
    pub id: i64,
    pub port: i32,
    pub reported: String,
    pub assigned: String,
    pub health: i32,
    pub lsn: String,
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// A monitor and its nodes.
pub struct Formation {
    pub dir: PathBuf,
    /// The virtual LAN every service lives on, each on a host of its own
    /// ([`Formation::on_lan`]), or `None`: everything on 127.0.0.1. It is
    /// deleted after `Drop` stopped every service.
    pub lan: Option<Lan>,
    /// When set, each node added afterwards gets a file system of its own
    /// of that many MiB (a tmpfs, so that a test can fill it), with PGDATA
    /// in it. Unmounted when the formation is dropped.
    pub disk_mb: Option<u64>,
    mounts: Vec<PathBuf>,
    /// Keep the directory (logs included) when dropped, as
    /// `PGAF_KEEP_CLUSTERS` does for every formation.
    pub keep: bool,
    pub monitor: Service,
    pub monitor_uri: String,
    pub nodes: Vec<Service>,
    /// Made with `--ssl-self-signed` (HBA rules `hostssl`) instead of
    /// `--no-ssl`.
    pub ssl: bool,
    /// Run our `pg_autoctl` with `PG_AUTOCTL_DEBUG` set: the `do`
    /// commands exist.
    pub debug: bool,
    /// Extra environment of the monitor's `pg_autoctl` (and so of its
    /// Postgres), for example a slow disk ([`crate::slowdisk`]).
    pub monitor_env: Vec<(String, String)>,
}

impl Formation {
    /// A directory for this test, and a monitor running in it.
    pub async fn with_monitor() -> Formation {
        Formation::with_monitor_as(Flavor::Ours).await
    }

    /// A directory for this test, and a monitor run by `flavor`'s
    /// `pg_autoctl` with that implementation's extension.
    pub async fn with_monitor_as(flavor: Flavor) -> Formation {
        Formation::create(flavor, false).await
    }

    /// A monitor and, later, nodes made with `--ssl-self-signed`: every
    /// connection (keepers to the monitor, replication, clients) is TLS.
    pub async fn with_ssl_monitor() -> Formation {
        Formation::create(Flavor::Ours, true).await
    }

    /// A monitor on a host of its own on a new virtual LAN
    /// ([`crate::netns`]); nodes added later get a host each. Every
    /// service listens on port 5432 of its own address, without a Unix
    /// socket (`PG_REGRESS_SOCK_DIR=""`), as on separate machines.
    pub async fn on_lan(flavor: Flavor) -> Formation {
        let lan = Lan::new().unwrap_or_else(|e| panic!("cannot build the virtual LAN: {e}"));
        Formation::create_in(flavor, false, Some(lan), Vec::new()).await
    }

    async fn create(flavor: Flavor, ssl: bool) -> Formation {
        Formation::create_in(flavor, ssl, None, Vec::new()).await
    }

    /// A monitor (ours) whose `pg_autoctl` and Postgres run with `env`
    /// added to their environment.
    pub async fn with_monitor_env(env: Vec<(String, String)>) -> Formation {
        Formation::create_in(Flavor::Ours, false, None, env).await
    }

    async fn create_in(
        flavor: Flavor,
        ssl: bool,
        lan: Option<Lan>,
        monitor_env: Vec<(String, String)>,
    ) -> Formation {
        let mut extra: Vec<String> = Vec::new();
        match flavor {
            Flavor::Ours => crate::cluster::require_installation(),
            Flavor::Upstream => {
                let pg_ctl = crate::upstream::upstream().pg_ctl();
                extra = vec!["--pgctl".into(), pg_ctl.display().to_string()];
            }
        }
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let dir = std::env::temp_dir().join(format!("pgaf-it-{}-{}", std::process::id(), n));
        let _ = fs::remove_dir_all(&dir);
        for sub in ["", "xdg", "xdg/config", "xdg/data", "xdg/run", "home"] {
            let p = dir.join(sub);
            fs::create_dir_all(&p).expect("create test directory");
            give_to_postgres(&p);
        }
        let mut f = Formation {
            monitor_uri: String::new(),
            monitor: Service::stopped("monitor", 0, dir.join("monitor"), dir.join("monitor.log")),
            nodes: Vec::new(),
            dir,
            lan,
            disk_mb: None,
            mounts: Vec::new(),
            keep: false,
            ssl,
            debug: false,
            monitor_env,
        };
        f.start_monitor(flavor, "monitor", extra).await;
        f
    }

    /// Create and run a monitor named `name` (its host on the LAN, its
    /// PGDATA and log in the test's directory); it becomes the formation's
    /// monitor. Waits until the keepers' role can call its API.
    async fn start_monitor(&mut self, flavor: Flavor, name: &str, extra: Vec<String>) {
        let host = self.lan.as_ref().map(|l| {
            l.add_host(name)
                .unwrap_or_else(|e| panic!("cannot add the monitor's host: {e}"))
        });
        let (addr, port, listen) = placement(flavor, host.as_ref());
        let pgdata = self.dir.join(name);
        self.monitor_uri = format!(
            "postgres://autoctl_node@{addr}:{port}/pg_auto_failover?sslmode={}",
            if self.ssl { "require" } else { "prefer" }
        );
        self.monitor = Service {
            name: name.into(),
            addr: addr.clone(),
            host,
            port,
            log: self.dir.join(format!("{name}.log")),
            pgdata: pgdata.clone(),
            flavor,
            child: None,
        };
        let mut args: Vec<String> = [
            "create",
            "monitor",
            "--pgdata",
            &pgdata.display().to_string(),
            "--pgport",
            &port.to_string(),
            "--hostname",
            &addr,
            "--listen",
            &listen,
            "--auth",
            "trust",
            ssl_flag(self.ssl),
            "--run",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        args.extend(extra);
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.monitor.log)
            .expect("open the monitor's log");
        let err = log.try_clone().expect("clone log handle");
        let mut command = self.command_as(flavor, &args, self.monitor.host.as_ref());
        command.envs(self.monitor_env.iter().map(|(k, v)| (k, v)));
        self.monitor.child = Some(
            command
                .stdout(log)
                .stderr(err)
                .spawn()
                .expect("start the monitor's pg_autoctl"),
        );
        // Ready once the keepers' role can call the API.
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(c) = self.try_monitor_client().await {
                if c.query_one("SELECT count(*) FROM pgautofailover.formation", &[])
                    .await
                    .is_ok()
                {
                    break;
                }
            }
            assert!(
                self.monitor.running(),
                "the monitor exited:\n{}",
                self.monitor.log_tail(30)
            );
            assert!(
                Instant::now() < deadline,
                "the monitor is not ready after 60 s:\n{}",
                self.monitor.log_tail(30)
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// A monitor lost for good: stop the current one (kill -9, as a host
    /// that is gone) and create a new one, named `name`, which becomes the
    /// formation's monitor ([`Formation::monitor_uri`] changes).
    pub async fn replace_monitor(&mut self, name: &str) {
        self.monitor.kill9();
        self.monitor.stop(Duration::from_secs(30));
        let old = std::mem::replace(
            &mut self.monitor,
            Service::stopped(name, 0, PathBuf::new(), PathBuf::new()),
        );
        let _ = fs::remove_dir_all(&old.pgdata);
        self.start_monitor(Flavor::Ours, name, Vec::new()).await;
    }

    /// The environment every `pg_autoctl` of this test gets.
    pub fn env(&self) -> Vec<(&'static str, PathBuf)> {
        vec![
            ("XDG_CONFIG_HOME", self.dir.join("xdg/config")),
            ("XDG_DATA_HOME", self.dir.join("xdg/data")),
            ("XDG_RUNTIME_DIR", self.dir.join("xdg/run")),
        ]
    }

    /// `flavor`'s `pg_autoctl args`, on `host` when given (as on a machine
    /// of its own: no Unix socket, local connections over TCP).
    fn command_as(&self, flavor: Flavor, args: &[String], host: Option<&Host>) -> Command {
        let mut c = match flavor {
            Flavor::Ours => {
                let mut c = Command::new(binary());
                c.args(args)
                    .stdin(Stdio::null())
                    .env_remove("PGDATA")
                    .env_remove("PG_AUTOCTL_MONITOR");
                if self.debug {
                    c.env("PG_AUTOCTL_DEBUG", "1");
                } else {
                    c.env_remove("PG_AUTOCTL_DEBUG");
                }
                if let Some(h) = host {
                    h.enter(&mut c, None);
                }
                c
            }
            Flavor::Upstream => {
                let mut c = crate::upstream::command(args, &self.dir.join("home"), host);
                if self.debug {
                    c.env("PG_AUTOCTL_DEBUG", "1");
                } else {
                    c.env_remove("PG_AUTOCTL_DEBUG");
                }
                c
            }
        };
        for (k, v) in self.env() {
            c.env(k, v);
        }
        if host.is_some() {
            c.env("PG_REGRESS_SOCK_DIR", "");
        }
        c
    }

    fn spawn_as(&self, flavor: Flavor, args: &[String], log: &Path, host: Option<&Host>) -> Child {
        let out = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .expect("open log");
        let err = out.try_clone().expect("clone log handle");
        self.command_as(flavor, args, host)
            .stdout(out)
            .stderr(err)
            .spawn()
            .expect("start pg_autoctl")
    }

    /// Run `pg_autoctl args` to completion (60 s at most).
    pub fn autoctl(&self, args: &[&str]) -> Output {
        self.autoctl_as(Flavor::Ours, args)
    }

    /// Run `flavor`'s `pg_autoctl args` to completion (60 s at most).
    pub fn autoctl_as(&self, flavor: Flavor, args: &[&str]) -> Output {
        self.run_autoctl(flavor, args, None)
    }

    /// Run `pg_autoctl args` on the host of service `name` (the monitor
    /// or a node; 60 s at most): commands that reach its Postgres
    /// locally. Without a LAN, the same as [`autoctl`](Self::autoctl).
    pub fn autoctl_on(&self, name: &str, args: &[&str]) -> Output {
        let host = if name == self.monitor.name {
            self.monitor.host.clone()
        } else {
            self.nodes
                .iter()
                .find(|n| n.name == name)
                .unwrap_or_else(|| panic!("no node {name}"))
                .host
                .clone()
        };
        self.run_autoctl(Flavor::Ours, args, host.as_ref())
    }

    fn run_autoctl(&self, flavor: Flavor, args: &[&str], host: Option<&Host>) -> Output {
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        let mut child = self
            .command_as(flavor, &args, host)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run pg_autoctl");
        // Drain the pipes on threads so that a chatty command cannot block.
        let mut so = child.stdout.take().expect("stdout");
        let mut se = child.stderr.take().expect("stderr");
        let t_out = std::thread::spawn(move || {
            let mut v = Vec::new();
            let _ = std::io::Read::read_to_end(&mut so, &mut v);
            v
        });
        let t_err = std::thread::spawn(move || {
            let mut v = Vec::new();
            let _ = std::io::Read::read_to_end(&mut se, &mut v);
            v
        });
        let deadline = Instant::now() + Duration::from_secs(60);
        let status = loop {
            if let Ok(Some(s)) = child.try_wait() {
                break s;
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                panic!("pg_autoctl {} did not finish within 60 s", args.join(" "));
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        Output {
            status,
            stdout: t_out.join().unwrap_or_default(),
            stderr: t_err.join().unwrap_or_default(),
        }
    }

    /// Start `pg_autoctl create postgres --run` for a new node named `name`
    /// (does not wait). Returns its index.
    pub fn add_node(&mut self, name: &str, extra: &[&str]) -> usize {
        self.add_node_as(Flavor::Ours, name, extra)
    }

    /// Start `flavor`'s `pg_autoctl create postgres --run` for a new node
    /// named `name` (does not wait). Returns its index. Upstream nodes run
    /// the private PostgreSQL tree's binaries (the same as the system's).
    pub fn add_node_as(&mut self, flavor: Flavor, name: &str, extra: &[&str]) -> usize {
        let monitor = vec!["--monitor".to_string(), self.monitor_uri.clone()];
        self.spawn_node(flavor, name, monitor, extra, None)
    }

    /// Start `pg_autoctl create postgres --run` for a node named `name`
    /// whose PGDATA is `pgdata` (an existing cluster to adopt).
    pub fn add_node_at(&mut self, name: &str, pgdata: PathBuf, extra: &[&str]) -> usize {
        let monitor = vec!["--monitor".to_string(), self.monitor_uri.clone()];
        self.spawn_node(Flavor::Ours, name, monitor, extra, Some(pgdata))
    }

    /// Start `pg_autoctl create postgres --disable-monitor --node-id <id>
    /// --run` for a new node named `name`: it waits in state `init` for
    /// `pg_autoctl do fsm assign`. Returns its index.
    pub fn add_node_without_monitor(&mut self, name: &str, node_id: i64) -> usize {
        let args = vec![
            "--disable-monitor".to_string(),
            "--node-id".to_string(),
            node_id.to_string(),
        ];
        self.spawn_node(Flavor::Ours, name, args, &[], None)
    }

    fn spawn_node(
        &mut self,
        flavor: Flavor,
        name: &str,
        monitor: Vec<String>,
        extra: &[&str],
        pgdata: Option<PathBuf>,
    ) -> usize {
        let host = self.lan.as_ref().map(|l| {
            l.add_host(name)
                .unwrap_or_else(|e| panic!("cannot add host {name}: {e}"))
        });
        let (addr, port, listen) = placement(flavor, host.as_ref());
        let pgdata = match (pgdata, self.disk_mb) {
            (Some(p), _) => p,
            (None, Some(mb)) => {
                let mnt = self.dir.join(format!("{name}.disk"));
                fs::create_dir_all(&mnt).expect("create the mount point");
                let out = Command::new("mount")
                    .args([
                        "-t",
                        "tmpfs",
                        "-o",
                        &format!("size={mb}m,mode=0755"),
                        "tmpfs",
                    ])
                    .arg(&mnt)
                    .output()
                    .expect("run mount");
                assert!(
                    out.status.success(),
                    "mount a tmpfs on {}: {}",
                    mnt.display(),
                    String::from_utf8_lossy(&out.stderr)
                );
                give_to_postgres(&mnt);
                self.mounts.push(mnt.clone());
                mnt.join("pgdata")
            }
            (None, None) => self.dir.join(name),
        };
        let mut args: Vec<String> = [
            "create",
            "postgres",
            "--pgdata",
            &pgdata.display().to_string(),
            "--pgport",
            &port.to_string(),
            "--hostname",
            &addr,
            "--listen",
            &listen,
            "--auth",
            "trust",
            ssl_flag(self.ssl),
            "--name",
            name,
            "--run",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        args.extend(monitor);
        args.extend(extra.iter().map(|s| s.to_string()));
        if flavor == Flavor::Upstream {
            let pg_ctl = crate::upstream::upstream().pg_ctl();
            args.extend(["--pgctl".to_string(), pg_ctl.display().to_string()]);
        }
        let log = self.dir.join(format!("{name}.log"));
        let child = self.spawn_as(flavor, &args, &log, host.as_ref());
        self.nodes.push(Service {
            name: name.into(),
            addr,
            host,
            port,
            pgdata,
            log,
            flavor,
            child: Some(child),
        });
        self.nodes.len() - 1
    }

    pub fn node(&mut self, name: &str) -> &mut Service {
        self.nodes
            .iter_mut()
            .find(|n| n.name == name)
            .unwrap_or_else(|| panic!("no node {name}"))
    }

    /// Start `pg_autoctl run` again for the stopped monitor.
    pub fn restart_monitor(&mut self) {
        assert!(self.monitor.child.is_none(), "the monitor is still running");
        let args = vec![
            "run".to_string(),
            "--pgdata".to_string(),
            self.monitor.pgdata.display().to_string(),
        ];
        let child = self.spawn_as(
            self.monitor.flavor,
            &args,
            &self.monitor.log,
            self.monitor.host.as_ref(),
        );
        self.monitor.child = Some(child);
    }

    /// Start `pg_autoctl run` again for a stopped node.
    pub fn restart(&mut self, name: &str) {
        let (pgdata, log, flavor, host) = {
            let n = self.node(name);
            assert!(n.child.is_none(), "{name} is still running");
            (n.pgdata.clone(), n.log.clone(), n.flavor, n.host.clone())
        };
        let args = vec![
            "run".to_string(),
            "--pgdata".to_string(),
            pgdata.display().to_string(),
        ];
        let child = self.spawn_as(flavor, &args, &log, host.as_ref());
        self.node(name).child = Some(child);
    }

    async fn try_monitor_client(&self) -> Result<Client, tokio_postgres::Error> {
        let mut cfg: tokio_postgres::Config = format!(
            "host={} port={} user=autoctl_node dbname=pg_auto_failover connect_timeout=5",
            self.monitor.addr, self.monitor.port
        )
        .parse()?;
        cfg.options("-c statement_timeout=30s");
        let (client, conn) = cfg.connect(tls_prefer()).await?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok(client)
    }

    /// A client of the monitor, as `autoctl_node`, if it answers.
    pub async fn monitor_client_opt(&self) -> Option<Client> {
        self.try_monitor_client().await.ok()
    }

    /// A client of the monitor, as `autoctl_node`.
    pub async fn monitor_client(&self) -> Client {
        self.try_monitor_client()
            .await
            .expect("connect to the monitor")
    }

    /// The monitor's view of the formation.
    pub async fn states(&self) -> Vec<NodeState> {
        let c = match self.try_monitor_client().await {
            Ok(c) => c,
            Err(_) => return Vec::new(),
        };
        let rows = c
            .query(
                "SELECT nodename::text, node_id::bigint, nodeport::int, current_group_state::text,
                        assigned_group_state::text, health::int, reported_lsn::text
                   FROM pgautofailover.current_state('default') ORDER BY node_id",
                &[],
            )
            .await
            .unwrap_or_default();
        rows.iter()
            .map(|r| NodeState {
                name: r.get(0),
                id: r.get(1),
                port: r.get(2),
                reported: r.get(3),
                assigned: r.get(4),
                health: r.get(5),
                lsn: r.get(6),
            })
            .collect()
    }

    /// Wait until every `(name, state)` holds (reported = assigned = state).
    /// Returns how long it took.
    pub async fn wait_states(&mut self, want: &[(&str, &str)], limit: Duration) -> Duration {
        let start = Instant::now();
        let deadline = start + limit;
        loop {
            let states = self.states().await;
            let ok = want.iter().all(|(name, st)| {
                states
                    .iter()
                    .any(|s| s.name == *name && s.reported == *st && s.assigned == *st)
            });
            if ok {
                return start.elapsed();
            }
            if Instant::now() >= deadline {
                panic!(
                    "timed out after {limit:?} waiting for {want:?}; the monitor says {states:#?}"
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The multi-host URI of the formation, as libpq and tokio-postgres
    /// take it.
    pub fn uri(&self, dbname: &str) -> String {
        let hosts: Vec<String> = self
            .nodes
            .iter()
            .map(|n| format!("{}:{}", n.addr, n.port))
            .collect();
        format!(
            "postgres://postgres@{}/{dbname}?target_session_attrs=read-write&connect_timeout=2",
            hosts.join(",")
        )
    }

    /// A client of node `name`'s Postgres, as `postgres` (retried for 30 s
    /// while Postgres starts).
    pub async fn node_client(&mut self, name: &str) -> Client {
        let (addr, port) = {
            let n = self.node(name);
            (n.addr.clone(), n.port)
        };
        let conninfo =
            format!("host={addr} port={port} user=postgres dbname=postgres connect_timeout=5");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            match pg_connect(&conninfo).await {
                Ok((client, conn)) => {
                    tokio::spawn(async move {
                        let _ = conn.await;
                    });
                    return client;
                }
                Err(e) if Instant::now() >= deadline => {
                    panic!("connect to {name} (port {port}): {e}")
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
    }

    /// Let the test's clients (the LAN's gateway) reach node `name`'s
    /// Postgres as any user: a `host all all <LAN> trust` line in its
    /// pg_hba.conf, then SIGHUP to its postmaster. Do it on the first node
    /// before the others join: base backups copy the file. Without a LAN,
    /// nothing to do (initdb's rules already allow 127.0.0.1).
    pub fn allow_clients(&mut self, name: &str) {
        let Some(cidr) = self.lan.as_ref().map(|l| l.cidr()) else {
            return;
        };
        let pgdata = self.node(name).pgdata.clone();
        let path = pgdata.join("pg_hba.conf");
        let mut text = fs::read_to_string(&path).expect("read pg_hba.conf");
        let line = format!("host all all {cidr} trust # the test's clients");
        if !text.lines().any(|l| l == line) {
            if !text.ends_with('\n') {
                text.push('\n');
            }
            text.push_str(&line);
            text.push('\n');
            fs::write(&path, text).expect("write pg_hba.conf");
        }
        if let Some(pm) = postmaster_pid(&pgdata) {
            signal(pm, libc::SIGHUP);
        }
    }

    /// Print the end of every log (called when a test fails).
    pub fn dump_logs(&self) {
        eprintln!(
            "==== monitor ({}) ====\n{}",
            self.monitor.log.display(),
            self.monitor.log_tail(40)
        );
        for n in &self.nodes {
            eprintln!(
                "==== {} ({}) ====\n{}",
                n.name,
                n.log.display(),
                n.log_tail(80)
            );
        }
    }
}

impl Drop for Formation {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.dump_logs();
        }
        for n in &mut self.nodes {
            n.stop(Duration::from_secs(30));
        }
        self.monitor.stop(Duration::from_secs(30));
        let keep = self.keep || std::env::var_os("PGAF_KEEP_CLUSTERS").is_some();
        for m in &self.mounts {
            if keep {
                // PGDATA goes with its file system: keep Postgres's logs.
                let to = m.with_extension("pglog");
                let _ = Command::new("cp")
                    .arg("-r")
                    .arg(m.join("pgdata/log"))
                    .arg(&to)
                    .output();
            }
            let _ = Command::new("umount").arg("--lazy").arg(m).output();
        }
        if !keep && !std::thread::panicking() {
            let _ = fs::remove_dir_all(&self.dir);
        }
    }
}

/// Address, port and `--listen` of a service: a free port on 127.0.0.1,
/// or port 5432 on the address of its own host (which has no Unix
/// socket: pg_autoctl reaches its Postgres over TCP on that address).
/// Where a service of `flavor` listens: its host's address and port 5432
/// on a LAN, a free port on 127.0.0.1 otherwise. Upstream's `pg_autoctl`
/// on a host without a Unix socket reaches its own Postgres at
/// `localhost` (see [`crate::upstream::command`]), so there it listens on
/// every address of its host, the host's loopback included.
fn placement(flavor: Flavor, host: Option<&Host>) -> (String, u16, String) {
    match host {
        Some(h) if flavor == Flavor::Upstream => (h.addr.to_string(), 5432, "*".into()),
        Some(h) => (h.addr.to_string(), 5432, h.addr.to_string()),
        None => ("127.0.0.1".into(), free_port(), "127.0.0.1".into()),
    }
}

fn ssl_flag(ssl: bool) -> &'static str {
    if ssl {
        "--ssl-self-signed"
    } else {
        "--no-ssl"
    }
}

/// TLS when the server offers it, as libpq's default `sslmode=prefer`: the
/// same clients work with `--no-ssl` and `--ssl-self-signed` clusters.
fn tls_prefer() -> pgaf_pgconn::MakeRustls {
    pgaf_pgconn::parse("host=127.0.0.1 sslmode=prefer")
        .and_then(|t| t.tls())
        .expect("a TLS client configuration")
}

/// `tokio_postgres::connect` with TLS when the server offers it (the
/// string's `sslmode` is libpq's: `prefer` by default).
pub async fn pg_connect(
    conninfo: &str,
) -> Result<(Client, pgaf_pgconn::Conn), tokio_postgres::Error> {
    let target = pgaf_pgconn::parse(conninfo).expect("a valid test connection string");
    let tls = target.tls().expect("a TLS client configuration");
    target.config.connect(tls).await
}

/// Writes through the multi-host URI, one row per transaction, for as long
/// as it runs; remembers every id whose COMMIT was acknowledged, and when.
pub struct Writer {
    stop: Arc<std::sync::atomic::AtomicBool>,
    acked: Arc<Mutex<Vec<(i64, Instant)>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Writer {
    /// Create table `pgaf_writes` through `uri` and start writing.
    pub async fn start(uri: String) -> Writer {
        let (c, conn) = pg_connect(&uri).await.expect("connect through the URI");
        tokio::spawn(async move {
            let _ = conn.await;
        });
        c.batch_execute("CREATE TABLE IF NOT EXISTS pgaf_writes (id bigint PRIMARY KEY, at timestamptz DEFAULT now())")
            .await
            .expect("create the table");
        drop(c);
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let acked = Arc::new(Mutex::new(Vec::new()));
        let (s, a) = (stop.clone(), acked.clone());
        let task = tokio::spawn(async move {
            let mut next = 1i64;
            let mut client: Option<Client> = None;
            while !s.load(Ordering::SeqCst) {
                if client.as_ref().is_none_or(|c| c.is_closed()) {
                    match tokio::time::timeout(Duration::from_secs(3), pg_connect(&uri)).await {
                        Ok(Ok((c, conn))) => {
                            tokio::spawn(async move {
                                let _ = conn.await;
                            });
                            client = Some(c);
                        }
                        _ => {
                            tokio::time::sleep(Duration::from_millis(20)).await;
                            continue;
                        }
                    }
                }
                let Some(c) = client.as_ref() else { continue };
                let id = next;
                let params: [&(dyn tokio_postgres::types::ToSql + Sync); 1] = [&id];
                let insert = c.execute("INSERT INTO pgaf_writes (id) VALUES ($1)", &params);
                match tokio::time::timeout(Duration::from_secs(5), insert).await {
                    Ok(Ok(_)) => {
                        let at = Instant::now();
                        if let Ok(mut v) = a.lock() {
                            v.push((next, at));
                        }
                        next += 1;
                    }
                    Ok(Err(e))
                        if e.code() == Some(&tokio_postgres::error::SqlState::UNIQUE_VIOLATION) =>
                    {
                        // The previous attempt committed but its reply was lost.
                        next += 1;
                    }
                    _ => {
                        client = None;
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        });
        Writer { stop, acked, task }
    }

    /// How many writes were acknowledged so far.
    pub fn acked(&self) -> usize {
        self.acked.lock().map(|v| v.len()).unwrap_or(0)
    }

    /// Wait for the next acknowledged write; returns how long it took.
    pub async fn wait_ack(&self, limit: Duration) -> Duration {
        self.wait_ack_since(Instant::now(), limit).await
    }

    /// Wait for the next acknowledged write; returns the time from `start`.
    pub async fn wait_ack_since(&self, start: Instant, limit: Duration) -> Duration {
        let before = self.acked();
        while self.acked() == before {
            assert!(
                start.elapsed() < limit,
                "no write was acknowledged within {limit:?}"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        start.elapsed()
    }

    /// When the last write so far was acknowledged.
    pub fn last_ack(&self) -> Option<Instant> {
        self.acked
            .lock()
            .ok()
            .and_then(|v| v.last().map(|(_, at)| *at))
    }

    /// When each write so far was acknowledged, in order.
    pub fn ack_times(&self) -> Vec<Instant> {
        self.acked
            .lock()
            .map(|v| v.iter().map(|(_, at)| *at).collect())
            .unwrap_or_default()
    }

    /// Stop and return every acknowledged id.
    pub async fn stop(self) -> Vec<i64> {
        self.stop.store(true, Ordering::SeqCst);
        let _ = tokio::time::timeout(Duration::from_secs(15), self.task).await;
        self.acked
            .lock()
            .map(|v| v.iter().map(|(id, _)| *id).collect())
            .unwrap_or_default()
    }
}

/// Check that every acknowledged id is in `pgaf_writes` on `client`.
pub async fn assert_all_present(client: &Client, acked: &[i64]) {
    let rows = client
        .query("SELECT id FROM pgaf_writes", &[])
        .await
        .expect("read pgaf_writes");
    let present: std::collections::HashSet<i64> = rows.iter().map(|r| r.get(0)).collect();
    let missing: Vec<i64> = acked
        .iter()
        .copied()
        .filter(|id| !present.contains(id))
        .collect();
    assert!(
        missing.is_empty(),
        "{} acknowledged writes are missing: {:?}",
        missing.len(),
        &missing[..missing.len().min(20)]
    );
}

/// On a standby: wait (30 s at most) until it has replayed the last of
/// `acked`, then [`assert_all_present`].
pub async fn assert_all_replayed(standby: &Client, acked: &[i64]) {
    if let Some(&last) = acked.last() {
        crate::wait::until(
            "the standby to replay the last write",
            Duration::from_secs(30),
            Duration::from_millis(50),
            || async move {
                let n: i64 = standby
                    .query_one("SELECT count(*) FROM pgaf_writes WHERE id = $1", &[&last])
                    .await
                    .ok()?
                    .get(0);
                (n == 1).then_some(())
            },
        )
        .await;
    }
    assert_all_present(standby, acked).await;
}
