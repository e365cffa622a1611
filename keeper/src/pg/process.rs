//! The postmaster as a supervised child of the keeper.
//!
//! One long-lived thread owns the child process: it starts Postgres when it
//! should run (and restarts it when it dies), stops it (fast shutdown) when
//! it should not, kills it at once when the keeper fences it, and leaves it
//! alone when released to the operator (maintenance). The child gets
//! `PR_SET_PDEATHSIG = SIGQUIT` from that thread, so a keeper killed with
//! `kill -9` takes its Postgres down immediately instead of leaving a
//! writable primary nobody fences, and its own session, so a Ctrl-C aimed at
//! the keeper reaches Postgres only through the keeper.

use super::bin::PgBin;
use super::control::PostmasterPid;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// What the keeper wants from Postgres.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Want {
    /// Not decided yet: leave it as it is.
    Unknown,
    Running,
    /// Fast shutdown.
    Stopped,
    /// Immediate shutdown, now (fencing).
    Fenced,
    /// The operator owns it (maintenance): neither start nor stop it.
    Released,
}

/// What is known about the postmaster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    pub want: Want,
    pub pid: Option<i32>,
    pub ready: bool,
    /// Failed starts and crashes since it last ran steadily (accepted
    /// connections for [`STEADY`]): a Postgres that crashes again right
    /// after every start (a full disk) counts as failing too.
    pub failed_starts: u32,
    /// When it last stopped running while it should have been running.
    pub down_since: Option<Instant>,
    pub last_error: Option<String>,
}

struct Shared {
    status: Status,
    child: Option<Child>,
    next_start: Instant,
    /// When we began stopping it.
    stop_started: Option<Instant>,
    /// Since when it accepts connections.
    ready_since: Option<Instant>,
    shutdown: bool,
}

struct Inner {
    bin: PgBin,
    pgdata: PathBuf,
    shared: Mutex<Shared>,
    wake: Condvar,
}

/// Handle on the supervised postmaster.
#[derive(Clone)]
pub struct Postgres {
    inner: Arc<Inner>,
}

#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    #[error("Postgres did not start within {0:?}: {1}")]
    StartTimeout(Duration, String),
    #[error("Postgres did not stop within {0:?}")]
    StopTimeout(Duration),
    #[error("cannot start the Postgres supervisor thread: {0}")]
    Thread(std::io::Error),
}

const POLL: Duration = Duration::from_millis(100);
const RESTART_DELAY: Duration = Duration::from_millis(500);
/// How long Postgres must accept connections before its failures are
/// forgotten.
pub const STEADY: Duration = Duration::from_secs(30);
const FAST_STOP_GRACE: Duration = Duration::from_secs(30);

