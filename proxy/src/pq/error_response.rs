//! The ErrorResponse (`E`) the proxy sends on its own: refusals during the
//! startup phase (57P03, 08P01, …) and the FATAL 57P01 that ends a fenced
//! session. Always protocol 3 framing, severity in both `S` and `V`.

/// Severity of an ErrorResponse the proxy sends. Refusals and fencing are
/// always fatal: the proxy closes the connection right after.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Severity {
    Fatal,
}

impl Severity {
    fn as_str(self) -> &'static str {
        match self {
            Severity::Fatal => "FATAL",
        }
    }
}

/// An ErrorResponse to encode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ErrorResponse<'a> {
    pub(crate) severity: Severity,
    pub(crate) code: &'a str,
    pub(crate) message: &'a str,
    pub(crate) detail: Option<&'a str>,
    pub(crate) hint: Option<&'a str>,
}

impl<'a> ErrorResponse<'a> {
    pub(crate) fn fatal(code: &'a str, message: &'a str) -> Self {
        ErrorResponse {
            severity: Severity::Fatal,
            code,
            message,
            detail: None,
            hint: None,
        }
    }

    pub(crate) fn detail(mut self, detail: &'a str) -> Self {
        self.detail = Some(detail);
        self
    }

    pub(crate) fn hint(mut self, hint: &'a str) -> Self {
        self.hint = Some(hint);
        self
    }

    /// Append the encoded message to `out`. NUL bytes in the texts (which
    /// would end a field early) are replaced by spaces.
    pub(crate) fn encode_into(&self, out: &mut Vec<u8>) {
        let start = out.len();
        out.push(b'E');
        out.extend_from_slice(&[0; 4]);
        let mut field = |tag: u8, value: &str| {
            out.push(tag);
            out.extend(value.bytes().map(|b| if b == 0 { b' ' } else { b }));
            out.push(0);
        };
        field(b'S', self.severity.as_str());
        field(b'V', self.severity.as_str());
        field(b'C', self.code);
        field(b'M', self.message);
        if let Some(d) = self.detail {
            field(b'D', d);
        }
        if let Some(h) = self.hint {
            field(b'H', h);
        }
        out.push(0);
        let len = (out.len() - start - 1) as u32;
        out[start + 1..start + 5].copy_from_slice(&len.to_be_bytes());
    }

    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(64 + self.message.len());
        self.encode_into(&mut out);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::BytesMut;
    use pgwire::messages::{DecodeContext, Message, ProtocolVersion};

    #[test]
    fn encoding_matches_an_independent_decoder() {
        let e = ErrorResponse::fatal("57P03", "no primary")
            .detail("the monitor reports a failover in progress")
            .hint("retry in a few seconds");
        let bytes = e.encode();
        let mut buf = BytesMut::from(&bytes[..]);
        let ctx = DecodeContext::new(ProtocolVersion::PROTOCOL3_0);
        let decoded = pgwire::messages::response::ErrorResponse::decode(&mut buf, &ctx)
            .unwrap()
            .unwrap();
        assert!(buf.is_empty());
        let fields: Vec<(u8, String)> = decoded.fields.clone();
        assert_eq!(
            fields,
            vec![
                (b'S', "FATAL".into()),
                (b'V', "FATAL".into()),
                (b'C', "57P03".into()),
                (b'M', "no primary".into()),
                (b'D', "the monitor reports a failover in progress".into()),
                (b'H', "retry in a few seconds".into()),
            ]
        );
    }

    #[test]
    fn nul_bytes_cannot_break_framing() {
        let bytes = ErrorResponse::fatal("08P01", "a\0b").encode();
        assert_eq!(&bytes[bytes.len() - 5..], b"a b\0\0");
        let len = u32::from_be_bytes([bytes[1], bytes[2], bytes[3], bytes[4]]) as usize;
        assert_eq!(len + 1, bytes.len());
    }
}
