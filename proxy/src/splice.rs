//! Zero-copy relay with splice(2) for TCP↔TCP sessions (`relay = "splice"`,
//! Linux only): plaintext sessions after their startup phase, passed-through
//! TLS/GSS sessions from the start. Not used when the proxy terminates TLS.
//!
//! Each direction moves bytes socket → pipe → socket inside the kernel; the
//! pipe is always drained before the next read, so a splice into it never
//! fails for lack of room and `EAGAIN` reliably means "socket not ready".
//! Readiness comes from tokio (`poll_*_ready` + `try_io`), so splice
//! sessions live on the same event loop as the others.
//!
//! The cost: two pipes (four descriptors) per session, and the proxy no
//! longer sees the backend's bytes, so a fenced session is closed without
//! the 57P01 ErrorResponse. Measurements (proxy/README.md) decide the
//! default.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::task::{ready, Context, Poll};

use tokio::io::Interest;
use tokio::net::TcpStream;

use crate::fence::{FenceReason, SessionSignal};
use crate::passthrough::{Relay, RelayError, Side};
use crate::stream::{BackendStream, ClientStream};

/// How a splice relay ended, other than by both sides closing.
#[derive(Debug)]
pub(crate) enum SpliceEnd {
    Fenced(FenceReason),
    Failed(RelayError),
}

struct Pipe {
    read: OwnedFd,
    write: OwnedFd,
    /// Bytes sitting in the pipe.
    queued: usize,
    capacity: usize,
    eof: bool,
    done: bool,
    moved: u64,
}

impl Pipe {
    fn new(size: usize) -> io::Result<Pipe> {
        let mut fds = [0 as RawFd; 2];
        // SAFETY: `fds` is a valid array of two descriptors for pipe2 to fill.
        let rc = unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_NONBLOCK | libc::O_CLOEXEC) };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: pipe2 succeeded, so both descriptors are open and owned by us.
        let (read, write) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
        // SAFETY: F_SETPIPE_SZ on a pipe descriptor we own; failure is harmless.
        let got =
            unsafe { libc::fcntl(write.as_raw_fd(), libc::F_SETPIPE_SZ, size as libc::c_int) };
        let capacity = if got > 0 { got as usize } else { 64 * 1024 };
        Ok(Pipe {
            read,
            write,
            queued: 0,
            capacity,
            eof: false,
            done: false,
            moved: 0,
        })
    }

    fn poll_transfer(
        &mut self,
        cx: &mut Context<'_>,
        src: &TcpStream,
        dst: &TcpStream,
    ) -> Poll<Result<(), (bool, io::Error)>> {
        if self.done {
            return Poll::Ready(Ok(()));
        }
        loop {
            while self.queued > 0 {
                ready!(dst.poll_write_ready(cx)).map_err(|e| (false, e))?;
                let out = dst.as_raw_fd();
                let (rfd, len) = (self.read.as_raw_fd(), self.queued);
                match dst.try_io(Interest::WRITABLE, || splice(rfd, out, len)) {
                    Ok(0) => return Poll::Ready(Err((false, io::ErrorKind::WriteZero.into()))),
                    Ok(n) => self.queued -= n,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    Err(e) => return Poll::Ready(Err((false, e))),
                }
            }
            if self.eof {
                let _ = socket2::SockRef::from(dst).shutdown(std::net::Shutdown::Write);
                self.done = true;
                return Poll::Ready(Ok(()));
            }
            ready!(src.poll_read_ready(cx)).map_err(|e| (true, e))?;
            let input = src.as_raw_fd();
            let (wfd, cap) = (self.write.as_raw_fd(), self.capacity);
            match src.try_io(Interest::READABLE, || splice(input, wfd, cap)) {
                Ok(0) => self.eof = true,
                Ok(n) => {
                    self.queued = n;
                    self.moved += n as u64;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Poll::Ready(Err((true, e))),
            }
        }
    }
}

fn splice(from: RawFd, to: RawFd, len: usize) -> io::Result<usize> {
    // SAFETY: both descriptors are open for the duration of the call (they
    // are borrowed from live owners); null offsets mean "current position".
    let n = unsafe {
        libc::splice(
            from,
            std::ptr::null_mut(),
            to,
            std::ptr::null_mut(),
            len,
            libc::SPLICE_F_MOVE | libc::SPLICE_F_NONBLOCK,
        )
    };
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}

/// Relay `relay`'s sockets with splice until both sides closed, the
/// session is fenced, or an error. Falls back to nothing: the caller only
/// calls this when both sides are plain TCP. Byte counts are added to the relay's.
pub(crate) async fn run(
    relay: &mut Relay<ClientStream, BackendStream>,
    signal: &SessionSignal,
    waker_stored: &mut bool,
) -> Result<(), SpliceEnd> {
    let size = relay.buffer_size();
    let pipes = Pipe::new(size).and_then(|a| Ok((a, Pipe::new(size)?)));
    let (mut c2s, mut s2c) = match pipes {
        Ok(p) => p,
        Err(e) => {
            tracing::debug!("failed to create pipes, relaying by copy: {e}");
            return copy_rest(relay, signal, waker_stored).await;
        }
    };
    let result = std::future::poll_fn(|cx| {
        if let Poll::Ready(r) = signal.poll_fired(cx, waker_stored) {
            return Poll::Ready(Err(SpliceEnd::Fenced(r)));
        }
        let (client, server) = relay.streams();
        let (ClientStream::Plain(client), BackendStream::Plain(server)) = (client, server) else {
            return Poll::Ready(Ok(()));
        };
        let a = c2s.poll_transfer(cx, client, server);
        if let Poll::Ready(Err((reading, source))) = a {
            let side = if reading { Side::Client } else { Side::Server };
            return Poll::Ready(Err(SpliceEnd::Failed(RelayError {
                side,
                reading,
                source,
            })));
        }
        let b = s2c.poll_transfer(cx, server, client);
        if let Poll::Ready(Err((reading, source))) = b {
            let side = if reading { Side::Server } else { Side::Client };
            return Poll::Ready(Err(SpliceEnd::Failed(RelayError {
                side,
                reading,
                source,
            })));
        }
        if c2s.done && s2c.done {
            return Poll::Ready(Ok(()));
        }
        Poll::Pending
    })
    .await;
    relay.add_external(c2s.moved, s2c.moved);
    result
}

async fn copy_rest(
    relay: &mut Relay<ClientStream, BackendStream>,
    signal: &SessionSignal,
    waker_stored: &mut bool,
) -> Result<(), SpliceEnd> {
    std::future::poll_fn(|cx| {
        if let Poll::Ready(r) = signal.poll_fired(cx, waker_stored) {
            return Poll::Ready(Err(SpliceEnd::Fenced(r)));
        }
        match ready!(relay.poll_relay(cx)) {
            Ok(_) => Poll::Ready(Ok(())),
            Err(e) => Poll::Ready(Err(SpliceEnd::Failed(e))),
        }
    })
    .await
}
