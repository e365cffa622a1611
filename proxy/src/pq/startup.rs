//! Sans-I/O parser for the startup phase of a client connection.
//!
//! A client opens with exactly one of:
//! * an SSLRequest (8 bytes, code 80877103);
//! * a GSSENCRequest (8 bytes, code 80877104);
//! * a CancelRequest (code 80877102, pid and a secret key of 4 bytes under
//!   protocol 3.0 and up to 256 bytes under 3.2);
//! * a StartupMessage (protocol 3.x, `name\0value\0…\0`);
//! * the first byte (0x16) of a TLS ClientHello (PG17 `sslnegotiation=direct`).
//!
//! [`parse`] looks at a buffer, returns `Ok(None)` while the packet is
//! incomplete and never reads past the declared length. Like Postgres it
//! refuses lengths below 8 or above [`MAX_STARTUP_PACKET_LEN`] as soon as the
//! 4-byte length is known, so a client cannot make the proxy buffer more than
//! that. The parsed packet borrows from the buffer: the caller forwards the
//! original bytes, never a re-encoding.

use std::borrow::Cow;

/// The largest startup packet Postgres accepts (`MAX_STARTUP_PACKET_LENGTH`).
pub(crate) const MAX_STARTUP_PACKET_LEN: usize = 10_000;
/// SSLRequest code (1234.5679).
pub(crate) const SSL_REQUEST_CODE: u32 = 80_877_103;
/// GSSENCRequest code (1234.5680).
pub(crate) const GSSENC_REQUEST_CODE: u32 = 80_877_104;
/// CancelRequest code (1234.5678).
pub(crate) const CANCEL_REQUEST_CODE: u32 = 80_877_102;
/// The first byte of a TLS handshake record.
pub(crate) const TLS_HANDSHAKE_BYTE: u8 = 0x16;
/// Longest cancel key (protocol 3.2 allows up to 256 bytes).
pub(crate) const MAX_CANCEL_KEY_LEN: usize = 256;

/// One startup-phase packet, borrowed from the input buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum StartupPacket<'a> {
    SslRequest,
    GssEncRequest,
    Cancel(CancelRequest<'a>),
    Startup(StartupMessage<'a>),
    /// The client started a TLS handshake without an SSLRequest. Nothing is
    /// consumed: the bytes belong to the TLS stream.
    DirectTls,
}

/// A CancelRequest: the target backend's pid and secret key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CancelRequest<'a> {
    pub(crate) pid: u32,
    pub(crate) key: &'a [u8],
}

/// A well-formed StartupMessage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct StartupMessage<'a> {
    pub(crate) minor: u16,
    /// The parameter block without the final terminator: `name\0value\0…`.
    params: &'a [u8],
}

impl<'a> StartupMessage<'a> {
    /// The parameters in packet order (duplicates kept, as sent).
    pub(crate) fn params(&self) -> impl Iterator<Item = (&'a [u8], &'a [u8])> + 'a {
        let mut parts = self.params.split(|&b| b == 0);
        std::iter::from_fn(move || {
            let name = parts.next().filter(|n| !n.is_empty())?;
            let value = parts.next()?;
            Some((name, value))
        })
    }

    /// The last value of a parameter, lossily decoded (for logs).
    pub(crate) fn get(&self, name: &str) -> Option<Cow<'a, str>> {
        self.params()
            .filter(|(n, _)| *n == name.as_bytes())
            .last()
            .map(|(_, v)| String::from_utf8_lossy(v))
    }

    pub(crate) fn user(&self) -> Option<Cow<'a, str>> {
        self.get("user")
    }

    /// The database, which defaults to the user name as in Postgres.
    pub(crate) fn database(&self) -> Option<Cow<'a, str>> {
        self.get("database")
            .filter(|d| !d.is_empty())
            .or_else(|| self.user())
    }
}

/// A parsed packet and how many bytes of the buffer it used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Parsed<'a> {
    pub(crate) packet: StartupPacket<'a>,
    pub(crate) len: usize,
}

