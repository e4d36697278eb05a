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
mod tests;
