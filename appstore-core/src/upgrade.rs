//! Whether an installed app can move to a catalog version: semver order, the upgrade script, and
//! the manifest's `provision.upgrade_from` rule. Pure; the engine and the API both ask it.

use crate::manifest::Manifest;
use serde::Serialize;

/// What the catalog offers an install.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum UpgradeCheck {
    /// A newer version whose upgrade script starts from the installed one.
    Available {
        /// Installed.
        from: String,
        /// Offered.
        to: String,
        /// What changed on the way, newest first (from the manifest's `changelog`).
        changes: Vec<crate::manifest::ChangelogEntry>,
    },
    /// The catalog has nothing newer.
    UpToDate {
        /// Installed.
        version: String,
    },
    /// A newer version exists but cannot be reached in place.
    Blocked {
        /// Installed.
        from: String,
        /// Offered.
        to: String,
        /// Why, and what to do instead.
        reason: String,
    },
}

/// Checks `installed` (the install's version text) against the catalog's `manifest`.
pub fn check(installed: &str, manifest: &Manifest) -> UpgradeCheck {
    let to = manifest.version().to_string();
    let from = installed.to_string();
    let Ok(current) = semver::Version::parse(installed) else {
        return UpgradeCheck::Blocked {
            from,
            to,
            reason: format!(
                "the installed version `{installed}` is not semver; uninstall (keeping volumes) and install again"
            ),
        };
    };
    if manifest.version() <= &current {
        return UpgradeCheck::UpToDate { version: from };
    }
    let p = manifest.provision();
    if p.upgrade.is_none() {
        return UpgradeCheck::Blocked {
            from,
            to,
            reason: format!(
                "version {} has no upgrade script; uninstall (keeping volumes) and install it again",
                manifest.version()
            ),
        };
    }
    if let Some(req) = &p.upgrade_from {
        if !req.matches(&current) {
            return UpgradeCheck::Blocked {
                reason: format!(
                    "the upgrade to {to} starts from versions `{req}`, and this install is at {from}; uninstall (keeping volumes) and install again"
                ),
                from,
                to,
            };
        }
    }
    let changes = manifest
        .changes_since(&current)
        .into_iter()
        .cloned()
        .collect();
    UpgradeCheck::Available { from, to, changes }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::manifest::parse_manifest;

    fn manifest(version: &str, extra: &str) -> Manifest {
        let text = format!(
            "id: demo\nname: Demo\ndescription: d\nversion: {version}\nlxc: {{ ostemplate: debian-12 }}\nprovision: {{ script: install.sh{extra} }}\n"
        );
        parse_manifest(&text, None).unwrap()
    }

    #[test]
    fn newer_with_a_script_is_available() {
        let m = manifest("1.1.0", ", upgrade: up.sh");
        assert_eq!(
            check("1.0.0", &m),
            UpgradeCheck::Available {
                from: "1.0.0".into(),
                to: "1.1.0".into(),
                changes: Vec::new(),
            }
        );
    }

    #[test]
    fn the_changes_on_the_way_come_with_the_offer_newest_first() {
        let text = "id: demo\nname: Demo\ndescription: d\nversion: 1.2.0\nlxc: { ostemplate: debian-13 }\nprovision: { script: install.sh, upgrade: up.sh }\nchangelog:\n  - { version: 1.0.0, changes: [First release] }\n  - { version: 1.2.0, date: 2026-12-01, changes: [Debian 13, New port input] }\n  - { version: 1.1.0, date: 2026-11-02, changes: [Faster health check] }\n";
        let m = parse_manifest(text, None).unwrap();
        match check("1.0.0", &m) {
            UpgradeCheck::Available { changes, .. } => {
                let versions: Vec<String> = changes.iter().map(|c| c.version.to_string()).collect();
                assert_eq!(versions, ["1.2.0", "1.1.0"]);
                assert_eq!(changes[0].date.as_deref(), Some("2026-12-01"));
                assert_eq!(changes[0].changes, ["Debian 13", "New port input"]);
            }
            other => panic!("{other:?}"),
        }
        match check("1.1.0", &m) {
            UpgradeCheck::Available { changes, .. } => assert_eq!(changes.len(), 1),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_bad_changelog_is_refused_by_field_with_the_fix() {
        let text = "id: demo\nname: Demo\ndescription: d\nversion: 1.1.0\nlxc: { ostemplate: debian-13 }\nprovision: { script: install.sh }\nchangelog:\n  - { version: 1.2.0, changes: [Too new] }\n  - { version: 1.0.0, date: 2026-02-30, changes: [] }\n  - { version: 1.0.0, changes: [Again] }\n  - { version: one, changes: [x] }\n";
        let errors = parse_manifest(text, None).unwrap_err().to_string();
        for want in [
            "changelog[0].version: 1.2.0 is newer than the app's `version`",
            "changelog[1].date: `2026-02-30` is not a date",
            "YYYY-MM-DD",
            "changelog[1].changes: must list at least one change",
            "changelog[2].version: 1.0.0 is listed twice",
            "changelog[3].version: `one` is not a semantic version",
        ] {
            assert!(errors.contains(want), "{want}\n{errors}");
        }
    }

    #[test]
    fn same_or_older_is_up_to_date() {
        let m = manifest("1.1.0", ", upgrade: up.sh");
        assert!(matches!(check("1.1.0", &m), UpgradeCheck::UpToDate { .. }));
        assert!(matches!(check("2.0.0", &m), UpgradeCheck::UpToDate { .. }));
        // Pre-releases sort before their release.
        assert!(matches!(
            check("1.1.0-rc.1", &m),
            UpgradeCheck::Available { .. }
        ));
    }

    #[test]
    fn no_script_or_outside_upgrade_from_is_blocked_with_the_way_out() {
        let m = manifest("1.1.0", "");
        match check("1.0.0", &m) {
            UpgradeCheck::Blocked { reason, .. } => {
                assert!(reason.contains("no upgrade script"), "{reason}")
            }
            other => panic!("{other:?}"),
        }
        let m = manifest("3.0.0", ", upgrade: up.sh, upgrade_from: '>=2.0.0'");
        assert!(matches!(check("2.5.1", &m), UpgradeCheck::Available { .. }));
        match check("1.9.0", &m) {
            UpgradeCheck::Blocked { reason, .. } => {
                assert!(reason.contains("`>=2.0.0`"), "{reason}");
                assert!(reason.contains("install again"), "{reason}");
            }
            other => panic!("{other:?}"),
        }
    }
}
