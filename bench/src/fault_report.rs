//! The report of `bench/faults/run.sh`: the outcomes of a fault campaign
//! (JSON lines, one per fault, as `pgaf_tests::faults::campaign` writes
//! them) turned into `bench/faults/REPORT.md`, our cluster and upstream
//! pg_auto_failover 2.0 side by side, with the campaign's goals checked.
//!
//! A fault's *unavailability* is the longest time without an acknowledged
//! write seen by either writer (through `pg_autoproxy`, through the
//! multi-host URI) from the moment it was injected until writes flow again
//! after the group converged. Percentiles are nearest-rank.

use std::collections::BTreeMap;
use std::fmt::Write;

/// One fault's outcome.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    pub flavor: String,
    pub seed: u64,
    pub index: usize,
    pub label: String,
    pub topology: String,
    pub hold: f64,
    pub detail: String,
    pub converged: bool,
    pub recovery: f64,
    pub gap_proxy: f64,
    pub gap_uri: f64,
    pub failed_over: bool,
    /// The fault may take the primary away (a host lost, a switchover...).
    pub expected_failover: bool,
    pub lost: u64,
    pub split_brain: Vec<f64>,
    pub problems: Vec<String>,
}

impl Outcome {
    /// The longest write gap of either writer.
    pub fn unavailability(&self) -> f64 {
        self.gap_proxy.max(self.gap_uri)
    }
}

/// A line that is not an outcome.
#[derive(Debug, thiserror::Error)]
#[error("line {line}: {message}")]
pub struct ParseError {
    pub line: usize,
    pub message: String,
}

/// The outcomes in `text` (JSON lines; blank lines are skipped).
pub fn parse(text: &str) -> Result<Vec<Outcome>, ParseError> {
    let mut out = Vec::new();
    for (i, l) in text.lines().enumerate() {
        if l.trim().is_empty() {
            continue;
        }
        let err = |message: String| ParseError {
            line: i + 1,
            message,
        };
        let v: serde_json::Value = serde_json::from_str(l).map_err(|e| err(e.to_string()))?;
        let f = |k: &str| v.get(k).and_then(|x| x.as_f64()).unwrap_or(0.0);
        let s = |k: &str| {
            v.get(k)
                .and_then(|x| x.as_str())
                .unwrap_or_default()
                .to_string()
        };
        let Some(index) = v.get("index").and_then(|x| x.as_u64()) else {
            return Err(err("no \"index\"".into()));
        };
        out.push(Outcome {
            flavor: s("flavor"),
            seed: v.get("seed").and_then(|x| x.as_u64()).unwrap_or(0),
            index: index as usize,
            label: s("label"),
            topology: s("topology"),
            hold: f("hold"),
            detail: s("detail"),
            converged: v.get("converged").and_then(|x| x.as_bool()) == Some(true),
            recovery: f("recovery"),
            gap_proxy: f("gap_proxy"),
            gap_uri: f("gap_uri"),
            failed_over: s("primary_before") != s("primary_after"),
            expected_failover: v.get("expected_failover").and_then(|x| x.as_bool()) != Some(false),
            lost: v.get("lost").and_then(|x| x.as_u64()).unwrap_or(0),
            split_brain: v
                .get("split_brain")
                .and_then(|x| x.as_array())
                .map(|a| a.iter().filter_map(|x| x.as_f64()).collect())
                .unwrap_or_default(),
            problems: v
                .get("problems")
                .and_then(|x| x.as_array())
                .map(|a| {
                    a.iter()
                        .filter_map(|x| x.as_str().map(String::from))
                        .collect()
                })
                .unwrap_or_default(),
        });
    }
    Ok(out)
}

/// Nearest-rank percentile `p` (0–100) of `values`.
pub fn percentile(values: &[f64], p: f64) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let rank = ((p / 100.0) * v.len() as f64).ceil().max(1.0) as usize;
    v.get(rank.min(v.len()) - 1).copied()
}

fn secs(v: Option<f64>) -> String {
    v.map_or("–".to_string(), |x| format!("{x:.1}"))
}

fn spread(values: &[f64]) -> String {
    format!(
        "{} / {} / {}",
        secs(percentile(values, 50.0)),
        secs(percentile(values, 95.0)),
        secs(percentile(values, 100.0))
    )
}

/// A goal of the campaign and whether ours met it.
#[derive(Debug, Clone, PartialEq)]
pub struct Goal {
    pub what: String,
    pub measured: String,
    pub met: bool,
}

/// The fault types whose unavailability the goals bound.
pub const HOST_LOSS: &str = "primary host lost (kill -9)";
pub const SWITCHOVER: &str = "switchover";

