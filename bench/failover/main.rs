//! bench/failover: our cluster and upstream pg_auto_failover 2.0 side by
//! side on this machine, at default settings: time from a primary's host
//! loss to the first acknowledged write and to a writable primary, the
//! old primary's rejoin, and a switchover's write unavailability and
//! duration; medians over `--runs` runs (definitions in the report).
//!
//! Run it with `bench/failover/run.sh` (it installs what is missing,
//! builds, and writes `bench/failover/REPORT.md`). By hand:
//!
//! ```sh
//! monitor-ext/install.sh && scripts/upstream.sh
//! cargo build --release -p pgaf-keeper --bin pg_autoctl
//! cargo run --release -p pgaf-bench --features failover --bin failover -- --runs 5
//! ```
//!
//! Our `pg_autoctl` is `PGAF_AUTOCTL`, else the one next to this binary
//! (`target/release/pg_autoctl`). Every process started is stopped by its
//! PID when the run ends, fails, or is interrupted (Ctrl-C).

mod measure;
mod report;

use anyhow::{bail, Context, Result};
use pgaf_tests::autoctl::{Flavor, Formation};
use report::{Report, Results};
use std::path::PathBuf;
use std::time::{Duration, Instant};

const USAGE: &str = "usage: failover [--runs N] [--out FILE] [--max-load L] [--max-wait MIN]

  --runs N        measurements of each kind per implementation (default 5)
  --out FILE      the report (default bench/failover/REPORT.md)
  --max-load L    wait for the 1-minute load average to fall below L before
                  starting (default 1.0)
  --max-wait MIN  wait at most that many minutes, then measure anyway and
                  say so (default 15)";

/// A cluster is ready within this (upstream's catchingup → secondary
/// waits for health checks).
const READY: Duration = Duration::from_secs(120);

struct Args {
    runs: usize,
    out: PathBuf,
    max_load: f64,
    max_wait: Duration,
}

fn parse_args() -> Result<Args> {
    let mut args = Args {
        runs: 5,
        out: PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("failover/REPORT.md"),
        max_load: 1.0,
        max_wait: Duration::from_secs(15 * 60),
    };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        let mut value = || {
            it.next()
                .with_context(|| format!("{a} needs a value\n{USAGE}"))
        };
        match a.as_str() {
            "--runs" => args.runs = value()?.parse().context("--runs")?,
            "--out" => args.out = PathBuf::from(value()?),
            "--max-load" => args.max_load = value()?.parse().context("--max-load")?,
            "--max-wait" => {
                let min: u64 = value()?.parse().context("--max-wait")?;
                args.max_wait = Duration::from_secs(min * 60);
            }
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            other => bail!("unknown argument {other}\n{USAGE}"),
        }
    }
    if args.runs == 0 {
        bail!("--runs must be at least 1");
    }
    Ok(args)
}

/// Point the harness at the release `pg_autoctl` next to this binary.
fn find_our_autoctl() -> Result<()> {
    if std::env::var_os("PGAF_AUTOCTL").is_some() {
        return Ok(());
    }
    let exe = std::env::current_exe().context("locate this binary")?;
    let bin = exe
        .parent()
        .map(|d| d.join("pg_autoctl"))
        .context("the directory of this binary")?;
    if !bin.exists() {
        bail!(
            "{} not found: build it (cargo build --release -p pgaf-keeper --bin pg_autoctl) or set PGAF_AUTOCTL",
            bin.display()
        );
    }
    // Set before the runtime starts: no other thread reads the environment.
    std::env::set_var("PGAF_AUTOCTL", bin);
    Ok(())
}

/// A monitor and two nodes of `flavor`, primary and secondary.
async fn cluster(flavor: Flavor) -> Formation {
    let mut f = Formation::with_monitor_as(flavor).await;
    f.add_node_as(flavor, "node1", &[]);
    f.wait_states(&[("node1", "single")], READY).await;
    f.add_node_as(flavor, "node2", &[]);
    f.wait_states(&[("node1", "primary"), ("node2", "secondary")], READY)
        .await;
    f
}

async fn wait_for_quiet_machine(max_load: f64, max_wait: Duration) -> f64 {
    let deadline = Instant::now() + max_wait;
    let mut load = measure::load_average();
    while load >= max_load && Instant::now() < deadline {
        eprintln!("failover: 1-minute load average {load:.2} ≥ {max_load}: waiting");
        tokio::time::sleep(Duration::from_secs(30)).await;
        load = measure::load_average();
    }
    if load >= max_load {
        eprintln!("failover: load still {load:.2} after {max_wait:?}: measuring anyway");
    }
    load
}

async fn run(args: Args) -> Result<()> {
    let up = pgaf_tests::upstream::upstream();
    let stamp = std::fs::read_to_string(up.dir.join("stamp")).unwrap_or_default();
    let upstream_version = stamp
        .lines()
        .filter(|l| !l.starts_with("script ") && !l.starts_with("system "))
        .collect::<Vec<_>>()
        .join(", ");
    let pg_config = pgaf_tests::cluster::pg_bin().join("pg_config");

    let load_before = wait_for_quiet_machine(args.max_load, args.max_wait).await;
    eprintln!("failover: load {load_before:.2}; creating both clusters");
    let mut ours = cluster(Flavor::Ours).await;
    let mut upstream = cluster(Flavor::Upstream).await;

    let mut r_ours = Results::default();
    let mut r_up = Results::default();
    for run in 1..=args.runs {
        for (name, f, r) in [
            ("ours", &mut ours, &mut r_ours),
            ("upstream", &mut upstream, &mut r_up),
        ] {
            let s = measure::switchover(f)
                .await
                .with_context(|| format!("{name}: switchover, run {run}"))?;
            eprintln!(
                "failover: run {run} {name:8} switchover: longest write gap {:.2} s, swapped after {:.2} s (load {:.2})",
                s.gap, s.done, s.load
            );
            r.switchovers.push(s);
            let h = measure::host_loss(f)
                .await
                .with_context(|| format!("{name}: host loss, run {run}"))?;
            eprintln!(
                "failover: run {run} {name:8} host loss: first write {:.2} s, writable primary {:.2} s, rejoin {:.2} s (load {:.2})",
                h.first_write, h.promoted, h.rejoin, h.load
            );
            r.host_losses.push(h);
        }
    }
    drop(ours);
    drop(upstream);

    let date = std::process::Command::new("date")
        .args(["-u", "+%Y-%m-%d %H:%M UTC"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    let text = Report {
        command: "bench/failover/run.sh",
        date,
        machine: report::machine(&pg_config.display().to_string(), &upstream_version),
        runs: args.runs,
        load_before,
        ours: &r_ours,
        upstream: &r_up,
    }
    .markdown();
    std::fs::write(&args.out, &text).with_context(|| format!("write {}", args.out.display()))?;
    println!("{text}");
    eprintln!("failover: report written to {}", args.out.display());
    Ok(())
}

fn main() -> Result<()> {
    let args = parse_args()?;
    find_our_autoctl()?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("start the runtime")?;
    rt.block_on(async {
        // On Ctrl-C the run's future is dropped, and with it both clusters:
        // their processes are stopped by PID.
        tokio::select! {
            r = run(args) => r,
            _ = tokio::signal::ctrl_c() => bail!("interrupted"),
        }
    })
}
