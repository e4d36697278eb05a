//! The validator: a raw manifest (what serde read) to a `Manifest`, every problem reported with its
//! path, and the JSON Schema the raw types give.

use super::*;

/// Template variables every install provides.
pub const BUILTIN_VARIABLES: &[&str] = &[
    "ctid",
    "hostname",
    "ip",
    "node",
    "pool",
    "app.id",
    "app.name",
    "app.version",
];

pub(super) fn known_variables(inputs: &[InputSpec], gpu: bool) -> BTreeSet<String> {
    let mut vars: BTreeSet<String> = BUILTIN_VARIABLES.iter().map(|s| s.to_string()).collect();
    vars.extend(inputs.iter().map(|i| format!("inputs.{}", i.key)));
    if gpu {
        vars.insert("gpu.vendor".into());
        vars.insert("gpu.driver_version".into());
    }
    vars
}

/// The JSON Schema of `app.yml`, derived from the raw types.
pub fn json_schema() -> serde_json::Value {
    schemars::schema_for!(RawManifest).to_value()
}

pub(super) fn schema_value() -> &'static serde_json::Value {
    static S: OnceLock<serde_json::Value> = OnceLock::new();
    S.get_or_init(json_schema)
}

/// Parses and validates `app.yml` text. `dir_name` is the app directory's name, which the id must equal.
/// Every problem is reported at once, sorted by path.
pub fn parse_manifest(text: &str, dir_name: Option<&str>) -> Result<Manifest, Diagnostics> {
    check_manifest(text, dir_name).result
}

/// The outcome of [`check_manifest`].
#[derive(Debug)]
pub struct ManifestCheck {
    /// The manifest, or every problem found.
    pub result: Result<Manifest, Diagnostics>,
    /// The files the manifest names (field path, path), as far as they could be read even from an
    /// invalid manifest, so that a linter can report missing files in the same round.
    pub files: Vec<(String, RelPath)>,
}

/// Like [`parse_manifest`], and also lists the files the manifest names even when it is invalid.
pub fn check_manifest(text: &str, dir_name: Option<&str>) -> ManifestCheck {
    let mut files = Vec::new();
    let result = check_into(text, dir_name, &mut files);
    ManifestCheck { result, files }
}

pub(super) fn raw_files(raw: &RawManifest) -> Vec<(String, RelPath)> {
    let p = &raw.provision;
    let mut named: Vec<(String, &str)> = vec![("provision.script".into(), p.script.as_str())];
    named.extend(raw.icon.iter().map(|i| ("icon".to_string(), i.as_str())));
    named.extend(
        raw.readme
            .iter()
            .map(|r| ("readme".to_string(), r.as_str())),
    );
    for (i, a) in p.assets.iter().enumerate() {
        named.push((index("provision.assets", i), a));
    }
    for (name, s) in [
        ("upgrade", &p.upgrade),
        ("uninstall", &p.uninstall),
        ("reconfigure", &p.reconfigure),
        ("gpu_sync", &p.gpu_sync),
    ] {
        named.extend(s.iter().map(|s| (format!("provision.{name}"), s.as_str())));
    }
    named.extend(p.healthcheck.iter().map(|h| {
        (
            "provision.healthcheck.script".to_string(),
            h.script.as_str(),
        )
    }));
    named
        .into_iter()
        .filter_map(|(f, s)| RelPath::parse(s).ok().map(|p| (f, p)))
        .collect()
}

