//! The relay: moves bytes between a client and a node after the handshake,
//! in both directions, without parsing them.
//!
//! Design (see proxy/README.md, "The forwarding path"):
//! * One future per session polls both directions; no extra tasks, no
//!   channels, no locks.
//! * Reads go into a **per-thread scratch buffer** (`buffer_size`, 64 KiB by
//!   default) and are written to the other side in the same poll. Only when
//!   the receiver applies back-pressure (a partial or pending write) does the
//!   session get its own buffer for that direction, which it then keeps and
//!   reads into directly. Idle and chatty sessions (the pgbench case) use no
//!   per-session buffer memory and never allocate on the hot path.
//! * Per chunk the only work besides the two syscalls is a ≤ 6-byte copy of
//!   the backend's tail ([`ReadyTail`]) and, during the startup phase only,
//!   the framing scan that picks up BackendKeyData ([`StartupScanner`]).
//! * EOF on one side half-closes the other (`shutdown(SHUT_WR)`), so
//!   Terminate/close sequences and COPY ends behave as without a proxy.
//! * Byte counts go to Prometheus in batches of 64 KiB and at the end.
//!
//! For plaintext TCP↔TCP sessions `splice.rs` can take over once the startup
//! phase is done (`relay = "splice"`).

use std::cell::RefCell;
use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use pgaf_metrics::prometheus::IntCounter;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

#[cfg(test)]
use crate::pq::backend_scan::ScanEnd;
use crate::pq::backend_scan::{BackendKey, ReadyTail, StartupScanner};

thread_local! {
    static SCRATCH: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// Flush byte counters to Prometheus after this many bytes.
const METRICS_BATCH: u64 = 64 * 1024;

/// Which peer an I/O error came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Side {
    Client,
    Server,
}

impl Side {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Side::Client => "client",
            Side::Server => "server",
        }
    }
}

/// An I/O error during the relay, with the side it came from.
#[derive(Debug, thiserror::Error)]
#[error("{} {}: {source}", side.as_str(), if *reading { "read" } else { "write" })]
pub(crate) struct RelayError {
    pub(crate) side: Side,
    pub(crate) reading: bool,
    #[source]
    pub(crate) source: io::Error,
}

/// How a relay poll finished.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RelayEnd {
    /// Both directions reached EOF and were half-closed.
    Closed,
    /// (Only with `stop_after_startup`) the backend's startup messages
    /// have been relayed and nothing is buffered: the caller may switch to
    /// another relay.
    StartupDone,
}

enum PipeError {
    Read(io::Error),
    Write(io::Error),
}

/// One direction.
#[derive(Debug, Default)]
struct Pipe {
    /// Own buffer, allocated at the first back-pressure.
    buf: Option<Box<[u8]>>,
    start: usize,
    end: usize,
    needs_flush: bool,
    eof: bool,
    done: bool,
    total: u64,
    unreported: u64,
}

enum Step {
    Pending,
    Eof,
    Moved(usize),
    Err(PipeError),
}

impl Pipe {
    fn has_pending(&self) -> bool {
        self.start < self.end
    }

