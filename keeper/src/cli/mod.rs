//! The `pg_autoctl` command line: upstream's command
//! words and options, parsed with clap; global `-v`/`-q`/`--json`; exit
//! codes of [`exit`]. When started as root, the process becomes the owner
//! of PGDATA before anything else happens (see [`crate::privileges`]).
//!
//! * [`create`] for `create monitor` and `create postgres`, [`formation`]
//!   for `create|drop formation` and `enable|disable secondary`, [`citus`]
//!   for the refused Citus commands;
//! * [`mod@run`] for `run`;
//! * [`show`] for `show state|events|uri|settings|standby-names|file|systemd`;
//! * [`perform`] for `perform failover|switchover|promotion`;
//! * [`enable`] for `enable|disable ...`: [`maintenance`], [`ssl_cmd`],
//!   [`monitor_attach`] (`monitor`), [`formation`] (`secondary`);
//! * [`internal`] for `do ...` (with `PG_AUTOCTL_DEBUG` set);
//! * [`get_set`], [`node_props`] and [`formation_props`] for `get|set node|formation ...`;
//! * [`drop`] for `drop node|monitor`;
//! * [`config_cmd`] for `config get|set|check`;
//! * [`service_ctl`] for `stop` and `reload`, [`status`] for `status`;
//! * [`watch`], [`version`], [`completion`];
//! * shared by them: [`api`] (monitor calls), [`transitions`] (following
//!   the notified state changes), [`local_node`] (the node in `--pgdata`);
//! * [`ssl`], the SSL option family, and [`json`], upstream's JSON layout.

pub mod api;
pub mod citus;
pub mod completion;
pub mod config_cmd;
pub mod create;
pub mod drop;
pub mod enable;
pub mod exit;
pub mod formation;
pub mod formation_props;
pub mod get_set;
pub mod internal;
pub mod json;
pub mod local_node;
pub mod maintenance;
pub mod monitor_attach;
pub mod node_props;
pub mod perform;
pub mod run;
pub mod service_ctl;
pub mod show;
pub mod ssl;
pub mod ssl_cmd;
pub mod status;
pub mod transitions;
pub mod version;
pub mod watch;

use clap::{ArgAction, Parser, Subcommand};
use exit::{CmdResult, Failure};
use std::path::PathBuf;

/// The pg_autoctl version we are compatible with.
pub const VERSION: &str = "2.0";
/// The monitor extension version we install and expect by default.
pub const EXTENSION_VERSION: &str = "2.0";

#[derive(Debug, Parser)]
#[command(
    name = "pg_autoctl",
    about = "pg_auto_failover control tools and service",
    disable_version_flag = true,
    arg_required_else_help = true,
    subcommand_required = false,
    propagate_version = false
)]
pub struct Cli {
    /// Log more: -v for DEBUG, -vv for TRACE
    #[arg(short, long, action = ArgAction::Count, global = true, display_order = 900)]
    pub verbose: u8,
    /// Log errors only
    #[arg(short, long, global = true, display_order = 901)]
    pub quiet: bool,
    /// Output data in the JSON format
    #[arg(short = 'J', long, global = true, display_order = 902)]
    pub json: bool,
    /// Print pg_autoctl version
    #[arg(short = 'V', long = "version")]
    pub version: bool,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
#[allow(clippy::large_enum_variant)] // parsed once per process
pub enum Command {
    /// Create a pg_auto_failover node, or formation
    #[command(subcommand)]
    Create(create::Create),
    /// Drop a pg_auto_failover node, or formation
    #[command(subcommand)]
    Drop(drop::DropCmd),
    /// Manages the pg_autoctl configuration
    #[command(subcommand)]
    Config(config_cmd::ConfigCmd),
    /// Show pg_auto_failover information
    #[command(subcommand)]
    Show(show::Show),
    /// Enable a feature on a formation
    #[command(subcommand)]
    Enable(enable::Enable),
    /// Disable a feature on a formation
    #[command(subcommand)]
    Disable(enable::Disable),
    /// Get a pg_auto_failover node, or formation setting
    #[command(subcommand)]
    Get(get_set::Get),
    /// Set a pg_auto_failover node, or formation setting
    #[command(subcommand)]
    Set(get_set::Set),
    /// Perform an action orchestrated by the monitor
    #[command(subcommand)]
    Perform(perform::Perform),
    /// Internal commands and internal QA tooling (with PG_AUTOCTL_DEBUG set)
    #[command(subcommand, hide = true)]
    Do(internal::Do),
    /// (Citus is not supported: refused)
    #[command(hide = true)]
    Activate(citus::CitusArgs),
    /// Run the pg_autoctl service (monitor or keeper)
    Run(run::RunArgs),
    /// Display a dashboard to watch monitor's events and state
    Watch(watch::WatchArgs),
    /// Signal the pg_autoctl service for it to stop
    Stop(service_ctl::StopArgs),
    /// Signal the pg_autoctl service for it to reload its configuration
    Reload(service_ctl::ReloadArgs),
    /// Display the current status of the pg_autoctl service
    Status(status::StatusArgs),
    /// Print pg_autoctl version
    Version,
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell)
    Completion(completion::CompletionArgs),
}

