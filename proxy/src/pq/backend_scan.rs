//! Two tiny observers of the backend→client byte stream, both sans-I/O and
//! fed with whatever chunks the relay happens to read.
//!
//! * [`StartupScanner`] follows message framing (1-byte tag, 4-byte length)
//!   only during the startup phase of a plaintext session, picks up
//!   BackendKeyData (`K`, for cancel routing) and stops at the first
//!   ReadyForQuery (`Z`) or ErrorResponse (`E`). After that the relay never
//!   looks at message boundaries again.
//! * [`ReadyTail`] remembers the last 6 bytes the backend sent, so that the
//!   proxy can tell whether the session was idle at a message boundary
//!   (last message = ReadyForQuery) when it has to end it, and it is safe
//!   to append a FATAL ErrorResponse. It costs a copy of ≤ 6 bytes per
//!   chunk and is consulted only when the session is fenced.

use super::startup::MAX_CANCEL_KEY_LEN;

/// Stop scanning after this many bytes even without ReadyForQuery
/// (authentication exchanges are a few hundred bytes; a GSSAPI token or a
/// long ParameterStatus list stays far below).
const SCAN_LIMIT: u64 = 256 * 1024;

/// A backend's cancel key, as sent in BackendKeyData.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct BackendKey {
    pub(crate) pid: u32,
    pub(crate) key: Vec<u8>,
}

/// How the startup phase ended, once it has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ScanEnd {
    /// ReadyForQuery: the session is established.
    Ready,
    /// ErrorResponse: the backend refused the client.
    Error,
    /// The stream did not look like protocol 3 framing, or was too long.
    GaveUp,
}

/// Follows backend message framing until the session is ready.
#[derive(Debug, Default)]
pub(crate) struct StartupScanner {
    /// Header bytes of the current message collected so far.
    header: [u8; 5],
    header_len: usize,
    /// Body bytes still to skip (or collect) for the current message.
    remaining: usize,
    /// Collected body of a BackendKeyData message.
    key_body: Vec<u8>,
    collecting_key: bool,
    seen: u64,
    key: Option<BackendKey>,
    end: Option<ScanEnd>,
}

impl StartupScanner {
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// The scan has ended; the caller can stop feeding.
    pub(crate) fn end(&self) -> Option<ScanEnd> {
        self.end
    }

    /// The BackendKeyData seen so far, if any.
    pub(crate) fn take_key(&mut self) -> Option<BackendKey> {
        self.key.take()
    }

    /// Feed the next chunk of backend bytes.
    pub(crate) fn feed(&mut self, mut chunk: &[u8]) {
        if self.end.is_some() {
            return;
        }
        self.seen += chunk.len() as u64;
        while !chunk.is_empty() {
            if self.remaining > 0 {
                let n = self.remaining.min(chunk.len());
                if self.collecting_key {
                    self.key_body.extend_from_slice(&chunk[..n]);
                }
                self.remaining -= n;
                chunk = &chunk[n..];
                if self.remaining == 0 {
                    self.finish_body();
                }
                continue;
            }
            // Collect a header.
            let n = (5 - self.header_len).min(chunk.len());
            self.header[self.header_len..self.header_len + n].copy_from_slice(&chunk[..n]);
            self.header_len += n;
            chunk = &chunk[n..];
            if self.header_len < 5 {
                break;
            }
            self.header_len = 0;
            let tag = self.header[0];
            let len = u32::from_be_bytes([
                self.header[1],
                self.header[2],
                self.header[3],
                self.header[4],
            ]) as usize;
            if len < 4 {
                self.end = Some(ScanEnd::GaveUp);
                return;
            }
            match tag {
                b'Z' => {
                    self.end = Some(ScanEnd::Ready);
                    return;
                }
                b'E' => {
                    self.end = Some(ScanEnd::Error);
                    return;
                }
                b'K' => {
                    let body = len - 4;
                    self.collecting_key = (8..=4 + MAX_CANCEL_KEY_LEN).contains(&body);
                    self.key_body.clear();
                    self.remaining = body;
                }
                _ => self.remaining = len - 4,
            }
            if self.remaining == 0 {
                self.finish_body();
            }
        }
        if self.end.is_none() && self.seen > SCAN_LIMIT {
            self.end = Some(ScanEnd::GaveUp);
        }
    }

    fn finish_body(&mut self) {
        if self.collecting_key {
            self.collecting_key = false;
            let b = &self.key_body;
            self.key = Some(BackendKey {
                pid: u32::from_be_bytes([b[0], b[1], b[2], b[3]]),
                key: b[4..].to_vec(),
            });
        }
    }
}

