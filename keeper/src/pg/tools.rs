//! The external Postgres programs the keeper runs: `initdb`, `pg_basebackup`
//! and `pg_rewind`. Their output is logged line by line so that long steps
//! show progress.

use super::bin::PgBin;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncReadExt, BufReader};

#[derive(Debug, thiserror::Error)]
pub enum ToolError {
    #[error("cannot run {program}: {source}")]
    Spawn {
        program: String,
        source: std::io::Error,
    },
    #[error("{program} failed ({status}): {tail}")]
    Failed {
        program: String,
        status: String,
        tail: String,
    },
    #[error("{program} did not finish within {0:?}", .timeout)]
    Timeout { program: String, timeout: Duration },
}

/// Run `program args` with `env`, log its output, fail unless it exits 0.
async fn run(
    bin: &PgBin,
    program: &str,
    args: &[&std::ffi::OsStr],
    env: &[(&str, String)],
    timeout: Duration,
) -> Result<(), ToolError> {
    let mut cmd = tokio::process::Command::new(bin.path(program));
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd.env("LANG", "C")
        .env("LC_MESSAGES", "C")
        .kill_on_drop(true);
    for (k, v) in env {
        cmd.env(k, v);
    }
    tracing::info!("Running {program} {}", describe(args));
    let mut child = cmd.spawn().map_err(|source| ToolError::Spawn {
        program: program.into(),
        source,
    })?;
    let mut lines = Vec::new();
    let out = child.stdout.take();
    let err = child.stderr.take();
    let work = async {
        let mut tasks = Vec::new();
        for stream in [
            out.map(|o| Box::new(o) as Box<dyn tokio::io::AsyncRead + Unpin + Send>),
            err.map(|e| Box::new(e) as Box<dyn tokio::io::AsyncRead + Unpin + Send>),
        ]
        .into_iter()
        .flatten()
        {
            let name = program.to_string();
            tasks.push(tokio::spawn(async move {
                // Lines end with \n, or with \r for progress reports
                // (pg_basebackup --progress, pg_rewind --progress): each is
                // logged as it comes, so long steps show progress.
                let mut seen = Vec::new();
                let mut reader = BufReader::new(stream);
                let mut pending: Vec<u8> = Vec::new();
                let mut buf = [0u8; 4096];
                loop {
                    let n = match reader.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => n,
                    };
                    for &b in &buf[..n] {
                        if b == b'\n' || b == b'\r' {
                            let line = String::from_utf8_lossy(&pending).trim_end().to_string();
                            pending.clear();
                            if !line.is_empty() {
                                tracing::info!("{name}: {line}");
                                seen.push(line);
                            }
                        } else {
                            pending.push(b);
                        }
                    }
                }
                let line = String::from_utf8_lossy(&pending).trim_end().to_string();
                if !line.is_empty() {
                    tracing::info!("{name}: {line}");
                    seen.push(line);
                }
                seen
            }));
        }
        for t in tasks {
            if let Ok(seen) = t.await {
                lines.extend(seen);
            }
        }
        child.wait().await
    };
    let status = match tokio::time::timeout(timeout, work).await {
        Ok(Ok(status)) => status,
        Ok(Err(source)) => {
            return Err(ToolError::Spawn {
                program: program.into(),
                source,
            })
        }
        Err(_) => {
            return Err(ToolError::Timeout {
                program: program.into(),
                timeout,
            })
        }
    };
    if status.success() {
        return Ok(());
    }
    let tail: Vec<String> = lines.iter().rev().take(3).rev().cloned().collect();
    Err(ToolError::Failed {
        program: program.into(),
        status: status.to_string(),
        tail: tail.join(" | "),
    })
}

fn describe(args: &[&std::ffi::OsStr]) -> String {
    args.iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join(" ")
}

/// `initdb` with trust authentication for local connections.
pub async fn initdb(bin: &PgBin, pgdata: &Path) -> Result<(), ToolError> {
    run(
        bin,
        "initdb",
        &[
            "--pgdata".as_ref(),
            pgdata.as_os_str(),
            "--auth=trust".as_ref(),
            "--encoding=UTF8".as_ref(),
        ],
        &[],
        Duration::from_secs(300),
    )
    .await
}

