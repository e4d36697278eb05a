//! Fetching a catalog repository with git2 into a local cache, pinning a commit, refreshing cheaply,
//! and exporting an app's files from the pinned commit with their hashes checked.

use crate::load::{load_commit, CatalogApp, CatalogSnapshot};
use crate::Error;
use git2::{FetchOptions, Oid, Repository};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// A catalog repository and branch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GitSource {
    /// `https://...`, `file:///...` or a local path.
    pub url: String,
    /// Branch to follow.
    pub branch: String,
    /// The directory of the repository that holds `apps/` (empty: its top), such as `catalog`.
    pub path: String,
}

impl GitSource {
    /// Where `apps/` is inside the repository.
    pub fn apps_dir(&self) -> PathBuf {
        apps_dir(&self.path)
    }
}

/// `apps/` below `path` (a checked, relative directory of the repository; empty for its top).
pub(crate) fn apps_dir(path: &str) -> PathBuf {
    Path::new(path.trim_matches('/')).join("apps")
}

/// Bare clones of catalog repositories under one directory, one per URL.
#[derive(Debug, Clone)]
pub struct GitCache {
    root: PathBuf,
}

/// How long libgit2 waits for a connection to a catalog's server.
pub const CONNECT_TIMEOUT_MS: i32 = 10_000;
/// How long libgit2 waits for data on an open connection.
pub const READ_TIMEOUT_MS: i32 = 30_000;

/// Sets libgit2's connect and read timeouts once per process, so an unreachable or silent remote
/// cannot hang a refresh (libgit2 waits for ever by default).
pub fn set_network_timeouts() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // SAFETY: these set process-wide integers in libgit2's option table. git2-rs marks every
        // `git_libgit2_opts` call unsafe because options that take pointers are racy; these take
        // plain integers, and `Once` makes this the only write, before any fetch of this crate.
        #[allow(unsafe_code)]
        unsafe {
            let _ = git2::opts::set_server_connect_timeout_in_milliseconds(CONNECT_TIMEOUT_MS);
            let _ = git2::opts::set_server_timeout_in_milliseconds(READ_TIMEOUT_MS);
        }
    });
}

impl GitCache {
    /// A cache rooted at `root` (created on first use).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        set_network_timeouts();
        GitCache { root: root.into() }
    }

    /// Where the clone of `url` lives.
    pub fn repo_path(&self, url: &str) -> PathBuf {
        let digest = hex::encode(Sha256::digest(url.as_bytes()));
        self.root.join(format!("{}.git", &digest[..16]))
    }

    fn open(&self, url: &str) -> Result<Repository, Error> {
        let path = self.repo_path(url);
        let cache_err = |source| Error::Cache {
            path: path.clone(),
            source,
        };
        match Repository::open_bare(&path) {
            Ok(repo) => Ok(repo),
            Err(_) => {
                std::fs::create_dir_all(&self.root).map_err(|e| Error::Io {
                    path: self.root.clone(),
                    source: e,
                })?;
                let repo = Repository::init_bare(&path).map_err(cache_err)?;
                repo.remote("origin", url).map_err(cache_err)?;
                Ok(repo)
            }
        }
    }

    /// First fetch of a repository on this machine (`file://` or a path): copy its objects as
    /// `git clone --local` does, instead of building a pack of the whole history.
    fn clone_local(&self, source: &GitSource) -> Result<(), Error> {
        let path = self.repo_path(&source.url);
        if path.exists() || !(source.url.starts_with("file://") || source.url.starts_with('/')) {
            return Ok(());
        }
        std::fs::create_dir_all(&self.root).map_err(|e| Error::Io {
            path: self.root.clone(),
            source: e,
        })?;
        let result = git2::build::RepoBuilder::new()
            .bare(true)
            .clone_local(git2::build::CloneLocal::Local)
            .branch(&source.branch)
            .clone(&source.url, &path);
        if result.is_err() {
            // Leave nothing half-made: the ordinary fetch that follows reports the real problem.
            let _ = std::fs::remove_dir_all(&path);
        }
        Ok(())
    }

    /// Fetches `source.branch` (force: a rewritten branch replaces the old one) and returns the repository
    /// and the branch's commit. An unreachable remote fails after [`CONNECT_TIMEOUT_MS`], a silent
    /// one after [`READ_TIMEOUT_MS`].
    pub fn fetch(&self, source: &GitSource) -> Result<(Repository, Oid), Error> {
        set_network_timeouts();
        self.clone_local(source)?;
        let repo = self.open(&source.url)?;
        let fetch_err = |e| Error::Fetch {
            url: source.url.clone(),
            branch: source.branch.clone(),
            source: e,
        };
        {
            let mut remote = repo.remote_anonymous(&source.url).map_err(fetch_err)?;
            let refspec = format!("+refs/heads/{b}:refs/remotes/origin/{b}", b = source.branch);
            let mut opts = FetchOptions::new();
            opts.download_tags(git2::AutotagOption::None);
            match remote.fetch(&[refspec.as_str()], Some(&mut opts), None) {
                Ok(()) => {}
                Err(e)
                    if e.code() == git2::ErrorCode::NotFound
                        || e.message().contains("couldn't find remote ref") =>
                {
                    return Err(Error::NoBranch {
                        url: source.url.clone(),
                        branch: source.branch.clone(),
                    })
                }
                Err(e) => return Err(fetch_err(e)),
            }
        }
        let refname = format!("refs/remotes/origin/{}", source.branch);
        let oid = match repo.refname_to_id(&refname) {
            Ok(oid) => oid,
            Err(_) => {
                return Err(Error::NoBranch {
                    url: source.url.clone(),
                    branch: source.branch.clone(),
                })
            }
        };
        Ok((repo, oid))
    }
}

