//! Container template names as PVE's appliance index writes them
//! (`debian-13-standard_13.1-2_amd64.tar.zst`), and the choice of the newest standard template of a
//! family (`debian-13`) that a manifest's `lxc.ostemplate` names. Versions compare number by number,
//! so `12.12-1` is newer than `12.7-1`.

use std::cmp::Ordering;

/// The parts of a template file name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateName<'a> {
    /// `debian-13`.
    pub family: &'a str,
    /// `standard`, `default`, ...
    pub flavour: &'a str,
    /// `13.1-2`.
    pub version: &'a str,
}

/// Reads `[storage:vztmpl/]<family>-<flavour>_<version>_<arch>.tar.<ext>`; `None` for any other name.
pub fn parse(name: &str) -> Option<TemplateName<'_>> {
    let file = name.rsplit('/').next().unwrap_or(name);
    let mut parts = file.split('_');
    let (head, version, _arch) = (parts.next()?, parts.next()?, parts.next()?);
    let (family, flavour) = head.rsplit_once('-')?;
    if family.is_empty() || flavour.is_empty() || version.is_empty() {
        return None;
    }
    Some(TemplateName {
        family,
        flavour,
        version,
    })
}

/// Compares two template versions number by number (`13.1-2` < `13.10-1`); text between numbers
/// compares as text.
pub fn compare_versions(a: &str, b: &str) -> Ordering {
    let split = |s: &str| -> Vec<(u64, String)> {
        s.split(['.', '-', '+', '~'])
            .map(|p| {
                let digits: String = p.chars().take_while(char::is_ascii_digit).collect();
                (digits.parse().unwrap_or(0), p[digits.len()..].to_string())
            })
            .collect()
    };
    split(a).cmp(&split(b))
}

/// The newest standard template of `family` among `names` (volume ids or file names).
pub fn newest<'a, I: IntoIterator<Item = &'a str>>(family: &str, names: I) -> Option<&'a str> {
    names
        .into_iter()
        .filter_map(|n| Some((n, parse(n)?)))
        .filter(|(_, t)| t.family == family && t.flavour == "standard")
        .max_by(|(_, a), (_, b)| compare_versions(a.version, b.version))
        .map(|(n, _)| n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_read_and_the_newest_standard_one_wins() {
        let t = parse("local:vztmpl/debian-13-standard_13.1-2_amd64.tar.zst").unwrap();
        assert_eq!(
            (t.family, t.flavour, t.version),
            ("debian-13", "standard", "13.1-2")
        );
        let t = parse("ubuntu-24.04-standard_24.04-2_amd64.tar.zst").unwrap();
        assert_eq!(t.family, "ubuntu-24.04");
        assert!(parse("README").is_none());
        let vols = [
            "local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst",
            "local:vztmpl/debian-12-standard_12.12-1_amd64.tar.zst",
            "local:vztmpl/debian-12-turnkey_12.20-1_amd64.tar.zst",
            "local:vztmpl/debian-13-standard_13.1-2_amd64.tar.zst",
            "local:vztmpl/debian-1-standard_1.0-1_amd64.tar.zst",
        ];
        assert_eq!(
            newest("debian-12", vols),
            Some("local:vztmpl/debian-12-standard_12.12-1_amd64.tar.zst")
        );
        assert_eq!(
            newest("debian-13", vols),
            Some("local:vztmpl/debian-13-standard_13.1-2_amd64.tar.zst")
        );
        assert_eq!(newest("debian-11", vols), None);
        assert_eq!(compare_versions("13.1-2", "13.1-10"), Ordering::Less);
    }
}
