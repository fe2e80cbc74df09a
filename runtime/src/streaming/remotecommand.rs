//! Exec over a streaming connection, whatever carries it (SPDY streams or WebSocket
//! channels): the process in the container, with or without a terminal, its stdio pumped to
//! and from the client, resize events applied, and the exit status written on the error
//! stream as the negotiated protocol version says (v4+: a JSON Status with the exit code).
//! The client going away kills the process: nothing is left running for nobody.

use std::future::Future;
use std::pin::Pin;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use cricket_proto::v1 as cri;
use cricket_stream::remotecommand as rc;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::engine::Engine;
use crate::fault::Fault;
use crate::pty;

pub type BoxRead = Pin<Box<dyn AsyncRead + Send>>;
pub type BoxWrite = Pin<Box<dyn AsyncWrite + Send>>;

/// The streams of one session. Each is there when the request asked for it.
pub struct Streams {
    pub stdin: Option<BoxRead>,
    pub stdout: Option<BoxWrite>,
    pub stderr: Option<BoxWrite>,
    pub resize: Option<BoxRead>,
    pub error: BoxWrite,
    /// Resolves when the client's connection has ended.
    pub gone: Pin<Box<dyn Future<Output = ()> + Send>>,
}

/// How the status is written: v4 and later as JSON, earlier versions as plain text on
/// failure only.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusStyle {
    Json,
    Text,
}

/// How the process ended, as the error stream reports it.
#[derive(Debug)]
pub enum Ended {
    Exit(i32),
    Error(String),
}

pub async fn write_status(error: &mut BoxWrite, style: StatusStyle, ended: &Ended) {
    use rc::status::{StatusShape, exit_status, internal_error_status, status_v1, success_status};
    let shape = StatusShape::CriStreaming;
    let bytes = match (style, ended) {
        (StatusStyle::Json, Ended::Exit(0)) => success_status(shape),
        (StatusStyle::Json, Ended::Exit(code)) => {
            exit_status(*code, &format!("exit code {code}"), shape)
        }
        (StatusStyle::Json, Ended::Error(m)) => internal_error_status(m, shape),
        (StatusStyle::Text, Ended::Exit(0)) => status_v1(None),
        (StatusStyle::Text, Ended::Exit(code)) => status_v1(Some(&format!(
            "command terminated with non-zero exit code: {code}"
        ))),
        (StatusStyle::Text, Ended::Error(m)) => status_v1(Some(m)),
    };
    if !bytes.is_empty() {
        let _ = error.write_all(&bytes).await;
    }
    let _ = error.shutdown().await;
}

/// Copies `from` to `to` until EOF, then ends `to` (FIN).
async fn pump(mut from: impl AsyncRead + Unpin, mut to: impl AsyncWrite + Unpin) {
    let _ = tokio::io::copy(&mut from, &mut to).await;
    let _ = to.shutdown().await;
}

/// Applies resize events until the stream ends (unless the fault says to ignore them).
async fn resizes(mut events: BoxRead, master: pty::Master, ignore: bool) {
    let mut dec = rc::ResizeDecoder::new();
    let mut buf = [0u8; 1024];
    loop {
        match events.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                for size in dec.push(&buf[..n]) {
                    if !ignore && size.width > 0 && size.height > 0 {
                        let _ = master.resize(size.width, size.height);
                    }
                }
            }
        }
    }
}

/// The exit code the exec helper's status stands for.
fn exit_of(status: std::process::ExitStatus) -> Ended {
    use std::os::unix::process::ExitStatusExt;
    match status.signal() {
        Some(libc::SIGUSR1) => Ended::Error("cannot enter the container".into()),
        Some(s) => Ended::Exit(128 + s),
        None => Ended::Exit(status.code().unwrap_or(0)),
    }
}

