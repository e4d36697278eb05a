//! The PVE API schema subsets (copied from the real 8.4 `apidata.json` and 9.1 `apidata-9.1.json`)
//! and request validation as a real node does it: unknown path or method -> 501, unknown or missing parameter, wrong type or format ->
//! 400 with PVE's per-parameter messages.

use regex::Regex;
use serde_json::Value;
use std::collections::BTreeMap;
use std::sync::OnceLock;

/// The committed 8.4 subset: `{ path: { METHOD: info } }` with `info` verbatim from `apidata.json`.
pub const SUBSET_JSON: &str = include_str!("../data/api-subset.json");
/// The same endpoints from the 9.1 schema (`apidata-9.1.json`).
pub const SUBSET_9_JSON: &str = include_str!("../data/api-subset-9.1.json");
/// The endpoints the subset holds, one `METHOD /path` a line.
pub const ENDPOINTS: &str = include_str!("../data/endpoints.txt");

/// One API method of one path.
#[derive(Debug, Clone)]
pub struct Endpoint {
    /// HTTP method.
    pub method: String,
    /// Path template, `/nodes/{node}/lxc/{vmid}/config`.
    pub template: String,
    /// The schema's `info` for it.
    pub info: Value,
}

impl Endpoint {
    /// Parameter schemas by name (indexed ones as `net[n]`).
    pub fn properties(&self) -> Option<&serde_json::Map<String, Value>> {
        self.info.get("parameters")?.get("properties")?.as_object()
    }

    /// True when the endpoint answers with a task id (`returns.type == "string"` for the async calls).
    pub fn permissions(&self) -> Option<&Value> {
        self.info.get("permissions")
    }
}

/// The loaded subset.
#[derive(Debug)]
pub struct Schema {
    endpoints: Vec<Endpoint>,
}

/// Why a request cannot be routed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotImplemented {
    /// `Method 'PATCH /nodes' not implemented`.
    pub message: String,
}

/// The 8.4 schema (the simulator's 8.x releases).
pub fn schema() -> &'static Schema {
    static S: OnceLock<Schema> = OnceLock::new();
    S.get_or_init(|| Schema::from_subset(SUBSET_JSON))
}

/// The 9.1 schema (the simulator's 9.x releases).
pub fn schema_9() -> &'static Schema {
    static S: OnceLock<Schema> = OnceLock::new();
    S.get_or_init(|| Schema::from_subset(SUBSET_9_JSON))
}

impl Schema {
    /// Parses a subset document.
    pub fn from_subset(text: &str) -> Schema {
        let doc: Value =
            serde_json::from_str(text).unwrap_or_else(|e| panic!("api-subset.json: {e}"));
        let mut endpoints = Vec::new();
        if let Some(paths) = doc.as_object() {
            for (template, methods) in paths {
                for (method, info) in methods.as_object().into_iter().flatten() {
                    endpoints.push(Endpoint {
                        method: method.clone(),
                        template: template.clone(),
                        info: info.clone(),
                    });
                }
            }
        }
        Schema { endpoints }
    }

