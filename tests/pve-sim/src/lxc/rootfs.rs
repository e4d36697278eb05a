//! The Debian root file systems the containers start from (Debian 12 for `debian-12-*` templates,
//! Debian 13 for `debian-13-*`): each built once per machine by debootstrap from the host's own Debian
//! mirror, cached, and overlaid per container.

use super::*;

/// A Debian release the back end can give a container.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DebianRelease {
    /// Debian 12, the templates of PVE 8.x (and still offered on 9.x).
    Bookworm,
    /// Debian 13, the templates of PVE 9.x.
    Trixie,
}

impl DebianRelease {
    /// The release a template file (`debian-13-standard_13.1-2_amd64.tar.zst`) stands for.
    pub fn of_template(file: &str) -> Option<DebianRelease> {
        if file.starts_with("debian-12-") {
            Some(DebianRelease::Bookworm)
        } else if file.starts_with("debian-13-") {
            Some(DebianRelease::Trixie)
        } else {
            None
        }
    }

    /// `bookworm`, `trixie`.
    pub fn codename(self) -> &'static str {
        match self {
            DebianRelease::Bookworm => "bookworm",
            DebianRelease::Trixie => "trixie",
        }
    }

    /// `12`, `13`.
    pub fn number(self) -> &'static str {
        match self {
            DebianRelease::Bookworm => "12",
            DebianRelease::Trixie => "13",
        }
    }

    /// Where this release's tree is cached, beside the Debian 12 one at `debian_12`: the default
    /// `.../debian-12` has a `.../debian-13` sibling; any other name gets `-trixie` appended.
    pub fn cache_beside(self, debian_12: &Path) -> PathBuf {
        match self {
            DebianRelease::Bookworm => debian_12.to_path_buf(),
            DebianRelease::Trixie => {
                if debian_12.file_name().is_some_and(|n| n == "debian-12") {
                    debian_12.with_file_name("debian-13")
                } else {
                    sibling(debian_12, "-trixie")
                }
            }
        }
    }
}

/// The Debian 12 root file system cache: `$PVE_SIM_ROOTFS_CACHE` or [`DEFAULT_ROOTFS_CACHE`]; the
/// Debian 13 one is beside it ([`DebianRelease::cache_beside`]).
pub fn rootfs_cache_dir() -> PathBuf {
    std::env::var_os(ROOTFS_CACHE_ENV)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(DEFAULT_ROOTFS_CACHE))
}

/// Builds the root file system cache of each of `releases` unless it is there, so that a test's
/// deadlines start after the one slow step a fresh machine has (30-60 s of debootstrap each).
pub fn prepare_rootfs(releases: &[DebianRelease]) -> Result<(), String> {
    let cache = rootfs_cache_dir();
    let cache = std::env::current_dir()
        .map(|d| d.join(&cache))
        .unwrap_or(cache);
    for r in releases {
        ensure_rootfs(&r.cache_beside(&cache), *r)?;
    }
    Ok(())
}

/// Builds the `release` cache at `cache` unless it is there. Parallel callers (threads or processes)
/// wait on a lock beside it; the tree is built in a temporary directory and renamed when complete.
pub(super) fn ensure_rootfs(cache: &Path, release: DebianRelease) -> Result<(), String> {
    if cache.join(ROOTFS_MARKER).is_file() {
        return Ok(());
    }
    let _lock = lock_file(&sibling(cache, ".lock"))?;
    if cache.join(ROOTFS_MARKER).is_file() {
        return Ok(());
    }
    let parent = cache.parent().unwrap_or(Path::new("/"));
    let prefix = format!(
        "{}.tmp-",
        cache.file_name().unwrap_or_default().to_string_lossy()
    );
    // Whatever a crashed build left (we hold the lock: nobody else is building).
    if let Ok(rd) = std::fs::read_dir(parent) {
        for e in rd.filter_map(Result::ok) {
            if e.file_name().to_string_lossy().starts_with(&prefix) {
                discard_build(&e.path())?;
            }
        }
    }
    if cache.exists() {
        discard_build(cache)?;
    }
    let mirror = host_mirror()?;
    let tmp = sibling(cache, &format!(".tmp-{}", std::process::id()));
    let log_path = sibling(cache, ".log");
    let log = File::create(&log_path)
        .map_err(|e| format!("cannot create {}: {e}", log_path.display()))?;
    let log_err = log
        .try_clone()
        .map_err(|e| format!("cannot create {}: {e}", log_path.display()))?;
    eprintln!(
        "pve-sim: building the Debian {} root file system in {} from {} (once per machine; log {})",
        release.number(),
        cache.display(),
        mirror.uri,
        log_path.display()
    );
    let mut cmd = host_command("debootstrap");
    cmd.env("DEBIAN_FRONTEND", "noninteractive")
        .arg("--variant=minbase")
        .arg(format!("--include={ROOTFS_PACKAGES}"))
        .arg("--components=main");
    if let Some(keyring) = &mirror.keyring {
        cmd.arg(format!("--keyring={}", keyring.display()));
    }
    let status = cmd
        .arg(release.codename())
        .arg(&tmp)
        .arg(&mirror.uri)
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log_err)
        .status();
    let built = match status {
        Ok(s) if s.success() => Ok(()),
        Ok(s) => Err(format!(
            "debootstrap failed ({s}); see {}: {}",
            log_path.display(),
            tail(&log_path, 5)
        )),
        Err(e) => Err(format!("cannot run debootstrap: {e}")),
    };
    let finished = built.and_then(|()| {
        unmount_below(&tmp)?;
        finish_rootfs(&tmp, &mirror, release)?;
        std::fs::rename(&tmp, cache).map_err(|e| {
            format!(
                "cannot rename {} to {}: {e}",
                tmp.display(),
                cache.display()
            )
        })
    });
    if let Err(e) = finished {
        let _ = discard_build(&tmp);
        return Err(e);
    }
    Ok(())
}