pub(super) fn check_into(
    text: &str,
    dir_name: Option<&str>,
    files: &mut Vec<(String, RelPath)>,
) -> Result<Manifest, Diagnostics> {
    let mut diags = Diagnostics::new();
    let mut value = match crate::yaml::parse_value(text) {
        Ok(v) => v,
        Err(e) => {
            diags.push("", format!("not valid YAML: {e}"));
            return Err(diags);
        }
    };
    if !value.is_object() {
        diags.push("", "the manifest must be a mapping of keys to values");
        return Err(diags);
    }
    let filled = crate::schema_check::check(schema_value(), &mut value, &mut diags);
    let raw = match deserialize::<RawManifest>(value) {
        Ok(raw) => raw,
        Err((path, msg)) => {
            if diags.is_empty() {
                diags.push(path, msg);
            }
            diags.sort();
            return Err(diags);
        }
    };
    *files = raw_files(&raw);
    match Manifest::from_raw(raw, dir_name) {
        Ok(m) if diags.is_empty() => Ok(m),
        Ok(_) => Err(diags).map_err(|mut d: Diagnostics| {
            d.sort();
            d
        }),
        Err(more) => {
            for d in more
                .iter()
                .filter(|d| !crate::schema_check::is_placeholder(&filled, &d.path))
            {
                diags.push_hint(d.path.clone(), d.message.clone(), d.hint.clone());
            }
            diags.sort();
            Err(diags)
        }
    }
}

/// Deserializes a checked value tree into a raw type, with the path of the first failure.
pub(crate) fn deserialize<T: serde::de::DeserializeOwned + JsonSchema>(
    value: serde_json::Value,
) -> Result<T, (String, String)> {
    serde_path_to_error::deserialize::<_, T>(value).map_err(|e| {
        let path = e.path().to_string();
        let path = if path == "." { String::new() } else { path };
        (path, e.into_inner().to_string())
    })
}

#[derive(Default)]
pub(super) struct Validator {
    d: Diagnostics,
}

impl Validator {
    pub(super) fn err(&mut self, path: impl Into<String>, msg: impl Into<String>) {
        self.d.push(path, msg);
    }

    pub(super) fn hint(
        &mut self,
        path: impl Into<String>,
        msg: impl Into<String>,
        hint: impl Into<String>,
    ) {
        self.d.push_hint(path, msg, Some(hint.into()));
    }

    fn rel_path(&mut self, path: &str, s: &str) -> Option<RelPath> {
        RelPath::parse(s).map_err(|e| self.err(path, e)).ok()
    }

    fn text(&mut self, path: &str, s: &str, max: usize) {
        if s.trim().is_empty() {
            self.err(path, "must not be empty");
        } else if s.chars().count() > max {
            self.err(path, format!("is longer than {max} characters"));
        }
    }

    fn slugs(&mut self, path: &str, list: &[String]) {
        let mut seen = BTreeSet::new();
        for (i, s) in list.iter().enumerate() {
            if !is_kebab(s) {
                self.hint(
                    index(path, i),
                    format!("`{s}` is not kebab-case"),
                    format!("write `{}`", to_kebab(s)),
                );
            }
            if !seen.insert(s) {
                self.err(index(path, i), format!("`{s}` is listed twice"));
            }
        }
    }

    fn template(&mut self, path: &str, tpl: &str, known: &BTreeSet<String>) -> Vec<String> {
        match template::variables(tpl) {
            Ok(vars) => {
                for v in &vars {
                    if !known.contains(v) {
                        let hint = did_you_mean(v, known.iter().map(String::as_str))
                            .unwrap_or_else(|| {
                                format!(
                                    "available: {}",
                                    known.iter().cloned().collect::<Vec<_>>().join(", ")
                                )
                            });
                        self.hint(path, format!("unknown template variable `{v}`"), hint);
                    }
                }
                vars
            }
            Err(e) => {
                self.err(path, format!("template: {e}"));
                Vec::new()
            }
        }
    }

