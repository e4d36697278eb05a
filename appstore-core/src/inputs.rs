//! Install form values: checking and coercing what a user submitted against a manifest's inputs, with
//! every field error at once, and secrets marked so that callers can redact them.

use crate::diag::did_you_mean;
use crate::manifest::{InputSpec, InputType, InputValidation, Manifest};
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt;

/// A typed input value.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum InputValue {
    /// Text (string, secret and select fields).
    Text(String),
    /// A number.
    Number(serde_json::Number),
    /// A boolean.
    Bool(bool),
}

impl fmt::Display for InputValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            InputValue::Text(s) => f.write_str(s),
            InputValue::Number(n) => write!(f, "{n}"),
            InputValue::Bool(b) => write!(f, "{b}"),
        }
    }
}

impl InputValue {
    /// The value as JSON.
    pub fn to_json(&self) -> serde_json::Value {
        match self {
            InputValue::Text(s) => serde_json::Value::String(s.clone()),
            InputValue::Number(n) => serde_json::Value::Number(n.clone()),
            InputValue::Bool(b) => serde_json::Value::Bool(*b),
        }
    }

    fn is_empty_text(&self) -> bool {
        matches!(self, InputValue::Text(s) if s.is_empty())
    }
}

/// Turns a JSON value into a value of `kind`, accepting the forms a browser form sends ("5", "true").
pub fn coerce(kind: InputType, value: &serde_json::Value) -> Result<InputValue, String> {
    use serde_json::Value as J;
    match (kind, value) {
        (InputType::Number, J::Number(n)) => Ok(InputValue::Number(n.clone())),
        (InputType::Number, J::String(s)) => {
            let s = s.trim();
            if let Ok(i) = s.parse::<i64>() {
                Ok(InputValue::Number(i.into()))
            } else {
                s.parse::<f64>()
                    .ok()
                    .filter(|f| f.is_finite())
                    .and_then(serde_json::Number::from_f64)
                    .map(InputValue::Number)
                    .ok_or_else(|| format!("`{s}` is not a number"))
            }
        }
        (InputType::Boolean, J::Bool(b)) => Ok(InputValue::Bool(*b)),
        (InputType::Boolean, J::String(s)) => match s.trim().to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" | "on" => Ok(InputValue::Bool(true)),
            "false" | "0" | "no" | "off" | "" => Ok(InputValue::Bool(false)),
            other => Err(format!("`{other}` is not a boolean (true or false)")),
        },
        (InputType::String | InputType::Secret | InputType::Select, J::String(s)) => {
            Ok(InputValue::Text(s.clone()))
        }
        (InputType::String | InputType::Secret | InputType::Select, J::Number(n)) => {
            Ok(InputValue::Text(n.to_string()))
        }
        (kind, other) => Err(format!(
            "expected {}, found {}",
            match kind {
                InputType::Number => "a number",
                InputType::Boolean => "a boolean",
                _ => "text",
            },
            match other {
                J::Null => "null",
                J::Bool(_) => "a boolean",
                J::Number(_) => "a number",
                J::String(_) => "text",
                J::Array(_) => "a list",
                J::Object(_) => "an object",
            }
        )),
    }
}

/// Checks a typed value against a field's validation; the message says what is allowed.
pub fn check(kind: InputType, rules: &InputValidation, value: &InputValue) -> Result<(), String> {
    match value {
        InputValue::Text(s) => {
            let len = s.chars().count() as f64;
            if let Some(min) = rules.min {
                if len < min {
                    return Err(format!("must be at least {min} characters long"));
                }
            }
            if let Some(max) = rules.max {
                if len > max {
                    return Err(format!("must be at most {max} characters long"));
                }
            }
            if let Some(re) = &rules.regex {
                if !re.is_match(s) {
                    let shown = if kind == InputType::Secret {
                        "the value".to_string()
                    } else {
                        format!("`{s}`")
                    };
                    return Err(format!(
                        "{shown} does not match the pattern `{}`",
                        re.as_str()
                    ));
                }
            }
        }
        InputValue::Number(n) => {
            let f = n.as_f64().unwrap_or(f64::NAN);
            if let Some(min) = rules.min {
                if f < min {
                    return Err(format!("must be at least {min}"));
                }
            }
            if let Some(max) = rules.max {
                if f > max {
                    return Err(format!("must be at most {max}"));
                }
            }
        }
        InputValue::Bool(_) => {}
    }
    if !rules.one_of.is_empty() && !rules.one_of.contains(value) {
        let choices: Vec<String> = rules.one_of.iter().map(|v| v.to_string()).collect();
        return Err(format!("`{value}` is not one of: {}", choices.join(", ")));
    }
    Ok(())
}

