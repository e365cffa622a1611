//! The password file, read as libpq reads it: the `passfile` option, else
//! `PGPASSFILE`, else `~/.pgpass`. Lines are
//! `hostname:port:database:username:password`; `*` matches anything, `\:`
//! and `\\` stand for `:` and `\`, `#` starts a comment, and the first
//! matching line wins. A file that its group or others may read is
//! ignored, with a warning. A Unix socket in the default directory is
//! looked up as `localhost`.
//!
//! tokio-postgres takes one password for every host of a multi-host
//! string: the first host that has a line gives it.

use std::path::{Path, PathBuf};
use tokio_postgres::config::Host;

/// Socket directories libpq builds may default to: connections there are
/// looked up as `localhost`.
const DEFAULT_SOCKET_DIRS: [&str; 2] = ["/var/run/postgresql", "/tmp"];

/// What one connection attempt is looked up by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Wanted<'a> {
    pub host: &'a str,
    pub port: u16,
    pub dbname: &'a str,
    pub user: &'a str,
}

/// The password of the first line of `text` that matches `w`.
pub(crate) fn lookup(text: &str, w: &Wanted<'_>) -> Option<String> {
    let port = w.port.to_string();
    text.lines().find_map(|line| {
        let line = line.trim_end_matches('\r');
        if line.starts_with('#') || line.trim().is_empty() {
            return None;
        }
        let (fields, password) = split(line)?;
        let matches = fields
            .iter()
            .zip([w.host, port.as_str(), w.dbname, w.user])
            .all(|(f, v)| f == "*" || f == v);
        matches.then_some(password)
    })
}

/// The four matched fields and the password of one line (`None` when it
/// has fewer than five fields).
fn split(line: &str) -> Option<([String; 4], String)> {
    let mut chars = line.chars();
    let mut fields: [String; 4] = Default::default();
    for field in fields.iter_mut() {
        let (text, ended_by_colon) = field_of(&mut chars);
        if !ended_by_colon {
            return None;
        }
        *field = text;
    }
    // As libpq: the password ends at the next unescaped ':'.
    Some((fields, field_of(&mut chars).0))
}

/// The next field of a line, unescaped, and whether a ':' ended it (not
/// the end of the line).
fn field_of(chars: &mut std::str::Chars<'_>) -> (String, bool) {
    let mut field = String::new();
    while let Some(c) = chars.next() {
        match c {
            ':' => return (field, true),
            '\\' => field.push(chars.next().unwrap_or('\\')),
            c => field.push(c),
        }
    }
    (field, false)
}

/// Which file to read: the `passfile` option, `PGPASSFILE`, `~/.pgpass`.
fn path(option: Option<&Path>) -> Option<PathBuf> {
    if let Some(p) = option {
        return Some(p.to_path_buf());
    }
    if let Some(p) = std::env::var_os("PGPASSFILE").filter(|p| !p.is_empty()) {
        return Some(PathBuf::from(p));
    }
    std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".pgpass"))
}

/// The file's text, when it is a regular file only its owner may read.
fn read(path: &Path) -> Option<String> {
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::metadata(path).ok()?;
    if !meta.is_file() {
        return None;
    }
    if meta.permissions().mode() & 0o077 != 0 {
        tracing::warn!(
            "password file \"{}\" has group or world access; permissions should be u=rw (0600) or less: not reading it",
            path.display()
        );
        return None;
    }
    std::fs::read_to_string(path).ok()
}

/// The host name a line is matched against.
fn host_name(h: &Host) -> String {
    match h {
        Host::Tcp(name) => name.clone(),
        Host::Unix(dir) => {
            let dir = dir.to_string_lossy();
            if DEFAULT_SOCKET_DIRS.contains(&dir.trim_end_matches('/')) {
                "localhost".into()
            } else {
                dir.into_owned()
            }
        }
    }
}