    pub(super) fn manifest(
        mut self,
        raw: RawManifest,
        dir_name: Option<&str>,
    ) -> Result<Manifest, Diagnostics> {
        if let Some(v) = raw.schema_version {
            if v != SCHEMA_VERSION {
                self.err(
                    "schema_version",
                    format!("unsupported version {v}; this store reads version {SCHEMA_VERSION}"),
                );
            }
        }
        let id = match AppId::parse(&raw.id) {
            Ok(id) => {
                if let Some(dir) = dir_name {
                    if dir != raw.id {
                        self.hint(
                            "id",
                            format!("`{}` does not match its directory `{dir}`", raw.id),
                            format!("set `id: {dir}` or rename the directory"),
                        );
                    }
                }
                Some(id)
            }
            Err(e) => {
                self.hint("id", e, format!("write `{}`", to_kebab(&raw.id)));
                None
            }
        };
        self.text("name", &raw.name, 64);
        self.text("description", &raw.description, 160);
        if raw.description.contains('\n') {
            self.hint(
                "description",
                "must be one line",
                "put longer text in the app's README.md",
            );
        }
        let version = semver::Version::parse(&raw.version)
            .map_err(|e| {
                self.hint(
                    "version",
                    format!("`{}` is not a semantic version: {e}", raw.version),
                    "write it as MAJOR.MINOR.PATCH, for example `1.0.0`",
                )
            })
            .ok();
        self.slugs("categories", &raw.categories);
        self.slugs("tags", &raw.tags);
        if let Some(h) = &raw.homepage {
            if !is_http_url(h) {
                self.err("homepage", format!("`{h}` is not an http(s) URL"));
            }
        }
        for (i, src) in raw.sources.iter().enumerate() {
            if Source::parse(src).is_none() {
                self.hint(
                    index("sources", i),
                    format!("`{src}` is not a known source"),
                    "write `debian`, `pypi`, `npm`, or the https URL the scripts download from",
                );
            }
        }
        if let Some(dup) = raw
            .sources
            .iter()
            .enumerate()
            .find(|(i, s)| raw.sources[..*i].contains(s))
        {
            self.err(
                index("sources", dup.0),
                format!("`{}` is listed twice", dup.1),
            );
        }
        if let Some(unit) = &raw.service {
            if let Err(e) = crate::journal::check_unit(unit) {
                self.hint(
                    "service",
                    e,
                    "name the systemd unit that runs the app, such as `radicale.service`",
                );
            }
        }
        for (i, m) in raw.maintainers.iter().enumerate() {
            if m.trim().is_empty() {
                self.err(index("maintainers", i), "must not be empty");
            }
        }
        let icon = raw.icon.as_deref().and_then(|s| {
            let p = self.rel_path("icon", s)?;
            let ext = p
                .as_str()
                .rsplit('.')
                .next()
                .unwrap_or_default()
                .to_ascii_lowercase();
            if !["svg", "png", "webp", "jpg", "jpeg"].contains(&ext.as_str()) {
                self.err(
                    "icon",
                    format!("`{s}` must be an .svg, .png, .webp or .jpg file"),
                );
            }
            Some(p)
        });
        let readme = raw
            .readme
            .as_deref()
            .and_then(|s| self.rel_path("readme", s));
        let requires = self.requires(raw.requires.as_ref());
        let lxc = self.lxc(&raw.lxc);
        let inputs = self.inputs(&raw.inputs);
        let gpu = self.gpu(raw.gpu.as_ref());
        let known = known_variables(&inputs, !gpu.supported.is_empty());
        let provision = self.provision(&raw.provision, &inputs, &known);
        let outputs = self.outputs(&raw.outputs, &inputs, &known);
        let volumes = self.volumes(&raw.volumes);
        let changelog = self.changelog(&raw.changelog, version.as_ref());
        let files = raw_files(&raw);

        match (id, version, lxc, provision) {
            (Some(id), Some(version), Some(lxc), Some(provision)) if self.d.is_empty() => {
                Ok(Manifest {
                    id,
                    name: raw.name,
                    description: raw.description,
                    version,
                    categories: raw.categories,
                    tags: raw.tags,
                    homepage: raw.homepage,
                    service: raw.service,
                    sources: raw
                        .sources
                        .iter()
                        .filter_map(|s| Source::parse(s))
                        .collect(),
                    license: raw.license,
                    maintainers: raw.maintainers,
                    icon,
                    readme,
                    featured: raw.featured,
                    requires,
                    lxc,
                    inputs,
                    provision,
                    outputs,
                    gpu,
                    volumes,
                    changelog,
                    files,
                })
            }
            _ => {
                let mut d = self.d;
                d.sort();
                Err(d)
            }
        }
    }