/// The command line once `--version` and a missing command are handled.
struct Parsed {
    json: bool,
    command: Command,
}

/// Options every command sees.
#[derive(Debug, Clone, Copy)]
pub struct Globals {
    pub json: bool,
}

/// `--pgdata`, defaulting to `$PGDATA`.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct PgdataArg {
    /// Path to the data directory
    #[arg(long, env = "PGDATA", value_name = "DIR")]
    pub pgdata: Option<PathBuf>,
}

impl PgdataArg {
    pub fn require(&self) -> Result<PathBuf, Failure> {
        match &self.pgdata {
            Some(p) if !p.as_os_str().is_empty() => Ok(crate::paths::absolute(p)),
            _ => Err(Failure::usage(
                "Failed to set PGDATA either from the environment or from --pgdata",
            )),
        }
    }

    /// The node's paths and configuration file (a node or the monitor).
    pub fn load_config(&self) -> Result<(crate::paths::NodePaths, crate::config::Config), Failure> {
        let pgdata = self.require()?;
        let paths = crate::paths::NodePaths::new(&pgdata);
        let cfg = crate::config::Config::load(&paths.config).map_err(|e| {
            Failure::new(
                exit::BAD_CONFIG,
                anyhow::anyhow!(
                    "{e}; is {} a pg_auto_failover node? (pg_autoctl create ...)",
                    pgdata.display()
                ),
            )
        })?;
        Ok((paths, cfg))
    }
}

impl Command {
    /// The PGDATA this command works on, if any: when started as root we
    /// become its owner.
    fn pgdata(&self) -> Option<PathBuf> {
        let arg = match self {
            Command::Create(create::Create::Monitor(a)) => &a.pgdata,
            Command::Create(create::Create::Postgres(a)) => &a.pgdata,
            Command::Create(create::Create::Formation(a)) => &a.target.pgdata,
            Command::Create(create::Create::Coordinator(_) | create::Create::Worker(_))
            | Command::Activate(_) => return None,
            Command::Run(a) => &a.pgdata,
            Command::Show(s) => s.pgdata()?,
            Command::Drop(d) => d.pgdata(),
            Command::Config(c) => c.pgdata(),
            Command::Enable(e) => e.pgdata(),
            Command::Disable(d) => d.pgdata(),
            Command::Get(c) => c.pgdata(),
            Command::Set(c) => c.pgdata(),
            Command::Perform(p) => &p.target().pgdata,
            Command::Watch(w) => &w.target.pgdata,
            Command::Stop(a) => &a.pgdata,
            Command::Reload(a) => &a.pgdata,
            Command::Status(a) => &a.pgdata,
            Command::Do(d) => d.pgdata()?,
            Command::Version | Command::Completion(_) => return None,
        };
        arg.pgdata
            .as_ref()
            .filter(|p| !p.as_os_str().is_empty())
            .map(|p| crate::paths::absolute(p))
    }
}

/// The first command word of `args` (after the program name and the
/// global options).
fn first_word(args: &[String]) -> Option<&str> {
    args.iter()
        .skip(1)
        .map(String::as_str)
        .find(|a| !a.starts_with('-'))
}

/// The command tree: `do` shows in the help only with `PG_AUTOCTL_DEBUG`.
fn command_tree() -> clap::Command {
    use clap::CommandFactory;
    let cmd = Cli::command();
    if internal::enabled() {
        cmd.mut_subcommand("do", |c| c.hide(false))
    } else {
        cmd
    }
}

