//! The catalog against real Git repositories made with git2: loading, broken apps, refresh (no change,
//! new commit, force-push, branch switch), path safety, export, search; and the reference catalog.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests and benchmarks stop at the first failure

use appstore_catalog::{load_dir, GitCache, GitCatalog, GitSource, Query, Sort};
use git2::{Repository, Signature, Time};
use std::path::{Path, PathBuf};
use std::sync::Arc;

struct Remote {
    dir: tempfile::TempDir,
    repo: Repository,
}

impl Remote {
    fn new() -> Remote {
        let dir = tempfile::tempdir().unwrap();
        let repo = Repository::init(dir.path()).unwrap();
        repo.set_head("refs/heads/main").unwrap();
        Remote { dir, repo }
    }

    fn url(&self) -> String {
        format!("file://{}", self.dir.path().display())
    }

    fn write(&self, rel: &str, text: &str) {
        let path = self.dir.path().join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }

    /// Commits the whole work tree on the current branch at time `t`.
    fn commit(&self, msg: &str, t: i64) -> git2::Oid {
        let mut index = self.repo.index().unwrap();
        index
            .add_all(["*"], git2::IndexAddOption::DEFAULT, None)
            .unwrap();
        index.update_all(["*"], None).unwrap();
        index.write().unwrap();
        let tree = self.repo.find_tree(index.write_tree().unwrap()).unwrap();
        let sig = Signature::new("Test", "test@example.org", &Time::new(t, 0)).unwrap();
        let parent = self.repo.head().ok().and_then(|h| h.peel_to_commit().ok());
        let parents: Vec<&git2::Commit> = parent.iter().collect();
        self.repo
            .commit(Some("HEAD"), &sig, &sig, msg, &tree, &parents)
            .unwrap()
    }

    fn add_app(&self, id: &str, extra: &str) {
        self.write(
            &format!("apps/{id}/app.yml"),
            &format!(
                "id: {id}\nname: {id} app\ndescription: The {id} service\nversion: 1.0.0\ncategories: [tools]\ntags: [{id}-tag]\nicon: icon.svg\nlxc: {{ ostemplate: debian-12 }}\nprovision: {{ script: install.sh }}\n{extra}"
            ),
        );
        self.write(
            &format!("apps/{id}/install.sh"),
            "#!/bin/bash\necho installing\n",
        );
        self.write(
            &format!("apps/{id}/icon.svg"),
            "<svg xmlns='http://www.w3.org/2000/svg'/>",
        );
        self.write(&format!("apps/{id}/README.md"), &format!("# {id}\n"));
    }
}

fn catalog(remote: &Remote, cache: &Path, branch: &str) -> GitCatalog {
    GitCatalog::new(
        GitCache::new(cache),
        GitSource {
            url: remote.url(),
            branch: branch.into(),
            path: String::new(),
        },
    )
}

fn ids(snapshot: &appstore_catalog::CatalogSnapshot) -> Vec<String> {
    snapshot.apps().keys().cloned().collect()
}

#[test]
fn loads_valid_apps_and_lists_broken_ones_with_their_problems() {
    let remote = Remote::new();
    remote.add_app("alpha", "");
    remote.add_app("beta", "");
    remote.write("apps/beta/app.yml", "id: beta\nname: Beta\nversion: one\n");
    remote.add_app("gamma", "");
    std::fs::remove_file(remote.dir.path().join("apps/gamma/install.sh")).unwrap();
    remote.write("apps/gamma/instal.sh", "echo\n");
    remote.commit("init", 1_000);
    let cache = tempfile::tempdir().unwrap();
    let mut cat = catalog(&remote, cache.path(), "main");
    let snap = cat.refresh().unwrap().snapshot;
    assert_eq!(ids(&snap), ["alpha"]);
    let broken: Vec<String> = snap
        .broken()
        .iter()
        .map(|b| format!("{}: {}", b.dir, b.diagnostics))
        .collect();
    assert_eq!(broken.len(), 2);
    assert!(
        broken[0].contains("version: `one` is not a semantic version"),
        "{}",
        broken[0]
    );
    assert!(
        broken[0].contains("lxc: required key is missing"),
        "{}",
        broken[0]
    );
    assert!(
        broken[1].starts_with("gamma: provision.script: `install.sh` does not exist"),
        "{}",
        broken[1]
    );
    assert!(
        broken[1].contains("did you mean `instal.sh`?"),
        "{}",
        broken[1]
    );
    let alpha = snap.app("alpha").unwrap();
    assert_eq!(alpha.files.len(), 1);
    assert_eq!(alpha.files[0].path, "install.sh");
    assert_eq!(alpha.files[0].sha256.len(), 64);
    assert_eq!(alpha.icon.as_ref().unwrap().content_type, "image/svg+xml");
    assert_eq!(alpha.readme.as_deref(), Some("# alpha\n"));
}

