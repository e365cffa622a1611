//! What a monitor operation produces besides the new group snapshot: log
//! lines, events (each an event row plus a `state` notification), client
//! notices, and errors carrying upstream's SQLSTATEs.

use crate::node::Node;
use std::fmt;

/// A side effect, in the order the monitor must carry them out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    /// A message for the server log and the `log` notification channel.
    Log(String),
    /// An event row plus a `state` notification, with the node as it is at
    /// that moment (after the assignment that produced it).
    Event { node: Node, description: String },
    /// A NOTICE or WARNING for the client that called the function.
    Notice {
        level: NoticeLevel,
        code: SqlState,
        message: String,
        detail: Option<String>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoticeLevel {
    Notice,
    Warning,
}

/// A five-character SQLSTATE.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SqlState(pub &'static str);

impl SqlState {
    /// `object_in_use`: registration must be retried.
    pub const OBJECT_IN_USE: SqlState = SqlState("55006");
    /// `object_not_in_prerequisite_state`.
    pub const NOT_IN_PREREQUISITE_STATE: SqlState = SqlState("55000");
    /// `undefined_object`: unknown node.
    pub const UNDEFINED_OBJECT: SqlState = SqlState("42704");
    /// `invalid_object_definition`.
    pub const INVALID_OBJECT_DEFINITION: SqlState = SqlState("42P17");
    /// `invalid_parameter_value`.
    pub const INVALID_PARAMETER_VALUE: SqlState = SqlState("22023");
    /// `feature_not_supported`.
    pub const FEATURE_NOT_SUPPORTED: SqlState = SqlState("0A000");
    /// `internal_error`.
    pub const INTERNAL_ERROR: SqlState = SqlState("XX000");
}

impl fmt::Display for SqlState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

/// An error the monitor raises as a Postgres `ERROR`: the whole call is rolled
/// back, nothing is persisted and no notification is sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MonitorError {
    pub code: SqlState,
    pub message: String,
    pub detail: Option<String>,
    pub hint: Option<String>,
}

impl MonitorError {
    pub fn new(code: SqlState, message: impl Into<String>) -> MonitorError {
        MonitorError {
            code,
            message: message.into(),
            detail: None,
            hint: None,
        }
    }

    pub fn detail(mut self, detail: impl Into<String>) -> MonitorError {
        self.detail = Some(detail.into());
        self
    }

    pub fn hint(mut self, hint: impl Into<String>) -> MonitorError {
        self.hint = Some(hint.into());
        self
    }
}

impl fmt::Display for MonitorError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.message, self.code)?;
        if let Some(d) = &self.detail {
            write!(f, "; detail: {d}")?;
        }
        if let Some(h) = &self.hint {
            write!(f, "; hint: {h}")?;
        }
        Ok(())
    }
}

impl std::error::Error for MonitorError {}

pub type Result<T> = std::result::Result<T, MonitorError>;
