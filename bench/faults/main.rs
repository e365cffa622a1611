//! bench/faults: the fault campaign (`pgaf_tests::faults`) as a benchmark:
//! a seeded schedule of faults run on our cluster and on upstream
//! pg_auto_failover 2.0, each outcome appended to a JSON-lines file (a
//! run resumes: faults already in the file are not run again), and the
//! report (`bench/faults/REPORT.md`) generated from those files.
//!
//! ```sh
//! bench/faults/run.sh SEED COUNT           # everything, then the report
//! faults run --seed 7 --count 200 --flavor ours --out ours.jsonl
//! faults report --out REPORT.md ours.jsonl upstream.jsonl
//! ```
//!
//! `report` exits with 3 when a goal of the campaign is not met.
//! Our binaries are `PGAF_AUTOCTL` and `PGAF_AUTOPROXY`, else the ones next
//! to this binary. Every process started is stopped by its PID, every
//! network namespace removed, when a cluster is dropped.

use anyhow::{bail, Context, Result};
use pgaf_bench::fault_report::{self, Meta};
use pgaf_tests::autoctl::Flavor;
use pgaf_tests::faults::campaign::{run, Options};
use std::path::PathBuf;

const USAGE: &str = "usage:
  faults run --seed S --count N --flavor ours|upstream --out FILE [--only I,J,...]
  faults report --out REPORT.md [--command TEXT] OURS.jsonl [UPSTREAM.jsonl]";

fn value(it: &mut impl Iterator<Item = String>, flag: &str) -> Result<String> {
    it.next()
        .with_context(|| format!("{flag} needs a value\n{USAGE}"))
}

/// Point the harness at the binaries next to this one, unless set.
fn find_binaries() -> Result<()> {
    let exe = std::env::current_exe().context("locate this binary")?;
    let dir = exe.parent().context("the directory of this binary")?;
    for (var, name) in [
        ("PGAF_AUTOCTL", "pg_autoctl"),
        ("PGAF_AUTOPROXY", "pg_autoproxy"),
    ] {
        if std::env::var_os(var).is_some() {
            continue;
        }
        let bin = dir.join(name);
        if !bin.exists() {
            bail!(
                "{} not found: build it (cargo build --release --bins) or set {var}",
                bin.display()
            );
        }
        // Set before the runtime starts: no other thread reads the
        // environment yet.
        std::env::set_var(var, bin);
    }
    Ok(())
}

fn run_campaign(mut it: impl Iterator<Item = String>) -> Result<()> {
    let (mut seed, mut count, mut flavor, mut out, mut only) = (None, None, None, None, Vec::new());
    while let Some(a) = it.next() {
        match a.as_str() {
            "--seed" => seed = Some(value(&mut it, &a)?.parse::<u64>().context("--seed")?),
            "--count" => count = Some(value(&mut it, &a)?.parse::<usize>().context("--count")?),
            "--flavor" => {
                flavor = Some(match value(&mut it, &a)?.as_str() {
                    "ours" => Flavor::Ours,
                    "upstream" => Flavor::Upstream,
                    other => bail!("--flavor {other}: ours or upstream\n{USAGE}"),
                })
            }
            "--out" => out = Some(PathBuf::from(value(&mut it, &a)?)),
            "--only" => {
                only = value(&mut it, &a)?
                    .split(',')
                    .map(|s| s.trim().parse::<usize>())
                    .collect::<Result<_, _>>()
                    .context("--only: fault indexes, comma-separated")?
            }
            other => bail!("unknown argument {other}\n{USAGE}"),
        }
    }
    let (Some(seed), Some(count), Some(flavor), Some(out)) = (seed, count, flavor, out) else {
        bail!("run needs --seed, --count, --flavor and --out\n{USAGE}");
    };
    // Resume: faults of this seed and flavor already in `out` are not run
    // again (their outcome is there, converged or not).
    if only.is_empty() {
        let done = already_run(&out, seed, flavor)?;
        if !done.is_empty() {
            only = (0..count).filter(|i| !done.contains(i)).collect();
            if only.is_empty() {
                eprintln!(
                    "faults: the {count} faults of seed {seed} are all in {} already",
                    out.display()
                );
                return Ok(());
            }
            eprintln!(
                "faults: resuming, {} of {count} faults already in {}",
                count - only.len(),
                out.display()
            );
        }
    }
    find_binaries()?;
    if flavor == Flavor::Upstream {
        // Unpacked by scripts/upstream.sh; fails clearly when missing.
        let _ = pgaf_tests::upstream::upstream();
    }
    let opts = Options {
        seed,
        count,
        flavor,
        out,
        only,
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("start the runtime")?;
    let outcomes = rt.block_on(run(&opts));
    eprintln!(
        "faults: {} faults run, written to {}",
        outcomes.len(),
        opts.out.display()
    );
    Ok(())
}

/// The indexes of the faults of `seed` run by `flavor` recorded in `out`.
fn already_run(
    out: &std::path::Path,
    seed: u64,
    flavor: Flavor,
) -> Result<std::collections::HashSet<usize>> {
    let text = match std::fs::read_to_string(out) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Default::default()),
        Err(e) => return Err(e).with_context(|| format!("read {}", out.display())),
    };
    let name = match flavor {
        Flavor::Ours => "ours",
        Flavor::Upstream => "upstream",
    };
    let outcomes = fault_report::parse(&text).with_context(|| format!("{}", out.display()))?;
    Ok(outcomes
        .iter()
        .filter(|o| o.seed == seed && o.flavor == name)
        .map(|o| o.index)
        .collect())
}

