//! Opening host files as root without being steered by someone else's symlink or directory. Every
//! path is opened once, without following links at any component (`openat2` with
//! `RESOLVE_NO_SYMLINKS`, `RESOLVE_BENEATH` below a root), checked on the open descriptor (`fstat`:
//! type, owner, mode, size), and then used only through that descriptor.

use rustix::fs::{FileType, Mode, OFlags, ResolveFlags, Stat, CWD};
use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;

/// Why a path could not be used.
#[derive(Debug, thiserror::Error)]
pub enum UnsafePath {
    /// The kernel refused the open (a symlink on the way gives `ELOOP`, an escape `EXDEV`).
    #[error("{what} `{path}` cannot be opened without following a symlink or leaving its directory ({errno})")]
    Open {
        /// What the path is for.
        what: &'static str,
        /// The path.
        path: String,
        /// The error.
        errno: std::io::Error,
    },
    /// The opened object is not what it must be.
    #[error("{what} `{path}` {problem}")]
    Refused {
        /// What the path is for.
        what: &'static str,
        /// The path.
        path: String,
        /// What is wrong, with the fix.
        problem: String,
    },
}

const NO_LINKS: ResolveFlags = ResolveFlags::NO_SYMLINKS.union(ResolveFlags::NO_MAGICLINKS);

fn open_err(what: &'static str, path: &str, e: rustix::io::Errno) -> UnsafePath {
    UnsafePath::Open {
        what,
        path: path.to_string(),
        errno: e.into(),
    }
}

fn refused(what: &'static str, path: &str, problem: impl Into<String>) -> UnsafePath {
    UnsafePath::Refused {
        what,
        path: path.to_string(),
        problem: problem.into(),
    }
}

/// The file type of a stat.
pub fn file_type(st: &Stat) -> FileType {
    FileType::from_raw_mode(st.st_mode)
}

/// Opens the directory `path` (absolute) following no symlink at any component.
pub fn open_dir(path: &Path, what: &'static str) -> Result<OwnedFd, UnsafePath> {
    let text = path.to_string_lossy();
    rustix::fs::openat2(
        CWD,
        path,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
        NO_LINKS,
    )
    .map_err(|e| open_err(what, &text, e))
}

/// Opens a directory of root's own (`/etc/pve/lxc`, which PVE makes a symlink into
/// `nodes/<node>/`): links are followed, since only root can change them.
pub fn open_root_dir(path: &Path, what: &'static str) -> Result<OwnedFd, UnsafePath> {
    let text = path.to_string_lossy();
    rustix::fs::open(
        path,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| open_err(what, &text, e))
}

/// A directory only `owner` may write: opened without links, created (0700) when missing, and
/// refused unless it is owned by `owner` with no write bit for group or others. The helper's audit
/// log and its staging live in such a directory.
pub fn private_dir(path: &Path, owner: u32, what: &'static str) -> Result<OwnedFd, UnsafePath> {
    let text = path.to_string_lossy().into_owned();
    if let (Some(parent), Some(name)) = (path.parent(), path.file_name()) {
        let parent_fd = match open_dir(parent, what) {
            Err(UnsafePath::Open { errno, .. }) if errno.kind() == std::io::ErrorKind::NotFound => {
                // A missing parent is made the same way (0700, the helper's own).
                private_dir(parent, owner, what)?;
                open_dir(parent, what)?
            }
            other => other?,
        };
        match rustix::fs::mkdirat(&parent_fd, name, Mode::from_raw_mode(0o700)) {
            Ok(()) | Err(rustix::io::Errno::EXIST) => {}
            Err(e) => return Err(open_err(what, &text, e)),
        }
    }
    let fd = rustix::fs::openat2(
        CWD,
        path,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
        NO_LINKS,
    )
    .map_err(|e| open_err(what, &text, e))?;
    let st = rustix::fs::fstat(&fd).map_err(|e| open_err(what, &text, e))?;
    if st.st_uid != owner || st.st_mode & 0o022 != 0 {
        return Err(refused(
            what,
            &text,
            format!(
                "must be a directory owned by uid {owner} that no one else can write (it is uid {}, mode {:o}); fix: chown {owner} and chmod 0700 it",
                st.st_uid,
                st.st_mode & 0o7777
            ),
        ));
    }
    Ok(fd)
}

