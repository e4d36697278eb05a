//! Loading a catalog: every app directory checked and validated on its own, so one broken app never
//! hides the others; and the snapshot that readers share.

use crate::files::{link_stays_inside, AppFiles, DirAppFiles, GitAppFiles, Kind};
use crate::index::{Query, SearchIndex};
use crate::{
    Error, MAX_ASSET_BYTES, MAX_ICON_BYTES, MAX_MANIFEST_BYTES, MAX_README_BYTES, MAX_SCRIPT_BYTES,
};
use appstore_core::{check_manifest, Diagnostics, Manifest};
use git2::{Oid, Repository};
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::Arc;

/// Where a snapshot came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SourceInfo {
    /// Repository URL or directory.
    pub url: String,
    /// Branch (empty for a plain directory).
    pub branch: String,
    /// The repository's directory that holds `apps/` (empty: its top).
    pub path: String,
    /// The pinned commit (none for a plain directory).
    pub commit: Option<String>,
    /// The commit's time, seconds since the epoch.
    pub commit_time: Option<i64>,
}

/// A file of an app, pinned by its hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AppFile {
    /// Path inside the app directory.
    pub path: String,
    /// sha256, hex.
    pub sha256: String,
    /// Size in bytes.
    pub size: u64,
}

/// An icon, ready to serve.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Icon {
    /// The file's bytes.
    pub bytes: Vec<u8>,
    /// MIME type from the extension.
    pub content_type: &'static str,
}

/// A valid app of the catalog.
#[derive(Debug, Clone)]
pub struct CatalogApp {
    /// The validated manifest.
    pub manifest: Manifest,
    /// sha256 of `app.yml`, hex: identifies exactly what was validated.
    pub manifest_sha256: String,
    /// Every script and asset file the manifest refers to, with its sha256.
    pub files: Vec<AppFile>,
    /// The icon, when the manifest names one.
    pub icon: Option<Icon>,
    /// The README (Markdown), when there is one.
    pub readme: Option<String>,
    /// When the app directory last changed: its last commit's time (seconds), or 0 for a plain
    /// directory.
    pub updated: i64,
    /// Git tree id of the app directory (lets a refresh reuse unchanged apps).
    pub tree_id: Option<String>,
}

/// An app directory that failed its checks.
#[derive(Debug, Clone, Serialize)]
pub struct BrokenApp {
    /// Directory name under `apps/`.
    pub dir: String,
    /// Every problem.
    pub diagnostics: Diagnostics,
    /// Git tree id of the directory.
    #[serde(skip)]
    pub tree_id: Option<String>,
}

/// One loaded catalog: valid apps by id, broken apps with their problems, and the search index.
#[derive(Debug, Clone)]
pub struct CatalogSnapshot {
    source: SourceInfo,
    apps: BTreeMap<String, Arc<CatalogApp>>,
    broken: Vec<Arc<BrokenApp>>,
    index: SearchIndex,
}

impl CatalogSnapshot {
    fn new(
        source: SourceInfo,
        apps: BTreeMap<String, Arc<CatalogApp>>,
        broken: Vec<Arc<BrokenApp>>,
    ) -> Self {
        let index = SearchIndex::build(apps.values().map(|a| (&a.manifest, a.updated)));
        CatalogSnapshot {
            source,
            apps,
            broken,
            index,
        }
    }

    /// Where it came from.
    pub fn source(&self) -> &SourceInfo {
        &self.source
    }

    /// Valid apps by id.
    pub fn apps(&self) -> &BTreeMap<String, Arc<CatalogApp>> {
        &self.apps
    }

    /// The valid app `id`.
    pub fn app(&self, id: &str) -> Option<&Arc<CatalogApp>> {
        self.apps.get(id)
    }

    /// Apps that failed their checks.
    pub fn broken(&self) -> &[Arc<BrokenApp>] {
        &self.broken
    }

    /// The search index.
    pub fn index(&self) -> &SearchIndex {
        &self.index
    }

    /// Apps matching `query`, best first.
    pub fn search(&self, query: &Query) -> Vec<&Arc<CatalogApp>> {
        self.search_ranked(query, &|_| 0)
    }

