//! Helpers for the integration tests in `tests/tests/`: temporary clusters,
//! free ports, unprivileged Postgres processes stopped by their PID.
