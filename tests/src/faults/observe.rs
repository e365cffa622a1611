//! The checkers that run for the whole campaign, from the clients' host
//! (the LAN's gateway):
//!
//! * **Writers.** One inserts through `pg_autoproxy`, one through the
//!   formation's multi-host URI (`target_session_attrs=read-write`, 2 s
//!   connect timeout, `tcp_user_timeout`). Each insert carries a unique id;
//!   an id counts as acknowledged once its `INSERT` returned (autocommit:
//!   the commit was acknowledged, synchronously replicated when the
//!   primary asks for it). An insert without an answer within 2 s drops
//!   the connection and the writer starts over with a new id.
//! * **Probes.** Every 10 ms, one probe per node and one through the proxy
//!   update a row of their own and ask which server answered. A probe that
//!   returns means that node took (and acknowledged) a write between the
//!   probe's start and its answer. Two nodes doing so over overlapping
//!   times is a split-brain interval.
//!
//! Everything is timed on one monotonic clock ([`Observer::since`]).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio_postgres::{Client, Config, NoTls};

/// Table of the writers' rows.
pub const WRITES: &str = "CREATE TABLE IF NOT EXISTS pgaf_campaign \
     (writer text, id bigint, at timestamptz DEFAULT clock_timestamp(), PRIMARY KEY (writer, id))";
/// Table of the probes' rows (one row per probe, updated in place).
pub const PROBES: &str =
    "CREATE TABLE IF NOT EXISTS pgaf_probe (k int PRIMARY KEY, n bigint NOT NULL DEFAULT 0)";

/// How often a probe asks.
const PROBE_EVERY: Duration = Duration::from_millis(10);
/// Consecutive probe answers from one node closer than this are one
/// interval.
const MERGE_GAP: Duration = Duration::from_millis(30);
/// A write or probe without an answer this long is abandoned.
const ANSWER_WITHIN: Duration = Duration::from_secs(2);

/// One acknowledged insert.
#[derive(Debug, Clone, Copy)]
pub struct Ack {
    pub id: i64,
    /// When the insert was sent and when its answer came, in seconds since
    /// the observer started.
    pub sent: f64,
    pub acked: f64,
}

/// A stretch of time during which `server` took every write a probe sent.
#[derive(Debug, Clone)]
pub struct Writable {
    pub probe: String,
    pub server: String,
    pub from: f64,
    pub to: f64,
}

/// Two nodes taking writes at overlapping times.
#[derive(Debug, Clone)]
pub struct SplitBrain {
    pub a: Writable,
    pub b: Writable,
    pub from: f64,
    pub to: f64,
}

#[derive(Default)]
struct Log {
    acks: HashMap<String, Vec<Ack>>,
    writable: Vec<Writable>,
}

