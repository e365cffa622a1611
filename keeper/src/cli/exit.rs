//! Exit codes, upstream's values, and the error type
//! every command returns: what went wrong plus the code to exit with.

/// Success, or asked to stop.
pub const QUIT: i32 = 0;
/// Bad command line or invalid value.
pub const BAD_ARGS: i32 = 1;
/// Configuration missing, unreadable, or of the wrong role.
pub const BAD_CONFIG: i32 = 2;
/// State file problems, `create` failed, already running.
pub const BAD_STATE: i32 = 3;
/// A query on the local Postgres failed.
pub const PGSQL: i32 = 4;
/// Running Postgres or its programs failed.
pub const PGCTL: i32 = 5;
/// The monitor is unreachable or a monitor call failed.
pub const MONITOR: i32 = 6;
/// Initialising the keeper failed.
pub const KEEPER: i32 = 8;
/// An unexpected internal error.
pub const INTERNAL_ERROR: i32 = 12;

/// A failed command: the error to print and the code to exit with.
#[derive(Debug)]
pub struct Failure {
    pub code: i32,
    pub error: anyhow::Error,
}

impl Failure {
    pub fn new(code: i32, error: impl Into<anyhow::Error>) -> Failure {
        Failure {
            code,
            error: error.into(),
        }
    }

    /// A usage error (exit 1) with a message.
    pub fn usage(msg: impl std::fmt::Display) -> Failure {
        Failure {
            code: BAD_ARGS,
            error: anyhow::anyhow!("{msg}"),
        }
    }
}

/// Attach an exit code to any error.
pub trait Code<T> {
    fn code(self, code: i32) -> Result<T, Failure>;
}

impl<T, E: Into<anyhow::Error>> Code<T> for Result<T, E> {
    fn code(self, code: i32) -> Result<T, Failure> {
        self.map_err(|e| Failure::new(code, e))
    }
}

pub type CmdResult = Result<(), Failure>;
