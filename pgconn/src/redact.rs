//! The one redaction every binary uses before a connection string reaches a
//! log, an error or an output: its secrets (`password`, `sslpassword`)
//! become `****`, everything else stays as written, in both libpq forms
//! (URI with a password in the user info or the query string, and
//! `key=value` with bare or quoted values).

/// What a secret is replaced with.
pub const MASK: &str = "****";

/// Keys whose values are secrets (libpq's names).
const SECRET_KEYS: [&str; 2] = ["password", "sslpassword"];

fn is_secret(key: &str) -> bool {
    SECRET_KEYS.contains(&key)
}

/// `conninfo` with every secret replaced by [`MASK`].
pub fn redact(conninfo: &str) -> String {
    let t = conninfo.trim_start();
    if t.starts_with("postgres://") || t.starts_with("postgresql://") {
        redact_uri(conninfo)
    } else {
        redact_keywords(conninfo)
    }
}

/// URI form. The user info ends at the last `@` before the query string,
/// so a password holding an unencoded `/` or `@` is masked whole.
fn redact_uri(uri: &str) -> String {
    let start = uri.find("://").map_or(0, |i| i + 3);
    let (head, query) = match uri[start..].find('?') {
        Some(q) => uri.split_at(start + q),
        None => (uri, ""),
    };
    let mut out = String::with_capacity(uri.len());
    match head[start..].rfind('@').map(|at| start + at) {
        Some(at) => {
            let userinfo = &head[start..at];
            out.push_str(&head[..start]);
            match userinfo.find(':') {
                Some(colon) => {
                    out.push_str(&userinfo[..=colon]);
                    out.push_str(MASK);
                }
                None => out.push_str(userinfo),
            }
            out.push_str(&head[at..]);
        }
        None => out.push_str(head),
    }
    if let Some(params) = query.strip_prefix('?') {
        out.push('?');
        let params: Vec<String> = params
            .split('&')
            .map(|p| match p.split_once('=') {
                // Keys are percent-decoded, as `parse` and libpq read them.
                Some((k, _)) if crate::conninfo::percent_decode(k).is_ok_and(|k| is_secret(&k)) => {
                    format!("{k}={MASK}")
                }
                _ => p.to_string(),
            })
            .collect();
        out.push_str(&params.join("&"));
    }
    out
}

/// `key = value` form: values bare (a backslash escapes the next
/// character) or single-quoted (with `\'` inside).
fn redact_keywords(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = String::with_capacity(s.len());
    let mut i = 0;
    // Every slice below starts and ends at an ASCII byte or at an end of
    // `s`, so it is on a character boundary.
    while i < b.len() {
        if b[i].is_ascii_whitespace() {
            let from = i;
            while i < b.len() && b[i].is_ascii_whitespace() {
                i += 1;
            }
            out.push_str(&s[from..i]);
            continue;
        }
        let key_start = i;
        while i < b.len() && b[i] != b'=' && !b[i].is_ascii_whitespace() {
            i += 1;
        }
        let key = &s[key_start..i];
        out.push_str(key);
        let eq_start = i;
        while i < b.len() && b[i].is_ascii_whitespace() {
            i += 1;
        }
        if i >= b.len() || b[i] != b'=' {
            // Not `key=value`: copied, and the next word is a key.
            out.push_str(&s[eq_start..i]);
            continue;
        }
        i += 1;
        while i < b.len() && b[i].is_ascii_whitespace() {
            i += 1;
        }
        out.push_str(&s[eq_start..i]);
        let value_start = i;
        if i < b.len() && b[i] == b'\'' {
            i += 1;
            while i < b.len() && b[i] != b'\'' {
                i += if b[i] == b'\\' { 2 } else { 1 };
            }
            i += 1;
        } else {
            while i < b.len() && !b[i].is_ascii_whitespace() {
                i += if b[i] == b'\\' { 2 } else { 1 };
            }
        }
        // An escape at the very end steps past it.
        i = i.min(b.len());
        // After an escaped multi-byte character `i` may sit inside it:
        // move on to the next boundary (still inside the value).
        while !s.is_char_boundary(i) {
            i += 1;
        }
        if is_secret(key) {
            out.push_str(MASK);
        } else {
            out.push_str(&s[value_start..i]);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::redact;

    #[test]
    fn uri_passwords_are_masked() {
        for (given, want) in [
            (
                "postgres://autoctl_node:s3cret@mon:5432/pg_auto_failover?sslmode=require",
                "postgres://autoctl_node:****@mon:5432/pg_auto_failover?sslmode=require",
            ),
            (
                "postgresql://u:p@m1:5432,m2:5432/db?target_session_attrs=read-write",
                "postgresql://u:****@m1:5432,m2:5432/db?target_session_attrs=read-write",
            ),
            (
                "postgres://u@m/db?password=abc&sslmode=require",
                "postgres://u@m/db?password=****&sslmode=require",
            ),
            (
                "postgres://u@m/db?sslmode=require&password=abc",
                "postgres://u@m/db?sslmode=require&password=****",
            ),
            (
                "postgres://u@m/db?pass%77ord=abc",
                "postgres://u@m/db?pass%77ord=****",
            ),
            (
                "postgres://u@m/db?sslpassword=k3y&sslkey=/k",
                "postgres://u@m/db?sslpassword=****&sslkey=/k",
            ),
            // Unencoded '/' and '@' in the password: masked whole.
            ("postgres://u:a/b@c@m/db", "postgres://u:****@m/db"),
            ("postgres://u@m/db", "postgres://u@m/db"),
            ("postgres://m", "postgres://m"),
        ] {
            assert_eq!(redact(given), want, "{given}");
        }
    }

    #[test]
    fn keyword_passwords_are_masked() {
        for (given, want) in [
            ("host=m password=abc user=u", "host=m password=**** user=u"),
            (
                "host=m password = abc user=u",
                "host=m password = **** user=u",
            ),
            (
                "host=m password='a b\\' c' user=u",
                "host=m password=**** user=u",
            ),
            ("password=a\\ b host=m", "password=**** host=m"),
            ("password=pässwörd host=m", "password=**** host=m"),
            ("password=x\\é host=m", "password=**** host=m"),
            ("password=", "password=****"),
            ("password='unterminated", "password=****"),
            ("password=trailing\\", "password=****"),
            ("sslpassword=k host=m", "sslpassword=**** host=m"),
            ("host=m user=u", "host=m user=u"),
            ("  host=m   port=5 ", "  host=m   port=5 "),
            ("", ""),
        ] {
            assert_eq!(redact(given), want, "{given}");
        }
    }

    #[test]
    fn nothing_else_is_touched() {
        for s in [
            "host=/tmp port=5432 dbname=pg_auto_failover",
            "postgres://autoctl_node@10.0.0.1:5432/pg_auto_failover?sslmode=prefer",
            "host=m application_name='a b'",
            "passfile=/home/u/.pgpass host=m",
        ] {
            assert_eq!(redact(s), s);
        }
    }
}
