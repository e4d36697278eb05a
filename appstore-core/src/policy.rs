//! Policy: which containers the store may touch (the pool boundary), the tags that mark them, and what
//! an install may ask for (resource caps, features, privilege). Every decision carries its reasons.

use crate::manifest::Feature;
use crate::Ctid;
use serde::Serialize;
use std::collections::BTreeSet;
use std::fmt;
use std::sync::OnceLock;

/// Tag on every container the store manages. (The spec's `appstore:managed=1` is illegal on a real
/// node: tags cannot hold `:` or `=`.)
pub const MANAGED_TAG: &str = "appstore-managed";
/// Tag on a container whose install failed.
pub const FAILED_TAG: &str = "appstore-failed";
/// Prefix of the tag that names the installed app (`appstore-app-jellyfin`).
pub const APP_TAG_PREFIX: &str = "appstore-app-";

/// True when `tag` is a legal PVE tag (`^[a-z0-9_][a-z0-9_\-+.]*$`, case-insensitive).
pub fn is_valid_tag(tag: &str) -> bool {
    let mut chars = tag.chars();
    match chars.next() {
        Some(c) if c.is_ascii_alphanumeric() || c == '_' => {}
        _ => return false,
    }
    chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '+' | '.'))
}

/// Splits a tag list as PVE does (on `,`, `;` or spaces), lowercased, sorted and without duplicates.
pub fn parse_tags(list: &str) -> Vec<String> {
    let set: BTreeSet<String> = list
        .split([',', ';', ' '])
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(str::to_ascii_lowercase)
        .collect();
    set.into_iter().collect()
}

/// Joins tags the way PVE stores them (`;`), normalised.
pub fn join_tags<'a>(tags: impl IntoIterator<Item = &'a str>) -> String {
    let set: BTreeSet<String> = tags.into_iter().map(str::to_ascii_lowercase).collect();
    set.into_iter().collect::<Vec<_>>().join(";")
}

/// The tag naming an app (`appstore-app-<id>`); app ids are kebab-case, so it is always legal.
pub fn app_tag(app_id: &crate::AppId) -> String {
    format!("{APP_TAG_PREFIX}{app_id}")
}

/// A PVE pool id (`^[A-Za-z0-9.\-_]+(/[A-Za-z0-9.\-_]+){0,2}$`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct PoolId(String);

impl PoolId {
    /// Checks the syntax.
    pub fn parse(s: &str) -> Result<PoolId, String> {
        static R: OnceLock<regex::Regex> = OnceLock::new();
        let r = R.get_or_init(|| {
            regex::Regex::new(r"^[A-Za-z0-9.\-_]+(/[A-Za-z0-9.\-_]+){0,2}$")
                .unwrap_or_else(|e| panic!("built-in pattern: {e}"))
        });
        if r.is_match(s) {
            Ok(PoolId(s.to_string()))
        } else {
            Err(format!(
                "`{s}` is not a PVE pool id (letters, digits, `.`, `-`, `_`; up to three levels joined by `/`)"
            ))
        }
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for PoolId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A policy decision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "decision", content = "reasons", rename_all = "lowercase")]
pub enum Decision {
    /// Go ahead.
    Allow,
    /// Refused, with every rule that refused it.
    Deny(Vec<DenyReason>),
}

impl Decision {
    /// True for [`Decision::Allow`].
    pub fn is_allowed(&self) -> bool {
        matches!(self, Decision::Allow)
    }

    fn from_reasons(reasons: Vec<DenyReason>) -> Decision {
        if reasons.is_empty() {
            Decision::Allow
        } else {
            Decision::Deny(reasons)
        }
    }
}

/// Why a rule refused: the rule, what it was about, and how to fix it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DenyReason {
    /// Short rule name (`pool-boundary`, `managed-tag`, `resource-cap`, `feature`, `unprivileged-only`).
    pub rule: &'static str,
    /// What was refused and why.
    pub message: String,
    /// How to fix it.
    pub fix: String,
}

impl fmt::Display for DenyReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[{}] {} (fix: {})", self.rule, self.message, self.fix)
    }
}

