//! Catalog benchmark: a synthetic catalog of 1,000 apps in a real Git repository, measured for a cold
//! clone + load + validate + index, a refresh with no new commit, a refresh after one app changed, and
//! search queries. Prints the figures; `cargo bench -p appstore-catalog` (APPS=N to change the size).
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests and benchmarks stop at the first failure

use appstore_catalog::{GitCache, GitCatalog, GitSource, Query, Sort};
use git2::{Repository, Signature, Time};
use std::path::Path;
use std::time::{Duration, Instant};

const CATEGORIES: &[&str] = &[
    "media",
    "productivity",
    "network",
    "home-automation",
    "development",
    "security",
];

fn manifest(i: usize) -> String {
    let id = format!("app-{i:04}");
    let cat = CATEGORIES[i % CATEGORIES.len()];
    format!(
        r#"id: {id}
name: Synthetic App {i}
description: Synthetic service number {i} for {cat} workloads
version: 1.{minor}.0
categories: [{cat}]
tags: [synthetic, tag-{t}]
homepage: https://example.org/{id}
license: MIT
icon: icon.svg
featured: {featured}
lxc:
  ostemplate: debian-12
  defaults: {{ cores: 2, memory_mb: 1024, disk_gb: 8, features: [nesting] }}
inputs:
  - {{ key: admin_user, label: Admin user, type: string, default: admin, required: true, validation: {{ regex: "[a-z][a-z0-9_]{{2,31}}" }} }}
  - {{ key: admin_password, label: Admin password, type: secret, generate: true }}
  - {{ key: port, label: Port, type: number, default: 8080, validation: {{ min: 1024, max: 65535 }} }}
  - {{ key: mode, label: Mode, type: select, default: fast, validation: {{ enum: [fast, safe] }} }}
provision:
  script: provision/install.sh
  env: {{ ADMIN_USER: "{{inputs.admin_user}}", ADMIN_PASSWORD: "{{inputs.admin_password}}", PORT: "{{inputs.port}}" }}
  healthcheck: {{ script: provision/health.sh }}
outputs:
  - {{ key: url, label: URL, value: "http://{{ip}}:{{inputs.port}}" }}
  - {{ key: password, label: Password, value: "{{inputs.admin_password}}" }}
volumes:
  - {{ name: data, mount_path: /srv/data, size_gb: 4 }}
"#,
        minor = i % 10,
        t = i % 50,
        featured = i.is_multiple_of(100),
    )
}

fn write(root: &Path, rel: &str, text: &str) {
    let p = root.join(rel);
    std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
    std::fs::write(p, text).expect("write");
}