/// The password file's password for `config`, if any.
pub(crate) fn password_for(
    config: &tokio_postgres::Config,
    option: Option<&Path>,
) -> Option<String> {
    let user = config.get_user()?;
    let dbname = config.get_dbname().unwrap_or(user);
    let text = read(&path(option)?)?;
    let ports = config.get_ports();
    config.get_hosts().iter().enumerate().find_map(|(i, h)| {
        let port = ports
            .get(i)
            .or_else(|| ports.first())
            .copied()
            .unwrap_or(5432);
        let host = host_name(h);
        lookup(
            &text,
            &Wanted {
                host: &host,
                port,
                dbname,
                user,
            },
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wanted<'a>(host: &'a str, port: u16, dbname: &'a str, user: &'a str) -> Wanted<'a> {
        Wanted {
            host,
            port,
            dbname,
            user,
        }
    }

    #[test]
    fn the_first_matching_line_wins_with_wildcards() {
        let text = "# a comment\n\
                    m1:5432:pg_auto_failover:autoctl_node:first\n\
                    *:5432:pg_auto_failover:autoctl_node:second\n\
                    *:*:*:pgautofailover_replicator:repl\n\
                    *:*:*:*:any\n";
        let w = wanted("m1", 5432, "pg_auto_failover", "autoctl_node");
        assert_eq!(lookup(text, &w).as_deref(), Some("first"));
        let w = wanted("m2", 5432, "pg_auto_failover", "autoctl_node");
        assert_eq!(lookup(text, &w).as_deref(), Some("second"));
        let w = wanted("n1", 6000, "postgres", "pgautofailover_replicator");
        assert_eq!(lookup(text, &w).as_deref(), Some("repl"));
        let w = wanted("n1", 6000, "app", "app");
        assert_eq!(lookup(text, &w).as_deref(), Some("any"));
        assert_eq!(lookup("m1:5432:db:u\n", &w), None, "four fields");
        assert_eq!(lookup("", &w), None);
    }

    #[test]
    fn escapes_and_colons_in_the_password() {
        let text = "fe80\\:\\:1:5432:db:u\\\\x:p\\:a\\\\ss:rest\r\n";
        let w = wanted("fe80::1", 5432, "db", "u\\x");
        assert_eq!(lookup(text, &w).as_deref(), Some("p:a\\ss"));
        let text = "*:*:*:*:w ord 'é\r\n";
        assert_eq!(lookup(text, &w).as_deref(), Some("w ord 'é"));
    }

    /// A password file holding `text` with `mode`, in a directory of
    /// `test`'s own; removed with the returned directory.
    fn passfile(test: &str, text: &str, mode: u32) -> (PathBuf, PathBuf) {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("pgaf-{test}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("pgpass");
        std::fs::write(&file, text).unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(mode)).unwrap();
        (dir, file)
    }

    #[test]
    fn a_file_others_may_read_is_ignored() {
        use std::os::unix::fs::PermissionsExt;
        let (dir, file) = passfile("pgpass", "*:*:*:u:secret\n", 0o644);
        let config: tokio_postgres::Config = "host=/var/run/postgresql user=u".parse().unwrap();
        assert_eq!(password_for(&config, Some(&file)), None);
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(
            password_for(&config, Some(&file)).as_deref(),
            Some("secret")
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn hosts_are_tried_in_order_and_sockets_are_localhost() {
        let (dir, file) = passfile(
            "pgpass2",
            "m2:6001:pg_auto_failover:autoctl_node:two\nlocalhost:5432:u:u:local\n",
            0o600,
        );
        let multi: tokio_postgres::Config =
            "host=m1,m2 port=6000,6001 user=autoctl_node dbname=pg_auto_failover"
                .parse()
                .unwrap();
        assert_eq!(password_for(&multi, Some(&file)).as_deref(), Some("two"));
        let socket: tokio_postgres::Config = "host=/var/run/postgresql user=u".parse().unwrap();
        assert_eq!(password_for(&socket, Some(&file)).as_deref(), Some("local"));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