fn lock(inner: &Inner) -> MutexGuard<'_, Shared> {
    inner
        .shared
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Postgres {
    /// Start supervising `pgdata` (no action until told what to want).
    pub fn new(bin: PgBin, pgdata: &Path) -> Result<Postgres, ProcessError> {
        let inner = Arc::new(Inner {
            bin,
            pgdata: pgdata.to_path_buf(),
            shared: Mutex::new(Shared {
                status: Status {
                    want: Want::Unknown,
                    pid: None,
                    ready: false,
                    failed_starts: 0,
                    down_since: None,
                    last_error: None,
                },
                child: None,
                next_start: Instant::now(),
                stop_started: None,
                ready_since: None,
                shutdown: false,
            }),
            wake: Condvar::new(),
        });
        let thread_inner = inner.clone();
        std::thread::Builder::new()
            .name("postgres".into())
            .spawn(move || supervise(&thread_inner))
            .map_err(ProcessError::Thread)?;
        Ok(Postgres { inner })
    }

    pub fn pgdata(&self) -> &Path {
        &self.inner.pgdata
    }

    pub fn status(&self) -> Status {
        lock(&self.inner).status.clone()
    }

    pub fn set_want(&self, want: Want) {
        let mut s = lock(&self.inner);
        if s.status.want != want {
            tracing::debug!("postgres: want {want:?} (was {:?})", s.status.want);
            if want == Want::Running {
                s.next_start = Instant::now();
                // A start asked for anew forgets the failures of before.
                s.status.failed_starts = 0;
            }
            s.status.want = want;
        }
        drop(s);
        self.inner.wake.notify_all();
    }

    /// Kill Postgres at once (immediate shutdown). Safe to call from any
    /// thread, including the lease watchdog.
    pub fn fence(&self) {
        self.set_want(Want::Fenced);
    }

    /// Start Postgres if needed and wait until it accepts connections.
    pub async fn ensure_running(&self, timeout: Duration) -> Result<(), ProcessError> {
        self.set_want(Want::Running);
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let st = self.status();
            if st.ready {
                return Ok(());
            }
            if tokio::time::Instant::now() >= deadline {
                let why = st.last_error.unwrap_or_else(|| self.startup_log_tail());
                return Err(ProcessError::StartTimeout(timeout, why));
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Stop Postgres (fast shutdown) and wait until it is gone.
    pub async fn ensure_stopped(&self, timeout: Duration) -> Result<(), ProcessError> {
        self.set_want(Want::Stopped);
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if self.status().pid.is_none() {
                return Ok(());
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(ProcessError::StopTimeout(timeout));
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Stop supervising: stop Postgres first unless released, then end the
    /// thread.
    pub async fn shutdown(&self, timeout: Duration) -> Result<(), ProcessError> {
        let released = self.status().want == Want::Released;
        let res = if released {
            Ok(())
        } else {
            self.ensure_stopped(timeout).await
        };
        lock(&self.inner).shutdown = true;
        self.inner.wake.notify_all();
        res
    }

    fn startup_log_tail(&self) -> String {
        let text =
            std::fs::read_to_string(self.inner.pgdata.join("startup.log")).unwrap_or_default();
        let lines: Vec<&str> = text.lines().rev().take(5).collect();
        let tail: Vec<&str> = lines.into_iter().rev().collect();
        if tail.is_empty() {
            "see the Postgres logs".to_string()
        } else {
            tail.join(" | ")
        }
    }
}

/// The supervisor thread.
fn supervise(inner: &Inner) {
    loop {
        let mut s = lock(inner);
        if s.shutdown {
            return;
        }
        refresh(inner, &mut s);
        if s.status.pid.is_none() {
            s.stop_started = None;
        }
        match s.status.want {
            Want::Unknown | Want::Released => {}
            Want::Running => {
                s.stop_started = None;
                if s.status.pid.is_none() && Instant::now() >= s.next_start {
                    start(inner, &mut s);
                }
            }
            Want::Stopped => signal(&mut s, libc::SIGINT),
            Want::Fenced => signal(&mut s, libc::SIGQUIT),
        }
        let (guard, _) = inner
            .wake
            .wait_timeout(s, POLL)
            .unwrap_or_else(|p| p.into_inner());
        drop(guard);
    }
}

/// Update pid/ready from the child and `postmaster.pid`.
fn refresh(inner: &Inner, s: &mut Shared) {
    if let Some(child) = s.child.as_mut() {
        match child.try_wait() {
            Ok(Some(exit)) => {
                if s.status.want == Want::Running {
                    tracing::warn!("Postgres exited ({exit}); restarting it");
                    s.status.down_since.get_or_insert_with(Instant::now);
                    s.next_start = Instant::now() + RESTART_DELAY;
                    s.status.failed_starts += 1;
                }
                s.ready_since = None;
                s.child = None;
                s.status.pid = None;
                s.status.ready = false;
                return;
            }
            Ok(None) => {}
            Err(e) => s.status.last_error = Some(e.to_string()),
        }
    }
    let pm = PostmasterPid::read(&inner.pgdata).filter(PostmasterPid::alive);
    match (&s.child, pm) {
        (Some(child), Some(pm)) if pm.pid as u32 == child.id() => {
            s.status.pid = Some(pm.pid);
            let ready = pm.ready();
            if ready && !s.status.ready {
                s.status.down_since = None;
                s.status.last_error = None;
                s.ready_since = Some(Instant::now());
            }
            if s.ready_since.is_some_and(|t| t.elapsed() >= STEADY) {
                s.status.failed_starts = 0;
            }
            s.status.ready = ready;
        }
        (Some(child), _) => {
            // Started, not yet listed in postmaster.pid.
            s.status.pid = Some(child.id() as i32);
            s.status.ready = false;
        }
        (None, Some(pm)) => {
            // A postmaster we did not start (left by a previous keeper).
            s.status.pid = Some(pm.pid);
            s.status.ready = pm.ready();
        }
        (None, None) => {
            s.status.pid = None;
            s.status.ready = false;
        }
    }
}

fn start(inner: &Inner, s: &mut Shared) {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(inner.pgdata.join("startup.log"));
    let (out, err) = match log.and_then(|f| Ok((f.try_clone()?, f))) {
        Ok((a, b)) => (Stdio::from(a), Stdio::from(b)),
        Err(_) => (Stdio::null(), Stdio::null()),
    };
    let mut cmd = Command::new(inner.bin.path("postgres"));
    cmd.arg("-D").arg(&inner.pgdata);
    if let Some(dir) = crate::pg::socket_dir_override() {
        cmd.arg("-k").arg(dir);
    }
    cmd.stdin(Stdio::null()).stdout(out).stderr(err);
    // SAFETY: getpid has no preconditions.
    let parent = unsafe { libc::getpid() };
    // SAFETY: the closure only calls async-signal-safe functions (prctl,
    // getppid, setsid, _exit).
    unsafe {
        use std::os::unix::process::CommandExt;
        cmd.pre_exec(move || {
            if libc::prctl(
                libc::PR_SET_PDEATHSIG,
                libc::SIGQUIT as libc::c_ulong,
                0,
                0,
                0,
            ) != 0
            {
                return Err(std::io::Error::last_os_error());
            }
            if libc::getppid() != parent {
                libc::_exit(1);
            }
            libc::setsid();
            Ok(())
        });
    }
    match cmd.spawn() {
        Ok(child) => {
            tracing::info!(
                "Starting Postgres for {} (pid {})",
                inner.pgdata.display(),
                child.id()
            );
            s.status.pid = Some(child.id() as i32);
            s.child = Some(child);
        }
        Err(e) => {
            s.status.failed_starts += 1;
            s.status.last_error = Some(format!("cannot run postgres: {e}"));
            s.next_start = Instant::now() + RESTART_DELAY * 2;
        }
    }
}

/// Send `sig` to the postmaster; a fast shutdown that takes too long
/// becomes an immediate one.
fn signal(s: &mut Shared, sig: i32) {
    let Some(pid) = s.status.pid else { return };
    let started = *s.stop_started.get_or_insert_with(Instant::now);
    let sig = if sig == libc::SIGINT && started.elapsed() > FAST_STOP_GRACE {
        libc::SIGQUIT
    } else {
        sig
    };
    // SAFETY: sending a signal to the pid of our postmaster.
    unsafe { libc::kill(pid, sig) };
}