    fn requires(&mut self, raw: Option<&RawRequires>) -> Requires {
        let mut out = Requires::default();
        if let Some(r) = raw {
            for (name, src, dst) in [
                ("store", &r.store, &mut out.store),
                ("pve", &r.pve, &mut out.pve),
            ] {
                if let Some(s) = src {
                    match semver::VersionReq::parse(s) {
                        Ok(req) => *dst = Some(req),
                        Err(e) => self.hint(
                            field("requires", name),
                            format!("`{s}` is not a version requirement: {e}"),
                            "write it like `>=8.1`",
                        ),
                    }
                }
            }
        }
        out
    }

    fn lxc(&mut self, raw: &RawLxc) -> Option<LxcSpec> {
        let ostemplate = OsTemplate::parse(&raw.ostemplate)
            .map_err(|e| self.err("lxc.ostemplate", e))
            .ok();
        let d = &raw.defaults;
        let cores = d.cores.unwrap_or(1);
        let memory_mb = d.memory_mb.unwrap_or(512);
        let disk_gb = d.disk_gb.unwrap_or(4);
        if !(1..=512).contains(&cores) {
            self.err("lxc.defaults.cores", format!("{cores} is outside 1..=512"));
        }
        if memory_mb < 16 {
            self.err(
                "lxc.defaults.memory_mb",
                format!("{memory_mb} MiB is below PVE's minimum of 16"),
            );
        }
        if !(1..=131072).contains(&disk_gb) {
            self.err(
                "lxc.defaults.disk_gb",
                format!("{disk_gb} GiB is outside 1..=131072"),
            );
        }
        if let Some(b) = &d.bridge {
            if !is_bridge_name(b) {
                self.err(
                    "lxc.defaults.bridge",
                    format!(
                        "`{b}` is not a bridge name (at most 15 letters, digits, `-`, `_`, `.`)"
                    ),
                );
            }
        }
        if let Some(s) = &d.storage {
            if !is_storage_id(s) {
                self.err(
                    "lxc.defaults.storage",
                    format!("`{s}` is not a PVE storage id"),
                );
            }
        }
        let mut features = BTreeSet::new();
        for (i, f) in d.features.iter().enumerate() {
            if !features.insert(*f) {
                self.err(index("lxc.defaults.features", i), "listed twice");
            }
        }
        Some(LxcSpec {
            ostemplate: ostemplate?,
            unprivileged: d.unprivileged.unwrap_or(true),
            cores,
            memory_mb,
            disk_gb,
            bridge: d.bridge.clone(),
            storage: d.storage.clone(),
            features,
            onboot: d.onboot.unwrap_or(true),
        })
    }

