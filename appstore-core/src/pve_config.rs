//! Lossless parser and writer for Proxmox VE container configs (`/etc/pve/lxc/<vmid>.conf`).
//!
//! The format follows pve-container 5.x (Proxmox VE 8.x):
//!
//! * A file consists of sections. The first, unnamed section is the current
//!   configuration. It may be followed by a `[pve:pending]` section and by
//!   snapshot sections `[name]`.
//! * Within a section, lines starting with `#` form the description, one
//!   line each, percent-encoded (control characters, non-ASCII bytes of the
//!   UTF-8 encoding and `:` are written as `%XX`).
//! * `key: value` lines hold the regular options, written sorted by key.
//! * Raw LXC options (`lxc.<key>: value` or `lxc.<key> = value`) follow the
//!   regular options in their original order; the same key may repeat.
//! * Blank lines separate sections.
//!
//! [`PveConfig::parse`] followed by [`PveConfig::to_text`] reproduces every
//! canonical file (as written by Proxmox VE) byte for byte. Non-canonical
//! input (unsorted keys, description lines between options, missing blank
//! lines, CRLF line endings) is accepted and written back in canonical form.
//!
//! Deliberate differences from Proxmox VE's own writer:
//!
//! * Raw LXC lines keep the separator they were read with (`:` or ` = `),
//!   whereas Proxmox VE rewrites them all with `:`.
//! * A literal `%` that is followed by two hex digits is written as `%25`
//!   so that the description decodes back to exactly the text that was set.
//!   Proxmox VE writes such a `%` unescaped and then reads it back as an
//!   escape itself; this module reads it the same way, so the only
//!   PVE-written lines that do not round-trip byte for byte are ones like
//!   `#a%41`, which both sides decode to `aA` (written back as `#aA`).
//! * Repeated options and sections follow Proxmox VE: the later one wins.

use std::collections::BTreeMap;

/// Section header name of the pending-changes section (without brackets).
const PENDING_SECTION: &str = "pve:pending";

/// Key under which older Proxmox VE versions stored the description inline.
const DESCRIPTION_KEY: &str = "description";

/// Prefix shared by all raw LXC keys.
const RAW_LXC_PREFIX: &str = "lxc.";

/// A complete container configuration file: the current configuration,
/// optional pending changes and any number of snapshots.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PveConfig {
    current: ConfigSection,
    pending: Option<ConfigSection>,
    /// Snapshots in the order they appeared in the parsed file.
    snapshots: Vec<(String, ConfigSection)>,
}

/// One section of a configuration file: its description, the regular
/// `key: value` options and the raw `lxc.*` options.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConfigSection {
    /// Decoded description, lines joined with `'\n'`, no trailing newline.
    description: String,
    /// Regular options; a `BTreeMap` keeps them in the byte-wise order
    /// Proxmox VE uses when writing.
    options: BTreeMap<String, String>,
    /// Raw LXC options in file order.
    raw_lxc: Vec<RawLxcEntry>,
}

/// The separator a raw LXC line used between key and value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RawLxcSeparator {
    /// `lxc.key: value` (the form Proxmox VE itself writes).
    Colon,
    /// `lxc.key = value` (the native LXC form, accepted by Proxmox VE).
    Equals,
}

/// A single raw LXC option line.
#[derive(Debug, Clone, PartialEq, Eq)]
struct RawLxcEntry {
    key: String,
    value: String,
    separator: RawLxcSeparator,
}

/// Error returned by [`PveConfig::parse`] for a line that cannot be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {message}")]
pub struct PveConfigError {
    /// 1-based number of the offending line.
    pub line: usize,
    /// What is wrong with the line.
    pub message: String,
}

/// Error returned when an option cannot be stored because writing it would
/// produce a file that does not parse back to the same content.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidEntry {
    /// The key of a regular option does not match `[a-z][a-z0-9_]*` or is
    /// the reserved key `description`.
    #[error("invalid option key {0:?}: expected [a-z][a-z0-9_]* other than \"description\"")]
    Key(String),
    /// The key of a raw LXC option does not match `lxc.[a-z0-9_.-]+`.
    #[error("invalid raw LXC key {0:?}: expected lxc.[a-z0-9_.-]+")]
    RawLxcKey(String),
    /// The value cannot be written on a single line without being altered.
    #[error("invalid value for {key:?}: {reason}")]
    Value {
        /// Key the value was meant for.
        key: String,
        /// Why the value was rejected.
        reason: &'static str,
    },
}

impl PveConfig {
    /// Parses the text of a container configuration file.
    ///
    /// Blank lines are ignored, later duplicates of an option or a section
    /// replace earlier ones (as in Proxmox VE), and an empty
    /// `[pve:pending]` section is treated as absent.
    ///
    /// # Errors
    ///
    /// Returns a [`PveConfigError`] with the 1-based line number for the
    /// first line that is not blank, a valid section header, a description
    /// line, a `key: value` option or a raw LXC option.
    pub fn parse(text: &str) -> Result<PveConfig, PveConfigError> {
        let mut parser = Parser::default();
        for (index, raw_line) in text.split('\n').enumerate() {
            let line = raw_line.strip_suffix('\r').unwrap_or(raw_line);
            parser.feed(line).map_err(|message| PveConfigError {
                line: index + 1,
                message,
            })?;
        }
        Ok(parser.finish())
    }

