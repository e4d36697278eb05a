//! An app's install plan, rendered without a node: the container the store would create, the
//! environment and files its scripts would get, the GPU devices each vendor would pass, and the
//! outputs. `pve-appstore catalog plan` prints it; `catalog test` renders it for apps it does not run.
//! Values the node decides (container id, address) are placeholders; secrets are never shown.

use appstore_core::manifest::{GpuProfile, GpuVendor, Manifest, VolumeSource};
use appstore_core::script_env::{self, ScriptSite};
use appstore_core::{template, Ctid};
use serde::Serialize;
use std::collections::BTreeMap;

/// Where the plan places the app (the store's defaults on a node).
#[derive(Debug, Clone)]
pub struct PlanOptions {
    /// Storage for the root disk and volumes.
    pub storage: String,
    /// Network bridge.
    pub bridge: String,
    /// Resource pool.
    pub pool: String,
    /// Form values (the defaults and generated secrets fill the rest).
    pub inputs: serde_json::Map<String, serde_json::Value>,
    /// Render the GPU part as if this vendor's card were attached.
    pub gpu: Option<GpuVendor>,
}

impl Default for PlanOptions {
    fn default() -> Self {
        PlanOptions {
            storage: "local-lvm".into(),
            bridge: "vmbr0".into(),
            pool: "appstore".into(),
            inputs: serde_json::Map::new(),
            gpu: None,
        }
    }
}

/// The rendered plan.
#[derive(Debug, Clone, Serialize)]
pub struct InstallPlan {
    /// App id.
    pub app: String,
    /// Catalog version.
    pub version: String,
    /// Where the scripts install from.
    pub sources: Vec<String>,
    /// The container's PVE create parameters (`key: value`, as `pct create` takes them).
    pub container: Vec<(String, String)>,
    /// The scripts' environment (secret values masked).
    pub env: BTreeMap<String, String>,
    /// What runs, in order, and when.
    pub scripts: Vec<(String, String)>,
    /// Files delivered beside the scripts.
    pub assets: Vec<String>,
    /// Per vendor the app supports: the attach profile and the device nodes it passes.
    pub gpu: Vec<(String, String)>,
    /// Output label and rendered value (secrets masked).
    pub outputs: Vec<(String, String)>,
}

const CTID: u32 = 100;
const IP: &str = "<container-ip>";

/// Renders `m`'s plan; the error names what cannot be rendered (an input, a template).
pub fn render(m: &Manifest, opts: &PlanOptions) -> Result<InstallPlan, String> {
    // Generated secrets are real random values (so they pass the field's own validation), masked
    // wherever they appear.
    let inputs = appstore_core::inputs::resolve(m, &opts.inputs, &mut || {
        use rand::distr::{Alphanumeric, SampleString};
        Alphanumeric.sample_string(&mut rand::rng(), 24)
    })
    .map_err(|errors| {
        errors
            .iter()
            .map(|e| e.to_string())
            .collect::<Vec<_>>()
            .join("; ")
    })?;
    let secrets = inputs.secret_values();
    let mask = |v: String| {
        if secrets
            .iter()
            .any(|s| !s.is_empty() && v.contains(s.as_str()))
        {
            "<secret>".to_string()
        } else {
            v
        }
    };
    let lxc = m.lxc();
    let gpu_vendor = opts.gpu.filter(|v| m.gpu().supported.contains(v));
    let site = ScriptSite {
        ctid: Some(Ctid::new(CTID).map_err(|e| e.to_string())?),
        hostname: m.id().to_string(),
        ip: IP.into(),
        node: "<node>".into(),
        pool: opts.pool.clone(),
        gpu: gpu_vendor.map(|v| {
            let driver = (v == GpuVendor::Nvidia).then(|| "<host driver version>".to_string());
            (v, driver)
        }),
    };
    let ctx = script_env::template_context(m, Some(&inputs), &site);

    let mut container = vec![
        ("vmid".to_string(), format!("<next free id, e.g. {CTID}>")),
        (
            "ostemplate".into(),
            format!(
                "<template storage>:vztmpl/<newest {} standard template>",
                lxc.ostemplate
            ),
        ),
        ("hostname".into(), m.id().to_string()),
        ("pool".into(), opts.pool.clone()),
        ("rootfs".into(), format!("{}:{}", opts.storage, lxc.disk_gb)),
        ("cores".into(), lxc.cores.to_string()),
        ("memory".into(), lxc.memory_mb.to_string()),
        ("swap".into(), "512".into()),
        (
            "unprivileged".into(),
            u8::from(lxc.unprivileged).to_string(),
        ),
        ("onboot".into(), u8::from(lxc.onboot).to_string()),
        (
            "net0".into(),
            format!(
                "name=eth0,bridge={},ip=dhcp,firewall=1",
                lxc.bridge.as_deref().unwrap_or(&opts.bridge)
            ),
        ),
    ];
    if !lxc.features.is_empty() {
        container.push((
            "features".into(),
            lxc.features
                .iter()
                .map(|f| format!("{}=1", format!("{f:?}").to_ascii_lowercase()))
                .collect::<Vec<_>>()
                .join(","),
        ));
    }
    for (i, v) in m.volumes().iter().enumerate() {
        let value = match &v.source {
            VolumeSource::Managed { size_gb } => {
                format!("{}:{size_gb},mp={}", opts.storage, v.mount_path)
            }
            VolumeSource::HostPath { path } => {
                format!(
                    "{path},mp={} (bind mount, set by the root helper)",
                    v.mount_path
                )
            }
        };
        container.push((format!("mp{i}"), value));
    }

    // The scripts' environment as the engine makes it, secrets masked.
    let env: BTreeMap<String, String> = script_env::environment(m, Some(&inputs), &site)?
        .into_iter()
        .map(|(k, v)| {
            let shown = if m.provision().redact_keys.contains(&k) {
                "<redacted>".to_string()
            } else {
                mask(v)
            };
            (k, shown)
        })
        .collect();

    let p = m.provision();
    let mut scripts = vec![(
        "install".to_string(),
        format!("{} (at most {} s)", p.script.as_str(), p.timeout_sec),
    )];
    if let Some(h) = &p.healthcheck {
        scripts.push((
            "health check".into(),
            format!(
                "{} ({} tries, {} s apart)",
                h.script.as_str(),
                h.retries,
                h.interval_sec
            ),
        ));
    }
    for (when, script) in [
        ("upgrade", &p.upgrade),
        ("reconfigure", &p.reconfigure),
        ("uninstall", &p.uninstall),
    ] {
        if let Some(s) = script {
            scripts.push((when.into(), s.as_str().to_string()));
        }
    }

    let gpu = m
        .gpu()
        .supported
        .iter()
        .map(|vendor| {
            let profiles: Vec<String> = [
                GpuProfile::NvidiaBasic,
                GpuProfile::Rocm,
                GpuProfile::DriRender,
            ]
            .into_iter()
            .filter(|p| fits(*p, *vendor))
            .filter(|p| m.gpu().profiles.is_empty() || m.gpu().profiles.contains(p))
            .map(|p| format!("{} ({})", appstore_core::gpu::profile_name(p), nodes_of(p)))
            .collect();
            (vendor.as_str().to_string(), profiles.join(", else "))
        })
        .collect();

    let mut outputs = Vec::new();
    for o in m.outputs() {
        let value =
            template::render(&o.value, &ctx).map_err(|e| format!("outputs.{}: {e}", o.key))?;
        outputs.push((
            o.label.clone(),
            if o.secret {
                "<secret>".into()
            } else {
                mask(value)
            },
        ));
    }

    Ok(InstallPlan {
        app: m.id().to_string(),
        version: m.version().to_string(),
        sources: m.sources().iter().map(|s| s.to_string()).collect(),
        container,
        env,
        scripts,
        assets: p.assets.iter().map(|a| a.as_str().to_string()).collect(),
        gpu,
        outputs,
    })
}

