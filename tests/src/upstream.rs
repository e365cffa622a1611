//! Debian's upstream pg_auto_failover 2.0 for the interop tests and
//! bench/failover: `scripts/upstream.sh` unpacks its `pg_autoctl` and a
//! private copy of the PostgreSQL 15 tree holding upstream's monitor
//! extension (nothing is installed in the system, where our `pg_autoctl`
//! and our extension live). The script runs once per process; when the
//! directory is already there it returns at once.
//!
//! Upstream's `pg_autoctl` refuses to run as root: as root it is started as
//! the `postgres` user, with a `HOME` and XDG directories that user owns. It
//! runs its services (listener or node-active, and the Postgres controller)
//! as child processes: each upstream `pg_autoctl` gets its own process group
//! so that a host loss can kill all of them at once (see
//! [`crate::autoctl::Service::kill9`]).
//!
//! [`crate::autoctl::Formation`] drives both implementations: pick one per
//! service with [`crate::autoctl::Flavor`].

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

/// Where `scripts/upstream.sh` put upstream's files.
#[derive(Debug)]
pub struct Upstream {
    /// The private directory (`target/upstream`, `/var/tmp/pgaf-upstream` for
    /// a checkout the postgres user cannot enter, or `PGAF_UPSTREAM_DIR`).
    pub dir: PathBuf,
    /// Upstream's `pg_autoctl` 2.0.
    pub pg_autoctl: PathBuf,
    /// The private PostgreSQL 15 binaries (their `lib` holds upstream's
    /// `pgautofailover.so`).
    pub pg_bin: PathBuf,
}

impl Upstream {
    /// The private tree's `pg_ctl`, given to upstream's `create` commands.
    pub fn pg_ctl(&self) -> PathBuf {
        self.pg_bin.join("pg_ctl")
    }
}

/// Upstream's files if [`upstream`] unpacked them in this process.
pub fn unpacked() -> Option<&'static Upstream> {
    UPSTREAM.get()
}

static UPSTREAM: OnceLock<Upstream> = OnceLock::new();

/// The script that unpacks upstream (in the repository, next to this crate).
fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/upstream.sh")
}

/// Upstream's files, unpacked on first use. Fails with the script's
/// message when they cannot be (no apt, no network to the Debian mirror).
pub fn upstream() -> &'static Upstream {
    UPSTREAM.get_or_init(|| {
        let script = script();
        let out = Command::new(&script)
            .stdin(Stdio::null())
            .stderr(Stdio::inherit())
            .output()
            .unwrap_or_else(|e| panic!("run {}: {e}", script.display()));
        assert!(
            out.status.success(),
            "{} failed ({}): upstream pg_auto_failover 2.0 is needed for this test (see its messages above)",
            script.display(),
            out.status
        );
        let stdout = String::from_utf8_lossy(&out.stdout);
        let dir = PathBuf::from(stdout.lines().last().unwrap_or_default().trim());
        let up = Upstream {
            pg_autoctl: dir.join("bin/pg_autoctl"),
            pg_bin: dir.join("pg/lib/postgresql/15/bin"),
            dir,
        };
        for p in [&up.pg_autoctl, &up.pg_ctl()] {
            assert!(
                p.exists(),
                "{} is missing after {}",
                p.display(),
                script.display()
            );
        }
        up
    })
}

/// A command running upstream's `pg_autoctl args`: as `postgres` when we
/// are root, with `home` as its HOME, in a process group of its own, on
/// `host` when given.
pub fn command(args: &[String], home: &Path, host: Option<&crate::netns::Host>) -> Command {
    let up = upstream();
    let mut c = Command::new(&up.pg_autoctl);
    c.args(args)
        .stdin(Stdio::null())
        .env("HOME", home)
        .env_remove("PGDATA")
        .env_remove("PG_AUTOCTL_MONITOR")
        .env_remove("PG_CONFIG")
        .process_group(0);
    for var in ["PGUSER", "PGHOST", "PGPORT", "PGDATABASE"] {
        c.env_remove(var);
    }
    let ids = crate::autoctl::postgres_ids();
    if ids.is_some() {
        c.env("USER", "postgres").env("LOGNAME", "postgres");
    }
    match host {
        // Without a Unix socket upstream needs a host for local
        // connections (its own test suite sets PGHOST=localhost).
        Some(h) => {
            h.enter(&mut c, ids);
            c.env("PGHOST", "localhost");
        }
        None => {
            if let Some((uid, gid)) = ids {
                c.uid(uid).gid(gid);
            }
        }
    }
    c
}