    /// Writes the configuration in canonical Proxmox VE form.
    ///
    /// Each section lists its description first, then the regular options
    /// sorted by key, then the raw LXC options in order. Every line ends
    /// with `'\n'` and sections are separated by one blank line. The pending
    /// section is written only if it is non-empty, and snapshots are
    /// written sorted by name, as Proxmox VE does.
    #[must_use]
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        self.current.write_to(&mut out);
        if let Some(pending) = self.pending.as_ref().filter(|p| !p.is_empty()) {
            write_header(&mut out, PENDING_SECTION);
            pending.write_to(&mut out);
        }
        let mut snapshots: Vec<&(String, ConfigSection)> = self.snapshots.iter().collect();
        snapshots.sort_by(|a, b| a.0.cmp(&b.0));
        for (name, section) in snapshots {
            write_header(&mut out, name);
            section.write_to(&mut out);
        }
        out
    }

    /// The current (unnamed, first) section.
    #[must_use]
    pub fn current(&self) -> &ConfigSection {
        &self.current
    }

    /// Mutable access to the current section.
    pub fn current_mut(&mut self) -> &mut ConfigSection {
        &mut self.current
    }

    /// The `[pve:pending]` section, if the file has a non-empty one.
    #[must_use]
    pub fn pending(&self) -> Option<&ConfigSection> {
        self.pending.as_ref()
    }

    /// The snapshot section called `name` (case-sensitive), if present.
    #[must_use]
    pub fn snapshot(&self, name: &str) -> Option<&ConfigSection> {
        self.snapshots
            .iter()
            .find(|(snap_name, _)| snap_name == name)
            .map(|(_, section)| section)
    }

    /// Adds or replaces the snapshot section `name`.
    pub fn set_snapshot(&mut self, name: &str, section: ConfigSection) {
        match self.snapshots.iter_mut().find(|(n, _)| n == name) {
            Some((_, s)) => *s = section,
            None => self.snapshots.push((name.to_string(), section)),
        }
    }

    /// Removes the snapshot section `name`, returning it.
    pub fn remove_snapshot(&mut self, name: &str) -> Option<ConfigSection> {
        let pos = self.snapshots.iter().position(|(n, _)| n == name)?;
        Some(self.snapshots.remove(pos).1)
    }

    /// Names of all snapshots, in the order they appeared in the parsed
    /// file. (For canonical files this is also the written order, which is
    /// sorted by name.)
    pub fn snapshot_names(&self) -> impl Iterator<Item = &str> {
        self.snapshots.iter().map(|(name, _)| name.as_str())
    }
}

impl ConfigSection {
    /// The decoded description: its lines joined with `'\n'`, without a
    /// trailing newline. Empty if the section has no description.
    #[must_use]
    pub fn description(&self) -> &str {
        &self.description
    }

    /// Replaces the description. Trailing newlines are dropped (Proxmox VE
    /// does not keep trailing empty description lines); an empty text
    /// removes the description.
    pub fn set_description(&mut self, text: &str) {
        text.trim_end_matches('\n')
            .clone_into(&mut self.description);
    }

    /// The value of the regular option `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.options.get(key).map(String::as_str)
    }

    /// Inserts or replaces the regular option `key`. Options are always
    /// written sorted by key.
    ///
    /// Use [`ConfigSection::try_set`] for keys or values that are not known
    /// to be valid.
    ///
    /// # Panics
    ///
    /// Panics if [`ConfigSection::try_set`] would reject the entry: the key
    /// does not match `[a-z][a-z0-9_]*` or is `description`, or the value is
    /// empty, starts with whitespace or contains a line break.
    pub fn set(&mut self, key: &str, value: &str) {
        if let Err(err) = self.try_set(key, value) {
            panic!("ConfigSection::set: {err}");
        }
    }

    /// Inserts or replaces the regular option `key`, rejecting entries that
    /// would not survive writing and re-parsing unchanged.
    ///
    /// # Errors
    ///
    /// [`InvalidEntry::Key`] if the key does not match `[a-z][a-z0-9_]*` or
    /// is `description` (use [`ConfigSection::set_description`]);
    /// [`InvalidEntry::Value`] if the value is empty, starts with whitespace
    /// or contains a line break.
    pub fn try_set(&mut self, key: &str, value: &str) -> Result<(), InvalidEntry> {
        if !is_option_key(key) || key == DESCRIPTION_KEY {
            return Err(InvalidEntry::Key(key.to_owned()));
        }
        let reason = if value.is_empty() {
            Some("value must not be empty (use remove() to delete an option)")
        } else if value.starts_with(is_blank) {
            Some("value must not start with whitespace")
        } else if value.contains(['\n', '\r']) {
            Some("value must not contain line breaks")
        } else {
            None
        };
        if let Some(reason) = reason {
            return Err(InvalidEntry::Value {
                key: key.to_owned(),
                reason,
            });
        }
        self.options.insert(key.to_owned(), value.to_owned());
        Ok(())
    }

    /// Removes the regular option `key`, returning its previous value.
    pub fn remove(&mut self, key: &str) -> Option<String> {
        self.options.remove(key)
    }

    /// All regular options as `(key, value)` pairs, sorted by key.
    pub fn keys(&self) -> impl Iterator<Item = (&str, &str)> {
        self.options.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// All raw LXC options as `(key, value)` pairs in file order, e.g.
    /// `("lxc.cgroup2.devices.allow", "c 226:* rwm")`. Repeated keys are
    /// listed once per line.
    pub fn raw_lxc(&self) -> impl Iterator<Item = (&str, &str)> {
        self.raw_lxc
            .iter()
            .map(|entry| (entry.key.as_str(), entry.value.as_str()))
    }

    /// Like [`ConfigSection::raw_lxc`], but also yields the separator each
    /// line was written with.
    pub fn raw_lxc_entries(&self) -> impl Iterator<Item = (&str, &str, RawLxcSeparator)> {
        self.raw_lxc
            .iter()
            .map(|entry| (entry.key.as_str(), entry.value.as_str(), entry.separator))
    }

    /// Appends a raw LXC option written as `key: value`.
    ///
    /// Use [`ConfigSection::try_push_raw_lxc`] for keys or values that are
    /// not known to be valid.
    ///
    /// # Panics
    ///
    /// Panics if [`ConfigSection::try_push_raw_lxc`] would reject the entry:
    /// the key does not match `lxc.[a-z0-9_.-]+`, or the value has leading
    /// or trailing whitespace or contains a line break.
    pub fn push_raw_lxc(&mut self, key: &str, value: &str) {
        if let Err(err) = self.try_push_raw_lxc(key, value) {
            panic!("ConfigSection::push_raw_lxc: {err}");
        }
    }

    /// Appends a raw LXC option written as `key: value`, rejecting entries
    /// that would not survive writing and re-parsing unchanged. An empty
    /// value is allowed (`lxc.cap.drop:` clears the list in LXC).
    ///
    /// # Errors
    ///
    /// [`InvalidEntry::RawLxcKey`] if the key does not match
    /// `lxc.[a-z0-9_.-]+`; [`InvalidEntry::Value`] if the value has leading or
    /// trailing whitespace or contains a line break.
    pub fn try_push_raw_lxc(&mut self, key: &str, value: &str) -> Result<(), InvalidEntry> {
        if raw_lxc_key_len(key) != Some(key.len()) {
            return Err(InvalidEntry::RawLxcKey(key.to_owned()));
        }
        let reason = if value.starts_with(is_blank) || value.ends_with(is_blank) {
            Some("value must not start or end with whitespace")
        } else if value.contains(['\n', '\r']) {
            Some("value must not contain line breaks")
        } else {
            None
        };
        if let Some(reason) = reason {
            return Err(InvalidEntry::Value {
                key: key.to_owned(),
                reason,
            });
        }
        self.raw_lxc.push(RawLxcEntry {
            key: key.to_owned(),
            value: value.to_owned(),
            separator: RawLxcSeparator::Colon,
        });
        Ok(())
    }

    /// Removes every raw LXC option whose key and value both match exactly.
    /// Returns whether anything was removed.
    pub fn remove_raw_lxc(&mut self, key: &str, value: &str) -> bool {
        let before = self.raw_lxc.len();
        self.raw_lxc
            .retain(|entry| !(entry.key == key && entry.value == value));
        self.raw_lxc.len() != before
    }

    /// The smallest `N` such that this section has no option `{prefix}{N}`,
    /// e.g. the next free `devN` or `mpN` slot. Only this section is
    /// consulted; check the pending section too when allocating a slot.
    #[must_use]
    pub fn next_free_index(&self, prefix: &str) -> u32 {
        let mut index = 0;
        while self.options.contains_key(&format!("{prefix}{index}")) {
            index += 1;
        }
        index
    }

    /// Whether the section holds nothing at all.
    fn is_empty(&self) -> bool {
        self.description.is_empty() && self.options.is_empty() && self.raw_lxc.is_empty()
    }

    /// Appends this section's lines (without header) in canonical form.
    fn write_to(&self, out: &mut String) {
        if !self.description.is_empty() {
            for line in self.description.split('\n') {
                out.push('#');
                encode_description_line(out, line);
                out.push('\n');
            }
        }
        for (key, value) in &self.options {
            out.push_str(key);
            out.push_str(": ");
            out.push_str(value);
            out.push('\n');
        }
        for entry in &self.raw_lxc {
            out.push_str(&entry.key);
            out.push_str(match entry.separator {
                RawLxcSeparator::Colon => ": ",
                RawLxcSeparator::Equals => " = ",
            });
            out.push_str(&entry.value);
            out.push('\n');
        }
    }
}

