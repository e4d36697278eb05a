//! Templates for `provision.env` and `outputs[].value`, in TinyTemplate syntax: listing the variables a
//! template uses (so a manifest can be checked before any install) and rendering it for one install.
//!
//! Supported: `{path.to.value}`, `{{ if path }}`, `{{ if not path }}`, `{{ else }}`, `{{ endif }}`, and
//! `\{` for a literal `{` (a lone `}` is literal as it is). Values are inserted as they are (no HTML escaping).

use serde::Serialize;

/// Why a template cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct TemplateError(String);

/// Names of the variables `template` uses, in order of first use; an error for bad syntax.
pub fn variables(template: &str) -> Result<Vec<String>, TemplateError> {
    let chars: Vec<char> = template.chars().collect();
    let mut vars: Vec<String> = Vec::new();
    let mut depth = 0usize;
    let mut i = 0;
    let add = |p: &str, vars: &mut Vec<String>| -> Result<(), TemplateError> {
        check_path(p)?;
        if !vars.iter().any(|v| v == p) {
            vars.push(p.to_string());
        }
        Ok(())
    };
    while i < chars.len() {
        match chars[i] {
            '\\' if chars.get(i + 1) == Some(&'{') => i += 2,
            '{' if chars.get(i + 1) == Some(&'{') => {
                let end = find(&chars, i + 2, "}}")
                    .ok_or_else(|| TemplateError("`{{` is never closed with `}}`".to_string()))?;
                let inner: String = chars[i + 2..end].iter().collect();
                let words: Vec<&str> = inner.split_whitespace().collect();
                match words.as_slice() {
                    ["if", "not", p] | ["if", p] => {
                        add(p, &mut vars)?;
                        depth += 1;
                    }
                    ["else"] if depth > 0 => {}
                    ["endif"] if depth > 0 => depth -= 1,
                    ["else"] | ["endif"] => {
                        return Err(TemplateError(format!(
                            "`{{{{ {} }}}}` without a matching `{{{{ if ... }}}}`",
                            words[0]
                        )))
                    }
                    _ => {
                        return Err(TemplateError(format!(
                            "unsupported block `{{{{{inner}}}}}`: only if / if not / else / endif"
                        )))
                    }
                }
                i = end + 2;
            }
            '{' => {
                let end = find(&chars, i + 1, "}").ok_or_else(|| {
                    TemplateError(
                        "`{` is never closed; write `\\{` for a literal brace".to_string(),
                    )
                })?;
                let inner: String = chars[i + 1..end].iter().collect();
                if inner.contains('|') {
                    return Err(TemplateError(format!(
                        "formatters are not supported in `{{{inner}}}`"
                    )));
                }
                add(inner.trim(), &mut vars)?;
                i = end + 1;
            }
            _ => i += 1,
        }
    }
    if depth > 0 {
        return Err(TemplateError(
            "`{{ if ... }}` without `{{ endif }}`".to_string(),
        ));
    }
    Ok(vars)
}

fn find(chars: &[char], from: usize, pat: &str) -> Option<usize> {
    let pat: Vec<char> = pat.chars().collect();
    (from..chars.len()).find(|&j| chars[j..].starts_with(&pat))
}

fn check_path(p: &str) -> Result<(), TemplateError> {
    let ok = !p.is_empty()
        && p.split('.').all(|seg| {
            !seg.is_empty()
                && seg.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                && !seg.starts_with(|c: char| c.is_ascii_digit())
        });
    if ok {
        Ok(())
    } else {
        Err(TemplateError(format!(
            "`{p}` is not a variable name (letters, digits and `_`, dotted: `inputs.admin_user`)"
        )))
    }
}

/// Renders `template` with `context` (a serializable value whose fields are the variables).
pub fn render(template: &str, context: &impl Serialize) -> Result<String, TemplateError> {
    let mut tt = tinytemplate::TinyTemplate::new();
    tt.set_default_formatter(&tinytemplate::format_unescaped);
    tt.add_template("t", template)
        .map_err(|e| TemplateError(e.to_string()))?;
    tt.render("t", context)
        .map_err(|e| TemplateError(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn check_vars(template: &str, expect: Result<&[&str], &str>) {
        let got = variables(template);
        match expect {
            Ok(v) => assert_eq!(
                got,
                Ok(v.iter().map(|s| s.to_string()).collect()),
                "{template}"
            ),
            Err(msg) => {
                let err = got.expect_err(template).to_string();
                assert!(err.contains(msg), "{template}: {err}");
            }
        }
    }

    #[test]
    fn lists_variables_once_in_order() {
        check_vars(
            "http://{ip}:{ inputs.port }/{ip}",
            Ok(&["ip", "inputs.port"]),
        );
        check_vars(
            "{{ if inputs.tls }}https{{ else }}http{{ endif }}://{hostname}",
            Ok(&["inputs.tls", "hostname"]),
        );
        check_vars("{{ if not inputs.x }}a{{ endif }}", Ok(&["inputs.x"]));
        check_vars(r#"\{"json": true}"#, Ok(&[]));
        check_vars("a}b", Ok(&[]));
    }

    #[test]
    fn rejects_bad_syntax() {
        check_vars("{ip", Err("never closed"));
        check_vars("{{ for x in y }}{{ endfor }}", Err("unsupported block"));
        check_vars("{{ if a }}x", Err("without `{{ endif }}`"));
        check_vars("{{ endif }}", Err("without a matching"));
        check_vars("{ip | upper}", Err("formatters"));
        check_vars("{a b}", Err("not a variable name"));
        check_vars("{}", Err("not a variable name"));
    }

    #[test]
    fn renders_without_html_escaping() {
        let ctx = json!({"ip": "10.0.0.5", "inputs": {"pw": "a<b&c", "port": 5984, "tls": false}});
        assert_eq!(
            render("http://{ip}:{inputs.port}", &ctx).unwrap(),
            "http://10.0.0.5:5984"
        );
        assert_eq!(render("{inputs.pw}", &ctx).unwrap(), "a<b&c");
        assert_eq!(
            render("{{ if inputs.tls }}https{{ else }}http{{ endif }}", &ctx).unwrap(),
            "http"
        );
        assert_eq!(render(r#"\{"a": 1}"#, &ctx).unwrap(), r#"{"a": 1}"#);
    }

    #[test]
    fn missing_variable_is_an_error() {
        assert!(render("{nope}", &json!({})).is_err());
    }
}
