use std::collections::HashMap;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, bail};
use cricket_proto::v1::{
    RuntimeCondition, RuntimeStatus, StatusRequest, StatusResponse, VersionRequest, VersionResponse,
};
use cricket_proto::{ImageServiceServer, RuntimeService, RuntimeServiceServer};
use tokio::net::UnixListener;
use tokio_stream::wrappers::UnixListenerStream;
use tonic::{Request, Response, Status};

use crate::fault::{Fault, Faults, HangUnknown};
use crate::image::pull::Puller;
use crate::image::store::ImageStore;
use crate::image_service::Images;
use crate::{RUNTIME_NAME, RUNTIME_VERSION};

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
}

/// The CRI service implementation. Cheap to clone: every handler shares one state.
#[derive(Debug, Clone)]
pub struct Runtime {
    config: Config,
}

impl Runtime {
    pub fn new(config: Config) -> Self {
        Self { config }
    }

    fn fault(&self, f: Fault) -> bool {
        self.config.faults.has(f)
    }

    fn conditions(&self) -> Vec<RuntimeCondition> {
        let mut conditions = self.true_conditions();
        if self.fault(Fault::StatusNoNetworkReady) {
            conditions.retain(|c| c.r#type != "NetworkReady");
        }
        if self.fault(Fault::StatusLowercaseReason) {
            for c in conditions.iter_mut().filter(|c| !c.status) {
                c.reason = "not ready yet".into();
            }
        }
        conditions
    }

    fn true_conditions(&self) -> Vec<RuntimeCondition> {
        // Truthful conditions for this slice: the server is up, but it cannot run pods or
        // containers yet, so neither required condition is met. api.proto asks for a CamelCase
        // reason on every condition transition, which kubelet shows as the node's reason.
        vec![
            RuntimeCondition {
                r#type: "RuntimeReady".into(),
                status: false,
                reason: "ContainersNotSupported".into(),
                message: "cricket runtime serves Version and Status only in this build; \
                          pod, container and image RPCs answer Unimplemented"
                    .into(),
            },
            RuntimeCondition {
                r#type: "NetworkReady".into(),
                status: false,
                reason: "NoPodNetwork".into(),
                message: "no pod network is configured".into(),
            },
        ]
    }
}

#[tonic::async_trait]
impl RuntimeService for Runtime {
    async fn version(
        &self,
        _request: Request<VersionRequest>,
    ) -> Result<Response<VersionResponse>, Status> {
        Ok(Response::new(VersionResponse {
            // The kubelet runtime API version this server speaks (the value kubelet sends).
            version: "0.1.0".into(),
            runtime_name: RUNTIME_NAME.into(),
            runtime_version: if self.fault(Fault::VersionBadSemver) {
                format!("{RUNTIME_VERSION}~broken")
            } else {
                RUNTIME_VERSION.into()
            },
            runtime_api_version: if self.fault(Fault::VersionWrongApi) {
                "v2".into()
            } else {
                cricket_proto::CRI_API_VERSION.into()
            },
        }))
    }

    async fn status(
        &self,
        request: Request<StatusRequest>,
    ) -> Result<Response<StatusResponse>, Status> {
        let verbose = request.get_ref().verbose || self.fault(Fault::StatusInfoAlways);
        let mut info = HashMap::new();
        if verbose {
            // api.proto: info "should only be returned non-empty when Verbose is true", values
            // in JSON.
            let config = serde_json::json!({
                "root": self.config.root,
                "socket": self.config.socket,
                "criApi": cricket_proto::CRI_API_TAG,
                "pauseImage": self.config.pause_image,
            });
            info.insert("config".to_string(), config.to_string());
            if self.fault(Fault::StatusInfoNotJson) {
                info.insert("plain".to_string(), "OK".to_string());
            }
        }
        Ok(Response::new(StatusResponse {
            status: Some(RuntimeStatus {
                conditions: self.conditions(),
            }),
            info,
            runtime_handlers: Vec::new(),
            features: None,
        }))
    }
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
        puller: Arc::new(Puller::new(config.registry_mirrors.clone())),
    };
    let runtime = Runtime::new(config.clone());
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
