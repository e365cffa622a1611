//! One client connection, from accept to close, inside a `session` span
//! (`id`, `listener`, `peer`, later `user`, `database`, `node`).
//!
//! 1. **Handshake** (plaintext until TLS): read a startup-phase packet with
//!    a deadline ([`crate::pq::startup::parse`]).
//!    * CancelRequest → [`crate::cancel`], then close.
//!    * SSLRequest / GSSENCRequest / direct TLS, passthrough mode: pick a
//!      node (holding while there is none), connect, forward the request
//!      and the node's one-byte answer. `S`/`G` means the rest is an
//!      encrypted stream the proxy relays blindly; `N` continues.
//!    * SSLRequest, terminate mode: answer `S` and run the TLS handshake
//!      (GSSENCRequest is answered `N`).
//!    * StartupMessage: pick and connect if not done yet, forward the
//!      original bytes plus anything pipelined behind them.
//!
//!    A refusal is an ErrorResponse ([`Refusal`]); when the client asked
//!    for encryption first, the proxy answers `N`, reads the StartupMessage
//!    and refuses in plaintext, as Postgres does.
//! 2. **Relay** ([`crate::passthrough`], or splice): until either side
//!    closes, or the session is fenced ([`crate::fence`]): then a FATAL
//!    57P01 is appended when the client sits at a message boundary (the
//!    backend's last message was ReadyForQuery and nothing is buffered),
//!    otherwise the connection is just closed.

use std::future::poll_fn;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;
use tracing::Instrument;

use crate::cancel::{self, Target as CancelTarget};
use crate::config::{BackendTls, RelayMode, Role};
use crate::connect::tune;
use crate::error::{Refusal, SessionError, Target};
use crate::fence::{FenceReason, Registration};
use crate::listener::{ConnectionSlot, ListenerCtx};
use crate::metrics::{metrics, CancelOutcome};
use crate::passthrough::{Relay, RelayEnd};
use crate::pq::error_response::ErrorResponse;
use crate::pq::sqlstate;
use crate::pq::startup::{self, StartupPacket};
use crate::route::{Backend, Snapshot, Unavailable, WaitError};
use crate::stream::{BackendStream, ClientStream, Rewind};

static NEXT_SESSION: AtomicU64 = AtomicU64::new(1);

/// Time allowed to write a final ErrorResponse to a client.
const GOODBYE_TIMEOUT: Duration = Duration::from_secs(2);

/// The SSLRequest packet: length 8, then the request code.
const SSL_REQUEST: [u8; 8] = {
    let code = startup::SSL_REQUEST_CODE.to_be_bytes();
    [0, 0, 0, 8, code[0], code[1], code[2], code[3]]
};

/// Handle one accepted client connection.
pub(crate) async fn run(socket: TcpStream, peer: SocketAddr, ctx: Arc<ListenerCtx>) {
    let id = NEXT_SESSION.fetch_add(1, Ordering::Relaxed);
    let span = tracing::info_span!(
        "session",
        id,
        listener = %ctx.config.name,
        %peer,
        user = tracing::field::Empty,
        database = tracing::field::Empty,
        node = tracing::field::Empty,
    );
    handle(socket, ctx, id, span).await;
}

/// The span is entered while the handshake runs, but not around the relay:
/// entering a span on every wakeup of a busy session costs more than the
/// relay's own bookkeeping. The relay's final events name it as parent.
async fn handle(socket: TcpStream, ctx: Arc<ListenerCtx>, id: u64, span: tracing::Span) {
    ctx.metrics.accepted.inc();
    ctx.metrics.active.inc();
    let (slot, within_limit) = ConnectionSlot::take(&ctx.shared, ctx.settings.max_connections);
    tune(&socket, &ctx.settings.keepalive);
    let started = Instant::now();
    let mut hs = Handshake {
        ctx: &ctx,
        id,
        buf: Vec::with_capacity(512),
        ssl_done: false,
        gss_done: false,
        pending_refusal: (!within_limit).then_some(Refusal::TooMany),
        conn: None,
    };
    let result = hs
        .run(ClientStream::Plain(socket))
        .instrument(span.clone())
        .await;
    match result {
        Ok(Established::Done) => tracing::debug!(parent: &span, "cancel request handled"),
        Ok(Established::Relay(start)) => relay(start, &ctx, id, started, &span).await,
        Err(e) => {
            if let Some(r) = e.reason() {
                ctx.metrics.rejected(r);
            }
            tracing::debug!(parent: &span, "connection not relayed: {e}");
        }
    }
    drop(slot);
    ctx.metrics.active.dec();
}

