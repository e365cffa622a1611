//! Errors at the edge of a session, in two kinds:
//! * [`Refusal`]: the proxy declines the client and tells it why with an
//!   ErrorResponse (SQLSTATE, message, detail, hint) — client-safe text
//!   only, never internals or other users' data;
//! * [`SessionError`]: the connection failed or ended in a way the client
//!   cannot be told about (I/O, timeouts, TLS); logged at debug level.
//!
//! Each maps to a bounded metric label ([`RejectReason`]).

use std::time::Duration;

use crate::metrics::RejectReason;
use crate::pq::error_response::ErrorResponse;
use crate::pq::sqlstate;
use crate::pq::startup::StartupError;
use crate::route::{GroupKey, Unavailable};

/// The kind of node a listener routes to, for messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Target {
    Primary,
    Secondary,
}

/// A client the proxy answers with an ErrorResponse, then closes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// No node to route to within the hold time.
    NoRoute {
        group: GroupKey,
        target: Target,
        why: Unavailable,
        waited: Duration,
    },
    /// The chosen node did not accept connections until the hold time ended.
    BackendUnreachable { node: String, error: String },
    /// A malformed, truncated or oversized startup packet.
    Startup(StartupError),
    /// Bytes pipelined behind an SSLRequest/GSSENCRequest (CVE-2021-23214).
    UnencryptedAfterRequest,
    /// A second SSLRequest/GSSENCRequest, or one inside TLS.
    DuplicateNegotiation,
    /// `max_connections` reached.
    TooMany,
    /// The proxy is shutting down.
    Shutdown,
}

impl Refusal {
    pub(crate) fn reason(&self) -> RejectReason {
        match self {
            Refusal::NoRoute { .. } => RejectReason::NoRoute,
            Refusal::BackendUnreachable { .. } => RejectReason::BackendUnreachable,
            Refusal::Startup(_)
            | Refusal::UnencryptedAfterRequest
            | Refusal::DuplicateNegotiation => RejectReason::Protocol,
            Refusal::TooMany => RejectReason::TooMany,
            Refusal::Shutdown => RejectReason::Shutdown,
        }
    }

    /// The ErrorResponse bytes.
    pub(crate) fn to_error_response(&self) -> Vec<u8> {
        match self {
            Refusal::NoRoute { group, target, why, waited } => {
                let what = match target {
                    Target::Primary => "primary",
                    Target::Secondary => "read-only node",
                };
                let message = format!("no {what} is available for {group}");
                let detail = format!("{why}. Waited {:.1} s.", waited.as_secs_f64());
                ErrorResponse::fatal(sqlstate::CANNOT_CONNECT_NOW, &message)
                    .detail(&detail)
                    .hint("pg_autoproxy holds new connections while a failover completes; retry in a moment.")
                    .encode()
            }
            Refusal::BackendUnreachable { node, error } => {
                let message = format!("could not connect to node {node}");
                ErrorResponse::fatal(sqlstate::CANNOT_CONNECT_NOW, &message).detail(error).encode()
            }
            Refusal::Startup(e) => ErrorResponse::fatal(e.sqlstate(), &e.to_string()).encode(),
            Refusal::UnencryptedAfterRequest => ErrorResponse::fatal(
                sqlstate::PROTOCOL_VIOLATION,
                "received unencrypted data after SSL request",
            )
            .detail("This could be either a client-software bug or evidence of an attempted man-in-the-middle attack.")
            .encode(),
            Refusal::DuplicateNegotiation => ErrorResponse::fatal(
                sqlstate::PROTOCOL_VIOLATION,
                "unexpected SSL or GSSAPI encryption request",
            )
            .encode(),
            Refusal::TooMany => {
                ErrorResponse::fatal(sqlstate::TOO_MANY_CONNECTIONS, "sorry, too many clients already")
                    .encode()
            }
            Refusal::Shutdown => {
                ErrorResponse::fatal(sqlstate::CANNOT_CONNECT_NOW, "pg_autoproxy is shutting down")
                    .encode()
            }
        }
    }
}

/// A session ended without a message to the client.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SessionError {
    #[error("client sent nothing usable within {0:?}")]
    HandshakeTimeout(Duration),
    #[error("client closed the connection during the handshake")]
    ClientClosed,
    #[error("client I/O: {0}")]
    ClientIo(#[source] std::io::Error),
    #[error("node I/O: {0}")]
    ServerIo(#[source] std::io::Error),
    #[error("node did not answer the encryption request within {0:?}")]
    ServerTimeout(Duration),
    #[error("TLS handshake with the client: {0}")]
    Tls(#[source] std::io::Error),
    #[error("direct TLS without TLS termination could not be routed: {0}")]
    DirectTlsRefused(String),
    #[error("refused: {0:?}")]
    Refused(Refusal),
}

impl SessionError {
    pub(crate) fn reason(&self) -> Option<RejectReason> {
        match self {
            SessionError::HandshakeTimeout(_) => Some(RejectReason::Timeout),
            SessionError::Tls(_) => Some(RejectReason::Tls),
            SessionError::Refused(r) => Some(r.reason()),
            SessionError::DirectTlsRefused(_) => Some(RejectReason::NoRoute),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_route_says_why() {
        let r = Refusal::NoRoute {
            group: GroupKey {
                formation: "default".into(),
                group: 0,
            },
            target: Target::Primary,
            why: Unavailable::NoWritableNode,
            waited: Duration::from_secs(30),
        };
        let bytes = r.to_error_response();
        let text = String::from_utf8_lossy(&bytes);
        assert!(text.contains("57P03"));
        assert!(text.contains("no primary is available for formation \"default\" group 0"));
        assert!(text.contains("no node of the group can take writes. Waited 30.0 s."));
        assert_eq!(r.reason(), RejectReason::NoRoute);
    }
}
