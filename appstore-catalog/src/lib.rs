//! The app catalog: a Git repository of apps (`apps/<id>/app.yml` + scripts + assets) fetched with git2,
//! pinned to one commit, loaded and validated app by app, and indexed for search.
//!
//! A broken app never breaks the catalog: valid apps load, invalid ones are listed with every problem.
//! What was validated is what gets installed: apps are read from the pinned commit's tree, each
//! manifest has a content hash and each script a sha256.

mod files;
pub mod git;
pub mod index;
pub mod load;

pub use git::{GitCache, GitCatalog, GitSource, Refresh};
pub use index::{Query, SearchIndex, Sort};
pub use load::{load_dir, AppFile, BrokenApp, CatalogApp, CatalogSnapshot, SourceInfo};

use std::path::PathBuf;

/// Largest `app.yml`.
pub const MAX_MANIFEST_BYTES: u64 = 256 * 1024;
/// Largest script.
pub const MAX_SCRIPT_BYTES: u64 = 1024 * 1024;
/// Largest single asset file.
pub const MAX_ASSET_BYTES: u64 = 16 * 1024 * 1024;
/// Largest icon.
pub const MAX_ICON_BYTES: u64 = 512 * 1024;
/// Largest README.
pub const MAX_README_BYTES: u64 = 1024 * 1024;

/// Errors of the catalog.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The local cache of a catalog repository cannot be opened or created.
    #[error("cannot open the catalog cache at {path}")]
    Cache {
        /// Cache directory.
        path: PathBuf,
        /// Cause.
        #[source]
        source: git2::Error,
    },
    /// Fetching from the remote failed.
    #[error("cannot fetch branch `{branch}` of {url}")]
    Fetch {
        /// Remote URL.
        url: String,
        /// Branch.
        branch: String,
        /// Cause.
        #[source]
        source: git2::Error,
    },
    /// The branch does not exist on the remote.
    #[error("branch `{branch}` does not exist in {url}; check `catalog.branch`")]
    NoBranch {
        /// Remote URL.
        url: String,
        /// Branch.
        branch: String,
    },
    /// A commit's tree cannot be read.
    #[error("cannot read the catalog at commit {commit}")]
    Read {
        /// Commit id.
        commit: String,
        /// Cause.
        #[source]
        source: git2::Error,
    },
    /// The tree has no `apps/` directory.
    #[error("{what} has no `apps/` directory, so it is not an app catalog")]
    NoAppsDir {
        /// The commit or directory.
        what: String,
    },
    /// A file of a local catalog directory cannot be read.
    #[error("cannot read {path}")]
    Io {
        /// Path.
        path: PathBuf,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// An app or one of its files is not in the snapshot.
    #[error("app `{app}` has no file `{path}` in commit {commit}")]
    MissingFile {
        /// App id.
        app: String,
        /// Path inside the app directory.
        path: String,
        /// Commit.
        commit: String,
    },
    /// A file read back from the pinned commit no longer has the hash that was validated.
    #[error("`{path}` of app `{app}` does not match its pinned sha256")]
    HashMismatch {
        /// App id.
        app: String,
        /// Path inside the app directory.
        path: String,
    },
}
