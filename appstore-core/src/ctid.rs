//! Container ids. One type from the request that names a container to the row that records it: a
//! [`Ctid`] is always inside PVE's id range, so no code below the parsing edge checks it again.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// A PVE guest id: 100 to 999,999,999 (PVE's `pve-vmid` format).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "i64", into = "u32")]
pub struct Ctid(u32);

/// A number outside PVE's id range.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("container id {0} is outside {min}..={max}", min = Ctid::MIN, max = Ctid::MAX)]
pub struct CtidError(pub i64);

impl Ctid {
    /// The smallest id PVE gives a guest.
    pub const MIN: u32 = 100;
    /// The largest.
    pub const MAX: u32 = 999_999_999;

    /// `id`, when it is inside PVE's range.
    pub fn new(id: u32) -> Result<Ctid, CtidError> {
        Ctid::try_from(i64::from(id))
    }

    /// The id as a number.
    pub fn get(self) -> u32 {
        self.0
    }

    /// The id after this one, unless this is the last.
    pub fn next(self) -> Option<Ctid> {
        Ctid::new(self.0 + 1).ok()
    }
}

impl TryFrom<i64> for Ctid {
    type Error = CtidError;

    fn try_from(id: i64) -> Result<Ctid, CtidError> {
        u32::try_from(id)
            .ok()
            .filter(|n| (Ctid::MIN..=Ctid::MAX).contains(n))
            .map(Ctid)
            .ok_or(CtidError(id))
    }
}

impl TryFrom<u32> for Ctid {
    type Error = CtidError;

    fn try_from(id: u32) -> Result<Ctid, CtidError> {
        Ctid::new(id)
    }
}

impl From<Ctid> for u32 {
    fn from(c: Ctid) -> u32 {
        c.0
    }
}

impl From<Ctid> for i64 {
    fn from(c: Ctid) -> i64 {
        i64::from(c.0)
    }
}

impl fmt::Display for Ctid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl FromStr for Ctid {
    type Err = String;

    fn from_str(s: &str) -> Result<Ctid, String> {
        let n: i64 = s
            .trim()
            .parse()
            .map_err(|_| format!("`{s}` is not a container id (a number from 100)"))?;
        Ctid::try_from(n).map_err(|e| e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_pve_ids_are_ctids() {
        assert_eq!(Ctid::new(100).map(Ctid::get), Ok(100));
        assert_eq!(Ctid::new(999_999_999).map(u32::from), Ok(999_999_999));
        assert!(Ctid::new(99).is_err());
        assert!(Ctid::new(1_000_000_000).is_err());
        assert!(Ctid::try_from(-5i64).is_err());
        assert_eq!("  101 ".parse::<Ctid>().map(Ctid::get), Ok(101));
        assert!("1e3".parse::<Ctid>().is_err());
        assert_eq!(
            Ctid::try_from(42i64).unwrap_err().to_string(),
            "container id 42 is outside 100..=999999999"
        );
    }

    #[test]
    fn json_is_a_plain_number_and_is_checked() {
        let c: Ctid = serde_json::from_str("105").unwrap();
        assert_eq!(serde_json::to_string(&c).unwrap(), "105");
        assert!(serde_json::from_str::<Ctid>("7").is_err());
        assert!(serde_json::from_str::<Ctid>("\"105\"").is_err());
    }
}
