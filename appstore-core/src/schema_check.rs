//! Structural check of a document against the JSON Schema that schemars derives from its raw types.
//!
//! serde stops at the first problem; this walk reports every unknown key (with a "did you mean" hint),
//! every value of the wrong type and every missing required field, and removes unknown keys so that the
//! typed deserialization that follows can still run. The raw types stay the one source of truth for the
//! document's shape: the same schema is what `catalog schema` prints for editors.

use crate::diag::{did_you_mean, field, index, Diagnostics};
use serde_json::Value;

/// Walks `value` against `root` (a schema with `$defs`), recording problems in `diags`. Missing
/// required keys are filled with placeholders so that the semantic checks can still run on the rest;
/// the returned paths are those placeholders, whose own diagnostics the caller drops.
pub(crate) fn check(root: &Value, value: &mut Value, diags: &mut Diagnostics) -> Vec<String> {
    let mut filled = Vec::new();
    walk(root, root, value, "", diags, &mut filled);
    filled
}

/// True when a diagnostic at `path` is about a placeholder in `filled`.
pub(crate) fn is_placeholder(filled: &[String], path: &str) -> bool {
    filled.iter().any(|f| {
        path == f
            || path
                .strip_prefix(f.as_str())
                .is_some_and(|rest| rest.starts_with('.') || rest.starts_with('['))
    })
}

/// The simplest value `schema` accepts: empty text, zero, false, the first choice, or an object with its
/// required keys filled the same way.
fn placeholder(root: &Value, schema: &Value) -> Value {
    let s = resolve(root, schema);
    if let Some(choices) = literal_choices(root, s) {
        if let Some(first) = choices.into_iter().next() {
            return Value::String(first);
        }
    }
    if let Some(Value::Array(branches)) = s.get("anyOf").or_else(|| s.get("oneOf")) {
        if let Some(b) = branches.first() {
            return placeholder(root, b);
        }
    }
    match schema_types(s).into_iter().find(|t| *t != "null") {
        Some("string") => Value::String(String::new()),
        Some("integer" | "number") => Value::from(0),
        Some("boolean") => Value::Bool(false),
        Some("array") => Value::Array(Vec::new()),
        Some("object") => {
            let mut map = serde_json::Map::new();
            if let (Some(Value::Array(required)), Some(props)) = (
                s.get("required"),
                s.get("properties").and_then(Value::as_object),
            ) {
                for r in required.iter().filter_map(Value::as_str) {
                    if let Some(ps) = props.get(r) {
                        map.insert(r.to_string(), placeholder(root, ps));
                    }
                }
            }
            Value::Object(map)
        }
        _ => Value::Null,
    }
}

fn resolve<'a>(root: &'a Value, schema: &'a Value) -> &'a Value {
    let mut s = schema;
    for _ in 0..16 {
        match s.get("$ref").and_then(Value::as_str) {
            Some(r) => {
                let name = r.rsplit('/').next().unwrap_or_default();
                match root.get("$defs").and_then(|d| d.get(name)) {
                    Some(next) => s = next,
                    None => return &Value::Bool(true),
                }
            }
            None => return s,
        }
    }
    s
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "nothing (null)",
        Value::Bool(_) => "a boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "an integer",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a mapping",
    }
}

fn matches_type(t: &str, v: &Value) -> bool {
    match t {
        "null" => v.is_null(),
        "boolean" => v.is_boolean(),
        "integer" => v.is_i64() || v.is_u64(),
        "number" => v.is_number(),
        "string" => v.is_string(),
        "array" => v.is_array(),
        "object" => v.is_object(),
        _ => true,
    }
}

fn schema_types(s: &Value) -> Vec<&str> {
    match s.get("type") {
        Some(Value::String(t)) => vec![t.as_str()],
        Some(Value::Array(ts)) => ts.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    }
}

fn describe_type(t: &str) -> &str {
    match t {
        "boolean" => "a boolean (true or false)",
        "integer" => "a whole number",
        "number" => "a number",
        "string" => "a string",
        "array" => "a list",
        "object" => "a mapping",
        other => other,
    }
}

/// Would `v` be accepted by `s` at its top level (type, const, enum)? Used to choose a union branch.
fn accepts(root: &Value, s: &Value, v: &Value) -> bool {
    let s = resolve(root, s);
    if let Some(c) = s.get("const") {
        return c == v;
    }
    if let Some(Value::Array(e)) = s.get("enum") {
        return e.contains(v);
    }
    if let Some(Value::Array(branches)) = s.get("anyOf").or_else(|| s.get("oneOf")) {
        return branches.iter().any(|b| accepts(root, b, v));
    }
    let types = schema_types(s);
    types.is_empty() || types.iter().any(|t| matches_type(t, v))
}

fn literal_choices(root: &Value, s: &Value) -> Option<Vec<String>> {
    let s = resolve(root, s);
    if let Some(Value::Array(e)) = s.get("enum") {
        return Some(e.iter().map(literal).collect());
    }
    if let Some(c) = s.get("const") {
        return Some(vec![literal(c)]);
    }
    if let Some(Value::Array(branches)) = s.get("oneOf").or_else(|| s.get("anyOf")) {
        let mut all = Vec::new();
        for b in branches {
            if resolve(root, b).get("type").and_then(Value::as_str) == Some("null") {
                continue;
            }
            all.extend(literal_choices(root, b)?);
        }
        return Some(all);
    }
    None
}