    /// Move bytes from `r` to `w` until one side is not ready.
    fn poll_transfer<R, W>(
        &mut self,
        cx: &mut Context<'_>,
        r: &mut R,
        w: &mut W,
        buffer_size: usize,
        mut inspect: impl FnMut(&[u8]),
    ) -> Poll<Result<(), PipeError>>
    where
        R: AsyncRead + Unpin + ?Sized,
        W: AsyncWrite + Unpin + ?Sized,
    {
        if self.done {
            return Poll::Ready(Ok(()));
        }
        loop {
            // 1. Bytes waiting for the receiver.
            while self.start < self.end {
                let Some(buf) = &self.buf else {
                    self.start = 0;
                    self.end = 0;
                    break;
                };
                match Pin::new(&mut *w).poll_write(cx, &buf[self.start..self.end]) {
                    Poll::Ready(Ok(0)) => {
                        return Poll::Ready(Err(PipeError::Write(io::ErrorKind::WriteZero.into())))
                    }
                    Poll::Ready(Ok(n)) => {
                        self.start += n;
                        self.needs_flush = true;
                    }
                    Poll::Ready(Err(e)) => return Poll::Ready(Err(PipeError::Write(e))),
                    Poll::Pending => return Poll::Pending,
                }
            }
            self.start = 0;
            self.end = 0;
            // 2. Push out what a buffering writer (TLS) may hold.
            if self.needs_flush {
                ready!(Pin::new(&mut *w).poll_flush(cx)).map_err(PipeError::Write)?;
                self.needs_flush = false;
            }
            // 3. The sender is done: half-close the receiver.
            if self.eof {
                // The peer may already be gone; the other direction reports
                // real errors.
                let _ = ready!(Pin::new(&mut *w).poll_shutdown(cx));
                self.done = true;
                return Poll::Ready(Ok(()));
            }
            // 4. Read more.
            if let Some(buf) = self.buf.as_mut() {
                let mut rb = ReadBuf::new(&mut buf[..]);
                ready!(Pin::new(&mut *r).poll_read(cx, &mut rb)).map_err(PipeError::Read)?;
                let n = rb.filled().len();
                if n == 0 {
                    self.eof = true;
                    continue;
                }
                inspect(&buf[..n]);
                self.start = 0;
                self.end = n;
                self.count(n);
                continue;
            }
            let step = SCRATCH.with(|cell| {
                let Ok(mut scratch) = cell.try_borrow_mut() else {
                    // Re-entered (cannot happen with the streams we use):
                    // fall back to an own buffer.
                    self.buf = Some(vec![0u8; buffer_size].into_boxed_slice());
                    return Step::Moved(0);
                };
                if scratch.len() < buffer_size {
                    scratch.resize(buffer_size, 0);
                }
                let scratch = &mut scratch[..buffer_size];
                let mut rb = ReadBuf::new(&mut scratch[..]);
                match Pin::new(&mut *r).poll_read(cx, &mut rb) {
                    Poll::Pending => return Step::Pending,
                    Poll::Ready(Err(e)) => return Step::Err(PipeError::Read(e)),
                    Poll::Ready(Ok(())) => {}
                }
                let n = rb.filled().len();
                if n == 0 {
                    return Step::Eof;
                }
                inspect(&scratch[..n]);
                let mut off = 0;
                while off < n {
                    match Pin::new(&mut *w).poll_write(cx, &scratch[off..n]) {
                        Poll::Ready(Ok(0)) => {
                            return Step::Err(PipeError::Write(io::ErrorKind::WriteZero.into()))
                        }
                        Poll::Ready(Ok(k)) => {
                            off += k;
                            self.needs_flush = true;
                        }
                        Poll::Ready(Err(e)) => return Step::Err(PipeError::Write(e)),
                        Poll::Pending => break,
                    }
                }
                if off < n {
                    // Back-pressure: keep the rest in an own buffer.
                    let mut own = vec![0u8; buffer_size].into_boxed_slice();
                    own[..n - off].copy_from_slice(&scratch[off..n]);
                    self.buf = Some(own);
                    self.start = 0;
                    self.end = n - off;
                }
                Step::Moved(n)
            });
            match step {
                Step::Pending => return Poll::Pending,
                Step::Eof => self.eof = true,
                Step::Moved(n) => self.count(n),
                Step::Err(e) => return Poll::Ready(Err(e)),
            }
        }
    }

    #[inline]
    fn count(&mut self, n: usize) {
        self.total += n as u64;
        self.unreported += n as u64;
    }

    fn report(&mut self, counter: Option<&IntCounter>, threshold: u64) {
        if self.unreported >= threshold && self.unreported > 0 {
            if let Some(c) = counter {
                c.inc_by(self.unreported);
            }
            self.unreported = 0;
        }
    }
}

/// A client↔server relay.
pub(crate) struct Relay<C, S> {
    pub(crate) client: C,
    pub(crate) server: S,
    c2s: Pipe,
    s2c: Pipe,
    buffer_size: usize,
    scanner: Option<StartupScanner>,
    key: Option<BackendKey>,
    tail: Option<ReadyTail>,
    stop_after_startup: bool,
    bytes_c2s: Option<IntCounter>,
    bytes_s2c: Option<IntCounter>,
}

