//! The monitor node: `pg_autoctl create monitor` (initdb, settings, HBA,
//! database `pg_auto_failover`, the `pgautofailover` extension) and the
//! service that supervises its Postgres.

use crate::config::{Config, MonitorConfig, PgSetup, Ssl};
use crate::paths::NodePaths;
use crate::pg::bin::PgBin;
use crate::pg::files::{self, Settings};
use crate::pg::hba::{self, Rule};
use crate::pg::local::Local;
use crate::pg::process::Postgres;
use crate::pg::tools;
use anyhow::{bail, Context};
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, Clone)]
pub struct CreateMonitor {
    pub pgdata: PathBuf,
    pub pgport: u16,
    pub hostname: String,
    pub listen: String,
    pub auth: String,
    pub skip_hba: bool,
    pub ssl: Ssl,
    pub pg_ctl: Option<PathBuf>,
    /// `--metrics-listen` (empty: off).
    pub metrics_listen: String,
}

/// The connection string keepers and operators use for this monitor.
pub fn monitor_uri(cfg: &MonitorConfig) -> String {
    let host = if cfg.hostname.contains(':') {
        format!("[{}]", cfg.hostname)
    } else {
        cfg.hostname.clone()
    };
    let mut uri = format!(
        "postgres://autoctl_node@{host}:{}/pg_auto_failover",
        cfg.pg.port
    );
    let mode = if cfg.ssl.sslmode.is_empty() {
        "prefer"
    } else {
        cfg.ssl.sslmode.as_str()
    };
    if mode != "disable" && mode != "allow" {
        uri.push_str(&format!("?sslmode={mode}"));
        if (mode == "verify-ca" || mode == "verify-full") && !cfg.ssl.ca_file.is_empty() {
            uri.push_str(&format!("&sslrootcert={}", cfg.ssl.ca_file));
            if !cfg.ssl.crl_file.is_empty() {
                uri.push_str(&format!("&sslcrl={}", cfg.ssl.crl_file));
            }
        }
    }
    uri
}

/// The network of the local interface holding `ip` (upstream's "LAN CIDR"),
/// or the address alone.
pub fn lan_cidr(host: &str) -> String {
    let Ok(ip) = host.parse::<IpAddr>() else {
        return host.to_string();
    };
    let mut found = None;
    let mut addrs: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs fills a linked list we walk read-only and free.
    unsafe {
        if libc::getifaddrs(&mut addrs) == 0 {
            let mut cur = addrs;
            while !cur.is_null() {
                let ifa = &*cur;
                if !ifa.ifa_addr.is_null()
                    && !ifa.ifa_netmask.is_null()
                    && i32::from((*ifa.ifa_addr).sa_family) == libc::AF_INET
                {
                    let a = &*(ifa.ifa_addr as *const libc::sockaddr_in);
                    let m = &*(ifa.ifa_netmask as *const libc::sockaddr_in);
                    let addr = std::net::Ipv4Addr::from(u32::from_be(a.sin_addr.s_addr));
                    let mask = u32::from_be(m.sin_addr.s_addr);
                    if IpAddr::V4(addr) == ip {
                        let net = std::net::Ipv4Addr::from(u32::from(addr) & mask);
                        found = Some(format!("{net}/{}", mask.count_ones()));
                    }
                }
                cur = ifa.ifa_next;
            }
            libc::freeifaddrs(addrs);
        }
    }
    found.unwrap_or_else(|| hba::address(host))
}

fn settings(cfg: &MonitorConfig) -> Settings {
    Settings {
        monitor: true,
        listen_addresses: cfg.pg.listen_addresses.clone(),
        port: cfg.pg.port,
        auth_method: cfg.pg.auth_method.clone(),
        ssl: cfg.ssl.active,
        ssl_files: vec![
            ("ssl_ca_file", cfg.ssl.ca_file.clone()),
            ("ssl_crl_file", cfg.ssl.crl_file.clone()),
            ("ssl_cert_file", cfg.ssl.cert_file.clone()),
            ("ssl_key_file", cfg.ssl.key_file.clone()),
        ],
    }
}

