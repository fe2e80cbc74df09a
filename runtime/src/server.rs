use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, bail};
use cricket_proto::{ImageServiceServer, RuntimeServiceServer};
use tokio::net::UnixListener;
use tokio_stream::wrappers::UnixListenerStream;

use crate::engine::Engine;
use crate::fault::{Fault, Faults, HangUnknown};
use crate::image::pull::Puller;
use crate::image::store::ImageStore;
use crate::image_service::Images;
use crate::runtime_service::Runtime;

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
}

/// Serves both CRI services on `config.socket` until `shutdown` resolves, then removes the
/// socket. The socket is created mode 0600: the CRI socket grants root-equivalent power.
pub async fn serve(
    config: Config,
    shutdown: impl std::future::Future<Output = ()> + Send,
) -> anyhow::Result<()> {
    std::fs::create_dir_all(&config.root)
        .with_context(|| format!("creating runtime root {}", config.root.display()))?;
    if let Some(dir) = config.socket.parent() {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("creating socket directory {}", dir.display()))?;
    }
    match std::fs::symlink_metadata(&config.socket) {
        Ok(meta) if meta.file_type().is_socket() => {
            // A stale socket from a runtime that did not shut down; a live one would answer.
            if std::os::unix::net::UnixStream::connect(&config.socket).is_ok() {
                bail!(
                    "another runtime is already serving on {}",
                    config.socket.display()
                );
            }
            std::fs::remove_file(&config.socket)?;
        }
        Ok(_) => bail!("{} exists and is not a socket", config.socket.display()),
        Err(_) => {}
    }
    let listener = UnixListener::bind(&config.socket)
        .with_context(|| format!("binding {}", config.socket.display()))?;
    std::fs::set_permissions(&config.socket, std::fs::Permissions::from_mode(0o600))?;
    tracing::info!(socket = %config.socket.display(), "cricket runtime serving CRI v1");

    if !config.faults.is_empty() {
        tracing::warn!(faults = ?config.faults, "fault injection is on: this runtime misbehaves on purpose");
    }
    let hang_unknown = config.faults.has(Fault::UnknownMethodHangs);
    let store = ImageStore::open(&config.root)
        .with_context(|| format!("opening the image store in {}", config.root.display()))?;
    let images = Images {
        store: Arc::new(store),
        puller: Arc::new({
            let mut pems = Vec::new();
            for p in &config.registry_ca {
                pems.push(
                    std::fs::read(p)
                        .with_context(|| format!("reading registry CA {}", p.display()))?,
                );
            }
            Puller::new(config.registry_mirrors.clone(), &pems).map_err(anyhow::Error::msg)?
        }),
        faults: config.faults.clone(),
    };
    let engine = Engine::new(
        config.root.clone(),
        config.shim_binary.clone(),
        images.store.clone(),
        images.puller.clone(),
        config.pause_image.clone(),
        config.faults.clone(),
    );
    engine.restore();
    let runtime = Runtime::new(config.clone(), engine);
    let result = tonic::transport::Server::builder()
        .layer(HangUnknown::layer(hang_unknown))
        .add_service(
            RuntimeServiceServer::new(runtime.clone())
                .max_decoding_message_size(cricket_proto::MAX_MESSAGE_SIZE)
                .max_encoding_message_size(cricket_proto::MAX_MESSAGE_SIZE),
        )
        .add_service(
            ImageServiceServer::new(images)
                .max_decoding_message_size(cricket_proto::MAX_MESSAGE_SIZE)
                .max_encoding_message_size(cricket_proto::MAX_MESSAGE_SIZE),
        )
        .serve_with_incoming_shutdown(UnixListenerStream::new(listener), shutdown)
        .await;
    let _ = std::fs::remove_file(&config.socket);
    tracing::info!("cricket runtime stopped");
    result.context("serving CRI")
}