/// The last bytes the backend sent, to recognise an idle session.
#[derive(Debug, Default, Clone)]
pub(crate) struct ReadyTail {
    bytes: [u8; 6],
    len: usize,
}

impl ReadyTail {
    /// Remember the end of `chunk`.
    #[inline]
    pub(crate) fn update(&mut self, chunk: &[u8]) {
        if chunk.len() >= 6 {
            self.bytes.copy_from_slice(&chunk[chunk.len() - 6..]);
            self.len = 6;
        } else {
            let keep = (6 - chunk.len()).min(self.len);
            self.bytes.copy_within(self.len - keep..self.len, 0);
            self.bytes[keep..keep + chunk.len()].copy_from_slice(chunk);
            self.len = keep + chunk.len();
        }
    }

    /// The last message the backend sent was ReadyForQuery, so the client
    /// is at a message boundary.
    pub(crate) fn ends_with_ready_for_query(&self) -> bool {
        self.len == 6
            && self.bytes[..5] == [b'Z', 0, 0, 0, 5]
            && matches!(self.bytes[5], b'I' | b'T' | b'E')
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(tag: u8, body: &[u8]) -> Vec<u8> {
        let mut out = vec![tag];
        out.extend_from_slice(&((body.len() + 4) as u32).to_be_bytes());
        out.extend_from_slice(body);
        out
    }

    fn login_stream(key: &[u8]) -> Vec<u8> {
        let mut s = Vec::new();
        s.extend(msg(b'R', &0u32.to_be_bytes()));
        s.extend(msg(b'S', b"server_version\x0015.4\0"));
        let mut k = 4242u32.to_be_bytes().to_vec();
        k.extend_from_slice(key);
        s.extend(msg(b'K', &k));
        s.extend(msg(b'Z', b"I"));
        s
    }

    #[test]
    fn finds_the_key_at_every_split() {
        for key in [&[1u8, 2, 3, 4][..], &[9u8; 32][..]] {
            let stream = login_stream(key);
            for cut in 0..=stream.len() {
                let mut s = StartupScanner::new();
                s.feed(&stream[..cut]);
                s.feed(&stream[cut..]);
                assert_eq!(s.end(), Some(ScanEnd::Ready), "cut {cut}");
                assert_eq!(
                    s.take_key(),
                    Some(BackendKey {
                        pid: 4242,
                        key: key.to_vec()
                    })
                );
            }
            // Byte by byte.
            let mut s = StartupScanner::new();
            for b in &stream {
                s.feed(std::slice::from_ref(b));
            }
            assert_eq!(s.end(), Some(ScanEnd::Ready));
            assert!(s.take_key().is_some());
        }
    }

    #[test]
    fn stops_at_error_and_on_garbage() {
        let mut s = StartupScanner::new();
        s.feed(&msg(b'E', b"SFATAL\0\0"));
        assert_eq!(s.end(), Some(ScanEnd::Error));
        let mut s = StartupScanner::new();
        s.feed(&[b'R', 0, 0, 0, 2]);
        assert_eq!(s.end(), Some(ScanEnd::GaveUp));
        // A K message with an absurd key length is skipped, not collected.
        let mut s = StartupScanner::new();
        s.feed(&msg(b'K', &[0; 400]));
        s.feed(&msg(b'Z', b"I"));
        assert_eq!(s.end(), Some(ScanEnd::Ready));
        assert_eq!(s.take_key(), None);
    }

    #[test]
    fn gives_up_after_the_limit() {
        let mut s = StartupScanner::new();
        let big = msg(b'N', &vec![b'x'; SCAN_LIMIT as usize]);
        s.feed(&big);
        assert_eq!(s.end(), Some(ScanEnd::GaveUp));
    }

    #[test]
    fn ready_tail_across_chunks() {
        let mut stream = msg(b'C', b"SELECT 1\0");
        stream.extend(msg(b'Z', b"T"));
        for cut in 0..=stream.len() {
            let mut t = ReadyTail::default();
            t.update(&stream[..cut]);
            t.update(&stream[cut..]);
            assert!(t.ends_with_ready_for_query(), "cut {cut}");
        }
        let mut t = ReadyTail::default();
        for b in &stream {
            t.update(std::slice::from_ref(b));
        }
        assert!(t.ends_with_ready_for_query());
        t.update(b"D");
        assert!(!t.ends_with_ready_for_query());
        assert!(!ReadyTail::default().ends_with_ready_for_query());
    }
}
