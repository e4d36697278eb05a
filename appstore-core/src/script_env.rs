//! What a provision script may be given: the names its environment variables may have, and how long
//! it may run. Manifest validation and the root helper apply the same rules, so a catalog that passes
//! `catalog lint` is never refused by the helper, and a caller that skips the validation gains nothing.

/// The longest a script may run. The helper adds its own margin on top and its systemd unit stops it
/// after `RuntimeMaxSec=7200`, so every script ends well before the unit's limit.
pub const MAX_SCRIPT_TIMEOUT_SEC: u32 = 3600;

/// The longest variable name.
pub const MAX_ENV_NAME_LEN: usize = 64;

/// Names that change how a shell, the dynamic loader, libc or an interpreter behaves. A script's
/// variables are data for the script, never configuration of the programs that run it.
const REFUSED_NAMES: &[&str] = &[
    "BASH_ENV",
    "BASHOPTS",
    "CDPATH",
    "ENV",
    "GCONV_PATH",
    "GLIBC_TUNABLES",
    "GLOBIGNORE",
    "HOME",
    "HOSTALIASES",
    "IFS",
    "LANG",
    "LANGUAGE",
    "LOCALDOMAIN",
    "LOCPATH",
    "NLSPATH",
    "NODE_OPTIONS",
    "NODE_PATH",
    "OPENSSL_CONF",
    "OPENSSL_ENGINES",
    "PATH",
    "PROMPT_COMMAND",
    "PS4",
    "RESOLV_HOST_CONF",
    "SHELL",
    "SHELLOPTS",
    "TMPDIR",
    "TZDIR",
];

/// Prefixes with the same effect (`LD_PRELOAD`, `PERL5OPT`, `PYTHONSTARTUP`, `LC_ALL`, ...), and the
/// store's own (`APPSTORE_`, set by the store itself).
const REFUSED_PREFIXES: &[&str] = &[
    "BASH_FUNC_",
    "LC_",
    "LD_",
    "LXC_",
    "MALLOC_",
    "PERL",
    "PVE_",
    "PYTHON",
    "RUBY",
    "SSL_",
    "SUDO_",
    "SYSTEMD_",
];

/// Why a variable name is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnvNameError {
    /// Not `^[A-Z][A-Z0-9_]*$` or too long.
    #[error("`{0}` is not a variable name the store passes on (capital letters, digits and `_`, starting with a letter, at most 64 characters)")]
    Pattern(String),
    /// One of the store's own (`APPSTORE_*`).
    #[error("`{0}` is set by the store itself (APPSTORE_*); choose another name")]
    StoreOwned(String),
    /// A shell, loader or interpreter variable.
    #[error("`{name}` would change how {what} runs, not what the script does; choose another name (for example `APP_{name}`)")]
    Reserved {
        /// The name.
        name: String,
        /// What it controls.
        what: &'static str,
    },
}

/// Checks one variable name a script would get. The store's own names (`APPSTORE_*`,
/// `DEBIAN_FRONTEND`, `INPUT_*`) pass here; a manifest may not set `APPSTORE_*` (see
/// [`check_manifest_env_name`]).
pub fn check_env_name(name: &str) -> Result<(), EnvNameError> {
    let mut chars = name.chars();
    let pattern_ok = chars.next().is_some_and(|c| c.is_ascii_uppercase())
        && chars.all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
        && name.len() <= MAX_ENV_NAME_LEN;
    if !pattern_ok {
        return Err(EnvNameError::Pattern(name.to_string()));
    }
    let what = if REFUSED_NAMES.contains(&name) {
        Some("the shell, libc or an interpreter")
    } else {
        REFUSED_PREFIXES
            .iter()
            .find(|p| name.starts_with(*p))
            .map(|p| match *p {
                "LD_" | "GCONV_" | "MALLOC_" => "the dynamic loader or libc",
                "BASH_FUNC_" => "the shell",
                "LXC_" | "PVE_" | "SYSTEMD_" | "SUDO_" => "the container tools",
                "LC_" => "libc's locale",
                _ => "an interpreter",
            })
    };
    match what {
        Some(what) => Err(EnvNameError::Reserved {
            name: name.to_string(),
            what,
        }),
        None => Ok(()),
    }
}