/// Why a startup packet is refused. Each maps to the SQLSTATE Postgres uses.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum StartupError {
    #[error("invalid length of startup packet")]
    InvalidLength(u32),
    #[error("invalid length of cancel request")]
    InvalidCancelLength(u32),
    #[error("unsupported frontend protocol {major}.{minor}: pg_autoproxy supports 3.0 to 3.x")]
    UnsupportedProtocol { major: u16, minor: u16 },
    #[error("invalid startup packet layout: expected terminator as last byte")]
    Layout,
    #[error("no PostgreSQL user name specified in startup packet")]
    NoUser,
}

impl StartupError {
    pub(crate) fn sqlstate(&self) -> &'static str {
        use super::sqlstate::*;
        match self {
            StartupError::UnsupportedProtocol { .. } => FEATURE_NOT_SUPPORTED,
            StartupError::NoUser => INVALID_AUTHORIZATION,
            _ => PROTOCOL_VIOLATION,
        }
    }
}

fn be_u32(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

/// Parse the next startup-phase packet at the start of `buf`.
///
/// * `Ok(None)`: more bytes are needed (never more than
///   [`MAX_STARTUP_PACKET_LEN`] in total);
/// * `Ok(Some(p))`: a complete packet of `p.len` bytes (0 for
///   [`StartupPacket::DirectTls`]);
/// * `Err(e)`: the client must be refused.
pub(crate) fn parse(buf: &[u8]) -> Result<Option<Parsed<'_>>, StartupError> {
    let Some(&first) = buf.first() else {
        return Ok(None);
    };
    if first == TLS_HANDSHAKE_BYTE {
        return Ok(Some(Parsed {
            packet: StartupPacket::DirectTls,
            len: 0,
        }));
    }
    if first != 0 {
        // The length would exceed 16 MiB: refuse before the rest arrives.
        let mut len = [0u8; 4];
        len[0] = first;
        for (i, b) in buf.iter().take(4).enumerate().skip(1) {
            len[i] = *b;
        }
        return Err(StartupError::InvalidLength(u32::from_be_bytes(len)));
    }
    if buf.len() < 4 {
        return Ok(None);
    }
    let declared = be_u32(buf);
    let len = declared as usize;
    if !(8..=MAX_STARTUP_PACKET_LEN).contains(&len) {
        return Err(StartupError::InvalidLength(declared));
    }
    if buf.len() < 8 {
        return Ok(None);
    }
    let code = be_u32(&buf[4..8]);
    // Fixed-size requests are checked before waiting for the whole packet.
    match code {
        SSL_REQUEST_CODE | GSSENC_REQUEST_CODE if len != 8 => {
            return Err(StartupError::InvalidLength(declared));
        }
        CANCEL_REQUEST_CODE if !(16..=12 + MAX_CANCEL_KEY_LEN).contains(&len) => {
            return Err(StartupError::InvalidCancelLength(declared));
        }
        _ => {}
    }
    if buf.len() < len {
        return Ok(None);
    }
    let packet = &buf[..len];
    let packet = match code {
        SSL_REQUEST_CODE => StartupPacket::SslRequest,
        GSSENC_REQUEST_CODE => StartupPacket::GssEncRequest,
        CANCEL_REQUEST_CODE => StartupPacket::Cancel(CancelRequest {
            pid: be_u32(&packet[8..12]),
            key: &packet[12..],
        }),
        _ => {
            let major = (code >> 16) as u16;
            let minor = (code & 0xffff) as u16;
            if major != 3 {
                return Err(StartupError::UnsupportedProtocol { major, minor });
            }
            StartupPacket::Startup(parse_params(minor, &packet[8..])?)
        }
    };
    Ok(Some(Parsed { packet, len }))
}