fn report(mut it: impl Iterator<Item = String>) -> Result<()> {
    let mut out: Option<PathBuf> = None;
    let mut command = "bench/faults/run.sh".to_string();
    let mut files: Vec<PathBuf> = Vec::new();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--out" => out = Some(PathBuf::from(value(&mut it, &a)?)),
            "--command" => command = value(&mut it, &a)?,
            f if !f.starts_with("--") => files.push(PathBuf::from(f)),
            other => bail!("unknown argument {other}\n{USAGE}"),
        }
    }
    let Some(out) = out else {
        bail!("report needs --out\n{USAGE}");
    };
    let read = |p: &PathBuf| -> Result<Vec<fault_report::Outcome>> {
        let text = std::fs::read_to_string(p).with_context(|| format!("read {}", p.display()))?;
        fault_report::parse(&text).with_context(|| format!("{}", p.display()))
    };
    let ours = match files.first() {
        Some(p) => read(p)?,
        None => bail!("report needs the outcomes of our cluster\n{USAGE}"),
    };
    let upstream = match files.get(1) {
        Some(p) => read(p)?,
        None => Vec::new(),
    };
    let sh = |args: &[&str]| {
        std::process::Command::new(args[0])
            .args(&args[1..])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .unwrap_or_default()
    };
    let meta = Meta {
        command,
        date: sh(&["date", "-u", "+%Y-%m-%d %H:%M UTC"]),
        machine: format!(
            "{} CPUs, {}, PostgreSQL {}",
            sh(&["nproc"]),
            sh(&["uname", "-sr"]),
            sh(&[
                &pgaf_tests::cluster::pg_bin()
                    .join("pg_config")
                    .display()
                    .to_string(),
                "--version"
            ])
        ),
        commit: sh(&["git", "rev-parse", "--short", "HEAD"]),
    };
    let (text, failed) = fault_report::markdown(&meta, &ours, &upstream);
    std::fs::write(&out, &text).with_context(|| format!("write {}", out.display()))?;
    println!("{text}");
    if !failed.is_empty() {
        for g in &failed {
            eprintln!("faults: goal not met: {} (measured {})", g.what, g.measured);
        }
        std::process::exit(3);
    }
    Ok(())
}

fn main() -> Result<()> {
    let mut it = std::env::args().skip(1);
    match it.next().as_deref() {
        Some("run") => run_campaign(it),
        Some("report") => report(it),
        Some("-h" | "--help") => {
            println!("{USAGE}");
            Ok(())
        }
        _ => bail!("{USAGE}"),
    }
}
