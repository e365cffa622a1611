//! `pg_autoctl do pgsetup ...`: the local Postgres of the node in
//! `--pgdata`.
//!
//! * `pg_ctl`: which Postgres installation `create` would use;
//! * `discover`: what is known of the instance (the lines of `config check`);
//! * `ready`: exit 0 when Postgres accepts connections, 4 otherwise;
//! * `wait`: the same after waiting up to 30 s;
//! * `logs`: its start-up log and its latest server log, on stderr;
//! * `tune`: the basic tuning computed from this host's CPUs and memory.

use crate::cli::exit::{self, CmdResult, Failure};
use crate::cli::{Globals, PgdataArg};
use crate::config::Config;
use crate::paths::NodePaths;
use crate::pg::bin::PgBin;
use crate::pg::control::PostmasterPid;
use std::time::{Duration, Instant};

#[derive(Debug, clap::Subcommand)]
pub enum PgsetupCmd {
    /// Find a non-ambiguous pg_ctl program and Postgres version
    #[command(name = "pg_ctl")]
    PgCtl(Pgdata),
    /// Discover local PostgreSQL instance, if any
    Discover(Pgdata),
    /// Return true is the local Postgres server is ready
    Ready(Pgdata),
    /// Wait until the local Postgres server is ready
    Wait(Pgdata),
    /// Outputs the Postgres startup logs
    Logs(Pgdata),
    /// Compute and log some Postgres tuning options
    Tune(Pgdata),
}

#[derive(Debug, Clone, clap::Args)]
pub struct Pgdata {
    #[command(flatten)]
    pub pgdata: PgdataArg,
}

/// How long `wait` waits.
const WAIT: Duration = Duration::from_secs(30);

impl PgsetupCmd {
    pub(super) fn pgdata(&self) -> &PgdataArg {
        match self {
            PgsetupCmd::PgCtl(a)
            | PgsetupCmd::Discover(a)
            | PgsetupCmd::Ready(a)
            | PgsetupCmd::Wait(a)
            | PgsetupCmd::Logs(a)
            | PgsetupCmd::Tune(a) => &a.pgdata,
        }
    }

    pub async fn run(self, _g: Globals) -> CmdResult {
        match self {
            PgsetupCmd::PgCtl(_) => pg_ctl(),
            PgsetupCmd::Discover(a) => discover(&a.pgdata),
            PgsetupCmd::Ready(a) => ready(&a.pgdata, Duration::ZERO).await,
            PgsetupCmd::Wait(a) => ready(&a.pgdata, WAIT).await,
            PgsetupCmd::Logs(a) => logs(&a.pgdata),
            PgsetupCmd::Tune(_) => {
                print!("{}", tune(&Host::this()));
                Ok(())
            }
        }
    }
}

/// The node's configuration (exit 2 when it cannot be read).
fn setup(pgdata: &PgdataArg) -> Result<(NodePaths, Config), Failure> {
    pgdata.load_config()
}

fn pg_ctl() -> CmdResult {
    if let Ok(p) = std::env::var("PG_CONFIG") {
        tracing::info!("Environment variable PG_CONFIG is set to \"{p}\"");
    }
    let bin = PgBin::discover(None).map_err(|e| {
        Failure::new(
            exit::PGCTL,
            anyhow::anyhow!("pg_autoctl create postgres would fail to find pg_ctl: {e}"),
        )
    })?;
    let version = crate::cli::status::postgres_version(&bin);
    for what in ["postgres", "monitor"] {
        tracing::info!(
            "`pg_autoctl create {what}` would use \"{}\" for Postgres {version}",
            bin.pg_ctl().display()
        );
    }
    let sharedir = std::process::Command::new(bin.path("pg_config"))
        .arg("--sharedir")
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    let control = std::path::Path::new(&sharedir).join("extension/pgautofailover.control");
    if control.exists() {
        tracing::info!("Found the control file for extension \"pgautofailover\"");
        Ok(())
    } else {
        Err(Failure::new(
            exit::INTERNAL_ERROR,
            anyhow::anyhow!(
                "pg_autoctl on the monitor would fail to find extension \"pgautofailover\": \
                 there is no {}",
                control.display()
            ),
        ))
    }
}

/// `"15.14" (1514)`: the version as text and as upstream's integer.
fn version_label(version: &str) -> String {
    let mut parts = version.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
    let major = parts.next().unwrap_or(0);
    let minor = parts.next().unwrap_or(0);
    format!("\"{version}\" ({})", major * 100 + minor)
}

