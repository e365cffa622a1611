//! Connecting to nodes, behind the [`Connect`] trait so tests can script
//! failures, and the socket options every relayed socket gets.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::time::Duration;

use socket2::{SockRef, TcpKeepalive};
use tokio::net::TcpStream;

use crate::config::Keepalive;
use crate::route::Backend;

/// A failed connection attempt.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ConnectError {
    #[error("resolve {host}: {source}")]
    Resolve { host: String, source: io::Error },
    #[error("connect to {addr}: timed out after {timeout:?}")]
    Timeout { addr: String, timeout: Duration },
    #[error("connect to {addr}: {source}")]
    Io { addr: String, source: io::Error },
}

/// Opens TCP connections to nodes.
pub(crate) trait Connect: Send + Sync + 'static {
    fn connect<'a>(
        &'a self,
        backend: &'a Backend,
        timeout: Duration,
    ) -> Pin<Box<dyn Future<Output = Result<TcpStream, ConnectError>> + Send + 'a>>;
}

/// The real connector: resolves host names per attempt (IP addresses are
/// parsed once, when the route is published), sets TCP_NODELAY and
/// keepalive.
#[derive(Debug, Clone)]
pub(crate) struct TcpConnector {
    pub(crate) keepalive: Keepalive,
}

impl Connect for TcpConnector {
    fn connect<'a>(
        &'a self,
        backend: &'a Backend,
        timeout: Duration,
    ) -> Pin<Box<dyn Future<Output = Result<TcpStream, ConnectError>> + Send + 'a>> {
        Box::pin(async move {
            let addr = match backend.addr {
                Some(a) => a,
                None => resolve(&backend.host, backend.port).await?,
            };
            let stream = connect_addr(addr, timeout).await?;
            tune(&stream, &self.keepalive);
            Ok(stream)
        })
    }
}

/// The first address of `host:port`.
pub(crate) async fn resolve(host: &str, port: u16) -> Result<SocketAddr, ConnectError> {
    let mut addrs = tokio::net::lookup_host((host, port))
        .await
        .map_err(|source| ConnectError::Resolve {
            host: host.to_string(),
            source,
        })?;
    addrs.next().ok_or_else(|| ConnectError::Resolve {
        host: host.to_string(),
        source: io::Error::new(io::ErrorKind::NotFound, "no address"),
    })
}

pub(crate) async fn connect_addr(
    addr: SocketAddr,
    timeout: Duration,
) -> Result<TcpStream, ConnectError> {
    match tokio::time::timeout(timeout, TcpStream::connect(addr)).await {
        Ok(Ok(s)) => Ok(s),
        Ok(Err(source)) => Err(ConnectError::Io {
            addr: addr.to_string(),
            source,
        }),
        Err(_) => Err(ConnectError::Timeout {
            addr: addr.to_string(),
            timeout,
        }),
    }
}

/// TCP_NODELAY (no Nagle delay on small protocol messages) and keepalive
/// (find dead peers of idle sessions). Failures only cost performance.
pub(crate) fn tune(stream: &TcpStream, keepalive: &Keepalive) {
    if let Err(e) = stream.set_nodelay(true) {
        tracing::debug!("failed to set TCP_NODELAY: {e}");
    }
    let ka = TcpKeepalive::new()
        .with_time(keepalive.idle)
        .with_interval(keepalive.interval)
        .with_retries(keepalive.count);
    if let Err(e) = SockRef::from(stream).set_tcp_keepalive(&ka) {
        tracing::debug!("failed to set TCP keepalive: {e}");
    }
}
