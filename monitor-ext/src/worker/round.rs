//! One round of health checks: every node checked concurrently, each by a
//! `pgaf_healthcheck::Check` driven over a non-blocking socket. A node that
//! does not answer only holds its own check, never the others.

use super::monitor::Target;
use super::socket::{self, Conn};
use pgaf_healthcheck::{Check, CheckConfig, Verdict};

struct NodeCheck {
    target: Target,
    check: Check,
    conn: Option<Conn>,
    reported: bool,
}

/// The checks of one round.
pub struct Round {
    checks: Vec<NodeCheck>,
}

impl Round {
    pub fn new(targets: Vec<Target>, cfg: &CheckConfig, now: u64) -> Round {
        let checks = targets
            .into_iter()
            .map(|target| NodeCheck {
                target,
                check: Check::new(cfg.clone(), now),
                conn: None,
                reported: false,
            })
            .collect();
        Round { checks }
    }

    /// Start due attempts and enforce deadlines.
    pub fn advance(&mut self, now: u64) {
        for c in &mut self.checks {
            if c.check.start_due(now) {
                match Conn::start(&c.target.host, c.target.port) {
                    Ok(conn) => c.conn = Some(conn),
                    Err(e) => c.check.connect_failed(now, &e.to_string()),
                }
            }
            c.check.tick(now);
            flush(c, now);
        }
    }

    /// Whether some check holds a socket.
    pub fn has_sockets(&self) -> bool {
        self.checks.iter().any(|c| c.conn.is_some())
    }

    /// The earliest time a check needs attention.
    pub fn next_wakeup(&self) -> Option<u64> {
        self.checks
            .iter()
            .filter_map(|c| c.check.next_wakeup())
            .min()
    }

    /// Wait for socket events (at most `timeout_ms`) and feed them to the
    /// checks.
    pub fn poll(&mut self, timeout_ms: i32, now: impl Fn() -> u64) {
        let fds: Vec<(usize, i32, i16)> = self
            .checks
            .iter()
            .enumerate()
            .filter_map(|(i, c)| c.conn.as_ref().map(|conn| (i, conn.fd(), conn.interest())))
            .collect();
        let revents = socket::poll(
            &fds.iter().map(|&(_, fd, ev)| (fd, ev)).collect::<Vec<_>>(),
            timeout_ms,
        );
        let t = now();
        for (&(i, _, _), &ev) in fds.iter().zip(revents.iter()) {
            if ev != 0 {
                handle(&mut self.checks[i], ev, t);
            }
        }
    }

    /// Verdicts not handed out yet.
    pub fn take_verdicts(&mut self) -> Vec<(Target, Verdict, Option<String>)> {
        let mut out = Vec::new();
        for c in &mut self.checks {
            if let (Some(v), false) = (c.check.verdict(), c.reported) {
                c.reported = true;
                c.conn = None;
                out.push((c.target.clone(), v, c.check.last_failure.clone()));
            }
        }
        out
    }

    /// Every check has its verdict.
    pub fn done(&self) -> bool {
        self.checks.iter().all(|c| c.reported)
    }
}

/// Drop the socket of a finished attempt; write what the session wants.
fn flush(c: &mut NodeCheck, now: u64) {
    if !c.check.in_attempt() {
        c.conn = None;
        return;
    }
    let Some(conn) = c.conn.as_mut() else { return };
    if conn.connected && c.check.wants_write() {
        let out = c.check.take_output();
        if let Err(e) = conn.write(&out) {
            c.check.connect_failed(now, &e.to_string());
            c.conn = None;
        }
    }
}

fn handle(c: &mut NodeCheck, revents: i16, now: u64) {
    let Some(conn) = c.conn.as_mut() else { return };
    if !conn.connected {
        if let Err(e) = conn.finish_connect() {
            c.check.connect_failed(now, &e.to_string());
            c.conn = None;
            return;
        }
        flush(c, now);
        return;
    }
    if revents & libc::POLLOUT != 0 {
        if let Err(e) = conn.write(&[]) {
            c.check.connect_failed(now, &e.to_string());
            c.conn = None;
            return;
        }
    }
    if revents & (libc::POLLIN | libc::POLLHUP | libc::POLLERR) != 0 {
        match conn.read() {
            Ok(Some(bytes)) => c.check.received(now, &bytes),
            Ok(None) => {}
            Err(e) => c.check.connect_failed(now, &e.to_string()),
        }
    }
    flush(c, now);
}
