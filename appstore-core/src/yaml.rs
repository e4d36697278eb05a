//! The one place that calls the YAML library (serde_yaml, frozen upstream), so it can be swapped for a
//! maintained fork without touching anything else. Everything past this module sees `serde_json::Value`.

use serde::Serialize;

/// A YAML document that could not be read, with the position the parser reported.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}{message}", location.map(|(l, c)| format!("line {l} column {c}: ")).unwrap_or_default())]
pub struct YamlError {
    /// 1-based line and column, when known.
    pub location: Option<(usize, usize)>,
    /// The parser's description of the problem.
    pub message: String,
}

/// Parses YAML text into a generic value tree (mappings must have string keys).
pub fn parse_value(text: &str) -> Result<serde_json::Value, YamlError> {
    // Through serde_yaml's own Value first: it refuses duplicate keys, which a direct read into a
    // JSON value would silently collapse to the last one.
    let value = serde_yaml::from_str::<serde_yaml::Value>(text).map_err(|e| YamlError {
        location: e.location().map(|l| (l.line(), l.column())),
        message: strip_location(&e.to_string()),
    })?;
    serde_json::to_value(value).map_err(|e| YamlError {
        location: None,
        message: format!("unsupported YAML (only plain mappings, lists and scalars): {e}"),
    })
}

/// Writes any serializable value as YAML text.
pub fn to_string<T: Serialize>(value: &T) -> Result<String, YamlError> {
    serde_yaml::to_string(value).map_err(|e| YamlError {
        location: None,
        message: e.to_string(),
    })
}

/// serde_yaml appends " at line L column C"; the location is kept separately.
fn strip_location(message: &str) -> String {
    let Some(start) = message.find(" at line ") else {
        return message.to_string();
    };
    let rest = &message[start + " at line ".len()..];
    let end = rest
        .find(" column ")
        .map(|c| c + " column ".len())
        .map(|c| {
            c + rest[c..]
                .find(|ch: char| !ch.is_ascii_digit())
                .unwrap_or(rest.len() - c)
        })
        .unwrap_or(0);
    format!("{}{}", &message[..start], &rest[end..])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_syntax_error_with_position() {
        let err = parse_value("a: [1, 2\nb: 3\n").unwrap_err();
        assert!(err.location.is_some(), "{err:?}");
    }

    #[test]
    fn rejects_duplicate_keys() {
        let err = parse_value("a: 1\na: 2\n").unwrap_err();
        assert!(err.message.contains("duplicate"), "{err}");
    }
}
