//! Helpers for the integration tests in `tests/tests/`: temporary clusters,
//! free ports, unprivileged Postgres processes stopped by their PID.
//!
//! Everything here but the campaign's schedule is behind the `integration`
//! feature (see tests/README.md):
//! * [`autoctl`]: real `pg_autoctl` clusters (a monitor and nodes), a
//!   writer that remembers every acknowledged write;
//! * [`cluster`]: a temporary Postgres cluster owned by the `postgres` user,
//!   with the `pgautofailover` extension loaded and created;
//! * [`monitor`]: a client of the monitor that speaks like a keeper;
//! * [`netns`]: a virtual LAN of network namespaces, one per host, with
//!   partitions, packet loss and frozen hosts;
//! * [`faults`]: the fault-injection campaign (its seeded schedule is pure
//!   and tested without Postgres);
//! * [`keeper`]: simulated keepers driving `node_active`;
//! * [`listen`]: `LISTEN state, log` on a dedicated connection;
//! * [`proxy`]: `pg_autoproxy` for one test, and clients that write and
//!   benchmark through it;
//! * [`slowdisk`]: a disk whose WAL flushes take as long as a test says;
//! * [`scrape`]: `GET /metrics`, the samples of an exposition, `promtool`;
//! * [`upstream`]: Debian's upstream pg_auto_failover 2.0, unpacked
//!   privately by `scripts/upstream.sh`, for the interop tests;
//! * [`wait`]: deadlines for everything that waits.

#[cfg(feature = "integration")]
pub mod autoctl;
#[cfg(feature = "integration")]
pub mod cluster;
pub mod faults;
#[cfg(feature = "integration")]
pub mod keeper;
#[cfg(feature = "integration")]
pub mod listen;
#[cfg(feature = "integration")]
pub mod monitor;
#[cfg(feature = "integration")]
pub mod netns;
#[cfg(feature = "integration")]
pub mod proxy;
#[cfg(feature = "integration")]
pub mod scrape;
#[cfg(feature = "integration")]
pub mod slowdisk;
#[cfg(feature = "integration")]
pub mod upstream;
#[cfg(feature = "integration")]
pub mod wait;
