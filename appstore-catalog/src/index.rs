//! Search over the catalog: free text over name, description, tags and categories; category and tag
//! filters; sorts. Built once per snapshot; a query scans precomputed lowercase text, which stays well
//! under a millisecond for thousands of apps.

use appstore_core::Manifest;
use schemars::JsonSchema;
use serde::Deserialize;
use std::collections::BTreeMap;

/// Result order.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Sort {
    /// Featured apps first, then by relevance (with a query) or name.
    #[default]
    Featured,
    /// By name.
    Name,
    /// Most recently changed first.
    Updated,
    /// Most installed first (a count the caller supplies; this node's own installs in the
    /// service), then featured, then name.
    Popular,
}

/// A search.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct Query {
    /// Free text; every word must match somewhere.
    #[serde(default)]
    pub q: Option<String>,
    /// Only apps in this category.
    #[serde(default)]
    pub category: Option<String>,
    /// Only apps with this tag.
    #[serde(default)]
    pub tag: Option<String>,
    /// Order.
    #[serde(default)]
    pub sort: Sort,
}

#[derive(Debug, Clone)]
struct Doc {
    id: String,
    name: String,
    description: String,
    words: Vec<String>,
    categories: Vec<String>,
    tags: Vec<String>,
    featured: bool,
    updated: i64,
}

/// The index of one snapshot.
#[derive(Debug, Clone, Default)]
pub struct SearchIndex {
    docs: Vec<Doc>,
    categories: BTreeMap<String, usize>,
    tags: BTreeMap<String, usize>,
}

impl SearchIndex {
    /// Indexes the apps: each one's manifest and when it last changed (seconds since the epoch).
    pub fn build<'a>(apps: impl IntoIterator<Item = (&'a Manifest, i64)>) -> SearchIndex {
        let mut index = SearchIndex::default();
        for (m, updated) in apps {
            for c in m.categories() {
                *index.categories.entry(c.clone()).or_default() += 1;
            }
            for t in m.tags() {
                *index.tags.entry(t.clone()).or_default() += 1;
            }
            let mut words: Vec<String> = m.categories().iter().chain(m.tags()).cloned().collect();
            words.push(m.id().as_str().to_string());
            index.docs.push(Doc {
                id: m.id().as_str().to_string(),
                name: m.name().to_lowercase(),
                description: m.description().to_lowercase(),
                words,
                categories: m.categories().to_vec(),
                tags: m.tags().to_vec(),
                featured: m.featured(),
                updated,
            });
        }
        index
            .docs
            .sort_by(|a, b| a.name.cmp(&b.name).then(a.id.cmp(&b.id)));
        index
    }

    /// Categories with their app counts.
    pub fn categories(&self) -> &BTreeMap<String, usize> {
        &self.categories
    }

    /// Tags with their app counts.
    pub fn tags(&self) -> &BTreeMap<String, usize> {
        &self.tags
    }

    /// Ids of the apps matching `query`, in the query's order; `Popular` counts every app as 0.
    pub fn search(&self, query: &Query) -> Vec<&str> {
        self.search_ranked(query, &|_| 0)
    }

    /// Ids of the apps matching `query`, in the query's order, with `popularity` giving each app's
    /// install count for [`Sort::Popular`].
    pub fn search_ranked(&self, query: &Query, popularity: &dyn Fn(&str) -> u64) -> Vec<&str> {
        let text = query.q.as_deref().unwrap_or("").to_lowercase();
        let terms: Vec<&str> = text.split_whitespace().collect();
        let mut hits: Vec<(u32, &Doc)> = self
            .docs
            .iter()
            .filter(|d| {
                query
                    .category
                    .as_ref()
                    .is_none_or(|c| d.categories.contains(c))
            })
            .filter(|d| query.tag.as_ref().is_none_or(|t| d.tags.contains(t)))
            .filter_map(|d| score(d, &terms).map(|s| (s, d)))
            .collect();
        match query.sort {
            Sort::Featured => hits.sort_by(|(sa, a), (sb, b)| {
                b.featured
                    .cmp(&a.featured)
                    .then(sb.cmp(sa))
                    .then(a.name.cmp(&b.name))
            }),
            Sort::Name => {} // docs are kept in name order
            Sort::Updated => {
                hits.sort_by(|(_, a), (_, b)| b.updated.cmp(&a.updated).then(a.name.cmp(&b.name)))
            }
            Sort::Popular => hits.sort_by_cached_key(|(s, d)| {
                (
                    std::cmp::Reverse(popularity(&d.id)),
                    !d.featured,
                    std::cmp::Reverse(*s),
                    d.name.clone(),
                )
            }),
        }
        hits.into_iter().map(|(_, d)| d.id.as_str()).collect()
    }
}

/// Relevance of `doc` for all `terms`, or `None` when a term matches nowhere.
fn score(doc: &Doc, terms: &[&str]) -> Option<u32> {
    let mut total = 0;
    for term in terms {
        let s = if doc.name == *term {
            100
        } else if doc.name.starts_with(term) {
            60
        } else if doc.name.split_whitespace().any(|w| w.starts_with(term)) {
            50
        } else if doc.words.iter().any(|w| w == term) {
            40
        } else if doc.name.contains(term) {
            30
        } else if doc.words.iter().any(|w| w.contains(term)) {
            20
        } else if doc.description.contains(term) {
            10
        } else {
            return None;
        };
        total += s;
    }
    Some(total)
}
