//! The command line (clap) and the process around the proxy: logging, the
//! main runtime, signals (SIGHUP reload, SIGTERM/SIGINT drain), `--check`
//! and `--print-systemd-unit`. `anyhow` is used here and nowhere below.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use clap::Parser;
use tokio::signal::unix::{signal, SignalKind};

use crate::app::App;
use crate::config::{BackendTls, Config, LogFormat, Overrides, Role, TlsMode};

/// pg_autoproxy: applications connect to one port and always reach the
/// pg_auto_failover primary.
#[derive(Debug, Parser)]
#[command(name = "pg_autoproxy", version, about, long_about = None)]
struct Args {
    /// Configuration file (TOML).
    #[arg(short, long, env = "PG_AUTOPROXY_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,
    /// Validate the configuration (including certificates and the monitor
    /// URI), print a summary and exit.
    #[arg(long)]
    check: bool,
    /// Print a systemd unit for this binary and configuration and exit.
    #[arg(long)]
    print_systemd_unit: bool,
    /// Monitor connection string (overrides monitor.uri).
    #[arg(
        long,
        env = "PG_AUTOPROXY_MONITOR",
        hide_env_values = true,
        value_name = "URI"
    )]
    monitor: Option<String>,
    /// Add a listener on this address (named "cli").
    #[arg(long, value_name = "ADDR:PORT")]
    listen: Option<String>,
    /// Formation of the --listen listener [default: default].
    #[arg(long, requires = "listen")]
    formation: Option<String>,
    /// Group of the --listen listener [default: 0].
    #[arg(long, requires = "listen")]
    group: Option<i32>,
    /// Make the --listen listener read-only (healthy secondaries).
    #[arg(long, requires = "listen")]
    read_only: bool,
    /// Admin HTTP address (/healthz, /readyz, /metrics, /status).
    #[arg(long, value_name = "ADDR:PORT")]
    admin_listen: Option<String>,
    /// Worker threads (0 = one per CPU).
    #[arg(long)]
    workers: Option<usize>,
    /// Log format: text or json.
    #[arg(long)]
    log_format: Option<String>,
    /// Log filter, e.g. "info" or "proxy=debug" (RUST_LOG wins).
    #[arg(long)]
    log_level: Option<String>,
}

impl Args {
    fn overrides(&self) -> Overrides {
        Overrides {
            monitor: self.monitor.clone(),
            admin_listen: self.admin_listen.clone(),
            workers: self.workers,
            log_format: self.log_format.clone(),
            log_level: self.log_level.clone(),
            listen: self.listen.clone(),
            formation: self.formation.clone(),
            group: self.group,
            read_only: self.read_only,
        }
    }
}