    fn inputs(&mut self, raw: &[RawInput]) -> Vec<InputSpec> {
        let mut out: Vec<InputSpec> = Vec::new();
        for (i, r) in raw.iter().enumerate() {
            let p = index("inputs", i);
            if !is_snake(&r.key) {
                self.hint(
                    field(&p, "key"),
                    format!("`{}` is not snake_case", r.key),
                    format!("write `{}`", to_kebab(&r.key).replace('-', "_")),
                );
            }
            if out.iter().any(|o| o.key == r.key) {
                self.err(
                    field(&p, "key"),
                    format!("`{}` is used by an earlier input", r.key),
                );
            }
            self.text(&field(&p, "label"), &r.label, 80);
            let validation = self.validation(&p, r);
            let default = r.default.as_ref().filter(|v| !v.is_null()).and_then(|v| {
                let dp = field(&p, "default");
                match coerce(r.kind, v) {
                    Ok(val)
                        if !matches!(v, serde_json::Value::String(_))
                            && matches!(
                                r.kind,
                                InputType::String | InputType::Secret | InputType::Select
                            ) =>
                    {
                        self.hint(
                            dp,
                            format!("expected text, found {v}"),
                            format!("quote it: \"{val}\""),
                        );
                        None
                    }
                    Ok(val)
                        if matches!(v, serde_json::Value::String(_))
                            && matches!(r.kind, InputType::Number | InputType::Boolean) =>
                    {
                        self.hint(
                            dp,
                            format!(
                                "expected a {}, found the text \"{val}\"",
                                if r.kind == InputType::Number {
                                    "number"
                                } else {
                                    "boolean"
                                }
                            ),
                            format!("write it unquoted: {val}"),
                        );
                        None
                    }
                    Ok(val) => {
                        if let Err(e) = check_value(r.kind, &validation, &val) {
                            self.err(dp, format!("the default fails its own validation: {e}"));
                        }
                        Some(val)
                    }
                    Err(e) => {
                        self.err(dp, e);
                        None
                    }
                }
            });
            if r.generate && r.kind != InputType::Secret {
                self.err(
                    field(&p, "generate"),
                    "only `secret` inputs can be generated",
                );
            }
            if r.generate && default.is_some() {
                self.err(
                    field(&p, "generate"),
                    "a generated secret cannot also have a default",
                );
            }
            let show_when = r.show_when.as_ref().and_then(|sw| {
                let sp = field(&p, "show_when");
                let Some(target) = out.iter().find(|o| o.key == sw.input) else {
                    let hint = did_you_mean(&sw.input, out.iter().map(|o| o.key.as_str()))
                        .unwrap_or_else(|| "it must name an input declared before this one".into());
                    self.hint(
                        field(&sp, "input"),
                        format!("no earlier input `{}`", sw.input),
                        hint,
                    );
                    return None;
                };
                let raw_values: Vec<&serde_json::Value> = match (&sw.equals, &sw.one_of) {
                    (Some(v), None) => vec![v],
                    (None, Some(vs)) if !vs.is_empty() => vs.iter().collect(),
                    _ => {
                        self.err(&sp, "give exactly one of `equals` or a non-empty `in`");
                        return None;
                    }
                };
                let mut values = Vec::new();
                for v in raw_values {
                    match coerce(target.kind, v) {
                        Ok(val) => values.push(val),
                        Err(e) => self.err(&sp, format!("value for `{}`: {e}", sw.input)),
                    }
                }
                Some(ShowWhen {
                    input: sw.input.clone(),
                    values,
                })
            });
            out.push(InputSpec {
                key: r.key.clone(),
                label: r.label.clone(),
                kind: r.kind,
                default,
                required: r.required,
                validation,
                help: r.help.clone(),
                placeholder: r.placeholder.clone(),
                group: r.group.clone(),
                show_when,
                reconfigurable: r.reconfigurable,
                generate: r.generate,
            });
        }
        out
    }

