//! Attach over a streaming connection: the session connects to the container's shim (its
//! attach socket, `shim/attach.rs`) and relays — the client's stdin and terminal size in, the
//! container's stdout and stderr out — until the container exits or the client goes.

use std::sync::Arc;

use cricket_proto::v1 as cri;
use cricket_stream::remotecommand as rc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::remotecommand::{Ended, StatusStyle, Streams, write_status};
use crate::engine::Engine;
use crate::shim::attach::{self, frame, frames};

pub async fn attach(
    engine: Arc<Engine>,
    req: cri::AttachRequest,
    mut s: Streams,
    style: StatusStyle,
) {
    let path = {
        let t = engine.tables();
        t.ctrs
            .get(&req.container_id)
            .map(|c| c.dir.join("attach.sock"))
    };
    let Some(path) = path else {
        let m = format!(
            "error attaching to container: container {} not found",
            req.container_id
        );
        tracing::debug!(error = %m, "attach refused");
        return write_status(&mut s.error, style, &Ended::Error(m)).await;
    };
    // A unix connect completes at once (the shim's backlog is never full for long), so the
    // blocking call is fine here and lets the short path stay valid for its whole span.
    let conn = crate::sys::via_dir_fd(&path, |p| std::os::unix::net::UnixStream::connect(p))
        .and_then(|c| {
            c.set_nonblocking(true)?;
            tokio::net::UnixStream::from_std(c)
        });
    let conn = match conn {
        Ok(c) => c,
        Err(e) => {
            let m = format!("error attaching to container {}: {e}", req.container_id);
            tracing::debug!(error = %m, "attach refused");
            return write_status(&mut s.error, style, &Ended::Error(m)).await;
        }
    };
    let (mut from_shim, mut to_shim) = conn.into_split();
    let takes_stdin = s.stdin.is_some();
    if to_shim.write_all(&[u8::from(takes_stdin)]).await.is_err() {
        let m = "error attaching to container: the shim closed the connection".to_string();
        tracing::debug!(error = %m, "attach refused");
        return write_status(&mut s.error, style, &Ended::Error(m)).await;
    }
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Vec<u8>>(16);
    if let Some(mut stdin) = s.stdin.take() {
        let tx = tx.clone();
        tokio::spawn(async move {
            let mut buf = vec![0u8; 32 * 1024];
            loop {
                match stdin.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        if tx.send(frame(attach::STDIN, &buf[..n])).await.is_err() {
                            return;
                        }
                    }
                }
            }
            let _ = tx.send(frame(attach::STDIN_CLOSE, &[])).await;
        });
    }
    if let Some(mut events) = s.resize.take() {
        let tx = tx.clone();
        tokio::spawn(async move {
            let mut dec = rc::ResizeDecoder::new();
            let mut buf = [0u8; 1024];
            while let Ok(n) = events.read(&mut buf).await {
                if n == 0 {
                    break;
                }
                for size in dec.push(&buf[..n]) {
                    let mut p = size.width.to_be_bytes().to_vec();
                    p.extend_from_slice(&size.height.to_be_bytes());
                    if tx.send(frame(attach::RESIZE, &p)).await.is_err() {
                        return;
                    }
                }
            }
        });
    }
    drop(tx);
    // The connection to the shim stays whole until the session ends: its end means "this
    // client is gone" to the shim, which then stops sending it output.
    let writer = async {
        while let Some(f) = rx.recv().await {
            if to_shim.write_all(&f).await.is_err() {
                break;
            }
        }
        std::future::pending::<()>().await
    };
    let mut stdout = s.stdout.take();
    let mut stderr = s.stderr.take();
    let relay = async {
        let mut buf = Vec::new();
        let mut chunk = vec![0u8; 64 * 1024];
        loop {
            let n = match from_shim.read(&mut chunk).await {
                Ok(0) | Err(_) => return Ended::Exit(0),
                Ok(n) => n,
            };
            buf.extend_from_slice(&chunk[..n]);
            let Ok(got) = frames(&mut buf) else {
                return Ended::Error(
                    "error attaching to container: bad frame from the shim".into(),
                );
            };
            for (kind, payload) in got {
                let out = match kind {
                    attach::STDOUT => stdout.as_mut(),
                    attach::STDERR => stderr.as_mut(),
                    attach::EXIT => return Ended::Exit(0),
                    _ => None,
                };
                if let Some(out) = out {
                    let _ = out.write_all(&payload).await;
                }
            }
        }
    };
    let ended = tokio::select! {
        e = relay => e,
        () = writer => return,
        _ = &mut s.gone => return,
    };
    for out in [stdout.as_mut(), stderr.as_mut()].into_iter().flatten() {
        let _ = out.shutdown().await;
    }
    write_status(&mut s.error, style, &ended).await;
}
