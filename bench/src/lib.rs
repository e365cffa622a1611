//! Benchmark drivers. Each benchmark lives in its own directory under
//! `bench/` with a committed report and the one command that reproduces it.
//!
//! * [`proxy_report`]: the report of `bench/proxy/run.sh` (pg_autoproxy
//!   against direct Postgres, HAProxy and PgBouncer).

pub mod proxy_report;