impl InstallPlan {
    /// The plan for people.
    pub fn text(&self) -> String {
        let mut s = format!(
            "{} {}\nsources: {}\n\ncontainer (pct create):\n",
            self.app,
            self.version,
            if self.sources.is_empty() {
                "not declared".to_string()
            } else {
                self.sources.join(", ")
            }
        );
        for (k, v) in &self.container {
            s.push_str(&format!("  {k}: {v}\n"));
        }
        s.push_str("\nscripts (in /opt/appstore/provision/, run with pct exec):\n");
        for (when, what) in &self.scripts {
            s.push_str(&format!("  {when}: {what}\n"));
        }
        if !self.assets.is_empty() {
            s.push_str(&format!("  assets: {}\n", self.assets.join(", ")));
        }
        s.push_str("\nenvironment:\n");
        for (k, v) in &self.env {
            s.push_str(&format!("  {k}={v}\n"));
        }
        if !self.gpu.is_empty() {
            s.push_str("\nGPU (per vendor: profile and device nodes):\n");
            for (vendor, what) in &self.gpu {
                s.push_str(&format!("  {vendor}: {what}\n"));
            }
        }
        s.push_str("\noutputs:\n");
        for (label, value) in &self.outputs {
            s.push_str(&format!("  {label}: {value}\n"));
        }
        s
    }
}

/// Whether `profile` can serve a card of `vendor`.
fn fits(profile: GpuProfile, vendor: GpuVendor) -> bool {
    match profile {
        GpuProfile::NvidiaBasic => vendor == GpuVendor::Nvidia,
        GpuProfile::Rocm => vendor == GpuVendor::Amd,
        GpuProfile::DriRender => matches!(vendor, GpuVendor::Intel | GpuVendor::Amd),
    }
}

/// The device nodes a profile passes, in words.
fn nodes_of(profile: GpuProfile) -> &'static str {
    match profile {
        GpuProfile::DriRender => "the card's /dev/dri/renderD*, group render, 0660",
        GpuProfile::Rocm => "/dev/kfd 0666 and the card's /dev/dri/renderD*, group render, 0660",
        GpuProfile::NvidiaBasic => {
            "the card's /dev/nvidiaN, /dev/nvidiactl, /dev/nvidia-uvm, /dev/nvidia-uvm-tools and /dev/nvidia-modeset where present, 0666"
        }
    }
}
