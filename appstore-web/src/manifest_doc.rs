//! The manifest reference in Markdown, generated from the JSON Schema of `app.yml` (which comes from
//! the doc comments of the manifest's own types), so the catalog's CONTRIBUTING.md cannot drift from
//! what the validator accepts. `pve-appstore catalog reference` prints it.

use serde_json::Value;
use std::fmt::Write as _;

/// The reference: the top-level fields, then each nested mapping, each enumeration's values.
pub fn markdown() -> String {
    let schema = appstore_core::manifest::json_schema();
    let defs = schema.get("$defs").cloned().unwrap_or(Value::Null);
    let mut out = String::new();
    let mut sections = vec![("app.yml".to_string(), schema.clone())];
    let mut seen = vec!["app.yml".to_string()];
    let mut i = 0;
    while i < sections.len() {
        let (title, node) = sections[i].clone();
        i += 1;
        let _ = writeln!(out, "### `{title}`\n");
        if let Some(d) = node.get("description").and_then(Value::as_str) {
            if title != "app.yml" {
                let _ = writeln!(out, "{}\n", one_line(d));
            }
        }
        if let Some(values) = enum_values(&node) {
            let _ = writeln!(out, "| Value | Meaning |\n| --- | --- |");
            for (v, doc) in values {
                let _ = writeln!(out, "| `{v}` | {} |", cell(&doc));
            }
            out.push('\n');
            continue;
        }
        let required: Vec<&str> = node
            .get("required")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        let Some(props) = node.get("properties").and_then(Value::as_object) else {
            continue;
        };
        let _ = writeln!(
            out,
            "| Field | Type | Default | Meaning |\n| --- | --- | --- | --- |"
        );
        for (name, prop) in props {
            let (mut ty, refs) = type_of(prop);
            for r in refs {
                let path = format!("{title}.{name}")
                    .trim_start_matches("app.yml.")
                    .to_string();
                let target = defs.get(&r).cloned().unwrap_or(Value::Null);
                let label = if enum_values(&target).is_some() {
                    display_name(&r)
                } else {
                    path
                };
                let word = if enum_values(&target).is_some() {
                    format!("one of [`{label}`](#{})", anchor(&label))
                } else {
                    format!("mapping ([`{label}`](#{}))", anchor(&label))
                };
                ty = ty.replace(&format!("{{ref:{r}}}"), &word);
                if !seen.contains(&label) && !target.is_null() {
                    seen.push(label.clone());
                    sections.push((label, target));
                }
            }
            let default = if required.contains(&name.as_str()) {
                "required".to_string()
            } else {
                match prop.get("default") {
                    None | Some(Value::Null) => "none".into(),
                    Some(Value::Object(_)) => "see below".into(),
                    Some(v) => format!("`{v}`"),
                }
            };
            let doc = prop
                .get("description")
                .and_then(Value::as_str)
                .unwrap_or("");
            let _ = writeln!(out, "| `{name}` | {ty} | {default} | {} |", cell(doc));
        }
        out.push('\n');
    }
    out
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn cell(s: &str) -> String {
    one_line(s).replace('|', "\\|")
}

/// `RawGpuVendor` → `GpuVendor`: the name without the parser's prefix.
fn display_name(def: &str) -> String {
    def.strip_prefix("Raw").unwrap_or(def).to_string()
}

/// The values of an enumeration (`enum` or `oneOf` of constants), each with its doc.
fn enum_values(node: &Value) -> Option<Vec<(String, String)>> {
    if let Some(values) = node.get("enum").and_then(Value::as_array) {
        return Some(values.iter().map(|v| (plain(v), String::new())).collect());
    }
    let alts = node.get("oneOf").and_then(Value::as_array)?;
    let mut out = Vec::new();
    for a in alts {
        let v = a
            .get("const")
            .or_else(|| a.get("enum").and_then(|e| e.get(0)))?;
        let doc = a.get("description").and_then(Value::as_str).unwrap_or("");
        out.push((plain(v), doc.to_string()));
    }
    Some(out)
}

fn plain(v: &Value) -> String {
    v.as_str().map_or_else(|| v.to_string(), str::to_string)
}

/// A property's type in words and the definitions it refers to.
fn type_of(prop: &Value) -> (String, Vec<String>) {
    if let Some(r) = prop.get("$ref").and_then(Value::as_str) {
        let name = r.rsplit('/').next().unwrap_or(r).to_string();
        return (format!("{{ref:{name}}}"), vec![name]);
    }
    if let Some(alts) = prop.get("anyOf").and_then(Value::as_array) {
        let mut words = Vec::new();
        let mut refs = Vec::new();
        for a in alts {
            if a.get("type").and_then(Value::as_str) == Some("null") {
                continue;
            }
            let (w, r) = type_of(a);
            words.push(w);
            refs.extend(r);
        }
        return (words.join(" or "), refs);
    }
    let ty = match prop.get("type") {
        Some(Value::String(t)) => t.clone(),
        Some(Value::Array(ts)) => ts
            .iter()
            .filter_map(Value::as_str)
            .filter(|t| *t != "null")
            .collect::<Vec<_>>()
            .join(" or "),
        _ => "any".into(),
    };
    if ty == "array" {
        let (inner, refs) = prop
            .get("items")
            .map(type_of)
            .unwrap_or(("any".into(), Vec::new()));
        return (format!("list of {inner}"), refs);
    }
    if ty == "object" {
        if let Some(v) = prop.get("additionalProperties").filter(|v| v.is_object()) {
            let (inner, refs) = type_of(v);
            return (format!("mapping to {inner}"), refs);
        }
        return ("mapping".into(), Vec::new());
    }
    (ty, Vec::new())
}

/// GitHub's anchor of a heading that is the code span `name`.
fn anchor(name: &str) -> String {
    name.to_ascii_lowercase()
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
        .collect()
}
