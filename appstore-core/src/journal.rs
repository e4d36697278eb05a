//! An app's own service log: the systemd unit its manifest names (`service`), read inside the
//! container with one fixed `journalctl` command. The unit name and the cursor are checked here, by
//! the manifest's validation and again by the root helper, so nothing a catalog or a request sends
//! can change the command.

/// Most lines one read returns.
pub const MAX_LINES: u32 = 2000;

/// A systemd unit name as a manifest may give it: `radicale` or `radicale.service`,
/// `forgejo@main.service`; letters, digits and `:_.@-`, not starting with `-`, at most 128 bytes.
pub fn check_unit(unit: &str) -> Result<(), String> {
    if unit.is_empty() || unit.len() > 128 {
        return Err(format!(
            "`{unit}` is not a unit name: it must have 1 to 128 characters"
        ));
    }
    if unit.starts_with('-') || unit.starts_with('.') {
        return Err(format!(
            "`{unit}` is not a unit name: it must start with a letter or digit"
        ));
    }
    if let Some(bad) = unit
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || ":_.@-".contains(*c)))
    {
        return Err(format!(
            "`{unit}` is not a unit name: `{bad}` is not allowed (letters, digits and `:_.@-` are)"
        ));
    }
    Ok(())
}

/// A journal cursor as `journalctl --show-cursor` prints it (`s=...;i=...;b=...;m=...;t=...;x=...`).
pub fn check_cursor(cursor: &str) -> Result<(), String> {
    let ok = !cursor.is_empty()
        && cursor.len() <= 512
        && cursor
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "=;".contains(c));
    if ok {
        Ok(())
    } else {
        Err("the cursor is not one `journalctl --show-cursor` printed".to_string())
    }
}

/// The command run inside the container: the unit's last `lines` entries (or those after
/// `after`), oldest first, with ISO times and the cursor to go on from on the last line.
pub fn argv(unit: &str, lines: u32, after: Option<&str>) -> Vec<String> {
    let mut v: Vec<String> = [
        "journalctl",
        "--no-pager",
        "--quiet",
        "--output",
        "short-iso",
        "--show-cursor",
        "--unit",
        unit,
        "--lines",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    v.push(lines.clamp(1, MAX_LINES).to_string());
    if let Some(c) = after {
        v.push("--after-cursor".into());
        v.push(c.to_string());
    }
    v
}

/// Splits `journalctl --show-cursor` output into the entries and the cursor of the last one
/// (`-- cursor: ...`).
pub fn split_cursor(lines: Vec<String>) -> (Vec<String>, Option<String>) {
    let mut cursor = None;
    let entries = lines
        .into_iter()
        .filter(|l| match l.strip_prefix("-- cursor: ") {
            Some(c) => {
                cursor = Some(c.trim().to_string());
                false
            }
            None => l != "-- No entries --",
        })
        .collect();
    (entries, cursor)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unit_names_and_cursors_are_checked() {
        for ok in [
            "radicale",
            "radicale.service",
            "forgejo@main.service",
            "a-b_c:d",
        ] {
            assert_eq!(check_unit(ok), Ok(()), "{ok}");
        }
        for bad in ["", "-x", "a b", "a;rm", "$(x)", "a/b", &"a".repeat(129)] {
            assert!(check_unit(bad).is_err(), "{bad}");
        }
        assert!(check_cursor("s=ab12;i=1f;b=cd;m=2a;t=5e;x=77").is_ok());
        assert!(check_cursor("s=1 --output=json").is_err());
        assert!(check_cursor("").is_err());
    }

    #[test]
    fn the_command_is_fixed_and_the_cursor_comes_back() {
        let a = argv("radicale", 99_999, Some("s=1;i=2"));
        assert_eq!(a[0], "journalctl");
        assert!(a.windows(2).any(|w| w[0] == "--lines" && w[1] == "2000"));
        assert_eq!(a[a.len() - 2..], ["--after-cursor", "s=1;i=2"]);
        let (entries, cursor) = split_cursor(vec![
            "2026-12-06T10:00:00+0000 ct radicale[42]: ready".into(),
            "-- cursor: s=1;i=3".into(),
        ]);
        assert_eq!(entries.len(), 1);
        assert_eq!(cursor.as_deref(), Some("s=1;i=3"));
        assert_eq!(split_cursor(vec!["-- No entries --".into()]).0.len(), 0);
    }
}
