//! Task ids (UPIDs): `UPID:node:PID:PSTART:STARTTIME:type:id:user@realm!token:`.

use std::fmt;

/// A parsed UPID.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Upid {
    raw: String,
    /// Node that runs the task.
    pub node: String,
    /// Process id.
    pub pid: u32,
    /// Process start (clock ticks).
    pub pstart: u32,
    /// Start time, seconds since the epoch.
    pub starttime: u64,
    /// Task type (`vzcreate`, `vzstart`, ...).
    pub kind: String,
    /// Object id (vmid, template name), may be empty.
    pub id: String,
    /// Who started it.
    pub user: String,
}

impl Upid {
    /// Parses a UPID string.
    pub fn parse(s: &str) -> Result<Upid, String> {
        let fields: Vec<&str> = s.split(':').collect();
        if fields.len() != 9 || fields[0] != "UPID" || !fields[8].is_empty() {
            return Err(format!("`{s}` is not a UPID"));
        }
        let hex32 = |f: &str, name: &str| {
            u32::from_str_radix(f, 16).map_err(|_| format!("`{s}`: bad {name}"))
        };
        Ok(Upid {
            raw: s.to_string(),
            node: fields[1].to_string(),
            pid: hex32(fields[2], "pid")?,
            pstart: hex32(fields[3], "pstart")?,
            starttime: u64::from_str_radix(fields[4], 16)
                .map_err(|_| format!("`{s}`: bad start time"))?,
            kind: fields[5].to_string(),
            id: fields[6].to_string(),
            user: fields[7].to_string(),
        })
    }

    /// The UPID as PVE wrote it.
    pub fn as_str(&self) -> &str {
        &self.raw
    }
}

impl fmt::Display for Upid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.raw)
    }
}

#[cfg(test)]
mod tests {
    use super::Upid;

    #[test]
    fn parses_a_real_upid() {
        let u =
            Upid::parse("UPID:pve1:0012ABCD:0A1B2C3D:6745F0A0:vzcreate:101:appstore@pve!store:")
                .unwrap();
        assert_eq!(
            (
                u.node.as_str(),
                u.pid,
                u.kind.as_str(),
                u.id.as_str(),
                u.user.as_str()
            ),
            ("pve1", 0x12abcd, "vzcreate", "101", "appstore@pve!store")
        );
        assert_eq!(u.starttime, 0x6745f0a0);
    }

    #[test]
    fn refuses_what_is_not_a_upid() {
        for s in [
            "",
            "UPID:pve1",
            "UPID:pve1:XYZ:0:0:a:b:c:",
            "UPID:pve1:1:2:3:a:b:c",
        ] {
            assert!(Upid::parse(s).is_err(), "{s}");
        }
    }
}