/// Opens `rel` (relative, normalised) below the directory `root` for reading: no symlink at any
/// component of either, never leaving `root`, non-blocking (a FIFO cannot hold the helper). The
/// caller checks the result with [`regular_file`].
pub fn open_beneath(root: &Path, rel: &str, what: &'static str) -> Result<OwnedFd, UnsafePath> {
    let root_fd = open_dir(root, what)?;
    rustix::fs::openat2(
        &root_fd,
        rel,
        OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::NOCTTY | OFlags::CLOEXEC,
        Mode::empty(),
        NO_LINKS | ResolveFlags::BENEATH | ResolveFlags::NO_XDEV,
    )
    .map_err(|e| open_err(what, &root.join(rel).to_string_lossy(), e))
}

/// Checks that `fd` is a regular file owned by `owner`, with one link, at most `max_bytes` long;
/// returns its size.
pub fn regular_file(
    fd: impl AsFd,
    owner: u32,
    max_bytes: u64,
    what: &'static str,
    path: &str,
) -> Result<u64, UnsafePath> {
    let st = rustix::fs::fstat(fd).map_err(|e| open_err(what, path, e))?;
    if file_type(&st) != FileType::RegularFile {
        return Err(refused(
            what,
            path,
            format!("is a {:?}, not a regular file", file_type(&st)),
        ));
    }
    if st.st_uid != owner {
        return Err(refused(
            what,
            path,
            format!(
                "belongs to uid {}, not to the caller (uid {owner})",
                st.st_uid
            ),
        ));
    }
    if st.st_nlink > 1 {
        return Err(refused(
            what,
            path,
            "has more than one name (a hard link); write a new file instead",
        ));
    }
    let size = u64::try_from(st.st_size).unwrap_or(u64::MAX);
    if size > max_bytes {
        return Err(refused(
            what,
            path,
            format!("is {size} bytes, over the limit of {max_bytes}"),
        ));
    }
    Ok(size)
}

/// An unnamed file (`O_TMPFILE`, 0600) in `dir`: it has no name anyone could open or swap, and it is
/// gone when the descriptor closes, crash included.
pub fn unnamed_file(dir: impl AsFd, what: &'static str) -> Result<std::fs::File, UnsafePath> {
    rustix::fs::openat(
        dir,
        ".",
        OFlags::TMPFILE | OFlags::RDWR | OFlags::CLOEXEC,
        Mode::from_raw_mode(0o600),
    )
    .map(std::fs::File::from)
    .map_err(|e| open_err(what, "(unnamed file)", e))
}

/// Opens `name` in `dir` for appending (created 0600), never through a link, and checks that it is a
/// regular file owned by `owner` that no one else may write.
pub fn append_file(
    dir: impl AsFd,
    name: &str,
    owner: u32,
    what: &'static str,
) -> Result<(std::fs::File, u64), UnsafePath> {
    let fd = rustix::fs::openat(
        dir,
        name,
        OFlags::WRONLY
            | OFlags::APPEND
            | OFlags::CREATE
            | OFlags::NOFOLLOW
            | OFlags::NONBLOCK
            | OFlags::NOCTTY
            | OFlags::CLOEXEC,
        Mode::from_raw_mode(0o600),
    )
    .map_err(|e| open_err(what, name, e))?;
    let st = rustix::fs::fstat(&fd).map_err(|e| open_err(what, name, e))?;
    if file_type(&st) != FileType::RegularFile || st.st_uid != owner || st.st_mode & 0o077 != 0 {
        return Err(refused(
            what,
            name,
            format!(
                "must be a regular file owned by uid {owner}, mode 0600 (it is a {:?} of uid {}, mode {:o})",
                file_type(&st),
                st.st_uid,
                st.st_mode & 0o7777
            ),
        ));
    }
    Ok((
        std::fs::File::from(fd),
        u64::try_from(st.st_size).unwrap_or(0),
    ))
}