/// Where and how to fetch a copy of another node.
pub struct Upstream<'a> {
    pub host: &'a str,
    pub port: u16,
    pub password: &'a str,
    pub sslmode: &'a str,
}

impl Upstream<'_> {
    fn conninfo(&self, dbname: Option<&str>) -> String {
        let mut s = format!(
            "host={} port={} user=pgautofailover_replicator sslmode={}",
            self.host, self.port, self.sslmode
        );
        if let Some(db) = dbname {
            s.push_str(&format!(" dbname={db}"));
        }
        s
    }

    fn env(&self, appname: String) -> Vec<(&'static str, String)> {
        let mut env = vec![
            ("PGAPPNAME", appname),
            ("PGCONNECT_TIMEOUT", "5".to_string()),
        ];
        if !self.password.is_empty() {
            env.push(("PGPASSWORD", self.password.to_string()));
        }
        env
    }
}

/// `CHECKPOINT` on the upstream node: a newly promoted primary writes its
/// new timeline into its control file only at its first checkpoint, and
/// pg_rewind refuses a source that still shows the timeline it forked from.
/// The promoted node checkpoints in the background (not in the failover's
/// critical path); whoever rewinds against it first makes sure it is done.
pub async fn checkpoint(up: &Upstream<'_>) -> Result<(), String> {
    let mut conninfo = up.conninfo(Some("postgres"));
    if !up.password.is_empty() {
        conninfo.push_str(&format!(
            " password='{}'",
            up.password.replace('\\', "\\\\").replace('\'', "\\'")
        ));
    }
    let (client, conn) =
        pgaf_pgconn::connect(&conninfo, "pg_autoctl", Duration::from_secs(5)).await?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    client
        .batch_execute("CHECKPOINT")
        .await
        .map_err(|e| pgaf_pgconn::describe(&e))
}

/// `pg_basebackup` into `target` (which must not exist or be empty).
///
/// The application name is deliberately not a standby name: the WAL stream
/// of a base backup must never count as a synchronous standby.
pub async fn basebackup(
    bin: &PgBin,
    up: &Upstream<'_>,
    target: &Path,
    slot: Option<&str>,
    max_rate: &str,
    node_id: i64,
) -> Result<(), ToolError> {
    let conninfo = up.conninfo(None);
    let mut args: Vec<&std::ffi::OsStr> = vec![
        "-w".as_ref(),
        "-d".as_ref(),
        conninfo.as_ref(),
        "--pgdata".as_ref(),
        target.as_os_str(),
        "--wal-method=stream".as_ref(),
        "--checkpoint=fast".as_ref(),
        "--progress".as_ref(),
        "--verbose".as_ref(),
    ];
    let rate = format!("--max-rate={max_rate}");
    if !max_rate.is_empty() {
        args.push(rate.as_ref());
    }
    let slot_arg = slot.map(|s| format!("--slot={s}"));
    if let Some(s) = &slot_arg {
        args.push(s.as_ref());
    }
    run(
        bin,
        "pg_basebackup",
        &args,
        &up.env(format!("pgautofailover_basebackup_{node_id}")),
        Duration::from_secs(3600),
    )
    .await
}

/// `pg_rewind` of `pgdata` (stopped) against a running `up`.
pub async fn rewind(
    bin: &PgBin,
    up: &Upstream<'_>,
    pgdata: &Path,
    node_id: i64,
) -> Result<(), ToolError> {
    let source = up.conninfo(Some("postgres"));
    run(
        bin,
        "pg_rewind",
        &[
            "--target-pgdata".as_ref(),
            pgdata.as_os_str(),
            "--source-server".as_ref(),
            source.as_ref(),
            "--progress".as_ref(),
        ],
        &up.env(format!("pgautofailover_rewind_{node_id}")),
        Duration::from_secs(3600),
    )
    .await
}