/// Check the goals on our outcomes.
pub fn goals(ours: &[Outcome]) -> Vec<Goal> {
    let lost: u64 = ours.iter().map(|o| o.lost).sum();
    let split: usize = ours.iter().map(|o| o.split_brain.len()).sum();
    let unconverged = ours.iter().filter(|o| !o.converged).count();
    let of = |label: &str| -> Vec<f64> {
        ours.iter()
            .filter(|o| o.label == label)
            .map(Outcome::unavailability)
            .collect()
    };
    let host = of(HOST_LOSS);
    let sw = of(SWITCHOVER);
    let bound = |what: &str, v: &[f64], p: f64, max: f64| Goal {
        what: what.to_string(),
        measured: format!("{} s over {} faults", secs(percentile(v, p)), v.len()),
        met: !v.is_empty() && percentile(v, p).is_some_and(|x| x <= max),
    };
    vec![
        Goal {
            what: "at least 200 faults".into(),
            measured: ours.len().to_string(),
            met: ours.len() >= 200,
        },
        Goal {
            what: "acknowledged writes lost: 0".into(),
            measured: lost.to_string(),
            met: lost == 0,
        },
        Goal {
            what: "split-brain intervals: 0".into(),
            measured: split.to_string(),
            met: split == 0,
        },
        Goal {
            what: "every fault converges".into(),
            measured: format!("{unconverged} did not"),
            met: unconverged == 0,
        },
        bound("host loss: unavailability p95 ≤ 6 s", &host, 95.0, 6.0),
        bound("host loss: unavailability max ≤ 8 s", &host, 100.0, 8.0),
        bound("switchover: write gap p95 ≤ 0.5 s", &sw, 95.0, 0.5),
    ]
}

/// What the report says about the run itself.
#[derive(Debug, Clone, Default)]
pub struct Meta {
    pub command: String,
    pub date: String,
    pub machine: String,
    pub commit: String,
}

fn by_label(outcomes: &[Outcome]) -> BTreeMap<String, Vec<&Outcome>> {
    let mut m: BTreeMap<String, Vec<&Outcome>> = BTreeMap::new();
    for o in outcomes {
        m.entry(o.label.clone()).or_default().push(o);
    }
    m
}

fn summary(out: &mut String, name: &str, outcomes: &[Outcome]) {
    let lost: u64 = outcomes.iter().map(|o| o.lost).sum();
    let split: Vec<f64> = outcomes
        .iter()
        .flat_map(|o| o.split_brain.clone())
        .collect();
    let unconverged: Vec<&Outcome> = outcomes.iter().filter(|o| !o.converged).collect();
    let failovers = outcomes.iter().filter(|o| o.failed_over).count();
    let unexpected = outcomes
        .iter()
        .filter(|o| o.failed_over && !o.expected_failover)
        .count();
    let _ = writeln!(
        out,
        "| {name} | {} | {failovers} | {unexpected} | {lost} | {} ({:.2} s in all) | {} |",
        outcomes.len(),
        split.len(),
        // An empty float sum is -0.0: printed "-0.00 s".
        split.iter().sum::<f64>() + 0.0,
        if unconverged.is_empty() {
            "0".to_string()
        } else {
            unconverged
                .iter()
                .map(|o| format!("#{} (seed {})", o.index, o.seed))
                .collect::<Vec<_>>()
                .join(", ")
        }
    );
}

