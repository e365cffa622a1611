//! CancelRequest delivery.
//!
//! A CancelRequest arrives on a new connection and names a backend by
//! (pid, secret key). The proxy does not rewrite keys, so it has to find the
//! node that holds the session:
//! * for plaintext sessions the relay reads BackendKeyData during the
//!   startup phase and the session registers `(pid, key) → node address` in
//!   the [`CancelMap`] for its lifetime: the cancel goes to that node only;
//! * otherwise (TLS or GSS passed through, a session of another proxy
//!   instance, a key registered a moment too late) the request is sent to
//!   every node of the listener's formation. Postgres ignores a cancel whose
//!   pid/key pair it does not know (it only logs it), so the broadcast
//!   reaches the right node and is harmless elsewhere.
//!
//! The proxy answers nothing (Postgres does not either) and closes the
//! client connection once the nodes have closed theirs, so a client that
//! waits for EOF knows the request was delivered.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::connect::{connect_addr, resolve};
use crate::pq::backend_scan::BackendKey;
use crate::route::NodeAddr;

const SHARDS: usize = 16;

#[derive(Debug, Clone, Copy)]
struct Entry {
    addr: SocketAddr,
    session: u64,
}

/// `(pid, key) → node` for live plaintext sessions.
#[derive(Debug)]
pub(crate) struct CancelMap {
    shards: Vec<Mutex<HashMap<BackendKey, Entry>>>,
}

impl Default for CancelMap {
    fn default() -> Self {
        CancelMap {
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
        }
    }
}

/// Removes the session's entry when dropped.
#[derive(Debug)]
pub(crate) struct CancelRegistration {
    map: Arc<CancelMap>,
    key: BackendKey,
    session: u64,
}

impl Drop for CancelRegistration {
    fn drop(&mut self) {
        if let Ok(mut shard) = self.map.shard(&self.key).lock() {
            if shard
                .get(&self.key)
                .is_some_and(|e| e.session == self.session)
            {
                shard.remove(&self.key);
            }
        }
    }
}

impl CancelMap {
    fn shard(&self, key: &BackendKey) -> &Mutex<HashMap<BackendKey, Entry>> {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        key.pid.hash(&mut h);
        &self.shards[(h.finish() as usize) % SHARDS]
    }

    pub(crate) fn register(
        self: &Arc<Self>,
        key: BackendKey,
        addr: SocketAddr,
        session: u64,
    ) -> CancelRegistration {
        if let Ok(mut shard) = self.shard(&key).lock() {
            shard.insert(key.clone(), Entry { addr, session });
        }
        CancelRegistration {
            map: self.clone(),
            key,
            session,
        }
    }

    pub(crate) fn lookup(&self, pid: u32, key: &[u8]) -> Option<SocketAddr> {
        let k = BackendKey {
            pid,
            key: key.to_vec(),
        };
        self.shard(&k).lock().ok()?.get(&k).map(|e| e.addr)
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().map_or(0, |m| m.len()))
            .sum()
    }
}

/// Where to send a CancelRequest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Target {
    Addr(SocketAddr),
    Node(NodeAddr),
}

/// Send `packet` (the client's CancelRequest, byte for byte) to every
/// target in parallel and wait until each node closed the connection or
/// `timeout` passed. Returns how many nodes received it.
pub(crate) async fn deliver(packet: &[u8], targets: Vec<Target>, timeout: Duration) -> usize {
    let sends = targets.into_iter().map(|t| async move {
        let addr = match t {
            Target::Addr(a) => a,
            Target::Node(n) => match resolve(&n.host, n.port).await {
                Ok(a) => a,
                Err(e) => {
                    tracing::debug!("failed to forward cancel: {e}");
                    return false;
                }
            },
        };
        let attempt = async {
            let mut s = connect_addr(addr, timeout)
                .await
                .map_err(|e| e.to_string())?;
            s.write_all(packet).await.map_err(|e| e.to_string())?;
            // Postgres closes the connection once it handled the request.
            let mut sink = [0u8; 64];
            while s.read(&mut sink).await.map_err(|e| e.to_string())? > 0 {}
            Ok::<(), String>(())
        };
        match tokio::time::timeout(timeout, attempt).await {
            Ok(Ok(())) => true,
            Ok(Err(e)) => {
                tracing::debug!(%addr, "failed to forward cancel: {e}");
                false
            }
            Err(_) => {
                tracing::debug!(%addr, "failed to forward cancel: timed out");
                false
            }
        }
    });
    // Run concurrently on this task; the futures borrow `packet`.
    join_all(sends.collect())
        .await
        .into_iter()
        .filter(|ok| *ok)
        .count()
}

/// Poll every future until all are done (a minimal `join_all`).
async fn join_all<F: std::future::Future<Output = bool>>(futs: Vec<F>) -> Vec<bool> {
    let mut futs: Vec<std::pin::Pin<Box<F>>> = futs.into_iter().map(Box::pin).collect();
    let mut out: Vec<Option<bool>> = vec![None; futs.len()];
    std::future::poll_fn(|cx| {
        let mut all = true;
        for (i, f) in futs.iter_mut().enumerate() {
            if out[i].is_none() {
                match f.as_mut().poll(cx) {
                    std::task::Poll::Ready(v) => out[i] = Some(v),
                    std::task::Poll::Pending => all = false,
                }
            }
        }
        if all {
            std::task::Poll::Ready(())
        } else {
            std::task::Poll::Pending
        }
    })
    .await;
    out.into_iter().map(|o| o.unwrap_or(false)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registrations_are_scoped_to_their_session() {
        let map = Arc::new(CancelMap::default());
        let addr: SocketAddr = "127.0.0.1:5432".parse().unwrap();
        let key = BackendKey {
            pid: 7,
            key: vec![1, 2, 3, 4],
        };
        let r1 = map.register(key.clone(), addr, 1);
        assert_eq!(map.lookup(7, &[1, 2, 3, 4]), Some(addr));
        assert_eq!(map.lookup(7, &[1, 2, 3, 5]), None);
        // Same key reused by a later session on another node.
        let other: SocketAddr = "127.0.0.2:5432".parse().unwrap();
        let r2 = map.register(key, other, 2);
        drop(r1);
        assert_eq!(map.lookup(7, &[1, 2, 3, 4]), Some(other));
        drop(r2);
        assert_eq!(map.len(), 0);
    }

    #[tokio::test]
    async fn delivers_to_every_target_and_waits_for_close() {
        let l1 = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let l2 = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let a1 = l1.local_addr().unwrap();
        let a2 = l2.local_addr().unwrap();
        let server = |l: tokio::net::TcpListener| async move {
            let (mut s, _) = l.accept().await.unwrap();
            let mut buf = [0u8; 16];
            s.read_exact(&mut buf).await.unwrap();
            buf
        };
        let h1 = tokio::spawn(server(l1));
        let h2 = tokio::spawn(server(l2));
        let packet = crate::pq::startup::tests::cancel_bytes(99, &[9, 9, 9, 9]);
        let n = deliver(
            &packet,
            vec![
                Target::Addr(a1),
                Target::Node(NodeAddr {
                    host: "127.0.0.1".into(),
                    port: a2.port(),
                }),
            ],
            Duration::from_secs(5),
        )
        .await;
        assert_eq!(n, 2);
        assert_eq!(h1.await.unwrap().to_vec(), packet);
        assert_eq!(h2.await.unwrap().to_vec(), packet);
    }
}