/// A node connection, registered with its backend for fencing.
struct Connected {
    backend: Arc<Backend>,
    server: BackendStream,
    registration: Registration,
}

/// A client ready to be relayed to a node.
struct RelayStart {
    client: ClientStream,
    conn: Connected,
    /// The node's stream is readable (not passed-through TLS/GSS).
    plaintext: bool,
    /// Client bytes to send to the node first.
    pipelined: Vec<u8>,
}

enum Established {
    Relay(RelayStart),
    Done,
}

/// A startup-phase packet, copied out of the buffer.
enum Packet {
    Ssl,
    Gss,
    Cancel,
    Startup { user: String, database: String },
    DirectTls,
}

struct Handshake<'a> {
    ctx: &'a ListenerCtx,
    id: u64,
    buf: Vec<u8>,
    ssl_done: bool,
    gss_done: bool,
    /// Refuse the StartupMessage with this (set when the client asked for
    /// encryption first and could only be answered `N`).
    pending_refusal: Option<Refusal>,
    conn: Option<Connected>,
}

impl Handshake<'_> {
    async fn run(&mut self, mut client: ClientStream) -> Result<Established, SessionError> {
        loop {
            let (packet, len) = match self.read_packet(&mut client).await {
                Ok(p) => p,
                Err(SessionError::Refused(r)) => return Err(refuse(&mut client, r).await),
                Err(e) => return Err(e),
            };
            match packet {
                Packet::Cancel => {
                    let bytes: Vec<u8> = self.buf.drain(..len).collect();
                    self.cancel(&bytes).await;
                    let _ = client.shutdown().await;
                    return Ok(Established::Done);
                }
                Packet::DirectTls => {
                    if self.ssl_done || self.gss_done || client.is_tls() {
                        return Err(refuse(&mut client, Refusal::DuplicateNegotiation).await);
                    }
                    self.ssl_done = true;
                    if let Some(acceptor) = self.ctx.tls.clone() {
                        let ClientStream::Plain(tcp) = client else {
                            return Err(SessionError::DirectTlsRefused("already TLS".into()));
                        };
                        let prefix = std::mem::take(&mut self.buf);
                        client = self.accept_tls(acceptor, Rewind::new(prefix, tcp)).await?;
                        continue;
                    }
                    // Passthrough: the node speaks TLS with the client.
                    let conn = match self.connect().await {
                        Ok(c) => c,
                        // A TLS ClientHello cannot be answered in plaintext.
                        Err(r) => return Err(SessionError::DirectTlsRefused(format!("{r:?}"))),
                    };
                    let pipelined = std::mem::take(&mut self.buf);
                    return Ok(Established::Relay(RelayStart {
                        client,
                        conn,
                        plaintext: false,
                        pipelined,
                    }));
                }
                Packet::Ssl | Packet::Gss => {
                    let is_ssl = matches!(packet, Packet::Ssl);
                    let repeated = if is_ssl { self.ssl_done } else { self.gss_done };
                    if repeated || client.is_tls() {
                        return Err(refuse(&mut client, Refusal::DuplicateNegotiation).await);
                    }
                    if is_ssl {
                        self.ssl_done = true;
                    } else {
                        self.gss_done = true;
                    }
                    if self.buf.len() > len {
                        return Err(refuse(&mut client, Refusal::UnencryptedAfterRequest).await);
                    }
                    let request: Vec<u8> = self.buf.drain(..len).collect();
                    if let Some(acceptor) = self.ctx.tls.clone() {
                        if !is_ssl {
                            // GSS encryption cannot be terminated here.
                            client
                                .write_all(b"N")
                                .await
                                .map_err(SessionError::ClientIo)?;
                            continue;
                        }
                        client
                            .write_all(b"S")
                            .await
                            .map_err(SessionError::ClientIo)?;
                        let ClientStream::Plain(tcp) = client else {
                            return Err(SessionError::DirectTlsRefused("already TLS".into()));
                        };
                        client = self
                            .accept_tls(acceptor, Rewind::new(Vec::new(), tcp))
                            .await?;
                        continue;
                    }
                    if self.pending_refusal.is_none() && self.conn.is_none() {
                        match self.connect().await {
                            Ok(c) => self.conn = Some(c),
                            Err(r) => self.pending_refusal = Some(r),
                        }
                    }
                    let Some(conn) = self.conn.as_mut() else {
                        // Refuse after the StartupMessage, in plaintext.
                        client
                            .write_all(b"N")
                            .await
                            .map_err(SessionError::ClientIo)?;
                        continue;
                    };
                    let answer = forward_request(
                        &mut conn.server,
                        &request,
                        self.ctx.settings.handshake_timeout,
                    )
                    .await?;
                    client
                        .write_all(&[answer])
                        .await
                        .map_err(SessionError::ClientIo)?;
                    if answer == b'N' {
                        continue;
                    }
                    // 'S' / 'G': encrypted from here on; anything else (an
                    // ErrorResponse from an old server) is relayed as is.
                    let Some(conn) = self.conn.take() else {
                        return Err(SessionError::ClientClosed);
                    };
                    return Ok(Established::Relay(RelayStart {
                        client,
                        conn,
                        plaintext: false,
                        pipelined: Vec::new(),
                    }));
                }
                Packet::Startup { user, database } => {
                    let span = tracing::Span::current();
                    span.record("user", user.as_str());
                    span.record("database", database.as_str());
                    if let Some(r) = self.pending_refusal.take() {
                        return Err(refuse(&mut client, r).await);
                    }
                    if self.ctx.shared.draining.is_cancelled() && self.conn.is_none() {
                        return Err(refuse(&mut client, Refusal::Shutdown).await);
                    }
                    let mut conn = match self.conn.take() {
                        Some(c) => c,
                        None => match self.connect().await {
                            Ok(c) => c,
                            Err(r) => return Err(refuse(&mut client, r).await),
                        },
                    };
                    if let Some((mode, connector)) = &self.ctx.backend_tls {
                        conn = match self.start_backend_tls(conn, *mode, connector).await {
                            Ok(c) => c,
                            Err(r) => return Err(refuse(&mut client, r).await),
                        };
                    }
                    conn.server
                        .write_all(&self.buf[..len])
                        .await
                        .map_err(SessionError::ServerIo)?;
                    let pipelined = self.buf.split_off(len);
                    return Ok(Established::Relay(RelayStart {
                        client,
                        conn,
                        plaintext: true,
                        pipelined,
                    }));
                }
            }
        }
    }

    /// Read until one startup-phase packet is complete.
    async fn read_packet(
        &mut self,
        client: &mut ClientStream,
    ) -> Result<(Packet, usize), SessionError> {
        let timeout = self.ctx.settings.handshake_timeout;
        let deadline = Instant::now() + timeout;
        loop {
            match startup::parse(&self.buf) {
                Ok(Some(p)) => {
                    let packet = match p.packet {
                        StartupPacket::SslRequest => Packet::Ssl,
                        StartupPacket::GssEncRequest => Packet::Gss,
                        StartupPacket::Cancel(_) => Packet::Cancel,
                        StartupPacket::DirectTls => Packet::DirectTls,
                        StartupPacket::Startup(m) => Packet::Startup {
                            user: m.user().unwrap_or_default().into_owned(),
                            database: m.database().unwrap_or_default().into_owned(),
                        },
                    };
                    return Ok((packet, p.len));
                }
                Ok(None) => {}
                Err(e) => return Err(SessionError::Refused(Refusal::Startup(e))),
            }
            let mut chunk = [0u8; 2048];
            let n = match tokio::time::timeout_at(deadline, client.read(&mut chunk)).await {
                Err(_) => return Err(SessionError::HandshakeTimeout(timeout)),
                Ok(Err(e)) => return Err(SessionError::ClientIo(e)),
                Ok(Ok(0)) => return Err(SessionError::ClientClosed),
                Ok(Ok(n)) => n,
            };
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    async fn accept_tls(
        &self,
        acceptor: tokio_rustls::TlsAcceptor,
        stream: Rewind<TcpStream>,
    ) -> Result<ClientStream, SessionError> {
        let timeout = self.ctx.settings.handshake_timeout;
        match tokio::time::timeout(timeout, acceptor.accept(stream)).await {
            Ok(Ok(tls)) => Ok(ClientStream::Tls(Box::new(tls))),
            Ok(Err(e)) => Err(SessionError::Tls(e)),
            Err(_) => Err(SessionError::HandshakeTimeout(timeout)),
        }
    }

    /// Open TLS on `conn` (a terminating listener's `backend_tls`): an
    /// SSLRequest, then the handshake if the node answers `S`. A node that
    /// answers `N` keeps the session in plaintext under `prefer` and
    /// refuses it under `require`.
    async fn start_backend_tls(
        &self,
        conn: Connected,
        mode: BackendTls,
        connector: &tokio_rustls::TlsConnector,
    ) -> Result<Connected, Refusal> {
        let Connected {
            backend,
            server,
            registration,
        } = conn;
        let BackendStream::Plain(mut tcp) = server else {
            return Ok(Connected {
                backend,
                server,
                registration,
            });
        };
        let unreachable = |error: String| Refusal::BackendUnreachable {
            node: backend.to_string(),
            error,
        };
        let timeout = self.ctx.settings.handshake_timeout;
        let answer = forward_request(&mut tcp, &SSL_REQUEST, timeout)
            .await
            .map_err(|e| unreachable(format!("TLS: {e}")))?;
        let server =
            match (answer, mode) {
                (b'S', _) => {
                    let name = match tcp.peer_addr() {
                        Ok(a) => rustls::pki_types::ServerName::IpAddress(a.ip().into()),
                        Err(e) => return Err(unreachable(format!("TLS: {e}"))),
                    };
                    match tokio::time::timeout(timeout, connector.connect(name, tcp)).await {
                        Ok(Ok(tls)) => BackendStream::Tls(Box::new(tls)),
                        Ok(Err(e)) => return Err(unreachable(format!("TLS handshake: {e}"))),
                        Err(_) => {
                            return Err(unreachable(format!(
                                "TLS handshake: no answer within {timeout:?}"
                            )))
                        }
                    }
                }
                (b'N', BackendTls::Prefer) => BackendStream::Plain(tcp),
                (b'N', _) => return Err(unreachable(
                    "the node does not accept TLS, and this listener's backend_tls is \"require\""
                        .into(),
                )),
                (other, _) => {
                    return Err(unreachable(format!(
                        "TLS: unexpected answer {other:#04x} to the SSLRequest"
                    )))
                }
            };
        Ok(Connected {
            backend,
            server,
            registration,
        })
    }

    /// Pick a node (holding while there is none, up to `hold_timeout`) and
    /// connect to it, retrying until the hold time ends.
    async fn connect(&mut self) -> Result<Connected, Refusal> {
        let ctx = self.ctx;
        let settings = &ctx.settings;
        let started = Instant::now();
        let deadline = started + settings.hold_timeout;
        let draining = &ctx.shared.draining;
        let target = match ctx.config.role {
            Role::ReadWrite => Target::Primary,
            Role::ReadOnly(_) => Target::Secondary,
        };
        let pick = |s: &Snapshot| -> Result<Arc<Backend>, Unavailable> {
            match &ctx.config.role {
                Role::ReadWrite => s.primary.clone(),
                Role::ReadOnly(policy) => s.pick_read_only(policy, &ctx.round_robin),
            }
        };
        let mut waiting: Option<WaitGuard<'_>> = None;
        let mut last_error: Option<(String, String)> = None;
        let mut backoff = Duration::from_millis(50);
        loop {
            if draining.is_cancelled() {
                return Err(Refusal::Shutdown);
            }
            let backend = match pick(&ctx.group.load()) {
                Ok(b) => b,
                Err(_) => {
                    if waiting.is_none() {
                        waiting = Some(WaitGuard::new(ctx, started));
                        tracing::debug!("no node to route to: holding the connection");
                    }
                    match ctx.group.wait_for(pick, deadline, draining).await {
                        Ok(b) => b,
                        Err(WaitError::Shutdown) => return Err(Refusal::Shutdown),
                        Err(WaitError::Timeout(why)) => {
                            if let Some((node, error)) = last_error {
                                return Err(Refusal::BackendUnreachable { node, error });
                            }
                            return Err(Refusal::NoRoute {
                                group: ctx.group.key.clone(),
                                target,
                                why,
                                waited: started.elapsed(),
                            });
                        }
                    }
                }
            };
            let now = Instant::now();
            let budget = settings
                .connect_timeout
                .min(deadline.saturating_duration_since(now))
                .max(Duration::from_millis(100));
            let result = ctx.shared.connector.connect(&backend, budget).await;
            let elapsed = now.elapsed().as_secs_f64();
            match result {
                Ok(server) => {
                    ctx.metrics.connect_ok.observe(elapsed);
                    let registration = backend.sessions.register(self.id);
                    if registration.signal.fired().is_some() {
                        // The node lost its role while we connected.
                        tracing::debug!(node = %backend, "route changed during connect: retrying");
                        continue;
                    }
                    tracing::Span::current().record("node", backend.name.as_str());
                    return Ok(Connected {
                        backend,
                        server: BackendStream::Plain(server),
                        registration,
                    });
                }
                Err(e) => {
                    ctx.metrics.connect_error.observe(elapsed);
                    tracing::debug!(node = %backend, "failed to connect: {e}");
                    last_error = Some((backend.to_string(), e.to_string()));
                    if Instant::now() >= deadline {
                        let (node, error) = last_error.unwrap_or_default();
                        return Err(Refusal::BackendUnreachable { node, error });
                    }
                    if waiting.is_none() {
                        waiting = Some(WaitGuard::new(ctx, started));
                    }
                    // Retry soon, or as soon as the route changes.
                    let wake = (Instant::now() + backoff).min(deadline);
                    backoff = (backoff * 2).min(Duration::from_secs(1));
                    let version = ctx.group.load().version;
                    let _ = ctx
                        .group
                        .wait_for(
                            |s| {
                                if s.version != version {
                                    Ok(())
                                } else {
                                    Err(Unavailable::NotLoaded)
                                }
                            },
                            wake,
                            draining,
                        )
                        .await;
                }
            }
        }
    }

    /// Deliver a CancelRequest to the node that holds the session.
    async fn cancel(&self, packet: &[u8]) {
        let ctx = self.ctx;
        let (pid, key) = match startup::parse(packet) {
            Ok(Some(startup::Parsed {
                packet: StartupPacket::Cancel(c),
                ..
            })) => (c.pid, c.key.to_vec()),
            _ => return,
        };
        let (targets, outcome) = match ctx.shared.cancels.lookup(pid, &key) {
            Some(addr) => (vec![CancelTarget::Addr(addr)], CancelOutcome::Routed),
            None => {
                let nodes = ctx.shared.routes.nodes_of_formation(&ctx.config.formation);
                let outcome = if nodes.is_empty() {
                    CancelOutcome::Dropped
                } else {
                    CancelOutcome::Broadcast
                };
                (nodes.into_iter().map(CancelTarget::Node).collect(), outcome)
            }
        };
        metrics().cancel(outcome);
        let n = targets.len();
        let delivered = cancel::deliver(packet, targets, ctx.settings.cancel_timeout).await;
        tracing::debug!(
            pid,
            outcome = outcome.as_label(),
            targets = n,
            delivered,
            "cancel request"
        );
    }
}

/// Forward an SSLRequest/GSSENCRequest and return the node's answer byte.
async fn forward_request<S: AsyncRead + AsyncWrite + Unpin>(
    server: &mut S,
    request: &[u8],
    timeout: Duration,
) -> Result<u8, SessionError> {
    server
        .write_all(request)
        .await
        .map_err(SessionError::ServerIo)?;
    let mut answer = [0u8; 1];
    match tokio::time::timeout(timeout, server.read(&mut answer)).await {
        Err(_) => Err(SessionError::ServerTimeout(timeout)),
        Ok(Err(e)) => Err(SessionError::ServerIo(e)),
        Ok(Ok(0)) => Err(SessionError::ServerIo(
            std::io::ErrorKind::UnexpectedEof.into(),
        )),
        Ok(Ok(_)) => Ok(answer[0]),
    }
}

/// Send the refusal, close, and return it as the session's error.
async fn refuse<S: AsyncWrite + Unpin>(client: &mut S, refusal: Refusal) -> SessionError {
    let bytes = refusal.to_error_response();
    let _ = tokio::time::timeout(GOODBYE_TIMEOUT, async {
        client.write_all(&bytes).await?;
        client.shutdown().await
    })
    .await;
    SessionError::Refused(refusal)
}

/// Marks a connection as waiting for a node (gauge + histogram).
struct WaitGuard<'a> {
    ctx: &'a ListenerCtx,
    since: Instant,
}

