//! Bounded structured fuzzing of the startup-packet parser, runnable with
//! plain `cargo test` on the stable toolchain (no sanitizers, no nightly).
//!
//! Each case starts from a valid or hostile packet (StartupMessage with
//! random parameters, SSLRequest, GSSENCRequest, CancelRequest with 4..256
//! byte keys, direct TLS, HTTP, random bytes) and applies random mutations
//! (byte flips, truncation, extension, length-field rewrites at the
//! boundaries, NUL insertion/removal). Checked on every case:
//! * the parser never panics and keeps its invariants
//!   (`proxy::fuzzing::startup_packet`);
//! * every packet it accepts is decoded the same way by the independent
//!   `pgwire` implementation (differential oracle);
//! * the backend scanner never panics on the same bytes at any split.
//!
//! `PGAF_FUZZ_ITERS` (default 20000) and `PGAF_FUZZ_SEED` control the run;
//! a failure prints the seed and the case number to replay it.

use bytes::BytesMut;
use pgwire::messages::startup::SecretKey;
use pgwire::messages::{
    DecodeContext, PgWireFrontendMessage, ProtocolVersion, SslNegotiationMetaMessage,
};
use proxy::fuzzing::{classify, Classified};

/// xorshift64*: small, deterministic, good enough to drive mutations.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
    fn some_bytes(&mut self, max: usize) -> Vec<u8> {
        let n = self.below(max);
        self.bytes(n)
    }
    fn ident(&mut self) -> Vec<u8> {
        let pool: &[u8] = b"abcdefghijklmnopqrstuvwxyz_";
        (0..1 + self.below(12))
            .map(|_| pool[self.below(pool.len())])
            .collect()
    }
}

fn framed(code: u32, body: &[u8]) -> Vec<u8> {
    let mut out = ((body.len() + 8) as u32).to_be_bytes().to_vec();
    out.extend_from_slice(&code.to_be_bytes());
    out.extend_from_slice(body);
    out
}

fn base_case(r: &mut Rng) -> Vec<u8> {
    match r.below(8) {
        0..=2 => {
            let mut body = Vec::new();
            let n = r.below(6);
            let user_at = r.below(n + 1);
            for i in 0..=n {
                let (k, v) = if i == user_at {
                    (b"user".to_vec(), r.ident())
                } else {
                    let k = match r.below(4) {
                        0 => b"database".to_vec(),
                        1 => b"options".to_vec(),
                        2 => b"_pq_.x".to_vec(),
                        _ => r.ident(),
                    };
                    let v = if r.below(4) == 0 {
                        r.some_bytes(20)
                            .into_iter()
                            .map(|b| if b == 0 { 1 } else { b })
                            .collect()
                    } else {
                        r.ident()
                    };
                    (k, v)
                };
                body.extend_from_slice(&k);
                body.push(0);
                body.extend_from_slice(&v);
                body.push(0);
            }
            body.push(0);
            framed(0x0003_0000 | r.below(3) as u32, &body)
        }
        3 => framed(80_877_103, &[]),
        4 => framed(80_877_104, &[]),
        5 => {
            let key_len = if r.below(2) == 0 { 4 } else { 4 + r.below(253) };
            let mut body = (r.next() as u32).to_be_bytes().to_vec();
            body.extend(r.bytes(key_len));
            framed(80_877_102, &body)
        }
        6 => {
            let mut v = vec![0x16, 3, 1];
            v.extend(r.some_bytes(64));
            v
        }
        _ => {
            if r.below(2) == 0 {
                b"GET /metrics HTTP/1.1\r\n\r\n".to_vec()
            } else {
                r.some_bytes(64)
            }
        }
    }
}