/// Validate `name\0value\0…\0\0`-style parameter blocks like Postgres does.
fn parse_params(minor: u16, block: &[u8]) -> Result<StartupMessage<'_>, StartupError> {
    // The block ends with an empty name (the terminator).
    let Some((&0, body)) = block.split_last() else {
        return Err(StartupError::Layout);
    };
    let mut offset = 0;
    let mut has_user = false;
    while offset < body.len() {
        let rest = &body[offset..];
        let name_end = rest
            .iter()
            .position(|&b| b == 0)
            .ok_or(StartupError::Layout)?;
        if name_end == 0 {
            // An empty name before the end: the terminator came too early.
            return Err(StartupError::Layout);
        }
        let value_start = name_end + 1;
        let value_len = rest[value_start..]
            .iter()
            .position(|&b| b == 0)
            .ok_or(StartupError::Layout)?;
        if &rest[..name_end] == b"user" {
            // The last value wins, as in Postgres.
            has_user = value_len > 0;
        }
        offset += value_start + value_len + 1;
    }
    if !has_user {
        return Err(StartupError::NoUser);
    }
    Ok(StartupMessage {
        minor,
        params: body,
    })
}

/// Invariants of [`parse`] on arbitrary input, for fuzzers.
pub(crate) mod tests_support {
    use super::*;