/// What the store knows of a container when it decides whether it may touch it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerFacts {
    /// The container id.
    pub ctid: Ctid,
    /// The pool it is in, if any.
    pub pool: Option<String>,
    /// Its tags (any case, as read from PVE).
    pub tags: Vec<String>,
}

/// The boundary of what the store may touch: containers in its pool that carry its managed tag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolBoundary {
    pool: PoolId,
}

impl PoolBoundary {
    /// The boundary of `pool`.
    pub fn new(pool: PoolId) -> PoolBoundary {
        PoolBoundary { pool }
    }

    /// The pool.
    pub fn pool(&self) -> &PoolId {
        &self.pool
    }

    /// May the store act on this container? Both rules are checked and every failure is reported.
    pub fn decide(&self, ct: &ContainerFacts) -> Decision {
        let mut reasons = Vec::new();
        if ct.pool.as_deref() != Some(self.pool.as_str()) {
            let where_ = match &ct.pool {
                Some(p) => format!("is in pool `{p}`"),
                None => "is in no pool".to_string(),
            };
            reasons.push(DenyReason {
                rule: "pool-boundary",
                message: format!(
                    "container {} {where_}, not in the store's pool `{}`",
                    ct.ctid, self.pool
                ),
                fix: format!(
                    "the store only manages containers it created in pool `{}`; manage this one in the PVE UI",
                    self.pool
                ),
            });
        }
        if !ct.tags.iter().any(|t| t.eq_ignore_ascii_case(MANAGED_TAG)) {
            reasons.push(DenyReason {
                rule: "managed-tag",
                message: format!("container {} lacks the tag `{MANAGED_TAG}`", ct.ctid),
                fix: "the store only manages containers it created; it never adopts others"
                    .to_string(),
            });
        }
        Decision::from_reasons(reasons)
    }
}

/// Upper limits on what one install may ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ResourceCaps {
    /// Most CPU cores.
    pub max_cores: u32,
    /// Most memory in MiB.
    pub max_memory_mb: u32,
    /// Largest root disk in GiB.
    pub max_disk_gb: u32,
}

/// What one install asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceRequest {
    /// CPU cores.
    pub cores: u32,
    /// Memory in MiB.
    pub memory_mb: u32,
    /// Root disk in GiB.
    pub disk_gb: u32,
    /// Requested features.
    pub features: BTreeSet<Feature>,
    /// Unprivileged container.
    pub unprivileged: bool,
}

/// The store's rules for installs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstallPolicy {
    /// Resource caps.
    pub caps: ResourceCaps,
    /// Features an app may get.
    pub allowed_features: BTreeSet<Feature>,
    /// Refuse privileged containers.
    pub unprivileged_only: bool,
}

