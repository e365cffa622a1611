//! The few pieces of the Postgres wire protocol the proxy understands, all
//! sans-I/O: they take byte slices and never touch a socket.
//!
//! * [`startup`]: the first packet(s) a client sends (SSLRequest,
//!   GSSENCRequest, CancelRequest, StartupMessage, or the first byte of a
//!   direct TLS handshake), with Postgres's length limits;
//! * [`error_response`]: the ErrorResponse the proxy sends when it refuses a
//!   client or fences its session;
//! * [`backend_scan`]: a tiny framing scanner run over the backend's first
//!   messages (to learn BackendKeyData for cancel routing) and a tail check
//!   that tells whether the backend's last message was ReadyForQuery.
//!
//! Nothing here parses the steady-state session: after the startup phase
//! the relay moves bytes it never looks at.

pub(crate) mod backend_scan;
pub(crate) mod error_response;
pub(crate) mod startup;

/// SQLSTATE codes the proxy itself emits.
pub(crate) mod sqlstate {
    /// `admin_shutdown`: the session was ended on purpose (fencing, drain).
    pub(crate) const ADMIN_SHUTDOWN: &str = "57P01";
    /// `cannot_connect_now`: no node can take the connection right now.
    pub(crate) const CANNOT_CONNECT_NOW: &str = "57P03";
    /// `protocol_violation`.
    pub(crate) const PROTOCOL_VIOLATION: &str = "08P01";
    /// `feature_not_supported` (unsupported protocol version).
    pub(crate) const FEATURE_NOT_SUPPORTED: &str = "0A000";
    /// `invalid_authorization_specification` (no user name).
    pub(crate) const INVALID_AUTHORIZATION: &str = "28000";
    /// `too_many_connections`.
    pub(crate) const TOO_MANY_CONNECTIONS: &str = "53300";
}
