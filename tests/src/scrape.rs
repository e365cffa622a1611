//! Scraping Prometheus endpoints in tests: a plain HTTP GET with a
//! deadline, the samples of a text exposition, and `promtool check
//! metrics` (Debian's `prometheus` package, installed by
//! `scripts/setup.sh`) on every scrape.

use std::io::Write;
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// `GET path` on `addr`: the status and the body, or why not (5 s at most).
pub async fn get(addr: SocketAddr, path: &str) -> Result<(u16, String), String> {
    let exchange = async {
        let mut s = tokio::net::TcpStream::connect(addr)
            .await
            .map_err(|e| format!("connect to {addr}: {e}"))?;
        s.write_all(format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\n\r\n").as_bytes())
            .await
            .map_err(|e| format!("send to {addr}: {e}"))?;
        let mut out = Vec::new();
        s.read_to_end(&mut out)
            .await
            .map_err(|e| format!("read from {addr}: {e}"))?;
        let text = String::from_utf8(out).map_err(|e| format!("{addr}: not UTF-8: {e}"))?;
        let (head, body) = text
            .split_once("\r\n\r\n")
            .ok_or_else(|| format!("{addr}: no end of headers in {text:?}"))?;
        let status = head
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| format!("{addr}: no status in {head:?}"))?;
        Ok((status, body.to_string()))
    };
    tokio::time::timeout(Duration::from_secs(5), exchange)
        .await
        .map_err(|_| format!("{addr}{path}: no answer within 5 s"))?
}

/// `GET /metrics` on `addr`, which must answer 200 with an exposition
/// that `promtool check metrics` accepts.
pub async fn scrape(addr: SocketAddr) -> Samples {
    try_scrape(addr)
        .await
        .unwrap_or_else(|e| panic!("scrape {addr}: {e}"))
}

/// [`scrape`], or why the endpoint did not answer 200 (not listening yet,
/// ...). An exposition that `promtool` refuses still fails the test.
pub async fn try_scrape(addr: SocketAddr) -> Result<Samples, String> {
    let (status, body) = get(addr, "/metrics").await?;
    if status != 200 {
        return Err(format!("GET http://{addr}/metrics: {status}\n{body}"));
    }
    promtool_check(&body);
    Ok(Samples::parse(&body))
}

/// Run `promtool check metrics` on `text`; fail with its findings.
pub fn promtool_check(text: &str) {
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("cannot run promtool ({e}): install Debian's `prometheus` package (scripts/setup.sh)")
        });
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(text.as_bytes()).expect("write to promtool");
    }
    let out = child.wait_with_output().expect("wait for promtool");
    assert!(
        out.status.success(),
        "promtool check metrics failed ({}):\n{}{}\n---- exposition ----\n{text}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Run `promtool check <what> <path>`; fail with its findings.
pub fn promtool(what: &str, path: &std::path::Path) {
    let out = Command::new("promtool")
        .args(["check", what])
        .arg(path)
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run promtool ({e}): install Debian's `prometheus` package (scripts/setup.sh)")
        });
    assert!(
        out.status.success(),
        "promtool check {what} {} failed:\n{}{}",
        path.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The PromQL of a Grafana dashboard: every `"expr"` string of its JSON
/// (one key per line, as the committed dashboard is printed).
pub fn dashboard_exprs(json: &str) -> Vec<String> {
    let mut out = Vec::new();
    for line in json.lines() {
        let Some(rest) = line.trim_start().strip_prefix("\"expr\": \"") else {
            continue;
        };
        let mut expr = String::new();
        let mut chars = rest.chars();
        while let Some(c) = chars.next() {
            match c {
                '"' => break,
                '\\' => match chars.next() {
                    Some('n') => expr.push('\n'),
                    Some('t') => expr.push('\t'),
                    Some('u') => {
                        let hex: String = chars.by_ref().take(4).collect();
                        let code = u32::from_str_radix(&hex, 16).expect("a \\u escape");
                        expr.push(char::from_u32(code).expect("a character"));
                    }
                    Some(c) => expr.push(c),
                    None => {}
                },
                c => expr.push(c),
            }
        }
        out.push(expr);
    }
    out
}

/// Check that every expression parses as PromQL (`promtool check rules`
/// on a rules file made of them, in `dir`), Grafana's `$__range` and
/// `$formation` replaced by values.
pub fn promtool_check_promql(exprs: &[String], dir: &std::path::Path) {
    let mut rules = String::from("groups:\n  - name: dashboard\n    rules:\n");
    for (i, e) in exprs.iter().enumerate() {
        let e = e
            .replace("$__range", "1h")
            .replace("$formation", ".*")
            .replace('\\', "\\\\")
            .replace('"', "\\\"");
        rules.push_str(&format!(
            "      - record: pgaf:dashboard:{i}\n        expr: \"{e}\"\n"
        ));
    }
    let path = dir.join("dashboard-rules.yml");
    std::fs::write(&path, rules).expect("write the rules file");
    promtool("rules", &path);
}

/// One sample of an exposition.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: Vec<(String, String)>,
    pub value: f64,
}

