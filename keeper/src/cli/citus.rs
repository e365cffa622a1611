//! Citus: `create coordinator`, `create worker`, `activate` and the
//! `--citus-*` options of `create postgres` are accepted by the parser so
//! that scripts written for pg_auto_failover get a clear answer, and then
//! refused with the usage exit code (1): this pg_autoctl manages Postgres
//! formations only. None of them shows in `--help`.

use super::exit::{CmdResult, Failure};

/// Whatever a Citus command was given: it is refused before any of it is
/// looked at.
#[derive(Debug, Clone, clap::Args)]
pub struct CitusArgs {
    #[arg(
        trailing_var_arg = true,
        allow_hyphen_values = true,
        num_args = 0..,
        hide = true
    )]
    pub args: Vec<String>,
}

/// The refusal of `pg_autoctl <command>`.
pub fn refuse(command: &str) -> CmdResult {
    Err(Failure::usage(format!(
        "pg_autoctl {command}: Citus is not supported; this pg_autoctl manages Postgres \
         formations (pg_autoctl create postgres, formations of kind \"pgsql\")"
    )))
}

#[cfg(test)]
mod tests {
    use super::super::exit::BAD_ARGS;
    use super::super::Cli;
    use clap::Parser;

    #[test]
    fn citus_commands_parse_and_are_refused_with_the_usage_code() {
        for argv in [
            &[
                "pg_autoctl",
                "create",
                "coordinator",
                "--pgdata",
                "/d",
                "--citus-cluster",
                "x",
            ][..],
            &["pg_autoctl", "create", "worker", "--pgdata", "/d"][..],
            &["pg_autoctl", "activate", "--pgdata", "/d"][..],
        ] {
            assert!(Cli::try_parse_from(argv).is_ok(), "{argv:?}");
        }
        let err = super::refuse("activate").unwrap_err();
        assert_eq!(err.code, BAD_ARGS);
        assert!(err.error.to_string().contains("Citus is not supported"));
    }
}
