//! CatalogActor: refreshes the Git catalog on a schedule and on request, and publishes each snapshot
//! through a [`CatalogHandle`] that readers clone (an `Arc` snapshot, not a message per query).

use actix::prelude::*;
use appstore_catalog::{CatalogSnapshot, GitCatalog};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// What readers see of the catalog.
#[derive(Debug, Clone, Default)]
pub struct CatalogStatus {
    /// The current snapshot (none before the first successful load).
    pub snapshot: Option<Arc<CatalogSnapshot>>,
    /// When the last refresh finished, seconds since the epoch.
    pub last_refresh: Option<u64>,
    /// The last refresh's error, with its causes.
    pub last_error: Option<String>,
    /// A refresh is running.
    pub refreshing: bool,
}

/// A cheap, clonable read handle on the catalog.
#[derive(Debug, Clone, Default)]
pub struct CatalogHandle {
    state: Arc<RwLock<CatalogStatus>>,
}

impl CatalogHandle {
    /// The current snapshot.
    pub fn snapshot(&self) -> Option<Arc<CatalogSnapshot>> {
        self.read().snapshot
    }

    /// The whole status.
    pub fn status(&self) -> CatalogStatus {
        self.read()
    }

    fn read(&self) -> CatalogStatus {
        match self.state.read() {
            Ok(s) => s.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Serves `snapshot` as the current catalog, for programs that embed the API with a catalog
    /// of their own instead of running the CatalogActor (and for tests).
    pub fn publish(&self, snapshot: Arc<CatalogSnapshot>) {
        self.update(|s| s.snapshot = Some(snapshot));
    }

    fn update(&self, f: impl FnOnce(&mut CatalogStatus)) {
        match self.state.write() {
            Ok(mut s) => f(&mut s),
            Err(poisoned) => f(&mut poisoned.into_inner()),
        }
    }
}

/// Ask for a refresh now. Answers at once; the refresh runs in the background.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct RefreshCatalog;

/// Owns the Git catalog and refreshes it.
#[derive(Debug)]
pub struct CatalogActor {
    catalog: Arc<Mutex<GitCatalog>>,
    handle: CatalogHandle,
    every: Option<Duration>,
}

impl CatalogActor {
    /// An actor for `catalog`, refreshing every `every` (never when `None`), publishing to `handle`.
    pub fn new(catalog: GitCatalog, handle: CatalogHandle, every: Option<Duration>) -> Self {
        CatalogActor {
            catalog: Arc::new(Mutex::new(catalog)),
            handle,
            every,
        }
    }
}

impl Actor for CatalogActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.notify(RefreshCatalog);
        if let Some(every) = self.every {
            ctx.run_interval(every, |_, ctx| ctx.notify(RefreshCatalog));
        }
    }
}

impl Supervised for CatalogActor {}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

impl Handler<RefreshCatalog> for CatalogActor {
    type Result = ();

    fn handle(&mut self, _: RefreshCatalog, ctx: &mut Self::Context) {
        if self.handle.status().refreshing {
            return;
        }
        self.handle.update(|s| s.refreshing = true);
        let catalog = Arc::clone(&self.catalog);
        let handle = self.handle.clone();
        let work = tokio::task::spawn_blocking(move || {
            let mut guard = match catalog.lock() {
                Ok(g) => g,
                Err(poisoned) => poisoned.into_inner(),
            };
            guard.refresh().map_err(|e| error_chain(&e))
        });
        ctx.spawn(
            async move {
                let outcome = match work.await {
                    Ok(r) => r,
                    Err(e) => Err(format!("catalog refresh stopped: {e}")),
                };
                handle.update(|s| {
                    s.refreshing = false;
                    s.last_refresh = Some(now());
                    match outcome {
                        Ok(r) => {
                            if r.changed {
                                tracing::info!(
                                    commit = r.snapshot.source().commit.as_deref().unwrap_or(""),
                                    apps = r.snapshot.apps().len(),
                                    broken = r.snapshot.broken().len(),
                                    "catalog loaded"
                                );
                            }
                            s.snapshot = Some(r.snapshot);
                            s.last_error = None;
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, "catalog refresh failed; keeping the last snapshot");
                            s.last_error = Some(e);
                        }
                    }
                });
            }
            .into_actor(self),
        );
    }
}
