//! The web side of PVE App Store: the REST API (warp), the embedded browser UI, and what the
//! `pve-appstore` binary runs (`demo`, `serve`, `catalog lint`, `catalog schema`). Only this crate maps
//! errors to HTTP statuses.

pub mod api;
pub mod auth;
#[cfg(feature = "demo")]
pub mod catalog_test;
pub mod connect;
pub mod debug;
pub mod demo;
pub mod doctor;
pub mod gpu_drift;
pub mod lint;
pub mod logfile;
pub mod manifest_doc;
pub mod notify;
pub mod openapi;
pub mod origin;
pub mod plan;
pub mod reference;
pub mod scaffold;
pub mod schedules;
pub mod server;
pub mod tls;
pub mod ui;
pub mod updates;
