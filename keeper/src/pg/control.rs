//! What Postgres says about itself without a connection: `postmaster.pid`
//! (is it running, on which port and socket, is it ready) and
//! `pg_controldata` (system identifier, cluster state, timeline).

use super::bin::PgBin;
use std::path::{Path, PathBuf};

/// The lines of `postmaster.pid` we use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PostmasterPid {
    pub pid: i32,
    pub port: u16,
    pub socket_dir: PathBuf,
    /// The first of `listen_addresses` (`*`, an address, or empty).
    pub listen: String,
    /// `starting`, `stopping`, `ready`, `standby`.
    pub status: String,
}

impl PostmasterPid {
    pub fn read(pgdata: &Path) -> Option<PostmasterPid> {
        let text = std::fs::read_to_string(pgdata.join("postmaster.pid")).ok()?;
        parse_postmaster_pid(&text)
    }

    /// The process exists.
    pub fn alive(&self) -> bool {
        // SAFETY: signal 0 only checks that the pid exists.
        self.pid > 0 && unsafe { libc::kill(self.pid, 0) } == 0
    }

    pub fn ready(&self) -> bool {
        self.alive() && (self.status == "ready" || self.status == "standby")
    }

    /// The address to reach it over TCP from this host: its first listen
    /// address, loopback when it listens everywhere.
    pub fn tcp_host(&self) -> String {
        match self.listen.as_str() {
            "" | "*" | "0.0.0.0" => "127.0.0.1".into(),
            "::" => "::1".into(),
            a => a.to_string(),
        }
    }
}

pub fn parse_postmaster_pid(text: &str) -> Option<PostmasterPid> {
    let lines: Vec<&str> = text.lines().collect();
    Some(PostmasterPid {
        pid: lines.first()?.trim().parse().ok()?,
        port: lines.get(3)?.trim().parse().ok()?,
        socket_dir: PathBuf::from(lines.get(4).map(|s| s.trim()).unwrap_or("")),
        listen: lines
            .get(5)
            .map(|s| s.trim().to_string())
            .unwrap_or_default(),
        status: lines
            .get(7)
            .map(|s| s.trim().to_string())
            .unwrap_or_default(),
    })
}

/// The fields of `pg_controldata` we use.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ControlData {
    pub system_identifier: u64,
    pub state: String,
    pub timeline: u32,
    pub checkpoint_lsn: String,
    pub pg_control_version: u32,
    pub catalog_version: u32,
}

#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    #[error("cannot run pg_controldata: {0}")]
    Run(std::io::Error),
    #[error("pg_controldata failed for {pgdata}: {stderr}")]
    Failed { pgdata: String, stderr: String },
}

pub fn controldata(bin: &PgBin, pgdata: &Path) -> Result<ControlData, ControlError> {
    let out = std::process::Command::new(bin.path("pg_controldata"))
        .arg("-D")
        .arg(pgdata)
        .env("LANG", "C")
        .env("LC_ALL", "C")
        .output()
        .map_err(ControlError::Run)?;
    if !out.status.success() {
        return Err(ControlError::Failed {
            pgdata: pgdata.display().to_string(),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    Ok(parse_controldata(&String::from_utf8_lossy(&out.stdout)))
}

pub fn parse_controldata(text: &str) -> ControlData {
    let mut c = ControlData::default();
    for line in text.lines() {
        let Some((k, v)) = line.split_once(':') else {
            continue;
        };
        let v = v.trim();
        match k.trim() {
            "Database system identifier" => c.system_identifier = v.parse().unwrap_or(0),
            "Database cluster state" => c.state = v.to_string(),
            "Latest checkpoint's TimeLineID" => c.timeline = v.parse().unwrap_or(0),
            "Latest checkpoint location" => c.checkpoint_lsn = v.to_string(),
            "pg_control version number" => c.pg_control_version = v.parse().unwrap_or(0),
            "Catalog version number" => c.catalog_version = v.parse().unwrap_or(0),
            _ => {}
        }
    }
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn postmaster_pid_lines() {
        let text = "12345\n/var/lib/pg\n1700000000\n5433\n/var/run/postgresql\n127.0.0.1\n  5433001   3\nready   \n";
        let p = parse_postmaster_pid(text).unwrap();
        assert_eq!((p.pid, p.port, p.status.as_str()), (12345, 5433, "ready"));
        assert_eq!(p.socket_dir, PathBuf::from("/var/run/postgresql"));
        assert_eq!(p.tcp_host(), "127.0.0.1");
        assert!(parse_postmaster_pid("garbage").is_none());
        // PG_REGRESS_SOCK_DIR="": no socket directory, reached over TCP on
        // the address it listens on.
        let lan = text
            .replace("/var/run/postgresql", "")
            .replace("127.0.0.1", "10.231.1.11");
        let p = parse_postmaster_pid(&lan).unwrap();
        assert!(p.socket_dir.as_os_str().is_empty());
        assert_eq!(p.tcp_host(), "10.231.1.11");
        let any = text.replace("127.0.0.1", "*");
        assert_eq!(parse_postmaster_pid(&any).unwrap().tcp_host(), "127.0.0.1");
    }

    #[test]
    fn controldata_fields() {
        let text = "pg_control version number:            1300\nCatalog version number:               202209061\nDatabase system identifier:           7310942956303553130\nDatabase cluster state:               in production\nLatest checkpoint location:           0/1A4E6A8\nLatest checkpoint's TimeLineID:       3\n";
        let c = parse_controldata(text);
        assert_eq!(c.system_identifier, 7310942956303553130);
        assert_eq!(c.state, "in production");
        assert_eq!(c.timeline, 3);
        assert_eq!(c.pg_control_version, 1300);
    }
}
