//! `pve-appstore catalog lint`: validates a catalog directory or Git repository and reports every
//! problem of every app, as text for people or JSON for CI.

use anyhow::Context as _;
use appstore_catalog::{load_dir, CatalogSnapshot, GitCache, GitCatalog, GitSource};
use serde_json::json;
use std::path::Path;
use std::sync::Arc;

/// Output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Lines for people.
    Text,
    /// One JSON document.
    Json,
}

/// Loads `source`: an existing directory is read as it is on disk (uncommitted edits included);
/// anything else is fetched as a Git URL.
pub fn load(source: &str, branch: &str, subdir: &str) -> anyhow::Result<Arc<CatalogSnapshot>> {
    let path = Path::new(source);
    if path.is_dir() {
        return Ok(Arc::new(load_dir(&path.join(subdir))?));
    }
    let cache = tempfile::tempdir().context("cannot create a temporary directory")?;
    let mut catalog = GitCatalog::new(
        GitCache::new(cache.path()),
        GitSource {
            url: source.to_string(),
            branch: branch.to_string(),
            path: subdir.to_string(),
        },
    );
    Ok(catalog.refresh()?.snapshot)
}

/// Renders the report; returns it and whether the catalog is clean.
pub fn report(snapshot: &CatalogSnapshot, format: Format) -> (String, bool) {
    let clean = snapshot.broken().is_empty();
    let src = snapshot.source();
    let text = match format {
        Format::Json => {
            let apps: Vec<_> = snapshot
                .apps()
                .values()
                .map(|a| json!({"id": a.manifest.id(), "version": a.manifest.version().to_string(), "manifest_sha256": a.manifest_sha256}))
                .collect();
            let doc = json!({"source": src, "ok": clean, "apps": apps, "broken": snapshot.broken().iter().map(|b| json!(**b)).collect::<Vec<_>>()});
            serde_json::to_string_pretty(&doc).unwrap_or_default() + "\n"
        }
        Format::Text => {
            let mut out = String::new();
            let at = src
                .commit
                .as_deref()
                .map(|c| format!(" at {}", &c[..c.len().min(12)]))
                .unwrap_or_default();
            out.push_str(&format!("catalog {}{at}\n", src.url));
            for app in snapshot.apps().values() {
                out.push_str(&format!(
                    "  ok      {} {}\n",
                    app.manifest.id(),
                    app.manifest.version()
                ));
            }
            for b in snapshot.broken() {
                out.push_str(&format!("  FAILED  {}\n", b.dir));
                for d in &b.diagnostics {
                    out.push_str(&format!("          {d}\n"));
                }
            }
            out.push_str(&format!(
                "{} valid, {} broken\n",
                snapshot.apps().len(),
                snapshot.broken().len()
            ));
            out
        }
    };
    (text, clean)
}