/// Checks that no one but root (or `me`, the helper's own user, which is root in production) can
/// change what `path` names: every directory from `/` down to it (itself included when
/// `include_last`) is owned by root or `me` and writable by no one else. A sticky directory such as
/// `/tmp` is accepted where the entry below it is known to be root's: others cannot rename or
/// remove root's entries there. That is every directory on the way but the last one's parent,
/// which qualifies only with `last_is_roots` (the caller checks the last entry's owner itself).
/// Nothing is followed: a symlink anywhere is refused.
pub fn root_controlled(
    path: &Path,
    include_last: bool,
    last_is_roots: bool,
    me: u32,
    what: &'static str,
) -> Result<(), UnsafePath> {
    let text = path.to_string_lossy().into_owned();
    let normal = appstore_core::manifest::normalize_abs(&text)
        .map_err(|e| refused(what, &text, format!("is not a clean absolute path: {e}")))?;
    let parts: Vec<&str> = normal.split('/').filter(|p| !p.is_empty()).collect();
    let checked = if include_last {
        parts.len()
    } else {
        parts.len().saturating_sub(1)
    };
    let mut current = String::from("/");
    for i in 0..=checked {
        if i > 0 {
            if current.len() > 1 {
                current.push('/');
            }
            current.push_str(parts[i - 1]);
        }
        let fd = rustix::fs::openat2(
            CWD,
            current.as_str(),
            OFlags::PATH | OFlags::CLOEXEC | OFlags::NOFOLLOW,
            Mode::empty(),
            NO_LINKS,
        )
        .map_err(|e| open_err(what, &current, e))?;
        let st = rustix::fs::fstat(&fd).map_err(|e| open_err(what, &current, e))?;
        let kind = file_type(&st);
        if kind == FileType::Symlink {
            return Err(refused(
                what,
                &text,
                format!("goes through the symlink {current}"),
            ));
        }
        if kind != FileType::Directory {
            if i == checked && i == parts.len() {
                // The path itself is a file (a config file): its own owner and mode are checked by
                // the caller.
                continue;
            }
            return Err(refused(
                what,
                &text,
                format!("has {current}, which is not a directory"),
            ));
        }
        // The entry below this directory: checked as root's in the next round, or the last one.
        let child_is_roots = i < checked || (i + 1 == parts.len() && last_is_roots);
        let sticky = st.st_mode & 0o1000 != 0 && child_is_roots;
        let writable_by_others = st.st_mode & 0o022 != 0;
        if (st.st_uid != 0 && st.st_uid != me) || (writable_by_others && !sticky) {
            return Err(refused(
                what,
                &text,
                format!(
                    "has {current} (uid {}, mode {:o}), which someone other than root can change; fix: chown root and chmod go-w {current}",
                    st.st_uid,
                    st.st_mode & 0o7777
                ),
            ));
        }
    }
    Ok(())
}

/// Takes an exclusive `flock` on `name` in `dir` (created 0600, never through a link), waiting at
/// most `limit`. The lock holds while the returned descriptor lives.
pub fn lock_file(
    dir: impl AsFd,
    name: &str,
    limit: std::time::Duration,
    what: &'static str,
) -> Result<OwnedFd, UnsafePath> {
    let fd = rustix::fs::openat(
        dir,
        name,
        OFlags::RDWR | OFlags::CREATE | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC,
        Mode::from_raw_mode(0o600),
    )
    .map_err(|e| open_err(what, name, e))?;
    let st = rustix::fs::fstat(&fd).map_err(|e| open_err(what, name, e))?;
    if file_type(&st) != FileType::RegularFile {
        return Err(refused(what, name, "is not a regular file"));
    }
    let deadline = std::time::Instant::now() + limit;
    loop {
        match rustix::fs::flock(&fd, rustix::fs::FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => return Ok(fd),
            Err(rustix::io::Errno::WOULDBLOCK) if std::time::Instant::now() < deadline => {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            Err(rustix::io::Errno::WOULDBLOCK) => {
                return Err(refused(
                    what,
                    name,
                    format!(
                        "stayed locked for {} s; another task holds the container's config",
                        limit.as_secs()
                    ),
                ))
            }
            Err(e) => return Err(open_err(what, name, e)),
        }
    }
}
