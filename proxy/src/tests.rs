//! In-process tests of whole sessions: real sockets on 127.0.0.1 port 0,
//! fake nodes that speak just enough Postgres (decoded and encoded with the
//! independent `pgwire` crate), real `tokio-postgres` clients, and routes
//! scripted through [`GroupRoute::apply`](crate::route::GroupRoute::apply)
//! instead of a monitor. Every wait has a deadline.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwap;
use bytes::{BufMut, BytesMut};
use pgaf_fsm::NodeState::{self, *};
use pgwire::messages::data::{DataRow, FieldDescription, RowDescription};
use pgwire::messages::response::{CommandComplete, ReadyForQuery, TransactionStatus};
use pgwire::messages::startup::{Authentication, BackendKeyData, ParameterStatus, SecretKey};
use pgwire::messages::{
    DecodeContext, PgWireBackendMessage, PgWireFrontendMessage, ProtocolVersion,
    SslNegotiationMetaMessage,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio_postgres::error::SqlState;
use tokio_postgres::{NoTls, SimpleQueryMessage};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::cancel::CancelMap;
use crate::config::{Config, Overrides, ReadOnlyPolicy, Role, TlsMode};
use crate::connect::TcpConnector;
use crate::listener::{ListenerCtx, Shared};
use crate::metrics::ListenerMetrics;
use crate::pq::startup::tests::{cancel_bytes, code_packet, startup_bytes};
use crate::pq::startup::{GSSENC_REQUEST_CODE, SSL_REQUEST_CODE};
use crate::route::{GroupKey, GroupRoute, NodeRow, RouteRegistry};

const DEADLINE: Duration = Duration::from_secs(10);

async fn within<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(DEADLINE, f)
        .await
        .expect("deadline exceeded")
}

// ---------------------------------------------------------------------------
// A fake node.

static NEXT_PID: AtomicU32 = AtomicU32::new(1000);

/// CancelRequests a node received: (pid, key).
type Cancels = Arc<Mutex<Vec<(u32, Vec<u8>)>>>;

#[derive(Clone, Default)]
struct NodeLog {
    cancels: Cancels,
    cancelled: Arc<Notify>,
    startups: Arc<AtomicUsize>,
    ssl_requests: Arc<AtomicUsize>,
    /// pid → secret key of sessions handed out.
    keys: Arc<Mutex<HashMap<u32, i32>>>,
}

struct FakeNode {
    name: String,
    addr: SocketAddr,
    log: NodeLog,
    task: JoinHandle<()>,
}

impl Drop for FakeNode {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FakeNode {
    /// A node that answers SSLRequest with `ssl` (`N`, or `S` then echoes
    /// raw bytes as a stand-in for a TLS session).
    async fn start(name: &str, ssl: u8) -> FakeNode {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let log = NodeLog::default();
        let (n, l) = (name.to_string(), log.clone());
        let task = tokio::spawn(async move {
            loop {
                let Ok((s, _)) = listener.accept().await else {
                    return;
                };
                tokio::spawn(serve_node(s, n.clone(), ssl, l.clone()));
            }
        });
        FakeNode {
            name: name.to_string(),
            addr,
            log,
            task,
        }
    }

    fn cancels(&self) -> Vec<(u32, Vec<u8>)> {
        self.log.cancels.lock().unwrap().clone()
    }