/// One problem with one submitted field.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldError {
    /// The input key.
    pub field: String,
    /// What is wrong and what is allowed.
    pub message: String,
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

/// One resolved input.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ResolvedInput {
    /// The value (a hidden conditional field holds its default, or empty text).
    pub value: InputValue,
    /// The value must never be shown or logged.
    pub secret: bool,
    /// The value was generated by the store (a random password).
    pub generated: bool,
    /// The field was hidden by its `show_when` condition.
    pub hidden: bool,
}

/// Every input of a manifest with its checked value, in manifest order.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(transparent)]
pub struct ResolvedInputs(BTreeMap<String, ResolvedInput>);

impl ResolvedInputs {
    /// The resolved input for `key`.
    pub fn get(&self, key: &str) -> Option<&ResolvedInput> {
        self.0.get(key)
    }

    /// All inputs by key.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &ResolvedInput)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// The values of secret inputs, for redaction.
    pub fn secret_values(&self) -> Vec<String> {
        self.0
            .values()
            .filter(|v| v.secret)
            .map(|v| v.value.to_string())
            .filter(|s| !s.is_empty())
            .collect()
    }

    /// All values as a JSON object (the contents of `inputs.json`). Contains secrets.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::Value::Object(
            self.0
                .iter()
                .map(|(k, v)| (k.clone(), v.value.to_json()))
                .collect(),
        )
    }

    /// The values with secrets replaced by `***`, safe to store or show.
    pub fn redacted_json(&self) -> serde_json::Value {
        serde_json::Value::Object(
            self.0
                .iter()
                .map(|(k, v)| {
                    let shown = if v.secret {
                        serde_json::Value::String("***".into())
                    } else {
                        v.value.to_json()
                    };
                    (k.clone(), shown)
                })
                .collect(),
        )
    }
}

/// Checks and coerces `submitted` (field key -> JSON value) against `manifest`'s inputs. Missing values
/// take their default; empty `generate` secrets get a value from `generate_secret`. Every field error is
/// reported at once.
pub fn resolve(
    manifest: &Manifest,
    submitted: &serde_json::Map<String, serde_json::Value>,
    generate_secret: &mut dyn FnMut() -> String,
) -> Result<ResolvedInputs, Vec<FieldError>> {
    let mut errors = Vec::new();
    let specs = manifest.inputs();
    for key in submitted.keys() {
        if !specs.iter().any(|s| &s.key == key) {
            let hint = did_you_mean(key, specs.iter().map(|s| s.key.as_str()))
                .map(|h| format!("; {h}"))
                .unwrap_or_default();
            errors.push(FieldError {
                field: key.clone(),
                message: format!("this app has no input named `{key}`{hint}"),
            });
        }
    }

    let mut out = BTreeMap::new();
    for spec in specs {
        let secret = spec.kind == InputType::Secret;
        let hidden = !is_shown(spec, &out);
        let submitted_value = submitted.get(&spec.key).filter(|v| !v.is_null());
        let mut generated = false;
        let value = if hidden {
            Ok(spec
                .default
                .clone()
                .unwrap_or_else(|| empty_value(spec.kind)))
        } else {
            match submitted_value.map(|v| coerce(spec.kind, v)) {
                Some(Err(e)) => Err(e),
                Some(Ok(v)) if !v.is_empty_text() => Ok(v),
                _ => {
                    if spec.generate {
                        generated = true;
                        Ok(InputValue::Text(generate_secret()))
                    } else if let Some(d) = &spec.default {
                        Ok(d.clone())
                    } else if spec.required {
                        Err("a value is required".to_string())
                    } else {
                        Ok(empty_value(spec.kind))
                    }
                }
            }
            .and_then(|v| {
                if v.is_empty_text() {
                    Ok(v)
                } else {
                    check(spec.kind, &spec.validation, &v).map(|()| v)
                }
            })
        };
        match value {
            Ok(value) => {
                out.insert(
                    spec.key.clone(),
                    ResolvedInput {
                        value,
                        secret,
                        generated,
                        hidden,
                    },
                );
            }
            Err(message) => errors.push(FieldError {
                field: spec.key.clone(),
                message,
            }),
        }
    }
    if errors.is_empty() {
        Ok(ResolvedInputs(out))
    } else {
        Err(errors)
    }
}

fn empty_value(kind: InputType) -> InputValue {
    match kind {
        InputType::Boolean => InputValue::Bool(false),
        _ => InputValue::Text(String::new()),
    }
}

fn is_shown(spec: &InputSpec, resolved: &BTreeMap<String, ResolvedInput>) -> bool {
    match &spec.show_when {
        None => true,
        Some(cond) => match resolved.get(&cond.input) {
            Some(other) if !other.hidden => cond.values.contains(&other.value),
            _ => false,
        },
    }
}
