//! `pg_autoctl do service ...`: the running service of the node in
//! `--pgdata`. One `pg_autoctl run` process is the whole service here (it
//! supervises Postgres itself): `getpid node-active|listener` print its
//! pid, `getpid postgres` the postmaster's; `restart postgres` has the
//! service restart Postgres; `status` is `pg_autoctl status`.

use crate::cli::exit::{self, CmdResult, Failure};
use crate::cli::{Globals, PgdataArg};
use crate::pg::control::PostmasterPid;
use std::time::{Duration, Instant};

#[derive(Debug, clap::Subcommand)]
pub enum ServiceCmd {
    /// Get the pid of pg_autoctl sub-processes (services)
    #[command(subcommand)]
    Getpid(Which),
    /// Restart pg_autoctl sub-processes (services)
    #[command(subcommand)]
    Restart(RestartWhich),
    /// Display the current status of the pg_autoctl service
    Status(crate::cli::status::StatusArgs),
}

#[derive(Debug, clap::Subcommand)]
pub enum Which {
    /// Get the pid of the Postgres server of the service
    Postgres(Pgdata),
    /// Get the pid of the pg_autoctl monitor listener service
    Listener(Pgdata),
    /// Get the pid of the pg_autoctl keeper node-active service
    #[command(name = "node-active")]
    NodeActive(Pgdata),
}

#[derive(Debug, clap::Subcommand)]
pub enum RestartWhich {
    /// Restart the Postgres server of the service
    Postgres(Pgdata),
}

#[derive(Debug, Clone, clap::Args)]
pub struct Pgdata {
    #[command(flatten)]
    pub pgdata: PgdataArg,
}

/// How long `restart postgres` waits for the new postmaster.
const RESTART_WAIT: Duration = Duration::from_secs(60);

impl ServiceCmd {
    pub(super) fn pgdata(&self) -> &PgdataArg {
        match self {
            ServiceCmd::Getpid(Which::Postgres(a) | Which::Listener(a) | Which::NodeActive(a))
            | ServiceCmd::Restart(RestartWhich::Postgres(a)) => &a.pgdata,
            ServiceCmd::Status(a) => &a.pgdata,
        }
    }

    pub async fn run(self, g: Globals) -> CmdResult {
        match self {
            ServiceCmd::Getpid(w) => getpid(w),
            ServiceCmd::Restart(RestartWhich::Postgres(a)) => restart_postgres(&a.pgdata).await,
            ServiceCmd::Status(a) => crate::cli::status::run(a, g).await,
        }
    }
}

fn not_found(name: &str) -> Failure {
    Failure::new(
        exit::INTERNAL_ERROR,
        anyhow::anyhow!(
            "Failed to find pid for service name \"{name}\": is pg_autoctl run running for this node?"
        ),
    )
}

fn getpid(w: Which) -> CmdResult {
    let (a, name) = match &w {
        Which::Postgres(a) => (a, "postgres"),
        Which::Listener(a) => (a, "listener"),
        Which::NodeActive(a) => (a, "node-active"),
    };
    let (paths, cfg) = a.pgdata.load_config()?;
    let info = crate::cli::service_ctl::live_service(&paths.pid).ok_or_else(|| not_found(name))?;
    let pid = match (&w, &cfg) {
        (Which::Postgres(_), _) => {
            PostmasterPid::read(&paths.pgdata)
                .filter(PostmasterPid::alive)
                .ok_or_else(|| not_found(name))?
                .pid
        }
        (Which::Listener(_), crate::config::Config::Monitor(_))
        | (Which::NodeActive(_), crate::config::Config::Keeper(_)) => info.pid,
        _ => return Err(not_found(name)),
    };
    println!("{pid}");
    Ok(())
}

async fn restart_postgres(pgdata: &PgdataArg) -> CmdResult {
    let (paths, _) = pgdata.load_config()?;
    crate::cli::service_ctl::live_service(&paths.pid).ok_or_else(|| not_found("postgres"))?;
    let old = PostmasterPid::read(&paths.pgdata)
        .filter(PostmasterPid::alive)
        .ok_or_else(|| not_found("postgres"))?;
    tracing::info!(
        "Sending the INT signal (fast shutdown) to Postgres with pid {}: the service starts it again",
        old.pid
    );
    crate::cli::service_ctl::signal(old.pid, libc::SIGINT).map_err(|e| {
        Failure::new(
            exit::INTERNAL_ERROR,
            anyhow::anyhow!("Failed to signal Postgres with pid {}: {e}", old.pid),
        )
    })?;
    let deadline = Instant::now() + RESTART_WAIT;
    loop {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if let Some(new) = PostmasterPid::read(&paths.pgdata)
            .filter(|p| p.pid != old.pid && p.alive() && p.ready())
        {
            tracing::info!(
                "Service \"postgres\" has been restarted with pid {}",
                new.pid
            );
            println!("{}", new.pid);
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(Failure::new(
                exit::INTERNAL_ERROR,
                anyhow::anyhow!(
                    "Postgres did not start again within {}s: see pg_autoctl do pgsetup logs",
                    RESTART_WAIT.as_secs()
                ),
            ));
        }
    }
}
