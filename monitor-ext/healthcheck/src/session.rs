//! One connection attempt of a health check: send a StartupMessage, answer
//! the authentication request (trust, cleartext, MD5 or SCRAM-SHA-256), and
//! succeed on `ReadyForQuery`. Sans-I/O: the caller writes
//! [`Session::take_output`] to the socket and feeds what it reads to
//! [`Session::received`].

use bytes::BytesMut;
use fallible_iterator::FallibleIterator;
use postgres_protocol::authentication::md5_hash;
use postgres_protocol::authentication::sasl::{ChannelBinding, ScramSha256, SCRAM_SHA_256};
use postgres_protocol::message::backend::Message;
use postgres_protocol::message::frontend;

/// Where an attempt stands after some input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Progress {
    /// Keep reading (and write [`Session::take_output`] first).
    Pending,
    /// The server accepted the login and is ready for queries: healthy.
    Ready,
    /// The server refused us or spoke gibberish: this attempt failed.
    Failed(String),
}

/// The startup and authentication exchange of one connection.
pub struct Session {
    user: String,
    password: String,
    input: BytesMut,
    output: BytesMut,
    scram: Option<ScramSha256>,
    done: Option<Progress>,
}

impl Session {
    /// A new attempt; the StartupMessage is already queued for output.
    pub fn new(user: &str, database: &str, password: &str) -> Session {
        let mut output = BytesMut::new();
        let params = [
            ("user", user),
            ("database", database),
            ("application_name", "pg_auto_failover health check worker"),
        ];
        // Writing into a BytesMut only fails on a NUL inside a parameter.
        let startup = frontend::startup_message(params.iter().copied(), &mut output);
        let done = startup
            .err()
            .map(|e| Progress::Failed(format!("startup message: {e}")));
        Session {
            user: user.to_string(),
            password: password.to_string(),
            input: BytesMut::new(),
            output,
            scram: None,
            done,
        }
    }

    /// Bytes to write to the socket, emptied by this call.
    pub fn take_output(&mut self) -> Vec<u8> {
        self.output.split().to_vec()
    }

    /// Whether there is something to write.
    pub fn wants_write(&self) -> bool {
        !self.output.is_empty()
    }

    /// Feed bytes read from the socket.
    pub fn received(&mut self, bytes: &[u8]) -> Progress {
        if let Some(done) = &self.done {
            return done.clone();
        }
        self.input.extend_from_slice(bytes);
        loop {
            let message = match Message::parse(&mut self.input) {
                Ok(Some(m)) => m,
                Ok(None) => return Progress::Pending,
                Err(e) => return self.finish(Progress::Failed(format!("invalid message: {e}"))),
            };
            match self.handle(message) {
                Progress::Pending => continue,
                other => return self.finish(other),
            }
        }
    }

    /// The server closed the connection.
    pub fn closed(&mut self) -> Progress {
        let done = self
            .done
            .clone()
            .unwrap_or(Progress::Failed("connection closed".to_string()));
        self.finish(done)
    }

    fn finish(&mut self, p: Progress) -> Progress {
        self.done = Some(p.clone());
        p
    }

    fn handle(&mut self, message: Message) -> Progress {
        match message {
            Message::AuthenticationOk => Progress::Pending,
            Message::AuthenticationCleartextPassword => {
                self.send_password(self.password.clone().into_bytes())
            }
            Message::AuthenticationMd5Password(body) => {
                let hash = md5_hash(self.user.as_bytes(), self.password.as_bytes(), body.salt());
                self.send_password(hash.into_bytes())
            }
            Message::AuthenticationSasl(body) => {
                let mut mechanisms = body.mechanisms();
                let mut scram_offered = false;
                while let Ok(Some(m)) = fallible_next(&mut mechanisms) {
                    scram_offered |= m == SCRAM_SHA_256;
                }
                if !scram_offered {
                    return Progress::Failed("no supported SASL mechanism".to_string());
                }
                let scram =
                    ScramSha256::new(self.password.as_bytes(), ChannelBinding::unsupported());
                let sent = frontend::sasl_initial_response(
                    SCRAM_SHA_256,
                    scram.message(),
                    &mut self.output,
                );
                self.scram = Some(scram);
                match sent {
                    Ok(()) => Progress::Pending,
                    Err(e) => Progress::Failed(format!("SASL: {e}")),
                }
            }
            Message::AuthenticationSaslContinue(body) => {
                let Some(scram) = self.scram.as_mut() else {
                    return Progress::Failed("unexpected SASL continuation".to_string());
                };
                if let Err(e) = scram.update(body.data()) {
                    return Progress::Failed(format!("SCRAM: {e}"));
                }
                match frontend::sasl_response(scram.message(), &mut self.output) {
                    Ok(()) => Progress::Pending,
                    Err(e) => Progress::Failed(format!("SASL: {e}")),
                }
            }
            Message::AuthenticationSaslFinal(body) => {
                let Some(scram) = self.scram.as_mut() else {
                    return Progress::Failed("unexpected SASL final message".to_string());
                };
                match scram.finish(body.data()) {
                    Ok(()) => Progress::Pending,
                    Err(e) => Progress::Failed(format!("SCRAM: {e}")),
                }
            }
            Message::ReadyForQuery(_) => Progress::Ready,
            Message::ErrorResponse(body) => {
                let mut text = String::from("server error");
                let mut fields = body.fields();
                while let Ok(Some(f)) = fallible_next(&mut fields) {
                    if f.type_() == b'C' || f.type_() == b'M' {
                        text.push(' ');
                        text.push_str(&String::from_utf8_lossy(f.value_bytes()));
                    }
                }
                Progress::Failed(text)
            }
            Message::AuthenticationKerberosV5
            | Message::AuthenticationScmCredential
            | Message::AuthenticationGss
            | Message::AuthenticationSspi
            | Message::AuthenticationGssContinue(_) => {
                Progress::Failed("unsupported authentication method".to_string())
            }
            // ParameterStatus, BackendKeyData, NoticeResponse, ...
            _ => Progress::Pending,
        }
    }