    /// The whole schema from the real `apidata.json` tree (for the conformance test).
    pub fn from_apidata(text: &str) -> Schema {
        fn walk(node: &Value, out: &mut Vec<Endpoint>) {
            let path = node.get("path").and_then(Value::as_str).unwrap_or("");
            for (method, info) in node
                .get("info")
                .and_then(Value::as_object)
                .into_iter()
                .flatten()
            {
                out.push(Endpoint {
                    method: method.clone(),
                    template: path.to_string(),
                    info: info.clone(),
                });
            }
            for child in node
                .get("children")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                walk(child, out);
            }
        }
        let doc: Value = serde_json::from_str(text).unwrap_or_else(|e| panic!("apidata.json: {e}"));
        let mut endpoints = Vec::new();
        for n in doc.as_array().into_iter().flatten() {
            walk(n, &mut endpoints);
        }
        Schema { endpoints }
    }

    /// The subset document for the endpoints listed in `ENDPOINTS`, taken from a full schema.
    pub fn subset_document(&self) -> Value {
        let mut doc = serde_json::Map::new();
        for line in ENDPOINTS
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
        {
            let Some((method, path)) = line.split_once(' ') else {
                continue;
            };
            if let Some(e) = self
                .endpoints
                .iter()
                .find(|e| e.method == method && e.template == path)
            {
                let entry = doc
                    .entry(path.to_string())
                    .or_insert_with(|| Value::Object(Default::default()));
                if let Value::Object(m) = entry {
                    m.insert(method.to_string(), e.info.clone());
                }
            }
        }
        Value::Object(doc)
    }

    /// All endpoints.
    pub fn endpoints(&self) -> &[Endpoint] {
        &self.endpoints
    }

    /// The endpoint for `method` and a concrete `path`, with the path's parameters.
    pub fn route(
        &self,
        method: &str,
        path: &str,
    ) -> Result<(&Endpoint, BTreeMap<String, String>), NotImplemented> {
        let segs: Vec<&str> = path.trim_end_matches('/').split('/').collect();
        for e in &self.endpoints {
            if e.method != method {
                continue;
            }
            let tsegs: Vec<&str> = e.template.split('/').collect();
            if tsegs.len() != segs.len() {
                continue;
            }
            let mut params = BTreeMap::new();
            let ok = tsegs.iter().zip(&segs).all(|(t, s)| {
                if let Some(name) = t.strip_prefix('{').and_then(|t| t.strip_suffix('}')) {
                    if s.is_empty() {
                        return false;
                    }
                    params.insert(name.to_string(), percent_decode(s));
                    true
                } else {
                    t == s
                }
            });
            if ok {
                return Ok((e, params));
            }
        }
        Err(NotImplemented {
            message: format!("Method '{method} {path}' not implemented"),
        })
    }
}

/// Decodes `%XX` escapes of a path segment.
pub fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let Ok(b) = u8::from_str_radix(&s[i + 1..i + 3], 16) {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The schema entry for parameter `name`, resolving indexed names (`net0` -> `net[n]`).
pub fn property<'a>(props: &'a serde_json::Map<String, Value>, name: &str) -> Option<&'a Value> {
    if let Some(p) = props.get(name) {
        return Some(p);
    }
    let base = name.trim_end_matches(|c: char| c.is_ascii_digit());
    if base.len() < name.len() {
        return props.get(&format!("{base}[n]"));
    }
    None
}

/// Checks request parameters (path, query and body, as strings) against an endpoint. Returns PVE's
/// per-parameter messages.
pub fn validate(
    endpoint: &Endpoint,
    params: &BTreeMap<String, String>,
) -> Result<(), BTreeMap<String, String>> {
    let mut errors = BTreeMap::new();
    let empty = serde_json::Map::new();
    let props = endpoint.properties().unwrap_or(&empty);
    let additional = endpoint
        .info
        .get("parameters")
        .and_then(|p| p.get("additionalProperties"))
        .and_then(Value::as_bool)
        .unwrap_or(false);
    for (name, value) in params {
        match property(props, name) {
            Some(schema) => {
                if let Err(msg) = check_value(schema, value) {
                    errors.insert(name.clone(), msg);
                }
            }
            None if additional => {}
            None => {
                errors.insert(
                    name.clone(),
                    "property is not defined in schema and the schema does not allow additional properties".into(),
                );
            }
        }
    }
    for (name, schema) in props {
        if name.ends_with("[n]") {
            continue;
        }
        let optional = schema
            .get("optional")
            .and_then(|o| o.as_u64().map(|n| n == 1).or(o.as_bool()))
            .unwrap_or(false);
        if !optional && !params.contains_key(name) {
            errors.insert(
                name.clone(),
                "property is missing and it is not optional".into(),
            );
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors)
    }
}

fn num(schema: &Value, key: &str) -> Option<f64> {
    schema.get(key).and_then(Value::as_f64)
}

fn fmt_num(n: f64) -> String {
    if n.fract() == 0.0 {
        format!("{}", n as i64)
    } else {
        n.to_string()
    }
}

