//! The actors of PVE App Store. Only this crate depends on actix: other crates expose plain functions,
//! traits and types, and front ends hold the plain [`Services`] that [`start`] gives them. Blocking
//! work (git, SQLite, processes) never runs on an actor's thread; it goes to `spawn_blocking`.

pub mod catalog;
pub mod engine;
pub mod gpu;
pub mod jobs;
pub mod proxmox;
pub mod secrets;
pub mod service;
pub mod store;

pub use catalog::{CatalogActor, CatalogHandle, CatalogStatus, RefreshCatalog};
pub use gpu::{GpuChange, GpuDelta, GpuHandle, GpuManagerActor, GpuStatus, Rescan};
pub use jobs::{
    CancelJob, JobRegistry, SubmitBackup, SubmitDestroyFailed, SubmitError, SubmitInstall,
    SubmitMaintain, SubmitRestore, SubmitUninstall,
};
pub use proxmox::{
    ContainerState, Discover, Discovery, ListContainers, ProxmoxActor, ReadContainer,
};
pub use service::{
    block_on, start, CatalogService, EngineOptions, JobsService, ServiceOptions, Services,
    Unavailable,
};
