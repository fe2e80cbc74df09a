//! Port-forward's far end: a TCP connection to a port inside the pod's network namespace (the
//! host's, for a host-network pod), copied both ways with the client's data stream. The
//! connection is made on a thread of its own that joins the namespace and ends: a namespace
//! switch must never touch a thread the async runtime reuses.

use std::os::fd::AsFd;
use std::path::PathBuf;

use cricket_proto::v1 as cri;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};

use crate::engine::Engine;
use crate::tables::Pod;

/// The pod's network namespace file, or `None` for host networking; an error names why the
/// pod cannot be forwarded to.
pub fn netns_of(engine: &Engine, pod: &str) -> Result<Option<PathBuf>, String> {
    let t = engine.tables();
    let p: &Pod = t
        .pods
        .get(pod)
        .ok_or_else(|| format!("pod sandbox {pod} not found"))?;
    if p.rec.state != crate::state::PodState::Ready {
        return Err(format!("pod sandbox {pod} is not ready"));
    }
    Ok(p.rec.netns.clone())
}

/// Connects to `localhost:port` in `netns` (IPv4, then IPv6, as containerd does).
pub async fn dial(netns: Option<PathBuf>, port: u16) -> Result<tokio::net::TcpStream, String> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("cricket-portforward-dial".into())
        .spawn(move || {
            let r = (|| -> Result<std::net::TcpStream, String> {
                if let Some(ns) = &netns {
                    let f = std::fs::File::open(ns)
                        .map_err(|e| format!("opening network namespace {}: {e}", ns.display()))?;
                    rustix::thread::move_into_link_name_space(
                        f.as_fd(),
                        Some(rustix::thread::LinkNameSpaceType::Network),
                    )
                    .map_err(|e| format!("entering network namespace {}: {e}", ns.display()))?;
                }
                std::net::TcpStream::connect(("127.0.0.1", port))
                    .or_else(|_| std::net::TcpStream::connect(("::1", port)))
                    .map_err(|e| {
                        format!("failed to connect to localhost:{port} inside the pod: {e}")
                    })
            })();
            let _ = tx.send(r);
        })
        .map_err(|e| format!("starting a thread to dial: {e}"))?;
    let s = rx
        .await
        .map_err(|_| "the dialling thread died".to_string())??;
    s.set_nonblocking(true).map_err(|e| e.to_string())?;
    tokio::net::TcpStream::from_std(s).map_err(|e| e.to_string())
}

/// Forwards one client stream (read and write halves) to `port` of `pod` until either side
/// ends; `Err` carries what to write on the error stream.
pub async fn forward(
    engine: &Engine,
    pod: &str,
    port: u16,
    mut from_client: impl AsyncRead + Unpin,
    mut to_client: impl AsyncWrite + Unpin,
) -> Result<(), String> {
    let netns = netns_of(engine, pod)?;
    let tcp = dial(netns, port).await?;
    let (mut r, mut w) = tcp.into_split();
    let up = async {
        let r = tokio::io::copy(&mut from_client, &mut w).await;
        let _ = w.shutdown().await;
        r.is_ok()
    };
    let truncate = engine.faults.has(crate::fault::Fault::PortForwardTruncates);
    let down = async {
        if truncate {
            // The fault: the pod's answer is cut after 64 KiB.
            let _ = tokio::io::copy(
                &mut tokio::io::AsyncReadExt::take(&mut r, 64 << 10),
                &mut to_client,
            )
            .await;
        } else {
            let _ = tokio::io::copy(&mut r, &mut to_client).await;
        }
        let _ = to_client.shutdown().await;
    };
    tokio::pin!(down);
    // When the pod side ends, the forward is over. The client's half-close alone does not end
    // it (an HTTP server still answers); its connection breaking does.
    tokio::select! {
        _ = &mut down => {}
        clean = up => {
            if clean {
                down.await;
            }
        }
    }
    Ok(())
}

/// Checks a PortForward request (api.proto: "PortForward prepares a streaming endpoint to
/// forward ports from a PodSandbox").
pub fn validate(engine: &Engine, req: &cri::PortForwardRequest) -> Result<(), tonic::Status> {
    if req.pod_sandbox_id.is_empty() {
        return Err(tonic::Status::invalid_argument(
            "missing required pod_sandbox_id",
        ));
    }
    for p in &req.port {
        if *p <= 0 || *p > 65535 {
            return Err(tonic::Status::invalid_argument(format!(
                "PortForwardRequest.port {p} is not a TCP port"
            )));
        }
    }
    let t = engine.tables();
    match t.pods.get(&req.pod_sandbox_id) {
        None => Err(tonic::Status::not_found(format!(
            "pod sandbox {} not found",
            req.pod_sandbox_id
        ))),
        Some(p) if p.rec.state != crate::state::PodState::Ready => {
            Err(tonic::Status::failed_precondition(format!(
                "pod sandbox {} is not ready",
                req.pod_sandbox_id
            )))
        }
        Some(_) => Ok(()),
    }
}