/// Entry point of the `pg_autoproxy` binary.
pub fn run() -> ExitCode {
    let args = Args::parse();
    if args.print_systemd_unit {
        return print_unit(&args);
    }
    let config = match Config::load(args.config.as_deref(), &args.overrides()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("pg_autoproxy: invalid configuration: {e}");
            return ExitCode::from(2);
        }
    };
    if args.check {
        return match check(&config) {
            Ok(summary) => {
                print!("{summary}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("pg_autoproxy: invalid configuration: {e:#}");
                ExitCode::from(2)
            }
        };
    }
    init_logging(&config);
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!("failed to start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(serve(config, args.config.clone(), args.overrides())) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("failed to run: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn print_unit(args: &Args) -> ExitCode {
    let binary =
        std::env::current_exe().unwrap_or_else(|_| PathBuf::from("/usr/local/bin/pg_autoproxy"));
    let config = args
        .config
        .clone()
        .unwrap_or_else(|| PathBuf::from("/etc/pg_autoproxy/pg_autoproxy.toml"));
    let config = std::path::absolute(&config).unwrap_or(config);
    let drain = Config::load(Some(&config), &args.overrides())
        .map_or(30, |c| c.proxy.drain_timeout.as_secs());
    print!("{}", crate::systemd::unit(&binary, &config, drain));
    ExitCode::SUCCESS
}

/// Everything `--check` verifies beyond parsing.
fn check(config: &Config) -> anyhow::Result<String> {
    let monitor =
        crate::monitor::monitor_target(&config.monitor.uri).map_err(anyhow::Error::msg)?;
    // The CA file, if any, must be readable.
    monitor
        .tls()
        .map_err(|e| anyhow::anyhow!("monitor.uri: {e}"))?;
    let mut out = String::new();
    out.push_str(&format!(
        "monitor: {}\n",
        pgaf_pgconn::redact(&config.monitor.uri)
    ));
    out.push_str(&format!(
        "proxy: workers={} runtime={:?} relay={:?} scheduling={:?} hold_timeout={:?} grace_period={:?}\n",
        config.proxy.workers,
        config.proxy.runtime,
        config.proxy.relay,
        config.proxy.scheduling,
        config.proxy.hold_timeout,
        config.monitor.grace_period
    ));
    if let Some(a) = config.admin {
        out.push_str(&format!("admin: {a}\n"));
    }
    for l in &config.listeners {
        if let TlsMode::Terminate { cert, key, .. } = &l.tls {
            crate::tls::server_config(cert, key)
                .with_context(|| format!("listener \"{}\"", l.name))?;
        }
        let role = match &l.role {
            Role::ReadWrite => "read-write".to_string(),
            Role::ReadOnly(p) => {
                format!("read-only (fallback_to_primary={})", p.fallback_to_primary)
            }
        };
        let tls = match &l.tls {
            TlsMode::Passthrough => "passthrough",
            TlsMode::Terminate { backend, .. } => match backend {
                BackendTls::Prefer => "terminate (backend_tls prefer)",
                BackendTls::Require => "terminate (backend_tls require)",
                BackendTls::Disable => "terminate (backend_tls disable)",
            },
        };
        out.push_str(&format!(
            "listener {}: {} -> formation \"{}\" group {} {role}, tls {tls}\n",
            l.name, l.listen, l.formation, l.group
        ));
    }
    out.push_str("configuration OK\n");
    Ok(out)
}

fn init_logging(config: &Config) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&config.log.level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let result = match config.log.format {
        LogFormat::Json => builder
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .try_init(),
        LogFormat::Text => builder.try_init(),
    };
    if let Err(e) = result {
        eprintln!("pg_autoproxy: failed to set up logging: {e}");
    }
}

async fn serve(config: Config, path: Option<PathBuf>, overrides: Overrides) -> anyhow::Result<()> {
    let mut hup = signal(SignalKind::hangup()).context("install the SIGHUP handler")?;
    let mut term = signal(SignalKind::terminate()).context("install the SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("install the SIGINT handler")?;
    let mut app = App::start(config, path.clone(), overrides).await?;
    tracing::info!(version = env!("CARGO_PKG_VERSION"), config = ?path.as_deref().map(Path::display).map(|d| d.to_string()), "pg_autoproxy started");
    crate::systemd::notify("READY=1");
    loop {
        tokio::select! {
            _ = hup.recv() => {
                crate::systemd::notify("RELOADING=1");
                match app.reload().await {
                    Ok(()) => {}
                    Err(e) => tracing::error!("failed to reload the configuration (keeping the old one): {e:#}"),
                }
                crate::systemd::notify("READY=1");
            }
            _ = term.recv() => break,
            _ = int.recv() => break,
        }
    }
    crate::systemd::notify("STOPPING=1");
    {
        let drain = app.drain();
        tokio::pin!(drain);
        tokio::select! {
            _ = &mut drain => {}
            _ = term.recv() => tracing::warn!("second SIGTERM: exiting without waiting"),
            _ = int.recv() => tracing::warn!("second SIGINT: exiting without waiting"),
        }
    }
    app.shutdown().await;
    tracing::info!("pg_autoproxy stopped");
    Ok(())
}
