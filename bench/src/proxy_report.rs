//! The report of `bench/proxy/run.sh`: reads its `raw.tsv` (one line per
//! run: round, workload, target, status, tps, latency, transactions, MB/s,
//! bytes, wall time, the proxy's CPU seconds, load) and renders Markdown.
//!
//! Every ratio is taken against the direct run of the **same round** and
//! then summarised over rounds as median [min–max], so slow drifts of a
//! shared machine cancel out. Throughput ratios are TPS (pgbench) or MB/s
//! (COPY) divided by direct's; latency ratios are pgbench's average latency
//! divided by direct's (above 1 is slower). A proxy's CPU is the utime +
//! stime of its process over the run, divided by the transactions pgbench
//! reported (µs per transaction, and seconds per 10 000) or by the bytes
//! copied (seconds per GB). The goals of the proxy issue are checked at
//! the end against the medians.

use std::collections::BTreeMap;
use std::fmt::Write as _;

/// The baseline target's name in `raw.tsv`.
pub const DIRECT: &str = "direct";
/// Our proxy's name in `raw.tsv`.
pub const US: &str = "pg_autoproxy";

/// One line of `raw.tsv`.
#[derive(Debug, Clone, PartialEq)]
pub struct Run {
    pub round: u32,
    pub workload: String,
    pub target: String,
    pub ok: bool,
    pub tps: Option<f64>,
    pub latency_ms: Option<f64>,
    pub transactions: Option<f64>,
    pub mbps: Option<f64>,
    pub bytes: Option<f64>,
    pub proxy_cpu_s: Option<f64>,
    pub load1: Option<f64>,
    pub busy_pct: Option<f64>,
    /// Machine CPU use in the pause after the run (other users' load).
    pub pause_busy_pct: Option<f64>,
}

/// A malformed `raw.tsv`.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("raw.tsv has no header line")]
    NoHeader,
    #[error("raw.tsv header has no column \"{0}\"")]
    MissingColumn(&'static str),
    #[error("raw.tsv line {line}: {what}")]
    BadLine { line: usize, what: String },
}

const COLUMNS: [&str; 12] = [
    "round",
    "workload",
    "target",
    "status",
    "tps",
    "lat_ms",
    "xacts",
    "mbps",
    "bytes",
    "proxy_cpu_s",
    "load1",
    "busy_pct",
];

/// Parse the TSV written by `run.sh`.
pub fn parse(text: &str) -> Result<Vec<Run>, ReportError> {
    let mut lines = text.lines();
    let header: Vec<&str> = lines
        .next()
        .ok_or(ReportError::NoHeader)?
        .split('\t')
        .collect();
    let mut idx = [0usize; COLUMNS.len()];
    for (i, name) in COLUMNS.iter().enumerate() {
        idx[i] = header
            .iter()
            .position(|h| h == name)
            .ok_or(ReportError::MissingColumn(name))?;
    }
    let mut runs = Vec::new();
    for (n, line) in lines.enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let f: Vec<&str> = line.split('\t').collect();
        let get = |c: usize| f.get(idx[c]).copied().unwrap_or("");
        let num = |c: usize| get(c).parse::<f64>().ok();
        let round = get(0).parse::<u32>().map_err(|e| ReportError::BadLine {
            line: n + 2,
            what: format!("round \"{}\": {e}", get(0)),
        })?;
        let pause_busy_pct = header
            .iter()
            .position(|h| *h == "pause_busy_pct")
            .and_then(|i| f.get(i))
            .and_then(|v| v.parse::<f64>().ok());
        runs.push(Run {
            round,
            workload: get(1).to_string(),
            target: get(2).to_string(),
            ok: get(3) == "ok",
            tps: num(4),
            latency_ms: num(5),
            transactions: num(6),
            mbps: num(7),
            bytes: num(8),
            proxy_cpu_s: num(9),
            load1: num(10),
            busy_pct: num(11),
            pause_busy_pct,
        });
    }
    Ok(runs)
}