    fn send_password(&mut self, password: Vec<u8>) -> Progress {
        match frontend::password_message(&password, &mut self.output) {
            Ok(()) => Progress::Pending,
            Err(e) => Progress::Failed(format!("password message: {e}")),
        }
    }
}

/// `FallibleIterator::next`, named so that it does not read as `Iterator::next`.
fn fallible_next<I: FallibleIterator>(it: &mut I) -> Result<Option<I::Item>, I::Error> {
    it.next()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(tag: u8, body: &[u8]) -> Vec<u8> {
        let mut v = vec![tag];
        v.extend_from_slice(&((body.len() + 4) as i32).to_be_bytes());
        v.extend_from_slice(body);
        v
    }

    fn auth(code: i32, extra: &[u8]) -> Vec<u8> {
        let mut body = code.to_be_bytes().to_vec();
        body.extend_from_slice(extra);
        msg(b'R', &body)
    }

    #[test]
    fn startup_message_names_user_and_database() {
        let mut s = Session::new("pgautofailover_monitor", "postgres", "pw");
        let out = s.take_output();
        let text = String::from_utf8_lossy(&out);
        assert!(text.contains("user\0pgautofailover_monitor\0"));
        assert!(text.contains("database\0postgres\0"));
        assert_eq!(&out[4..8], &196608i32.to_be_bytes(), "protocol 3.0");
        assert!(!s.wants_write());
    }

    #[test]
    fn trust_login_is_ready_at_ready_for_query() {
        let mut s = Session::new("u", "d", "p");
        s.take_output();
        assert_eq!(s.received(&auth(0, b"")), Progress::Pending);
        let mut rest = msg(b'S', b"server_version\x0015.0\x00");
        rest.extend(msg(b'K', &[0, 0, 0, 1, 0, 0, 0, 2]));
        // Split a message across two reads.
        let rfq = msg(b'Z', b"I");
        rest.extend_from_slice(&rfq[..3]);
        assert_eq!(s.received(&rest), Progress::Pending);
        assert_eq!(s.received(&rfq[3..]), Progress::Ready);
    }

    #[test]
    fn cleartext_and_md5_send_the_password() {
        let mut s = Session::new("u", "d", "secret");
        s.take_output();
        assert_eq!(s.received(&auth(3, b"")), Progress::Pending);
        let out = s.take_output();
        assert_eq!(out[0], b'p');
        assert!(String::from_utf8_lossy(&out).contains("secret"));

        let mut s = Session::new("u", "d", "secret");
        s.take_output();
        assert_eq!(s.received(&auth(5, &[1, 2, 3, 4])), Progress::Pending);
        let out = s.take_output();
        let expected = md5_hash(b"u", b"secret", [1, 2, 3, 4]);
        assert!(String::from_utf8_lossy(&out).contains(&expected));
    }

    #[test]
    fn scram_starts_with_a_client_first_message() {
        let mut s = Session::new("u", "d", "secret");
        s.take_output();
        let p = s.received(&auth(10, b"SCRAM-SHA-256\0\0"));
        assert_eq!(p, Progress::Pending);
        let out = s.take_output();
        assert_eq!(out[0], b'p');
        assert!(String::from_utf8_lossy(&out).contains("SCRAM-SHA-256"));
        // A server nonce that does not extend ours is refused.
        let bad = auth(11, b"r=nope,s=c2FsdA==,i=4096");
        assert!(matches!(s.received(&bad), Progress::Failed(_)));
    }

    #[test]
    fn errors_and_garbage_fail_the_attempt() {
        let mut s = Session::new("u", "d", "p");
        let err = msg(
            b'E',
            b"SFATAL\0C57P03\0Mthe database system is starting up\0\0",
        );
        match s.received(&err) {
            Progress::Failed(t) => assert!(t.contains("57P03"), "{t}"),
            other => panic!("{other:?}"),
        }
        let mut s = Session::new("u", "d", "p");
        assert!(matches!(
            s.received(&[b'R', 0, 0, 0, 1]),
            Progress::Failed(_)
        ));
        let mut s = Session::new("u", "d", "p");
        assert!(
            matches!(s.received(&auth(2, b"")), Progress::Failed(_)),
            "kerberos"
        );
        let mut s = Session::new("u", "d", "p");
        assert!(matches!(s.closed(), Progress::Failed(_)));
    }
}