/// Runs `req` in its container over `s`; returns when the process has ended and the status is
/// written, or the client has gone (the process is then killed).
pub async fn exec(engine: Arc<Engine>, req: cri::ExecRequest, mut s: Streams, style: StatusStyle) {
    let spec = match engine.exec_spec(&req.container_id, &req.cmd, 0, req.tty) {
        Ok(spec) => spec,
        Err(e) => {
            let m = format!("error executing command in container: {}", e.message());
            return write_status(&mut s.error, style, &Ended::Error(m)).await;
        }
    };
    let faults = engine.faults.clone();
    let mut outputs = Vec::new();
    let spawned = if req.tty {
        start_tty(&engine, &spec, &mut s, &faults, &mut outputs)
    } else {
        start_pipes(&engine, &spec, &mut s, &faults, &mut outputs)
    };
    let mut child = match spawned {
        Ok(c) => c,
        Err(m) => return write_status(&mut s.error, style, &Ended::Error(m)).await,
    };
    let ended = tokio::select! {
        st = child.wait() => match st {
            Ok(st) => exit_of(st),
            Err(e) => Ended::Error(format!("waiting for the command: {e}")),
        },
        _ = &mut s.gone => {
            if faults.has(Fault::ExecDisconnectLeaks) {
                // The fault: the process is left running for a client that has gone.
                std::mem::forget(child);
            }
            return;
        }
    };
    // The output pipes end when every holder is gone; a background child of the command can
    // hold them, so the status does not wait for that forever.
    let _ = tokio::time::timeout(Duration::from_secs(2), futures_join(outputs)).await;
    let ended = match ended {
        Ended::Exit(_) if faults.has(Fault::ExecLosesExitCode) => Ended::Exit(0),
        other => other,
    };
    write_status(&mut s.error, style, &ended).await;
}

async fn futures_join(tasks: Vec<tokio::task::JoinHandle<()>>) {
    for t in tasks {
        let _ = t.await;
    }
}

fn start_pipes(
    engine: &Engine,
    spec: &crate::exec::ExecSpec,
    s: &mut Streams,
    faults: &crate::fault::Faults,
    outputs: &mut Vec<tokio::task::JoinHandle<()>>,
) -> Result<tokio::process::Child, String> {
    let piped = |on: bool| if on { Stdio::piped() } else { Stdio::null() };
    let mut child = engine
        .spawn_exec(
            spec,
            piped(s.stdin.is_some()),
            piped(s.stdout.is_some()),
            piped(s.stderr.is_some()),
        )
        .map_err(|e| e.message().to_string())?;
    if let (Some(from), Some(to)) = (s.stdin.take(), child.stdin.take()) {
        if faults.has(Fault::ExecDisconnectLeaks) {
            // The fault: the command's stdin is never closed, whatever the client does.
            tokio::spawn(async move {
                let mut from = from;
                let mut to = to;
                let _ = tokio::io::copy(&mut from, &mut to).await;
                std::mem::forget(to);
            });
        } else {
            tokio::spawn(pump(from, to));
        }
    }
    if let (Some(from), Some(to)) = (child.stdout.take(), s.stdout.take()) {
        outputs.push(tokio::spawn(pump(from, to)));
    }
    if let (Some(from), Some(to)) = (child.stderr.take(), s.stderr.take()) {
        if faults.has(Fault::ExecStreamDropsStderr) {
            // The fault: stderr is read and thrown away.
            outputs.push(tokio::spawn(pump(from, tokio::io::sink())));
            drop(to);
        } else {
            outputs.push(tokio::spawn(pump(from, to)));
        }
    }
    Ok(child)
}

fn start_tty(
    engine: &Engine,
    spec: &crate::exec::ExecSpec,
    s: &mut Streams,
    faults: &crate::fault::Faults,
    outputs: &mut Vec<tokio::task::JoinHandle<()>>,
) -> Result<tokio::process::Child, String> {
    let (master, slave) = pty::open(80, 24).map_err(|e| format!("allocating a terminal: {e}"))?;
    let dup = |f: &std::os::fd::OwnedFd| {
        f.try_clone()
            .map(Stdio::from)
            .map_err(|e| format!("allocating a terminal: {e}"))
    };
    let (a, b) = (dup(&slave)?, dup(&slave)?);
    let child = engine
        .spawn_exec(spec, a, b, Stdio::from(slave))
        .map_err(|e| e.message().to_string())?;
    let master = pty::Master::new(master).map_err(|e| format!("allocating a terminal: {e}"))?;
    if let Some(from) = s.stdin.take() {
        let to = master.clone();
        tokio::spawn(async move {
            let mut from = from;
            let mut to = to;
            let _ = tokio::io::copy(&mut from, &mut to).await;
        });
    }
    if let Some(to) = s.stdout.take() {
        outputs.push(tokio::spawn(pump(master.clone(), to)));
    }
    if let Some(events) = s.resize.take() {
        tokio::spawn(resizes(
            events,
            master,
            faults.has(Fault::ExecResizeIgnored),
        ));
    }
    Ok(child)
}