    fn row(&self, id: i64, reported: NodeState, goal: NodeState) -> NodeRow {
        let mut r = crate::route::tests::row(id, reported, goal);
        r.name = self.name.clone();
        r.port = self.addr.port();
        r
    }
}

fn encode(msgs: Vec<PgWireBackendMessage>) -> BytesMut {
    let mut out = BytesMut::new();
    for m in msgs {
        m.encode(&mut out).unwrap();
    }
    out
}

async fn serve_node(mut s: TcpStream, name: String, ssl: u8, log: NodeLog) {
    let mut buf = BytesMut::with_capacity(4096);
    let mut ctx = DecodeContext::new(ProtocolVersion::PROTOCOL3_0);
    let mut pid = 0u32;
    loop {
        let msg = match PgWireFrontendMessage::decode(&mut buf, &ctx) {
            Ok(Some(m)) => m,
            Ok(None) => {
                if s.read_buf(&mut buf).await.unwrap_or(0) == 0 {
                    return;
                }
                continue;
            }
            Err(_) => return,
        };
        match msg {
            PgWireFrontendMessage::SslNegotiation(SslNegotiationMetaMessage::PostgresSsl(_)) => {
                log.ssl_requests.fetch_add(1, Ordering::SeqCst);
                s.write_all(&[ssl]).await.unwrap();
                if ssl == b'S' {
                    // Stand-in for TLS: echo everything.
                    let mut b = [0u8; 1024];
                    loop {
                        match s.read(&mut b).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => {
                                if s.write_all(&b[..n]).await.is_err() {
                                    return;
                                }
                            }
                        }
                    }
                }
            }
            PgWireFrontendMessage::SslNegotiation(SslNegotiationMetaMessage::PostgresGss(_)) => {
                s.write_all(b"N").await.unwrap();
            }
            PgWireFrontendMessage::SslNegotiation(SslNegotiationMetaMessage::None) => {
                ctx.awaiting_frontend_ssl = false;
            }
            PgWireFrontendMessage::CancelRequest(c) => {
                log.cancels
                    .lock()
                    .unwrap()
                    .push((c.pid as u32, c.secret_key.to_bytes().to_vec()));
                log.cancelled.notify_waiters();
                return;
            }
            PgWireFrontendMessage::Startup(_) => {
                ctx.awaiting_frontend_ssl = false;
                ctx.awaiting_frontend_startup = false;
                log.startups.fetch_add(1, Ordering::SeqCst);
                pid = NEXT_PID.fetch_add(1, Ordering::SeqCst);
                let key = (pid as i32).wrapping_mul(7919);
                log.keys.lock().unwrap().insert(pid, key);
                let out = encode(vec![
                    PgWireBackendMessage::Authentication(Authentication::Ok),
                    PgWireBackendMessage::ParameterStatus(ParameterStatus::new(
                        "server_version".into(),
                        "15.0".into(),
                    )),
                    PgWireBackendMessage::ParameterStatus(ParameterStatus::new(
                        "client_encoding".into(),
                        "UTF8".into(),
                    )),
                    PgWireBackendMessage::BackendKeyData(BackendKeyData::new(
                        pid as i32,
                        SecretKey::I32(key),
                    )),
                    PgWireBackendMessage::ReadyForQuery(ReadyForQuery::new(
                        TransactionStatus::Idle,
                    )),
                ]);
                s.write_all(&out).await.unwrap();
            }
            PgWireFrontendMessage::Query(q) => match q.query.as_str() {
                "SELECT node" => {
                    let mut data = BytesMut::new();
                    data.put_i32(name.len() as i32);
                    data.put_slice(name.as_bytes());
                    let out = encode(vec![
                        PgWireBackendMessage::RowDescription(RowDescription::new(vec![
                            FieldDescription::new("node".into(), 0, 0, 25, -1, -1, 0),
                        ])),
                        PgWireBackendMessage::DataRow(DataRow::new(data, 1)),
                        PgWireBackendMessage::CommandComplete(CommandComplete::new(
                            "SELECT 1".into(),
                        )),
                        PgWireBackendMessage::ReadyForQuery(ReadyForQuery::new(
                            TransactionStatus::Idle,
                        )),
                    ]);
                    if s.write_all(&out).await.is_err() {
                        return;
                    }
                }
                "BIG" => {
                    // 2000 rows of 1000 bytes: a bulk transfer.
                    let mut msgs = vec![PgWireBackendMessage::RowDescription(RowDescription::new(
                        vec![FieldDescription::new("v".into(), 0, 0, 25, -1, -1, 0)],
                    ))];
                    for i in 0..2000u32 {
                        let mut data = BytesMut::new();
                        data.put_i32(1000);
                        data.put_slice(&[b'a' + (i % 26) as u8; 1000]);
                        msgs.push(PgWireBackendMessage::DataRow(DataRow::new(data, 1)));
                    }
                    msgs.push(PgWireBackendMessage::CommandComplete(CommandComplete::new(
                        "SELECT 2000".into(),
                    )));
                    msgs.push(PgWireBackendMessage::ReadyForQuery(ReadyForQuery::new(
                        TransactionStatus::Idle,
                    )));
                    if s.write_all(&encode(msgs)).await.is_err() {
                        return;
                    }
                }
                "SLEEP" => {
                    // Wait for a cancel naming this session.
                    let waited = tokio::time::timeout(DEADLINE, async {
                        loop {
                            let notified = log.cancelled.notified();
                            if log.cancels.lock().unwrap().iter().any(|(p, _)| *p == pid) {
                                return;
                            }
                            notified.await;
                        }
                    })
                    .await;
                    let mut out = crate::pq::error_response::ErrorResponse::fatal(
                        "57014",
                        "canceling statement due to user request",
                    )
                    .encode();
                    // ERROR, not FATAL.
                    out = String::from_utf8(out)
                        .unwrap()
                        .replace("FATAL", "ERROR")
                        .into_bytes();
                    if waited.is_err() {
                        return;
                    }
                    let mut tail = BytesMut::new();
                    PgWireBackendMessage::ReadyForQuery(ReadyForQuery::new(
                        TransactionStatus::Idle,
                    ))
                    .encode(&mut tail)
                    .unwrap();
                    out.extend_from_slice(&tail);
                    if s.write_all(&out).await.is_err() {
                        return;
                    }
                }
                "PARTIAL" => {
                    // Half a DataRow, then nothing.
                    let _ = s.write_all(&[b'D', 0, 0, 0, 20, 0, 1]).await;
                    let mut b = [0u8; 64];
                    while s.read(&mut b).await.unwrap_or(0) > 0 {}
                    return;
                }
                _ => {
                    let out = encode(vec![
                        PgWireBackendMessage::CommandComplete(CommandComplete::new(
                            "SELECT 0".into(),
                        )),
                        PgWireBackendMessage::ReadyForQuery(ReadyForQuery::new(
                            TransactionStatus::Idle,
                        )),
                    ]);
                    if s.write_all(&out).await.is_err() {
                        return;
                    }
                }
            },
            PgWireFrontendMessage::Terminate(_) => return,
            _ => {}
        }
    }
}

