//! Which pool a guest belongs to, read from PVE's `/etc/pve/user.cfg` the way pve-access-control
//! reads it: lines trimmed, `#` lines and blank lines skipped, `pool:<poolid>:<comment>:<vmids>:...`
//! entries in file order, and a vmid listed by several pools belongs to the first. This is all the
//! product needs of that file (the root helper checks the pool boundary with it); the whole model,
//! writer and ACLs included, lives with the simulator.

use crate::Ctid;

/// A pool entry that cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("user.cfg line {line}: {message}")]
pub struct PoolsError {
    /// 1-based line number.
    pub line: usize,
    /// What is wrong.
    pub message: String,
}

/// The pool that lists `vmid` first, if any.
pub fn pool_of_vm(user_cfg: &str, vmid: Ctid) -> Result<Option<String>, PoolsError> {
    let mut found = None;
    for (i, raw) in user_cfg.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let fields: Vec<&str> = line.split(':').map(str::trim).collect();
        if fields.first() != Some(&"pool") {
            continue;
        }
        let err = |message: String| PoolsError {
            line: i + 1,
            message,
        };
        let poolid = fields.get(1).copied().unwrap_or("");
        crate::policy::PoolId::parse(poolid).map_err(|e| err(format!("pool id: {e}")))?;
        for v in fields
            .get(3)
            .copied()
            .unwrap_or("")
            .split(',')
            .map(str::trim)
            .filter(|v| !v.is_empty())
        {
            let id: u32 = v
                .parse()
                .map_err(|_| err(format!("pool `{poolid}` lists `{v}`, which is not a vmid")))?;
            if id == vmid.get() && found.is_none() {
                found = Some(poolid.to_string());
            }
        }
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(text: &str, vmid: u32, expect: Result<Option<&str>, &str>) {
        let got = pool_of_vm(text, Ctid::new(vmid).unwrap());
        match expect {
            Ok(p) => assert_eq!(got, Ok(p.map(str::to_string)), "{text}"),
            Err(e) => assert_eq!(got.unwrap_err().to_string(), e),
        }
    }

    #[test]
    fn pools_of_guests() {
        let text = "user:root@pam:1:0:::::\n\n# a comment\npool:appstore:The store:100,101:local-lvm:\npool:other::102,100::\n pool:nested/child::103:: \n";
        check(text, 100, Ok(Some("appstore")));
        check(text, 101, Ok(Some("appstore")));
        check(text, 102, Ok(Some("other")));
        check(text, 103, Ok(Some("nested/child")));
        check(text, 104, Ok(None));
        check("", 100, Ok(None));
        check(
            "pool:p::10x::\n",
            100,
            Err("user.cfg line 1: pool `p` lists `10x`, which is not a vmid"),
        );
    }
}