/// The writers and probes of a campaign, running until [`stop`](Self::stop).
pub struct Observer {
    start: Instant,
    stop: Arc<AtomicBool>,
    log: Arc<Mutex<Log>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

/// A connection configuration for `host:port` as `postgres`, with short
/// timeouts so that a partitioned server is abandoned quickly.
pub fn config(hosts: &[(String, u16)], read_write: bool) -> Config {
    let mut c = Config::new();
    for (h, p) in hosts {
        c.host(h).port(*p);
    }
    c.user("postgres")
        .dbname("postgres")
        .application_name("pgaf-campaign")
        .connect_timeout(Duration::from_secs(2))
        .tcp_user_timeout(Duration::from_secs(2))
        .keepalives_idle(Duration::from_secs(1));
    if read_write {
        c.target_session_attrs(tokio_postgres::config::TargetSessionAttrs::ReadWrite);
    }
    c
}

/// Connect to the first host of `cfg` that answers within 2 s (and takes
/// writes, when `cfg` asks for it), trying them in order, as libpq does
/// with `connect_timeout`: tokio-postgres's own timeout covers the TCP
/// connection only, so a frozen host (whose kernel still accepts
/// connections) would hold a multi-host attempt forever.
async fn connect(cfg: &Config) -> Option<Client> {
    for (host, port) in cfg.get_hosts().iter().zip(cfg.get_ports()) {
        let tokio_postgres::config::Host::Tcp(h) = host else {
            continue;
        };
        let mut single = Config::new();
        single
            .host(h)
            .port(*port)
            .user(cfg.get_user().unwrap_or("postgres"))
            .dbname(cfg.get_dbname().unwrap_or("postgres"))
            .application_name("pgaf-campaign")
            .connect_timeout(ANSWER_WITHIN)
            .tcp_user_timeout(ANSWER_WITHIN)
            .target_session_attrs(cfg.get_target_session_attrs());
        if let Ok(Ok((client, conn))) =
            tokio::time::timeout(ANSWER_WITHIN, single.connect(NoTls)).await
        {
            tokio::spawn(async move {
                let _ = conn.await;
            });
            return Some(client);
        }
    }
    None
}

impl Observer {
    /// Create the tables through `proxy` (a read-write port), then start
    /// the two writers and a probe per node (`nodes`: address, port) and
    /// one through the proxy.
    pub async fn start(proxy: (String, u16), nodes: &[(String, u16)]) -> Observer {
        let cfg = config(std::slice::from_ref(&proxy), false);
        let client = connect(&cfg)
            .await
            .expect("connect through the proxy to create the campaign's tables");
        client
            .batch_execute(&format!("{WRITES}; {PROBES}"))
            .await
            .expect("create the campaign's tables");
        let probes: Vec<(String, Config)> = std::iter::once(("proxy".to_string(), cfg.clone()))
            .chain(nodes.iter().map(|n| {
                (
                    format!("node {}", n.0),
                    config(std::slice::from_ref(n), false),
                )
            }))
            .collect();
        for k in 0..probes.len() {
            let k = k as i32;
            client
                .execute(
                    "INSERT INTO pgaf_probe (k) VALUES ($1) ON CONFLICT DO NOTHING",
                    &[&k],
                )
                .await
                .expect("create the probe rows");
        }
        drop(client);
        let o = Observer {
            start: Instant::now(),
            stop: Arc::new(AtomicBool::new(false)),
            log: Arc::new(Mutex::new(Log::default())),
            tasks: Vec::new(),
        };
        let mut o = o;
        o.spawn_writer("proxy", cfg);
        o.spawn_writer("uri", config(nodes, true));
        for (k, (name, cfg)) in probes.into_iter().enumerate() {
            o.spawn_probe(k as i32, name, cfg);
        }
        o
    }

    /// Seconds since the observer started (the clock of every record).
    pub fn since(&self, t: Instant) -> f64 {
        t.saturating_duration_since(self.start).as_secs_f64()
    }

    /// Now, on the observer's clock.
    pub fn now(&self) -> f64 {
        self.since(Instant::now())
    }