impl GitCache {
    /// Writes the app's directory as of the snapshot's commit into `dest` (created), and checks every
    /// pinned file against its recorded sha256. `dest` then holds exactly what was validated.
    pub fn export_app(
        &self,
        snapshot: &CatalogSnapshot,
        app: &CatalogApp,
        dest: &Path,
    ) -> Result<(), Error> {
        let commit = snapshot.source().commit.clone().unwrap_or_default();
        let read_err = |source| Error::Read {
            commit: commit.clone(),
            source,
        };
        let repo = self.open(&snapshot.source().url)?;
        let oid = Oid::from_str(&commit).map_err(read_err)?;
        let tree = repo
            .find_commit(oid)
            .and_then(|c| c.tree())
            .map_err(read_err)?;
        let id = app.manifest.id().as_str();
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| Error::Io { path, source }
        };
        let mut written = 0;
        let mut paths: Vec<&str> = vec!["app.yml"];
        paths.extend(app.files.iter().map(|f| f.path.as_str()));
        for rel in paths {
            let entry = tree
                .get_path(&apps_dir(&snapshot.source().path).join(id).join(rel))
                .map_err(|_| Error::MissingFile {
                    app: id.to_string(),
                    path: rel.to_string(),
                    commit: commit.clone(),
                })?;
            let blob = repo.find_blob(entry.id()).map_err(read_err)?;
            let sum = hex::encode(Sha256::digest(blob.content()));
            let expected = if rel == "app.yml" {
                Some(&app.manifest_sha256)
            } else {
                app.files.iter().find(|f| f.path == rel).map(|f| &f.sha256)
            };
            if expected != Some(&sum) {
                return Err(Error::HashMismatch {
                    app: id.to_string(),
                    path: rel.to_string(),
                });
            }
            let target = dest.join(rel);
            if let Some(parent) = target.parent() {
                std::fs::create_dir_all(parent).map_err(io(parent))?;
            }
            std::fs::write(&target, blob.content()).map_err(io(&target))?;
            #[cfg(unix)]
            if entry.filemode() == 0o100755 {
                use std::os::unix::fs::PermissionsExt;
                std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o755))
                    .map_err(io(&target))?;
            }
            written += 1;
        }
        debug_assert!(written > 0);
        Ok(())
    }
}

/// What a refresh did.
#[derive(Debug, Clone)]
pub struct Refresh {
    /// The current snapshot.
    pub snapshot: Arc<CatalogSnapshot>,
    /// False when the branch still pointed at the loaded commit (nothing was reloaded).
    pub changed: bool,
}

/// A catalog that follows one branch of one repository.
#[derive(Debug)]
pub struct GitCatalog {
    cache: GitCache,
    source: GitSource,
    current: Option<Arc<CatalogSnapshot>>,
}

impl GitCatalog {
    /// A catalog for `source`, cached in `cache`. Nothing is fetched until [`GitCatalog::refresh`].
    pub fn new(cache: GitCache, source: GitSource) -> Self {
        GitCatalog {
            cache,
            source,
            current: None,
        }
    }

    /// The source followed.
    pub fn source(&self) -> &GitSource {
        &self.source
    }

    /// Follows another branch or repository from the next refresh on.
    pub fn set_source(&mut self, source: GitSource) {
        self.source = source;
    }

    /// The last loaded snapshot.
    pub fn current(&self) -> Option<&Arc<CatalogSnapshot>> {
        self.current.as_ref()
    }

    /// Fetches and, if the branch moved, loads the new commit, reusing every app whose directory did not
    /// change. An unchanged branch costs one fetch negotiation.
    pub fn refresh(&mut self) -> Result<Refresh, Error> {
        let (repo, oid) = self.cache.fetch(&self.source)?;
        if let Some(cur) = &self.current {
            let same_source = cur.source().url == self.source.url
                && cur.source().branch == self.source.branch
                && cur.source().path == self.source.path;
            if same_source && cur.source().commit.as_deref() == Some(oid.to_string().as_str()) {
                return Ok(Refresh {
                    snapshot: Arc::clone(cur),
                    changed: false,
                });
            }
        }
        self.load_pinned(&repo, oid)
    }

    /// Loads a specific commit of the cached repository (which must have been fetched).
    pub fn pin(&mut self, commit: &str) -> Result<Refresh, Error> {
        let repo = self.cache.open(&self.source.url)?;
        let oid = Oid::from_str(commit).map_err(|e| Error::Read {
            commit: commit.to_string(),
            source: e,
        })?;
        self.load_pinned(&repo, oid)
    }

    fn load_pinned(&mut self, repo: &Repository, oid: Oid) -> Result<Refresh, Error> {
        let snapshot = Arc::new(load_commit(
            repo,
            &self.source,
            oid,
            self.current.as_deref(),
        )?);
        self.current = Some(Arc::clone(&snapshot));
        Ok(Refresh {
            snapshot,
            changed: true,
        })
    }

    /// Writes the app's directory as of the snapshot's commit into `dest`; see [`GitCache::export_app`].
    pub fn export_app(
        &self,
        snapshot: &CatalogSnapshot,
        app: &CatalogApp,
        dest: &Path,
    ) -> Result<(), Error> {
        self.cache.export_app(snapshot, app, dest)
    }
}