/// Checks one value against its parameter schema, with PVE's wording.
pub fn check_value(schema: &Value, value: &str) -> Result<(), String> {
    let ty = schema
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or("string");
    match ty {
        "boolean" => {
            if value != "0" && value != "1" {
                return Err(format!("type check ('boolean') failed - got '{value}'"));
            }
        }
        "integer" => {
            let n: i64 = value
                .parse()
                .map_err(|_| format!("type check ('integer') failed - got '{value}'"))?;
            range(schema, n as f64)?;
        }
        "number" => {
            let n: f64 = value
                .parse()
                .map_err(|_| format!("type check ('number') failed - got '{value}'"))?;
            range(schema, n)?;
        }
        _ => {
            if let Some(max) = num(schema, "maxLength") {
                if value.chars().count() as f64 > max {
                    return Err(format!(
                        "value may only be {} characters long",
                        fmt_num(max)
                    ));
                }
            }
            if let Some(Value::Array(choices)) = schema.get("enum") {
                if !choices.iter().any(|c| c.as_str() == Some(value)) {
                    let list: Vec<&str> = choices.iter().filter_map(Value::as_str).collect();
                    return Err(format!(
                        "value '{value}' does not have a value in the enumeration '{}'",
                        list.join(", ")
                    ));
                }
            }
            if let Some(p) = schema.get("pattern").and_then(Value::as_str) {
                if !full_match(p, value) {
                    return Err("value does not match the regex pattern".into());
                }
            }
            match schema.get("format") {
                Some(Value::String(f)) => check_format(f, value)?,
                Some(Value::Object(sub)) => check_property_string(sub, value)?,
                _ => {}
            }
        }
    }
    Ok(())
}

fn range(schema: &Value, n: f64) -> Result<(), String> {
    if let Some(min) = num(schema, "minimum") {
        if n < min {
            return Err(format!(
                "value must have a minimum value of {}",
                fmt_num(min)
            ));
        }
    }
    if let Some(max) = num(schema, "maximum") {
        if n > max {
            return Err(format!(
                "value must have a maximum value of {}",
                fmt_num(max)
            ));
        }
    }
    Ok(())
}

fn full_match(pattern: &str, value: &str) -> bool {
    // Perl patterns in the schema are written for whole values.
    Regex::new(&format!("^(?:{pattern})$"))
        .map(|r| r.is_match(value))
        .unwrap_or(true)
}

fn re(pattern: &str) -> Regex {
    Regex::new(pattern).unwrap_or_else(|e| panic!("built-in pattern {pattern}: {e}"))
}

/// Named string formats of the PVE schema that the product's requests use.
pub fn check_format(format: &str, value: &str) -> Result<(), String> {
    static NODE: OnceLock<Regex> = OnceLock::new();
    static DNS: OnceLock<Regex> = OnceLock::new();
    static STORAGE: OnceLock<Regex> = OnceLock::new();
    static POOL: OnceLock<Regex> = OnceLock::new();
    static CONFIGID: OnceLock<Regex> = OnceLock::new();
    static TAG: OnceLock<Regex> = OnceLock::new();
    static VOLID: OnceLock<Regex> = OnceLock::new();
    let ok = match format {
        "pve-node" => NODE.get_or_init(|| re(r"^(?i:[a-z0-9](?:[a-z0-9\-]*[a-z0-9])?)$")).is_match(value),
        "dns-name" => DNS
            .get_or_init(|| re(r"^(?i:(?:[a-z0-9](?:[a-z0-9\-]*[a-z0-9])?\.)*[a-z0-9](?:[a-z0-9\-]*[a-z0-9])?)$"))
            .is_match(value),
        "pve-storage-id" => STORAGE.get_or_init(|| re(r"^(?i:[a-z][a-z0-9\-_.]*[a-z0-9])$")).is_match(value),
        "pve-poolid" => POOL.get_or_init(|| re(r"^[A-Za-z0-9.\-_]+(?:/[A-Za-z0-9.\-_]+){0,2}$")).is_match(value),
        "pve-configid" => CONFIGID.get_or_init(|| re(r"^(?i:[a-z][a-z0-9_]+)$")).is_match(value),
        "pve-vmid" => value.parse::<u64>().is_ok_and(|n| (100..=999_999_999).contains(&n)),
        "pve-tag-list" => value
            .split([',', ';', ' '])
            .filter(|t| !t.is_empty())
            .all(|t| TAG.get_or_init(|| re(r"^(?i:[a-z0-9_][a-z0-9_\-+.]*)$")).is_match(t)),
        "pve-volume-id" => VOLID.get_or_init(|| re(r"^(?i:[a-z][a-z0-9\-_.]*[a-z0-9]):.+$")).is_match(value),
        "pve-configid-list" => value.split([',', ';', ' ']).filter(|t| !t.is_empty()).all(|t| check_format("pve-configid", t).is_ok()),
        "pve-storage-id-list" => value.split([',', ';', ' ']).filter(|t| !t.is_empty()).all(|t| check_format("pve-storage-id", t).is_ok()),
        "pve-vmid-list" => value.split([',', ';', ' ']).filter(|t| !t.is_empty()).all(|t| check_format("pve-vmid", t).is_ok()),
        "pve-storage-content" | "pve-storage-content-list" => value
            .split([',', ';', ' '])
            .filter(|t| !t.is_empty())
            .all(|t| ["images", "rootdir", "vztmpl", "iso", "backup", "snippets", "import"].contains(&t)),
        "ipv4" => value.parse::<std::net::Ipv4Addr>().is_ok(),
        "ipv6" => value.parse::<std::net::Ipv6Addr>().is_ok(),
        "mac-addr" => value.len() == 17 && value.split(':').all(|b| b.len() == 2 && u8::from_str_radix(b, 16).is_ok()),
        "pve-ipv4-config" => value == "dhcp" || value == "manual" || cidr(value, false),
        "pve-ipv6-config" => ["dhcp", "auto", "manual"].contains(&value) || cidr(value, true),
        "disk-size" => disk_size(value),
        _ => true,
    };
    if ok {
        Ok(())
    } else {
        Err(format!(
            "invalid format - value '{value}' is not a valid {format}"
        ))
    }
}

