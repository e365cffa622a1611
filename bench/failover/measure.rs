//! One measurement on a running two-node cluster: a switchover
//! (`perform_failover`) or a host loss (SIGKILL to the primary's
//! `pg_autoctl` and postmaster), with a client writing through the
//! multi-host URI (`target_session_attrs=read-write`) for its whole length.
//! Every measurement ends with the cluster back to primary + secondary and
//! checks that every acknowledged write is on the new primary.

use anyhow::{bail, Context, Result};
use pgaf_tests::autoctl::{assert_all_present, Formation, Writer};
use std::time::{Duration, Instant};
use tokio_postgres::Client;

/// How long any single step may take (upstream's host loss needs ~51 s).
const STEP_LIMIT: Duration = Duration::from_secs(180);
/// How often the monitor is polled for states.
const POLL: Duration = Duration::from_millis(20);
/// Writes before the fault, and after the cluster is whole again.
const SETTLE: Duration = Duration::from_secs(1);

/// A switchover, in seconds.
#[derive(Clone, Copy, Debug)]
pub struct Switchover {
    /// Longest gap between two acknowledged writes around the switchover.
    pub gap: f64,
    /// From `perform_failover` to old primary `secondary` and new `primary`.
    pub done: f64,
    /// 1-minute load average when the measurement started.
    pub load: f64,
}

/// A host loss, in seconds.
#[derive(Clone, Copy, Debug)]
pub struct HostLoss {
    /// From SIGKILL to the first acknowledged write.
    pub first_write: f64,
    /// From SIGKILL to the survivor being `wait_primary` (or `primary`),
    /// reported and assigned.
    pub promoted: f64,
    /// From restarting the old primary's `pg_autoctl` (at once after
    /// `promoted`) to old `secondary` and new `primary`.
    pub rejoin: f64,
    /// 1-minute load average when the measurement started.
    pub load: f64,
}

/// The 1-minute load average.
pub fn load_average() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().and_then(|v| v.parse().ok()))
        .unwrap_or(f64::NAN)
}

/// `(name, reported, assigned)` of every node, from the monitor.
async fn states(monitor: &Client) -> Result<Vec<(String, String, String)>> {
    let rows = monitor
        .query(
            "SELECT nodename::text, current_group_state::text, assigned_group_state::text
               FROM pgautofailover.current_state('default')",
            &[],
        )
        .await
        .context("read current_state from the monitor")?;
    Ok(rows
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect())
}

/// Poll until every `(name, states)` has reported = assigned = one of
/// `states`; returns the time since `start`.
async fn wait_for(monitor: &Client, want: &[(&str, &[&str])], start: Instant) -> Result<f64> {
    let deadline = Instant::now() + STEP_LIMIT;
    loop {
        let now = states(monitor).await?;
        let ok = want.iter().all(|(name, allowed)| {
            now.iter()
                .any(|(n, r, a)| n == name && r == a && allowed.contains(&r.as_str()))
        });
        if ok {
            return Ok(start.elapsed().as_secs_f64());
        }
        if Instant::now() >= deadline {
            bail!("timed out after {STEP_LIMIT:?} waiting for {want:?}; the monitor says {now:?}");
        }
        tokio::time::sleep(POLL).await;
    }
}

/// The current primary and secondary of the group.
async fn roles(monitor: &Client) -> Result<(String, String)> {
    let now = states(monitor).await?;
    let find = |s: &str| {
        now.iter()
            .find(|(_, r, a)| r == s && a == s)
            .map(|(n, _, _)| n.clone())
    };
    match (find("primary"), find("secondary")) {
        (Some(p), Some(s)) => Ok((p, s)),
        _ => bail!("the group is not primary + secondary: {now:?}"),
    }
}

