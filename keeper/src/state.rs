//! The keeper's state file: its current and assigned roles, its node id and
//! group, and what it remembers between runs. JSON, written atomically (we
//! never share state files with the C implementation).

use pgaf_fsm::NodeState;
use serde::{Deserialize, Serialize};
use std::path::Path;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeeperState {
    pub version: u32,
    pub node_id: i64,
    pub group_id: i32,
    #[serde(with = "state_label")]
    pub current_role: NodeState,
    #[serde(with = "state_label")]
    pub assigned_role: NodeState,
    pub system_identifier: i64,
    pub pg_version: u32,
    /// Unix seconds, 0 when never.
    pub last_monitor_contact: i64,
    pub last_secondary_contact: i64,
}

mod state_label {
    use pgaf_fsm::NodeState;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(s: &NodeState, ser: S) -> Result<S::Ok, S::Error> {
        ser.serialize_str(s.as_str())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(de: D) -> Result<NodeState, D::Error> {
        let s = String::deserialize(de)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("cannot read the state file \"{path}\": {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("the state file \"{path}\" exists but is broken: {why}; remove it to start over")]
    Broken { path: String, why: String },
    #[error("cannot write the state file \"{path}\": {source}")]
    Write {
        path: String,
        source: std::io::Error,
    },
}

impl KeeperState {
    pub fn new(node_id: i64, group_id: i32) -> KeeperState {
        KeeperState {
            version: 1,
            node_id,
            group_id,
            current_role: NodeState::Init,
            assigned_role: NodeState::Init,
            system_identifier: 0,
            pg_version: 0,
            last_monitor_contact: 0,
            last_secondary_contact: 0,
        }
    }

    pub fn load(path: &Path) -> Result<Option<KeeperState>, StateError> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => {
                return Err(StateError::Read {
                    path: path.display().to_string(),
                    source,
                })
            }
        };
        serde_json::from_str(&text)
            .map(Some)
            .map_err(|e| StateError::Broken {
                path: path.display().to_string(),
                why: e.to_string(),
            })
    }

    pub fn save(&self, path: &Path) -> Result<(), StateError> {
        let text = serde_json::to_string_pretty(self).unwrap_or_default() + "\n";
        crate::config::write_atomically(path, text.as_bytes(), 0o600).map_err(|source| {
            StateError::Write {
                path: path.display().to_string(),
                source,
            }
        })
    }
}

/// Held while a process reads, changes and writes the state file: the
/// service and `pg_autoctl do fsm assign` both write it, and neither may
/// write back a value it read before the other's write. An advisory
/// `flock` on a lock file next to the state file (the state file itself is
/// replaced by each write, so it cannot carry the lock). Dropping it
/// (closing the file) releases the lock.
pub struct StateLock {
    _file: Option<std::fs::File>,
}

impl StateLock {
    /// Blocks until no other writer holds the lock. A lock file this
    /// process may not open (created by another user) gives no lock rather
    /// than an error: the write still happens, as it did before locking.
    pub fn acquire(state: &Path) -> StateLock {
        match crate::config::lock_file(state, 0o644, true) {
            Ok(file) => StateLock { _file: file },
            Err(e) => {
                tracing::debug!("no lock on {}: {e}", state.display());
                StateLock { _file: None }
            }
        }
    }
}

impl KeeperState {
    /// Read the state file, change it with `change`, write it back, all
    /// under [`StateLock`]. Returns the state written.
    pub fn update(
        path: &Path,
        change: impl FnOnce(&mut KeeperState),
    ) -> Result<Option<KeeperState>, StateError> {
        let _lock = StateLock::acquire(path);
        let Some(mut state) = KeeperState::load(path)? else {
            return Ok(None);
        };
        change(&mut state);
        state.save(path)?;
        Ok(Some(state))
    }
}

pub fn now_unix() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two writers changing different fields at once (the service and
    /// `do fsm assign`): no change is lost.
    #[test]
    fn concurrent_updates_keep_every_change() {
        let dir = std::env::temp_dir().join(format!("pgaf-state-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("state.json");
        KeeperState::new(1, 0).save(&path).unwrap();
        let writer = |field: fn(&mut KeeperState)| {
            let path = path.clone();
            std::thread::spawn(move || {
                for _ in 0..200 {
                    KeeperState::update(&path, field).unwrap();
                }
            })
        };
        let a = writer(|s| s.system_identifier += 1);
        let b = writer(|s| s.last_secondary_contact += 1);
        a.join().unwrap();
        b.join().unwrap();
        let end = KeeperState::load(&path).unwrap().unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(
            (end.system_identifier, end.last_secondary_contact),
            (200, 200)
        );
    }

    #[test]
    fn round_trip() {
        let mut s = KeeperState::new(3, 0);
        s.current_role = NodeState::Secondary;
        s.assigned_role = NodeState::ReportLsn;
        let text = serde_json::to_string(&s).unwrap();
        assert!(text.contains("\"current_role\":\"secondary\""));
        assert_eq!(serde_json::from_str::<KeeperState>(&text).unwrap(), s);
        assert!(serde_json::from_str::<KeeperState>("{\"version\":1}").is_err());
    }
}