impl<'a> WaitGuard<'a> {
    fn new(ctx: &'a ListenerCtx, since: Instant) -> Self {
        ctx.metrics.waiting.inc();
        WaitGuard { ctx, since }
    }
}

impl Drop for WaitGuard<'_> {
    fn drop(&mut self) {
        self.ctx.metrics.waiting.dec();
        self.ctx
            .metrics
            .wait_seconds
            .observe(self.since.elapsed().as_secs_f64());
    }
}

/// How a relayed session ended.
#[derive(Debug)]
enum End {
    Closed,
    Fenced(FenceReason),
    Failed(crate::passthrough::RelayError),
}

async fn relay(
    start: RelayStart,
    ctx: &ListenerCtx,
    id: u64,
    started: Instant,
    span: &tracing::Span,
) {
    let RelayStart {
        client,
        conn,
        plaintext,
        pipelined,
    } = start;
    let Connected {
        backend,
        server,
        registration,
    } = conn;
    let server_addr = server.tcp().peer_addr().ok();
    let splice = ctx.settings.relay == RelayMode::Splice && !client.is_tls() && !server.is_tls();
    let mut relay = Relay::new(client, server, ctx.settings.buffer_size, plaintext)
        .with_counters(ctx.metrics.bytes_c2s.clone(), ctx.metrics.bytes_s2c.clone())
        .stop_after_startup(true);
    relay.preload_client_bytes(&pipelined);
    drop(pipelined);
    let signal = registration.signal.clone();
    let mut waker_stored = false;
    let mut cancel_registration = None;
    let end = loop {
        let step = poll_fn(|cx| {
            if let Poll::Ready(reason) = signal.poll_fired(cx, &mut waker_stored) {
                return Poll::Ready(Err(reason));
            }
            relay.poll_relay(cx).map(Ok)
        })
        .await;
        match step {
            Err(reason) => break End::Fenced(reason),
            Ok(Ok(RelayEnd::StartupDone)) => {
                if let (Some(key), Some(addr)) = (relay.take_key(), server_addr) {
                    cancel_registration = Some(ctx.shared.cancels.register(key, addr, id));
                }
                if splice {
                    break match crate::splice::run(&mut relay, &signal, &mut waker_stored).await {
                        Ok(()) => End::Closed,
                        Err(crate::splice::SpliceEnd::Fenced(r)) => End::Fenced(r),
                        Err(crate::splice::SpliceEnd::Failed(e)) => End::Failed(e),
                    };
                }
            }
            Ok(Ok(RelayEnd::Closed)) => break End::Closed,
            Ok(Err(e)) => break End::Failed(e),
        }
    };
    relay.flush_metrics();
    drop(cancel_registration);
    let (up, down) = relay.totals();
    let duration = started.elapsed().as_secs_f64();
    match end {
        End::Closed => {
            tracing::debug!(parent: span, bytes_up = up, bytes_down = down, duration, "session closed")
        }
        End::Failed(e) => {
            tracing::debug!(
                parent: span,
                bytes_up = up,
                bytes_down = down,
                duration,
                "session ended: {e}"
            )
        }
        End::Fenced(reason) => {
            ctx.metrics.fenced(reason);
            let at_boundary = relay.client_at_message_boundary();
            tracing::info!(parent: span, node = %backend, reason = reason.as_label(), at_boundary, "closing session");
            if at_boundary {
                let message = match reason {
                    FenceReason::RoleLost => match ctx.config.role {
                        Role::ReadWrite => format!(
                            "terminating connection because node \"{}\" is no longer the primary",
                            backend.name
                        ),
                        Role::ReadOnly(_) => format!(
                            "terminating connection because node \"{}\" is no longer an eligible secondary",
                            backend.name
                        ),
                    },
                    FenceReason::MonitorLost => {
                        "terminating connection because the pg_auto_failover monitor is unreachable".to_string()
                    }
                    FenceReason::Shutdown => "terminating connection because pg_autoproxy is shutting down".to_string(),
                };
                let bytes = ErrorResponse::fatal(sqlstate::ADMIN_SHUTDOWN, &message)
                    .hint("Reconnect to reach the current primary.")
                    .encode();
                let _ = tokio::time::timeout(
                    GOODBYE_TIMEOUT,
                    write_and_close(&mut relay.client, &bytes),
                )
                .await;
            } else {
                let _ = tokio::time::timeout(GOODBYE_TIMEOUT, relay.client.shutdown()).await;
            }
        }
    }
    drop(registration);
}

async fn write_and_close<S: AsyncRead + AsyncWrite + Unpin>(
    s: &mut S,
    bytes: &[u8],
) -> std::io::Result<()> {
    s.write_all(bytes).await?;
    s.shutdown().await
}
