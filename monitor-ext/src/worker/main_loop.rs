//! The monitor worker's loop: wait for the extension, then interleave health
//! check rounds (every `health_check_period`) with the evaluation of every
//! group (every `evaluation_period`). It sleeps on its latch, or in
//! `poll(2)` while sockets are open; SIGHUP reloads the configuration,
//! SIGTERM stops it.

use super::monitor::{self, Target};
use super::round::Round;
use super::txn;
use crate::guc;
use pgaf_fsm::Health;
use pgaf_healthcheck::Verdict;
use pgrx::bgworkers::BackgroundWorker;
use pgrx::pg_sys;
use std::time::{Duration, Instant};

/// The longest single sleep, so that settings changes apply promptly.
const MAX_SLEEP_MS: u64 = 1_000;

fn period(setting: i32) -> u64 {
    u64::try_from(setting).unwrap_or(1).max(1)
}

pub fn run() {
    let start = Instant::now();
    let now = || u64::try_from(start.elapsed().as_millis()).unwrap_or(u64::MAX);
    let mut ready = false;
    let mut next_eval = 0u64;
    let mut next_round = 0u64;
    let mut round: Option<Round> = None;

    loop {
        if BackgroundWorker::sigterm_received() {
            break;
        }
        if BackgroundWorker::sighup_received() {
            // SAFETY: reloading the configuration file from the main loop.
            unsafe { pg_sys::ProcessConfigFile(pg_sys::GucContext::PGC_SIGHUP) };
        }
        if !ready {
            ready = txn::run(monitor::extension_ready).unwrap_or(false);
            if ready {
                pgrx::log!("pg_auto_failover extension found, starting health checks");
            } else {
                if !BackgroundWorker::wait_latch(Some(Duration::from_secs(1))) {
                    break;
                }
                continue;
            }
        }

        let t = now();
        if t >= next_eval {
            match txn::run(monitor::evaluate_all) {
                Some(Ok(_)) => {}
                Some(Err(e)) => pgrx::warning!("pg_auto_failover: evaluation failed: {}", e),
                // An ERROR (logged by txn::run): the extension may be gone.
                None => ready = false,
            }
            next_eval = t + period(guc::EVALUATION_PERIOD.get());
        }

        if round.is_none() && t >= next_round {
            next_round = t + period(guc::HEALTH_CHECK_PERIOD.get());
            if guc::ENABLE_HEALTH_CHECKS.get() {
                match txn::run(monitor::targets) {
                    Some(Ok(targets)) if !targets.is_empty() => {
                        round = Some(Round::new(targets, &guc::check_config(), t));
                    }
                    Some(Err(e)) => pgrx::warning!("pg_auto_failover: loading nodes failed: {}", e),
                    // The extension was dropped.
                    None => ready = false,
                    _ => {}
                }
            }
        }

        if let Some(r) = round.as_mut() {
            r.advance(now());
            for (target, verdict, why) in r.take_verdicts() {
                record(&target, verdict, why.as_deref());
            }
            if r.done() {
                round = None;
            }
        }

        // Sleep until the next thing to do.
        let t = now();
        let mut wake = next_eval;
        match &round {
            Some(r) => {
                if let Some(w) = r.next_wakeup() {
                    wake = wake.min(w);
                }
            }
            None => wake = wake.min(next_round),
        }
        let sleep = wake.saturating_sub(t).min(MAX_SLEEP_MS);
        match round.as_mut() {
            Some(r) if r.has_sockets() => {
                r.poll(i32::try_from(sleep).unwrap_or(1_000), now);
                // Notice signals and postmaster death without sleeping.
                if !BackgroundWorker::wait_latch(Some(Duration::ZERO)) {
                    break;
                }
            }
            _ => {
                if !BackgroundWorker::wait_latch(Some(Duration::from_millis(sleep))) {
                    break;
                }
            }
        }
    }
}

fn record(target: &Target, verdict: Verdict, why: Option<&str>) {
    let health = match verdict {
        Verdict::Good => Health::Good,
        Verdict::Bad => {
            pgrx::debug1!(
                "pg_auto_failover: node {} ({}:{}) failed its health check: {}",
                target.id,
                target.host,
                target.port,
                why.unwrap_or("unknown reason")
            );
            Health::Bad
        }
    };
    if let Some(Err(e)) = txn::run(|| monitor::record(target, health)) {
        pgrx::warning!(
            "pg_auto_failover: recording the health of node {} failed: {}",
            target.id,
            e
        );
    }
}
