//! The health check of one node over one round:
//! up to `max_retries + 1` connection attempts, each bounded by `timeout`,
//! separated by `retry_delay`; good at the first `ReadyForQuery`, bad when
//! every attempt failed. Time is a caller-supplied monotonic clock in
//! milliseconds, so the whole schedule is testable without sockets.

use crate::session::{Progress, Session};

/// `pgautofailover.health_check_*` settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckConfig {
    /// Per-attempt deadline (ms).
    pub timeout_ms: u64,
    /// Attempts beyond the first.
    pub max_retries: u32,
    /// Delay between two attempts (ms).
    pub retry_delay_ms: u64,
    pub user: String,
    pub password: String,
    pub database: String,
}

impl Default for CheckConfig {
    fn default() -> CheckConfig {
        CheckConfig {
            timeout_ms: 5_000,
            max_retries: 2,
            retry_delay_ms: 2_000,
            user: "pgautofailover_monitor".to_string(),
            password: "pgautofailover_monitor".to_string(),
            database: "postgres".to_string(),
        }
    }
}

/// The outcome of a check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Good,
    Bad,
}

enum Phase {
    /// Next attempt starts at this time.
    Waiting {
        at: u64,
    },
    /// An attempt is under way; it fails at `deadline`.
    Attempt {
        deadline: u64,
        session: Box<Session>,
    },
    Finished(Verdict),
}

/// One node's check.
pub struct Check {
    cfg: CheckConfig,
    tries: u32,
    phase: Phase,
    /// Why the last attempt failed, for the log.
    pub last_failure: Option<String>,
}

impl Check {
    /// A check whose first attempt is due now.
    pub fn new(cfg: CheckConfig, now: u64) -> Check {
        Check {
            cfg,
            tries: 0,
            phase: Phase::Waiting { at: now },
            last_failure: None,
        }
    }

    /// Attempts made so far.
    pub fn tries(&self) -> u32 {
        self.tries
    }

    pub fn verdict(&self) -> Option<Verdict> {
        match self.phase {
            Phase::Finished(v) => Some(v),
            _ => None,
        }
    }

    /// Whether an attempt is under way (the caller holds a socket for it).
    pub fn in_attempt(&self) -> bool {
        matches!(self.phase, Phase::Attempt { .. })
    }

    /// When the caller must call [`Check::tick`] at the latest.
    pub fn next_wakeup(&self) -> Option<u64> {
        match &self.phase {
            Phase::Waiting { at } => Some(*at),
            Phase::Attempt { deadline, .. } => Some(*deadline),
            Phase::Finished(_) => None,
        }
    }

    /// Start an attempt if one is due. Returns true when the caller must now
    /// open a connection (and report [`Check::connect_failed`] or exchange
    /// bytes).
    pub fn start_due(&mut self, now: u64) -> bool {
        match self.phase {
            Phase::Waiting { at } if now >= at => {
                self.tries += 1;
                let session = Session::new(&self.cfg.user, &self.cfg.database, &self.cfg.password);
                self.phase = Phase::Attempt {
                    deadline: now + self.cfg.timeout_ms,
                    session: Box::new(session),
                };
                true
            }
            _ => false,
        }
    }

    /// The connection could not even be started (or broke).
    pub fn connect_failed(&mut self, now: u64, why: &str) {
        if self.in_attempt() {
            self.attempt_failed(now, why.to_string());
        }
    }

    /// Enforce the attempt's deadline.
    pub fn tick(&mut self, now: u64) {
        if let Phase::Attempt { deadline, .. } = self.phase {
            if now >= deadline {
                self.attempt_failed(now, "timeout".to_string());
            }
        }
    }

    /// Bytes to write for the current attempt.
    pub fn take_output(&mut self) -> Vec<u8> {
        match &mut self.phase {
            Phase::Attempt { session, .. } => session.take_output(),
            _ => Vec::new(),
        }
    }

    pub fn wants_write(&self) -> bool {
        matches!(&self.phase, Phase::Attempt { session, .. } if session.wants_write())
    }