/// The samples of a text exposition.
#[derive(Debug, Clone, Default)]
pub struct Samples {
    pub text: String,
    pub samples: Vec<Sample>,
}

fn parse_labels(s: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut rest = s;
    while let Some((name, after)) = rest.split_once("=\"") {
        let mut value = String::new();
        let mut chars = after.char_indices();
        let mut end = after.len();
        while let Some((i, c)) = chars.next() {
            match c {
                '\\' => {
                    if let Some((_, n)) = chars.next() {
                        value.push(if n == 'n' { '\n' } else { n });
                    }
                }
                '"' => {
                    end = i + 1;
                    break;
                }
                c => value.push(c),
            }
        }
        out.push((name.trim_start_matches(',').trim().to_string(), value));
        rest = &after[end..];
    }
    out
}

impl Samples {
    pub fn parse(text: &str) -> Samples {
        let mut samples = Vec::new();
        for line in text.lines() {
            if line.starts_with('#') || line.trim().is_empty() {
                continue;
            }
            let (series, value) = line.rsplit_once(' ').expect("a sample line");
            let value = match value {
                "+Inf" => f64::INFINITY,
                "-Inf" => f64::NEG_INFINITY,
                v => v.parse().unwrap_or(f64::NAN),
            };
            let (name, labels) = match series.split_once('{') {
                Some((n, l)) => (n.to_string(), parse_labels(l.trim_end_matches('}'))),
                None => (series.to_string(), Vec::new()),
            };
            samples.push(Sample {
                name,
                labels,
                value,
            });
        }
        Samples {
            text: text.to_string(),
            samples,
        }
    }

    /// Samples named `name` whose labels include every `(label, value)`.
    pub fn matching<'a>(
        &'a self,
        name: &'a str,
        labels: &'a [(&'a str, &'a str)],
    ) -> impl Iterator<Item = &'a Sample> + 'a {
        self.samples.iter().filter(move |s| {
            s.name == name
                && labels
                    .iter()
                    .all(|(k, v)| s.labels.iter().any(|(sk, sv)| sk == k && sv == v))
        })
    }

    /// The value of the one sample named `name` with `labels`; fails when
    /// there is none or more than one.
    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        let found: Vec<&Sample> = self.matching(name, labels).collect();
        assert!(
            found.len() == 1,
            "{} samples {name}{labels:?} in:\n{}",
            found.len(),
            self.text
        );
        found[0].value
    }

    /// The sum of the samples named `name` with `labels` (0 without any).
    pub fn sum(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.matching(name, labels).map(|s| s.value).sum()
    }

    /// Every label name used by any sample.
    pub fn label_names(&self) -> std::collections::BTreeSet<String> {
        self.samples
            .iter()
            .flat_map(|s| s.labels.iter().map(|(k, _)| k.clone()))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dashboard_expressions_are_decoded() {
        let json =
            "{\n  \"expr\": \"rate(a{b=\\\"c\\\"}[5m])\",\n  \"x\": 1,\n    \"expr\": \"up\"\n}";
        assert_eq!(dashboard_exprs(json), ["rate(a{b=\"c\"}[5m])", "up"]);
    }

    #[test]
    fn parses_names_labels_and_values() {
        let s = Samples::parse(
            "# HELP a x\n# TYPE a gauge\na 1\nb{x=\"1\",y=\"q\\\"z\"} 2.5\nc NaN\nd +Inf\n",
        );
        assert_eq!(s.value("a", &[]), 1.0);
        assert_eq!(s.value("b", &[("y", "q\"z")]), 2.5);
        assert!(s.value("c", &[]).is_nan());
        assert_eq!(s.value("d", &[]), f64::INFINITY);
        assert_eq!(s.sum("b", &[("x", "1")]), 2.5);
        assert_eq!(s.sum("b", &[("x", "2")]), 0.0);
    }
}
