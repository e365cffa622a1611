//! `pg_autoproxy`: a failover-aware Postgres proxy for pg_auto_failover.
//! Applications connect to one port and always reach the primary.
//!
//! Layout (modules are private; the binary calls [`run`]):
//! * `cli` — flags, logging, signals, `--check`, `--print-systemd-unit`;
//! * `config` — TOML file + flags → validated `Config`;
//! * `app` — worker runtimes, listeners, reload (SIGHUP), drain (SIGTERM);
//! * `monitor` — follows the monitor (`LISTEN state`, `current_state()`),
//!   reconnects, applies the grace period;
//! * `route` — the pure primary/secondary decision and the lock-free
//!   routing snapshot of each formation group;
//! * `fence` — per-backend session registries that end sessions of a node
//!   that lost its role;
//! * `listener` — the accept loop and the per-listener context;
//! * `session` — one client connection: handshake, hold, relay, fencing;
//! * `pq` — sans-I/O protocol pieces (startup packets, ErrorResponse,
//!   backend scan);
//! * `passthrough`, `splice` — the relay;
//! * `cancel` — CancelRequest routing;
//! * `connect`, `stream`, `tls` — sockets and TLS;
//! * `admin`, `metrics` — `/healthz`, `/readyz`, `/metrics`, `/status`;
//! * `sched` — the CPU scheduling policy of the worker threads;
//! * `systemd` — unit file and sd_notify;
//! * `error` — refusals (client-visible) and session errors.
//!
//! See proxy/README.md for the design and its measurements.

mod admin;
mod app;
mod cancel;
mod cli;
mod config;
mod connect;
mod error;
mod fence;
mod listener;
mod metrics;
mod monitor;
mod passthrough;
mod pq;
mod route;
mod sched;
mod session;
mod splice;
mod stream;
mod systemd;
mod tls;

#[cfg(test)]
mod tests;

pub use cli::run;

/// Entry points for fuzzers (cargo-fuzz, cargo-afl, the bounded fuzz test).
/// Not an API.
#[doc(hidden)]
pub mod fuzzing {
    /// Run the startup-packet parser on arbitrary bytes and check its
    /// invariants; panics only if an invariant is broken.
    pub fn startup_packet(data: &[u8]) {
        crate::pq::startup::tests_support::check_invariants(data);
    }

    /// What the startup-packet parser made of `data`.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub enum Classified {
        Incomplete,
        Refused {
            sqlstate: &'static str,
        },
        SslRequest,
        GssEncRequest,
        DirectTls,
        Cancel {
            pid: u32,
            key: Vec<u8>,
        },
        Startup {
            minor: u16,
            len: usize,
            params: Vec<(Vec<u8>, Vec<u8>)>,
        },
    }

    /// Classify `data` with the proxy's startup-packet parser.
    pub fn classify(data: &[u8]) -> Classified {
        use crate::pq::startup::{parse, StartupPacket};
        match parse(data) {
            Ok(None) => Classified::Incomplete,
            Err(e) => Classified::Refused {
                sqlstate: e.sqlstate(),
            },
            Ok(Some(p)) => match p.packet {
                StartupPacket::SslRequest => Classified::SslRequest,
                StartupPacket::GssEncRequest => Classified::GssEncRequest,
                StartupPacket::DirectTls => Classified::DirectTls,
                StartupPacket::Cancel(c) => Classified::Cancel {
                    pid: c.pid,
                    key: c.key.to_vec(),
                },
                StartupPacket::Startup(m) => Classified::Startup {
                    minor: m.minor,
                    len: p.len,
                    params: m.params().map(|(k, v)| (k.to_vec(), v.to_vec())).collect(),
                },
            },
        }
    }

    /// Feed arbitrary bytes, split at `split`, to the backend scanner.
    pub fn backend_scan(data: &[u8], split: usize) {
        let mut s = crate::pq::backend_scan::StartupScanner::new();
        let split = split.min(data.len());
        s.feed(&data[..split]);
        s.feed(&data[split..]);
        let mut t = crate::pq::backend_scan::ReadyTail::default();
        t.update(&data[..split]);
        t.update(&data[split..]);
        let _ = t.ends_with_ready_for_query();
    }
}