#[test]
fn refresh_without_a_new_commit_keeps_the_snapshot() {
    let remote = Remote::new();
    remote.add_app("alpha", "");
    remote.commit("init", 1_000);
    let cache = tempfile::tempdir().unwrap();
    let mut cat = catalog(&remote, cache.path(), "main");
    let first = cat.refresh().unwrap();
    assert!(first.changed);
    let second = cat.refresh().unwrap();
    assert!(!second.changed);
    assert!(Arc::ptr_eq(&first.snapshot, &second.snapshot));
}

#[test]
fn new_commit_reloads_only_the_apps_that_changed() {
    let remote = Remote::new();
    remote.add_app("alpha", "");
    remote.add_app("beta", "");
    remote.commit("init", 1_000);
    let cache = tempfile::tempdir().unwrap();
    let mut cat = catalog(&remote, cache.path(), "main");
    let before = cat.refresh().unwrap().snapshot;
    remote.write("apps/beta/install.sh", "#!/bin/bash\necho v2\n");
    remote.add_app("delta", "");
    remote.commit("beta v2, delta", 2_000);
    let after = cat.refresh().unwrap();
    assert!(after.changed);
    let after = after.snapshot;
    assert_eq!(ids(&after), ["alpha", "beta", "delta"]);
    assert!(
        Arc::ptr_eq(before.app("alpha").unwrap(), after.app("alpha").unwrap()),
        "unchanged app reused"
    );
    assert!(!Arc::ptr_eq(
        before.app("beta").unwrap(),
        after.app("beta").unwrap()
    ));
    assert_ne!(
        before.app("beta").unwrap().files[0].sha256,
        after.app("beta").unwrap().files[0].sha256
    );
    assert_eq!(after.app("alpha").unwrap().updated, 1_000);
    assert_eq!(after.app("beta").unwrap().updated, 2_000);
    assert_eq!(after.app("delta").unwrap().updated, 2_000);
}

#[test]
fn cold_load_finds_when_each_app_last_changed() {
    let remote = Remote::new();
    remote.add_app("alpha", "");
    remote.commit("alpha", 1_000);
    remote.add_app("beta", "");
    remote.commit("beta", 2_000);
    remote.write("README.md", "catalog\n");
    remote.commit("docs only", 3_000);
    let cache = tempfile::tempdir().unwrap();
    let snap = catalog(&remote, cache.path(), "main")
        .refresh()
        .unwrap()
        .snapshot;
    assert_eq!(snap.app("alpha").unwrap().updated, 1_000);
    assert_eq!(snap.app("beta").unwrap().updated, 2_000);
    let order = snap.search(&Query {
        sort: Sort::Updated,
        ..Query::default()
    });
    let order: Vec<&str> = order.iter().map(|a| a.manifest.id().as_str()).collect();
    assert_eq!(order, ["beta", "alpha"]);
}

#[test]
fn popular_sorts_by_the_install_counts_given() {
    let remote = Remote::new();
    remote.add_app("alpha", "");
    remote.add_app("beta", "");
    remote.add_app("gamma", "");
    remote.commit("init", 1_000);
    let cache = tempfile::tempdir().unwrap();
    let snap = catalog(&remote, cache.path(), "main")
        .refresh()
        .unwrap()
        .snapshot;
    let query = Query {
        sort: Sort::Popular,
        ..Query::default()
    };
    let counts = |id: &str| match id {
        "gamma" => 7,
        "beta" => 2,
        _ => 0,
    };
    let order = snap.search_ranked(&query, &counts);
    let order: Vec<&str> = order.iter().map(|a| a.manifest.id().as_str()).collect();
    assert_eq!(order, ["gamma", "beta", "alpha"]);
    // Without counts every app ties and the order falls back to name.
    let order = snap.search(&query);
    let order: Vec<&str> = order.iter().map(|a| a.manifest.id().as_str()).collect();
    assert_eq!(order, ["alpha", "beta", "gamma"]);
}

