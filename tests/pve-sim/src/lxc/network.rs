//! The simulated node's network: a bridge on a free private subnet, NAT to the host's mirror while it
//! exists, `net0` parsed as PVE does, interfaces read back from the container.

use super::*;

/// `10.<a>.<b>.0/24`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Subnet {
    pub(super) a: u8,
    pub(super) b: u8,
}

impl Subnet {
    pub(super) fn network(self) -> u32 {
        u32::from_be_bytes([10, self.a, self.b, 0])
    }

    /// The bridge's address with prefix.
    pub(super) fn gateway(self) -> String {
        format!("10.{}.{}.1/24", self.a, self.b)
    }

    /// The bridge's address without prefix: the containers' gateway.
    pub(super) fn router(self) -> String {
        format!("10.{}.{}.1", self.a, self.b)
    }

    /// Is `ip` (with or without a prefix) in this subnet?
    pub(super) fn contains(self, ip: &str) -> bool {
        let addr = ip.split('/').next().unwrap_or("");
        addr.parse::<std::net::Ipv4Addr>()
            .is_ok_and(|a| u32::from(a) & 0xffff_ff00 == self.network())
    }

    /// `10.a.b.0/24`.
    pub(super) fn cidr(self) -> String {
        format!("10.{}.{}.0/24", self.a, self.b)
    }

    /// The address `net0` of `vmid` gets for `ip=dhcp`.
    pub(super) fn host(self, vmid: u32) -> String {
        format!("10.{}.{}.{}/24", self.a, self.b, 2 + vmid % 252)
    }
}

pub(super) fn overlaps(n1: u32, l1: u8, n2: u32, l2: u8) -> bool {
    let l = l1.min(l2);
    let mask = if l == 0 {
        0
    } else {
        u32::MAX << (32 - u32::from(l.min(32)))
    };
    n1 & mask == n2 & mask
}

/// The first `10.<100..=254>.<b>.0/24`, counted from `seed`, that overlaps none of `routes`
/// (`(network, prefix length)`; default routes are left out by the caller).
pub(super) fn pick_subnet(seed: u32, routes: &[(u32, u8)]) -> Option<Subnet> {
    const COUNT: u32 = 155 * 256;
    (0..COUNT).find_map(|i| {
        let n = (seed % COUNT + i) % COUNT;
        let subnet = Subnet {
            a: u8::try_from(100 + n / 256).ok()?,
            b: u8::try_from(n % 256).ok()?,
        };
        let free = routes
            .iter()
            .all(|&(net, len)| !overlaps(subnet.network(), 24, net, len));
        free.then_some(subnet)
    })
}

/// `192.0.2.0/24` -> (network, 24); `192.0.2.7` -> (.., 32); `default` -> None.
pub(super) fn parse_ipv4_prefix(s: &str) -> Option<(u32, u8)> {
    let (addr, len) = match s.split_once('/') {
        Some((a, l)) => (a, l.parse().ok()?),
        None => (s, 32),
    };
    let addr: std::net::Ipv4Addr = addr.parse().ok()?;
    (len <= 32 && len > 0).then_some((u32::from(addr), len))
}

/// Every IPv4 route of every table (local addresses included), without default routes.
pub(super) fn host_ipv4_routes() -> Result<Vec<(u32, u8)>, String> {
    let out = run(
        host_command("ip").args(["-4", "-j", "route", "show", "table", "all"]),
        "cannot list the host's routes",
    )?;
    let routes: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout)
        .map_err(|e| format!("cannot read `ip -j route`: {e}"))?;
    Ok(routes
        .iter()
        .filter_map(|r| parse_ipv4_prefix(r.get("dst")?.as_str()?))
        .collect())
}

/// Who needs IPv4 forwarding, and what the host had before the first of them.
pub(super) const FORWARDING_USERS: &str = "/run/pve-sim-forwarding";
pub(super) const IP_FORWARD: &str = "/proc/sys/net/ipv4/ip_forward";

/// Outbound access for one bridge's containers (called with the network lock held): masquerade in
/// an nft table of the bridge's own name, and forwarding on.
pub(super) fn enable_nat(bridge: &str, subnet: Subnet) -> Result<(), String> {
    let nft = |args: &[&str], what: &str| run(host_command("nft").args(args), what);
    nft(&["add", "table", "ip", bridge], "cannot add the nft table")?;
    nft(
        &[
            "add",
            "chain",
            "ip",
            bridge,
            "postrouting",
            "{",
            "type",
            "nat",
            "hook",
            "postrouting",
            "priority",
            "100",
            ";",
            "policy",
            "accept",
            ";",
            "}",
        ],
        "cannot add the nft chain",
    )?;
    let cidr = subnet.cidr();
    nft(
        &[
            "add",
            "rule",
            "ip",
            bridge,
            "postrouting",
            "ip",
            "saddr",
            &cidr,
            "oifname",
            "!=",
            bridge,
            "masquerade",
        ],
        "cannot add the masquerade rule",
    )?;
    let text = std::fs::read_to_string(FORWARDING_USERS).unwrap_or_default();
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    if lines.is_empty() {
        let was = std::fs::read_to_string(IP_FORWARD)
            .map_err(|e| format!("cannot read {IP_FORWARD}: {e}"))?;
        lines.push(format!("was={}", was.trim()));
    }
    if !lines.iter().any(|l| l == bridge) {
        lines.push(bridge.to_string());
    }
    std::fs::write(FORWARDING_USERS, lines.join("\n") + "\n")
        .map_err(|e| format!("cannot write {FORWARDING_USERS}: {e}"))?;
    std::fs::write(IP_FORWARD, "1").map_err(|e| format!("cannot turn on IPv4 forwarding: {e}"))
}