/// [`check_env_name`], and the store's own prefix `APPSTORE_` is refused: those are set by the store.
pub fn check_manifest_env_name(name: &str) -> Result<(), EnvNameError> {
    check_env_name(name)?;
    if name.starts_with("APPSTORE_") {
        return Err(EnvNameError::StoreOwned(name.to_string()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(name: &str, expect: &str) {
        let got = match check_manifest_env_name(name) {
            Ok(()) => "ok".to_string(),
            Err(e) => e.to_string(),
        };
        assert!(got.starts_with(expect), "{name}: {got}");
    }

    #[test]
    fn names() {
        check("ADMIN_PASSWORD", "ok");
        check("X1", "ok");
        check("INPUT_PORT", "ok");
        check("lower", "`lower` is not a variable name");
        check("_X", "`_X` is not a variable name");
        check("A-B", "`A-B` is not a variable name");
        check("", "`` is not a variable name");
        check(&"A".repeat(65), "`AAAA");
        check(
            "LD_PRELOAD",
            "`LD_PRELOAD` would change how the dynamic loader",
        );
        check("BASH_ENV", "`BASH_ENV` would change how the shell");
        check("PATH", "`PATH` would change");
        check("IFS", "`IFS` would change");
        check("PERL5OPT", "`PERL5OPT` would change how an interpreter");
        check(
            "PYTHONSTARTUP",
            "`PYTHONSTARTUP` would change how an interpreter",
        );
        check("GLIBC_TUNABLES", "`GLIBC_TUNABLES` would change");
        check(
            "LXC_CONFIG",
            "`LXC_CONFIG` would change how the container tools",
        );
        check(
            "APPSTORE_CTID",
            "`APPSTORE_CTID` is set by the store itself",
        );
        assert!(check_env_name("APPSTORE_CTID").is_ok());
    }
}

/// Where a script runs, as its templates and environment see it.
#[derive(Debug, Clone, Default)]
pub struct ScriptSite {
    /// The container.
    pub ctid: Option<crate::Ctid>,
    /// Its hostname.
    pub hostname: String,
    /// Its IPv4 address (empty before it has one).
    pub ip: String,
    /// The PVE node.
    pub node: String,
    /// The resource pool.
    pub pool: String,
    /// The attached GPU's vendor, and the host's NVIDIA driver version.
    pub gpu: Option<(crate::manifest::GpuVendor, Option<String>)>,
}

/// The values templates render from (`{ip}`, `{inputs.port}`, `{gpu.vendor}`, ...).
pub fn template_context(
    m: &crate::manifest::Manifest,
    inputs: Option<&crate::inputs::ResolvedInputs>,
    site: &ScriptSite,
) -> serde_json::Value {
    let (vendor, driver) = match &site.gpu {
        Some((v, d)) => (v.as_str(), d.clone().unwrap_or_default()),
        None => ("", String::new()),
    };
    serde_json::json!({
        "ctid": site.ctid, "hostname": site.hostname, "ip": site.ip, "node": site.node,
        "pool": site.pool,
        "app": {"id": m.id(), "name": m.name(), "version": m.version().to_string()},
        "inputs": inputs.map(|i| i.to_json()).unwrap_or(serde_json::json!({})),
        "gpu": {"vendor": vendor, "driver_version": driver},
    })
}

/// A script's environment: every non-secret input as `INPUT_<KEY>`, the store's own `APPSTORE_*`
/// values, `DEBIAN_FRONTEND`, and the manifest's `provision.env` rendered from
/// [`template_context`]. The error names the `provision.env` entry that does not render.
pub fn environment(
    m: &crate::manifest::Manifest,
    inputs: Option<&crate::inputs::ResolvedInputs>,
    site: &ScriptSite,
) -> Result<std::collections::BTreeMap<String, String>, String> {
    let ctx = template_context(m, inputs, site);
    let mut env = std::collections::BTreeMap::new();
    for (k, v) in inputs
        .iter()
        .flat_map(|i| i.iter())
        .filter(|(_, v)| !v.secret)
    {
        env.insert(
            format!("INPUT_{}", k.to_ascii_uppercase()),
            v.value.to_string(),
        );
    }
    env.insert(
        "APPSTORE_CTID".into(),
        site.ctid.map(|c| c.to_string()).unwrap_or_default(),
    );
    env.insert("APPSTORE_APP_ID".into(), m.id().to_string());
    env.insert("APPSTORE_APP_VERSION".into(), m.version().to_string());
    if let Some((vendor, driver)) = &site.gpu {
        env.insert("APPSTORE_GPU_VENDOR".into(), vendor.as_str().into());
        if let Some(v) = driver {
            // The userland the app installs must match the host's kernel module exactly.
            env.insert("APPSTORE_NVIDIA_DRIVER_VERSION".into(), v.clone());
        }
    }
    env.insert("DEBIAN_FRONTEND".into(), "noninteractive".into());
    for (k, tpl) in &m.provision().env {
        let value =
            crate::template::render(tpl, &ctx).map_err(|e| format!("provision.env.{k}: {e}"))?;
        env.insert(k.clone(), value);
    }
    Ok(env)
}