/// Unmounts whatever a build left mounted inside `dir` (debootstrap mounts `/proc` and `/sys` in its
/// target), then removes it. Never removes a tree that still has a mount inside.
pub(super) fn discard_build(dir: &Path) -> Result<(), String> {
    unmount_below(dir)?;
    remove_dir_if_present(dir)
}

pub(super) fn finish_rootfs(
    tree: &Path,
    mirror: &Mirror,
    release: DebianRelease,
) -> Result<(), String> {
    let archives = tree.join("var/cache/apt/archives");
    if let Ok(rd) = std::fs::read_dir(&archives) {
        for e in rd.filter_map(Result::ok) {
            if e.path().extension().is_some_and(|x| x == "deb") {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }
    // The build host's name; each container's is written at start.
    let _ = std::fs::write(tree.join("etc/hostname"), "localhost\n");
    std::fs::write(
        tree.join(ROOTFS_MARKER),
        format!(
            "Debian {} ({}) root file system of pve-sim: debootstrap --variant=minbase --include={ROOTFS_PACKAGES} from {}\n",
            release.number(),
            release.codename(),
            mirror.uri
        ),
    )
    .map_err(|e| format!("cannot finish the root file system: {e}"))
}

pub(super) fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join(" | ")
}

/// Mount points at or below `dir`, deepest first.
pub(super) fn mounts_below(dir: &Path) -> Vec<PathBuf> {
    let Ok(dir) = std::fs::canonicalize(dir) else {
        return Vec::new();
    };
    let text = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let mut found: Vec<PathBuf> = text
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(|m| PathBuf::from(unescape_mountinfo(m)))
        .filter(|m| m.starts_with(&dir))
        .collect();
    found.sort_by_key(|m| std::cmp::Reverse(m.as_os_str().len()));
    found.dedup();
    found
}

/// mountinfo writes space, tab, newline and backslash as `\NNN` (octal).
pub(super) fn unescape_mountinfo(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal = bytes
            .get(i + 1..i + 4)
            .filter(|d| bytes[i] == b'\\' && d.iter().all(|c| (b'0'..=b'7').contains(c)));
        match octal {
            Some(d) => {
                out.push((d[0] - b'0') * 64 + (d[1] - b'0') * 8 + (d[2] - b'0'));
                i += 4;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

pub(super) fn unmount_below(dir: &Path) -> Result<(), String> {
    for m in mounts_below(dir) {
        let ok = host_command("umount")
            .arg(&m)
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            let _ = host_command("umount")
                .arg("-l")
                .arg(&m)
                .stdin(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    }
    match mounts_below(dir).first() {
        Some(m) => Err(format!("cannot unmount {}", m.display())),
        None => Ok(()),
    }
}

/// The Debian archive the host's apt uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Mirror {
    pub(super) uri: String,
    /// `Signed-By` keyring, when it is a binary keyring file debootstrap can read.
    pub(super) keyring: Option<PathBuf>,
}

/// Debian release names: an entry for any of them shows a mirror that also serves bookworm.
pub(super) const DEBIAN_SUITES: &[&str] = &[
    "bookworm", "trixie", "forky", "bullseye", "sid", "unstable", "testing", "stable",
];

/// One `deb` source: URI, suites, components, keyring.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct AptSource {
    pub(super) uris: Vec<String>,
    pub(super) suites: Vec<String>,
    pub(super) components: Vec<String>,
    pub(super) signed_by: Option<String>,
}

pub(super) fn deb822_sources(text: &str) -> Vec<AptSource> {
    let mut out = Vec::new();
    let mut fields: Vec<(String, String)> = Vec::new();
    let flush = |fields: &mut Vec<(String, String)>, out: &mut Vec<AptSource>| {
        let get = |k: &str| {
            fields
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(k))
                .map(|(_, v)| v.clone())
        };
        let words = |k: &str| -> Vec<String> {
            get(k)
                .unwrap_or_default()
                .split_whitespace()
                .map(str::to_string)
                .collect()
        };
        let enabled = get("Enabled").is_none_or(|v| !v.trim().eq_ignore_ascii_case("no"));
        if enabled && words("Types").iter().any(|t| t == "deb") {
            out.push(AptSource {
                uris: words("URIs"),
                suites: words("Suites"),
                components: words("Components"),
                signed_by: get("Signed-By").map(|s| s.trim().to_string()),
            });
        }
        fields.clear();
    };
    for line in text.lines() {
        if line.trim_start().starts_with('#') {
            continue;
        }
        if line.trim().is_empty() {
            flush(&mut fields, &mut out);
        } else if line.starts_with([' ', '\t']) {
            if let Some((_, v)) = fields.last_mut() {
                v.push('\n');
                v.push_str(line.trim());
            }
        } else if let Some((k, v)) = line.split_once(':') {
            fields.push((k.trim().to_string(), v.trim().to_string()));
        }
    }
    flush(&mut fields, &mut out);
    out
}

pub(super) fn one_line_sources(text: &str) -> Vec<AptSource> {
    let mut out = Vec::new();
    for line in text.lines() {
        let line = line.split('#').next().unwrap_or("").trim();
        let Some(rest) = line
            .strip_prefix("deb ")
            .or_else(|| line.strip_prefix("deb\t"))
        else {
            continue;
        };
        let mut rest = rest.trim_start();
        let mut signed_by = None;
        if let Some(opts) = rest.strip_prefix('[') {
            let Some((opts, after)) = opts.split_once(']') else {
                continue;
            };
            signed_by = opts
                .split_whitespace()
                .find_map(|o| o.strip_prefix("signed-by="))
                .map(str::to_string);
            rest = after.trim_start();
        }
        let mut words = rest.split_whitespace().map(str::to_string);
        let (Some(uri), Some(suite)) = (words.next(), words.next()) else {
            continue;
        };
        out.push(AptSource {
            uris: vec![uri],
            suites: vec![suite],
            components: words.collect(),
            signed_by,
        });
    }
    out
}

/// The mirror to debootstrap bookworm from: an entry for `bookworm` itself, else one for another Debian
/// release (its archive serves bookworm too). Security archives are never picked.
pub(super) fn pick_mirror(sources: &[AptSource]) -> Option<Mirror> {
    let usable = |s: &&AptSource| {
        s.components.iter().any(|c| c == "main")
            && s.uris.first().is_some_and(|u| {
                !u.contains("security")
                    && (u.starts_with("http://")
                        || u.starts_with("https://")
                        || u.starts_with("file:"))
            })
    };
    let with_suite = |pred: &dyn Fn(&str) -> bool| {
        sources
            .iter()
            .filter(usable)
            .find(|s| s.suites.iter().any(|x| pred(x)))
    };
    let source =
        with_suite(&|s| s == "bookworm").or_else(|| with_suite(&|s| DEBIAN_SUITES.contains(&s)))?;
    let keyring = source
        .signed_by
        .as_deref()
        .filter(|k| k.starts_with('/') && k.ends_with(".gpg") && !k.contains('\n'))
        .map(PathBuf::from)
        .filter(|k| k.is_file());
    Some(Mirror {
        uri: source.uris.first()?.trim_end_matches('/').to_string(),
        keyring,
    })
}

/// The Debian mirror the host's apt uses (`/etc/apt/sources.list.d/*.sources`, `*.list`,
/// `/etc/apt/sources.list`).
pub(super) fn host_mirror() -> Result<Mirror, String> {
    let mut sources = Vec::new();
    let mut files: Vec<PathBuf> = std::fs::read_dir("/etc/apt/sources.list.d")
        .map(|rd| rd.filter_map(Result::ok).map(|e| e.path()).collect())
        .unwrap_or_default();
    files.sort();
    for f in &files {
        let text = std::fs::read_to_string(f).unwrap_or_default();
        match f.extension().and_then(|x| x.to_str()) {
            Some("sources") => sources.extend(deb822_sources(&text)),
            Some("list") => sources.extend(one_line_sources(&text)),
            _ => {}
        }
    }
    sources.extend(one_line_sources(
        &std::fs::read_to_string("/etc/apt/sources.list").unwrap_or_default(),
    ));
    pick_mirror(&sources).ok_or_else(|| {
        "no Debian archive (suite bookworm or another Debian release, component main) in the host's apt sources; the LXC back end builds its root file system from it".to_string()
    })
}

// ---------------------------------------------------------------------------------------------------
// Network