    /// Apps matching `query`, best first, with `popularity` giving install counts for
    /// [`crate::Sort::Popular`].
    pub fn search_ranked(
        &self,
        query: &Query,
        popularity: &dyn Fn(&str) -> u64,
    ) -> Vec<&Arc<CatalogApp>> {
        self.index
            .search_ranked(query, popularity)
            .into_iter()
            .filter_map(|id| self.apps.get(id))
            .collect()
    }
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

fn content_type(path: &str) -> &'static str {
    match path
        .rsplit('.')
        .next()
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("webp") => "image/webp",
        _ => "image/jpeg",
    }
}

/// Checks and loads one app directory.
fn load_app(dir: &str, files: &dyn AppFiles) -> Result<CatalogApp, Diagnostics> {
    let mut d = Diagnostics::new();
    let entries = files.entries();

    for (rel, kind) in entries {
        match kind {
            Kind::Symlink => {
                let target = files.link_target(rel).unwrap_or_default();
                if !link_stays_inside(rel, &target) {
                    d.push_hint(
                        format!("files.{rel}"),
                        format!("is a symlink to `{target}`, outside the app directory"),
                        Some("copy the file into the app directory instead".into()),
                    );
                }
            }
            Kind::Other => d.push(
                format!("files.{rel}"),
                "is not a regular file or directory (submodules and special files are not allowed)",
            ),
            Kind::File | Kind::Dir => {}
        }
    }

    let text = match entries.get("app.yml") {
        Some(Kind::File) => match files.read("app.yml", MAX_MANIFEST_BYTES) {
            Ok(bytes) => match String::from_utf8(bytes) {
                Ok(t) => t,
                Err(_) => {
                    d.push("app.yml", "is not UTF-8 text");
                    return Err(d);
                }
            },
            Err(e) => {
                d.push("app.yml", e);
                return Err(d);
            }
        },
        Some(_) => {
            d.push("app.yml", "must be a regular file");
            return Err(d);
        }
        None => {
            d.push_hint(
                "app.yml",
                "is missing",
                Some("every directory under apps/ needs an app.yml".into()),
            );
            return Err(d);
        }
    };
    let manifest_sha256 = sha256_hex(text.as_bytes());
    // Files are checked even when the manifest is invalid, so one lint run shows every problem.
    let check = check_manifest(&text, Some(dir));
    let referenced = match &check.result {
        Ok(m) => m.referenced_files().to_vec(),
        Err(_) => check.files.clone(),
    };

    let mut pinned = Vec::new();
    let read_file = |d: &mut Diagnostics, field: &str, rel: &str, limit: u64| -> Option<Vec<u8>> {
        match entries.get(rel) {
            Some(Kind::File) => match files.read(rel, limit) {
                Ok(bytes) => Some(bytes),
                Err(e) => {
                    d.push(field, format!("`{rel}` {e}"));
                    None
                }
            },
            Some(Kind::Symlink) => {
                d.push_hint(
                    field,
                    format!("`{rel}` is a symlink"),
                    Some("store the file itself".into()),
                );
                None
            }
            Some(_) => {
                d.push(field, format!("`{rel}` is not a regular file"));
                None
            }
            None => {
                let hint = appstore_core::diag::did_you_mean(
                    rel,
                    entries
                        .iter()
                        .filter(|(_, k)| **k == Kind::File)
                        .map(|(p, _)| p.as_str()),
                );
                d.push_hint(
                    field,
                    format!("`{rel}` does not exist in the app directory"),
                    hint,
                );
                None
            }
        }
    };

    let mut icon = None;
    let mut readme_path = referenced
        .iter()
        .find(|(f, _)| f == "readme")
        .map(|(_, r)| r.as_str().to_string());
    for (field, rel) in &referenced {
        let rel = rel.as_str();
        match field.as_str() {
            "icon" => {
                if let Some(bytes) = read_file(&mut d, field, rel, MAX_ICON_BYTES) {
                    icon = Some(Icon {
                        bytes,
                        content_type: content_type(rel),
                    });
                }
            }
            "readme" => {}
            f if f.starts_with("provision.assets") && entries.get(rel) == Some(&Kind::Dir) => {
                let prefix = format!("{rel}/");
                for (sub, kind) in entries.range(prefix.clone()..) {
                    if !sub.starts_with(&prefix) {
                        break;
                    }
                    if *kind == Kind::File {
                        if let Some(bytes) = read_file(&mut d, field, sub, MAX_ASSET_BYTES) {
                            pinned.push(AppFile {
                                path: sub.clone(),
                                sha256: sha256_hex(&bytes),
                                size: bytes.len() as u64,
                            });
                        }
                    }
                }
            }
            f => {
                let limit = if f.starts_with("provision.assets") {
                    MAX_ASSET_BYTES
                } else {
                    MAX_SCRIPT_BYTES
                };
                if let Some(bytes) = read_file(&mut d, field, rel, limit) {
                    pinned.push(AppFile {
                        path: rel.to_string(),
                        sha256: sha256_hex(&bytes),
                        size: bytes.len() as u64,
                    });
                }
            }
        }
    }
    if readme_path.is_none() && entries.get("README.md") == Some(&Kind::File) {
        readme_path = Some("README.md".into());
    }
    let readme = readme_path.and_then(|rel| {
        let bytes = read_file(&mut d, "readme", &rel, MAX_README_BYTES)?;
        String::from_utf8(bytes)
            .map_err(|_| d.push("readme", format!("`{rel}` is not UTF-8 text")))
            .ok()
    });
    pinned.sort_by(|a, b| a.path.cmp(&b.path));
    pinned.dedup();
    let manifest = match check.result {
        Ok(m) => m,
        Err(more) => {
            d.extend(more);
            d.sort();
            return Err(d);
        }
    };
    d.into_result(CatalogApp {
        manifest,
        manifest_sha256,
        files: pinned,
        icon,
        readme,
        updated: 0,
        tree_id: None,
    })
}