/// Undoes [`enable_nat`] for one bridge (called with the network lock held); the last user puts
/// the host's forwarding setting back.
pub(super) fn disable_nat(bridge: &str) {
    let table_exists = host_command("nft")
        .args(["list", "table", "ip", bridge])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if table_exists {
        if let Err(e) = run(
            host_command("nft").args(["delete", "table", "ip", bridge]),
            "cannot delete the nft table",
        ) {
            eprintln!("pve-sim: {e}");
        }
    }
    let Ok(text) = std::fs::read_to_string(FORWARDING_USERS) else {
        return;
    };
    let mut lines: Vec<&str> = text.lines().collect();
    let before = lines.len();
    lines.retain(|l| *l != bridge);
    if lines.len() == before {
        return;
    }
    if lines.len() <= 1 {
        let was = lines
            .first()
            .and_then(|l| l.strip_prefix("was="))
            .unwrap_or("0");
        if let Err(e) = std::fs::write(IP_FORWARD, was) {
            eprintln!("pve-sim: cannot restore {IP_FORWARD}: {e}");
        }
        let _ = std::fs::remove_file(FORWARDING_USERS);
    } else if let Err(e) = std::fs::write(FORWARDING_USERS, lines.join("\n") + "\n") {
        eprintln!("pve-sim: cannot write {FORWARDING_USERS}: {e}");
    }
}

pub(super) fn link_exists(name: &str) -> bool {
    Path::new("/sys/class/net").join(name).exists()
}

pub(super) fn delete_link(name: &str) -> Result<(), String> {
    run(
        host_command("ip").args(["link", "del", name]),
        &format!("cannot delete {name}"),
    )
    .map(|_| ())
}

/// The subnet of an existing bridge, from its `10.a.b.1/24` address.
pub(super) fn bridge_subnet(bridge: &str) -> Option<Subnet> {
    if !link_exists(bridge) {
        return None;
    }
    let out = host_command("ip")
        .args(["-4", "-j", "addr", "show", "dev", bridge])
        .stdin(Stdio::null())
        .output()
        .ok()?;
    let links: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).ok()?;
    links
        .iter()
        .flat_map(|l| {
            l.get("addr_info")
                .and_then(|a| a.as_array())
                .cloned()
                .unwrap_or_default()
        })
        .find_map(|info| {
            let local: std::net::Ipv4Addr = info.get("local")?.as_str()?.parse().ok()?;
            let [ten, a, b, one] = local.octets();
            (ten == 10 && one == 1 && info.get("prefixlen")?.as_u64() == Some(24))
                .then_some(Subnet { a, b })
        })
}

/// `ip -j addr show` output as PVE's `/interfaces` answer (first address of each family).
pub(super) fn parse_ip_addr_json(text: &str) -> Option<Vec<Interface>> {
    let links: Vec<serde_json::Value> = serde_json::from_str(text).ok()?;
    Some(
        links
            .iter()
            .filter_map(|l| {
                let name = l.get("ifname")?.as_str()?.to_string();
                let hwaddr = l
                    .get("address")
                    .and_then(|a| a.as_str())
                    .unwrap_or("00:00:00:00:00:00")
                    .to_string();
                let addrs = l.get("addr_info").and_then(|a| a.as_array());
                let first = |family: &str| {
                    addrs?.iter().find_map(|a| {
                        (a.get("family")?.as_str()? == family).then(|| {
                            Some(format!(
                                "{}/{}",
                                a.get("local")?.as_str()?,
                                a.get("prefixlen")?.as_u64()?
                            ))
                        })?
                    })
                };
                Some(Interface {
                    name,
                    hwaddr,
                    inet: first("inet"),
                    inet6: first("inet6"),
                })
            })
            .collect(),
    )
}

/// The parts of `netN` this back end uses.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct NetSpec {
    pub(super) name: Option<String>,
    pub(super) hwaddr: Option<String>,
    pub(super) ip: Option<String>,
    pub(super) mtu: Option<u32>,
}

impl NetSpec {
    pub(super) fn parse(value: &str) -> Result<NetSpec, String> {
        let mut spec = NetSpec::default();
        for part in value.split(',').filter(|p| !p.is_empty()) {
            let (k, v) = part
                .split_once('=')
                .ok_or_else(|| format!("'{part}' is not key=value"))?;
            match k {
                "name" => spec.name = Some(v.to_string()),
                "hwaddr" => spec.hwaddr = Some(v.to_string()),
                "ip" => spec.ip = Some(v.to_string()),
                "mtu" => spec.mtu = Some(v.parse().map_err(|_| format!("bad mtu '{v}'"))?),
                _ => {}
            }
        }
        if let Some(name) = &spec.name {
            if name.is_empty()
                || name.len() > 15
                || !name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
            {
                return Err(format!("bad interface name '{name}'"));
            }
        }
        if let Some(ip) = &spec.ip {
            if ip != "dhcp" && ip != "manual" && parse_ipv4_prefix(ip).is_none() {
                return Err(format!("bad ip '{ip}'"));
            }
        }
        if let Some(mac) = &spec.hwaddr {
            let ok = mac.split(':').count() == 6
                && mac
                    .split(':')
                    .all(|p| p.len() == 2 && p.bytes().all(|b| b.is_ascii_hexdigit()));
            if !ok {
                return Err(format!("bad hwaddr '{mac}'"));
            }
        }
        Ok(spec)
    }
}

// ---------------------------------------------------------------------------------------------------
// Devices
