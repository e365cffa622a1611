//! The running proxy: worker runtimes, listeners, the monitor follower,
//! the admin server, and what happens on SIGHUP (reload) and SIGTERM
//! (drain).
//!
//! **Runtimes.** By default (`runtime = "per-core"`) each worker thread
//! runs its own single-threaded tokio runtime; every listening socket is
//! shared (dup'ed) by all workers, so the kernel hands each connection to
//! one of them and the session then lives on that thread for good: no
//! work stealing, no cross-thread wakeups on the relay path.
//! `runtime = "multi-thread"` uses one work-stealing runtime instead. The
//! monitor follower, the admin server and signal handling run on the main
//! thread's runtime.
//!
//! **Reload** ([`App::reload`]) re-reads the file (flags still win),
//! validates, binds new addresses first and only then commits: changed
//! settings apply to new connections, removed listeners stop accepting
//! (their sessions continue), the follower restarts if the monitor or the
//! set of groups changed. A bad file changes nothing.
//!
//! **Drain** ([`App::drain`]): readiness drops, listeners close, waiting
//! connections are refused (57P03), sessions get `drain_timeout` to end on
//! their own, then the rest are closed (57P01 where possible).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::AtomicUsize;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use arc_swap::ArcSwap;
use tokio::runtime::Handle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::admin::AdminState;
use crate::cancel::CancelMap;
use crate::config::{Config, ListenerConfig, Overrides, RuntimeFlavor, Scheduling};
use crate::connect::{Connect, TcpConnector};
use crate::fence::FenceReason;
use crate::listener::{ListenerCtx, Shared};
use crate::metrics::{metrics, ListenerMetrics};
use crate::monitor::MonitorStatus;
use crate::route::{GroupKey, RouteRegistry};

/// Worker runtimes that run accept loops and sessions.
pub(crate) struct Workers {
    handles: Vec<Handle>,
    stop: CancellationToken,
    threads: Vec<std::thread::JoinHandle<()>>,
    multi: Option<tokio::runtime::Runtime>,
}

impl Workers {
    pub(crate) fn start(
        flavor: RuntimeFlavor,
        n: usize,
        scheduling: Scheduling,
    ) -> anyhow::Result<Workers> {
        let stop = CancellationToken::new();
        match flavor {
            RuntimeFlavor::MultiThread => {
                let rt = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(n)
                    .thread_name("pgautoproxy-worker")
                    .on_thread_start(move || set_scheduling(scheduling))
                    .enable_io()
                    .enable_time()
                    .build()
                    .context("start the worker runtime")?;
                Ok(Workers {
                    handles: vec![rt.handle().clone()],
                    stop,
                    threads: Vec::new(),
                    multi: Some(rt),
                })
            }
            RuntimeFlavor::PerCore => {
                let mut handles = Vec::with_capacity(n);
                let mut threads = Vec::with_capacity(n);
                for i in 0..n {
                    // I/O and timers only: the signal and process drivers
                    // (main runtime) would add work to every park.
                    let rt = tokio::runtime::Builder::new_current_thread()
                        .enable_io()
                        .enable_time()
                        .build()
                        .context("start a worker runtime")?;
                    handles.push(rt.handle().clone());
                    let stop = stop.clone();
                    let t = std::thread::Builder::new()
                        .name(format!("pgautoproxy-w{i}"))
                        .spawn(move || {
                            set_scheduling(scheduling);
                            rt.block_on(stop.cancelled())
                        })
                        .context("start a worker thread")?;
                    threads.push(t);
                }
                Ok(Workers {
                    handles,
                    stop,
                    threads,
                    multi: None,
                })
            }
        }
    }

