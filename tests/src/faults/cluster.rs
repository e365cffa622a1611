//! A campaign's cluster: a monitor, 2 or 3 nodes and `pg_autoproxy`, each
//! on a host of its own on a virtual LAN ([`crate::netns`]), every node's
//! PGDATA on a small file system of its own; and how each fault of
//! [`super::schedule::Kind`] is injected into it and healed.

use super::schedule::{Kind, Role, Topology};
use crate::autoctl::{postmaster_pid, Flavor, Formation, NodeState};
use crate::netns::{Host, Lan};
use crate::proxy::{Listener, Proxy, Role as ListenerRole};
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// Size of each node's file system (a tmpfs: a disk that can be filled;
/// small, so that filling it does not take the machine's memory with it).
const DISK_MB: u64 = 512;

/// States in which a node takes writes, as the monitor reports them.
const WRITABLE: &[&str] = &[
    "single",
    "wait_primary",
    "primary",
    "join_primary",
    "apply_settings",
];

/// What a fault hit, once its role is resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Node(String),
    Monitor,
    Proxy,
}

/// What must be undone when a fault ends.
#[derive(Debug)]
pub enum Undo {
    /// Remove every packet filter.
    Network,
    LinkUp(Host),
    /// Start the node's `pg_autoctl` again.
    Restart(String),
    RestartMonitor,
    Thaw(Host),
    Continue(String),
    RemoveBallast(PathBuf),
}

/// A cluster for the faults of one epoch.
pub struct Cluster {
    pub f: Formation,
    pub proxy: Proxy,
    pub topology: Topology,
    pub flavor: Flavor,
    pub lan: Lan,
}

impl Cluster {
    /// Build the cluster of `topology` with `flavor`'s `pg_autoctl`, and
    /// wait until it is a primary with streaming secondaries.
    pub async fn build(flavor: Flavor, topology: Topology, limit: Duration) -> Cluster {
        let mut f = Formation::on_lan(flavor).await;
        f.disk_mb = Some(DISK_MB);
        let lan = f.lan.clone().expect("a formation on a LAN");
        f.add_node_as(flavor, "node1", &[]);
        f.wait_states(&[("node1", "single")], limit).await;
        f.allow_clients("node1");
        // Keep WAL small enough for the node's file system; base backups
        // copy postgresql.auto.conf to the standbys.
        {
            let c = f.node_client("node1").await;
            for sql in [
                "ALTER SYSTEM SET wal_keep_size = '64MB'",
                "ALTER SYSTEM SET max_wal_size = '128MB'",
                "SELECT pg_reload_conf()",
            ] {
                c.batch_execute(sql)
                    .await
                    .unwrap_or_else(|e| panic!("{sql}: {e}"));
            }
        }
        for i in 2..=topology.nodes {
            let name = format!("node{i}");
            let extra: &[&str] = if topology.zero_priority_node && i == topology.nodes {
                &["--candidate-priority", "0"]
            } else {
                &[]
            };
            f.add_node_as(flavor, &name, extra);
            // One at a time: a standby joins while the others stream.
            let mut want: Vec<(String, &str)> = vec![("node1".into(), "primary")];
            for j in 2..=i {
                want.push((format!("node{j}"), "secondary"));
            }
            let want: Vec<(&str, &str)> = want.iter().map(|(n, s)| (n.as_str(), *s)).collect();
            f.wait_states(&want, limit).await;
        }
        if topology.number_sync_standbys > 0 {
            let c = f.monitor_client().await;
            let nss = topology.number_sync_standbys as i32;
            c.execute(
                "SELECT pgautofailover.set_formation_number_sync_standbys('default', $1)",
                &[&nss],
            )
            .await
            .expect("set number_sync_standbys");
        }
        let host = lan.add_host("proxy").expect("a host for the proxy");
        let proxy = Proxy::start_on(
            &f.dir,
            &f.monitor_uri,
            &[Listener {
                name: "rw",
                role: ListenerRole::ReadWrite,
                extra: String::new(),
            }],
            "",
            Some(&host),
        )
        .await;
        let c = Cluster {
            f,
            proxy,
            topology,
            flavor,
            lan,
        };
        c.wait_settled(limit).await;
        c
    }

    /// The proxy's read-write port.
    pub fn proxy_port(&self) -> (String, u16) {
        (self.proxy.addr.clone(), self.proxy.port("rw"))
    }

    /// Every node's address and port.
    pub fn nodes(&self) -> Vec<(String, u16)> {
        self.f
            .nodes
            .iter()
            .map(|n| (n.addr.clone(), n.port))
            .collect()
    }

