//! A deliberately tiny HTTP/1.1 server for metrics and admin endpoints:
//! GET (and HEAD) only, one request per connection, `Connection: close`,
//! an 8 KiB limit on the request head and a 5 s deadline per connection.
//! Scrapers and load-balancer health checks need nothing more, and it
//! keeps an HTTP framework out of three binaries.
//!
//! A component implements [`Handler`] (path → [`Response`]) and runs
//! [`serve`] on a bound listener, or [`spawn`] to bind an address from its
//! configuration, retrying while the address is taken.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Largest request head accepted.
pub const MAX_REQUEST: usize = 8 * 1024;
/// Deadline for reading a request and writing its response.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// Pause between two attempts to bind a busy address ([`spawn`]).
pub const BIND_RETRY: Duration = Duration::from_secs(5);

/// A request line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// `GET`, `HEAD`, …
    pub method: String,
    /// The path without the query string.
    pub path: String,
}

/// A complete response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub content_type: &'static str,
    pub body: Vec<u8>,
}

impl Response {
    /// A `text/plain` response.
    pub fn text(status: u16, body: impl Into<Vec<u8>>) -> Response {
        Response {
            status,
            content_type: "text/plain",
            body: body.into(),
        }
    }

    /// 200 with a Prometheus text exposition.
    pub fn metrics(body: Vec<u8>) -> Response {
        Response {
            status: 200,
            content_type: crate::exposition::CONTENT_TYPE,
            body,
        }
    }

    /// 404.
    pub fn not_found() -> Response {
        Response::text(404, "not found\n")
    }

    /// 405 for anything but GET and HEAD.
    pub fn only_get() -> Response {
        Response::text(405, "only GET\n")
    }
}

/// What a server answers.
pub trait Handler: Send + Sync + 'static {
    /// The response to `request` (any method; see [`Response::only_get`]).
    fn handle(&self, request: Request) -> impl Future<Output = Response> + Send;
}

/// An address to listen on could not be understood.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "\"{0}\" is not an address to listen on: use IP:PORT, for example 127.0.0.1:9360 or [::]:9360"
)]
pub struct ListenAddrError(pub String);

/// Parse a listen address (`IP:PORT`).
pub fn parse_listen(s: &str) -> Result<SocketAddr, ListenAddrError> {
    s.trim().parse().map_err(|_| ListenAddrError(s.to_string()))
}

/// Serve `listener` until `shutdown` completes.
pub async fn serve<H: Handler>(
    listener: TcpListener,
    handler: Arc<H>,
    shutdown: impl Future<Output = ()>,
) {
    tokio::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            _ = &mut shutdown => return,
            r = listener.accept() => r,
        };
        match accepted {
            Ok((socket, _)) => {
                let handler = handler.clone();
                tokio::spawn(async move {
                    let served = tokio::time::timeout(REQUEST_TIMEOUT, handle(socket, &*handler));
                    match served.await {
                        Ok(Ok(())) => {}
                        Ok(Err(e)) => tracing::debug!("HTTP request failed: {e}"),
                        Err(_) => tracing::debug!("HTTP request timed out"),
                    }
                });
            }
            Err(e) => {
                tracing::warn!("failed to accept an HTTP connection: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

/// Bind `addr` and serve it for the life of the runtime. While the
/// address cannot be bound (taken by another process) the error is logged
/// once and binding is retried every [`BIND_RETRY`]: a metrics endpoint
/// never keeps its component from running.
pub fn spawn<H: Handler>(addr: SocketAddr, handler: Arc<H>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut failures = 0u32;
        loop {
            match TcpListener::bind(addr).await {
                Ok(listener) => {
                    tracing::info!("Serving metrics on http://{addr}/metrics");
                    serve(listener, handler, std::future::pending()).await;
                    return;
                }
                Err(e) => {
                    failures += 1;
                    if failures == 1 {
                        tracing::error!(
                            "Cannot serve metrics on {addr}: {e}; retrying every {} s",
                            BIND_RETRY.as_secs()
                        );
                    }
                    tokio::time::sleep(BIND_RETRY).await;
                }
            }
        }
    })
}

async fn handle<H: Handler>(mut socket: TcpStream, handler: &H) -> std::io::Result<()> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    loop {
        let n = socket.read(&mut chunk).await?;
        if n == 0 {
            return Ok(());
        }
        buf.extend_from_slice(&chunk[..n]);
        if buf.windows(4).any(|w| w == b"\r\n\r\n") || buf.windows(2).any(|w| w == b"\n\n") {
            break;
        }
        if buf.len() > MAX_REQUEST {
            let r = Response::text(431, "request too large\n");
            return respond(&mut socket, &r).await;
        }
    }
    let response = handler.handle(request_line(&buf)).await;
    respond(&mut socket, &response).await
}