    /// Run a copy of an accept loop on every worker.
    fn spawn_accept(
        &self,
        listener: &std::net::TcpListener,
        ctx: &Arc<ArcSwap<ListenerCtx>>,
        stop: &CancellationToken,
        tracker: &TaskTracker,
    ) -> anyhow::Result<()> {
        for h in &self.handles {
            let std = listener.try_clone().context("share the listening socket")?;
            let (ctx, stop, tracker) = (ctx.clone(), stop.clone(), tracker.clone());
            h.spawn(async move {
                match tokio::net::TcpListener::from_std(std) {
                    Ok(l) => crate::listener::serve(l, ctx, stop, tracker).await,
                    Err(e) => tracing::error!("failed to register a listening socket: {e}"),
                }
            });
        }
        Ok(())
    }

    pub(crate) fn shutdown(mut self) {
        self.stop.cancel();
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
        if let Some(rt) = self.multi.take() {
            rt.shutdown_timeout(Duration::from_secs(1));
        }
    }
}

/// Give the calling worker thread its scheduling policy; a refusal only
/// costs performance.
fn set_scheduling(policy: Scheduling) {
    if let Err(e) = crate::sched::apply_to_current_thread(policy) {
        tracing::warn!("failed to set the worker threads' scheduling policy ({policy:?}): {e}");
    }
}

