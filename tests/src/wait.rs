//! Deadlines: every wait in the tests polls a condition until a deadline and
//! fails with a message saying what it waited for.

use std::future::Future;
use std::time::{Duration, Instant};

/// Poll `check` every `step` until it returns `Some`, or fail after `limit`.
pub async fn until<T, F, Fut>(what: &str, limit: Duration, step: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        if Instant::now() >= deadline {
            panic!("timed out after {limit:?} waiting for {what}");
        }
        tokio::time::sleep(step).await;
    }
}