    fn validation(&mut self, p: &str, r: &RawInput) -> InputValidation {
        let vp = field(p, "validation");
        let Some(v) = &r.validation else {
            if r.kind == InputType::Select {
                self.err(
                    &vp,
                    "a `select` input needs `validation.enum` with its choices",
                );
            }
            return InputValidation::default();
        };
        let text = matches!(r.kind, InputType::String | InputType::Secret);
        let regex = v.regex.as_deref().and_then(|src| {
            if !text {
                self.err(
                    field(&vp, "regex"),
                    "only string and secret inputs take a regex",
                );
                return None;
            }
            Pattern::new(src)
                .map_err(|e| self.err(field(&vp, "regex"), e))
                .ok()
        });
        if r.kind == InputType::Boolean && (v.min.is_some() || v.max.is_some()) {
            self.err(&vp, "boolean inputs take no min or max");
        }
        if let (Some(min), Some(max)) = (v.min, v.max) {
            if min > max {
                self.err(&vp, format!("min ({min}) is greater than max ({max})"));
            }
        }
        let mut one_of = Vec::new();
        if let Some(list) = &v.one_of {
            if list.is_empty() {
                self.err(field(&vp, "enum"), "must list at least one value");
            }
            for (i, item) in list.iter().enumerate() {
                match coerce(r.kind, item) {
                    Ok(val) if one_of.contains(&val) => self.err(
                        index(&field(&vp, "enum"), i),
                        format!("`{val}` is listed twice"),
                    ),
                    Ok(val) => one_of.push(val),
                    Err(e) => self.err(index(&field(&vp, "enum"), i), e),
                }
            }
        } else if r.kind == InputType::Select {
            self.err(
                field(&vp, "enum"),
                "a `select` input needs the list of its choices",
            );
        }
        InputValidation {
            regex,
            min: v.min,
            max: v.max,
            one_of,
        }
    }

    fn provision(
        &mut self,
        r: &RawProvision,
        inputs: &[InputSpec],
        known: &BTreeSet<String>,
    ) -> Option<ProvisionSpec> {
        let script = self.rel_path("provision.script", &r.script);
        for (k, tpl) in &r.env {
            let p = field("provision.env", k);
            if let Err(e) = crate::script_env::check_manifest_env_name(k) {
                self.err(&p, e.to_string());
            }
            self.template(&p, tpl, known);
        }
        let assets = r
            .assets
            .iter()
            .enumerate()
            .filter_map(|(i, a)| self.rel_path(&index("provision.assets", i), a))
            .collect();
        let timeout_sec = r.timeout_sec.unwrap_or(DEFAULT_TIMEOUT_SEC);
        let max = crate::script_env::MAX_SCRIPT_TIMEOUT_SEC;
        if !(1..=max).contains(&timeout_sec) {
            self.err(
                "provision.timeout_sec",
                format!("{timeout_sec} is outside 1..={max} (one hour: split longer work into steps the script can resume)"),
            );
        }
        let user = r.user.clone().unwrap_or_else(|| "root".to_string());
        if !is_user_name(&user) {
            self.err("provision.user", format!("`{user}` is not a user name"));
        }
        for (i, k) in r.redact_keys.iter().enumerate() {
            // Any key the scripts may print (`API_TOKEN=...`), not only env and input names.
            if !is_env_name(k) {
                self.hint(
                    index("provision.redact_keys", i),
                    format!("`{k}` is not a key name"),
                    "use letters, digits and `_`, as in `API_TOKEN`",
                );
            }
        }
        let mut opt = |name: &str, s: &Option<String>| {
            s.as_deref()
                .and_then(|s| self.rel_path(&field("provision", name), s))
        };
        let upgrade = opt("upgrade", &r.upgrade);
        let uninstall = opt("uninstall", &r.uninstall);
        let reconfigure = opt("reconfigure", &r.reconfigure);
        let gpu_sync = opt("gpu_sync", &r.gpu_sync);
        if reconfigure.is_none() {
            for (i, inp) in inputs.iter().enumerate() {
                if inp.reconfigurable {
                    self.hint(
                        field(&index("inputs", i), "reconfigurable"),
                        "the app has no `provision.reconfigure` script",
                        "add one, or drop `reconfigurable`",
                    );
                }
            }
        }
        let healthcheck = r.healthcheck.as_ref().and_then(|h| {
            let script = self.rel_path("provision.healthcheck.script", &h.script)?;
            let hc = Healthcheck {
                script,
                retries: h.retries.unwrap_or(10),
                interval_sec: h.interval_sec.unwrap_or(3),
                timeout_sec: h.timeout_sec.unwrap_or(30),
            };
            if hc.retries == 0 || hc.timeout_sec == 0 {
                self.err(
                    "provision.healthcheck",
                    "retries and timeout_sec must be at least 1",
                );
            }
            let max = crate::script_env::MAX_SCRIPT_TIMEOUT_SEC;
            if hc.timeout_sec > max {
                self.err(
                    "provision.healthcheck.timeout_sec",
                    format!("{} is over {max}", hc.timeout_sec),
                );
            }
            Some(hc)
        });
        let upgrade_from = r.upgrade_from.as_ref().and_then(|req| {
            match semver::VersionReq::parse(req) {
                Ok(v) => Some(v),
                Err(e) => {
                    self.err(
                        "provision.upgrade_from",
                        format!("`{req}` is not a semver requirement ({e}); write e.g. `>=1.2.0` or `^2`"),
                    );
                    None
                }
            }
        });
        if upgrade_from.is_some() && upgrade.is_none() {
            self.err(
                "provision.upgrade_from",
                "needs `provision.upgrade`: without an upgrade script nothing can upgrade",
            );
        }
        Some(ProvisionSpec {
            script: script?,
            upgrade_from,
            env: r.env.clone(),
            assets,
            timeout_sec,
            user,
            redact_keys: r.redact_keys.clone(),
            retry_safe: r.retry_safe,
            upgrade,
            uninstall,
            healthcheck,
            reconfigure,
            gpu_sync,
            keep_provision_dir: r.keep_provision_dir,
        })
    }