// ---------------------------------------------------------------------------
// A proxy listener without a monitor.

struct TestProxy {
    addr: SocketAddr,
    group: Arc<GroupRoute>,
    shared: Arc<Shared>,
    stop: CancellationToken,
    tracker: TaskTracker,
    task: JoinHandle<()>,
}

impl Drop for TestProxy {
    fn drop(&mut self) {
        self.stop.cancel();
        self.task.abort();
    }
}

fn settings(hold: Duration) -> crate::config::ProxySettings {
    let text = r#"
        [monitor]
        uri = "postgres://nobody@127.0.0.1:1/none"
        [proxy]
        handshake_timeout = "2s"
        connect_timeout = "2s"
        [[listener]]
        name = "t"
        listen = "127.0.0.1:0"
    "#;
    let mut c = Config::from_toml(text, &Overrides::default()).unwrap();
    c.proxy.hold_timeout = hold;
    c.proxy
}

async fn start_proxy(role: Role, hold: Duration) -> TestProxy {
    start_proxy_with(role, settings(hold), TlsMode::Passthrough).await
}

async fn start_proxy_with(
    role: Role,
    settings: crate::config::ProxySettings,
    tls: TlsMode,
) -> TestProxy {
    let routes = Arc::new(RouteRegistry::default());
    let shared = Arc::new(Shared {
        routes: routes.clone(),
        cancels: Arc::new(CancelMap::default()),
        connector: Arc::new(TcpConnector {
            keepalive: settings.keepalive,
        }),
        draining: CancellationToken::new(),
        connections: AtomicUsize::new(0),
    });
    // A distinct formation per proxy keeps metrics and broadcasts apart.
    static N: AtomicU32 = AtomicU32::new(0);
    let key = GroupKey {
        formation: format!("f{}", N.fetch_add(1, Ordering::SeqCst)),
        group: 0,
    };
    let group = routes.get_or_create(&key);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tls_acceptor, backend_tls) = crate::tls::listener_tls(&tls).unwrap();
    let name = format!("t-{}", key.formation);
    let ctx = ListenerCtx {
        config: crate::config::ListenerConfig {
            name: name.clone(),
            listen: addr,
            formation: key.formation.clone(),
            group: 0,
            role,
            tls,
        },
        settings,
        group: group.clone(),
        tls: tls_acceptor,
        backend_tls,
        metrics: ListenerMetrics::new(&name),
        shared: shared.clone(),
        round_robin: AtomicUsize::new(0),
    };
    let stop = CancellationToken::new();
    let tracker = TaskTracker::new();
    let task = tokio::spawn(crate::listener::serve(
        listener,
        Arc::new(ArcSwap::from_pointee(ctx)),
        stop.clone(),
        tracker.clone(),
    ));
    TestProxy {
        addr,
        group,
        shared,
        stop,
        tracker,
        task,
    }
}

fn conninfo(addr: SocketAddr) -> String {
    format!(
        "host={} port={} user=alice dbname=app connect_timeout=10",
        addr.ip(),
        addr.port()
    )
}

/// Connect with tokio-postgres; returns the client and the connection task.
async fn pg_connect(
    addr: SocketAddr,
) -> Result<
    (
        tokio_postgres::Client,
        JoinHandle<Result<(), tokio_postgres::Error>>,
    ),
    tokio_postgres::Error,
> {
    let (client, conn) = within(tokio_postgres::connect(&conninfo(addr), NoTls)).await?;
    Ok((client, tokio::spawn(conn)))
}

async fn which_node(client: &tokio_postgres::Client) -> String {
    let rows = within(client.simple_query("SELECT node")).await.unwrap();
    rows.iter()
        .find_map(|m| match m {
            SimpleQueryMessage::Row(r) => r.get(0).map(str::to_string),
            _ => None,
        })
        .unwrap()
}

