//! The files of one app directory, read from a Git tree or from a plain directory, behind one trait so
//! the checks that keep an app inside its directory are written once.

use git2::{ObjectType, Oid, Repository, Tree, TreeWalkMode, TreeWalkResult};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// What a path in an app directory is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Kind {
    File,
    Dir,
    Symlink,
    /// A submodule, device, socket or fifo: never allowed in an app.
    Other,
}

/// Read access to one app directory. Paths are relative, `/`-separated.
pub(crate) trait AppFiles {
    /// Every path below the app directory, recursively.
    fn entries(&self) -> &BTreeMap<String, Kind>;
    /// The contents of a file, or why it cannot be read (too large, unreadable).
    fn read(&self, rel: &str, limit: u64) -> Result<Vec<u8>, String>;
    /// The target of a symlink.
    fn link_target(&self, rel: &str) -> Option<String>;
}

fn too_large(size: u64, limit: u64) -> String {
    format!("is {size} bytes, more than the limit of {limit}")
}

/// An app directory inside a Git tree.
pub(crate) struct GitAppFiles<'r> {
    repo: &'r Repository,
    entries: BTreeMap<String, Kind>,
    oids: BTreeMap<String, Oid>,
}

impl<'r> GitAppFiles<'r> {
    pub(crate) fn new(repo: &'r Repository, tree: &Tree<'_>) -> Result<Self, git2::Error> {
        let mut entries = BTreeMap::new();
        let mut oids = BTreeMap::new();
        tree.walk(TreeWalkMode::PreOrder, |root, entry| {
            let Ok(name) = entry.name() else {
                return TreeWalkResult::Skip;
            };
            let path = format!("{root}{name}");
            let kind = match (entry.kind(), entry.filemode()) {
                (Some(ObjectType::Tree), _) => Kind::Dir,
                (Some(ObjectType::Blob), 0o120000) => Kind::Symlink,
                (Some(ObjectType::Blob), _) => Kind::File,
                _ => Kind::Other,
            };
            oids.insert(path.clone(), entry.id());
            entries.insert(path, kind);
            TreeWalkResult::Ok
        })?;
        Ok(GitAppFiles {
            repo,
            entries,
            oids,
        })
    }
}

impl AppFiles for GitAppFiles<'_> {
    fn entries(&self) -> &BTreeMap<String, Kind> {
        &self.entries
    }

    fn read(&self, rel: &str, limit: u64) -> Result<Vec<u8>, String> {
        let oid = self.oids.get(rel).ok_or("does not exist")?;
        let odb = self.repo.odb().map_err(|e| e.message().to_string())?;
        let (size, _) = odb.read_header(*oid).map_err(|e| e.message().to_string())?;
        if size as u64 > limit {
            return Err(too_large(size as u64, limit));
        }
        let blob = self
            .repo
            .find_blob(*oid)
            .map_err(|e| e.message().to_string())?;
        Ok(blob.content().to_vec())
    }

    fn link_target(&self, rel: &str) -> Option<String> {
        let oid = self.oids.get(rel)?;
        let blob = self.repo.find_blob(*oid).ok()?;
        Some(String::from_utf8_lossy(blob.content()).into_owned())
    }
}

/// An app directory on disk (a catalog checkout being linted).
pub(crate) struct DirAppFiles {
    root: PathBuf,
    entries: BTreeMap<String, Kind>,
}

impl DirAppFiles {
    pub(crate) fn new(root: &Path) -> std::io::Result<Self> {
        let mut entries = BTreeMap::new();
        let mut stack = vec![(root.to_path_buf(), String::new())];
        while let Some((dir, prefix)) = stack.pop() {
            for entry in std::fs::read_dir(&dir)? {
                let entry = entry?;
                let name = entry.file_name().to_string_lossy().into_owned();
                let rel = format!("{prefix}{name}");
                let ft = entry.file_type()?;
                let kind = if ft.is_symlink() {
                    Kind::Symlink
                } else if ft.is_dir() {
                    stack.push((entry.path(), format!("{rel}/")));
                    Kind::Dir
                } else if ft.is_file() {
                    Kind::File
                } else {
                    Kind::Other
                };
                entries.insert(rel, kind);
            }
        }
        Ok(DirAppFiles {
            root: root.to_path_buf(),
            entries,
        })
    }
}

impl AppFiles for DirAppFiles {
    fn entries(&self) -> &BTreeMap<String, Kind> {
        &self.entries
    }

    fn read(&self, rel: &str, limit: u64) -> Result<Vec<u8>, String> {
        let path = self.root.join(rel);
        let meta = std::fs::symlink_metadata(&path).map_err(|e| e.to_string())?;
        if meta.len() > limit {
            return Err(too_large(meta.len(), limit));
        }
        std::fs::read(&path).map_err(|e| e.to_string())
    }

    fn link_target(&self, rel: &str) -> Option<String> {
        std::fs::read_link(self.root.join(rel))
            .ok()
            .map(|t| t.to_string_lossy().into_owned())
    }
}

/// True when a symlink at `rel` pointing to `target` stays inside the app directory.
pub(crate) fn link_stays_inside(rel: &str, target: &str) -> bool {
    if target.starts_with('/') {
        return false;
    }
    let mut depth: i64 = rel.split('/').count() as i64 - 1;
    for part in target.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                depth -= 1;
                if depth < 0 {
                    return false;
                }
            }
            _ => depth += 1,
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::link_stays_inside;

    #[test]
    fn symlinks_that_climb_out_are_caught() {
        assert!(link_stays_inside("a/b", "c"));
        assert!(link_stays_inside("a/b", "../x"));
        assert!(!link_stays_inside("a", "../x"));
        assert!(!link_stays_inside("a/b", "../../x"));
        assert!(!link_stays_inside("a", "/etc/passwd"));
        assert!(!link_stays_inside("a/b", "c/../../../x"));
    }
}