impl<C, S> Relay<C, S>
where
    C: AsyncRead + AsyncWrite + Unpin,
    S: AsyncRead + AsyncWrite + Unpin,
{
    /// A relay. `plaintext_backend`: the backend stream is readable (not a
    /// passed-through TLS or GSS session), so the startup scan and the idle
    /// tail can work.
    pub(crate) fn new(client: C, server: S, buffer_size: usize, plaintext_backend: bool) -> Self {
        Relay {
            client,
            server,
            c2s: Pipe::default(),
            s2c: Pipe::default(),
            buffer_size,
            scanner: plaintext_backend.then(StartupScanner::new),
            key: None,
            tail: plaintext_backend.then(ReadyTail::default),
            stop_after_startup: false,
            bytes_c2s: None,
            bytes_s2c: None,
        }
    }

    /// Count bytes into these counters.
    pub(crate) fn with_counters(mut self, c2s: IntCounter, s2c: IntCounter) -> Self {
        self.bytes_c2s = Some(c2s);
        self.bytes_s2c = Some(s2c);
        self
    }

    /// Return [`RelayEnd::StartupDone`] once the startup scan ends (for an
    /// opaque session: once the preloaded bytes are out).
    pub(crate) fn stop_after_startup(mut self, stop: bool) -> Self {
        self.stop_after_startup = stop;
        self
    }

    /// Send `prefix` to the server before anything else (bytes the client
    /// pipelined behind its startup packet).
    pub(crate) fn preload_client_bytes(&mut self, prefix: &[u8]) {
        if prefix.is_empty() {
            return;
        }
        let mut own = vec![0u8; self.buffer_size.max(prefix.len())].into_boxed_slice();
        own[..prefix.len()].copy_from_slice(prefix);
        self.c2s.buf = Some(own);
        self.c2s.start = 0;
        self.c2s.end = prefix.len();
    }

    /// The BackendKeyData seen during the startup phase.
    pub(crate) fn take_key(&mut self) -> Option<BackendKey> {
        self.key.take()
    }

    /// The client sits at a message boundary right after a ReadyForQuery,
    /// with nothing buffered towards it: a FATAL ErrorResponse can follow.
    pub(crate) fn client_at_message_boundary(&self) -> bool {
        !self.s2c.has_pending()
            && self
                .tail
                .as_ref()
                .is_some_and(ReadyTail::ends_with_ready_for_query)
    }

    /// Bytes moved so far: (client→server, server→client).
    pub(crate) fn totals(&self) -> (u64, u64) {
        (self.c2s.total, self.s2c.total)
    }

    pub(crate) fn buffer_size(&self) -> usize {
        self.buffer_size
    }

    /// Both streams (for a relay that takes over, like splice).
    pub(crate) fn streams(&self) -> (&C, &S) {
        (&self.client, &self.server)
    }

    /// Count bytes moved by another relay on these streams.
    pub(crate) fn add_external(&mut self, c2s: u64, s2c: u64) {
        self.c2s.total += c2s;
        self.c2s.unreported += c2s;
        self.s2c.total += s2c;
        self.s2c.unreported += s2c;
    }

    /// Report the remaining byte counts.
    pub(crate) fn flush_metrics(&mut self) {
        self.c2s.report(self.bytes_c2s.as_ref(), 0);
        self.s2c.report(self.bytes_s2c.as_ref(), 0);
    }

    /// Drive both directions.
    pub(crate) fn poll_relay(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Result<RelayEnd, RelayError>> {
        let buffer_size = self.buffer_size;
        let c2s =
            self.c2s
                .poll_transfer(cx, &mut self.client, &mut self.server, buffer_size, |_| {});
        if let Poll::Ready(Err(e)) = c2s {
            return Poll::Ready(Err(pipe_error(e, Side::Client, Side::Server)));
        }
        let scanner = &mut self.scanner;
        let key = &mut self.key;
        let tail = &mut self.tail;
        let s2c = self.s2c.poll_transfer(
            cx,
            &mut self.server,
            &mut self.client,
            buffer_size,
            |chunk| {
                if let Some(t) = tail.as_mut() {
                    t.update(chunk);
                }
                if let Some(s) = scanner.as_mut() {
                    s.feed(chunk);
                    if let Some(k) = s.take_key() {
                        *key = Some(k);
                    }
                    if s.end().is_some() {
                        *scanner = None;
                    }
                }
            },
        );
        if let Poll::Ready(Err(e)) = s2c {
            return Poll::Ready(Err(pipe_error(e, Side::Server, Side::Client)));
        }
        self.c2s.report(self.bytes_c2s.as_ref(), METRICS_BATCH);
        self.s2c.report(self.bytes_s2c.as_ref(), METRICS_BATCH);
        if self.c2s.done && self.s2c.done {
            return Poll::Ready(Ok(RelayEnd::Closed));
        }
        if self.stop_after_startup
            && self.scanner.is_none()
            && !self.c2s.has_pending()
            && !self.s2c.has_pending()
            && !self.c2s.needs_flush
            && !self.s2c.needs_flush
            && !self.c2s.eof
            && !self.s2c.eof
        {
            self.stop_after_startup = false;
            return Poll::Ready(Ok(RelayEnd::StartupDone));
        }
        Poll::Pending
    }

    /// How the startup scan ended, while it runs: `None`.
    #[cfg(test)]
    pub(crate) fn scan_end(&self) -> Option<ScanEnd> {
        match &self.scanner {
            Some(s) => s.end(),
            None => Some(ScanEnd::Ready),
        }
    }
}

fn pipe_error(e: PipeError, reader: Side, writer: Side) -> RelayError {
    match e {
        PipeError::Read(source) => RelayError {
            side: reader,
            reading: true,
            source,
        },
        PipeError::Write(source) => RelayError {
            side: writer,
            reading: false,
            source,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::future::poll_fn;
    use std::time::Duration;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    const DEADLINE: Duration = Duration::from_secs(10);

    async fn relay_pair(
        plaintext: bool,
    ) -> (
        tokio::io::DuplexStream,
        tokio::io::DuplexStream,
        tokio::task::JoinHandle<(Result<RelayEnd, RelayError>, Option<BackendKey>, (u64, u64))>,
    ) {
        let (client, proxy_client) = tokio::io::duplex(1024);
        let (proxy_server, server) = tokio::io::duplex(1024);
        let task = tokio::spawn(async move {
            let mut relay = Relay::new(proxy_client, proxy_server, 4096, plaintext);
            let r = poll_fn(|cx| relay.poll_relay(cx)).await;
            (r, relay.take_key(), relay.totals())
        });
        (client, server, task)
    }

    #[tokio::test]
    async fn moves_large_streams_both_ways_with_back_pressure() {
        let (mut client, mut server, task) = relay_pair(false).await;
        let up: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
        let down: Vec<u8> = (0..200_000u32).map(|i| (i % 241) as u8).collect();
        let (up2, down2) = (up.clone(), down.clone());
        let c = tokio::spawn(async move {
            let (mut r, mut w) = tokio::io::split(client);
            let writer = async {
                w.write_all(&up2).await.unwrap();
                w.shutdown().await.unwrap();
            };
            let reader = async {
                let mut got = Vec::new();
                r.read_to_end(&mut got).await.unwrap();
                got
            };
            let ((), got) = tokio::join!(writer, reader);
            client = r.unsplit(w);
            drop(client);
            got
        });
        let s = tokio::spawn(async move {
            let (mut r, mut w) = tokio::io::split(server);
            let writer = async {
                w.write_all(&down2).await.unwrap();
                w.shutdown().await.unwrap();
            };
            let reader = async {
                let mut got = Vec::new();
                r.read_to_end(&mut got).await.unwrap();
                got
            };
            let ((), got) = tokio::join!(writer, reader);
            server = r.unsplit(w);
            drop(server);
            got
        });
        let got_down = tokio::time::timeout(DEADLINE, c).await.unwrap().unwrap();
        let got_up = tokio::time::timeout(DEADLINE, s).await.unwrap().unwrap();
        assert_eq!(got_up, up);
        assert_eq!(got_down, down);
        let (end, _, totals) = tokio::time::timeout(DEADLINE, task).await.unwrap().unwrap();
        assert_eq!(end.unwrap(), RelayEnd::Closed);
        assert_eq!(totals, (300_000, 200_000));
    }

    #[tokio::test]
    async fn learns_the_backend_key_and_the_idle_boundary() {
        let (client, proxy_client) = tokio::io::duplex(64 * 1024);
        let (proxy_server, mut server) = tokio::io::duplex(64 * 1024);
        let mut relay = Relay::new(proxy_client, proxy_server, 4096, true).stop_after_startup(true);
        let mut login = Vec::new();
        login.extend_from_slice(&[b'R', 0, 0, 0, 8, 0, 0, 0, 0]);
        login.extend_from_slice(&[b'K', 0, 0, 0, 12, 0, 0, 0x10, 0x92, 1, 2, 3, 4]);
        login.extend_from_slice(&[b'Z', 0, 0, 0, 5, b'I']);
        server.write_all(&login).await.unwrap();
        let end = tokio::time::timeout(DEADLINE, poll_fn(|cx| relay.poll_relay(cx)))
            .await
            .unwrap();
        assert_eq!(end.unwrap(), RelayEnd::StartupDone);
        assert_eq!(
            relay.take_key(),
            Some(BackendKey {
                pid: 4242,
                key: vec![1, 2, 3, 4]
            })
        );
        assert!(relay.client_at_message_boundary());
        assert_eq!(relay.scan_end(), Some(ScanEnd::Ready));
        // A DataRow in flight is not a boundary.
        server.write_all(&[b'D', 0, 0, 0, 6, 0, 0]).await.unwrap();
        let _ = tokio::time::timeout(
            Duration::from_millis(100),
            poll_fn(|cx| relay.poll_relay(cx)),
        )
        .await;
        assert!(!relay.client_at_message_boundary());
        drop(client);
    }

    #[tokio::test]
    async fn reports_which_side_failed() {
        let (client, mut server, task) = relay_pair(true).await;
        drop(client);
        // The client is gone: writing towards it fails, or the relay sees
        // EOF and half-closes; either way the relay ends.
        let _ = server.write_all(b"Zxxxx").await;
        drop(server);
        let (end, _, _) = tokio::time::timeout(DEADLINE, task).await.unwrap().unwrap();
        match end {
            Ok(RelayEnd::Closed) => {}
            Err(e) => assert_eq!(e.side, Side::Client),
            other => panic!("{other:?}"),
        }
    }
}