#[test]
fn force_push_replaces_the_old_history() {
    let remote = Remote::new();
    remote.add_app("alpha", "");
    let first = remote.commit("init", 1_000);
    remote.add_app("beta", "");
    remote.commit("beta", 2_000);
    let cache = tempfile::tempdir().unwrap();
    let mut cat = catalog(&remote, cache.path(), "main");
    assert_eq!(ids(&cat.refresh().unwrap().snapshot), ["alpha", "beta"]);
    // Rewrite main: back to the first commit, then a different second commit.
    let c = remote.repo.find_commit(first).unwrap();
    remote
        .repo
        .reset(c.as_object(), git2::ResetType::Hard, None)
        .unwrap();
    assert!(!remote.dir.path().join("apps/beta").exists());
    remote.add_app("gamma", "");
    remote.commit("gamma instead", 3_000);
    let snap = cat.refresh().unwrap().snapshot;
    assert_eq!(ids(&snap), ["alpha", "gamma"]);
}

#[test]
fn switching_branch_loads_that_branch() {
    let remote = Remote::new();
    remote.add_app("alpha", "");
    let base = remote.commit("init", 1_000);
    let c = remote.repo.find_commit(base).unwrap();
    remote.repo.branch("testing", &c, false).unwrap();
    remote.repo.set_head("refs/heads/testing").unwrap();
    remote.add_app("beta", "");
    remote.commit("beta on testing", 2_000);
    let cache = tempfile::tempdir().unwrap();
    let mut cat = catalog(&remote, cache.path(), "main");
    assert_eq!(ids(&cat.refresh().unwrap().snapshot), ["alpha"]);
    cat.set_source(GitSource {
        url: remote.url(),
        branch: "testing".into(),
        path: String::new(),
    });
    let r = cat.refresh().unwrap();
    assert!(r.changed);
    assert_eq!(ids(&r.snapshot), ["alpha", "beta"]);
    assert_eq!(r.snapshot.source().branch, "testing");
}

#[test]
fn a_missing_branch_is_a_clear_error() {
    let remote = Remote::new();
    remote.add_app("alpha", "");
    remote.commit("init", 1_000);
    let cache = tempfile::tempdir().unwrap();
    let err = catalog(&remote, cache.path(), "nope")
        .refresh()
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "branch `nope` does not exist in {}; check `catalog.branch`",
            remote.url()
        )
    );
}

#[test]
fn a_repository_without_apps_dir_is_refused() {
    let remote = Remote::new();
    remote.write("README.md", "hello\n");
    remote.commit("init", 1_000);
    let cache = tempfile::tempdir().unwrap();
    let err = catalog(&remote, cache.path(), "main")
        .refresh()
        .unwrap_err();
    assert!(
        err.to_string().contains("has no `apps/` directory"),
        "{err}"
    );
}

#[test]
fn symlinks_leaving_the_app_and_oversized_files_are_refused() {
    let remote = Remote::new();
    remote.add_app("alpha", "");
    std::os::unix::fs::symlink(
        "../../../etc/passwd",
        remote.dir.path().join("apps/alpha/passwd"),
    )
    .unwrap();
    remote.add_app("beta", "");
    std::fs::remove_file(remote.dir.path().join("apps/beta/install.sh")).unwrap();
    std::os::unix::fs::symlink("run.sh", remote.dir.path().join("apps/beta/install.sh")).unwrap();
    remote.write("apps/beta/run.sh", "echo\n");
    remote.add_app("gamma", "");
    remote.write("apps/gamma/install.sh", &"#".repeat(2 * 1024 * 1024));
    remote.commit("init", 1_000);
    let cache = tempfile::tempdir().unwrap();
    let snap = catalog(&remote, cache.path(), "main")
        .refresh()
        .unwrap()
        .snapshot;
    assert!(snap.apps().is_empty());
    let text: Vec<String> = snap
        .broken()
        .iter()
        .map(|b| format!("{}: {}", b.dir, b.diagnostics))
        .collect();
    assert_eq!(text[0], "alpha: files.passwd: is a symlink to `../../../etc/passwd`, outside the app directory (copy the file into the app directory instead)");
    assert_eq!(
        text[1],
        "beta: provision.script: `install.sh` is a symlink (store the file itself)"
    );
    assert_eq!(
        text[2],
        "gamma: provision.script: `install.sh` is 2097152 bytes, more than the limit of 1048576"
    );
}

