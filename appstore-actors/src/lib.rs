//! The actors of PVE App Store. Only this crate depends on actix: other crates expose plain functions,
//! traits and types. Blocking work (git, SQLite, processes) never runs on an actor's thread; it goes
//! to `spawn_blocking` or a SyncArbiter.

pub mod catalog;
pub mod engine;
pub mod jobs;
pub mod secrets;
pub mod store;

pub use catalog::{CatalogActor, CatalogHandle, CatalogStatus, RefreshCatalog};
pub use jobs::{CancelJob, JobRegistry, SubmitInstall, SubmitMaintain, SubmitUninstall};