/// The method and path of a request head.
fn request_line(head: &[u8]) -> Request {
    let line = head.split(|&b| b == b'\n').next().unwrap_or_default();
    let line = String::from_utf8_lossy(line);
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or("").to_string();
    let path = parts.next().unwrap_or("");
    let path = path.split('?').next().unwrap_or("").to_string();
    Request { method, path }
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        404 => "Not Found",
        405 => "Method Not Allowed",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "Error",
    }
}

async fn respond(socket: &mut TcpStream, r: &Response) -> std::io::Result<()> {
    let head = format!(
        "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        r.status,
        reason(r.status),
        r.content_type,
        r.body.len()
    );
    socket.write_all(head.as_bytes()).await?;
    socket.write_all(&r.body).await?;
    socket.shutdown().await
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Echo;

    impl Handler for Echo {
        async fn handle(&self, request: Request) -> Response {
            match (request.method.as_str(), request.path.as_str()) {
                ("GET", "/metrics") => Response::metrics(b"pgaftest_up 1\n".to_vec()),
                ("GET", _) => Response::not_found(),
                _ => Response::only_get(),
            }
        }
    }

    async fn exchange(addr: SocketAddr, request: &[u8]) -> String {
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(request).await.unwrap();
        let mut out = Vec::new();
        s.read_to_end(&mut out).await.unwrap();
        String::from_utf8(out).unwrap()
    }

    #[tokio::test]
    async fn answers_one_request_per_connection() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(serve(listener, Arc::new(Echo), async {
            let _ = stop_rx.await;
        }));

        let r = exchange(addr, b"GET /metrics?x=1 HTTP/1.1\r\nHost: x\r\n\r\n").await;
        assert!(r.starts_with("HTTP/1.1 200 OK\r\n"), "{r}");
        assert!(
            r.contains("Content-Type: text/plain; version=0.0.4\r\n"),
            "{r}"
        );
        assert!(r.contains("Content-Length: 14\r\n"), "{r}");
        assert!(r.ends_with("\r\n\r\npgaftest_up 1\n"), "{r}");

        let r = exchange(addr, b"GET /nope HTTP/1.0\n\n").await;
        assert!(r.starts_with("HTTP/1.1 404 Not Found\r\n"), "{r}");
        let r = exchange(addr, b"POST /metrics HTTP/1.1\r\n\r\n").await;
        assert!(r.starts_with("HTTP/1.1 405 "), "{r}");
        let mut big = b"GET /metrics HTTP/1.1\r\nX: ".to_vec();
        big.extend(std::iter::repeat_n(b'a', MAX_REQUEST + 10));
        let r = exchange(addr, &big).await;
        assert!(r.starts_with("HTTP/1.1 431 "), "{r}");

        stop_tx.send(()).unwrap();
        tokio::time::timeout(Duration::from_secs(10), server)
            .await
            .unwrap()
            .unwrap();
    }

    #[test]
    fn listen_addresses() {
        assert_eq!(
            parse_listen("127.0.0.1:9360").unwrap(),
            "127.0.0.1:9360".parse::<SocketAddr>().unwrap()
        );
        assert!(parse_listen("[::]:9360").is_ok());
        let e = parse_listen("localhost").unwrap_err();
        assert!(e.to_string().contains("use IP:PORT"), "{e}");
        assert!(parse_listen("1.2.3.4").is_err());
    }
}