/// Appends the blank separator line and a `[name]` header.
fn write_header(out: &mut String, name: &str) {
    out.push_str("\n[");
    out.push_str(name);
    out.push_str("]\n");
}

/// Which section the parser is currently filling.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Target {
    Current,
    Pending,
    Snapshot(String),
}

/// Line-by-line parser state.
#[derive(Debug)]
struct Parser {
    config: PveConfig,
    /// Section whose lines are being read.
    target: Target,
    /// Content of that section read so far.
    section: ConfigSection,
    /// Description of that section, accumulated the way Proxmox VE does:
    /// each `#` line adds its text plus `'\n'`, a legacy `description:`
    /// option adds its text only.
    description: String,
}

impl Default for Parser {
    fn default() -> Self {
        Parser {
            config: PveConfig::default(),
            target: Target::Current,
            section: ConfigSection::default(),
            description: String::new(),
        }
    }
}

impl Parser {
    /// Processes one line (without its line terminator).
    fn feed(&mut self, line: &str) -> Result<(), String> {
        if line.chars().all(is_blank) {
            return Ok(());
        }
        if line.starts_with('[') {
            let target = parse_section_header(line)?;
            self.store_section(target);
            return Ok(());
        }
        if let Some(encoded) = line.strip_prefix('#') {
            self.description.push_str(&decode_description_line(encoded));
            self.description.push('\n');
            return Ok(());
        }
        if line.starts_with(RAW_LXC_PREFIX) {
            let entry = parse_raw_lxc_line(line)?;
            self.section.raw_lxc.push(entry);
            return Ok(());
        }
        let (key, value) = parse_option_line(line)?;
        if key == DESCRIPTION_KEY {
            self.description
                .push_str(&decode_description_line(value.trim_end_matches(is_blank)));
        } else {
            // As in Proxmox VE, a repeated option replaces the earlier one.
            self.section
                .options
                .insert(key.to_owned(), value.to_owned());
        }
        Ok(())
    }

    /// Moves the section read so far into the configuration and starts
    /// reading `next`. As in Proxmox VE, a repeated section replaces the
    /// earlier one (a repeated snapshot keeps its original position).
    fn store_section(&mut self, next: Target) {
        let mut section = std::mem::take(&mut self.section);
        section.set_description(&std::mem::take(&mut self.description));
        match std::mem::replace(&mut self.target, next) {
            Target::Current => self.config.current = section,
            Target::Pending => self.config.pending = Some(section),
            Target::Snapshot(name) => {
                let snapshots = &mut self.config.snapshots;
                match snapshots.iter_mut().find(|(existing, _)| *existing == name) {
                    Some(slot) => slot.1 = section,
                    None => snapshots.push((name, section)),
                }
            }
        }
    }

    /// Finishes parsing and returns the configuration.
    fn finish(mut self) -> PveConfig {
        self.store_section(Target::Current);
        if self
            .config
            .pending
            .as_ref()
            .is_some_and(ConfigSection::is_empty)
        {
            self.config.pending = None;
        }
        self.config
    }
}