/// A writer on an empty table (its ids restart at 1), once it wrote.
async fn start_writer(f: &mut Formation, primary: &str) -> Result<Writer> {
    let c = f.node_client(primary).await;
    c.batch_execute("DROP TABLE IF EXISTS pgaf_writes")
        .await
        .context("drop the previous measurement's table")?;
    let writer = Writer::start(f.uri("postgres")).await;
    let first = Instant::now();
    while writer.acked() == 0 {
        if first.elapsed() > Duration::from_secs(30) {
            bail!("no write acknowledged within 30 s of starting the writer");
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    tokio::time::sleep(SETTLE).await;
    Ok(writer)
}

/// Stop the writer and check that every acknowledged write is on `primary`.
async fn finish_writer(f: &mut Formation, writer: Writer, primary: &str) -> Vec<Instant> {
    tokio::time::sleep(SETTLE).await;
    let times = writer.ack_times();
    let acked = writer.stop().await;
    let c = f.node_client(primary).await;
    assert_all_present(&c, &acked).await;
    times
}

/// The longest gap between consecutive acknowledged writes among those
/// that overlap `[from, to]`.
fn longest_gap(times: &[Instant], from: Instant, to: Instant) -> f64 {
    times
        .windows(2)
        .filter(|w| w[1] >= from && w[0] <= to)
        .map(|w| w[1].duration_since(w[0]).as_secs_f64())
        .fold(0.0, f64::max)
}

/// `perform_failover` on the monitor, the writer running.
pub async fn switchover(f: &mut Formation) -> Result<Switchover> {
    let load = load_average();
    let monitor = f.monitor_client().await;
    let (old, new) = roles(&monitor).await?;
    let writer = start_writer(f, &old).await?;
    let start = Instant::now();
    monitor
        .execute("SELECT pgautofailover.perform_failover('default', 0)", &[])
        .await
        .context("perform_failover")?;
    let done = wait_for(
        &monitor,
        &[(&new, &["primary"]), (&old, &["secondary"])],
        start,
    )
    .await?;
    let end = Instant::now();
    let times = finish_writer(f, writer, &new).await;
    Ok(Switchover {
        gap: longest_gap(&times, start, end),
        done,
        load,
    })
}

/// Host loss of the primary, the writer running; then the old primary's
/// `pg_autoctl` is started again and rejoins.
pub async fn host_loss(f: &mut Formation) -> Result<HostLoss> {
    let load = load_average();
    let monitor = f.monitor_client().await;
    let (old, new) = roles(&monitor).await?;
    let writer = start_writer(f, &old).await?;
    let start = Instant::now();
    f.node(&old).kill9();
    // The old postmaster is gone: a write acknowledged from now on was
    // committed by the new primary.
    let killed = Instant::now();
    while writer.last_ack().is_none_or(|at| at <= killed) {
        if start.elapsed() > STEP_LIMIT {
            bail!("no write acknowledged within {STEP_LIMIT:?} of the host loss");
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let promoted = wait_for(&monitor, &[(&new, &["wait_primary", "primary"])], start).await?;
    let restart = Instant::now();
    f.restart(&old);
    let rejoin = wait_for(
        &monitor,
        &[(&new, &["primary"]), (&old, &["secondary"])],
        restart,
    )
    .await?;
    let times = finish_writer(f, writer, &new).await;
    let first_write = times
        .iter()
        .find(|at| **at > killed)
        .map(|at| at.duration_since(start).as_secs_f64())
        .context("the first write after the host loss is not recorded")?;
    Ok(HostLoss {
        first_write,
        promoted,
        rejoin,
        load,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn longest_gap_counts_gaps_that_overlap_the_window() {
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        let times = [at(0), at(10), at(500), at(520), at(2000), at(2010)];
        // Window [15, 510]: gaps 10→500 and 500→520 overlap it.
        assert!((longest_gap(&times, at(15), at(510)) - 0.49).abs() < 1e-9);
        // Window [530, 600]: only 520→2000 overlaps it.
        assert!((longest_gap(&times, at(530), at(600)) - 1.48).abs() < 1e-9);
        assert_eq!(longest_gap(&[], at(0), at(1)), 0.0);
    }
}