#[test]
fn export_writes_exactly_the_pinned_files() {
    let remote = Remote::new();
    remote.add_app("alpha", "");
    remote.write("apps/alpha/assets/conf/a.ini", "a=1\n");
    remote.write("apps/alpha/app.yml", "id: alpha\nname: Alpha\ndescription: A\nversion: 1.0.0\nlxc: { ostemplate: debian-12 }\nprovision: { script: install.sh, assets: [assets/conf] }\n");
    remote.commit("init", 1_000);
    let cache = tempfile::tempdir().unwrap();
    let mut cat = catalog(&remote, cache.path(), "main");
    let snap = cat.refresh().unwrap().snapshot;
    let app = snap.app("alpha").unwrap();
    let files: Vec<&str> = app.files.iter().map(|f| f.path.as_str()).collect();
    assert_eq!(files, ["assets/conf/a.ini", "install.sh"]);
    // A later commit must not leak into an export of the pinned snapshot.
    remote.write("apps/alpha/install.sh", "echo changed\n");
    remote.commit("change", 2_000);
    cat.refresh().unwrap();
    let out = tempfile::tempdir().unwrap();
    cat.export_app(&snap, app, out.path()).unwrap();
    assert_eq!(
        std::fs::read_to_string(out.path().join("install.sh")).unwrap(),
        "#!/bin/bash\necho installing\n"
    );
    assert_eq!(
        std::fs::read_to_string(out.path().join("assets/conf/a.ini")).unwrap(),
        "a=1\n"
    );
    assert!(out.path().join("app.yml").exists());
}

#[test]
fn search_matches_text_filters_and_sorts() {
    let remote = Remote::new();
    remote.add_app("jelly", "featured: true\n");
    remote.add_app("couch", "");
    remote.write("apps/couch/app.yml", "id: couch\nname: CouchDB Sync\ndescription: Database for note sync\nversion: 1.0.0\ncategories: [productivity]\ntags: [sync, database]\nlxc: { ostemplate: debian-12 }\nprovision: { script: install.sh }\n");
    remote.add_app("radish", "");
    remote.commit("init", 1_000);
    let cache = tempfile::tempdir().unwrap();
    let snap = catalog(&remote, cache.path(), "main")
        .refresh()
        .unwrap()
        .snapshot;
    let find = |q: Query| -> Vec<String> {
        snap.search(&q)
            .iter()
            .map(|a| a.manifest.id().to_string())
            .collect()
    };
    assert_eq!(
        find(Query::default()),
        ["jelly", "couch", "radish"],
        "featured first, then by name"
    );
    assert_eq!(
        find(Query {
            sort: Sort::Name,
            ..Query::default()
        }),
        ["couch", "jelly", "radish"]
    );
    assert_eq!(
        find(Query {
            q: Some("SYNC".into()),
            ..Query::default()
        }),
        ["couch"]
    );
    assert_eq!(
        find(Query {
            q: Some("note data".into()),
            ..Query::default()
        }),
        ["couch"]
    );
    assert_eq!(
        find(Query {
            q: Some("sync nothing".into()),
            ..Query::default()
        }),
        Vec::<String>::new()
    );
    assert_eq!(
        find(Query {
            category: Some("tools".into()),
            ..Query::default()
        }),
        ["jelly", "radish"]
    );
    assert_eq!(
        find(Query {
            tag: Some("radish-tag".into()),
            ..Query::default()
        }),
        ["radish"]
    );
    assert_eq!(snap.index().categories().get("tools"), Some(&2));
}

fn reference_catalog() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../catalog")
}