/// The whole report, and the goals that were not met.
pub fn markdown(meta: &Meta, ours: &[Outcome], upstream: &[Outcome]) -> (String, Vec<Goal>) {
    let mut out = String::new();
    let seeds: Vec<String> = {
        let mut s: Vec<u64> = ours.iter().map(|o| o.seed).collect();
        s.dedup();
        s.iter().map(u64::to_string).collect()
    };
    let _ = writeln!(out, "# Fault campaign\n");
    let _ = writeln!(
        out,
        "Generated by `{}` on {} (commit {}); do not edit by hand.\n",
        meta.command, meta.date, meta.commit
    );
    let _ = writeln!(
        out,
        "Seed {}: {} faults on our cluster, the same schedule's first {} on upstream \
         pg_auto_failover 2.0. Each service (monitor, nodes, `pg_autoproxy`) runs on a host \
         of its own (a network namespace on one bridge, `tests/src/netns.rs`); the clients are \
         the bridge. Faults, their schedule and the checkers are described in \
         `tests/src/faults/`. Every setting is at its default. Unavailability is the longest \
         time without an acknowledged write seen by the writer through `pg_autoproxy` or the \
         one through the multi-host URI, from the fault until writes flow again after the group \
         is back to a primary and secondaries; recovery is the time from the fault to that \
         state. Times are p50 / p95 / max, in seconds. A failover is expected of \
         faults that take the primary away (its host lost, cut off or frozen, its keeper \
         killed, its links lossy) and of switchovers; any other failover is counted as one a \
         fault of its kind should not cause.\n",
        seeds.join(", "),
        ours.len(),
        upstream.len()
    );
    let _ = writeln!(out, "Machine: {}\n", meta.machine);

    let _ = writeln!(out, "## Goals (our cluster)\n");
    let _ = writeln!(out, "| goal | measured | met |\n| --- | --- | --- |");
    let g = goals(ours);
    for goal in &g {
        let _ = writeln!(
            out,
            "| {} | {} | {} |",
            goal.what,
            goal.measured,
            if goal.met { "yes" } else { "**no**" }
        );
    }

    let _ = writeln!(out, "\n## Totals\n");
    let _ = writeln!(
        out,
        "| implementation | faults | failovers | failovers a fault of its kind should not cause | acknowledged writes lost | split-brain intervals | did not converge |\n| --- | ---: | ---: | ---: | ---: | --- | --- |"
    );
    summary(&mut out, "ours", ours);
    if !upstream.is_empty() {
        summary(&mut out, "upstream 2.0", upstream);
    }

    let _ = writeln!(out, "\n## By fault type\n");
    let _ = writeln!(
        out,
        "| fault | runs | failovers | unavailability, ours | recovery, ours | runs (upstream) | failovers (upstream) | unavailability, upstream | recovery, upstream |\n| --- | ---: | ---: | --- | --- | ---: | ---: | --- | --- |"
    );
    let o_by = by_label(ours);
    let u_by = by_label(upstream);
    let mut labels: Vec<&String> = o_by.keys().chain(u_by.keys()).collect();
    labels.sort();
    labels.dedup();
    for l in labels {
        let o = o_by.get(l).cloned().unwrap_or_default();
        let u = u_by.get(l).cloned().unwrap_or_default();
        let un = |v: &[&Outcome]| v.iter().map(|x| x.unavailability()).collect::<Vec<_>>();
        let rec = |v: &[&Outcome]| v.iter().map(|x| x.recovery).collect::<Vec<_>>();
        let fo = |v: &[&Outcome]| v.iter().filter(|x| x.failed_over).count();
        let _ = writeln!(
            out,
            "| {l} | {} | {} | {} | {} | {} | {} | {} | {} |",
            o.len(),
            fo(&o),
            spread(&un(&o)),
            spread(&rec(&o)),
            u.len(),
            fo(&u),
            spread(&un(&u)),
            spread(&rec(&u)),
        );
    }

    for (name, list) in [("ours", ours), ("upstream 2.0", upstream)] {
        let bad: Vec<&Outcome> = list
            .iter()
            .filter(|o| !o.converged || o.lost > 0 || !o.split_brain.is_empty())
            .collect();
        if bad.is_empty() {
            continue;
        }
        let _ = writeln!(out, "\n## Failures, {name}\n");
        for o in bad {
            let _ = writeln!(
                out,
                "* #{} (seed {}) {} on {} ({}): converged {}, lost {}, split brain {:?}; {}",
                o.index,
                o.seed,
                o.label,
                o.topology,
                o.detail,
                o.converged,
                o.lost,
                o.split_brain,
                o.problems.join("; ")
            );
        }
    }
    let failed: Vec<Goal> = g.into_iter().filter(|x| !x.met).collect();
    (out, failed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(index: usize, label: &str, gap: f64, lost: u64) -> String {
        serde_json::json!({
            "seed": 7, "flavor": "ours", "index": index, "label": label,
            "topology": "2 nodes", "hold": 10.0, "detail": "node1", "converged": true,
            "recovery": gap + 3.0, "after_heal": 1.0, "primary_before": "node1",
            "primary_after": if label == HOST_LOSS { "node2" } else { "node1" },
            "gap_proxy": gap, "gap_uri": gap / 2.0, "lost": lost,
            "split_brain": [], "problems": []
        })
        .to_string()
    }

    #[test]
    fn percentiles_are_nearest_rank() {
        let v = [5.0, 1.0, 3.0, 2.0, 4.0];
        assert_eq!(percentile(&v, 50.0), Some(3.0));
        assert_eq!(percentile(&v, 95.0), Some(5.0));
        assert_eq!(percentile(&v, 100.0), Some(5.0));
        assert_eq!(percentile(&v, 0.0), Some(1.0));
        assert_eq!(percentile(&[], 50.0), None);
    }

    #[test]
    fn goals_fail_on_a_lost_write_or_a_slow_host_loss() {
        let text = [
            line(0, HOST_LOSS, 4.0, 0),
            line(1, SWITCHOVER, 0.2, 0),
            line(2, HOST_LOSS, 9.0, 0),
            line(3, "monitor host cut off", 0.0, 2),
        ]
        .join("\n");
        let ours = parse(&text).unwrap();
        assert_eq!(ours[2].unavailability(), 9.0);
        assert!(ours[0].failed_over && !ours[1].failed_over);
        let (md, failed) = markdown(&Meta::default(), &ours, &[]);
        let names: Vec<&str> = failed.iter().map(|g| g.what.as_str()).collect();
        assert!(names.contains(&"acknowledged writes lost: 0"), "{names:?}");
        assert!(names.contains(&"host loss: unavailability max ≤ 8 s"));
        assert!(!names.contains(&"switchover: write gap p95 ≤ 0.5 s"));
        assert!(
            md.contains("| primary host lost (kill -9) | 2 | 2 | 4.0 / 9.0 / 9.0 |"),
            "{md}"
        );
        assert!(md.contains("## Failures, ours"));
    }

    #[test]
    fn a_broken_line_says_where() {
        let e = parse("{\"index\": 1}\nnot json").unwrap_err();
        assert_eq!(e.line, 2);
    }
}
