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
    /// A redactor for these secret values and key names. Empty values are ignored. Each secret is
    /// also masked in the forms a script or a tool prints it in: JSON-escaped, URL-encoded (`%XX`
    /// and form `+`), and shell-quoted (`'...'\''...'` and backslash-escaped).
    pub fn new(
        secrets: impl IntoIterator<Item = String>,
        keys: impl IntoIterator<Item = String>,
    ) -> Redactor {
        let mut secrets: Vec<String> = secrets
            .into_iter()
            .filter(|s| !s.is_empty())
            .flat_map(|s| forms(&s))
            .collect();
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

/// The forms of `secret` worth masking: itself and its escaped or encoded spellings.
fn forms(secret: &str) -> Vec<String> {
    let mut out = vec![secret.to_string()];
    // JSON string body (what `serde_json` or `jq` print between the quotes).
    let json = serde_json::to_string(secret).unwrap_or_default();
    out.push(json.trim_matches('"').to_string());
    // Percent-encoding, as in a URL's user info or query (`%40` for `@`), and forms' `+`.
    let mut pct = String::new();
    let mut form = String::new();
    for b in secret.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            pct.push(b as char);
            form.push(b as char);
        } else {
            pct.push_str(&format!("%{b:02X}"));
            if b == b' ' {
                form.push('+');
            } else {
                form.push_str(&format!("%{b:02X}"));
            }
        }
    }
    out.push(lowercase_escapes(&pct));
    out.push(pct);
    out.push(form);
    // Shell: inside single quotes (`'\''` for a quote), and backslash-escaped (`printf %q`).
    out.push(secret.replace('\'', "'\\''"));
    let mut escaped = String::new();
    for c in secret.chars() {
        if !(c.is_ascii_alphanumeric() || "-_./:@%+=,".contains(c)) {
            escaped.push('\\');
        }
        escaped.push(c);
    }
    out.push(escaped);
    out.retain(|f| !f.is_empty());
    out
}

/// `pct` with lower-case hex digits in its `%XX` escapes (some encoders write `%2f`).
fn lowercase_escapes(pct: &str) -> String {
    let mut out = String::with_capacity(pct.len());
    let mut chars = pct.chars();
    while let Some(c) = chars.next() {
        out.push(c);
        if c == '%' {
            out.extend(chars.by_ref().take(2).map(|h| h.to_ascii_lowercase()));
        }
    }
    out
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
    fn masks_escaped_encoded_and_quoted_forms() {
        let pw = r#"p@ss "w0rd"/x'y\z"#;
        let json = serde_json::to_string(pw).unwrap();
        check(&[pw], &[], &format!("config: {json}"), "config: \"***\"");
        check(
            &[pw],
            &[],
            "url: https://admin:p%40ss%20%22w0rd%22%2Fx%27y%5Cz@host/",
            "url: https://admin:***@host/",
        );
        check(
            &[pw],
            &[],
            "url: https://admin:p%40ss%20%22w0rd%22%2fx%27y%5cz@host/",
            "url: https://admin:***@host/",
        );
        check(
            &[pw],
            &[],
            "form: pw=p%40ss+%22w0rd%22%2Fx%27y%5Cz&x=1",
            "form: pw=***&x=1",
        );
        check(
            &[pw],
            &[],
            r#"+ echo 'p@ss "w0rd"/x'\''y\z'"#,
            "+ echo '***'",
        );
        check(
            &[pw],
            &[],
            r#"+ set -- p@ss\ \"w0rd\"/x\'y\\z"#,
            "+ set -- ***",
        );
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
