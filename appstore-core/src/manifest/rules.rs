//! One input's value and its rules: the typed value, the `validation` block, coercion of what a form
//! sent and the check against the rules. Shared by the manifest validator (defaults, `enum`) and by
//! install-form resolution.

use super::raw::RawInputType as InputType;
use regex::Regex;
use serde::{Serialize, Serializer};
use std::fmt;

/// A compiled `validation.regex` that must match the whole value.
#[derive(Debug, Clone)]
pub struct Pattern {
    source: String,
    compiled: Regex,
}

impl Pattern {
    /// Compiles `source` anchored at both ends.
    pub fn new(source: &str) -> Result<Pattern, String> {
        Regex::new(&format!("^(?:{source})$"))
            .map(|compiled| Pattern {
                source: source.to_string(),
                compiled,
            })
            .map_err(|e| match e {
                regex::Error::Syntax(s) => s
                    .lines()
                    .last()
                    .unwrap_or("invalid regular expression")
                    .trim_start_matches("error: ")
                    .to_string(),
                other => other.to_string(),
            })
    }

    /// True when the whole of `s` matches.
    pub fn is_match(&self, s: &str) -> bool {
        self.compiled.is_match(s)
    }

    /// The pattern as written in the manifest.
    pub fn as_str(&self) -> &str {
        &self.source
    }
}

impl Serialize for Pattern {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.source)
    }
}

/// Constraints on an input's value.
#[derive(Debug, Clone, Default, Serialize)]
#[non_exhaustive]
pub struct InputValidation {
    /// Whole-value pattern.
    pub regex: Option<Pattern>,
    /// Minimum value (numbers) or length (text).
    pub min: Option<f64>,
    /// Maximum value (numbers) or length (text).
    pub max: Option<f64>,
    /// Allowed values (empty: any).
    #[serde(rename = "enum")]
    pub one_of: Vec<InputValue>,
}

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

    pub(crate) fn is_empty_text(&self) -> bool {
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
pub fn check_value(
    kind: InputType,
    rules: &InputValidation,
    value: &InputValue,
) -> Result<(), String> {
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
