//! A temporary Postgres cluster for one test: initdb as the `postgres` user
//! (Postgres refuses to run as root) in a fresh directory under /tmp, on a
//! free 127.0.0.1 port, with `shared_preload_libraries = pgautofailover`;
//! database `pg_auto_failover` and the extension are created. Dropping the
//! cluster stops Postgres by its PID (fast shutdown, then SIGKILL) and
//! removes the directory.
//!
//! Postgres binaries come from `PGAF_PG_BIN` (default
//! `/usr/lib/postgresql/15/bin`). A missing binary or a missing extension
//! fails the test with a message saying how to install it.

use std::fs;
use std::io::Write;
use std::net::TcpListener;
use std::os::unix::fs::chown;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};
use tokio_postgres::{Client, NoTls};

/// Settings for deterministic scenario tests: no background evaluation, no
/// health checks, no startup grace period.
pub const QUIET: &[(&str, &str)] = &[
    ("pgautofailover.evaluation_period", "'1h'"),
    ("pgautofailover.enable_health_checks", "off"),
    ("pgautofailover.startup_grace_period", "1"),
];

/// Where the Postgres binaries are.
pub fn pg_bin() -> PathBuf {
    std::env::var_os("PGAF_PG_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/lib/postgresql/15/bin"))
}

/// A free TCP port on 127.0.0.1 (bound then released).
pub fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    l.local_addr().expect("local address").port()
}

/// uid and gid of the `postgres` user, when running as root.
fn postgres_ids() -> Option<(u32, u32)> {
    // SAFETY: plain libc calls; getpwnam returns static storage read at once.
    unsafe {
        if libc::geteuid() != 0 {
            return None;
        }
        let pw = libc::getpwnam(c"postgres".as_ptr());
        assert!(
            !pw.is_null(),
            "running as root but there is no `postgres` user to run Postgres as"
        );
        Some(((*pw).pw_uid, (*pw).pw_gid))
    }
}

fn command(path: &Path) -> Command {
    let mut c = Command::new(path);
    if let Some((uid, gid)) = postgres_ids() {
        c.uid(uid).gid(gid);
    }
    // Keep error messages exact and logs readable.
    c.env_remove("RUST_BACKTRACE")
        .env_remove("RUST_LIB_BACKTRACE");
    c
}

/// Fail clearly when Postgres or the extension is not installed.
pub fn require_installation() {
    let bin = pg_bin();
    for tool in ["initdb", "postgres", "pg_config"] {
        assert!(
            bin.join(tool).exists(),
            "{} not found: install PostgreSQL or set PGAF_PG_BIN",
            bin.join(tool).display()
        );
    }
    let out = Command::new(bin.join("pg_config"))
        .args(["--sharedir", "--pkglibdir"])
        .output();
    let out = out.expect("run pg_config");
    let text = String::from_utf8_lossy(&out.stdout);
    let mut lines = text.lines();
    let share = lines.next().unwrap_or_default();
    let lib = lines.next().unwrap_or_default();
    let control = Path::new(share).join("extension/pgautofailover.control");
    let so = Path::new(lib).join("pgautofailover.so");
    assert!(
        control.exists() && so.exists(),
        "the pgautofailover extension is not installed ({} / {}): run monitor-ext/install.sh first",
        control.display(),
        so.display()
    );
}

/// A running temporary cluster.
pub struct Cluster {
    pub dir: PathBuf,
    pub port: u16,
    child: Option<Child>,
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

impl Cluster {
    /// A cluster with the monitor extension, plus `settings` appended to
    /// postgresql.conf.
    pub async fn monitor(settings: &[(&str, &str)]) -> Cluster {
        require_installation();
        let mut conf = vec![("shared_preload_libraries", "'pgautofailover'")];
        conf.extend_from_slice(settings);
        let c = Cluster::start(&conf);
        let admin = c.connect("postgres").await;
        admin
            .batch_execute("CREATE DATABASE pg_auto_failover")
            .await
            .expect("create database");
        let db = c.connect("pg_auto_failover").await;
        db.batch_execute("CREATE EXTENSION pgautofailover CASCADE")
            .await
            .expect("CREATE EXTENSION pgautofailover (is monitor-ext/install.sh up to date?)");
        c
    }

