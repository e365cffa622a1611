//! The CPU scheduling policy of the worker threads (`proxy.scheduling`).
//!
//! A relay thread wakes up when a client or a node sent something, moves
//! it in a few microseconds and goes back to `epoll_wait`. Its peers
//! (pgbench, an application, a Postgres backend) are about to block
//! themselves when they wake it: they just sent a request or a reply. With
//! the default Linux policy (`SCHED_OTHER`) the woken relay thread
//! preempts the peer on its CPU, and the peer is switched back in a moment
//! later to reach its own `recv`: two extra context switches per message.
//! `SCHED_BATCH` keeps the fair share of CPU time and only removes that
//! wakeup preemption: the peer runs on to its blocking call and the relay
//! thread follows. On an idle CPU nothing changes. Measured (proxy/README.md,
//! bench/proxy/REPORT.md) it lowers the proxy's CPU per transaction and
//! raises throughput; `scheduling = "normal"` keeps the default policy.
//!
//! Any thread may switch between these non-real-time policies without
//! privileges.

use crate::config::Scheduling;

/// Apply `policy` to the calling thread.
pub(crate) fn apply_to_current_thread(policy: Scheduling) -> std::io::Result<()> {
    match policy {
        Scheduling::Normal => Ok(()),
        Scheduling::Batch => set_batch(),
    }
}

#[cfg(target_os = "linux")]
fn set_batch() -> std::io::Result<()> {
    let param = libc::sched_param { sched_priority: 0 };
    // SAFETY: pid 0 is the calling thread; `param` is a valid sched_param
    // that outlives the call.
    let rc = unsafe { libc::sched_setscheduler(0, libc::SCHED_BATCH, &param) };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

#[cfg(not(target_os = "linux"))]
fn set_batch() -> std::io::Result<()> {
    Err(std::io::Error::new(
        std::io::ErrorKind::Unsupported,
        "SCHED_BATCH needs Linux",
    ))
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    #[test]
    fn batch_applies_to_the_calling_thread_only() {
        let policy = std::thread::spawn(|| {
            apply_to_current_thread(Scheduling::Batch).unwrap();
            // SAFETY: reading the calling thread's policy.
            unsafe { libc::sched_getscheduler(0) }
        })
        .join()
        .unwrap();
        assert_eq!(policy, libc::SCHED_BATCH);
        // SAFETY: as above, on the test's own thread.
        assert_eq!(unsafe { libc::sched_getscheduler(0) }, libc::SCHED_OTHER);
        apply_to_current_thread(Scheduling::Normal).unwrap();
    }
}