/// Loads a catalog from a plain directory (a checkout being linted): `dir/apps/<id>/...`.
pub fn load_dir(dir: &Path) -> Result<CatalogSnapshot, Error> {
    let apps_dir = dir.join("apps");
    if !apps_dir.is_dir() {
        return Err(Error::NoAppsDir {
            what: dir.display().to_string(),
        });
    }
    let io = |source| Error::Io {
        path: apps_dir.clone(),
        source,
    };
    let mut names: Vec<(String, std::path::PathBuf, bool)> = Vec::new();
    for entry in std::fs::read_dir(&apps_dir).map_err(io)? {
        let entry = entry.map_err(io)?;
        let is_dir = entry.file_type().map_err(io)?.is_dir();
        names.push((
            entry.file_name().to_string_lossy().into_owned(),
            entry.path(),
            is_dir,
        ));
    }
    names.sort();
    let mut apps = BTreeMap::new();
    let mut broken = Vec::new();
    for (name, path, is_dir) in names {
        if name.starts_with('.') {
            continue;
        }
        let result = if is_dir {
            match DirAppFiles::new(&path) {
                Ok(files) => load_app(&name, &files),
                Err(source) => return Err(Error::Io { path, source }),
            }
        } else {
            let mut d = Diagnostics::new();
            d.push("", "is not a directory; apps/ holds one directory per app");
            Err(d)
        };
        match result {
            Ok(app) => {
                apps.insert(name, Arc::new(app));
            }
            Err(diagnostics) => broken.push(Arc::new(BrokenApp {
                dir: name,
                diagnostics,
                tree_id: None,
            })),
        }
    }
    let source = SourceInfo {
        url: dir.display().to_string(),
        branch: String::new(),
        path: String::new(),
        commit: None,
        commit_time: None,
    };
    Ok(CatalogSnapshot::new(source, apps, broken))
}

