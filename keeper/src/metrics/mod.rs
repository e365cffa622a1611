//! Prometheus metrics of `pg_autoctl run`, served on `/metrics` at the
//! configuration's `[pg_autoctl] metrics_listen` address (empty: off),
//! with the shared helpers of [`pgaf_metrics`]:
//!
//! * [`node`]: a Postgres node's keeper (prefix `pgautoctl_`), updated by
//!   the node-active loop;
//! * [`monitor`]: the monitor node (prefix `pgautofailover_`), read from
//!   the monitor's database at each scrape.

pub mod monitor;
pub mod node;

use std::net::SocketAddr;

use pgaf_metrics::exposition::ExpositionError;
use pgaf_metrics::http::{Request, Response};

pub use pgaf_metrics::http::ListenAddrError;

/// The answer of a metrics endpoint to `request`: `GET /metrics` runs
/// `scrape` (a failed scrape is a logged 500), other paths are 404 and
/// other methods 405.
async fn endpoint<F, Fut>(request: &Request, scrape: F) -> Response
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = Result<Vec<u8>, ExpositionError>>,
{
    if request.method != "GET" && request.method != "HEAD" {
        return Response::only_get();
    }
    match request.path.as_str() {
        "/metrics" => match scrape().await {
            Ok(text) => Response::metrics(text),
            Err(e) => {
                tracing::warn!("{e}");
                Response::text(500, format!("{e}\n"))
            }
        },
        _ => Response::not_found(),
    }
}

/// The address of the metrics endpoint from `[pg_autoctl] metrics_listen`:
/// `None` when empty (off).
pub fn listen_addr(setting: &str) -> Result<Option<SocketAddr>, ListenAddrError> {
    if setting.trim().is_empty() {
        return Ok(None);
    }
    pgaf_metrics::http::parse_listen(setting).map(Some)
}

/// `--metrics-listen`'s value parser: the address as given, once checked.
pub fn parse_listen_option(s: &str) -> Result<String, String> {
    pgaf_metrics::http::parse_listen(s)
        .map(|_| s.trim().to_string())
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_is_off_and_garbage_is_an_error() {
        assert_eq!(listen_addr("").unwrap(), None);
        assert_eq!(
            listen_addr("127.0.0.1:9360").unwrap(),
            Some("127.0.0.1:9360".parse().unwrap())
        );
        let e = listen_addr("9360").unwrap_err().to_string();
        assert!(e.contains("\"9360\" is not an address"), "{e}");
        assert!(parse_listen_option("host:1").is_err());
    }
}