fn literal(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Walks one value; returns false when the value itself is unusable, so that the caller drops it
/// (an optional field then takes its default and the later checks still run).
fn walk(
    root: &Value,
    schema: &Value,
    value: &mut Value,
    path: &str,
    diags: &mut Diagnostics,
    filled: &mut Vec<String>,
) -> bool {
    let s = resolve(root, schema);
    if s.as_bool() == Some(true) {
        return true;
    }

    // Closed sets of literal values (enums, unit variants) get one message listing the choices.
    if let Some(choices) = literal_choices(root, s) {
        if value.is_null() && accepts(root, s, value) {
            return true;
        }
        let text = literal(value);
        if !choices.contains(&text)
            || !value.is_string() && !value.is_number() && !value.is_boolean()
        {
            let hint = did_you_mean(&text, choices.iter().map(String::as_str));
            diags.push_hint(
                path,
                format!(
                    "`{}` is not one of: {}",
                    if value.is_string() {
                        text.clone()
                    } else {
                        value.to_string()
                    },
                    choices.join(", ")
                ),
                hint,
            );
            return false;
        }
        return true;
    }

    if let Some(Value::Array(branches)) = s.get("anyOf").or_else(|| s.get("oneOf")) {
        if let Some(branch) = branches.iter().find(|b| accepts(root, b, value)) {
            return walk(root, branch, value, path, diags, filled);
        } else {
            let expected: Vec<String> = branches
                .iter()
                .flat_map(|b| schema_types(resolve(root, b)))
                .filter(|t| *t != "null")
                .map(|t| describe_type(t).to_string())
                .collect();
            diags.push(
                path,
                format!(
                    "expected {}, found {}",
                    expected.join(" or "),
                    type_name(value)
                ),
            );
        }
        return false;
    }

    let types = schema_types(s);
    if !types.is_empty() && !types.iter().any(|t| matches_type(t, value)) {
        let wanted: Vec<&str> = types
            .iter()
            .filter(|t| **t != "null")
            .map(|t| describe_type(t))
            .collect();
        let hint = if types.contains(&"string") && (value.is_number() || value.is_boolean()) {
            Some(format!("quote it: \"{value}\""))
        } else {
            None
        };
        diags.push_hint(
            path,
            format!(
                "expected {}, found {}",
                wanted.join(" or "),
                type_name(value)
            ),
            hint,
        );
        return false;
    }

    if let Some(n) = value.as_f64() {
        if let Some(min) = s.get("minimum").and_then(Value::as_f64) {
            if n < min {
                diags.push(path, format!("must be at least {min}, found {value}"));
                return false;
            }
        }
        if let Some(max) = s.get("maximum").and_then(Value::as_f64) {
            if n > max {
                diags.push(path, format!("must be at most {max}, found {value}"));
                return false;
            }
        }
    }

    match value {
        Value::Object(map) => {
            let props = s.get("properties").and_then(Value::as_object);
            let additional = s.get("additionalProperties");
            if let Some(Value::Array(required)) = s.get("required") {
                for r in required.iter().filter_map(Value::as_str) {
                    if !map.contains_key(r) {
                        diags.push(field(path, r), "required key is missing");
                    }
                }
            }
            let mut unknown = Vec::new();
            for (key, v) in map.iter_mut() {
                let child = field(path, key);
                if let Some(ps) = props.and_then(|p| p.get(key)) {
                    if !walk(root, ps, v, &child, diags, filled) {
                        unknown.push(key.clone());
                    }
                } else {
                    match additional {
                        Some(Value::Bool(false)) => {
                            let hint =
                                props.and_then(|p| did_you_mean(key, p.keys().map(String::as_str)));
                            let known = props
                                .map(|p| {
                                    p.keys().map(String::as_str).collect::<Vec<_>>().join(", ")
                                })
                                .unwrap_or_default();
                            let hint = hint.or_else(|| Some(format!("known keys: {known}")));
                            diags.push_hint(&child, "unknown key", hint);
                            unknown.push(key.clone());
                        }
                        Some(extra @ Value::Object(_))
                            if !walk(root, extra, v, &child, diags, filled) =>
                        {
                            unknown.push(key.clone());
                        }
                        _ => {}
                    }
                }
            }
            for key in unknown {
                map.remove(&key);
            }
            // Required keys that are missing or were dropped get placeholders.
            if let (Some(Value::Array(required)), Some(props)) = (s.get("required"), props) {
                for r in required.iter().filter_map(Value::as_str) {
                    if !map.contains_key(r) {
                        if let Some(ps) = props.get(r) {
                            map.insert(r.to_string(), placeholder(root, ps));
                            filled.push(field(path, r));
                        }
                    }
                }
            }
        }
        Value::Array(items) => {
            if let Some(item_schema) = s.get("items") {
                let mut i = 0;
                items.retain_mut(|item| {
                    let keep = walk(root, item_schema, item, &index(path, i), diags, filled);
                    i += 1;
                    keep
                });
            }
        }
        _ => {}
    }
    true
}