/// Median, minimum and maximum of a non-empty sample.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Spread {
    pub median: f64,
    pub min: f64,
    pub max: f64,
    pub n: usize,
}

/// The spread of `values`, `None` when empty.
pub fn spread(values: &[f64]) -> Option<Spread> {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    let median = if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    };
    Some(Spread {
        median,
        min: v[0],
        max: v[n - 1],
        n,
    })
}

/// Whether a workload is the COPY one (MB/s and seconds per GB).
pub fn is_copy(workload: &str) -> bool {
    workload.starts_with("copy")
}

/// The summary of one (workload, target) pair.
#[derive(Debug, Clone, PartialEq)]
pub struct Cell {
    pub ok: usize,
    pub runs: usize,
    /// TPS or MB/s.
    pub throughput: Option<Spread>,
    /// Throughput divided by direct's in the same round.
    pub ratio: Option<Spread>,
    /// Average latency divided by direct's in the same round.
    pub latency_ratio: Option<Spread>,
    pub latency_ms: Option<Spread>,
    /// µs per transaction, or seconds per GB for COPY.
    pub cpu: Option<Spread>,
}

/// Workloads and targets in the order they first appear.
pub fn order(runs: &[Run]) -> (Vec<String>, Vec<String>) {
    let mut workloads = Vec::new();
    let mut targets = Vec::new();
    for r in runs {
        if !workloads.contains(&r.workload) {
            workloads.push(r.workload.clone());
        }
        if !targets.contains(&r.target) {
            targets.push(r.target.clone());
        }
    }
    (workloads, targets)
}

/// Summarise one (workload, target) pair against `direct` runs.
pub fn cell(runs: &[Run], workload: &str, target: &str) -> Cell {
    let copy = is_copy(workload);
    let mine: Vec<&Run> = runs
        .iter()
        .filter(|r| r.workload == workload && r.target == target)
        .collect();
    let direct: BTreeMap<u32, &Run> = runs
        .iter()
        .filter(|r| r.workload == workload && r.target == DIRECT && r.ok)
        .map(|r| (r.round, r))
        .collect();
    let ok: Vec<&Run> = mine.iter().copied().filter(|r| r.ok).collect();
    let metric = |r: &Run| if copy { r.mbps } else { r.tps };
    let throughput: Vec<f64> = ok.iter().filter_map(|r| metric(r)).collect();
    let mut ratios = Vec::new();
    let mut lat_ratios = Vec::new();
    for r in &ok {
        let Some(d) = direct.get(&r.round) else {
            continue;
        };
        if let (Some(a), Some(b)) = (metric(r), metric(d)) {
            if b > 0.0 {
                ratios.push(a / b);
            }
        }
        if let (Some(a), Some(b)) = (r.latency_ms, d.latency_ms) {
            if b > 0.0 {
                lat_ratios.push(a / b);
            }
        }
    }
    let cpu: Vec<f64> = ok
        .iter()
        .filter_map(|r| {
            let c = r.proxy_cpu_s?;
            if copy {
                let gb = r.bytes? / 1e9;
                (gb > 0.0).then(|| c / gb)
            } else {
                let x = r.transactions?;
                (x > 0.0).then(|| c * 1e6 / x)
            }
        })
        .collect();
    Cell {
        ok: ok.len(),
        runs: mine.len(),
        throughput: spread(&throughput),
        ratio: spread(&ratios),
        latency_ratio: spread(&lat_ratios),
        latency_ms: spread(&ok.iter().filter_map(|r| r.latency_ms).collect::<Vec<_>>()),
        cpu: spread(&cpu),
    }
}

fn fmt_spread(s: Option<Spread>, digits: usize) -> String {
    match s {
        None => "–".into(),
        Some(s) if s.n == 1 => format!("{:.*}", digits, s.median),
        Some(s) => format!(
            "{:.*} [{:.*}–{:.*}]",
            digits, s.median, digits, s.min, digits, s.max
        ),
    }
}

