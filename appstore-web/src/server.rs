//! Starting the product: the actors, then the web server on its address, until a stop signal.

use crate::api::{self, ApiState};
use actix::Supervisor;
use anyhow::Context as _;
use appstore_actors::{CatalogActor, CatalogHandle};
use appstore_catalog::{GitCache, GitCatalog, GitSource};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;
use warp::Filter;

/// What the server needs to start.
#[derive(Debug, Clone)]
pub struct ServerSettings {
    /// Address to listen on.
    pub addr: SocketAddr,
    /// The catalog to follow.
    pub catalog: GitSource,
    /// Where the catalog cache lives.
    pub cache_dir: PathBuf,
    /// How often to refresh the catalog.
    pub refresh_every: Option<Duration>,
}

/// Runs the product until SIGINT or SIGTERM. Must be called inside an actix System.
pub async fn run(settings: ServerSettings) -> anyhow::Result<()> {
    let handle = CatalogHandle::default();
    let catalog = GitCatalog::new(GitCache::new(&settings.cache_dir), settings.catalog.clone());
    let every = settings.refresh_every;
    let h = handle.clone();
    let actor = Supervisor::start(move |_| CatalogActor::new(catalog, h, every));
    let state = ApiState {
        catalog: handle,
        refresh: actor.recipient(),
    };

    let routes = api::routes(state)
        .or(crate::ui::routes().map(warp::Reply::into_response))
        .unify()
        .recover(api::recover)
        .unify()
        .with(warp::log("pve_appstore::http"));

    let listener = tokio::net::TcpListener::bind(settings.addr).await.with_context(|| {
        format!("cannot listen on {}; is another program using that port? (choose another with --port)", settings.addr)
    })?;
    let local = listener
        .local_addr()
        .context("listening socket has no address")?;
    // Tests and scripts read this line to learn the port when started with --port 0.
    println!("PVE App Store listening on http://{local}");
    tracing::info!(%local, catalog = %settings.catalog.url, branch = %settings.catalog.branch, "web server started");
    warp::serve(routes)
        .incoming(listener)
        .graceful(shutdown_signal())
        .run()
        .await;
    tracing::info!("web server stopped");
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(t) => t,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {},
            _ = term.recv() => {},
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}