impl InstallPolicy {
    /// May an install with these resources go ahead? Every violated rule is reported.
    pub fn decide(&self, req: &ResourceRequest) -> Decision {
        let mut reasons = Vec::new();
        let mut cap = |what: &str, asked: u32, max: u32, key: &str| {
            if asked > max {
                reasons.push(DenyReason {
                    rule: "resource-cap",
                    message: format!("{what} {asked} is above the cap of {max}"),
                    fix: format!(
                        "ask for at most {max}, or raise `caps.{key}` in the store's config"
                    ),
                });
            }
            if asked == 0 {
                reasons.push(DenyReason {
                    rule: "resource-cap",
                    message: format!("{what} must be at least 1"),
                    fix: format!("ask for 1 to {max}"),
                });
            }
        };
        cap("cores", req.cores, self.caps.max_cores, "max_cores");
        cap(
            "memory (MiB)",
            req.memory_mb,
            self.caps.max_memory_mb,
            "max_memory_mb",
        );
        cap(
            "disk (GiB)",
            req.disk_gb,
            self.caps.max_disk_gb,
            "max_disk_gb",
        );
        for f in &req.features {
            if !self.allowed_features.contains(f) {
                let name = format!("{f:?}").to_lowercase();
                reasons.push(DenyReason {
                    rule: "feature",
                    message: format!("feature `{name}` is not allowed by the store"),
                    fix: format!(
                        "add `{name}` to `security.allowed_features` in the store's config"
                    ),
                });
            }
        }
        if self.unprivileged_only && !req.unprivileged {
            reasons.push(DenyReason {
                rule: "unprivileged-only",
                message: "the app asks for a privileged container".to_string(),
                fix: "the store runs unprivileged containers only; set `security.unprivileged_only: false` to allow it"
                    .to_string(),
            });
        }
        Decision::from_reasons(reasons)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marker_tags_are_legal_and_colon_is_not() {
        for t in [MANAGED_TAG, FAILED_TAG, "appstore-app-jellyfin", "a+b.c_d"] {
            assert!(is_valid_tag(t), "{t}");
        }
        for t in ["appstore:managed=1", "", "-x", "a b", "a=b"] {
            assert!(!is_valid_tag(t), "{t}");
        }
    }

    #[test]
    fn tags_split_like_pve() {
        assert_eq!(parse_tags("B;a, c  a"), vec!["a", "b", "c"]);
        assert_eq!(join_tags(["x", "A", "x"]), "a;x");
    }

    #[test]
    fn pool_ids_follow_pve_syntax() {
        assert!(PoolId::parse("appstore").is_ok());
        assert!(PoolId::parse("a/b/c").is_ok());
        assert!(PoolId::parse("a/b/c/d").is_err());
        assert!(PoolId::parse("bad pool").is_err());
        assert!(PoolId::parse("").is_err());
    }

    fn boundary() -> PoolBoundary {
        PoolBoundary::new(PoolId::parse("appstore").unwrap())
    }

    #[test]
    fn allows_tagged_ct_in_pool() {
        let ct = ContainerFacts {
            ctid: Ctid::new(101).unwrap(),
            pool: Some("appstore".into()),
            tags: vec!["Appstore-Managed".into()],
        };
        assert_eq!(boundary().decide(&ct), Decision::Allow);
    }

    #[test]
    fn refuses_ct_outside_pool_with_both_reasons() {
        let ct = ContainerFacts {
            ctid: Ctid::new(105).unwrap(),
            pool: Some("prod".into()),
            tags: vec![],
        };
        let Decision::Deny(reasons) = boundary().decide(&ct) else {
            panic!("allowed")
        };
        let rules: Vec<_> = reasons.iter().map(|r| r.rule).collect();
        assert_eq!(rules, ["pool-boundary", "managed-tag"]);
        assert!(reasons[0].message.contains("105") && reasons[0].message.contains("prod"));
    }

    #[test]
    fn refuses_untagged_ct_in_pool() {
        let ct = ContainerFacts {
            ctid: Ctid::new(107).unwrap(),
            pool: Some("appstore".into()),
            tags: vec!["other".into()],
        };
        assert!(
            matches!(boundary().decide(&ct), Decision::Deny(r) if r.len() == 1 && r[0].rule == "managed-tag")
        );
    }

    #[test]
    fn install_policy_reports_every_violation() {
        let policy = InstallPolicy {
            caps: ResourceCaps {
                max_cores: 4,
                max_memory_mb: 4096,
                max_disk_gb: 64,
            },
            allowed_features: [Feature::Nesting].into(),
            unprivileged_only: true,
        };
        let ok = ResourceRequest {
            cores: 2,
            memory_mb: 1024,
            disk_gb: 8,
            features: [Feature::Nesting].into(),
            unprivileged: true,
        };
        assert!(policy.decide(&ok).is_allowed());
        let bad = ResourceRequest {
            cores: 8,
            memory_mb: 0,
            disk_gb: 8,
            features: [Feature::Fuse].into(),
            unprivileged: false,
        };
        let Decision::Deny(reasons) = policy.decide(&bad) else {
            panic!("allowed")
        };
        let rules: Vec<_> = reasons.iter().map(|r| r.rule).collect();
        assert_eq!(
            rules,
            [
                "resource-cap",
                "resource-cap",
                "feature",
                "unprivileged-only"
            ]
        );
    }
}