/// Parse the command line, run the command, return the exit code.
pub fn main() -> i32 {
    use clap::FromArgMatches;
    let args: Vec<String> = std::env::args().collect();
    if first_word(&args) == Some("do") && !internal::enabled() {
        eprintln!(
            "pg_autoctl: do: unknown command (the internal commands need {} set in the environment)\n\n{}",
            internal::DEBUG_ENV,
            command_tree().render_help()
        );
        return exit::BAD_ARGS;
    }
    let parsed = command_tree()
        .try_get_matches_from(&args)
        .and_then(|m| Cli::from_arg_matches(&m));
    let cli = match parsed {
        Ok(cli) => cli,
        Err(e) => {
            use clap::error::ErrorKind;
            let code = match e.kind() {
                ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => exit::QUIT,
                _ => exit::BAD_ARGS,
            };
            let _ = e.print();
            return code;
        }
    };
    crate::logging::init(if cli.quiet { -1 } else { cli.verbose as i8 });
    if std::env::args().any(|a| a == "--nodename" || a.starts_with("--nodename=")) {
        tracing::warn!(
            "--nodename is deprecated, use --hostname (the address other nodes connect to)"
        );
    }
    let command = match (cli.version, cli.command) {
        (true, _) => Command::Version,
        (false, Some(c)) => c,
        (false, None) => {
            let _ = command_tree().print_help();
            return exit::BAD_ARGS;
        }
    };
    let cli = Parsed {
        json: cli.json,
        command,
    };

    // A `create` that fails leaves no empty PGDATA of its own behind.
    let new_pgdata = match (&cli.command, cli.command.pgdata()) {
        (Command::Create(_), Some(p)) if !p.exists() => Some(p),
        _ => None,
    };
    // Resolved while we may still read the directories leading to it.
    let _ = this_program();
    // Before any thread exists: leave root for the owner of PGDATA.
    if let Some(pgdata) = cli.command.pgdata() {
        match crate::privileges::drop_root_for(&pgdata, matches!(cli.command, Command::Create(_))) {
            Ok(Some(acct)) => {
                tracing::debug!("Running as user \"{}\"", acct.name);
                // The directory we were started in may be closed to that
                // user (a root-owned checkout): Postgres programs inherit it.
                // SAFETY: access(2) on a constant NUL-terminated path.
                if unsafe { libc::access(c".".as_ptr(), libc::R_OK | libc::X_OK) } != 0 {
                    let _ = std::env::set_current_dir("/");
                }
            }
            Ok(None) => {}
            Err(e) => {
                tracing::error!("{e}");
                return exit::BAD_ARGS;
            }
        }
    } else if crate::privileges::is_root()
        && matches!(
            cli.command,
            Command::Create(create::Create::Monitor(_) | create::Create::Postgres(_))
                | Command::Run(_)
        )
    {
        tracing::error!("Failed to set PGDATA either from the environment or from --pgdata");
        return exit::BAD_ARGS;
    }

    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!("cannot start the runtime: {e}");
            return exit::INTERNAL_ERROR;
        }
    };
    let globals = Globals { json: cli.json };
    let result = runtime.block_on(dispatch(cli.command, globals));
    // Background tasks (listeners, pollers) must not hold the exit.
    runtime.shutdown_timeout(std::time::Duration::from_millis(100));
    match result {
        Ok(()) => exit::QUIT,
        Err(f) => {
            tracing::error!("{:#}", f.error);
            if let Some(p) = new_pgdata {
                // Only removes an empty directory.
                let _ = std::fs::remove_dir(p);
            }
            f.code
        }
    }
}

async fn dispatch(command: Command, g: Globals) -> CmdResult {
    match command {
        Command::Create(c) => create::run(c, g).await,
        Command::Show(s) => show::run(s, g).await,
        Command::Run(r) => run::run(r, g).await,
        Command::Drop(d) => drop::run(d, g).await,
        Command::Config(c) => config_cmd::run(c, g).await,
        Command::Enable(e) => e.run(g).await,
        Command::Disable(d) => d.run(g).await,
        Command::Get(c) => c.run(g).await,
        Command::Set(c) => c.run(g).await,
        Command::Perform(p) => perform::run(p, g).await,
        Command::Activate(_) => citus::refuse("activate"),
        Command::Do(d) => d.run(g).await,
        Command::Watch(w) => watch::run(w, g).await,
        Command::Stop(a) => service_ctl::stop(a, g).await,
        Command::Reload(a) => service_ctl::reload(a, g).await,
        Command::Status(a) => status::run(a, g).await,
        Command::Version => version::run(g).await,
        Command::Completion(a) => completion::run(a, g).await,
    }
}

/// The absolute, canonical path of this `pg_autoctl`, resolved at start-up:
/// after dropping root the directories leading to it (a root-owned
/// checkout) may be closed to us.
pub(crate) fn this_program() -> Result<&'static std::path::Path, String> {
    static PROGRAM: std::sync::OnceLock<Result<std::path::PathBuf, String>> =
        std::sync::OnceLock::new();
    PROGRAM
        .get_or_init(|| {
            std::env::current_exe()
                .and_then(std::fs::canonicalize)
                .map_err(|e| e.to_string())
        })
        .as_deref()
        .map_err(Clone::clone)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_tree_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn options_may_follow_the_command_words() {
        let cli = Cli::try_parse_from([
            "pg_autoctl",
            "create",
            "postgres",
            "--pgdata",
            "/d",
            "-v",
            "--monitor",
            "postgres://m/x",
            "--auth",
            "trust",
            "--no-ssl",
            "--pgport",
            "6001",
        ])
        .unwrap();
        assert_eq!(cli.verbose, 1);
        let Some(Command::Create(create::Create::Postgres(a))) = cli.command else {
            panic!("not create postgres")
        };
        assert_eq!(a.pgport, 6001);
        assert_eq!(a.candidate_priority, 50);
        assert!(a.replication_quorum);
    }

    #[test]
    fn out_of_range_values_are_usage_errors() {
        let bad = Cli::try_parse_from([
            "pg_autoctl",
            "create",
            "postgres",
            "--pgdata",
            "/d",
            "--monitor",
            "m",
            "--auth",
            "trust",
            "--no-ssl",
            "--candidate-priority",
            "101",
        ]);
        assert!(bad.is_err());
        let bad = Cli::try_parse_from([
            "pg_autoctl",
            "create",
            "postgres",
            "--pgdata",
            "/d",
            "--monitor",
            "m",
            "--auth",
            "trust",
            "--no-ssl",
            "--replication-quorum",
            "maybe",
        ]);
        assert!(bad.is_err());
    }
}
