//! `pve-appstore catalog new <id>`: a new app directory that lints clean and installs as it is (a
//! page served by nginx from Debian's archive), with every file a catalog app has — the manifest, the
//! README, an icon, and the install, upgrade, reconfigure, uninstall and health check scripts — for
//! the maintainer to turn into the real app.

use anyhow::Context as _;
use std::path::{Path, PathBuf};

/// The files of a new app: (path inside the app directory, template, executable).
const FILES: &[(&str, &str, bool)] = &[
    ("app.yml", include_str!("../scaffold/app.yml"), false),
    ("README.md", include_str!("../scaffold/README.md"), false),
    ("icon.svg", include_str!("../scaffold/icon.svg"), false),
    (
        "provision/common.sh",
        include_str!("../scaffold/provision/common.sh"),
        false,
    ),
    (
        "provision/install.sh",
        include_str!("../scaffold/provision/install.sh"),
        true,
    ),
    (
        "provision/upgrade.sh",
        include_str!("../scaffold/provision/upgrade.sh"),
        true,
    ),
    (
        "provision/reconfigure.sh",
        include_str!("../scaffold/provision/reconfigure.sh"),
        true,
    ),
    (
        "provision/uninstall.sh",
        include_str!("../scaffold/provision/uninstall.sh"),
        true,
    ),
    (
        "provision/healthcheck.sh",
        include_str!("../scaffold/provision/healthcheck.sh"),
        true,
    ),
];

/// `my-app` -> `My App`.
fn display_name(id: &str) -> String {
    id.split('-')
        .map(|w| {
            let mut c = w.chars();
            c.next()
                .map(|f| f.to_uppercase().chain(c).collect::<String>())
                .unwrap_or_default()
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Writes the app `id` into `catalog/apps/<id>/`; the directory it made. An existing directory is
/// never touched.
pub fn new_app(catalog: &Path, id: &str, name: Option<&str>) -> anyhow::Result<PathBuf> {
    let id = appstore_core::AppId::parse(id).map_err(|e| {
        anyhow::anyhow!(
            "app id: {e}; use lowercase letters and digits joined by `-`, such as `my-app`"
        )
    })?;
    let id = id.as_str();
    let name = name.map_or_else(|| display_name(id), str::to_string);
    if name.contains(['\n', '"', '<', '>', '&']) {
        anyhow::bail!("--name: `{name}` may not hold a newline, `\"`, `<`, `>` or `&`");
    }
    let dir = catalog.join("apps").join(id);
    if dir.exists() {
        anyhow::bail!(
            "{} exists already; choose another id, or edit that app",
            dir.display()
        );
    }
    let letter: String = name.chars().take(1).flat_map(char::to_uppercase).collect();
    let hue = id
        .bytes()
        .fold(7u32, |h, b| h.wrapping_mul(31).wrapping_add(u32::from(b)))
        % 360;
    for (rel, template, executable) in FILES {
        let text = template
            .replace("@ID@", id)
            .replace("@NAME@", &name)
            .replace("@LETTER@", &letter)
            .replace("@HUE@", &hue.to_string());
        let path = dir.join(rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("cannot create {}", parent.display()))?;
        }
        std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))?;
        if *executable {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))?;
        }
    }
    Ok(dir)
}
