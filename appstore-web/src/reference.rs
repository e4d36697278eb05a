//! The reference catalog, built into the binary: the default catalog of a fresh node (and the demo's).
//! It is written to a real Git repository under the state directory at start and followed like any
//! other catalog, so a node without network access has apps, and a new binary brings its new apps.

use anyhow::Context as _;
use git2::{Repository, Signature};
use rust_embed::RustEmbed;
use std::path::Path;

#[derive(RustEmbed)]
#[folder = "../catalog/"]
struct ReferenceCatalog;

/// Writes the embedded reference catalog into a Git repository at `dir` (created or updated) and
/// commits it on `main` when anything changed. Returns the repository's `file://` URL.
pub fn write_reference_catalog(dir: &Path) -> anyhow::Result<String> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let repo = match Repository::open(dir) {
        Ok(r) => r,
        Err(_) => {
            let r = Repository::init(dir)
                .with_context(|| format!("cannot create a git repository in {}", dir.display()))?;
            r.set_head("refs/heads/main")?;
            r
        }
    };
    for name in ReferenceCatalog::iter() {
        let file = ReferenceCatalog::get(&name).context("embedded file vanished")?;
        let path = dir.join(name.as_ref());
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(&path, file.data.as_ref())
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    let mut index = repo.index()?;
    index.add_all(["*"], git2::IndexAddOption::DEFAULT, None)?;
    index.write()?;
    let tree_id = index.write_tree()?;
    let head = repo.head().ok().and_then(|h| h.peel_to_commit().ok());
    if head.as_ref().is_some_and(|c| c.tree_id() == tree_id) {
        return Ok(file_url(dir));
    }
    let tree = repo.find_tree(tree_id)?;
    let sig = Signature::now("PVE App Store", "appstore@localhost")?;
    let parents: Vec<&git2::Commit> = head.iter().collect();
    repo.commit(
        Some("HEAD"),
        &sig,
        &sig,
        "Reference catalog",
        &tree,
        &parents,
    )?;
    Ok(file_url(dir))
}

fn file_url(dir: &Path) -> String {
    let abs = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
    format!("file://{}", abs.display())
}