#[test]
fn reference_catalog_lints_clean() {
    let snap = load_dir(&reference_catalog()).unwrap();
    let problems: Vec<String> = snap
        .broken()
        .iter()
        .map(|b| format!("{}:\n{}", b.dir, b.diagnostics))
        .collect();
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    for id in ["obsidian-livesync", "jellyfin", "radicale"] {
        let app = snap.app(id).unwrap_or_else(|| panic!("{id} missing"));
        assert!(
            app.icon.is_some() && app.readme.is_some(),
            "{id} has an icon and a README"
        );
        assert!(
            app.manifest.provision().healthcheck.is_some(),
            "{id} has a healthcheck"
        );
        assert!(!app.manifest.outputs().is_empty(), "{id} has outputs");
    }
    assert!(!snap
        .app("jellyfin")
        .unwrap()
        .manifest
        .gpu()
        .supported
        .is_empty());
}

/// A remote that accepts the connection and then says nothing fails the fetch at libgit2's read
/// timeout instead of hanging the refresh.
#[test]
fn a_silent_remote_fails_the_fetch_instead_of_hanging() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let held = std::thread::spawn(move || {
        // Accept and hold the connections without a byte of answer.
        let mut open = Vec::new();
        listener.set_nonblocking(true).unwrap();
        let until = std::time::Instant::now() + std::time::Duration::from_secs(90);
        while std::time::Instant::now() < until {
            if let Ok((s, _)) = listener.accept() {
                open.push(s);
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
            if open.len() >= 4 {
                break;
            }
        }
        std::thread::sleep(std::time::Duration::from_secs(60));
    });
    let dir = tempfile::tempdir().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let cache_dir = dir.path().to_path_buf();
    std::thread::spawn(move || {
        let cache = GitCache::new(&cache_dir);
        let source = GitSource {
            url: format!("http://127.0.0.1:{port}/apps.git"),
            branch: "main".into(),
            path: String::new(),
        };
        let _ = tx.send(cache.fetch(&source).map(|_| ()));
    });
    let result = rx
        .recv_timeout(std::time::Duration::from_secs(90))
        .expect("the fetch hung past libgit2's read timeout");
    let err = result.expect_err("nothing was served");
    let mut text = err.to_string();
    let mut source = std::error::Error::source(&err);
    while let Some(s) = source {
        text.push_str(&format!(": {s}"));
        source = s.source();
    }
    assert!(text.to_lowercase().contains("timed out"), "{text}");
    drop(held);
}

/// A catalog may live in a directory of its repository (like the reference catalog in `catalog/`):
/// `path` says where `apps/` is, and apps load, date and export from there.
#[test]
fn a_catalog_in_a_subdirectory_of_its_repository_loads_and_exports() {
    let remote = Remote::new();
    remote.add_app("alpha", "");
    // The same app one level down, as a repository holding code and its catalog would.
    for rel in ["app.yml", "install.sh", "icon.svg", "README.md"] {
        let text = std::fs::read_to_string(remote.dir.path().join("apps/alpha").join(rel)).unwrap();
        remote.write(&format!("catalog/apps/alpha/{rel}"), &text);
    }
    std::fs::remove_dir_all(remote.dir.path().join("apps")).unwrap();
    remote.write("README.md", "# A project with its catalog below\n");
    remote.commit("init", 2_000);
    let cache = tempfile::tempdir().unwrap();
    let at_top = catalog(&remote, cache.path(), "main").refresh();
    assert!(
        at_top.unwrap_err().to_string().contains("apps"),
        "no apps/ at the top"
    );
    let mut cat = GitCatalog::new(
        GitCache::new(cache.path()),
        GitSource {
            url: remote.url(),
            branch: "main".into(),
            path: "catalog".into(),
        },
    );
    let snap = cat.refresh().unwrap().snapshot;
    assert_eq!(ids(&snap), ["alpha"]);
    assert_eq!(snap.source().path, "catalog");
    assert_eq!(snap.app("alpha").unwrap().updated, 2_000);
    let out = tempfile::tempdir().unwrap();
    cat.export_app(&snap, snap.app("alpha").unwrap(), out.path())
        .unwrap();
    assert!(out.path().join("install.sh").is_file());
}
