//! Prometheus helpers shared by the monitor, the keepers and the proxy, all
//! built on the `prometheus` crate (the exposition text is never formatted
//! by hand):
//!
//! * [`builder`]: a [`Builder`] that defines metrics under one prefix
//!   (namespace) in one registry;
//! * [`build_info`]: the `<prefix>_build_info{version}` gauge;
//! * [`state_gauge`]: one 0/1 gauge per value of a bounded label
//!   (`state="primary"` is 1, every other state 0);
//! * [`exposition`]: the text exposition of a registry;
//! * [`http`]: a tiny HTTP/1.1 server for `GET /metrics` and friends.
//!
//! Conventions of every component (README "Metrics"): one prefix per
//! component (`pgautoctl_`, `pgautofailover_`, `pgautoproxy_`), base units
//! (seconds, bytes), `_total` on counters, and labels drawn from bounded
//! sets only (states, formation/group, node ids and names, configured
//! listener names), never user or database names nor client addresses.

pub mod build_info;
pub mod builder;
pub mod exposition;
pub mod http;
pub mod state_gauge;

pub use builder::Builder;
pub use prometheus;
pub use state_gauge::StateGauge;
