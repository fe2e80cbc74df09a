//! cricket's bundled CRI runtime: a tonic server for RuntimeService and ImageService on a unix
//! socket. The binary (`cricket runtime`) is a thin wrapper around [`serve`].
//!
//! This is the foundation slice: `Version` and `Status` answer truthfully, every other RPC
//! answers `Unimplemented` (the generated default stubs) until the runtime grows pods,
//! containers and images.

pub mod cgroups;
pub mod containers;
pub mod ctrconfig;
pub mod engine;
pub mod exec;
pub mod fault;
pub mod image;
mod image_service;
pub mod pods;
pub mod request_check;
mod runtime_service;
mod server;
pub mod shim;
pub mod state;
pub mod stats;
pub mod sys;

pub use server::{Config, serve};

/// The name this runtime reports in `VersionResponse.runtime_name`.
pub const RUNTIME_NAME: &str = "cricket";
/// The version it reports in `VersionResponse.runtime_version` (semver, as api.proto requires).
pub const RUNTIME_VERSION: &str = env!("CARGO_PKG_VERSION");
