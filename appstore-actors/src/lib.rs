//! The actors of PVE App Store. Only this crate depends on actix: other crates expose plain functions,
//! traits and types. Blocking work (git, SQLite, processes) never runs on an actor's thread; it goes
//! to `spawn_blocking` or a SyncArbiter.

pub mod catalog;
pub mod engine;
pub mod gpu;
pub mod jobs;
pub mod proxmox;
pub mod secrets;
pub mod store;

pub use catalog::{CatalogActor, CatalogHandle, CatalogStatus, RefreshCatalog};
pub use gpu::{GpuChange, GpuDelta, GpuHandle, GpuManagerActor, GpuStatus, Rescan};
pub use jobs::{
    CancelJob, JobRegistry, SubmitDestroyFailed, SubmitError, SubmitInstall, SubmitMaintain,
    SubmitUninstall,
};
pub use proxmox::{
    ContainerState, Discover, Discovery, ListContainers, ProxmoxActor, ReadContainer,
};
