//! A modelled Postgres instance: whether it has data and runs, its role,
//! its WAL as a history of records, the node it streams from and its
//! `synchronous_standby_names`.

/// One WAL record: a client write, or the start of a new timeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Rec {
    Write(u8),
    Promote,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct Pg {
    pub data: bool,
    pub running: bool,
    pub recovery: bool,
    pub read_only: bool,
    pub wal: Vec<Rec>,
    /// `primary_conninfo`: the node this standby streams from.
    pub upstream: Option<usize>,
    /// `synchronous_standby_names = ANY k (members)`, as (k, member bitmask).
    pub ssn: Option<(u8, u8)>,
}

impl Pg {
    pub fn tli(&self) -> i32 {
        1 + self.wal.iter().filter(|r| **r == Rec::Promote).count() as i32
    }

    /// The LSN reported to the monitor: 16 bytes per record on a base that is
    /// never `0/0`.
    pub fn lsn(&self) -> u64 {
        0x100_0000 + 16 * self.wal.len() as u64
    }

    pub fn contains(&self, w: u8) -> bool {
        self.wal.contains(&Rec::Write(w))
    }

    /// Accepts writes from clients.
    pub fn writable(&self) -> bool {
        self.running && !self.recovery && !self.read_only
    }
}

/// `a` is a prefix of `b` (so a standby at `a` can stream from `b`).
pub fn is_prefix(a: &[Rec], b: &[Rec]) -> bool {
    a.len() <= b.len() && b[..a.len()] == *a
}