fn cidr(value: &str, v6: bool) -> bool {
    let Some((addr, prefix)) = value.split_once('/') else {
        return false;
    };
    let Ok(prefix) = prefix.parse::<u8>() else {
        return false;
    };
    if v6 {
        addr.parse::<std::net::Ipv6Addr>().is_ok() && prefix <= 128
    } else {
        addr.parse::<std::net::Ipv4Addr>().is_ok() && prefix <= 32
    }
}

fn disk_size(value: &str) -> bool {
    let (num, unit) = value.split_at(
        value
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(value.len()),
    );
    num.parse::<f64>().is_ok() && ["", "K", "M", "G", "T"].contains(&unit)
}

/// Checks a property string (`name=eth0,bridge=vmbr0,ip=dhcp`) against its sub-schema.
pub fn check_property_string(
    sub: &serde_json::Map<String, Value>,
    value: &str,
) -> Result<(), String> {
    let default_key = sub
        .iter()
        .find(|(_, s)| s.get("default_key").and_then(Value::as_u64) == Some(1))
        .map(|(k, _)| k.clone());
    let mut seen = BTreeMap::new();
    for part in value.split(',') {
        if part.is_empty() {
            continue;
        }
        let (key, val) = match part.split_once('=') {
            Some((k, v)) => (k.to_string(), v.to_string()),
            None => match &default_key {
                Some(k) if !seen.contains_key(k) => (k.clone(), part.to_string()),
                _ => return Err("invalid format - value without key, but schema does not define a default key\n".to_string()),
            },
        };
        let Some(schema) = sub.get(&key).or_else(|| {
            sub.iter()
                .find(|(_, s)| s.get("alias").and_then(Value::as_str) == Some(key.as_str()))
                .map(|(_, s)| s)
        }) else {
            return Err(format!("invalid format - format error\n{key}: property is not defined in schema and the schema does not allow additional properties\n"));
        };
        if seen.insert(key.clone(), val.clone()).is_some() {
            return Err(format!(
                "invalid format - duplicate key in comma-separated list property: {key}\n"
            ));
        }
        let ty = schema
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or("string");
        let checked = if ty == "boolean" {
            // Property strings accept PVE's boolean spellings.
            if ["0", "1", "yes", "no", "on", "off", "true", "false"]
                .contains(&val.to_ascii_lowercase().as_str())
            {
                Ok(())
            } else {
                Err(format!("type check ('boolean') failed - got '{val}'"))
            }
        } else {
            check_value(schema, &val)
        };
        if let Err(e) = checked {
            return Err(format!("invalid format - format error\n{key}: {e}\n"));
        }
    }
    for (key, schema) in sub {
        let optional = schema.get("optional").and_then(Value::as_u64) == Some(1);
        if !optional && !seen.contains_key(key) && schema.get("alias").is_none() {
            return Err(format!("invalid format - format error\n{key}: property is missing and it is not optional\n"));
        }
    }
    Ok(())
}
