//! Benchmark drivers. Each benchmark lives in its own directory under
//! `bench/` with a committed report and the one command that reproduces it.
//!
//! * [`proxy_report`]: the report of `bench/proxy/run.sh` (pg_autoproxy
//!   against direct Postgres, HAProxy and PgBouncer).
//! * [`fault_report`]: the report of `bench/faults/run.sh` (the fault
//!   campaign, ours and upstream side by side, with its goals).

pub mod fault_report;
pub mod proxy_report;
