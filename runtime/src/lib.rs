//! cricket's bundled CRI runtime: a tonic server for RuntimeService and ImageService on a unix
//! socket, running every container as a real process in its own namespaces and cgroup (one
//! small shim each), with its own image store and puller. The binary (`cricket runtime`) is a
//! thin wrapper around [`serve`]. Layers, top down: `server` (socket, services) →
//! `runtime_service` / `image_service` (CRI translation) → `engine` + `pods` / `containers` /
//! `exec` / `stats` (lifecycle over the `tables`, read through `views`) → `shim`, `cgroups`,
//! `image`, `state`, `sys`.

pub mod authority;
pub mod cgroups;
pub mod config;
pub mod containers;
pub mod ctrconfig;
pub mod engine;
pub mod exec;
pub mod fault;
mod grpc_rules;
pub mod host_mounts;
pub mod image;
mod image_service;
pub mod lsm;
pub mod namespaces;
pub mod network;
pub mod pods;
pub mod pty;
pub mod request_check;
pub mod rootfs_file;
mod runtime_service;
pub mod seccomp;
pub mod security;
mod server;
pub mod shim;
pub mod state;
pub mod stats;
pub mod streaming;
pub mod sys;
pub mod tables;
pub mod views;

pub use config::Config;
pub use server::serve;

/// The name this runtime reports in `VersionResponse.runtime_name`.
pub const RUNTIME_NAME: &str = "cricket";
/// The version it reports in `VersionResponse.runtime_version` (semver, as api.proto requires).
pub const RUNTIME_VERSION: &str = env!("CARGO_PKG_VERSION");