    /// Panics if `parse` breaks one of its promises on `data`.
    pub(crate) fn check_invariants(data: &[u8]) {
        let result = parse(data);
        match &result {
            Ok(None) => {
                // Incomplete only below the cap and below the declared length.
                assert!(
                    data.len() < MAX_STARTUP_PACKET_LEN,
                    "incomplete beyond the cap"
                );
                if data.len() >= 4 {
                    let declared =
                        u32::from_be_bytes([data[0], data[1], data[2], data[3]]) as usize;
                    assert!(
                        data.len() < declared,
                        "incomplete although the packet is complete"
                    );
                }
            }
            Ok(Some(p)) => {
                assert!(p.len <= data.len() && p.len <= MAX_STARTUP_PACKET_LEN);
                match &p.packet {
                    StartupPacket::DirectTls => {
                        assert!(p.len == 0 && data[0] == TLS_HANDSHAKE_BYTE)
                    }
                    StartupPacket::SslRequest | StartupPacket::GssEncRequest => {
                        assert_eq!(p.len, 8)
                    }
                    StartupPacket::Cancel(c) => {
                        assert!((4..=MAX_CANCEL_KEY_LEN).contains(&c.key.len()));
                        assert_eq!(p.len, 12 + c.key.len());
                    }
                    StartupPacket::Startup(m) => {
                        assert!(m.user().is_some_and(|u| !u.is_empty()));
                        assert!(m.params().count() <= p.len / 2);
                        let _ = m.database();
                    }
                }
                // Trailing bytes never change the packet.
                let mut longer = data[..p.len].to_vec();
                longer.extend_from_slice(b"trailing");
                if p.len > 0 {
                    assert_eq!(parse(&longer).ok().flatten().map(|q| q.len), Some(p.len));
                }
            }
            Err(_) => {}
        }
        // A prefix of a complete packet is incomplete or already refused.
        if let Ok(Some(p)) = &result {
            for cut in [0, 1, 3, 4, 7, 8, p.len.saturating_sub(1)] {
                if cut < p.len {
                    assert!(
                        !matches!(parse(&data[..cut]), Ok(Some(_))),
                        "complete at prefix {cut}"
                    );
                }
            }
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A StartupMessage for protocol 3.`minor` with the given parameters.
    pub(crate) fn startup_bytes(minor: u16, params: &[(&str, &str)]) -> Vec<u8> {
        let mut body = Vec::new();
        body.extend_from_slice(&(0x0003_0000u32 | u32::from(minor)).to_be_bytes());
        for (k, v) in params {
            body.extend_from_slice(k.as_bytes());
            body.push(0);
            body.extend_from_slice(v.as_bytes());
            body.push(0);
        }
        body.push(0);
        let mut out = ((body.len() + 4) as u32).to_be_bytes().to_vec();
        out.extend_from_slice(&body);
        out
    }

    pub(crate) fn code_packet(code: u32) -> Vec<u8> {
        let mut out = 8u32.to_be_bytes().to_vec();
        out.extend_from_slice(&code.to_be_bytes());
        out
    }

    pub(crate) fn cancel_bytes(pid: u32, key: &[u8]) -> Vec<u8> {
        let mut out = ((12 + key.len()) as u32).to_be_bytes().to_vec();
        out.extend_from_slice(&CANCEL_REQUEST_CODE.to_be_bytes());
        out.extend_from_slice(&pid.to_be_bytes());
        out.extend_from_slice(key);
        out
    }

    #[test]
    fn ssl_and_gss_requests() {
        let ssl = code_packet(SSL_REQUEST_CODE);
        let p = parse(&ssl).unwrap().unwrap();
        assert_eq!(
            p,
            Parsed {
                packet: StartupPacket::SslRequest,
                len: 8
            }
        );
        let gss = code_packet(GSSENC_REQUEST_CODE);
        let p = parse(&gss).unwrap().unwrap();
        assert_eq!(p.packet, StartupPacket::GssEncRequest);
    }

    #[test]
    fn startup_message_round_trip() {
        let bytes = startup_bytes(0, &[("user", "alice"), ("database", "app"), ("x", "")]);
        let p = parse(&bytes).unwrap().unwrap();
        assert_eq!(p.len, bytes.len());
        let StartupPacket::Startup(m) = p.packet else {
            panic!("not a startup")
        };
        assert_eq!(m.minor, 0);
        assert_eq!(m.user().as_deref(), Some("alice"));
        assert_eq!(m.database().as_deref(), Some("app"));
        assert_eq!(m.params().count(), 3);
    }

    #[test]
    fn database_defaults_to_user() {
        let bytes = startup_bytes(2, &[("user", "bob")]);
        let StartupPacket::Startup(m) = parse(&bytes).unwrap().unwrap().packet else {
            panic!()
        };
        assert_eq!(m.minor, 2);
        assert_eq!(m.database().as_deref(), Some("bob"));
    }

    #[test]
    fn pipelined_bytes_are_not_consumed() {
        let mut bytes = startup_bytes(0, &[("user", "u")]);
        let len = bytes.len();
        bytes.extend_from_slice(b"Q\0\0\0\x0dselect 1\0");
        assert_eq!(parse(&bytes).unwrap().unwrap().len, len);
    }

    #[test]
    fn every_prefix_is_incomplete() {
        for bytes in [
            startup_bytes(0, &[("user", "alice"), ("database", "app")]),
            code_packet(SSL_REQUEST_CODE),
            cancel_bytes(42, &[1, 2, 3, 4]),
            cancel_bytes(42, &[7; 32]),
        ] {
            for cut in 0..bytes.len() {
                assert_eq!(parse(&bytes[..cut]), Ok(None), "prefix {cut} of {bytes:?}");
            }
            assert!(parse(&bytes).unwrap().is_some());
        }
    }

    #[test]
    fn cancel_requests() {
        let bytes = cancel_bytes(1234, &[0, 0, 0, 99]);
        let p = parse(&bytes).unwrap().unwrap();
        assert_eq!(
            p.packet,
            StartupPacket::Cancel(CancelRequest {
                pid: 1234,
                key: &[0, 0, 0, 99]
            })
        );
        // Protocol 3.2 keys up to 256 bytes.
        let long = cancel_bytes(1, &[5; 256]);
        assert!(
            matches!(parse(&long).unwrap().unwrap().packet, StartupPacket::Cancel(c) if c.key.len() == 256)
        );
        assert_eq!(
            parse(&cancel_bytes(1, &[5; 257])),
            Err(StartupError::InvalidCancelLength(269))
        );
        assert_eq!(
            parse(&cancel_bytes(1, &[5; 3])),
            Err(StartupError::InvalidCancelLength(15))
        );
    }

    #[test]
    fn direct_tls_is_recognised_from_one_byte() {
        assert_eq!(
            parse(&[0x16]).unwrap().unwrap(),
            Parsed {
                packet: StartupPacket::DirectTls,
                len: 0
            }
        );
    }

    #[test]
    fn bad_lengths_are_refused_early() {
        // Oversized: refused from the first byte.
        assert!(matches!(parse(b"G"), Err(StartupError::InvalidLength(_))));
        assert!(matches!(
            parse(b"GET / HTTP/1.1\r\n"),
            Err(StartupError::InvalidLength(_))
        ));
        // Just above the limit, known after 4 bytes.
        assert_eq!(
            parse(&10_001u32.to_be_bytes()),
            Err(StartupError::InvalidLength(10_001))
        );
        assert!(parse(&10_000u32.to_be_bytes()).unwrap().is_none());
        for short in 0..8u32 {
            assert_eq!(
                parse(&short.to_be_bytes()),
                Err(StartupError::InvalidLength(short))
            );
        }
        // SSLRequest with a body.
        let mut ssl = 12u32.to_be_bytes().to_vec();
        ssl.extend_from_slice(&SSL_REQUEST_CODE.to_be_bytes());
        assert_eq!(parse(&ssl), Err(StartupError::InvalidLength(12)));
    }

    #[test]
    fn protocol_versions() {
        let mut v2 = startup_bytes(0, &[("user", "u")]);
        v2[4..8].copy_from_slice(&0x0002_0000u32.to_be_bytes());
        assert_eq!(
            parse(&v2),
            Err(StartupError::UnsupportedProtocol { major: 2, minor: 0 })
        );
        // An unknown negotiation code (1234.5681) is an unsupported protocol too.
        let other = code_packet(80_877_105);
        assert_eq!(
            parse(&other),
            Err(StartupError::UnsupportedProtocol {
                major: 1234,
                minor: 5681
            })
        );
        assert_eq!(
            StartupError::UnsupportedProtocol { major: 2, minor: 0 }.sqlstate(),
            "0A000"
        );
    }

    #[test]
    fn malformed_parameter_blocks() {
        let with_body = |body: &[u8]| {
            let mut out = ((body.len() + 8) as u32).to_be_bytes().to_vec();
            out.extend_from_slice(&0x0003_0000u32.to_be_bytes());
            out.extend_from_slice(body);
            out
        };
        // No terminator at all.
        assert_eq!(parse(&with_body(b"")), Err(StartupError::Layout));
        assert_eq!(
            parse(&with_body(b"user\0alice\0")),
            Err(StartupError::Layout)
        );
        // A name without a value.
        assert_eq!(parse(&with_body(b"user\0")), Err(StartupError::Layout));
        assert_eq!(
            parse(&with_body(b"user\0alice\0x\0")),
            Err(StartupError::Layout)
        );
        // An early terminator followed by more data.
        assert_eq!(
            parse(&with_body(b"user\0alice\0\0junk\0\0")),
            Err(StartupError::Layout)
        );
        // Well-formed but without a user.
        assert_eq!(
            parse(&with_body(b"database\0d\0\0")),
            Err(StartupError::NoUser)
        );
        assert_eq!(parse(&with_body(b"user\0\0\0")), Err(StartupError::NoUser));
        assert_eq!(parse(&with_body(b"\0")), Err(StartupError::NoUser));
        // Found by cargo-fuzz: the last `user` wins, and it is empty.
        assert_eq!(
            parse(&with_body(b"user\0a\0user\0\0\0")),
            Err(StartupError::NoUser)
        );
        assert!(parse(&with_body(b"user\0\0user\0a\0\0")).unwrap().is_some());
        assert_eq!(StartupError::NoUser.sqlstate(), "28000");
        assert_eq!(StartupError::Layout.sqlstate(), "08P01");
    }

    #[test]
    fn non_utf8_values_are_kept_as_bytes() {
        let mut bytes = startup_bytes(0, &[("user", "u"), ("application_name", "ab")]);
        let pos = bytes.len() - 3;
        bytes[pos] = 0xff;
        let StartupPacket::Startup(m) = parse(&bytes).unwrap().unwrap().packet else {
            panic!()
        };
        let (_, v) = m.params().nth(1).unwrap();
        assert_eq!(v, &[b'a', 0xff]);
        assert_eq!(m.get("application_name").as_deref(), Some("a\u{fffd}"));
    }
}