/// The description of a Postgres setup, as `discover` and `config check`
/// print it.
pub fn setup_lines(
    cfg: &Config,
    paths: &NodePaths,
    pm: Option<&PostmasterPid>,
    in_recovery: bool,
) -> String {
    let pg = cfg.pg();
    let bin = PgBin::from_pg_ctl(&pg.pg_ctl).ok();
    let version = bin
        .as_ref()
        .map(crate::cli::status::postgres_version)
        .unwrap_or_default();
    let ctl = bin
        .as_ref()
        .and_then(|b| crate::pg::control::controldata(b, &paths.pgdata).ok())
        .unwrap_or_default();
    let host = if !pg.host.is_empty() {
        pg.host.clone()
    } else {
        pm.map(|p| p.socket_dir.display().to_string())
            .unwrap_or_default()
    };
    let lines = [
        ("pgdata", pg.pgdata.display().to_string()),
        ("pg_ctl", pg.pg_ctl.display().to_string()),
        ("pg_version", version_label(&version)),
        ("pghost", host),
        ("pgport", pg.port.to_string()),
        ("proxyport", "0".into()),
        ("pid", pm.map_or(0, |p| p.pid).to_string()),
        (
            "is in recovery",
            if in_recovery { "yes" } else { "no" }.into(),
        ),
        ("Control cluster state", ctl.state.clone()),
        ("Control Version", ctl.pg_control_version.to_string()),
        ("Catalog Version", ctl.catalog_version.to_string()),
        ("System Identifier", ctl.system_identifier.to_string()),
        ("Latest checkpoint LSN", ctl.checkpoint_lsn.clone()),
        (
            "Postmaster status",
            pm.map_or("unknown".to_string(), |p| p.status.clone()),
        ),
    ];
    lines
        .iter()
        .map(|(k, v)| format!("{:<22} {v}\n", format!("{k}:")))
        .collect()
}

fn discover(pgdata: &PgdataArg) -> CmdResult {
    let (paths, cfg) = setup(pgdata)?;
    if !paths.pgdata.join("global/pg_control").exists() {
        return Err(Failure::new(
            exit::PGCTL,
            anyhow::anyhow!(
                "{} is not a Postgres data directory (no global/pg_control)",
                paths.pgdata.display()
            ),
        ));
    }
    let pm = PostmasterPid::read(&paths.pgdata).filter(PostmasterPid::alive);
    print!("{}", setup_lines(&cfg, &paths, pm.as_ref(), false));
    Ok(())
}