    /// A plain cluster (used as a node to health-check).
    pub fn start(settings: &[(&str, &str)]) -> Cluster {
        let bin = pg_bin();
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let dir = std::env::temp_dir().join(format!("pgaf-test-{}-{}", std::process::id(), n));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).expect("create cluster directory");
        if let Some((uid, gid)) = postgres_ids() {
            chown(&dir, Some(uid), Some(gid)).expect("chown cluster directory");
        }
        let data = dir.join("data");
        let status = command(&bin.join("initdb"))
            .args([
                "-D",
                &data.to_string_lossy(),
                "-A",
                "trust",
                "-U",
                "postgres",
                "--no-sync",
                "-E",
                "UTF8",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("run initdb");
        assert!(status.success(), "initdb failed in {}", dir.display());
        let port = free_port();
        let mut conf = fs::OpenOptions::new()
            .append(true)
            .open(data.join("postgresql.conf"))
            .expect("open postgresql.conf");
        let mut lines = vec![
            format!("port = {port}"),
            "listen_addresses = '127.0.0.1'".to_string(),
            format!("unix_socket_directories = '{}'", dir.display()),
            "fsync = off".to_string(),
            "log_min_messages = log".to_string(),
            // A bound on every query the tests send: a stuck monitor fails
            // the test instead of hanging it.
            "statement_timeout = '60s'".to_string(),
        ];
        lines.extend(settings.iter().map(|(k, v)| format!("{k} = {v}")));
        writeln!(conf, "{}", lines.join("\n")).expect("write postgresql.conf");
        let log = fs::File::create(dir.join("postgres.log")).expect("create log");
        if let Some((uid, gid)) = postgres_ids() {
            chown(dir.join("postgres.log"), Some(uid), Some(gid)).expect("chown log");
        }
        let child = command(&bin.join("postgres"))
            .args(["-D", &data.to_string_lossy()])
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("clone log handle"))
            .stderr(log)
            .spawn()
            .expect("start postgres");
        let mut c = Cluster {
            dir,
            port,
            child: Some(child),
        };
        c.wait_ready();
        c
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return;
            }
            if let Some(child) = self.child.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    panic!(
                        "postgres exited with {status} during startup; see {}",
                        self.log_path().display()
                    );
                }
            }
            assert!(
                Instant::now() < deadline,
                "postgres did not start within 30 s; see {}",
                self.log_path().display()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.join("postgres.log")
    }

    /// The server log so far.
    pub fn log(&self) -> String {
        fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    pub fn conninfo(&self, dbname: &str) -> String {
        format!(
            "host=127.0.0.1 port={} user=postgres dbname={dbname} connect_timeout=10",
            self.port
        )
    }

    /// A client connected to `dbname` as `postgres` (retried for 30 s while
    /// the server is starting up).
    pub async fn connect(&self, dbname: &str) -> Client {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            match tokio_postgres::connect(&self.conninfo(dbname), NoTls).await {
                Ok((client, conn)) => {
                    tokio::spawn(async move {
                        let _ = conn.await;
                    });
                    return client;
                }
                Err(e) if Instant::now() >= deadline => {
                    panic!(
                        "connect to {dbname} on port {}: {e:?}; see {}",
                        self.port,
                        self.log_path().display()
                    )
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
    }

    /// The postmaster's PID.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    /// Stop Postgres abruptly (SIGKILL), as a crash would.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Stop Postgres: fast shutdown, SIGKILL after 10 s.
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        if let Ok(pid) = i32::try_from(child.id()) {
            // SAFETY: signalling our own child process by its PID.
            unsafe { libc::kill(pid, libc::SIGINT) };
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.stop();
        if std::env::var_os("PGAF_KEEP_CLUSTERS").is_none() {
            let _ = fs::remove_dir_all(&self.dir);
        }
    }
}

/// The workspace binary `name` next to the running test (`cargo build
/// --bins` puts it in `target/<profile>/`), or the path in `env`.
pub fn built_binary(name: &str, env: &str) -> PathBuf {
    if let Some(p) = std::env::var_os(env) {
        return PathBuf::from(p);
    }
    let exe = std::env::current_exe().expect("current_exe");
    // target/<profile>/deps/<test> -> target/<profile>/<name>
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target directory");
    let bin = dir.join(name);
    assert!(
        bin.exists(),
        "{} not found: build it first (cargo build --bins) or set {env}",
        bin.display()
    );
    bin
}
