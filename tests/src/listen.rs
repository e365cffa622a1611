//! `LISTEN state; LISTEN log;` on a dedicated connection, with the
//! notifications collected in arrival order. NOTICE and WARNING messages
//! sent to this connection are collected too, as channel `notice` with
//! payload `<SEVERITY> <SQLSTATE>: <message>`.

use futures_util::future::poll_fn;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio_postgres::{AsyncMessage, Client, NoTls};

/// One notification: (channel, payload).
pub type Notification = (String, String);

/// A listening connection.
pub struct Listener {
    /// The listening connection; what it runs sends its notices here.
    pub client: Client,
    received: Arc<Mutex<Vec<Notification>>>,
}

impl Listener {
    pub async fn start(conninfo: &str) -> Listener {
        let (client, mut conn) = tokio_postgres::connect(conninfo, NoTls)
            .await
            .expect("connect listener");
        let received: Arc<Mutex<Vec<Notification>>> = Arc::default();
        let sink = received.clone();
        tokio::spawn(async move {
            while let Some(Ok(msg)) = poll_fn(|cx| conn.poll_message(cx)).await {
                let item = match msg {
                    AsyncMessage::Notification(n) => {
                        (n.channel().to_string(), n.payload().to_string())
                    }
                    AsyncMessage::Notice(e) => (
                        "notice".to_string(),
                        format!("{} {}: {}", e.severity(), e.code().code(), e.message()),
                    ),
                    _ => continue,
                };
                sink.lock().expect("listener lock").push(item);
            }
        });
        client
            .batch_execute("LISTEN state; LISTEN log;")
            .await
            .expect("LISTEN");
        Listener { client, received }
    }

    /// Take everything received so far, after a round trip that makes sure
    /// notifications committed before this call have arrived.
    pub async fn drain(&self) -> Vec<Notification> {
        self.client
            .batch_execute("SELECT 1")
            .await
            .expect("listener round trip");
        tokio::time::sleep(Duration::from_millis(20)).await;
        std::mem::take(&mut *self.received.lock().expect("listener lock"))
    }

    /// Only the `state` payloads of [`Listener::drain`].
    pub async fn drain_state(&self) -> Vec<String> {
        self.drain()
            .await
            .into_iter()
            .filter(|(c, _)| c == "state")
            .map(|(_, p)| p)
            .collect()
    }
}