    /// The monitor's view (empty when it does not answer).
    pub async fn states(&self) -> Vec<NodeState> {
        self.f.states().await
    }

    /// The node that takes writes, by the monitor (converged).
    pub async fn primary(&self) -> Option<String> {
        primary_of(&self.states().await)
    }

    /// A primary and every other node a converged secondary.
    pub fn is_settled(states: &[NodeState], nodes: usize) -> bool {
        states.len() == nodes
            && states
                .iter()
                .filter(|s| s.reported == "primary" && s.assigned == "primary")
                .count()
                == 1
            && states
                .iter()
                .filter(|s| s.reported == "secondary" && s.assigned == "secondary")
                .count()
                == nodes - 1
    }

    /// Wait until [`is_settled`](Self::is_settled); how long it took, or
    /// `None` after `limit`.
    pub async fn settle(&self, limit: Duration) -> Option<Duration> {
        let start = Instant::now();
        while start.elapsed() < limit {
            if Cluster::is_settled(&self.states().await, self.topology.nodes)
                && self.all_keepers_report().await
            {
                return Some(start.elapsed());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        None
    }

    /// Every keeper reported within the last few seconds (a group can look
    /// settled while a keeper cut off from the monitor is still finding
    /// its way back).
    async fn all_keepers_report(&self) -> bool {
        let Some(c) = self.f.monitor_client_opt().await else {
            return false;
        };
        // Upstream's keepers report every second, ours every 250 ms.
        c.query_one(
            "SELECT bool_and(reporttime > now() - interval '3 seconds') FROM pgautofailover.node",
            &[],
        )
        .await
        .ok()
        .and_then(|r| r.get::<_, Option<bool>>(0))
        .unwrap_or(false)
    }

    async fn wait_settled(&self, limit: Duration) {
        if self.settle(limit).await.is_none() {
            panic!(
                "the new cluster did not settle within {limit:?}: {:#?}",
                self.states().await
            );
        }
    }

    /// Which node (or service) `role` names now.
    pub async fn resolve(&self, role: Role) -> Target {
        match role {
            Role::Monitor => Target::Monitor,
            Role::Proxy => Target::Proxy,
            Role::Primary => Target::Node(self.primary().await.unwrap_or_else(|| "node1".into())),
            Role::Standby(k) => {
                let p = self.primary().await;
                let mut standbys: Vec<String> = self
                    .f
                    .nodes
                    .iter()
                    .map(|n| n.name.clone())
                    .filter(|n| Some(n) != p.as_ref())
                    .collect();
                standbys.sort();
                let i = usize::from(k) % standbys.len().max(1);
                Target::Node(standbys.get(i).cloned().unwrap_or_else(|| "node2".into()))
            }
        }
    }

    fn host(&self, t: &Target) -> Host {
        match t {
            Target::Monitor => self.f.monitor.host.clone(),
            Target::Proxy => self.lan.host("proxy"),
            Target::Node(n) => self
                .f
                .nodes
                .iter()
                .find(|x| &x.name == n)
                .and_then(|x| x.host.clone()),
        }
        .expect("every service of a campaign has a host")
    }

    fn node_name(t: &Target) -> Result<&str, String> {
        match t {
            Target::Node(n) => Ok(n),
            other => Err(format!("{other:?} is not a Postgres node")),
        }
    }

    /// Inject `kind`; returns what to undo when it ends, and a line saying
    /// what was done.
    pub async fn inject(&mut self, kind: Kind) -> Result<(Vec<Undo>, String), String> {
        let net = |e: crate::netns::NetError| e.to_string();
        match kind {
            Kind::Partition(a, b) | Kind::OneWay(a, b) => {
                let (ta, tb) = (self.resolve(a).await, self.resolve(b).await);
                let (ha, hb) = (self.host(&ta), self.host(&tb));
                self.lan.block(ha.addr, hb.addr).map_err(net)?;
                if matches!(kind, Kind::Partition(..)) {
                    self.lan.block(hb.addr, ha.addr).map_err(net)?;
                }
                Ok((vec![Undo::Network], format!("{ta:?} / {tb:?}")))
            }
            Kind::Isolate(r) => {
                let t = self.resolve(r).await;
                self.lan.isolate(self.host(&t).addr).map_err(net)?;
                Ok((vec![Undo::Network], format!("{t:?}")))
            }
            Kind::LinkDown(r) => {
                let t = self.resolve(r).await;
                let h = self.host(&t);
                self.lan.link_down(&h).map_err(net)?;
                Ok((vec![Undo::LinkUp(h)], format!("{t:?}")))
            }
            Kind::Loss(r, pct) => {
                let t = self.resolve(r).await;
                self.lan.loss(self.host(&t).addr, pct).map_err(net)?;
                Ok((vec![Undo::Network], format!("{t:?} {pct}%")))
            }
            Kind::KillHost(r) => {
                let t = self.resolve(r).await;
                let n = Cluster::node_name(&t)?.to_string();
                self.f.node(&n).kill9();
                Ok((vec![Undo::Restart(n.clone())], n))
            }
            Kind::KillPostmaster(r) => {
                let t = self.resolve(r).await;
                let n = Cluster::node_name(&t)?.to_string();
                let pgdata = self.f.node(&n).pgdata.clone();
                if let Some(pm) = postmaster_pid(&pgdata) {
                    crate::autoctl::signal(pm, libc::SIGKILL);
                }
                Ok((Vec::new(), n))
            }
            Kind::KillKeeper(r) => {
                let t = self.resolve(r).await;
                let n = Cluster::node_name(&t)?.to_string();
                self.f.node(&n).kill_keeper();
                Ok((vec![Undo::Restart(n.clone())], n))
            }
            Kind::FreezeKeeper(r) => {
                let t = self.resolve(r).await;
                let n = Cluster::node_name(&t)?.to_string();
                self.f.node(&n).pause_keeper(true);
                Ok((vec![Undo::Continue(n.clone())], n))
            }
            Kind::FreezeHost(r) => {
                let t = self.resolve(r).await;
                let h = self.host(&t);
                h.freeze().map_err(net)?;
                Ok((vec![Undo::Thaw(h)], format!("{t:?}")))
            }
            Kind::RestartMonitor => {
                self.f.monitor.kill9();
                Ok((vec![Undo::RestartMonitor], "monitor".into()))
            }
            Kind::DiskFull(r) => {
                let t = self.resolve(r).await;
                let n = Cluster::node_name(&t)?.to_string();
                let disk = self
                    .f
                    .node(&n)
                    .pgdata
                    .parent()
                    .map(PathBuf::from)
                    .ok_or("PGDATA has no parent")?;
                let ballast = disk.join("ballast");
                fill(&ballast)?;
                Ok((vec![Undo::RemoveBallast(ballast)], n))
            }
            Kind::Switchover => Ok((Vec::new(), self.switchover().await)),
            Kind::SwitchoverUnderLoss(pct) => {
                let t = self.resolve(Role::Standby(0)).await;
                self.lan.loss(self.host(&t).addr, pct).map_err(net)?;
                let asked = self.switchover().await;
                Ok((
                    vec![Undo::Network],
                    format!("loss on {t:?} {pct}%; {asked}"),
                ))
            }
            Kind::RestartMidFailover => {
                let old = Cluster::node_name(&self.resolve(Role::Primary).await)?.to_string();
                self.f.node(&old).kill9();
                let limit = match self.flavor {
                    Flavor::Ours => Duration::from_secs(30),
                    Flavor::Upstream => Duration::from_secs(120),
                };
                let start = Instant::now();
                let mut candidate = None;
                while start.elapsed() < limit && candidate.is_none() {
                    candidate = self.states().await.into_iter().find(|s| {
                        matches!(
                            s.assigned.as_str(),
                            "prepare_promotion" | "fast_forward" | "stop_replication"
                        )
                    });
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                let Some(c) = candidate else {
                    return Ok((
                        vec![Undo::Restart(old.clone())],
                        format!("{old} lost; no candidate within {limit:?}"),
                    ));
                };
                self.f.node(&c.name).kill9();
                self.f.restart(&c.name);
                Ok((
                    vec![Undo::Restart(old.clone())],
                    format!(
                        "{old} lost; candidate {} restarted in {}",
                        c.name, c.assigned
                    ),
                ))
            }
            Kind::MonitorCutAndLoss(pct) => {
                let p = self.resolve(Role::Primary).await;
                let s = self.resolve(Role::Standby(0)).await;
                let (hp, hm) = (self.host(&p), self.host(&Target::Monitor));
                self.lan.block(hp.addr, hm.addr).map_err(net)?;
                self.lan.block(hm.addr, hp.addr).map_err(net)?;
                self.lan.loss(self.host(&s).addr, pct).map_err(net)?;
                Ok((vec![Undo::Network], format!("{p:?}, loss on {s:?} {pct}%")))
            }
        }
    }

    /// What `pg_autoctl perform switchover` asks of the monitor (the same
    /// for both implementations); says how it went.
    async fn switchover(&self) -> String {
        match self.f.monitor_client_opt().await {
            Some(c) => c
                .execute("SELECT pgautofailover.perform_failover('default', 0)", &[])
                .await
                .map(|_| "switchover started".to_string())
                .unwrap_or_else(|e| format!("switchover refused: {e}")),
            None => "switchover not asked: the monitor does not answer".into(),
        }
    }

    /// Undo what [`inject`](Self::inject) did; a line per problem.
    pub async fn heal(&mut self, undo: Vec<Undo>) -> Vec<String> {
        let mut problems = Vec::new();
        for u in undo {
            match u {
                Undo::Network => {
                    if let Err(e) = self.lan.heal() {
                        problems.push(e.to_string());
                    }
                }
                Undo::LinkUp(h) => {
                    if let Err(e) = self.lan.link_up(&h) {
                        problems.push(e.to_string());
                    }
                }
                Undo::Restart(n) => {
                    if !self.f.node(&n).running() {
                        // A killed postmaster may still be exiting.
                        self.f.node(&n).kill9();
                        self.f.restart(&n);
                    }
                }
                Undo::RestartMonitor => {
                    if !self.f.monitor.running() {
                        self.f.restart_monitor();
                    }
                }
                Undo::Thaw(h) => {
                    if let Err(e) = h.thaw() {
                        problems.push(e.to_string());
                    }
                }
                Undo::Continue(n) => self.f.node(&n).pause_keeper(false),
                Undo::RemoveBallast(p) => {
                    if let Err(e) = std::fs::remove_file(&p) {
                        problems.push(format!("remove {}: {e}", p.display()));
                    }
                }
            }
        }
        problems
    }

    /// Every acknowledged id of `acks` (writer → ids) that the primary
    /// does not have.
    pub async fn missing(
        &mut self,
        acks: &std::collections::HashMap<String, Vec<super::observe::Ack>>,
    ) -> Result<Vec<(String, i64)>, String> {
        // A group that just settled may still move (a standby's rejoin):
        // wait a little for the primary.
        let deadline = Instant::now() + Duration::from_secs(30);
        let p = loop {
            match self.primary().await {
                Some(p) => break p,
                None if Instant::now() >= deadline => {
                    return Err(format!(
                        "no primary to read the writes from: {:?}",
                        self.states().await
                    ))
                }
                None => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        };
        let c = self.f.node_client(&p).await;
        let rows = c
            .query("SELECT writer, id FROM pgaf_campaign", &[])
            .await
            .map_err(|e| format!("read pgaf_campaign on {p}: {e}"))?;
        let have: std::collections::HashSet<(String, i64)> =
            rows.iter().map(|r| (r.get(0), r.get(1))).collect();
        let mut missing = Vec::new();
        for (w, list) in acks {
            for a in list {
                if !have.contains(&(w.clone(), a.id)) {
                    missing.push((w.clone(), a.id));
                }
            }
        }
        Ok(missing)
    }
}

/// The converged node in a writable state, if exactly one.
pub fn primary_of(states: &[NodeState]) -> Option<String> {
    let w: Vec<&NodeState> = states
        .iter()
        .filter(|s| s.reported == s.assigned && WRITABLE.contains(&s.reported.as_str()))
        .collect();
    match w.as_slice() {
        [one] => Some(one.name.clone()),
        _ => None,
    }
}

/// Fill the file system of `ballast` with it, leaving nothing free:
/// blocks are allocated in chunks, halved on ENOSPC down to one page (the
/// free space moves while Postgres writes).
fn fill(ballast: &std::path::Path) -> Result<(), String> {
    use std::os::fd::AsRawFd;
    let f = std::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .open(ballast)
        .map_err(|e| format!("create {}: {e}", ballast.display()))?;
    let mut offset: i64 = 0;
    let mut chunk: i64 = 64 << 20;
    while chunk >= 4096 {
        // SAFETY: fallocate on a file descriptor we own, with valid ranges.
        let r = unsafe { libc::fallocate(f.as_raw_fd(), 0, offset, chunk) };
        if r == 0 {
            offset += chunk;
            continue;
        }
        let e = std::io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::ENOSPC) {
            return Err(format!("fallocate {}: {e}", ballast.display()));
        }
        chunk /= 2;
    }
    Ok(())
}
