//! The fault-injection campaign: a seeded schedule of network partitions,
//! packet loss, frozen and lost hosts, full disks and restarts, run
//! against clusters on a virtual LAN ([`crate::netns`]) while checkers
//! watch for lost acknowledged writes, two writable nodes at once, and
//! how long writes stop.
//!
//! * [`schedule`]: the seeded schedule (pure, unit-tested without
//!   Postgres);
//! * [`cluster`]: the cluster of one epoch and how each fault is injected
//!   and healed;
//! * [`observe`]: the writers and the split-brain probes;
//! * [`campaign`]: the runner, fault after fault, writing one JSON line per
//!   outcome.

#[cfg(feature = "integration")]
pub mod campaign;
#[cfg(feature = "integration")]
pub mod cluster;
#[cfg(feature = "integration")]
pub mod observe;
pub mod schedule;