fn mutate(r: &mut Rng, mut v: Vec<u8>) -> Vec<u8> {
    for _ in 0..r.below(4) {
        match r.below(8) {
            0 if !v.is_empty() => {
                let i = r.below(v.len());
                v[i] ^= 1 << r.below(8);
            }
            1 => v.truncate(r.below(v.len() + 1)),
            2 => {
                let extra = r.some_bytes(32);
                v.extend(extra);
            }
            3 if v.len() >= 4 => {
                let len: u32 = match r.below(8) {
                    0 => 7,
                    1 => 8,
                    2 => 9,
                    3 => 10_000,
                    4 => 10_001,
                    5 => u32::MAX,
                    6 => v.len() as u32,
                    _ => r.next() as u32 % 12_000,
                };
                v[..4].copy_from_slice(&len.to_be_bytes());
            }
            4 if !v.is_empty() => {
                let i = r.below(v.len());
                v.insert(i, 0);
            }
            5 => {
                if let Some(i) = v.iter().rposition(|&b| b == 0) {
                    v.remove(i);
                }
            }
            6 if v.len() > 9 => {
                // Insert a (possibly empty) duplicate parameter.
                let at = 8 + r.below(v.len() - 8);
                let dup: &[u8] = if r.below(2) == 0 {
                    b"user\0\0"
                } else {
                    b"user\0x\0"
                };
                v.splice(at..at, dup.iter().copied());
                if r.below(2) == 0 {
                    let len = v.len() as u32;
                    v[..4].copy_from_slice(&len.to_be_bytes());
                }
            }
            _ => {}
        }
    }
    v
}

/// pgwire must decode every packet we accept the same way.
fn differential(data: &[u8], ours: &Classified) {
    let decode = |proto| {
        let mut buf = BytesMut::from(data);
        let mut ctx = DecodeContext::new(proto);
        let first = PgWireFrontendMessage::decode(&mut buf, &ctx);
        match first {
            Ok(Some(PgWireFrontendMessage::SslNegotiation(SslNegotiationMetaMessage::None))) => {
                ctx.awaiting_frontend_ssl = false;
                PgWireFrontendMessage::decode(&mut buf, &ctx)
            }
            other => other,
        }
    };
    match ours {
        Classified::SslRequest => assert!(matches!(
            decode(ProtocolVersion::PROTOCOL3_0),
            Ok(Some(PgWireFrontendMessage::SslNegotiation(
                SslNegotiationMetaMessage::PostgresSsl(_)
            )))
        )),
        Classified::GssEncRequest => assert!(matches!(
            decode(ProtocolVersion::PROTOCOL3_0),
            Ok(Some(PgWireFrontendMessage::SslNegotiation(
                SslNegotiationMetaMessage::PostgresGss(_)
            )))
        )),
        Classified::Cancel { pid, key } if key.len() == 4 => {
            match decode(ProtocolVersion::PROTOCOL3_0) {
                Ok(Some(PgWireFrontendMessage::CancelRequest(c))) => {
                    assert_eq!(c.pid as u32, *pid);
                    assert!(c.secret_key.eq_value(&SecretKey::I32(i32::from_be_bytes([
                        key[0], key[1], key[2], key[3]
                    ]))));
                }
                other => panic!("pgwire disagrees on a cancel: {other:?}"),
            }
        }
        Classified::Startup { minor, len, params } => {
            // pgwire decodes parameters lossily into a map: compare the
            // user and the protocol version, on the packet alone.
            let mut buf = BytesMut::from(&data[..*len]);
            let ctx = {
                let mut c = DecodeContext::new(ProtocolVersion::PROTOCOL3_0);
                c.awaiting_frontend_ssl = false;
                c
            };
            match PgWireFrontendMessage::decode(&mut buf, &ctx) {
                Ok(Some(PgWireFrontendMessage::Startup(s))) => {
                    assert_eq!(s.protocol_number_major, 3);
                    assert_eq!(s.protocol_number_minor, *minor);
                    let user = params
                        .iter()
                        .rev()
                        .find(|(k, _)| k == b"user")
                        .map(|(_, v)| String::from_utf8_lossy(v).into_owned());
                    assert_eq!(s.parameters.get("user").cloned(), user);
                }
                other => panic!("pgwire disagrees on a startup message: {other:?}"),
            }
        }
        _ => {}
    }
}