fn commit(repo: &Repository, msg: &str, t: i64) {
    let mut index = repo.index().expect("index");
    index
        .add_all(["*"], git2::IndexAddOption::DEFAULT, None)
        .expect("add");
    index.write().expect("write index");
    let tree = repo
        .find_tree(index.write_tree().expect("tree"))
        .expect("tree");
    let sig = Signature::new("Bench", "bench@example.org", &Time::new(t, 0)).expect("sig");
    let parent = repo.head().ok().and_then(|h| h.peel_to_commit().ok());
    let parents: Vec<&git2::Commit> = parent.iter().collect();
    repo.commit(Some("HEAD"), &sig, &sig, msg, &tree, &parents)
        .expect("commit");
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

fn main() {
    let n: usize = std::env::var("APPS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1000);
    let remote_dir = tempfile::tempdir().expect("tempdir");
    let root = remote_dir.path();
    let repo = Repository::init(root).expect("init");
    repo.set_head("refs/heads/main").expect("head");
    for i in 0..n {
        let id = format!("app-{i:04}");
        write(root, &format!("apps/{id}/app.yml"), &manifest(i));
        write(root, &format!("apps/{id}/provision/install.sh"), &format!("#!/usr/bin/env bash\nset -euo pipefail\necho installing {id}\napt-get install -y curl\n"));
        write(
            root,
            &format!("apps/{id}/provision/health.sh"),
            "#!/usr/bin/env bash\ncurl -fsS http://127.0.0.1:$PORT/\n",
        );
        write(
            root,
            &format!("apps/{id}/icon.svg"),
            &format!(
                "<svg xmlns='http://www.w3.org/2000/svg' viewBox='0 0 8 8'><text>{i}</text></svg>"
            ),
        );
        write(
            root,
            &format!("apps/{id}/README.md"),
            &format!("# Synthetic App {i}\n\nA generated app for benchmarks.\n"),
        );
    }
    commit(&repo, "catalog", 1_700_000_000);
    let source = GitSource {
        url: format!("file://{}", root.display()),
        branch: "main".into(),
        path: String::new(),
    };
    println!(
        "catalog benchmark: {n} apps, {} cores",
        std::thread::available_parallelism()
            .map(|p| p.get())
            .unwrap_or(1)
    );

    let mut cold = Vec::new();
    for _ in 0..5 {
        let cache = tempfile::tempdir().expect("cache");
        let start = Instant::now();
        let mut cat = GitCatalog::new(GitCache::new(cache.path()), source.clone());
        let snap = cat.refresh().expect("refresh").snapshot;
        cold.push(start.elapsed());
        assert_eq!(
            snap.apps().len(),
            n,
            "broken: {:?}",
            snap.broken().first().map(|b| b.diagnostics.to_string())
        );
    }
    println!(
        "cold clone+load+validate+index: median {} (min {}, target < 1000 ms)",
        ms(median(cold.clone())),
        ms(*cold.iter().min().expect("runs"))
    );

    let mut fetch_only = Vec::new();
    for _ in 0..3 {
        let cache = tempfile::tempdir().expect("cache");
        let start = Instant::now();
        GitCache::new(cache.path()).fetch(&source).expect("fetch");
        fetch_only.push(start.elapsed());
    }
    println!(
        "  of which clone (fetch) alone:  median {}",
        ms(median(fetch_only))
    );
    let texts: Vec<String> = (0..n).map(manifest).collect();
    let start = Instant::now();
    for (i, t) in texts.iter().enumerate() {
        appstore_core::parse_manifest(t, Some(&format!("app-{i:04}"))).expect("valid");
    }
    println!("  of which manifest validation:  {}", ms(start.elapsed()));

    let cache = tempfile::tempdir().expect("cache");
    let mut cat = GitCatalog::new(GitCache::new(cache.path()), source.clone());
    cat.refresh().expect("refresh");
    let mut warm = Vec::new();
    for _ in 0..20 {
        let start = Instant::now();
        let r = cat.refresh().expect("refresh");
        warm.push(start.elapsed());
        assert!(!r.changed);
    }
    println!(
        "refresh, no new commit:          median {} (target < 50 ms)",
        ms(median(warm))
    );

    let mut one = Vec::new();
    for round in 0..5 {
        write(
            root,
            "apps/app-0001/provision/install.sh",
            &format!("#!/usr/bin/env bash\necho round {round}\n"),
        );
        commit(&repo, "change one app", 1_700_000_100 + round);
        let start = Instant::now();
        let r = cat.refresh().expect("refresh");
        one.push(start.elapsed());
        assert!(r.changed);
    }
    println!(
        "refresh, one app changed:        median {}",
        ms(median(one))
    );

    let snap = cat.refresh().expect("refresh").snapshot;
    let queries = [
        Query {
            q: Some("synthetic".into()),
            ..Query::default()
        },
        Query {
            q: Some("app 42".into()),
            ..Query::default()
        },
        Query {
            q: Some("media workloads".into()),
            sort: Sort::Name,
            ..Query::default()
        },
        Query {
            q: Some("nothing-matches-this".into()),
            ..Query::default()
        },
        Query {
            category: Some("network".into()),
            sort: Sort::Updated,
            ..Query::default()
        },
        Query {
            tag: Some("tag-7".into()),
            q: Some("service".into()),
            ..Query::default()
        },
    ];
    let rounds = 200;
    let start = Instant::now();
    let mut hits = 0;
    for _ in 0..rounds {
        for q in &queries {
            hits += snap.search(q).len();
        }
    }
    let per = start.elapsed() / (rounds * queries.len() as u32);
    println!("search query:                    mean {:.1} µs over {} queries ({hits} hits) (target < 1 ms)", per.as_secs_f64() * 1e6, rounds * queries.len() as u32);
}