    fn outputs(
        &mut self,
        raw: &[RawOutput],
        inputs: &[InputSpec],
        known: &BTreeSet<String>,
    ) -> Vec<OutputSpec> {
        let mut out: Vec<OutputSpec> = Vec::new();
        for (i, r) in raw.iter().enumerate() {
            let p = index("outputs", i);
            if !is_snake(&r.key) {
                self.err(field(&p, "key"), format!("`{}` is not snake_case", r.key));
            }
            if out.iter().any(|o| o.key == r.key) {
                self.err(
                    field(&p, "key"),
                    format!("`{}` is used by an earlier output", r.key),
                );
            }
            self.text(&field(&p, "label"), &r.label, 80);
            let vars = self.template(&field(&p, "value"), &r.value, known);
            let uses_secret = vars.iter().any(|v| {
                v.strip_prefix("inputs.")
                    .and_then(|k| inputs.iter().find(|i| i.key == k))
                    .is_some_and(|i| i.kind == InputType::Secret)
            });
            out.push(OutputSpec {
                key: r.key.clone(),
                label: r.label.clone(),
                value: r.value.clone(),
                secret: r.secret || uses_secret,
            });
        }
        out
    }

    fn gpu(&mut self, raw: Option<&RawGpu>) -> GpuSpec {
        let Some(g) = raw else {
            return GpuSpec::default();
        };
        let supported: BTreeSet<GpuVendor> = g.supported.iter().copied().collect();
        if g.required && supported.is_empty() {
            self.hint(
                "gpu.required",
                "a required GPU needs `gpu.supported` vendors",
                "list the vendors, for example `supported: [intel, amd]`",
            );
        }
        let mut profiles: BTreeSet<GpuProfile> = g.profiles.iter().copied().collect();
        for (i, prof) in g.profiles.iter().enumerate() {
            let needs: &[GpuVendor] = match prof {
                GpuProfile::DriRender => &[GpuVendor::Intel, GpuVendor::Amd],
                GpuProfile::NvidiaBasic => &[GpuVendor::Nvidia],
                GpuProfile::Rocm => &[GpuVendor::Amd],
            };
            if !needs.iter().any(|v| supported.contains(v)) {
                let names: Vec<&str> = needs.iter().map(|v| v.as_str()).collect();
                self.err(
                    index("gpu.profiles", i),
                    format!(
                        "this profile needs {} in `gpu.supported`",
                        names.join(" or ")
                    ),
                );
            }
        }
        if profiles.is_empty() {
            if supported.contains(&GpuVendor::Intel) || supported.contains(&GpuVendor::Amd) {
                profiles.insert(GpuProfile::DriRender);
            }
            if supported.contains(&GpuVendor::Nvidia) {
                profiles.insert(GpuProfile::NvidiaBasic);
            }
        }
        GpuSpec {
            supported,
            required: g.required,
            profiles,
            notes: g.notes.clone(),
            smoke_test: g.smoke_test,
        }
    }

