//! Write-ahead log positions (`pg_lsn`), parsed and printed the way Postgres
//! does (`16/B374D848`).

use std::fmt;
use std::str::FromStr;

/// A WAL position. `Lsn(0)` is `0/0`, which the monitor treats as "unknown".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Lsn(pub u64);

impl Lsn {
    pub const ZERO: Lsn = Lsn(0);

    pub const fn is_zero(self) -> bool {
        self.0 == 0
    }

    /// The absolute distance in bytes between two positions.
    pub const fn distance(self, other: Lsn) -> u64 {
        self.0.abs_diff(other.0)
    }
}

impl fmt::Display for Lsn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:X}/{:X}", self.0 >> 32, self.0 & 0xFFFF_FFFF)
    }
}

/// The text was not a `pg_lsn`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidLsn(pub String);

impl fmt::Display for InvalidLsn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid input syntax for type pg_lsn: \"{}\"", self.0)
    }
}

impl std::error::Error for InvalidLsn {}

impl FromStr for Lsn {
    type Err = InvalidLsn;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || InvalidLsn(s.to_string());
        let (hi, lo) = s.split_once('/').ok_or_else(bad)?;
        let valid = |p: &str| !p.is_empty() && p.len() <= 8;
        if !valid(hi) || !valid(lo) {
            return Err(bad());
        }
        let hi = u64::from_str_radix(hi, 16).map_err(|_| bad())?;
        let lo = u64::from_str_radix(lo, 16).map_err(|_| bad())?;
        Ok(Lsn((hi << 32) | lo))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints_like_postgres() {
        for text in ["0/0", "0/5061688", "16/B374D848", "FFFFFFFF/FFFFFFFF"] {
            let lsn: Lsn = text.parse().unwrap();
            assert_eq!(lsn.to_string(), text);
        }
        assert_eq!("0/5061688".parse::<Lsn>().unwrap().0, 0x5061688);
        assert_eq!("1/0".parse::<Lsn>().unwrap().0, 1 << 32);
        for bad in ["", "/", "1/", "/1", "x/1", "1/2/3", "123456789/0", "1"] {
            assert!(bad.parse::<Lsn>().is_err(), "{bad}");
        }
    }

    #[test]
    fn distance_is_symmetric() {
        assert_eq!(Lsn(10).distance(Lsn(4)), 6);
        assert_eq!(Lsn(4).distance(Lsn(10)), 6);
    }
}
