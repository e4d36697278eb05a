//! Redaction: scrubbing secret values, and the values of named keys, from log lines before they are
//! stored or shown.

/// What replaces a redacted value.
pub const MASK: &str = "***";

/// Scrubs known secret values and `KEY=value` / `KEY: value` / `"KEY": "value"` pairs of redacted keys.
#[derive(Debug, Clone, Default)]
pub struct Redactor {
    /// Longest first, so a secret that contains another is masked whole.
    secrets: Vec<String>,
    keys: Vec<String>,
}

impl Redactor {
    /// A redactor for these secret values and key names. Empty values are ignored.
    pub fn new(
        secrets: impl IntoIterator<Item = String>,
        keys: impl IntoIterator<Item = String>,
    ) -> Redactor {
        let mut secrets: Vec<String> = secrets.into_iter().filter(|s| !s.is_empty()).collect();
        secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
        secrets.dedup();
        let mut keys: Vec<String> = keys.into_iter().filter(|k| !k.is_empty()).collect();
        keys.sort();
        keys.dedup();
        Redactor { secrets, keys }
    }

    /// True when there is nothing to redact.
    pub fn is_empty(&self) -> bool {
        self.secrets.is_empty() && self.keys.is_empty()
    }

    /// The line with every secret masked.
    pub fn redact(&self, line: &str) -> String {
        let mut out = line.to_string();
        for s in &self.secrets {
            if out.contains(s.as_str()) {
                out = out.replace(s.as_str(), MASK);
            }
        }
        for k in &self.keys {
            out = mask_key(&out, k);
        }
        out
    }
}

/// Masks the value after each occurrence of `key` followed by `=`, `:` or `":` (quoted JSON).
fn mask_key(line: &str, key: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut rest = line;
    while let Some(pos) = rest.find(key) {
        let before_ok = rest[..pos]
            .chars()
            .next_back()
            .is_none_or(|c| !(c.is_ascii_alphanumeric() || c == '_'));
        let after = &rest[pos + key.len()..];
        out.push_str(&rest[..pos + key.len()]);
        rest = after;
        if !before_ok {
            continue;
        }
        let mut sep_len = 0;
        let trimmed = after.trim_start_matches('"');
        sep_len += after.len() - trimmed.len();
        let Some(sep) = trimmed.chars().next().filter(|c| *c == '=' || *c == ':') else {
            continue;
        };
        sep_len += sep.len_utf8();
        let value_part = &after[sep_len..];
        let spaces = value_part.len() - value_part.trim_start().len();
        let value_part = &value_part[spaces..];
        let (quote, body) = match value_part.chars().next() {
            Some(q @ ('"' | '\'')) => (Some(q), &value_part[1..]),
            _ => (None, value_part),
        };
        let end = match quote {
            Some(q) => body.find(q).unwrap_or(body.len()),
            None => body
                .find(|c: char| c.is_whitespace() || c == ',' || c == ';' || c == '&')
                .unwrap_or(body.len()),
        };
        out.push_str(&after[..sep_len + spaces]);
        if let Some(q) = quote {
            out.push(q);
        }
        out.push_str(MASK);
        rest = &body[end..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(secrets: &[&str], keys: &[&str], line: &str, expect: &str) {
        let r = Redactor::new(
            secrets.iter().map(|s| s.to_string()),
            keys.iter().map(|s| s.to_string()),
        );
        assert_eq!(r.redact(line), expect, "line: {line}");
    }

    #[test]
    fn masks_secret_values_anywhere() {
        check(
            &["hunter2"],
            &[],
            "password is hunter2!",
            "password is ***!",
        );
        check(&["abc", "abcdef"], &[], "x abcdef y abc", "x *** y ***");
        check(&[""], &[], "nothing", "nothing");
    }

    #[test]
    fn masks_values_of_redacted_keys() {
        check(&[], &["API_KEY"], "API_KEY=s3cr3t next", "API_KEY=*** next");
        check(
            &[],
            &["API_KEY"],
            "export API_KEY='a b c' done",
            "export API_KEY='***' done",
        );
        check(
            &[],
            &["token"],
            r#"{"token": "abc", "x": 1}"#,
            r#"{"token": "***", "x": 1}"#,
        );
        check(&[], &["token"], "token: abc", "token: ***");
        check(&[], &["KEY"], "MY_KEY=abc KEY=def", "MY_KEY=abc KEY=***");
        check(&[], &["KEY"], "KEYS are fine", "KEYS are fine");
    }
}
