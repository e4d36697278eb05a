//! Which requests may reach the API at all, with or without a login: a `Host` the service answers
//! to (an IP address, `localhost`, the node's host name, or a name from `web.allowed_hosts`), so a
//! DNS-rebound name cannot turn a visitor's browser against it; an `Origin`, when sent, of that same
//! host; and for every request that changes something, `Content-Type: application/json`, which no
//! cross-site form can send without the browser asking first (and this service never says yes).

/// Names a request's `Host` may carry besides IP addresses and `localhost`.
#[derive(Debug, Clone, Default)]
pub struct AllowedHosts {
    names: Vec<String>,
}

impl AllowedHosts {
    /// The node's own host name, the names `/etc/hosts` gives it (a PVE node lists its FQDN
    /// there), and `extra`.
    pub fn new(extra: &[String]) -> Self {
        let mut names: Vec<String> = extra.iter().map(|n| n.to_ascii_lowercase()).collect();
        let own = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_ascii_lowercase())
            .unwrap_or_default();
        if !own.is_empty() {
            let hosts = std::fs::read_to_string("/etc/hosts").unwrap_or_default();
            for line in hosts.lines() {
                let line = line.split('#').next().unwrap_or("");
                let fields: Vec<String> = line
                    .split_whitespace()
                    .skip(1)
                    .map(str::to_ascii_lowercase)
                    .collect();
                if fields
                    .iter()
                    .any(|f| f == &own || f.split('.').next() == Some(&own))
                {
                    names.extend(fields);
                }
            }
            names.push(own);
        }
        AllowedHosts { names }
    }

    fn allows(&self, name: &str) -> bool {
        let name = name.trim_end_matches('.').to_ascii_lowercase();
        name == "localhost"
            || name.parse::<std::net::IpAddr>().is_ok()
            || self.names.iter().any(|n| n == &name)
    }
}

/// The host name of a `Host` value or an origin's authority (`name:port`, `[v6]:port`).
fn host_name(authority: &str) -> &str {
    if let Some(rest) = authority.strip_prefix('[') {
        return rest.split(']').next().unwrap_or("");
    }
    authority.rsplit_once(':').map_or(authority, |(h, _)| h)
}

/// Why a request was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// The `Host` is not one the service answers to.
    Host(String),
    /// The `Origin` is another site.
    Origin(String),
    /// A change without `Content-Type: application/json`.
    ContentType,
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::Host(h) => write!(f, "this service does not answer to the host name `{h}` (a DNS rebinding attempt, or a name it was not told about: add it to web.allowed_hosts)"),
            Refusal::Origin(o) => write!(f, "requests from the page at `{o}` are not accepted; use the store's own page"),
            Refusal::ContentType => write!(f, "a request that changes something must be sent with `Content-Type: application/json`"),
        }
    }
}

/// Checks one request. `changes`: the method is not GET, HEAD or OPTIONS.
pub fn check(
    allowed: &AllowedHosts,
    host: Option<&str>,
    origin: Option<&str>,
    content_type: Option<&str>,
    changes: bool,
) -> Result<(), Refusal> {
    if let Some(h) = host {
        if !allowed.allows(host_name(h)) {
            return Err(Refusal::Host(h.to_string()));
        }
    }
    if let Some(o) = origin {
        let authority = o.split_once("://").map(|(_, a)| a).unwrap_or("");
        let same = host.is_some_and(|h| h.eq_ignore_ascii_case(authority));
        if !same {
            return Err(Refusal::Origin(o.to_string()));
        }
    }
    if changes {
        let json = content_type.is_some_and(|c| {
            c.split(';')
                .next()
                .is_some_and(|t| t.trim().eq_ignore_ascii_case("application/json"))
        });
        if !json {
            return Err(Refusal::ContentType);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check_one(
        host: Option<&str>,
        origin: Option<&str>,
        ct: Option<&str>,
        changes: bool,
    ) -> String {
        let allowed = AllowedHosts {
            names: vec!["pve1".into(), "pve1.lan".into(), "store.example.org".into()],
        };
        match check(&allowed, host, origin, ct, changes) {
            Ok(()) => "ok".into(),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn hosts_origins_and_content_types() {
        let j = Some("application/json");
        assert_eq!(check_one(Some("127.0.0.1:8088"), None, None, false), "ok");
        assert_eq!(check_one(Some("[::1]:8088"), None, None, false), "ok");
        assert_eq!(check_one(Some("localhost:8088"), None, None, false), "ok");
        assert_eq!(check_one(Some("pve1:8088"), None, None, false), "ok");
        assert_eq!(check_one(Some("pve1.lan:8088"), None, None, false), "ok");
        assert_eq!(
            check_one(Some("STORE.example.org"), None, None, false),
            "ok"
        );
        assert!(
            check_one(Some("pve1.evil.example"), None, None, false).starts_with("this service"),
            "a rebinding name that starts like the node's is refused"
        );
        assert_eq!(check_one(None, None, j, true), "ok");
        assert!(check_one(Some("evil.example:8088"), None, None, false)
            .starts_with("this service does not answer to the host name `evil.example:8088`"));
        assert_eq!(
            check_one(
                Some("127.0.0.1:8088"),
                Some("http://127.0.0.1:8088"),
                j,
                true
            ),
            "ok"
        );
        assert!(
            check_one(Some("127.0.0.1:8088"), Some("http://evil.example"), j, true)
                .starts_with("requests from the page at `http://evil.example`")
        );
        assert!(
            check_one(Some("127.0.0.1:8088"), Some("null"), j, true).starts_with("requests from")
        );
        assert_eq!(
            check_one(
                Some("127.0.0.1:8088"),
                None,
                Some("application/json; charset=utf-8"),
                true
            ),
            "ok"
        );
        for ct in [
            None,
            Some("text/plain"),
            Some("application/x-www-form-urlencoded"),
        ] {
            assert!(check_one(Some("127.0.0.1:8088"), None, ct, true).contains("Content-Type"));
        }
    }
}