/// Read an ErrorResponse (or EOF) from a raw socket: (SQLSTATE, message).
async fn read_error(s: &mut TcpStream) -> Option<(String, String)> {
    let mut buf = Vec::new();
    within(s.read_to_end(&mut buf)).await.ok()?;
    let pos = buf.iter().position(|&b| b == b'E')?;
    let mut b = BytesMut::from(&buf[pos..]);
    let ctx = DecodeContext::new(ProtocolVersion::PROTOCOL3_0);
    let e = match PgWireBackendMessage::decode(&mut b, &ctx).ok()?? {
        PgWireBackendMessage::ErrorResponse(e) => e,
        _ => return None,
    };
    let field = |t: u8| {
        e.fields
            .iter()
            .find(|(k, _)| *k == t)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    Some((field(b'C'), field(b'M')))
}

// ---------------------------------------------------------------------------
// The tests.

#[tokio::test]
async fn relays_a_session_to_the_primary() {
    let a = FakeNode::start("node_a", b'N').await;
    let b = FakeNode::start("node_b", b'N').await;
    let p = start_proxy(Role::ReadWrite, Duration::from_secs(5)).await;
    p.group.apply(vec![
        a.row(1, Primary, Primary),
        b.row(2, Secondary, Secondary),
    ]);
    let (client, _conn) = pg_connect(p.addr).await.unwrap();
    assert_eq!(which_node(&client).await, "node_a");
    assert_eq!(which_node(&client).await, "node_a");
    drop(client);
    // The session ends and the proxy forgets it.
    within(async {
        while p.group.session_counts().0 > 0 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
}

#[tokio::test]
async fn splice_relay_moves_bulk_data_and_is_fenced() {
    let a = FakeNode::start("node_a", b'N').await;
    let mut st = settings(Duration::from_secs(5));
    st.relay = crate::config::RelayMode::Splice;
    let p = start_proxy_with(Role::ReadWrite, st, TlsMode::Passthrough).await;
    p.group.apply(vec![a.row(1, Primary, Primary)]);
    let (client, conn) = pg_connect(p.addr).await.unwrap();
    assert_eq!(which_node(&client).await, "node_a");
    for _ in 0..3 {
        let rows = within(client.simple_query("BIG")).await.unwrap();
        let n = rows
            .iter()
            .filter(|m| matches!(m, SimpleQueryMessage::Row(_)))
            .count();
        assert_eq!(n, 2000);
    }
    // Splice sessions are fenced by closing (the proxy does not see the
    // backend's bytes any more).
    p.group.apply(vec![a.row(1, Primary, Draining)]);
    let err = within(conn).await.unwrap();
    assert!(err.is_err() || client.is_closed());
}

#[tokio::test]
async fn bulk_results_survive_back_pressure() {
    let a = FakeNode::start("node_a", b'N').await;
    let p = start_proxy(Role::ReadWrite, Duration::from_secs(5)).await;
    p.group.apply(vec![a.row(1, Primary, Primary)]);
    let (client, _conn) = pg_connect(p.addr).await.unwrap();
    for _ in 0..3 {
        let rows = within(client.simple_query("BIG")).await.unwrap();
        let n = rows
            .iter()
            .filter(|m| matches!(m, SimpleQueryMessage::Row(_)))
            .count();
        assert_eq!(n, 2000);
    }
    assert_eq!(which_node(&client).await, "node_a");
}

async fn ssl_passthrough(relay: crate::config::RelayMode) {
    let a = FakeNode::start("node_a", b'S').await;
    let mut st = settings(Duration::from_secs(5));
    st.relay = relay;
    let p = start_proxy_with(Role::ReadWrite, st, TlsMode::Passthrough).await;
    p.group.apply(vec![a.row(1, Primary, Primary)]);
    let mut s = TcpStream::connect(p.addr).await.unwrap();
    s.write_all(&code_packet(SSL_REQUEST_CODE)).await.unwrap();
    let mut answer = [0u8; 1];
    within(s.read_exact(&mut answer)).await.unwrap();
    assert_eq!(&answer, b"S");
    // From here the bytes are opaque (the fake node echoes them).
    for round in 0..3 {
        let hello = format!("\x16\x03\x01 pretend this is TLS record {round}").repeat(500);
        s.write_all(hello.as_bytes()).await.unwrap();
        let mut back = vec![0u8; hello.len()];
        within(s.read_exact(&mut back)).await.unwrap();
        assert_eq!(back, hello.as_bytes());
    }
}

#[tokio::test]
async fn ssl_request_is_passed_through_to_the_node() {
    ssl_passthrough(crate::config::RelayMode::Copy).await;
}

#[tokio::test]
async fn ssl_passthrough_sessions_can_use_splice() {
    ssl_passthrough(crate::config::RelayMode::Splice).await;
}

#[tokio::test]
async fn refused_encryption_continues_in_plaintext() {
    let a = FakeNode::start("node_a", b'N').await;
    let p = start_proxy(Role::ReadWrite, Duration::from_secs(5)).await;
    p.group.apply(vec![a.row(1, Primary, Primary)]);
    let mut s = TcpStream::connect(p.addr).await.unwrap();
    // libpq order: GSSENC, then SSL, then the StartupMessage.
    for code in [GSSENC_REQUEST_CODE, SSL_REQUEST_CODE] {
        s.write_all(&code_packet(code)).await.unwrap();
        let mut answer = [0u8; 1];
        within(s.read_exact(&mut answer)).await.unwrap();
        assert_eq!(&answer, b"N");
    }
    s.write_all(&startup_bytes(0, &[("user", "u")]))
        .await
        .unwrap();
    let mut first = [0u8; 1];
    within(s.read_exact(&mut first)).await.unwrap();
    assert_eq!(&first, b"R");
    assert_eq!(a.log.startups.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn holds_a_client_until_a_primary_appears() {
    let a = FakeNode::start("node_a", b'N').await;
    let b = FakeNode::start("node_b", b'N').await;
    let p = start_proxy(Role::ReadWrite, Duration::from_secs(8)).await;
    // Failover in progress: no primary.
    p.group.apply(vec![
        a.row(1, Primary, Draining),
        b.row(2, Secondary, PreparePromotion),
    ]);
    let addr = p.addr;
    let client = tokio::spawn(async move { pg_connect(addr).await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!client.is_finished(), "the client must be held");
    p.group.apply(vec![
        a.row(1, Demoted, Demoted),
        b.row(2, WaitPrimary, WaitPrimary),
    ]);
    let (client, _conn) = within(client).await.unwrap().unwrap();
    assert_eq!(which_node(&client).await, "node_b");
    assert_eq!(
        a.log.startups.load(Ordering::SeqCst),
        0,
        "nothing reached the old primary"
    );
}

#[tokio::test]
async fn refuses_with_57p03_after_the_hold_time() {
    let a = FakeNode::start("node_a", b'N').await;
    let p = start_proxy(Role::ReadWrite, Duration::from_millis(300)).await;
    p.group.apply(vec![a.row(1, Primary, Draining)]);
    let started = std::time::Instant::now();
    let e = pg_connect(p.addr).await.err().unwrap();
    assert!(started.elapsed() >= Duration::from_millis(300));
    let db = e.as_db_error().unwrap();
    assert_eq!(db.code(), &SqlState::CANNOT_CONNECT_NOW);
    assert!(
        db.message().contains("no primary is available"),
        "{}",
        db.message()
    );
    assert!(
        db.detail()
            .unwrap_or("")
            .contains("\"node_a\" is being demoted"),
        "{:?}",
        db.detail()
    );
    // Before any monitor data the reason says so.
    let q = start_proxy(Role::ReadWrite, Duration::from_millis(100)).await;
    let e = pg_connect(q.addr).await.err().unwrap();
    assert!(e
        .as_db_error()
        .unwrap()
        .detail()
        .unwrap_or("")
        .contains("not read the monitor"));
}

#[tokio::test]
async fn ssl_client_is_refused_in_plaintext_after_n() {
    let p = start_proxy(Role::ReadWrite, Duration::from_millis(100)).await;
    let mut s = TcpStream::connect(p.addr).await.unwrap();
    s.write_all(&code_packet(SSL_REQUEST_CODE)).await.unwrap();
    let mut answer = [0u8; 1];
    within(s.read_exact(&mut answer)).await.unwrap();
    assert_eq!(&answer, b"N");
    s.write_all(&startup_bytes(0, &[("user", "u")]))
        .await
        .unwrap();
    let (code, _) = read_error(&mut s).await.unwrap();
    assert_eq!(code, "57P03");
}

#[tokio::test]
async fn fencing_closes_idle_sessions_with_57p01() {
    let a = FakeNode::start("node_a", b'N').await;
    let b = FakeNode::start("node_b", b'N').await;
    let p = start_proxy(Role::ReadWrite, Duration::from_secs(5)).await;
    p.group.apply(vec![
        a.row(1, Primary, Primary),
        b.row(2, Secondary, Secondary),
    ]);
    let (client, conn) = pg_connect(p.addr).await.unwrap();
    assert_eq!(which_node(&client).await, "node_a");
    // Same primary, new report: nothing happens.
    let c = p.group.apply(vec![
        a.row(1, Primary, Primary),
        b.row(2, Secondary, Secondary),
    ]);
    assert_eq!(c.fenced_sessions, 0);
    // Failover starts.
    let c = p.group.apply(vec![
        a.row(1, Primary, Draining),
        b.row(2, Secondary, PreparePromotion),
    ]);
    assert_eq!(c.fenced_sessions, 1);
    let err = within(conn).await.unwrap().unwrap_err();
    let db = err.as_db_error().unwrap();
    assert_eq!(db.code(), &SqlState::ADMIN_SHUTDOWN);
    assert!(
        db.message().contains("\"node_a\" is no longer the primary"),
        "{}",
        db.message()
    );
    assert!(client.is_closed());
}

#[tokio::test]
async fn fencing_mid_response_just_closes() {
    let a = FakeNode::start("node_a", b'N').await;
    let p = start_proxy(Role::ReadWrite, Duration::from_secs(5)).await;
    p.group.apply(vec![a.row(1, Primary, Primary)]);
    let mut s = TcpStream::connect(p.addr).await.unwrap();
    s.write_all(&startup_bytes(0, &[("user", "u")]))
        .await
        .unwrap();
    // Read the login response up to ReadyForQuery.
    let mut got = Vec::new();
    within(async {
        while !got.ends_with(&[b'Z', 0, 0, 0, 5, b'I']) {
            let mut b = [0u8; 256];
            let n = s.read(&mut b).await.unwrap();
            assert!(n > 0);
            got.extend_from_slice(&b[..n]);
        }
    })
    .await;
    let mut q = vec![b'Q'];
    q.extend_from_slice(&(4 + 8u32).to_be_bytes());
    q.extend_from_slice(b"PARTIAL\0");
    s.write_all(&q).await.unwrap();
    let mut partial = [0u8; 7];
    within(s.read_exact(&mut partial)).await.unwrap();
    p.group.apply(vec![a.row(1, Primary, Draining)]);
    let mut rest = Vec::new();
    within(s.read_to_end(&mut rest)).await.unwrap();
    assert!(
        rest.is_empty(),
        "no ErrorResponse in the middle of a message: {rest:?}"
    );
}

#[tokio::test]
async fn new_connections_never_reach_a_fenced_node() {
    let a = FakeNode::start("node_a", b'N').await;
    let b = FakeNode::start("node_b", b'N').await;
    let p = start_proxy(Role::ReadWrite, Duration::from_secs(5)).await;
    p.group.apply(vec![
        a.row(1, Primary, Primary),
        b.row(2, Secondary, Secondary),
    ]);
    p.group.apply(vec![
        a.row(1, Secondary, Secondary),
        b.row(2, Primary, Primary),
    ]);
    for _ in 0..3 {
        let (client, _conn) = pg_connect(p.addr).await.unwrap();
        assert_eq!(which_node(&client).await, "node_b");
    }
    assert_eq!(a.log.startups.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn cancel_reaches_the_node_that_holds_the_session() {
    let a = FakeNode::start("node_a", b'N').await;
    let b = FakeNode::start("node_b", b'N').await;
    let p = start_proxy(Role::ReadWrite, Duration::from_secs(5)).await;
    p.group.apply(vec![
        a.row(1, Primary, Primary),
        b.row(2, Secondary, Secondary),
    ]);
    let (client, _conn) = pg_connect(p.addr).await.unwrap();
    let token = client.cancel_token();
    let sleeper = tokio::spawn(async move { client.simple_query("SLEEP").await.map(|_| ()) });
    tokio::time::sleep(Duration::from_millis(100)).await;
    within(token.cancel_query(NoTls)).await.unwrap();
    let err = within(sleeper).await.unwrap().unwrap_err();
    assert_eq!(err.code(), Some(&SqlState::QUERY_CANCELED));
    assert_eq!(a.cancels().len(), 1, "routed to the session's node");
    assert!(b.cancels().is_empty(), "not broadcast: the key was known");
}

#[tokio::test]
async fn unknown_cancel_keys_are_broadcast() {
    let a = FakeNode::start("node_a", b'N').await;
    let b = FakeNode::start("node_b", b'N').await;
    let p = start_proxy(Role::ReadWrite, Duration::from_secs(5)).await;
    p.group.apply(vec![
        a.row(1, Primary, Primary),
        b.row(2, Secondary, Secondary),
    ]);
    let mut s = TcpStream::connect(p.addr).await.unwrap();
    s.write_all(&cancel_bytes(4242, &[1, 2, 3, 4]))
        .await
        .unwrap();
    // The proxy closes once the nodes have handled it.
    let mut rest = Vec::new();
    within(s.read_to_end(&mut rest)).await.unwrap();
    assert!(rest.is_empty());
    assert_eq!(a.cancels(), vec![(4242, vec![1, 2, 3, 4])]);
    assert_eq!(b.cancels(), vec![(4242, vec![1, 2, 3, 4])]);
}

#[tokio::test]
async fn read_only_listener_round_robins_healthy_secondaries() {
    let a = FakeNode::start("node_a", b'N').await;
    let b = FakeNode::start("node_b", b'N').await;
    let c = FakeNode::start("node_c", b'N').await;
    let policy = ReadOnlyPolicy {
        fallback_to_primary: false,
        max_lag_bytes: None,
        lag_tolerance_bytes: 16 << 20,
    };
    let p = start_proxy(Role::ReadOnly(policy), Duration::from_millis(200)).await;
    let mut bad = c.row(3, Secondary, Secondary);
    bad.health = pgaf_fsm::Health::Bad;
    p.group.apply(vec![
        a.row(1, Primary, Primary),
        b.row(2, Secondary, Secondary),
        bad.clone(),
    ]);
    for _ in 0..2 {
        let (client, _conn) = pg_connect(p.addr).await.unwrap();
        assert_eq!(which_node(&client).await, "node_b");
    }
    // c recovers: b and c share the connections.
    p.group.apply(vec![
        a.row(1, Primary, Primary),
        b.row(2, Secondary, Secondary),
        c.row(3, Secondary, Secondary),
    ]);
    let mut seen = Vec::new();
    for _ in 0..4 {
        let (client, _conn) = pg_connect(p.addr).await.unwrap();
        seen.push(which_node(&client).await);
    }
    seen.sort();
    assert_eq!(seen, vec!["node_b", "node_b", "node_c", "node_c"]);
    // No secondary: refused with the reason (no fallback configured).
    p.group.apply(vec![a.row(1, Primary, Primary)]);
    let e = pg_connect(p.addr).await.err().unwrap();
    let db = e.as_db_error().unwrap();
    assert_eq!(db.code(), &SqlState::CANNOT_CONNECT_NOW);
    assert!(
        db.message().contains("no read-only node"),
        "{}",
        db.message()
    );
}

#[tokio::test]
async fn read_only_listener_can_fall_back_to_the_primary() {
    let a = FakeNode::start("node_a", b'N').await;
    let policy = ReadOnlyPolicy {
        fallback_to_primary: true,
        max_lag_bytes: None,
        lag_tolerance_bytes: 0,
    };
    let p = start_proxy(Role::ReadOnly(policy), Duration::from_secs(5)).await;
    p.group.apply(vec![a.row(1, Single, Single)]);
    let (client, _conn) = pg_connect(p.addr).await.unwrap();
    assert_eq!(which_node(&client).await, "node_a");
}

#[tokio::test]
async fn malformed_startup_packets_get_an_error_or_a_close() {
    let a = FakeNode::start("node_a", b'N').await;
    let p = start_proxy(Role::ReadWrite, Duration::from_secs(5)).await;
    p.group.apply(vec![a.row(1, Primary, Primary)]);
    let expect = |bytes: Vec<u8>, code: &'static str| {
        let addr = p.addr;
        async move {
            let mut s = TcpStream::connect(addr).await.unwrap();
            s.write_all(&bytes).await.unwrap();
            let got = read_error(&mut s).await;
            assert_eq!(
                got.as_ref().map(|(c, _)| c.as_str()),
                Some(code),
                "{bytes:?}: {got:?}"
            );
        }
    };
    // Oversized, undersized, an HTTP request, protocol 2, no user, bad layout.
    expect(10_001u32.to_be_bytes().to_vec(), "08P01").await;
    expect(vec![0, 0, 0, 4, 0, 0, 0, 0], "08P01").await;
    expect(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(), "08P01").await;
    let mut v2 = startup_bytes(0, &[("user", "u")]);
    v2[4..8].copy_from_slice(&0x0002_0000u32.to_be_bytes());
    expect(v2, "0A000").await;
    expect(startup_bytes(0, &[("database", "d")]), "28000").await;
    let mut layout = startup_bytes(0, &[("user", "u")]);
    let last = layout.len() - 1;
    layout[last] = b'x';
    expect(layout, "08P01").await;
    // Unencrypted bytes pipelined behind an SSLRequest.
    let mut ssl = code_packet(SSL_REQUEST_CODE);
    ssl.extend_from_slice(&startup_bytes(0, &[("user", "u")]));
    expect(ssl, "08P01").await;
    // Nothing reached the node.
    assert_eq!(a.log.startups.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn truncated_and_silent_clients_are_closed_not_held() {
    let mut s = settings(Duration::from_secs(5));
    s.handshake_timeout = Duration::from_millis(200);
    let p = start_proxy_with(Role::ReadWrite, s, TlsMode::Passthrough).await;
    // Three bytes, then silence: closed after the handshake timeout.
    let mut c = TcpStream::connect(p.addr).await.unwrap();
    c.write_all(&[0, 0, 0]).await.unwrap();
    let mut rest = Vec::new();
    within(c.read_to_end(&mut rest)).await.unwrap();
    assert!(rest.is_empty());
    // Half a startup packet, then the client closes its side.
    let mut c = TcpStream::connect(p.addr).await.unwrap();
    let startup = startup_bytes(0, &[("user", "u")]);
    c.write_all(&startup[..startup.len() / 2]).await.unwrap();
    c.shutdown().await.unwrap();
    within(c.read_to_end(&mut rest)).await.unwrap();
    // The proxy keeps serving.
    within(async {
        while p.shared.connections.load(Ordering::SeqCst) > 0 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
}

/// A proxy terminating TLS with the test certificate, `backend_tls` as
/// given, in front of node `a`; returns a connection string that checks
/// the proxy's certificate (`verify-full`).
async fn terminating_proxy(
    a: &FakeNode,
    backend: crate::config::BackendTls,
) -> (TestProxy, String) {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data");
    let tls = TlsMode::Terminate {
        cert: dir.join("test-cert.pem"),
        key: dir.join("test-key.pem"),
        backend,
    };
    let p = start_proxy_with(Role::ReadWrite, settings(Duration::from_secs(5)), tls).await;
    p.group.apply(vec![a.row(1, Primary, Primary)]);
    let info = format!(
        "{} sslmode=verify-full sslrootcert='{}'",
        conninfo(p.addr),
        dir.join("test-ca.pem").display()
    );
    (p, info)
}

async fn tls_connect(info: &str) -> Result<tokio_postgres::Client, tokio_postgres::Error> {
    let target = pgaf_pgconn::parse(info).unwrap();
    let (client, conn) = within(target.config.connect(target.tls().unwrap())).await?;
    tokio::spawn(conn);
    Ok(client)
}

#[tokio::test]
async fn tls_termination_with_rustls() {
    use crate::config::BackendTls;
    // backend_tls = "disable": the node never sees an SSLRequest.
    let a = FakeNode::start("node_a", b'S').await;
    let (_p, info) = terminating_proxy(&a, BackendTls::Disable).await;
    let client = tls_connect(&info).await.unwrap();
    assert_eq!(which_node(&client).await, "node_a");
    assert_eq!(a.log.startups.load(Ordering::SeqCst), 1);
    assert_eq!(a.log.ssl_requests.load(Ordering::SeqCst), 0);

    // "prefer" (the default): the proxy asks the node for TLS; a node
    // without it gets the session in plaintext.
    let b = FakeNode::start("node_b", b'N').await;
    let (_p, info) = terminating_proxy(&b, BackendTls::Prefer).await;
    let client = tls_connect(&info).await.unwrap();
    assert_eq!(which_node(&client).await, "node_b");
    assert_eq!(b.log.ssl_requests.load(Ordering::SeqCst), 1);

    // "require": a node without TLS is refused, and the client told why.
    let c = FakeNode::start("node_c", b'N').await;
    let (_p, info) = terminating_proxy(&c, BackendTls::Require).await;
    let e = tls_connect(&info).await.err().unwrap();
    let db = e.as_db_error().unwrap();
    assert_eq!(db.code(), &SqlState::CANNOT_CONNECT_NOW);
    assert!(db.message().contains("could not connect to node"), "{db:?}");
    assert!(
        db.detail()
            .unwrap_or_default()
            .contains("does not accept TLS"),
        "{db:?}"
    );
    assert_eq!(c.log.startups.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn drain_refuses_waiting_clients() {
    let p = start_proxy(Role::ReadWrite, Duration::from_secs(8)).await;
    let addr = p.addr;
    let waiting = tokio::spawn(async move { pg_connect(addr).await.err() });
    tokio::time::sleep(Duration::from_millis(200)).await;
    p.shared.draining.cancel();
    let e = within(waiting).await.unwrap().unwrap();
    let db = e.as_db_error().unwrap();
    assert_eq!(db.code(), &SqlState::CANNOT_CONNECT_NOW);
    assert!(db.message().contains("shutting down"));
    p.tracker.close();
    within(p.tracker.wait()).await;
}

// ---------------------------------------------------------------------------
// The whole application: configuration file, reload, drain.

struct TempDir(std::path::PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        static N: AtomicU32 = AtomicU32::new(0);
        let p = std::env::temp_dir().join(format!(
            "pgautoproxy-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        ));
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn app_config(listeners: &[(&str, &str)]) -> String {
    let mut s = String::from(
        r#"
        [monitor]
        uri = "postgres://nobody@127.0.0.1:1/none?sslmode=disable"
        grace_period = "1h"
        [proxy]
        workers = 2
        hold_timeout = "5s"
        drain_timeout = "300ms"
        "#,
    );
    for (name, listen) in listeners {
        s.push_str(&format!(
            "[[listener]]\nname = \"{name}\"\nlisten = \"{listen}\"\nformation = \"app\"\n"
        ));
    }
    s
}

#[tokio::test]
async fn reload_applies_listener_changes_and_drain_closes_sessions() {
    let dir = TempDir::new("reload");
    let path = dir.0.join("pg_autoproxy.toml");
    std::fs::write(&path, app_config(&[("rw", "127.0.0.1:0")])).unwrap();
    let config = Config::load(Some(&path), &Overrides::default()).unwrap();
    let mut app = crate::app::App::start(config, Some(path.clone()), Overrides::default())
        .await
        .unwrap();
    let a = FakeNode::start("node_a", b'N').await;
    let group = app.routes().get_or_create(&GroupKey {
        formation: "app".into(),
        group: 0,
    });
    group.apply(vec![a.row(1, Primary, Primary)]);
    let rw = app.local_addrs()["rw"];
    let (c1, conn1) = pg_connect(rw).await.unwrap();
    assert_eq!(which_node(&c1).await, "node_a");

    // Add a listener.
    std::fs::write(
        &path,
        app_config(&[("rw", "127.0.0.1:0"), ("rw2", "127.0.0.2:0")]),
    )
    .unwrap();
    within(app.reload()).await.unwrap();
    let addrs = app.local_addrs();
    assert_eq!(addrs["rw"], rw, "unchanged listeners keep their socket");
    let rw2 = addrs["rw2"];
    let (c2, conn2) = pg_connect(rw2).await.unwrap();
    assert_eq!(which_node(&c2).await, "node_a");

    // A broken file changes nothing.
    std::fs::write(&path, "[proxy]\nhold_timeout = \"soon\"\n").unwrap();
    assert!(within(app.reload()).await.is_err());
    assert_eq!(app.local_addrs().len(), 2);

    // Remove it again: it stops accepting, its session continues.
    std::fs::write(&path, app_config(&[("rw", "127.0.0.1:0")])).unwrap();
    within(app.reload()).await.unwrap();
    assert_eq!(app.local_addrs().len(), 1);
    within(async {
        while TcpStream::connect(rw2).await.is_ok() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert_eq!(which_node(&c2).await, "node_a");

    // The admin view.
    let (code, _, body) = crate::admin::route("GET", "/readyz", &app.admin);
    assert_eq!(code, 200, "{}", String::from_utf8_lossy(&body));

    // Drain: idle sessions are closed with 57P01 once drain_timeout passes.
    let forced = within(app.drain()).await;
    assert_eq!(forced, 2);
    for conn in [conn1, conn2] {
        let err = within(conn).await.unwrap().unwrap_err();
        let db = err.as_db_error().unwrap();
        assert_eq!(db.code(), &SqlState::ADMIN_SHUTDOWN);
        assert!(db.message().contains("shutting down"), "{}", db.message());
    }
    let (code, _, _) = crate::admin::route("GET", "/readyz", &app.admin);
    assert_eq!(code, 503);
    assert!(
        TcpStream::connect(rw).await.is_err(),
        "listeners are closed"
    );
    within(app.shutdown()).await;
}