fn fmt_median(s: Option<Spread>, digits: usize) -> String {
    s.map_or_else(|| "–".into(), |s| format!("{:.*}", digits, s.median))
}

/// A goal of the proxy issue and whether the medians meet it.
#[derive(Debug, Clone, PartialEq)]
pub struct Goal {
    pub what: String,
    pub measured: String,
    pub met: Option<bool>,
}

/// A Markdown table header: the `lead` columns (the first left-aligned,
/// the others right-aligned), then one right-aligned column per target.
fn table_header(s: &mut String, lead: &[&str], targets: &[&String]) {
    s.push('|');
    for c in lead {
        let _ = write!(s, " {c} |");
    }
    for t in targets {
        let _ = write!(s, " {t} |");
    }
    s.push_str("\n|---|");
    s.push_str(&"---:|".repeat(lead.len().saturating_sub(1) + targets.len()));
    s.push('\n');
}

/// The issue's goals, checked against the medians of `cells`.
pub fn goals(runs: &[Run]) -> Vec<Goal> {
    let (workloads, targets) = order(runs);
    let mut out = Vec::new();
    let others: Vec<&String> = targets
        .iter()
        .filter(|t| *t != DIRECT && *t != US)
        .collect();
    for w in &workloads {
        let ours = cell(runs, w, US).ratio.map(|s| s.median);
        for o in &others {
            let theirs = cell(runs, w, o).ratio.map(|s| s.median);
            let met = match (ours, theirs) {
                (Some(a), Some(b)) => Some(a >= b),
                _ => None,
            };
            out.push(Goal {
                what: format!("{w}: pg_autoproxy at or above {o}"),
                measured: format!(
                    "{} vs {}",
                    ours.map_or("–".into(), |v| format!("{v:.3}")),
                    theirs.map_or("–".into(), |v| format!("{v:.3}"))
                ),
                met,
            });
        }
    }
    let ratio_goal = |w: &str, min: f64| {
        let r = cell(runs, w, US).ratio.map(|s| s.median);
        Goal {
            what: format!("{w}: pg_autoproxy ≥ {min:.2}× direct"),
            measured: r.map_or("–".into(), |v| format!("{v:.3}")),
            met: r.map(|v| v >= min),
        }
    };
    for w in &workloads {
        if w.ends_with("-c16") && !w.starts_with("churn") {
            out.push(ratio_goal(w, 0.85));
        }
        if is_copy(w) {
            out.push(ratio_goal(w, 0.95));
        }
    }
    for w in &workloads {
        let c = cell(runs, w, US).cpu.map(|s| s.median);
        let (limit, unit) = if is_copy(w) {
            (0.5, "s per GB")
        } else if w.starts_with("churn") {
            // Connection setup is not a transaction of the select-only
            // kind the goal speaks of: reported, not judged.
            continue;
        } else {
            (15.0, "µs per transaction")
        };
        out.push(Goal {
            what: format!("{w}: pg_autoproxy CPU ≤ {limit} {unit}"),
            measured: c.map_or("–".into(), |v| format!("{v:.2}")),
            met: c.map(|v| v <= limit),
        });
    }
    out
}