/// Initialise the monitor and leave its Postgres running. Returns its
/// configuration and the supervised Postgres.
pub async fn create(opts: &CreateMonitor) -> anyhow::Result<(MonitorConfig, Postgres)> {
    let paths = NodePaths::new(&opts.pgdata);
    let bin = PgBin::discover(opts.pg_ctl.as_deref())?;
    if let Ok(Config::Keeper(_)) = Config::load(&paths.config) {
        bail!(
            "{} belongs to a Postgres node, not a monitor",
            paths.pgdata.display()
        );
    }
    let (auth_method, hba_level) = PgSetup::hba_choice(opts.skip_hba, &opts.auth);
    let cfg = MonitorConfig {
        hostname: opts.hostname.clone(),
        pg: PgSetup {
            pgdata: paths.pgdata.clone(),
            pg_ctl: bin.pg_ctl(),
            username: String::new(),
            dbname: "pg_auto_failover".into(),
            host: String::new(),
            port: opts.pgport,
            listen_addresses: opts.listen.clone(),
            auth_method,
            hba_level,
        },
        ssl: opts.ssl.clone(),
        metrics_listen: opts.metrics_listen.clone(),
    };
    let exists = paths.pgdata.join("PG_VERSION").exists();
    if !exists {
        if paths.pgdata.exists()
            && std::fs::read_dir(&paths.pgdata)
                .map(|mut d| d.next().is_some())
                .unwrap_or(false)
        {
            bail!(
                "{} exists and is not a Postgres data directory",
                paths.pgdata.display()
            );
        }
        if std::net::TcpListener::bind(("0.0.0.0", opts.pgport)).is_err() {
            bail!(
                "port {} is already in use on this host: choose another one with --pgport",
                opts.pgport
            );
        }
        tools::initdb(&bin, &paths.pgdata).await?;
    } else {
        crate::pg::debian::adopt(&paths.pgdata, bin.version_num()? / 10000)?;
    }
    paths.create_dirs()?;
    Config::Monitor(cfg.clone()).save(&paths.config)?;
    configure(&cfg)?;
    let pg = Postgres::new(bin, &paths.pgdata)?;
    pg.ensure_running(Duration::from_secs(60)).await?;
    let local = Local::connect(&paths.pgdata).await?;
    local
        .client()
        .batch_execute(
            "DO $$ BEGIN
               IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'autoctl') THEN
                 CREATE ROLE autoctl WITH LOGIN;
               END IF;
             END $$",
        )
        .await
        .context("create the autoctl role")?;
    local.create_database("pg_auto_failover", "autoctl").await?;
    drop(local);
    // The extension, as the local superuser, in the monitor's database.
    let local = Local::connect_db(&paths.pgdata, "pg_auto_failover").await?;
    let client = local.client();
    client
        .batch_execute("CREATE EXTENSION IF NOT EXISTS pgautofailover CASCADE")
        .await
        .context(
            "create the pgautofailover extension: is it installed? (monitor-ext/install.sh)",
        )?;
    tracing::info!(
        "Your pg_auto_failover monitor instance is now ready on port {}.",
        cfg.pg.port
    );
    tracing::info!("Monitor connection string: {}", monitor_uri(&cfg));
    Ok((cfg, pg))
}

/// Settings and HBA of the monitor.
pub fn configure(cfg: &MonitorConfig) -> anyhow::Result<()> {
    let pgdata = &cfg.pg.pgdata;
    if cfg.ssl.active && std::path::Path::new(&cfg.ssl.cert_file).starts_with(pgdata) {
        crate::pg::cert::ensure_self_signed(
            std::path::Path::new(&cfg.ssl.cert_file),
            std::path::Path::new(&cfg.ssl.key_file),
            &cfg.hostname,
        )?;
    }
    files::write_settings(pgdata, &settings(cfg))?;
    if cfg.pg.hba_level == "skip" {
        // Even with --skip-pg-hba, pg_autoctl must reach its own Postgres.
        hba::ensure(pgdata, &hba::own_tcp_rules(&cfg.pg.listen_addresses))?;
    } else {
        let auth = if cfg.pg.auth_method.is_empty() {
            "trust"
        } else {
            &cfg.pg.auth_method
        };
        let mut rules = vec![Rule {
            ssl: cfg.ssl.active,
            database: "pg_auto_failover".into(),
            user: "autoctl_node".into(),
            address: lan_cidr(&cfg.hostname),
            auth: auth.into(),
        }];
        if cfg.hostname != "127.0.0.1" && cfg.hostname != "localhost" {
            rules.push(Rule {
                address: "127.0.0.1".into(),
                ..rules[0].clone()
            });
        }
        rules.extend(hba::own_tcp_rules(&cfg.pg.listen_addresses));
        hba::ensure(pgdata, &rules)?;
    }
    Ok(())
}

/// Supervise the monitor's Postgres until SIGTERM or SIGINT.
pub async fn run(cfg: MonitorConfig, pg: Option<Postgres>) -> anyhow::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut sigterm = signal(SignalKind::terminate())?;
    let mut sigint = signal(SignalKind::interrupt())?;
    let mut sighup = signal(SignalKind::hangup())?;
    let metrics_addr = crate::metrics::listen_addr(&cfg.metrics_listen)
        .context("[pg_autoctl] metrics_listen of the monitor's configuration")?;
    let pg = match pg {
        Some(pg) => pg,
        None => {
            let bin = PgBin::from_pg_ctl(&cfg.pg.pg_ctl).or_else(|_| PgBin::discover(None))?;
            configure(&cfg)?;
            let pg = Postgres::new(bin, &cfg.pg.pgdata)?;
            pg.ensure_running(Duration::from_secs(60)).await?;
            pg
        }
    };
    pg.set_want(crate::pg::process::Want::Running);
    if let Some(addr) = metrics_addr {
        let metrics = crate::metrics::monitor::MonitorMetrics::new(cfg.pg.pgdata.clone());
        pgaf_metrics::http::spawn(addr, metrics);
    }
    tracing::info!(
        "pg_autoctl monitor is running on port {}: {}",
        cfg.pg.port,
        monitor_uri(&cfg)
    );
    loop {
        tokio::select! {
            _ = sigterm.recv() => break,
            _ = sigint.recv() => break,
            _ = sighup.recv() => {
                // New settings (`enable|disable ssl`, `config set`).
                let path = crate::paths::NodePaths::new(&cfg.pg.pgdata).config;
                match crate::config::Config::load(&path) {
                    Ok(crate::config::Config::Monitor(new)) => {
                        if let Err(e) = configure(&new) {
                            tracing::error!("Failed to apply the new configuration: {e:#}");
                        }
                    }
                    Ok(_) => tracing::error!("{} is not a monitor configuration", path.display()),
                    Err(e) => tracing::error!("Keeping the current configuration: {e}"),
                }
                if let Ok(local) = Local::connect(&cfg.pg.pgdata).await {
                    let _ = local.reload().await;
                }
            }
        }
    }
    tracing::info!("Stopping the monitor's Postgres");
    pg.shutdown(Duration::from_secs(60)).await?;
    Ok(())
}