/// Parses a `[pve:pending]` or `[snapshot-name]` header line.
fn parse_section_header(line: &str) -> Result<Target, String> {
    let name = line
        .trim_end_matches(is_blank)
        .strip_prefix('[')
        .and_then(|rest| rest.strip_suffix(']'))
        .ok_or_else(|| format!("malformed section header {line:?}: expected \"[name]\""))?;
    if name.eq_ignore_ascii_case(PENDING_SECTION) {
        Ok(Target::Pending)
    } else if is_snapshot_name(name) {
        Ok(Target::Snapshot(name.to_owned()))
    } else {
        Err(format!(
            "invalid section header {line:?}: expected \"[pve:pending]\" or a snapshot \
             name matching [A-Za-z][A-Za-z0-9_-]+"
        ))
    }
}

/// Parses `lxc.<key>: value` or `lxc.<key> = value`.
fn parse_raw_lxc_line(line: &str) -> Result<RawLxcEntry, String> {
    let key_len = raw_lxc_key_len(line)
        .ok_or_else(|| format!("missing key name after \"lxc.\" in {line:?}"))?;
    let (key, rest) = line.split_at(key_len);
    let (separator, value) = if let Some(value) = rest.strip_prefix(':') {
        (RawLxcSeparator::Colon, value)
    } else if let Some(value) = rest.trim_start_matches(is_blank).strip_prefix('=') {
        (RawLxcSeparator::Equals, value)
    } else {
        return Err(format!("expected ':' or '=' after raw LXC key {key:?}"));
    };
    Ok(RawLxcEntry {
        key: key.to_owned(),
        value: value.trim_matches(is_blank).to_owned(),
        separator,
    })
}

/// Parses a regular `key: value` line into key and value (leading
/// whitespace of the value removed, trailing whitespace kept).
fn parse_option_line(line: &str) -> Result<(&str, &str), String> {
    let key_len = line
        .bytes()
        .take_while(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'_'))
        .count();
    let (key, rest) = line.split_at(key_len);
    if !is_option_key(key) {
        return Err(format!("expected \"key: value\", found {line:?}"));
    }
    if let Some(value) = rest.strip_prefix(':') {
        Ok((key, value.trim_start_matches(is_blank)))
    } else if rest.is_empty() || rest.starts_with(is_blank) {
        Err(format!("missing ':' after key {key:?}"))
    } else {
        Err(format!("expected \"key: value\", found {line:?}"))
    }
}

/// Length of the raw LXC key (`lxc.` plus at least one `[a-z0-9_.-]`) at
/// the start of `text`, if there is one.
fn raw_lxc_key_len(text: &str) -> Option<usize> {
    let rest = text.strip_prefix(RAW_LXC_PREFIX)?;
    let len = rest
        .bytes()
        .take_while(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'_' | b'.' | b'-'))
        .count();
    (len > 0).then_some(RAW_LXC_PREFIX.len() + len)
}

/// Whether `key` matches `[a-z][a-z0-9_]*`.
fn is_option_key(key: &str) -> bool {
    let mut bytes = key.bytes();
    bytes.next().is_some_and(|b| b.is_ascii_lowercase())
        && bytes.all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'_'))
}

/// Whether `name` matches `[A-Za-z][A-Za-z0-9_-]+`.
fn is_snapshot_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    bytes.next().is_some_and(|b| b.is_ascii_alphabetic())
        && name.len() >= 2
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// Whitespace as trimmed by Proxmox VE's `\s` patterns.
fn is_blank(c: char) -> bool {
    c.is_ascii_whitespace() || c == '\x0b'
}

/// Value of an ASCII hex digit.
fn hex_value(byte: u8) -> Option<u8> {
    match byte {
        b'0'..=b'9' => Some(byte - b'0'),
        b'a'..=b'f' => Some(byte - b'a' + 10),
        b'A'..=b'F' => Some(byte - b'A' + 10),
        _ => None,
    }
}

/// Decodes one description line: `%XX` escapes become bytes, everything
/// else is kept, and the result is read as UTF-8 (invalid sequences become
/// U+FFFD, like Perl's `Encode::decode`).
fn decode_description_line(encoded: &str) -> String {
    let bytes = encoded.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut pos = 0;
    while let Some(&byte) = bytes.get(pos) {
        if byte == b'%' {
            let high = bytes.get(pos + 1).copied().and_then(hex_value);
            let low = bytes.get(pos + 2).copied().and_then(hex_value);
            if let (Some(high), Some(low)) = (high, low) {
                decoded.push(high << 4 | low);
                pos += 3;
                continue;
            }
        }
        decoded.push(byte);
        pos += 1;
    }
    match String::from_utf8(decoded) {
        Ok(text) => text,
        Err(err) => String::from_utf8_lossy(err.as_bytes()).into_owned(),
    }
}