    fn spawn_writer(&mut self, name: &'static str, cfg: Config) {
        let (stop, log, start) = (self.stop.clone(), self.log.clone(), self.start);
        self.tasks.push(tokio::spawn(async move {
            let mut next: i64 = 1;
            let mut client: Option<Client> = None;
            while !stop.load(Ordering::Relaxed) {
                if client.as_ref().is_none_or(|c| c.is_closed()) {
                    client = connect(&cfg).await;
                    if client.is_none() {
                        tokio::time::sleep(Duration::from_millis(20)).await;
                        continue;
                    }
                }
                let Some(c) = client.as_ref() else { continue };
                let id = next;
                next += 1;
                let sent = Instant::now();
                let params: [&(dyn tokio_postgres::types::ToSql + Sync); 2] = [&name, &id];
                let insert = c.execute(
                    "INSERT INTO pgaf_campaign (writer, id) VALUES ($1, $2)",
                    &params,
                );
                match tokio::time::timeout(ANSWER_WITHIN, insert).await {
                    Ok(Ok(_)) => {
                        let acked = Instant::now();
                        if let Ok(mut l) = log.lock() {
                            l.acks.entry(name.to_string()).or_default().push(Ack {
                                id,
                                sent: sent.saturating_duration_since(start).as_secs_f64(),
                                acked: acked.saturating_duration_since(start).as_secs_f64(),
                            });
                        }
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                    _ => {
                        client = None;
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                }
            }
        }));
    }

    fn spawn_probe(&mut self, k: i32, name: String, cfg: Config) {
        let (stop, log, start) = (self.stop.clone(), self.log.clone(), self.start);
        self.tasks.push(tokio::spawn(async move {
            let mut client: Option<Client> = None;
            // The record of the current run of answers, in the log.
            let mut run: Option<usize> = None;
            while !stop.load(Ordering::Relaxed) {
                tokio::time::sleep(PROBE_EVERY).await;
                if client.as_ref().is_none_or(|c| c.is_closed()) {
                    client = connect(&cfg).await;
                    if client.is_none() {
                        run = None;
                        continue;
                    }
                }
                let Some(c) = client.as_ref() else { continue };
                let t0 = Instant::now();
                let params: [&(dyn tokio_postgres::types::ToSql + Sync); 1] = [&k];
                let q = c.query_one(
                    "UPDATE pgaf_probe SET n = n + 1 WHERE k = $1 RETURNING host(inet_server_addr())",
                    &params,
                );
                match tokio::time::timeout(ANSWER_WITHIN, q).await {
                    Ok(Ok(row)) => {
                        let server: String = row.try_get(0).unwrap_or_default();
                        let from = t0.saturating_duration_since(start).as_secs_f64();
                        let to = Instant::now().saturating_duration_since(start).as_secs_f64();
                        let Ok(mut l) = log.lock() else { continue };
                        let extends = run.and_then(|i| l.writable.get_mut(i)).filter(|w| {
                            w.server == server && from - w.to <= MERGE_GAP.as_secs_f64()
                        });
                        match extends {
                            Some(w) => w.to = to,
                            None => {
                                l.writable.push(Writable {
                                    probe: name.clone(),
                                    server,
                                    from,
                                    to,
                                });
                                run = Some(l.writable.len() - 1);
                            }
                        }
                    }
                    // A standby (read-only) or a refused write.
                    Ok(Err(_)) => run = None,
                    Err(_) => {
                        run = None;
                        client = None;
                    }
                }
            }
        }));
    }

    /// The acknowledged writes of every writer so far, by writer.
    pub fn acks(&self) -> HashMap<String, Vec<Ack>> {
        self.log.lock().map(|l| l.acks.clone()).unwrap_or_default()
    }

    /// The longest time without an acknowledged write, per writer, over
    /// `[from, to]` (observer seconds): the largest gap between two
    /// consecutive acknowledgements, counting the window's edges.
    pub fn longest_gap(&self, from: f64, to: f64) -> HashMap<String, f64> {
        let acks = self.acks();
        acks.iter()
            .map(|(w, list)| {
                let mut last = from;
                let mut gap: f64 = 0.0;
                for a in list.iter().filter(|a| a.acked >= from && a.acked <= to) {
                    gap = gap.max(a.acked - last);
                    last = a.acked;
                }
                gap = gap.max(to - last);
                (w.clone(), gap)
            })
            .collect()
    }

    /// Every interval during which two different nodes took writes,
    /// among the probes' records that end after `after`.
    pub fn split_brains(&self, after: f64) -> Vec<SplitBrain> {
        let mut w: Vec<Writable> = self
            .log
            .lock()
            .map(|l| {
                l.writable
                    .iter()
                    .filter(|x| x.to >= after)
                    .cloned()
                    .collect()
            })
            .unwrap_or_default();
        w.sort_by(|a, b| a.from.total_cmp(&b.from));
        let mut found = Vec::new();
        for (i, a) in w.iter().enumerate() {
            for b in &w[i + 1..] {
                if b.from > a.to {
                    break;
                }
                if a.server != b.server {
                    found.push(SplitBrain {
                        a: a.clone(),
                        b: b.clone(),
                        from: b.from,
                        to: a.to.min(b.to),
                    });
                }
            }
        }
        found
    }

    /// Stop every writer and probe (each finishes its current request, 2 s
    /// at most).
    pub async fn stop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.tasks.drain(..) {
            let _ = tokio::time::timeout(Duration::from_secs(5), t).await;
        }
    }
}

impl Drop for Observer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in &self.tasks {
            t.abort();
        }
    }
}
