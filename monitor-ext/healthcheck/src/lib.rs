//! The monitor's health check of one node as pure
//! state machines, fed with bytes and with the time; the socket handling
//! lives in the extension's worker (`monitor-ext/src/worker/`).
//!
//! Layout:
//! * [`session`]: one connection attempt, the Postgres startup and
//!   authentication exchange up to `ReadyForQuery`;
//! * [`check`]: attempts, per-attempt deadlines, retries and the verdict.

pub mod check;
pub mod session;

pub use check::{Check, CheckConfig, Verdict};
pub use session::{Progress, Session};
