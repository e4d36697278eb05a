//! The manifest's `changelog`: each version's changes, checked by field and kept newest first.

use super::validate::Validator;
use super::*;

impl Validator {
    pub(super) fn changelog(
        &mut self,
        raw: &[RawChangelogEntry],
        current: Option<&semver::Version>,
    ) -> Vec<ChangelogEntry> {
        let mut out: Vec<ChangelogEntry> = Vec::new();
        for (i, e) in raw.iter().enumerate() {
            let at = |f: &str| format!("changelog[{i}].{f}");
            let version = match semver::Version::parse(&e.version) {
                Ok(v) => v,
                Err(err) => {
                    self.hint(
                        at("version"),
                        format!("`{}` is not a semantic version: {err}", e.version),
                        "write it as MAJOR.MINOR.PATCH, for example `1.2.0`",
                    );
                    continue;
                }
            };
            if current.is_some_and(|c| &version > c) {
                self.hint(
                    at("version"),
                    format!("{version} is newer than the app's `version`"),
                    "raise `version` too, or fix the changelog entry",
                );
            }
            if out.iter().any(|o| o.version == version) {
                self.err(at("version"), format!("{version} is listed twice"));
            }
            if let Some(d) = &e.date {
                if !is_iso_date(d) {
                    self.hint(
                        at("date"),
                        format!("`{d}` is not a date"),
                        "write it as YYYY-MM-DD, for example `2026-12-01`",
                    );
                }
            }
            if e.changes.is_empty() {
                self.err(at("changes"), "must list at least one change");
            }
            for (j, c) in e.changes.iter().enumerate() {
                if c.trim().is_empty() {
                    self.err(format!("changelog[{i}].changes[{j}]"), "must not be empty");
                }
            }
            out.push(ChangelogEntry {
                version,
                date: e.date.clone(),
                changes: e.changes.clone(),
            });
        }
        out.sort_by(|a, b| b.version.cmp(&a.version));
        out
    }
}

/// `YYYY-MM-DD` with a month 01-12 and a day that month has.
fn is_iso_date(s: &str) -> bool {
    let b = s.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return false;
    }
    let num = |r: std::ops::Range<usize>| s.get(r).and_then(|t| t.parse::<u32>().ok());
    let (Some(y), Some(m), Some(d)) = (num(0..4), num(5..7), num(8..10)) else {
        return false;
    };
    let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    let days = match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return false,
    };
    (1..=days).contains(&d)
}