    /// Bytes read from the current attempt's socket (empty: end of file).
    pub fn received(&mut self, now: u64, bytes: &[u8]) {
        let Phase::Attempt { session, .. } = &mut self.phase else {
            return;
        };
        let progress = if bytes.is_empty() {
            session.closed()
        } else {
            session.received(bytes)
        };
        match progress {
            Progress::Pending => {}
            Progress::Ready => {
                self.phase = Phase::Finished(Verdict::Good);
            }
            Progress::Failed(why) => self.attempt_failed(now, why),
        }
    }

    fn attempt_failed(&mut self, now: u64, why: String) {
        self.last_failure = Some(why);
        self.phase = if self.tries > self.cfg.max_retries {
            Phase::Finished(Verdict::Bad)
        } else {
            Phase::Waiting {
                at: now + self.cfg.retry_delay_ms,
            }
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ready_bytes() -> Vec<u8> {
        let mut v = vec![b'R', 0, 0, 0, 8, 0, 0, 0, 0];
        v.extend_from_slice(&[b'Z', 0, 0, 0, 5, b'I']);
        v
    }

    #[test]
    fn good_on_first_attempt() {
        let mut c = Check::new(CheckConfig::default(), 100);
        assert!(c.start_due(100));
        assert!(c.wants_write());
        assert!(!c.take_output().is_empty());
        c.received(110, &ready_bytes());
        assert_eq!(c.verdict(), Some(Verdict::Good));
        assert_eq!(c.tries(), 1);
        assert_eq!(c.next_wakeup(), None);
    }

    /// A black-holed host: every attempt times out, three attempts, two
    /// delays: bad after 3 × 5 s + 2 × 2 s.
    #[test]
    fn silent_host_is_bad_after_all_attempts() {
        let mut c = Check::new(CheckConfig::default(), 0);
        let mut now = 0;
        let mut starts = 0;
        while c.verdict().is_none() {
            if c.start_due(now) {
                starts += 1;
            }
            c.tick(now);
            now = c.next_wakeup().unwrap_or(now);
        }
        assert_eq!(c.verdict(), Some(Verdict::Bad));
        assert_eq!(starts, 3);
        assert_eq!(now, 3 * 5_000 + 2 * 2_000);
        assert_eq!(c.last_failure.as_deref(), Some("timeout"));
    }

    /// Connection refused: bad after the retry delays only.
    #[test]
    fn refused_connections_are_bad_quickly() {
        let mut c = Check::new(CheckConfig::default(), 0);
        let mut now = 0;
        while c.verdict().is_none() {
            if c.start_due(now) {
                c.connect_failed(now, "refused");
            }
            if let Some(t) = c.next_wakeup() {
                now = t;
            }
        }
        assert_eq!(c.verdict(), Some(Verdict::Bad));
        assert_eq!(now, 2 * 2_000);
        assert_eq!(c.tries(), 3);
    }

    #[test]
    fn retry_succeeds_after_a_failure() {
        let cfg = CheckConfig {
            max_retries: 1,
            ..CheckConfig::default()
        };
        let mut c = Check::new(cfg, 0);
        assert!(c.start_due(0));
        c.received(5, b""); // closed by the server
        assert!(c.verdict().is_none());
        assert_eq!(c.next_wakeup(), Some(2_005));
        assert!(!c.start_due(2_000), "not before the retry delay");
        assert!(c.start_due(2_005));
        c.received(2_010, &ready_bytes());
        assert_eq!(c.verdict(), Some(Verdict::Good));
    }

    #[test]
    fn late_events_after_the_verdict_are_ignored() {
        let cfg = CheckConfig {
            max_retries: 0,
            ..CheckConfig::default()
        };
        let mut c = Check::new(cfg, 0);
        assert!(c.start_due(0));
        c.tick(5_000);
        assert_eq!(c.verdict(), Some(Verdict::Bad));
        c.received(5_001, &ready_bytes());
        c.connect_failed(5_002, "x");
        assert_eq!(c.verdict(), Some(Verdict::Bad));
        assert!(c.take_output().is_empty());
    }
}
