use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::Path;

use std::sync::Arc;

use anyhow::{Context, bail};
use cricket_proto::{ImageServiceServer, RuntimeServiceServer};
use tokio::net::{UnixListener, UnixStream};
use tokio_stream::wrappers::UnixListenerStream;

use crate::authority::AuthorityFix;
use crate::config::Config;
use crate::engine::Engine;
use crate::fault::{Fault, HangUnknown};
use crate::grpc_rules::GrpcRules;
use crate::image::pull::Puller;
use crate::image::store::ImageStore;
use crate::image_service::Images;
use crate::runtime_service::Runtime;
use tonic::codec::CompressionEncoding;

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
    let listener = bind_private(&config.socket)?;
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
        crate::network::Network::start(config.network.clone(), &config.root, config.faults.clone())
            .with_context(|| {
                format!("setting up pod networking ({})", config.network.describe())
            })?,
    );
    engine.restore();
    engine.restore_network().await;
    let streams = crate::streaming::StreamServer::start(
        config.streaming_address,
        engine.clone(),
        config.stream_idle_timeout,
    )
    .await
    .with_context(|| {
        format!(
            "starting the streaming server on {}",
            config.streaming_address
        )
    })?;
    let runtime = Runtime::new(config.clone(), engine, streams);
    let result = tonic::transport::Server::builder()
        .layer(HangUnknown::layer(hang_unknown))
        .layer(GrpcRules::layer(
            cricket_proto::MAX_MESSAGE_SIZE,
            config.faults.clone(),
        ))
        .add_service(
            RuntimeServiceServer::new(runtime.clone())
                .max_decoding_message_size(cricket_proto::MAX_MESSAGE_SIZE)
                .max_encoding_message_size(cricket_proto::MAX_MESSAGE_SIZE)
                .accept_compressed(CompressionEncoding::Gzip),
        )
        .add_service(
            ImageServiceServer::new(images)
                .max_decoding_message_size(cricket_proto::MAX_MESSAGE_SIZE)
                .max_encoding_message_size(cricket_proto::MAX_MESSAGE_SIZE)
                .accept_compressed(CompressionEncoding::Gzip),
        )
        .serve_with_incoming_shutdown(incoming(listener, &config.faults), shutdown)
        .await;
    let _ = std::fs::remove_file(&config.socket);
    tracing::info!("cricket runtime stopped");
    result.context("serving CRI")
}

/// Binds the socket 0600 from its first instant: bound inside a fresh 0700 directory next to
/// it (no one else can reach it there), made 0600, then renamed into place. No chmod after a
/// bind in the open, and no process-wide umask change in a multithreaded process.
fn bind_private(socket: &Path) -> anyhow::Result<UnixListener> {
    let dir = socket.parent().unwrap_or(Path::new("/"));
    let staging = tempfile::Builder::new()
        .prefix(".cricket-sock-")
        .permissions(std::fs::Permissions::from_mode(0o700))
        .tempdir_in(dir)
        .with_context(|| format!("creating a private directory in {}", dir.display()))?;
    let inner = staging.path().join("s");
    let listener =
        UnixListener::bind(&inner).with_context(|| format!("binding {}", socket.display()))?;
    std::fs::set_permissions(&inner, std::fs::Permissions::from_mode(0o600))?;
    std::fs::rename(&inner, socket)
        .with_context(|| format!("moving the socket to {}", socket.display()))?;
    Ok(listener)
}

/// Accepted connections, each behind the authority adapter (off only under the
/// `no-authority-fix` fault, to show what a plain tonic server does to real clients). The
/// other connection faults break what the transport cases check.
fn incoming(
    listener: UnixListener,
    faults: &crate::fault::Faults,
) -> impl tokio_stream::Stream<Item = std::io::Result<AuthorityFix<UnixStream>>> + use<> {
    use crate::fault::Fault;
    use tokio_stream::StreamExt;
    let fix = !faults.has(Fault::NoAuthorityFix);
    let leak = faults.has(Fault::ConnectionFdsLeak);
    let hang = faults.has(Fault::BadPrefaceHangs);
    let serial = faults.has(Fault::SerialAccept);
    let accepted = UnixListenerStream::new(listener).map(move |conn| {
        conn.map(|c| {
            if leak {
                use std::os::fd::AsFd;
                // The leak is the fault: a duplicate that is never closed.
                if let Ok(dup) = c.as_fd().try_clone_to_owned() {
                    std::mem::forget(dup);
                }
            }
            let mut c = if fix {
                AuthorityFix::new(c)
            } else {
                AuthorityFix::off(c)
            };
            c.hang_on_bad_preface(hang);
            c
        })
    });
    let gate = std::sync::Arc::new(tokio::sync::Semaphore::new(1));
    accepted.then(move |conn| {
        let gate = gate.clone();
        async move {
            let mut conn = conn;
            if serial && let Ok(c) = &mut conn {
                // One connection at a time: the next is handed to the server only when this
                // one's client has gone.
                if let Ok(permit) = gate.acquire_owned().await {
                    c.release_on_close(permit);
                }
            }
            conn
        }
    })
}