/// Loads the catalog at `commit`, reusing apps whose directory tree is unchanged since `previous`.
pub(crate) fn load_commit(
    repo: &Repository,
    source: &crate::GitSource,
    commit_id: Oid,
    previous: Option<&CatalogSnapshot>,
) -> Result<CatalogSnapshot, Error> {
    let read_err = |source| Error::Read {
        commit: commit_id.to_string(),
        source,
    };
    let commit = repo.find_commit(commit_id).map_err(read_err)?;
    let tree = commit.tree().map_err(read_err)?;
    let apps_path = source.apps_dir();
    let apps_tree = match tree.get_path(&apps_path) {
        Ok(e) if e.kind() == Some(git2::ObjectType::Tree) => {
            repo.find_tree(e.id()).map_err(read_err)?
        }
        _ => {
            return Err(Error::NoAppsDir {
                what: format!("commit {commit_id} (looked for {})", apps_path.display()),
            })
        }
    };

    let mut reuse: HashMap<&str, Result<&Arc<CatalogApp>, &Arc<BrokenApp>>> = HashMap::new();
    if let Some(prev) = previous {
        for app in prev.apps.values() {
            if let Some(t) = &app.tree_id {
                reuse.insert(t.as_str(), Ok(app));
            }
        }
        for b in &prev.broken {
            if let Some(t) = &b.tree_id {
                reuse.insert(t.as_str(), Err(b));
            }
        }
    }

    let mut apps = BTreeMap::new();
    let mut broken = Vec::new();
    let mut changed: HashMap<String, Oid> = HashMap::new();
    for entry in apps_tree.iter() {
        let Ok(name) = entry.name().map(str::to_string) else {
            continue;
        };
        if name.starts_with('.') {
            continue;
        }
        let tree_id = entry.id().to_string();
        match reuse.get(tree_id.as_str()) {
            Some(Ok(app)) if app.manifest.id().as_str() == name => {
                apps.insert(name, Arc::clone(app));
                continue;
            }
            Some(Err(b)) if b.dir == name => {
                broken.push(Arc::clone(b));
                continue;
            }
            _ => {}
        }
        let result = if entry.kind() == Some(git2::ObjectType::Tree) {
            let sub = repo.find_tree(entry.id()).map_err(read_err)?;
            let files = GitAppFiles::new(repo, &sub).map_err(read_err)?;
            load_app(&name, &files)
        } else {
            let mut d = Diagnostics::new();
            d.push("", "is not a directory; apps/ holds one directory per app");
            Err(d)
        };
        match result {
            Ok(mut app) => {
                app.tree_id = Some(tree_id);
                changed.insert(name.clone(), entry.id());
                apps.insert(name, Arc::new(app));
            }
            Err(diagnostics) => broken.push(Arc::new(BrokenApp {
                dir: name,
                diagnostics,
                tree_id: Some(tree_id),
            })),
        }
    }

    for (name, time) in last_change_times(repo, &commit, &apps_path, changed) {
        if let Some(app) = apps.get_mut(&name).and_then(Arc::get_mut) {
            app.updated = time;
        }
    }
    let source = SourceInfo {
        url: source.url.clone(),
        branch: source.branch.clone(),
        path: source.path.clone(),
        commit: Some(commit_id.to_string()),
        commit_time: Some(commit.time().seconds()),
    };
    Ok(CatalogSnapshot::new(source, apps, broken))
}

/// Most commits walked back to find when each app last changed.
const HISTORY_LIMIT: usize = 10_000;

/// For each app (name -> its tree id at `head`), the time of the newest commit on the first-parent
/// chain that changed its directory.
fn last_change_times(
    repo: &Repository,
    head: &git2::Commit<'_>,
    apps_path: &Path,
    mut pending: HashMap<String, Oid>,
) -> HashMap<String, i64> {
    let mut out = HashMap::new();
    let app_ids = |c: &git2::Commit<'_>| -> Option<HashMap<String, Oid>> {
        let tree = c.tree().ok()?;
        let apps = repo.find_tree(tree.get_path(apps_path).ok()?.id()).ok()?;
        Some(
            apps.iter()
                .filter_map(|e| Some((e.name().ok()?.to_string(), e.id())))
                .collect(),
        )
    };
    let mut current = head.clone();
    for _ in 0..HISTORY_LIMIT {
        if pending.is_empty() {
            break;
        }
        let time = current.time().seconds();
        let Ok(parent) = current.parent(0) else {
            break;
        };
        let parent_ids = app_ids(&parent).unwrap_or_default();
        pending.retain(|name, id| {
            if parent_ids.get(name) != Some(id) {
                out.insert(name.clone(), time);
                false
            } else {
                true
            }
        });
        current = parent;
    }
    let oldest = current.time().seconds();
    for (name, _) in pending {
        out.insert(name, oldest);
    }
    out
}
