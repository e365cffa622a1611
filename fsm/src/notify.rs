//! The payload of a `state` notification, byte for byte as upstream writes
//! it, and its parser for clients (keeper, proxy,
//! `pg_autoctl watch`).

use crate::node::{Health, Node};
use crate::state::NodeState;

/// JSON string escaping as upstream's `escape_json`.
fn escape(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}

/// The `state` channel payload for `node` of formation `formation`.
pub fn state_payload(formation: &str, node: &Node) -> String {
    let mut s = String::with_capacity(256);
    s.push_str("{\"type\": \"state\", \"formation\": ");
    escape(formation, &mut s);
    s.push_str(&format!(
        ", \"groupId\": {}, \"nodeId\": {}, \"name\": ",
        node.group_id, node.id
    ));
    escape(&node.name, &mut s);
    s.push_str(", \"host\": ");
    escape(&node.host, &mut s);
    s.push_str(&format!(
        ", \"port\": {}, \"reportedState\": \"{}\", \"goalState\": \"{}\", \"health\":\"{}\"}}",
        node.port,
        node.reported,
        node.goal,
        node.health.as_str()
    ));
    s
}

/// A parsed `state` notification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateNotification {
    pub formation: String,
    pub group_id: i32,
    pub node_id: i64,
    pub name: String,
    pub host: String,
    pub port: i32,
    pub reported: NodeState,
    pub goal: NodeState,
    pub health: Health,
}

/// Parse a `state` payload (ours or upstream's). Returns `None` for anything
/// else; a client then simply re-reads the monitor.
pub fn parse_state_payload(payload: &str) -> Option<StateNotification> {
    let mut p = Parser {
        s: payload.as_bytes(),
        i: 0,
    };
    let mut fields: Vec<(String, Value)> = Vec::new();
    p.ws();
    p.eat(b'{')?;
    loop {
        p.ws();
        let key = p.string()?;
        p.ws();
        p.eat(b':')?;
        p.ws();
        let value = if p.peek()? == b'"' {
            Value::Str(p.string()?)
        } else {
            Value::Num(p.number()?)
        };
        fields.push((key, value));
        p.ws();
        match p.peek()? {
            b',' => p.i += 1,
            b'}' => break,
            _ => return None,
        }
    }
    let get = |k: &str| fields.iter().find(|(key, _)| key == k).map(|(_, v)| v);
    let s = |k: &str| match get(k) {
        Some(Value::Str(v)) => Some(v.clone()),
        _ => None,
    };
    let n = |k: &str| match get(k) {
        Some(Value::Num(v)) => Some(*v),
        _ => None,
    };
    if s("type")? != "state" {
        return None;
    }
    let health = match s("health")?.as_str() {
        "unknown" => Health::Unknown,
        "bad" => Health::Bad,
        "good" => Health::Good,
        _ => return None,
    };
    Some(StateNotification {
        formation: s("formation")?,
        group_id: i32::try_from(n("groupId")?).ok()?,
        node_id: n("nodeId")?,
        name: s("name")?,
        host: s("host")?,
        port: i32::try_from(n("port")?).ok()?,
        reported: s("reportedState")?.parse().ok()?,
        goal: s("goalState")?.parse().ok()?,
        health,
    })
}

enum Value {
    Str(String),
    Num(i64),
}

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }
    fn ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\n' | b'\t' | b'\r')) {
            self.i += 1;
        }
    }
    fn eat(&mut self, c: u8) -> Option<()> {
        (self.peek()? == c).then(|| self.i += 1)
    }
    fn number(&mut self) -> Option<i64> {
        let start = self.i;
        if self.peek() == Some(b'-') {
            self.i += 1;
        }
        while self.peek().is_some_and(|c| c.is_ascii_digit()) {
            self.i += 1;
        }
        std::str::from_utf8(&self.s[start..self.i])
            .ok()?
            .parse()
            .ok()
    }
    fn string(&mut self) -> Option<String> {
        self.eat(b'"')?;
        let mut out = Vec::new();
        loop {
            let c = self.peek()?;
            self.i += 1;
            match c {
                b'"' => break,
                b'\\' => {
                    let e = self.peek()?;
                    self.i += 1;
                    match e {
                        b'"' => out.push(b'"'),
                        b'\\' => out.push(b'\\'),
                        b'/' => out.push(b'/'),
                        b'n' => out.push(b'\n'),
                        b'r' => out.push(b'\r'),
                        b't' => out.push(b'\t'),
                        b'b' => out.push(8),
                        b'f' => out.push(12),
                        b'u' => {
                            let hex = std::str::from_utf8(self.s.get(self.i..self.i + 4)?).ok()?;
                            let code = u32::from_str_radix(hex, 16).ok()?;
                            self.i += 4;
                            let ch = char::from_u32(code)?;
                            let mut buf = [0u8; 4];
                            out.extend_from_slice(ch.encode_utf8(&mut buf).as_bytes());
                        }
                        _ => return None,
                    }
                }
                c => out.push(c),
            }
        }
        String::from_utf8(out).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payload_is_byte_compatible_with_upstream() {
        let mut n = Node::new(2, "nodeB", "127.0.0.1", 6011, 0);
        n.reported = NodeState::Primary;
        n.goal = NodeState::Draining;
        n.health = Health::Good;
        // Verbatim from upstream 2.0's monitor.
        assert_eq!(
            state_payload("default", &n),
            r#"{"type": "state", "formation": "default", "groupId": 0, "nodeId": 2, "name": "nodeB", "host": "127.0.0.1", "port": 6011, "reportedState": "primary", "goalState": "draining", "health":"good"}"#
        );
        let parsed = parse_state_payload(&state_payload("default", &n)).unwrap();
        assert_eq!(parsed.node_id, 2);
        assert_eq!(parsed.goal, NodeState::Draining);
        assert_eq!(parsed.health, Health::Good);
    }

    #[test]
    fn escaping_round_trips() {
        let mut n = Node::new(7, "we\"ird\\name\n", "h", 1, 0);
        n.health = Health::Unknown;
        let payload = state_payload("f\"o", &n);
        let parsed = parse_state_payload(&payload).unwrap();
        assert_eq!(parsed.name, "we\"ird\\name\n");
        assert_eq!(parsed.formation, "f\"o");
    }

    #[test]
    fn garbage_is_rejected_without_panic() {
        for bad in [
            "",
            "{",
            "{}",
            "not json",
            r#"{"type": "log"}"#,
            r#"{"type": "state", "formation": "default"}"#,
            r#"{"type": "state", "formation": "d", "groupId": 0, "nodeId": 1, "name": "n", "host": "h", "port": 1, "reportedState": "bogus", "goalState": "primary", "health":"good"}"#,
            r#"{"type": "state", "formation": "\u12"}"#,
        ] {
            assert!(parse_state_payload(bad).is_none(), "{bad}");
        }
    }
}