    fn volumes(&mut self, raw: &[RawVolume]) -> Vec<VolumeSpec> {
        let mut out: Vec<VolumeSpec> = Vec::new();
        for (i, r) in raw.iter().enumerate() {
            let p = index("volumes", i);
            if !is_kebab(&r.name) {
                self.err(field(&p, "name"), format!("`{}` is not kebab-case", r.name));
            }
            if out.iter().any(|o| o.name == r.name) {
                self.err(
                    field(&p, "name"),
                    format!("`{}` is used by an earlier volume", r.name),
                );
            }
            match normalize_abs(&r.mount_path) {
                Err(e) => self.err(field(&p, "mount_path"), e),
                Ok(mp) => {
                    let reserved = [
                        "/", "/proc", "/sys", "/dev", "/run", "/bin", "/sbin", "/lib", "/usr",
                        "/etc", "/boot",
                    ];
                    if reserved.contains(&mp.as_str())
                        || ["/proc/", "/sys/", "/dev/"]
                            .iter()
                            .any(|r| mp.starts_with(r))
                    {
                        self.err(field(&p, "mount_path"), format!("`{mp}` is a system directory; mount app data elsewhere (for example /srv/data)"));
                    }
                    if out.iter().any(|o| o.mount_path == mp) {
                        self.err(
                            field(&p, "mount_path"),
                            format!("`{mp}` is used by an earlier volume"),
                        );
                    }
                }
            }
            let source = match (&r.size_gb, &r.host_path) {
                (Some(size), None) => {
                    if *size == 0 {
                        self.err(field(&p, "size_gb"), "must be at least 1");
                    }
                    Some(VolumeSource::Managed { size_gb: *size })
                }
                (None, Some(hp)) => match normalize_abs(hp) {
                    Ok(path) if path == "/" => {
                        self.err(
                            field(&p, "host_path"),
                            "the host's root cannot be bind-mounted",
                        );
                        None
                    }
                    Ok(path) => Some(VolumeSource::HostPath { path }),
                    Err(e) => {
                        self.err(field(&p, "host_path"), e);
                        None
                    }
                },
                _ => {
                    self.hint(&p, "give exactly one of `size_gb` (a PVE-managed volume) or `host_path` (a bind mount)", "for most apps `size_gb` is right");
                    None
                }
            };
            if let Some(source) = source {
                out.push(VolumeSpec {
                    name: r.name.clone(),
                    mount_path: normalize_abs(&r.mount_path).unwrap_or_default(),
                    source,
                    required: r.required.unwrap_or(true),
                    label: r.label.clone(),
                    description: r.description.clone(),
                });
            }
        }
        out
    }
}

pub(super) fn is_user_name(s: &str) -> bool {
    static R: OnceLock<Regex> = OnceLock::new();
    re(&R, r"^[a-z_][a-z0-9_-]{0,31}$").is_match(s)
}

pub(super) fn is_http_url(s: &str) -> bool {
    static R: OnceLock<Regex> = OnceLock::new();
    re(&R, r"^https?://[A-Za-z0-9.\-\[\]:]+(/\S*)?$").is_match(s)
}

pub(super) fn to_kebab(s: &str) -> String {
    let mut out = String::new();
    for c in s.trim().chars() {
        if c.is_ascii_alphanumeric() {
            if c.is_ascii_uppercase() && !out.is_empty() && !out.ends_with('-') {
                out.push('-');
            }
            out.push(c.to_ascii_lowercase());
        } else if !out.ends_with('-') && !out.is_empty() {
            out.push('-');
        }
    }
    out.trim_end_matches('-').to_string()
}
