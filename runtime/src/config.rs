//! What `cricket runtime` is told at start: where it listens and keeps state, its pause image,
//! registry mirrors and CAs, and test-only faults. Read by the server that starts the
//! services and by the services themselves.

use std::path::PathBuf;

use crate::fault::Faults;

/// Where the runtime listens and keeps its state.
#[derive(Debug, Clone)]
pub struct Config {
    /// Unix socket path for both CRI services.
    pub socket: PathBuf,
    /// State directory (created if missing).
    pub root: PathBuf,
    /// Deliberate misbehaviours for proving cases can fail; empty in normal use.
    pub faults: Faults,
    /// Image whose entrypoint holds a pod's namespaces (the fixture `pause` by default when
    /// cricket starts the runtime).
    pub pause_image: Option<String>,
    /// Registry host → plain-HTTP base URL to pull from instead (`registry.k8s.io` →
    /// `http://127.0.0.1:5000`); images keep their original names.
    pub registry_mirrors: Vec<(String, String)>,
    /// PEM files with CA certificates trusted for HTTPS registries besides the web PKI roots.
    pub registry_ca: Vec<PathBuf>,
    /// The binary with the `__shim` and `__exec` helper subcommands (the `cricket` binary).
    pub shim_binary: PathBuf,
    /// Where the streaming server (Exec/Attach/PortForward URLs) listens; port 0 picks one.
    pub streaming_address: std::net::SocketAddr,
    /// A streaming connection with no traffic for this long is closed (containerd: 4 h).
    pub stream_idle_timeout: std::time::Duration,
    /// How pods are networked.
    pub network: crate::network::Mode,
}

/// The streaming server's defaults: loopback, any port, 4 h idle (containerd's).
pub const DEFAULT_STREAMING_ADDRESS: std::net::SocketAddr =
    std::net::SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 0);
pub const DEFAULT_STREAM_IDLE_TIMEOUT: std::time::Duration =
    std::time::Duration::from_secs(4 * 3600);
