//! The pidfile of a running `pg_autoctl` service: one
//! service per PGDATA. Line 1 is our pid, line 2 PGDATA, then the
//! pg_autoctl and extension versions, the (unused) log semaphore id and one
//! `<pid> <service>` line per service. `stop`, `reload` and `status` read
//! line 1; a pidfile whose process is gone is stale and replaced.
//!
//! The service also holds an advisory lock (`flock`) on `.<pidfile>.lock`
//! next to it for as long as it runs: two services started at the same
//! moment cannot both see no live pidfile and both write theirs.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, Weak};

#[derive(Debug, thiserror::Error)]
pub enum PidError {
    #[error("pg_autoctl is already running for {pgdata} with pid {pid} (pidfile {path})")]
    Running {
        pid: i32,
        pgdata: String,
        path: PathBuf,
    },
    #[error("cannot write the pidfile {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// What a pidfile says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PidInfo {
    pub pid: i32,
    pub pgdata: String,
    pub version: String,
    pub extension_version: String,
    pub services: Vec<(i32, String)>,
}

pub fn parse(text: &str) -> Option<PidInfo> {
    let mut lines = text.lines();
    let pid = lines.next()?.trim().parse().ok()?;
    let pgdata = lines.next().unwrap_or("").to_string();
    let version = lines.next().unwrap_or("").to_string();
    let extension_version = lines.next().unwrap_or("").to_string();
    let _semid = lines.next();
    let services = lines
        .filter_map(|l| {
            let (p, name) = l.split_once(' ')?;
            Some((p.parse().ok()?, name.to_string()))
        })
        .collect();
    Some(PidInfo {
        pid,
        pgdata,
        version,
        extension_version,
        services,
    })
}

/// Whether process `pid` exists.
pub fn alive(pid: i32) -> bool {
    // SAFETY: signal 0 only checks for existence and permission.
    pid > 0
        && (unsafe { libc::kill(pid, 0) } == 0
            || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM))
}

/// The live service recorded in `path`, if any.
pub fn read_live(path: &Path) -> Option<PidInfo> {
    let info = parse(&std::fs::read_to_string(path).ok()?)?;
    alive(info.pid).then_some(info)
}

/// Our pidfile, removed when dropped; its lock is held until then.
#[derive(Debug)]
pub struct PidGuard {
    path: PathBuf,
    _lock: Arc<File>,
}

/// The pidfile locks this process holds: one command may take the
/// pidfile twice (`create` then `run`), and a second `flock` on another
/// descriptor of the same file would refuse it.
static HELD: Mutex<Vec<(PathBuf, Weak<File>)>> = Mutex::new(Vec::new());

fn lock_path(path: &Path) -> PathBuf {
    crate::config::hidden_sibling(path, ".lock")
}

/// The lock of `path`, or `None` when another process holds it.
fn lock(path: &Path) -> Result<Option<Arc<File>>, PidError> {
    let lock = lock_path(path);
    let write = |source| PidError::Write {
        path: lock.clone(),
        source,
    };
    let mut held = HELD.lock().unwrap_or_else(|p| p.into_inner());
    held.retain(|(_, w)| w.strong_count() > 0);
    if let Some(f) = held
        .iter()
        .find(|(p, _)| *p == lock)
        .and_then(|(_, w)| w.upgrade())
    {
        return Ok(Some(f));
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(write)?;
    }
    let Some(file) = crate::config::lock_file(path, 0o600, false).map_err(write)? else {
        return Ok(None);
    };
    let file = Arc::new(file);
    held.push((lock, Arc::downgrade(&file)));
    Ok(Some(file))
}

impl Drop for PidGuard {
    fn drop(&mut self) {
        if read_live(&self.path).is_some_and(|i| i.pid == std::process::id() as i32) {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// Write our pidfile for `pgdata`, refusing when another live service owns
/// it.
pub fn acquire(path: &Path, pgdata: &Path, service: &str) -> Result<PidGuard, PidError> {
    let Some(lock) = lock(path)? else {
        let pid = std::fs::read_to_string(path)
            .ok()
            .and_then(|t| parse(&t))
            .map_or(0, |i| i.pid);
        return Err(PidError::Running {
            pid,
            pgdata: pgdata.display().to_string(),
            path: path.to_path_buf(),
        });
    };
    // A live process named by the pidfile without the lock: a service of
    // a version that took no lock. Refused too.
    if let Some(info) = read_live(path) {
        if info.pid != std::process::id() as i32 {
            return Err(PidError::Running {
                pid: info.pid,
                pgdata: pgdata.display().to_string(),
                path: path.to_path_buf(),
            });
        }
    }
    let me = std::process::id();
    let text = format!(
        "{me}\n{}\n{}\n{}\n0\n{me} {service}\n",
        pgdata.display(),
        crate::cli::VERSION,
        crate::cli::EXTENSION_VERSION
    );
    crate::config::write_atomically(path, text.as_bytes(), 0o644).map_err(|source| {
        PidError::Write {
            path: path.to_path_buf(),
            source,
        }
    })?;
    Ok(PidGuard {
        path: path.to_path_buf(),
        _lock: lock,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pidfile_round_trips_and_refuses_a_live_owner() {
        let dir = std::env::temp_dir().join(format!("pgaf-pidfile-{}", std::process::id()));
        let path = dir.join("pg_autoctl.pid");
        let guard = acquire(&path, Path::new("/data/node1"), "node-active").unwrap();
        let info = parse(&std::fs::read_to_string(&path).unwrap()).unwrap();
        assert_eq!(info.pid, std::process::id() as i32);
        assert_eq!(info.pgdata, "/data/node1");
        assert_eq!(
            info.services,
            vec![(std::process::id() as i32, "node-active".to_string())]
        );
        // A live owner other than us (pid 1 always exists) is refused.
        std::fs::write(&path, "1\n/data/node1\n2.0\n2.0\n0\n").unwrap();
        assert!(matches!(
            acquire(&path, Path::new("/data/node1"), "node-active"),
            Err(PidError::Running { pid: 1, .. })
        ));
        // A stale one is replaced.
        std::fs::write(&path, "999999999\n/data/node1\n").unwrap();
        let again = acquire(&path, Path::new("/data/node1"), "node-active").unwrap();
        drop(guard);
        drop(again);
        assert!(!path.exists());
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn a_held_lock_refuses_a_second_service() {
        use std::os::unix::io::AsRawFd;
        let dir = std::env::temp_dir().join(format!("pgaf-pidlock-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let path = dir.join("pg_autoctl.pid");
        // Another process's lock: flock conflicts between descriptors, so
        // a descriptor of our own stands for it.
        std::fs::create_dir_all(&dir).unwrap();
        let other = std::fs::File::create(lock_path(&path)).unwrap();
        // SAFETY: flock on a descriptor the test owns.
        let rc = unsafe { libc::flock(other.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        assert_eq!(rc, 0);
        // Even with no pidfile yet (the other one is about to write it).
        assert!(matches!(
            acquire(&path, Path::new("/data/node1"), "node-active"),
            Err(PidError::Running { pid: 0, .. })
        ));
        drop(other);
        let guard = acquire(&path, Path::new("/data/node1"), "node-active").unwrap();
        // The same process may take it again (create, then run).
        let again = acquire(&path, Path::new("/data/node1"), "listener").unwrap();
        drop(again);
        drop(guard);
        let _ = std::fs::remove_dir_all(dir);
    }
}