/// The whole report. `machine` is the text of `machine.txt`.
pub fn render(runs: &[Run], machine: &str) -> String {
    let (workloads, targets) = order(runs);
    let mut s = String::new();
    let rounds = runs.iter().map(|r| r.round).max().unwrap_or(0);
    let loads: Vec<f64> = runs.iter().filter_map(|r| r.load1).collect();
    let busy: Vec<f64> = runs.iter().filter_map(|r| r.busy_pct).collect();
    let pause: Vec<f64> = runs.iter().filter_map(|r| r.pause_busy_pct).collect();
    let _ = writeln!(
        s,
        "## Machine and run\n\n```\n{}\n```\n",
        machine.trim_end()
    );
    let _ = writeln!(
        s,
        "{} runs in {rounds} rounds. Load average (1 min, which includes the benchmark's \
         own pgbench and Postgres) at the start of each run: {}. Machine CPU busy during \
         the runs: {} %. Machine CPU busy in the 1 s pause after each run, when nothing of \
         the benchmark runs (other users of the machine): {} %.\n",
        runs.len(),
        fmt_spread(spread(&loads), 2),
        fmt_spread(spread(&busy), 0),
        fmt_spread(spread(&pause), 0),
    );

    let _ = writeln!(
        s,
        "## Ratios to direct (median over rounds)\n\nThroughput (TPS, or MB/s for COPY) \
         divided by direct's in the same round; higher is better.\n"
    );
    let others: Vec<&String> = targets.iter().filter(|t| *t != DIRECT).collect();
    table_header(&mut s, &["workload", "direct TPS or MB/s"], &others);
    for w in &workloads {
        let d = cell(runs, w, DIRECT);
        let _ = write!(s, "| {w} | {} |", fmt_median(d.throughput, 0));
        for t in &others {
            let _ = write!(s, " {} |", fmt_median(cell(runs, w, t).ratio, 3));
        }
        s.push('\n');
    }

    let _ = writeln!(
        s,
        "\n## Average latency, ratio to direct (median over rounds)\n\nAbove 1 is slower.\n"
    );
    table_header(&mut s, &["workload", "direct ms"], &others);
    for w in workloads.iter().filter(|w| !is_copy(w)) {
        let d = cell(runs, w, DIRECT);
        let _ = write!(s, "| {w} | {} |", fmt_median(d.latency_ms, 3));
        for t in &others {
            let _ = write!(s, " {} |", fmt_median(cell(runs, w, t).latency_ratio, 3));
        }
        s.push('\n');
    }

    let _ = writeln!(
        s,
        "\n## Proxy CPU (median over rounds)\n\nµs of the proxy process's CPU per transaction \
         (in brackets: seconds per 10 000 transactions); seconds per GB for COPY.\n"
    );
    table_header(&mut s, &["workload"], &others);
    for w in &workloads {
        let _ = write!(s, "| {w} |");
        for t in &others {
            let c = cell(runs, w, t).cpu;
            let text = match c {
                None => "–".into(),
                Some(c) if is_copy(w) => format!("{:.2} s/GB", c.median),
                Some(c) => format!("{:.1} µs ({:.3} s)", c.median, c.median / 100.0),
            };
            let _ = write!(s, " {text} |");
        }
        s.push('\n');
    }

    let _ = writeln!(s, "\n## Goals of the proxy issue\n");
    let _ = writeln!(s, "| goal | measured (median) | met |\n|---|---|---|");
    for g in goals(runs) {
        let met = match g.met {
            Some(true) => "yes",
            Some(false) => "**no**",
            None => "–",
        };
        let _ = writeln!(s, "| {} | {} | {met} |", g.what, g.measured);
    }

    let _ = writeln!(
        s,
        "\n## Every pair: median [min–max] over rounds\n\n\
         | workload | target | ok/runs | TPS or MB/s | ratio to direct | latency ms | latency ratio | proxy CPU (µs/tx or s/GB) |\n\
         |---|---|---|---|---|---|---|---|"
    );
    for w in &workloads {
        for t in &targets {
            let c = cell(runs, w, t);
            if c.runs == 0 {
                continue;
            }
            let _ = writeln!(
                s,
                "| {w} | {t} | {}/{} | {} | {} | {} | {} | {} |",
                c.ok,
                c.runs,
                fmt_spread(c.throughput, 0),
                if t == DIRECT {
                    "1".into()
                } else {
                    fmt_spread(c.ratio, 3)
                },
                fmt_spread(c.latency_ms, 3),
                if t == DIRECT {
                    "1".into()
                } else {
                    fmt_spread(c.latency_ratio, 3)
                },
                fmt_spread(c.cpu, 2),
            );
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEADER: &str = "round\tworkload\ttarget\tstatus\ttps\tlat_ms\txacts\tmbps\tbytes\twall_s\tproxy_cpu_s\tload1\tbusy_pct";

    fn line(round: u32, w: &str, t: &str, tps: f64, cpu: &str) -> String {
        format!(
            "{round}\t{w}\t{t}\tok\t{tps}\t{}\t{}\t\t\t10\t{cpu}\t0.5\t90",
            1000.0 / tps,
            tps * 10.0
        )
    }

    #[test]
    fn spread_is_the_median_of_odd_and_even_samples() {
        assert_eq!(spread(&[3.0, 1.0, 2.0]).unwrap().median, 2.0);
        let s = spread(&[4.0, 1.0, 2.0, 3.0]).unwrap();
        assert_eq!((s.median, s.min, s.max, s.n), (2.5, 1.0, 4.0, 4));
        assert!(spread(&[]).is_none());
    }

    #[test]
    fn ratios_are_taken_within_each_round() {
        let text = [
            HEADER.to_string(),
            line(1, "simple-c1", DIRECT, 100.0, ""),
            line(1, "simple-c1", US, 80.0, "0.008"),
            line(2, "simple-c1", DIRECT, 200.0, ""),
            line(2, "simple-c1", US, 180.0, "0.018"),
        ]
        .join("\n");
        let runs = parse(&text).unwrap();
        let c = cell(&runs, "simple-c1", US);
        let r = c.ratio.unwrap();
        assert!((r.min - 0.8).abs() < 1e-9 && (r.max - 0.9).abs() < 1e-9);
        // 0.008 s over 800 transactions = 10 µs.
        assert!((c.cpu.unwrap().median - 10.0).abs() < 1e-9);
        assert!((c.latency_ratio.unwrap().max - 1.25).abs() < 1e-9);
    }

    #[test]
    fn copy_cpu_is_per_gb_and_goals_are_judged() {
        let text = [
            HEADER.to_string(),
            "1\tcopy\tdirect\tok\t\t\t\t500\t2000000000\t4\t\t0.1\t80".to_string(),
            "1\tcopy\tpg_autoproxy\tok\t\t\t\t490\t2000000000\t4\t0.6\t0.1\t80".to_string(),
            "1\tcopy\thaproxy\tok\t\t\t\t450\t2000000000\t4\t3\t0.1\t80".to_string(),
        ]
        .join("\n");
        let runs = parse(&text).unwrap();
        assert!((cell(&runs, "copy", US).cpu.unwrap().median - 0.3).abs() < 1e-9);
        let g = goals(&runs);
        assert!(g
            .iter()
            .any(|g| g.what.contains("at or above haproxy") && g.met == Some(true)));
        assert!(g
            .iter()
            .any(|g| g.what.contains("0.95") && g.met == Some(true)));
        assert!(render(&runs, "m").contains("| copy | 500 | 0.980 | 0.900 |"));
    }

    #[test]
    fn failed_runs_are_counted_but_not_measured() {
        let text = [
            HEADER.to_string(),
            line(1, "simple-c1", DIRECT, 100.0, ""),
            "1\tsimple-c1\tpg_autoproxy\taborted\t\t\t\t\t\t10\t\t0.5\t90".to_string(),
        ]
        .join("\n");
        let runs = parse(&text).unwrap();
        let c = cell(&runs, "simple-c1", US);
        assert_eq!((c.ok, c.runs), (0, 1));
        assert!(c.ratio.is_none());
    }

    #[test]
    fn a_missing_column_is_named() {
        let e = parse("round\tworkload\n").unwrap_err();
        assert!(e.to_string().contains("\"target\""), "{e}");
    }
}