/// Percent-encodes one description line the way Proxmox VE does (control
/// characters, bytes >= 0x80 and `:`), plus any `%` that would otherwise be
/// read back as the start of an escape.
fn encode_description_line(out: &mut String, text: &str) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let bytes = text.as_bytes();
    for (pos, &byte) in bytes.iter().enumerate() {
        let escape = match byte {
            b':' => true,
            b'%' => {
                let next_is_hex = |offset: usize| {
                    bytes
                        .get(pos + offset)
                        .is_some_and(|&b| hex_value(b).is_some())
                };
                next_is_hex(1) && next_is_hex(2)
            }
            0x20..=0x7e => false,
            _ => true,
        };
        if escape {
            out.push('%');
            out.push(char::from(HEX[usize::from(byte >> 4)]));
            out.push(char::from(HEX[usize::from(byte & 0x0f)]));
        } else {
            out.push(char::from(byte));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIXTURES: &[(&str, &str)] = &[
        ("plain", include_str!("../test_data/pve_config/plain.conf")),
        (
            "description",
            include_str!("../test_data/pve_config/description.conf"),
        ),
        (
            "raw_lxc_gpu",
            include_str!("../test_data/pve_config/raw_lxc_gpu.conf"),
        ),
        (
            "devices_mp",
            include_str!("../test_data/pve_config/devices_mp.conf"),
        ),
        (
            "pending",
            include_str!("../test_data/pve_config/pending.conf"),
        ),
        (
            "snapshots",
            include_str!("../test_data/pve_config/snapshots.conf"),
        ),
        ("full", include_str!("../test_data/pve_config/full.conf")),
    ];

    fn fixture(name: &str) -> &'static str {
        FIXTURES
            .iter()
            .find_map(|(fixture_name, text)| (*fixture_name == name).then_some(*text))
            .unwrap_or_else(|| panic!("no fixture named {name}"))
    }

    fn parse(text: &str) -> PveConfig {
        PveConfig::parse(text).unwrap_or_else(|err| panic!("parse failed: {err}\n{text}"))
    }

    /// Parses `input` and checks that writing it back yields `expected`,
    /// and that the written text is itself a fixed point.
    fn check(input: &str, expected: &str) {
        let config = parse(input);
        let written = config.to_text();
        assert_eq!(written, expected, "input:\n{input}");
        let reparsed = parse(&written);
        assert_eq!(reparsed.to_text(), written, "canonical form is not stable");
    }

    fn check_error(input: &str, line: usize, message_part: &str) {
        match PveConfig::parse(input) {
            Ok(config) => panic!("expected an error, parsed {config:?} from {input:?}"),
            Err(err) => {
                assert_eq!(err.line, line, "wrong line for {input:?}: {err}");
                assert!(
                    err.message.contains(message_part),
                    "message {:?} lacks {message_part:?}",
                    err.message
                );
            }
        }
    }

    fn check_description(text: &str, encoded_lines: &[&str]) {
        let mut config = PveConfig::default();
        config.current_mut().set_description(text);
        let expected: String = encoded_lines
            .iter()
            .flat_map(|line| ["#", line, "\n"])
            .collect();
        assert_eq!(config.to_text(), expected, "encoding {text:?}");
        let reparsed = parse(&expected);
        assert_eq!(
            reparsed.current().description(),
            text,
            "decoding {expected:?}"
        );
    }

    #[test]
    fn every_fixture_round_trips_byte_exactly() {
        for (name, text) in FIXTURES {
            assert_eq!(&parse(text).to_text(), text, "fixture {name}");
        }
    }

    #[test]
    fn plain_config_lists_options_sorted_without_extras() {
        let config = parse(fixture("plain"));
        let current = config.current();
        assert_eq!(current.get("hostname"), Some("debian-web"));
        assert_eq!(current.get("tags"), Some("appstore;web"));
        assert_eq!(current.get("lxc.mount.entry"), None);
        assert_eq!(current.description(), "");
        assert_eq!(current.raw_lxc().count(), 0);
        let keys: Vec<&str> = current.keys().map(|(k, _)| k).collect();
        let mut sorted = keys.clone();
        sorted.sort_unstable();
        assert_eq!(keys, sorted);
        assert_eq!(keys.first(), Some(&"arch"));
        assert!(config.pending().is_none());
        assert_eq!(config.snapshot_names().count(), 0);
    }

    #[test]
    fn description_fixture_decodes_non_ascii_colons_and_percent_signs() {
        let config = parse(fixture("description"));
        assert_eq!(
            config.current().description(),
            "# Nextcloud: Dateiablage für das Büro\n\
             \n\
             Verwaltet von **PVE App Store** – bitte nicht manuell ändern.\n\
             Speicher: 80% belegt (Kontingent 200 GiB)\n\
             Web-UI: https://cloud.example.lan:8443/\n\
             Zuständig: Jörg Weiß 🚀"
        );
        assert_eq!(config.current().get("hostname"), Some("nextcloud"));
    }

    #[test]
    fn description_is_encoded_like_pve_and_decodes_to_the_same_text() {
        let cases: &[(&str, &[&str])] = &[
            ("plain text", &["plain text"]),
            ("key: value", &["key%3A value"]),
            ("Grüße", &["Gr%C3%BC%C3%9Fe"]),
            ("rocket 🚀", &["rocket %F0%9F%9A%80"]),
            ("tab\there", &["tab%09here"]),
            ("del\x7f", &["del%7F"]),
            ("100% sure", &["100% sure"]),
            ("trailing %", &["trailing %"]),
            ("50%3A is not a colon", &["50%253A is not a colon"]),
            ("%%41", &["%%2541"]),
            ("# heading", &["# heading"]),
            ("first\n\nthird", &["first", "", "third"]),
            ("\nleading blank", &["", "leading blank"]),
            ("  indented", &["  indented"]),
            ("cr\rinside", &["cr%0Dinside"]),
        ];
        for (text, encoded) in cases {
            check_description(text, encoded);
        }
    }

    #[test]
    fn description_decoding_accepts_lowercase_and_incomplete_escapes() {
        let cases = [
            ("#a%3ab", "a:b"),
            ("#100%", "100%"),
            ("#%4", "%4"),
            ("#%zz", "%zz"),
            ("#%C3%BC", "ü"),
            ("#%FF", "\u{fffd}"),
            ("#unescaped ü", "unescaped ü"),
        ];
        for (line, decoded) in cases {
            assert_eq!(parse(line).current().description(), decoded, "{line}");
        }
    }

    #[test]
    fn set_description_drops_trailing_newlines_and_empty_text_removes_it() {
        let mut config = parse(fixture("pending"));
        config.current_mut().set_description("one\ntwo\n\n");
        assert_eq!(config.current().description(), "one\ntwo");
        assert!(config.to_text().starts_with("#one\n#two\narch: amd64\n"));
        config.current_mut().set_description("");
        assert!(config.to_text().starts_with("arch: amd64\n"));
    }

    #[test]
    fn non_canonical_input_is_written_in_canonical_form() {
        let cases = [
            // Unsorted keys.
            (
                "memory: 512\narch: amd64\nhostname: ct\n",
                "arch: amd64\nhostname: ct\nmemory: 512\n",
            ),
            // Description lines between options move to the top.
            (
                "arch: amd64\n#first\nmemory: 512\n#second\n",
                "#first\n#second\narch: amd64\nmemory: 512\n",
            ),
            // Raw LXC lines before regular options move after them.
            (
                "lxc.apparmor.profile: unconfined\nmemory: 512\n",
                "memory: 512\nlxc.apparmor.profile: unconfined\n",
            ),
            // No trailing newline, extra blank lines, missing separator line.
            (
                "\n\narch: amd64\n\n\nmemory: 512\n[snap1]\nsnaptime: 1\n\n\n",
                "arch: amd64\nmemory: 512\n\n[snap1]\nsnaptime: 1\n",
            ),
            ("arch: amd64", "arch: amd64\n"),
            // CRLF line endings.
            ("arch: amd64\r\nmemory: 512\r\n", "arch: amd64\nmemory: 512\n"),
            // Missing or extra whitespace after the separator.
            (
                "cores:2\nmemory:    512\n",
                "cores: 2\nmemory: 512\n",
            ),
            // Trailing empty description lines are dropped.
            ("#text\n#\n#\narch: amd64\n", "#text\narch: amd64\n"),
            // Legacy inline description option becomes a comment.
            (
                "description: old%3A style\narch: amd64\n",
                "#old%3A style\narch: amd64\n",
            ),
            // Lower-case pending header, pending after snapshots, unsorted snapshots.
            (
                "arch: amd64\n\n[snap2]\nparent: snap1\n\n[snap1]\nsnaptime: 1\n\n[PVE:PENDING]\ncores: 2\n",
                "arch: amd64\n\n[pve:pending]\ncores: 2\n\n[snap1]\nsnaptime: 1\n\n[snap2]\nparent: snap1\n",
            ),
            // An empty pending section is dropped.
            ("arch: amd64\n\n[pve:pending]\n", "arch: amd64\n"),
            // Later duplicates win, as in Proxmox VE.
            ("memory: 512\nmemory: 1024\n", "memory: 1024\n"),
        ];
        for (input, expected) in cases {
            check(input, expected);
        }
    }

    #[test]
    fn set_inserts_in_sorted_position_and_replaces_existing_values() {
        let mut config =
            parse("arch: amd64\nmemory: 512\nswap: 512\nlxc.idmap: u 0 100000 65536\n");
        let current = config.current_mut();
        current.set("memory", "2048");
        current.set("hostname", "web");
        current.set("unprivileged", "1");
        current.set("cores", "2");
        assert_eq!(current.get("memory"), Some("2048"));
        assert_eq!(
            config.to_text(),
            "arch: amd64\ncores: 2\nhostname: web\nmemory: 2048\nswap: 512\nunprivileged: 1\n\
             lxc.idmap: u 0 100000 65536\n"
        );
    }

    #[test]
    fn options_sort_bytewise_like_perl() {
        let mut section = ConfigSection::default();
        for key in ["mp2", "mp10", "mp1", "net0", "memory", "dev0"] {
            section.set(key, "x");
        }
        let keys: Vec<&str> = section.keys().map(|(k, _)| k).collect();
        assert_eq!(keys, ["dev0", "memory", "mp1", "mp10", "mp2", "net0"]);
    }

    #[test]
    fn remove_returns_the_old_value_and_drops_the_line() {
        let mut config = parse(fixture("plain"));
        assert_eq!(
            config.current_mut().remove("tags"),
            Some("appstore;web".to_owned())
        );
        assert_eq!(config.current_mut().remove("tags"), None);
        let expected = fixture("plain").replace("tags: appstore;web\n", "");
        assert_eq!(config.to_text(), expected);
    }

    #[test]
    fn try_set_rejects_entries_that_would_not_round_trip() {
        let mut section = ConfigSection::default();
        let bad_keys = [
            "",
            "Memory",
            "1net",
            "lxc.foo",
            "net-0",
            "description",
            "a b",
        ];
        for key in bad_keys {
            assert_eq!(
                section.try_set(key, "1"),
                Err(InvalidEntry::Key(key.to_owned())),
                "{key:?}"
            );
        }
        for value in ["", " leading", "two\nlines", "cr\r"] {
            assert!(
                matches!(
                    section.try_set("hostname", value),
                    Err(InvalidEntry::Value { .. })
                ),
                "{value:?}"
            );
        }
        assert_eq!(section.try_set("hostname", "ok trailing "), Ok(()));
        assert_eq!(section.keys().count(), 1);
    }

    #[test]
    #[should_panic(expected = "invalid option key")]
    fn set_panics_on_invalid_key() {
        ConfigSection::default().set("Bad", "1");
    }

    #[test]
    fn raw_lxc_lines_keep_order_repeats_and_separators() {
        use RawLxcSeparator::{Colon, Equals};
        let config = parse(fixture("raw_lxc_gpu"));
        let entries: Vec<(&str, &str, RawLxcSeparator)> =
            config.current().raw_lxc_entries().collect();
        assert_eq!(
            entries,
            [
                ("lxc.cgroup2.devices.allow", "c 226:* rwm", Colon),
                (
                    "lxc.mount.entry",
                    "/dev/dri dev/dri none bind,optional,create=dir",
                    Colon
                ),
                ("lxc.cgroup2.devices.allow", "c 195:* rwm", Equals),
                ("lxc.cgroup2.devices.allow", "c 509:* rwm", Equals),
                (
                    "lxc.mount.entry",
                    "/dev/nvidia0 dev/nvidia0 none bind,optional,create=file",
                    Equals
                ),
                (
                    "lxc.mount.entry",
                    "/dev/nvidiactl dev/nvidiactl none bind,optional,create=file",
                    Equals
                ),
                (
                    "lxc.mount.entry",
                    "/dev/nvidia-uvm dev/nvidia-uvm none bind,optional,create=file",
                    Colon
                ),
                ("lxc.apparmor.profile", "unconfined", Colon),
            ]
        );
        let plain: Vec<(&str, &str)> = config.current().raw_lxc().collect();
        assert_eq!(plain[0], ("lxc.cgroup2.devices.allow", "c 226:* rwm"));
        assert_eq!(config.current().get("lxc.apparmor.profile"), None);
    }

    #[test]
    fn raw_lxc_spacing_variants_and_empty_values_normalise() {
        let cases = [
            ("lxc.cap.drop:\n", "lxc.cap.drop: \n"),
            ("lxc.cap.drop: \n", "lxc.cap.drop: \n"),
            ("lxc.cap.drop =\n", "lxc.cap.drop = \n"),
            ("lxc.init.cmd=/sbin/init\n", "lxc.init.cmd = /sbin/init\n"),
            (
                "lxc.init.cmd\t=  /sbin/init  \n",
                "lxc.init.cmd = /sbin/init\n",
            ),
            ("lxc.environment: A=b=c\n", "lxc.environment: A=b=c\n"),
            (
                "lxc.prlimit.nofile: 1024:2048\n",
                "lxc.prlimit.nofile: 1024:2048\n",
            ),
        ];
        for (input, expected) in cases {
            check(input, expected);
        }
    }

    #[test]
    fn push_and_remove_raw_lxc_edit_exact_entries() {
        let mut config = parse(fixture("plain"));
        let current = config.current_mut();
        current.push_raw_lxc("lxc.cgroup2.devices.allow", "c 226:* rwm");
        current.push_raw_lxc(
            "lxc.mount.entry",
            "/dev/dri dev/dri none bind,optional,create=dir",
        );
        current.push_raw_lxc("lxc.cgroup2.devices.allow", "c 226:128 rwm");
        let expected = format!(
            "{}lxc.cgroup2.devices.allow: c 226:* rwm\n\
             lxc.mount.entry: /dev/dri dev/dri none bind,optional,create=dir\n\
             lxc.cgroup2.devices.allow: c 226:128 rwm\n",
            fixture("plain")
        );
        assert_eq!(config.to_text(), expected);

        let current = config.current_mut();
        assert!(current.remove_raw_lxc("lxc.cgroup2.devices.allow", "c 226:* rwm"));
        assert!(!current.remove_raw_lxc("lxc.cgroup2.devices.allow", "c 226:* rwm"));
        assert!(!current.remove_raw_lxc("lxc.mount.entry", "/dev/dri"));
        let left: Vec<(&str, &str)> = current.raw_lxc().collect();
        assert_eq!(
            left,
            [
                (
                    "lxc.mount.entry",
                    "/dev/dri dev/dri none bind,optional,create=dir"
                ),
                ("lxc.cgroup2.devices.allow", "c 226:128 rwm"),
            ]
        );
    }

    #[test]
    fn remove_raw_lxc_removes_every_duplicate_and_keeps_other_separators() {
        let mut config = parse("lxc.a = 1\nlxc.b: 2\nlxc.a: 1\nlxc.a = 3\n");
        assert!(config.current_mut().remove_raw_lxc("lxc.a", "1"));
        assert_eq!(config.to_text(), "lxc.b: 2\nlxc.a = 3\n");
    }

    #[test]
    fn try_push_raw_lxc_rejects_bad_keys_and_values() {
        let mut section = ConfigSection::default();
        for key in [
            "cgroup2.devices.allow",
            "lxc.",
            "lxc.Mount",
            "lxc.mount entry",
        ] {
            assert_eq!(
                section.try_push_raw_lxc(key, "x"),
                Err(InvalidEntry::RawLxcKey(key.to_owned())),
                "{key:?}"
            );
        }
        for value in [" x", "x ", "a\nb"] {
            assert!(
                matches!(
                    section.try_push_raw_lxc("lxc.cap.drop", value),
                    Err(InvalidEntry::Value { .. })
                ),
                "{value:?}"
            );
        }
        assert_eq!(section.try_push_raw_lxc("lxc.cap.drop", ""), Ok(()));
        assert_eq!(section.raw_lxc().count(), 1);
    }

    #[test]
    fn pending_section_exposes_changes_and_delete_list() {
        let config = parse(fixture("pending"));
        let pending = config.pending().unwrap_or_else(|| panic!("no pending"));
        assert_eq!(pending.get("delete"), Some("mp1,nameserver"));
        assert_eq!(pending.get("features"), Some("fuse=1,nesting=1"));
        assert_eq!(config.current().get("features"), Some("nesting=1"));
        assert_eq!(config.current().get("delete"), None);
        assert_eq!(
            config.current().description(),
            "Vaultwarden password manager"
        );

        let full = parse(fixture("full"));
        let pending = full.pending().unwrap_or_else(|| panic!("no pending"));
        assert_eq!(pending.get("delete"), Some("swap"));
        let raw: Vec<(&str, &str)> = pending.raw_lxc().collect();
        assert_eq!(raw, [("lxc.cgroup2.devices.allow", "c 226:* rwm")]);
    }

    #[test]
    fn snapshots_are_found_by_name_with_their_own_options() {
        let config = parse(fixture("snapshots"));
        let names: Vec<&str> = config.snapshot_names().collect();
        assert_eq!(names, ["initial", "snap1", "snap2"]);
        assert_eq!(config.current().get("parent"), Some("snap2"));

        let cases = [
            ("initial", None, "1712345678", "1"),
            ("snap1", Some("initial"), "1718003456", "2"),
            ("snap2", Some("snap1"), "1721290311", "2"),
        ];
        for (name, parent, snaptime, cores) in cases {
            let snap = config
                .snapshot(name)
                .unwrap_or_else(|| panic!("missing snapshot {name}"));
            assert_eq!(snap.get("parent"), parent, "{name}");
            assert_eq!(snap.get("snaptime"), Some(snaptime), "{name}");
            assert_eq!(snap.get("cores"), Some(cores), "{name}");
        }
        assert_eq!(
            config.snapshot("snap1").map(ConfigSection::description),
            Some("Initial state, before upgrading to Debian 12: stable ✔")
        );
        assert!(config.snapshot("SNAP1").is_none());
        assert!(config.snapshot("pve:pending").is_none());
        assert!(config.pending().is_none());
    }

    #[test]
    fn snapshot_names_keep_file_order_but_are_written_sorted() {
        let config = parse("arch: amd64\n\n[zeta]\nsnaptime: 2\n\n[alpha]\nsnaptime: 1\n");
        let names: Vec<&str> = config.snapshot_names().collect();
        assert_eq!(names, ["zeta", "alpha"]);
        assert_eq!(
            config.to_text(),
            "arch: amd64\n\n[alpha]\nsnaptime: 1\n\n[zeta]\nsnaptime: 2\n"
        );
    }

    #[test]
    fn repeated_snapshot_section_replaces_the_earlier_one() {
        let config = parse("[snap1]\ncores: 1\nmemory: 512\n\n[snap1]\ncores: 2\n");
        assert_eq!(config.snapshot_names().collect::<Vec<_>>(), ["snap1"]);
        let snap = config
            .snapshot("snap1")
            .unwrap_or_else(|| panic!("missing"));
        assert_eq!(snap.get("cores"), Some("2"));
        assert_eq!(snap.get("memory"), None);
    }

    #[test]
    fn descriptions_belong_to_their_own_section() {
        let config = parse(fixture("full"));
        assert_eq!(
            config.current().description(),
            "Frigate NVR, installed by PVE App Store\nKamera-Streams: 4 × 1080p"
        );
        assert_eq!(config.pending().map(ConfigSection::description), Some(""));
        assert_eq!(
            config
                .snapshot("pre-upgrade")
                .map(ConfigSection::description),
            Some("Working config, 100% stable")
        );
    }

    #[test]
    fn next_free_index_finds_the_lowest_gap() {
        let devices = parse(fixture("devices_mp"));
        let current = devices.current();
        let cases = [("dev", 2), ("mp", 2), ("net", 1), ("unused", 1), ("foo", 0)];
        for (prefix, expected) in cases {
            assert_eq!(current.next_free_index(prefix), expected, "{prefix}");
        }

        let gapped = parse("mp0: a\nmp2: b\nmp10: c\n");
        assert_eq!(gapped.current().next_free_index("mp"), 1);
        let pending = parse(fixture("pending"));
        assert_eq!(pending.current().next_free_index("mp"), 0);
        assert_eq!(pending.pending().map(|p| p.next_free_index("mp")), Some(1));
    }

    #[test]
    fn devices_and_mount_points_parse_as_regular_options() {
        let config = parse(fixture("devices_mp"));
        let current = config.current();
        assert_eq!(current.get("dev0"), Some("/dev/dri/card0,gid=44"));
        assert_eq!(
            current.get("dev1"),
            Some("/dev/dri/renderD128,gid=104,mode=0660")
        );
        assert_eq!(
            current.get("mp0"),
            Some("local-lvm:vm-120-disk-1,mp=/srv/photos,backup=1,size=500G")
        );
    }

    #[test]
    fn adding_a_device_slot_round_trips() {
        let mut config = parse(fixture("devices_mp"));
        let slot = config.current().next_free_index("dev");
        config
            .current_mut()
            .set(&format!("dev{slot}"), "/dev/dri/renderD129,gid=104");
        let text = config.to_text();
        assert!(text.contains(
            "dev1: /dev/dri/renderD128,gid=104,mode=0660\ndev2: /dev/dri/renderD129,gid=104\n"
        ));
        assert_eq!(parse(&text), config);
    }

    #[test]
    fn parse_errors_carry_the_line_number() {
        let cases = [
            (
                "arch: amd64\nmemory 512\n",
                2,
                "missing ':' after key \"memory\"",
            ),
            ("arch: amd64\n\n[snap 1]\n", 3, "invalid section header"),
            ("[snap1\n", 1, "malformed section header"),
            ("arch: amd64\n[x]\n", 2, "invalid section header"),
            ("[1snap]\n", 1, "invalid section header"),
            ("[pve:other]\n", 1, "invalid section header"),
            ("[]\n", 1, "invalid section header"),
            ("arch: amd64\n  memory: 512\n", 2, "expected \"key: value\""),
            ("Memory: 512\n", 1, "expected \"key: value\""),
            ("net-0: x\n", 1, "expected \"key: value\""),
            ("memory\n", 1, "missing ':' after key \"memory\""),
            ("=value\n", 1, "expected \"key: value\""),
            (
                "arch: amd64\nlxc.mount.entry /dev/dri\n",
                2,
                "expected ':' or '='",
            ),
            ("lxc.: x\n", 1, "missing key name"),
            ("lxc.Mount: x\n", 1, "missing key name"),
            ("arch: amd64\r\n\r\nbogus\r\n", 3, "missing ':'"),
            (
                "a: 1\n\n[snap1]\nb: 2\n\n[pve:pending]\nc: 3\n! oops\n",
                8,
                "expected",
            ),
        ];
        for (input, line, message_part) in cases {
            check_error(input, line, message_part);
        }
    }

    #[test]
    fn parse_error_display_includes_line_and_message() {
        let err = PveConfig::parse("arch: amd64\nmemory 512\n")
            .err()
            .unwrap_or_else(|| panic!("expected an error"));
        assert_eq!(err.to_string(), "line 2: missing ':' after key \"memory\"");
    }

    #[test]
    fn empty_input_gives_an_empty_config() {
        check("", "");
        check("\n\n", "");
        let config = parse("");
        assert_eq!(config, PveConfig::default());
        assert_eq!(config.current().keys().count(), 0);
    }

    #[test]
    fn values_keep_inner_colons_and_trailing_whitespace() {
        check(
            "rootfs: local-lvm:vm-100-disk-0,size=8G\nstartup: order=1 \n",
            "rootfs: local-lvm:vm-100-disk-0,size=8G\nstartup: order=1 \n",
        );
        let config = parse("hookscript: local:snippets/hook.pl\n");
        assert_eq!(
            config.current().get("hookscript"),
            Some("local:snippets/hook.pl")
        );
    }
}