/// Bind a listening socket (SO_REUSEADDR, backlog 1024, non-blocking).
pub(crate) fn bind(addr: SocketAddr) -> std::io::Result<std::net::TcpListener> {
    use socket2::{Domain, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    socket.set_reuse_address(true)?;
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    socket.bind(&addr.into())?;
    socket.listen(1024)?;
    socket.set_nonblocking(true)?;
    Ok(socket.into())
}

struct RunningListener {
    config: ListenerConfig,
    ctx: Arc<ArcSwap<ListenerCtx>>,
    stop: CancellationToken,
    local_addr: SocketAddr,
}

/// The whole proxy.
pub(crate) struct App {
    config_path: Option<PathBuf>,
    overrides: Overrides,
    pub(crate) config: Config,
    shared: Arc<Shared>,
    workers: Option<Workers>,
    listeners: Vec<RunningListener>,
    pub(crate) monitor_status: Arc<MonitorStatus>,
    follower: Option<(CancellationToken, tokio::task::JoinHandle<()>)>,
    tracker: TaskTracker,
    pub(crate) admin: Arc<AdminState>,
    admin_stop: CancellationToken,
    pub(crate) admin_addr: Option<SocketAddr>,
}

impl App {
    /// Bind everything and start. Must run inside the main runtime.
    pub(crate) async fn start(
        config: Config,
        config_path: Option<PathBuf>,
        overrides: Overrides,
    ) -> anyhow::Result<App> {
        let connector: Arc<dyn Connect> = Arc::new(TcpConnector {
            keepalive: config.proxy.keepalive,
        });
        let shared = Arc::new(Shared {
            routes: Arc::new(RouteRegistry::default()),
            cancels: Arc::new(CancelMap::default()),
            connector,
            draining: CancellationToken::new(),
            connections: AtomicUsize::new(0),
        });
        let workers = Workers::start(
            config.proxy.runtime,
            config.proxy.workers,
            config.proxy.scheduling,
        )?;
        let monitor_status = Arc::new(MonitorStatus::default());
        let admin = Arc::new(AdminState {
            listeners: ArcSwap::from_pointee(Vec::new()),
            monitor: monitor_status.clone(),
            draining: shared.draining.clone(),
        });
        let mut app = App {
            config_path,
            overrides,
            config: config.clone(),
            shared,
            workers: Some(workers),
            listeners: Vec::new(),
            monitor_status,
            follower: None,
            tracker: TaskTracker::new(),
            admin,
            admin_stop: CancellationToken::new(),
            admin_addr: None,
        };
        app.apply_listeners(&config).await?;
        app.restart_follower();
        if let Some(addr) = config.admin {
            let std = bind(addr).with_context(|| format!("bind the admin port {addr}"))?;
            app.admin_addr = std.local_addr().ok();
            let l = tokio::net::TcpListener::from_std(std).context("register the admin port")?;
            tokio::spawn(crate::admin::serve(
                l,
                app.admin.clone(),
                app.admin_stop.clone(),
            ));
        }
        Ok(app)
    }

    /// The addresses listeners are bound to (port 0 resolved), by name.
    #[cfg(test)]
    pub(crate) fn local_addrs(&self) -> std::collections::HashMap<String, SocketAddr> {
        self.listeners
            .iter()
            .map(|l| (l.config.name.clone(), l.local_addr))
            .collect()
    }

    #[cfg(test)]
    pub(crate) fn routes(&self) -> Arc<RouteRegistry> {
        self.shared.routes.clone()
    }

    fn build_ctx(&self, l: &ListenerConfig, config: &Config) -> anyhow::Result<ListenerCtx> {
        let (tls, backend_tls) =
            crate::tls::listener_tls(&l.tls).with_context(|| format!("listener \"{}\"", l.name))?;
        let group = self.shared.routes.get_or_create(&GroupKey {
            formation: l.formation.clone(),
            group: l.group,
        });
        Ok(ListenerCtx {
            config: l.clone(),
            settings: config.proxy.clone(),
            group,
            tls,
            backend_tls,
            metrics: ListenerMetrics::new(&l.name),
            shared: self.shared.clone(),
            round_robin: AtomicUsize::new(0),
        })
    }

    /// Make the running listeners match `config` (all-or-nothing).
    async fn apply_listeners(&mut self, config: &Config) -> anyhow::Result<()> {
        enum Plan {
            Update(usize, ListenerCtx),
            Start(ListenerConfig, std::net::TcpListener, ListenerCtx),
        }
        let mut plans = Vec::new();
        for l in &config.listeners {
            let ctx = self.build_ctx(l, config)?;
            let existing = self
                .listeners
                .iter()
                .position(|r| r.config.name == l.name && r.config.listen == l.listen);
            match existing {
                Some(i) => plans.push(Plan::Update(i, ctx)),
                None => {
                    // Rebinding an address we already hold under another
                    // name would fail: reuse is handled as stop + start with
                    // SO_REUSEADDR only when the old one is gone, so refuse.
                    if self
                        .listeners
                        .iter()
                        .any(|r| r.config.listen == l.listen && l.listen.port() != 0)
                    {
                        anyhow::bail!("listener \"{}\": {} is still used by another listener; rename or move in two steps", l.name, l.listen);
                    }
                    let std = bind(l.listen)
                        .with_context(|| format!("bind listener \"{}\" to {}", l.name, l.listen))?;
                    plans.push(Plan::Start(l.clone(), std, ctx));
                }
            }
        }
        // Commit.
        let keep: Vec<usize> = plans
            .iter()
            .filter_map(|p| {
                if let Plan::Update(i, _) = p {
                    Some(*i)
                } else {
                    None
                }
            })
            .collect();
        let mut kept = Vec::new();
        for (i, r) in std::mem::take(&mut self.listeners).into_iter().enumerate() {
            if keep.contains(&i) {
                kept.push(Some(r));
            } else {
                tracing::info!(listener = %r.config.name, addr = %r.local_addr, "listener stopped");
                r.stop.cancel();
                kept.push(None);
            }
        }
        let tracker = self.tracker.clone();
        for p in plans {
            match p {
                Plan::Update(i, ctx) => {
                    if let Some(mut r) = kept[i].take() {
                        r.ctx.store(Arc::new(ctx));
                        r.config = r.ctx.load().config.clone();
                        self.listeners.push(r);
                    }
                }
                Plan::Start(config, std, ctx) => {
                    let local_addr = std.local_addr().unwrap_or(config.listen);
                    let ctx = Arc::new(ArcSwap::from_pointee(ctx));
                    let stop = CancellationToken::new();
                    if let Some(w) = &self.workers {
                        w.spawn_accept(&std, &ctx, &stop, &tracker)?;
                    }
                    tracing::info!(listener = %config.name, addr = %local_addr, formation = %config.formation, group = config.group, "listening");
                    self.listeners.push(RunningListener {
                        config,
                        ctx,
                        stop,
                        local_addr,
                    });
                }
            }
        }
        let keys: Vec<GroupKey> = self
            .listeners
            .iter()
            .map(|l| l.ctx.load().group.key.clone())
            .collect();
        self.shared.routes.retain(&keys);
        self.admin.listeners.store(Arc::new(
            self.listeners.iter().map(|l| l.ctx.load_full()).collect(),
        ));
        Ok(())
    }

    fn restart_follower(&mut self) {
        if let Some((stop, _)) = self.follower.take() {
            stop.cancel();
        }
        let stop = CancellationToken::new();
        let groups = self.shared.routes.all();
        let handle = tokio::spawn(crate::monitor::follow(
            self.config.monitor.clone(),
            groups,
            self.monitor_status.clone(),
            stop.clone(),
        ));
        self.follower = Some((stop, handle));
    }

    /// Re-read the configuration and apply it. On error nothing changes.
    pub(crate) async fn reload(&mut self) -> anyhow::Result<()> {
        let result = self.try_reload().await;
        let outcome = if result.is_ok() { "ok" } else { "error" };
        metrics()
            .config_reloads_total
            .with_label_values(&[outcome])
            .inc();
        result
    }

    async fn try_reload(&mut self) -> anyhow::Result<()> {
        let new = Config::load(self.config_path.as_deref(), &self.overrides)?;
        if new.proxy.workers != self.config.proxy.workers
            || new.proxy.runtime != self.config.proxy.runtime
            || new.proxy.scheduling != self.config.proxy.scheduling
        {
            tracing::warn!(
                "proxy.workers, proxy.runtime and proxy.scheduling change only at restart"
            );
        }
        if new.admin != self.config.admin {
            tracing::warn!("admin.listen changes only at restart");
        }
        if new.log != self.config.log {
            tracing::warn!("log settings change only at restart");
        }
        let groups_before: Vec<GroupKey> = self
            .shared
            .routes
            .all()
            .iter()
            .map(|g| g.key.clone())
            .collect();
        self.apply_listeners(&new).await?;
        let groups_after: Vec<GroupKey> = self
            .shared
            .routes
            .all()
            .iter()
            .map(|g| g.key.clone())
            .collect();
        let monitor_changed = new.monitor != self.config.monitor;
        self.config = new;
        if monitor_changed || groups_before != groups_after {
            tracing::info!("restarting the monitor follower");
            self.restart_follower();
        }
        tracing::info!(listeners = self.listeners.len(), "configuration reloaded");
        Ok(())
    }

    /// Stop accepting, let sessions finish for `drain_timeout`, then close
    /// the rest. Returns the number of sessions closed by force.
    pub(crate) async fn drain(&mut self) -> usize {
        let drain = self.config.proxy.drain_timeout;
        self.shared.draining.cancel();
        for l in &self.listeners {
            l.stop.cancel();
        }
        self.tracker.close();
        let open = self.tracker.len();
        tracing::info!(sessions = open, timeout = ?drain, "draining");
        let mut forced = 0;
        if tokio::time::timeout(drain, self.tracker.wait())
            .await
            .is_err()
        {
            for g in self.shared.routes.all() {
                forced += g.fence_all(FenceReason::Shutdown);
            }
            tracing::info!(
                sessions = forced,
                "drain time over: closing the remaining sessions"
            );
            if tokio::time::timeout(Duration::from_secs(5), self.tracker.wait())
                .await
                .is_err()
            {
                tracing::warn!(
                    sessions = self.tracker.len(),
                    "some sessions did not close in time"
                );
            }
        }
        forced
    }

    /// Stop the background tasks and the workers.
    pub(crate) async fn shutdown(mut self) {
        self.admin_stop.cancel();
        if let Some((stop, handle)) = self.follower.take() {
            stop.cancel();
            let _ = tokio::time::timeout(Duration::from_secs(2), handle).await;
        }
        if let Some(w) = self.workers.take() {
            // Joining threads blocks: do it off the runtime.
            let _ = tokio::task::spawn_blocking(move || w.shutdown()).await;
        }
    }
}
