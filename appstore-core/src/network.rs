//! The network settings of an install request, parsed strictly before anything of them goes into a
//! container's `net0` property string or its host name: a value with a comma, an `=` or a blank
//! could otherwise add options of its own to that string.

use std::net::{Ipv4Addr, Ipv6Addr};

/// One problem, on its field (`network.ip`, `hostname`, ...).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkProblem {
    /// The request field.
    pub field: &'static str,
    /// What is wrong and what would be right.
    pub message: String,
}

/// What the request asks for, as text (the install request's shape).
#[derive(Debug, Clone, Copy, Default)]
pub struct NetworkFields<'a> {
    /// `hostname`.
    pub hostname: Option<&'a str>,
    /// `network.ip`: `dhcp` or an IPv4 address with prefix.
    pub ip: Option<&'a str>,
    /// `network.gw`: an IPv4 address.
    pub gw: Option<&'a str>,
    /// `network.ip6`: `auto`, `dhcp` or an IPv6 address with prefix.
    pub ip6: Option<&'a str>,
    /// `network.gw6`: an IPv6 address.
    pub gw6: Option<&'a str>,
    /// `network.vlan`: 1..=4094.
    pub vlan: Option<u16>,
}

fn cidr<T: std::str::FromStr>(text: &str, max_prefix: u8) -> Option<(T, u8)> {
    let (addr, prefix) = text.split_once('/')?;
    let prefix: u8 = prefix
        .parse()
        .ok()
        .filter(|p| (1..=max_prefix).contains(p))?;
    // `parse` on the whole text refuses leading zeros of the prefix written as "024" only by
    // value; the text must be the canonical digits.
    if prefix.to_string() != text.rsplit('/').next().unwrap_or("") {
        return None;
    }
    Some((addr.parse().ok()?, prefix))
}

/// A host name PVE accepts for a container: one DNS label (letters, digits, `-`, not at either end,
/// at most 63), or dotted labels of that form (at most 253).
pub fn is_host_name(h: &str) -> bool {
    !h.is_empty()
        && h.len() <= 253
        && h.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                && !l.starts_with('-')
                && !l.ends_with('-')
        })
}

/// Every problem of the request's network settings; empty when all of them are good.
pub fn check(f: &NetworkFields<'_>) -> Vec<NetworkProblem> {
    let mut out = Vec::new();
    let mut bad =
        |field: &'static str, message: String| out.push(NetworkProblem { field, message });
    if let Some(h) = f.hostname {
        if !is_host_name(h) {
            bad("hostname", format!("`{h}` is not a host name (letters, digits and `-` in labels of at most 63, for example `media-server`)"));
        }
    }
    let mut v4: Option<(Ipv4Addr, u8)> = None;
    if let Some(ip) = f.ip {
        if ip != "dhcp" {
            match cidr::<Ipv4Addr>(ip, 32) {
                Some(c) => v4 = Some(c),
                None => bad("network.ip", format!("`{ip}` is neither `dhcp` nor an IPv4 address with its prefix, such as `192.168.1.50/24`")),
            }
        }
    }
    if let Some(gw) = f.gw {
        match gw.parse::<Ipv4Addr>() {
            Err(_) => bad(
                "network.gw",
                format!("`{gw}` is not an IPv4 address such as `192.168.1.1`"),
            ),
            Ok(g) => match v4 {
                None => bad(
                    "network.gw",
                    "a gateway needs a static `network.ip` (with `dhcp` the DHCP server gives it)"
                        .into(),
                ),
                Some((addr, prefix)) => {
                    let mask = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
                    if u32::from(addr) & mask != u32::from(g) & mask {
                        bad(
                            "network.gw",
                            format!("`{gw}` is not in the network of `{addr}/{prefix}`"),
                        );
                    }
                }
            },
        }
    }
    let mut v6_static = false;
    if let Some(ip6) = f.ip6 {
        if !["auto", "dhcp"].contains(&ip6) {
            match cidr::<Ipv6Addr>(ip6, 128) {
                Some(_) => v6_static = true,
                None => bad("network.ip6", format!("`{ip6}` is neither `auto`, `dhcp` nor an IPv6 address with its prefix, such as `2001:db8::50/64`")),
            }
        }
    }
    if let Some(gw6) = f.gw6 {
        if gw6.parse::<Ipv6Addr>().is_err() {
            bad(
                "network.gw6",
                format!("`{gw6}` is not an IPv6 address such as `2001:db8::1`"),
            );
        } else if !v6_static {
            bad(
                "network.gw6",
                "a gateway needs a static `network.ip6`".into(),
            );
        }
    }
    if let Some(tag) = f.vlan {
        if !(1..=4094).contains(&tag) {
            bad(
                "network.vlan",
                format!("{tag} is not a VLAN tag (1 to 4094)"),
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check_one(f: NetworkFields<'_>) -> Vec<String> {
        check(&f)
            .into_iter()
            .map(|p| format!("{}: {}", p.field, p.message))
            .collect()
    }

    #[test]
    fn good_settings_pass() {
        assert!(check_one(NetworkFields::default()).is_empty());
        assert!(check_one(NetworkFields {
            hostname: Some("media-server"),
            ip: Some("192.168.1.50/24"),
            gw: Some("192.168.1.1"),
            ip6: Some("2001:db8::50/64"),
            gw6: Some("2001:db8::1"),
            vlan: Some(20),
        })
        .is_empty());
        assert!(check_one(NetworkFields {
            ip: Some("dhcp"),
            ip6: Some("auto"),
            ..Default::default()
        })
        .is_empty());
    }

    #[test]
    fn injections_and_mistakes_are_refused_by_field() {
        let got = check_one(NetworkFields {
            hostname: Some("a,b=c"),
            ip: Some("10.0.0.5/24,gw=10.0.0.9"),
            gw: Some("10.0.0.1 "),
            ip6: Some("fe80::1/64,firewall=0"),
            gw6: Some("2001:db8::zz"),
            vlan: Some(4095),
        });
        assert_eq!(got.len(), 6, "{got:?}");
        assert!(got[0].starts_with("hostname: `a,b=c` is not a host name"));
        assert!(got[1].starts_with("network.ip: `10.0.0.5/24,gw=10.0.0.9` is neither"));
        assert!(got[2].starts_with("network.gw: `10.0.0.1 ` is not an IPv4 address"));
        assert!(got[3].starts_with("network.ip6:"));
        assert!(got[4].starts_with("network.gw6:"));
        assert!(got[5].starts_with("network.vlan: 4095"));
        let got = check_one(NetworkFields {
            ip: Some("10.0.0.5/24"),
            gw: Some("10.0.1.1"),
            ..Default::default()
        });
        assert_eq!(
            got,
            ["network.gw: `10.0.1.1` is not in the network of `10.0.0.5/24`"]
        );
        let got = check_one(NetworkFields {
            gw: Some("10.0.1.1"),
            ..Default::default()
        });
        assert!(got[0].contains("needs a static `network.ip`"), "{got:?}");
        for ip in [
            "10.0.0.5",
            "10.0.0.5/33",
            "10.0.0.5/024",
            "010.0.0.5/24",
            "dhcp4",
        ] {
            assert_eq!(
                check_one(NetworkFields {
                    ip: Some(ip),
                    ..Default::default()
                })
                .len(),
                1,
                "{ip}"
            );
        }
    }
}