#[test]
fn startup_parser_survives_structured_fuzzing() {
    let iters: usize = std::env::var("PGAF_FUZZ_ITERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000);
    let seed: u64 = std::env::var("PGAF_FUZZ_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |d| d.as_nanos() as u64)
                | 1
        });
    eprintln!("startup fuzz: PGAF_FUZZ_SEED={seed} PGAF_FUZZ_ITERS={iters}");
    let mut r = Rng(seed);
    let mut seen = [0usize; 7];
    for case in 0..iters {
        let base = base_case(&mut r);
        let data = mutate(&mut r, base);
        let result = std::panic::catch_unwind(|| {
            proxy::fuzzing::startup_packet(&data);
            let ours = classify(&data);
            differential(&data, &ours);
            proxy::fuzzing::backend_scan(&data, data.len() / 2);
            ours
        });
        match result {
            Ok(c) => {
                seen[match c {
                    Classified::Incomplete => 0,
                    Classified::Refused { .. } => 1,
                    Classified::SslRequest | Classified::GssEncRequest => 2,
                    Classified::DirectTls => 3,
                    Classified::Cancel { .. } => 4,
                    Classified::Startup { .. } => 5,
                }] += 1
            }
            Err(_) => panic!("case {case} with PGAF_FUZZ_SEED={seed}: input {data:?}"),
        }
        seen[6] += 1;
    }
    eprintln!(
        "startup fuzz: incomplete/refused/ssl-gss/tls/cancel/startup = {:?}",
        &seen[..6]
    );
    // The generator must keep exercising every outcome.
    if iters >= 5_000 {
        assert!(seen[..6].iter().all(|&n| n > 0), "{seen:?}");
    }
}

#[test]
fn known_regressions() {
    // The input cargo-fuzz reduced the duplicate-user bug from.
    let crash: &[u8] = &[
        0, 0, 0, 152, 0, 3, 0, 46, 93, 21, 0, 250, 0, 75, 248, 255, 255, 0, 37, 0, 117, 115, 101,
        114, 0, 42, 240, 0, 37, 0, 3, 0, 255, 255, 255, 255, 255, 0, 250, 0, 75, 248, 255, 255, 0,
        37, 0, 117, 115, 101, 114, 0, 42, 240, 0, 46, 93, 21, 0, 250, 0, 75, 248, 255, 255, 0, 37,
        0, 117, 115, 101, 114, 0, 42, 240, 0, 37, 0, 3, 0, 255, 255, 255, 255, 255, 0, 250, 0, 75,
        248, 255, 255, 0, 37, 0, 117, 115, 101, 114, 0, 0, 240, 37, 42, 0, 250, 0, 75, 248, 255,
        255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255,
        255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 46, 2, 255, 11, 39, 192, 255,
        8, 0, 5, 0, 0,
    ];
    for data in [
        crash,
        &[][..],
        &[0x16],
        &[0, 0, 0, 8, 4, 210, 22, 47],        // SSLRequest
        &[0, 0, 0, 16, 4, 210, 22, 46, 0, 0], // truncated cancel
        &[0, 0, 39, 16],                      // exactly the cap, incomplete
        &[0, 0, 0, 9, 0, 3, 0, 0, 0],         // terminator only: no user
        &[255, 255, 255, 255, 0, 3, 0, 0],
        // cargo-fuzz: duplicate `user`, the last one empty.
        b"\0\0\0\x16\0\x03\0\0user\0a\0user\0\0\0",
    ] {
        proxy::fuzzing::startup_packet(data);
        proxy::fuzzing::backend_scan(data, 1);
    }
    assert!(matches!(
        classify(b"\0\0\0\x16\0\x03\0\0user\0a\0user\0\0\0"),
        Classified::Refused { sqlstate: "28000" }
    ));
}