/// Whether Postgres in `pgdata` accepts connections, asking again every
/// 100 ms for `wait`; exit 4 when it does not.
async fn ready(pgdata: &PgdataArg, wait: Duration) -> CmdResult {
    let (paths, _) = setup(pgdata)?;
    let started = Instant::now();
    // A postmaster that is starting or stopping gets the time to finish.
    let patience = wait.max(Duration::from_secs(5));
    loop {
        let pm = PostmasterPid::read(&paths.pgdata).filter(PostmasterPid::alive);
        let in_transit = pm.as_ref().is_some_and(|p| !p.ready());
        let ok = paths.pgdata.join("global/pg_control").exists()
            && pm.as_ref().is_some_and(PostmasterPid::ready);
        let status = pm.as_ref().map_or("unknown", |p| p.status.as_str());
        let limit = if in_transit { patience } else { wait };
        if ok || started.elapsed() >= limit {
            tracing::info!("Postgres status is: \"{status}\"");
            return match pm.filter(|_| ok) {
                Some(p) => {
                    if !wait.is_zero() {
                        tracing::info!(
                            "Postgres is now serving PGDATA \"{}\" on port {} with pid {}",
                            paths.pgdata.display(),
                            p.port,
                            p.pid
                        );
                    }
                    Ok(())
                }
                None => Err(Failure::new(
                    exit::PGSQL,
                    anyhow::anyhow!(
                        "Postgres is not ready in {}: is pg_autoctl run running there?",
                        paths.pgdata.display()
                    ),
                )),
            };
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn logs(pgdata: &PgdataArg) -> CmdResult {
    let (paths, _) = setup(pgdata)?;
    let startup = paths.pgdata.join("startup.log");
    let mut files = vec![startup.clone()];
    let since = std::fs::metadata(&startup).and_then(|m| m.modified()).ok();
    if let Ok(dir) = std::fs::read_dir(paths.pgdata.join("log")) {
        let mut logs: Vec<_> = dir
            .filter_map(Result::ok)
            .filter_map(|e| {
                let modified = e.metadata().ok()?.modified().ok()?;
                e.file_type()
                    .ok()?
                    .is_file()
                    .then_some((modified, e.path()))
            })
            .filter(|(m, _)| since.is_none_or(|s| *m >= s))
            .collect();
        logs.sort();
        files.extend(logs.into_iter().map(|(_, p)| p));
    }
    for f in files {
        match std::fs::read_to_string(&f) {
            Ok(text) if !text.is_empty() => {
                tracing::warn!("Postgres logs from \"{}\":", f.display());
                for line in text.lines() {
                    if line.contains("FATAL") || line.contains("PANIC") {
                        tracing::error!("{line}");
                    } else if line.contains("ERROR") {
                        tracing::warn!("{line}");
                    } else {
                        tracing::info!("{line}");
                    }
                }
            }
            Ok(_) => {}
            Err(e) if f == startup => tracing::debug!("{}: {e}", f.display()),
            Err(e) => {
                return Err(Failure::new(
                    exit::PGCTL,
                    anyhow::anyhow!("cannot read {}: {e}", f.display()),
                ))
            }
        }
    }
    Ok(())
}

/// What the tuning depends on.
pub struct Host {
    pub cpus: usize,
    pub memory: u64,
}

impl Host {
    fn this() -> Host {
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        // SAFETY: sysconf with constant names.
        let (pages, page) = unsafe {
            (
                libc::sysconf(libc::_SC_PHYS_PAGES),
                libc::sysconf(libc::_SC_PAGESIZE),
            )
        };
        Host {
            cpus,
            memory: (pages.max(0) as u64) * (page.max(0) as u64),
        }
    }
}

/// `value` bytes as a Postgres size: divided by 1024, one unit up each
/// time, while it is at least 10240 (`6025 MB`, `17 GB`).
fn size(mut value: u64) -> String {
    const UNITS: [&str; 7] = ["B", "kB", "MB", "GB", "TB", "PB", "EB"];
    let mut unit = 0;
    while value >= 10240 && unit < UNITS.len() - 1 {
        value /= 1024;
        unit += 1;
    }
    format!("{value} {}", UNITS[unit])
}

/// The basic tuning for `host`: shared_buffers a quarter of the memory,
/// the cache the rest, work memory and autovacuum workers by size.
pub fn tune(host: &Host) -> String {
    const GB: u64 = 1 << 30;
    const MB: u64 = 1 << 20;
    let ram = host.memory;
    let (shared, work, maintenance) = if ram <= 8 * GB {
        (ram / 4, 16 * MB, 256 * MB)
    } else if ram <= 64 * GB {
        (ram / 4, 24 * MB, 512 * MB)
    } else if ram <= 256 * GB {
        (16 * GB, 32 * MB, GB)
    } else {
        (32 * GB, 64 * MB, 2 * GB)
    };
    let workers = match host.cpus {
        0..16 => 3,
        16..24 => 4,
        24..32 => 6,
        32..48 => 8,
        48..64 => 12,
        _ => 16,
    };
    format!(
        "# basic tuning computed by pg_auto_failover\n\
         track_functions = pl\n\
         shared_buffers = '{}'\n\
         work_mem = '{}'\n\
         maintenance_work_mem = '{}'\n\
         effective_cache_size = '{}'\n\
         autovacuum_max_workers = {workers}\n\
         autovacuum_vacuum_scale_factor = 0.08\n\
         autovacuum_analyze_scale_factor = 0.02\n\n",
        size(shared),
        size(work),
        size(maintenance),
        size(ram.saturating_sub(shared)),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_as_postgres_reads_them() {
        assert_eq!(size(16 << 20), "16 MB");
        assert_eq!(size(6025 << 20), "6025 MB");
        assert_eq!(size(17 << 30), "17 GB");
        assert_eq!(size(512), "512 B");
    }

    #[test]
    fn tuning_for_24_gib_and_2_cpus() {
        let out = tune(&Host {
            cpus: 2,
            memory: 24 << 30,
        });
        assert!(out.starts_with("# basic tuning computed by pg_auto_failover\n"));
        assert!(out.contains("shared_buffers = '6144 MB'\n"));
        assert!(out.contains("work_mem = '24 MB'\n"));
        assert!(out.contains("maintenance_work_mem = '512 MB'\n"));
        assert!(out.contains("effective_cache_size = '18 GB'\n"));
        assert!(out.contains("autovacuum_max_workers = 3\n"));
        assert!(out.ends_with("0.02\n\n"));
    }

    #[test]
    fn version_labels_use_upstreams_integer() {
        assert_eq!(version_label("15.14"), "\"15.14\" (1514)");
        assert_eq!(version_label(""), "\"\" (0)");
    }
}
